//! Whether an IOMMU translates device DMA: from the IOMMU groups and the kernel command line.
//!
//! No group means no translation. A group means an IOMMU is on; it leaves DMA untranslated when
//! the kernel was booted for passthrough (`iommu=pt`, `iommu.passthrough=1`) or when the group
//! uses the identity domain. The groups that matter are the GPUs' own: a host may translate for
//! one device it hands to a VM and pass the GPUs through.

use crate::model::topology::Iommu;
use std::fs;
use std::path::Path;

/// From every IOMMU group on the host: what can be said before the GPUs are known.
pub fn host_wide(root: &Path) -> Option<Iommu> {
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
    let types: Vec<String> = groups
        .iter()
        .filter_map(|group| fs::read_to_string(group.join("type")).ok())
        .map(|kind| kind.trim().to_owned())
        .collect();
    Some(judge(root, &types))
}

/// From the groups of the PCI devices `bus_ids` (the GPUs); `None` when sysfs has none of them.
pub fn for_devices(root: &Path, bus_ids: &[&str]) -> Option<Iommu> {
    let devices = root.join("sys/bus/pci/devices");
    let mut types = Vec::new();
    let mut ungrouped = 0;
    for id in bus_ids {
        let device = devices.join(id);
        if !device.is_dir() {
            continue;
        }
        match fs::read_to_string(device.join("iommu_group/type")) {
            Ok(kind) => types.push(kind.trim().to_owned()),
            Err(_) if !device.join("iommu_group").exists() => ungrouped += 1,
            // A group whose type cannot be read (an old kernel): it translates unless booted
            // for passthrough.
            Err(_) => types.push(String::new()),
        }
    }
    match (types.is_empty(), ungrouped) {
        (true, 0) => None,
        (true, _) => Some(Iommu::Off),
        (false, _) => Some(judge(root, &types)),
    }
}

/// Groups of these domain types exist: passthrough or translated.
fn judge(root: &Path, types: &[String]) -> Iommu {
    let cmdline = fs::read_to_string(root.join("proc/cmdline")).unwrap_or_default();
    let all_identity = !types.is_empty() && types.iter().all(|kind| kind == "identity");
    if booted_for_passthrough(&cmdline) || all_identity {
        Iommu::Passthrough
    } else {
        Iommu::Translated
    }
}

/// `iommu=pt`, or `iommu.passthrough=` with a value the kernel reads as true (its `kstrtobool`:
/// `1`, `y`, `t` or `on`, in either case).
fn booted_for_passthrough(cmdline: &str) -> bool {
    cmdline.split_whitespace().any(|arg| {
        arg == "iommu=pt"
            || arg.strip_prefix("iommu.passthrough=").is_some_and(|value| {
                let value = value.to_ascii_lowercase();
                value.starts_with(['1', 'y', 't']) || value.starts_with("on")
            })
    })
}

#[cfg(test)]
mod tests {
    use super::super::fake_root::FakeRoot;
    use super::*;

    #[test]
    fn passthrough_is_read_as_the_kernel_reads_it() {
        for yes in [
            "iommu=pt",
            "iommu.passthrough=1",
            "iommu.passthrough=y",
            "iommu.passthrough=on",
            "iommu.passthrough=Y",
            "quiet iommu.passthrough=true",
        ] {
            assert!(booted_for_passthrough(yes), "{yes}");
        }
        for no in [
            "iommu.passthrough=0",
            "iommu.passthrough=off",
            "iommu.passthrough=n",
            "intel_iommu=on",
            "iommu=ptx",
        ] {
            assert!(!booted_for_passthrough(no), "{no}");
        }
    }

    #[test]
    fn the_gpus_own_groups_decide() {
        let root = FakeRoot::new("gpu-groups");
        // The NIC is translated for a VM; the GPU's group is identity-mapped.
        root.file("sys/kernel/iommu_groups/3/type", "DMA-FQ\n")
            .file("sys/kernel/iommu_groups/9/type", "identity\n")
            .link(
                "sys/bus/pci/devices/0000:18:00.0/iommu_group",
                "sys/kernel/iommu_groups/9",
            )
            .link(
                "sys/bus/pci/devices/0000:5e:00.0/iommu_group",
                "sys/kernel/iommu_groups/3",
            );
        assert_eq!(host_wide(&root.0), Some(Iommu::Translated));
        assert_eq!(
            for_devices(&root.0, &["0000:18:00.0"]),
            Some(Iommu::Passthrough)
        );
        assert_eq!(
            for_devices(&root.0, &["0000:18:00.0", "0000:5e:00.0"]),
            Some(Iommu::Translated),
            "one GPU translated is enough to matter"
        );
        assert_eq!(
            for_devices(&root.0, &["0000:99:00.0"]),
            None,
            "not in sysfs"
        );
    }

    #[test]
    fn a_gpu_without_a_group_is_not_translated() {
        let root = FakeRoot::new("gpu-ungrouped");
        root.dir("sys/bus/pci/devices/0000:18:00.0");
        assert_eq!(for_devices(&root.0, &["0000:18:00.0"]), Some(Iommu::Off));
    }
}
