//! The command line: global options and one subcommand per action.

use crate::live::ColorChoice;
use crate::probe::protocol::Engine;
use crate::report::format::{Format, ReportFormat};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// GPU peer-to-peer bandwidth probe with a live terminal view.
///
/// With no command, p2ptop opens the live view. `--sim NAME|FILE` runs any command on a
/// simulated machine (`--sim list` shows the presets), so everything works without a GPU.
#[derive(Parser, Debug)]
#[command(version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub machine: MachineArgs,
    #[command(flatten)]
    pub live: LiveArgs,
    #[command(subcommand)]
    pub command: Option<Action>,
}

/// Which machine to work on.
#[derive(Args, Clone, Debug)]
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
    /// How often telemetry (temperatures, clocks, power, link counters) is read [default: 500;
    /// 100 for `check --quick`].
    #[arg(
        long,
        global = true,
        value_parser = clap::value_parser!(u64).range(50..),
        value_name = "MS"
    )]
    pub telemetry_ms: Option<u64>,
    /// Only these GPUs (as nvidia-smi numbers them), e.g. 0,2,3 [default: all].
    #[arg(long, global = true, value_delimiter = ',', value_name = "LIST")]
    pub devices: Option<Vec<u32>>,
}

impl MachineArgs {
    /// `--telemetry-ms`, or the command's own default.
    pub fn telemetry_interval(&self, default: Duration) -> Duration {
        self.telemetry_ms.map_or(default, Duration::from_millis)
    }
}

/// Options of the live view (p2ptop with no command).
#[derive(Args, Debug)]
pub struct LiveArgs {
    /// Size of each source and destination buffer.
    #[arg(long, default_value_t = 512, value_name = "MIB")]
    pub buffer_mib: u64,
    /// How often the screen is redrawn while measurements arrive.
    #[arg(long, default_value_t = 250, value_name = "MS")]
    pub refresh_ms: u64,
    /// Colours: auto (on unless NO_COLOR is set), always, never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(Subcommand, Debug)]
pub enum Action {
    /// Measure every pair once (read, write, bidir, latency; GPUs and the host) and print the
    /// matrices with line rates and efficiency.
    Run(RunArgs),
    /// Measure like `run`, then judge every pair and GPU: exit 0 pass, 1 fail.
    Check(CheckArgs),
    /// Merge JSON reports from many nodes into one table and flag the slow ones.
    Fleet(FleetArgs),
    /// Show how the GPUs are connected, as `nvidia-smi topo -m` does, with P2P status, links
    /// and line rates.
    Topo(TopoArgs),
    /// Print a completion script for a shell, e.g. `p2ptop completions bash >
    /// /etc/bash_completion.d/p2ptop`.
    Completions(CompletionsArgs),
    /// Print the manual page (roff), e.g. `p2ptop man > /usr/local/share/man/man1/p2ptop.1`,
    /// or with `--dir` write it and one page per command (p2ptop-check.1…) there.
    Man(ManArgs),
}

/// The most `--samples` a measurement takes.
pub const MAX_SAMPLES: i64 = 10_000;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Who moves the bytes: p2ptop's SM kernels, the copy engines, or both.
    #[arg(long, value_enum, default_value_t = EngineChoice::Both)]
    pub engine: EngineChoice,
    /// Size of each source and destination buffer.
    #[arg(long, default_value_t = 512, value_name = "MIB")]
    pub buffer_mib: u64,
    /// Timed samples per measurement (the median is reported), at most 10000: each lasts at
    /// least 10 ms, so a pair's measurements would already take minutes.
    #[arg(
        long,
        default_value_t = 5,
        value_parser = clap::value_parser!(u32).range(1..=MAX_SAMPLES),
        value_name = "N"
    )]
    pub samples: u32,
    /// How to write the report (`prometheus`: the text format of node_exporter's textfile
    /// collector).
    #[arg(long, value_enum, default_value_t = ReportFormat::Document(Format::Table))]
    pub format: ReportFormat,
    /// Write to this file (whole or not at all) instead of standard output. `%N` is the node's
    /// name ($SLURMD_NODENAME, else the short host name), `%%` a literal `%`.
    #[arg(short, long, value_name = "FILE", value_parser = crate::output_path::parse)]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Compare with a previous JSON report: each cell must reach 0.9 × its figure there.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Change a floor (share of line rate), e.g. nvlink_ce=0.8; repeatable. Names: nvlink_ce,
    /// nvlink_sm, pcie_ce, pcie_sm_write, pcie_sm_read, pcie_both_ways, staged, device_local.
    #[arg(long, value_name = "NAME=SHARE")]
    pub floor: Vec<String>,
    /// A health check for a Slurm prolog, HealthCheckProgram or NHC: one SM copy each way per
    /// pair of GPUs and per GPU with the host (no latency, no device-local copy), then one
    /// line on standard output and exit 0 or 1. The report goes only to `-o`.
    #[arg(long, conflicts_with = "engine")]
    pub quick: bool,
}

#[derive(Args, Debug)]
pub struct FleetArgs {
    /// JSON reports (`p2ptop check --format json -o FILE` on each node).
    #[arg(required = true, value_name = "FILES")]
    pub files: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write to this file (whole or not at all) instead of standard output (`%N` as in `run`).
    #[arg(short, long, value_name = "FILE", value_parser = crate::output_path::parse)]
    pub output: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EngineChoice {
    Sm,
    Ce,
    Both,
}

impl EngineChoice {
    pub fn engines(self) -> Vec<Engine> {
        match self {
            EngineChoice::Sm => vec![Engine::Sm],
            EngineChoice::Ce => vec![Engine::Ce],
            EngineChoice::Both => vec![Engine::Sm, Engine::Ce],
        }
    }
}

#[derive(Args, Debug)]
pub struct TopoArgs {
    #[arg(long, value_enum, default_value_t = TopoFormat::Table)]
    pub format: TopoFormat,
    /// Write to this file (whole or not at all) instead of standard output (`%N` as in `run`).
    #[arg(short, long, value_name = "FILE", value_parser = crate::output_path::parse)]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    pub shell: Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write p2ptop.1 and a page per command into this directory instead of printing p2ptop.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// The shells `p2ptop completions` writes for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TopoFormat {
    Table,
    Json,
}
