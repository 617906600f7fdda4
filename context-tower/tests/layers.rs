//! The layers' edge cases, in memory and on tokio's paused clock: answers the server layer
//! gives by itself, when a request's context ends, and what the client layer writes.

mod common;

use std::convert::Infallible;
use std::future::{pending, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use common::{Secret, UserId};
use ctxpipe::tower::{ClientLayer, ServerLayer};
use ctxpipe::{Context, Error};
use http::{HeaderMap, HeaderName, Request, Response};
use http_body_util::{BodyExt, Full};
use tokio::time::Instant;
use tower::{Layer, ServiceExt};

type Seen = Arc<Mutex<Vec<Context>>>;

/// A handler that records its context and answers `body`, or never answers if `hang`.
fn handler(
    seen: &Seen,
    calls: &Arc<AtomicUsize>,
    hang: bool,
) -> impl tower::Service<
    Request<()>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send,
> + Clone {
    let (seen, calls) = (seen.clone(), calls.clone());
    tower::service_fn(move |req: Request<()>| {
        calls.fetch_add(1, Ordering::SeqCst);
        seen.lock()
            .unwrap()
            .push(req.extensions().get::<Context>().unwrap().clone());
        async move {
            if hang {
                pending::<()>().await;
            }
            Ok(Response::new(Full::new(Bytes::from_static(b"handled"))))
        }
    })
}

fn request(headers: &[(&str, &str)]) -> Request<()> {
    let mut request = Request::new(());
    for (name, value) in headers {
        request.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    request
}

const GRPC: (&str, &str) = ("content-type", "application/grpc+proto");

#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    grpc_status: Option<String>,
    body: String,
}

async fn answer(
    response: Response<impl http_body::Body<Data = Bytes, Error = Infallible>>,
) -> Answer {
    let status = response.status().as_u16();
    let grpc_status = response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        grpc_status,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

fn http(status: u16, body: &str) -> Answer {
    Answer {
        status,
        grpc_status: None,
        body: body.to_owned(),
    }
}

fn grpc(code: &str) -> Answer {
    Answer {
        status: 200,
        grpc_status: Some(code.to_owned()),
        body: String::new(),
    }
}

#[tokio::test(start_paused = true)]
async fn the_handler_gets_the_shorter_of_both_timeouts() {
    let (seen, calls) = (Seen::default(), Arc::default());
    let service = ServerLayer::new()
        .timeout_header(HeaderName::from_static("x-request-timeout"))
        .layer(handler(&seen, &calls, false));
    for (headers, expected) in [
        (&[("grpc-timeout", "3S")][..], Some(3_000)),
        (&[("x-request-timeout", "1500")], Some(1_500)),
        (
            &[("grpc-timeout", "3S"), ("x-request-timeout", "2000")],
            Some(2_000),
        ),
        (
            &[("grpc-timeout", "1000000u"), ("x-request-timeout", "2000")],
            Some(1_000),
        ),
        (&[], None),
    ] {
        let response = service.clone().oneshot(request(headers)).await.unwrap();
        assert_eq!(answer(response).await, http(200, "handled"));
        let ctx = seen.lock().unwrap().pop().unwrap();
        let left = ctx.deadline().map(|d| (d - Instant::now()).as_millis());
        assert_eq!(left, expected, "{headers:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn malformed_timeouts_get_400_or_internal_and_the_handler_is_not_called() {
    let (seen, calls) = (Seen::default(), Arc::new(AtomicUsize::new(0)));
    let service = ServerLayer::new()
        .timeout_header(HeaderName::from_static("x-request-timeout"))
        .layer(handler(&seen, &calls, false));
    let too_long = "9".repeat(1 << 20);
    for headers in [
        &[("grpc-timeout", "1s")][..],
        &[("grpc-timeout", "123456789S")],
        &[("grpc-timeout", "")],
        &[("grpc-timeout", too_long.as_str())],
        &[("grpc-timeout", "1S"), ("grpc-timeout", "2S")],
        &[("x-request-timeout", "1.5")],
        &[("x-request-timeout", "-1")],
    ] {
        let response = service.clone().oneshot(request(headers)).await.unwrap();
        let got = answer(response).await;
        assert_eq!(got.status, 400, "{headers:?}");
        assert!(got.body.starts_with("malformed"), "{got:?}");

        let mut grpc_request = request(headers);
        grpc_request
            .headers_mut()
            .insert("content-type", GRPC.1.parse().unwrap());
        let response = service.clone().oneshot(grpc_request).await.unwrap();
        assert_eq!(response.headers()["content-type"], "application/grpc");
        assert!(response.headers()["grpc-message"]
            .to_str()
            .unwrap()
            .starts_with("malformed"));
        assert_eq!(answer(response).await, grpc("3"), "{headers:?}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn an_expired_deadline_is_answered_without_calling_the_handler() {
    let (seen, calls) = (Seen::default(), Arc::new(AtomicUsize::new(0)));
    let service = ServerLayer::new().layer(handler(&seen, &calls, false));
    for timeout in ["0n", "0H", "00000000m"] {
        let response = service
            .clone()
            .oneshot(request(&[("grpc-timeout", timeout)]))
            .await;
        assert_eq!(
            answer(response.unwrap()).await,
            http(504, "request deadline exceeded")
        );
        let response = service
            .clone()
            .oneshot(request(&[("grpc-timeout", timeout), GRPC]))
            .await;
        assert_eq!(answer(response.unwrap()).await, grpc("4"));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_overruns_is_dropped_and_answered_504_at_the_deadline() {
    let (seen, calls) = (Seen::default(), Arc::default());
    let service = ServerLayer::new().layer(handler(&seen, &calls, true));
    let start = Instant::now();
    let response = service
        .clone()
        .oneshot(request(&[("grpc-timeout", "250m")]))
        .await;
    assert_eq!(start.elapsed(), Duration::from_millis(250));
    assert_eq!(
        answer(response.unwrap()).await,
        http(504, "request deadline exceeded")
    );
    let ctx = seen.lock().unwrap().pop().unwrap();
    assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));

    let response = service
        .oneshot(request(&[("grpc-timeout", "250m"), GRPC]))
        .await;
    assert_eq!(answer(response.unwrap()).await, grpc("4"));
}

#[tokio::test(start_paused = true)]
async fn cancelling_the_base_context_ends_requests_with_503_or_unavailable() {
    let (seen, calls) = (Seen::default(), Arc::new(AtomicUsize::new(0)));
    let (base, shutdown) = Context::background().with_cancel();
    let service = ServerLayer::new()
        .base(base)
        .layer(handler(&seen, &calls, true));
    let in_flight = tokio::spawn(service.clone().oneshot(request(&[])));
    tokio::task::yield_now().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    shutdown.cancel();
    let response = in_flight.await.unwrap().unwrap();
    let got = answer(response).await;
    assert_eq!(got.status, 503);
    // Later requests are answered at once.
    let response = service.oneshot(request(&[GRPC])).await.unwrap();
    assert_eq!(answer(response).await, grpc("14"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_response_future_cancels_the_requests_context() {
    let (seen, calls) = (Seen::default(), Arc::default());
    let service = ServerLayer::new().layer(handler(&seen, &calls, true));
    let in_flight = tokio::spawn(service.oneshot(request(&[("grpc-timeout", "1H")])));
    tokio::task::yield_now().await;
    let ctx = seen.lock().unwrap().pop().unwrap();
    assert!(!ctx.is_done());
    in_flight.abort();
    let _ = in_flight.await;
    assert_eq!(ctx.err(), Some(Error::Canceled));
}

#[tokio::test(start_paused = true)]
async fn the_context_lives_until_the_response_body_ends() {
    let (seen, calls) = (Seen::default(), Arc::default());
    let service = ServerLayer::new().layer(handler(&seen, &calls, false));

    let response = service.clone().oneshot(request(&[])).await.unwrap();
    let ctx = seen.lock().unwrap().pop().unwrap();
    assert!(!ctx.is_done(), "the body may still use the context");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "handled");
    assert_eq!(ctx.err(), Some(Error::Canceled), "the response is complete");

    let response = service.oneshot(request(&[])).await.unwrap();
    let ctx = seen.lock().unwrap().pop().unwrap();
    drop(response);
    assert_eq!(ctx.err(), Some(Error::Canceled), "the body was dropped");
}

#[tokio::test(start_paused = true)]
async fn declared_baggage_becomes_context_values() {
    let (seen, calls) = (Seen::default(), Arc::default());
    let (base, _) = Context::background()
        .with_value(Secret("base"))
        .with_cancel();
    let service = ServerLayer::new()
        .base(base)
        .baggage(common::baggage())
        .layer(handler(&seen, &calls, false));
    let hostile = format!("user-id=1,{}", "x".repeat(1 << 20));
    for (headers, expected) in [
        (&[("baggage", "user-id=42")][..], Some(UserId(42))),
        (
            &[("baggage", "other=1 , user-id = 7 ;ttl=3")],
            Some(UserId(7)),
        ),
        (
            &[("baggage", "a=1"), ("baggage", "user-id=8")],
            Some(UserId(8)),
        ),
        (&[("baggage", "user-id=1,user-id=2")], Some(UserId(1))),
        (&[("baggage", "user-id=not-a-number")], None),
        (&[("baggage", "user-id=%FF")], None),
        (&[("baggage", "user-id=4 2")], None),
        (&[("baggage", "USER-ID=42")], None),
        (&[("baggage", hostile.as_str())], Some(UserId(1))),
        (&[], None),
    ] {
        let response = service.clone().oneshot(request(headers)).await.unwrap();
        assert_eq!(answer(response).await, http(200, "handled"));
        let ctx = seen.lock().unwrap().pop().unwrap();
        assert_eq!(ctx.value::<UserId>(), expected.as_ref(), "{headers:?}");
        assert_eq!(
            ctx.value::<Secret>().unwrap().0,
            "base",
            "base values are inherited"
        );
    }
}

#[tokio::test]
async fn hostile_bytes_never_panic() {
    let (seen, calls) = (Seen::default(), Arc::default());
    let service = ServerLayer::new()
        .baggage(common::baggage())
        .timeout_header(HeaderName::from_static("x-request-timeout"))
        .layer(handler(&seen, &calls, false));
    // (Other control characters cannot reach a service: `http` rejects them in header values.)
    let values: [&[u8]; 6] = [
        b"\xff\xfe\x80",
        b"user-id=\t1\t\x80",
        b"\t\t",
        b"=;=;=,,,;",
        b"user-id=1;\xc3\xa9",
        b"%%%",
    ];
    for value in values {
        for name in [
            "grpc-timeout",
            "baggage",
            "x-request-timeout",
            "content-type",
        ] {
            let mut req = Request::new(());
            req.headers_mut().insert(
                HeaderName::from_static(name),
                http::HeaderValue::from_bytes(value).unwrap(),
            );
            let response = service.clone().oneshot(req).await.unwrap();
            assert!([200, 400].contains(&response.status().as_u16()));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Client layer

/// A transport that records the headers it is sent and answers after `delay` (or never).
fn transport(
    sent: &Arc<Mutex<Vec<HeaderMap>>>,
    delay: Option<Duration>,
) -> impl tower::Service<
    Request<()>,
    Response = Response<()>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<()>, Infallible>> + Send,
> + Clone {
    let sent = sent.clone();
    tower::service_fn(move |req: Request<()>| {
        sent.lock().unwrap().push(req.headers().clone());
        async move {
            match delay {
                Some(delay) => tokio::time::sleep(delay).await,
                None => pending().await,
            }
            Ok(Response::new(()))
        }
    })
}

fn with_ctx(ctx: &Context, headers: &[(&str, &str)]) -> Request<()> {
    let mut req = request(headers);
    req.extensions_mut().insert(ctx.clone());
    req
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn the_client_writes_the_time_left_and_declared_values_only() {
    let sent = Arc::default();
    let client = ClientLayer::new()
        .baggage(common::baggage())
        .layer(transport(&sent, Some(Duration::ZERO)));
    let (ctx, _cancel) = Context::background()
        .with_value(UserId(42))
        .with_value(Secret("stays here"))
        .with_timeout(Duration::from_secs(2));
    tokio::time::sleep(Duration::from_millis(300)).await;

    client.clone().oneshot(with_ctx(&ctx, &[])).await.unwrap();
    client
        .clone()
        .oneshot(with_ctx(
            &ctx,
            &[("grpc-timeout", "1S"), ("baggage", "trace=abc")],
        ))
        .await
        .unwrap();
    client
        .clone()
        .oneshot(with_ctx(&ctx, &[("grpc-timeout", "1H")]))
        .await
        .unwrap();
    client
        .clone()
        .oneshot(with_ctx(&ctx, &[("grpc-timeout", "bogus")]))
        .await
        .unwrap();
    // No context: sent as it is.
    client
        .oneshot(request(&[("baggage", "a=b")]))
        .await
        .unwrap();

    let sent = sent.lock().unwrap();
    assert_eq!(header(&sent[0], "grpc-timeout"), ["1700000u"]);
    assert_eq!(header(&sent[0], "baggage"), ["user-id=42"]);
    assert_eq!(
        header(&sent[1], "grpc-timeout"),
        ["1S"],
        "a shorter timeout is kept"
    );
    assert_eq!(
        header(&sent[1], "baggage"),
        ["user-id=42,trace=abc"],
        "ours first, in one field"
    );
    assert_eq!(
        header(&sent[2], "grpc-timeout"),
        ["1700000u"],
        "a longer one is replaced"
    );
    assert_eq!(header(&sent[3], "grpc-timeout"), ["1700000u"]);
    assert_eq!(header(&sent[4], "grpc-timeout"), Vec::<&str>::new());
    assert_eq!(header(&sent[4], "baggage"), ["a=b"]);
}

#[tokio::test(start_paused = true)]
async fn the_client_sends_one_timeout_and_each_of_its_keys_once() {
    let sent = Arc::default();
    let client = ClientLayer::new()
        .baggage(common::baggage())
        .layer(transport(&sent, Some(Duration::ZERO)));
    let (ctx, _cancel) = Context::background()
        .with_value(UserId(2))
        .with_timeout(Duration::from_secs(2));

    // What a proxy forwards: two timeouts, and baggage that holds a stale copy of our key.
    let forwarded = [
        ("grpc-timeout", "1S"),
        ("grpc-timeout", "5S"),
        ("baggage", "user-id=1,trace=x"),
        ("baggage", " user-id = 3 ;p"),
        ("baggage", "region=eu"),
    ];
    client
        .clone()
        .oneshot(with_ctx(&ctx, &forwarded))
        .await
        .unwrap();
    client
        .oneshot(with_ctx(
            &ctx,
            &[("grpc-timeout", "9S"), ("grpc-timeout", "bogus")],
        ))
        .await
        .unwrap();

    let sent = sent.lock().unwrap();
    assert_eq!(
        header(&sent[0], "grpc-timeout"),
        ["1000000u"],
        "the shortest, once"
    );
    assert_eq!(
        header(&sent[0], "baggage"),
        ["user-id=2,trace=x,region=eu"],
        "one field: our value, and the forwarded members without our key"
    );
    assert_eq!(
        header(&sent[1], "grpc-timeout"),
        ["2000000u"],
        "the time left"
    );
}

#[tokio::test(start_paused = true)]
async fn the_layers_context_serves_requests_without_one() {
    let sent = Arc::default();
    let (fallback, _cancel) = Context::background()
        .with_value(UserId(1))
        .with_timeout(Duration::from_secs(1));
    let client = ClientLayer::new()
        .baggage(common::baggage())
        .context(fallback)
        .layer(transport(&sent, Some(Duration::ZERO)));
    client.clone().oneshot(request(&[])).await.unwrap();
    let (own, _cancel) = Context::background()
        .with_value(UserId(2))
        .with_timeout(Duration::from_secs(5));
    client.oneshot(with_ctx(&own, &[])).await.unwrap();

    let sent = sent.lock().unwrap();
    assert_eq!(header(&sent[0], "grpc-timeout"), ["1000000u"]);
    assert_eq!(header(&sent[0], "baggage"), ["user-id=1"]);
    assert_eq!(
        header(&sent[1], "grpc-timeout"),
        ["5000000u"],
        "the request's own wins"
    );
    assert_eq!(header(&sent[1], "baggage"), ["user-id=2"]);
}

#[tokio::test(start_paused = true)]
async fn the_client_fails_fast_when_nothing_is_left() {
    let sent = Arc::default();
    let client = ClientLayer::new().layer(transport(&sent, Some(Duration::ZERO)));
    let (expired, _cancel) = Context::background().with_timeout(Duration::from_millis(10));
    tokio::time::sleep(Duration::from_millis(10)).await;
    let err = client
        .clone()
        .oneshot(with_ctx(&expired, &[]))
        .await
        .unwrap_err();
    assert_eq!(err.downcast_ref::<Error>(), Some(&Error::DeadlineExceeded));

    let (canceled, cancel) = Context::background().with_cancel();
    cancel.cancel();
    let err = client.oneshot(with_ctx(&canceled, &[])).await.unwrap_err();
    assert_eq!(err.downcast_ref::<Error>(), Some(&Error::Canceled));
    assert!(sent.lock().unwrap().is_empty(), "nothing was sent");
}

#[tokio::test(start_paused = true)]
async fn the_client_aborts_the_call_when_the_context_ends() {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let client = ClientLayer::new().layer(transport(&sent, None));

    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(400));
    let start = Instant::now();
    let err = client
        .clone()
        .oneshot(with_ctx(&ctx, &[]))
        .await
        .unwrap_err();
    assert_eq!(err.downcast_ref::<Error>(), Some(&Error::DeadlineExceeded));
    assert_eq!(start.elapsed(), Duration::from_millis(400));

    let (ctx, cancel) = Context::background().with_cancel();
    let call = tokio::spawn(client.oneshot(with_ctx(&ctx, &[])));
    tokio::task::yield_now().await;
    cancel.cancel();
    let err = call.await.unwrap().unwrap_err();
    assert_eq!(err.downcast_ref::<Error>(), Some(&Error::Canceled));
    assert_eq!(sent.lock().unwrap().len(), 2);
}

/// A response body that sends a frame every 100 ms, forever, without looking at any context.
struct Ticks(Pin<Box<tokio::time::Sleep>>);

impl http_body::Body for Ticks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        if self.0.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let next = self.0.deadline() + Duration::from_millis(100);
        self.0.as_mut().reset(next);
        Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(
            b"tick",
        )))))
    }
}

#[tokio::test(start_paused = true)]
async fn a_grpc_stream_still_going_at_the_deadline_ends_with_deadline_exceeded() {
    let service = ServerLayer::new().layer(tower::service_fn(|_: Request<()>| async {
        let first = tokio::time::sleep(Duration::from_millis(100));
        Ok::<_, Infallible>(Response::new(Ticks(Box::pin(first))))
    }));
    let start = Instant::now();
    let response = service
        .oneshot(request(&[GRPC, ("grpc-timeout", "250m")]))
        .await
        .unwrap();
    let mut body = response.into_body();
    let mut ticks = 0;
    let mut trailers = None;
    // Bounded: a body that is not cut off would tick forever.
    while trailers.is_none() && ticks < 10 {
        let frame = body.frame().await.expect("trailers before the end");
        match frame.unwrap().into_data() {
            Ok(_) => ticks += 1,
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    let trailers = trailers.expect("the stream was cut off with trailers");
    assert_eq!(ticks, 2, "the frames sent at 100 and 200 ms");
    assert_eq!(trailers["grpc-status"], "4");
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(250),
        "cut off at the deadline"
    );
    assert!(body.frame().await.is_none(), "then the body ends");
}
