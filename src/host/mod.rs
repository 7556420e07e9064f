//! Facts about the host the GPUs sit in: what `p2ptop topo` prints above the GPUs, and what can
//! explain a slow or broken peer path (sockets, NUMA nodes, an IOMMU that translates DMA, ports
//! whose ACS redirects peer traffic).
//!
//! Driver and CUDA versions come from NVML (see `nvml::discover`), not from here.

mod acs;
#[cfg(test)]
mod fake_root;
mod iommu;

use crate::model::topology::{Host, Topology};
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use sysinfo::{CpuRefreshKind, RefreshKind, System};

/// The host's facts. `root` is where the file system starts (`/`; a test passes a directory
/// holding a fake `sys/` and `proc/`). Hostname, CPU model and kernel come from the running
/// system whatever `root` is.
pub fn host_facts(root: &Path) -> Host {
    let system =
        System::new_with_specifics(RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing()));
    Host {
        hostname: System::host_name(),
        cpu_model: system
            .cpus()
            .first()
            .map(|cpu| cpu.brand().trim().to_owned())
            .filter(|brand| !brand.is_empty()),
        sockets: sockets(root),
        numa_nodes: numa_nodes(root),
        kernel: System::kernel_version(),
        driver_version: None,
        cuda_version: None,
        iommu: iommu::host_wide(root),
        acs_redirecting: None,
    }
}

/// Adds what only the GPUs' own PCIe paths tell: whether the IOMMU translates *their* DMA (from
/// their IOMMU groups, where sysfs has them) and which ports above them redirect peer traffic.
pub fn add_gpu_paths(root: &Path, topology: &mut Topology) {
    let bus_ids: Vec<&str> = topology
        .gpus
        .iter()
        .map(|g| g.pci_bus_id.as_str())
        .filter(|id| !id.is_empty())
        .collect();
    if let Some(iommu) = iommu::for_devices(root, &bus_ids) {
        topology.host.iommu = Some(iommu);
    }
    topology.host.acs_redirecting = acs::redirecting_ports(root, &bus_ids);
}

/// Distinct physical package ids over all CPUs.
fn sockets(root: &Path) -> Option<u32> {
    let cpus = fs::read_dir(root.join("sys/devices/system/cpu")).ok()?;
    let packages: BTreeSet<String> = cpus
        .flatten()
        .filter(|entry| numbered(&entry.file_name().to_string_lossy(), "cpu"))
        .filter_map(|entry| {
            fs::read_to_string(entry.path().join("topology/physical_package_id")).ok()
        })
        .map(|id| id.trim().to_owned())
        .collect();
    count(packages.len())
}

/// NUMA nodes with CPUs (`has_cpu`): memory-only nodes (CXL, HBM, a GPU's own memory on
/// coherent platforms) are not where a process runs. Every node directory where the kernel has
/// no `has_cpu` list.
fn numa_nodes(root: &Path) -> Option<u32> {
    let node = root.join("sys/devices/system/node");
    if let Ok(list) = fs::read_to_string(node.join("has_cpu")) {
        return count(list_len(list.trim())?);
    }
    let nodes = fs::read_dir(node).ok()?;
    let nodes = nodes
        .flatten()
        .filter(|entry| numbered(&entry.file_name().to_string_lossy(), "node"))
        .count();
    count(nodes)
}

/// How many numbers a kernel list holds (`0-1,4`: 3); `None` when it is not one.
fn list_len(list: &str) -> Option<usize> {
    if list.is_empty() {
        return Some(0);
    }
    list.split(',')
        .map(|range| {
            let (a, b) = range.split_once('-').unwrap_or((range, range));
            let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
            b.checked_sub(a).map(|n| n + 1)
        })
        .sum()
}

/// `cpu12` for prefix `cpu`, not `cpufreq`.
fn numbered(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn count(n: usize) -> Option<u32> {
    u32::try_from(n).ok().filter(|&n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::fake_root::FakeRoot;
    use super::*;
    use crate::model::topology::Iommu;

    fn dual_socket(name: &str) -> FakeRoot {
        let root = FakeRoot::new(name);
        for cpu in 0..4 {
            let package = if cpu < 2 { "0\n" } else { "1\n" };
            root.file(
                &format!("sys/devices/system/cpu/cpu{cpu}/topology/physical_package_id"),
                package,
            );
        }
        root.dir("sys/devices/system/cpu/cpufreq")
            .dir("sys/devices/system/node/node0")
            .dir("sys/devices/system/node/node1")
            .dir("sys/devices/system/node/power");
        root
    }

    #[test]
    fn sockets_and_numa_nodes_are_counted_from_sysfs() {
        let root = dual_socket("count");
        let host = host_facts(&root.0);
        assert_eq!(host.sockets, Some(2));
        assert_eq!(host.numa_nodes, Some(2));
        assert_eq!(host.iommu, Some(Iommu::Off), "no IOMMU groups");
        assert_eq!(host.driver_version, None, "NVML's to fill");
    }

    #[test]
    fn iommu_groups_translate_unless_passed_through() {
        let root = dual_socket("dma");
        root.file("sys/kernel/iommu_groups/0/type", "DMA-FQ\n")
            .file("sys/kernel/iommu_groups/1/type", "identity\n")
            .file("proc/cmdline", "BOOT_IMAGE=/vmlinuz intel_iommu=on quiet\n");
        assert_eq!(host_facts(&root.0).iommu, Some(Iommu::Translated));

        root.file(
            "proc/cmdline",
            "BOOT_IMAGE=/vmlinuz intel_iommu=on iommu=pt\n",
        );
        assert_eq!(host_facts(&root.0).iommu, Some(Iommu::Passthrough));
    }

    #[test]
    fn identity_domains_everywhere_are_passthrough() {
        let root = dual_socket("identity");
        root.file("sys/kernel/iommu_groups/0/type", "identity\n")
            .file("sys/kernel/iommu_groups/7/type", "identity\n")
            .dir("sys/class/iommu/dmar0");
        assert_eq!(host_facts(&root.0).iommu, Some(Iommu::Passthrough));
    }

    #[test]
    fn memory_only_numa_nodes_are_not_counted() {
        let root = dual_socket("memory-only");
        root.dir("sys/devices/system/node/node2")
            .dir("sys/devices/system/node/node3")
            .file("sys/devices/system/node/has_cpu", "0-1\n");
        assert_eq!(host_facts(&root.0).numa_nodes, Some(2));
        root.file("sys/devices/system/node/has_cpu", "0,2-3\n");
        assert_eq!(host_facts(&root.0).numa_nodes, Some(3));
    }

    #[test]
    fn without_sysfs_nothing_is_guessed() {
        let root = FakeRoot::new("empty");
        fs::remove_dir_all(root.0.join("sys")).unwrap();
        let host = host_facts(&root.0);
        assert_eq!(
            (host.sockets, host.numa_nodes, host.iommu),
            (None, None, None)
        );
    }
}
