//! Flow creates per second through the real topology (bus source, hub, allocator, network
//! view, speaker, coordinator, outbox and flow log) in process, with the switch simulator
//! answering at zero latency, on `linear:3` (every flow crosses 3 switches: 6 rules, 12
//! install/verify commands).
//!
//! Each iteration starts a fresh embedded topology (not timed: the transit VLAN pool allows
//! ~4,093 flows per topology), brings one warm-up flow UP, then submits `FLOWS` creates at
//! once and is timed until every one of them is UP (its UP record made durable and published).
//!
//! - `durable`: as the product runs, the flow log fsyncs every append and the switches'
//!   tables are written through to their redb file;
//! - `no_fsync`: the flow log commits without fsync and the switches' tables stay in memory,
//!   to show what the fsync-bound parts cost.
//!
//! Wall-clock throughput depends on whatever else the machine runs: after each benchmark the
//! CPU time per create of the timed parts is printed too, by thread kind, with the time the
//! threads waited for a CPU.
//!
//! `cargo bench -p hubspoke --bench hub_throughput`

#[path = "support/embedded.rs"]
mod embedded;

use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use embedded::{creates, CpuTimes, Rig};
use hubspoke::embedded::Storage;
use hubspoke_topology::dataflow::Settings;

/// Creates per iteration: as many as one topology's transit VLANs allow, with room to spare.
const FLOWS: usize = 4_000;

fn hub_throughput(c: &mut Criterion) {
    let requests = creates(0..FLOWS);
    let mut group = c.benchmark_group("hub_throughput");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(15))
        .throughput(Throughput::Elements(FLOWS as u64));
    for (storage, label) in [
        (Storage::Durable, "durable"),
        (Storage::WithoutFsync, "no_fsync"),
    ] {
        for workers in [1, 2] {
            let (function, parameter) = (
                format!("creates_linear3/{label}"),
                format!("{workers}_workers"),
            );
            let id = BenchmarkId::new(&function, &parameter);
            let (mut cpu, mut created) = (CpuTimes::default(), 0);
            group.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        let mut rig = Rig::start(workers, storage, Settings::default());
                        let (start, cpu_before) = (Instant::now(), CpuTimes::now());
                        rig.submit(&requests);
                        rig.wait_until(Duration::from_secs(300), "every flow UP", |p| {
                            p.up >= FLOWS
                        });
                        spent += start.elapsed();
                        cpu.add(CpuTimes::now().since(cpu_before));
                        created += FLOWS as u64;
                        rig.stop();
                    }
                    spent
                })
            });
            println!(
                "hub_throughput/{function}/{parameter}: per create {}",
                cpu.per_item(created)
            );
        }
    }
    group.finish();
}

criterion_group!(benches, hub_throughput);
criterion_main!(benches);
