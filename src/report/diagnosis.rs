//! Findings that explain a machine's numbers: the causes users otherwise search forums for, each
//! with what it means and what to do.
//!
//! Verdicts say *whether* something is wrong; these say *why* it probably is. A finding is a
//! likely cause read from the report, never proof, and is worded so.

use super::run::{CellReport, Report};
use crate::model::topology::{Iommu, LinkType, NvLinkRemote, P2pStatus};
use crate::probe::protocol::FailureKind;
use serde::{Deserialize, Serialize};

/// Which known cause a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    IommuTranslated,
    AcsLikely,
    SmallBar1,
    FabricManagerMissing,
    P2pDisabledForModel,
    P2pDisabledByRegistry,
    LinkTrainedDown,
    ClocksHeldLow,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub cause: Cause,
    pub title: String,
    /// What was seen, naming the GPUs or pairs.
    pub evidence: String,
    pub meaning: String,
    pub action: String,
}

/// PCIe peer copies below this share of the line rate are "far below" (healthy ones reach
/// 0.55–0.8, see the verdict's floors): the sign of traffic detoured through the root complex.
const ACS_SLOW_SHARE: f64 = 0.35;
/// BAR1 apertures at or below this size limit peer mappings (GeForce ships with 256 MiB).
const SMALL_BAR1_MIB: u64 = 256;
/// An SM clock under load below this share of its maximum is held low.
const LOW_CLOCK_SHARE: f64 = 0.8;
/// NVSwitch systems without Fabric Manager fail CUDA init with this error.
const CUDA_ERROR_SYSTEM_NOT_READY: i32 = 802;

/// Every finding that applies, in a fixed order.
pub fn diagnose(report: &Report) -> Vec<Finding> {
    [
        iommu(report),
        acs(report),
        small_bar1(report),
        fabric_manager(report),
        p2p_status(report, P2pStatus::Gns),
        p2p_status(report, P2pStatus::Dr),
        trained_down(report),
        clocks_low(report),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn iommu(report: &Report) -> Option<Finding> {
    (report.machine.topology.host.iommu == Some(Iommu::Translated)).then(|| Finding {
        cause: Cause::IommuTranslated,
        title: "IOMMU translates device DMA".into(),
        evidence: "the host's IOMMU is in translated mode (not passthrough)".into(),
        meaning: "peer-to-peer traffic is remapped by the IOMMU and may be sent through the root \
                  complex, slowed, or blocked; copies have hung or returned wrong data this way"
            .into(),
        action: "boot with `iommu=pt` (Intel: `intel_iommu=on iommu=pt`; AMD: `amd_iommu=on \
                 iommu=pt`) or disable the IOMMU in firmware, unless you need it for VMs"
            .into(),
    })
}

fn is_pcie_switch_pair(cell: &CellReport) -> bool {
    matches!(cell.link, Some(LinkType::Pix | LinkType::Pxb))
        && cell.p2p.is_some_and(P2pStatus::is_ok)
}

fn acs(report: &Report) -> Option<Finding> {
    let suspects: Vec<String> = report
        .cells
        .iter()
        .filter(|c| is_pcie_switch_pair(c))
        .filter(|c| {
            let slow = c.efficiency.is_some_and(|e| e < ACS_SLOW_SHARE);
            let hung = c
                .failure
                .as_ref()
                .is_some_and(|f| f.kind == FailureKind::Hung);
            slow || hung
        })
        .map(CellReport::label)
        .collect();
    (!suspects.is_empty()).then(|| Finding {
        cause: Cause::AcsLikely,
        title: "ACS likely enabled on a PCIe switch".into(),
        evidence: format!(
            "pairs below a PCIe switch with peer access OK are far below line rate or hung: {}",
            suspects.join("; ")
        ),
        meaning: "Access Control Services on the switch's ports redirect peer traffic up to the \
                  root complex instead of across the switch, which slows it or hangs it"
            .into(),
        action: "check `sudo lspci -vvv | grep ACSCtl` for `SrcValid+` on the switch ports; \
                 disable ACS in firmware or clear it with `setpci` (bare metal only), and re-run"
            .into(),
    })
}

fn small_bar1(report: &Report) -> Option<Finding> {
    let small: Vec<String> = report
        .machine
        .topology
        .gpus
        .iter()
        .filter(|g| g.bar1_mib.is_some_and(|b| b <= SMALL_BAR1_MIB))
        .map(|g| format!("GPU{} ({} MiB)", g.index, g.bar1_mib.unwrap_or_default()))
        .collect();
    (!small.is_empty()).then(|| Finding {
        cause: Cause::SmallBar1,
        title: "small BAR1 aperture".into(),
        evidence: format!("BAR1 of {}", small.join(", ")),
        meaning: "peers and the host can map only this much of the GPU's memory at once, which \
                  limits peer mappings and large transfers; with peer access some drivers fail or \
                  corrupt large copies"
            .into(),
        action: "enable Resizable BAR and Above 4G Decoding in the firmware (and on supported \
                 GPUs, a large-BAR mode), then check `nvidia-smi -q -d MEMORY` (BAR1 Memory Usage)"
            .into(),
    })
}

fn fabric_manager(report: &Report) -> Option<Finding> {
    let code = CUDA_ERROR_SYSTEM_NOT_READY.to_string();
    let in_cells = report.cells.iter().any(|c| {
        c.failure.as_ref().and_then(|f| f.cuda_error) == Some(CUDA_ERROR_SYSTEM_NOT_READY)
    });
    let in_problems = report.problems.iter().any(|p| p.contains(&code));
    let switched = report
        .machine
        .topology
        .gpus
        .iter()
        .flat_map(|g| &g.nvlinks)
        .any(|l| l.remote == NvLinkRemote::Switch);
    (in_cells || in_problems).then(|| Finding {
        cause: Cause::FabricManagerMissing,
        title: "NVSwitch fabric not ready (CUDA error 802)".into(),
        evidence: format!(
            "CUDA answered error 802 (system not ready){}",
            if switched {
                " on a machine whose NVLinks end at NVSwitches"
            } else {
                ""
            }
        ),
        meaning: "on NVSwitch systems CUDA cannot start until the Fabric Manager has set up the \
                  fabric; without it every GPU fails"
            .into(),
        action: "install the `nvidia-fabricmanager` package of exactly the driver's version, then \
                 `systemctl enable --now nvidia-fabricmanager` and check its log"
            .into(),
    })
}

fn p2p_status(report: &Report, status: P2pStatus) -> Option<Finding> {
    let pairs: Vec<String> = report
        .machine
        .topology
        .pairs
        .iter()
        .filter(|p| p.p2p.read == status || p.p2p.write == status)
        .map(|p| format!("GPU{}–GPU{}", p.a, p.b))
        .collect();
    if pairs.is_empty() {
        return None;
    }
    let evidence = format!(
        "`topo -p2p` says {} for {}",
        status.code(),
        pairs.join(", ")
    );
    Some(match status {
        P2pStatus::Dr => Finding {
            cause: Cause::P2pDisabledByRegistry,
            title: "peer access disabled by a driver registry key".into(),
            evidence,
            meaning: status.sentence().into(),
            action: "look for `RmP2P…`/`NVreg_RegistryDwords` options in /etc/modprobe.d and the \
                     kernel command line, remove them, and reload the driver"
                .into(),
        },
        _ => Finding {
            cause: Cause::P2pDisabledForModel,
            title: "this GPU model has no peer access over PCIe".into(),
            evidence,
            meaning: format!(
                "{} Copy-engine transfers still work but go through host memory; NCCL falls \
                 back to the same path",
                status.sentence()
            ),
            action: "for direct GPU-to-GPU traffic use an NVLink bridge (where the model has one) \
                     or data-centre GPUs; otherwise expect staged rates"
                .into(),
        },
    })
}

fn trained_down(report: &Report) -> Option<Finding> {
    let down: Vec<String> = report
        .telemetry
        .iter()
        .filter_map(|seen| {
            let gpu = report.machine.topology.gpu(seen.gpu)?;
            let (max_gen, max_width) = (gpu.pcie.gen_max?, gpu.pcie.width_max?);
            let (got_gen, got_width) = (seen.pcie_gen_max_seen?, seen.pcie_width_max_seen?);
            (got_gen < max_gen || got_width < max_width).then(|| {
                format!(
                    "GPU{} at Gen{got_gen} x{got_width} of Gen{max_gen} x{max_width}",
                    seen.gpu
                )
            })
        })
        .collect();
    (!down.is_empty()).then(|| Finding {
        cause: Cause::LinkTrainedDown,
        title: "PCIe link trained below its maximum under load".into(),
        evidence: down.join("; "),
        meaning: "the link negotiated a lower speed or fewer lanes than GPU and slot support, so \
                  every host and PCIe peer transfer of that GPU is capped"
            .into(),
        action: "reseat the card, check the slot's wiring (an x16 slot may be wired x8) and riser \
                 cables, and the firmware's PCIe speed setting; `lspci -vv` shows LnkSta against \
                 LnkCap"
            .into(),
    })
}

fn clocks_low(report: &Report) -> Option<Finding> {
    let low: Vec<String> = report
        .telemetry
        .iter()
        .filter(|s| {
            s.throttle_reasons_mask.is_throttling()
                || s.sm_clock_min_share_under_load
                    .is_some_and(|c| c < LOW_CLOCK_SHARE)
        })
        .map(|s| {
            let clock = s
                .sm_clock_min_share_under_load
                .map_or_else(String::new, |c| {
                    format!(", SM clock down to {:.0}% of max", c * 100.0)
                });
            let reasons = s
                .throttle_reasons
                .iter()
                .filter(|r| *r != "idle")
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            format!("GPU{} (reasons: {reasons}{clock})", s.gpu)
        })
        .collect();
    (!low.is_empty()).then(|| Finding {
        cause: Cause::ClocksHeldLow,
        title: "clocks held low during the run".into(),
        evidence: low.join("; "),
        meaning: "SM copies (and everything else the GPU computes) slow with the clock; thermal \
                  reasons mean the card is too hot, power-cap means its power limit is reached"
            .into(),
        action: "improve airflow (a bridge or a neighbour can block the intake), check fans and \
                 `nvidia-smi -q -d PERFORMANCE,POWER,TEMPERATURE`; restore the default power \
                 limit with `nvidia-smi -pl`"
            .into(),
    })
}
