//! The W3C `baggage` header, and [`Baggage`]: which context values cross the wire in it.
//!
//! # Which values cross
//!
//! Only declared ones. A [`Baggage`] registry names each value type that may travel and the
//! baggage key it travels under; every other context value stays in the process. A type
//! declares its key once by implementing [`BaggageValue`], or is declared with an explicit key
//! through [`Baggage::declare`]. The value is written with its [`Display`](fmt::Display) and
//! read back with its [`FromStr`].
//!
//! # The wire format
//!
//! [W3C Baggage][spec] ("Header Content"):
//!
//! ```text
//! baggage-string =  list-member 0*179( OWS "," OWS list-member )
//! list-member    =  key OWS "=" OWS value *( OWS ";" OWS property )
//! property       =  key OWS "=" OWS value
//! property       =/ key OWS
//! key            =  token ; RFC 7230, Section 3.2.6
//! value          =  *baggage-octet
//! baggage-octet  =  %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E
//! ```
//!
//! A value is a percent-encoded UTF-8 string. Reading follows the spec's rules for what to drop:
//!
//! - **Malformed list-members are dropped one by one**, the rest are kept: a key that is not a
//!   token, a value with a byte outside `baggage-octet` (control characters, spaces, non-ASCII),
//!   a broken percent-escape, a malformed property. Properties are checked and then ignored
//!   (their meaning is opaque to the spec).
//! - **Escapes that decode to invalid UTF-8** are replaced with U+FFFD, as the spec requires;
//!   the member is kept.
//! - **Limits.** The spec asks every platform to propagate at least 64 list-members and 8192
//!   bytes; OpenTelemetry's SDKs send up to 180 members, and that is what is read
//!   ([`MAX_MEMBERS`], [`MAX_BYTES`]). List-members beyond the 180th, or that do not end within
//!   the first 8192 bytes (several `baggage` headers count as one list joined by commas), are
//!   dropped whole, never truncated. So a hostile 1 MB header costs a scan of 8 KB.
//! - **Duplicates.** For a declared key, the first list-member that carries it decides.
//! - **Undeclared keys** are ignored: they are neither put in the context nor forwarded.
//!
//! Writing encodes every byte outside `baggage-octet`, and `%` itself, as `%XX`, so any string
//! survives the trip, and drops (whole) what would exceed the same limits.
//!
//! [spec]: https://www.w3.org/TR/baggage/
//!
//! # Examples
//!
//! ```
//! use ctxpipe::tower::baggage;
//!
//! let header = baggage::format([("user-id", "alice"), ("note", "café, 100%")]);
//! assert_eq!(header, "user-id=alice,note=caf%C3%A9%2C%20100%25");
//!
//! let members: Vec<_> = baggage::parse([header.as_bytes()])
//!     .map(|m| (m.key().to_owned(), m.value().to_owned()))
//!     .collect();
//! assert_eq!(members, [("user-id".into(), "alice".into()), ("note".into(), "café, 100%".into())]);
//!
//! // Malformed members are dropped one by one; properties are checked, then ignored.
//! let kept: Vec<_> = baggage::parse([&b"a=1;prop, b c=2, d=\x7f, e = 5 "[..]])
//!     .map(|m| format!("{}={}", m.key(), m.value()))
//!     .collect();
//! assert_eq!(kept, ["a=1", "e=5"]);
//! ```

use std::any::{type_name, TypeId};
use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::str::FromStr;
use std::sync::Arc;

use context_core::{Context, CtxValue};
use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::grpc_timeout::trim_ows;

/// The header's name, `baggage`.
pub const HEADER: HeaderName = HeaderName::from_static("baggage");

/// At most this many list-members are read or written: OpenTelemetry's SDKs' limit, above
/// the spec's minimum of 64.
pub const MAX_MEMBERS: usize = 180;

/// At most this many values can be declared in one [`Baggage`] registry.
pub const MAX_DECLARED: usize = 64;

/// At most this many bytes of baggage are read or written (the spec's minimum to propagate).
pub const MAX_BYTES: usize = 8192;

/// A context value that crosses process boundaries in the `baggage` header under [`KEY`].
///
/// Implement it (one line) to declare the key once, next to the type, and register the type
/// with [`Baggage::with`]. The value is sent as its [`Display`](fmt::Display) and read back with
/// its [`FromStr`]; a value that fails to parse is dropped.
///
/// # Examples
///
/// ```
/// use std::fmt;
/// use std::str::FromStr;
/// use ctxpipe::CtxValue;
/// use ctxpipe::tower::{Baggage, BaggageValue};
///
/// #[derive(Debug, PartialEq)]
/// struct UserId(u64);
///
/// impl CtxValue for UserId {}
/// impl BaggageValue for UserId {
///     const KEY: &'static str = "user-id";
/// }
/// impl fmt::Display for UserId {
///     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
///         self.0.fmt(f)
///     }
/// }
/// impl FromStr for UserId {
///     type Err = std::num::ParseIntError;
///     fn from_str(s: &str) -> Result<Self, Self::Err> {
///         s.parse().map(UserId)
///     }
/// }
///
/// let baggage = Baggage::new().with::<UserId>();
/// assert_eq!(baggage.keys().collect::<Vec<_>>(), ["user-id"]);
/// ```
///
/// [`KEY`]: BaggageValue::KEY
pub trait BaggageValue: CtxValue + FromStr + fmt::Display {
    /// The baggage key, an RFC 7230 token such as `"user-id"`. Keys are case-sensitive.
    const KEY: &'static str;
}

/// The registry of context values that cross the wire: the value types a layer reads from and
/// writes to the `baggage` header, each under its key.
///
/// It is cheap to clone (one reference count) and shared by the server and client layers. A
/// registry holds at most [`MAX_DECLARED`] values.
///
/// # Examples
///
/// ```
/// use ctxpipe::{Context, CtxValue};
/// use ctxpipe::tower::Baggage;
///
/// #[derive(Debug, PartialEq)]
/// struct Tenant(String);
/// impl CtxValue for Tenant {}
/// impl std::fmt::Display for Tenant {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str(&self.0)
///     }
/// }
/// impl std::str::FromStr for Tenant {
///     type Err = std::convert::Infallible;
///     fn from_str(s: &str) -> Result<Self, Self::Err> {
///         Ok(Tenant(s.to_owned()))
///     }
/// }
///
/// let baggage = Baggage::new().declare::<Tenant>("tenant");
///
/// // Writing: only declared values, whatever else the context carries.
/// let ctx = Context::background().with_value(Tenant("acme corp".into())).with_value(7u32);
/// let header = baggage.to_header(&ctx).unwrap();
/// assert_eq!(header, "tenant=acme%20corp");
///
/// // Reading: declared keys become context values; anything else is ignored.
/// let mut headers = http::HeaderMap::new();
/// headers.insert("baggage", "tenant=acme%20corp, other=1".parse().unwrap());
/// let ctx = baggage.read(&headers, &Context::background());
/// assert_eq!(ctx.value::<Tenant>(), Some(&Tenant("acme corp".into())));
/// ```
#[derive(Clone, Default)]
pub struct Baggage {
    entries: Arc<[Entry]>,
}

/// One declared value type.
#[derive(Clone, Copy)]
struct Entry {
    key: &'static str,
    type_id: TypeId,
    type_name: &'static str,
    /// Parses the value and returns `ctx` with it, or `None` if it does not parse.
    decode: fn(&str, &Context) -> Option<Context>,
    /// Writes the value carried by `ctx`, percent-encoded, or returns `false` if there is none
    /// (or it would not fit in [`MAX_BYTES`]).
    encode: fn(&Context, &mut String) -> bool,
}

fn decode<T: CtxValue + FromStr>(value: &str, ctx: &Context) -> Option<Context> {
    value.parse::<T>().ok().map(|value| ctx.with_value(value))
}

fn encode<T: CtxValue + fmt::Display>(ctx: &Context, out: &mut String) -> bool {
    match ctx.value::<T>() {
        Some(value) => write!(PercentEncoder { out }, "{value}").is_ok(),
        None => false,
    }
}

impl Baggage {
    /// An empty registry: nothing crosses the wire.
    pub fn new() -> Baggage {
        Baggage::default()
    }

    /// Declares `T` to cross the wire under its [`BaggageValue::KEY`].
    ///
    /// # Panics
    ///
    /// As [`declare`](Baggage::declare).
    pub fn with<T: BaggageValue>(self) -> Baggage {
        self.declare::<T>(T::KEY)
    }

    /// Declares `T` to cross the wire under `key`: written with its `Display`, read back with
    /// its `FromStr`.
    ///
    /// # Panics
    ///
    /// If `key` is not an RFC 7230 token, if `key` or `T` is already declared, or if the
    /// registry already holds [`MAX_DECLARED`] values: these are mistakes in the declaration,
    /// never caused by what arrives on the wire.
    pub fn declare<T: CtxValue + FromStr + fmt::Display>(self, key: &'static str) -> Baggage {
        assert!(
            !key.is_empty() && key.bytes().all(is_tchar),
            "baggage key {key:?} is not a token (letters, digits and !#$%&'*+-.^_`|~)"
        );
        let type_id = TypeId::of::<T>();
        for entry in self.entries.iter() {
            assert!(entry.key != key, "baggage key {key:?} is declared twice");
            assert!(
                entry.type_id != type_id,
                "type `{}` is declared twice as baggage (keys {:?} and {key:?})",
                entry.type_name,
                entry.key
            );
        }
        assert!(
            self.entries.len() < MAX_DECLARED,
            "at most {MAX_DECLARED} values can be declared as baggage"
        );
        let mut entries = self.entries.to_vec();
        entries.push(Entry {
            key,
            type_id,
            type_name: type_name::<T>(),
            decode: decode::<T>,
            encode: encode::<T>,
        });
        Baggage {
            entries: entries.into(),
        }
    }

    /// The declared keys, in declaration order.
    pub fn keys(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.iter().map(|entry| entry.key)
    }

    /// Returns `true` if no value is declared.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A child of `ctx` carrying every declared value found in `headers`' `baggage` fields
    /// (the first list-member with a declared key decides; a value that does not parse is
    /// left out). Returns a clone of `ctx` when nothing is declared or found.
    pub fn read(&self, headers: &HeaderMap, ctx: &Context) -> Context {
        let mut ctx = ctx.clone();
        if self.entries.is_empty() {
            return ctx;
        }
        // At most MAX_DECLARED (64) entries: one bit each.
        let all = u64::MAX >> (64 - self.entries.len());
        let mut seen = 0u64;
        let values = headers.get_all(HEADER);
        for member in parse(values.iter().map(HeaderValue::as_bytes)) {
            let Some(index) = self.entries.iter().position(|e| e.key == member.key) else {
                continue;
            };
            let bit = 1 << index;
            if seen & bit != 0 {
                continue;
            }
            seen |= bit;
            if let Some(with_value) = (self.entries[index].decode)(&member.value, &ctx) {
                ctx = with_value;
            }
            if seen == all {
                break;
            }
        }
        ctx
    }

    /// The `baggage` value for the declared values that `ctx` carries, in declaration order;
    /// `None` when it carries none. A value whose encoding would take the header past
    /// [`MAX_BYTES`] is left out.
    pub fn to_header(&self, ctx: &Context) -> Option<HeaderValue> {
        let mut out = String::new();
        for entry in self.entries.iter() {
            let start = out.len();
            if start > 0 {
                out.push(',');
            }
            out.push_str(entry.key);
            out.push('=');
            if !(entry.encode)(ctx, &mut out) || out.len() > MAX_BYTES {
                out.truncate(start);
            }
        }
        if out.is_empty() {
            return None;
        }
        // Only tokens, `=`, `,`, baggage-octets and `%XX`: always a valid header value.
        HeaderValue::try_from(out).ok()
    }
}

impl fmt::Debug for Baggage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|e| (e.key, e.type_name)))
            .finish()
    }
}

/// One list-member read from a `baggage` header: its key and its percent-decoded value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member<'a> {
    key: &'a str,
    value: Cow<'a, str>,
}

impl<'a> Member<'a> {
    /// The key, an RFC 7230 token.
    pub fn key(&self) -> &'a str {
        self.key
    }

    /// The value, percent-decoded (borrowed from the header unless it had escapes).
    pub fn value(&self) -> &str {
        &self.value
    }
}

/// Reads the list-members of one or more `baggage` header values (in order, as if joined by
/// commas), dropping malformed ones and stopping at the limits, as the [module
/// docs](self#the-wire-format) describe. Never panics.
///
/// ```
/// use ctxpipe::tower::baggage;
///
/// let headers = [&b"user-id=alice"[..], b"region = eu-west ;pinned"];
/// let keys: Vec<_> = baggage::parse(headers).map(|m| m.key()).collect();
/// assert_eq!(keys, ["user-id", "region"]);
/// ```
pub fn parse<'a, I>(headers: I) -> Members<'a, I::IntoIter>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    Members {
        headers: headers.into_iter(),
        current: &[],
        after_cut: None,
        budget: MAX_BYTES,
        members: 0,
        started: false,
        done: false,
    }
}

/// The iterator returned by [`parse()`].
#[derive(Debug)]
pub struct Members<'a, I> {
    headers: I,
    /// What is left to read of the current header, cut at the byte limit.
    current: &'a [u8],
    /// When the current header was cut at the byte limit: the first byte cut off.
    after_cut: Option<u8>,
    /// Bytes of the joined baggage-string not yet handed to `current`.
    budget: usize,
    /// List-members seen so far, malformed ones included.
    members: usize,
    started: bool,
    done: bool,
}

impl<'a, I: Iterator<Item = &'a [u8]>> Iterator for Members<'a, I> {
    type Item = Member<'a>;

    fn next(&mut self) -> Option<Member<'a>> {
        while !self.done {
            if self.current.is_empty() && !self.next_header() {
                self.done = true;
                break;
            }
            let (item, complete) = match self.current.iter().position(|&b| b == b',') {
                Some(comma) => {
                    let item = &self.current[..comma];
                    self.current = &self.current[comma + 1..];
                    (item, true)
                }
                None => {
                    let item = self.current;
                    self.current = &[];
                    (item, matches!(self.after_cut, None | Some(b',')))
                }
            };
            if !complete {
                // The list-member runs past the byte limit: dropped whole, and so is the rest.
                self.done = true;
                break;
            }
            let item = trim_ows(item);
            if item.is_empty() {
                continue;
            }
            if self.members == MAX_MEMBERS {
                self.done = true;
                break;
            }
            self.members += 1;
            if let Some(member) = parse_member(item) {
                return Some(member);
            }
        }
        None
    }
}

impl<'a, I: Iterator<Item = &'a [u8]>> Members<'a, I> {
    /// Moves to the next header within the byte budget; `false` when there is none.
    fn next_header(&mut self) -> bool {
        if self.after_cut.is_some() {
            return false;
        }
        for header in self.headers.by_ref() {
            if self.started {
                // The comma that joins two header values.
                if self.budget == 0 {
                    return false;
                }
                self.budget -= 1;
            }
            self.started = true;
            let take = header.len().min(self.budget);
            self.current = &header[..take];
            self.after_cut = header.get(take).copied();
            self.budget -= take;
            if !self.current.is_empty() {
                return true;
            }
            if self.after_cut.is_some() {
                return false;
            }
        }
        false
    }
}

/// Parses one trimmed, non-empty list-member; `None` if it is malformed.
fn parse_member(item: &[u8]) -> Option<Member<'_>> {
    let mut parts = item.split(|&b| b == b';');
    let pair = parts.next()?;
    let eq = pair.iter().position(|&b| b == b'=')?;
    let key = trim_ows(&pair[..eq]);
    let value = trim_ows(&pair[eq + 1..]);
    if key.is_empty() || !key.iter().copied().all(is_tchar) {
        return None;
    }
    if !value.iter().copied().all(is_baggage_octet) {
        return None;
    }
    for property in parts {
        if !is_property(trim_ows(property)) {
            return None;
        }
    }
    let key = std::str::from_utf8(key).ok()?;
    let value = percent_decode(value)?;
    // What is read can always be written back, so a proxy that forwards baggage loses nothing
    // it accepted: a value that decodes into more than it was (U+FFFD for invalid UTF-8 takes
    // nine bytes escaped, `+` three) may not fit the byte limit once encoded.
    if key.len() + 1 + encoded_len(&value) > MAX_BYTES {
        return None;
    }
    Some(Member { key, value })
}

/// The length of `value` once [`PercentEncoder`] has written it.
fn encoded_len(value: &str) -> usize {
    value
        .bytes()
        .map(|byte| if escaped(byte) { 3 } else { 1 })
        .sum()
}

/// Whether [`PercentEncoder`] writes `byte` as a `%XX` escape: every byte that is not a
/// `baggage-octet`, `%` (which starts one) and `+` (which receivers that form-decode values,
/// as several do, would read as a space).
fn escaped(byte: u8) -> bool {
    !is_baggage_octet(byte) || byte == b'%' || byte == b'+'
}

/// `value` (one `baggage` header as received) without the list-members whose key is in `keys`;
/// the others are kept byte for byte. `None` when nothing is left.
pub(crate) fn without_keys(value: &HeaderValue, keys: &[&str]) -> Option<HeaderValue> {
    let bytes = value.as_bytes();
    let is_dropped = |member: &[u8]| {
        let key = member
            .split(|&b| b == b'=' || b == b';')
            .next()
            .unwrap_or_default();
        keys.iter().any(|k| k.as_bytes() == trim_ows(key))
    };
    if !bytes.split(|&b| b == b',').any(is_dropped) {
        return Some(value.clone());
    }
    let kept: Vec<&[u8]> = bytes
        .split(|&b| b == b',')
        .filter(|member| !is_dropped(member) && !trim_ows(member).is_empty())
        .collect();
    if kept.is_empty() {
        return None;
    }
    // Parts of a valid header value joined by commas: still a valid header value.
    HeaderValue::from_bytes(&kept.join(&b","[..])).ok()
}

/// `property = key OWS "=" OWS value / key OWS` (already trimmed).
fn is_property(property: &[u8]) -> bool {
    let (key, value) = match property.iter().position(|&b| b == b'=') {
        Some(eq) => (trim_ows(&property[..eq]), trim_ows(&property[eq + 1..])),
        None => (property, &[][..]),
    };
    !key.is_empty()
        && key.iter().copied().all(is_tchar)
        && value.iter().copied().all(is_baggage_octet)
}

/// Decodes `%XX` escapes; `None` for a broken escape. Bytes that are not UTF-8 once decoded
/// become U+FFFD, as the spec requires.
fn percent_decode(value: &[u8]) -> Option<Cow<'_, str>> {
    if !value.contains(&b'%') {
        return std::str::from_utf8(value).ok().map(Cow::Borrowed);
    }
    let mut out = Vec::with_capacity(value.len());
    let mut rest = value;
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'%' {
            let [high, low, tail @ ..] = tail else {
                return None;
            };
            out.push(hex_value(*high)? << 4 | hex_value(*low)?);
            rest = tail;
        } else {
            out.push(byte);
            rest = tail;
        }
    }
    Some(Cow::Owned(match String::from_utf8(out) {
        Ok(text) => text,
        Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
    }))
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Writes `members` as a `baggage` value: `key=value` pairs joined by `,`, values
/// percent-encoded so that [`parse()`] gives them back exactly.
///
/// A member whose key is not an RFC 7230 token is left out, and so is any member that would
/// take the result past [`MAX_MEMBERS`] or [`MAX_BYTES`] (whole, never truncated).
///
/// ```
/// use ctxpipe::tower::baggage::format;
///
/// assert_eq!(format([("k", "a b;c")]), "k=a%20b%3Bc");
/// assert_eq!(format([("not a token", "x"), ("ok", "")]), "ok=");
/// ```
pub fn format<'a, I>(members: I) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut out = String::new();
    let mut count = 0;
    for (key, value) in members {
        if count == MAX_MEMBERS {
            break;
        }
        if key.is_empty() || !key.bytes().all(is_tchar) {
            continue;
        }
        let start = out.len();
        if start > 0 {
            out.push(',');
        }
        out.push_str(key);
        out.push('=');
        let written = PercentEncoder { out: &mut out }.write_str(value);
        if written.is_err() || out.len() > MAX_BYTES {
            out.truncate(start);
            continue;
        }
        count += 1;
    }
    out
}

/// Percent-encodes what is written through it into `out`, failing once `out` would pass
/// [`MAX_BYTES`] (so a huge `Display` costs no more than that).
struct PercentEncoder<'a> {
    out: &'a mut String,
}

impl fmt::Write for PercentEncoder<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        for byte in s.bytes() {
            if escaped(byte) {
                self.out.push('%');
                self.out.push(char::from(HEX[usize::from(byte >> 4)]));
                self.out.push(char::from(HEX[usize::from(byte & 0xf)]));
            } else {
                self.out.push(char::from(byte));
            }
            if self.out.len() > MAX_BYTES {
                return Err(fmt::Error);
            }
        }
        Ok(())
    }
}

/// RFC 7230 `tchar`.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// W3C `baggage-octet`: printable US-ASCII except DQUOTE, comma, semicolon and backslash.
fn is_baggage_octet(byte: u8) -> bool {
    matches!(byte, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(headers: &[&[u8]]) -> Vec<(String, String)> {
        parse(headers.iter().copied())
            .map(|m| (m.key().to_owned(), m.value().to_owned()))
            .collect()
    }

    fn pair(key: &str, value: &str) -> (String, String) {
        (key.to_owned(), value.to_owned())
    }

    #[test]
    fn the_spec_examples() {
        assert_eq!(
            pairs(&[b"key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue"]),
            [pair("key1", "value1"), pair("key2", "value2"), pair("key3", "value3")]
        );
        assert_eq!(
            pairs(&[b"userId=alice", b"serverNode=DF%2028,isProduction=false"]),
            [
                pair("userId", "alice"),
                pair("serverNode", "DF 28"),
                pair("isProduction", "false")
            ]
        );
        assert_eq!(
            pairs(&[b"k=a=b=="]),
            [pair("k", "a=b==")],
            "values may hold `=`"
        );
    }

    #[test]
    fn malformed_members_are_dropped_one_by_one() {
        let header: &[u8] =
            b"a=1,=2,b,c=\"q\",d=x y,e=%4,f=%ZZ,h=\xc3\xa9,i=1;,j=1;=p,k=ok,l\x01=1,m=\t7\t";
        assert_eq!(
            pairs(&[header]),
            [pair("a", "1"), pair("k", "ok"), pair("m", "7")]
        );
        assert_eq!(
            pairs(&[b"g=%FF,n=x%C3,o=%C3%A9"]),
            [
                pair("g", "\u{FFFD}"),
                pair("n", "x\u{FFFD}"),
                pair("o", "é")
            ],
            "escapes that are not UTF-8 become U+FFFD"
        );
        assert_eq!(
            pairs(&[b",,, a=1 ,,"]),
            [pair("a", "1")],
            "empty members are skipped"
        );
        assert_eq!(pairs(&[b"", b"a=1"]), [pair("a", "1")]);
    }

    #[test]
    fn at_most_180_members() {
        let header: Vec<String> = (0..250).map(|i| format!("k{i}={i}")).collect();
        let header = header.join(",");
        let read = pairs(&[header.as_bytes()]);
        assert_eq!(read.len(), MAX_MEMBERS);
        assert_eq!(read[179], pair("k179", "179"));
        // Malformed members count towards the limit too.
        let header = format!("{}a=1", "bad,".repeat(180));
        assert!(pairs(&[header.as_bytes()]).is_empty());
    }

    #[test]
    fn every_member_read_formats_back() {
        // 900 invalid bytes: 900 U+FFFD, 8100 bytes escaped: read, and written back the same.
        let fits = format!("a={}", "%FF".repeat(900));
        let read = pairs(&[fits.as_bytes()]);
        assert_eq!(read, [pair("a", &"\u{FFFD}".repeat(900))]);
        let header = format(read.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        assert_eq!(pairs(&[header.as_bytes()]), read);
        // 911 of them would take 8199 bytes escaped: more than can be written, so not read.
        let too_long = format!("a={},b=1", "%FF".repeat(911));
        assert_eq!(pairs(&[too_long.as_bytes()]), [pair("b", "1")]);
        // The same for a value of `+`, which is written escaped.
        let pluses = format!("p={}", "+".repeat(2800));
        assert!(pairs(&[pluses.as_bytes()]).is_empty());
    }

    #[test]
    fn a_plus_is_escaped_so_that_form_decoders_keep_it() {
        assert_eq!(format([("k", "a+b c")]), "k=a%2Bb%20c");
        assert_eq!(pairs(&[b"k=a%2Bb"]), [pair("k", "a+b")]);
        // A literal `+` on the wire is read as itself: the spec has no form decoding.
        assert_eq!(pairs(&[b"k=a+b"]), [pair("k", "a+b")]);
    }

    #[test]
    fn at_most_8192_bytes_and_members_are_never_cut() {
        // 8190 bytes of padding value, then members that straddle the limit.
        let pad = "x".repeat(MAX_BYTES - 4);
        let header = format!("p={pad},ab=1");
        assert_eq!(header.len(), MAX_BYTES + 3);
        assert_eq!(pairs(&[header.as_bytes()]), [pair("p", &pad)]);
        // A member that ends exactly at the limit is kept.
        let header = format!("p={},a=1,b=2", "x".repeat(MAX_BYTES - 6));
        let read = pairs(&[header.as_bytes()]);
        assert_eq!(read.len(), 2);
        assert_eq!(read[1], pair("a", "1"));
        // Across headers, the joining comma counts.
        let first = format!("p={}", "x".repeat(MAX_BYTES - 2));
        assert_eq!(pairs(&[first.as_bytes(), b"a=1"]).len(), 1);
        let first = format!("p={}", "x".repeat(MAX_BYTES - 6));
        assert_eq!(pairs(&[first.as_bytes(), b"a=1", b"b=2"]).len(), 2);
        // A megabyte-long header is cut at the limit, not scanned.
        let huge = format!("a=1,b={}", "y".repeat(1 << 20));
        assert_eq!(pairs(&[huge.as_bytes()]), [pair("a", "1")]);
    }

    #[test]
    fn format_round_trips_and_respects_the_limits() {
        let value = "naïve \"quoted\", ;\\ 100% \u{0}\n";
        let header = format([("k", value)]);
        assert!(header
            .bytes()
            .all(|b| b == b',' || b == b'=' || is_baggage_octet(b)));
        assert_eq!(pairs(&[header.as_bytes()]), [pair("k", value)]);

        let many: Vec<(String, String)> = (0..200).map(|i| (format!("k{i}"), "v".into())).collect();
        let header = format(many.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        assert_eq!(header.split(',').count(), MAX_MEMBERS);

        let big = "z".repeat(MAX_BYTES);
        assert_eq!(format([("a", "1"), ("big", &big), ("b", "2")]), "a=1,b=2");
    }
}
