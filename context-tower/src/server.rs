//! [`ServerLayer`]: a context per request, from the caller's deadline and baggage.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use context_core::{Context, Done, DropGuard, Error};
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::baggage::Baggage;
use crate::grpc_timeout::{self, trim_ows, InvalidTimeout};

/// Gives every request a [`Context`]: a child of a base context that carries the caller's
/// deadline (`grpc-timeout`, and optionally a plain-HTTP timeout header) and the declared
/// values from its `baggage`, put in the request's extensions for the handler.
///
/// # What the handler sees
///
/// The request's [`http::Extensions`] hold the [`Context`]: in hyper or plain tower, read it
/// with `req.extensions().get::<Context>()`; in tonic, `request.extensions().get::<Context>()`
/// on the `tonic::Request`; in axum, take an `Extension<Context>` argument.
///
/// It is a child of the [base](ServerLayer::base) context (the background context unless set),
/// with the deadline the caller asked for and the values [declared](ServerLayer::baggage) in
/// the registry. It ends when:
///
/// - the deadline passes: the response future stops waiting for the handler (dropping it) and
///   answers with a timeout;
/// - the caller goes away: hyper drops the response future when the client disconnects or
///   resets the stream, and dropping it cancels the context, so work the handler started under
///   it stops too;
/// - the response is complete: once the handler's response body has ended (or is dropped), the
///   context is cancelled, as Go cancels a request's context when its handler returns. Until
///   then it stays alive, so a streaming body can keep using it. A gRPC body still streaming
///   when the context ends is cut off with trailers (`DEADLINE_EXCEEDED`, or `UNAVAILABLE`
///   when the base context was cancelled), as the caller's deadline covers the whole call; a
///   plain-HTTP body is not cut off (its end would look complete), so it should end when its
///   context does.
/// - the base context is cancelled (a shutdown, say).
///
/// # What the layer answers by itself
///
/// Requests whose `content-type` starts with `application/grpc` get gRPC answers (HTTP 200, a
/// trailers-only response with `grpc-status` and `grpc-message` in the headers); others get a
/// plain status code with a one-line text body:
///
/// | situation | gRPC | plain HTTP |
/// |---|---|---|
/// | malformed `grpc-timeout` or timeout header | `INVALID_ARGUMENT` (3) | 400 Bad Request |
/// | deadline already passed (`grpc-timeout: 0n`): the service is not called | `DEADLINE_EXCEEDED` (4) | 504 Gateway Timeout |
/// | deadline passes while the handler runs | `DEADLINE_EXCEEDED` (4) | 504 Gateway Timeout |
/// | deadline passes while the response body streams | the body ends with `DEADLINE_EXCEEDED` (4) trailers | — (the body goes on) |
/// | base context cancelled | `UNAVAILABLE` (14) | 503 Service Unavailable |
///
/// A malformed `grpc-timeout` is the caller's mistake, so it gets `INVALID_ARGUMENT`, the
/// status for "the client specified an invalid argument", like HTTP's 400. Note that grpc-go
/// answers this case with `INTERNAL` ("malformed grpc-timeout"), and the gRPC status code list
/// keeps `INVALID_ARGUMENT` for applications; clients should treat either as a bad request.
/// See [statuscodes.md](https://github.com/grpc/grpc/blob/master/doc/statuscodes.md) and
/// [PROTOCOL-HTTP2.md](https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md).
///
/// # Examples
///
/// ```
/// use std::convert::Infallible;
/// use std::time::Duration;
/// use ctxpipe::Context;
/// use ctxpipe::tower::ServerLayer;
/// use http::{Request, Response};
/// use http_body_util::Empty;
/// use tower::{Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let handler = tower::service_fn(|req: Request<()>| async move {
///     let ctx = req.extensions().get::<Context>().unwrap();
///     let left = ctx.deadline().unwrap() - tokio::time::Instant::now();
///     assert_eq!(left, Duration::from_millis(250));
///     Ok::<_, Infallible>(Response::new(Empty::<bytes::Bytes>::new()))
/// });
/// let service = ServerLayer::new().layer(handler);
///
/// let request = Request::builder().header("grpc-timeout", "250m").body(()).unwrap();
/// let response = service.clone().oneshot(request).await.unwrap();
/// assert_eq!(response.status(), 200);
///
/// // A deadline that has already passed is answered without calling the handler.
/// let request = Request::builder().header("grpc-timeout", "0n").body(()).unwrap();
/// assert_eq!(service.clone().oneshot(request).await.unwrap().status(), 504);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ServerLayer {
    shared: Arc<Shared>,
}

#[derive(Clone, Debug)]
struct Shared {
    base: Context,
    baggage: Baggage,
    timeout_header: Option<HeaderName>,
}

impl Default for ServerLayer {
    fn default() -> ServerLayer {
        ServerLayer::new()
    }
}

impl ServerLayer {
    /// A layer whose request contexts are children of the background context, read
    /// `grpc-timeout`, and take no value from the `baggage` header.
    pub fn new() -> ServerLayer {
        ServerLayer {
            shared: Arc::new(Shared {
                base: Context::background(),
                baggage: Baggage::new(),
                timeout_header: None,
            }),
        }
    }

    fn update(mut self, f: impl FnOnce(&mut Shared)) -> ServerLayer {
        f(Arc::make_mut(&mut self.shared));
        self
    }

    /// Makes every request's context a child of `base`: cancelling `base` (at shutdown, say)
    /// ends every request in flight, and `base`'s values are visible to every handler.
    pub fn base(self, base: Context) -> ServerLayer {
        self.update(|shared| shared.base = base)
    }

    /// Reads the values declared in `baggage` from the request's `baggage` header.
    pub fn baggage(self, baggage: Baggage) -> ServerLayer {
        self.update(|shared| shared.baggage = baggage)
    }

    /// Also reads a deadline from `header` (for plain HTTP callers that do not speak
    /// `grpc-timeout`): its value is a whole number of **milliseconds**, ASCII digits only
    /// (such as `x-request-timeout: 1500`). When both headers are present the earlier deadline
    /// wins; a malformed value is answered like a malformed `grpc-timeout`.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use std::time::Duration;
    /// use ctxpipe::Context;
    /// use ctxpipe::tower::ServerLayer;
    /// use http::{HeaderName, Request, Response};
    /// use tower::{Layer, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let handler = tower::service_fn(|req: Request<()>| async move {
    ///     let ctx = req.extensions().get::<Context>().unwrap();
    ///     let left = ctx.deadline().unwrap() - tokio::time::Instant::now();
    ///     assert_eq!(left, Duration::from_millis(1500));
    ///     Ok::<_, Infallible>(Response::new(String::new()))
    /// });
    /// let service = ServerLayer::new()
    ///     .timeout_header(HeaderName::from_static("x-request-timeout"))
    ///     .layer(handler);
    ///
    /// let request = Request::builder().header("x-request-timeout", "1500").body(()).unwrap();
    /// assert_eq!(service.clone().oneshot(request).await.unwrap().status(), 200);
    /// let request = Request::builder().header("x-request-timeout", "1.5s").body(()).unwrap();
    /// assert_eq!(service.oneshot(request).await.unwrap().status(), 400);
    /// # }
    /// ```
    pub fn timeout_header(self, header: HeaderName) -> ServerLayer {
        self.update(|shared| shared.timeout_header = Some(header))
    }
}

impl<S> Layer<S> for ServerLayer {
    type Service = ServerService<S>;

    fn layer(&self, inner: S) -> ServerService<S> {
        ServerService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service made by [`ServerLayer`]: see there.
#[derive(Clone, Debug)]
pub struct ServerService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> ServerService<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the wrapped service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ServerService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ServerBody<ResBody>>;
    type Error = S::Error;
    type Future = ServerFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let grpc = is_grpc(req.headers());
        let timeout = match self.shared.timeout(req.headers()) {
            Ok(timeout) => timeout,
            Err(err) => return ServerFuture::answer(Answer::Malformed(err.message()), grpc),
        };
        let base = &self.shared.base;
        if let Some(err) = base.err() {
            return ServerFuture::answer(Answer::Ended(err), grpc);
        }
        let (ctx, cancel) = match timeout {
            // Expired already: answered without calling the service (or reading the clock).
            Some(Duration::ZERO) => {
                return ServerFuture::answer(Answer::Ended(Error::DeadlineExceeded), grpc)
            }
            Some(timeout) => base.with_timeout(timeout),
            None => base.with_cancel(),
        };
        let ctx = self.shared.baggage.read(req.headers(), &ctx);
        req.extensions_mut().insert(ctx.clone());
        let future = self.inner.call(req);
        ServerFuture {
            state: State::Running {
                future,
                done: ctx.done(),
                ctx,
                guard: Some(cancel.drop_guard()),
                grpc,
            },
        }
    }
}

impl Shared {
    /// The timeout the caller asked for, if any: the shorter of `grpc-timeout` and the
    /// configured header.
    fn timeout(&self, headers: &HeaderMap) -> Result<Option<Duration>, InvalidTimeout> {
        let mut timeout = single(headers, &grpc_timeout::HEADER)
            .map(|value| value.and_then(|v| grpc_timeout::parse(v.as_bytes())))
            .transpose()?;
        if let Some(header) = &self.timeout_header {
            if let Some(value) = single(headers, header) {
                let millis = value.and_then(|v| parse_millis(v.as_bytes()))?;
                timeout = Some(timeout.map_or(millis, |t| t.min(millis)));
            }
        }
        Ok(timeout)
    }
}

/// The one value of `header`; `Some(Err)` if it is repeated (ambiguous).
fn single<'a>(
    headers: &'a HeaderMap,
    header: &HeaderName,
) -> Option<Result<&'a HeaderValue, InvalidTimeout>> {
    let mut values = headers.get_all(header).iter();
    let first = values.next()?;
    Some(match values.next() {
        None => Ok(first),
        Some(_) => Err(InvalidTimeout::repeated()),
    })
}

/// A whole number of milliseconds, ASCII digits only (around spaces or tabs).
fn parse_millis(value: &[u8]) -> Result<Duration, InvalidTimeout> {
    let digits = trim_ows(value);
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(InvalidTimeout::millis());
    }
    // At most 18 digits: no overflow.
    let millis = digits
        .iter()
        .fold(0u64, |n, digit| n * 10 + u64::from(digit - b'0'));
    Ok(Duration::from_millis(millis))
}

/// `application/grpc`, alone or followed by `+proto`, `+json`, ... (or grpc-web's variants,
/// `-web`, `-web-text`) or by parameters; media types are case-insensitive.
fn is_grpc(headers: &HeaderMap) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    headers.get(CONTENT_TYPE).is_some_and(|value| {
        let value = value.as_bytes();
        value.len() >= GRPC.len()
            && value[..GRPC.len()].eq_ignore_ascii_case(GRPC)
            && matches!(
                value.get(GRPC.len()),
                None | Some(b'+' | b'-' | b';' | b' ')
            )
    })
}

/// A response the layer makes without the handler.
#[derive(Clone, Debug)]
enum Answer {
    Malformed(&'static str),
    Ended(Error),
}

impl Answer {
    /// The `grpc-status` and `grpc-message` of this answer.
    fn grpc_status(&self) -> HeaderMap {
        let (code, message, ..) = self.parts();
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from_static(code));
        // Every message is printable ASCII without `%`: already percent-encoded.
        headers.insert("grpc-message", HeaderValue::from_static(message));
        headers
    }

    fn response<B>(self, grpc: bool) -> Response<ServerBody<B>> {
        let (_, _, status, text) = self.parts();
        if grpc {
            // Trailers-Only: HTTP 200, the content type and the status, in one HEADERS frame.
            let mut response = Response::new(ServerBody::message(""));
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            headers.extend(self.grpc_status());
            response
        } else {
            let mut response = Response::new(ServerBody::message(text));
            *response.status_mut() = status;
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            response
        }
    }

    /// (gRPC code, gRPC message, HTTP status, HTTP text)
    fn parts(&self) -> (&'static str, &'static str, StatusCode, &'static str) {
        match self {
            Answer::Malformed(message) => ("3", *message, StatusCode::BAD_REQUEST, *message),
            Answer::Ended(Error::DeadlineExceeded) => (
                "4",
                "request deadline exceeded",
                StatusCode::GATEWAY_TIMEOUT,
                "request deadline exceeded",
            ),
            Answer::Ended(_) => (
                "14",
                "request canceled: the server's context ended",
                StatusCode::SERVICE_UNAVAILABLE,
                "request canceled: the server's context ended",
            ),
        }
    }
}

pin_project! {
    /// The response future of [`ServerService`]: the handler's future raced against the
    /// request's context, which is checked before each poll of the handler.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct ServerFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    #[project_replace = StateReplace]
    enum State<F, B> {
        Answer {
            answer: Answer,
            grpc: bool,
            body: PhantomData<fn() -> B>,
        },
        Running {
            #[pin]
            future: F,
            ctx: Context,
            done: Done,
            guard: Option<DropGuard>,
            grpc: bool,
        },
        Finished,
    }
}

impl<F, B> ServerFuture<F, B> {
    fn answer(answer: Answer, grpc: bool) -> ServerFuture<F, B> {
        ServerFuture {
            state: State::Answer {
                answer,
                grpc,
                body: PhantomData,
            },
        }
    }
}

impl<F, B, E> Future for ServerFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ServerBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        let answer = match state.as_mut().project() {
            StateProj::Answer { answer, grpc, .. } => answer.clone().response(*grpc),
            StateProj::Finished => panic!("ServerFuture polled after completion"),
            StateProj::Running {
                future,
                ctx,
                done,
                guard,
                grpc,
            } => {
                // The context first, as `Context::run` does: once the deadline has passed, the
                // caller gets DEADLINE_EXCEEDED even from a handler that ignored it.
                if let Some(err) = ctx.err() {
                    Answer::Ended(err).response(*grpc)
                } else if let Poll::Ready(result) = future.poll(cx) {
                    let guard = guard.take();
                    // A gRPC body is raced against the context until it ends (see `Kind`).
                    let watched = grpc.then(|| (ctx.clone(), ctx.done()));
                    state.project_replace(State::Finished);
                    return Poll::Ready(result.map(|response| {
                        response.map(|body| ServerBody::inner(body, guard, watched))
                    }));
                } else if Pin::new(done).poll(cx).is_ready() {
                    Answer::Ended(ctx.err().unwrap_or(Error::Canceled)).response(*grpc)
                } else {
                    return Poll::Pending;
                }
            }
        };
        // The context ended first (or never began): drop the handler's future, cancelling its
        // context, before answering.
        state.project_replace(State::Finished);
        Poll::Ready(Ok(answer))
    }
}

impl<F, B> fmt::Debug for ServerFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Answer { .. } => "answer",
            State::Running { .. } => "running",
            State::Finished => "finished",
        };
        f.debug_struct("ServerFuture")
            .field("state", &state)
            .finish()
    }
}

pin_project! {
    /// The response body of [`ServerService`]: the handler's body, which keeps the request's
    /// context alive until it ends or is dropped, or a short text the layer answered with.
    ///
    /// It is a [`Body`] with the handler body's `Data` and `Error` types, so it fits wherever
    /// the handler's body did (hyper, axum, tonic); `Data` must be buildable from static bytes,
    /// as `Bytes` is.
    pub struct ServerBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    #[project_replace = KindReplace]
    enum Kind<B> {
        Inner {
            #[pin]
            body: B,
            // Cancels the request's context once the body has ended or is dropped.
            guard: Option<DropGuard>,
            // For gRPC: the request's context, which the body is raced against. A stream
            // still going when the deadline passes ends with `DEADLINE_EXCEEDED` trailers,
            // as the caller's deadline covers the whole call.
            watched: Option<(Context, Done)>,
        },
        // A short text the layer answers with; `None` once sent, or once a gRPC body was cut
        // off by its context's end (its trailers sent).
        Message {
            text: Option<&'static str>,
        },
    }
}

impl<B> ServerBody<B> {
    fn inner(body: B, guard: Option<DropGuard>, watched: Option<(Context, Done)>) -> ServerBody<B> {
        ServerBody {
            kind: Kind::Inner {
                body,
                guard,
                watched,
            },
        }
    }

    fn message(text: &'static str) -> ServerBody<B> {
        ServerBody {
            kind: Kind::Message {
                text: Some(text).filter(|text| !text.is_empty()),
            },
        }
    }
}

impl<B> Body for ServerBody<B>
where
    B: Body,
    B::Data: From<&'static [u8]>,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut kind = self.project().kind;
        match kind.as_mut().project() {
            KindProj::Inner {
                body,
                guard,
                watched,
            } => {
                // The context first, so that a stream past its deadline ends even while it
                // has frames ready; polling `Done` also registers for its end.
                if let Some((ctx, done)) = watched {
                    if Pin::new(done).poll(cx).is_ready() {
                        let ended = Answer::Ended(ctx.err().unwrap_or(Error::Canceled));
                        // Drops the handler's body, and with it the guard.
                        kind.project_replace(Kind::Message { text: None });
                        return Poll::Ready(Some(Ok(Frame::trailers(ended.grpc_status()))));
                    }
                }
                let frame = body.poll_frame(cx);
                if let Poll::Ready(None) = frame {
                    drop(guard.take());
                }
                frame
            }
            KindProj::Message { text } => Poll::Ready(
                text.take()
                    .map(|text| Ok(Frame::data(B::Data::from(text.as_bytes())))),
            ),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body, .. } => body.is_end_stream(),
            Kind::Message { text } => text.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body, .. } => body.size_hint(),
            Kind::Message { text } => SizeHint::with_exact(text.map_or(0, |t| t.len() as u64)),
        }
    }
}

impl<B> fmt::Debug for ServerBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Inner { guard, .. } => f
                .debug_struct("ServerBody")
                .field("context_alive", &guard.is_some())
                .finish_non_exhaustive(),
            Kind::Message { text } => f.debug_struct("ServerBody").field("text", text).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use http::header::CONTENT_TYPE;
    use http::HeaderMap;

    use super::is_grpc;

    #[test]
    fn grpc_is_told_by_its_media_type_in_any_case() {
        let grpc = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, value.parse().unwrap());
            is_grpc(&headers)
        };
        for value in [
            "application/grpc",
            "application/grpc+proto",
            "Application/gRPC",
            "application/grpc-web-text",
            "application/grpc; charset=utf-8",
        ] {
            assert!(grpc(value), "{value}");
        }
        for value in ["application/grpcx", "application/json", "application/grp"] {
            assert!(!grpc(value), "{value}");
        }
        assert!(!is_grpc(&HeaderMap::new()));
    }
}
