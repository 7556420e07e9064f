//! Every rendering of reports from simulated presets, snapshot-tested; JSON round-trips.

use crate::common::{Run, scratch, with_faults, with_host};
use p2ptop::exit;
use p2ptop::probe::protocol::Node;
use p2ptop::report::format::{Format, render};
use p2ptop::report::input::{parse_report, read_report};
use p2ptop::report::run::{CellReport, Report};
use p2ptop::report::verdict::{Floors, judge};
use p2ptop::report::write::write_output;
use std::path::Path;

fn hgx() -> Report {
    Run::preset("hgx-h100").sweep(&with_host(4)).report()
}

fn pcie_3090() -> Report {
    Run::preset("3090-pcie").sweep(&with_host(2)).report()
}

/// A bridged pair with a corrupting direction, a link down and GPU1's slot trained down.
fn faulty() -> Report {
    Run::new(with_faults(
        "3090-bridge",
        "[[faults]]\nkind = \"corrupt\"\nsrc = \"0\"\ndst = \"1\"\n\
         [[faults]]\nkind = \"nvlink_down\"\ngpu = 1\nlink = 3\n\
         [[faults]]\nkind = \"pcie_downgraded\"\ngpu = 1\ngeneration = 3\nwidth = 8\n",
    ))
    .sweep(&with_host(2))
    .report()
}

/// The HGX H100 of the issue that asked for causes, measured as `check` measures.
fn four_faults() -> Report {
    Run::new(crate::causes::four_faults())
        .as_check(&with_host(8))
        .report()
}

fn rendered(report: &Report, format: Format) -> String {
    render(format, report, &judge(report, &Floors::default(), None))
}

/// What a JSON report leads with, for a snapshot: everything before the verdict's per-cell list
/// (schema, simulated, the verdict and its causes), then the run, then the cells of `paths` as
/// the report holds them. (A whole 8-GPU report is 20 000 lines.)
fn json_summary(report: &Report, paths: &[(Node, Node)]) -> String {
    let text = rendered(report, Format::Json);
    let head = &text[..text
        .find("\n    \"cells\": [")
        .expect("the verdict lists its cells")];
    let cells: Vec<&CellReport> = report
        .cells
        .iter()
        .filter(|c| paths.contains(&(c.src, c.dst)))
        .collect();
    format!(
        "{head}\n…\n\"run\": {}\n…\n\"cells\" of {paths:?}: {}\n",
        serde_json::to_string_pretty(&report.run).unwrap(),
        serde_json::to_string_pretty(&cells).unwrap()
    )
}

#[test]
fn hgx_h100_renders() {
    let report = hgx();
    insta::assert_snapshot!("hgx_h100_table", rendered(&report, Format::Table));
    insta::assert_snapshot!("hgx_h100_markdown", rendered(&report, Format::Markdown));
    insta::assert_snapshot!("hgx_h100_csv", rendered(&report, Format::Csv));
    let paths = [(Node::Gpu(0), Node::Gpu(1)), (Node::Gpu(0), Node::Host)];
    insta::assert_snapshot!("hgx_h100_json", json_summary(&report, &paths));
}

#[test]
fn four_faults_render_summary_first_with_one_line_per_cause() {
    let report = four_faults();
    let table = rendered(&report, Format::Table);
    assert!(
        table
            .lines()
            .nth(2)
            .unwrap()
            .starts_with("verdict: FAIL — 4 causes"),
        "{table}"
    );
    insta::assert_snapshot!("four_faults_table", table);
    let markdown = rendered(&report, Format::Markdown);
    // A ticket's reader sees the verdict and every cause without scrolling.
    let top: Vec<&str> = markdown.lines().take(15).collect();
    assert!(
        top.contains(&"**Verdict: FAIL** — 4 causes, worst first:"),
        "{top:#?}"
    );
    for cause in [
        "1. **FAIL** GPU3 → GPU5: data arrived wrong",
        "2. **FAIL** GPU6: NVLink 0 is down",
        "3. **FAIL** GPU3: PCIe link reached only Gen4 x8",
        "4. **WARN** GPU2: power limit 400 W",
    ] {
        assert!(
            top.iter().any(|l| l.starts_with(cause)),
            "{cause} not in {top:#?}"
        );
    }
    let evidence = markdown.find("## Evidence").unwrap();
    assert!(
        evidence < markdown.find("## Bandwidth").unwrap(),
        "matrices come last"
    );
    insta::assert_snapshot!("four_faults_markdown", markdown);
    let paths = [
        (Node::Gpu(3), Node::Host),
        (Node::Gpu(3), Node::Gpu(5)),
        (Node::Gpu(0), Node::Gpu(6)),
    ];
    insta::assert_snapshot!("four_faults_json", json_summary(&report, &paths));
}

#[test]
fn rtx3090_pcie_renders_with_its_p2p_codes() {
    let report = pcie_3090();
    let table = rendered(&report, Format::Table);
    assert!(table.contains("GNS"), "{table}");
    insta::assert_snapshot!("3090_pcie_table", table);
    insta::assert_snapshot!("3090_pcie_markdown", rendered(&report, Format::Markdown));
}

#[test]
fn a_faulty_machine_renders_its_faults_unmistakably() {
    let report = faulty();
    let table = rendered(&report, Format::Table);
    assert!(table.contains("CORRUPT"), "{table}");
    assert!(table.contains("verdict: FAIL"), "{table}");
    insta::assert_snapshot!("faulty_table", table);
    let markdown = rendered(&report, Format::Markdown);
    assert!(markdown.contains("**SIMULATED**"), "{markdown}");
    insta::assert_snapshot!("faulty_markdown", markdown);
    insta::assert_snapshot!("faulty_csv", rendered(&report, Format::Csv));
}

#[test]
fn json_reports_round_trip_and_start_with_schema_simulated_and_the_verdict() {
    for report in [hgx(), pcie_3090(), faulty()] {
        let text = rendered(&report, Format::Json);
        assert!(
            text.starts_with("{\n  \"schema\": 2,\n  \"simulated\": \""),
            "{}",
            &text[..80]
        );
        let top: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("  \"")?.split('"').next())
            .collect();
        assert_eq!(
            top,
            [
                "schema",
                "simulated",
                "emulated",
                "verdict",
                "findings",
                "allreduce_estimate",
                "run",
                "machine",
                "cells",
                "latency",
                "telemetry",
                "problems"
            ]
        );
        let back = parse_report(&text, Path::new("mem.json")).unwrap();
        assert_eq!(back, report);
        // Serializing the read-back report gives the same text again.
        assert_eq!(rendered(&back, Format::Json), text);
    }
}

#[test]
fn a_report_file_is_written_whole_and_read_back_equal() {
    let dir = scratch("roundtrip");
    let path = dir.join("node.json");
    let report = pcie_3090();
    write_output(&path, rendered(&report, Format::Json).as_bytes()).unwrap();
    assert_eq!(read_report(&path).unwrap(), report);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_malformed_or_missing_baseline_names_the_file_and_the_spot() {
    let dir = scratch("malformed");
    let bad = dir.join("baseline.json");
    std::fs::write(&bad, "{\n  \"schema\": 2,\n  \"simulated\": @\n}").unwrap();
    let err = read_report(&bad).unwrap_err();
    assert_eq!((err.line, err.column), (Some(3), Some(16)));
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{}:3:16: ", bad.display())),
        "{text}"
    );
    assert!(
        !text.contains("at line"),
        "the position is said once: {text}"
    );
    assert_eq!(err.exit_code(), exit::USAGE);
    let wrong_shape = dir.join("other.json");
    std::fs::write(&wrong_shape, "{\"schema\": 2}").unwrap();
    let err = read_report(&wrong_shape).unwrap_err().to_string();
    assert!(
        err.contains("other.json") && err.contains("missing field"),
        "{err}"
    );
    let newer = dir.join("newer.json");
    let mut report = pcie_3090();
    report.schema = 3;
    std::fs::write(&newer, serde_json::to_string(&report).unwrap()).unwrap();
    let err = read_report(&newer).unwrap_err().to_string();
    assert!(
        err.contains("newer.json") && err.contains("schema 3"),
        "{err}"
    );
    let missing = read_report(&dir.join("absent.json")).unwrap_err();
    assert!(
        missing.to_string().contains("absent.json: cannot read"),
        "{missing}"
    );
    assert_eq!(missing.exit_code(), exit::USAGE);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn every_csv_row_says_where_its_figure_comes_from_and_whether_the_run_was_complete() {
    let mut report = pcie_3090();
    let csv = rendered(&report, Format::Csv);
    assert!(csv.lines().next().unwrap().ends_with(",origin,complete"));
    assert!(
        csv.lines()
            .skip(1)
            .all(|l| l.ends_with(",SIMULATED: 3090-pcie,true")),
        "{csv}"
    );
    report.run.complete = false;
    let csv = rendered(&report, Format::Csv);
    assert!(csv.lines().skip(1).all(|l| l.ends_with(",false")), "{csv}");
}
