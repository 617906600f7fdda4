//! Property tests of the two header parsers: formatting then parsing gives back what was
//! formatted, and no input makes them panic. (The `cargo fuzz` targets in `fuzz/` check the
//! same properties on inputs that a fuzzer grows.)

use std::time::Duration;

use ctxpipe::tower::{baggage, grpc_timeout};
use proptest::collection::vec;
use proptest::prelude::*;

/// 99,999,999 hours: the longest timeout the format can carry.
const LONGEST: Duration = Duration::from_secs(99_999_999 * 3_600);

fn unit() -> impl Strategy<Value = (char, Duration)> {
    prop_oneof![
        Just(('H', Duration::from_secs(3_600))),
        Just(('M', Duration::from_secs(60))),
        Just(('S', Duration::from_secs(1))),
        Just(('m', Duration::from_millis(1))),
        Just(('u', Duration::from_micros(1))),
        Just(('n', Duration::from_nanos(1))),
    ]
}

/// RFC 7230 tokens.
fn key() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}"
}

proptest! {
    #[test]
    fn every_grammatical_timeout_parses_and_formats_back_to_the_same_duration(
        count in 0u64..=99_999_999,
        (unit, size) in unit(),
    ) {
        let text = format!("{count}{unit}");
        let parsed = grpc_timeout::parse(text.as_bytes()).unwrap();
        prop_assert_eq!(parsed, size * u32::try_from(count).unwrap());
        let formatted = grpc_timeout::format(parsed);
        prop_assert_eq!(grpc_timeout::parse(formatted.as_bytes()), Ok(parsed));
    }

    #[test]
    fn formatting_rounds_down_by_at_most_a_hundred_thousandth(
        secs in prop_oneof![0u64..1, 0u64..1_000, 0u64..10_000_000_000_000],
        nanos in 0u32..1_000_000_000,
    ) {
        let timeout = Duration::new(secs, nanos);
        let formatted = grpc_timeout::format(timeout);
        prop_assert!(formatted.len() <= 9);
        let parsed = grpc_timeout::parse(formatted.as_bytes()).unwrap();
        prop_assert!(parsed <= timeout, "{formatted:?} grants more than {timeout:?}");
        if timeout <= LONGEST {
            // Moving to a coarser unit leaves at least 100,000 of it (1,666,666 for M and H).
            prop_assert!(timeout - parsed <= timeout / 100_000, "{formatted:?} for {timeout:?}");
        } else {
            prop_assert_eq!(parsed, LONGEST);
        }
        if timeout < Duration::from_millis(100) {
            prop_assert_eq!(parsed, timeout, "nanosecond precision below 100 ms");
        }
        // Formatting what was parsed gives the same text back.
        prop_assert_eq!(grpc_timeout::format(parsed), formatted);
    }

    #[test]
    fn no_timeout_bytes_make_the_parser_panic(bytes in vec(any::<u8>(), 0..24)) {
        if let Ok(parsed) = grpc_timeout::parse(&bytes) {
            prop_assert!(parsed <= LONGEST);
            prop_assert_eq!(grpc_timeout::parse(grpc_timeout::format(parsed).as_bytes()), Ok(parsed));
        }
    }

    #[test]
    fn more_than_eight_digits_is_malformed(digits in "[0-9]{9,40}", (unit, _) in unit()) {
        let text = format!("{digits}{unit}");
        prop_assert!(grpc_timeout::parse(text.as_bytes()).is_err());
    }

    #[test]
    fn baggage_format_then_parse_is_identity(
        members in vec((key(), any::<String>()), 0..=baggage::MAX_MEMBERS),
    ) {
        let header = baggage::format(members.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        // Values are percent-encoded, commas included: each comma separates two members.
        let kept = if header.is_empty() { 0 } else { header.split(',').count() };
        prop_assume!(kept == members.len(), "members past 8192 bytes are dropped");
        prop_assert!(header.bytes().all(|b| b.is_ascii_graphic()), "{header:?}");
        let parsed: Vec<(String, String)> = baggage::parse([header.as_bytes()])
            .map(|m| (m.key().to_owned(), m.value().to_owned()))
            .collect();
        prop_assert_eq!(parsed, members);
    }

    #[test]
    fn no_baggage_bytes_make_the_parser_panic_and_what_it_reads_formats_back(
        headers in vec(
            vec(prop_oneof![any::<u8>(), Just(b','), Just(b'='), Just(b';'), Just(b'%'), Just(b' ')], 0..200),
            0..4,
        ),
    ) {
        let read: Vec<(String, String)> = baggage::parse(headers.iter().map(Vec::as_slice))
            .map(|m| (m.key().to_owned(), m.value().to_owned()))
            .collect();
        prop_assert!(read.len() <= baggage::MAX_MEMBERS);
        let header = baggage::format(read.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let again: Vec<(String, String)> = baggage::parse([header.as_bytes()])
            .map(|m| (m.key().to_owned(), m.value().to_owned()))
            .collect();
        prop_assert_eq!(again, read);
    }

    #[test]
    fn well_formed_members_survive_arbitrary_whitespace_and_properties(
        members in vec((key(), "[!#-+\\--:<-\\[\\]-~]{0,12}", 0usize..3, 0usize..3), 1..20),
    ) {
        // Raw (unencoded) values without `%`, so they read back unchanged.
        let members: Vec<_> = members.into_iter().filter(|(_, v, _, _)| !v.contains('%')).collect();
        let header: Vec<String> = members
            .iter()
            .map(|(k, v, spaces, props)| {
                let ows = " ".repeat(*spaces);
                let props: String = (0..*props).map(|i| format!("{ows};{ows}p{i}{ows}={ows}x")).collect();
                format!("{ows}{k}{ows}={ows}{v}{props}{ows}")
            })
            .collect();
        let header = header.join(",");
        let read: Vec<(String, String)> = baggage::parse([header.as_bytes()])
            .map(|m| (m.key().to_owned(), m.value().to_owned()))
            .collect();
        let expected: Vec<(String, String)> =
            members.into_iter().map(|(k, v, _, _)| (k, v)).collect();
        prop_assert_eq!(read, expected);
    }
}
