//! Switches hold exactly what the flows say, judged by packets (see `support::exact`): in
//! `hubspoke up`, in `hubspoke up` killed with SIGKILL in the middle of the churn, and over
//! Kafka with every part its own process.

use std::time::Duration;

use crate::support::exact::{
    churn_then_exact, clear_and_check, each_settled_once, fire_changes, fire_creates, heavy_faults,
    CHURN, ISLS, NETWORK, SWITCHES, TOPOLOGY_FLAGS,
};
use crate::support::{edges, Broker, Hubspoke, Process};

fn up_args() -> Vec<&'static str> {
    let mut args = vec!["--network", NETWORK, "--workers", "2"];
    args.extend(TOPOLOGY_FLAGS);
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switches_hold_exactly_the_up_flows_after_heavy_faults() {
    let hub = Hubspoke::up(&up_args());
    churn_then_exact(&hub.api()).await;
}

/// The same with `hubspoke up` killed while the churn's creates are in flight, and started
/// again on its data directory: what was in flight is synced or deleted again, what was owed
/// is still owed, and the switches end as exact as without the crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switches_hold_exactly_the_up_flows_after_a_crash_in_the_middle() {
    let mut hub = Hubspoke::up(&up_args());
    let api = hub.api();
    api.wait_for_network(SWITCHES as usize, ISLS).await;
    api.put_faults(&heavy_faults()).await;
    let creates = tokio::spawn(fire_creates(api.clone(), CHURN));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    hub.process.kill();
    creates.await.expect("the creates were sent");
    let hub = Hubspoke::up_in(hub.data.clone(), &up_args());
    let api = hub.api();
    // The simulator's faults live in memory: they come back with the restart only if set.
    api.put_faults(&heavy_faults()).await;
    each_settled_once(&api, Duration::from_secs(120)).await;
    fire_changes(&api, CHURN).await;
    each_settled_once(&api, Duration::from_secs(120)).await;
    clear_and_check(&api).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switches_hold_exactly_the_up_flows_over_kafka() {
    let broker = Broker::start("exact");
    let kafka = broker.address.as_str();
    let mut args = vec!["topology", "--kafka", kafka, "--workers", "2"];
    args.extend(TOPOLOGY_FLAGS);
    let _topology = Process::start(&args);
    let (_sb, _nb, api) = edges(kafka, NETWORK);
    churn_then_exact(&api).await;
}
