//! What each layer adds to a request, beside the same service without it.
//!
//! Run with `cargo bench -p context-tower --bench layers`.
//!
//! Every request goes through `ServiceExt::oneshot` to an in-memory `service_fn` that answers
//! at once (no sockets), so the difference between a row and its `baseline` is the layer's
//! own cost per request:
//!
//! - `server`: the bare handler; the server layer on a request without headers (a child
//!   context, the extension, the response future and body wrapper); and on a request with
//!   `grpc-timeout` and a `baggage` header holding a declared value and two other members.
//! - `client`: the bare transport; the client layer with no context (passes through); and with
//!   a context that has a deadline and a declared value (writes both headers).

use std::convert::Infallible;
use std::fmt;
use std::hint::black_box;
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use ctxpipe::tower::{Baggage, BaggageValue, ClientLayer, ServerLayer};
use ctxpipe::{Context, CtxValue};
use http::{Request, Response};
use http_body_util::Full;
use tokio::runtime::Runtime;
use tower::{Layer, ServiceExt};

struct UserId(u64);

impl CtxValue for UserId {}

impl BaggageValue for UserId {
    const KEY: &'static str = "user-id";
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for UserId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(UserId)
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

fn server(c: &mut Criterion) {
    let rt = runtime();
    let handler = tower::service_fn(|req: Request<()>| async move {
        black_box(req.extensions().get::<Context>().is_some());
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    });
    let layered = ServerLayer::new()
        .baggage(Baggage::new().with::<UserId>())
        .layer(handler);

    let mut group = c.benchmark_group("server");
    group.bench_function("baseline", |b| {
        b.to_async(&rt)
            .iter(|| async { handler.oneshot(Request::new(())).await.unwrap() });
    });
    group.bench_function("layer, no headers", |b| {
        b.to_async(&rt)
            .iter(|| async { layered.clone().oneshot(Request::new(())).await.unwrap() });
    });
    group.bench_function("layer, grpc-timeout + baggage", |b| {
        b.to_async(&rt)
            .iter(|| async { layered.clone().oneshot(with_headers()).await.unwrap() });
    });
    group.bench_function("baseline, same headers", |b| {
        b.to_async(&rt)
            .iter(|| async { handler.oneshot(with_headers()).await.unwrap() });
    });
    group.finish();
}

/// A request with a deadline and three baggage members, one of them declared.
fn with_headers() -> Request<()> {
    Request::builder()
        .header("grpc-timeout", "1999000u")
        .header("baggage", "trace=abc, user-id=42;ttl=3, tenant=acme")
        .body(())
        .unwrap()
}

fn client(c: &mut Criterion) {
    let rt = runtime();
    let transport = tower::service_fn(|req: Request<()>| async move {
        black_box(req.headers().len());
        Ok::<_, Infallible>(Response::new(()))
    });
    let layered = ClientLayer::new()
        .baggage(Baggage::new().with::<UserId>())
        .layer(transport);
    let (ctx, _cancel) = rt.block_on(async {
        Context::background()
            .with_value(UserId(42))
            .with_timeout(Duration::from_secs(3600))
    });

    let mut group = c.benchmark_group("client");
    group.bench_function("baseline", |b| {
        b.to_async(&rt).iter(|| async {
            let mut request = Request::new(());
            request.extensions_mut().insert(ctx.clone());
            transport.oneshot(request).await.unwrap()
        });
    });
    group.bench_function("baseline, no context", |b| {
        b.to_async(&rt)
            .iter(|| async { transport.oneshot(Request::new(())).await.unwrap() });
    });
    group.bench_function("layer, no context", |b| {
        b.to_async(&rt)
            .iter(|| async { layered.clone().oneshot(Request::new(())).await.unwrap() });
    });
    group.bench_function("layer, deadline + baggage", |b| {
        b.to_async(&rt).iter(|| async {
            let mut request = Request::new(());
            request.extensions_mut().insert(ctx.clone());
            layered.clone().oneshot(request).await.unwrap()
        });
    });
    group.finish();
}

criterion_group!(benches, server, client);
criterion_main!(benches);
