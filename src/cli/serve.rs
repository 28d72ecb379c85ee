//! The REST side shared by `up` and `nb`: the read models, the reply dispatcher, the router,
//! and serving it until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use crossbeam_channel::Receiver;
use hubspoke_bus::Publish;
use hubspoke_fsm::{Envelope, FlowEvent, NbRequest, NbResponse, NetworkState};
use hubspoke_northbound::MetricsRender;
use hubspoke_northbound::{
    nb_router, spawn_network_view_updater, spawn_reply_dispatcher, spawn_view_updater, FlowView,
    NbState, NetworkView, PendingReplies,
};

pub struct Northbound {
    pub requests: Arc<dyn Publish<Envelope<NbRequest>>>,
    pub responses: Receiver<Envelope<NbResponse>>,
    pub flow_events: Receiver<Envelope<FlowEvent>>,
    pub network_states: Receiver<Envelope<NetworkState>>,
    pub request_timeout: Duration,
    pub metrics: MetricsRender,
}

impl Northbound {
    pub fn router(self) -> Router {
        let view = FlowView::new();
        spawn_view_updater(view.clone(), self.flow_events);
        let pending = PendingReplies::new();
        spawn_reply_dispatcher(pending.clone(), view.clone(), self.responses);
        let network_view = NetworkView::new();
        spawn_network_view_updater(network_view.clone(), self.network_states);
        let mut state = NbState::new(self.requests, pending, view, network_view);
        state.request_timeout = self.request_timeout;
        state.metrics_render = self.metrics;
        nb_router(state)
    }
}

/// Serves `app` on `listen` until Ctrl-C or SIGTERM. Prints the address on stdout (`what:
/// listening on http://ADDR`) so scripts and tests can find a port chosen by the system.
pub fn serve(what: &str, listen: SocketAddr, app: Router) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        println!("{what}: listening on http://{}", listener.local_addr()?);
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        anyhow::Ok(())
    })
}

/// A flag that turns true on Ctrl-C or SIGTERM, for loops that poll.
pub fn shutdown_requested() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if wait_for_shutdown().is_ok() {
                set.store(true, Ordering::Relaxed);
            }
        })?;
    Ok(flag)
}

/// Blocks until Ctrl-C or SIGTERM.
pub fn wait_for_shutdown() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(shutdown_signal());
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut signal) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
