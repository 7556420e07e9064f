//! `p2ptop run`, `check` and `fleet` as a script on a rented node meets them, on simulated
//! machines: verdicts and exit codes, reports that read back, bad input, Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const P2PTOP: &str = env!("CARGO_BIN_EXE_p2ptop");

fn p2ptop(args: &[&str]) -> Output {
    Command::new(P2PTOP).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("p2ptop-headless-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A machine file: `preset` with `faults` (TOML) added.
fn faulty(dir: &Path, preset: &str, faults: &str) -> String {
    let path = dir.join(format!("{preset}-faulty.toml"));
    std::fs::write(
        &path,
        format!("name = \"{preset}-faulty\"\nsummary = \"test\"\npreset = \"{preset}\"\n{faults}"),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn run_prints_labelled_matrices_with_p2p_codes_and_the_simulated_flag() {
    let out = p2ptop(&["--sim", "3090-pcie", "run", "--samples", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.contains("SIMULATED"));
    assert!(table.contains("row src → column dst"));
    assert!(
        table.contains("GNS"),
        "no P2P code for the pair without peer access:\n{table}"
    );
    assert!(table.contains("line rate"));
    let csv = p2ptop(&[
        "--sim",
        "3090-pcie",
        "run",
        "--samples",
        "2",
        "--engine",
        "ce",
        "--format",
        "csv",
    ]);
    assert!(text(&csv.stdout).lines().count() > 10);
    assert!(
        !text(&csv.stdout).contains(",sm,"),
        "--engine ce measured SM copies"
    );
}

#[test]
fn check_passes_a_healthy_machine_and_its_json_report_is_a_baseline() {
    let dir = scratch("baseline");
    let report = dir.join("good.json");
    let out = p2ptop(&[
        "--sim",
        "3090-bridge",
        "check",
        "--samples",
        "2",
        "--format",
        "json",
        "-o",
        report.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["schema"], 2);
    assert_eq!(json["simulated"], "3090-bridge");
    // One NVLink of four down: judged against the four it was built for, and the baseline.
    let slower = faulty(
        &dir,
        "3090-bridge",
        "[[faults]]\nkind = \"nvlink_down\"\ngpu = 0\nlink = 0\n",
    );
    let out = p2ptop(&[
        "--sim",
        &slower,
        "check",
        "--samples",
        "2",
        "--baseline",
        report.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("FAIL"));
}

#[test]
fn check_fails_corruption_and_hangs_with_reasons_and_warns_on_a_power_cap() {
    let dir = scratch("faults");
    let corrupt = faulty(
        &dir,
        "hgx-h100",
        "[[faults]]\nkind = \"corrupt\"\nsrc = \"1\"\ndst = \"2\"\n",
    );
    let out = p2ptop(&[
        "--sim",
        &corrupt,
        "--devices",
        "1,2",
        "check",
        "--samples",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("CORRUPT"),
        "{}",
        text(&out.stdout)
    );
    let hang = faulty(
        &dir,
        "3090-bridge",
        "[[faults]]\nkind = \"hang\"\nsrc = \"1\"\ndst = \"0\"\n",
    );
    let out = p2ptop(&["--sim", &hang, "check", "--samples", "2"]);
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out.stdout);
    assert!(
        report.contains("HUNG") && report.contains("did not finish"),
        "{report}"
    );
    assert!(report.contains("verdict: FAIL"), "{report}");
    // The same in JSON: GPU1 → GPU0 hung, and GPU0 → GPU1 was still measured, each op and
    // engine that does not need the hung direction with a figure.
    let out = p2ptop(&[
        "--sim",
        &hang,
        "check",
        "--samples",
        "2",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["verdict"]["overall"], "fail");
    let cell = |src: u64, dst: u64, op: &str, engine: &str| -> serde_json::Value {
        json["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["src"] == src && c["dst"] == dst && c["op"] == op && c["engine"] == engine)
            .unwrap_or_else(|| panic!("no cell GPU{src} → GPU{dst} {op} {engine}"))
            .clone()
    };
    let hung = cell(1, 0, "read", "sm");
    assert_eq!(hung["failure"]["kind"], "hung", "{hung}");
    assert!(hung["gbps"].is_null(), "{hung}");
    for op in ["read", "write"] {
        for engine in ["sm", "ce"] {
            let measured = cell(0, 1, op, engine);
            let gbps = measured["gbps"].as_f64().unwrap_or(0.0);
            assert!(
                gbps > 10.0 && measured["failure"].is_null(),
                "GPU0 → GPU1 {op} {engine} has no figure: {measured}"
            );
        }
    }
    // A mild cap (300 of 700 W) slows SM copies within the floors: a warning, not a failure.
    let capped = faulty(
        &dir,
        "h100-single",
        "[[faults]]\nkind = \"power_cap\"\ngpu = 0\nwatts = 300.0\n",
    );
    let out = p2ptop(&["--sim", &capped, "check", "--samples", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("WARN"), "{}", text(&out.stdout));
}

/// Start gates that time out on one pair: the check fails on that pair alone, saying no sample
/// could be trusted, while the rest of the machine is measured.
#[test]
fn check_fails_a_pair_whose_start_gates_time_out() {
    let dir = scratch("gate");
    let gate = faulty(
        &dir,
        "3090-bridge",
        "[[faults]]\nkind = \"gate_timeout\"\nsrc = \"0\"\ndst = \"1\"\n",
    );
    let out = p2ptop(&[
        "--sim",
        &gate,
        "check",
        "--samples",
        "2",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["verdict"]["overall"], "fail");
    let causes = json["verdict"]["causes"].as_array().unwrap();
    assert_eq!(causes.len(), 1, "{causes:?}");
    assert_eq!(causes[0]["subject"], "GPU0 ↔ GPU1");
    assert!(
        causes[0]["what"]
            .as_str()
            .unwrap()
            .contains("every start gate timed out"),
        "{}",
        causes[0]
    );
    for cell in json["cells"].as_array().unwrap() {
        let from_0_to_1 = cell["src"] == 0 && cell["dst"] == 1 && cell["op"] != "latency";
        if from_0_to_1 {
            assert_eq!(cell["failure"]["kind"], "gate_timeout", "{cell}");
        } else {
            assert!(cell["failure"].is_null(), "{cell}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The machine of tests/report/hgx-four-faults.toml: four faults, four causes.
const FOUR_FAULTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/report/hgx-four-faults.toml"
);

#[test]
fn check_and_run_with_a_file_print_one_summary_on_stderr_instead_of_every_failure() {
    let dir = scratch("summary");
    let file = dir.join("report.md");
    let path = file.to_str().unwrap();
    let out = p2ptop(&[
        "--sim",
        FOUR_FAULTS,
        "check",
        "--samples",
        "2",
        "--format",
        "markdown",
        "-o",
        path,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines[0].starts_with("p2ptop check: FAIL — 4 causes, worst first · took ")
            && lines[0].contains(" s (SIMULATED: ")
            && lines[0].ends_with(&format!("on the simulated machine's clock) · wrote {path}")),
        "{err}"
    );
    let causes = [
        "  FAIL GPU3 → GPU5: data arrived wrong",
        "  FAIL GPU6: NVLink 0 is down",
        "  FAIL GPU3: PCIe link reached only Gen4 x8",
        "  WARN GPU2: power limit 400 W, below the board's default 700 W",
    ];
    assert_eq!(lines.len(), 1 + causes.len(), "{err}");
    for (line, cause) in lines[1..].iter().zip(causes) {
        assert!(line.starts_with(cause), "{line:?} is not {cause:?}");
    }
    let markdown = std::fs::read_to_string(&file).unwrap();
    assert!(
        markdown.contains("Took "),
        "the report says how long it took"
    );
    // A pass and a run are not silent either: one line each.
    for (command, says) in [
        ("check", "p2ptop check: PASS · took "),
        ("run", "p2ptop run: measured 8 pairs · took "),
    ] {
        let out = p2ptop(&[
            "--sim",
            "3090-bridge",
            command,
            "--samples",
            "2",
            "-o",
            path,
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(
            err.starts_with(says) && err.ends_with(&format!("wrote {path}\n")),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn fleet_merges_reports_and_names_a_broken_file_with_its_position() {
    let dir = scratch("fleet");
    let mut files = Vec::new();
    for (node, machine) in [("a", "hgx-h100".to_owned()), ("b", "hgx-h100".to_owned())] {
        let path = dir.join(format!("{node}.json"));
        let out = p2ptop(&[
            "--sim",
            &machine,
            "--devices",
            "0,1",
            "check",
            "--samples",
            "2",
            "--format",
            "json",
            "-o",
            path.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(0));
        files.push(path.to_str().unwrap().to_owned());
    }
    let mut args = vec!["fleet"];
    args.extend(files.iter().map(String::as_str));
    let out = p2ptop(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("sim-hgx-h100"));
    let broken = dir.join("broken.json");
    std::fs::write(&broken, "{\n  \"schema\": 1,\n  oops\n}").unwrap();
    args.push(broken.to_str().unwrap());
    let out = p2ptop(&args);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("broken.json:3"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_input_is_a_usage_error_and_writes_nothing() {
    let dir = scratch("input");
    let out_file = dir.join("report.json");
    let o = out_file.to_str().unwrap();
    let cases: [(&[&str], &str); 7] = [
        (
            &["--sim", "4090x4", "--devices", "0,7", "check", "-o", o],
            "no GPU7",
        ),
        (
            &["--sim", "4090x4", "run", "--buffer-mib", "20000", "-o", o],
            "too large for GPU0",
        ),
        (
            &["--sim", "4090x4", "run", "--samples", "0", "-o", o],
            "samples",
        ),
        (
            &["--sim", "4090x4", "run", "--samples", "10001", "-o", o],
            "1..=10000",
        ),
        (
            &["--sim", "4090x4", "check", "--floor", "nvlink=0.5", "-o", o],
            "--floor nvlink=0.5",
        ),
        (
            &["--sim", "4090x4", "check", "--floor", "pcie_ce=2", "-o", o],
            "between 0 and 1",
        ),
        (
            &[
                "--sim",
                "4090x4",
                "check",
                "--baseline",
                "/nonexistent/base.json",
                "-o",
                o,
            ],
            "/nonexistent/base.json",
        ),
    ];
    for (args, says) in cases {
        let out = p2ptop(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(!out_file.exists(), "{args:?} wrote a report");
    }
    let out = p2ptop(&["run", "--engine", "tpu"]);
    assert_eq!(out.status.code(), Some(2));
}

/// A pseudo-terminal: p2ptop shows its progress ("measured N of M pairs") only on a terminal.
struct Pty {
    master: std::fs::File,
    slave: std::fs::File,
}

fn pty() -> Pty {
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two descriptors it opened; no name, settings or size are passed.
    let ok = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(ok, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are fresh and owned by nothing else.
    unsafe {
        Pty {
            master: std::fs::File::from_raw_fd(master),
            slave: std::fs::File::from_raw_fd(slave),
        }
    }
}

/// The number of pairs in the last "measured N of M pairs" in `shown`.
fn pairs_measured(shown: &str) -> Option<usize> {
    let at = shown.rfind("measured ")? + "measured ".len();
    let rest = &shown[at..];
    let n = rest.split(' ').next()?;
    rest[n.len()..]
        .starts_with(" of ")
        .then(|| n.parse().ok())?
}

/// Ctrl-C in the middle of a long run, once p2ptop has said it measured a pair: what was
/// measured is written, marked incomplete, and the exit code says the run was interrupted.
#[test]
fn an_interrupted_run_writes_what_it_measured_marked_incomplete() {
    use std::io::Read;
    let dir = scratch("interrupt");
    let report = dir.join("partial.json");
    let terminal = pty();
    let mut child = Command::new(P2PTOP)
        .args([
            "--sim",
            "hgx-h100",
            "run",
            "--samples",
            "10000",
            "--format",
            "json",
            "-o",
            report.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(terminal.slave)
        .spawn()
        .unwrap();
    let mut master = terminal.master;
    let (shown_tx, shown) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0; 4096];
        // Ends with an error (EIO) once p2ptop has closed the terminal.
        while let Ok(n @ 1..) = master.read(&mut buf) {
            if shown_tx
                .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                .is_err()
            {
                break;
            }
        }
    });
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let before = loop {
        if let Some(n @ 1..) = pairs_measured(&seen) {
            break n;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match shown.recv_timeout(left) {
            Ok(more) => seen += &more,
            Err(_) => panic!("p2ptop never said it measured a pair: {seen:?}"),
        }
    };
    // SAFETY: kill(2) on our own child's pid, not reaped yet.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "p2ptop did not stop after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["run"]["complete"], false);
    // Every pair it had said it measured is in the report with figures, and not every pair.
    let cells = json["cells"].as_array().unwrap();
    let mut pairs: Vec<(String, String)> = cells
        .iter()
        .filter(|c| c["gbps"].as_f64().is_some_and(|g| g > 0.0) && c["samples"] == 10000)
        .map(|c| (c["src"].to_string(), c["dst"].to_string()))
        .collect();
    pairs.dedup();
    assert!(
        pairs.len() >= before,
        "said {before} pairs were measured, the report has figures for {pairs:?}"
    );
    let nodes = 9; // 8 GPUs and the host
    assert!(pairs.len() < nodes * nodes - 1, "{pairs:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_output_that_cannot_be_written_is_refused_before_measuring() {
    let dir = scratch("output-first");
    let missing = dir.join("no-such-dir").join("report.json");
    let missing = missing.to_str().unwrap();
    let cases: [&[&str]; 3] = [
        &[
            "--sim",
            "hgx-h100",
            "run",
            "--samples",
            "2000",
            "-o",
            missing,
        ],
        &[
            "--sim",
            "hgx-h100",
            "check",
            "--samples",
            "2000",
            "-o",
            missing,
        ],
        &["--sim", "hgx-h100", "topo", "-o", missing],
    ];
    for args in cases {
        let started = Instant::now();
        let out = p2ptop(args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("no directory"), "{args:?}: {err}");
        assert!(err.contains("no-such-dir"), "{args:?}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{args:?} measured first"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
/// A JSON report of `machine` (with `extra` arguments before `check`), written to `dir`.
fn json_report(dir: &Path, name: &str, machine: &str, extra: &[&str]) -> PathBuf {
    let path = dir.join(format!("{name}.json"));
    let mut args = vec!["--sim", machine];
    args.extend(extra);
    args.extend(["check", "--samples", "2", "--format", "json", "-o"]);
    args.push(path.to_str().unwrap());
    let out = p2ptop(&args);
    assert!(
        out.status.code() == Some(0),
        "{args:?}: {}",
        text(&out.stderr)
    );
    path
}

/// The report at `path` with `change` made to its JSON, written beside it as `name`.
fn edited(path: &Path, name: &str, change: impl Fn(&mut serde_json::Value)) -> String {
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    change(&mut json);
    let edited = path.with_file_name(name);
    std::fs::write(&edited, json.to_string()).unwrap();
    edited.to_str().unwrap().to_owned()
}

#[test]
fn a_baseline_of_another_shape_or_with_figures_that_cannot_be_is_refused_before_measuring() {
    let dir = scratch("baseline-refused");
    let bridge = json_report(&dir, "bridge", "3090-bridge", &[]);
    let h100 = json_report(&dir, "h100", "hgx-h100", &["--devices", "0,1"]);
    let out_file = dir.join("never.json");
    let refused = |machine: &str, baseline: &str, says: &[&str]| {
        let started = Instant::now();
        let out = p2ptop(&[
            "--sim",
            machine,
            "check",
            "--samples",
            "2000",
            "--baseline",
            baseline,
            "-o",
            out_file.to_str().unwrap(),
        ]);
        let err = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{machine} against {baseline}: {err}"
        );
        for needle in says {
            assert!(err.contains(needle), "{machine} against {baseline}: {err}");
        }
        assert!(!out_file.exists());
        // 2000 samples of every pair would take many seconds: nothing was measured.
        assert!(started.elapsed() < Duration::from_secs(10), "{err}");
    };
    let bridge = bridge.to_str().unwrap();
    let h100 = h100.to_str().unwrap();
    refused(
        "hgx-h100",
        bridge,
        &[
            "another shape",
            "2x NVIDIA GeForce RTX 3090 there, 8x NVIDIA H100 80GB HBM3 here",
        ],
    );
    refused("3090-bridge", h100, &["another shape", "8x NVIDIA H100"]);
    refused(
        "3090-pcie",
        bridge,
        &["GPU0 and GPU1 are joined by NV4 there"],
    );
    for (name, gbps, says) in [
        ("zero.json", serde_json::json!(0.0), "is 0 GB/s"),
        ("negative.json", serde_json::json!(-5.0), "is -5 GB/s"),
        ("absurd.json", serde_json::json!(1e9), "above the"),
    ] {
        let bad = edited(Path::new(bridge), name, |json| {
            json["cells"][3]["gbps"] = gbps.clone();
        });
        refused(
            "3090-bridge",
            &bad,
            &[says, "above 0 and within its path's line rate"],
        );
    }
    // A baseline of part of the machine: the cells it lacks are judged by the floors, and the
    // check says so.
    let out = p2ptop(&[
        "--sim",
        "hgx-h100",
        "--devices",
        "0,1,2",
        "check",
        "--samples",
        "2",
        "--baseline",
        h100,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("--baseline {h100} has no figure for ")),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
#[test]
fn csv_and_fleet_say_simulated_and_incomplete_in_every_format() {
    let dir = scratch("marks");
    let csv = p2ptop(&[
        "--sim",
        "3090-bridge",
        "run",
        "--samples",
        "2",
        "--format",
        "csv",
    ]);
    assert_eq!(csv.status.code(), Some(0));
    let csv = text(&csv.stdout);
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().ends_with(",origin,complete"), "{csv}");
    assert!(
        lines.all(|l| l.ends_with(",SIMULATED: 3090-bridge,true")),
        "every row says where it comes from:\n{csv}"
    );
    let a = json_report(&dir, "a", "3090-bridge", &[]);
    let b = json_report(&dir, "b", "3090-bridge", &["--seed", "2"]);
    let interrupted = edited(&b, "interrupted.json", |json| {
        json["run"]["complete"] = false.into();
        json["machine"]["host"]["hostname"] = "cut-short".into();
    });
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let same_again = dir.join("a-again.json");
    std::fs::copy(a, &same_again).unwrap();
    let same_again = same_again.to_str().unwrap();
    for format in ["table", "json", "csv", "markdown"] {
        let out = p2ptop(&[
            "fleet",
            "--format",
            format,
            a,
            b,
            &interrupted,
            a,
            same_again,
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let summary = text(&out.stdout);
        let err = text(&out.stderr);
        // a given twice and its copy count once; b and the interrupted one are rows of their own.
        for again in [a, same_again] {
            assert!(
                err.contains(&format!("{again} is the same report as {a}: counted once")),
                "{format}: {err}"
            );
        }
        match format {
            "json" => {
                let json: serde_json::Value = serde_json::from_str(&summary).unwrap();
                assert_eq!(json["simulated"], true);
                let nodes = json["nodes"].as_array().unwrap();
                assert_eq!(nodes.len(), 3, "{summary}");
                assert!(nodes.iter().all(|n| n["simulated"] == "3090-bridge"));
                assert_eq!(nodes[2]["complete"], false);
                assert_eq!(json["duplicates"].as_array().unwrap().len(), 2);
            }
            "csv" => {
                let rows: Vec<&str> = summary.lines().skip(1).collect();
                assert_eq!(rows.len(), 3, "{summary}");
                assert!(
                    rows[..2]
                        .iter()
                        .all(|r| r.ends_with(",SIMULATED: 3090-bridge,true"))
                );
                assert!(
                    rows[2].ends_with(",SIMULATED: 3090-bridge,false"),
                    "{summary}"
                );
            }
            _ => {
                let rows: Vec<&str> = summary
                    .lines()
                    .filter(|l| l.contains("sim-3090-bridge") || l.contains("cut-short"))
                    .collect();
                assert_eq!(rows.len(), 3, "{format}: {summary}");
                assert!(rows.iter().all(|r| r.contains("SIMULATED: 3090-bridge")));
                let cut = rows.iter().find(|r| r.contains("cut-short")).unwrap();
                assert!(cut.contains("INCOMPLETE"), "{format}: {summary}");
            }
        }
        if format == "markdown" {
            assert!(
                summary.starts_with("> **SIMULATED** — 3 of 3 report(s)"),
                "{summary}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
