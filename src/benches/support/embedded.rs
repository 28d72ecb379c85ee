//! The embedded default (`hubspoke up` without its REST shim) for the benchmarks: the
//! library's [`hubspoke::embedded::Embedded`] on a temporary data directory, with the bus
//! drained here instead of by the REST shim.
// Each bench uses its own part of this.
#![allow(dead_code)]

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use hubspoke::embedded::{Embedded, EmbeddedConfig, Storage, Switches};
use hubspoke_bus::clock::now_ms;
use hubspoke_bus::Publish;
use hubspoke_fsm::{
    Envelope, FlowEndpoint, FlowEvent, FlowRequest, FlowStatus, NbRequest, NbResponse,
    NetworkState, SwitchId,
};
use hubspoke_switch_sim::{load_network, Faults};
use hubspoke_topology::cluster::ClusterWatch;
use hubspoke_topology::dataflow::Settings;

/// Three switches in a row: every flow from switch 1 to switch 3 crosses all three.
pub const NETWORK: &str = "linear:3";

/// Flows per (source port): the VLANs 1..=4000 of one port.
const VLANS_PER_PORT: usize = 4000;
/// The first port flows use (lower ones are free of ISLs on `linear:3` too, but keep clear).
const FIRST_PORT: usize = 10;

/// What has come out of the topology so far.
#[derive(Debug, Default)]
pub struct Progress {
    /// Flows whose record went UP.
    pub up: usize,
    /// Requests answered with the flow (IN_PROGRESS, once allocated).
    pub accepted: usize,
}

/// The embedded default under a benchmark's control.
pub struct Rig {
    pub embedded: Embedded,
    pub progress: Progress,
    flow_events: Receiver<Envelope<FlowEvent>>,
    nb_responses: Receiver<Envelope<NbResponse>>,
    network_states: Receiver<Envelope<NetworkState>>,
    data: tempfile::TempDir,
}

impl Rig {
    /// Starts everything on a fresh data directory, and waits until one flow has come up
    /// (so the network is known on every worker and the first-use costs are paid).
    pub fn start(workers: usize, storage: Storage, settings: Settings) -> Rig {
        Rig::start_on(NETWORK, workers, storage, settings)
    }

    /// [`start`](Self::start) on the network `spec` (the warm-up flow goes from switch 1 to 3).
    pub fn start_on(spec: &str, workers: usize, storage: Storage, settings: Settings) -> Rig {
        let network = load_network(spec).expect("the benchmark network");
        let data = tempfile::tempdir().expect("a temporary data directory");
        let embedded = Embedded::start(EmbeddedConfig {
            switches: Switches::Simulated(Arc::new(network)),
            workers,
            settings,
            data_dir: data.path().to_path_buf(),
            history_retention_ms: u64::MAX,
            storage,
            watch: ClusterWatch::alone(ClusterWatch::logging()),
        })
        .expect("the embedded default starts");
        let bus = &embedded.bus;
        let mut rig = Rig {
            flow_events: bus.flow_events.receiver(),
            nb_responses: bus.nb_responses.receiver(),
            network_states: bus.network_states.receiver(),
            embedded,
            progress: Progress::default(),
            data,
        };
        rig.submit(&[create_request("warm-up", VLANS_PER_PORT * 38)]);
        rig.wait_until(Duration::from_secs(30), "the warm-up flow UP", |p| {
            p.up >= 1
        });
        rig.progress = Progress::default();
        rig
    }

    /// Every switch loses every command from now on (nothing is answered).
    pub fn drop_all_commands(&self) {
        let faults = Faults {
            drop_rate: 1.0,
            ..Faults::default()
        };
        self.embedded
            .fabric()
            .expect("the benches run on the simulator")
            .lock()
            .set_faults(None, faults)
            .expect("faults set");
    }

    pub fn submit(&self, requests: &[Envelope<NbRequest>]) {
        for request in requests {
            self.embedded.bus.nb_requests.publish(request.clone());
        }
    }

    /// Takes everything the topology published, and hands each flow event to `each` too.
    pub fn drain(&mut self, mut each: impl FnMut(&Envelope<FlowEvent>)) -> usize {
        let mut taken = 0;
        for event in self.flow_events.try_iter() {
            taken += 1;
            count(&mut self.progress, &event);
            each(&event);
        }
        for response in self.nb_responses.try_iter() {
            taken += 1;
            match response.payload {
                NbResponse::Flow { .. } => self.progress.accepted += 1,
                other => panic!("request {} answered {other:?}", response.key),
            }
        }
        taken += self.network_states.try_iter().count();
        taken
    }

    /// Drains until `done` holds; panics after `limit`.
    pub fn wait_until(&mut self, limit: Duration, what: &str, done: impl Fn(&Progress) -> bool) {
        self.wait_until_with(limit, what, done, |_| {});
    }

    /// [`wait_until`](Self::wait_until), handing every flow event to `each`.
    pub fn wait_until_with(
        &mut self,
        limit: Duration,
        what: &str,
        done: impl Fn(&Progress) -> bool,
        mut each: impl FnMut(&Envelope<FlowEvent>),
    ) {
        let start = Instant::now();
        while !done(&self.progress) {
            assert!(
                start.elapsed() < limit,
                "waited {limit:?} for {what}: {:?}",
                self.progress
            );
            if self.drain(&mut each) == 0 {
                // The outbox publishes flow events first: wait for the next one.
                if let Ok(event) = self.flow_events.recv_timeout(Duration::from_millis(5)) {
                    count(&mut self.progress, &event);
                    each(&event);
                }
            }
        }
    }

    /// Keeps draining for `period` (so nothing piles up on the bus while the topology settles).
    pub fn idle(&mut self, period: Duration, mut each: impl FnMut(&Envelope<FlowEvent>)) {
        let start = Instant::now();
        while start.elapsed() < period {
            if self.drain(&mut each) == 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.data.path()
    }

    pub fn stop(self) {
        self.embedded.stop();
    }
}

/// Counts the flows that went UP; a flow going DOWN is a failed benchmark.
fn count(progress: &mut Progress, event: &Envelope<FlowEvent>) {
    if let FlowEvent::Updated { flow } = &event.payload {
        match flow.status {
            FlowStatus::Up => progress.up += 1,
            FlowStatus::Down => panic!("flow {} went DOWN: {:?}", flow.flow_id(), flow.status_info),
            _ => {}
        }
    }
}

/// A create of a 1 Mbit/s flow from switch 1 to switch 3, with endpoints of its own: flow
/// `n` uses VLAN `1 + n % 4000` of port `10 + n / 4000` on both ends.
pub fn create_request(flow_id: &str, n: usize) -> Envelope<NbRequest> {
    let endpoint = |switch| FlowEndpoint {
        switch_id: SwitchId(switch),
        port_number: (FIRST_PORT + n / VLANS_PER_PORT) as u32,
        vlan_id: (1 + n % VLANS_PER_PORT) as u16,
    };
    let flow = FlowRequest {
        flow_id: flow_id.to_string(),
        source: endpoint(1),
        destination: endpoint(3),
        maximum_bandwidth: 1000,
        description: String::new(),
        ..Default::default()
    };
    create_envelope(flow)
}

/// The bench's create of `flow`, correlated by its id.
pub fn create_envelope(flow: FlowRequest) -> Envelope<NbRequest> {
    let flow_id = flow.flow_id.clone();
    Envelope::new(
        format!("bench-{flow_id}"),
        flow_id,
        now_ms(),
        NbRequest::CreateFlow { flow },
    )
}

/// Creates of flows `range`, named `flow-{n}`.
pub fn creates(range: Range<usize>) -> Vec<Envelope<NbRequest>> {
    range
        .map(|n| create_request(&format!("flow-{n:06}"), n))
        .collect()
}

/// On-CPU time of this process's threads by kind, and how long they waited for a CPU
/// (from /proc/self/task/*/schedstat: unlike wall time, not inflated by other load on the
/// machine, except for the wait).
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuTimes {
    /// The timely workers (`timely:work-N`): the whole topology.
    pub workers: Duration,
    /// The switch simulator's thread.
    pub simulator: Duration,
    /// The flow log's group-commit writer: encoding, committing, handing on to the read model.
    pub flow_log_writer: Duration,
    /// Everything else: the benchmark's own thread submitting requests and draining the bus.
    pub other: Duration,
    /// Time runnable threads waited for a CPU.
    pub waiting: Duration,
}

impl CpuTimes {
    pub fn now() -> CpuTimes {
        let mut times = CpuTimes::default();
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return times;
        };
        for task in tasks.flatten() {
            let path = task.path();
            let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            let schedstat = std::fs::read_to_string(path.join("schedstat")).unwrap_or_default();
            let mut fields = schedstat
                .split_whitespace()
                .map(|n| n.parse::<u64>().unwrap_or(0));
            let (on_cpu, waiting) = (
                Duration::from_nanos(fields.next().unwrap_or(0)),
                Duration::from_nanos(fields.next().unwrap_or(0)),
            );
            let comm = comm.trim();
            if comm.starts_with("timely:work") {
                times.workers += on_cpu;
            } else if comm == "sb-simulator" {
                times.simulator += on_cpu;
            } else if comm == "flow-log-writer" {
                times.flow_log_writer += on_cpu;
            } else {
                times.other += on_cpu;
            }
            times.waiting += waiting;
        }
        times
    }

    /// What was spent since `earlier` (by the same threads).
    pub fn since(self, earlier: CpuTimes) -> CpuTimes {
        CpuTimes {
            workers: self.workers.saturating_sub(earlier.workers),
            simulator: self.simulator.saturating_sub(earlier.simulator),
            flow_log_writer: self.flow_log_writer.saturating_sub(earlier.flow_log_writer),
            other: self.other.saturating_sub(earlier.other),
            waiting: self.waiting.saturating_sub(earlier.waiting),
        }
    }

    pub fn add(&mut self, more: CpuTimes) {
        self.workers += more.workers;
        self.simulator += more.simulator;
        self.flow_log_writer += more.flow_log_writer;
        self.other += more.other;
        self.waiting += more.waiting;
    }

    /// One line: each kind's time per `per` items, in µs.
    pub fn per_item(&self, items: u64) -> String {
        let us = |d: Duration| d.as_secs_f64() * 1e6 / items.max(1) as f64;
        format!(
            "on CPU {:.1} µs (topology workers {:.1}, simulator {:.1}, flow log writer {:.1}, \
             bench thread {:.1}); waiting for a CPU {:.1} µs",
            us(self.workers + self.simulator + self.flow_log_writer + self.other),
            us(self.workers),
            us(self.simulator),
            us(self.flow_log_writer),
            us(self.other),
            us(self.waiting),
        )
    }
}
