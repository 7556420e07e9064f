//! The bandwidth matrix: rows are the source, columns the destination (data moves src → dst),
//! the host is a node and the diagonal is each GPU's device-local copy. When the link-type
//! matrix does not fit beside it but there is room, every cell also carries the link type;
//! otherwise cells are compact and the detail panel names the selected pair's link.
//!
//! ```text
//! ┌ read GB/s · src → dst · sm ─────┐   merged: ┌ … ─────────────────────────────┐
//! │src\dst   GPU0   GPU1   host     │           │src\dst  GPU0         GPU1      │
//! │GPU0       812   35.3↓  24.9     │           │GPU0     X     812    NV3  35.3↓ │
//! │GPU1      48.1    812!  24.9     │           │GPU1     NV3  48.1    X     812  │
//! │host      24.1    GNS      —     │           │…                               │
//! │↓ below check's floor · ! GPU    │           │                                │
//! │throttled · …                    │           │                                │
//! └─────────────────────────────────┘           └────────────────────────────────┘
//! ```
//! Colour is the figure against `check`'s floor for its link class and engine, as a share of
//! what the path was built for (in stress, of its fair share); the marks say the same without
//! colour. Rows and columns scroll to keep the selected cell in view when they do not all fit,
//! and the title says how many are off screen.

use super::{State, window_start};
use crate::app::board::Board;
use crate::app::reading::{self, Grade, Reading, failure_code, figure};
use crate::app::view::{Focus, Mode, Units};
use crate::probe::protocol::{FailureKind, Node};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

/// Width of the row labels ("src\dst", "GPU15").
const LABEL: u16 = 7;
/// Width of a cell with the figure only, and with the link type too.
const CELL: u16 = 7;
const MERGED_CELL: u16 = 12;

/// The legend's items, packed into as many lines as the box's width needs.
const LEGEND: [&str; 8] = [
    "↓ below check's floor",
    "! GPU throttled",
    "~ stale",
    "BAD wrong data",
    "HUNG/ERR/GATE failed",
    "CNS/GNS… no P2P",
    "· not yet",
    "diagonal = local copy",
];

/// The legend when the rows do not all fit: one line, the rest is in the help.
const SHORT_LEGEND: [&str; 4] = ["↓ below floor", "! throttled", "~ stale", "? help"];

/// The legend's lines for an inner width of `width`.
fn legend_lines(width: u16) -> Vec<String> {
    pack(&LEGEND, width)
}

fn pack(items: &[&str], width: u16) -> Vec<String> {
    let width = width.max(1) as usize;
    let mut lines: Vec<String> = Vec::new();
    for item in items {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 3 + item.chars().count() <= width => {
                line.push_str(" · ");
                line.push_str(item);
            }
            _ => lines.push((*item).to_owned()),
        }
    }
    lines
}

/// Rows a full matrix needs in a box `width` wide: column heads, one per node, the legend
/// (the full one, or one line when not `full_legend`), the border.
pub fn height(board: &Board, width: u16, full_legend: bool) -> u16 {
    let inner = width.saturating_sub(2);
    let legend = if full_legend {
        legend_lines(inner)
    } else {
        pack(&SHORT_LEGEND, inner)
    };
    board.nodes().len() as u16 + 3 + legend.len() as u16
}

/// Columns a full matrix needs.
pub fn width(board: &Board, merged: bool) -> u16 {
    let cell = if merged { MERGED_CELL } else { CELL };
    2 + LABEL + cell * board.nodes().len() as u16
}

/// Where the cells go inside an area.
struct Geometry {
    inner: Rect,
    cell: u16,
    first_row: usize,
    first_col: usize,
    rows: usize,
    cols: usize,
}

fn geometry(area: Rect, state: &State, merged: bool) -> Geometry {
    let inner = Block::bordered().inner(area);
    let cell = if merged { MERGED_CELL } else { CELL };
    let nodes = state.board.nodes().len();
    let legend = legend_for(inner, nodes).len() as u16;
    let rows = (inner.height.saturating_sub(1 + legend).max(1) as usize).min(nodes);
    let cols = ((inner.width.saturating_sub(LABEL) / cell) as usize).min(nodes);
    let (row, col) = state.view.selected;
    Geometry {
        inner,
        cell,
        first_row: window_start(nodes, rows, row),
        first_col: window_start(nodes, cols, col),
        rows,
        cols,
    }
}

pub fn render(frame: &mut Frame, area: Rect, state: &State, merged: bool) {
    let theme = state.theme;
    let view = state.view;
    let g = geometry(area, state, merged);
    let nodes = state.board.nodes();
    let unit = match view.units {
        Units::Gbps => "GB/s",
        Units::LineRate => "% of built",
    };
    let mut title = format!(
        " {} {unit} · src → dst · {} ",
        view.shown_op().name(),
        view.engine.name()
    );
    title += &off_screen(&nodes, g.first_row, g.rows, "rows");
    title += &off_screen(&nodes, g.first_col, g.cols, "columns");
    let mut block = Block::bordered().title(Span::styled(title, theme.label()));
    if view.focus == Focus::Matrix {
        block = block.border_style(theme.focused_border());
    }
    let mut lines = Vec::with_capacity(g.rows + 3);
    let mut head = vec![Span::styled(
        format!("{:<w$}", "src\\dst", w = LABEL as usize),
        theme.dim(),
    )];
    for dst in nodes.iter().skip(g.first_col).take(g.cols) {
        head.push(Span::styled(
            format!("{:>w$}", dst.to_string(), w = g.cell as usize - 2) + "  ",
            theme.label(),
        ));
    }
    lines.push(Line::from(head));
    for (r, &src) in nodes.iter().enumerate().skip(g.first_row).take(g.rows) {
        let mut spans = vec![Span::styled(
            format!("{:<w$}", src.to_string(), w = LABEL as usize),
            theme.label(),
        )];
        for (c, &dst) in nodes.iter().enumerate().skip(g.first_col).take(g.cols) {
            let (text, mut style) = cell_text(state, src, dst, merged);
            if (r, c) == view.selected {
                style = style.patch(theme.selected());
            }
            spans.push(Span::styled(text, style));
        }
        lines.push(Line::from(spans));
    }
    for legend in legend_for(g.inner, nodes.len()) {
        lines.push(Line::styled(legend, theme.dim()));
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// The full legend when every row fits with it, else the short one.
fn legend_for(inner: Rect, nodes: usize) -> Vec<String> {
    let full = legend_lines(inner.width);
    if inner.height as usize >= nodes + 1 + full.len() {
        full
    } else {
        pack(&SHORT_LEGEND, inner.width)
    }
}

/// `· 3 columns off screen ` when some of `nodes` are not shown, naming them.
fn off_screen(nodes: &[Node], first: usize, shown: usize, what: &str) -> String {
    let hidden: Vec<String> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i < first || *i >= first + shown)
        .map(|(_, n)| n.to_string())
        .collect();
    match hidden.as_slice() {
        [] => String::new(),
        few if few.len() <= 3 => format!("· {what} {} off screen ", few.join(", ")),
        many => format!("· {} {what} off screen ", many.len()),
    }
}

/// The text of one cell, padded to its width, and its style.
fn cell_text(state: &State, src: Node, dst: Node, merged: bool) -> (String, Style) {
    let theme = state.theme;
    let view = state.view;
    let (value, marks, style) = match reading::read_view(state.board, view, src, dst) {
        Reading::Figure {
            gbps,
            share,
            grade,
            stale,
            throttled,
            corrupt,
            ..
        } => {
            let throttle = if throttled { '!' } else { ' ' };
            if corrupt {
                ("BAD".to_owned(), [' ', throttle], theme.alarm())
            } else {
                let text = match (view.units, share) {
                    (Units::LineRate, Some(s)) => format!("{:.0}%", (s * 100.0).min(999.0)),
                    (Units::LineRate, None) => "n/a".to_owned(),
                    (Units::Gbps, _) => figure(gbps),
                };
                let (mark, style) = if stale {
                    ('~', theme.dim())
                } else {
                    match grade {
                        Some(Grade::Below) => ('↓', theme.bad()),
                        Some(Grade::Near) => (' ', theme.warn()),
                        Some(Grade::Good) => (' ', theme.good()),
                        None => (' ', Style::new()),
                    }
                };
                (text, [mark, throttle], style)
            }
        }
        Reading::Failed(failure) => {
            let style = match failure.kind {
                FailureKind::Hung
                | FailureKind::Driver
                | FailureKind::GateTimeout
                | FailureKind::Crashed => theme.alarm(),
                FailureKind::Invalid | FailureKind::Unsupported | FailureKind::Skipped => {
                    theme.bad()
                }
            };
            (failure_code(failure.kind).to_owned(), [' '; 2], style)
        }
        Reading::Impossible(status) => (status.code().to_owned(), [' '; 2], theme.dim()),
        Reading::NoPath => ("—".to_owned(), [' '; 2], theme.dim()),
        Reading::Pending if view.mode == Mode::Stress => ("~".to_owned(), [' '; 2], theme.dim()),
        Reading::Pending => ("·".to_owned(), [' '; 2], theme.dim()),
    };
    let [mark, throttle] = marks;
    let text = if merged {
        format!(
            " {:<4} {value:>4}{mark}{throttle}",
            link_label(state.board, src, dst)
        )
    } else {
        format!(" {value:>4}{mark}{throttle}")
    };
    (text, style)
}

/// The link type of a pair as `topo -m` writes it now; PCIe for the host.
fn link_label(board: &Board, src: Node, dst: Node) -> String {
    match (src, dst) {
        (Node::Gpu(a), Node::Gpu(b)) => board
            .topology
            .link(a, b)
            .map_or_else(|| "?".to_owned(), |l| l.to_string()),
        (Node::Host, Node::Host) => String::new(),
        _ => "PCIe".to_owned(),
    }
}

/// The cell (row, column) at screen position (`x`, `y`), if the matrix in `area` has one there.
pub fn cell_at(area: Rect, state: &State, merged: bool, x: u16, y: u16) -> Option<(usize, usize)> {
    let g = geometry(area, state, merged);
    let first_cell_x = g.inner.x + LABEL;
    let first_row_y = g.inner.y + 1;
    if x < first_cell_x || y < first_row_y {
        return None;
    }
    let row = (y - first_row_y) as usize;
    let col = ((x - first_cell_x) / g.cell) as usize;
    (row < g.rows && col < g.cols).then_some((g.first_row + row, g.first_col + col))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legend_packs_into_the_width_it_has_and_keeps_every_item() {
        let narrow = legend_lines(30);
        assert!(narrow.iter().all(|l| l.chars().count() <= 30), "{narrow:?}");
        let wide = legend_lines(400);
        assert_eq!(wide.len(), 1);
        assert_eq!(narrow.join(" · "), wide[0]);
        assert_eq!(wide[0].matches(" · ").count() + 1, LEGEND.len());
    }
}
