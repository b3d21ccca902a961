//! The fuzz targets' bodies; `fuzz_targets/*.rs` wrap one each.
mod bodies;

pub use bodies::*;
