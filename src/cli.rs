//! The command line: global options and one subcommand per action.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// GPU peer-to-peer bandwidth probe with a live terminal view.
///
/// With no command, p2ptop opens the live view. `--sim NAME|FILE` runs any command on a
/// simulated machine (`--sim list` shows the presets), so everything works without a GPU.
#[derive(Parser, Debug)]
#[command(version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub machine: MachineArgs,
    #[command(subcommand)]
    pub command: Option<Action>,
}

/// Which machine to work on.
#[derive(Args, Debug)]
pub struct MachineArgs {
    /// Run on a simulated machine: a preset name or a machine file (`--sim list` for presets).
    #[arg(long, global = true, value_name = "NAME|FILE")]
    pub sim: Option<String>,
    /// Seed of the simulation's noise: the same seed gives the same run.
    #[arg(long, global = true, default_value_t = 1, value_name = "N")]
    pub seed: u64,
    /// The probe binary to run [default: p2ptop-probe next to p2ptop].
    #[arg(long, global = true, env = "P2PTOP_PROBE", value_name = "PATH")]
    pub probe: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Action {
    /// Show how the GPUs are connected, as `nvidia-smi topo -m` does, with P2P status, links
    /// and line rates.
    Topo(TopoArgs),
}

#[derive(Args, Debug)]
pub struct TopoArgs {
    #[arg(long, value_enum, default_value_t = TopoFormat::Table)]
    pub format: TopoFormat,
    /// Write to this file (whole or not at all) instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TopoFormat {
    Table,
    Json,
}
