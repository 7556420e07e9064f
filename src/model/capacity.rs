//! What a path was **built for**, and what it can carry **now** (DESIGN.md, "Words and units").
//!
//! - **built for**: the line rate with every NVLink the two GPUs have to each other up, and PCIe
//!   at the highest generation and width both ends support. NVML's PCIe maximum already is the
//!   lower of what the GPU and its slot support ("possible with this device and system"), so a
//!   GPU's own link is built for its maximum; a PCIe path between two GPUs is built for the
//!   slower of their two links.
//! - **now**: the NVLinks that are up (with none up, the path falls back to PCIe), and the PCIe
//!   generation and width the link trained at. An idle link trains down, so callers pass what
//!   they saw while the link carried load.
//!
//! Measurements are judged and coloured against what the path was built for, and both figures
//! are shown: a bridge with one of its four links down is a fault at 75%, not a healthy NV3 at
//! 100%. Reports (verdicts, the all-reduce estimate, fleet shapes) and the live view use this one
//! computation.
//!
//! A link that is down no longer tells NVML where it leads. It is taken to lead where the GPU's
//! other links do when they all lead to one place (one peer GPU, or the NVSwitch fabric), which
//! covers a bridge or a baseboard with some links down. A GPU with every link down says nothing
//! about its peers, so its pairs are built for what the links whose far end is known add up to
//! (the GPU's own verdict still names every link that is down).

use super::line_rate;
use super::topology::{Gpu, LineRate, LinkType, NvLink, NvLinkRemote, Topology};
use crate::probe::protocol::Node;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The PCIe generation and width a GPU's link trained at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trained {
    pub generation: u32,
    pub width: u32,
}

/// What a path lacks against what it was built for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Shortfall {
    /// `up` of the `built` NVLinks between GPUs `a` and `b` are up (`a < b`).
    Nvlinks { a: u32, b: u32, up: u32, built: u32 },
    /// GPU `gpu`'s PCIe link trained below its maximum.
    Pcie {
        gpu: u32,
        generation: u32,
        width: u32,
        generation_max: u32,
        width_max: u32,
    },
}

impl fmt::Display for Shortfall {
    /// `NVLink 17/18 up`, `GPU3 PCIe 4.0 x8 of 5.0 x16`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shortfall::Nvlinks { up, built, .. } => write!(f, "NVLink {up}/{built} up"),
            Shortfall::Pcie {
                gpu,
                generation,
                width,
                generation_max,
                width_max,
            } => write!(
                f,
                "GPU{gpu} PCIe {generation}.0 x{width} of {generation_max}.0 x{width_max}"
            ),
        }
    }
}

/// A path's line rate as built and as it is now, and what makes up the difference.
#[derive(Clone, Debug, PartialEq)]
pub struct Capacity {
    pub built: LineRate,
    /// The same as `built` when nothing is missing (or nothing could be read).
    pub now: LineRate,
    pub shortfalls: Vec<Shortfall>,
}

impl Capacity {
    pub fn degraded(&self) -> bool {
        !self.shortfalls.is_empty()
    }
}

/// The capacity of the path from `src` to `dst` (either may be the host; `src == dst` is a
/// GPU's device-local copy). `trained` gives a GPU's PCIe link as seen under load, or None when
/// it was not read (the link is then taken to run at its maximum). None when the line rate
/// cannot be known.
pub fn of_path(
    topology: &Topology,
    src: Node,
    dst: Node,
    trained: &dyn Fn(u32) -> Option<Trained>,
) -> Option<Capacity> {
    match (src, dst) {
        (Node::Gpu(a), Node::Gpu(b)) if a == b => {
            let rate = line_rate::device_local(topology.gpu(a)?)?;
            Some(unchanged(rate))
        }
        (Node::Gpu(a), Node::Gpu(b)) => between(topology, a, b, trained),
        (Node::Host, Node::Gpu(g)) | (Node::Gpu(g), Node::Host) => {
            pcie_path(&[topology.gpu(g)?], trained)
        }
        (Node::Host, Node::Host) => None,
    }
}

/// How `a` and `b` were built to be joined: `NV#` with every NVLink they have to each other,
/// else the PCIe type `topo -m` reports; `X` for a GPU with itself.
pub fn built_link(topology: &Topology, a: u32, b: u32) -> Option<LinkType> {
    let now = topology.link(a, b)?;
    if a == b {
        return Some(now);
    }
    let built = nvlinks_built(topology, a, b);
    Some(if built > nvlinks_up(now) {
        LinkType::NvLink(built)
    } else {
        now
    })
}

/// Where each of `gpu`'s links leads: NVML's answer for a link that is up, and for one that is
/// down, where the GPU's links that are up all lead (Unknown when they lead to several places
/// or none is up).
pub fn link_ends(gpu: &Gpu) -> Vec<(&NvLink, NvLinkRemote)> {
    let mut known = gpu
        .nvlinks
        .iter()
        .filter(|l| l.remote != NvLinkRemote::Unknown)
        .map(|l| &l.remote);
    let first = known.next();
    let sole = first.filter(|f| known.all(|r| r == *f));
    gpu.nvlinks
        .iter()
        .map(|l| {
            let end = match (&l.remote, sole) {
                (NvLinkRemote::Unknown, Some(sole)) if !l.active => sole.clone(),
                (remote, _) => remote.clone(),
            };
            (l, end)
        })
        .collect()
}

/// NVLinks between two different GPUs with every link up: direct links counted from the side
/// that sees more of them, switch links as many as the GPU with fewer has (as `topo -m` counts).
pub fn nvlinks_built(topology: &Topology, a: u32, b: u32) -> u32 {
    let (Some(ga), Some(gb)) = (topology.gpu(a), topology.gpu(b)) else {
        return 0;
    };
    let count = |gpu: &Gpu, end: &NvLinkRemote| {
        link_ends(gpu).iter().filter(|(_, e)| e == end).count() as u32
    };
    let direct = count(ga, &NvLinkRemote::Gpu(gb.pci_bus_id.clone()))
        .max(count(gb, &NvLinkRemote::Gpu(ga.pci_bus_id.clone())));
    if direct > 0 {
        return direct;
    }
    count(ga, &NvLinkRemote::Switch).min(count(gb, &NvLinkRemote::Switch))
}

/// A GPU's PCIe shortfall: its link trained below its maximum.
pub fn pcie_shortfall(gpu: &Gpu, trained: Option<Trained>) -> Option<Shortfall> {
    let t = trained?;
    let (generation_max, width_max) = (gpu.pcie.gen_max?, gpu.pcie.width_max?);
    (t.generation < generation_max || t.width < width_max).then_some(Shortfall::Pcie {
        gpu: gpu.index,
        generation: t.generation,
        width: t.width,
        generation_max,
        width_max,
    })
}

fn nvlinks_up(link: LinkType) -> u32 {
    match link {
        LinkType::NvLink(n) => n,
        _ => 0,
    }
}

fn unchanged(rate: LineRate) -> Capacity {
    Capacity {
        now: rate.clone(),
        built: rate,
        shortfalls: Vec::new(),
    }
}

fn between(
    topology: &Topology,
    a: u32,
    b: u32,
    trained: &dyn Fn(u32) -> Option<Trained>,
) -> Option<Capacity> {
    let (ga, gb) = (topology.gpu(a)?, topology.gpu(b)?);
    let up = nvlinks_up(topology.link(a, b)?);
    let built = nvlinks_built(topology, a, b).max(up);
    if built == 0 {
        return pcie_path(&[ga, gb], trained);
    }
    let per_link = per_link_gbps(ga, gb)?;
    let built_rate = line_rate::nvlinks(built, per_link);
    if up == built {
        return Some(unchanged(built_rate));
    }
    let missing = Shortfall::Nvlinks {
        a: a.min(b),
        b: a.max(b),
        up,
        built,
    };
    let (now, mut shortfalls) = if up > 0 {
        (line_rate::nvlinks(up, per_link), Vec::new())
    } else {
        // Every link down: the traffic takes the PCIe path.
        let fallback = pcie_path(&[ga, gb], trained)?;
        (fallback.now, fallback.shortfalls)
    };
    shortfalls.insert(0, missing);
    Some(Capacity {
        built: built_rate,
        now,
        shortfalls,
    })
}

/// The per-link speed of the pair's NVLinks: from the links that are up, else from any.
fn per_link_gbps(a: &Gpu, b: &Gpu) -> Option<f64> {
    let links = || a.nvlinks.iter().chain(&b.nvlinks);
    let slowest = |up_only: bool| {
        links()
            .filter(|l| l.active || !up_only)
            .filter_map(|l| l.speed_gbps)
            .reduce(f64::min)
    };
    slowest(true).or_else(|| slowest(false))
}

/// A path through the PCIe links of `gpus`: as fast as the slowest of them, built and now.
fn pcie_path(gpus: &[&Gpu], trained: &dyn Fn(u32) -> Option<Trained>) -> Option<Capacity> {
    let slowest = |rates: Vec<LineRate>| rates.into_iter().min_by(|x, y| x.gbps.total_cmp(&y.gbps));
    let built = slowest(
        gpus.iter()
            .map(|g| line_rate::pcie_max(&g.pcie))
            .collect::<Option<Vec<_>>>()?,
    )?;
    let mut shortfalls = Vec::new();
    let mut now_rates = Vec::new();
    for gpu in gpus {
        let t = trained(gpu.index);
        match pcie_shortfall(gpu, t).zip(t) {
            Some((shortfall, t)) => {
                shortfalls.push(shortfall);
                now_rates.push(line_rate::pcie(t.generation, t.width)?);
            }
            None => now_rates.push(line_rate::pcie_max(&gpu.pcie)?),
        }
    }
    if shortfalls.is_empty() {
        return Some(unchanged(built));
    }
    Some(Capacity {
        built,
        now: slowest(now_rates)?,
        shortfalls,
    })
}
