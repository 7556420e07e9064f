//! The bandwidth matrix: rows are the source, columns the destination (data moves src → dst),
//! the host is a node and the diagonal is each GPU's device-local copy. On narrow terminals
//! every cell also carries the link type (the link-type matrix does not fit beside it).
//!
//! ```text
//! ┌ read GB/s · src → dst · sm ────────────────┐   merged: ┌ … ─────────────────────────┐
//! │src\dst  GPU0  GPU1  host                   │           │src\dst  GPU0       GPU1    │
//! │GPU0      812  48.1  24.9                   │           │GPU0     X     812  NV4 48.1│
//! │GPU1     48.1  40.2! 24.9                   │           │GPU1     NV4  48.1  X    812│
//! │host     24.1   GNS     —                   │           │…                           │
//! │diagonal = local copy · ! throttled · …     │           │                            │
//! └────────────────────────────────────────────┘           └────────────────────────────┘
//! ```
//! Rows and columns scroll to keep the selected cell in view when they do not all fit.

use super::{State, window_start};
use crate::app::board::Board;
use crate::app::reading::{self, Reading, failure_code, figure};
use crate::app::view::{Focus, Units};
use crate::probe::protocol::{FailureKind, Node};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

/// Width of the row labels ("src\dst", "GPU15").
const LABEL: u16 = 7;
/// Width of a cell with the figure only, and with the link type too.
const CELL: u16 = 6;
const MERGED_CELL: u16 = 11;

const LEGEND: &str = "diagonal = local copy · ! GPU throttled · BAD wrong data · HUNG/ERR/GATE failed · CNS/GNS/TNS… no P2P · · not yet";

/// Rows a full matrix needs: column heads, one per node, the legend, the border.
pub fn height(board: &Board) -> u16 {
    board.nodes().len() as u16 + 4
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
    let rows = (inner.height.saturating_sub(2) as usize).min(nodes);
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
        Units::LineRate => "% of line rate",
    };
    let title = format!(
        " {} {unit} · src → dst · {} ",
        view.shown_op().name(),
        view.engine.name()
    );
    let mut block = Block::bordered().title(Span::styled(title, theme.label()));
    if view.focus == Focus::Matrix {
        block = block.border_style(theme.focused_border());
    }
    let mut lines = Vec::with_capacity(g.rows + 2);
    let mut head = vec![Span::styled(
        format!("{:<w$}", "src\\dst", w = LABEL as usize),
        theme.dim(),
    )];
    for dst in nodes.iter().skip(g.first_col).take(g.cols) {
        head.push(Span::styled(
            format!("{:>w$}", dst.to_string(), w = g.cell as usize - 1) + " ",
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
    lines.push(Line::styled(LEGEND, theme.dim()));
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// The text of one cell, padded to its width, and its style.
fn cell_text(state: &State, src: Node, dst: Node, merged: bool) -> (String, Style) {
    let theme = state.theme;
    let view = state.view;
    let (value, marker, style) =
        match reading::read(state.board, src, dst, view.shown_op(), view.engine) {
            Reading::Figure {
                gbps,
                share,
                throttled,
                corrupt,
            } => {
                let marker = if throttled { "!" } else { " " };
                if corrupt {
                    ("BAD".to_owned(), marker, theme.alarm())
                } else {
                    let text = match (view.units, share) {
                        (Units::LineRate, Some(s)) => format!("{:.0}%", (s * 100.0).min(999.0)),
                        (Units::LineRate, None) => "n/a".to_owned(),
                        (Units::Gbps, _) => figure(gbps),
                    };
                    let style = share.map_or(Style::new(), |s| theme.share(s));
                    (text, marker, style)
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
                (failure_code(failure.kind).to_owned(), " ", style)
            }
            Reading::Impossible(status) => (status.code().to_owned(), " ", theme.dim()),
            Reading::NoPath => ("—".to_owned(), " ", theme.dim()),
            Reading::Pending => ("·".to_owned(), " ", theme.dim()),
        };
    let text = if merged {
        format!(
            " {:<4} {value:>4}{marker}",
            link_label(state.board, src, dst)
        )
    } else {
        format!(" {value:>4}{marker}")
    };
    (text, style)
}

/// The link type of a pair as `topo -m` writes it; PCIe for the host.
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
