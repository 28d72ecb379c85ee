//! The cost of one state-machine step: whole operations (create, delete, reroute) driven
//! through the pure machines, with every allocation and every southbound command answered
//! at once with success, as a perfect topology would. Reported per event handled
//! (`Throughput::Elements`): the machine's own work, its history entries and the actions it
//! asks for, without the hub's bookkeeping around it (the hub throughput bench has that).
//!
//! `cargo bench -p hubspoke-fsm --bench steps`

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hubspoke_fsm::create::FlowCreate;
use hubspoke_fsm::delete::FlowDelete;
use hubspoke_fsm::network::Network;
use hubspoke_fsm::operation::{Action, OpContext, OpEvent, Timeouts};
use hubspoke_fsm::reroute::{FlowReroute, RerouteKind};
use hubspoke_fsm::{FlowEndpoint, FlowRecord, FlowRequest, FlowStatus, Resources, SwitchId};
use statig::blocking::{IntoStateMachine, IntoStateMachineExt, State, StateMachine, Superstate};

/// A 1 Mbit/s flow from port 40 VLAN 10 of switch 1 to port 41 VLAN 20 of switch 3.
fn request() -> FlowRequest {
    let endpoint = |switch, port_number, vlan_id| FlowEndpoint {
        switch_id: SwitchId(switch),
        port_number,
        vlan_id,
    };
    FlowRequest {
        flow_id: "bench-flow-1".into(),
        source: endpoint(1, 40, 10),
        destination: endpoint(3, 41, 20),
        maximum_bandwidth: 1000,
        description: String::new(),
        ..Default::default()
    }
}

/// Resources on the shortest path from switch 1 to switch 3 of `network` that avoids
/// `avoid` (3 switches on `linear:3` and on `ring:4`).
fn resources(network: &str, avoid: Option<u64>, cookie: u64) -> Resources {
    let network = Network::generate(network)
        .expect("a valid network spec")
        .expect("a generated network");
    let path = network
        .shortest_path(SwitchId(1), SwitchId(3), 0, |isl| {
            let avoided = avoid.is_some_and(|a| isl.src_switch.0 == a || isl.dst_switch.0 == a);
            (!avoided).then_some(u64::MAX)
        })
        .expect("a path from switch 1 to switch 3");
    assert_eq!(path.len(), 2, "a 3-switch path");
    Resources {
        cookie,
        transit_vlans: vec![2; path.len()],
        forward_meter: Some(32),
        reverse_meter: Some(32),
        forward_path: path,
        protected: None,
    }
}

/// Runs a machine to its end in a perfect world: every allocation answered with `allocated`,
/// every command with success, each event a millisecond after the last. Returns how many
/// events the machine handled.
fn run<M>(machine: &mut StateMachine<M>, allocated: &Resources) -> usize
where
    for<'evt, 'ctx> M: IntoStateMachine<Event<'evt> = OpEvent, Context<'ctx> = OpContext>,
    M::State: State<M>,
    for<'sub> M::Superstate<'sub>: Superstate<M>,
{
    let mut events = VecDeque::from([OpEvent::Start]);
    let mut handled = 0;
    let mut now_ms = 1_000;
    while let Some(event) = events.pop_front() {
        now_ms += 1;
        let mut context = OpContext::new(now_ms);
        context.handling(&event);
        machine.handle_with_context(&event, &mut context);
        handled += 1;
        for action in context.actions {
            match action {
                Action::Allocate(_) | Action::Reallocate(_) => {
                    events.push_back(OpEvent::Allocated(allocated.clone()))
                }
                Action::Send { command_id, .. } => {
                    events.push_back(OpEvent::CommandSucceeded { command_id })
                }
                other => {
                    black_box(other);
                }
            }
        }
    }
    handled
}

fn up_record(resources: Resources) -> FlowRecord {
    let mut record = FlowRecord::new(request(), 100);
    record.status = FlowStatus::Up;
    record.resources = Some(resources);
    record
}

fn steps(c: &mut Criterion) {
    let timeouts = Timeouts::default();
    let mut group = c.benchmark_group("fsm");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));

    // Create: Start, Allocated, 4 non-ingress installs, 4 verifies, 2 ingress installs,
    // 2 verifies → UP.
    let allocated = resources("linear:3", None, 1);
    let new_record = FlowRecord::new(request(), 100);
    let create = || FlowCreate::new(new_record.clone(), timeouts, "bench-flow-1:100".into());
    let mut machine = create().state_machine();
    let events = run(&mut machine, &allocated);
    assert!(machine.state().is_finished(), "the create ends");
    assert_eq!(events, 14, "a 3-switch create takes 14 events");
    group.throughput(Throughput::Elements(events as u64));
    group.bench_function("create_3_switch/per_event", |b| {
        b.iter(|| {
            let mut machine = create().state_machine();
            black_box(run(&mut machine, &allocated))
        })
    });

    // Delete: Start, 6 removes → gone.
    let installed = up_record(allocated.clone());
    let delete = || FlowDelete::new(installed.clone(), timeouts, "bench-flow-1:200".into());
    let mut machine = delete().state_machine();
    let events = run(&mut machine, &allocated);
    assert!(machine.state().is_finished(), "the delete ends");
    group.throughput(Throughput::Elements(events as u64));
    group.bench_function("delete_3_switch/per_event", |b| {
        b.iter(|| {
            let mut machine = delete().state_machine();
            black_box(run(&mut machine, &allocated))
        })
    });

    // Manual reroute (make-before-break) from 1 → 2 → 3 to 1 → 4 → 3 of `ring:4`: Start,
    // Allocated, the new path's installs and verifies, the ingress swap, the old rules' removal.
    let on_ring = up_record(resources("ring:4", Some(4), 1));
    let detour = resources("ring:4", Some(2), 2);
    let reroute = || {
        FlowReroute::new(
            on_ring.clone(),
            RerouteKind::Manual,
            timeouts,
            "bench-flow-1:300".into(),
        )
    };
    let mut machine = reroute().state_machine();
    let events = run(&mut machine, &detour);
    assert!(machine.state().is_finished(), "the reroute ends");
    group.throughput(Throughput::Elements(events as u64));
    group.bench_function("reroute_3_switch/per_event", |b| {
        b.iter(|| {
            let mut machine = reroute().state_machine();
            black_box(run(&mut machine, &detour))
        })
    });
    group.finish();
}

criterion_group!(benches, steps);
criterion_main!(benches);
