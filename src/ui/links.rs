//! The link-type matrix, as `nvidia-smi topo -m` prints it, beside the bandwidth matrix; under
//! it, the legend lines for the link types this machine has.
//!
//! ```text
//! ┌ link types (nvidia-smi topo -m) ───────────────┐
//! │      GPU0  GPU1  CPU Affinity  NUMA Affinity   │
//! │GPU0  X     NV4   0-31          0               │
//! │GPU1  NV4   X     0-31          0               │
//! │X    = Self                                     │
//! │NV#  = Connection traversing a bonded set of …  │
//! └────────────────────────────────────────────────┘
//! ```

use super::{State, or_na, window_start};
use crate::app::board::Board;
use crate::model::topology::LinkType;
use crate::probe::protocol::Node;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

const LABEL: usize = 6;
const CELL: usize = 6;
const AFFINITY: &str = "CPU Affinity  NUMA Affinity";

/// Columns the matrix needs with its affinity columns.
pub fn width(board: &Board) -> u16 {
    (2 + LABEL + CELL * board.topology.gpus.len() + AFFINITY.len()) as u16
}

/// Rows the panel needs in a box `width` wide: heads, a row per GPU, the legends (wrapped),
/// the border.
pub fn height(board: &Board, width: u16) -> u16 {
    let inner = width.saturating_sub(2).max(1) as usize;
    let legend: usize = legends(board)
        .iter()
        .map(|l| l.chars().count().max(1).div_ceil(inner))
        .sum();
    (board.topology.gpus.len() + 3 + legend) as u16
}

pub fn render(frame: &mut Frame, area: Rect, state: &State) {
    let theme = state.theme;
    let topo = &state.board.topology;
    let inner_rows = area.height.saturating_sub(3) as usize;
    let selected_gpu = match state.board.nodes().get(state.view.selected.0) {
        Some(Node::Gpu(_)) => state.view.selected.0,
        _ => 0,
    };
    let first = window_start(topo.gpus.len(), inner_rows, selected_gpu);
    // The selected pair, highlighted as in the bandwidth matrix.
    let nodes = state.board.nodes();
    let selected = match (
        nodes.get(state.view.selected.0),
        nodes.get(state.view.selected.1),
    ) {
        (Some(Node::Gpu(a)), Some(Node::Gpu(b))) => Some((*a, *b)),
        _ => None,
    };
    let mut head = vec![Span::raw(" ".repeat(LABEL))];
    for gpu in &topo.gpus {
        head.push(Span::styled(
            format!("{:<CELL$}", format!("GPU{}", gpu.index)),
            theme.label(),
        ));
    }
    head.push(Span::styled(AFFINITY, theme.label()));
    let mut lines = vec![Line::from(head)];
    for a in topo.gpus.iter().skip(first).take(inner_rows) {
        let mut spans = vec![Span::styled(
            format!("{:<LABEL$}", format!("GPU{}", a.index)),
            theme.label(),
        )];
        for b in &topo.gpus {
            let link = topo.link(a.index, b.index);
            let built = state.board.built_link(a.index, b.index);
            let mut style = match link {
                _ if link != built => theme.bad(),
                Some(LinkType::NvLink(_)) => theme.good(),
                Some(LinkType::SelfLink) => theme.dim(),
                _ => ratatui::style::Style::new(),
            };
            if selected == Some((a.index, b.index)) {
                style = style.patch(theme.selected());
            }
            let text = or_na(link, |l| l.to_string());
            spans.push(Span::styled(format!("{text:<CELL$}"), style));
        }
        // A space always parts the columns: a dual-socket affinity (`56-111,168-223`) fills 14.
        spans.push(Span::raw(format!(
            "{:<13} {}",
            or_na(a.cpu_affinity.clone(), |c| c),
            or_na(a.numa_node, |n| n.to_string())
        )));
        lines.push(Line::from(spans));
    }
    for legend in legends(state.board) {
        lines.push(Line::styled(legend, theme.dim()));
    }
    let block = Block::bordered().title(Span::styled(
        " link types (nvidia-smi topo -m) ",
        theme.label(),
    ));
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(ratatui::widgets::Wrap { trim: false })
            .block(block),
        area,
    );
}

/// The legend lines of the link types present, in `topo -m`'s order.
fn legends(board: &Board) -> Vec<&'static str> {
    let topo = &board.topology;
    LinkType::LEGEND_ORDER
        .iter()
        .filter(|kind| {
            **kind == LinkType::SelfLink
                || topo
                    .pairs
                    .iter()
                    .any(|p| std::mem::discriminant(&p.link) == std::mem::discriminant(*kind))
        })
        .map(|kind| kind.legend())
        .collect()
}
