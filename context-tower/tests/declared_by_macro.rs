//! `#[ctx_value(baggage = "key")]` declares a value that crosses the wire under that key.

use std::fmt;
use std::str::FromStr;

use context_tower::{Baggage, BaggageValue};
use ctxpipe::{ctx_value, Context};
use http::{HeaderMap, HeaderValue};

#[ctx_value(baggage = "user-id")]
#[derive(Debug, PartialEq)]
struct UserId(u64);

impl FromStr for UserId {
    type Err = std::num::ParseIntError;

    fn from_str(text: &str) -> Result<UserId, Self::Err> {
        text.parse().map(UserId)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Stays in the process: not declared.
#[ctx_value]
struct ApiKey;

#[test]
fn the_macro_declares_the_key() {
    assert_eq!(<UserId as BaggageValue>::KEY, "user-id");
    let baggage = Baggage::new().with::<UserId>();
    assert_eq!(baggage.keys().collect::<Vec<_>>(), ["user-id"]);
}

#[test]
fn a_declared_value_round_trips_and_an_undeclared_one_stays_home() {
    let baggage = Baggage::new().with::<UserId>();
    let ctx = Context::background()
        .with_value(UserId(42))
        .with_value(ApiKey);
    let header = baggage
        .to_header(&ctx)
        .expect("a declared value is present");
    assert_eq!(header, HeaderValue::from_static("user-id=42"));

    let mut headers = HeaderMap::new();
    headers.insert("baggage", header);
    let received = baggage.read(&headers, &Context::background());
    assert_eq!(UserId::from_ctx(&received), Some(&UserId(42)));
    assert!(received.value::<ApiKey>().is_none());
}
