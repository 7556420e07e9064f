//! The live view, drawn with ratatui: one file per region, each with
//! `render(frame, area, &state)` and its layout in a doc comment.
//!
//! ```text
//! ┌ header: machine, mode, op, engine, buffer ──────────────────────────────┐
//! │ bandwidth matrix (src → dst)          │ link types (nvidia-smi topo -m) │  side by side
//! │                                       │                                 │  when both fit,
//! ├───────────────────────────────────────┴─────────────────────────────────┤  else one grid
//! │ GPUs (temperature, clocks, power, PCIe, │ selected pair: figures, chart  │  side by side
//! │ NVLink, throttle reasons, errors)       │ line rate, P2P status          │  from 136 cols
//! ├─────────────────────────────────────────┴────────────────────────────────┤
//! │ notice or problem                                                         │
//! └ keys of the focused panel ───────────────────────────────────────────────┘
//! ```
//! The help overlay covers the middle; below 80×24 only a message is drawn.

pub mod detail;
pub mod gpus;
pub mod header;
pub mod help;
pub mod keybar;
pub mod links;
pub mod matrix;
pub mod opening;
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
    pub gpus: Rect,
    pub detail: Rect,
    pub keybar: Rect,
}

/// Splits `area` into the view's regions.
pub fn regions(area: Rect, state: &State) -> Regions {
    let [header, body, keybar] = Layout::vertical([
        Constraint::Length(header::HEIGHT),
        Constraint::Min(0),
        Constraint::Length(keybar::HEIGHT),
    ])
    .areas(area);
    let wanted = matrix::height(state.board);
    let matrix_height = wanted.min(body.height.saturating_sub(8)).max(4);
    let [top, bottom] =
        Layout::vertical([Constraint::Length(matrix_height), Constraint::Min(0)]).areas(body);
    let split_width = matrix::width(state.board, false);
    let (matrix, links) = if split_width + links::width(state.board) <= top.width {
        let [m, l] = Layout::horizontal([
            Constraint::Min(split_width),
            Constraint::Length(links::width(state.board)),
        ])
        .areas(top);
        (m, Some(l))
    } else {
        (top, None)
    };
    let (gpus, detail) = if bottom.width >= SIDE_BY_SIDE_BOTTOM {
        let [g, d] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
            .areas(bottom);
        (g, d)
    } else {
        let gpu_rows = gpus::height(state.board).min(bottom.height / 2);
        let [g, d] =
            Layout::vertical([Constraint::Length(gpu_rows), Constraint::Min(0)]).areas(bottom);
        (g, d)
    };
    Regions {
        header,
        matrix,
        links,
        gpus,
        detail,
        keybar,
    }
}

/// Draws one frame.
pub fn draw(frame: &mut Frame, state: &State) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        too_small(frame, area);
        return;
    }
    let r = regions(area, state);
    header::render(frame, r.header, state);
    matrix::render(frame, r.matrix, state, r.links.is_none());
    if let Some(links) = r.links {
        links::render(frame, links, state);
    }
    gpus::render(frame, r.gpus, state);
    detail::render(frame, r.detail, state);
    keybar::render(frame, r.keybar, state);
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
    matrix::cell_at(r.matrix, state, r.links.is_none(), x, y)
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
