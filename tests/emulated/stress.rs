//! Stress through the real probe: many flows at once, several on one GPU, each measured as the
//! simulator measures them and every destination verified.

use crate::harness::{self, Emu};
use p2ptop::probe::protocol::{Event, Node, Pair};
use std::collections::BTreeMap;

fn stress(pairs: &[(Node, Node)], op: &str) -> String {
    let pairs: Vec<Pair> = pairs.iter().map(|&(src, dst)| Pair { src, dst }).collect();
    format!(
        r#"{{"cmd":"stress","id":1,"pairs":{},"op":"{op}","engines":["sm"],"settings":{{"buffer_mib":1,"samples":2}}}}"#,
        serde_json::to_string(&pairs).unwrap()
    )
}

/// Per pair, the summed median of its directions, and the joined total.
fn figures(events: &[Event]) -> (BTreeMap<Pair, f64>, Option<f64>) {
    let mut per_pair = BTreeMap::new();
    let mut total = None;
    for e in events {
        match e {
            Event::Result {
                pair,
                total_gbps,
                verification,
                ..
            } => {
                assert!(verification.passed(), "{pair:?}: {verification:?}");
                per_pair.insert(*pair, *total_gbps);
            }
            Event::StressTotal { median_gbps, .. } => total = Some(*median_gbps),
            Event::PairError { .. } | Event::Fatal { .. } => panic!("{e:?}"),
            _ => {}
        }
    }
    (per_pair, total)
}

/// Runs the stress on both faces and returns what differs by more than 5%.
fn disagreements(machine: &str, pairs: &[(Node, Node)], op: &str) -> Vec<String> {
    let command = stress(pairs, op);
    let emu = Emu::new(machine);
    let (events, output) = emu.probe(std::slice::from_ref(&command));
    assert!(output.status.success(), "{output:?}");
    emu.assert_no_misuse();
    let (emulated, emulated_total) = figures(&events);
    let (simulated, simulated_total) = figures(&harness::simulated_probe(machine, &[command]));
    assert_eq!(emulated.len(), pairs.len(), "every pair has a result");
    let mut off: Vec<String> = emulated
        .iter()
        .filter(|(pair, gbps)| (*gbps / simulated[*pair] - 1.0).abs() > 0.05)
        .map(|(pair, gbps)| {
            format!(
                "{pair:?}: emulated {gbps:.1}, simulated {:.1}",
                simulated[pair]
            )
        })
        .collect();
    match (emulated_total, simulated_total) {
        (Some(e), Some(s)) if (e / s - 1.0).abs() > 0.05 => {
            off.push(format!("joined total: emulated {e:.1}, simulated {s:.1}"))
        }
        (Some(_), Some(_)) => {}
        other => off.push(format!("joined total missing: {other:?}")),
    }
    off
}

#[test]
fn three_writes_from_one_gpu_run_together_and_verify() {
    let pairs = [1, 2, 3].map(|d| (Node::Gpu(0), Node::Gpu(d)));
    let off = disagreements("hgx-h100", &pairs, "write");
    assert!(off.is_empty(), "{off:#?}");
}

#[test]
fn three_reads_into_one_gpu_run_together_and_verify() {
    let pairs = [1, 2, 3].map(|s| (Node::Gpu(s), Node::Gpu(0)));
    let off = disagreements("hgx-h100", &pairs, "read");
    assert!(off.is_empty(), "{off:#?}");
}

#[test]
fn nine_flows_on_one_gpu_each_get_a_hardware_queue() {
    // GPU0 writes to seven peers and to the host, and pulls from the host (the GPU end runs
    // every host path): nine streams, one more than the driver's default hardware queues.
    let mut pairs: Vec<(Node, Node)> = (1..8).map(|d| (Node::Gpu(0), Node::Gpu(d))).collect();
    pairs.push((Node::Gpu(0), Node::Host));
    pairs.push((Node::Host, Node::Gpu(0)));
    let off = disagreements("hgx-h100", &pairs, "write");
    assert!(off.is_empty(), "{off:#?}");
}

#[test]
fn the_live_views_all_pairs_stress_runs_and_verifies() {
    let mut pairs = Vec::new();
    for a in 0..8 {
        for b in a + 1..8 {
            pairs.push((Node::Gpu(a), Node::Gpu(b)));
        }
    }
    let off = disagreements("hgx-h100", &pairs, "bidir");
    assert!(off.is_empty(), "{off:#?}");
}
