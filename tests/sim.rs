//! The simulator: presets, calibration against published figures, contention, heat, faults,
//! determinism. Everything runs through the probe's own command loop, as the real probe does.

use p2ptop::model::telemetry::ThrottleReasons;
use p2ptop::model::topology::{LinkType, P2pStatus};
use p2ptop::probe::protocol::{Command, Engine, Event, FailureKind, Node, Op, Pair, Settings};
use p2ptop::probe::session;
use p2ptop::sim::bandwidth::{self, Demand, USABLE_SHARE};
use p2ptop::sim::simulation::Simulation;
use p2ptop::sim::{self, PRESETS};
use std::collections::BTreeMap;
use std::sync::mpsc;

fn simulation(name: &str) -> Simulation {
    Simulation::new(sim::load(name).unwrap(), 7)
}

/// Runs commands through the probe's session loop and collects the events.
fn run(sim: &mut Simulation, commands: Vec<Command>) -> Vec<Event> {
    let (tx, rx) = mpsc::channel();
    for c in commands {
        tx.send(Ok(c)).unwrap();
    }
    drop(tx);
    let mut events = Vec::new();
    session::run(sim, rx, &mut |e| events.push(e.clone()));
    events
}

fn measure(pairs: Vec<Pair>, op: Op, engine: Engine) -> Command {
    Command::Measure {
        id: 1,
        pairs,
        ops: vec![op],
        engines: vec![engine],
        settings: Settings::default(),
    }
}

fn node(text: &str) -> Node {
    if text == "host" {
        Node::Host
    } else {
        Node::Gpu(text.parse().unwrap())
    }
}

fn pair(src: Node, dst: Node) -> Pair {
    Pair { src, dst }
}

fn gpus(a: u32, b: u32) -> Pair {
    pair(Node::Gpu(a), Node::Gpu(b))
}

/// The total GB/s of the first result.
fn total(events: &[Event]) -> f64 {
    events
        .iter()
        .find_map(|e| match e {
            Event::Result { total_gbps, .. } => Some(*total_gbps),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no result in {events:?}"))
}

#[test]
fn every_preset_loads_and_is_listed_with_one_line() {
    let list = sim::list();
    assert_eq!(list.lines().count(), PRESETS.len());
    for (name, _) in PRESETS {
        let machine = sim::load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(machine.name, name);
        assert!(
            list.lines()
                .any(|l| l.starts_with(name) && l.len() > name.len() + 10)
        );
        assert!(!machine.spec.sources.is_empty(), "{name} states no sources");
    }
}

#[test]
fn presets_have_the_link_types_and_p2p_codes_of_the_machines_they_model() {
    let link = |name: &str, a, b| sim::load(name).unwrap().topology().link(a, b).unwrap();
    assert_eq!(link("3090-bridge", 0, 1), LinkType::NvLink(4));
    assert_eq!(link("3090-pcie", 0, 1), LinkType::Phb);
    assert_eq!(link("4090x4", 1, 3), LinkType::Phb);
    assert_eq!(link("dgx-a100", 0, 7), LinkType::NvLink(12));
    assert_eq!(link("hgx-h100", 2, 5), LinkType::NvLink(18));
    let dual = sim::load("pcie-dual-socket").unwrap().topology();
    assert_eq!(dual.link(0, 1), Some(LinkType::Pix));
    assert_eq!(dual.link(0, 2), Some(LinkType::Pxb));
    assert_eq!(dual.link(4, 6), Some(LinkType::Node));
    assert_eq!(dual.link(1, 6), Some(LinkType::Sys));
    let p2p = |name: &str| sim::load(name).unwrap().topology().p2p(0, 1).unwrap();
    assert_eq!(p2p("3090-bridge").read, P2pStatus::Ok);
    assert_eq!(p2p("3090-pcie").read, P2pStatus::Gns);
    assert_eq!(p2p("4090x4").write, P2pStatus::Gns);
    let bridge = sim::load("3090-bridge").unwrap().topology();
    assert_eq!(
        bridge.pair(0, 1).unwrap().line_rate.as_ref().unwrap().gbps,
        56.25
    );
}

/// Every `[[reference]]` figure in every preset, reproduced within ±10%: HGX H100 CE write
/// and bidir and SM read and write; DGX A100 CE write and SM read; the bridged 3090 pair's CE
/// bidir; the RTX 4090's CE host→GPU; the single H100's SM host paths and CE host→GPU.
#[test]
fn calibrated_presets_reproduce_their_published_figures_within_ten_percent() {
    let mut checked = 0;
    for (name, _) in PRESETS {
        let machine = sim::load(name).unwrap();
        for r in machine.spec.reference.clone() {
            let op = match r.op.as_str() {
                "read" => Op::Read,
                "write" => Op::Write,
                "bidir" => Op::Bidir,
                other => panic!("{name}: op {other}"),
            };
            let engine = if r.engine == "sm" {
                Engine::Sm
            } else {
                Engine::Ce
            };
            let mut s = Simulation::new(machine.clone(), 1);
            let events = run(
                &mut s,
                vec![measure(vec![pair(node(&r.src), node(&r.dst))], op, engine)],
            );
            let got = total(&events);
            let off = got / r.gbps - 1.0;
            assert!(
                off.abs() <= 0.10,
                "{name} {} → {} {} {}: simulated {got:.1} GB/s, published {} ({}), off by {:.1}%",
                r.src,
                r.dst,
                r.op,
                r.engine,
                r.gbps,
                r.source,
                off * 100.0
            );
            checked += 1;
        }
    }
    assert!(checked >= 11, "only {checked} reference figures checked");
}

#[test]
fn sm_copies_lose_more_than_copy_engines_on_nvlink_and_pcie_writes_beat_reads() {
    let nv = |engine| {
        total(&run(
            &mut simulation("hgx-h100"),
            vec![measure(vec![gpus(0, 1)], Op::Write, engine)],
        ))
    };
    assert!(nv(Engine::Sm) < nv(Engine::Ce));
    let host = |src, dst, op| {
        total(&run(
            &mut simulation("h100-single"),
            vec![measure(vec![pair(src, dst)], op, Engine::Sm)],
        ))
    };
    assert!(host(Node::Gpu(0), Node::Host, Op::Write) > host(Node::Host, Node::Gpu(0), Op::Read));
}

#[test]
fn pairs_without_p2p_are_staged_through_host_for_copy_engines_and_refused_for_kernels() {
    let mut s = simulation("3090-pcie");
    let events = run(
        &mut s,
        vec![measure(vec![gpus(0, 1)], Op::Write, Engine::Ce)],
    );
    let staged = total(&events);
    assert!(
        staged > 10.0 && staged < 0.7 * 31.5,
        "staged copy at {staged} GB/s"
    );
    let events = run(
        &mut s,
        vec![measure(vec![gpus(0, 1)], Op::Write, Engine::Sm)],
    );
    assert!(events.iter().any(|e| matches!(e,
        Event::PairError { kind: FailureKind::Unsupported, message, .. } if message.contains("staged through host memory"))));
}

/// Random sets of concurrent transfers on every preset: no resource carries more than its
/// usable capacity, and no transfer more than it reaches alone.
#[test]
fn contention_never_exceeds_a_shared_capacity() {
    let mut rng = fastrand::Rng::with_seed(3);
    for (name, _) in PRESETS {
        let machine = sim::load(name).unwrap();
        let n = machine.gpus.len() as u32;
        for _ in 0..50 {
            let mut nodes: Vec<Node> = (0..n).map(Node::Gpu).collect();
            nodes.push(Node::Host);
            let paths: Vec<_> = (0..rng.usize(1..=12))
                .map(|_| {
                    let src = nodes[rng.usize(..nodes.len())];
                    let mut dst = nodes[rng.usize(..nodes.len())];
                    if src == Node::Host && dst == Node::Host {
                        dst = Node::Gpu(0);
                    }
                    machine.path(src, dst)
                })
                .collect();
            let demands: Vec<Demand> = paths
                .iter()
                .map(|path| Demand {
                    alone_gbps: machine.path_line_rate(path) * 0.87,
                    path,
                })
                .collect();
            let rates = bandwidth::share(&machine, &demands);
            let mut load = BTreeMap::new();
            for (d, rate) in demands.iter().zip(&rates) {
                assert!(*rate <= d.alone_gbps + 1e-6);
                for r in &d.path.resources {
                    *load.entry(*r).or_insert(0.0) += rate;
                }
            }
            for (r, carried) in load {
                let cap = machine.capacity(r) * USABLE_SHARE;
                assert!(
                    carried <= cap + 1e-6,
                    "{name}: {r:?} carries {carried} of {cap}"
                );
            }
        }
    }
}

#[test]
fn flows_through_a_switch_uplink_share_it_and_fill_it() {
    let machine = sim::load("pcie-dual-socket").unwrap();
    // GPU0-3 sit below socket 0's top switch; every copy to socket 1 leaves through its uplink.
    let paths: Vec<_> = [(0, 4), (1, 5), (2, 6), (3, 7)]
        .iter()
        .map(|&(a, b)| machine.path(Node::Gpu(a), Node::Gpu(b)))
        .collect();
    let demands: Vec<Demand> = paths
        .iter()
        .map(|path| Demand {
            alone_gbps: 26.0,
            path,
        })
        .collect();
    let rates = bandwidth::share(&machine, &demands);
    let uplink = 1.969 * 16.0 * USABLE_SHARE; // PCIe 4.0 x16, 90% usable
    let sum: f64 = rates.iter().sum();
    assert!(
        (sum - uplink).abs() < 1e-6,
        "the uplink carries {sum} of {uplink}"
    );
    for r in &rates {
        assert!((r - uplink / 4.0).abs() < 1e-6, "unequal shares {rates:?}");
    }
    // Alone, a transfer is limited only by what it reaches by itself.
    assert_eq!(bandwidth::share(&machine, &demands[..1]), vec![26.0]);
    // Two copies out of one GPU split its own link; a third elsewhere is untouched.
    let more: Vec<_> = [(0, 1), (0, 4), (5, 6)]
        .iter()
        .map(|&(a, b)| machine.path(Node::Gpu(a), Node::Gpu(b)))
        .collect();
    let demands: Vec<Demand> = more
        .iter()
        .map(|path| Demand {
            alone_gbps: 26.0,
            path,
        })
        .collect();
    let rates = bandwidth::share(&machine, &demands);
    assert!((rates[0] - uplink / 2.0).abs() < 1e-6 && (rates[1] - uplink / 2.0).abs() < 1e-6);
    assert_eq!(rates[2], 26.0);
}

fn stress(pairs: Vec<Pair>, op: Op, engine: Engine) -> Command {
    Command::Stress {
        id: 2,
        pairs,
        op,
        engines: vec![engine],
        settings: Settings::default(),
    }
}

/// Stress on the bridged pair (SM writes both ways at once) for `seconds` simulated seconds;
/// returns each GPU's SM write rate per round.
fn stress_3090_bridge(
    machine: sim::machine::Machine,
    seconds: f64,
) -> (Vec<(f64, f64, f64)>, Simulation) {
    let mut s = Simulation::new(machine, 11);
    let mut rates = Vec::new();
    while s.now_s() < seconds {
        let events = run(
            &mut s,
            vec![stress(vec![gpus(0, 1), gpus(1, 0)], Op::Write, Engine::Sm)],
        );
        let from = |g: u32| {
            events
                .iter()
                .find_map(|e| match e {
                    Event::Result {
                        pair, total_gbps, ..
                    } if pair.src == Node::Gpu(g) => Some(*total_gbps),
                    _ => None,
                })
                .unwrap()
        };
        rates.push((s.now_s(), from(0), from(1)));
    }
    (rates, s)
}

/// Every GPU of an HGX H100 writing to every other at once: each GPU's NVSwitch ports (18 ×
/// 25 GB/s, 90% usable) are shared by its seven outgoing copies.
#[test]
fn stress_shares_each_gpus_nvlink_ports_among_its_copies() {
    let mut s = simulation("hgx-h100");
    let pairs: Vec<Pair> = (0..8)
        .flat_map(|a| (0..8).filter(move |&b| b != a).map(move |b| gpus(a, b)))
        .collect();
    let events = run(&mut s, vec![stress(pairs, Op::Write, Engine::Ce)]);
    let totals: Vec<f64> = events
        .iter()
        .filter_map(|e| match e {
            Event::Result { total_gbps, .. } => Some(*total_gbps),
            _ => None,
        })
        .collect();
    assert_eq!(totals.len(), 56);
    let fair = 450.0 * USABLE_SHARE / 7.0;
    for t in &totals {
        assert!(
            (t / fair - 1.0).abs() < 0.03,
            "{t} GB/s against a fair share of {fair}"
        );
    }
    // Alone, one copy reaches far more than its share under stress.
    let alone = total(&run(
        &mut s,
        vec![measure(vec![gpus(0, 1)], Op::Write, Engine::Ce)],
    ));
    assert!(alone > 5.0 * fair);
}

/// The top card of `3090-bridge` (GPU0, intake blocked) crosses its 93 °C slowdown point
/// within 120 simulated seconds of stress; its clocks drop with the thermal reason set and its
/// SM copy rate falls, while GPU1 stays cool and keeps its rate.
#[test]
fn the_card_under_the_bridge_throttles_within_two_minutes_and_its_sm_copies_slow() {
    let (rates, mut s) = stress_3090_bridge(sim::load("3090-bridge").unwrap(), 120.0);
    s.telemetry(); // rates are over the interval from one frame to the next
    run(
        &mut s,
        vec![stress(vec![gpus(0, 1), gpus(1, 0)], Op::Write, Engine::Sm)],
    );
    let t = s.telemetry();
    let (hot, cool) = (&t.gpus[0], &t.gpus[1]);
    assert!(hot.temp_c.unwrap() >= 90.0, "GPU0 at {:?} °C", hot.temp_c);
    assert!(hot.throttle.unwrap().0 & ThrottleReasons::SW_THERMAL != 0);
    assert!(hot.sm_clock_mhz.unwrap() < hot.sm_clock_max_mhz.unwrap());
    assert!(cool.temp_c.unwrap() < 85.0, "GPU1 at {:?} °C", cool.temp_c);
    assert!(!cool.throttle.unwrap().is_throttling());
    let (_, first0, first1) = rates[0];
    let (_, last0, last1) = *rates.last().unwrap();
    assert!(
        last0 < 0.9 * first0,
        "GPU0's SM copies went from {first0} to {last0} GB/s"
    );
    assert!(
        (last1 / first1 - 1.0).abs() < 0.03,
        "GPU1's went from {first1} to {last1}"
    );
    // The NVLink counters saw the bytes: both directions busy over the last interval.
    let (tx, rx) = hot.nvlink_totals();
    assert!(
        tx.unwrap() > 10.0 && rx.unwrap() > 10.0,
        "NVLink tx {tx:?} rx {rx:?}"
    );
    assert!(hot.power_w.unwrap() > 200.0);
}

fn with_faults(preset: &str, faults: &str) -> sim::machine::Machine {
    let dir = std::env::temp_dir().join(format!("p2ptop-sim-{}-{preset}.toml", std::process::id()));
    let file = format!(
        "name = \"{preset}-faulty\"\nsummary = \"{preset} with faults\"\npreset = \"{preset}\"\n{faults}"
    );
    std::fs::write(&dir, file).unwrap();
    let machine = sim::load(dir.to_str().unwrap());
    std::fs::remove_file(&dir).unwrap();
    machine.unwrap()
}

fn rate(machine: &sim::machine::Machine, p: Pair, op: Op, engine: Engine) -> f64 {
    total(&run(
        &mut Simulation::new(machine.clone(), 1),
        vec![measure(vec![p], op, engine)],
    ))
}

#[test]
fn a_pcie_link_trained_down_shows_in_the_topology_and_slows_the_host_path() {
    let faulty = with_faults(
        "h100-single",
        "[[faults]]\nkind = \"pcie_downgraded\"\ngpu = 0\ngeneration = 4\nwidth = 8\n",
    );
    let pcie = faulty.topology().gpus[0].pcie;
    assert_eq!(
        (pcie.gen_now, pcie.width_now, pcie.gen_max, pcie.width_max),
        (Some(4), Some(8), Some(5), Some(16))
    );
    let healthy = sim::load("h100-single").unwrap();
    let h2d = pair(Node::Host, Node::Gpu(0));
    let ratio =
        rate(&faulty, h2d, Op::Read, Engine::Ce) / rate(&healthy, h2d, Op::Read, Engine::Ce);
    assert!(
        (ratio - 0.25).abs() < 0.02,
        "4.0 x8 against 5.0 x16 gave {ratio}"
    );
    let t = Simulation::new(faulty, 1).telemetry();
    assert_eq!(
        (t.gpus[0].pcie_gen, t.gpus[0].pcie_width),
        (Some(4), Some(8))
    );
}

#[test]
fn an_nvlink_down_leaves_fewer_links_and_less_bandwidth() {
    let faulty = with_faults(
        "3090-bridge",
        "[[faults]]\nkind = \"nvlink_down\"\ngpu = 1\nlink = 2\n",
    );
    let topo = faulty.topology();
    assert_eq!(topo.link(0, 1), Some(LinkType::NvLink(3)));
    assert!(!topo.gpus[1].nvlinks[2].active);
    assert_eq!(
        topo.pair(0, 1).unwrap().line_rate.as_ref().unwrap().gbps,
        3.0 * 14.0625
    );
    let healthy = sim::load("3090-bridge").unwrap();
    let ratio = rate(&faulty, gpus(0, 1), Op::Write, Engine::Ce)
        / rate(&healthy, gpus(0, 1), Op::Write, Engine::Ce);
    assert!((ratio - 0.75).abs() < 0.02, "3 of 4 links gave {ratio}");
}

#[test]
fn a_corrupting_pair_fails_verification_and_the_others_pass() {
    let faulty = with_faults(
        "hgx-h100",
        "[[faults]]\nkind = \"corrupt\"\nsrc = \"2\"\ndst = \"3\"\n",
    );
    let mut s = Simulation::new(faulty, 1);
    let events = run(
        &mut s,
        vec![measure(vec![gpus(2, 3), gpus(3, 2)], Op::Write, Engine::Sm)],
    );
    let results: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Result {
                pair, verification, ..
            } => Some((*pair, *verification)),
            _ => None,
        })
        .collect();
    assert_eq!(results.len(), 2);
    assert!(!results[0].1.passed() && results[0].1.first_bad_offset.is_some());
    assert!(results[1].1.passed());
}

#[test]
fn a_hanging_pair_is_reported_hung_and_ends_the_probe_like_the_real_one() {
    let faulty = with_faults(
        "dgx-a100",
        "[[faults]]\nkind = \"hang\"\nsrc = \"0\"\ndst = \"5\"\n",
    );
    let mut s = Simulation::new(faulty, 1);
    let events = run(
        &mut s,
        vec![measure(
            vec![gpus(0, 1), gpus(0, 5), gpus(0, 2)],
            Op::Write,
            Engine::Ce,
        )],
    );
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            Event::Result { .. } => "result",
            Event::PairError {
                kind: FailureKind::Hung,
                ..
            } => "hung",
            Event::Fatal { .. } => "fatal",
            Event::Sample { .. } => "sample",
            _ => "other",
        })
        .filter(|k| *k != "sample")
        .collect();
    assert_eq!(kinds, ["result", "hung", "fatal"]);
    assert!(s.now_s() >= 10.0, "the hang took no time");
}

#[test]
fn a_failed_fan_runs_hotter_and_reads_zero() {
    let faulty = with_faults("4090x4", "[[faults]]\nkind = \"fan_failed\"\ngpu = 2\n");
    let mut s = Simulation::new(faulty, 1);
    while s.now_s() < 120.0 {
        run(
            &mut s,
            vec![measure(vec![gpus(2, 2), gpus(3, 3)], Op::Read, Engine::Sm)],
        );
    }
    let t = s.telemetry();
    assert_eq!(t.gpus[2].fan_percent, Some(0));
    assert!(t.gpus[3].fan_percent.unwrap() > 30);
    assert!(t.gpus[2].temp_c.unwrap() > t.gpus[3].temp_c.unwrap() + 10.0);
}

#[test]
fn a_power_cap_holds_power_sets_the_reason_and_slows_sm_copies() {
    let faulty = with_faults(
        "hgx-h100",
        "[[faults]]\nkind = \"power_cap\"\ngpu = 0\nwatts = 150.0\n",
    );
    let mut s = Simulation::new(faulty.clone(), 1);
    run(
        &mut s,
        vec![measure(vec![gpus(0, 1)], Op::Write, Engine::Sm)],
    );
    let t = s.telemetry();
    assert!(t.gpus[0].power_w.unwrap() <= 150.0);
    assert_eq!(t.gpus[0].power_limit_w, Some(150.0));
    assert!(t.gpus[0].throttle.unwrap().0 & ThrottleReasons::SW_POWER_CAP != 0);
    let healthy = sim::load("hgx-h100").unwrap();
    assert!(
        rate(&faulty, gpus(0, 1), Op::Write, Engine::Sm)
            < 0.9 * rate(&healthy, gpus(0, 1), Op::Write, Engine::Sm)
    );
}

#[test]
fn the_same_seed_gives_the_same_run_and_another_seed_another() {
    let events = |seed| {
        let mut s = Simulation::new(sim::load("dgx-a100").unwrap(), seed);
        let mut all = run(
            &mut s,
            vec![measure(vec![gpus(0, 1), gpus(2, 6)], Op::Bidir, Engine::Ce)],
        );
        all.push(Event::BadCommand {
            message: format!("{:?}", s.telemetry()),
        });
        all
    };
    assert_eq!(events(5), events(5));
    assert_ne!(events(5), events(6));
}

#[test]
fn machine_files_with_mistakes_say_what_and_where() {
    let write = |name: &str, text: &str| {
        let path = std::env::temp_dir().join(format!("p2ptop-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        let err = sim::load(path.to_str().unwrap()).err().unwrap();
        std::fs::remove_file(&path).unwrap();
        err
    };
    let typo = write(
        "typo.toml",
        "name = \"x\"\nsummary = \"y\"\npreset = \"hgx-h100\"\n[[faults]]\nkind = \"hang\"\nsrc = \"0\"\ndts = \"1\"\n",
    );
    assert!(typo.contains("typo.toml") && typo.contains("dts"), "{typo}");
    let no_gpu = write(
        "gpu.toml",
        "name = \"x\"\nsummary = \"y\"\npreset = \"hgx-h100\"\n[[faults]]\nkind = \"fan_failed\"\ngpu = 8\n",
    );
    assert!(
        no_gpu.contains("no GPU8") && no_gpu.contains("8 GPU(s)"),
        "{no_gpu}"
    );
    let unknown = sim::load("dgx-h100").err().unwrap();
    assert!(
        unknown.contains("neither a preset nor a file") && unknown.contains("--sim list"),
        "{unknown}"
    );
    let json = write(
        "m.json",
        r#"{"name": "x", "summary": "y", "preset": "nope"}"#,
    );
    assert!(json.contains("preset \"nope\" does not exist"), "{json}");
}
