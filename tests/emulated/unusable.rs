//! GPUs NVML counts but nothing can be measured on: outside the job's cgroup, fallen off the
//! bus, in MIG mode, hidden by `CUDA_VISIBLE_DEVICES`. Each is shown with why, the others are
//! measured, and only a lost GPU fails a check.

use crate::harness::{self, Emu};
use std::process::Output;

fn quick_check(emu: &Emu, extra: &[&str]) -> Output {
    let mut args = harness::SMALL_CHECK.to_vec();
    args.extend_from_slice(extra);
    emu.p2ptop(&args)
}

/// The GPUs any cell of the report measured.
fn measured_gpus(report: &serde_json::Value) -> Vec<u64> {
    let mut gpus: Vec<u64> = report["cells"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| [c["src"].as_u64(), c["dst"].as_u64()])
        .flatten()
        .collect();
    gpus.sort_unstable();
    gpus.dedup();
    gpus
}

/// The verdict's reasons for GPU `gpu`, as text.
fn gpu_reasons(report: &serde_json::Value, gpu: u64) -> String {
    report["verdict"]["gpus"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["gpu"] == gpu)
        .map(|g| g.to_string())
        .collect()
}

#[test]
fn a_gpu_outside_the_job_is_shown_with_why_and_the_rest_are_measured() {
    let emu = Emu::with_faults("4090x4", "[[faults]]\nkind = \"outside_cgroup\"\ngpu = 1\n");
    let output = quick_check(&emu, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "a warning only: {stderr}");
    assert!(stderr.contains("GPU1 is not measured"), "{stderr}");
    let report = harness::json(&output);
    assert_eq!(report["verdict"]["overall"], "warn");
    assert_eq!(measured_gpus(&report), [0, 2, 3]);
    let gpu1 = &report["machine"]["gpus"][1];
    assert_eq!(gpu1["unavailable"]["lost"], false, "{gpu1}");
    assert!(gpu_reasons(&report, 1).contains("permission"), "{report}");
    emu.assert_no_misuse();
}

#[test]
fn a_lost_gpu_fails_the_check_and_the_rest_are_measured() {
    let emu = Emu::with_faults("4090x4", "[[faults]]\nkind = \"gpu_lost\"\ngpu = 2\n");
    let output = quick_check(&emu, &[]);
    assert_eq!(output.status.code(), Some(1));
    let report = harness::json(&output);
    assert_eq!(report["verdict"]["overall"], "fail");
    assert_eq!(measured_gpus(&report), [0, 1, 3]);
    assert_eq!(report["machine"]["gpus"][2]["unavailable"]["lost"], true);
    assert!(gpu_reasons(&report, 2).contains("not measured"), "{report}");
    emu.assert_no_misuse();
}

#[test]
fn a_gpu_in_mig_mode_is_shown_and_left_out() {
    let preset = include_str!("../../src/sim/presets/hgx-h100.toml");
    // GPU0 (the first [[gpus]] table) in MIG mode.
    let at = preset.find("[[gpus]]").expect("the preset lists its GPUs") + "[[gpus]]".len();
    let machine = format!("{}\nmig = true{}", &preset[..at], &preset[at..]);
    let emu = Emu::from_file(&machine);
    let topo = emu.p2ptop(&["topo", "--format", "json"]);
    let topo = harness::json(&topo);
    assert_eq!(topo["gpus"][0]["mig"], true, "{}", topo["gpus"][0]);
    assert_eq!(topo["gpus"][1]["mig"], false);

    let named = quick_check(&emu, &["--devices", "0,1"]);
    assert_eq!(named.status.code(), Some(2), "GPU0 cannot be measured");
    assert!(String::from_utf8_lossy(&named.stderr).contains("MIG"));

    let output = quick_check(&emu, &["--devices", "1,2"]);
    assert_eq!(output.status.code(), Some(0));
    let report = harness::json(&output);
    assert_eq!(report["verdict"]["overall"], "warn");
    assert!(gpu_reasons(&report, 0).contains("MIG mode"), "{report}");
    emu.assert_no_misuse();
}

#[test]
fn cuda_visible_devices_is_respected_and_the_gpus_it_hides_are_shown() {
    let emu = Emu::new("4090x4");
    let output = emu
        .command(harness::P2PTOP)
        .args(harness::SMALL_CHECK)
        .env("CUDA_VISIBLE_DEVICES", "0,2")
        .output()
        .expect("run p2ptop");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let report = harness::json(&output);
    assert_eq!(
        measured_gpus(&report),
        [0, 2],
        "only what CUDA_VISIBLE_DEVICES shows"
    );
    assert!(
        gpu_reasons(&report, 3).contains("CUDA_VISIBLE_DEVICES=0,2"),
        "{report}"
    );
    emu.assert_no_misuse();
}
