//! [`NvmlSource`] over the real NVML, through nvml-wrapper.
//!
//! `libnvidia-ml.so.1` is loaded when [`open`] is called, not when p2ptop starts, so p2ptop runs
//! on machines without a driver and can say what is missing. Device handles are looked up once,
//! at open. Several calls go around nvml-wrapper, through its raw library: its field-value call
//! always asks for scope 0 (NVLink 0 only) and one field at a time, its NVLink remote-type call
//! never returns what the driver wrote, and it has no MIG-mode, margin-temperature or
//! clocks-event-reasons call that keeps unknown bits.

use super::source::{
    Answer, Clock, CommonAncestor, Counter, CounterReading, Direction, NoAnswer, NvLinkError,
    NvmlSource, P2pCap, RemoteDevice, Threshold,
};
use crate::model::topology::{P2pStatus, Unavailable};
use nvml_wrapper::enum_wrappers::device::{
    Clock as NvClock, P2pCapabilitiesIndex, P2pStatus as NvP2p, PcieUtilCounter, TemperatureSensor,
    TemperatureThreshold, TopologyLevel,
};
use nvml_wrapper::enum_wrappers::nv_link::ErrorCounter;
use nvml_wrapper::error::{NvmlError, nvml_try};
use nvml_wrapper::{Device, Nvml};
use nvml_wrapper_sys::bindings as sys;
use std::ffi::c_ulong;
use std::fmt;
use std::time::Instant;

/// The library NVML lives in; the driver installs it.
pub const NVML_LIBRARY: &str = "libnvidia-ml.so.1";

/// NVML field ids (nvml.h `NVML_FI_DEV_*`).
const FIELD_NVLINK_TX_KIB: u32 = 138;
const FIELD_NVLINK_RX_KIB: u32 = 139;
const FIELD_NVLINK_SPEED_MB_S: u32 = 164;
const FIELD_PCIE_TX_BYTES: u32 = 197;
const FIELD_PCIE_RX_BYTES: u32 = 198;
const FIELD_NVLINK_LINK_COUNT: u32 = 91;
const FIELD_SHUTDOWN_TLIMIT: u32 = 193;
const FIELD_SLOWDOWN_TLIMIT: u32 = 194;

/// Enough words for 4096 CPUs (64-bit `unsigned long`s on the 64-bit Linux NVML ships for).
const CPU_SET_WORDS: usize = 64;
/// Enough for 64 NUMA nodes.
const NODE_SET_WORDS: usize = 1;

/// NVML, loaded and initialised, with every GPU's handle looked up once.
pub struct RealNvml {
    nvml: Nvml,
    /// By NVML index: the handle, or why NVML cannot open the GPU.
    handles: Vec<Result<sys::nvmlDevice_t, Unavailable>>,
    started: Instant,
}

// SAFETY: NVML is thread-safe (nvml.h); a handle is an opaque token valid for the library's
// lifetime, which the struct owns.
unsafe impl Send for RealNvml {}

/// Why NVML could not be used, and what to do instead.
#[derive(Debug)]
pub struct NvmlMissing {
    /// What is missing, in words.
    pub problem: String,
    /// NVML's (or the loader's) own error text.
    pub detail: String,
}

impl fmt::Display for NvmlMissing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}). Run `p2ptop --sim list` to explore a simulated machine instead.",
            self.problem, self.detail
        )
    }
}

impl std::error::Error for NvmlMissing {}

/// Loads and initialises NVML and opens every GPU it counts.
pub fn open() -> Result<RealNvml, NvmlMissing> {
    let nvml = Nvml::init().map_err(missing)?;
    let count = nvml.device_count().map_err(|err| NvmlMissing {
        problem: "NVML started but could not count the GPUs".into(),
        detail: err.to_string(),
    })?;
    let handles = (0..count)
        .map(|index| {
            nvml.device_by_index(index)
                // SAFETY: the handle is only used with the `Nvml` it came from.
                .map(|device| unsafe { device.handle() })
                .map_err(|err| Unavailable {
                    lost: matches!(err, NvmlError::GpuLost),
                    reason: err.to_string(),
                })
        })
        .collect();
    Ok(RealNvml {
        nvml,
        handles,
        started: Instant::now(),
    })
}

fn missing(err: NvmlError) -> NvmlMissing {
    let problem = match err {
        NvmlError::LibloadingError(_) => format!(
            "{NVML_LIBRARY} not found: the NVIDIA driver is not installed here, or its library \
             is not on the loader's path"
        ),
        NvmlError::DriverNotLoaded => {
            "the NVIDIA driver is not loaded (no GPU, or the kernel module is missing)".into()
        }
        NvmlError::NoPermission => "no permission to talk to the NVIDIA driver".into(),
        NvmlError::FailedToLoadSymbol(_) => {
            format!("{NVML_LIBRARY} is too old: it lacks a function NVML needs")
        }
        _ => "NVML failed to start".into(),
    };
    NvmlMissing {
        problem,
        detail: err.to_string(),
    }
}

fn no(err: NvmlError) -> NoAnswer {
    NoAnswer(err.to_string())
}

/// A CPU set (NVML's words, lowest bit first) as a list: `0-31,64-95`.
pub fn cpu_list(words: &[c_ulong]) -> String {
    let width = u64::from(c_ulong::BITS);
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    let set = words.iter().enumerate().flat_map(|(w, &word)| {
        (0..width)
            .filter(move |bit| word >> bit & 1 == 1)
            .map(move |bit| w as u64 * width + bit)
    });
    for cpu in set {
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == cpu => *end = cpu,
            _ => ranges.push((cpu, cpu)),
        }
    }
    let text: Vec<String> = ranges
        .iter()
        .map(|&(start, end)| match start == end {
            true => start.to_string(),
            false => format!("{start}-{end}"),
        })
        .collect();
    text.join(",")
}

/// A field value as a number: unsigned ones with the width at which they wrap, signed ones
/// as they are.
enum FieldNumber {
    Unsigned(u64, u32),
    Signed(i64),
}

fn field_number(value: &sys::nvmlFieldValue_t) -> Answer<FieldNumber> {
    nvml_try(value.nvmlReturn).map_err(no)?;
    // SAFETY: NVML wrote the union member that `valueType` names.
    unsafe {
        Ok(match value.valueType {
            sys::nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_INT => {
                FieldNumber::Unsigned(u64::from(value.value.uiVal), 32)
            }
            sys::nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_LONG => {
                FieldNumber::Unsigned(value.value.ulVal, 64)
            }
            sys::nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_LONG_LONG => {
                FieldNumber::Unsigned(value.value.ullVal, 64)
            }
            sys::nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_SHORT => {
                FieldNumber::Unsigned(u64::from(value.value.usVal), 16)
            }
            sys::nvmlValueType_enum_NVML_VALUE_TYPE_SIGNED_LONG_LONG => {
                FieldNumber::Signed(value.value.sllVal)
            }
            sys::nvmlValueType_enum_NVML_VALUE_TYPE_SIGNED_INT => {
                FieldNumber::Signed(i64::from(value.value.siVal))
            }
            other => return Err(NoAnswer(format!("field value of type {other}"))),
        })
    }
}

/// A field value as a counter: its width comes from NVML's value type.
fn field_counter(value: &sys::nvmlFieldValue_t) -> Answer<CounterReading> {
    let (number, bits) = match field_number(value)? {
        FieldNumber::Unsigned(n, bits) => (n, bits),
        FieldNumber::Signed(n) => (
            u64::try_from(n).map_err(|_| NoAnswer(format!("negative count {n}")))?,
            64,
        ),
    };
    Ok(CounterReading {
        value: number,
        bits,
        at_us: u64::try_from(value.timestamp).ok().filter(|&t| t > 0),
    })
}

/// The field and scope of a counter.
fn field_of(counter: Counter) -> (u32, u32) {
    match counter {
        Counter::NvlinkKib(link, Direction::Tx) => (FIELD_NVLINK_TX_KIB, link),
        Counter::NvlinkKib(link, Direction::Rx) => (FIELD_NVLINK_RX_KIB, link),
        Counter::PcieBytes(Direction::Tx) => (FIELD_PCIE_TX_BYTES, 0),
        Counter::PcieBytes(Direction::Rx) => (FIELD_PCIE_RX_BYTES, 0),
    }
}

impl RealNvml {
    fn handle(&self, gpu: u32) -> Answer<sys::nvmlDevice_t> {
        match self.handles.get(gpu as usize) {
            Some(Ok(handle)) => Ok(*handle),
            Some(Err(why)) => Err(NoAnswer(why.reason.clone())),
            None => Err(NoAnswer(format!("there is no GPU {gpu}"))),
        }
    }

    fn device(&self, gpu: u32) -> Answer<Device<'_>> {
        // SAFETY: the handle came from this `Nvml`, which outlives the `Device`.
        Ok(unsafe { Device::new(self.handle(gpu)?, &self.nvml) })
    }

    /// Field values for `(field id, scope id)` requests of one GPU, in one call.
    fn fields(&self, gpu: u32, requests: &[(u32, u32)]) -> Answer<Vec<sys::nvmlFieldValue_t>> {
        let handle = self.handle(gpu)?;
        let call = self
            .nvml
            .lib()
            .nvmlDeviceGetFieldValues
            .as_ref()
            .map_err(|e| NoAnswer(e.to_string()))?;
        let mut values: Vec<sys::nvmlFieldValue_t> = requests
            .iter()
            .map(|&(field, scope)| {
                // SAFETY: a zeroed nvmlFieldValue_t is valid (integers and a union of numbers).
                let mut value: sys::nvmlFieldValue_t = unsafe { std::mem::zeroed() };
                value.fieldId = field;
                value.scopeId = scope;
                value
            })
            .collect();
        // SAFETY: NVML fills the `values.len()` values we pass, through a live handle.
        nvml_try(unsafe { call(handle, values.len() as i32, values.as_mut_ptr()) }).map_err(no)?;
        Ok(values)
    }

    /// One field's number.
    fn field(&self, gpu: u32, field: u32, scope: u32) -> Answer<FieldNumber> {
        field_number(&self.fields(gpu, &[(field, scope)])?[0])
    }

    fn nvlink_counter(&self, gpu: u32, link: u32, counter: ErrorCounter) -> Answer<u64> {
        let device = self.device(gpu)?;
        device
            .link_wrapper_for(link)
            .error_counter(counter)
            .map_err(no)
    }

    /// A raw call that answers one `u64` through a live handle (`Err` when the library lacks
    /// the symbol).
    fn raw_u64<E: fmt::Display>(
        &self,
        gpu: u32,
        call: Result<&unsafe extern "C" fn(sys::nvmlDevice_t, *mut u64) -> sys::nvmlReturn_t, E>,
    ) -> Answer<u64> {
        let handle = self.handle(gpu)?;
        let call = call.map_err(|e| NoAnswer(e.to_string()))?;
        let mut value = 0u64;
        // SAFETY: NVML writes one u64 through the pointer; the handle is live.
        nvml_try(unsafe { call(handle, &mut value) }).map_err(no)?;
        Ok(value)
    }
}

impl NvmlSource for RealNvml {
    fn driver_version(&self) -> Answer<String> {
        self.nvml.sys_driver_version().map_err(no)
    }

    fn cuda_driver_version(&self) -> Answer<i32> {
        self.nvml.sys_cuda_driver_version().map_err(no)
    }

    fn device_count(&self) -> u32 {
        // NVML counts in an unsigned int.
        self.handles.len() as u32
    }

    fn reachable(&self, gpu: u32) -> Result<(), Unavailable> {
        match self.handles.get(gpu as usize) {
            Some(Ok(_)) => Ok(()),
            Some(Err(why)) => Err(why.clone()),
            None => Err(Unavailable {
                lost: false,
                reason: format!("there is no GPU {gpu}"),
            }),
        }
    }

    fn name(&self, gpu: u32) -> Answer<String> {
        self.device(gpu)?.name().map_err(no)
    }

    fn uuid(&self, gpu: u32) -> Answer<String> {
        self.device(gpu)?.uuid().map_err(no)
    }

    fn pci_bus_id(&self, gpu: u32) -> Answer<String> {
        Ok(self.device(gpu)?.pci_info().map_err(no)?.bus_id)
    }

    fn architecture(&self, gpu: u32) -> Answer<String> {
        Ok(self.device(gpu)?.architecture().map_err(no)?.to_string())
    }

    fn memory_total_bytes(&self, gpu: u32) -> Answer<u64> {
        Ok(self.device(gpu)?.memory_info().map_err(no)?.total)
    }

    fn power_limit_mw(&self, gpu: u32) -> Answer<u32> {
        self.device(gpu)?.power_management_limit().map_err(no)
    }

    fn default_power_limit_mw(&self, gpu: u32) -> Answer<u32> {
        self.device(gpu)?
            .power_management_limit_default()
            .map_err(no)
    }

    fn cpu_affinity(&self, gpu: u32) -> Answer<String> {
        let words = self.device(gpu)?.cpu_affinity(CPU_SET_WORDS).map_err(no)?;
        Ok(cpu_list(&words))
    }

    fn numa_affinity(&self, gpu: u32) -> Answer<String> {
        let nodes = self
            .device(gpu)?
            .memory_affinity(NODE_SET_WORDS, sys::NVML_AFFINITY_SCOPE_NODE)
            .map_err(no)?;
        match cpu_list(&nodes) {
            list if list.is_empty() => Err(NoAnswer("no NUMA node near this GPU".into())),
            list => Ok(list),
        }
    }

    fn mig_enabled(&self, gpu: u32) -> Answer<bool> {
        let handle = self.handle(gpu)?;
        let call = self
            .nvml
            .lib()
            .nvmlDeviceGetMigMode
            .as_ref()
            .map_err(|e| NoAnswer(e.to_string()))?;
        let (mut current, mut pending) = (0u32, 0u32);
        // SAFETY: NVML writes two unsigned ints through the pointers; the handle is live.
        nvml_try(unsafe { call(handle, &mut current, &mut pending) }).map_err(no)?;
        Ok(current == sys::NVML_DEVICE_MIG_ENABLE)
    }

    fn pcie_gen_now(&self, gpu: u32) -> Answer<u32> {
        self.device(gpu)?.current_pcie_link_gen().map_err(no)
    }

    fn pcie_width_now(&self, gpu: u32) -> Answer<u32> {
        self.device(gpu)?.current_pcie_link_width().map_err(no)
    }

    fn pcie_gen_max(&self, gpu: u32) -> Answer<u32> {
        self.device(gpu)?.max_pcie_link_gen().map_err(no)
    }

    fn pcie_width_max(&self, gpu: u32) -> Answer<u32> {
        self.device(gpu)?.max_pcie_link_width().map_err(no)
    }

    fn bar1_total_bytes(&self, gpu: u32) -> Answer<u64> {
        Ok(self.device(gpu)?.bar1_memory_info().map_err(no)?.total)
    }

    fn nvlink_count(&self, gpu: u32) -> Answer<u32> {
        match self.field(gpu, FIELD_NVLINK_LINK_COUNT, 0)? {
            FieldNumber::Unsigned(n, _) => u32::try_from(n).map_err(|e| NoAnswer(e.to_string())),
            FieldNumber::Signed(n) => u32::try_from(n).map_err(|e| NoAnswer(e.to_string())),
        }
    }

    fn nvlink_is_active(&self, gpu: u32, link: u32) -> Answer<bool> {
        let device = self.device(gpu)?;
        device.link_wrapper_for(link).is_active().map_err(no)
    }

    fn nvlink_version_code(&self, gpu: u32, link: u32) -> Answer<u32> {
        let device = self.device(gpu)?;
        device.link_wrapper_for(link).version().map_err(no)
    }

    fn nvlink_speed_mb_s(&self, gpu: u32, link: u32) -> Answer<u64> {
        match self.field(gpu, FIELD_NVLINK_SPEED_MB_S, link)? {
            FieldNumber::Unsigned(n, _) => Ok(n),
            FieldNumber::Signed(n) => u64::try_from(n).map_err(|e| NoAnswer(e.to_string())),
        }
    }

    fn nvlink_remote_bus_id(&self, gpu: u32, link: u32) -> Answer<String> {
        let device = self.device(gpu)?;
        let info = device
            .link_wrapper_for(link)
            .remote_pci_info()
            .map_err(no)?;
        Ok(info.bus_id)
    }

    fn nvlink_remote_device(&self, gpu: u32, link: u32) -> Answer<RemoteDevice> {
        let handle = self.handle(gpu)?;
        let call = self
            .nvml
            .lib()
            .nvmlDeviceGetNvLinkRemoteDeviceType
            .as_ref()
            .map_err(|e| NoAnswer(e.to_string()))?;
        let mut kind: sys::nvmlIntNvLinkDeviceType_t =
            sys::nvmlIntNvLinkDeviceType_enum_NVML_NVLINK_DEVICE_TYPE_UNKNOWN;
        // SAFETY: NVML writes one enum value through the pointer; the handle is live.
        nvml_try(unsafe { call(handle, link, &mut kind) }).map_err(no)?;
        Ok(match kind {
            sys::nvmlIntNvLinkDeviceType_enum_NVML_NVLINK_DEVICE_TYPE_GPU => RemoteDevice::Gpu,
            sys::nvmlIntNvLinkDeviceType_enum_NVML_NVLINK_DEVICE_TYPE_IBMNPU => {
                RemoteDevice::IbmNpu
            }
            sys::nvmlIntNvLinkDeviceType_enum_NVML_NVLINK_DEVICE_TYPE_SWITCH => {
                RemoteDevice::Switch
            }
            _ => RemoteDevice::Unknown,
        })
    }

    fn nvlink_error_count(&self, gpu: u32, link: u32, counter: NvLinkError) -> Answer<u64> {
        let counter = match counter {
            NvLinkError::Replay => ErrorCounter::DlReplay,
            NvLinkError::Recovery => ErrorCounter::DlRecovery,
            NvLinkError::CrcFlit => ErrorCounter::DlCrcFlit,
            NvLinkError::CrcData => ErrorCounter::DlCrcData,
        };
        self.nvlink_counter(gpu, link, counter)
    }

    fn common_ancestor(&self, a: u32, b: u32) -> Answer<CommonAncestor> {
        let (a, b) = (self.device(a)?, self.device(b)?);
        Ok(match a.topology_common_ancestor(b).map_err(no)? {
            TopologyLevel::Internal => CommonAncestor::Internal,
            TopologyLevel::Single => CommonAncestor::Single,
            TopologyLevel::Multiple => CommonAncestor::Multiple,
            TopologyLevel::HostBridge => CommonAncestor::HostBridge,
            TopologyLevel::Node => CommonAncestor::Node,
            TopologyLevel::System => CommonAncestor::System,
        })
    }

    fn p2p_status(&self, a: u32, b: u32, cap: P2pCap) -> Answer<P2pStatus> {
        let (a, b) = (self.device(a)?, self.device(b)?);
        let index = match cap {
            P2pCap::Read => P2pCapabilitiesIndex::Read,
            P2pCap::Write => P2pCapabilitiesIndex::Write,
            P2pCap::Nvlink => P2pCapabilitiesIndex::NvLink,
            P2pCap::Atomics => P2pCapabilitiesIndex::Atomics,
        };
        Ok(match a.p2p_status(&b, index).map_err(no)? {
            NvP2p::Ok => P2pStatus::Ok,
            NvP2p::ChipsetNotSupported => P2pStatus::Cns,
            NvP2p::GpuNotSupported => P2pStatus::Gns,
            NvP2p::IohTopologyNotSupported => P2pStatus::Tns,
            NvP2p::DisabledByRegkey => P2pStatus::Dr,
            NvP2p::NotSupported => P2pStatus::Ns,
            NvP2p::Unknown => P2pStatus::U,
        })
    }

    fn begin_sample(&self) -> u64 {
        self.clock_us()
    }

    fn clock_us(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn temperature_c(&self, gpu: u32) -> Answer<u32> {
        self.device(gpu)?
            .temperature(TemperatureSensor::Gpu)
            .map_err(no)
    }

    fn temperature_threshold_c(&self, gpu: u32, which: Threshold) -> Answer<u32> {
        let which = match which {
            Threshold::Slowdown => TemperatureThreshold::Slowdown,
            Threshold::Shutdown => TemperatureThreshold::Shutdown,
        };
        self.device(gpu)?.temperature_threshold(which).map_err(no)
    }

    fn temperature_limit_c(&self, gpu: u32, which: Threshold) -> Answer<i64> {
        let field = match which {
            Threshold::Slowdown => FIELD_SLOWDOWN_TLIMIT,
            Threshold::Shutdown => FIELD_SHUTDOWN_TLIMIT,
        };
        match self.field(gpu, field, 0)? {
            FieldNumber::Signed(n) => Ok(n),
            // An unsigned type here would be a driver bug; its bits are still the signed value.
            FieldNumber::Unsigned(n, bits) => Ok(sign_extend(n, bits)),
        }
    }

    fn margin_temperature_c(&self, gpu: u32) -> Answer<i64> {
        let handle = self.handle(gpu)?;
        let call = self
            .nvml
            .lib()
            .nvmlDeviceGetMarginTemperature
            .as_ref()
            .map_err(|e| NoAnswer(e.to_string()))?;
        let mut margin = sys::nvmlMarginTemperature_t {
            // NVML_STRUCT_VERSION(MarginTemperature, 1), as nvml.h defines it.
            version: (std::mem::size_of::<sys::nvmlMarginTemperature_t>() | (1 << 24)) as u32,
            marginTemperature: 0,
        };
        // SAFETY: NVML fills the versioned struct; the handle is live.
        nvml_try(unsafe { call(handle, &mut margin) }).map_err(no)?;
        Ok(i64::from(margin.marginTemperature))
    }

    fn clock_mhz(&self, gpu: u32, clock: Clock) -> Answer<u32> {
        self.device(gpu)?.clock_info(nv_clock(clock)).map_err(no)
    }

    fn max_clock_mhz(&self, gpu: u32, clock: Clock) -> Answer<u32> {
        self.device(gpu)?
            .max_clock_info(nv_clock(clock))
            .map_err(no)
    }

    fn power_usage_mw(&self, gpu: u32) -> Answer<u32> {
        self.device(gpu)?.power_usage().map_err(no)
    }

    fn enforced_power_limit_mw(&self, gpu: u32) -> Answer<u32> {
        self.device(gpu)?.enforced_power_limit().map_err(no)
    }

    fn fan_percent(&self, gpu: u32) -> Answer<u32> {
        self.device(gpu)?.fan_speed(0).map_err(no)
    }

    fn clocks_event_reasons(&self, gpu: u32) -> Answer<u64> {
        // The current call first; drivers before R535 only have the deprecated one. Both raw:
        // nvml-wrapper's bitflags would drop bits its headers do not name.
        let lib = self.nvml.lib();
        match self.raw_u64(gpu, lib.nvmlDeviceGetCurrentClocksEventReasons.as_ref()) {
            Ok(bits) => Ok(bits),
            Err(_) => self.raw_u64(gpu, lib.nvmlDeviceGetCurrentClocksThrottleReasons.as_ref()),
        }
    }

    fn counters(&self, gpu: u32, counters: &[Counter]) -> Vec<Answer<CounterReading>> {
        let requests: Vec<(u32, u32)> = counters.iter().map(|&c| field_of(c)).collect();
        match self.fields(gpu, &requests) {
            Ok(values) => values.iter().map(field_counter).collect(),
            Err(why) => counters.iter().map(|_| Err(why.clone())).collect(),
        }
    }

    fn pcie_throughput_kib_s(&self, gpu: u32, dir: Direction) -> Answer<u32> {
        let counter = match dir {
            Direction::Tx => PcieUtilCounter::Send,
            Direction::Rx => PcieUtilCounter::Receive,
        };
        self.device(gpu)?.pcie_throughput(counter).map_err(no)
    }

    fn pcie_replay_count(&self, gpu: u32) -> Answer<u32> {
        self.device(gpu)?.pcie_replay_counter().map_err(no)
    }
}

/// The signed value of the low `bits` bits of `n`.
fn sign_extend(n: u64, bits: u32) -> i64 {
    let shift = 64 - bits.clamp(1, 64);
    ((n << shift) as i64) >> shift
}

fn nv_clock(clock: Clock) -> NvClock {
    match clock {
        Clock::Sm => NvClock::SM,
        Clock::Memory => NvClock::Memory,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_sets_print_as_lists() {
        assert_eq!(cpu_list(&[0xffff_ffff, 0xffff_ffff]), "0-31,64-95");
        assert_eq!(cpu_list(&[0b1011]), "0-1,3");
        assert_eq!(cpu_list(&[0, 1]), "64");
        assert_eq!(cpu_list(&[u64::MAX, 1]), "0-64");
        assert_eq!(cpu_list(&[0]), "");
    }

    /// Whether the loader finds NVML's library for this process, as `open` looks for it
    /// (wherever the distribution or container put it).
    fn nvml_installed() -> bool {
        let name = std::ffi::CString::new(NVML_LIBRARY).expect("no NUL in the name");
        // SAFETY: dlopen with a NUL-terminated name that outlives the call; the handle is
        // only closed.
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return false;
        }
        // SAFETY: a handle dlopen returned, closed once.
        unsafe { libc::dlclose(handle) };
        true
    }

    #[test]
    fn open_says_what_is_missing_and_how_to_go_on() {
        match open() {
            Err(missing) => {
                let text = missing.to_string();
                assert!(text.contains("p2ptop --sim list"), "{text}");
                if nvml_installed() {
                    // The library is there, so the driver behind it is what is missing.
                    assert!(!text.contains("not found"), "{text}");
                } else {
                    assert!(text.contains("libnvidia-ml.so.1 not found"), "{text}");
                }
            }
            Ok(nvml) => assert!(nvml.driver_version().is_ok()),
        }
    }
}
