//! Real hyper servers and clients on 127.0.0.1: service A calls B with a 2 s budget, B calls C;
//! the deadline narrows at each hop, the declared user id crosses both hops, and A going away
//! stops B's and C's work.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::{client, serve, text, Secret, UserId};
use ctxpipe::tower::ServerLayer;
use ctxpipe::{Context, Error};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::time::{timeout, Instant};
use tower::{Layer, ServiceExt};

const BUDGET: Duration = Duration::from_secs(2);
/// How long B works before it calls C.
const B_WORK: Duration = Duration::from_millis(100);
/// B's own, narrower limit for its call to C.
const B_LIMIT: Duration = Duration::from_millis(1500);
/// Only to keep a broken test from hanging; never reached when things work.
const PATIENCE: Duration = Duration::from_secs(10);

/// What a server saw, sent to the test as it happens.
#[derive(Debug)]
enum Report {
    Entered {
        who: &'static str,
        left: Duration,
        user: Option<UserId>,
        secret: bool,
        baggage: Option<String>,
    },
    Ended {
        who: &'static str,
        err: Option<Error>,
    },
}

/// Reports the request's context, and reports again when it ends, from a task of its own (the
/// handler's future may be dropped before that).
fn enter(who: &'static str, req: &Request<Incoming>, reports: &UnboundedSender<Report>) -> Context {
    let ctx = req.extensions().get::<Context>().unwrap().clone();
    reports
        .send(Report::Entered {
            who,
            left: ctx.deadline().unwrap() - Instant::now(),
            user: ctx.value::<UserId>().copied(),
            secret: ctx.value::<Secret>().is_some(),
            baggage: req
                .headers()
                .get("baggage")
                .map(|v| v.to_str().unwrap().to_owned()),
        })
        .unwrap();
    let watched = ctx.clone();
    let reports = reports.clone();
    tokio::spawn(async move {
        watched.done().await;
        let _ = reports.send(Report::Ended {
            who,
            err: watched.err(),
        });
    });
    ctx
}

/// C: answers at once on `/`, works until its context ends on `/hang`.
async fn start_c(reports: UnboundedSender<Report>) -> SocketAddr {
    let handler = tower::service_fn(move |req: Request<Incoming>| {
        let reports = reports.clone();
        async move {
            let ctx = enter("C", &req, &reports);
            if req.uri().path() == "/hang" {
                ctx.done().await;
            }
            Ok::<_, Infallible>(text("C done"))
        }
    });
    serve(ServerLayer::new().baggage(common::baggage()).layer(handler)).await
}

/// B: works a little, then calls C (same path) under a narrower limit, and relays its answer.
async fn start_b(reports: UnboundedSender<Report>, c: SocketAddr, http2: bool) -> SocketAddr {
    let to_c = client(http2);
    let handler = tower::service_fn(move |req: Request<Incoming>| {
        let reports = reports.clone();
        let to_c = to_c.clone();
        async move {
            let ctx = enter("B", &req, &reports);
            let _ = ctx.run(tokio::time::sleep(B_WORK)).await;
            let (narrower, _cancel) = ctx.with_timeout(B_LIMIT);
            let mut call = Request::get(format!("http://{c}{}", req.uri().path()))
                .body(Full::<Bytes>::default())
                .unwrap();
            call.extensions_mut().insert(narrower);
            let answer = match to_c.oneshot(call).await {
                Ok(response) => {
                    let body = response.into_body().collect().await.unwrap().to_bytes();
                    format!("B relays: {}", String::from_utf8_lossy(&body))
                }
                Err(err) => format!("B's call failed: {err}"),
            };
            Ok::<_, Infallible>(text(answer))
        }
    });
    serve(ServerLayer::new().baggage(common::baggage()).layer(handler)).await
}

async fn chain(http2: bool) -> (SocketAddr, UnboundedReceiver<Report>) {
    let (reports, received) = unbounded_channel();
    let c = start_c(reports.clone()).await;
    let b = start_b(reports, c, http2).await;
    (b, received)
}

fn request(to: SocketAddr, path: &str, ctx: &Context) -> Request<Full<Bytes>> {
    let mut request = Request::get(format!("http://{to}{path}"))
        .body(Full::default())
        .unwrap();
    request.extensions_mut().insert(ctx.clone());
    request
}

async fn next(reports: &mut UnboundedReceiver<Report>) -> Report {
    timeout(PATIENCE, reports.recv())
        .await
        .expect("a server reports in time")
        .expect("the servers are running")
}

async fn deadline_narrows_at_each_hop(http2: bool) {
    let (b, mut reports) = chain(http2).await;
    let (ctx, _cancel) = Context::background()
        .with_value(UserId(42))
        .with_value(Secret("stays here"))
        .with_timeout(BUDGET);
    let start = Instant::now();
    // A's own work before the call uses up part of the budget.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let spent_by_a = start.elapsed();

    let response: Response<Incoming> = client(http2).oneshot(request(b, "/", &ctx)).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "B relays: C done");

    let Report::Entered {
        who: "B",
        left: left_b,
        user,
        secret,
        baggage,
    } = next(&mut reports).await
    else {
        panic!("B reports first")
    };
    assert!(
        left_b <= BUDGET - spent_by_a,
        "B got {left_b:?} after A spent {spent_by_a:?}"
    );
    assert!(
        left_b > BUDGET - Duration::from_secs(1),
        "B got only {left_b:?}"
    );
    assert_eq!(user, Some(UserId(42)));
    assert!(!secret, "an undeclared value never crosses");
    assert_eq!(
        baggage.as_deref(),
        Some("user-id=42"),
        "only declared values are sent"
    );

    let Report::Entered {
        who: "C",
        left: left_c,
        user,
        secret,
        baggage,
    } = next(&mut reports).await
    else {
        panic!("C reports next")
    };
    assert!(left_c <= B_LIMIT, "C got {left_c:?}, more than B's limit");
    assert!(
        left_c <= left_b - B_WORK,
        "C got {left_c:?}, B had {left_b:?} before working"
    );
    assert!(
        left_c > B_LIMIT - Duration::from_secs(1),
        "C got only {left_c:?}"
    );
    assert_eq!(user, Some(UserId(42)), "the user id crosses two hops");
    assert!(!secret);
    assert_eq!(baggage.as_deref(), Some("user-id=42"));
    assert!(!ctx.is_done());
}

#[tokio::test]
async fn http2_deadline_narrows_at_each_hop_and_the_user_id_crosses() {
    deadline_narrows_at_each_hop(true).await;
}

#[tokio::test]
async fn http1_deadline_narrows_at_each_hop_and_the_user_id_crosses() {
    deadline_narrows_at_each_hop(false).await;
}

#[derive(Clone, Copy, Debug)]
enum HowAGivesUp {
    CancelsItsContext,
    DropsItsCall,
}

async fn a_giving_up_stops_b_and_c(http2: bool, how: HowAGivesUp) {
    let (b, mut reports) = chain(http2).await;
    let (ctx, cancel) = Context::background()
        .with_value(UserId(7))
        .with_timeout(BUDGET);
    let call = tokio::spawn(client(http2).oneshot(request(b, "/hang", &ctx)));

    // Wait until the work reached C, then give up.
    let mut entered = Vec::new();
    while entered.len() < 2 {
        match next(&mut reports).await {
            Report::Entered { who, .. } => entered.push(who),
            other => panic!("{other:?} before both servers started"),
        }
    }
    assert_eq!(entered, ["B", "C"]);
    let gave_up = Instant::now();
    match how {
        HowAGivesUp::CancelsItsContext => {
            cancel.cancel();
            let err = call.await.unwrap().unwrap_err();
            assert_eq!(err.downcast_ref::<Error>(), Some(&Error::Canceled));
        }
        HowAGivesUp::DropsItsCall => call.abort(),
    }

    // Both servers see their request's context cancelled (not timed out: the budget is far).
    let mut ended = Vec::new();
    while ended.len() < 2 {
        match next(&mut reports).await {
            Report::Ended { who, err } => {
                assert_eq!(err, Some(Error::Canceled), "{who}'s context");
                ended.push(who);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    ended.sort_unstable();
    assert_eq!(ended, ["B", "C"]);
    assert!(
        gave_up.elapsed() < BUDGET / 2,
        "stopped by the cancel, not the deadline"
    );
}

#[tokio::test]
async fn http2_a_cancelling_its_context_stops_b_and_c() {
    a_giving_up_stops_b_and_c(true, HowAGivesUp::CancelsItsContext).await;
}

#[tokio::test]
async fn http2_a_dropping_its_call_stops_b_and_c() {
    a_giving_up_stops_b_and_c(true, HowAGivesUp::DropsItsCall).await;
}

#[tokio::test]
async fn http1_a_cancelling_its_context_stops_b_and_c() {
    a_giving_up_stops_b_and_c(false, HowAGivesUp::CancelsItsContext).await;
}

#[tokio::test]
async fn http1_a_dropping_its_call_stops_b_and_c() {
    a_giving_up_stops_b_and_c(false, HowAGivesUp::DropsItsCall).await;
}

#[tokio::test]
async fn b_overrunning_its_deadline_gets_504() {
    let (b, _reports) = chain(true).await;
    let (ctx, _cancel) = Context::background().with_timeout(BUDGET);
    // A raw call without the client layer, with a budget shorter than B's work.
    let mut call = request(b, "/hang", &ctx);
    call.extensions_mut().remove::<Context>();
    call.headers_mut()
        .insert("grpc-timeout", "50m".parse().unwrap());
    let started = Instant::now();
    let response = client(true).oneshot(call).await.unwrap();
    assert_eq!(response.status(), 504);
    assert!(started.elapsed() >= Duration::from_millis(50));
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "request deadline exceeded");
}
