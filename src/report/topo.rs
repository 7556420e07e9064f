//! `p2ptop topo`: the machine as text (laid out like `nvidia-smi topo -m`) or JSON.
//!
//! Text, top to bottom:
//!
//! ```text
//! SIMULATED: <preset> (only when simulated)
//! <tab-separated link matrix, CPU and NUMA affinity>   as nvidia-smi topo -m
//! Legend                                                as nvidia-smi topo -m
//! P2P status, one matrix per capability                 like nvidia-smi topo -p2p
//! Host facts
//! Per GPU: PCIe now/max, BAR1, each NVLink
//! Line rate per pair, with its basis
//! ```

use super::pairs::Pairs;
use crate::model::topology::{
    Gpu, Iommu, LinkType, NvLink, NvLinkRemote, P2pCaps, P2pStatus, Topology,
};
use serde::Serialize;
use std::fmt::Write;

/// Bumped whenever the JSON changes shape.
pub const SCHEMA_VERSION: u32 = 1;

/// The text report. `simulated` names the preset when the machine is simulated.
pub fn render_text(topo: &Topology, simulated: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(preset) = simulated {
        out += &format!("SIMULATED: {preset} (no real GPU was read)\n\n");
    }
    if topo.host.emulated() {
        out += "EMULATED: NVML was p2ptop's emulated driver library (no real GPU was read)\n\n";
    }
    out += &link_matrix(topo);
    out += &p2p_matrices(topo);
    out += &host(topo);
    out += &gpu_details(topo);
    out += &line_rates(topo);
    out
}

/// The JSON report: `schema` and `simulated` first, then the topology as the model holds it.
pub fn render_json(topo: &Topology, simulated: Option<&str>) -> String {
    #[derive(Serialize)]
    struct Report<'a> {
        schema: u32,
        simulated: bool,
        sim_preset: Option<&'a str>,
        emulated: bool,
        #[serde(flatten)]
        topology: &'a Topology,
    }
    let report = Report {
        schema: SCHEMA_VERSION,
        simulated: simulated.is_some(),
        sim_preset: simulated,
        emulated: topo.host.emulated(),
        topology: topo,
    };
    // A Topology holds only strings, numbers, booleans, options and lists, which
    // serde_json always encodes.
    serde_json::to_string_pretty(&report).expect("a topology always encodes as JSON") + "\n"
}

/// `nvidia-smi topo -m`: tab-separated, ` X ` on the diagonal, "N/A" for what is unknown.
fn link_matrix(topo: &Topology) -> String {
    let pairs = Pairs::of(topo);
    let mut out = String::new();
    for gpu in &topo.gpus {
        out += &format!("\tGPU{}", gpu.index);
    }
    out += "\tCPU Affinity\tNUMA Affinity\n";
    for row in &topo.gpus {
        out += &format!("GPU{}", row.index);
        for col in &topo.gpus {
            let cell = match pairs.link(row.index, col.index) {
                Some(LinkType::SelfLink) => " X ".to_owned(),
                Some(link) => link.to_string(),
                None => "N/A".to_owned(),
            };
            out += &format!("\t{cell}");
        }
        let cpus = row.cpu_affinity.as_deref().unwrap_or("N/A");
        let node = match (&row.numa_affinity, row.numa_node) {
            (Some(nodes), _) => nodes.clone(),
            (None, Some(n)) => n.to_string(),
            (None, None) => "N/A".to_owned(),
        };
        out += &format!("\t{cpus}\t{node}\n");
    }
    out += "\nLegend:\n\n";
    for link in LinkType::LEGEND_ORDER {
        out += &format!("  {}\n", link.legend());
    }
    out
}

/// Picks one capability's status out of a pair's answers.
type PickCap = fn(&P2pCaps) -> P2pStatus;

/// One matrix per capability; rows are the GPU that accesses, columns the GPU whose memory it
/// accesses. The codes that appear are explained below.
fn p2p_matrices(topo: &Topology) -> String {
    let caps: [(&str, PickCap); 4] = [
        ("read", |c| c.read),
        ("write", |c| c.write),
        ("over NVLink", |c| c.nvlink),
        ("atomics", |c| c.atomics),
    ];
    let pairs = Pairs::of(topo);
    let mut seen: Vec<P2pStatus> = Vec::new();
    let mut out = String::new();
    for (what, pick) in caps {
        out += &format!("\nP2P {what} (row: GPU that accesses, column: GPU whose memory)\n");
        for gpu in &topo.gpus {
            out += &format!("\tGPU{}", gpu.index);
        }
        out += "\n";
        for row in &topo.gpus {
            out += &format!("GPU{}", row.index);
            for col in &topo.gpus {
                let cell = if row.index == col.index {
                    " X ".to_owned()
                } else {
                    match pairs.p2p(row.index, col.index).map(|c| pick(&c)) {
                        Some(status) => {
                            if !seen.contains(&status) {
                                seen.push(status);
                            }
                            status.to_string()
                        }
                        None => "N/A".to_owned(),
                    }
                };
                out += &format!("\t{cell}");
            }
            out += "\n";
        }
    }
    if !seen.is_empty() {
        out += "\n";
    }
    for status in seen {
        out += &format!("  {}\n", status.sentence());
    }
    out
}

fn host(topo: &Topology) -> String {
    let h = &topo.host;
    let or_na = |value: Option<String>| value.unwrap_or_else(|| "n/a".into());
    let mut out = String::from("\nHost\n");
    let lines = [
        ("hostname", or_na(h.hostname.clone())),
        ("CPU", or_na(h.cpu_model.clone())),
        ("sockets", or_na(h.sockets.map(|n| n.to_string()))),
        ("NUMA nodes", or_na(h.numa_nodes.map(|n| n.to_string()))),
        ("kernel", or_na(h.kernel.clone())),
        ("driver", or_na(h.driver_version.clone())),
        ("CUDA", or_na(h.cuda_version.clone())),
        ("IOMMU", or_na(h.iommu.as_ref().map(iommu))),
        ("ACS", acs(h.acs_redirecting.as_deref())),
    ];
    for (name, value) in lines {
        let _ = writeln!(out, "  {name:<11} {value}");
    }
    out
}

fn iommu(mode: &Iommu) -> String {
    match mode {
        Iommu::Off => "off",
        Iommu::Passthrough => "passthrough (peer DMA is not translated)",
        Iommu::Translated => "translating DMA (peer traffic may detour through the CPU, or hang)",
    }
    .to_owned()
}

/// ACS on the ports above the GPUs, as far as p2ptop could read it.
fn acs(redirecting: Option<&[String]>) -> String {
    match redirecting {
        None => "unknown (reading the ports' ACS control takes root)".to_owned(),
        Some([]) => "no redirect on the ports above the GPUs".to_owned(),
        Some(ports) => format!(
            "redirects peer traffic to the root complex at {}",
            ports.join(", ")
        ),
    }
}

fn gpu_details(topo: &Topology) -> String {
    let mut out = String::new();
    for gpu in &topo.gpus {
        let _ = writeln!(out, "\n{}", gpu_heading(gpu));
        if let Some(why) = gpu.not_measurable() {
            let _ = writeln!(out, "  not measured: {why}");
        }
        let _ = writeln!(out, "  {}", gpu_facts(gpu));
        let _ = writeln!(out, "  PCIe     {}", pcie(gpu));
        for (links, description) in nvlink_runs(gpu, topo) {
            let _ = writeln!(out, "  NVLink {links:<5} {description}");
        }
    }
    out
}

/// The GPU's NVML number, name and bus id, and its CUDA ordinal where the probe gave one (`topo`
/// asks NVML only).
fn gpu_heading(gpu: &Gpu) -> String {
    let cuda = gpu
        .cuda_ordinal
        .map_or_else(String::new, |o| format!("  CUDA {o}"));
    format!("GPU{}  {}  {}{cuda}", gpu.index, gpu.name, gpu.pci_bus_id)
}

fn gpu_facts(gpu: &Gpu) -> String {
    let mib = |v: Option<u64>| v.map_or("n/a".to_owned(), |v| format!("{v} MiB"));
    let watts = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v} W"));
    let below_default = gpu
        .power_limit_below_default(None)
        .map_or_else(String::new, |(_, d)| format!(" (below the default {d} W)"));
    format!(
        "{}  memory {}  BAR1 {}  power limit {}{below_default}",
        gpu.architecture.as_deref().unwrap_or("n/a"),
        mib(gpu.memory_mib),
        mib(gpu.bar1_mib),
        watts(gpu.power_limit_w),
    )
}

fn pcie(gpu: &Gpu) -> String {
    let p = &gpu.pcie;
    let num = |v: Option<u32>| v.map_or("?".to_owned(), |v| v.to_string());
    format!(
        "gen {} x{} now, gen {} x{} max",
        num(p.gen_now),
        num(p.width_now),
        num(p.gen_max),
        num(p.width_max)
    )
}

/// Consecutive links that read the same, as one line each ("0-17" on an NVSwitch GPU).
fn nvlink_runs(gpu: &Gpu, topo: &Topology) -> Vec<(String, String)> {
    let mut runs: Vec<(u32, u32, String)> = Vec::new();
    for link in &gpu.nvlinks {
        let description = nvlink(link, topo);
        match runs.last_mut() {
            Some((_, last, text)) if *last + 1 == link.link && *text == description => {
                *last = link.link;
            }
            _ => runs.push((link.link, link.link, description)),
        }
    }
    runs.into_iter()
        .map(|(first, last, text)| match first == last {
            true => (first.to_string(), text),
            false => (format!("{first}-{last}"), text),
        })
        .collect()
}

fn nvlink(link: &NvLink, topo: &Topology) -> String {
    let state = if link.active { "active" } else { "inactive" };
    let version = link.version.as_deref().unwrap_or("?");
    let speed = link
        .speed_gbps
        .map_or("n/a".to_owned(), |s| format!("{s} GB/s"));
    let remote = match &link.remote {
        NvLinkRemote::Gpu(bus) => match topo.gpus.iter().find(|g| &g.pci_bus_id == bus) {
            Some(peer) => format!("to GPU{} ({bus})", peer.index),
            None => format!("to GPU {bus}"),
        },
        NvLinkRemote::Switch => "to NVSwitch".to_owned(),
        NvLinkRemote::Cpu => "to CPU".to_owned(),
        NvLinkRemote::Unknown => "remote end n/a".to_owned(),
    };
    format!("{state:<8}  version {version}  {speed}  {remote}")
}

/// Theoretical bandwidth of each path, per direction, with how it was worked out.
fn line_rates(topo: &Topology) -> String {
    let mut out = String::from("\nLine rate per direction (theoretical)\n");
    for pair in &topo.pairs {
        let rate = pair.line_rate.as_ref().map_or("n/a".to_owned(), |r| {
            format!("{:.2} GB/s  ({})", r.gbps, r.basis)
        });
        let _ = writeln!(
            out,
            "  GPU{} <-> GPU{}  {:<5} {rate}",
            pair.a,
            pair.b,
            pair.link.to_string()
        );
    }
    out
}
