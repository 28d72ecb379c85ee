//! `/health` and `/ready`, the same on every long-running part. Liveness: the process serves
//! HTTP (a process that cannot go on exits instead, so a supervisor restarts it). Readiness:
//! every check the part names holds now; a 503 names the ones that do not.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

/// One condition of readiness: whether it holds now (it may ask another part, so it is
/// asynchronous).
pub type Check = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// What a part must have before it takes traffic.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, Check)>,
}

impl Readiness {
    pub fn new() -> Self {
        Readiness::default()
    }

    /// Adds a check that answers at once.
    pub fn with(
        self,
        name: &'static str,
        check: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Self {
        let check = Arc::new(check);
        self.with_async(name, move || {
            let holds = check();
            async move { holds }
        })
    }

    pub fn with_async<F>(
        mut self,
        name: &'static str,
        check: impl Fn() -> F + Send + Sync + 'static,
    ) -> Self
    where
        F: Future<Output = bool> + Send + 'static,
    {
        self.checks
            .push((name, Arc::new(move || Box::pin(check()) as Pin<Box<_>>)));
        self
    }

    /// Every check of `other` too.
    pub fn and(mut self, other: Readiness) -> Self {
        self.checks.extend(other.checks);
        self
    }

    /// The names of the checks that do not hold now.
    pub async fn waiting_for(&self) -> Vec<&'static str> {
        let mut waiting = Vec::new();
        for (name, check) in &self.checks {
            if !check().await {
                waiting.push(*name);
            }
        }
        waiting
    }
}

/// `GET /health` and `GET /ready`.
pub fn health_routes<S: Clone + Send + Sync + 'static>(readiness: Readiness) -> Router<S> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready).with_state(Arc::new(readiness)))
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn ready(State(readiness): State<Arc<Readiness>>) -> (StatusCode, Json<Value>) {
    let waiting_for = readiness.waiting_for().await;
    let status = if waiting_for.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "ready": waiting_for.is_empty(), "waiting_for": waiting_for });
    (status, Json(body))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::test_support::get_json;

    #[tokio::test]
    async fn ready_names_what_it_waits_for_until_everything_holds() {
        let recovered = Arc::new(AtomicBool::new(false));
        let flag = recovered.clone();
        let router: Router = health_routes(
            Readiness::new()
                .with("recovery done", move || flag.load(Ordering::Relaxed))
                .with_async("broker reachable", || async { true }),
        );
        let (status, body) = get_json(&router, "/ready").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            json!({"ready": false, "waiting_for": ["recovery done"]})
        );
        assert_eq!(get_json(&router, "/health").await.0, StatusCode::OK);
        recovered.store(true, Ordering::Relaxed);
        let (status, body) = get_json(&router, "/ready").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"ready": true, "waiting_for": []}));
    }
}
