//! Telemetry sampling: one pass over every GPU per interval, into a [`TelemetryFrame`].
//!
//! [`Sampler`] is the pure part (readings in, frame out, counter state kept between passes);
//! [`spawn`] runs it on its own thread so a slow NVML call never stalls the UI.

use super::counters::{RateCounter, SinceStart};
use super::source::{
    Clock, CounterReading, Direction, MAX_NVLINKS, NvLinkError, NvmlSource, Threshold,
};
use crate::model::telemetry::{
    ErrorDeltas, GpuTelemetry, LinkTraffic, TelemetryFrame, ThrottleReasons,
};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How often [`spawn`] samples unless told otherwise: often enough to follow a copy that lasts
/// seconds, rarely enough that NVML's own cost (a few ms per pass on 8 GPUs) stays negligible.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(500);

/// NVLink throughput fields count KiB.
const KIB: f64 = 1024.0;

/// Counter state for every GPU, kept from one pass to the next.
#[derive(Debug)]
pub struct Sampler {
    first_us: Option<u64>,
    gpus: Vec<GpuCounters>,
}

#[derive(Debug)]
struct GpuCounters {
    index: u32,
    pcie_tx: RateCounter,
    pcie_rx: RateCounter,
    pcie_replay: SinceStart,
    links: Vec<LinkCounters>,
}

#[derive(Debug)]
struct LinkCounters {
    link: u32,
    tx: RateCounter,
    rx: RateCounter,
    /// In the order of `NvLinkError::ALL`.
    errors: [SinceStart; 4],
}

impl Sampler {
    /// Finds the GPUs and their active NVLinks once, so each pass asks only about those.
    pub fn new(src: &dyn NvmlSource) -> Sampler {
        let count = src.device_count().unwrap_or(0);
        let gpus = (0..count)
            .map(|index| GpuCounters {
                index,
                pcie_tx: RateCounter::default(),
                pcie_rx: RateCounter::default(),
                pcie_replay: SinceStart::default(),
                links: (0..MAX_NVLINKS)
                    .filter(|&link| src.nvlink_is_active(index, link) == Ok(true))
                    .map(|link| LinkCounters {
                        link,
                        tx: RateCounter::default(),
                        rx: RateCounter::default(),
                        errors: Default::default(),
                    })
                    .collect(),
            })
            .collect();
        Sampler {
            first_us: None,
            gpus,
        }
    }

    /// One pass: every reading of every GPU, with rates since the previous pass.
    pub fn sample(&mut self, src: &dyn NvmlSource) -> TelemetryFrame {
        let now_us = src.begin_sample();
        let first_us = *self.first_us.get_or_insert(now_us);
        TelemetryFrame {
            at_ms: now_us.saturating_sub(first_us) / 1000,
            gpus: self.gpus.iter_mut().map(|gpu| gpu.sample(src)).collect(),
        }
    }
}

impl GpuCounters {
    fn sample(&mut self, src: &dyn NvmlSource) -> GpuTelemetry {
        let gpu = self.index;
        let watts = |mw: u32| f64::from(mw) / 1000.0;
        let (pcie_tx_gbps, pcie_rx_gbps) = self.pcie_rates(src);
        let nvlinks = self.links.iter_mut().map(|l| l.traffic(src, gpu)).collect();
        GpuTelemetry {
            gpu,
            temp_c: src.temperature_c(gpu).ok().map(f64::from),
            slowdown_temp_c: src
                .temperature_threshold_c(gpu, Threshold::Slowdown)
                .ok()
                .map(f64::from),
            shutdown_temp_c: src
                .temperature_threshold_c(gpu, Threshold::Shutdown)
                .ok()
                .map(f64::from),
            sm_clock_mhz: src.clock_mhz(gpu, Clock::Sm).ok(),
            sm_clock_max_mhz: src.max_clock_mhz(gpu, Clock::Sm).ok(),
            mem_clock_mhz: src.clock_mhz(gpu, Clock::Memory).ok(),
            mem_clock_max_mhz: src.max_clock_mhz(gpu, Clock::Memory).ok(),
            power_w: src.power_usage_mw(gpu).ok().map(watts),
            power_limit_w: src.enforced_power_limit_mw(gpu).ok().map(watts),
            fan_percent: src.fan_percent(gpu).ok(),
            throttle: src.clocks_event_reasons(gpu).ok().map(ThrottleReasons),
            pcie_gen: src.pcie_gen_now(gpu).ok(),
            pcie_width: src.pcie_width_now(gpu).ok(),
            pcie_tx_gbps,
            pcie_rx_gbps,
            nvlinks,
            errors: self.errors(src),
        }
    }

    /// From the byte counters when the GPU has them, else NVML's own 20 ms throughput window.
    fn pcie_rates(&mut self, src: &dyn NvmlSource) -> (Option<f64>, Option<f64>) {
        let gpu = self.index;
        let rate = |counter: &mut RateCounter, dir| match src.pcie_bytes(gpu, dir) {
            Ok(reading) => counter.update(Some(reading), 1.0),
            Err(_) => src
                .pcie_throughput_kib_s(gpu, dir)
                .ok()
                .map(|kib_s| f64::from(kib_s) * KIB / 1e9),
        };
        (
            rate(&mut self.pcie_tx, Direction::Tx),
            rate(&mut self.pcie_rx, Direction::Rx),
        )
    }

    fn errors(&mut self, src: &dyn NvmlSource) -> ErrorDeltas {
        let gpu = self.index;
        let mut totals = [None::<u64>; 4];
        for link in &mut self.links {
            for (i, counter) in NvLinkError::ALL.into_iter().enumerate() {
                let reading = src.nvlink_error_count(gpu, link.link, counter).ok();
                if let Some(delta) = link.errors[i].update(reading, 64) {
                    totals[i] = Some(totals[i].unwrap_or(0) + delta);
                }
            }
        }
        let [replay, recovery, crc_flit, crc_data] = totals;
        ErrorDeltas {
            nvlink_replay: replay,
            nvlink_recovery: recovery,
            nvlink_crc: match (crc_flit, crc_data) {
                (None, None) => None,
                (flit, data) => Some(flit.unwrap_or(0) + data.unwrap_or(0)),
            },
            pcie_replay: self
                .pcie_replay
                .update(src.pcie_replay_count(gpu).ok().map(u64::from), 32),
        }
    }
}

impl LinkCounters {
    fn traffic(&mut self, src: &dyn NvmlSource, gpu: u32) -> LinkTraffic {
        let reading = |dir| -> Option<CounterReading> { src.nvlink_kib(gpu, self.link, dir).ok() };
        let (tx, rx) = (reading(Direction::Tx), reading(Direction::Rx));
        LinkTraffic {
            link: self.link,
            tx_gbps: self.tx.update(tx, KIB),
            rx_gbps: self.rx.update(rx, KIB),
        }
    }
}

/// Samples `source` every `interval` on a new thread and hands each frame to `sink`; the
/// thread ends after the first frame `sink` answers `false` to (e.g. when the UI's channel is
/// closed). A pass that takes longer than `interval` is followed at once by the next.
pub fn spawn<S, F>(source: S, interval: Duration, mut sink: F) -> JoinHandle<()>
where
    S: NvmlSource + Send + 'static,
    F: FnMut(TelemetryFrame) -> bool + Send + 'static,
{
    thread::spawn(move || {
        let mut sampler = Sampler::new(&source);
        loop {
            let started = Instant::now();
            if !sink(sampler.sample(&source)) {
                break;
            }
            thread::sleep(interval.saturating_sub(started.elapsed()));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nvml::recorded::RecordedNvml;

    /// One GPU, one NVLink whose 32-bit KiB counter wraps between the second and third pass.
    const WRAPPING: &str = r#"{
        "gpus": [{"nvlinks": [{"link": 2, "active": true}]}],
        "telemetry": [
            {"timestamp_us": 1000000, "gpus": [{"nvlinks": [{"link": 2, "tx_kib": {"value": 4294000000, "bits": 32}}]}]},
            {"timestamp_us": 2000000, "gpus": [{"nvlinks": [{"link": 2, "tx_kib": {"value": 4294960000, "bits": 32}}]}]},
            {"timestamp_us": 3000000, "gpus": [{"nvlinks": [{"link": 2, "tx_kib": {"value": 952704, "bits": 32}}]}]}
        ]}"#;

    #[test]
    fn a_wrapping_32_bit_link_counter_keeps_its_rate() {
        let src = RecordedNvml::from_json(WRAPPING).unwrap();
        let mut sampler = Sampler::new(&src);
        let rates: Vec<Option<f64>> = (0..3)
            .map(|_| sampler.sample(&src).gpus[0].nvlinks[0].tx_gbps)
            .collect();
        assert_eq!(rates[0], None);
        // 960,000 KiB per second before the wrap, and 960,000 KiB across it (2^32 - 4,294,960,000
        // + 952,704).
        let expected = 960_000.0 * 1024.0 / 1e9;
        assert_eq!(rates[1], Some(expected));
        assert_eq!(rates[2], Some(expected));
    }

    #[test]
    fn nothing_answered_means_nothing_reported() {
        let src =
            RecordedNvml::from_json(r#"{"gpus": [{}], "telemetry": [{"gpus": [{}]}]}"#).unwrap();
        let frame = Sampler::new(&src).sample(&src);
        assert_eq!(frame.gpus.len(), 1);
        let gpu = &frame.gpus[0];
        assert_eq!(gpu, &GpuTelemetry::default(), "no invented readings");
    }
}
