//! Memory per flow at rest and per in-flight operation, in the embedded default (live
//! topology, switch simulator, flow log and switches' tables on disk; `linear:3`, 1 worker).
//!
//! Each measurement runs in a process of its own (this binary, started again with
//! `HUBSPOKE_MEMORY_PHASE`), so one measurement's freed-but-kept heap does not hide the
//! next one's growth. A phase starts the topology, brings one flow UP, lets it settle and
//! reads the resident set (`VmRSS` of /proc/self/status); then:
//!
//! - `at_rest`: creates N flows, waits until all are UP, lets the topology go idle (no
//!   deadline pending), reads the resident set again: (after − before) / N per flow;
//! - `at_rest_created_in_batches`: the same, the flows created `BATCH` at a time (each batch
//!   UP before the next): the buffers a burst of N creates leaves behind (vectors and maps
//!   keep their capacity) are then sized for `BATCH`, so the difference to `at_rest` is
//!   burst high-water, not per-flow state;
//! - `at_rest_with_read_model`: the same, with the flow read model (`FlowView`, the REST
//!   shim's) fed from `flow.events`, as `hubspoke up` has it;
//! - `in_flight`: the switches drop every command and the timeouts are an hour, so N creates
//!   stay in their first install step (allocated, 4 install commands pending each, deadlines
//!   registered): (after − before) / N per in-flight operation.
//!
//! To see where the memory goes: `HUBSPOKE_MEMORY_PHASE=at_rest HUBSPOKE_MEMORY_FLOWS=4000
//! HUBSPOKE_MEMORY_NO_CLEANUP=1 heaptrack <this bench's executable>`, then `heaptrack_print
//! --print-leaks`.
//!
//! One topology holds at most ~4,093 flows (the transit VLAN pool), so N is 4,000, not 100,000.
//!
//! `cargo bench -p hubspoke --bench memory` (without `--bench`, as `cargo test
//! --benches` runs it, every phase runs with 100 flows as a smoke test).

#[path = "support/embedded.rs"]
mod embedded;

use std::process::Command;
use std::time::Duration;

use embedded::{creates, Rig};
use hubspoke::embedded::Storage;
use hubspoke_bus::flow_log::FLOW_LOG_FILE;
use hubspoke_fsm::operation::Timeouts;
use hubspoke_fsm::{Envelope, FlowEvent};
use hubspoke_northbound::FlowView;
use hubspoke_speaker::RetryPolicy;
use hubspoke_switch_sim::SWITCH_STORE_FILE;
use hubspoke_topology::dataflow::Settings;

const PHASE_VAR: &str = "HUBSPOKE_MEMORY_PHASE";
const FLOWS_VAR: &str = "HUBSPOKE_MEMORY_FLOWS";
/// Set: a phase exits right after measuring, without stopping anything, so that a heap
/// profiler (`heaptrack`) reports what was live then as leaked.
const NO_CLEANUP_VAR: &str = "HUBSPOKE_MEMORY_NO_CLEANUP";
/// Long enough for a topology with nothing pending to stop ticking (its grace is 1 s).
const SETTLE: Duration = Duration::from_secs(3);
/// Creates per batch in `at_rest_created_in_batches`.
const BATCH: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    AtRest,
    AtRestInBatches,
    AtRestWithReadModel,
    InFlight,
}

impl Phase {
    const ALL: [Phase; 4] = [
        Phase::AtRest,
        Phase::AtRestInBatches,
        Phase::AtRestWithReadModel,
        Phase::InFlight,
    ];

    fn name(self) -> &'static str {
        match self {
            Phase::AtRest => "at_rest",
            Phase::AtRestInBatches => "at_rest_created_in_batches",
            Phase::AtRestWithReadModel => "at_rest_with_read_model",
            Phase::InFlight => "in_flight",
        }
    }
}

/// The resident set of this process, in bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
        .expect("a VmRSS line in kB")
}

/// The resident set once glibc has handed free heap back to the system: what live data
/// takes, without what a burst of work left free inside the allocator.
fn trimmed_resident_bytes() -> u64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::os::raw::c_int;
        }
        // SAFETY: glibc's malloc_trim only releases free memory; it may run at any time.
        unsafe {
            malloc_trim(0);
        }
    }
    resident_bytes()
}

fn file_bytes(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn run_phase(phase: Phase, flows: usize) {
    let settings = match phase {
        Phase::InFlight => Settings {
            timeouts: Timeouts {
                operation_ms: 3_600_000,
                rollback_ms: 3_600_000,
            },
            retry: RetryPolicy {
                response_timeout_ms: 3_600_000,
                ..RetryPolicy::default()
            },
            ..Settings::default()
        },
        _ => Settings::default(),
    };
    let view = FlowView::new();
    let feed_view = phase == Phase::AtRestWithReadModel;
    let mut each = |event: &Envelope<FlowEvent>| {
        if feed_view {
            view.apply_event(event);
        }
    };
    let mut rig = Rig::start(1, Storage::Durable, settings);
    rig.idle(SETTLE, &mut each);
    let before = resident_bytes();
    let before_trimmed = trimmed_resident_bytes();
    if phase == Phase::InFlight {
        rig.drop_all_commands();
    }
    let limit = Duration::from_secs(300);
    match phase {
        Phase::InFlight => {
            rig.submit(&creates(0..flows));
            rig.wait_until_with(
                limit,
                "every create accepted",
                |p| p.accepted >= flows,
                &mut each,
            )
        }
        Phase::AtRestInBatches => {
            for start in (0..flows).step_by(BATCH) {
                let end = (start + BATCH).min(flows);
                rig.submit(&creates(start..end));
                rig.wait_until_with(limit, "the batch UP", |p| p.up >= end, &mut each);
            }
        }
        Phase::AtRest | Phase::AtRestWithReadModel => {
            rig.submit(&creates(0..flows));
            rig.wait_until_with(limit, "every flow UP", |p| p.up >= flows, &mut each)
        }
    }
    rig.idle(SETTLE, &mut each);
    let after = resident_bytes();
    let after_trimmed = trimmed_resident_bytes();
    let pending = rig.embedded.metrics.deadlines_pending.get();
    let per_flow = |bytes: u64| bytes / flows as u64;
    let flow_log = file_bytes(&rig.data_dir().join(FLOW_LOG_FILE));
    let switches = file_bytes(&rig.data_dir().join(SWITCH_STORE_FILE));
    let what = if phase == Phase::InFlight {
        "in-flight create"
    } else {
        "flow"
    };
    println!(
        "memory/{}/{flows}_flows: {} bytes per {what} resident ({:.1} → {:.1} MiB), {} after \
         malloc_trim ({:.1} → {:.1} MiB); on disk per flow: flow log {} bytes, switch tables {} \
         bytes; deadlines pending {pending}{}",
        phase.name(),
        per_flow(after.saturating_sub(before)),
        mib(before),
        mib(after),
        per_flow(after_trimmed.saturating_sub(before_trimmed)),
        mib(before_trimmed),
        mib(after_trimmed),
        per_flow(flow_log),
        per_flow(switches),
        if feed_view {
            format!("; the read model holds {} flows", view.list().len())
        } else {
            String::new()
        },
    );
    if std::env::var_os(NO_CLEANUP_VAR).is_some() {
        std::process::exit(0);
    }
    rig.stop();
}

fn main() {
    if let Ok(name) = std::env::var(PHASE_VAR) {
        let phase = Phase::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .expect("a known phase");
        let flows = std::env::var(FLOWS_VAR)
            .ok()
            .and_then(|n| n.parse().ok())
            .expect("a flow count");
        run_phase(phase, flows);
        return;
    }
    let benchmarking = std::env::args().any(|arg| arg == "--bench");
    let runs: Vec<(Phase, usize)> = if benchmarking {
        vec![
            (Phase::AtRest, 2_000),
            (Phase::AtRest, 4_000),
            (Phase::AtRestInBatches, 4_000),
            (Phase::AtRestWithReadModel, 4_000),
            (Phase::InFlight, 4_000),
        ]
    } else {
        Phase::ALL.into_iter().map(|p| (p, 100)).collect()
    };
    let me = std::env::current_exe().expect("this benchmark's executable");
    for (phase, flows) in runs {
        let status = Command::new(&me)
            .env(PHASE_VAR, phase.name())
            .env(FLOWS_VAR, flows.to_string())
            .status()
            .expect("the phase's process starts");
        assert!(status.success(), "phase {} failed: {status}", phase.name());
    }
}
