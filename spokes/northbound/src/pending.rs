//! Requests waiting for their answer on `nb.responses`, matched by correlation id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Receiver;
use hubspoke_fsm::{Envelope, NbResponse};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::view::FlowView;

type Reply = Envelope<NbResponse>;
/// correlation id → (registration token, the waiter's end).
type Waiting = HashMap<String, (u64, oneshot::Sender<Reply>)>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("correlation id {0:?} is already used by a request in flight")]
pub struct CorrelationIdInUse(pub String);

/// correlation id → the waiting request. Cheap to clone.
#[derive(Clone, Default)]
pub struct PendingReplies {
    /// The token tells one registration of an id from a later one of the same id.
    waiting: Arc<Mutex<Waiting>>,
    next_token: Arc<AtomicU64>,
}

/// A registered wait. Dropping it (the answer came, the wait timed out, or the client went
/// away) takes the correlation id out of the map, so nothing leaks.
pub struct PendingReply {
    pending: PendingReplies,
    correlation_id: String,
    token: u64,
    receiver: Option<oneshot::Receiver<Reply>>,
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
        if waiting
            .get(&self.correlation_id)
            .is_some_and(|(token, _)| *token == self.token)
        {
            waiting.remove(&self.correlation_id);
        }
    }
}

impl PendingReplies {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers before the request is published, so even an instant answer finds its waiter.
    pub fn register(&self, correlation_id: &str) -> Result<PendingReply, CorrelationIdInUse> {
        let mut waiting = self.waiting.lock();
        if waiting.contains_key(correlation_id) {
            return Err(CorrelationIdInUse(correlation_id.to_string()));
        }
        let (sender, receiver) = oneshot::channel();
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        waiting.insert(correlation_id.to_string(), (token, sender));
        Ok(PendingReply {
            pending: self.clone(),
            correlation_id: correlation_id.to_string(),
            token,
            receiver: Some(receiver),
        })
    }

    /// Hands the reply to its waiter; false if nobody waits for it (any more).
    pub fn complete(&self, reply: Reply) -> bool {
        let sender = self.waiting.lock().remove(&reply.correlation_id);
        match sender {
            Some((_, sender)) => sender.send(reply).is_ok(),
            None => false,
        }
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

    #[tokio::test]
    async fn replies_find_their_waiter_once() {
        let pending = PendingReplies::new();
        let wait = pending.register("a").unwrap();
        assert_eq!(
            pending.register("a").err(),
            Some(CorrelationIdInUse("a".into()))
        );
        assert!(pending.complete(reply("a")));
        assert!(!pending.complete(reply("a")), "a duplicate finds nobody");
        assert_eq!(
            wait.wait().await.map(|r| r.correlation_id),
            Some("a".into())
        );
        assert!(pending.is_empty());
        assert!(!pending.complete(reply("unknown")));
    }

    #[test]
    fn an_abandoned_wait_unregisters() {
        let pending = PendingReplies::new();
        drop(pending.register("a").unwrap());
        assert!(pending.is_empty());
        assert!(!pending.complete(reply("a")));
    }

    #[test]
    fn a_finished_wait_leaves_a_reused_id_alone() {
        let pending = PendingReplies::new();
        let first = pending.register("a").unwrap();
        assert!(pending.complete(reply("a")));
        let _second = pending.register("a").unwrap();
        drop(first);
        assert_eq!(pending.len(), 1);
    }
}
