//! The probe: the protocol both binaries speak, and the GPU-free parts of the engine.
//!
//! The engine itself, `cuda/`, is not declared here: it is compiled into `p2ptop-probe` alone,
//! so `p2ptop` never links the CUDA driver and starts on any machine.

pub mod chain;
pub mod driver_error;
pub mod launch;
pub mod numbering;
pub mod plan;
pub mod protocol;
pub mod session;
pub mod stats;
pub mod supervisor;
