//! `libcuda.so.1` for p2ptop's tests: the driver API entry points `p2ptop-probe` calls, each
//! handing its arguments to the emulation in `p2ptop_emu::cuda::api`. The list is the probe's
//! own (`src/probe/cuda/driver.rs`); p2ptop's tests check that every function declared there is
//! exported here.
#![allow(non_snake_case, clippy::missing_safety_doc)]

use p2ptop_emu::cuda::api as cu;
use std::ffi::{c_char, c_int, c_uint, c_void};

type Handle = *mut c_void;

#[unsafe(no_mangle)]
pub extern "C" fn cuInit(flags: c_uint) -> c_int {
    cu::cu_init(flags)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDriverGetVersion(version: *mut c_int) -> c_int {
    unsafe { cu::cu_driver_get_version(version) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetCount(count: *mut c_int) -> c_int {
    unsafe { cu::cu_device_get_count(count) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGet(device: *mut c_int, ordinal: c_int) -> c_int {
    unsafe { cu::cu_device_get(device, ordinal) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetName(name: *mut c_char, len: c_int, device: c_int) -> c_int {
    unsafe { cu::cu_device_get_name(name, len, device) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetPCIBusId(id: *mut c_char, len: c_int, device: c_int) -> c_int {
    unsafe { cu::cu_device_get_pci_bus_id(id, len, device) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceTotalMem_v2(bytes: *mut usize, device: c_int) -> c_int {
    unsafe { cu::cu_device_total_mem(bytes, device) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetAttribute(
    value: *mut c_int,
    attribute: c_int,
    device: c_int,
) -> c_int {
    unsafe { cu::cu_device_get_attribute(value, attribute, device) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceCanAccessPeer(
    can: *mut c_int,
    device: c_int,
    peer: c_int,
) -> c_int {
    unsafe { cu::cu_device_can_access_peer(can, device, peer) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetP2PAttribute(
    value: *mut c_int,
    attribute: c_int,
    src: c_int,
    dst: c_int,
) -> c_int {
    unsafe { cu::cu_device_get_p2p_attribute(value, attribute, src, dst) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDevicePrimaryCtxRetain(context: *mut Handle, device: c_int) -> c_int {
    unsafe { cu::cu_device_primary_ctx_retain(context, device) }
}

#[unsafe(no_mangle)]
pub extern "C" fn cuCtxSetCurrent(context: Handle) -> c_int {
    cu::cu_ctx_set_current(context)
}

#[unsafe(no_mangle)]
pub extern "C" fn cuCtxSynchronize() -> c_int {
    cu::cu_ctx_synchronize()
}

#[unsafe(no_mangle)]
pub extern "C" fn cuCtxEnablePeerAccess(peer: Handle, flags: c_uint) -> c_int {
    cu::cu_ctx_enable_peer_access(peer, flags)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuModuleLoadDataEx(
    module: *mut Handle,
    image: *const c_void,
    count: c_uint,
    options: *mut c_int,
    values: *mut *mut c_void,
) -> c_int {
    unsafe { cu::cu_module_load_data_ex(module, image, count, options, values) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuModuleGetFunction(
    function: *mut Handle,
    module: Handle,
    name: *const c_char,
) -> c_int {
    unsafe { cu::cu_module_get_function(function, module, name) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuFuncGetAttribute(
    value: *mut c_int,
    attribute: c_int,
    function: Handle,
) -> c_int {
    unsafe { cu::cu_func_get_attribute(value, attribute, function) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuOccupancyMaxActiveBlocksPerMultiprocessor(
    blocks: *mut c_int,
    function: Handle,
    block_size: c_int,
    dynamic_shared: usize,
) -> c_int {
    unsafe {
        cu::cu_occupancy_max_active_blocks_per_multiprocessor(
            blocks,
            function,
            block_size,
            dynamic_shared,
        )
    }
}

#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // the driver's signature
pub unsafe extern "C" fn cuLaunchKernel(
    function: Handle,
    grid_x: c_uint,
    grid_y: c_uint,
    grid_z: c_uint,
    block_x: c_uint,
    block_y: c_uint,
    block_z: c_uint,
    shared_bytes: c_uint,
    stream: Handle,
    params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> c_int {
    unsafe {
        cu::cu_launch_kernel(
            function,
            [grid_x, grid_y, grid_z],
            [block_x, block_y, block_z],
            shared_bytes,
            stream,
            params,
            extra,
        )
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamCreate(stream: *mut Handle, flags: c_uint) -> c_int {
    unsafe { cu::cu_stream_create(stream, flags) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventCreate(event: *mut Handle, flags: c_uint) -> c_int {
    unsafe { cu::cu_event_create(event, flags) }
}

#[unsafe(no_mangle)]
pub extern "C" fn cuEventRecord(event: Handle, stream: Handle) -> c_int {
    cu::cu_event_record(event, stream)
}

#[unsafe(no_mangle)]
pub extern "C" fn cuStreamWaitEvent(stream: Handle, event: Handle, flags: c_uint) -> c_int {
    cu::cu_stream_wait_event(stream, event, flags)
}

#[unsafe(no_mangle)]
pub extern "C" fn cuEventQuery(event: Handle) -> c_int {
    cu::cu_event_query(event)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventElapsedTime(ms: *mut f32, start: Handle, end: Handle) -> c_int {
    unsafe { cu::cu_event_elapsed_time(ms, start, end) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAlloc_v2(ptr: *mut u64, bytes: usize) -> c_int {
    unsafe { cu::cu_mem_alloc(ptr, bytes) }
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemFree_v2(ptr: u64) -> c_int {
    cu::cu_mem_free(ptr)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemHostAlloc(
    ptr: *mut *mut c_void,
    bytes: usize,
    flags: c_uint,
) -> c_int {
    unsafe { cu::cu_mem_host_alloc(ptr, bytes, flags) }
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemFreeHost(ptr: *mut c_void) -> c_int {
    cu::cu_mem_free_host(ptr)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemHostGetDevicePointer_v2(
    device_ptr: *mut u64,
    host: *mut c_void,
    flags: c_uint,
) -> c_int {
    unsafe { cu::cu_mem_host_get_device_pointer(device_ptr, host, flags) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpyHtoD_v2(dst: u64, src: *const c_void, bytes: usize) -> c_int {
    unsafe { cu::cu_memcpy_htod(dst, src, bytes) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpyDtoH_v2(dst: *mut c_void, src: u64, bytes: usize) -> c_int {
    unsafe { cu::cu_memcpy_dtoh(dst, src, bytes) }
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemcpyAsync(dst: u64, src: u64, bytes: usize, stream: Handle) -> c_int {
    cu::cu_memcpy_async(dst, src, bytes, stream)
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemsetD8Async(dst: u64, value: u8, count: usize, stream: Handle) -> c_int {
    cu::cu_memset_d8_async(dst, value, count, stream)
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemcpyPeerAsync(
    dst: u64,
    dst_context: Handle,
    src: u64,
    src_context: Handle,
    bytes: usize,
    stream: Handle,
) -> c_int {
    cu::cu_memcpy_peer_async(dst, dst_context, src, src_context, bytes, stream)
}
