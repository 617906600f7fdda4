//! [`AfterFunc`]: run a function once a context is done (Go's `context.AfterFunc`).
//!
//! The pending call lives in the node's `after` slab, and its entry holds the node: the cycle
//! is deliberate. It keeps a context with a pending call attached to its parent even after every
//! handle to it is dropped, so the call still fires when an ancestor is cancelled. The cycle
//! ends when the call is started or stopped. The `AfterFunc` handle holds the node weakly, so
//! a handle kept after that keeps nothing attached.

use std::fmt;
use std::sync::{Arc, Weak};

use tokio::runtime::Handle;

use crate::loom::{thread, AtomicU8, Ordering};
use crate::tree::Node;

const PENDING: u8 = 0;
const RUNNING: u8 = 1;
const STOPPED: u8 = 2;

/// A call registered with [`Context::after_func`](crate::Context::after_func).
///
/// Dropping it does not stop the call; [`AfterFunc::stop`] does.
pub struct AfterFunc {
    shared: Arc<Shared>,
}

struct Shared {
    /// `PENDING` until the call is started (`RUNNING`) or stopped (`STOPPED`); moves once.
    state: AtomicU8,
    /// Upgradable while the call is pending: the entry holds the node.
    node: Weak<Node>,
    /// Key of the entry in the node's `after` slab.
    key: usize,
}

/// The entry kept in the node until the context is done.
pub(crate) struct AfterEntry {
    shared: Arc<Shared>,
    /// The node this entry is kept in: the deliberate cycle (see the module docs), never read.
    _node: Arc<Node>,
    call: Box<dyn FnOnce() + Send>,
    /// The runtime that was current at registration; the call is spawned there.
    runtime: Option<Handle>,
}

impl AfterFunc {
    pub(crate) fn register(node: &Arc<Node>, call: Box<dyn FnOnce() + Send>) -> AfterFunc {
        if !node.can_be_canceled() {
            // It can never run: keep nothing, and `stop()` still reports that it stopped it.
            return AfterFunc::new(PENDING, node, usize::MAX);
        }
        // Taken by the entry if the node is open, else started at once.
        let mut pending = Some((call, Handle::try_current().ok()));
        let registered = node.if_open(|inner| {
            let (call, runtime) = pending.take()?;
            let handle = AfterFunc::new(PENDING, node, inner.after.next_key());
            let key = inner.after.insert(AfterEntry {
                shared: handle.shared.clone(),
                _node: node.clone(),
                call,
                runtime,
            });
            debug_assert_eq!(key, handle.shared.key);
            Some(handle)
        });
        if let Some(handle) = registered.flatten() {
            crate::timer::arm(node);
            return handle;
        }
        if let Some((call, runtime)) = pending {
            spawn(runtime, call);
        }
        AfterFunc::new(RUNNING, node, usize::MAX)
    }

    fn new(state: u8, node: &Arc<Node>, key: usize) -> AfterFunc {
        AfterFunc {
            shared: Arc::new(Shared {
                state: AtomicU8::new(state),
                node: Arc::downgrade(node),
                key,
            }),
        }
    }

    /// Stops the call from running. Returns `true` if this stopped it; `false` if it had already
    /// started (the context is done) or was already stopped.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxpipe::Context;
    ///
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// let call = ctx.after_func(|| unreachable!("stopped before the cancel"));
    /// assert!(call.stop());
    /// assert!(!call.stop(), "only the first stop stops it");
    /// cancel.cancel();
    /// ```
    pub fn stop(&self) -> bool {
        let shared = &self.shared;
        // AcqRel/Acquire: the state is the only thing decided here; whoever wins the CAS owns the
        // entry's fate, the loser does nothing.
        if shared
            .state
            .compare_exchange(PENDING, STOPPED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        // The entry is still in the slab, or a cancel has just taken it and will see STOPPED.
        // Either way the key is ours: nothing else is inserted at it while the entry lives. If
        // the node is gone, so is the entry (it held the node).
        let Some(node) = shared.node.upgrade() else {
            return true;
        };
        let removed = node
            .lock()
            .as_mut()
            .and_then(|inner| inner.after.remove(shared.key));
        // The user's closure, and the entry's hold on the node, are dropped outside the lock.
        drop(removed);
        true
    }
}

impl AfterEntry {
    /// Starts the call unless it was stopped. Runs outside every lock (tree invariant #5).
    pub(crate) fn fire(self) {
        if self
            .shared
            .state
            .compare_exchange(PENDING, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            spawn(self.runtime, self.call);
        }
    }
}

/// Runs `call` on `runtime` as its own task, or on a new thread when there was no runtime, never
/// on the cancelling thread (as Go runs it in its own goroutine). If the runtime shuts down
/// before the task runs, the call still runs, on a new thread: it is the caller's cleanup.
fn spawn(runtime: Option<Handle>, call: Box<dyn FnOnce() + Send>) {
    match runtime {
        Some(runtime) => {
            let call = RunOnce(Some(call));
            runtime.spawn(async move { call.run() });
        }
        None => {
            thread::spawn(call);
        }
    }
}

/// A call that runs exactly once: when its task runs it, or on a new thread when the task is
/// dropped without running (its runtime shut down).
struct RunOnce(Option<Box<dyn FnOnce() + Send>>);

impl RunOnce {
    fn run(mut self) {
        if let Some(call) = self.0.take() {
            call();
        }
    }
}

impl Drop for RunOnce {
    fn drop(&mut self) {
        if let Some(call) = self.0.take() {
            thread::spawn(call);
        }
    }
}

impl fmt::Debug for AfterFunc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.shared.state.load(Ordering::Acquire) {
            PENDING => "pending",
            RUNNING => "started",
            _ => "stopped",
        };
        f.debug_struct("AfterFunc").field("state", &state).finish()
    }
}
