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
//!   - `kanal`: the `mpsc` chain over kanal's bounded async channels of 64.
//!   - `ctxpipe`: `Pipeline::new(..).map(..).map(..).map(..).fold(..)`, one worker per stage.
//!     Target: at most 1.0x `mpsc`, at least 5x faster than `mpsc_select`; stretch: at most
//!     1.0x `kanal`.
//!   - `mpsc_deadline`, `ctxpipe_deadline`: the same two under a deadline that does not pass,
//!     which each stage checks against the clock per item.
//! - `io_10k`: 10,000 items through one stage that sleeps 1 ms, with 100 workers. The ideal is
//!   100 ms (100 sleeps in a row per worker), but a tokio `sleep(1 ms)` started right after a
//!   timer tick ends at the second tick from there, so 100 sleeps in a row take about 200 ms on
//!   tokio whoever runs them; `tasks` measures that floor.
//!   - `tasks`: 100 tokio tasks taking item numbers from a shared counter.
//!   - `ctxpipe`, `ctxpipe_ordered`: the pipeline stage with `workers(100)`, without and with
//!     `ordered()`.
//! - `io_10k_device`: the same three, with the stage's 1 ms wait served by a simulated device
//!   that answers each request 1 ms after it was issued, to the operating system's timer
//!   slack, so the ideal of 100 ms is reachable. Targets: `ctxpipe` ≤ 1.3x the ideal,
//!   `ctxpipe_ordered` ≤ 1.1x `ctxpipe`.
//! - `cancel_10k_in_flight`: from `cancel()` to the pipeline's return (every task stopped, every
//!   item dropped) with 10,000 items in flight: 100 workers each in a call that never ends and
//!   9,900 items queued before them, or 10,000 workers each in such a call. Target: ≤ 1 ms.
//!   Baseline for the second: 10,000 tokio tasks each waiting in a biased `select!` on a
//!   tokio-util token, from `cancel()` until a `JoinSet` has joined them all.

use std::collections::VecDeque;
use std::future::Future;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ctxpipe::{Context, Error, Pipeline, StageOptions};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

const ITEMS: u64 = 1_000_000;
const IO_ITEMS: usize = 10_000;
const IO_WORKERS: usize = 100;
const IO_LATENCY: Duration = Duration::from_millis(1);
const CANCEL_ITEMS: usize = 10_000;

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
    mpsc_chain_until(None).await
}

/// `mpsc_chain` whose stages stop once `deadline` has passed, checking the clock per item as
/// a hand-written chain under a deadline does.
async fn mpsc_deadline_chain() -> u64 {
    mpsc_chain_until(Some(
        tokio::time::Instant::now() + Duration::from_secs(3600),
    ))
    .await
}

async fn mpsc_chain_until(deadline: Option<tokio::time::Instant>) -> u64 {
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
                if deadline.is_some_and(|deadline| tokio::time::Instant::now() >= deadline) {
                    return;
                }
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

/// `mpsc_chain` over kanal's bounded async channels, the fastest channels for this shape.
async fn kanal_chain() -> u64 {
    let (tx0, rx0) = kanal::bounded_async::<u64>(64);
    let (tx1, rx1) = kanal::bounded_async::<u64>(64);
    let (tx2, rx2) = kanal::bounded_async::<u64>(64);
    let (tx3, rx3) = kanal::bounded_async::<u64>(64);
    tokio::spawn(async move {
        for i in 0..ITEMS {
            if tx0.send(i).await.is_err() {
                return;
            }
        }
    });
    for (rx, tx) in [(rx0, tx1), (rx1, tx2), (rx2, tx3)] {
        tokio::spawn(async move {
            while let Ok(v) = rx.recv().await {
                if tx.send(v + 1).await.is_err() {
                    return;
                }
            }
        });
    }
    tokio::spawn(async move {
        let mut sum = 0;
        while let Ok(v) = rx3.recv().await {
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
    ctxpipe_chain_in(Context::background()).await
}

/// The same under a deadline that does not pass: each item's checks read the clock.
async fn ctxpipe_deadline_chain() -> u64 {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(3600));
    ctxpipe_chain_in(ctx).await
}

async fn ctxpipe_chain_in(ctx: Context) -> u64 {
    let pipeline = Pipeline::new(&ctx, 0..ITEMS)
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
        ("mpsc_deadline", rt.block_on(mpsc_deadline_chain())),
        ("mpsc_select", rt.block_on(mpsc_select_chain())),
        ("kanal", rt.block_on(kanal_chain())),
        ("ctxpipe", rt.block_on(ctxpipe_chain())),
        ("ctxpipe_deadline", rt.block_on(ctxpipe_deadline_chain())),
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
    group.bench_function("mpsc_deadline", |b| {
        b.to_async(&rt).iter(mpsc_deadline_chain)
    });
    group.bench_function("mpsc_select", |b| b.to_async(&rt).iter(mpsc_select_chain));
    group.bench_function("kanal", |b| b.to_async(&rt).iter(kanal_chain));
    group.bench_function("ctxpipe", |b| b.to_async(&rt).iter(ctxpipe_chain));
    group.bench_function("ctxpipe_deadline", |b| {
        b.to_async(&rt).iter(ctxpipe_deadline_chain)
    });
    group.finish();
}

/// One call of the IO-bound stage: a tokio `sleep(1 ms)`.
async fn tokio_sleep() {
    tokio::time::sleep(IO_LATENCY).await;
}

/// One call of the IO-bound stage: a request to the simulated [`Device`].
async fn device_request() {
    Device::get().request().await;
}

async fn io_tasks<W, F>(wait: W) -> usize
where
    W: Fn() -> F + Copy + Send + 'static,
    F: Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..IO_WORKERS {
        let (next, done) = (next.clone(), done.clone());
        tasks.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < IO_ITEMS {
                wait().await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    done.load(Ordering::Relaxed)
}

async fn io_ctxpipe<W, F>(wait: W, ordered: bool) -> usize
where
    W: Fn() -> F + Copy + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let mut options = StageOptions::new("io").workers(IO_WORKERS);
    if ordered {
        options = options.ordered();
    }
    let pipeline = Pipeline::new(&Context::background(), 0..IO_ITEMS)
        .map(options, move |_ctx, i| async move {
            wait().await;
            Ok(i)
        })
        .count();
    let n: Result<usize, Error> = tokio::spawn(pipeline).await.expect("the pipeline task");
    n.expect("no stage fails")
}

/// A simulated IO device: every request completes [`IO_LATENCY`] after it is issued, served
/// by one thread in issue order (the latencies are all equal, so that is deadline order).
/// Unlike tokio's timer, which rounds a sleep up to its next millisecond tick, it is as exact
/// as the operating system's timer slack (tens of microseconds), so 100 requests in a row
/// take about 100 ms, as the ideal assumes.
struct Device {
    queue: Mutex<VecDeque<(Instant, oneshot::Sender<()>)>>,
    issued: Condvar,
}

impl Device {
    fn get() -> &'static Device {
        static DEVICE: OnceLock<&'static Device> = OnceLock::new();
        DEVICE.get_or_init(|| {
            let device: &'static Device = Box::leak(Box::new(Device {
                queue: Mutex::new(VecDeque::new()),
                issued: Condvar::new(),
            }));
            std::thread::Builder::new()
                .name("io-device".into())
                .spawn(|| device.serve())
                .expect("the device thread");
            device
        })
    }

    async fn request(&self) {
        let (done, wait) = oneshot::channel();
        let was_idle = {
            let mut queue = self.queue.lock().expect("device queue");
            queue.push_back((Instant::now() + IO_LATENCY, done));
            queue.len() == 1
        };
        if was_idle {
            self.issued.notify_one();
        }
        wait.await.expect("the device answers every request");
    }

    fn serve(&self) {
        let mut queue = self.queue.lock().expect("device queue");
        loop {
            let Some(&(due, _)) = queue.front() else {
                queue = self.issued.wait(queue).expect("device queue");
                continue;
            };
            let now = Instant::now();
            if due <= now {
                let (_, done) = queue.pop_front().expect("a request");
                let _ = done.send(());
            } else {
                queue = self
                    .issued
                    .wait_timeout(queue, due - now)
                    .expect("device queue")
                    .0;
            }
        }
    }
}

fn io(c: &mut Criterion) {
    io_group(c, "io_10k", tokio_sleep);
    io_group(c, "io_10k_device", device_request);
}

fn io_group<W, F>(c: &mut Criterion, name: &str, wait: W)
where
    W: Fn() -> F + Copy + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let rt = runtime();
    assert_eq!(rt.block_on(io_tasks(wait)), IO_ITEMS);
    assert_eq!(rt.block_on(io_ctxpipe(wait, false)), IO_ITEMS);
    assert_eq!(rt.block_on(io_ctxpipe(wait, true)), IO_ITEMS);
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(IO_ITEMS as u64));
    group.bench_function("tasks", |b| b.to_async(&rt).iter(|| io_tasks(wait)));
    group.bench_function("ctxpipe", |b| {
        b.to_async(&rt).iter(|| io_ctxpipe(wait, black_box(false)))
    });
    group.bench_function("ctxpipe_ordered", |b| {
        b.to_async(&rt).iter(|| io_ctxpipe(wait, black_box(true)))
    });
    group.finish();
}

/// Runs a pipeline whose one stage never finishes a call, waits until `calls` of them are
/// pending and the source has produced all [`CANCEL_ITEMS`], then times `cancel()` to the
/// pipeline's return (every task stopped, every item dropped).
async fn cancel_in_flight(workers: usize, buffer: usize) -> Duration {
    let (ctx, cancel) = Context::background().with_cancel();
    let started = Arc::new(AtomicUsize::new(0));
    let calls = started.clone();
    let pipeline = Pipeline::<usize, Error>::new(&ctx, 0..CANCEL_ITEMS).map(
        StageOptions::new("stuck")
            .workers(workers)
            .buffer(buffer)
            .batch(1),
        move |_ctx, i| {
            calls.fetch_add(1, Ordering::Relaxed);
            async move {
                std::future::pending::<()>().await;
                Ok(i)
            }
        },
    );
    let progress = pipeline.progress();
    let run = tokio::spawn(pipeline.count());
    while started.load(Ordering::Relaxed) < workers || progress.produced() < CANCEL_ITEMS as u64 {
        tokio::time::sleep(Duration::from_micros(100)).await;
    }
    let start = Instant::now();
    cancel.cancel();
    let result = run.await.expect("the pipeline task");
    let latency = start.elapsed();
    assert_eq!(result, Err(Error::Canceled));
    latency
}

/// The hand-written equivalent of `cancel_in_flight(CANCEL_ITEMS, _)`: as many tasks, each
/// waiting in a biased `select!` on a tokio-util token, joined by a `JoinSet`.
async fn cancel_tasks() -> Duration {
    let token = CancellationToken::new();
    let started = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CANCEL_ITEMS {
        let (token, started) = (token.clone(), started.clone());
        tasks.spawn(async move {
            started.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                biased;
                () = token.cancelled() => {}
                () = std::future::pending() => {}
            }
        });
    }
    while started.load(Ordering::Relaxed) < CANCEL_ITEMS {
        tokio::time::sleep(Duration::from_micros(100)).await;
    }
    let start = Instant::now();
    token.cancel();
    while tasks.join_next().await.is_some() {}
    start.elapsed()
}

fn cancel_latency(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("cancel_10k_in_flight");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (name, workers, buffer) in [
        ("100_calls_9900_queued", 100, CANCEL_ITEMS - 100),
        ("10000_calls", CANCEL_ITEMS, 1),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| rt.block_on(cancel_in_flight(workers, buffer)))
                    .sum()
            })
        });
    }
    group.bench_function("10000_tasks_select", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| rt.block_on(cancel_tasks())).sum())
    });
    group.finish();
}

criterion_group!(benches, chain, io, cancel_latency);
criterion_main!(benches);
