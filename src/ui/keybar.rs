//! The bottom lines: the machine's problems, worst first (always shown, "no problems seen"
//! when there are none), a notice when there is one, then the keys of the focused panel (from
//! the same table the key handler reads).
//!
//! ```text
//! │2 problems: GPU0: 0 of 4 NVLinks up (down: 0, 1, 2, 3) — is the bridge seated? · GPU1: … │
//! │snapshot written to ./p2ptop-20260314T092653Z.json, .md and .csv                         │
//! │? help  q quit  ←↑↓→ cell  o op  m load  e engine  u units  p pause  s snapshot            │
//! ```

use super::State;
use super::problems::{Problem, Severity};
use crate::app::keys;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

/// Rows the problems take: one, or up to three on a tall terminal.
fn problem_rows(area_height: u16) -> u16 {
    if area_height >= 40 { 3 } else { 1 }
}

/// Rows the bottom needs in a terminal `area_height` rows tall, with `problems` to show.
pub fn height(state: &State, problems: usize, area_height: u16) -> u16 {
    (problems.max(1) as u16).min(problem_rows(area_height))
        + u16::from(state.view.notice.is_some())
        + 1
}

/// Draws the bottom: `list` is the board's problems (`problems::list`), worked out once a frame.
pub fn render(frame: &mut Frame, area: Rect, state: &State, list: &[Problem]) {
    let theme = state.theme;
    let rows = area
        .height
        .saturating_sub(1 + u16::from(state.view.notice.is_some())) as usize;
    let mut lines = Vec::new();
    if list.is_empty() {
        lines.push(Line::styled("no problems seen", theme.dim()));
    } else {
        let width = area.width as usize;
        let head = match list.len() {
            1 => "1 problem: ".to_owned(),
            n => format!("{n} problems: "),
        };
        let mut current = vec![Span::styled(head.clone(), theme.label())];
        let mut used = head.chars().count();
        let mut fresh = true;
        for p in list {
            let style = match p.severity {
                Severity::Alarm => theme.alarm(),
                Severity::Fault => theme.bad(),
                Severity::Warn => theme.warn(),
            };
            let len = p.text.chars().count() + 3;
            if !fresh && used + len > width && lines.len() + 1 < rows {
                lines.push(Line::from(std::mem::take(&mut current)));
                used = 0;
                fresh = true;
            }
            if !fresh {
                current.push(Span::raw(" · "));
            }
            current.push(Span::styled(p.text.clone(), style));
            used += len;
            fresh = false;
        }
        lines.push(Line::from(current));
    }
    if let Some(notice) = &state.view.notice {
        lines.push(Line::raw(notice.clone()));
    }
    lines.push(hints(state, area.width));
    frame.render_widget(Paragraph::new(lines), area);
}

/// As many whole hints as fit in `width`.
fn hints<'a>(state: &State, width: u16) -> Line<'a> {
    let theme = state.theme;
    let mut used = 0;
    let mut spans = Vec::new();
    for binding in keys::bar(state.view) {
        let len = binding.label.chars().count() + binding.hint.len() + 3;
        if used + len > width as usize {
            break;
        }
        used += len;
        spans.push(Span::styled(binding.label, theme.label()));
        spans.push(Span::raw(format!(" {}  ", binding.hint)));
    }
    Line::from(spans)
}
