//! Application state: the feed everything arrives on, and the board it fills.

pub mod board;
pub mod cycle;
pub mod feed;
pub mod keys;
pub mod reading;
pub mod snapshot;
pub mod view;
