//! What a machine is made of: GPUs, the host, and how each pair is joined.
//!
//! The words follow `nvidia-smi topo -m` and `topo -p2p`, so a user can hold p2ptop's output
//! next to NVIDIA's and see the same thing. Every fact a driver may refuse to give is optional:
//! "unknown" is shown as n/a, never guessed.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How two GPUs are connected, exactly as `nvidia-smi topo -m` prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// The GPU itself (`X`).
    SelfLink,
    /// `NV#`: this many bonded NVLinks (direct, or through NVSwitch).
    NvLink(u32),
    /// At most a single PCIe bridge between them.
    Pix,
    /// Several PCIe bridges, without crossing a host bridge.
    Pxb,
    /// Through a PCIe host bridge (the CPU's root complex).
    Phb,
    /// Between host bridges within one NUMA node.
    Node,
    /// Across the link between NUMA nodes (sockets).
    Sys,
    /// NVML could not tell how the two are joined (`N/A`): the pair is kept, with its P2P
    /// status, and judged by nothing that needs its path.
    Unknown,
}

impl LinkType {
    /// The line of `nvidia-smi topo -m`'s legend for this type.
    pub fn legend(self) -> &'static str {
        match self {
            LinkType::SelfLink => "X    = Self",
            LinkType::NvLink(_) => "NV#  = Connection traversing a bonded set of # NVLinks",
            LinkType::Pix => "PIX  = Connection traversing at most a single PCIe bridge",
            LinkType::Pxb => {
                "PXB  = Connection traversing multiple PCIe bridges (without traversing the PCIe Host Bridge)"
            }
            LinkType::Phb => {
                "PHB  = Connection traversing PCIe as well as a PCIe Host Bridge (typically the CPU)"
            }
            LinkType::Node => {
                "NODE = Connection traversing PCIe as well as the interconnect between PCIe Host Bridges within a NUMA node"
            }
            LinkType::Sys => {
                "SYS  = Connection traversing PCIe as well as the SMP interconnect between NUMA nodes (e.g., QPI/UPI)"
            }
            LinkType::Unknown => "N/A  = NVML could not tell how the two GPUs are joined",
        }
    }

    /// Every type in the order of the legend (NV# stands for all bond widths).
    pub const LEGEND_ORDER: [LinkType; 7] = [
        LinkType::SelfLink,
        LinkType::Sys,
        LinkType::Node,
        LinkType::Phb,
        LinkType::Pxb,
        LinkType::Pix,
        LinkType::NvLink(0),
    ];

    pub fn is_nvlink(self) -> bool {
        matches!(self, LinkType::NvLink(_))
    }
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkType::SelfLink => f.write_str("X"),
            LinkType::NvLink(n) => write!(f, "NV{n}"),
            LinkType::Pix => f.write_str("PIX"),
            LinkType::Pxb => f.write_str("PXB"),
            LinkType::Phb => f.write_str("PHB"),
            LinkType::Node => f.write_str("NODE"),
            LinkType::Sys => f.write_str("SYS"),
            LinkType::Unknown => f.write_str("N/A"),
        }
    }
}

impl FromStr for LinkType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "X" => LinkType::SelfLink,
            "PIX" => LinkType::Pix,
            "PXB" => LinkType::Pxb,
            "PHB" => LinkType::Phb,
            "NODE" => LinkType::Node,
            "SYS" => LinkType::Sys,
            "N/A" => LinkType::Unknown,
            _ => match s.strip_prefix("NV").map(str::parse::<u32>) {
                Some(Ok(n)) if n > 0 => LinkType::NvLink(n),
                _ => {
                    return Err(format!(
                        "unknown link type {s:?}; use X, NV<links> (e.g. NV4), PIX, PXB, PHB, NODE or SYS"
                    ));
                }
            },
        })
    }
}

impl Serialize for LinkType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LinkType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Whether one GPU can reach another's memory, as `nvidia-smi topo -p2p` answers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum P2pStatus {
    #[serde(rename = "OK")]
    Ok,
    /// Chipset not supported.
    #[serde(rename = "CNS")]
    Cns,
    /// GPU not supported.
    #[serde(rename = "GNS")]
    Gns,
    /// Topology not supported.
    #[serde(rename = "TNS")]
    Tns,
    /// Not supported.
    #[serde(rename = "NS")]
    Ns,
    /// Disabled by a driver registry key.
    #[serde(rename = "DR")]
    Dr,
    /// Unknown.
    #[serde(rename = "U")]
    U,
}

impl P2pStatus {
    pub fn code(self) -> &'static str {
        match self {
            P2pStatus::Ok => "OK",
            P2pStatus::Cns => "CNS",
            P2pStatus::Gns => "GNS",
            P2pStatus::Tns => "TNS",
            P2pStatus::Ns => "NS",
            P2pStatus::Dr => "DR",
            P2pStatus::U => "U",
        }
    }

    /// What the code means for the user, in one sentence.
    pub fn sentence(self) -> &'static str {
        match self {
            P2pStatus::Ok => "OK: the GPUs can access each other's memory directly.",
            P2pStatus::Cns => {
                "CNS: the chipset (PCIe root complex) does not support peer access between these GPUs; copies are staged through host memory."
            }
            P2pStatus::Gns => {
                "GNS: this GPU model does not support peer access over PCIe; copies are staged through host memory."
            }
            P2pStatus::Tns => {
                "TNS: the PCIe topology between these GPUs does not support peer access (e.g. across sockets); copies are staged through host memory."
            }
            P2pStatus::Ns => "NS: peer access is not supported on this path.",
            P2pStatus::Dr => {
                "DR: peer access is disabled by a driver registry key (RmP2P… settings or a module option)."
            }
            P2pStatus::U => "U: the driver could not say whether peer access works here.",
        }
    }

    pub fn is_ok(self) -> bool {
        self == P2pStatus::Ok
    }
}

impl fmt::Display for P2pStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// `nvidia-smi topo -p2p` for one pair, one answer per capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct P2pCaps {
    pub read: P2pStatus,
    pub write: P2pStatus,
    pub nvlink: P2pStatus,
    pub atomics: P2pStatus,
}

impl P2pCaps {
    /// The same status for every capability (how simple machines are described).
    pub fn all(status: P2pStatus) -> P2pCaps {
        P2pCaps {
            read: status,
            write: status,
            nvlink: status,
            atomics: status,
        }
    }
}

/// A PCIe link's generation and width, now and at most. `now` drops while the GPU idles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PcieLink {
    pub gen_now: Option<u32>,
    pub width_now: Option<u32>,
    pub gen_max: Option<u32>,
    pub width_max: Option<u32>,
}

/// What is at the far end of an NVLink.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "pci_bus_id")]
pub enum NvLinkRemote {
    /// Another GPU, by PCI bus id.
    Gpu(String),
    /// An NVSwitch: the peer is every GPU on the same fabric.
    Switch,
    /// A CPU with NVLink (e.g. Grace).
    Cpu,
    Unknown,
}

/// One NVLink of a GPU.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NvLink {
    pub link: u32,
    pub active: bool,
    /// The NVLink generation, e.g. "3.0" or "4.0" (NVML reports an enum code, mapped).
    pub version: Option<String>,
    /// Per direction, GB/s (NVML field 164 when given, else the generation's table figure).
    pub speed_gbps: Option<f64>,
    pub remote: NvLinkRemote,
}

/// One GPU, as NVML describes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gpu {
    /// NVML's index (the order of `nvidia-smi`).
    pub index: u32,
    /// The same GPU's CUDA ordinal, matched by PCI bus id (CUDA orders devices differently).
    pub cuda_ordinal: Option<u32>,
    pub name: String,
    pub uuid: String,
    /// `domain:bus:device.function`, lower case.
    pub pci_bus_id: String,
    pub architecture: Option<String>,
    pub memory_mib: Option<u64>,
    /// The power-management limit set now.
    pub power_limit_w: Option<f64>,
    /// The board's default power-management limit (what the limit is without an administrator's
    /// cap).
    pub default_power_limit_w: Option<f64>,
    /// CPUs close to this GPU, as `topo -m`'s "CPU Affinity" column (e.g. "0-31,64-95").
    pub cpu_affinity: Option<String>,
    /// The NUMA node nearest the GPU, when there is exactly one.
    pub numa_node: Option<u32>,
    /// `topo -m`'s "NUMA Affinity" column as NVML gives it: one node, or several (`0-1`).
    #[serde(default)]
    pub numa_affinity: Option<String>,
    /// Why this GPU cannot be used, when NVML cannot open it (outside this job's cgroup, fallen
    /// off the bus) or CUDA does not show it: it is counted and shown, and nothing is measured
    /// on it.
    #[serde(default)]
    pub unavailable: Option<Unavailable>,
    /// Whether the GPU is in MIG mode: then it has no peer access at all.
    #[serde(default)]
    pub mig: Option<bool>,
    pub pcie: PcieLink,
    pub nvlinks: Vec<NvLink>,
    /// The BAR1 aperture (how much GPU memory peers and the host can map), MiB.
    pub bar1_mib: Option<u64>,
    /// Peak memory bandwidth from the vendor's specification, GB/s.
    pub memory_peak_gbps: Option<f64>,
    /// The L2 cache, bytes, as CUDA reports it (NVML does not): a buffer within it measures
    /// the cache, not memory.
    #[serde(default)]
    pub l2_cache_bytes: Option<u64>,
}

/// Why a GPU NVML counts cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unavailable {
    /// It fell off the bus (NVML's "GPU is lost"): broken, not merely someone else's.
    pub lost: bool,
    /// In a sentence, with NVML's or CUDA's words.
    pub reason: String,
}

/// NVML reports power limits in milliwatts; a limit within this of the default is the default.
const POWER_LIMIT_TOLERANCE_W: f64 = 1.0;

impl Gpu {
    /// Why nothing is measured on this GPU, if nothing is: it is unavailable, or it is in MIG
    /// mode (CUDA then sees its instances, not the GPU, and MIG instances have no peer access).
    pub fn not_measurable(&self) -> Option<String> {
        if let Some(why) = &self.unavailable {
            return Some(why.reason.clone());
        }
        (self.mig == Some(true)).then(|| {
            "it is in MIG mode: CUDA sees its instances, which have no peer access; turn MIG off \
             (nvidia-smi -mig 0) to measure it"
                .to_owned()
        })
    }

    /// The limit in force and the board's default, when the limit is below the default: a cap
    /// that lowers clocks under load, whether or not the GPU has reached it yet. `enforced_w` is
    /// the enforced limit telemetry read; without it, the configured limit is used.
    pub fn power_limit_below_default(&self, enforced_w: Option<f64>) -> Option<(f64, f64)> {
        let default = self.default_power_limit_w?;
        let limit = enforced_w.or(self.power_limit_w)?;
        (limit < default - POWER_LIMIT_TOLERANCE_W).then_some((limit, default))
    }
}

/// How two different GPUs are joined. Stored once per unordered pair (`a < b`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairLink {
    pub a: u32,
    pub b: u32,
    pub link: LinkType,
    /// `a`'s access to `b`'s memory (NVML reports it per ordered pair; the two agree in practice,
    /// and `b → a` is kept separately in `p2p_back`).
    pub p2p: P2pCaps,
    pub p2p_back: P2pCaps,
    /// The theoretical per-direction bandwidth of the path, GB/s, and how it was worked out.
    pub line_rate: Option<LineRate>,
}

/// A theoretical bandwidth per direction and where it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LineRate {
    pub gbps: f64,
    /// e.g. "4 NVLink × 14.06 GB/s" or "PCIe 4.0 x16".
    pub basis: String,
}

/// The host the GPUs sit in.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Host {
    pub hostname: Option<String>,
    pub cpu_model: Option<String>,
    pub sockets: Option<u32>,
    pub numa_nodes: Option<u32>,
    pub kernel: Option<String>,
    pub driver_version: Option<String>,
    pub cuda_version: Option<String>,
    /// Whether an IOMMU translates DMA (it can slow or break P2P). None when it cannot be told.
    pub iommu: Option<Iommu>,
    /// The PCIe ports above the GPUs whose ACS redirects peer traffic to the root complex (empty
    /// when none does); None when they could not be read (that takes root).
    #[serde(default)]
    pub acs_redirecting: Option<Vec<String>>,
}

/// What the IOMMU does to device DMA.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Iommu {
    /// No IOMMU groups: DMA is not translated.
    Off,
    /// Groups exist but devices use identity mapping (`iommu=pt`): P2P is unaffected.
    Passthrough,
    /// DMA is translated: peer traffic may be redirected through the root complex or blocked.
    Translated,
}

/// What the emulated NVIDIA libraries of p2ptop's tests (tests/emu) add to the device names and
/// the driver version they report, so that a figure measured through them is never mistaken for
/// one measured on hardware.
pub const EMULATED_MARK: &str = "(p2ptop emulated)";

impl Host {
    /// Whether NVML was p2ptop's emulation (tests/emu): its driver version carries
    /// [`EMULATED_MARK`].
    pub fn emulated(&self) -> bool {
        self.driver_version
            .as_deref()
            .is_some_and(|v| v.contains(EMULATED_MARK))
    }
}

/// A whole machine: what `p2ptop topo` prints and everything else looks up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    pub host: Host,
    pub gpus: Vec<Gpu>,
    /// One entry per unordered pair of different GPUs.
    pub pairs: Vec<PairLink>,
}

impl Topology {
    pub fn gpu(&self, index: u32) -> Option<&Gpu> {
        self.gpus.iter().find(|g| g.index == index)
    }

    /// How `a` and `b` are joined; `X` for a GPU with itself.
    pub fn link(&self, a: u32, b: u32) -> Option<LinkType> {
        if a == b {
            return self.gpu(a).map(|_| LinkType::SelfLink);
        }
        self.pair(a, b).map(|p| p.link)
    }

    /// The entry for two different GPUs, in either order.
    pub fn pair(&self, a: u32, b: u32) -> Option<&PairLink> {
        let (lo, hi) = (a.min(b), a.max(b));
        self.pairs.iter().find(|p| p.a == lo && p.b == hi)
    }

    /// The machine narrowed to `devices` (all of it for `None`); an index it lacks is an error
    /// naming the GPUs it has.
    pub fn only(&self, devices: Option<&[u32]>) -> Result<Topology, String> {
        let Some(devices) = devices else {
            return Ok(self.clone());
        };
        if let Some(missing) = devices.iter().find(|d| self.gpu(**d).is_none()) {
            let present: Vec<String> = self.gpus.iter().map(|g| g.index.to_string()).collect();
            return Err(format!(
                "there is no GPU{missing}; this machine has GPU {}",
                present.join(", ")
            ));
        }
        let mut selected = self.clone();
        selected.gpus.retain(|g| devices.contains(&g.index));
        selected
            .pairs
            .retain(|p| devices.contains(&p.a) && devices.contains(&p.b));
        Ok(selected)
    }

    /// `src`'s access to `dst`'s memory.
    pub fn p2p(&self, src: u32, dst: u32) -> Option<P2pCaps> {
        let pair = self.pair(src, dst)?;
        Some(if src == pair.a {
            pair.p2p
        } else {
            pair.p2p_back
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_types_print_and_parse_as_nvidia_smi_does() {
        for (text, link) in [
            ("X", LinkType::SelfLink),
            ("NV4", LinkType::NvLink(4)),
            ("NV18", LinkType::NvLink(18)),
            ("PIX", LinkType::Pix),
            ("PXB", LinkType::Pxb),
            ("PHB", LinkType::Phb),
            ("NODE", LinkType::Node),
            ("SYS", LinkType::Sys),
        ] {
            assert_eq!(link.to_string(), text);
            assert_eq!(text.parse::<LinkType>(), Ok(link));
        }
        assert!("NV0".parse::<LinkType>().is_err());
        assert!(
            "nvlink"
                .parse::<LinkType>()
                .unwrap_err()
                .contains("NV<links>")
        );
    }

    #[test]
    fn a_power_limit_below_the_boards_default_is_told_with_both_figures() {
        let mut gpu: Gpu = serde_json::from_str(
            r#"{"index": 0, "cuda_ordinal": null, "name": "x", "uuid": "", "pci_bus_id": "",
                "architecture": null, "memory_mib": null, "power_limit_w": 400.0,
                "default_power_limit_w": 700.0, "cpu_affinity": null, "numa_node": null,
                "pcie": {"gen_now": null, "width_now": null, "gen_max": null, "width_max": null},
                "nvlinks": [], "bar1_mib": null, "memory_peak_gbps": null}"#,
        )
        .unwrap();
        assert_eq!(gpu.power_limit_below_default(None), Some((400.0, 700.0)));
        // Telemetry's enforced limit wins over the limit read at discovery.
        assert_eq!(gpu.power_limit_below_default(Some(699.5)), None);
        gpu.default_power_limit_w = None;
        assert_eq!(
            gpu.power_limit_below_default(Some(100.0)),
            None,
            "no default, no claim"
        );
    }

    #[test]
    fn p2p_codes_serialize_as_their_codes_and_explain_themselves() {
        let json = serde_json::to_string(&P2pCaps::all(P2pStatus::Gns)).unwrap();
        assert_eq!(
            json,
            r#"{"read":"GNS","write":"GNS","nvlink":"GNS","atomics":"GNS"}"#
        );
        assert!(
            P2pStatus::Gns
                .sentence()
                .contains("staged through host memory")
        );
        assert!(P2pStatus::Gns.sentence().starts_with("GNS:"));
    }
}
