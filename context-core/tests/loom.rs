//! Loom models of the cancellation tree; run with `RUSTFLAGS="--cfg loom"` (see `.ci/run`).
#![cfg(loom)]
