//! The one stream everything above the machine reads: probe events and telemetry frames, from
//! the real probe and NVML sampler or from the simulator, in the same types.

use crate::model::telemetry::TelemetryFrame;
use crate::probe::protocol::Event;

#[derive(Clone, Debug, PartialEq)]
pub enum Feed {
    /// An event from the probe (or the simulated probe).
    Probe(Event),
    /// Every GPU's readings at one moment.
    Telemetry(TelemetryFrame),
    /// The probe stopped answering, crashed or printed garbage; the message says which and
    /// what happens next (a restart, a pair left out).
    ProbeTrouble(String),
    /// The probe failed to restart too many times in a row: nothing more will be measured, and
    /// every command from now on is answered incomplete at once. The message says why.
    ProbeGone(String),
}
