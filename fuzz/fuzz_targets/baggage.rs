//! `baggage` parsing never panics, stays within the limits, and every member it reads formats
//! back, on its own, to the same member; the members that fit the byte limit together come
//! back together.
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

    for member in &read {
        let header = format([(member.0.as_str(), member.1.as_str())]);
        let again: Vec<(String, String)> = parse([header.as_bytes()])
            .map(|m| (m.key().to_owned(), m.value().to_owned()))
            .collect();
        assert_eq!(again, [member.clone()], "{header:?}");
    }

    let header = format(read.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    assert!(header.len() <= MAX_BYTES);
    assert!(header.bytes().all(|b| b.is_ascii_graphic()), "{header:?}");
    let again: Vec<(String, String)> = parse([header.as_bytes()])
        .map(|m| (m.key().to_owned(), m.value().to_owned()))
        .collect();
    // Escapes may make the whole list longer than the limit: format then leaves out the members
    // that no longer fit, and keeps the others in order.
    let mut rest = read.iter();
    for member in &again {
        assert!(rest.any(|kept| kept == member), "{member:?} not in order: {header:?}");
    }
});
