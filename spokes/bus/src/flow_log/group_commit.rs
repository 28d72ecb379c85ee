//! Group commit: one writer thread appends for every worker of a process, each append taking
//! everything submitted since the last one. A durable write (an fsync, a Kafka round trip
//! with `acks=all`) then costs once per group instead of once per worker and time, and the
//! workers go on computing while it is in flight instead of blocking on it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use hubspoke_fsm::{Envelope, FlowEvent};

use super::FlowLog;
use crate::Waker;

/// How long the writer waits before trying the log again after it refused an append.
const APPEND_RETRY: Duration = Duration::from_millis(100);

/// The most events one append takes, so one huge group cannot hold back the ones after it.
const MAX_GROUP: usize = 65_536;

struct Submission {
    events: Vec<Envelope<FlowEvent>>,
    ticket: u64,
    lane: Arc<LaneMark>,
}

/// How far a lane's submissions are durable, and whom to tell when that moves.
struct LaneMark {
    durable: AtomicU64,
    wake: Waker,
}

/// The writer thread; dropping it (after every lane) lets it finish what was submitted.
pub struct GroupCommit {
    submissions: Option<Sender<Submission>>,
    writer: Option<JoinHandle<()>>,
}

impl GroupCommit {
    pub fn start(log: Arc<dyn FlowLog>) -> Self {
        let (submissions, queue) = crossbeam_channel::unbounded();
        let writer = std::thread::Builder::new()
            .name("flow-log-writer".into())
            .spawn(move || write_groups(log.as_ref(), &queue))
            .ok();
        GroupCommit {
            submissions: Some(submissions),
            writer,
        }
    }

    /// A lane for one worker: its submissions become durable in order, and `wake` is called
    /// each time some of them did.
    pub fn lane(&self, wake: Waker) -> Lane {
        Lane {
            submissions: self.submissions.clone(),
            mark: Arc::new(LaneMark {
                durable: AtomicU64::new(0),
                wake,
            }),
            submitted: 0,
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.submissions = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// One worker's way into the group commit.
pub struct Lane {
    submissions: Option<Sender<Submission>>,
    mark: Arc<LaneMark>,
    submitted: u64,
}

impl Lane {
    /// Hands `events` to the writer and returns their ticket: they are durable once
    /// `durable()` reaches it. Nothing to write is durable at once.
    pub fn submit(&mut self, events: Vec<Envelope<FlowEvent>>) -> u64 {
        if events.is_empty() {
            return self.submitted;
        }
        self.submitted += 1;
        let submission = Submission {
            events,
            ticket: self.submitted,
            lane: self.mark.clone(),
        };
        if let Some(submissions) = &self.submissions {
            if submissions.send(submission).is_err() {
                tracing::error!("the flow log writer has stopped; events are not durable");
            }
        }
        self.submitted
    }

    /// The highest ticket whose events (and all before it) are durable.
    pub fn durable(&self) -> u64 {
        self.mark.durable.load(Ordering::Acquire)
    }
}

fn write_groups(log: &dyn FlowLog, queue: &Receiver<Submission>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        let mut events: usize = group[0].events.len();
        while events < MAX_GROUP {
            let Ok(next) = queue.try_recv() else { break };
            events += next.events.len();
            group.push(next);
        }
        let batch: Vec<Envelope<FlowEvent>> = group
            .iter_mut()
            .flat_map(|s| std::mem::take(&mut s.events))
            .collect();
        // While the log cannot take them (a full disk, an unreachable broker), nothing that
        // depends on them may leave: keep trying.
        let started = std::time::Instant::now();
        while let Err(error) = log.append(&batch) {
            tracing::error!(%error, events = batch.len(), "flow events not durable yet; retrying");
            std::thread::sleep(APPEND_RETRY);
        }
        tracing::debug!(
            events = batch.len(),
            submissions = group.len(),
            took_us = started.elapsed().as_micros() as u64,
            "flow events durable"
        );
        // By value: the read model takes the events themselves, not copies.
        log.hand_on(batch);
        for submission in group {
            submission
                .lane
                .durable
                .fetch_max(submission.ticket, Ordering::AcqRel);
            (submission.lane.wake)();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow_log::FlowLogError;
    use parking_lot::Mutex;
    use std::sync::atomic::AtomicUsize;

    /// A log whose appends block until the test lets them through, recording each group.
    #[derive(Default)]
    struct GatedLog {
        groups: Mutex<Vec<usize>>,
        gate: Mutex<()>,
    }

    impl FlowLog for GatedLog {
        fn append(&self, events: &[Envelope<FlowEvent>]) -> Result<(), FlowLogError> {
            self.groups.lock().push(events.len());
            let _open = self.gate.lock();
            Ok(())
        }

        fn read_all(&self) -> Result<Vec<Envelope<FlowEvent>>, FlowLogError> {
            Ok(Vec::new())
        }
    }

    fn event(n: u64) -> Envelope<FlowEvent> {
        Envelope::new(
            format!("c{n}"),
            format!("f{n}"),
            n,
            FlowEvent::Removed {
                flow_id: format!("f{n}"),
                version: n,
            },
        )
    }

    fn wait_until(what: &str, done: impl Fn() -> bool) {
        let start = std::time::Instant::now();
        while !done() {
            assert!(start.elapsed() < Duration::from_secs(10), "{what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn what_arrives_during_a_write_goes_in_one_group_and_every_lane_hears_of_it() {
        let log = Arc::new(GatedLog::default());
        let group_commit = GroupCommit::start(log.clone());
        let wakes = Arc::new(AtomicUsize::new(0));
        let counted = |wakes: &Arc<AtomicUsize>| -> Waker {
            let wakes = wakes.clone();
            Arc::new(move || {
                wakes.fetch_add(1, Ordering::SeqCst);
            })
        };
        let mut first = group_commit.lane(counted(&wakes));
        let mut second = group_commit.lane(counted(&wakes));

        let gate = log.gate.lock();
        assert_eq!(first.submit(vec![event(1)]), 1);
        wait_until("the writer is writing the first submission", || {
            log.groups.lock().len() == 1
        });
        let later = first.submit(vec![event(2), event(3)]);
        let other = second.submit(vec![event(4)]);
        assert_eq!(
            first.submit(Vec::new()),
            later,
            "nothing to write adds no ticket"
        );
        assert_eq!((first.durable(), second.durable()), (0, 0));
        drop(gate);

        wait_until("both lanes are durable", || {
            first.durable() == later && second.durable() == other
        });
        assert_eq!(
            *log.groups.lock(),
            vec![1, 3],
            "one write for everything that waited"
        );
        assert!(wakes.load(Ordering::SeqCst) >= 2);
        drop((first, second));
        drop(group_commit);
    }
}
