//! End to end over Kafka: a real broker (tansu) and `hubspoke sb`, `topology` and `nb` as
//! separate processes run the same 50-flow scenario as the embedded test.

use crate::support::flows::{fifty_flows_up_exact_then_clean, flow_body};
use crate::support::protected;
use crate::support::reroute::{two_busiest_links_fail, update_then_reroute};
use crate::support::swap_endpoints;
use crate::support::{
    assert_latencies_measured, edges, free_port, load_report, Broker, Hubspoke, Process,
};

/// Reads `topic` from the beginning until `count` messages arrived (or panics after `limit`);
/// their payloads.
fn read_topic(kafka: &str, topic: &str, count: usize, limit: std::time::Duration) -> Vec<Vec<u8>> {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka)
        .set("group.id", format!("test-reader-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "1")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let start = std::time::Instant::now();
    let mut payloads = Vec::new();
    while payloads.len() < count {
        assert!(
            start.elapsed() < limit,
            "only {} of {count} messages on {topic}",
            payloads.len()
        );
        if let Some(Ok(message)) = consumer.poll(std::time::Duration::from_millis(200)) {
            payloads.push(message.payload().unwrap_or_default().to_vec());
        }
    }
    payloads
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_flows_over_kafka_with_separate_processes() {
    let broker = Broker::start("fifty-flows");
    let kafka = broker.address.as_str();
    let _topology = Process::start(&["topology", "--kafka", kafka, "--workers", "2"]);
    let (_sb, _nb, api) = edges(kafka, "grid:3x3");
    fifty_flows_up_exact_then_clean(&api).await;
}

/// Over Kafka, the network view and reroutes work as in one process: two links fail under
/// 100 flows (see `support::reroute::two_busiest_links_fail`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_failures_reroute_over_kafka() {
    let broker = Broker::start("reroutes");
    let kafka = broker.address.as_str();
    let _topology = Process::start(&[
        "topology",
        "--kafka",
        kafka,
        "--workers",
        "2",
        "--reroute-delay-ms",
        "200",
    ]);
    let (_sb, _nb, api) = edges(kafka, "grid:3x3");
    two_busiest_links_fail(&api, 100).await;
}

/// Over Kafka, 50 protected flows fail over onto their protected paths with only their ingress
/// rules changed, then are protected again (see `support::protected`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_flows_fail_over_over_kafka() {
    let broker = Broker::start("protected");
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
    let (_sb, _nb, api) = edges(kafka, protected::NETWORK);
    protected::fifty_protected_flows_fail_over_then_are_protected_again(&api).await;
}

/// Over Kafka, two flows on different hubs exchange their destinations as one operation, or
/// neither does (see `support::swap_endpoints`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_flows_swap_endpoints_over_kafka() {
    let broker = Broker::start("swap-endpoints");
    let kafka = broker.address.as_str();
    let _topology = Process::start(&["topology", "--kafka", kafka, "--workers", "2"]);
    let (_sb, _nb, api) = edges(kafka, swap_endpoints::NETWORK);
    swap_endpoints::two_flows_exchange_destinations_or_neither_does(&api).await;
}

/// A request to an idle two-worker topology goes through at once. Over Kafka a worker hears
/// only of its own partitions; the other one, parked, held the frontier back, so the first
/// create after a quiet spell waited for that worker's next wake-up (nb answered 504 with its
/// default 10 s timeout) and then failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_two_worker_topology_answers_the_first_request_at_once() {
    let broker = Broker::start("first-request");
    let kafka = broker.address.as_str();
    let _topology = Process::start(&["topology", "--kafka", kafka, "--workers", "2"]);
    let (_sb, _nb, api) = edges(kafka, "grid:3x3");
    api.wait_for_grid().await;
    // Longer than the sources' grace period after their last input: both workers park.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    for n in 0..3 {
        api.create(&flow_body(n)).await;
        // Held back, the create's switch commands went out late, their deadlines had long
        // passed on the logical clock, and the flow went DOWN although every switch answered.
        let limit = std::time::Duration::from_secs(60);
        let flow = api
            .flow_when_within(limit, &format!("e2e-{n}"), "settled", |f| {
                f["status"] != "IN_PROGRESS"
            })
            .await;
        assert_eq!(flow["status"], "UP", "{flow}");
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

/// An update and a manual reroute over Kafka (see `support::reroute::update_then_reroute`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_and_a_reroute_over_kafka() {
    let broker = Broker::start("update");
    let kafka = broker.address.as_str();
    let _topology = Process::start(&["topology", "--kafka", kafka]);
    let (_sb, _nb, api) = edges(kafka, "grid:3x3");
    update_then_reroute(&api).await;
}

/// Bytes that are no envelope go to `hubspoke.errors` with the reason and the original bytes,
/// and the topology goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_bus_is_dead_lettered_and_the_topology_goes_on() {
    use base64::Engine;
    use hubspoke_fsm::Envelope;
    use hubspoke_kafka::DeadLetter;
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use std::time::Duration;

    let broker = Broker::start("garbage");
    let kafka = broker.address.as_str();
    let _topology = Process::start(&["topology", "--kafka", kafka]);
    let (_sb, _nb, api) = edges(kafka, "linear:2");

    let garbage: &[u8] = b"\x00{\"this is\": not an envelope";
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka)
        .create()
        .expect("producer");
    producer
        .send(
            BaseRecord::to("hubspoke.nb.requests")
                .key("garbage")
                .payload(garbage),
        )
        .map_err(|(e, _)| e)
        .expect("produce garbage");
    producer.flush(Duration::from_secs(10)).expect("flush");

    let dead = read_topic(kafka, "hubspoke.errors", 1, Duration::from_secs(60));
    let envelope: Envelope<DeadLetter> =
        serde_json::from_slice(&dead[0]).expect("dead letters are envelopes");
    let letter = envelope.payload;
    assert!(
        letter
            .reason
            .contains("not a valid hubspoke.nb.requests envelope"),
        "{letter:?}"
    );
    assert_eq!(letter.topic, "hubspoke.nb.requests");
    assert_eq!(letter.key.as_deref(), Some("garbage"));
    let original = base64::engine::general_purpose::STANDARD
        .decode(&letter.original_base64)
        .expect("base64");
    assert_eq!(original, garbage);

    api.wait_for_network(2, 2).await;
    api.create_and_wait_up(&serde_json::json!({
        "flow_id": "after-garbage",
        "source": {"switch_id": "00:00:00:00:00:00:00:01", "port_number": 10},
        "destination": {"switch_id": "00:00:00:00:00:00:00:02", "port_number": 10},
        "maximum_bandwidth": 1000,
    }))
    .await;
}

/// Each Kafka process exits cleanly on SIGTERM.
#[test]
fn sigterm_stops_every_kafka_process() {
    use std::time::Duration;
    let broker = Broker::start("sigterm");
    let kafka = broker.address.as_str();
    let mut processes = [
        Process::start(&["sb", "--kafka", kafka, "--listen", "127.0.0.1:0"]),
        Process::start(&["topology", "--kafka", kafka, "--workers", "2"]),
        Process::start(&["nb", "--kafka", kafka, "--listen", "127.0.0.1:0"]),
    ];
    for process in &mut processes {
        let what = process.first_line.clone();
        let status = process.terminate(Duration::from_secs(15));
        assert!(
            status.is_some_and(|s| s.success()),
            "{what}: no clean exit on SIGTERM: {status:?}"
        );
    }
}

/// Timely's cluster mode: two topology processes of two workers each (on loopback, with a host
/// file) share the partitions and the flows, and serve the same 50-flow scenario.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_timely_processes_of_two_workers_serve_fifty_flows() {
    let broker = Broker::start("cluster");
    let kafka = broker.address.as_str();
    let hostfile = std::env::temp_dir().join(format!("hubspoke-hostfile-{}", std::process::id()));
    std::fs::write(
        &hostfile,
        format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port()),
    )
    .expect("hostfile");
    let hostfile_arg = hostfile.to_string_lossy().to_string();
    let topology = |index: &str| {
        Process::spawn(&[
            "topology",
            "--kafka",
            kafka,
            "--workers",
            "2",
            "--process",
            index,
            "--hostfile",
            &hostfile_arg,
        ])
    };
    let mut processes = [topology("0"), topology("1")];
    for process in &mut processes {
        process.wait_first_line();
        assert!(
            process.first_line.contains("of 2"),
            "{}",
            process.first_line
        );
    }
    let (_sb, _nb, api) = edges(kafka, "grid:3x3");
    fifty_flows_up_exact_then_clean(&api).await;
    let _ = std::fs::remove_file(&hostfile);
}

/// `sb.events` is the network's changelog: a starting topology reads all of it (every time,
/// so a restarted one knows the whole network again), then its first worker goes on from
/// where that read ended and sees only what comes after; another worker never sees it.
#[test]
fn a_restarted_topology_reads_the_whole_network_again() {
    use hubspoke_bus::{Inbound, InboundSource, Publish};
    use hubspoke_fsm::{Envelope, SbEvent, SwitchId};
    use hubspoke_kafka::{
        ensure_topics, read_to_end, KafkaInbound, KafkaProducer, KafkaSettings, TopicName,
        WorkerSeat,
    };
    use std::time::{Duration, Instant};

    let broker = Broker::start("network-changelog");
    let settings = KafkaSettings::new(&broker.address);
    ensure_topics(&settings).expect("topics");
    let producer = KafkaProducer::new(&settings).expect("producer");
    let topic = settings.topic(TopicName::SbEvents);
    let events = producer.publisher::<SbEvent>(topic.clone());
    let announce = |n: u64| {
        let switch_id = SwitchId(n);
        events.publish(Envelope::new(
            "sim",
            switch_id.to_string(),
            1,
            SbEvent::SwitchAdded {
                switch_id,
                ports: 48,
                port_numbers: Vec::new(),
            },
        ));
        producer.flush(Duration::from_secs(10));
    };
    (1..=3).for_each(announce);
    let snapshot = || {
        let (events, end) = read_to_end::<SbEvent>(&settings, &topic).expect("read");
        let mut switches: Vec<SwitchId> = events.iter().map(|e| e.payload.switch_id()).collect();
        switches.sort();
        (switches, end)
    };
    let all: Vec<SwitchId> = (1..=3).map(SwitchId).collect();
    let (first, end) = snapshot();
    assert_eq!(first, all);
    assert_eq!(snapshot().0, all, "read again after a restart");

    let read_on = |worker: usize, wait: Duration| {
        let seat = WorkerSeat { process: 0, worker };
        let mut inbound =
            KafkaInbound::new(&settings, producer.clone(), seat, &end).expect("consumer");
        let mut switches = Vec::new();
        let start = Instant::now();
        while start.elapsed() < wait {
            inbound.poll(1, 100, &mut |message| {
                if let Inbound::SbEvent(event) = message {
                    switches.push(event.payload.switch_id());
                }
            });
            inbound.handled_before(2);
            if !switches.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        switches
    };
    announce(4);
    assert_eq!(
        read_on(0, Duration::from_secs(30)),
        vec![SwitchId(4)],
        "only what came after the snapshot"
    );
    assert!(read_on(1, Duration::from_secs(3)).is_empty());
}

/// At-least-once: the topology's consumer commits a message only after it is handled. Taken
/// but not handled, it is read again by the next consumer of the group; once handled, never.
#[test]
fn the_topology_commits_offsets_only_after_handling() {
    use hubspoke_bus::{Inbound, InboundSource, Publish};
    use hubspoke_fsm::{Envelope, NbRequest};
    use hubspoke_kafka::{
        ensure_topics, EndOffsets, KafkaInbound, KafkaProducer, KafkaSettings, TopicName,
        WorkerSeat,
    };
    use std::time::{Duration, Instant};

    const SEAT: WorkerSeat = WorkerSeat {
        process: 0,
        worker: 1,
    };
    let broker = Broker::start("offsets");
    let settings = KafkaSettings::new(&broker.address);
    ensure_topics(&settings).expect("topics");
    let producer = KafkaProducer::new(&settings).expect("producer");
    let requests = producer.publisher::<NbRequest>(settings.topic(TopicName::NbRequests));
    for i in 0..3 {
        let flow_id = format!("f{i}");
        requests.publish(Envelope::new(
            "c",
            flow_id.clone(),
            1,
            NbRequest::DeleteFlow { flow_id },
        ));
    }
    producer.flush(Duration::from_secs(10));
    let take = |inbound: &mut KafkaInbound, time: u64, wait: Duration| {
        let mut got: Vec<Inbound> = Vec::new();
        let start = Instant::now();
        while got.len() < 3 && start.elapsed() < wait {
            inbound.poll(time, 100, &mut |message| got.push(message));
            std::thread::sleep(Duration::from_millis(20));
        }
        got.len()
    };

    let mut first =
        KafkaInbound::new(&settings, producer.clone(), SEAT, &EndOffsets::new()).expect("consumer");
    assert_eq!(take(&mut first, 10, Duration::from_secs(30)), 3);
    first.handled_before(10);
    assert!(
        first.has_unhandled(),
        "nothing at time 10 is handled before time 10"
    );
    drop(first);

    let mut second =
        KafkaInbound::new(&settings, producer.clone(), SEAT, &EndOffsets::new()).expect("consumer");
    assert_eq!(
        take(&mut second, 20, Duration::from_secs(30)),
        3,
        "unhandled messages are read again"
    );
    second.handled_before(21);
    assert!(!second.has_unhandled());
    drop(second);

    let mut third =
        KafkaInbound::new(&settings, producer, SEAT, &EndOffsets::new()).expect("consumer");
    assert_eq!(
        take(&mut third, 30, Duration::from_secs(5)),
        0,
        "handled messages are not read again"
    );
}

/// The simulator announces its network on `hubspoke.sb.events` at start, then every change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_announces_the_network_and_its_changes() {
    use hubspoke_fsm::{Envelope, SbEvent};
    use std::time::Duration;

    let broker = Broker::start("sb-events");
    let kafka = broker.address.clone();
    let sb = Process::start(&[
        "sb",
        "--kafka",
        &kafka,
        "--listen",
        "127.0.0.1:0",
        "--network",
        "grid:3x3",
    ]);
    let read = |count: usize| {
        let kafka = kafka.clone();
        tokio::task::spawn_blocking(move || {
            read_topic(&kafka, "hubspoke.sb.events", count, Duration::from_secs(60))
                .iter()
                .map(|p| {
                    serde_json::from_slice::<Envelope<SbEvent>>(p)
                        .expect("network events are envelopes")
                        .payload
                })
                .collect::<Vec<_>>()
        })
    };
    let announced = read(33).await.expect("reader");
    let switches = announced
        .iter()
        .filter(|e| matches!(e, SbEvent::SwitchAdded { .. }))
        .count();
    let isls = announced
        .iter()
        .filter(|e| matches!(e, SbEvent::IslUp { .. }))
        .count();
    assert_eq!(
        (switches, isls),
        (9, 24),
        "grid:3x3 has 9 switches and 12 links, two ISLs each"
    );

    let url = format!(
        "{}/sim/links/00:00:00:00:00:00:00:01/00:00:00:00:00:00:00:02/fail",
        sb.url()
    );
    let response = reqwest::Client::new()
        .post(url)
        .send()
        .await
        .expect("fail a link");
    assert_eq!(response.status(), 200);
    let all = read(35).await.expect("reader");
    let down = all
        .iter()
        .filter(|e| matches!(e, SbEvent::IslDown { .. }))
        .count();
    assert_eq!(down, 2, "a failed link goes down in both directions");
}

/// `hubspoke load --kafka-baseline` measures the broker's bare round trip next to the flows
/// and leaves no round-trip topic behind. The flows go to `hubspoke up`: the baseline only
/// needs the broker.
#[test]
fn the_load_generator_measures_the_kafka_round_trip() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let broker = Broker::start("load-baseline");
    let hub = Hubspoke::up(&[]);
    let report = load_report(&[
        "--url",
        &hub.base,
        "--flows",
        "20",
        "--network-aware",
        "--kafka-baseline",
        &broker.address,
        "--baseline-samples",
        "50",
    ]);
    let baseline = &report["kafka_baseline"];
    assert_eq!(baseline["round_trip"]["count"], 50, "{report}");
    assert_latencies_measured("kafka round trip", &baseline["round_trip"]);
    for ratio in ["create_to_up_ratio_p50", "create_to_up_ratio_p99"] {
        assert!(
            baseline[ratio].as_f64().is_some_and(|r| r > 0.0),
            "{ratio}: {report}"
        );
    }
    assert_eq!(report["create"]["up"], 20, "{report}");

    let run_prefix = report["run_prefix"].as_str().expect("run_prefix");
    let consumer: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", &broker.address)
        .create()
        .expect("client");
    let metadata = consumer
        .fetch_metadata(None, std::time::Duration::from_secs(10))
        .expect("metadata");
    let left: Vec<&str> = metadata
        .topics()
        .iter()
        .map(|t| t.name())
        .filter(|name| name.starts_with(run_prefix))
        .collect();
    assert!(left.is_empty(), "round-trip topics left behind: {left:?}");
}

/// Fencing: a topology is killed, its successor reads the flow log and marks its generation;
/// then a produce of the dead generation lands late, saying the flow is gone. The shim's read
/// model and the next generation's recovery both ignore it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_record_from_a_dead_generation_is_ignored() {
    use hubspoke_bus::clock::now_ms;
    use hubspoke_fsm::{Envelope, FlowEvent, HistoryEntry};
    use hubspoke_kafka::{KafkaProducer, KafkaSettings, TopicName};

    let broker = Broker::start("fence");
    let kafka = broker.address.as_str();
    let mut first = Process::start(&["topology", "--kafka", kafka]);
    let (_sb, _nb, api) = edges(kafka, "grid:3x3");
    api.wait_for_grid().await;
    let body = flow_body(1);
    let id = body["flow_id"].as_str().expect("id").to_string();
    api.create_and_wait_up(&body).await;
    first.kill();
    let mut second = Process::start(&["topology", "--kafka", kafka]);
    api.create_and_wait_up(&flow_body(2)).await;

    let settings = KafkaSettings::new(kafka);
    let producer = KafkaProducer::new(&settings).expect("a producer");
    let topic = settings.topic(TopicName::FlowEvents);
    let send = |correlation_id: &str, epoch: u64, payload: FlowEvent| {
        let mut envelope = Envelope::new(correlation_id, id.as_str(), now_ms(), payload);
        envelope.epoch = epoch;
        let bytes = serde_json::to_vec(&envelope).expect("JSON");
        producer.send_bytes(&topic, &id, correlation_id, &bytes);
    };
    // Generation 1 (dead), late: the flow is gone. Then, to know the shim has read past it on
    // the same partition, a history entry of generation 2 (current).
    send(
        "late",
        1,
        FlowEvent::Removed {
            flow_id: id.clone(),
            version: u64::MAX,
        },
    );
    send(
        "sentinel",
        2,
        FlowEvent::History {
            flow_id: id.clone(),
            entry: HistoryEntry {
                timestamp_ms: 1,
                operation: "fence-test".into(),
                event: "sentinel".into(),
                from_state: String::new(),
                to_state: String::new(),
                details: String::new(),
                correlation_id: "sentinel".into(),
            },
        },
    );
    producer.flush(std::time::Duration::from_secs(5));
    crate::support::eventually(
        std::time::Duration::from_secs(20),
        "the shim to read the sentinel",
        || async {
            let history = api.history(&id).await;
            history.to_string().contains("sentinel").then_some(())
        },
    )
    .await;
    assert_eq!(
        api.flow(&id).await["status"],
        "UP",
        "the late removal was taken"
    );

    // The next generation's recovery skips it too: the flow is there to sync.
    second.kill();
    let _third = Process::start(&["topology", "--kafka", kafka]);
    api.sync(&id).await;
    api.flow_when(&id, "UP after the sync", |f| f["status"] == "UP")
        .await;
}
