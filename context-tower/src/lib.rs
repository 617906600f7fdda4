//! Tower layers that carry a [`Context`](context_core::Context)'s deadline and declared values across services, so
//! one pipeline can span several processes with the same semantics — Go's context over
//! gRPC and HTTP, for hyper, axum and tonic.
//!
//! - [`ClientLayer`] wraps an HTTP or gRPC client: it sends the context's remaining time as
//!   `grpc-timeout` and its declared values as W3C `baggage`, fails fast when no time is left,
//!   and drops the call when the context ends.
//! - [`ServerLayer`] wraps a service: it gives each request a child context with the
//!   caller's deadline and values, in the request's extensions; the context ends when the
//!   deadline passes (the layer then answers `DEADLINE_EXCEEDED` / 504), when the caller goes
//!   away, or when the response is done.
//! - [`Baggage`] declares which values cross the wire; everything else stays in the process.
//!
//! Both layers are generic over [`http`] request and response bodies, so they fit hyper
//! services and clients, axum routers (`Router::layer`, then an `Extension<Context>`
//! argument) and tonic servers and channels (`Server::builder().layer(..)`, then
//! `request.extensions().get::<Context>()`).
//!
//! This crate is re-exported by `ctxpipe` as `ctxpipe::tower` with the `tower` feature.
//!
//! # Examples
//!
//! Two services, in memory: the client layer turns the caller's context into headers, the
//! server layer turns them back into a context.
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//! use ctxpipe::{Context, CtxValue};
//! use ctxpipe::tower::{Baggage, BaggageValue, ClientLayer, ServerLayer};
//! use http::{Request, Response};
//! use http_body_util::BodyExt;
//! use tower::{Layer, ServiceExt};
//!
//! #[derive(Debug, PartialEq)]
//! struct UserId(u64);
//! impl CtxValue for UserId {}
//! impl BaggageValue for UserId {
//!     const KEY: &'static str = "user-id";
//! }
//! impl std::fmt::Display for UserId {
//!     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
//!         self.0.fmt(f)
//!     }
//! }
//! impl std::str::FromStr for UserId {
//!     type Err = std::num::ParseIntError;
//!     fn from_str(s: &str) -> Result<Self, Self::Err> {
//!         s.parse().map(UserId)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let baggage = Baggage::new().with::<UserId>();
//!
//! // The callee: its handler finds the caller's deadline and user id in its own context.
//! let handler = tower::service_fn(|req: Request<()>| async move {
//!     let ctx = req.extensions().get::<Context>().unwrap();
//!     let left = ctx.deadline().unwrap() - tokio::time::Instant::now();
//!     let user = ctx.value::<UserId>().unwrap();
//!     Ok::<_, Infallible>(Response::new(format!("user {} has {left:?}", user.0)))
//! });
//! let callee = ServerLayer::new().baggage(baggage.clone()).layer(handler);
//!
//! // The caller: its client layer writes the headers the callee reads.
//! let client = ClientLayer::new().baggage(baggage).layer(callee);
//! let (ctx, _cancel) = Context::background()
//!     .with_value(UserId(42))
//!     .with_timeout(Duration::from_secs(2));
//! let mut request = Request::new(());
//! request.extensions_mut().insert(ctx);
//!
//! let response = client.oneshot(request).await.unwrap();
//! let body = response.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(body, "user 42 has 2s");
//! # }
//! ```
//!
//! # With hyper, axum and tonic
//!
//! - **hyper**: wrap the service handed to `serve_connection` (through
//!   `hyper_util::service::TowerToHyperService`) in [`ServerLayer`], and the client (hyper-util's
//!   `Client` is a tower service) in [`ClientLayer`]. When a client disconnects (HTTP/1.1) or
//!   resets its stream (HTTP/2), hyper drops the response future, which cancels the request's
//!   context.
//! - **axum**: `Router::layer(ServerLayer::new())`; handlers take an `Extension<Context>`.
//! - **tonic**: `Server::builder().layer(ServerLayer::new())`; handlers read
//!   `request.extensions().get::<Context>()`. tonic keeps its own `grpc-timeout` timer, which
//!   answers an overrun with `CANCELLED`; the layer's deadline is set just before that timer
//!   starts (the layers below tonic's are called first), so the caller gets the layer's
//!   `DEADLINE_EXCEEDED` instead. For clients, wrap a `Channel` in [`ClientLayer`] and put the
//!   context in `tonic::Request::extensions_mut()`; note that a `Channel` also enforces
//!   `grpc-timeout` by itself and reports its own expiry as `CANCELLED`.
//!
//! # Wire formats
//!
//! - `grpc-timeout`, exactly as gRPC sends it: see [`grpc_timeout`].
//! - `baggage`, the W3C grammar, percent-encoding and limits: see [`baggage`].
//! - Optionally, a plain-HTTP timeout header in milliseconds: see
//!   [`ServerLayer::timeout_header`].
//!
//! Neither parser panics, whatever the input, and both are covered by property tests
//! (formatting then parsing gives back what was formatted).
//!
//! # Fuzzing
//!
//! The two header parsers also have `cargo fuzz` targets in the repository's `fuzz/`
//! directory, which is outside the workspace and not run by CI. With a nightly toolchain and
//! `cargo install cargo-fuzz`:
//!
//! ```text
//! cd fuzz
//! cargo +nightly fuzz run grpc_timeout -- -max_total_time=60
//! cargo +nightly fuzz run baggage -- -max_total_time=60
//! ```
//!
//! Each target checks that parsing never panics and that whatever parses formats back to
//! an equivalent value.
#![warn(missing_docs, unreachable_pub)]
#![doc(test(attr(deny(warnings))))]
#![forbid(unsafe_code)]

pub mod baggage;
mod client;
pub mod grpc_timeout;
mod server;

pub use baggage::{Baggage, BaggageValue};
pub use client::{ClientFuture, ClientLayer, ClientService};
pub use server::{ServerBody, ServerFuture, ServerLayer, ServerService};

/// The error type of [`ClientService`]: the inner service's error or a
/// [`ctxpipe::Error`](context_core::Error), boxed (as tower's own middleware does).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
