//! What is wrong with the machine, worst first, from everything on the board: cells that came
//! back wrong or failed, NVLinks down, PCIe links trained down under load, NVLink pairs without
//! peer access, throttling with its reason, a power limit below the board's default, error
//! counters moving, and the probe's own trouble. The bottom of the screen always shows them.
//!
//! ```text
//! │3 problems: GPU0: 0 of 4 NVLinks up — is the bridge seated? · GPU0 throttling: sw-thermal…│
//! ```

use crate::app::board::Board;
use crate::app::reading::failure_code;
use crate::model::capacity::{self, Shortfall};
use crate::model::topology::{LinkType, NvLinkRemote};
use crate::probe::protocol::{FailureKind, Node};

/// How bad a problem is; ordered so that the worst sorts last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Explains low figures without meaning broken hardware.
    Warn,
    /// Broken or misconfigured hardware.
    Fault,
    /// Wrong data or a hang: must not be missed.
    Alarm,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub text: String,
}

fn problem(severity: Severity, text: String) -> Problem {
    Problem { severity, text }
}

/// Every problem on the board, worst first (ties in the order found: cells, GPUs, probe).
pub fn list(board: &Board) -> Vec<Problem> {
    let mut out = cells(board);
    let mut loaded: Vec<u32> = Vec::new();
    for (k, c) in &board.cells {
        for node in [k.src, k.dst] {
            if let Node::Gpu(g) = node
                && c.last.is_some()
                && !loaded.contains(&g)
            {
                loaded.push(g);
            }
        }
    }
    for gpu in &board.topology.gpus {
        out.extend(links_down(board, gpu.index));
        if loaded.contains(&gpu.index) {
            out.extend(pcie_trained_down(board, gpu.index));
        }
    }
    out.extend(nvlink_without_p2p(board));
    for gpu in &board.topology.gpus {
        out.extend(telemetry(board, gpu.index));
    }
    out.extend(
        board
            .problems
            .iter()
            .map(|p| problem(Severity::Fault, p.clone())),
    );
    // A stable sort keeps the order found among equals.
    out.sort_by_key(|p| std::cmp::Reverse(p.severity));
    out
}

/// Cells whose data came back wrong, and cells that hung or failed.
fn cells(board: &Board) -> Vec<Problem> {
    let mut out = Vec::new();
    for (key, cell) in &board.cells {
        let what = || {
            format!(
                "{} → {} {} {}",
                key.src,
                key.dst,
                key.op.name(),
                key.engine.name()
            )
        };
        if let Some(m) = &cell.last
            && !m.verification.passed()
        {
            out.push(problem(
                Severity::Alarm,
                format!(
                    "{}: BAD, {} bytes arrived wrong",
                    what(),
                    m.verification.mismatched_bytes
                ),
            ));
        }
        if let Some(f) = &cell.failure {
            let severity = match f.kind {
                FailureKind::Hung | FailureKind::Crashed | FailureKind::GateTimeout => {
                    Severity::Alarm
                }
                FailureKind::Driver => Severity::Fault,
                // Refusals and pairs left out are explained by their status or a hang above.
                FailureKind::Invalid | FailureKind::Unsupported | FailureKind::Skipped => continue,
            };
            out.push(problem(
                severity,
                format!("{}: {}", what(), failure_code(f.kind)),
            ));
        }
    }
    out
}

/// `GPU0: 0 of 4 NVLinks up — is the bridge seated?`
fn links_down(board: &Board, gpu: u32) -> Option<Problem> {
    let g = board.topology.gpu(gpu)?;
    let total = g.nvlinks.len();
    let up = g.nvlinks.iter().filter(|l| l.active).count();
    if up == total {
        return None;
    }
    let ends = capacity::link_ends(g);
    let down: Vec<String> = ends
        .iter()
        .filter(|(l, _)| !l.active)
        .map(|(l, _)| l.link.to_string())
        .collect();
    let to_switch = ends.iter().any(|(_, e)| *e == NvLinkRemote::Switch);
    let hint = if to_switch {
        "a link to the NVSwitch fabric is down"
    } else if up == 0 {
        "is the bridge seated?"
    } else {
        "check the bridge"
    };
    Some(problem(
        Severity::Fault,
        format!(
            "GPU{gpu}: {up} of {total} NVLinks up (down: {}) — {hint}",
            down.join(", ")
        ),
    ))
}

/// A GPU whose PCIe link never reached its maximum (asked only of GPUs that took part in a
/// measurement: an idle link trains down to save power).
fn pcie_trained_down(board: &Board, gpu: u32) -> Option<Problem> {
    let shortfall = capacity::pcie_shortfall(board.topology.gpu(gpu)?, board.trained(gpu))?;
    let Shortfall::Pcie {
        generation,
        width,
        generation_max,
        width_max,
        ..
    } = shortfall
    else {
        return None;
    };
    Some(problem(
        Severity::Fault,
        format!(
            "GPU{gpu}: PCIe {generation}.0 x{width} of {generation_max}.0 x{width_max} under load \
             — reseat the card or check the slot"
        ),
    ))
}

/// Pairs joined by NVLink whose peer access the driver refuses.
fn nvlink_without_p2p(board: &Board) -> Vec<Problem> {
    let topo = &board.topology;
    topo.pairs
        .iter()
        .filter(|p| matches!(p.link, LinkType::NvLink(_)))
        .filter_map(|p| {
            let refused = [p.p2p.read, p.p2p.write, p.p2p_back.read, p.p2p_back.write]
                .into_iter()
                .find(|s| !s.is_ok())?;
            Some(problem(
                Severity::Fault,
                format!(
                    "GPU{} ↔ GPU{}: {} but no peer access ({})",
                    p.a,
                    p.b,
                    p.link,
                    refused.sentence()
                ),
            ))
        })
        .collect()
}

/// Throttling with its reason, a power limit below default, error counters moving.
fn telemetry(board: &Board, gpu: u32) -> Vec<Problem> {
    let mut out = Vec::new();
    let t = board
        .telemetry
        .as_ref()
        .and_then(|f| f.gpus.iter().find(|t| t.gpu == gpu));
    let seen = board.seen.gpus.iter().find(|s| s.gpu == gpu);
    let throttling = t.and_then(|t| Some((t, t.throttle?)));
    match (throttling, seen) {
        (Some((t, r)), _) if r.is_throttling() => {
            let temp = match (t.temp_c, t.slowdown_temp_c) {
                (Some(c), Some(s)) => format!(" at {c:.0} °C (slowdown {s:.0} °C)"),
                (Some(c), None) => format!(" at {c:.0} °C"),
                _ => String::new(),
            };
            let clock = match (t.sm_clock_mhz, t.sm_clock_max_mhz) {
                (Some(c), Some(m)) => format!(", SM {c}/{m} MHz"),
                _ => String::new(),
            };
            let limiting: Vec<String> = r
                .names()
                .into_iter()
                .filter(|n| n != "idle" && n != "app-clocks")
                .collect();
            out.push(problem(
                Severity::Warn,
                format!("GPU{gpu} throttling: {}{temp}{clock}", limiting.join(", ")),
            ));
        }
        (_, Some(s)) if s.throttled() || s.power_capped() => out.push(problem(
            Severity::Warn,
            format!(
                "GPU{gpu} throttled earlier ({}; hottest {})",
                s.throttle_reasons
                    .iter()
                    .filter(|n| *n != "idle")
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                s.max_temp_c
                    .map_or_else(|| "n/a".to_owned(), |c| format!("{c:.0} °C"))
            ),
        )),
        _ => {}
    }
    if let Some(g) = board.topology.gpu(gpu)
        && let Some((limit, default)) = g.power_limit_below_default(t.and_then(|t| t.power_limit_w))
    {
        out.push(problem(
            Severity::Warn,
            format!("GPU{gpu}: power limit {limit:.0} W, below the board's default {default:.0} W"),
        ));
    }
    if let Some(t) = t {
        let e = &t.errors;
        let moving: Vec<String> = [
            ("NVLink replay", e.nvlink_replay),
            ("NVLink recovery", e.nvlink_recovery),
            ("NVLink CRC", e.nvlink_crc),
            ("PCIe replay", e.pcie_replay),
        ]
        .iter()
        .filter_map(|(name, v)| v.filter(|n| *n > 0).map(|n| format!("{name} +{n}")))
        .collect();
        if !moving.is_empty() {
            out.push(problem(
                Severity::Fault,
                format!("GPU{gpu}: error counters moving: {}", moving.join(", ")),
            ));
        }
    }
    out
}
