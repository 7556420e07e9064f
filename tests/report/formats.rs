//! Every rendering of reports from simulated presets, snapshot-tested; JSON round-trips.

use crate::common::{Run, scratch, with_faults, with_host};
use p2ptop::exit;
use p2ptop::report::format::{Format, render};
use p2ptop::report::input::{parse_report, read_report};
use p2ptop::report::run::Report;
use p2ptop::report::verdict::{Floors, judge};
use p2ptop::report::write::write_whole;
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

fn rendered(report: &Report, format: Format) -> String {
    render(format, report, &judge(report, &Floors::default(), None))
}

#[test]
fn hgx_h100_renders() {
    let report = hgx();
    insta::assert_snapshot!("hgx_h100_table", rendered(&report, Format::Table));
    insta::assert_snapshot!("hgx_h100_markdown", rendered(&report, Format::Markdown));
    insta::assert_snapshot!("hgx_h100_csv", rendered(&report, Format::Csv));
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
fn json_reports_round_trip_and_start_with_schema_and_simulated() {
    for report in [hgx(), pcie_3090(), faulty()] {
        let text = rendered(&report, Format::Json);
        assert!(
            text.starts_with("{\n  \"schema\": 1,\n  \"simulated\": \""),
            "{}",
            &text[..80]
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
    write_whole(&path, rendered(&report, Format::Json).as_bytes()).unwrap();
    assert_eq!(read_report(&path).unwrap(), report);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_malformed_or_missing_baseline_names_the_file_and_the_spot() {
    let dir = scratch("malformed");
    let bad = dir.join("baseline.json");
    std::fs::write(&bad, "{\n  \"schema\": 1,\n  \"simulated\": @\n}").unwrap();
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
    std::fs::write(&wrong_shape, "{\"schema\": 1}").unwrap();
    let err = read_report(&wrong_shape).unwrap_err().to_string();
    assert!(
        err.contains("other.json") && err.contains("missing field"),
        "{err}"
    );
    let newer = dir.join("newer.json");
    let mut report = pcie_3090();
    report.schema = 2;
    std::fs::write(&newer, serde_json::to_string(&report).unwrap()).unwrap();
    let err = read_report(&newer).unwrap_err().to_string();
    assert!(
        err.contains("newer.json") && err.contains("schema 2"),
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
