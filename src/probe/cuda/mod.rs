//! The CUDA side of the probe: driver calls, kernels, GPUs, buffers and the measuring engine.
//!
//! Compiled into `p2ptop-probe` only (see `src/bin/p2ptop-probe.rs`), so that no other binary
//! links the driver. Everything here that can be tested without a GPU lives in the parent
//! module's plain-Rust files (plan, chain, stats, protocol, driver_error).

pub mod driver;
pub mod engine;
mod gpu;
mod kernels;
mod memory;
