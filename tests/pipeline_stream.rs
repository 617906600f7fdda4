//! A pipeline's output as a `Stream`: items in order then the error, backpressure from a slow
//! reader, and nothing left running when the stream is dropped.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ctxpipe::{pipeline, Context, Error, Pipeline, StageOptions};
use futures::{FutureExt, StreamExt};
use tokio::time::sleep;

mod support;
use support::{alive, endless, Drops, Item};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_come_in_order_then_the_error_then_the_end() {
    let items: Vec<u32> = Pipeline::<_, Error>::new(&Context::background(), 0..10_000u32)
        .map(
            StageOptions::new("double").workers(4).ordered(),
            |_ctx, n| async move { Ok(n * 2) },
        )
        .into_stream()
        .map(Result::unwrap)
        .collect()
        .await;
    assert!(items.into_iter().eq((0..10_000).map(|n| n * 2)));

    let mut stream = Pipeline::<_, std::io::Error>::new(&Context::background(), 0..10u32)
        .map(
            StageOptions::new("checked").batch(1),
            |_ctx, n| async move {
                if n == 5 {
                    return Err(std::io::Error::other("five"));
                }
                Ok(n)
            },
        )
        .into_stream();
    let mut ok = Vec::new();
    let err = loop {
        match stream.next().await {
            Some(Ok(n)) => ok.push(n),
            Some(Err(err)) => break err,
            None => panic!("the error comes before the end"),
        }
    };
    // The outputs before the error, in order; those still queued when the error cancelled the
    // run may be dropped (the first error wins, as with every sink).
    assert!([0, 1, 2, 3, 4].starts_with(&ok), "{ok:?}");
    assert_eq!(err.to_string(), "five");
    assert!(stream.next().await.is_none());
    assert!(futures::stream::FusedStream::is_terminated(&stream));
}

#[tokio::test(start_paused = true)]
async fn a_slow_reader_holds_the_pipeline_back() {
    let (drops, taken) = (Drops::default(), Arc::new(AtomicU64::new(0)));
    let mut stream = Pipeline::<_, Error>::new(&Context::background(), endless(&drops, &taken))
        .map(
            StageOptions::new("id").buffer(16),
            |_ctx, item: Item| async move { Ok(item) },
        )
        .into_stream();
    let mut read = 0;
    for _ in 0..3 {
        for _ in 0..10 {
            assert_eq!(stream.next().await.unwrap().unwrap().n, read);
            read += 1;
        }
        // The reader pauses: the pipeline fills its queues and waits.
        sleep(Duration::from_secs(1)).await;
        let held = taken.load(Ordering::Relaxed) - read;
        // Source batch + stage queue and batch + sink queue + two batches in the stream.
        assert!(held <= 128 + 16 + 16 + 16 + 2 * 16, "{held} items held");
    }
    let baseline_taken = taken.load(Ordering::Relaxed);
    drop(stream);
    // Aborted tasks are dropped the next time the runtime schedules them.
    tokio::task::yield_now().await;
    drops.assert_each_dropped_once(baseline_taken);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_stream_midway_leaves_no_task_and_no_item() {
    let baseline = alive();
    let (drops, taken) = (Drops::default(), Arc::new(AtomicU64::new(0)));
    let mut stream = Pipeline::<_, Error>::new(&Context::background(), endless(&drops, &taken))
        .map(
            StageOptions::new("slow").workers(8),
            |ctx, item: Item| async move {
                ctx.run(sleep(Duration::from_millis(1))).await?;
                Ok(item)
            },
        )
        .into_stream();
    for _ in 0..50 {
        stream.next().await.unwrap().unwrap();
    }
    drop(stream);
    for _ in 0..10_000 {
        if alive() == baseline {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(alive(), baseline, "tasks left after the stream was dropped");
    drops.assert_each_dropped_once(taken.load(Ordering::Relaxed));
}

#[tokio::test]
async fn a_panic_in_a_stage_is_resumed_in_the_reader() {
    let mut stream = Pipeline::<_, Error>::new(&Context::background(), 0..10u32)
        .map("boom", |_ctx, n| async move {
            assert!(n != 3, "stage panicked on 3");
            Ok(n)
        })
        .into_stream();
    let caught = AssertUnwindSafe(async {
        while let Some(item) = stream.next().await {
            item.unwrap();
        }
    })
    .catch_unwind()
    .await;
    let payload = caught.expect_err("the panic reaches the reader");
    let message = payload.downcast_ref::<&str>().copied();
    assert_eq!(message, Some("stage panicked on 3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_feeds_another_pipeline_and_the_macro_makes_one() {
    let words = pipeline! {
        from ["a b", "c d e"]
        => |_ctx, line: &'static str| async move {
            Ok::<_, Error>(line.split(' ').collect::<Vec<_>>())
        } [flat]
        => stream
    };
    let lengths = Pipeline::<_, Error>::from_stream(&Context::background(), words)
        .map("len", |_ctx, word: Result<&str, Error>| async move {
            Ok(word?.len())
        })
        .fold(0, |sum, n| sum + n)
        .await
        .unwrap();
    assert_eq!(lengths, 5);
}
