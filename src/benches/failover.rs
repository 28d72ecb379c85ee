//! Fail-over of protected flows against an ordinary reroute of the same flows, in one run,
//! through the real topology in process (the embedded default, durable flow log, the switch
//! simulator answering at zero latency).
//!
//! On `ring:4`, `FLOWS` flows from switch 1 to switch 2 take the direct link 1-2; then that
//! link fails. Measured per flow: from the link-down events' publication on `sb.events` to the
//! flow's record saved UP on its new path (published once durable). Protected flows are
//! swapped onto their protected path 1-4-3-2 (two ingress rules installed and verified, no
//! path search); unprotected ones are rerouted make-before-break onto it (a path search, every
//! rule new, then the old ones removed). The reroute throttle is 1 ms here, so the comparison
//! is of the work, not the wait: the product's default waits 500 ms for the network to settle
//! before a reroute, and a swap never waits. The time a flow completes is seen with a
//! resolution of about 1 ms (the bench polls the bus).
//!
//! Each round starts fresh topologies, protected first, then unprotected; the medians of the
//! rounds are printed last.
//!
//! `cargo bench -p hubspoke --bench failover`

#[path = "support/embedded.rs"]
mod embedded;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use embedded::Rig;
use hubspoke::embedded::Storage;
use hubspoke_bus::{publish_network_events, NetworkEvents};
use hubspoke_fsm::{
    Envelope, FlowEndpoint, FlowEvent, FlowRequest, FlowStatus, NbRequest, SwitchId,
};
use hubspoke_topology::dataflow::Settings;
use hubspoke_topology::hub::RerouteThrottle;

const FLOWS: usize = 200;
const ROUNDS: usize = 5;

fn create(n: usize, protected: bool) -> Envelope<NbRequest> {
    let endpoint = |switch| FlowEndpoint {
        switch_id: SwitchId(switch),
        port_number: 10,
        vlan_id: (1 + n) as u16,
    };
    let flow_id = format!("failover-{n:04}");
    let flow = FlowRequest {
        flow_id,
        source: endpoint(1),
        destination: endpoint(2),
        maximum_bandwidth: 1000,
        allocate_protected_path: protected,
        ..Default::default()
    };
    embedded::create_envelope(flow)
}

/// Each flow's time from the failure of link 1-2 to its record UP off that link.
fn fail_over(protected: bool) -> Vec<Duration> {
    let settings = Settings {
        reroute: RerouteThrottle {
            delay_ms: 1,
            max_delay_ms: 1,
        },
        ..Settings::default()
    };
    let mut rig = Rig::start_on("ring:4", 2, Storage::Durable, settings);
    let creates: Vec<_> = (0..FLOWS).map(|n| create(n, protected)).collect();
    rig.submit(&creates);
    rig.wait_until(Duration::from_secs(60), "every flow UP", |p| p.up >= FLOWS);
    rig.idle(Duration::from_millis(300), |_| {});

    let fabric = rig.embedded.fabric().expect("the simulator").clone();
    let (_, events) = fabric
        .lock()
        .change(|f| f.fail_link(SwitchId(1), SwitchId(2)))
        .expect("link 1-2 fails");
    let failed_at = Instant::now();
    let sb_events: NetworkEvents = rig.embedded.bus.sb_events.clone();
    publish_network_events(&sb_events, events, "bench");
    let mut moved: HashMap<String, Duration> = HashMap::new();
    let limit = Duration::from_secs(60);
    while moved.len() < FLOWS {
        assert!(
            failed_at.elapsed() < limit,
            "{} of {FLOWS} moved",
            moved.len()
        );
        let taken = rig.drain(|event| {
            if let FlowEvent::Updated { flow } = &event.payload {
                let off_the_link = flow
                    .resources
                    .as_ref()
                    .is_some_and(|r| r.forward_path.len() > 1);
                if flow.status == FlowStatus::Up
                    && off_the_link
                    && flow.flow_id().starts_with("failover-")
                {
                    moved
                        .entry(flow.flow_id().to_string())
                        .or_insert_with(|| failed_at.elapsed());
                }
            }
        });
        if taken == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    rig.stop();
    let mut times: Vec<Duration> = moved.into_values().collect();
    times.sort();
    times
}

fn median(sorted: &[Duration]) -> Duration {
    sorted[sorted.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is understood.
    let mut rounds: HashMap<bool, (Vec<Duration>, Vec<Duration>)> = HashMap::new();
    for round in 1..=ROUNDS {
        for protected in [true, false] {
            let times = fail_over(protected);
            let (per_flow, last) = (median(&times), times[times.len() - 1]);
            let kind = if protected { "swap   " } else { "reroute" };
            println!(
                "round {round} {kind}: {FLOWS} flows, median {:.1} ms, last {:.1} ms",
                ms(per_flow),
                ms(last)
            );
            let entry = rounds.entry(protected).or_default();
            entry.0.push(per_flow);
            entry.1.push(last);
        }
    }
    for protected in [true, false] {
        let (mut medians, mut lasts) = rounds.remove(&protected).unwrap_or_default();
        medians.sort();
        lasts.sort();
        let kind = if protected {
            "swap onto the protected path"
        } else {
            "reroute (throttle 1 ms)"
        };
        println!(
            "{kind}: median of {ROUNDS} rounds: per-flow median {:.1} ms, all {FLOWS} flows moved {:.1} ms",
            ms(median(&medians)),
            ms(median(&lasts))
        );
    }
}
