//! CUDA driver error codes in words.
//!
//! Codes arrive as plain integers (see `cuda/driver.rs` for why), including ones newer than the
//! headers cust was generated from, so the names live here and unknown codes stay printable.

use std::fmt;

/// A failed driver call: which call, and the code it returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverError {
    pub call: &'static str,
    pub code: i32,
}

pub const NO_DEVICE: i32 = 100;
pub const NOT_READY: i32 = 600;
pub const PEER_ACCESS_ALREADY_ENABLED: i32 = 704;

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.call, describe(self.code))
    }
}

impl std::error::Error for DriverError {}

/// `NAME (code)`, with a sentence of advice where one helps.
pub fn describe(code: i32) -> String {
    let name = name(code).unwrap_or("unknown CUDA error");
    match advice(code) {
        Some(advice) => format!("{name} ({code}): {advice}"),
        None => format!("{name} ({code})"),
    }
}

/// The `CUresult` name of `code`, for the codes p2ptop is likely to meet.
pub fn name(code: i32) -> Option<&'static str> {
    Some(match code {
        0 => "CUDA_SUCCESS",
        1 => "CUDA_ERROR_INVALID_VALUE",
        2 => "CUDA_ERROR_OUT_OF_MEMORY",
        3 => "CUDA_ERROR_NOT_INITIALIZED",
        4 => "CUDA_ERROR_DEINITIALIZED",
        34 => "CUDA_ERROR_STUB_LIBRARY",
        46 => "CUDA_ERROR_DEVICE_UNAVAILABLE",
        100 => "CUDA_ERROR_NO_DEVICE",
        101 => "CUDA_ERROR_INVALID_DEVICE",
        200 => "CUDA_ERROR_INVALID_IMAGE",
        201 => "CUDA_ERROR_INVALID_CONTEXT",
        209 => "CUDA_ERROR_NO_BINARY_FOR_GPU",
        214 => "CUDA_ERROR_ECC_UNCORRECTABLE",
        217 => "CUDA_ERROR_PEER_ACCESS_UNSUPPORTED",
        218 => "CUDA_ERROR_INVALID_PTX",
        220 => "CUDA_ERROR_NVLINK_UNCORRECTABLE",
        221 => "CUDA_ERROR_JIT_COMPILER_NOT_FOUND",
        222 => "CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
        223 => "CUDA_ERROR_JIT_COMPILATION_DISABLED",
        400 => "CUDA_ERROR_INVALID_HANDLE",
        500 => "CUDA_ERROR_NOT_FOUND",
        600 => "CUDA_ERROR_NOT_READY",
        700 => "CUDA_ERROR_ILLEGAL_ADDRESS",
        701 => "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES",
        702 => "CUDA_ERROR_LAUNCH_TIMEOUT",
        704 => "CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED",
        705 => "CUDA_ERROR_PEER_ACCESS_NOT_ENABLED",
        711 => "CUDA_ERROR_TOO_MANY_PEERS",
        714 => "CUDA_ERROR_HARDWARE_STACK_ERROR",
        715 => "CUDA_ERROR_ILLEGAL_INSTRUCTION",
        716 => "CUDA_ERROR_MISALIGNED_ADDRESS",
        719 => "CUDA_ERROR_LAUNCH_FAILED",
        800 => "CUDA_ERROR_NOT_PERMITTED",
        801 => "CUDA_ERROR_NOT_SUPPORTED",
        802 => "CUDA_ERROR_SYSTEM_NOT_READY",
        803 => "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
        804 => "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE",
        999 => "CUDA_ERROR_UNKNOWN",
        _ => return None,
    })
}

/// What a user can do about `code`, where there is something to say.
fn advice(code: i32) -> Option<&'static str> {
    Some(match code {
        34 => "this is a stub libcuda, not a driver; install the NVIDIA driver",
        46 => "the GPU is in use by another process in exclusive mode, or unavailable",
        100 => "no CUDA-capable GPU is visible (check CUDA_VISIBLE_DEVICES and nvidia-smi)",
        2 => "not enough GPU memory for the buffers; try a smaller buffer size",
        217 => "these GPUs cannot access each other's memory directly",
        218 | 222 => "the driver could not compile p2ptop's PTX; it may be older than R470",
        700 | 714 | 715 | 716 | 719 => {
            "a kernel faulted; the GPU context is unusable until the process restarts"
        }
        802 => {
            "an NVSwitch system whose Fabric Manager is not running (start nvidia-fabricmanager)"
        }
        803 => {
            "the kernel module and the user-space driver are different versions; reboot or reinstall"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_newer_than_custs_headers_have_names() {
        assert_eq!(name(46), Some("CUDA_ERROR_DEVICE_UNAVAILABLE"));
        assert!(describe(802).contains("Fabric Manager"));
    }

    #[test]
    fn unknown_codes_still_print() {
        assert_eq!(describe(12345), "unknown CUDA error (12345)");
    }

    #[test]
    fn an_error_names_its_call() {
        let err = DriverError {
            call: "cuInit",
            code: NO_DEVICE,
        };
        assert_eq!(
            err.to_string(),
            "cuInit failed: CUDA_ERROR_NO_DEVICE (100): no CUDA-capable GPU is visible (check CUDA_VISIBLE_DEVICES and nvidia-smi)"
        );
    }
}
