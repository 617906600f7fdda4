//! Deadlines need no task per context: at most one shared timer task per runtime, alive only
//! while something waits, and deadlines still served outside any runtime.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use ctxpipe::{Context, Error};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

/// How long a test that runs outside tokio waits before calling a run hung. Not a timing
/// assertion: the awaited deadline is tens of milliseconds away.
const HANG_GUARD: Duration = Duration::from_secs(10);

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Lets every ready task run, and finished ones be released, on a current-thread runtime.
async fn settle() {
    for _ in 0..32 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_hundred_thousand_deadlines_share_one_timer_task() {
    const CONTEXTS: usize = 100_000;
    let baseline = alive_tasks();
    let start = Instant::now();

    let contexts: Vec<_> = (0..CONTEXTS)
        .map(|i| {
            let timeout = Duration::from_millis(1 + (i as u64 * 7919) % 2000);
            Context::background().with_timeout(timeout)
        })
        .collect();
    let children: Vec<_> = contexts
        .iter()
        .step_by(100)
        .map(|(ctx, _)| ctx.with_value(1u8).with_cancel())
        .collect();
    assert_eq!(
        alive_tasks(),
        baseline,
        "making contexts with deadlines spawns no task"
    );
    assert!(contexts.iter().all(|(ctx, _)| !ctx.is_done()), "all open");

    // A sample of after_funcs, each recording when it ran.
    let fired = Arc::new(Mutex::new(Vec::new()));
    let after_funcs: Vec<_> = contexts
        .iter()
        .enumerate()
        .step_by(1000)
        .map(|(i, (ctx, _))| {
            let fired = fired.clone();
            ctx.after_func(move || {
                let mut fired = fired.lock().expect("no panic while recording");
                fired.push((i, Instant::now()));
            })
        })
        .collect();
    assert!(
        alive_tasks() <= baseline + 1,
        "pending after_funcs need at most the shared timer"
    );

    // One task (this one) waits on every context at once.
    let mut waiting: FuturesUnordered<_> = contexts
        .iter()
        .enumerate()
        .map(|(i, (ctx, _))| {
            let done = ctx.done();
            async move {
                done.await;
                (i, Instant::now())
            }
        })
        .collect();
    assert!(
        futures::poll!(waiting.next()).is_pending(),
        "nothing is due yet"
    );
    assert_eq!(
        alive_tasks(),
        baseline + 1,
        "100,000 pending done() futures are served by one shared timer task"
    );

    let mut resolved = 0;
    while let Some((i, at)) = waiting.next().await {
        let deadline = contexts[i].0.deadline().expect("with_timeout sets one");
        assert!(at >= deadline, "#{i} resolved before its deadline");
        assert!(
            at - deadline <= Duration::from_millis(1),
            "#{i} resolved {:?} after its deadline",
            at - deadline
        );
        assert!(
            alive_tasks() <= baseline + 1 + after_funcs.len(),
            "no task per context while they expire"
        );
        resolved += 1;
    }
    assert_eq!(resolved, CONTEXTS, "every done() resolved");
    assert!(
        Instant::now() - start <= Duration::from_millis(2001),
        "time only went as far as the last deadline"
    );

    for (i, (ctx, _)) in contexts.iter().enumerate() {
        assert_eq!(ctx.err(), Some(Error::DeadlineExceeded), "#{i}");
    }
    for (i, (child, _)) in children.iter().enumerate() {
        assert_eq!(
            child.err(),
            Some(Error::DeadlineExceeded),
            "child of #{}: its parent's deadline reached it",
            i * 100
        );
        let cause = child.cause().map(|c| c.to_string());
        assert_eq!(cause.as_deref(), Some("context deadline exceeded"));
    }

    settle().await;
    let fired = fired.lock().expect("no panic while recording").clone();
    assert_eq!(
        fired.len(),
        after_funcs.len(),
        "every after_func fired once"
    );
    for (i, at) in fired {
        let deadline = contexts[i].0.deadline().expect("with_timeout sets one");
        assert!(
            at >= deadline,
            "after_func of #{i} fired before the deadline"
        );
    }
    assert!(
        after_funcs.iter().all(|call| !call.stop()),
        "stop() after they fired"
    );
    assert_eq!(
        alive_tasks(),
        baseline,
        "the timer task exits once nothing is left to serve"
    );
}

#[tokio::test(start_paused = true)]
async fn children_waiting_on_a_parents_deadline_need_one_timer_task() {
    let baseline = alive_tasks();
    let (parent, _cancel) = Context::background().with_timeout(Duration::from_secs(30));
    let children: Vec<_> = (0..10_000)
        .map(|i| {
            if i % 2 == 0 {
                parent.with_cancel()
            } else {
                parent.with_timeout(Duration::from_secs(3600))
            }
        })
        .collect();
    let mut waiting: FuturesUnordered<_> = children.iter().map(|(ctx, _)| ctx.done()).collect();
    assert!(futures::poll!(waiting.next()).is_pending(), "not yet");
    assert_eq!(alive_tasks(), baseline + 1, "one shared timer task");
    let mut resolved = 0;
    while waiting.next().await.is_some() {
        resolved += 1;
    }
    assert_eq!(resolved, children.len());
    assert!(
        Instant::now() >= parent.deadline().expect("has a deadline"),
        "resolved at the parent's deadline"
    );
    assert!(
        children
            .iter()
            .all(|(ctx, _)| ctx.err() == Some(Error::DeadlineExceeded)),
        "every child sees DeadlineExceeded"
    );
    settle().await;
    assert_eq!(alive_tasks(), baseline, "the timer task exited");
}

#[tokio::test(start_paused = true)]
async fn the_timer_task_exists_only_while_deadlines_are_pending() {
    let baseline = alive_tasks();
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(60));
    assert!(!ctx.is_done());
    settle().await;
    assert_eq!(alive_tasks(), baseline, "no waiter, no timer task");

    let mut done = Box::pin(ctx.done());
    assert!(futures::poll!(done.as_mut()).is_pending());
    assert_eq!(
        alive_tasks(),
        baseline + 1,
        "a waiter arms the shared timer"
    );

    // The waiter goes away; the timer keeps its entry until the deadline, then exits.
    drop(done);
    drop(ctx);
    tokio::time::sleep(Duration::from_secs(61)).await;
    settle().await;
    assert_eq!(alive_tasks(), baseline, "the timer task exited");

    // A later waiter starts a new one.
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(5));
    ctx.done().await;
    assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
    settle().await;
    assert_eq!(alive_tasks(), baseline, "and it exits again");
}

#[tokio::test(start_paused = true)]
async fn an_earlier_deadline_armed_later_is_served_on_time() {
    let (late, _l) = Context::background().with_timeout(Duration::from_secs(100));
    let mut late_done = Box::pin(late.done());
    assert!(futures::poll!(late_done.as_mut()).is_pending());
    settle().await; // the timer task now sleeps until the late deadline

    let (early, _e) = Context::background().with_timeout(Duration::from_secs(1));
    let deadline = early.deadline().expect("has a deadline");
    early.done().await;
    let now = Instant::now();
    assert!(now >= deadline, "not before its deadline");
    assert!(
        now - deadline <= Duration::from_millis(1),
        "the timer woke for the earlier deadline, not the later one ({:?} late)",
        now - deadline
    );
    assert!(!late.is_done(), "the later deadline has not passed");
    late_done.await;
    assert_eq!(late.err(), Some(Error::DeadlineExceeded));
}

#[test]
fn deadlines_are_served_outside_any_runtime() {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(50));
    let started = std::time::Instant::now();
    let fired = Arc::new(AtomicUsize::new(0));
    let counter = fired.clone();
    let (after_tx, after_rx) = mpsc::channel();
    let _call = ctx.after_func(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        let _ = after_tx.send(());
    });
    let (tx, rx) = mpsc::channel();
    let waiter = ctx.clone();
    std::thread::spawn(move || {
        futures::executor::block_on(waiter.done());
        let outcome = futures::executor::block_on(waiter.run(std::future::pending::<()>()));
        let _ = tx.send(outcome);
    });
    let outcome = rx.recv_timeout(HANG_GUARD).expect("done() resolved");
    assert_eq!(outcome, Err(Error::DeadlineExceeded));
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "not before the deadline"
    );
    assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
    assert!(
        after_rx.recv_timeout(HANG_GUARD).is_ok(),
        "after_func fired at the deadline"
    );
    assert_eq!(fired.load(Ordering::SeqCst), 1, "exactly once");
}

#[test]
fn an_after_func_outlives_the_runtime_that_armed_its_deadline() {
    // The call waits on a child: the deadline it needs is its parent's.
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(50));
    let (child, _child_cancel) = ctx.with_cancel();
    let (tx, rx) = mpsc::channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime builds");
    let _call = runtime.block_on(async {
        let call = child.after_func(move || {
            let _ = tx.send(());
        });
        settle().await; // the runtime's timer task takes the deadline
        call
    });
    drop(runtime);
    // Nothing looks at the contexts: only a timer can start the call.
    assert!(
        rx.recv_timeout(HANG_GUARD).is_ok(),
        "after_func fired at the deadline, with the runtime that armed it gone"
    );
    assert_eq!(child.err(), Some(Error::DeadlineExceeded));
}

/// Polls `ctx.done()` once on a fresh current-thread runtime, optionally lets that runtime's
/// tasks run, then shuts the runtime down.
fn wait_once_then_shut_down(ctx: &Context, let_tasks_run: bool) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime builds");
    runtime.block_on(async {
        let mut done = Box::pin(ctx.done());
        assert!(futures::poll!(done.as_mut()).is_pending(), "open");
        if let_tasks_run {
            settle().await;
        }
    });
    drop(runtime);
}

/// Awaits `ctx.done()` on paused time and checks that it resolved at the deadline, not later
/// when something else happened to look at the context.
async fn assert_served_on_time(ctx: &Context) {
    let deadline = ctx.deadline().expect("has a deadline");
    let waited = tokio::time::timeout(Duration::from_secs(7200), ctx.done()).await;
    assert!(waited.is_ok(), "done() resolved");
    let late = Instant::now() - deadline;
    assert!(
        late <= Duration::from_millis(1),
        "done() resolved {late:?} after the deadline: no timer served it"
    );
    assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
}

#[tokio::test(start_paused = true)]
async fn a_deadline_left_by_a_shut_down_runtime_is_served_by_the_next_waiter() {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(3600));
    let probe = ctx.clone();
    std::thread::spawn(move || wait_once_then_shut_down(&probe, true))
        .join()
        .expect("the other runtime ran");
    assert_served_on_time(&ctx).await;
}

#[tokio::test(start_paused = true)]
async fn a_deadline_left_by_a_runtime_shut_down_before_its_timer_ran_is_served() {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(3600));
    let probe = ctx.clone();
    std::thread::spawn(move || wait_once_then_shut_down(&probe, false))
        .join()
        .expect("the other runtime ran");
    assert_served_on_time(&ctx).await;
}

#[test]
fn done_in_a_runtime_without_a_timer_resolves_at_the_deadline() {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(20));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime builds");
        runtime.block_on(ctx.done());
        let _ = tx.send(ctx.err());
    });
    let outcome = rx.recv_timeout(HANG_GUARD);
    assert_eq!(
        outcome,
        Ok(Some(Error::DeadlineExceeded)),
        "done() hung in a runtime without the time driver"
    );
}
