//! `p2ptop check --quick` as a Slurm prolog or health check runs it: one line on stdout, exit
//! 0 or 1, and on an 8-GPU NVSwitch node (simulated HGX H100) well within 15 s of simulated
//! time, healthy or with each fault it is meant to catch.

mod daemons;

use daemons::Scratch;
use std::path::Path;
use std::process::{Command, Output};

const P2PTOP: &str = env!("CARGO_BIN_EXE_p2ptop");
/// What a health check may take on an 8-GPU node.
const BUDGET_S: f64 = 15.0;

/// `check --quick` with the JSON report in `dir`: the output and the report.
fn quick(machine: &str, dir: &Path) -> (Output, serde_json::Value) {
    let report = dir.join("report.json");
    let out = Command::new(P2PTOP)
        .args([
            "--sim", machine, "check", "--quick", "--format", "json", "-o",
        ])
        .arg(&report)
        .output()
        .unwrap();
    let json = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    (out, json)
}

/// The run's simulated duration: the telemetry sampler's span.
fn simulated_seconds(report: &serde_json::Value) -> f64 {
    report["telemetry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["seconds"].as_f64().unwrap())
        .fold(0.0, f64::max)
}

fn one_line(out: &Output) -> String {
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(text.lines().count(), 1, "not one line: {text:?}");
    text.trim_end().to_owned()
}

#[test]
fn a_healthy_hgx_h100_passes_in_36_sm_bidir_measurements_well_within_budget() {
    let scratch = Scratch::new("quick-healthy");
    let (out, report) = quick("hgx-h100", &scratch.dir);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let line = one_line(&out);
    assert_eq!(
        line,
        "PASS: quick check of 8 GPU(s), 36 measurements, no fault found (SIMULATED: hgx-h100)"
    );
    let cells = report["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 36);
    assert!(
        cells
            .iter()
            .all(|c| c["op"] == "bidir" && c["engine"] == "sm")
    );
    assert!(report["latency"].as_array().unwrap().is_empty());
    let seconds = simulated_seconds(&report);
    assert!(seconds > 1.0 && seconds < BUDGET_S, "{seconds} s");
    // The full check of the same machine, for scale.
    let full = Command::new(P2PTOP)
        .args(["--sim", "hgx-h100", "check", "--format", "json"])
        .output()
        .unwrap();
    let full: serde_json::Value = serde_json::from_slice(&full.stdout).unwrap();
    assert!(simulated_seconds(&full) > 2.0 * seconds);
}

#[test]
fn each_fault_fails_the_quick_check_with_one_line_naming_it() {
    let cases = [
        (
            "nvlink_down",
            "gpu = 6\nlink = 0",
            vec!["FAIL: GPU6: NVLink 0 is down"],
        ),
        (
            "pcie_downgraded",
            "gpu = 3\ngeneration = 4\nwidth = 8",
            vec!["FAIL: GPU3: PCIe link reached only Gen4 x8"],
        ),
        (
            "corrupt",
            "src = \"3\"\ndst = \"5\"",
            vec!["FAIL: GPU3 ↔ GPU5: data arrived wrong"],
        ),
        // The other direction of the same pair is the other half of the same bidir.
        (
            "corrupt",
            "src = \"5\"\ndst = \"3\"",
            vec!["FAIL: GPU3 ↔ GPU5: data arrived wrong"],
        ),
        (
            "corrupt",
            "src = \"host\"\ndst = \"7\"",
            vec!["FAIL: GPU7 ↔ host: data arrived wrong"],
        ),
    ];
    let mut reports = Vec::new();
    for (i, (kind, fields, needles)) in cases.iter().enumerate() {
        let scratch = Scratch::new(&format!("quick-fault-{i}"));
        let machine = scratch.path("machine.toml");
        std::fs::write(
            &machine,
            format!(
                "name = \"hgx-{kind}\"\nsummary = \"test\"\npreset = \"hgx-h100\"\n\
                 [[faults]]\nkind = \"{kind}\"\n{fields}\n"
            ),
        )
        .unwrap();
        let (out, report) = quick(machine.to_str().unwrap(), &scratch.dir);
        assert_eq!(out.status.code(), Some(1), "{kind}: {out:?}");
        let line = one_line(&out);
        for needle in needles {
            assert!(line.contains(needle), "{kind} {fields}: {line}");
        }
        assert!(line.ends_with(&format!("(SIMULATED: {})", machine.display())));
        let seconds = simulated_seconds(&report);
        assert!(seconds < BUDGET_S, "{kind}: {seconds} s");
        reports.push(report);
    }
    // The trained-down link is also the GPU's own failure, from telemetry under load.
    let gpu3 = &reports[1]["verdict"]["gpus"].as_array().unwrap()[3];
    assert_eq!(gpu3["level"], "fail");
    assert!(
        gpu3["reasons"][0]["text"]
            .as_str()
            .unwrap()
            .contains("PCIe link reached only Gen4 x8 under load"),
        "{gpu3}"
    );
}

#[test]
fn quick_refuses_an_engine_because_only_sm_copies_prove_peer_access() {
    let out = Command::new(P2PTOP)
        .args(["--sim", "hgx-h100", "check", "--quick", "--engine", "ce"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("'--quick' cannot be used with '--engine"),
        "{said}"
    );
}
