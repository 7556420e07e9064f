//! The driver API calls, with the C signatures `p2ptop-emu-cuda` exports them under.
//!
//! Each checks what NVIDIA's documentation requires of its arguments and of the calling thread
//! (a current context, handles of that context), returns the code the real driver returns, and
//! logs every misuse. A panic inside is caught here and reported as CUDA_ERROR_UNKNOWN with a log
//! line: it is a bug of the emulation, and it must not unwind into the caller.

use super::codes::{self, attribute, function, jit, p2p};
use super::engine::{Op, What};
use super::kernels::{self, Function, Module};
use super::residency::BlockNeeds;
use super::state::{self, Event, EventState, Kind, State, Stream};
use super::{Driver, driver, start};
use crate::log;
use std::cell::Cell;
use std::ffi::{CStr, c_char, c_int, c_uint, c_void};
use std::sync::MutexGuard;

type Handle = *mut c_void;
type Result<T> = std::result::Result<T, i32>;

thread_local! {
    /// The context current on this OS thread, as `cuCtxSetCurrent` left it.
    static CURRENT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Runs one call: catches panics, turns the result into a code.
fn call(name: &str, body: impl FnOnce() -> Result<()>) -> c_int {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(Ok(())) => codes::SUCCESS,
        Ok(Err(code)) => code,
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            log::misuse(name, &format!("the emulation failed: {what}"));
            codes::UNKNOWN
        }
    }
}

/// Logs a misuse and gives its code.
fn misuse(name: &str, code: i32, message: impl AsRef<str>) -> i32 {
    log::misuse(name, message.as_ref());
    code
}

/// Writes `value` through an out-pointer the caller gave.
///
/// # Safety
/// `ptr` is null or valid for a write of `T`.
unsafe fn put<T>(name: &str, ptr: *mut T, value: T) -> Result<()> {
    if ptr.is_null() {
        return Err(misuse(name, codes::INVALID_VALUE, "a null out-pointer"));
    }
    // SAFETY: the caller vouches for non-null pointers.
    unsafe { ptr.write_unaligned(value) };
    Ok(())
}

/// Copies `text` into a C buffer of `len` bytes, NUL included.
///
/// # Safety
/// `buffer` is valid for `len` bytes.
unsafe fn put_string(name: &str, buffer: *mut c_char, len: c_int, text: &str) -> Result<()> {
    if buffer.is_null() || len <= 0 {
        return Err(misuse(name, codes::INVALID_VALUE, "no room for the string"));
    }
    let bytes = text.as_bytes();
    let n = bytes.len().min(len as usize - 1);
    // SAFETY: n + 1 <= len bytes are written into the caller's buffer.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), buffer as *mut u8, n);
        *buffer.add(n) = 0;
    }
    Ok(())
}

fn ready() -> Result<&'static Driver> {
    driver()
}

/// The driver, its state, and the calling thread's current context (which must exist and not be
/// poisoned).
fn in_context(name: &str) -> Result<(&'static Driver, MutexGuard<'static, State>, usize)> {
    let d = ready()?;
    let st = d.lock();
    let Some(context) = CURRENT.with(Cell::get) else {
        return Err(misuse(
            name,
            codes::INVALID_CONTEXT,
            "no context is current on this thread (cuCtxSetCurrent first)",
        ));
    };
    if let Some(code) = st.contexts[context].sticky {
        return Err(code);
    }
    Ok((d, st, context))
}

fn device_index(name: &str, st: &State, device: c_int) -> Result<usize> {
    usize::try_from(device)
        .ok()
        .filter(|&d| d < st.devices.len())
        .ok_or_else(|| {
            misuse(
                name,
                codes::INVALID_DEVICE,
                format!(
                    "device {device} does not exist ({} visible)",
                    st.devices.len()
                ),
            )
        })
}

fn context_of(name: &str, st: &State, handle: Handle) -> Result<usize> {
    state::index(Kind::Context, handle, st.contexts.len())
        .filter(|&c| st.contexts[c].retained > 0)
        .ok_or_else(|| {
            misuse(
                name,
                codes::INVALID_CONTEXT,
                format!("{handle:?} is not a live context"),
            )
        })
}

/// The stream a handle names for work in `context` (null: the context's default stream).
fn stream_of(name: &str, st: &mut State, handle: Handle, context: usize) -> Result<usize> {
    if handle.is_null() {
        return Ok(default_stream(st, context));
    }
    let s = state::index(Kind::Stream, handle, st.streams.len()).ok_or_else(|| {
        misuse(
            name,
            codes::INVALID_HANDLE,
            format!("{handle:?} is not a stream"),
        )
    })?;
    if st.streams[s].context != context {
        return Err(misuse(
            name,
            codes::INVALID_HANDLE,
            "the stream belongs to another context than the current one",
        ));
    }
    Ok(s)
}

/// The legacy default stream of `context`, made when first used.
fn default_stream(st: &mut State, context: usize) -> usize {
    if let Some(s) = st
        .streams
        .iter()
        .position(|s| s.context == context && s.hardware_queue == usize::MAX)
    {
        return s;
    }
    new_stream(st, context, usize::MAX)
}

fn new_stream(st: &mut State, context: usize, hardware_queue: usize) -> usize {
    st.streams.push(Stream {
        context,
        queue: Default::default(),
        running: None,
        hardware_queue,
        finished: 0,
    });
    st.streams.len() - 1
}

fn event_of(name: &str, st: &State, handle: Handle) -> Result<usize> {
    state::index(Kind::Event, handle, st.events.len()).ok_or_else(|| {
        misuse(
            name,
            codes::INVALID_HANDLE,
            format!("{handle:?} is not an event"),
        )
    })
}

fn enqueue(d: &Driver, st: &mut State, stream: usize, what: What) -> u64 {
    let seq = st.take_seq();
    st.streams[stream].queue.push_back(Op { seq, what });
    d.kick();
    seq
}

// ---------------------------------------------------------------------------------------------
// Initialisation and devices

pub fn cu_init(flags: c_uint) -> c_int {
    call("cuInit", || {
        if flags != 0 {
            return Err(misuse("cuInit", codes::INVALID_VALUE, "flags must be 0"));
        }
        start().map(|_| ())
    })
}

/// # Safety
/// `version` is valid for a write.
pub unsafe fn cu_driver_get_version(version: *mut c_int) -> c_int {
    call("cuDriverGetVersion", || {
        let (major, minor) = match ready() {
            Ok(d) => d.cuda_version,
            // Answered before cuInit too, as the real driver does.
            Err(_) => crate::config::load()
                .map(|c| super::parse_version(&c.machine.host().cuda_version))
                .map_err(|_| codes::NO_DEVICE)?,
        };
        // SAFETY: the caller vouches for the pointer.
        unsafe {
            put(
                "cuDriverGetVersion",
                version,
                (major * 1000 + minor * 10) as c_int,
            )
        }
    })
}

/// # Safety
/// `count` is valid for a write.
pub unsafe fn cu_device_get_count(count: *mut c_int) -> c_int {
    call("cuDeviceGetCount", || {
        let n = ready()?.lock().devices.len();
        // SAFETY: the caller vouches for the pointer.
        unsafe { put("cuDeviceGetCount", count, n as c_int) }
    })
}

/// # Safety
/// `device` is valid for a write.
pub unsafe fn cu_device_get(device: *mut c_int, ordinal: c_int) -> c_int {
    call("cuDeviceGet", || {
        let st = ready()?.lock();
        let d = device_index("cuDeviceGet", &st, ordinal)?;
        // SAFETY: the caller vouches for the pointer.
        unsafe { put("cuDeviceGet", device, d as c_int) }
    })
}

/// # Safety
/// `name` is valid for `len` bytes.
pub unsafe fn cu_device_get_name(name: *mut c_char, len: c_int, device: c_int) -> c_int {
    call("cuDeviceGetName", || {
        let st = ready()?.lock();
        let d = device_index("cuDeviceGetName", &st, device)?;
        // SAFETY: the caller vouches for the buffer.
        unsafe { put_string("cuDeviceGetName", name, len, &st.devices[d].name) }
    })
}

/// # Safety
/// `id` is valid for `len` bytes.
pub unsafe fn cu_device_get_pci_bus_id(id: *mut c_char, len: c_int, device: c_int) -> c_int {
    call("cuDeviceGetPCIBusId", || {
        let st = ready()?.lock();
        let d = device_index("cuDeviceGetPCIBusId", &st, device)?;
        // SAFETY: the caller vouches for the buffer.
        unsafe { put_string("cuDeviceGetPCIBusId", id, len, &st.devices[d].bus_id) }
    })
}

/// # Safety
/// `bytes` is valid for a write.
pub unsafe fn cu_device_total_mem(bytes: *mut usize, device: c_int) -> c_int {
    call("cuDeviceTotalMem", || {
        let st = ready()?.lock();
        let d = device_index("cuDeviceTotalMem", &st, device)?;
        // SAFETY: the caller vouches for the pointer.
        unsafe {
            put(
                "cuDeviceTotalMem",
                bytes,
                st.devices[d].memory_bytes as usize,
            )
        }
    })
}

/// # Safety
/// `value` is valid for a write.
pub unsafe fn cu_device_get_attribute(value: *mut c_int, attrib: c_int, device: c_int) -> c_int {
    const NAME: &str = "cuDeviceGetAttribute";
    call(NAME, || {
        let st = ready()?.lock();
        let d = &st.devices[device_index(NAME, &st, device)?];
        let limits = d.limits();
        let bus = d.bus_id.split(':').collect::<Vec<_>>();
        let hex = |i: usize| {
            bus.get(i)
                .and_then(|t| i64::from_str_radix(t.split('.').next().unwrap_or(t), 16).ok())
                .unwrap_or(0) as c_int
        };
        let answer = match attrib {
            attribute::MAX_THREADS_PER_BLOCK => 1024,
            attribute::MAX_BLOCK_DIM_X | attribute::MAX_BLOCK_DIM_Y => 1024,
            attribute::MAX_BLOCK_DIM_Z => 64,
            attribute::MAX_GRID_DIM_X => i32::MAX,
            attribute::MAX_GRID_DIM_Y | attribute::MAX_GRID_DIM_Z => 65_535,
            attribute::MAX_SHARED_MEMORY_PER_BLOCK => 48 * 1024,
            attribute::WARP_SIZE => 32,
            attribute::MAX_REGISTERS_PER_BLOCK => 65_536,
            attribute::CLOCK_RATE => d.clock_khz as c_int,
            attribute::MULTIPROCESSOR_COUNT => d.sm_count as c_int,
            attribute::INTEGRATED => 0,
            attribute::CAN_MAP_HOST_MEMORY | attribute::UNIFIED_ADDRESSING => 1,
            attribute::CONCURRENT_KERNELS => 1,
            attribute::PCI_DOMAIN_ID => hex(0),
            attribute::PCI_BUS_ID => hex(1),
            attribute::PCI_DEVICE_ID => hex(2),
            attribute::MEMORY_CLOCK_RATE => d.memory_clock_khz as c_int,
            attribute::GLOBAL_MEMORY_BUS_WIDTH => 5120,
            attribute::L2_CACHE_SIZE => d.l2_bytes as c_int,
            attribute::MAX_THREADS_PER_MULTIPROCESSOR => limits.threads as c_int,
            attribute::ASYNC_ENGINE_COUNT => 2,
            attribute::COMPUTE_CAPABILITY_MAJOR => d.capability.0 as c_int,
            attribute::COMPUTE_CAPABILITY_MINOR => d.capability.1 as c_int,
            attribute::MAX_SHARED_MEMORY_PER_MULTIPROCESSOR => 228 * 1024,
            attribute::MAX_REGISTERS_PER_MULTIPROCESSOR => limits.registers as c_int,
            attribute::MAX_BLOCKS_PER_MULTIPROCESSOR => limits.blocks as c_int,
            attribute::HOST_NUMA_ID => d.numa_node as c_int,
            other => {
                return Err(misuse(
                    NAME,
                    codes::INVALID_VALUE,
                    format!("attribute {other} is not emulated; add it to the emulation"),
                ));
            }
        };
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, value, answer) }
    })
}

/// Whether GPU `a` (a device index) may map GPU `b`'s memory, as the machine allows.
fn peer_capable(st: &State, a: usize, b: usize) -> bool {
    a != b && {
        let (ga, gb) = (st.devices[a].gpu, st.devices[b].gpu);
        st.machine().p2p(ga, gb).read.is_ok()
    }
}

/// # Safety
/// `can` is valid for a write.
pub unsafe fn cu_device_can_access_peer(can: *mut c_int, device: c_int, peer: c_int) -> c_int {
    const NAME: &str = "cuDeviceCanAccessPeer";
    call(NAME, || {
        let st = ready()?.lock();
        let (a, b) = (
            device_index(NAME, &st, device)?,
            device_index(NAME, &st, peer)?,
        );
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, can, c_int::from(peer_capable(&st, a, b))) }
    })
}

/// # Safety
/// `value` is valid for a write.
pub unsafe fn cu_device_get_p2p_attribute(
    value: *mut c_int,
    attrib: c_int,
    src: c_int,
    dst: c_int,
) -> c_int {
    const NAME: &str = "cuDeviceGetP2PAttribute";
    call(NAME, || {
        let st = ready()?.lock();
        let (a, b) = (device_index(NAME, &st, src)?, device_index(NAME, &st, dst)?);
        if a == b {
            return Err(misuse(
                NAME,
                codes::INVALID_DEVICE,
                "source and destination are one device",
            ));
        }
        let (ga, gb) = (st.devices[a].gpu, st.devices[b].gpu);
        let caps = st.machine().p2p(ga, gb);
        let answer = match attrib {
            p2p::PERFORMANCE_RANK => c_int::from(st.machine().nvlinks_between(ga, gb) == 0),
            p2p::ACCESS_SUPPORTED => c_int::from(caps.read.is_ok()),
            p2p::NATIVE_ATOMIC_SUPPORTED => c_int::from(caps.atomics.is_ok()),
            p2p::CUDA_ARRAY_ACCESS_SUPPORTED => c_int::from(caps.read.is_ok()),
            other => {
                return Err(misuse(
                    NAME,
                    codes::INVALID_VALUE,
                    format!("P2P attribute {other} is not one of 1-4"),
                ));
            }
        };
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, value, answer) }
    })
}

// ---------------------------------------------------------------------------------------------
// Contexts

/// # Safety
/// `context` is valid for a write.
pub unsafe fn cu_device_primary_ctx_retain(context: *mut Handle, device: c_int) -> c_int {
    const NAME: &str = "cuDevicePrimaryCtxRetain";
    call(NAME, || {
        let mut st = ready()?.lock();
        let d = device_index(NAME, &st, device)?;
        st.contexts[d].retained += 1;
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, context, state::handle(Kind::Context, d)) }
    })
}

pub fn cu_ctx_set_current(context: Handle) -> c_int {
    call("cuCtxSetCurrent", || {
        let st = ready()?.lock();
        let current = if context.is_null() {
            None
        } else {
            Some(context_of("cuCtxSetCurrent", &st, context)?)
        };
        CURRENT.with(|c| c.set(current));
        Ok(())
    })
}

pub fn cu_ctx_synchronize() -> c_int {
    call("cuCtxSynchronize", || {
        let (d, st, context) = in_context("cuCtxSynchronize")?;
        let st = d.wait_until(st, |st| {
            st.contexts[context].sticky.is_some() || st.context_idle(context)
        });
        st.contexts[context].sticky.map_or(Ok(()), Err)
    })
}

pub fn cu_ctx_enable_peer_access(peer: Handle, flags: c_uint) -> c_int {
    const NAME: &str = "cuCtxEnablePeerAccess";
    call(NAME, || {
        let (_, mut st, context) = in_context(NAME)?;
        if flags != 0 {
            return Err(misuse(NAME, codes::INVALID_VALUE, "flags must be 0"));
        }
        let other = context_of(NAME, &st, peer)?;
        let (a, b) = (st.contexts[context].device, st.contexts[other].device);
        if a == b {
            return Err(misuse(
                NAME,
                codes::INVALID_DEVICE,
                "a context cannot be its own peer",
            ));
        }
        if !peer_capable(&st, a, b) {
            return Err(misuse(
                NAME,
                codes::PEER_ACCESS_UNSUPPORTED,
                "these GPUs cannot access each other's memory (check cuDeviceCanAccessPeer first)",
            ));
        }
        let gpu = st.devices[b].gpu;
        if !st.contexts[context].peers.insert(gpu) {
            return Err(codes::PEER_ACCESS_ALREADY_ENABLED);
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Modules and launches

/// # Safety
/// `image` is a NUL-terminated PTX text; `options` and `values` hold `count` entries each, and
/// the log buffers they name are valid for the sizes they give.
pub unsafe fn cu_module_load_data_ex(
    module: *mut Handle,
    image: *const c_void,
    count: c_uint,
    options: *mut c_int,
    values: *mut *mut c_void,
) -> c_int {
    const NAME: &str = "cuModuleLoadDataEx";
    call(NAME, || {
        let (d, mut st, context) = in_context(NAME)?;
        if image.is_null() || (count > 0 && (options.is_null() || values.is_null())) {
            return Err(misuse(
                NAME,
                codes::INVALID_VALUE,
                "a null image or option array",
            ));
        }
        // SAFETY: the caller vouches for `count` options and values.
        let (options, values) = unsafe {
            (
                std::slice::from_raw_parts(options, count as usize),
                std::slice::from_raw_parts_mut(values, count as usize),
            )
        };
        if let Some(bad) = options
            .iter()
            .find(|&&o| !(0..=jit::LAST_KNOWN).contains(&o))
        {
            return Err(misuse(
                NAME,
                codes::INVALID_VALUE,
                format!("unknown JIT option {bad}"),
            ));
        }
        // SAFETY: the caller vouches for a NUL-terminated image.
        let bytes = unsafe { CStr::from_ptr(image as *const c_char) }.to_bytes();
        let capability = st.device_of(context).capability;
        let compiled = match std::str::from_utf8(bytes) {
            Ok(text) if !bytes.starts_with(b"\x7fELF") => {
                kernels::compile(text, capability, d.cuda_version)
            }
            _ => Err((
                codes::INVALID_IMAGE,
                "the emulation compiles PTX text only, not cubins or fatbins".to_owned(),
            )),
        };
        let (ptx, isa) = match compiled {
            Ok(done) => done,
            Err((code, message)) => {
                // SAFETY: the option values are the caller's log buffers and sizes.
                unsafe {
                    write_log(
                        options,
                        values,
                        jit::ERROR_LOG_BUFFER,
                        jit::ERROR_LOG_BUFFER_SIZE_BYTES,
                        &message,
                    )
                };
                return Err(misuse(
                    NAME,
                    code,
                    format!("the PTX does not compile: {message}"),
                ));
            }
        };
        // SAFETY: as above; an empty info log.
        unsafe {
            write_log(
                options,
                values,
                jit::INFO_LOG_BUFFER,
                jit::INFO_LOG_BUFFER_SIZE_BYTES,
                "",
            )
        };
        st.modules.push(Module { context, ptx, isa });
        let handle = state::handle(Kind::Module, st.modules.len() - 1);
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, module, handle) }
    })
}

/// Writes `message` into the log buffer the options name, and what it used into the size slot.
///
/// # Safety
/// The values of `buffer_option` and `size_option` are a buffer and its size.
unsafe fn write_log(
    options: &[c_int],
    values: &mut [*mut c_void],
    buffer_option: c_int,
    size_option: c_int,
    message: &str,
) {
    let buffer = options.iter().position(|&o| o == buffer_option);
    let size = options.iter().position(|&o| o == size_option);
    if let (Some(b), Some(s)) = (buffer, size) {
        let capacity = values[s] as usize;
        if capacity > 0 && !values[b].is_null() {
            let n = message.len().min(capacity - 1);
            // SAFETY: the buffer holds `capacity` bytes; n + 1 of them are written.
            unsafe {
                std::ptr::copy_nonoverlapping(message.as_ptr(), values[b] as *mut u8, n);
                *(values[b] as *mut u8).add(n) = 0;
            }
            values[s] = (n + 1) as *mut c_void;
        }
    }
}

/// # Safety
/// `name` is NUL-terminated; `function` is valid for a write.
pub unsafe fn cu_module_get_function(
    function: *mut Handle,
    module: Handle,
    name: *const c_char,
) -> c_int {
    const NAME: &str = "cuModuleGetFunction";
    call(NAME, || {
        let mut st = ready()?.lock();
        let m = state::index(Kind::Module, module, st.modules.len()).ok_or_else(|| {
            misuse(
                NAME,
                codes::INVALID_HANDLE,
                format!("{module:?} is not a module"),
            )
        })?;
        if name.is_null() {
            return Err(misuse(NAME, codes::INVALID_VALUE, "a null kernel name"));
        }
        // SAFETY: the caller vouches for a NUL-terminated name.
        let entry = unsafe { CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned();
        let capability = st.device_of(st.modules[m].context).capability;
        let Some(f) = Function::new(m, &st.modules[m], &entry, capability) else {
            return Err(misuse(
                NAME,
                codes::NOT_FOUND,
                format!("the module has no kernel {entry}"),
            ));
        };
        st.functions.push(f);
        let handle = state::handle(Kind::Function, st.functions.len() - 1);
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, function, handle) }
    })
}

/// Most threads per block a function launches with: what the SM's registers allow, in whole
/// warps, at most 1024.
fn max_threads(f: &Function) -> u32 {
    let per_warp = (f.registers * 32).next_multiple_of(256);
    ((65_536 / per_warp.max(1)) * 32).min(1024)
}

/// # Safety
/// `value` is valid for a write.
pub unsafe fn cu_func_get_attribute(value: *mut c_int, attrib: c_int, func: Handle) -> c_int {
    const NAME: &str = "cuFuncGetAttribute";
    call(NAME, || {
        let st = ready()?.lock();
        let f = state::index(Kind::Function, func, st.functions.len())
            .map(|i| &st.functions[i])
            .ok_or_else(|| {
                misuse(
                    NAME,
                    codes::INVALID_HANDLE,
                    format!("{func:?} is not a function"),
                )
            })?;
        let m = &st.modules[f.module];
        let answer = match attrib {
            function::MAX_THREADS_PER_BLOCK => max_threads(f),
            function::NUM_REGS => f.registers,
            function::SHARED_SIZE_BYTES
            | function::CONST_SIZE_BYTES
            | function::LOCAL_SIZE_BYTES => 0,
            function::PTX_VERSION => m.isa,
            function::BINARY_VERSION => {
                st.device_of(f.context).capability.0 * 10 + st.device_of(f.context).capability.1
            }
            other => {
                return Err(misuse(
                    NAME,
                    codes::INVALID_VALUE,
                    format!("function attribute {other} is not emulated"),
                ));
            }
        };
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, value, answer as c_int) }
    })
}

/// # Safety
/// `blocks` is valid for a write.
pub unsafe fn cu_occupancy_max_active_blocks_per_multiprocessor(
    blocks: *mut c_int,
    func: Handle,
    block_size: c_int,
    dynamic_shared: usize,
) -> c_int {
    const NAME: &str = "cuOccupancyMaxActiveBlocksPerMultiprocessor";
    call(NAME, || {
        let st = ready()?.lock();
        let f = state::index(Kind::Function, func, st.functions.len())
            .map(|i| &st.functions[i])
            .ok_or_else(|| {
                misuse(
                    NAME,
                    codes::INVALID_HANDLE,
                    format!("{func:?} is not a function"),
                )
            })?;
        if block_size <= 0 || dynamic_shared > 48 * 1024 {
            return Err(misuse(
                NAME,
                codes::INVALID_VALUE,
                "a block size of at least 1 and no more than 48 KiB of shared memory",
            ));
        }
        let answer = if block_size as u32 > max_threads(f) {
            0
        } else {
            BlockNeeds::new(block_size as u32, f.registers).per_sm(st.device_of(f.context).limits())
        };
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, blocks, answer as c_int) }
    })
}

/// # Safety
/// `params` holds one pointer per kernel parameter, each to a value of the parameter's width.
#[allow(clippy::too_many_arguments)] // the driver's signature
pub unsafe fn cu_launch_kernel(
    func: Handle,
    grid: [c_uint; 3],
    block: [c_uint; 3],
    shared_bytes: c_uint,
    stream: Handle,
    params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> c_int {
    const NAME: &str = "cuLaunchKernel";
    call(NAME, || {
        let (d, mut st, context) = in_context(NAME)?;
        let f = state::index(Kind::Function, func, st.functions.len()).ok_or_else(|| {
            misuse(
                NAME,
                codes::INVALID_HANDLE,
                format!("{func:?} is not a function"),
            )
        })?;
        let function = &st.functions[f];
        if function.context != context {
            return Err(misuse(
                NAME,
                codes::INVALID_HANDLE,
                format!(
                    "{} was loaded in another context than the current one",
                    function.name
                ),
            ));
        }
        let threads = u64::from(block[0]) * u64::from(block[1]) * u64::from(block[2]);
        let grid_ok = (1..=i32::MAX as u32).contains(&grid[0])
            && (1..=65_535).contains(&grid[1])
            && (1..=65_535).contains(&grid[2]);
        let block_ok = block.iter().all(|&b| b >= 1)
            && block[0] <= 1024
            && block[1] <= 1024
            && block[2] <= 64
            && threads <= 1024;
        if !grid_ok || !block_ok || shared_bytes > 48 * 1024 {
            return Err(misuse(
                NAME,
                codes::INVALID_VALUE,
                format!(
                    "grid {grid:?} x block {block:?} with {shared_bytes} B shared is beyond the device's limits"
                ),
            ));
        }
        if threads as u32 > max_threads(function) {
            return Err(misuse(
                NAME,
                codes::LAUNCH_OUT_OF_RESOURCES,
                format!(
                    "{} uses {} registers per thread: {threads} threads do not fit one SM's registers",
                    function.name, function.registers
                ),
            ));
        }
        if !extra.is_null() {
            return Err(misuse(
                NAME,
                codes::INVALID_VALUE,
                "extra is not emulated; pass kernelParams",
            ));
        }
        if params.is_null() && !function.params.is_empty() {
            return Err(misuse(
                NAME,
                codes::INVALID_VALUE,
                format!(
                    "{} takes parameters but kernelParams is null",
                    function.name
                ),
            ));
        }
        let mut args = Vec::with_capacity(function.params.len());
        for (i, &bits) in function.params.iter().enumerate() {
            // SAFETY: the caller vouches for one pointer per parameter.
            let slot = unsafe { *params.add(i) };
            if slot.is_null() {
                return Err(misuse(
                    NAME,
                    codes::INVALID_VALUE,
                    format!("{}: parameter {i} is a null pointer", function.name),
                ));
            }
            // SAFETY: the slot points at a value of the parameter's width.
            let value = unsafe {
                match bits {
                    64 => (slot as *const u64).read_unaligned(),
                    32 => u64::from((slot as *const u32).read_unaligned()),
                    16 => u64::from((slot as *const u16).read_unaligned()),
                    _ => u64::from((slot as *const u8).read_unaligned()),
                }
            };
            args.push(value);
        }
        let s = stream_of(NAME, &mut st, stream, context)?;
        let total = grid[0] * grid[1] * grid[2];
        enqueue(
            d,
            &mut st,
            s,
            What::Launch {
                function: f,
                grid: total,
                block: threads as u32,
                args,
            },
        );
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Streams and events

/// # Safety
/// `stream` is valid for a write.
pub unsafe fn cu_stream_create(stream: *mut Handle, flags: c_uint) -> c_int {
    const NAME: &str = "cuStreamCreate";
    call(NAME, || {
        let (_, mut st, context) = in_context(NAME)?;
        if flags & !codes::STREAM_NON_BLOCKING != 0 {
            return Err(misuse(
                NAME,
                codes::INVALID_VALUE,
                format!("unknown stream flags {flags:#x}"),
            ));
        }
        let device = st.contexts[context].device;
        let queue = st.streams_on(device) % st.max_connections;
        let s = new_stream(&mut st, context, queue);
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, stream, state::handle(Kind::Stream, s)) }
    })
}

/// # Safety
/// `event` is valid for a write.
pub unsafe fn cu_event_create(event: *mut Handle, flags: c_uint) -> c_int {
    const NAME: &str = "cuEventCreate";
    call(NAME, || {
        let (_, mut st, context) = in_context(NAME)?;
        let known =
            codes::EVENT_BLOCKING_SYNC | codes::EVENT_DISABLE_TIMING | codes::EVENT_INTERPROCESS;
        if flags & !known != 0
            || (flags & codes::EVENT_INTERPROCESS != 0 && flags & codes::EVENT_DISABLE_TIMING == 0)
        {
            return Err(misuse(
                NAME,
                codes::INVALID_VALUE,
                format!("bad event flags {flags:#x}"),
            ));
        }
        st.events.push(Event {
            context,
            timing: flags & codes::EVENT_DISABLE_TIMING == 0,
            state: EventState::Unrecorded,
        });
        let handle = state::handle(Kind::Event, st.events.len() - 1);
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, event, handle) }
    })
}

pub fn cu_event_record(event: Handle, stream: Handle) -> c_int {
    const NAME: &str = "cuEventRecord";
    call(NAME, || {
        let d = ready()?;
        let mut st = d.lock();
        let e = event_of(NAME, &st, event)?;
        let context = st.events[e].context;
        if let Some(code) = st.contexts[context].sticky {
            return Err(code);
        }
        if !stream.is_null()
            && state::index(Kind::Stream, stream, st.streams.len())
                .is_some_and(|s| st.streams[s].context != context)
        {
            return Err(misuse(
                NAME,
                codes::INVALID_HANDLE,
                "the event and the stream belong to different contexts",
            ));
        }
        let s = stream_of(NAME, &mut st, stream, context)?;
        let seq = enqueue(d, &mut st, s, What::Record(e));
        st.events[e].state = EventState::Pending(seq);
        Ok(())
    })
}

pub fn cu_stream_wait_event(stream: Handle, event: Handle, flags: c_uint) -> c_int {
    const NAME: &str = "cuStreamWaitEvent";
    call(NAME, || {
        let (d, mut st, context) = in_context(NAME)?;
        if flags != 0 {
            return Err(misuse(NAME, codes::INVALID_VALUE, "flags must be 0"));
        }
        // The event may belong to any context, of any GPU.
        let e = event_of(NAME, &st, event)?;
        let record = match st.events[e].state {
            EventState::Pending(seq) => Some(seq),
            EventState::Unrecorded | EventState::Done(_) => None,
        };
        let s = stream_of(NAME, &mut st, stream, context)?;
        enqueue(d, &mut st, s, What::Wait { event: e, record });
        Ok(())
    })
}

pub fn cu_event_query(event: Handle) -> c_int {
    call("cuEventQuery", || {
        let st = ready()?.lock();
        let e = &st.events[event_of("cuEventQuery", &st, event)?];
        if let Some(code) = st.contexts[e.context].sticky {
            return Err(code);
        }
        match e.state {
            EventState::Pending(_) => Err(codes::NOT_READY),
            EventState::Unrecorded | EventState::Done(_) => Ok(()),
        }
    })
}

/// # Safety
/// `ms` is valid for a write.
pub unsafe fn cu_event_elapsed_time(ms: *mut f32, start: Handle, end: Handle) -> c_int {
    const NAME: &str = "cuEventElapsedTime";
    call(NAME, || {
        let st = ready()?.lock();
        let (a, b) = (event_of(NAME, &st, start)?, event_of(NAME, &st, end)?);
        let (a, b) = (&st.events[a], &st.events[b]);
        if let Some(code) = st.contexts[a.context]
            .sticky
            .or(st.contexts[b.context].sticky)
        {
            return Err(code);
        }
        if !a.timing || !b.timing {
            return Err(misuse(
                NAME,
                codes::INVALID_HANDLE,
                "an event was created without timing",
            ));
        }
        match (a.state, b.state) {
            (EventState::Done(t0), EventState::Done(t1)) => {
                // SAFETY: the caller vouches for the pointer.
                unsafe { put(NAME, ms, ((t1 - t0) * 1e3) as f32) }
            }
            (EventState::Unrecorded, _) | (_, EventState::Unrecorded) => Err(misuse(
                NAME,
                codes::INVALID_HANDLE,
                "an event was never recorded",
            )),
            _ => Err(misuse(
                NAME,
                codes::NOT_READY,
                "an event has not completed yet (wait for it before asking the time)",
            )),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Memory

/// # Safety
/// `ptr` is valid for a write.
pub unsafe fn cu_mem_alloc(ptr: *mut u64, bytes: usize) -> c_int {
    const NAME: &str = "cuMemAlloc";
    call(NAME, || {
        let (_, mut st, context) = in_context(NAME)?;
        if bytes == 0 {
            return Err(misuse(
                NAME,
                codes::INVALID_VALUE,
                "an allocation of 0 bytes",
            ));
        }
        let device = st.device_of(context);
        let (gpu, capacity) = (device.gpu, device.memory_bytes);
        let addr = st
            .memory
            .alloc_device(gpu, capacity, context, bytes as u64)
            .ok_or(codes::OUT_OF_MEMORY)?;
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, ptr, addr) }
    })
}

/// Frees an allocation once the work that may touch it is done (the driver synchronises).
fn free(name: &str, addr: u64, host: bool) -> Result<()> {
    let d = ready()?;
    let st = d.lock();
    let Some(owner) = st
        .memory
        .find(addr, 1)
        .filter(|a| a.base == addr)
        .map(|a| a.context)
    else {
        return Err(misuse(
            name,
            codes::INVALID_VALUE,
            format!("{addr:#x} is not an allocation: freed twice, or never allocated"),
        ));
    };
    let mut st = d.wait_until(st, |st| {
        st.contexts[owner].sticky.is_some() || st.context_idle(owner)
    });
    if let Some(code) = st.contexts[owner].sticky {
        return Err(code);
    }
    match st.memory.free(addr, host) {
        Some(_) => Ok(()),
        None => Err(misuse(
            name,
            codes::INVALID_VALUE,
            format!(
                "{addr:#x} is {} memory",
                if host { "device" } else { "host" }
            ),
        )),
    }
}

pub fn cu_mem_free(ptr: u64) -> c_int {
    call("cuMemFree", || free("cuMemFree", ptr, false))
}

/// # Safety
/// `ptr` is valid for a write.
pub unsafe fn cu_mem_host_alloc(ptr: *mut *mut c_void, bytes: usize, flags: c_uint) -> c_int {
    const NAME: &str = "cuMemHostAlloc";
    call(NAME, || {
        let (_, mut st, context) = in_context(NAME)?;
        let known = codes::HOST_ALLOC_PORTABLE
            | codes::HOST_ALLOC_DEVICEMAP
            | codes::HOST_ALLOC_WRITECOMBINED;
        if bytes == 0 || flags & !known != 0 {
            return Err(misuse(
                NAME,
                codes::INVALID_VALUE,
                format!("{bytes} bytes with flags {flags:#x}"),
            ));
        }
        let addr = st
            .memory
            .alloc_host(context, bytes as u64, flags)
            .ok_or(codes::OUT_OF_MEMORY)?;
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, ptr, addr as *mut c_void) }
    })
}

pub fn cu_mem_free_host(ptr: *mut c_void) -> c_int {
    call("cuMemFreeHost", || free("cuMemFreeHost", ptr as u64, true))
}

/// # Safety
/// `device_ptr` is valid for a write.
pub unsafe fn cu_mem_host_get_device_pointer(
    device_ptr: *mut u64,
    host: *mut c_void,
    flags: c_uint,
) -> c_int {
    const NAME: &str = "cuMemHostGetDevicePointer";
    call(NAME, || {
        let (_, st, context) = in_context(NAME)?;
        if flags != 0 {
            return Err(misuse(NAME, codes::INVALID_VALUE, "flags must be 0"));
        }
        let addr = host as u64;
        let gpu = st.device_of(context).gpu;
        let peers = &st.contexts[context].peers;
        st.memory
            .reachable(gpu, context, peers, addr, 1)
            .map_err(|why| misuse(NAME, codes::INVALID_VALUE, why))?;
        // SAFETY: the caller vouches for the pointer.
        unsafe { put(NAME, device_ptr, addr) }
    })
}

/// # Safety
/// `src` is valid for `bytes` bytes.
pub unsafe fn cu_memcpy_htod(dst: u64, src: *const c_void, bytes: usize) -> c_int {
    const NAME: &str = "cuMemcpyHtoD";
    call(NAME, || {
        let (_, mut st, _) = in_context(NAME)?;
        // SAFETY: the caller vouches for `bytes` readable bytes.
        let data = unsafe { std::slice::from_raw_parts(src as *const u8, bytes) };
        st.memory
            .write(dst, data)
            .map_err(|why| misuse(NAME, codes::INVALID_VALUE, why))
    })
}

/// # Safety
/// `dst` is valid for `bytes` bytes.
pub unsafe fn cu_memcpy_dtoh(dst: *mut c_void, src: u64, bytes: usize) -> c_int {
    const NAME: &str = "cuMemcpyDtoH";
    call(NAME, || {
        let (_, st, _) = in_context(NAME)?;
        // SAFETY: the caller vouches for `bytes` writable bytes.
        let out = unsafe { std::slice::from_raw_parts_mut(dst as *mut u8, bytes) };
        st.memory
            .read(src, out)
            .map_err(|why| misuse(NAME, codes::INVALID_VALUE, why))
    })
}

/// Queues a copy-engine copy; when the driver must stage it through host memory (two GPUs
/// without peer access between their contexts), the call returns only once the copy is done, as
/// the real driver's staging may block the host.
fn copy_async(
    name: &str,
    dst: u64,
    src: u64,
    bytes: usize,
    stream: Handle,
    context: usize,
) -> Result<()> {
    let d = ready()?;
    let mut st = d.lock();
    if let Some(code) = st.contexts[context].sticky {
        return Err(code);
    }
    let bytes = bytes as u64;
    let (Some(from), Some(to)) = (
        st.memory.find(src, bytes).map(|a| a.place),
        st.memory.find(dst, bytes).map(|a| a.place),
    ) else {
        return Err(misuse(
            name,
            codes::INVALID_VALUE,
            format!("{bytes} bytes from {src:#x} to {dst:#x}: an end is not inside one allocation"),
        ));
    };
    let s = stream_of(name, &mut st, stream, context)?;
    let staged = match (from, to) {
        (super::memory::Place::Device(a), super::memory::Place::Device(b)) if a != b => {
            !st.contexts.iter().any(|c| {
                let gpu = st.devices[c.device].gpu;
                (gpu == a && c.peers.contains(&b)) || (gpu == b && c.peers.contains(&a))
            })
        }
        _ => false,
    };
    let seq = enqueue(d, &mut st, s, What::Copy { dst, src, bytes });
    if staged {
        let st = d.wait_until(st, |st| {
            st.contexts[context].sticky.is_some() || st.streams[s].finished >= seq
        });
        drop(st);
    }
    Ok(())
}

pub fn cu_memcpy_async(dst: u64, src: u64, bytes: usize, stream: Handle) -> c_int {
    const NAME: &str = "cuMemcpyAsync";
    call(NAME, || {
        let (_, st, context) = in_context(NAME)?;
        drop(st);
        copy_async(NAME, dst, src, bytes, stream, context)
    })
}

pub fn cu_memcpy_peer_async(
    dst: u64,
    dst_context: Handle,
    src: u64,
    src_context: Handle,
    bytes: usize,
    stream: Handle,
) -> c_int {
    const NAME: &str = "cuMemcpyPeerAsync";
    call(NAME, || {
        let context = {
            let (_, st, context) = in_context(NAME)?;
            for (addr, handle) in [(dst, dst_context), (src, src_context)] {
                let owner = context_of(NAME, &st, handle)?;
                let gpu = st.devices[st.contexts[owner].device].gpu;
                let home = st.memory.find(addr, bytes as u64).map(|a| a.place);
                if home != Some(super::memory::Place::Device(gpu)) {
                    return Err(misuse(
                        NAME,
                        codes::INVALID_VALUE,
                        format!(
                            "{addr:#x} is not {bytes} bytes of the memory of the context named with it"
                        ),
                    ));
                }
            }
            context
        };
        copy_async(NAME, dst, src, bytes, stream, context)
    })
}

pub fn cu_memset_d8_async(dst: u64, value: u8, count: usize, stream: Handle) -> c_int {
    const NAME: &str = "cuMemsetD8Async";
    call(NAME, || {
        let (d, mut st, context) = in_context(NAME)?;
        if st.memory.find(dst, count as u64).is_none() {
            return Err(misuse(
                NAME,
                codes::INVALID_VALUE,
                format!("{count} bytes at {dst:#x} are not inside one allocation"),
            ));
        }
        let s = stream_of(NAME, &mut st, stream, context)?;
        enqueue(
            d,
            &mut st,
            s,
            What::Memset {
                dst,
                value,
                count: count as u64,
            },
        );
        Ok(())
    })
}
