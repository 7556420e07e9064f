//! The telemetry model: power follows load, temperature follows power and airflow, and a GPU
//! past its slowdown point lowers its clocks (and with them what SM copies reach).
//!
//! Temperature relaxes towards `ambient + power × cooling` with the board's time constant.
//! Above the slowdown threshold a controller takes clocks down by 10% of their maximum per
//! second (to at most half) and gives them back once the GPU is 3 °C below it; a power limit
//! below what the load draws scales clocks at once, as the power-capping firmware does.

use super::machine::SimGpu;
use crate::model::telemetry::ThrottleReasons;

const CLOCK_STEP_PER_S: f64 = 0.1;
const LOWEST_THERMAL_CLOCK: f64 = 0.5;
const RECOVERY_MARGIN_C: f64 = 3.0;
/// Clocks at idle, as a share of the maximum (GPUs drop to their lowest P-state).
const IDLE_CLOCK_SHARE: f64 = 0.1;
/// Integration step: well below every board's time constant.
const STEP_S: f64 = 0.05;

/// One GPU's thermal and power state.
#[derive(Clone, Debug, PartialEq)]
pub struct Thermal {
    pub temp_c: f64,
    /// Clocks allowed by the thermal controller, as a share of the maximum.
    thermal_clock: f64,
    /// Clocks allowed by the power limit under the current load.
    power_clock: f64,
    pub power_w: f64,
    /// The load in the last step: 0 idle, 1 copying at full rate.
    load: f64,
}

impl Thermal {
    /// The whole state as plain numbers: temperature, thermal clock share, power clock share,
    /// power and load. [`Thermal::from_parts`] gives it back.
    pub fn parts(&self) -> [f64; 5] {
        [
            self.temp_c,
            self.thermal_clock,
            self.power_clock,
            self.power_w,
            self.load,
        ]
    }

    pub fn from_parts([temp_c, thermal_clock, power_clock, power_w, load]: [f64; 5]) -> Thermal {
        Thermal {
            temp_c,
            thermal_clock,
            power_clock,
            power_w,
            load,
        }
    }

    /// A GPU that has idled long enough to settle.
    pub fn settled(gpu: &SimGpu, ambient_c: f64) -> Thermal {
        let power_w = gpu.model.idle_power_w;
        Thermal {
            temp_c: ambient_c + power_w * gpu.cooling_c_per_w,
            thermal_clock: 1.0,
            power_clock: 1.0,
            power_w,
            load: 0.0,
        }
    }

    /// Lets `seconds` pass with the GPU at `load` (0..=1).
    pub fn advance(&mut self, gpu: &SimGpu, ambient_c: f64, load: f64, seconds: f64) {
        let mut left = seconds;
        self.load = load;
        while left > 0.0 {
            let dt = left.min(STEP_S);
            left -= dt;
            self.step(gpu, ambient_c, load, dt);
        }
    }

    fn step(&mut self, gpu: &SimGpu, ambient_c: f64, load: f64, dt: f64) {
        let m = &gpu.model;
        if self.temp_c >= m.slowdown_c {
            self.thermal_clock =
                (self.thermal_clock - CLOCK_STEP_PER_S * dt).max(LOWEST_THERMAL_CLOCK);
        } else if self.temp_c < m.slowdown_c - RECOVERY_MARGIN_C {
            self.thermal_clock = (self.thermal_clock + CLOCK_STEP_PER_S * dt).min(1.0);
        }
        let dynamic = (m.copy_power_w - m.idle_power_w) * load * self.thermal_clock;
        let headroom = gpu.power_limit_w - m.idle_power_w;
        self.power_clock = if dynamic > headroom {
            headroom / dynamic
        } else {
            1.0
        };
        self.power_w = m.idle_power_w + dynamic * self.power_clock;
        let target = ambient_c + self.power_w * gpu.cooling_c_per_w;
        self.temp_c += (target - self.temp_c) * (dt / m.thermal_time_constant_s).min(1.0);
    }

    /// The share of maximum SM clocks the GPU runs at under load.
    pub fn clock_share(&self) -> f64 {
        self.thermal_clock * self.power_clock
    }

    pub fn sm_clock_mhz(&self, gpu: &SimGpu) -> u32 {
        let share = if self.load > 0.0 {
            self.clock_share()
        } else {
            IDLE_CLOCK_SHARE
        };
        (f64::from(gpu.model.sm_clock_max_mhz) * share).round() as u32
    }

    pub fn mem_clock_mhz(&self, gpu: &SimGpu) -> u32 {
        let share = if self.load > 0.0 {
            1.0
        } else {
            IDLE_CLOCK_SHARE
        };
        (f64::from(gpu.model.mem_clock_max_mhz) * share).round() as u32
    }

    pub fn reasons(&self) -> ThrottleReasons {
        let mut bits = 0;
        if self.load == 0.0 {
            bits |= ThrottleReasons::GPU_IDLE;
        }
        if self.thermal_clock < 1.0 {
            bits |= ThrottleReasons::SW_THERMAL;
        }
        if self.power_clock < 1.0 {
            bits |= ThrottleReasons::SW_POWER_CAP;
        }
        ThrottleReasons(bits)
    }

    /// A fan's duty as its controller would set it for this temperature; 0 when it has failed.
    pub fn fan_percent(&self, gpu: &SimGpu, ambient_c: f64) -> u32 {
        if gpu.fan_failed {
            return 0;
        }
        let span = (gpu.model.slowdown_c - ambient_c).max(1.0);
        let heat = ((self.temp_c - ambient_c) / span).clamp(0.0, 1.0);
        (30.0 + 70.0 * heat).round() as u32
    }
}
