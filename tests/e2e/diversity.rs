//! Diversity groups end to end, in one process and over Kafka (see
//! `support::diversity::a_group_of_four_never_shares_a_link`), and across a restart.

use serde_json::json;

use crate::support::diversity::{
    a_group_of_four_never_shares_a_link, assert_diverse_on_the_switches, body, path_crosses,
};
use crate::support::{edges, Broker, Hubspoke, Process};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diversity_group_never_shares_a_link_through_two_failures() {
    let hub = Hubspoke::up(&[
        "--network",
        "grid:4x4",
        "--workers",
        "2",
        "--reroute-delay-ms",
        "100",
    ]);
    a_group_of_four_never_shares_a_link(&hub.api()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diversity_group_never_shares_a_link_over_kafka() {
    let broker = Broker::start("diversity");
    let kafka = broker.address.as_str();
    let _topology = Process::start(&[
        "topology",
        "--kafka",
        kafka,
        "--workers",
        "2",
        "--reroute-delay-ms",
        "100",
    ]);
    let (_sb, _nb, api) = edges(kafka, "grid:4x4");
    a_group_of_four_never_shares_a_link(&api).await;
}

/// On grid:3x3 (switches 1 to 9 row by row) b runs down the left column (1-4-7) and c along
/// the top (6-3-2-1), both having joined a (9 -> 6). a is deleted and hubspoke restarted: b
/// and c are still a group, so when link 4-7 fails b goes round by 5 and 8, not over c's
/// link 1-2 as the shortest way round would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_outlives_its_named_partners_deletion_and_a_restart() {
    let args = ["--network", "grid:3x3", "--reroute-delay-ms", "100"];
    let mut first = Hubspoke::up(&args);
    let api = first.api();
    api.wait_for_grid().await;
    api.create_and_wait_up(&body("a", 9, 6, 30, None)).await;
    api.create_and_wait_up(&body("b", 1, 7, 31, Some("a")))
        .await;
    api.create_and_wait_up(&body("c", 6, 1, 32, Some("a")))
        .await;
    api.delete("a").await;
    api.flow_when("b", "a gone from b's group", |f| {
        f["diverse_with"] == json!(["c"])
    })
    .await;
    first.process.kill();

    let second = Hubspoke::up_in(first.data.clone(), &args);
    let api = second.api();
    api.wait_for_grid().await;
    let b = api.flow("b").await;
    assert_eq!(b["diverse_with"], json!(["c"]), "{b}");
    assert!(path_crosses(&b, 4, 7), "{b}");
    api.fail_link(4, 7).await;
    api.flow_when("b", "b off the failed link", |f| {
        f["status"] == "UP" && !path_crosses(f, 4, 7)
    })
    .await;
    let links = assert_diverse_on_the_switches(&api, &["b", "c"]).await;
    assert_eq!(links.get(&(1, 2)).map(String::as_str), Some("c"));
}
