//! Findings: each known cause is found from what a run shows, and healthy machines have none
//! beyond what their hardware is (a small BAR1, GeForce without P2P).

use crate::common::{Run, gpu_pair, gpus, with_faults, with_host};
use p2ptop::model::topology::{Iommu, P2pCaps, P2pStatus};
use p2ptop::probe::protocol::{Engine, FailureKind, Op};
use p2ptop::report::diagnosis::{Condition, diagnose};
use p2ptop::report::run::{FailureReport, Report};

fn conditions(report: &Report) -> Vec<Condition> {
    diagnose(report).into_iter().map(|f| f.condition).collect()
}

#[test]
fn a_healthy_data_centre_node_has_no_findings() {
    let report = Run::preset("hgx-h100").sweep(&with_host(2)).report();
    assert_eq!(conditions(&report), []);
}

#[test]
fn geforce_without_a_bridge_shows_gns_and_its_small_bar1() {
    let report = Run::preset("3090-pcie").sweep(&gpus(2)).report();
    assert_eq!(
        conditions(&report),
        [Condition::SmallBar1, Condition::P2pDisabledForModel]
    );
    let gns = &diagnose(&report)[1];
    assert!(
        gns.evidence.contains("GNS for GPU0–GPU1"),
        "{}",
        gns.evidence
    );
    assert!(gns.action.contains("NVLink bridge"));
}

#[test]
fn a_translating_iommu_and_a_registry_key_are_named() {
    let mut run = Run::preset("hgx-h100");
    run.board.topology.host.iommu = Some(Iommu::Translated);
    run.board.topology.pairs[0].p2p = P2pCaps::all(P2pStatus::Dr);
    let report = run.report();
    assert_eq!(
        conditions(&report),
        [Condition::IommuTranslated, Condition::P2pDisabledByRegistry]
    );
    assert!(diagnose(&report)[0].action.contains("iommu=pt"));
}

#[test]
fn a_hung_pair_below_a_pcie_switch_points_at_acs() {
    let mut run = Run::new(with_faults(
        "pcie-dual-socket",
        "[[faults]]\nkind = \"hang\"\nsrc = \"0\"\ndst = \"1\"\n",
    ));
    run.measure(vec![gpu_pair(0, 1)], &[Op::Write], &[Engine::Sm]);
    let mut report = run.report();
    // As a run without root sees it: the ports' ACS could not be read.
    report.machine.topology.host.acs_redirecting = None;
    let found = diagnose(&report);
    let acs = found
        .iter()
        .find(|f| f.condition == Condition::AcsLikely)
        .unwrap();
    assert!(
        acs.evidence.contains("GPU0 → GPU1 write sm"),
        "{}",
        acs.evidence
    );
    assert!(acs.action.contains("ReqRedir+"), "{}", acs.action);
    assert!(acs.evidence.contains("could not read"), "{}", acs.evidence);
}

#[test]
fn a_slow_pair_below_a_pcie_switch_points_at_acs_and_a_fast_one_does_not() {
    let mut run = Run::preset("pcie-dual-socket");
    run.measure(vec![gpu_pair(0, 1)], &[Op::Write], &[Engine::Ce]);
    let mut report = run.report();
    report.machine.topology.host.acs_redirecting = None;
    assert!(!conditions(&report).contains(&Condition::AcsLikely));
    // Peer traffic detoured through the root complex: a quarter of the line rate.
    report.cells[0].efficiency = Some(0.25);
    assert!(conditions(&report).contains(&Condition::AcsLikely));
}

#[test]
fn acs_read_from_the_ports_is_named_as_a_fact_or_ruled_out() {
    let mut run = Run::preset("pcie-dual-socket");
    run.measure(vec![gpu_pair(0, 1)], &[Op::Write], &[Engine::Ce]);
    let mut report = run.report();
    report.cells[0].efficiency = Some(0.25);

    report.machine.topology.host.acs_redirecting = Some(vec!["0000:03:08.0".into()]);
    let found = diagnose(&report);
    let acs = found
        .iter()
        .find(|f| f.condition == Condition::AcsRedirecting)
        .expect("a fact, not a suspicion");
    assert!(
        acs.evidence.contains("port 0000:03:08.0"),
        "{}",
        acs.evidence
    );
    assert!(!conditions(&report).contains(&Condition::AcsLikely));

    report.machine.topology.host.acs_redirecting = Some(vec![]);
    let conditions = conditions(&report);
    assert!(
        !conditions.contains(&Condition::AcsLikely)
            && !conditions.contains(&Condition::AcsRedirecting),
        "ACS read and off is not blamed: {conditions:?}"
    );
}

#[test]
fn error_802_points_at_the_fabric_manager() {
    let mut run = Run::preset("hgx-h100");
    run.measure(vec![gpu_pair(0, 1)], &[Op::Write], &[Engine::Ce]);
    let mut report = run.report();
    report.cells[0].failure = Some(FailureReport {
        kind: FailureKind::Driver,
        message: "cuInit failed: system not ready".into(),
        cuda_error: Some(802),
    });
    let found = diagnose(&report);
    let fm = found
        .iter()
        .find(|f| f.condition == Condition::FabricManagerMissing)
        .unwrap();
    assert!(fm.action.contains("nvidia-fabricmanager"));
}

#[test]
fn clocks_held_low_without_a_throttle_reason_are_found_and_throttling_is_left_to_the_verdict() {
    let mut run = Run::new(with_faults(
        "hgx-h100",
        "[[faults]]\nkind = \"power_cap\"\ngpu = 0\nwatts = 150.0\n",
    ));
    run.measure(vec![gpu_pair(0, 1)], &[Op::Write], &[Engine::Sm]);
    let mut report = run.report();
    // GPU0's power cap is a throttle reason: the verdict's cause, not a finding here.
    assert!(!conditions(&report).contains(&Condition::ClocksHeldLow));
    // GPU1 at 60% of its clock with no reason: locked clocks.
    let gpu1 = report.telemetry.iter_mut().find(|t| t.gpu == 1).unwrap();
    gpu1.sm_clock_min_share_under_load = Some(0.6);
    let found = diagnose(&report);
    let low = found
        .iter()
        .find(|f| f.condition == Condition::ClocksHeldLow)
        .unwrap();
    assert_eq!(low.evidence, "GPU1 (SM clock down to 60% of max)");
    assert!(low.action.contains("nvidia-smi -rgc"), "{}", low.action);
}
