//! What `check --quick` says: one line for a Slurm prolog, HealthCheckProgram or NHC, which
//! put it on the node as the reason it was drained (docs/slurm/p2ptop-drain.sh does).

use crate::probe::protocol::Node;
use crate::report::format;
use crate::report::run::Report;
use crate::report::verdict::{Level, Verdict};

/// `PASS: …`, `WARN: …` or `FAIL: <the worst cause> (+N more)`; never more than one line.
pub fn one_line(report: &Report, verdict: &Verdict) -> String {
    let simulated = if report.simulated.is_some() || report.emulated {
        format!(
            " ({})",
            format::origin(report.simulated.as_deref(), report.emulated)
        )
    } else {
        String::new()
    };
    if !report.run.complete {
        return format!("INTERRUPTED: not every pair was measured{simulated}");
    }
    // Causes come worst first; the first one is the reason to put on the node.
    let worst = verdict.causes.iter().find(|c| c.level > Level::Pass);
    let line = match worst {
        None => {
            let gpus = report.nodes().iter().filter(|n| **n != Node::Host).count();
            format!(
                "PASS: quick check of {gpus} GPU(s), {} measurements, no fault found{simulated}",
                report.cells.len()
            )
        }
        Some(cause) => {
            let more = verdict
                .causes
                .iter()
                .filter(|c| c.level > Level::Pass)
                .count()
                - 1;
            let more = if more > 0 {
                format!(" (+{more} more)")
            } else {
                String::new()
            };
            format!(
                "{}: {}: {}{more}{simulated}",
                cause.level.word(),
                cause.subject,
                cause.what
            )
        }
    };
    line.replace(['\n', '\r'], " ")
}

/// 0 pass or warn, 1 fail, 130 interrupted: the same as `check`.
pub fn exit_code(report: &Report, verdict: &Verdict) -> u8 {
    if report.run.complete {
        verdict.exit_code()
    } else {
        crate::exit::INTERRUPTED
    }
}
