//! Lending a context to one call without touching its reference counts.
//!
//! A pipeline worker calls its stage function once per item with an owned [`Context`]. A clone
//! of the worker's context for each call costs two atomic read-modify-writes on its reference
//! counts (an increment and, when the call is over, a decrement): on a trivial stage that is
//! most of what the item costs. So the worker *lends* its context instead: the call gets a
//! bitwise copy of the worker's handle, marked with a [`Lease`], that owns no reference count.
//! The worker's own handle keeps the copy's pointers valid while the loan is out.
//!
//! Almost always the call drops the copy before it ends (the stage ignores its context, or
//! its future ends with it), on the thread that polls it: then giving the copy back is a
//! thread-local write. A copy that outlives the call (moved into a spawned task, a channel, a
//! struct) is settled with one compare-and-swap on each side.
//!
//! # Invariants
//!
//! 1. A [`Slot`] is *idle* (its state `LENT`, owned by its [`Lender`]) whenever no loan of it
//!    is out. A slot is lent to at most one handle at a time: a [`Loan`] borrows the lender
//!    mutably, and [`Context`]'s `Clone` makes an ordinary handle, never a second lent one.
//! 2. While a loan is out, the lender's context is alive: the [`Loan`] borrows the lender, and
//!    a loan is settled when the `Loan` is dropped (never forgotten: it is private to the
//!    crate), before the lender can be dropped or lend again.
//! 3. While a [`Loan`] polls or drops the call that holds the lent handle, the thread-local
//!    [`SCOPE`] names its slot. A lent handle dropped on that thread meanwhile gives itself back
//!    by setting the scope's flag: no other thread can see this handle any more, and the loan
//!    reads the flag before it is settled, on the same thread.
//! 4. A lent handle dropped anywhere else (another thread, or outside the call) gives itself
//!    back with `LENT → RETURNED`. A loan that was not given back through its scope settles
//!    with `LENT → ORPHANED`, after taking for the handle the reference counts it did not
//!    own. Exactly one of the two compare-and-swaps succeeds:
//!    - the handle's: the handle never touches the slot again, and the lender (whose failed
//!      CAS reads `RETURNED` with Acquire) puts back the counts it took and makes the slot
//!      idle again;
//!    - the lender's: the handle now owns the counts and the slot; its own CAS fails with
//!      `ORPHANED`, and it drops both. The lender takes a new slot.

use std::cell::Cell;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::task::{Context as TaskContext, Poll};

use pin_project_lite::pin_project;

use crate::context::Context;
use crate::loom::{AtomicU8, Ordering};

const LENT: u8 = 0;
const RETURNED: u8 = 1;
const ORPHANED: u8 = 2;

/// The state of one loan; see the module's invariants.
struct Slot {
    state: AtomicU8,
}

impl Slot {
    fn new() -> NonNull<Slot> {
        let slot = Box::new(Slot {
            state: AtomicU8::new(LENT),
        });
        NonNull::from(Box::leak(slot))
    }
}

/// The mark of a lent handle: the slot its loan is settled through.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lease(NonNull<Slot>);

// SAFETY: a `Lease` is only ever used by the `Drop` of the one handle that carries it (never
// through a shared reference), and a `Slot` is an atomic: giving back from any thread goes
// through the compare-and-swap of invariant #4.
unsafe impl Send for Lease {}
// SAFETY: as above; `&Lease` gives access to nothing.
unsafe impl Sync for Lease {}

/// The slot whose loan is being polled on this thread, and whether its handle came back.
type Scope = (*const Slot, bool);

#[cfg(not(loom))]
std::thread_local! {
    /// Invariant #3.
    static SCOPE: Cell<Scope> = const { Cell::new((ptr::null(), false)) };
}

#[cfg(loom)]
loom::thread_local! {
    static SCOPE: Cell<Scope> = Cell::new((ptr::null(), false));
}

impl Lease {
    /// Gives a lent handle back as it is dropped. `true` if the handle owns its reference
    /// counts after all (the loan was orphaned) and must drop them.
    #[inline]
    pub(crate) fn give_back(self) -> bool {
        let slot = self.0.as_ptr().cast_const();
        let in_scope = SCOPE.with(|scope| {
            let (current, _) = scope.get();
            if current == slot {
                scope.set((current, true));
            }
            current == slot
        });
        if in_scope {
            return false; // invariant #3
        }
        self.give_back_elsewhere()
    }

    /// [`give_back`](Self::give_back) outside the loan's scope: kept out of line, so that the
    /// common path stays a thread-local compare.
    #[inline(never)]
    fn give_back_elsewhere(self) -> bool {
        // SAFETY: the slot is alive: the lender frees it only once the loan is settled and
        // the handle gave it back (invariant #4), or the handle owns it (orphaned).
        let state = unsafe { &self.0.as_ref().state };
        // AcqRel: on success, orders this handle's last uses before the lender reads
        // RETURNED; on failure, Acquire pairs with the lender's Release in `settle`, so the
        // counts it took for this handle are visible before they are dropped.
        match state.compare_exchange(LENT, RETURNED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => false,
            Err(_) => {
                // ORPHANED: the slot is this handle's now (invariant #4).
                // SAFETY: made by `Box::leak` in `Slot::new`; the lender let go of it when it
                // orphaned the loan, and nobody else has it.
                drop(unsafe { Box::from_raw(self.0.as_ptr()) });
                true
            }
        }
    }
}

/// A worker's context, lent to its calls one at a time.
pub(crate) struct Lender {
    ctx: Context,
    /// Idle while no [`Loan`] is out (invariant #1); freed with the lender.
    slot: NonNull<Slot>,
}

// SAFETY: the slot is owned by the lender while idle, and touched only by atomics otherwise.
unsafe impl Send for Lender {}
// SAFETY: `&Lender` only reads `ctx`; lending takes `&mut`.
unsafe impl Sync for Lender {}

impl Lender {
    pub(crate) fn new(ctx: Context) -> Lender {
        Lender {
            ctx: ctx.owned(),
            slot: Slot::new(),
        }
    }

    /// Calls `f` with a loan of the context and returns its future, which settles the loan
    /// when it is dropped.
    #[inline]
    pub(crate) fn call<F, Fut>(&mut self, f: F) -> Loaned<'_, Fut>
    where
        F: FnOnce(Context) -> Fut,
    {
        let mut loan = Loan {
            lender: self,
            given_back: false,
        };
        let lent = loan.context();
        let future = loan.scope(|| f(lent));
        Loaned {
            loan,
            future: Some(future),
        }
    }

    /// A loan to drive by hand, for the loom models.
    #[cfg(all(test, loom))]
    pub(crate) fn lend(&mut self) -> Loan<'_> {
        Loan {
            lender: self,
            given_back: false,
        }
    }
}

impl Drop for Lender {
    fn drop(&mut self) {
        // SAFETY: idle (invariant #1): no loan is out, so nobody else refers to it.
        drop(unsafe { Box::from_raw(self.slot.as_ptr()) });
    }
}

/// One loan of a lender's context, settled when dropped (invariant #2).
pub(crate) struct Loan<'a> {
    lender: &'a mut Lender,
    given_back: bool,
}

impl Loan<'_> {
    /// The lent handle: the lender's context, owning no reference count.
    #[inline]
    pub(crate) fn context(&mut self) -> Context {
        // SAFETY: bitwise copies of the lender's handles, which stay alive until the loan is
        // settled (invariant #2). The copy drops them only if it was orphaned, after the lender
        // took a count of each for it (invariant #4).
        unsafe { self.lender.ctx.lent_copy(Lease(self.lender.slot)) }
    }

    /// Runs `f` with this loan's slot in the thread's scope (invariant #3).
    #[inline]
    pub(crate) fn scope<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let slot = self.lender.slot.as_ptr().cast_const();
        let previous = SCOPE.with(|scope| scope.replace((slot, false)));
        // Restores the scope even if `f` panics.
        struct Restore<'g> {
            previous: Scope,
            given_back: &'g mut bool,
        }
        impl Drop for Restore<'_> {
            #[inline]
            fn drop(&mut self) {
                let (_, back) = SCOPE.with(|scope| scope.replace(self.previous));
                *self.given_back |= back;
            }
        }
        let _restore = Restore {
            previous,
            given_back: &mut self.given_back,
        };
        f()
    }
}

impl Drop for Loan<'_> {
    #[inline]
    fn drop(&mut self) {
        if !self.given_back {
            self.settle_escaped();
        }
        // Otherwise the slot is still idle: nobody wrote to it.
    }
}

impl Loan<'_> {
    /// Settles a loan whose handle outlived the call (invariant #4). Kept out of line.
    #[inline(never)]
    fn settle_escaped(&mut self) {
        let lender = &mut *self.lender;
        // The lent handle outlived the call: take the counts it would own if orphaned.
        let counts = ManuallyDrop::new(lender.ctx.clone());
        // SAFETY: the slot is alive: only an orphaned handle frees it, and it is not orphaned.
        let state = unsafe { &lender.slot.as_ref().state };
        // AcqRel: Release publishes the counts taken above to the handle; Acquire pairs with
        // the handle's Release when it gave itself back first.
        match state.compare_exchange(LENT, ORPHANED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => lender.slot = Slot::new(), // the old slot and the counts are the handle's
            Err(_) => {
                // RETURNED: the handle is gone; put the counts back and make the slot idle.
                drop(ManuallyDrop::into_inner(counts));
                // Relaxed: the slot is the lender's alone again until it lends it, and handing
                // the next lent handle to anyone else synchronizes.
                state.store(LENT, Ordering::Relaxed);
            }
        }
    }
}

pin_project! {
    /// The future of one call made with a lent context: polls and drops it with the loan in
    /// scope, and settles the loan when it is dropped.
    pub(crate) struct Loaned<'a, F> {
        loan: Loan<'a>,
        #[pin]
        future: Option<F>,
    }

    impl<'a, F> PinnedDrop for Loaned<'a, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let mut future = this.future;
            if future.is_some() {
                // Dropped in scope: the call's own locals, the lent handle among them, give
                // themselves back.
                this.loan.scope(|| future.set(None));
            }
            // `loan` is dropped after this, which settles it.
        }
    }
}

impl<F: Future> Future for Loaned<'_, F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let mut future = this.future;
        this.loan.scope(|| {
            let Some(inner) = future.as_mut().as_pin_mut() else {
                return Poll::Pending; // never polled again after it was ready
            };
            let output = inner.poll(cx);
            if output.is_ready() {
                // In scope: an `async` block that ends drops its handle here anyway.
                future.set(None);
            }
            output
        })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Context as TaskContext, Poll, Waker};

    use super::Lender;
    use crate::Context;

    fn handles(ctx: &Context) -> usize {
        Arc::strong_count(&ctx.node)
    }

    fn poll<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut TaskContext::from_waker(Waker::noop()))
    }

    #[test]
    fn a_call_that_drops_its_context_takes_no_count() {
        let (ctx, _cancel) = Context::background().with_value(1u8).with_cancel();
        let mut lender = Lender::new(ctx.clone());
        let before = handles(&ctx);
        let slot = lender.slot;
        for n in 0..3 {
            // Dropped by the future as it ends, or by the closure.
            {
                let call = pin!(lender.call(|lent| {
                    assert_eq!(handles(&lent), before, "lent, not cloned");
                    async move { lent.value::<u8>().copied().unwrap_or(0) + n }
                }));
                assert_eq!(poll(call), Poll::Ready(1 + n));
            }
            let call = pin!(lender.call(|_lent| async move { n }));
            assert_eq!(poll(call), Poll::Ready(n));
        }
        assert_eq!(handles(&ctx), before);
        assert!(lender.slot == slot, "the same slot throughout");
    }

    #[test]
    fn a_context_that_outlives_its_call_owns_its_counts() {
        let (ctx, cancel) = Context::background().with_value(7u32).with_cancel();
        let mut lender = Lender::new(ctx.clone());
        let before = handles(&ctx);
        let mut kept = None;
        {
            let call = pin!(lender.call(|lent| {
                kept = Some(lent);
                async {}
            }));
            assert_eq!(poll(call), Poll::Ready(()));
        }
        // Settled: orphaned, so the kept handle now holds a count of its own.
        assert_eq!(handles(&ctx), before + 1);
        let kept = kept.unwrap();
        cancel.cancel();
        assert!(kept.is_done(), "still the same context");
        assert_eq!(kept.value::<u32>(), Some(&7));
        // Dropped on another thread, after the lender moved on to a new slot.
        {
            let call = pin!(lender.call(|_lent| async {}));
            assert_eq!(poll(call), Poll::Ready(()));
        }
        std::thread::spawn(move || drop(kept)).join().unwrap();
        assert_eq!(handles(&ctx), before);
    }

    #[test]
    fn a_context_given_back_from_another_thread_before_the_call_ends() {
        let (ctx, _cancel) = Context::background().with_cancel();
        let mut lender = Lender::new(ctx.clone());
        let before = handles(&ctx);
        let slot = lender.slot;
        {
            let mut call = pin!(lender.call(|lent| async move {
                std::thread::spawn(move || drop(lent)).join().unwrap();
            }));
            assert_eq!(poll(call.as_mut()), Poll::Ready(()));
        }
        assert_eq!(handles(&ctx), before);
        assert!(lender.slot == slot, "given back: the slot is idle again");
        let call = pin!(lender.call(|lent| async move { lent.is_done() }));
        assert_eq!(poll(call), Poll::Ready(false));
        assert_eq!(handles(&ctx), before);
    }

    #[test]
    fn a_clone_of_a_lent_context_is_an_ordinary_one() {
        let (ctx, cancel) = Context::background().with_cancel();
        let mut lender = Lender::new(ctx.clone());
        let before = handles(&ctx);
        let clone = {
            let call = pin!(lender.call(|lent| async move { lent.clone() }));
            match poll(call) {
                Poll::Ready(clone) => clone,
                Poll::Pending => unreachable!(),
            }
        };
        assert_eq!(handles(&ctx), before + 1, "the clone's own count");
        drop(lender);
        cancel.cancel();
        assert!(clone.is_done());
        drop(clone);
        assert_eq!(handles(&ctx), before - 1, "the lender's is gone too");
    }

    #[test]
    fn a_call_dropped_while_pending_gives_its_context_back() {
        let (ctx, _cancel) = Context::background().with_cancel();
        let mut lender = Lender::new(ctx.clone());
        let before = handles(&ctx);
        {
            let mut call = pin!(lender.call(|lent| async move {
                std::future::pending::<()>().await;
                drop(lent);
            }));
            assert!(poll(call.as_mut()).is_pending());
        }
        assert_eq!(handles(&ctx), before);
    }

    #[test]
    fn a_panicking_call_leaves_the_scope_as_it_was() {
        let (ctx, _cancel) = Context::background().with_cancel();
        let mut lender = Lender::new(ctx.clone());
        let before = handles(&ctx);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let call = pin!(lender.call(|lent| async move {
                let _held = lent;
                panic!("in the call");
            }));
            let _ = poll(call);
        }));
        assert!(caught.is_err());
        assert_eq!(handles(&ctx), before);
        super::SCOPE.with(|scope| assert!(scope.get().0.is_null(), "no scope left behind"));
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use std::sync::Arc;

    use super::Lender;
    use crate::loom::thread;
    use crate::Context;

    /// A lent context moved to another thread and dropped there, while the lender settles the
    /// loan: whichever compare-and-swap wins, every count is dropped exactly once.
    #[test]
    fn a_lent_context_dropped_elsewhere_races_the_settle() {
        loom::model(|| {
            let (ctx, _cancel) = Context::background().with_value(3u8).with_cancel();
            let before = Arc::strong_count(&ctx.node);
            let mut lender = Lender::new(ctx.clone());
            {
                let mut loan = lender.lend();
                let lent = loan.context();
                let other = thread::spawn(move || {
                    assert_eq!(lent.value::<u8>(), Some(&3));
                    drop(lent);
                });
                drop(loan); // settles, racing the drop
                other.join().unwrap();
            }
            // Lending again works whichever way the race went.
            let mut loan = lender.lend();
            let lent = loan.context();
            loan.scope(|| drop(lent));
            drop(loan);
            drop(lender);
            assert_eq!(Arc::strong_count(&ctx.node), before);
        });
    }

    /// The same, with a clone made on the other thread outliving the lent handle.
    #[test]
    fn a_clone_made_elsewhere_outlives_the_loan() {
        loom::model(|| {
            let (ctx, _cancel) = Context::background().with_cancel();
            let before = Arc::strong_count(&ctx.node);
            let mut lender = Lender::new(ctx.clone());
            let clone = {
                let mut loan = lender.lend();
                let lent = loan.context();
                let other = thread::spawn(move || lent.clone());
                drop(loan);
                other.join().unwrap()
            };
            drop(lender);
            assert_eq!(Arc::strong_count(&ctx.node), before + 1, "the clone's own");
            drop(clone);
            assert_eq!(Arc::strong_count(&ctx.node), before);
        });
    }
}
