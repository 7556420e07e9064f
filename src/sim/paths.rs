//! Which shared pieces of hardware a transfer crosses, and how much each can carry.
//!
//! Every resource carries one direction: PCIe, NVLink and the socket link are full duplex, so a
//! GPU → host flow and a host → GPU flow do not compete for data. What a PCIe read costs the
//! other direction (its requests) is a load of its own: see [`Machine::loads`].

use super::bandwidth::{Direction, READ_REQUEST_SHARE};
use super::machine::{LinkEnd, Machine};
use crate::model::line_rate;
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
    /// What the root complex forwards of peer traffic from other root ports towards a GPU.
    Forward(u32),
    /// A socket's host memory, which a staged copy writes and then reads.
    HostMemory(u32),
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
            .any(|l| l.active && l.end == LinkEnd::Gpu(b));
        if self.nvlinks_between(a, b) > 0 && self.p2p(a, b).nvlink.is_ok() {
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
    /// when the two have no peer access: up `a`'s PCIe chain into pinned memory on `a`'s
    /// socket, then across the socket link when `b` sits on the other, and down `b`'s chain.
    pub fn staged_path(&self, a: u32, b: u32) -> Path {
        let (sa, sb) = (self.gpus[a as usize].socket, self.gpus[b as usize].socket);
        let mut resources = self.pcie_chain(a, Dir::Up);
        if self.host().memory_gbps.is_some() {
            resources.push(Resource::HostMemory(sa));
        }
        if sa != sb {
            resources.push(Resource::SocketLink(sa, sb));
        }
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
            if self.host().root_p2p_gbps.is_some() {
                hops.push(Resource::Forward(b));
            }
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
        let link_gbps = |g: u32| -> f64 {
            self.gpus[g as usize]
                .model
                .nvlink_link_gbps
                .map_or(0.0, line_rate::nvlink_data_gbps)
        };
        let active = |g: u32, end: Option<u32>| -> f64 {
            self.gpus[g as usize]
                .links
                .iter()
                .filter(|l| l.active)
                .filter(|l| match end {
                    Some(peer) => l.end == LinkEnd::Gpu(peer),
                    None => l.end == LinkEnd::Switch,
                })
                .count() as f64
        };
        let host = self.host();
        match resource {
            Resource::Pcie(g, _) => {
                let (generation, width) = self.gpus[g as usize].pcie_trained;
                line_rate::pcie_lane_gbps(generation).unwrap_or(0.0) * f64::from(width)
            }
            Resource::Switch(s, _) => self.switches[s].uplink_gbps,
            Resource::Root(r, _) => self.roots[r].gbps,
            Resource::SocketLink(..) => self.socket_link_gbps.unwrap_or(f64::INFINITY),
            Resource::Bridge(a, b) => active(a, Some(b)) * link_gbps(a),
            Resource::Fabric(g, _) => active(g, None) * link_gbps(g),
            Resource::Memory(g) => self.gpus[g as usize].model.memory_peak_gbps / 2.0,
            Resource::Forward(_) => host.root_p2p_gbps.unwrap_or(f64::INFINITY),
            Resource::HostMemory(_) => host.memory_gbps.unwrap_or(f64::INFINITY),
        }
    }

    /// What one GB/s of a transfer on `path` takes from each resource, GB/s: its data from
    /// every resource it crosses (twice from host memory, which a staged copy writes and then
    /// reads), and for a PCIe read the requests and completion credits it needs on the reading
    /// GPU's own link, in the direction its data does not take (the pulled leg of a staged copy
    /// too; a pushed leg is posted writes, which need none). Only the GPU's own link: two GPUs
    /// below one switch stage copies to each other as fast as any pair (HGX H100, 36–38 GB/s
    /// for every pair), so the switch uplinks they share do not feel it.
    pub fn loads(&self, path: &Path, direction: Direction) -> Vec<(Resource, f64)> {
        let reverse_share = self.host().read_request_share.unwrap_or(READ_REQUEST_SHARE);
        let mut loads: Vec<(Resource, f64)> = Vec::new();
        for &r in &path.resources {
            loads.push((
                r,
                if matches!(r, Resource::HostMemory(_)) {
                    2.0
                } else {
                    1.0
                },
            ));
        }
        let reads = match path.route {
            Route::Pcie => direction == Direction::Pull,
            Route::Staged => true,
            Route::NvLink | Route::DeviceLocal => false,
        };
        // The reader's own link is the one its data comes down.
        let reader = path.resources.iter().find_map(|r| match r {
            Resource::Pcie(g, Dir::Down) if reads => Some(*g),
            _ => None,
        });
        if let Some(g) = reader {
            loads.push((Resource::Pcie(g, Dir::Up), reverse_share));
        }
        loads
    }

    /// The slowest resource on the path: the line rate of the transfer in the simulation.
    pub fn path_line_rate(&self, path: &Path) -> f64 {
        path.resources
            .iter()
            .map(|&r| self.capacity(r))
            .fold(f64::INFINITY, f64::min)
    }
}
