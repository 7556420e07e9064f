//! The emulated NVML: the machine's topology as NVML reports it, and its telemetry from the
//! state the emulated CUDA driver shares ([`crate::shared`]).
//!
//! Static answers (names, bus ids, links, P2P status, PCIe maxima, affinities) come from the
//! same [`Topology`] the simulator builds for `--sim`, so `p2ptop topo` on the emulated NVML and
//! `p2ptop --sim NAME topo` describe one machine. Live answers (temperature, clocks, power,
//! throttle reasons, link and PCIe byte counters, the PCIe link trained down at idle) come from
//! the thermal model and counters the CUDA side advanced. GeForce models answer NOT_SUPPORTED
//! where their machine file says real ones do; a function this library does not export answers
//! as an old driver would: its symbol is missing.

pub mod api;
pub mod codes;

use crate::config;
use crate::shared::{self, Shared, Snapshot};
use p2ptop::model::topology::Topology;
use p2ptop::sim::machine::Machine;
use p2ptop::sim::spec::Fault;
use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

/// How long after its last copy a GPU keeps its PCIe link trained up (virtual seconds).
const PCIE_TRAINED_FOR_S: f64 = 1.0;

pub struct Nvml {
    pub machine: Machine,
    pub topology: Topology,
    shared: Shared,
    links_of: Vec<usize>,
    /// The previous PCIe counter readings for the throughput call: (virtual s, tx, rx) per GPU.
    throughput: Mutex<BTreeMap<u32, (f64, f64, f64)>>,
}

static NVML: OnceLock<Result<Nvml, String>> = OnceLock::new();
/// `nvmlInit` calls not yet matched by `nvmlShutdown`.
static OPEN: Mutex<u32> = Mutex::new(0);
/// Calls per entry point since the library was loaded.
static CALLS: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());

/// Why a GPU answers nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unreachable {
    Lost,
    NoPermission,
}

impl Nvml {
    fn new() -> Result<Nvml, String> {
        let config = config::load()?;
        let machine = config.machine;
        let shared = Shared::open(&config.state_path, &shared::initial(&machine))?;
        Ok(Nvml {
            topology: machine.topology(),
            links_of: machine.gpus.iter().map(|g| g.links.len()).collect(),
            machine,
            shared,
            throughput: Mutex::new(BTreeMap::new()),
        })
    }

    /// The live state the CUDA side last published.
    pub fn now(&self) -> Snapshot {
        self.shared.read(&self.links_of)
    }

    /// Whether a fault keeps NVML from the GPU.
    pub fn unreachable(&self, gpu: u32) -> Option<Unreachable> {
        self.machine.spec.faults.iter().find_map(|f| match f {
            Fault::GpuLost { gpu: g } if *g == gpu => Some(Unreachable::Lost),
            Fault::OutsideCgroup { gpu: g } if *g == gpu => Some(Unreachable::NoPermission),
            _ => None,
        })
    }

    /// Whether the GPU's model gives this reading (see `p2ptop::sim::READINGS`).
    pub fn supports(&self, gpu: u32, reading: &str) -> bool {
        !self.machine.gpus[gpu as usize]
            .model
            .unsupported
            .iter()
            .any(|u| u == reading)
    }

    /// PCIe generation and width now: trained up while the GPU moves bytes, down to 2.5 GT/s a
    /// while after, as idle GPUs save power.
    pub fn pcie_now(&self, gpu: u32) -> (u32, u32) {
        let g = &self.machine.gpus[gpu as usize];
        let state = self.now();
        let now_s = state.now_ns as f64 / 1e9;
        let busy_s = state.gpus[gpu as usize].last_busy_ns as f64 / 1e9;
        let loaded =
            state.gpus[gpu as usize].last_busy_ns > 0 && now_s - busy_s <= PCIE_TRAINED_FOR_S;
        if loaded {
            g.pcie_trained
        } else {
            (1, g.pcie_trained.1)
        }
    }

    /// KiB/s over the PCIe link since the previous call for this GPU (NVML's own window is
    /// 20 ms; the emulation's is the time between calls).
    pub fn pcie_throughput_kib_s(&self, gpu: u32, tx: bool) -> u32 {
        let state = self.now();
        let now_s = state.now_ns as f64 / 1e9;
        let c = &state.gpus[gpu as usize].counters;
        let mut previous = self.throughput.lock().unwrap_or_else(|e| e.into_inner());
        let (then_s, then_tx, then_rx) = previous
            .insert(gpu, (now_s, c.pcie_tx, c.pcie_rx))
            .unwrap_or((now_s, c.pcie_tx, c.pcie_rx));
        let dt = now_s - then_s;
        if dt <= 0.0 {
            return 0;
        }
        let bytes = if tx {
            c.pcie_tx - then_tx
        } else {
            c.pcie_rx - then_rx
        };
        (bytes / dt / 1024.0).clamp(0.0, f64::from(u32::MAX)) as u32
    }
}

/// The library once `nvmlInit` has succeeded and until the matching `nvmlShutdown`.
pub fn nvml() -> Result<&'static Nvml, u32> {
    if *OPEN.lock().unwrap_or_else(|e| e.into_inner()) == 0 {
        return Err(codes::UNINITIALIZED);
    }
    match NVML.get() {
        Some(Ok(nvml)) => Ok(nvml),
        _ => Err(codes::UNINITIALIZED),
    }
}

pub fn init() -> Result<(), u32> {
    match NVML.get_or_init(Nvml::new) {
        Ok(_) => {
            *OPEN.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            Ok(())
        }
        Err(why) => {
            crate::log::misuse("nvmlInit", why);
            Err(codes::DRIVER_NOT_LOADED)
        }
    }
}

pub fn shutdown() -> Result<(), u32> {
    let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
    if *open == 0 {
        return Err(codes::UNINITIALIZED);
    }
    *open -= 1;
    Ok(())
}

/// Counts one call of `name`.
pub fn count(name: &'static str) {
    *CALLS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(name)
        .or_default() += 1;
}

/// Every entry point called so far with its count, one `name count` per line.
pub fn calls() -> String {
    CALLS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(name, n)| format!("{name} {n}\n"))
        .collect()
}
