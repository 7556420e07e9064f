//! `run` and `check` through the real probe and NVML on emulated machines agree with the
//! simulator on the same machine.

use crate::harness::{self, Emu};
use serde_json::Value;
use std::collections::BTreeMap;

/// Small buffers and two samples: the emulation's figures do not depend on the buffer size.
const QUICK: [&str; 4] = ["--buffer-mib", "1", "--samples", "2"];

type Cell = (String, String, String, String);

fn cells(report: &Value) -> BTreeMap<Cell, Value> {
    report["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .map(|c| {
            let key = (
                c["src"].to_string(),
                c["dst"].to_string(),
                c["op"].as_str().unwrap().to_owned(),
                c["engine"].as_str().unwrap().to_owned(),
            );
            (key, c.clone())
        })
        .collect()
}

/// Runs `run` on both faces of `machine` and returns every cell where they disagree by more
/// than 5%, or where one measured what the other did not.
fn disagreements(machine: &str) -> Vec<String> {
    let emu = Emu::new(machine);
    let mut args = vec!["run", "--format", "json"];
    args.extend(QUICK);
    let emulated = harness::json(&emu.p2ptop(&args));
    let simulated = harness::json(&harness::simulated(machine, &args));
    emu.assert_no_misuse();
    let (e, s) = (cells(&emulated), cells(&simulated));
    assert_eq!(
        e.keys().collect::<Vec<_>>(),
        s.keys().collect::<Vec<_>>(),
        "{machine}: the same cells"
    );
    let mut out = Vec::new();
    for (key, cell) in &e {
        let failure = |c: &Value| c["failure"]["kind"].clone();
        if failure(cell) != failure(&s[key]) {
            out.push(format!(
                "{key:?}: emulated {}, simulated {}",
                cell["failure"], s[key]["failure"]
            ));
            continue;
        }
        if cell["failure"].is_null() {
            assert_eq!(cell["mismatched_bytes"], 0, "{machine} {key:?}: {cell}");
        }
        let (a, b) = (cell["gbps"].as_f64(), s[key]["gbps"].as_f64());
        match (a, b) {
            (Some(a), Some(b)) if (a / b - 1.0).abs() > 0.05 => {
                out.push(format!("{key:?}: emulated {a:.1}, simulated {b:.1} GB/s"))
            }
            (Some(_), Some(_)) | (None, None) => {}
            _ => out.push(format!("{key:?}: emulated {a:?}, simulated {b:?}")),
        }
    }
    out
}

#[test]
fn a_single_h100_and_its_host_path_measure_as_simulated() {
    let off = disagreements("h100-single");
    assert!(off.is_empty(), "{off:#?}");
}

#[test]
fn a_bridged_3090_pair_measures_as_simulated() {
    let off = disagreements("3090-bridge");
    assert!(off.is_empty(), "{off:#?}");
}

#[test]
fn four_4090s_without_p2p_measure_as_simulated() {
    let off = disagreements("4090x4");
    assert!(off.is_empty(), "{off:#?}");
}

#[test]
fn an_8_gpu_hgx_h100_measures_as_simulated() {
    let off = disagreements("hgx-h100");
    assert!(off.is_empty(), "{off:#?}");
}

#[test]
fn check_passes_a_healthy_emulated_hgx_h100() {
    let emu = Emu::new("hgx-h100");
    let mut args = vec!["check", "--format", "json"];
    args.extend(QUICK);
    let output = emu.p2ptop(&args);
    let report = harness::json(&output);
    assert_eq!(output.status.code(), Some(0), "{}", report["verdict"]);
    emu.assert_no_misuse();
}
