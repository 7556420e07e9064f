//! Colours and emphasis. With colour off (`--color never`, `NO_COLOR`) every warning still
//! stands out through bold and reverse video, and every cell still carries its text marker.

use ratatui::style::{Color, Modifier, Style};

/// Whether the view paints in colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    fn paint(self, fg: Color) -> Style {
        if self.color {
            Style::new().fg(fg)
        } else {
            Style::new()
        }
    }

    /// Titles and labels.
    pub fn label(self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    /// Secondary text: units, n/a, pending cells.
    pub fn dim(self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new()
        }
    }

    pub fn good(self) -> Style {
        self.paint(Color::Green)
    }

    pub fn warn(self) -> Style {
        self.paint(Color::Yellow).add_modifier(Modifier::BOLD)
    }

    pub fn bad(self) -> Style {
        self.paint(Color::Red).add_modifier(Modifier::BOLD)
    }

    /// Something that must not be missed: corruption, a hang, a simulated machine.
    pub fn alarm(self) -> Style {
        if self.color {
            Style::new()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        }
    }

    /// The SIMULATED banner.
    pub fn banner(self) -> Style {
        if self.color {
            Style::new()
                .fg(Color::Black)
                .bg(Color::LightYellow)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        }
    }

    /// A fraction of what is possible: green from 75%, yellow from 50%, red below.
    pub fn share(self, share: f64) -> Style {
        if share >= 0.75 {
            self.good()
        } else if share >= 0.5 {
            self.warn()
        } else {
            self.bad()
        }
    }

    /// A temperature against the point where the GPU slows its clocks.
    pub fn temperature(self, temp_c: f64, slowdown_c: Option<f64>) -> Style {
        match slowdown_c {
            Some(limit) if temp_c >= limit => self.alarm(),
            Some(limit) if temp_c >= limit - 10.0 => self.warn(),
            Some(_) => self.good(),
            None => Style::new(),
        }
    }

    /// The i-th line of a history chart (each GPU keeps its style in every chart; without
    /// colour the markers tell them apart).
    pub fn series(self, i: usize) -> Style {
        self.paint(if i == 0 { Color::Cyan } else { Color::Magenta })
    }

    /// A chart's reference line: a slowdown point, a maximum, a limit, a line rate.
    pub fn reference(self) -> Style {
        self.paint(Color::Yellow)
    }

    /// The selected cell, and the focused panel's border.
    pub fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    pub fn focused_border(self) -> Style {
        self.paint(Color::Cyan).add_modifier(Modifier::BOLD)
    }
}
