//! The real binary in a real terminal: tmux runs `p2ptop --sim 3090-bridge`, keys go in with
//! send-keys, the screen comes back with capture-pane; signals and a terminal that goes away
//! end it as they should. Without tmux the tests fail unless `P2PTOP_ALLOW_SKIP` lists tmux
//! (see `tests/skip`).

mod skip;

use std::process::Command;
use std::time::{Duration, Instant};

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux").args(args).output().expect("tmux runs");
    assert!(
        out.status.success(),
        "tmux {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether tmux is here to drive the live view; without it the test fails unless
/// `P2PTOP_ALLOW_SKIP` lists tmux (see `tests/skip`).
fn have_tmux() -> bool {
    skip::have("tmux", "tmux", "apt-get install tmux (.ci/run installs it)")
}

/// A tmux session running `sh`, killed when dropped.
struct Pane {
    name: String,
}

impl Pane {
    fn open(tag: &str) -> Pane {
        let pane = Pane::running(tag, "sh");
        pane.keys(&["PS1='sh$ '", "Enter"]);
        pane
    }

    /// A session whose own command is `command`: ending the session hangs its terminal up.
    fn running(tag: &str, command: &str) -> Pane {
        let name = format!("p2ptop-test-{tag}-{}", std::process::id());
        tmux(&[
            "new-session",
            "-d",
            "-s",
            &name,
            "-x",
            "120",
            "-y",
            "40",
            command,
        ]);
        Pane { name }
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.name];
        args.extend_from_slice(keys);
        tmux(&args);
    }

    fn screen(&self) -> String {
        tmux(&["capture-pane", "-p", "-t", &self.name])
    }

    /// Waits up to 15 s for `text` on screen.
    fn wait_for(&self, text: &str) -> String {
        self.wait_for_up_to(text, 15)
    }

    fn alternate_screen(&self) -> bool {
        tmux(&["display-message", "-p", "-t", &self.name, "#{alternate_on}"]).trim() == "1"
    }

    fn shell_pid(&self) -> u32 {
        tmux(&["display-message", "-p", "-t", &self.name, "#{pane_pid}"])
            .trim()
            .parse()
            .expect("a pid")
    }

    fn start_live_view(&self) {
        let command = format!(
            "{} --sim 3090-bridge; echo exit=$?",
            env!("CARGO_BIN_EXE_p2ptop")
        );
        self.keys(&[&command, "Enter"]);
        self.wait_for("SIMULATED: 3090-bridge");
        assert!(self.alternate_screen());
    }

    /// The terminal is back to the shell: no alternate screen, and typed commands echo and run.
    fn assert_restored(&self, exit: &str) {
        self.wait_for(exit);
        assert!(!self.alternate_screen(), "still on the alternate screen");
        self.keys(&["echo back-$((6*7))", "Enter"]);
        self.wait_for("back-42");
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .output();
    }
}

#[test]
fn keys_drive_the_live_view_and_quit_restores_the_terminal() {
    if !have_tmux() {
        return;
    }
    let pane = Pane::open("keys");
    pane.start_live_view();
    pane.wait_for("read GB/s");
    pane.keys(&["w"]);
    pane.wait_for("write GB/s · src → dst · sm");
    pane.keys(&["m"]);
    pane.wait_for("mode stress");
    pane.wait_for("bidir GB/s");
    pane.keys(&["m", "Down", "Right"]);
    pane.wait_for("mode sweep");
    let screen = pane.wait_for("GPU1 → host · write · sm");
    assert!(screen.contains("link types (nvidia-smi topo -m)"));
    pane.keys(&["q"]);
    pane.assert_restored("exit=0");
}

/// The process `p2ptop` whose parent is `parent`, found through /proc.
fn child_named(parent: u32, name: &str) -> Option<i32> {
    std::fs::read_dir("/proc").ok()?.find_map(|entry| {
        let pid: i32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // pid (comm) state ppid …; comm may hold spaces, so split after the last ')'.
        let (head, tail) = stat.rsplit_once(')')?;
        let comm = head.split_once('(')?.1;
        let ppid: u32 = tail.split_whitespace().nth(1)?.parse().ok()?;
        (comm == name && ppid == parent).then_some(pid)
    })
}

#[test]
fn sigterm_sigint_and_sigquit_end_the_live_view_with_130_and_restore_the_terminal() {
    if !have_tmux() {
        return;
    }
    for (signal, name) in [
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGQUIT, "SIGQUIT"),
    ] {
        let pane = Pane::open(&name.to_lowercase());
        pane.start_live_view();
        let pid = child_named(pane.shell_pid(), "p2ptop").expect("p2ptop runs under the shell");
        // SAFETY: kill(2) with a pid and a signal number has no memory effects.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
        pane.assert_restored("exit=130");
        let screen = pane.screen();
        assert!(
            screen.contains(&format!("stopped by {name}")),
            "{name}:\n{screen}"
        );
    }
}

/// Whether process `pid` has ended (gone, or a zombie waiting for its parent).
fn ended(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, t)| t.trim_start().starts_with('Z'))
    })
}

/// Starts `command` as a tmux session's own command (p2ptop, or a program that runs it), kills
/// the session (which hangs its terminal up) and asserts that p2ptop ends within 3 s.
fn assert_ends_with_its_terminal(tag: &str, command: &str) {
    let pane = Pane::running(tag, command);
    pane.wait_for("SIMULATED: 3090-bridge");
    let top: u32 = tmux(&["display-message", "-p", "-t", &pane.name, "#{pane_pid}"])
        .trim()
        .parse()
        .expect("a pid");
    let comm = std::fs::read_to_string(format!("/proc/{top}/comm")).unwrap_or_default();
    let pid = match comm.trim() {
        "p2ptop" => top,
        _ => child_named(top, "p2ptop").expect("p2ptop runs under the session's command") as u32,
    };
    tmux(&["kill-session", "-t", &pane.name]);
    let deadline = Instant::now() + Duration::from_secs(3);
    while !ended(pid) {
        if Instant::now() > deadline {
            // SAFETY: kill(2) with a pid and a signal number has no memory effects.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("{tag}: p2ptop outlived its terminal by 3 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn closing_the_terminal_ends_the_live_view_at_once() {
    if !have_tmux() {
        return;
    }
    let p2ptop = env!("CARGO_BIN_EXE_p2ptop");
    // As a login shell's child is over SSH: the hang-up comes with SIGHUP.
    assert_ends_with_its_terminal("hangup", &format!("{p2ptop} --sim 3090-bridge"));
    // In a session of its own, no SIGHUP reaches it: only the terminal's state tells, even
    // when no frame is due for a minute (a draw would fail on the gone terminal too).
    assert_ends_with_its_terminal(
        "hangup-nosighup",
        &format!("setsid --wait {p2ptop} --sim 3090-bridge --refresh-ms 60000"),
    );
}

#[test]
fn a_hang_leaves_its_pair_out_and_the_live_view_measures_on() {
    if !have_tmux() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("p2ptop-tmux-hang-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("make a directory");
    let file = dir.join("hang.toml");
    std::fs::write(
        &file,
        "name = \"hang\"\npreset = \"3090-bridge\"\n\
         [[faults]]\nkind = \"hang\"\nsrc = \"0\"\ndst = \"host\"\n",
    )
    .expect("write the machine file");
    let pane = Pane::open("hang");
    let command = format!(
        "{} --sim {}; echo exit=$?",
        env!("CARGO_BIN_EXE_p2ptop"),
        file.display()
    );
    pane.keys(&[&command, "Enter"]);
    // GPU0 → host hangs; every pair after it in the sweep (GPU1's row, then the host's) is
    // still measured.
    let deadline = Instant::now() + Duration::from_secs(60);
    let screen = loop {
        let screen = pane.screen();
        let row = |node: &str| {
            screen
                .lines()
                .find(|l| l.trim_start_matches('│').starts_with(node))
                .unwrap_or("")
                .to_owned()
        };
        if row("GPU0 ").contains("HUNG")
            && row("host ")
                .split_whitespace()
                .filter(|t| t.parse::<f64>().is_ok())
                .count()
                >= 2
        {
            break screen;
        }
        assert!(
            Instant::now() < deadline,
            "measuring stopped after the hang:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        screen.contains("restarting it without that pair"),
        "{screen}"
    );
    pane.keys(&["q"]);
    pane.assert_restored("exit=0");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_machine_that_cannot_be_opened_is_said_once_the_terminal_is_back() {
    if !have_tmux() {
        return;
    }
    let pane = Pane::open("missing-probe");
    let command = format!(
        "{} --probe /nonexistent/p2ptop-probe; echo exit=$?",
        env!("CARGO_BIN_EXE_p2ptop")
    );
    pane.keys(&[&command, "Enter"]);
    pane.assert_restored("exit=3");
    let screen = pane.screen();
    assert!(
        screen.contains("/nonexistent/p2ptop-probe is missing"),
        "{screen}"
    );
}

#[test]
fn the_live_view_without_a_terminal_says_it_needs_one() {
    let out = Command::new(env!("CARGO_BIN_EXE_p2ptop"))
        .args(["--sim", "3090-bridge"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run p2ptop");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("needs a terminal") && stderr.contains("p2ptop run"),
        "{stderr}"
    );
}

/// `3090-bridge` under stress, its simulated time run 4× faster (P2PTOP_SIM_SPEED) so that the
/// minute GPU0 needs to reach its slowdown point takes about fifteen real seconds: GPU0, under the bridge, heats to its slowdown point,
/// the problems line names its throttling, and the snapshot's history CSV shows the
/// temperature rising to it while the clock falls.
#[test]
fn stress_on_the_bridge_shows_gpu0_heating_and_throttling_in_the_history() {
    if !have_tmux() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("p2ptop-tmux-history-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a snapshot directory");
    let pane = Pane::open("history");
    let command = format!(
        "cd {} && P2PTOP_SIM_SPEED=4 {} --sim 3090-bridge; echo exit=$?",
        dir.display(),
        env!("CARGO_BIN_EXE_p2ptop")
    );
    pane.keys(&[&command, "Enter"]);
    pane.wait_for("SIMULATED: 3090-bridge at 4× time");
    pane.keys(&["m"]);
    pane.wait_for("mode stress");
    // About 64 simulated seconds of stress: some 16 real ones.
    let screen = pane.wait_for_up_to("GPU0 throttling: sw-thermal", 40);
    let problems = screen
        .lines()
        .find(|l| l.contains("problem"))
        .expect("a problems line");
    assert!(
        problems.contains("GPU0 throttling: sw-thermal at 9"),
        "{problems}"
    );
    // The temperature chart marks its 93 °C slowdown point.
    assert!(screen.contains("temp °C • 93"), "{screen}");
    pane.keys(&["s"]);
    pane.wait_for("snapshot written to");
    pane.keys(&["q"]);
    pane.assert_restored("exit=0");
    let csv = std::fs::read_dir(&dir)
        .expect("the snapshot directory")
        .map(|e| e.expect("an entry").path())
        .find(|p| p.to_string_lossy().ends_with("-history.csv"))
        .expect("a history CSV beside the snapshot");
    let text = std::fs::read_to_string(&csv).expect("the CSV");
    // t_s,gpu,temp_c,sm_clock_mhz,…,throttling
    let gpu0: Vec<(f64, f64, f64, bool)> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f[1] == "0")
        .map(|f| {
            (
                f[0].parse().expect("a time"),
                f[2].parse().expect("a temperature"),
                f[3].parse().expect("a clock"),
                f[9] == "true",
            )
        })
        .collect();
    let first = gpu0.first().expect("GPU0 rows");
    let hottest = gpu0.iter().map(|r| r.1).fold(0.0, f64::max);
    assert!(first.1 < 60.0, "GPU0 started cool: {first:?}");
    // The slowdown point is 93 °C; the frame that sets the reason may read a tenth below it.
    assert!(
        hottest >= 92.5,
        "GPU0 reached its slowdown point: {hottest}"
    );
    assert!(
        gpu0.iter().any(|r| r.3),
        "the history marks GPU0 throttling"
    );
    let first_throttled = gpu0.iter().position(|r| r.3).expect("a throttled row");
    let before = gpu0[..first_throttled]
        .iter()
        .map(|r| r.2)
        .fold(0.0, f64::max);
    let throttled = gpu0[first_throttled..]
        .iter()
        .filter(|r| r.3)
        .map(|r| r.2)
        .fold(f64::MAX, f64::min);
    assert!(throttled < before, "GPU0's clock fell: {gpu0:?}");
    assert!(
        gpu0.last().expect("rows").0 > 60.0,
        "over a simulated minute"
    );
    std::fs::remove_dir_all(&dir).expect("clean up");
}

impl Pane {
    /// Waits up to `seconds` for `text` on screen.
    fn wait_for_up_to(&self, text: &str, seconds: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "{text:?} never appeared in {seconds} s:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
