//! `grpc-timeout` parsing never panics, and whatever parses formats back to the same duration.
#![no_main]

use context_tower::grpc_timeout::{format, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(timeout) = parse(data) {
        let formatted = format(timeout);
        assert!(formatted.len() <= 9, "{formatted:?}");
        assert_eq!(parse(formatted.as_bytes()), Ok(timeout), "{formatted:?}");
    }
});
