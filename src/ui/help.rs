//! The help overlay: every key (from the key table), what cells and colours mean, and the P2P
//! codes in words.
//!
//! ```text
//!        ┌ help · ? or Esc closes ─────────────────────┐
//!        │Keys                                         │
//!        │  ?        help                              │
//!        │  …                                          │
//!        │Cells                                        │
//!        │  green ≥ 75% of line rate, yellow ≥ 50% …   │
//!        │P2P codes                                    │
//!        │  CNS: the chipset …                         │
//!        └─────────────────────────────────────────────┘
//! ```

use super::State;
use crate::app::keys::{self, Scope};
use crate::app::view::Focus;
use crate::model::topology::P2pStatus;
use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

const CELLS: [&str; 7] = [
    "Rows are the source, columns the destination: data moves src → dst.",
    "read: the copy runs on dst and pulls; write: on src and pushes; bidir: both at once, summed.",
    "Colour = share of the pair's line rate: green from 75%, yellow from 50%, red below.",
    "!  a GPU of the pair was throttling when the result came",
    "BAD  the destination held wrong bytes · HUNG  a sample never finished",
    "ERR  a CUDA call failed · GATE  every sample's start gate timed out · ·  not measured yet",
    "The diagonal is each GPU's device-local copy, bytes counted once.",
];

const P2P: [P2pStatus; 6] = [
    P2pStatus::Cns,
    P2pStatus::Gns,
    P2pStatus::Tns,
    P2pStatus::Ns,
    P2pStatus::Dr,
    P2pStatus::U,
];

pub fn render(frame: &mut Frame, area: Rect, state: &State) {
    let theme = state.theme;
    let [row] = Layout::vertical([Constraint::Percentage(90)])
        .flex(Flex::Center)
        .areas(area);
    let [popup] = Layout::horizontal([Constraint::Max(100)])
        .flex(Flex::Center)
        .areas(row);
    let mut lines = vec![Line::styled("Keys", theme.label())];
    for binding in keys::help() {
        let place = match binding.scope {
            Scope::Panel(Focus::Matrix) => " (matrix)",
            Scope::Panel(Focus::Gpus) => " (GPU panel)",
            Scope::Global | Scope::Help => "",
        };
        lines.push(Line::from(vec![
            Span::styled(format!("  {:<8}", binding.label), theme.label()),
            Span::raw(format!("{}{place}", binding.hint)),
        ]));
    }
    lines.push(Line::styled("Cells", theme.label()));
    lines.extend(CELLS.iter().map(|c| Line::raw(format!("  {c}"))));
    lines.push(Line::styled(
        "P2P codes (nvidia-smi topo -p2p)",
        theme.label(),
    ));
    lines.extend(P2P.iter().map(|s| Line::raw(format!("  {}", s.sentence()))));
    let block = Block::bordered().title(Span::styled(" help · ? or Esc closes ", theme.label()));
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block),
        popup,
    );
}
