//! Input order across many workers, and the bound that backpressure puts on items in flight.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ctxpipe::{Context, Error, Pipeline, StageOptions, DEFAULT_BATCH};

fn alive() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// A deterministic pseudo-random delay of 0..=max_us microseconds for item `n` (xorshift).
fn jitter(n: u64, max_us: u64) -> Duration {
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    Duration::from_micros(x % (max_us + 1))
}

async fn jittered(n: u64, salt: u64) -> Result<u64, Error> {
    tokio::time::sleep(jitter(n ^ salt, 500)).await;
    Ok(n)
}

#[tokio::test(start_paused = true)]
async fn ordered_stages_keep_input_order_under_random_delays() {
    let out: Result<Vec<u64>, Error> = Pipeline::new(&Context::background(), 0..3000u64)
        .map(
            StageOptions::new("wide").workers(64).ordered(),
            |_ctx, n| jittered(n, 1),
        )
        .filter_map(
            StageOptions::new("odd")
                .workers(5)
                .buffer(16)
                .batch(3)
                .ordered(),
            |_ctx, n| async move {
                tokio::time::sleep(jitter(n ^ 2, 300)).await;
                Ok((n % 2 == 1).then_some(n))
            },
        )
        .flat_map(
            StageOptions::new("pairs").workers(9).reorder_window(7),
            |_ctx, n| async move {
                tokio::time::sleep(jitter(n ^ 3, 200)).await;
                Ok([n, n])
            },
        )
        .collect()
        .await;
    let expected: Vec<u64> = (0..3000)
        .filter(|n| n % 2 == 1)
        .flat_map(|n| [n, n])
        .collect();
    assert_eq!(out, Ok(expected));
    assert_eq!(alive(), 0);
}

#[tokio::test(start_paused = true)]
async fn without_ordered_the_same_stage_reorders() {
    // Proves the test above is meaningful: the delays do reorder an unordered stage.
    let out: Result<Vec<u64>, Error> = Pipeline::new(&Context::background(), 0..3000u64)
        .map(StageOptions::new("wide").workers(64), |_ctx, n| {
            jittered(n, 1)
        })
        .collect()
        .await;
    let out = out.unwrap();
    assert_ne!(
        out,
        (0..3000).collect::<Vec<_>>(),
        "items finished out of order"
    );
    let mut sorted = out;
    sorted.sort_unstable();
    assert_eq!(sorted, (0..3000).collect::<Vec<_>>(), "and none was lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ordered_on_several_threads() {
    let out: Result<Vec<u64>, Error> = Pipeline::new(&Context::background(), 0..200_000u64)
        .map(
            StageOptions::new("cpu").workers(8).ordered(),
            |_ctx, n| async move { Ok(n) },
        )
        .map(
            StageOptions::new("yield").workers(3).batch(5).ordered(),
            |_ctx, n| async move {
                if n % 1000 == 0 {
                    tokio::task::yield_now().await;
                }
                Ok(n)
            },
        )
        .collect()
        .await;
    assert_eq!(out, Ok((0..200_000).collect()));
}

/// Runs a pipeline whose sink sleeps on every item and returns the largest
/// `produced - consumed` seen by the sink.
async fn max_in_flight(pipeline: Pipeline<u64, Error>, produced: Arc<AtomicU64>) -> u64 {
    let consumed = AtomicU64::new(0);
    let max_seen = AtomicU64::new(0);
    let result = pipeline
        .try_for_each(|_| {
            let consumed = consumed.fetch_add(1, Ordering::Relaxed) + 1;
            let in_flight = produced.load(Ordering::Relaxed) - consumed;
            max_seen.fetch_max(in_flight, Ordering::Relaxed);
            async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                Ok(())
            }
        })
        .await;
    result.unwrap();
    max_seen.load(Ordering::Relaxed)
}

/// The documented bound for a pipeline of map and filter stages:
/// Σ (buffer + held) + sink queue + sink batch.
#[tokio::test(start_paused = true)]
async fn a_slow_sink_bounds_what_the_source_produces() {
    let produced = Arc::new(AtomicU64::new(0));
    let counter = produced.clone();
    let source = (0..2000u64).inspect(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    // "wide":  buffer 8, 2 workers, batch 3: held = 2 × min(3, ⌈8/2⌉) = 6      → 14
    // "fast":  buffer 5, 1 worker:           held = 1 × min(128, 5) = 5       → 10
    // "order": buffer 6, 3 workers, window 4: held = 4                        → 10
    // sink:    queue = 6 (last buffer), batch = min(DEFAULT_BATCH, 6) = 6     → 12
    let bound = 14 + 10 + 10 + 6 + DEFAULT_BATCH.min(6) as u64;
    assert_eq!(bound, 46);
    let pipeline = Pipeline::new(&Context::background(), source)
        .map(
            StageOptions::new("wide").buffer(8).workers(2).batch(3),
            |_ctx, n| async move { Ok(n) },
        )
        .filter_map(StageOptions::new("fast").buffer(5), |_ctx, n| async move {
            Ok(Some(n))
        })
        .map(
            StageOptions::new("order")
                .buffer(6)
                .workers(3)
                .reorder_window(4),
            |_ctx, n| async move { Ok(n) },
        );
    let progress = pipeline.progress();
    let max = max_in_flight(pipeline, produced.clone()).await;
    println!("max in flight {max}, bound {bound}");
    assert!(max <= bound, "{max} items in flight, bound {bound}");
    assert!(
        max >= bound / 2,
        "{max} items in flight: the queues did fill up"
    );
    let report = progress.report();
    assert_eq!(report.produced, 2000);
    assert_eq!(report.stage("wide").unwrap().peak_queue, 8);
    assert_eq!(report.stage("fast").unwrap().peak_queue, 5);
    assert_eq!(report.stage("order").unwrap().peak_queue, 6);
    assert_eq!(report.sink_peak_queue, 6);
    assert_eq!(alive(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_bound_with_default_options() {
    let produced = Arc::new(AtomicU64::new(0));
    let counter = produced.clone();
    let source = (0..5000u64).inspect(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let pipeline = Pipeline::new(&Context::background(), source)
        .map("a", |_ctx, n| async move { Ok(n) })
        .map("b", |_ctx, n| async move { Ok(n) });
    // Per stage: 256 queued + one batch of 128; sink: 256 queued + 128 in hand.
    let bound = 2 * (256 + 128) + 256 + 128;
    let max = max_in_flight(pipeline, produced).await;
    println!("max in flight {max}, bound {bound}");
    assert!(max <= bound, "{max} items in flight, bound {bound}");
}

#[tokio::test(start_paused = true)]
async fn a_slow_stage_holds_the_source_back_exactly() {
    let produced = Arc::new(AtomicU64::new(0));
    let counter = produced.clone();
    let source = (0..1000u64).inspect(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let seen = produced.clone();
    let tightest = Arc::new(AtomicU64::new(0));
    let record = tightest.clone();
    let result: Result<usize, Error> = Pipeline::new(&Context::background(), source)
        .map(
            StageOptions::new("slow").buffer(10).batch(1),
            move |_ctx, n| {
                let (seen, record) = (seen.clone(), record.clone());
                async move {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    // One worker taking one item at a time: items 0..=n were taken, and at most
                    // the 10 after them wait in the queue (full by now: the source had a turn).
                    let ahead = seen.load(Ordering::Relaxed) - (n + 1);
                    record.fetch_max(ahead, Ordering::Relaxed);
                    Ok(n)
                }
            },
        )
        .count()
        .await;
    assert_eq!(result, Ok(1000));
    assert_eq!(
        tightest.load(Ordering::Relaxed),
        10,
        "the queue filled up, and no more"
    );
}
