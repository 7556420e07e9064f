//! A CPU interpreter for the PTX subset that p2ptop's hand-written kernels use, so tests can
//! check what the kernels compute without a GPU.
//!
//! It is deliberately strict: the parser panics on any instruction, type or register width
//! outside the subset, and a kernel's out-of-bounds or misaligned access, or a thread that never
//! finishes, ends the launch with a `Fault` rather than a guess.

mod exec;
mod ir;
mod memory;
mod parse;

pub use exec::{Device, Fault, Param};
pub use parse::Module;
