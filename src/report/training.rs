//! What the measured links mean for training: how fast a ring all-reduce over the measured GPUs
//! could synchronize gradients, next to the same at the full line rate of the links as they were
//! built (every NVLink up, PCIe at its maximum: `model::capacity`), so a link that is down shows
//! as the gap it is.
//!
//! The estimate follows nccl-tests' bus-bandwidth convention. In a ring all-reduce of `S` bytes
//! over `n` GPUs each GPU sends and receives `2(n−1)/n × S` bytes (a reduce-scatter then an
//! all-gather, each `(n−1)/n × S`), all links busy at once, one direction around the ring. So
//! the ring runs at the pace of its slowest link, and with `busbw` = that link's per-direction
//! rate, the time is `t = 2(n−1)/n × S / busbw`. Of all ring orders the best is the one whose
//! slowest link is fastest; it is searched exhaustively up to [`EXHAUSTIVE_GPUS`] GPUs (at most
//! 8! orders), above that the GPUs' index order is used.
//!
//! Each link's rate is the best per-direction median measured for that ordered pair over the
//! `write` and `read` ops and both engines (NCCL moves data with SM kernels, so the SM figure is
//! the closer one where it is the best; the op and engine used are recorded). Latency, protocol
//! overhead and compute overlap are ignored: this is a lower bound on synchronization time.

use super::run::Report;
use crate::probe::protocol::{Node, Op};
use serde::{Deserialize, Serialize};

/// Rings over more GPUs than this are not searched (9! orders would be needed for 10).
pub const EXHAUSTIVE_GPUS: usize = 9;

/// Gradient sizes estimated: 10 GB, and 140 GB (FP16 gradients of a 70B-parameter model).
pub const SIZES: [(u64, &str); 2] = [
    (10_000_000_000, "10 GB"),
    (140_000_000_000, "140 GB (FP16 gradients of a 70B model)"),
];

/// One ring hop's rate and where the figure came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hop {
    pub src: u32,
    pub dst: u32,
    pub gbps: f64,
    /// e.g. "write sm"; "built for" for the ring at the links' built line rate.
    pub basis: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ring {
    /// GPUs in ring order; data flows from each to the next and from the last to the first.
    pub order: Vec<u32>,
    pub hops: Vec<Hop>,
    /// The slowest hop's rate.
    pub busbw_gbps: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncTime {
    pub bytes: u64,
    pub label: String,
    pub seconds: f64,
    pub seconds_as_built: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub gpus: Vec<u32>,
    pub measured: Ring,
    /// The best ring at the built line rate of every link.
    pub built_for: Option<Ring>,
    pub syncs: Vec<SyncTime>,
}

/// Seconds for a ring all-reduce of `bytes` over `n` GPUs at `busbw_gbps`.
pub fn allreduce_seconds(bytes: u64, n: usize, busbw_gbps: f64) -> f64 {
    let n = n as f64;
    2.0 * (n - 1.0) / n * bytes as f64 / (busbw_gbps * 1e9)
}

/// The estimate over the GPUs the report measured; None with fewer than two GPUs or when no
/// ring has every hop measured.
pub fn estimate(report: &Report) -> Option<Estimate> {
    let gpus: Vec<u32> = report
        .nodes()
        .into_iter()
        .filter_map(|n| match n {
            Node::Gpu(g) => Some(g),
            Node::Host => None,
        })
        .collect();
    if gpus.len() < 2 {
        return None;
    }
    let measured = best_ring(&gpus, &|a, b| measured_hop(report, a, b))?;
    let built_for = best_ring(&gpus, &|a, b| {
        let capacity = report.capacity(Node::Gpu(a), Node::Gpu(b))?;
        Some((capacity.built.gbps, "built for".to_owned()))
    });
    let syncs = SIZES
        .iter()
        .map(|&(bytes, label)| SyncTime {
            bytes,
            label: label.to_owned(),
            seconds: allreduce_seconds(bytes, gpus.len(), measured.busbw_gbps),
            seconds_as_built: built_for
                .as_ref()
                .map(|r| allreduce_seconds(bytes, gpus.len(), r.busbw_gbps)),
        })
        .collect();
    Some(Estimate {
        gpus,
        measured,
        built_for,
        syncs,
    })
}

/// The best per-direction median for `a → b` over write and read, either engine.
fn measured_hop(report: &Report, a: u32, b: u32) -> Option<(f64, String)> {
    report
        .cells
        .iter()
        .filter(|c| c.src == Node::Gpu(a) && c.dst == Node::Gpu(b))
        .filter(|c| matches!(c.op, Op::Write | Op::Read) && !c.corrupted())
        .filter_map(|c| {
            let gbps = c.directions.first()?.median_gbps;
            Some((gbps, format!("{} {}", c.op.name(), c.engine.name())))
        })
        .max_by(|x, y| x.0.total_cmp(&y.0))
}

type HopRate<'a> = &'a dyn Fn(u32, u32) -> Option<(f64, String)>;

/// The ring order whose slowest hop is fastest.
fn best_ring(gpus: &[u32], rate: HopRate) -> Option<Ring> {
    let orders: Vec<Vec<u32>> = if gpus.len() <= EXHAUSTIVE_GPUS {
        // Fix the first GPU: rotations of a ring are the same ring.
        permutations(&gpus[1..])
            .into_iter()
            .map(|rest| [&gpus[..1], &rest[..]].concat())
            .collect()
    } else {
        vec![gpus.to_vec()]
    };
    orders
        .into_iter()
        .filter_map(|order| ring(order, rate))
        .max_by(|x, y| x.busbw_gbps.total_cmp(&y.busbw_gbps))
}

fn ring(order: Vec<u32>, rate: HopRate) -> Option<Ring> {
    let hops = (0..order.len())
        .map(|i| {
            let (src, dst) = (order[i], order[(i + 1) % order.len()]);
            let (gbps, basis) = rate(src, dst)?;
            Some(Hop {
                src,
                dst,
                gbps,
                basis,
            })
        })
        .collect::<Option<Vec<Hop>>>()?;
    let busbw_gbps = hops.iter().map(|h| h.gbps).fold(f64::INFINITY, f64::min);
    Some(Ring {
        order,
        hops,
        busbw_gbps,
    })
}

fn permutations(items: &[u32]) -> Vec<Vec<u32>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, first);
            out.push(tail);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allreduce_time_follows_the_ring_formula() {
        // 8 GPUs at 100 GB/s: 2·7/8 × 10 GB / 100 GB/s = 0.175 s.
        assert!((allreduce_seconds(10_000_000_000, 8, 100.0) - 0.175).abs() < 1e-12);
        // 2 GPUs: each sends half twice, i.e. S / busbw.
        assert!((allreduce_seconds(140_000_000_000, 2, 50.0) - 2.8).abs() < 1e-12);
    }

    #[test]
    fn the_best_ring_avoids_the_slow_link_when_it_can() {
        // Four GPUs, every link 100 except 0→2 and 2→0 at 10: ring 0-1-2-3 avoids them.
        let rate = |a: u32, b: u32| {
            let slow = (a, b) == (0, 2) || (a, b) == (2, 0);
            Some((if slow { 10.0 } else { 100.0 }, "t".to_owned()))
        };
        let ring = best_ring(&[0, 1, 2, 3], &rate).unwrap();
        assert_eq!(ring.busbw_gbps, 100.0);
        assert!(!ring.hops.iter().any(|h| h.gbps < 100.0), "{ring:?}");
        // With 0→1 slow as well as 1→0 being fine, direction matters: hops are ordered pairs.
        let one_way =
            |a: u32, b: u32| Some((if (a, b) == (0, 1) { 5.0 } else { 20.0 }, String::new()));
        let ring = best_ring(&[0, 1], &one_way).unwrap();
        assert_eq!(
            ring.busbw_gbps, 5.0,
            "two GPUs have one ring, both directions"
        );
    }

    #[test]
    fn a_ring_needs_every_hop_measured() {
        let missing = |a: u32, _b: u32| (a != 1).then(|| (1.0, String::new()));
        assert!(best_ring(&[0, 1, 2], &missing).is_none());
        assert_eq!(permutations(&[1, 2, 3]).len(), 6);
    }
}
