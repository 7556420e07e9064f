//! Prometheus metrics: the text exposition format that node_exporter's textfile collector
//! serves (`check --format prometheus -o /var/lib/prometheus/node-exporter/p2ptop.prom`).
//!
//! Series are named `p2ptop_…` in base units (bytes per second, seconds, ratios) and carry no
//! timestamps (the textfile collector refuses them). GPUs are labelled as DCGM exporter labels
//! them (`gpu`, `UUID`, `pci_bus_id` as `00000000:1B:00.0`, `modelName`, `Hostname`), so a
//! query can join p2ptop's series with DCGM's on `UUID` or `Hostname` and `gpu`. DCGM's own
//! names (`DCGM_FI_PROF_PCIE_TX_BYTES`…) are passive counters of traffic; these are measured
//! figures and never take those names. Every series of a simulated run carries
//! `simulated="<machine>"`, so a simulated figure can never pass for a measured one.

use crate::model::topology::Gpu;
use crate::probe::protocol::Node;
use crate::report::cause::Key;
use crate::report::run::{CellReport, Report};
use crate::report::verdict::{Level, Verdict};
use std::fmt::Write;

/// One metric family: every sample of one name, written together as the format requires.
struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<Sample>,
}

struct Sample {
    labels: Vec<(&'static str, String)>,
    value: f64,
}

const LEVELS: [Level; 3] = [Level::Pass, Level::Warn, Level::Fail];

/// The report's figures, verdict and causes as gauges.
pub fn render(report: &Report, verdict: &Verdict) -> String {
    let common = common_labels(report);
    let families = [
        run_start(report),
        run_duration(report),
        run_complete(report),
        verdict_state(verdict),
        causes(report, verdict),
        gpu_verdicts(report, verdict),
        bandwidth(report, Figure::Bandwidth),
        bandwidth(report, Figure::Efficiency),
        line_rates(report),
        latency(report),
    ];
    let mut out = String::new();
    for family in families.iter().filter(|f| !f.samples.is_empty()) {
        let _ = writeln!(out, "# HELP {} {}", family.name, escape_help(family.help));
        let _ = writeln!(out, "# TYPE {} gauge", family.name);
        for sample in &family.samples {
            let labels: Vec<String> = common
                .iter()
                .chain(&sample.labels)
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                .collect();
            let _ = writeln!(
                out,
                "{}{{{}}} {}",
                family.name,
                labels.join(","),
                sample.value
            );
        }
    }
    out
}

/// On every series: the host as DCGM names it, and the simulated machine when there is one.
fn common_labels(report: &Report) -> Vec<(&'static str, String)> {
    let mut labels = vec![("Hostname", report.hostname().to_owned())];
    if report.emulated {
        labels.push(("emulated", "true".to_owned()));
    }
    if let Some(name) = &report.simulated {
        labels.push(("simulated", name.clone()));
    }
    labels
}

fn one(labels: Vec<(&'static str, String)>, value: f64) -> Sample {
    Sample { labels, value }
}

fn run_start(report: &Report) -> Family {
    let started = humantime::parse_rfc3339(&report.run.started_at)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    Family {
        name: "p2ptop_run_start_timestamp_seconds",
        help: "When the run started, in seconds since the Unix epoch.",
        samples: started
            .map(|d| one(Vec::new(), d.as_secs() as f64))
            .into_iter()
            .collect(),
    }
}

fn run_duration(report: &Report) -> Family {
    let seconds = report.telemetry.iter().map(|t| t.seconds).reduce(f64::max);
    Family {
        name: "p2ptop_run_duration_seconds",
        help: "How long the run took, as the telemetry sampler counted it from its first \
               reading to its last (simulated seconds on a simulated machine).",
        samples: seconds.map(|s| one(Vec::new(), s)).into_iter().collect(),
    }
}

fn run_complete(report: &Report) -> Family {
    Family {
        name: "p2ptop_run_complete",
        help: "1 when every planned measurement finished, 0 when the run was interrupted.",
        samples: vec![one(Vec::new(), f64::from(u8::from(report.run.complete)))],
    }
}

/// A state set: one series per level, 1 for the one that holds.
fn levels(labels: &[(&'static str, String)], level: Level) -> Vec<Sample> {
    LEVELS
        .iter()
        .map(|&l| {
            let mut labels = labels.to_vec();
            labels.push(("level", l.word().to_lowercase()));
            one(labels, f64::from(u8::from(l == level)))
        })
        .collect()
}

fn verdict_state(verdict: &Verdict) -> Family {
    Family {
        name: "p2ptop_verdict",
        help: "The verdict on the machine: 1 for the level that holds (pass, warn or fail), 0 \
               for the others.",
        samples: levels(&[], verdict.overall),
    }
}

fn gpu_verdicts(report: &Report, verdict: &Verdict) -> Family {
    Family {
        name: "p2ptop_gpu_verdict",
        help: "The verdict on each GPU (its links, PCIe under load, error counters, \
               throttling): 1 for the level that holds, 0 for the others.",
        samples: verdict
            .gpus
            .iter()
            .flat_map(|g| levels(&gpu_labels(report, g.gpu), g.level))
            .collect(),
    }
}

/// Every root cause of a non-pass (worst first in the report): its kind, level and words, and
/// what it is about, labelled so it joins what it is about: DCGM's labels for a GPU, `src` and
/// `dst` for a pair, `subject="run"` for the run.
fn causes(report: &Report, verdict: &Verdict) -> Family {
    let samples = verdict
        .causes
        .iter()
        .filter(|c| c.level > Level::Pass)
        .map(|c| {
            let kind = serde_json::to_value(c.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let mut labels = match c.about {
                Key::Gpu(gpu) => gpu_labels(report, gpu),
                Key::Pair(a, b) => vec![("src", node_label(a)), ("dst", node_label(b))],
                Key::Run => vec![("subject", "run".to_owned())],
            };
            labels.extend([
                ("kind", kind),
                ("level", c.level.word().to_lowercase()),
                ("cause", c.what.clone()),
            ]);
            one(labels, 1.0)
        })
        .collect();
    Family {
        name: "p2ptop_cause_info",
        help: "Each root cause of a non-pass verdict (always 1): what it is about (a GPU by \
               DCGM's labels, a pair by src and dst, or the run), its kind, level and words.",
        samples,
    }
}

#[derive(Clone, Copy)]
enum Figure {
    Bandwidth,
    Efficiency,
}

/// Per direction of every measured cell: its median, or that over the line rate.
fn bandwidth(report: &Report, figure: Figure) -> Family {
    let samples = report
        .cells
        .iter()
        .flat_map(|cell| {
            cell.directions.iter().filter_map(move |d| {
                let value = match figure {
                    Figure::Bandwidth => d.median_gbps * 1e9,
                    Figure::Efficiency => {
                        d.median_gbps / cell.line_rate_gbps.filter(|l| *l > 0.0)?
                    }
                };
                let mut labels = path_labels(cell, d.src, d.dst);
                labels.push(("op", cell.op.name().to_owned()));
                labels.push(("engine", cell.engine.name().to_owned()));
                labels.extend(gpu_labels(report, d.executor));
                Some(one(labels, value))
            })
        })
        .filter(|s| s.value.is_finite())
        .collect();
    match figure {
        Figure::Bandwidth => Family {
            name: "p2ptop_bandwidth_bytes_per_second",
            help: "Measured bandwidth from src's memory into dst's, the median of the samples, \
                   per direction (a bidir measurement has one series per direction). gpu, \
                   UUID, pci_bus_id and modelName are the GPU that ran the copy.",
            samples,
        },
        Figure::Efficiency => Family {
            name: "p2ptop_bandwidth_efficiency_ratio",
            help: "Measured bandwidth over the path's line rate per direction (1 = the wires' \
                   theoretical rate). gpu, UUID, pci_bus_id and modelName are the GPU that ran \
                   the copy.",
            samples,
        },
    }
}

/// The theoretical rate of every measured path, once per direction.
fn line_rates(report: &Report) -> Family {
    let mut samples: Vec<Sample> = Vec::new();
    for cell in &report.cells {
        let Some(rate) = cell.line_rate_gbps else {
            continue;
        };
        for d in &cell.directions {
            let labels = path_labels(cell, d.src, d.dst);
            if !samples.iter().any(|s| s.labels == labels) {
                samples.push(one(labels, rate * 1e9));
            }
        }
    }
    Family {
        name: "p2ptop_line_rate_bytes_per_second",
        help: "The theoretical bandwidth of the path from src to dst per direction (NVLinks × \
               their rate, or PCIe generation × width).",
        samples,
    }
}

fn latency(report: &Report) -> Family {
    let samples = report
        .latency
        .iter()
        .map(|l| {
            let link = match (l.src, l.dst) {
                (Node::Gpu(a), Node::Gpu(b)) => report.machine.topology.link(a, b),
                _ => None,
            };
            let mut labels = vec![("src", node_label(l.src)), ("dst", node_label(l.dst))];
            labels.extend(link.map(|k| ("link", k.to_string())));
            // The chase runs at the destination, reading src's memory; a host path's GPU end
            // runs it either way (the host runs no kernel).
            if let Node::Gpu(g) = match l.dst {
                Node::Host => l.src,
                gpu => gpu,
            } {
                labels.extend(gpu_labels(report, g));
            }
            one(labels, l.ns * 1e-9)
        })
        .collect();
    Family {
        name: "p2ptop_latency_seconds",
        help: "Time per dependent access of a pointer chase through src's memory. gpu, UUID, \
               pci_bus_id and modelName are the GPU that ran the chase.",
        samples,
    }
}

/// `src`, `dst` and, between GPUs, `link` as `nvidia-smi topo -m` names it.
fn path_labels(cell: &CellReport, src: Node, dst: Node) -> Vec<(&'static str, String)> {
    let mut labels = vec![("src", node_label(src)), ("dst", node_label(dst))];
    labels.extend(cell.link.map(|l| ("link", l.to_string())));
    labels
}

/// A GPU by its NVML index (as DCGM's `gpu` label) or `host`.
fn node_label(node: Node) -> String {
    match node {
        Node::Gpu(g) => g.to_string(),
        Node::Host => "host".to_owned(),
    }
}

/// DCGM exporter's labels for one GPU; only `gpu` when the report does not describe it.
fn gpu_labels(report: &Report, index: u32) -> Vec<(&'static str, String)> {
    let mut labels = vec![("gpu", index.to_string())];
    if let Some(gpu) = report.machine.topology.gpu(index) {
        labels.extend(dcgm_identity(gpu));
    }
    labels
}

fn dcgm_identity(gpu: &Gpu) -> [(&'static str, String); 3] {
    [
        ("UUID", gpu.uuid.clone()),
        ("pci_bus_id", dcgm_bus_id(&gpu.pci_bus_id)),
        ("modelName", gpu.name.clone()),
    ]
}

/// DCGM's form of a PCI bus id: an eight-digit domain and upper-case hex
/// (`0000:1b:00.0` → `00000000:1B:00.0`). An id of another shape is upper-cased as it is.
pub fn dcgm_bus_id(id: &str) -> String {
    let Some((domain, rest)) = id.split_once(':') else {
        return id.to_uppercase();
    };
    match u32::from_str_radix(domain, 16) {
        Ok(domain) => format!("{domain:08X}:{}", rest.to_uppercase()),
        Err(_) => id.to_uppercase(),
    }
}

/// Label values escape backslash, double quote and line feed.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Help text escapes backslash and line feed.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_ids_take_dcgm_s_form() {
        assert_eq!(dcgm_bus_id("0000:1b:00.0"), "00000000:1B:00.0");
        assert_eq!(dcgm_bus_id("00000000:c4:00.0"), "00000000:C4:00.0");
        assert_eq!(dcgm_bus_id("weird"), "WEIRD");
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        assert_eq!(escape_help("x\\y\nz"), "x\\\\y\\nz");
    }
}
