//! The embedded default, `hubspoke up`: the topology, the switch simulator and the REST shim in
//! one process over the in-process bus, with the flow log and the switches' tables in a data
//! directory. With `--switches openflow` the OpenFlow speaker takes the simulator's place, and
//! real switches connect to it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hubspoke_bus::clock::now_ms;
use hubspoke_bus::flow_log::{FlowLogError, RedbFlowLog, FLOW_LOG_FILE};
use hubspoke_bus::InProcessBus;
use hubspoke_fsm::network::Network;
use hubspoke_northbound::Northbound;
use hubspoke_of_switches::{OpenFlowSpeaker, SpeakerConfig, SpeakerError};
use hubspoke_rest::Readiness;
use hubspoke_switch_sim::{sim_router, FabricError, Simulator, SimulatorHandle, SwitchFabric};
use hubspoke_topology::cluster::ClusterWatch;
use hubspoke_topology::dataflow::Settings;
use hubspoke_topology::live::{BusPorts, LiveConfig, LiveError, LiveTopology};
use hubspoke_topology::metrics::Metrics;
use parking_lot::Mutex;

/// How the data directory is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Storage {
    /// As the product runs: the flow log fsyncs every append, the switches' tables are a
    /// durable file.
    #[default]
    Durable,
    /// For measuring what the fsync-bound parts cost: the flow log commits without fsync, the
    /// switches' tables stay in memory.
    WithoutFsync,
}

/// Which switches the topology programs.
#[derive(Clone, Debug)]
pub enum Switches {
    /// The simulator, with this network; its tables are kept in the data directory.
    Simulated(Arc<Network>),
    /// Real OpenFlow 1.3 switches, connecting to the speaker; the network is what they report.
    OpenFlow(SpeakerConfig),
}

#[derive(Clone, Debug)]
pub struct EmbeddedConfig {
    pub switches: Switches,
    /// Timely worker threads; flows are spread over them by flow id.
    pub workers: usize,
    pub settings: Settings,
    /// Where the flow log and the simulated switches' tables are kept across restarts.
    pub data_dir: PathBuf,
    /// How long the history of finished operations is kept (flow records: forever).
    pub history_retention_ms: u64,
    pub storage: Storage,
    /// Fails the process whole when a worker thread dies (see `ClusterWatch`).
    pub watch: Arc<ClusterWatch>,
}

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("opening the simulated switches' store: {0}")]
    Switches(#[from] FabricError),
    #[error("opening {path}: {source}")]
    FlowLog {
        path: PathBuf,
        #[source]
        source: FlowLogError,
    },
    #[error(transparent)]
    Topology(#[from] LiveError),
    #[error(transparent)]
    Speaker(#[from] SpeakerError),
}

/// The southbound part that answers `sb.commands`.
enum Southbound {
    Simulated {
        fabric: Arc<Mutex<SwitchFabric>>,
        simulator: SimulatorHandle,
    },
    OpenFlow(OpenFlowSpeaker),
}

/// Everything of `hubspoke up` but its listener. Dropping it stops the topology, then the
/// simulator.
pub struct Embedded {
    pub bus: Arc<InProcessBus>,
    pub metrics: Arc<Metrics>,
    topology: Option<LiveTopology>,
    southbound: Option<Southbound>,
}

impl Embedded {
    pub fn start(config: EmbeddedConfig) -> Result<Embedded, EmbeddedError> {
        let bus = InProcessBus::new();
        let metrics = Arc::new(Metrics::default());
        let southbound = match &config.switches {
            Switches::Simulated(network) => {
                // The simulated switches keep their tables across restarts, as real ones do.
                let fabric = match config.storage {
                    Storage::Durable => SwitchFabric::open_in(network, &config.data_dir)?,
                    Storage::WithoutFsync => SwitchFabric::new(network),
                };
                let fabric = Arc::new(Mutex::new(fabric));
                let simulator = Simulator::on_bus(fabric.clone(), &bus);
                Southbound::Simulated { fabric, simulator }
            }
            Switches::OpenFlow(speaker) => Southbound::OpenFlow(OpenFlowSpeaker::start(
                *speaker,
                bus.sb_commands.receiver(),
                bus.sb_responses.clone(),
                bus.sb_events.clone(),
            )?),
        };
        let flow_log = RedbFlowLog::open_in(
            &config.data_dir,
            config.history_retention_ms,
            now_ms(),
            bus.flow_events.clone(),
        )
        .map_err(|source| EmbeddedError::FlowLog {
            path: config.data_dir.join(FLOW_LOG_FILE),
            source,
        })?;
        let flow_log = match config.storage {
            Storage::Durable => flow_log,
            Storage::WithoutFsync => flow_log.without_fsync(),
        };
        let live = LiveConfig {
            workers: config.workers,
            settings: config.settings,
            watch: config.watch,
            ..LiveConfig::default()
        };
        let ports = BusPorts::in_process(&bus, Arc::new(flow_log));
        let topology = LiveTopology::start(live, ports, metrics.clone())?;
        Ok(Embedded {
            bus,
            metrics,
            topology: Some(topology),
            southbound: Some(southbound),
        })
    }

    /// The simulated switches, unless real ones are programmed.
    pub fn fabric(&self) -> Option<&Arc<Mutex<SwitchFabric>>> {
        match &self.southbound {
            Some(Southbound::Simulated { fabric, .. }) => Some(fabric),
            _ => None,
        }
    }

    /// Where OpenFlow switches connect, when they are the ones programmed.
    pub fn openflow_addr(&self) -> Option<std::net::SocketAddr> {
        match &self.southbound {
            Some(Southbound::OpenFlow(speaker)) => Some(speaker.local_addr()),
            _ => None,
        }
    }

    /// The REST API of `hubspoke up`: the northbound shim, its metrics, and (with the
    /// simulator) its `/sim/` control API on one router. Call it once: the shim consumes the
    /// bus's answers.
    pub fn router(&self, request_timeout: Duration) -> Router {
        let metrics = self.metrics.clone();
        let speaker_metrics = match &self.southbound {
            Some(Southbound::OpenFlow(speaker)) => Some(speaker.metrics()),
            _ => None,
        };
        let readiness = self
            .topology
            .as_ref()
            .map_or_else(Readiness::new, |t| topology_readiness(t.watch()));
        let northbound = Northbound {
            requests: self.bus.nb_requests.clone(),
            responses: self.bus.nb_responses.receiver(),
            flow_events: self.bus.flow_events.receiver(),
            network_states: self.bus.network_states.receiver(),
            request_timeout,
            metrics: Arc::new(move || {
                let mut text = metrics.render();
                if let Some(speaker) = &speaker_metrics {
                    text.push_str(&speaker.render());
                }
                text
            }),
            readiness,
        };
        let router = northbound.router();
        match self.fabric() {
            Some(fabric) => router.merge(sim_router(fabric.clone(), self.bus.sb_events.clone())),
            None => router,
        }
    }

    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(topology) = self.topology.take() {
            topology.stop();
        }
        match self.southbound.take() {
            Some(Southbound::Simulated { simulator, .. }) => simulator.stop(),
            Some(Southbound::OpenFlow(speaker)) => speaker.stop(),
            None => {}
        }
    }
}

/// What a topology must have before it takes traffic: its cluster connected and its flows
/// recovered.
pub fn topology_readiness(watch: &Arc<ClusterWatch>) -> Readiness {
    let (peers, recovery) = (watch.clone(), watch.clone());
    Readiness::new()
        .with("cluster peers connected", move || peers.peers_connected())
        .with("recovery done", move || recovery.recovery_done())
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.shut_down();
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use hubspoke_rest::test_support::get_json as get;

    use super::*;

    #[tokio::test]
    async fn the_shim_and_the_simulator_api_share_one_router() {
        let data = tempfile::tempdir().expect("a data directory");
        let embedded = Embedded::start(EmbeddedConfig {
            switches: Switches::Simulated(Arc::new(
                Network::generate("grid:3x3").unwrap().unwrap(),
            )),
            workers: 1,
            settings: Settings::default(),
            data_dir: data.path().to_path_buf(),
            history_retention_ms: u64::MAX,
            storage: Storage::Durable,
            watch: ClusterWatch::alone(ClusterWatch::logging()),
        })
        .expect("started");
        let router = embedded.router(Duration::from_secs(5));
        let rules = get(&router, "/sim/switches/00:00:00:00:00:00:00:01/rules").await;
        assert_eq!(rules, (StatusCode::OK, serde_json::json!([])));
        let flows = get(&router, "/v2/flows").await;
        assert_eq!(flows, (StatusCode::OK, serde_json::json!([])));
        let unknown = get(&router, "/sim/unknown").await;
        assert_eq!(unknown.0, StatusCode::NOT_FOUND);
        assert_eq!(unknown.1["error_type"], "not-found", "{:?}", unknown.1);
        embedded.stop();
    }
}
