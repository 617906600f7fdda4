//! An axum router behind the server layer, served by hyper on 127.0.0.1: a handler takes the
//! request's context as an `Extension<Context>`.

mod common;

use std::time::Duration;

use axum::routing::get;
use axum::{Extension, Router};
use bytes::Bytes;
use common::{serve, UserId};
use ctxpipe::tower::ServerLayer;
use ctxpipe::Context;
use http::Request;
use http_body_util::{BodyExt, Full};
use tokio::time::Instant;
use tower::ServiceExt;

async fn whoami(Extension(ctx): Extension<Context>) -> String {
    let left = ctx
        .deadline()
        .map(|d| d - Instant::now())
        .unwrap_or_default();
    let user = ctx.value::<UserId>().map_or(0, |u| u.0);
    format!("user {user}, {} ms", left.as_millis())
}

async fn hang(Extension(ctx): Extension<Context>) -> &'static str {
    ctx.done().await;
    "too late"
}

#[tokio::test]
async fn an_axum_handler_gets_the_context_and_overruns_get_504() {
    let app = Router::new()
        .route("/whoami", get(whoami))
        .route("/hang", get(hang))
        .layer(ServerLayer::new().baggage(common::baggage()));
    let addr = serve(app).await;
    let client = common::client(false);

    let (ctx, _cancel) = Context::background()
        .with_value(UserId(5))
        .with_timeout(Duration::from_secs(2));
    let mut request = Request::get(format!("http://{addr}/whoami"))
        .body(Full::<Bytes>::default())
        .unwrap();
    request.extensions_mut().insert(ctx);
    let response = client.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8(body.to_vec()).unwrap();
    let millis: u64 = body
        .strip_prefix("user 5, ")
        .and_then(|rest| rest.strip_suffix(" ms"))
        .unwrap_or_else(|| panic!("{body:?}"))
        .parse()
        .unwrap();
    assert!((1_000..2_000).contains(&millis), "{body:?}");

    // An overrun, with `grpc-timeout` written by hand (no client-side deadline races it).
    let request = Request::get(format!("http://{addr}/hang"))
        .header("grpc-timeout", "100m")
        .body(Full::<Bytes>::default())
        .unwrap();
    let response = client.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 504);
}
