//! Markdown ready to paste into a ticket to a hardware provider, summary first: the verdict with
//! its causes one line each and what to tell the provider (all within the first lines, where a
//! reader of the ticket looks); then the evidence under each cause, explanations, the estimate
//! and telemetry; then the machine, its topology and the matrices; and how it was measured, so
//! the reader can judge the numbers without asking back.

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
    let mut out = format!("# GPU interconnect report: {}\n\n", report.hostname());
    if let Some(name) = &report.simulated {
        let _ = writeln!(
            out,
            "> **SIMULATED** — machine `{name}` is p2ptop's model; these figures do not come from \
             hardware.\n"
        );
    }
    if report.emulated {
        out += "> **EMULATED** — the probe ran on p2ptop's emulated NVIDIA drivers (tests/emu); \
                these figures come from their model, not from hardware.\n\n";
    }
    if !report.run.complete {
        out += "> **INCOMPLETE** — the run was interrupted; some cells were not measured.\n\n";
    }
    verdict_block(&mut out, verdict);
    let _ = writeln!(
        out,
        "{} · started {} · `{}`\n",
        capitalized(&summary::duration(report)),
        report.run.started_at,
        report.run.command_line
    );
    evidence(&mut out, verdict);
    diagnosis(&mut out, findings);
    if let Some(e) = estimate {
        list(
            &mut out,
            "Ring all-reduce estimate",
            super::table::estimate_lines(e),
        );
    }
    list(
        &mut out,
        "Telemetry over the run",
        report.measured_telemetry().map(telemetry_line).collect(),
    );
    machine(&mut out, report);
    out += "## Bandwidth\n";
    for m in matrix::bandwidth(report) {
        out += &table(&m);
    }
    out += &table(&matrix::line_rates(report));
    if let Some(m) = matrix::latency(report) {
        out += &table(&m);
    }
    let _ = writeln!(out, "\n_{}_\n", matrix::LEGEND);
    list(&mut out, "Notes", matrix::notes(report));
    let _ = writeln!(
        out,
        "## How this was measured\n\n{}\n\nCommand: `{}` (started {}).",
        method_sentence(report),
        report.run.command_line,
        report.run.started_at
    );
    out
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// `**Verdict: FAIL** — 4 causes, worst first:`, the numbered causes, what to tell the provider.
fn verdict_block(out: &mut String, verdict: &Verdict) {
    let line = summary::verdict_line(verdict);
    let rest = line
        .strip_prefix("verdict: ")
        .and_then(|r| r.strip_prefix(verdict.overall.word()))
        .unwrap_or_default();
    let colon = if verdict.causes.is_empty() { "" } else { ":" };
    let _ = writeln!(
        out,
        "**Verdict: {}**{rest}{colon}\n",
        verdict.overall.word()
    );
    if verdict.causes.is_empty() {
        return;
    }
    for (i, c) in verdict.causes.iter().enumerate() {
        let _ = writeln!(
            out,
            "{}. **{}** {}: {}",
            i + 1,
            c.level.word(),
            c.subject,
            c.what
        );
    }
    let advice = summary::advice_lines(verdict);
    if !advice.is_empty() {
        out.push_str("\n**Tell the provider:**\n\n");
        for line in advice {
            let _ = writeln!(out, "- {line}");
        }
    }
    out.push('\n');
}

fn evidence(out: &mut String, verdict: &Verdict) {
    if verdict.causes.iter().all(|c| c.evidence.is_empty()) {
        return;
    }
    out.push_str("## Evidence\n\n");
    for (i, c) in verdict.causes.iter().enumerate() {
        if c.evidence.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "### {}. {}, {} ({})\n",
            i + 1,
            c.subject,
            c.kind.title(),
            c.evidence.len()
        );
        for e in &c.evidence {
            let _ = writeln!(out, "- **{}** {}: {}", e.level.word(), e.subject, e.text);
        }
        out.push('\n');
    }
}

fn machine(out: &mut String, report: &Report) {
    let t = &report.machine.topology;
    let h = &t.host;
    let na = |v: &Option<String>| v.clone().unwrap_or_else(|| "n/a".into());
    let _ = writeln!(
        out,
        "## Machine\n\n| | |\n|---|---|\n| Host | {} |\n| CPU | {} |\n| Sockets / NUMA nodes | {} / {} |\n\
         | Kernel | {} |\n| Driver | {} (CUDA {}) |\n| IOMMU | {} |\n",
        report.hostname(),
        na(&h.cpu_model),
        h.sockets.map_or_else(|| "n/a".into(), |s| s.to_string()),
        h.numa_nodes.map_or_else(|| "n/a".into(), |s| s.to_string()),
        na(&h.kernel),
        na(&h.driver_version),
        na(&h.cuda_version),
        h.iommu
            .as_ref()
            .map_or_else(|| "n/a".into(), |i| format!("{i:?}").to_lowercase()),
    );
    out.push_str(
        "| GPU | Name | Bus id | PCIe now | PCIe max | BAR1 MiB |\n|---|---|---|---|---|---|\n",
    );
    let link = |g: Option<u32>, w: Option<u32>| match (g, w) {
        (Some(g), Some(w)) => format!("Gen{g} x{w}"),
        _ => "n/a".into(),
    };
    for g in &t.gpus {
        let _ = writeln!(
            out,
            "| GPU{} | {} | {} | {} | {} | {} |",
            g.index,
            g.name,
            g.pci_bus_id,
            link(g.pcie.gen_now, g.pcie.width_now),
            link(g.pcie.gen_max, g.pcie.width_max),
            g.bar1_mib.map_or_else(|| "n/a".into(), |b| b.to_string())
        );
    }
    out.push_str("\n### Topology (`nvidia-smi topo -m`)\n\n```text\n      ");
    for g in &t.gpus {
        let _ = write!(out, "{:<6}", format!("GPU{}", g.index));
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    for (g, row) in t.gpus.iter().zip(&report.machine.link_matrix) {
        let _ = write!(out, "{:<6}", format!("GPU{}", g.index));
        for link in row {
            let _ = write!(out, "{link:<6}");
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    }
    out.push_str("```\n\n");
}

fn table(m: &Matrix) -> String {
    let mut out = format!("\n### {}\n\n| src \\ dst |", m.title);
    for n in &m.nodes {
        let _ = write!(out, " {n} |");
    }
    out += "\n|---|";
    out += &"---:|".repeat(m.nodes.len());
    out.push('\n');
    for (n, row) in m.nodes.iter().zip(&m.rows) {
        let _ = write!(out, "| **{n}** |");
        for text in row {
            let _ = write!(out, " {text} |");
        }
        out.push('\n');
    }
    out
}

fn list(out: &mut String, title: &str, lines: Vec<String>) {
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(out, "## {title}\n");
    for line in lines {
        let _ = writeln!(out, "- {line}");
    }
    out.push('\n');
}

fn diagnosis(out: &mut String, findings: &[Finding]) {
    if findings.is_empty() {
        return;
    }
    out.push_str("## What may explain it\n\n");
    for f in findings {
        let _ = writeln!(
            out,
            "### {}\n\n- Seen: {}\n- What it means: {}\n- What to do: {}\n",
            f.title, f.evidence, f.meaning, f.action
        );
    }
}
