//! The bottom two lines: the latest problem or notice, then the keys of the focused panel
//! (from the same table the key handler reads).
//!
//! ```text
//! │probe: a sample of GPU0 → GPU5 hung (2 problems)                              │
//! │? help  q quit  ←↑↓→ cell  o op  m mode  e engine  u units  p pause  s snapshot│
//! ```

use super::State;
use crate::app::keys;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

pub const HEIGHT: u16 = 2;

pub fn render(frame: &mut Frame, area: Rect, state: &State) {
    let theme = state.theme;
    let problems = &state.board.problems;
    let message = match (problems.last(), &state.view.notice) {
        (Some(last), _) => {
            let more = if problems.len() > 1 {
                format!(" ({} problems)", problems.len())
            } else {
                String::new()
            };
            Line::styled(format!("{last}{more}"), theme.bad())
        }
        (None, Some(notice)) => Line::raw(notice.clone()),
        (None, None) => Line::default(),
    };
    frame.render_widget(
        Paragraph::new(vec![message, hints(state, area.width)]),
        area,
    );
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
