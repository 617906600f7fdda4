//! The shared timer forgets deadlines that no longer matter: many requests with long timeouts
//! that finish early do not keep their entries (or the timer task) until those deadlines.
//!
//! In its own test binary: the clean-up threshold counts entries process-wide.

use std::future::Future;
use std::pin::pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use ctxpipe::{Context, Error};

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Polls `ctx.done()` once, which hands its deadline to the shared timer.
fn arm(ctx: &Context) {
    let mut done = pin!(ctx.done());
    let waker = futures::task::noop_waker();
    let mut cx = TaskContext::from_waker(&waker);
    assert_eq!(done.as_mut().poll(&mut cx), Poll::Pending);
}

#[tokio::test(start_paused = true)]
async fn cancelled_requests_do_not_keep_the_timer_busy_until_their_deadlines() {
    let baseline = alive_tasks();
    let requests: Vec<_> = (0..1_000)
        .map(|_| Context::background().with_timeout(Duration::from_secs(30)))
        .collect();
    for (ctx, _) in &requests {
        arm(ctx);
    }
    assert_eq!(
        alive_tasks(),
        baseline + 1,
        "one timer task serves them all"
    );

    // Every request finishes early.
    for (_, cancel) in &requests {
        cancel.cancel();
    }
    drop(requests);

    // The next deadline someone waits for is short; once it is served nothing is left.
    let (short, _cancel) = Context::background().with_timeout(Duration::from_millis(10));
    short.done().await;
    assert_eq!(short.err(), Some(Error::DeadlineExceeded));
    for _ in 0..32 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        alive_tasks(),
        baseline,
        "the timer task ended instead of sleeping until the cancelled deadlines"
    );
}

/// Lets the timer task look at its entries (it does once a second) and end if it may.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(1)).await;
    for _ in 0..32 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn the_timer_task_ends_with_the_last_request_waiting_on_a_deadline() {
    let baseline = alive_tasks();
    for finish in ["dropped", "cancelled"] {
        let (ctx, cancel) = Context::background().with_timeout(Duration::from_secs(3600));
        // A call that waits (so the deadline is armed) and finishes long before it.
        let ran = ctx.run(tokio::time::sleep(Duration::from_millis(1))).await;
        assert_eq!(ran, Ok(()));
        assert_eq!(
            alive_tasks(),
            baseline + 1,
            "{finish}: the timer holds the hour"
        );
        if finish == "cancelled" {
            cancel.cancel();
            settle().await;
            assert_eq!(
                alive_tasks(),
                baseline,
                "{finish}: no task sleeps until the deadline of a context that is done"
            );
        }
        drop((ctx, cancel));
        settle().await;
        assert_eq!(
            alive_tasks(),
            baseline,
            "{finish}: no task sleeps until the deadline of a context that is gone"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_later_deadline_is_still_served_when_the_earliest_is_forgotten() {
    let (early, early_cancel) = Context::background().with_timeout(Duration::from_secs(5));
    let (late, _late_cancel) = Context::background().with_timeout(Duration::from_secs(10));
    arm(&early);
    arm(&late);
    drop((early, early_cancel));
    settle().await;

    // Nothing but the timer can end `late`: only `done()` looks at it, and only when woken.
    late.done().await;
    assert_eq!(late.err(), Some(Error::DeadlineExceeded));
    assert_eq!(Some(tokio::time::Instant::now()), late.deadline());
}
