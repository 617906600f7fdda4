//! Shared pieces of the integration tests: a declared value, real servers on 127.0.0.1 and a
//! real hyper client.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use bytes::Bytes;
use ctxpipe::tower::{Baggage, BaggageValue, ClientLayer, ClientService};
use ctxpipe::CtxValue;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::{Layer, Service};

/// A value declared as baggage: crosses the wire as `user-id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserId(pub u64);

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

/// A context value that is never declared: it must stay in the process.
#[derive(Debug)]
pub struct Secret(pub &'static str);

impl CtxValue for Secret {}

pub fn baggage() -> Baggage {
    Baggage::new().with::<UserId>()
}

pub type HttpClient = ClientService<Client<HttpConnector, Full<Bytes>>>;

/// A real hyper client (HTTP/2 with prior knowledge, or HTTP/1.1) behind the client layer.
pub fn client(http2: bool) -> HttpClient {
    let inner = Client::builder(TokioExecutor::new())
        .http2_only(http2)
        .build_http();
    ClientLayer::new().baggage(baggage()).layer(inner)
}

/// Serves `service` with hyper (HTTP/1.1 and HTTP/2) on a fresh port of 127.0.0.1, until the
/// test's runtime ends.
pub async fn serve<S, B>(service: S) -> SocketAddr
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                // A reset or closed connection ends here; that is what some tests do.
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

pub fn text(body: impl Into<String>) -> Response<Full<Bytes>> {
    Response::new(Full::new(Bytes::from(body.into())))
}
