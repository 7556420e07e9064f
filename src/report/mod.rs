//! What p2ptop prints: the topology (`topo`), and what a run leaves behind: the report of a
//! measurement, its renderings, the verdicts of `check`, diagnoses, a training estimate, and the
//! fleet summary of many reports.
//!
//! Everything after a run reads a finished [`run::Report`] (built once from the board), so a
//! report read back from a file is judged and rendered exactly like a fresh one.

pub mod baseline;
pub mod cause;
pub mod diagnosis;
pub mod fleet;
pub mod format;
pub mod input;
pub mod nvbandwidth;
pub mod pairs;
pub mod run;
pub mod seen;
pub mod shape;
pub mod topo;
pub mod training;
pub mod verdict;
pub mod write;
