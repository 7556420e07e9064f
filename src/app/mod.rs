//! Application state: the feed everything arrives on, and the board it fills.

pub mod board;
pub mod feed;
