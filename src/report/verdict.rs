//! Verdicts for `p2ptop check`: per measured cell, per GPU and overall, each non-pass with a
//! reason a user can act on, and the root causes those reasons group under.
//!
//! A cell fails when it hung or errored, when any sample's data came back wrong, or when its
//! bandwidth is below a floor (a share of what its path was built for, or of a baseline report's
//! figure). A GPU fails when its PCIe link ran below its maximum under load, an NVLink is down,
//! or its error counters passed DCGM's limits. Throttling, an active power cap and a power limit
//! below the board's default are warnings: they explain low numbers but do not by themselves
//! mean broken hardware.
//!
//! Every reason says what it is about ([`Why`]), so [`super::cause`] can list the findings that
//! follow from one cause under it instead of beside it.

use super::cause::{self, Cause};
use super::run::{CellReport, Report, cell_label};
use super::seen::GpuSeen;
use crate::exit;
use crate::model::capacity;
use crate::model::topology::{Gpu, LinkType, NvLinkRemote, P2pStatus, Topology};
use crate::probe::protocol::{DirectionSummary, Engine, FailureKind, Node, Op};
use serde::{Deserialize, Serialize};

/// A check's outcome; ordered so that the worst of several is their maximum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Pass,
    Warn,
    Fail,
}

impl Level {
    pub fn word(self) -> &'static str {
        match self {
            Level::Pass => "PASS",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        }
    }
}

/// The least share of the line rate as built (`model::capacity`) each kind of path must reach, per
/// direction.
///
/// Where the figures come from (REFERENCE.md, "What real machines reach"): copy engines carry
/// 0.83–0.9 of an NVLink's line rate (HGX H100 371–377 of 450, A100 265–275 of 300) and SM kernels
/// about 0.8 (SM requests carry at most 128 B of payload, so they trail CE); on PCIe, CE reaches
/// about 0.8 (RTX 4090 24–26 of 31.5), posted SM writes about 0.8 (H100 device→host 52.8 of 63)
/// and SM reads only about 0.55 (35.2 of 63: reads are limited by outstanding requests); copies
/// staged through host memory reach about 0.59 (36–38 of 63 with P2P disabled). A host path both
/// ways at once carries a read and a write on one PCIe link, and the read's requests travel with
/// the writes: A100 PCIe 4.0 keeps 24 GB/s one way and 12–13 the other (0.4 of 31.5, nvbandwidth#11),
/// so each direction of a host bidir has a floor of its own. Device-local
/// copies reach 0.8–0.9 of half the memory peak. Each floor sits 0.15–0.2 below the healthy
/// figure: far enough that run-to-run noise and a warm GPU pass, close enough that a link
/// trained down, a lost NVLink or traffic detoured through the root complex fails.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Floors {
    pub nvlink_ce: f64,
    pub nvlink_sm: f64,
    pub pcie_ce: f64,
    pub pcie_sm_write: f64,
    pub pcie_sm_read: f64,
    /// Each direction of a host path both ways at once (a read and a write on one link).
    pub pcie_both_ways: f64,
    /// GPU to GPU through host memory (no peer access; copy engines only).
    pub staged: f64,
    /// A GPU's copy within its own memory, as a share of half the memory peak.
    pub device_local: f64,
}

impl Default for Floors {
    fn default() -> Floors {
        Floors {
            nvlink_ce: 0.7,
            nvlink_sm: 0.65,
            pcie_ce: 0.65,
            pcie_sm_write: 0.6,
            pcie_sm_read: 0.4,
            pcie_both_ways: 0.3,
            staged: 0.4,
            device_local: 0.6,
        }
    }
}

/// A baseline figure must be matched to this share (nccl-tests' `NCCL_TESTS_MIN_BW` convention).
pub const BASELINE_SHARE: f64 = 0.9;

/// DCGM's diagnostic limits: PCIe replays per run, NVLink CRC errors per second, recoveries.
pub const PCIE_REPLAY_LIMIT: u64 = 80;
pub const NVLINK_CRC_PER_S_LIMIT: f64 = 100.0;
pub const NVLINK_RECOVERY_LIMIT: u64 = 0;

impl Floors {
    /// Sets one floor by its name (`nvlink_ce=0.8` on a command line); the error lists the names.
    pub fn set(&mut self, name: &str, share: f64) -> Result<(), String> {
        if !(share.is_finite() && (0.0..=1.0).contains(&share)) {
            return Err(format!(
                "floor {name} must be a share from 0 to 1, not {share}"
            ));
        }
        let slot = match name {
            "nvlink_ce" => &mut self.nvlink_ce,
            "nvlink_sm" => &mut self.nvlink_sm,
            "pcie_ce" => &mut self.pcie_ce,
            "pcie_sm_write" => &mut self.pcie_sm_write,
            "pcie_sm_read" => &mut self.pcie_sm_read,
            "pcie_both_ways" => &mut self.pcie_both_ways,
            "staged" => &mut self.staged,
            "device_local" => &mut self.device_local,
            _ => {
                return Err(format!(
                    "no floor {name:?}; floors: nvlink_ce, nvlink_sm, pcie_ce, pcie_sm_write, \
                     pcie_sm_read, pcie_both_ways, staged, device_local"
                ));
            }
        };
        *slot = share;
        Ok(())
    }

    /// The floor for one direction of a cell, and its name. A GPU that pulls (its kernel reads
    /// the other end's memory) is judged as a read whatever the op is called: `write` host →
    /// GPU runs on the GPU and pulls.
    fn for_direction(&self, cell: &CellReport, d: &DirectionSummary) -> (f64, &'static str) {
        let staged = cell.p2p.is_some_and(|p| !p.is_ok());
        let class = match cell.link {
            Some(LinkType::SelfLink) => FloorClass::DeviceLocal,
            _ if staged => FloorClass::Staged,
            Some(LinkType::NvLink(_)) => FloorClass::NvLink,
            // The host is an end (no link type): a read and a write share its PCIe link.
            None if cell.op == Op::Bidir => FloorClass::HostBothWays,
            _ => FloorClass::Pcie {
                pulls: Node::Gpu(d.executor) == d.dst,
            },
        };
        self.for_class(class, cell.engine)
    }

    /// The floor for a path of `class` driven by `engine`, and its name: the one mapping
    /// `check` and the live view both judge by.
    pub fn for_class(&self, class: FloorClass, engine: Engine) -> (f64, &'static str) {
        match (class, engine) {
            (FloorClass::DeviceLocal, _) => {
                (self.device_local, "device-local floor (device_local)")
            }
            (FloorClass::Staged, _) => (self.staged, "staged-through-host floor (staged)"),
            (FloorClass::NvLink, Engine::Ce) => (self.nvlink_ce, "NVLink CE floor (nvlink_ce)"),
            (FloorClass::NvLink, Engine::Sm) => (self.nvlink_sm, "NVLink SM floor (nvlink_sm)"),
            (FloorClass::HostBothWays, _) => {
                (self.pcie_both_ways, "PCIe both-ways floor (pcie_both_ways)")
            }
            (FloorClass::Pcie { .. }, Engine::Ce) => (self.pcie_ce, "PCIe CE floor (pcie_ce)"),
            (FloorClass::Pcie { pulls: true }, Engine::Sm) => {
                (self.pcie_sm_read, "PCIe SM pull floor (pcie_sm_read)")
            }
            (FloorClass::Pcie { pulls: false }, Engine::Sm) => {
                (self.pcie_sm_write, "PCIe SM push floor (pcie_sm_write)")
            }
        }
    }
}

/// What a floor depends on: how a path was built and how it is driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloorClass {
    /// A GPU's copy within its own memory.
    DeviceLocal,
    /// Between GPUs without peer access: staged through host memory.
    Staged,
    /// Between GPUs over NVLink (as built: a bridge with links down is still NVLink).
    NvLink,
    /// A bidir copy with the host, whose PCIe link carries both directions.
    HostBothWays,
    /// Over PCIe; `pulls` when the kernel reads the far end's memory.
    Pcie { pulls: bool },
}

/// What a reason is about, for grouping reasons under their cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum Why {
    /// Some sample's data arrived wrong.
    Corrupted,
    /// The cell hung, crashed the probe, or was left out after its pair did.
    Hung,
    /// A driver error, a refusal or no trustworthy sample.
    MeasurementError,
    /// Joined by NVLink but without peer access.
    NoPeerAccessOnNvlink,
    /// Not measured for want of peer access where the link type allows that: a fact, a pass.
    NotMeasured,
    /// Below its floor against the line rate as built; `passes_now` when it would pass against
    /// the path as it is now (so what the path lacks explains it).
    BelowFloor {
        passes_now: bool,
    },
    BelowBaseline,
    /// Measured while a GPU of the pair throttled.
    MeasuredThrottling,
    /// Nothing could be measured on the GPU: NVML cannot open it, or it is in MIG mode.
    /// `lost` when it fell off the bus (a fault), not when it is only not this job's.
    Unusable {
        lost: bool,
    },
    /// An NVLink of the GPU is down; `peer` is the GPU at its far end when it is a direct link.
    NvlinkDown {
        link: u32,
        peer: Option<u32>,
    },
    PcieTrainedDown,
    ErrorCounters,
    /// Thermal slowdown or a power brake held clocks down.
    Throttled,
    PowerCapHeldClocks,
    PowerLimitBelowDefault,
    Interrupted,
    ProbeTrouble,
}

/// One reason for a level, and what it is about.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reason {
    pub level: Level,
    #[serde(flatten)]
    pub why: Why,
    pub text: String,
}

impl Reason {
    fn new(level: Level, why: Why, text: impl Into<String>) -> Reason {
        Reason {
            level,
            why,
            text: text.into(),
        }
    }
}

fn worst(reasons: &[Reason]) -> Level {
    reasons.iter().map(|r| r.level).max().unwrap_or(Level::Pass)
}

/// One measured cell's verdict.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CellVerdict {
    pub src: Node,
    pub dst: Node,
    pub op: Op,
    pub engine: Engine,
    pub level: Level,
    /// Why it is not a pass; for a pair that cannot do peer access, why it was not measured.
    pub reasons: Vec<Reason>,
}

impl CellVerdict {
    /// `GPU0 → GPU1 write sm`.
    pub fn label(&self) -> String {
        cell_label(self.src, self.dst, self.op, self.engine)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GpuVerdict {
    pub gpu: u32,
    pub level: Level,
    pub reasons: Vec<Reason>,
}

/// The verdict: overall, the root causes worst first (each with the findings that follow from
/// it), then every cell's, GPU's and the run's own reasons.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    pub overall: Level,
    pub causes: Vec<Cause>,
    pub cells: Vec<CellVerdict>,
    pub gpus: Vec<GpuVerdict>,
    /// About the run as a whole (interrupted, probe trouble).
    pub run: Vec<Reason>,
}

impl Verdict {
    /// 0 for a pass (warnings included), 1 for a failure.
    pub fn exit_code(&self) -> u8 {
        match self.overall {
            Level::Pass | Level::Warn => exit::OK,
            Level::Fail => exit::CHECK_FAILED,
        }
    }

    /// How many cells failed.
    pub fn failed_cells(&self) -> usize {
        self.cells.iter().filter(|c| c.level == Level::Fail).count()
    }
}

/// Judges a report against floors, or against a baseline report where it has the same cell.
pub fn judge(report: &Report, floors: &Floors, baseline: Option<&Report>) -> Verdict {
    let cells: Vec<CellVerdict> = report
        .cells
        .iter()
        .filter(|c| c.op != Op::Latency || c.failure.is_some())
        .map(|c| judge_cell(c, floors, baseline))
        .collect();
    let topology = &report.machine.topology;
    let gpus: Vec<GpuVerdict> = topology
        .gpus
        .iter()
        // A GPU nothing could be measured on is judged whatever was selected: one that fell
        // off the bus fails the machine.
        .filter(|g| report.nodes().contains(&Node::Gpu(g.index)) || g.not_measurable().is_some())
        .map(|g| {
            let seen = report.telemetry.iter().find(|t| t.gpu == g.index);
            let reasons = judge_gpu(topology, g, seen);
            GpuVerdict {
                gpu: g.index,
                level: worst(&reasons),
                reasons,
            }
        })
        .collect();
    let run = judge_run(report);
    let overall = cells
        .iter()
        .map(|c| c.level)
        .chain(gpus.iter().map(|g| g.level))
        .chain([worst(&run)])
        .max()
        .unwrap_or(Level::Pass);
    Verdict {
        overall,
        causes: cause::group(report, &cells, &gpus, &run),
        cells,
        gpus,
        run,
    }
}

fn judge_cell(cell: &CellReport, floors: &Floors, baseline: Option<&Report>) -> CellVerdict {
    let mut reasons: Vec<Reason> = Vec::new();
    let no_p2p = cell.p2p.filter(|p| !p.is_ok());
    if let (Some(LinkType::NvLink(n)), Some(status)) = (cell.link, no_p2p) {
        reasons.push(Reason::new(
            Level::Fail,
            Why::NoPeerAccessOnNvlink,
            format!(
                "joined by {n} NVLink(s) but peer access is {}; NVLink pairs must have it. {}",
                status.code(),
                status.sentence()
            ),
        ));
    }
    if let Some(f) = &cell.failure {
        reasons.push(judge_failure(
            cell,
            f.kind,
            &f.message,
            f.cuda_error,
            no_p2p,
        ));
    }
    if let (Some(bad), true) = (cell.mismatched_bytes, cell.corrupted()) {
        let at = cell
            .first_bad_offset
            .map_or_else(String::new, |o| format!(", first at byte offset {o}"));
        reasons.push(Reason::new(
            Level::Fail,
            Why::Corrupted,
            format!("data corrupted: {bad} byte(s) arrived wrong{at}"),
        ));
    }
    if cell.gbps.is_some() {
        let baseline_cell = baseline.and_then(|b| b.cell(cell.src, cell.dst, cell.op, cell.engine));
        match baseline_cell.and_then(|b| b.gbps) {
            Some(before) => reasons.extend(against_baseline(cell, before)),
            None => reasons.extend(against_floors(cell, floors)),
        }
    }
    if cell.throttled {
        reasons.push(Reason::new(
            Level::Warn,
            Why::MeasuredThrottling,
            "measured while a GPU of the pair was throttling; the figure may be low",
        ));
    }
    CellVerdict {
        src: cell.src,
        dst: cell.dst,
        op: cell.op,
        engine: cell.engine,
        level: worst(&reasons),
        reasons,
    }
}

/// A pair that could not be measured. Missing peer access is a fact of the machine, not a fault,
/// unless the pair is joined by NVLink (that case already failed above).
fn judge_failure(
    cell: &CellReport,
    kind: FailureKind,
    message: &str,
    cuda_error: Option<i32>,
    no_p2p: Option<P2pStatus>,
) -> Reason {
    let code = cuda_error.map_or_else(String::new, |c| format!(" (CUDA error {c})"));
    let (level, why, text) = match (kind, no_p2p) {
        (FailureKind::Unsupported, Some(status)) => {
            let level = if cell.link.is_some_and(LinkType::is_nvlink) {
                Level::Fail
            } else {
                Level::Pass
            };
            (
                level,
                Why::NotMeasured,
                format!("not measured: {}", status.sentence()),
            )
        }
        (FailureKind::Hung, _) => (Level::Fail, Why::Hung, format!("hung: {message}")),
        (FailureKind::Crashed, _) => (
            Level::Fail,
            Why::Hung,
            format!("the probe crashed: {message}"),
        ),
        // Left out after the pair hung or crashed the probe: as broken as the first failure.
        (FailureKind::Skipped, _) => (Level::Fail, Why::Hung, message.to_owned()),
        (FailureKind::GateTimeout, _) => (
            Level::Fail,
            Why::MeasurementError,
            format!("no trustworthy sample (every start gate timed out): {message}"),
        ),
        (FailureKind::Driver, _) => (
            Level::Fail,
            Why::MeasurementError,
            format!("driver error{code}: {message}"),
        ),
        (FailureKind::Unsupported, None) => (
            Level::Fail,
            Why::MeasurementError,
            format!("refused although peer access is reported OK{code}: {message}"),
        ),
        (FailureKind::Invalid, _) => (
            Level::Fail,
            Why::MeasurementError,
            format!("invalid request: {message}"),
        ),
    };
    Reason::new(level, why, text)
}

/// Each direction against its floor, as a share of what the path was built for.
fn against_floors(cell: &CellReport, floors: &Floors) -> Vec<Reason> {
    let Some(built) = cell.line_rate_gbps.filter(|l| *l > 0.0) else {
        return Vec::new();
    };
    let basis = cell
        .line_rate_basis
        .as_deref()
        .map_or_else(String::new, |b| format!(" ({b})"));
    let now_gbps = cell
        .line_rate_now_gbps
        .filter(|_| !cell.shortfalls.is_empty());
    let now = now_gbps.map_or_else(String::new, |n| format!(", {n:.1} GB/s now"));
    cell.directions
        .iter()
        .filter_map(|d| {
            let (floor, rule) = floors.for_direction(cell, d);
            let share = d.median_gbps / built;
            let passes_now = now_gbps.is_some_and(|n| d.median_gbps >= floor * n);
            (share < floor).then(|| {
                Reason::new(
                    Level::Fail,
                    Why::BelowFloor { passes_now },
                    format!(
                        "{} → {} at {:.1} GB/s is {:.0}% of the {built:.1} GB/s it was built \
                         for{basis}{now}; the {rule} is {:.0}%",
                        d.src,
                        d.dst,
                        d.median_gbps,
                        share * 100.0,
                        floor * 100.0
                    ),
                )
            })
        })
        .collect()
}

fn against_baseline(cell: &CellReport, before: f64) -> Option<Reason> {
    let now = cell.gbps?;
    (now < BASELINE_SHARE * before).then(|| {
        Reason::new(
            Level::Fail,
            Why::BelowBaseline,
            format!(
                "{now:.1} GB/s is {:.0}% of the baseline's {before:.1} GB/s; at least {:.0}% is \
                 needed",
                now / before * 100.0,
                BASELINE_SHARE * 100.0
            ),
        )
    })
}

fn judge_gpu(topology: &Topology, gpu: &Gpu, seen: Option<&GpuSeen>) -> Vec<Reason> {
    let mut reasons: Vec<Reason> = Vec::new();
    if let Some(why) = gpu.not_measurable() {
        // A GPU that fell off the bus is broken; one outside the job's cgroup or in MIG mode is
        // set up so, and only worth knowing.
        let lost = gpu.unavailable.as_ref().is_some_and(|u| u.lost);
        let level = if lost { Level::Fail } else { Level::Warn };
        // Its telemetry (an idle link, clocks at rest) says nothing about the machine.
        return vec![Reason::new(
            level,
            Why::Unusable { lost },
            format!("not measured: {why}"),
        )];
    }
    for (link, end) in capacity::link_ends(gpu) {
        if link.active {
            continue;
        }
        let peer = match end {
            NvLinkRemote::Gpu(bus) => topology
                .gpus
                .iter()
                .find(|g| g.pci_bus_id == bus)
                .map(|g| g.index),
            _ => None,
        };
        reasons.push(Reason::new(
            Level::Fail,
            Why::NvlinkDown {
                link: link.link,
                peer,
            },
            format!("NVLink {} is down", link.link),
        ));
    }
    if let Some((limit, default)) =
        gpu.power_limit_below_default(seen.and_then(|s| s.power_limit_min_w))
    {
        reasons.push(Reason::new(
            Level::Warn,
            Why::PowerLimitBelowDefault,
            format!("power limit {limit:.0} W, below the board's default {default:.0} W"),
        ));
    }
    let Some(seen) = seen else {
        return reasons;
    };
    reasons.extend(pcie_under_load(gpu, seen));
    reasons.extend(error_counters(seen));
    if seen.throttled() {
        let fan = match seen.fan_percent_min_under_load {
            Some(0) => "; its fan read 0% under load",
            _ => "",
        };
        reasons.push(Reason::new(
            Level::Warn,
            Why::Throttled,
            format!(
                "throttled during the run (reasons seen: {}; hottest {}{fan})",
                seen.throttle_reasons.join(", "),
                seen.max_temp_c
                    .map_or_else(|| "n/a".to_owned(), |t| format!("{t:.0} °C"))
            ),
        ));
    }
    if seen.power_capped() {
        let limit = seen
            .power_limit_min_w
            .map_or_else(String::new, |w| format!(" at {w:.0} W"));
        reasons.push(Reason::new(
            Level::Warn,
            Why::PowerCapHeldClocks,
            format!("the power cap held clocks down{limit}"),
        ));
    }
    reasons
}

/// The link's best generation and width during the run against its maximum. Idle links train
/// down, so only the best seen while copies ran says whether the link can reach its maximum.
fn pcie_under_load(gpu: &Gpu, seen: &GpuSeen) -> Option<Reason> {
    let trained = capacity::Trained {
        generation: seen.pcie_gen_max_seen?,
        width: seen.pcie_width_max_seen?,
    };
    match capacity::pcie_shortfall(gpu, Some(trained))? {
        capacity::Shortfall::Pcie {
            generation,
            width,
            generation_max,
            width_max,
            ..
        } => Some(Reason::new(
            Level::Fail,
            Why::PcieTrainedDown,
            format!(
                "PCIe link reached only Gen{generation} x{width} under load; it was built for \
                 Gen{generation_max} x{width_max}"
            ),
        )),
        capacity::Shortfall::Nvlinks { .. } => None,
    }
}

fn error_counters(seen: &GpuSeen) -> Vec<Reason> {
    let mut out = Vec::new();
    let fail = |text: String| Reason::new(Level::Fail, Why::ErrorCounters, text);
    let e = &seen.errors;
    if let Some(n) = e.pcie_replay.filter(|n| *n > PCIE_REPLAY_LIMIT) {
        out.push(fail(format!(
            "{n} PCIe replays during the run (limit {PCIE_REPLAY_LIMIT}, as DCGM's)"
        )));
    }
    if let Some(n) = e.nvlink_crc {
        let per_s = n as f64 / seen.seconds.max(1.0);
        if per_s > NVLINK_CRC_PER_S_LIMIT {
            out.push(fail(format!(
                "{per_s:.0} NVLink CRC errors per second (limit {NVLINK_CRC_PER_S_LIMIT:.0}, as \
                 DCGM's)"
            )));
        }
    }
    if let Some(n) = e.nvlink_recovery.filter(|n| *n > NVLINK_RECOVERY_LIMIT) {
        out.push(fail(format!(
            "{n} NVLink recoveries during the run (limit {NVLINK_RECOVERY_LIMIT}, as DCGM's)"
        )));
    }
    out
}

/// An interrupted run or probe trouble: the matrix may have holes, so say so.
fn judge_run(report: &Report) -> Vec<Reason> {
    let mut reasons = Vec::new();
    if !report.run.complete {
        reasons.push(Reason::new(
            Level::Warn,
            Why::Interrupted,
            "interrupted before every measurement finished; the report is incomplete",
        ));
    }
    reasons.extend(
        report
            .problems
            .iter()
            .map(|p| Reason::new(Level::Warn, Why::ProbeTrouble, p.clone())),
    );
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floors_are_set_by_name_and_bad_names_or_values_are_refused() {
        let mut floors = Floors::default();
        floors.set("pcie_sm_read", 0.5).unwrap();
        assert_eq!(floors.pcie_sm_read, 0.5);
        let err = floors.set("nvlink", 0.5).unwrap_err();
        assert!(err.contains("nvlink_ce"), "{err}");
        assert!(floors.set("staged", 1.5).is_err());
        assert!(floors.set("staged", f64::NAN).is_err());
    }

    #[test]
    fn levels_order_from_pass_to_fail() {
        assert!(Level::Pass < Level::Warn && Level::Warn < Level::Fail);
        assert_eq!(Level::Fail.word(), "FAIL");
    }
}
