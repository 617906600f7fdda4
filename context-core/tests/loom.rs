//! Loom models of the cancellation tree: every interleaving of cancel against child creation,
//! child drop, `after_func` registration and `stop()`, concurrent cancels, and a waiter.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p context-core --release --test loom` (`.ci/run`
//! does, with a separate target dir).
#![cfg(loom)]

use context_core::{Cause, Context, Error};
use loom::sync::mpsc::{channel, Receiver};
use loom::thread;

/// A cancellable root: a child of background (which never attaches children).
fn root() -> (Context, context_core::CancelHandle) {
    Context::background().with_cancel()
}

/// An after_func callback that reports on a channel, so a model can wait for it.
fn reporting() -> (impl FnOnce() + Send + 'static, Receiver<()>) {
    let (tx, rx) = channel();
    (move || tx.send(()).unwrap(), rx)
}

#[test]
fn cancel_races_child_creation() {
    loom::model(|| {
        let (ctx, cancel) = root();
        let canceller = thread::spawn(move || cancel.cancel());
        let (child, _child_cancel) = ctx.with_cancel();
        canceller.join().unwrap();

        // Born done or reached by the cancel: either way done, with the parent's error.
        assert_eq!(child.err(), Some(Error::Canceled));
        assert_eq!(ctx.__live_children(), 0, "a done parent holds no children");
    });
}

#[test]
fn cancel_races_child_drop() {
    loom::model(|| {
        let (ctx, cancel) = root();
        let (child, child_cancel) = ctx.with_cancel();
        let (grandchild, _) = child.with_cancel();
        let canceller = thread::spawn(move || cancel.cancel());
        drop((child, child_cancel));
        canceller.join().unwrap();

        assert_eq!(ctx.__live_children(), 0);
        assert_eq!(
            grandchild.err(),
            Some(Error::Canceled),
            "still reached through its parent"
        );
    });
}

#[test]
fn cancel_races_after_func_registration() {
    loom::model(|| {
        let (ctx, cancel) = root();
        let (call, ran) = reporting();
        let canceller = thread::spawn(move || cancel.cancel());
        let after = ctx.after_func(call);
        canceller.join().unwrap();

        ran.recv().expect("the call runs once the context is done");
        assert!(ran.try_recv().is_err(), "the call runs once");
        assert!(!after.stop(), "a started call cannot be stopped");
    });
}

#[test]
fn cancel_races_stop() {
    loom::model(|| {
        let (ctx, cancel) = root();
        let (call, ran) = reporting();
        let after = ctx.after_func(call);
        let canceller = thread::spawn(move || cancel.cancel());
        let stopped = after.stop();
        canceller.join().unwrap();

        if stopped {
            assert!(ran.try_recv().is_err(), "a stopped call never starts");
        } else {
            ran.recv().expect("a call that was not stopped runs");
        }
        assert!(!after.stop(), "only one stop can succeed");
    });
}

#[test]
fn concurrent_cancels_agree_on_one_cause() {
    loom::model(|| {
        let (ctx, cancel) = root();
        let (child, _) = ctx.with_cancel();
        let other = cancel.clone();
        let first = thread::spawn(move || other.cancel_with(Cause::msg("first")));
        cancel.cancel_with(Cause::msg("second"));
        first.join().unwrap();

        let winner = ctx.cause().unwrap().to_string();
        assert!(winner == "first" || winner == "second");
        assert_eq!(
            child.cause().unwrap().to_string(),
            winner,
            "descendants share the cause"
        );
    });
}

#[test]
fn done_future_is_woken_by_a_racing_cancel() {
    loom::model(|| {
        let (ctx, cancel) = root();
        let (child, _) = ctx.with_cancel();
        let waiter = thread::spawn(move || loom::future::block_on(child.done()));
        cancel.cancel();
        waiter.join().unwrap();
    });
}

#[test]
fn err_and_cause_agree_while_a_cancel_is_in_flight() {
    loom::model(|| {
        let (ctx, cancel) = root();
        let (child, _) = ctx.with_cancel();
        let canceller = thread::spawn(move || cancel.cancel_with(Cause::msg("stop")));
        if child.err().is_some() {
            let cause = child.cause().expect("a done context has a cause");
            assert_eq!(cause.to_string(), "stop");
        }
        canceller.join().unwrap();
        assert_eq!(child.cause().unwrap().to_string(), "stop");
    });
}

#[test]
fn watch_is_woken_by_a_racing_cancel() {
    loom::model(|| {
        let (ctx, cancel) = root();
        let waiter = thread::spawn(move || {
            let mut watch = ctx.watch();
            loom::future::block_on(async {
                // Two runs on one registration: the second reuses it.
                let first = watch.run(std::future::ready(())).await;
                let second = watch.run(std::future::pending::<()>()).await;
                assert!(first.is_ok() || first == Err(Error::Canceled));
                assert_eq!(second, Err(Error::Canceled));
            })
        });
        cancel.cancel();
        waiter.join().unwrap();
    });
}

#[test]
fn a_cancel_returns_only_once_the_subtree_is_done() {
    loom::model(|| {
        let (ctx, cancel) = root();
        let (mid, mid_cancel) = ctx.with_cancel();
        let (leaf, _) = mid.with_cancel();
        let other = thread::spawn(move || mid_cancel.cancel());
        // Whether this call or the other thread reaches `mid` first, `leaf` is done when it
        // returns: a cancel that meets a subtree in flight waits for it.
        cancel.cancel();
        assert!(
            leaf.is_done(),
            "propagation is synchronous for every canceller"
        );
        other.join().unwrap();
    });
}

#[test]
fn cancel_races_linking() {
    loom::model(|| {
        let (first, _first_cancel) = root();
        let (other, cancel) = root();
        let canceller = thread::spawn(move || cancel.cancel_with(Cause::msg("other ended")));
        let (linked, _linked_cancel) = first.with_linked([&other]);
        canceller.join().unwrap();

        // Linked after the cancel (born done) or reached by it: either way done, with its cause.
        assert_eq!(linked.err(), Some(Error::Canceled));
        assert_eq!(linked.cause().unwrap().to_string(), "other ended");
        assert!(first.err().is_none(), "the first parent is not touched");
    });
}

#[test]
fn both_parents_cancel_a_linked_context_at_once() {
    loom::model(|| {
        let (first, cancel_first) = root();
        let (other, cancel_other) = root();
        let (linked, _linked_cancel) = first.with_linked([&other]);
        let (below, _) = linked.with_cancel();
        let canceller = thread::spawn(move || cancel_other.cancel());
        cancel_first.cancel();
        // Whichever cancel reached it first, the linked subtree is done once each returned.
        assert_eq!(below.err(), Some(Error::Canceled));
        canceller.join().unwrap();
        assert_eq!(linked.err(), Some(Error::Canceled));
        drop((linked, below));
        assert_eq!(first.__live_children(), 0);
    });
}
