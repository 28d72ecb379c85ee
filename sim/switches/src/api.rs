//! The simulator's control API (`/sim/...`), for tests and people.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use hubspoke_bus::{publish_network_events, NetworkEvents};
use hubspoke_fsm::dataplane::{PortVlan, Trace};
use hubspoke_fsm::segments::{FlowSegment, SegmentKind};
use hubspoke_fsm::{Isl, SbAction, SbCommand, SbErrorCode, SbOutcome, SwitchId, MAX_VLAN};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::fabric::{FabricError, SwitchFabric};
use super::faults::Faults;
use hubspoke_rest::{correlation_middleware, ApiError, CorrelationId, JsonBody, PathParams};

type Fabric = Arc<Mutex<SwitchFabric>>;

/// Where the control API publishes the network events its changes cause (`sb.events`).
#[derive(Clone)]
struct SimState {
    fabric: Fabric,
    events: NetworkEvents,
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleMatch {
    pub in_port: u32,
    pub in_vlan: u16,
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleActions {
    pub out_port: u32,
    pub out_vlan: u16,
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleMeter {
    pub meter_id: u32,
    pub rate_kbps: u64,
}

/// One rule as `GET /sim/switches/{switch_id}/rules` shows it.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleView {
    pub cookie: u64,
    /// The same cookie in hex: JSON readers that use doubles lose the high bits of the number.
    pub cookie_hex: String,
    #[serde(rename = "match")]
    pub match_: RuleMatch,
    pub actions: RuleActions,
    pub meter: Option<RuleMeter>,
    pub kind: SegmentKind,
}

impl From<&FlowSegment> for RuleView {
    fn from(rule: &FlowSegment) -> Self {
        RuleView {
            cookie: rule.cookie,
            cookie_hex: format!("{:#018x}", rule.cookie),
            match_: RuleMatch {
                in_port: rule.in_port,
                in_vlan: rule.in_vlan,
            },
            actions: RuleActions {
                out_port: rule.out_port,
                out_vlan: rule.out_vlan,
            },
            meter: rule.meter_id.map(|meter_id| RuleMeter {
                meter_id,
                rate_kbps: rule.bandwidth,
            }),
            kind: rule.kind,
        }
    }
}

/// `PUT /sim/faults`. Rates left out are 0: the body says the whole fault set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsRequest {
    #[serde(default)]
    pub latency_ms: u64,
    #[serde(default)]
    pub error_rate: f64,
    #[serde(default)]
    pub drop_rate: f64,
    #[serde(default)]
    pub switch_id: Option<SwitchId>,
    #[serde(default)]
    pub error_code: Option<SbErrorCode>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct FaultsView {
    pub switch_id: Option<SwitchId>,
    #[serde(flatten)]
    pub faults: Faults,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SwitchStateView {
    pub switch_id: SwitchId,
    pub available: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LinkStateView {
    pub state: String,
    pub isls: Vec<Isl>,
}

/// The `/sim` routes. No fallback, so the router merges with the northbound one; serve it
/// alone with `.fallback(hubspoke_rest::not_found_fallback)`.
pub fn sim_router(fabric: Fabric, events: NetworkEvents) -> Router {
    Router::new()
        .route("/sim/switches/{switch_id}/rules", get(rules))
        .route(
            "/sim/switches/{switch_id}/rules/{cookie}",
            axum::routing::patch(tamper_rule).delete(lose_rule),
        )
        .route("/sim/switches/{switch_id}/fail", post(fail_switch))
        .route("/sim/switches/{switch_id}/restore", post(restore_switch))
        .route("/sim/links/{src_switch}/{dst_switch}/fail", post(fail_link))
        .route(
            "/sim/links/{src_switch}/{dst_switch}/restore",
            post(restore_link),
        )
        .route("/sim/faults", put(set_faults))
        .route("/sim/trace", post(trace))
        .with_state(SimState { fabric, events })
        .layer(axum::middleware::from_fn(correlation_middleware))
}

fn parse_switch(text: &str) -> Result<SwitchId, ApiError> {
    text.parse()
        .map_err(|e: hubspoke_fsm::switch_id::InvalidSwitchId| ApiError::bad_request(e.to_string()))
}

fn fabric_error(error: FabricError) -> ApiError {
    let message = match error {
        FabricError::UnknownSwitch(_) => "Switch not found",
        FabricError::UnknownLink(..) => "Link not found",
        FabricError::Store(_) | FabricError::DataDir { .. } => {
            tracing::error!(%error, "the simulator could not keep a change");
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal-error",
                "The simulator could not keep the change",
                error.to_string(),
            );
        }
    };
    ApiError::not_found(message, error.to_string())
}

async fn rules(
    State(SimState { fabric, .. }): State<SimState>,
    PathParams(switch): PathParams<String>,
) -> Result<Json<Vec<RuleView>>, ApiError> {
    let switch_id = parse_switch(&switch)?;
    let rules = fabric
        .lock()
        .rules(switch_id)
        .ok_or_else(|| fabric_error(FabricError::UnknownSwitch(switch_id)))?;
    Ok(Json(rules.iter().map(RuleView::from).collect()))
}

/// What a tampered rule forwards to instead.
#[derive(Debug, Deserialize)]
pub struct Tamper {
    pub out_port: u32,
}

/// `DELETE /sim/switches/{id}/rules/{cookie}`: the switch loses a rule behind the
/// controller's back (a reboot, an operator): what a flow sync must repair.
async fn lose_rule(
    state: State<SimState>,
    id: CorrelationId,
    PathParams((switch, cookie)): PathParams<(String, u64)>,
) -> Result<Json<Vec<RuleView>>, ApiError> {
    change_rule(state, &id, &switch, cookie, |_| None)
}

/// `PATCH /sim/switches/{id}/rules/{cookie}` with `{"out_port": N}`: the rule now forwards
/// elsewhere, a rule that differs from the one the controller installed.
async fn tamper_rule(
    state: State<SimState>,
    id: CorrelationId,
    PathParams((switch, cookie)): PathParams<(String, u64)>,
    JsonBody(tamper): JsonBody<Tamper>,
) -> Result<Json<Vec<RuleView>>, ApiError> {
    change_rule(state, &id, &switch, cookie, |rule| {
        Some(FlowSegment {
            out_port: tamper.out_port,
            ..rule
        })
    })
}

/// Replaces (or, for `None`, removes) one rule, the way a command would, and answers the
/// switch's rules.
fn change_rule(
    State(SimState { fabric, .. }): State<SimState>,
    id: &CorrelationId,
    switch: &str,
    cookie: u64,
    change: impl FnOnce(FlowSegment) -> Option<FlowSegment>,
) -> Result<Json<Vec<RuleView>>, ApiError> {
    let switch_id = parse_switch(switch)?;
    let mut fabric = fabric.lock();
    let rules = fabric
        .rules(switch_id)
        .ok_or_else(|| fabric_error(FabricError::UnknownSwitch(switch_id)))?;
    let rule = rules
        .into_iter()
        .find(|r| r.cookie == cookie)
        .ok_or_else(|| {
            ApiError::not_found(
                "Rule not found",
                format!("switch {switch_id} has no rule {cookie:#x}"),
            )
        })?;
    let command = |action, segment| SbCommand {
        command_id: format!("sim-api:{}", id.0),
        attempt: 1,
        action,
        segment,
        ping_exit: None,
    };
    let outcome = match change(rule.clone()) {
        Some(changed) => fabric.apply(&command(SbAction::Install, changed)),
        None => fabric.apply(&command(SbAction::Remove, rule)),
    };
    if let SbOutcome::Error { message, .. } = outcome {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "switch-refused",
            "The switch refused the change",
            message,
        ));
    }
    let rules = fabric.rules(switch_id).unwrap_or_default();
    Ok(Json(rules.iter().map(RuleView::from).collect()))
}

async fn fail_switch(
    state: State<SimState>,
    id: CorrelationId,
    path: PathParams<String>,
) -> Result<Json<SwitchStateView>, ApiError> {
    set_switch(state, id, path, false)
}

async fn restore_switch(
    state: State<SimState>,
    id: CorrelationId,
    path: PathParams<String>,
) -> Result<Json<SwitchStateView>, ApiError> {
    set_switch(state, id, path, true)
}

fn set_switch(
    State(state): State<SimState>,
    id: CorrelationId,
    PathParams(switch): PathParams<String>,
    available: bool,
) -> Result<Json<SwitchStateView>, ApiError> {
    let switch_id = parse_switch(&switch)?;
    let change = state.fabric.lock().change(|fabric| {
        if available {
            fabric.restore_switch(switch_id)
        } else {
            fabric.fail_switch(switch_id)
        }
    });
    let ((), events) = change.map_err(fabric_error)?;
    publish_network_events(&state.events, events, &id.0);
    tracing::info!(correlation_id = %id.0, %switch_id, available, "simulated switch state set");
    Ok(Json(SwitchStateView {
        switch_id,
        available,
    }))
}

async fn fail_link(
    state: State<SimState>,
    id: CorrelationId,
    path: PathParams<(String, String)>,
) -> Result<Json<LinkStateView>, ApiError> {
    set_link(state, id, path, false)
}

async fn restore_link(
    state: State<SimState>,
    id: CorrelationId,
    path: PathParams<(String, String)>,
) -> Result<Json<LinkStateView>, ApiError> {
    set_link(state, id, path, true)
}

fn set_link(
    State(state): State<SimState>,
    id: CorrelationId,
    PathParams((a, b)): PathParams<(String, String)>,
    up: bool,
) -> Result<Json<LinkStateView>, ApiError> {
    let (a, b) = (parse_switch(&a)?, parse_switch(&b)?);
    let change = state.fabric.lock().change(|fabric| {
        if up {
            fabric.restore_link(a, b)
        } else {
            fabric.fail_link(a, b)
        }
    });
    let (isls, events) = change.map_err(fabric_error)?;
    publish_network_events(&state.events, events, &id.0);
    tracing::info!(correlation_id = %id.0, %a, %b, up, "simulated link state set");
    Ok(Json(LinkStateView {
        state: if up { "UP" } else { "DOWN" }.to_string(),
        isls,
    }))
}

async fn set_faults(
    State(SimState { fabric, .. }): State<SimState>,
    JsonBody(request): JsonBody<FaultsRequest>,
) -> Result<Json<FaultsView>, ApiError> {
    let faults = Faults {
        latency_ms: request.latency_ms,
        error_rate: request.error_rate,
        drop_rate: request.drop_rate,
        error_code: request.error_code.unwrap_or(SbErrorCode::SwitchUnavailable),
    };
    faults
        .validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    fabric
        .lock()
        .set_faults(request.switch_id, faults)
        .map_err(fabric_error)?;
    tracing::info!(switch_id = ?request.switch_id, ?faults, "simulated faults set");
    Ok(Json(FaultsView {
        switch_id: request.switch_id,
        faults,
    }))
}

/// `POST /sim/trace`: a packet arriving on `in_port` of `switch_id` with `vlan_id` (0 or left
/// out: untagged).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceRequest {
    pub switch_id: SwitchId,
    pub in_port: u32,
    #[serde(default)]
    pub vlan_id: u16,
}

/// Where the packet goes through the rule tables and across the links: every rule it hits,
/// and where it leaves the network or why it stopped (no rule, a loop, two rules matching, a
/// link that is down).
async fn trace(
    State(SimState { fabric, .. }): State<SimState>,
    JsonBody(request): JsonBody<TraceRequest>,
) -> Result<Json<Trace>, ApiError> {
    if request.vlan_id > MAX_VLAN {
        return Err(ApiError::bad_request(format!(
            "vlan_id must be between 0 and {MAX_VLAN}"
        )));
    }
    let fabric = fabric.lock();
    if fabric.is_available(request.switch_id).is_none() {
        return Err(fabric_error(FabricError::UnknownSwitch(request.switch_id)));
    }
    Ok(Json(fabric.trace(PortVlan {
        switch_id: request.switch_id,
        port: request.in_port,
        vlan: request.vlan_id,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use hubspoke_bus::Topic;
    use hubspoke_fsm::network::Network;
    use hubspoke_fsm::{Envelope, SbAction, SbCommand, SbEvent};
    use serde_json::Value;
    use tower::ServiceExt;

    const S1: &str = "00:00:00:00:00:00:00:01";
    const S2: &str = "00:00:00:00:00:00:00:02";

    fn fabric() -> Fabric {
        Arc::new(Mutex::new(SwitchFabric::new(
            &Network::generate("linear:3").unwrap().unwrap(),
        )))
    }

    async fn call(fabric: &Fabric, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
        // As the command serves it alone: with a fallback, under the correlation middleware.
        let router = sim_router(fabric.clone(), Arc::new(Topic::default()))
            .fallback(hubspoke_rest::not_found_fallback)
            .layer(axum::middleware::from_fn(correlation_middleware));
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("correlation_id", "test-corr")
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        assert_eq!(response.headers()["correlation_id"], "test-corr");
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn assert_error(status: StatusCode, body: &Value, expected: StatusCode) {
        assert_eq!(status, expected, "{body}");
        for field in ["error_type", "error_message", "error_description"] {
            assert!(body[field].is_string(), "{field} missing in {body}");
        }
        assert_eq!(body["correlation_id"], "test-corr");
    }

    #[tokio::test]
    async fn rules_show_match_actions_and_meter() {
        let fabric = fabric();
        let segment = FlowSegment {
            switch_id: SwitchId(1),
            kind: SegmentKind::Ingress,
            cookie: 0x4000_0000_0000_0007,
            in_port: 10,
            in_vlan: 100,
            out_port: 1,
            out_vlan: 300,
            meter_id: Some(32),
            bandwidth: 1000,
        };
        fabric.lock().apply(&SbCommand {
            command_id: "c".into(),
            attempt: 1,
            action: SbAction::Install,
            segment,
            ping_exit: None,
        });
        let (status, body) = call(&fabric, "GET", &format!("/sim/switches/{S1}/rules"), "").await;
        assert_eq!(status, StatusCode::OK);
        let rule = &body[0];
        assert_eq!(rule["cookie"], 0x4000_0000_0000_0007u64);
        assert_eq!(rule["cookie_hex"], "0x4000000000000007");
        assert_eq!(
            rule["match"],
            serde_json::json!({"in_port": 10, "in_vlan": 100})
        );
        assert_eq!(
            rule["actions"],
            serde_json::json!({"out_port": 1, "out_vlan": 300})
        );
        assert_eq!(
            rule["meter"],
            serde_json::json!({"meter_id": 32, "rate_kbps": 1000})
        );
        assert_eq!(rule["kind"], "ingress");
        let (status, body) = call(&fabric, "GET", &format!("/sim/switches/{S2}/rules"), "").await;
        assert_eq!((status, body), (StatusCode::OK, serde_json::json!([])));
    }

    #[tokio::test]
    async fn switches_and_links_fail_and_restore() {
        let fabric = fabric();
        let (status, body) = call(&fabric, "POST", &format!("/sim/switches/{S2}/fail"), "").await;
        assert_eq!(
            (status, &body["available"]),
            (StatusCode::OK, &Value::Bool(false))
        );
        assert_eq!(fabric.lock().is_available(SwitchId(2)), Some(false));
        call(&fabric, "POST", &format!("/sim/switches/{S2}/restore"), "").await;
        assert_eq!(fabric.lock().is_available(SwitchId(2)), Some(true));

        let (status, body) = call(&fabric, "POST", &format!("/sim/links/{S1}/{S2}/fail"), "").await;
        assert_eq!(
            (status, &body["state"]),
            (StatusCode::OK, &Value::from("DOWN"))
        );
        let isls: Vec<Isl> = serde_json::from_value(body["isls"].clone()).unwrap();
        assert_eq!(isls.len(), 2);
        assert!(!fabric.lock().is_link_up(&isls[1]));
        call(
            &fabric,
            "POST",
            &format!("/sim/links/{S2}/{S1}/restore"),
            "",
        )
        .await;
        assert!(fabric.lock().is_link_up(&isls[1]));
    }

    #[tokio::test]
    async fn faults_are_validated_and_set() {
        let fabric = fabric();
        let (status, _) = call(
            &fabric,
            "PUT",
            "/sim/faults",
            r#"{"latency_ms": 20, "error_rate": 0.5, "drop_rate": 0}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            fabric.lock().faults().for_switch(SwitchId(3)).latency_ms,
            20
        );
        let body = format!(
            r#"{{"latency_ms": 5, "error_rate": 0, "drop_rate": 0.1, "switch_id": "{S2}", "error_code": "TABLE_FULL"}}"#
        );
        let (status, reply) = call(&fabric, "PUT", "/sim/faults", &body).await;
        assert_eq!(status, StatusCode::OK, "{reply}");
        let faults = fabric.lock().faults().for_switch(SwitchId(2));
        assert_eq!(
            (faults.latency_ms, faults.error_code),
            (5, SbErrorCode::TableFull)
        );

        for bad in [
            r#"{"error_rate": 1.5}"#,
            r#"{"drop_rate": -1}"#,
            "{",
            r#"{"latency": 3}"#,
            r#"{"switch_id": "nope"}"#,
        ] {
            let (status, body) = call(&fabric, "PUT", "/sim/faults", bad).await;
            assert_error(status, &body, StatusCode::BAD_REQUEST);
        }
        let unknown = r#"{"switch_id": "00:00:00:00:00:00:00:63"}"#;
        let (status, body) = call(&fabric, "PUT", "/sim/faults", unknown).await;
        assert_error(status, &body, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn bad_and_unknown_switches_have_json_errors() {
        let fabric = fabric();
        let (status, body) = call(&fabric, "GET", "/sim/switches/zz/rules", "").await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
        let (status, body) = call(
            &fabric,
            "POST",
            "/sim/switches/00:00:00:00:00:00:00:09/fail",
            "",
        )
        .await;
        assert_error(status, &body, StatusCode::NOT_FOUND);
        let (status, body) = call(
            &fabric,
            "POST",
            &format!("/sim/links/{S1}/00:00:00:00:00:00:00:03/fail"),
            "",
        )
        .await;
        assert_error(status, &body, StatusCode::NOT_FOUND);
        assert_eq!(body["error_message"], "Link not found");
        let (status, body) = call(&fabric, "GET", "/sim/nothing", "").await;
        assert_error(status, &body, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn failing_and_restoring_publish_network_events() {
        let events: Arc<Topic<Envelope<SbEvent>>> = Arc::new(Topic::default());
        let received = events.receiver();
        let router = sim_router(fabric(), events.clone());
        let post = |uri: String| {
            Request::builder()
                .method("POST")
                .uri(uri)
                .body(Body::empty())
                .unwrap()
        };
        let response = router
            .clone()
            .oneshot(post(format!("/sim/links/{S1}/{S2}/fail")))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let down: Vec<SbEvent> = received.try_iter().map(|e| e.payload).collect();
        assert_eq!(down.len(), 2);
        assert!(down.iter().all(|e| matches!(e, SbEvent::IslDown { .. })));
        router
            .clone()
            .oneshot(post(format!("/sim/switches/{S2}/fail")))
            .await
            .unwrap();
        let removed: Vec<SbEvent> = received.try_iter().map(|e| e.payload).collect();
        assert_eq!(
            removed.len(),
            3,
            "switch 2 and its link to switch 3, both ways: {removed:?}"
        );
        assert!(removed.contains(&SbEvent::SwitchRemoved {
            switch_id: SwitchId(2)
        }));
    }

    #[tokio::test]
    async fn a_packet_is_traced_or_the_request_explained() {
        let fabric = fabric();
        let rule = FlowSegment {
            switch_id: SwitchId(1),
            kind: SegmentKind::OneSwitch,
            cookie: 5,
            in_port: 10,
            in_vlan: 100,
            out_port: 11,
            out_vlan: 200,
            meter_id: None,
            bandwidth: 0,
        };
        let install = SbCommand {
            command_id: "c".into(),
            attempt: 1,
            action: SbAction::Install,
            segment: rule,
            ping_exit: None,
        };
        fabric.lock().apply(&install);
        let body = format!(r#"{{"switch_id":"{S1}","in_port":10,"vlan_id":100}}"#);
        let (status, trace) = call(&fabric, "POST", "/sim/trace", &body).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(trace["end"]["result"], "delivered", "{trace}");
        assert_eq!(trace["end"]["port"], 11);
        assert_eq!(trace["end"]["vlan"], 200);
        assert_eq!(trace["hops"][0]["cookie"], 5);

        let untagged = format!(r#"{{"switch_id":"{S1}","in_port":10}}"#);
        let (_, dropped) = call(&fabric, "POST", "/sim/trace", &untagged).await;
        assert_eq!(dropped["end"]["result"], "no_rule", "{dropped}");

        let unknown = r#"{"switch_id":"00:00:00:00:00:00:00:63","in_port":1}"#;
        let (status, body) = call(&fabric, "POST", "/sim/trace", unknown).await;
        assert_error(status, &body, StatusCode::NOT_FOUND);
        for bad in [
            format!(r#"{{"switch_id":"{S1}","in_port":1,"vlan_id":5000}}"#),
            "{".to_string(),
            r#"{"switch_id":"nope","in_port":1}"#.to_string(),
        ] {
            let (status, body) = call(&fabric, "POST", "/sim/trace", &bad).await;
            assert_error(status, &body, StatusCode::BAD_REQUEST);
        }
    }
}
