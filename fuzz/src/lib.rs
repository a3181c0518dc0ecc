//! Models shared by several fuzz targets (each target is one file in `fuzz_targets/`).

pub mod gcra;
