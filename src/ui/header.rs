//! The header: which machine this is and how it is being measured.
//!
//! ```text
//! │ SIMULATED: 3090-bridge  sim-3090-bridge  driver 550.54.14  CUDA 12.4  2 GPUs  IOMMU off    │
//! │ mode sweep  op read  engine sm  buffer 512 MiB  GB/s     measuring GPU0 → GPU1 read      │
//! ```

use super::{State, or_na};
use crate::app::view::{Mode, Units};
use crate::model::topology::Iommu;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

pub const HEIGHT: u16 = 2;

pub fn render(frame: &mut Frame, area: Rect, state: &State) {
    frame.render_widget(Paragraph::new(vec![machine(state), settings(state)]), area);
}

fn machine<'a>(state: &State) -> Line<'a> {
    let theme = state.theme;
    let host = &state.board.topology.host;
    let mut spans = Vec::new();
    if let Some(name) = &state.board.simulated {
        spans.push(Span::styled(format!(" SIMULATED: {name} "), theme.banner()));
        spans.push(Span::raw(" "));
    }
    if host.emulated() {
        spans.push(Span::styled(" EMULATED DRIVERS ", theme.banner()));
        spans.push(Span::raw(" "));
    }
    let gpus = state.board.topology.gpus.len();
    spans.push(Span::styled(
        host.hostname.clone().unwrap_or_else(|| "host n/a".into()),
        theme.label(),
    ));
    spans.push(Span::raw(format!(
        "  driver {}  CUDA {}  {gpus} GPU{}",
        or_na(host.driver_version.clone(), |v| v),
        or_na(host.cuda_version.clone(), |v| v),
        if gpus == 1 { "" } else { "s" },
    )));
    if let Some(iommu) = &host.iommu {
        let (text, style) = match iommu {
            Iommu::Off => ("IOMMU off", theme.dim()),
            Iommu::Passthrough => ("IOMMU passthrough", theme.dim()),
            Iommu::Translated => ("IOMMU translating DMA", theme.warn()),
        };
        spans.push(Span::raw("  "));
        spans.push(Span::styled(text, style));
    }
    Line::from(spans)
}

fn settings<'a>(state: &State) -> Line<'a> {
    let theme = state.theme;
    let view = state.view;
    let field = |name: &'static str, value: String| {
        [
            Span::styled(name, theme.dim()),
            Span::styled(value, theme.label()),
            Span::raw("  "),
        ]
    };
    let mut spans = Vec::new();
    spans.extend(field("mode ", view.mode.name().into()));
    let op = match view.mode {
        Mode::Stress => "bidir, all pairs".to_owned(),
        Mode::Sweep => view.op.name().into(),
    };
    spans.extend(field("op ", op));
    spans.extend(field("engine ", view.engine.name().into()));
    spans.extend(field("buffer ", format!("{} MiB", state.buffer_mib)));
    let units = match view.units {
        Units::Gbps => "GB/s",
        Units::LineRate => "% of built line rate",
    };
    spans.extend(field("cells ", units.into()));
    if view.paused {
        spans.push(Span::styled(" PAUSED ", theme.warn()));
    } else if let Some(running) = state.running {
        let what = match running.pairs.as_slice() {
            [one] => format!("{} → {}", one.src, one.dst),
            many => format!("{} pairs", many.len()),
        };
        spans.push(Span::styled(
            format!("measuring {what} {}", running.op.name()),
            theme.dim(),
        ));
    }
    Line::from(spans)
}
