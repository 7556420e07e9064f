//! The probe's command loop, apart from CUDA: read commands, run each measurement through a
//! [`Measurer`], turn failures into events, and honour `stop`.
//!
//! `p2ptop-probe` plugs its CUDA engine in; tests plug in fakes, so the rules here (one pair's
//! failure never stops the rest, a fatal one stops everything, stop ends only the running
//! command) are checked without a GPU.

use super::driver_error::DriverError;
use super::protocol::{Command, Engine, Event, FailureKind, Op, Pair, Settings};
use std::collections::VecDeque;
use std::io::BufRead;
use std::sync::mpsc::{self, Receiver, TryRecvError};

/// Where a measurement's events go, and how it learns that it should stop early.
pub trait Control {
    fn emit(&mut self, event: Event);
    /// Polled between samples.
    fn stop_requested(&mut self) -> bool;
}

/// Something that measures one (pair, op, engine), or several pairs at once: the CUDA engine,
/// the simulator, or a test's fake. The command loop has checked the settings (and that a
/// stress op is a load) before either is called.
pub trait Measurer {
    fn measure(
        &mut self,
        id: u64,
        pair: Pair,
        op: Op,
        engine: Engine,
        settings: &Settings,
        control: &mut dyn Control,
    ) -> Result<Finish, Failure>;

    /// Measures every pair of `pairs` at once. Pairs that cannot take part are reported with
    /// [`pair_error`] through `control` and left out; an `Err` fails all of them.
    fn measure_together(
        &mut self,
        id: u64,
        pairs: &[Pair],
        op: Op,
        engine: Engine,
        settings: &Settings,
        control: &mut dyn Control,
    ) -> Result<Finish, Failure>;
}

/// The event that reports `failure` for one (pair, op, engine).
pub fn pair_error(id: u64, pair: Pair, op: Op, engine: Engine, failure: &Failure) -> Event {
    Event::PairError {
        id,
        pair,
        op,
        engine,
        kind: failure.kind,
        message: failure.message.clone(),
        cuda_error: failure.cuda_error,
    }
}

/// How a measurement ended when it did not fail.
#[derive(Debug, PartialEq, Eq)]
pub enum Finish {
    Complete,
    Stopped,
}

/// Why a measurement did not finish.
#[derive(Debug)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
    pub cuda_error: Option<i32>,
    /// The GPU state can no longer be trusted (hung work, a faulted context): the probe must exit.
    pub fatal: bool,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
            cuda_error: None,
            fatal: false,
        }
    }
}

impl From<DriverError> for Failure {
    fn from(err: DriverError) -> Failure {
        Failure {
            kind: FailureKind::Driver,
            message: err.to_string(),
            cuda_error: Some(err.code),
            fatal: false,
        }
    }
}

/// How the whole session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// Input closed and every command ran.
    Finished,
    /// A fatal failure; its `fatal` event has been emitted.
    Fatal,
}

/// Parses `input` line by line on its own thread, so a stop arrives while a measurement runs.
pub fn read_commands<R: BufRead + Send + 'static>(input: R) -> Receiver<Result<Command, String>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in input.lines() {
            let Ok(line) = line else { break };
            if line.trim().is_empty() {
                continue;
            }
            let parsed = Command::from_line(&line).map_err(|err| format!("{err} in: {line}"));
            if tx.send(parsed).is_err() {
                break;
            }
        }
    });
    rx
}

/// Runs every command from `commands` through `measurer`, sending events to `emit`.
pub fn run(
    measurer: &mut dyn Measurer,
    commands: Receiver<Result<Command, String>>,
    emit: &mut dyn FnMut(&Event),
) -> End {
    let mut session = Session {
        commands,
        pending: VecDeque::new(),
        emit,
    };
    while let Some(command) = session.next_command() {
        let (id, complete) = match command {
            Command::Measure {
                id,
                pairs,
                ops,
                engines,
                settings,
            } => {
                let mut outcome = Outcome::Complete;
                for (pair, op, engine) in work(&pairs, &ops, &engines) {
                    let result = match settings.check() {
                        Ok(()) => measurer.measure(id, pair, op, engine, &settings, &mut session),
                        Err(m) => Err(Failure::new(FailureKind::Invalid, m)),
                    };
                    outcome = session.judge(id, &[pair], op, engine, result);
                    if outcome != Outcome::Complete {
                        break;
                    }
                }
                (id, outcome)
            }
            Command::Stress {
                id,
                pairs,
                op,
                engines,
                settings,
            } => {
                let mut outcome = Outcome::Complete;
                for engine in engines {
                    let result = match stress_problem(op, &settings) {
                        None => measurer.measure_together(
                            id,
                            &pairs,
                            op,
                            engine,
                            &settings,
                            &mut session,
                        ),
                        Some(m) => Err(Failure::new(FailureKind::Invalid, m)),
                    };
                    outcome = session.judge(id, &pairs, op, engine, result);
                    if outcome != Outcome::Complete {
                        break;
                    }
                }
                (id, outcome)
            }
            Command::Stop => continue, // a stop with nothing running has nothing to stop
        };
        if complete == Outcome::Fatal {
            return End::Fatal;
        }
        session.emit(Event::Done {
            id,
            complete: complete == Outcome::Complete,
        });
    }
    End::Finished
}

/// Why a stress command cannot run at all, if it cannot.
fn stress_problem(op: Op, settings: &Settings) -> Option<String> {
    if op == Op::Latency {
        return Some(
            "stress loads pairs with read, write or bidir; latency is measured one pair at a time"
                .into(),
        );
    }
    settings.check().err()
}

/// How one measurement went, for the command it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Finished, or failed for its pairs only: the command goes on.
    Complete,
    Stopped,
    /// The fatal event has been sent; the session ends.
    Fatal,
}

/// Every (pair, op, engine) of a command, pairs outermost. Latency is a kernel measurement,
/// independent of the engine: it runs once per pair, under the first engine named.
pub fn work(pairs: &[Pair], ops: &[Op], engines: &[Engine]) -> Vec<(Pair, Op, Engine)> {
    let mut items = Vec::new();
    for &pair in pairs {
        for &op in ops {
            let engines = if op == Op::Latency {
                &engines[..engines.len().min(1)]
            } else {
                engines
            };
            items.extend(engines.iter().map(|&engine| (pair, op, engine)));
        }
    }
    items
}

/// Commands from the reader, and the ones that arrived while a measurement was running.
struct Session<'a> {
    commands: Receiver<Result<Command, String>>,
    pending: VecDeque<Command>,
    emit: &'a mut dyn FnMut(&Event),
}

impl Session<'_> {
    /// Turns a measurement's end into events: a failure is reported for each of its pairs,
    /// and a fatal one ends the session with a `fatal` event.
    fn judge(
        &mut self,
        id: u64,
        pairs: &[Pair],
        op: Op,
        engine: Engine,
        result: Result<Finish, Failure>,
    ) -> Outcome {
        match result {
            Ok(Finish::Complete) => Outcome::Complete,
            Ok(Finish::Stopped) => Outcome::Stopped,
            Err(failure) => {
                for &pair in pairs {
                    self.emit(pair_error(id, pair, op, engine, &failure));
                }
                if failure.fatal {
                    self.emit(Event::Fatal {
                        message: failure.message,
                        cuda_error: failure.cuda_error,
                    });
                    return Outcome::Fatal;
                }
                Outcome::Complete
            }
        }
    }

    /// The next command to run; `None` once input is closed and everything has run.
    fn next_command(&mut self) -> Option<Command> {
        if let Some(command) = self.pending.pop_front() {
            return Some(command);
        }
        loop {
            match self.commands.recv().ok()? {
                Ok(command) => return Some(command),
                Err(message) => self.emit(Event::BadCommand { message }),
            }
        }
    }
}

impl Control for Session<'_> {
    fn emit(&mut self, event: Event) {
        (self.emit)(&event);
    }

    fn stop_requested(&mut self) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(Ok(Command::Stop)) => return true,
                Ok(Ok(command)) => self.pending.push_back(command),
                Ok(Err(message)) => self.emit(Event::BadCommand { message }),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::protocol::Node;
    use std::io::Cursor;

    /// A measurer that fails on chosen pairs and stops when told.
    struct Fake {
        fail_on: Option<(Pair, bool)>,
        measured: Vec<(Pair, Op, Engine)>,
    }

    impl Fake {
        /// A fake that fails on `fail_on`'s pair (fatally if its flag says so).
        fn new(fail_on: Option<(Pair, bool)>) -> Fake {
            Fake {
                fail_on,
                measured: vec![],
            }
        }
    }

    impl Measurer for Fake {
        fn measure(
            &mut self,
            id: u64,
            pair: Pair,
            op: Op,
            engine: Engine,
            _settings: &Settings,
            control: &mut dyn Control,
        ) -> Result<Finish, Failure> {
            self.measured.push((pair, op, engine));
            if let Some((bad, fatal)) = self.fail_on
                && bad == pair
            {
                return Err(Failure {
                    fatal,
                    ..Failure::new(FailureKind::Unsupported, "no peer access")
                });
            }
            if control.stop_requested() {
                return Ok(Finish::Stopped);
            }
            control.emit(Event::Done {
                id: id + 1000,
                complete: true,
            });
            Ok(Finish::Complete)
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
            // Recorded as one entry: the first pair stands for the group.
            match self.measure(id, pairs[0], op, engine, settings, control) {
                Ok(_) if pairs.iter().any(|p| Some(*p) == self.fail_on.map(|f| f.0)) => {
                    Err(Failure::new(FailureKind::Driver, "one of the pairs failed"))
                }
                other => other,
            }
        }
    }

    fn gpu_pair(src: u32, dst: u32) -> Pair {
        Pair {
            src: Node::Gpu(src),
            dst: Node::Gpu(dst),
        }
    }

    fn run_lines(fake: &mut Fake, input: &str) -> (End, Vec<Event>) {
        let mut events = Vec::new();
        let commands = read_commands(Cursor::new(input.to_string()));
        let end = run(fake, commands, &mut |e| events.push(e.clone()));
        (end, events)
    }

    const TWO_PAIRS: &str = r#"{"cmd":"measure","id":1,"pairs":[{"src":0,"dst":1},{"src":1,"dst":0}],"ops":["read"],"engines":["sm","ce"]}"#;

    #[test]
    fn one_pairs_failure_is_an_event_and_the_rest_still_run() {
        let mut fake = Fake::new(Some((gpu_pair(0, 1), false)));
        let (end, events) = run_lines(&mut fake, TWO_PAIRS);
        assert_eq!(end, End::Finished);
        assert_eq!(
            fake.measured.len(),
            4,
            "both pairs, both engines: {:?}",
            fake.measured
        );
        let errors = events
            .iter()
            .filter(|e| matches!(e, Event::PairError { .. }))
            .count();
        assert_eq!(errors, 2, "{events:?}");
        assert_eq!(
            events.last(),
            Some(&Event::Done {
                id: 1,
                complete: true
            })
        );
    }

    #[test]
    fn a_fatal_failure_ends_the_session_with_a_fatal_event() {
        let mut fake = Fake::new(Some((gpu_pair(0, 1), true)));
        let (end, events) = run_lines(&mut fake, TWO_PAIRS);
        assert_eq!(end, End::Fatal);
        assert_eq!(fake.measured.len(), 1);
        assert!(
            matches!(events.last(), Some(Event::Fatal { .. })),
            "{events:?}"
        );
    }

    #[test]
    fn stop_ends_the_running_command_and_later_commands_still_run() {
        let mut fake = Fake::new(None);
        let input = format!(
            "{TWO_PAIRS}\n{}\n{}\n",
            r#"{"cmd":"stop"}"#,
            r#"{"cmd":"measure","id":2,"pairs":[{"src":"host","dst":0}],"ops":["write"],"engines":["sm"]}"#
        );
        let mut events = Vec::new();
        let commands = read_commands(Cursor::new(input));
        // Let the reader queue every line first, so the stop is waiting when measuring starts.
        std::thread::sleep(std::time::Duration::from_millis(100));
        let end = run(&mut fake, commands, &mut |e| events.push(e.clone()));
        assert_eq!(end, End::Finished);
        let done: Vec<_> = events
            .iter()
            .filter(|e| matches!(e, Event::Done { id: 1 | 2, .. }))
            .collect();
        assert_eq!(
            done,
            vec![
                &Event::Done {
                    id: 1,
                    complete: false
                },
                &Event::Done {
                    id: 2,
                    complete: true
                }
            ]
        );
    }

    #[test]
    fn a_bad_line_is_reported_and_reading_goes_on() {
        let mut fake = Fake::new(None);
        let (end, events) = run_lines(&mut fake, &format!("{{\"cmd\":\"measur\"}}\n{TWO_PAIRS}\n"));
        assert_eq!(end, End::Finished);
        match &events[0] {
            Event::BadCommand { message } => assert!(message.contains("measur"), "{message}"),
            other => panic!("expected bad_command first, got {other:?}"),
        }
        assert_eq!(fake.measured.len(), 4);
    }

    #[test]
    fn latency_runs_once_per_pair_whatever_the_engines() {
        let items = work(
            &[gpu_pair(0, 1)],
            &[Op::Latency, Op::Read],
            &[Engine::Sm, Engine::Ce],
        );
        assert_eq!(
            items,
            vec![
                (gpu_pair(0, 1), Op::Latency, Engine::Sm),
                (gpu_pair(0, 1), Op::Read, Engine::Sm),
                (gpu_pair(0, 1), Op::Read, Engine::Ce),
            ]
        );
    }

    #[test]
    fn stress_runs_all_pairs_at_once_per_engine_and_a_failure_marks_each_pair() {
        let mut fake = Fake::new(Some((gpu_pair(1, 0), false)));
        let input = r#"{"cmd":"stress","id":4,"pairs":[{"src":0,"dst":1},{"src":1,"dst":0}],"op":"write","engines":["sm","ce"]}"#;
        let (end, events) = run_lines(&mut fake, input);
        assert_eq!(end, End::Finished);
        // One group per engine, not one measurement per pair.
        assert_eq!(fake.measured.len(), 2);
        let failed: Vec<(Pair, Engine)> = events
            .iter()
            .filter_map(|e| match e {
                Event::PairError { pair, engine, .. } => Some((*pair, *engine)),
                _ => None,
            })
            .collect();
        assert_eq!(
            failed,
            [
                (gpu_pair(0, 1), Engine::Sm),
                (gpu_pair(1, 0), Engine::Sm),
                (gpu_pair(0, 1), Engine::Ce),
                (gpu_pair(1, 0), Engine::Ce),
            ]
        );
        assert_eq!(
            events.last(),
            Some(&Event::Done {
                id: 4,
                complete: true
            })
        );
    }
}
