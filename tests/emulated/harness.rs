//! Running the real binaries on an emulated machine: the emulated `libcuda.so.1` and
//! `libnvidia-ml.so.1` (tests/emu) first on the loader's path, a machine named in `P2PTOP_EMU`,
//! and a state file and misuse log of the test's own.

use p2ptop::probe::protocol::Event;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

pub const P2PTOP: &str = env!("CARGO_BIN_EXE_p2ptop");
pub const PROBE: &str = env!("CARGO_BIN_EXE_p2ptop-probe");

/// A check small enough for the emulated drivers: JSON, 1 MiB buffers, two samples.
pub const SMALL_CHECK: [&str; 7] = [
    "check",
    "--format",
    "json",
    "--buffer-mib",
    "1",
    "--samples",
    "2",
];

/// Set in a test run again by [`Emu::run_child`].
const CHILD_VAR: &str = "P2PTOP_EMU_TEST_CHILD";
/// What starts a line a child prints for its parent.
const CHILD_MARK: &str = "child-output: ";

/// Whether this process is a test run again by [`Emu::run_child`].
pub fn in_child() -> bool {
    std::env::var_os(CHILD_VAR).is_some()
}

/// In a child, prints `line` for the parent to read.
pub fn child_output(line: &str) {
    println!("{CHILD_MARK}{line}");
}

/// One emulated machine for one test: its libraries, state and log in a directory of its own.
pub struct Emu {
    dir: PathBuf,
    machine: String,
}

/// Where cargo put an emulated library: beside the test's dependencies (it is one of them), or
/// in the target directory when it was built on its own.
fn built_library(stem: &str) -> PathBuf {
    let target = Path::new(P2PTOP)
        .parent()
        .expect("binaries live in a directory");
    let file = format!("lib{stem}.so");
    [target.join("deps").join(&file), target.join(&file)]
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{file} is not built; run the tests with `cargo test --workspace`")
        })
}

impl Emu {
    /// An emulated `machine`: a preset name or a machine file's path.
    pub fn new(machine: &str) -> Emu {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "p2ptop-emu-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let libs = dir.join("lib");
        std::fs::create_dir_all(&libs).expect("make the test's directory");
        for (stem, name) in [
            ("p2ptop_emu_cuda", "libcuda.so.1"),
            ("p2ptop_emu_nvml", "libnvidia-ml.so.1"),
        ] {
            std::os::unix::fs::symlink(built_library(stem), libs.join(name))
                .expect("link an emulated library");
        }
        Emu {
            dir,
            machine: machine.to_owned(),
        }
    }

    /// An emulated machine described by `toml` (a machine file, e.g. a preset with faults).
    pub fn from_file(toml: &str) -> Emu {
        let mut emu = Emu::new("");
        let file = emu.dir.join("machine.toml");
        std::fs::write(&file, toml).expect("write the machine file");
        emu.machine = file.display().to_string();
        emu
    }

    /// The preset `preset` with `faults` (TOML `[[faults]]` tables) added.
    pub fn with_faults(preset: &str, faults: &str) -> Emu {
        Emu::from_file(&format!(
            "name = \"{preset}-faulty\"\nsummary = \"{preset} with faults\"\npreset = \"{preset}\"\n{faults}"
        ))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `program` with the emulated drivers in place.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("LD_LIBRARY_PATH", self.dir.join("lib"))
            .env("P2PTOP_EMU", &self.machine)
            .env("P2PTOP_EMU_STATE", self.dir.join("state"))
            .env("P2PTOP_EMU_LOG", self.dir.join("log"))
            .env_remove("P2PTOP_PROBE")
            .env_remove("CUDA_VISIBLE_DEVICES");
        command
    }

    /// Runs p2ptop with `args` (no `--sim`).
    pub fn p2ptop(&self, args: &[&str]) -> Output {
        self.command(P2PTOP)
            .args(args)
            .output()
            .expect("run p2ptop")
    }

    /// Feeds the probe `commands` (one JSON line each) and parses every event it prints.
    pub fn probe(&self, commands: &[String]) -> (Vec<Event>, Output) {
        let mut child = self
            .command(PROBE)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the probe");
        let mut stdin = child.stdin.take().expect("piped stdin");
        for command in commands {
            writeln!(stdin, "{command}").expect("write a command");
        }
        drop(stdin);
        let output = child.wait_with_output().expect("wait for the probe");
        let events = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| Event::from_line(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect();
        (events, output)
    }

    /// Runs the test `name` (its path in this crate, e.g. `nvml::a_test`) again in a process of
    /// its own whose loader finds the emulated libraries (the loader reads `LD_LIBRARY_PATH`
    /// once, at start), with `env` added; gives what [`child_output`] printed there. In that
    /// process, [`in_child`] is true and the test prints instead.
    pub fn run_child(&self, name: &str, env: &[(&str, &str)]) -> String {
        let output = self
            .command(
                std::env::current_exe()
                    .expect("the test's path")
                    .to_str()
                    .unwrap(),
            )
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_VAR, name)
            .envs(env.iter().copied())
            .output()
            .expect("run the test again");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "the child test failed: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
            .lines()
            // libtest may print the test's name first, on the same line.
            .filter_map(|l| l.split_once(CHILD_MARK).map(|(_, out)| out))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Everything the emulated libraries logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// Panics with the misuse lines if the libraries logged any.
    pub fn assert_no_misuse(&self) {
        let log = self.log();
        let misuse: Vec<&str> = log.lines().filter(|l| l.contains(" MISUSE ")).collect();
        assert!(
            misuse.is_empty(),
            "the drivers were misused:\n{}",
            misuse.join("\n")
        );
    }
}

impl Drop for Emu {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// p2ptop with `args` on the simulator (`--sim` comes first).
pub fn simulated(machine: &str, args: &[&str]) -> Output {
    Command::new(P2PTOP)
        .args(["--sim", machine])
        .args(args)
        .output()
        .expect("run p2ptop --sim")
}

/// Stdout as JSON, or a panic that shows what the command said.
pub fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {output:?}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The simulator answering `commands` as the probe would (the `--sim` face of the same
/// machine), in this process.
pub fn simulated_probe(machine: &str, commands: &[String]) -> Vec<Event> {
    let machine = p2ptop::sim::load(machine).expect("a preset");
    let mut sim = p2ptop::sim::simulation::Simulation::new(machine, 1);
    let input = std::io::Cursor::new(commands.join("\n"));
    let commands = p2ptop::probe::session::read_commands(std::io::BufReader::new(input));
    let mut events = Vec::new();
    p2ptop::probe::session::run(&mut sim, commands, &mut |e| events.push(e.clone()));
    events
}
