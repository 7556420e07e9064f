//! Keys: one table that the handler reads and the key bar and help are drawn from, so the
//! hints on screen are always the keys that work.

use super::view::{Action, Focus, Mode, Step, View};
use crate::probe::protocol::Op;
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// A key as the table names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Char(char),
    /// The letter with Ctrl held.
    Ctrl(char),
    Up,
    Down,
    Left,
    Right,
    Tab,
    Esc,
    PageUp,
    PageDown,
}

impl Key {
    /// The key pressed in `event`, if the table could name it (releases and repeats of other
    /// kinds are ignored).
    pub fn from_event(event: KeyEvent) -> Option<Key> {
        if event.kind == KeyEventKind::Release {
            return None;
        }
        let ctrl = event.modifiers.contains(KeyModifiers::CONTROL);
        Some(match event.code {
            KeyCode::Char(c) if ctrl => Key::Ctrl(c.to_ascii_lowercase()),
            KeyCode::Char(c) => Key::Char(c),
            KeyCode::Up => Key::Up,
            KeyCode::Down => Key::Down,
            KeyCode::Left => Key::Left,
            KeyCode::Right => Key::Right,
            KeyCode::Tab | KeyCode::BackTab => Key::Tab,
            KeyCode::Esc => Key::Esc,
            KeyCode::PageUp => Key::PageUp,
            KeyCode::PageDown => Key::PageDown,
            _ => return None,
        })
    }
}

/// Where a binding works.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Everywhere, unless the help is open.
    Global,
    /// While the help is open (it takes every other key).
    Help,
    /// While this panel has the focus.
    Panel(Focus),
}

/// One row of the key table.
#[derive(Debug)]
pub struct Binding {
    pub keys: &'static [Key],
    /// How the keys are written on screen.
    pub label: &'static str,
    /// What they do, in a word or two for the key bar.
    pub hint: &'static str,
    /// Whether the key bar shows it (the help always does).
    pub in_bar: bool,
    pub scope: Scope,
    pub action: Action,
}

const fn bind(
    keys: &'static [Key],
    label: &'static str,
    hint: &'static str,
    in_bar: bool,
    scope: Scope,
    action: Action,
) -> Binding {
    Binding {
        keys,
        label,
        hint,
        in_bar,
        scope,
        action,
    }
}

const MATRIX: Scope = Scope::Panel(Focus::Matrix);
const GPUS: Scope = Scope::Panel(Focus::Gpus);

/// Every key of the live view, in the order the key bar and help list them.
pub const BINDINGS: &[Binding] = &[
    bind(
        &[Key::Char('?'), Key::Esc],
        "?/Esc",
        "close help",
        true,
        Scope::Help,
        Action::CloseHelp,
    ),
    bind(
        &[Key::Char('q'), Key::Ctrl('c')],
        "q",
        "quit",
        true,
        Scope::Help,
        Action::Quit,
    ),
    bind(
        &[Key::Up, Key::Char('k')],
        "↑",
        "scroll up",
        false,
        Scope::Help,
        Action::ScrollHelp(-1),
    ),
    bind(
        &[Key::Down, Key::Char('j')],
        "↓",
        "scroll down",
        false,
        Scope::Help,
        Action::ScrollHelp(1),
    ),
    bind(
        &[Key::PageUp],
        "PgUp",
        "page up",
        false,
        Scope::Help,
        Action::ScrollHelp(-10),
    ),
    bind(
        &[Key::PageDown, Key::Char(' ')],
        "PgDn",
        "page down",
        false,
        Scope::Help,
        Action::ScrollHelp(10),
    ),
    bind(
        &[],
        "↑↓",
        "scroll",
        true,
        Scope::Help,
        Action::ScrollHelp(1),
    ),
    bind(
        &[Key::Char('?')],
        "?",
        "help",
        true,
        Scope::Global,
        Action::ToggleHelp,
    ),
    bind(
        &[Key::Char('q'), Key::Esc, Key::Ctrl('c')],
        "q",
        "quit",
        true,
        Scope::Global,
        Action::Quit,
    ),
    bind(
        &[Key::Up, Key::Char('k')],
        "↑",
        "src up",
        false,
        MATRIX,
        Action::Move(Step::Up),
    ),
    bind(
        &[Key::Down, Key::Char('j')],
        "↓",
        "src down",
        false,
        MATRIX,
        Action::Move(Step::Down),
    ),
    bind(
        &[Key::Left, Key::Char('h')],
        "←",
        "dst left",
        false,
        MATRIX,
        Action::Move(Step::Left),
    ),
    bind(
        &[Key::Right, Key::Char('l')],
        "→",
        "dst right",
        false,
        MATRIX,
        Action::Move(Step::Right),
    ),
    bind(&[], "←↑↓→", "cell", true, MATRIX, Action::Move(Step::Up)),
    bind(
        &[Key::Up, Key::Char('k')],
        "↑",
        "scroll up",
        false,
        GPUS,
        Action::ScrollGpus(Step::Up),
    ),
    bind(
        &[Key::Down, Key::Char('j')],
        "↓",
        "scroll down",
        false,
        GPUS,
        Action::ScrollGpus(Step::Down),
    ),
    bind(
        &[],
        "↑↓",
        "scroll",
        true,
        GPUS,
        Action::ScrollGpus(Step::Down),
    ),
    bind(
        &[Key::Char('o')],
        "o",
        "op",
        true,
        Scope::Global,
        Action::NextOp,
    ),
    bind(
        &[Key::Char('r')],
        "r",
        "read",
        false,
        Scope::Global,
        Action::SetOp(Op::Read),
    ),
    bind(
        &[Key::Char('w')],
        "w",
        "write",
        false,
        Scope::Global,
        Action::SetOp(Op::Write),
    ),
    bind(
        &[Key::Char('b')],
        "b",
        "bidir",
        false,
        Scope::Global,
        Action::SetOp(Op::Bidir),
    ),
    bind(
        &[Key::Char('m')],
        "m",
        "mode",
        true,
        Scope::Global,
        Action::ToggleMode,
    ),
    bind(
        &[Key::Char('e')],
        "e",
        "engine",
        true,
        Scope::Global,
        Action::ToggleEngine,
    ),
    bind(
        &[Key::Char('p'), Key::Char(' ')],
        "p",
        "pause",
        true,
        Scope::Global,
        Action::TogglePause,
    ),
    bind(
        &[Key::Char('s')],
        "s",
        "save snapshot",
        true,
        Scope::Global,
        Action::Snapshot,
    ),
    bind(
        &[Key::Char('u')],
        "u",
        "units",
        true,
        Scope::Global,
        Action::ToggleUnits,
    ),
    bind(
        &[Key::Tab],
        "Tab",
        "panel",
        true,
        Scope::Global,
        Action::NextFocus,
    ),
];

/// Whether a binding does something in `view`: the op keys choose what a sweep measures, and
/// stress always loads bidir.
pub fn works(binding: &Binding, view: &View) -> bool {
    !(view.mode == Mode::Stress && matches!(binding.action, Action::NextOp | Action::SetOp(_)))
}

/// What an action does, in a sentence for the help.
pub fn says(action: Action) -> &'static str {
    match action {
        Action::Quit => "quit (the terminal is restored)",
        Action::ToggleHelp => "open or close this help",
        Action::CloseHelp => "close this help",
        Action::ScrollHelp(_) => "scroll this help",
        Action::NextFocus => "move the keys to the other panel (matrix or GPUs)",
        Action::Move(Step::Up) => "select the source above",
        Action::Move(Step::Down) => "select the source below",
        Action::Move(Step::Left) => "select the destination to the left",
        Action::Move(Step::Right) => "select the destination to the right",
        Action::ScrollGpus(Step::Up | Step::Left) => "scroll the GPU list up",
        Action::ScrollGpus(Step::Down | Step::Right) => "scroll the GPU list down",
        Action::NextOp => "sweep the next op: read, write, bidir (sweep only; stress loads bidir)",
        Action::SetOp(Op::Read) => "sweep reads: the copy runs on dst and pulls (sweep only)",
        Action::SetOp(Op::Write) => "sweep writes: the copy runs on src and pushes (sweep only)",
        Action::SetOp(_) => "sweep both directions at once (sweep only)",
        Action::ToggleMode => "switch the load: sweep (one pair at a time) or stress (all at once)",
        Action::ToggleEngine => "switch the engine: sm (PTX kernels) or ce (copy engines)",
        Action::ToggleUnits => "cells in GB/s, or in % of what the path was built for",
        Action::TogglePause => "pause or resume measuring",
        Action::Snapshot => "save the screen as JSON and Markdown, and the history as CSV",
    }
}

/// The scopes that are live in `view`, most specific first.
fn live_scopes(view: &View) -> Vec<Scope> {
    if view.help {
        vec![Scope::Help]
    } else {
        vec![Scope::Panel(view.focus), Scope::Global]
    }
}

/// The action `key` asks for in `view`, if any.
pub fn action(view: &View, key: Key) -> Option<Action> {
    live_scopes(view).into_iter().find_map(|scope| {
        BINDINGS
            .iter()
            .find(|b| b.scope == scope && b.keys.contains(&key))
            .map(|b| b.action)
    })
}

/// The bindings the key bar shows for `view`, in table order.
pub fn bar(view: &View) -> Vec<&'static Binding> {
    let scopes = live_scopes(view);
    BINDINGS
        .iter()
        .filter(|b| b.in_bar && scopes.contains(&b.scope) && works(b, view))
        .collect()
}

/// The bindings the help lists: every key that does something.
pub fn help() -> impl Iterator<Item = &'static Binding> {
    BINDINGS
        .iter()
        .filter(|b| !b.keys.is_empty() && b.scope != Scope::Help)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, modifiers: KeyModifiers) -> Option<Key> {
        Key::from_event(KeyEvent::new(code, modifiers))
    }

    #[test]
    fn ctrl_c_q_and_esc_quit_and_esc_closes_the_help_first() {
        let mut view = View::new(3);
        let ctrl_c = press(KeyCode::Char('c'), KeyModifiers::CONTROL).unwrap();
        assert_eq!(action(&view, ctrl_c), Some(Action::Quit));
        assert_eq!(action(&view, Key::Char('q')), Some(Action::Quit));
        assert_eq!(action(&view, Key::Esc), Some(Action::Quit));
        view.help = true;
        assert_eq!(action(&view, Key::Esc), Some(Action::CloseHelp));
        assert_eq!(action(&view, ctrl_c), Some(Action::Quit));
        assert_eq!(action(&view, Key::Char('m')), None);
    }

    #[test]
    fn arrows_act_on_the_focused_panel() {
        let mut view = View::new(3);
        assert_eq!(action(&view, Key::Down), Some(Action::Move(Step::Down)));
        view.focus = Focus::Gpus;
        assert_eq!(
            action(&view, Key::Down),
            Some(Action::ScrollGpus(Step::Down))
        );
        assert_eq!(action(&view, Key::Left), None);
    }

    #[test]
    fn every_hint_in_the_bar_and_help_names_a_key_that_does_what_it_says() {
        let view = View::new(3);
        for binding in help() {
            let key = binding.keys[0];
            let scoped = View {
                focus: match binding.scope {
                    Scope::Panel(focus) => focus,
                    _ => view.focus,
                },
                ..view.clone()
            };
            assert_eq!(
                action(&scoped, key),
                Some(binding.action),
                "{}",
                binding.label
            );
        }
        // The bar's summary rows stand for keys that exist in the same scope.
        for binding in BINDINGS.iter().filter(|b| b.keys.is_empty()) {
            assert!(
                BINDINGS.iter().any(|b| b.scope == binding.scope
                    && b.action == binding.action
                    && !b.keys.is_empty()),
                "{}",
                binding.label
            );
        }
        let labels: Vec<&str> = bar(&view).iter().map(|b| b.hint).collect();
        assert!(labels.starts_with(&["help", "quit", "cell"]), "{labels:?}");
    }

    #[test]
    fn op_keys_leave_the_bar_in_stress_and_the_help_scrolls() {
        let mut view = View::new(3);
        let hints = |view: &View| bar(view).iter().map(|b| b.label).collect::<Vec<_>>();
        assert!(hints(&view).contains(&"o"));
        view.mode = Mode::Stress;
        assert!(!hints(&view).contains(&"o"), "{:?}", hints(&view));
        assert!(hints(&view).contains(&"m"));
        view.help = true;
        assert_eq!(action(&view, Key::Down), Some(Action::ScrollHelp(1)));
        assert_eq!(action(&view, Key::PageUp), Some(Action::ScrollHelp(-10)));
        for binding in BINDINGS {
            assert!(!says(binding.action).is_empty());
        }
    }

    #[test]
    fn key_releases_are_ignored() {
        let mut event = KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE);
        event.kind = KeyEventKind::Release;
        assert_eq!(Key::from_event(event), None);
    }
}
