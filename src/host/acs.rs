//! Access Control Services on the PCIe ports above the GPUs, read from their configuration
//! space.
//!
//! A port with ACS P2P Request Redirect or Completion Redirect on sends peer traffic up to the
//! root complex instead of across the switch: slower, and where the root complex does not
//! forward peer traffic, broken. The setting lives in each port's ACS extended capability, in
//! the part of configuration space past its first 256 bytes, which Linux shows only to root.
//! So p2ptop reads it where it can and says it does not know otherwise, rather than guess.

use std::fs;
use std::path::Path;

/// Where PCIe extended capabilities start in configuration space.
const EXTENDED_START: usize = 0x100;
/// The ACS extended capability's id.
const ACS_ID: u32 = 0x000d;
/// Offset of the ACS Control register in the capability.
const CONTROL_OFFSET: usize = 6;
/// ACS Control: P2P Request Redirect and P2P Completion Redirect.
const REDIRECT_BITS: u16 = (1 << 2) | (1 << 3);
/// A capability chain longer than this is corrupt (4 KiB of space, 4-byte headers at least).
const MAX_CAPABILITIES: usize = 1024;

/// The ports between the GPUs `bus_ids` and the root whose ACS redirects peer traffic (empty:
/// none does); `None` when some port's configuration space could not be read in full (not
/// root) or sysfs has none of the GPUs.
pub fn redirecting_ports(root: &Path, bus_ids: &[&str]) -> Option<Vec<String>> {
    let mut ports: Vec<String> = Vec::new();
    let mut found = false;
    for id in bus_ids {
        let Ok(device) = fs::canonicalize(root.join("sys/bus/pci/devices").join(id)) else {
            continue;
        };
        found = true;
        // The directories above a device in sysfs are the bridges it hangs off, up to the root
        // complex (`pci0000:00`, not a bus id).
        for port in device.ancestors().skip(1) {
            let Some(name) = port.file_name().and_then(|n| n.to_str()) else {
                break;
            };
            if !is_bus_id(name) {
                break;
            }
            let config = fs::read(port.join("config")).ok()?;
            if redirects(&config)? && !ports.iter().any(|p| p == name) {
                ports.push(name.to_owned());
            }
        }
    }
    found.then(|| {
        ports.sort();
        ports
    })
}

/// `dddd:bb:dd.f`.
fn is_bus_id(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 12
        && b[b.len() - 2] == b'.'
        && b[b.len() - 5] == b':'
        && b[b.len() - 8] == b':'
        && name
            .bytes()
            .filter(|c| !matches!(c, b':' | b'.'))
            .all(|c| c.is_ascii_hexdigit())
}

/// Whether a port's configuration space has ACS redirecting peer traffic; `None` when the
/// extended space is missing (what a non-root reader gets).
fn redirects(config: &[u8]) -> Option<bool> {
    let word = |at: usize| -> Option<u32> {
        let bytes = config.get(at..at + 4)?;
        Some(u32::from_le_bytes(bytes.try_into().ok()?))
    };
    let mut at = EXTENDED_START;
    word(at)?;
    for _ in 0..MAX_CAPABILITIES {
        let header = word(at)?;
        if header == 0 || header == u32::MAX {
            return Some(false); // no extended capabilities
        }
        if header & 0xffff == ACS_ID {
            let control = config.get(at + CONTROL_OFFSET..at + CONTROL_OFFSET + 2)?;
            return Some(u16::from_le_bytes([control[0], control[1]]) & REDIRECT_BITS != 0);
        }
        let next = (header >> 20) as usize & 0xffc;
        if next < EXTENDED_START {
            return Some(false); // the end of the chain
        }
        at = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::fake_root::FakeRoot;
    use super::*;

    /// 4 KiB of configuration space with an AER capability at 0x100 and, after it, an ACS
    /// capability at 0x148 whose control register is `control`.
    fn config_with_acs(control: u16) -> Vec<u8> {
        let mut config = vec![0u8; 4096];
        let aer: u32 = 0x0001 | (1 << 16) | (0x148 << 20);
        config[0x100..0x104].copy_from_slice(&aer.to_le_bytes());
        let acs: u32 = ACS_ID | (1 << 16);
        config[0x148..0x14c].copy_from_slice(&acs.to_le_bytes());
        config[0x14e..0x150].copy_from_slice(&control.to_le_bytes());
        config
    }

    #[test]
    fn redirect_bits_are_found_along_the_capability_chain() {
        assert_eq!(
            redirects(&config_with_acs(0x001d)),
            Some(true),
            "SV RR CR UF"
        );
        assert_eq!(redirects(&config_with_acs(0x0008)), Some(true), "CR alone");
        assert_eq!(redirects(&config_with_acs(0x0001)), Some(false), "SV alone");
        assert_eq!(redirects(&vec![0u8; 4096]), Some(false), "no capabilities");
        assert_eq!(redirects(&[0u8; 64]), None, "what a non-root reader sees");
    }

    /// GPU 0000:04:00.0 below switch ports 0000:03:08.0 (downstream) and 0000:02:00.0
    /// (upstream), on root port 0000:00:01.0.
    fn switch(name: &str, downstream_control: u16, readable: bool) -> FakeRoot {
        let root = FakeRoot::new(name);
        let top = "sys/devices/pci0000:00/0000:00:01.0";
        let up = format!("{top}/0000:02:00.0");
        let down = format!("{up}/0000:03:08.0");
        let gpu = format!("{down}/0000:04:00.0");
        let full = |control| {
            if readable {
                config_with_acs(control)
            } else {
                vec![0u8; 64]
            }
        };
        root.bytes(&format!("{top}/config"), &full(0))
            .bytes(&format!("{up}/config"), &full(0))
            .bytes(&format!("{down}/config"), &full(downstream_control))
            .bytes(&format!("{gpu}/config"), &full(0))
            .link("sys/bus/pci/devices/0000:04:00.0", &gpu);
        root
    }

    #[test]
    fn the_ports_above_a_gpu_are_named_when_they_redirect() {
        let on = switch("acs-on", 0x001d, true);
        assert_eq!(
            redirecting_ports(&on.0, &["0000:04:00.0"]),
            Some(vec!["0000:03:08.0".to_owned()])
        );
        let off = switch("acs-off", 0x0001, true);
        assert_eq!(redirecting_ports(&off.0, &["0000:04:00.0"]), Some(vec![]));
    }

    #[test]
    fn without_root_acs_is_unknown() {
        let root = switch("acs-unreadable", 0x001d, false);
        assert_eq!(redirecting_ports(&root.0, &["0000:04:00.0"]), None);
        assert_eq!(redirecting_ports(&root.0, &["0000:99:00.0"]), None);
    }

    #[test]
    fn bus_ids_are_told_from_other_sysfs_names() {
        assert!(is_bus_id("0000:03:08.0"));
        assert!(is_bus_id("10000:02:00.0"));
        assert!(!is_bus_id("pci0000:00"));
        assert!(!is_bus_id("devices"));
    }
}
