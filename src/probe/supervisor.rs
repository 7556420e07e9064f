//! Runs `p2ptop-probe` as a child and keeps measurements going whatever it does.
//!
//! - Each multi-pair `measure` is sent one pair at a time (same id; one `done` at the end), so
//!   when the probe stops answering or dies, the pair it was on is known.
//! - A probe silent for longer than the sample deadline plus a grace period is killed; its pair
//!   is marked hung. A probe that dies is reported as crashed, with its last stderr lines.
//! - Either way the probe restarts (with backoff) without that pair; later commands report the
//!   pair as skipped instead of touching it again.
//! - A line that is not an event is reported as trouble, never a panic.
//! - The child gets SIGKILL when p2ptop dies, even by `kill -9` (PR_SET_PDEATHSIG, armed before
//!   exec, with a parent check that closes the race with a parent already gone).

use super::launch::{self, Hello, StartError};
use super::protocol::{Command, Engine, Event, FailureKind, Op, Pair};
use super::session::{self, Failure};
use crate::app::feed::Feed;
use std::collections::{BTreeSet, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long the probe may stay silent beyond its own sample deadline before it is killed: the
/// probe reports hung samples itself, so this only fires when it is stuck inside the driver.
const GRACE: Duration = Duration::from_secs(5);
/// Restart delays double from this, up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// Restarts in a row that fail to greet before the supervisor gives up.
const MAX_FAILED_STARTS: u32 = 5;
/// How long a dead probe's stderr may take to reach its end (a process it left behind can hold
/// the pipe open; its last lines are in the pipe already).
const STDERR_DRAIN: Duration = Duration::from_secs(1);
/// Stderr lines kept to explain a crash.
const STDERR_TAIL: usize = 8;
/// How often the watchdog looks at the clock.
const TICK: Duration = Duration::from_millis(100);

/// How patient the supervisor is: how long a silent probe lives, how restarts back off, when it
/// gives up. [`Policy::default`] is what p2ptop uses; tests shorten it to exercise the same
/// paths in a fraction of the time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Silence allowed beyond the probe's own deadline before it is killed.
    pub grace: Duration,
    /// The first restart's delay; each restart in a row doubles it, up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// Restarts in a row without a finished part before the supervisor gives up.
    pub max_failed_starts: u32,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            grace: GRACE,
            first_backoff: FIRST_BACKOFF,
            max_backoff: MAX_BACKOFF,
            max_failed_starts: MAX_FAILED_STARTS,
        }
    }
}

/// What the supervisor thread hears: commands from p2ptop, lines and ends from a child.
pub struct Msg(Inner);

enum Inner {
    Command(Command),
    /// A line from the child of this generation.
    Line(u64, String),
    Eof(u64),
    Quit,
}

/// The handle p2ptop keeps: commands go in here; events arrive on the feed.
pub struct Supervisor {
    tx: Sender<Msg>,
}

impl Supervisor {
    pub fn send(&self, command: Command) -> bool {
        self.tx.send(Msg(Inner::Command(command))).is_ok()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg(Inner::Quit));
    }
}

/// Where a running probe's output goes: its lines, then its end.
#[derive(Clone)]
pub struct LineSink {
    generation: u64,
    tx: Sender<Msg>,
}

impl LineSink {
    /// Passes one line of output on; false once the supervisor has gone.
    pub fn line(&self, line: String) -> bool {
        self.tx
            .send(Msg(Inner::Line(self.generation, line)))
            .is_ok()
    }

    /// Says the probe's output has ended.
    pub fn end(&self) {
        let _ = self.tx.send(Msg(Inner::Eof(self.generation)));
    }
}

/// Starts probes: the `p2ptop-probe` binary, or a simulated probe on a thread. Each speaks the
/// protocol's lines, so one supervisor watches both.
pub trait Launcher: Send + 'static {
    fn launch(&self, output: LineSink) -> Result<Box<dyn RunningProbe>, StartError>;
}

/// A probe that has been started.
pub trait RunningProbe: Send {
    /// Sends one command; false when the probe no longer listens.
    fn send(&mut self, command: &Command) -> bool;
    fn kill(&mut self);
    /// How it ended, in words (once its output has ended). Returns once its last errors can
    /// be read from [`RunningProbe::stderr_text`].
    fn exit_text(&mut self) -> String;
    /// Its last lines of errors, if it has any.
    fn stderr_text(&self) -> String;
}

/// Starts the probe binary, waits for its hello, and supervises it from then on.
/// `gpus` picks the GPUs it opens and the numbers it speaks (see `probe::numbering`); `None`
/// leaves it every GPU CUDA shows, by CUDA's ordinals.
pub fn start(
    probe: &Path,
    gpus: Option<&launch::Gpus>,
    feed: Sender<Feed>,
) -> Result<(Supervisor, Hello), StartError> {
    start_with_policy(probe, gpus, feed, Policy::default())
}

/// [`start`], with the supervisor's patience set by `policy`.
pub fn start_with_policy(
    probe: &Path,
    gpus: Option<&launch::Gpus>,
    feed: Sender<Feed>,
    policy: Policy,
) -> Result<(Supervisor, Hello), StartError> {
    if !probe.is_file() {
        return Err(StartError::Missing(probe.to_path_buf()));
    }
    let env = gpus.map(launch::Gpus::environment).unwrap_or_default();
    supervise(Binary(probe.to_path_buf(), env), feed, policy)
}

/// Starts a probe with `launcher`, waits for its hello, and supervises it from then on.
pub fn start_with(
    launcher: impl Launcher,
    feed: Sender<Feed>,
) -> Result<(Supervisor, Hello), StartError> {
    supervise(launcher, feed, Policy::default())
}

fn supervise(
    launcher: impl Launcher,
    feed: Sender<Feed>,
    policy: Policy,
) -> Result<(Supervisor, Hello), StartError> {
    let (tx, rx) = mpsc::channel();
    let (greeted_tx, greeted) = mpsc::channel();
    let loop_tx = tx.clone();
    thread::spawn(move || {
        let sink = LineSink {
            generation: 0,
            tx: loop_tx.clone(),
        };
        let mut child = match launcher.launch(sink) {
            Ok(c) => c,
            Err(e) => {
                let _ = greeted_tx.send(Err(e));
                return;
            }
        };
        match greeting(child.as_mut(), &rx, launch::HELLO_TIMEOUT) {
            Ok(hello) => {
                let _ = greeted_tx.send(Ok(hello));
            }
            Err(e) => {
                child.kill();
                let _ = greeted_tx.send(Err(e));
                return;
            }
        }
        // The thread that spawned the child must outlive it: PR_SET_PDEATHSIG fires when the
        // spawning thread exits. It runs the supervision loop until p2ptop lets go.
        Loop::new(Box::new(launcher), child, loop_tx, feed, policy).run(&rx);
    });
    let hello = greeted
        .recv()
        .map_err(|_| StartError::Broken("the supervisor thread ended".into()))??;
    Ok((Supervisor { tx }, hello))
}

/// Waits for the first line of the first probe and reads it as the probe's hello.
fn greeting(
    probe: &mut dyn RunningProbe,
    rx: &Receiver<Msg>,
    timeout: Duration,
) -> Result<Hello, StartError> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Msg(Inner::Line(0, line))) => return launch::interpret(Some(&line), ""),
            Ok(Msg(Inner::Eof(0))) => {
                probe.exit_text(); // waits for its stderr too
                return launch::interpret(None, &probe.stderr_text());
            }
            Ok(_) => {} // commands wait in the loop's queue
            Err(RecvTimeoutError::Timeout) => {
                return Err(StartError::Broken(format!(
                    "no hello within {} s",
                    timeout.as_secs()
                )));
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(StartError::Broken("p2ptop is shutting down".into()));
            }
        }
    }
}

/// The `p2ptop-probe` binary, and the environment it starts with.
struct Binary(PathBuf, Vec<(&'static str, String)>);

impl Launcher for Binary {
    fn launch(&self, output: LineSink) -> Result<Box<dyn RunningProbe>, StartError> {
        Ok(Box::new(Process::spawn(&self.0, &self.1, output)?))
    }
}

/// One running child process.
struct Process {
    child: Child,
    stdin: ChildStdin,
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// Hears (or loses its sender) when the stderr reader has reached the end of the pipe.
    stderr_ended: Receiver<()>,
}

impl Process {
    fn spawn(
        path: &Path,
        env: &[(&'static str, String)],
        output: LineSink,
    ) -> Result<Process, StartError> {
        let parent = std::process::id() as libc::pid_t;
        let mut command = std::process::Command::new(path);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // nvidia-smi and NVML number GPUs in PCI bus order; make CUDA agree.
            .env("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) run between fork and exec.
        unsafe {
            command.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent {
                    libc::_exit(1); // p2ptop died before the signal was armed
                }
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .map_err(|e| StartError::Broken(format!("cannot start {}: {e}", path.display())))?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            unreachable!("all three streams were requested as pipes");
        };
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !output.line(line) {
                    return;
                }
            }
            output.end();
        });
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let keep = tail.clone();
        let (ended, stderr_ended) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut t = keep.lock().unwrap_or_else(|e| e.into_inner());
                t.push_back(line);
                if t.len() > STDERR_TAIL {
                    t.pop_front();
                }
            }
            let _ = ended.send(());
        });
        Ok(Process {
            child,
            stdin,
            stderr: tail,
            stderr_ended,
        })
    }
}

impl RunningProbe for Process {
    fn send(&mut self, command: &Command) -> bool {
        writeln!(self.stdin, "{}", command.to_line()).is_ok() && self.stdin.flush().is_ok()
    }

    fn stderr_text(&self) -> String {
        let tail = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn exit_text(&mut self) -> String {
        let status = match self.child.wait() {
            Ok(status) => status.to_string(),
            Err(e) => format!("unknown status ({e})"),
        };
        // The process has ended, so its stderr reader reaches the end of the pipe unless a
        // process it left behind still holds it; either way its last lines are in by then.
        let _ = self.stderr_ended.recv_timeout(STDERR_DRAIN);
        status
    }
}

/// One piece of a client's command, as sent to the probe: a `measure` of one pair, or a whole
/// `stress` (its pairs run at once, so they cannot be split).
struct Part {
    id: u64,
    command: Command,
    /// Every (pair, op, engine) the probe should answer for.
    expected: Vec<(Pair, Op, Engine)>,
    answered: BTreeSet<(Pair, Op, Engine)>,
    sample_timeout_ms: u64,
    /// Whether this is the last part of the client's command.
    last: bool,
}

impl Part {
    fn pairs(&self) -> Vec<Pair> {
        let mut pairs: Vec<Pair> = self.expected.iter().map(|&(p, _, _)| p).collect();
        pairs.dedup();
        pairs
    }

    fn unanswered(&self) -> Vec<(Pair, Op, Engine)> {
        self.expected
            .iter()
            .filter(|key| !self.answered.contains(key))
            .copied()
            .collect()
    }

    /// The part without the pairs in `excluded`, and what was left out; `None` when nothing is
    /// left to send.
    fn without(mut self, excluded: &[Pair]) -> (Option<Part>, Vec<(Pair, Op, Engine)>) {
        let (out, keep): (Vec<_>, Vec<_>) = self
            .expected
            .iter()
            .partition(|(p, _, _)| excluded.contains(p));
        if out.is_empty() {
            return (Some(self), out);
        }
        if keep.is_empty() {
            return (None, out);
        }
        self.expected = keep;
        if let Command::Stress { pairs, .. } = &mut self.command {
            pairs.retain(|p| !excluded.contains(p));
        }
        (Some(self), out)
    }
}

struct Loop {
    launcher: Box<dyn Launcher>,
    probe: Option<Box<dyn RunningProbe>>,
    generation: u64,
    tx: Sender<Msg>,
    feed: Sender<Feed>,
    queue: VecDeque<Part>,
    running: Option<Part>,
    last_activity: Instant,
    /// How long the probe said its current step may take (a `progress` event), if it did.
    step_deadline: Option<Duration>,
    /// Whether the current probe has greeted: a restarted one opens every GPU first, and no
    /// command goes to it, and no command deadline runs, before it says hello.
    greeted: bool,
    /// Whether every part of the client's current command completed.
    complete: bool,
    /// Pairs left out after they hung or crashed the probe.
    excluded: Vec<Pair>,
    policy: Policy,
    backoff: Duration,
    /// Restarts since the probe last finished a part; too many and the supervisor gives up.
    failed_starts: u32,
    gave_up: bool,
}

impl Loop {
    fn new(
        launcher: Box<dyn Launcher>,
        probe: Box<dyn RunningProbe>,
        tx: Sender<Msg>,
        feed: Sender<Feed>,
        policy: Policy,
    ) -> Loop {
        Loop {
            launcher,
            probe: Some(probe),
            generation: 0,
            tx,
            feed,
            queue: VecDeque::new(),
            running: None,
            last_activity: Instant::now(),
            step_deadline: None,
            greeted: true,
            complete: true,
            excluded: Vec::new(),
            policy,
            backoff: policy.first_backoff,
            failed_starts: 0,
            gave_up: false,
        }
    }

    fn run(mut self, rx: &Receiver<Msg>) {
        loop {
            match rx.recv_timeout(TICK) {
                Ok(Msg(Inner::Command(c))) => self.accept(c),
                Ok(Msg(Inner::Line(g, line))) if g == self.generation => self.line(&line),
                Ok(Msg(Inner::Eof(g))) if g == self.generation => self.died(),
                Ok(Msg(Inner::Line(..) | Inner::Eof(_))) => {} // from a probe already replaced
                Ok(Msg(Inner::Quit)) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => self.watchdog(),
            }
            self.dispatch();
        }
        if let Some(mut p) = self.probe.take() {
            p.kill();
        }
    }

    fn emit(&self, event: Event) {
        let _ = self.feed.send(Feed::Probe(event));
    }

    fn trouble(&self, message: String) {
        let _ = self.feed.send(Feed::ProbeTrouble(message));
    }

    /// Splits a client's command into parts, one pair each.
    fn accept(&mut self, command: Command) {
        if self.gave_up {
            if let Command::Measure { id, .. } | Command::Stress { id, .. } = command {
                self.emit(Event::Done {
                    id,
                    complete: false,
                });
            }
            return;
        }
        match command {
            Command::Measure {
                id,
                pairs,
                ops,
                engines,
                settings,
            } => {
                if pairs.is_empty() {
                    self.emit(Event::Done { id, complete: true });
                }
                let count = pairs.len();
                for (i, pair) in pairs.into_iter().enumerate() {
                    self.queue.push_back(Part {
                        id,
                        expected: session::work(&[pair], &ops, &engines),
                        command: Command::Measure {
                            id,
                            pairs: vec![pair],
                            ops: ops.clone(),
                            engines: engines.clone(),
                            settings: settings.clone(),
                        },
                        answered: BTreeSet::new(),
                        sample_timeout_ms: settings.sample_timeout_ms,
                        last: i + 1 == count,
                    });
                }
            }
            Command::Stress {
                id,
                pairs,
                op,
                engines,
                settings,
            } => {
                let expected = pairs
                    .iter()
                    .flat_map(|&p| engines.iter().map(move |&e| (p, op, e)))
                    .collect();
                self.queue.push_back(Part {
                    id,
                    expected,
                    sample_timeout_ms: settings.sample_timeout_ms,
                    command: Command::Stress {
                        id,
                        pairs,
                        op,
                        engines,
                        settings,
                    },
                    answered: BTreeSet::new(),
                    last: true,
                });
            }
            Command::Stop => {
                // Drop what has not started; the running part stops after its sample.
                let dropped: Vec<u64> =
                    self.queue.iter().filter(|p| p.last).map(|p| p.id).collect();
                self.queue.clear();
                if let Some(probe) = self.probe.as_mut() {
                    probe.send(&Command::Stop);
                }
                for id in dropped {
                    if self.running.as_ref().is_none_or(|r| r.id != id) {
                        self.emit(Event::Done {
                            id,
                            complete: false,
                        });
                    }
                }
                if let Some(running) = self.running.as_mut() {
                    running.last = true;
                    self.complete = false;
                }
            }
        }
    }

    /// Sends the next part when the probe is idle.
    fn dispatch(&mut self) {
        while self.running.is_none() && self.probe.is_some() && self.greeted {
            let Some(part) = self.queue.pop_front() else {
                return;
            };
            let (id, last) = (part.id, part.last);
            let (part, left_out) = part.without(&self.excluded);
            self.skip(id, &left_out);
            let Some(part) = part else {
                self.finish_part(id, last, true);
                continue;
            };
            let sent = self.probe.as_mut().is_some_and(|p| p.send(&part.command));
            self.running = Some(part);
            self.last_activity = Instant::now();
            self.step_deadline = None;
            if !sent {
                return; // the probe is gone; its end of output comes next
            }
        }
    }

    /// Reports work that will not run because its pair broke the probe before.
    fn skip(&mut self, id: u64, left_out: &[(Pair, Op, Engine)]) {
        for &(pair, op, engine) in left_out {
            let failure = Failure::new(
                FailureKind::Skipped,
                format!(
                    "not measured: {} → {} hung or crashed the probe earlier, so the restarted \
                     probe runs without it",
                    pair.src, pair.dst
                ),
            );
            self.emit(session::pair_error(id, pair, op, engine, &failure));
        }
    }

    fn finish_part(&mut self, id: u64, last: bool, complete: bool) {
        self.complete &= complete;
        if last {
            self.emit(Event::Done {
                id,
                complete: self.complete,
            });
            self.complete = true;
        }
    }

    fn line(&mut self, line: &str) {
        self.last_activity = Instant::now();
        let event = match Event::from_line(line) {
            Ok(e) => e,
            Err(err) => {
                let shown: String = line.chars().take(200).collect();
                self.trouble(format!(
                    "the probe printed a line that is not an event ({err}): {shown}"
                ));
                return;
            }
        };
        match &event {
            Event::Hello { .. } => {
                // A restarted probe greets again; commands may go to it now.
                self.greeted = true;
                return;
            }
            Event::Progress { deadline_ms, .. } => {
                self.step_deadline = Some(Duration::from_millis(*deadline_ms));
                return;
            }
            Event::Done { complete, .. } => {
                if let Some(part) = self.running.take() {
                    self.finish_part(part.id, part.last, *complete);
                }
                self.backoff = self.policy.first_backoff;
                self.failed_starts = 0;
                return;
            }
            Event::Result {
                pair, op, engine, ..
            }
            | Event::PairError {
                pair, op, engine, ..
            } => {
                if let Some(part) = self.running.as_mut() {
                    part.answered.insert((*pair, *op, *engine));
                }
                if let Event::PairError {
                    kind: FailureKind::Hung,
                    pair,
                    ..
                } = &event
                {
                    self.excluded.push(*pair);
                }
            }
            Event::Latency { pair, .. } => {
                if let Some(part) = self.running.as_mut()
                    && let Some(&key) = part
                        .expected
                        .iter()
                        .find(|(p, op, _)| p == pair && *op == Op::Latency)
                {
                    part.answered.insert(key);
                }
            }
            _ => {}
        }
        self.emit(event);
    }

    /// Kills a probe that has said nothing for longer than its own deadline allows: the step it
    /// announced, or else its sample deadline; a restarted probe gets as long to greet as the
    /// first one did.
    fn watchdog(&mut self) {
        if !self.greeted && self.probe.is_some() {
            if self.last_activity.elapsed() > launch::HELLO_TIMEOUT {
                if let Some(mut p) = self.probe.take() {
                    p.kill();
                }
                self.trouble(format!(
                    "the restarted probe did not greet within {} s",
                    launch::HELLO_TIMEOUT.as_secs()
                ));
                self.restart();
            }
            return;
        }
        let Some(part) = &self.running else { return };
        let deadline = self
            .step_deadline
            .unwrap_or(Duration::from_millis(part.sample_timeout_ms));
        if self.last_activity.elapsed() < deadline + self.policy.grace {
            return;
        }
        let silent = self.last_activity.elapsed().as_secs();
        if let Some(mut p) = self.probe.take() {
            p.kill();
        }
        self.lost(
            FailureKind::Hung,
            format!("the probe said nothing for {silent} s and was killed"),
        );
    }

    /// The probe closed its output: it exited after a fatal event, or it crashed.
    fn died(&mut self) {
        let Some(mut p) = self.probe.take() else {
            return;
        };
        let status = p.exit_text();
        let stderr = p.stderr_text();
        let why = if stderr.is_empty() {
            format!("the probe exited ({status})")
        } else {
            format!("the probe exited ({status}); its last errors: {stderr}")
        };
        if self.running.is_some() {
            self.lost(FailureKind::Crashed, why);
        } else {
            self.trouble(why);
            self.restart();
        }
    }

    /// The running part's probe is gone: mark what it did not answer, leave its pairs out (a
    /// stress part's culprit cannot be told apart, so all of them), and restart.
    fn lost(&mut self, kind: FailureKind, why: String) {
        if let Some(part) = self.running.take() {
            for (pair, op, engine) in part.unanswered() {
                // A pair the probe itself reported hung is already out: the rest were skipped.
                let kind = if self.excluded.contains(&pair) {
                    FailureKind::Skipped
                } else {
                    kind
                };
                let failure = Failure::new(
                    kind,
                    format!("{why} while measuring {} → {}", pair.src, pair.dst),
                );
                self.emit(session::pair_error(part.id, pair, op, engine, &failure));
            }
            for pair in part.pairs() {
                if !self.excluded.contains(&pair) {
                    self.excluded.push(pair);
                }
            }
            self.finish_part(part.id, part.last, false);
        }
        self.trouble(format!("{why}; restarting it without that pair"));
        self.restart();
    }

    /// Starts a new probe after the backoff; gives up after repeated failures in a row.
    fn restart(&mut self) {
        while self.failed_starts < self.policy.max_failed_starts {
            self.failed_starts += 1;
            thread::sleep(self.backoff);
            self.backoff = (self.backoff * 2).min(self.policy.max_backoff);
            self.generation += 1;
            let sink = LineSink {
                generation: self.generation,
                tx: self.tx.clone(),
            };
            match self.launcher.launch(sink) {
                Ok(p) => {
                    self.probe = Some(p);
                    self.greeted = false;
                    self.last_activity = Instant::now();
                    return;
                }
                Err(e) => self.trouble(format!("the probe could not restart: {e}")),
            }
        }
        self.gave_up = true;
        let _ = self.feed.send(Feed::ProbeGone(format!(
            "the probe failed {} times in a row; measurements stop here",
            self.policy.max_failed_starts
        )));
        while let Some(part) = self.queue.pop_front() {
            self.finish_part(part.id, part.last, false);
        }
    }
}
