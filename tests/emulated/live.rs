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
    let name = format!("p2ptop-emu-live-{}", std::process::id());
    let lib = emu.dir().join("lib");
    let command = format!(
        "env LD_LIBRARY_PATH={} P2PTOP_EMU=hgx-h100 P2PTOP_EMU_STATE={} P2PTOP_EMU_LOG={} {P2PTOP} --buffer-mib 1",
        lib.display(),
        emu.dir().join("state").display(),
        emu.dir().join("log").display(),
    );
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        &name,
        "-x",
        "160",
        "-y",
        "45",
        &command,
    ]);
    assert!(started.status.success(), "{started:?}");
    let session = Session(name.clone());
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
