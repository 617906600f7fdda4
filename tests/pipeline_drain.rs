//! Graceful stop: a drain stops the source, lets what it took finish within the budget, and
//! cancels the rest with a cause that says so. On paused time, so every duration is exact.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use ctxpipe::{
    pipeline, Context, Drain, DrainOutcome, DrainTimeout, Drained, Error, Pipeline, Report,
    StageOptions,
};
use tokio::time::{sleep, Instant};

mod support;
use support::{alive, endless, Drops, Item};

/// A stage of `workers` workers that takes `each` per item.
fn slow(workers: usize) -> StageOptions {
    StageOptions::new("slow").workers(workers).buffer(8)
}

const EACH: Duration = Duration::from_millis(10);

/// Drains after `after`, with `budget`.
fn drain_after(drain: &Drain, after: Duration, budget: Duration) -> tokio::task::JoinHandle<()> {
    let drain = drain.clone();
    tokio::spawn(async move {
        sleep(after).await;
        drain.drain(budget);
    })
}

#[tokio::test(start_paused = true)]
async fn in_flight_items_finish_and_nothing_more_is_taken() {
    let baseline = alive();
    let (drops, taken) = (Drops::default(), Arc::new(AtomicU64::new(0)));
    let drain = Drain::new();
    let pipeline = Pipeline::<_, Error>::new(&Context::background(), endless(&drops, &taken))
        .map(slow(4), |_ctx, item: Item| async move {
            sleep(EACH).await;
            Ok(item)
        })
        .drained_by(&drain);
    let progress = pipeline.progress();
    let taken_at_drain = {
        let (drain, taken) = (drain.clone(), taken.clone());
        tokio::spawn(async move {
            sleep(Duration::from_millis(55)).await;
            drain.drain(Duration::from_secs(10));
            taken.load(Ordering::Relaxed)
        })
    };
    let started = Instant::now();
    let out = pipeline.collect().await.expect("a drain in time is Ok");
    let taken_at_drain = taken_at_drain.await.unwrap();

    let report = progress.report();
    assert_eq!(
        taken.load(Ordering::Relaxed),
        taken_at_drain,
        "read after the drain"
    );
    assert_eq!(report.produced, taken_at_drain, "everything taken went in");
    assert_eq!(out.len() as u64, report.produced, "and came out");
    assert_eq!(report.unfinished, 0);
    assert_eq!(
        report.drained.map(|d| (d.budget, d.outcome)),
        Some((Duration::from_secs(10), DrainOutcome::Completed))
    );
    // 4 workers, 10 ms per item: the queue (8) and the workers' 4 finish in 30 ms more.
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "{:?}",
        started.elapsed()
    );
    drop(out);
    assert_eq!(alive(), baseline);
    drops.assert_each_dropped_once(taken_at_drain);
}

#[tokio::test(start_paused = true)]
async fn a_budget_that_runs_out_cancels_with_the_drain_cause() {
    let baseline = alive();
    let (drops, taken) = (Drops::default(), Arc::new(AtomicU64::new(0)));
    let causes = Arc::new(Mutex::new(Vec::new()));
    let drain = Drain::new();
    let seen = causes.clone();
    let pipeline = Pipeline::<_, Error>::new(&Context::background(), endless(&drops, &taken))
        .map(slow(2), move |ctx, item: Item| {
            // The call is dropped when the pipeline is cancelled; it reads the cause then.
            let seen = Seen(ctx, seen.clone());
            async move {
                sleep(Duration::from_secs(60)).await;
                drop(seen);
                Ok(item)
            }
        })
        .drained_by(&drain);
    let progress = pipeline.progress();
    let stopper = drain_after(&drain, Duration::from_millis(100), Duration::from_secs(1));
    let started = Instant::now();
    let err = pipeline.count().await.unwrap_err();
    stopper.await.unwrap();

    assert_eq!(err, Error::DrainTimeout);
    assert_eq!(started.elapsed(), Duration::from_millis(1_100));
    let expected = DrainTimeout {
        budget: Duration::from_secs(1),
    }
    .to_string();
    let causes = causes.lock().unwrap();
    assert!(!causes.is_empty());
    assert!(
        causes.iter().all(|c| c.as_deref() == Some(&expected[..])),
        "{causes:?}"
    );
    let report = progress.report();
    assert_eq!(
        report.drained.map(|d| d.outcome),
        Some(DrainOutcome::TimedOut),
        "\n{report}"
    );
    assert_eq!(report.consumed, 0);
    assert_eq!(report.unfinished, report.produced, "\n{report}");
    assert!(report
        .to_string()
        .contains("drain ran out of its budget of 1s"));
    assert_eq!(alive(), baseline);
    drops.assert_each_dropped_once(taken.load(Ordering::Relaxed));
}

/// Records the context's cause when dropped.
struct Seen(Context, Arc<Mutex<Vec<Option<String>>>>);

impl Drop for Seen {
    fn drop(&mut self) {
        let cause = self.0.cause().map(|cause| cause.to_string());
        self.1.lock().unwrap().push(cause);
    }
}

/// A stream that yields what the test sends and then waits, never ending by itself.
struct Idle(tokio::sync::mpsc::UnboundedReceiver<u64>);

impl futures::Stream for Idle {
    type Item = u64;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<u64>> {
        self.0.poll_recv(cx)
    }
}

#[tokio::test(start_paused = true)]
async fn a_drain_on_an_idle_pipeline_returns_at_once() {
    let baseline = alive();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for n in 0..3 {
        tx.send(n).unwrap();
    }
    let drain = Drain::new();
    let pipeline = Pipeline::<_, Error>::from_stream(&Context::background(), Idle(rx))
        .map("double", |_ctx, n: u64| async move { Ok(n * 2) })
        .drained_by(&drain);
    let progress = pipeline.progress();
    let run = tokio::spawn(pipeline.collect());
    // Let the three items through; the stream then waits for more.
    while progress.consumed() < 3 {
        tokio::task::yield_now().await;
    }
    let drained_at = Instant::now();
    drain.drain(Duration::from_secs(3600));
    let out = run.await.unwrap().unwrap();
    assert_eq!(drained_at.elapsed(), Duration::ZERO);
    assert_eq!(out, [0, 2, 4]);
    assert_eq!(progress.report().unfinished, 0);
    drop(tx);
    assert_eq!(alive(), baseline);
}

#[tokio::test(start_paused = true)]
async fn a_pipeline_started_after_the_drain_takes_nothing() {
    let taken = Arc::new(AtomicU64::new(0));
    let drain = Drain::new();
    drain.drain(Duration::from_secs(1));
    assert!(drain.is_draining());
    let (out, report) =
        Pipeline::<_, Error>::new(&Context::background(), endless(&Drops::default(), &taken))
            .map("id", |_ctx, item: Item| async move { Ok(item.n) })
            .drained_by(&drain)
            .with_report()
            .collect()
            .await;
    assert_eq!(out.unwrap(), Vec::<u64>::new());
    assert_eq!(taken.load(Ordering::Relaxed), 0);
    assert_eq!(report.produced, 0);
    assert_eq!(report.drained.unwrap().outcome, DrainOutcome::Completed);
}

#[tokio::test(start_paused = true)]
async fn a_drain_racing_with_the_source_end_keeps_everything() {
    let drain = Drain::new();
    let pipeline = Pipeline::<_, Error>::new(&Context::background(), 0..10u64)
        .map(slow(2), |_ctx, n: u64| async move {
            sleep(EACH).await;
            Ok(n)
        })
        .drained_by(&drain);
    let progress = pipeline.progress();
    let run = tokio::spawn(pipeline.collect());
    // The source has ended; the stage is still working.
    while progress.produced() < 10 {
        tokio::task::yield_now().await;
    }
    drain.drain(Duration::from_secs(1));
    let mut out = run.await.unwrap().unwrap();
    out.sort_unstable();
    assert_eq!(out, (0..10).collect::<Vec<_>>());
    let report = progress.report();
    assert_eq!(
        report.drained.map(|d| d.outcome),
        Some(DrainOutcome::Completed)
    );
    assert_eq!(report.unfinished, 0);

    // A drain after the run is over changes nothing.
    let after = Drain::new();
    let (out, report) = Pipeline::<_, Error>::new(&Context::background(), 0..3u64)
        .drained_by(&after)
        .with_report()
        .collect()
        .await;
    after.drain(Duration::ZERO);
    assert_eq!(out.unwrap(), [0, 1, 2]);
    assert_eq!(report.drained, None);
}

#[tokio::test(start_paused = true)]
async fn an_error_during_a_drain_is_still_the_result() {
    let baseline = alive();
    let (drops, taken) = (Drops::default(), Arc::new(AtomicU64::new(0)));
    let drain = Drain::new();
    let pipeline =
        Pipeline::<_, std::io::Error>::new(&Context::background(), endless(&drops, &taken))
            .map(slow(1), |_ctx, item: Item| async move {
                sleep(EACH).await;
                if item.n == 7 {
                    return Err(std::io::Error::other("item 7 is bad"));
                }
                Ok(item)
            })
            .drained_by(&drain);
    let progress = pipeline.progress();
    let stopper = drain_after(&drain, Duration::from_millis(25), Duration::from_secs(10));
    let err = pipeline.count().await.unwrap_err();
    stopper.await.unwrap();
    assert_eq!(err.to_string(), "item 7 is bad");
    let report = progress.report();
    assert_eq!(
        report.drained.map(|d| d.outcome),
        Some(DrainOutcome::Stopped)
    );
    assert_eq!(report.failure.map(|at| at.item), Some(7));
    assert_eq!(alive(), baseline);
    drops.assert_each_dropped_once(taken.load(Ordering::Relaxed));
}

#[tokio::test(start_paused = true)]
async fn a_cancel_during_a_drain_wins_and_a_second_drain_can_shorten_the_budget() {
    let baseline = alive();
    for (second, expected) in [
        (None, Error::Canceled),
        (Some(Duration::ZERO), Error::DrainTimeout),
    ] {
        let (drops, taken) = (Drops::default(), Arc::new(AtomicU64::new(0)));
        let (ctx, cancel) = Context::background().with_cancel();
        let drain = Drain::new();
        let pipeline = Pipeline::<_, Error>::new(&ctx, endless(&drops, &taken))
            .map(slow(2), |ctx, item: Item| async move {
                ctx.run(sleep(Duration::from_secs(60))).await?;
                Ok(item)
            })
            .drained_by(&drain);
        let progress = pipeline.progress();
        let stopper = {
            let drain = drain.clone();
            tokio::spawn(async move {
                sleep(Duration::from_millis(10)).await;
                drain.drain(Duration::from_secs(10));
                sleep(Duration::from_millis(10)).await;
                match second {
                    Some(budget) => drain.drain(budget),
                    None => cancel.cancel(),
                }
            })
        };
        let started = Instant::now();
        let err = pipeline.count().await.unwrap_err();
        stopper.await.unwrap();
        assert_eq!(err, expected);
        assert_eq!(started.elapsed(), Duration::from_millis(20));
        let report = progress.report();
        let budget = second.unwrap_or(Duration::from_secs(10));
        assert_eq!(
            report.drained,
            progress.report().drained,
            "a finished run's report is stable"
        );
        let drained: Drained = report.drained.expect("drained");
        let outcome = match second {
            Some(_) => DrainOutcome::TimedOut,
            None => DrainOutcome::Stopped,
        };
        assert_eq!((drained.budget, drained.outcome), (budget, outcome));
        assert_eq!(report.unfinished, report.produced);
        assert_eq!(alive(), baseline);
        drops.assert_each_dropped_once(taken.load(Ordering::Relaxed));
    }
}

#[tokio::test(start_paused = true)]
async fn one_handle_drains_every_pipeline_it_is_attached_to_and_the_macro_takes_it() {
    let drain = Drain::new();
    let first = pipeline! {
        drained_by = drain;
        report;
        from 0u64..
        => |_ctx, n| async move { sleep(EACH).await; Ok::<_, Error>(n) } [workers = 2, buffer = 4]
        => count
    };
    let second = Pipeline::<_, Error>::new(&Context::background(), 0u64..)
        .map(
            StageOptions::new("tick").buffer(4),
            |_ctx, n: u64| async move {
                sleep(EACH).await;
                Ok(n)
            },
        )
        .drained_by(&drain)
        .with_report()
        .count();
    let stopper = drain_after(&drain, Duration::from_millis(95), Duration::from_secs(1));
    let ((first, first_report), (second, second_report)): ((_, Report), (_, Report)) =
        tokio::join!(first, second);
    stopper.await.unwrap();
    assert_eq!(first.unwrap() as u64, first_report.produced);
    assert_eq!(second.unwrap() as u64, second_report.produced);
    assert!(first_report
        .to_string()
        .contains("drained within its budget of 1s"));
    assert!(second_report.produced >= 9);
}
