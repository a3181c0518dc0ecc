//! Everything the broker holds survives a restart.
