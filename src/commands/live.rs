//! `p2ptop` with no command: the live view.

use super::Failure;
use crate::cli::{LiveArgs, MachineArgs};
use crate::exit::{self, INTERRUPTED};
use crate::live::{self, Ending, LiveOptions, Opened, terminal};
use crate::probe::protocol::Settings;
use std::io::{self, IsTerminal};
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
    if !(io::stdin().is_terminal() && io::stdout().is_terminal()) {
        return Err(Failure::new(
            exit::USAGE,
            "the live view needs a terminal (standard input and output are not one); for a \
             report without one, use `p2ptop run` or `p2ptop check`",
        ));
    }
    let telemetry = machine.telemetry_interval(crate::nvml::sampler::DEFAULT_INTERVAL);
    let options = LiveOptions {
        devices: machine.devices.clone(),
        buffer_mib: args.buffer_mib,
        refresh: Duration::from_millis(args.refresh_ms),
        color: args.color,
    };
    let (machine, buffer_mib) = (machine.clone(), args.buffer_mib);
    let open = move || {
        let conn = super::connect(&machine, true, telemetry)?;
        let (nodes, notes) =
            super::measure::selected_nodes(&conn.topology, machine.devices.as_deref())?;
        super::measure::check_buffer_fits(&conn.topology, &nodes, buffer_mib)?;
        Ok(Opened { conn, notes })
    };
    let ending =
        live::run(open, options).map_err(|e| Failure::new(exit::INTERNAL, format!("{e:#}")))?;
    match ending {
        Ending::Quit => Ok(exit::OK),
        Ending::NotOpened(failure) => Err(failure),
        Ending::Signalled(signal) => {
            super::note(&format!(
                "p2ptop: the live view was stopped by {}\n",
                terminal::signal_name(signal)
            ));
            Ok(INTERRUPTED)
        }
        // Nobody is left to read a message.
        Ending::HungUp => Ok(INTERRUPTED),
    }
}
