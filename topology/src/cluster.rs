//! A timely cluster fails whole. Timely does not survive the loss of a peer: its communication
//! threads panic ("timely communication error", then "MergeQueue poisoned" in the workers), a
//! frozen peer just stops every frontier, and either way the other processes would go on
//! running, holding their Kafka partitions and answering nothing. So each process watches its
//! peers and itself, and at the first sign of trouble declares the cluster failed: its workers
//! stop (so their consumers leave the group), then the process's owner is told (`hubspoke
//! topology` exits non-zero), and the supervisor restarts the cluster as a whole.
//!
//! The signs: a panic on any timely thread (a peer's connection failed, or a worker died); a
//! peer whose heartbeats (a dataflow of their own, broadcast every tenth of the failure
//! timeout) stop for longer than the failure timeout; peers that do not all connect within the
//! connect timeout at start.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::operator::{source, Operator};
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::Scope;

use crate::dataflow::Time;
use hubspoke_bus::clock::now_ms;

/// The other processes of a timely cluster, as timely's own `-n/-p/-h` options describe them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    /// This process's index into `addresses`.
    pub process: usize,
    /// `host:port` of every process, in process order.
    pub addresses: Vec<String>,
}

/// How long peers may be silent, and may take to connect at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClusterTimeouts {
    /// A peer heard from for this long is taken as lost.
    pub failure: Duration,
    /// Every peer must have connected by then.
    pub connect: Duration,
}

impl Default for ClusterTimeouts {
    fn default() -> Self {
        ClusterTimeouts {
            failure: Duration::from_secs(5),
            connect: Duration::from_secs(60),
        }
    }
}

/// Why the cluster cannot go on; the whole cluster must be restarted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClusterFailure {
    #[error("lost cluster peer process {process} ({address}): its connection failed: {cause}")]
    PeerConnectionFailed {
        process: usize,
        address: String,
        cause: String,
    },
    #[error(
        "lost cluster peer process {process} ({address}): silent for {silent_ms} ms \
         (stopped, frozen or cut off)"
    )]
    PeerSilent {
        process: usize,
        address: String,
        silent_ms: u64,
    },
    #[error("timely thread {thread} failed: {cause}")]
    ThreadFailed { thread: String, cause: String },
    #[error(
        "could not reach every cluster peer ({addresses}) within {waited_secs} s: check \
         --hostfile, and that every process is started"
    )]
    ConnectTimeout { addresses: String, waited_secs: u64 },
}

/// What the owner of the process does once the cluster has failed and the workers have
/// stopped (or had their chance to).
pub type OnFailure = Arc<dyn Fn(&ClusterFailure) + Send + Sync>;

/// This process's place in the cluster, and the watch over it: what was heard from each peer,
/// whether recovery is done, and the first failure.
pub struct ClusterWatch {
    cluster: Option<Cluster>,
    timeouts: ClusterTimeouts,
    started: Instant,
    /// When timely had connected every peer.
    connected_at: Mutex<Option<Instant>>,
    /// Per process: clock ms of its last heartbeat (0: none yet).
    heard_ms: Vec<AtomicU64>,
    recovered: AtomicBool,
    /// Set while the topology stops on purpose: failures then are the shutdown's echo.
    stopping: AtomicBool,
    failure: Mutex<Option<ClusterFailure>>,
    failed: Condvar,
    on_failure: OnFailure,
}

impl std::fmt::Debug for ClusterWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterWatch")
            .field("cluster", &self.cluster)
            .field("timeouts", &self.timeouts)
            .field("failure", &*self.failure.lock())
            .finish_non_exhaustive()
    }
}

impl ClusterWatch {
    /// One process, nothing to connect: only its own threads are watched.
    pub fn alone(on_failure: OnFailure) -> Arc<Self> {
        Self::new(None, ClusterTimeouts::default(), on_failure)
    }

    pub fn new(
        cluster: Option<Cluster>,
        timeouts: ClusterTimeouts,
        on_failure: OnFailure,
    ) -> Arc<Self> {
        let processes = cluster.as_ref().map_or(1, |c| c.addresses.len());
        let watch = Arc::new(ClusterWatch {
            cluster,
            timeouts,
            started: Instant::now(),
            connected_at: Mutex::new(None),
            heard_ms: (0..processes).map(|_| AtomicU64::new(0)).collect(),
            recovered: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            failure: Mutex::new(None),
            failed: Condvar::new(),
            on_failure,
        });
        watch_timely_panics(&watch);
        watch
    }

    /// A watch that only logs a failure: for tests and tools that own no process.
    pub fn logging() -> OnFailure {
        Arc::new(|failure| tracing::error!(%failure, "the topology failed"))
    }

    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref()
    }

    pub fn timeouts(&self) -> ClusterTimeouts {
        self.timeouts
    }

    /// Timely has connected every peer (in one process: at once).
    pub fn connected(&self) {
        *self.connected_at.lock() = Some(Instant::now());
    }

    /// Every worker has built its dataflow from the recovered flows.
    pub fn recovered(&self) {
        self.recovered.store(true, Ordering::Relaxed);
    }

    pub fn heard_from(&self, process: usize) {
        if let Some(heard) = self.heard_ms.get(process) {
            heard.store(now_ms(), Ordering::Relaxed);
        }
    }

    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Records the first failure (later ones are its consequences) and wakes the waiters.
    pub fn fail(&self, failure: ClusterFailure) {
        if self.is_stopping() {
            return;
        }
        let mut first = self.failure.lock();
        if first.is_none() {
            tracing::error!(%failure, "the cluster failed");
            *first = Some(failure);
            self.failed.notify_all();
        }
    }

    pub fn failure(&self) -> Option<ClusterFailure> {
        self.failure.lock().clone()
    }

    /// The first failure, waiting up to `limit` for one.
    pub fn wait_for_failure(&self, limit: Duration) -> Option<ClusterFailure> {
        let mut failure = self.failure.lock();
        if failure.is_none() {
            self.failed.wait_for(&mut failure, limit);
        }
        failure.clone()
    }

    /// Runs the owner's reaction to a failure.
    pub fn report(&self, failure: &ClusterFailure) {
        (self.on_failure)(failure);
    }

    /// The timeouts, checked at `now`: peers that never connected, or went silent.
    pub fn check(&self, now: Instant) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let Some(connected_at) = *self.connected_at.lock() else {
            if now.duration_since(self.started) > self.timeouts.connect {
                self.fail(ClusterFailure::ConnectTimeout {
                    addresses: cluster.addresses.join(", "),
                    waited_secs: self.timeouts.connect.as_secs(),
                });
            }
            return;
        };
        let clock_now = now_ms();
        let since_connected = now.duration_since(connected_at);
        for (process, heard) in self.heard_ms.iter().enumerate() {
            if process == cluster.process {
                continue;
            }
            let heard = heard.load(Ordering::Relaxed);
            // Before its first heartbeat a peer may still be building its dataflow from a
            // large log: it has the connect timeout for that.
            let (silent, limit) = if heard == 0 {
                (since_connected, self.timeouts.connect)
            } else {
                (
                    Duration::from_millis(clock_now.saturating_sub(heard)),
                    self.timeouts.failure,
                )
            };
            if silent > limit {
                self.fail(ClusterFailure::PeerSilent {
                    process,
                    address: cluster.addresses[process].clone(),
                    silent_ms: u64::try_from(silent.as_millis()).unwrap_or(u64::MAX),
                });
            }
        }
    }

    /// Timely has connected every peer, each has been heard from within the failure timeout,
    /// and nothing has failed.
    pub fn peers_connected(&self) -> bool {
        if self.failure.lock().is_some() || self.connected_at.lock().is_none() {
            return false;
        }
        self.cluster.as_ref().is_none_or(|cluster| {
            let clock_now = now_ms();
            let limit = u64::try_from(self.timeouts.failure.as_millis()).unwrap_or(u64::MAX);
            self.heard_ms.iter().enumerate().all(|(process, heard)| {
                let heard = heard.load(Ordering::Relaxed);
                process == cluster.process
                    || (heard > 0 && clock_now.saturating_sub(heard) <= limit)
            })
        })
    }

    /// Every local worker has built its dataflow from the recovered flows, and nothing has
    /// failed.
    pub fn recovery_done(&self) -> bool {
        self.failure.lock().is_none() && self.recovered.load(Ordering::Relaxed)
    }

    /// The failure a panic on `thread` means, if it is one of timely's.
    fn failure_of_panic(&self, thread: &str, cause: String) -> Option<ClusterFailure> {
        let role = thread.strip_prefix("timely:")?;
        let peer = role
            .strip_prefix("send-")
            .or_else(|| role.strip_prefix("recv-"))
            .and_then(|index| index.parse::<usize>().ok());
        Some(match (peer, &self.cluster) {
            (Some(process), Some(cluster)) => ClusterFailure::PeerConnectionFailed {
                process,
                address: cluster.addresses.get(process).cloned().unwrap_or_default(),
                cause,
            },
            _ => ClusterFailure::ThreadFailed {
                thread: thread.to_string(),
                cause,
            },
        })
    }
}

/// The watches a panic hook reports to (one per live topology in the process).
static WATCHES: Mutex<Vec<Weak<ClusterWatch>>> = Mutex::new(Vec::new());

/// Panics on timely's threads fail the cluster. The hook keeps the previous one (which prints
/// the panic), and is installed once per process.
fn watch_timely_panics(watch: &Arc<ClusterWatch>) {
    static HOOK: Once = Once::new();
    {
        let mut watches = WATCHES.lock();
        watches.retain(|w| w.strong_count() > 0);
        watches.push(Arc::downgrade(watch));
    }
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            let Some(thread) = std::thread::current().name().map(str::to_string) else {
                return;
            };
            let cause = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panicked".to_string());
            let watches: Vec<Arc<ClusterWatch>> =
                WATCHES.lock().iter().filter_map(Weak::upgrade).collect();
            for watch in watches {
                if let Some(failure) = watch.failure_of_panic(&thread, cause.clone()) {
                    watch.fail(failure);
                }
            }
        }));
    });
}

/// A dataflow of its own on every worker: its global index, broadcast every `every`; every
/// worker notes which process it heard from. Its own dataflow, so its frontier holds nothing
/// else back.
pub fn heartbeats(
    scope: Scope<'_, Time>,
    watch: Arc<ClusterWatch>,
    workers_per_process: usize,
    every: Duration,
) {
    let index = scope.index();
    source::<_, CapacityContainerBuilder<Vec<usize>>, _, _>(
        scope,
        "Heartbeat",
        move |capability, info| {
            let activator = scope.activator_for(info.address.clone());
            let mut capability = capability;
            move |output| {
                let now = now_ms().max(*capability.time());
                capability.downgrade(&now);
                output.session(&capability).give(index);
                activator.activate_after(every);
            }
        },
    )
    .broadcast()
    .sink(Pipeline, "HeardFrom", move |(input, _frontier)| {
        input.for_each_stamp(|_capability, data| {
            for worker in data.flat_map(|batch| batch.drain(..)) {
                watch.heard_from(worker / workers_per_process.max(1));
            }
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(process: usize) -> Cluster {
        Cluster {
            process,
            addresses: vec!["127.0.0.1:2101".into(), "127.0.0.1:2102".into()],
        }
    }

    fn watch(timeouts: ClusterTimeouts) -> Arc<ClusterWatch> {
        ClusterWatch::new(Some(pair(0)), timeouts, ClusterWatch::logging())
    }

    #[test]
    fn peers_that_never_connect_fail_after_the_connect_timeout() {
        let watch = watch(ClusterTimeouts {
            failure: Duration::from_secs(1),
            connect: Duration::from_secs(2),
        });
        watch.check(watch.started + Duration::from_secs(1));
        assert_eq!(watch.failure(), None);
        watch.check(watch.started + Duration::from_secs(3));
        let failure = watch.failure().expect("failed");
        assert!(matches!(failure, ClusterFailure::ConnectTimeout { .. }));
        assert!(failure.to_string().contains("127.0.0.1:2102"), "{failure}");
    }

    #[test]
    fn a_peer_silent_longer_than_the_failure_timeout_is_lost() {
        let watch = watch(ClusterTimeouts {
            failure: Duration::from_millis(50),
            connect: Duration::from_secs(60),
        });
        watch.connected();
        watch.heard_from(1);
        watch.check(Instant::now());
        assert_eq!(watch.failure(), None);
        assert!(watch.peers_connected());
        std::thread::sleep(Duration::from_millis(120));
        watch.check(Instant::now());
        match watch.failure() {
            Some(ClusterFailure::PeerSilent { process: 1, .. }) => {}
            other => panic!("expected peer 1 silent, got {other:?}"),
        }
        assert!(!watch.peers_connected());
    }

    #[test]
    fn a_panic_on_a_timely_connection_thread_names_the_peer() {
        let watch = watch(ClusterTimeouts::default());
        let thread = std::thread::Builder::new()
            .name("timely:recv-1".into())
            .spawn(|| panic!("timely communication error: reading data: connection reset"))
            .expect("a thread");
        assert!(thread.join().is_err());
        match watch.wait_for_failure(Duration::from_secs(5)) {
            Some(ClusterFailure::PeerConnectionFailed {
                process: 1,
                address,
                cause,
            }) => {
                assert_eq!(address, "127.0.0.1:2102");
                assert!(cause.contains("connection reset"), "{cause}");
            }
            other => panic!("expected peer 1's connection, got {other:?}"),
        }
    }

    #[test]
    fn a_panic_elsewhere_is_not_the_clusters_business() {
        let watch = watch(ClusterTimeouts::default());
        let thread = std::thread::Builder::new()
            .name("tokio-runtime-worker".into())
            .spawn(|| panic!("a handler's bug"))
            .expect("a thread");
        assert!(thread.join().is_err());
        assert_eq!(watch.wait_for_failure(Duration::from_millis(100)), None);
    }

    #[test]
    fn failures_while_stopping_are_the_shutdowns_echo() {
        let watch = watch(ClusterTimeouts::default());
        watch.stopping();
        watch.fail(ClusterFailure::ThreadFailed {
            thread: "timely:work-0".into(),
            cause: "MergeQueue poisoned".into(),
        });
        assert_eq!(watch.failure(), None);
    }
}
