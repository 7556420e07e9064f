//! NVML: what the GPUs are and how they are joined (discovery), and how they are doing now
//! (telemetry sampling).
//!
//! Everything reads NVML through [`source::NvmlSource`]: [`real::open`] for the driver's library,
//! [`recorded::RecordedNvml`] for recorded answers in tests and fixtures.

pub mod counters;
pub mod discover;
pub mod real;
pub mod recorded;
pub mod sampler;
pub mod source;
