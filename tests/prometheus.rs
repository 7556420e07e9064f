//! `--format prometheus` as Prometheus meets it: figures equal to the JSON report's in base
//! units, DCGM exporter's GPU labels, the verdict and each cause; `promtool check metrics` on
//! the output; and a real node_exporter serving it from its textfile directory.

mod daemons;

use daemons::{Daemon, Scratch, free_port, have, http_get, program, shown, wait_for};
use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::Duration;

const P2PTOP: &str = env!("CARGO_BIN_EXE_p2ptop");

fn p2ptop(args: &[&str]) -> Output {
    Command::new(P2PTOP).args(args).output().unwrap()
}

/// One sample line: its name, labels and value.
#[derive(Debug)]
struct Series {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of an exposition, checking that each family's HELP and TYPE come first.
fn parse(text: &str) -> Vec<Series> {
    let mut typed: Vec<String> = Vec::new();
    let mut series = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert_eq!(kind, "gauge", "{line}");
            typed.push(name.to_owned());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let s = parse_sample(line);
        assert_eq!(
            typed.last(),
            Some(&s.name),
            "a sample outside its family: {line}"
        );
        series.push(s);
    }
    series
}

fn parse_sample(line: &str) -> Series {
    let (name, rest) = line
        .split_once('{')
        .unwrap_or_else(|| panic!("no labels: {line}"));
    let mut labels = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "{line}");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => panic!("{line}"),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(key, value);
        match chars.next() {
            Some(',') => continue,
            Some('}') => break,
            other => panic!("{other:?} after a label in {line}"),
        }
    }
    let value: String = chars.collect();
    Series {
        name: name.to_owned(),
        labels,
        value: value.trim().parse().unwrap_or_else(|_| panic!("{line}")),
    }
}

fn find<'a>(series: &'a [Series], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Series> {
    series
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

fn node(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Number(n) => n.to_string(),
        other => other.as_str().unwrap().to_owned(),
    }
}

#[test]
fn every_figure_is_the_reports_in_base_units_with_dcgm_gpu_labels_and_the_simulated_flag() {
    let args = [
        "--sim",
        "hgx-h100",
        "--devices",
        "0,1",
        "run",
        "--samples",
        "2",
        "--format",
    ];
    let metrics = p2ptop(&[&args[..], &["prometheus"]].concat());
    assert_eq!(metrics.status.code(), Some(0), "{}", shown(&metrics));
    let text = String::from_utf8(metrics.stdout).unwrap();
    let json = p2ptop(&[&args[..], &["json"]].concat());
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let series = parse(&text);

    assert!(
        !text.contains("DCGM_"),
        "DCGM's names are for its own counters"
    );
    for s in &series {
        assert!(s.name.starts_with("p2ptop_"), "{s:?}");
        assert_eq!(s.labels["simulated"], "hgx-h100", "{s:?}");
        assert_eq!(s.labels["Hostname"], "sim-hgx-h100", "{s:?}");
    }
    let gpus = report["machine"]["gpus"].as_array().unwrap();
    let mut directions = 0;
    for cell in report["cells"].as_array().unwrap() {
        for d in cell["directions"].as_array().unwrap() {
            directions += 1;
            let (src, dst, executor) = (node(&d["src"]), node(&d["dst"]), node(&d["executor"]));
            let labels = [
                ("src", src.as_str()),
                ("dst", dst.as_str()),
                ("op", cell["op"].as_str().unwrap()),
                ("engine", cell["engine"].as_str().unwrap()),
            ];
            let median = d["median_gbps"].as_f64().unwrap();
            let found = find(&series, "p2ptop_bandwidth_bytes_per_second", &labels);
            assert_eq!(found.len(), 1, "{labels:?}");
            assert!((found[0].value - median * 1e9).abs() <= 1e-6 * median * 1e9);
            let gpu = gpus.iter().find(|g| node(&g["index"]) == executor).unwrap();
            assert_eq!(found[0].labels["gpu"], executor);
            assert_eq!(found[0].labels["UUID"], gpu["uuid"].as_str().unwrap());
            assert_eq!(found[0].labels["modelName"], "NVIDIA H100 80GB HBM3");
            let bus = &found[0].labels["pci_bus_id"];
            assert!(
                bus.len() == 16 && bus.as_bytes()[8] == b':' && *bus == bus.to_uppercase(),
                "not DCGM's form 00000000:1B:00.0: {bus}"
            );
            let line_rate = cell["line_rate_gbps"].as_f64().unwrap();
            let ratio = find(&series, "p2ptop_bandwidth_efficiency_ratio", &labels);
            assert!((ratio[0].value - median / line_rate).abs() < 1e-9);
            if src != "host" && dst != "host" {
                let link = cell["link"].as_str().unwrap();
                assert_eq!(found[0].labels["link"], link);
            }
        }
    }
    assert!(directions > 20, "too few measurements: {directions}");
    for l in report["latency"].as_array().unwrap() {
        let labels = [("src", node(&l["src"])), ("dst", node(&l["dst"]))];
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let found = find(&series, "p2ptop_latency_seconds", &labels);
        assert_eq!(found.len(), 1, "{labels:?}");
        assert!((found[0].value - l["ns"].as_f64().unwrap() * 1e-9).abs() < 1e-15);
    }
    let started = find(&series, "p2ptop_run_start_timestamp_seconds", &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - started[0].value).abs() < 600.0, "{started:?}");
    let duration = find(&series, "p2ptop_run_duration_seconds", &[]);
    assert!(duration[0].value > 0.0);
    assert_eq!(
        find(&series, "p2ptop_verdict", &[("level", "pass")])[0].value,
        1.0
    );
}

/// A two-GPU slice of an HGX H100 whose GPU1 corrupts what it receives from GPU0 and trained
/// its PCIe link down.
fn faulty_machine(scratch: &Scratch) -> String {
    let path = scratch.path("faulty.toml");
    std::fs::write(
        &path,
        "name = \"hgx-faulty\"\nsummary = \"test\"\npreset = \"hgx-h100\"\n\
         [[faults]]\nkind = \"corrupt\"\nsrc = \"0\"\ndst = \"1\"\n\
         [[faults]]\nkind = \"pcie_downgraded\"\ngpu = 1\ngeneration = 4\nwidth = 8\n",
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

/// `check --quick --format prometheus -o FILE` on the faulty machine: exit 1, the file.
fn failing_metrics(scratch: &Scratch) -> String {
    let machine = faulty_machine(scratch);
    let file = scratch.path("p2ptop.prom");
    let out = p2ptop(&[
        "--sim",
        &machine,
        "--devices",
        "0,1",
        "check",
        "--quick",
        "--format",
        "prometheus",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    std::fs::read_to_string(file).unwrap()
}

#[test]
fn a_failing_check_exports_its_verdict_and_each_cause() {
    let scratch = Scratch::new("prom-fail");
    let series = parse(&failing_metrics(&scratch));
    assert_eq!(
        find(&series, "p2ptop_verdict", &[("level", "fail")])[0].value,
        1.0
    );
    assert_eq!(
        find(&series, "p2ptop_verdict", &[("level", "pass")])[0].value,
        0.0
    );
    let corrupt = find(
        &series,
        "p2ptop_cause_info",
        &[
            ("src", "0"),
            ("dst", "1"),
            ("kind", "corruption"),
            ("level", "fail"),
        ],
    );
    assert!(
        corrupt
            .iter()
            .any(|s| s.labels["cause"].contains("data arrived wrong")),
        "{corrupt:?}"
    );
    let pcie = find(
        &series,
        "p2ptop_cause_info",
        &[("gpu", "1"), ("level", "fail")],
    );
    assert!(
        pcie.iter().any(
            |s| s.labels["cause"].contains("PCIe link reached only Gen4 x8")
                && s.labels["UUID"].starts_with("GPU-")
        ),
        "{pcie:?}"
    );
    assert_eq!(
        find(
            &series,
            "p2ptop_gpu_verdict",
            &[("gpu", "1"), ("level", "fail")]
        )[0]
        .value,
        1.0
    );
    assert_eq!(
        find(
            &series,
            "p2ptop_gpu_verdict",
            &[("gpu", "0"), ("level", "pass")]
        )[0]
        .value,
        1.0
    );
    // --quick: SM bidir only, so no latency series and no copy-engine figures.
    assert!(find(&series, "p2ptop_latency_seconds", &[]).is_empty());
    assert!(
        find(
            &series,
            "p2ptop_bandwidth_bytes_per_second",
            &[("engine", "ce")]
        )
        .is_empty()
    );
}

/// `promtool check metrics` on `text`: its exit code and what it said.
fn promtool(text: &str) -> (Option<i32>, String) {
    let mut child = Command::new(program("promtool"))
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), said)
}

#[test]
fn promtool_finds_nothing_wrong_but_dcgm_s_camel_case_label_names() {
    if !have(&["promtool"], "prometheus") {
        return;
    }
    let scratch = Scratch::new("promtool");
    let full = p2ptop(&[
        "--sim",
        "3090-bridge",
        "run",
        "--samples",
        "2",
        "--format",
        "prometheus",
    ]);
    for text in [
        String::from_utf8(full.stdout).unwrap(),
        failing_metrics(&scratch),
    ] {
        // DCGM exporter's label names (UUID, modelName, Hostname) break promtool's snake_case
        // rule; they are kept so the series join with DCGM's. Everything else must be clean.
        let (code, said) = promtool(&text);
        assert_eq!(code, Some(3), "{said}");
        for line in said.lines() {
            assert!(
                line.ends_with("label names should be written in 'snake_case' not 'camelCase'"),
                "promtool: {line}"
            );
        }
        let snake = text
            .replace("UUID=", "uuid=")
            .replace("modelName=", "model_name=")
            .replace("Hostname=", "hostname=");
        assert_eq!(promtool(&snake), (Some(0), String::new()));
    }
}

#[test]
fn node_exporter_serves_the_metrics_from_its_textfile_directory() {
    if !have(&["prometheus-node-exporter"], "prometheus-node-exporter") {
        return;
    }
    let scratch = Scratch::new("node-exporter");
    let textfiles = scratch.path("textfile");
    std::fs::create_dir(&textfiles).unwrap();
    let out = p2ptop(&[
        "--sim",
        "hgx-h100",
        "check",
        "--quick",
        "--format",
        "prometheus",
        "-o",
        textfiles.join("p2ptop.prom").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    // A second node's failing check beside it: other label values, the same families.
    std::fs::write(textfiles.join("failing.prom"), failing_metrics(&scratch)).unwrap();
    let (exporter, port) = start_node_exporter(&scratch, &textfiles);
    let body = wait_for(
        "answer from node_exporter",
        Duration::from_secs(15),
        || http_get(port, "/metrics"),
        || exporter.log(),
    );
    let series: Vec<Series> = body
        .lines()
        .filter(|l| l.starts_with("p2ptop_") || l.starts_with("node_textfile_scrape_error"))
        .filter(|l| l.contains('{'))
        .map(parse_sample)
        .collect();
    let bandwidth = find(
        &series,
        "p2ptop_bandwidth_bytes_per_second",
        &[
            ("simulated", "hgx-h100"),
            ("src", "0"),
            ("dst", "1"),
            ("op", "bidir"),
            ("link", "NV18"),
        ],
    );
    assert_eq!(bandwidth.len(), 1, "{body}");
    assert!(bandwidth[0].value > 300e9, "{bandwidth:?}");
    let healthy = [("simulated", "hgx-h100"), ("level", "pass")];
    assert_eq!(find(&series, "p2ptop_verdict", &healthy)[0].value, 1.0);
    let causes = find(&series, "p2ptop_cause_info", &[("level", "fail")]);
    assert!(
        causes
            .iter()
            .any(|s| s.labels.get("gpu").is_some_and(|g| g == "1"))
            && causes
                .iter()
                .any(|s| s.labels.get("src").is_some_and(|g| g == "0")),
        "a GPU's cause and a measurement's cause, each with its own labels: {causes:?}"
    );
    assert!(
        body.lines().any(|l| l == "node_textfile_scrape_error 0"),
        "node_exporter could not read the file:\n{}",
        exporter.log()
    );
}

/// node_exporter with only the textfile collector, on a loopback port; a port taken between
/// asking and binding is retried on another.
fn start_node_exporter(scratch: &Scratch, textfiles: &std::path::Path) -> (Daemon, u16) {
    for attempt in 0..3 {
        let port = free_port();
        let mut command = Command::new(program("prometheus-node-exporter"));
        command
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--collector.disable-defaults")
            .arg("--collector.textfile")
            .arg(format!(
                "--collector.textfile.directory={}",
                textfiles.display()
            ));
        let log = scratch.path(&format!("node-exporter-{attempt}.log"));
        let mut daemon = Daemon::start("node_exporter", command, &log);
        let up = wait_for(
            "listening node_exporter",
            Duration::from_secs(15),
            || {
                if daemon.exited().is_some() {
                    return Some(false);
                }
                std::net::TcpStream::connect(("127.0.0.1", port))
                    .ok()
                    .map(|_| true)
            },
            || std::fs::read_to_string(&log).unwrap_or_default(),
        );
        if up {
            return (daemon, port);
        }
    }
    panic!("node_exporter could not listen on three ports in a row");
}
