//! Structured concurrency beyond a pipeline: task scopes (Go's errgroup, with results and
//! policies), move-on-after and shields. On paused time, so durations are exact.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ctxpipe::{Context, Error, TaskScope};
use futures::FutureExt;
use tokio::time::{sleep, Instant};

mod support;
use support::alive;

const MS: Duration = Duration::from_millis(1);

#[derive(Debug, PartialEq)]
enum Failure {
    Context(Error),
    Bad(u32),
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Failure::Context(err)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

/// A task that sleeps `ms` under its context, then gives `n`, or fails if `n` is odd.
async fn task(ctx: Context, n: u32, ms: u64) -> Result<u32, Failure> {
    ctx.run(sleep(MS * ms as u32)).await?;
    if n % 2 == 1 {
        return Err(Failure::Bad(n));
    }
    Ok(n)
}

#[tokio::test(start_paused = true)]
async fn results_come_in_spawn_order() {
    let baseline = alive();
    let mut scope = TaskScope::new(&Context::background());
    for (n, ms) in [(0, 30), (2, 10), (4, 20)] {
        scope.spawn(move |ctx| task(ctx, n, ms));
    }
    let start = Instant::now();
    assert_eq!(scope.join().await, Ok(vec![0, 2, 4]));
    assert_eq!(start.elapsed(), MS * 30, "concurrently");
    assert_eq!(alive(), baseline);
}

#[tokio::test(start_paused = true)]
async fn the_first_error_cancels_the_rest_with_its_cause() {
    let baseline = alive();
    let causes = Arc::new(Mutex::new(Vec::new()));
    let mut scope = TaskScope::new(&Context::background());
    scope.spawn(|ctx| task(ctx, 1, 10)); // fails at 10 ms
    for n in [2, 4] {
        let causes = causes.clone();
        scope.spawn(move |ctx| async move {
            let result = task(ctx.clone(), n, 1_000).await;
            causes
                .lock()
                .unwrap()
                .push((ctx.err(), ctx.cause().map(|c| c.to_string())));
            result
        });
    }
    let start = Instant::now();
    assert_eq!(scope.join().await, Err(Failure::Bad(1)));
    assert_eq!(start.elapsed(), MS * 10);
    let causes = causes.lock().unwrap();
    assert_eq!(causes.len(), 2);
    for (err, cause) in causes.iter() {
        assert_eq!(*err, Some(Error::Canceled));
        assert_eq!(cause.as_deref(), Some("a task of the scope failed: Bad(1)"));
    }
    assert_eq!(alive(), baseline);
}

#[tokio::test(start_paused = true)]
async fn a_panic_is_resumed_after_every_task_stopped() {
    let baseline = alive();
    let stopped = Arc::new(AtomicUsize::new(0));
    let mut scope = TaskScope::<u32, Failure>::new(&Context::background());
    scope.spawn(|_ctx| async {
        sleep(MS).await;
        panic!("boom");
    });
    for _ in 0..3 {
        let stopped = stopped.clone();
        scope.spawn(move |ctx| async move {
            let result = ctx.run(sleep(MS * 1_000)).await;
            // A task that notices the cancel and takes a while to wind down.
            sleep(MS * 5).await;
            stopped.fetch_add(1, Ordering::Relaxed);
            result?;
            Ok(0)
        });
    }
    let caught = AssertUnwindSafe(scope.join()).catch_unwind().await;
    let payload = caught.expect_err("the panic is resumed");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
    assert_eq!(
        stopped.load(Ordering::Relaxed),
        3,
        "after every task stopped"
    );
    assert_eq!(alive(), baseline);
}

#[tokio::test(start_paused = true)]
async fn a_limit_bounds_the_tasks_running_at_once() {
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut scope = TaskScope::<u32, Failure>::new(&Context::background()).limit(3);
    for n in 0..10u32 {
        let (running, peak) = (running.clone(), peak.clone());
        scope.spawn(move |ctx| async move {
            let now = running.fetch_add(1, Ordering::Relaxed) + 1;
            peak.fetch_max(now, Ordering::Relaxed);
            let result = task(ctx, n * 2, 10).await;
            running.fetch_sub(1, Ordering::Relaxed);
            result
        });
    }
    let start = Instant::now();
    let out = scope.join().await.unwrap();
    assert_eq!(out, (0..10).map(|n| n * 2).collect::<Vec<_>>());
    assert_eq!(peak.load(Ordering::Relaxed), 3);
    // 10 tasks of 10 ms, 3 at a time: 4 rounds.
    assert_eq!(start.elapsed(), MS * 40);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_scope_or_its_join_aborts_every_task() {
    let baseline = alive();
    let mut scope = TaskScope::<u32, Failure>::new(&Context::background());
    let ctx = scope.context().clone();
    for n in 0..5 {
        scope.spawn(move |ctx| task(ctx, n * 2, 1_000));
    }
    let join = scope.join();
    assert!(tokio::time::timeout(MS * 10, join).await.is_err());
    assert!(ctx.is_done(), "the scope's context is cancelled");
    while alive() != baseline {
        tokio::task::yield_now().await;
    }

    let mut scope = TaskScope::<u32, Failure>::new(&Context::background());
    scope.spawn(|ctx| task(ctx, 0, 1_000));
    drop(scope);
    while alive() != baseline {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn the_first_success_wins_and_cancels_the_rest() {
    let mut scope = TaskScope::new(&Context::background());
    for (n, ms) in [(1, 5), (4, 30), (2, 20), (6, 1_000)] {
        scope.spawn(move |ctx| task(ctx, n, ms));
    }
    let start = Instant::now();
    assert_eq!(scope.first_ok().await, Some(Ok(2)));
    assert_eq!(start.elapsed(), MS * 20, "the 1-second one was cancelled");

    let mut all_fail = TaskScope::<u32, Failure>::new(&Context::background());
    for (n, ms) in [(3, 20), (5, 10)] {
        all_fail.spawn(move |ctx| task(ctx, n, ms));
    }
    assert_eq!(all_fail.first_ok().await, Some(Err(Failure::Bad(5))));
    assert_eq!(
        TaskScope::<u32, Failure>::new(&Context::background())
            .first_ok()
            .await,
        None
    );
}

#[tokio::test(start_paused = true)]
async fn join_until_stops_once_the_results_are_enough() {
    let mut scope = TaskScope::new(&Context::background());
    for (n, ms) in [(2, 10), (4, 20), (6, 30), (8, 1_000)] {
        scope.spawn(move |ctx| task(ctx, n, ms));
    }
    let mut sum = 0;
    let start = Instant::now();
    let out = scope
        .join_until(|n| {
            sum += n;
            sum >= 12
        })
        .await;
    assert_eq!(out, Ok(vec![2, 4, 6]));
    assert_eq!(start.elapsed(), MS * 30);
}

#[tokio::test(start_paused = true)]
async fn a_parents_cancel_reaches_every_task() {
    let (parent, cancel) = Context::background().with_cancel();
    let mut scope = TaskScope::new(&parent);
    for n in [0, 2] {
        scope.spawn(move |ctx| task(ctx, n, 1_000));
    }
    tokio::spawn(async move {
        sleep(MS * 10).await;
        cancel.cancel();
    });
    assert_eq!(scope.join().await, Err(Failure::Context(Error::Canceled)));
}

#[tokio::test(start_paused = true)]
async fn move_on_after_returns_none_only_for_its_own_deadline() {
    let slow = |ctx: Context| async move { ctx.run(sleep(MS * 100)).await };
    let ctx = Context::background();
    assert_eq!(ctx.move_on_after(MS * 10, slow).await, Ok(None));
    assert_eq!(ctx.move_on_after(MS * 200, slow).await, Ok(Some(Ok(()))));
    let at = Instant::now() + MS * 10;
    assert_eq!(ctx.move_on_at(at, slow).await, Ok(None));

    // The caller's deadline, earlier or at the same instant, is the caller's error.
    let (short, _guard) = ctx.with_timeout(MS * 10);
    assert_eq!(
        short.move_on_after(MS * 50, slow).await,
        Err(Error::DeadlineExceeded)
    );
    let (same, _guard) = ctx.with_timeout(MS * 10);
    assert_eq!(
        same.move_on_after(MS * 10, slow).await,
        Err(Error::DeadlineExceeded)
    );

    // The caller's cancel too.
    let (outer, cancel) = ctx.with_cancel();
    tokio::spawn(async move {
        sleep(MS * 5).await;
        cancel.cancel();
    });
    assert_eq!(
        outer.move_on_after(MS * 50, slow).await,
        Err(Error::Canceled)
    );
}

#[tokio::test(start_paused = true)]
async fn a_shield_survives_the_parents_cancel_and_keeps_its_budget() {
    #[derive(Debug, PartialEq)]
    struct RequestId(u32);
    let (request, cancel) = Context::background()
        .with_value(RequestId(7))
        .with_timeout(MS * 10);
    let (cleanup, _guard) = request.shield(MS * 50);
    cancel.cancel();
    assert_eq!(request.err(), Some(Error::Canceled));
    assert_eq!(cleanup.err(), None);
    assert_eq!(cleanup.value::<RequestId>(), Some(&RequestId(7)));
    let start = Instant::now();
    assert_eq!(
        cleanup.run(sleep(MS * 1_000)).await,
        Err(Error::DeadlineExceeded)
    );
    assert_eq!(
        start.elapsed(),
        MS * 50,
        "its own budget, not the request's deadline"
    );
}

#[tokio::test(start_paused = true)]
async fn a_linked_context_ends_with_either_parent_and_keeps_the_first_ones_values() {
    #[derive(Debug, PartialEq)]
    struct Tenant(&'static str);
    for which in 0..2 {
        let (first, cancel_first) = Context::background()
            .with_value(Tenant("acme"))
            .with_cancel();
        let (second, cancel_second) = Context::background().with_cancel();
        let (linked, _cancel) = first.with_linked([&second]);
        let (below, _) = linked.with_cancel();
        assert_eq!(linked.value::<Tenant>(), Some(&Tenant("acme")));
        assert_eq!(linked.err(), None);
        let waiter = tokio::spawn(below.done());
        if which == 0 {
            cancel_first.cancel_with(ctxpipe::Cause::msg("request done"));
        } else {
            cancel_second.cancel_with(ctxpipe::Cause::msg("server stopping"));
        }
        // Synchronously: done before `cancel_with` returned, with the cause of whichever ended.
        assert_eq!(below.err(), Some(Error::Canceled));
        let cause = linked.cause().unwrap().to_string();
        assert_eq!(cause, ["request done", "server stopping"][which]);
        waiter.await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_linked_context_has_the_earliest_deadline() {
    let (first, _a) = Context::background().with_timeout(MS * 100);
    let (second, _b) = Context::background().with_timeout(MS * 30);
    let (linked, _cancel) = first.with_linked([&second]);
    assert_eq!(linked.deadline(), second.deadline());
    let start = Instant::now();
    linked.done().await;
    assert_eq!(start.elapsed(), MS * 30);
    assert_eq!(linked.err(), Some(Error::DeadlineExceeded));

    // Linked to a context that is done already: born done.
    let (done, cancel) = Context::background().with_cancel();
    cancel.cancel();
    let (linked, _cancel) = Context::background().with_linked([&done]);
    assert_eq!(linked.err(), Some(Error::Canceled));
}

/// A stage that fans out: each item's parts are fetched in a scope under the stage's context.
#[ctxpipe::stage]
async fn fetch_parts(order: u32) -> Result<u32, Failure> {
    let mut parts = TaskScope::new(ctx);
    for part in 0..3 {
        parts.spawn(move |ctx| task(ctx, order * 10 + part * 2, 10));
    }
    Ok(parts.join().await?.into_iter().sum())
}

#[tokio::test(start_paused = true)]
async fn a_stage_opens_a_scope_under_its_context() {
    let sums = ctxpipe::pipeline! {
        from [1u32, 2]
        => fetch_parts [workers = 2, ordered]
        => collect
    }
    .await
    .unwrap();
    assert_eq!(sums, [36, 66]);

    // The pipeline's cancel reaches the scope's tasks through the stage's context.
    let baseline = alive();
    let (ctx, cancel) = Context::background().with_cancel();
    let run = ctxpipe::pipeline! {
        in &ctx;
        from [1u32, 2, 3]
        => fetch_parts
        => collect
    };
    tokio::spawn(async move {
        sleep(MS * 5).await;
        cancel.cancel();
    });
    let start = Instant::now();
    assert_eq!(run.await, Err(Failure::Context(Error::Canceled)));
    assert_eq!(start.elapsed(), MS * 5);
    assert_eq!(alive(), baseline);
}
