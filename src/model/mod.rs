//! Plain data shared by every part of p2ptop: topology, link kinds, line rates, telemetry.
//!
//! Nothing here talks to a GPU; NVML discovery and the simulator both produce these types, so
//! everything above them has one path.

pub mod bus_id;
pub mod capacity;
pub mod line_rate;
pub mod telemetry;
pub mod topology;
