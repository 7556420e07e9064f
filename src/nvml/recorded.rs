//! NVML answers read from a JSON document instead of a driver.
//!
//! Tests and fixtures describe a machine as NVML would answer for it, so discovery, sampling and
//! the reports run on machines nobody here has. A `null` (or absent) answer stands for a question
//! the GPU refused, as GeForce cards refuse many. Telemetry is a list of passes: each
//! [`NvmlSource::begin_sample`] moves to the next pass and stays on the last one.

use super::source::{
    Answer, Clock, CommonAncestor, Counter, CounterReading, Direction, NoAnswer, NvLinkError,
    NvmlSource, P2pCap, RemoteDevice, Threshold,
};
use crate::model::topology::{P2pStatus, Unavailable};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::path::Path;

/// A whole machine's recorded answers. Field names say the unit NVML uses.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Recording {
    pub driver_version: Option<String>,
    /// 1000 × major + 10 × minor, as NVML gives it.
    pub cuda_driver_version: Option<i32>,
    /// In NVML index order.
    pub gpus: Vec<RecordedGpu>,
    /// One entry per unordered pair; answers for `a → b` and `b → a`.
    pub pairs: Vec<RecordedPair>,
    pub telemetry: Vec<RecordedPass>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordedGpu {
    /// Why NVML cannot open this GPU, when it cannot; every other answer about it is then
    /// refused.
    pub unreachable: Option<Unavailable>,
    pub name: Option<String>,
    pub uuid: Option<String>,
    pub pci_bus_id: Option<String>,
    pub architecture: Option<String>,
    pub memory_total_bytes: Option<u64>,
    pub power_limit_mw: Option<u32>,
    pub default_power_limit_mw: Option<u32>,
    pub cpu_affinity: Option<String>,
    /// NUMA nodes as a list, e.g. `0` or `0-1`.
    pub numa_affinity: Option<String>,
    pub mig: Option<bool>,
    /// Field 91; absent, as from older drivers.
    pub nvlink_count: Option<u32>,
    pub pcie_gen_now: Option<u32>,
    pub pcie_width_now: Option<u32>,
    pub pcie_gen_max: Option<u32>,
    pub pcie_width_max: Option<u32>,
    pub bar1_total_bytes: Option<u64>,
    /// The links the GPU has; a link not listed gets no answer at all.
    pub nvlinks: Vec<RecordedLink>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedLink {
    pub link: u32,
    pub active: bool,
    #[serde(default)]
    pub version_code: Option<u32>,
    #[serde(default)]
    pub speed_mb_s: Option<u64>,
    #[serde(default)]
    pub remote_pci_bus_id: Option<String>,
    #[serde(default)]
    pub remote_device: Option<RemoteDevice>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedPair {
    pub a: u32,
    pub b: u32,
    #[serde(default)]
    pub common_ancestor: Option<CommonAncestor>,
    /// `a`'s access to `b`'s memory.
    #[serde(default)]
    pub p2p: RecordedCaps,
    /// `b`'s access to `a`'s memory.
    #[serde(default)]
    pub p2p_back: RecordedCaps,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordedCaps {
    pub read: Option<P2pStatus>,
    pub write: Option<P2pStatus>,
    pub nvlink: Option<P2pStatus>,
    pub atomics: Option<P2pStatus>,
}

/// One pass of telemetry reads over every GPU.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordedPass {
    pub timestamp_us: u64,
    /// In NVML index order.
    pub gpus: Vec<RecordedReadings>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordedReadings {
    pub temperature_c: Option<u32>,
    pub slowdown_temp_c: Option<u32>,
    pub shutdown_temp_c: Option<u32>,
    /// Fields 194/193 and the margin temperature (the T.Limit scale, signed).
    pub slowdown_tlimit_c: Option<i64>,
    pub shutdown_tlimit_c: Option<i64>,
    pub margin_temperature_c: Option<i64>,
    pub sm_clock_mhz: Option<u32>,
    pub sm_clock_max_mhz: Option<u32>,
    pub mem_clock_mhz: Option<u32>,
    pub mem_clock_max_mhz: Option<u32>,
    pub power_usage_mw: Option<u32>,
    pub enforced_power_limit_mw: Option<u32>,
    pub fan_percent: Option<u32>,
    pub clocks_event_reasons: Option<u64>,
    pub pcie_tx_bytes: Option<RecordedCounter>,
    pub pcie_rx_bytes: Option<RecordedCounter>,
    pub pcie_tx_kib_s: Option<u32>,
    pub pcie_rx_kib_s: Option<u32>,
    pub pcie_replay: Option<u32>,
    pub nvlinks: Vec<RecordedLinkReadings>,
}

/// A cumulative counter; `at_us` defaults to the pass's timestamp, `bits` to 64.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedCounter {
    pub value: u64,
    #[serde(default = "sixty_four")]
    pub bits: u32,
    #[serde(default)]
    pub at_us: Option<u64>,
}

fn sixty_four() -> u32 {
    64
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedLinkReadings {
    pub link: u32,
    #[serde(default)]
    pub tx_kib: Option<RecordedCounter>,
    #[serde(default)]
    pub rx_kib: Option<RecordedCounter>,
    #[serde(default)]
    pub replay: Option<u64>,
    #[serde(default)]
    pub recovery: Option<u64>,
    #[serde(default)]
    pub crc_flit: Option<u64>,
    #[serde(default)]
    pub crc_data: Option<u64>,
}

/// An [`NvmlSource`] that answers from a [`Recording`].
#[derive(Debug)]
pub struct RecordedNvml {
    recording: Recording,
    /// The telemetry pass being answered; None before the first `begin_sample`.
    pass: Cell<Option<usize>>,
}

impl RecordedNvml {
    pub fn new(recording: Recording) -> RecordedNvml {
        RecordedNvml {
            recording,
            pass: Cell::new(None),
        }
    }

    pub fn from_json(json: &str) -> Result<RecordedNvml, serde_json::Error> {
        serde_json::from_str(json).map(RecordedNvml::new)
    }

    pub fn from_path(path: &Path) -> anyhow::Result<RecordedNvml> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read NVML recording {}", path.display()))?;
        RecordedNvml::from_json(&text)
            .with_context(|| format!("{} is not an NVML recording", path.display()))
    }

    fn gpu(&self, gpu: u32) -> Answer<&RecordedGpu> {
        let recorded = self
            .recording
            .gpus
            .get(gpu as usize)
            .ok_or_else(|| NoAnswer(format!("no GPU {gpu} in the recording")))?;
        match &recorded.unreachable {
            Some(why) => Err(NoAnswer(why.reason.clone())),
            None => Ok(recorded),
        }
    }

    fn link(&self, gpu: u32, link: u32) -> Answer<&RecordedLink> {
        self.gpu(gpu)?
            .nvlinks
            .iter()
            .find(|l| l.link == link)
            .ok_or_else(|| NoAnswer(format!("GPU {gpu} has no NVLink {link}")))
    }

    fn pair(&self, a: u32, b: u32) -> Answer<(&RecordedPair, bool)> {
        self.recording
            .pairs
            .iter()
            .find_map(|p| match (p.a, p.b) {
                (x, y) if (x, y) == (a, b) => Some((p, true)),
                (x, y) if (x, y) == (b, a) => Some((p, false)),
                _ => None,
            })
            .ok_or_else(|| NoAnswer(format!("no pair GPU{a}, GPU{b} in the recording")))
    }

    fn pass(&self) -> Answer<&RecordedPass> {
        let index = self
            .pass
            .get()
            .ok_or_else(|| NoAnswer("no telemetry pass begun".into()))?;
        // `begin_sample` only ever sets an index within the list.
        Ok(&self.recording.telemetry[index])
    }

    fn readings(&self, gpu: u32) -> Answer<&RecordedReadings> {
        self.gpu(gpu)?;
        self.pass()?
            .gpus
            .get(gpu as usize)
            .ok_or_else(|| NoAnswer(format!("no readings for GPU {gpu}")))
    }

    fn link_readings(&self, gpu: u32, link: u32) -> Answer<&RecordedLinkReadings> {
        self.readings(gpu)?
            .nvlinks
            .iter()
            .find(|l| l.link == link)
            .ok_or_else(|| NoAnswer(format!("no readings for GPU {gpu} NVLink {link}")))
    }

    fn counter(&self, counter: Option<RecordedCounter>) -> Answer<CounterReading> {
        let counter = given(counter)?;
        let at_us = counter.at_us.unwrap_or(self.pass()?.timestamp_us);
        Ok(CounterReading {
            value: counter.value,
            bits: counter.bits,
            at_us: (at_us > 0).then_some(at_us),
        })
    }

    fn one_counter(&self, gpu: u32, counter: Counter) -> Answer<CounterReading> {
        match counter {
            Counter::NvlinkKib(link, dir) => {
                let readings = self.link_readings(gpu, link)?;
                self.counter(match dir {
                    Direction::Tx => readings.tx_kib,
                    Direction::Rx => readings.rx_kib,
                })
            }
            Counter::PcieBytes(dir) => {
                let readings = self.readings(gpu)?;
                self.counter(match dir {
                    Direction::Tx => readings.pcie_tx_bytes,
                    Direction::Rx => readings.pcie_rx_bytes,
                })
            }
        }
    }
}

/// A recorded `null`: the question was refused.
fn given<T>(value: Option<T>) -> Answer<T> {
    value.ok_or_else(|| NoAnswer("Not Supported".into()))
}

impl NvmlSource for RecordedNvml {
    fn driver_version(&self) -> Answer<String> {
        given(self.recording.driver_version.clone())
    }

    fn cuda_driver_version(&self) -> Answer<i32> {
        given(self.recording.cuda_driver_version)
    }

    fn device_count(&self) -> u32 {
        // A recording with more GPUs than NVML can count is no recording of NVML.
        u32::try_from(self.recording.gpus.len()).unwrap_or(u32::MAX)
    }

    fn reachable(&self, gpu: u32) -> Result<(), Unavailable> {
        match self.recording.gpus.get(gpu as usize) {
            Some(RecordedGpu {
                unreachable: Some(why),
                ..
            }) => Err(why.clone()),
            Some(_) => Ok(()),
            None => Err(Unavailable {
                lost: false,
                reason: format!("no GPU {gpu} in the recording"),
            }),
        }
    }

    fn name(&self, gpu: u32) -> Answer<String> {
        given(self.gpu(gpu)?.name.clone())
    }

    fn uuid(&self, gpu: u32) -> Answer<String> {
        given(self.gpu(gpu)?.uuid.clone())
    }

    fn pci_bus_id(&self, gpu: u32) -> Answer<String> {
        given(self.gpu(gpu)?.pci_bus_id.clone())
    }

    fn architecture(&self, gpu: u32) -> Answer<String> {
        given(self.gpu(gpu)?.architecture.clone())
    }

    fn memory_total_bytes(&self, gpu: u32) -> Answer<u64> {
        given(self.gpu(gpu)?.memory_total_bytes)
    }

    fn power_limit_mw(&self, gpu: u32) -> Answer<u32> {
        given(self.gpu(gpu)?.power_limit_mw)
    }

    fn default_power_limit_mw(&self, gpu: u32) -> Answer<u32> {
        given(self.gpu(gpu)?.default_power_limit_mw)
    }

    fn cpu_affinity(&self, gpu: u32) -> Answer<String> {
        given(self.gpu(gpu)?.cpu_affinity.clone())
    }

    fn numa_affinity(&self, gpu: u32) -> Answer<String> {
        given(self.gpu(gpu)?.numa_affinity.clone())
    }

    fn mig_enabled(&self, gpu: u32) -> Answer<bool> {
        given(self.gpu(gpu)?.mig)
    }

    fn nvlink_count(&self, gpu: u32) -> Answer<u32> {
        given(self.gpu(gpu)?.nvlink_count)
    }

    fn pcie_gen_now(&self, gpu: u32) -> Answer<u32> {
        given(self.gpu(gpu)?.pcie_gen_now)
    }

    fn pcie_width_now(&self, gpu: u32) -> Answer<u32> {
        given(self.gpu(gpu)?.pcie_width_now)
    }

    fn pcie_gen_max(&self, gpu: u32) -> Answer<u32> {
        given(self.gpu(gpu)?.pcie_gen_max)
    }

    fn pcie_width_max(&self, gpu: u32) -> Answer<u32> {
        given(self.gpu(gpu)?.pcie_width_max)
    }

    fn bar1_total_bytes(&self, gpu: u32) -> Answer<u64> {
        given(self.gpu(gpu)?.bar1_total_bytes)
    }

    fn nvlink_is_active(&self, gpu: u32, link: u32) -> Answer<bool> {
        Ok(self.link(gpu, link)?.active)
    }

    fn nvlink_version_code(&self, gpu: u32, link: u32) -> Answer<u32> {
        given(self.link(gpu, link)?.version_code)
    }

    fn nvlink_speed_mb_s(&self, gpu: u32, link: u32) -> Answer<u64> {
        given(self.link(gpu, link)?.speed_mb_s)
    }

    fn nvlink_remote_bus_id(&self, gpu: u32, link: u32) -> Answer<String> {
        given(self.link(gpu, link)?.remote_pci_bus_id.clone())
    }

    fn nvlink_remote_device(&self, gpu: u32, link: u32) -> Answer<RemoteDevice> {
        given(self.link(gpu, link)?.remote_device)
    }

    fn nvlink_error_count(&self, gpu: u32, link: u32, counter: NvLinkError) -> Answer<u64> {
        let readings = self.link_readings(gpu, link)?;
        given(match counter {
            NvLinkError::Replay => readings.replay,
            NvLinkError::Recovery => readings.recovery,
            NvLinkError::CrcFlit => readings.crc_flit,
            NvLinkError::CrcData => readings.crc_data,
        })
    }

    fn common_ancestor(&self, a: u32, b: u32) -> Answer<CommonAncestor> {
        given(self.pair(a, b)?.0.common_ancestor)
    }

    fn p2p_status(&self, a: u32, b: u32, cap: P2pCap) -> Answer<P2pStatus> {
        let (pair, forward) = self.pair(a, b)?;
        let caps = if forward { pair.p2p } else { pair.p2p_back };
        given(match cap {
            P2pCap::Read => caps.read,
            P2pCap::Write => caps.write,
            P2pCap::Nvlink => caps.nvlink,
            P2pCap::Atomics => caps.atomics,
        })
    }

    fn begin_sample(&self) -> u64 {
        let last = self.recording.telemetry.len().checked_sub(1);
        let next = match (self.pass.get(), last) {
            (_, None) => None,
            (None, Some(_)) => Some(0),
            (Some(now), Some(last)) => Some((now + 1).min(last)),
        };
        self.pass.set(next);
        next.map_or(0, |i| self.recording.telemetry[i].timestamp_us)
    }

    fn clock_us(&self) -> u64 {
        self.pass().map_or(0, |p| p.timestamp_us)
    }

    fn temperature_c(&self, gpu: u32) -> Answer<u32> {
        given(self.readings(gpu)?.temperature_c)
    }

    fn temperature_threshold_c(&self, gpu: u32, which: Threshold) -> Answer<u32> {
        let readings = self.readings(gpu)?;
        given(match which {
            Threshold::Slowdown => readings.slowdown_temp_c,
            Threshold::Shutdown => readings.shutdown_temp_c,
        })
    }

    fn temperature_limit_c(&self, gpu: u32, which: Threshold) -> Answer<i64> {
        let readings = self.readings(gpu)?;
        given(match which {
            Threshold::Slowdown => readings.slowdown_tlimit_c,
            Threshold::Shutdown => readings.shutdown_tlimit_c,
        })
    }

    fn margin_temperature_c(&self, gpu: u32) -> Answer<i64> {
        given(self.readings(gpu)?.margin_temperature_c)
    }

    fn clock_mhz(&self, gpu: u32, clock: Clock) -> Answer<u32> {
        let readings = self.readings(gpu)?;
        given(match clock {
            Clock::Sm => readings.sm_clock_mhz,
            Clock::Memory => readings.mem_clock_mhz,
        })
    }

    fn max_clock_mhz(&self, gpu: u32, clock: Clock) -> Answer<u32> {
        let readings = self.readings(gpu)?;
        given(match clock {
            Clock::Sm => readings.sm_clock_max_mhz,
            Clock::Memory => readings.mem_clock_max_mhz,
        })
    }

    fn power_usage_mw(&self, gpu: u32) -> Answer<u32> {
        given(self.readings(gpu)?.power_usage_mw)
    }

    fn enforced_power_limit_mw(&self, gpu: u32) -> Answer<u32> {
        given(self.readings(gpu)?.enforced_power_limit_mw)
    }

    fn fan_percent(&self, gpu: u32) -> Answer<u32> {
        given(self.readings(gpu)?.fan_percent)
    }

    fn clocks_event_reasons(&self, gpu: u32) -> Answer<u64> {
        given(self.readings(gpu)?.clocks_event_reasons)
    }

    fn counters(&self, gpu: u32, counters: &[Counter]) -> Vec<Answer<CounterReading>> {
        counters.iter().map(|&c| self.one_counter(gpu, c)).collect()
    }

    fn pcie_throughput_kib_s(&self, gpu: u32, dir: Direction) -> Answer<u32> {
        let readings = self.readings(gpu)?;
        given(match dir {
            Direction::Tx => readings.pcie_tx_kib_s,
            Direction::Rx => readings.pcie_rx_kib_s,
        })
    }

    fn pcie_replay_count(&self, gpu: u32) -> Answer<u32> {
        given(self.readings(gpu)?.pcie_replay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_and_missing_links_are_refusals() {
        let nvml = RecordedNvml::from_json(
            r#"{"gpus": [{"name": "NVIDIA GeForce RTX 4090", "numa_affinity": null,
                "nvlinks": [{"link": 0, "active": false}]}]}"#,
        )
        .unwrap();
        assert_eq!(nvml.device_count(), 1);
        assert_eq!(nvml.name(0).unwrap(), "NVIDIA GeForce RTX 4090");
        assert!(nvml.numa_affinity(0).is_err());
        assert_eq!(nvml.nvlink_is_active(0, 0), Ok(false));
        assert!(nvml.nvlink_is_active(0, 1).is_err());
        assert!(nvml.name(1).is_err());
    }

    #[test]
    fn typos_in_a_recording_are_rejected() {
        let err = RecordedNvml::from_json(r#"{"gpus": [{"nmae": "x"}]}"#).unwrap_err();
        assert!(err.to_string().contains("nmae"), "{err}");
    }

    #[test]
    fn passes_advance_and_stay_on_the_last() {
        let nvml = RecordedNvml::from_json(
            r#"{"gpus": [{}], "telemetry": [
                {"timestamp_us": 10, "gpus": [{"temperature_c": 40}]},
                {"timestamp_us": 20, "gpus": [{"temperature_c": 41}]}]}"#,
        )
        .unwrap();
        assert!(nvml.temperature_c(0).is_err(), "no pass begun yet");
        assert_eq!(nvml.begin_sample(), 10);
        assert_eq!(nvml.temperature_c(0), Ok(40));
        assert_eq!(nvml.begin_sample(), 20);
        assert_eq!(nvml.begin_sample(), 20);
        assert_eq!(nvml.temperature_c(0), Ok(41));
    }

    #[test]
    fn p2p_answers_follow_the_direction_asked() {
        let nvml = RecordedNvml::from_json(
            r#"{"gpus": [{}, {}], "pairs": [{"a": 0, "b": 1,
                "p2p": {"read": "OK"}, "p2p_back": {"read": "CNS"}}]}"#,
        )
        .unwrap();
        assert_eq!(nvml.p2p_status(0, 1, P2pCap::Read), Ok(P2pStatus::Ok));
        assert_eq!(nvml.p2p_status(1, 0, P2pCap::Read), Ok(P2pStatus::Cns));
        assert!(nvml.p2p_status(0, 1, P2pCap::Write).is_err());
    }
}
