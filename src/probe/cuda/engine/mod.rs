//! The measuring engine: opens every GPU before it greets, keeps buffers, and measures one
//! (pair, op, engine) at a time, or several pairs at once, with the method of the design (gate,
//! events, warm-up, samples, verification).

mod bandwidth;
mod latency;

use super::driver;
use super::gpu::{self, Gpu, MAX_LANES, OpenError};
use super::memory::Buffer;
use bandwidth::GATE_STATUS_STRIDE;
use cust::sys::{CUdevice, CUdevice_P2PAttribute};
use p2ptop::probe::driver_error::DriverError;
use p2ptop::probe::numbering;
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
    Destination {
        from: Option<Node>,
    },
    /// The latency chain, sized by the cache it must not fit in.
    Chain,
}

/// A buffer's name: its node and role, and for host memory the GPU it serves, so that every
/// GPU reads and writes pinned memory on its own NUMA node, as a program placed well would.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct BufferKey {
    node: Node,
    role: Role,
    serves: Option<u32>,
}

impl BufferKey {
    fn new(node: Node, role: Role, executor: u32) -> BufferKey {
        BufferKey {
            node,
            role,
            serves: (node == Node::Host).then_some(executor),
        }
    }
}

/// Why the probe cannot start.
pub enum StartError {
    Driver(DriverError),
    /// The GPU numbering it was given (`probe::numbering::VAR`) cannot be read.
    Numbers(String),
}

impl From<DriverError> for StartError {
    fn from(err: DriverError) -> StartError {
        StartError::Driver(err)
    }
}

/// Why a GPU could not be opened, kept to answer every pair that needs it.
struct Unusable {
    message: String,
    cuda_error: Option<i32>,
}

pub struct Probe {
    /// CUDA's devices by the number commands name them with (see `probe::numbering`).
    devices: HashMap<u32, CUdevice>,
    gpus: HashMap<u32, Gpu>,
    unusable: HashMap<u32, Unusable>,
    buffers: HashMap<BufferKey, Buffer>,
    /// The start gate's host-mapped words; made with the first GPU's context (host allocations
    /// need one), then used by every GPU.
    gate: Option<Buffer>,
    peers_enabled: HashSet<(u32, u32)>,
    next_seed: u32,
}

impl Probe {
    /// Initializes the driver, opens every GPU (contexts, kernels, streams: the slow part of
    /// starting, done before the greeting so no command's deadline pays for it) and describes
    /// the machine; the error is for a `fatal` event.
    pub fn start(numbers: Option<&str>) -> Result<(Probe, Event), StartError> {
        driver::init()?;
        let version = driver::driver_version()?;
        let numbering = numbering::parse(numbers).map_err(StartError::Numbers)?;
        let mut devices: Vec<(u32, CUdevice)> = Vec::new();
        for ordinal in 0..driver::device_count()? {
            let device = driver::device(ordinal)?;
            let bus_id = driver::pci_bus_id(device)?;
            if let Some(number) = numbering.number(ordinal as u32, &bus_id) {
                devices.push((number, device));
            }
        }
        let infos = devices
            .iter()
            .map(|&(number, device)| gpu::describe(number, device))
            .collect::<Result<Vec<DeviceInfo>, _>>()?;
        let peers = peer_matrix(&devices)?;
        let hello = Event::Hello {
            protocol: p2ptop::probe::protocol::PROTOCOL_VERSION,
            cuda_driver_version: format!("{}.{}", version / 1000, version % 1000 / 10),
            devices: infos,
            peers,
        };
        let mut probe = Probe {
            devices: devices.iter().copied().collect(),
            gpus: HashMap::new(),
            unusable: HashMap::new(),
            buffers: HashMap::new(),
            gate: None,
            peers_enabled: HashSet::new(),
            next_seed: 1,
        };
        for (number, _) in devices {
            probe.open(number);
        }
        Ok((probe, hello))
    }

    /// Opens GPU `ordinal` (its number), or remembers why it cannot be.
    fn open(&mut self, ordinal: u32) {
        let device = self.devices[&ordinal];
        match Gpu::open(ordinal, device) {
            Ok(gpu) => {
                self.gpus.insert(ordinal, gpu);
            }
            Err(OpenError::Driver(err)) => {
                self.unusable.insert(
                    ordinal,
                    Unusable {
                        message: format!("opening GPU{ordinal}: {err}"),
                        cuda_error: Some(err.code),
                    },
                );
            }
            Err(OpenError::Kernels(load)) => {
                let log = if load.jit_log.is_empty() {
                    String::new()
                } else {
                    format!("; JIT log: {}", load.jit_log)
                };
                self.unusable.insert(
                    ordinal,
                    Unusable {
                        message: format!(
                            "loading kernel {} on GPU{ordinal}: {}{log}",
                            load.kernel, load.error
                        ),
                        cuda_error: Some(load.error.code),
                    },
                );
            }
        }
    }

    /// Checks that a node is an open GPU (or the host).
    fn usable(&self, node: Node) -> Result<(), Failure> {
        let Node::Gpu(ordinal) = node else {
            return Ok(());
        };
        if self.gpus.contains_key(&ordinal) {
            return Ok(());
        }
        Err(match self.unusable.get(&ordinal) {
            Some(why) => Failure {
                kind: FailureKind::Driver,
                message: why.message.clone(),
                cuda_error: why.cuda_error,
                fatal: false,
            },
            None => {
                let mut known: Vec<u32> = self.devices.keys().copied().collect();
                known.sort_unstable();
                let known: Vec<String> = known.iter().map(|n| format!("GPU{n}")).collect();
                Failure::new(
                    FailureKind::Invalid,
                    format!(
                        "GPU{ordinal} is not one the probe can use; it has {}",
                        known.join(", ")
                    ),
                )
            }
        })
    }

    /// Makes the gate block once a GPU is open (its context is current then).
    fn ensure_gate(&mut self) -> Result<(), Failure> {
        if self.gate.is_none() {
            let bytes = GATE_STATUS_STRIDE * (bandwidth::MAX_FLOWS as u64 + 1);
            self.gate = Some(Buffer::on_host(bytes, None)?);
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

    /// Whether the copy engines must stage a copy between these nodes through host memory:
    /// two GPUs with peer access enabled neither way.
    fn staged(&self, t: &Transfer) -> bool {
        match (t.src, t.dst) {
            (Node::Gpu(a), Node::Gpu(b)) if a != b => {
                !self.peers_enabled.contains(&(a, b)) && !self.peers_enabled.contains(&(b, a))
            }
            _ => false,
        }
    }

    fn gpu(&self, ordinal: u32) -> &Gpu {
        // Only called for GPUs `usable` has accepted.
        &self.gpus[&ordinal]
    }

    /// The buffer `key` names, (re)allocated to `bytes`; allocating says so first, since
    /// pinning gigabytes of host memory takes seconds.
    fn buffer(
        &mut self,
        key: BufferKey,
        bytes: u64,
        id: u64,
        settings: &Settings,
        control: &mut dyn Control,
    ) -> Result<u64, Failure> {
        if self.buffers.get(&key).is_some_and(|b| b.bytes != bytes) {
            self.buffers.remove(&key);
        }
        if let Some(buffer) = self.buffers.get(&key) {
            return Ok(buffer.ptr);
        }
        control.emit(Event::Progress {
            id,
            step: format!("allocating {} MiB on {}", bytes >> 20, key.node),
            deadline_ms: settings.sample_timeout_ms,
        });
        let buffer = match (key.node, key.serves) {
            (Node::Gpu(ordinal), _) => Buffer::on_gpu(self.gpu(ordinal), bytes)?,
            (Node::Host, serves) => {
                let near = serves.and_then(|g| driver::host_numa_node(self.gpu(g).device));
                Buffer::on_host(bytes, near)?
            }
        };
        let ptr = buffer.ptr;
        self.buffers.insert(key, buffer);
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
        if let Some((gpu, count)) = busiest_executor(&groups)
            && count > MAX_LANES
        {
            return Err(Failure::new(
                FailureKind::Invalid,
                format!(
                    "GPU{gpu} would run {count} transfers at once, more than the {MAX_LANES} \
                     hardware queues a GPU gives the probe; select fewer pairs"
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
    /// Checks a pair's GPUs are open and connects them (with peer access `required` when a
    /// kernel runs across); its transfers.
    fn prepare(&mut self, pair: Pair, op: Op, required: bool) -> Result<Vec<Transfer>, Failure> {
        let transfers =
            plan::transfers(pair, op).map_err(|m| Failure::new(FailureKind::Invalid, m))?;
        for node in [pair.src, pair.dst] {
            self.usable(node)?;
        }
        for t in &transfers {
            self.connect(*t, required)?;
        }
        Ok(transfers)
    }
}

/// The GPU that runs the most transfers of `groups`, and how many.
fn busiest_executor(groups: &[(Pair, Vec<Transfer>)]) -> Option<(u32, usize)> {
    let mut count: HashMap<u32, usize> = HashMap::new();
    for t in groups.iter().flat_map(|(_, t)| t) {
        *count.entry(t.executor).or_default() += 1;
    }
    count.into_iter().max_by_key(|&(_, n)| n)
}

/// Waits, with the untimed-work deadline, for everything queued on `gpu`'s lanes, then asks
/// the context for a sticky error.
fn drain(gpu: &Gpu, settings: &Settings) -> Result<(), Failure> {
    gpu.make_current()?;
    let deadline = Duration::from_millis(settings.sample_timeout_ms);
    for lane in &gpu.lanes {
        driver::record(lane.fence, lane.stream)?;
        wait(gpu, lane.fence, deadline, "work queued before the failure")?;
    }
    Ok(driver::synchronize_current()?)
}

/// Waits for `event` on `gpu` until `deadline` has passed; past it the work is declared hung.
fn wait(
    gpu: &Gpu,
    event: cust::sys::CUevent,
    deadline: Duration,
    what: &str,
) -> Result<(), Failure> {
    let until = Instant::now() + deadline;
    while !driver::event_done(event)? {
        if Instant::now() > until {
            return Err(Failure {
                kind: FailureKind::Hung,
                message: format!(
                    "{what} on GPU{} did not finish within {} ms: the path or the GPU is hung; \
                     the probe exits, restart it without this pair",
                    gpu.ordinal,
                    deadline.as_millis()
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

/// CUDA's view of peer access between every ordered pair of GPUs (by their numbers).
fn peer_matrix(devices: &[(u32, CUdevice)]) -> Result<Vec<PeerInfo>, DriverError> {
    use CUdevice_P2PAttribute::*;
    let mut peers = Vec::new();
    for &(src, a) in devices {
        for &(dst, b) in devices {
            if src == dst {
                continue;
            }
            peers.push(PeerInfo {
                src,
                dst,
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
