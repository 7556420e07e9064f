//! p2ptop: the CLI and orchestrator. It never links CUDA; the probe does the GPU work.

use clap::Parser;
use p2ptop::cli::{Action, Cli};
use p2ptop::exit;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(answer) => return exit::code(p2ptop::commands::not_run(&answer)),
    };
    if cli.machine.sim.as_deref() == Some("list") {
        let printed = p2ptop::commands::print(p2ptop::sim::list());
        return exit::code(printed.map_or_else(p2ptop::commands::Failure::report, |()| exit::OK));
    }
    let code = match cli.command {
        Some(Action::Topo(args)) => p2ptop::commands::topo::run(&cli.machine, &args),
        Some(Action::Run(args)) => p2ptop::commands::run::run(&cli.machine, &args),
        Some(Action::Check(args)) => p2ptop::commands::check::run(&cli.machine, &args),
        Some(Action::Fleet(args)) => p2ptop::commands::fleet::run(&args),
        Some(Action::Completions(args)) => p2ptop::commands::generated::completions(args.shell),
        Some(Action::Man(args)) => p2ptop::commands::generated::man(args.dir.as_deref()),
        None => p2ptop::commands::live::run(&cli.machine, &cli.live),
    };
    exit::code(code)
}
