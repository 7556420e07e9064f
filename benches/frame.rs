//! The cost of one frame of the live view for 8 and 16 GPUs (synthetic boards, every cell
//! measured, full histories: five minutes of telemetry and every cell's bandwidth timeline, so
//! the history charts are drawn), against an empty frame in the same run; then the live loop's
//! CPU use on a simulated machine at the default refresh.
//!
//! `cargo bench --bench frame`

use p2ptop::app::board::{Board, Cell, CellKey, HISTORY, HISTORY_POINTS, Measured};
use p2ptop::app::feed::Feed;
use p2ptop::app::view::View;
use p2ptop::live::{self, Input, Live, LiveOptions};
use p2ptop::model::telemetry::{GpuTelemetry, TelemetryFrame, ThrottleReasons};
use p2ptop::model::topology::{Gpu, PairLink};
use p2ptop::probe::protocol::{DirectionSummary, Engine, Op, Verification};
use p2ptop::ui::{self, State, theme::Theme};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

const FRAMES: u32 = 2000;

/// hgx-h100's topology grown to `gpus` GPUs, every cell of every op measured.
fn board(gpus: u32) -> Board {
    let base = p2ptop::sim::load("hgx-h100").expect("preset").topology();
    let mut topology = base.clone();
    let template: Gpu = base.gpus[0].clone();
    let link: PairLink = base.pairs[0].clone();
    topology.gpus = (0..gpus)
        .map(|i| Gpu {
            index: i,
            ..template.clone()
        })
        .collect();
    topology.pairs = (0..gpus)
        .flat_map(|a| (a + 1..gpus).map(move |b| (a, b)))
        .map(|(a, b)| PairLink {
            a,
            b,
            ..link.clone()
        })
        .collect();
    let mut board = Board::new(topology, Some(format!("synthetic-{gpus}")));
    let nodes = board.nodes();
    for &src in &nodes {
        for &dst in &nodes {
            for op in [Op::Read, Op::Write, Op::Bidir] {
                let gbps = 370.0 + (src != dst) as u8 as f64;
                let cell = Cell {
                    last: Some(Measured {
                        total_gbps: gbps,
                        directions: vec![DirectionSummary {
                            src,
                            dst,
                            executor: 0,
                            median_gbps: gbps,
                            min_gbps: gbps - 1.0,
                            max_gbps: gbps + 1.0,
                            cv: 0.003,
                        }],
                        verification: Verification::default(),
                        buffer_mib: 512,
                        repeats: 8,
                        samples: 5,
                        throttled: false,
                    }),
                    history: (0..HISTORY).map(|k| gbps + (k % 7) as f64).collect(),
                    timeline: Default::default(),
                    failure: None,
                };
                board.cells.insert(
                    CellKey {
                        src,
                        dst,
                        op,
                        engine: Engine::Sm,
                    },
                    cell,
                );
            }
            board.latency.insert((src, dst), 800.0);
        }
    }
    // Five minutes of telemetry at the sampler's default 500 ms: the full history window.
    for k in 0..600u64 {
        let frame = TelemetryFrame {
            at_ms: 500 * k,
            gpus: (0..gpus)
                .map(|gpu| GpuTelemetry {
                    gpu,
                    temp_c: Some(40.0 + (k as f64 / 12.0).min(48.0)),
                    slowdown_temp_c: Some(87.0),
                    sm_clock_mhz: Some(1980 - (k as u32 % 50)),
                    sm_clock_max_mhz: Some(1980),
                    power_w: Some(500.0 + (k % 30) as f64),
                    power_limit_w: Some(700.0),
                    throttle: Some(ThrottleReasons(if k > 500 {
                        ThrottleReasons::SW_THERMAL
                    } else {
                        0
                    })),
                    pcie_gen: Some(5),
                    pcie_width: Some(16),
                    pcie_tx_gbps: Some(20.0 + (k % 5) as f64),
                    pcie_rx_gbps: Some(18.0 + (k % 7) as f64),
                    ..GpuTelemetry::default()
                })
                .collect(),
        };
        board.apply(&Feed::Telemetry(frame));
    }
    for cell in board.cells.values_mut() {
        cell.timeline = (0..HISTORY_POINTS)
            .map(|k| (k as f64 * 0.25, 370.0 + (k % 7) as f64))
            .collect();
    }
    assert!(board.telemetry_history.len() >= 600, "a full history");
    board
}

/// Mean time of one `draw` into a 200×60 test backend.
fn time_frames(draw: &mut dyn FnMut(&mut ratatui::Frame)) -> Duration {
    let mut terminal = Terminal::new(TestBackend::new(200, 60)).expect("test backend");
    for _ in 0..50 {
        terminal.draw(|f| draw(f)).expect("draw");
    }
    let start = Instant::now();
    for _ in 0..FRAMES {
        black_box(terminal.draw(|f| draw(f)).expect("draw"));
    }
    start.elapsed() / FRAMES
}

/// CPU time this thread has used.
fn thread_cpu() -> Duration {
    cpu(libc::RUSAGE_THREAD)
}

fn cpu(who: libc::c_int) -> Duration {
    // SAFETY: getrusage writes one rusage into the zeroed struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(who, &mut usage) };
    assert_eq!(rc, 0, "getrusage failed");
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Runs the live loop on a simulated `preset` into a 200×60 test backend for `seconds`;
/// returns the loop thread's and the whole process's CPU share of one core.
fn live_cpu(preset: &str, seconds: u64) -> (f64, f64) {
    let machine = p2ptop::sim::load(preset).expect("preset");
    let mut conn = p2ptop::source::simulated::open(
        machine,
        preset,
        1,
        p2ptop::source::simulated::Pacing::WallClock {
            telemetry: p2ptop::nvml::sampler::DEFAULT_INTERVAL,
        },
    );
    let options = LiveOptions::default();
    let topology = conn.topology.clone();
    let feed = std::mem::replace(&mut conn.feed, mpsc::channel().1);
    let mut live = Live::new(conn, topology, &options).expect("live view");
    let (tx, inputs) = mpsc::channel::<Input>();
    live::forward_feed(feed, tx);
    let stop = Arc::new(AtomicBool::new(false));
    let timer = Arc::clone(&stop);
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(seconds));
        timer.store(true, Ordering::Relaxed);
    });
    let mut terminal = Terminal::new(TestBackend::new(200, 60)).expect("test backend");
    let (wall, thread, process) = (Instant::now(), thread_cpu(), cpu(libc::RUSAGE_SELF));
    live::event_loop(&mut terminal, &mut live, &inputs, options.refresh, &stop).expect("loop");
    let elapsed = wall.elapsed().as_secs_f64();
    (
        (thread_cpu() - thread).as_secs_f64() / elapsed,
        (cpu(libc::RUSAGE_SELF) - process).as_secs_f64() / elapsed,
    )
}

fn main() {
    let empty = time_frames(&mut |_| {});
    println!("one frame at 200×60 into TestBackend, mean of {FRAMES}");
    println!("  empty frame      {:>8.1} µs", empty.as_secs_f64() * 1e6);
    for gpus in [8, 16] {
        let board = board(gpus);
        let view = View {
            selected: (1, 2),
            ..View::new(board.nodes().len())
        };
        let state = State {
            board: &board,
            view: &view,
            running: None,
            buffer_mib: 512,
            theme: Theme { color: true },
        };
        let full = time_frames(&mut |f| ui::draw(f, &state));
        println!(
            "  {gpus:>2} GPUs          {:>8.1} µs  ({:.1}× the empty frame)",
            full.as_secs_f64() * 1e6,
            full.as_secs_f64() / empty.as_secs_f64()
        );
    }
    let seconds = 5;
    println!(
        "live loop CPU at the default refresh ({} ms), {seconds} s on a simulated machine:",
        live::DEFAULT_REFRESH.as_millis()
    );
    for preset in ["3090-bridge", "hgx-h100"] {
        let (ui_share, process_share) = live_cpu(preset, seconds);
        println!(
            "  {preset:<12} UI thread {:>5.2}% of a core  (whole process with the simulator {:.2}%)",
            ui_share * 100.0,
            process_share * 100.0
        );
    }
}
