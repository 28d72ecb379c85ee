//! Path search on a 1,000-switch network (`grid:25x40`, generated latencies of 0.5 to 5 ms,
//! every link the default cost): paths found per second by each strategy's search, between
//! 16 fixed pairs of switches far apart, with every ISL's free bandwidth looked up in a map
//! as the allocator does (`Throughput::Elements`: one element is one path searched).
//!
//! `cargo bench -p hubspoke-fsm --bench paths`

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hubspoke_fsm::network::{Network, PathWeight};
use hubspoke_fsm::{stable_hash, Isl, SwitchId};

const SWITCHES: u64 = 1_000;
const PAIRS: u64 = 16;
const MS: u64 = 1_000_000;

/// Pairs of switches, the first in the left fifth of the grid, the second in the right fifth.
fn pairs() -> Vec<(SwitchId, SwitchId)> {
    (0..PAIRS)
        .map(|i| {
            let row = |salt: &str| stable_hash(&[salt.as_bytes(), &i.to_be_bytes()]) % 25;
            let col = |salt: &str| stable_hash(&[salt.as_bytes(), &i.to_be_bytes()]) % 8;
            let src = row("src-row") * 40 + col("src-col") + 1;
            let dst = row("dst-row") * 40 + 39 - col("dst-col") + 1;
            (SwitchId(src), SwitchId(dst))
        })
        .collect()
}

fn bench_paths(c: &mut Criterion) {
    let network = Network::generate("grid:25x40")
        .expect("a valid spec")
        .expect("a generated network");
    assert_eq!(network.switches().count() as u64, SWITCHES);
    // Free bandwidth per ISL, spread so that COST_AND_AVAILABLE_BANDWIDTH has ties to break.
    let free: HashMap<Isl, u64> = network
        .links()
        .iter()
        .map(|l| {
            let used = stable_hash(&[&l.isl.src_switch.0.to_be_bytes()]) % 8 * 1_000_000;
            (l.isl, l.capacity - used)
        })
        .collect();
    let usable = |isl: &Isl| free.get(isl).copied();
    let pairs = pairs();
    let mut group = c.benchmark_group("paths");
    group.throughput(Throughput::Elements(PAIRS));
    group.measurement_time(Duration::from_secs(5));
    for (name, weight) in [
        ("COST", PathWeight::Cost),
        ("LATENCY", PathWeight::Latency),
        (
            "COST_AND_AVAILABLE_BANDWIDTH",
            PathWeight::CostThenBandwidth,
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                for &(src, dst) in &pairs {
                    black_box(network.best_path(src, dst, 1_000, weight, usable));
                }
            })
        });
    }
    group.finish();
    let mut group = c.benchmark_group("paths");
    group.throughput(Throughput::Elements(PAIRS));
    group.sample_size(10);
    // The limits: loose, the cheapest path is within; tight, the fastest path is (and the
    // cheapest few are looked through first).
    for (name, limit_ns) in [("MAX_LATENCY_loose", 500 * MS), ("MAX_LATENCY_tight", 0)] {
        let limits: Vec<u64> = pairs
            .iter()
            .map(|&(src, dst)| {
                let fastest = network.best_path(src, dst, 1_000, PathWeight::Latency, usable);
                limit_ns.max(fastest.map_or(0, |p| p.latency_ns))
            })
            .collect();
        group.bench_function(name, |b| {
            b.iter(|| {
                for (&(src, dst), &limit) in pairs.iter().zip(&limits) {
                    black_box(network.cheapest_within(src, dst, 1_000, limit, usable));
                }
            })
        });
    }
    group.finish();
    // `GET /v2/network/paths`: ten paths per pair.
    let mut group = c.benchmark_group("paths_k10");
    group.throughput(Throughput::Elements(PAIRS));
    group.sample_size(10);
    group.bench_function("LATENCY", |b| {
        b.iter(|| {
            for &(src, dst) in &pairs {
                black_box(network.best_paths(src, dst, 0, PathWeight::Latency, 10, usable));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_paths);
criterion_main!(benches);
