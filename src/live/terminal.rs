//! The terminal the live view owns: its mode while the view runs, the thread that reads it, the
//! signals that end the view, and whether the terminal is still there at all.
//!
//! A terminal can go away under the view (an SSH connection drops, `tmux kill-session`): the
//! kernel hangs the tty up, SIGHUP arrives, and from then on every read returns at once with
//! nothing. crossterm's reader retries such a read for ever, so a thread inside it never comes
//! back; the view therefore looks at the tty itself ([`hung_up`]) and never waits for that
//! thread once the terminal is gone.

use super::Input;
use crate::exit;
use crossterm::event::{self, Event as TermEvent};
use std::io::{self, IsTerminal};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::thread;
use std::time::Duration;

/// How long the reader may take to notice a stop: one of its polls.
const READ_POLL: Duration = Duration::from_millis(100);

/// Whether the terminal has hung up: standard input or output is a tty that reports a hang-up
/// or an error, or neither is a tty any more (a hung-up tty stops answering as one; the view
/// starts only on a terminal).
pub fn hung_up() -> bool {
    let ttys: Vec<libc::c_int> = [
        (libc::STDIN_FILENO, io::stdin().is_terminal()),
        (libc::STDOUT_FILENO, io::stdout().is_terminal()),
    ]
    .iter()
    .filter(|(_, tty)| *tty)
    .map(|&(fd, _)| fd)
    .collect();
    ttys.is_empty() || any_hung_up(&ttys)
}

/// Whether any of `fds` reports a hang-up or an error, without waiting.
fn any_hung_up(fds: &[libc::c_int]) -> bool {
    let mut polled: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: 0,
            revents: 0,
        })
        .collect();
    // SAFETY: `polled` is a live array of `polled.len()` pollfd structs; a zero timeout never
    // blocks.
    let ready = unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, 0) };
    ready > 0
        && polled
            .iter()
            .any(|p| p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0)
}

/// Reads terminal events onto the loop's channel until `stop` is set or the terminal goes. A
/// terminal that cannot be read any more, short of hanging up, is said on the channel: without
/// its keys the view could not be quit.
pub fn read(tx: Sender<Input>, stop: Arc<AtomicBool>) -> Reader {
    let (finished, done) = mpsc::channel::<()>();
    thread::spawn(move || {
        let _finished = finished; // dropped when this thread ends, which `done` sees
        // Looking first keeps this thread out of crossterm's endless retry on a hung-up tty
        // (but for a hang-up in the middle of a poll).
        while !stop.load(Ordering::Relaxed) && !hung_up() {
            let event =
                event::poll(READ_POLL).and_then(|ready| ready.then(event::read).transpose());
            let input = match event {
                Ok(None) => continue,
                Ok(Some(ev)) => Input::Terminal(ev),
                Err(_) if hung_up() => return,
                Err(e) => Input::TerminalFailed(e.to_string()),
            };
            let failed = matches!(input, Input::TerminalFailed(_));
            if tx.send(input).is_err() || failed {
                return;
            }
        }
    });
    Reader { done }
}

/// The thread reading the terminal.
pub struct Reader {
    /// Disconnected once the thread has ended.
    done: mpsc::Receiver<()>,
}

impl Reader {
    /// Waits for the reader to see its stop, so that no thread of the view is reading when the
    /// shell gets its terminal back, unless the terminal is gone: then the reader may never
    /// return (see the module's comment) and the process leaves it behind.
    pub fn finish(self, terminal_gone: bool) {
        if !terminal_gone {
            let _ = self.done.recv_timeout(3 * READ_POLL);
        }
    }
}

/// Watches the terminal from a thread of its own: when it hangs up, `gone` and then `stop` are
/// set, so the view ends within [`READ_POLL`] even while the reader is lost in crossterm.
pub fn watch_hang_up(stop: Arc<AtomicBool>, gone: Arc<AtomicBool>) {
    thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if hung_up() {
                gone.store(true, Ordering::SeqCst);
                stop.store(true, Ordering::SeqCst);
                return;
            }
            thread::sleep(READ_POLL);
        }
    });
}

/// The signals that end the live view: SIGTERM, SIGINT, SIGQUIT (whose default would leave the
/// terminal raw) and SIGHUP. The first sets the stop flag and records which it was; a second
/// ends p2ptop at once with exit 130, whatever the view is doing (the terminal may stay raw
/// then: that is what a second signal asks for).
pub struct Signals {
    /// Set by a signal, by the user quitting, or by the terminal going away.
    pub stop: Arc<AtomicBool>,
    /// Set by a signal only, so that a signal after a quit is still the first one.
    signalled: Arc<AtomicBool>,
    which: Arc<AtomicUsize>,
}

impl Signals {
    /// Starts watching. The handlers stay for the life of the process: unregistered, a
    /// signal would be ignored rather than end it.
    pub fn watch() -> io::Result<Signals> {
        let signals = Signals {
            stop: Arc::new(AtomicBool::new(false)),
            signalled: Arc::new(AtomicBool::new(false)),
            which: Arc::new(AtomicUsize::new(0)),
        };
        for signal in [
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGQUIT,
            signal_hook::consts::SIGHUP,
        ] {
            // The shutdown goes first: it sees the flag as it was before this signal.
            signal_hook::flag::register_conditional_shutdown(
                signal,
                i32::from(exit::INTERRUPTED),
                Arc::clone(&signals.signalled),
            )?;
            signal_hook::flag::register(signal, Arc::clone(&signals.signalled))?;
            signal_hook::flag::register_usize(signal, Arc::clone(&signals.which), signal as usize)?;
            signal_hook::flag::register(signal, Arc::clone(&signals.stop))?;
        }
        Ok(signals)
    }

    /// The signal that asked the view to stop, if one did.
    pub fn received(&self) -> Option<i32> {
        match self.which.load(Ordering::SeqCst) {
            0 => None,
            n => i32::try_from(n).ok(),
        }
    }
}

/// The signal's name, for the line printed once the terminal is back.
pub fn signal_name(signal: i32) -> String {
    signal_hook::low_level::signal_name(signal)
        .map_or_else(|| format!("signal {signal}"), str::to_owned)
}

/// Whether the terminal is in the live view's mode, so restoring twice does nothing.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Raw mode, the alternate screen and mouse capture while it lives; restored when dropped and
/// by the panic hook.
pub struct Guard;

impl Guard {
    pub fn enter() -> io::Result<Guard> {
        install_panic_hook();
        crossterm::terminal::enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        let guard = Guard;
        crossterm::execute!(
            io::stdout(),
            crossterm::terminal::EnterAlternateScreen,
            crossterm::event::EnableMouseCapture,
            crossterm::cursor::Hide
        )?;
        Ok(guard)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}

/// Puts the terminal back as the shell had it, once. On a hung-up terminal the writes fail at
/// once and are let go: there is nothing left to restore.
fn restore() {
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
            restore();
            previous(info);
        }));
    });
}

/// An event of the terminal, for the waiting screen: whether it asks to quit.
pub fn asks_to_quit(event: &TermEvent) -> bool {
    let TermEvent::Key(key) = event else {
        return false;
    };
    crate::app::keys::Key::from_event(*key).is_some_and(|k| {
        crate::app::keys::action(&crate::app::view::View::new(0), k)
            == Some(crate::app::view::Action::Quit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_whose_other_side_closed_has_hung_up() {
        let (mut master, mut slave) = (-1, -1);
        // SAFETY: openpty writes two descriptors into the given ints; the other arguments may
        // be null.
        let opened = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(opened, 0, "openpty: {}", io::Error::last_os_error());
        assert!(!any_hung_up(&[slave]), "an open terminal has not hung up");
        // SAFETY: both descriptors were opened above and are closed once each.
        unsafe { libc::close(master) };
        assert!(any_hung_up(&[slave]), "the terminal's other side is gone");
        unsafe { libc::close(slave) };
    }
}
