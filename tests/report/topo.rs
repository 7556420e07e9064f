//! `topo` on GPUs nothing is measured on: each says why, and the NUMA column says what NVML
//! says, several nodes included.

use p2ptop::model::topology::Unavailable;
use p2ptop::report::topo::{render_json, render_text};

#[test]
fn unusable_gpus_and_numa_affinity_show_in_topo() {
    let mut topo = p2ptop::sim::load("4090x4").unwrap().topology();
    topo.gpus[0].numa_affinity = Some("0-1".into());
    topo.gpus[1].unavailable = Some(Unavailable {
        lost: true,
        reason: "NVML cannot open it: GPU is lost".into(),
    });
    topo.gpus[2].mig = Some(true);
    let text = render_text(&topo, None);
    insta::assert_snapshot!(text);
    let json: serde_json::Value = serde_json::from_str(&render_json(&topo, None)).unwrap();
    assert_eq!(json["gpus"][1]["unavailable"]["lost"], true);
    assert_eq!(json["gpus"][2]["mig"], true);
    assert_eq!(json["gpus"][0]["numa_affinity"], "0-1");
}
