//! The selected pair: its figures, how far they are from the line rate, whether the data
//! arrived intact, what joins the two ends, and the history of its samples.
//!
//! ```text
//! ┌ GPU0 → GPU1 · read · sm ───────────────────────────────────────────┐
//! │link NV3, built NV4 · built for 56.25 GB/s per direction (4 NVLink × 14.06 GB/s)      │
//! │  · NVLink 3/4 up → now 42.19 GB/s (3 NVLink × 14.06 GB/s)                           │
//! │OK: the GPUs can access each other's memory directly.                                │
//! │median 35.3 GB/s · … · 63% of what it was built for ↓ below (check's floor 65%)     │
//! │verification passed · latency 812 ns · 5 samples, 512 MiB × 8                       │
//! │ read GB/s over time · scale 0–56.3 GB/s built · • a GPU throttled                  │
//! │56.3┤    •  •  •  •                                                                  │
//! │    │⠉⠉⠉⠉⠉⠒⠒⠤⠤⠤                                                                        │
//! │   0┼──────────────────                                                              │
//! │    -2m                                                                          now │
//! └─────────────────────────────────────────────────────────────────────────────────────┘
//! ```

use super::or_na;
use super::{State, history};
use crate::app::board::{Cell, Measured};
use crate::app::reading::{self, Grade, Reading, blocking_p2p, failure_words, figure};
use crate::app::view::Mode;
use crate::probe::protocol::{Node, Op};
use crate::probe::stats::summarize;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

/// Rows the bandwidth chart needs to be worth drawing.
const CHART_ROWS: u16 = 6;

/// Draws the pair; its bandwidth over time too when `with_chart` (the history panel draws it
/// when there is one) and the rows allow.
pub fn render(frame: &mut Frame, area: Rect, state: &State, with_chart: bool) {
    let theme = state.theme;
    let nodes = state.board.nodes();
    let (row, col) = state.view.selected;
    let (Some(&src), Some(&dst)) = (nodes.get(row), nodes.get(col)) else {
        return;
    };
    let view = state.view;
    let title = format!(
        " {src} → {dst} · {} · {} ",
        view.shown_op().name(),
        view.engine.name()
    );
    let block = Block::bordered().title(Span::styled(title, theme.label()));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let cell = reading::cell(state.board, src, dst, view.shown_op(), view.engine);
    let lines = text(state, src, dst, cell);
    // Rows the wrapped text takes, and one to set the chart apart.
    let width = inner.width.max(1) as usize;
    let wrapped: usize = lines.iter().map(|l| l.width().max(1).div_ceil(width)).sum();
    let text_rows = (wrapped as u16 + 1).min(inner.height);
    let [text_area, chart_area] =
        Layout::vertical([Constraint::Length(text_rows), Constraint::Min(0)]).areas(inner);
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), text_area);
    if with_chart && chart_area.height >= CHART_ROWS {
        history::bandwidth(frame, chart_area, state);
    }
}

fn text<'a>(state: &State, src: Node, dst: Node, cell: Option<&Cell>) -> Vec<Line<'a>> {
    let theme = state.theme;
    let op = state.view.shown_op();
    let mut lines = vec![path_line(state, src, dst), p2p_line(state, src, dst)];
    if let Some(failure) = cell.and_then(|c| c.failure.as_ref()) {
        let code = failure
            .cuda_error
            .map_or(String::new(), |e| format!(" (CUDA error {e})"));
        lines.push(Line::styled(
            format!(
                "failed: {}{code}: {}",
                failure_words(failure.kind),
                failure.message
            ),
            theme.alarm(),
        ));
    }
    match cell.and_then(|c| c.last.as_ref().map(|m| (c, m))) {
        Some((cell, m)) => {
            lines.push(figures_line(state, src, dst, cell, m));
            if op == Op::Bidir {
                lines.push(directions_line(m));
            }
            lines.push(check_line(state, src, dst, m));
        }
        None if cell.is_none_or(|c| c.failure.is_none()) => {
            lines.push(Line::styled("not measured yet", theme.dim()));
        }
        None => {}
    }
    lines
}

fn path_line<'a>(state: &State, src: Node, dst: Node) -> Line<'a> {
    let board = state.board;
    let theme = state.theme;
    let link = match (src, dst) {
        (Node::Gpu(a), Node::Gpu(b)) if a == b => {
            "device-local copy (bytes counted once; other tools count read and write)".to_owned()
        }
        (Node::Gpu(a), Node::Gpu(b)) => {
            let now = board.topology.link(a, b);
            let built = board.built_link(a, b);
            let mut text = format!("link {}", or_na(now, |l| l.to_string()));
            if built != now {
                text += &format!(", built {}", or_na(built, |l| l.to_string()));
            }
            text
        }
        (Node::Host, Node::Host) => return Line::raw("host → host is not a path p2ptop measures"),
        _ => "PCIe between pinned host memory and the GPU".to_owned(),
    };
    let mut spans = vec![Span::raw(link)];
    match board.capacity(src, dst) {
        Some(c) => {
            spans.push(Span::styled(
                format!(
                    " · built for {} GB/s per direction ({})",
                    exact(c.built.gbps),
                    c.built.basis
                ),
                theme.dim(),
            ));
            if c.degraded() {
                spans.push(Span::styled(
                    format!(
                        " · {} → now {} GB/s ({})",
                        reading::gap(&c),
                        exact(c.now.gbps),
                        c.now.basis
                    ),
                    theme.bad(),
                ));
            }
        }
        None => spans.push(Span::styled(" · line rate n/a", theme.dim())),
    }
    Line::from(spans)
}

fn p2p_line<'a>(state: &State, src: Node, dst: Node) -> Line<'a> {
    let theme = state.theme;
    let view = state.view;
    match (src, dst) {
        (Node::Gpu(a), Node::Gpu(b)) if a != b => {
            let status = blocking_p2p(state.board, src, dst, view.shown_op(), view.engine)
                .or_else(|| state.board.topology.p2p(a, b).map(|caps| caps.read));
            match status {
                Some(s) if s.is_ok() => Line::styled(s.sentence(), theme.dim()),
                Some(s) => Line::styled(s.sentence(), theme.warn()),
                None => Line::styled("P2P status n/a", theme.dim()),
            }
        }
        _ => Line::styled("no peer access involved", theme.dim()),
    }
}

fn figures_line<'a>(state: &State, src: Node, dst: Node, cell: &Cell, m: &Measured) -> Line<'a> {
    let theme = state.theme;
    let op = state.view.shown_op();
    let spread = summarize(&cell.history.iter().copied().collect::<Vec<_>>());
    let mut text = format!("median {} GB/s", figure(m.total_gbps));
    if let Some(s) = spread {
        text += &format!(
            " · samples min {} · median {} · max {} · CV {:.1}%",
            figure(s.min),
            figure(s.median),
            figure(s.max),
            s.cv * 100.0
        );
    }
    let mut spans = vec![Span::raw(text)];
    let view = state.view;
    if let Reading::Figure {
        share: Some(share),
        grade: Some(grade),
        stale,
        ..
    } = reading::read_view(state.board, view, src, dst)
    {
        let floor = reading::floor(state.board, src, dst, op, view.engine);
        let of = if view.mode == Mode::Stress && !stale {
            "of its fair share under stress"
        } else {
            "of what it was built for"
        };
        let (mark, style) = match grade {
            Grade::Below => (" ↓ below", theme.bad()),
            Grade::Near => (" near", theme.warn()),
            Grade::Good => ("", theme.good()),
        };
        spans.push(Span::styled(
            format!(
                " · {:.0}% {of}{mark} (check's floor {:.0}%)",
                share * 100.0,
                floor * 100.0
            ),
            style,
        ));
        if stale {
            spans.push(Span::styled(
                " · ~ stale: measured before stress",
                theme.dim(),
            ));
        }
    }
    Line::from(spans)
}

fn directions_line<'a>(m: &Measured) -> Line<'a> {
    let parts: Vec<String> = m
        .directions
        .iter()
        .map(|d| format!("{} → {} {}", d.src, d.dst, figure(d.median_gbps)))
        .collect();
    Line::raw(format!(
        "{} = {} GB/s, the sum of both directions",
        parts.join(" + "),
        figure(m.total_gbps)
    ))
}

fn check_line<'a>(state: &State, src: Node, dst: Node, m: &Measured) -> Line<'a> {
    let theme = state.theme;
    let v = m.verification;
    let mut spans = vec![if v.passed() {
        Span::styled("verification passed", theme.good())
    } else {
        Span::styled(
            format!(
                "VERIFICATION FAILED: {} bytes wrong, first at offset {}",
                v.mismatched_bytes,
                v.first_bad_offset
                    .map_or_else(|| "n/a".to_owned(), |o| o.to_string())
            ),
            theme.alarm(),
        )
    }];
    let latency = state
        .board
        .latency
        .get(&(src, dst))
        .map_or_else(|| "n/a".to_owned(), |ns| format!("{ns:.0} ns"));
    spans.push(Span::raw(format!(
        " · latency {latency} · {} samples of {} MiB × {}",
        m.samples, m.buffer_mib, m.repeats
    )));
    if m.throttled {
        spans.push(Span::styled(
            " · measured while a GPU throttled",
            theme.warn(),
        ));
    }
    Line::from(spans)
}

/// A line rate as worked out, without trailing zeros: 56.25, 450.
fn exact(gbps: f64) -> String {
    let text = format!("{gbps:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}
