//! `baggage` parsing never panics, stays within the limits, and whatever it reads formats back
//! to the same members.
#![no_main]

use context_tower::baggage::{format, parse, MAX_BYTES, MAX_MEMBERS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Newlines split the input into several `baggage` header values.
    let headers = data.split(|&b| b == b'\n');
    let read: Vec<(String, String)> = parse(headers)
        .map(|m| (m.key().to_owned(), m.value().to_owned()))
        .collect();
    assert!(read.len() <= MAX_MEMBERS);

    let header = format(read.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    assert!(header.len() <= MAX_BYTES);
    assert!(header.bytes().all(|b| b.is_ascii_graphic()), "{header:?}");
    let again: Vec<(String, String)> = parse([header.as_bytes()])
        .map(|m| (m.key().to_owned(), m.value().to_owned()))
        .collect();
    assert_eq!(again, read);
});
