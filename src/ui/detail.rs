//! The selected pair: its figures, how far they are from the line rate, whether the data
//! arrived intact, what joins the two ends, and the history of its samples.
//!
//! ```text
//! ┌ GPU0 → GPU1 · read · sm ───────────────────────────────────────────┐
//! │link NV4 · line rate 56.25 GB/s per direction (4 NVLink × 14.06 GB/s)│
//! │OK: the GPUs can access each other's memory directly.                │
//! │median 48.1 GB/s · min 47.9 · max 48.3 · CV 0.4% · 86% of line rate  │
//! │verification passed · latency 812 ns · 5 samples, 512 MiB × 8        │
//! │▅▆▆▇▆▆▇▆▅▆▆▇▆▆▇▆  samples (GB/s), full height = line rate            │
//! └─────────────────────────────────────────────────────────────────────┘
//! ```

use super::State;
use crate::app::board::{Cell, Measured};
use crate::app::reading::{self, blocking_p2p, failure_words, figure, line_rate_gbps};
use crate::probe::protocol::{Node, Op};
use crate::probe::stats::summarize;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Sparkline, Wrap};

/// Rows of the history chart at most: enough to read a trend, not a wall of bars.
const CHART_ROWS: u16 = 8;

pub fn render(frame: &mut Frame, area: Rect, state: &State) {
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
        Layout::vertical([Constraint::Length(text_rows), Constraint::Max(CHART_ROWS)]).areas(inner);
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), text_area);
    if let Some(cell) = cell
        && chart_area.height > 0
    {
        chart(frame, chart_area, state, src, dst, cell);
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
    let link = match (src, dst) {
        (Node::Gpu(a), Node::Gpu(b)) if a == b => {
            "device-local copy (bytes counted once; other tools count read and write)".to_owned()
        }
        (Node::Gpu(a), Node::Gpu(b)) => format!(
            "link {}",
            board
                .topology
                .link(a, b)
                .map_or_else(|| "n/a".to_owned(), |l| l.to_string())
        ),
        (Node::Host, Node::Host) => return Line::raw("host → host is not a path p2ptop measures"),
        _ => "PCIe between pinned host memory and the GPU".to_owned(),
    };
    let rate = match board.topology.line_rate(src, dst) {
        Some(r) => format!(
            " · line rate {} GB/s per direction ({})",
            exact(r.gbps),
            r.basis
        ),
        None => " · line rate n/a".to_owned(),
    };
    Line::from(vec![Span::raw(link), Span::styled(rate, state.theme.dim())])
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
    if let Some(rate) = line_rate_gbps(state.board, src, dst, op) {
        let share = m.total_gbps / rate;
        spans.push(Span::styled(
            format!(" · {:.0}% of line rate", share * 100.0),
            theme.share(share),
        ));
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

fn chart(frame: &mut Frame, area: Rect, state: &State, src: Node, dst: Node, cell: &Cell) {
    // Tenths of GB/s: the sparkline takes whole numbers.
    let data: Vec<u64> = cell
        .history
        .iter()
        .rev()
        .take(area.width as usize)
        .rev()
        .map(|v| (v * 10.0).round() as u64)
        .collect();
    let mut sparkline = Sparkline::default().data(&data).style(state.theme.good());
    if let Some(rate) = line_rate_gbps(state.board, src, dst, state.view.shown_op()) {
        sparkline = sparkline.max((rate * 10.0).round() as u64);
    }
    frame.render_widget(sparkline, area);
}

/// A line rate as worked out, without trailing zeros: 56.25, 450.
fn exact(gbps: f64) -> String {
    let text = format!("{gbps:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}
