//! `check --quick`'s plan judged as `check` judges it: what it measures is enough to fail a
//! pair that lacks peer access where its link says it must have it.

use super::common::{Run, with_host};
use p2ptop::commands::measure::quick_plan;
use p2ptop::commands::quick::one_line;
use p2ptop::model::topology::{P2pCaps, P2pStatus};
use p2ptop::probe::protocol::Engine;
use p2ptop::report::verdict::{Floors, Level, judge};

#[test]
fn the_quick_plan_fails_an_nvswitch_pair_without_peer_access_and_only_that_pair() {
    let mut run = Run::preset("hgx-h100");
    // NVML answers NS for GPU2 ↔ GPU5 although both hang off the NVSwitch (NV18).
    let pair = run
        .board
        .topology
        .pairs
        .iter_mut()
        .find(|p| (p.a, p.b) == (2, 5))
        .unwrap();
    pair.p2p = P2pCaps::all(P2pStatus::Ns);
    pair.p2p_back = P2pCaps::all(P2pStatus::Ns);
    for (pair, ops) in quick_plan(&with_host(8)) {
        run.measure(vec![pair], &ops, &[Engine::Sm]);
    }
    let report = run.report();
    let verdict = judge(&report, &Floors::default(), None);
    assert_eq!(verdict.overall, Level::Fail);
    let failed: Vec<String> = verdict
        .cells
        .iter()
        .filter(|c| c.level == Level::Fail)
        .map(|c| format!("{} → {}", c.src, c.dst))
        .collect();
    assert_eq!(failed, ["GPU2 → GPU5"], "{:?}", verdict.causes);
    let line = one_line(&report, &verdict);
    assert!(
        line.starts_with("FAIL: GPU2 ↔ GPU5: joined by 18 NVLink(s) but peer access is NS"),
        "{line}"
    );
}
