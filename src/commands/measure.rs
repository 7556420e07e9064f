//! One headless pass over a machine, shared by `run` and `check`: check the request, send the
//! probe one command per pair, fill the board until every command is done or the user
//! interrupts, and build the report. The plan says which measurements: every pair and op, or
//! the few of `check --quick`.

use super::Failure;
use super::stop::{self, StopRequest};
use crate::app::board::Board;
use crate::app::feed::Feed;
use crate::cli::{MachineArgs, RunArgs};
use crate::exit;
use crate::model::topology::Topology;
use crate::probe::protocol::{Command, Engine, Event, Node, Op, Pair, Settings};
use crate::report::run::{Report, RunInfo};
use crate::report::seen::TelemetrySeen;
use crate::source::Connection;
use std::io::IsTerminal;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

/// A buffer may take at most this share of a GPU's memory: a GPU holds a source and a
/// destination buffer at once, and the driver needs room of its own.
const MAX_BUFFER_SHARE_OF_MEMORY: f64 = 0.45;

/// How long to wait for the probe to finish its sample after a stop request: a sample lasts
/// tens of milliseconds, and the whole stop must take less than a second.
const STOP_GRACE: Duration = Duration::from_millis(500);

/// Telemetry for `check --quick`: often enough that every GPU's host copy spans frames.
const QUICK_TELEMETRY: Duration = Duration::from_millis(100);

/// Which measurements a headless pass makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Every pair and op: `run` and `check`.
    Full,
    /// `check --quick`: the fewest that still catch a down link, a trained-down PCIe link,
    /// missing peer access and corruption (see [`quick_plan`]).
    Quick,
}

/// Measures the selected GPUs (and the host) as `plan` says and returns the report; `complete`
/// is false in it when `stop` was requested first. `accept` sees the machine before anything is
/// measured and may refuse it (a baseline of another machine).
pub fn measure(
    machine: &MachineArgs,
    args: &RunArgs,
    plan_kind: Plan,
    accept: &dyn Fn(&Topology) -> Result<(), Failure>,
    stop: &StopRequest,
) -> Result<Report, Failure> {
    let telemetry = machine.telemetry_interval(match plan_kind {
        Plan::Full => crate::nvml::sampler::DEFAULT_INTERVAL,
        Plan::Quick => QUICK_TELEMETRY,
    });
    let conn = connect_unless_stopped(machine, telemetry, stop)?;
    let (nodes, left_out) = selected_nodes(&conn.topology, machine.devices.as_deref())?;
    for line in left_out {
        super::note(&format!("p2ptop: {line}\n"));
    }
    let settings = Settings {
        buffer_mib: args.buffer_mib,
        samples: args.samples,
        ..Settings::default()
    };
    settings
        .check()
        .map_err(|m| Failure::new(exit::USAGE, format!("--buffer-mib or --samples: {m}")))?;
    check_buffer_fits(&conn.topology, &nodes, args.buffer_mib)?;
    if let Some(warning) = buffer_in_cache(&conn.topology, &nodes, args.buffer_mib) {
        eprintln!("p2ptop: warning: {warning}");
    }
    accept(&conn.topology)?;
    let (engines, work) = match plan_kind {
        Plan::Full => (args.engine.engines(), plan(&nodes)),
        // Only SM kernels need peer access (copy engines stage through the host without it),
        // so only they prove it.
        Plan::Quick => (vec![Engine::Sm], quick_plan(&nodes)),
    };
    let mut board = Board::new(conn.topology.clone(), conn.simulated.clone());
    let mut seen = TelemetrySeen::default();
    for (id, (pair, ops)) in work.iter().enumerate() {
        let settings = match plan_kind {
            Plan::Quick if pair.src == Node::Host || pair.dst == Node::Host => {
                spanning_telemetry(&settings, telemetry)
            }
            _ => settings.clone(),
        };
        conn.send(Command::Measure {
            id: id as u64,
            pairs: vec![*pair],
            ops: ops.clone(),
            engines: engines.clone(),
            settings,
        });
    }
    let progress = Progress::new(work.len());
    let started = std::time::Instant::now();
    let complete = follow(&conn, &mut board, &mut seen, stop, &progress, work.len());
    progress.finish();
    let elapsed_s = started.elapsed().as_secs_f64();
    Ok(Report::build(
        &board,
        &seen,
        RunInfo {
            command_line: std::env::args().collect::<Vec<_>>().join(" "),
            started_at: now_rfc3339(),
            buffer_mib: args.buffer_mib,
            samples: args.samples,
            engines,
            complete,
            elapsed_s,
            // The simulated machine's clock drives its telemetry's timestamps.
            simulated_s: board.simulated.is_some().then(|| seen.seconds()),
        },
    ))
}

/// Opens the machine on a thread of its own and waits for it while watching `stop`: the probe
/// may take up to a minute to greet (or never do), and a large machine file takes seconds to
/// build. When stopped first, nothing has been measured and there is no machine to report on;
/// the thread is left behind, and the probe dies with p2ptop.
fn connect_unless_stopped(
    machine: &MachineArgs,
    telemetry: Duration,
    stop: &StopRequest,
) -> Result<Connection, Failure> {
    let (opened, opening) = mpsc::channel();
    let machine = machine.clone();
    thread::spawn(move || {
        let _ = opened.send(super::connect(&machine, false, telemetry));
    });
    loop {
        match opening.recv_timeout(stop::POLL) {
            Ok(connection) => return connection,
            Err(RecvTimeoutError::Timeout) if stop.requested() => {
                return Err(Failure::new(
                    exit::INTERRUPTED,
                    "interrupted while the machine was being opened: nothing was measured and \
                     no report was written",
                ));
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Failure::new(
                    exit::INTERNAL,
                    "opening the machine ended without an answer",
                ));
            }
        }
    }
}

/// Reads the feed into the board until `commands` are done; false when stopped first.
fn follow(
    conn: &Connection,
    board: &mut Board,
    seen: &mut TelemetrySeen,
    stop: &StopRequest,
    progress: &Progress,
    commands: usize,
) -> bool {
    let mut done = 0;
    let mut stopping_since = None;
    while done < commands {
        if stop.requested() && stopping_since.is_none() {
            conn.send(Command::Stop);
            stopping_since = Some(std::time::Instant::now());
        }
        if stopping_since.is_some_and(|t| t.elapsed() > STOP_GRACE) {
            return false;
        }
        let Ok(feed) = conn.feed.recv_timeout(stop::POLL) else {
            continue;
        };
        board.apply(&feed);
        seen.apply(&feed);
        match &feed {
            Feed::Probe(Event::Done { complete, .. }) => {
                done += 1;
                progress.show(done, board);
                if !complete && stopping_since.is_some() {
                    return false;
                }
            }
            Feed::ProbeTrouble(message) | Feed::ProbeGone(message) => progress.note(message),
            _ => {}
        }
    }
    stopping_since.is_none()
}

/// The GPUs to measure (all, or `--devices`), then the host; and a line for each GPU left out
/// because it cannot be measured.
pub fn selected_nodes(
    topology: &Topology,
    devices: Option<&[u32]>,
) -> Result<(Vec<Node>, Vec<String>), Failure> {
    if topology.gpus.is_empty() {
        return Err(Failure::new(exit::ENVIRONMENT, "this machine has no GPU"));
    }
    let selected = topology
        .only(devices)
        .map_err(|e| Failure::new(exit::USAGE, format!("--devices: {e}")))?;
    let (mut nodes, mut left_out) = (Vec::new(), Vec::new());
    for gpu in &selected.gpus {
        match gpu.not_measurable() {
            None => nodes.push(Node::Gpu(gpu.index)),
            // Asked for by name, it is a mistake; found among all, a fact to report.
            Some(why) if devices.is_some() => {
                return Err(Failure::new(
                    exit::USAGE,
                    format!("--devices: GPU{} cannot be measured: {why}", gpu.index),
                ));
            }
            Some(why) => left_out.push(format!("GPU{} is not measured: {why}", gpu.index)),
        }
    }
    if nodes.is_empty() {
        return Err(Failure::new(
            exit::ENVIRONMENT,
            format!(
                "no GPU of this machine can be measured: {}",
                left_out.join("; ")
            ),
        ));
    }
    nodes.push(Node::Host);
    Ok((nodes, left_out))
}

pub fn check_buffer_fits(
    topology: &Topology,
    nodes: &[Node],
    buffer_mib: u64,
) -> Result<(), Failure> {
    for node in nodes {
        let Node::Gpu(g) = node else { continue };
        let Some(memory) = topology.gpu(*g).and_then(|gpu| gpu.memory_mib) else {
            continue;
        };
        let most = (memory as f64 * MAX_BUFFER_SHARE_OF_MEMORY) as u64;
        if buffer_mib > most {
            return Err(Failure::new(
                exit::USAGE,
                format!(
                    "--buffer-mib {buffer_mib} is too large for GPU{g} ({memory} MiB): it holds a \
                     source and a destination buffer at once; use at most {most}"
                ),
            ));
        }
    }
    Ok(())
}

/// A buffer under this many times a GPU's L2 cache may be served from it in part.
const L2_MARGIN: u64 = 2;

/// Why a `buffer_mib` buffer may measure a selected GPU's L2 cache rather than its memory, if
/// it may: device-local copies (and the chase) then read the cache.
pub fn buffer_in_cache(topology: &Topology, nodes: &[Node], buffer_mib: u64) -> Option<String> {
    let (gpu, l2) = nodes
        .iter()
        .filter_map(|node| match node {
            Node::Gpu(g) => Some((*g, topology.gpu(*g)?.l2_cache_bytes?)),
            Node::Host => None,
        })
        .max_by_key(|&(g, l2)| (l2, std::cmp::Reverse(g)))?;
    let least_mib = (L2_MARGIN * l2).div_ceil(1 << 20);
    (buffer_mib < least_mib).then(|| {
        format!(
            "--buffer-mib {buffer_mib} is under {L2_MARGIN}× GPU{gpu}'s L2 cache ({} MiB): \
             figures may measure the cache, not memory; use at least {least_mib}",
            l2 >> 20
        )
    })
}

/// Every pair and its ops: between GPUs both ways (read, write, latency; bidir once per
/// pair), each GPU with itself (device-local read and write, latency), and each GPU with the
/// host both ways (read, write, latency; bidir once).
pub fn plan(nodes: &[Node]) -> Vec<(Pair, Vec<Op>)> {
    let mut work = Vec::new();
    for (i, &src) in nodes.iter().enumerate() {
        for (j, &dst) in nodes.iter().enumerate() {
            if src == Node::Host && dst == Node::Host {
                continue;
            }
            let mut ops = vec![Op::Read, Op::Write];
            if i < j {
                ops.push(Op::Bidir);
            }
            ops.push(Op::Latency);
            work.push((Pair { src, dst }, ops));
        }
    }
    work
}

/// `check --quick`: one SM bidir per pair of nodes, the host included, and nothing else.
///
/// Each bidir pushes both ways at once, so every ordered pair of GPUs is written once: a pair
/// without working peer access fails (SM copies need it), a corrupting direction is verified,
/// and on NVSwitch every GPU's fabric ports are loaded seven times over. Each GPU's host bidir
/// loads its PCIe link both ways while telemetry reads the generation and width it trains to.
/// NVLinks that are down, and error counters, come from the topology and telemetry. Left out,
/// because no fault in that list needs them: latency, device-local copies, separate reads and
/// writes, and the copy engines.
pub fn quick_plan(nodes: &[Node]) -> Vec<(Pair, Vec<Op>)> {
    let mut work = Vec::new();
    for (i, &src) in nodes.iter().enumerate() {
        for &dst in &nodes[i + 1..] {
            work.push((Pair { src, dst }, vec![Op::Bidir]));
        }
    }
    work
}

/// Settings under which one measurement lasts at least two telemetry intervals, so a frame is
/// read while the link carries it: a PCIe link trains down while idle, and only a reading under
/// load says whether it reaches its maximum.
fn spanning_telemetry(settings: &Settings, telemetry: Duration) -> Settings {
    let per_sample_ms = 2.0 * telemetry.as_secs_f64() * 1e3 / f64::from(settings.samples.max(1));
    Settings {
        min_sample_ms: settings.min_sample_ms.max(per_sample_ms),
        ..settings.clone()
    }
}

/// Progress on stderr when it is a terminal; silent otherwise.
struct Progress {
    total: usize,
    shown: bool,
}

impl Progress {
    fn new(total: usize) -> Progress {
        Progress {
            total,
            shown: std::io::stderr().is_terminal(),
        }
    }

    fn show(&self, done: usize, board: &Board) {
        if self.shown {
            let what = match &board.simulated {
                Some(n) => format!(" (SIMULATED: {n})"),
                None if board.topology.host.emulated() => " (EMULATED drivers)".to_owned(),
                None => String::new(),
            };
            super::note(&format!(
                "\r\x1b[Kmeasured {done} of {} pairs{what}",
                self.total
            ));
        }
    }

    fn note(&self, message: &str) {
        if self.shown {
            super::note(&format!("\r\x1b[K{message}\n"));
        }
    }

    fn finish(&self) {
        if self.shown {
            super::note("\r\x1b[K");
        }
    }
}

/// The current time as RFC 3339 in UTC.
fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_the_l2_cache_could_hold_is_warned_about() {
        let topology = crate::sim::load("hgx-h100").unwrap().topology();
        let nodes = [Node::Gpu(0), Node::Gpu(1), Node::Host];
        let warning = buffer_in_cache(&topology, &nodes, 64).expect("64 MiB < 2 × 50 MiB");
        assert!(warning.contains("GPU0's L2 cache (50 MiB)"), "{warning}");
        assert!(warning.contains("use at least 100"), "{warning}");
        assert_eq!(buffer_in_cache(&topology, &nodes, 100), None);
        assert_eq!(buffer_in_cache(&topology, &[Node::Host], 1), None);
    }

    #[test]
    fn a_stop_ends_the_wait_on_a_silent_probe_within_a_second() {
        // A hang on the wall clock: the probe says nothing for the whole sample deadline.
        let mut machine = crate::sim::load("3090-bridge").unwrap();
        machine.hang.push((Node::Gpu(0), Node::Gpu(1)));
        let pacing = crate::source::simulated::Pacing::WallClock {
            telemetry: Duration::from_millis(100),
        };
        let conn = crate::source::simulated::open(machine, "hang", 1, pacing);
        conn.send(Command::Measure {
            id: 0,
            pairs: vec![Pair {
                src: Node::Gpu(0),
                dst: Node::Gpu(1),
            }],
            ops: vec![Op::Read],
            engines: vec![Engine::Sm],
            settings: Settings::default(),
        });
        let mut board = Board::new(conn.topology.clone(), conn.simulated.clone());
        let started = std::time::Instant::now();
        let complete = follow(
            &conn,
            &mut board,
            &mut TelemetrySeen::default(),
            &StopRequest::made(true),
            &Progress::new(1),
            1,
        );
        assert!(!complete);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn the_plan_covers_every_flow_and_bidir_once() {
        let work = plan(&[Node::Gpu(0), Node::Gpu(1), Node::Host]);
        assert_eq!(work.len(), 8); // 3 × 3 minus host → host
        let bidirs = work
            .iter()
            .filter(|(_, ops)| ops.contains(&Op::Bidir))
            .count();
        assert_eq!(bidirs, 3); // 0↔1, 0↔host, 1↔host
        assert!(work.iter().all(|(_, ops)| ops.contains(&Op::Latency)));
    }

    #[test]
    fn the_quick_plan_is_one_bidir_per_pair_of_nodes_and_nothing_else() {
        let mut nodes: Vec<Node> = (0..8).map(Node::Gpu).collect();
        nodes.push(Node::Host);
        let work = quick_plan(&nodes);
        assert_eq!(work.len(), 36); // 28 GPU pairs + 8 host paths
        assert!(
            work.iter()
                .all(|(p, ops)| ops == &[Op::Bidir] && p.src != p.dst)
        );
        // Every ordered pair of different nodes is one direction of exactly one bidir.
        for &a in &nodes {
            for &b in nodes.iter().filter(|&&b| b != a) {
                let covering = work
                    .iter()
                    .filter(|(p, _)| (p.src, p.dst) == (a, b) || (p.src, p.dst) == (b, a))
                    .count();
                assert_eq!(covering, 1, "{a} → {b}");
            }
        }
    }

    #[test]
    fn a_host_measurement_spans_two_telemetry_intervals() {
        let settings = Settings::default(); // 5 samples of at least 10 ms
        let spanning = spanning_telemetry(&settings, Duration::from_millis(100));
        assert_eq!(spanning.min_sample_ms, 40.0);
        let long = spanning_telemetry(&settings, Duration::from_millis(10));
        assert_eq!(long.min_sample_ms, settings.min_sample_ms);
    }
}
