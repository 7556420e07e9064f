//! The CUDA driver calls the probe makes, each returning the raw `i32` status.
//!
//! cust (through `cust::sys`) links the driver and gives the handle and enum types, but its
//! `CUresult` is a Rust enum generated from CUDA 11.4 headers. Newer drivers return codes it does
//! not list (46 device unavailable, 802 system not ready, …), and an unlisted value in a Rust enum
//! is undefined behaviour. So every call is declared here again with an `i32` result and checked
//! by [`check`]. `build.rs` reads this file: each `fn cu…` below also gets a "no device" stub for
//! linking on machines without CUDA.
//!
//! The wrappers are thin: one driver call each, named after it, with the status turned into a
//! [`DriverError`]. Handles passed in must come from the creating wrappers of this module.

use cust::sys::{
    CUcontext, CUdevice, CUdevice_P2PAttribute, CUdevice_attribute, CUdeviceptr, CUevent,
    CUfunction, CUfunction_attribute, CUjit_option, CUmodule, CUstream,
};
use p2ptop::probe::driver_error::{DriverError, NOT_READY};
use std::ffi::{CStr, c_char, c_int, c_uchar, c_uint, c_void};
use std::ptr;

pub type Result<T> = std::result::Result<T, DriverError>;

#[allow(non_snake_case)]
unsafe extern "C" {
    fn cuInit(flags: c_uint) -> i32;
    fn cuDriverGetVersion(version: *mut c_int) -> i32;
    fn cuDeviceGetCount(count: *mut c_int) -> i32;
    fn cuDeviceGet(device: *mut CUdevice, ordinal: c_int) -> i32;
    fn cuDeviceGetName(name: *mut c_char, len: c_int, device: CUdevice) -> i32;
    fn cuDeviceGetPCIBusId(bus_id: *mut c_char, len: c_int, device: CUdevice) -> i32;
    fn cuDeviceTotalMem_v2(bytes: *mut usize, device: CUdevice) -> i32;
    // The attribute as a plain number: cust's enum stops at CUDA 11.4's attributes.
    fn cuDeviceGetAttribute(value: *mut c_int, attribute: c_int, device: CUdevice) -> i32;
    fn cuDeviceCanAccessPeer(can: *mut c_int, device: CUdevice, peer: CUdevice) -> i32;
    fn cuDeviceGetP2PAttribute(
        value: *mut c_int,
        attribute: CUdevice_P2PAttribute,
        src: CUdevice,
        dst: CUdevice,
    ) -> i32;
    fn cuDevicePrimaryCtxRetain(context: *mut CUcontext, device: CUdevice) -> i32;
    fn cuCtxSetCurrent(context: CUcontext) -> i32;
    fn cuCtxSynchronize() -> i32;
    fn cuCtxEnablePeerAccess(peer: CUcontext, flags: c_uint) -> i32;
    fn cuModuleLoadDataEx(
        module: *mut CUmodule,
        image: *const c_void,
        count: c_uint,
        options: *mut CUjit_option,
        values: *mut *mut c_void,
    ) -> i32;
    fn cuModuleGetFunction(function: *mut CUfunction, module: CUmodule, name: *const c_char)
    -> i32;
    fn cuFuncGetAttribute(
        value: *mut c_int,
        attribute: CUfunction_attribute,
        function: CUfunction,
    ) -> i32;
    fn cuOccupancyMaxActiveBlocksPerMultiprocessor(
        blocks: *mut c_int,
        function: CUfunction,
        block_size: c_int,
        dynamic_shared_bytes: usize,
    ) -> i32;
    fn cuLaunchKernel(
        function: CUfunction,
        grid_x: c_uint,
        grid_y: c_uint,
        grid_z: c_uint,
        block_x: c_uint,
        block_y: c_uint,
        block_z: c_uint,
        shared_bytes: c_uint,
        stream: CUstream,
        params: *mut *mut c_void,
        extra: *mut *mut c_void,
    ) -> i32;
    fn cuStreamCreate(stream: *mut CUstream, flags: c_uint) -> i32;
    fn cuEventCreate(event: *mut CUevent, flags: c_uint) -> i32;
    fn cuEventRecord(event: CUevent, stream: CUstream) -> i32;
    fn cuStreamWaitEvent(stream: CUstream, event: CUevent, flags: c_uint) -> i32;
    fn cuEventQuery(event: CUevent) -> i32;
    fn cuEventElapsedTime(ms: *mut f32, start: CUevent, end: CUevent) -> i32;
    fn cuMemAlloc_v2(ptr: *mut CUdeviceptr, bytes: usize) -> i32;
    fn cuMemFree_v2(ptr: CUdeviceptr) -> i32;
    fn cuMemHostAlloc(ptr: *mut *mut c_void, bytes: usize, flags: c_uint) -> i32;
    fn cuMemFreeHost(ptr: *mut c_void) -> i32;
    fn cuMemHostGetDevicePointer_v2(
        device_ptr: *mut CUdeviceptr,
        host_ptr: *mut c_void,
        flags: c_uint,
    ) -> i32;
    fn cuMemcpyHtoD_v2(dst: CUdeviceptr, src: *const c_void, bytes: usize) -> i32;
    fn cuMemcpyDtoH_v2(dst: *mut c_void, src: CUdeviceptr, bytes: usize) -> i32;
    fn cuMemcpyAsync(dst: CUdeviceptr, src: CUdeviceptr, bytes: usize, stream: CUstream) -> i32;
    fn cuMemsetD8Async(dst: CUdeviceptr, value: c_uchar, count: usize, stream: CUstream) -> i32;
    fn cuMemcpyPeerAsync(
        dst: CUdeviceptr,
        dst_context: CUcontext,
        src: CUdeviceptr,
        src_context: CUcontext,
        bytes: usize,
        stream: CUstream,
    ) -> i32;
}

/// Runs a driver call that answers through one out-pointer, starting from `initial`.
fn out<T>(call: &'static str, initial: T, query: impl FnOnce(&mut T) -> i32) -> Result<T> {
    let mut value = initial;
    check(call, query(&mut value))?;
    Ok(value)
}

/// Turns a driver status into a result that names the call.
pub fn check(call: &'static str, code: i32) -> Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(DriverError { call, code })
    }
}

pub fn init() -> Result<()> {
    // SAFETY: no pointers; may be called any number of times.
    check("cuInit", unsafe { cuInit(0) })
}

/// The newest CUDA version the driver supports, as 1000 * major + 10 * minor.
pub fn driver_version() -> Result<i32> {
    // SAFETY: `out` hands the call a valid out-pointer.
    out("cuDriverGetVersion", 0, |version| unsafe {
        cuDriverGetVersion(version)
    })
}

pub fn device_count() -> Result<i32> {
    // SAFETY: `out` hands the call a valid out-pointer.
    out("cuDeviceGetCount", 0, |count| unsafe {
        cuDeviceGetCount(count)
    })
}

pub fn device(ordinal: i32) -> Result<CUdevice> {
    // SAFETY: `out` hands the call a valid out-pointer.
    out("cuDeviceGet", 0, |device| unsafe {
        cuDeviceGet(device, ordinal)
    })
}

pub fn device_name(device: CUdevice) -> Result<String> {
    let mut name = [0 as c_char; 256];
    // SAFETY: the driver writes at most `len` bytes, NUL included, into the buffer.
    check("cuDeviceGetName", unsafe {
        cuDeviceGetName(name.as_mut_ptr(), name.len() as c_int, device)
    })?;
    Ok(c_string(&name))
}

pub fn pci_bus_id(device: CUdevice) -> Result<String> {
    let mut id = [0 as c_char; 64];
    // SAFETY: as for `device_name`.
    check("cuDeviceGetPCIBusId", unsafe {
        cuDeviceGetPCIBusId(id.as_mut_ptr(), id.len() as c_int, device)
    })?;
    Ok(c_string(&id))
}

pub fn total_memory(device: CUdevice) -> Result<usize> {
    // SAFETY: `out` hands the call a valid out-pointer.
    out("cuDeviceTotalMem", 0, |bytes| unsafe {
        cuDeviceTotalMem_v2(bytes, device)
    })
}

pub fn attribute(device: CUdevice, attribute: CUdevice_attribute) -> Result<i32> {
    attribute_number(device, attribute as c_int)
}

/// `CU_DEVICE_ATTRIBUTE_HOST_NUMA_ID` (CUDA 12.2 on): the host NUMA node nearest the GPU.
const HOST_NUMA_ID: c_int = 134;

/// The host NUMA node nearest `device`, when the driver knows it (older drivers do not).
pub fn host_numa_node(device: CUdevice) -> Option<u32> {
    attribute_number(device, HOST_NUMA_ID)
        .ok()
        .and_then(|node| u32::try_from(node).ok())
}

fn attribute_number(device: CUdevice, attribute: c_int) -> Result<i32> {
    // SAFETY: `out` hands the call a valid out-pointer; an attribute the driver does not know
    // is an error, not undefined behaviour.
    out("cuDeviceGetAttribute", 0, |value| unsafe {
        cuDeviceGetAttribute(value, attribute, device)
    })
}

pub fn can_access_peer(device: CUdevice, peer: CUdevice) -> Result<bool> {
    // SAFETY: `out` hands the call a valid out-pointer.
    out("cuDeviceCanAccessPeer", 0, |can| unsafe {
        cuDeviceCanAccessPeer(can, device, peer)
    })
    .map(|value| value != 0)
}

pub fn p2p_attribute(
    attribute: CUdevice_P2PAttribute,
    src: CUdevice,
    dst: CUdevice,
) -> Result<i32> {
    // SAFETY: `out` hands the call a valid out-pointer; `attribute` is a value of the driver's enum.
    out("cuDeviceGetP2PAttribute", 0, |value| unsafe {
        cuDeviceGetP2PAttribute(value, attribute, src, dst)
    })
}

/// The device's primary context (the one the runtime API and other tools share).
pub fn primary_context(device: CUdevice) -> Result<CUcontext> {
    // SAFETY: `out` hands the call a valid out-pointer.
    out(
        "cuDevicePrimaryCtxRetain",
        ptr::null_mut(),
        |context| unsafe { cuDevicePrimaryCtxRetain(context, device) },
    )
}

pub fn set_current(context: CUcontext) -> Result<()> {
    // SAFETY: `context` came from `primary_context`, which the process keeps retained.
    check("cuCtxSetCurrent", unsafe { cuCtxSetCurrent(context) })
}

/// Waits for all work of the current context; reports a sticky error left by a faulted kernel.
pub fn synchronize_current() -> Result<()> {
    // SAFETY: no pointers.
    check("cuCtxSynchronize", unsafe { cuCtxSynchronize() })
}

/// Lets the current context access `peer`'s memory. Already enabled counts as success.
pub fn enable_peer_access(peer: CUcontext) -> Result<()> {
    // SAFETY: `peer` came from `primary_context`.
    let code = unsafe { cuCtxEnablePeerAccess(peer, 0) };
    if code == p2ptop::probe::driver_error::PEER_ACCESS_ALREADY_ENABLED {
        return Ok(());
    }
    check("cuCtxEnablePeerAccess", code)
}

/// Loads PTX into the current context; on failure the error carries the JIT compiler's log.
pub fn load_ptx(ptx: &CStr) -> std::result::Result<CUmodule, (DriverError, String)> {
    let mut log = vec![0u8; 16 * 1024];
    let mut options = [
        CUjit_option::CU_JIT_ERROR_LOG_BUFFER,
        CUjit_option::CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
    ];
    // The driver takes option values as pointer-sized slots; a size travels as an integer in one.
    let mut values = [log.as_mut_ptr() as *mut c_void, log.len() as *mut c_void];
    let mut module = ptr::null_mut();
    // SAFETY: the image is NUL-terminated; option arrays have matching lengths; the log buffer
    // outlives the call and its size is what we pass.
    let code = unsafe {
        cuModuleLoadDataEx(
            &mut module,
            ptx.as_ptr() as *const c_void,
            options.len() as c_uint,
            options.as_mut_ptr(),
            values.as_mut_ptr(),
        )
    };
    match check("cuModuleLoadDataEx", code) {
        Ok(()) => Ok(module),
        Err(err) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            Err((err, String::from_utf8_lossy(&log[..end]).trim().to_string()))
        }
    }
}

pub fn function(module: CUmodule, name: &CStr) -> Result<CUfunction> {
    // SAFETY: `module` came from `load_ptx`; `name` is NUL-terminated.
    out("cuModuleGetFunction", ptr::null_mut(), |function| unsafe {
        cuModuleGetFunction(function, module, name.as_ptr())
    })
}

pub fn function_attribute(function: CUfunction, attribute: CUfunction_attribute) -> Result<i32> {
    // SAFETY: `out` hands the call a valid out-pointer; `function` came from `function`.
    out("cuFuncGetAttribute", 0, |value| unsafe {
        cuFuncGetAttribute(value, attribute, function)
    })
}

/// How many blocks of `block_size` threads of `function` one SM holds at once.
pub fn blocks_per_sm(function: CUfunction, block_size: u32) -> Result<u32> {
    // SAFETY: `out` hands the call a valid out-pointer; `function` came from `function`.
    out(
        "cuOccupancyMaxActiveBlocksPerMultiprocessor",
        0,
        |blocks| unsafe {
            cuOccupancyMaxActiveBlocksPerMultiprocessor(blocks, function, block_size as c_int, 0)
        },
    )
    .map(|blocks| blocks.max(0) as u32)
}

/// Queues a 1-D launch.
///
/// # Safety
/// `params` must point at one value per kernel parameter, of the parameter's type, in order, and
/// every address among them must be valid for what the kernel does with it.
pub unsafe fn launch(
    function: CUfunction,
    grid: u32,
    block: u32,
    stream: CUstream,
    params: &mut [*mut c_void],
) -> Result<()> {
    // SAFETY: the caller vouches for `params`; the dimensions are plain numbers.
    check("cuLaunchKernel", unsafe {
        cuLaunchKernel(
            function,
            grid,
            1,
            1,
            block,
            1,
            1,
            0,
            stream,
            params.as_mut_ptr(),
            ptr::null_mut(),
        )
    })
}

/// A stream that does not synchronize with the legacy default stream (cust's `Stream::new`
/// drops this flag, hence the direct call).
pub fn non_blocking_stream() -> Result<CUstream> {
    const CU_STREAM_NON_BLOCKING: c_uint = 1;
    // SAFETY: `out` hands the call a valid out-pointer.
    out("cuStreamCreate", ptr::null_mut(), |stream| unsafe {
        cuStreamCreate(stream, CU_STREAM_NON_BLOCKING)
    })
}

pub fn event() -> Result<CUevent> {
    // SAFETY: `out` hands the call a valid out-pointer; flags 0 = timing enabled.
    out("cuEventCreate", ptr::null_mut(), |event| unsafe {
        cuEventCreate(event, 0)
    })
}

pub fn record(event: CUevent, stream: CUstream) -> Result<()> {
    // SAFETY: both handles came from this module, in the current context.
    check("cuEventRecord", unsafe { cuEventRecord(event, stream) })
}

/// Makes later work on `stream` wait until `event` (possibly of another GPU) has happened.
pub fn wait_for(stream: CUstream, event: CUevent) -> Result<()> {
    // SAFETY: both handles came from this module.
    check("cuStreamWaitEvent", unsafe {
        cuStreamWaitEvent(stream, event, 0)
    })
}

/// Whether all work before `event` is done; errors of that work surface here.
pub fn event_done(event: CUevent) -> Result<bool> {
    // SAFETY: `event` came from `event`.
    match unsafe { cuEventQuery(event) } {
        NOT_READY => Ok(false),
        code => check("cuEventQuery", code).map(|()| true),
    }
}

pub fn elapsed_ms(start: CUevent, end: CUevent) -> Result<f32> {
    // SAFETY: both events came from `event` and have completed.
    out("cuEventElapsedTime", 0.0, |ms| unsafe {
        cuEventElapsedTime(ms, start, end)
    })
}

pub fn alloc(bytes: usize) -> Result<CUdeviceptr> {
    // SAFETY: `out` hands the call a valid out-pointer.
    out("cuMemAlloc", 0, |ptr| unsafe { cuMemAlloc_v2(ptr, bytes) })
}

/// # Safety
/// `ptr` came from [`alloc`] and nothing uses it any more.
pub unsafe fn free(ptr: CUdeviceptr) -> Result<()> {
    // SAFETY: the caller vouches for `ptr`.
    check("cuMemFree", unsafe { cuMemFree_v2(ptr) })
}

/// Pinned host memory, usable from every context and mapped into every device.
pub fn alloc_host_mapped(bytes: usize) -> Result<*mut c_void> {
    const PORTABLE_AND_DEVICEMAP: c_uint =
        cust::sys::CU_MEMHOSTALLOC_PORTABLE | cust::sys::CU_MEMHOSTALLOC_DEVICEMAP;
    // SAFETY: `out` hands the call a valid out-pointer.
    out("cuMemHostAlloc", ptr::null_mut(), |ptr| unsafe {
        cuMemHostAlloc(ptr, bytes, PORTABLE_AND_DEVICEMAP)
    })
}

/// # Safety
/// `ptr` came from [`alloc_host_mapped`] and nothing uses it any more.
pub unsafe fn free_host(ptr: *mut c_void) -> Result<()> {
    // SAFETY: the caller vouches for `ptr`.
    check("cuMemFreeHost", unsafe { cuMemFreeHost(ptr) })
}

/// The device address of mapped host memory (with unified addressing, the same number).
pub fn device_pointer_of_host(host: *mut c_void) -> Result<CUdeviceptr> {
    // SAFETY: `host` came from `alloc_host_mapped`.
    out("cuMemHostGetDevicePointer", 0, |ptr| unsafe {
        cuMemHostGetDevicePointer_v2(ptr, host, 0)
    })
}

/// # Safety
/// `dst` is device memory of at least `src.len() * 8` bytes.
pub unsafe fn copy_to_device(dst: CUdeviceptr, src: &[u64]) -> Result<()> {
    // SAFETY: `src` is a valid slice; the caller vouches for `dst`.
    check("cuMemcpyHtoD", unsafe {
        cuMemcpyHtoD_v2(
            dst,
            src.as_ptr() as *const c_void,
            std::mem::size_of_val(src),
        )
    })
}

/// # Safety
/// `src` is device memory of at least `dst.len() * 8` bytes.
pub unsafe fn copy_from_device(dst: &mut [u64], src: CUdeviceptr) -> Result<()> {
    // SAFETY: `dst` is a valid slice; the caller vouches for `src`.
    check("cuMemcpyDtoH", unsafe {
        cuMemcpyDtoH_v2(
            dst.as_mut_ptr() as *mut c_void,
            src,
            std::mem::size_of_val(dst),
        )
    })
}

/// Queues setting `count` bytes at `dst` to `value` on `stream`, in order with its other work.
///
/// # Safety
/// `dst` is valid device-visible memory of `count` bytes.
pub unsafe fn set_bytes_async(
    dst: CUdeviceptr,
    value: u8,
    count: usize,
    stream: CUstream,
) -> Result<()> {
    // SAFETY: the caller vouches for the range.
    check("cuMemsetD8Async", unsafe {
        cuMemsetD8Async(dst, value, count, stream)
    })
}

/// # Safety
/// Both ranges are valid device-visible memory of `bytes` bytes until the copy completes.
pub unsafe fn copy_async(
    dst: CUdeviceptr,
    src: CUdeviceptr,
    bytes: usize,
    stream: CUstream,
) -> Result<()> {
    // SAFETY: the caller vouches for the ranges.
    check("cuMemcpyAsync", unsafe {
        cuMemcpyAsync(dst, src, bytes, stream)
    })
}

/// # Safety
/// As for [`copy_async`], with each range owned by the given context.
pub unsafe fn copy_peer_async(
    dst: CUdeviceptr,
    dst_context: CUcontext,
    src: CUdeviceptr,
    src_context: CUcontext,
    bytes: usize,
    stream: CUstream,
) -> Result<()> {
    // SAFETY: the caller vouches for the ranges and contexts.
    check("cuMemcpyPeerAsync", unsafe {
        cuMemcpyPeerAsync(dst, dst_context, src, src_context, bytes, stream)
    })
}

fn c_string(buffer: &[c_char]) -> String {
    let bytes: Vec<u8> = buffer
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}
