//! The cancellation tree: nodes, how a child attaches to its parent, how cancellation spreads
//! downward and how a dropped child detaches.
//!
//! Every [`Context`](crate::Context) points at a [`Node`]. A cancel or deadline layer creates a
//! node; a value layer does not (values live beside the node, see `values.rs`).
//!
//! # Invariants
//!
//! 1. A node's reason (`state & REASON`) goes from open to `CANCELED` or `DEADLINE` once, under
//!    the node's own lock, and never changes again. Reads of the reason need no lock.
//! 2. A node's `cause` is written before its reason, under the same lock, so whoever sees the
//!    reason (Acquire) and then takes the lock sees the cause.
//! 3. A parent's `children` slab holds a `Weak` to every attached child, at the key stored in the
//!    child's `slot`. Only that child removes that key (when it drops), and only a cancel takes the
//!    whole slab. Once a node is done its slab is gone and nothing is ever inserted again: a child
//!    of a done parent is born done and detached.
//! 4. When any `cancel` call returns — also one that lost the race to another thread — every
//!    descendant attached at the time is done (propagation is synchronous). A cancel that meets
//!    a node another thread is still cancelling waits until that thread marks it `COMPLETE`
//!    (its whole subtree done). Waits only go from the canceller of an ancestor to the canceller
//!    of a disjoint subtree below it, so they cannot form a cycle.
//! 5. Wakers and `after_func` entries are only taken out under the lock; they are woken and
//!    started after every lock is released, so user code never runs under a lock of the tree.
//! 6. A node's `links` hold a `Weak` to each node linked to it that is not its child
//!    (`Context::with_linked`), at the key kept by that node's [`Link`], which alone removes
//!    it, as #3 says of children. A cancel takes them under the lock like its children, but
//!    cancels each with a call of its own once its subtree is complete and every lock is
//!    released: a linked node is never part of a subtree being cancelled, so the waits of #4
//!    still only go downward and cannot form a cycle, and it is done before the cancel that
//!    reached it returns.
//!
//! # Deadlock safety
//!
//! No code path holds two node locks at once: child creation locks the parent, a dropping child
//! locks its parent, cancel locks one node at a time (collecting children under the lock and
//! visiting them after releasing it), and waiters lock only the node they wait on.
//!
//! # Deadlines
//!
//! A node's `deadline` is its effective one: the earlier of its own and its parent's, so
//! deadlines never grow going down the tree. The node whose own deadline is the effective one
//! has `OWNS_DEADLINE` (the shared timer arms owners). Expiry is noticed lazily — `is_done`
//! compares the deadline with tokio's clock — and, when someone waits, by the shared timer
//! (`timer.rs`). Whoever notices it cancels the topmost node whose deadline has passed, which
//! reaches every descendant through invariant #4, so every node that Go's timers would have
//! ended by now is ended. A cancel that reaches a node whose deadline has already passed
//! (unnoticed) records `DeadlineExceeded` there, as Go's timer would have fired first.

use std::sync::{Arc, Weak};
use std::task::Waker;

use tokio::time::Instant;

use crate::after_func::AfterEntry;
use crate::cause::Cause;
use crate::error::Error;
use crate::loom::{thread, AtomicU8, Mutex, MutexGuard, Ordering};
use crate::slab::Slab;
use crate::timer;

/// `state & REASON`: open (0), [`CANCELED`] or [`DEADLINE`].
const REASON: u8 = 0b0000_0011;
pub(crate) const CANCELED: u8 = 0b0000_0001;
pub(crate) const DEADLINE: u8 = 0b0000_0010;
/// This node's own deadline is its effective one: expiry cancels this node.
const OWNS_DEADLINE: u8 = 0b0000_0100;
/// The node can never be cancelled (background, `without_cancel`): children do not attach.
const NEVER: u8 = 0b0000_1000;
/// The shared timer holds an entry for this node's deadline.
const TIMER_ARMED: u8 = 0b0001_0000;
/// The node and its whole subtree are done (invariant #4).
const COMPLETE: u8 = 0b0010_0000;
/// Removed from the parent's `children` by its own cancel: its slot may belong to another
/// child now, so dropping it must not touch the parent's slab (invariant #3).
const DETACHED: u8 = 0b1000_0000;
/// `deadline` is set: `is_done` must read the clock. A bit, so an open node without deadline
/// answers from the one load it makes anyway.
const HAS_DEADLINE: u8 = 0b0100_0000;

pub(crate) struct Node {
    state: AtomicU8,
    /// Key of this node in the parent's `children` slab (invariant #3); unused when detached.
    /// A `u32` rather than a `usize`: it packs beside `state`, which keeps a node at 48 bytes.
    slot: u32,
    /// The effective deadline: the earlier of this node's own and its parent's.
    deadline: Option<Instant>,
    /// `None` for roots, children of never-cancelled nodes and children born done.
    parent: Option<Arc<Node>>,
    /// Boxed so that a leaf that nobody waits on costs one word here.
    inner: Mutex<Option<Box<Inner>>>,
}

#[derive(Default)]
pub(crate) struct Inner {
    children: Slab<Weak<Node>>,
    pub(crate) wakers: Slab<Waker>,
    pub(crate) after: Slab<AfterEntry>,
    /// Linked contexts (`Context::with_linked`) that end when this node does, though it is
    /// not their parent. Each is removed by its own [`Link`] when it drops.
    links: Slab<Weak<Node>>,
    /// This node's links to nodes other than its parent: dropped with it, which removes them.
    _linked_to: Vec<Link>,
    /// The cause given to `cancel_with`, or inherited from the ancestor whose cancel reached this
    /// node. `None` with a reason set means the plain `Error`.
    cause: Option<Cause>,
}

/// One `cancel` call: what it sets, and what it collected along the way.
struct Cancel {
    reason: u8,
    cause: Option<Cause>,
    /// Read once, when the first node with a deadline is reached.
    now: Option<Instant>,
    pending: Vec<Arc<Node>>,
    fired: Fired,
    /// Nodes whose timer entry this cancel made useless.
    stale_timers: usize,
}

impl Cancel {
    fn now(&mut self) -> Instant {
        *self.now.get_or_insert_with(Instant::now)
    }
}

enum Outcome {
    /// This call moved the node to done; `complete` if it had no children, so that its
    /// subtree is complete already.
    Canceled { complete: bool },
    /// The node was already done; another cancel may still be working on its subtree.
    Busy,
    /// The node can never be cancelled.
    Never,
}

/// What a finished cancel hands back to run outside every lock (invariant #5).
#[derive(Default)]
struct Fired {
    wakers: Vec<Waker>,
    after: Vec<AfterEntry>,
    /// Linked nodes to cancel, with the reason and cause of the node they are linked to.
    links: Vec<(Weak<Node>, u8, Option<Cause>)>,
}

impl Node {
    /// A node without parent.
    fn detached(state: u8, deadline: Option<Instant>, cause: Option<Cause>) -> Node {
        let inner = cause.map(|cause| {
            Box::new(Inner {
                cause: Some(cause),
                ..Inner::default()
            })
        });
        Node {
            state: AtomicU8::new(state),
            slot: 0,
            deadline,
            parent: None,
            inner: Mutex::new(inner),
        }
    }

    /// The node behind `Context::background()`: never cancelled, without deadline.
    pub(crate) fn never() -> Arc<Node> {
        #[cfg(not(loom))]
        {
            static BACKGROUND: std::sync::OnceLock<Arc<Node>> = std::sync::OnceLock::new();
            BACKGROUND
                .get_or_init(|| Arc::new(Node::detached(NEVER, None, None)))
                .clone()
        }
        // Loom's atomics must not outlive a model, so every model gets fresh nodes.
        #[cfg(loom)]
        Arc::new(Node::detached(NEVER, None, None))
    }

    /// A child of `parent` with its own `deadline`, if any. Attaches it (invariant #3) unless the
    /// parent can never be cancelled. It is born done, and detached, if the parent is done (with
    /// the parent's reason and cause, as Go does) or else if its own deadline has passed.
    pub(crate) fn child(parent: &Arc<Node>, deadline: Option<Instant>) -> Arc<Node> {
        let (deadline, owns) = match (deadline, parent.deadline) {
            (Some(own), Some(inherited)) if inherited <= own => (Some(inherited), false),
            (Some(own), _) => (Some(own), true),
            (None, inherited) => (inherited, false),
        };
        let flags = match (deadline, owns) {
            (None, _) => 0,
            (Some(_), false) => HAS_DEADLINE,
            (Some(_), true) => HAS_DEADLINE | OWNS_DEADLINE,
        };
        let expired = owns && deadline.is_some_and(|d| d <= Instant::now());

        if !parent.can_be_canceled() {
            let born = if expired { DEADLINE | COMPLETE } else { 0 };
            return Arc::new(Node::detached(flags | born, deadline, None));
        }
        // Notices an expired inherited deadline, so the child is born done rather than attached
        // to a parent that only looks open.
        parent.is_done();

        let mut guard = parent.lock();
        let reason = parent.reason();
        if reason != 0 {
            // Invariant #2: the cause is complete once the reason is visible under the lock.
            let cause = guard.as_ref().and_then(|inner| inner.cause.clone());
            drop(guard);
            return Arc::new(Node::detached(flags | reason | COMPLETE, deadline, cause));
        }
        if expired {
            drop(guard);
            return Arc::new(Node::detached(flags | DEADLINE | COMPLETE, deadline, None));
        }
        let children = &mut guard.get_or_insert_with(Box::default).children;
        Arc::new_cyclic(|weak| Node {
            state: AtomicU8::new(flags),
            slot: u32::try_from(children.insert(weak.clone()))
                .expect("a context has fewer than 4 billion live children"),
            deadline,
            parent: Some(parent.clone()),
            inner: Mutex::new(None),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Option<Box<Inner>>> {
        // A panic never happens while the lock is held (only slab and Vec operations run under
        // it), so poisoning carries no meaning here.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The reason bits, without looking at the clock.
    #[inline]
    fn reason(&self) -> u8 {
        // Acquire: pairs with the Release in `cancel_one`, so a reader that sees the reason also
        // sees everything written before it (invariant #2).
        self.state.load(Ordering::Acquire) & REASON
    }

    /// `true` once a cancel has reached this node; unlike `is_done`, never reads the clock, so
    /// it can be called under the node's lock.
    #[inline]
    pub(crate) fn has_reason(&self) -> bool {
        self.reason() != 0
    }

    /// Runs `add` on the node's lists, under its lock, while the node is open; `None` once it
    /// is done. A listener added here is always taken by the cancel that ends the node
    /// (invariant #5), since cancels take the lists under this same lock.
    pub(crate) fn if_open<R>(&self, add: impl FnOnce(&mut Inner) -> R) -> Option<R> {
        // A deadline that has passed is noticed before locking: expiring takes the lock itself.
        if self.is_done() {
            return None;
        }
        let mut guard = self.lock();
        if self.has_reason() {
            return None;
        }
        Some(add(guard.get_or_insert_with(Box::default)))
    }

    /// `true` while the node is neither cancelled nor carrying a deadline: then it is open
    /// without reading the clock. One relaxed load (an open node tells its reader nothing to
    /// synchronise with), so a caller's own state can stay in registers across it.
    #[inline]
    pub(crate) fn quiet(&self) -> bool {
        self.state.load(Ordering::Relaxed) & (REASON | HAS_DEADLINE) == 0
    }

    /// `true` once the node is cancelled or its deadline has passed.
    ///
    /// The fast path is one atomic load. A node with a deadline also reads the clock and, when
    /// the deadline has passed, expires it (see `expire`) so that every observer agrees.
    #[inline]
    pub(crate) fn is_done(&self) -> bool {
        if self.quiet() {
            return false;
        }
        // `has_reason` loads with Acquire, so a reader that sees the cancel sees what came
        // before it (invariant #2).
        self.has_reason() || self.check_deadline()
    }

    #[cold]
    fn check_deadline(&self) -> bool {
        let now = Instant::now();
        if self.deadline.is_none_or(|deadline| deadline > now) {
            return false;
        }
        self.expire(now);
        true
    }

    /// The deadline has passed by `now`: cancel the topmost node whose deadline has passed,
    /// which ends this node and every other expired node around it, as Go's timers would
    /// have. When that returns this node is done (invariant #4), whoever got there first.
    ///
    /// Deadlines never grow going down the tree, so the expired nodes above this one form an
    /// unbroken chain; the topmost of them owns its deadline.
    pub(crate) fn expire(&self, now: Instant) {
        let mut top = self;
        while let Some(parent) = &top.parent {
            if parent.deadline.is_none_or(|deadline| deadline > now) {
                break;
            }
            top = parent;
        }
        top.cancel(DEADLINE, None);
    }

    /// Waits until the thread cancelling this node has finished its subtree (invariant #4).
    fn wait_complete(&self) {
        // Acquire: pairs with the Release that sets COMPLETE, so every descendant's state is
        // visible once it is seen.
        while self.state.load(Ordering::Acquire) & COMPLETE == 0 {
            thread::yield_now();
        }
    }

    /// Why the node is done, once it is.
    #[inline]
    pub(crate) fn err(&self) -> Option<Error> {
        if !self.is_done() {
            return None;
        }
        Some(match self.reason() {
            DEADLINE => Error::DeadlineExceeded,
            _ => Error::Canceled,
        })
    }

    /// The cause of a done node: the one given to `cancel_with`, else its `Error`.
    pub(crate) fn cause(&self) -> Option<Cause> {
        let err = self.err()?;
        let given = self.lock().as_ref().and_then(|inner| inner.cause.clone());
        Some(given.unwrap_or_else(|| Cause::new(err)))
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether this node or one of its descendants has an `after_func` call pending. Walks
    /// the subtree one lock at a time; for the rare moment a runtime shuts down with deadlines
    /// pending (see `timer::Abandon`).
    pub(crate) fn has_pending_after_func(self: &Arc<Node>) -> bool {
        let mut stack = vec![self.clone()];
        while let Some(node) = stack.pop() {
            let guard = node.lock();
            if let Some(inner) = guard.as_ref() {
                if !inner.after.is_empty() {
                    return true;
                }
                stack.extend(inner.children.iter().filter_map(Weak::upgrade));
            }
            // The lock goes before the node, which may be its last handle (its drop locks its
            // parent).
            drop(guard);
        }
        false
    }

    #[inline]
    pub(crate) fn can_be_canceled(&self) -> bool {
        self.state.load(Ordering::Relaxed) & NEVER == 0
    }

    /// Sets `TIMER_ARMED` on the owner of this node's deadline and returns the owner and its
    /// deadline if this call is the one that must arm the shared timer.
    pub(crate) fn claim_timer(self: &Arc<Node>) -> Option<(Arc<Node>, Instant)> {
        let deadline = self.deadline?;
        let mut owner = self;
        while owner.state.load(Ordering::Relaxed) & OWNS_DEADLINE == 0 {
            owner = owner.parent.as_ref()?;
        }
        let before = owner.state.fetch_or(TIMER_ARMED, Ordering::Relaxed);
        (before & (TIMER_ARMED | REASON) == 0).then(|| (owner.clone(), deadline))
    }

    /// The timer that held this node's entry went away: let the next waiter arm a new one.
    pub(crate) fn disarm_timer(&self) {
        self.state.fetch_and(!TIMER_ARMED, Ordering::Relaxed);
    }

    /// Cancels this node and every attached descendant with `reason` (`CANCELED` or `DEADLINE`)
    /// and `cause`. Returns `false` if the node was already done (the first cancel wins).
    ///
    /// Iterative, so a chain a million deep cannot overflow the stack. Each node is locked on its
    /// own: its children are collected under its lock and visited after it is released (see
    /// "Deadlock safety"). Wakers and `after_func`s run once every node is done (invariant #5).
    pub(crate) fn cancel(&self, reason: u8, cause: Option<Cause>) -> bool {
        let mut run = Cancel {
            reason,
            cause,
            now: None,
            pending: Vec::new(),
            fired: Fired::default(),
            stale_timers: 0,
        };
        let complete = match self.cancel_one(&mut run) {
            Outcome::Canceled { complete } => complete,
            Outcome::Busy => {
                self.wait_complete();
                return false;
            }
            Outcome::Never => return false,
        };
        let mut canceled = Vec::new();
        let mut busy = Vec::new();
        while let Some(child) = run.pending.pop() {
            match child.cancel_one(&mut run) {
                Outcome::Canceled { complete: false } => canceled.push(child),
                Outcome::Canceled { complete: true } => {}
                Outcome::Busy => busy.push(child),
                Outcome::Never => {}
            }
        }
        // Invariant #4: subtrees another thread is cancelling must be finished before ours is
        // declared complete.
        for node in &busy {
            node.wait_complete();
        }
        let this = (!complete).then_some(self);
        for node in canceled.iter().map(|node| &**node).chain(this) {
            // Release: publishes every state written by this cancel to `wait_complete`.
            node.state.fetch_or(COMPLETE, Ordering::Release);
        }
        // As Go does, a cancelled context leaves its parent now rather than when its last
        // handle drops. Only once its subtree is complete: until then a concurrent cancel of
        // the parent must find it, to wait for it (invariant #4).
        if let Some(parent) = &self.parent {
            self.state.fetch_or(DETACHED, Ordering::Relaxed);
            parent.detach(self.slot as usize);
        }
        timer::forget(run.stale_timers);
        for waker in run.fired.wakers {
            waker.wake();
        }
        for entry in run.fired.after {
            entry.fire();
        }
        // Linked nodes are not descendants: each is cancelled on its own, once every lock of
        // this cancel is released and its subtree is complete, so a cancel never waits on one
        // that waits on it (invariant #4 holds for each call). They are done before this call
        // returns.
        for (link, reason, cause) in run.fired.links {
            if let Some(node) = link.upgrade() {
                node.cancel(reason, cause);
            }
        }
        true
    }

    fn cancel_one(&self, run: &mut Cancel) -> Outcome {
        if !self.can_be_canceled() {
            return Outcome::Never;
        }
        // A deadline that passed unnoticed ended this node before the cancel got here.
        let expired = self.deadline.is_some_and(|deadline| run.now() >= deadline);
        let (reason, cause) = if expired {
            (DEADLINE, None)
        } else {
            (run.reason, run.cause.as_ref())
        };
        let mut guard = self.lock();
        // Invariant #1: only the first cancel moves the reason, and only under the lock.
        if self.reason() != 0 {
            return Outcome::Busy;
        }
        let mut leaf = true;
        if let Some(inner) = guard.as_mut() {
            let before = run.pending.len();
            run.pending
                .extend(inner.children.drain().filter_map(|weak| weak.upgrade()));
            leaf = run.pending.len() == before;
            run.fired.wakers.extend(inner.wakers.drain());
            run.fired.after.extend(inner.after.drain());
            let given = cause.cloned();
            run.fired.links.extend(
                inner
                    .links
                    .drain()
                    .map(|link| (link, reason, given.clone())),
            );
        }
        // The emptied lists keep their memory until the node is dropped: cancelling does only
        // what must happen before `cancel` returns.
        if let Some(cause) = cause {
            guard.get_or_insert_with(Box::default).cause = Some(cause.clone());
        }
        // A node without children is complete as soon as it is done (invariant #4): no child
        // can attach to it any more (invariant #3).
        let complete = if leaf { COMPLETE } else { 0 };
        // Release: publishes the cause written above before the reason (invariant #2).
        let before = self.state.fetch_or(reason | complete, Ordering::Release);
        if before & TIMER_ARMED != 0 {
            run.stale_timers += 1;
        }
        drop(guard);
        Outcome::Canceled { complete: leaf }
    }

    /// Number of attached children (for leak tests). A child whose deadline has passed
    /// unnoticed is expired first, so it is not counted: it would have left at its deadline.
    pub(crate) fn live_children(&self) -> usize {
        let now = Instant::now();
        let expired: Vec<Arc<Node>> = self.lock().as_ref().map_or_else(Vec::new, |inner| {
            inner
                .children
                .iter()
                .filter_map(Weak::upgrade)
                .filter(|child| child.deadline.is_some_and(|deadline| deadline <= now))
                .collect()
        });
        for child in &expired {
            child.expire(now);
        }
        drop(expired);
        self.lock().as_ref().map_or(0, |inner| inner.children.len())
    }

    /// Removes the child at `slot` (invariant #3); a no-op once this node was cancelled.
    fn detach(&self, slot: usize) {
        let removed = self
            .lock()
            .as_mut()
            .and_then(|inner| inner.children.remove(slot));
        // The Weak is dropped outside the lock; it cannot free a node, only its allocation.
        drop(removed);
    }

    /// Removes a waiter's waker; `None` once the node is done (its wakers were taken).
    pub(crate) fn remove_waker(&self, key: usize) -> Option<Waker> {
        self.lock()
            .as_mut()
            .and_then(|inner| inner.wakers.remove(key))
    }
}

/// A link from a node to another that is not its parent (`Context::with_linked`): held by the
/// linked node, it keeps the other alive (as a child keeps its parent) and removes the linked
/// node's entry from it when dropped.
pub(crate) struct Link {
    to: Arc<Node>,
    key: usize,
}

impl Drop for Link {
    fn drop(&mut self) {
        // A no-op once `to` was cancelled: its `links` were taken then, and nothing is inserted
        // into a done node (invariant #3 holds for `links` as for `children`).
        let removed = self
            .to
            .lock()
            .as_mut()
            .and_then(|inner| inner.links.remove(self.key));
        drop(removed);
    }
}

impl Node {
    /// Links `node` to `to`: `node` is cancelled when `to` is, with its reason and cause, as if
    /// it were its child. If `to` is done already, `node` is cancelled now.
    pub(crate) fn link(node: &Arc<Node>, to: &Arc<Node>) {
        if !to.can_be_canceled() {
            return;
        }
        let weak = Arc::downgrade(node);
        match to.if_open(|inner| inner.links.insert(weak)) {
            Some(key) => {
                let link = Link {
                    to: to.clone(),
                    key,
                };
                node.lock()
                    .get_or_insert_with(Box::default)
                    ._linked_to
                    .push(link);
            }
            None => {
                let reason = if to.err() == Some(Error::DeadlineExceeded) {
                    DEADLINE
                } else {
                    CANCELED
                };
                let cause = to.lock().as_ref().and_then(|inner| inner.cause.clone());
                node.cancel(reason, cause);
            }
        }
    }

    /// Linked nodes registered on this node and not dropped (for leak tests).
    #[cfg(test)]
    pub(crate) fn live_links(&self) -> usize {
        self.lock().as_ref().map_or(0, |inner| inner.links.len())
    }
}

impl Node {
    /// Takes the parent out of a node that is going away, detaching from it unless the node's
    /// cancel already did, and tells the shared timer when its entry for the node is stale.
    fn release_parent(&mut self) -> Option<Arc<Node>> {
        let state = self.state.load(Ordering::Relaxed);
        // Also for a node with no parent (a child of `background()`): its timer entry, if
        // any, is now stale.
        if state & (TIMER_ARMED | REASON) == TIMER_ARMED {
            timer::forget(1);
        }
        let parent = self.parent.take()?;
        if state & DETACHED == 0 {
            parent.detach(self.slot as usize);
        }
        Some(parent)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Releasing the parent may drop it too, and so on up the chain: walk it in a loop
        // rather than recursively, so that dropping the last handle of a very deep chain cannot
        // overflow the stack.
        let mut next = self.release_parent();
        while let Some(node) = next {
            next = Arc::into_inner(node).and_then(|mut last| last.release_parent());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_stays_small() {
        // A leaf that nobody waits on: state, slot, deadline, parent and a boxed inner.
        assert!(
            std::mem::size_of::<Node>() <= 48,
            "{}",
            std::mem::size_of::<Node>()
        );
    }

    #[test]
    fn a_linked_node_leaves_both_nodes_when_dropped() {
        let parent = Arc::new(Node::detached(0, None, None));
        let other = Arc::new(Node::detached(0, None, None));
        for _ in 0..1_000_000 {
            let linked = Node::child(&parent, None);
            Node::link(&linked, &other);
            assert_eq!(other.live_links(), 1);
            drop(linked);
        }
        assert_eq!(parent.live_children(), 0);
        assert_eq!(other.live_links(), 0, "every link left with its node");

        let linked = Node::child(&parent, None);
        let below = Node::child(&linked, None);
        Node::link(&linked, &other);
        assert!(other.cancel(CANCELED, Some(Cause::msg("other ended"))));
        assert!(
            linked.is_done() && below.is_done(),
            "at once, with its subtree"
        );
        assert_eq!(linked.cause().unwrap().to_string(), "other ended");
        assert!(!parent.is_done());
    }

    #[test]
    fn dropping_a_deep_chain_does_not_overflow() {
        let root = Arc::new(Node::detached(0, None, None));
        let mut leaf = root.clone();
        for _ in 0..200_000 {
            leaf = Node::child(&leaf, None);
        }
        assert_eq!(root.live_children(), 1);
        drop(leaf);
        assert_eq!(root.live_children(), 0);
    }

    #[test]
    fn cancelling_a_deep_chain_does_not_overflow() {
        let root = Arc::new(Node::detached(0, None, None));
        let mut chain = vec![root.clone()];
        for _ in 0..200_000 {
            let next = Node::child(chain.last().unwrap(), None);
            chain.push(next);
        }
        assert!(root.cancel(CANCELED, None));
        assert!(chain.iter().all(|node| node.is_done()));
        assert!(!root.cancel(DEADLINE, None), "the first cancel wins");
    }
}
