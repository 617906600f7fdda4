//! No leaks by construction: dropped children leave their parent, observed through
//! `Context::__live_children()`, without any call to `cancel()`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ctxpipe::Context;
use tokio::sync::oneshot;

/// Sets its flag when dropped, to observe that a closure was released.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_child_detaches_once_its_context_and_handle_are_dropped() {
    let (parent, _cancel) = Context::background().with_cancel();
    let (child, handle) = parent.with_cancel();
    assert_eq!(parent.__live_children(), 1, "attached while held");
    drop(child);
    assert_eq!(
        parent.__live_children(),
        1,
        "the CancelHandle alone keeps it attached"
    );
    drop(handle);
    assert_eq!(parent.__live_children(), 0, "detached once all is dropped");

    let (child, handle) = parent.with_timeout(Duration::from_secs(60));
    drop(handle);
    assert_eq!(
        parent.__live_children(),
        1,
        "the Context alone keeps it attached"
    );
    drop(child);
    assert_eq!(
        parent.__live_children(),
        0,
        "detached in the other order too"
    );
    assert!(!parent.is_done(), "dropping never cancels the parent");
}

#[test]
fn let_underscore_drops_the_handle_at_once_and_the_child_with_its_context() {
    let (parent, _cancel) = Context::background().with_cancel();
    {
        let (_child, _) = parent.with_cancel();
        assert_eq!(parent.__live_children(), 1);
    }
    assert_eq!(parent.__live_children(), 0);
}

#[test]
fn value_layers_add_no_children() {
    let (parent, _cancel) = Context::background().with_cancel();
    let values: Vec<Context> = (0..100u32).map(|i| parent.with_value(i)).collect();
    assert_eq!(parent.__live_children(), 0, "a value layer is not a child");
    let child = values[7].with_cancel();
    assert_eq!(
        parent.__live_children(),
        1,
        "a child of a value layer hangs off the parent node"
    );
    assert_eq!(
        values[7].__live_children(),
        1,
        "seen through the value layer"
    );
    drop(child);
    assert_eq!(parent.__live_children(), 0);
}

#[test]
fn clones_keep_a_child_attached() {
    let (parent, _cancel) = Context::background().with_cancel();
    let (child, handle) = parent.with_cancel();
    let clones: Vec<Context> = (0..10).map(|_| child.clone()).collect();
    let value = child.with_value(1u8);
    let handle_clone = handle.clone();
    drop((child, handle));
    assert_eq!(parent.__live_children(), 1, "clones keep it attached");
    drop(clones);
    drop(handle_clone);
    assert_eq!(
        parent.__live_children(),
        1,
        "a value layer of the child keeps it attached"
    );
    drop(value);
    assert_eq!(parent.__live_children(), 0, "all dropped");
}

#[test]
fn a_grandchild_keeps_its_parent_attached() {
    let (root, _cancel) = Context::background().with_cancel();
    let (child, handle) = root.with_cancel();
    let grandchild = child.with_cancel();
    drop((child, handle));
    assert_eq!(root.__live_children(), 1, "held through the grandchild");
    drop(grandchild);
    assert_eq!(root.__live_children(), 0, "the whole chain left");
}

#[test]
fn a_long_lived_parent_ends_with_no_children_after_a_million() {
    let (parent, _cancel) = Context::background().with_cancel();
    for i in 0..1_000_000u32 {
        let (child, handle) = if i % 2 == 0 {
            parent.with_cancel()
        } else {
            parent.with_timeout(Duration::from_secs(3600))
        };
        if i % 1000 == 0 {
            let (grandchild, _) = child.with_value(i).with_cancel();
            assert!(!grandchild.is_done(), "#{i} is open");
        }
        drop((child, handle));
    }
    assert_eq!(parent.__live_children(), 0, "no child is left behind");
}

#[test]
fn many_live_children_then_dropped_in_any_order() {
    let (parent, _cancel) = Context::background().with_cancel();
    let mut children: Vec<_> = (0..1000).map(|_| parent.with_cancel()).collect();
    assert_eq!(parent.__live_children(), 1000);
    // Drop every third, then the rest from the back, so freed slots are reused in between.
    let mut i = 0;
    children.retain(|_| {
        i += 1;
        i % 3 != 0
    });
    assert_eq!(parent.__live_children(), children.len());
    let more: Vec<_> = (0..100).map(|_| parent.with_cancel()).collect();
    assert_eq!(parent.__live_children(), children.len() + 100);
    while children.pop().is_some() {}
    drop(more);
    assert_eq!(parent.__live_children(), 0);
}

#[tokio::test]
async fn a_pending_after_func_keeps_its_child_attached_until_stopped() {
    let (parent, _cancel) = Context::background().with_cancel();
    let (child, handle) = parent.with_cancel();
    let call = child.after_func(|| unreachable!("stopped before any cancel"));
    drop((child, handle));
    assert_eq!(
        parent.__live_children(),
        1,
        "the pending call keeps the child attached"
    );
    assert!(call.stop(), "stopped while pending");
    assert_eq!(
        parent.__live_children(),
        0,
        "detached once stopped, though the handle is kept"
    );
    assert!(!call.stop(), "stopped once");
}

#[tokio::test(start_paused = true)]
async fn a_pending_after_func_keeps_its_child_attached_until_it_fires() {
    let (parent, _cancel) = Context::background().with_cancel();
    let (child, handle) = parent.with_timeout(Duration::from_secs(1));
    let (tx, rx) = oneshot::channel();
    drop(child.after_func(move || {
        let _ = tx.send(());
    }));
    drop((child, handle));
    assert_eq!(
        parent.__live_children(),
        1,
        "the pending call keeps the child attached"
    );
    rx.await.expect("the call fired at the child's deadline");
    assert_eq!(parent.__live_children(), 0, "detached once it fired");
    assert!(
        !parent.is_done(),
        "the child's deadline is not the parent's"
    );
}

#[test]
fn a_cancelled_parent_reports_no_children() {
    let (parent, cancel) = Context::background().with_cancel();
    let children: Vec<_> = (0..100).map(|_| parent.with_cancel()).collect();
    let (with_pending, _h) = parent.with_cancel();
    let call = with_pending.after_func(|| ());
    assert_eq!(parent.__live_children(), 101);
    cancel.cancel();
    assert_eq!(parent.__live_children(), 0, "a cancel takes every child");
    let (late, _) = parent.with_cancel();
    assert!(late.is_done(), "a late child is born done");
    assert_eq!(parent.__live_children(), 0, "and is not attached");
    drop((children, call));
}

#[test]
fn dropping_the_leaf_of_a_deep_chain_does_not_overflow_the_stack() {
    let (root, _cancel) = Context::background().with_cancel();
    let mut leaf = root.clone();
    for depth in 0..100_000u32 {
        leaf = if depth % 10 == 0 {
            leaf.with_value(depth).with_cancel().0
        } else {
            leaf.with_cancel().0
        };
    }
    assert_eq!(root.__live_children(), 1, "the chain hangs off the root");
    drop(leaf);
    assert_eq!(root.__live_children(), 0, "the whole chain was released");
}

#[test]
fn cancelling_the_root_of_a_deep_chain_does_not_overflow_the_stack() {
    let (root, cancel) = Context::background().with_cancel();
    let mut leaf = root.clone();
    for _ in 0..100_000u32 {
        leaf = leaf.with_cancel().0;
    }
    cancel.cancel();
    assert!(leaf.is_done(), "the cancel reached the leaf");
    drop(leaf);
    assert_eq!(root.__live_children(), 0);
}

#[tokio::test]
async fn a_dropped_done_future_does_not_keep_the_child_attached() {
    let (parent, _cancel) = Context::background().with_cancel();
    let (child, handle) = parent.with_timeout(Duration::from_secs(3600));
    let mut done = Box::pin(child.done());
    assert!(futures::poll!(done.as_mut()).is_pending(), "open");
    drop((child, handle));
    assert_eq!(
        parent.__live_children(),
        1,
        "a pending done() holds the child"
    );
    drop(done);
    assert_eq!(parent.__live_children(), 0, "released with the future");
}

#[test]
fn after_func_on_a_never_cancelled_context_keeps_nothing() {
    for (name, ctx) in [
        ("background", Context::background()),
        (
            "without_cancel",
            Context::background().with_cancel().0.without_cancel(),
        ),
    ] {
        let released = Arc::new(AtomicBool::new(false));
        let flag = DropFlag(released.clone());
        let call = ctx.after_func(move || drop(flag));
        assert!(call.stop(), "{name}: stop() stops a call that never ran");
        assert!(!call.stop(), "{name}: only the first stop() stops it");
        drop(call);
        assert!(
            released.load(Ordering::SeqCst),
            "{name}: a call that can never run is released with its handle"
        );
    }
}

/// A context value that counts how often values of its kind are dropped.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn every_value_is_dropped_once_with_the_last_context_that_sees_it() {
    let drops = Arc::new(AtomicUsize::new(0));
    let mut leaf = Context::background();
    for i in 0..1000u32 {
        // The same type over and over: each layer hides the previous value, which must still
        // be released with the chain, not leaked.
        leaf = leaf.with_value(Counted(drops.clone()));
        if i % 100 == 0 {
            leaf = leaf.with_value(i).with_cancel().0;
        }
    }
    let clone = leaf.clone();
    drop(leaf);
    assert_eq!(drops.load(Ordering::SeqCst), 0, "a clone keeps every value");
    assert!(clone.value::<Counted>().is_some());
    drop(clone);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1000,
        "each value dropped exactly once"
    );
}

#[test]
fn dropping_a_deep_chain_of_value_layers_does_not_overflow_the_stack() {
    let drops = Arc::new(AtomicUsize::new(0));
    let mut leaf = Context::background();
    for i in 0..100_000u32 {
        leaf = if i % 2 == 0 {
            leaf.with_value(Counted(drops.clone()))
        } else {
            leaf.with_value(i)
        };
    }
    assert_eq!(leaf.value::<u32>(), Some(&99_999));
    drop(leaf);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        50_000,
        "the whole chain was released"
    );
}

#[test]
fn a_cancelled_child_leaves_its_parent_at_once_and_its_slot_can_be_reused() {
    let (parent, _cancel) = Context::background().with_cancel();
    let (first, first_cancel) = parent.with_cancel();
    assert_eq!(parent.__live_children(), 1);
    first_cancel.cancel();
    assert_eq!(
        parent.__live_children(),
        0,
        "unlinked by its cancel, as in Go"
    );

    // The freed slot goes to a new child; dropping the cancelled one must not unlink it.
    let (second, _second_cancel) = parent.with_cancel();
    assert_eq!(parent.__live_children(), 1);
    drop((first, first_cancel));
    assert_eq!(parent.__live_children(), 1, "the new child is still linked");

    _cancel.cancel();
    assert!(second.is_done(), "and still reached by the parent's cancel");
}
