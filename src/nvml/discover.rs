//! Topology discovery: turns NVML's answers into a [`Topology`], link types exactly as
//! `nvidia-smi topo -m` names them.

use super::source::{CommonAncestor, MAX_NVLINKS, NvmlSource, P2pCap, RemoteDevice};
use crate::model::topology::{
    Gpu, Host, LinkType, NvLink, NvLinkRemote, P2pCaps, P2pStatus, PairLink, PcieLink, Topology,
    Unavailable,
};
use crate::model::{bus_id, line_rate};

/// Reads every GPU, every pair and the driver versions from `src`.
///
/// `host` carries the facts NVML does not know (see `crate::host::host_facts`); its driver and
/// CUDA versions are filled in here. `cuda_bus_ids` lists the PCI bus ids of CUDA's devices in
/// CUDA's order (e.g. from the probe's `DeviceInfo`), so each GPU gets its CUDA ordinal; pass an
/// empty slice when CUDA's order is not known.
pub fn discover(src: &dyn NvmlSource, mut host: Host, cuda_bus_ids: &[String]) -> Topology {
    host.driver_version = src.driver_version().ok();
    host.cuda_version = src.cuda_driver_version().ok().map(cuda_version);
    let count = src.device_count();
    let gpus: Vec<Gpu> = (0..count).map(|i| read_gpu(src, i, cuda_bus_ids)).collect();
    let mut pairs = Vec::new();
    for a in &gpus {
        for b in gpus.iter().filter(|b| b.index > a.index) {
            let link = link_type(src, a, b, &gpus);
            pairs.push(PairLink {
                a: a.index,
                b: b.index,
                link,
                p2p: p2p_caps(src, a.index, b.index),
                p2p_back: p2p_caps(src, b.index, a.index),
                line_rate: line_rate::between(a, b, link),
            });
        }
    }
    Topology { host, gpus, pairs }
}

/// The NVLink generation for NVML's `nvmlNvlinkVersion_t` code (nvml.h: 1 = 1.0, 2 = 2.0,
/// 3 = 2.2, 4 = 3.0, 5 = 3.1, 6 = 4.0, 7 = 5.0, 8 = 6.0; 0 is invalid). A100 and the RTX 3090
/// report 5 (3.1), H100 and H200 6.
pub fn nvlink_version(code: u32) -> Option<&'static str> {
    Some(match code {
        1 => "1.0",
        2 => "2.0",
        3 => "2.2",
        4 => "3.0",
        5 => "3.1",
        6 => "4.0",
        7 => "5.0",
        8 => "6.0",
        _ => return None,
    })
}

/// NVML's `1000 × major + 10 × minor` as "major.minor".
fn cuda_version(encoded: i32) -> String {
    format!("{}.{}", encoded / 1000, encoded % 1000 / 10)
}

fn read_gpu(src: &dyn NvmlSource, index: u32, cuda_bus_ids: &[String]) -> Gpu {
    let unavailable = src.reachable(index).err().map(|why| Unavailable {
        reason: format!("NVML cannot open it: {}", why.reason),
        ..why
    });
    let name = src.name(index).unwrap_or_else(|_| "unknown GPU".into());
    let pci_bus_id = src
        .pci_bus_id(index)
        .map(|id| bus_id::normalize(&id))
        .unwrap_or_default();
    let cuda_ordinal = cuda_bus_ids
        .iter()
        .position(|id| !pci_bus_id.is_empty() && bus_id::normalize(id) == pci_bus_id)
        .and_then(|ordinal| u32::try_from(ordinal).ok());
    let mib = |bytes: u64| bytes / (1 << 20);
    let numa_affinity = src.numa_affinity(index).ok();
    Gpu {
        index,
        cuda_ordinal,
        uuid: src.uuid(index).unwrap_or_default(),
        pci_bus_id,
        architecture: src.architecture(index).ok(),
        memory_mib: src.memory_total_bytes(index).ok().map(mib),
        power_limit_w: src.power_limit_mw(index).ok().map(milli),
        default_power_limit_w: src.default_power_limit_mw(index).ok().map(milli),
        cpu_affinity: src.cpu_affinity(index).ok(),
        // A single node is "the" node; several (sub-NUMA clustering) are only listed.
        numa_node: numa_affinity.as_deref().and_then(|n| n.parse().ok()),
        numa_affinity,
        unavailable,
        mig: src.mig_enabled(index).ok(),
        pcie: PcieLink {
            gen_now: src.pcie_gen_now(index).ok(),
            width_now: src.pcie_width_now(index).ok(),
            gen_max: src.pcie_gen_max(index).ok(),
            width_max: src.pcie_width_max(index).ok(),
        },
        nvlinks: read_nvlinks(src, index, &name),
        bar1_mib: src.bar1_total_bytes(index).ok().map(mib),
        memory_peak_gbps: line_rate::memory_peak_gbps(&name),
        l2_cache_bytes: None,
        name,
    }
}

fn milli(value: u32) -> f64 {
    f64::from(value) / 1000.0
}

/// The link numbers a GPU has: field 91's count where the driver gives it, else every number
/// NVML answers for up to its largest.
pub fn nvlink_numbers(src: &dyn NvmlSource, gpu: u32) -> Vec<u32> {
    match src.nvlink_count(gpu) {
        Ok(count) => (0..count.min(MAX_NVLINKS)).collect(),
        Err(_) => (0..MAX_NVLINKS)
            .filter(|&link| src.nvlink_is_active(gpu, link).is_ok())
            .collect(),
    }
}

/// Every link the GPU has, active or not.
fn read_nvlinks(src: &dyn NvmlSource, gpu: u32, name: &str) -> Vec<NvLink> {
    nvlink_numbers(src, gpu)
        .into_iter()
        .filter_map(|link| {
            let active = src.nvlink_is_active(gpu, link).ok()?;
            let version = src
                .nvlink_version_code(gpu, link)
                .ok()
                .and_then(nvlink_version)
                .map(str::to_owned);
            let speed_gbps = match src.nvlink_speed_mb_s(gpu, link) {
                Ok(mb_s) if mb_s > 0 => Some(mb_s as f64 / 1000.0),
                _ => version
                    .as_deref()
                    .and_then(|v| line_rate::nvlink_table_gbps(v, name)),
            };
            let remote = if active {
                remote_end(src, gpu, link)
            } else {
                NvLinkRemote::Unknown
            };
            Some(NvLink {
                link,
                active,
                version,
                speed_gbps,
                remote,
            })
        })
        .collect()
}

fn remote_end(src: &dyn NvmlSource, gpu: u32, link: u32) -> NvLinkRemote {
    let bus_id = src.nvlink_remote_bus_id(gpu, link).ok();
    match (src.nvlink_remote_device(gpu, link), bus_id) {
        (Ok(RemoteDevice::Switch), _) => NvLinkRemote::Switch,
        (Ok(RemoteDevice::IbmNpu), _) => NvLinkRemote::Cpu,
        // Without the device type, a remote bus id still names a GPU on a direct link.
        (Ok(RemoteDevice::Gpu | RemoteDevice::Unknown) | Err(_), Some(id)) => {
            NvLinkRemote::Gpu(bus_id::normalize(&id))
        }
        _ => NvLinkRemote::Unknown,
    }
}

/// `NV#` when NVLinks join the pair, else the PCIe distance; `N/A` when NVML says neither.
///
/// Direct links are counted from both sides (NVML reports each link on both GPUs). Through
/// NVSwitch every link ends at a switch, so the pair gets as many links as the GPU with fewer
/// switch links has, as `nvidia-smi topo -m` counts them. An active link whose far end is no
/// GPU of this machine counts as a switch link: in VMs and with older drivers NVML types the
/// switches as unknown, and NCCL reads them so too. Two GPUs joined only through switches get
/// NV# only if NVML's NVLink P2P status for them is OK, where it answers: a Fabric Manager
/// partition can put them in different NVLink domains.
fn link_type(src: &dyn NvmlSource, a: &Gpu, b: &Gpu, gpus: &[Gpu]) -> LinkType {
    let to_peer = |from: &Gpu, peer: &Gpu| {
        from.nvlinks
            .iter()
            .filter(|l| l.active && l.remote == NvLinkRemote::Gpu(peer.pci_bus_id.clone()))
            .count()
    };
    let known_gpu = |bus: &str| gpus.iter().any(|g| g.pci_bus_id == bus);
    let to_switch = |gpu: &Gpu| {
        gpu.nvlinks
            .iter()
            .filter(|l| l.active)
            .filter(|l| match &l.remote {
                NvLinkRemote::Switch | NvLinkRemote::Unknown => true,
                NvLinkRemote::Gpu(bus) => !known_gpu(bus),
                NvLinkRemote::Cpu => false,
            })
            .count()
    };
    let direct = to_peer(a, b).max(to_peer(b, a));
    let partitioned = || {
        [(a, b), (b, a)].iter().any(|(x, y)| {
            src.p2p_status(x.index, y.index, P2pCap::Nvlink)
                .is_ok_and(|s| s != P2pStatus::Ok)
        })
    };
    let switched = match to_switch(a).min(to_switch(b)) {
        n if n > 0 && partitioned() => 0,
        n => n,
    };
    let links = if direct > 0 { direct } else { switched };
    if links > 0 {
        return u32::try_from(links).map_or(LinkType::Unknown, LinkType::NvLink);
    }
    match src.common_ancestor(a.index, b.index) {
        // On one board, behind the board's own PCIe switch: nvidia-smi shows PIX.
        Ok(CommonAncestor::Internal | CommonAncestor::Single) => LinkType::Pix,
        Ok(CommonAncestor::Multiple) => LinkType::Pxb,
        Ok(CommonAncestor::HostBridge) => LinkType::Phb,
        Ok(CommonAncestor::Node) => LinkType::Node,
        Ok(CommonAncestor::System) => LinkType::Sys,
        Err(_) => LinkType::Unknown,
    }
}

/// `a`'s access to `b`'s memory; a capability NVML does not answer for is `U` (unknown), as
/// `nvidia-smi topo -p2p` prints it.
fn p2p_caps(src: &dyn NvmlSource, a: u32, b: u32) -> P2pCaps {
    let status = |cap| src.p2p_status(a, b, cap).unwrap_or(P2pStatus::U);
    P2pCaps {
        read: status(P2pCap::Read),
        write: status(P2pCap::Write),
        nvlink: status(P2pCap::Nvlink),
        atomics: status(P2pCap::Atomics),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvlink_codes_map_to_generations() {
        assert_eq!(nvlink_version(4), Some("3.0"));
        assert_eq!(nvlink_version(5), Some("3.1"));
        assert_eq!(nvlink_version(6), Some("4.0"));
        assert_eq!(nvlink_version(7), Some("5.0"));
        assert_eq!(nvlink_version(8), Some("6.0"));
        assert_eq!(nvlink_version(0), None);
        assert_eq!(nvlink_version(99), None);
    }

    #[test]
    fn cuda_versions_decode() {
        assert_eq!(cuda_version(12040), "12.4");
        assert_eq!(cuda_version(11080), "11.8");
        assert_eq!(cuda_version(13000), "13.0");
    }
}
