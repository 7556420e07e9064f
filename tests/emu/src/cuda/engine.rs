//! The emulated GPUs at work: streams run their ops in order, concurrently with each other, on
//! the virtual clock of the simulation.
//!
//! Each pass starts every stream's next op that can start now: an event record is stamped with
//! the virtual time; a copy (kernel or copy engine) becomes a transfer over the path between its
//! buffers' homes; a kernel first needs its blocks resident on its GPU's SMs; a stream that
//! shares a hardware queue with another waits behind that stream's earlier ops. The gate kernel
//! waits for the host in real time, and while any gate waits the virtual clock stands still, so
//! gated work starts together however long the host takes to queue it. Otherwise the clock
//! jumps to the next moment a transfer ends, every running transfer sharing what it crosses as
//! the simulator's bandwidth model says; heat, clocks and link counters follow. A finished op
//! leaves its bytes in memory (through the kernel's native double) and lets its stream go on.

use super::codes::ILLEGAL_ADDRESS;
use super::kernels::Kind;
use super::memory::KernelView;
use super::residency::{BlockNeeds, Placement};
use super::state::{EventState, State};
use crate::log;
use p2ptop::probe::plan::Transfer;
use p2ptop::probe::protocol::{Engine, Node};
use p2ptop::sim::bandwidth::{self, Demand, Direction};
use p2ptop::sim::paths::Path;
use p2ptop::sim::simulation::{Flow, latency_ns};
use p2ptop::sim::spec::Fault;
use p2ptop_ptx::doubles::{self, PatternMode};
use std::time::Instant;

/// One queued piece of a stream's work, numbered in the order it was issued.
pub struct Op {
    pub seq: u64,
    pub what: What,
}

pub enum What {
    Record(usize),
    /// Wait until the event's record that was pending when the wait was queued has happened.
    Wait {
        event: usize,
        record: Option<u64>,
    },
    Launch {
        function: usize,
        grid: u32,
        block: u32,
        args: Vec<u64>,
    },
    /// A copy-engine copy between two allocations.
    Copy {
        dst: u64,
        src: u64,
        bytes: u64,
    },
    Memset {
        dst: u64,
        value: u8,
        count: u64,
    },
}

/// What a stream is doing now.
pub enum Running {
    /// A gate kernel spinning on its host flag, in real time.
    Gate {
        seq: u64,
        device: usize,
        started: Instant,
        flag: u64,
        status: u64,
        timeout_ns: u64,
        placement: Placement,
    },
    Work(Work),
}

impl Running {
    fn seq(&self) -> u64 {
        match self {
            Running::Gate { seq, .. } => *seq,
            Running::Work(work) => work.seq,
        }
    }
}

/// Work that takes virtual time.
pub struct Work {
    seq: u64,
    transfer: Transfer,
    path: Path,
    engine: Engine,
    left: Left,
    /// A machine fault holds it forever.
    stuck: bool,
    finish: Finish,
    placement: Option<(usize, Placement)>,
}

/// How much of a work remains: bytes at the model's rate, or a fixed time.
enum Left {
    Bytes { left: f64, total: f64 },
    Seconds(f64),
}

/// What a work leaves in memory when it ends.
enum Finish {
    KernelCopy {
        dst: u64,
        src: u64,
        bytes: u64,
    },
    EngineCopy {
        dst: u64,
        src: u64,
        bytes: u64,
    },
    Pattern {
        buf: u64,
        bytes: u64,
        seed: u32,
        mode: PatternMode,
        result: u64,
    },
    Chase {
        start: u64,
        steps: u64,
        out: u64,
    },
    Nothing,
}

/// Why an op could not start yet.
enum Start {
    Started,
    /// Done at once (records, memsets, faults).
    Finished,
    Blocked,
}

impl State {
    /// Runs the machine as far as it can go now; true if anything happened.
    pub fn step(&mut self) -> bool {
        let mut changed = false;
        loop {
            changed |= self.start_heads();
            if self.poll_gates(&mut changed) {
                return changed;
            }
            if !self.advance() {
                return changed;
            }
            changed = true;
        }
    }

    /// Whether a gate kernel waits for the host (the engine then polls often).
    pub fn gates_waiting(&self) -> bool {
        self.streams
            .iter()
            .any(|s| matches!(s.running, Some(Running::Gate { .. })))
    }

    /// Whether anything is queued or running.
    pub fn busy(&self) -> bool {
        self.streams
            .iter()
            .any(|s| s.running.is_some() || !s.queue.is_empty())
    }

    /// Lets idle time pass up to `floor_s` (the GPUs cool as they would).
    pub fn catch_up(&mut self, floor_s: f64) {
        let now = self.sim.now_s();
        if !self.busy() && floor_s > now {
            self.sim.run_flows(&[], floor_s - now);
        }
    }

    /// Whether every op of `context`'s streams has run.
    pub fn context_idle(&self, context: usize) -> bool {
        self.streams
            .iter()
            .filter(|s| s.context == context)
            .all(|s| s.running.is_none() && s.queue.is_empty())
    }

    fn start_heads(&mut self) -> bool {
        let mut changed = false;
        for s in 0..self.streams.len() {
            while self.streams[s].running.is_none() && !self.streams[s].queue.is_empty() {
                let context = self.streams[s].context;
                if self.contexts[context].sticky.is_some() {
                    self.streams[s].queue.clear();
                    changed = true;
                    break;
                }
                let seq = self.streams[s].queue[0].seq;
                if self.waits_on_shared_queue(s, seq) {
                    break;
                }
                match self.start(s) {
                    Start::Blocked => break,
                    Start::Started => {
                        changed = true;
                        break;
                    }
                    Start::Finished => {
                        self.streams[s].finished = seq;
                        changed = true;
                    }
                }
            }
        }
        changed
    }

    /// Whether another stream on the same hardware queue has earlier work not yet done: the
    /// queue is first in, first out, whatever stream the work came from.
    fn waits_on_shared_queue(&self, s: usize, seq: u64) -> bool {
        let me = &self.streams[s];
        let device = self.contexts[me.context].device;
        self.streams.iter().enumerate().any(|(i, other)| {
            i != s
                && other.hardware_queue == me.hardware_queue
                && self.contexts[other.context].device == device
                && (other.running.as_ref().is_some_and(|r| r.seq() < seq)
                    || other.queue.front().is_some_and(|op| op.seq < seq))
        })
    }

    /// Tries to start stream `s`'s next op.
    fn start(&mut self, s: usize) -> Start {
        let context = self.streams[s].context;
        let seq = self.streams[s].queue[0].seq;
        let started = match &self.streams[s].queue[0].what {
            What::Record(event) => {
                self.events[*event].state = EventState::Done(self.sim.now_s());
                Start::Finished
            }
            What::Wait { event, record } => match (self.events[*event].state, record) {
                (EventState::Pending(pending), Some(awaited)) if pending == *awaited => {
                    Start::Blocked
                }
                _ => Start::Finished,
            },
            What::Memset { dst, value, count } => {
                let data = vec![*value; *count as usize];
                if let Err(why) = self.memory.write(*dst, &data) {
                    self.poison(context, "cuMemsetD8Async", &why);
                }
                Start::Finished
            }
            What::Copy { dst, src, bytes } => {
                let (dst, src, bytes) = (*dst, *src, *bytes);
                self.start_engine_copy(s, seq, dst, src, bytes)
            }
            What::Launch {
                function,
                grid,
                block,
                args,
            } => {
                let (function, grid, block, args) = (*function, *grid, *block, args.clone());
                self.start_kernel(s, seq, function, grid, block, &args)
            }
        };
        if !matches!(started, Start::Blocked) {
            self.streams[s].queue.pop_front();
        }
        started
    }

    fn start_engine_copy(&mut self, s: usize, seq: u64, dst: u64, src: u64, bytes: u64) -> Start {
        let context = self.streams[s].context;
        let device = self.contexts[context].device;
        let executor = self.devices[device].gpu;
        let (Some(from), Some(to)) = (
            self.memory.find(src, bytes).map(|a| a.node()),
            self.memory.find(dst, bytes).map(|a| a.node()),
        ) else {
            self.poison(
                context,
                "cuMemcpyAsync",
                &format!(
                    "copy of {bytes} bytes from {src:#x} to {dst:#x}: no allocation holds one end"
                ),
            );
            return Start::Finished;
        };
        let path = self.engine_path(from, to);
        self.run_work(
            s,
            Work {
                seq,
                transfer: Transfer {
                    src: from,
                    dst: to,
                    executor,
                },
                path,
                engine: Engine::Ce,
                left: bytes_left(bytes as f64),
                stuck: false,
                finish: Finish::EngineCopy { dst, src, bytes },
                placement: None,
            },
        );
        Start::Started
    }

    /// The copy engines move bytes peer to peer when the two GPUs' contexts enabled peer access
    /// between them, and stage them through host memory otherwise.
    fn engine_path(&self, from: Node, to: Node) -> Path {
        let path = self.machine().path(from, to);
        let (Node::Gpu(a), Node::Gpu(b)) = (from, to) else {
            return path;
        };
        let enabled = self.contexts.iter().any(|c| {
            let gpu = self.devices[c.device].gpu;
            (gpu == a && c.peers.contains(&b)) || (gpu == b && c.peers.contains(&a))
        });
        if a == b || enabled {
            path
        } else {
            self.machine().staged_path(a, b)
        }
    }

    fn start_kernel(
        &mut self,
        s: usize,
        seq: u64,
        function: usize,
        grid: u32,
        block: u32,
        args: &[u64],
    ) -> Start {
        let context = self.streams[s].context;
        let device = self.contexts[context].device;
        let gpu = self.devices[device].gpu;
        let f = &self.functions[function];
        let (kind, registers, name) = (f.kind, f.registers, f.name.clone());
        let Some(kind) = kind else {
            self.poison(
                context,
                "cuLaunchKernel",
                &format!("the emulation has no double for kernel {name}"),
            );
            return Start::Finished;
        };
        if self.sticky_fault_strikes(gpu) {
            self.contexts[context].sticky = Some(ILLEGAL_ADDRESS);
            log::fault(
                "cuLaunchKernel",
                &format!(
                    "GPU{gpu}'s context faulted at kernel {name} (machine fault sticky_error)"
                ),
            );
            return Start::Finished;
        }
        let needs = BlockNeeds::new(block, registers);
        let Some(placement) = self.sms[device].place(grid, needs) else {
            return Start::Blocked;
        };
        let planned = self.plan_kernel(context, gpu, kind, args);
        let work = match planned {
            Err(why) => {
                self.sms[device].release(&placement);
                self.poison(context, &format!("kernel {name}"), &why);
                return Start::Finished;
            }
            Ok(Planned::Gate {
                flag,
                status,
                timeout_ns,
            }) => {
                self.streams[s].running = Some(Running::Gate {
                    seq,
                    device,
                    started: Instant::now(),
                    flag,
                    status,
                    timeout_ns,
                    placement,
                });
                return Start::Started;
            }
            Ok(Planned::Work(mut work)) => {
                work.seq = seq;
                work.placement = Some((device, placement));
                work
            }
        };
        self.run_work(s, work);
        Start::Started
    }

    /// Whether the machine's `sticky_error` fault for `gpu` strikes at this launch.
    fn sticky_fault_strikes(&mut self, gpu: u32) -> bool {
        self.launches[gpu as usize] += 1;
        let count = self.launches[gpu as usize];
        let strikes = self.machine().spec.faults.iter().any(|f| {
            matches!(f, Fault::StickyError { gpu: g, after_launches } if *g == gpu && u64::from(*after_launches) == count)
        });
        // Once per machine, across probe restarts: the fired faults live in the shared state.
        let bit = 1u64 << (gpu % 64);
        if strikes && self.fired & bit == 0 {
            self.fired |= bit;
            return true;
        }
        false
    }

    /// Turns a kernel's arguments into the work it does, checking what it touches.
    fn plan_kernel(
        &self,
        context: usize,
        gpu: u32,
        kind: Kind,
        args: &[u64],
    ) -> Result<Planned, String> {
        let peers = &self.contexts[context].peers;
        let node = |addr: u64, len: u64| {
            self.memory
                .reachable(gpu, context, peers, addr, len)
                .map(|a| a.node())
        };
        let here = Node::Gpu(gpu);
        Ok(match kind {
            Kind::Gate => {
                node(args[0], 4)?;
                node(args[1], 4)?;
                // The kernel counts SM cycles at the peak clock CUDA reports; the emulation
                // waits in real time.
                let mhz = u64::from(self.machine().gpus[gpu as usize].model.sm_clock_max_mhz);
                Planned::Gate {
                    flag: args[0],
                    status: args[1],
                    timeout_ns: args[2].saturating_mul(1000) / mhz.max(1),
                }
            }
            Kind::Copy => {
                let (dst, src, bytes, repeats) = (args[0], args[1], args[2], args[3]);
                let moved = bytes * repeats;
                if moved == 0 {
                    return Ok(Planned::Work(self.instant(gpu, Finish::Nothing)));
                }
                let (from, to) = (node(src, bytes)?, node(dst, bytes)?);
                let path = self.machine().path(from, to);
                Planned::Work(Work {
                    seq: 0,
                    stuck: self.hangs(from, to),
                    transfer: Transfer {
                        src: from,
                        dst: to,
                        executor: gpu,
                    },
                    path,
                    engine: Engine::Sm,
                    left: bytes_left(moved as f64),
                    finish: Finish::KernelCopy { dst, src, bytes },
                    placement: None,
                })
            }
            Kind::Pattern => {
                let (buf, bytes, seed, mode, result) = (
                    args[0],
                    args[1],
                    args[2] as u32,
                    PatternMode::from_param(args[3] as u32),
                    args[4],
                );
                if bytes == 0 {
                    return Ok(Planned::Work(self.instant(gpu, Finish::Nothing)));
                }
                let home = node(buf, bytes)?;
                // Filling writes from this GPU into the buffer's home; verifying reads back.
                let (from, to) = match mode {
                    PatternMode::Fill => (here, home),
                    PatternMode::Verify => (home, here),
                };
                Planned::Work(Work {
                    seq: 0,
                    stuck: false,
                    transfer: Transfer {
                        src: from,
                        dst: to,
                        executor: gpu,
                    },
                    path: self.machine().path(from, to),
                    engine: Engine::Sm,
                    left: bytes_left(bytes as f64),
                    finish: Finish::Pattern {
                        buf,
                        bytes,
                        seed,
                        mode,
                        result,
                    },
                    placement: None,
                })
            }
            Kind::Chase => {
                let (start, steps, out) = (args[0], args[1], args[2]);
                let home = node(start, 8)?;
                let path = self.machine().path(home, here);
                let seconds = latency_ns(&path) * steps as f64 / 1e9;
                Planned::Work(Work {
                    seq: 0,
                    stuck: self.hangs(home, here),
                    transfer: Transfer {
                        src: home,
                        dst: here,
                        executor: gpu,
                    },
                    path,
                    engine: Engine::Sm,
                    left: Left::Seconds(seconds),
                    finish: Finish::Chase { start, steps, out },
                    placement: None,
                })
            }
        })
    }

    /// Work that ends at once (a copy of nothing).
    fn instant(&self, gpu: u32, finish: Finish) -> Work {
        let here = Node::Gpu(gpu);
        Work {
            seq: 0,
            transfer: Transfer {
                src: here,
                dst: here,
                executor: gpu,
            },
            path: self.machine().path(here, here),
            engine: Engine::Sm,
            left: Left::Seconds(0.0),
            stuck: false,
            finish,
            placement: None,
        }
    }

    /// Whether the machine's `hang` fault holds copies from `from` to `to`.
    fn hangs(&self, from: Node, to: Node) -> bool {
        let hangs = self.machine().hang.contains(&(from, to));
        if hangs {
            log::fault(
                "cuLaunchKernel",
                &format!("a copy {from} → {to} never finishes (machine fault hang)"),
            );
        }
        hangs
    }

    fn run_work(&mut self, s: usize, work: Work) {
        self.streams[s].running = Some(Running::Work(work));
    }

    /// Lets gates whose flag is set, or whose timeout passed, go; true if any still waits.
    fn poll_gates(&mut self, changed: &mut bool) -> bool {
        let mut waiting = false;
        for s in 0..self.streams.len() {
            let Some(Running::Gate {
                started,
                flag,
                status,
                timeout_ns,
                ..
            }) = &self.streams[s].running
            else {
                continue;
            };
            let value = self.read_flag(*flag);
            let waited = started.elapsed().as_nanos() as u64;
            let Some(outcome) = doubles::gate(value, waited, *timeout_ns) else {
                waiting = true;
                continue;
            };
            let status = *status;
            let Some(Running::Gate {
                seq,
                device,
                placement,
                ..
            }) = self.streams[s].running.take()
            else {
                unreachable!("matched a gate above");
            };
            let _ = self.memory.write(status, &outcome.to_le_bytes());
            self.sms[device].release(&placement);
            self.streams[s].finished = seq;
            *changed = true;
        }
        waiting
    }

    /// The gate's flag as the host last wrote it; a flag the kernel cannot read never opens.
    fn read_flag(&self, addr: u64) -> u32 {
        self.memory.read_host_word(addr).unwrap_or(0)
    }

    /// Moves the clock to the next moment a work ends; false when nothing can end.
    fn advance(&mut self) -> bool {
        let State {
            streams,
            sim,
            last_busy_s,
            loaded_power_w,
            ..
        } = self;
        let works: Vec<(usize, &Work)> = streams
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match &s.running {
                Some(Running::Work(w)) if !w.stuck => Some((i, w)),
                _ => None,
            })
            .collect();
        if works.is_empty() {
            return false;
        }
        let moving: Vec<&(usize, &Work)> = works
            .iter()
            .filter(|(_, w)| matches!(w.left, Left::Bytes { .. }))
            .collect();
        let demands: Vec<Demand> = moving
            .iter()
            .map(|(_, w)| Demand {
                alone_gbps: sim
                    .alone_gbps(&w.transfer, &w.path, w.engine)
                    .unwrap_or(0.0),
                path: &w.path,
                direction: Direction::of(&w.transfer),
            })
            .collect();
        let rates = bandwidth::share(&sim.machine, &demands);
        let mut dt = f64::INFINITY;
        for (w, rate) in moving.iter().map(|(_, w)| w).zip(&rates) {
            if let Left::Bytes { left, .. } = w.left
                && *rate > 0.0
            {
                dt = dt.min(left / (rate * 1e9));
            }
        }
        for (_, w) in &works {
            if let Left::Seconds(left) = w.left {
                dt = dt.min(left);
            }
        }
        if !dt.is_finite() {
            return false;
        }
        let rate_of: Vec<(usize, f64)> = moving
            .iter()
            .map(|(i, _)| *i)
            .zip(rates.iter().copied())
            .collect();
        let flows: Vec<Flow> = moving
            .iter()
            .zip(&rates)
            .map(|((_, w), &gbps)| Flow {
                transfer: w.transfer,
                path: &w.path,
                gbps,
            })
            .collect();
        sim.run_flows(&flows, dt);
        let now = sim.now_s();
        let mut ended = Vec::new();
        for (i, stream) in streams.iter_mut().enumerate() {
            let Some(Running::Work(w)) = &mut stream.running else {
                continue;
            };
            if w.stuck {
                continue;
            }
            let done = match &mut w.left {
                Left::Bytes { left, total } => {
                    let rate = rate_of
                        .iter()
                        .find(|(s, _)| *s == i)
                        .map_or(0.0, |(_, r)| *r);
                    *left -= rate * 1e9 * dt;
                    *left <= (*total * 1e-9).max(0.5)
                }
                Left::Seconds(left) => {
                    *left -= dt;
                    *left <= 1e-12
                }
            };
            for node in [
                w.transfer.src,
                w.transfer.dst,
                Node::Gpu(w.transfer.executor),
            ] {
                if let Node::Gpu(g) = node {
                    last_busy_s[g as usize] = now;
                    loaded_power_w[g as usize] = sim.thermal()[g as usize].power_w;
                }
            }
            if done {
                ended.push(i);
            }
        }
        for s in ended {
            self.finish(s);
        }
        true
    }

    /// Ends stream `s`'s work: its bytes land, its blocks are freed, the stream goes on.
    fn finish(&mut self, s: usize) {
        let Some(Running::Work(work)) = self.streams[s].running.take() else {
            return;
        };
        let context = self.streams[s].context;
        if let Some((device, placement)) = &work.placement {
            self.sms[*device].release(placement);
        }
        self.streams[s].finished = work.seq;
        if self.overwritten_next(s, &work) {
            return;
        }
        if let Err(why) = self.land(context, &work) {
            self.poison(context, "a kernel", &why);
        }
    }

    /// Whether the stream's next op is the same copy again (the copy engines get one op per
    /// repeat): it leaves the very same bytes, and nothing can look in between, so only the last
    /// of such a run needs to move them.
    fn overwritten_next(&self, s: usize, work: &Work) -> bool {
        let Finish::EngineCopy { dst, src, bytes } = work.finish else {
            return false;
        };
        matches!(
            self.streams[s].queue.front(),
            Some(Op { what: What::Copy { dst: d, src: r, bytes: b }, .. }) if (*d, *r, *b) == (dst, src, bytes)
        )
    }

    /// Performs what a finished work leaves in memory.
    fn land(&mut self, context: usize, work: &Work) -> Result<(), String> {
        let gpu = work.transfer.executor;
        let peers = self.contexts[context].peers.clone();
        match work.finish {
            Finish::Nothing => Ok(()),
            Finish::KernelCopy { dst, src, bytes } => {
                let mut view = self.memory.seen_by(gpu, context, &peers);
                doubles::copy(&mut view, dst, src, bytes, 1)?;
                self.corrupt_if_faulty(work, dst, bytes)
            }
            Finish::EngineCopy { dst, src, bytes } => {
                let mut data = vec![0u8; bytes as usize];
                self.memory.read(src, &mut data)?;
                self.memory.write(dst, &data)?;
                self.corrupt_if_faulty(work, dst, bytes)
            }
            Finish::Pattern {
                buf,
                bytes,
                seed,
                mode,
                result,
            } => {
                let mut view: KernelView = self.memory.seen_by(gpu, context, &peers);
                doubles::pattern(&mut view, buf, bytes, seed, mode, result)
            }
            Finish::Chase { start, steps, out } => {
                let mut view = self.memory.seen_by(gpu, context, &peers);
                doubles::chase(&mut view, start, steps, out)
            }
        }
    }

    /// The machine's `corrupt` fault: a copy between a faulty pair delivers some wrong bytes.
    fn corrupt_if_faulty(&mut self, work: &Work, dst: u64, bytes: u64) -> Result<(), String> {
        let (from, to) = (work.transfer.src, work.transfer.dst);
        if bytes == 0 || !self.machine().corrupt.contains(&(from, to)) {
            return Ok(());
        }
        let mut rng = fastrand_seeded(work.seq);
        let count = (bytes / 65_536).clamp(1, 64);
        for _ in 0..count {
            let at = dst + rng(bytes);
            let mut byte = [0u8];
            self.memory.read(at, &mut byte)?;
            byte[0] ^= 0x5A;
            self.memory.write(at, &byte)?;
        }
        log::fault(
            "copy",
            &format!(
                "{count} byte(s) of a copy {from} → {to} came out wrong (machine fault corrupt)"
            ),
        );
        Ok(())
    }

    /// Poisons `context` with the sticky error of a faulted kernel, as the GPU does.
    pub fn poison(&mut self, context: usize, call: &str, why: &str) {
        if self.contexts[context].sticky.is_none() {
            self.contexts[context].sticky = Some(ILLEGAL_ADDRESS);
        }
        log::misuse(
            call,
            &format!("{why}; the context is now unusable (CUDA_ERROR_ILLEGAL_ADDRESS)"),
        );
        for s in 0..self.streams.len() {
            if self.streams[s].context != context {
                continue;
            }
            self.streams[s].queue.clear();
            if let Some(running) = self.streams[s].running.take() {
                match running {
                    Running::Gate {
                        device, placement, ..
                    } => self.sms[device].release(&placement),
                    Running::Work(work) => {
                        if let Some((device, placement)) = &work.placement {
                            self.sms[*device].release(placement);
                        }
                    }
                }
            }
        }
    }
}

/// What a kernel's arguments ask for.
enum Planned {
    Gate {
        flag: u64,
        status: u64,
        timeout_ns: u64,
    },
    Work(Work),
}

fn bytes_left(bytes: f64) -> Left {
    Left::Bytes {
        left: bytes,
        total: bytes,
    }
}

/// A small seeded generator of offsets below a bound (splitmix64).
fn fastrand_seeded(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    move |below| {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % below.max(1)
    }
}
