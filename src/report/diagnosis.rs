//! Findings that explain a machine's numbers: the conditions users otherwise search forums for
//! (an IOMMU translating DMA, ACS on a switch, a small BAR1, no Fabric Manager, peer access off
//! for the model or by a registry key, clocks held low), each with what it means and what to do.
//!
//! Verdicts say *whether* something is wrong and group it by cause (`report::cause`); these say
//! what about the machine may explain it. A finding is read from the report, never proof, and is
//! worded so.

use super::run::{CellReport, Report};
use crate::model::topology::{Iommu, LinkType, NvLinkRemote, P2pStatus};
use crate::probe::protocol::FailureKind;
use serde::{Deserialize, Serialize};

/// Which known condition a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    IommuTranslated,
    /// Read from the ports' configuration space.
    AcsRedirecting,
    /// Suspected from the figures alone: the ports could not be read.
    AcsLikely,
    SmallBar1,
    FabricManagerMissing,
    P2pDisabledForModel,
    P2pDisabledByRegistry,
    ClocksHeldLow,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub condition: Condition,
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
        clocks_low(report),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn iommu(report: &Report) -> Option<Finding> {
    (report.machine.topology.host.iommu == Some(Iommu::Translated)).then(|| Finding {
        condition: Condition::IommuTranslated,
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
    let meaning = "Access Control Services on the switch's ports redirect peer traffic up to \
                   the root complex instead of across the switch, which slows it or hangs it";
    let action = "disable ACS in firmware or clear it with `setpci` (bare metal only; a VM's \
                  host needs it for isolation), and re-run";
    let evidence = |what: &str| {
        format!(
            "pairs below a PCIe switch with peer access OK are far below line rate or hung: {}; \
             {what}",
            suspects.join("; ")
        )
    };
    if suspects.is_empty() {
        return None;
    }
    match &report.machine.topology.host.acs_redirecting {
        // Read and off: something else slows these pairs.
        Some(ports) if ports.is_empty() => None,
        Some(ports) => Some(Finding {
            condition: Condition::AcsRedirecting,
            title: "ACS redirects peer traffic on a PCIe switch".into(),
            evidence: evidence(&format!(
                "ACS P2P redirect is on at port {}",
                ports.join(", ")
            )),
            meaning: meaning.into(),
            action: action.into(),
        }),
        None => Some(Finding {
            condition: Condition::AcsLikely,
            title: "ACS likely enabled on a PCIe switch".into(),
            evidence: evidence("p2ptop could not read the ports' ACS control (that takes root)"),
            meaning: meaning.into(),
            action: format!(
                "check `sudo lspci -vvv | grep ACSCtl` for `ReqRedir+` or `CmpltRedir+` on the \
                 switch ports (or run p2ptop as root, which reads them); {action}"
            ),
        }),
    }
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
        condition: Condition::SmallBar1,
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
        condition: Condition::FabricManagerMissing,
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
            condition: Condition::P2pDisabledByRegistry,
            title: "peer access disabled by a driver registry key".into(),
            evidence,
            meaning: status.sentence().into(),
            action: "look for `RmP2P…`/`NVreg_RegistryDwords` options in /etc/modprobe.d and the \
                     kernel command line, remove them, and reload the driver"
                .into(),
        },
        _ => Finding {
            condition: Condition::P2pDisabledForModel,
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

/// Clocks below their maximum under load with no throttle reason (throttling is a cause of its
/// own in the verdict): locked clocks or application clocks set low.
fn clocks_low(report: &Report) -> Option<Finding> {
    let low: Vec<String> = report
        .telemetry
        .iter()
        .filter(|s| !s.throttle_reasons_mask.is_throttling())
        .filter_map(|s| {
            let share = s
                .sm_clock_min_share_under_load
                .filter(|c| *c < LOW_CLOCK_SHARE)?;
            Some(format!(
                "GPU{} (SM clock down to {:.0}% of max)",
                s.gpu,
                share * 100.0
            ))
        })
        .collect();
    (!low.is_empty()).then(|| Finding {
        condition: Condition::ClocksHeldLow,
        title: "clocks held low under load without a throttle reason".into(),
        evidence: low.join("; "),
        meaning: "SM copies (and everything else the GPU computes) slow with the clock; with no \
                  thermal or power reason, the clocks are locked or set low on purpose"
            .into(),
        action: "check `nvidia-smi -q -d CLOCK` for locked or application clocks and reset them \
                 with `nvidia-smi -rgc` and `nvidia-smi -rac`"
            .into(),
    })
}
