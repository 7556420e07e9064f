//! The numbers of NVML's API (nvml.h): return codes and the enums the emulation answers with.

pub const SUCCESS: u32 = 0;
pub const UNINITIALIZED: u32 = 1;
pub const INVALID_ARGUMENT: u32 = 2;
pub const NOT_SUPPORTED: u32 = 3;
pub const NO_PERMISSION: u32 = 4;
pub const INSUFFICIENT_SIZE: u32 = 7;
pub const FUNCTION_NOT_FOUND: u32 = 13;
pub const DRIVER_NOT_LOADED: u32 = 9;
pub const GPU_IS_LOST: u32 = 15;
pub const ARGUMENT_VERSION_MISMATCH: u32 = 25;
pub const UNKNOWN: u32 = 999;

/// `nvmlErrorString`'s words for a code.
pub fn describe(code: u32) -> &'static str {
    match code {
        SUCCESS => "Success",
        UNINITIALIZED => "Uninitialized",
        INVALID_ARGUMENT => "Invalid Argument",
        NOT_SUPPORTED => "Not Supported",
        NO_PERMISSION => "Insufficient Permissions",
        INSUFFICIENT_SIZE => "Insufficient Size",
        DRIVER_NOT_LOADED => "Driver Not Loaded",
        GPU_IS_LOST => "GPU is lost",
        ARGUMENT_VERSION_MISMATCH => "Argument version mismatch",
        _ => "Unknown Error",
    }
}

/// `nvmlGpuTopologyLevel_t`.
pub mod level {
    pub const INTERNAL: u32 = 0;
    pub const SINGLE: u32 = 10;
    pub const MULTIPLE: u32 = 20;
    pub const HOSTBRIDGE: u32 = 30;
    pub const NODE: u32 = 40;
    pub const SYSTEM: u32 = 50;
}

/// `nvmlIntNvLinkDeviceType_t`.
pub mod remote {
    pub const GPU: u32 = 0;
    pub const SWITCH: u32 = 2;
    pub const UNKNOWN: u32 = 0xFF;
}

/// `nvmlValueType_t`.
pub mod value_type {
    pub const UNSIGNED_INT: u32 = 1;
    pub const UNSIGNED_LONG_LONG: u32 = 3;
    pub const SIGNED_LONG_LONG: u32 = 4;
}

/// NVML field ids (`NVML_FI_DEV_*`).
pub mod field {
    pub const NVLINK_LINK_COUNT: u32 = 91;
    pub const NVLINK_THROUGHPUT_DATA_TX: u32 = 138;
    pub const NVLINK_THROUGHPUT_DATA_RX: u32 = 139;
    pub const NVLINK_GET_SPEED: u32 = 164;
    pub const SHUTDOWN_TLIMIT: u32 = 193;
    pub const SLOWDOWN_TLIMIT: u32 = 194;
    pub const PCIE_COUNT_TX_BYTES: u32 = 197;
    pub const PCIE_COUNT_RX_BYTES: u32 = 198;
}

/// `nvmlDeviceArchitecture_t` for an architecture's name.
pub fn architecture(name: &str) -> u32 {
    match name.to_ascii_lowercase().as_str() {
        "kepler" => 2,
        "maxwell" => 3,
        "pascal" => 4,
        "volta" => 5,
        "turing" => 6,
        "ampere" => 7,
        "ada" | "ada lovelace" => 8,
        "hopper" => 9,
        "blackwell" => 10,
        _ => 0xFFFF_FFFF,
    }
}

/// `nvmlNvlinkVersion_t` for a generation ("3.1" → 5).
pub fn nvlink_version(generation: &str) -> u32 {
    match generation {
        "1.0" => 1,
        "2.0" => 2,
        "2.2" => 3,
        "3.0" => 4,
        "3.1" => 5,
        "4.0" => 6,
        "5.0" => 7,
        _ => 0,
    }
}
