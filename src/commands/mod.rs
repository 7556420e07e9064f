//! One module per action of the command line; each returns the process's exit code.

pub mod check;
pub mod fleet;
pub mod generated;
pub mod live;
pub mod measure;
pub mod quick;
pub mod run;
pub mod topo;

use crate::cli::MachineArgs;
use crate::exit;
use crate::model::topology::Topology;
use crate::probe::launch;
use crate::source::{self, Connection};
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
        eprintln!("p2ptop: {}", self.message);
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
    let host = crate::host::host_facts(std::path::Path::new("/"));
    Ok((crate::nvml::discover::discover(&nvml, host, &[]), None))
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

/// Prints `text`, or writes it to `path` whole (a reader never sees half a file).
fn output(text: &str, path: Option<&std::path::Path>) -> Result<(), Failure> {
    match path {
        None => {
            print!("{text}");
            Ok(())
        }
        Some(path) => crate::report::write::write_whole(path, text.as_bytes())
            .map_err(|e| Failure::new(exit::USAGE, e.to_string())),
    }
}
