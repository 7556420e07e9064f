//! Plain text for a terminal, summary first: the machine, the verdict with its causes one line
//! each and what to tell the provider, how long the run took; then the evidence under each
//! cause, explanations, telemetry and the all-reduce estimate; the matrices last.

use super::matrix::{self, Matrix};
use super::{method_sentence, summary, telemetry_line};
use crate::report::diagnosis::Finding;
use crate::report::run::Report;
use crate::report::training::Estimate;
use crate::report::verdict::Verdict;
use std::fmt::Write;

pub fn render(
    report: &Report,
    verdict: &Verdict,
    findings: &[Finding],
    estimate: Option<&Estimate>,
) -> String {
    let mut out = String::new();
    for line in summary::machine_lines(report) {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "{}", summary::verdict_line(verdict));
    for line in summary::cause_lines(verdict) {
        let _ = writeln!(out, "  {line}");
    }
    section(
        &mut out,
        "tell the provider",
        summary::advice_lines(verdict),
    );
    out.push('\n');
    for line in summary::run_lines(report) {
        let _ = writeln!(out, "{line}");
    }
    evidence(&mut out, verdict);
    section(
        &mut out,
        "what may explain it",
        findings
            .iter()
            .map(|f| format!("{}: {}. What to do: {}", f.title, f.evidence, f.action))
            .collect(),
    );
    section(
        &mut out,
        "telemetry over the run",
        report.measured_telemetry().map(telemetry_line).collect(),
    );
    if let Some(e) = estimate {
        section(&mut out, "ring all-reduce estimate", estimate_lines(e));
    }
    for m in matrix::bandwidth(report) {
        out += &draw(&m);
    }
    out += &draw(&matrix::line_rates(report));
    if let Some(m) = matrix::latency(report) {
        out += &draw(&m);
    }
    out += &format!("\n{}\n", matrix::LEGEND);
    section(&mut out, "notes", matrix::notes(report));
    let _ = writeln!(out, "\n{}", method_sentence(report));
    out
}

/// Under each cause, the findings that follow from it.
fn evidence(out: &mut String, verdict: &Verdict) {
    let causes: Vec<_> = verdict
        .causes
        .iter()
        .filter(|c| !c.evidence.is_empty())
        .collect();
    if causes.is_empty() {
        return;
    }
    out.push_str("\nevidence\n");
    for c in causes {
        let _ = writeln!(
            out,
            "  {}, {} ({}):",
            c.subject,
            c.kind.title(),
            c.evidence.len()
        );
        for e in &c.evidence {
            let _ = writeln!(out, "    {} {}: {}", e.level.word(), e.subject, e.text);
        }
    }
}

/// A titled list; nothing at all when there are no lines.
fn section(out: &mut String, title: &str, lines: Vec<String>) {
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{title}");
    for line in lines {
        let _ = writeln!(out, "  {line}");
    }
}

/// Aligned columns: the node names down the left, right-aligned figures.
fn draw(m: &Matrix) -> String {
    let names: Vec<String> = m.nodes.iter().map(|n| n.to_string()).collect();
    let width = m
        .rows
        .iter()
        .flatten()
        .chain(&names)
        .map(|t| t.chars().count())
        .max()
        .unwrap_or(1);
    let label = names.iter().map(|n| n.len()).max().unwrap_or(4);
    let mut out = format!("\n{}\n{:label$}", m.title, "");
    for name in &names {
        let _ = write!(out, "  {name:>width$}");
    }
    out.push('\n');
    for (name, row) in names.iter().zip(&m.rows) {
        let _ = write!(out, "{name:label$}");
        for text in row {
            let _ = write!(out, "  {text:>width$}");
        }
        out.push('\n');
    }
    out
}

/// The estimate as a few lines, measured beside the links as built.
pub fn estimate_lines(e: &Estimate) -> Vec<String> {
    let ring = |r: &crate::report::training::Ring| {
        r.order
            .iter()
            .map(|g| format!("GPU{g}"))
            .collect::<Vec<_>>()
            .join(" → ")
    };
    let mut lines = vec![format!(
        "best ring {} → GPU{}: bus bandwidth {:.1} GB/s measured{}",
        ring(&e.measured),
        e.measured.order[0],
        e.measured.busbw_gbps,
        e.built_for.as_ref().map_or_else(String::new, |l| format!(
            ", {:.1} GB/s as built",
            l.busbw_gbps
        ))
    )];
    for s in &e.syncs {
        lines.push(format!(
            "all-reduce of {}: {:.3} s measured{}",
            s.label,
            s.seconds,
            s.seconds_as_built
                .map_or_else(String::new, |t| format!(", {t:.3} s as built"))
        ));
    }
    lines
}
