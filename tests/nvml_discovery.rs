//! NVML discovery where real drivers answer less than the fixtures do: an NVLink's remote type
//! refused or unknown (VMs, older drivers), a Fabric Manager partition, a pair without a common
//! ancestor. Each starts from a recorded machine with one answer changed.

use p2ptop::model::topology::{Host, LinkType, P2pStatus, Topology};
use p2ptop::nvml::discover::discover;
use p2ptop::nvml::recorded::RecordedNvml;
use serde_json::Value;
use std::path::Path;

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/nvml")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn discovered(recording: &Value) -> Topology {
    let nvml = RecordedNvml::from_json(&recording.to_string()).expect("a recording");
    discover(&nvml, Host::default(), &[])
}

fn link(topology: &Topology, a: u32, b: u32) -> LinkType {
    topology
        .pairs
        .iter()
        .find(|p| (p.a, p.b) == (a, b))
        .map(|p| p.link)
        .unwrap_or_else(|| panic!("pair GPU{a}, GPU{b} is kept"))
}

/// Every NVLink of every GPU, to change one answer on each.
fn each_link(recording: &mut Value, mut change: impl FnMut(&mut Value)) {
    for gpu in recording["gpus"].as_array_mut().unwrap() {
        for l in gpu["nvlinks"].as_array_mut().unwrap() {
            change(l);
        }
    }
}

#[test]
fn switch_links_count_when_the_remote_type_is_refused_or_unknown() {
    let healthy = discovered(&fixture("h100-sxm5-8x"));
    assert_eq!(link(&healthy, 0, 1), LinkType::NvLink(18));
    for answer in [Value::Null, Value::from("unknown")] {
        let mut recording = fixture("h100-sxm5-8x");
        each_link(&mut recording, |l| l["remote_device"] = answer.clone());
        let topology = discovered(&recording);
        assert_eq!(
            link(&topology, 0, 1),
            LinkType::NvLink(18),
            "remote type {answer}: a link to no known GPU is a switch link"
        );
    }
}

#[test]
fn a_fabric_manager_partition_keeps_switch_links_from_counting() {
    let mut recording = fixture("h100-sxm5-8x");
    for pair in recording["pairs"].as_array_mut().unwrap() {
        if (pair["a"].as_u64(), pair["b"].as_u64()) == (Some(0), Some(4)) {
            pair["p2p"]["nvlink"] = "NS".into();
            pair["p2p_back"]["nvlink"] = "NS".into();
        }
    }
    let topology = discovered(&recording);
    assert_eq!(link(&topology, 0, 1), LinkType::NvLink(18));
    assert_eq!(
        link(&topology, 0, 4),
        LinkType::Sys,
        "NVLink P2P not OK between two GPUs of other partitions: their PCIe path"
    );
}

#[test]
fn a_pair_without_a_common_ancestor_is_kept_with_an_unknown_link() {
    let mut recording = fixture("rtx4090-pcie-4x");
    let pairs = recording["pairs"].as_array_mut().unwrap();
    let before = pairs.len();
    pairs[0]["common_ancestor"] = Value::Null;
    let (a, b) = (
        pairs[0]["a"].as_u64().unwrap(),
        pairs[0]["b"].as_u64().unwrap(),
    );
    let topology = discovered(&recording);
    assert_eq!(topology.pairs.len(), before, "no pair dropped");
    let pair = topology
        .pairs
        .iter()
        .find(|p| (u64::from(p.a), u64::from(p.b)) == (a, b))
        .unwrap();
    assert_eq!(pair.link, LinkType::Unknown);
    assert_eq!(pair.p2p.read, P2pStatus::Gns, "its P2P answers kept");
}
