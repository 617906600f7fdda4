//! The integer chains that both `pipeline` (time) and `pipeline_memory` (peak heap) run:
//! items counted up from 0 through stages that each add one, summed at the end.
//!
//! Everything here is used by both bench files, so neither sees dead code.

use ctxpipe::{pipeline, stage, Context, Error, Pipeline};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

/// The items of the `chain_1m` chain.
pub const CHAIN_ITEMS: u64 = 1_000_000;

/// The items per `Vec` of the batched hand-written baselines: as many as a ctxpipe worker,
/// the source and the sink move at once.
pub const BATCH: usize = ctxpipe::DEFAULT_BATCH;

/// The batches each channel of the batched baselines holds: as many items as a ctxpipe
/// stage's input queue.
pub const QUEUED_BATCHES: usize = ctxpipe::DEFAULT_BUFFER / ctxpipe::DEFAULT_BATCH;

/// The runtime of every bench: multi-thread, 2 worker threads.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The sum every chain of `stages` stages over `items` items must produce:
/// Σ (i + stages) for i in 0..items.
pub fn chain_sum(items: u64, stages: usize) -> u64 {
    items * items.saturating_sub(1) / 2 + items * stages as u64
}

/// 5 tasks (source, 3 stages, sink) joined by 4 bounded tokio `mpsc` channels of 64 items,
/// one item per message. With a `deadline`, the stages stop once it has passed, checking the
/// clock per item as a hand-written chain under a deadline does.
pub async fn mpsc_chain_until(items: u64, deadline: Option<tokio::time::Instant>) -> u64 {
    let (tx0, rx0) = mpsc::channel::<u64>(64);
    let (tx1, rx1) = mpsc::channel::<u64>(64);
    let (tx2, rx2) = mpsc::channel::<u64>(64);
    let (tx3, mut rx3) = mpsc::channel::<u64>(64);
    tokio::spawn(async move {
        for i in 0..items {
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

/// The batched hand-written chain: a source task, `stages` stage tasks and a sink task joined
/// by bounded tokio `mpsc` channels of `Vec<u64>` batches of [`BATCH`] items, each channel
/// holding [`QUEUED_BATCHES`]. A stage changes each batch in place and sends the same `Vec`
/// on, so the only allocation is one `Vec` per batch at the source.
pub async fn mpsc_batched_chain(items: u64, stages: usize) -> u64 {
    let (source_tx, mut rx) = mpsc::channel(QUEUED_BATCHES);
    spawn_batched_source(0..items, vec![source_tx]);
    for _ in 0..stages {
        let (tx, next_rx) = mpsc::channel(QUEUED_BATCHES);
        spawn_batched_map(rx, tx, |v| v + 1);
        rx = next_rx;
    }
    batched_sum(rx).await
}

/// Spawns the task that sends `items` in `Vec`s of [`BATCH`], one `Vec` to each of `outputs`
/// in turn, the last, partial one included. It stops when a receiver is gone.
pub fn spawn_batched_source<I>(items: I, outputs: Vec<mpsc::Sender<Vec<u64>>>)
where
    I: Iterator<Item = u64> + Send + 'static,
{
    tokio::spawn(async move {
        let mut next = 0;
        let mut batch = Vec::with_capacity(BATCH);
        for i in items {
            batch.push(i);
            if batch.len() == BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                if outputs[next].send(full).await.is_err() {
                    return;
                }
                next = (next + 1) % outputs.len();
            }
        }
        if !batch.is_empty() {
            let _ = outputs[next].send(batch).await;
        }
    });
}

/// Spawns a stage task that applies `f` to each item of each batch in place and sends the
/// batch on. It stops when its input ends or its receiver is gone.
pub fn spawn_batched_map<F>(
    mut input: mpsc::Receiver<Vec<u64>>,
    output: mpsc::Sender<Vec<u64>>,
    f: F,
) where
    F: Fn(u64) -> u64 + Send + 'static,
{
    tokio::spawn(async move {
        while let Some(mut batch) = input.recv().await {
            for v in &mut batch {
                *v = f(*v);
            }
            if output.send(batch).await.is_err() {
                return;
            }
        }
    });
}

/// Sums every batch that arrives on `input`, on a sink task of its own.
pub async fn batched_sum(mut input: mpsc::Receiver<Vec<u64>>) -> u64 {
    tokio::spawn(async move {
        let mut sum = 0;
        while let Some(batch) = input.recv().await {
            sum += batch.iter().sum::<u64>();
        }
        sum
    })
    .await
    .expect("the sink task")
}

/// `Pipeline::new(..).map(..)` once per stage, then `.fold(..)`, one worker per stage, spawned
/// on the runtime.
pub async fn ctxpipe_chain_in(ctx: Context, items: u64, stages: usize) -> u64 {
    let mut pipeline = Pipeline::<u64, Error>::new(&ctx, 0..items);
    for stage in 0..stages {
        pipeline = pipeline.map(format!("inc {stage}"), |_ctx, v| async move { Ok(v + 1) });
    }
    let sum = tokio::spawn(pipeline.fold(0, |sum, v| sum + v))
        .await
        .expect("the pipeline task");
    sum.expect("no stage fails")
}

/// The 3-stage chain as `ctxpipe_chain_in` under the background context.
pub async fn ctxpipe_chain(items: u64) -> u64 {
    ctxpipe_chain_in(Context::background(), items, 3).await
}

/// A stage that adds one.
#[stage]
pub async fn inc(x: u64) -> Result<u64, Error> {
    Ok(x + 1)
}

/// The 3-stage chain written with `pipeline!` over `#[stage]` functions, spawned on the
/// runtime with its context (the macro's future borrows it).
pub async fn ctxpipe_macro_chain(items: u64) -> u64 {
    let sum = tokio::spawn(async move {
        let ctx = Context::background();
        pipeline! { in &ctx; from 0..items => inc => inc => inc => fold(0, |s, v| s + v) }.await
    })
    .await
    .expect("the pipeline task");
    sum.expect("no stage fails")
}
