//! Markdown ready to paste into a ticket to a hardware provider: the machine, its topology, the
//! matrices, verdicts with reasons, likely causes, and how it was measured, so the reader can
//! judge the numbers without asking back.

use super::matrix::{self, Matrix};
use super::{method_sentence, telemetry_line};
use crate::report::diagnosis::Finding;
use crate::report::run::Report;
use crate::report::training::Estimate;
use crate::report::verdict::{Level, Verdict};
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
    if !report.run.complete {
        out += "> **INCOMPLETE** — the run was interrupted; some cells were not measured.\n\n";
    }
    let _ = writeln!(out, "**Verdict: {}**\n", verdict.overall.word());
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
    verdicts(&mut out, verdict);
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
    let _ = writeln!(
        out,
        "## How this was measured\n\n{}\n\nCommand: `{}` (started {}).",
        method_sentence(report),
        report.run.command_line,
        report.run.started_at
    );
    out
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

fn verdicts(out: &mut String, verdict: &Verdict) {
    let lines: Vec<String> = verdict
        .lines()
        .into_iter()
        .map(|(level, line)| format!("**{}** {line}", level.word()))
        .collect();
    let failed = verdict.failed_cells();
    let _ = writeln!(
        out,
        "## Verdicts\n\nOverall **{}**: {} measurement(s) failed, {} GPU(s) failed.\n",
        verdict.overall.word(),
        failed,
        verdict
            .gpus
            .iter()
            .filter(|g| g.level == Level::Fail)
            .count()
    );
    if !lines.is_empty() {
        for line in lines {
            let _ = writeln!(out, "- {line}");
        }
        out.push('\n');
    }
}

fn diagnosis(out: &mut String, findings: &[Finding]) {
    if findings.is_empty() {
        return;
    }
    out.push_str("## Likely causes\n\n");
    for f in findings {
        let _ = writeln!(
            out,
            "### {}\n\n- Seen: {}\n- What it means: {}\n- What to do: {}\n",
            f.title, f.evidence, f.meaning, f.action
        );
    }
}
