//! p2ptop-probe on its own, as a script would use it, on emulated GPUs.

use crate::harness::Emu;
use p2ptop::probe::protocol::{Event, Node};

fn measure(pairs: &str, ops: &str, engines: &str, settings: &str) -> String {
    format!(
        r#"{{"cmd":"measure","id":1,"pairs":{pairs},"ops":{ops},"engines":{engines},"settings":{settings}}}"#
    )
}

#[test]
fn the_readme_example_measures_an_emulated_h100_and_says_it_is_emulated() {
    let emu = Emu::new("h100-single");
    let command = measure(
        r#"[{"src":0,"dst":0},{"src":"host","dst":0},{"src":0,"dst":"host"}]"#,
        r#"["read","latency"]"#,
        r#"["sm","ce"]"#,
        r#"{"buffer_mib":2,"samples":2}"#,
    );
    let (events, output) = emu.probe(&[command]);
    assert!(output.status.success(), "{output:?}");
    let Some(Event::Hello { devices, .. }) = events.first() else {
        panic!("no hello: {events:?}");
    };
    assert!(
        devices[0].name.contains("(p2ptop emulated)"),
        "{:?}",
        devices[0]
    );
    let results: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Result {
                pair,
                engine,
                total_gbps,
                verification,
                ..
            } => Some((*pair, *engine, *total_gbps, *verification)),
            _ => None,
        })
        .collect();
    assert_eq!(results.len(), 6, "three paths, two engines: {results:?}");
    for (pair, engine, gbps, verification) in &results {
        assert!(
            verification.passed(),
            "{pair:?} {engine:?}: {verification:?}"
        );
        assert!(*gbps > 10.0, "{pair:?} {engine:?}: {gbps} GB/s");
    }
    // The host path is PCIe 5.0 x16 (63 GB/s): the model's SM pull reaches 56% of it.
    let host_read = results
        .iter()
        .find(|(p, e, ..)| p.src == Node::Host && *e == p2ptop::probe::protocol::Engine::Sm)
        .unwrap();
    assert!((host_read.2 - 35.3).abs() < 1.0, "{host_read:?}");
    let latencies = events
        .iter()
        .filter(|e| matches!(e, Event::Latency { chain_ok: true, .. }))
        .count();
    assert_eq!(latencies, 3, "{events:?}");
    emu.assert_no_misuse();
}
