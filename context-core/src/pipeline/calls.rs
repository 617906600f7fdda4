//! One batch of a stage's calls, polled as one future.
//!
//! A worker takes a batch of items and calls the stage function on each, one after another.
//! Most calls of a busy pipeline are ready at once, so [`Calls`] makes and polls them in one
//! loop: per item, a look at the context, a lent handle to it (see `lease.rs`), the call and
//! its poll, with the lender entered once per poll of the batch rather than once per call.
//! Only a call that is pending is raced against the context, through the worker's [`Watch`],
//! which registers with it once for all of them.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::vec::Drain;

use pin_project_lite::pin_project;

use super::report::Tally;
use super::stage::Emit;
use crate::context::Context;
use crate::done::Watch;
use crate::lease::Lender;

/// How a batch of calls ended.
pub(crate) enum Outcome<E> {
    /// Every item was called, and every output emitted.
    Completed,
    /// The context ended first: the call in progress and the items after it were dropped.
    Stopped,
    /// A call failed with this error; the items after it were dropped.
    Failed(E),
}

/// What [`Calls`] works with, borrowed from its worker.
pub(crate) struct Batch<'w, T, U, F> {
    pub(crate) ctx: &'w Context,
    pub(crate) watch: &'w mut Watch,
    pub(crate) lender: &'w mut Lender,
    pub(crate) f: &'w F,
    pub(crate) items: Drain<'w, T>,
    pub(crate) out: &'w mut Vec<U>,
    pub(crate) tally: &'w mut Tally,
}

pin_project! {
    /// Calls the stage function on every item of a batch, in order, and emits each output:
    /// see the module's documentation.
    pub(crate) struct Calls<'w, T, U, F, Fut, K> {
        batch: Batch<'w, T, U, F>,
        // The call in progress, pending since an earlier poll.
        #[pin]
        call: Option<Fut>,
        kind: PhantomData<fn() -> K>,
    }

    impl<'w, T, U, F, Fut, K> PinnedDrop for Calls<'w, T, U, F, Fut, K> {
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

impl<'w, T, U, F, Fut, K> Calls<'w, T, U, F, Fut, K> {
    pub(crate) fn new(batch: Batch<'w, T, U, F>) -> Self {
        Calls {
            batch,
            call: None,
            kind: PhantomData,
        }
    }
}

impl<T, U, E, F, Fut, R, K> Future for Calls<'_, T, U, F, Fut, K>
where
    F: Fn(Context, T) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    K: Emit<R, U>,
{
    type Output = Outcome<E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Outcome<E>> {
        let this = self.project();
        let Batch {
            ctx,
            watch,
            lender,
            f,
            items,
            out,
            tally,
        } = this.batch;
        let mut call = this.call;
        let mut entered = lender.enter();
        // A call left pending is raced against the context, which is looked at first, as
        // `Context::run` does.
        if call.is_some() && ctx.is_done() {
            call.set(None);
            entered.settle();
            return Poll::Ready(Outcome::Stopped);
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
                call.set(Some(f(entered.lend(), item)));
            }
            let Some(pending) = call.as_mut().as_pin_mut() else {
                unreachable!("a call was just made");
            };
            let polled = pending.poll(cx);
            match polled {
                Poll::Ready(result) => {
                    call.set(None);
                    entered.settle();
                    match result {
                        Ok(output) => {
                            if !K::emit(output, out, tally, ctx) {
                                return Poll::Ready(Outcome::Stopped);
                            }
                        }
                        Err(err) => {
                            // An error returned once the run's context is done is the call
                            // noticing the cancellation (a `#[stage]` checkpoint ends with
                            // `Canceled`), not an error of its own.
                            if !ctx.is_done() {
                                tally.errors += 1;
                            }
                            return Poll::Ready(Outcome::Failed(err));
                        }
                    }
                }
                Poll::Pending => {
                    if watch.poll_error(cx).is_ready() {
                        // Done while the call was pending: it is dropped, not finished.
                        call.set(None);
                        entered.settle();
                        return Poll::Ready(Outcome::Stopped);
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}
