//! Reports, verdicts and their causes, findings, estimates, capacity and fleet summaries of
//! simulated runs: boards are filled through the probe's own command loop, as in a real run.

mod capacity;
mod causes;
mod common;
mod diagnosis;
mod fleet;
mod formats;
mod quick;
mod topo;
mod training;
mod verdicts;
