//! Everything the emulated driver keeps: devices, contexts, streams, events, modules, memory, the
//! SMs' residency, the simulation behind the virtual clock, and the handles that name them.

use super::engine::{Op, Running};
use super::kernels::{Function, Module};
use super::memory::Memory;
use super::residency::{SmLimits, Sms};
use p2ptop::sim::machine::Machine;
use p2ptop::sim::simulation::Simulation;
use std::collections::{BTreeSet, VecDeque};
use std::ffi::c_void;

/// A GPU as CUDA shows it.
pub struct Device {
    /// Its index in the machine (NVML's order).
    pub gpu: u32,
    pub name: String,
    /// `0000:1B:00.0`, as cuDeviceGetPCIBusId writes it.
    pub bus_id: String,
    pub capability: (u32, u32),
    pub sm_count: u32,
    pub memory_bytes: u64,
    pub clock_khz: u32,
    pub memory_clock_khz: u32,
    pub l2_bytes: u32,
    /// The NUMA node of the host memory nearest it.
    pub numa_node: u32,
}

impl Device {
    pub fn limits(&self) -> SmLimits {
        SmLimits::for_capability(self.capability.0, self.capability.1)
    }
}

/// A device's primary context.
pub struct Context {
    pub device: usize,
    /// Retains minus releases; the context exists while this is above zero.
    pub retained: u32,
    /// Machine GPU indices whose memory this context may touch (peer access enabled).
    pub peers: BTreeSet<u32>,
    /// A fault that poisoned the context: every later call in it returns this code.
    pub sticky: Option<i32>,
}

pub struct Stream {
    pub context: usize,
    pub queue: VecDeque<Op>,
    pub running: Option<Running>,
    /// The hardware work queue it shares with every `max_connections`-th stream of its device.
    pub hardware_queue: usize,
    /// Sequence number of the last op this stream finished.
    pub finished: u64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EventState {
    Unrecorded,
    /// Recorded; the op with this sequence number has not run yet.
    Pending(u64),
    /// Reached at this virtual time.
    Done(f64),
}

pub struct Event {
    pub context: usize,
    pub timing: bool,
    pub state: EventState,
}

pub struct State {
    pub devices: Vec<Device>,
    pub contexts: Vec<Context>,
    pub streams: Vec<Stream>,
    pub events: Vec<Event>,
    pub modules: Vec<Module>,
    pub functions: Vec<Function>,
    pub memory: Memory,
    pub sms: Vec<Sms>,
    pub sim: Simulation,
    /// Streams per device that share one hardware queue (`CUDA_DEVICE_MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// The next op's sequence number; ops are numbered in the order they are issued.
    pub next_seq: u64,
    /// Kernel launches per machine GPU, for faults that strike after so many.
    pub launches: Vec<u64>,
    /// The virtual moment each machine GPU last moved bytes.
    pub last_busy_s: Vec<f64>,
    /// Each machine GPU's power the last time it was loaded.
    pub loaded_power_w: Vec<f64>,
    /// Machine GPUs whose once-only fault has struck, one bit each (kept in the shared state).
    pub fired: u64,
}

impl State {
    pub fn machine(&self) -> &Machine {
        &self.sim.machine
    }

    pub fn take_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// The device of a context.
    pub fn device_of(&self, context: usize) -> &Device {
        &self.devices[self.contexts[context].device]
    }

    /// Streams of one device, in creation order.
    pub fn streams_on(&self, device: usize) -> usize {
        self.streams
            .iter()
            .filter(|s| self.contexts[s.context].device == device)
            .count()
    }
}

/// The kinds of handle the driver hands out. Each is a distinct range of pointer-sized numbers,
/// so a handle of one kind passed for another, or a made-up one, is recognised as invalid.
#[derive(Clone, Copy)]
pub enum Kind {
    Context,
    Stream,
    Event,
    Module,
    Function,
}

impl Kind {
    fn base(self) -> usize {
        match self {
            Kind::Context => 0x0C0E_0000_0000,
            Kind::Stream => 0x057E_0000_0000,
            Kind::Event => 0x0E7E_0000_0000,
            Kind::Module => 0x0D0D_0000_0000,
            Kind::Function => 0x0F0F_0000_0000,
        }
    }
}

const HANDLE_STRIDE: usize = 64;

pub fn handle(kind: Kind, index: usize) -> *mut c_void {
    (kind.base() + (index + 1) * HANDLE_STRIDE) as *mut c_void
}

/// The table index behind `handle`, if it is a handle of this kind below `count`.
pub fn index(kind: Kind, handle: *mut c_void, count: usize) -> Option<usize> {
    let offset = (handle as usize).checked_sub(kind.base())?;
    if offset == 0 || !offset.is_multiple_of(HANDLE_STRIDE) {
        return None;
    }
    let index = offset / HANDLE_STRIDE - 1;
    (index < count).then_some(index)
}
