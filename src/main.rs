//! p2ptop: the CLI and orchestrator. It never links CUDA; the probe does the GPU work.

use clap::Parser;
use p2ptop::exit;
use p2ptop::probe::launch::{self, Hello, StartError};
use std::path::PathBuf;
use std::process::ExitCode;

/// GPU peer-to-peer bandwidth probe.
///
/// Today p2ptop starts its probe and shows what CUDA sees: the GPUs and which pairs can reach
/// each other's memory. Measurements run through `p2ptop-probe` (see `p2ptop-probe --help`).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The probe binary to run [default: p2ptop-probe next to p2ptop].
    #[arg(long, env = "P2PTOP_PROBE", value_name = "PATH")]
    probe: Option<PathBuf>,
    /// Show the live view of a simulated machine (a preset name or a machine file).
    #[arg(long, value_name = "NAME|FILE")]
    sim: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(name) = args.sim {
        return live_simulated(&name);
    }
    let probe = args.probe.unwrap_or_else(launch::default_probe_path);
    match launch::hello(&probe) {
        Ok(hello) => {
            print!("{}", describe(&hello));
            exit::code(exit::OK)
        }
        Err(err) => {
            eprintln!("p2ptop: {err}");
            let code = match err {
                StartError::Missing(_) | StartError::NoDriver(_) | StartError::Fatal(_) => {
                    exit::ENVIRONMENT
                }
                StartError::Broken(_) => exit::INTERNAL,
            };
            exit::code(code)
        }
    }
}

/// The GPUs and CUDA's peer-access matrix (rows: the GPU that accesses; columns: whose memory).
fn describe(hello: &Hello) -> String {
    let mut out = format!("CUDA driver {}\n", hello.cuda_driver_version);
    for d in &hello.devices {
        out += &format!(
            "GPU{}  {}  sm_{}  {} SMs  {:.1} GiB  {}\n",
            d.ordinal,
            d.name,
            d.compute_capability.replace('.', ""),
            d.sm_count,
            d.memory_mib as f64 / 1024.0,
            d.pci_bus_id
        );
    }
    if hello.devices.len() > 1 {
        out += "\nPeer access (cuDeviceCanAccessPeer; row accesses column)\n      ";
        for d in &hello.devices {
            out += &format!("{:>6}", format!("GPU{}", d.ordinal));
        }
        out += "\n";
        for a in &hello.devices {
            out += &format!("{:<6}", format!("GPU{}", a.ordinal));
            for b in &hello.devices {
                let cell = hello
                    .peers
                    .iter()
                    .find(|p| p.src == a.ordinal && p.dst == b.ordinal)
                    .map_or("X", |p| if p.can_access { "OK" } else { "NS" });
                out += &format!("{cell:>6}");
            }
            out += "\n";
        }
    }
    out
}

/// The live view on a simulated machine.
fn live_simulated(name: &str) -> ExitCode {
    let machine = match p2ptop::sim::load(name) {
        Ok(machine) => machine,
        Err(err) => {
            eprintln!("p2ptop: {err}");
            return exit::code(exit::USAGE);
        }
    };
    let interval = std::time::Duration::from_millis(p2ptop::source::DEFAULT_TELEMETRY_INTERVAL_MS);
    let conn = p2ptop::source::simulated::open(machine, name, 1, interval);
    match p2ptop::live::run(conn, p2ptop::live::LiveOptions::default()) {
        Ok(()) => exit::code(exit::OK),
        Err(err) => {
            eprintln!("p2ptop: {err:#}");
            exit::code(exit::INTERNAL)
        }
    }
}
