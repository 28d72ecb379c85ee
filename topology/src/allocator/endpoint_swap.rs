//! The allocator's side of an endpoint swap (`POST /v2/flows/swap-endpoint`).
//!
//! The allocator reserves both flows' new paths at once (`ResourcePool::reserve_endpoint_swap`),
//! then decides for both halves, which run on their flows' own hubs. Each half tells it when
//! its new path is installed and verified (`Ready`) and when its new ingress rules are
//! (`Swapped`), and waits for its word: `Go` once both are ready, `Commit` once both swapped,
//! `Abort` to both as soon as either fails. A half that waits too long says it failed and
//! waits on, so the word both carry out is always the one decided here: a two-phase commit
//! whose coordinator cannot fail apart from its halves (a cluster fails whole). The commit is
//! written to the flow log, so a restarted topology finishes what was decided.

use hubspoke_fsm::operation::{PairSignal, PairVote};
use hubspoke_fsm::FlowId;

/// One half of a swap in progress.
#[derive(Debug)]
struct Half {
    flow_id: FlowId,
    /// The cookie of the reservation it moves to.
    cookie: u64,
    ready: bool,
    swapped: bool,
}

#[derive(Debug)]
struct Pair {
    /// The swap request's correlation id: a late vote of an earlier swap of the same flows
    /// does not count for this one.
    id: String,
    halves: [Half; 2],
    go_sent: bool,
}

/// A word for both halves of a swap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub pair: String,
    pub signal: PairSignal,
    /// The two flows, each with the cookie of the reservation it moves to.
    pub flows: [(FlowId, u64); 2],
}

/// The swaps in progress: few at a time, so a list.
#[derive(Debug, Default)]
pub struct EndpointSwaps {
    pairs: Vec<Pair>,
}

impl EndpointSwaps {
    /// Both reservations are made: the halves start.
    pub fn begin(&mut self, pair: String, flows: [(FlowId, u64); 2]) {
        let halves = flows.map(|(flow_id, cookie)| Half {
            flow_id,
            cookie,
            ready: false,
            swapped: false,
        });
        self.pairs.push(Pair {
            id: pair,
            halves,
            go_sent: false,
        });
    }

    /// A half's vote, and the word it makes due, if any. A vote for a swap already decided
    /// (or never begun) changes nothing.
    pub fn vote(&mut self, pair: &str, flow_id: &str, vote: PairVote) -> Option<Decision> {
        let at = self
            .pairs
            .iter()
            .position(|p| p.id == pair && p.halves.iter().any(|h| h.flow_id == flow_id))?;
        let entry = &mut self.pairs[at];
        let half = entry.halves.iter_mut().find(|h| h.flow_id == flow_id)?;
        let signal = match vote {
            PairVote::Ready => {
                half.ready = true;
                let due = entry.halves.iter().all(|h| h.ready) && !entry.go_sent;
                entry.go_sent |= due;
                due.then_some(PairSignal::Go)
            }
            PairVote::Swapped => {
                half.swapped = true;
                entry
                    .halves
                    .iter()
                    .all(|h| h.swapped)
                    .then_some(PairSignal::Commit)
            }
            PairVote::Failed(error) => Some(PairSignal::Abort(error)),
        }?;
        let decided = matches!(signal, PairSignal::Commit | PairSignal::Abort(_));
        let flows = entry
            .halves
            .each_ref()
            .map(|h| (h.flow_id.clone(), h.cookie));
        if decided {
            self.pairs.remove(at);
        }
        Some(Decision {
            pair: pair.to_string(),
            signal,
            flows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubspoke_fsm::ErrorBody;

    fn swaps() -> EndpointSwaps {
        let mut swaps = EndpointSwaps::default();
        swaps.begin("c1".into(), [("a".into(), 1), ("b".into(), 2)]);
        swaps
    }

    fn failed() -> PairVote {
        PairVote::Failed(ErrorBody::new(500, "swap-endpoints-failed", "failed", "x"))
    }

    fn signal(decision: Option<Decision>) -> Option<PairSignal> {
        decision.map(|d| d.signal)
    }

    #[test]
    fn go_once_both_are_ready_and_commit_once_both_swapped() {
        let mut swaps = swaps();
        assert_eq!(signal(swaps.vote("c1", "a", PairVote::Ready)), None);
        let go = swaps.vote("c1", "b", PairVote::Ready).expect("go");
        assert_eq!(go.signal, PairSignal::Go);
        assert_eq!(go.flows, [("a".into(), 1), ("b".into(), 2)]);
        assert_eq!(signal(swaps.vote("c1", "b", PairVote::Swapped)), None);
        assert_eq!(
            signal(swaps.vote("c1", "a", PairVote::Swapped)),
            Some(PairSignal::Commit)
        );
        assert_eq!(
            signal(swaps.vote("c1", "a", failed())),
            None,
            "a failure after the commit changes nothing: the commit stands"
        );
    }

    #[test]
    fn a_failure_before_the_commit_aborts_both_once() {
        let mut swaps = swaps();
        swaps.vote("c1", "a", PairVote::Ready);
        swaps.vote("c1", "b", PairVote::Ready);
        swaps.vote("c1", "a", PairVote::Swapped);
        let abort = swaps.vote("c1", "b", failed()).expect("abort");
        assert!(matches!(abort.signal, PairSignal::Abort(_)));
        assert_eq!(signal(swaps.vote("c1", "a", failed())), None);
        assert_eq!(signal(swaps.vote("c1", "b", PairVote::Swapped)), None);
    }

    #[test]
    fn votes_of_another_swap_or_flow_do_not_count() {
        let mut swaps = swaps();
        assert_eq!(signal(swaps.vote("c0", "a", failed())), None);
        assert_eq!(signal(swaps.vote("c1", "z", failed())), None);
        swaps.vote("c1", "a", PairVote::Ready);
        assert_eq!(
            signal(swaps.vote("c1", "b", PairVote::Ready)),
            Some(PairSignal::Go)
        );
    }
}
