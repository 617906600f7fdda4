//! Benchmarks of the pipeline runtime, each workload next to the best code a skilled user
//! would write by hand for it, in the same run, so results read as ratios.
//!
//! Run with `cargo bench --bench pipeline` (add a filter such as `-- chain_1m` to run one
//! group). Every run uses a multi-thread tokio runtime with 2 worker threads, and every
//! pipeline and every async baseline is spawned on it (so its sink runs on a worker thread);
//! the `rayon` baselines run in a rayon pool of 2 threads, and the `sequential` floors on the
//! bench thread. Each variant's result is checked once before it is timed. `pipeline_memory`
//! measures the peak heap of the `chain_1m` chain.
//!
//! - `chain_1m`: 1,000,000 integers through 3 stages that each add one, summed at the end.
//!   - `mpsc_batched`: the headline baseline. 5 tasks (source, 3 stages, sink) joined by
//!     bounded tokio `mpsc` channels of `Vec<u64>` batches of `DEFAULT_BATCH` (128) items,
//!     each channel holding `DEFAULT_BUFFER` (256) items, as a ctxpipe queue does; a stage
//!     adds one to each item of a batch in place and sends the same `Vec` on.
//!   - `mpsc`: the same 5 tasks joined by 4 bounded tokio `mpsc` channels of 64, one item per
//!     message.
//!   - `mpsc_deadline`: `mpsc` under a deadline that does not pass, which each stage checks
//!     against the clock per item.
//!   - `mpsc_select`: `mpsc` with every send and receive raced against a tokio-util
//!     `CancellationToken` in a biased `select!`, the usual way to make such a chain
//!     cancellable.
//!   - `kanal`: the `mpsc` chain over kanal's bounded async channels of 64.
//!   - `then_chain`: one task, `stream::iter(..)` then `.then(|x| async move { x + 1 })` three
//!     times and `.fold(..)`: no concurrency between stages, no channels.
//!   - `buffered_64`: the same with `.map(|x| async move { x + 1 }).buffered(64)` per stage.
//!   - `rayon`: `into_par_iter()` with three `.map(..)` and `.sum()`, each stage's result
//!     through `black_box` as in `sequential` (or the sum is taken in closed form).
//!   - `sequential`: a plain loop, each addition through `black_box`: the floor.
//!   - `ctxpipe`: `Pipeline::new(..).map(..).map(..).map(..).fold(..)`, one worker per stage.
//!     Target: at most 1.0x `mpsc_batched`; stretch: at most 2x `then_chain`.
//!   - `ctxpipe_macro`: `pipeline! { .. => inc => inc => inc => fold(..) }` over a
//!     `#[stage] async fn inc`. Target: at most 1.10x `ctxpipe`.
//!   - `ctxpipe_deadline`: `ctxpipe` under the deadline of `mpsc_deadline`.
//! - `chain_100k`: the same variants over 100,000 items, where the cost of starting and
//!   stopping the tasks weighs ten times more.
//! - `flat_map_100`: 10,000 inputs, each expanded into the 100 items `i*100 .. i*100+100` by a
//!   first stage, then a stage that adds one, summed: 1,000,000 items reach the sink.
//!   - `mpsc_batched`: source, expander, stage and sink tasks over channels of batches as in
//!     `chain_1m`, the expander filling output `Vec`s of 128.
//!   - `then_chain`: one task, `stream::iter(..).flat_map(|i| stream::iter(..)).then(..)`.
//!   - `sequential`: two nested loops.
//!   - `ctxpipe`: `.flat_map("expand", ..).map("inc", ..).fold(..)`. Target: at most 1.0x
//!     `mpsc_batched`.
//!   - `ctxpipe_macro`: `pipeline!` over a `#[stage]` function returning the range, marked
//!     `[flat]`, then `inc`.
//! - `chain_10_stages`: 1,000,000 integers through 10 stages that add one: `ctxpipe` (built in
//!   a loop), `mpsc_batched` (10 stage tasks) and `sequential`. The point: the cost per item
//!   per stage, time / (1,000,000 x 10), stays flat from 3 stages (`chain_1m`, time /
//!   (1,000,000 x 3)) to 10. Target for `ctxpipe`: no higher than at 3 stages.
//! - `cpu_2_workers`: 100,000 items through one stage whose call is about 5 µs of real CPU
//!   work (2,000 rounds of xorshift and a multiply: 5.03 µs per call measured on an idle
//!   2-core Xeon virtual machine), then summed.
//!   - `sequential`: the same calls in a plain loop: the floor 2 workers should beat.
//!   - `rayon`: `into_par_iter().map(..).sum()` in a 2-thread pool.
//!   - `mpsc_batched_2`: a source task dealing batches of 128 round-robin to 2 worker tasks,
//!     each with its own bounded channel of 2 batches (the items cost the same, so dealing
//!     in turn balances them without the lock of a shared receiver), both sending to one
//!     sink task.
//!   - `ctxpipe`: the stage with `StageOptions::new("work").workers(2)`. Target: at least 1.8x
//!     faster than `sequential` and at least 0.9x as fast as `rayon`.
//! - `io_10k`: 10,000 items through one stage that sleeps 1 ms, with 100 calls at once. The
//!   ideal is 100 ms (100 sleeps in a row per worker), but a tokio `sleep(1 ms)` started right
//!   after a timer tick ends at the second tick from there, so 100 sleeps in a row take about
//!   200 ms on tokio whoever runs them; `tasks` measures that floor.
//!   - `tasks`: 100 tokio tasks taking item numbers from a shared counter.
//!   - `buffer_unordered_100`: one task, `stream::iter(..).map(..).buffer_unordered(100)`.
//!   - `buffered_100`: the same with `.buffered(100)`, which keeps input order.
//!   - `ctxpipe`, `ctxpipe_ordered`: the pipeline stage with `workers(100)`, without and with
//!     `ordered()`. Targets: `ctxpipe` at most 1.05x the faster of `tasks` and
//!     `buffer_unordered_100`; `ctxpipe_ordered` at most 1.05x `buffered_100`.
//! - `io_10k_device`: the same five, with the stage's 1 ms wait served by a simulated device
//!   that answers each request 1 ms after it was issued, to the operating system's timer
//!   slack, so the ideal of 100 ms is reachable. Targets: as in `io_10k`; `ctxpipe` ≤ 1.3x
//!   the ideal, `ctxpipe_ordered` ≤ 1.1x `ctxpipe`.
//! - `cancel_10k_in_flight`: from `cancel()` to the pipeline's return (every task stopped, every
//!   item dropped) with 10,000 items in flight: 100 workers each in a call that never ends and
//!   9,900 items queued before them, or 10,000 workers each in such a call. Target: ≤ 1 ms,
//!   and ≤ 1.0x the baseline for the second: 10,000 tokio tasks each waiting in a biased
//!   `select!` on a tokio-util token, from `cancel()` until a `JoinSet` has joined them all.
//! - `policy_1m`: the `chain_1m` workload (1,000,000 integers, 3 stages that add one) as
//!   `ctxpipe`, and again with each stage's options set to `on_error(OnError::Skip)`
//!   (`ctxpipe_skip`) and to `retry(3)` (`ctxpipe_retry_3`); no call fails. What the
//!   policies cost when nothing goes wrong. Target: at most 1.05x `ctxpipe` for both.
//!
//! `pipeline_memory` (`cargo bench --bench pipeline_memory`) runs the `chain_1m` chain once
//! per variant and prints its peak heap. Target: `ctxpipe` and `ctxpipe_macro` within 1 MiB
//! of `mpsc_batched`.

mod common;

use std::collections::VecDeque;
use std::future::Future;
use std::hint::black_box;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{
    batched_sum, chain_sum, ctxpipe_chain, ctxpipe_chain_in, ctxpipe_macro_chain, inc,
    mpsc_batched_chain, mpsc_chain_until, runtime, spawn_batched_map, spawn_batched_source, BATCH,
    CHAIN_ITEMS, QUEUED_BATCHES,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ctxpipe::{pipeline, stage, Context, Error, OnError, Pipeline, RetryPolicy, StageOptions};
use futures::future::BoxFuture;
use futures::{stream, FutureExt, StreamExt};
use rayon::iter::{IntoParallelIterator, ParallelIterator};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

const IO_ITEMS: usize = 10_000;
const IO_WORKERS: usize = 100;
const IO_LATENCY: Duration = Duration::from_millis(1);
const CANCEL_ITEMS: usize = 10_000;

/// The inputs of `flat_map_100`, each expanded into [`FLAT_FANOUT`] items.
const FLAT_INPUTS: u64 = 10_000;
const FLAT_FANOUT: u64 = 100;

/// The stages of `chain_10_stages`.
const MANY_STAGES: usize = 10;

/// The items of `cpu_2_workers`, the workers of its stage, and the rounds of [`cpu_work`]
/// that make one call cost about 5 µs.
const CPU_ITEMS: u64 = 100_000;
const CPU_WORKERS: usize = 2;
const CPU_WORK_ROUNDS: u32 = 2_000;

/// One way of running a group's workload, returning its result.
enum Variant {
    /// A future polled on the runtime; it spawns what it runs.
    Async(Box<dyn Fn() -> BoxFuture<'static, u64>>),
    /// A call on the bench thread: the `sequential` floors, and rayon (which installs into its
    /// own pool from there).
    Blocking(Box<dyn Fn() -> u64>),
}

/// An async variant. Boxing its future costs one allocation per run, noise next to the
/// shortest run here (a tenth of a millisecond or more).
fn spawned<F, Fut>(run: F) -> Variant
where
    F: Fn() -> Fut + 'static,
    Fut: Future<Output = u64> + Send + 'static,
{
    Variant::Async(Box::new(move || run().boxed()))
}

fn blocking(run: impl Fn() -> u64 + 'static) -> Variant {
    Variant::Blocking(Box::new(run))
}

/// Checks that each variant returns `expected`, then benches them all in group `name` with
/// `elements` as the throughput of one run.
fn bench_variants(
    c: &mut Criterion,
    name: &str,
    elements: u64,
    measurement: Duration,
    expected: u64,
    variants: &[(&str, Variant)],
) {
    let rt = runtime();
    for (variant, run) in variants {
        let result = match run {
            Variant::Async(run) => rt.block_on(run()),
            Variant::Blocking(run) => run(),
        };
        assert_eq!(result, expected, "{name}/{variant} lost or changed items");
    }
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(measurement)
        .throughput(Throughput::Elements(elements));
    for (variant, run) in variants {
        match run {
            Variant::Async(run) => group.bench_function(*variant, |b| b.to_async(&rt).iter(run)),
            Variant::Blocking(run) => group.bench_function(*variant, |b| b.iter(run)),
        };
    }
    group.finish();
}

/// The rayon pool of every `rayon` variant: 2 threads, as many as the tokio runtime's workers.
fn rayon_pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("a rayon pool")
    })
}

/// `mpsc_chain_until` under a deadline that does not pass.
async fn mpsc_deadline_chain(items: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
    mpsc_chain_until(items, Some(deadline)).await
}

/// The `mpsc` chain over kanal's bounded async channels, the fastest channels for this shape.
async fn kanal_chain(items: u64) -> u64 {
    let (tx0, rx0) = kanal::bounded_async::<u64>(64);
    let (tx1, rx1) = kanal::bounded_async::<u64>(64);
    let (tx2, rx2) = kanal::bounded_async::<u64>(64);
    let (tx3, rx3) = kanal::bounded_async::<u64>(64);
    tokio::spawn(async move {
        for i in 0..items {
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

async fn mpsc_select_chain(items: u64) -> u64 {
    let token = CancellationToken::new();
    let (tx0, rx0) = mpsc::channel::<u64>(64);
    let (tx1, rx1) = mpsc::channel::<u64>(64);
    let (tx2, rx2) = mpsc::channel::<u64>(64);
    let (tx3, mut rx3) = mpsc::channel::<u64>(64);
    let source_token = token.clone();
    tokio::spawn(async move {
        for i in 0..items {
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

/// The 3-stage chain as one task of futures combinators, each stage a `.then(..)`.
async fn then_chain(items: u64) -> u64 {
    tokio::spawn(async move {
        stream::iter(0..items)
            .then(|v| async move { v + 1 })
            .then(|v| async move { v + 1 })
            .then(|v| async move { v + 1 })
            .fold(0, |sum, v| async move { sum + v })
            .await
    })
    .await
    .expect("the stream task")
}

/// The 3-stage chain as one task of futures combinators, each stage a `.buffered(64)`.
async fn buffered_chain(items: u64) -> u64 {
    tokio::spawn(async move {
        stream::iter(0..items)
            .map(|v| async move { v + 1 })
            .buffered(64)
            .map(|v| async move { v + 1 })
            .buffered(64)
            .map(|v| async move { v + 1 })
            .buffered(64)
            .fold(0, |sum, v| async move { sum + v })
            .await
    })
    .await
    .expect("the stream task")
}

/// The 3-stage chain in rayon. Each stage's result goes through `black_box`, as in
/// `sequential_chain`: without it each thread's share is summed in closed form.
fn rayon_chain(items: u64) -> u64 {
    rayon_pool().install(|| {
        (0..items)
            .into_par_iter()
            .map(|v| black_box(v + 1))
            .map(|v| black_box(v + 1))
            .map(|v| black_box(v + 1))
            .sum()
    })
}

/// The floor: a plain loop, each addition through `black_box` so that the loop is not
/// reduced to a closed form.
fn sequential_chain(items: u64, stages: usize) -> u64 {
    let mut sum = 0;
    for i in 0..items {
        let mut v = black_box(i);
        for _ in 0..stages {
            v = black_box(v + 1);
        }
        sum += v;
    }
    sum
}

async fn ctxpipe_deadline_chain(items: u64) -> u64 {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(3600));
    ctxpipe_chain_in(ctx, items, 3).await
}

fn chain(c: &mut Criterion) {
    chain_group(c, "chain_1m", CHAIN_ITEMS, Duration::from_secs(12));
    chain_group(c, "chain_100k", CHAIN_ITEMS / 10, Duration::from_secs(4));
}

fn chain_group(c: &mut Criterion, name: &str, items: u64, measurement: Duration) {
    let variants = [
        (
            "mpsc_batched",
            spawned(move || mpsc_batched_chain(items, 3)),
        ),
        ("mpsc", spawned(move || mpsc_chain_until(items, None))),
        ("mpsc_deadline", spawned(move || mpsc_deadline_chain(items))),
        ("mpsc_select", spawned(move || mpsc_select_chain(items))),
        ("kanal", spawned(move || kanal_chain(items))),
        ("then_chain", spawned(move || then_chain(items))),
        ("buffered_64", spawned(move || buffered_chain(items))),
        ("rayon", blocking(move || rayon_chain(items))),
        ("sequential", blocking(move || sequential_chain(items, 3))),
        ("ctxpipe", spawned(move || ctxpipe_chain(items))),
        ("ctxpipe_macro", spawned(move || ctxpipe_macro_chain(items))),
        (
            "ctxpipe_deadline",
            spawned(move || ctxpipe_deadline_chain(items)),
        ),
    ];
    bench_variants(c, name, items, measurement, chain_sum(items, 3), &variants);
}

/// What `flat_map_100` expands input `i` into.
fn expansion(i: u64) -> Range<u64> {
    i * FLAT_FANOUT..(i + 1) * FLAT_FANOUT
}

#[stage]
async fn expand(i: u64) -> Result<Range<u64>, Error> {
    Ok(expansion(i))
}

async fn flat_mpsc_batched() -> u64 {
    let (source_tx, mut inputs) = mpsc::channel::<Vec<u64>>(QUEUED_BATCHES);
    let (expanded_tx, expanded_rx) = mpsc::channel(QUEUED_BATCHES);
    let (inc_tx, inc_rx) = mpsc::channel(QUEUED_BATCHES);
    spawn_batched_source(0..FLAT_INPUTS, vec![source_tx]);
    tokio::spawn(async move {
        let mut out = Vec::with_capacity(BATCH);
        while let Some(batch) = inputs.recv().await {
            for v in batch.into_iter().flat_map(expansion) {
                out.push(v);
                if out.len() == BATCH {
                    let full = std::mem::replace(&mut out, Vec::with_capacity(BATCH));
                    if expanded_tx.send(full).await.is_err() {
                        return;
                    }
                }
            }
        }
        if !out.is_empty() {
            let _ = expanded_tx.send(out).await;
        }
    });
    spawn_batched_map(expanded_rx, inc_tx, |v| v + 1);
    batched_sum(inc_rx).await
}

async fn flat_then_chain() -> u64 {
    tokio::spawn(async {
        stream::iter(0..FLAT_INPUTS)
            .flat_map(|i| stream::iter(expansion(i)))
            .then(|v| async move { v + 1 })
            .fold(0, |sum, v| async move { sum + v })
            .await
    })
    .await
    .expect("the stream task")
}

fn flat_sequential() -> u64 {
    let mut sum = 0;
    for i in 0..FLAT_INPUTS {
        for v in expansion(black_box(i)) {
            sum += black_box(v + 1);
        }
    }
    sum
}

async fn flat_ctxpipe() -> u64 {
    let pipeline = Pipeline::<u64, Error>::new(&Context::background(), 0..FLAT_INPUTS)
        .flat_map("expand", |_ctx, i| async move { Ok(expansion(i)) })
        .map("inc", |_ctx, v| async move { Ok(v + 1) })
        .fold(0, |sum, v| sum + v);
    let sum = tokio::spawn(pipeline).await.expect("the pipeline task");
    sum.expect("no stage fails")
}

async fn flat_ctxpipe_macro() -> u64 {
    let sum = tokio::spawn(async {
        let ctx = Context::background();
        pipeline! { in &ctx; from 0..FLAT_INPUTS => expand [flat] => inc => fold(0, |s, v| s + v) }
            .await
    })
    .await
    .expect("the pipeline task");
    sum.expect("no stage fails")
}

fn flat_map(c: &mut Criterion) {
    let items = FLAT_INPUTS * FLAT_FANOUT;
    let variants = [
        ("mpsc_batched", spawned(flat_mpsc_batched)),
        ("then_chain", spawned(flat_then_chain)),
        ("sequential", blocking(flat_sequential)),
        ("ctxpipe", spawned(flat_ctxpipe)),
        ("ctxpipe_macro", spawned(flat_ctxpipe_macro)),
    ];
    let measurement = Duration::from_secs(8);
    bench_variants(
        c,
        "flat_map_100",
        items,
        measurement,
        chain_sum(items, 1),
        &variants,
    );
}

fn many_stages(c: &mut Criterion) {
    let items = CHAIN_ITEMS;
    let variants = [
        (
            "mpsc_batched",
            spawned(move || mpsc_batched_chain(items, MANY_STAGES)),
        ),
        (
            "sequential",
            blocking(move || sequential_chain(items, MANY_STAGES)),
        ),
        (
            "ctxpipe",
            spawned(move || ctxpipe_chain_in(Context::background(), items, MANY_STAGES)),
        ),
    ];
    let expected = chain_sum(items, MANY_STAGES);
    let measurement = Duration::from_secs(12);
    bench_variants(
        c,
        "chain_10_stages",
        items,
        measurement,
        expected,
        &variants,
    );
}

/// About 5 µs of CPU work ([`CPU_WORK_ROUNDS`] rounds of a dependent chain of xorshifts and
/// multiplies, which the compiler cannot shorten), returning 24 bits so that sums of
/// [`CPU_ITEMS`] results cannot overflow.
fn cpu_work(x: u64) -> u64 {
    let mut v = black_box(x) | 1;
    for _ in 0..CPU_WORK_ROUNDS {
        v ^= v << 13;
        v ^= v >> 7;
        v ^= v << 17;
        v = v.wrapping_mul(0x2545_f491_4f6c_dd1d);
    }
    black_box(v) >> 40
}

fn cpu_sequential() -> u64 {
    (0..CPU_ITEMS).map(cpu_work).sum()
}

fn cpu_rayon() -> u64 {
    rayon_pool().install(|| (0..CPU_ITEMS).into_par_iter().map(cpu_work).sum())
}

/// A source task dealing batches round-robin to [`CPU_WORKERS`] worker tasks, each reading its
/// own channel and sending to one shared sink.
async fn cpu_mpsc_batched() -> u64 {
    let (out_tx, out_rx) = mpsc::channel(QUEUED_BATCHES);
    let mut inputs = Vec::with_capacity(CPU_WORKERS);
    for _ in 0..CPU_WORKERS {
        let (tx, rx) = mpsc::channel(QUEUED_BATCHES);
        spawn_batched_map(rx, out_tx.clone(), cpu_work);
        inputs.push(tx);
    }
    drop(out_tx);
    spawn_batched_source(0..CPU_ITEMS, inputs);
    batched_sum(out_rx).await
}

async fn cpu_ctxpipe() -> u64 {
    let pipeline = Pipeline::<u64, Error>::new(&Context::background(), 0..CPU_ITEMS)
        .map(
            StageOptions::new("work").workers(CPU_WORKERS),
            |_ctx, v| async move { Ok(cpu_work(v)) },
        )
        .fold(0, |sum, v| sum + v);
    let sum = tokio::spawn(pipeline).await.expect("the pipeline task");
    sum.expect("no stage fails")
}

fn cpu(c: &mut Criterion) {
    let variants = [
        ("sequential", blocking(cpu_sequential)),
        ("rayon", blocking(cpu_rayon)),
        ("mpsc_batched_2", spawned(cpu_mpsc_batched)),
        ("ctxpipe", spawned(cpu_ctxpipe)),
    ];
    let measurement = Duration::from_secs(8);
    let expected = cpu_sequential();
    bench_variants(
        c,
        "cpu_2_workers",
        CPU_ITEMS,
        measurement,
        expected,
        &variants,
    );
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

/// The IO-bound stage as one task of futures combinators: `buffer_unordered(100)`, or
/// `buffered(100)` to keep input order.
async fn io_stream<W, F>(wait: W, ordered: bool) -> usize
where
    W: Fn() -> F + Copy + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let calls = stream::iter(0..IO_ITEMS).map(move |_| wait());
        if ordered {
            calls.buffered(IO_WORKERS).count().await
        } else {
            calls.buffer_unordered(IO_WORKERS).count().await
        }
    })
    .await
    .expect("the stream task")
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
    assert_eq!(rt.block_on(io_stream(wait, false)), IO_ITEMS);
    assert_eq!(rt.block_on(io_stream(wait, true)), IO_ITEMS);
    assert_eq!(rt.block_on(io_ctxpipe(wait, false)), IO_ITEMS);
    assert_eq!(rt.block_on(io_ctxpipe(wait, true)), IO_ITEMS);
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(IO_ITEMS as u64));
    group.bench_function("tasks", |b| b.to_async(&rt).iter(|| io_tasks(wait)));
    group.bench_function("buffer_unordered_100", |b| {
        b.to_async(&rt).iter(|| io_stream(wait, black_box(false)))
    });
    group.bench_function("buffered_100", |b| {
        b.to_async(&rt).iter(|| io_stream(wait, black_box(true)))
    });
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

/// The 3-stage chain of `ctxpipe_chain`, each stage with `options`.
async fn ctxpipe_chain_with<P>(items: u64, options: impl Fn(usize) -> StageOptions<P>) -> u64
where
    P: RetryPolicy<u64, Error>,
{
    let mut pipeline = Pipeline::<u64, Error>::new(&Context::background(), 0..items);
    for stage in 0..3 {
        pipeline = pipeline.map(options(stage), |_ctx, v| async move { Ok(v + 1) });
    }
    let sum = tokio::spawn(pipeline.fold(0, |sum, v| sum + v))
        .await
        .expect("the pipeline task");
    sum.expect("no stage fails")
}

fn policy(c: &mut Criterion) {
    let items = CHAIN_ITEMS;
    let named = |stage: usize| StageOptions::new(format!("inc {stage}"));
    let variants = [
        // The same code as the variants below, with default options.
        ("ctxpipe", spawned(move || ctxpipe_chain_with(items, named))),
        (
            "ctxpipe_skip",
            spawned(move || ctxpipe_chain_with(items, move |n| named(n).on_error(OnError::Skip))),
        ),
        (
            "ctxpipe_retry_3",
            spawned(move || ctxpipe_chain_with(items, move |n| named(n).retry(3))),
        ),
    ];
    let expected = chain_sum(items, 3);
    bench_variants(
        c,
        "policy_1m",
        items,
        Duration::from_secs(12),
        expected,
        &variants,
    );
}

/// The items of `chunk_1m`, the size of its chunks and their time bound (never reached: the
/// source is always ready).
const CHUNK_SIZE: usize = 100;
const CHUNK_WITHIN: Duration = Duration::from_millis(10);

/// The sum of the chunk sizes times their first item: checks every chunk's size and order.
fn chunk_checksum(sum: u64, chunk: Vec<u64>) -> u64 {
    sum + chunk.len() as u64 * chunk.first().copied().unwrap_or(0)
}

async fn chunk_ctxpipe(items: u64) -> u64 {
    let run = Pipeline::<_, Error>::new(&Context::background(), 0..items)
        .chunk(CHUNK_SIZE, CHUNK_WITHIN)
        .fold(0, chunk_checksum);
    tokio::spawn(run)
        .await
        .expect("the pipeline task")
        .expect("nothing fails")
}

async fn chunk_tokio_stream(items: u64) -> u64 {
    let run = async move {
        let chunks = tokio_stream::StreamExt::chunks_timeout(
            tokio_stream::iter(0..items),
            CHUNK_SIZE,
            CHUNK_WITHIN,
        );
        let mut chunks = std::pin::pin!(chunks);
        let mut sum = 0;
        while let Some(chunk) = chunks.next().await {
            sum = chunk_checksum(sum, chunk);
        }
        sum
    };
    tokio::spawn(run).await.expect("the stream task")
}

fn chunk_sequential(items: u64) -> u64 {
    let mut sum = 0;
    let mut chunk = Vec::with_capacity(CHUNK_SIZE);
    for n in 0..items {
        chunk.push(n);
        if chunk.len() == CHUNK_SIZE {
            sum = chunk_checksum(
                sum,
                std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_SIZE)),
            );
        }
    }
    if chunk.is_empty() {
        sum
    } else {
        chunk_checksum(sum, chunk)
    }
}

fn chunk(c: &mut Criterion) {
    let items = CHAIN_ITEMS;
    let variants = [
        ("ctxpipe", spawned(move || chunk_ctxpipe(items))),
        (
            "tokio_stream_chunks_timeout",
            spawned(move || chunk_tokio_stream(items)),
        ),
        ("sequential", blocking(move || chunk_sequential(items))),
    ];
    let expected = chunk_sequential(items);
    bench_variants(
        c,
        "chunk_1m",
        items,
        Duration::from_secs(8),
        expected,
        &variants,
    );
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

criterion_group!(
    benches,
    chain,
    flat_map,
    many_stages,
    cpu,
    io,
    cancel_latency,
    policy,
    chunk
);
criterion_main!(benches);
