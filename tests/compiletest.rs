//! The error messages of `#[stage]` and `#[ctx_value]` (`tests/ui/*.rs` and their `.stderr`),
//! and the function shapes they accept (`tests/ui/pass/*.rs`).
//!
//! The `.stderr` files are checked on stable Rust, the toolchain CI uses; regenerate them with
//! `TRYBUILD=overwrite cargo test --test compiletest` and review the diff like an API change.

#[rustversion::attr(not(stable), ignore = "the .stderr files are checked on stable Rust")]
#[cfg_attr(miri, ignore = "compiles other crates")]
#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
