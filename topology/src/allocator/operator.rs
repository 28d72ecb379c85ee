//! The allocator as a timely operator: every request is exchanged to worker 0, so bandwidth,
//! cookies, VLANs and meters are reserved in one place and never over-committed. It answers
//! the hub, and hands every change it makes to the network view.

use hubspoke_fsm::{FlowRecord, SbEvent};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::{Scope, StreamVec};

use super::{AllocatorRequest, ResourcePool};
use crate::dataflow::{ship, Time};
use crate::hub::HubInput;
use crate::view::ViewChange;

pub struct AllocatorStreams<'scope> {
    pub results: StreamVec<'scope, Time, HubInput>,
    pub view_changes: StreamVec<'scope, Time, ViewChange>,
}

/// What the allocator knows before its first request.
#[derive(Default)]
pub struct Known {
    /// The network announced so far.
    pub network: Vec<SbEvent>,
    /// The records a restarted topology found, whose resources are taken back before
    /// anything else is allocated.
    pub reservations: Vec<FlowRecord>,
    /// When the topology started: what the view learns from this enters at that time.
    pub at_ms: Time,
}

pub fn allocator_operator<'scope>(
    scope: Scope<'scope, Time>,
    requests: StreamVec<'scope, Time, AllocatorRequest>,
    known: Known,
) -> AllocatorStreams<'scope> {
    let mut builder = OperatorBuilder::new("Allocator".to_owned(), scope);
    let mut requests = builder.new_input(requests, Exchange::new(|_: &AllocatorRequest| 0));
    let (mut results_out, results) = builder.new_output();
    let (mut changes_out, view_changes) = builder.new_output();
    builder.build(move |initial_capabilities| {
        let mut pool = ResourcePool::new();
        for event in &known.network {
            pool.apply_network_event(event);
        }
        for record in &known.reservations {
            pool.restore(record);
        }
        // The view learns what was known at the start time (the hubs' clocks count from
        // there); then the initial capabilities go.
        let mut restored = initial_capabilities
            .into_iter()
            .nth(1)
            .map(|mut capability| {
                capability.downgrade(&known.at_ms);
                let changes = pool.take_view_changes();
                (capability, changes)
            });
        let mut answers = Vec::new();
        move |_frontiers| {
            if let Some((capability, mut changes)) = restored.take() {
                if !changes.is_empty() {
                    changes_out.activate().give(&capability, &mut changes);
                }
            }
            requests.for_each_stamp(|capability, data| {
                for request in data.flat_map(|batch| batch.drain(..)) {
                    if let Some(result) = pool.handle(request) {
                        answers.push(HubInput::Allocation(result));
                    }
                }
                ship(&mut results_out, &capability, &mut answers);
                ship(&mut changes_out, &capability, &mut pool.take_view_changes());
            });
        }
    });
    AllocatorStreams {
        results,
        view_changes,
    }
}
