//! What a path was built for and carries now (`model::capacity`), on simulated machines with
//! links taken down as NVML reports them.

use p2ptop::model::capacity::{Trained, built_link, nvlinks_built, of_path};
use p2ptop::model::topology::{LinkType, NvLinkRemote, Topology};
use p2ptop::probe::protocol::Node;

fn preset(name: &str) -> Topology {
    p2ptop::sim::load(name).unwrap().topology()
}

/// Takes GPU `gpu`'s link `link` down as NVML reports it: inactive, its far end unknown.
fn down(topology: &mut Topology, gpu: u32, link: usize) {
    let l = &mut topology.gpus[gpu as usize].nvlinks[link];
    l.active = false;
    l.remote = NvLinkRemote::Unknown;
}

/// The pair's type as `topo -m` gives it, from the links still up.
fn retype(topology: &mut Topology, a: u32, b: u32, link: LinkType) {
    let pair = topology
        .pairs
        .iter_mut()
        .find(|p| (p.a, p.b) == (a.min(b), a.max(b)))
        .unwrap();
    pair.link = link;
}

fn at_max(_: u32) -> Option<Trained> {
    None
}

fn trained_down(_: u32) -> Option<Trained> {
    Some(Trained {
        generation: 3,
        width: 8,
    })
}

#[test]
fn a_bridge_with_a_link_down_is_built_for_all_four() {
    let mut topology = preset("3090-bridge");
    let healthy = of_path(&topology, Node::Gpu(1), Node::Gpu(0), &at_max).unwrap();
    assert!(!healthy.degraded());
    assert_eq!(healthy.now, healthy.built);
    down(&mut topology, 0, 2);
    down(&mut topology, 1, 2);
    retype(&mut topology, 0, 1, LinkType::NvLink(3));
    let c = of_path(&topology, Node::Gpu(0), Node::Gpu(1), &at_max).unwrap();
    assert_eq!(c.built.gbps, 56.25);
    assert_eq!(c.built.basis, "4 NVLink × 14.0625 GB/s");
    assert_eq!(c.now.gbps, 42.1875);
    assert_eq!(c.shortfalls.len(), 1);
    assert_eq!(c.shortfalls[0].to_string(), "NVLink 3/4 up");
    assert_eq!(built_link(&topology, 1, 0), Some(LinkType::NvLink(4)));
}

#[test]
fn a_gpu_with_every_link_down_cannot_say_where_they_led() {
    // Nothing is known about the far ends: the pair reads as PCIe, as NVML shows it.
    let mut topology = preset("3090-bridge");
    for (gpu, link) in [0, 1].into_iter().flat_map(|g| (0..4).map(move |l| (g, l))) {
        down(&mut topology, gpu, link);
    }
    retype(&mut topology, 0, 1, LinkType::Phb);
    let c = of_path(&topology, Node::Gpu(0), Node::Gpu(1), &at_max).unwrap();
    assert_eq!(c.built.basis, "PCIe 4.0 x16");
    assert!(!c.degraded());
}

#[test]
fn switch_links_count_as_the_fewer_of_the_two_gpus_and_all_down_falls_back_to_pcie() {
    let mut topology = preset("hgx-h100");
    down(&mut topology, 1, 5);
    retype(&mut topology, 0, 1, LinkType::NvLink(17));
    assert_eq!(nvlinks_built(&topology, 0, 1), 18);
    let c = of_path(&topology, Node::Gpu(0), Node::Gpu(1), &at_max).unwrap();
    assert_eq!((c.built.gbps, c.now.gbps), (450.0, 425.0));
    // No link of GPU1 up, and its PCIe link trained down: both gaps are named.
    for link in 0..18 {
        topology.gpus[1].nvlinks[link].active = false;
    }
    retype(&mut topology, 0, 1, LinkType::Sys);
    let only_gpu1 = |g: u32| (g == 1).then(|| trained_down(g)).flatten();
    let c = of_path(&topology, Node::Gpu(0), Node::Gpu(1), &only_gpu1).unwrap();
    assert_eq!(c.built.gbps, 450.0);
    assert_eq!(c.now.basis, "PCIe 3.0 x8");
    let gaps: Vec<String> = c.shortfalls.iter().map(ToString::to_string).collect();
    assert_eq!(gaps, ["NVLink 0/18 up", "GPU1 PCIe 3.0 x8 of 5.0 x16"]);
}

#[test]
fn a_host_path_is_built_for_the_gpus_maximum_and_runs_at_what_it_trained() {
    let topology = preset("h100-single");
    let c = of_path(&topology, Node::Host, Node::Gpu(0), &trained_down).unwrap();
    assert!((c.built.gbps - 63.0).abs() < 0.01);
    assert!((c.now.gbps - 7.88).abs() < 0.01);
    assert_eq!(c.shortfalls[0].to_string(), "GPU0 PCIe 3.0 x8 of 5.0 x16");
    let local = of_path(&topology, Node::Gpu(0), Node::Gpu(0), &trained_down).unwrap();
    assert_eq!(local.built.gbps, 1675.0);
    assert!(!local.degraded(), "a device-local copy uses no link");
    assert!(of_path(&topology, Node::Host, Node::Host, &trained_down).is_none());
}
