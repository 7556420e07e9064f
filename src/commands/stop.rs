//! A stop request (Ctrl-C, SIGTERM) for the headless commands. It is watched from a command's
//! first line, so none arrives unseen, and every wait of a run looks at it at least every
//! [`POLL`]; the run then ends with what it has measured, exit 130. A second request ends
//! p2ptop at once, whatever it is doing (a large report still being written, say).

use super::Failure;
use crate::exit::{self, INTERRUPTED};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often a wait looks at the stop request: well inside the second a stop may take.
pub const POLL: Duration = Duration::from_millis(100);

#[derive(Clone)]
pub struct StopRequest(Arc<AtomicBool>);

impl StopRequest {
    /// Starts watching for SIGINT and SIGTERM.
    pub fn watch() -> Result<StopRequest, Failure> {
        let asked = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // The shutdown goes first: it looks at the flag as it was before this signal, so
            // only a second request ends the process.
            signal_hook::flag::register_conditional_shutdown(
                signal,
                i32::from(INTERRUPTED),
                asked.clone(),
            )
            .and_then(|_| signal_hook::flag::register(signal, asked.clone()))
            .map_err(|e| Failure::new(exit::INTERNAL, format!("cannot watch for Ctrl-C: {e}")))?;
        }
        Ok(StopRequest(asked))
    }

    /// A request made or not, without watching any signal: for tests.
    #[cfg(test)]
    pub fn made(made: bool) -> StopRequest {
        StopRequest(Arc::new(AtomicBool::new(made)))
    }

    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// The exit code of a run that has written its report: 130 when the report is incomplete
    /// (it says so) or the request came after the last measurement (said here, so that it is
    /// not lost), else `finished`.
    pub fn exit_code(&self, complete: bool, finished: u8) -> u8 {
        if !complete {
            return INTERRUPTED;
        }
        if self.requested() {
            super::note(
                "p2ptop: stopped as asked after every pair was measured; the report is complete\n",
            );
            return INTERRUPTED;
        }
        finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_after_the_last_measurement_is_not_lost() {
        assert_eq!(
            StopRequest::made(true).exit_code(true, exit::OK),
            INTERRUPTED
        );
        assert_eq!(
            StopRequest::made(false).exit_code(false, exit::OK),
            INTERRUPTED
        );
        let not_asked = StopRequest::made(false);
        assert_eq!(
            not_asked.exit_code(true, exit::CHECK_FAILED),
            exit::CHECK_FAILED
        );
    }
}
