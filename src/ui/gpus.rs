//! Per-GPU readings, two lines per GPU; scrolls when the GPUs do not all fit.
//!
//! ```text
//! ┌ GPUs ────────────────────────────────────────────────────────────────────────┐
//! │GPU0 RTX 3090    94°C/93  SM 1650/2100  mem 9751/9751 MHz  262/350 W  fan 100%│
//! │     PCIe 4.0 x16 of 4.0 x16  NVLink tx 45.1 rx 44.9 GB/s  sw-thermal  errors 0│
//! │GPU1 …                                                                          │
//! └──────────────────────────────────────────────────────────────────────────────┘
//! ```
//! Temperature is coloured against the GPU's slowdown point, clocks and power against their
//! maximum; a PCIe link below its maximum is flagged while the GPU is being measured.

use super::{State, or_na};
use crate::app::board::Board;
use crate::app::view::Focus;
use crate::model::telemetry::{ErrorDeltas, GpuTelemetry};
use crate::model::topology::Gpu;
use crate::probe::protocol::Node;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

/// Lines of text per GPU.
const LINES_PER_GPU: u16 = 2;

/// Rows the panel needs to show every GPU.
pub fn height(board: &Board) -> u16 {
    LINES_PER_GPU * board.topology.gpus.len() as u16 + 2
}

pub fn render(frame: &mut Frame, area: Rect, state: &State) {
    let theme = state.theme;
    let gpus = &state.board.topology.gpus;
    let inner_rows = area.height.saturating_sub(2);
    // Two lines per GPU when they all fit so, else one compact line each.
    let per_gpu = if inner_rows >= LINES_PER_GPU * gpus.len() as u16 {
        LINES_PER_GPU
    } else {
        1
    };
    let fits = (inner_rows / per_gpu) as usize;
    let first = state
        .view
        .gpu_scroll
        .min(gpus.len().saturating_sub(fits.max(1)));
    let shown = gpus.len().min(fits);
    let mut title = " GPUs ".to_owned();
    if shown < gpus.len() {
        title = format!(
            " GPUs {}–{} of {} ",
            first,
            first + shown.max(1) - 1,
            gpus.len()
        );
    }
    let mut block = Block::bordered().title(Span::styled(title, theme.label()));
    if state.view.focus == Focus::Gpus {
        block = block.border_style(theme.focused_border());
    }
    let mut lines = Vec::new();
    for gpu in gpus.iter().skip(first).take(fits) {
        let reading = state
            .board
            .telemetry
            .as_ref()
            .and_then(|f| f.gpus.iter().find(|t| t.gpu == gpu.index));
        let empty = GpuTelemetry::default();
        let t = reading.unwrap_or(&empty);
        if per_gpu == 1 {
            lines.push(compact_line(state, gpu, t));
        } else {
            lines.push(first_line(state, gpu, t));
            lines.push(second_line(state, gpu, t));
        }
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// "RTX 3090" from "NVIDIA GeForce RTX 3090": the part that tells GPUs apart.
fn short_name(name: &str) -> String {
    let short = name
        .trim_start_matches("NVIDIA ")
        .trim_start_matches("GeForce ");
    let mut out = String::new();
    for word in short.split(' ') {
        let wanted = if out.is_empty() {
            word.len()
        } else {
            out.len() + 1 + word.len()
        };
        if wanted > 11 {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out += word;
    }
    if out.is_empty() {
        short.chars().take(11).collect()
    } else {
        out
    }
}

fn first_line<'a>(state: &State, gpu: &Gpu, t: &GpuTelemetry) -> Line<'a> {
    let theme = state.theme;
    let throttling = t.throttle.is_some_and(|r| r.is_throttling());
    let mut spans = vec![
        Span::styled(format!("GPU{:<2} ", gpu.index), theme.label()),
        Span::raw(format!("{:<12}", short_name(&gpu.name))),
    ];
    let temp = match t.temp_c {
        Some(c) => Span::styled(format!("{c:.0}°C"), theme.temperature(c, t.slowdown_temp_c)),
        None => Span::styled("n/a", theme.dim()),
    };
    spans.push(temp);
    spans.push(Span::styled(
        or_na(t.slowdown_temp_c, |c| format!("/{c:.0}")),
        theme.dim(),
    ));
    let clock_style = if throttling {
        theme.warn()
    } else {
        Style::new()
    };
    spans.push(Span::raw("  SM "));
    spans.push(Span::styled(
        or_na(t.sm_clock_mhz, |c| c.to_string()),
        clock_style,
    ));
    spans.push(Span::styled(
        or_na(t.sm_clock_max_mhz, |c| format!("/{c}")),
        theme.dim(),
    ));
    spans.push(Span::raw("  mem "));
    spans.push(Span::raw(or_na(t.mem_clock_mhz, |c| c.to_string())));
    spans.push(Span::styled(
        or_na(t.mem_clock_max_mhz, |c| format!("/{c}")) + " MHz",
        theme.dim(),
    ));
    let near_limit = matches!((t.power_w, t.power_limit_w), (Some(p), Some(l)) if p >= 0.95 * l);
    spans.push(Span::raw("  "));
    spans.push(Span::styled(
        or_na(t.power_w, |p| format!("{p:.0}")),
        if near_limit {
            theme.warn()
        } else {
            Style::new()
        },
    ));
    spans.push(Span::styled(
        or_na(t.power_limit_w, |l| format!("/{l:.0}")) + " W",
        theme.dim(),
    ));
    spans.push(Span::raw("  fan "));
    let fan_style = if t.fan_percent == Some(0) && throttling {
        theme.bad()
    } else {
        Style::new()
    };
    spans.push(Span::styled(
        or_na(t.fan_percent, |f| format!("{f}%")),
        fan_style,
    ));
    Line::from(spans)
}

/// One line: temperature, SM clock, power, PCIe now, throttle reasons.
fn compact_line<'a>(state: &State, gpu: &Gpu, t: &GpuTelemetry) -> Line<'a> {
    let full = first_line(state, gpu, t);
    let second = second_line(state, gpu, t);
    // First line: GPU, name, temp, slowdown, "  SM ", clock, max, "  mem ", clock, max, "  ",
    // power, limit. Second: "PCIe ", now, max, [NVLink], "  ", reasons, "  ", errors.
    let mut spans: Vec<Span> = full
        .spans
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !(7..=9).contains(i))
        .map(|(_, s)| s)
        .collect();
    spans.truncate(10);
    let mut rest = second.spans.into_iter();
    let pcie = rest.nth(1);
    let tail: Vec<Span> = rest.collect();
    spans.push(Span::raw("  PCIe "));
    spans.extend(pcie);
    // The reasons are the third from the end.
    if tail.len() >= 3 {
        spans.push(Span::raw("  "));
        spans.push(tail[tail.len() - 3].clone());
    }
    Line::from(spans)
}

fn second_line<'a>(state: &State, gpu: &Gpu, t: &GpuTelemetry) -> Line<'a> {
    let theme = state.theme;
    let max = gpu.pcie;
    let link = |generation: Option<u32>, width: Option<u32>| {
        format!(
            "{} x{}",
            or_na(generation, |g| format!("{g}.0")),
            or_na(width, |w| w.to_string())
        )
    };
    let below_max = matches!((t.pcie_gen, max.gen_max), (Some(n), Some(m)) if n < m)
        || matches!((t.pcie_width, max.width_max), (Some(n), Some(m)) if n < m);
    let pcie_style = if below_max && busy(state, gpu.index) {
        theme.warn()
    } else {
        Style::new()
    };
    let mut spans = vec![
        Span::raw("      PCIe "),
        Span::styled(link(t.pcie_gen, t.pcie_width), pcie_style),
        Span::styled(
            format!(" of {}", link(max.gen_max, max.width_max)),
            theme.dim(),
        ),
    ];
    if !gpu.nvlinks.is_empty() {
        let (tx, rx) = t.nvlink_totals();
        spans.push(Span::raw(format!(
            "  NVLink tx {} rx {} GB/s",
            or_na(tx, |v| format!("{v:.1}")),
            or_na(rx, |v| format!("{v:.1}"))
        )));
    }
    spans.push(Span::raw("  "));
    spans.push(match t.throttle {
        Some(r) if r.is_throttling() => Span::styled(r.names().join(","), theme.bad()),
        Some(r) if r.0 != 0 => Span::styled(r.names().join(","), theme.dim()),
        Some(_) => Span::styled("not throttled", theme.dim()),
        None => Span::styled("throttle n/a", theme.dim()),
    });
    spans.push(Span::raw("  "));
    spans.push(errors(state, &t.errors));
    Line::from(spans)
}

/// Whether the GPU takes part in the running measurement.
fn busy(state: &State, gpu: u32) -> bool {
    state.running.is_some_and(|r| {
        r.pairs
            .iter()
            .any(|p| p.src == Node::Gpu(gpu) || p.dst == Node::Gpu(gpu))
    })
}

/// Error counter increases: named when any is non-zero.
fn errors<'a>(state: &State, e: &ErrorDeltas) -> Span<'a> {
    let counters = [
        ("NVLink replay", e.nvlink_replay),
        ("NVLink recovery", e.nvlink_recovery),
        ("NVLink CRC", e.nvlink_crc),
        ("PCIe replay", e.pcie_replay),
    ];
    if counters.iter().all(|(_, v)| v.is_none()) {
        return Span::styled("errors n/a", state.theme.dim());
    }
    let raised: Vec<String> = counters
        .iter()
        .filter_map(|(name, v)| v.filter(|n| *n > 0).map(|n| format!("{name} +{n}")))
        .collect();
    if raised.is_empty() {
        Span::styled("errors 0", state.theme.dim())
    } else {
        Span::styled(format!("errors {}", raised.join(" ")), state.theme.bad())
    }
}
