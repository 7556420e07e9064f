//! What `check --baseline` accepts: a report whose figures can be, from a machine of the same
//! shape. A baseline from another machine would be compared cell by cell with whatever cells
//! share a name (an RTX 3090 bridge against an H100's NVSwitch), and one with a zero, negative
//! or impossible figure would pass or fail every cell it touches, so both are refused.

use super::run::{CellReport, Report};
use super::shape::Shape;
use crate::model::topology::Topology;
use crate::probe::protocol::Op;

/// A figure above its path's line rate by more than this share cannot have been measured (the
/// margin covers line rates rounded in the tables they come from).
pub const LINE_RATE_MARGIN: f64 = 1.05;

/// Every figure of the baseline is finite, above zero, and within its path's line rate as
/// built; otherwise why not, naming the first cell that is not and how many more there are.
pub fn check_figures(baseline: &Report) -> Result<(), String> {
    let bad: Vec<String> = baseline.cells.iter().filter_map(impossible).collect();
    match bad.as_slice() {
        [] => Ok(()),
        [first, rest @ ..] => {
            let more = match rest.len() {
                0 => String::new(),
                n => format!(" (and {n} more)"),
            };
            Err(format!(
                "{first}{more}: a figure must be above 0 and within its path's line rate; this \
                 report was not written by a p2ptop run as it is"
            ))
        }
    }
}

/// Why the cell's figures cannot be, if they cannot.
fn impossible(cell: &CellReport) -> Option<String> {
    let directions = if cell.op == Op::Bidir { 2.0 } else { 1.0 };
    let most = cell
        .line_rate_gbps
        .filter(|l| *l > 0.0)
        .map(|l| l * directions * LINE_RATE_MARGIN);
    let figures = cell
        .gbps
        .iter()
        .copied()
        .chain(cell.directions.iter().map(|d| d.median_gbps));
    for gbps in figures {
        if !(gbps.is_finite() && gbps > 0.0) {
            return Some(format!("{} is {gbps} GB/s", cell.label()));
        }
        if let Some(most) = most.filter(|m| gbps > *m) {
            return Some(format!(
                "{} is {gbps} GB/s, above the {most:.1} GB/s its path can carry",
                cell.label()
            ));
        }
    }
    None
}

/// The baseline was measured on a machine of this topology's shape; otherwise how they differ.
pub fn check_shape(baseline: &Report, topology: &Topology) -> Result<(), String> {
    let here = Shape::of(topology);
    match here.difference(&Shape::of(&baseline.machine.topology)) {
        None => Ok(()),
        Some(difference) => Err(format!(
            "it was measured on a machine of another shape ({difference}); compare only with a \
             report of a machine with the same GPUs and links"
        )),
    }
}

/// How many of `report`'s judged cells the baseline has no figure for (they are judged against
/// the floors instead).
pub fn cells_without_figure(report: &Report, baseline: &Report) -> usize {
    report
        .cells
        .iter()
        .filter(|c| c.gbps.is_some())
        .filter(|c| {
            baseline
                .cell(c.src, c.dst, c.op, c.engine)
                .and_then(|b| b.gbps)
                .is_none()
        })
        .count()
}
