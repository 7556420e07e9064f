//! What has been measured so far, cell by cell: the state the live view draws and the headless
//! reports print. It is built only from [`Feed`]s, so a simulated run and a real one fill it the
//! same way.

use super::feed::Feed;
use crate::model::capacity::{self, Capacity, Trained};
use crate::model::telemetry::{GpuTelemetry, TelemetryFrame};
use crate::model::topology::LinkType;
use crate::model::topology::Topology;
use crate::probe::protocol::{
    DirectionSummary, Engine, Event, FailureKind, Node, Op, Pair, Verification,
};
use crate::report::seen::TelemetrySeen;
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

/// Samples kept per cell for the spread of its figures.
pub const HISTORY: usize = 120;

/// How far back the telemetry and bandwidth histories reach, seconds.
pub const HISTORY_SECONDS: f64 = 300.0;

/// Points kept at most per history, whatever the interval (a bound on memory and drawing).
pub const HISTORY_POINTS: usize = 1200;

/// Where a measurement sits in the matrix: the flow (src → dst), the op and the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CellKey {
    pub src: Node,
    pub dst: Node,
    pub op: Op,
    pub engine: Engine,
}

/// A finished measurement of one cell.
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    /// The one direction's median, or for bidir the sum of both directions' medians.
    pub total_gbps: f64,
    pub directions: Vec<DirectionSummary>,
    pub verification: Verification,
    pub buffer_mib: u64,
    pub repeats: u32,
    pub samples: u32,
    /// A GPU that took part was throttling (thermal, power, hardware slowdown) at the last
    /// telemetry frame before the result.
    pub throttled: bool,
}

/// Why a cell has no figure.
#[derive(Clone, Debug, PartialEq)]
pub struct CellFailure {
    pub kind: FailureKind,
    pub message: String,
    pub cuda_error: Option<i32>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cell {
    pub last: Option<Measured>,
    /// Per-sample totals, oldest first (at most [`HISTORY`]).
    pub history: VecDeque<f64>,
    /// Per-sample totals with the telemetry time they came at (seconds), oldest first, over
    /// the last [`HISTORY_SECONDS`] (at most [`HISTORY_POINTS`]).
    pub timeline: VecDeque<(f64, f64)>,
    pub failure: Option<CellFailure>,
}

impl Cell {
    /// Coefficient of variation of the kept history (0 with fewer than two samples).
    pub fn history_cv(&self) -> f64 {
        let values: Vec<f64> = self.history.iter().copied().collect();
        crate::probe::stats::summarize(&values).map_or(0.0, |s| s.cv)
    }
}

/// Everything measured and read so far.
#[derive(Clone, Debug)]
pub struct Board {
    pub topology: Topology,
    /// The preset or file name when the machine is simulated.
    pub simulated: Option<String>,
    pub cells: BTreeMap<CellKey, Cell>,
    /// Nanoseconds per access, by flow.
    pub latency: BTreeMap<(Node, Node), f64>,
    pub telemetry: Option<TelemetryFrame>,
    /// GPUs (NVML index) seen throttling at any frame since the start.
    pub throttled_ever: Vec<u32>,
    /// Probe trouble and fatal events, newest last.
    pub problems: Vec<String>,
    /// Commands the probe has finished, with whether they completed.
    pub done: BTreeMap<u64, bool>,
    /// The latest stress run's total: all pairs' bytes over their joined span, GB/s.
    pub stress_total: Option<StressTotal>,
    /// Every GPU's readings folded over the whole run (best PCIe link seen, reasons seen).
    pub seen: TelemetrySeen,
    /// The telemetry of the last [`HISTORY_SECONDS`], oldest first.
    pub telemetry_history: VecDeque<HistoryFrame>,
    /// Capacities and built links worked out since the last telemetry frame: a frame reads
    /// each many times, and they change only with the PCIe links seen.
    derived: RefCell<Derived>,
}

#[derive(Clone, Debug, Default)]
struct Derived {
    capacity: BTreeMap<(Node, Node), Option<Rc<Capacity>>>,
    built_link: BTreeMap<(u32, u32), Option<LinkType>>,
}

/// The readings one history chart draws, for one GPU at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HistoryPoint {
    pub gpu: u32,
    pub temp_c: Option<f64>,
    pub sm_clock_mhz: Option<f64>,
    pub power_w: Option<f64>,
    pub nvlink_tx_gbps: Option<f64>,
    pub nvlink_rx_gbps: Option<f64>,
    pub pcie_tx_gbps: Option<f64>,
    pub pcie_rx_gbps: Option<f64>,
    /// Clocks were held down (thermal, power, hardware slowdown).
    pub throttling: bool,
}

impl HistoryPoint {
    fn of(t: &GpuTelemetry) -> HistoryPoint {
        let (nvlink_tx_gbps, nvlink_rx_gbps) = t.nvlink_totals();
        HistoryPoint {
            gpu: t.gpu,
            temp_c: t.temp_c,
            sm_clock_mhz: t.sm_clock_mhz.map(f64::from),
            power_w: t.power_w,
            nvlink_tx_gbps,
            nvlink_rx_gbps,
            pcie_tx_gbps: t.pcie_tx_gbps,
            pcie_rx_gbps: t.pcie_rx_gbps,
            throttling: t.throttle.is_some_and(|r| r.is_throttling()),
        }
    }
}

/// Every GPU's history point at one telemetry frame, `at_s` after the sampler started.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistoryFrame {
    pub at_s: f64,
    pub gpus: Vec<HistoryPoint>,
}

impl HistoryFrame {
    pub fn gpu(&self, gpu: u32) -> Option<&HistoryPoint> {
        self.gpus.iter().find(|p| p.gpu == gpu)
    }
}

/// Drops what is older than the window, and the oldest beyond the point bound.
fn trim<T>(points: &mut VecDeque<T>, now_s: f64, at: impl Fn(&T) -> f64) {
    while points.len() > HISTORY_POINTS
        || points
            .front()
            .is_some_and(|p| at(p) < now_s - HISTORY_SECONDS)
    {
        points.pop_front();
    }
}

/// What a whole stress sample moved, per op and engine.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StressTotal {
    pub op: Op,
    pub engine: Engine,
    pub gbps: f64,
}

impl Board {
    pub fn new(topology: Topology, simulated: Option<String>) -> Board {
        Board {
            topology,
            simulated,
            cells: BTreeMap::new(),
            latency: BTreeMap::new(),
            telemetry: None,
            throttled_ever: Vec::new(),
            problems: Vec::new(),
            done: BTreeMap::new(),
            stress_total: None,
            seen: TelemetrySeen::default(),
            telemetry_history: VecDeque::new(),
            derived: RefCell::default(),
        }
    }

    pub fn apply(&mut self, feed: &Feed) {
        match feed {
            Feed::Probe(event) => self.apply_event(event),
            Feed::Telemetry(frame) => {
                for g in &frame.gpus {
                    if g.throttle.is_some_and(|t| t.is_throttling())
                        && !self.throttled_ever.contains(&g.gpu)
                    {
                        self.throttled_ever.push(g.gpu);
                    }
                }
                self.seen.add(frame);
                self.derived.take();
                let at_s = frame.at_ms as f64 / 1e3;
                self.telemetry_history.push_back(HistoryFrame {
                    at_s,
                    gpus: frame.gpus.iter().map(HistoryPoint::of).collect(),
                });
                trim(&mut self.telemetry_history, at_s, |f| f.at_s);
                self.telemetry = Some(frame.clone());
            }
            Feed::ProbeTrouble(message) | Feed::ProbeGone(message) => {
                self.problems.push(message.clone())
            }
        }
    }

    fn apply_event(&mut self, event: &Event) {
        match event {
            Event::Sample {
                pair,
                op,
                engine,
                directions,
                ..
            } => {
                let now_s = self.now_s();
                let cell = self.cell_mut(*pair, *op, *engine);
                let total: f64 = directions.iter().map(|d| d.gbps).sum();
                cell.history.push_back(total);
                if cell.history.len() > HISTORY {
                    cell.history.pop_front();
                }
                cell.timeline.push_back((now_s, total));
                trim(&mut cell.timeline, now_s, |p| p.0);
            }
            Event::Result {
                pair,
                op,
                engine,
                buffer_mib,
                repeats,
                samples,
                directions,
                total_gbps,
                verification,
                ..
            } => {
                let throttled = self.throttling_now(*pair);
                let cell = self.cell_mut(*pair, *op, *engine);
                cell.failure = None;
                cell.last = Some(Measured {
                    total_gbps: *total_gbps,
                    directions: directions.clone(),
                    verification: *verification,
                    buffer_mib: *buffer_mib,
                    repeats: *repeats,
                    samples: *samples,
                    throttled,
                });
            }
            Event::Latency {
                pair,
                ns_per_access,
                ..
            } => {
                self.latency.insert((pair.src, pair.dst), *ns_per_access);
            }
            Event::PairError {
                pair,
                op,
                engine,
                kind,
                message,
                cuda_error,
                ..
            } => {
                self.cell_mut(*pair, *op, *engine).failure = Some(CellFailure {
                    kind: *kind,
                    message: message.clone(),
                    cuda_error: *cuda_error,
                });
            }
            Event::Done { id, complete } => {
                self.done.insert(*id, *complete);
            }
            Event::Fatal { message, .. } => self.problems.push(format!("probe: {message}")),
            Event::BadCommand { message } => self
                .problems
                .push(format!("probe refused a command: {message}")),
            Event::StressTotal {
                op,
                engine,
                median_gbps,
                ..
            } => {
                self.stress_total = Some(StressTotal {
                    op: *op,
                    engine: *engine,
                    gbps: *median_gbps,
                })
            }
            // Progress only keeps the supervisor's watchdog patient.
            Event::Hello { .. } | Event::Progress { .. } => {}
        }
    }

    fn cell_mut(&mut self, pair: Pair, op: Op, engine: Engine) -> &mut Cell {
        self.cells
            .entry(CellKey {
                src: pair.src,
                dst: pair.dst,
                op,
                engine,
            })
            .or_default()
    }

    pub fn cell(&self, src: Node, dst: Node, op: Op, engine: Engine) -> Option<&Cell> {
        self.cells.get(&CellKey {
            src,
            dst,
            op,
            engine,
        })
    }

    /// Whether a GPU of `pair` reads as throttling in the latest frame.
    fn throttling_now(&self, pair: Pair) -> bool {
        let Some(frame) = &self.telemetry else {
            return false;
        };
        [pair.src, pair.dst].iter().any(|node| match node {
            Node::Gpu(g) => frame
                .gpus
                .iter()
                .any(|t| t.gpu == *g && t.throttle.is_some_and(|r| r.is_throttling())),
            Node::Host => false,
        })
    }

    /// The time of the latest telemetry frame, seconds since the sampler started (0 before one).
    pub fn now_s(&self) -> f64 {
        self.telemetry
            .as_ref()
            .map_or(0.0, |f| f.at_ms as f64 / 1e3)
    }

    /// The best PCIe generation and width `gpu`'s link reached so far (it trains down while
    /// idle, so the best seen is what it reaches under load).
    pub fn trained(&self, gpu: u32) -> Option<Trained> {
        let seen = self.seen.gpus.iter().find(|g| g.gpu == gpu)?;
        Some(Trained {
            generation: seen.pcie_gen_max_seen?,
            width: seen.pcie_width_max_seen?,
        })
    }

    /// What the path `src → dst` was built for and has now (`model::capacity`), with the PCIe
    /// links as seen so far.
    pub fn capacity(&self, src: Node, dst: Node) -> Option<Rc<Capacity>> {
        if let Some(known) = self.derived.borrow().capacity.get(&(src, dst)) {
            return known.clone();
        }
        let found = capacity::of_path(&self.topology, src, dst, &|g| self.trained(g)).map(Rc::new);
        self.derived
            .borrow_mut()
            .capacity
            .insert((src, dst), found.clone());
        found
    }

    /// How GPUs `a` and `b` were built to be joined (`model::capacity::built_link`).
    pub fn built_link(&self, a: u32, b: u32) -> Option<LinkType> {
        if let Some(known) = self.derived.borrow().built_link.get(&(a, b)) {
            return *known;
        }
        let found = capacity::built_link(&self.topology, a, b);
        self.derived.borrow_mut().built_link.insert((a, b), found);
        found
    }

    /// Every node of the matrix: the GPUs in order, then the host.
    pub fn nodes(&self) -> Vec<Node> {
        let mut nodes: Vec<Node> = self
            .topology
            .gpus
            .iter()
            .map(|g| Node::Gpu(g.index))
            .collect();
        nodes.push(Node::Host);
        nodes
    }
}
