//! The live view drawn into ratatui's test backend from deterministic simulated runs, at
//! 80×24, 120×40 and 200×60, and driven by key presses.

use crossterm::event::{
    Event as TermEvent, KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use p2ptop::app::board::Board;
use p2ptop::app::cycle::sweep_order;
use p2ptop::app::feed::Feed;
use p2ptop::app::view::{Mode, Units, View};
use p2ptop::live::{Flow, Live, LiveOptions};
use p2ptop::probe::protocol::{Command, Engine, Event, Node, Op, Pair, Settings};
use p2ptop::probe::session;
use p2ptop::sim::{self, machine::Machine, simulation::Simulation};
use p2ptop::ui::{self, State, theme::Theme};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;
use std::sync::mpsc;
use std::time::Duration;

/// Runs `commands` on `sim` through the probe's own loop into `board`, then one telemetry frame.
fn run_into(board: &mut Board, sim: &mut Simulation, commands: Vec<Command>) {
    let (tx, rx) = mpsc::channel();
    for c in commands {
        tx.send(Ok(c)).unwrap();
    }
    drop(tx);
    let mut events = Vec::new();
    session::run(sim, rx, &mut |e| events.push(e.clone()));
    for e in events {
        board.apply(&Feed::Probe(e));
    }
    board.apply(&Feed::Telemetry(sim.telemetry()));
}

fn measure(pair: Pair, op: Op, engine: Engine) -> Command {
    Command::Measure {
        id: 1,
        pairs: vec![pair],
        ops: vec![op],
        engines: vec![engine],
        settings: Settings {
            samples: 3,
            ..Settings::default()
        },
    }
}

/// A board after one full sweep of `machine` with `engine`.
fn swept(machine: Machine, name: &str, engine: Engine) -> (Board, Simulation) {
    let mut board = Board::new(machine.topology(), Some(name.into()));
    let mut sim = Simulation::new(machine, 7);
    let view = View {
        engine,
        ..View::new(board.nodes().len())
    };
    let commands = sweep_order(&board, &view)
        .into_iter()
        .map(|(pair, op)| measure(pair, op, engine))
        .collect();
    run_into(&mut board, &mut sim, commands);
    (board, sim)
}

fn preset(name: &str) -> Machine {
    sim::load(name).unwrap()
}

fn with_faults(preset: &str, faults: &str) -> Machine {
    // Tests run in parallel: each machine file gets a name of its own.
    static FILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "p2ptop-ui-{}-{n}-{preset}.toml",
        std::process::id()
    ));
    let file = format!(
        "name = \"{preset}-faulty\"\nsummary = \"{preset} with faults\"\npreset = \"{preset}\"\n{faults}"
    );
    std::fs::write(&path, file).unwrap();
    let machine = sim::load(path.to_str().unwrap());
    std::fs::remove_file(&path).unwrap();
    machine.unwrap()
}

fn draw(board: &Board, view: &View, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    let state = State {
        board,
        view,
        running: None,
        buffer_mib: 512,
        theme: Theme { color: true },
    };
    terminal.draw(|f| ui::draw(f, &state)).unwrap();
    terminal
}

#[test]
fn a_pair_whose_start_gates_all_time_out_shows_gate_in_its_own_cell() {
    let machine = with_faults(
        "3090-bridge",
        "[[faults]]\nkind = \"gate_timeout\"\nsrc = \"0\"\ndst = \"1\"\n",
    );
    let mut board = Board::new(machine.topology(), Some("3090-bridge-faulty".into()));
    let mut sim = Simulation::new(machine, 3);
    let gpu = |a, b| Pair {
        src: Node::Gpu(a),
        dst: Node::Gpu(b),
    };
    let commands = [(0, 1), (1, 0)]
        .map(|(a, b)| measure(gpu(a, b), Op::Read, Engine::Sm))
        .to_vec();
    run_into(&mut board, &mut sim, commands);
    let view = View::new(board.nodes().len());
    let terminal = draw(&board, &view, 120, 40);
    let (gated, style) = matrix_cell(&terminal, "GPU0", 1, 7);
    assert!(gated.contains("GATE"), "GPU0 → GPU1 is {gated:?}");
    assert_eq!(style.bg, Some(ratatui::style::Color::Red), "{style:?}");
    let (other, _) = matrix_cell(&terminal, "GPU1", 0, 7);
    assert!(
        other.trim().parse::<f64>().is_ok(),
        "GPU1 → GPU0 is measured: {other:?}"
    );
    let screen = text(&terminal);
    assert!(
        problems_line(&screen).contains("GPU0 → GPU1 read sm: GATE"),
        "{screen}"
    );
}

fn text(terminal: &Terminal<TestBackend>) -> String {
    terminal.backend().to_string()
}

/// The screen row of the bandwidth matrix that starts with `label` (`GPU2`, `host`): the first
/// line that begins `│<label> ` (the matrix is drawn before every panel below it).
fn matrix_row(terminal: &Terminal<TestBackend>, label: &str) -> (u16, String) {
    let buffer = terminal.backend().buffer();
    let width = buffer.area.width;
    for y in 0..buffer.area.height {
        let line: String = (0..width).map(|x| buffer[(x, y)].symbol()).collect();
        if line.starts_with(&format!("│{label} ")) {
            return (y, line);
        }
    }
    panic!("no matrix row {label}:\n{}", text(terminal));
}

/// The text of matrix cell (`row`, `column`) — the `column`-th cell after the row label — and
/// the style of its first character, for compact cells (7 columns) or merged ones (12).
fn matrix_cell(
    terminal: &Terminal<TestBackend>,
    row: &str,
    column: u16,
    cell_width: u16,
) -> (String, ratatui::style::Style) {
    let (y, _) = matrix_row(terminal, row);
    let buffer = terminal.backend().buffer();
    let x0 = 1 + 7 + column * cell_width;
    let text: String = (x0..x0 + cell_width)
        .map(|x| buffer[(x, y)].symbol())
        .collect();
    let first = (x0..x0 + cell_width)
        .find(|&x| buffer[(x, y)].symbol() != " ")
        .expect("a cell with text");
    (text, buffer[(first, y)].style())
}

fn fg(style: ratatui::style::Style) -> Option<ratatui::style::Color> {
    style.fg
}

/// The problems line: the line above the key bar that starts with the count.
fn problems_line(screen: &str) -> String {
    screen
        .lines()
        .find(|l| l.contains(" problem: ") || l.contains(" problems: "))
        .unwrap_or("")
        .to_owned()
}

const SIZES: [(u16, u16); 3] = [(80, 24), (120, 40), (200, 60)];

fn snapshots(name: &str, board: &Board, view: &View) {
    for (w, h) in SIZES {
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), draw(board, view, w, h).backend());
    }
}

#[test]
fn a_swept_nvlink_bridge_pair() {
    let (board, _) = swept(preset("3090-bridge"), "3090-bridge", Engine::Sm);
    let view = View::new(board.nodes().len());
    snapshots("3090_bridge", &board, &view);
    let screen = text(&draw(&board, &view, 120, 40));
    assert!(screen.contains("SIMULATED: 3090-bridge"));
    assert!(screen.contains("link NV4"));
    assert!(screen.contains("OK: the GPUs can access each other's memory directly."));
}

#[test]
fn an_hgx_h100_in_bidir_and_percent_of_line_rate() {
    let (board, _) = swept(preset("hgx-h100"), "hgx-h100", Engine::Ce);
    let view = View {
        op: Op::Bidir,
        engine: Engine::Ce,
        units: Units::LineRate,
        selected: (2, 5),
        ..View::new(board.nodes().len())
    };
    snapshots("hgx_h100_bidir_percent", &board, &view);
    // 120 columns cannot hold both matrices: one grid with the link type in every cell.
    assert!(text(&draw(&board, &view, 120, 40)).contains("NV18"));
    assert!(!text(&draw(&board, &view, 120, 40)).contains("topo -m"));
    assert!(text(&draw(&board, &view, 200, 60)).contains("topo -m"));
}

#[test]
fn geforce_cards_without_p2p_show_the_status_code_for_kernel_copies() {
    let (board, _) = swept(preset("4090x4"), "4090x4", Engine::Sm);
    let view = View::new(board.nodes().len());
    snapshots("4090x4_sm", &board, &view);
    let screen = text(&draw(&board, &view, 120, 40));
    assert!(screen.contains("GNS"));
    assert!(screen.contains("GNS: this GPU model does not support peer access over PCIe"));
}

#[test]
fn corrupt_and_hung_pairs_are_unmistakable_and_the_probe_problem_is_shown() {
    let machine = with_faults(
        "hgx-h100",
        "[[faults]]\nkind = \"corrupt\"\nsrc = \"2\"\ndst = \"3\"\n[[faults]]\nkind = \"hang\"\nsrc = \"0\"\ndst = \"5\"\n",
    );
    let mut board = Board::new(machine.topology(), Some("hgx-h100-faulty".into()));
    let mut sim = Simulation::new(machine, 3);
    let gpu = |a, b| Pair {
        src: Node::Gpu(a),
        dst: Node::Gpu(b),
    };
    let mut commands: Vec<Command> = (0..8)
        .flat_map(|a| (0..8).map(move |b| (a, b)))
        .filter(|&(a, b)| (a, b) != (0, 5))
        .map(|(a, b)| measure(gpu(a, b), Op::Write, Engine::Sm))
        .collect();
    commands.push(measure(gpu(0, 5), Op::Write, Engine::Sm));
    run_into(&mut board, &mut sim, commands);
    let view = View {
        op: Op::Write,
        selected: (2, 3),
        ..View::new(board.nodes().len())
    };
    snapshots("hgx_h100_faults", &board, &view);
    let terminal = draw(&board, &view, 200, 60);
    let screen = text(&terminal);
    // The legend always names BAD and HUNG: look in the cells' own rows and columns.
    let compact = 7;
    let (bad, bad_style) = matrix_cell(&terminal, "GPU2", 3, compact);
    assert!(bad.contains("BAD"), "GPU2 → GPU3 is {bad:?}");
    assert_eq!(
        bad_style.bg,
        Some(ratatui::style::Color::Red),
        "{bad_style:?}"
    );
    let (hung, hung_style) = matrix_cell(&terminal, "GPU0", 5, compact);
    assert!(hung.contains("HUNG"), "GPU0 → GPU5 is {hung:?}");
    assert_eq!(hung_style.bg, Some(ratatui::style::Color::Red));
    let (healthy, _) = matrix_cell(&terminal, "GPU2", 4, compact);
    assert!(
        !healthy.contains("BAD") && !healthy.contains("HUNG"),
        "{healthy:?}"
    );
    assert!(screen.contains("VERIFICATION FAILED"));
    let problems = problems_line(&screen);
    assert!(
        problems.contains("GPU0 → GPU5 write sm: HUNG"),
        "{problems}"
    );
    assert!(problems.contains("GPU2 → GPU3 write sm: BAD"), "{problems}");
    assert!(screen.contains("probe:"), "the fatal event is shown");
}

#[test]
fn a_gpu_throttling_under_the_bridge_is_marked() {
    let machine = preset("3090-bridge");
    let mut board = Board::new(machine.topology(), Some("3090-bridge".into()));
    let mut sim = Simulation::new(machine, 11);
    let pair = Pair {
        src: Node::Gpu(0),
        dst: Node::Gpu(1),
    };
    while sim.now_s() < 120.0 {
        run_into(
            &mut board,
            &mut sim,
            vec![measure(pair, Op::Bidir, Engine::Sm)],
        );
    }
    run_into(
        &mut board,
        &mut sim,
        vec![measure(pair, Op::Read, Engine::Sm)],
    );
    let view = View::new(board.nodes().len());
    snapshots("3090_bridge_throttling", &board, &view);
    let terminal = draw(&board, &view, 200, 60);
    let screen = text(&terminal);
    assert!(screen.contains("sw-thermal"), "{screen}");
    // The legend always shows `!`: the mark must be in GPU0 → GPU1's own cell, and not in
    // a cell measured before the GPU throttled.
    let (cell, _) = matrix_cell(&terminal, "GPU0", 1, 7);
    assert!(cell.ends_with('!'), "GPU0 → GPU1 is {cell:?}");
    let (host, _) = matrix_cell(&terminal, "GPU1", 2, 7);
    assert!(!host.contains('!'), "{host:?}");
    assert!(screen.contains("measured while a GPU throttled"));
    let problems = problems_line(&screen);
    assert!(
        problems.contains("GPU0 throttling: sw-thermal at 9"),
        "{problems}"
    );
    // The history shows the temperature rising to the slowdown point.
    assert!(screen.contains("temp °C • 93 slowdown"), "{screen}");
    assert!(screen.contains("-2m"), "two minutes of history: {screen}");
}

/// A sweep of a machine file: `preset` with `faults`.
fn swept_with(preset: &str, faults: &str, engine: Engine) -> Board {
    swept(
        with_faults(preset, faults),
        &format!("{preset}-faulty"),
        engine,
    )
    .0
}

#[test]
fn a_bridge_with_a_link_down_is_judged_against_what_it_was_built_for() {
    let board = swept_with(
        "3090-bridge",
        "[[faults]]\nkind = \"nvlink_down\"\ngpu = 0\nlink = 3\n",
        Engine::Sm,
    );
    let view = View::new(board.nodes().len());
    snapshots("3090_bridge_link_down", &board, &view);
    let terminal = draw(&board, &view, 120, 40);
    let screen = text(&terminal);
    // 81% of NV3 is 61% of the NV4 it was built for: below the NVLink SM floor (65%).
    let (cell, style) = matrix_cell(&terminal, "GPU0", 1, 7);
    assert!(cell.contains('↓'), "GPU0 → GPU1 is {cell:?}");
    assert_eq!(fg(style), Some(ratatui::style::Color::Red), "{style:?}");
    let (local, local_style) = matrix_cell(&terminal, "GPU0", 0, 7);
    assert!(!local.contains('↓'), "{local:?}");
    assert_eq!(fg(local_style), Some(ratatui::style::Color::Green));
    assert!(screen.contains("link NV3, built NV4"), "{screen}");
    assert!(
        screen.contains("NVLink 3/4 up → now 42.188 GB/s"),
        "{screen}"
    );
    assert!(
        screen.contains("61% of what it was built for ↓ below"),
        "{screen}"
    );
    let problems = problems_line(&screen);
    assert!(
        problems.contains("GPU0: 3 of 4 NVLinks up (down: 3)"),
        "{problems}"
    );
    // Without colour the mark still says it.
    let mono = {
        let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
        let state = State {
            board: &board,
            view: &view,
            running: None,
            buffer_mib: 512,
            theme: Theme { color: false },
        };
        terminal.draw(|f| ui::draw(f, &state)).unwrap();
        terminal
    };
    let (cell, style) = matrix_cell(&mono, "GPU0", 1, 7);
    assert!(cell.contains('↓'), "{cell:?}");
    assert!(
        matches!(fg(style), None | Some(ratatui::style::Color::Reset)),
        "{style:?}"
    );
}

#[test]
fn a_bridge_with_every_link_down_asks_whether_it_is_seated() {
    let faults: String = (0..4)
        .map(|l| format!("[[faults]]\nkind = \"nvlink_down\"\ngpu = 0\nlink = {l}\n"))
        .collect();
    let board = swept_with("3090-bridge", &faults, Engine::Ce);
    let view = View {
        engine: Engine::Ce,
        ..View::new(board.nodes().len())
    };
    let terminal = draw(&board, &view, 120, 40);
    let screen = text(&terminal);
    let problems = problems_line(&screen);
    assert!(
        problems.contains("GPU0: 0 of 4 NVLinks up (down: 0, 1, 2, 3) — is the bridge seated?"),
        "{problems}"
    );
    assert!(screen.contains("NVLink 0/4 up"), "{screen}");
    let (cell, style) = matrix_cell(&terminal, "GPU0", 1, 7);
    assert!(cell.contains('↓'), "GPU0 → GPU1 is {cell:?}");
    assert_eq!(fg(style), Some(ratatui::style::Color::Red));
}

#[test]
fn a_pcie_link_trained_down_shows_its_gap_and_a_problem() {
    let board = swept_with(
        "hgx-h100",
        "[[faults]]\nkind = \"pcie_downgraded\"\ngpu = 3\ngeneration = 4\nwidth = 8\n",
        Engine::Ce,
    );
    let host = board.nodes().len() - 1;
    let view = View {
        engine: Engine::Ce,
        selected: (3, host),
        ..View::new(board.nodes().len())
    };
    snapshots("hgx_h100_pcie_down", &board, &view);
    let terminal = draw(&board, &view, 200, 60);
    let screen = text(&terminal);
    assert!(screen.contains("GPU3 PCIe 4.0 x8 of 5.0 x16"), "{screen}");
    let problems = problems_line(&screen);
    assert!(
        problems.contains("GPU3: PCIe 4.0 x8 of 5.0 x16 under load"),
        "{problems}"
    );
    let (slow, style) = matrix_cell(&terminal, "GPU3", 8, 7);
    assert!(slow.contains('↓'), "GPU3 → host is {slow:?}");
    assert_eq!(fg(style), Some(ratatui::style::Color::Red));
    let (fine, style) = matrix_cell(&terminal, "GPU2", 8, 7);
    assert!(!fine.contains('↓'), "GPU2 → host is {fine:?}");
    assert_eq!(fg(style), Some(ratatui::style::Color::Green));
}

#[test]
fn an_sm_read_over_pcie_is_judged_by_the_pull_floor() {
    // A healthy PCIe 5.0 SM read pulls ~56% of the line rate; check passes it from 40%.
    let (board, _) = swept(preset("h100-single"), "h100-single", Engine::Sm);
    let view = View::new(board.nodes().len());
    let terminal = draw(&board, &view, 120, 40);
    let (cell, style) = matrix_cell(&terminal, "host", 0, 7);
    assert!(!cell.contains('↓'), "host → GPU0 read is {cell:?}");
    assert_eq!(fg(style), Some(ratatui::style::Color::Green), "{cell:?}");
}

#[test]
fn a_read_to_the_host_is_judged_as_the_push_check_sees() {
    // The GPU runs GPU0 → host and writes into host memory: check holds it to the push floor
    // (60%), not the pull floor, and the view must say the same.
    let (board, _) = swept(preset("h100-single"), "h100-single", Engine::Sm);
    let host = p2ptop::probe::protocol::Node::Host;
    let gpu0 = p2ptop::probe::protocol::Node::Gpu(0);
    let floors = p2ptop::report::verdict::Floors::default();
    assert_eq!(
        p2ptop::app::reading::floor(&board, gpu0, host, Op::Read, Engine::Sm),
        floors.pcie_sm_write
    );
    assert_eq!(
        p2ptop::app::reading::floor(&board, host, gpu0, Op::Read, Engine::Sm),
        floors.pcie_sm_read
    );
}

#[test]
fn stress_shows_pcie_pairs_without_judging_them_by_a_share_it_does_not_model() {
    // Pairs on one switch and pairs across sockets share different hops: no single count of
    // sharers is fair to both, so PCIe pairs under stress are shown, not graded.
    let (board, _) = swept(preset("pcie-dual-socket"), "pcie-dual-socket", Engine::Sm);
    let view = View {
        mode: p2ptop::app::view::Mode::Stress,
        ..View::new(board.nodes().len())
    };
    let gpu = p2ptop::probe::protocol::Node::Gpu;
    for (a, b) in [(0, 1), (0, 3)] {
        match p2ptop::app::reading::read_view(&board, &view, gpu(a), gpu(b)) {
            p2ptop::app::reading::Reading::Figure { grade, share, .. } => {
                assert_eq!((grade, share), (None, None), "GPU{a} → GPU{b}");
            }
            other => panic!("GPU{a} → GPU{b} was measured in bidir: {other:?}"),
        }
    }
}

#[test]
fn stress_colours_against_the_fair_share_and_dims_what_it_does_not_load() {
    let (mut board, mut sim) = swept(preset("hgx-h100"), "hgx-h100", Engine::Sm);
    let pairs: Vec<Pair> = (0..8u32)
        .flat_map(|a| (a + 1..8).map(move |b| (a, b)))
        .map(|(a, b)| Pair {
            src: Node::Gpu(a),
            dst: Node::Gpu(b),
        })
        .collect();
    run_into(
        &mut board,
        &mut sim,
        vec![p2ptop::app::cycle::stress_command(
            9,
            pairs,
            Engine::Sm,
            Settings {
                samples: 3,
                ..Settings::default()
            },
        )],
    );
    let view = View {
        mode: Mode::Stress,
        selected: (6, 7),
        ..View::new(board.nodes().len())
    };
    snapshots("hgx_h100_stress", &board, &view);
    let terminal = draw(&board, &view, 200, 60);
    // All-to-all gives each NVSwitch pair a seventh of 2 × 450 GB/s: not a red cell.
    let (cell, style) = matrix_cell(&terminal, "GPU6", 7, 7);
    assert!(!cell.contains('↓'), "GPU6 → GPU7 under stress is {cell:?}");
    assert_eq!(fg(style), Some(ratatui::style::Color::Green), "{cell:?}");
    // Host cells keep sweep figures stress does not refresh: dimmed and marked stale.
    let (host, style) = matrix_cell(&terminal, "GPU6", 8, 7);
    assert!(host.contains('~'), "GPU6 → host under stress is {host:?}");
    assert_eq!(fg(style), Some(ratatui::style::Color::DarkGray));
    assert!(text(&terminal).contains("of its fair share under"));
}

#[test]
fn a_terminal_too_small_says_so() {
    let (board, _) = swept(preset("3090-bridge"), "3090-bridge", Engine::Sm);
    let view = View::new(board.nodes().len());
    let terminal = draw(&board, &view, 60, 20);
    insta::assert_snapshot!("too_small", terminal.backend());
    assert!(text(&terminal).contains("needs at least 80×24"));
}

#[test]
fn the_help_lists_every_key_and_the_p2p_codes() {
    let (board, _) = swept(preset("3090-bridge"), "3090-bridge", Engine::Sm);
    let view = View {
        help: true,
        ..View::new(board.nodes().len())
    };
    let terminal = draw(&board, &view, 120, 40);
    insta::assert_snapshot!("help_120x40", terminal.backend());
    // What is below the fold at 120×40 is one scroll away.
    let scrolled = View {
        help_scroll: 20,
        ..view.clone()
    };
    let screen = text(&terminal) + &text(&draw(&board, &scrolled, 120, 40));
    for binding in p2ptop::app::keys::help() {
        assert!(screen.contains(binding.hint), "{} missing", binding.hint);
        assert!(
            screen.contains(p2ptop::app::keys::says(binding.action)),
            "{} unexplained",
            binding.hint
        );
    }
    assert!(screen.contains("CNS: the chipset"));
}

#[test]
fn the_help_scrolls_to_its_last_line_and_stress_hides_the_op_keys() {
    let (board, _) = swept(preset("3090-bridge"), "3090-bridge", Engine::Sm);
    let last = p2ptop::model::topology::P2pStatus::U.sentence();
    let mut view = View {
        help: true,
        ..View::new(board.nodes().len())
    };
    let top = text(&draw(&board, &view, 120, 40));
    assert!(top.contains("↓ more"), "{top}");
    assert!(!top.contains(&last[..20]), "{top}");
    for _ in 0..10 {
        view.apply(p2ptop::app::view::Action::ScrollHelp(10), 3, 2);
    }
    let bottom = text(&draw(&board, &view, 120, 40));
    assert!(bottom.contains(&last[..20]), "{bottom}");
    assert!(!bottom.contains("↓ more"), "{bottom}");
    let stress = View {
        mode: Mode::Stress,
        ..View::new(board.nodes().len())
    };
    let screen = text(&draw(&board, &stress, 120, 40));
    let bar = screen.lines().last().unwrap();
    assert!(bar.contains("m mode") && !bar.contains("o op"), "{bar}");
}

/// A live view on a simulated connection, for driving with keys.
fn live(preset_name: &str) -> Live {
    let conn = p2ptop::source::simulated::open(
        preset(preset_name),
        preset_name,
        1,
        p2ptop::source::simulated::Pacing::WallClock {
            telemetry: Duration::from_millis(50),
        },
    );
    let topology = conn.topology.clone();
    let options = LiveOptions {
        color: p2ptop::live::ColorChoice::Never,
        ..LiveOptions::default()
    };
    Live::new(conn, topology, &options).unwrap()
}

fn key(live: &mut Live, code: KeyCode) -> Flow {
    let area = Rect::new(0, 0, 120, 40);
    live.handle(
        &TermEvent::Key(KeyEvent::new(code, KeyModifiers::NONE)),
        area,
    )
}

#[test]
fn scrolling_past_the_help_s_end_stops_there_so_the_way_back_answers_at_once() {
    let mut live = live("3090-bridge");
    key(&mut live, KeyCode::Char('?'));
    for _ in 0..50 {
        key(&mut live, KeyCode::PageDown);
    }
    let furthest = live.view.help_scroll;
    assert!(furthest > 0, "the help is longer than a 120x40 screen");
    key(&mut live, KeyCode::PageDown);
    assert_eq!(live.view.help_scroll, furthest);
    key(&mut live, KeyCode::Up);
    assert_eq!(live.view.help_scroll, furthest - 1);
}

#[test]
fn keys_change_op_mode_engine_units_and_selection_and_the_screen_follows() {
    let mut live = live("3090-bridge");
    key(&mut live, KeyCode::Char('w'));
    key(&mut live, KeyCode::Char('e'));
    key(&mut live, KeyCode::Char('u'));
    key(&mut live, KeyCode::Down);
    key(&mut live, KeyCode::Right);
    assert_eq!(live.view.op, Op::Write);
    assert_eq!(live.view.engine, Engine::Ce);
    assert_eq!(live.view.units, Units::LineRate);
    assert_eq!(live.view.selected, (1, 2));
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
    terminal.draw(|f| ui::draw(f, &live.state())).unwrap();
    let screen = text(&terminal);
    assert!(screen.contains("write % of built"), "{screen}");
    assert!(screen.contains("GPU1 → host · write · ce"), "{screen}");
    key(&mut live, KeyCode::Char('m'));
    assert_eq!(live.view.mode, Mode::Stress);
    key(&mut live, KeyCode::Char('?'));
    assert!(live.view.help);
    key(&mut live, KeyCode::Esc);
    assert!(!live.view.help);
    assert_eq!(key(&mut live, KeyCode::Char('q')), Flow::Quit);
    let ctrl_c = TermEvent::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert_eq!(live.handle(&ctrl_c, Rect::new(0, 0, 120, 40)), Flow::Quit);
}

#[test]
fn a_click_selects_the_cell_under_the_mouse() {
    let mut live = live("3090-bridge");
    let area = Rect::new(0, 0, 120, 40);
    // Header 2 rows, border, column heads: the first GPU row is at y = 4; cells start at x = 8
    // and are 7 columns wide.
    let click = |column, row| {
        TermEvent::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column,
            row,
            modifiers: KeyModifiers::NONE,
        })
    };
    live.handle(&click(8 + 7 * 2 + 1, 4 + 1), area);
    assert_eq!(live.view.selected, (1, 2));
    live.handle(&click(1, 1), area);
    assert_eq!(
        live.view.selected,
        (1, 2),
        "a click outside the matrix changes nothing"
    );
}

#[test]
fn the_mouse_wheel_and_clicks_work_on_the_gpu_panel() {
    let mut live = live("hgx-h100");
    // 80×24: the GPU panel shows two of eight GPUs, so the wheel has something to scroll.
    let area = Rect::new(0, 0, 80, 24);
    let gpus = ui::regions(area, &live.state()).gpus;
    let mouse = |kind, column, row| {
        TermEvent::Mouse(MouseEvent {
            kind,
            column,
            row,
            modifiers: KeyModifiers::NONE,
        })
    };
    let (x, y) = (gpus.x + 3, gpus.y + 1);
    live.handle(&mouse(MouseEventKind::ScrollDown, x, y), area);
    live.handle(&mouse(MouseEventKind::ScrollDown, x, y), area);
    assert_eq!(live.view.gpu_scroll, 2);
    live.handle(&mouse(MouseEventKind::ScrollUp, x, y), area);
    assert_eq!(live.view.gpu_scroll, 1);
    assert_eq!(
        live.view.selected,
        (0, 1),
        "the wheel over the GPUs moves no cell"
    );
    live.handle(&mouse(MouseEventKind::Down(MouseButton::Left), x, y), area);
    assert_eq!(live.view.focus, p2ptop::app::view::Focus::Gpus);
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    terminal.draw(|f| ui::draw(f, &live.state())).unwrap();
    assert!(
        text(&terminal).contains("GPUs 1–2 of 8"),
        "{}",
        text(&terminal)
    );
}

#[test]
fn the_sweep_measures_on_a_live_connection_and_a_snapshot_is_written_whole() {
    let mut live = live("3090-bridge");
    let dir = std::env::temp_dir().join(format!("p2ptop-ui-snap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    live.snapshot_dir = dir.clone();
    live.pump();
    let feed = std::mem::replace(&mut live.conn.feed, mpsc::channel().1);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while live
        .board
        .cells
        .values()
        .filter(|c| c.last.is_some())
        .count()
        < 3
    {
        assert!(std::time::Instant::now() < deadline, "no results in 20 s");
        if let Ok(item) = feed.recv_timeout(Duration::from_secs(1)) {
            live.take(&item);
        }
    }
    key(&mut live, KeyCode::Char('s'));
    let notice = live.view.notice.clone().unwrap();
    assert!(notice.starts_with("snapshot written to"), "{notice}");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    let json = names.iter().find(|n| n.ends_with(".json")).unwrap();
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(json)).unwrap()).unwrap();
    assert_eq!(value["simulated"], true);
    assert!(
        value["cells"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["gbps"].is_number())
    );
    let csv = names.iter().find(|n| n.ends_with("-history.csv")).unwrap();
    let csv = std::fs::read_to_string(dir.join(csv)).unwrap();
    let mut rows = csv.lines();
    assert_eq!(
        rows.next(),
        Some(
            "t_s,gpu,temp_c,sm_clock_mhz,power_w,nvlink_tx_gbps,nvlink_rx_gbps,pcie_tx_gbps,pcie_rx_gbps,throttling"
        )
    );
    let gpus: Vec<&str> = rows.map(|r| r.split(',').nth(1).unwrap()).collect();
    assert!(
        gpus.contains(&"0") && gpus.contains(&"1"),
        "a row per GPU per frame: {csv}"
    );
    let md = names.iter().find(|n| n.ends_with(".md")).unwrap();
    assert!(
        std::fs::read_to_string(dir.join(md))
            .unwrap()
            .contains("| src → dst |")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pausing_stops_the_probe_and_no_command_follows_until_resumed() {
    let mut live = live("3090-bridge");
    live.pump();
    assert!(live.cycle.running().is_some());
    key(&mut live, KeyCode::Char('p'));
    let feed = std::mem::replace(&mut live.conn.feed, mpsc::channel().1);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while live.cycle.running().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the stop was not answered"
        );
        if let Ok(item) = feed.recv_timeout(Duration::from_secs(1)) {
            live.take(&item);
        }
    }
    live.pump();
    assert!(
        live.cycle.running().is_none(),
        "paused, yet a command was sent"
    );
    key(&mut live, KeyCode::Char('p'));
    assert!(live.cycle.running().is_some());
    let problem = Feed::Probe(Event::Fatal {
        message: "context poisoned".into(),
        cuda_error: Some(700),
    });
    live.take(&problem);
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    terminal.draw(|f| ui::draw(f, &live.state())).unwrap();
    assert!(text(&terminal).contains("probe: context poisoned"));
}
