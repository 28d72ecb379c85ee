//! The OpenFlow speaker's flags, shared by `hubspoke up --switches openflow` and
//! `hubspoke speaker`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use hubspoke_of_switches::SpeakerConfig;

#[derive(Args, Debug)]
pub struct OpenFlowArgs {
    /// Where OpenFlow 1.3 switches connect (their controller target: tcp:HOST:PORT).
    #[arg(long, default_value = "127.0.0.1:6653")]
    openflow_listen: SocketAddr,
    /// How often every switch sends a discovery probe out of each port.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    discovery_interval_ms: u64,
    /// A link whose probes have not arrived for this long is down.
    #[arg(long, default_value_t = 3_500, value_parser = clap::value_parser!(u64).range(1..))]
    discovery_timeout_ms: u64,
    /// The capacity of a link whose ports report no speed (Open vSwitch's dummy and patch
    /// ports report none), in kbps.
    #[arg(long, default_value_t = hubspoke_fsm::network::DEFAULT_LINK_CAPACITY_KBPS)]
    default_link_capacity_kbps: u64,
    /// Silence after which a switch is sent an echo request; three of them close its
    /// connection.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    echo_interval_ms: u64,
}

impl OpenFlowArgs {
    pub fn speaker_config(&self) -> SpeakerConfig {
        let mut config = SpeakerConfig {
            listen: self.openflow_listen,
            discovery_interval: Duration::from_millis(self.discovery_interval_ms),
            ..SpeakerConfig::default()
        };
        config.discovery.timeout_ms = self.discovery_timeout_ms;
        config.discovery.default_capacity_kbps = self.default_link_capacity_kbps;
        config.session.echo_interval_ms = self.echo_interval_ms;
        config
    }
}
