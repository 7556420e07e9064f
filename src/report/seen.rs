//! What telemetry showed over a whole run, per GPU.
//!
//! The board keeps only the latest frame, but a verdict needs the run's extremes: a PCIe link
//! trains up only while it carries load (so the best generation seen is the one to judge), a GPU
//! may throttle and recover between frames, and error counters only grow.

use crate::app::feed::Feed;
use crate::model::telemetry::{ErrorDeltas, GpuTelemetry, TelemetryFrame, ThrottleReasons};
use serde::{Deserialize, Serialize};

/// One GPU's readings folded over every frame of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuSeen {
    /// NVML index.
    pub gpu: u32,
    pub frames: u32,
    pub max_temp_c: Option<f64>,
    /// Every clocks-event reason set in any frame, as NVML's bit mask.
    pub throttle_reasons_mask: ThrottleReasons,
    /// The same reasons by name, for readers of the JSON.
    pub throttle_reasons: Vec<String>,
    /// The best generation and width the link reached (it trains down while idle).
    pub pcie_gen_max_seen: Option<u32>,
    pub pcie_width_max_seen: Option<u32>,
    /// The lowest SM clock as a share of its maximum in a frame where the GPU was not idle.
    pub sm_clock_min_share_under_load: Option<f64>,
    /// The lowest fan duty in a frame where the GPU was not idle (a fan at 0% under load has
    /// stopped or is held off).
    pub fan_percent_min_under_load: Option<u32>,
    /// The lowest power limit reported.
    pub power_limit_min_w: Option<f64>,
    /// Error counters at the last frame (they count from the sampler's start).
    pub errors: ErrorDeltas,
    /// How long the counters counted: the last frame's time since the sampler started.
    pub seconds: f64,
}

impl GpuSeen {
    fn add(&mut self, t: &GpuTelemetry, at_ms: u64) {
        self.frames += 1;
        self.max_temp_c = max_f64(self.max_temp_c, t.temp_c);
        if let Some(reasons) = t.throttle {
            self.throttle_reasons_mask.0 |= reasons.0;
            self.throttle_reasons = self.throttle_reasons_mask.names();
        }
        self.pcie_gen_max_seen = self.pcie_gen_max_seen.max(t.pcie_gen);
        self.pcie_width_max_seen = self.pcie_width_max_seen.max(t.pcie_width);
        let idle = t
            .throttle
            .is_some_and(|r| r.0 & ThrottleReasons::GPU_IDLE != 0);
        if let (false, Some(now), Some(max)) = (idle, t.sm_clock_mhz, t.sm_clock_max_mhz)
            && max > 0
        {
            let share = f64::from(now) / f64::from(max);
            self.sm_clock_min_share_under_load =
                min_f64(self.sm_clock_min_share_under_load, Some(share));
        }
        if let (false, Some(fan)) = (idle, t.fan_percent) {
            self.fan_percent_min_under_load = Some(
                self.fan_percent_min_under_load
                    .map_or(fan, |least| least.min(fan)),
            );
        }
        self.power_limit_min_w = min_f64(self.power_limit_min_w, t.power_limit_w);
        self.errors = t.errors;
        self.seconds = at_ms as f64 / 1e3;
    }

    /// Whether thermal or hardware slowdown held clocks down at some point.
    pub fn throttled(&self) -> bool {
        self.throttle_reasons_mask.is_thermal()
            || self.throttle_reasons_mask.0 & ThrottleReasons::HW_POWER_BRAKE != 0
    }

    /// Whether the software power cap held clocks down at some point.
    pub fn power_capped(&self) -> bool {
        self.throttle_reasons_mask.0 & ThrottleReasons::SW_POWER_CAP != 0
    }
}

fn max_f64(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn min_f64(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Every GPU's run so far. Feed it the same [`Feed`]s as the board.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TelemetrySeen {
    pub gpus: Vec<GpuSeen>,
}

impl TelemetrySeen {
    /// Takes telemetry frames and ignores everything else, so the caller can pass every feed.
    pub fn apply(&mut self, feed: &Feed) {
        if let Feed::Telemetry(frame) = feed {
            self.add(frame);
        }
    }

    /// How long telemetry ran: the latest frame's time since the sampler started (on a simulated
    /// machine, its own clock).
    pub fn seconds(&self) -> f64 {
        self.gpus.iter().map(|g| g.seconds).fold(0.0, f64::max)
    }

    pub fn add(&mut self, frame: &TelemetryFrame) {
        for t in &frame.gpus {
            let index = match self.gpus.binary_search_by_key(&t.gpu, |g| g.gpu) {
                Ok(i) => i,
                Err(i) => {
                    let fresh = GpuSeen {
                        gpu: t.gpu,
                        ..GpuSeen::default()
                    };
                    self.gpus.insert(i, fresh);
                    i
                }
            };
            self.gpus[index].add(t, frame.at_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(at_ms: u64, gpu: u32, temp: f64, reasons: u64, generation: u32) -> Feed {
        Feed::Telemetry(TelemetryFrame {
            at_ms,
            gpus: vec![GpuTelemetry {
                gpu,
                temp_c: Some(temp),
                throttle: Some(ThrottleReasons(reasons)),
                pcie_gen: Some(generation),
                pcie_width: Some(16),
                sm_clock_mhz: Some(1000),
                sm_clock_max_mhz: Some(2000),
                // Zero-RPM fans stop while idle.
                fan_percent: Some(if reasons & ThrottleReasons::GPU_IDLE != 0 {
                    0
                } else {
                    30 + generation
                }),
                errors: ErrorDeltas {
                    pcie_replay: Some(at_ms / 1000),
                    ..ErrorDeltas::default()
                },
                ..GpuTelemetry::default()
            }],
        })
    }

    #[test]
    fn a_run_keeps_extremes_reasons_and_the_last_counters() {
        let mut seen = TelemetrySeen::default();
        seen.apply(&frame(1000, 1, 60.0, ThrottleReasons::GPU_IDLE, 1));
        seen.apply(&frame(2000, 1, 91.0, ThrottleReasons::SW_THERMAL, 4));
        seen.apply(&frame(3000, 1, 70.0, 0, 1));
        seen.apply(&frame(3000, 0, 40.0, ThrottleReasons::GPU_IDLE, 1));
        seen.apply(&Feed::ProbeTrouble("ignored".into()));
        assert_eq!(seen.gpus.iter().map(|g| g.gpu).collect::<Vec<_>>(), [0, 1]);
        let g = &seen.gpus[1];
        assert_eq!(g.frames, 3);
        assert_eq!(g.max_temp_c, Some(91.0));
        assert_eq!(g.throttle_reasons, ["idle", "sw-thermal"]);
        assert!(g.throttled() && !g.power_capped());
        assert_eq!(g.pcie_gen_max_seen, Some(4));
        assert_eq!(g.errors.pcie_replay, Some(3));
        assert_eq!(g.seconds, 3.0);
        assert_eq!(g.sm_clock_min_share_under_load, Some(0.5));
        assert_eq!(
            g.fan_percent_min_under_load,
            Some(31),
            "the idle frame's fan is left out"
        );
        assert_eq!(seen.seconds(), 3.0);
        // GPU0 was idle in its only frame: its clock says nothing about load.
        assert_eq!(seen.gpus[0].sm_clock_min_share_under_load, None);
    }
}
