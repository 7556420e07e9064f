//! The bandwidth model: what one transfer reaches on its own, and how concurrent transfers share
//! the hardware they have in common.
//!
//! A transfer alone reaches its path's line rate times an efficiency that depends on the route,
//! the op and the engine. Each constant below names the published figures it was fitted to; the
//! presets' `[[reference]]` lists mark those figures `fitted` and hold the model to others it
//! was not fitted to (`tests/sim.rs`, `docs/SIMULATOR.md`):
//! - NVLink: copy engines carry ~87% (fitted to HGX H100 CE 371–377 of 450 GB/s and A100
//!   265–275 of 300); SM copies less, because an SM request carries at most 128 B of payload
//!   where the copy engines use 256 B (fitted to SM write ~377, read ~369 of 450). NVLink is
//!   full duplex: both directions at once keep their one-way rate (fitted to HGX H100 CE both
//!   ways 740–773 against 371–377 one way).
//! - PCIe (peer or host): copy engines ~85% (fitted to RTX 4090 host→GPU 24–26 of 31.5 and
//!   PCIe 5.0 ~55.6 of 63). SM writes are posted and reach ~84%; SM reads are limited by
//!   outstanding requests and reach ~56% (fitted to H100: 52.8 and 35.2 of 63).
//! - PCIe reads and writes in opposite directions share the link: a read's requests and
//!   completion credits take [`READ_REQUEST_SHARE`] of its rate from the other direction
//!   (fitted to A100 PCIe host both ways, 24 + 12–13 GB/s, against 25–26 one way). Posted
//!   writes both ways do not (tinygrad's 4090s: 50–51 both ways against 24.4 one way).
//! - Staged through host (no peer access, copy engines only): the copy engines' PCIe rate, in
//!   series with a stall of [`STAGING_MS_PER_GB`] per GB in the driver's pipeline through
//!   pinned memory (fitted to HGX H100 with P2P disabled: 36–38 GB/s over PCIe 5.0). One
//!   stall per byte makes staging cost a larger share on faster links, as it does.
//! - Device-local: 90% of half the memory peak (an assumption; no published figure is checked).
//!
//! When several transfers run at once, every resource (a PCIe link or switch uplink, a root
//! port, the root complex's forwarding, the socket link, host memory, an NVLink bundle, memory)
//! gives out at most 90% of its line rate (the rest is protocol overhead), shared max-min fairly
//! by what each transfer takes from it ([`Machine::loads`]): no transfer gets more than it would
//! alone, and no resource carries more than its share.

use super::machine::Machine;
use super::paths::{Path, Resource, Route};
use crate::probe::plan::Transfer;
use crate::probe::protocol::{Engine, Node};
use std::collections::BTreeMap;

/// The share of a resource's line rate that payload can use when transfers compete for it.
pub const USABLE_SHARE: f64 = 0.9;

/// The share of a PCIe read's rate that its requests take from the link's other direction,
/// unless the host says otherwise: A100 PCIe 4.0 host paths carry 25–26 GB/s one way and
/// 36–37 both ways (nvbandwidth#11), so each direction of the pair gets 90% of 31.5 / 1.55.
pub const READ_REQUEST_SHARE: f64 = 0.55;

/// Milliseconds per GB the driver's pipeline through pinned host memory adds to a staged copy,
/// unless the host says otherwise: with the PCIe 5.0 copy-engine rate of 53.6 GB/s,
/// 1 / (1/53.6 + 0.00835) = 37 GB/s, the middle of HGX H100's 36–38 with P2P disabled
/// (NVIDIA/nccl#1264).
pub const STAGING_MS_PER_GB: f64 = 8.35;

/// Whether the kernel pulls (runs on the destination) or pushes (runs on the source).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Pull,
    Push,
}

impl Direction {
    /// A kernel or copy run by the destination pulls; run by the source, it pushes.
    pub fn of(t: &Transfer) -> Direction {
        if Node::Gpu(t.executor) == t.dst {
            Direction::Pull
        } else {
            Direction::Push
        }
    }
}

/// The fraction of the line rate one transfer reaches alone, or `None` when the engine cannot
/// move bytes over this route.
pub fn efficiency(route: Route, direction: Direction, engine: Engine) -> Option<f64> {
    Some(match (route, engine, direction) {
        (Route::NvLink, Engine::Ce, _) => 0.87,
        (Route::NvLink, Engine::Sm, Direction::Push) => 0.83,
        (Route::NvLink, Engine::Sm, Direction::Pull) => 0.81,
        (Route::Pcie | Route::Staged, Engine::Ce, _) => 0.85,
        (Route::Pcie, Engine::Sm, Direction::Push) => 0.84,
        (Route::Pcie, Engine::Sm, Direction::Pull) => 0.56,
        (Route::Staged, Engine::Sm, _) => return None,
        (Route::DeviceLocal, _, _) => 0.9,
    })
}

/// What a staged copy delivers when its PCIe legs move `link_gbps`: the legs in series with
/// the staging pipeline's stall of `ms_per_gb` per GB.
pub fn staged_gbps(link_gbps: f64, ms_per_gb: f64) -> f64 {
    link_gbps / (1.0 + link_gbps * ms_per_gb / 1e3)
}

/// The PCIe rate a staged copy's legs need to deliver `delivered_gbps` (the inverse of
/// [`staged_gbps`]; unbounded when the stall alone forbids it).
fn staged_link_gbps(delivered_gbps: f64, ms_per_gb: f64) -> f64 {
    let left = 1.0 - delivered_gbps * ms_per_gb / 1e3;
    if left > 0.0 {
        delivered_gbps / left
    } else {
        f64::INFINITY
    }
}

/// One transfer competing for resources: what it would reach alone, what it crosses, and
/// whether it pulls (a read's requests load the PCIe links' other direction).
#[derive(Clone, Debug)]
pub struct Demand<'a> {
    pub alone_gbps: f64,
    pub path: &'a Path,
    pub direction: Direction,
}

/// Max-min fair rates for transfers running at once (progressive filling): every transfer's
/// rate grows together until it reaches what it gets alone or one of the resources it loads is
/// full. A staged copy competes with the PCIe rate of its legs and delivers that rate through
/// the staging pipeline's stall.
pub fn share(machine: &Machine, demands: &[Demand]) -> Vec<f64> {
    let stall = machine.staging_ms_per_gb();
    let staged = |d: &Demand| d.path.route == Route::Staged;
    let wanted: Vec<f64> = demands
        .iter()
        .map(|d| match staged(d) {
            true => staged_link_gbps(d.alone_gbps, stall),
            false => d.alone_gbps,
        })
        .collect();
    let loads: Vec<Vec<(Resource, f64)>> = demands
        .iter()
        .map(|d| machine.loads(d.path, d.direction))
        .collect();
    let mut left: BTreeMap<Resource, f64> = BTreeMap::new();
    for &(r, _) in loads.iter().flatten() {
        left.entry(r)
            .or_insert_with(|| machine.capacity(r) * USABLE_SHARE);
    }
    let mut rates = vec![0.0; demands.len()];
    let mut growing: Vec<usize> = (0..demands.len()).filter(|&i| wanted[i] > 0.0).collect();
    while !growing.is_empty() {
        let mut weight: BTreeMap<Resource, f64> = BTreeMap::new();
        for &i in &growing {
            for &(r, w) in &loads[i] {
                *weight.entry(r).or_insert(0.0) += w;
            }
        }
        let by_resource = weight
            .iter()
            .map(|(r, w)| left[r] / w)
            .fold(f64::INFINITY, f64::min);
        let by_demand = growing
            .iter()
            .map(|&i| wanted[i] - rates[i])
            .fold(f64::INFINITY, f64::min);
        let step = by_resource.min(by_demand).max(0.0);
        if !step.is_finite() {
            // Nothing bounds these transfers (no resource, unbounded demand): none can be
            // measured, so none gets a rate.
            break;
        }
        for &i in &growing {
            rates[i] += step;
        }
        for (r, w) in &weight {
            if let Some(cap) = left.get_mut(r) {
                *cap -= step * w;
            }
        }
        // Stop growing transfers that are satisfied or load a full resource.
        const EPSILON: f64 = 1e-9;
        growing.retain(|&i| {
            rates[i] < wanted[i] - EPSILON && loads[i].iter().all(|(r, _)| left[r] > EPSILON)
        });
    }
    rates
        .iter()
        .zip(demands)
        .map(|(&rate, d)| match staged(d) {
            true => staged_gbps(rate, stall),
            false => rate,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_staging_stall_and_its_inverse_agree() {
        for link in [10.0, 26.8, 53.6] {
            let delivered = staged_gbps(link, STAGING_MS_PER_GB);
            assert!(delivered < link);
            let back = staged_link_gbps(delivered, STAGING_MS_PER_GB);
            assert!((back - link).abs() < 1e-9, "{link} → {delivered} → {back}");
        }
        assert_eq!(staged_link_gbps(1000.0, STAGING_MS_PER_GB), f64::INFINITY);
    }
}
