//! Exit codes, the same for every command of both binaries.

use std::process::ExitCode;

/// Success, or a check that passed.
pub const OK: u8 = 0;
/// A check that failed.
pub const CHECK_FAILED: u8 = 1;
/// The user asked for something that cannot be done as asked: fix the command line or input.
pub const USAGE: u8 = 2;
/// The machine lacks what is needed: no driver, no GPU, NVML missing.
pub const ENVIRONMENT: u8 = 3;
/// Something went wrong inside p2ptop or the GPU state it relies on.
pub const INTERNAL: u8 = 4;
/// Stopped by a signal (Ctrl-C in a headless run, SIGTERM, or the live view's terminal going
/// away) before the work was done: 128 + SIGINT, as shells report it.
pub const INTERRUPTED: u8 = 130;

pub fn code(value: u8) -> ExitCode {
    ExitCode::from(value)
}
