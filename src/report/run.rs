//! The report of one run: what `p2ptop run` writes and `check --baseline` and `fleet` read back.
//!
//! It is a copy of the board's results in plain, versioned data, separate from the app's own
//! types, so the file format changes only on purpose (bump [`SCHEMA`]). Numbers are numbers and
//! units are in the key names.

use super::nvbandwidth;
use super::pairs::Pairs;
use super::seen::{GpuSeen, TelemetrySeen};
use crate::app::board::{Board, Cell};
use crate::model::capacity::{self, Capacity, Shortfall, Trained};
use crate::model::topology::{LinkType, P2pStatus, Topology};
use crate::probe::protocol::{DirectionSummary, Engine, FailureKind, Node, Op};
use serde::{Deserialize, Serialize};

/// The version of the report's shape. 2: cells judged against what their path was built for
/// (with the line rate now and its shortfalls), their nvbandwidth testcases, the run's duration.
pub const SCHEMA: u32 = 2;

/// How the run was started, supplied by the caller.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The command line as typed.
    pub command_line: String,
    /// RFC 3339, e.g. "2025-01-31T14:05:00Z".
    pub started_at: String,
    pub buffer_mib: u64,
    pub samples: u32,
    pub engines: Vec<Engine>,
    /// False when the run was interrupted (Ctrl-C) before every measurement finished.
    pub complete: bool,
    /// Wall-clock seconds the measuring took.
    pub elapsed_s: f64,
    /// On a simulated machine, the seconds the run took on the simulated machine's clock (what
    /// the same run would take on the hardware); null on hardware.
    pub simulated_s: Option<f64>,
}

/// The machine as NVML described it, plus `nvidia-smi topo -m`'s matrix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MachineReport {
    #[serde(flatten)]
    pub topology: Topology,
    /// Row per GPU, column per GPU, in `topo -m`'s words (`X`, `NV18`, `PHB`…).
    pub link_matrix: Vec<Vec<String>>,
}

/// Why a cell has no figure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailureReport {
    pub kind: FailureKind,
    pub message: String,
    pub cuda_error: Option<i32>,
}

/// One (src → dst, op, engine) measurement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellReport {
    pub src: Node,
    pub dst: Node,
    pub op: Op,
    pub engine: Engine,
    /// How src and dst are joined (`X` on the diagonal); None when the host is an end.
    pub link: Option<LinkType>,
    /// Peer access for this op between two different GPUs, as `topo -p2p` says it.
    pub p2p: Option<P2pStatus>,
    /// One direction's median, or for bidir the sum of both directions' medians.
    pub gbps: Option<f64>,
    pub directions: Vec<DirectionSummary>,
    /// The theoretical per-direction bandwidth of the path as it was built (every NVLink up,
    /// PCIe at its maximum): what the cell is judged against.
    pub line_rate_gbps: Option<f64>,
    pub line_rate_basis: Option<String>,
    /// The same for the path as it is now (links down, PCIe trained down); equal to the built
    /// figure when nothing is missing.
    pub line_rate_now_gbps: Option<f64>,
    pub line_rate_now_basis: Option<String>,
    /// What the path lacks against what it was built for.
    pub shortfalls: Vec<Shortfall>,
    /// `gbps` over the built line rate (for bidir: over twice the line rate).
    pub efficiency: Option<f64>,
    pub samples: Option<u32>,
    pub mismatched_bytes: Option<u64>,
    pub first_bad_offset: Option<u64>,
    /// A GPU of the pair was throttling when the result came in.
    pub throttled: bool,
    pub failure: Option<FailureReport>,
    /// The nvbandwidth testcases this cell matches, and which figure compares with theirs.
    pub nvbandwidth: Vec<nvbandwidth::Match>,
}

impl CellReport {
    /// Whether every sample's destination held the expected bytes.
    pub fn corrupted(&self) -> bool {
        self.mismatched_bytes.is_some_and(|n| n > 0)
    }

    /// `GPU0 → GPU1 write sm`.
    pub fn label(&self) -> String {
        cell_label(self.src, self.dst, self.op, self.engine)
    }

    /// What a report's cells are ordered by.
    pub fn key(&self) -> (Node, Node, Op, Engine) {
        (self.src, self.dst, self.op, self.engine)
    }
}

/// `GPU0 → GPU1 write sm`: how a cell is named in every report.
pub fn cell_label(src: Node, dst: Node, op: Op, engine: Engine) -> String {
    format!("{src} → {dst} {} {}", op.name(), engine.name())
}

/// A pointer-chase result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyReport {
    pub src: Node,
    pub dst: Node,
    pub ns: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema: u32,
    /// The preset or machine file when the machine is simulated; null on hardware.
    pub simulated: Option<String>,
    /// Whether the NVIDIA drivers were p2ptop's emulation (tests/emu): the probe really ran,
    /// but every figure is the emulation's model.
    #[serde(default)]
    pub emulated: bool,
    pub run: RunInfo,
    pub machine: MachineReport,
    /// In [`CellReport::key`] order (see [`Report::sort_cells`]).
    pub cells: Vec<CellReport>,
    pub latency: Vec<LatencyReport>,
    /// Per GPU, over the whole run.
    pub telemetry: Vec<GpuSeen>,
    /// Probe trouble during the run (restarts, fatal errors), in order.
    pub problems: Vec<String>,
}

impl Report {
    /// Copies the board's results. GPU nodes are taken to be numbered as the topology's GPUs.
    pub fn build(board: &Board, seen: &TelemetrySeen, run: RunInfo) -> Report {
        let topology = &board.topology;
        let mut report = Report {
            schema: SCHEMA,
            simulated: board.simulated.clone(),
            emulated: topology.host.emulated(),
            run,
            machine: MachineReport {
                link_matrix: link_matrix(topology),
                topology: topology.clone(),
            },
            cells: board
                .cells
                .iter()
                .map(|(key, cell)| {
                    cell_report(topology, seen, key.src, key.dst, key.op, key.engine, cell)
                })
                .collect(),
            latency: board
                .latency
                .iter()
                .map(|(&(src, dst), &ns)| LatencyReport { src, dst, ns })
                .collect(),
            telemetry: seen.gpus.clone(),
            problems: board.problems.clone(),
        };
        report.sort_cells();
        report
    }

    /// Puts the cells in key order, which [`Report::cell`] relies on: a report is built or read
    /// back through here.
    pub fn sort_cells(&mut self) {
        self.cells.sort_by_key(CellReport::key);
    }

    /// The nodes that took part, GPUs by index then the host: the rows and columns of matrices.
    pub fn nodes(&self) -> Vec<Node> {
        let mut nodes: Vec<Node> = self
            .cells
            .iter()
            .flat_map(|c| [c.src, c.dst])
            .chain(self.latency.iter().flat_map(|l| [l.src, l.dst]))
            .collect();
        nodes.sort();
        nodes.dedup();
        nodes
    }

    /// What the path from `src` to `dst` was built for and carries now, by the PCIe links the
    /// run saw.
    pub fn capacity(&self, src: Node, dst: Node) -> Option<Capacity> {
        capacity::of_path(&self.machine.topology, src, dst, &|g| {
            trained(&self.telemetry, g)
        })
    }

    /// How many (src, dst) pairs have a figure or a failure, latency included.
    pub fn pairs_measured(&self) -> usize {
        let mut pairs: Vec<(Node, Node)> = self
            .cells
            .iter()
            .map(|c| (c.src, c.dst))
            .chain(self.latency.iter().map(|l| (l.src, l.dst)))
            .collect();
        pairs.sort();
        pairs.dedup();
        pairs.len()
    }

    /// One cell, by a binary search: matrices and baselines look up every cell, and a search
    /// through all of them each time would take n⁴ steps for n GPUs.
    pub fn cell(&self, src: Node, dst: Node, op: Op, engine: Engine) -> Option<&CellReport> {
        let i = self
            .cells
            .binary_search_by_key(&(src, dst, op, engine), CellReport::key)
            .ok()?;
        Some(&self.cells[i])
    }

    /// Telemetry of the GPUs that took part (the sampler reads every GPU of the machine).
    pub fn measured_telemetry(&self) -> impl Iterator<Item = &GpuSeen> {
        let nodes = self.nodes();
        self.telemetry
            .iter()
            .filter(move |t| nodes.contains(&Node::Gpu(t.gpu)))
    }

    /// The host's name, or "unknown host".
    pub fn hostname(&self) -> &str {
        self.machine
            .topology
            .host
            .hostname
            .as_deref()
            .unwrap_or("unknown host")
    }
}

/// The PCIe generation and width a GPU's link reached during the run (it trains down when idle).
pub fn trained(telemetry: &[GpuSeen], gpu: u32) -> Option<Trained> {
    let s = telemetry.iter().find(|s| s.gpu == gpu)?;
    Some(Trained {
        generation: s.pcie_gen_max_seen?,
        width: s.pcie_width_max_seen?,
    })
}

fn cell_report(
    topology: &Topology,
    seen: &TelemetrySeen,
    src: Node,
    dst: Node,
    op: Op,
    engine: Engine,
    cell: &Cell,
) -> CellReport {
    let capacity = capacity::of_path(topology, src, dst, &|g| trained(&seen.gpus, g));
    let measured = cell.last.as_ref();
    let gbps = measured.map(|m| m.total_gbps);
    let per_direction_count = if op == Op::Bidir { 2.0 } else { 1.0 };
    let efficiency = match (gbps, &capacity) {
        (Some(g), Some(c)) if c.built.gbps > 0.0 => Some(g / (c.built.gbps * per_direction_count)),
        _ => None,
    };
    let p2p = p2p_for(topology, src, dst, op);
    CellReport {
        src,
        dst,
        op,
        engine,
        link: gpu_pair(src, dst).and_then(|(a, b)| topology.link(a, b)),
        p2p,
        gbps,
        directions: measured.map(|m| m.directions.clone()).unwrap_or_default(),
        line_rate_gbps: capacity.as_ref().map(|c| c.built.gbps),
        line_rate_basis: capacity.as_ref().map(|c| c.built.basis.clone()),
        line_rate_now_gbps: capacity.as_ref().map(|c| c.now.gbps),
        line_rate_now_basis: capacity.as_ref().map(|c| c.now.basis.clone()),
        shortfalls: capacity.map(|c| c.shortfalls).unwrap_or_default(),
        efficiency,
        samples: measured.map(|m| m.samples),
        mismatched_bytes: measured.map(|m| m.verification.mismatched_bytes),
        first_bad_offset: measured.and_then(|m| m.verification.first_bad_offset),
        throttled: measured.is_some_and(|m| m.throttled),
        failure: cell.failure.as_ref().map(|f| FailureReport {
            kind: f.kind,
            message: f.message.clone(),
            cuda_error: f.cuda_error,
        }),
        nvbandwidth: nvbandwidth::matches(src, dst, op, engine, p2p.is_none_or(P2pStatus::is_ok)),
    }
}

fn gpu_pair(src: Node, dst: Node) -> Option<(u32, u32)> {
    match (src, dst) {
        (Node::Gpu(a), Node::Gpu(b)) => Some((a, b)),
        _ => None,
    }
}

/// The peer-access answer that matters for `op`: a read needs dst to read src's memory, a write
/// (and each half of bidir) needs src to write into dst's.
fn p2p_for(topology: &Topology, src: Node, dst: Node, op: Op) -> Option<P2pStatus> {
    let (a, b) = gpu_pair(src, dst)?;
    if a == b {
        return None;
    }
    Some(match op {
        Op::Read | Op::Latency => topology.p2p(b, a)?.read,
        Op::Write | Op::Bidir => topology.p2p(a, b)?.write,
    })
}

/// `nvidia-smi topo -m`'s GPU-by-GPU block.
fn link_matrix(topology: &Topology) -> Vec<Vec<String>> {
    let pairs = Pairs::of(topology);
    topology
        .gpus
        .iter()
        .map(|row| {
            topology
                .gpus
                .iter()
                .map(|col| {
                    pairs
                        .link(row.index, col.index)
                        .map_or_else(|| "?".to_owned(), |l| l.to_string())
                })
                .collect()
        })
        .collect()
}

/// As in JSON: `hung`, `gate_timeout`…
pub fn failure_kind_name(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::Invalid => "invalid",
        FailureKind::Unsupported => "unsupported",
        FailureKind::Driver => "driver",
        FailureKind::Hung => "hung",
        FailureKind::GateTimeout => "gate_timeout",
        FailureKind::Crashed => "crashed",
        FailureKind::Skipped => "skipped",
    }
}
