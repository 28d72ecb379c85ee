//! `Api`: the REST steps the end-to-end tests take against a deployment, each with the check
//! that it worked, so that a test reads as its scenario.

use std::time::Duration;

use serde_json::{json, Value};

use super::flows::{switch_id, GRID_ISLS, SWITCHES};
use super::{eventually, eventually_explained};

/// How long one flow gets to settle after a step.
const ONE_FLOW: Duration = Duration::from_secs(30);

/// A REST client of one deployment: where it serves the northbound API (`nb`) and the
/// simulator's /sim/ API (`sim`; the same listener in `hubspoke up`).
#[derive(Clone)]
pub struct Api {
    pub client: reqwest::Client,
    pub nb: String,
    pub sim: String,
}

impl Api {
    pub fn new(nb: String, sim: String) -> Api {
        Api {
            client: reqwest::Client::new(),
            nb,
            sim,
        }
    }

    pub fn nb(&self, path: &str) -> String {
        format!("{}{path}", self.nb)
    }

    pub fn sim(&self, path: &str) -> String {
        format!("{}{path}", self.sim)
    }

    async fn get(&self, url: String) -> Value {
        let response = self.client.get(&url).send().await.expect("GET");
        assert!(
            response.status().is_success(),
            "GET {url}: {}",
            response.status()
        );
        response.json().await.expect("JSON body")
    }

    async fn list(&self, url: String) -> Vec<Value> {
        let list = self.get(url).await;
        list.as_array()
            .unwrap_or_else(|| panic!("not a list: {list}"))
            .clone()
    }

    /// Sends the request and asserts that it is answered 200; the answer's text.
    async fn ok(&self, what: &str, request: reqwest::RequestBuilder) -> String {
        let response = request.send().await.expect(what);
        let status = response.status();
        let text = response.text().await.expect("the answer");
        assert_eq!(status, 200, "{what}: {text}");
        text
    }

    pub async fn flows(&self) -> Vec<Value> {
        self.list(self.nb("/v2/flows")).await
    }

    pub async fn flow(&self, id: &str) -> Value {
        self.get(self.nb(&format!("/v2/flows/{id}"))).await
    }

    pub async fn history(&self, id: &str) -> Value {
        self.get(self.nb(&format!("/v2/flows/{id}/history"))).await
    }

    pub async fn links(&self) -> Vec<Value> {
        self.list(self.nb("/v2/links")).await
    }

    /// The rules the simulated `switch` holds.
    pub async fn rules(&self, switch: &str) -> Vec<Value> {
        self.list(self.sim(&format!("/sim/switches/{switch}/rules")))
            .await
    }

    /// A counter from the Prometheus text of `/metrics`.
    pub async fn metric(&self, name: &str) -> u64 {
        let text = self
            .ok("GET /metrics", self.client.get(self.nb("/metrics")))
            .await;
        let line = format!("hubspoke_{name} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&line))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    }

    /// `POST /sim/trace` from an endpoint: where a packet arriving there goes.
    pub async fn trace(&self, endpoint: &Value) -> Value {
        let body = json!({
            "switch_id": endpoint["switch_id"],
            "in_port": endpoint["port_number"],
            "vlan_id": endpoint["vlan_id"],
        });
        let response = self
            .client
            .post(self.sim("/sim/trace"))
            .json(&body)
            .send()
            .await
            .expect("POST /sim/trace");
        assert_eq!(response.status(), 200, "trace from {endpoint}");
        response.json().await.expect("a trace")
    }

    /// A packet entering at each end of the flow leaves at the other, with its VLAN. Returns
    /// the two traces.
    pub async fn assert_delivered_both_ways(&self, flow: &Value) -> Vec<Value> {
        let mut traces = Vec::with_capacity(2);
        for (from, to) in [
            (&flow["source"], &flow["destination"]),
            (&flow["destination"], &flow["source"]),
        ] {
            let trace = self.trace(from).await;
            assert!(
                leaves_at(&trace, to),
                "flow {}: a packet from {from} must leave at {to}; it went: {trace}",
                flow["flow_id"]
            );
            traces.push(trace);
        }
        traces
    }

    /// `POST /v2/flows`, answered 200; the flow as answered.
    pub async fn create(&self, body: &Value) -> Value {
        let request = self.client.post(self.nb("/v2/flows")).json(body);
        let what = format!("create {}", body["flow_id"]);
        serde_json::from_str(&self.ok(&what, request).await).expect("JSON body")
    }

    /// Creates the flow and waits until it is UP; the flow.
    pub async fn create_and_wait_up(&self, body: &Value) -> Value {
        self.create(body).await;
        let id = body["flow_id"].as_str().expect("flow_id");
        self.flow_when(id, "the flow UP", |f| f["status"] == "UP")
            .await
    }

    pub async fn update(&self, id: &str, body: &Value) {
        let request = self.client.put(self.nb(&format!("/v2/flows/{id}")));
        self.ok(&format!("update {id}"), request.json(body)).await;
    }

    pub async fn delete(&self, id: &str) {
        let request = self.client.delete(self.nb(&format!("/v2/flows/{id}")));
        self.ok(&format!("delete {id}"), request).await;
    }

    pub async fn reroute(&self, id: &str) {
        let request = self
            .client
            .post(self.nb(&format!("/v2/flows/{id}/reroute")));
        self.ok(&format!("reroute {id}"), request).await;
    }

    /// `POST /v2/flows/{id}/ping` with `body` (none when `Value::Null`): the status and the
    /// body.
    pub async fn ping(&self, flow_id: &str, body: Value) -> (u16, Value) {
        let mut request = self
            .client
            .post(self.nb(&format!("/v2/flows/{flow_id}/ping")));
        if !body.is_null() {
            request = request.json(&body);
        }
        let response = request
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("POST ping");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    }

    /// `POST /v2/flows/swap-endpoint` with `body`: the status and the body.
    pub async fn swap_endpoints(&self, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(self.nb("/v2/flows/swap-endpoint"))
            .json(body)
            .send()
            .await
            .expect("POST swap-endpoint");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    }

    pub async fn sync(&self, id: &str) {
        let request = self.client.post(self.nb(&format!("/v2/flows/{id}/sync")));
        self.ok(&format!("sync {id}"), request).await;
    }

    /// Polls the flow until `holds`, for `ONE_FLOW`; the flow.
    pub async fn flow_when(&self, id: &str, what: &str, holds: impl Fn(&Value) -> bool) -> Value {
        self.flow_when_within(ONE_FLOW, id, what, holds).await
    }

    /// Polls the flow until `holds`; after `limit`, panics with its last state.
    pub async fn flow_when_within(
        &self,
        limit: Duration,
        id: &str,
        what: &str,
        holds: impl Fn(&Value) -> bool,
    ) -> Value {
        eventually_explained(limit, what, || async {
            let flow = self.flow(id).await;
            if holds(&flow) {
                Ok(flow)
            } else {
                Err(format!("last: {flow}"))
            }
        })
        .await
    }

    /// Polls the flows until there are `count` and `each` holds for every one; after `limit`,
    /// panics with the ones it does not hold for.
    pub async fn flows_when(
        &self,
        count: usize,
        limit: Duration,
        what: &str,
        each: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        eventually_explained(limit, what, || async {
            let flows = self.flows().await;
            let unsettled: Vec<&Value> = flows.iter().filter(|f| !each(f)).collect();
            if flows.len() == count && unsettled.is_empty() {
                Ok(flows)
            } else {
                Err(format!(
                    "{} flows of {count}; unsettled: {}",
                    flows.len(),
                    serde_json::to_string(&unsettled).unwrap_or_default()
                ))
            }
        })
        .await
    }

    /// Waits until the topology has learnt a network of `switches` and `isls` (directed) from
    /// the switches' announcement: the northbound API shows what the topology's network view
    /// publishes.
    pub async fn wait_for_network(&self, switches: usize, isls: usize) {
        eventually(
            Duration::from_secs(60),
            "the network discovered",
            || async {
                let switches_known = self.list(self.nb("/v2/switches")).await.len();
                let known = (switches_known, self.links().await.len());
                (known == (switches, isls)).then_some(())
            },
        )
        .await;
    }

    /// `wait_for_network` for grid:3x3.
    pub async fn wait_for_grid(&self) {
        self.wait_for_network(SWITCHES as usize, GRID_ISLS).await;
    }

    /// `PUT /sim/faults`: for every switch, or for the one `faults` names.
    pub async fn put_faults(&self, faults: &Value) {
        let request = self.client.put(self.sim("/sim/faults")).json(faults);
        self.ok("PUT /sim/faults", request).await;
    }

    /// Fails the link between switches `a` and `b` in the simulator.
    pub async fn fail_link(&self, a: u64, b: u64) {
        self.link(a, b, "fail").await;
    }

    pub async fn restore_link(&self, a: u64, b: u64) {
        self.link(a, b, "restore").await;
    }

    async fn link(&self, a: u64, b: u64, change: &str) {
        let path = format!("/sim/links/{}/{}/{change}", switch_id(a), switch_id(b));
        self.ok(&path, self.client.post(self.sim(&path))).await;
    }
}

/// Whether the traced packet left the network at the endpoint, with its VLAN.
pub fn leaves_at(trace: &Value, endpoint: &Value) -> bool {
    let end = &trace["end"];
    end["result"] == "delivered"
        && end["switch_id"] == endpoint["switch_id"]
        && end["port"] == endpoint["port_number"]
        && end["vlan"] == endpoint["vlan_id"]
}
