//! p2ptop: a GPU peer-to-peer bandwidth probe with a live terminal view.
//!
//! Two binaries share this library: `p2ptop` (CLI and orchestrator; never links CUDA) and
//! `p2ptop-probe` (the only one that links the CUDA driver). See `README.md` for use and
//! `ptx/` for the kernels.

pub mod app;
pub mod cli;
pub mod commands;
pub mod exit;
pub mod host;
pub mod live;
pub mod model;
pub mod nvml;
pub mod output_path;
pub mod probe;
pub mod report;
pub mod sim;
pub mod source;
pub mod ui;
