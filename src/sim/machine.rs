//! A machine file resolved into GPUs with their place in the PCIe tree, NVLinks and faults, and
//! the topology NVML would report for it.

use super::spec::{DriverP2p, Fault, GpuSpec, ModelSpec, Spec, parse_pcie};
use crate::model::line_rate;
use crate::model::topology::{
    Gpu, Host, Iommu, LinkType, NvLink, NvLinkRemote, P2pCaps, P2pStatus, PairLink, PcieLink,
    Topology, Unavailable,
};
use crate::probe::protocol::Node;

/// A fan that has stopped leaves this much of a board's cooling (passive flow through the case).
const FAILED_FAN_COOLING_SHARE: f64 = 0.4;

/// Where one NVLink of a simulated GPU ends.
#[derive(Clone, Debug, PartialEq)]
pub enum LinkEnd {
    Gpu(u32),
    Switch,
}

#[derive(Clone, Debug)]
pub struct SimLink {
    pub active: bool,
    pub end: LinkEnd,
}

/// One simulated GPU with its faults applied.
#[derive(Clone, Debug)]
pub struct SimGpu {
    pub index: u32,
    pub model: ModelSpec,
    pub bus_id: String,
    pub socket: u32,
    /// The root port above the GPU (its index in `Machine::roots`).
    pub root: usize,
    /// Switches from the GPU upwards (indices in `Machine::switches`), nearest first.
    pub switches: Vec<usize>,
    pub pcie_max: (u32, u32),
    /// Generation and width the link trained at (below the maximum under a fault).
    pub pcie_trained: (u32, u32),
    pub cooling_c_per_w: f64,
    pub power_limit_w: f64,
    pub fan_failed: bool,
    pub mig: bool,
    pub links: Vec<SimLink>,
}

#[derive(Clone, Debug)]
pub struct SimRoot {
    pub name: String,
    pub socket: u32,
    pub gbps: f64,
    /// The port's own link (generation, width), when the file gives one.
    pub link: Option<(u32, u32)>,
}

#[derive(Clone, Debug)]
pub struct SimSwitch {
    pub name: String,
    pub uplink_gbps: f64,
}

/// A simulated machine, ready to measure.
#[derive(Clone, Debug)]
pub struct Machine {
    pub name: String,
    pub spec: Spec,
    pub gpus: Vec<SimGpu>,
    pub roots: Vec<SimRoot>,
    pub switches: Vec<SimSwitch>,
    pub socket_link_gbps: Option<f64>,
    pub corrupt: Vec<(Node, Node)>,
    pub hang: Vec<(Node, Node)>,
    /// Pairs whose samples' start gates time out, with the share of samples that do.
    pub gate_timeout: Vec<((Node, Node), f64)>,
}

impl Machine {
    /// Resolves a full machine description (a preset, or a file with its preset merged in).
    pub fn build(spec: Spec) -> Result<Machine, String> {
        super::check::spec(&spec)?;
        let host = spec
            .host
            .as_ref()
            .ok_or("the machine has no [host] table")?;
        if spec.gpus.is_empty() {
            return Err("the machine has no GPUs: add [[gpus]] entries".into());
        }
        if host.sockets > 1 && host.socket_link_gbps.is_none() {
            return Err("[host] socket_link_gbps is needed with more than one socket".into());
        }
        let roots = spec
            .roots
            .iter()
            .map(|(name, r)| {
                Ok(SimRoot {
                    name: name.clone(),
                    socket: r.socket,
                    gbps: r.gbps,
                    link: r.pcie.as_deref().map(parse_pcie).transpose()?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        if let Some(r) = roots.iter().find(|r| r.socket >= host.sockets) {
            return Err(format!(
                "root port {:?} is on socket {} but the host has {} socket(s)",
                r.name, r.socket, host.sockets
            ));
        }
        let switches = spec
            .switches
            .iter()
            .map(|(name, s)| {
                let own = parse_pcie(&s.pcie).map_err(|e| format!("switch {name:?}: {e}"))?;
                // An uplink into a root port trains no higher than the port's own link.
                let port = roots.iter().find(|r| r.name == s.up).and_then(|r| r.link);
                let (generation, width) = lowest(own, port);
                Ok(SimSwitch {
                    name: name.clone(),
                    uplink_gbps: pcie_gbps(generation, width)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let mut gpus = Vec::new();
        for (index, g) in spec.gpus.iter().enumerate() {
            gpus.push(resolve_gpu(&spec, index as u32, g, &roots, &switches)?);
        }
        add_nvlinks(&spec, &mut gpus)?;
        let mut machine = Machine {
            name: spec.name.clone(),
            socket_link_gbps: host.socket_link_gbps,
            spec: spec.clone(),
            gpus,
            roots,
            switches,
            corrupt: Vec::new(),
            hang: Vec::new(),
            gate_timeout: Vec::new(),
        };
        for fault in &spec.faults {
            machine.apply(fault)?;
        }
        Ok(machine)
    }

    fn apply(&mut self, fault: &Fault) -> Result<(), String> {
        match fault {
            Fault::PcieDowngraded {
                gpu,
                generation,
                width,
            } => {
                let g = self.gpu_mut(*gpu)?;
                let (max_gen, max_width) = g.pcie_max;
                if *generation > max_gen || *width > max_width || *width == 0 || *generation == 0 {
                    return Err(format!(
                        "pcie_downgraded on GPU{gpu}: {generation}.0 x{width} is not below its \
                         maximum {max_gen}.0 x{max_width}"
                    ));
                }
                g.pcie_trained = (*generation, *width);
            }
            Fault::NvlinkDown { gpu, link } => {
                let peer = {
                    let g = self.gpu_mut(*gpu)?;
                    let l = g
                        .links
                        .get_mut(*link as usize)
                        .ok_or_else(|| format!("nvlink_down: GPU{gpu} has no NVLink {link}"))?;
                    l.active = false;
                    l.end.clone()
                };
                // A bridge link is down at both ends.
                if let LinkEnd::Gpu(peer) = peer {
                    let me = LinkEnd::Gpu(*gpu);
                    if let Some(l) = self
                        .gpu_mut(peer)?
                        .links
                        .iter_mut()
                        .find(|l| l.active && l.end == me)
                    {
                        l.active = false;
                    }
                }
            }
            Fault::Corrupt { src, dst } => {
                let pair = (self.node(src)?, self.node(dst)?);
                self.corrupt.push(pair);
            }
            Fault::Hang { src, dst } => {
                let pair = (self.node(src)?, self.node(dst)?);
                self.hang.push(pair);
            }
            Fault::GateTimeout { src, dst, share } => {
                let pair = (self.node(src)?, self.node(dst)?);
                self.gate_timeout.push((pair, *share));
            }
            Fault::FanFailed { gpu } => {
                let g = self.gpu_mut(*gpu)?;
                g.fan_failed = true;
                g.cooling_c_per_w /= FAILED_FAN_COOLING_SHARE;
            }
            Fault::GpuLost { gpu } | Fault::OutsideCgroup { gpu } => {
                self.gpu_mut(*gpu)?;
            }
            Fault::StickyError {
                gpu,
                after_launches,
            } => {
                self.gpu_mut(*gpu)?;
                if *after_launches == 0 {
                    return Err(format!(
                        "sticky_error on GPU{gpu}: after_launches counts from 1"
                    ));
                }
            }
            Fault::PowerCap { gpu, watts } => {
                let g = self.gpu_mut(*gpu)?;
                if *watts <= g.model.idle_power_w {
                    return Err(format!(
                        "power_cap on GPU{gpu}: {watts} W is below the GPU's idle power"
                    ));
                }
                g.power_limit_w = watts.min(g.power_limit_w);
            }
        }
        Ok(())
    }

    fn gpu_mut(&mut self, index: u32) -> Result<&mut SimGpu, String> {
        let count = self.gpus.len();
        self.gpus
            .get_mut(index as usize)
            .ok_or_else(|| format!("there is no GPU{index}: the machine has {count} GPU(s)"))
    }

    /// "host" or a GPU index, as machine files name the ends of a pair.
    pub fn node(&self, text: &str) -> Result<Node, String> {
        if text == "host" {
            return Ok(Node::Host);
        }
        match text.parse::<u32>() {
            Ok(i) if (i as usize) < self.gpus.len() => Ok(Node::Gpu(i)),
            _ => Err(format!(
                "{text:?} is not \"host\" or a GPU index below {}",
                self.gpus.len()
            )),
        }
    }

    /// Active NVLinks joining `a` and `b` (through a bridge or a switch fabric).
    pub fn nvlinks_between(&self, a: u32, b: u32) -> u32 {
        let (ga, gb) = (&self.gpus[a as usize], &self.gpus[b as usize]);
        let direct = ga
            .links
            .iter()
            .filter(|l| l.active && l.end == LinkEnd::Gpu(b))
            .count();
        if direct > 0 {
            return direct as u32;
        }
        let switched = |g: &SimGpu| {
            g.links
                .iter()
                .filter(|l| l.active && l.end == LinkEnd::Switch)
                .count() as u32
        };
        switched(ga).min(switched(gb))
    }

    /// The PCIe part of how `a` and `b` are joined, ignoring NVLink.
    pub fn pcie_link_type(&self, a: u32, b: u32) -> LinkType {
        let (ga, gb) = (&self.gpus[a as usize], &self.gpus[b as usize]);
        if let Some(common) = ga.switches.iter().find(|s| gb.switches.contains(s)) {
            let both_below =
                ga.switches.first() == Some(common) && gb.switches.first() == Some(common);
            return if both_below {
                LinkType::Pix
            } else {
                LinkType::Pxb
            };
        }
        if ga.root == gb.root {
            LinkType::Phb
        } else if ga.socket == gb.socket {
            LinkType::Node
        } else {
            LinkType::Sys
        }
    }

    pub fn link_type(&self, a: u32, b: u32) -> LinkType {
        if a == b {
            return LinkType::SelfLink;
        }
        match self.nvlinks_between(a, b) {
            0 => self.pcie_link_type(a, b),
            n => LinkType::NvLink(n),
        }
    }

    /// Whether `a` can access `b`'s memory, as `nvidia-smi topo -p2p` would say.
    pub fn p2p(&self, a: u32, b: u32) -> P2pCaps {
        // A GPU in MIG mode shares nothing with its peers.
        if self.gpus[a as usize].mig || self.gpus[b as usize].mig {
            return P2pCaps::all(P2pStatus::Ns);
        }
        let driver = self.host().driver_p2p;
        if driver == DriverP2p::Disabled {
            return P2pCaps::all(P2pStatus::Dr);
        }
        if self.nvlinks_between(a, b) > 0 {
            return P2pCaps::all(P2pStatus::Ok);
        }
        let model_allows = |g: u32| self.gpus[g as usize].model.pcie_p2p;
        let pcie = if driver != DriverP2p::Patched && !(model_allows(a) && model_allows(b)) {
            P2pStatus::Gns
        } else if self.pcie_link_type(a, b) == LinkType::Sys && !self.host().cross_socket_p2p {
            P2pStatus::Cns
        } else {
            P2pStatus::Ok
        };
        P2pCaps {
            read: pcie,
            write: pcie,
            nvlink: P2pStatus::Ns,
            // Native atomics between GPUs need NVLink on these machines.
            atomics: if pcie.is_ok() { P2pStatus::Ns } else { pcie },
        }
    }

    /// The GPU's UUID as NVML and CUDA name it (`GPU-` and 32 hex digits, grouped).
    pub fn uuid(&self, gpu: u32) -> String {
        format!("GPU-5153494d-0000-4000-8000-{gpu:012x}")
    }

    /// Whether the GPU is in MIG mode, for the models that have MIG (A100, H100, B200 and their
    /// kin: compute capability 8.0, 9.0, 10.0); `None` for the rest, as NVML answers.
    pub fn mig(&self, gpu: u32) -> Option<bool> {
        let g = &self.gpus[gpu as usize];
        matches!(g.model.compute_capability.as_str(), "8.0" | "9.0" | "10.0").then_some(g.mig)
    }

    /// Why NVML cannot open GPU `gpu`, when a fault says it cannot.
    pub fn unreachable(&self, gpu: u32) -> Option<Unavailable> {
        self.spec.faults.iter().find_map(|f| {
            let (lost, reason) = match f {
                Fault::GpuLost { gpu: g } if *g == gpu => (true, "GPU is lost"),
                Fault::OutsideCgroup { gpu: g } if *g == gpu => (false, "Insufficient Permissions"),
                _ => return None,
            };
            Some(Unavailable {
                lost,
                reason: format!("NVML cannot open it: {reason}"),
            })
        })
    }

    /// The staging pipeline's stall per GB on this host (see `sim::bandwidth`).
    pub fn staging_ms_per_gb(&self) -> f64 {
        self.host()
            .staging_ms_per_gb
            .unwrap_or(super::bandwidth::STAGING_MS_PER_GB)
    }

    pub fn host(&self) -> &super::spec::HostSpec {
        // `build` refuses a spec without a host, so every Machine has one.
        self.spec.host.as_ref().expect("a built machine has a host")
    }

    /// What NVML would report for this machine.
    pub fn topology(&self) -> Topology {
        let host = self.host();
        let gpus: Vec<Gpu> = self.gpus.iter().map(|g| self.nvml_gpu(g)).collect();
        let mut pairs = Vec::new();
        for a in 0..gpus.len() as u32 {
            for b in a + 1..gpus.len() as u32 {
                let link = self.link_type(a, b);
                pairs.push(PairLink {
                    a,
                    b,
                    link,
                    p2p: self.p2p(a, b),
                    p2p_back: self.p2p(b, a),
                    line_rate: line_rate::between(&gpus[a as usize], &gpus[b as usize], link),
                });
            }
        }
        Topology {
            host: Host {
                hostname: Some(host.hostname.clone()),
                cpu_model: Some(host.cpu_model.clone()),
                sockets: Some(host.sockets),
                numa_nodes: Some(host.sockets),
                kernel: Some(host.kernel.clone()),
                driver_version: Some(host.driver_version.clone()),
                cuda_version: Some(host.cuda_version.clone()),
                iommu: match host.iommu.as_str() {
                    "off" => Some(Iommu::Off),
                    "passthrough" => Some(Iommu::Passthrough),
                    "translated" => Some(Iommu::Translated),
                    _ => None,
                },
                // The model has no ACS: nothing on a simulated machine redirects peer traffic.
                acs_redirecting: Some(Vec::new()),
            },
            gpus,
            pairs,
        }
    }

    /// What the simulated probe says in its hello: the GPUs as CUDA describes them, and peer
    /// access as `cuDeviceCanAccessPeer` answers it.
    pub fn hello(&self) -> crate::probe::protocol::Event {
        use crate::probe::protocol::{DeviceInfo, Event, PROTOCOL_VERSION, PeerInfo};
        let devices = self
            .gpus
            .iter()
            .map(|g| DeviceInfo {
                ordinal: g.index,
                name: g.model.name.clone(),
                pci_bus_id: g.bus_id.clone(),
                compute_capability: g.model.compute_capability.clone(),
                sm_count: g.model.sm_count,
                memory_mib: g.model.memory_mib(),
                l2_cache_bytes: g.model.l2_cache_bytes(),
            })
            .collect();
        let mut peers = Vec::new();
        for a in &self.gpus {
            for b in self.gpus.iter().filter(|b| b.index != a.index) {
                let p2p = self.p2p(a.index, b.index);
                peers.push(PeerInfo {
                    src: a.index,
                    dst: b.index,
                    can_access: p2p.read.is_ok(),
                    native_atomics: p2p.atomics.is_ok(),
                    performance_rank: if self.nvlinks_between(a.index, b.index) > 0 {
                        0
                    } else {
                        1
                    },
                });
            }
        }
        Event::Hello {
            protocol: PROTOCOL_VERSION,
            cuda_driver_version: self.host().cuda_version.clone(),
            devices,
            peers,
        }
    }

    fn nvml_gpu(&self, g: &SimGpu) -> Gpu {
        let host = self.host();
        Gpu {
            index: g.index,
            cuda_ordinal: Some(g.index),
            name: g.model.name.clone(),
            uuid: self.uuid(g.index),
            pci_bus_id: g.bus_id.clone(),
            architecture: Some(g.model.architecture.clone()),
            memory_mib: Some(g.model.memory_mib()),
            power_limit_w: Some(g.power_limit_w),
            default_power_limit_w: Some(g.model.power_limit_w),
            cpu_affinity: Some(socket_cpus(host, g.socket)),
            numa_node: Some(g.socket),
            numa_affinity: Some(g.socket.to_string()),
            unavailable: self.unreachable(g.index),
            mig: self.mig(g.index),
            pcie: PcieLink {
                gen_now: Some(g.pcie_trained.0),
                width_now: Some(g.pcie_trained.1),
                gen_max: Some(g.pcie_max.0),
                width_max: Some(g.pcie_max.1),
            },
            nvlinks: g
                .links
                .iter()
                .enumerate()
                .map(|(i, l)| NvLink {
                    link: i as u32,
                    active: l.active,
                    version: g.model.nvlink_version.clone(),
                    speed_gbps: g.model.nvlink_link_gbps,
                    remote: match l.end {
                        LinkEnd::Gpu(peer) => {
                            NvLinkRemote::Gpu(self.gpus[peer as usize].bus_id.clone())
                        }
                        LinkEnd::Switch => NvLinkRemote::Switch,
                    },
                })
                .collect(),
            bar1_mib: Some(g.model.bar1_mib),
            memory_peak_gbps: Some(g.model.memory_peak_gbps),
            l2_cache_bytes: Some(g.model.l2_cache_bytes()),
        }
    }
}

/// The CPUs of `socket` as Linux numbers them: the first thread of every core on every socket,
/// then the second, so socket 0 of two 8-core sockets with two threads per core is `0-7,16-23`
/// (what `nvidia-smi topo -m` prints as the GPU's CPU affinity).
pub fn socket_cpus(host: &super::spec::HostSpec, socket: u32) -> String {
    let cores = host.cpus / host.sockets / host.threads_per_core;
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for thread in 0..host.threads_per_core {
        let first = (thread * host.sockets + socket) * cores;
        match ranges.last_mut() {
            // One socket: the threads follow each other, `0-31` as nvidia-smi prints it.
            Some((_, last)) if *last + 1 == first => *last = first + cores - 1,
            _ => ranges.push((first, first + cores - 1)),
        }
    }
    ranges
        .iter()
        .map(|(first, last)| format!("{first}-{last}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The lower generation and the narrower width of a link and what it plugs into.
fn lowest(link: (u32, u32), limit: Option<(u32, u32)>) -> (u32, u32) {
    match limit {
        Some((generation, width)) => (link.0.min(generation), link.1.min(width)),
        None => link,
    }
}

fn pcie_gbps(generation: u32, width: u32) -> Result<f64, String> {
    line_rate::pcie_lane_gbps(generation)
        .map(|lane| lane * f64::from(width))
        .ok_or_else(|| format!("PCIe generation {generation} is not one of 1 to 6"))
}

fn resolve_gpu(
    spec: &Spec,
    index: u32,
    g: &GpuSpec,
    roots: &[SimRoot],
    switches: &[SimSwitch],
) -> Result<SimGpu, String> {
    let model = spec.models.get(&g.model).ok_or_else(|| {
        format!(
            "GPU{index} uses model {:?}, which [models] does not define",
            g.model
        )
    })?;
    let card = parse_pcie(&model.pcie).map_err(|e| format!("model {:?}: {e}", g.model))?;
    let slot = g.slot.as_deref().map(parse_pcie).transpose()?;
    let port = roots
        .iter()
        .find(|r| r.name == g.attach)
        .and_then(|r| r.link);
    let pcie_max = lowest(lowest(card, slot), port);
    // Walk up from the slot through switches to a root port.
    let mut chain = Vec::new();
    let mut at = g.attach.clone();
    let root = loop {
        if let Some(r) = roots.iter().position(|r| r.name == at) {
            break r;
        }
        let s = switches.iter().position(|s| s.name == at).ok_or_else(|| {
            format!("GPU{index} hangs off {at:?}, which is neither a root port nor a switch")
        })?;
        if chain.contains(&s) {
            return Err(format!("switch {at:?} is its own ancestor"));
        }
        chain.push(s);
        at = spec.switches[&switches[s].name].up.clone();
    };
    Ok(SimGpu {
        index,
        model: model.clone(),
        // Bus ids spread like a server's slots; unique per GPU.
        bus_id: format!("0000:{:02x}:00.0", 0x18 + index * 0x10),
        socket: roots[root].socket,
        root,
        switches: chain,
        pcie_max,
        pcie_trained: pcie_max,
        cooling_c_per_w: g.cooling_c_per_w.unwrap_or(model.cooling_c_per_w),
        power_limit_w: model.power_limit_w,
        fan_failed: false,
        mig: g.mig,
        links: Vec::new(),
    })
}

fn add_nvlinks(spec: &Spec, gpus: &mut [SimGpu]) -> Result<(), String> {
    let count = gpus.len() as u32;
    for &[a, b, links] in &spec.nvlink.bridges {
        if a >= count || b >= count || a == b || links == 0 {
            return Err(format!(
                "NVLink bridge [{a}, {b}, {links}] needs two different GPUs below {count} and at least one link"
            ));
        }
        for (me, peer) in [(a, b), (b, a)] {
            for _ in 0..links {
                gpus[me as usize].links.push(SimLink {
                    active: true,
                    end: LinkEnd::Gpu(peer),
                });
            }
        }
    }
    if let Some(links) = spec.nvlink.nvswitch_links {
        for g in gpus.iter_mut() {
            g.links.extend((0..links).map(|_| SimLink {
                active: true,
                end: LinkEnd::Switch,
            }));
        }
    }
    if let Some(g) = gpus
        .iter()
        .find(|g| !g.links.is_empty() && g.model.nvlink_link_gbps.is_none())
    {
        return Err(format!(
            "GPU{} has NVLinks but its model gives no nvlink_link_gbps",
            g.index
        ));
    }
    for (g, spec_gpu) in gpus.iter().zip(&spec.gpus) {
        let most = g.model.max_nvlinks();
        if g.links.len() as u32 > most {
            return Err(format!(
                "GPU{} would have {} NVLinks, but an {} has {most}; give models.{}.nvlinks if \
                 this model really has more",
                g.index,
                g.links.len(),
                g.model.name,
                spec_gpu.model
            ));
        }
    }
    Ok(())
}
