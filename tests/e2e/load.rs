//! The load generator (`hubspoke load`) as a person runs it: a process against a running
//! `hubspoke up`, reporting JSON.

use crate::support::flows::links_add_up;
use crate::support::{assert_latencies_measured, load_report, Hubspoke};

/// 200 network-aware flows from 16 clients all come UP and are deleted, with nothing
/// rejected; the figures are consistent and every link has its bandwidth back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_flows_come_up_and_are_deleted_under_load() {
    let hub = Hubspoke::up(&[]);
    let api = hub.api();
    api.wait_for_grid().await;
    let url = hub.base.clone();
    let report = tokio::task::spawn_blocking(move || {
        load_report(&[
            "--url",
            &url,
            "--flows",
            "200",
            "--concurrency",
            "16",
            "--network-aware",
            "--delete",
        ])
    })
    .await
    .expect("load task");

    let (create, delete) = (&report["create"], &report["delete"]);
    assert_eq!(report["flows"], 200, "{report}");
    for (count, expected) in [
        (&create["accepted"], 200),
        (&create["up"], 200),
        (&create["timed_out"], 0),
        (&delete["accepted"], 200),
        (&delete["gone"], 200),
        (&delete["timed_out"], 0),
    ] {
        assert_eq!(count, expected, "{report}");
    }
    for nothing in [&create["rejected"], &delete["rejected"]] {
        assert_eq!(nothing.as_array().map(Vec::len), Some(0), "{report}");
    }
    assert_eq!(create["not_up"], serde_json::json!({}), "{report}");
    for (what, summary) in [
        ("create answered", &create["answered"]),
        ("create to UP", &create["to_up"]),
        ("delete answered", &delete["answered"]),
        ("delete to gone", &delete["to_gone"]),
    ] {
        assert_eq!(summary["count"], 200, "{what}: {report}");
        assert_latencies_measured(what, summary);
    }
    assert!(create["up_per_s"].as_f64().is_some_and(|rate| rate > 0.0));
    links_add_up(&api, &[]).await;
}
