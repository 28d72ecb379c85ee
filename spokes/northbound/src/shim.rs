//! The shim assembled: the read models fed from the bus, the reply dispatcher, the router.
//! `hubspoke up`, `hubspoke nb` and the shim's own tests all start it this way.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use crossbeam_channel::Receiver;
use hubspoke_bus::Publish;
use hubspoke_fsm::{Envelope, FlowEvent, NbRequest, NbResponse, NetworkState};
use hubspoke_rest::Readiness;

use crate::pending::{spawn_reply_dispatcher, PendingReplies};
use crate::routes::{nb_router, MetricsRender, NbState};
use crate::view::{spawn_network_view_updater, spawn_view_updater, FlowView, NetworkView};

/// Where the shim talks to the topology and what it serves besides.
pub struct Northbound {
    pub requests: Arc<dyn Publish<Envelope<NbRequest>>>,
    pub responses: Receiver<Envelope<NbResponse>>,
    pub flow_events: Receiver<Envelope<FlowEvent>>,
    pub network_states: Receiver<Envelope<NetworkState>>,
    /// How long a request waits for the topology; also its envelope's deadline.
    pub request_timeout: Duration,
    pub metrics: MetricsRender,
    /// What `/ready` waits for besides the topology answering a ping.
    pub readiness: Readiness,
}

impl Northbound {
    /// Starts the threads that keep the read models and dispatch replies; the state the routes
    /// share.
    pub fn start(self) -> NbState {
        let view = FlowView::new();
        spawn_view_updater(view.clone(), self.flow_events);
        let pending = PendingReplies::new();
        spawn_reply_dispatcher(pending.clone(), view.clone(), self.responses);
        let network_view = NetworkView::new();
        spawn_network_view_updater(network_view.clone(), self.network_states);
        let mut state = NbState::new(self.requests, pending, view, network_view);
        state.request_timeout = self.request_timeout;
        state.metrics_render = self.metrics;
        state.readiness = self.readiness;
        state
    }

    /// [`start`](Self::start)ed, as the REST API.
    pub fn router(self) -> Router {
        nb_router(self.start())
    }
}
