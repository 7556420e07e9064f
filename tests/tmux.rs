//! The real binary in a real terminal: tmux runs `p2ptop --sim 3090-bridge`, keys go in with
//! send-keys, the screen comes back with capture-pane. Without tmux the test fails unless
//! `P2PTOP_ALLOW_SKIP` lists tmux (see `tests/skip`).

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
            "sh",
        ]);
        let pane = Pane { name };
        pane.keys(&["PS1='sh$ '", "Enter"]);
        pane
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
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "{text:?} never appeared:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
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
fn sigterm_ends_the_live_view_and_restores_the_terminal() {
    if !have_tmux() {
        return;
    }
    let pane = Pane::open("term");
    pane.start_live_view();
    let pid = child_named(pane.shell_pid(), "p2ptop").expect("p2ptop runs under the shell");
    // SAFETY: kill(2) with a pid and a signal number has no memory effects.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    pane.assert_restored("exit=0");
}
