//! Root causes: the verdict's reasons grouped under what produced them, so a machine with a few
//! faults reads as a few lines, not one line per pair, op and engine.
//!
//! A GPU's own reasons (an NVLink down, its PCIe link trained down, error counters, throttling, a
//! power cap) are causes; a cell's corruption, hang or error is a cause per pair of nodes (every
//! cell of the pair is listed under it). A cell below its floor is listed under the cause that
//! explains it: the link that is down or trained down on its path (from the cell's shortfalls,
//! see `model::capacity`), else a GPU of the path that throttled; only with none of those is it
//! a cause of its own ("below floor without a known cause"). Each finding is listed once.
//!
//! Causes come worst first: corruption and hangs, missing or down links, trained-down PCIe,
//! bandwidth below floor without a known cause, errors, throttling and power caps; then what is
//! about the run itself (interrupted, probe trouble).

use super::run::{CellReport, Report};
use super::verdict::{CellVerdict, GpuVerdict, Level, Reason, Why};
use crate::model::capacity::{self, Shortfall};
use crate::model::topology::NvLinkRemote;
use crate::probe::protocol::{FailureKind, Node, Op};
use serde::Serialize;
use std::cmp::Reverse;

/// What kind of cause, in the order causes are listed (worst first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Corruption,
    Hang,
    UnusableGpu,
    NvlinkDown,
    NoPeerAccess,
    PcieTrainedDown,
    BelowFloor,
    MeasurementError,
    ErrorCounters,
    Throttling,
    PowerLimit,
    Interrupted,
    ProbeTrouble,
}

impl Kind {
    /// A heading for the cause's evidence.
    pub fn title(self) -> &'static str {
        match self {
            Kind::Corruption => "data corrupted",
            Kind::Hang => "hung",
            Kind::UnusableGpu => "GPU not measured",
            Kind::NvlinkDown => "NVLink down",
            Kind::NoPeerAccess => "no peer access over NVLink",
            Kind::PcieTrainedDown => "PCIe trained down",
            Kind::BelowFloor => "below floor, no known cause",
            Kind::MeasurementError => "measurement errors",
            Kind::ErrorCounters => "link error counters",
            Kind::Throttling => "throttling",
            Kind::PowerLimit => "power limit",
            Kind::Interrupted => "interrupted",
            Kind::ProbeTrouble => "probe trouble",
        }
    }
}

/// A finding that follows from a cause: one measurement (all its reasons for this cause) or one
/// message.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evidence {
    pub level: Level,
    /// `GPU3 → host write ce`, or `probe`.
    pub subject: String,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cause {
    pub kind: Kind,
    /// The worst of its own reasons and its evidence.
    pub level: Level,
    /// What it is about, for machines to label it by (the GPU, the pair, the run).
    pub about: Key,
    /// What it is about, in words: `GPU3`, `GPU3 → GPU5`, `GPU0 ↔ GPU1`, `run`.
    pub subject: String,
    /// What is wrong, in one line, with how many measurements follow from it.
    pub what: String,
    /// What to tell the provider (or do).
    pub advice: String,
    pub evidence: Vec<Evidence>,
}

impl Cause {
    /// `FAIL GPU3: PCIe link reached only …`: the cause in one line.
    pub fn line(&self) -> String {
        format!("{} {}: {}", self.level.word(), self.subject, self.what)
    }
}

/// What a cause is about: an unordered pair of nodes (lower first), a GPU, or the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Key {
    Pair(Node, Node),
    Gpu(u32),
    Run,
}

fn pair(a: Node, b: Node) -> Key {
    Key::Pair(a.min(b), a.max(b))
}

/// A cause while its reasons are gathered.
struct Draft {
    kind: Kind,
    key: Key,
    /// The cause's own reasons (a GPU's, the run's).
    own: Vec<Reason>,
    /// Cells (with the reasons of theirs that follow from this cause) and messages.
    cells: Vec<(CellVerdict, Vec<Reason>)>,
    messages: Vec<Reason>,
}

#[derive(Default)]
struct Drafts(Vec<Draft>);

impl Drafts {
    fn find(&self, kind: Kind, key: Key) -> Option<usize> {
        self.0.iter().position(|d| d.kind == kind && d.key == key)
    }

    fn entry(&mut self, kind: Kind, key: Key) -> &mut Draft {
        let i = self.find(kind, key).unwrap_or_else(|| {
            self.0.push(Draft {
                kind,
                key,
                own: Vec::new(),
                cells: Vec::new(),
                messages: Vec::new(),
            });
            self.0.len() - 1
        });
        &mut self.0[i]
    }

    fn add_cell(&mut self, at: (Kind, Key), cell: &CellVerdict, reason: &Reason) {
        let draft = self.entry(at.0, at.1);
        match draft
            .cells
            .iter_mut()
            .find(|(c, _)| c.label() == cell.label())
        {
            Some((_, reasons)) => reasons.push(reason.clone()),
            None => draft.cells.push((cell.clone(), vec![reason.clone()])),
        }
    }
}

/// Groups every non-pass reason under its cause, worst first.
pub fn group(
    report: &Report,
    cells: &[CellVerdict],
    gpus: &[GpuVerdict],
    run: &[Reason],
) -> Vec<Cause> {
    let mut drafts = Drafts::default();
    for g in gpus {
        for r in &g.reasons {
            let (kind, key) = gpu_cause(g.gpu, r.why);
            drafts.entry(kind, key).own.push(r.clone());
        }
    }
    // First the cells' own faults, so that a slow cell can be placed under a cause found anywhere.
    let mut dependent = Vec::new();
    for c in cells {
        let own_fault = c
            .reasons
            .iter()
            .find_map(|r| cell_fault(r).filter(|_| r.level > Level::Pass));
        for r in c.reasons.iter().filter(|r| r.level > Level::Pass) {
            let fault = cell_fault(r).or(own_fault.filter(|k| is_fatal(*k)));
            match fault {
                Some(kind) => drafts.add_cell((kind, pair(c.src, c.dst)), c, r),
                None => dependent.push((c, r)),
            }
        }
    }
    for (c, r) in dependent {
        let at = explain(report, &drafts, c, r);
        drafts.add_cell(at, c, r);
    }
    for r in run {
        let at = match r.why {
            Why::Interrupted => (Kind::Interrupted, Key::Run),
            _ => match hang_named_in(&drafts, &r.text) {
                Some(key) => (Kind::Hang, key),
                None => (Kind::ProbeTrouble, Key::Run),
            },
        };
        drafts.entry(at.0, at.1).messages.push(r.clone());
    }
    let mut causes: Vec<(Key, Cause)> = drafts
        .0
        .iter()
        .map(|d| (d.key, finish(report, d)))
        .collect();
    causes.sort_by(|(ka, a), (kb, b)| {
        (a.kind, Reverse(a.level), ka).cmp(&(b.kind, Reverse(b.level), kb))
    });
    causes.into_iter().map(|(_, c)| c).collect()
}

fn gpu_cause(gpu: u32, why: Why) -> (Kind, Key) {
    match why {
        Why::NvlinkDown {
            peer: Some(peer), ..
        } => (Kind::NvlinkDown, pair(Node::Gpu(gpu), Node::Gpu(peer))),
        Why::NvlinkDown { .. } => (Kind::NvlinkDown, Key::Gpu(gpu)),
        Why::PcieTrainedDown => (Kind::PcieTrainedDown, Key::Gpu(gpu)),
        Why::Unusable { .. } => (Kind::UnusableGpu, Key::Gpu(gpu)),
        Why::Throttled => (Kind::Throttling, Key::Gpu(gpu)),
        Why::PowerCapHeldClocks | Why::PowerLimitBelowDefault => (Kind::PowerLimit, Key::Gpu(gpu)),
        // Error counters: the one other kind of reason a GPU's verdict gives.
        _ => (Kind::ErrorCounters, Key::Gpu(gpu)),
    }
}

/// The cause a cell's reason is by itself, when it is one.
fn cell_fault(r: &Reason) -> Option<Kind> {
    match r.why {
        Why::Corrupted => Some(Kind::Corruption),
        Why::Hung => Some(Kind::Hang),
        Why::MeasurementError => Some(Kind::MeasurementError),
        Why::NoPeerAccessOnNvlink | Why::NotMeasured => Some(Kind::NoPeerAccess),
        _ => None,
    }
}

/// Faults that make every other figure of the cell meaningless: listed together under them.
fn is_fatal(kind: Kind) -> bool {
    matches!(kind, Kind::Corruption | Kind::Hang)
}

/// The cause a slow or throttled cell follows from.
fn explain(report: &Report, drafts: &Drafts, c: &CellVerdict, r: &Reason) -> (Kind, Key) {
    let cell = report.cell(c.src, c.dst, c.op, c.engine);
    let gpus: Vec<u32> = [c.src, c.dst]
        .iter()
        .filter_map(|n| match n {
            Node::Gpu(g) => Some(*g),
            Node::Host => None,
        })
        .collect();
    let slow = is_slow(r);
    // What the path lacks explains a slow figure that would pass on the path as it is now; one
    // that fails even then (or against a baseline, which has no floor) has a cause of its own
    // first, if there is one.
    let lacking = || {
        let shortfalls = cell.map(|c| c.shortfalls.as_slice()).unwrap_or_default();
        shortfalls.iter().find_map(|s| shortfall_cause(drafts, s))
    };
    if matches!(r.why, Why::BelowFloor { passes_now: true })
        && let Some(at) = lacking()
    {
        return at;
    }
    let gpu_with = |kind: Kind| {
        gpus.iter()
            .find(|&&g| drafts.find(kind, Key::Gpu(g)).is_some())
            .map(|&g| (kind, Key::Gpu(g)))
    };
    // A power cap slows what its GPU computes, copies included, whether or not a telemetry
    // frame caught it holding clocks down.
    if let Some(at) = gpu_with(Kind::Throttling).or_else(|| gpu_with(Kind::PowerLimit)) {
        return at;
    }
    if !slow {
        // Throttling seen at the cell but in no GPU's run summary (a frame the summary missed).
        return (
            Kind::Throttling,
            gpus.first().map_or(Key::Run, |g| Key::Gpu(*g)),
        );
    }
    lacking().unwrap_or((Kind::BelowFloor, pair(c.src, c.dst)))
}

fn is_slow(r: &Reason) -> bool {
    matches!(r.why, Why::BelowFloor { .. } | Why::BelowBaseline)
}

/// The cause of a link that is down or trained down on a cell's path, when the verdict found it.
fn shortfall_cause(drafts: &Drafts, shortfall: &Shortfall) -> Option<(Kind, Key)> {
    match *shortfall {
        Shortfall::Nvlinks { a, b, .. } => {
            [pair(Node::Gpu(a), Node::Gpu(b)), Key::Gpu(a), Key::Gpu(b)]
                .into_iter()
                .find(|k| drafts.find(Kind::NvlinkDown, *k).is_some())
                .map(|k| (Kind::NvlinkDown, k))
        }
        Shortfall::Pcie { gpu, .. } => drafts
            .find(Kind::PcieTrainedDown, Key::Gpu(gpu))
            .map(|_| (Kind::PcieTrainedDown, Key::Gpu(gpu))),
    }
}

/// The hang a probe message is about: the first whose pair it names, else the first hang.
fn hang_named_in(drafts: &Drafts, text: &str) -> Option<Key> {
    let hangs: Vec<Key> = drafts
        .0
        .iter()
        .filter(|d| d.kind == Kind::Hang)
        .map(|d| d.key)
        .collect();
    hangs
        .iter()
        .find(|k| match k {
            Key::Pair(a, b) => {
                text.contains(&format!("{a} → {b}")) || text.contains(&format!("{b} → {a}"))
            }
            _ => false,
        })
        .or(hangs.first())
        .copied()
}

fn finish(report: &Report, d: &Draft) -> Cause {
    let mut evidence: Vec<Evidence> = d
        .cells
        .iter()
        .map(|(c, reasons)| Evidence {
            level: reasons.iter().map(|r| r.level).max().unwrap_or(Level::Pass),
            subject: c.label(),
            text: reasons
                .iter()
                .map(|r| r.text.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        })
        .collect();
    evidence.extend(d.messages.iter().map(|r| Evidence {
        level: r.level,
        subject: if d.key == Key::Run { "run" } else { "probe" }.into(),
        text: r.text.clone(),
    }));
    let level = d
        .own
        .iter()
        .map(|r| r.level)
        .chain(evidence.iter().map(|e| e.level))
        .max()
        .unwrap_or(Level::Pass);
    let subject = subject(d);
    let what = what(report, d);
    Cause {
        kind: d.kind,
        level,
        about: d.key,
        advice: advice(report, d, &subject),
        subject,
        what,
        evidence,
    }
}

/// The one direction a pair's cause goes, when every one-way cell under it goes that way
/// (bidir cells carry both, so they do not tell).
fn one_way(d: &Draft) -> Option<(Node, Node)> {
    if !matches!(d.kind, Kind::Corruption | Kind::Hang | Kind::BelowFloor) {
        return None;
    }
    let mut ways: Vec<(Node, Node)> = d
        .cells
        .iter()
        .filter(|(c, _)| c.op != Op::Bidir && c.src != c.dst)
        .map(|(c, _)| (c.src, c.dst))
        .collect();
    ways.sort();
    ways.dedup();
    match ways.as_slice() {
        [way] => Some(*way),
        _ => None,
    }
}

fn subject(d: &Draft) -> String {
    match d.key {
        Key::Gpu(g) => format!("GPU{g}"),
        Key::Run => "run".into(),
        Key::Pair(a, b) if a == b => a.to_string(),
        Key::Pair(a, b) => match one_way(d) {
            Some((src, dst)) => format!("{src} → {dst}"),
            None => format!("{a} ↔ {b}"),
        },
    }
}

/// `N measurements below their floor, M measured while it throttled`, or nothing.
fn following(d: &Draft) -> String {
    let slow = d
        .cells
        .iter()
        .filter(|(_, rs)| rs.iter().any(is_slow))
        .count();
    let throttled = d.cells.len() - slow;
    let mut parts = Vec::new();
    if slow > 0 {
        parts.push(format!("{slow} measurement(s) below their floor"));
    }
    if throttled > 0 {
        parts.push(format!("{throttled} measured while it throttled"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" — {} follow from it", parts.join(" and "))
    }
}

fn own_text(d: &Draft) -> String {
    d.own
        .iter()
        .map(|r| r.text.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

fn what(report: &Report, d: &Draft) -> String {
    match (d.kind, d.key) {
        (Kind::Corruption, Key::Pair(a, b)) => {
            let one_way = one_way(d);
            // The measurements that carried data the way the cause goes (bidir carries both).
            let carried = report
                .cells
                .iter()
                .filter(|c| c.op != Op::Latency && pair(c.src, c.dst) == pair(a, b))
                .filter(|c| c.op == Op::Bidir || one_way.is_none_or(|w| w == (c.src, c.dst)))
                .count();
            format!(
                "data arrived wrong in {} of {carried} measurements; no figure over this path \
                 can be trusted",
                d.cells.len()
            )
        }
        (Kind::Hang, _) => {
            let count = |kinds: &[FailureKind]| {
                d.cells
                    .iter()
                    .filter(|(c, _)| {
                        report
                            .cell(c.src, c.dst, c.op, c.engine)
                            .and_then(|c| c.failure.as_ref())
                            .is_some_and(|f| kinds.contains(&f.kind))
                    })
                    .count()
            };
            let broke = count(&[FailureKind::Hung, FailureKind::Crashed]);
            let left_out = count(&[FailureKind::Skipped]);
            format!(
                "copies hung or crashed the probe ({broke} measurement(s)); {left_out} more were \
                 left out after it"
            )
        }
        (Kind::NvlinkDown, key) => nvlinks_down(report, key, d) + &following(d),
        (Kind::NoPeerAccess, _) => d
            .cells
            .first()
            .map_or_else(String::new, |(_, rs)| rs[0].text.clone()),
        (Kind::BelowFloor, _) => {
            let worst = d
                .cells
                .iter()
                .filter_map(|(c, _)| report.cell(c.src, c.dst, c.op, c.engine))
                .filter_map(worst_share)
                .fold(f64::INFINITY, f64::min);
            format!(
                "{} measurement(s) below their floor (the worst at {:.0}% of what the path was \
                 built for), with no fault p2ptop can see",
                d.cells.len(),
                worst * 100.0
            )
        }
        (Kind::MeasurementError, _) => format!(
            "{} measurement(s) failed: {}",
            d.cells.len(),
            d.cells.first().map_or("", |(_, rs)| rs[0].text.as_str())
        ),
        (
            Kind::Throttling
            | Kind::PowerLimit
            | Kind::ErrorCounters
            | Kind::PcieTrainedDown
            | Kind::UnusableGpu,
            _,
        ) if !d.own.is_empty() => own_text(d) + &following(d),
        (Kind::Throttling | Kind::PowerLimit, _) => {
            format!("throttled while measuring{}", following(d))
        }
        (Kind::ProbeTrouble, _) => format!(
            "{} problem(s) with the probe: {}",
            d.messages.len(),
            d.messages.first().map_or("", |r| r.text.as_str())
        ),
        _ => d
            .messages
            .first()
            .map_or_else(|| own_text(d), |r| r.text.clone()),
    }
}

/// The lowest per-direction share of the built line rate in a cell.
fn worst_share(cell: &CellReport) -> Option<f64> {
    let built = cell.line_rate_gbps.filter(|l| *l > 0.0)?;
    cell.directions
        .iter()
        .map(|d| d.median_gbps / built)
        .reduce(f64::min)
}

/// `3 of 4 NVLinks between them up (down: GPU0 link 0, GPU1 link 2)` for a bridge; for a GPU
/// on a switch fabric, `NVLink 0 is down: 17 of 18 to the NVSwitch fabric up`.
fn nvlinks_down(report: &Report, key: Key, d: &Draft) -> String {
    let topology = &report.machine.topology;
    let down = |g: u32| -> Vec<u32> {
        topology
            .gpu(g)
            .map(|gpu| {
                gpu.nvlinks
                    .iter()
                    .filter(|l| !l.active)
                    .map(|l| l.link)
                    .collect()
            })
            .unwrap_or_default()
    };
    match key {
        Key::Pair(Node::Gpu(a), Node::Gpu(b)) => {
            let built = capacity::nvlinks_built(topology, a, b);
            let up = match topology.link(a, b) {
                Some(crate::model::topology::LinkType::NvLink(n)) => n,
                _ => 0,
            };
            let named: Vec<String> = [a, b]
                .iter()
                .flat_map(|&g| {
                    let links = down(g);
                    links.into_iter().map(move |l| format!("GPU{g} link {l}"))
                })
                .collect();
            format!(
                "{up} of {built} NVLinks between them up (down: {})",
                named.join(", ")
            )
        }
        Key::Gpu(g) => {
            let gpu = topology.gpu(g);
            let total = gpu.map_or(0, |g| g.nvlinks.len());
            let up = gpu.map_or(0, |g| g.nvlinks.iter().filter(|l| l.active).count());
            let to_switch = gpu.is_some_and(|gpu| {
                capacity::link_ends(gpu)
                    .iter()
                    .any(|(_, e)| *e == NvLinkRemote::Switch)
            });
            let links: Vec<String> = down(g).iter().map(u32::to_string).collect();
            let fabric = if to_switch {
                " to the NVSwitch fabric"
            } else {
                ""
            };
            format!(
                "NVLink {} {} down: {up} of {total}{fabric} up",
                links.join(", "),
                if links.len() == 1 { "is" } else { "are" }
            )
        }
        _ => own_text(d),
    }
}

/// What to tell the provider about a cause, or what to do before telling them.
fn advice(report: &Report, d: &Draft, subject: &str) -> String {
    match d.kind {
        Kind::Corruption => format!(
            "peer copies {subject} return wrong data: take the node out of service until its \
             GPUs and the path between them are checked (`dcgmi diag -r 3`)"
        ),
        Kind::Hang => format!(
            "copies {subject} hang: ask for the GPUs and the path to be checked (`dcgmi diag -r 3`, \
             Xid errors in the kernel log, IOMMU and ACS settings)"
        ),
        Kind::UnusableGpu if d.own.iter().any(|r| r.why == Why::Unusable { lost: true }) => {
            format!(
                "{subject} fell off the bus (GPU is lost): ask for it to be reseated or replaced \
                 (Xid 79 in the kernel log)"
            )
        }
        Kind::UnusableGpu => format!(
            "{subject} was not measured: it is not this job's, hidden from CUDA or in MIG mode; \
             run p2ptop where it is whole and yours"
        ),
        Kind::NvlinkDown => format!(
            "NVLinks of {subject} are down (`nvidia-smi nvlink -s` lists them): ask for the \
             bridge or baseboard to be reseated or replaced"
        ),
        Kind::NoPeerAccess => format!(
            "{subject} are joined by NVLink but the driver gives no peer access (`nvidia-smi topo \
             -p2p n`): ask for the driver and, on NVSwitch systems, the Fabric Manager to be \
             checked"
        ),
        Kind::PcieTrainedDown => format!(
            "{subject}'s PCIe link trains below what GPU and slot support: ask for the card to be \
             reseated and the riser, the slot's wiring and the firmware's PCIe speed setting \
             checked (`lspci -vv`: LnkSta against LnkCap)"
        ),
        Kind::BelowFloor => format!(
            "{subject} is slower than its link was built for with no fault p2ptop can see: send \
             this report; IOMMU, ACS or another workload on the GPUs are the usual suspects"
        ),
        Kind::MeasurementError => format!(
            "copies {subject} fail: ask for the driver and the kernel log (Xid errors) to be \
             checked"
        ),
        Kind::ErrorCounters => format!(
            "{subject} counts link errors beyond DCGM's limits: ask for its riser, bridge or \
             slot to be checked"
        ),
        Kind::Throttling => format!(
            "{subject} throttles: ask for its cooling (fans, airflow, a neighbour or bridge \
             blocking the intake) to be checked (`nvidia-smi -q -d PERFORMANCE,TEMPERATURE`)"
        ),
        Kind::PowerLimit => {
            let restore = match d.key {
                Key::Gpu(g) => report
                    .machine
                    .topology
                    .gpu(g)
                    .and_then(|gpu| gpu.default_power_limit_w)
                    .map(|w| format!("`sudo nvidia-smi -i {g} -pl {w:.0}`")),
                _ => None,
            };
            format!(
                "{subject} runs under a power cap (`nvidia-smi -q -d POWER`): ask why, or restore \
                 the board's default limit with {}",
                restore.unwrap_or_else(|| "`nvidia-smi -pl`".into())
            )
        }
        Kind::Interrupted => {
            "run `p2ptop check` again to the end before telling the provider anything".into()
        }
        Kind::ProbeTrouble => {
            "the probe had trouble: run `p2ptop check` again; if it recurs, send this report".into()
        }
    }
}
