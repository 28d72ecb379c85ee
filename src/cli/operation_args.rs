//! Flags that tune flow operations, shared by `up` and `topology`.

use clap::Args;
use hubspoke_fsm::operation::Timeouts;
use hubspoke_speaker::RetryPolicy;
use hubspoke_topology::dataflow::Settings;
use hubspoke_topology::hub::RerouteThrottle;
use hubspoke_topology::keeper::KeeperSettings;

#[derive(Args, Debug, Clone)]
pub struct OperationArgs {
    /// Deadline of a whole flow operation (create, delete, update, reroute).
    #[arg(long, default_value_t = 30_000)]
    pub operation_timeout_ms: u64,
    /// How long one southbound command attempt waits for its response.
    #[arg(long, default_value_t = 2_000)]
    pub command_timeout_ms: u64,
    /// Attempts per southbound command before it is given up.
    #[arg(long, default_value_t = 3)]
    pub command_attempts: u32,
    /// A reroute the network triggers (a link went down or came up) waits until no new
    /// trigger came for the flow for this long, so a flapping link costs nothing ...
    #[arg(long, default_value_t = RerouteThrottle::default().delay_ms)]
    pub reroute_delay_ms: u64,
    /// ... but no longer than this after its first trigger.
    #[arg(long, default_value_t = RerouteThrottle::default().max_delay_ms)]
    pub reroute_max_delay_ms: u64,
    /// Every switch is validated and synced once per this period (staggered, a few at a
    /// time); 0 turns the sweep off. A switch coming back is synced at once either way.
    #[arg(long, default_value_t = KeeperSettings::default().sweep_ms / 1000)]
    pub switch_sweep_secs: u64,
}

impl OperationArgs {
    pub fn settings(&self) -> Settings {
        Settings {
            timeouts: Timeouts {
                operation_ms: self.operation_timeout_ms,
                ..Timeouts::default()
            },
            retry: RetryPolicy {
                max_attempts: self.command_attempts.max(1),
                response_timeout_ms: self.command_timeout_ms,
                ..RetryPolicy::default()
            },
            reroute: RerouteThrottle {
                delay_ms: self.reroute_delay_ms,
                max_delay_ms: self.reroute_max_delay_ms.max(self.reroute_delay_ms),
            },
            keeper: KeeperSettings {
                sweep_ms: self.switch_sweep_secs.saturating_mul(1000),
                ..KeeperSettings::default()
            },
        }
    }
}
