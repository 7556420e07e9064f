//! `p2ptop topo` through the emulated NVML describes the machine `--sim` describes.

use crate::harness::{self, Emu};
use serde_json::Value;

/// Each pair's link type and P2P codes both ways.
fn links(topo: &Value) -> Vec<(u64, u64, String, Value, Value)> {
    topo["pairs"]
        .as_array()
        .expect("pairs")
        .iter()
        .map(|p| {
            (
                p["a"].as_u64().unwrap(),
                p["b"].as_u64().unwrap(),
                p["link"].to_string(),
                p["p2p"].clone(),
                p["p2p_back"].clone(),
            )
        })
        .collect()
}

#[test]
fn every_preset_shows_the_same_links_and_p2p_codes_as_the_simulator() {
    for (name, _) in p2ptop::sim::PRESETS {
        let emu = Emu::new(name);
        let emulated = harness::json(&emu.p2ptop(&["topo", "--format", "json"]));
        let simulated = harness::json(&harness::simulated(name, &["topo", "--format", "json"]));
        assert_eq!(emulated["simulated"], false, "{name}");
        assert_eq!(
            emulated["gpus"].as_array().map(Vec::len),
            simulated["gpus"].as_array().map(Vec::len),
            "{name}: GPU count"
        );
        assert_eq!(links(&emulated), links(&simulated), "{name}: links and P2P");
        emu.assert_no_misuse();
    }
}

#[test]
fn an_emulated_machine_never_passes_for_a_real_one() {
    let emu = Emu::new("3090-bridge");
    let text = String::from_utf8(emu.p2ptop(&["topo"]).stdout).unwrap();
    assert!(
        text.starts_with("EMULATED: NVML was p2ptop's emulated"),
        "{text}"
    );
    let json = harness::json(&emu.p2ptop(&["topo", "--format", "json"]));
    assert_eq!(json["emulated"], true);
    assert!(
        json["host"]["driver_version"]
            .as_str()
            .is_some_and(|v| v.ends_with("(p2ptop emulated)")),
        "{}",
        json["host"]
    );
    let run = emu.p2ptop(&[
        "run",
        "--buffer-mib",
        "1",
        "--samples",
        "1",
        "--engine",
        "ce",
    ]);
    let report = String::from_utf8_lossy(&run.stdout);
    assert!(
        report.contains("EMULATED drivers: the probe ran on p2ptop's emulated"),
        "{report}"
    );
    assert!(report.contains("Method: EMULATED"), "{report}");
    emu.assert_no_misuse();
}

#[test]
fn the_run_script_puts_any_command_on_the_emulated_drivers() {
    // tests/emu/run, as docs/EMULATION.md tells users to run a command on an emulated machine.
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/emu/run");
    let target = std::path::Path::new(harness::P2PTOP)
        .parent()
        .and_then(|debug| debug.parent())
        .expect("the binary lies in target/debug");
    let output = std::process::Command::new(script)
        .args(["3090-bridge", harness::P2PTOP, "topo", "--format", "json"])
        .env("CARGO_TARGET_DIR", target)
        .env_remove("P2PTOP_EMU")
        .env_remove("CUDA_VISIBLE_DEVICES")
        .output()
        .expect("run tests/emu/run");
    let topo = harness::json(&output);
    assert_eq!(topo["emulated"], true, "{topo}");
    assert_eq!(topo["gpus"].as_array().map(Vec::len), Some(2));
}
