//! What the live view shows and how: mode, op, engine, units, the selected cell, which panel
//! has the keys, and whether measuring is paused. Changing it is pure; what the change asks of
//! the outside world (stop the probe, write a snapshot, quit) comes back as an [`Effect`].

use crate::probe::protocol::{Engine, Op};

/// How the machine is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One pair and op at a time, cycling forever: the accurate matrix.
    Sweep,
    /// Every selected pair at once, sustained: contention and, over minutes, heat.
    Stress,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Sweep => "sweep",
            Mode::Stress => "stress",
        }
    }
}

/// How matrix cells are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Units {
    /// GB/s (10^9 bytes per second).
    Gbps,
    /// Percent of the pair's line rate.
    LineRate,
}

/// The panel that arrow keys act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    Matrix,
    Gpus,
}

/// A direction to move the selection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Up,
    Down,
    Left,
    Right,
}

/// Everything a key can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Quit,
    ToggleHelp,
    CloseHelp,
    /// Scroll the help by this many lines (negative: up).
    ScrollHelp(i16),
    NextFocus,
    Move(Step),
    ScrollGpus(Step),
    SetOp(Op),
    NextOp,
    ToggleEngine,
    ToggleMode,
    ToggleUnits,
    TogglePause,
    Snapshot,
}

/// What an action asks of the loop around the view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Only the screen changes.
    Redraw,
    Quit,
    /// Write a snapshot report of what is on screen.
    Snapshot,
    /// What is measured changed: stop the running command and plan again.
    Remeasure,
    /// Stop measuring until resumed.
    Pause,
    Resume,
}

/// The ops the matrix can show, in the order `o` steps through them.
pub const MATRIX_OPS: [Op; 3] = [Op::Read, Op::Write, Op::Bidir];

#[derive(Clone, Debug, PartialEq)]
pub struct View {
    pub mode: Mode,
    pub op: Op,
    pub engine: Engine,
    pub units: Units,
    /// Row (src) and column (dst) of the selected cell, as indices into `Board::nodes()`.
    pub selected: (usize, usize),
    pub focus: Focus,
    pub paused: bool,
    pub help: bool,
    /// First line of the help shown.
    pub help_scroll: u16,
    /// First GPU shown in the GPU panel.
    pub gpu_scroll: usize,
    /// A line for the user: where a snapshot went, or why it could not be written.
    pub notice: Option<String>,
}

impl Default for View {
    fn default() -> View {
        View {
            mode: Mode::Sweep,
            op: Op::Read,
            engine: Engine::Sm,
            units: Units::Gbps,
            // GPU0 → GPU1 on any machine with two GPUs; clamped on smaller ones.
            selected: (0, 1),
            focus: Focus::Matrix,
            paused: false,
            help: false,
            help_scroll: 0,
            gpu_scroll: 0,
            notice: None,
        }
    }
}

impl View {
    /// A view of a matrix with `nodes` rows and columns, selection inside it.
    pub fn new(nodes: usize) -> View {
        let mut view = View::default();
        view.clamp(nodes);
        view
    }

    /// The op the matrix shows: the chosen one in a sweep, bidir (what stress loads) in stress.
    pub fn shown_op(&self) -> Op {
        match self.mode {
            Mode::Sweep => self.op,
            Mode::Stress => Op::Bidir,
        }
    }

    /// Keeps the selection inside a matrix of `nodes` rows and columns.
    pub fn clamp(&mut self, nodes: usize) {
        let last = nodes.saturating_sub(1);
        self.selected = (self.selected.0.min(last), self.selected.1.min(last));
    }

    /// Applies `action` to a view of `nodes` matrix nodes and `gpus` GPUs.
    pub fn apply(&mut self, action: Action, nodes: usize, gpus: usize) -> Effect {
        match action {
            Action::Quit => return Effect::Quit,
            Action::ToggleHelp => {
                self.help = !self.help;
                self.help_scroll = 0;
            }
            Action::CloseHelp => self.help = false,
            Action::ScrollHelp(lines) => {
                self.help_scroll = self.help_scroll.saturating_add_signed(lines);
            }
            Action::NextFocus => {
                self.focus = match self.focus {
                    Focus::Matrix => Focus::Gpus,
                    Focus::Gpus => Focus::Matrix,
                }
            }
            Action::Move(step) => self.move_selection(step, nodes),
            Action::ScrollGpus(step) => {
                self.gpu_scroll = match step {
                    Step::Up | Step::Left => self.gpu_scroll.saturating_sub(1),
                    Step::Down | Step::Right => (self.gpu_scroll + 1).min(gpus.saturating_sub(1)),
                }
            }
            Action::SetOp(op) => {
                if self.op != op {
                    self.op = op;
                    return self.remeasure_in_sweep();
                }
            }
            Action::NextOp => {
                let at = MATRIX_OPS.iter().position(|&o| o == self.op).unwrap_or(0);
                self.op = MATRIX_OPS[(at + 1) % MATRIX_OPS.len()];
                return self.remeasure_in_sweep();
            }
            Action::ToggleEngine => {
                self.engine = match self.engine {
                    Engine::Sm => Engine::Ce,
                    Engine::Ce => Engine::Sm,
                };
                return Effect::Remeasure;
            }
            Action::ToggleMode => {
                self.mode = match self.mode {
                    Mode::Sweep => Mode::Stress,
                    Mode::Stress => Mode::Sweep,
                };
                return Effect::Remeasure;
            }
            Action::ToggleUnits => {
                self.units = match self.units {
                    Units::Gbps => Units::LineRate,
                    Units::LineRate => Units::Gbps,
                }
            }
            Action::TogglePause => {
                self.paused = !self.paused;
                return if self.paused {
                    Effect::Pause
                } else {
                    Effect::Resume
                };
            }
            Action::Snapshot => return Effect::Snapshot,
        }
        Effect::Redraw
    }

    /// Stress always loads bidir, so only a sweep measures something else when the op changes;
    /// in stress the change waits for the next sweep, and the notice says so.
    fn remeasure_in_sweep(&mut self) -> Effect {
        match self.mode {
            Mode::Sweep => Effect::Remeasure,
            Mode::Stress => {
                self.notice = Some(format!(
                    "stress always loads bidir; the sweep will measure {} (m returns to it)",
                    self.op.name()
                ));
                Effect::Redraw
            }
        }
    }

    fn move_selection(&mut self, step: Step, nodes: usize) {
        let last = nodes.saturating_sub(1);
        let (row, col) = &mut self.selected;
        match step {
            Step::Up => *row = row.saturating_sub(1),
            Step::Down => *row = (*row + 1).min(last),
            Step::Left => *col = col.saturating_sub(1),
            Step::Right => *col = (*col + 1).min(last),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_selection_stays_inside_the_matrix() {
        let mut view = View::new(3);
        for _ in 0..5 {
            view.apply(Action::Move(Step::Right), 3, 2);
            view.apply(Action::Move(Step::Down), 3, 2);
        }
        assert_eq!(view.selected, (2, 2));
        for _ in 0..5 {
            view.apply(Action::Move(Step::Up), 3, 2);
        }
        assert_eq!(view.selected, (0, 2));
        assert_eq!(View::new(1).selected, (0, 0));
    }

    #[test]
    fn changes_to_what_is_measured_ask_for_a_new_plan_and_display_changes_do_not() {
        let mut view = View::new(3);
        assert_eq!(view.apply(Action::NextOp, 3, 2), Effect::Remeasure);
        assert_eq!(view.op, Op::Write);
        assert_eq!(view.apply(Action::SetOp(Op::Write), 3, 2), Effect::Redraw);
        assert_eq!(view.apply(Action::ToggleUnits, 3, 2), Effect::Redraw);
        assert_eq!(view.apply(Action::ToggleMode, 3, 2), Effect::Remeasure);
        assert_eq!(view.apply(Action::SetOp(Op::Read), 3, 2), Effect::Redraw);
        assert_eq!(view.apply(Action::ToggleEngine, 3, 2), Effect::Remeasure);
        assert_eq!(view.apply(Action::TogglePause, 3, 2), Effect::Pause);
        assert_eq!(view.apply(Action::TogglePause, 3, 2), Effect::Resume);
    }
}
