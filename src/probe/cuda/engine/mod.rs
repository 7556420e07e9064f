//! The measuring engine: opens GPUs on demand, keeps buffers, and measures one (pair, op, engine)
//! at a time with the method of the design (gate, events, warm-up, samples, verification).

mod bandwidth;
mod latency;

use super::driver;
use super::gpu::{self, Gpu, OpenError};
use super::memory::Buffer;
use bandwidth::GATE_STATUS_STRIDE;
use cust::sys::{CUdevice, CUdevice_P2PAttribute};
use p2ptop::probe::driver_error::DriverError;
use p2ptop::probe::plan::{self, Transfer};
use p2ptop::probe::protocol::{
    DeviceInfo, Engine, Event, FailureKind, Node, Op, Pair, PeerInfo, Settings,
};
use p2ptop::probe::session::{self, Control, Failure, Finish, Measurer};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Which of a node's buffers: a transfer reads a node's `Source` and writes the other's
/// `Destination`, so bidir and device-local copies never share one. Under stress several flows
/// may land in one node at once; each gets its own destination, named by where it comes from.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Role {
    Source,
    Destination { from: Option<Node> },
}

pub struct Probe {
    devices: Vec<CUdevice>,
    gpus: HashMap<u32, Gpu>,
    buffers: HashMap<(Node, Role), Buffer>,
    /// The start gate's host-mapped words; made with the first GPU's context (host allocations
    /// need one), then used by every GPU.
    gate: Option<Buffer>,
    peers_enabled: HashSet<(u32, u32)>,
    next_seed: u32,
}

impl Probe {
    /// Initializes the driver and describes the machine; the error is for a `fatal` event.
    pub fn start() -> Result<(Probe, Event), DriverError> {
        driver::init()?;
        let version = driver::driver_version()?;
        let count = driver::device_count()?;
        let devices = (0..count)
            .map(driver::device)
            .collect::<Result<Vec<_>, _>>()?;
        let infos = devices
            .iter()
            .enumerate()
            .map(|(ordinal, &device)| gpu::describe(ordinal as u32, device))
            .collect::<Result<Vec<DeviceInfo>, _>>()?;
        let peers = peer_matrix(&devices)?;
        let hello = Event::Hello {
            protocol: p2ptop::probe::protocol::PROTOCOL_VERSION,
            cuda_driver_version: format!("{}.{}", version / 1000, version % 1000 / 10),
            devices: infos,
            peers,
        };
        let probe = Probe {
            devices,
            gpus: HashMap::new(),
            buffers: HashMap::new(),
            gate: None,
            peers_enabled: HashSet::new(),
            next_seed: 1,
        };
        Ok((probe, hello))
    }

    fn open(&mut self, node: Node) -> Result<(), Failure> {
        let Node::Gpu(ordinal) = node else {
            return Ok(());
        };
        if self.gpus.contains_key(&ordinal) {
            return Ok(());
        }
        let Some(&device) = self.devices.get(ordinal as usize) else {
            return Err(Failure::new(
                FailureKind::Invalid,
                format!(
                    "GPU{ordinal} does not exist: CUDA sees {} GPU(s), numbered from 0",
                    self.devices.len()
                ),
            ));
        };
        let gpu = Gpu::open(ordinal, device).map_err(|err| match err {
            OpenError::Driver(err) => Failure::from(err),
            OpenError::Kernels(load) => Failure {
                kind: FailureKind::Driver,
                message: format!(
                    "loading kernel {} on GPU{ordinal}: {}{}",
                    load.kernel,
                    load.error,
                    if load.jit_log.is_empty() {
                        String::new()
                    } else {
                        format!("; JIT log: {}", load.jit_log)
                    }
                ),
                cuda_error: Some(load.error.code),
                fatal: false,
            },
        })?;
        self.gpus.insert(ordinal, gpu);
        Ok(())
    }

    /// Makes the gate block once a GPU is open (its context is current then).
    fn ensure_gate(&mut self) -> Result<(), Failure> {
        if self.gate.is_none() {
            let bytes = GATE_STATUS_STRIDE * (bandwidth::MAX_FLOWS as u64 + 1);
            self.gate = Some(Buffer::on_host(bytes)?);
        }
        Ok(())
    }

    /// Enables peer access across a GPU pair where CUDA allows it. `required` when the
    /// executor runs a kernel on the other GPU's memory (SM copies, the pointer chase); the copy
    /// engines do without it, staging through host memory.
    fn connect(&mut self, t: Transfer, required: bool) -> Result<(), Failure> {
        let other = match (t.src, t.dst) {
            (Node::Gpu(a), Node::Gpu(b)) if a != b => {
                if a == t.executor {
                    b
                } else {
                    a
                }
            }
            _ => return Ok(()),
        };
        if self.can_access(t.executor, other)? {
            self.enable_peer(t.executor, other)?;
        } else if required {
            return Err(Failure::new(
                FailureKind::Unsupported,
                format!(
                    "GPU{} cannot access GPU{other}'s memory (cuDeviceCanAccessPeer = 0), so no \
                     kernel can run across this pair; the copy engines (engine ce) can still \
                     copy, staged through host memory",
                    t.executor
                ),
            ));
        }
        // The way back only helps (copy engines may use either side's mapping).
        if self.can_access(other, t.executor)? {
            self.enable_peer(other, t.executor)?;
        }
        Ok(())
    }

    fn can_access(&self, from: u32, to: u32) -> Result<bool, Failure> {
        let (from, to) = (self.gpu(from).device, self.gpu(to).device);
        Ok(driver::can_access_peer(from, to)?)
    }

    /// Lets GPU `from` access GPU `to`'s memory, once.
    fn enable_peer(&mut self, from: u32, to: u32) -> Result<(), Failure> {
        if !self.peers_enabled.contains(&(from, to)) {
            self.gpu(from).make_current()?;
            driver::enable_peer_access(self.gpu(to).context)?;
            self.peers_enabled.insert((from, to));
        }
        Ok(())
    }

    fn gpu(&self, ordinal: u32) -> &Gpu {
        // Only called for GPUs `open` has accepted.
        &self.gpus[&ordinal]
    }

    /// The buffer of `node` in `role`, (re)allocated to `bytes`.
    fn buffer(&mut self, node: Node, role: Role, bytes: u64) -> Result<u64, Failure> {
        if self
            .buffers
            .get(&(node, role))
            .is_some_and(|b| b.bytes != bytes)
        {
            self.buffers.remove(&(node, role));
        }
        if let Some(buffer) = self.buffers.get(&(node, role)) {
            return Ok(buffer.ptr);
        }
        let buffer = match node {
            Node::Gpu(ordinal) => Buffer::on_gpu(self.gpu(ordinal), bytes)?,
            Node::Host => Buffer::on_host(bytes)?,
        };
        let ptr = buffer.ptr;
        self.buffers.insert((node, role), buffer);
        Ok(ptr)
    }

    fn take_seed(&mut self) -> u32 {
        self.next_seed = self.next_seed.wrapping_add(0x9E37_79B9);
        self.next_seed
    }

    /// After a failure: lets whatever was queued drain (opening the gate, so nothing waits on
    /// it), and if any open GPU then reports an error or does not finish, the failure is fatal.
    fn judge_health(&self, mut failure: Failure, settings: &Settings) -> Failure {
        if failure.fatal {
            return failure;
        }
        if self.gate.is_some() {
            self.open_gate();
        }
        for gpu in self.gpus.values() {
            if let Err(health) = drain(gpu, settings) {
                failure.fatal = true;
                failure.message = format!(
                    "{}; afterwards: {}, so the probe cannot go on",
                    failure.message, health.message
                );
                failure.cuda_error = failure.cuda_error.or(health.cuda_error);
                break;
            }
        }
        failure
    }
}

impl Measurer for Probe {
    /// Measures `op` on `pair` with `engine`, emitting samples and a result (or a latency).
    fn measure(
        &mut self,
        id: u64,
        pair: Pair,
        op: Op,
        engine: Engine,
        settings: &Settings,
        control: &mut dyn Control,
    ) -> Result<Finish, Failure> {
        // The pointer chase is a kernel whatever the engine: it needs peer access like SM copies.
        let transfers = self.prepare(pair, op, op == Op::Latency || engine == Engine::Sm)?;
        self.ensure_gate()?;
        let result = match op {
            Op::Latency => self.latency(id, pair, transfers[0], settings, control),
            _ => self.bandwidth(id, &[(pair, transfers)], op, engine, settings, control),
        };
        result.map_err(|failure| self.judge_health(failure, settings))
    }

    fn measure_together(
        &mut self,
        id: u64,
        pairs: &[Pair],
        op: Op,
        engine: Engine,
        settings: &Settings,
        control: &mut dyn Control,
    ) -> Result<Finish, Failure> {
        let mut groups = Vec::new();
        for &pair in pairs {
            match self.prepare(pair, op, engine == Engine::Sm) {
                Ok(transfers) => groups.push((pair, transfers)),
                Err(failure) if failure.fatal => return Err(failure),
                Err(failure) => control.emit(session::pair_error(id, pair, op, engine, &failure)),
            }
        }
        let flows: usize = groups.iter().map(|(_, t)| t.len()).sum();
        if flows > bandwidth::MAX_FLOWS {
            return Err(Failure::new(
                FailureKind::Invalid,
                format!(
                    "{flows} transfers at once is more than the {} a stress run holds; select \
                     fewer pairs",
                    bandwidth::MAX_FLOWS
                ),
            ));
        }
        if groups.is_empty() {
            return Ok(Finish::Complete);
        }
        self.ensure_gate()?;
        self.bandwidth(id, &groups, op, engine, settings, control)
            .map_err(|failure| self.judge_health(failure, settings))
    }
}

impl Probe {
    /// Opens a pair's GPUs and connects them (with peer access `required` when a kernel runs
    /// across); its transfers.
    fn prepare(&mut self, pair: Pair, op: Op, required: bool) -> Result<Vec<Transfer>, Failure> {
        let transfers =
            plan::transfers(pair, op).map_err(|m| Failure::new(FailureKind::Invalid, m))?;
        for node in [pair.src, pair.dst] {
            self.open(node)?;
        }
        for t in &transfers {
            self.connect(*t, required)?;
        }
        Ok(transfers)
    }
}

/// Waits, with the sample deadline, for everything queued on `gpu`'s lanes, then asks the
/// context for a sticky error.
fn drain(gpu: &Gpu, settings: &Settings) -> Result<(), Failure> {
    gpu.make_current()?;
    for lane in &gpu.lanes {
        driver::record(lane.fence, lane.stream)?;
        wait(gpu, lane.fence, settings, "work queued before the failure")?;
    }
    Ok(driver::synchronize_current()?)
}

/// Waits for `event` on `gpu` until the sample timeout; past it the work is declared hung.
fn wait(
    gpu: &Gpu,
    event: cust::sys::CUevent,
    settings: &Settings,
    what: &str,
) -> Result<(), Failure> {
    let deadline = Instant::now() + Duration::from_millis(settings.sample_timeout_ms);
    while !driver::event_done(event)? {
        if Instant::now() > deadline {
            return Err(Failure {
                kind: FailureKind::Hung,
                message: format!(
                    "{what} on GPU{} did not finish within {} ms: the path or the GPU is hung; \
                     the probe exits, restart it without this pair",
                    gpu.ordinal, settings.sample_timeout_ms
                ),
                cuda_error: None,
                fatal: true,
            });
        }
        // Short sleeps: the timing comes from GPU events, so polling slowly costs no accuracy.
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(())
}

/// CUDA's view of peer access between every ordered pair of GPUs.
fn peer_matrix(devices: &[CUdevice]) -> Result<Vec<PeerInfo>, DriverError> {
    use CUdevice_P2PAttribute::*;
    let mut peers = Vec::new();
    for (src, &a) in devices.iter().enumerate() {
        for (dst, &b) in devices.iter().enumerate() {
            if src == dst {
                continue;
            }
            peers.push(PeerInfo {
                src: src as u32,
                dst: dst as u32,
                can_access: driver::can_access_peer(a, b)?,
                native_atomics: driver::p2p_attribute(
                    CU_DEVICE_P2P_ATTRIBUTE_NATIVE_ATOMIC_SUPPORTED,
                    a,
                    b,
                )? != 0,
                performance_rank: driver::p2p_attribute(
                    CU_DEVICE_P2P_ATTRIBUTE_PERFORMANCE_RANK,
                    a,
                    b,
                )?,
            });
        }
    }
    Ok(peers)
}
