//! The live view, drawn with ratatui: one file per region, each with
//! `render(frame, area, &state)` and its layout in a doc comment.
//!
//! ```text
//! ┌ header: machine, mode, op, engine, buffer ──────────────────────────────┐
//! │ bandwidth matrix (src → dst), │ link types (nvidia-smi topo -m), the    │  side by side
//! │ as wide as its cells          │ rest of the width                       │  when both fit,
//! ├───────────────────────────────┴─────────────────────────────────────────┤  else one grid
//! │ GPUs (temperature, clocks, power, PCIe, │ selected pair: figures, gap,   │  side by side
//! │ NVLink, throttle reasons, errors)       │ bandwidth over time            │  from 136 cols
//! ├─────────────────────────────────────────┴────────────────────────────────┤
//! │ history of the pair's GPUs: temp, clock, power, NVLink, PCIe (when tall)  │
//! ├───────────────────────────────────────────────────────────────────────────┤
//! │ problems, worst first (always), a notice                                  │
//! └ keys of the focused panel ───────────────────────────────────────────────┘
//! ```
//! The help overlay covers the middle; below 80×24 only a message is drawn.

pub mod detail;
pub mod gpus;
pub mod header;
pub mod help;
pub mod history;
pub mod keybar;
pub mod links;
pub mod matrix;
pub mod opening;
pub mod problems;
pub mod theme;

use crate::app::board::Board;
use crate::app::cycle::Running;
use crate::app::view::View;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};
use theme::Theme;

/// The smallest terminal the view is drawn in.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

/// Width from which the GPU panel and the pair detail sit side by side.
const SIDE_BY_SIDE_BOTTOM: u16 = 136;

/// Everything one frame is drawn from.
#[derive(Clone, Copy)]
pub struct State<'a> {
    pub board: &'a Board,
    pub view: &'a View,
    /// The command the probe is working on.
    pub running: Option<&'a Running>,
    pub buffer_mib: u64,
    pub theme: Theme,
}

/// Where each region goes in an area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Regions {
    pub header: Rect,
    pub matrix: Rect,
    /// The link-type matrix, when it fits beside the bandwidth matrix; otherwise the bandwidth
    /// matrix shows the link type in every cell.
    pub links: Option<Rect>,
    /// Whether every matrix cell carries its link type.
    pub merged: bool,
    pub gpus: Rect,
    pub detail: Rect,
    /// The telemetry history, when the terminal has the rows for it.
    pub history: Option<Rect>,
    pub keybar: Rect,
}

/// Rows from which the matrix has its full legend.
const TALL: u16 = 32;

/// Columns the bandwidth matrix box takes at least, so its legend wraps into few lines.
const MATRIX_MIN_WIDTH: u16 = 50;

/// Splits `area` into the view's regions.
pub fn regions(area: Rect, state: &State) -> Regions {
    regions_with(area, state, problems::list(state.board).len())
}

/// [`regions`], with the number of problems the bottom shows already counted.
fn regions_with(area: Rect, state: &State, problems: usize) -> Regions {
    let board = state.board;
    let [header, body, keybar] = Layout::vertical([
        Constraint::Length(header::HEIGHT),
        Constraint::Min(0),
        Constraint::Length(keybar::height(state, problems, area.height)),
    ])
    .areas(area);
    let plain = matrix::width(board, false).max(MATRIX_MIN_WIDTH);
    let merged = matrix::width(board, true).max(MATRIX_MIN_WIDTH);
    let links_width = links::width(board);
    // The matrix box is as wide as its cells; the link-type matrix takes what is left beside
    // it, else every cell carries its link type where that fits, else cells stay compact.
    let (matrix_width, links_shown, merge) = if plain + links_width <= body.width {
        (plain, true, false)
    } else if merged <= body.width {
        (merged, false, true)
    } else {
        (body.width, false, false)
    };
    let wanted = matrix::height(board, matrix_width, area.height >= TALL);
    let matrix_height = if links_shown {
        wanted.max(links::height(board, body.width - matrix_width))
    } else {
        wanted
    };
    let matrix_height = matrix_height.min(body.height.saturating_sub(8)).max(4);
    let [top, bottom] =
        Layout::vertical([Constraint::Length(matrix_height), Constraint::Min(0)]).areas(body);
    let (matrix, links) = if links_shown {
        let [m, l] =
            Layout::horizontal([Constraint::Length(matrix_width), Constraint::Min(0)]).areas(top);
        (m, Some(l))
    } else {
        let [m, _] =
            Layout::horizontal([Constraint::Length(matrix_width), Constraint::Min(0)]).areas(top);
        (m, None)
    };
    let gpu_rows = gpus::height(board);
    let (gpus, detail, history) = if bottom.width >= SIDE_BY_SIDE_BOTTOM {
        // GPUs and the pair side by side, as tall as the GPUs need; history below.
        let row = gpu_rows.max(DETAIL_ROWS);
        let (row, history) = split_history(bottom, row);
        let [g, d] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(row);
        (g, d, history)
    } else {
        let gpu_rows = gpu_rows.min(bottom.height / 2);
        let [g, rest] =
            Layout::vertical([Constraint::Length(gpu_rows), Constraint::Min(0)]).areas(bottom);
        let (d, history) = split_history(rest, DETAIL_ROWS);
        (g, d, history)
    };
    Regions {
        header,
        matrix,
        links,
        merged: merge,
        gpus,
        detail,
        history,
        keybar,
    }
}

/// Rows the pair detail needs for its text (the history panel draws its bandwidth).
const DETAIL_ROWS: u16 = 9;

/// `area` cut into `rows` at the top and the history below, when the history gets at least
/// its minimum; otherwise all of `area`.
fn split_history(area: Rect, rows: u16) -> (Rect, Option<Rect>) {
    if area.height >= rows + history::MIN_HEIGHT {
        let [top, h] = Layout::vertical([Constraint::Length(rows), Constraint::Min(0)]).areas(area);
        (top, Some(h))
    } else {
        (area, None)
    }
}

/// Draws one frame.
pub fn draw(frame: &mut Frame, state: &State) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        too_small(frame, area);
        return;
    }
    let problems = problems::list(state.board);
    let r = regions_with(area, state, problems.len());
    header::render(frame, r.header, state);
    matrix::render(frame, r.matrix, state, r.merged);
    if let Some(links) = r.links {
        links::render(frame, links, state);
    }
    gpus::render(frame, r.gpus, state);
    detail::render(frame, r.detail, state, r.history.is_none());
    if let Some(h) = r.history {
        history::render(frame, h, state);
    }
    keybar::render(frame, r.keybar, state, &problems);
    if state.view.help {
        help::render(frame, area, state);
    }
}

/// The matrix cell (row, column) under a mouse click at (`x`, `y`), if any.
pub fn cell_at(area: Rect, state: &State, x: u16, y: u16) -> Option<(usize, usize)> {
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT || state.view.help {
        return None;
    }
    let r = regions(area, state);
    matrix::cell_at(r.matrix, state, r.merged, x, y)
}

/// The panel under the mouse at (`x`, `y`), if it is one the mouse acts on.
pub fn panel_at(area: Rect, state: &State, x: u16, y: u16) -> Option<crate::app::view::Focus> {
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT || state.view.help {
        return None;
    }
    let r = regions(area, state);
    let at = ratatui::layout::Position { x, y };
    if r.gpus.contains(at) {
        Some(crate::app::view::Focus::Gpus)
    } else if r.matrix.contains(at) {
        Some(crate::app::view::Focus::Matrix)
    } else {
        None
    }
}

fn too_small(frame: &mut Frame, area: Rect) {
    let text = format!(
        "The terminal is {}×{}; p2ptop needs at least {MIN_WIDTH}×{MIN_HEIGHT}. Make it larger, or press q to quit.",
        area.width, area.height
    );
    frame.render_widget(
        Paragraph::new(Line::from(text)).wrap(Wrap { trim: true }),
        area,
    );
}

/// The first of `total` items to show in `visible` places so that `selected` is among them.
pub fn window_start(total: usize, visible: usize, selected: usize) -> usize {
    if visible == 0 || total <= visible {
        0
    } else {
        selected.saturating_sub(visible - 1).min(total - visible)
    }
}

/// `value` with its unit, or n/a.
pub fn or_na<T>(value: Option<T>, show: impl FnOnce(T) -> String) -> String {
    value.map_or_else(|| "n/a".to_owned(), show)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_keeps_the_selection_in_view() {
        assert_eq!(window_start(5, 10, 4), 0);
        assert_eq!(window_start(17, 8, 3), 0);
        assert_eq!(window_start(17, 8, 9), 2);
        assert_eq!(window_start(17, 8, 16), 9);
    }
}
