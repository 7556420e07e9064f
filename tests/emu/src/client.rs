//! For programs that load the emulated NVML (benchmarks, tests): how often it was called.

use std::ffi::{CString, c_char, c_void};

/// Calls per NVML entry point so far, from the loaded emulated `libnvidia-ml.so.1`'s own
/// counter; `None` when the NVML loaded is not the emulation (or none is loaded).
pub fn nvml_calls() -> Option<Vec<(String, u64)>> {
    let name = CString::new("libnvidia-ml.so.1").ok()?;
    // SAFETY: RTLD_NOLOAD only finds a library already loaded; nothing runs.
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
    if handle.is_null() {
        return None;
    }
    let symbol = CString::new("p2ptop_emu_nvml_calls").ok()?;
    // SAFETY: a lookup in a live handle.
    let found = unsafe { libc::dlsym(handle, symbol.as_ptr()) };
    if found.is_null() {
        return None;
    }
    // SAFETY: the emulated NVML exports the symbol with this signature (tests/emu/nvml).
    let count = unsafe {
        std::mem::transmute::<*mut c_void, unsafe extern "C" fn(*mut c_char, usize) -> usize>(found)
    };
    let mut buffer = vec![0u8; 1 << 16];
    // SAFETY: the buffer holds what its length says.
    let len = unsafe { count(buffer.as_mut_ptr() as *mut c_char, buffer.len()) };
    let text = String::from_utf8_lossy(&buffer[..len.min(buffer.len() - 1)]).into_owned();
    Some(
        text.lines()
            .filter_map(|l| {
                let (name, n) = l.rsplit_once(' ')?;
                Some((name.to_owned(), n.parse().ok()?))
            })
            .collect(),
    )
}

/// How often `entry` was called so far (0 when never).
pub fn nvml_calls_to(entry: &str) -> Option<u64> {
    let calls = nvml_calls()?;
    Some(
        calls
            .iter()
            .find(|(name, _)| name == entry)
            .map_or(0, |(_, n)| *n),
    )
}
