//! What one matrix cell says for the op and engine on screen: a figure, why there is none, or
//! that it has not been measured yet. The live view and its snapshots read cells through here,
//! so they cannot disagree.

use super::board::{Board, Cell, CellFailure};
use crate::model::topology::P2pStatus;
use crate::probe::protocol::{Engine, FailureKind, Node, Op};

/// One cell of the bandwidth matrix.
#[derive(Clone, Debug, PartialEq)]
pub enum Reading<'a> {
    /// A finished measurement.
    Figure {
        gbps: f64,
        /// Measured / line rate, when the line rate is known.
        share: Option<f64>,
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

/// The theoretical GB/s of `src → dst` for `op`: both directions' worth for bidir.
pub fn line_rate_gbps(board: &Board, src: Node, dst: Node, op: Op) -> Option<f64> {
    let one = board.topology.line_rate(src, dst)?.gbps;
    Some(if op == Op::Bidir && src != dst {
        2.0 * one
    } else {
        one
    })
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
        return Reading::Figure {
            gbps: m.total_gbps,
            share: line_rate_gbps(board, src, dst, op).map(|rate| m.total_gbps / rate),
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
