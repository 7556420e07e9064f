//! What one matrix cell says for the op and engine on screen: a figure, why there is none, or
//! that it has not been measured yet. The live view and its snapshots read cells through here,
//! so they cannot disagree.

use super::board::{Board, Cell, CellFailure};
use super::view::{Mode, View};
use crate::model::capacity::{Capacity, Shortfall, link_ends};
use crate::model::topology::{LinkType, NvLinkRemote, P2pStatus};
use crate::probe::plan;
use crate::probe::protocol::{Engine, FailureKind, Node, Op, Pair};
use crate::report::verdict::{FloorClass, Floors};

/// How a figure stands against its floor (`check`'s floor for its link class and engine, as a
/// share of what the path was built for).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grade {
    /// At least [`NEAR_FLOOR`] above the floor.
    Good,
    /// Passes, but within [`NEAR_FLOOR`] of the floor.
    Near,
    /// Below the floor: `check` would fail it.
    Below,
}

/// How close above its floor a figure reads as a warning.
pub const NEAR_FLOOR: f64 = 0.1;

impl Grade {
    pub fn of(share: f64, floor: f64) -> Grade {
        if share < floor {
            Grade::Below
        } else if share < floor + NEAR_FLOOR {
            Grade::Near
        } else {
            Grade::Good
        }
    }
}

/// One cell of the bandwidth matrix.
#[derive(Clone, Debug, PartialEq)]
pub enum Reading<'a> {
    /// A finished measurement.
    Figure {
        gbps: f64,
        /// Measured / what the path was built for (in stress: its fair share of that), when
        /// the line rate is known.
        share: Option<f64>,
        /// The share against `check`'s floor, when the share is known.
        grade: Option<Grade>,
        /// The path lacks something it was built for (links down, PCIe trained down).
        degraded: bool,
        /// Measured in a sweep while stress runs: not what the path carries now.
        stale: bool,
        /// A GPU of the pair was throttling when the result came.
        throttled: bool,
        /// The destination held wrong bytes afterwards.
        corrupt: bool,
    },
    /// The last try failed.
    Failed(&'a CellFailure),
    /// The path cannot be measured this way; the P2P status says why.
    Impossible(P2pStatus),
    /// Host → host, or bidir from a GPU to itself: nothing to measure.
    NoPath,
    /// Not measured yet.
    Pending,
}

/// The cell of `src → dst` for `op` and `engine`. Bidir is one measurement per unordered pair,
/// so either order finds it.
pub fn cell(board: &Board, src: Node, dst: Node, op: Op, engine: Engine) -> Option<&Cell> {
    board.cell(src, dst, op, engine).or_else(|| match op {
        Op::Bidir => board.cell(dst, src, op, engine),
        _ => None,
    })
}

/// What `src → dst` was built for, GB/s, for `op`: both directions' worth for bidir.
pub fn line_rate_gbps(board: &Board, src: Node, dst: Node, op: Op) -> Option<f64> {
    Some(both_ways(
        board.capacity(src, dst)?.built.gbps,
        src,
        dst,
        op,
    ))
}

fn both_ways(one: f64, src: Node, dst: Node, op: Op) -> f64 {
    if op == Op::Bidir && src != dst {
        2.0 * one
    } else {
        one
    }
}

/// `check`'s floor for a cell, as a share of what its path was built for: by link class as
/// built (a bridge with every link down is still judged as NVLink), engine, and whether the
/// kernel pulls (`report::verdict::Floors`, whose defaults `check` uses).
pub fn floor(board: &Board, src: Node, dst: Node, op: Op, engine: Engine) -> f64 {
    let class = match (src, dst) {
        (Node::Gpu(a), Node::Gpu(b)) if a == b => FloorClass::DeviceLocal,
        (Node::Gpu(_), Node::Gpu(_)) if blocking_p2p(board, src, dst, op, Engine::Sm).is_some() => {
            FloorClass::Staged
        }
        (Node::Gpu(a), Node::Gpu(b))
            if matches!(board.built_link(a, b), Some(LinkType::NvLink(_))) =>
        {
            FloorClass::NvLink
        }
        (Node::Host, _) | (_, Node::Host) if op == Op::Bidir => FloorClass::HostBothWays,
        // As check judges it: by whether the GPU that runs the copy reads the far end (a read
        // to the host is run by the GPU and pushes).
        _ => FloorClass::Pcie {
            pulls: plan::transfers(Pair { src, dst }, op)
                .ok()
                .and_then(|t| t.first().map(|t| Node::Gpu(t.executor) == t.dst))
                .unwrap_or(false),
        },
    };
    Floors::default().for_class(class, engine).0
}

/// The pairs stress loads together: every pair of different GPUs, or on a machine with one
/// GPU its host path (as `cycle` plans them).
fn stressed(board: &Board, src: Node, dst: Node) -> bool {
    match (src, dst) {
        (Node::Gpu(a), Node::Gpu(b)) => a != b,
        (Node::Gpu(_), Node::Host) | (Node::Host, Node::Gpu(_)) => board.topology.gpus.len() == 1,
        _ => false,
    }
}

/// How many stress pairs share the medium that carries `a`–`b` at one of its ends: 1 for a
/// direct NVLink (a bridge is the pair's own), every switch-linked peer for NVSwitch, every
/// PCIe peer for PCIe (an upper bound that ignores the switches and sockets between them, so
/// the view judges only NVLink pairs by it). All-to-all stress gives each pair this fraction of
/// its line rate.
pub fn stress_sharers(board: &Board, a: u32, b: u32) -> usize {
    let topo = &board.topology;
    let direct = |x: u32, y: u32| {
        let (Some(gx), Some(gy)) = (topo.gpu(x), topo.gpu(y)) else {
            return false;
        };
        link_ends(gx)
            .iter()
            .any(|(_, end)| *end == NvLinkRemote::Gpu(gy.pci_bus_id.clone()))
    };
    if direct(a, b) || direct(b, a) {
        return 1;
    }
    let via_nvlink = |x: u32, y: u32| matches!(board.built_link(x, y), Some(LinkType::NvLink(_)));
    let this_nvlink = via_nvlink(a, b);
    let peers = |g: u32| {
        topo.gpus
            .iter()
            .filter(|o| {
                o.index != g && !direct(g, o.index) && via_nvlink(g, o.index) == this_nvlink
            })
            .count()
    };
    peers(a).max(peers(b)).max(1)
}

/// What the cell on screen says: the view's op and engine, judged against the fair share of
/// the path in stress, stale when stress does not load it.
pub fn read_view<'a>(board: &'a Board, view: &View, src: Node, dst: Node) -> Reading<'a> {
    let mut reading = read(board, src, dst, view.shown_op(), view.engine);
    if view.mode == Mode::Stress
        && let Reading::Figure {
            share,
            grade,
            stale,
            ..
        } = &mut reading
    {
        let nvlink = |a, b| matches!(board.built_link(a, b), Some(LinkType::NvLink(_)));
        if !stressed(board, src, dst) {
            *stale = true;
        } else if let (Node::Gpu(a), Node::Gpu(b)) = (src, dst)
            && !nvlink(a, b)
        {
            // PCIe pairs under all-to-all stress share switch uplinks, root ports and the
            // link between sockets, which this count does not model: shown, not judged.
            *share = None;
            *grade = None;
        } else if let (Node::Gpu(a), Node::Gpu(b), Some(s)) = (src, dst, *share) {
            let n = stress_sharers(board, a, b) as f64;
            let fair = (s * n).min(9.99);
            *share = Some(fair);
            *grade = Some(Grade::of(
                fair,
                floor(board, src, dst, view.shown_op(), view.engine),
            ));
        }
    }
    reading
}

/// What the path lacks against what it was built for, in words (`NVLink 3/4 up`,
/// `GPU1 PCIe 4.0 x8 of 5.0 x16`); empty when nothing is missing.
pub fn gap(capacity: &Capacity) -> String {
    capacity
        .shortfalls
        .iter()
        .map(Shortfall::to_string)
        .collect::<Vec<_>>()
        .join(" · ")
}

/// The P2P status that keeps SM copies of `op` off the path, if one does. Copy engines stage
/// through host memory instead, so they are never kept off.
pub fn blocking_p2p(
    board: &Board,
    src: Node,
    dst: Node,
    op: Op,
    engine: Engine,
) -> Option<P2pStatus> {
    let (Node::Gpu(s), Node::Gpu(d)) = (src, dst) else {
        return None;
    };
    if s == d || engine == Engine::Ce {
        return None;
    }
    let topo = &board.topology;
    let statuses = match op {
        Op::Read => vec![topo.p2p(d, s)?.read],
        Op::Write => vec![topo.p2p(s, d)?.write],
        Op::Bidir => vec![topo.p2p(s, d)?.write, topo.p2p(d, s)?.write],
        Op::Latency => vec![topo.p2p(d, s)?.read],
    };
    statuses.into_iter().find(|s| !s.is_ok())
}

/// What the cell `src → dst` says for `op` and `engine`.
pub fn read<'a>(board: &'a Board, src: Node, dst: Node, op: Op, engine: Engine) -> Reading<'a> {
    if (src == Node::Host && dst == Node::Host) || (op == Op::Bidir && src == dst) {
        return Reading::NoPath;
    }
    let found = cell(board, src, dst, op, engine);
    if let Some(failure) = found.and_then(|c| c.failure.as_ref()) {
        if failure.kind == FailureKind::Unsupported
            && let Some(status) = blocking_p2p(board, src, dst, op, engine)
        {
            return Reading::Impossible(status);
        }
        return Reading::Failed(failure);
    }
    if let Some(m) = found.and_then(|c| c.last.as_ref()) {
        let capacity = board.capacity(src, dst);
        let share = capacity
            .as_ref()
            .map(|c| m.total_gbps / both_ways(c.built.gbps, src, dst, op));
        return Reading::Figure {
            gbps: m.total_gbps,
            share,
            grade: share.map(|s| Grade::of(s, floor(board, src, dst, op, engine))),
            degraded: capacity.is_some_and(|c| c.degraded()),
            stale: false,
            throttled: m.throttled,
            corrupt: !m.verification.passed(),
        };
    }
    match blocking_p2p(board, src, dst, op, engine) {
        Some(status) => Reading::Impossible(status),
        None => Reading::Pending,
    }
}

/// A short code for a failure, as matrix cells show it.
pub fn failure_code(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::Invalid => "INV",
        FailureKind::Unsupported => "N/S",
        FailureKind::Driver => "ERR",
        FailureKind::Hung => "HUNG",
        FailureKind::GateTimeout => "GATE",
        FailureKind::Crashed => "CRASH",
        FailureKind::Skipped => "SKIP",
    }
}

/// A failure in words.
pub fn failure_words(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::Invalid => "invalid request",
        FailureKind::Unsupported => "not supported",
        FailureKind::Driver => "CUDA error",
        FailureKind::Hung => "hung: a sample never finished",
        FailureKind::GateTimeout => "every sample's start gate timed out",
        FailureKind::Crashed => "the probe crashed while measuring it",
        FailureKind::Skipped => "left out: it hung or crashed the probe earlier",
    }
}

/// GB/s in at most four characters: 9.87, 48.1, 377, 2917.
pub fn figure(gbps: f64) -> String {
    if gbps < 9.995 {
        format!("{gbps:.2}")
    } else if gbps < 99.95 {
        format!("{gbps:.1}")
    } else {
        format!("{gbps:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_fit_four_characters() {
        assert_eq!(figure(9.871), "9.87");
        assert_eq!(figure(48.06), "48.1");
        assert_eq!(figure(99.96), "100");
        assert_eq!(figure(2917.4), "2917");
    }

    #[test]
    fn sm_copies_between_gpus_without_p2p_read_as_the_status_code() {
        let topology = crate::sim::load("4090x4").unwrap().topology();
        let board = Board::new(topology, None);
        let (a, b) = (Node::Gpu(0), Node::Gpu(1));
        assert_eq!(
            read(&board, a, b, Op::Read, Engine::Sm),
            Reading::Impossible(P2pStatus::Gns)
        );
        assert_eq!(read(&board, a, b, Op::Read, Engine::Ce), Reading::Pending);
        assert_eq!(read(&board, a, a, Op::Read, Engine::Sm), Reading::Pending);
        assert_eq!(
            read(&board, Node::Host, Node::Host, Op::Read, Engine::Sm),
            Reading::NoPath
        );
    }
}
