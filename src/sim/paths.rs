//! Which shared pieces of hardware a transfer crosses, and how much each can carry.
//!
//! Every resource carries one direction: PCIe, NVLink and the socket link are full duplex, so a
//! GPU → host flow and a host → GPU flow do not compete.

use super::machine::Machine;
use crate::probe::protocol::Node;

/// Towards the host (up the PCIe tree) or away from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dir {
    Up,
    Down,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// A GPU's own PCIe link.
    Pcie(u32, Dir),
    /// A PCIe switch's uplink.
    Switch(usize, Dir),
    /// A root port's share of the root complex.
    Root(usize, Dir),
    /// The link between sockets, from one socket to the other.
    SocketLink(u32, u32),
    /// A bridge's bonded NVLinks from the first GPU to the second.
    Bridge(u32, u32),
    /// A GPU's NVLinks into the switch fabric (Up: sending; Down: receiving).
    Fabric(u32, Dir),
    /// A GPU's memory, for device-local copies (bytes counted once).
    Memory(u32),
}

/// How a transfer travels; the bandwidth model's efficiencies depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    DeviceLocal,
    NvLink,
    /// Peer access over PCIe, or a host path.
    Pcie,
    /// No peer access: the copy engines stage the bytes through host memory.
    Staged,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Path {
    pub route: Route,
    pub resources: Vec<Resource>,
}

impl Machine {
    /// The route and resources of bytes moving from `src`'s memory to `dst`'s.
    pub fn path(&self, src: Node, dst: Node) -> Path {
        let (route, resources) = match (src, dst) {
            (Node::Host, Node::Host) => (Route::Pcie, Vec::new()),
            (Node::Gpu(a), Node::Gpu(b)) if a == b => {
                (Route::DeviceLocal, vec![Resource::Memory(a)])
            }
            (Node::Host, Node::Gpu(b)) => (Route::Pcie, self.pcie_chain(b, Dir::Down)),
            (Node::Gpu(a), Node::Host) => (Route::Pcie, self.pcie_chain(a, Dir::Up)),
            (Node::Gpu(a), Node::Gpu(b)) => self.gpu_to_gpu(a, b),
        };
        Path { route, resources }
    }

    fn gpu_to_gpu(&self, a: u32, b: u32) -> (Route, Vec<Resource>) {
        let direct = self.gpus[a as usize]
            .links
            .iter()
            .any(|l| l.active && l.end == super::machine::LinkEnd::Gpu(b));
        if self.nvlinks_between(a, b) > 0 {
            let resources = if direct {
                vec![Resource::Bridge(a, b)]
            } else {
                vec![Resource::Fabric(a, Dir::Up), Resource::Fabric(b, Dir::Down)]
            };
            return (Route::NvLink, resources);
        }
        if !self.p2p(a, b).read.is_ok() {
            let staged = self.staged_path(a, b);
            return (staged.route, staged.resources);
        }
        (Route::Pcie, self.pcie_peer(a, b))
    }

    /// Bytes from GPU `a` to GPU `b` staged through host memory, as the copy engines move them
    /// when the two have no peer access: up `a`'s PCIe chain, down `b`'s.
    pub fn staged_path(&self, a: u32, b: u32) -> Path {
        let mut resources = self.pcie_chain(a, Dir::Up);
        resources.extend(self.pcie_chain(b, Dir::Down));
        Path {
            route: Route::Staged,
            resources,
        }
    }

    /// From a GPU up to the root complex (Up), or down from it (Down), nearest hop to the GPU
    /// first.
    fn pcie_chain(&self, gpu: u32, dir: Dir) -> Vec<Resource> {
        let g = &self.gpus[gpu as usize];
        let mut hops = vec![Resource::Pcie(gpu, dir)];
        hops.extend(g.switches.iter().map(|&s| Resource::Switch(s, dir)));
        hops.push(Resource::Root(g.root, dir));
        hops
    }

    /// Peer traffic over PCIe: up from `a` to the first switch both share (or through the root
    /// complex, and the socket link when they sit on different sockets), then down to `b`.
    fn pcie_peer(&self, a: u32, b: u32) -> Vec<Resource> {
        let (ga, gb) = (&self.gpus[a as usize], &self.gpus[b as usize]);
        let common = ga
            .switches
            .iter()
            .find(|s| gb.switches.contains(s))
            .copied();
        let below = |switches: &[usize]| -> Vec<usize> {
            switches
                .iter()
                .take_while(|&&s| Some(s) != common)
                .copied()
                .collect()
        };
        let mut hops = vec![Resource::Pcie(a, Dir::Up)];
        hops.extend(
            below(&ga.switches)
                .into_iter()
                .map(|s| Resource::Switch(s, Dir::Up)),
        );
        if common.is_none() {
            hops.push(Resource::Root(ga.root, Dir::Up));
            if ga.socket != gb.socket {
                hops.push(Resource::SocketLink(ga.socket, gb.socket));
            }
            hops.push(Resource::Root(gb.root, Dir::Down));
        }
        hops.extend(
            below(&gb.switches)
                .into_iter()
                .map(|s| Resource::Switch(s, Dir::Down)),
        );
        hops.push(Resource::Pcie(b, Dir::Down));
        hops
    }

    /// What the resource can carry per direction at line rate, GB/s.
    pub fn capacity(&self, resource: Resource) -> f64 {
        let link_gbps =
            |g: u32| -> f64 { self.gpus[g as usize].model.nvlink_link_gbps.unwrap_or(0.0) };
        let active = |g: u32, end: Option<u32>| -> f64 {
            self.gpus[g as usize]
                .links
                .iter()
                .filter(|l| l.active)
                .filter(|l| match end {
                    Some(peer) => l.end == super::machine::LinkEnd::Gpu(peer),
                    None => l.end == super::machine::LinkEnd::Switch,
                })
                .count() as f64
        };
        match resource {
            Resource::Pcie(g, _) => {
                let (generation, width) = self.gpus[g as usize].pcie_trained;
                crate::model::line_rate::pcie_lane_gbps(generation).unwrap_or(0.0)
                    * f64::from(width)
            }
            Resource::Switch(s, _) => self.switches[s].uplink_gbps,
            Resource::Root(r, _) => self.roots[r].gbps,
            Resource::SocketLink(..) => self.socket_link_gbps.unwrap_or(f64::INFINITY),
            Resource::Bridge(a, b) => active(a, Some(b)) * link_gbps(a),
            Resource::Fabric(g, _) => active(g, None) * link_gbps(g),
            Resource::Memory(g) => self.gpus[g as usize].model.memory_peak_gbps / 2.0,
        }
    }

    /// The slowest resource on the path: the line rate of the transfer in the simulation.
    pub fn path_line_rate(&self, path: &Path) -> f64 {
        path.resources
            .iter()
            .map(|&r| self.capacity(r))
            .fold(f64::INFINITY, f64::min)
    }
}
