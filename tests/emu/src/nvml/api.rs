//! NVML's calls, with the C signatures `p2ptop-emu-nvml` exports them under.

use super::codes::{self, field, level, remote, value_type};
use super::{Nvml, Unreachable, count, nvml};
use crate::log;
use nvml_wrapper_sys::bindings::{
    nvmlBAR1Memory_t, nvmlFieldValue_t, nvmlMarginTemperature_t, nvmlMemory_v2_t, nvmlPciInfo_t,
};
use p2ptop::model::topology::{LinkType, NvLinkRemote, P2pStatus};
use std::ffi::{c_char, c_int, c_uint, c_ulong, c_ulonglong, c_void};

type Device = *mut c_void;
type Result<T> = std::result::Result<T, u32>;

const HANDLE_BASE: usize = 0x4E56_4D4C_0000;
const HANDLE_STRIDE: usize = 64;
/// PCI device ids by model, as real boards report them (vendor 0x10DE in the low half).
const PCI_VENDOR_NVIDIA: u32 = 0x10DE;

fn call(name: &'static str, body: impl FnOnce() -> Result<()>) -> u32 {
    count(name);
    if let Some(code) = crate::config::refusal(name) {
        log::fault(name, "refused, as P2PTOP_EMU_REFUSE asks");
        return code.map_or(codes::FUNCTION_NOT_FOUND, |c| c as u32);
    }
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(Ok(())) => codes::SUCCESS,
        Ok(Err(code)) => code,
        Err(_) => {
            log::misuse(name, "the emulation failed (a panic); this is its bug");
            codes::UNKNOWN
        }
    }
}

fn misuse(name: &str, code: u32, message: impl AsRef<str>) -> u32 {
    log::misuse(name, message.as_ref());
    code
}

/// Checks a versioned struct's `version`, its first field, against what nvml.h's
/// `NVML_STRUCT_VERSION(T, v)` makes of it: the struct's size with `v` in the top byte.
///
/// # Safety
/// `ptr` is null or valid for a read of `T`, whose first field is a `c_uint`.
unsafe fn check_version<T>(name: &str, ptr: *const T, v: usize) -> Result<()> {
    if ptr.is_null() {
        return Err(misuse(name, codes::INVALID_ARGUMENT, "a null out-pointer"));
    }
    let expected = (std::mem::size_of::<T>() | (v << 24)) as c_uint;
    // SAFETY: the caller vouches for the struct and its first field.
    let version = unsafe { ptr.cast::<c_uint>().read_unaligned() };
    if version != expected {
        return Err(misuse(
            name,
            codes::ARGUMENT_VERSION_MISMATCH,
            format!("version {version:#x}, expected {expected:#x}"),
        ));
    }
    Ok(())
}

/// # Safety
/// `ptr` is null or valid for a write of `T`.
unsafe fn put<T>(name: &str, ptr: *mut T, value: T) -> Result<()> {
    if ptr.is_null() {
        return Err(misuse(name, codes::INVALID_ARGUMENT, "a null out-pointer"));
    }
    // SAFETY: the caller vouches for non-null pointers.
    unsafe { ptr.write_unaligned(value) };
    Ok(())
}

/// # Safety
/// `buffer` is valid for `len` bytes.
unsafe fn put_string(name: &str, buffer: *mut c_char, len: c_uint, text: &str) -> Result<()> {
    if buffer.is_null() {
        return Err(misuse(name, codes::INVALID_ARGUMENT, "a null buffer"));
    }
    if text.len() + 1 > len as usize {
        return Err(codes::INSUFFICIENT_SIZE);
    }
    // SAFETY: text.len() + 1 <= len bytes are written.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buffer as *mut u8, text.len());
        *buffer.add(text.len()) = 0;
    }
    Ok(())
}

fn handle(gpu: u32) -> Device {
    (HANDLE_BASE + (gpu as usize + 1) * HANDLE_STRIDE) as Device
}

/// The library and the GPU a handle names, if NVML can reach it.
fn device(name: &str, d: Device) -> Result<(&'static Nvml, u32)> {
    let nvml = nvml()?;
    let offset = (d as usize).saturating_sub(HANDLE_BASE);
    let index = offset / HANDLE_STRIDE;
    if offset == 0 || !offset.is_multiple_of(HANDLE_STRIDE) || index > nvml.machine.gpus.len() {
        return Err(misuse(
            name,
            codes::INVALID_ARGUMENT,
            format!("{d:?} is not a device handle"),
        ));
    }
    let gpu = (index - 1) as u32;
    match nvml.unreachable(gpu) {
        Some(Unreachable::Lost) => Err(codes::GPU_IS_LOST),
        Some(Unreachable::NoPermission) => Err(codes::NO_PERMISSION),
        None => Ok((nvml, gpu)),
    }
}

fn supported(nvml: &Nvml, gpu: u32, reading: &str) -> Result<()> {
    if nvml.supports(gpu, reading) {
        Ok(())
    } else {
        Err(codes::NOT_SUPPORTED)
    }
}

/// NVML's spelling of a bus id: an 8-digit domain, upper case (`00000000:1B:00.0`).
fn nvml_bus_id(id: &str) -> String {
    let id = id.to_ascii_uppercase();
    match id.split_once(':') {
        Some((domain, rest)) => match u32::from_str_radix(domain, 16) {
            Ok(domain) => format!("{domain:08X}:{rest}"),
            Err(_) => id,
        },
        None => id,
    }
}

fn pci_info(bus_id: &str, device_id: u32) -> nvmlPciInfo_t {
    // SAFETY: a zeroed nvmlPciInfo_t is valid (integers and character arrays).
    let mut info: nvmlPciInfo_t = unsafe { std::mem::zeroed() };
    let long = nvml_bus_id(bus_id);
    let legacy = long.strip_prefix("0000").unwrap_or(&long).to_owned();
    for (dst, text) in [
        (&mut info.busId[..], &long),
        (&mut info.busIdLegacy[..], &legacy),
    ] {
        for (d, b) in dst.iter_mut().zip(text.bytes()) {
            *d = b as c_char;
        }
    }
    let parts: Vec<u32> = long
        .split([':', '.'])
        .map(|p| u32::from_str_radix(p, 16).unwrap_or(0))
        .collect();
    info.domain = parts.first().copied().unwrap_or(0);
    info.bus = parts.get(1).copied().unwrap_or(0);
    info.device = parts.get(2).copied().unwrap_or(0);
    info.pciDeviceId = device_id;
    info
}

/// The PCI device id a model's boards report (the emulation's numbers for unlisted models).
fn pci_device_id(model: &str) -> u32 {
    let product = [
        ("H100", 0x2330),
        ("A100", 0x20B2),
        ("RTX 3090", 0x2204),
        ("RTX 4090", 0x2684),
    ]
    .iter()
    .find(|(name, _)| model.contains(name))
    .map_or(0x1DB6, |(_, id)| *id);
    product << 16 | PCI_VENDOR_NVIDIA
}

// ---------------------------------------------------------------------------------------------
// Library and system

pub fn nvml_init() -> u32 {
    call("nvmlInit_v2", super::init)
}

pub fn nvml_shutdown() -> u32 {
    call("nvmlShutdown", super::shutdown)
}

pub fn nvml_error_string(code: u32) -> *const c_char {
    static STRINGS: std::sync::OnceLock<Vec<(u32, std::ffi::CString)>> = std::sync::OnceLock::new();
    let strings = STRINGS.get_or_init(|| {
        [0, 1, 2, 3, 4, 7, 9, 15, 25, 999]
            .into_iter()
            .map(|c| {
                (
                    c,
                    std::ffi::CString::new(codes::describe(c)).expect("no NUL"),
                )
            })
            .collect()
    });
    strings
        .iter()
        .find(|(c, _)| *c == code)
        .or_else(|| strings.last())
        .map_or(std::ptr::null(), |(_, s)| s.as_ptr())
}

/// # Safety
/// `version` is valid for `length` bytes.
pub unsafe fn system_get_driver_version(version: *mut c_char, length: c_uint) -> u32 {
    const NAME: &str = "nvmlSystemGetDriverVersion";
    call(NAME, || {
        let nvml = nvml()?;
        let text = format!("{} {}", nvml.machine.host().driver_version, crate::MARK);
        // SAFETY: the caller vouches for the buffer.
        unsafe { put_string(NAME, version, length, &text) }
    })
}

/// # Safety
/// `version` is valid for a write.
pub unsafe fn system_get_cuda_driver_version(version: *mut c_int) -> u32 {
    const NAME: &str = "nvmlSystemGetCudaDriverVersion_v2";
    call(NAME, || {
        let nvml = nvml()?;
        let (major, minor) = nvml
            .machine
            .host()
            .cuda_version
            .split_once('.')
            .map(|(a, b)| (a.parse::<i32>().unwrap_or(0), b.parse::<i32>().unwrap_or(0)))
            .unwrap_or((0, 0));
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, version, major * 1000 + minor * 10) }
    })
}

/// # Safety
/// `count` is valid for a write.
pub unsafe fn device_get_count(count: *mut c_uint) -> u32 {
    const NAME: &str = "nvmlDeviceGetCount_v2";
    call(NAME, || {
        let n = nvml()?.machine.gpus.len() as c_uint;
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, count, n) }
    })
}

/// # Safety
/// `device` is valid for a write.
pub unsafe fn device_get_handle_by_index(index: c_uint, out: *mut Device) -> u32 {
    const NAME: &str = "nvmlDeviceGetHandleByIndex_v2";
    call(NAME, || {
        let nvml = nvml()?;
        if index as usize >= nvml.machine.gpus.len() {
            return Err(misuse(
                NAME,
                codes::INVALID_ARGUMENT,
                format!("there is no GPU {index}"),
            ));
        }
        device(NAME, handle(index))?;
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, out, handle(index)) }
    })
}

// ---------------------------------------------------------------------------------------------
// One GPU's facts

/// # Safety
/// `name` is valid for `length` bytes.
pub unsafe fn device_get_name(d: Device, name: *mut c_char, length: c_uint) -> u32 {
    const NAME: &str = "nvmlDeviceGetName";
    call(NAME, || {
        let (nvml, gpu) = device(NAME, d)?;
        let text = format!("{} {}", nvml.topology.gpus[gpu as usize].name, crate::MARK);
        // SAFETY: the caller vouches for the buffer.
        unsafe { put_string(NAME, name, length, &text) }
    })
}

/// # Safety
/// `uuid` is valid for `length` bytes.
pub unsafe fn device_get_uuid(d: Device, uuid: *mut c_char, length: c_uint) -> u32 {
    const NAME: &str = "nvmlDeviceGetUUID";
    call(NAME, || {
        let (nvml, gpu) = device(NAME, d)?;
        // SAFETY: the caller vouches for the buffer.
        unsafe { put_string(NAME, uuid, length, &nvml.topology.gpus[gpu as usize].uuid) }
    })
}

/// # Safety
/// `pci` is valid for a write.
pub unsafe fn device_get_pci_info(d: Device, pci: *mut nvmlPciInfo_t) -> u32 {
    const NAME: &str = "nvmlDeviceGetPciInfo_v3";
    call(NAME, || {
        let (nvml, gpu) = device(NAME, d)?;
        let g = &nvml.topology.gpus[gpu as usize];
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, pci, pci_info(&g.pci_bus_id, pci_device_id(&g.name))) }
    })
}

/// # Safety
/// `arch` is valid for a write.
pub unsafe fn device_get_architecture(d: Device, arch: *mut c_uint) -> u32 {
    const NAME: &str = "nvmlDeviceGetArchitecture";
    call(NAME, || {
        let (nvml, gpu) = device(NAME, d)?;
        let name = &nvml.machine.gpus[gpu as usize].model.architecture;
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, arch, codes::architecture(name)) }
    })
}

/// # Safety
/// `memory` is valid for a read and a write, with its version set.
pub unsafe fn device_get_memory_info_v2(d: Device, memory: *mut nvmlMemory_v2_t) -> u32 {
    const NAME: &str = "nvmlDeviceGetMemoryInfo_v2";
    call(NAME, || {
        let (nvml, gpu) = device(NAME, d)?;
        // SAFETY: the caller vouches for the struct.
        unsafe { check_version(NAME, memory, 2)? };
        let total = nvml.machine.gpus[gpu as usize].model.memory_mib() << 20;
        let reserved = total / 100;
        let info = nvmlMemory_v2_t {
            // SAFETY: checked above.
            version: unsafe { (*memory).version },
            total,
            reserved,
            free: total - reserved,
            used: 0,
        };
        // SAFETY: as above.
        unsafe { put(NAME, memory, info) }
    })
}

fn milliwatts(watts: f64) -> c_uint {
    (watts * 1000.0).round() as c_uint
}

/// # Safety
/// `limit` is valid for a write.
pub unsafe fn device_get_power_management_limit(d: Device, limit: *mut c_uint) -> u32 {
    const NAME: &str = "nvmlDeviceGetPowerManagementLimit";
    call(NAME, || {
        let (nvml, gpu) = device(NAME, d)?;
        supported(nvml, gpu, "power")?;
        // SAFETY: the caller vouches for the pointer.
        unsafe {
            put(
                NAME,
                limit,
                milliwatts(nvml.machine.gpus[gpu as usize].power_limit_w),
            )
        }
    })
}

/// # Safety
/// `limit` is valid for a write.
pub unsafe fn device_get_power_management_default_limit(d: Device, limit: *mut c_uint) -> u32 {
    const NAME: &str = "nvmlDeviceGetPowerManagementDefaultLimit";
    call(NAME, || {
        let (nvml, gpu) = device(NAME, d)?;
        supported(nvml, gpu, "power")?;
        let watts = nvml.machine.gpus[gpu as usize].model.power_limit_w;
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, limit, milliwatts(watts)) }
    })
}

/// `0-55,112-167` as bit words, lowest bit first.
fn cpu_words(list: &str, words: usize) -> Vec<c_ulong> {
    let mut set = vec![0 as c_ulong; words];
    let bits = c_ulong::BITS as usize;
    for range in list.split(',').filter(|r| !r.is_empty()) {
        let (a, b) = range.split_once('-').unwrap_or((range, range));
        let (a, b) = (
            a.parse::<usize>().unwrap_or(0),
            b.parse::<usize>().unwrap_or(0),
        );
        for cpu in a..=b {
            if cpu / bits < words {
                set[cpu / bits] |= 1 << (cpu % bits);
            }
        }
    }
    set
}

/// # Safety
/// `set` is valid for `size` words.
pub unsafe fn device_get_cpu_affinity(d: Device, size: c_uint, set: *mut c_ulong) -> u32 {
    const NAME: &str = "nvmlDeviceGetCpuAffinity";
    call(NAME, || {
        let (nvml, gpu) = device(NAME, d)?;
        if set.is_null() || size == 0 {
            return Err(misuse(
                NAME,
                codes::INVALID_ARGUMENT,
                "no room for the CPU set",
            ));
        }
        let list = nvml.topology.gpus[gpu as usize]
            .cpu_affinity
            .clone()
            .unwrap_or_default();
        let words = cpu_words(&list, size as usize);
        // SAFETY: `size` words are written.
        unsafe { std::ptr::copy_nonoverlapping(words.as_ptr(), set, words.len()) };
        Ok(())
    })
}

/// # Safety
/// `set` is valid for `size` words.
pub unsafe fn device_get_memory_affinity(
    d: Device,
    size: c_uint,
    set: *mut c_ulong,
    _scope: c_uint,
) -> u32 {
    const NAME: &str = "nvmlDeviceGetMemoryAffinity";
    call(NAME, || {
        let (nvml, gpu) = device(NAME, d)?;
        if set.is_null() || size == 0 {
            return Err(misuse(
                NAME,
                codes::INVALID_ARGUMENT,
                "no room for the node set",
            ));
        }
        let node = nvml.machine.gpus[gpu as usize].socket.to_string();
        let words = cpu_words(&node, size as usize);
        // SAFETY: `size` words are written.
        unsafe { std::ptr::copy_nonoverlapping(words.as_ptr(), set, words.len()) };
        Ok(())
    })
}

macro_rules! pcie_reading {
    ($fn_name:ident, $name:literal, $value:expr) => {
        /// # Safety
        /// `out` is valid for a write.
        pub unsafe fn $fn_name(d: Device, out: *mut c_uint) -> u32 {
            call($name, || {
                let (nvml, gpu) = device($name, d)?;
                let value: fn(&Nvml, u32) -> u32 = $value;
                // SAFETY: the caller vouches for the pointer.
                unsafe { put($name, out, value(nvml, gpu)) }
            })
        }
    };
}

pcie_reading!(
    device_get_curr_pcie_link_generation,
    "nvmlDeviceGetCurrPcieLinkGeneration",
    |n, g| n.pcie_now(g).0
);
pcie_reading!(
    device_get_curr_pcie_link_width,
    "nvmlDeviceGetCurrPcieLinkWidth",
    |n, g| n.pcie_now(g).1
);
pcie_reading!(
    device_get_max_pcie_link_generation,
    "nvmlDeviceGetMaxPcieLinkGeneration",
    |n, g| n.machine.gpus[g as usize].pcie_max.0
);
pcie_reading!(
    device_get_max_pcie_link_width,
    "nvmlDeviceGetMaxPcieLinkWidth",
    |n, g| n.machine.gpus[g as usize].pcie_max.1
);
pcie_reading!(
    device_get_pcie_replay_counter,
    "nvmlDeviceGetPcieReplayCounter",
    |_, _| 0
);

/// # Safety
/// `bar1` is valid for a write.
pub unsafe fn device_get_bar1_memory_info(d: Device, bar1: *mut nvmlBAR1Memory_t) -> u32 {
    const NAME: &str = "nvmlDeviceGetBAR1MemoryInfo";
    call(NAME, || {
        let (nvml, gpu) = device(NAME, d)?;
        let total = nvml.machine.gpus[gpu as usize].model.bar1_mib << 20;
        let info = nvmlBAR1Memory_t {
            bar1Total: total,
            bar1Free: total,
            bar1Used: 0,
        };
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, bar1, info) }
    })
}

// ---------------------------------------------------------------------------------------------
// NVLink

/// NVML numbers links 0..NVML_NVLINK_MAX_LINKS (36 in CUDA 13.2 headers).
const MAX_LINKS: u32 = 36;

/// The GPU's link, or the code NVML gives for a link number it does not have.
fn link<'a>(
    name: &str,
    nvml: &'a Nvml,
    gpu: u32,
    link: c_uint,
) -> Result<&'a p2ptop::model::topology::NvLink> {
    if link >= MAX_LINKS {
        return Err(misuse(
            name,
            codes::INVALID_ARGUMENT,
            format!("link {link} is past NVML's last"),
        ));
    }
    nvml.topology.gpus[gpu as usize]
        .nvlinks
        .get(link as usize)
        .ok_or(codes::NOT_SUPPORTED)
}

/// # Safety
/// `active` is valid for a write.
pub unsafe fn device_get_nvlink_state(d: Device, l: c_uint, active: *mut c_uint) -> u32 {
    const NAME: &str = "nvmlDeviceGetNvLinkState";
    call(NAME, || {
        let (nvml, gpu) = device(NAME, d)?;
        let link = link(NAME, nvml, gpu, l)?;
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, active, c_uint::from(link.active)) }
    })
}

/// # Safety
/// `version` is valid for a write.
pub unsafe fn device_get_nvlink_version(d: Device, l: c_uint, version: *mut c_uint) -> u32 {
    const NAME: &str = "nvmlDeviceGetNvLinkVersion";
    call(NAME, || {
        let (nvml, gpu) = device(NAME, d)?;
        let link = link(NAME, nvml, gpu, l)?;
        let code = codes::nvlink_version(link.version.as_deref().unwrap_or(""));
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, version, code) }
    })
}

/// # Safety
/// `pci` is valid for a write.
pub unsafe fn device_get_nvlink_remote_pci_info(
    d: Device,
    l: c_uint,
    pci: *mut nvmlPciInfo_t,
) -> u32 {
    const NAME: &str = "nvmlDeviceGetNvLinkRemotePciInfo_v2";
    call(NAME, || {
        let (nvml, gpu) = device(NAME, d)?;
        let link = link(NAME, nvml, gpu, l)?;
        let info = match &link.remote {
            NvLinkRemote::Gpu(bus) => {
                let peer = nvml.topology.gpus.iter().find(|g| &g.pci_bus_id == bus);
                pci_info(bus, peer.map_or(0, |p| pci_device_id(&p.name)))
            }
            // NVSwitches sit on buses of their own; one per GPU link is enough for NVML's caller.
            NvLinkRemote::Switch => pci_info(
                &format!("0000:{:02x}:00.0", 0xC0 + l % 4),
                0x22A3 << 16 | PCI_VENDOR_NVIDIA,
            ),
            _ => return Err(codes::NOT_SUPPORTED),
        };
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, pci, info) }
    })
}

/// # Safety
/// `kind` is valid for a write.
pub unsafe fn device_get_nvlink_remote_device_type(d: Device, l: c_uint, kind: *mut c_uint) -> u32 {
    const NAME: &str = "nvmlDeviceGetNvLinkRemoteDeviceType";
    call(NAME, || {
        let (nvml, gpu) = device(NAME, d)?;
        let link = link(NAME, nvml, gpu, l)?;
        let answer = match link.remote {
            NvLinkRemote::Gpu(_) => remote::GPU,
            // In a VM NVML cannot see the switches.
            NvLinkRemote::Switch if nvml.machine.host().vm => remote::UNKNOWN,
            NvLinkRemote::Switch => remote::SWITCH,
            _ => remote::UNKNOWN,
        };
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, kind, answer) }
    })
}

/// # Safety
/// `value` is valid for a write.
pub unsafe fn device_get_nvlink_error_counter(
    d: Device,
    l: c_uint,
    _counter: c_uint,
    value: *mut c_ulonglong,
) -> u32 {
    const NAME: &str = "nvmlDeviceGetNvLinkErrorCounter";
    call(NAME, || {
        let (nvml, gpu) = device(NAME, d)?;
        link(NAME, nvml, gpu, l)?;
        supported(nvml, gpu, "errors")?;
        // The model injects no link errors.
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, value, 0) }
    })
}

// ---------------------------------------------------------------------------------------------
// Two GPUs

/// # Safety
/// `path` is valid for a write.
pub unsafe fn device_get_topology_common_ancestor(a: Device, b: Device, path: *mut c_uint) -> u32 {
    const NAME: &str = "nvmlDeviceGetTopologyCommonAncestor";
    call(NAME, || {
        let (nvml, ga) = device(NAME, a)?;
        let (_, gb) = device(NAME, b)?;
        let answer = if ga == gb {
            level::INTERNAL
        } else {
            match nvml.machine.pcie_link_type(ga, gb) {
                LinkType::Pix => level::SINGLE,
                LinkType::Pxb => level::MULTIPLE,
                LinkType::Phb => level::HOSTBRIDGE,
                LinkType::Node => level::NODE,
                _ => level::SYSTEM,
            }
        };
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, path, answer) }
    })
}

/// # Safety
/// `status` is valid for a write.
pub unsafe fn device_get_p2p_status(
    a: Device,
    b: Device,
    index: c_uint,
    status: *mut c_uint,
) -> u32 {
    const NAME: &str = "nvmlDeviceGetP2PStatus";
    call(NAME, || {
        let (nvml, ga) = device(NAME, a)?;
        let (_, gb) = device(NAME, b)?;
        let caps = nvml.machine.p2p(ga, gb);
        let pick = match index {
            0 => caps.read,
            1 => caps.write,
            2 => caps.nvlink,
            3 => caps.atomics,
            4 => P2pStatus::Ns,
            _ => {
                return Err(misuse(
                    NAME,
                    codes::INVALID_ARGUMENT,
                    format!("P2P capability {index}"),
                ));
            }
        };
        let answer = match pick {
            P2pStatus::Ok => 0,
            P2pStatus::Cns => 1,
            P2pStatus::Gns => 2,
            P2pStatus::Tns => 3,
            P2pStatus::Dr => 4,
            P2pStatus::Ns => 5,
            P2pStatus::U => 6,
        };
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, status, answer) }
    })
}

// ---------------------------------------------------------------------------------------------
// Telemetry

/// # Safety
/// `temp` is valid for a write.
pub unsafe fn device_get_temperature(d: Device, sensor: c_uint, temp: *mut c_uint) -> u32 {
    const NAME: &str = "nvmlDeviceGetTemperature";
    call(NAME, || {
        let (nvml, gpu) = device(NAME, d)?;
        if sensor != 0 {
            return Err(misuse(
                NAME,
                codes::INVALID_ARGUMENT,
                format!("sensor {sensor} (only 0, the GPU)"),
            ));
        }
        let t = nvml.now().gpus[gpu as usize]
            .thermal
            .temp_c
            .round()
            .max(0.0) as c_uint;
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, temp, t) }
    })
}

/// # Safety
/// `temp` is valid for a write.
pub unsafe fn device_get_temperature_threshold(d: Device, kind: c_uint, temp: *mut c_uint) -> u32 {
    const NAME: &str = "nvmlDeviceGetTemperatureThreshold";
    call(NAME, || {
        let (nvml, gpu) = device(NAME, d)?;
        supported(nvml, gpu, "thresholds")?;
        let m = &nvml.machine.gpus[gpu as usize].model;
        let answer = match kind {
            0 => m.shutdown_c,
            1 => m.slowdown_c,
            _ => return Err(codes::NOT_SUPPORTED),
        };
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, temp, answer.round() as c_uint) }
    })
}

/// # Safety
/// `mhz` is valid for a write.
pub unsafe fn device_get_clock_info(d: Device, clock: c_uint, mhz: *mut c_uint) -> u32 {
    const NAME: &str = "nvmlDeviceGetClockInfo";
    call(NAME, || {
        let (nvml, gpu) = device(NAME, d)?;
        let g = &nvml.machine.gpus[gpu as usize];
        let thermal = nvml.now().gpus[gpu as usize].thermal.clone();
        let answer = match clock {
            0 | 1 => thermal.sm_clock_mhz(g),
            2 => thermal.mem_clock_mhz(g),
            _ => return Err(codes::NOT_SUPPORTED),
        };
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, mhz, answer) }
    })
}

/// # Safety
/// `mhz` is valid for a write.
pub unsafe fn device_get_max_clock_info(d: Device, clock: c_uint, mhz: *mut c_uint) -> u32 {
    const NAME: &str = "nvmlDeviceGetMaxClockInfo";
    call(NAME, || {
        let (nvml, gpu) = device(NAME, d)?;
        let m = &nvml.machine.gpus[gpu as usize].model;
        let answer = match clock {
            0 | 1 => m.sm_clock_max_mhz,
            2 => m.mem_clock_max_mhz,
            _ => return Err(codes::NOT_SUPPORTED),
        };
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, mhz, answer) }
    })
}

/// # Safety
/// `mw` is valid for a write.
pub unsafe fn device_get_power_usage(d: Device, mw: *mut c_uint) -> u32 {
    const NAME: &str = "nvmlDeviceGetPowerUsage";
    call(NAME, || {
        let (nvml, gpu) = device(NAME, d)?;
        supported(nvml, gpu, "power")?;
        let watts = nvml.now().gpus[gpu as usize].thermal.power_w;
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, mw, milliwatts(watts)) }
    })
}

/// # Safety
/// `mw` is valid for a write.
pub unsafe fn device_get_enforced_power_limit(d: Device, mw: *mut c_uint) -> u32 {
    const NAME: &str = "nvmlDeviceGetEnforcedPowerLimit";
    call(NAME, || {
        let (nvml, gpu) = device(NAME, d)?;
        supported(nvml, gpu, "power")?;
        // SAFETY: the caller vouches for the pointer.
        unsafe {
            put(
                NAME,
                mw,
                milliwatts(nvml.machine.gpus[gpu as usize].power_limit_w),
            )
        }
    })
}

/// # Safety
/// `speed` is valid for a write.
pub unsafe fn device_get_fan_speed_v2(d: Device, fan: c_uint, speed: *mut c_uint) -> u32 {
    const NAME: &str = "nvmlDeviceGetFanSpeed_v2";
    call(NAME, || {
        let (nvml, gpu) = device(NAME, d)?;
        let g = &nvml.machine.gpus[gpu as usize];
        if !g.model.has_fan {
            return Err(codes::NOT_SUPPORTED);
        }
        if fan != 0 {
            return Err(misuse(
                NAME,
                codes::INVALID_ARGUMENT,
                format!("fan {fan}: the board has one"),
            ));
        }
        let ambient = nvml.machine.host().ambient_c;
        let answer = nvml.now().gpus[gpu as usize]
            .thermal
            .fan_percent(g, ambient);
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, speed, answer) }
    })
}

/// # Safety
/// `reasons` is valid for a write.
pub unsafe fn device_get_clocks_reasons(
    name: &'static str,
    d: Device,
    reasons: *mut c_ulonglong,
) -> u32 {
    call(name, || {
        let (nvml, gpu) = device(name, d)?;
        let bits = nvml.now().gpus[gpu as usize].thermal.reasons().0;
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(name, reasons, bits) }
    })
}

/// # Safety
/// `value` is valid for a write.
pub unsafe fn device_get_pcie_throughput(d: Device, counter: c_uint, value: *mut c_uint) -> u32 {
    const NAME: &str = "nvmlDeviceGetPcieThroughput";
    call(NAME, || {
        let (nvml, gpu) = device(NAME, d)?;
        supported(nvml, gpu, "pcie_counters")?;
        if counter > 1 {
            return Err(misuse(
                NAME,
                codes::INVALID_ARGUMENT,
                format!("counter {counter} (0 TX, 1 RX)"),
            ));
        }
        let kib_s = nvml.pcie_throughput_kib_s(gpu, counter == 0);
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, value, kib_s) }
    })
}

/// # Safety
/// `current` and `pending` are valid for writes.
pub unsafe fn device_get_mig_mode(d: Device, current: *mut c_uint, pending: *mut c_uint) -> u32 {
    const NAME: &str = "nvmlDeviceGetMigMode";
    call(NAME, || {
        let (nvml, gpu) = device(NAME, d)?;
        let mig = nvml.machine.mig(gpu).ok_or(codes::NOT_SUPPORTED)?;
        // SAFETY: the caller vouches for the pointers.
        unsafe {
            put(NAME, current, c_uint::from(mig))?;
            put(NAME, pending, c_uint::from(mig))
        }
    })
}

/// The GPU's thermal limit (T.Limit 0) as Ada and later report it: two degrees short of its
/// slowdown point, with slowdown and shutdown on the T.Limit scale past it.
fn thermal_limit_c(nvml: &Nvml, gpu: u32) -> Option<f64> {
    let m = &nvml.machine.gpus[gpu as usize].model;
    let (major, minor) = m.compute_capability.split_once('.')?;
    let capability = major.parse::<u32>().ok()? * 10 + minor.parse::<u32>().ok()?;
    (capability >= 89).then_some(m.slowdown_c - 2.0)
}

/// # Safety
/// `margin` is valid for a read and a write, with its version set.
pub unsafe fn device_get_margin_temperature(
    d: Device,
    margin: *mut nvmlMarginTemperature_t,
) -> u32 {
    const NAME: &str = "nvmlDeviceGetMarginTemperature";
    call(NAME, || {
        let (nvml, gpu) = device(NAME, d)?;
        // SAFETY: the caller vouches for the struct.
        unsafe { check_version(NAME, margin, 1)? };
        let limit = thermal_limit_c(nvml, gpu).ok_or(codes::NOT_SUPPORTED)?;
        // From the whole degrees the temperature call reports, as one sensor reading gives both.
        let temp = nvml.now().gpus[gpu as usize].thermal.temp_c.round();
        let answer = nvmlMarginTemperature_t {
            // SAFETY: checked above.
            version: unsafe { (*margin).version },
            marginTemperature: (limit - temp) as c_int,
        };
        // SAFETY: as above.
        unsafe { put(NAME, margin, answer) }
    })
}

/// One field value, or the code NVML puts in it.
fn field_value(nvml: &Nvml, gpu: u32, id: u32, scope: u32) -> std::result::Result<(u32, u64), u32> {
    let state = nvml.now();
    let g = &nvml.machine.gpus[gpu as usize];
    let c = &state.gpus[gpu as usize].counters;
    let links = g.links.len() as u32;
    let per_link = |values: &[f64]| -> std::result::Result<f64, u32> {
        match scope {
            u32::MAX => Ok(values.iter().sum()),
            l if l < links => Ok(values[l as usize]),
            _ => Err(codes::INVALID_ARGUMENT),
        }
    };
    Ok(match id {
        field::NVLINK_LINK_COUNT => (value_type::UNSIGNED_INT, u64::from(links)),
        field::NVLINK_THROUGHPUT_DATA_TX | field::NVLINK_THROUGHPUT_DATA_RX => {
            if links == 0 || !nvml.supports(gpu, "nvlink_counters") {
                return Err(codes::NOT_SUPPORTED);
            }
            let values = if id == field::NVLINK_THROUGHPUT_DATA_TX {
                &c.nvlink_tx
            } else {
                &c.nvlink_rx
            };
            (
                value_type::UNSIGNED_LONG_LONG,
                (per_link(values)? / 1024.0) as u64,
            )
        }
        field::NVLINK_GET_SPEED => {
            if scope >= links {
                return Err(codes::NOT_SUPPORTED);
            }
            let mb_s = g.model.nvlink_link_gbps.unwrap_or(0.0) * 1000.0;
            (value_type::UNSIGNED_INT, mb_s.round() as u64)
        }
        field::SHUTDOWN_TLIMIT | field::SLOWDOWN_TLIMIT => {
            let limit = thermal_limit_c(nvml, gpu).ok_or(codes::NOT_SUPPORTED)?;
            let past = if id == field::SHUTDOWN_TLIMIT {
                g.model.shutdown_c
            } else {
                g.model.slowdown_c
            };
            // Signed: degrees below the limit, so a threshold past it is negative.
            (
                value_type::SIGNED_LONG_LONG,
                (limit - past).round() as i64 as u64,
            )
        }
        field::PCIE_COUNT_TX_BYTES | field::PCIE_COUNT_RX_BYTES => {
            if !nvml.supports(gpu, "pcie_counters") {
                return Err(codes::NOT_SUPPORTED);
            }
            let bytes = if id == field::PCIE_COUNT_TX_BYTES {
                c.pcie_tx
            } else {
                c.pcie_rx
            };
            // NVML says these "can be wrapped"; until a GPU settles where, they wrap at 2^32.
            (value_type::UNSIGNED_LONG_LONG, (bytes as u64) % (1 << 32))
        }
        _ => return Err(codes::NOT_SUPPORTED),
    })
}

/// # Safety
/// `values` holds `count` field values with their ids and scopes set.
pub unsafe fn device_get_field_values(
    d: Device,
    count: c_int,
    values: *mut nvmlFieldValue_t,
) -> u32 {
    const NAME: &str = "nvmlDeviceGetFieldValues";
    call(NAME, || {
        let (nvml, gpu) = device(NAME, d)?;
        if values.is_null() || count <= 0 {
            return Err(misuse(
                NAME,
                codes::INVALID_ARGUMENT,
                "no field values to fill",
            ));
        }
        let timestamp = nvml.now().timestamp_us() as i64;
        // SAFETY: the caller vouches for `count` values.
        let values = unsafe { std::slice::from_raw_parts_mut(values, count as usize) };
        for v in values {
            v.timestamp = timestamp;
            v.latencyUsec = 0;
            match field_value(nvml, gpu, v.fieldId, v.scopeId) {
                Ok((kind, number)) => {
                    v.nvmlReturn = codes::SUCCESS;
                    v.valueType = kind;
                    match kind {
                        value_type::UNSIGNED_INT => v.value.uiVal = number as c_uint,
                        value_type::SIGNED_LONG_LONG => v.value.sllVal = number as i64,
                        _ => v.value.ullVal = number,
                    }
                }
                Err(code) => v.nvmlReturn = code,
            }
        }
        Ok(())
    })
}
