//! The supervisor against misbehaving fake probes: hangs, crashes and garbage never stop the
//! measurements; the bad pair is reported and left out; the probe restarts.

use p2ptop::app::feed::Feed;
use p2ptop::probe::launch::StartError;
use p2ptop::probe::protocol::{Command, Engine, Event, FailureKind, Node, Op, Pair, Settings};
use p2ptop::probe::supervisor;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// What the fake probes greet with: this protocol's hello with no GPUs.
fn hello() -> String {
    Event::Hello {
        protocol: p2ptop::probe::protocol::PROTOCOL_VERSION,
        cuda_driver_version: "12.4".into(),
        devices: vec![],
        peers: vec![],
    }
    .to_line()
}

/// A fake probe: greets, then for each command line runs `on_command` (bash, with the line in
/// `$line` and its id in `$id`).
fn fake(name: &str, on_command: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("p2ptop-fake-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let script = format!(
        "#!/bin/bash\necho '{}'\nwhile read -r line; do\n  id=$(echo \"$line\" | sed -E 's/.*\"id\":([0-9]+).*/\\1/')\n  {on_command}\ndone\n",
        hello()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn measure(id: u64, pairs: &[(u32, u32)]) -> Command {
    Command::Measure {
        id,
        pairs: pairs
            .iter()
            .map(|&(s, d)| Pair {
                src: Node::Gpu(s),
                dst: Node::Gpu(d),
            })
            .collect(),
        ops: vec![Op::Write],
        engines: vec![Engine::Ce],
        // A short deadline keeps the hang test short: 200 ms + the supervisor's 5 s grace.
        settings: Settings {
            min_sample_ms: 10.0,
            sample_timeout_ms: 200,
            ..Settings::default()
        },
    }
}

/// Collects feeds until `done` commands have finished (or 30 s pass).
fn collect(feed: &Receiver<Feed>, done: usize) -> Vec<Feed> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let mut finished = 0;
    while finished < done && Instant::now() < deadline {
        if let Ok(f) = feed.recv_timeout(Duration::from_millis(200)) {
            if matches!(f, Feed::Probe(Event::Done { .. })) {
                finished += 1;
            }
            seen.push(f);
        }
    }
    assert_eq!(
        finished, done,
        "only {finished} of {done} commands finished: {seen:?}"
    );
    seen
}

fn errors(feeds: &[Feed]) -> Vec<(u32, FailureKind)> {
    feeds
        .iter()
        .filter_map(|f| match f {
            Feed::Probe(Event::PairError {
                pair: Pair {
                    src: Node::Gpu(s), ..
                },
                kind,
                ..
            }) => Some((*s, *kind)),
            _ => None,
        })
        .collect()
}

fn dones(feeds: &[Feed]) -> Vec<(u64, bool)> {
    feeds
        .iter()
        .filter_map(|f| match f {
            Feed::Probe(Event::Done { id, complete }) => Some((*id, *complete)),
            _ => None,
        })
        .collect()
}

/// Answers every pair at once, except pairs from GPU1, where it runs `bad`.
fn fake_failing_on_gpu1(name: &str, bad: &str) -> PathBuf {
    fake(
        name,
        &format!(
            "if [[ \"$line\" == *'\"src\":1'* ]]; then {bad}; fi\n  echo \"{{\\\"event\\\":\\\"done\\\",\\\"id\\\":$id,\\\"complete\\\":true}}\""
        ),
    )
}

#[test]
fn a_silent_probe_is_killed_its_pair_marked_hung_and_the_rest_measured() {
    let probe = fake_failing_on_gpu1("hang", "exec sleep 600");
    let (tx, feed) = mpsc::channel();
    let (sup, _) = supervisor::start(&probe, None, tx).unwrap();
    sup.send(measure(1, &[(0, 1), (1, 0), (2, 0)]));
    sup.send(measure(2, &[(1, 0), (0, 2)]));
    let feeds = collect(&feed, 2);
    assert_eq!(
        errors(&feeds),
        [(1, FailureKind::Hung), (1, FailureKind::Skipped)]
    );
    assert_eq!(dones(&feeds), [(1, false), (2, true)]);
    assert!(feeds.iter().any(
        |f| matches!(f, Feed::ProbeTrouble(m) if m.contains("killed") && m.contains("restarting"))
    ));
}

#[test]
fn a_crashing_probe_is_reported_with_its_last_errors_and_restarted() {
    let probe = fake_failing_on_gpu1("crash", "echo 'segfault in the driver' >&2; kill -SEGV $$");
    let (tx, feed) = mpsc::channel();
    let (sup, _) = supervisor::start(&probe, None, tx).unwrap();
    sup.send(measure(1, &[(1, 0), (0, 1)]));
    let feeds = collect(&feed, 1);
    assert_eq!(errors(&feeds), [(1, FailureKind::Crashed)]);
    let message = feeds
        .iter()
        .find_map(|f| match f {
            Feed::Probe(Event::PairError { message, .. }) => Some(message.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        message.contains("SIGSEGV") && message.contains("segfault in the driver"),
        "{message}"
    );
    assert_eq!(dones(&feeds), [(1, false)]);
    // The restarted probe measures the next command.
    sup.send(measure(2, &[(0, 2)]));
    assert_eq!(dones(&collect(&feed, 1)), [(2, true)]);
}

#[test]
fn garbage_from_the_probe_is_reported_and_measuring_goes_on() {
    let probe = fake_failing_on_gpu1(
        "garbage",
        "echo 'Segmentation fault (core dumped) {not json'",
    );
    let (tx, feed) = mpsc::channel();
    let (sup, _) = supervisor::start(&probe, None, tx).unwrap();
    sup.send(measure(1, &[(1, 0), (0, 1)]));
    let feeds = collect(&feed, 1);
    assert!(feeds.iter().any(|f| matches!(f, Feed::ProbeTrouble(m) if m.contains("not an event") && m.contains("core dumped"))));
    assert_eq!(dones(&feeds), [(1, true)]);
}

#[test]
fn a_probe_that_cannot_greet_is_a_start_error() {
    let probe = fake("mute", "true");
    std::fs::write(
        &probe,
        "#!/bin/bash\necho 'libcuda.so.1: cannot open shared object file' >&2\nexit 127\n",
    )
    .unwrap();
    let (tx, _feed) = mpsc::channel();
    let err = supervisor::start(&probe, None, tx).err().unwrap();
    assert!(matches!(err, StartError::NoDriver(_)), "{err:?}");
    let missing = supervisor::start(
        &PathBuf::from("/nonexistent/p2ptop-probe"),
        None,
        mpsc::channel().0,
    )
    .err()
    .unwrap();
    assert!(matches!(missing, StartError::Missing(_)));
}

#[test]
fn stop_drops_the_queue_and_finishes_every_command() {
    let probe = fake(
        "slow",
        "sleep 0.3; echo \"{\\\"event\\\":\\\"done\\\",\\\"id\\\":$id,\\\"complete\\\":true}\"",
    );
    let (tx, feed) = mpsc::channel();
    let (sup, _) = supervisor::start(&probe, None, tx).unwrap();
    sup.send(measure(1, &[(0, 1), (0, 2), (0, 3)]));
    sup.send(measure(2, &[(1, 2)]));
    std::thread::sleep(Duration::from_millis(100));
    sup.send(Command::Stop);
    let feeds = collect(&feed, 2);
    assert_eq!(dones(&feeds), [(2, false), (1, false)]);
}

/// The parent process of `the_probe_dies_with_p2ptop_even_on_kill_9`: starts a probe that writes
/// its pid and sleeps, then waits to be killed.
#[test]
#[ignore = "the parent process of the orphan test, started by it"]
fn orphan_parent() {
    let pid_file = std::env::var("P2PTOP_ORPHAN_PID_FILE").expect("run by the orphan test");
    let probe = fake("orphan", "true");
    std::fs::write(
        &probe,
        format!(
            "#!/bin/bash\necho $$ > {pid_file}.tmp && mv {pid_file}.tmp {pid_file}\necho '{}'\nexec sleep 600\n",
            hello()
        ),
    )
    .unwrap();
    let (tx, _feed) = mpsc::channel();
    let (_supervisor, _) = supervisor::start(&probe, None, tx).unwrap();
    std::thread::sleep(Duration::from_secs(600));
}

/// Whether `pid` is a live process (a zombie waiting for its reaper counts as gone).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

#[test]
fn the_probe_dies_with_p2ptop_even_on_kill_9() {
    let pid_file = std::env::temp_dir().join(format!("p2ptop-orphan-{}.pid", std::process::id()));
    let _ = std::fs::remove_file(&pid_file);
    let mut parent = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["orphan_parent", "--exact", "--ignored", "--quiet"])
        .env("P2PTOP_ORPHAN_PID_FILE", &pid_file)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let pid: i32 = loop {
        if let Ok(text) = std::fs::read_to_string(&pid_file) {
            break text.trim().parse().unwrap();
        }
        assert!(Instant::now() < deadline, "the probe never started");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(alive(pid), "the probe is not running");
    parent.kill().unwrap(); // SIGKILL: no destructor, no cleanup in the parent runs
    parent.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        assert!(Instant::now() < deadline, "probe {pid} outlived its parent");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(&pid_file);
}
