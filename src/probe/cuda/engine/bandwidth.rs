//! Bandwidth: warm-up, gated timed samples, verification, and the summary.

use super::{BufferKey, Probe, Role, wait};
use crate::cuda::driver;
use crate::cuda::gpu::{Gpu, VERIFY_RESULT_OFFSET};
use crate::cuda::kernels::{GATE_RELEASED, PatternMode, Shape};
use crate::cuda::memory::Buffer;
use p2ptop::probe::driver_error::DriverError;
use p2ptop::probe::plan::{self, Transfer};
use p2ptop::probe::protocol::{
    DirectionSample, DirectionSummary, Engine, Event, FailureKind, Node, Op, Pair, Settings,
    Verification,
};
use p2ptop::probe::session::{Control, Failure, Finish};
use p2ptop::probe::stats;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The start gate's host-mapped words: the flag, then one status per lane, a cache line apart.
const GATE_FLAG_OFFSET: u64 = 0;
pub(super) const GATE_STATUS_STRIDE: u64 = 128;

/// The most transfers one sample runs at once (a stress of every pair of 8 GPUs and the host,
/// both ways, needs 2 × 9 × 8 = 144): each needs a status word in the pinned gate block.
pub(super) const MAX_FLOWS: usize = 256;

/// One sample's measured directions, and, when every flow started at the gate, all its bytes
/// over the span from that start to the last flow's end (GB/s).
struct Measured {
    directions: Vec<DirectionSample>,
    joined_gbps: Option<f64>,
}

impl Probe {
    /// Measures `groups` (each a pair and its transfers) at once: every sample runs all their
    /// transfers together behind one gate. One group is an ordinary measurement; several are a
    /// stress run, where they compete for what they share. Events are per pair.
    pub(super) fn bandwidth(
        &mut self,
        id: u64,
        groups: &[(Pair, Vec<Transfer>)],
        op: Op,
        engine: Engine,
        settings: &Settings,
        control: &mut dyn Control,
    ) -> Result<Finish, Failure> {
        self.check_shape(groups, engine, settings)?;
        let copies = self.flows(id, groups, engine, settings, control)?;
        let untimed = Duration::from_millis(settings.sample_timeout_ms);
        control.emit(Event::Progress {
            id,
            step: format!("warming up {} copies", copies.len()),
            deadline_ms: untimed.as_millis() as u64,
        });
        let (repeats, slowest_pass) = self.calibrate(&copies, engine, settings)?;
        let timed = p2ptop::probe::plan::sample_deadline(slowest_pass * repeats);
        let mut per_flow: Vec<Vec<f64>> = vec![Vec::new(); copies.len()];
        let mut joined = Vec::new();
        let mut verification = vec![Verification::default(); groups.len()];
        let (mut accepted, mut rejected) = (0u32, 0u32);
        while accepted < settings.samples {
            if control.stop_requested() {
                return Ok(Finish::Stopped);
            }
            control.emit(Event::Progress {
                id,
                step: format!("sample {} of {}", accepted + 1, settings.samples),
                // Filling and verifying are untimed; the copies have their calibrated deadline.
                deadline_ms: (untimed * 2 + timed).as_millis() as u64,
            });
            let seed = self.take_seed();
            let Some(measured) = self.sample(&copies, engine, repeats, seed, timed, settings)?
            else {
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
            for (values, d) in per_flow.iter_mut().zip(&measured.directions) {
                values.push(d.gbps);
            }
            joined.extend(measured.joined_gbps);
            let mut next = measured.directions.into_iter();
            for (g, (pair, group)) in groups.iter().enumerate() {
                let flows: Vec<&Flow> = copies.iter().filter(|c| c.group == g).collect();
                let checked = self.verify(&flows, seed, settings)?;
                verification[g].merge(checked);
                control.emit(Event::Sample {
                    id,
                    pair: *pair,
                    op,
                    engine,
                    index: accepted,
                    directions: next.by_ref().take(group.len()).collect(),
                    verification: checked,
                });
            }
            accepted += 1;
        }
        for (g, (pair, _)) in groups.iter().enumerate() {
            let directions: Vec<DirectionSummary> = copies
                .iter()
                .zip(&per_flow)
                .filter(|(c, _)| c.group == g)
                .filter_map(|(c, values)| c.transfer.summary(values))
                .collect();
            control.emit(Event::Result {
                id,
                pair: *pair,
                op,
                engine,
                buffer_mib: settings.buffer_mib,
                repeats,
                samples: accepted,
                rejected_samples: rejected,
                total_gbps: directions.iter().map(|d| d.median_gbps).sum(),
                directions,
                verification: verification[g],
            });
        }
        if groups.len() > 1
            && let Some(s) = stats::summarize(&joined)
        {
            control.emit(Event::StressTotal {
                id,
                op,
                engine,
                samples: joined.len() as u32,
                median_gbps: s.median,
                min_gbps: s.min,
                max_gbps: s.max,
                cv: s.cv,
            });
        }
        Ok(Finish::Complete)
    }

    /// Refuses a launch shape that cannot run every copy of a sample at once on its GPU.
    fn check_shape(
        &self,
        groups: &[(Pair, Vec<Transfer>)],
        engine: Engine,
        settings: &Settings,
    ) -> Result<(), Failure> {
        let mut executors: Vec<u32> = groups
            .iter()
            .flat_map(|(_, t)| t)
            .map(|t| t.executor)
            .collect();
        executors.sort_unstable();
        executors.dedup();
        for ordinal in executors {
            let gpu = self.gpu(ordinal);
            gpu.make_current()?;
            let blocks = match engine {
                Engine::Sm => settings.blocks_per_sm,
                // Only the pattern kernel runs, alone: any number of blocks per SM will do.
                Engine::Ce => 1,
            };
            if let Some(problem) = gpu.kernels.shape_problem(settings.block_size, blocks)? {
                return Err(Failure::new(
                    FailureKind::Invalid,
                    format!("GPU{ordinal}: {problem}"),
                ));
            }
        }
        Ok(())
    }

    /// Buffers, a lane and a launch shape on the executor, and a gate slot for every transfer
    /// of `groups`.
    fn flows(
        &mut self,
        id: u64,
        groups: &[(Pair, Vec<Transfer>)],
        engine: Engine,
        settings: &Settings,
        control: &mut dyn Control,
    ) -> Result<Vec<Flow>, Failure> {
        let bytes = settings.buffer_mib << 20;
        let together = groups.len() > 1;
        let mut copies: Vec<Flow> = Vec::new();
        for (group, (_, transfers)) in groups.iter().enumerate() {
            for t in transfers {
                let lane = copies
                    .iter()
                    .filter(|c| c.transfer.executor == t.executor)
                    .count();
                self.gpus
                    .get_mut(&t.executor)
                    .expect("prepared transfers run on open GPUs")
                    .ensure_lanes(lane + 1)?;
                let destination = Role::Destination {
                    from: together.then_some(t.src),
                };
                let src = BufferKey::new(t.src, Role::Source, t.executor);
                let dst = BufferKey::new(t.dst, destination, t.executor);
                copies.push(Flow {
                    transfer: *t,
                    group,
                    lane,
                    slot: copies.len(),
                    src: self.buffer(src, bytes, id, settings, control)?,
                    dst: self.buffer(dst, bytes, id, settings, control)?,
                    bytes,
                    staged: engine == Engine::Ce && self.staged(t),
                    shape: Shape {
                        blocks: 0,
                        threads: 0,
                    },
                });
            }
        }
        // Copies that run on one GPU at once share its SMs.
        for i in 0..copies.len() {
            let executor = copies[i].transfer.executor;
            let beside = copies
                .iter()
                .filter(|c| c.transfer.executor == executor)
                .count();
            let gpu = self.gpu(executor);
            copies[i].shape = gpu.share(
                settings.block_size,
                settings.blocks_per_sm,
                beside,
                copies[i].lane,
            );
        }
        Ok(copies)
    }

    /// Runs the warm-up copies; gives the repeat count that makes one sample last at least
    /// `min_sample_ms` in the fastest direction, and how long one pass of the slowest took.
    fn calibrate(
        &self,
        copies: &[Flow],
        engine: Engine,
        settings: &Settings,
    ) -> Result<(u32, Duration), Failure> {
        let untimed = Duration::from_millis(settings.sample_timeout_ms);
        for c in copies {
            let gpu = self.gpu(c.transfer.executor);
            let lane = &gpu.lanes[c.lane];
            gpu.make_current()?;
            for _ in 0..settings.warmup.max(1) {
                driver::record(lane.start, lane.stream)?;
                self.issue_copy(c, engine, 1)?;
                driver::record(lane.end, lane.stream)?;
            }
        }
        let (mut fastest, mut slowest) = (f64::INFINITY, 0.0f64);
        for c in copies {
            let seconds = self.timed_seconds(c, untimed, "a warm-up copy")?;
            fastest = fastest.min(seconds);
            slowest = slowest.max(seconds);
        }
        let repeats = plan::repeats(settings, fastest * 1e3, engine);
        Ok((repeats, Duration::from_secs_f64(slowest)))
    }

    /// One timed sample of every copy at once; `None` when a start gate timed out.
    ///
    /// Gated copies are queued behind the gate first. Copies the driver stages through host
    /// memory are queued after it opens, timed by their events alone: staging may block the
    /// host in the driver, which behind a closed gate would time every sample out.
    fn sample(
        &mut self,
        copies: &[Flow],
        engine: Engine,
        repeats: u32,
        seed: u32,
        deadline: Duration,
        settings: &Settings,
    ) -> Result<Option<Measured>, Failure> {
        for c in copies {
            let owner = self.owner(c.transfer.src, c.transfer.executor);
            self.run_pattern(owner, c, c.src, seed, PatternMode::Fill, settings)?;
        }
        self.reset_gate(copies.len());
        let gate = self.gate_address();
        let (staged, gated): (Vec<&Flow>, Vec<&Flow>) = copies.iter().partition(|c| c.staged);
        for c in &gated {
            let gpu = self.gpu(c.transfer.executor);
            let lane = &gpu.lanes[c.lane];
            gpu.make_current()?;
            // Milliseconds times kHz: cycles at the peak clock.
            let timeout_cycles = settings.gate_timeout_ms.saturating_mul(gpu.clock_khz);
            // SAFETY: flag and status words lie inside the host-mapped gate block.
            unsafe {
                gpu.kernels.gate(
                    lane.stream,
                    gate + GATE_FLAG_OFFSET,
                    gate + gate_status_offset(c.slot),
                    timeout_cycles,
                )?
            };
            driver::record(lane.start, lane.stream)?;
            self.issue_copy(c, engine, repeats)?;
            driver::record(lane.end, lane.stream)?;
        }
        let joined = match (gated.first(), staged.is_empty() && gated.len() > 1) {
            (Some(first), true) => Some(self.join(first, &gated)?),
            _ => None,
        };
        self.open_gate();
        for c in &staged {
            let gpu = self.gpu(c.transfer.executor);
            let lane = &gpu.lanes[c.lane];
            gpu.make_current()?;
            driver::record(lane.start, lane.stream)?;
            self.issue_copy(c, engine, repeats)?;
            driver::record(lane.end, lane.stream)?;
        }
        let mut directions = Vec::new();
        let moved = copies[0].bytes * repeats as u64;
        for c in copies {
            let seconds = self.timed_seconds(c, deadline, "a timed copy")?;
            directions.push(c.transfer.sample(moved, seconds));
        }
        let released = gated
            .iter()
            .all(|c| self.read_gate_word(gate_status_offset(c.slot)) == GATE_RELEASED);
        if !released {
            return Ok(None);
        }
        let joined_gbps = match joined {
            Some(first) => {
                let gpu = self.gpu(first.transfer.executor);
                let lane = &gpu.lanes[first.lane];
                wait(gpu, lane.fence, deadline, "the end of a stress sample")?;
                let seconds = driver::elapsed_ms(lane.start, lane.fence)? as f64 / 1e3;
                Some((moved * copies.len() as u64) as f64 / seconds / 1e9)
            }
            None => None,
        };
        Ok(Some(Measured {
            directions,
            joined_gbps,
        }))
    }

    /// Makes `first`'s lane wait for every other flow's end and records the moment all have
    /// ended on its fence: the end of the sample's joined span.
    fn join<'a>(&self, first: &'a Flow, flows: &[&Flow]) -> Result<&'a Flow, Failure> {
        let gpu = self.gpu(first.transfer.executor);
        let lane = &gpu.lanes[first.lane];
        gpu.make_current()?;
        for other in flows.iter().skip(1) {
            let end = self.gpu(other.transfer.executor).lanes[other.lane].end;
            driver::wait_for(lane.stream, end)?;
        }
        driver::record(lane.fence, lane.stream)?;
        Ok(first)
    }

    /// Waits for the work between flow `c`'s start and end events and returns how long it took.
    fn timed_seconds(&self, c: &Flow, deadline: Duration, what: &str) -> Result<f64, Failure> {
        let gpu = self.gpu(c.transfer.executor);
        let lane = &gpu.lanes[c.lane];
        wait(gpu, lane.end, deadline, &format!("{what} {}", c.transfer))?;
        Ok(driver::elapsed_ms(lane.start, lane.end)? as f64 / 1e3)
    }

    /// Checks every destination against the pattern of `seed`.
    fn verify(
        &self,
        copies: &[&Flow],
        seed: u32,
        settings: &Settings,
    ) -> Result<Verification, Failure> {
        let mut total = Verification::default();
        for c in copies {
            let owner = self.owner(c.transfer.dst, c.transfer.executor);
            self.run_pattern(owner, c, c.dst, seed, PatternMode::Verify, settings)?;
            let mut found = [0u64; 2];
            // SAFETY: reads the 16-byte verify result inside the scratch block; the kernel that
            // wrote it has finished (`run_pattern` waits).
            unsafe { driver::copy_from_device(&mut found, owner.scratch + VERIFY_RESULT_OFFSET)? };
            total.merge(Verification {
                mismatched_bytes: found[0],
                first_bad_offset: (found[0] > 0).then_some(found[1]),
            });
        }
        Ok(total)
    }

    /// The GPU that fills or checks `node`'s buffer: the node itself, so no peer access is
    /// needed (the copy engines copy between GPUs without it), or the executor for the host.
    fn owner(&self, node: Node, executor: u32) -> &Gpu {
        match node {
            Node::Gpu(ordinal) => self.gpu(ordinal),
            Node::Host => self.gpu(executor),
        }
    }

    /// Fills or verifies `buf` (one of flow `c`'s buffers) on `gpu`, and waits for it. It runs
    /// on the GPU's first lane, which is idle then (every copy of the sample has ended, or none
    /// has been queued yet), whichever lane the flow itself uses on its executor. Verify leaves
    /// its result in `gpu`'s scratch block.
    fn run_pattern(
        &self,
        gpu: &Gpu,
        c: &Flow,
        buf: u64,
        seed: u32,
        mode: PatternMode,
        settings: &Settings,
    ) -> Result<(), Failure> {
        let lane = &gpu.lanes[0];
        gpu.make_current()?;
        let result = gpu.scratch + VERIFY_RESULT_OFFSET;
        // SAFETY: `buf` holds `c.bytes` bytes, 256-byte aligned, on `gpu` or mapped host memory;
        // the scratch block holds the verify result {mismatched bytes, first bad offset}, set to
        // {0, u64::MAX} on the same stream first.
        unsafe {
            if let PatternMode::Verify = mode {
                driver::set_bytes_async(result, 0x00, 8, lane.stream)?;
                driver::set_bytes_async(result + 8, 0xFF, 8, lane.stream)?;
            }
            gpu.kernels.pattern(
                lane.stream,
                gpu.shape(settings.block_size, settings.blocks_per_sm),
                buf,
                c.bytes,
                seed,
                mode,
                result,
            )?;
        }
        driver::record(lane.fence, lane.stream)?;
        let what = match mode {
            PatternMode::Fill => "filling the source",
            PatternMode::Verify => "verification",
        };
        wait(
            gpu,
            lane.fence,
            Duration::from_millis(settings.sample_timeout_ms),
            &format!("{what} of {}", c.transfer),
        )
    }

    /// Queues `repeats` passes of one copy on its lane, with the SM kernel or the copy engines.
    fn issue_copy(&self, c: &Flow, engine: Engine, repeats: u32) -> Result<(), DriverError> {
        let gpu = self.gpu(c.transfer.executor);
        let stream = gpu.lanes[c.lane].stream;
        match engine {
            // SAFETY: both buffers hold `bytes` bytes, 256-byte aligned, reachable by this GPU
            // (peer access was enabled by `connect`, host memory is mapped).
            Engine::Sm => unsafe {
                gpu.kernels
                    .copy(stream, c.shape, c.dst, c.src, c.bytes, repeats)
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

    /// Lets every gate kernel waiting on the flag go.
    pub(super) fn open_gate(&self) {
        self.write_gate_word(GATE_FLAG_OFFSET, 1);
    }

    /// Closes the gate and clears the statuses of `slots` flows.
    fn reset_gate(&self, slots: usize) {
        self.write_gate_word(GATE_FLAG_OFFSET, 0);
        for slot in 0..slots {
            self.write_gate_word(gate_status_offset(slot), 0);
        }
    }

    fn write_gate_word(&self, offset: u64, value: u32) {
        // Release: everything queued before opening the gate is in the driver's hands first.
        self.gate_word(offset).store(value, Ordering::Release);
    }

    fn read_gate_word(&self, offset: u64) -> u32 {
        self.gate_word(offset).load(Ordering::Acquire)
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

    /// A word of the gate block, seen from the host. Kernels read and write the same memory
    /// with volatile (system-scope) accesses; the host side is atomic.
    fn gate_word(&self, offset: u64) -> &AtomicU32 {
        let host = self
            .gate_block()
            .host_ptr()
            .expect("the gate block is host memory");
        // SAFETY: every offset used is a multiple of 4 below the block's size (see
        // `ensure_gate`), the pinned block lives as long as `self`, and the host touches these
        // words only through this atomic view.
        unsafe { AtomicU32::from_ptr((host as *mut u8).add(offset as usize) as *mut u32) }
    }
}

/// One direction ready to run: its plan, the pair it belongs to, its lane and launch shape on
/// the executor, its gate status slot, and buffer addresses.
struct Flow {
    transfer: Transfer,
    group: usize,
    lane: usize,
    slot: usize,
    src: u64,
    dst: u64,
    bytes: u64,
    /// Copy engines staging through host memory: timed without the gate.
    staged: bool,
    shape: Shape,
}

fn gate_status_offset(slot: usize) -> u64 {
    GATE_STATUS_STRIDE * (slot as u64 + 1)
}
