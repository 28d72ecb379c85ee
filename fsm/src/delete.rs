//! Flow delete: remove every rule of the flow → free its resources → the record is gone.
//! A switch that fails to remove a rule does not keep the flow alive: the rules it could not
//! confirm removed are handed to the removal debt (retried until they are gone, their
//! reservation kept taken meanwhile), and the flow is gone from the API at once.

use statig::prelude::*;

use crate::operation::{Action, CommandBatch, HistoryName, OpContext, OpEvent, Removal, Timeouts};
use crate::segments::{flow_segments, FlowSegment};
use crate::{FlowRecord, NbResponse, SbAction};

pub struct FlowDelete {
    flow: FlowRecord,
    timeouts: Timeouts,
    segments: Vec<FlowSegment>,
    commands: CommandBatch,
    removal: Removal,
}

impl FlowDelete {
    pub fn new(flow: FlowRecord, timeouts: Timeouts, command_prefix: String) -> Self {
        let segments = flow
            .resources
            .as_ref()
            .map(|r| flow_segments(&flow.request, r))
            .unwrap_or_default();
        FlowDelete {
            flow,
            timeouts,
            segments,
            commands: CommandBatch::new(command_prefix),
            removal: Removal::default(),
        }
    }
}

#[state_machine(
    initial = "State::received()",
    state(derive(Debug, Clone, PartialEq, Eq)),
    after_transition = "Self::after_transition"
)]
impl FlowDelete {
    #[state]
    fn received(&mut self, context: &mut OpContext, event: &OpEvent) -> Outcome<State> {
        match event {
            OpEvent::Start => {
                self.flow = context.begin(&self.flow, self.timeouts.operation_ms);
                context.push(Action::Respond(NbResponse::Flow {
                    flow: self.flow.clone(),
                }));
                if self.segments.is_empty() {
                    Transition(State::deleted())
                } else {
                    Transition(State::removing_rules())
                }
            }
            _ => Handled,
        }
    }

    #[state(entry_action = "remove_rules")]
    fn removing_rules(&mut self, context: &mut OpContext, event: &OpEvent) -> Outcome<State> {
        if !self
            .commands
            .removal_progress(event, &self.segments, &mut self.removal)
        {
            return Handled;
        }
        if let OpEvent::Timeout = event {
            context.push(Action::Abandon);
        }
        Transition(State::deleted())
    }

    #[action]
    fn remove_rules(&mut self, context: &mut OpContext) {
        let all: Vec<usize> = (0..self.segments.len()).collect();
        self.commands
            .send(context, SbAction::Remove, &self.segments, &all);
    }

    #[state(entry_action = "forget_flow")]
    fn deleted(event: &OpEvent) -> Outcome<State> {
        let _ = event;
        Handled
    }

    #[action]
    fn forget_flow(&mut self, context: &mut OpContext) {
        if let Some(resources) = &self.flow.resources {
            self.removal.owe(context, &self.flow.request, resources);
            context.push(Action::Free);
        }
        context.details = self.removal.details("rule removal");
        context.push(Action::Remove {
            version: self.flow.version + 1,
        });
    }
}

impl FlowDelete {
    fn after_transition(&mut self, source: &State, target: &State, context: &mut OpContext) {
        context.record_transition(source, target);
    }
}

impl HistoryName for State {}

impl State {
    pub fn is_finished(&self) -> bool {
        matches!(self, State::Deleted {})
    }
}

#[cfg(test)]
mod tests;
