//! p2ptop: the CLI and orchestrator. It never links CUDA; the probe does the GPU work.

use clap::Parser;
use p2ptop::cli::{Action, Cli};
use p2ptop::exit;
use p2ptop::probe::launch::{self, Hello, StartError};
use p2ptop::probe::supervisor;
use std::process::ExitCode;
use std::sync::mpsc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.machine.sim.as_deref() == Some("list") {
        print!("{}", p2ptop::sim::list());
        return exit::code(exit::OK);
    }
    let code = match cli.command {
        Some(Action::Topo(args)) => p2ptop::commands::topo::run(&cli.machine, &args),
        Some(Action::Run(args)) => p2ptop::commands::run::run(&cli.machine, &args),
        Some(Action::Check(args)) => p2ptop::commands::check::run(&cli.machine, &args),
        Some(Action::Fleet(args)) => p2ptop::commands::fleet::run(&args),
        None => gpus(&cli),
    };
    exit::code(code)
}

/// Starts the probe and prints what CUDA sees.
fn gpus(cli: &Cli) -> u8 {
    let probe = cli
        .machine
        .probe
        .clone()
        .unwrap_or_else(launch::default_probe_path);
    let (feed, _events) = mpsc::channel();
    match supervisor::start(&probe, feed) {
        Ok((_supervisor, hello)) => {
            print!("{}", describe(&hello));
            exit::OK
        }
        Err(err) => {
            eprintln!("p2ptop: {err}");
            match err {
                StartError::Missing(_) | StartError::NoDriver(_) | StartError::Fatal(_) => {
                    exit::ENVIRONMENT
                }
                StartError::Broken(_) => exit::INTERNAL,
            }
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
