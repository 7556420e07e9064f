//! The file format of a simulated machine (TOML or JSON; the presets are such files).
//!
//! A machine is a host with sockets and PCIe root ports, optional PCIe switches below them, GPUs
//! of a few models attached to a root port or a switch, NVLink bridges or an NVSwitch fabric,
//! calibration figures with their sources, and faults to inject. The schema is documented in
//! `docs/SIMULATOR.md`; unknown keys are errors, so a typo never passes silently.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Short name, shown as "SIMULATED: <name>".
    pub name: String,
    /// One line for `--sim list` (a file based on a preset may leave it out and keep the
    /// preset's).
    #[serde(default)]
    pub summary: String,
    /// Where the numbers in this file come from.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Start from a preset (its GPUs, links and figures) and add this file's faults to it.
    #[serde(default)]
    pub preset: Option<String>,
    #[serde(default)]
    pub host: Option<HostSpec>,
    #[serde(default)]
    pub models: BTreeMap<String, ModelSpec>,
    #[serde(default)]
    pub roots: BTreeMap<String, RootSpec>,
    #[serde(default)]
    pub switches: BTreeMap<String, SwitchSpec>,
    #[serde(default)]
    pub gpus: Vec<GpuSpec>,
    #[serde(default)]
    pub nvlink: NvLinkSpec,
    /// Published figures this machine reproduces (checked by the tests).
    #[serde(default)]
    pub reference: Vec<ReferenceFigure>,
    #[serde(default)]
    pub faults: Vec<Fault>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    pub hostname: String,
    pub cpu_model: String,
    /// Logical CPUs, split evenly over the sockets for the affinity columns.
    pub cpus: u32,
    pub sockets: u32,
    /// Hardware threads per core (SMT). Linux numbers the first thread of every core first, so
    /// on two sockets of 8 cores × 2 threads socket 0 holds CPUs 0-7 and 16-23.
    #[serde(default = "two")]
    pub threads_per_core: u32,
    pub kernel: String,
    pub driver_version: String,
    pub cuda_version: String,
    /// "off", "passthrough" or "translated".
    pub iommu: String,
    /// Air temperature at the GPUs' intakes.
    pub ambient_c: f64,
    /// Per direction, between two sockets (UPI/xGMI as P2P traffic sees it).
    #[serde(default)]
    pub socket_link_gbps: Option<f64>,
    /// Whether GPUs on different sockets may use peer access (many chipsets say no: CNS).
    #[serde(default = "yes")]
    pub cross_socket_p2p: bool,
    /// The host is a virtual machine: NVML reports the far end of every NVSwitch link as an
    /// unknown device, as it does in VMs and with older drivers.
    #[serde(default)]
    pub vm: bool,
    /// What the driver allows of peer access, whatever the GPU models could do.
    #[serde(default)]
    pub driver_p2p: DriverP2p,
    /// Per direction, what the root complex forwards of peer traffic into one root port from
    /// the others (PHB, NODE and SYS pairs; switches forward PIX and PXB pairs themselves).
    /// Absent: as fast as the root ports.
    #[serde(default)]
    pub root_p2p_gbps: Option<f64>,
    /// Host memory bandwidth per socket, which staged copies cross twice (in, then out).
    /// Absent: never the bottleneck.
    #[serde(default)]
    pub memory_gbps: Option<f64>,
    /// The share of a PCIe read's data rate that its requests and completion credits take
    /// from the link's other direction; see `sim::bandwidth`.
    #[serde(default)]
    pub read_request_share: Option<f64>,
    /// Milliseconds the driver's staging pipeline adds per GB copied through host memory when
    /// two GPUs have no peer access; see `sim::bandwidth`.
    #[serde(default)]
    pub staging_ms_per_gb: Option<f64>,
}

fn yes() -> bool {
    true
}

fn two() -> u32 {
    2
}

fn every_sample() -> f64 {
    1.0
}

/// The driver's peer-access state, apart from what the GPU model supports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriverP2p {
    /// As the models allow: NVLink pairs, and PCIe pairs of models with `pcie_p2p`.
    #[default]
    Stock,
    /// A driver patched for peer access over PCIe on every model (tinygrad's
    /// open-gpu-kernel-modules fork for GeForce cards).
    Patched,
    /// Peer access disabled by a registry key (`nvidia-smi topo -p2p` says DR): every GPU pair
    /// is staged through host memory over PCIe, while the NVLinks stay up.
    Disabled,
}

/// What every GPU of one model shares.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// As NVML names it, e.g. "NVIDIA GeForce RTX 3090".
    pub name: String,
    pub architecture: String,
    /// As CUDA reports it, e.g. "8.6".
    pub compute_capability: String,
    pub sm_count: u32,
    /// The memory as NVML reports it, MiB (an H100 80GB HBM3 has 81559, an RTX 4090 24564);
    /// a machine file may give `memory_gib` instead, for a round figure.
    #[serde(default)]
    pub memory_mib: Option<u64>,
    #[serde(default)]
    pub memory_gib: u64,
    pub memory_peak_gbps: f64,
    /// The card's link at its best, e.g. "4.0 x16" (a slot or root port may hold it lower).
    pub pcie: String,
    /// Whether the model allows peer access over PCIe (GeForce does not: GNS).
    pub pcie_p2p: bool,
    pub bar1_mib: u64,
    pub power_limit_w: f64,
    pub idle_power_w: f64,
    /// Power while copying at full clocks.
    pub copy_power_w: f64,
    pub slowdown_c: f64,
    pub shutdown_c: f64,
    pub sm_clock_max_mhz: u32,
    pub mem_clock_max_mhz: u32,
    /// Whether NVML reports a fan (passively cooled SXM boards do not).
    pub has_fan: bool,
    /// Steady-state rise above ambient per watt, with the board's normal airflow.
    pub cooling_c_per_w: f64,
    /// How fast the temperature follows the power.
    pub thermal_time_constant_s: f64,
    #[serde(default)]
    pub nvlink_version: Option<String>,
    /// Per link, per direction, as NVML reports it (`nvidia-smi nvlink -s`): on H100 that is
    /// the signalling rate, 26.562; the model and the verdicts use the data rate that
    /// `model::line_rate::nvlink_data_gbps` gives for it.
    #[serde(default)]
    pub nvlink_link_gbps: Option<f64>,
    /// How many NVLinks one GPU of this model has; when absent, the NVLink generation's usual
    /// count (see [`ModelSpec::max_nvlinks`]).
    #[serde(default)]
    pub nvlinks: Option<u32>,
    /// Readings this model does not give through NVML (e.g. "pcie_counters", "power_limit").
    #[serde(default)]
    pub unsupported: Vec<String>,
    /// The L2 cache, MiB (vendor specification); see [`ModelSpec::l2_cache_bytes`] when absent.
    #[serde(default)]
    pub l2_cache_mib: Option<f64>,
}

impl ModelSpec {
    /// The memory in MiB: `memory_mib`, or else `memory_gib` × 1024.
    pub fn memory_mib(&self) -> u64 {
        self.memory_mib.unwrap_or(self.memory_gib * 1024)
    }

    /// The L2 cache in bytes: the file's figure, or else that of the architecture's flagship
    /// (Pascal 4 MiB, Volta 6, Turing 6, Ampere GA100 40 and GA10x 6, Ada 72, Hopper 50,
    /// Blackwell 126), so a machine file need not know it.
    pub fn l2_cache_bytes(&self) -> u64 {
        let mib = self
            .l2_cache_mib
            .unwrap_or(match self.compute_capability.as_str() {
                "8.0" => 40.0,
                "8.6" | "8.7" | "7.0" | "7.2" | "7.5" => 6.0,
                "8.9" => 72.0,
                "9.0" => 50.0,
                c if c.starts_with("10.") || c.starts_with("12.") => 126.0,
                _ => 4.0,
            });
        (mib * 1024.0 * 1024.0) as u64
    }

    /// The most NVLinks a GPU of this model has: the file's `nvlinks`, or the generation's
    /// flagship (NVLink 2: 6 on V100; 3: 12 on A100, 4 on GA102 boards; 4 and 5: 18 on H100
    /// and B200), or none for a model without NVLink.
    pub fn max_nvlinks(&self) -> u32 {
        if let Some(n) = self.nvlinks {
            return n;
        }
        let ga102 = self.compute_capability == "8.6";
        match self
            .nvlink_version
            .as_deref()
            .and_then(|v| v.split('.').next())
        {
            Some("2") => 6,
            Some("3") if ga102 => 4,
            Some("3") => 12,
            Some("4" | "5") => 18,
            _ => 0,
        }
    }
}

/// A PCIe root port (host bridge) on a socket.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootSpec {
    pub socket: u32,
    /// What the root complex can carry per direction for everything below this port.
    pub gbps: f64,
    /// The port's own link, e.g. "3.0 x16": GPUs and switches right below it train no higher.
    #[serde(default)]
    pub pcie: Option<String>,
}

/// A PCIe switch, below a root port or another switch.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchSpec {
    /// The root port or switch above.
    pub up: String,
    /// The uplink, e.g. "4.0 x16".
    pub pcie: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuSpec {
    /// A key of `models`.
    pub model: String,
    /// The root port or switch the GPU's slot hangs off.
    pub attach: String,
    /// The slot's link, e.g. "3.0 x16" for a Gen4 card in a Gen3 slot: the GPU trains no
    /// higher, and NVML's maximum says so (it reports what card and slot both support).
    #[serde(default)]
    pub slot: Option<String>,
    /// Overrides the model's cooling, e.g. for the card whose intake a bridge or a neighbour
    /// blocks.
    #[serde(default)]
    pub cooling_c_per_w: Option<f64>,
    /// The GPU is in MIG mode (data-centre GPUs from Ampere on): CUDA sees its instances, not
    /// the GPU, and nothing crosses to its peers.
    #[serde(default)]
    pub mig: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NvLinkSpec {
    /// Bridges: `[gpu, gpu, links]`.
    #[serde(default)]
    pub bridges: Vec<[u32; 3]>,
    /// Every GPU joined to an NVSwitch fabric with this many links.
    #[serde(default)]
    pub nvswitch_links: Option<u32>,
}

/// A published figure for one measurement on this machine.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceFigure {
    /// "host" or a GPU index.
    pub src: String,
    pub dst: String,
    /// "read", "write" or "bidir" (the sum of both directions).
    pub op: String,
    /// "sm" or "ce".
    pub engine: String,
    /// The figure (the middle of `range` when one was published).
    pub gbps: f64,
    /// The spread the source published, e.g. `[371.0, 377.0]`; absent for a single figure.
    #[serde(default)]
    pub range: Option<[f64; 2]>,
    /// Whether a constant of the model was fitted to this figure (then it only shows the fit
    /// holds), or the figure is independent evidence of the model.
    pub fitted: bool,
    /// The driver's peer-access state the figure was measured with, when not the machine's.
    #[serde(default)]
    pub driver_p2p: Option<DriverP2p>,
    pub source: String,
}

/// Something wrong with the simulated machine.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// The GPU's PCIe link trained below its maximum.
    PcieDowngraded {
        gpu: u32,
        generation: u32,
        width: u32,
    },
    /// One NVLink of a GPU is down.
    NvlinkDown { gpu: u32, link: u32 },
    /// Copies from `src` to `dst` deliver wrong bytes.
    Corrupt { src: String, dst: String },
    /// Copies from `src` to `dst` never finish.
    Hang { src: String, dst: String },
    /// The start gate of samples from `src` to `dst` times out (the host could not queue the
    /// work in time), for this share of them: each is rejected, and when more are rejected than
    /// the samples asked for, the pair fails as GATE. Every sample when `share` is absent.
    GateTimeout {
        src: String,
        dst: String,
        #[serde(default = "every_sample")]
        share: f64,
    },
    /// The GPU's fan has stopped: its cooling is a fraction of normal.
    FanFailed { gpu: u32 },
    /// The GPU's power limit is held at this many watts.
    PowerCap { gpu: u32, watts: f64 },
    /// The GPU has fallen off the bus: NVML answers GPU_IS_LOST for it, CUDA does not list it.
    GpuLost { gpu: u32 },
    /// The GPU is outside this job's cgroup (a Slurm job given other GPUs): NVML counts it but
    /// answers NO_PERMISSION, CUDA does not list it.
    OutsideCgroup { gpu: u32 },
    /// The GPU's context faults at its `after_launches`-th kernel launch, once
    /// (CUDA_ERROR_ILLEGAL_ADDRESS, sticky: the process must start again).
    StickyError { gpu: u32, after_launches: u32 },
}

/// Parses "4.0 x16" (or "4 x16", "gen4 x16") into generation and width: a generation from 1
/// to 6 and one of the widths PCIe defines.
pub fn parse_pcie(text: &str) -> Result<(u32, u32), String> {
    let bad = || {
        format!(
            "PCIe link {text:?} should look like \"4.0 x16\": generation 1 to 6, width x1, x2, \
             x4, x8, x12, x16 or x32"
        )
    };
    let (generation, width) = text
        .trim()
        .split_once(char::is_whitespace)
        .ok_or_else(bad)?;
    let generation = generation.trim_start_matches("gen");
    let generation = generation.strip_suffix(".0").unwrap_or(generation);
    let generation: u32 = generation.parse().map_err(|_| bad())?;
    let width: u32 = width
        .trim()
        .trim_start_matches('x')
        .parse()
        .map_err(|_| bad())?;
    if !(1..=6).contains(&generation) || ![1, 2, 4, 8, 12, 16, 32].contains(&width) {
        return Err(bad());
    }
    Ok((generation, width))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcie_links_parse_in_the_usual_spellings() {
        assert_eq!(parse_pcie("4.0 x16"), Ok((4, 16)));
        assert_eq!(parse_pcie("gen5 x8"), Ok((5, 8)));
        assert!(parse_pcie("x16").unwrap_err().contains("4.0 x16"));
        for bad in ["4.0 x0", "7.0 x16", "0 x16", "4.0 x3"] {
            assert!(parse_pcie(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn faults_are_tagged_by_kind_and_typos_are_errors() {
        let fault: Fault = toml::from_str("kind = \"power_cap\"\ngpu = 1\nwatts = 200.0").unwrap();
        assert_eq!(
            fault,
            Fault::PowerCap {
                gpu: 1,
                watts: 200.0
            }
        );
        let typo = toml::from_str::<Fault>("kind = \"power_cap\"\ngpu = 1\nwats = 200.0");
        assert!(typo.unwrap_err().to_string().contains("wats"));
    }
}
