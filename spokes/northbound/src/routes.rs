//! The northbound REST shim: validates what it can alone, hands commands to the topology over
//! `nb.requests`, waits for the answer, and serves queries from the read models.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use hubspoke_bus::Publish;
use hubspoke_fsm::ping::{FlowPingResponse, DEFAULT_PING_TIMEOUT_MS, MAX_PING_TIMEOUT_MS};
use hubspoke_fsm::switch_id::InvalidSwitchId;
use hubspoke_fsm::validation::{FlowValidation, SwitchSync, SwitchValidation};
use hubspoke_fsm::{
    validate_flow_id, Envelope, FlowEndpoints, FlowPatch, FlowRecord, FlowRequest, HistoryEntry,
    Isl, LinkPatch, LinkState, NbRequest, NbResponse, PathComputationStrategy, PathsQuery,
    SwitchId, SwitchState,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::flow_json::FlowJson;
use super::paths_json::{PathJson, PathsJson};
use super::pending::PendingReplies;
use crate::view::{FlowView, HistoryQuery, NetworkView};
use hubspoke_bus::clock::now_ms;
use hubspoke_rest::{
    correlation_middleware, health_routes, method_not_allowed_fallback, not_found_fallback,
    ApiError, CorrelationId, JsonBody, OptionalJsonBody, PathParams, Readiness,
};

pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

#[derive(Clone)]
pub struct NbState {
    pub requests: Arc<dyn Publish<Envelope<NbRequest>>>,
    pub pending: PendingReplies,
    pub view: FlowView,
    pub network_view: NetworkView,
    /// How long a request waits for the topology; also its envelope's deadline.
    pub request_timeout: Duration,
    pub metrics_render: MetricsRender,
    /// What `/ready` waits for besides the topology answering a ping.
    pub readiness: Readiness,
}

impl NbState {
    /// A state with the default timeout and an empty metrics page.
    pub fn new(
        requests: Arc<dyn Publish<Envelope<NbRequest>>>,
        pending: PendingReplies,
        view: FlowView,
        network_view: NetworkView,
    ) -> Self {
        NbState {
            requests,
            pending,
            view,
            network_view,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            metrics_render: Arc::new(String::new),
            readiness: Readiness::new(),
        }
    }
}

pub fn nb_router(state: NbState) -> Router {
    let pinged = state.clone();
    let readiness = state
        .readiness
        .clone()
        .with_async("topology answering", move || {
            let state = pinged.clone();
            async move { topology_answers(&state).await }
        });
    Router::new()
        .route("/v2/flows", get(list_flows).post(create_flow))
        .route("/v2/flows/swap-endpoint", post(swap_endpoints))
        .route(
            "/v2/flows/{flow_id}",
            get(get_flow)
                .put(update_flow)
                .patch(patch_flow)
                .delete(delete_flow),
        )
        .route("/v2/flows/{flow_id}/reroute", post(reroute_flow))
        .route("/v2/flows/{flow_id}/sync", post(sync_flow))
        .route("/v2/flows/{flow_id}/swap", patch(swap_flow))
        .route("/v2/flows/{flow_id}/history", get(flow_history))
        .route("/v2/flows/{flow_id}/validate", get(validate_flow))
        .route("/v2/flows/{flow_id}/ping", post(ping_flow))
        .route("/v2/switches", get(switches))
        .route("/v2/switches/{switch_id}/validate", get(validate_switch))
        .route("/v2/switches/{switch_id}/sync", post(sync_switch))
        .route("/v2/links", get(links))
        .route(
            "/v2/links/{src_switch}/{src_port}/{dst_switch}/{dst_port}",
            patch(patch_link),
        )
        .route("/v2/network/paths", get(network_paths))
        .route("/metrics", get(metrics))
        .merge(health_routes(readiness))
        .fallback(not_found_fallback)
        .method_not_allowed_fallback(method_not_allowed_fallback)
        .with_state(state)
        .layer(axum::middleware::from_fn(correlation_middleware))
}

async fn create_flow(
    State(state): State<NbState>,
    id: CorrelationId,
    JsonBody(flow): JsonBody<FlowRequest>,
) -> Result<Json<FlowJson>, ApiError> {
    // Switches and ports are the topology's to judge: it answers 404 or 400 for them.
    flow.validate().map_err(ApiError::bad_request)?;
    ask(&state, &id, NbRequest::CreateFlow { flow }).await
}

/// A create body whose `flow_id` may be left out: the path names the flow.
#[derive(Deserialize)]
struct UpdateBody {
    #[serde(default)]
    flow_id: Option<String>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

async fn update_flow(
    State(state): State<NbState>,
    id: CorrelationId,
    PathParams(flow_id): PathParams<String>,
    JsonBody(body): JsonBody<UpdateBody>,
) -> Result<Json<FlowJson>, ApiError> {
    if let Some(body_id) = body.flow_id.filter(|body_id| *body_id != flow_id) {
        return Err(ApiError::bad_request(format!(
            "flow_id {body_id:?} in the body is not the path's {flow_id:?}"
        )));
    }
    let mut fields = body.rest;
    fields.insert("flow_id".into(), flow_id.into());
    let flow: FlowRequest = serde_json::from_value(Value::Object(fields))
        .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))?;
    flow.validate().map_err(ApiError::bad_request)?;
    ask(&state, &id, NbRequest::UpdateFlow { flow }).await
}

/// The fields given replace the flow's; the topology applies them to the record it holds and
/// carries the result out as an update (make-before-break when the path must change).
async fn patch_flow(
    State(state): State<NbState>,
    id: CorrelationId,
    PathParams(flow_id): PathParams<String>,
    JsonBody(patch): JsonBody<FlowPatch>,
) -> Result<Json<FlowJson>, ApiError> {
    validate_flow_id(&flow_id).map_err(ApiError::bad_request)?;
    ask(&state, &id, NbRequest::PatchFlow { flow_id, patch }).await
}

async fn reroute_flow(
    State(state): State<NbState>,
    id: CorrelationId,
    PathParams(flow_id): PathParams<String>,
) -> Result<Json<FlowJson>, ApiError> {
    ask_about(&state, &id, flow_id, |flow_id| NbRequest::RerouteFlow {
        flow_id,
    })
    .await
}

async fn sync_flow(
    State(state): State<NbState>,
    id: CorrelationId,
    PathParams(flow_id): PathParams<String>,
) -> Result<Json<FlowJson>, ApiError> {
    ask_about(&state, &id, flow_id, |flow_id| NbRequest::SyncFlow {
        flow_id,
    })
    .await
}

/// `PATCH /v2/flows/{flow_id}/swap`: the flow's traffic onto its protected path.
async fn swap_flow(
    State(state): State<NbState>,
    id: CorrelationId,
    PathParams(flow_id): PathParams<String>,
) -> Result<Json<FlowJson>, ApiError> {
    ask_about(&state, &id, flow_id, |flow_id| NbRequest::SwapFlow {
        flow_id,
    })
    .await
}

/// The body of `POST /v2/flows/swap-endpoint` (OpenKilda's `SwapFlowEndpointPayload`),
/// and its answer.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SwapEndpointsJson {
    first_flow: FlowEndpoints,
    second_flow: FlowEndpoints,
}

/// `POST /v2/flows/swap-endpoint`: both flows move to the endpoints given, or neither does.
/// Answered once the topology has decided: both flows carry their traffic between their new
/// endpoints, or both are back as they were (the error says why).
async fn swap_endpoints(
    State(state): State<NbState>,
    id: CorrelationId,
    JsonBody(body): JsonBody<SwapEndpointsJson>,
) -> Result<Json<SwapEndpointsJson>, ApiError> {
    let SwapEndpointsJson {
        first_flow,
        second_flow,
    } = body;
    for flow in [&first_flow, &second_flow] {
        validate_flow_id(&flow.flow_id).map_err(ApiError::bad_request)?;
    }
    if first_flow.flow_id == second_flow.flow_id {
        return Err(ApiError::bad_request(
            "first_flow and second_flow must name two different flows",
        ));
    }
    let request = NbRequest::SwapEndpoints {
        first_flow,
        second_flow,
    };
    match ask_for(&state, &id, request).await? {
        NbResponse::EndpointsSwapped {
            first_flow,
            second_flow,
        } => Ok(Json(SwapEndpointsJson {
            first_flow,
            second_flow,
        })),
        other => Err(unexpected(other)),
    }
}

async fn delete_flow(
    State(state): State<NbState>,
    id: CorrelationId,
    PathParams(flow_id): PathParams<String>,
) -> Result<Json<FlowJson>, ApiError> {
    ask_about(&state, &id, flow_id, |flow_id| NbRequest::DeleteFlow {
        flow_id,
    })
    .await
}

/// A request about an existing flow named by the path. The topology owns the flows: it
/// answers 404 for an unknown one, not the read model.
async fn ask_about(
    state: &NbState,
    id: &CorrelationId,
    flow_id: String,
    request: fn(String) -> NbRequest,
) -> Result<Json<FlowJson>, ApiError> {
    validate_flow_id(&flow_id).map_err(ApiError::bad_request)?;
    ask(state, id, request(flow_id)).await
}

/// Publishes a flow operation and answers with the flow.
async fn ask(
    state: &NbState,
    id: &CorrelationId,
    request: NbRequest,
) -> Result<Json<FlowJson>, ApiError> {
    match ask_for(state, id, request).await? {
        NbResponse::Flow { flow } => Ok(Json(FlowJson::from(&flow))),
        other => Err(unexpected(other)),
    }
}

/// An answer of the wrong kind: the topology and the shim disagree on the contract.
fn unexpected(response: NbResponse) -> ApiError {
    tracing::error!(
        ?response,
        "the topology answered with an unexpected kind of answer"
    );
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal-error",
        "Unexpected answer",
        "the topology answered with another kind of answer than the request asks for",
    )
}

/// Publishes the request and waits for the topology's answer, or the timeout; an error
/// answer is the error. The same request sent again under a correlation id in flight is not
/// published twice: it waits for the first one's answer.
async fn ask_for(
    state: &NbState,
    id: &CorrelationId,
    request: NbRequest,
) -> Result<NbResponse, ApiError> {
    let wait = state.pending.register(&id.0, &request).map_err(|e| {
        ApiError::new(
            StatusCode::CONFLICT,
            "correlation-id-conflict",
            "Correlation id in use",
            e.to_string(),
        )
    })?;
    if !wait.joined {
        let now = now_ms();
        let timeout_ms = u64::try_from(state.request_timeout.as_millis()).unwrap_or(u64::MAX);
        let envelope = Envelope {
            correlation_id: id.0.clone(),
            key: request.key(),
            created_at_ms: now,
            deadline_ms: Some(now.saturating_add(timeout_ms)),
            epoch: 0,
            payload: request,
        };
        tracing::debug!(correlation_id = %id.0, key = %envelope.key, "northbound request published");
        state.requests.publish(envelope);
    }
    match tokio::time::timeout(state.request_timeout, wait.wait()).await {
        Ok(Some(reply)) => match reply.payload {
            NbResponse::Error { error } => Err(ApiError::from_body(&error)),
            answer => Ok(answer),
        },
        Ok(None) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            "the reply dispatcher has stopped",
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "operation-timeout",
            "Operation has timed out",
            format!(
                "no answer within {} ms; the operation may still complete",
                state.request_timeout.as_millis()
            ),
        )),
    }
}

async fn list_flows(State(state): State<NbState>) -> Json<Vec<FlowJson>> {
    let json = |record: &FlowRecord| {
        FlowJson::from(record).with_diversity(state.view.diversity(record.flow_id()))
    };
    Json(state.view.list().iter().map(json).collect())
}

async fn get_flow(
    State(state): State<NbState>,
    PathParams(flow_id): PathParams<String>,
) -> Result<Json<FlowJson>, ApiError> {
    validate_flow_id(&flow_id).map_err(ApiError::bad_request)?;
    let record = state
        .view
        .get(&flow_id)
        .ok_or_else(|| flow_not_found(&flow_id))?;
    Ok(Json(
        FlowJson::from(&record).with_diversity(state.view.diversity(&flow_id)),
    ))
}

/// The query of `GET /v2/flows/{flow_id}/history`, as text: the handler says what is wrong
/// with a value. Other parameters are ignored.
#[derive(Deserialize)]
struct HistoryParams {
    time_from: Option<String>,
    time_to: Option<String>,
    max_count: Option<String>,
}

impl HistoryParams {
    fn query(self) -> Result<HistoryQuery, ApiError> {
        fn number<T: std::str::FromStr>(
            name: &str,
            value: Option<String>,
            what: &str,
        ) -> Result<Option<T>, ApiError> {
            value
                .map(|text| {
                    text.parse().map_err(|_| {
                        ApiError::bad_request(format!("{name} must be {what}, not {text:?}"))
                    })
                })
                .transpose()
        }
        const TIME: &str = "a time in milliseconds since the epoch";
        let query = HistoryQuery {
            time_from: number("time_from", self.time_from, TIME)?,
            time_to: number("time_to", self.time_to, TIME)?,
            max_count: number("max_count", self.max_count, "a positive count")?,
        };
        if let (Some(from), Some(to)) = (query.time_from, query.time_to) {
            if from > to {
                return Err(ApiError::bad_request(format!(
                    "time_from {from} is after time_to {to}"
                )));
            }
        }
        if query.max_count == Some(0) {
            return Err(ApiError::bad_request(
                "max_count must be a positive count, not 0",
            ));
        }
        Ok(query)
    }
}

/// The flow's history in time order; `time_from` and `time_to` (inclusive, ms since the
/// epoch) bound it, and `max_count` keeps the newest entries of what is left.
async fn flow_history(
    State(state): State<NbState>,
    PathParams(flow_id): PathParams<String>,
    uri: Uri,
) -> Result<Json<Vec<HistoryEntry>>, ApiError> {
    validate_flow_id(&flow_id).map_err(ApiError::bad_request)?;
    let Query(params) = Query::<HistoryParams>::try_from_uri(&uri)
        .map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let query = params.query()?;
    state
        .view
        .history_query(&flow_id, &query)
        .map(Json)
        .ok_or_else(|| flow_not_found(&flow_id))
}

fn flow_not_found(flow_id: &str) -> ApiError {
    ApiError::not_found("Flow not found", format!("flow {flow_id} does not exist"))
}

/// `GET /v2/flows/{flow_id}/validate`: the flow's rules on its switches, and a packet traced
/// each way through what they hold.
async fn validate_flow(
    State(state): State<NbState>,
    id: CorrelationId,
    PathParams(flow_id): PathParams<String>,
) -> Result<Json<FlowValidation>, ApiError> {
    validate_flow_id(&flow_id).map_err(ApiError::bad_request)?;
    if state.view.get(&flow_id).is_none() {
        return Err(flow_not_found(&flow_id));
    }
    match ask_for(&state, &id, NbRequest::ValidateFlow { flow_id }).await? {
        NbResponse::FlowValidation { validation } => Ok(Json(*validation)),
        other => Err(unexpected(other)),
    }
}

/// The body of `POST /v2/flows/{flow_id}/ping`, which may be left out.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PingBody {
    /// How long each direction's probe is waited for, in milliseconds.
    #[serde(default)]
    timeout: Option<u64>,
}

/// `POST /v2/flows/{flow_id}/ping`: a probe sent into the flow's ingress each way, as if it
/// arrived on the direction's source port with its VLAN, and caught where the flow leaves
/// the network: per direction, whether it arrived and its latency in nanoseconds.
async fn ping_flow(
    State(state): State<NbState>,
    id: CorrelationId,
    PathParams(flow_id): PathParams<String>,
    OptionalJsonBody(body): OptionalJsonBody<PingBody>,
) -> Result<Json<FlowPingResponse>, ApiError> {
    validate_flow_id(&flow_id).map_err(ApiError::bad_request)?;
    let timeout_ms = ping_timeout(body.and_then(|b| b.timeout), state.request_timeout)?;
    if state.view.get(&flow_id).is_none() {
        return Err(flow_not_found(&flow_id));
    }
    let request = NbRequest::PingFlow {
        flow_id,
        timeout_ms: Some(timeout_ms),
    };
    match ask_for(&state, &id, request).await? {
        NbResponse::FlowPing { ping } => Ok(Json(ping)),
        other => Err(unexpected(other)),
    }
}

/// How long each probe is waited for: the asked `timeout`, or 2 s. At most half the
/// request's own timeout (a lost probe is answered as lost well before the request gives
/// up) and a minute.
fn ping_timeout(asked: Option<u64>, request_timeout: Duration) -> Result<u64, ApiError> {
    let request_ms = u64::try_from(request_timeout.as_millis()).unwrap_or(u64::MAX);
    let most = MAX_PING_TIMEOUT_MS.min(request_ms / 2).max(1);
    match asked {
        None => Ok(DEFAULT_PING_TIMEOUT_MS.min(most)),
        Some(ms) if (1..=most).contains(&ms) => Ok(ms),
        Some(ms) => Err(ApiError::bad_request(format!(
            "timeout must be 1 to {most} ms (a minute, and half the request timeout, at most), not {ms}"
        ))),
    }
}

fn parse_switch(text: &str) -> Result<SwitchId, ApiError> {
    text.parse()
        .map_err(|e: InvalidSwitchId| ApiError::bad_request(e.to_string()))
}

/// `GET /v2/switches/{switch_id}/validate`: what the switch holds against what hubspoke
/// expects there.
async fn validate_switch(
    State(state): State<NbState>,
    id: CorrelationId,
    PathParams(switch): PathParams<String>,
) -> Result<Json<SwitchValidation>, ApiError> {
    let switch_id = parse_switch(&switch)?;
    match ask_for(&state, &id, NbRequest::ValidateSwitch { switch_id }).await? {
        NbResponse::SwitchValidation { validation } => Ok(Json(*validation)),
        other => Err(unexpected(other)),
    }
}

/// `POST /v2/switches/{switch_id}/sync`: the switch validated, its excess rules removed, the
/// flows with missing or different rules there repaired.
async fn sync_switch(
    State(state): State<NbState>,
    id: CorrelationId,
    PathParams(switch): PathParams<String>,
) -> Result<Json<SwitchSync>, ApiError> {
    let switch_id = parse_switch(&switch)?;
    match ask_for(&state, &id, NbRequest::SyncSwitch { switch_id }).await? {
        NbResponse::SwitchSync { sync } => Ok(Json(*sync)),
        other => Err(unexpected(other)),
    }
}

async fn switches(State(state): State<NbState>) -> Json<Vec<SwitchState>> {
    Json(state.network_view.switches())
}

async fn links(State(state): State<NbState>) -> Json<Vec<LinkState>> {
    Json(state.network_view.links())
}

/// `PATCH /v2/links/{src_switch}/{src_port}/{dst_switch}/{dst_port}`: the link's cost and
/// what flows may reserve on it (`max_bandwidth`, kbps), both directions. Answers both
/// directions as `GET /v2/links` shows them.
async fn patch_link(
    State(state): State<NbState>,
    id: CorrelationId,
    PathParams((src_switch, src_port, dst_switch, dst_port)): PathParams<(
        String,
        String,
        String,
        String,
    )>,
    JsonBody(patch): JsonBody<LinkPatch>,
) -> Result<Json<Vec<LinkState>>, ApiError> {
    let port = |name: &str, text: &str| {
        text.parse::<u32>()
            .ok()
            .filter(|&port| port > 0)
            .ok_or_else(|| {
                ApiError::bad_request(format!("{name} must be a port number, not {text:?}"))
            })
    };
    let isl = Isl {
        src_switch: parse_switch(&src_switch)?,
        src_port: port("src_port", &src_port)?,
        dst_switch: parse_switch(&dst_switch)?,
        dst_port: port("dst_port", &dst_port)?,
    };
    patch.validate().map_err(ApiError::bad_request)?;
    match ask_for(&state, &id, NbRequest::PatchLink { isl, patch }).await? {
        NbResponse::Links { links } => Ok(Json(links)),
        other => Err(unexpected(other)),
    }
}

/// How many paths `GET /v2/network/paths` lists when not told (OpenKilda's default).
const DEFAULT_MAX_PATH_COUNT: usize = 10;
/// The most it lists.
const MOST_PATHS: usize = 100;

/// The query of `GET /v2/network/paths`, as text: the handler says what is wrong with a
/// value. Other parameters are ignored.
#[derive(Deserialize)]
struct PathsParams {
    src_switch: Option<String>,
    dst_switch: Option<String>,
    path_computation_strategy: Option<String>,
    max_latency: Option<String>,
    max_latency_tier2: Option<String>,
    max_path_count: Option<String>,
}

impl PathsParams {
    fn query(self) -> Result<PathsQuery, ApiError> {
        let switch = |name: &str, value: Option<String>| {
            value
                .ok_or_else(|| ApiError::bad_request(format!("{name} is required")))
                .and_then(|text| parse_switch(&text))
        };
        let milliseconds = |name: &str, value: Option<String>| {
            value
                .map(|text| {
                    text.parse::<u64>().map_err(|_| {
                        ApiError::bad_request(format!("{name} must be milliseconds, not {text:?}"))
                    })
                })
                .transpose()
        };
        let strategy = match self.path_computation_strategy {
            None => PathComputationStrategy::default(),
            Some(text) => serde_json::from_value(Value::String(text.clone())).map_err(|_| {
                ApiError::bad_request(format!(
                    "path_computation_strategy must be COST, LATENCY, MAX_LATENCY or COST_AND_AVAILABLE_BANDWIDTH, not {text:?}"
                ))
            })?,
        };
        let max_path_count = match self.max_path_count {
            None => DEFAULT_MAX_PATH_COUNT,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|count| (1..=MOST_PATHS).contains(count))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "max_path_count must be 1 to {MOST_PATHS}, not {text:?}"
                    ))
                })?,
        };
        let query = PathsQuery {
            src_switch: switch("src_switch", self.src_switch)?,
            dst_switch: switch("dst_switch", self.dst_switch)?,
            path_computation_strategy: strategy,
            max_latency: milliseconds("max_latency", self.max_latency)?,
            max_latency_tier2: milliseconds("max_latency_tier2", self.max_latency_tier2)?,
            max_path_count,
        };
        if strategy == PathComputationStrategy::MaxLatency && query.max_latency.is_none() {
            return Err(ApiError::bad_request(
                "path_computation_strategy MAX_LATENCY needs max_latency",
            ));
        }
        Ok(query)
    }
}

/// `GET /v2/network/paths?src_switch=…&dst_switch=…`: candidate paths between two switches,
/// best first by `path_computation_strategy`, at most `max_path_count`.
async fn network_paths(
    State(state): State<NbState>,
    id: CorrelationId,
    uri: Uri,
) -> Result<Json<PathsJson>, ApiError> {
    let Query(params) = Query::<PathsParams>::try_from_uri(&uri)
        .map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let query = params.query()?;
    match ask_for(&state, &id, NbRequest::FindPaths { query }).await? {
        NbResponse::Paths { paths } => Ok(Json(PathsJson {
            paths: paths.iter().map(PathJson::from).collect(),
        })),
        other => Err(unexpected(other)),
    }
}

/// How long `/ready` waits for the topology to answer its ping.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the topology answers a ping (through the bus, the dataflow and back) in time.
async fn topology_answers(state: &NbState) -> bool {
    let mut probe = state.clone();
    probe.request_timeout = PING_TIMEOUT;
    let id = CorrelationId(format!("ready-{}", uuid::Uuid::new_v4()));
    matches!(
        ask_for(&probe, &id, NbRequest::Ping).await,
        Ok(NbResponse::Pong)
    )
}

async fn metrics(State(state): State<NbState>) -> impl IntoResponse {
    let render = state.metrics_render.clone();
    (
        [(CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE))],
        render(),
    )
}
