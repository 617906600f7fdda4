//! The `grpc-timeout` header: how much time the caller grants, in the exact gRPC wire format.
//!
//! The format is fixed by [gRPC over HTTP/2][spec] ("Requests"):
//!
//! ```text
//! Timeout      → "grpc-timeout" TimeoutValue TimeoutUnit
//! TimeoutValue → {positive integer as ASCII string of at most 8 digits}
//! TimeoutUnit  → Hour / Minute / Second / Millisecond / Microsecond / Nanosecond
//! Hour → "H"   Minute → "M"   Second → "S"   Millisecond → "m"   Microsecond → "u"   Nanosecond → "n"
//! ```
//!
//! [`parse()`] accepts exactly that, plus a value of zero (which gRPC clients send for a deadline
//! that has already passed, e.g. grpc-go's `0n`) and spaces or tabs around the value (which the
//! spec allows a receiver to strip). [`format()`] writes the finest unit that keeps the value
//! within 8 digits, rounding *down*, so the callee is never granted more time than remains.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use ctxpipe::tower::grpc_timeout;
//!
//! assert_eq!(grpc_timeout::parse(b"250m"), Ok(Duration::from_millis(250)));
//! assert_eq!(grpc_timeout::format(Duration::from_secs(2)), "2000000u");
//! // 8 digits at most: a value that does not fit moves to a coarser unit, rounded down.
//! assert_eq!(grpc_timeout::format(Duration::from_secs(100_000_000)), "1666666M");
//! assert!(grpc_timeout::parse(b"123456789S").is_err());
//! ```
//!
//! [spec]: https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md#requests

use std::fmt;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};

/// The header's name, `grpc-timeout`.
pub const HEADER: HeaderName = HeaderName::from_static("grpc-timeout");

/// At most this many digits before the unit.
pub const MAX_DIGITS: usize = 8;

/// The largest value 8 digits can hold.
const MAX_VALUE: u64 = 99_999_999;

/// Longer raw values are rejected before looking at them (8 digits, a unit and some OWS).
const MAX_RAW_LEN: usize = 32;

/// The units from the finest to the coarsest, with their length in nanoseconds.
const UNITS: [(u64, u8); 6] = [
    (1, b'n'),
    (1_000, b'u'),
    (1_000_000, b'm'),
    (1_000_000_000, b'S'),
    (60 * 1_000_000_000, b'M'),
    (3_600 * 1_000_000_000, b'H'),
];

/// A `grpc-timeout` value that does not follow the gRPC wire format.
///
/// Its [`Display`](fmt::Display) says what was expected, in a fixed text that is safe to send
/// back to the caller (it never echoes the offending bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidTimeout {
    reason: Reason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason {
    Empty,
    Digits,
    TooLong,
    Unit,
    Repeated,
    Millis,
}

impl InvalidTimeout {
    fn new(reason: Reason) -> InvalidTimeout {
        InvalidTimeout { reason }
    }

    /// The timeout header appears more than once (ambiguous).
    pub(crate) fn repeated() -> InvalidTimeout {
        InvalidTimeout::new(Reason::Repeated)
    }

    /// The plain-HTTP timeout header is not whole milliseconds.
    pub(crate) fn millis() -> InvalidTimeout {
        InvalidTimeout::new(Reason::Millis)
    }

    /// The explanation as a static string (what [`Display`](fmt::Display) writes).
    pub fn message(&self) -> &'static str {
        match self.reason {
            Reason::Empty => "malformed grpc-timeout: empty value",
            Reason::Digits => "malformed grpc-timeout: expected 1 to 8 ASCII digits and a unit",
            Reason::TooLong => "malformed grpc-timeout: longer than 8 digits and a unit",
            Reason::Unit => "malformed grpc-timeout: expected a unit, one of H M S m u n",
            Reason::Repeated => "malformed timeout: the header is repeated",
            Reason::Millis => "malformed timeout header: expected whole milliseconds",
        }
    }
}

impl fmt::Display for InvalidTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for InvalidTimeout {}

/// Parses a `grpc-timeout` value into the duration it grants.
///
/// Spaces and tabs around the value are ignored; anything else that is not 1 to 8 ASCII digits
/// followed by one of `H M S m u n` is an [`InvalidTimeout`]. Never panics, and looks at no more
/// than the first few dozen bytes of a hostile value.
///
/// ```
/// use std::time::Duration;
/// use ctxpipe::tower::grpc_timeout::parse;
///
/// assert_eq!(parse(b"1S"), Ok(Duration::from_secs(1)));
/// assert_eq!(parse(b"0n"), Ok(Duration::ZERO));
/// assert!(parse(b"1s").is_err(), "units are case-sensitive: `s` is not seconds");
/// assert!(parse(b"-1S").is_err());
/// ```
pub fn parse(value: &[u8]) -> Result<Duration, InvalidTimeout> {
    if value.len() > MAX_RAW_LEN {
        return Err(InvalidTimeout::new(Reason::TooLong));
    }
    let value = trim_ows(value);
    let Some((&unit, digits)) = value.split_last() else {
        return Err(InvalidTimeout::new(Reason::Empty));
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(InvalidTimeout::new(Reason::Digits));
    }
    if digits.len() > MAX_DIGITS {
        return Err(InvalidTimeout::new(Reason::TooLong));
    }
    // At most 8 digits: no overflow.
    let count = digits
        .iter()
        .fold(0u64, |n, digit| n * 10 + u64::from(digit - b'0'));
    let duration = match unit {
        b'H' => Duration::from_secs(count * 3_600),
        b'M' => Duration::from_secs(count * 60),
        b'S' => Duration::from_secs(count),
        b'm' => Duration::from_millis(count),
        b'u' => Duration::from_micros(count),
        b'n' => Duration::from_nanos(count),
        _ => return Err(InvalidTimeout::new(Reason::Unit)),
    };
    Ok(duration)
}

/// Formats `timeout` as a `grpc-timeout` value: the finest unit whose count fits in 8 digits,
/// rounded down, so the receiver never gets more time than `timeout`.
///
/// The result is exact whenever `timeout` is a whole number of that unit (in particular for
/// every value [`parse()`] returns). Anything longer than 99,999,999 hours (11,000 years) is sent
/// as that maximum; `Duration::ZERO` is `0n`, an expired deadline.
///
/// ```
/// use std::time::Duration;
/// use ctxpipe::tower::grpc_timeout::format;
///
/// assert_eq!(format(Duration::from_nanos(1_500)), "1500n");
/// assert_eq!(format(Duration::from_millis(1_500)), "1500000u");
/// assert_eq!(format(Duration::from_secs(3 * 3_600)), "10800000m");
/// ```
pub fn format(timeout: Duration) -> HeaderValue {
    let (count, unit) = match u64::try_from(timeout.as_nanos()) {
        Ok(nanos) => UNITS
            .iter()
            .map(|&(size, unit)| (nanos / size, unit))
            .find(|&(count, _)| count <= MAX_VALUE)
            .unwrap_or((MAX_VALUE, b'H')),
        // Beyond 584 years only hours can fit in 8 digits (such a value is over 5 million hours).
        Err(_) => ((timeout.as_secs() / 3_600).min(MAX_VALUE), b'H'),
    };
    let mut buf = [0u8; MAX_DIGITS + 1];
    let mut start = MAX_DIGITS;
    let mut rest = count;
    loop {
        start -= 1;
        // `rest % 10` is a single decimal digit.
        buf[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    buf[MAX_DIGITS] = unit;
    HeaderValue::from_bytes(&buf[start..])
        .expect("ASCII digits followed by a unit letter are a valid header value")
}

/// Strips optional whitespace (spaces and tabs, RFC 9110 `OWS`) from both ends.
pub(crate) fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit() {
        let cases: [(&[u8], Duration); 6] = [
            (b"2H", Duration::from_secs(7_200)),
            (b"3M", Duration::from_secs(180)),
            (b"4S", Duration::from_secs(4)),
            (b"5m", Duration::from_millis(5)),
            (b"6u", Duration::from_micros(6)),
            (b"7n", Duration::from_nanos(7)),
        ];
        for (text, duration) in cases {
            assert_eq!(
                parse(text),
                Ok(duration),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn rejects_what_the_grammar_does_not_allow() {
        for text in [
            &b""[..],
            b"   ",
            b"S",
            b"1",
            b"12",
            b"1 S",
            b"+1S",
            b"1.5S",
            b"1x",
            b"1\xc2\xb5",
            b"123456789n",
            b"1S1S",
            b"\x001S",
            &[b'1'; 1 << 20],
        ] {
            assert!(
                parse(text).is_err(),
                "{:?} was accepted",
                String::from_utf8_lossy(&text[..text.len().min(16)])
            );
        }
    }

    #[test]
    fn accepts_surrounding_whitespace_and_leading_zeros() {
        assert_eq!(parse(b" \t00000001S\t"), Ok(Duration::from_secs(1)));
        assert_eq!(
            parse(b"99999999H"),
            Ok(Duration::from_secs(99_999_999 * 3_600))
        );
    }

    #[test]
    fn format_picks_the_finest_unit_and_rounds_down() {
        assert_eq!(format(Duration::ZERO), "0n");
        assert_eq!(format(Duration::from_nanos(99_999_999)), "99999999n");
        assert_eq!(format(Duration::from_nanos(100_000_001)), "100000u");
        assert_eq!(format(Duration::from_secs(2)), "2000000u");
        assert_eq!(format(Duration::MAX), "99999999H");
        assert_eq!(format(Duration::from_secs(u64::MAX / 2)), "99999999H");
    }
}
