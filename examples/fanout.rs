//! A request with a deadline fans out to several backends; the first failure cancels the rest.
//!
//! ```text
//! cargo run --release --example fanout [-- --timeout-ms 120]
//! ```
//!
//! Each backend call runs under a child context with its own, shorter timeout; the request's
//! deadline still bounds all of them. Values (the request id) reach every call by type. When one
//! backend fails, its cause cancels the siblings, and an `after_func` logs the end of the request.

use std::time::Duration;

use ctxpipe::{Context, Error};
use tokio::time::Instant;

#[derive(Debug)]
struct RequestId(u32);

#[derive(Debug)]
struct BackendDown(&'static str);

impl std::fmt::Display for BackendDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "backend {} is down", self.0)
    }
}

impl std::error::Error for BackendDown {}

/// A backend that answers after `latency`, or fails after it if `fails`.
async fn call(ctx: Context, name: &'static str, latency: Duration, fails: bool) -> String {
    let (ctx, _) = ctx.with_timeout(Duration::from_millis(80));
    let id = ctx.value::<RequestId>().map_or(0, |id| id.0);
    let started = Instant::now();
    match ctx.run(tokio::time::sleep(latency)).await {
        Ok(()) if fails => format!("{name:>8}: failed after {:?}", started.elapsed()),
        Ok(()) => format!(
            "{name:>8}: answered request {id} in {:?}",
            started.elapsed()
        ),
        Err(err) => format!(
            "{name:>8}: stopped after {:?}: {err} (cause: {})",
            started.elapsed(),
            ctx.cause()
                .map_or_else(|| "-".into(), |cause| cause.to_string())
        ),
    }
}

fn timeout_from_args() -> Result<Duration, String> {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next(), args.next()) {
        (None, _, _) => Ok(Duration::from_millis(120)),
        (Some("--timeout-ms"), Some(ms), None) => ms
            .parse()
            .map(Duration::from_millis)
            .map_err(|err| format!("--timeout-ms {ms}: {err}")),
        _ => Err("usage: fanout [--timeout-ms N]".into()),
    }
}

#[tokio::main]
async fn main() {
    let timeout = match timeout_from_args() {
        Ok(timeout) => timeout,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let request = Context::background().with_value(RequestId(7));
    let (request, cancel) = request.with_timeout(timeout);
    let started = Instant::now();
    let (ended_tx, ended_rx) = tokio::sync::oneshot::channel();
    request.after_func(move || {
        let _ = ended_tx.send(started.elapsed());
    });

    let backends = [
        ("users", Duration::from_millis(20), false),
        ("orders", Duration::from_millis(50), false),
        ("search", Duration::from_millis(200), false),
        ("billing", Duration::from_millis(60), true),
    ];
    let mut calls = tokio::task::JoinSet::new();
    for (name, latency, fails) in backends {
        let ctx = request.clone();
        let cancel = cancel.clone();
        calls.spawn(async move {
            let line = call(ctx, name, latency, fails).await;
            if fails {
                cancel.cancel_with(BackendDown(name));
            }
            line
        });
    }
    while let Some(line) = calls.join_next().await {
        println!("{}", line.expect("backend tasks do not panic"));
    }

    cancel.cancel(); // a no-op if a backend failed or the deadline passed first
    let ended = ended_rx
        .await
        .expect("the after_func runs once the request is done");
    let cause = request
        .cause()
        .map(|cause| cause.to_string())
        .unwrap_or_default();
    println!(
        "request: {} after {ended:?} (cause: {cause})",
        request.err().unwrap_or(Error::Canceled)
    );
}
