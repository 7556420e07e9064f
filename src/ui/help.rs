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

const CELLS: [&str; 10] = [
    "Rows are the source, columns the destination: data moves src → dst.",
    "read: the copy runs on dst and pulls; write: on src and pushes; bidir: both at once, summed.",
    "Colour = the figure as a share of what the path was built for (every NVLink up, PCIe at its \
     best generation and width), against check's floor for its link class and engine: red and ↓ \
     below the floor, yellow within 10 points above it, green above that.",
    "Under stress each NVLink pair is judged against its fair share of what it shares (a GPU's \
     NVSwitch ports); PCIe pairs are shown, not judged; ~ marks a figure from a sweep that \
     stress does not refresh.",
    "The pair panel names what a path lacks: NVLink 3/4 up, GPU3 PCIe 4.0 x8 of 5.0 x16.",
    "!  a GPU of the pair was throttling when the result came",
    "BAD  the destination held wrong bytes · HUNG  a sample never finished",
    "ERR  a CUDA call failed · GATE  every sample's start gate timed out · ·  not measured yet",
    "The diagonal is each GPU's device-local copy, bytes counted once.",
    "History: the selected pair's GPUs over the last minutes; • • marks the reference each chart \
     names (slowdown point, maximum clock, power limit, built line rate).",
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
    let (popup, lines) = contents(area, state);
    let block = Block::bordered().title(Span::styled(
        " help · ↑↓ PgUp PgDn scroll · ? or Esc closes ",
        theme.label(),
    ));
    let last_start = last_start_in(block.inner(popup), &lines);
    let scroll = state.view.help_scroll.min(last_start);
    let block = if scroll < last_start {
        block.title_bottom(Span::styled(" ↓ more ", theme.label()))
    } else {
        block
    };
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0))
            .block(block),
        popup,
    );
}

/// The furthest the help scrolls in a terminal of size `area`: its last line at the bottom.
pub fn last_start(area: Rect, state: &State) -> u16 {
    let (popup, lines) = contents(area, state);
    last_start_in(Block::bordered().inner(popup), &lines)
}

fn last_start_in(inner: Rect, lines: &[Line]) -> u16 {
    let width = inner.width.max(1) as usize;
    let total: usize = lines.iter().map(|l| l.width().max(1).div_ceil(width)).sum();
    total.saturating_sub(inner.height as usize) as u16
}

/// Where the help goes in `area`, and its lines.
fn contents<'a>(area: Rect, state: &State) -> (Rect, Vec<Line<'a>>) {
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
            Span::raw(format!(
                "{}: {}{place}",
                binding.hint,
                keys::says(binding.action)
            )),
        ]));
    }
    lines.push(Line::styled("Cells", theme.label()));
    lines.extend(CELLS.iter().map(|c| Line::raw(format!("  {c}"))));
    lines.push(Line::styled(
        "P2P codes (nvidia-smi topo -p2p)",
        theme.label(),
    ));
    lines.extend(P2P.iter().map(|s| Line::raw(format!("  {}", s.sentence()))));
    (popup, lines)
}
