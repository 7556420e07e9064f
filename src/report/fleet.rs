//! `p2ptop fleet FILES…`: many nodes' JSON reports in one table, one row per node, with the
//! nodes that fall behind their peers flagged.
//!
//! A node's figure is its worst cell's efficiency (the lowest measured share of the built line
//! rate over its cells; failed and corrupted cells have none). The worst link is what a
//! collective waits for, so a node with one slow link is an outlier even when its median looks
//! fine. Nodes are compared only with nodes of the same shape (GPU model, count and `topo -m`
//! matrix as built): an outlier sits below [`OUTLIER_SHARE`] × the median figure of its shape.
//! An interrupted run's report has a row, marked INCOMPLETE, but no say in the median (its worst
//! cell may never have been measured); the same report given twice is counted once. Every
//! format says which rows come from simulated machines or emulated drivers.

use super::input::{InputError, read_report};
use super::run::{CellReport, Report};
use super::shape::Shape;
use super::verdict::{Floors, Level, judge};
use serde::{Deserialize, Serialize};
use std::fmt::{self, Write as _};
use std::path::Path;

/// Below this share of its shape's median a node is flagged.
pub const OUTLIER_SHARE: f64 = 0.9;

/// The version of the fleet summary's JSON shape. 1: rows with origin and completeness, and the
/// reports counted once.
pub const SCHEMA: u32 = 1;

/// Every file that could not be used, one line each.
#[derive(Debug)]
pub struct InputErrors(pub Vec<InputError>);

impl fmt::Display for InputErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl std::error::Error for InputErrors {}

/// The reports of a fleet, each once.
#[derive(Debug)]
pub struct Inputs {
    pub reports: Vec<Report>,
    pub duplicates: Vec<Duplicate>,
}

/// A file whose report was already given (the same file twice, or a copy of it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Duplicate {
    pub file: String,
    pub same_as: String,
}

impl fmt::Display for Duplicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is the same report as {}", self.file, self.same_as)
    }
}

/// Reads every report, each counted once; all unusable files are named, not only the first.
pub fn load(paths: &[impl AsRef<Path>]) -> Result<Inputs, InputErrors> {
    let mut read: Vec<(&Path, Report)> = Vec::new();
    let mut duplicates = Vec::new();
    let mut errors = Vec::new();
    for path in paths.iter().map(AsRef::as_ref) {
        match read_report(path) {
            Ok(r) => match read.iter().find(|(_, seen)| *seen == r) {
                Some((first, _)) => duplicates.push(Duplicate {
                    file: path.display().to_string(),
                    same_as: first.display().to_string(),
                }),
                None => read.push((path, r)),
            },
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(Inputs {
            reports: read.into_iter().map(|(_, r)| r).collect(),
            duplicates,
        })
    } else {
        Err(InputErrors(errors))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeRow {
    pub node: String,
    /// e.g. "8x NVIDIA H100 80GB HBM3 [X NV18 …]".
    pub shape: String,
    pub verdict: Level,
    /// e.g. "GPU2 → GPU3 write sm".
    pub worst_cell: Option<String>,
    pub worst_efficiency: Option<f64>,
    pub failed_cells: usize,
    /// The median worst efficiency of the complete reports of this shape.
    pub shape_median_efficiency: Option<f64>,
    pub outlier: bool,
    /// The simulated machine the report came from; null on hardware.
    pub simulated: Option<String>,
    /// Whether the probe ran on p2ptop's emulated drivers.
    pub emulated: bool,
    /// False for an interrupted run: its row is shown but left out of the median.
    pub complete: bool,
}

impl NodeRow {
    /// Where the figures come from: `SIMULATED: <machine>`, `EMULATED drivers` or `hardware`.
    pub fn origin(&self) -> String {
        super::format::origin(self.simulated.as_deref(), self.emulated)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fleet {
    pub schema: u32,
    /// Whether any row comes from a simulated machine (each row says which).
    pub simulated: bool,
    /// Whether any row comes from emulated drivers.
    pub emulated: bool,
    pub nodes: Vec<NodeRow>,
    /// Reports given more than once, counted once.
    pub duplicates: Vec<Duplicate>,
}

/// One row per report, judged with `floors`, outliers flagged within each shape.
pub fn summarize(inputs: &Inputs, floors: &Floors) -> Fleet {
    let mut nodes: Vec<NodeRow> = inputs.reports.iter().map(|r| row(r, floors)).collect();
    let shapes: Vec<String> = nodes.iter().map(|n| n.shape.clone()).collect();
    for shape in shapes {
        let mut figures: Vec<f64> = nodes
            .iter()
            .filter(|n| n.shape == shape && n.complete)
            .filter_map(|n| n.worst_efficiency)
            .collect();
        let median = median(&mut figures);
        for n in nodes.iter_mut().filter(|n| n.shape == shape) {
            n.shape_median_efficiency = median;
            n.outlier = match (n.worst_efficiency, median) {
                (Some(own), Some(m)) => own < OUTLIER_SHARE * m,
                _ => false,
            };
        }
    }
    Fleet {
        schema: SCHEMA,
        simulated: nodes.iter().any(|n| n.simulated.is_some()),
        emulated: nodes.iter().any(|n| n.emulated),
        nodes,
        duplicates: inputs.duplicates.clone(),
    }
}

fn row(report: &Report, floors: &Floors) -> NodeRow {
    let verdict = judge(report, floors, None);
    let worst = report
        .cells
        .iter()
        .filter(|c| !c.corrupted())
        .filter_map(|c| Some((c, c.efficiency?)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    NodeRow {
        node: report.hostname().to_owned(),
        shape: Shape::of(&report.machine.topology).to_string(),
        verdict: verdict.overall,
        worst_cell: worst.map(|(c, _)| CellReport::label(c)),
        worst_efficiency: worst.map(|(_, e)| e),
        failed_cells: verdict.failed_cells(),
        shape_median_efficiency: None,
        outlier: false,
        simulated: report.simulated.clone(),
        emulated: report.emulated,
        complete: report.run.complete,
    }
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |e| format!("{:.0}%", e * 100.0))
}

fn cells(n: &NodeRow) -> [String; 6] {
    [
        n.node.clone(),
        n.verdict.word().to_owned(),
        n.worst_cell.clone().unwrap_or_else(|| "n/a".into()),
        percent(n.worst_efficiency),
        n.failed_cells.to_string(),
        flags(n).join(", "),
    ]
}

/// What a row's figures need said beside them: an outlier, an incomplete run, where they come
/// from when not from hardware.
fn flags(n: &NodeRow) -> Vec<String> {
    let mut flags = Vec::new();
    if n.outlier {
        flags.push(format!(
            "OUTLIER (< {:.0}% of {})",
            OUTLIER_SHARE * 100.0,
            percent(n.shape_median_efficiency)
        ));
    }
    if !n.complete {
        flags.push("INCOMPLETE".to_owned());
    }
    if n.simulated.is_some() || n.emulated {
        flags.push(n.origin());
    }
    flags
}

const COLUMNS: [&str; 6] = [
    "node",
    "verdict",
    "worst pair",
    "efficiency",
    "failures",
    "flag",
];

impl Fleet {
    /// What the Markdown leads with, as a word and a sentence: which rows are simulated,
    /// emulated or incomplete (in every format each such row also says so in its flags).
    fn marks(&self) -> Vec<(&'static str, String)> {
        let count = |keep: &dyn Fn(&NodeRow) -> bool| self.nodes.iter().filter(|n| keep(n)).count();
        let of = |k: usize| format!("{k} of {} report(s)", self.nodes.len());
        let mut marks = Vec::new();
        if self.simulated {
            let mut machines: Vec<&str> = self
                .nodes
                .iter()
                .filter_map(|n| n.simulated.as_deref())
                .collect();
            machines.sort_unstable();
            machines.dedup();
            marks.push((
                "SIMULATED",
                format!(
                    "{} come from simulated machines ({}): their figures come from p2ptop's \
                     model, not from hardware",
                    of(count(&|n| n.simulated.is_some())),
                    machines.join(", ")
                ),
            ));
        }
        if self.emulated {
            marks.push((
                "EMULATED",
                format!(
                    "{} come from p2ptop's emulated NVIDIA drivers (tests/emu): their figures \
                     come from its model, not from hardware",
                    of(count(&|n| n.emulated))
                ),
            ));
        }
        let incomplete = count(&|n| !n.complete);
        if incomplete > 0 {
            marks.push((
                "INCOMPLETE",
                format!(
                    "{} come from interrupted runs: shown, but left out of the medians",
                    of(incomplete)
                ),
            ));
        }
        marks
    }

    /// Aligned columns for a terminal.
    fn table(&self) -> String {
        let rows: Vec<[String; 6]> = self.nodes.iter().map(cells).collect();
        let widths: Vec<usize> = (0..6)
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .chain([COLUMNS[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |texts: Vec<&str>| {
            let mut out = String::new();
            for (text, w) in texts.iter().zip(&widths) {
                let _ = write!(out, "{text:w$}  ");
            }
            out.trim_end().to_owned() + "\n"
        };
        let mut out = line(COLUMNS.to_vec());
        for r in &rows {
            out += &line(r.iter().map(String::as_str).collect());
        }
        out
    }

    fn json(&self) -> String {
        // Plain structs with string keys: serializing cannot fail.
        serde_json::to_string_pretty(self).expect("fleet summaries always serialize") + "\n"
    }

    fn csv(&self) -> String {
        let mut out = String::from(
            "node,shape,verdict,worst_cell,worst_efficiency,failed_cells,shape_median_efficiency,\
             outlier,origin,complete\n",
        );
        let opt = |v: Option<f64>| v.map_or_else(String::new, |e| e.to_string());
        for n in &self.nodes {
            let fields = [
                n.node.clone(),
                n.shape.clone(),
                n.verdict.word().to_lowercase(),
                n.worst_cell.clone().unwrap_or_default(),
                opt(n.worst_efficiency),
                n.failed_cells.to_string(),
                opt(n.shape_median_efficiency),
                n.outlier.to_string(),
                n.origin(),
                n.complete.to_string(),
            ];
            let quoted: Vec<String> = fields
                .iter()
                .map(|f| super::format::csv::escape(f))
                .collect();
            out += &quoted.join(",");
            out.push('\n');
        }
        out
    }

    fn markdown(&self) -> String {
        let mut out: String = self
            .marks()
            .iter()
            .map(|(word, text)| format!("> **{word}** — {text}\n\n"))
            .collect();
        let _ = write!(out, "| {} |\n|{}\n", COLUMNS.join(" | "), "---|".repeat(6));
        for r in self.nodes.iter().map(cells) {
            let _ = writeln!(out, "| {} |", r.join(" | "));
        }
        let _ = writeln!(
            out,
            "\nEfficiency is each node's worst measured share of line rate; a node is flagged \
             below {:.0}% of the median of nodes with the same GPUs and links.",
            OUTLIER_SHARE * 100.0
        );
        out
    }

    /// The fleet in `format`, as the single-report formats are chosen.
    pub fn render(&self, format: super::format::Format) -> String {
        use super::format::Format;
        match format {
            Format::Table => self.table(),
            Format::Json => self.json(),
            Format::Csv => self.csv(),
            Format::Markdown => self.markdown(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }
}
