//! The screen shown while the machine is being opened: the probe may take up to a minute to
//! greet (opening every GPU, loading its kernels), and the user can leave at any time.
//!
//! ```text
//! p2ptop: opening the machine (12 s): NVML, then the probe, which has 60 s to greet
//! q quit
//! ```

use crate::probe::launch::HELLO_TIMEOUT;
use ratatui::Frame;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};
use std::time::Duration;

pub fn draw(frame: &mut Frame, waited: Duration) {
    let text = vec![
        Line::from(format!(
            "p2ptop: opening the machine ({} s): NVML, then the probe, which has {} s to greet",
            waited.as_secs(),
            HELLO_TIMEOUT.as_secs()
        )),
        Line::from("q quit"),
    ];
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), frame.area());
}
