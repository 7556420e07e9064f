//! `fleet`: many nodes' reports merged, an outlier of its shape flagged, bad files named.

use crate::common::{Run, gpu_pair, gpus, scratch, with_faults};
use p2ptop::probe::protocol::{Engine, Op};
use p2ptop::report::fleet::{load, summarize};
use p2ptop::report::format::{Format, render};
use p2ptop::report::run::Report;
use p2ptop::report::verdict::{Floors, Level, judge};
use p2ptop::report::write::write_output;
use p2ptop::sim;
use p2ptop::sim::machine::Machine;

fn node(machine: Machine, seed: u64, hostname: &str) -> Report {
    let mut run = Run::new(machine);
    run.sim = p2ptop::sim::simulation::Simulation::new(run.sim.machine.clone(), seed);
    let pairs = vec![
        gpu_pair(0, 1),
        gpu_pair(1, 0),
        gpu_pair(0, 2),
        gpu_pair(2, 3),
    ];
    run.measure(pairs, &[Op::Write], &[Engine::Sm]);
    let mut report = run.report();
    report.machine.topology.host.hostname = Some(hostname.into());
    report
}

fn fleet_files(name: &str) -> (std::path::PathBuf, Vec<std::path::PathBuf>) {
    let dir = scratch(name);
    let hgx = || sim::load("hgx-h100").unwrap();
    let capped = with_faults(
        "hgx-h100",
        "[[faults]]\nkind = \"power_cap\"\ngpu = 0\nwatts = 150.0\n",
    );
    let reports = [
        node(hgx(), 1, "node-a"),
        node(hgx(), 2, "node-b"),
        node(capped, 3, "node-c"),
        node(hgx(), 4, "node-d"),
        {
            let mut run = Run::preset("3090-pcie");
            run.sweep(&gpus(2));
            run.report()
        },
    ];
    let paths = reports
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let path = dir.join(format!("{i}.json"));
            let text = render(Format::Json, r, &judge(r, &Floors::default(), None));
            write_output(&path, text.as_bytes()).unwrap();
            path
        })
        .collect();
    (dir, paths)
}

#[test]
fn the_node_behind_its_peers_is_flagged_and_other_shapes_are_apart() {
    let (dir, paths) = fleet_files("fleet-outlier");
    let fleet = summarize(&load(&paths).unwrap(), &Floors::default());
    let names: Vec<&str> = fleet.nodes.iter().map(|n| n.node.as_str()).collect();
    assert_eq!(
        names,
        ["node-a", "node-b", "node-c", "node-d", "sim-3090-pcie"]
    );
    let flagged: Vec<&str> = fleet
        .nodes
        .iter()
        .filter(|n| n.outlier)
        .map(|n| n.node.as_str())
        .collect();
    assert_eq!(flagged, ["node-c"], "{fleet:#?}");
    let c = &fleet.nodes[2];
    assert!(
        c.worst_cell.as_deref().unwrap().starts_with("GPU0 → "),
        "{c:?}"
    );
    assert!(c.worst_efficiency.unwrap() < 0.9 * c.shape_median_efficiency.unwrap());
    assert_eq!(fleet.nodes[0].verdict, Level::Pass);
    assert_eq!(fleet.nodes[0].failed_cells, 0);
    // The 3090 machine is alone in its shape: its staged copies are not compared with NVLink.
    let geforce = &fleet.nodes[4];
    assert_ne!(geforce.shape, c.shape);
    assert!(!geforce.outlier);
    let table = fleet.render(Format::Table);
    let row = table.lines().find(|l| l.starts_with("node-c")).unwrap();
    assert!(row.contains("OUTLIER"), "{table}");
    let csv = fleet.render(Format::Csv);
    assert!(csv.starts_with("node,shape,verdict,"), "{csv}");
    assert_eq!(csv.lines().count(), 6);
    let md = fleet.render(Format::Markdown);
    assert!(md.contains("| node-c | "), "{md}");
    let json: serde_json::Value = serde_json::from_str(&fleet.render(Format::Json)).unwrap();
    assert_eq!(json["nodes"][2]["outlier"], true);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn every_unusable_file_is_named_with_the_spot() {
    let (dir, mut paths) = fleet_files("fleet-errors");
    let broken = dir.join("broken.json");
    std::fs::write(&broken, "{\n  \"schema\": 1,\n  oops\n}").unwrap();
    paths.push(broken);
    paths.push(dir.join("missing.json"));
    let errors = load(&paths).unwrap_err();
    assert_eq!(errors.0.len(), 2);
    let text = errors.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains("broken.json:3:3: "), "{text}");
    assert!(lines[1].contains("missing.json: cannot read"), "{text}");
    assert!(
        errors
            .0
            .iter()
            .all(|e| e.exit_code() == p2ptop::exit::USAGE)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_incomplete_report_is_shown_but_left_out_of_the_median_and_a_report_counts_once() {
    let (dir, paths) = fleet_files("fleet-incomplete");
    let complete = summarize(&load(&paths).unwrap(), &Floors::default());
    // node-c (capped, the outlier) was interrupted: the median is that of a, b and d alone.
    let c = &paths[2];
    let mut report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(c).unwrap()).unwrap();
    report["run"]["complete"] = false.into();
    std::fs::write(c, report.to_string()).unwrap();
    let mut twice = paths.clone();
    twice.push(paths[0].clone());
    let inputs = load(&twice).unwrap();
    assert_eq!(inputs.reports.len(), paths.len());
    assert_eq!(inputs.duplicates.len(), 1);
    assert_eq!(inputs.duplicates[0].same_as, paths[0].display().to_string());
    let fleet = summarize(&inputs, &Floors::default());
    let mut peers: Vec<f64> = [0, 1, 3]
        .iter()
        .map(|&i| complete.nodes[i].worst_efficiency.unwrap())
        .collect();
    peers.sort_by(f64::total_cmp);
    assert_eq!(fleet.nodes[0].shape_median_efficiency, Some(peers[1]));
    assert_ne!(
        complete.nodes[0].shape_median_efficiency,
        Some(peers[1]),
        "the interrupted node's figure would have moved the median"
    );
    assert!(!fleet.nodes[2].complete);
    let table = fleet.render(Format::Table);
    let row = table.lines().find(|l| l.starts_with("node-c")).unwrap();
    assert!(
        row.contains("INCOMPLETE") && row.contains("OUTLIER"),
        "{table}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn emulated_reports_say_so_in_every_fleet_format_and_in_csv() {
    let mut report = node(sim::load("hgx-h100").unwrap(), 1, "emu-node");
    report.simulated = None;
    report.emulated = true;
    let verdict = judge(&report, &Floors::default(), None);
    let csv = render(Format::Csv, &report, &verdict);
    assert!(
        csv.lines()
            .skip(1)
            .all(|l| l.ends_with(",EMULATED drivers,true")),
        "{csv}"
    );
    let dir = scratch("fleet-emulated");
    let path = dir.join("emu.json");
    let json = render(Format::Json, &report, &verdict);
    write_output(&path, json.as_bytes()).unwrap();
    let fleet = summarize(&load(&[path]).unwrap(), &Floors::default());
    assert!(fleet.emulated && !fleet.simulated);
    for format in [Format::Table, Format::Csv, Format::Markdown] {
        let text = fleet.render(format);
        let row = text.lines().find(|l| l.contains("emu-node")).unwrap();
        assert!(row.contains("EMULATED drivers"), "{format:?}: {text}");
    }
    assert!(
        fleet
            .render(Format::Markdown)
            .starts_with("> **EMULATED** — 1 of 1 report(s)")
    );
    let json: serde_json::Value = serde_json::from_str(&fleet.render(Format::Json)).unwrap();
    assert_eq!(json["nodes"][0]["emulated"], true);
    std::fs::remove_dir_all(dir).unwrap();
}
