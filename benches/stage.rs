//! What a `#[stage]` checkpoint costs, next to the same function without the attribute and the
//! code users write today (a biased `tokio::select!` on a tokio-util `CancellationToken`).
//!
//! Run with `cargo bench --bench stage`.
//!
//! - `ready`: a function awaiting 1,000,000 futures that are ready at once. Target: the stage
//!   within 1.10x of the plain function (the checkpoint is one atomic load, no allocation, no
//!   waker).
//! - `ready_lock`: the same with a ready future that does some work, as real ones do: locking
//!   an uncontended `tokio::sync::Mutex`.
//! - `pending_once`: a function awaiting 1,000 futures that are pending once (`yield_now`).
//!   Target: the stage within 1.10x of the plain function and faster than the `select!` loop.

use std::future::Future;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ctxpipe::{stage, Context, Error};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

const AWAITS: u64 = 1_000;

/// The awaits of one call in the `ready` group.
const READY_AWAITS: u64 = 1_000_000;

/// A future that is ready at once, opaque to the optimizer.
async fn ready(i: u64) -> u64 {
    black_box(i)
}

async fn plain_ready() -> Result<u64, Error> {
    let mut sum = 0;
    for i in 0..READY_AWAITS {
        sum += ready(i).await;
    }
    Ok(sum)
}

#[stage]
async fn stage_ready() -> Result<u64, Error> {
    let mut sum = 0;
    for i in 0..READY_AWAITS {
        sum += ready(i).await;
    }
    Ok(sum)
}

async fn select_ready(token: &CancellationToken) -> Result<u64, Error> {
    let mut sum = 0;
    for i in 0..READY_AWAITS {
        sum += tokio::select! {
            biased;
            () = token.cancelled() => return Err(Error::Canceled),
            value = ready(i) => value,
        };
    }
    Ok(sum)
}

async fn plain_lock(mutex: &tokio::sync::Mutex<u64>) -> Result<u64, Error> {
    let mut sum = 0;
    for _ in 0..AWAITS {
        sum += *mutex.lock().await;
    }
    Ok(sum)
}

#[stage]
async fn stage_lock(mutex: &tokio::sync::Mutex<u64>) -> Result<u64, Error> {
    let mut sum = 0;
    for _ in 0..AWAITS {
        sum += *mutex.lock().await;
    }
    Ok(sum)
}

async fn select_lock(
    token: &CancellationToken,
    mutex: &tokio::sync::Mutex<u64>,
) -> Result<u64, Error> {
    let mut sum = 0;
    for _ in 0..AWAITS {
        sum += *tokio::select! {
            biased;
            () = token.cancelled() => return Err(Error::Canceled),
            guard = mutex.lock() => guard,
        };
    }
    Ok(sum)
}

async fn plain_yield() -> Result<u64, Error> {
    for _ in 0..AWAITS {
        tokio::task::yield_now().await;
    }
    Ok(AWAITS)
}

#[stage]
async fn stage_yield() -> Result<u64, Error> {
    for _ in 0..AWAITS {
        tokio::task::yield_now().await;
    }
    Ok(AWAITS)
}

async fn select_yield(token: &CancellationToken) -> Result<u64, Error> {
    for _ in 0..AWAITS {
        tokio::select! {
            biased;
            () = token.cancelled() => return Err(Error::Canceled),
            () = tokio::task::yield_now() => {}
        }
    }
    Ok(AWAITS)
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
}

/// One group: the plain function, the stage and the `select!` loop, each a call of `awaits`
/// awaits.
fn compare<P, S, T>(
    c: &mut Criterion,
    name: &str,
    awaits: u64,
    rt: &Runtime,
    mut plain: impl FnMut() -> P,
    mut stage: impl FnMut() -> S,
    mut select: impl FnMut() -> T,
) where
    P: Future,
    S: Future,
    T: Future,
{
    let mut group = c.benchmark_group(name);
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(awaits));
    if awaits >= READY_AWAITS {
        // A call of the `select!` loop takes about 70 ms: fewer, longer samples.
        group
            .sample_size(20)
            .measurement_time(Duration::from_secs(4));
    }
    group.bench_function("plain", |b| b.to_async(rt).iter(&mut plain));
    group.bench_function("stage", |b| b.to_async(rt).iter(&mut stage));
    group.bench_function("tokio_util_select", |b| b.to_async(rt).iter(&mut select));
    group.finish();
}

fn ready_futures(c: &mut Criterion) {
    let rt = runtime();
    let (ctx, _cancel) = Context::background().with_cancel();
    let token = CancellationToken::new();
    compare(
        c,
        "ready",
        READY_AWAITS,
        &rt,
        plain_ready,
        || stage_ready(&ctx),
        || select_ready(&token),
    );
}

fn ready_lock(c: &mut Criterion) {
    let rt = runtime();
    let (ctx, _cancel) = Context::background().with_cancel();
    let token = CancellationToken::new();
    let mutex = tokio::sync::Mutex::new(1);
    compare(
        c,
        "ready_lock",
        AWAITS,
        &rt,
        || plain_lock(&mutex),
        || stage_lock(&ctx, &mutex),
        || select_lock(&token, &mutex),
    );
}

fn pending_once(c: &mut Criterion) {
    let rt = runtime();
    let (ctx, _cancel) = Context::background().with_cancel();
    let token = CancellationToken::new();
    compare(
        c,
        "pending_once",
        AWAITS,
        &rt,
        plain_yield,
        || stage_yield(&ctx),
        || select_yield(&token),
    );
}

criterion_group!(benches, ready_futures, ready_lock, pending_once);
criterion_main!(benches);
