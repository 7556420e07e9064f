//! Renderings of a report: `table` for a terminal, `json` to keep and read back, `csv` for
//! spreadsheets, `markdown` for a ticket to a hardware provider, `prometheus` for
//! node_exporter's textfile collector.

pub mod csv;
pub mod json;
pub mod markdown;
pub mod matrix;
pub mod prometheus;
pub mod summary;
pub mod table;

use super::diagnosis;
use super::run::Report;
use super::seen::GpuSeen;
use super::training;
use super::verdict::Verdict;

/// `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
    Markdown,
}

/// `run --format` and `check --format`: the document formats (which fleet summaries share) or
/// Prometheus metrics, which only a single node's report has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    Document(Format),
    Prometheus,
}

impl clap::ValueEnum for ReportFormat {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            ReportFormat::Document(Format::Table),
            ReportFormat::Document(Format::Json),
            ReportFormat::Document(Format::Csv),
            ReportFormat::Document(Format::Markdown),
            ReportFormat::Prometheus,
        ]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        match self {
            ReportFormat::Document(format) => format.to_possible_value(),
            ReportFormat::Prometheus => Some(clap::builder::PossibleValue::new("prometheus")),
        }
    }
}

/// The report in `format`, with its verdict.
pub fn render_report(format: ReportFormat, report: &Report, verdict: &Verdict) -> String {
    match format {
        ReportFormat::Document(format) => render(format, report, verdict),
        ReportFormat::Prometheus => prometheus::render(report, verdict),
    }
}

/// The report in `format`, with its verdict (for `run`, judge it with the default floors).
pub fn render(format: Format, report: &Report, verdict: &Verdict) -> String {
    let findings = diagnosis::diagnose(report);
    let estimate = training::estimate(report);
    match format {
        Format::Table => table::render(report, verdict, &findings, estimate.as_ref()),
        Format::Json => json::render(report, verdict, &findings, estimate.as_ref()),
        Format::Csv => csv::render(report, verdict),
        Format::Markdown => markdown::render(report, verdict, &findings, estimate.as_ref()),
    }
}

/// Where a report's figures come from, in one field of a CSV row or a fleet's flag:
/// `SIMULATED: <machine>`, `EMULATED drivers`, or `hardware`.
pub fn origin(simulated: Option<&str>, emulated: bool) -> String {
    match (simulated, emulated) {
        (Some(name), _) => format!("SIMULATED: {name}"),
        (None, true) => "EMULATED drivers".to_owned(),
        (None, false) => "hardware".to_owned(),
    }
}

/// How the figures were taken, in one sentence a reader of a ticket can check.
pub fn method_sentence(report: &Report) -> String {
    if let Some(name) = &report.simulated {
        return format!(
            "Method: SIMULATED. No hardware was measured: each figure is the median of {} \
             samples of a {} MiB copy computed by p2ptop's model of the machine `{name}` \
             (line rates × efficiencies from published figures, shared resources, heat). \
             GB/s = 10^9 bytes/s; a device-local copy counts its bytes once.",
            report.run.samples, report.run.buffer_mib
        );
    }
    let emulated = if report.emulated {
        "EMULATED: the drivers were p2ptop's emulation, whose copies take the time its model \
         gives. "
    } else {
        ""
    };
    format!(
        "Method: {emulated}each figure is the median of {} samples copying a {} MiB buffer; every sample \
         was gated (a one-thread kernel held all streams until the work was queued), timed with \
         CUDA events around the copy alone, and its destination verified against a hash pattern. \
         GB/s = 10^9 bytes/s; a device-local copy counts its bytes once.",
        report.run.samples, report.run.buffer_mib
    )
}

/// One GPU's run in a line: hottest, reasons, PCIe under load, error counters.
fn telemetry_line(s: &GpuSeen) -> String {
    let opt = |v: Option<u64>| v.map_or_else(|| "n/a".to_owned(), |n| n.to_string());
    let reasons = if s.throttle_reasons.is_empty() {
        "none".to_owned()
    } else {
        s.throttle_reasons.join(", ")
    };
    format!(
        "GPU{}: max {} · throttle reasons seen: {reasons} · PCIe under load {} · errors: PCIe \
         replay {}, NVLink CRC {}, recovery {}, replay {}",
        s.gpu,
        s.max_temp_c
            .map_or_else(|| "n/a".to_owned(), |t| format!("{t:.0} °C")),
        match (s.pcie_gen_max_seen, s.pcie_width_max_seen) {
            (Some(g), Some(w)) => format!("Gen{g} x{w}"),
            _ => "n/a".into(),
        },
        opt(s.errors.pcie_replay),
        opt(s.errors.nvlink_crc),
        opt(s.errors.nvlink_recovery),
        opt(s.errors.nvlink_replay),
    )
}
