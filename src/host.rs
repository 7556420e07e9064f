//! Facts about the host the GPUs sit in: what `p2ptop topo` prints above the GPUs, and what can
//! explain a slow or broken peer path (sockets, NUMA nodes, an IOMMU that translates DMA).
//!
//! Driver and CUDA versions come from NVML (see `nvml::discover`), not from here.

use crate::model::topology::{Host, Iommu};
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
        iommu: iommu(root),
    }
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

fn numa_nodes(root: &Path) -> Option<u32> {
    let nodes = fs::read_dir(root.join("sys/devices/system/node")).ok()?;
    let nodes = nodes
        .flatten()
        .filter(|entry| numbered(&entry.file_name().to_string_lossy(), "node"))
        .count();
    count(nodes)
}

/// Whether DMA is translated, from the IOMMU groups and the kernel command line.
///
/// No IOMMU groups means no translation. Groups mean an IOMMU is on; it leaves
/// DMA untranslated when the kernel was booted with `iommu=pt` (or `iommu.passthrough=1`), or
/// when every group whose type can be read uses the identity domain.
fn iommu(root: &Path) -> Option<Iommu> {
    let kernel = root.join("sys/kernel");
    if !kernel.is_dir() {
        return None; // no sysfs to ask
    }
    let groups: Vec<_> = fs::read_dir(kernel.join("iommu_groups"))
        .map(|dir| dir.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    if groups.is_empty() {
        // Even with an IOMMU unit listed in /sys/class/iommu, no groups means no device's DMA
        // goes through it.
        return Some(Iommu::Off);
    }
    let cmdline = fs::read_to_string(root.join("proc/cmdline")).unwrap_or_default();
    let passthrough_boot = cmdline
        .split_whitespace()
        .any(|arg| arg == "iommu=pt" || arg == "iommu.passthrough=1");
    let types: Vec<String> = groups
        .iter()
        .filter_map(|group| fs::read_to_string(group.join("type")).ok())
        .map(|kind| kind.trim().to_owned())
        .collect();
    let all_identity = !types.is_empty() && types.iter().all(|kind| kind == "identity");
    Some(if passthrough_boot || all_identity {
        Iommu::Passthrough
    } else {
        Iommu::Translated
    })
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
    use super::*;
    use std::path::PathBuf;

    /// A fake file system root, removed when dropped.
    struct FakeRoot(PathBuf);

    impl FakeRoot {
        fn new(name: &str) -> FakeRoot {
            let dir =
                std::env::temp_dir().join(format!("p2ptop-host-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(dir.join("sys/kernel")).unwrap();
            FakeRoot(dir)
        }

        fn file(&self, path: &str, text: &str) -> &FakeRoot {
            let path = self.0.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
            self
        }

        fn dir(&self, path: &str) -> &FakeRoot {
            fs::create_dir_all(self.0.join(path)).unwrap();
            self
        }
    }

    impl Drop for FakeRoot {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

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
