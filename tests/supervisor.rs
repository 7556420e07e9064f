//! The supervisor against misbehaving fake probes: hangs, crashes and garbage never stop the
//! measurements; the bad pair is reported and left out; the probe restarts.

use p2ptop::app::feed::Feed;
use p2ptop::probe::launch::StartError;
use p2ptop::probe::protocol::{Command, Engine, Event, FailureKind, Node, Op, Pair, Settings};
use p2ptop::probe::supervisor::{self, Policy};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
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

/// A fresh directory for this test process's fake probes and their marker files.
fn dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("p2ptop-fake-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A fake probe, a POSIX `sh` script (no bash, no sed): greets, then for each command line
/// (stops aside) runs `on_command`, with the line in `$line` and its id in `$id`.
fn fake(name: &str, on_command: &str) -> PathBuf {
    let path = dir().join(name);
    let script = format!(
        "#!/bin/sh\necho '{}'\nwhile read -r line; do\n  case \"$line\" in *'\"cmd\":\"stop\"'*) continue ;; esac\n  id=${{line#*\\\"id\\\":}}; id=${{id%%[!0-9]*}}\n  {on_command}\ndone\n",
        hello()
    );
    write_script(&path, &script);
    path
}

fn write_script(path: &Path, script: &str) {
    std::fs::write(path, script).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The `done` line a fake prints for command `$id`.
const DONE: &str = r#"echo "{\"event\":\"done\",\"id\":$id,\"complete\":true}""#;

/// A patience short enough for tests: silence beyond the deadline 1 s, restarts after 40 ms
/// doubling to at most 160 ms, five restarts in a row before giving up.
const FAST: Policy = Policy {
    grace: Duration::from_secs(1),
    first_backoff: Duration::from_millis(40),
    max_backoff: Duration::from_millis(160),
    max_failed_starts: 5,
};

fn start(probe: &Path) -> (supervisor::Supervisor, Receiver<Feed>) {
    let (tx, feed) = mpsc::channel();
    let (sup, _) = supervisor::start_with_policy(probe, None, tx, FAST).unwrap();
    (sup, feed)
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
        // A short deadline keeps the hang test short: 200 ms + the tests' 1 s grace.
        settings: Settings {
            min_sample_ms: 10.0,
            sample_timeout_ms: 200,
            ..Settings::default()
        },
    }
}

/// Collects feeds until `done` commands have finished (or 30 s pass).
fn collect(feed: &Receiver<Feed>, done: usize) -> Vec<Feed> {
    collect_timed(feed, done)
        .into_iter()
        .map(|(_, f)| f)
        .collect()
}

/// [`collect`], with when each feed arrived.
fn collect_timed(feed: &Receiver<Feed>, done: usize) -> Vec<(Instant, Feed)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let mut finished = 0;
    while finished < done && Instant::now() < deadline {
        if let Ok(f) = feed.recv_timeout(Duration::from_millis(200)) {
            if matches!(f, Feed::Probe(Event::Done { .. })) {
                finished += 1;
            }
            seen.push((Instant::now(), f));
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

fn troubles(feeds: &[Feed]) -> Vec<&str> {
    feeds
        .iter()
        .filter_map(|f| match f {
            Feed::ProbeTrouble(m) => Some(m.as_str()),
            _ => None,
        })
        .collect()
}

/// Answers every pair at once, except pairs from GPU1, where it runs `bad`.
fn fake_failing_on_gpu1(name: &str, bad: &str) -> PathBuf {
    fake(
        name,
        &format!("case \"$line\" in *'\"src\":1'*) {bad} ;; esac\n  {DONE}"),
    )
}

/// Waits (up to 10 s) for `file` to appear.
fn wait_for(file: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !file.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_silent_probe_is_killed_its_pair_marked_hung_and_the_rest_measured() {
    let probe = fake_failing_on_gpu1("hang", "exec sleep 600");
    let (sup, feed) = start(&probe);
    sup.send(measure(1, &[(0, 1), (1, 0), (2, 0)]));
    sup.send(measure(2, &[(1, 0), (0, 2)]));
    let feeds = collect(&feed, 2);
    assert_eq!(
        errors(&feeds),
        [(1, FailureKind::Hung), (1, FailureKind::Skipped)]
    );
    assert_eq!(dones(&feeds), [(1, false), (2, true)]);
    assert!(
        troubles(&feeds)
            .iter()
            .any(|m| m.contains("killed") && m.contains("restarting"))
    );
}

#[test]
fn a_crashing_probe_is_reported_with_its_last_errors_and_restarted() {
    // Its last words go to stderr just before it dies: the supervisor reads stderr to its end
    // before it reports the crash, so they are never lost to a race.
    let probe = fake_failing_on_gpu1(
        "crash",
        "echo 'cuda error 700' >&2; echo 'segfault in the driver' >&2; kill -SEGV $$",
    );
    let (sup, feed) = start(&probe);
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
        message.contains("SIGSEGV") && message.contains("cuda error 700\nsegfault in the driver"),
        "{message}"
    );
    assert_eq!(dones(&feeds), [(1, false)]);
    // The restarted probe measures the next command.
    sup.send(measure(2, &[(0, 2)]));
    assert_eq!(dones(&collect(&feed, 1)), [(2, true)]);
}

#[test]
fn a_crash_report_waits_for_the_end_of_the_probes_stderr() {
    // A process the probe left behind (a crash handler, say) closes stdout and writes the last
    // line to stderr 300 ms after the probe died: the report has it, because the supervisor
    // reads stderr to its end (for up to a second) instead of glancing at it once.
    let probe = fake_failing_on_gpu1(
        "late-words",
        "(exec >&-; sleep 0.3; echo 'core dumped by the handler' >&2) & kill -SEGV $$",
    );
    let (sup, feed) = start(&probe);
    sup.send(measure(1, &[(1, 0)]));
    let feeds = collect(&feed, 1);
    let message = feeds
        .iter()
        .find_map(|f| match f {
            Feed::Probe(Event::PairError { message, .. }) => Some(message.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        message.contains("SIGSEGV") && message.contains("core dumped by the handler"),
        "{message}"
    );
}

#[test]
fn garbage_from_the_probe_is_reported_and_measuring_goes_on() {
    let probe = fake_failing_on_gpu1(
        "garbage",
        "echo 'Segmentation fault (core dumped) {not json'",
    );
    let (sup, feed) = start(&probe);
    sup.send(measure(1, &[(1, 0), (0, 1)]));
    let feeds = collect(&feed, 1);
    assert!(
        troubles(&feeds)
            .iter()
            .any(|m| m.contains("not an event") && m.contains("core dumped"))
    );
    assert_eq!(dones(&feeds), [(1, true)]);
}

#[test]
fn a_probe_that_cannot_greet_is_a_start_error() {
    let probe = dir().join("mute");
    write_script(
        &probe,
        "#!/bin/sh\necho 'libcuda.so.1: cannot open shared object file' >&2\nexit 127\n",
    );
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
    // The fake marks that it has the first pair, then holds it until the next line (the stop
    // the supervisor passes on) and says it completed: the supervisor still reports command 1
    // incomplete, after command 2, which it dropped from its queue at once.
    let got = dir().join("stop-got");
    let marker = dir().join("stop-got-1");
    let _ = std::fs::remove_file(&marker);
    let holding = format!("touch {}-$id; read -r next; {DONE}", got.display());
    let probe = fake("slow", &holding);
    let (sup, feed) = start(&probe);
    sup.send(measure(1, &[(0, 1), (0, 2), (0, 3)]));
    sup.send(measure(2, &[(1, 2)]));
    wait_for(&marker);
    sup.send(Command::Stop);
    let feeds = collect(&feed, 2);
    assert_eq!(dones(&feeds), [(2, false), (1, false)]);
    assert_eq!(errors(&feeds), []);
}

/// A `progress` line for command `$id` announcing a step of `deadline_ms`.
fn progress(deadline_ms: u64) -> String {
    format!(
        r#"echo "{{\"event\":\"progress\",\"id\":$id,\"step\":\"opening GPUs\",\"deadline_ms\":{deadline_ms}}}""#
    )
}

/// A command whose samples may take `sample_timeout_ms`.
fn measure_with_timeout(id: u64, sample_timeout_ms: u64) -> Command {
    let mut command = measure(id, &[(0, 1)]);
    if let Command::Measure { settings, .. } = &mut command {
        settings.sample_timeout_ms = sample_timeout_ms;
    }
    command
}

#[test]
fn a_probe_still_setting_up_is_not_killed_while_it_keeps_to_its_announced_steps() {
    // Sample deadline 200 ms + grace 1 s: silence past 1.2 s kills a probe that announced
    // nothing. This one announces 2 s steps and is silent for 1.8 s between them, for 3.6 s
    // in all, and then finishes.
    let step = progress(2000);
    let probe = fake(
        "setting-up",
        &format!("{step}; sleep 1.8; {step}; sleep 1.8; {DONE}"),
    );
    let (sup, feed) = start(&probe);
    let started = Instant::now();
    sup.send(measure_with_timeout(1, 200));
    let feeds = collect(&feed, 1);
    assert!(started.elapsed() >= Duration::from_millis(3600));
    assert_eq!(dones(&feeds), [(1, true)], "{feeds:?}");
    assert_eq!(errors(&feeds), []);
    assert_eq!(troubles(&feeds), Vec::<&str>::new());
}

#[test]
fn a_probe_silent_past_its_announced_step_is_killed_before_its_sample_deadline() {
    // Samples may take 20 s, but the probe announced a 300 ms step and then said nothing: it
    // is killed once that step and the 1 s grace have passed, not 21 s later.
    let probe = fake(
        "stuck-setting-up",
        &format!("{}; exec sleep 600", progress(300)),
    );
    let (sup, feed) = start(&probe);
    let started = Instant::now();
    sup.send(measure_with_timeout(1, 20_000));
    let feeds = collect(&feed, 1);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1300) && took < Duration::from_secs(10),
        "killed after {took:?}"
    );
    assert_eq!(errors(&feeds), [(0, FailureKind::Hung)]);
    assert_eq!(dones(&feeds), [(1, false)]);
    // The supervisor says so right after it finishes the command.
    let said = feed.recv_timeout(Duration::from_secs(5));
    assert!(
        matches!(&said, Ok(Feed::ProbeTrouble(m)) if m.contains("said nothing") && m.contains("killed")),
        "{said:?}"
    );
}

/// The delays between restarts in a row under [`FAST`]: doubling, then capped.
const BACKOFFS_MS: [u64; 5] = [40, 80, 160, 160, 160];

/// The troubles in `seen` that report a crash, with when each arrived.
fn crash_reports(seen: &[(Instant, Feed)]) -> Vec<Instant> {
    seen.iter()
        .filter_map(|(at, f)| match f {
            Feed::ProbeTrouble(m) if m.contains("exited") => Some(*at),
            _ => None,
        })
        .collect()
}

/// Asserts the supervisor gave up after `FAST.max_failed_starts` restarts, each after its
/// backoff, and finishes later commands at once.
fn gave_up(sup: &supervisor::Supervisor, feed: &Receiver<Feed>, seen: &[(Instant, Feed)]) {
    let feeds: Vec<Feed> = seen.iter().map(|(_, f)| f.clone()).collect();
    let said = troubles(&feeds);
    let gone: Vec<&Feed> = feeds
        .iter()
        .filter(|f| matches!(f, Feed::ProbeGone(_)))
        .collect();
    assert_eq!(
        gone,
        [&Feed::ProbeGone(
            "the probe failed 5 times in a row; measurements stop here".into()
        )],
        "giving up is said once, as the end of the probe: {said:?}"
    );
    let crashes = crash_reports(seen);
    assert_eq!(
        crashes.len(),
        6,
        "the first probe and five restarts: {said:?}"
    );
    for (i, pair) in crashes.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        let backoff = Duration::from_millis(BACKOFFS_MS[i]);
        assert!(
            gap + Duration::from_millis(10) >= backoff,
            "restart {} came {gap:?} after the crash, before its {backoff:?} backoff",
            i + 1
        );
    }
    assert!(crashes[5] - crashes[0] < Duration::from_secs(10));
    // Whatever comes after is finished at once, incomplete.
    let asked = Instant::now();
    sup.send(measure(10, &[(0, 1)]));
    sup.send(Command::Stress {
        id: 11,
        pairs: vec![Pair {
            src: Node::Gpu(0),
            dst: Node::Gpu(1),
        }],
        op: Op::Write,
        engines: vec![Engine::Ce],
        settings: Settings::default(),
    });
    assert_eq!(dones(&collect(feed, 2)), [(10, false), (11, false)]);
    assert!(asked.elapsed() < Duration::from_secs(1));
}

#[test]
fn a_probe_that_crashes_on_every_pair_is_given_up_after_its_restarts_with_backoff() {
    let probe = fake("always-crashes", "kill -SEGV $$");
    let (sup, feed) = start(&probe);
    let started = Instant::now();
    sup.send(measure(1, &[(0, 1), (0, 2), (0, 3), (1, 0)]));
    sup.send(measure(2, &[(1, 2), (1, 3), (2, 0), (2, 1)]));
    sup.send(measure(3, &[(2, 3), (3, 0)]));
    let seen = collect_timed(&feed, 3);
    let feeds: Vec<Feed> = seen.iter().map(|(_, f)| f.clone()).collect();
    assert_eq!(dones(&feeds), [(1, false), (2, false), (3, false)]);
    assert_eq!(
        errors(&feeds),
        [
            (0, FailureKind::Crashed),
            (0, FailureKind::Crashed),
            (0, FailureKind::Crashed),
            (1, FailureKind::Crashed),
            (1, FailureKind::Crashed),
            (1, FailureKind::Crashed),
        ],
        "six pairs crashed a probe; the rest were never sent"
    );
    gave_up(&sup, &feed, &seen);
    let backoffs: u64 = BACKOFFS_MS.iter().sum();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(backoffs) && took < Duration::from_secs(15),
        "{took:?}"
    );
}

#[test]
fn a_probe_that_dies_before_greeting_again_is_given_up_after_its_restarts_with_backoff() {
    // The first start greets and crashes on its first pair; every restart dies at once.
    let first = dir().join("started-once");
    let _ = std::fs::remove_file(&first);
    let probe = dir().join("dies-at-start");
    write_script(
        &probe,
        &format!(
            "#!/bin/sh\n[ -e {first} ] && exit 1\ntouch {first}\necho '{}'\nread -r line\nkill -SEGV $$\n",
            hello(),
            first = first.display()
        ),
    );
    let (sup, feed) = start(&probe);
    sup.send(measure(1, &[(0, 1), (0, 2)]));
    sup.send(measure(2, &[(1, 2)]));
    let seen = collect_timed(&feed, 2);
    let feeds: Vec<Feed> = seen.iter().map(|(_, f)| f.clone()).collect();
    assert_eq!(dones(&feeds), [(1, false), (2, false)]);
    assert_eq!(errors(&feeds), [(0, FailureKind::Crashed)]);
    gave_up(&sup, &feed, &seen);
}

/// The parent process of `the_probe_dies_with_p2ptop_even_on_kill_9`: starts a probe that writes
/// its pid and sleeps, then waits to be killed.
#[test]
#[ignore = "the parent process of the orphan test, started by it"]
fn orphan_parent() {
    let pid_file = std::env::var("P2PTOP_ORPHAN_PID_FILE").expect("run by the orphan test");
    let probe = dir().join("orphan");
    write_script(
        &probe,
        &format!(
            "#!/bin/sh\necho $$ > {pid_file}.tmp && mv {pid_file}.tmp {pid_file}\necho '{}'\nexec sleep 600\n",
            hello()
        ),
    );
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
