//! Subcommands that do more than a few lines of work.

pub mod classify;
pub mod eval;
pub mod explain;
pub mod infill;
