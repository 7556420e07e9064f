//! The matrices every human-readable format draws: rows are sources, columns destinations, one
//! matrix per (op, engine), and what each cell says when it holds no figure.

use crate::model::capacity;
use crate::model::topology::{LinkType, P2pStatus};
use crate::probe::protocol::{Engine, FailureKind, Node, Op};
use crate::report::run::{CellReport, Report};

/// A titled grid of texts over the report's nodes.
pub struct Matrix {
    pub title: String,
    pub nodes: Vec<Node>,
    /// `rows[i][j]` is `nodes[i] → nodes[j]`.
    pub rows: Vec<Vec<String>>,
}

/// Shown in a cell that was not measured.
pub const NOT_MEASURED: &str = "-";
/// Shown instead of a figure when the data arrived wrong: a number there would be trusted.
pub const CORRUPT: &str = "CORRUPT";

/// One bandwidth matrix per (op, engine) measured, writes first, SM before CE.
pub fn bandwidth(report: &Report) -> Vec<Matrix> {
    let mut kinds: Vec<(Op, Engine)> = report
        .cells
        .iter()
        .filter(|c| c.op != Op::Latency)
        .map(|c| (c.op, c.engine))
        .collect();
    let rank = |op: Op| match op {
        Op::Write => 0,
        Op::Read => 1,
        _ => 2,
    };
    kinds.sort_by_key(|&(op, engine)| (rank(op), engine));
    kinds.dedup();
    let nodes = report.nodes();
    kinds
        .into_iter()
        .map(|(op, engine)| {
            let what = if op == Op::Bidir {
                "GB/s, sum of both directions"
            } else {
                "GB/s"
            };
            Matrix {
                title: format!(
                    "{}, {} — {what} (row src → column dst)",
                    op.name(),
                    engine.name()
                ),
                rows: grid(&nodes, |s, d| cell_text(report.cell(s, d, op, engine))),
                nodes: nodes.clone(),
            }
        })
        .collect()
}

/// The theoretical per-direction rate of every path as built, with its link type; where the
/// path carries less now, `now of built` and the link as it is now over as built (`NV17/18`).
pub fn line_rates(report: &Report) -> Matrix {
    let nodes = report.nodes();
    let topology = &report.machine.topology;
    Matrix {
        title: "line rate as built — GB/s per direction, now/built where less (row src → column \
                dst)"
            .into(),
        rows: grid(&nodes, |s, d| {
            let Some(c) = report.capacity(s, d) else {
                return NOT_MEASURED.into();
            };
            let link = match (s, d) {
                (Node::Gpu(a), Node::Gpu(b)) => {
                    link_now_of_built(topology.link(a, b), capacity::built_link(topology, a, b))
                }
                _ => "PCIe".to_owned(),
            };
            if c.degraded() {
                format!("{}/{} {link}", compact(c.now.gbps), compact(c.built.gbps))
            } else {
                format!("{:.1} {link}", c.built.gbps)
            }
        }),
        nodes,
    }
}

/// `425`, `15.8`: a figure short enough to share a cell with another.
fn compact(gbps: f64) -> String {
    if gbps >= 100.0 {
        format!("{gbps:.0}")
    } else {
        format!("{gbps:.1}")
    }
}

/// `NV18`; `NV17/18` with links down; `SYS (built NV18)` with every link down.
fn link_now_of_built(now: Option<LinkType>, built: Option<LinkType>) -> String {
    match (now, built) {
        (Some(LinkType::NvLink(n)), Some(LinkType::NvLink(b))) if n != b => format!("NV{n}/{b}"),
        (Some(now), Some(built)) if now != built => format!("{now} (built {built})"),
        (now, built) => built.or(now).map_or_else(String::new, |l| l.to_string()),
    }
}

/// Nanoseconds per dependent access, when any latency was measured.
pub fn latency(report: &Report) -> Option<Matrix> {
    if report.latency.is_empty() {
        return None;
    }
    let nodes = report.nodes();
    Some(Matrix {
        title: "latency — ns per access (row src → column dst)".into(),
        rows: grid(&nodes, |s, d| {
            report
                .latency
                .iter()
                .find(|l| l.src == s && l.dst == d)
                .map_or_else(
                    || {
                        failure_mark(report.cell(s, d, Op::Latency, Engine::Sm))
                            .unwrap_or_else(|| NOT_MEASURED.into())
                    },
                    |l| format!("{:.0}", l.ns),
                )
        }),
        nodes,
    })
}

fn grid(nodes: &[Node], text: impl Fn(Node, Node) -> String) -> Vec<Vec<String>> {
    nodes
        .iter()
        .map(|&s| nodes.iter().map(|&d| text(s, d)).collect())
        .collect()
}

/// `377.1 84%`, with `*` when a GPU throttled; a marker when there is no trustworthy figure.
pub fn cell_text(cell: Option<&CellReport>) -> String {
    let Some(cell) = cell else {
        return NOT_MEASURED.into();
    };
    if cell.corrupted() {
        return CORRUPT.into();
    }
    if let Some(mark) = failure_mark(Some(cell)) {
        return mark;
    }
    let Some(gbps) = cell.gbps else {
        return NOT_MEASURED.into();
    };
    let share = cell
        .efficiency
        .map_or_else(String::new, |e| format!(" {:.0}%", e * 100.0));
    let hot = if cell.throttled { "*" } else { "" };
    format!("{gbps:.1}{share}{hot}")
}

/// The P2P status code when peer access is missing, else HUNG, ERR or FAIL.
fn failure_mark(cell: Option<&CellReport>) -> Option<String> {
    let cell = cell?;
    let failure = cell.failure.as_ref()?;
    let no_p2p = cell.p2p.filter(|p| !p.is_ok()).map(P2pStatus::code);
    Some(
        match (failure.kind, no_p2p) {
            (FailureKind::Unsupported, Some(code)) => code,
            (FailureKind::Hung, _) => "HUNG",
            (FailureKind::Driver, _) => "ERR",
            _ => "FAIL",
        }
        .to_owned(),
    )
}

/// What the markers mean, for a legend under the matrices.
pub const LEGEND: &str = "cells: median GB/s and % of the line rate as built; * a GPU throttled \
meanwhile; CORRUPT data arrived wrong; HUNG did not finish; ERR driver error; FAIL not measured; \
CNS/GNS/TNS/NS/DR/U no peer access (topo -p2p code); - not measured. The diagonal is a \
device-local copy, bytes counted once.";

/// Why cells hold a peer-access code instead of a figure, one line each, for notes under the
/// matrices (corruption and failures are listed under their causes).
pub fn notes(report: &Report) -> Vec<String> {
    report
        .cells
        .iter()
        .filter_map(|cell| {
            let failure = cell.failure.as_ref()?;
            let status = cell.p2p.filter(|p| !p.is_ok())?;
            (failure.kind == FailureKind::Unsupported)
                .then(|| format!("{}: {}", cell.label(), status.sentence()))
        })
        .collect()
}
