//! The chunk step: by size, by time (paused), under the context's deadline, on a drain and a
//! cancel; never an empty chunk, memory bounded.

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use ctxpipe::{Context, Drain, Error, Pipeline, StageOptions};
use tokio::sync::mpsc;
use tokio::time::{sleep, Instant};

mod support;
use support::alive;

/// A stream of what the test sends, ending when the sender is dropped.
struct Fed(mpsc::UnboundedReceiver<u32>);

impl futures::Stream for Fed {
    type Item = u32;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<u32>> {
        self.0.poll_recv(cx)
    }
}

/// Sends `items` in groups, waiting `gap` before each group.
fn feed(groups: Vec<Vec<u32>>, gap: Duration) -> (Fed, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let feeder = tokio::spawn(async move {
        for group in groups {
            sleep(gap).await;
            for item in group {
                tx.send(item).unwrap();
            }
        }
    });
    (Fed(rx), feeder)
}

#[tokio::test]
async fn chunks_are_full_but_for_the_last() {
    let (chunks, report) = Pipeline::<_, Error>::new(&Context::background(), 0..10u32)
        .chunk(3, None)
        .with_report()
        .collect()
        .await;
    assert_eq!(
        chunks.unwrap(),
        [vec![0, 1, 2], vec![3, 4, 5], vec![6, 7, 8], vec![9]]
    );
    let step = report.stage("chunk").unwrap();
    assert_eq!((step.items_in, step.items_out), (10, 4));

    // Large inputs keep order and size; a size of 0 is taken as 1.
    let chunks = Pipeline::<_, Error>::new(&Context::background(), 0..100_000u32)
        .chunk(1000, Duration::from_secs(1))
        .collect()
        .await
        .unwrap();
    assert_eq!(chunks.len(), 100);
    assert!(chunks.iter().all(|chunk| chunk.len() == 1000));
    assert!(chunks.concat().into_iter().eq(0..100_000));
    let ones = Pipeline::<_, Error>::new(&Context::background(), 0..3u32)
        .chunk(0, None)
        .collect()
        .await
        .unwrap();
    assert_eq!(ones, [[0], [1], [2]]);
}

#[tokio::test(start_paused = true)]
async fn a_chunk_leaves_when_its_time_is_up() {
    // Two items, then 100 ms of nothing, then three, then the end.
    let (fed, feeder) = feed(vec![vec![1, 2], vec![3, 4, 5]], Duration::from_millis(100));
    let start = Instant::now();
    let mut times = Vec::new();
    Pipeline::<_, Error>::from_stream(&Context::background(), fed)
        .chunk(10, Duration::from_millis(30))
        .for_each(|chunk| times.push((chunk, start.elapsed().as_millis())))
        .await
        .unwrap();
    feeder.await.unwrap();
    // The first chunk waited 30 ms after its first item; the second left when the input ended
    // (the sender was dropped right after its items), before its 30 ms.
    assert_eq!(times, [(vec![1, 2], 130), (vec![3, 4, 5], 200)]);
}

#[tokio::test(start_paused = true)]
async fn the_wait_for_a_chunk_never_outlives_the_deadline() {
    let baseline = alive();
    let (tx, rx) = mpsc::unbounded_channel();
    tx.send(7).unwrap();
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(40));
    let start = Instant::now();
    let (out, report) = Pipeline::<_, Error>::from_stream(&ctx, Fed(rx))
        .chunk(10, Duration::from_secs(3600))
        .with_report()
        .collect()
        .await;
    assert_eq!(out.unwrap_err(), Error::DeadlineExceeded);
    assert_eq!(start.elapsed(), Duration::from_millis(40));
    assert_eq!(
        report.unfinished, 1,
        "the partial chunk is dropped:\n{report}"
    );
    drop(tx);
    assert_eq!(alive(), baseline);
}

#[tokio::test(start_paused = true)]
async fn a_drain_flushes_the_partial_chunk_and_a_cancel_drops_it() {
    for drained in [true, false] {
        let (tx, rx) = mpsc::unbounded_channel();
        for n in 0..5 {
            tx.send(n).unwrap();
        }
        let (ctx, cancel) = Context::background().with_cancel();
        let drain = Drain::new();
        let pipeline = Pipeline::<_, Error>::from_stream(&ctx, Fed(rx))
            .chunk(3, None)
            .drained_by(&drain);
        let progress = pipeline.progress();
        let run = tokio::spawn(pipeline.collect());
        while progress.consumed() < 1 {
            tokio::task::yield_now().await;
        }
        if drained {
            drain.drain(Duration::from_secs(1));
        } else {
            cancel.cancel();
        }
        let out = run.await.unwrap();
        let report = progress.report();
        if drained {
            assert_eq!(out.unwrap(), [vec![0, 1, 2], vec![3, 4]]);
            assert_eq!(report.unfinished, 0);
        } else {
            assert_eq!(out.unwrap_err(), Error::Canceled);
            assert_eq!(report.unfinished, 2, "\n{report}");
        }
        drop(tx);
    }
}

#[tokio::test(start_paused = true)]
async fn memory_is_bounded_by_the_chunk_size_times_the_next_queue() {
    const SIZE: usize = 16;
    const BUFFER: usize = 4;
    let (chunks, report) = Pipeline::<_, Error>::new(&Context::background(), 0..10_000u32)
        .chunk(SIZE, Duration::from_millis(5))
        .map(
            StageOptions::new("slow").buffer(BUFFER),
            |_ctx, chunk: Vec<u32>| async move {
                sleep(Duration::from_millis(1)).await;
                Ok(chunk)
            },
        )
        .with_report()
        .collect()
        .await;
    let chunks = chunks.unwrap();
    assert!(chunks
        .iter()
        .all(|chunk| !chunk.is_empty() && chunk.len() <= SIZE));
    assert!(chunks.concat().into_iter().eq(0..10_000));
    let slow = report.stage("slow").unwrap();
    assert!(
        slow.peak_queue <= BUFFER,
        "{} chunks queued",
        slow.peak_queue
    );
}
