//! The PTX kernels of `ptx/`, loaded into one GPU's context, with typed launches.

use super::driver::{self, Result};
use cust::sys::{CUdeviceptr, CUfunction, CUstream};
use p2ptop::probe::driver_error::DriverError;
use std::ffi::{CStr, c_void};

/// The kernels' sources, NUL-terminated for the driver.
const COPY_PTX: &CStr = to_cstr(concat!(include_str!("../../../ptx/copy.ptx"), "\0"));
const GATE_PTX: &CStr = to_cstr(concat!(include_str!("../../../ptx/gate.ptx"), "\0"));
const CHASE_PTX: &CStr = to_cstr(concat!(include_str!("../../../ptx/chase.ptx"), "\0"));
const PATTERN_PTX: &CStr = to_cstr(concat!(include_str!("../../../ptx/pattern.ptx"), "\0"));

const fn to_cstr(text: &str) -> &CStr {
    match CStr::from_bytes_with_nul(text.as_bytes()) {
        Ok(cstr) => cstr,
        Err(_) => panic!("a PTX file contains a NUL byte"),
    }
}

/// What `p2p_gate` leaves in its status word.
pub const GATE_RELEASED: u32 = 1;

/// `p2p_pattern`'s modes.
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum PatternMode {
    Fill = 0,
    Verify = 1,
}

/// One GPU's loaded kernels.
pub struct Kernels {
    copy: CUfunction,
    gate: CUfunction,
    chase: CUfunction,
    pattern: CUfunction,
}

/// A kernel that failed to load, with the JIT compiler's words on why.
pub struct LoadError {
    pub error: DriverError,
    pub kernel: &'static str,
    pub jit_log: String,
}

impl Kernels {
    /// Loads (JIT-compiles) every kernel into the current context.
    pub fn load() -> std::result::Result<Kernels, LoadError> {
        Ok(Kernels {
            copy: load_one(COPY_PTX, c"p2p_copy")?,
            gate: load_one(GATE_PTX, c"p2p_gate")?,
            chase: load_one(CHASE_PTX, c"p2p_chase")?,
            pattern: load_one(PATTERN_PTX, c"p2p_pattern")?,
        })
    }

    /// # Safety
    /// `dst` and `src` are valid, 16-byte aligned ranges of `bytes` bytes for this GPU.
    pub unsafe fn copy(
        &self,
        stream: CUstream,
        shape: Shape,
        dst: CUdeviceptr,
        src: CUdeviceptr,
        bytes: u64,
        repeats: u32,
    ) -> Result<()> {
        let (mut dst, mut src, mut bytes, mut repeats) = (dst, src, bytes, repeats);
        // SAFETY: one pointer per parameter of p2p_copy(u64, u64, u64, u32), in order.
        unsafe {
            driver::launch(
                self.copy,
                shape.blocks,
                shape.threads,
                stream,
                &mut [
                    arg(&mut dst),
                    arg(&mut src),
                    arg(&mut bytes),
                    arg(&mut repeats),
                ],
            )
        }
    }

    /// # Safety
    /// `flag` and `status` are device addresses of host-mapped u32 words.
    pub unsafe fn gate(
        &self,
        stream: CUstream,
        flag: CUdeviceptr,
        status: CUdeviceptr,
        timeout_cycles: u64,
    ) -> Result<()> {
        let (mut flag, mut status, mut timeout) = (flag, status, timeout_cycles);
        // SAFETY: one pointer per parameter of p2p_gate(u64, u64, u64), in order.
        unsafe {
            driver::launch(
                self.gate,
                1,
                1,
                stream,
                &mut [arg(&mut flag), arg(&mut status), arg(&mut timeout)],
            )
        }
    }

    /// # Safety
    /// `start` begins a chain of valid addresses (see `chain.rs`); `out` holds a u64.
    pub unsafe fn chase(
        &self,
        stream: CUstream,
        start: CUdeviceptr,
        steps: u64,
        out: CUdeviceptr,
    ) -> Result<()> {
        let (mut start, mut steps, mut out) = (start, steps, out);
        // SAFETY: one pointer per parameter of p2p_chase(u64, u64, u64), in order.
        unsafe {
            driver::launch(
                self.chase,
                1,
                1,
                stream,
                &mut [arg(&mut start), arg(&mut steps), arg(&mut out)],
            )
        }
    }

    /// # Safety
    /// `buf` is a valid, 4-byte aligned range of `bytes` bytes; for verify, `result` holds two
    /// u64 set to {0, u64::MAX}.
    #[allow(clippy::too_many_arguments)] // one per kernel parameter, plus where to run it
    pub unsafe fn pattern(
        &self,
        stream: CUstream,
        shape: Shape,
        buf: CUdeviceptr,
        bytes: u64,
        seed: u32,
        mode: PatternMode,
        result: CUdeviceptr,
    ) -> Result<()> {
        let (mut buf, mut bytes, mut seed, mut mode, mut result) =
            (buf, bytes, seed, mode as u32, result);
        // SAFETY: one pointer per parameter of p2p_pattern(u64, u64, u32, u32, u64), in order.
        unsafe {
            driver::launch(
                self.pattern,
                shape.blocks,
                shape.threads,
                stream,
                &mut [
                    arg(&mut buf),
                    arg(&mut bytes),
                    arg(&mut seed),
                    arg(&mut mode),
                    arg(&mut result),
                ],
            )
        }
    }
}

/// A 1-D launch shape.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub blocks: u32,
    pub threads: u32,
}

impl Kernels {
    /// Why blocks of `block_size` threads, `blocks_per_sm` to an SM, cannot run as the copy
    /// and pattern kernels need them (one block of every flow's grid resident at once), if they
    /// cannot; the driver's own figures for the kernels' registers decide.
    pub fn shape_problem(&self, block_size: u32, blocks_per_sm: u32) -> Result<Option<String>> {
        for (function, name, together) in [
            (self.copy, "p2p_copy", true),
            (self.pattern, "p2p_pattern", false),
        ] {
            use cust::sys::CUfunction_attribute::*;
            let registers = driver::function_attribute(function, CU_FUNC_ATTRIBUTE_NUM_REGS)?;
            let most =
                driver::function_attribute(function, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK)?;
            if block_size > most.max(0) as u32 {
                return Ok(Some(format!(
                    "block_size {block_size}: {name} uses {registers} registers per thread, so it \
                     launches with at most {most} threads per block on this GPU"
                )));
            }
            // The pattern kernel runs alone; only the copies of one sample must fit together.
            let fits = driver::blocks_per_sm(function, block_size)?;
            if together && blocks_per_sm > fits {
                return Ok(Some(format!(
                    "blocks_per_sm {blocks_per_sm}: an SM of this GPU holds only {fits} blocks \
                     of {block_size} threads of {name} ({registers} registers per thread); use \
                     blocks_per_sm {fits} or fewer, so that every copy of a sample runs at once"
                )));
            }
        }
        Ok(None)
    }
}

fn load_one(ptx: &CStr, name: &'static CStr) -> std::result::Result<CUfunction, LoadError> {
    let kernel = name.to_str().unwrap_or("?");
    let module = driver::load_ptx(ptx).map_err(|(error, jit_log)| LoadError {
        error,
        kernel,
        jit_log,
    })?;
    driver::function(module, name).map_err(|error| LoadError {
        error,
        kernel,
        jit_log: String::new(),
    })
}

fn arg<T>(value: &mut T) -> *mut c_void {
    value as *mut T as *mut c_void
}
