//! The all-reduce estimate from measured matrices, against hand-computed figures.

use crate::common::{Run, gpus, with_faults};
use p2ptop::probe::protocol::{Node, Op};
use p2ptop::report::training::estimate;

#[test]
fn the_ring_takes_the_best_op_per_pair_and_avoids_a_slow_link() {
    let mut report = Run::preset("hgx-h100").sweep(&gpus(4)).report();
    // Every GPU pair at 300 GB/s by write and 200 by read, except 0 → 2 at 100 and
    // 2 → 0 at 120 (slower than all else, both ops).
    for cell in &mut report.cells {
        let (Node::Gpu(a), Node::Gpu(b)) = (cell.src, cell.dst) else {
            continue;
        };
        let rate = match ((a, b), cell.op) {
            ((0, 2), _) => 100.0,
            ((2, 0), _) => 120.0,
            (_, Op::Write) => 300.0,
            (_, _) => 200.0,
        };
        for d in &mut cell.directions {
            d.median_gbps = rate;
        }
    }
    let e = estimate(&report).unwrap();
    assert_eq!(e.gpus, [0, 1, 2, 3]);
    assert_eq!(e.measured.busbw_gbps, 300.0);
    assert!(e.measured.hops.iter().all(|h| h.basis.starts_with("write")));
    assert!(
        !e.measured
            .order
            .windows(2)
            .any(|w| w == [0, 2] || w == [2, 0])
    );
    // 2·(4−1)/4 × 10 GB / 300 GB/s = 0.05 s; at NV18's 450 GB/s, 0.0333… s.
    let ten = &e.syncs[0];
    assert_eq!(ten.bytes, 10_000_000_000);
    assert!((ten.seconds - 0.05).abs() < 1e-12, "{}", ten.seconds);
    assert!((ten.seconds_as_built.unwrap() - 1.0 / 30.0).abs() < 1e-12);
    // 140 GB: 1.5 × 140 / 300 = 0.7 s.
    assert!(
        (e.syncs[1].seconds - 0.7).abs() < 1e-12,
        "{}",
        e.syncs[1].seconds
    );
}

#[test]
fn a_staged_pair_is_the_ring_on_geforce_and_one_gpu_has_no_ring() {
    let report = Run::preset("3090-pcie").sweep(&gpus(2)).report();
    let e = estimate(&report).unwrap();
    // SM copies are refused (GNS), so both hops are CE figures.
    assert!(
        e.measured.hops.iter().all(|h| h.basis.ends_with("ce")),
        "{:?}",
        e.measured.hops
    );
    let slowest = e
        .measured
        .hops
        .iter()
        .map(|h| h.gbps)
        .fold(f64::INFINITY, f64::min);
    assert_eq!(e.measured.busbw_gbps, slowest);
    // Two GPUs: 2·1/2 × S / busbw = S / busbw.
    assert!((e.syncs[0].seconds - 10.0 / slowest).abs() < 1e-9);
    let single = Run::preset("h100-single").sweep(&gpus(1)).report();
    assert!(estimate(&single).is_none());
}

#[test]
fn the_estimate_as_built_counts_a_link_that_is_down() {
    let report = Run::new(with_faults(
        "hgx-h100",
        "[[faults]]\nkind = \"nvlink_down\"\ngpu = 1\nlink = 0\n",
    ))
    .sweep(&gpus(2))
    .report();
    let e = estimate(&report).unwrap();
    // NV17 now, but the ring is held against the NV18 the pair was built for.
    let built = e.built_for.unwrap();
    assert_eq!(built.busbw_gbps, 450.0);
    assert!(built.hops.iter().all(|h| h.basis == "built for"));
    assert!(
        e.measured.busbw_gbps < 425.0 * 0.95,
        "{}",
        e.measured.busbw_gbps
    );
}
