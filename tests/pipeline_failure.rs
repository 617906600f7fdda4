//! How a pipeline ends early: the first error, a panic, the caller's cancel or deadline, and
//! a dropped future — and that each leaves no task and no item behind.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ctxpipe::{Context, Error, Pipeline, StageOptions};
use futures::FutureExt;
use tokio::time::{sleep, Instant};

fn alive() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Waits until the runtime's alive-task count is back to `baseline`. On a multi-thread runtime a
/// task that has finished (its join handle is ready) leaves the count a moment later, when the
/// worker thread that ran it releases it; on a loaded machine that thread may be descheduled
/// in between. So this yields (to the runtime and to the OS) until it is, for at most a few
/// seconds — a bound on waiting, not a timing assumption.
async fn settle(baseline: usize) {
    let give_up = std::time::Instant::now() + Duration::from_secs(5);
    while alive() != baseline && std::time::Instant::now() < give_up {
        tokio::task::yield_now().await;
        std::thread::yield_now();
    }
    assert_eq!(alive(), baseline, "tasks left alive");
}

#[derive(Debug, PartialEq)]
enum Failure {
    Context(Error),
    Stage(&'static str, u64),
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Failure::Context(err)
    }
}

/// Counts live instances: created by `new`, forgotten by `drop`.
#[derive(Clone, Default)]
struct Live(Arc<AtomicUsize>);

impl Live {
    fn track(&self) -> Guard {
        self.0.fetch_add(1, Ordering::SeqCst);
        Guard(self.0.clone())
    }

    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// An item (or a stage future's state) whose drop is counted.
struct Guard(Arc<AtomicUsize>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn the_first_error_wins_and_cancels_the_rest() {
    let pending = Live::default();
    let in_stage = pending.clone();
    let calls = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let (calls_fails, calls_later) = (calls.clone(), calls.clone());
    let started = Instant::now();
    let pipeline = Pipeline::new(&Context::background(), 0..1000u64)
        .map(StageOptions::new("fails").workers(2), move |_ctx, n| {
            calls_fails[0].fetch_add(1, Ordering::SeqCst);
            async move {
                sleep(Duration::from_millis(5)).await;
                if n == 10 {
                    return Err(Failure::Stage("fails", n));
                }
                Ok(n)
            }
        })
        .map(StageOptions::new("later").workers(4), move |_ctx, n| {
            calls_later[1].fetch_add(1, Ordering::SeqCst);
            let guard = in_stage.track();
            async move {
                // Would fail too, but only after the first error has cancelled it.
                sleep(Duration::from_secs(60)).await;
                drop(guard);
                Err::<u64, _>(Failure::Stage("later", n))
            }
        });
    let progress = pipeline.progress();
    let result = pipeline.collect().await;
    assert_eq!(result, Err(Failure::Stage("fails", 10)));
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(30),
        "stopped at once"
    );
    assert_eq!(alive(), 0, "no task outlives the run");
    assert_eq!(pending.count(), 0, "every pending stage future was dropped");
    let report = progress.report();
    let (fails, later) = (
        report.stage("fails").unwrap(),
        report.stage("later").unwrap(),
    );
    assert_eq!((fails.errors, later.errors, report.errors()), (1, 0, 1));
    assert_eq!(fails.items_in, calls[0].load(Ordering::SeqCst) as u64);
    assert_eq!(later.items_in, calls[1].load(Ordering::SeqCst) as u64);
    assert_eq!(fails.items_out, 10, "items 0..10 passed the first stage");
    assert_eq!(
        later.items_in, 4,
        "one call per worker, each pending when the error came"
    );
    assert_eq!(report.consumed, 0);
}

#[tokio::test(start_paused = true)]
async fn the_earliest_error_in_time_wins_whatever_the_stage() {
    let result = Pipeline::new(&Context::background(), 0..100u64)
        .map("slow-failure", |_ctx, n| async move {
            sleep(Duration::from_millis(50)).await;
            Err::<u64, _>(Failure::Stage("slow-failure", n))
        })
        .map("fast-failure", |_ctx, n| async move {
            Err::<u64, _>(Failure::Stage("fast-failure", n))
        })
        .count()
        .await;
    // Nothing reaches the second stage before the first fails at 50 ms.
    assert_eq!(result, Err(Failure::Stage("slow-failure", 0)));

    let result = Pipeline::new(&Context::background(), 0..100u64)
        .map(StageOptions::new("a").workers(3), |_ctx, n| async move {
            sleep(Duration::from_millis(10 * (n % 3 + 1))).await;
            Ok(n)
        })
        .map("b", |_ctx, n| async move {
            if n == 2 {
                sleep(Duration::from_millis(1)).await;
                return Err(Failure::Stage("b", n));
            }
            Ok(n)
        })
        .map("c", |_ctx, n| async move {
            if n == 1 {
                sleep(Duration::from_millis(5)).await;
                return Err(Failure::Stage("c", n));
            }
            Ok(n)
        })
        .count()
        .await;
    // Item 0 is done at 10 ms, item 1 fails in "c" at 25 ms, item 2 would fail "b" at 31 ms.
    assert_eq!(result, Err(Failure::Stage("c", 1)));
    assert_eq!(alive(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn later_errors_are_dropped_but_counted() {
    let returned = Arc::new(AtomicUsize::new(0));
    let count = returned.clone();
    let pipeline = Pipeline::new(&Context::background(), 0..10_000u64).map(
        StageOptions::new("all-fail").workers(8).batch(1),
        move |_ctx, n| {
            count.fetch_add(1, Ordering::SeqCst);
            async move { Err::<u64, _>(Failure::Stage("all-fail", n)) }
        },
    );
    let progress = pipeline.progress();
    let result = pipeline.count().await;
    assert!(
        matches!(result, Err(Failure::Stage("all-fail", _))),
        "{result:?}"
    );
    let report = progress.report();
    let calls = returned.load(Ordering::SeqCst) as u64;
    // Every call fails. The first error is counted and returned; a call that fails while the
    // pipeline is still running is counted too. One whose error arrives just after the first
    // has cancelled the pipeline cannot be told from a call noticing the cancellation (which
    // is not an error of its own), so it may go uncounted: the count lies between the two.
    assert!(
        (1..=calls).contains(&report.errors()),
        "{} errors counted for {calls} failed calls",
        report.errors()
    );
    assert!(calls < 10_000, "the first error stopped the rest");
    settle(0).await;
}

#[tokio::test(start_paused = true)]
async fn a_stage_panic_is_resumed_after_every_task_stopped() {
    let pending = Live::default();
    let in_stage = pending.clone();
    let items = Live::default();
    let source_items = items.clone();
    let pipeline = Pipeline::new(
        &Context::background(),
        (0..1000u64).map(move |n| (n, source_items.track())),
    )
    .map(StageOptions::new("sleepy").workers(5), move |_ctx, item| {
        let guard = in_stage.track();
        async move {
            if item.0 != 7 {
                sleep(Duration::from_secs(60)).await;
            }
            drop(guard);
            Ok(item)
        }
    })
    .map("panics", |_ctx, (n, item)| async move {
        if n == 7 {
            panic!("stage panicked on {n}");
        }
        Ok::<_, Error>((n, item))
    });
    let caught = AssertUnwindSafe(pipeline.count()).catch_unwind().await;
    // At the moment the panic reaches the caller, everything else has stopped.
    let (tasks, futures, in_flight) = (alive(), pending.count(), items.count());
    let payload = caught.expect_err("the panic is resumed in the caller");
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("stage panicked on 7")
    );
    assert_eq!(tasks, 0, "no task is alive when the panic is resumed");
    assert_eq!(futures, 0, "every pending stage future was dropped first");
    assert_eq!(in_flight, 0, "no item is left in flight");
}

#[tokio::test]
async fn a_source_panic_is_resumed() {
    let source = (0..100u32).inspect(|n| assert!(*n < 50, "source ran dry at {n}"));
    let caught = AssertUnwindSafe(
        Pipeline::new(&Context::background(), source)
            .map(StageOptions::new("id").workers(3), |_ctx, n| async move {
                Ok(n)
            })
            .count(),
    )
    .catch_unwind()
    .await;
    let alive_then = alive();
    let payload = caught
        .map(|n: Result<usize, Error>| n)
        .expect_err("resumed");
    assert!(payload
        .downcast_ref::<String>()
        .is_some_and(|m| m.contains("source ran dry at 50")));
    assert_eq!(alive_then, 0);
}

#[tokio::test(start_paused = true)]
async fn a_sink_panic_is_resumed_after_every_task_stopped() {
    let pending = Live::default();
    let in_stage = pending.clone();
    let pipeline = Pipeline::new(&Context::background(), 0..100u32).map(
        StageOptions::new("mixed").workers(4),
        move |_ctx, n| {
            let guard = in_stage.track();
            async move {
                if n > 0 {
                    sleep(Duration::from_secs(60)).await;
                }
                drop(guard);
                Ok::<_, Error>(n)
            }
        },
    );
    let caught = AssertUnwindSafe(pipeline.for_each(|n| panic!("sink refused {n}")))
        .catch_unwind()
        .await;
    let (tasks, futures) = (alive(), pending.count());
    let payload = caught.expect_err("resumed");
    assert_eq!(payload.downcast_ref::<String>().unwrap(), "sink refused 0");
    assert_eq!((tasks, futures), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn cancelling_the_callers_context_stops_every_stage() {
    let pending = Live::default();
    let in_stage = pending.clone();
    let (ctx, cancel) = Context::background().with_cancel();
    let canceller = tokio::spawn(async move {
        sleep(Duration::from_millis(20)).await;
        cancel.cancel();
    });
    let started = Instant::now();
    let result: Result<usize, Failure> = Pipeline::new(&ctx, 0..1_000_000u64)
        .map(StageOptions::new("fast").workers(2), |_ctx, n| async move {
            Ok(n)
        })
        .map(StageOptions::new("slow").workers(16), move |_ctx, n| {
            let guard = in_stage.track();
            async move {
                sleep(Duration::from_millis(1)).await;
                drop(guard);
                Ok(n)
            }
        })
        .count()
        .await;
    assert_eq!(result, Err(Failure::Context(Error::Canceled)));
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(20),
        "stopped promptly"
    );
    canceller.await.unwrap();
    assert_eq!(alive(), 0);
    assert_eq!(pending.count(), 0);
    assert_eq!(ctx.__live_children(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_callers_deadline_stops_every_stage() {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(50));
    let started = Instant::now();
    let pipeline = Pipeline::new(&ctx, 0..10_000u64).map(
        StageOptions::new("slow").workers(8),
        |_ctx, n| async move {
            sleep(Duration::from_millis(3)).await;
            Ok(n)
        },
    );
    let progress = pipeline.progress();
    let result: Result<Vec<u64>, Error> = pipeline.collect().await;
    assert_eq!(result, Err(Error::DeadlineExceeded));
    assert_eq!(started.elapsed(), Duration::from_millis(50));
    assert_eq!(alive(), 0);
    // 8 workers finish one item every 3 ms until the deadline: 16 rounds.
    assert_eq!(progress.report().consumed, 8 * 16);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_that_passes_during_a_call_stops_the_next_one() {
    // Each call moves the clock on by 1 ms: the one that reaches the deadline ends with it,
    // and no item after it is taken, though the source has plenty left.
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(10));
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let result: Result<Vec<u64>, Error> = Pipeline::new(&ctx, 0..1_000u64)
        .map("tick", move |_ctx, n| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::advance(Duration::from_millis(1)).await;
                Ok(n)
            }
        })
        .collect()
        .await;
    assert_eq!(result, Err(Error::DeadlineExceeded));
    assert_eq!(calls.load(Ordering::SeqCst), 10);
    // The shared deadline timer, armed while the calls were pending, ends on its next turn.
    settle(0).await;
}

#[tokio::test]
async fn a_cancel_stops_a_long_expansion_midway() {
    let (ctx, cancel) = Context::background().with_cancel();
    let taken = Arc::new(AtomicUsize::new(0));
    let counted = taken.clone();
    // The expansion cancels the run itself once it is well under way.
    let result = Pipeline::<_, Error>::new(&ctx, [()])
        .flat_map("endless", move |_ctx, ()| {
            let (cancel, counted) = (cancel.clone(), counted.clone());
            async move {
                Ok((0..2_000_000u64).inspect(move |&n| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    if n == 5_000 {
                        cancel.cancel();
                    }
                }))
            }
        })
        .count()
        .await;
    assert_eq!(result, Err(Error::Canceled));
    let taken = taken.load(Ordering::SeqCst);
    assert!(
        (5_001..=5_001 + 1024).contains(&taken),
        "{taken} items taken: the worker looks at its context every 1024"
    );

    // A long expansion that nobody cancels goes on whole.
    let n = Pipeline::<_, Error>::new(&Context::background(), [10_000u64, 3])
        .flat_map("long", |_ctx, n| async move { Ok(0..n) })
        .count()
        .await;
    assert_eq!(n, Ok(10_003));
}

#[tokio::test(start_paused = true)]
async fn an_already_done_context_runs_nothing() {
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let result: Result<usize, Error> = Pipeline::new(&ctx, 0..10)
        .map("never", move |_ctx, n: i32| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move { Ok(n) }
        })
        .count()
        .await;
    assert_eq!(result, Err(Error::Canceled));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(alive(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_stage_that_watches_its_context_sees_the_cancellation() {
    let saw = Arc::new(AtomicUsize::new(0));
    let seen = saw.clone();
    let (ctx, cancel) = Context::background().with_cancel();
    let pipeline =
        Pipeline::new(&ctx, 0..4u32).map(StageOptions::new("watch").workers(4), move |ctx, _n| {
            let seen = seen.clone();
            async move {
                // Spawned work holding the owned context outlives the call's future.
                tokio::spawn(async move {
                    ctx.done().await;
                    seen.fetch_add(1, Ordering::SeqCst);
                });
                std::future::pending::<()>().await;
                Ok(())
            }
        });
    let run = tokio::spawn(pipeline.count());
    sleep(Duration::from_millis(1)).await;
    cancel.cancel();
    let result: Result<usize, Error> = run.await.unwrap();
    assert_eq!(result, Err(Error::Canceled));
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(saw.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_future_midway_aborts_everything() {
    let items = Live::default();
    let source_items = items.clone();
    let pending = Live::default();
    let in_stage = pending.clone();
    let pipeline = Pipeline::new(
        &Context::background(),
        (0..100_000u64).map(move |n| (n, source_items.track())),
    )
    .map(
        StageOptions::new("fast").workers(3),
        |_ctx, item| async move { Ok(item) },
    )
    .map(
        StageOptions::new("slow").workers(10).ordered(),
        move |_ctx, item| {
            let guard = in_stage.track();
            async move {
                sleep(Duration::from_millis(1)).await;
                drop(guard);
                Ok(item)
            }
        },
    );
    let progress = pipeline.progress();
    let run = pipeline.count();
    let timed_out: Result<Result<usize, Error>, _> =
        tokio::time::timeout(Duration::from_millis(25), run).await;
    assert!(timed_out.is_err(), "the run was dropped midway");
    assert!(progress.consumed() > 0 && progress.produced() < 100_000);
    assert!(
        items.count() > 0,
        "items were in flight when the run was dropped"
    );
    for _ in 0..5 {
        tokio::task::yield_now().await;
    }
    assert_eq!(alive(), 0, "every task was aborted");
    assert_eq!(items.count(), 0, "every item in flight was dropped");
    assert_eq!(pending.count(), 0, "every stage future was dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_future_midway_on_several_threads() {
    let items = Live::default();
    let source_items = items.clone();
    let baseline = alive();
    let pipeline = Pipeline::new(
        &Context::background(),
        (0..u64::MAX).map(move |n| (n, source_items.track())),
    )
    .map(
        StageOptions::new("spin").workers(4),
        |_ctx, item| async move {
            tokio::task::yield_now().await;
            Ok(item)
        },
    );
    let progress = pipeline.progress();
    let mut run = Box::pin(pipeline.count());
    // Runs it until items flow through, then drops it midway.
    while progress.consumed() < 10_000 {
        let polled: std::task::Poll<Result<usize, Error>> = futures::poll!(run.as_mut());
        assert!(polled.is_pending());
        tokio::task::yield_now().await;
    }
    assert!(items.count() > 0);
    drop(run);
    // Aborted tasks are dropped by the runtime's threads shortly after.
    settle(baseline).await;
    assert_eq!(items.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_on_several_threads_leave_no_task() {
    let baseline = alive();
    for round in 0..20u64 {
        let result = Pipeline::new(&Context::background(), 0..100_000u64)
            .map(
                StageOptions::new("a").workers(3),
                |_ctx, n| async move { Ok(n) },
            )
            .map(
                StageOptions::new("b").workers(3).ordered(),
                move |_ctx, n| async move {
                    if n == 5_000 + round * 1_000 {
                        return Err(Failure::Stage("b", n));
                    }
                    Ok(n)
                },
            )
            .count()
            .await;
        assert_eq!(result, Err(Failure::Stage("b", 5_000 + round * 1_000)));
        settle(baseline).await;
    }
}
