//! Crash recovery: a part of hubspoke is killed (SIGKILL) with hundreds of creates in flight
//! and started again; every flow must end UP or DOWN with a reason, and the switches must hold
//! exactly the rules of the UP flows. Several crash moments (seeds) per scenario.

use crate::support::crash::{crash_after, creates_in_flight, settles_with_exact_tables};
use crate::support::{kafka_nb, kafka_sb, Api, Broker, Hubspoke, Process};

/// `hubspoke up` killed and started again on its data directory: to the simulated switches,
/// which keep their tables there too, this is a controller restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspoke_up_killed_with_creates_in_flight_recovers() {
    for seed in 1..=3 {
        let args = ["--network", "grid:3x3", "--workers", "2"];
        let mut first = Hubspoke::up(&args);
        let api = first.api();
        let creates = creates_in_flight(&api, seed).await;
        first.process.kill();
        drop(creates);
        let second = Hubspoke::up_in(first.data.clone(), &args);
        let api = second.api();
        let flows = settles_with_exact_tables(&api).await;
        let resumed = api.metric("operations_recovered").await;
        eprintln!(
            "seed {seed}: killed after {:?}, {} flows, {resumed} operations were in flight",
            crash_after(seed),
            flows.len()
        );
        assert!(!flows.is_empty(), "seed {seed}: some creates were accepted");
        assert!(
            resumed > 0,
            "seed {seed}: the crash must catch operations in flight"
        );
    }
}

/// The Kafka deployment with the simulator keeping its tables in `data`.
struct OverKafka {
    broker: Broker,
    topology: Process,
    sb: Process,
    _nb: Process,
    data: tempfile::TempDir,
    api: Api,
}

impl OverKafka {
    fn start(name: &str) -> OverKafka {
        let broker = Broker::start(name);
        let data = tempfile::tempdir().expect("a data directory");
        let topology = OverKafka::topology(&broker);
        let sb = kafka_sb(
            &broker.address,
            "grid:3x3",
            Some(&data.path().to_string_lossy()),
        );
        let nb = kafka_nb(&broker.address);
        let api = Api::new(nb.url(), sb.url());
        OverKafka {
            broker,
            topology,
            sb,
            _nb: nb,
            data,
            api,
        }
    }

    fn topology(broker: &Broker) -> Process {
        Process::start(&["topology", "--kafka", &broker.address, "--workers", "2"])
    }

    fn restart_sb(&mut self) {
        self.sb.kill();
        let dir = self.data.path().to_string_lossy().to_string();
        self.sb = kafka_sb(&self.broker.address, "grid:3x3", Some(&dir));
        self.api.sim = self.sb.url();
    }
}

/// Over Kafka, the topology killed with creates in flight and started again: it reads
/// `flow.events` and `sb.events` back, syncs what was in flight, and the group hands it the
/// unhandled requests and responses again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_topology_killed_with_creates_in_flight_recovers() {
    for seed in 1..=2 {
        let mut kafka = OverKafka::start(&format!("crash-topology-{seed}"));
        let creates = creates_in_flight(&kafka.api, seed).await;
        kafka.topology.kill();
        kafka.topology = OverKafka::topology(&kafka.broker);
        drop(creates);
        let flows = settles_with_exact_tables(&kafka.api).await;
        eprintln!(
            "seed {seed}: topology killed after {:?}, {} flows",
            crash_after(seed),
            flows.len()
        );
    }
}

/// The simulator killed and started again with creates in flight: its switches forget
/// nothing, commands lost with it are sent again by the speaker's retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_killed_with_creates_in_flight_forgets_nothing() {
    let mut kafka = OverKafka::start("crash-sb");
    let creates = creates_in_flight(&kafka.api, 2).await;
    kafka.restart_sb();
    creates.join_all().await;
    settles_with_exact_tables(&kafka.api).await;
}

/// The broker stops answering for a few seconds (SIGSTOP) with creates in flight, then comes
/// back: nothing is lost, nothing is stuck.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_unreachable_for_seconds_loses_nothing() {
    let kafka = OverKafka::start("crash-broker");
    let creates = creates_in_flight(&kafka.api, 3).await;
    kafka.broker.pause();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    kafka.broker.resume();
    creates.join_all().await;
    settles_with_exact_tables(&kafka.api).await;
}
