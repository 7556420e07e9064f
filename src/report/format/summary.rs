//! What every report leads with: which machine, the verdict, its causes one line each, what to
//! tell the provider, and how long the run took; and the one summary `run` and `check` print on
//! stderr when the report goes to a file.

use crate::report::cause::Cause;
use crate::report::run::Report;
use crate::report::verdict::{Level, Verdict};
use std::path::Path;

/// Who and what: the host, and whether the figures are simulated or incomplete.
pub fn machine_lines(report: &Report) -> Vec<String> {
    let mut lines = vec![format!("p2ptop report: {}", report.hostname())];
    if let Some(name) = &report.simulated {
        lines.push(format!(
            "SIMULATED machine ({name}): figures come from p2ptop's model, not from hardware"
        ));
    }
    if report.emulated {
        lines.push(
            "EMULATED drivers: the probe ran on p2ptop's emulated NVIDIA libraries (tests/emu); \
             figures come from its model, not from hardware"
                .into(),
        );
    }
    if !report.run.complete {
        lines.push("INCOMPLETE: the run was interrupted; some cells were not measured".into());
    }
    lines
}

/// `verdict: FAIL — 4 causes, worst first`.
pub fn verdict_line(verdict: &Verdict) -> String {
    format!(
        "verdict: {}{}",
        verdict.overall.word(),
        causes_count(&verdict.causes)
    )
}

fn causes_count(causes: &[Cause]) -> String {
    match causes.len() {
        0 => String::new(),
        1 => " — 1 cause".into(),
        n => format!(" — {n} causes, worst first"),
    }
}

/// Each cause in one line: `FAIL GPU3: …`.
pub fn cause_lines(verdict: &Verdict) -> Vec<String> {
    verdict.causes.iter().map(Cause::line).collect()
}

/// What to tell the provider, one line per cause that is not a pass.
pub fn advice_lines(verdict: &Verdict) -> Vec<String> {
    verdict
        .causes
        .iter()
        .filter(|c| c.level > Level::Pass)
        .map(|c| c.advice.clone())
        .collect()
}

/// `took 0.5 s (SIMULATED: 38.6 s on the simulated machine's clock)`.
pub fn duration(report: &Report) -> String {
    let simulated = report.run.simulated_s.map_or_else(String::new, |s| {
        format!(
            " (SIMULATED: {} on the simulated machine's clock)",
            seconds(s)
        )
    });
    format!("took {}{simulated}", seconds(report.run.elapsed_s))
}

/// `0.5 s`, `38.6 s`, `12 min 5 s`.
fn seconds(s: f64) -> String {
    if s < 600.0 {
        format!("{s:.1} s")
    } else {
        let whole = s.round() as u64;
        format!("{} min {} s", whole / 60, whole % 60)
    }
}

/// When and how: duration, start, settings; then the command line.
pub fn run_lines(report: &Report) -> Vec<String> {
    let engines: Vec<&str> = report.run.engines.iter().map(|e| e.name()).collect();
    vec![
        format!(
            "{} · started {} · buffer {} MiB · {} samples · engines {}",
            duration(report),
            report.run.started_at,
            report.run.buffer_mib,
            report.run.samples,
            engines.join(", ")
        ),
        format!("command: {}", report.run.command_line),
    ]
}

/// Which command printed the summary: `check` leads with its verdict, `run` with what it
/// measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Run,
    Check,
}

/// What `run` and `check` print on stderr instead of the report when it went to a file: one
/// line with the verdict (or what was measured), the duration and the file, then the causes.
pub fn stderr(report: &Report, verdict: &Verdict, command: Command, written: &Path) -> String {
    let outcome = match command {
        Command::Check => verdict.overall.word().to_owned(),
        Command::Run => format!("measured {} pairs", report.pairs_measured()),
    };
    let mut out = format!(
        "p2ptop {}: {outcome}{} · {} · wrote {}\n",
        match command {
            Command::Run => "run",
            Command::Check => "check",
        },
        causes_count(&verdict.causes),
        duration(report),
        written.display()
    );
    for line in cause_lines(verdict) {
        out += &format!("  {line}\n");
    }
    out
}
