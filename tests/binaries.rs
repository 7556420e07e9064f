//! The two binaries as a user or script meets them, on a machine without a GPU.

mod skip;

use p2ptop::probe::protocol::Event;
use std::path::Path;
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

/// Whether the dynamic loader finds `library` for a process started with `LD_LIBRARY_PATH`
/// set to `path` (or this process's, for `None`). A child (this test binary, running
/// `loader_child`) is asked, since the loader reads its path only when a process starts.
fn loader_finds(library: &str, path: Option<&Path>) -> bool {
    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args(["loader_child", "--exact", "--ignored", "--quiet"])
        .env("P2PTOP_LOADER_LIBRARY", library);
    if let Some(path) = path {
        child.env("LD_LIBRARY_PATH", path);
    }
    let out = child.output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("1 passed") || said.contains("1 failed"),
        "{said}"
    );
    out.status.success()
}

#[test]
#[ignore = "the child of loader_finds, run with the library path under test"]
fn loader_child() {
    let library = std::env::var("P2PTOP_LOADER_LIBRARY").expect("run by loader_finds");
    let name = std::ffi::CString::new(library).unwrap();
    // SAFETY: dlopen with a NUL-terminated name that outlives the call; the handle is only
    // closed.
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL) };
    assert!(!handle.is_null(), "the loader does not find it");
    // SAFETY: a handle dlopen returned, closed once.
    unsafe { libc::dlclose(handle) };
}

#[test]
fn a_skip_is_allowed_only_when_listed_and_never_in_ci() {
    use skip::allowed_by;
    assert!(allowed_by(
        None,
        "tmux,ptxas",
        &["ptxas", "nvidia-cuda-nvcc-cu12"]
    ));
    assert!(allowed_by(Some("false"), " tmux , ptxas", &["tmux"]));
    assert!(!allowed_by(None, "", &["tmux"]));
    assert!(!allowed_by(None, "tmux", &["readelf", "binutils"]));
    assert!(!allowed_by(None, "ptxas-old", &["ptxas"]));
    assert!(!allowed_by(Some("true"), "tmux,ptxas", &["tmux"]));
}

#[test]
fn the_loader_check_finds_the_stub_driver_and_not_a_made_up_library() {
    assert!(loader_finds("libcuda.so.1", Some(Path::new(CUDA_STUB_DIR))));
    assert!(!loader_finds("libp2ptop-no-such-library.so.1", None));
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
    if !skip::have("readelf", "binutils", "apt-get install binutils") {
        return;
    }
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
fn cargo_puts_no_stub_driver_on_the_library_path_of_what_it_runs() {
    // cargo adds build scripts' link directories to the library path of `cargo run` and
    // `cargo test`; a stub `libcuda.so.1` there would shadow the real driver on a GPU machine.
    let stub = std::fs::read(std::path::Path::new(CUDA_STUB_DIR).join("libcuda.so.1"))
        .expect("build.rs makes the loadable stub");
    let path = std::env::var_os("LD_LIBRARY_PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let shadow = dir.join("libcuda.so.1");
        if let Ok(found) = std::fs::read(&shadow) {
            assert_ne!(found, stub, "{} is the stub", shadow.display());
        }
    }
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
    let out = with_stub_driver(P2PTOP, &["run"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no usable CUDA device"), "{stderr}");
}

#[test]
fn p2ptop_without_a_driver_library_says_what_is_missing() {
    // An empty directory first on the path: no libcuda.so.1 is found there. A machine with a
    // driver installed system-wide still finds its own, and cannot show this.
    let empty = std::env::temp_dir().join(format!("p2ptop-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    if loader_finds("libcuda.so.1", Some(&empty)) {
        skip::skip(
            &["libcuda"],
            "this machine has a CUDA driver (libcuda.so.1) installed system-wide",
            "run this test where the NVIDIA driver is not installed (CI has none)",
        );
        return;
    }
    let out = Command::new(P2PTOP)
        .arg("run")
        .env("LD_LIBRARY_PATH", &empty)
        .env_remove("P2PTOP_PROBE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("the NVIDIA driver is not installed or not loadable")
            && stderr.contains("libcuda.so.1"),
        "{stderr}"
    );
}

#[test]
fn p2ptop_with_a_missing_probe_says_where_it_looked() {
    let out = Command::new(P2PTOP)
        .args(["run", "--probe", "/nonexistent/p2ptop-probe"])
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
        .args(["run", "--probe"])
        .arg(&fake)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&fake);
    assert_eq!(out.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the probe misbehaved"), "{stderr}");
}

fn p2ptop(args: &[&str]) -> Output {
    Command::new(P2PTOP).args(args).output().unwrap()
}

#[test]
fn sim_list_names_every_preset_on_one_line() {
    let out = p2ptop(&["--sim", "list"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), p2ptop::sim::PRESETS.len());
    assert!(
        text.lines()
            .any(|l| l.starts_with("hgx-h100") && l.contains("NV18"))
    );
}

#[test]
fn topo_on_a_simulated_machine_is_labelled_and_shows_its_links() {
    let out = p2ptop(&["--sim", "pcie-dual-socket", "topo"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("SIMULATED: pcie-dual-socket"));
    for link in ["PIX", "PXB", "NODE", "SYS"] {
        assert!(
            text.contains(&format!("\t{link}\t")),
            "no {link} in\n{text}"
        );
    }
    let json = p2ptop(&["--sim", "3090-pcie", "topo", "--format", "json"]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["simulated"], true);
    assert_eq!(value["pairs"][0]["p2p"]["read"], "GNS");
}

#[test]
fn topo_without_nvml_says_what_is_missing_and_how_to_explore_and_exits_3() {
    // Whether NVML is here decides what topo may do: without its library it must say so;
    // with it (a GPU machine, or a container with the library but no GPU or driver) it shows
    // the machine, or says what else is missing. Either way, never a crash.
    let out = p2ptop(&["topo"]);
    let err = String::from_utf8(out.stderr).unwrap();
    if loader_finds("libnvidia-ml.so.1", None) {
        if out.status.success() {
            assert!(!out.stdout.is_empty(), "topo printed nothing");
            return;
        }
        assert_eq!(out.status.code(), Some(3), "{err}");
        assert!(!err.contains("not found"), "the library is here: {err}");
    } else {
        assert_eq!(out.status.code(), Some(3), "{err}");
        assert!(err.contains("libnvidia-ml.so.1 not found"), "{err}");
    }
    assert!(err.contains("--sim list"), "{err}");
}

#[test]
fn an_unknown_preset_is_a_usage_error() {
    let out = p2ptop(&["--sim", "dgx-h200", "topo"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("--sim list")
    );
}

#[test]
fn topo_writes_a_file_whole_and_says_which_file_it_could_not_write() {
    let dir = std::env::temp_dir().join(format!("p2ptop-topo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("topo.json");
    let out = p2ptop(&[
        "--sim",
        "hgx-h100",
        "topo",
        "--format",
        "json",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok());
    let bad = dir.join("missing-dir").join("topo.json");
    let out = p2ptop(&["--sim", "hgx-h100", "topo", "-o", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("missing-dir")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A fresh directory for one test's files.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("p2ptop-binaries-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn is_symlink(path: &std::path::Path) -> bool {
    std::fs::symlink_metadata(path)
        .unwrap()
        .file_type()
        .is_symlink()
}

#[test]
fn o_writes_through_a_symlink_keeping_the_targets_mode_and_other_names() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = scratch("symlink");
    let target = dir.join("topo.txt");
    std::fs::write(&target, "old").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
    let other_name = dir.join("also-topo.txt");
    std::fs::hard_link(&target, &other_name).unwrap();
    let link = dir.join("link.txt");
    std::os::unix::fs::symlink("topo.txt", &link).unwrap();
    let out = p2ptop(&["--sim", "3090-bridge", "topo", "-o", link.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(is_symlink(&link));
    let written = std::fs::read_to_string(&other_name).unwrap();
    assert!(written.starts_with("SIMULATED: 3090-bridge"), "{written}");
    let meta = std::fs::metadata(&target).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o640);
    assert_eq!(meta.nlink(), 2);
    // A file with one name is still replaced whole, and keeps its mode.
    std::fs::remove_file(&other_name).unwrap();
    let out = p2ptop(&["--sim", "3090-pcie", "topo", "-o", link.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        std::fs::read_to_string(&target)
            .unwrap()
            .starts_with("SIMULATED: 3090-pcie")
    );
    assert_eq!(std::fs::metadata(&target).unwrap().mode() & 0o777, 0o640);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `-o` onto a FIFO, a device and this process's own standard output, each reached through a
/// link in a scratch directory (so a regression replaces the link, never the system's
/// /dev/null or /dev/stdout).
#[test]
fn o_onto_a_fifo_a_device_or_standard_output_writes_straight_and_replaces_nothing() {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let dir = scratch("straight");
    let fifo = dir.join("fifo");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    // Opened for reading first and without blocking, so p2ptop's open finds a reader, and a
    // p2ptop that replaced the FIFO leaves this test reading nothing rather than hanging.
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let out = p2ptop(&["--sim", "3090-bridge", "topo", "-o", fifo.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let mut through = String::new();
    reader.read_to_string(&mut through).unwrap();
    assert!(through.starts_with("SIMULATED: 3090-bridge"), "{through:?}");
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );

    for (name, device) in [("null", "/dev/null"), ("stdout", "/dev/stdout")] {
        let link = dir.join(name);
        std::os::unix::fs::symlink(device, &link).unwrap();
        let out = p2ptop(&["--sim", "3090-bridge", "topo", "-o", link.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert!(
            is_symlink(&link),
            "-o {device} replaced the link with a file"
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        match name {
            "stdout" => assert!(stdout.starts_with("SIMULATED: 3090-bridge"), "{stdout}"),
            _ => assert!(stdout.is_empty(), "{stdout}"),
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every command that prints, with a reader that has gone (`| head -c 10`) and with a full disk
/// (`> /dev/full`): the first ends quietly with the command's own exit code, the second says
/// what happened and exits 3; neither panics.
#[test]
fn a_closed_pipe_ends_quietly_and_a_full_disk_is_an_environment_error() {
    let dir = scratch("stdout");
    let report = dir.join("report.json");
    let report = report.to_str().unwrap();
    let run = [
        "--sim",
        "3090-bridge",
        "run",
        "--samples",
        "2",
        "--format",
        "json",
    ];
    let out = p2ptop(&[&run[..], &["-o", report]].concat());
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let quick = ["--sim", "3090-bridge", "check", "--quick", "--samples", "2"];
    let commands: [&[&str]; 7] = [
        &["--help"],
        &["--sim", "list"],
        &["--sim", "3090-bridge", "topo"],
        &run,
        &quick,
        &["fleet", report],
        &["completions", "bash"],
    ];
    for args in commands {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let closed = Command::new(P2PTOP)
            .args(args)
            .stdout(writer)
            .output()
            .unwrap();
        assert_eq!(closed.status.code(), Some(0), "{args:?}: {closed:?}");
        assert!(closed.stderr.is_empty(), "{args:?}: {closed:?}");
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = Command::new(P2PTOP)
            .args(args)
            .stdout(full)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
        assert!(
            err.starts_with("p2ptop: cannot write to standard output: No space left"),
            "{args:?}: {err}"
        );
    }
    // -o onto a full disk (a link to /dev/full): the same exit code, naming the file.
    let full = dir.join("full.json");
    std::os::unix::fs::symlink("/dev/full", &full).unwrap();
    let out = p2ptop(&["--sim", "3090-bridge", "topo", "-o", full.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("full.json: No space left"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
/// A machine file: the HGX H100 preset's host, models, roots and switches with `gpus` H100s on
/// its NVSwitch.
fn nvswitch_machine(dir: &std::path::Path, gpus: usize) -> String {
    let preset = include_str!("../src/sim/presets/hgx-h100.toml");
    let head = &preset[..preset.find("[[gpus]]").unwrap()];
    let mut file = head.replacen(
        "name = \"hgx-h100\"",
        &format!("name = \"nvswitch-{gpus}\""),
        1,
    );
    for i in 0..gpus {
        file += &format!("[[gpus]]\nmodel = \"h100\"\nattach = \"sw{}\"\n", i % 4);
    }
    file += "[nvlink]\nnvswitch_links = 18\n";
    let path = dir.join(format!("nvswitch-{gpus}.toml"));
    std::fs::write(&path, file).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Runs p2ptop, killing it past `limit`.
fn spawn(args: &[&str]) -> std::process::Child {
    Command::new(P2PTOP)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// What `child` (p2ptop `args`) did, once it ended; killed and a failure past `limit`.
fn ended_within(child: std::process::Child, args: &[&str], limit: std::time::Duration) -> Output {
    let pid = child.id();
    let (done, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match wait.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("p2ptop {args:?} took more than {limit:?}");
        }
    }
}

fn within(args: &[&str], limit: std::time::Duration) -> Output {
    ended_within(spawn(args), args, limit)
}

/// p2ptop `args`, sent `signal` once `ready` says so (checked every 10 ms, for up to 10 s):
/// what it did, and how long it took to end after the signal.
fn stopped(
    args: &[&str],
    signal: libc::c_int,
    ready: impl Fn() -> bool,
) -> (Output, std::time::Duration) {
    let child = spawn(args);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "{args:?} never got ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    let sent = std::time::Instant::now();
    let out = ended_within(child, args, std::time::Duration::from_secs(10));
    (out, sent.elapsed())
}

/// A stop must end a run within a second; the tests allow twice that for a loaded machine.
const STOP_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether process `pid` runs (a zombie does not).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[test]
fn a_stop_while_the_probe_starts_ends_the_run_within_a_second_and_the_probe_with_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("mute-probe");
    let probe = dir.join("mute-probe");
    let pid_file = dir.join("probe.pid");
    // A probe that never greets, as one stuck in the driver's start-up.
    std::fs::write(
        &probe,
        format!(
            "#!/bin/sh\necho $$ > {}\nexec sleep 60\n",
            pid_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let report = dir.join("report.json");
    for (signal, command) in [(libc::SIGTERM, "run"), (libc::SIGINT, "check")] {
        let _ = std::fs::remove_file(&pid_file);
        let args = [
            "--probe",
            probe.to_str().unwrap(),
            command,
            "-o",
            report.to_str().unwrap(),
        ];
        // Signalled once the probe has started (and written its pid): p2ptop waits for it.
        let (out, took) = stopped(&args, signal, || pid_file.exists());
        assert_eq!(out.status.code(), Some(130), "{command}: {out:?}");
        assert!(took < STOP_LIMIT, "{command} took {took:?} to stop");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("interrupted"), "{stderr}");
        assert!(stderr.contains("nothing was measured"), "{stderr}");
        assert!(!report.exists(), "no report of a machine never opened");
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let gone = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while alive(pid) && std::time::Instant::now() < gone {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(!alive(pid), "the probe outlived p2ptop");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_stop_while_a_large_machine_is_built_ends_the_run_within_a_second() {
    let dir = scratch("large-stop");
    let machine = nvswitch_machine(&dir, 1000);
    let report = dir.join("report.json");
    let args = [
        "--sim",
        &machine,
        "run",
        "--format",
        "json",
        "-o",
        report.to_str().unwrap(),
    ];
    // Nothing outside shows the build going on: half a second in, it is (1000 GPUs take
    // seconds, and the run has not begun measuring when the signal comes).
    let started = std::time::Instant::now();
    let (out, took) = stopped(&args, libc::SIGTERM, || {
        started.elapsed() >= std::time::Duration::from_millis(500)
    });
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    assert!(took < STOP_LIMIT, "took {took:?} to stop");
    assert!(!report.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_512_gpu_machine_is_drawn_and_measured_in_seconds() {
    let dir = scratch("large");
    let machine = nvswitch_machine(&dir, 512);
    let limit = std::time::Duration::from_secs(30);
    let out = within(&["--sim", &machine, "topo"], limit);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("GPU511\tNV18\t"),
        "the last row of the matrix"
    );
    let out = within(
        &[
            "--sim",
            &machine,
            "--devices",
            "0,1",
            "run",
            "--samples",
            "2",
        ],
        limit,
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_probe_names_itself_in_its_version() {
    let out = with_stub_driver(PROBE, &["--version"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(version.starts_with("p2ptop-probe "), "{version}");
}
