//! What p2ptop prints: reports built from the model, as text for people and JSON for scripts.

pub mod topo;
pub mod write;
