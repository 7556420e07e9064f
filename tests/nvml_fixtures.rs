//! Discovery, the `topo` report and the telemetry sampler on recorded NVML answers of real
//! machine shapes (tests/fixtures/nvml/).

use p2ptop::model::topology::{Host, LinkType, NvLinkRemote, P2pStatus, Topology};
use p2ptop::nvml::discover::discover;
use p2ptop::nvml::recorded::RecordedNvml;
use p2ptop::nvml::sampler::{ERRORS_EVERY, Sampler, spawn};
use p2ptop::report::topo::{render_json, render_text};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

const FIXTURES: [&str; 6] = [
    "rtx3090-nvlink-2x",
    "rtx3090-nvlink-4x",
    "rtx4090-pcie-4x",
    "a100-sxm4-8x",
    "h100-sxm5-8x",
    "dual-socket-pcie-switch",
];

fn recording(name: &str) -> RecordedNvml {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/nvml")
        .join(format!("{name}.json"));
    RecordedNvml::from_path(&path).unwrap()
}

fn topology(name: &str) -> Topology {
    discover(&recording(name), Host::default(), &[])
}

/// The link matrix as `nvidia-smi topo -m` prints its cells.
fn matrix(topo: &Topology) -> Vec<Vec<String>> {
    topo.gpus
        .iter()
        .map(|row| {
            topo.gpus
                .iter()
                .map(|col| topo.link(row.index, col.index).unwrap().to_string())
                .collect()
        })
        .collect()
}

fn rows(text: &[&str]) -> Vec<Vec<String>> {
    text.iter()
        .map(|row| row.split_whitespace().map(str::to_owned).collect())
        .collect()
}

#[test]
fn a_bridged_3090_pair_is_nv4_at_56_25() {
    let topo = topology("rtx3090-nvlink-2x");
    assert_eq!(matrix(&topo), rows(&["X NV4", "NV4 X"]));
    let pair = topo.pair(0, 1).unwrap();
    let rate = pair.line_rate.as_ref().unwrap();
    assert_eq!(
        rate.gbps, 56.25,
        "GeForce gives no link speed: the GA102 table"
    );
    assert!(pair.p2p.read.is_ok() && pair.p2p_back.write.is_ok());
    let gpu1 = topo.gpu(1).unwrap();
    assert_eq!(gpu1.pci_bus_id, "0000:21:00.0");
    assert_eq!(
        gpu1.nvlinks[0].remote,
        NvLinkRemote::Gpu("0000:01:00.0".into())
    );
    assert_eq!(gpu1.nvlinks[0].version.as_deref(), Some("3.1"));
    assert_eq!(gpu1.numa_node, None, "unsupported stays unknown");
    assert_eq!(topo.host.driver_version.as_deref(), Some("550.54.15"));
    assert_eq!(topo.host.cuda_version.as_deref(), Some("12.4"));
}

#[test]
fn two_bridged_pairs_are_nv4_phb_and_node() {
    let topo = topology("rtx3090-nvlink-4x");
    assert_eq!(
        matrix(&topo),
        rows(&[
            "X NV4 PHB NODE",
            "NV4 X PHB NODE",
            "PHB PHB X NV4",
            "NODE NODE NV4 X",
        ])
    );
    assert_eq!(topo.p2p(0, 2).unwrap().read, P2pStatus::Gns);
    assert_eq!(topo.p2p(3, 2).unwrap().read, P2pStatus::Ok);
    // NVML's field 164 (14062 MB/s) wins over the table.
    let rate = topo.pair(2, 3).unwrap().line_rate.as_ref().unwrap();
    assert!((rate.gbps - 56.248).abs() < 1e-9, "{}", rate.gbps);
    assert_eq!(rate.basis, "4 NVLink × 14.062 GB/s");
    let pcie = topo.pair(0, 3).unwrap().line_rate.as_ref().unwrap();
    assert_eq!(pcie.basis, "PCIe 4.0 x16");
}

#[test]
fn four_4090s_on_pcie_are_phb_without_p2p() {
    let topo = topology("rtx4090-pcie-4x");
    assert!(
        matrix(&topo)
            .iter()
            .flatten()
            .all(|c| c == "X" || c == "PHB")
    );
    assert_eq!(topo.pairs.len(), 6);
    for pair in &topo.pairs {
        assert_eq!(pair.p2p.read, P2pStatus::Gns);
        assert_eq!(pair.p2p.nvlink, P2pStatus::Ns);
    }
    assert!(topo.gpus.iter().all(|g| g.nvlinks.is_empty()));
    assert_eq!(topo.gpu(3).unwrap().power_limit_w, None);
}

#[test]
fn nvswitch_machines_count_switch_links() {
    // The H100 fixture's links report 26.562 GB/s (NVML's signalling rate); each carries 25 of
    // data, the rate paths are judged by (see `model::line_rate::nvlink_data_gbps`).
    for (name, links, per_link) in [("a100-sxm4-8x", 12, 25.0), ("h100-sxm5-8x", 18, 25.0)] {
        let topo = topology(name);
        assert_eq!(topo.pairs.len(), 28, "{name}");
        for pair in &topo.pairs {
            assert_eq!(pair.link, LinkType::NvLink(links), "{name}");
            let rate = pair.line_rate.as_ref().unwrap().gbps;
            assert!(
                (rate - per_link * f64::from(links)).abs() < 1e-9,
                "{name}: {rate}"
            );
            assert!(pair.p2p.read.is_ok());
        }
    }
}

#[test]
fn a_switch_link_down_lowers_the_pair_count() {
    let mut rec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nvml/h100-sxm5-8x.json"),
        )
        .unwrap(),
    )
    .unwrap();
    rec["gpus"][5]["nvlinks"][17]["active"] = false.into();
    let src = RecordedNvml::from_json(&rec.to_string()).unwrap();
    let topo = discover(&src, Host::default(), &[]);
    assert_eq!(topo.link(5, 0), Some(LinkType::NvLink(17)));
    assert_eq!(topo.link(0, 1), Some(LinkType::NvLink(18)));
}

#[test]
fn a_dual_socket_pcie_box_has_every_pcie_distance() {
    let topo = topology("dual-socket-pcie-switch");
    assert_eq!(
        matrix(&topo),
        rows(&[
            "X PIX PXB NODE SYS SYS",
            "PIX X PXB NODE SYS SYS",
            "PXB PXB X NODE SYS SYS",
            "NODE NODE NODE X SYS SYS",
            "SYS SYS SYS SYS X PIX",
            "SYS SYS SYS SYS PIX X",
        ])
    );
    assert_eq!(topo.p2p(0, 4).unwrap().read, P2pStatus::Tns);
    assert_eq!(topo.p2p(0, 3).unwrap().read, P2pStatus::Ok);
    assert_eq!(
        topo.gpu(4).unwrap().cpu_affinity.as_deref(),
        Some("32-63,96-127")
    );
}

#[test]
fn cuda_ordinals_follow_cuda_bus_ids_not_nvml_order() {
    // CUDA_DEVICE_ORDER=FASTEST_FIRST or CUDA_VISIBLE_DEVICES can reorder and hide devices.
    let cuda = ["0000:21:00.0".to_owned(), "0000:01:00.0".to_owned()];
    let topo = discover(&recording("rtx3090-nvlink-2x"), Host::default(), &cuda);
    assert_eq!(topo.gpu(0).unwrap().cuda_ordinal, Some(1));
    assert_eq!(topo.gpu(1).unwrap().cuda_ordinal, Some(0));

    let hidden = ["0000:4E:00.0".to_owned()];
    let topo = discover(&recording("a100-sxm4-8x"), Host::default(), &hidden);
    let ordinals: Vec<_> = topo.gpus.iter().map(|g| g.cuda_ordinal).collect();
    assert_eq!(ordinals[3], Some(0), "CUDA's upper-case id matches NVML's");
    assert_eq!(ordinals.iter().flatten().count(), 1);

    let topo = topology("rtx3090-nvlink-2x");
    assert!(topo.gpus.iter().all(|g| g.cuda_ordinal.is_none()));
}

#[test]
fn topo_text_matches_the_reviewed_snapshots() {
    for name in FIXTURES {
        insta::assert_snapshot!(name, render_text(&topology(name), None));
    }
}

#[test]
fn topo_text_starts_like_nvidia_smi() {
    let text = render_text(&topology("rtx3090-nvlink-4x"), None);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "\tGPU0\tGPU1\tGPU2\tGPU3\tCPU Affinity\tNUMA Affinity"
    );
    assert_eq!(lines[1], "GPU0\t X \tNV4\tPHB\tNODE\t0-31\t0");
    assert_eq!(lines[6], "Legend:");
    assert_eq!(lines[8], "  X    = Self");
    assert_eq!(
        lines[14],
        "  NV#  = Connection traversing a bonded set of # NVLinks"
    );

    let sim = render_text(&topology("rtx3090-nvlink-2x"), Some("2x3090-nvlink"));
    assert!(sim.starts_with("SIMULATED: 2x3090-nvlink"));
    assert!(sim.contains("GPU0\t X \tNV4\t0-23\tN/A\n"));
}

#[test]
fn topo_json_has_schema_flag_and_numbers() {
    let topo = topology("rtx3090-nvlink-2x");
    let json: serde_json::Value = serde_json::from_str(&render_json(&topo, None)).unwrap();
    assert_eq!(json["schema"], 1);
    assert_eq!(json["simulated"], false);
    assert_eq!(json["gpus"][1]["pci_bus_id"], "0000:21:00.0");
    assert_eq!(json["gpus"][0]["memory_mib"], 24576);
    assert_eq!(json["pairs"][0]["link"], "NV4");
    assert_eq!(json["pairs"][0]["line_rate"]["gbps"], 56.25);

    let sim: serde_json::Value =
        serde_json::from_str(&render_json(&topo, Some("2x3090-nvlink"))).unwrap();
    assert_eq!(sim["simulated"], true);
    assert_eq!(sim["sim_preset"], "2x3090-nvlink");
    let back: Topology = serde_json::from_value(sim).unwrap();
    assert_eq!(back, topo, "the JSON carries the whole topology");
}

#[test]
fn the_sampler_turns_recorded_passes_into_rates() {
    let src = recording("rtx3090-nvlink-2x");
    let mut sampler = Sampler::new(&src);

    let first = sampler.sample(&src);
    assert_eq!(first.at_ms, 0);
    let gpu0 = &first.gpus[0];
    assert_eq!(gpu0.temp_c, Some(62.0));
    assert_eq!(gpu0.nvlinks.len(), 4);
    assert!(
        gpu0.nvlinks.iter().all(|l| l.tx_gbps.is_none()),
        "no rate yet"
    );
    // No byte counters on GeForce: NVML's own throughput, available at once.
    assert!((gpu0.pcie_tx_gbps.unwrap() - 1200.0 * 1024.0 / 1e9).abs() < 1e-12);
    assert_eq!(gpu0.errors.nvlink_crc, Some(0));

    let second = sampler.sample(&src);
    assert_eq!(second.at_ms, 500);
    let gpu1 = &second.gpus[1];
    let tx = gpu1.nvlinks[0].tx_gbps.unwrap();
    assert!((tx - 12.0).abs() < 0.01, "12 GB/s per link, got {tx}");
    assert!(gpu1.throttle.unwrap().is_thermal());
    assert_eq!(gpu1.fan_percent, Some(88));
    assert_eq!(gpu1.power_w, Some(332.0));
    assert_eq!(
        gpu1.errors.pcie_replay,
        Some(0),
        "error counters are read every {ERRORS_EVERY} passes, not on the second"
    );

    let third = sampler.sample(&src);
    let gpu1 = &third.gpus[1];
    assert!(gpu1.nvlinks[0].tx_gbps.is_some());
    assert_eq!(
        gpu1.nvlinks[3].tx_gbps, None,
        "a reset counter gives no rate"
    );
    let (tx_total, _) = gpu1.nvlink_totals();
    assert!((tx_total.unwrap() - 36.0).abs() < 0.05, "three links left");

    // The recording stays on its last pass; the next error read sees its totals.
    let mut frame = third;
    for _ in 3..=ERRORS_EVERY {
        frame = sampler.sample(&src);
    }
    assert_eq!(frame.gpus[1].errors.pcie_replay, Some(2));
    assert_eq!(
        frame.gpus[0].errors.nvlink_crc,
        Some(12),
        "counted since the first pass"
    );
}

#[test]
fn byte_counters_give_pcie_rates_on_data_centre_gpus() {
    let src = recording("h100-sxm5-8x");
    let mut sampler = Sampler::new(&src);
    let first = sampler.sample(&src);
    assert_eq!(first.gpus[0].pcie_tx_gbps, None);
    assert_eq!(first.gpus[0].nvlinks.len(), 18);
    let second = sampler.sample(&src);
    // The recorded TX counter wrapped at 2^32 between the passes; 2.5 GB moved in 0.5 s.
    let tx = second.gpus[0].pcie_tx_gbps.unwrap();
    let rx = second.gpus[0].pcie_rx_gbps.unwrap();
    assert!((tx - 5.0).abs() < 1e-6, "tx {tx}");
    assert!((rx - 2.5).abs() < 1e-6, "rx {rx}");
    assert_eq!(second.gpus[0].fan_percent, None, "SXM parts have no fan");
}

#[test]
fn the_sampler_thread_stops_when_the_sink_says_so() {
    let (tx, rx) = mpsc::channel();
    let mut left = 3;
    let handle = spawn(
        recording("rtx3090-nvlink-2x"),
        Duration::from_millis(1),
        move |frame| {
            tx.send(frame).unwrap();
            left -= 1;
            left > 0
        },
    );
    handle.join().unwrap();
    let frames: Vec<_> = rx.try_iter().collect();
    assert_eq!(frames.len(), 3);
    assert_eq!(
        frames.iter().map(|f| f.at_ms).collect::<Vec<_>>(),
        [0, 500, 1000]
    );
}
