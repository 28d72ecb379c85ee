//! Flags that tune flow operations, shared by `up` and `topology`.

use clap::Args;
use hubspoke_fsm::operation::Timeouts;
use hubspoke_spokes::speaker::RetryPolicy;
use hubspoke_topology::dataflow::Settings;

#[derive(Args, Debug, Clone)]
pub struct OperationArgs {
    /// Deadline of a whole flow operation (create, delete).
    #[arg(long, default_value_t = 30_000)]
    pub operation_timeout_ms: u64,
    /// How long one southbound command attempt waits for its response.
    #[arg(long, default_value_t = 2_000)]
    pub command_timeout_ms: u64,
    /// Attempts per southbound command before it is given up.
    #[arg(long, default_value_t = 3)]
    pub command_attempts: u32,
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
        }
    }
}
