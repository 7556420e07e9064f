//! The topology's pairs by GPU indices, for drawing matrices: `Topology::pair` searches the whole
//! list of n² pairs, so a matrix drawn through it takes n⁴ steps (minutes for 256 GPUs); one
//! table built per matrix takes n².

use crate::model::topology::{LinkType, P2pCaps, PairLink, Topology};
use std::collections::HashMap;

pub struct Pairs<'a>(HashMap<(u32, u32), &'a PairLink>);

impl<'a> Pairs<'a> {
    pub fn of(topology: &'a Topology) -> Pairs<'a> {
        Pairs(topology.pairs.iter().map(|p| ((p.a, p.b), p)).collect())
    }

    fn pair(&self, a: u32, b: u32) -> Option<&'a PairLink> {
        self.0.get(&(a.min(b), a.max(b))).copied()
    }

    /// How two GPUs of the topology are joined; `X` for a GPU with itself.
    pub fn link(&self, a: u32, b: u32) -> Option<LinkType> {
        if a == b {
            return Some(LinkType::SelfLink);
        }
        self.pair(a, b).map(|p| p.link)
    }

    /// `src`'s access to `dst`'s memory.
    pub fn p2p(&self, src: u32, dst: u32) -> Option<P2pCaps> {
        let pair = self.pair(src, dst)?;
        Some(if src == pair.a {
            pair.p2p
        } else {
            pair.p2p_back
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_answers_as_the_topology_does() {
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
