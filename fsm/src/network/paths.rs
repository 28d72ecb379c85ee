//! Path search over a [`Network`]: the best path by a weight (Dijkstra), the k best (Yen),
//! and the cheapest within a latency limit.
//!
//! Every search takes `usable`: what an ISL has free for the flow, `None` when the flow must
//! not use it. A path needs `bandwidth` free on each of its ISLs in both directions. Ties go to
//! the path found first, exploring ports in order, so every answer is deterministic.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

use serde::{Deserialize, Serialize};

use super::Network;
use crate::{Isl, SwitchId};

/// How many of the cheapest paths a `MAX_LATENCY` search looks through for one within the
/// limit before it settles for the lowest-latency path.
pub const MAX_LATENCY_CANDIDATES: usize = 8;

/// What a path search minimises (OpenKilda's weight functions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathWeight {
    /// The sum of the ISLs' costs.
    Cost,
    /// The sum of the ISLs' latencies.
    Latency,
    /// The sum of the costs; between equally cheap paths, the one whose narrowest ISL has
    /// the most bandwidth available.
    CostThenBandwidth,
}

/// A path and its totals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoundPath {
    pub isls: Vec<Isl>,
    pub cost: u64,
    pub latency_ns: u64,
    /// The least bandwidth `usable` gave on its ISLs, either direction (`u64::MAX` for a
    /// one-switch path).
    pub available_bandwidth: u64,
}

/// The totals of a path so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Totals {
    cost: u64,
    latency_ns: u64,
    narrowest: u64,
}

impl Totals {
    const EMPTY: Totals = Totals {
        cost: 0,
        latency_ns: 0,
        narrowest: u64::MAX,
    };
}

/// A search's order: lower is better.
type Rank = (u64, u64);

impl PathWeight {
    fn rank(self, totals: &Totals) -> Rank {
        match self {
            PathWeight::Cost => (totals.cost, 0),
            PathWeight::Latency => (totals.latency_ns, 0),
            PathWeight::CostThenBandwidth => (totals.cost, u64::MAX - totals.narrowest),
        }
    }
}

/// What a spur search of Yen's algorithm must avoid: links (few) and nodes.
#[derive(Default)]
struct Bans {
    links: Vec<usize>,
    switches: Vec<usize>,
}

/// The bandwidth a link (by index) offers the flow in both directions, `None` if unusable.
type Offer<'a> = &'a dyn Fn(usize) -> Option<u64>;

impl Network {
    /// The cheapest path (the `COST` strategy): see [`Network::best_path`].
    pub fn shortest_path(
        &self,
        src: SwitchId,
        dst: SwitchId,
        bandwidth: u64,
        usable: impl Fn(&Isl) -> Option<u64>,
    ) -> Option<Vec<Isl>> {
        self.best_path(src, dst, bandwidth, PathWeight::Cost, usable)
            .map(|path| path.isls)
    }

    /// The path from `src` to `dst` with the lowest `weight` whose every ISL is usable with
    /// `bandwidth` both ways.
    pub fn best_path(
        &self,
        src: SwitchId,
        dst: SwitchId,
        bandwidth: u64,
        weight: PathWeight,
        usable: impl Fn(&Isl) -> Option<u64>,
    ) -> Option<FoundPath> {
        let offer = self.offer(bandwidth, &usable);
        let (links, totals) =
            self.search(src, dst, weight, Totals::EMPTY, &offer, &Bans::default())?;
        Some(self.found(&links, totals))
    }

    /// Up to `count` loopless paths from `src` to `dst`, best `weight` first (Yen's
    /// algorithm), each usable with `bandwidth` both ways.
    pub fn best_paths(
        &self,
        src: SwitchId,
        dst: SwitchId,
        bandwidth: u64,
        weight: PathWeight,
        count: usize,
        usable: impl Fn(&Isl) -> Option<u64>,
    ) -> Vec<FoundPath> {
        let offer = self.remembered(self.offer(bandwidth, &usable));
        self.yen(src, dst, weight, count, &offer)
            .into_iter()
            .map(|(links, totals)| self.found(&links, totals))
            .collect()
    }

    /// The cheapest path whose latency is at most `limit_ns`: the cheapest path if it is
    /// within, else the cheapest within of the [`MAX_LATENCY_CANDIDATES`] cheapest, else
    /// the lowest-latency path if that is within. `None` when no path is within.
    pub fn cheapest_within(
        &self,
        src: SwitchId,
        dst: SwitchId,
        bandwidth: u64,
        limit_ns: u64,
        usable: impl Fn(&Isl) -> Option<u64>,
    ) -> Option<FoundPath> {
        let offer = self.remembered(self.offer(bandwidth, &usable));
        let within = |(links, totals): &(Vec<usize>, Totals)| {
            (totals.latency_ns <= limit_ns).then(|| self.found(links, *totals))
        };
        let bans = Bans::default();
        let cheapest = self.search(src, dst, PathWeight::Cost, Totals::EMPTY, &offer, &bans)?;
        if let Some(path) = within(&cheapest) {
            return Some(path);
        }
        let fastest = self.search(src, dst, PathWeight::Latency, Totals::EMPTY, &offer, &bans)?;
        let fastest = within(&fastest)?;
        let cheap = self.yen(src, dst, PathWeight::Cost, MAX_LATENCY_CANDIDATES, &offer);
        Some(cheap.iter().find_map(within).unwrap_or(fastest))
    }

    /// `usable` as the search asks it: by link index, both directions, with the bandwidth.
    fn offer<'a>(
        &'a self,
        bandwidth: u64,
        usable: &'a impl Fn(&Isl) -> Option<u64>,
    ) -> impl Fn(usize) -> Option<u64> + 'a {
        move |index| {
            let isl = self.links[index].isl;
            let there = usable(&isl).filter(|&kbps| kbps >= bandwidth)?;
            let back = usable(&isl.reversed()).filter(|&kbps| kbps >= bandwidth)?;
            Some(there.min(back))
        }
    }

    /// `offer`, asked once per link however many searches ask (Yen's spur searches).
    fn remembered<'a>(
        &self,
        offer: impl Fn(usize) -> Option<u64> + 'a,
    ) -> impl Fn(usize) -> Option<u64> + 'a {
        let known = RefCell::new(vec![None; self.links.len()]);
        move |index| {
            if let Some(offered) = known.borrow()[index] {
                return offered;
            }
            let offered = offer(index);
            known.borrow_mut()[index] = Some(offered);
            offered
        }
    }

    fn extend(&self, totals: Totals, index: usize, offered: u64) -> Totals {
        let link = &self.links[index];
        Totals {
            cost: totals.cost.saturating_add(link.cost),
            latency_ns: totals.latency_ns.saturating_add(link.latency_ns),
            narrowest: totals.narrowest.min(offered),
        }
    }

    fn found(&self, links: &[usize], totals: Totals) -> FoundPath {
        FoundPath {
            isls: links.iter().map(|&i| self.links[i].isl).collect(),
            cost: totals.cost,
            latency_ns: totals.latency_ns,
            available_bandwidth: totals.narrowest,
        }
    }

    /// Dijkstra from `src`, whose path so far has `start`, to `dst`. Equal ranks keep the
    /// first found, and the heap pops equal ranks in the order they were reached: with equal
    /// weights it is a breadth-first search in port order.
    fn search(
        &self,
        src: SwitchId,
        dst: SwitchId,
        weight: PathWeight,
        start: Totals,
        offer: Offer,
        bans: &Bans,
    ) -> Option<(Vec<usize>, Totals)> {
        let (Some(&from), Some(&to)) = (self.nodes.get(&src), self.nodes.get(&dst)) else {
            return (src == dst).then_some((Vec::new(), start));
        };
        // Per node reached: its rank, totals and the link it was reached by.
        let mut reached: Vec<Option<(Rank, Totals, Option<usize>)>> =
            vec![None; self.outgoing.len()];
        let mut settled = vec![false; self.outgoing.len()];
        for &banned in &bans.switches {
            settled[banned] = true;
        }
        let mut heap = BinaryHeap::new();
        let mut order = 0u64;
        reached[from] = Some((weight.rank(&start), start, None));
        heap.push(Reverse((weight.rank(&start), order, from)));
        while let Some(Reverse((_, _, at))) = heap.pop() {
            if std::mem::replace(&mut settled[at], true) {
                continue;
            }
            let Some((_, totals, _)) = reached[at] else {
                continue;
            };
            if at == to {
                return Some((self.walk_back(&reached, to), totals));
            }
            for &index in &self.outgoing[at] {
                let next = self.link_to[index];
                if settled[next] || bans.links.contains(&index) {
                    continue;
                }
                // The rank if the link offered everything is the best it can give: a next
                // switch reached as well already need not ask the link (`offer` is the costly
                // part of a search).
                let hoped = weight.rank(&self.extend(totals, index, u64::MAX));
                if reached[next].is_some_and(|(known, ..)| known <= hoped) {
                    continue;
                }
                let Some(offered) = offer(index) else {
                    continue;
                };
                let totals = self.extend(totals, index, offered);
                let rank = weight.rank(&totals);
                if reached[next].is_some_and(|(known, ..)| known <= rank) {
                    continue;
                }
                reached[next] = Some((rank, totals, Some(index)));
                order += 1;
                heap.push(Reverse((rank, order, next)));
            }
        }
        None
    }

    /// The links by which node `to` was reached, from where the search started.
    fn walk_back(
        &self,
        reached: &[Option<(Rank, Totals, Option<usize>)>],
        to: usize,
    ) -> Vec<usize> {
        let mut links = Vec::new();
        let mut cursor = to;
        while let Some((_, _, Some(index))) = reached[cursor] {
            links.push(index);
            cursor = self.nodes[&self.links[index].isl.src_switch];
        }
        links.reverse();
        links
    }

    /// Yen's k shortest loopless paths.
    fn yen(
        &self,
        src: SwitchId,
        dst: SwitchId,
        weight: PathWeight,
        count: usize,
        offer: Offer,
    ) -> Vec<(Vec<usize>, Totals)> {
        let mut best = Vec::new();
        if count == 0 {
            return best;
        }
        let Some(first) = self.search(src, dst, weight, Totals::EMPTY, offer, &Bans::default())
        else {
            return best;
        };
        best.push(first);
        // Candidates by rank, then by their links, so the order is deterministic.
        let mut candidates: BTreeSet<(Rank, Vec<usize>, Totals)> = BTreeSet::new();
        while best.len() < count {
            let (previous, _) = &best[best.len() - 1];
            let mut root_totals = Totals::EMPTY;
            for spur_at in 0..previous.len() {
                let root = &previous[..spur_at];
                let spur_switch = match root.last() {
                    Some(&last) => self.links[last].isl.dst_switch,
                    None => src,
                };
                let mut bans = Bans::default();
                for (path, _) in &best {
                    if path.len() > spur_at && path[..spur_at] == *root {
                        bans.links.push(path[spur_at]);
                    }
                }
                bans.switches.extend(
                    root.iter()
                        .filter_map(|&i| self.nodes.get(&self.links[i].isl.src_switch)),
                );
                if let Some((spur, totals)) =
                    self.search(spur_switch, dst, weight, root_totals, offer, &bans)
                {
                    let links: Vec<usize> = root.iter().chain(&spur).copied().collect();
                    if !best.iter().any(|(known, _)| *known == links) {
                        candidates.insert((weight.rank(&totals), links, totals));
                    }
                }
                let Some(offered) = offer(previous[spur_at]) else {
                    break;
                };
                root_totals = self.extend(root_totals, previous[spur_at], offered);
            }
            let Some((_, links, totals)) = candidates.pop_first() else {
                break;
            };
            best.push((links, totals));
        }
        best
    }
}

#[cfg(test)]
mod tests;
