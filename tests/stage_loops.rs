//! `#[stage(loops)]`: a stage that computes without awaiting still stops at the next loop
//! iteration once its context is done.

use std::sync::atomic::{AtomicU32, Ordering};

use ctxpipe::{stage, CancelHandle, Context, Error};

/// Sums `0..n` in a loop that never awaits, cancelling its own context after `stop_at` rounds.
#[stage(loops)]
async fn sum(
    n: u64,
    stop_at: u64,
    cancel: &CancelHandle,
    rounds: &AtomicU32,
) -> Result<u64, Error> {
    let mut total = 0;
    for i in 0..n {
        if i == stop_at {
            cancel.cancel();
        }
        rounds.fetch_add(1, Ordering::Relaxed);
        total += i;
    }
    Ok(total)
}

#[stage(loops)]
async fn spin(rounds: &AtomicU32) -> Result<(), Error> {
    let mut i = 0u32;
    loop {
        i += 1;
        rounds.fetch_add(1, Ordering::Relaxed);
        while i % 7 != 0 {
            i += 1;
        }
        if i > 1_000_000 {
            return Ok(());
        }
    }
}

#[stage]
async fn unchecked(n: u64, cancel: &CancelHandle, rounds: &AtomicU32) -> Result<u64, Error> {
    let mut total = 0;
    for i in 0..n {
        if i == 3 {
            cancel.cancel();
        }
        rounds.fetch_add(1, Ordering::Relaxed);
        total += i;
    }
    Ok(total)
}

#[tokio::test]
async fn a_loop_stops_at_the_iteration_after_the_cancel() {
    let (ctx, cancel) = Context::background().with_cancel();
    let rounds = AtomicU32::new(0);
    assert_eq!(
        sum(&ctx, 1_000, 10, &cancel, &rounds).await,
        Err(Error::Canceled)
    );
    // Rounds 0..=10 ran; the check at the head of round 11 stopped it.
    assert_eq!(rounds.load(Ordering::Relaxed), 11);

    let (ctx, _cancel) = Context::background().with_cancel();
    let rounds = AtomicU32::new(0);
    let (_, never) = Context::background().with_cancel();
    assert_eq!(sum(&ctx, 100, u64::MAX, &never, &rounds).await, Ok(4950));
    assert_eq!(rounds.load(Ordering::Relaxed), 100);
}

#[tokio::test]
async fn a_done_context_stops_every_kind_of_loop_before_its_first_round() {
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    let rounds = AtomicU32::new(0);
    assert_eq!(spin(&ctx, &rounds).await, Err(Error::Canceled));
    assert_eq!(rounds.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn without_loops_the_loop_runs_to_its_end() {
    let (ctx, cancel) = Context::background().with_cancel();
    let rounds = AtomicU32::new(0);
    assert_eq!(unchecked(&ctx, 100, &cancel, &rounds).await, Ok(4950));
    assert_eq!(rounds.load(Ordering::Relaxed), 100);
}
