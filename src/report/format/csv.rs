//! CSV: one row per cell per direction (a failed cell gets one row with its failure), so a
//! spreadsheet can filter and pivot without knowing the report's nesting. Each row also says the
//! cell's verdict and the cause it is listed under, and the nvbandwidth testcase whose figure this
//! row's compares with (see `report::nvbandwidth`). The last two columns repeat on every row what
//! the other formats say once at the top, so no row taken out of the file passes for more than
//! it is: where its figure comes from (`SIMULATED: <machine>`, `EMULATED drivers`, `hardware`)
//! and whether the run was complete.

use crate::probe::protocol::DirectionSummary;
use crate::report::nvbandwidth::Figure;
use crate::report::run::{CellReport, Report, failure_kind_name};
use crate::report::verdict::{Level, Verdict};

const HEADER: &str = "src,dst,op,engine,direction_src,direction_dst,executor,median_gbps,\
min_gbps,max_gbps,cv,line_rate_gbps,line_rate_now_gbps,efficiency,mismatched_bytes,\
first_bad_offset,throttled,failure_kind,failure_message,verdict,cause,nvbandwidth_testcase,\
nvbandwidth_gbps,origin,complete";

pub fn render(report: &Report, verdict: &Verdict) -> String {
    let mut out = String::from(HEADER);
    out.push('\n');
    let marks = [
        super::origin(report.simulated.as_deref(), report.emulated),
        report.run.complete.to_string(),
    ];
    for cell in &report.cells {
        for row in rows(cell, verdict) {
            let fields = row.iter().chain(&marks);
            out += &fields.map(|f| escape(f)).collect::<Vec<_>>().join(",");
            out.push('\n');
        }
    }
    out
}

/// The cell's level and the cause its findings are listed under (empty for a pass).
fn judged(cell: &CellReport, verdict: &Verdict) -> [String; 2] {
    let label = cell.label();
    let level = verdict
        .cells
        .iter()
        .find(|c| c.label() == label)
        .map_or(Level::Pass, |c| c.level);
    let cause = verdict
        .causes
        .iter()
        .find(|c| c.evidence.iter().any(|e| e.subject == label))
        .map_or_else(String::new, |c| {
            format!("{}: {}", c.subject, c.kind.title())
        });
    [level.word().to_lowercase(), cause]
}

/// The testcases this row's figure compares with, and the figure.
fn nvbandwidth(cell: &CellReport, row: usize, d: &DirectionSummary) -> [String; 2] {
    let mut names = Vec::new();
    let mut figure = None;
    for m in &cell.nvbandwidth {
        let value = match &m.figure {
            Figure::Cell if row == 0 => cell.gbps,
            Figure::Direction { src, dst } if (*src, *dst) == (d.src, d.dst) => Some(d.median_gbps),
            _ => None,
        };
        if let Some(v) = value {
            names.push(m.testcase.clone());
            figure = Some(v);
        }
    }
    [
        names.join(";"),
        figure.map_or_else(String::new, |v| v.to_string()),
    ]
}

fn rows(cell: &CellReport, verdict: &Verdict) -> Vec<Vec<String>> {
    let opt = |v: Option<String>| v.unwrap_or_default();
    let common = [
        cell.src.to_string(),
        cell.dst.to_string(),
        cell.op.name().to_owned(),
        cell.engine.name().to_owned(),
    ];
    let judged = judged(cell, verdict);
    let tail = |efficiency: Option<f64>| {
        [
            opt(cell.line_rate_gbps.map(|v| v.to_string())),
            opt(cell.line_rate_now_gbps.map(|v| v.to_string())),
            opt(efficiency.map(|v| v.to_string())),
            opt(cell.mismatched_bytes.map(|v| v.to_string())),
            opt(cell.first_bad_offset.map(|v| v.to_string())),
            cell.throttled.to_string(),
            opt(cell
                .failure
                .as_ref()
                .map(|f| failure_kind_name(f.kind).to_owned())),
            opt(cell.failure.as_ref().map(|f| f.message.clone())),
            judged[0].clone(),
            judged[1].clone(),
        ]
    };
    if cell.directions.is_empty() {
        let empty = vec![String::new(); 7];
        let no_match = vec![String::new(); 2];
        return vec![[&common[..], &empty, &tail(None), &no_match].concat()];
    }
    cell.directions
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let efficiency = cell.line_rate_gbps.map(|l| d.median_gbps / l);
            let direction = [
                d.src.to_string(),
                d.dst.to_string(),
                d.executor.to_string(),
                d.median_gbps.to_string(),
                d.min_gbps.to_string(),
                d.max_gbps.to_string(),
                d.cv.to_string(),
            ];
            [
                &common[..],
                &direction,
                &tail(efficiency),
                &nvbandwidth(cell, i, d),
            ]
            .concat()
        })
        .collect()
}

/// Quotes a field that holds a comma, a quote or a line break (RFC 4180).
pub(crate) fn escape(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_with_commas_quotes_or_newlines_are_quoted() {
        assert_eq!(escape("plain"), "plain");
        assert_eq!(escape("a, b"), "\"a, b\"");
        assert_eq!(escape("say \"x\"\nnext"), "\"say \"\"x\"\"\nnext\"");
    }
}
