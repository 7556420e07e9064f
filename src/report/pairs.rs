//! The topology's pairs by GPU indices, for drawing matrices: `Topology::pair` searches the whole
//! list of n² pairs, so a matrix drawn through it takes n⁴ steps (minutes for 256 GPUs); tables
//! built once per matrix take n².

use crate::model::topology::{LinkType, P2pCaps, Topology};
use std::collections::HashMap;

/// Each ordered pair of different GPUs: how they are joined, and the first's access to the
/// second's memory.
pub struct Pairs {
    links: HashMap<(u32, u32), LinkType>,
    access: HashMap<(u32, u32), P2pCaps>,
}

impl Pairs {
    pub fn of(topology: &Topology) -> Pairs {
        let mut pairs = Pairs {
            links: HashMap::with_capacity(2 * topology.pairs.len()),
            access: HashMap::with_capacity(2 * topology.pairs.len()),
        };
        for p in &topology.pairs {
            for ((src, dst), caps) in [((p.a, p.b), p.p2p), ((p.b, p.a), p.p2p_back)] {
                pairs.links.insert((src, dst), p.link);
                pairs.access.insert((src, dst), caps);
            }
        }
        pairs
    }

    /// How two GPUs of the topology are joined; `X` for a GPU with itself.
    pub fn link(&self, a: u32, b: u32) -> Option<LinkType> {
        if a == b {
            return Some(LinkType::SelfLink);
        }
        self.links.get(&(a, b)).copied()
    }

    /// `src`'s access to `dst`'s memory.
    pub fn p2p(&self, src: u32, dst: u32) -> Option<P2pCaps> {
        self.access.get(&(src, dst)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_answer_as_the_topology_does() {
        let machine = crate::sim::load("pcie-dual-socket").unwrap();
        let topology = machine.topology();
        let pairs = Pairs::of(&topology);
        for a in &topology.gpus {
            for b in &topology.gpus {
                assert_eq!(
                    pairs.link(a.index, b.index),
                    topology.link(a.index, b.index)
                );
                assert_eq!(pairs.p2p(a.index, b.index), topology.p2p(a.index, b.index));
            }
        }
    }
}
