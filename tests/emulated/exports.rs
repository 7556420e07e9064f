//! The emulated libraries answer to every name the binaries link or look up.

use crate::harness;
use std::ffi::CString;

/// Every `fn cu…(` the probe declares (the list build.rs makes its link stub from).
fn declared_driver_functions() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/probe/cuda/driver.rs");
    let source = std::fs::read_to_string(path).expect("read the probe's driver declarations");
    let mut names: Vec<String> = source
        .lines()
        .filter_map(|line| {
            let rest = line.trim_start().strip_prefix("fn cu")?;
            Some(format!("cu{}", &rest[..rest.find('(')?]))
        })
        .collect();
    names.dedup();
    names
}

#[test]
fn the_emulated_driver_exports_every_function_the_probe_declares() {
    let names = declared_driver_functions();
    assert!(names.len() > 20, "found only {names:?}");
    let emu = harness::Emu::new("h100-single");
    let lib = CString::new(emu.dir().join("lib/libcuda.so.1").display().to_string()).unwrap();
    // SAFETY: loading the library runs no code of it (it has no constructors); the handle is only
    // used for lookups and closed below.
    let handle = unsafe { libc::dlopen(lib.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!handle.is_null(), "dlopen failed");
    let missing: Vec<&String> = names
        .iter()
        .filter(|name| {
            let symbol = CString::new(name.as_str()).unwrap();
            // SAFETY: a lookup in a live handle.
            unsafe { libc::dlsym(handle, symbol.as_ptr()) }.is_null()
        })
        .collect();
    // SAFETY: the handle came from dlopen above.
    unsafe { libc::dlclose(handle) };
    assert!(missing.is_empty(), "the emulated libcuda lacks {missing:?}");
}
