//! Bandwidth: warm-up, gated timed samples, verification, and the summary.

use super::{Probe, Role, wait};
use crate::cuda::driver;
use crate::cuda::gpu::{Gpu, VERIFY_RESULT_OFFSET};
use crate::cuda::kernels::{GATE_RELEASED, PatternMode};
use crate::cuda::memory::Buffer;
use p2ptop::probe::driver_error::DriverError;
use p2ptop::probe::plan::{self, Transfer};
use p2ptop::probe::protocol::{
    DirectionSample, DirectionSummary, Engine, Event, FailureKind, Node, Op, Pair, Settings,
    Verification,
};
use p2ptop::probe::session::{Control, Failure, Finish};
use std::sync::atomic::{AtomicU32, Ordering};

/// The start gate's host-mapped words: the flag, then one status per lane, a cache line apart.
const GATE_FLAG_OFFSET: u64 = 0;
pub(super) const GATE_STATUS_STRIDE: u64 = 128;

/// The most transfers one sample runs at once (a stress of every pair of 8 GPUs and the host,
/// both ways, needs 2 × 9 × 8 = 144): each needs a status word in the pinned gate block.
pub(super) const MAX_FLOWS: usize = 256;

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
        let copies = self.flows(groups, settings.buffer_mib << 20)?;
        let repeats = self.calibrate(&copies, engine, settings)?;
        let mut per_flow: Vec<Vec<f64>> = vec![Vec::new(); copies.len()];
        let mut verification = vec![Verification::default(); groups.len()];
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
            for (values, d) in per_flow.iter_mut().zip(&directions) {
                values.push(d.gbps);
            }
            let mut next = directions.into_iter();
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
        Ok(Finish::Complete)
    }

    /// Buffers, a lane on the executor and a gate slot for every transfer of `groups`.
    fn flows(
        &mut self,
        groups: &[(Pair, Vec<Transfer>)],
        bytes: u64,
    ) -> Result<Vec<Flow>, Failure> {
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
                copies.push(Flow {
                    transfer: *t,
                    group,
                    lane,
                    slot: copies.len(),
                    src: self.buffer(t.src, Role::Source, bytes)?,
                    dst: self.buffer(t.dst, destination, bytes)?,
                    bytes,
                });
            }
        }
        Ok(copies)
    }

    /// Runs the warm-up copies and picks the repeat count that makes one sample last at least
    /// `min_sample_ms` in the fastest direction.
    fn calibrate(
        &self,
        copies: &[Flow],
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
            let seconds = self.timed_seconds(c, settings, "a warm-up copy")?;
            fastest_ms = fastest_ms.min(seconds * 1e3);
        }
        Ok(plan::repeats(settings, fastest_ms, engine))
    }

    /// One timed sample of every copy at once; `None` when a start gate timed out.
    fn sample(
        &mut self,
        copies: &[Flow],
        engine: Engine,
        repeats: u32,
        seed: u32,
        settings: &Settings,
    ) -> Result<Option<Vec<DirectionSample>>, Failure> {
        for c in copies {
            let owner = self.owner(c.transfer.src, c.transfer.executor);
            self.run_pattern(owner, c, c.src, seed, PatternMode::Fill, settings)?;
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
                    gate + gate_status_offset(c.slot),
                    timeout_ns,
                )?
            };
            driver::record(lane.start, lane.stream)?;
            self.issue_copy(c, engine, repeats, settings)?;
            driver::record(lane.end, lane.stream)?;
        }
        self.open_gate();
        let mut directions = Vec::new();
        for c in copies {
            let seconds = self.timed_seconds(c, settings, "a timed copy")?;
            let moved = c.bytes * repeats as u64;
            directions.push(c.transfer.sample(moved, seconds));
        }
        let released = copies
            .iter()
            .all(|c| self.read_gate_word(gate_status_offset(c.slot)) == GATE_RELEASED);
        Ok(released.then_some(directions))
    }

    /// Waits for the work between flow `c`'s start and end events and returns how long it took.
    fn timed_seconds(&self, c: &Flow, settings: &Settings, what: &str) -> Result<f64, Failure> {
        let gpu = self.gpu(c.transfer.executor);
        let lane = &gpu.lanes[c.lane];
        wait(gpu, lane.end, settings, &format!("{what} {}", c.transfer))?;
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

    /// Fills or verifies `buf` (one of flow `c`'s buffers) on `gpu`, and waits for it. Verify
    /// leaves its result in `gpu`'s scratch block.
    fn run_pattern(
        &self,
        gpu: &Gpu,
        c: &Flow,
        buf: u64,
        seed: u32,
        mode: PatternMode,
        settings: &Settings,
    ) -> Result<(), Failure> {
        let lane = &gpu.lanes[c.lane];
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
            settings,
            &format!("{what} of {}", c.transfer),
        )
    }

    /// Queues `repeats` passes of one copy on its lane, with the SM kernel or the copy engines.
    fn issue_copy(
        &self,
        c: &Flow,
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

/// One direction ready to run: its plan, the pair it belongs to, its lane on the executor, its
/// gate status slot, and buffer addresses.
struct Flow {
    transfer: Transfer,
    group: usize,
    lane: usize,
    slot: usize,
    src: u64,
    dst: u64,
    bytes: u64,
}

fn gate_status_offset(slot: usize) -> u64 {
    GATE_STATUS_STRIDE * (slot as u64 + 1)
}
