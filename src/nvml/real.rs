//! [`NvmlSource`] over the real NVML, through nvml-wrapper.
//!
//! `libnvidia-ml.so.1` is loaded when [`open`] is called, not when p2ptop starts, so p2ptop runs
//! on machines without a driver and can say what is missing. Two calls go around nvml-wrapper:
//! its field-value call always asks for scope 0 (NVLink 0 only), and its NVLink remote-type call
//! never returns what the driver wrote.

use super::source::{
    Answer, Clock, CommonAncestor, CounterReading, Direction, NoAnswer, NvLinkError, NvmlSource,
    P2pCap, RemoteDevice, Threshold,
};
use crate::model::topology::P2pStatus;
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

/// Enough words for 4096 CPUs (64-bit `unsigned long`s on the 64-bit Linux NVML ships for).
const CPU_SET_WORDS: usize = 64;
/// Enough for 64 NUMA nodes.
const NODE_SET_WORDS: usize = 1;

/// NVML, loaded and initialised.
pub struct RealNvml {
    nvml: Nvml,
    started: Instant,
}

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

/// Loads and initialises NVML.
pub fn open() -> Result<RealNvml, NvmlMissing> {
    match Nvml::init() {
        Ok(nvml) => Ok(RealNvml {
            nvml,
            started: Instant::now(),
        }),
        Err(err) => Err(missing(err)),
    }
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

/// A field value as a counter: its width comes from NVML's value type.
fn field_counter(value: &sys::nvmlFieldValue_t) -> Answer<CounterReading> {
    nvml_try(value.nvmlReturn).map_err(no)?;
    // SAFETY: NVML wrote the union member that `valueType` names.
    let (number, bits) = unsafe {
        match value.valueType {
            sys::nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_INT => {
                (u64::from(value.value.uiVal), 32)
            }
            sys::nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_LONG => (value.value.ulVal, 64),
            sys::nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_LONG_LONG => (value.value.ullVal, 64),
            sys::nvmlValueType_enum_NVML_VALUE_TYPE_SIGNED_LONG_LONG => {
                let v = value.value.sllVal;
                (
                    u64::try_from(v).map_err(|_| NoAnswer(format!("negative count {v}")))?,
                    64,
                )
            }
            sys::nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_SHORT => {
                (u64::from(value.value.usVal), 16)
            }
            other => return Err(NoAnswer(format!("field value of type {other}"))),
        }
    };
    Ok(CounterReading {
        value: number,
        bits,
        at_us: u64::try_from(value.timestamp).unwrap_or(0),
    })
}

impl RealNvml {
    fn device(&self, gpu: u32) -> Answer<Device<'_>> {
        self.nvml.device_by_index(gpu).map_err(no)
    }

    /// One field value for one scope (an NVLink number for per-link fields).
    fn field(&self, gpu: u32, field_id: u32, scope: u32) -> Answer<CounterReading> {
        let device = self.device(gpu)?;
        let call = self
            .nvml
            .lib()
            .nvmlDeviceGetFieldValues
            .as_ref()
            .map_err(|e| NoAnswer(e.to_string()))?;
        // SAFETY: a zeroed nvmlFieldValue_t is valid (plain integers and a union of numbers);
        // NVML fills the one value we pass, through a handle that lives as long as `device`.
        let mut value: sys::nvmlFieldValue_t = unsafe { std::mem::zeroed() };
        value.fieldId = field_id;
        value.scopeId = scope;
        nvml_try(unsafe { call(device.handle(), 1, &mut value) }).map_err(no)?;
        let mut reading = field_counter(&value)?;
        if reading.at_us == 0 {
            reading.at_us = self.begin_sample();
        }
        Ok(reading)
    }

    fn nvlink_counter(&self, gpu: u32, link: u32, counter: ErrorCounter) -> Answer<u64> {
        let device = self.device(gpu)?;
        device
            .link_wrapper_for(link)
            .error_counter(counter)
            .map_err(no)
    }
}

impl NvmlSource for RealNvml {
    fn driver_version(&self) -> Answer<String> {
        self.nvml.sys_driver_version().map_err(no)
    }

    fn cuda_driver_version(&self) -> Answer<i32> {
        self.nvml.sys_cuda_driver_version().map_err(no)
    }

    fn device_count(&self) -> Answer<u32> {
        self.nvml.device_count().map_err(no)
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

    fn numa_node(&self, gpu: u32) -> Answer<u32> {
        let nodes = self
            .device(gpu)?
            .memory_affinity(NODE_SET_WORDS, sys::NVML_AFFINITY_SCOPE_NODE)
            .map_err(no)?;
        match nodes.first().map(|word| word.trailing_zeros()) {
            Some(node) if node < c_ulong::BITS => Ok(node),
            _ => Err(NoAnswer("no NUMA node near this GPU".into())),
        }
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

    fn nvlink_is_active(&self, gpu: u32, link: u32) -> Answer<bool> {
        let device = self.device(gpu)?;
        device.link_wrapper_for(link).is_active().map_err(no)
    }

    fn nvlink_version_code(&self, gpu: u32, link: u32) -> Answer<u32> {
        let device = self.device(gpu)?;
        device.link_wrapper_for(link).version().map_err(no)
    }

    fn nvlink_speed_mb_s(&self, gpu: u32, link: u32) -> Answer<u64> {
        Ok(self.field(gpu, FIELD_NVLINK_SPEED_MB_S, link)?.value)
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
        let device = self.device(gpu)?;
        let call = self
            .nvml
            .lib()
            .nvmlDeviceGetNvLinkRemoteDeviceType
            .as_ref()
            .map_err(|e| NoAnswer(e.to_string()))?;
        let mut kind: sys::nvmlIntNvLinkDeviceType_t =
            sys::nvmlIntNvLinkDeviceType_enum_NVML_NVLINK_DEVICE_TYPE_UNKNOWN;
        // SAFETY: NVML writes one enum value through the pointer; the handle outlives the call.
        nvml_try(unsafe { call(device.handle(), link, &mut kind) }).map_err(no)?;
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
        Ok(self
            .device(gpu)?
            .current_throttle_reasons()
            .map_err(no)?
            .bits())
    }

    fn pcie_bytes(&self, gpu: u32, dir: Direction) -> Answer<CounterReading> {
        let field = match dir {
            Direction::Tx => FIELD_PCIE_TX_BYTES,
            Direction::Rx => FIELD_PCIE_RX_BYTES,
        };
        self.field(gpu, field, 0)
    }

    fn pcie_throughput_kib_s(&self, gpu: u32, dir: Direction) -> Answer<u32> {
        let counter = match dir {
            Direction::Tx => PcieUtilCounter::Send,
            Direction::Rx => PcieUtilCounter::Receive,
        };
        self.device(gpu)?.pcie_throughput(counter).map_err(no)
    }

    fn nvlink_kib(&self, gpu: u32, link: u32, dir: Direction) -> Answer<CounterReading> {
        let field = match dir {
            Direction::Tx => FIELD_NVLINK_TX_KIB,
            Direction::Rx => FIELD_NVLINK_RX_KIB,
        };
        self.field(gpu, field, link)
    }

    fn pcie_replay_count(&self, gpu: u32) -> Answer<u32> {
        self.device(gpu)?.pcie_replay_counter().map_err(no)
    }
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
    use std::path::Path;

    #[test]
    fn cpu_sets_print_as_lists() {
        assert_eq!(cpu_list(&[0xffff_ffff, 0xffff_ffff]), "0-31,64-95");
        assert_eq!(cpu_list(&[0b1011]), "0-1,3");
        assert_eq!(cpu_list(&[0, 1]), "64");
        assert_eq!(cpu_list(&[u64::MAX, 1]), "0-64");
        assert_eq!(cpu_list(&[0]), "");
    }

    /// Where distributions put the driver's NVML library.
    fn nvml_installed() -> bool {
        [
            "/usr/lib/x86_64-linux-gnu",
            "/usr/lib64",
            "/usr/lib",
            "/usr/lib/aarch64-linux-gnu",
        ]
        .iter()
        .any(|dir| Path::new(dir).join(NVML_LIBRARY).exists())
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
