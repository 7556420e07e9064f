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
use p2ptop::probe::session::{Control, Failure, Finish, Measurer};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Which of a node's two buffers: a transfer reads a node's `Source` and writes the other's
/// `Destination`, so bidir and device-local copies never share one.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Role {
    Source,
    Destination,
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
            let bytes = GATE_STATUS_STRIDE * (gpu::LANES as u64 + 1);
            self.gate = Some(Buffer::on_host(bytes)?);
        }
        Ok(())
    }

    /// Makes sure the executor can reach the other GPU's memory, as the engine requires.
    fn connect(&mut self, t: Transfer, engine: Engine) -> Result<(), Failure> {
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
        let (executor_device, other_device) = (self.gpu(t.executor).device, self.gpu(other).device);
        if !driver::can_access_peer(executor_device, other_device)? {
            return match engine {
                // Without peer access the copy engines still copy, staged through host memory.
                Engine::Ce => Ok(()),
                Engine::Sm => Err(Failure::new(
                    FailureKind::Unsupported,
                    format!(
                        "GPU{} cannot access GPU{other}'s memory (cuDeviceCanAccessPeer = 0), so \
                         the SM kernel cannot run across this pair; the copy engines (engine ce) \
                         can still copy, staged through host memory",
                        t.executor
                    ),
                )),
            };
        }
        for (from, to) in [(t.executor, other), (other, t.executor)] {
            if self.peers_enabled.insert((from, to)) {
                self.gpu(from).make_current()?;
                driver::enable_peer_access(self.gpu(to).context)?;
            }
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

    /// After a failure: if any open GPU's context now reports an error, the failure is fatal.
    fn judge_health(&self, mut failure: Failure) -> Failure {
        if failure.fatal {
            return failure;
        }
        for gpu in self.gpus.values() {
            let health = gpu
                .make_current()
                .and_then(|()| driver::synchronize_current());
            if let Err(err) = health {
                failure.fatal = true;
                failure.message = format!(
                    "{}; afterwards GPU{} reports {err}, so the probe cannot go on",
                    failure.message, gpu.ordinal
                );
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
        validate(settings)?;
        let transfers =
            plan::transfers(pair, op).map_err(|m| Failure::new(FailureKind::Invalid, m))?;
        for node in [pair.src, pair.dst] {
            self.open(node)?;
        }
        self.ensure_gate()?;
        // The pointer chase is a kernel whatever the engine: it needs peer access like SM copies.
        let access = if op == Op::Latency {
            Engine::Sm
        } else {
            engine
        };
        for t in &transfers {
            self.connect(*t, access)?;
        }
        let result = match op {
            Op::Latency => self.latency(id, pair, transfers[0], settings, control),
            _ => self.bandwidth(id, pair, op, engine, &transfers, settings, control),
        };
        result.map_err(|failure| self.judge_health(failure))
    }
}

/// Waits for `event` on `gpu` until the sample timeout; past it the work is declared hung.
fn wait(
    gpu: &Gpu,
    event: cust::sys::CUevent,
    settings: &Settings,
    what: &str,
    t: Transfer,
) -> Result<(), Failure> {
    let deadline = Instant::now() + Duration::from_millis(settings.sample_timeout_ms);
    while !driver::event_done(event)? {
        if Instant::now() > deadline {
            return Err(Failure {
                kind: FailureKind::Hung,
                message: format!(
                    "{what} of {} → {} on GPU{} did not finish within {} ms: the path or the GPU \
                     is hung; the probe exits, restart it without this pair",
                    t.src, t.dst, gpu.ordinal, settings.sample_timeout_ms
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

/// Refuses settings that cannot work, before anything is allocated or launched.
fn validate(s: &Settings) -> Result<(), Failure> {
    let problem = if s.buffer_mib == 0 {
        Some("buffer_mib must be at least 1")
    } else if s.samples == 0 {
        Some("samples must be at least 1")
    } else if !(32..=1024).contains(&s.block_size) || !s.block_size.is_multiple_of(32) {
        Some("block_size must be a multiple of 32 from 32 to 1024")
    } else if s.blocks_per_sm == 0 || s.blocks_per_sm > 32 {
        Some("blocks_per_sm must be from 1 to 32")
    } else if !(s.min_sample_ms.is_finite() && s.min_sample_ms > 0.0) {
        Some("min_sample_ms must be a positive number")
    } else if s.gate_timeout_ms == 0 || s.sample_timeout_ms == 0 {
        Some("gate_timeout_ms and sample_timeout_ms must be at least 1")
    } else if s.latency_steps == 0 {
        Some("latency_steps must be at least 1")
    } else {
        None
    };
    match problem {
        Some(message) => Err(Failure::new(FailureKind::Invalid, message)),
        None => Ok(()),
    }
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
