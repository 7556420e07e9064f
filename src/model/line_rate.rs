//! Theoretical per-direction bandwidth of a path: what every measured figure is a share of.
//!
//! Figures are from ../REFERENCE-style public tables (PCIe encodings, NVLink generations, GA102
//! whitepaper); NVML's own per-link speed wins over the table when the driver gives it.

use super::topology::{Gpu, LineRate, LinkType, PcieLink, Topology};
use crate::probe::protocol::Node;

/// GB/s per lane per direction for a PCIe generation, after line encoding.
pub fn pcie_lane_gbps(generation: u32) -> Option<f64> {
    Some(match generation {
        1 => 0.25,  // 2.5 GT/s, 8b/10b
        2 => 0.5,   // 5 GT/s, 8b/10b
        3 => 0.985, // 8 GT/s, 128b/130b
        4 => 1.969, // 16 GT/s, 128b/130b
        5 => 3.938, // 32 GT/s, 128b/130b
        6 => 7.563, // 64 GT/s, 242B/256B FLIT
        _ => return None,
    })
}

/// The line rate of a PCIe link at its maximum generation and width.
pub fn pcie_max(link: &PcieLink) -> Option<LineRate> {
    pcie(link.gen_max?, link.width_max?)
}

/// The line rate of a PCIe link as it is trained now.
pub fn pcie_now(link: &PcieLink) -> Option<LineRate> {
    pcie(link.gen_now?, link.width_now?)
}

/// The line rate of a PCIe link of `generation` and `width`.
pub fn pcie(generation: u32, width: u32) -> Option<LineRate> {
    Some(LineRate {
        gbps: pcie_lane_gbps(generation)? * f64::from(width),
        basis: format!("PCIe {generation}.0 x{width}"),
    })
}

/// Per-direction GB/s of one NVLink of a generation, when NVML does not give the speed.
///
/// GA102 boards (RTX 3090, RTX A6000) run NVLink 3 at 14.0625 GB/s per link; data-centre parts
/// run every generation from 2 to 4 at 25 GB/s per link.
pub fn nvlink_table_gbps(version: &str, gpu_name: &str) -> Option<f64> {
    let ga102 = ["RTX 3090", "RTX A6000", "RTX A5000", "RTX A4000", "A40"]
        .iter()
        .any(|model| gpu_name.contains(model));
    match version.split('.').next()? {
        "3" if ga102 => Some(14.0625),
        "2" | "3" | "4" => Some(25.0),
        "5" => Some(50.0),
        _ => None,
    }
}

/// The per-direction line rate between two different GPUs joined by `link`.
///
/// NVLink: the links' speeds added up (`count` links, each at the GPU's per-link speed).
/// PCIe paths: the slower of the two GPUs' links at their maximum (a path is no faster than its
/// narrowest hop; switches and the link between sockets are assumed not to be narrower).
pub fn between(a: &Gpu, b: &Gpu, link: LinkType) -> Option<LineRate> {
    match link {
        LinkType::SelfLink => device_local(a),
        LinkType::NvLink(count) => {
            let per_link = a
                .nvlinks
                .iter()
                .chain(&b.nvlinks)
                .filter(|l| l.active)
                .filter_map(|l| l.speed_gbps)
                .reduce(f64::min)?;
            Some(nvlinks(count, per_link))
        }
        LinkType::Pix | LinkType::Pxb | LinkType::Phb | LinkType::Node | LinkType::Sys => {
            let (ra, rb) = (pcie_max(&a.pcie)?, pcie_max(&b.pcie)?);
            Some(if ra.gbps <= rb.gbps { ra } else { rb })
        }
        // A path nobody could name has no line rate to hold it to.
        LinkType::Unknown => None,
    }
}

/// NVLink speeds NVML reports as the signalling rate, with the data rate each carries.
///
/// An H100's NVLink 4 runs two lanes of 106.25 Gb/s PAM4, 212.5 Gb/s or 26.5625 GB/s per
/// direction, which NVML reports (26.562 GB/s in `nvidia-smi nvlink -s`); after forward error
/// correction it carries 200 Gb/s, 25 GB/s, the figure NVIDIA's "900 GB/s over 18 links" is
/// made of. p2ptop judges every path by what it carries after line encoding (PCIe after
/// 128b/130b, NVLink after FEC), the rate every published efficiency is a share of (371–377 of
/// 450 GB/s on HGX H100); against 26.562 a healthy H100 would read 78%. A100 (NVLink 3, 4 × 50
/// Gb/s NRZ) and GA102 boards report their data rates, 25 and 14.0625, and pass unchanged.
const SIGNALLING_TO_DATA_GBPS: [(f64, f64); 1] = [(26.5625, 25.0)];

/// The per-direction data rate of one NVLink whose speed NVML reports as `reported` GB/s.
pub fn nvlink_data_gbps(reported: f64) -> f64 {
    SIGNALLING_TO_DATA_GBPS
        .iter()
        // NVML reports whole MB/s: 26562 for 26.5625.
        .find(|(signalling, _)| (reported - signalling).abs() < 0.005)
        .map_or(reported, |&(_, data)| data)
}

/// `count` bonded NVLinks whose speed NVML reports as `per_link` GB/s each, at their data
/// rate (see [`nvlink_data_gbps`]); the basis says when the two differ.
pub fn nvlinks(count: u32, per_link: f64) -> LineRate {
    let data = nvlink_data_gbps(per_link);
    let basis = if data == per_link {
        format!("{count} NVLink × {} GB/s", trim(per_link))
    } else {
        // Short enough for the live view's detail line at 80 columns.
        format!(
            "{count} × {} GB/s data, NVML {}",
            trim(data),
            trim(per_link)
        )
    };
    LineRate {
        gbps: data * f64::from(count),
        basis,
    }
}

/// A device-local copy reads and writes every byte, but counts it once: half the memory peak.
pub fn device_local(gpu: &Gpu) -> Option<LineRate> {
    let peak = gpu.memory_peak_gbps?;
    Some(LineRate {
        gbps: peak / 2.0,
        basis: format!("memory peak {} GB/s ÷ 2 (read + write)", trim(peak)),
    })
}

/// Peak memory bandwidth by model, from vendor specifications, when NVML does not say.
pub fn memory_peak_gbps(gpu_name: &str) -> Option<f64> {
    const PEAKS: [(&str, f64); 7] = [
        ("H200", 4800.0),
        ("H100 80GB HBM3", 3350.0),
        ("H100 SXM", 3350.0),
        ("A100-SXM4-80GB", 2039.0),
        ("A100 80GB", 2039.0),
        ("RTX 4090", 1008.0),
        ("RTX 3090", 936.0),
    ];
    PEAKS
        .iter()
        .find(|(model, _)| gpu_name.contains(model))
        .map(|&(_, peak)| peak)
}

impl Topology {
    /// The per-direction line rate of the path from `src` to `dst`, when it can be known.
    pub fn line_rate(&self, src: Node, dst: Node) -> Option<LineRate> {
        match (src, dst) {
            (Node::Gpu(a), Node::Gpu(b)) if a == b => device_local(self.gpu(a)?),
            (Node::Gpu(a), Node::Gpu(b)) => self.pair(a, b)?.line_rate.clone(),
            (Node::Host, Node::Gpu(g)) | (Node::Gpu(g), Node::Host) => pcie_max(&self.gpu(g)?.pcie),
            (Node::Host, Node::Host) => None,
        }
    }
}

/// A figure without trailing zeros: 25, 14.0625.
fn trim(value: f64) -> String {
    let text = format!("{value:.4}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::topology::{NvLink, NvLinkRemote};

    fn gpu(name: &str, generation: u32, width: u32, links: &[f64]) -> Gpu {
        Gpu {
            index: 0,
            cuda_ordinal: None,
            name: name.into(),
            uuid: String::new(),
            pci_bus_id: String::new(),
            architecture: None,
            memory_mib: None,
            power_limit_w: None,
            default_power_limit_w: None,
            cpu_affinity: None,
            numa_node: None,
            numa_affinity: None,
            unavailable: None,
            mig: None,
            pcie: PcieLink {
                gen_now: Some(1),
                width_now: Some(width),
                gen_max: Some(generation),
                width_max: Some(width),
            },
            nvlinks: links
                .iter()
                .enumerate()
                .map(|(i, &speed)| NvLink {
                    link: i as u32,
                    active: true,
                    version: Some("3.0".into()),
                    speed_gbps: Some(speed),
                    remote: NvLinkRemote::Unknown,
                })
                .collect(),
            bar1_mib: None,
            memory_peak_gbps: memory_peak_gbps(name),
            l2_cache_bytes: None,
        }
    }

    #[test]
    fn pcie_rates_match_the_reference_table() {
        let x16 = |g| pcie(g, 16).unwrap().gbps;
        assert!((x16(3) - 15.76).abs() < 0.01);
        assert!((x16(4) - 31.5).abs() < 0.01);
        assert!((x16(5) - 63.0).abs() < 0.01);
        assert_eq!(pcie(4, 16).unwrap().basis, "PCIe 4.0 x16");
        assert!(pcie(9, 16).is_none());
    }

    #[test]
    fn a_bridged_3090_pair_has_four_links_of_14_0625() {
        let link = 14.0625;
        let a = gpu("NVIDIA GeForce RTX 3090", 4, 16, &[link; 4]);
        let rate = between(&a, &a.clone(), LinkType::NvLink(4)).unwrap();
        assert_eq!(rate.gbps, 56.25);
        assert_eq!(rate.basis, "4 NVLink × 14.0625 GB/s");
        assert_eq!(
            nvlink_table_gbps("3.0", "NVIDIA GeForce RTX 3090"),
            Some(link)
        );
        assert_eq!(
            nvlink_table_gbps("4.0", "NVIDIA H100 80GB HBM3"),
            Some(25.0)
        );
    }

    #[test]
    fn an_h100_nvlink_is_judged_at_its_data_rate_not_nvml_s_signalling_rate() {
        let rate = nvlinks(18, 26.562);
        assert_eq!(rate.gbps, 450.0);
        assert_eq!(rate.basis, "18 × 25 GB/s data, NVML 26.562");
        // Rates NVML already gives as data rates (A100, GA102) pass unchanged.
        assert_eq!(nvlinks(12, 25.0).gbps, 300.0);
        assert_eq!(nvlinks(12, 25.0).basis, "12 NVLink × 25 GB/s");
        assert_eq!(nvlink_data_gbps(14.062), 14.062);
    }

    #[test]
    fn a_pcie_path_is_as_fast_as_its_slower_end() {
        let fast = gpu("a", 5, 16, &[]);
        let slow = gpu("b", 4, 8, &[]);
        let rate = between(&fast, &slow, LinkType::Sys).unwrap();
        assert_eq!(rate.basis, "PCIe 4.0 x8");
        assert!((rate.gbps - 15.75).abs() < 0.01);
    }

    #[test]
    fn device_local_is_half_the_memory_peak() {
        let h100 = gpu("NVIDIA H100 80GB HBM3", 5, 16, &[]);
        assert_eq!(device_local(&h100).unwrap().gbps, 1675.0);
        assert!(device_local(&gpu("unknown", 5, 16, &[])).is_none());
    }
}
