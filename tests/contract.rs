//! The public contract of the runtime, row by row: roots, cancellation, deadlines, values,
//! `without_cancel`, `after_func`, `done()`, `err()`/`cause()`, `run()`, handles and errors.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::Poll;
use std::time::Duration;

use ctxpipe::{CancelHandle, Cause, Context, Error};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// How long a test that runs outside tokio waits before calling a run hung. Not a timing
/// assertion: the awaited event normally arrives within microseconds.
const HANG_GUARD: Duration = Duration::from_secs(10);

/// A user error, to check that causes keep their type.
#[derive(Debug, PartialEq)]
struct Shutdown(&'static str);

impl fmt::Display for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shutdown: {}", self.0)
    }
}

impl StdError for Shutdown {}

#[derive(Debug, PartialEq)]
struct RequestId(u64);

#[derive(Debug, PartialEq)]
struct Tenant(&'static str);

/// Sets its flag when dropped, to observe that a future was dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn assert_send_static<T: Send + 'static>(_: &T) {}

fn assert_clone_send_sync_static<T: Clone + Send + Sync + 'static>() {}

fn assert_send_sync_static<T: Send + Sync + 'static>() {}

/// Lets every task that is ready on a current-thread runtime run.
async fn settle() {
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
}

/// Asserts the full "done" state of `ctx`: done, with `err` and a cause that displays `cause`.
#[track_caller]
fn assert_done(ctx: &Context, err: Error, cause: &str, what: &str) {
    assert!(ctx.is_done(), "{what}: is_done()");
    assert_eq!(ctx.err(), Some(err), "{what}: err()");
    let got = ctx.cause().map(|c| c.to_string());
    assert_eq!(got.as_deref(), Some(cause), "{what}: cause()");
}

#[track_caller]
fn assert_open(ctx: &Context, what: &str) {
    assert!(!ctx.is_done(), "{what}: is_done()");
    assert_eq!(ctx.err(), None, "{what}: err()");
    assert!(ctx.cause().is_none(), "{what}: cause()");
}

// ---------------------------------------------------------------------------------------------
// background / todo

#[test]
fn background_is_never_done_and_has_no_deadline_or_values() {
    let ctx = Context::background();
    assert_open(&ctx, "background");
    assert_eq!(ctx.deadline(), None, "background has no deadline");
    assert_eq!(ctx.value::<u32>(), None, "background has no values");
    assert_eq!(ctx.value::<RequestId>(), None, "background has no values");
}

#[test]
fn todo_behaves_like_background() {
    for (name, ctx) in [("todo", Context::todo()), ("default", Context::default())] {
        assert_open(&ctx, name);
        assert_eq!(ctx.deadline(), None, "{name} has no deadline");
        assert_eq!(ctx.value::<u32>(), None, "{name} has no values");
    }
}

#[tokio::test(start_paused = true)]
async fn background_done_never_resolves() {
    for (name, ctx) in [
        ("background", Context::background()),
        ("todo", Context::todo()),
    ] {
        let waited = tokio::time::timeout(Duration::from_secs(86_400 * 365), ctx.done()).await;
        assert!(waited.is_err(), "{name}.done() resolved");
        assert_open(&ctx, name);
    }
}

// ---------------------------------------------------------------------------------------------
// with_cancel, cancel, cancel_with

#[test]
fn cancel_makes_the_context_done_with_canceled() {
    let (ctx, cancel) = Context::background().with_cancel();
    assert_open(&ctx, "before cancel");
    assert!(!cancel.is_done(), "handle reports open before cancel");
    cancel.cancel();
    assert_done(&ctx, Error::Canceled, "context canceled", "after cancel");
    assert!(cancel.is_done(), "handle reports done after cancel");
}

#[test]
fn cancel_is_idempotent() {
    let (ctx, cancel) = Context::background().with_cancel();
    for _ in 0..3 {
        cancel.cancel();
        assert_done(&ctx, Error::Canceled, "context canceled", "repeated cancel");
    }
}

#[test]
fn first_cancel_wins_and_its_cause_sticks() {
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel_with(Shutdown("first"));
    cancel.cancel_with(Shutdown("second"));
    cancel.cancel();
    assert_done(
        &ctx,
        Error::Canceled,
        "shutdown: first",
        "first cause sticks",
    );
    let cause = ctx.cause().expect("a done context has a cause");
    assert_eq!(cause.downcast_ref::<Shutdown>(), Some(&Shutdown("first")));
}

#[test]
fn a_cause_given_after_a_plain_cancel_is_ignored() {
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    cancel.cancel_with(Shutdown("late"));
    assert_done(
        &ctx,
        Error::Canceled,
        "context canceled",
        "plain cancel came first",
    );
    let cause = ctx.cause().expect("a done context has a cause");
    assert_eq!(cause.downcast_ref::<Error>(), Some(&Error::Canceled));
}

#[test]
fn cloned_cancel_handles_cancel_the_same_context() {
    let (ctx, cancel) = Context::background().with_cancel();
    let other = cancel.clone();
    other.cancel_with(Cause::msg("from the clone"));
    assert!(cancel.is_done(), "the original handle sees the cancel");
    assert_done(&ctx, Error::Canceled, "from the clone", "clone cancels");
}

#[test]
fn cancelling_a_child_never_cancels_its_parent() {
    let (parent, _parent_cancel) = Context::background().with_cancel();
    let (child, child_cancel) = parent.with_cancel();
    let (timed, timed_cancel) = parent.with_timeout(Duration::from_secs(3600));
    child_cancel.cancel_with(Shutdown("child only"));
    timed_cancel.cancel();
    assert_done(&child, Error::Canceled, "shutdown: child only", "child");
    assert_done(&timed, Error::Canceled, "context canceled", "timed child");
    assert_open(&parent, "parent");
}

#[test]
fn cancel_reaches_every_descendant_before_it_returns() {
    // A root with a long chain (with value and deadline layers in it) and a fan-out at each
    // level: after `cancel_with` returns, every one of them must already report done.
    let (root, cancel) = Context::background().with_cancel();
    let mut all = Vec::new();
    let mut tip = root.clone();
    for depth in 0..300u64 {
        tip = match depth % 4 {
            0 => tip.with_cancel().0,
            1 => tip.with_value(RequestId(depth)),
            2 => tip.with_timeout(Duration::from_secs(3600)).0,
            _ => {
                tip.with_deadline(Instant::now() + Duration::from_secs(7200))
                    .0
            }
        };
        for _ in 0..3 {
            all.push(tip.with_cancel().0);
        }
        all.push(tip.clone());
    }
    assert!(all.iter().all(|ctx| !ctx.is_done()), "nothing is done yet");
    cancel.cancel_with(Shutdown("root"));
    for (i, ctx) in all.iter().enumerate() {
        assert_done(
            ctx,
            Error::Canceled,
            "shutdown: root",
            &format!("descendant #{i}"),
        );
    }
    assert_eq!(
        root.__live_children(),
        0,
        "a cancelled context has no attached children"
    );
}

// ---------------------------------------------------------------------------------------------
// with_deadline, with_timeout

#[tokio::test(start_paused = true)]
async fn a_childs_deadline_is_the_earlier_of_its_own_and_its_parents() {
    let now = Instant::now();
    let (parent, _p) = Context::background().with_timeout(Duration::from_secs(10));
    assert_eq!(parent.deadline(), Some(now + Duration::from_secs(10)));

    let (earlier, _e) = parent.with_timeout(Duration::from_secs(5));
    assert_eq!(
        earlier.deadline(),
        Some(now + Duration::from_secs(5)),
        "own"
    );

    let (later, _l) = parent.with_deadline(now + Duration::from_secs(20));
    assert_eq!(later.deadline(), parent.deadline(), "parent's is earlier");

    let (plain, _c) = parent.with_value(Tenant("acme")).with_cancel();
    assert_eq!(
        plain.deadline(),
        parent.deadline(),
        "inherited through a value layer"
    );

    let (grandchild, _g) = earlier.with_timeout(Duration::from_secs(7));
    assert_eq!(
        grandchild.deadline(),
        earlier.deadline(),
        "the nearest ancestor's deadline is the binding one"
    );
}

#[tokio::test(start_paused = true)]
async fn with_deadline_accepts_a_std_instant() {
    let at = std::time::Instant::now() + Duration::from_secs(60);
    let (ctx, _cancel) = Context::background().with_deadline(at);
    assert_eq!(ctx.deadline(), Some(Instant::from_std(at)));
}

#[tokio::test(start_paused = true)]
async fn a_deadline_ends_the_context_on_tokios_clock() {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(1));
    tokio::time::advance(Duration::from_millis(999)).await;
    assert_open(&ctx, "1 ms before the deadline");
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_done(
        &ctx,
        Error::DeadlineExceeded,
        "context deadline exceeded",
        "at the deadline",
    );
    assert!(ctx.err().is_some_and(|e| e.is_timeout()), "a timeout");
}

#[tokio::test(start_paused = true)]
async fn with_timeout_zero_is_done_at_once() {
    let (ctx, cancel) = Context::background().with_timeout(Duration::ZERO);
    assert_done(
        &ctx,
        Error::DeadlineExceeded,
        "context deadline exceeded",
        "zero timeout",
    );
    cancel.cancel_with(Shutdown("too late"));
    assert_done(
        &ctx,
        Error::DeadlineExceeded,
        "context deadline exceeded",
        "the deadline came first",
    );
}

#[test]
fn with_timeout_zero_is_done_at_once_outside_a_runtime() {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::ZERO);
    assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
}

#[tokio::test(start_paused = true)]
async fn a_deadline_in_the_past_or_now_is_expired_at_creation() {
    let now = Instant::now();
    let (past, _p) = Context::background().with_deadline(now - Duration::from_secs(1));
    assert_done(
        &past,
        Error::DeadlineExceeded,
        "context deadline exceeded",
        "past",
    );
    let (exact, _e) = Context::background().with_deadline(now);
    assert_done(
        &exact,
        Error::DeadlineExceeded,
        "context deadline exceeded",
        "now",
    );
    let (parent, _c) = Context::background().with_cancel();
    let (child, _cc) = parent.with_deadline(now);
    assert_done(
        &child,
        Error::DeadlineExceeded,
        "context deadline exceeded",
        "expired child of an open parent",
    );
    assert_open(&parent, "its parent");
    assert_eq!(
        parent.__live_children(),
        0,
        "a child born done is not attached"
    );
}

#[tokio::test(start_paused = true)]
async fn with_timeout_max_means_no_deadline() {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::MAX);
    assert_eq!(ctx.deadline(), None, "Duration::MAX is no deadline");
    assert_open(&ctx, "Duration::MAX");
    let (huge, _h) = Context::background().with_timeout(Duration::from_secs(u64::MAX / 2));
    assert!(!huge.is_done(), "a huge timeout is not done");

    let (parent, _p) = Context::background().with_timeout(Duration::from_secs(5));
    let (child, _c) = parent.with_timeout(Duration::MAX);
    assert_eq!(
        child.deadline(),
        parent.deadline(),
        "under a deadline parent, the parent's deadline still applies"
    );
}

#[test]
fn with_timeout_max_outside_a_runtime_does_not_panic() {
    let (ctx, cancel) = Context::background().with_timeout(Duration::MAX);
    assert_eq!(ctx.deadline(), None);
    cancel.cancel();
    assert_eq!(ctx.err(), Some(Error::Canceled));
}

#[test]
fn a_child_of_a_cancelled_parent_is_born_done_with_its_err_and_cause() {
    let (parent, cancel) = Context::background().with_cancel();
    cancel.cancel_with(Shutdown("parent"));
    let children = [
        ("with_cancel", parent.with_cancel().0),
        (
            "with_timeout",
            parent.with_timeout(Duration::from_secs(60)).0,
        ),
        (
            "with_deadline",
            parent
                .with_deadline(Instant::now() + Duration::from_secs(60))
                .0,
        ),
        ("value layer", parent.with_value(RequestId(1))),
        (
            "child of value layer",
            parent.with_value(1u8).with_cancel().0,
        ),
    ];
    for (name, child) in &children {
        assert_done(child, Error::Canceled, "shutdown: parent", name);
        let cause = child.cause().expect("born done has a cause");
        assert_eq!(cause.downcast_ref::<Shutdown>(), Some(&Shutdown("parent")));
    }
    assert_eq!(
        parent.__live_children(),
        0,
        "children born done are detached"
    );
}

#[tokio::test(start_paused = true)]
async fn a_child_of_an_expired_parent_is_born_done_with_deadline_exceeded() {
    let (parent, _p) = Context::background().with_timeout(Duration::from_secs(1));
    tokio::time::advance(Duration::from_secs(2)).await;
    // No one looked at the parent since its deadline passed.
    let (child, _c) = parent.with_cancel();
    assert_done(
        &child,
        Error::DeadlineExceeded,
        "context deadline exceeded",
        "child",
    );
    let (later, _l) = parent.with_timeout(Duration::from_secs(3600));
    assert_done(
        &later,
        Error::DeadlineExceeded,
        "context deadline exceeded",
        "child with a later deadline of its own",
    );
    assert_done(
        &parent,
        Error::DeadlineExceeded,
        "context deadline exceeded",
        "parent",
    );
}

#[tokio::test(start_paused = true)]
async fn a_parents_deadline_reaches_its_children() {
    let (parent, _p) = Context::background().with_timeout(Duration::from_secs(1));
    let (child, _c) = parent.with_cancel();
    let (own, _o) = parent.with_timeout(Duration::from_secs(30));
    let value = child.with_value(Tenant("t"));
    tokio::time::advance(Duration::from_secs(1)).await;
    for (name, ctx) in [("child", &child), ("own", &own), ("value", &value)] {
        assert_done(
            ctx,
            Error::DeadlineExceeded,
            "context deadline exceeded",
            name,
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_child_keeps_canceled_when_the_parents_deadline_passes() {
    let (parent, _p) = Context::background().with_timeout(Duration::from_secs(1));
    let (child, cancel) = parent.with_cancel();
    cancel.cancel_with(Shutdown("early"));
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_done(&child, Error::Canceled, "shutdown: early", "child");
    assert_done(
        &parent,
        Error::DeadlineExceeded,
        "context deadline exceeded",
        "parent",
    );
}

#[tokio::test(start_paused = true)]
async fn cancel_after_an_unobserved_deadline_keeps_deadline_exceeded() {
    let (ctx, cancel) = Context::background().with_timeout(Duration::from_secs(1));
    tokio::time::advance(Duration::from_secs(2)).await;
    // Nobody looked at `ctx` since its deadline passed; it is done all the same.
    cancel.cancel_with(Shutdown("too late"));
    assert_done(
        &ctx,
        Error::DeadlineExceeded,
        "context deadline exceeded",
        "the deadline came first",
    );
}

#[tokio::test(start_paused = true)]
async fn cancel_after_an_unobserved_parent_deadline_keeps_deadline_exceeded() {
    let (parent, _p) = Context::background().with_timeout(Duration::from_secs(1));
    let (child, cancel) = parent.with_cancel();
    tokio::time::advance(Duration::from_secs(2)).await;
    cancel.cancel();
    assert_done(
        &parent,
        Error::DeadlineExceeded,
        "context deadline exceeded",
        "parent",
    );
    assert_done(
        &child,
        Error::DeadlineExceeded,
        "context deadline exceeded",
        "child: its parent's deadline came before its cancel",
    );
}

// ---------------------------------------------------------------------------------------------
// with_value

#[test]
fn values_are_found_by_type() {
    let ctx = Context::background()
        .with_value(RequestId(7))
        .with_value(Tenant("acme"))
        .with_value(5u8);
    assert_eq!(ctx.value::<RequestId>(), Some(&RequestId(7)));
    assert_eq!(ctx.value::<Tenant>(), Some(&Tenant("acme")));
    assert_eq!(ctx.value::<u8>(), Some(&5));
    assert_eq!(ctx.value::<u16>(), None, "a type never stored");
}

#[test]
fn a_value_of_the_same_type_shadows_the_inherited_one() {
    let outer = Context::background().with_value(RequestId(1));
    let inner = outer.with_value(Tenant("t")).with_value(RequestId(2));
    assert_eq!(inner.value::<RequestId>(), Some(&RequestId(2)), "shadowed");
    assert_eq!(inner.value::<Tenant>(), Some(&Tenant("t")));
    assert_eq!(
        outer.value::<RequestId>(),
        Some(&RequestId(1)),
        "the outer context still sees its own value"
    );
}

#[tokio::test(start_paused = true)]
async fn values_are_visible_through_cancel_and_deadline_layers() {
    let root = Context::background().with_value(RequestId(9));
    let (a, _a) = root.with_cancel();
    let (b, _b) = a.with_timeout(Duration::from_secs(1));
    let (c, _c) = b.with_deadline(Instant::now() + Duration::from_secs(2));
    let d = c.with_value(Tenant("deep"));
    let (e, cancel) = d.with_cancel();
    for (name, ctx) in [("a", &a), ("b", &b), ("c", &c), ("d", &d), ("e", &e)] {
        assert_eq!(ctx.value::<RequestId>(), Some(&RequestId(9)), "{name}");
    }
    assert_eq!(e.value::<Tenant>(), Some(&Tenant("deep")));
    cancel.cancel();
    assert_eq!(
        e.value::<RequestId>(),
        Some(&RequestId(9)),
        "values outlive cancellation"
    );
    let (born_done, _) = e.with_cancel();
    assert_eq!(
        born_done.value::<Tenant>(),
        Some(&Tenant("deep")),
        "a child born done still carries values"
    );
}

#[test]
fn values_are_not_visible_in_the_parent() {
    let (parent, _p) = Context::background().with_value(1u8).with_cancel();
    let child = parent.with_value(RequestId(3));
    let (grandchild, _g) = child.with_cancel();
    let _ = grandchild.with_value(Tenant("leaf"));
    assert_eq!(parent.value::<RequestId>(), None);
    assert_eq!(child.value::<Tenant>(), None);
    assert_eq!(grandchild.value::<Tenant>(), None);
    assert_eq!(parent.value::<u8>(), Some(&1));
}

#[test]
fn values_outlive_the_contexts_that_added_them() {
    let leaf = {
        let a = Context::background().with_value(String::from("tenant-a"));
        let (b, _cancel_b) = a.with_cancel();
        let c = b.with_value(vec![1u32, 2, 3]);
        let d = c
            .with_value(RequestId(99))
            .with_value(String::from("shadowing"));
        d.with_value(Tenant("leaf")).with_cancel().0
    };
    // Every context that added these values is gone; the leaf still reads them all.
    assert_eq!(
        leaf.value::<String>().map(String::as_str),
        Some("shadowing")
    );
    assert_eq!(leaf.value::<Vec<u32>>(), Some(&vec![1, 2, 3]));
    assert_eq!(leaf.value::<RequestId>(), Some(&RequestId(99)));
    assert_eq!(leaf.value::<Tenant>(), Some(&Tenant("leaf")));
    let more = leaf.with_value(7u64);
    drop(leaf);
    assert_eq!(
        more.value::<Vec<u32>>(),
        Some(&vec![1, 2, 3]),
        "and so does its child"
    );
}

/// A distinct value type per `N`.
#[derive(Debug, PartialEq)]
struct Slot<const N: usize>(usize);

/// `add_slot(ctx, n)` stores `Slot::<n>(n)`; `get_slot(ctx, n)` looks it up.
macro_rules! slots {
    ($($n:literal)*) => {
        const SLOTS: usize = [$($n),*].len();

        fn add_slot(ctx: &Context, n: usize) -> Context {
            match n {
                $($n => ctx.with_value(Slot::<$n>($n)),)*
                _ => unreachable!("slot {n} is not declared"),
            }
        }

        fn get_slot(ctx: &Context, n: usize) -> Option<usize> {
            match n {
                $($n => ctx.value::<Slot<$n>>().map(|slot| slot.0),)*
                _ => unreachable!("slot {n} is not declared"),
            }
        }
    };
}

slots!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
    32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47);

#[test]
fn many_value_types_stay_reachable() {
    let mut ctx = Context::background().with_value(0u8);
    for added in 0..SLOTS {
        ctx = add_slot(&ctx, added);
        // Every value added so far is found, at every table size on the way.
        for n in 0..SLOTS {
            let want = (n <= added).then_some(n);
            assert_eq!(get_slot(&ctx, n), want, "slot {n} after adding 0..={added}");
        }
        assert_eq!(ctx.value::<u8>(), Some(&0), "the first value survives");
        assert_eq!(ctx.value::<u16>(), None, "a missing type is not found");
    }
    let shadowed = ctx.with_value(Slot::<5>(500)).with_value(1u8);
    assert_eq!(shadowed.value::<Slot<5>>(), Some(&Slot::<5>(500)));
    assert_eq!(get_slot(&shadowed, 47), Some(47));
    assert_eq!(shadowed.value::<u8>(), Some(&1));
    assert_eq!(get_slot(&ctx, 5), Some(5), "the parent is untouched");
}

#[tokio::test(start_paused = true)]
async fn a_value_layer_shares_its_parents_cancellation_and_deadline() {
    let (parent, cancel) = Context::background().with_timeout(Duration::from_secs(4));
    let child = parent.with_value(RequestId(1));
    assert_eq!(child.deadline(), parent.deadline());
    assert_eq!(
        parent.__live_children(),
        0,
        "a value layer is not a child node"
    );
    cancel.cancel_with(Shutdown("p"));
    assert_done(&child, Error::Canceled, "shutdown: p", "value layer");
}

// ---------------------------------------------------------------------------------------------
// without_cancel

#[tokio::test(start_paused = true)]
async fn without_cancel_keeps_values_but_not_cancellation_or_deadline() {
    let (parent, cancel) = Context::background()
        .with_value(RequestId(5))
        .with_timeout(Duration::from_secs(1));
    let detached = parent.without_cancel();
    assert_eq!(detached.value::<RequestId>(), Some(&RequestId(5)));
    assert_eq!(
        detached.deadline(),
        None,
        "no deadline under a deadline parent"
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(parent.is_done(), "the parent expired");
    cancel.cancel();
    assert_open(&detached, "without_cancel");
    let waited = tokio::time::timeout(Duration::from_secs(3600), detached.done()).await;
    assert!(waited.is_err(), "done() of without_cancel never resolves");
}

#[tokio::test(start_paused = true)]
async fn children_of_without_cancel_have_only_their_own_deadline() {
    let (parent, cancel) = Context::background().with_timeout(Duration::from_secs(1));
    let detached = parent.without_cancel();
    let (child, child_cancel) = detached.with_timeout(Duration::from_secs(10));
    assert_eq!(
        child.deadline(),
        Some(Instant::now() + Duration::from_secs(10)),
        "only its own deadline"
    );
    cancel.cancel();
    assert_open(&child, "child of without_cancel after the parent's cancel");
    child_cancel.cancel();
    assert_done(&child, Error::Canceled, "context canceled", "own cancel");
    assert_open(&detached, "without_cancel itself");
}

// ---------------------------------------------------------------------------------------------
// after_func

#[tokio::test]
async fn after_func_runs_once_after_cancel_on_the_current_runtime() {
    let (ctx, cancel) = Context::background().with_cancel();
    let runs = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = oneshot::channel();
    let registered_on = tokio::runtime::Handle::current().id();
    let counter = runs.clone();
    let call = ctx.after_func(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        let runtime = tokio::runtime::Handle::try_current().map(|h| h.id()).ok();
        let _ = tx.send(runtime);
    });
    settle().await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "not run before the context is done"
    );
    cancel.cancel();
    // A current-thread runtime: the call can only run once this test yields.
    assert_eq!(runs.load(Ordering::SeqCst), 0, "never run inside cancel()");
    cancel.cancel();
    let ran_on = rx.await.expect("the call ran and sent");
    assert_eq!(
        ran_on,
        Some(registered_on),
        "it ran on the runtime it was registered on"
    );
    settle().await;
    assert_eq!(runs.load(Ordering::SeqCst), 1, "it ran exactly once");
    assert!(!call.stop(), "stop() after the call started returns false");
}

#[tokio::test]
async fn a_stopped_after_func_never_runs() {
    let (ctx, cancel) = Context::background().with_cancel();
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let call = ctx.after_func(move || flag.store(true, Ordering::SeqCst));
    assert!(call.stop(), "the first stop() stops it");
    assert!(!call.stop(), "the second stop() finds it already stopped");
    let (tx, rx) = oneshot::channel();
    let _witness = ctx.after_func(move || {
        let _ = tx.send(());
    });
    cancel.cancel();
    rx.await.expect("the other call ran");
    settle().await;
    assert!(!ran.load(Ordering::SeqCst), "the stopped call did not run");
    assert!(!call.stop(), "stop() after the context is done");
}

#[tokio::test]
async fn after_func_on_a_done_context_runs_at_once() {
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    let (tx, rx) = oneshot::channel();
    let call = ctx.after_func(move || {
        let _ = tx.send(());
    });
    assert!(!call.stop(), "already started: stop() returns false");
    rx.await
        .expect("the call ran although the context was done before");
}

#[tokio::test]
async fn dropping_the_after_func_handle_does_not_stop_it() {
    let (ctx, cancel) = Context::background().with_cancel();
    let (tx, rx) = oneshot::channel();
    drop(ctx.after_func(move || {
        let _ = tx.send(());
    }));
    cancel.cancel();
    rx.await
        .expect("the call ran although its handle was dropped");
}

#[tokio::test(start_paused = true)]
async fn after_func_fires_when_the_deadline_passes() {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(5));
    let deadline = ctx.deadline().expect("with_timeout sets a deadline");
    let (tx, rx) = oneshot::channel();
    let _call = ctx.after_func(move || {
        let _ = tx.send(Instant::now());
    });
    let fired_at = rx.await.expect("the call ran at the deadline");
    assert!(
        fired_at >= deadline,
        "fired at {fired_at:?}, before the deadline {deadline:?}"
    );
    assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
}

#[tokio::test]
async fn a_pending_after_func_fires_when_an_ancestor_is_cancelled_after_every_handle_dropped() {
    let (parent, cancel) = Context::background().with_cancel();
    let (tx, rx) = oneshot::channel();
    {
        let (child, child_cancel) = parent.with_cancel();
        let grandchild = child.with_value(RequestId(1)).with_cancel().0;
        drop(grandchild.after_func(move || {
            let _ = tx.send(());
        }));
        drop((child, child_cancel, grandchild));
    }
    assert_eq!(
        parent.__live_children(),
        1,
        "the pending call keeps the chain attached"
    );
    cancel.cancel();
    rx.await.expect("the call ran after the ancestor's cancel");
}

#[test]
fn after_func_outside_a_runtime_runs_on_another_thread() {
    let (ctx, cancel) = Context::background().with_cancel();
    let (tx, rx) = mpsc::channel();
    let call = ctx.after_func(move || {
        let _ = tx.send(std::thread::current().id());
    });
    cancel.cancel();
    let ran_on = rx
        .recv_timeout(HANG_GUARD)
        .expect("the call ran after the cancel");
    assert_ne!(
        ran_on,
        std::thread::current().id(),
        "never on the cancelling thread"
    );
    assert!(!call.stop(), "stop() after the call started");
}

#[test]
fn after_func_outside_a_runtime_on_a_done_context_runs() {
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    let (tx, rx) = mpsc::channel();
    let _call = ctx.after_func(move || {
        let _ = tx.send(());
    });
    assert!(
        rx.recv_timeout(HANG_GUARD).is_ok(),
        "the call ran on a done context"
    );
}

#[test]
fn after_func_whose_runtime_shut_down_still_runs() {
    let (ctx, cancel) = Context::background().with_cancel();
    let (tx, rx) = mpsc::channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let _call = runtime.block_on(async {
        ctx.after_func(move || {
            let _ = tx.send(());
        })
    });
    drop(runtime);
    cancel.cancel();
    assert!(
        rx.recv_timeout(HANG_GUARD).is_ok(),
        "the call ran although its runtime is gone"
    );
}

// ---------------------------------------------------------------------------------------------
// done()

#[test]
fn done_is_send_and_static() {
    let done = {
        let (ctx, _cancel) = Context::background().with_cancel();
        ctx.done()
    };
    assert_send_static(&done);
    assert_send_static(&Context::background().done());
}

#[tokio::test]
async fn done_resolves_on_cancel() {
    let (ctx, cancel) = Context::background().with_cancel();
    let mut done = std::pin::pin!(ctx.done());
    assert!(
        futures::poll!(done.as_mut()).is_pending(),
        "pending while open"
    );
    let waiter = tokio::spawn(ctx.done());
    settle().await;
    cancel.cancel();
    waiter.await.expect("the waiting task finished");
    assert!(
        futures::poll!(done.as_mut()).is_ready(),
        "ready after cancel"
    );
}

#[tokio::test]
async fn done_of_a_done_context_is_ready_at_once() {
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    assert_eq!(futures::poll!(ctx.done()), Poll::Ready(()));
}

#[tokio::test(start_paused = true)]
async fn done_resolves_at_the_deadline() {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(1500));
    let deadline = ctx.deadline().expect("with_timeout sets a deadline");
    ctx.done().await;
    assert!(Instant::now() >= deadline, "resolved before the deadline");
    assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
}

#[tokio::test(start_paused = true)]
async fn done_resolves_at_the_parents_deadline() {
    let (parent, _p) = Context::background().with_timeout(Duration::from_secs(2));
    let (child, _c) = parent
        .with_value(RequestId(1))
        .with_timeout(Duration::from_secs(60));
    let deadline = parent.deadline().expect("with_timeout sets a deadline");
    child.done().await;
    assert!(Instant::now() >= deadline, "resolved before the deadline");
    assert_eq!(child.err(), Some(Error::DeadlineExceeded));
}

#[tokio::test(start_paused = true)]
async fn done_never_resolves_for_a_context_that_is_never_cancelled() {
    let (child, cancel) = Context::background().with_cancel();
    drop(cancel);
    let forever = Duration::from_secs(86_400 * 365);
    for (name, ctx) in [
        ("background", Context::background()),
        ("handle dropped", child.clone()),
        ("without_cancel", child.without_cancel()),
    ] {
        let waited = tokio::time::timeout(forever, ctx.done()).await;
        assert!(waited.is_err(), "{name}: done() resolved");
    }
}

// ---------------------------------------------------------------------------------------------
// err(), cause(), deadline(), is_done()

#[test]
fn err_and_cause_are_none_while_open() {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(3600));
    assert_open(&ctx, "open");
}

#[tokio::test(start_paused = true)]
async fn a_cause_that_was_not_given_displays_like_the_error() {
    let (canceled, cancel) = Context::background().with_cancel();
    cancel.cancel();
    let cause = canceled.cause().expect("done");
    assert_eq!(cause.to_string(), Error::Canceled.to_string());
    assert_eq!(cause.downcast_ref::<Error>(), Some(&Error::Canceled));
    assert_eq!(format!("{cause:?}"), format!("{:?}", Error::Canceled));

    let (expired, _c) = Context::background().with_timeout(Duration::ZERO);
    let cause = expired.cause().expect("done");
    assert_eq!(cause.to_string(), Error::DeadlineExceeded.to_string());
    assert_eq!(
        cause.downcast_ref::<Error>(),
        Some(&Error::DeadlineExceeded)
    );
}

#[test]
fn cause_downcasts_to_the_given_error() {
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel_with(Shutdown("maintenance"));
    let cause = ctx.cause().expect("done");
    assert_eq!(
        cause.downcast_ref::<Shutdown>(),
        Some(&Shutdown("maintenance"))
    );
    assert!(cause.is::<Shutdown>(), "is::<Shutdown>()");
    assert!(cause.downcast_ref::<Error>().is_none(), "not an Error");
    assert_eq!(ctx.err(), Some(Error::Canceled), "err() stays Canceled");
}

#[test]
fn a_cause_from_one_context_passed_to_another_is_the_same_error() {
    let (first, cancel_first) = Context::background().with_cancel();
    cancel_first.cancel_with(Shutdown("shared"));
    let cause = first.cause().expect("done");

    let (second, cancel_second) = Context::background().with_cancel();
    cancel_second.cancel_with(cause.clone());
    let passed_on = second.cause().expect("done");
    assert_eq!(passed_on.to_string(), "shutdown: shared");
    assert_eq!(
        passed_on.downcast_ref::<Shutdown>(),
        Some(&Shutdown("shared"))
    );
    let original = cause.as_error() as *const (dyn StdError + Send + Sync) as *const u8;
    let forwarded = passed_on.as_error() as *const (dyn StdError + Send + Sync) as *const u8;
    assert!(
        std::ptr::eq(original, forwarded),
        "the cause is passed on, not wrapped again"
    );
}

#[tokio::test(start_paused = true)]
async fn err_never_changes_once_done() {
    let (ctx, cancel) = Context::background().with_timeout(Duration::from_secs(1));
    cancel.cancel();
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_done(
        &ctx,
        Error::Canceled,
        "context canceled",
        "after the deadline",
    );
    assert!(ctx.deadline().is_some(), "deadline() is still reported");
}

#[tokio::test(start_paused = true)]
async fn deadline_is_reported_on_every_layer() {
    let at = Instant::now() + Duration::from_secs(3);
    let (ctx, _cancel) = Context::background().with_deadline(at);
    assert_eq!(ctx.deadline(), Some(at));
    assert_eq!(ctx.with_value(1u8).deadline(), Some(at));
    assert_eq!(ctx.with_cancel().0.deadline(), Some(at));
    assert_eq!(Context::background().with_cancel().0.deadline(), None);
}

#[test]
fn a_clone_is_a_handle_to_the_same_context() {
    let (ctx, cancel) = Context::background().with_cancel();
    let clone = ctx.clone();
    let (child_of_clone, _c) = clone.with_cancel();
    assert_eq!(
        ctx.__live_children(),
        1,
        "the clone's child is the original's"
    );
    cancel.cancel();
    assert!(clone.is_done(), "the clone is cancelled with the original");
    assert!(child_of_clone.is_done(), "and so is its child");
}

// ---------------------------------------------------------------------------------------------
// run()

#[tokio::test]
async fn run_returns_the_output_when_the_future_wins() {
    let (ctx, _cancel) = Context::background().with_cancel();
    assert_eq!(ctx.run(async { 42 }).await, Ok(42));
    assert_eq!(ctx.run(std::future::ready("ready")).await, Ok("ready"));
    let (timed, _t) = Context::background().with_timeout(Duration::from_secs(60));
    let answer = timed
        .run(async {
            tokio::task::yield_now().await;
            7
        })
        .await;
    assert_eq!(answer, Ok(7));
}

/// A future that never finishes and records when it is dropped.
fn pending_with_flag(dropped: &Arc<AtomicBool>) -> impl Future<Output = ()> {
    let flag = DropFlag(dropped.clone());
    async move {
        let _flag = flag;
        std::future::pending::<()>().await;
    }
}

/// Cancels through `cancel` once `after` has passed, from another task.
fn cancel_in(after: Duration, cancel: CancelHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        cancel.cancel();
    })
}

#[tokio::test(start_paused = true)]
async fn run_returns_canceled_and_drops_the_future_when_cancelled_first() {
    let (ctx, cancel) = Context::background().with_cancel();
    let dropped = Arc::new(AtomicBool::new(false));
    let canceller = cancel_in(Duration::from_secs(1), cancel);
    assert_eq!(
        ctx.run(pending_with_flag(&dropped)).await,
        Err(Error::Canceled)
    );
    assert!(dropped.load(Ordering::SeqCst), "the future was dropped");
    canceller.await.expect("the canceller finished");
}

#[tokio::test(start_paused = true)]
async fn run_returns_deadline_exceeded_and_drops_the_future_at_the_deadline() {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(2));
    let dropped = Arc::new(AtomicBool::new(false));
    assert_eq!(
        ctx.run(pending_with_flag(&dropped)).await,
        Err(Error::DeadlineExceeded)
    );
    assert!(dropped.load(Ordering::SeqCst), "the future was dropped");
    assert!(Instant::now() >= ctx.deadline().expect("has a deadline"));
}

#[tokio::test(start_paused = true)]
async fn run_on_a_done_context_never_polls_the_future() {
    let never_polled = || std::future::poll_fn(|_| -> Poll<()> { panic!("the future was polled") });
    let (canceled, cancel) = Context::background().with_cancel();
    cancel.cancel();
    assert_eq!(canceled.run(never_polled()).await, Err(Error::Canceled));
    let (expired, _e) = Context::background().with_timeout(Duration::ZERO);
    assert_eq!(
        expired.run(never_polled()).await,
        Err(Error::DeadlineExceeded)
    );
    let (parent, _p) = Context::background().with_timeout(Duration::from_secs(1));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        parent.run(never_polled()).await,
        Err(Error::DeadlineExceeded),
        "a deadline that passed unobserved"
    );
}

// ---------------------------------------------------------------------------------------------
// watch()

#[tokio::test]
async fn a_watch_races_many_futures_against_one_context() {
    let (ctx, cancel) = Context::background().with_cancel();
    let mut watch = ctx.watch();
    for i in 0..100 {
        let out = watch
            .run(async move {
                tokio::task::yield_now().await;
                i
            })
            .await;
        assert_eq!(out, Ok(i), "run #{i} finished first");
    }
    cancel.cancel();
    let never_polled = std::future::poll_fn(|_| -> Poll<()> { panic!("polled after the end") });
    assert_eq!(watch.run(never_polled).await, Err(Error::Canceled));
}

#[tokio::test(start_paused = true)]
async fn a_watch_ends_a_pending_future_on_cancel_and_at_the_deadline() {
    let (ctx, cancel) = Context::background().with_cancel();
    let mut watch = ctx.watch();
    let dropped = Arc::new(AtomicBool::new(false));
    let canceller = cancel_in(Duration::from_secs(1), cancel);
    assert_eq!(
        watch.run(pending_with_flag(&dropped)).await,
        Err(Error::Canceled)
    );
    assert!(dropped.load(Ordering::SeqCst), "the future was dropped");
    canceller.await.expect("the canceller finished");

    let (timed, _t) = Context::background().with_timeout(Duration::from_secs(2));
    let mut watch = timed.watch();
    assert_eq!(watch.run(async { 1 }).await, Ok(1));
    let slow = tokio::time::sleep(Duration::from_secs(60));
    assert_eq!(watch.run(slow).await, Err(Error::DeadlineExceeded));
    assert!(Instant::now() >= timed.deadline().expect("has a deadline"));
}

#[tokio::test(start_paused = true)]
async fn a_watch_moved_to_another_task_wakes_that_task() {
    let (ctx, cancel) = Context::background().with_cancel();
    let mut watch = ctx.watch();
    // Registered by this task first ...
    let first = tokio::time::timeout(
        Duration::from_secs(1),
        watch.run(std::future::pending::<()>()),
    )
    .await;
    assert!(first.is_err(), "still open after a second");
    // ... then used by another task, which the cancel must wake.
    let other = tokio::spawn(async move { watch.run(std::future::pending::<()>()).await });
    settle().await;
    cancel.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(3600), other).await;
    assert!(
        matches!(outcome, Ok(Ok(Err(Error::Canceled)))),
        "the task now using the watch was woken: {outcome:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// handles and guards

#[test]
fn context_is_clone_send_sync_static() {
    assert_clone_send_sync_static::<Context>();
}

#[test]
fn cancel_handle_is_send_sync_static() {
    assert_send_sync_static::<CancelHandle>();
    assert_send_sync_static::<ctxpipe::DropGuard>();
    assert_send_sync_static::<ctxpipe::AfterFunc>();
    assert_clone_send_sync_static::<Cause>();
}

#[test]
fn dropping_a_cancel_handle_does_not_cancel() {
    let (ctx, cancel) = Context::background().with_cancel();
    drop(cancel);
    assert_open(&ctx, "after dropping the handle");
    let (ignored, _) = Context::background().with_cancel();
    assert_open(&ignored, "let (ctx, _) = ...");
}

#[test]
fn a_drop_guard_cancels_on_drop() {
    let (ctx, cancel) = Context::background().with_cancel();
    let (child, _c) = ctx.with_cancel();
    {
        let _guard = cancel.drop_guard();
        assert_open(&ctx, "while the guard lives");
    }
    assert_done(&ctx, Error::Canceled, "context canceled", "guard dropped");
    assert!(child.is_done(), "the guard's cancel reaches children");
}

#[test]
fn a_disarmed_drop_guard_does_not_cancel() {
    let (ctx, cancel) = Context::background().with_cancel();
    let guard = cancel.drop_guard();
    let cancel = guard.disarm();
    assert_open(&ctx, "after disarm");
    cancel.cancel();
    assert!(ctx.is_done(), "the handle given back still cancels");
}

// ---------------------------------------------------------------------------------------------
// Error and Cause

#[test]
fn error_displays_gos_words() {
    assert_eq!(Error::Canceled.to_string(), "context canceled");
    assert_eq!(
        Error::DeadlineExceeded.to_string(),
        "context deadline exceeded"
    );
}

#[test]
fn only_deadline_exceeded_is_a_timeout() {
    assert!(Error::DeadlineExceeded.is_timeout());
    assert!(!Error::Canceled.is_timeout());
    assert!(!Error::MissingValue { type_name: "u8" }.is_timeout());
}

#[test]
fn error_converts_into_io_error_kinds() {
    let cases = [
        (Error::DeadlineExceeded, io::ErrorKind::TimedOut),
        (Error::Canceled, io::ErrorKind::Interrupted),
        (
            Error::MissingValue { type_name: "u8" },
            io::ErrorKind::NotFound,
        ),
    ];
    for (err, kind) in cases {
        let converted = io::Error::from(err.clone());
        assert_eq!(converted.kind(), kind, "{err:?}");
        let inner = converted
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<Error>());
        assert_eq!(inner, Some(&err), "the Error stays reachable");
    }
}

#[test]
fn error_is_a_clonable_comparable_std_error() {
    fn assert_traits<T: Clone + PartialEq + Eq + fmt::Debug + StdError + Send + Sync>() {}
    assert_traits::<Error>();
    let err = Error::Canceled;
    assert_eq!(err.clone(), Error::Canceled);
    assert_ne!(Error::Canceled, Error::DeadlineExceeded);
    let boxed: Box<dyn StdError + Send + Sync> = Box::new(Error::DeadlineExceeded);
    assert_eq!(boxed.to_string(), "context deadline exceeded");
}

#[test]
fn cause_forwards_display_and_debug() {
    let msg = Cause::msg("plain message");
    assert_eq!(msg.to_string(), "plain message");
    assert_eq!(format!("{msg:?}"), format!("{:?}", "plain message"));

    let typed = Cause::new(Shutdown("x"));
    assert_eq!(typed.to_string(), "shutdown: x");
    assert_eq!(format!("{typed:?}"), format!("{:?}", Shutdown("x")));
    assert_eq!(typed.as_error().to_string(), "shutdown: x");

    let converted: Cause = Shutdown("y").into();
    assert_eq!(converted.downcast_ref::<Shutdown>(), Some(&Shutdown("y")));
    let io_cause: Cause = io::Error::other("disk").into();
    assert!(io_cause.is::<io::Error>(), "any std error converts");
}

#[test]
fn cloned_causes_share_one_error() {
    let cause = Cause::new(Shutdown("shared"));
    let clone = cause.clone();
    let a = cause.as_error() as *const (dyn StdError + Send + Sync) as *const u8;
    let b = clone.as_error() as *const (dyn StdError + Send + Sync) as *const u8;
    assert!(std::ptr::eq(a, b), "a clone shares the error");
}
