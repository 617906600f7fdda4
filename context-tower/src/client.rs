//! [`ClientLayer`]: an outgoing request carries its context's deadline and baggage.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use context_core::{Context, Done, Error};
use http::header::HeaderValue;
use http::{HeaderMap, Request};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

use crate::baggage::{self, Baggage};
use crate::grpc_timeout;
use crate::BoxError;

/// Sends a context's remaining time as `grpc-timeout` and its declared values as `baggage`,
/// and races the call against the context.
///
/// # Which context
///
/// The [`Context`] in the request's extensions (put there by [`ServerLayer`](crate::ServerLayer)
/// on an incoming request that is passed on, or by the caller:
/// `req.extensions_mut().insert(ctx)`), else the one given to [`ClientLayer::context`]. A
/// request with neither is sent unchanged.
///
/// # What it does
///
/// - **Fails fast**: a context that is already done, or has no time left, fails the call with
///   its [`ctxpipe::Error`](Error) (`DeadlineExceeded` or `Canceled`) without calling the
///   inner service.
/// - **Deadline**: writes the time left as `grpc-timeout`, in the finest unit that fits 8
///   digits and rounded down, so the callee never gets more time than remains. A `grpc-timeout`
///   already on the request (tonic's `Request::set_timeout`, say) is kept if it is shorter; one
///   value goes out (the shortest), as a repeated header is malformed.
/// - **Values**: writes the [declared](ClientLayer::baggage) values the context carries as
///   one `baggage` field, ahead of the members of any `baggage` already on the request, from
///   which the members carrying the same keys are removed (a stale copy, which receivers would
///   resolve differently). The other members are forwarded as they are, in the same field
///   (several receivers read only the first), up to the spec's 8192 bytes; nothing else is sent.
/// - **Cancellation**: when the context ends before the response arrives, the inner call is
///   dropped (hyper then resets the stream or closes the connection, so the callee sees the
///   caller go away) and the call fails with the context's error. A response body that
///   streams after the headers is the caller's to bound: read it under [`Context::run`].
///
/// Errors are [`BoxError`]s, as with tower's own middleware: the inner service's error, or a
/// [`ctxpipe::Error`](Error) to find with `err.downcast_ref::<ctxpipe::Error>()`.
///
/// # Examples
///
/// ```
/// use std::convert::Infallible;
/// use std::time::Duration;
/// use ctxpipe::{Context, Error};
/// use ctxpipe::tower::ClientLayer;
/// use http::{Request, Response};
/// use tower::{Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// // Stands in for an HTTP client: echoes the grpc-timeout it would send.
/// let transport = tower::service_fn(|req: Request<()>| async move {
///     let timeout = req.headers()["grpc-timeout"].clone();
///     Ok::<_, Infallible>(Response::new(timeout))
/// });
/// let client = ClientLayer::new().layer(transport);
///
/// let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(1500));
/// let mut request = Request::new(());
/// request.extensions_mut().insert(ctx.clone());
/// let response = client.clone().oneshot(request).await.unwrap();
/// assert_eq!(response.body(), "1500000u");
///
/// // Nothing left: fails fast, the transport is not called.
/// tokio::time::sleep(Duration::from_secs(2)).await;
/// let mut request = Request::new(());
/// request.extensions_mut().insert(ctx);
/// let err = client.oneshot(request).await.unwrap_err();
/// assert_eq!(err.downcast_ref::<Error>(), Some(&Error::DeadlineExceeded));
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct ClientLayer {
    shared: Arc<Shared>,
}

#[derive(Clone, Debug, Default)]
struct Shared {
    context: Option<Context>,
    baggage: Baggage,
}

impl ClientLayer {
    /// A layer that uses the context in each request's extensions and sends no values.
    pub fn new() -> ClientLayer {
        ClientLayer::default()
    }

    /// Uses `ctx` for requests that carry no [`Context`] in their extensions.
    pub fn context(mut self, ctx: Context) -> ClientLayer {
        Arc::make_mut(&mut self.shared).context = Some(ctx);
        self
    }

    /// Sends the values declared in `baggage` that the context carries.
    pub fn baggage(mut self, baggage: Baggage) -> ClientLayer {
        Arc::make_mut(&mut self.shared).baggage = baggage;
        self
    }
}

impl<S> Layer<S> for ClientLayer {
    type Service = ClientService<S>;

    fn layer(&self, inner: S) -> ClientService<S> {
        ClientService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service made by [`ClientLayer`]: see there.
#[derive(Clone, Debug)]
pub struct ClientService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> ClientService<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the wrapped service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for ClientService<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ClientFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let ctx = match req.extensions().get::<Context>() {
            Some(ctx) => ctx.clone(),
            None => match &self.shared.context {
                Some(ctx) => ctx.clone(),
                None => {
                    return ClientFuture {
                        state: State::Plain {
                            future: self.inner.call(req),
                        },
                    }
                }
            },
        };
        if let Err(err) = prepare(req.headers_mut(), &ctx, &self.shared.baggage) {
            return ClientFuture {
                state: State::Failed { error: Some(err) },
            };
        }
        ClientFuture {
            state: State::Watched {
                future: self.inner.call(req),
                done: ctx.done(),
                ctx,
            },
        }
    }
}

/// Writes `grpc-timeout` and `baggage` for `ctx`, or says why the call must not start.
fn prepare(headers: &mut HeaderMap, ctx: &Context, baggage: &Baggage) -> Result<(), Error> {
    if let Some(err) = ctx.err() {
        return Err(err);
    }
    if let Some(deadline) = ctx.deadline() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::DeadlineExceeded);
        }
        // One value goes out, the shortest: a repeated header is malformed on the other side.
        let asked = headers.get_all(grpc_timeout::HEADER);
        let shortest = asked
            .iter()
            .filter_map(|value| grpc_timeout::parse(value.as_bytes()).ok())
            .min();
        match shortest {
            Some(shortest) if shortest <= left && asked.iter().count() == 1 => {}
            Some(shortest) if shortest <= left => {
                headers.insert(grpc_timeout::HEADER, grpc_timeout::format(shortest));
            }
            _ => {
                headers.insert(grpc_timeout::HEADER, grpc_timeout::format(left));
            }
        }
    }
    if let Some(ours) = baggage.to_header(ctx) {
        // One field, ours first, each of our keys once: a forwarded copy would be stale, and
        // receivers disagree on which duplicate wins; several receivers (OpenTelemetry's
        // Python propagator, say) read only the first `baggage` field.
        // (Only looked at when there is baggage to forward: most requests carry none.)
        let mut joined = ours.as_bytes().to_vec();
        if headers.contains_key(baggage::HEADER) {
            let written: Vec<&str> = baggage::parse([ours.as_bytes()]).map(|m| m.key()).collect();
            let theirs = headers
                .get_all(baggage::HEADER)
                .iter()
                .filter_map(|value| baggage::without_keys(value, &written));
            for value in theirs {
                // Whole fields that fit the spec's byte limit; receivers read no further.
                if joined.len() + 1 + value.len() > baggage::MAX_BYTES {
                    break;
                }
                joined.push(b',');
                joined.extend_from_slice(value.as_bytes());
            }
        }
        // Made of valid header values joined by commas: a valid header value.
        let field = HeaderValue::from_bytes(&joined).unwrap_or(ours);
        headers.insert(baggage::HEADER, field);
    }
    Ok(())
}

pin_project! {
    /// The response future of [`ClientService`]: the inner call raced against the context.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct ClientFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    #[project_replace = StateReplace]
    enum State<F> {
        Failed {
            error: Option<Error>,
        },
        Plain {
            #[pin]
            future: F,
        },
        Watched {
            #[pin]
            future: F,
            ctx: Context,
            done: Done,
        },
        Finished,
    }
}

impl<F, T, E> Future for ClientFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        let output = match state.as_mut().project() {
            StateProj::Plain { future } => return future.poll(cx).map_err(Into::into),
            StateProj::Failed { error } => Err(error.take()),
            StateProj::Watched { future, ctx, done } => {
                // The context first, as `Context::run` does.
                if let Some(err) = ctx.err() {
                    Err(Some(err))
                } else if let Poll::Ready(result) = future.poll(cx) {
                    Ok(result.map_err(Into::into))
                } else if Pin::new(done).poll(cx).is_ready() {
                    Err(Some(ctx.err().unwrap_or(Error::Canceled)))
                } else {
                    return Poll::Pending;
                }
            }
            StateProj::Finished => Err(None),
        };
        // Drops the inner call now: when the context ended first, this is what aborts it.
        state.project_replace(State::Finished);
        Poll::Ready(match output {
            Ok(result) => result,
            Err(err) => Err(err.expect("ClientFuture polled after completion").into()),
        })
    }
}

impl<F> fmt::Debug for ClientFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Failed { .. } => "failed",
            State::Plain { .. } => "plain",
            State::Watched { .. } => "watched",
            State::Finished => "finished",
        };
        f.debug_struct("ClientFuture")
            .field("state", &state)
            .finish()
    }
}
