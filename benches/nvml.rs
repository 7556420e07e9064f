//! What one pass of the telemetry sampler costs on an 8-GPU NVSwitch machine: NVML calls per
//! entry point and milliseconds per tick, read through the emulated NVML (tests/emu) standing in
//! for `libnvidia-ml.so.1` on emulated hgx-h100. The call counts are what the sampler asks; the
//! milliseconds are the emulation's, not a driver's (a GPU run measures those).
//!
//! `cargo bench --bench nvml`

use p2ptop::nvml::real;
use p2ptop::nvml::sampler::{PCIE_EVERY, Sampler};
use p2ptop::nvml::source::NvmlSource;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::Instant;

const TICKS: u32 = 200;
/// Set in the re-executed benchmark, whose loader finds the emulated NVML.
const CHILD: &str = "P2PTOP_NVML_BENCH_CHILD";

/// The emulated NVML beside the benchmark (cargo builds it as a dependency of the benches).
fn emulated_library() -> PathBuf {
    let exe = std::env::current_exe().expect("the benchmark's path");
    let deps = exe.parent().expect("a directory");
    deps.join("libp2ptop_emu_nvml.so")
}

fn main() {
    if std::env::var_os(CHILD).is_none() {
        // The loader reads LD_LIBRARY_PATH once, at start: run again with the emulation on it.
        let dir = std::env::temp_dir().join(format!("p2ptop-nvml-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let link = dir.join("libnvidia-ml.so.1");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(emulated_library(), &link).expect("link the emulated NVML");
        let error = std::process::Command::new(std::env::current_exe().unwrap())
            .env(CHILD, "1")
            .env("LD_LIBRARY_PATH", &dir)
            .env("P2PTOP_EMU", "hgx-h100")
            .env("P2PTOP_EMU_STATE", dir.join("state"))
            .env("P2PTOP_EMU_LOG", dir.join("log"))
            .exec();
        panic!("could not run the benchmark again: {error}");
    }
    let nvml = real::open().expect("the emulated NVML opens");
    let before = calls();
    let started = Instant::now();
    let mut sampler = Sampler::new(&nvml);
    let setup = started.elapsed();
    let after_setup = calls();
    let started = Instant::now();
    for _ in 0..TICKS {
        std::hint::black_box(sampler.sample(&nvml));
    }
    let per_tick = started.elapsed() / TICKS;
    let after = calls();
    let total: u64 =
        after.iter().map(|(_, n)| n).sum::<u64>() - after_setup.iter().map(|(_, n)| n).sum::<u64>();
    println!("telemetry sampler on emulated hgx-h100 (8 GPUs, 18 NVLinks each), {TICKS} ticks");
    println!(
        "setup: {:.2} ms, {} NVML calls",
        setup.as_secs_f64() * 1e3,
        diff(&after_setup, &before)
            .iter()
            .map(|(_, n)| n)
            .sum::<u64>()
    );
    println!(
        "per tick: {:.3} ms, {} NVML calls (emulated; a driver's own cost is measured on a GPU)",
        per_tick.as_secs_f64() * 1e3,
        total / u64::from(TICKS)
    );
    for (name, n) in diff(&after, &after_setup) {
        println!("  {:>6} per tick  {name}", n / u64::from(TICKS));
    }
    let started = Instant::now();
    sampler.read_pcie(&nvml, nvml.clock_us());
    let between = started.elapsed();
    let pcie: u64 = diff(&calls(), &after).iter().map(|(_, n)| n).sum();
    println!(
        "between ticks, every {} ms: {:.3} ms, {pcie} NVML calls (PCIe byte counters)",
        PCIE_EVERY.as_millis(),
        between.as_secs_f64() * 1e3
    );
}

/// Calls per entry point so far, from the emulated NVML's own counter.
fn calls() -> Vec<(String, u64)> {
    p2ptop_emu::client::nvml_calls().expect("the loaded NVML is the emulation")
}

fn diff(after: &[(String, u64)], before: &[(String, u64)]) -> Vec<(String, u64)> {
    after
        .iter()
        .map(|(name, n)| {
            let was = before
                .iter()
                .find(|(b, _)| b == name)
                .map_or(0, |(_, n)| *n);
            (name.clone(), n - was)
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}
