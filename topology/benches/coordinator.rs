//! The coordinator with 1,000,000 pending deadlines: what registering, cancelling and firing
//! a batch of deadlines costs per deadline.
//!
//! - `coordinator/dataflow/*` drives the real coordinator operator
//!   ([`coordinator_operator`]) in a one-worker timely dataflow: requests go in through an
//!   input, the time advances, and the worker steps until a probe on the operator's output
//!   has passed the time (so a batch is timed until every request is applied, or every
//!   timeout emitted).
//! - `coordinator/table/*` is the same on the [`DeadlineTable`] alone, to split the operator's
//!   and timely's share from the table's.
//!
//! The pending deadlines look like the speaker's command timers (six per flow, keyed by
//! command id) spread over 30,000 distinct milliseconds, as 30 s of deadlines at ~33 per ms.
//!
//! `cargo bench -p hubspoke-topology --bench coordinator`

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};
use hubspoke_speaker::deadline::{CommandTimer, DeadlineRequest};
use hubspoke_topology::coordinator::{coordinator_operator, Deadline, DeadlineTable, TimerKey};
use hubspoke_topology::dataflow::Time;
use hubspoke_topology::metrics::Metrics;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::core::input::Handle as InputHandle;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::operators::{Input, Probe};

/// Deadlines pending throughout.
const PENDING: u64 = 1_000_000;
/// Distinct times the pending deadlines are spread over.
const SPREAD_MS: u64 = 30_000;
/// Where the pending deadlines start: far beyond any time the benchmark reaches.
const FAR_MS: u64 = 1 << 40;
/// Deadlines registered, cancelled or fired per measured batch.
const BATCH: u64 = 10_000;
/// Distinct times a fired batch is spread over.
const FIRE_SPREAD_MS: u64 = 10;

/// The `n`th speaker timer: flow `n / 6`, its command `n % 6`; `tag` tells batches apart.
fn key(tag: &str, n: u64) -> TimerKey {
    let flow_id = format!("{tag}flow-{:08}", n / 6);
    TimerKey::Command(CommandTimer {
        command_id: format!("{flow_id}:1700000000000:{}", n % 6),
        flow_id,
    })
}

fn register(key: TimerKey, at_ms: u64) -> Deadline {
    DeadlineRequest::Register {
        key,
        generation: 1,
        at_ms,
    }
}

fn cancel(key: TimerKey) -> Deadline {
    DeadlineRequest::Cancel { key, generation: 1 }
}

/// Registrations of `count` deadlines tagged `tag` at `FAR_MS` + (spread over `SPREAD_MS`).
fn far_registrations(tag: &str, count: u64) -> Vec<Deadline> {
    (0..count)
        .map(|n| register(key(tag, n), FAR_MS + n % SPREAD_MS))
        .collect()
}

/// Registrations of `keys`, far in the future.
fn far_registrations_of(keys: &[TimerKey]) -> Vec<Deadline> {
    keys.iter()
        .enumerate()
        .map(|(n, k)| register(k.clone(), FAR_MS + n as u64 % SPREAD_MS))
        .collect()
}

/// Where a measured batch of requests goes: the table alone, or the operator in its dataflow.
trait Coordinator {
    fn apply(&mut self, requests: Vec<Deadline>);
}

struct TableAlone(DeadlineTable);

impl Coordinator for TableAlone {
    fn apply(&mut self, requests: Vec<Deadline>) {
        for request in requests {
            black_box(self.0.apply(0, request));
        }
    }
}

struct InDataflow<'w> {
    rig: Rig,
    worker: &'w mut timely::worker::Worker,
}

impl Coordinator for InDataflow<'_> {
    fn apply(&mut self, requests: Vec<Deadline>) {
        self.rig.run(self.worker, requests);
    }
}

/// Registering a batch (then cancelling it, untimed), and cancelling a batch (registered
/// untimed first), with the pending deadlines in place.
fn register_and_cancel_benches(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    batch_keys: &[TimerKey],
    coordinator: &mut impl Coordinator,
) {
    let cancels = || batch_keys.iter().cloned().map(cancel).collect::<Vec<_>>();
    group.bench_function("register_10k_with_1M_pending", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let requests = far_registrations_of(batch_keys);
                let start = Instant::now();
                coordinator.apply(requests);
                spent += start.elapsed();
                coordinator.apply(cancels());
            }
            spent
        })
    });
    group.bench_function("cancel_10k_with_1M_pending", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                coordinator.apply(far_registrations_of(batch_keys));
                let requests = cancels();
                let start = Instant::now();
                coordinator.apply(requests);
                spent += start.elapsed();
            }
            spent
        })
    });
}

fn table_benches(c: &mut Criterion) {
    let mut table = DeadlineTable::default();
    for request in far_registrations("", PENDING) {
        table.apply(0, request);
    }
    assert_eq!(table.len() as u64, PENDING);
    let batch_keys: Vec<TimerKey> = (0..BATCH).map(|n| key("batch-", n)).collect();

    let mut group = c.benchmark_group("coordinator/table");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(BATCH));
    let mut alone = TableAlone(table);
    register_and_cancel_benches(&mut group, &batch_keys, &mut alone);
    let TableAlone(mut table) = alone;
    group.bench_function("fire_10k_with_1M_pending", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                for (n, k) in batch_keys.iter().enumerate() {
                    table.apply(0, register(k.clone(), 1 + n as u64 % FIRE_SPREAD_MS));
                }
                let start = Instant::now();
                let mut fired = 0;
                for at in 1..=FIRE_SPREAD_MS {
                    fired += black_box(table.take_due(at)).len();
                }
                spent += start.elapsed();
                assert_eq!(fired as u64, BATCH);
            }
            spent
        })
    });
    group.finish();
    assert_eq!(table.len() as u64, PENDING, "the pending deadlines stay");
}

/// The coordinator in a one-worker dataflow, fed through an input, its output counted.
struct Rig {
    input: InputHandle<Time, CapacityContainerBuilder<Vec<Deadline>>>,
    probe: ProbeHandle<Time>,
    fired: Rc<Cell<u64>>,
}

impl Rig {
    fn build(worker: &mut timely::worker::Worker) -> Rig {
        let probe = ProbeHandle::new();
        let fired = Rc::new(Cell::new(0));
        let counter = fired.clone();
        let metrics = Arc::new(Metrics::default());
        let input = worker.dataflow::<Time, _, _>(|scope| {
            let (input, requests) = scope.new_input::<Vec<Deadline>>();
            coordinator_operator(requests, metrics)
                .probe_with(&probe)
                .sink(Pipeline, "Count", move |(input, _frontier)| {
                    input.for_each_stamp(|_capability, data| {
                        let timeouts: usize = data.map(|batch| batch.drain(..).count()).sum();
                        counter.set(counter.get() + timeouts as u64);
                    });
                });
            input
        });
        Rig {
            input,
            probe,
            fired,
        }
    }

    /// Sends `requests` at the current time, then moves to the next time and steps the worker
    /// until the coordinator's output has passed it.
    fn run(&mut self, worker: &mut timely::worker::Worker, requests: Vec<Deadline>) {
        for request in requests {
            self.input.send(request);
        }
        self.advance(worker, *self.input.time() + 1);
    }

    fn advance(&mut self, worker: &mut timely::worker::Worker, to: Time) {
        self.input.advance_to(to);
        while self.probe.less_than(&to) {
            worker.step();
        }
    }
}

fn dataflow_benches(c: &mut Criterion, worker: &mut timely::worker::Worker) {
    let mut rig = Rig::build(worker);
    let start = Instant::now();
    for chunk in far_registrations("", PENDING).chunks(100_000) {
        rig.run(worker, chunk.to_vec());
    }
    println!(
        "coordinator: {PENDING} deadlines registered through the dataflow in {:?}",
        start.elapsed()
    );
    let batch_keys: Vec<TimerKey> = (0..BATCH).map(|n| key("batch-", n)).collect();

    let mut group = c.benchmark_group("coordinator/dataflow");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(BATCH));
    let mut operator = InDataflow { rig, worker };
    register_and_cancel_benches(&mut group, &batch_keys, &mut operator);
    let InDataflow { mut rig, worker } = operator;
    group.bench_function("fire_10k_with_1M_pending", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                // Due over the next FIRE_SPREAD_MS milliseconds after the registration's time.
                let now = *rig.input.time();
                let registrations = batch_keys
                    .iter()
                    .enumerate()
                    .map(|(n, k)| register(k.clone(), now + 2 + n as u64 % FIRE_SPREAD_MS))
                    .collect();
                rig.run(worker, registrations);
                let before = rig.fired.get();
                let start = Instant::now();
                rig.advance(worker, now + 2 + FIRE_SPREAD_MS);
                spent += start.elapsed();
                assert_eq!(rig.fired.get() - before, BATCH, "the whole batch fired");
            }
            spent
        })
    });
    group.finish();
    assert_eq!(
        rig.fired.get() % BATCH,
        0,
        "only whole batches of the fire benchmark fired, none of the pending deadlines"
    );
    // The pending deadlines would all fire once the input closes: drop the dataflow instead.
    for dataflow in worker.installed_dataflows() {
        worker.drop_dataflow(dataflow);
    }
}

fn main() {
    timely::execute_directly(|worker| {
        let mut criterion = Criterion::default().configure_from_args();
        table_benches(&mut criterion);
        dataflow_benches(&mut criterion, worker);
        criterion.final_summary();
    });
}
