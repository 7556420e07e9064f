//! CSV: one row per cell per direction (a failed cell gets one row with its failure), so a
//! spreadsheet can filter and pivot without knowing the report's nesting.

use crate::report::run::{CellReport, Report, failure_kind_name};

const HEADER: &str = "src,dst,op,engine,direction_src,direction_dst,executor,median_gbps,\
min_gbps,max_gbps,cv,line_rate_gbps,efficiency,mismatched_bytes,first_bad_offset,throttled,\
failure_kind,failure_message";

pub fn render(report: &Report) -> String {
    let mut out = String::from(HEADER);
    out.push('\n');
    for cell in &report.cells {
        for row in rows(cell) {
            out += &row.iter().map(|f| escape(f)).collect::<Vec<_>>().join(",");
            out.push('\n');
        }
    }
    out
}

fn rows(cell: &CellReport) -> Vec<Vec<String>> {
    let opt = |v: Option<String>| v.unwrap_or_default();
    let common = [
        cell.src.to_string(),
        cell.dst.to_string(),
        cell.op.name().to_owned(),
        cell.engine.name().to_owned(),
    ];
    let tail = |efficiency: Option<f64>| {
        [
            opt(cell.line_rate_gbps.map(|v| v.to_string())),
            opt(efficiency.map(|v| v.to_string())),
            opt(cell.mismatched_bytes.map(|v| v.to_string())),
            opt(cell.first_bad_offset.map(|v| v.to_string())),
            cell.throttled.to_string(),
            opt(cell
                .failure
                .as_ref()
                .map(|f| failure_kind_name(f.kind).to_owned())),
            opt(cell.failure.as_ref().map(|f| f.message.clone())),
        ]
    };
    if cell.directions.is_empty() {
        let empty = vec![String::new(); 7];
        return vec![[&common[..], &empty, &tail(None)].concat()];
    }
    cell.directions
        .iter()
        .map(|d| {
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
            [&common[..], &direction, &tail(efficiency)].concat()
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
