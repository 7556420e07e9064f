//! The live view: the loop that turns the feed and the keyboard into frames and probe commands.
//!
//! Everything arrives on one channel (terminal input from one thread, the machine's feed from
//! another), so a `done` from the probe is answered with the next command at once and a key
//! is drawn at once, while feed-only changes are drawn at most once per refresh interval.
//! The machine is opened on a thread of its own while the view already runs, so a probe that
//! is slow to greet (or never does) leaves a screen that says so and quits on `q`. The
//! terminal is restored on every way out (see [`terminal`]).

pub mod terminal;

use crate::app::board::Board;
use crate::app::cycle::Cycle;
use crate::app::feed::Feed;
use crate::app::keys::{self, Key};
use crate::app::snapshot;
use crate::app::view::{Action, Effect, Focus, Step, View};
use crate::model::topology::Topology;
use crate::probe::protocol::{Command, Settings};
use crate::source::Connection;
use crate::ui::{self, State, theme::Theme};
use anyhow::Context;
use crossterm::event::{Event as TermEvent, MouseButton, MouseEventKind};
use ratatui::Terminal;
use ratatui::backend::{Backend, CrosstermBackend};
use ratatui::layout::Rect;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// How often the screen is redrawn when only measurements change.
pub const DEFAULT_REFRESH: Duration = Duration::from_millis(250);

/// When to paint in colour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour unless the `NO_COLOR` environment variable is set to something.
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    pub fn enabled(self) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }
}

/// How the live view runs.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveOptions {
    /// GPUs to show and measure (NVML indices); `None` for all.
    pub devices: Option<Vec<u32>>,
    /// Size of each source and destination buffer, MiB.
    pub buffer_mib: u64,
    /// Redraw interval when only measurements change (keys are drawn at once).
    pub refresh: Duration,
    pub color: ColorChoice,
}

impl Default for LiveOptions {
    fn default() -> LiveOptions {
        LiveOptions {
            devices: None,
            buffer_mib: Settings::default().buffer_mib,
            refresh: DEFAULT_REFRESH,
            color: ColorChoice::Auto,
        }
    }
}

/// How the live view ended.
#[derive(Debug)]
pub enum Ending<E> {
    /// The user quit.
    Quit,
    /// A signal asked it to stop (its number).
    Signalled(i32),
    /// The terminal went away.
    HungUp,
    /// The machine could not be opened; the terminal is restored before this is returned.
    NotOpened(E),
}

/// Runs the live view on the machine `open` opens (on a thread of its own, while the view
/// already answers keys and signals) until the user quits, a signal asks it to stop or the
/// terminal goes away. The terminal is restored before this returns, whatever happened, and
/// the probe's running command is stopped.
pub fn run<E: Send + 'static>(
    open: impl FnOnce() -> Result<Opened, E> + Send + 'static,
    options: LiveOptions,
) -> anyhow::Result<Ending<E>> {
    let signals = terminal::Signals::watch().context("cannot watch for termination signals")?;
    let gone = Arc::new(AtomicBool::new(false));
    let (tx, inputs) = mpsc::channel();
    let (opened, opening) = mpsc::channel();
    thread::spawn(move || {
        let _ = opened.send(open());
    });
    let guard = terminal::Guard::enter().context("cannot set up the terminal")?;
    terminal::watch_hang_up(Arc::clone(&signals.stop), Arc::clone(&gone));
    let reader = terminal::read(tx.clone(), Arc::clone(&signals.stop));
    let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    let mut live = None;
    let looped =
        wait_for_machine(&mut terminal, &opening, &inputs, &signals.stop).and_then(|waited| {
            match waited {
                Waited::Opened(Ok(opened)) => {
                    let Opened { mut conn, notes } = *opened;
                    let feed = std::mem::replace(&mut conn.feed, mpsc::channel().1);
                    let topology = conn
                        .topology
                        .only(options.devices.as_deref())
                        .map_err(anyhow::Error::msg)?;
                    forward_feed(feed, tx);
                    let view = live.insert(Live::new(conn, topology, &options)?);
                    view.board.problems.extend(notes);
                    event_loop(&mut terminal, view, &inputs, options.refresh, &signals.stop)?;
                    Ok(None)
                }
                Waited::Opened(Err(e)) => Ok(Some(Ending::NotOpened(e))),
                Waited::Quit => Ok(Some(Ending::Quit)),
                Waited::Stopped => Ok(None),
            }
        });
    signals.stop.store(true, Ordering::SeqCst);
    // A draw may fail on a hung-up terminal before the watcher has looked.
    let gone = gone.load(Ordering::SeqCst) || terminal::hung_up();
    reader.finish(gone);
    drop(guard);
    // Stop the probe's current command so it does not keep a GPU busy after the view is gone.
    if let Some(live) = &live {
        live.conn.send(Command::Stop);
    }
    if gone {
        return Ok(Ending::HungUp);
    }
    if let Some(signal) = signals.received() {
        return Ok(Ending::Signalled(signal));
    }
    Ok(looped?.unwrap_or(Ending::Quit))
}

/// An opened machine, and what the user should know of it before anything is measured (GPUs
/// left out, and why).
pub struct Opened {
    pub conn: Connection,
    pub notes: Vec<String>,
}

/// What waiting for the machine came to.
enum Waited<E> {
    Opened(Result<Box<Opened>, E>),
    Quit,
    Stopped,
}

/// Shows that the machine is being opened until it is, the user quits or `stop` is set.
fn wait_for_machine<B: Backend, E>(
    terminal: &mut Terminal<B>,
    opening: &Receiver<Result<Opened, E>>,
    inputs: &Receiver<Input>,
    stop: &AtomicBool,
) -> anyhow::Result<Waited<E>>
where
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let started = Instant::now();
    let mut drawn = None;
    while !stop.load(Ordering::Relaxed) {
        match opening.try_recv() {
            Ok(opened) => return Ok(Waited::Opened(opened.map(Box::new))),
            Err(TryRecvError::Disconnected) => {
                anyhow::bail!("opening the machine ended without an answer")
            }
            Err(TryRecvError::Empty) => {}
        }
        // The waiting screen counts seconds, so it is drawn once a second (and after a key).
        let waited = started.elapsed().as_secs();
        if drawn != Some(waited) {
            terminal.draw(|frame| ui::opening::draw(frame, started.elapsed()))?;
            drawn = Some(waited);
        }
        match inputs.recv_timeout(OPENING_POLL) {
            Ok(Input::Terminal(ev)) if terminal::asks_to_quit(&ev) => return Ok(Waited::Quit),
            Ok(Input::TerminalFailed(e)) => anyhow::bail!("cannot read the terminal: {e}"),
            Ok(_) => drawn = None,
            Err(_) => {}
        }
    }
    Ok(Waited::Stopped)
}

/// How often the waiting screen looks at the machine being opened and at a stop.
const OPENING_POLL: Duration = Duration::from_millis(50);

/// The longest the loop waits before it looks at a stop again.
const STOP_POLL: Duration = Duration::from_millis(100);

/// What arrives on the loop's one channel.
#[derive(Debug)]
pub enum Input {
    Terminal(TermEvent),
    /// The terminal cannot be read any more (short of hanging up, which ends the view).
    TerminalFailed(String),
    Feed(Feed),
    /// The machine's side of the connection has gone.
    FeedClosed,
}

/// Forwards every feed item onto the loop's channel.
pub fn forward_feed(feed: Receiver<Feed>, tx: Sender<Input>) {
    thread::spawn(move || {
        for item in feed {
            if tx.send(Input::Feed(item)).is_err() {
                return;
            }
        }
        let _ = tx.send(Input::FeedClosed);
    });
}

/// Whether the loop goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

/// The live view's state and its link to the machine.
pub struct Live {
    pub conn: Connection,
    pub board: Board,
    pub view: View,
    pub cycle: Cycle,
    pub settings: Settings,
    pub theme: Theme,
    /// Where `s` writes its snapshot.
    pub snapshot_dir: PathBuf,
}

impl Live {
    /// A view of `topology` (the connection's, or a subset of its GPUs) on `conn`.
    pub fn new(
        conn: Connection,
        topology: Topology,
        options: &LiveOptions,
    ) -> anyhow::Result<Live> {
        let settings = Settings {
            buffer_mib: options.buffer_mib,
            ..Settings::default()
        };
        settings
            .check()
            .map_err(|e| anyhow::anyhow!("invalid measurement settings: {e}"))?;
        let board = Board::new(topology, conn.simulated.clone());
        let view = View::new(board.nodes().len());
        Ok(Live {
            conn,
            board,
            view,
            cycle: Cycle::new(),
            settings,
            theme: Theme {
                color: options.color.enabled(),
            },
            snapshot_dir: PathBuf::from("."),
        })
    }

    /// The state one frame is drawn from.
    pub fn state(&self) -> State<'_> {
        State {
            board: &self.board,
            view: &self.view,
            running: self.cycle.running(),
            buffer_mib: self.settings.buffer_mib,
            theme: self.theme,
        }
    }

    /// Takes one feed item in and sends the next command if the probe is free.
    pub fn take(&mut self, item: &Feed) {
        self.board.apply(item);
        self.cycle.observe(item);
        self.pump();
    }

    /// The machine's side has gone: say so, and send nothing more.
    pub fn feed_closed(&mut self) {
        self.board
            .problems
            .push("the probe has stopped; measurements have ended (the view stays)".into());
        self.cycle.gone();
    }

    /// Sends the next command, if one is due.
    pub fn pump(&mut self) {
        if let Some(command) = self.cycle.next(&self.view, &self.board, &self.settings)
            && !self.conn.send(command)
        {
            self.feed_closed();
        }
    }

    /// Handles one terminal event in a terminal of size `area`.
    pub fn handle(&mut self, event: &TermEvent, area: Rect) -> Flow {
        match event {
            TermEvent::Key(key) => {
                if let Some(action) =
                    Key::from_event(*key).and_then(|k| keys::action(&self.view, k))
                {
                    let nodes = self.board.nodes().len();
                    let gpus = self.board.topology.gpus.len();
                    let effect = self.view.apply(action, nodes, gpus);
                    // Scrolling past the help's end would leave keys that seem dead on the
                    // way back.
                    let furthest = ui::help::last_start(area, &self.state());
                    self.view.help_scroll = self.view.help_scroll.min(furthest);
                    return self.carry_out(effect);
                }
            }
            TermEvent::Mouse(mouse) if mouse.kind == MouseEventKind::Down(MouseButton::Left) => {
                if let Some(cell) = ui::cell_at(area, &self.state(), mouse.column, mouse.row) {
                    self.view.selected = cell;
                    self.view.focus = Focus::Matrix;
                } else if let Some(panel) =
                    ui::panel_at(area, &self.state(), mouse.column, mouse.row)
                {
                    self.view.focus = panel;
                }
            }
            TermEvent::Mouse(mouse)
                if matches!(
                    mouse.kind,
                    MouseEventKind::ScrollUp | MouseEventKind::ScrollDown
                ) =>
            {
                let step = if mouse.kind == MouseEventKind::ScrollUp {
                    Step::Up
                } else {
                    Step::Down
                };
                let action = match ui::panel_at(area, &self.state(), mouse.column, mouse.row) {
                    Some(Focus::Gpus) => Some(Action::ScrollGpus(step)),
                    Some(Focus::Matrix) => Some(Action::Move(step)),
                    None if self.view.help => {
                        Some(Action::ScrollHelp(if step == Step::Up { -3 } else { 3 }))
                    }
                    None => None,
                };
                if let Some(action) = action {
                    let nodes = self.board.nodes().len();
                    let gpus = self.board.topology.gpus.len();
                    self.view.apply(action, nodes, gpus);
                }
            }
            _ => {}
        }
        Flow::Continue
    }

    fn carry_out(&mut self, effect: Effect) -> Flow {
        match effect {
            Effect::Redraw => {}
            Effect::Quit => return Flow::Quit,
            Effect::Snapshot => self.snapshot(),
            Effect::Remeasure => {
                self.cycle.replan();
                self.stop_running();
            }
            Effect::Pause => self.stop_running(),
            Effect::Resume => self.pump(),
        }
        Flow::Continue
    }

    /// Asks the probe to finish the running command early; its `done` frees the cycle.
    fn stop_running(&mut self) {
        if self.cycle.running().is_some() && !self.conn.send(Command::Stop) {
            self.feed_closed();
        }
    }

    fn snapshot(&mut self) {
        let written = snapshot::write(
            &self.snapshot_dir,
            &self.board,
            &self.view,
            self.settings.buffer_mib,
            SystemTime::now(),
        );
        self.view.notice = Some(match written {
            Ok([json, md, csv]) => format!(
                "snapshot written to {}, {} and {}",
                json.display(),
                md.display(),
                csv.display()
            ),
            Err(e) => format!(
                "could not write the snapshot in {}: {e}",
                self.snapshot_dir.display()
            ),
        });
    }
}

/// Draws and handles input until a quit key, `stop`, or both input sources are gone.
pub fn event_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    live: &mut Live,
    inputs: &Receiver<Input>,
    refresh: Duration,
    stop: &AtomicBool,
) -> anyhow::Result<()>
where
    B::Error: std::error::Error + Send + Sync + 'static,
{
    live.pump();
    let mut last_draw: Option<Instant> = None;
    let mut dirty = true;
    while !stop.load(Ordering::Relaxed) {
        if dirty && last_draw.is_none_or(|t| t.elapsed() >= refresh) {
            terminal.draw(|frame| ui::draw(frame, &live.state()))?;
            last_draw = Some(Instant::now());
            dirty = false;
        }
        let wait = match last_draw {
            Some(t) if dirty => refresh.saturating_sub(t.elapsed()),
            _ => refresh,
        }
        // A stop is seen within a poll even when the refresh is long and nothing arrives.
        .min(STOP_POLL);
        let first = match inputs.recv_timeout(wait) {
            Ok(input) => input,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        for input in std::iter::once(first).chain(inputs.try_iter()) {
            dirty = true;
            match input {
                Input::Feed(item) => live.take(&item),
                Input::FeedClosed => live.feed_closed(),
                Input::TerminalFailed(e) => anyhow::bail!("cannot read the terminal: {e}"),
                Input::Terminal(ev) => {
                    let size = terminal.size()?;
                    if live.handle(&ev, Rect::new(0, 0, size.width, size.height)) == Flow::Quit {
                        return Ok(());
                    }
                    // Answer the user at once, not at the next refresh.
                    last_draw = None;
                }
            }
        }
    }
    Ok(())
}
