//! The live view (no `--sim`) on an emulated HGX H100, in a real terminal: tmux runs p2ptop,
//! keys go in with send-keys, the screen comes back with capture-pane.

#[path = "../skip/mod.rs"]
mod skip;

use crate::harness::{Emu, P2PTOP};
use std::process::Command;
use std::time::{Duration, Instant};

fn tmux(args: &[&str]) -> std::process::Output {
    Command::new("tmux").args(args).output().expect("tmux runs")
}

/// Whether tmux is here to drive the live view; without it the test fails unless
/// `P2PTOP_ALLOW_SKIP` lists tmux (see `tests/skip`).
fn have_tmux() -> bool {
    skip::have("tmux", "tmux", "apt-get install tmux (.ci/run installs it)")
}

/// A tmux session running one command, killed when dropped.
struct Session(String);

impl Session {
    fn screen(&self) -> String {
        String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", &self.0]).stdout).into_owned()
    }

    /// Waits up to 30 s for a screen that `ready` accepts.
    fn wait_until(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "never {what}:\n{screen}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn alive(&self) -> bool {
        tmux(&["has-session", "-t", &self.0]).status.success()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = tmux(&["kill-session", "-t", &self.0]);
    }
}

/// The figures in the matrix's row for `node` (`GPU1`), as the screen shows them.
fn row_figures(screen: &str, node: &str) -> usize {
    screen
        .lines()
        .find(|l| l.trim_start_matches('│').starts_with(&format!("{node} ")))
        .map_or(0, |l| {
            l.split('│')
                .nth(1)
                .unwrap_or("")
                .split_whitespace()
                .skip(1)
                .filter(|t| t.parse::<f64>().is_ok())
                .count()
        })
}

/// The largest NVLink TX figure the GPU panel shows.
fn nvlink_tx(screen: &str) -> f64 {
    screen
        .split("NVLink tx ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        .fold(0.0, f64::max)
}

#[test]
fn the_matrix_fills_and_stress_shows_nvlink_traffic_in_the_gpu_panel() {
    if !have_tmux() {
        return;
    }
    let emu = Emu::new("hgx-h100");
    let session = start_in_session(
        &emu,
        &format!("p2ptop-emu-live-{}", std::process::id()),
        "--buffer-mib 1",
    );
    let name = session.0.clone();
    let screen = session.wait_until("a full matrix", |s| {
        s.contains("EMULATED DRIVERS") && (0..8).all(|g| row_figures(s, &format!("GPU{g}")) == 9)
    });
    assert!(nvlink_tx(&screen) >= 0.0);
    tmux(&["send-keys", "-t", &name, "m"]);
    let screen = session.wait_until("NVLink traffic under stress", |s| {
        s.contains("mode stress") && nvlink_tx(s) > 100.0
    });
    assert!(screen.contains("GB/s"), "{screen}");
    tmux(&["send-keys", "-t", &name, "q"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while session.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!session.alive(), "q must end p2ptop:\n{}", session.screen());
    emu.assert_no_misuse();
}

/// Starts p2ptop on the emulated `emu` as the command of a new tmux session `name` (so killing
/// the session hangs its terminal up), with `args`.
fn start_in_session(emu: &Emu, name: &str, args: &str) -> Session {
    let command = format!(
        "env LD_LIBRARY_PATH={} P2PTOP_EMU=hgx-h100 P2PTOP_EMU_STATE={} P2PTOP_EMU_LOG={} {P2PTOP} {args}",
        emu.dir().join("lib").display(),
        emu.dir().join("state").display(),
        emu.dir().join("log").display(),
    );
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        name,
        "-x",
        "160",
        "-y",
        "45",
        &command,
    ]);
    assert!(started.status.success(), "{started:?}");
    Session(name.to_owned())
}

/// The pid of the process the session runs.
fn pane_pid(session: &Session) -> i32 {
    String::from_utf8_lossy(
        &tmux(&["display-message", "-p", "-t", &session.0, "#{pane_pid}"]).stdout,
    )
    .trim()
    .parse()
    .expect("a pid")
}

/// The pids of `parent`'s children, through /proc.
fn children(parent: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid: i32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == parent).then_some(pid)
        })
        .collect()
}

/// Whether process `pid` has ended (gone, or a zombie waiting for its parent).
fn ended(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, t)| t.trim_start().starts_with('Z'))
    })
}

/// Waits up to `limit` for every process in `pids` to end; kills those left and fails.
fn assert_all_end(pids: &[i32], limit: Duration, what: &str) {
    let deadline = Instant::now() + limit;
    while !pids.iter().all(|&p| ended(p)) {
        if Instant::now() > deadline {
            for &p in pids {
                // SAFETY: kill(2) with a pid and a signal number has no memory effects.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            panic!("{what}: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn closing_the_terminal_ends_p2ptop_and_its_probe_at_once() {
    if !have_tmux() {
        return;
    }
    let emu = Emu::new("hgx-h100");
    let session = start_in_session(
        &emu,
        &format!("p2ptop-emu-hangup-{}", std::process::id()),
        "--buffer-mib 1",
    );
    session.wait_until("a measurement", |s| row_figures(s, "GPU0") > 0);
    let p2ptop = pane_pid(&session);
    let probes = children(p2ptop);
    assert_eq!(probes.len(), 1, "one probe runs under p2ptop");
    tmux(&["kill-session", "-t", &session.0]);
    let mut all = probes.clone();
    all.push(p2ptop);
    assert_all_end(
        &all,
        Duration::from_secs(3),
        "p2ptop and its probe after a hang-up",
    );
}

/// The pids of `parent`'s children, waiting up to 10 s for `count` of them.
fn wait_for_children(parent: i32, count: usize, what: &str) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = children(parent);
        if found.len() == count {
            return found;
        }
        assert!(Instant::now() < deadline, "{what}: {found:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_probe_that_never_greets_leaves_a_screen_that_says_so_and_quits_on_q_or_a_signal() {
    if !have_tmux() {
        return;
    }
    let emu = Emu::new("hgx-h100");
    let silent = emu.dir().join("silent-probe");
    std::fs::write(&silent, "#!/bin/sh\nexec sleep 600\n").expect("write the probe");
    std::fs::set_permissions(&silent, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("make it executable");
    for (how, exit) in [("q", "exit=0"), ("SIGTERM", "exit=130")] {
        let session = start_in_session(
            &emu,
            &format!("p2ptop-emu-silent-{how}-{}", std::process::id()),
            &format!("--probe {}; echo exit=$?; sleep 60", silent.display()),
        );
        session.wait_until("the waiting screen", |s| {
            s.contains("which has 60 s to greet") && s.contains("q quit")
        });
        // The session runs a shell (for the exit code), p2ptop under it, the probe under that.
        let p2ptop = wait_for_children(pane_pid(&session), 1, "p2ptop under the shell")[0];
        let probe = wait_for_children(p2ptop, 1, "the silent probe under p2ptop");
        if how == "q" {
            tmux(&["send-keys", "-t", &session.0, "q"]);
        } else {
            // SAFETY: kill(2) with a pid and a signal number has no memory effects.
            assert_eq!(unsafe { libc::kill(p2ptop, libc::SIGTERM) }, 0);
        }
        let screen = session.wait_until("the shell back", |s| s.contains(exit));
        assert!(!screen.contains("to greet"), "{how}: {screen}");
        assert_all_end(&probe, Duration::from_secs(3), "the silent probe");
    }
}
