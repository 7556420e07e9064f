//! The two binaries as a user or script meets them, on a machine without a GPU.

use p2ptop::probe::protocol::Event;
use std::process::{Command, Output};

const P2PTOP: &str = env!("CARGO_BIN_EXE_p2ptop");
const PROBE: &str = env!("CARGO_BIN_EXE_p2ptop-probe");
/// The no-device libcuda that build.rs makes; on LD_LIBRARY_PATH it plays a driver with no GPUs.
const CUDA_STUB_DIR: &str = env!("P2PTOP_CUDA_STUB_DIR");

/// Runs `program` against the stub driver, whatever driver this machine has.
fn with_stub_driver(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("LD_LIBRARY_PATH", CUDA_STUB_DIR)
        .env_remove("P2PTOP_PROBE")
        .output()
        .expect("run the binary")
}

fn needed_libraries(binary: &str) -> String {
    let out = Command::new("readelf")
        .args(["-d", binary])
        .output()
        .expect("readelf (binutils) is installed");
    assert!(out.status.success(), "readelf failed on {binary}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| line.contains("(NEEDED)"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn only_the_probe_links_the_cuda_driver() {
    let p2ptop = needed_libraries(P2PTOP);
    assert!(
        !p2ptop.contains("libcuda"),
        "p2ptop must start without a driver:\n{p2ptop}"
    );
    let probe = needed_libraries(PROBE);
    assert!(
        probe.contains("[libcuda.so.1]"),
        "the probe links the driver by SONAME:\n{probe}"
    );
}

#[test]
fn the_probe_without_devices_says_so_and_exits_3() {
    let out = with_stub_driver(PROBE, &[]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first = stdout.lines().next().expect("one event line");
    match Event::from_line(first).expect("a protocol event") {
        Event::Fatal {
            message,
            cuda_error,
        } => {
            assert_eq!(cuda_error, Some(100));
            assert!(
                message.contains("no CUDA-capable GPU is visible"),
                "{message}"
            );
        }
        other => panic!("expected a fatal event, got {other:?}"),
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("CUDA_ERROR_NO_DEVICE"),
        "a person reading stderr learns why: {stderr}"
    );
}

#[test]
fn the_probe_documents_its_protocol() {
    let out = with_stub_driver(PROBE, &["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "\"cmd\":\"measure\"",
        "\"cmd\":\"stop\"",
        "pair_error",
        "EXIT CODES",
        "buffer_mib",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}

#[test]
fn p2ptop_relays_the_probes_reason_and_exits_3() {
    let out = with_stub_driver(P2PTOP, &[]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no usable CUDA device"), "{stderr}");
}

#[test]
fn p2ptop_without_a_driver_library_says_what_is_missing() {
    // An empty directory first on the path: no libcuda.so.1 is found there. Machines with a
    // driver installed system-wide would still find theirs, so only check when none is.
    let empty = std::env::temp_dir().join(format!("p2ptop-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let out = Command::new(P2PTOP)
        .env("LD_LIBRARY_PATH", &empty)
        .env_remove("P2PTOP_PROBE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("not installed or not loadable") {
        assert_eq!(out.status.code(), Some(3));
        assert!(stderr.contains("libcuda.so.1"), "{stderr}");
    } else {
        eprintln!("SKIPPED: this machine has a CUDA driver installed; got: {stderr}");
    }
}

#[test]
fn p2ptop_with_a_missing_probe_says_where_it_looked() {
    let out = Command::new(P2PTOP)
        .args(["--probe", "/nonexistent/p2ptop-probe"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/p2ptop-probe is missing"),
        "{stderr}"
    );
}

#[test]
fn p2ptop_with_a_probe_that_prints_garbage_reports_it_and_exits_4() {
    let fake = std::env::temp_dir().join(format!("p2ptop-garbage-probe-{}", std::process::id()));
    std::fs::write(&fake, "#!/bin/sh\necho 'this is not json'\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(P2PTOP)
        .arg("--probe")
        .arg(&fake)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&fake);
    assert_eq!(out.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the probe misbehaved"), "{stderr}");
}
