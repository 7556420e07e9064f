//! The measuring engine: opens GPUs on demand, keeps buffers, and measures one (pair, op, engine)
//! at a time with the method of the design (gate, events, warm-up, samples, verification).

use super::driver;
use super::gpu::{self, CHASE_RESULT_OFFSET, Gpu, OpenError, VERIFY_RESULT_OFFSET};
use super::kernels::{GATE_RELEASED, PatternMode};
use super::memory::Buffer;
use cust::sys::{CUdevice, CUdevice_P2PAttribute};
use p2ptop::probe::chain::Chain;
use p2ptop::probe::driver_error::DriverError;
use p2ptop::probe::plan::{self, Transfer};
use p2ptop::probe::protocol::{
    DeviceInfo, DirectionSample, DirectionSummary, Engine, Event, FailureKind, Node, Op, Pair,
    PeerInfo, Settings, Verification,
};
use p2ptop::probe::session::{Control, Failure, Finish, Measurer};
use p2ptop::probe::stats;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Which of a node's two buffers: a transfer reads a node's `Source` and writes the other's
/// `Destination`, so bidir and device-local copies never share one.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Role {
    Source,
    Destination,
}

/// The start gate's host-mapped words: the flag, then one status per lane, a cache line apart.
const GATE_FLAG_OFFSET: u64 = 0;
const GATE_STATUS_STRIDE: u64 = 128;

/// The latency chain spans at most this much memory (more than any GPU's L2 cache), one slot per
/// page-sized stride so each step is a fresh cache line.
const CHASE_REGION_BYTES: u64 = 128 << 20;
const CHASE_STRIDE: u64 = 4096;

/// Repeat counts stay within this, whatever the calibration says.
const MAX_REPEATS: u32 = 100_000;

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

    #[allow(clippy::too_many_arguments)] // the measurement's coordinates, its settings, its sink
    fn bandwidth(
        &mut self,
        id: u64,
        pair: Pair,
        op: Op,
        engine: Engine,
        transfers: &[Transfer],
        settings: &Settings,
        control: &mut dyn Control,
    ) -> Result<Finish, Failure> {
        let bytes = settings.buffer_mib << 20;
        let mut copies = Vec::new();
        for (lane, t) in transfers.iter().enumerate() {
            copies.push(Copy {
                transfer: *t,
                lane,
                src: self.buffer(t.src, Role::Source, bytes)?,
                dst: self.buffer(t.dst, Role::Destination, bytes)?,
                bytes,
            });
        }
        let repeats = self.calibrate(&copies, engine, settings)?;
        let mut per_direction: Vec<Vec<f64>> = vec![Vec::new(); copies.len()];
        let mut verification = Verification::default();
        let (mut accepted, mut rejected) = (0u32, 0u32);
        while accepted < settings.samples {
            if control.stop_requested() {
                return Ok(Finish::Stopped);
            }
            let seed = self.take_seed();
            let Some(directions) = self.sample(&copies, engine, repeats, seed, settings)? else {
                rejected += 1;
                if rejected > settings.samples {
                    return Err(Failure::new(
                        FailureKind::GateTimeout,
                        format!(
                            "{rejected} samples' start gates timed out after {} ms: the host \
                             could not queue the work in time, so no sample can be trusted",
                            settings.gate_timeout_ms
                        ),
                    ));
                }
                continue;
            };
            let checked = self.verify(&copies, seed, settings)?;
            verification.merge(checked);
            for (values, d) in per_direction.iter_mut().zip(&directions) {
                values.push(d.gbps);
            }
            control.emit(Event::Sample {
                id,
                pair,
                op,
                engine,
                index: accepted,
                directions,
                verification: checked,
            });
            accepted += 1;
        }
        let directions: Vec<DirectionSummary> = copies
            .iter()
            .zip(&per_direction)
            .filter_map(|(c, values)| {
                let s = stats::summarize(values)?;
                Some(DirectionSummary {
                    src: c.transfer.src,
                    dst: c.transfer.dst,
                    executor: c.transfer.executor,
                    median_gbps: s.median,
                    min_gbps: s.min,
                    max_gbps: s.max,
                    cv: s.cv,
                })
            })
            .collect();
        control.emit(Event::Result {
            id,
            pair,
            op,
            engine,
            buffer_mib: settings.buffer_mib,
            repeats,
            samples: accepted,
            rejected_samples: rejected,
            total_gbps: directions.iter().map(|d| d.median_gbps).sum(),
            directions,
            verification,
        });
        Ok(Finish::Complete)
    }

    /// Runs the warm-up copies and picks the repeat count that makes one sample last at least
    /// `min_sample_ms` in the fastest direction.
    fn calibrate(
        &self,
        copies: &[Copy],
        engine: Engine,
        settings: &Settings,
    ) -> Result<u32, Failure> {
        let mut fastest_ms = f64::INFINITY;
        for c in copies {
            let gpu = self.gpu(c.transfer.executor);
            let lane = &gpu.lanes[c.lane];
            gpu.make_current()?;
            for _ in 0..settings.warmup.max(1) {
                driver::record(lane.start, lane.stream)?;
                self.issue_copy(c, engine, 1, settings)?;
                driver::record(lane.end, lane.stream)?;
            }
        }
        for c in copies {
            let gpu = self.gpu(c.transfer.executor);
            let lane = &gpu.lanes[c.lane];
            wait(gpu, lane.end, settings, "a warm-up copy", c.transfer)?;
            fastest_ms = fastest_ms.min(driver::elapsed_ms(lane.start, lane.end)? as f64);
        }
        let repeats = (settings.min_sample_ms / fastest_ms.max(1e-3)).ceil();
        Ok((repeats as u32).clamp(1, MAX_REPEATS))
    }

    /// One timed sample of every copy at once; `None` when a start gate timed out.
    fn sample(
        &mut self,
        copies: &[Copy],
        engine: Engine,
        repeats: u32,
        seed: u32,
        settings: &Settings,
    ) -> Result<Option<Vec<DirectionSample>>, Failure> {
        for c in copies {
            let gpu = self.gpu(c.transfer.executor);
            gpu.make_current()?;
            let shape = gpu.shape(settings.block_size, settings.blocks_per_sm);
            // SAFETY: the source buffer holds `bytes` bytes, 256-byte aligned.
            unsafe {
                gpu.kernels.pattern(
                    gpu.lanes[c.lane].stream,
                    shape,
                    c.src,
                    c.bytes,
                    seed,
                    PatternMode::Fill,
                    0,
                )?
            };
        }
        self.reset_gate(copies.len());
        let gate = self.gate_address();
        let timeout_ns = settings.gate_timeout_ms * 1_000_000;
        for c in copies {
            let gpu = self.gpu(c.transfer.executor);
            let lane = &gpu.lanes[c.lane];
            gpu.make_current()?;
            // SAFETY: flag and status words lie inside the host-mapped gate block.
            unsafe {
                gpu.kernels.gate(
                    lane.stream,
                    gate + GATE_FLAG_OFFSET,
                    gate + gate_status_offset(c.lane),
                    timeout_ns,
                )?
            };
            driver::record(lane.start, lane.stream)?;
            self.issue_copy(c, engine, repeats, settings)?;
            driver::record(lane.end, lane.stream)?;
        }
        self.write_gate_word(GATE_FLAG_OFFSET, 1);
        let mut directions = Vec::new();
        for c in copies {
            let gpu = self.gpu(c.transfer.executor);
            let lane = &gpu.lanes[c.lane];
            wait(gpu, lane.end, settings, "a timed copy", c.transfer)?;
            let seconds = driver::elapsed_ms(lane.start, lane.end)? as f64 / 1e3;
            let moved = c.bytes * repeats as u64;
            directions.push(DirectionSample {
                src: c.transfer.src,
                dst: c.transfer.dst,
                executor: c.transfer.executor,
                bytes: moved,
                seconds,
                gbps: moved as f64 / seconds / 1e9,
            });
        }
        let released = copies
            .iter()
            .all(|c| self.read_gate_word(gate_status_offset(c.lane)) == GATE_RELEASED);
        Ok(released.then_some(directions))
    }

    /// Checks every destination against the pattern of `seed`.
    fn verify(
        &self,
        copies: &[Copy],
        seed: u32,
        settings: &Settings,
    ) -> Result<Verification, Failure> {
        let mut total = Verification::default();
        for c in copies {
            let gpu = self.gpu(c.transfer.executor);
            let lane = &gpu.lanes[c.lane];
            gpu.make_current()?;
            let result = gpu.scratch + VERIFY_RESULT_OFFSET;
            // SAFETY: the scratch block holds 32 bytes; the destination holds `bytes` bytes.
            unsafe {
                driver::copy_to_device(result, &[0, u64::MAX])?;
                gpu.kernels.pattern(
                    lane.stream,
                    gpu.shape(settings.block_size, settings.blocks_per_sm),
                    c.dst,
                    c.bytes,
                    seed,
                    PatternMode::Verify,
                    result,
                )?;
            }
            driver::record(lane.fence, lane.stream)?;
            wait(gpu, lane.fence, settings, "verification", c.transfer)?;
            let mut found = [0u64; 2];
            // SAFETY: reads the 16-byte verify result inside the scratch block.
            unsafe { driver::copy_from_device(&mut found, result)? };
            total.merge(Verification {
                mismatched_bytes: found[0],
                first_bad_offset: (found[0] > 0).then_some(found[1]),
            });
        }
        Ok(total)
    }

    fn latency(
        &mut self,
        id: u64,
        pair: Pair,
        t: Transfer,
        settings: &Settings,
        control: &mut dyn Control,
    ) -> Result<Finish, Failure> {
        let bytes = settings.buffer_mib << 20;
        let region = bytes.min(CHASE_REGION_BYTES);
        let base = self.buffer(t.src, Role::Source, bytes)?;
        let seed = self.take_seed();
        let chain = Chain::new(base, region, CHASE_STRIDE, seed as u64);
        self.buffers[&(t.src, Role::Source)].write_words(&chain.words)?;
        let gpu = self.gpu(t.executor);
        let lane = &gpu.lanes[0];
        gpu.make_current()?;
        let out = gpu.scratch + CHASE_RESULT_OFFSET;
        // A short walk first, so the timed one finds the chain's pages mapped.
        for steps in [1_000u64.min(settings.latency_steps), settings.latency_steps] {
            // SAFETY: the chain starts at `base` and stays inside the region; `out` is scratch.
            unsafe { gpu.kernels.chase(lane.stream, chain.start, steps, out)? };
            driver::record(lane.fence, lane.stream)?;
            wait(gpu, lane.fence, settings, "the pointer chase", t)?;
        }
        let mut found = [0u64; 2];
        // SAFETY: reads the 16-byte chase result inside the scratch block.
        unsafe { driver::copy_from_device(&mut found, out)? };
        control.emit(Event::Latency {
            id,
            pair,
            executor: t.executor,
            steps: settings.latency_steps,
            ns_per_access: found[1] as f64 / settings.latency_steps.max(1) as f64,
            chain_ok: found[0] == chain.end_after(settings.latency_steps),
        });
        Ok(Finish::Complete)
    }

    /// Queues `repeats` passes of one copy on its lane, with the SM kernel or the copy engines.
    fn issue_copy(
        &self,
        c: &Copy,
        engine: Engine,
        repeats: u32,
        settings: &Settings,
    ) -> Result<(), DriverError> {
        let gpu = self.gpu(c.transfer.executor);
        let stream = gpu.lanes[c.lane].stream;
        match engine {
            // SAFETY: both buffers hold `bytes` bytes, 256-byte aligned, reachable by this GPU
            // (peer access was enabled by `connect`, host memory is mapped).
            Engine::Sm => unsafe {
                gpu.kernels.copy(
                    stream,
                    gpu.shape(settings.block_size, settings.blocks_per_sm),
                    c.dst,
                    c.src,
                    c.bytes,
                    repeats,
                )
            },
            Engine::Ce => {
                let peer = match (c.transfer.src, c.transfer.dst) {
                    (Node::Gpu(a), Node::Gpu(b)) if a != b => Some((self.gpu(a), self.gpu(b))),
                    _ => None,
                };
                for _ in 0..repeats {
                    // SAFETY: as above; the contexts own the ranges they are named with.
                    unsafe {
                        match peer {
                            Some((src, dst)) => driver::copy_peer_async(
                                c.dst,
                                dst.context,
                                c.src,
                                src.context,
                                c.bytes as usize,
                                stream,
                            )?,
                            None => driver::copy_async(c.dst, c.src, c.bytes as usize, stream)?,
                        }
                    }
                }
                Ok(())
            }
        }
    }

    fn take_seed(&mut self) -> u32 {
        self.next_seed = self.next_seed.wrapping_add(0x9E37_79B9);
        self.next_seed
    }

    /// Closes the gate and clears the statuses of `lanes` lanes.
    fn reset_gate(&self, lanes: usize) {
        self.write_gate_word(GATE_FLAG_OFFSET, 0);
        for lane in 0..lanes {
            self.write_gate_word(gate_status_offset(lane), 0);
        }
    }

    fn write_gate_word(&self, offset: u64, value: u32) {
        let word = self.gate_word(offset);
        // SAFETY: inside the pinned gate block; volatile because a running kernel reads it.
        unsafe { word.write_volatile(value) };
    }

    fn read_gate_word(&self, offset: u64) -> u32 {
        // SAFETY: inside the pinned gate block; volatile because a kernel wrote it.
        unsafe { self.gate_word(offset).read_volatile() }
    }

    fn gate_block(&self) -> &Buffer {
        // `measure` makes the gate before anything runs.
        self.gate
            .as_ref()
            .expect("the gate exists once a GPU is open")
    }

    /// The gate block's device address.
    fn gate_address(&self) -> u64 {
        self.gate_block().ptr
    }

    fn gate_word(&self, offset: u64) -> *mut u32 {
        let host = self
            .gate_block()
            .host_ptr()
            .expect("the gate block is host memory");
        // SAFETY: every offset used is below the block's size (see `ensure_gate`).
        unsafe { (host as *mut u8).add(offset as usize) as *mut u32 }
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

/// One direction ready to run: its plan, lane, and buffer addresses.
struct Copy {
    transfer: Transfer,
    lane: usize,
    src: u64,
    dst: u64,
    bytes: u64,
}

fn gate_status_offset(lane: usize) -> u64 {
    GATE_STATUS_STRIDE * (lane as u64 + 1)
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
