//! One module per action of the command line; each returns the process's exit code.

pub mod check;
pub mod fleet;
pub mod generated;
pub mod live;
pub mod measure;
pub mod quick;
pub mod run;
pub mod stop;
pub mod topo;

use crate::cli::MachineArgs;
use crate::exit;
use crate::model::topology::Topology;
use crate::probe::launch;
use crate::source::{self, Connection};
use std::io::Write;
use std::time::Duration;

/// A message for the user and the exit code that goes with it.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    /// Prints the message and gives the exit code.
    pub fn report(self) -> u8 {
        note(&format!("p2ptop: {}\n", self.message));
        self.code
    }
}

/// The simulated machine named by `--sim`, when there is one.
fn simulated(
    args: &MachineArgs,
) -> Result<Option<(crate::sim::machine::Machine, String)>, Failure> {
    let Some(name) = &args.sim else {
        return Ok(None);
    };
    let machine = crate::sim::load(name).map_err(|e| Failure::new(exit::USAGE, e))?;
    Ok(Some((machine, name.clone())))
}

/// The machine's topology, from NVML or the simulation, without starting the probe.
pub fn topology(args: &MachineArgs) -> Result<(Topology, Option<String>), Failure> {
    if let Some((machine, name)) = simulated(args)? {
        return Ok((machine.topology(), Some(name)));
    }
    let nvml =
        crate::nvml::real::open().map_err(|e| Failure::new(exit::ENVIRONMENT, e.to_string()))?;
    let root = std::path::Path::new("/");
    let mut topology = crate::nvml::discover::discover(&nvml, crate::host::host_facts(root), &[]);
    crate::host::add_gpu_paths(root, &mut topology);
    Ok((topology, None))
}

/// Opens the machine for measuring: the simulation, or NVML and the probe, with telemetry
/// every `telemetry_interval`. `paced` runs a simulation at the speed of the real machine (for
/// the live view) rather than at once.
pub fn connect(
    args: &MachineArgs,
    paced: bool,
    telemetry_interval: Duration,
) -> Result<Connection, Failure> {
    if let Some((machine, name)) = simulated(args)? {
        let pacing = if paced {
            source::simulated::Pacing::WallClock {
                telemetry: telemetry_interval,
            }
        } else {
            source::simulated::Pacing::Instant
        };
        return Ok(source::simulated::open(machine, &name, args.seed, pacing));
    }
    let probe = args
        .probe
        .clone()
        .unwrap_or_else(launch::default_probe_path);
    source::real::open(&probe, telemetry_interval).map_err(|e| {
        let code = match &e {
            source::real::OpenError::Probe(launch::StartError::Broken(_)) => exit::INTERNAL,
            _ => exit::ENVIRONMENT,
        };
        Failure::new(code, e.to_string())
    })
}

/// Prints `text`, or writes it to `path` (whole where `path` is a regular file; see
/// `report::write`). A reader that closed its pipe early is not a failure.
fn output(text: &str, path: Option<&std::path::Path>) -> Result<(), Failure> {
    let Some(path) = path else {
        return print(text);
    };
    match crate::report::write::write_output(path, text.as_bytes()) {
        Err(e) if !e.is_broken_pipe() => Err(Failure::new(e.exit_code(), e.to_string())),
        _ => Ok(()),
    }
}

/// Checks that `-o` can be written before any time is spent measuring.
fn check_output(path: Option<&std::path::Path>) -> Result<(), Failure> {
    match path.map(crate::report::write::check) {
        Some(Err(e)) => Err(Failure::new(e.exit_code(), e.to_string())),
        _ => Ok(()),
    }
}

/// Writes `text` to standard output. A closed pipe (`| head`) is the reader's choice and ends
/// nothing; any other error (a full disk, an I/O error) is the machine's (exit 3), said on
/// stderr: the user named no path that another would fix.
pub fn print(text: impl AsRef<[u8]>) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_ref()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(stdout_failed(&e)),
        _ => Ok(()),
    }
}

fn stdout_failed(e: &std::io::Error) -> Failure {
    Failure::new(
        exit::ENVIRONMENT,
        format!("cannot write to standard output: {e}"),
    )
}

/// Prints clap's answer to a command line it does not run: help or the version on standard
/// output (exit 0), a usage error on standard error (exit 2). Help that cannot be written fails
/// as any output does.
pub fn not_run(answer: &clap::Error) -> u8 {
    match answer.print() {
        Err(e) if !answer.use_stderr() && e.kind() != std::io::ErrorKind::BrokenPipe => {
            stdout_failed(&e).report()
        }
        // clap's codes are 0 and 2.
        _ => u8::try_from(answer.exit_code()).unwrap_or(exit::USAGE),
    }
}

/// Writes `text` to standard error. When even that fails there is nowhere left to say so, and
/// the exit code still tells; a panic would only replace it with 101.
pub fn note(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}
