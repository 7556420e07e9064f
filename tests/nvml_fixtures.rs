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

/// The recording `name` as JSON, to read or change an answer.
fn raw(name: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/nvml")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_bridged_3090_pair_is_nv4_at_56_25() {
    let topo = topology("rtx3090-nvlink-2x");
    assert_eq!(matrix(&topo), rows(&["X NV4", "NV4 X"]));
    let pair = topo.pair(0, 1).unwrap();
    let rate = pair.line_rate.as_ref().unwrap();
    // NVML's field 164: 14062 MB/s per link, as `nvidia-smi nvlink -s` shows 14.062 GB/s.
    assert!((rate.gbps - 56.248).abs() < 1e-9, "{}", rate.gbps);
    assert_eq!(rate.basis, "4 NVLink × 14.062 GB/s");
    // A driver that refuses the field: the GA102 table's 14.0625 GB/s per link.
    let mut refused = raw("rtx3090-nvlink-2x");
    for gpu in refused["gpus"].as_array_mut().unwrap() {
        for link in gpu["nvlinks"].as_array_mut().unwrap() {
            link["speed_mb_s"] = serde_json::Value::Null;
        }
    }
    let src = RecordedNvml::from_json(&refused.to_string()).unwrap();
    let table = discover(&src, Host::default(), &[]);
    let rate = table.pair(0, 1).unwrap().line_rate.as_ref().unwrap();
    assert_eq!(rate.gbps, 56.25);
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
    assert_eq!(json["pairs"][0]["line_rate"]["gbps"], 56.248);

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
    // Each flit GPU0 received with a bad CRC, GPU1 sent again.
    assert_eq!(frame.gpus[1].errors.nvlink_replay, Some(12));
    assert_eq!(frame.gpus[0].errors.nvlink_replay, Some(0));
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

/// What NVML reports as a model's memory, MiB (`nvidia-smi --query-gpu=memory.total`).
const MEMORY_MIB: [(&str, u64); 5] = [
    ("NVIDIA H100 80GB HBM3", 81559),
    ("NVIDIA A100-SXM4-80GB", 81920),
    ("NVIDIA GeForce RTX 4090", 24564),
    ("NVIDIA GeForce RTX 3090", 24576),
    ("NVIDIA L40S", 46068),
];

/// Whether `uuid` is `GPU-` and lower-case hex in 8-4-4-4-12 groups, as NVML gives them.
fn is_gpu_uuid(uuid: &str) -> bool {
    let Some(hex) = uuid.strip_prefix("GPU-") else {
        return false;
    };
    let groups: Vec<&str> = hex.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| {
            g.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        })
}

#[test]
fn the_fixtures_answer_as_real_gpus_do() {
    assert!(is_gpu_uuid("GPU-b1000000-2b3c-4d5e-9f60-7a8b9c0d1e20"));
    assert!(!is_gpu_uuid("GPU-h1000000-2b3c-4d5e-9f60-7a8b9c0d1e20"));
    assert!(!is_gpu_uuid("GPU-b1000000-2b3c-4d5e-9f60-7a8b9c0d1e2"));
    for name in FIXTURES {
        let rec = raw(name);
        for (i, gpu) in rec["gpus"].as_array().unwrap().iter().enumerate() {
            let uuid = gpu["uuid"].as_str().unwrap();
            assert!(is_gpu_uuid(uuid), "{name} GPU{i}: {uuid}");
            let model = gpu["name"].as_str().unwrap();
            let (_, mib) = MEMORY_MIB
                .iter()
                .find(|(m, _)| *m == model)
                .unwrap_or_else(|| panic!("{name}: no memory figure for {model}"));
            assert_eq!(
                gpu["memory_total_bytes"].as_u64(),
                Some(mib << 20),
                "{name} GPU{i} ({model})"
            );
        }
        // An idle GPU (clocks-event reason 0x1, GPU idle) sits at its lowest clocks, far
        // below its maximum (an idle H100 SXM reads about 345 of 1980 MHz).
        for pass in rec["telemetry"].as_array().into_iter().flatten() {
            for (i, gpu) in pass["gpus"].as_array().unwrap().iter().enumerate() {
                let idle = gpu["clocks_event_reasons"]
                    .as_u64()
                    .is_some_and(|r| r & 1 != 0);
                if let (true, Some(now), Some(max)) = (
                    idle,
                    gpu["sm_clock_mhz"].as_u64(),
                    gpu["sm_clock_max_mhz"].as_u64(),
                ) {
                    assert!(now * 4 < max, "{name} GPU{i} idle at {now} of {max} MHz");
                }
            }
        }
    }
    let h100 = topology("h100-sxm5-8x");
    assert!(h100.gpus.iter().all(|g| g.memory_mib == Some(81559)));
}

/// Both 3090 recordings are GA102 boards on the same bridge: four NVLink 3.1 links each at
/// 14062 MB/s, and, where a recording has telemetry, replays on one end of a link matching
/// CRC errors on the other.
#[test]
fn the_two_3090_recordings_agree_on_the_bridge() {
    for name in ["rtx3090-nvlink-2x", "rtx3090-nvlink-4x"] {
        let rec = raw(name);
        for (i, gpu) in rec["gpus"].as_array().unwrap().iter().enumerate() {
            let links = gpu["nvlinks"].as_array().unwrap();
            assert_eq!(links.len(), 4, "{name} GPU{i}");
            for link in links {
                assert_eq!(link["version_code"], 5, "{name} GPU{i}: {link}");
                assert_eq!(link["speed_mb_s"], 14062, "{name} GPU{i}: {link}");
            }
        }
        let topo = topology(name);
        for pair in topo.pairs.iter().filter(|p| p.link == LinkType::NvLink(4)) {
            let rate = pair.line_rate.as_ref().unwrap();
            assert_eq!(rate.basis, "4 NVLink × 14.062 GB/s", "{name}");
        }
        for pass in rec["telemetry"].as_array().into_iter().flatten() {
            let gpus = pass["gpus"].as_array().unwrap();
            let counters = |g: usize, key: &str| -> Vec<u64> {
                gpus[g]["nvlinks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| l[key].as_u64().unwrap())
                    .collect()
            };
            for (a, b) in [(0, 1), (1, 0)] {
                assert_eq!(
                    counters(a, "replay"),
                    counters(b, "crc_flit"),
                    "{name} at {}: GPU{a}'s replays against GPU{b}'s CRC errors",
                    pass["timestamp_us"]
                );
            }
        }
    }
}

/// Each simulated preset's topology is the one NVML discovery gives on the recording of the
/// same machine: GPU models, memory, links, P2P states and line rates (bus ids, CPU numbering
/// and the PCIe generation an idle GPU trained down to differ between the two, and are left
/// out). `pcie-dual-socket` (A100 PCIe) and the L40S recording are different machines.
#[test]
fn each_preset_has_the_topology_of_its_recorded_machine() {
    for (preset, fixture) in [
        ("3090-bridge", "rtx3090-nvlink-2x"),
        ("4090x4", "rtx4090-pcie-4x"),
        ("dgx-a100", "a100-sxm4-8x"),
        ("hgx-h100", "h100-sxm5-8x"),
    ] {
        let sim = p2ptop::sim::load(preset).unwrap().topology();
        let rec = topology(fixture);
        let what = format!("--sim {preset} against {fixture}");
        assert_eq!(matrix(&sim), matrix(&rec), "{what}");
        assert_eq!(sim.gpus.len(), rec.gpus.len(), "{what}");
        for (s, r) in sim.gpus.iter().zip(&rec.gpus) {
            let gpu = format!("{what}, GPU{}", s.index);
            assert_eq!(s.name, r.name, "{gpu}");
            assert_eq!(s.architecture, r.architecture, "{gpu}");
            assert_eq!(s.memory_mib, r.memory_mib, "{gpu}");
            assert_eq!(s.pcie.gen_max, r.pcie.gen_max, "{gpu}");
            assert_eq!(s.pcie.width_max, r.pcie.width_max, "{gpu}");
            if r.power_limit_w.is_some() {
                assert_eq!(s.power_limit_w, r.power_limit_w, "{gpu}"); // one 4090 refuses it
            }
            assert_eq!(s.nvlinks.len(), r.nvlinks.len(), "{gpu}");
            for (sl, rl) in s.nvlinks.iter().zip(&r.nvlinks) {
                assert_eq!(sl.active, rl.active, "{gpu} link {}", sl.link);
                assert_eq!(sl.version, rl.version, "{gpu} link {}", sl.link);
                let (a, b) = (sl.speed_gbps.unwrap(), rl.speed_gbps.unwrap());
                assert!((a - b).abs() < 1e-3, "{gpu} link {}: {a} vs {b}", sl.link);
                let switch = |l: &p2ptop::model::topology::NvLink| l.remote == NvLinkRemote::Switch;
                assert_eq!(switch(sl), switch(rl), "{gpu} link {}", sl.link);
            }
        }
        assert_eq!(sim.pairs.len(), rec.pairs.len(), "{what}");
        for (s, r) in sim.pairs.iter().zip(&rec.pairs) {
            let pair = format!("{what}, GPU{} and GPU{}", s.a, s.b);
            assert_eq!((s.a, s.b, s.link), (r.a, r.b, r.link), "{pair}");
            assert_eq!((s.p2p, s.p2p_back), (r.p2p, r.p2p_back), "{pair}");
            let (a, b) = (
                s.line_rate.as_ref().unwrap().gbps,
                r.line_rate.as_ref().unwrap().gbps,
            );
            assert!((a / b - 1.0).abs() < 1e-4, "{pair}: line rate {a} vs {b}");
        }
    }
}
