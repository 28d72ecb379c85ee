//! The northbound clients: each creates (or deletes) one flow at a time through the REST
//! contract and polls the flow until it reaches the state it aims at, as a client of the
//! controller would; many of them run at once over one connection pool.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hubspoke_fsm::{FlowEndpoint, FlowRequest, FlowStatus, LinkState, SwitchState};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::stats::{PhaseStats, Rejection};
use super::{LoadError, Progress};
use hubspoke_northbound::FlowJson;

/// A poll waits a tenth of the time already waited, so the first observation of a state is
/// late by about 10 % of the latency at most (plus one GET), while a long wait costs few polls.
const POLL_FRACTION: u32 = 10;
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(1);
const MAX_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How often the network is read again while the northbound API shows none yet.
const NETWORK_RETRY: Duration = Duration::from_millis(200);

/// The network as the northbound API shows it, and the endpoints its flows already hold.
#[derive(Clone, Debug, Default)]
pub struct NetworkSnapshot {
    pub switches: Vec<SwitchState>,
    pub links: Vec<LinkState>,
    pub in_use: HashSet<FlowEndpoint>,
}

/// The fields of a flow that tell where it is.
#[derive(Deserialize)]
struct FlowState {
    status: FlowStatus,
    status_info: Option<String>,
}

/// The contract's error body; only the part the report counts by.
#[derive(Deserialize)]
struct ErrorJson {
    error_type: String,
}

/// What one poll saw.
enum Observed {
    Flow(FlowState),
    Gone,
}

/// What the wait for a flow's state came to.
enum Settled {
    Reached {
        latency: Duration,
        observation_window: Duration,
    },
    Elsewhere(String),
    TimedOut,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Up,
    Gone,
}

/// A pool of northbound clients against one hubspoke.
pub struct NorthboundClients {
    http: reqwest::Client,
    base: String,
    /// `{base}/v2/flows`, where creates go and flow URLs start.
    flows_url: String,
    concurrency: usize,
    /// How long one flow may take to reach its state; also each request's timeout.
    timeout: Duration,
}

impl NorthboundClients {
    pub fn new(base: &str, concurrency: usize, timeout: Duration) -> Result<Self, LoadError> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency)
            .timeout(timeout)
            .build()
            .map_err(LoadError::HttpClient)?;
        Ok(NorthboundClients {
            http,
            base: base.trim_end_matches('/').to_string(),
            flows_url: format!("{}/v2/flows", base.trim_end_matches('/')),
            concurrency: concurrency.max(1),
            timeout,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// One flow's URL: built once per flow, not per poll.
    fn flow_url(&self, flow_id: &str) -> String {
        format!("{}/{flow_id}", self.flows_url)
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, LoadError> {
        let url = self.url(path);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|source| LoadError::Fetch {
                url: url.clone(),
                source,
            })?;
        response
            .json()
            .await
            .map_err(|source| LoadError::Fetch { url, source })
    }

    /// Reads switches, links and flows, waiting up to the timeout for the network to show a
    /// switch (and, with `links_needed`, a link): a server that just started may not have
    /// learnt the network yet.
    pub async fn network(&self, links_needed: bool) -> Result<NetworkSnapshot, LoadError> {
        let started = Instant::now();
        loop {
            let switches: Vec<SwitchState> = self.get_json("/v2/switches").await?;
            let links: Vec<LinkState> = self.get_json("/v2/links").await?;
            let known = !switches.is_empty() && (!links_needed || !links.is_empty());
            if known {
                let flows: Vec<FlowJson> = self.get_json("/v2/flows").await?;
                let in_use = flows
                    .into_iter()
                    .flat_map(|flow| [flow.source, flow.destination])
                    .collect();
                return Ok(NetworkSnapshot {
                    switches,
                    links,
                    in_use,
                });
            }
            if started.elapsed() >= self.timeout {
                return Err(LoadError::NoNetwork {
                    url: self.base.clone(),
                    waited: self.timeout,
                });
            }
            tokio::time::sleep(NETWORK_RETRY).await;
        }
    }

    /// Creates the flows and waits for each to be UP (or to settle otherwise).
    pub async fn create_all(&self, flows: &[FlowRequest], progress: &dyn Progress) -> PhaseStats {
        self.run_phase(flows, Target::Up, progress, |flow| {
            let request = self.http.post(&self.flows_url).json(flow);
            (flow.flow_id.as_str(), request)
        })
        .await
    }

    /// Deletes the flows and waits for each to be gone.
    pub async fn delete_all(&self, flow_ids: &[String], progress: &dyn Progress) -> PhaseStats {
        self.run_phase(flow_ids, Target::Gone, progress, |flow_id| {
            let request = self.http.delete(self.flow_url(flow_id));
            (flow_id.as_str(), request)
        })
        .await
    }

    /// Sends each item's request, at most `concurrency` flows at a time (each client has one
    /// request in flight), and waits for its flow to reach `target`.
    async fn run_phase<'a, T>(
        &self,
        items: &'a [T],
        target: Target,
        progress: &dyn Progress,
        request: impl Fn(&'a T) -> (&'a str, reqwest::RequestBuilder),
    ) -> PhaseStats {
        let stats = Mutex::new(PhaseStats::default());
        let started = Instant::now();
        futures::stream::iter(items)
            .for_each_concurrent(self.concurrency, |item| {
                let (flow_id, builder) = request(item);
                let stats = &stats;
                async move {
                    self.one_flow(flow_id, builder, target, stats).await;
                    progress.advance();
                }
            })
            .await;
        let mut stats = stats.into_inner();
        stats.duration = started.elapsed();
        stats
    }

    async fn one_flow(
        &self,
        flow_id: &str,
        request: reqwest::RequestBuilder,
        target: Target,
        stats: &Mutex<PhaseStats>,
    ) {
        let started = Instant::now();
        match accepted(request.send().await).await {
            Ok(()) => {
                let mut stats = stats.lock();
                stats.answered.record(started.elapsed());
                stats.accepted_flow_ids.push(flow_id.to_string());
            }
            Err(rejection) => {
                *stats.lock().rejected.entry(rejection).or_default() += 1;
                return;
            }
        }
        let settled = self
            .wait_for(&self.flow_url(flow_id), target, started, stats)
            .await;
        let mut stats = stats.lock();
        match settled {
            Settled::Reached {
                latency,
                observation_window,
            } => {
                stats.reached += 1;
                stats.to_reached.record(latency);
                stats.observation_window.record(observation_window);
            }
            Settled::Elsewhere(state) => *stats.not_reached.entry(state).or_default() += 1,
            Settled::TimedOut => stats.timed_out += 1,
        }
    }

    /// Polls the flow at `flow_url` until it reaches `target`, settles elsewhere, or the
    /// timeout passes.
    async fn wait_for(
        &self,
        flow_url: &str,
        target: Target,
        started: Instant,
        stats: &Mutex<PhaseStats>,
    ) -> Settled {
        // The state changed after the server read it for the last poll that did not see it.
        let mut last_unseen_sent = started;
        loop {
            let waited = started.elapsed();
            if waited >= self.timeout {
                return Settled::TimedOut;
            }
            tokio::time::sleep(poll_interval(waited)).await;
            let sent = Instant::now();
            let observed = self.observe(flow_url).await;
            let reached = |received: Instant| Settled::Reached {
                latency: received - started,
                observation_window: received - last_unseen_sent,
            };
            match (target, observed) {
                (_, None) => stats.lock().poll_errors += 1,
                (Target::Up, Some(Observed::Flow(flow))) if flow.status == FlowStatus::Up => {
                    return reached(Instant::now())
                }
                (Target::Gone, Some(Observed::Gone)) => return reached(Instant::now()),
                // The read model may not show a flow just created yet.
                (Target::Up, Some(Observed::Gone)) => last_unseen_sent = sent,
                (_, Some(Observed::Flow(flow))) if flow.status == FlowStatus::InProgress => {
                    last_unseen_sent = sent
                }
                (_, Some(Observed::Flow(flow))) => {
                    return Settled::Elsewhere(settled_state(&flow));
                }
            }
        }
    }

    /// The flow's state, or None when the poll failed.
    async fn observe(&self, flow_url: &str) -> Option<Observed> {
        let response = self.http.get(flow_url).send().await.ok()?;
        match response.status() {
            reqwest::StatusCode::NOT_FOUND => {
                // Read the body so the connection goes back to the pool.
                response.bytes().await.ok()?;
                Some(Observed::Gone)
            }
            status if status.is_success() => response.json().await.ok().map(Observed::Flow),
            _ => None,
        }
    }
}

fn poll_interval(waited: Duration) -> Duration {
    (waited / POLL_FRACTION).clamp(MIN_POLL_INTERVAL, MAX_POLL_INTERVAL)
}

/// `STATUS: reason`, as the report counts flows that settled other than asked.
fn settled_state(flow: &FlowState) -> String {
    // The status as the API spells it.
    let status = serde_json::to_value(flow.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    match &flow.status_info {
        Some(reason) => format!("{status}: {reason}"),
        None => status.to_string(),
    }
}

/// Ok when the server accepted the request; otherwise what it (or the transport) said.
async fn accepted(answer: Result<reqwest::Response, reqwest::Error>) -> Result<(), Rejection> {
    let response = answer.map_err(|error| transport_rejection(&error))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|error| transport_rejection(&error))?;
    if status.is_success() {
        return Ok(());
    }
    let error_type = serde_json::from_slice::<ErrorJson>(&body)
        .map(|error| error.error_type)
        .unwrap_or_else(|_| "unreadable-error-body".to_string());
    Err(Rejection {
        status: Some(status.as_u16()),
        error_type,
    })
}

fn transport_rejection(error: &reqwest::Error) -> Rejection {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connection-failed"
    } else {
        "transport-error"
    };
    Rejection {
        status: None,
        error_type: kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_wait_a_tenth_of_the_wait_within_bounds() {
        assert_eq!(poll_interval(Duration::ZERO), MIN_POLL_INTERVAL);
        assert_eq!(
            poll_interval(Duration::from_millis(300)),
            Duration::from_millis(30)
        );
        assert_eq!(poll_interval(Duration::from_secs(30)), MAX_POLL_INTERVAL);
    }

    #[test]
    fn a_settled_state_names_status_and_reason() {
        let down = FlowState {
            status: FlowStatus::Down,
            status_info: Some("no answer from switch".into()),
        };
        assert_eq!(settled_state(&down), "DOWN: no answer from switch");
        let degraded = FlowState {
            status: FlowStatus::Degraded,
            status_info: None,
        };
        assert_eq!(settled_state(&degraded), "DEGRADED");
    }
}
