//! `p2ptop fleet FILES…`: many nodes' reports in one table, slow nodes flagged.

use super::Failure;
use crate::cli::FleetArgs;
use crate::exit;
use crate::report::fleet;
use crate::report::verdict::Floors;

pub fn run(args: &FleetArgs) -> u8 {
    let result = super::check_output(args.output.as_deref())
        .and_then(|()| {
            fleet::load(&args.files)
                .map_err(|e| Failure::new(exit::USAGE, format!("cannot use every report:\n{e}")))
        })
        .and_then(|inputs| {
            let summary = fleet::summarize(&inputs, &Floors::default());
            for d in &summary.duplicates {
                super::note(&format!("p2ptop: {d}: counted once\n"));
            }
            super::output(&summary.render(args.format), args.output.as_deref())
        });
    match result {
        Ok(()) => exit::OK,
        Err(f) => f.report(),
    }
}
