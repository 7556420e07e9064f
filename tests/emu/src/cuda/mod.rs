//! The emulated CUDA driver: the state behind `cu*` calls, the engine thread that runs the GPUs'
//! work on the virtual clock, and the calls themselves ([`api`]).

pub mod api;
pub mod codes;
mod engine;
mod kernels;
mod memory;
mod residency;
mod state;

use crate::config;
use crate::shared::{self, GpuState, Shared, Snapshot};
use memory::Memory;
use p2ptop::sim::machine::Machine;
use p2ptop::sim::simulation::Simulation;
use p2ptop::sim::spec::Fault;
use p2ptop::sim::thermal::Thermal;
use residency::Sms;
use state::{Context, Device, State};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// How often the engine looks at a gate's host flag while one waits.
const GATE_POLL: Duration = Duration::from_micros(50);
/// How often an idle engine lets virtual time catch up with the wall clock and publishes.
const IDLE_TICK: Duration = Duration::from_millis(100);
/// The least wall time between two publications of the state while work runs.
const PUBLISH_EVERY: Duration = Duration::from_millis(2);
/// How long NVML's readings of power, clocks and load average over, virtual seconds.
const NVML_WINDOW_S: f64 = 0.1;
/// Hardware work queues per device unless `CUDA_DEVICE_MAX_CONNECTIONS` says otherwise.
const DEFAULT_CONNECTIONS: usize = 8;
const MAX_CONNECTIONS: usize = 32;

pub struct Driver {
    state: Mutex<State>,
    /// Wakes the engine: new work, or a flag to watch.
    wake: Condvar,
    /// Wakes host threads waiting for work to finish.
    progress: Condvar,
    shared: Shared,
    epoch_us: u64,
    /// Wall time and virtual time when the driver started: the virtual clock never falls
    /// behind the wall clock from here.
    started: Instant,
    start_s: f64,
    /// The CUDA version the driver reports (`12.4` → (12, 4)).
    pub cuda_version: (u32, u32),
}

static DRIVER: OnceLock<Result<Driver, String>> = OnceLock::new();

/// The driver once `cuInit` has succeeded.
pub fn driver() -> Result<&'static Driver, i32> {
    match DRIVER.get() {
        Some(Ok(driver)) => Ok(driver),
        Some(Err(_)) => Err(codes::NO_DEVICE),
        None => Err(codes::NOT_INITIALIZED),
    }
}

/// Starts the driver (once per process): the machine, its state, the engine thread.
pub fn start() -> Result<&'static Driver, i32> {
    let result = DRIVER.get_or_init(|| {
        let driver = Driver::new()?;
        Ok(driver)
    });
    match result {
        Ok(driver) => {
            driver.spawn_engine();
            Ok(driver)
        }
        Err(why) => {
            crate::log::misuse("cuInit", why);
            Err(codes::NO_DEVICE)
        }
    }
}

impl Driver {
    fn new() -> Result<Driver, String> {
        let config = config::load()?;
        let machine = config.machine;
        let shared = Shared::open(&config.state_path, &shared::initial(&machine))?;
        let links: Vec<usize> = machine.gpus.iter().map(|g| g.links.len()).collect();
        let snapshot = shared.read(&links);
        let devices = visible_devices(&machine)?;
        if devices.is_empty() {
            return Err("no GPU of the machine is visible to CUDA".into());
        }
        let cuda_version = parse_version(&machine.host().cuda_version);
        let mut sim = Simulation::new(machine.clone(), 0);
        sim.resume(
            snapshot.now_ns as f64 / 1e9,
            snapshot.gpus.iter().map(|g| g.thermal.clone()).collect(),
            snapshot.gpus.iter().map(|g| g.counters.clone()).collect(),
        );
        let start_s = sim.now_s();
        let gpus = machine.gpus.len();
        let state = State {
            contexts: (0..devices.len())
                .map(|device| Context {
                    device,
                    retained: 0,
                    peers: Default::default(),
                    sticky: None,
                })
                .collect(),
            sms: devices
                .iter()
                .map(|d| Sms::new(d.sm_count, d.limits()))
                .collect(),
            devices,
            streams: Vec::new(),
            events: Vec::new(),
            modules: Vec::new(),
            functions: Vec::new(),
            memory: Memory::default(),
            sim,
            max_connections: max_connections(),
            next_seq: 0,
            launches: vec![0; gpus],
            last_busy_s: snapshot
                .gpus
                .iter()
                .map(|g| g.last_busy_ns as f64 / 1e9)
                .collect(),
            loaded_power_w: snapshot.gpus.iter().map(|g| g.thermal.power_w).collect(),
            fired: snapshot.fired,
        };
        Ok(Driver {
            state: Mutex::new(state),
            wake: Condvar::new(),
            progress: Condvar::new(),
            shared,
            epoch_us: snapshot.epoch_us,
            started: Instant::now(),
            start_s,
            cuda_version,
        })
    }

    fn spawn_engine(&'static self) {
        static SPAWNED: OnceLock<()> = OnceLock::new();
        SPAWNED.get_or_init(|| {
            std::thread::Builder::new()
                .name("p2ptop-emu-engine".into())
                .spawn(move || self.run_engine())
                .expect("start the emulated GPUs' thread");
        });
    }

    /// The engine: runs the GPUs' work, wakes waiting hosts, publishes the state.
    ///
    /// The virtual clock runs ahead of the wall clock while there is work (a copy takes the
    /// model's time, however fast the emulation computes it) and catches up with it only after a
    /// real pause: idle time then lets the GPUs cool as they would. Short gaps while the host
    /// queues the next op do not count, so the host's own speed never changes a measurement.
    fn run_engine(&self) {
        let mut last_publish = Instant::now();
        let mut idle_since: Option<Instant> = None;
        let mut state = self.lock();
        loop {
            let changed = state.step();
            if changed {
                self.progress.notify_all();
            }
            let idle = !state.busy();
            // Idle means nothing ran and nothing waits: a step that did work starts the pause
            // anew, even if that work is already done.
            let since = match (idle && !changed, idle_since) {
                (false, _) => None,
                (true, None) => Some(Instant::now()),
                (true, Some(t)) => Some(t),
            };
            idle_since = since;
            if since.is_some_and(|t| t.elapsed() >= IDLE_TICK) {
                state.catch_up(self.start_s + self.started.elapsed().as_secs_f64());
            }
            if idle || (changed && last_publish.elapsed() >= PUBLISH_EVERY) {
                self.shared.publish(&self.snapshot(&state));
                last_publish = Instant::now();
            }
            let pause = if state.gates_waiting() {
                GATE_POLL
            } else if idle {
                IDLE_TICK
            } else if changed {
                Duration::ZERO
            } else {
                // Everything left waits for a stuck op or for the host: look again now and then.
                GATE_POLL * 20
            };
            if !pause.is_zero() {
                state = self
                    .wake
                    .wait_timeout(state, pause)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
    }

    /// The state for NVML. A GPU that moved bytes within NVML's averaging window reads as
    /// loaded, at the power it last drew under load: the emulation spends its real time
    /// between copies (filling, verifying, the host queueing), which on the virtual clock are
    /// moments, so the instant it publishes is rarely one a sampler on hardware would see.
    fn snapshot(&self, state: &State) -> Snapshot {
        let now = state.sim.now_s();
        Snapshot {
            now_ns: (now * 1e9) as u64,
            epoch_us: self.epoch_us,
            fired: state.fired,
            gpus: (0..state.last_busy_s.len())
                .map(|g| {
                    let busy = state.last_busy_s[g];
                    let mut thermal = state.sim.thermal()[g].clone();
                    if busy > 0.0 && now - busy <= NVML_WINDOW_S {
                        let [temp, thermal_clock, power_clock, _, _] = thermal.parts();
                        thermal = Thermal::from_parts([
                            temp,
                            thermal_clock,
                            power_clock,
                            state.loaded_power_w[g],
                            1.0,
                        ]);
                    }
                    GpuState {
                        thermal,
                        last_busy_ns: (busy * 1e9) as u64,
                        counters: state.sim.counters()[g].clone(),
                    }
                })
                .collect(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held (caught at the API boundary) leaves consistent tables:
        // every change is made in one step.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells the engine there is something new to look at.
    pub(crate) fn kick(&self) {
        self.wake.notify_all();
    }

    /// Blocks the calling host thread until `done` holds, as the driver's synchronous calls do.
    pub(crate) fn wait_until<'a>(
        &self,
        mut state: MutexGuard<'a, State>,
        mut done: impl FnMut(&State) -> bool,
    ) -> MutexGuard<'a, State> {
        self.kick();
        while !done(&state) {
            state = self
                .progress
                .wait_timeout(state, IDLE_TICK)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        state
    }
}

/// The GPUs CUDA shows, in CUDA's order: the machine's, less those a fault hides from CUDA and
/// those in MIG mode (CUDA would show their instances; the emulation has none), filtered by
/// `CUDA_VISIBLE_DEVICES` and ordered by `CUDA_DEVICE_ORDER` (fastest first unless `PCI_BUS_ID`).
fn visible_devices(machine: &Machine) -> Result<Vec<Device>, String> {
    let hidden: Vec<u32> = machine
        .spec
        .faults
        .iter()
        .filter_map(|f| match f {
            Fault::GpuLost { gpu } | Fault::OutsideCgroup { gpu } => Some(*gpu),
            _ => None,
        })
        .chain(
            machine
                .gpus
                .iter()
                .filter(|g| machine.mig(g.index) == Some(true))
                .map(|g| g.index),
        )
        .collect();
    let mut devices: Vec<Device> = machine
        .gpus
        .iter()
        .filter(|g| !hidden.contains(&g.index))
        .map(|g| describe(machine, g.index))
        .collect();
    if std::env::var("CUDA_DEVICE_ORDER").as_deref() != Ok("PCI_BUS_ID") {
        // FASTEST_FIRST: more SMs at a higher clock first; ties keep bus order.
        devices.sort_by_key(|d| std::cmp::Reverse(u64::from(d.sm_count) * u64::from(d.clock_khz)));
    }
    if let Ok(list) = std::env::var("CUDA_VISIBLE_DEVICES") {
        let mut picked = Vec::new();
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            // An ordinal, or a UUID (a unique prefix will do); parsing stops at the first entry
            // that names no visible GPU, as CUDA's does.
            let found = match item.parse::<usize>() {
                Ok(i) => (i < devices.len()).then_some(i),
                Err(_) => devices
                    .iter()
                    .position(|d| machine.uuid(d.gpu).starts_with(item)),
            };
            match found {
                Some(i) if !picked.contains(&i) => picked.push(i),
                _ => break,
            }
        }
        let mut all: Vec<Option<Device>> = devices.into_iter().map(Some).collect();
        devices = picked.into_iter().filter_map(|i| all[i].take()).collect();
    }
    Ok(devices)
}

fn describe(machine: &Machine, gpu: u32) -> Device {
    let g = &machine.gpus[gpu as usize];
    let m = &g.model;
    let capability = parse_version(&m.compute_capability);
    Device {
        gpu,
        name: format!("{} {}", m.name, crate::MARK),
        bus_id: g.bus_id.to_ascii_uppercase(),
        capability,
        sm_count: m.sm_count,
        memory_bytes: m.memory_mib() << 20,
        clock_khz: m.sm_clock_max_mhz * 1000,
        memory_clock_khz: m.mem_clock_max_mhz * 1000,
        l2_bytes: m.l2_cache_bytes() as u32,
        numa_node: g.socket,
    }
}

/// "12.4" → (12, 4); "9.0" → (9, 0).
fn parse_version(text: &str) -> (u32, u32) {
    let (major, minor) = text.split_once('.').unwrap_or((text, "0"));
    (major.parse().unwrap_or(0), minor.parse().unwrap_or(0))
}

fn max_connections() -> usize {
    std::env::var("CUDA_DEVICE_MAX_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(DEFAULT_CONNECTIONS, |n| n.clamp(1, MAX_CONNECTIONS))
}
