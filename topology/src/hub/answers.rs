//! The answers the hub gave, remembered by correlation id: a request sent again with the same
//! id (a client retrying after its own timeout) gets the same answer and is never run twice,
//! also after a restart (the answers are in the flow log).

use std::collections::{HashMap, VecDeque};

use hubspoke_fsm::{Envelope, NbResponse};

/// How long an answer is remembered for a request sent again with its correlation id.
const ANSWER_MEMORY_MS: u64 = 24 * 3600 * 1000;

#[derive(Default)]
pub struct Answers {
    by_correlation_id: HashMap<String, Envelope<NbResponse>>,
    /// (answered at, correlation id), oldest first: what to forget first.
    order: VecDeque<(u64, String)>,
}

impl Answers {
    /// Remembers `response`, and forgets answers older than a day before it.
    pub fn remember(&mut self, response: Envelope<NbResponse>) {
        let at = response.created_at_ms;
        while self
            .order
            .front()
            .is_some_and(|(t, _)| t + ANSWER_MEMORY_MS < at)
        {
            if let Some((_, old)) = self.order.pop_front() {
                self.by_correlation_id.remove(&old);
            }
        }
        self.order.push_back((at, response.correlation_id.clone()));
        self.by_correlation_id
            .insert(response.correlation_id.clone(), response);
    }

    pub fn get(&self, correlation_id: &str) -> Option<&Envelope<NbResponse>> {
        self.by_correlation_id.get(correlation_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubspoke_fsm::ErrorBody;

    fn answer(correlation_id: &str, at: u64) -> Envelope<NbResponse> {
        let error = ErrorBody::new(404, "not-found", "Flow not found", "");
        Envelope::new(correlation_id, "f", at, NbResponse::Error { error })
    }

    #[test]
    fn answers_are_forgotten_a_day_after_they_were_given() {
        let mut answers = Answers::default();
        answers.remember(answer("old", 0));
        answers.remember(answer("new", ANSWER_MEMORY_MS));
        assert!(answers.get("old").is_some(), "a day old: still known");
        answers.remember(answer("newer", ANSWER_MEMORY_MS + 1));
        assert!(answers.get("old").is_none());
        assert!(answers.get("new").is_some());
    }
}
