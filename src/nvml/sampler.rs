//! Telemetry sampling: one pass over every GPU per interval, into a [`TelemetryFrame`].
//!
//! [`Sampler`] is the pure part (readings in, frame out, counter state kept between passes);
//! [`spawn`] runs it on its own thread so a slow NVML call never stalls the UI.
//!
//! A pass asks NVML little: what does not change (maximum clocks, temperature thresholds) once,
//! every link's traffic and the PCIe byte counters in one field-values call per GPU, error
//! counters every [`ERRORS_EVERY`] passes. Between passes the PCIe byte counters are read every
//! [`PCIE_EVERY`]: NVML may wrap them at 2^32 bytes, which PCIe 5.0 x16 moves in 68 ms.

use super::counters::{RateCounter, SinceStart, WrappingTotal};
use super::discover::nvlink_numbers;
use super::source::{Clock, Counter, Direction, NvLinkError, NvmlSource, Threshold};
use crate::model::telemetry::{
    ErrorDeltas, GpuTelemetry, LinkTraffic, TelemetryFrame, ThrottleReasons,
};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How often [`spawn`] samples unless told otherwise: often enough to follow a copy that lasts
/// seconds, rarely enough that NVML's own cost stays negligible.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(500);
/// How often the PCIe byte counters are read between passes: faster than they can wrap.
pub const PCIE_EVERY: Duration = Duration::from_millis(50);
/// Error counters move rarely and cost a call per link and counter: every this many passes.
pub const ERRORS_EVERY: u64 = 10;

/// NVLink throughput fields count KiB.
const KIB: f64 = 1024.0;

/// Counter state for every GPU, kept from one pass to the next.
#[derive(Debug)]
pub struct Sampler {
    first_us: Option<u64>,
    passes: u64,
    gpus: Vec<GpuCounters>,
}

#[derive(Debug)]
struct GpuCounters {
    index: u32,
    /// What does not change, read on the first pass.
    fixed: Option<Fixed>,
    /// PCIe bytes, tx and rx, unwrapped from reads at least every [`PCIE_EVERY`].
    pcie_totals: [WrappingTotal; 2],
    pcie_tx: RateCounter,
    pcie_rx: RateCounter,
    pcie_replay: SinceStart,
    /// The latest error totals, repeated between the passes that read them.
    errors: ErrorDeltas,
    links: Vec<LinkCounters>,
}

/// A GPU's readings that do not change while p2ptop runs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Fixed {
    slowdown_temp_c: Option<f64>,
    shutdown_temp_c: Option<f64>,
    sm_clock_max_mhz: Option<u32>,
    mem_clock_max_mhz: Option<u32>,
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
    /// Finds the GPUs NVML can open and their active NVLinks once, so each pass asks only
    /// about those.
    pub fn new(src: &dyn NvmlSource) -> Sampler {
        let count = src.device_count();
        let gpus = (0..count)
            .filter(|&index| src.reachable(index).is_ok())
            .map(|index| GpuCounters {
                index,
                fixed: None,
                pcie_totals: Default::default(),
                pcie_tx: RateCounter::default(),
                pcie_rx: RateCounter::default(),
                pcie_replay: SinceStart::default(),
                errors: ErrorDeltas::default(),
                links: nvlink_numbers(src, index)
                    .into_iter()
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
            passes: 0,
            gpus,
        }
    }

    /// One pass: every reading of every GPU, with rates since the previous pass.
    pub fn sample(&mut self, src: &dyn NvmlSource) -> TelemetryFrame {
        let now_us = src.begin_sample();
        let first_us = *self.first_us.get_or_insert(now_us);
        let read_errors = self.passes.is_multiple_of(ERRORS_EVERY);
        self.passes += 1;
        TelemetryFrame {
            at_ms: now_us.saturating_sub(first_us) / 1000,
            gpus: self
                .gpus
                .iter_mut()
                .map(|gpu| gpu.sample(src, now_us, read_errors))
                .collect(),
        }
    }

    /// Between passes: reads every GPU's PCIe byte counters (one call per GPU), so that no
    /// 32-bit wrap goes unseen.
    pub fn read_pcie(&mut self, src: &dyn NvmlSource, reader_us: u64) {
        for gpu in &mut self.gpus {
            let counters = [
                Counter::PcieBytes(Direction::Tx),
                Counter::PcieBytes(Direction::Rx),
            ];
            let readings = src.counters(gpu.index, &counters);
            for (total, reading) in gpu.pcie_totals.iter_mut().zip(readings) {
                total.add(reading.ok(), reader_us);
            }
        }
    }
}

impl GpuCounters {
    fn sample(&mut self, src: &dyn NvmlSource, now_us: u64, read_errors: bool) -> GpuTelemetry {
        let gpu = self.index;
        let watts = |mw: u32| f64::from(mw) / 1000.0;
        let fixed = *self.fixed.get_or_insert_with(|| fixed(src, gpu));
        let (pcie_tx_gbps, pcie_rx_gbps, nvlinks) = self.traffic(src, now_us);
        if read_errors {
            self.errors = self.errors(src);
        }
        GpuTelemetry {
            gpu,
            temp_c: src.temperature_c(gpu).ok().map(f64::from),
            slowdown_temp_c: fixed.slowdown_temp_c,
            shutdown_temp_c: fixed.shutdown_temp_c,
            sm_clock_mhz: src.clock_mhz(gpu, Clock::Sm).ok(),
            sm_clock_max_mhz: fixed.sm_clock_max_mhz,
            mem_clock_mhz: src.clock_mhz(gpu, Clock::Memory).ok(),
            mem_clock_max_mhz: fixed.mem_clock_max_mhz,
            power_w: src.power_usage_mw(gpu).ok().map(watts),
            power_limit_w: src.enforced_power_limit_mw(gpu).ok().map(watts),
            fan_percent: src.fan_percent(gpu).ok(),
            throttle: src.clocks_event_reasons(gpu).ok().map(ThrottleReasons),
            pcie_gen: src.pcie_gen_now(gpu).ok(),
            pcie_width: src.pcie_width_now(gpu).ok(),
            pcie_tx_gbps,
            pcie_rx_gbps,
            nvlinks,
            errors: self.errors,
        }
    }

    /// Every link's traffic and the PCIe bytes in one call; PCIe from NVML's own 20 ms
    /// throughput window where the GPU has no byte counters.
    fn traffic(
        &mut self,
        src: &dyn NvmlSource,
        now_us: u64,
    ) -> (Option<f64>, Option<f64>, Vec<LinkTraffic>) {
        let gpu = self.index;
        let mut wanted = vec![
            Counter::PcieBytes(Direction::Tx),
            Counter::PcieBytes(Direction::Rx),
        ];
        for l in &self.links {
            wanted.push(Counter::NvlinkKib(l.link, Direction::Tx));
            wanted.push(Counter::NvlinkKib(l.link, Direction::Rx));
        }
        let mut readings = src.counters(gpu, &wanted).into_iter().map(Result::ok);
        let mut pcie = [None, None];
        for (i, (total, rate)) in self
            .pcie_totals
            .iter_mut()
            .zip([&mut self.pcie_tx, &mut self.pcie_rx])
            .enumerate()
        {
            let reading = readings.next().flatten();
            let counted = reading.is_some();
            total.add(reading, now_us);
            pcie[i] = match total.reading().filter(|_| counted) {
                Some((reading, reader_us)) => {
                    rate.update(Some(reading), reader_us.max(now_us), 1.0)
                }
                None => {
                    let dir = [Direction::Tx, Direction::Rx][i];
                    src.pcie_throughput_kib_s(gpu, dir)
                        .ok()
                        .map(|kib_s| f64::from(kib_s) * KIB / 1e9)
                }
            };
        }
        let links = self
            .links
            .iter_mut()
            .map(|l| {
                let (tx, rx) = (readings.next().flatten(), readings.next().flatten());
                LinkTraffic {
                    link: l.link,
                    tx_gbps: l.tx.update(tx, now_us, KIB),
                    rx_gbps: l.rx.update(rx, now_us, KIB),
                }
            })
            .collect();
        (pcie[0], pcie[1], links)
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

/// What does not change: maximum clocks, and the temperature thresholds — from the threshold
/// call, or, where it gives nothing (Ada on, NVML's header says), from the T.Limit fields: a
/// threshold `t` degrees past the limit lies at temperature + margin − t.
fn fixed(src: &dyn NvmlSource, gpu: u32) -> Fixed {
    let limit_c = std::cell::OnceCell::new();
    let threshold = |which| {
        src.temperature_threshold_c(gpu, which)
            .map(f64::from)
            .ok()
            .or_else(|| {
                let limit = (*limit_c.get_or_init(|| t_limit_c(src, gpu)))?;
                Some((limit - src.temperature_limit_c(gpu, which).ok()?) as f64)
            })
    };
    Fixed {
        slowdown_temp_c: threshold(Threshold::Slowdown),
        shutdown_temp_c: threshold(Threshold::Shutdown),
        sm_clock_max_mhz: src.max_clock_mhz(gpu, Clock::Sm).ok(),
        mem_clock_max_mhz: src.max_clock_mhz(gpu, Clock::Memory).ok(),
    }
}

/// The temperature of the T.Limit scale's zero: the temperature plus its margin, read at one
/// moment — the temperature on both sides of the margin, again while it moves.
fn t_limit_c(src: &dyn NvmlSource, gpu: u32) -> Option<i64> {
    const TRIES: usize = 3;
    for _ in 0..TRIES {
        let before = src.temperature_c(gpu).ok()?;
        let margin = src.margin_temperature_c(gpu).ok()?;
        if src.temperature_c(gpu).ok()? == before {
            return Some(i64::from(before) + margin);
        }
    }
    None
}

/// Samples `source` every `interval` on a new thread and hands each frame to `sink`; the
/// thread ends after the first frame `sink` answers `false` to (e.g. when the UI's channel is
/// closed). Between frames it reads the PCIe byte counters every [`PCIE_EVERY`]. A pass that
/// takes longer than `interval` is followed at once by the next.
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
            while started.elapsed() + PCIE_EVERY < interval {
                thread::sleep(PCIE_EVERY);
                sampler.read_pcie(&source, source.clock_us());
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

    /// PCIe byte counters wrapping at 2^32: 2.5 GB every 50 ms, read by `read_pcie` halfway
    /// between two passes.
    const PCIE_WRAPS: &str = r#"{
        "gpus": [{}],
        "telemetry": [
            {"timestamp_us": 1000000, "gpus": [{"pcie_tx_bytes": {"value": 4000000000}}]},
            {"timestamp_us": 1050000, "gpus": [{"pcie_tx_bytes": {"value": 2205032704}}]},
            {"timestamp_us": 1100000, "gpus": [{"pcie_tx_bytes": {"value": 410065408}}]}
        ]}"#;

    #[test]
    fn reads_between_passes_unwrap_the_pcie_byte_counters() {
        let src = RecordedNvml::from_json(PCIE_WRAPS).unwrap();
        let mut sampler = Sampler::new(&src);
        assert_eq!(sampler.sample(&src).gpus[0].pcie_tx_gbps, None);
        src.begin_sample(); // the recording's middle reading, as the sampler thread takes it
        sampler.read_pcie(&src, src.clock_us());
        let tx = sampler.sample(&src).gpus[0].pcie_tx_gbps.unwrap();
        // 5 GB in 100 ms; the two ends alone differ by 0.7 GB modulo 2^32.
        assert!((tx - 50.0).abs() < 1e-9, "{tx} GB/s");
    }

    #[test]
    fn without_the_read_between_a_double_wrap_is_lost() {
        let src = RecordedNvml::from_json(PCIE_WRAPS).unwrap();
        let mut sampler = Sampler::new(&src);
        sampler.sample(&src);
        src.begin_sample();
        let tx = sampler.sample(&src).gpus[0].pcie_tx_gbps.unwrap();
        assert!(tx < 10.0, "{tx} GB/s: the test's recording must wrap twice");
    }
}
