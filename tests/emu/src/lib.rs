//! Emulated NVIDIA driver libraries for p2ptop's tests: the machine model of `p2ptop::sim` seen
//! from below.
//!
//! Two shared libraries are built on this crate: `libcuda.so.1` (crate `p2ptop-emu-cuda`, loaded
//! by `p2ptop-probe`) and `libnvidia-ml.so.1` (crate `p2ptop-emu-nvml`, loaded by `p2ptop`).
//! With them first on `LD_LIBRARY_PATH` and a machine named in `P2PTOP_EMU`, the real binaries
//! run without `--sim` on an emulated machine:
//!
//! - [`cuda`] answers the driver API from the machine: devices and attributes, primary contexts
//!   current per OS thread, streams that run their work in order and concurrently with each
//!   other, events on a virtual clock, device and pinned host memory, peer access as the machine
//!   allows it, PTX modules checked by the interpreter of `p2ptop-ptx`, and launches of the
//!   probe's kernels, run by their native doubles. A copy takes the virtual time the
//!   simulator's bandwidth model gives its path, engine and the transfers beside it; kernels on
//!   one GPU share its SMs block by block.
//! - [`nvml`] answers NVML's questions from the same machine and from the state the CUDA side
//!   leaves behind: temperatures, clocks and power from the thermal model, link and PCIe byte
//!   counters that advance with the bytes the probe moved.
//! - The two live in different processes; [`shared`] is the small memory-mapped file through
//!   which the CUDA side hands its state to the NVML side (and to the next probe).
//! - Both are strict: every call checks what NVIDIA's documentation requires, returns the code the
//!   real driver returns, and writes each misuse to [`log`] so a test fails on it even where the
//!   caller tolerated the error.
//!
//! The emulation proves that the code talking to NVIDIA's libraries uses them correctly and
//! survives their faults. It does not prove real timing or real hardware quirks: every figure
//! measured through it is the model's, and the libraries say so in their device names and
//! driver version.

pub mod client;
pub mod config;
pub mod cuda;
pub mod log;
pub mod nvml;
pub mod shared;

/// What the emulated libraries add to the identity the real ones report (device names, the
/// driver version), so that no emulated figure passes for a measured one.
pub const MARK: &str = p2ptop::model::topology::EMULATED_MARK;
