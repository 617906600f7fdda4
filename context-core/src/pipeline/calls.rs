//! One batch of a stage's calls, polled as one future.
//!
//! A worker takes a batch of items and calls the stage function on each, one after another.
//! Most calls of a busy pipeline are ready at once, so [`Calls`] makes and polls them in one
//! loop: per item, a look at the context, a lent handle to it (see `lease.rs`), the call and
//! its poll, with the lender entered once per poll of the batch rather than once per call.
//! Only a call that is pending is raced against the context, through the worker's [`Watch`],
//! which registers with it once for all of them.
//!
//! A failed call goes to the stage's [`Policy`]: it is retried after a backoff (a wait raced
//! against the context, like any other), or the item is skipped, or the batch fails. What a
//! stage does not use costs nothing on the path of an item that goes through: retries are
//! compiled out for a stage that cannot retry ([`RetryPolicy::RETRIES`]) and the timeout for
//! a stage without one ([`Timing`]).

use std::borrow::Cow;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;
use std::vec::Drain;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::dead_letter::Letter;
use super::policy::{Backoff, DeadLetterSink, ItemError, Location, OnError, RetryPolicy, Timing};
use super::report::Tally;
use super::stage::Emit;
use crate::context::Context;
use crate::done::Watch;
use crate::error::Error;
use crate::lease::Lender;

/// How a batch of calls ended.
pub(crate) enum Outcome<E> {
    /// Every item was called, and every output emitted (or the item skipped).
    Completed,
    /// The context ended first: the call in progress and the items after it were dropped.
    Stopped,
    /// A call failed with this error; the items after it were dropped. The location is that
    /// of an item error; there is none for an error returned once the run was stopping.
    Failed(E, Option<(u64, u32)>),
}

/// What a stage does about failed calls: see [`StageOptions`](super::StageOptions).
pub(crate) struct Policy<P, D> {
    pub(crate) on_error: OnError,
    pub(crate) timeout: Option<Duration>,
    pub(crate) attempts: u32,
    pub(crate) backoff: Backoff,
    pub(crate) retry: P,
    /// The stage's kind of dead-letter sink; the sink itself runs on a task of its own.
    pub(crate) dead_letter: PhantomData<fn() -> D>,
}

impl<P, D> Policy<P, D> {
    /// A copy of `item` for after attempt `number`: for the next attempt, or for the
    /// dead-letter sink after the last.
    #[inline]
    fn keep<T, E>(&self, item: &T, number: u32) -> Option<T>
    where
        P: RetryPolicy<T, E>,
        D: DeadLetterSink<T, E>,
    {
        if P::RETRIES && number < self.attempts {
            self.retry.keep(item)
        } else {
            D::keep(item)
        }
    }
}

/// What [`Calls`] works with, borrowed from its worker.
pub(crate) struct Batch<'w, T, U, E, F, P, D> {
    pub(crate) ctx: &'w Context,
    pub(crate) watch: &'w mut Watch,
    pub(crate) lender: &'w mut Lender,
    pub(crate) f: &'w F,
    pub(crate) policy: &'w Policy<P, D>,
    /// The stage's name, for the errors handed to a dead-letter sink.
    pub(crate) stage: &'w Cow<'static, str>,
    /// The number of the batch's first item among the stage's inputs.
    pub(crate) first: u64,
    /// When the worker took the batch.
    pub(crate) started: Instant,
    pub(crate) items: Drain<'w, T>,
    pub(crate) out: &'w mut Vec<U>,
    /// Failed items for the dead-letter sink, which the worker sends on with the batch.
    pub(crate) dead: &'w mut Vec<Letter<T, E>>,
    pub(crate) tally: &'w mut Tally,
}

/// The item in hand between its attempts. Only a stage with retries, a dead-letter sink or a
/// timeout uses it. `number` and `kept` live in locals of a poll, and are stored here only
/// while a call or a wait is pending.
struct Attempt<T> {
    /// The attempt in progress or next, from 1.
    number: u32,
    /// A copy of the item for the next attempt or the dead-letter sink, if the stage has one.
    kept: Option<T>,
    /// When the attempt in progress started, if it is not the item's first (set under a
    /// deadline only: nothing else reads it).
    started: Option<Instant>,
    /// The end of the attempt in progress, with a timeout.
    deadline: Option<Instant>,
    /// The timer is a wait between attempts (else the attempt's deadline, if any).
    backing_off: bool,
}

pin_project! {
    /// Calls the stage function on every item of a batch, in order, and emits each output:
    /// see the module's documentation.
    pub(crate) struct Calls<'w, T, U, E, F, Fut, K, P, D, Tm> {
        batch: Batch<'w, T, U, E, F, P, D>,
        // The call in progress, pending since an earlier poll.
        #[pin]
        call: Option<Fut>,
        attempt: Attempt<T>,
        // The deadline of the call in progress, or the end of a wait between attempts.
        #[pin]
        timer: Option<Sleep>,
        inputs: usize,
        kind: PhantomData<fn() -> (K, Tm)>,
    }

    impl<'w, T, U, E, F, Fut, K, P, D, Tm> PinnedDrop for Calls<'w, T, U, E, F, Fut, K, P, D, Tm> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let mut call = this.call;
            if call.is_some() {
                // Dropped with the lender entered, so that a lent handle in it gives itself
                // back; then the loan is settled.
                let mut entered = this.batch.lender.enter();
                call.set(None);
                entered.settle();
            }
        }
    }
}

impl<'w, T, U, E, F, Fut, K, P, D, Tm> Calls<'w, T, U, E, F, Fut, K, P, D, Tm> {
    pub(crate) fn new(batch: Batch<'w, T, U, E, F, P, D>) -> Self {
        Calls {
            inputs: batch.items.len(),
            batch,
            call: None,
            attempt: Attempt {
                number: 1,
                kept: None,
                started: None,
                deadline: None,
                backing_off: false,
            },
            timer: None,
            kind: PhantomData,
        }
    }
}

impl<T, U, E, F, Fut, R, K, P, D, Tm> Future for Calls<'_, T, U, E, F, Fut, K, P, D, Tm>
where
    F: Fn(Context, T) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    E: From<Error>,
    K: Emit<R, U>,
    P: RetryPolicy<T, E>,
    D: DeadLetterSink<T, E>,
    Tm: Timing,
{
    type Output = Outcome<E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Outcome<E>> {
        let this = self.project();
        let Batch {
            ctx,
            watch,
            lender,
            f,
            policy,
            stage,
            first,
            started,
            items,
            out,
            dead,
            tally,
        } = this.batch;
        let attempt = this.attempt;
        let mut call = this.call;
        let mut timer = this.timer;
        // Known to be `None` when the stage has no timeout, so that its code compiles away.
        let timeout = if Tm::TIMED { policy.timeout } else { None };
        // The attempt's number and the copy of its item, in locals while the batch goes
        // through at once: kept in `attempt` only while a call or a wait is pending.
        let mut number = attempt.number;
        let mut kept = attempt.kept.take();
        macro_rules! pending {
            () => {{
                attempt.number = number;
                attempt.kept = kept;
                return Poll::Pending;
            }};
        }
        let mut entered = lender.enter();
        // A call left pending is raced against the context, which is looked at first, as
        // `Context::run` does.
        if call.is_some() && ctx.is_done() {
            call.set(None);
            entered.settle();
            return Poll::Ready(Outcome::Stopped);
        }
        // Makes the call of the attempt in hand on `item`.
        macro_rules! start {
            ($item:expr) => {{
                let item = $item;
                match timeout {
                    None => call.set(Some(f(entered.lend(), item))),
                    Some(limit) => {
                        let (limited, _) = ctx.with_timeout(limit);
                        attempt.deadline = limited.deadline();
                        timer.set(attempt.deadline.map(tokio::time::sleep_until));
                        call.set(Some(f(limited, item)));
                    }
                }
            }};
        }
        // Entered on each poll and after each failed attempt that is retried, so that the
        // path of an item that goes through at once looks at no retry state.
        'attempts: loop {
            if P::RETRIES && attempt.backing_off {
                // Waiting to retry: a checkpoint, like any other wait of the worker.
                if let Some(wait) = timer.as_mut().as_pin_mut() {
                    if wait.poll(cx).is_pending() {
                        if watch.poll_error(cx).is_ready() {
                            return Poll::Ready(Outcome::Stopped);
                        }
                        pending!();
                    }
                }
                timer.set(None);
                attempt.backing_off = false;
                if ctx.is_done() {
                    return Poll::Ready(Outcome::Stopped);
                }
                let Some(item) = kept.take() else {
                    unreachable!("an item is retried only if a copy was kept");
                };
                kept = policy.keep(&item, number);
                // Only a deadline needs the estimate of an attempt's length, and only without
                // a timeout.
                if timeout.is_none() && ctx.deadline().is_some() {
                    attempt.started = Some(Instant::now());
                }
                start!(item);
            }
            loop {
                if call.is_none() {
                    let Some(item) = items.next() else {
                        return Poll::Ready(Outcome::Completed);
                    };
                    // The checkpoint: one atomic load while the pipeline runs (and a read of the
                    // clock under a deadline); a done context drops the item (and the rest of the
                    // batch) without calling the stage.
                    if ctx.is_done() {
                        return Poll::Ready(Outcome::Stopped);
                    }
                    tally.items_in += 1;
                    if P::RETRIES || D::SINKS {
                        // A copy for the next attempt, whose number `retry_wait` checks, or for
                        // the dead-letter sink.
                        number = 1;
                        kept = policy.keep(&item, number);
                    }
                    start!(item);
                }
                let Some(pending) = call.as_mut().as_pin_mut() else {
                    unreachable!("a call was just made");
                };
                let (err, timed_out) = match pending.poll(cx) {
                    Poll::Ready(Ok(output)) => {
                        call.set(None);
                        entered.settle();
                        if timeout.is_some() {
                            attempt.deadline = None;
                            timer.set(None);
                        }
                        if !K::emit(output, out, tally, ctx) {
                            return Poll::Ready(Outcome::Stopped);
                        }
                        continue;
                    }
                    Poll::Ready(Err(err)) => {
                        call.set(None);
                        entered.settle();
                        let timed_out =
                            Tm::TIMED && attempt.deadline.is_some_and(|end| Instant::now() >= end);
                        (err, timed_out)
                    }
                    Poll::Pending => {
                        if watch.poll_error(cx).is_ready() {
                            // Done while the call was pending: it is dropped, not finished.
                            call.set(None);
                            entered.settle();
                            return Poll::Ready(Outcome::Stopped);
                        }
                        let expired = match timer.as_mut().as_pin_mut() {
                            Some(end) if Tm::TIMED => end.poll(cx).is_ready(),
                            _ => false,
                        };
                        if !expired {
                            pending!();
                        }
                        // Out of time: the call is dropped, and the item fails.
                        call.set(None);
                        entered.settle();
                        (E::from(Error::DeadlineExceeded), true)
                    }
                };
                // (Only a stage with a timeout or retries ever sets the timer.)
                if Tm::TIMED || P::RETRIES {
                    attempt.deadline = None;
                    timer.set(None);
                }
                let failed = Failed {
                    index: *first + (*this.inputs - items.len() - 1) as u64,
                    number,
                    kept: kept.take(),
                    since: match attempt.started {
                        Some(retried) if number > 1 => retried,
                        // A first attempt started at most when its batch did; batches are
                        // sized to about 50 µs of work, so this overestimates by no more.
                        _ => *started,
                    },
                    err,
                    timed_out,
                };
                match after_failure(policy, ctx, stage, failed, tally, dead) {
                    AfterFailure::Next => {}
                    AfterFailure::Retry(wait, item) => {
                        kept = Some(item);
                        number += 1;
                        attempt.backing_off = true;
                        timer.set(Some(tokio::time::sleep(wait)));
                        continue 'attempts;
                    }
                    AfterFailure::Stop(outcome) => return Poll::Ready(outcome),
                }
            }
        }
    }
}

/// An attempt that failed.
struct Failed<T, E> {
    /// The item's number among the stage's inputs.
    index: u64,
    /// The attempt's number, from 1.
    number: u32,
    /// The copy of the item kept for another attempt or the dead-letter sink, if any.
    kept: Option<T>,
    /// When the attempt started, or about.
    since: Instant,
    err: E,
    /// It ran out of the stage's timeout.
    timed_out: bool,
}

/// What follows a failed attempt.
enum AfterFailure<T, E> {
    /// The next item: this one was skipped or handed to the dead-letter sink.
    Next,
    /// Another attempt on the item, after the wait.
    Retry(Duration, T),
    /// The batch ends.
    Stop(Outcome<E>),
}

/// Applies the stage's policy to a failed attempt. Out of line: the loop of calls that go
/// through stays small, and a stage that never fails never runs it.
#[cold]
#[inline(never)]
#[allow(clippy::ptr_arg)] // `&Cow`: cloned, a borrowed name stays borrowed
fn after_failure<T, E, P, D>(
    policy: &Policy<P, D>,
    ctx: &Context,
    stage: &Cow<'static, str>,
    failed: Failed<T, E>,
    tally: &mut Tally,
    dead: &mut Vec<Letter<T, E>>,
) -> AfterFailure<T, E>
where
    P: RetryPolicy<T, E>,
    D: DeadLetterSink<T, E>,
{
    let Failed {
        index,
        number,
        kept,
        since,
        err,
        timed_out,
    } = failed;
    // An error returned once the run's context is done is the call noticing the cancellation
    // (a `#[stage]` checkpoint ends with `Canceled`), not an error of its own.
    if ctx.is_done() {
        return AfterFailure::Stop(Outcome::Failed(err, None));
    }
    tally.timed_out += u64::from(timed_out);
    if let Some(item) = kept {
        if let Some(wait) = retry_wait(policy, ctx, index, number, &err, timed_out, since) {
            tally.retried += 1;
            return AfterFailure::Retry(wait, item);
        }
        tally.errors += 1;
        if D::SINKS {
            let at = Location::new(stage.clone(), index, number, policy.attempts);
            dead.push((item, ItemError::new(at, err)));
            return AfterFailure::Next;
        }
    } else {
        tally.errors += 1;
    }
    match policy.on_error {
        OnError::Fail => AfterFailure::Stop(Outcome::Failed(err, Some((index, number)))),
        OnError::Skip => {
            tally.skipped += 1;
            AfterFailure::Next
        }
    }
}

/// The wait before attempt `number + 1` on the item numbered `index` (whose attempt `number`,
/// begun at `since`, failed with `err`), if it gets one: attempts are left, the error may be
/// retried, and the wait and one more attempt fit before the context's deadline.
fn retry_wait<T, E, P: RetryPolicy<T, E>, D>(
    policy: &Policy<P, D>,
    ctx: &Context,
    index: u64,
    number: u32,
    err: &E,
    timed_out: bool,
    since: Instant,
) -> Option<Duration> {
    if number >= policy.attempts || !(timed_out || policy.retry.retryable(err)) {
        return None;
    }
    let wait = policy.backoff.wait(index, number);
    if let Some(deadline) = ctx.deadline() {
        let now = Instant::now();
        let one_more = policy.timeout.unwrap_or(now - since);
        let fits = now
            .checked_add(wait)
            .and_then(|then| then.checked_add(one_more))
            .is_some_and(|end| end <= deadline);
        if !fits {
            return None;
        }
    }
    Some(wait)
}
