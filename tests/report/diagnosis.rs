//! Findings: each known cause is found from what a run shows, and healthy machines have none
//! beyond what their hardware is (a small BAR1, GeForce without P2P).

use crate::common::{Run, gpu_pair, gpus, with_faults, with_host};
use p2ptop::model::topology::{Iommu, P2pCaps, P2pStatus};
use p2ptop::probe::protocol::{Engine, FailureKind, Node, Op};
use p2ptop::report::diagnosis::{Cause, diagnose};
use p2ptop::report::run::{FailureReport, Report};

fn causes(report: &Report) -> Vec<Cause> {
    diagnose(report).into_iter().map(|f| f.cause).collect()
}

#[test]
fn a_healthy_data_centre_node_has_no_findings() {
    let report = Run::preset("hgx-h100").sweep(&with_host(2)).report();
    assert_eq!(causes(&report), []);
}

#[test]
fn geforce_without_a_bridge_shows_gns_and_its_small_bar1() {
    let report = Run::preset("3090-pcie").sweep(&gpus(2)).report();
    assert_eq!(
        causes(&report),
        [Cause::SmallBar1, Cause::P2pDisabledForModel]
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
        causes(&report),
        [Cause::IommuTranslated, Cause::P2pDisabledByRegistry]
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
    let report = run.report();
    let found = diagnose(&report);
    let acs = found.iter().find(|f| f.cause == Cause::AcsLikely).unwrap();
    assert!(
        acs.evidence.contains("GPU0 → GPU1 write sm"),
        "{}",
        acs.evidence
    );
    assert!(acs.action.contains("ACSCtl"));
}

#[test]
fn a_slow_pair_below_a_pcie_switch_points_at_acs_and_a_fast_one_does_not() {
    let mut run = Run::preset("pcie-dual-socket");
    run.measure(vec![gpu_pair(0, 1)], &[Op::Write], &[Engine::Ce]);
    let mut report = run.report();
    assert!(!causes(&report).contains(&Cause::AcsLikely));
    // Peer traffic detoured through the root complex: a quarter of the line rate.
    report.cells[0].efficiency = Some(0.25);
    assert!(causes(&report).contains(&Cause::AcsLikely));
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
        .find(|f| f.cause == Cause::FabricManagerMissing)
        .unwrap();
    assert!(fm.action.contains("nvidia-fabricmanager"));
}

#[test]
fn a_link_trained_down_and_clocks_held_low_are_found() {
    let mut run = Run::new(with_faults(
        "hgx-h100",
        "[[faults]]\nkind = \"pcie_downgraded\"\ngpu = 1\ngeneration = 4\nwidth = 16\n\
         [[faults]]\nkind = \"power_cap\"\ngpu = 0\nwatts = 150.0\n",
    ));
    run.measure(vec![gpu_pair(0, 1)], &[Op::Write], &[Engine::Sm]);
    run.measure(vec![gpu_pair(1, 1)], &[Op::Write], &[Engine::Sm]);
    let report = run.report();
    let found = diagnose(&report);
    let down = found
        .iter()
        .find(|f| f.cause == Cause::LinkTrainedDown)
        .unwrap();
    assert_eq!(down.evidence, "GPU1 at Gen4 x16 of Gen5 x16");
    let low = found
        .iter()
        .find(|f| f.cause == Cause::ClocksHeldLow)
        .unwrap();
    assert!(
        low.evidence.starts_with("GPU0 (reasons: power-cap"),
        "{}",
        low.evidence
    );
    assert!(!low.evidence.contains("GPU1"), "{}", low.evidence);
    assert!(
        report
            .cell(Node::Gpu(0), Node::Gpu(1), Op::Write, Engine::Sm)
            .is_some()
    );
}
