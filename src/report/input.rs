//! Reading reports back (`check --baseline`, `fleet`): every error names the file and, for
//! malformed JSON, the line and column, so the user can open it at the spot.

use super::run::{Report, SCHEMA};
use crate::exit;
use std::fmt;
use std::path::{Path, PathBuf};

/// A report file that could not be used.
#[derive(Debug)]
pub struct InputError {
    pub path: PathBuf,
    /// 1-based, for JSON that does not parse or does not have a report's shape.
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl InputError {
    /// The exit code a command ends with when its input is unusable.
    pub fn exit_code(&self) -> u8 {
        exit::USAGE
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for InputError {}

/// Reads one JSON report written by `p2ptop run --format json`.
pub fn read_report(path: &Path) -> Result<Report, InputError> {
    let text = std::fs::read_to_string(path).map_err(|e| InputError {
        path: path.to_owned(),
        line: None,
        column: None,
        message: format!("cannot read: {e}"),
    })?;
    parse_report(&text, path)
}

/// Parses a report's JSON; `origin` names it in errors.
pub fn parse_report(text: &str, origin: &Path) -> Result<Report, InputError> {
    let mut report: Report = serde_json::from_str(text).map_err(|e| InputError {
        path: origin.to_owned(),
        line: Some(e.line()),
        column: Some(e.column()),
        message: format!("not a p2ptop JSON report: {}", without_position(&e)),
    })?;
    report.sort_cells();
    if report.schema != SCHEMA {
        return Err(InputError {
            path: origin.to_owned(),
            line: None,
            column: None,
            message: format!(
                "report schema {} is not the one this p2ptop reads ({SCHEMA})",
                report.schema
            ),
        });
    }
    Ok(report)
}

/// serde_json's message without its " at line L column C" tail (the error prints those first).
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let tail = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&tail).unwrap_or(&text).to_owned()
}
