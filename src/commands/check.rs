//! `p2ptop check`: measure, then judge every pair and GPU against floors or a baseline.

use super::Failure;
use super::measure::Plan;
use super::quick;
use super::stop::StopRequest;
use crate::cli::{CheckArgs, MachineArgs};
use crate::exit;
use crate::model::topology::Topology;
use crate::report::baseline;
use crate::report::format::{self, summary};
use crate::report::input::read_report;
use crate::report::run::Report;
use crate::report::verdict::{self, Floors};
use std::path::Path;

pub fn run(machine: &MachineArgs, args: &CheckArgs) -> u8 {
    check(machine, args).unwrap_or_else(Failure::report)
}

fn check(machine: &MachineArgs, args: &CheckArgs) -> Result<u8, Failure> {
    let stop = StopRequest::watch()?;
    // Inputs are read before anything is measured, so a typo costs nothing.
    let floors = floors(&args.floor)?;
    let baseline = args.baseline.as_deref().map(read_baseline).transpose()?;
    super::check_output(args.run.output.as_deref())?;
    let plan = if args.quick { Plan::Quick } else { Plan::Full };
    let same_shape = |topology: &Topology| match (&args.baseline, &baseline) {
        (Some(path), Some(b)) => baseline::check_shape(b, topology)
            .map_err(|e| Failure::new(exit::USAGE, format!("--baseline {}: {e}", path.display()))),
        _ => Ok(()),
    };
    let report = super::measure::measure(machine, &args.run, plan, &same_shape, &stop)?;
    let verdict = verdict::judge(&report, &floors, baseline.as_ref());
    if let (Some(path), Some(b)) = (&args.baseline, &baseline) {
        let unmatched = baseline::cells_without_figure(&report, b);
        if unmatched > 0 {
            super::note(&format!(
                "p2ptop: --baseline {} has no figure for {unmatched} measured cell(s); they \
                 were judged against the floors\n",
                path.display()
            ));
        }
    }
    let text = format::render_report(args.run.format, &report, &verdict);
    if args.quick {
        // A health check's caller reads one line; the report goes only where -o says.
        if let Some(path) = args.run.output.as_deref() {
            super::output(&text, Some(path))?;
        }
        super::print(format!("{}\n", quick::one_line(&report, &verdict)))?;
        return Ok(stop.exit_code(report.run.complete, quick::exit_code(&report, &verdict)));
    }
    super::output(&text, args.run.output.as_deref())?;
    if let Some(path) = &args.run.output {
        // The verdict reaches the terminal when the report went to a file, in a few lines.
        super::note(&summary::stderr(
            &report,
            &verdict,
            summary::Command::Check,
            path,
        ));
    }
    if !report.run.complete {
        super::note(
            "p2ptop: interrupted: not every pair was measured, so the machine is not accepted\n",
        );
        return Ok(exit::INTERRUPTED);
    }
    Ok(stop.exit_code(report.run.complete, verdict.exit_code()))
}

/// The baseline report, refused when any of its figures cannot be.
fn read_baseline(path: &Path) -> Result<Report, Failure> {
    let report =
        read_report(path).map_err(|e| Failure::new(e.exit_code(), format!("--baseline {e}")))?;
    baseline::check_figures(&report)
        .map_err(|e| Failure::new(exit::USAGE, format!("--baseline {}: {e}", path.display())))?;
    Ok(report)
}

/// The default floors with `--floor NAME=SHARE` changes.
fn floors(settings: &[String]) -> Result<Floors, Failure> {
    let mut floors = Floors::default();
    for setting in settings {
        let bad = |why: String| Failure::new(exit::USAGE, format!("--floor {setting}: {why}"));
        let (name, share) = setting
            .split_once('=')
            .ok_or_else(|| bad("write it as NAME=SHARE, e.g. nvlink_ce=0.8".into()))?;
        let share: f64 = share
            .parse()
            .map_err(|_| bad(format!("{share:?} is not a number")))?;
        if !(0.0..=1.0).contains(&share) {
            return Err(bad("the share of line rate must be between 0 and 1".into()));
        }
        floors.set(name, share).map_err(bad)?;
    }
    Ok(floors)
}
