//! `p2ptop run`: one full pass, printed as labelled matrices.

use super::Failure;
use super::measure::Plan;
use crate::cli::{MachineArgs, RunArgs};
use crate::exit;
use crate::report::format::{self, summary};
use crate::report::verdict::{self, Floors};

/// Exit code of a run cut short by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
pub const INTERRUPTED: u8 = 130;

pub fn run(machine: &MachineArgs, args: &RunArgs) -> u8 {
    let result = super::check_output(args.output.as_deref())
        .and_then(|()| super::measure::measure(machine, args, Plan::Full, &|_| Ok(())))
        .and_then(|report| {
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
            Ok(if report.run.complete {
                exit::OK
            } else {
                INTERRUPTED
            })
        });
    result.unwrap_or_else(Failure::report)
}
