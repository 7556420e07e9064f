//! How the GPUs of the selected pair changed over the last minutes: temperature with its
//! slowdown point, SM clock with its maximum, power with its limit, NVLink and PCIe traffic,
//! one chart each with time and value axes; and the pair's bandwidth on a fixed scale from 0 to
//! what its path was built for, with the moments a GPU throttled marked (drawn in the detail).
//!
//! ```text
//! ┌ history · GPU0 GPU1 · last 2 min ───────────────────────────────────────────────────────┐
//! │ temp °C (--- slowdown 93)  │ SM MHz (--- max 2100)   │ power W (--- limit 350) │ NVLink…│
//! │93┤-----------------⣀⣀⠤⠒⠉   │2100┤⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠉⠑⠢⣀      │350┤-------------------  │        │
//! │  │           ⣀⡠⠔⠊          │    │              ⠈⠉⠒    │   │⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒  │        │
//! │30┼───────────────────      │   0┼──────────────────   │  0┼───────────────────  │        │
//! │  -2m                  now  │    -2m              now  │   -2m             now   │        │
//! └─────────────────────────────────────────────────────────────────────────────────────────┘
//! ```
//! Each GPU keeps one line style in every chart (the title names them in order); the dashed
//! line is the reference the chart names.

use super::State;
use super::theme::Theme;
use crate::app::board::{Board, Cell, HistoryFrame, HistoryPoint};
use crate::app::reading::{self, figure, line_rate_gbps};
use crate::model::line_rate;
use crate::probe::protocol::Node;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType};

/// Rows from which the history panel is worth drawing.
pub const MIN_HEIGHT: u16 = 8;
/// Columns one chart needs to be read.
const CHART_WIDTH: u16 = 19;

/// The GPUs whose history is shown: those of the selected pair, else the first.
pub fn gpus(state: &State) -> Vec<u32> {
    let nodes = state.board.nodes();
    let (row, col) = state.view.selected;
    let mut out = Vec::new();
    for node in [nodes.get(row), nodes.get(col)].into_iter().flatten() {
        if let Node::Gpu(g) = node
            && !out.contains(g)
        {
            out.push(*g);
        }
    }
    if out.is_empty()
        && let Some(first) = state.board.topology.gpus.first()
    {
        out.push(first.index);
    }
    out
}

/// The time window the charts span: the history's length rounded up to a readable step.
pub fn window_s(board: &Board) -> f64 {
    let span = match (
        board.telemetry_history.front(),
        board.telemetry_history.back(),
    ) {
        (Some(a), Some(b)) => b.at_s - a.at_s,
        _ => 0.0,
    };
    [30.0, 60.0, 120.0, 180.0, 300.0]
        .into_iter()
        .find(|w| span <= *w)
        .unwrap_or(300.0)
}

/// `-2m`, `-30s`: how far back the left edge of a chart is.
pub fn ago(seconds: f64) -> String {
    if seconds >= 120.0 {
        format!("-{:.0}m", seconds / 60.0)
    } else {
        format!("-{seconds:.0}s")
    }
}

/// A chart's reference line (value and name) and the top of its scale, for the GPUs shown.
type Reference = fn(&State, &[u32]) -> (Option<(f64, &'static str)>, Option<f64>);

/// What one chart plots: a reading of each GPU, its scale and its reference line.
struct Spec {
    title: &'static str,
    unit: &'static str,
    /// Readings by GPU, in the order of `gpus`; a chart may plot two per GPU (tx, rx).
    pick: &'static [fn(&HistoryPoint) -> Option<f64>],
    /// The reference line and its name, and the scale's top.
    reference: Reference,
}

fn latest<'a>(state: &State<'a>, gpu: u32) -> Option<&'a crate::model::telemetry::GpuTelemetry> {
    state
        .board
        .telemetry
        .as_ref()
        .and_then(|f| f.gpus.iter().find(|t| t.gpu == gpu))
}

fn lowest(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    values.flatten().reduce(f64::min)
}

fn highest(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    values.flatten().reduce(f64::max)
}

const SPECS: [Spec; 5] = [
    Spec {
        title: "temp",
        unit: "°C",
        pick: &[|p| p.temp_c],
        reference: |state, gpus| {
            let slowdown = lowest(gpus.iter().map(|&g| latest(state, g)?.slowdown_temp_c));
            (slowdown.map(|s| (s, "slowdown")), slowdown.map(|s| s + 5.0))
        },
    },
    Spec {
        title: "SM clock",
        unit: "MHz",
        pick: &[|p| p.sm_clock_mhz],
        reference: |state, gpus| {
            let max = highest(
                gpus.iter()
                    .map(|&g| latest(state, g)?.sm_clock_max_mhz.map(f64::from)),
            );
            (max.map(|m| (m, "max")), max.map(|m| m * 1.05))
        },
    },
    Spec {
        title: "power",
        unit: "W",
        pick: &[|p| p.power_w],
        reference: |state, gpus| {
            let limit = highest(gpus.iter().map(|&g| latest(state, g)?.power_limit_w));
            (limit.map(|l| (l, "limit")), limit.map(|l| l * 1.1))
        },
    },
    Spec {
        title: "NVLink tx/rx",
        unit: "GB/s",
        pick: &[|p| p.nvlink_tx_gbps, |p| p.nvlink_rx_gbps],
        reference: |state, gpus| {
            let built = highest(gpus.iter().map(|&g| {
                let gpu = state.board.topology.gpu(g)?;
                let links = gpu.nvlinks.iter().filter_map(|l| l.speed_gbps);
                Some(links.map(line_rate::nvlink_data_gbps).sum::<f64>())
            }));
            (built.map(|b| (b, "built")), built.map(|b| b * 1.05))
        },
    },
    Spec {
        title: "PCIe tx/rx",
        unit: "GB/s",
        pick: &[|p| p.pcie_tx_gbps, |p| p.pcie_rx_gbps],
        reference: |state, gpus| {
            let built = highest(
                gpus.iter()
                    .map(|&g| Some(line_rate::pcie_max(&state.board.topology.gpu(g)?.pcie)?.gbps)),
            );
            (built.map(|b| (b, "built")), built.map(|b| b * 1.05))
        },
    },
];

pub fn render(frame: &mut Frame, area: Rect, state: &State) {
    let theme = state.theme;
    let gpus = gpus(state);
    let window = window_s(state.board);
    let names: Vec<Span> = gpus
        .iter()
        .enumerate()
        .flat_map(|(i, g)| {
            [
                Span::styled(format!("GPU{g} {}", line_symbol(i)), theme.series(i)),
                Span::raw(" "),
            ]
        })
        .collect();
    let mut title = vec![Span::styled(" history · ", theme.label())];
    title.extend(names);
    title.push(Span::styled(
        format!("· last {} ", ago(window).trim_start_matches('-')),
        theme.label(),
    ));
    let block = Block::bordered().title(Line::from(title));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let has_nvlink = gpus.iter().any(|&g| {
        state
            .board
            .topology
            .gpu(g)
            .is_some_and(|gpu| !gpu.nvlinks.is_empty())
    });
    let specs: Vec<&Spec> = SPECS
        .iter()
        .filter(|s| has_nvlink || s.title != "NVLink tx/rx")
        .collect();
    // The pair's bandwidth first, then as many GPU charts as fit.
    let fits = (inner.width / CHART_WIDTH).max(1) as usize;
    let shown = &specs[..specs.len().min(fits.saturating_sub(1))];
    // A column between charts keeps one's "now" from running into the next one's start.
    let areas = Layout::horizontal(vec![Constraint::Fill(1); shown.len() + 1])
        .spacing(1)
        .split(inner);
    bandwidth(frame, areas[0], state);
    let frames = in_window(
        state.board,
        window,
        areas.get(1).map_or(inner.width, |a| a.width) as usize,
    );
    for (spec, &chart_area) in shown.iter().zip(areas.iter().skip(1)) {
        draw_chart(frame, chart_area, state, spec, &gpus, &frames, window);
    }
}

/// The time axis every chart shares: the window's start to now.
fn time_axis(window: f64, theme: Theme) -> Axis<'static> {
    Axis::default()
        .bounds([-window, 0.0])
        .labels([ago(window), "now".to_owned()])
        .style(theme.dim())
}

/// The first of `titles` (longest first) that fits in `width` columns, else the last.
fn fitting<const N: usize>(width: u16, titles: [String; N]) -> String {
    let last = titles.len() - 1;
    titles
        .into_iter()
        .enumerate()
        .find(|(i, t)| *i == last || t.chars().count() <= usize::from(width))
        .map(|(_, t)| t)
        .unwrap_or_default()
}

/// The pair's samples over time on a fixed scale from 0 to what the path was built for, with
/// the moments a GPU of the pair throttled marked along the top.
pub fn bandwidth(frame: &mut Frame, area: Rect, state: &State) {
    let nodes = state.board.nodes();
    let (row, col) = state.view.selected;
    let (Some(&src), Some(&dst)) = (nodes.get(row), nodes.get(col)) else {
        return;
    };
    let view = state.view;
    let empty = Cell::default();
    let cell = reading::cell(state.board, src, dst, view.shown_op(), view.engine).unwrap_or(&empty);
    let theme = state.theme;
    let board = state.board;
    let now = board.now_s();
    let window = window_s(board);
    let points: Vec<(f64, f64)> = cell
        .timeline
        .iter()
        .filter(|(at, _)| *at >= now - window)
        .map(|(at, gbps)| (at - now, *gbps))
        .collect();
    let points = thin(points, area.width as usize);
    let observed = points.iter().map(|p| p.1).fold(0.0, f64::max);
    let rate = line_rate_gbps(board, src, dst, state.view.shown_op());
    let top = rate.unwrap_or(observed * 1.1).max(observed).max(1.0);
    let gpus: Vec<u32> = [src, dst]
        .iter()
        .filter_map(|n| match n {
            Node::Gpu(g) => Some(*g),
            Node::Host => None,
        })
        .collect();
    let throttled: Vec<(f64, f64)> = board
        .telemetry_history
        .iter()
        .filter(|f| f.at_s >= now - window)
        .filter(|f| gpus.iter().any(|&g| f.gpu(g).is_some_and(|p| p.throttling)))
        .map(|f| (f.at_s - now, top * 0.97))
        .collect();
    let throttled = thin(throttled, area.width as usize);
    let datasets = vec![
        Dataset::default()
            .data(&points)
            .graph_type(GraphType::Line)
            .marker(Marker::Braille)
            .style(theme.good()),
        Dataset::default()
            .data(&throttled)
            .graph_type(GraphType::Scatter)
            .marker(Marker::Dot)
            .style(theme.bad()),
    ];
    let scale = match rate {
        Some(r) => format!("0–{} GB/s built", figure(r)),
        None => format!("0–{} GB/s", figure(top)),
    };
    let pair = format!(" {src} → {dst} {} GB/s", view.shown_op().name());
    let title = fitting(
        area.width,
        [
            format!("{pair} · {scale} · • throttled "),
            format!("{pair} · {scale} "),
            format!("{pair} "),
            format!(" {} GB/s ", view.shown_op().name()),
        ],
    );
    let chart = Chart::new(datasets)
        .block(Block::new().title(Span::styled(title, theme.dim())))
        .x_axis(time_axis(window, theme))
        .y_axis(
            Axis::default()
                .bounds([0.0, top])
                .labels(["0".to_owned(), figure(top)])
                .style(theme.dim()),
        )
        .legend_position(None);
    frame.render_widget(chart, area);
}

/// At most `most` of `points`, evenly spaced, the last always kept: a chart draws only a few
/// points per column, and drawing every sample of five minutes would cost more than the rest
/// of the frame.
pub fn thin<T>(points: Vec<T>, most: usize) -> Vec<T> {
    let most = most.max(2);
    if points.len() <= most {
        return points;
    }
    let step = points.len().div_ceil(most);
    let last = points.len() - 1;
    points
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i.is_multiple_of(step) || *i == last)
        .map(|(_, p)| p)
        .collect()
}

/// How the i-th GPU's line is told apart without colour.
fn line_symbol(i: usize) -> &'static str {
    if i == 0 { "⣿" } else { "▀" }
}

fn marker(i: usize) -> Marker {
    if i == 0 {
        Marker::Braille
    } else {
        Marker::HalfBlock
    }
}

/// A dotted reference line across the window at `value`.
pub fn reference_points(window: f64, value: f64) -> Vec<(f64, f64)> {
    (0..=24)
        .map(|k| (-window + window * k as f64 / 24.0, value))
        .collect()
}

/// The telemetry frames of the last `window` seconds, at most about `most` of them evenly
/// spaced (the last always kept): a chart column shows a few points at most.
fn in_window(board: &Board, window: f64, most: usize) -> Vec<&HistoryFrame> {
    let history = &board.telemetry_history;
    let now = board.now_s();
    let start = history.partition_point(|f| f.at_s < now - window);
    thin(history.range(start..).collect(), most)
}

fn draw_chart(
    frame: &mut Frame,
    area: Rect,
    state: &State,
    spec: &Spec,
    gpus: &[u32],
    frames: &[&HistoryFrame],
    window: f64,
) {
    let theme = state.theme;
    let now = state.board.now_s();
    let mut series: Vec<(usize, Vec<(f64, f64)>)> = Vec::new();
    for (i, &g) in gpus.iter().enumerate() {
        for pick in spec.pick {
            let points: Vec<(f64, f64)> = frames
                .iter()
                .filter_map(|f| Some((f.at_s - now, pick(f.gpu(g)?)?)))
                .collect();
            series.push((i, points));
        }
    }
    let (reference, top) = (spec.reference)(state, gpus);
    let data_top = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .fold(0.0, f64::max);
    let data_low = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .fold(f64::INFINITY, f64::min);
    let y_top = top.unwrap_or(0.0).max(data_top * 1.05).max(1.0);
    // Temperatures start near the room's, not at 0: the chart spans what matters.
    let y_low = if spec.unit == "°C" && data_low.is_finite() {
        ((data_low - 5.0) / 10.0).floor().max(0.0) * 10.0
    } else {
        0.0
    };
    let reference_line: Vec<(f64, f64)> = reference
        .map(|(v, _)| reference_points(window, v))
        .unwrap_or_default();
    let mut datasets = Vec::new();
    if !reference_line.is_empty() {
        datasets.push(
            Dataset::default()
                .data(&reference_line)
                .graph_type(GraphType::Scatter)
                .marker(Marker::Dot)
                .style(theme.reference()),
        );
    }
    for (i, points) in &series {
        datasets.push(
            Dataset::default()
                .data(points)
                .graph_type(GraphType::Line)
                .marker(marker(*i))
                .style(theme.series(*i)),
        );
    }
    let named = format!(" {} {} ", spec.title, spec.unit);
    let title = match reference {
        Some((v, name)) => fitting(
            area.width,
            [
                format!("{named}• {v:.0} {name} "),
                format!("{named}• {v:.0} "),
                format!(" {} • {v:.0} ", spec.title),
                format!(" {} ", spec.title),
            ],
        ),
        None => named,
    };
    let chart = Chart::new(datasets)
        .block(Block::new().title(Span::styled(title, theme.dim())))
        .x_axis(time_axis(window, theme))
        .y_axis(
            Axis::default()
                .bounds([y_low, y_top])
                .labels([format!("{y_low:.0}"), format!("{y_top:.0}")])
                .style(theme.dim()),
        )
        .legend_position(None);
    frame.render_widget(chart, area);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_shortens_to_fit_its_chart_and_the_shortest_is_kept_when_none_fits() {
        let titles = || {
            [
                " temp °C • 93 slowdown ".to_owned(),
                " temp • 93 ".to_owned(),
            ]
        };
        assert_eq!(fitting(40, titles()), " temp °C • 93 slowdown ");
        assert_eq!(fitting(12, titles()), " temp • 93 ");
        assert_eq!(fitting(4, titles()), " temp • 93 ");
    }

    #[test]
    fn thinning_keeps_the_ends_and_at_most_the_bound() {
        let points: Vec<(f64, f64)> = (0..600).map(|k| (k as f64, k as f64)).collect();
        let thinned = thin(points.clone(), 100);
        assert!(thinned.len() <= 101, "{}", thinned.len());
        assert_eq!(thinned.first(), points.first());
        assert_eq!(thinned.last(), points.last());
        assert_eq!(thin(points[..50].to_vec(), 100).len(), 50);
        assert_eq!(ago(120.0), "-2m");
        assert_eq!(ago(30.0), "-30s");
    }
}
