//! `p2ptop run`: one full pass, printed as labelled matrices.

use super::Failure;
use super::measure::Plan;
use super::stop::StopRequest;
use crate::cli::{MachineArgs, RunArgs};
use crate::exit;
use crate::report::format::{self, summary};
use crate::report::verdict::{self, Floors};

pub fn run(machine: &MachineArgs, args: &RunArgs) -> u8 {
    measure_and_report(machine, args).unwrap_or_else(Failure::report)
}

fn measure_and_report(machine: &MachineArgs, args: &RunArgs) -> Result<u8, Failure> {
    let stop = StopRequest::watch()?;
    super::check_output(args.output.as_deref())?;
    let report = super::measure::measure(machine, args, Plan::Full, &|_| Ok(()), &stop)?;
    let verdict = verdict::judge(&report, &Floors::default(), None);
    let text = format::render_report(args.format, &report, &verdict);
    super::output(&text, args.output.as_deref())?;
    if let Some(path) = &args.output {
        super::note(&summary::stderr(
            &report,
            &verdict,
            summary::Command::Run,
            path,
        ));
    }
    Ok(stop.exit_code(report.run.complete, exit::OK))
}
