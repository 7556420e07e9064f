//! The misuse log: one line per call that broke a rule of the API, whatever the caller did with
//! the error code, so a test can fail on any misuse.
//!
//! Lines look like `pid 1234 MISUSE cuEventRecord: the stream belongs to another context`.
//! Injected faults are logged too, as `FAULT`, so a reader can tell a planted failure from a bug;
//! tests look for `MISUSE` only.

use std::io::Write;

/// What a log line reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The caller broke a rule of the API.
    Misuse,
    /// A fault the machine file asked for happened.
    Fault,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Misuse => "MISUSE",
            Kind::Fault => "FAULT",
        }
    }
}

/// Appends one line to the log (`P2PTOP_EMU_LOG`, or stderr).
pub fn write(kind: Kind, call: &str, message: &str) {
    let line = format!(
        "pid {} {} {call}: {message}\n",
        std::process::id(),
        kind.word()
    );
    let written = std::env::var_os(super::config::LOG_VAR).is_some_and(|path| {
        // One write of the whole line to a file opened for appending: lines from the two
        // processes never interleave mid-line.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| file.write_all(line.as_bytes()))
            .is_ok()
    });
    if !written {
        eprint!("p2ptop-emu: {line}");
    }
}

pub fn misuse(call: &str, message: &str) {
    write(Kind::Misuse, call, message);
}

pub fn fault(call: &str, message: &str) {
    write(Kind::Fault, call, message);
}
