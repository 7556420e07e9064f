//! p2ptop's NVML layer (`nvml::real` and the sampler) against the emulated `libnvidia-ml.so.1`,
//! in a process of its own: what an older or stricter driver refuses, p2ptop reads another way,
//! and it asks no more than it needs.

use crate::harness::{self, Emu};
use p2ptop::nvml::real;
use p2ptop::nvml::sampler::Sampler;
use p2ptop::nvml::source::NvmlSource;

/// The emulated NVML opened in this (child) process, and one telemetry pass over it.
fn first_pass() -> (real::RealNvml, p2ptop::model::telemetry::TelemetryFrame) {
    let nvml = real::open().expect("the emulated NVML opens");
    let frame = Sampler::new(&nvml).sample(&nvml);
    (nvml, frame)
}

#[test]
fn thresholds_come_from_the_t_limit_fields_where_the_threshold_call_gives_nothing() {
    if harness::in_child() {
        let (_, frame) = first_pass();
        let gpu = &frame.gpus[0];
        harness::child_output(&format!(
            "{:?} {:?}",
            gpu.slowdown_temp_c, gpu.shutdown_temp_c
        ));
        return;
    }
    let emu = Emu::new("4090x4");
    let out = emu.run_child(
        "nvml::thresholds_come_from_the_t_limit_fields_where_the_threshold_call_gives_nothing",
        &[("P2PTOP_EMU_REFUSE", "nvmlDeviceGetTemperatureThreshold")],
    );
    let model = &p2ptop::sim::load("4090x4").unwrap().gpus[0].model;
    assert_eq!(
        out,
        format!("Some({:?}) Some({:?})", model.slowdown_c, model.shutdown_c),
        "the thresholds, worked out from the signed T.Limit fields and the margin"
    );
    assert!(
        emu.log()
            .contains("FAULT nvmlDeviceGetTemperatureThreshold")
    );
    emu.assert_no_misuse();
}

#[test]
fn clocks_event_reasons_fall_back_to_the_older_call() {
    if harness::in_child() {
        let (_, frame) = first_pass();
        harness::child_output(&format!("{:?}", frame.gpus[0].throttle.map(|t| t.0)));
        return;
    }
    let emu = Emu::new("h100-single");
    let name = "nvml::clocks_event_reasons_fall_back_to_the_older_call";
    let current = emu.run_child(name, &[]);
    let older = emu.run_child(
        name,
        &[(
            "P2PTOP_EMU_REFUSE",
            "nvmlDeviceGetCurrentClocksEventReasons",
        )],
    );
    assert!(current.starts_with("Some("), "{current}");
    assert_eq!(older, current, "the same bits through the deprecated call");
    emu.assert_no_misuse();
}

#[test]
fn each_gpu_is_asked_about_the_nvlinks_it_has_and_no_more() {
    if harness::in_child() {
        let (nvml, _) = first_pass();
        let asked = p2ptop_emu::client::nvml_calls_to("nvmlDeviceGetNvLinkState")
            .expect("the emulated NVML is loaded");
        harness::child_output(&format!("{} {asked}", nvml.device_count()));
        return;
    }
    let emu = Emu::new("3090-bridge");
    let out = emu.run_child(
        "nvml::each_gpu_is_asked_about_the_nvlinks_it_has_and_no_more",
        &[],
    );
    // Two GPUs, four links each (field 91): four state calls per GPU, not one per link NVML
    // could have.
    assert_eq!(out, "2 8");
    emu.assert_no_misuse();
}

#[test]
fn a_device_count_that_fails_is_reported_not_read_as_no_gpus() {
    let emu = Emu::new("3090-bridge");
    let output = emu
        .command(harness::P2PTOP)
        .arg("topo")
        .env("P2PTOP_EMU_REFUSE", "nvmlDeviceGetCount_v2=999")
        .output()
        .expect("run p2ptop");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("could not count the GPUs"), "{stderr}");
}
