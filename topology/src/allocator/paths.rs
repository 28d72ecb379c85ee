//! Which path a flow gets by its path computation strategy, and the candidate paths of
//! `GET /v2/network/paths`.

use hubspoke_fsm::network::{FoundPath, Network, PathWeight, MAX_LATENCY_CANDIDATES};
use hubspoke_fsm::{ErrorBody, FlowRequest, Isl, PathComputationStrategy, PathsQuery};

/// A flow's path, and why it falls short of what the flow asked for, if it does.
#[derive(Debug)]
pub(super) struct Chosen {
    pub isls: Vec<Isl>,
    /// `MAX_LATENCY` found a path only within `max_latency_tier2`: the flow is DEGRADED.
    pub degraded: Option<String>,
}

const NS_PER_MS: u64 = 1_000_000;

/// The weight a strategy's search minimises. `MAX_LATENCY` without a limit is `LATENCY`, as
/// in OpenKilda.
fn weight_of(strategy: PathComputationStrategy) -> PathWeight {
    match strategy {
        PathComputationStrategy::Cost => PathWeight::Cost,
        PathComputationStrategy::Latency | PathComputationStrategy::MaxLatency => {
            PathWeight::Latency
        }
        PathComputationStrategy::CostAndAvailableBandwidth => PathWeight::CostThenBandwidth,
    }
}

/// Nanoseconds as milliseconds with three decimals, for people.
fn as_ms(ns: u64) -> String {
    format!("{}.{:03}", ns / NS_PER_MS, ns % NS_PER_MS / 1_000)
}

/// Why no path was found: none with `bandwidth` free (none up, for 0).
fn no_path(request: &FlowRequest, bandwidth: u64) -> ErrorBody {
    let (src, dst) = (request.source.switch_id, request.destination.switch_id);
    let details = if bandwidth == 0 {
        format!("no path from {src} to {dst} is up")
    } else {
        format!("no path from {src} to {dst} has {bandwidth} kbps available")
    };
    ErrorBody::new(
        503,
        "no-path",
        "Not enough bandwidth or no path found",
        details,
    )
}

/// The path `request` gets by its strategy, with `bandwidth` free both ways on every ISL
/// (`usable`: what each ISL has free for the flow, `None` if it must not be used).
/// `MAX_LATENCY`: the cheapest path within `max_latency`; failing that, within
/// `max_latency_tier2`, DEGRADED; failing both, no path.
pub(super) fn path_for(
    network: &Network,
    request: &FlowRequest,
    bandwidth: u64,
    usable: impl Fn(&Isl) -> Option<u64>,
) -> Result<Chosen, ErrorBody> {
    let (src, dst) = (request.source.switch_id, request.destination.switch_id);
    let strategy = request.path_computation_strategy;
    let (tier1, tier2) = match (strategy, request.max_latency) {
        (PathComputationStrategy::MaxLatency, Some(tier1)) => (tier1, request.max_latency_tier2),
        _ => {
            return network
                .best_path(src, dst, bandwidth, weight_of(strategy), usable)
                .map(|path| Chosen {
                    isls: path.isls,
                    degraded: None,
                })
                .ok_or_else(|| no_path(request, bandwidth))
        }
    };
    let within = |limit_ms: u64| {
        network.cheapest_within(
            src,
            dst,
            bandwidth,
            limit_ms.saturating_mul(NS_PER_MS),
            &usable,
        )
    };
    if let Some(path) = within(tier1) {
        return Ok(Chosen {
            isls: path.isls,
            degraded: None,
        });
    }
    if let Some((tier2, path)) = tier2.and_then(|t| within(t).map(|p| (t, p))) {
        return Ok(Chosen {
            degraded: Some(format!(
                "no path within max_latency {tier1} ms: on a path of {} ms, within max_latency_tier2 {tier2} ms",
                as_ms(path.latency_ns)
            )),
            isls: path.isls,
        });
    }
    let mut none = no_path(request, bandwidth);
    none.error_description += &format!(" within a latency of {} ms", tier2.unwrap_or(tier1));
    Err(none)
}

/// Up to `query.max_path_count` paths between two switches, best first by the strategy's
/// weight, over ISLs that are up (`usable`). `MAX_LATENCY`: the cheapest paths within
/// `max_latency`, or if none is, within `max_latency_tier2`.
pub(super) fn candidate_paths(
    network: &Network,
    query: &PathsQuery,
    usable: impl Fn(&Isl) -> Option<u64>,
) -> Vec<FoundPath> {
    let (src, dst, count) = (query.src_switch, query.dst_switch, query.max_path_count);
    let strategy = query.path_computation_strategy;
    let Some(tier1) = query
        .max_latency
        .filter(|_| strategy == PathComputationStrategy::MaxLatency)
    else {
        return network.best_paths(src, dst, 0, weight_of(strategy), count, usable);
    };
    let mut candidates = network.best_paths(
        src,
        dst,
        0,
        PathWeight::Cost,
        count.max(MAX_LATENCY_CANDIDATES),
        &usable,
    );
    if let Some(fastest) = network.best_path(src, dst, 0, PathWeight::Latency, &usable) {
        if !candidates.contains(&fastest) {
            candidates.push(fastest);
        }
    }
    let within = |limit_ms: u64| -> Vec<FoundPath> {
        candidates
            .iter()
            .filter(|p| p.latency_ns <= limit_ms.saturating_mul(NS_PER_MS))
            .take(count)
            .cloned()
            .collect()
    };
    match (within(tier1), query.max_latency_tier2) {
        (paths, Some(tier2)) if paths.is_empty() => within(tier2),
        (paths, _) => paths,
    }
}
