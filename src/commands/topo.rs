//! `p2ptop topo`: the `nvidia-smi topo -m` view, P2P status, links and line rates.

use super::Failure;
use crate::cli::{MachineArgs, TopoArgs, TopoFormat};
use crate::exit;
use crate::report::topo;

pub fn run(machine: &MachineArgs, args: &TopoArgs) -> u8 {
    match print(machine, args) {
        Ok(()) => exit::OK,
        Err(f) => f.report(),
    }
}

fn print(machine: &MachineArgs, args: &TopoArgs) -> Result<(), Failure> {
    super::check_output(args.output.as_deref())?;
    let (topology, simulated) = super::topology(machine)?;
    let text = match args.format {
        TopoFormat::Table => topo::render_text(&topology, simulated.as_deref()),
        TopoFormat::Json => topo::render_json(&topology, simulated.as_deref()),
    };
    super::output(&text, args.output.as_deref())
}
