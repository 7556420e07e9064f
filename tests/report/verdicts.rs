//! `check`: simulated faults give the right verdicts, reasons and exit codes.

use crate::common::{Run, gpu_pair, gpus, info, with_faults, with_host};
use p2ptop::exit;
use p2ptop::model::topology::{P2pCaps, P2pStatus};
use p2ptop::probe::protocol::{Engine, Node, Op};
use p2ptop::report::run::Report;
use p2ptop::report::verdict::{Floors, Level, Reason, Verdict, judge};
use p2ptop::sim::{self, PRESETS};

fn check(report: &Report) -> Verdict {
    judge(report, &Floors::default(), None)
}

/// Every reason of the verdict at `level` with its subject, for asserting on reasons.
fn lines_at(verdict: &Verdict, level: Level) -> Vec<String> {
    let at = |reasons: &[Reason], subject: String| -> Vec<String> {
        reasons
            .iter()
            .filter(|r| r.level == level)
            .map(|r| format!("{subject}: {}", r.text))
            .collect()
    };
    let mut lines = Vec::new();
    for c in &verdict.cells {
        lines.extend(at(&c.reasons, c.label()));
    }
    for g in &verdict.gpus {
        lines.extend(at(&g.reasons, format!("GPU{}", g.gpu)));
    }
    lines.extend(at(&verdict.run, "run".into()));
    lines
}

/// The causes in one line each.
fn causes(verdict: &Verdict) -> Vec<String> {
    verdict.causes.iter().map(|c| c.line()).collect()
}

fn has(lines: &[String], needles: &[&str]) -> bool {
    lines.iter().any(|l| needles.iter().all(|n| l.contains(n)))
}

#[test]
fn every_healthy_preset_passes_with_the_default_floors() {
    for (name, _) in PRESETS {
        let count = sim::load(name).unwrap().gpus.len().min(4) as u32;
        let report = Run::preset(name).sweep(&with_host(count)).report();
        let verdict = check(&report);
        assert_eq!(
            lines_at(&verdict, Level::Fail),
            Vec::<String>::new(),
            "{name} fails while healthy"
        );
        assert_eq!(verdict.exit_code(), exit::OK, "{name}");
    }
}

#[test]
fn a_hung_pair_fails_with_the_reason_and_the_rest_still_count() {
    let mut run = Run::new(with_faults(
        "dgx-a100",
        "[[faults]]\nkind = \"hang\"\nsrc = \"0\"\ndst = \"5\"\n",
    ));
    run.measure(
        vec![gpu_pair(0, 1), gpu_pair(0, 5)],
        &[Op::Write],
        &[Engine::Ce],
    );
    run.measure(vec![gpu_pair(0, 2)], &[Op::Write], &[Engine::Ce]);
    let verdict = check(&run.report());
    assert_eq!(verdict.overall, Level::Fail);
    assert_eq!(verdict.exit_code(), exit::CHECK_FAILED);
    let fails = lines_at(&verdict, Level::Fail);
    assert!(
        has(&fails, &["GPU0 → GPU5 write ce", "hung", "did not finish"]),
        "{fails:?}"
    );
    assert_eq!(verdict.failed_cells(), 1, "{fails:?}");
    let ok = verdict
        .cells
        .iter()
        .filter(|c| c.level == Level::Pass)
        .count();
    assert_eq!(ok, 2);
}

#[test]
fn corrupted_data_fails_even_at_full_speed() {
    let mut run = Run::new(with_faults(
        "hgx-h100",
        "[[faults]]\nkind = \"corrupt\"\nsrc = \"2\"\ndst = \"3\"\n",
    ));
    run.measure(
        vec![gpu_pair(2, 3), gpu_pair(3, 2)],
        &[Op::Write],
        &[Engine::Sm],
    );
    let report = run.report();
    let bad = report
        .cell(Node::Gpu(2), Node::Gpu(3), Op::Write, Engine::Sm)
        .unwrap();
    assert!(
        bad.efficiency.unwrap() > 0.8,
        "the figure itself looks healthy"
    );
    let verdict = check(&report);
    assert_eq!(verdict.exit_code(), exit::CHECK_FAILED);
    let fails = lines_at(&verdict, Level::Fail);
    assert!(
        has(
            &fails,
            &[
                "GPU2 → GPU3 write sm",
                "data corrupted",
                "first at byte offset"
            ]
        ),
        "{fails:?}"
    );
    assert_eq!(fails.len(), 1, "GPU3 → GPU2 is clean: {fails:?}");
}

#[test]
fn a_link_trained_down_fails_the_gpu_and_its_host_copies() {
    let mut run = Run::new(with_faults(
        "h100-single",
        "[[faults]]\nkind = \"pcie_downgraded\"\ngpu = 0\ngeneration = 4\nwidth = 8\n",
    ));
    run.sweep(&with_host(1));
    let verdict = check(&run.report());
    assert_eq!(verdict.exit_code(), exit::CHECK_FAILED);
    let fails = lines_at(&verdict, Level::Fail);
    assert!(
        has(&fails, &["GPU0:", "Gen4 x8 under load", "Gen5 x16"]),
        "{fails:?}"
    );
    assert!(
        has(&fails, &["host → GPU0 write ce", "PCIe CE floor"]),
        "{fails:?}"
    );
    assert!(
        !has(&fails, &["GPU0 → GPU0"]),
        "device-local copies are unaffected: {fails:?}"
    );
}

#[test]
fn throttling_under_the_bridge_warns_without_failing() {
    let mut run = Run::preset("3090-bridge");
    while run.sim.now_s() < 120.0 {
        run.measure(vec![gpu_pair(0, 1)], &[Op::Bidir], &[Engine::Sm]);
    }
    let report = run.report();
    let verdict = check(&report);
    let warns = lines_at(&verdict, Level::Warn);
    assert!(
        has(&warns, &["GPU0:", "throttled during the run", "sw-thermal"]),
        "{warns:?}"
    );
    assert!(
        has(&warns, &["GPU0 → GPU1 bidir sm", "throttling"]),
        "{warns:?}"
    );
    assert!(
        !has(&warns, &["GPU1: throttled"]),
        "GPU1 stays cool: {warns:?}"
    );
    assert_eq!(verdict.overall, Level::Warn, "{:?}", causes(&verdict));
    assert_eq!(verdict.exit_code(), exit::OK);
    assert!(report.telemetry[0].max_temp_c.unwrap() >= 90.0);
}

#[test]
fn an_nvlink_down_is_one_cause_for_both_ends_and_fails_the_pair_against_what_it_was_built_for() {
    let mut run = Run::new(with_faults(
        "3090-bridge",
        "[[faults]]\nkind = \"nvlink_down\"\ngpu = 1\nlink = 2\n",
    ));
    run.measure(vec![gpu_pair(0, 1)], &[Op::Write], &[Engine::Ce]);
    let report = run.report();
    let cell = &report.cells[0];
    assert_eq!(cell.line_rate_gbps, Some(56.25), "built for four links");
    assert_eq!(cell.line_rate_now_gbps, Some(42.1875));
    let verdict = check(&report);
    assert_eq!(verdict.exit_code(), exit::CHECK_FAILED);
    let fails = lines_at(&verdict, Level::Fail);
    // A link is down at both of its ends: the bridge's link 2 of GPU1 is GPU0's link 0.
    assert!(has(&fails, &["GPU0: NVLink 0 is down"]), "{fails:?}");
    assert!(has(&fails, &["GPU1: NVLink 2 is down"]), "{fails:?}");
    // Three links at CE efficiency are below the CE floor of four.
    assert!(
        has(
            &fails,
            &[
                "GPU0 → GPU1 write ce",
                "of the 56.2 GB/s it was built for",
                "42.2 GB/s now"
            ]
        ),
        "{fails:?}"
    );
    assert_eq!(
        causes(&verdict),
        [
            "FAIL GPU0 ↔ GPU1: 3 of 4 NVLinks between them up (down: GPU0 link 0, GPU1 link 2) — 1 \
          measurement(s) below their floor follow from it"
        ]
    );
    assert_eq!(
        verdict.causes[0].evidence[0].subject,
        "GPU0 → GPU1 write ce"
    );
}

#[test]
fn a_power_cap_warns_on_its_gpu() {
    let mut run = Run::new(with_faults(
        "hgx-h100",
        "[[faults]]\nkind = \"power_cap\"\ngpu = 0\nwatts = 150.0\n",
    ));
    run.measure(vec![gpu_pair(0, 1)], &[Op::Write], &[Engine::Ce]);
    let verdict = check(&run.report());
    let warns = lines_at(&verdict, Level::Warn);
    assert!(has(&warns, &["GPU0:", "power cap", "150 W"]), "{warns:?}");
    assert!(
        has(
            &warns,
            &["GPU0: power limit 150 W, below the board's default 700 W"]
        ),
        "{warns:?}"
    );
    assert_eq!(verdict.causes.len(), 1, "{:?}", causes(&verdict));
    assert!(
        verdict.causes[0]
            .advice
            .contains("sudo nvidia-smi -i 0 -pl 700")
    );
    assert_eq!(verdict.overall, Level::Warn, "{:?}", causes(&verdict));
    assert_eq!(verdict.exit_code(), exit::OK);
}

#[test]
fn nvml_gives_the_boards_default_power_limit_that_a_cap_is_held_against() {
    use p2ptop::nvml::recorded::{RecordedGpu, RecordedNvml, Recording};
    let recording = Recording {
        gpus: vec![RecordedGpu {
            name: Some("NVIDIA H100 80GB HBM3".into()),
            power_limit_mw: Some(400_000),
            default_power_limit_mw: Some(700_000),
            ..RecordedGpu::default()
        }],
        ..Recording::default()
    };
    let nvml = RecordedNvml::new(recording);
    let topology = p2ptop::nvml::discover::discover(&nvml, Default::default(), &[]);
    let gpu = &topology.gpus[0];
    assert_eq!(gpu.default_power_limit_w, Some(700.0));
    assert_eq!(gpu.power_limit_below_default(None), Some((400.0, 700.0)));
}

#[test]
fn a_gns_pair_is_reported_but_does_not_fail() {
    let report = Run::preset("3090-pcie").sweep(&gpus(2)).report();
    let verdict = check(&report);
    let sm = verdict
        .cells
        .iter()
        .find(|c| c.src == Node::Gpu(0) && c.dst == Node::Gpu(1) && c.engine == Engine::Sm)
        .unwrap();
    assert_eq!(sm.level, Level::Pass);
    assert!(
        sm.reasons[0].text.contains("not measured: GNS"),
        "{:?}",
        sm.reasons
    );
    assert_eq!(verdict.overall, Level::Pass, "{:?}", causes(&verdict));
}

#[test]
fn an_nvlink_pair_without_peer_access_fails() {
    let mut run = Run::preset("3090-bridge");
    run.board.topology.pairs[0].p2p = P2pCaps::all(P2pStatus::Ns);
    run.board.topology.pairs[0].p2p_back = P2pCaps::all(P2pStatus::Ns);
    run.measure(vec![gpu_pair(0, 1)], &[Op::Write], &[Engine::Ce]);
    let verdict = check(&run.report());
    assert_eq!(verdict.exit_code(), exit::CHECK_FAILED);
    let fails = lines_at(&verdict, Level::Fail);
    assert!(
        has(
            &fails,
            &["GPU0 → GPU1 write ce", "4 NVLink(s)", "peer access is NS"]
        ),
        "{fails:?}"
    );
}

#[test]
fn a_baseline_catches_a_drop_that_the_floors_allow() {
    let healthy = {
        let mut run = Run::preset("3090-bridge");
        run.measure(vec![gpu_pair(0, 1)], &[Op::Write], &[Engine::Ce]);
        run.report()
    };
    // 15% slower: still above the CE floor, below 0.9 × the baseline.
    let mut degraded = healthy.clone();
    let cell = &mut degraded.cells[0];
    cell.gbps = cell.gbps.map(|g| g * 0.85);
    for d in &mut cell.directions {
        d.median_gbps *= 0.85;
    }
    let cell_level = |v: &Verdict| v.cells[0].level;
    assert_eq!(cell_level(&check(&degraded)), Level::Pass);
    let against = judge(&degraded, &Floors::default(), Some(&healthy));
    assert_eq!(cell_level(&against), Level::Fail);
    assert!(
        has(
            &lines_at(&against, Level::Fail),
            &["of the baseline's", "at least 90%"]
        ),
        "{:?}",
        causes(&against)
    );
    assert_eq!(
        judge(&healthy, &Floors::default(), Some(&healthy)).overall,
        Level::Pass
    );
}

#[test]
fn raised_floors_fail_what_the_defaults_pass() {
    let mut run = Run::preset("hgx-h100");
    run.measure(vec![gpu_pair(0, 1)], &[Op::Write], &[Engine::Sm]);
    let report = run.report();
    assert_eq!(check(&report).overall, Level::Pass);
    let mut strict = Floors::default();
    strict.set("nvlink_sm", 0.95).unwrap();
    let verdict = judge(&report, &strict, None);
    assert!(
        has(
            &lines_at(&verdict, Level::Fail),
            &["NVLink SM floor (nvlink_sm) is 95%"]
        ),
        "{:?}",
        causes(&verdict)
    );
}

#[test]
fn an_interrupted_run_is_marked_and_warns() {
    let mut run = Run::preset("hgx-h100");
    run.measure(vec![gpu_pair(0, 1)], &[Op::Write], &[Engine::Ce]);
    let report = Report::build(&run.board, &run.seen, info(false));
    assert!(!report.run.complete);
    let verdict = check(&report);
    assert_eq!(verdict.overall, Level::Warn);
    assert!(has(
        &lines_at(&verdict, Level::Warn),
        &["run:", "incomplete"]
    ));
}
