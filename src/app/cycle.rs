//! What the live view asks the probe to measure next: one command at a time, the next sent when
//! the previous one's `done` arrives.
//!
//! A sweep cycles through every pair and op, one `measure` command each, the op on screen first;
//! stress loads every GPU pair with bidir copies and repeats.

use super::board::Board;
use super::feed::Feed;
use super::view::{MATRIX_OPS, Mode, View};
use crate::app::board::CellKey;
use crate::probe::protocol::{Command, Engine, Event, FailureKind, Node, Op, Pair, Settings};
use std::collections::VecDeque;

/// The command on its way through the probe.
#[derive(Clone, Debug, PartialEq)]
pub struct Running {
    pub id: u64,
    pub pairs: Vec<Pair>,
    pub op: Op,
    pub engine: Engine,
}

#[derive(Debug, Default)]
pub struct Cycle {
    next_id: u64,
    running: Option<Running>,
    /// What the sweep measures next, front first; refilled when empty.
    queue: VecDeque<(Pair, Op)>,
    /// The probe cannot be restarted: nothing more is sent.
    probe_gone: bool,
}

impl Cycle {
    pub fn new() -> Cycle {
        Cycle::default()
    }

    pub fn running(&self) -> Option<&Running> {
        self.running.as_ref()
    }

    /// Follows the feed: a `done` for the running command frees the probe for the next.
    pub fn observe(&mut self, feed: &Feed) {
        match feed {
            Feed::Probe(Event::Done { id, .. })
                if self.running.as_ref().is_some_and(|r| r.id == *id) =>
            {
                self.running = None;
            }
            // A probe's fatal event is not the end: the supervisor restarts it without the
            // pair that broke it and answers the running command. Only giving up is final.
            Feed::ProbeGone(_) => self.gone(),
            _ => {}
        }
    }

    /// The probe cannot take commands any more (its reason is on the board).
    pub fn gone(&mut self) {
        self.probe_gone = true;
        self.running = None;
    }

    /// Forgets the planned order, so the next command follows the view as it is now.
    pub fn replan(&mut self) {
        self.queue.clear();
    }

    /// The next command to send, if the probe is free and the view is not paused.
    pub fn next(&mut self, view: &View, board: &Board, settings: &Settings) -> Option<Command> {
        if view.paused || self.running.is_some() || self.probe_gone {
            return None;
        }
        let (pairs, op) = match view.mode {
            Mode::Stress => (stress_pairs(board, view.engine), Op::Bidir),
            Mode::Sweep => {
                if self.queue.is_empty() {
                    self.queue = sweep_order(board, view).into();
                }
                let (pair, op) = self.queue.pop_front()?;
                (vec![pair], op)
            }
        };
        if pairs.is_empty() {
            return None;
        }
        self.next_id += 1;
        let id = self.next_id;
        let command = match view.mode {
            Mode::Stress => stress_command(id, pairs.clone(), view.engine, settings.clone()),
            Mode::Sweep => Command::Measure {
                id,
                pairs: pairs.clone(),
                ops: vec![op],
                engines: vec![view.engine],
                settings: settings.clone(),
            },
        };
        self.running = Some(Running {
            id,
            pairs,
            op,
            engine: view.engine,
        });
        Some(command)
    }
}

/// The command that loads every pair in `pairs` with bidir copies, all at the same time.
pub fn stress_command(id: u64, pairs: Vec<Pair>, engine: Engine, settings: Settings) -> Command {
    Command::Stress {
        id,
        pairs,
        op: Op::Bidir,
        engines: vec![engine],
        settings,
    }
}

/// Every pair of different GPUs once (bidir covers both directions); on a machine with one
/// GPU, its host path. Pairs that cannot work are left out as in a sweep: the supervisor
/// answers a stress of nothing but such pairs at once, and asking again would spin.
fn stress_pairs(board: &Board, engine: Engine) -> Vec<Pair> {
    let gpus: Vec<u32> = board.topology.gpus.iter().map(|g| g.index).collect();
    let mut pairs = Vec::new();
    for (k, &a) in gpus.iter().enumerate() {
        for &b in &gpus[k + 1..] {
            pairs.push(Pair {
                src: Node::Gpu(a),
                dst: Node::Gpu(b),
            });
        }
    }
    if pairs.is_empty()
        && let Some(&g) = gpus.first()
    {
        pairs.push(Pair {
            src: Node::Gpu(g),
            dst: Node::Host,
        });
    }
    pairs.retain(|&pair| !hopeless(board, pair, Op::Bidir, engine));
    pairs
}

/// One sweep: the op on screen over every pair, then the other ops, then latency. Host → host
/// is no path; bidir covers both directions, so each unordered pair of different nodes is
/// measured once; pairs
/// whose last try hung or cannot work under this engine are left out.
pub fn sweep_order(board: &Board, view: &View) -> Vec<(Pair, Op)> {
    let nodes = board.nodes();
    let mut ops = vec![view.op];
    ops.extend(MATRIX_OPS.iter().filter(|&&o| o != view.op));
    ops.push(Op::Latency);
    let mut order = Vec::new();
    for op in ops {
        for &src in &nodes {
            for &dst in &nodes {
                let pair = Pair { src, dst };
                let skip = (src == Node::Host && dst == Node::Host)
                    || (op == Op::Bidir && src >= dst)
                    || hopeless(board, pair, op, view.engine);
                if !skip {
                    order.push((pair, op));
                }
            }
        }
    }
    order
}

/// Whether the last try of this cell showed it can never work: it hung, is not possible, or
/// was left out because its pair broke the probe (asking again would be answered at once, and
/// a sweep of nothing else would spin).
fn hopeless(board: &Board, pair: Pair, op: Op, engine: Engine) -> bool {
    let key = CellKey {
        src: pair.src,
        dst: pair.dst,
        op,
        engine,
    };
    board
        .cells
        .get(&key)
        .and_then(|c| c.failure.as_ref())
        .is_some_and(|f| {
            matches!(
                f.kind,
                FailureKind::Hung
                    | FailureKind::Skipped
                    | FailureKind::Unsupported
                    | FailureKind::Invalid
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(preset: &str) -> Board {
        let topology = crate::sim::load(preset).unwrap().topology();
        Board::new(topology, Some(preset.into()))
    }

    #[test]
    fn a_sweep_sends_one_command_at_a_time_and_the_next_after_done() {
        let board = board("3090-bridge");
        let view = View::new(3);
        let mut cycle = Cycle::new();
        let settings = Settings::default();
        let Some(Command::Measure { id, pairs, ops, .. }) = cycle.next(&view, &board, &settings)
        else {
            panic!("no first command");
        };
        assert_eq!((pairs.len(), ops.as_slice()), (1, &[Op::Read][..]));
        assert_eq!(cycle.next(&view, &board, &settings), None);
        cycle.observe(&Feed::Probe(Event::Done {
            id: id + 7,
            complete: true,
        }));
        assert_eq!(cycle.next(&view, &board, &settings), None);
        cycle.observe(&Feed::Probe(Event::Done { id, complete: true }));
        assert!(cycle.next(&view, &board, &settings).is_some());
    }

    #[test]
    fn a_sweep_covers_every_path_and_op_once() {
        let board = board("3090-bridge");
        let mut view = View::new(3);
        view.op = Op::Write;
        let order = sweep_order(&board, &view);
        // 3 nodes: 8 ordered paths (no host → host) for read, write and latency; 3 for bidir.
        assert_eq!(order.len(), 8 * 3 + 3);
        assert_eq!(order[0].1, Op::Write);
        assert_eq!(order.last().unwrap().1, Op::Latency);
    }

    #[test]
    fn a_probe_that_hangs_and_is_restarted_gets_the_next_command_and_giving_up_ends_the_sweep() {
        let board = board("3090-bridge");
        let view = View::new(3);
        let mut cycle = Cycle::new();
        let settings = Settings::default();
        let Some(Command::Measure { id, .. }) = cycle.next(&view, &board, &settings) else {
            panic!("no first command");
        };
        // The probe reports the hang and exits; the supervisor answers the command incomplete.
        cycle.observe(&Feed::Probe(Event::Fatal {
            message: "a copy hung".into(),
            cuda_error: None,
        }));
        cycle.observe(&Feed::Probe(Event::Done {
            id,
            complete: false,
        }));
        assert!(cycle.next(&view, &board, &settings).is_some());
        cycle.observe(&Feed::ProbeGone("failed 5 times".into()));
        assert_eq!(cycle.next(&view, &board, &settings), None);
    }

    #[test]
    fn a_sweep_leaves_out_what_hung_or_was_skipped_for_it() {
        let mut board = board("3090-bridge");
        let view = View::new(3);
        let hung = Pair {
            src: Node::Gpu(0),
            dst: Node::Host,
        };
        for (op, kind) in [
            (Op::Read, FailureKind::Hung),
            (Op::Write, FailureKind::Skipped),
        ] {
            let failure = crate::probe::session::Failure::new(kind, "hung");
            board.apply(&Feed::Probe(crate::probe::session::pair_error(
                1,
                hung,
                op,
                Engine::Sm,
                &failure,
            )));
        }
        let order = sweep_order(&board, &view);
        assert!(!order.contains(&(hung, Op::Read)));
        assert!(!order.contains(&(hung, Op::Write)));
        assert!(order.contains(&(hung, Op::Latency)));
    }

    #[test]
    fn stress_leaves_out_the_pairs_a_hang_broke_and_stops_asking_when_none_is_left() {
        let mut board = board("3090-bridge");
        let mut view = View::new(3);
        view.mode = Mode::Stress;
        let pair = Pair {
            src: Node::Gpu(0),
            dst: Node::Gpu(1),
        };
        let failure = crate::probe::session::Failure::new(FailureKind::Skipped, "left out");
        board.apply(&Feed::Probe(crate::probe::session::pair_error(
            1,
            pair,
            Op::Bidir,
            Engine::Sm,
            &failure,
        )));
        assert_eq!(Cycle::new().next(&view, &board, &Settings::default()), None);
        view.engine = Engine::Ce;
        assert!(
            Cycle::new()
                .next(&view, &board, &Settings::default())
                .is_some()
        );
    }

    #[test]
    fn stress_loads_every_gpu_pair_with_bidir_and_pausing_sends_nothing() {
        let board = board("4090x4");
        let mut view = View::new(5);
        view.mode = Mode::Stress;
        let mut cycle = Cycle::new();
        let Some(Command::Stress { pairs, op, .. }) =
            cycle.next(&view, &board, &Settings::default())
        else {
            panic!("no stress command");
        };
        assert_eq!((pairs.len(), op), (6, Op::Bidir));
        let mut paused = Cycle::new();
        view.paused = true;
        assert_eq!(paused.next(&view, &board, &Settings::default()), None);
    }
}
