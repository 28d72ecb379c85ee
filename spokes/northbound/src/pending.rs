//! Requests waiting for their answer on `nb.responses`, matched by correlation id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Receiver;
use hubspoke_fsm::{Envelope, NbRequest, NbResponse};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::view::FlowView;

type Reply = Envelope<NbResponse>;

/// The requests in flight under one correlation id: the request, and everybody waiting for
/// its answer (a client that sent it again joins the first).
struct Waiters {
    request: NbRequest,
    /// (registration token, the waiter's end)
    senders: Vec<(u64, oneshot::Sender<Reply>)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("correlation id {0:?} is in use by a different request in flight")]
pub struct CorrelationIdConflict(pub String);

/// correlation id → the waiting requests. Cheap to clone.
#[derive(Clone, Default)]
pub struct PendingReplies {
    /// The token tells one registration of an id from another of the same id.
    waiting: Arc<Mutex<HashMap<String, Waiters>>>,
    next_token: Arc<AtomicU64>,
}

/// A registered wait. Dropping it (the answer came, the wait timed out, or the client went
/// away) takes it out of the map, so nothing leaks.
pub struct PendingReply {
    pending: PendingReplies,
    correlation_id: String,
    token: u64,
    receiver: Option<oneshot::Receiver<Reply>>,
    /// Whether an earlier registration of the same request is in flight: then this one is
    /// not sent again, it waits for that one's answer.
    pub joined: bool,
}

impl PendingReply {
    /// The answer; None if the dispatcher went away without one.
    pub async fn wait(mut self) -> Option<Reply> {
        let receiver = self.receiver.take()?;
        receiver.await.ok()
    }
}

impl Drop for PendingReply {
    fn drop(&mut self) {
        let mut waiting = self.pending.waiting.lock();
        if let Some(waiters) = waiting.get_mut(&self.correlation_id) {
            waiters.senders.retain(|(token, _)| *token != self.token);
            if waiters.senders.is_empty() {
                waiting.remove(&self.correlation_id);
            }
        }
    }
}

impl PendingReplies {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers before the request is published, so even an instant answer finds its waiter.
    /// The same request again under an id in flight joins the first (a client retrying after
    /// its own timeout gets the first one's answer); a different one is a conflict.
    pub fn register(
        &self,
        correlation_id: &str,
        request: &NbRequest,
    ) -> Result<PendingReply, CorrelationIdConflict> {
        let mut waiting = self.waiting.lock();
        let joined = match waiting.get(correlation_id) {
            Some(waiters) if waiters.request != *request => {
                return Err(CorrelationIdConflict(correlation_id.to_string()));
            }
            Some(_) => true,
            None => false,
        };
        let (sender, receiver) = oneshot::channel();
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        waiting
            .entry(correlation_id.to_string())
            .or_insert_with(|| Waiters {
                request: request.clone(),
                senders: Vec::new(),
            })
            .senders
            .push((token, sender));
        Ok(PendingReply {
            pending: self.clone(),
            correlation_id: correlation_id.to_string(),
            token,
            receiver: Some(receiver),
            joined,
        })
    }

    /// Hands the reply to everybody waiting for it; false if nobody waits for it (any more).
    pub fn complete(&self, reply: Reply) -> bool {
        let waiters = self.waiting.lock().remove(&reply.correlation_id);
        let Some(waiters) = waiters else {
            return false;
        };
        let mut delivered = false;
        for (_, sender) in waiters.senders {
            delivered |= sender.send(reply.clone()).is_ok();
        }
        delivered
    }

    pub fn len(&self) -> usize {
        self.waiting.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Applies each reply's flow record to the view, then wakes its request. Runs until the
/// channel disconnects.
pub fn spawn_reply_dispatcher(
    pending: PendingReplies,
    view: FlowView,
    receiver: Receiver<Reply>,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("nb-replies".into())
        .spawn(move || {
            for reply in receiver.iter() {
                // View first: a GET right after the answer must see the flow.
                if let NbResponse::Flow { flow } = &reply.payload {
                    view.apply_record(flow);
                }
                let correlation_id = reply.correlation_id.clone();
                if !pending.complete(reply) {
                    tracing::debug!(%correlation_id, "northbound reply with no waiting request dropped");
                }
            }
        })
        .expect("spawning the northbound reply thread")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubspoke_fsm::ErrorBody;

    fn reply(correlation_id: &str) -> Reply {
        let error = ErrorBody::new(409, "conflict", "Flow exists", "f");
        Envelope::new(correlation_id, "f", 1, NbResponse::Error { error })
    }

    fn delete(flow_id: &str) -> NbRequest {
        NbRequest::DeleteFlow {
            flow_id: flow_id.into(),
        }
    }

    #[tokio::test]
    async fn replies_find_their_waiter_once() {
        let pending = PendingReplies::new();
        let wait = pending.register("a", &delete("f")).unwrap();
        assert!(!wait.joined);
        assert!(pending.complete(reply("a")));
        assert!(!pending.complete(reply("a")), "a duplicate finds nobody");
        assert_eq!(
            wait.wait().await.map(|r| r.correlation_id),
            Some("a".into())
        );
        assert!(pending.is_empty());
        assert!(!pending.complete(reply("unknown")));
    }

    #[tokio::test]
    async fn the_same_request_again_waits_for_the_first_ones_answer() {
        let pending = PendingReplies::new();
        let first = pending.register("a", &delete("f")).unwrap();
        let again = pending.register("a", &delete("f")).unwrap();
        assert!(again.joined, "not sent twice");
        assert_eq!(
            pending.register("a", &delete("g")).err(),
            Some(CorrelationIdConflict("a".into())),
            "a different request under the id is a conflict"
        );
        assert!(pending.complete(reply("a")));
        let (first, again) = (first.wait().await, again.wait().await);
        assert_eq!(first, again, "both get the one answer");
        assert!(first.is_some());
    }

    #[test]
    fn an_abandoned_wait_unregisters() {
        let pending = PendingReplies::new();
        drop(pending.register("a", &delete("f")).unwrap());
        assert!(pending.is_empty());
        assert!(!pending.complete(reply("a")));
        let first = pending.register("a", &delete("f")).unwrap();
        let again = pending.register("a", &delete("f")).unwrap();
        drop(again);
        assert_eq!(pending.len(), 1, "the first still waits");
        drop(first);
        assert!(pending.is_empty());
    }

    #[test]
    fn a_finished_wait_leaves_a_reused_id_alone() {
        let pending = PendingReplies::new();
        let first = pending.register("a", &delete("f")).unwrap();
        assert!(pending.complete(reply("a")));
        let _second = pending.register("a", &delete("g")).unwrap();
        drop(first);
        assert_eq!(pending.len(), 1);
    }
}
