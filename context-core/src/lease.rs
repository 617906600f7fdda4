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
//!    is out. A slot is lent to at most one handle at a time: a new loan settles the last one
//!    first, and [`Context`]'s `Clone` makes an ordinary handle, never a second lent one.
//! 2. While a loan is out, the lender's context is alive: the lender settles the loan before
//!    it lends again, and at the latest when it is dropped.
//! 3. While the call that holds the lent handle is polled or dropped, the lender is
//!    [entered](Lender::enter): the thread-local [`SCOPE`] names its slot. A lent handle
//!    dropped on that thread meanwhile gives itself back by setting the scope's flag: no other
//!    thread can see this handle any more, and the lender reads the flag (keeping it across
//!    scopes) before it settles, on the same thread.
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
use std::mem::ManuallyDrop;
use std::ptr::{self, NonNull};

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
    /// Idle while no loan is out (invariant #1); freed with the lender.
    slot: NonNull<Slot>,
    /// A loan is out: lent, and not yet settled.
    out: bool,
    /// The loan's handle gave itself back in an earlier scope (invariant #3).
    given_back: bool,
}

// SAFETY: the slot is owned by the lender while idle, and touched only by atomics otherwise.
unsafe impl Send for Lender {}
// SAFETY: `&Lender` gives access to nothing; lending takes `&mut`.
unsafe impl Sync for Lender {}

impl Lender {
    pub(crate) fn new(ctx: Context) -> Lender {
        Lender {
            ctx: ctx.owned(),
            slot: Slot::new(),
            out: false,
            given_back: false,
        }
    }

    /// Puts this lender's slot in the thread's scope until the guard is dropped: the calls
    /// holding its loans are polled and dropped meanwhile (invariant #3).
    #[inline]
    pub(crate) fn enter(&mut self) -> Entered<'_> {
        let slot = self.slot.as_ptr().cast_const();
        let previous = SCOPE.with(|scope| scope.replace((slot, false)));
        Entered {
            lender: self,
            previous,
        }
    }

    /// Settles a loan whose handle outlived its call (invariant #4). Kept out of line.
    #[inline(never)]
    fn settle_escaped(&mut self) {
        // Take the counts the handle will own if it is orphaned.
        let counts = ManuallyDrop::new(self.ctx.clone());
        // SAFETY: the slot is alive: only an orphaned handle frees it, and it is not orphaned.
        let state = unsafe { &self.slot.as_ref().state };
        // AcqRel: Release publishes the counts taken above to the handle; Acquire pairs with
        // the handle's Release when it gave itself back first.
        match state.compare_exchange(LENT, ORPHANED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => self.slot = Slot::new(), // the old slot and the counts are the handle's
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

impl Drop for Lender {
    fn drop(&mut self) {
        if self.out && !self.given_back {
            // The call that held the loan was never settled (its future was leaked): the
            // handle may still be alive, so it gets counts of its own.
            self.settle_escaped();
        }
        // SAFETY: idle (invariant #1): no loan is out, so nobody else refers to it.
        drop(unsafe { Box::from_raw(self.slot.as_ptr()) });
    }
}

/// A lender whose slot is in the thread's scope (invariant #3); restores the scope it found
/// when dropped.
pub(crate) struct Entered<'a> {
    lender: &'a mut Lender,
    previous: Scope,
}

impl Entered<'_> {
    /// Lends the context for one call: a handle that owns no reference count. Settle the loan
    /// once the call (every future and closure that held the handle) is gone.
    #[inline]
    pub(crate) fn lend(&mut self) -> Context {
        if self.lender.out {
            self.settle();
        }
        let slot = self.lender.slot;
        SCOPE.with(|scope| scope.set((slot.as_ptr().cast_const(), false)));
        self.lender.out = true;
        self.lender.given_back = false;
        // SAFETY: bitwise copies of the lender's handles, which stay alive until the loan is
        // settled: by `settle`, or by the lender's `Drop`. The copy drops them only if it was
        // orphaned, after the lender took a count of each for it (invariant #4).
        unsafe { self.lender.ctx.lent_copy(Lease(slot)) }
    }

    /// Settles the loan, if one is out: the call that held the lent handle is gone.
    #[inline]
    pub(crate) fn settle(&mut self) {
        if !self.lender.out {
            return;
        }
        self.lender.out = false;
        let given_back = self.lender.given_back || SCOPE.with(|scope| scope.get().1);
        if !given_back {
            self.lender.settle_escaped();
            let slot = self.lender.slot.as_ptr().cast_const();
            SCOPE.with(|scope| scope.set((slot, false)));
        }
    }
}

impl Drop for Entered<'_> {
    #[inline]
    fn drop(&mut self) {
        let (_, given_back) = SCOPE.with(|scope| scope.replace(self.previous));
        self.lender.given_back |= given_back;
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::future::Future;
    use std::sync::Arc;
    use std::task::{Context as TaskContext, Poll, Waker};

    use super::Lender;
    use crate::Context;

    fn handles(ctx: &Context) -> usize {
        Arc::strong_count(&ctx.node)
    }

    /// One call as a worker makes it: lent, polled once, then dropped and settled, all with
    /// the lender entered.
    fn call<Fut: Future>(lender: &mut Lender, f: impl FnOnce(Context) -> Fut) -> Poll<Fut::Output> {
        let mut entered = lender.enter();
        let mut future = Box::pin(f(entered.lend()));
        let polled = future
            .as_mut()
            .poll(&mut TaskContext::from_waker(Waker::noop()));
        drop(future);
        entered.settle();
        polled
    }

    #[test]
    fn a_call_that_drops_its_context_takes_no_count() {
        let (ctx, _cancel) = Context::background().with_value(1u8).with_cancel();
        let mut lender = Lender::new(ctx.clone());
        let before = handles(&ctx);
        let slot = lender.slot;
        for n in 0..3 {
            // Dropped by the future as it ends, or by the closure.
            let polled = call(&mut lender, |lent| {
                assert_eq!(handles(&lent), before, "lent, not cloned");
                async move { lent.value::<u8>().copied().unwrap_or(0) + n }
            });
            assert_eq!(polled, Poll::Ready(1 + n));
            assert_eq!(call(&mut lender, |_lent| async move { n }), Poll::Ready(n));
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
        let polled = call(&mut lender, |lent| {
            kept = Some(lent);
            async {}
        });
        assert_eq!(polled, Poll::Ready(()));
        // Settled: orphaned, so the kept handle now holds a count of its own.
        assert_eq!(handles(&ctx), before + 1);
        let kept = kept.unwrap();
        cancel.cancel();
        assert!(kept.is_done(), "still the same context");
        assert_eq!(kept.value::<u32>(), Some(&7));
        // Dropped on another thread, after the lender moved on to a new slot.
        assert_eq!(call(&mut lender, |_lent| async {}), Poll::Ready(()));
        std::thread::spawn(move || drop(kept)).join().unwrap();
        assert_eq!(handles(&ctx), before);
    }

    #[test]
    fn a_context_given_back_from_another_thread_before_the_call_ends() {
        let (ctx, _cancel) = Context::background().with_cancel();
        let mut lender = Lender::new(ctx.clone());
        let before = handles(&ctx);
        let slot = lender.slot;
        let polled = call(&mut lender, |lent| async move {
            std::thread::spawn(move || drop(lent)).join().unwrap();
        });
        assert_eq!(polled, Poll::Ready(()));
        assert_eq!(handles(&ctx), before);
        assert!(lender.slot == slot, "given back: the slot is idle again");
        let polled = call(&mut lender, |lent| async move { lent.is_done() });
        assert_eq!(polled, Poll::Ready(false));
        assert_eq!(handles(&ctx), before);
    }

    #[test]
    fn a_clone_of_a_lent_context_is_an_ordinary_one() {
        let (ctx, cancel) = Context::background().with_cancel();
        let mut lender = Lender::new(ctx.clone());
        let before = handles(&ctx);
        let Poll::Ready(clone) = call(&mut lender, |lent| async move { lent.clone() }) else {
            panic!("ready at once");
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
        let polled = call(&mut lender, |lent| async move {
            std::future::pending::<()>().await;
            drop(lent);
        });
        assert!(polled.is_pending());
        assert_eq!(handles(&ctx), before);
    }

    #[test]
    fn a_handle_given_back_in_an_earlier_scope_stays_given_back() {
        let (ctx, _cancel) = Context::background().with_cancel();
        let mut lender = Lender::new(ctx.clone());
        let before = handles(&ctx);
        let slot = lender.slot;
        let lent = lender.enter().lend();
        lender.enter().scope_drop(lent);
        // A later scope, then the settle: nothing escaped, so nothing is orphaned.
        lender.enter().settle();
        assert!(lender.slot == slot);
        assert_eq!(handles(&ctx), before);
    }

    #[test]
    fn a_lender_dropped_with_a_loan_out_orphans_it() {
        let (ctx, _cancel) = Context::background().with_cancel();
        let mut lender = Lender::new(ctx.clone());
        let before = handles(&ctx);
        let lent = lender.enter().lend();
        drop(lender);
        assert_eq!(
            handles(&ctx),
            before,
            "the lender's count went to the lent handle"
        );
        assert!(!lent.is_done());
        drop(lent);
        assert_eq!(handles(&ctx), before - 1);
    }

    #[test]
    fn a_panicking_call_leaves_the_scope_as_it_was() {
        let (ctx, _cancel) = Context::background().with_cancel();
        let mut lender = Lender::new(ctx.clone());
        let before = handles(&ctx);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            call(&mut lender, |lent| async move {
                let _held = lent;
                panic!("in the call");
            })
        }));
        assert!(caught.is_err());
        drop(lender);
        assert_eq!(handles(&ctx), before - 1);
        super::SCOPE.with(|scope| assert!(scope.get().0.is_null(), "no scope left behind"));
    }

    impl super::Entered<'_> {
        /// Drops `value` with the lender entered, as a call's future would.
        fn scope_drop<T>(self, value: T) {
            drop(value);
        }
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
            let lent = lender.enter().lend();
            let other = thread::spawn(move || {
                assert_eq!(lent.value::<u8>(), Some(&3));
                drop(lent);
            });
            lender.enter().settle(); // races the drop
            other.join().unwrap();
            // Lending again works whichever way the race went.
            let mut entered = lender.enter();
            drop(entered.lend());
            entered.settle();
            drop(entered);
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
            let lent = lender.enter().lend();
            let other = thread::spawn(move || lent.clone());
            lender.enter().settle();
            let clone = other.join().unwrap();
            drop(lender);
            assert_eq!(Arc::strong_count(&ctx.node), before + 1, "the clone's own");
            drop(clone);
            assert_eq!(Arc::strong_count(&ctx.node), before);
        });
    }

    /// A lender dropped while its loan is out, racing the lent handle's drop elsewhere.
    #[test]
    fn a_lender_dropped_with_a_loan_out_races_the_handle() {
        loom::model(|| {
            let (ctx, _cancel) = Context::background().with_cancel();
            let before = Arc::strong_count(&ctx.node);
            let mut lender = Lender::new(ctx.clone());
            let lent = lender.enter().lend();
            let other = thread::spawn(move || drop(lent));
            drop(lender);
            other.join().unwrap();
            assert_eq!(Arc::strong_count(&ctx.node), before);
        });
    }
}
