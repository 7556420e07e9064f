//! The bandwidth model: what one transfer reaches on its own, and how concurrent transfers share
//! the hardware they have in common.
//!
//! A transfer alone reaches its path's line rate times an efficiency that depends on the route,
//! the op and the engine. The efficiencies come from the published figures in each preset's
//! `[[reference]]` list (the tests check every one within ±10%):
//! - NVLink: copy engines carry ~87% (HGX H100 CE 371–377 of 450 GB/s; A100 265–275 of 300);
//!   SM copies less, because an SM request carries at most 128 B of payload where the copy
//!   engines use 256 B (SM write ~377, read ~369 of 450).
//! - PCIe (peer or host): copy engines ~84% (RTX 4090 host→device 24–26 of 31.5; PCIe 5.0
//!   ~55.6 of 63). SM writes are posted and reach ~84%; SM reads are limited by outstanding
//!   requests and reach ~56% (H100: 52.8 and 35.2 of 63).
//! - Staged through host (no peer access, copy engines only): ~59% of the slower PCIe link
//!   (HGX H100 with P2P disabled: 36–38 GB/s over PCIe 5.0).
//! - Device-local: 90% of half the memory peak (an assumption; no published figure is checked).
//!
//! When several transfers run at once, every resource (a PCIe link or switch uplink, a root
//! port, the socket link, an NVLink bundle, memory) gives out at most 90% of its line rate (the
//! rest is protocol overhead), shared max-min fairly: no transfer gets more than it would alone,
//! and no resource carries more than its share.

use super::machine::Machine;
use super::paths::{Path, Resource, Route};
use crate::probe::protocol::Engine;
use std::collections::BTreeMap;

/// The share of a resource's line rate that payload can use when transfers compete for it.
pub const USABLE_SHARE: f64 = 0.9;

/// Whether the kernel pulls (runs on the destination) or pushes (runs on the source).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Pull,
    Push,
}

/// The fraction of the line rate one transfer reaches alone, or `None` when the engine cannot
/// move bytes over this route.
pub fn efficiency(route: Route, direction: Direction, engine: Engine) -> Option<f64> {
    Some(match (route, engine, direction) {
        (Route::NvLink, Engine::Ce, _) => 0.87,
        (Route::NvLink, Engine::Sm, Direction::Push) => 0.83,
        (Route::NvLink, Engine::Sm, Direction::Pull) => 0.81,
        (Route::Pcie, Engine::Ce, _) => 0.84,
        (Route::Pcie, Engine::Sm, Direction::Push) => 0.84,
        (Route::Pcie, Engine::Sm, Direction::Pull) => 0.56,
        (Route::Staged, Engine::Ce, _) => 0.59,
        (Route::Staged, Engine::Sm, _) => return None,
        (Route::DeviceLocal, _, _) => 0.9,
    })
}

/// One transfer competing for resources: what it would reach alone, and what it crosses.
#[derive(Clone, Debug)]
pub struct Demand<'a> {
    pub alone_gbps: f64,
    pub path: &'a Path,
}

/// Max-min fair rates for transfers running at once (progressive filling): every transfer's
/// rate grows together until it reaches what it gets alone or one of its resources is full.
pub fn share(machine: &Machine, demands: &[Demand]) -> Vec<f64> {
    let mut left: BTreeMap<Resource, f64> = BTreeMap::new();
    for d in demands {
        for &r in &d.path.resources {
            left.entry(r)
                .or_insert_with(|| machine.capacity(r) * USABLE_SHARE);
        }
    }
    let mut rates = vec![0.0; demands.len()];
    let mut growing: Vec<usize> = (0..demands.len())
        .filter(|&i| demands[i].alone_gbps > 0.0)
        .collect();
    while !growing.is_empty() {
        let users = |r: &Resource| {
            growing
                .iter()
                .filter(|&&i| demands[i].path.resources.contains(r))
                .count() as f64
        };
        let by_resource = left
            .iter()
            .filter(|(r, _)| users(r) > 0.0)
            .map(|(r, cap)| cap / users(r))
            .fold(f64::INFINITY, f64::min);
        let by_demand = growing
            .iter()
            .map(|&i| demands[i].alone_gbps - rates[i])
            .fold(f64::INFINITY, f64::min);
        let step = by_resource.min(by_demand).max(0.0);
        for &i in &growing {
            rates[i] += step;
            for r in &demands[i].path.resources {
                if let Some(cap) = left.get_mut(r) {
                    *cap -= step;
                }
            }
        }
        // Stop growing transfers that are satisfied or cross a full resource.
        const EPSILON: f64 = 1e-9;
        growing.retain(|&i| {
            rates[i] < demands[i].alone_gbps - EPSILON
                && demands[i].path.resources.iter().all(|r| left[r] > EPSILON)
        });
    }
    rates
}
