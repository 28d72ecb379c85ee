//! Counters shared by the workers of a topology, rendered in the Prometheus text format.

use std::collections::HashMap;

use hubspoke_bus::metrics::render;
pub use hubspoke_bus::metrics::{Counter, Gauge};
use parking_lot::Mutex;

macro_rules! metrics {
    (counters { $($counter:ident: $counter_help:literal,)* } gauges { $($gauge:ident: $gauge_help:literal,)* }) => {
        #[derive(Debug, Default)]
        pub struct Metrics {
            $(pub $counter: Counter,)*
            $(pub $gauge: Gauge,)*
            /// Not rendered: when the coordinators' earliest deadline falls, so an idle source
            /// wakes for it instead of ticking.
            pub next_deadline: NextDeadline,
        }

        impl Metrics {
            pub fn render(&self) -> String {
                let mut text = String::new();
                $(render(&mut text, stringify!($counter), $counter_help, "counter", self.$counter.get());)*
                $(render(&mut text, stringify!($gauge), $gauge_help, "gauge", self.$gauge.get());)*
                text
            }
        }
    };
}

/// The earliest deadline each worker's coordinator holds (logical ms).
#[derive(Debug, Default)]
pub struct NextDeadline(Mutex<HashMap<usize, u64>>);

impl NextDeadline {
    pub fn set(&self, worker: usize, at_ms: Option<u64>) {
        let mut by_worker = self.0.lock();
        match at_ms {
            Some(at_ms) => by_worker.insert(worker, at_ms),
            None => by_worker.remove(&worker),
        };
    }

    /// The earliest over every worker of the process, if any deadline is pending.
    pub fn earliest(&self) -> Option<u64> {
        self.0.lock().values().min().copied()
    }
}

metrics! {
    counters {
    requests_rejected: "Northbound requests refused before an operation started.",
    operations_started: "Flow operations (create, delete, update, reroute) started by the hub.",
    operations_recovered: "Operations found in flight after a restart and run again (delete) or synced.",
    requests_deduplicated: "Requests sent again with a correlation id already answered or in progress.",
    operations_remediated: "Operations still running after every deadline they can arm (a bug made visible), dropped and their flows synced.",
    reroutes_started: "Reroutes the network started: flows on a down link, DOWN flows after a link came up.",
    swaps_started: "Protected flows swapped onto their protected path at once because their primary broke.",
    operations_finished: "Flow operations that reached a final state.",
    operation_timeouts: "Operation deadlines that fired while the operation was in flight.",
    deadlines_fired: "Deadlines the coordinator fired (hub and speaker).",
    sb_commands_sent: "Southbound commands sent, retries included.",
    sb_retries: "Southbound command attempts after the first.",
    sb_commands_failed: "Southbound commands given up on.",
    sb_responses_dropped: "Southbound responses dropped as late, duplicate or abandoned.",
    switch_sweeps: "Switches the sweep validated and synced.",
    excess_rules_removed: "Rules on switches that no flow expects, found by a sync and handed to the removal debt.",
    missing_rules_reinstalled: "Rules found missing or different by a sync, whose flows were repaired.",
    rules_removed_from_debt: "Owed rules confirmed removed.",
    }
    gauges {
    deadlines_pending: "Deadlines registered with the coordinators and not yet fired or cancelled.",
    rules_pending_removal: "Rules owed: their removal not confirmed yet, retried until it is.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let metrics = Metrics::default();
        metrics.sb_retries.add(3);
        let text = metrics.render();
        assert!(
            text.contains("# TYPE hubspoke_sb_retries counter\nhubspoke_sb_retries 3\n"),
            "{text}"
        );
    }
}
