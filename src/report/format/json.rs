//! JSON, summary first: `schema` and `simulated`, the verdict (overall, causes with their
//! evidence, then every cell's, GPU's and the run's reasons), explanations and the estimate, then
//! the report itself: what `check --baseline` and `fleet` read back. Readers of a report ignore
//! the derived keys, so a `check` output serves as a baseline too.

use crate::report::diagnosis::Finding;
use crate::report::run::{CellReport, LatencyReport, MachineReport, Report, RunInfo};
use crate::report::seen::GpuSeen;
use crate::report::training::Estimate;
use crate::report::verdict::Verdict;
use serde::Serialize;

/// The report's own keys around the derived ones, in reading order.
#[derive(Serialize)]
struct Output<'a> {
    schema: u32,
    simulated: &'a Option<String>,
    emulated: bool,
    verdict: &'a Verdict,
    findings: &'a [Finding],
    allreduce_estimate: Option<&'a Estimate>,
    run: &'a RunInfo,
    machine: &'a MachineReport,
    cells: &'a [CellReport],
    latency: &'a [LatencyReport],
    telemetry: &'a [GpuSeen],
    problems: &'a [String],
}

pub fn render(
    report: &Report,
    verdict: &Verdict,
    findings: &[Finding],
    estimate: Option<&Estimate>,
) -> String {
    // Every key of the report must be here to read back: the round-trip tests hold it so.
    let output = Output {
        schema: report.schema,
        simulated: &report.simulated,
        emulated: report.emulated,
        verdict,
        findings,
        allreduce_estimate: estimate,
        run: &report.run,
        machine: &report.machine,
        cells: &report.cells,
        latency: &report.latency,
        telemetry: &report.telemetry,
        problems: &report.problems,
    };
    // Plain structs with string keys: serializing cannot fail (non-finite floats become null).
    let mut text = serde_json::to_string_pretty(&output).expect("reports always serialize");
    text.push('\n');
    text
}
