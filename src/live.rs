//! The live view: terminal setup and restore, and the loop that turns the feed and the
//! keyboard into frames and probe commands.
//!
//! Everything arrives on one channel (terminal input from one thread, the machine's feed from
//! another), so a `done` from the probe is answered with the next command at once and a key
//! is drawn at once, while feed-only changes are drawn at most once per refresh interval.
//! The terminal is restored on every way out: quit keys, SIGTERM/SIGHUP/SIGINT, an error, and
//! a panic (the panic hook restores it before the message is printed).

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
use crossterm::event::{self, Event as TermEvent, MouseButton, MouseEventKind};
use ratatui::Terminal;
use ratatui::backend::{Backend, CrosstermBackend};
use ratatui::layout::Rect;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
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

/// Runs the live view on `conn` until the user quits or a signal asks to stop. The terminal is
/// restored before this returns, whatever happened.
pub fn run(mut conn: Connection, options: LiveOptions) -> anyhow::Result<()> {
    let topology = conn
        .topology
        .only(options.devices.as_deref())
        .map_err(anyhow::Error::msg)?;
    let feed = std::mem::replace(&mut conn.feed, mpsc::channel().1);
    let mut live = Live::new(conn, topology, &options)?;
    let stop = Arc::new(AtomicBool::new(false));
    let signals = [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGINT,
    ]
    .iter()
    .map(|&s| signal_hook::flag::register(s, Arc::clone(&stop)))
    .collect::<Result<Vec<_>, _>>()
    .context("cannot watch for termination signals")?;
    let (tx, inputs) = mpsc::channel();
    forward_feed(feed, tx.clone());
    let result = (|| {
        let guard = TerminalGuard::enter().context("cannot set up the terminal")?;
        let reader = read_terminal(tx, Arc::clone(&stop));
        let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
        let looped = event_loop(&mut terminal, &mut live, &inputs, options.refresh, &stop);
        stop.store(true, Ordering::Relaxed);
        let _ = reader.join();
        drop(guard);
        looped
    })();
    for id in signals {
        signal_hook::low_level::unregister(id);
    }
    // Stop the probe's current command so it does not keep a GPU busy after the view is gone.
    live.conn.send(Command::Stop);
    result
}

/// What arrives on the loop's one channel.
#[derive(Debug)]
pub enum Input {
    Terminal(TermEvent),
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

/// Reads terminal events onto the loop's channel until `stop` is set.
fn read_terminal(tx: Sender<Input>, stop: Arc<AtomicBool>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match event::poll(Duration::from_millis(100)) {
                Ok(true) => match event::read() {
                    Ok(ev) => {
                        if tx.send(Input::Terminal(ev)).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                },
                Ok(false) => {}
                Err(_) => return,
            }
        }
    })
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
            Ok((json, md)) => format!(
                "snapshot written to {} and {}",
                json.display(),
                md.display()
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
        };
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

/// Whether the terminal is in the live view's mode, so restoring twice does nothing.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Raw mode, the alternate screen and mouse capture while it lives; restored when dropped and
/// by the panic hook.
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> io::Result<TerminalGuard> {
        install_panic_hook();
        crossterm::terminal::enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        let guard = TerminalGuard;
        crossterm::execute!(
            io::stdout(),
            crossterm::terminal::EnterAlternateScreen,
            crossterm::event::EnableMouseCapture,
            crossterm::cursor::Hide
        )?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Puts the terminal back as the shell had it, once.
fn restore_terminal() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = crossterm::execute!(
            io::stdout(),
            crossterm::event::DisableMouseCapture,
            crossterm::terminal::LeaveAlternateScreen,
            crossterm::cursor::Show
        );
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

/// Restores the terminal before any panic message is printed, so the message is readable.
fn install_panic_hook() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            previous(info);
        }));
    });
}
