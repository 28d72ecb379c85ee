//! `hubspoke up --switches openflow` programming real Open vSwitch bridges (`support::ovs`),
//! judged by real frames: each flow's frame, sent in at one endpoint with its VLAN, leaves at
//! the other with that one's VLAN, both ways; a deleted flow leaves no rule, no meter and no
//! frame; a failed link moves its flows and the frames follow; the data plane keeps carrying
//! frames while hubspoke is dead, and a restarted hubspoke finds and repairs what changed.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};

use crate::ping::arrived;
use crate::support::exact::switches_validate;
use crate::support::ovs::{At, Ovs};
use crate::support::{free_port, Api, Hubspoke};

const GRID: &str = "grid:3x3";
const SWITCHES: u64 = 9;
const GRID_ISLS: usize = 24;
const ALL_UP: Duration = Duration::from_secs(60);

/// `hubspoke up` with its speaker on a free port, and a grid of bridges connected to it.
fn hubspoke_and_bridges() -> (Hubspoke, Ovs, SocketAddr) {
    let speaker: SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .expect("an address");
    let hub = Hubspoke::up(&up_args(&speaker.to_string()));
    let ovs = Ovs::start(GRID, speaker);
    (hub, ovs, speaker)
}

/// `hubspoke up`'s flags for OpenFlow switches connecting to `speaker` (an address).
fn up_args(speaker: &str) -> [&str; 4] {
    ["--switches", "openflow", "--openflow-listen", speaker]
}

fn switch_id(n: u64) -> String {
    format!("00:00:00:00:00:00:00:{n:02x}")
}

/// Flow `i` from switch i%9+1 to (i*4+3)%9+1 (one-switch flows included) on the bridges'
/// edge ports: tagged 100+i on port 10 (every tenth one untagged on port 12), to 1000+i on
/// port 11.
fn flow_body(i: u64) -> Value {
    let (src_port, src_vlan) = if i.is_multiple_of(10) {
        (12, 0)
    } else {
        (10, 100 + i)
    };
    json!({
        "flow_id": format!("of-{i}"),
        "source": {"switch_id": switch_id(i % SWITCHES + 1), "port_number": src_port, "vlan_id": src_vlan},
        "destination": {"switch_id": switch_id((i * 4 + 3) % SWITCHES + 1), "port_number": 11, "vlan_id": 1000 + i},
        "maximum_bandwidth": 10_000,
        "description": "a flow on Open vSwitch",
    })
}

/// A flow's endpoints as the harness names them.
fn ends(flow: &Value) -> (At, At) {
    let end = |e: &Value| -> At {
        let switch = e["switch_id"].as_str().expect("switch");
        let n = u64::from_str_radix(switch.rsplit(':').next().expect("id"), 16).expect("hex");
        (
            n,
            e["port_number"].as_u64().expect("port") as u32,
            e["vlan_id"].as_u64().expect("vlan") as u16,
        )
    };
    (end(&flow["source"]), end(&flow["destination"]))
}

/// A frame of every flow arrives both ways, with the far end's VLAN.
fn frames_flow_both_ways(ovs: &Ovs, flows: &[Value]) {
    for flow in flows {
        let (src, dst) = ends(flow);
        for (from, to) in [(src, dst), (dst, src)] {
            if let Err(e) = ovs.expect_delivered(from, to) {
                panic!("flow {}: {from:?} → {to:?}: {e:?}", flow["flow_id"]);
            }
        }
    }
}

async fn create_up(api: &Api, count: u64) -> Vec<Value> {
    for i in 0..count {
        api.create(&flow_body(i)).await;
    }
    api.flows_when(count as usize, ALL_UP, "every flow UP", |f| {
        f["status"] == "UP"
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_flows_on_open_vswitch_carry_frames_both_ways_and_leave_nothing_when_deleted() {
    let (hub, ovs, _) = hubspoke_and_bridges();
    let api = hub.api();
    api.wait_for_network(SWITCHES as usize, GRID_ISLS).await;
    let flows = create_up(&api, 50).await;
    assert_eq!(api.metric("openflow_switches_connected").await, SWITCHES);
    assert!(api.metric("openflow_commands").await >= 50 * 4);
    frames_flow_both_ways(&ovs, &flows);
    switches_validate(&api, SWITCHES, Duration::from_secs(30)).await;
    pings_follow_the_rules(&api, &ovs, &flows).await;

    for flow in &flows {
        api.delete(flow["flow_id"].as_str().expect("id")).await;
    }
    api.flows_when(0, ALL_UP, "every flow gone", |_| true).await;
    for n in 1..=SWITCHES {
        assert_eq!(
            ovs.hubspoke_rules(n),
            Vec::<String>::new(),
            "rules left on s{n}"
        );
        assert_eq!(
            ovs.dump_meters(n),
            Vec::<String>::new(),
            "meters left on s{n}"
        );
    }
    let (src, dst) = ends(&flows[1]);
    ovs.expect_not_delivered(src, (dst.0, dst.1))
        .expect("a deleted flow carries nothing");
}

/// Every flow across switches answers its ping both ways; a flow whose ingress rule is taken
/// away by hand loses the probes of that direction, and the other direction still arrives.
/// One-switch flows cannot be pinged on OpenFlow switches, and say so.
async fn pings_follow_the_rules(api: &Api, ovs: &Ovs, flows: &[Value]) {
    for flow in flows {
        let id = flow["flow_id"].as_str().expect("id");
        let (status, answer) = api.ping(id, Value::Null).await;
        assert_eq!(status, 200, "{answer}");
        let (src, dst) = ends(flow);
        if src.0 == dst.0 {
            assert_eq!(answer["forward"]["ping_success"], false, "{answer}");
            continue;
        }
        for direction in ["forward", "reverse"] {
            assert!(arrived(&answer[direction]), "{id} {direction}: {answer}");
        }
    }
    let (src, dst) = ends(&flows[1]);
    assert_ne!(src.0, dst.0, "flow 1 crosses switches");
    ovs.ofctl(&[
        "del-flows",
        "--strict",
        &format!("s{}", src.0),
        &format!("priority=32768,in_port={},dl_vlan={}", src.1, src.2),
    ]);
    let (_, answer) = api.ping("of-1", json!({"timeout": 500})).await;
    assert_eq!(answer["forward"]["ping_success"], false, "{answer}");
    assert!(arrived(&answer["reverse"]), "{answer}");
    api.sync("of-1").await;
    crate::support::eventually(
        Duration::from_secs(20),
        "of-1 pinged again once synced",
        || async {
            let (_, answer) = api.ping("of-1", json!({"timeout": 500})).await;
            arrived(&answer["forward"]).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_link_moves_its_flows_and_the_frames_follow() {
    let (hub, ovs, _) = hubspoke_and_bridges();
    let api = hub.api();
    api.wait_for_network(SWITCHES as usize, GRID_ISLS).await;
    let flows = create_up(&api, 12).await;
    // The first link of the first flow that crosses one.
    let crossing = flows
        .iter()
        .find(|f| f["path"].as_array().is_some_and(|p| p.len() > 1))
        .expect("a flow across switches");
    let path = crossing["path"].as_array().expect("path");
    let hop = |i: usize| {
        let id = path[i]["switch_id"].as_str().expect("switch");
        u64::from_str_radix(id.rsplit(':').next().expect("id"), 16).expect("hex")
    };
    let (a, b) = (hop(0), hop(1));
    ovs.fail_link(a, b);

    let crosses = |f: &Value| {
        f["path"].as_array().is_some_and(|p| {
            p.windows(2).any(|w| {
                let pair = [&w[0]["switch_id"], &w[1]["switch_id"]];
                pair == [&json!(switch_id(a)), &json!(switch_id(b))]
                    || pair == [&json!(switch_id(b)), &json!(switch_id(a))]
            })
        })
    };
    let moved = api
        .flows_when(
            flows.len(),
            ALL_UP,
            "every flow UP off the failed link",
            |f| f["status"] == "UP" && !crosses(f),
        )
        .await;
    frames_flow_both_ways(&ovs, &moved);
    switches_validate(&api, SWITCHES, Duration::from_secs(30)).await;
    // The link comes back when its probes do.
    ovs.restore_link(a, b);
    crate::support::eventually(Duration::from_secs(20), "every link UP again", || async {
        let links = api.links().await;
        (links.len() == GRID_ISLS && links.iter().all(|l| l["state"] == "UP")).then_some(())
    })
    .await;
}

/// Protected flows across the grid: when a link of their primary fails they are swapped onto
/// their protected path (only the ingress rules change) and frames arrive again both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_link_swaps_protected_flows_and_the_frames_follow() {
    let (hub, ovs, _) = hubspoke_and_bridges();
    let api = hub.api();
    api.wait_for_network(SWITCHES as usize, GRID_ISLS).await;
    for i in 1..=6u64 {
        let mut body = flow_body(i);
        body["flow_id"] = json!(format!("protected-{i}"));
        body["source"]["switch_id"] = json!(switch_id(1));
        body["destination"]["switch_id"] = json!(switch_id(9));
        body["allocate_protected_path"] = json!(true);
        api.create(&body).await;
    }
    let flows = api
        .flows_when(6, ALL_UP, "every flow UP and protected", |f| {
            f["status"] == "UP" && f["protected_path"].is_array()
        })
        .await;
    frames_flow_both_ways(&ovs, &flows);
    let path = flows[0]["path"].as_array().expect("path");
    let hop = |i: usize| {
        let id = path[i]["switch_id"].as_str().expect("switch");
        u64::from_str_radix(id.rsplit(':').next().expect("id"), 16).expect("hex")
    };
    ovs.fail_link(hop(0), hop(1));

    let protected_paths: Vec<(Value, Value)> = flows
        .iter()
        .map(|f| (f["flow_id"].clone(), f["protected_path"].clone()))
        .collect();
    let swapped = api
        .flows_when(6, ALL_UP, "every flow on its old protected path", |f| {
            f["status"] == "UP"
                && protected_paths
                    .iter()
                    .any(|(id, protected)| *id == f["flow_id"] && *protected == f["path"])
        })
        .await;
    frames_flow_both_ways(&ovs, &swapped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_plane_outlives_a_killed_hubspoke_and_the_restart_repairs_what_changed() {
    let (mut hub, ovs, speaker) = hubspoke_and_bridges();
    let api = hub.api();
    api.wait_for_network(SWITCHES as usize, GRID_ISLS).await;
    let flows = create_up(&api, 10).await;

    hub.process.kill();
    frames_flow_both_ways(&ovs, &flows);
    // While nobody watches: a rule of a flow goes, and a stray rule in hubspoke's cookie
    // space comes.
    let (src, dst) = ends(&flows[1]);
    let vlan_match = if src.2 == 0 {
        "vlan_tci=0x0000/0x1fff".to_string()
    } else {
        format!("dl_vlan={}", src.2)
    };
    ovs.ofctl(&[
        "del-flows",
        "--strict",
        &format!("s{}", src.0),
        &format!("priority=32768,in_port={},{vlan_match}", src.1),
    ]);
    ovs.ofctl(&[
        "add-flow",
        "s5",
        "cookie=0x4000000000abcdef,priority=32768,in_port=13,dl_vlan=7,actions=output:12",
    ]);
    ovs.expect_not_delivered(src, (dst.0, dst.1))
        .expect("the removed rule carried the flow");

    let restarted = Hubspoke::up_in(hub.data.clone(), &up_args(&speaker.to_string()));
    ovs.reconnect();
    let api = restarted.api();
    api.wait_for_network(SWITCHES as usize, GRID_ISLS).await;
    api.flows_when(flows.len(), ALL_UP, "every flow UP again", |f| {
        f["status"] == "UP"
    })
    .await;
    crate::support::eventually(
        Duration::from_secs(30),
        "the stray rule removed",
        || async {
            ovs.hubspoke_rules(5)
                .iter()
                .all(|rule| !rule.contains("0x4000000000abcdef"))
                .then_some(())
        },
    )
    .await;
    crate::support::eventually(Duration::from_secs(30), "the lost rule back", || async {
        ovs.expect_delivered(src, dst).ok()
    })
    .await;
    frames_flow_both_ways(&ovs, &flows);
    switches_validate(&api, SWITCHES, Duration::from_secs(30)).await;
    // Nothing is stuck: a new flow comes up and carries frames.
    let more = api.create_and_wait_up(&flow_body(40)).await;
    frames_flow_both_ways(&ovs, &[more]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_refusing_a_rule_rolls_the_flow_back_cleanly() {
    let (hub, ovs, _) = hubspoke_and_bridges();
    let api = hub.api();
    api.wait_for_network(SWITCHES as usize, GRID_ISLS).await;
    // A port in the gap between a bridge's ISL ports and its edge ports (from 10) is none.
    let gap = json!({
        "flow_id": "gap",
        "source": {"switch_id": switch_id(1), "port_number": 5, "vlan_id": 300},
        "destination": {"switch_id": switch_id(9), "port_number": 10, "vlan_id": 301},
        "maximum_bandwidth": 10_000,
    });
    let refused = api.client.post(api.nb("/v2/flows")).json(&gap).send().await;
    let refused = refused.expect("an answer");
    assert_eq!(refused.status(), 400);
    let body = refused.text().await.unwrap_or_default();
    assert!(body.contains("has no port 5"), "{body}");
    // The middle switch's table refuses any rule beyond the two system rules it has.
    ovs.run(
        "ovs-vsctl",
        &[
            "--",
            "--id=@table",
            "create",
            "Flow_Table",
            "flow_limit=2",
            "overflow_policy=refuse",
            "--",
            "set",
            "Bridge",
            "s5",
            "flow_tables:0=@table",
        ],
    );
    // From switch 4 to switch 6, two hops through switch 5: the rules of switches 4 and 6
    // go in, switch 5 refuses its own, and the create must take back what went in.
    let body = json!({
        "flow_id": "refused",
        "source": {"switch_id": switch_id(4), "port_number": 10, "vlan_id": 300},
        "destination": {"switch_id": switch_id(6), "port_number": 10, "vlan_id": 301},
        "maximum_bandwidth": 10_000,
        "description": "through a switch that refuses",
    });
    api.create(&body).await;
    let flow = api
        .flow_when_within(ALL_UP, "refused", "the create settled", |f| {
            f["status"] != "IN_PROGRESS"
        })
        .await;
    assert_eq!(flow["status"], "DOWN", "{flow}");
    let history = api.history("refused").await.to_string();
    assert!(history.contains("TABLE_FULL"), "{history}");
    // A DOWN flow is tried again after a while (5 s, then longer): between two tries no
    // switch holds anything of it.
    crate::support::eventually(
        Duration::from_secs(20),
        "nothing left on any switch",
        || async {
            (1..=SWITCHES)
                .all(|n| ovs.hubspoke_rules(n).is_empty() && ovs.dump_meters(n).is_empty())
                .then_some(())
        },
    )
    .await;
}

/// `hubspoke speaker` as a process of its own over Kafka.
fn kafka_speaker(kafka: &str, speaker: SocketAddr) -> crate::support::Process {
    let speaker = speaker.to_string();
    crate::support::Process::start(&[
        "speaker",
        "--kafka",
        kafka,
        "--listen",
        "127.0.0.1:0",
        "--openflow-listen",
        &speaker,
    ])
}

/// Over Kafka every part is a process: the speaker killed with SIGKILL, then the topology.
/// Frames of UP flows keep flowing while either is dead; after each restart the switches
/// (reconnected, or known to the restarted topology) are synced, what changed meanwhile is
/// repaired, and new flows still come up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_kafka_the_speaker_or_the_topology_dies_and_the_data_plane_does_not_notice() {
    let broker = crate::support::Broker::start("openflow");
    let kafka = broker.address.as_str();
    let speaker: SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .expect("an address");
    let mut topology = crate::support::Process::start(&["topology", "--kafka", kafka]);
    let mut speaker_process = kafka_speaker(kafka, speaker);
    let nb = crate::support::kafka_nb(kafka);
    let api = Api::new(nb.url(), nb.url());
    let ovs = Ovs::start(GRID, speaker);
    api.wait_for_network(SWITCHES as usize, GRID_ISLS).await;
    let flows = create_up(&api, 10).await;
    frames_flow_both_ways(&ovs, &flows);

    speaker_process.kill();
    frames_flow_both_ways(&ovs, &flows);
    let (src, dst) = ends(&flows[1]);
    ovs.ofctl(&[
        "del-flows",
        "--strict",
        &format!("s{}", src.0),
        &format!("priority=32768,in_port={},dl_vlan={}", src.1, src.2),
    ]);
    let _speaker_again = kafka_speaker(kafka, speaker);
    ovs.reconnect();
    crate::support::eventually(Duration::from_secs(60), "the lost rule back", || async {
        ovs.expect_delivered(src, dst).ok()
    })
    .await;
    switches_validate(&api, SWITCHES, Duration::from_secs(30)).await;

    topology.kill();
    frames_flow_both_ways(&ovs, &flows);
    let _topology_again = crate::support::Process::start(&["topology", "--kafka", kafka]);
    api.flows_when(flows.len(), ALL_UP, "every flow UP", |f| {
        f["status"] == "UP"
    })
    .await;
    let more = api.create_and_wait_up(&flow_body(41)).await;
    frames_flow_both_ways(&ovs, &flows);
    frames_flow_both_ways(&ovs, &[more]);
    switches_validate(&api, SWITCHES, Duration::from_secs(30)).await;
}

/// The README's walk-through on Open vSwitch, its lines run as written (but for the ports and
/// directories, which are this test's own), against `hubspoke up --switches openflow`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walk_through_on_open_vswitch() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let block = readme
        .split("<!-- openflow walk-through -->")
        .nth(1)
        .and_then(|rest| rest.split("```sh\n").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("the walk-through's block in README.md");
    let speaker: SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .expect("an address");
    let hub = Hubspoke::up(&up_args(&speaker.to_string()));
    let scratch = tempfile::tempdir().expect("a directory");
    let state = scratch.path().join("ovs");
    let script = block
        .lines()
        .filter(|line| !line.starts_with("cargo run"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("localhost:8080", hub.base.trim_start_matches("http://"))
        .replace("127.0.0.1:6653", &speaker.to_string())
        .replace("/tmp/", &format!("{}/", scratch.path().display()));
    let run = std::process::Command::new("timeout")
        .args(["300", "bash", "-euo", "pipefail", "-c", &script])
        .env("OVS_STATE", &state)
        .current_dir(root)
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&run.stdout);
    if !run.status.success() {
        let _ = std::process::Command::new(root.join("scripts/ovs.sh"))
            .args(["stop", "--dir"])
            .arg(&state)
            .status();
        panic!(
            "the walk-through failed ({}):\n{stdout}\n{}",
            run.status,
            String::from_utf8_lossy(&run.stderr)
        );
    }
    assert_eq!(
        stdout.matches(r#""ping_success":true"#).count(),
        2,
        "the ping arrived both ways: {stdout}"
    );
    assert!(
        stdout.contains("meter:32") && stdout.contains("dl_vlan=100"),
        "the ingress rule dumped: {stdout}"
    );
    assert!(
        stdout.contains(r#""missing":[],"misconfigured":[]"#) && stdout.contains(r#""excess":[]"#),
        "the validation is clean: {stdout}"
    );
    let left = crate::support::ovs::read_pcap(&scratch.path().join("s9-p10.pcap"));
    assert!(
        left.iter().any(|frame| frame.has_vlan(200)),
        "the frame left s9 port 10 with VLAN 200: {left:?}"
    );
}
