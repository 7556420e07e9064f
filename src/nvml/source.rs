//! The raw NVML questions p2ptop asks, behind one trait.
//!
//! Discovery and sampling are written against [`NvmlSource`], not against NVML, so that recorded
//! answers (tests, fixtures) and the real library feed the same code. Each method asks one thing
//! and may get no answer: GeForce cards answer only part of NVML, and a refusal is data, not an
//! error to stop on.

use crate::model::topology::{P2pStatus, Unavailable};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a question got no answer (NVML's error text, or "not recorded").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoAnswer(pub String);

impl fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One answer from NVML, or the reason there is none.
pub type Answer<T> = Result<T, NoAnswer>;

/// NVML numbers NVLinks from 0, up to `NVML_NVLINK_MAX_LINKS` (36 in CUDA 13.2's nvml.h, 18
/// before). A GPU's own count comes from field 91 ([`NvmlSource::nvlink_count`]); this bounds
/// the search where the driver does not give it.
pub const MAX_NVLINKS: u32 = 36;

/// What sits at the far end of an NVLink (`nvmlIntNvLinkDeviceType_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteDevice {
    Gpu,
    /// IBM's NVLink bridge to a POWER CPU.
    IbmNpu,
    Switch,
    Unknown,
}

/// NVLink data-link error counters (`nvmlNvLinkErrorCounter_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NvLinkError {
    Replay,
    Recovery,
    CrcFlit,
    CrcData,
}

impl NvLinkError {
    pub const ALL: [NvLinkError; 4] = [
        NvLinkError::Replay,
        NvLinkError::Recovery,
        NvLinkError::CrcFlit,
        NvLinkError::CrcData,
    ];
}

/// How far apart two GPUs sit in the PCIe tree (`nvmlGpuTopologyLevel_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommonAncestor {
    /// Both GPUs on one board (e.g. a dual-GPU card).
    Internal,
    /// One PCIe switch between them.
    Single,
    /// Several PCIe switches, below one host bridge.
    Multiple,
    HostBridge,
    /// Different host bridges in one NUMA node.
    Node,
    System,
}

/// The peer-access capabilities NVML reports on (`nvmlGpuP2PCapsIndex_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum P2pCap {
    Read,
    Write,
    Nvlink,
    Atomics,
}

/// Temperatures at which the GPU acts on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threshold {
    Slowdown,
    Shutdown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    Sm,
    Memory,
}

/// Transmitted (from the GPU) or received (into the GPU).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Tx,
    Rx,
}

/// A cumulative counter reading: its value, the width at which it wraps, and when it was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterReading {
    pub value: u64,
    /// 32 or 64: NVML's field value type says how wide the counter is, hence where it wraps.
    pub bits: u32,
    /// NVML's field timestamp, wall-clock microseconds; `None` when the driver left it at zero
    /// (the reader then times the counter on a clock of its own, and only that one).
    pub at_us: Option<u64>,
}

/// A cumulative counter NVML reports as a field value; [`NvmlSource::counters`] reads several
/// of one GPU in one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Fields 138/139 with scopeId = link: KiB of data over the link since the driver loaded.
    NvlinkKib(u32, Direction),
    /// Fields 197/198: bytes over PCIe since the driver loaded ("can be wrapped").
    PcieBytes(Direction),
}

/// Everything p2ptop asks NVML. GPUs are named by NVML index; links by NVLink number.
pub trait NvmlSource {
    // Host.
    fn driver_version(&self) -> Answer<String>;
    /// CUDA driver API version as NVML encodes it: 1000 × major + 10 × minor (12040 = 12.4).
    fn cuda_driver_version(&self) -> Answer<i32>;
    /// GPUs NVML counts, including ones it cannot open (see [`NvmlSource::reachable`]). A source
    /// always knows: `real::open` refuses an NVML that cannot count its GPUs.
    fn device_count(&self) -> u32;

    // One GPU.
    /// Whether NVML can open the GPU at all; the error says why not (a GPU outside this job's
    /// cgroup answers "Insufficient Permissions", one that fell off the bus "GPU is lost").
    fn reachable(&self, gpu: u32) -> Result<(), Unavailable>;
    fn name(&self, gpu: u32) -> Answer<String>;
    fn uuid(&self, gpu: u32) -> Answer<String>;
    /// As NVML prints it, e.g. `00000000:01:00.0`.
    fn pci_bus_id(&self, gpu: u32) -> Answer<String>;
    fn architecture(&self, gpu: u32) -> Answer<String>;
    fn memory_total_bytes(&self, gpu: u32) -> Answer<u64>;
    /// The configured power limit, milliwatts.
    fn power_limit_mw(&self, gpu: u32) -> Answer<u32>;
    /// The board's default power-management limit, milliwatts.
    fn default_power_limit_mw(&self, gpu: u32) -> Answer<u32>;
    /// CPUs near the GPU as a CPU list, e.g. `0-31,64-95`.
    fn cpu_affinity(&self, gpu: u32) -> Answer<String>;
    /// The NUMA nodes nearest the GPU as a list, e.g. `0` or `0-1` (`topo -m`'s "NUMA
    /// Affinity").
    fn numa_affinity(&self, gpu: u32) -> Answer<String>;
    /// Whether the GPU is in MIG mode now (no peer access then).
    fn mig_enabled(&self, gpu: u32) -> Answer<bool>;
    fn pcie_gen_now(&self, gpu: u32) -> Answer<u32>;
    fn pcie_width_now(&self, gpu: u32) -> Answer<u32>;
    fn pcie_gen_max(&self, gpu: u32) -> Answer<u32>;
    fn pcie_width_max(&self, gpu: u32) -> Answer<u32>;
    fn bar1_total_bytes(&self, gpu: u32) -> Answer<u64>;

    /// Field 91 (`NVML_FI_DEV_NVLINK_LINK_COUNT`): how many NVLinks the GPU has.
    fn nvlink_count(&self, gpu: u32) -> Answer<u32>;

    // One NVLink of a GPU. A link number the GPU lacks gets no answer to `nvlink_is_active`.
    fn nvlink_is_active(&self, gpu: u32, link: u32) -> Answer<bool>;
    /// NVML's `nvmlNvlinkVersion_t` code, not a generation: see `nvml::discover::nvlink_version`.
    fn nvlink_version_code(&self, gpu: u32, link: u32) -> Answer<u32>;
    /// Field `NVML_FI_DEV_NVLINK_GET_SPEED` (164), per direction, MB/s.
    fn nvlink_speed_mb_s(&self, gpu: u32, link: u32) -> Answer<u64>;
    fn nvlink_remote_bus_id(&self, gpu: u32, link: u32) -> Answer<String>;
    fn nvlink_remote_device(&self, gpu: u32, link: u32) -> Answer<RemoteDevice>;
    fn nvlink_error_count(&self, gpu: u32, link: u32, counter: NvLinkError) -> Answer<u64>;

    // Two GPUs.
    fn common_ancestor(&self, a: u32, b: u32) -> Answer<CommonAncestor>;
    /// Whether `a` can access `b`'s memory this way.
    fn p2p_status(&self, a: u32, b: u32, cap: P2pCap) -> Answer<P2pStatus>;

    // Telemetry.
    /// Starts one pass of telemetry reads and returns its time, µs on a clock that only moves
    /// forward. A recording moves on to its next recorded pass here.
    fn begin_sample(&self) -> u64;
    /// The time on the same clock as [`NvmlSource::begin_sample`], without starting a pass.
    fn clock_us(&self) -> u64;
    fn temperature_c(&self, gpu: u32) -> Answer<u32>;
    fn temperature_threshold_c(&self, gpu: u32, which: Threshold) -> Answer<u32>;
    /// Fields 193/194: the threshold on the T.Limit scale, where NVML's header moves thresholds
    /// from Ada on: signed degrees relative to the GPU's thermal limit (0 at the limit, below
    /// zero past it), to be read against [`NvmlSource::margin_temperature_c`].
    fn temperature_limit_c(&self, gpu: u32, which: Threshold) -> Answer<i64>;
    /// `nvmlDeviceGetMarginTemperature`: how far the GPU is below its thermal limit now, °C
    /// (the T.Limit reading).
    fn margin_temperature_c(&self, gpu: u32) -> Answer<i64>;
    fn clock_mhz(&self, gpu: u32, clock: Clock) -> Answer<u32>;
    fn max_clock_mhz(&self, gpu: u32, clock: Clock) -> Answer<u32>;
    fn power_usage_mw(&self, gpu: u32) -> Answer<u32>;
    fn enforced_power_limit_mw(&self, gpu: u32) -> Answer<u32>;
    /// Fan 0, percent of its maximum.
    fn fan_percent(&self, gpu: u32) -> Answer<u32>;
    /// `nvmlClocksEventReasons` bit mask, every bit the driver sets (newer drivers set bits
    /// older headers do not name).
    fn clocks_event_reasons(&self, gpu: u32) -> Answer<u64>;
    /// Reads `counters` of one GPU in one call, each answered on its own.
    fn counters(&self, gpu: u32, counters: &[Counter]) -> Vec<Answer<CounterReading>>;
    /// `nvmlDeviceGetPcieThroughput`: KiB/s over NVML's last 20 ms window (fallback when the
    /// byte counters are missing).
    fn pcie_throughput_kib_s(&self, gpu: u32, dir: Direction) -> Answer<u32>;
    fn pcie_replay_count(&self, gpu: u32) -> Answer<u32>;
}
