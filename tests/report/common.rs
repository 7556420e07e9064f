//! A simulated run that fills a board and the telemetry summary the way `p2ptop run` does.

use p2ptop::app::board::Board;
use p2ptop::app::feed::Feed;
use p2ptop::probe::protocol::{Command, Engine, Node, Op, Pair, Settings};
use p2ptop::probe::session;
use p2ptop::report::run::{Report, RunInfo};
use p2ptop::report::seen::TelemetrySeen;
use p2ptop::sim::{self, machine::Machine, simulation::Simulation};
use std::sync::mpsc;

pub struct Run {
    pub sim: Simulation,
    pub board: Board,
    pub seen: TelemetrySeen,
}

impl Run {
    pub fn new(machine: Machine) -> Run {
        let board = Board::new(machine.topology(), Some(machine.name.clone()));
        let mut run = Run {
            sim: Simulation::new(machine, 7),
            board,
            seen: TelemetrySeen::default(),
        };
        run.telemetry();
        run
    }

    pub fn preset(name: &str) -> Run {
        Run::new(sim::load(name).unwrap())
    }

    fn feed(&mut self, feed: Feed) {
        self.board.apply(&feed);
        self.seen.apply(&feed);
    }

    pub fn telemetry(&mut self) {
        let frame = self.sim.telemetry();
        self.feed(Feed::Telemetry(frame));
    }

    /// One command through the probe's session loop, then a telemetry frame.
    pub fn measure(&mut self, pairs: Vec<Pair>, ops: &[Op], engines: &[Engine]) {
        let (tx, rx) = mpsc::channel();
        tx.send(Ok(Command::Measure {
            id: 1,
            pairs,
            ops: ops.to_vec(),
            engines: engines.to_vec(),
            settings: Settings::default(),
        }))
        .unwrap();
        drop(tx);
        let mut events = Vec::new();
        session::run(&mut self.sim, rx, &mut |e| events.push(e.clone()));
        for e in events {
            self.feed(Feed::Probe(e));
        }
        self.telemetry();
    }

    /// write and read with both engines over every pair of `nodes` (diagonal included), bidir
    /// with the copy engines off the diagonal, latency between GPUs.
    pub fn sweep(&mut self, nodes: &[Node]) -> &mut Run {
        let both = [Engine::Sm, Engine::Ce];
        self.measure(pairs(nodes, true), &[Op::Write, Op::Read], &both);
        self.measure(pairs(nodes, false), &[Op::Bidir], &[Engine::Ce]);
        let gpus: Vec<Node> = nodes.iter().copied().filter(|n| *n != Node::Host).collect();
        self.measure(pairs(&gpus, false), &[Op::Latency], &[Engine::Sm]);
        self
    }

    /// The report, with the simulated machine's clock as the run's simulated duration.
    /// What `p2ptop check` sends: one command per pair of `nodes` with its ops and both engines.
    pub fn as_check(&mut self, nodes: &[Node]) -> &mut Run {
        for (pair, ops) in p2ptop::commands::measure::plan(nodes) {
            self.measure(vec![pair], &ops, &[Engine::Sm, Engine::Ce]);
        }
        self
    }

    pub fn report(&self) -> Report {
        let run = RunInfo {
            simulated_s: Some(self.sim.now_s()),
            ..info(true)
        };
        Report::build(&self.board, &self.seen, run)
    }
}

pub fn info(complete: bool) -> RunInfo {
    RunInfo {
        command_line: "p2ptop run --sim test".into(),
        started_at: "2025-01-31T14:05:00Z".into(),
        buffer_mib: 512,
        samples: 5,
        engines: vec![Engine::Sm, Engine::Ce],
        complete,
        elapsed_s: 1.5,
        simulated_s: None,
    }
}

/// Every ordered pair of `nodes` but host → host; with or without the diagonal.
pub fn pairs(nodes: &[Node], diagonal: bool) -> Vec<Pair> {
    let mut out = Vec::new();
    for &src in nodes {
        for &dst in nodes {
            if (src == dst && (!diagonal || src == Node::Host))
                || (src == Node::Host && dst == Node::Host)
            {
                continue;
            }
            out.push(Pair { src, dst });
        }
    }
    out
}

pub fn gpus(n: u32) -> Vec<Node> {
    (0..n).map(Node::Gpu).collect()
}

pub fn with_host(n: u32) -> Vec<Node> {
    let mut nodes = gpus(n);
    nodes.push(Node::Host);
    nodes
}

pub fn gpu_pair(a: u32, b: u32) -> Pair {
    Pair {
        src: Node::Gpu(a),
        dst: Node::Gpu(b),
    }
}

/// A preset with faults added, through a machine file as a user would write it.
pub fn with_faults(preset: &str, faults: &str) -> Machine {
    let path = std::env::temp_dir().join(format!(
        "p2ptop-report-{}-{preset}-{}.toml",
        std::process::id(),
        fastrand::u64(..)
    ));
    let file = format!(
        "name = \"{preset}-faulty\"\nsummary = \"{preset} with faults\"\npreset = \"{preset}\"\n{faults}"
    );
    std::fs::write(&path, file).unwrap();
    let machine = sim::load(path.to_str().unwrap());
    std::fs::remove_file(&path).unwrap();
    machine.unwrap()
}

/// A fresh scratch directory for files.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("p2ptop-report-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
