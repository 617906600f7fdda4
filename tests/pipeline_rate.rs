//! Rate limits per stage: smooth, shared by the workers, with a burst, a checkpoint while
//! waiting, and the time throttled in the report. On paused time, so durations are exact.

use std::time::Duration;

use ctxpipe::{pipeline, Context, Error, Pipeline, Rate, StageOptions};
use tokio::time::{sleep, Instant};

mod support;
use support::alive;

/// Runs 1000 items through a stage of `workers` limited to `rate`, returning the time taken
/// and the start time of each call, relative to the first.
async fn run(rate: Rate, workers: usize) -> (Duration, Vec<Duration>, ctxpipe::Report) {
    let start = Instant::now();
    let (starts, report) = Pipeline::<_, Error>::new(&Context::background(), 0..1000u32)
        .map(
            StageOptions::new("send").workers(workers).rate(rate),
            move |_ctx, _n| async move { Ok(start.elapsed()) },
        )
        .with_report()
        .collect()
        .await;
    let mut starts = starts.unwrap();
    starts.sort();
    (start.elapsed(), starts, report)
}

#[tokio::test(start_paused = true)]
async fn a_thousand_items_at_a_hundred_a_second_take_ten_seconds() {
    for workers in [1, 8] {
        let (took, starts, report) = run(Rate::per_second(100), workers).await;
        // The first call starts at once, then one every 10 ms: the last at 9.99 s.
        assert_eq!(took, Duration::from_millis(9_990), "{workers} workers");
        assert!(starts
            .windows(2)
            .all(|pair| pair[1] - pair[0] == Duration::from_millis(10)));
        let send = report.stage("send").unwrap();
        assert_eq!(send.items_in, 1000);
        assert!(send.throttled >= Duration::from_millis(9_900), "{report}");
        assert!(report.to_string().contains("throttled"), "{report}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_burst_lets_that_many_go_at_once() {
    let (took, starts, _) = run(Rate::per_second(100).burst(10), 4).await;
    // Ten at once, then one every 10 ms: the rest of the run is one burst shorter.
    assert_eq!(took, Duration::from_millis(9_900));
    assert!(starts[..10].iter().all(|&at| at == Duration::ZERO));
    assert_eq!(starts[10], Duration::from_millis(10));
}

#[tokio::test(start_paused = true)]
async fn a_cancel_while_throttled_returns_at_once() {
    let baseline = alive();
    let (ctx, cancel) = Context::background().with_cancel();
    let run = Pipeline::<_, Error>::new(&ctx, 0..100u32)
        .map(
            StageOptions::new("slow").rate(Rate::per_minute(1)),
            |_ctx, n| async move { Ok(n) },
        )
        .count();
    let canceller = tokio::spawn(async move {
        sleep(Duration::from_secs(5)).await;
        cancel.cancel();
    });
    let start = Instant::now();
    assert_eq!(run.await, Err(Error::Canceled));
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    canceller.await.unwrap();
    assert_eq!(alive(), baseline);
}

#[tokio::test(start_paused = true)]
async fn the_macro_takes_a_rate_per_unit_or_a_rate_value() {
    let start = Instant::now();
    let sent = pipeline! {
        from 0..120u32
        => |_ctx, n| async move { Ok::<_, Error>(n) } [workers = 4, rate = 60 / min, burst = 2]
        => count
    }
    .await
    .unwrap();
    assert_eq!(sent, 120);
    // Two at once, then one a second: the last of 120 starts at 118 s.
    assert_eq!(start.elapsed(), Duration::from_secs(118));

    let limit = Rate::per_second(50);
    let start = Instant::now();
    pipeline! {
        from 0..51u32
        => |_ctx, n| async move { Ok::<_, Error>(n) } [rate = limit]
        => count
    }
    .await
    .unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}
