//! A timely cluster over Kafka fails whole and recovers whole: two topology processes of one
//! worker each; one is killed (or frozen) with hundreds of operations in flight; the other
//! exits non-zero within seconds, saying which peer it lost; both are started again, and every
//! flow ends UP with the switches holding exactly the flows' rules (traced).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::support::exact::{
    clear_and_check, each_settled_once, fire_changes, fire_creates, CHURN, ISLS, NETWORK, SWITCHES,
    TOPOLOGY_FLAGS,
};
use crate::support::{edges, eventually_explained, free_port, Api, Broker, Process};

/// The exit status of a topology whose cluster failed (`EXIT_TOPOLOGY_FAILED`).
const FAILED: i32 = 3;

/// Two topology processes' host file and logs, on free loopback ports.
struct Pair {
    kafka: String,
    hostfile: PathBuf,
    logs: tempfile::TempDir,
    /// How many times the pair has been started (each start logs to files of its own).
    starts: usize,
}

impl Pair {
    fn new(kafka: &str) -> Pair {
        let logs = tempfile::tempdir().expect("a log directory");
        let hostfile = logs.path().join("hostfile");
        std::fs::write(
            &hostfile,
            format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port()),
        )
        .expect("hostfile");
        Pair {
            kafka: kafka.to_string(),
            hostfile,
            logs,
            starts: 0,
        }
    }

    /// Process `index`, with `extra` flags; its stderr goes to a file of this start.
    fn spawn(&self, index: usize, extra: &[&str]) -> Process {
        let hostfile = self.hostfile.to_string_lossy().to_string();
        let index = index.to_string();
        let mut args = vec![
            "topology",
            "--kafka",
            &self.kafka,
            "--workers",
            "1",
            "--process",
            &index,
            "--hostfile",
            &hostfile,
        ];
        args.extend(TOPOLOGY_FLAGS);
        args.extend(extra);
        let log = File::create(self.log(index.parse().unwrap_or(0))).expect("a log file");
        let mut process = Process::spawn_with_stderr(&args, log);
        process.wait_first_line();
        process
    }

    fn log(&self, index: usize) -> PathBuf {
        self.logs
            .path()
            .join(format!("topology-{index}-{}.log", self.starts))
    }

    /// Both processes, started together; waits until both are ready.
    async fn start(&mut self, extra: &[&str]) -> [Process; 2] {
        self.starts += 1;
        let pair = [self.spawn(0, extra), self.spawn(1, extra)];
        for process in &pair {
            ready(&process.url()).await;
        }
        pair
    }
}

/// `GET URL/ready`: the status and the body.
async fn readiness(url: &str) -> (u16, Value) {
    match reqwest::get(format!("{url}/ready")).await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.json().await.unwrap_or_default())
        }
        Err(error) => (0, Value::String(error.to_string())),
    }
}

async fn ready(url: &str) {
    eventually_explained(Duration::from_secs(60), "the topology ready", || async {
        match readiness(url).await {
            (200, _) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

/// Exits with [`FAILED`] within `limit`, and says on stderr (in `log`) what it lost and that
/// the cluster must be restarted.
fn fails_whole(process: &mut Process, log: &Path, limit: Duration, lost: &str) {
    let status = process.exits_within(limit);
    let said = std::fs::read_to_string(log).unwrap_or_default();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(FAILED),
        "the survivor must exit with {FAILED} within {limit:?}; it said:\n{said}"
    );
    assert!(said.contains(lost), "stderr must name {lost:?}:\n{said}");
    assert!(
        said.contains("restart"),
        "stderr must say to restart:\n{said}"
    );
}

/// 240 flows UP, then 300 operations at once (120 deletes and reroutes, 180 creates), and
/// `strike` at a moment chosen by the clock while they are in flight.
async fn operations_in_flight(api: &Api, strike: impl FnOnce()) {
    api.wait_for_network(SWITCHES as usize, ISLS).await;
    fire_creates(api.clone(), CHURN).await;
    each_settled_once(api, Duration::from_secs(120)).await;
    let changes = {
        let api = api.clone();
        tokio::spawn(async move { fire_changes(&api, CHURN).await })
    };
    let creates = tokio::spawn(fire_creates(api.clone(), CHURN.end..CHURN.end + 180));
    let moment = 200 + u64::from(std::process::id() % 1500);
    tokio::time::sleep(Duration::from_millis(moment)).await;
    strike();
    changes.await.expect("the changes were sent");
    creates.await.expect("the creates were sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_peer_fails_the_cluster_whole_and_a_restart_recovers_every_flow() {
    let broker = Broker::start("cluster-kill");
    let mut pair = Pair::new(&broker.address);
    let [mut first, mut second] = pair.start(&[]).await;
    let (_sb, _nb, api) = edges(&broker.address, NETWORK);
    operations_in_flight(&api, || second.kill()).await;
    fails_whole(
        &mut first,
        &pair.log(0),
        Duration::from_secs(10),
        "lost cluster peer process 1",
    );
    let _restarted = pair.start(&[]).await;
    clear_and_check(&api).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_peer_fails_the_cluster_whole_and_a_restart_recovers_every_flow() {
    let broker = Broker::start("cluster-freeze");
    let mut pair = Pair::new(&broker.address);
    let timeout = ["--cluster-failure-timeout-secs", "3"];
    let [mut first, mut second] = pair.start(&timeout).await;
    let (_sb, _nb, api) = edges(&broker.address, NETWORK);
    operations_in_flight(&api, || second.signal("-STOP")).await;
    fails_whole(
        &mut first,
        &pair.log(0),
        Duration::from_secs(3 + 10),
        "lost cluster peer process 1",
    );
    // Thawed, the frozen one finds its peer gone, and fails too.
    second.signal("-CONT");
    fails_whole(
        &mut second,
        &pair.log(1),
        Duration::from_secs(10),
        "lost cluster peer process 0",
    );
    let _restarted = pair.start(&timeout).await;
    clear_and_check(&api).await;
}

/// Alive at once, ready only once the peers are connected and the flows recovered; a process
/// whose peer never comes gives up after the connect timeout, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_waits_for_the_peers_and_recovery_and_a_missing_peer_is_given_up_on() {
    let broker = Broker::start("cluster-ready");
    let mut pair = Pair::new(&broker.address);
    pair.starts = 1;
    let mut alone = pair.spawn(0, &["--cluster-connect-timeout-secs", "20"]);
    let url = alone.url();
    let health = reqwest::get(format!("{url}/health"))
        .await
        .expect("/health");
    assert_eq!(health.status(), 200);
    let (status, body) = readiness(&url).await;
    assert_eq!(status, 503, "{body}");
    let waiting: Vec<&str> = body["waiting_for"]
        .as_array()
        .expect("waiting_for")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(waiting.contains(&"cluster peers connected"), "{body}");
    assert!(waiting.contains(&"recovery done"), "{body}");
    fails_whole(
        &mut alone,
        &pair.log(0),
        Duration::from_secs(20 + 15),
        "could not reach every cluster peer",
    );
    let pair = pair.start(&[]).await;
    for process in &pair {
        assert_eq!(readiness(&process.url()).await.0, 200);
    }
}
