//! Benchmarks of the pipeline runtime, each group next to the hand-written code it replaces.
//!
//! Run with `cargo bench --bench pipeline` (add a filter such as `-- chain` to run one group).
//! Every run uses a multi-thread tokio runtime with 2 worker threads, and every pipeline is
//! spawned on it (so its sink runs on a worker thread, as the baselines' sink tasks do).
//!
//! - `chain_1m`: 1,000,000 integers through 3 stages that add one, summed at the end.
//!   - `mpsc`: 5 tasks (source, 3 stages, sink) joined by 4 bounded tokio `mpsc` channels of 64.
//!   - `mpsc_select`: the same, with every send and receive raced against a tokio-util
//!     `CancellationToken` in a biased `select!`, the usual way to make such a chain
//!     cancellable.
//!   - `ctxpipe`: `Pipeline::new(..).map(..).map(..).map(..).fold(..)`, one worker per stage.
//!     Target: at most 1.0x `mpsc`, at least 5x faster than `mpsc_select`.
//! - `io_10k`: 10,000 items through one stage that sleeps 1 ms, with 100 workers. The ideal is
//!   100 ms (100 sleeps in a row per worker), but a tokio `sleep(1 ms)` started right after a
//!   timer tick ends at the second tick from there, so 100 sleeps in a row take about 200 ms on
//!   tokio whoever runs them; `tasks` measures that floor.
//!   - `tasks`: 100 tokio tasks taking item numbers from a shared counter.
//!   - `ctxpipe`, `ctxpipe_ordered`: the pipeline stage with `workers(100)`, without and with
//!     `ordered()`. Targets: unordered ≤ 1.3x the ideal (so, in practice, close to `tasks`),
//!     ordered ≤ 1.1x unordered.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ctxpipe::{Context, Error, Pipeline, StageOptions};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const ITEMS: u64 = 1_000_000;
const IO_ITEMS: usize = 10_000;
const IO_WORKERS: usize = 100;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The sum that every chain must produce: Σ (i + 3) for i in 0..ITEMS.
fn expected_sum() -> u64 {
    (0..ITEMS).map(|i| i + 3).sum()
}

async fn mpsc_chain() -> u64 {
    let (tx0, rx0) = mpsc::channel::<u64>(64);
    let (tx1, rx1) = mpsc::channel::<u64>(64);
    let (tx2, rx2) = mpsc::channel::<u64>(64);
    let (tx3, mut rx3) = mpsc::channel::<u64>(64);
    tokio::spawn(async move {
        for i in 0..ITEMS {
            if tx0.send(i).await.is_err() {
                return;
            }
        }
    });
    for (mut rx, tx) in [(rx0, tx1), (rx1, tx2), (rx2, tx3)] {
        tokio::spawn(async move {
            while let Some(v) = rx.recv().await {
                if tx.send(v + 1).await.is_err() {
                    return;
                }
            }
        });
    }
    tokio::spawn(async move {
        let mut sum = 0;
        while let Some(v) = rx3.recv().await {
            sum += v;
        }
        sum
    })
    .await
    .expect("the sink task")
}

async fn mpsc_select_chain() -> u64 {
    let token = CancellationToken::new();
    let (tx0, rx0) = mpsc::channel::<u64>(64);
    let (tx1, rx1) = mpsc::channel::<u64>(64);
    let (tx2, rx2) = mpsc::channel::<u64>(64);
    let (tx3, mut rx3) = mpsc::channel::<u64>(64);
    let source_token = token.clone();
    tokio::spawn(async move {
        for i in 0..ITEMS {
            tokio::select! {
                biased;
                () = source_token.cancelled() => return,
                sent = tx0.send(i) => if sent.is_err() { return },
            }
        }
    });
    for (mut rx, tx) in [(rx0, tx1), (rx1, tx2), (rx2, tx3)] {
        let token = token.clone();
        tokio::spawn(async move {
            loop {
                let v = tokio::select! {
                    biased;
                    () = token.cancelled() => return,
                    v = rx.recv() => match v { Some(v) => v, None => return },
                };
                tokio::select! {
                    biased;
                    () = token.cancelled() => return,
                    sent = tx.send(v + 1) => if sent.is_err() { return },
                }
            }
        });
    }
    tokio::spawn(async move {
        let mut sum = 0;
        loop {
            tokio::select! {
                biased;
                () = token.cancelled() => return sum,
                v = rx3.recv() => match v { Some(v) => sum += v, None => return sum },
            }
        }
    })
    .await
    .expect("the sink task")
}

async fn ctxpipe_chain() -> u64 {
    let pipeline = Pipeline::new(&Context::background(), 0..ITEMS)
        .map("a", |_ctx, v: u64| async move { Ok(v + 1) })
        .map("b", |_ctx, v| async move { Ok(v + 1) })
        .map("c", |_ctx, v| async move { Ok(v + 1) })
        .fold(0, |sum, v| sum + v);
    let sum: Result<u64, Error> = tokio::spawn(pipeline).await.expect("the pipeline task");
    sum.expect("no stage fails")
}

fn chain(c: &mut Criterion) {
    let rt = runtime();
    let expected = expected_sum();
    for (name, sum) in [
        ("mpsc", rt.block_on(mpsc_chain())),
        ("mpsc_select", rt.block_on(mpsc_select_chain())),
        ("ctxpipe", rt.block_on(ctxpipe_chain())),
    ] {
        assert_eq!(sum, expected, "{name} lost items");
    }
    let mut group = c.benchmark_group("chain_1m");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(12))
        .throughput(Throughput::Elements(ITEMS));
    group.bench_function("mpsc", |b| b.to_async(&rt).iter(mpsc_chain));
    group.bench_function("mpsc_select", |b| b.to_async(&rt).iter(mpsc_select_chain));
    group.bench_function("ctxpipe", |b| b.to_async(&rt).iter(ctxpipe_chain));
    group.finish();
}

async fn io_tasks() -> usize {
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..IO_WORKERS {
        let (next, done) = (next.clone(), done.clone());
        tasks.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < IO_ITEMS {
                tokio::time::sleep(Duration::from_millis(1)).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    done.load(Ordering::Relaxed)
}

async fn io_ctxpipe(ordered: bool) -> usize {
    let mut options = StageOptions::new("sleep").workers(IO_WORKERS);
    if ordered {
        options = options.ordered();
    }
    let pipeline = Pipeline::new(&Context::background(), 0..IO_ITEMS)
        .map(options, |_ctx, i| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok(i)
        })
        .count();
    let n: Result<usize, Error> = tokio::spawn(pipeline).await.expect("the pipeline task");
    n.expect("no stage fails")
}

fn io(c: &mut Criterion) {
    let rt = runtime();
    assert_eq!(rt.block_on(io_tasks()), IO_ITEMS);
    assert_eq!(rt.block_on(io_ctxpipe(false)), IO_ITEMS);
    assert_eq!(rt.block_on(io_ctxpipe(true)), IO_ITEMS);
    let mut group = c.benchmark_group("io_10k");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(IO_ITEMS as u64));
    group.bench_function("tasks", |b| b.to_async(&rt).iter(io_tasks));
    group.bench_function("ctxpipe", |b| {
        b.to_async(&rt).iter(|| io_ctxpipe(black_box(false)))
    });
    group.bench_function("ctxpipe_ordered", |b| {
        b.to_async(&rt).iter(|| io_ctxpipe(black_box(true)))
    });
    group.finish();
}

criterion_group!(benches, chain, io);
criterion_main!(benches);
