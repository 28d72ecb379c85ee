//! Serving a REST API until Ctrl-C or SIGTERM, and waiting for those signals.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use axum::Router;

/// Serves `app` on `listen` until Ctrl-C or SIGTERM. Prints the address on stdout (`what:
/// listening on http://ADDR`) so scripts and tests can find a port chosen by the system.
pub fn serve(what: &str, listen: SocketAddr, app: Router) -> anyhow::Result<()> {
    serve_in_background(what, listen, app)?.wait()
}

/// A server on a thread of its own, until Ctrl-C or SIGTERM.
pub struct Server(std::thread::JoinHandle<anyhow::Result<()>>);

impl Server {
    /// Until the server stops (a signal); its error, if it failed.
    pub fn wait(self) -> anyhow::Result<()> {
        self.0
            .join()
            .map_err(|_| anyhow::anyhow!("the HTTP server thread panicked"))?
    }
}

/// [`serve`], on its own thread: the address is bound and printed before this returns, so
/// the caller can go on starting what the server reports on.
pub fn serve_in_background(what: &str, listen: SocketAddr, app: Router) -> anyhow::Result<Server> {
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("cannot listen on {listen}"))?;
    listener.set_nonblocking(true)?;
    println!("{what}: listening on http://{}", listener.local_addr()?);
    let thread = std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown_signal())
                    .await?;
                anyhow::Ok(())
            })
        })?;
    Ok(Server(thread))
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
