//! A real tonic client and a real tonic server (`tonic::transport`) on 127.0.0.1, with the
//! server layer in `Server::builder().layer(..)`: the handler's context carries the deadline
//! the client's `Request::set_timeout` asked for, and an overrun comes back as
//! `DEADLINE_EXCEEDED`.
//!
//! The service is written by hand (no protoc here): one unary method whose messages are UTF-8
//! strings, through a tiny `Codec`.
//!
//! tonic's `Channel` enforces `grpc-timeout` on the client side as well, and reports its own
//! expiry as `CANCELLED` ("Timeout expired") before the server's answer can arrive. So the
//! overrun test sends through `tonic::client::Grpc` over a plain hyper HTTP/2 client, which
//! leaves the deadline to the server. (On the server side, the layer's deadline is set just
//! before tonic's own `grpc-timeout` timer, so the layer's `DEADLINE_EXCEEDED` wins over tonic's
//! `CANCELLED`.)

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut};
use common::UserId;
use ctxpipe::tower::{ClientLayer, ServerLayer};
use ctxpipe::{Context, Error};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;
use tokio::time::{timeout, Instant};
use tonic::body::Body;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic::{Code, Status};
use tower::{Service, ServiceBuilder};

const PATIENCE: Duration = Duration::from_secs(10);
const PATH: &str = "/test.Sleeper/Sleep";

/// Messages are UTF-8 strings.
#[derive(Clone, Copy, Debug, Default)]
struct StringCodec;

impl Codec for StringCodec {
    type Encode = String;
    type Decode = String;
    type Encoder = StringCodec;
    type Decoder = StringCodec;

    fn encoder(&mut self) -> StringCodec {
        StringCodec
    }

    fn decoder(&mut self) -> StringCodec {
        StringCodec
    }
}

impl Encoder for StringCodec {
    type Item = String;
    type Error = Status;

    fn encode(&mut self, item: String, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(item.as_bytes());
        Ok(())
    }
}

impl Decoder for StringCodec {
    type Item = String;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<String>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| Status::internal("not UTF-8"))
    }
}

/// What the handler saw.
#[derive(Debug)]
struct Seen {
    left: Option<Duration>,
    user: Option<UserId>,
    /// How the handler's context ended, once it did.
    ended: oneshot::Receiver<Option<Error>>,
}

/// `test.Sleeper/Sleep`: reports its context, then sleeps the number of milliseconds it is
/// sent, under its context.
#[derive(Clone)]
struct Sleeper {
    seen: UnboundedSender<Seen>,
    calls: Arc<AtomicUsize>,
}

impl NamedService for Sleeper {
    const NAME: &'static str = "test.Sleeper";
}

impl Service<http::Request<Body>> for Sleeper {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<http::Response<Body>, Infallible>> + Send>,
    >;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            if req.uri().path() != PATH {
                return Ok(Status::unimplemented("").into_http());
            }
            let sleep = tower::service_fn(move |request: tonic::Request<String>| {
                let this = this.clone();
                async move { this.sleep(request).await }
            });
            Ok(tonic::server::Grpc::new(StringCodec)
                .unary(sleep, req)
                .await)
        })
    }
}

impl Sleeper {
    async fn sleep(
        &self,
        request: tonic::Request<String>,
    ) -> Result<tonic::Response<String>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let ctx = request.extensions().get::<Context>().unwrap().clone();
        let (ended_tx, ended) = oneshot::channel();
        let watched = ctx.clone();
        tokio::spawn(async move {
            watched.done().await;
            let _ = ended_tx.send(watched.err());
        });
        self.seen
            .send(Seen {
                left: ctx.deadline().map(|d| d - Instant::now()),
                user: ctx.value::<UserId>().copied(),
                ended,
            })
            .unwrap();
        let millis: u64 = request
            .into_inner()
            .parse()
            .map_err(|_| Status::invalid_argument("millis"))?;
        match ctx
            .run(tokio::time::sleep(Duration::from_millis(millis)))
            .await
        {
            Ok(()) => Ok(tonic::Response::new(format!("slept {millis} ms"))),
            Err(err) => Err(Status::deadline_exceeded(err.to_string())),
        }
    }
}

struct Fixture {
    addr: SocketAddr,
    seen: UnboundedReceiver<Seen>,
    calls: Arc<AtomicUsize>,
}

async fn start() -> Fixture {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, seen) = unbounded_channel();
    let calls = Arc::new(AtomicUsize::new(0));
    let sleeper = Sleeper {
        seen: seen_tx,
        calls: calls.clone(),
    };
    let layer = ServerLayer::new().baggage(common::baggage());
    tokio::spawn(
        Server::builder()
            .layer(layer)
            .add_service(sleeper)
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    Fixture { addr, seen, calls }
}

async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A tonic client over a plain hyper HTTP/2 client, which does not enforce `grpc-timeout`
/// itself.
fn direct(
    addr: SocketAddr,
) -> tonic::client::Grpc<hyper_util::client::legacy::Client<HttpConnector, Body>> {
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    tonic::client::Grpc::with_origin(client, format!("http://{addr}").parse().unwrap())
}

async fn call<T>(
    client: &mut tonic::client::Grpc<T>,
    request: tonic::Request<String>,
) -> Result<String, Status>
where
    T: tonic::client::GrpcService<Body>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    T::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    client
        .ready()
        .await
        .map_err(|err| Status::unavailable(err.into().to_string()))?;
    client
        .unary(
            request,
            http::uri::PathAndQuery::from_static(PATH),
            StringCodec,
        )
        .await
        .map(tonic::Response::into_inner)
}

async fn seen(fixture: &mut Fixture) -> Seen {
    timeout(PATIENCE, fixture.seen.recv())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn the_handler_sees_the_deadline_of_set_timeout() {
    let mut fixture = start().await;
    let mut client = tonic::client::Grpc::new(channel(fixture.addr).await);
    let mut request = tonic::Request::new("0".to_owned());
    request.set_timeout(Duration::from_millis(1500));
    let sent = Instant::now();
    assert_eq!(call(&mut client, request).await.unwrap(), "slept 0 ms");

    let elapsed = sent.elapsed();
    let seen = seen(&mut fixture).await;
    let left = seen.left.expect("the handler's context has a deadline");
    assert!(left <= Duration::from_millis(1500), "{left:?}");
    assert!(
        left >= Duration::from_millis(1500) - elapsed,
        "only {left:?} left"
    );
    // The call is over: its context is cancelled, as Go's is when the handler returns.
    assert_eq!(
        timeout(PATIENCE, seen.ended).await.unwrap().unwrap(),
        Some(Error::Canceled)
    );
}

#[tokio::test]
async fn an_overrunning_handler_gets_deadline_exceeded() {
    let mut fixture = start().await;
    let mut client = direct(fixture.addr);
    let mut request = tonic::Request::new("60000".to_owned());
    request.set_timeout(Duration::from_millis(100));
    let sent = Instant::now();
    let status = call(&mut client, request).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(sent.elapsed() < PATIENCE);

    let seen = seen(&mut fixture).await;
    assert!(seen.left.unwrap() <= Duration::from_millis(100));
    let ended = timeout(PATIENCE, seen.ended).await.unwrap().unwrap();
    assert_eq!(
        ended,
        Some(Error::DeadlineExceeded),
        "the handler's work was stopped"
    );
}

#[tokio::test]
async fn an_expired_deadline_is_answered_without_calling_the_handler() {
    let fixture = start().await;
    let mut client = direct(fixture.addr);
    let mut request = tonic::Request::new("0".to_owned());
    request
        .metadata_mut()
        .insert("grpc-timeout", "0n".parse().unwrap());
    let status = call(&mut client, request).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(fixture.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_malformed_timeout_is_an_invalid_argument() {
    let fixture = start().await;
    let mut client = tonic::client::Grpc::new(channel(fixture.addr).await);
    for bad in ["1s", "123456789S", "-1S", "S"] {
        let mut request = tonic::Request::new("0".to_owned());
        request
            .metadata_mut()
            .insert("grpc-timeout", bad.parse().unwrap());
        let status = call(&mut client, request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad}: {status:?}");
        assert!(
            status.message().starts_with("malformed grpc-timeout"),
            "{status:?}"
        );
    }
    assert_eq!(fixture.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_tonic_channel_behind_the_client_layer_sends_the_context() {
    let mut fixture = start().await;
    let channel = ServiceBuilder::new()
        .layer(ClientLayer::new().baggage(common::baggage()))
        .service(channel(fixture.addr).await);
    let mut client = tonic::client::Grpc::new(channel);

    let (ctx, _cancel) = Context::background()
        .with_value(UserId(9))
        .with_timeout(Duration::from_secs(2));
    let mut request = tonic::Request::new("0".to_owned());
    request.extensions_mut().insert(ctx.clone());
    assert_eq!(call(&mut client, request).await.unwrap(), "slept 0 ms");
    let seen = seen(&mut fixture).await;
    assert!(seen.left.unwrap() <= Duration::from_secs(2));
    assert!(seen.left.unwrap() > Duration::from_secs(1));
    assert_eq!(seen.user, Some(UserId(9)));

    // A context with no time left fails fast, before anything is sent.
    let (expired, _cancel) = Context::background().with_timeout(Duration::ZERO);
    let mut request = tonic::Request::new("0".to_owned());
    request.extensions_mut().insert(expired);
    let status = call(&mut client, request).await.unwrap_err();
    assert!(
        status.message().contains("context deadline exceeded"),
        "{status:?}"
    );
    assert_eq!(fixture.calls.load(Ordering::SeqCst), 1);
    let _ = ctx;
}
