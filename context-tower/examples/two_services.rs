//! Two services in one process, on loopback: a `gateway` that calls a `profile` service. The
//! caller's deadline and user id cross both hops in the `grpc-timeout` and `baggage` headers,
//! an undeclared value (an API key) stays behind, and when the deadline passes the work on
//! both servers stops.
//!
//! ```text
//! cargo run -p context-tower --example two_services
//! ```

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use ctxpipe::tower::{Baggage, ClientLayer, ClientService, ServerLayer};
use ctxpipe::{ctx_value, Context};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::time::Instant;
use tower::{Layer, ServiceExt};

/// The user a request is made for: declared as baggage, so it crosses the wire as `user-id`.
#[ctx_value(baggage = "user-id")]
#[derive(Clone, Copy, Debug)]
struct UserId(u64);

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

/// A context value that is not declared as baggage: it never leaves the process.
#[ctx_value]
struct ApiKey;

/// The gateway gives the profile service at most this long, whatever its own budget.
const PROFILE_LIMIT: Duration = Duration::from_millis(500);

/// The profile service is slow for this user.
const SLOW_USER: u64 = 7;

type HttpClient = ClientService<Client<HttpConnector, Full<Bytes>>>;

/// Which servers had their work stopped, and how long after it started.
type Stopped = UnboundedSender<(&'static str, Duration)>;

fn baggage() -> Baggage {
    Baggage::new().with::<UserId>()
}

fn client() -> HttpClient {
    let inner = Client::builder(TokioExecutor::new()).build_http();
    ClientLayer::new().baggage(baggage()).layer(inner)
}

/// A duration to the nearest 10 ms, so that runs print alike.
fn about(duration: Duration) -> String {
    format!("{} ms", (duration.as_millis() + 5) / 10 * 10)
}

/// A handler's work: reports that it was stopped if it is dropped before it finishes.
struct Work {
    who: &'static str,
    started: Instant,
    finished: bool,
    stopped: Stopped,
}

impl Work {
    /// Prints what the request's context brought from the wire, and starts the work.
    fn start(who: &'static str, req: &Request<Incoming>, stopped: &Stopped) -> (Context, Work) {
        let ctx = req
            .extensions()
            .get::<Context>()
            .cloned()
            .unwrap_or_default();
        let header = |name| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
        };
        let left = ctx
            .deadline()
            .map(|d| d - Instant::now())
            .unwrap_or_default();
        let user = ctx.value::<UserId>().map_or(0, |u| u.0);
        let key = if ctx.value::<ApiKey>().is_some() {
            "yes"
        } else {
            "no"
        };
        println!(
            "   {who:<8} <- user {user}, {} ms left, API key: {key:<3}  [grpc-timeout: {}, baggage: {}]",
            left.as_millis(),
            header("grpc-timeout"),
            header("baggage"),
        );
        let work = Work {
            who,
            started: Instant::now(),
            finished: false,
            stopped: stopped.clone(),
        };
        (ctx, work)
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.stopped.send((self.who, self.started.elapsed()));
        }
    }
}

/// The profile service: looks the user up (slowly for one user).
async fn profile(req: Request<Incoming>, stopped: Stopped) -> Response<Full<Bytes>> {
    let (ctx, mut work) = Work::start("profile", &req, &stopped);
    let user = ctx.value::<UserId>().map_or(0, |u| u.0);
    let lookup = if user == SLOW_USER {
        Duration::from_secs(5)
    } else {
        Duration::from_millis(20)
    };
    // If the deadline passes first, the layer answers 504 and drops this future.
    tokio::time::sleep(lookup).await;
    work.finished = true;
    Response::new(Full::from(format!("profile of user {user}")))
}

/// The gateway: calls the profile service under its own, narrower limit.
async fn gateway(
    req: Request<Incoming>,
    profile: SocketAddr,
    stopped: Stopped,
) -> Response<Full<Bytes>> {
    let (ctx, mut work) = Work::start("gateway", &req, &stopped);
    let (narrower, _cancel) = ctx.with_timeout(PROFILE_LIMIT);
    println!(
        "   gateway  -> profile, allowing it at most {}",
        about(PROFILE_LIMIT)
    );
    let mut call = Request::get(format!("http://{profile}/"))
        .body(Full::default())
        .unwrap();
    call.extensions_mut().insert(narrower);
    let answer = match client().oneshot(call).await {
        Ok(response) => format!("profile said {}", text(response).await),
        Err(err) => format!("profile call failed: {err}"),
    };
    work.finished = true;
    Response::new(Full::from(answer))
}

async fn text(response: Response<Incoming>) -> String {
    let status = response.status();
    let body = response.into_body().collect().await.map(|b| b.to_bytes());
    format!(
        "{status}: {}",
        String::from_utf8_lossy(&body.unwrap_or_default())
    )
}

/// Serves `handler` behind the server layer on a fresh loopback port.
async fn serve<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let service = ServerLayer::new()
        .baggage(baggage())
        .layer(tower::service_fn(move |req| {
            let answer = handler(req);
            async move { Ok::<_, Infallible>(answer.await) }
        }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let connection = auto::Builder::new(TokioExecutor::new());
                let _ = connection
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// The caller: sends one request to the gateway for `user` within `budget`.
async fn call(gateway: SocketAddr, user: u64, budget: Duration) {
    let (ctx, _cancel) = Context::background()
        .with_value(UserId(user))
        .with_value(ApiKey)
        .with_timeout(budget);
    let mut request = Request::get(format!("http://{gateway}/"))
        .body(Full::default())
        .unwrap();
    request.extensions_mut().insert(ctx);
    let started = Instant::now();
    match client().oneshot(request).await {
        Ok(response) => {
            let answer = text(response).await;
            println!(
                "   caller   <- after {}: {answer}",
                about(started.elapsed())
            );
        }
        Err(err) => println!(
            "   caller   <- gave up after {}: {err}",
            about(started.elapsed())
        ),
    }
}

#[tokio::main]
async fn main() {
    let (stopped, mut stops) = unbounded_channel();
    let profile_stopped = stopped.clone();
    let profile_addr = serve(move |req| profile(req, profile_stopped.clone())).await;
    let gateway_addr = serve(move |req| gateway(req, profile_addr, stopped.clone())).await;
    println!("gateway on {gateway_addr}, profile on {profile_addr}\n");

    println!("1. user 42 calls the gateway with a budget of 2 s (and an API key, not declared)");
    call(gateway_addr, 42, Duration::from_secs(2)).await;

    println!(
        "\n2. user {SLOW_USER} calls with a budget of 300 ms; the profile lookup would take 5 s"
    );
    call(gateway_addr, SLOW_USER, Duration::from_millis(300)).await;
    let mut ends = Vec::new();
    while ends.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(2), stops.recv()).await {
            Ok(Some(end)) => ends.push(end),
            _ => break,
        }
    }
    ends.sort();
    for (who, after) in ends {
        println!("   {who:<8}    its work was stopped after {}", about(after));
    }
}
