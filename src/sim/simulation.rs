//! A simulated machine running in simulated time: it answers the probe's commands (as a
//! [`Measurer`], so the probe's own command loop drives it) and the telemetry sampler's reads,
//! with the same event types as the real probe and NVML.
//!
//! Time advances only by what is simulated (samples, idle gaps), so a run is deterministic for a
//! seed; the live driver paces it against the wall clock.

use super::bandwidth::{self, Demand, Direction};
use super::machine::{LinkEnd, Machine};
use super::paths::{Path, Route};
use super::thermal::Thermal;
use crate::model::telemetry::{ErrorDeltas, GpuTelemetry, LinkTraffic, TelemetryFrame};
use crate::probe::plan::{self, Transfer};
use crate::probe::protocol::{
    DirectionSample, DirectionSummary, Engine, Event, FailureKind, Node, Op, Pair, Settings,
    Verification,
};
use crate::probe::session::{self, Control, Failure, Finish, Measurer};

/// Relative spread of simulated samples (about 0.5% standard deviation).
const NOISE: f64 = 0.01;
/// Load on a GPU whose memory is the far end of a copy (its memory works, its SMs idle).
const FAR_END_LOAD: f64 = 0.3;

/// Cumulative bytes through one GPU's links since the simulation started.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters {
    pub pcie_tx: f64,
    pub pcie_rx: f64,
    /// Per NVLink, in the GPU's link order.
    pub nvlink_tx: Vec<f64>,
    pub nvlink_rx: Vec<f64>,
}

/// One transfer running at a rate.
pub struct Flow<'a> {
    pub transfer: Transfer,
    pub path: &'a Path,
    pub gbps: f64,
}

pub struct Simulation {
    pub machine: Machine,
    now_s: f64,
    thermal: Vec<Thermal>,
    counters: Vec<Counters>,
    /// Counters and time at the previous telemetry frame, for rates.
    last_frame: Option<(f64, Vec<Counters>)>,
    rng: fastrand::Rng,
}

impl Simulation {
    pub fn new(machine: Machine, seed: u64) -> Simulation {
        let ambient = machine.host().ambient_c;
        let thermal = machine
            .gpus
            .iter()
            .map(|g| Thermal::settled(g, ambient))
            .collect();
        let counters = machine
            .gpus
            .iter()
            .map(|g| Counters {
                nvlink_tx: vec![0.0; g.links.len()],
                nvlink_rx: vec![0.0; g.links.len()],
                ..Counters::default()
            })
            .collect();
        Simulation {
            machine,
            now_s: 0.0,
            thermal,
            counters,
            last_frame: None,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// Simulated seconds since the start.
    pub fn now_s(&self) -> f64 {
        self.now_s
    }

    /// Lets time pass with nothing running.
    pub fn idle(&mut self, seconds: f64) {
        self.run_flows(&[], seconds);
    }

    /// Every GPU's heat and clocks, in GPU order.
    pub fn thermal(&self) -> &[Thermal] {
        &self.thermal
    }

    /// Every GPU's cumulative link counters, in GPU order.
    pub fn counters(&self) -> &[Counters] {
        &self.counters
    }

    /// Continues from a state another simulation of the same machine reached (the emulated
    /// drivers hand it from one process to the next).
    pub fn resume(&mut self, now_s: f64, thermal: Vec<Thermal>, counters: Vec<Counters>) {
        assert_eq!(thermal.len(), self.machine.gpus.len(), "one state per GPU");
        assert_eq!(counters.len(), self.machine.gpus.len(), "one state per GPU");
        self.now_s = now_s;
        self.thermal = thermal;
        self.counters = counters;
    }

    /// What a transfer reaches alone right now, or why it cannot run.
    pub fn alone_gbps(&self, t: &Transfer, path: &Path, engine: Engine) -> Result<f64, Failure> {
        let efficiency = bandwidth::efficiency(path.route, Direction::of(t), engine)
            .ok_or_else(|| no_peer_access(t))?;
        // The SMs issue every request of an SM copy: lower clocks, fewer bytes in flight.
        let clocks = match engine {
            Engine::Sm => self.thermal[t.executor as usize].clock_share(),
            Engine::Ce => 1.0,
        };
        let gbps = self.machine.path_line_rate(path) * efficiency * clocks;
        Ok(match path.route {
            Route::Staged => bandwidth::staged_gbps(gbps, self.machine.staging_ms_per_gb()),
            _ => gbps,
        })
    }

    /// Rates for the transfers of one sample, sharing what they share. Transfers with peer
    /// access (and host paths) run at once; copies staged through host memory run one after
    /// another, each beside the others, because the driver returns from a staged copy only
    /// once it is done and the probe issues them from one thread (the emulated driver does the
    /// same), so two staged copies never meet in one sample.
    fn rates(
        &self,
        transfers: &[Transfer],
        paths: &[Path],
        engine: Engine,
    ) -> Result<Vec<f64>, Failure> {
        let demands = transfers
            .iter()
            .zip(paths)
            .map(|(t, path)| {
                Ok(Demand {
                    alone_gbps: self.alone_gbps(t, path, engine)?,
                    path,
                    direction: Direction::of(t),
                })
            })
            .collect::<Result<Vec<_>, Failure>>()?;
        let (staged, direct): (Vec<usize>, Vec<usize>) =
            (0..demands.len()).partition(|&i| paths[i].route == Route::Staged);
        if staged.len() <= 1 {
            return Ok(bandwidth::share(&self.machine, &demands));
        }
        let beside = |one: usize| -> Vec<f64> {
            let group: Vec<Demand> = direct
                .iter()
                .chain([&one])
                .map(|&i| demands[i].clone())
                .collect();
            bandwidth::share(&self.machine, &group)
        };
        let mut rates = vec![0.0; demands.len()];
        for (n, &one) in staged.iter().enumerate() {
            let shared = beside(one);
            rates[one] = shared[direct.len()];
            if n == 0 {
                for (k, &i) in direct.iter().enumerate() {
                    rates[i] = shared[k];
                }
            }
        }
        Ok(rates)
    }

    /// Lets `seconds` pass with `flows` running: heat, power, clocks and link counters follow.
    pub fn run_flows(&mut self, flows: &[Flow], seconds: f64) {
        let ambient = self.machine.host().ambient_c;
        let mut load = vec![0.0f64; self.machine.gpus.len()];
        for f in flows {
            for node in [f.transfer.src, f.transfer.dst] {
                if let Node::Gpu(g) = node {
                    load[g as usize] = load[g as usize].max(FAR_END_LOAD);
                }
            }
            load[f.transfer.executor as usize] = 1.0;
            self.count_bytes(f, f.gbps * 1e9 * seconds);
        }
        for (i, gpu) in self.machine.gpus.iter().enumerate() {
            self.thermal[i].advance(gpu, ambient, load[i], seconds);
        }
        self.now_s += seconds;
    }

    fn count_bytes(&mut self, f: &Flow, bytes: f64) {
        let (src, dst) = (f.transfer.src, f.transfer.dst);
        match f.path.route {
            Route::DeviceLocal => {}
            Route::NvLink => {
                let (Node::Gpu(a), Node::Gpu(b)) = (src, dst) else {
                    return;
                };
                self.spread_over_links(a, b, bytes, true);
                self.spread_over_links(b, a, bytes, false);
            }
            Route::Pcie | Route::Staged => {
                if let Node::Gpu(a) = src {
                    self.counters[a as usize].pcie_tx += bytes;
                }
                if let Node::Gpu(b) = dst {
                    self.counters[b as usize].pcie_rx += bytes;
                }
            }
        }
    }

    /// Counts `bytes` on `gpu`'s active links towards `peer` (directly or through the switch).
    fn spread_over_links(&mut self, gpu: u32, peer: u32, bytes: f64, sending: bool) {
        let links = &self.machine.gpus[gpu as usize].links;
        let direct = links
            .iter()
            .any(|l| l.active && l.end == LinkEnd::Gpu(peer));
        let used: Vec<usize> = links
            .iter()
            .enumerate()
            .filter(|(_, l)| l.active)
            .filter(|(_, l)| {
                if direct {
                    l.end == LinkEnd::Gpu(peer)
                } else {
                    l.end == LinkEnd::Switch
                }
            })
            .map(|(i, _)| i)
            .collect();
        let c = &mut self.counters[gpu as usize];
        let counter = if sending {
            &mut c.nvlink_tx
        } else {
            &mut c.nvlink_rx
        };
        for &i in &used {
            counter[i] += bytes / used.len() as f64;
        }
    }

    /// A multiplicative jitter around 1 (a sum of uniforms: roughly normal, bounded).
    fn jitter(&mut self) -> f64 {
        let sum: f64 = (0..3).map(|_| self.rng.f64()).sum();
        1.0 + (sum - 1.5) * NOISE
    }

    fn check_nodes(&self, pair: Pair) -> Result<(), Failure> {
        for node in [pair.src, pair.dst] {
            if let Node::Gpu(g) = node
                && g as usize >= self.machine.gpus.len()
            {
                return Err(Failure::new(
                    FailureKind::Invalid,
                    format!(
                        "GPU{g} does not exist: CUDA sees {} GPU(s), numbered from 0",
                        self.machine.gpus.len()
                    ),
                ));
            }
        }
        Ok(())
    }

    fn hangs(&self, t: &Transfer) -> bool {
        self.machine.hang.contains(&(t.src, t.dst))
    }

    /// The largest share of samples whose start gate times out among `transfers` (0 if none).
    fn gate_timeout_share(&self, transfers: &[Transfer]) -> f64 {
        transfers
            .iter()
            .filter_map(|t| {
                self.machine
                    .gate_timeout
                    .iter()
                    .find(|(pair, _)| *pair == (t.src, t.dst))
                    .map(|(_, share)| *share)
            })
            .fold(0.0, f64::max)
    }

    /// The destination check of one sample: clean, or a corrupting pair's damage.
    fn verification(&mut self, transfers: &[Transfer], buffer_bytes: u64) -> Verification {
        let mut v = Verification::default();
        for t in transfers {
            if self.machine.corrupt.contains(&(t.src, t.dst)) {
                let bad = self.rng.u64(1..=(buffer_bytes / 4096).max(1));
                let offset = self.rng.u64(0..buffer_bytes) & !15;
                v.merge(Verification {
                    mismatched_bytes: bad,
                    first_bad_offset: Some(offset),
                });
            }
        }
        v
    }

    /// Measures `groups` (each a pair and its transfers) at once: one sample times every
    /// transfer together, so they share what they cross. Events are per pair, as the probe's.
    fn bandwidth(
        &mut self,
        id: u64,
        groups: &[(Pair, Vec<Transfer>)],
        op: Op,
        engine: Engine,
        settings: &Settings,
        control: &mut dyn Control,
    ) -> Result<Finish, Failure> {
        let transfers: Vec<Transfer> = groups.iter().flat_map(|(_, t)| t.clone()).collect();
        let paths: Vec<Path> = transfers
            .iter()
            .map(|t| self.machine.path(t.src, t.dst))
            .collect();
        let buffer = settings.buffer_mib << 20;
        if let Some(t) = transfers.iter().find(|t| self.hangs(t)) {
            self.idle(settings.sample_timeout_ms as f64 / 1e3);
            return Err(hung(t.executor, &format!("a warm-up copy {t}"), settings));
        }
        let rates = self.rates(&transfers, &paths, engine)?;
        let fastest = rates.iter().cloned().fold(0.0, f64::max);
        let one_pass_ms = buffer as f64 / (fastest * 1e9) * 1e3;
        let repeats = plan::repeats(settings, one_pass_ms, engine);
        let warmup_s = one_pass_ms / 1e3 * f64::from(settings.warmup.max(1));
        self.run_at(&transfers, &paths, &rates, warmup_s);
        let mut per_transfer = vec![Vec::new(); transfers.len()];
        let mut joined = Vec::new();
        let mut verification = vec![Verification::default(); groups.len()];
        let moved = buffer * u64::from(repeats);
        let gate_share = self.gate_timeout_share(&transfers);
        let (mut attempts, mut rejected) = (0u32, 0u32);
        let mut index = 0;
        while index < settings.samples {
            if control.stop_requested() {
                return Ok(Finish::Stopped);
            }
            // As the probe does: a sample whose gate timed out is thrown away and another
            // taken, until more have been thrown away than were asked for. The rejected
            // attempts are spread evenly over the attempts, `gate_share` of them.
            attempts += 1;
            let gate_times_out = (f64::from(attempts) * gate_share).floor()
                > (f64::from(attempts - 1) * gate_share).floor();
            if gate_times_out {
                self.idle(settings.gate_timeout_ms as f64 / 1e3);
                rejected += 1;
                if rejected > settings.samples {
                    return Err(gate_timed_out(rejected, settings));
                }
                continue;
            }
            // Rates now, after the heat of the samples before.
            let rates = self.rates(&transfers, &paths, engine)?;
            let samples: Vec<DirectionSample> = transfers
                .iter()
                .zip(&rates)
                .map(|(t, &gbps)| {
                    let gbps = gbps * self.jitter();
                    t.sample(moved, moved as f64 / (gbps * 1e9))
                })
                .collect();
            // Staged copies run one after another (see `rates`): the sample lasts their sum,
            // and over it each moves its bytes once.
            let staged = |i: &usize| paths[*i].route == Route::Staged;
            let one_by_one: f64 = (0..samples.len())
                .filter(staged)
                .map(|i| samples[i].seconds)
                .sum();
            let longest = samples.iter().map(|d| d.seconds).fold(one_by_one, f64::max);
            joined.push((moved * samples.len() as u64) as f64 / longest / 1e9);
            let averaged: Vec<f64> = (0..rates.len())
                .map(|i| match staged(&i) {
                    true => moved as f64 / longest / 1e9,
                    false => rates[i],
                })
                .collect();
            self.run_at(&transfers, &paths, &averaged, longest);
            for (values, d) in per_transfer.iter_mut().zip(&samples) {
                values.push(d.gbps);
            }
            let mut next = samples.into_iter();
            for ((pair, group), checked_so_far) in groups.iter().zip(&mut verification) {
                let checked = self.verification(group, buffer);
                checked_so_far.merge(checked);
                control.emit(Event::Sample {
                    id,
                    pair: *pair,
                    op,
                    engine,
                    index,
                    directions: next.by_ref().take(group.len()).collect(),
                    verification: checked,
                });
            }
            index += 1;
        }
        let mut values = per_transfer.iter();
        for ((pair, group), verification) in groups.iter().zip(verification) {
            let directions: Vec<DirectionSummary> = group
                .iter()
                .zip(values.by_ref())
                .filter_map(|(t, values)| t.summary(values))
                .collect();
            control.emit(Event::Result {
                id,
                pair: *pair,
                op,
                engine,
                buffer_mib: settings.buffer_mib,
                repeats,
                samples: settings.samples,
                rejected_samples: rejected,
                total_gbps: directions.iter().map(|d| d.median_gbps).sum(),
                directions,
                verification,
            });
        }
        if groups.len() > 1
            && let Some(s) = crate::probe::stats::summarize(&joined)
        {
            control.emit(Event::StressTotal {
                id,
                op,
                engine,
                samples: settings.samples,
                median_gbps: s.median,
                min_gbps: s.min,
                max_gbps: s.max,
                cv: s.cv,
            });
        }
        Ok(Finish::Complete)
    }

    fn run_at(&mut self, transfers: &[Transfer], paths: &[Path], rates: &[f64], seconds: f64) {
        let flows: Vec<Flow> = transfers
            .iter()
            .zip(paths)
            .zip(rates)
            .map(|((&transfer, path), &gbps)| Flow {
                transfer,
                path,
                gbps,
            })
            .collect();
        self.run_flows(&flows, seconds);
    }

    fn latency(
        &mut self,
        id: u64,
        pair: Pair,
        t: Transfer,
        settings: &Settings,
        control: &mut dyn Control,
    ) -> Result<Finish, Failure> {
        if self.hangs(&t) {
            self.idle(settings.sample_timeout_ms as f64 / 1e3);
            return Err(hung(t.executor, &format!("a pointer chase {t}"), settings));
        }
        let path = self.machine.path(pair.src, pair.dst);
        if path.route == Route::Staged {
            return Err(no_peer_access(&t));
        }
        let ns = latency_ns(&path) * self.jitter();
        self.idle(ns * settings.latency_steps as f64 / 1e9);
        control.emit(Event::Latency {
            id,
            pair,
            executor: t.executor,
            steps: settings.latency_steps,
            ns_per_access: ns,
            chain_ok: true,
        });
        Ok(Finish::Complete)
    }

    /// Every GPU's readings now; rates cover the time since the previous frame.
    pub fn telemetry(&mut self) -> TelemetryFrame {
        let ambient = self.machine.host().ambient_c;
        let previous = self.last_frame.take();
        let mut gpus = Vec::new();
        for (i, gpu) in self.machine.gpus.iter().enumerate() {
            let th = &self.thermal[i];
            let m = &gpu.model;
            let supports = |reading: &str| !m.unsupported.iter().any(|u| u == reading);
            let c = &self.counters[i];
            let rate = |now: f64, pick: &dyn Fn(&Counters) -> f64| {
                let (then_s, before) = previous.as_ref()?;
                let dt = self.now_s - then_s;
                (dt > 0.0).then(|| (now - pick(&before[i])) / dt / 1e9)
            };
            let nvlink_supported = supports("nvlink_counters");
            gpus.push(GpuTelemetry {
                gpu: gpu.index,
                temp_c: Some((th.temp_c * 10.0).round() / 10.0),
                slowdown_temp_c: supports("thresholds").then_some(m.slowdown_c),
                shutdown_temp_c: supports("thresholds").then_some(m.shutdown_c),
                sm_clock_mhz: Some(th.sm_clock_mhz(gpu)),
                sm_clock_max_mhz: Some(m.sm_clock_max_mhz),
                mem_clock_mhz: Some(th.mem_clock_mhz(gpu)),
                mem_clock_max_mhz: Some(m.mem_clock_max_mhz),
                power_w: supports("power").then_some((th.power_w * 10.0).round() / 10.0),
                power_limit_w: supports("power").then_some(gpu.power_limit_w),
                fan_percent: m.has_fan.then(|| th.fan_percent(gpu, ambient)),
                throttle: Some(th.reasons()),
                pcie_gen: Some(gpu.pcie_trained.0),
                pcie_width: Some(gpu.pcie_trained.1),
                pcie_tx_gbps: supports("pcie_counters")
                    .then(|| rate(c.pcie_tx, &|c| c.pcie_tx))
                    .flatten(),
                pcie_rx_gbps: supports("pcie_counters")
                    .then(|| rate(c.pcie_rx, &|c| c.pcie_rx))
                    .flatten(),
                nvlinks: (0..gpu.links.len())
                    .map(|l| LinkTraffic {
                        link: l as u32,
                        tx_gbps: nvlink_supported
                            .then(|| rate(c.nvlink_tx[l], &|c| c.nvlink_tx[l]))
                            .flatten(),
                        rx_gbps: nvlink_supported
                            .then(|| rate(c.nvlink_rx[l], &|c| c.nvlink_rx[l]))
                            .flatten(),
                    })
                    .collect(),
                // The simulator injects no link errors: the counters stay at zero.
                errors: if supports("errors") {
                    ErrorDeltas {
                        nvlink_replay: (!gpu.links.is_empty()).then_some(0),
                        nvlink_recovery: (!gpu.links.is_empty()).then_some(0),
                        nvlink_crc: (!gpu.links.is_empty()).then_some(0),
                        pcie_replay: Some(0),
                    }
                } else {
                    ErrorDeltas::default()
                },
            });
        }
        self.last_frame = Some((self.now_s, self.counters.clone()));
        TelemetryFrame {
            at_ms: (self.now_s * 1e3).round() as u64,
            gpus,
        }
    }
}

/// The probe's answer when a kernel would have to cross a pair without peer access.
fn no_peer_access(t: &Transfer) -> Failure {
    let other = if Node::Gpu(t.executor) == t.src {
        t.dst
    } else {
        t.src
    };
    Failure::new(
        FailureKind::Unsupported,
        format!(
            "GPU{} cannot access {other}'s memory (cuDeviceCanAccessPeer = 0), so no kernel can \
             run across this pair; the copy engines (engine ce) can still copy, staged through \
             host memory",
            t.executor
        ),
    )
}

/// The probe's failure when more samples' start gates timed out than samples were asked for.
fn gate_timed_out(rejected: u32, settings: &Settings) -> Failure {
    Failure::new(
        FailureKind::GateTimeout,
        format!(
            "{rejected} samples' start gates timed out after {} ms: the host could not queue \
             the work in time, so no sample can be trusted",
            settings.gate_timeout_ms
        ),
    )
}

fn hung(executor: u32, what: &str, settings: &Settings) -> Failure {
    Failure {
        kind: FailureKind::Hung,
        message: format!(
            "{what} on GPU{executor} did not finish within {} ms: the path or the GPU is hung; \
             the probe exits, restart it without this pair",
            settings.sample_timeout_ms
        ),
        cuda_error: None,
        fatal: true,
    }
}

/// Nanoseconds per dependent access over a path (modelled, not calibrated against a
/// published figure): local memory ~0.6 µs, NVLink ~1.5 µs, PCIe ~1.8 µs plus 0.15 µs per hop.
pub fn latency_ns(path: &Path) -> f64 {
    match path.route {
        Route::DeviceLocal => 600.0,
        Route::NvLink => 1500.0,
        Route::Pcie | Route::Staged => 1800.0 + 150.0 * path.resources.len() as f64,
    }
}

impl Measurer for Simulation {
    fn measure(
        &mut self,
        id: u64,
        pair: Pair,
        op: Op,
        engine: Engine,
        settings: &Settings,
        control: &mut dyn Control,
    ) -> Result<Finish, Failure> {
        self.check_nodes(pair)?;
        let transfers =
            plan::transfers(pair, op).map_err(|m| Failure::new(FailureKind::Invalid, m))?;
        match op {
            Op::Latency => self.latency(id, pair, transfers[0], settings, control),
            _ => self.bandwidth(id, &[(pair, transfers)], op, engine, settings, control),
        }
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
            let planned = self.check_nodes(pair).and_then(|()| {
                let transfers =
                    plan::transfers(pair, op).map_err(|m| Failure::new(FailureKind::Invalid, m))?;
                for t in &transfers {
                    let path = self.machine.path(t.src, t.dst);
                    self.alone_gbps(t, &path, engine)?;
                }
                Ok(transfers)
            });
            match planned {
                Ok(transfers) => groups.push((pair, transfers)),
                Err(failure) => control.emit(session::pair_error(id, pair, op, engine, &failure)),
            }
        }
        if groups.is_empty() {
            return Ok(Finish::Complete);
        }
        self.bandwidth(id, &groups, op, engine, settings, control)
    }
}
