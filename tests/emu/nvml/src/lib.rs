//! `libnvidia-ml.so.1` for p2ptop's tests: the NVML entry points `p2ptop` calls (through
//! nvml-wrapper and directly), each handing its arguments to `p2ptop_emu::nvml::api`. Functions
//! not exported here are missing as they are from an old driver; `p2ptop_emu_nvml_calls` tells a
//! benchmark how often each entry point was called.
#![allow(non_snake_case, clippy::missing_safety_doc)]

use nvml_wrapper_sys::bindings::{
    nvmlBAR1Memory_t, nvmlFieldValue_t, nvmlMarginTemperature_t, nvmlMemory_v2_t, nvmlPciInfo_t,
};
use p2ptop_emu::nvml::api as nv;
use std::ffi::{c_char, c_int, c_uint, c_ulong, c_ulonglong, c_void};

type Device = *mut c_void;

#[unsafe(no_mangle)]
pub extern "C" fn nvmlInit_v2() -> c_uint {
    nv::nvml_init()
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlInitWithFlags(_flags: c_uint) -> c_uint {
    nv::nvml_init()
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlShutdown() -> c_uint {
    nv::nvml_shutdown()
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlErrorString(result: c_uint) -> *const c_char {
    nv::nvml_error_string(result)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlSystemGetDriverVersion(
    version: *mut c_char,
    length: c_uint,
) -> c_uint {
    unsafe { nv::system_get_driver_version(version, length) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlSystemGetCudaDriverVersion_v2(version: *mut c_int) -> c_uint {
    unsafe { nv::system_get_cuda_driver_version(version) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCount_v2(count: *mut c_uint) -> c_uint {
    unsafe { nv::device_get_count(count) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetHandleByIndex_v2(
    index: c_uint,
    device: *mut Device,
) -> c_uint {
    unsafe { nv::device_get_handle_by_index(index, device) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetName(
    device: Device,
    name: *mut c_char,
    length: c_uint,
) -> c_uint {
    unsafe { nv::device_get_name(device, name, length) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetUUID(
    device: Device,
    uuid: *mut c_char,
    length: c_uint,
) -> c_uint {
    unsafe { nv::device_get_uuid(device, uuid, length) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPciInfo_v3(
    device: Device,
    pci: *mut nvmlPciInfo_t,
) -> c_uint {
    unsafe { nv::device_get_pci_info(device, pci) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetArchitecture(device: Device, arch: *mut c_uint) -> c_uint {
    unsafe { nv::device_get_architecture(device, arch) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMemoryInfo_v2(
    device: Device,
    memory: *mut nvmlMemory_v2_t,
) -> c_uint {
    unsafe { nv::device_get_memory_info_v2(device, memory) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPowerManagementLimit(
    device: Device,
    limit: *mut c_uint,
) -> c_uint {
    unsafe { nv::device_get_power_management_limit(device, limit) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPowerManagementDefaultLimit(
    device: Device,
    limit: *mut c_uint,
) -> c_uint {
    unsafe { nv::device_get_power_management_default_limit(device, limit) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCpuAffinity(
    device: Device,
    size: c_uint,
    set: *mut c_ulong,
) -> c_uint {
    unsafe { nv::device_get_cpu_affinity(device, size, set) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMemoryAffinity(
    device: Device,
    size: c_uint,
    set: *mut c_ulong,
    scope: c_uint,
) -> c_uint {
    unsafe { nv::device_get_memory_affinity(device, size, set, scope) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCurrPcieLinkGeneration(
    device: Device,
    value: *mut c_uint,
) -> c_uint {
    unsafe { nv::device_get_curr_pcie_link_generation(device, value) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCurrPcieLinkWidth(
    device: Device,
    value: *mut c_uint,
) -> c_uint {
    unsafe { nv::device_get_curr_pcie_link_width(device, value) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMaxPcieLinkGeneration(
    device: Device,
    value: *mut c_uint,
) -> c_uint {
    unsafe { nv::device_get_max_pcie_link_generation(device, value) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMaxPcieLinkWidth(
    device: Device,
    value: *mut c_uint,
) -> c_uint {
    unsafe { nv::device_get_max_pcie_link_width(device, value) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPcieReplayCounter(
    device: Device,
    value: *mut c_uint,
) -> c_uint {
    unsafe { nv::device_get_pcie_replay_counter(device, value) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetBAR1MemoryInfo(
    device: Device,
    bar1: *mut nvmlBAR1Memory_t,
) -> c_uint {
    unsafe { nv::device_get_bar1_memory_info(device, bar1) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetNvLinkState(
    device: Device,
    link: c_uint,
    active: *mut c_uint,
) -> c_uint {
    unsafe { nv::device_get_nvlink_state(device, link, active) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetNvLinkVersion(
    device: Device,
    link: c_uint,
    version: *mut c_uint,
) -> c_uint {
    unsafe { nv::device_get_nvlink_version(device, link, version) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetNvLinkRemotePciInfo_v2(
    device: Device,
    link: c_uint,
    pci: *mut nvmlPciInfo_t,
) -> c_uint {
    unsafe { nv::device_get_nvlink_remote_pci_info(device, link, pci) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetNvLinkRemoteDeviceType(
    device: Device,
    link: c_uint,
    kind: *mut c_uint,
) -> c_uint {
    unsafe { nv::device_get_nvlink_remote_device_type(device, link, kind) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetNvLinkErrorCounter(
    device: Device,
    link: c_uint,
    counter: c_uint,
    value: *mut c_ulonglong,
) -> c_uint {
    unsafe { nv::device_get_nvlink_error_counter(device, link, counter, value) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTopologyCommonAncestor(
    a: Device,
    b: Device,
    path: *mut c_uint,
) -> c_uint {
    unsafe { nv::device_get_topology_common_ancestor(a, b, path) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetP2PStatus(
    a: Device,
    b: Device,
    index: c_uint,
    status: *mut c_uint,
) -> c_uint {
    unsafe { nv::device_get_p2p_status(a, b, index, status) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTemperature(
    device: Device,
    sensor: c_uint,
    temp: *mut c_uint,
) -> c_uint {
    unsafe { nv::device_get_temperature(device, sensor, temp) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTemperatureThreshold(
    device: Device,
    kind: c_uint,
    temp: *mut c_uint,
) -> c_uint {
    unsafe { nv::device_get_temperature_threshold(device, kind, temp) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetClockInfo(
    device: Device,
    clock: c_uint,
    mhz: *mut c_uint,
) -> c_uint {
    unsafe { nv::device_get_clock_info(device, clock, mhz) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMaxClockInfo(
    device: Device,
    clock: c_uint,
    mhz: *mut c_uint,
) -> c_uint {
    unsafe { nv::device_get_max_clock_info(device, clock, mhz) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPowerUsage(device: Device, mw: *mut c_uint) -> c_uint {
    unsafe { nv::device_get_power_usage(device, mw) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetEnforcedPowerLimit(
    device: Device,
    mw: *mut c_uint,
) -> c_uint {
    unsafe { nv::device_get_enforced_power_limit(device, mw) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetFanSpeed_v2(
    device: Device,
    fan: c_uint,
    speed: *mut c_uint,
) -> c_uint {
    unsafe { nv::device_get_fan_speed_v2(device, fan, speed) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCurrentClocksThrottleReasons(
    device: Device,
    reasons: *mut c_ulonglong,
) -> c_uint {
    unsafe {
        nv::device_get_clocks_reasons("nvmlDeviceGetCurrentClocksThrottleReasons", device, reasons)
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCurrentClocksEventReasons(
    device: Device,
    reasons: *mut c_ulonglong,
) -> c_uint {
    unsafe {
        nv::device_get_clocks_reasons("nvmlDeviceGetCurrentClocksEventReasons", device, reasons)
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPcieThroughput(
    device: Device,
    counter: c_uint,
    value: *mut c_uint,
) -> c_uint {
    unsafe { nv::device_get_pcie_throughput(device, counter, value) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMigMode(
    device: Device,
    current: *mut c_uint,
    pending: *mut c_uint,
) -> c_uint {
    unsafe { nv::device_get_mig_mode(device, current, pending) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMarginTemperature(
    device: Device,
    margin: *mut nvmlMarginTemperature_t,
) -> c_uint {
    unsafe { nv::device_get_margin_temperature(device, margin) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetFieldValues(
    device: Device,
    count: c_int,
    values: *mut nvmlFieldValue_t,
) -> c_uint {
    unsafe { nv::device_get_field_values(device, count, values) }
}

/// Not NVML's: every entry point called so far and how often, as `name count` lines, written
/// into `buffer` (NUL-terminated, cut to `length`); returns the full text's length.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn p2ptop_emu_nvml_calls(buffer: *mut c_char, length: usize) -> usize {
    let text = p2ptop_emu::nvml::calls();
    if !buffer.is_null() && length > 0 {
        let n = text.len().min(length - 1);
        // SAFETY: the caller's buffer holds `length` bytes; n + 1 are written.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), buffer as *mut u8, n);
            *buffer.add(n) = 0;
        }
    }
    text.len()
}
