//! The matrices every human-readable format draws: rows are sources, columns destinations, one
//! matrix per (op, engine), and what each cell says when it holds no figure.

use crate::model::topology::P2pStatus;
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

/// The theoretical per-direction rate of every path, with its link type.
pub fn line_rates(report: &Report) -> Matrix {
    let nodes = report.nodes();
    let topology = &report.machine.topology;
    Matrix {
        title: "line rate — GB/s per direction (row src → column dst)".into(),
        rows: grid(&nodes, |s, d| {
            let link = match (s, d) {
                (Node::Gpu(a), Node::Gpu(b)) => topology.link(a, b).map(|l| l.to_string()),
                _ => Some("PCIe".to_owned()),
            };
            match (topology.line_rate(s, d), link) {
                (Some(rate), Some(link)) => format!("{:.1} {link}", rate.gbps),
                _ => NOT_MEASURED.into(),
            }
        }),
        nodes,
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
pub const LEGEND: &str = "cells: median GB/s and % of line rate; * a GPU throttled meanwhile; \
CORRUPT data arrived wrong; HUNG did not finish; ERR driver error; FAIL not measured; \
CNS/GNS/TNS/NS/DR/U no peer access (topo -p2p code); - not measured. The diagonal is a \
device-local copy, bytes counted once.";

/// Failures, corruption and missing peer access, one line each, for notes under the matrices.
pub fn notes(report: &Report) -> Vec<String> {
    let mut notes = Vec::new();
    for cell in &report.cells {
        if cell.corrupted() {
            notes.push(format!(
                "{}: CORRUPT — {} byte(s) wrong{} (measured {:.1} GB/s, not to be trusted)",
                cell.label(),
                cell.mismatched_bytes.unwrap_or_default(),
                cell.first_bad_offset
                    .map_or_else(String::new, |o| format!(", first at offset {o}")),
                cell.gbps.unwrap_or_default()
            ));
        }
        if let Some(f) = &cell.failure {
            let code = f
                .cuda_error
                .map_or_else(String::new, |c| format!(" (CUDA error {c})"));
            let line = match cell.p2p.filter(|p| !p.is_ok()) {
                Some(status) if f.kind == FailureKind::Unsupported => status.sentence().to_owned(),
                _ => format!(
                    "{}{code} — {}",
                    failure_mark(Some(cell)).unwrap_or_default(),
                    f.message
                ),
            };
            notes.push(format!("{}: {line}", cell.label()));
        }
    }
    notes
}
