//! p2ptop's kernels off the GPU: a CPU interpreter for the PTX subset the hand-written kernels in
//! `ptx/` use, and native doubles of those kernels.
//!
//! The interpreter is deliberately strict: parsing fails on any instruction, type or register
//! width outside the subset, and a kernel's out-of-bounds or misaligned access, or a thread that
//! never finishes, ends the launch with a [`Fault`] rather than a guess. It runs one thread after
//! another, so it says what a kernel computes, not how fast.
//!
//! The doubles ([`doubles`]) compute the same results in plain Rust, fast enough for the emulated
//! CUDA driver to run the probe's kernels on real buffer sizes. Tests hold each double equal to
//! the interpreter running the real PTX on random inputs, so a change to a kernel that its double
//! does not follow fails there.

pub mod doubles;
mod exec;
mod ir;
mod memory;
mod parse;
pub mod registers;

pub use exec::{Device, Fault, Param};
pub use ir::{Kernel, ParamDecl};
pub use memory::Memory;
pub use parse::Module;
