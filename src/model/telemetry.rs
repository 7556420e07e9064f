//! Live readings of each GPU: what the NVML sampler (or the simulator) reports every interval.
//!
//! Every reading is optional: GeForce cards answer only part of NVML, and a missing value is
//! shown as n/a, never invented.

use serde::{Deserialize, Serialize};

/// Clocks-event (throttle) reasons, NVML's `nvmlClocksEventReasons` bit mask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ThrottleReasons(pub u64);

impl ThrottleReasons {
    pub const GPU_IDLE: u64 = 0x1;
    pub const APPLICATIONS_CLOCKS: u64 = 0x2;
    pub const SW_POWER_CAP: u64 = 0x4;
    pub const HW_SLOWDOWN: u64 = 0x8;
    pub const SYNC_BOOST: u64 = 0x10;
    pub const SW_THERMAL: u64 = 0x20;
    pub const HW_THERMAL: u64 = 0x40;
    pub const HW_POWER_BRAKE: u64 = 0x80;
    pub const DISPLAY_CLOCKS: u64 = 0x100;

    const NAMES: [(u64, &'static str); 9] = [
        (Self::GPU_IDLE, "idle"),
        (Self::APPLICATIONS_CLOCKS, "app-clocks"),
        (Self::SW_POWER_CAP, "power-cap"),
        (Self::HW_SLOWDOWN, "hw-slowdown"),
        (Self::SYNC_BOOST, "sync-boost"),
        (Self::SW_THERMAL, "sw-thermal"),
        (Self::HW_THERMAL, "hw-thermal"),
        (Self::HW_POWER_BRAKE, "power-brake"),
        (Self::DISPLAY_CLOCKS, "display-clocks"),
    ];

    /// Reasons that lower clocks below what the workload asked for (idle and app clocks do not).
    const LIMITING: u64 = Self::SW_POWER_CAP
        | Self::HW_SLOWDOWN
        | Self::SW_THERMAL
        | Self::HW_THERMAL
        | Self::HW_POWER_BRAKE;

    /// The set reasons by name, in NVML's bit order; unknown bits as hex.
    pub fn names(self) -> Vec<String> {
        let mut names: Vec<String> = Self::NAMES
            .iter()
            .filter(|(bit, _)| self.0 & bit != 0)
            .map(|(_, name)| (*name).to_owned())
            .collect();
        let known = Self::NAMES.iter().fold(0, |all, (bit, _)| all | bit);
        if self.0 & !known != 0 {
            names.push(format!("0x{:x}", self.0 & !known));
        }
        names
    }

    /// Whether clocks are being held down (thermal, power, or a hardware slowdown).
    pub fn is_throttling(self) -> bool {
        self.0 & Self::LIMITING != 0
    }

    pub fn is_thermal(self) -> bool {
        self.0 & (Self::SW_THERMAL | Self::HW_THERMAL | Self::HW_SLOWDOWN) != 0
    }
}

/// Error counters, as increases since the sampler started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDeltas {
    /// NVLink data-link replays, all links.
    pub nvlink_replay: Option<u64>,
    /// NVLink data-link recoveries, all links.
    pub nvlink_recovery: Option<u64>,
    /// NVLink CRC errors (flit and data), all links.
    pub nvlink_crc: Option<u64>,
    pub pcie_replay: Option<u64>,
}

/// One NVLink's traffic over the last interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkTraffic {
    pub link: u32,
    pub tx_gbps: Option<f64>,
    pub rx_gbps: Option<f64>,
}

/// One GPU's readings at one moment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuTelemetry {
    /// NVML index of the GPU.
    pub gpu: u32,
    pub temp_c: Option<f64>,
    /// Where the GPU starts to slow its clocks.
    pub slowdown_temp_c: Option<f64>,
    /// Where the GPU shuts down.
    pub shutdown_temp_c: Option<f64>,
    pub sm_clock_mhz: Option<u32>,
    pub sm_clock_max_mhz: Option<u32>,
    pub mem_clock_mhz: Option<u32>,
    pub mem_clock_max_mhz: Option<u32>,
    pub power_w: Option<f64>,
    pub power_limit_w: Option<f64>,
    pub fan_percent: Option<u32>,
    pub throttle: Option<ThrottleReasons>,
    pub pcie_gen: Option<u32>,
    pub pcie_width: Option<u32>,
    pub pcie_tx_gbps: Option<f64>,
    pub pcie_rx_gbps: Option<f64>,
    pub nvlinks: Vec<LinkTraffic>,
    pub errors: ErrorDeltas,
}

impl GpuTelemetry {
    /// Total NVLink traffic (tx, rx) over every link that reported it.
    pub fn nvlink_totals(&self) -> (Option<f64>, Option<f64>) {
        let sum = |pick: fn(&LinkTraffic) -> Option<f64>| {
            self.nvlinks.iter().filter_map(pick).reduce(|a, b| a + b)
        };
        (sum(|l| l.tx_gbps), sum(|l| l.rx_gbps))
    }
}

/// Every GPU's readings at one moment, `at_ms` after the sampler started.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TelemetryFrame {
    pub at_ms: u64,
    pub gpus: Vec<GpuTelemetry>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_reasons_decode_to_names() {
        let reasons = ThrottleReasons(ThrottleReasons::SW_THERMAL | ThrottleReasons::SW_POWER_CAP);
        assert_eq!(reasons.names(), ["power-cap", "sw-thermal"]);
        assert!(reasons.is_throttling());
        assert!(reasons.is_thermal());
        let idle = ThrottleReasons(ThrottleReasons::GPU_IDLE | 0x8000);
        assert_eq!(idle.names(), ["idle", "0x8000"]);
        assert!(!idle.is_throttling());
    }

    #[test]
    fn nvlink_totals_add_only_reported_links() {
        let t = GpuTelemetry {
            nvlinks: vec![
                LinkTraffic {
                    link: 0,
                    tx_gbps: Some(10.0),
                    rx_gbps: None,
                },
                LinkTraffic {
                    link: 1,
                    tx_gbps: Some(2.5),
                    rx_gbps: None,
                },
            ],
            ..GpuTelemetry::default()
        };
        assert_eq!(t.nvlink_totals(), (Some(12.5), None));
    }
}
