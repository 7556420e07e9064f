//! `p2ptop` with no command: the live view.

use super::Failure;
use crate::cli::{LiveArgs, MachineArgs};
use crate::exit;
use crate::live::{self, LiveOptions};
use crate::probe::protocol::Settings;
use std::time::Duration;

pub fn run(machine: &MachineArgs, args: &LiveArgs) -> u8 {
    open(machine, args).unwrap_or_else(Failure::report)
}

fn open(machine: &MachineArgs, args: &LiveArgs) -> Result<u8, Failure> {
    let settings = Settings {
        buffer_mib: args.buffer_mib,
        ..Settings::default()
    };
    settings
        .check()
        .map_err(|m| Failure::new(exit::USAGE, format!("--buffer-mib: {m}")))?;
    if args.refresh_ms == 0 {
        return Err(Failure::new(exit::USAGE, "--refresh-ms must be at least 1"));
    }
    let telemetry = machine.telemetry_interval(crate::nvml::sampler::DEFAULT_INTERVAL);
    let conn = super::connect(machine, true, telemetry)?;
    let nodes = super::measure::selected_nodes(&conn.topology, machine.devices.as_deref())?;
    super::measure::check_buffer_fits(&conn.topology, &nodes, args.buffer_mib)?;
    let options = LiveOptions {
        devices: machine.devices.clone(),
        buffer_mib: args.buffer_mib,
        refresh: Duration::from_millis(args.refresh_ms),
        color: args.color,
    };
    live::run(conn, options).map_err(|e| Failure::new(exit::INTERNAL, format!("{e:#}")))?;
    Ok(exit::OK)
}
