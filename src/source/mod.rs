//! Where measurements come from: a connection to a machine that takes probe commands and
//! delivers [`Feed`]s. The real machine (probe + NVML sampler) and a simulated one open the
//! same kind of connection, so nothing above this module has a separate path for simulation.

pub mod real;
pub mod simulated;

use crate::app::feed::Feed;
use crate::model::topology::Topology;
use crate::probe::protocol::Command;
use crate::probe::supervisor::Supervisor;
use std::sync::mpsc::Receiver;

/// An open machine: its topology, a way to send the probe commands, and the feed.
pub struct Connection {
    pub topology: Topology,
    /// The preset or file name when the machine is simulated.
    pub simulated: Option<String>,
    pub feed: Receiver<Feed>,
    /// The supervisor of the probe, real or simulated.
    commands: Supervisor,
}

impl Connection {
    /// Sends a command to the probe. Returns false when the probe side has gone away (its
    /// reason arrives on the feed).
    pub fn send(&self, command: Command) -> bool {
        self.commands.send(command)
    }
}
