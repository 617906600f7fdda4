//! [`Context`], the handle users hold, and [`CancelHandle`], the right to cancel one.

use std::any::Any;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::mem::ManuallyDrop;
use std::ptr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::after_func::AfterFunc;
use crate::cause::Cause;
use crate::done::{Checked, Checkpoint, Done, Run, Watch};
use crate::error::Error;
use crate::lease::Lease;
use crate::tree::{Node, CANCELED};
use crate::values::{Layer, Values};

/// A cancellation signal, an optional deadline and a set of typed values, passed down a call
/// tree — Go's `context.Context` for tokio.
///
/// A `Context` is a cheap handle: cloning it costs two reference counts and gives another handle
/// to the same context, not a copy. Derive children with [`with_cancel`](Context::with_cancel),
/// [`with_deadline`](Context::with_deadline), [`with_timeout`](Context::with_timeout) and
/// [`with_value`](Context::with_value). Cancelling a context cancels all its descendants and
/// never its parent; a child's deadline is the earlier of its own and its parent's.
///
/// A child that is dropped — every clone and its [`CancelHandle`] — leaves its parent at once:
/// there is nothing to forget to call.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ctxpipe::{Context, Error};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// #[derive(Debug, PartialEq)]
/// struct RequestId(u64);
///
/// let root = Context::background().with_value(RequestId(7));
/// let (ctx, _cancel) = root.with_timeout(Duration::from_millis(50));
///
/// // Values are found by type, at any depth.
/// assert_eq!(ctx.value::<RequestId>(), Some(&RequestId(7)));
///
/// // A future raced against the context ends with the context's error.
/// let slow = tokio::time::sleep(Duration::from_secs(10));
/// assert_eq!(ctx.run(slow).await, Err(Error::DeadlineExceeded));
/// assert!(ctx.is_done());
/// assert!(!root.is_done(), "a child never cancels its parent");
/// # }
/// ```
pub struct Context {
    /// Dropped by `Drop` unless the handle is lent and was given back (see `lease.rs`).
    pub(crate) node: ManuallyDrop<Arc<Node>>,
    /// Shared with the parent unless this layer added a value (see `values.rs`); dropped as
    /// `node` is.
    values: ManuallyDrop<Option<Values>>,
    /// Set on a handle that a pipeline worker lent to one call: `node` and `values` are then
    /// bitwise copies of the worker's, which own the reference counts (see `lease.rs`).
    lease: Option<Lease>,
}

/// The right to cancel one context (and so all its descendants), returned by
/// [`Context::with_cancel`], [`Context::with_deadline`] and [`Context::with_timeout`].
///
/// Dropping it does **not** cancel, so `let (ctx, _) = parent.with_cancel();` is fine; use
/// [`CancelHandle::drop_guard`] for cancel-on-drop. Clones cancel the same context.
#[derive(Clone)]
pub struct CancelHandle {
    node: Arc<Node>,
}

/// Cancels its context when dropped, unless [disarmed](DropGuard::disarm). Made by
/// [`CancelHandle::drop_guard`].
#[must_use = "dropping the guard cancels the context at once"]
pub struct DropGuard {
    handle: Option<CancelHandle>,
}

impl Context {
    /// The root context: never cancelled, no deadline, no values (Go's `context.Background()`).
    ///
    /// Every call returns a handle to the same root, so this is cheap.
    ///
    /// ```
    /// let ctx = ctxpipe::Context::background();
    /// assert!(!ctx.is_done());
    /// assert_eq!(ctx.deadline(), None);
    /// ```
    pub fn background() -> Context {
        Context::from_parts(Node::never(), None)
    }

    fn from_parts(node: Arc<Node>, values: Option<Values>) -> Context {
        Context {
            node: ManuallyDrop::new(node),
            values: ManuallyDrop::new(values),
            lease: None,
        }
    }

    /// This handle, or an ordinary clone of it if it is lent.
    pub(crate) fn owned(self) -> Context {
        match self.lease {
            None => self,
            Some(_) => self.clone(),
        }
    }

    /// A handle to this context that owns no reference count, marked with `lease`.
    ///
    /// # Safety
    ///
    /// The caller keeps `self` alive and unchanged until the copy is given back or has been
    /// given counts of its own, as `lease.rs` does (its invariants #2 and #4).
    pub(crate) unsafe fn lent_copy(&self, lease: Lease) -> Context {
        Context {
            // SAFETY: bitwise copies that are never dropped as such (`ManuallyDrop`) unless
            // the lender made them owners (the caller's contract).
            node: ManuallyDrop::new(unsafe { ptr::read(&*self.node) }),
            values: ManuallyDrop::new(unsafe { ptr::read(&*self.values) }),
            lease: Some(lease),
        }
    }

    /// The same as [`background`](Context::background): a marker for code that does not yet
    /// receive the context it should (Go's `context.TODO()`).
    pub fn todo() -> Context {
        Context::background()
    }

    /// A child that is cancelled when `cancel` is called on the returned handle, or when this
    /// context is done (Go's `context.WithCancel` and `WithCancelCause`).
    ///
    /// ```
    /// use ctxpipe::{Context, Error};
    ///
    /// let parent = Context::background();
    /// let (ctx, cancel) = parent.with_cancel();
    /// cancel.cancel();
    /// assert_eq!(ctx.err(), Some(Error::Canceled));
    /// assert_eq!(parent.err(), None);
    /// ```
    pub fn with_cancel(&self) -> (Context, CancelHandle) {
        self.child(None)
    }

    /// A child that is also done at `deadline` (Go's `context.WithDeadline`). Its deadline is the
    /// earlier of `deadline` and this context's; a deadline that has already passed gives a
    /// context that is done at once, with [`Error::DeadlineExceeded`].
    ///
    /// `deadline` is on tokio's clock, so `tokio::time::pause()` drives it; a
    /// `std::time::Instant` converts into it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctxpipe::{Context, Error};
    /// use tokio::time::Instant;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let at = Instant::now() + Duration::from_secs(1);
    /// let (ctx, _cancel) = Context::background().with_deadline(at);
    /// assert_eq!(ctx.deadline(), Some(at));
    /// ctx.done().await; // paused time jumps to the deadline
    /// assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
    /// # }
    /// ```
    pub fn with_deadline(&self, deadline: impl Into<Instant>) -> (Context, CancelHandle) {
        self.child(Some(deadline.into()))
    }

    /// A child that is also done `timeout` from now (Go's `context.WithTimeout`).
    ///
    /// A `timeout` so long that the deadline cannot be represented (such as `Duration::MAX`)
    /// means no deadline at all; `Duration::ZERO` gives a context that is already done.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctxpipe::{Context, Error};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(10));
    /// tokio::time::sleep(Duration::from_millis(10)).await;
    /// assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
    /// assert!(ctx.err().unwrap().is_timeout());
    /// # }
    /// ```
    pub fn with_timeout(&self, timeout: Duration) -> (Context, CancelHandle) {
        self.child(Instant::now().checked_add(timeout))
    }

    fn child(&self, deadline: Option<Instant>) -> (Context, CancelHandle) {
        let node = Node::child(&self.node, deadline);
        let ctx = Context::from_parts(node.clone(), (*self.values).clone());
        (ctx, CancelHandle { node })
    }

    /// A child of this context that also ends when any of `others` ends (.NET's linked token
    /// sources): it keeps this context's values, its deadline is the earliest of all, and its
    /// cause is that of whichever context ended it. A context that is already done ends it at
    /// once.
    ///
    /// No task watches the links: each of `others` holds the linked context as it holds its
    /// children, and cancels it (synchronously, before its own `cancel` returns) when it ends.
    /// The links go when the linked context and its handle are dropped; until then they keep
    /// `others` alive, as a child keeps its parent.
    ///
    /// ```
    /// use ctxpipe::{Context, Error};
    ///
    /// let (request, _cancel_request) = Context::background().with_value("req-7").with_cancel();
    /// let (shutdown, stop_server) = Context::background().with_cancel();
    /// let (ctx, _cancel) = request.with_linked([&shutdown]);
    /// assert_eq!(ctx.value::<&str>(), Some(&"req-7"));
    ///
    /// stop_server.cancel_with(ctxpipe::Cause::msg("server shutting down"));
    /// assert_eq!(ctx.err(), Some(Error::Canceled));
    /// assert_eq!(ctx.cause().unwrap().to_string(), "server shutting down");
    /// ```
    pub fn with_linked<'a, I>(&self, others: I) -> (Context, CancelHandle)
    where
        I: IntoIterator<Item = &'a Context>,
        I::IntoIter: Clone,
    {
        let others = others.into_iter();
        let earliest = others.clone().filter_map(Context::deadline).min();
        let (ctx, cancel) = self.child(earliest);
        for other in others {
            Node::link(&ctx.node, &other.node);
        }
        (ctx, cancel)
    }

    /// A child that carries `value`, found again with [`value::<T>()`](Context::value) (Go's
    /// `context.WithValue`, keyed by the value's type, so keys never collide). A value of the
    /// same type replaces the inherited one for this child and its descendants.
    ///
    /// The child shares this context's cancellation and deadline; it costs one table, no node.
    ///
    /// ```
    /// #[derive(Debug, PartialEq)]
    /// struct Tenant(&'static str);
    ///
    /// let ctx = ctxpipe::Context::background().with_value(Tenant("acme"));
    /// assert_eq!(ctx.value::<Tenant>(), Some(&Tenant("acme")));
    /// assert_eq!(ctx.value::<u32>(), None);
    /// ```
    pub fn with_value<T: Any + Send + Sync>(&self, value: T) -> Context {
        Context::from_parts(
            Arc::clone(&self.node),
            Some(Layer::with(self.values.as_ref(), value)),
        )
    }

    /// A context with this one's values but no cancellation and no deadline (Go's
    /// `context.WithoutCancel`): for work that must outlive the request, such as a cleanup.
    ///
    /// ```
    /// let (ctx, cancel) = ctxpipe::Context::background().with_value(5u8).with_cancel();
    /// let detached = ctx.without_cancel();
    /// cancel.cancel();
    /// assert!(!detached.is_done());
    /// assert_eq!(detached.value::<u8>(), Some(&5));
    /// ```
    pub fn without_cancel(&self) -> Context {
        Context::from_parts(Node::never(), (*self.values).clone())
    }

    /// A context for cleanup that must run after a cancel: it keeps this context's values,
    /// ignores its cancellation and deadline, and has a deadline of its own, `budget` from now
    /// (Trio's shielded cancel scope, Kotlin's `withContext(NonCancellable)` with a timeout).
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctxpipe::{Context, Error};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (request, cancel) = Context::background().with_value("req-42").with_cancel();
    /// cancel.cancel();
    /// let (cleanup, _guard) = request.shield(Duration::from_secs(1));
    /// assert_eq!(cleanup.err(), None, "the request's cancel does not reach it");
    /// assert_eq!(cleanup.value::<&str>(), Some(&"req-42"));
    /// assert_eq!(cleanup.run(std::future::pending::<()>()).await, Err(Error::DeadlineExceeded));
    /// # }
    /// ```
    pub fn shield(&self, budget: Duration) -> (Context, CancelHandle) {
        self.without_cancel().with_timeout(budget)
    }

    /// Runs `f(ctx)` under a child `ctx` that ends `timeout` from now, and moves on when it
    /// does: `Ok(Some(output))` if `f` finished, `Ok(None)` if the child's own deadline came
    /// first, and `Err` with this context's error if this context ended first — an outer
    /// cancel or deadline is never mistaken for the local one (Trio's `move_on_after`, the
    /// distinction Kotlin's `withTimeoutOrNull` blurs). When both end at the same instant, the
    /// outer error wins.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctxpipe::{Context, Error};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Error> {
    /// let ctx = Context::background();
    /// let slow = |ctx: Context| async move {
    ///     ctx.run(tokio::time::sleep(Duration::from_secs(5))).await?;
    ///     Ok::<_, Error>("fresh")
    /// };
    /// let fresh = ctx.move_on_after(Duration::from_secs(1), slow).await?;
    /// assert_eq!(fresh, None, "gave up on it, and the caller goes on");
    ///
    /// let (short, _cancel) = ctx.with_timeout(Duration::from_millis(100));
    /// let outer = short.move_on_after(Duration::from_secs(1), slow).await;
    /// assert_eq!(outer, Err(Error::DeadlineExceeded), "the caller's own deadline is an error");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn move_on_after<F, Fut>(
        &self,
        timeout: Duration,
        f: F,
    ) -> Result<Option<Fut::Output>, Error>
    where
        F: FnOnce(Context) -> Fut,
        Fut: Future,
    {
        let (child, _cancel) = self.with_timeout(timeout);
        self.move_on(child, f).await
    }

    /// [`move_on_after`](Context::move_on_after) with a deadline rather than a timeout.
    pub async fn move_on_at<F, Fut>(
        &self,
        deadline: impl Into<Instant>,
        f: F,
    ) -> Result<Option<Fut::Output>, Error>
    where
        F: FnOnce(Context) -> Fut,
        Fut: Future,
    {
        let (child, _cancel) = self.with_deadline(deadline);
        self.move_on(child, f).await
    }

    async fn move_on<F, Fut>(&self, child: Context, f: F) -> Result<Option<Fut::Output>, Error>
    where
        F: FnOnce(Context) -> Fut,
        Fut: Future,
    {
        let run = f(child.clone());
        match child.run(run).await {
            Ok(output) => Ok(Some(output)),
            // The child ended: this context's error if it ended too, else the child's own
            // deadline.
            Err(err) => match self.err() {
                Some(outer) => Err(outer),
                None if err == Error::DeadlineExceeded => Ok(None),
                None => Err(err),
            },
        }
    }

    /// Arranges for `f` to run once this context is done (Go's `context.AfterFunc`).
    ///
    /// `f` runs at most once, on its own task on the tokio runtime that was current here (or on
    /// a new thread if there was none) — never inside `cancel()`. If the context is already done
    /// it is started at once. While it is pending it keeps this context attached to its parent,
    /// so it fires when an ancestor is cancelled even if every handle was dropped. A deadline
    /// starts it without anything polling the context, even when the runtime shuts down before
    /// the deadline (the call then runs on a new thread). Dropping the returned [`AfterFunc`]
    /// does not stop it; [`AfterFunc::stop`] does.
    ///
    /// ```
    /// use ctxpipe::Context;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// let (tx, rx) = tokio::sync::oneshot::channel();
    /// ctx.after_func(move || tx.send("cleaned up").unwrap());
    /// cancel.cancel();
    /// assert_eq!(rx.await.unwrap(), "cleaned up");
    /// # }
    /// ```
    pub fn after_func<F>(&self, f: F) -> AfterFunc
    where
        F: FnOnce() + Send + 'static,
    {
        AfterFunc::register(&self.node, Box::new(f))
    }

    /// A future that resolves once this context is done (Go's `<-ctx.Done()`).
    ///
    /// It is `'static` and `Send`, cheap to create (one reference count), and never resolves for
    /// a context that cannot be cancelled. On a context with a deadline it resolves at the
    /// deadline.
    ///
    /// ```
    /// use ctxpipe::Context;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// let waiter = tokio::spawn(ctx.done());
    /// cancel.cancel();
    /// waiter.await.unwrap();
    /// assert!(ctx.is_done());
    /// # }
    /// ```
    pub fn done(&self) -> Done {
        Done::new(Arc::clone(&self.node))
    }

    /// `None` while the context is open; then [`Error::Canceled`] or
    /// [`Error::DeadlineExceeded`], never changing again (Go's `ctx.Err()`).
    ///
    /// One atomic load while the context is open (plus a clock read if it has a deadline).
    #[inline]
    pub fn err(&self) -> Option<Error> {
        self.node.err()
    }

    /// Why the context ended: the cause given to [`CancelHandle::cancel_with`] on this context
    /// or the ancestor whose cancel reached it, else its [`Error`] (Go's `context.Cause`).
    /// `None` while it is open.
    ///
    /// ```
    /// let (ctx, cancel) = ctxpipe::Context::background().with_cancel();
    /// let (child, _) = ctx.with_cancel();
    /// cancel.cancel_with(ctxpipe::Cause::msg("shutting down"));
    /// assert_eq!(child.cause().unwrap().to_string(), "shutting down");
    /// assert_eq!(child.err(), Some(ctxpipe::Error::Canceled));
    /// ```
    pub fn cause(&self) -> Option<Cause> {
        self.node.cause()
    }

    /// The instant at which the context will be done by itself, if any (Go's `ctx.Deadline()`).
    pub fn deadline(&self) -> Option<Instant> {
        self.node.deadline()
    }

    /// The value of type `T` carried by this context or its nearest ancestor that has one (Go's
    /// `ctx.Value(key)`). A lookup is one hash probe, however deep the value sits.
    pub fn value<T: Any>(&self) -> Option<&T> {
        self.values.as_deref()?.get::<T>()
    }

    /// `true` once the context is cancelled or its deadline has passed.
    ///
    /// One atomic load while the context is open (plus a clock read if it has a deadline); it
    /// takes no lock.
    #[inline]
    pub fn is_done(&self) -> bool {
        self.node.is_done()
    }

    /// Races `future` against this context: `Ok` with its output if it finishes first, otherwise
    /// the context's [`Error`], dropping the future.
    ///
    /// The context is checked before every poll, so an already-done context returns at once
    /// without polling `future`. While the future is ready this costs one atomic load; a waker
    /// is registered with the context only while the future is pending.
    ///
    /// ```
    /// use ctxpipe::{Context, Error};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// assert_eq!(ctx.run(async { 42 }).await, Ok(42));
    /// cancel.cancel();
    /// assert_eq!(ctx.run(async { 42 }).await, Err(Error::Canceled));
    /// # }
    /// ```
    pub fn run<F: IntoFuture>(&self, future: F) -> Run<'_, F::IntoFuture> {
        Run::new(&self.node, future)
    }

    /// [`run`](Self::run) for a caller that has just seen [`is_done`](Self::is_done) return
    /// `false`: the first poll does not check again (on a context with a deadline that check
    /// reads the clock).
    pub(crate) fn run_checked<F: IntoFuture>(&self, future: F) -> Checked<'_, F::IntoFuture> {
        Checked::new(&self.node, future)
    }

    /// A [`Watch`] on this context: races many futures, one after another, against it while
    /// registering with it once.
    pub fn watch(&self) -> Watch {
        Watch::new(Arc::clone(&self.node))
    }

    /// Not public API: the checkpoint of `#[stage]`. Races `future` against this context,
    /// registering through `watch` (which moves to this context if it watched another, as it
    /// does once the stage has shadowed `ctx` with a narrower one).
    #[doc(hidden)]
    pub fn __checkpoint<'a, F: IntoFuture>(
        &self,
        watch: &'a mut Watch,
        future: F,
    ) -> Checkpoint<'a, F::IntoFuture> {
        Checkpoint::new(&self.node, watch, future)
    }

    /// How many child contexts are attached to this one. Not public API: for leak tests.
    #[doc(hidden)]
    pub fn __live_children(&self) -> usize {
        self.node.live_children()
    }
}

impl Clone for Context {
    /// Another handle to the same context: two reference counts (one when it carries no
    /// values). A clone of a lent handle is an ordinary one.
    fn clone(&self) -> Context {
        Context::from_parts(Arc::clone(&self.node), (*self.values).clone())
    }
}

impl Drop for Context {
    #[inline]
    fn drop(&mut self) {
        if let Some(lease) = self.lease {
            if !lease.give_back() {
                return; // the counts are the lender's
            }
        }
        self.release();
    }
}

impl Context {
    /// Drops the reference counts this handle owns. Out of line, so that the drop glue of
    /// what holds a lent handle (a stage call's future) stays small enough to inline.
    #[inline(never)]
    fn release(&mut self) {
        // SAFETY: called once, from `drop`; `node` and `values` own their counts (never lent,
        // or lent and then orphaned, which gave them counts of their own).
        unsafe {
            ManuallyDrop::drop(&mut self.node);
            ManuallyDrop::drop(&mut self.values);
        }
    }
}

impl Default for Context {
    /// [`Context::background`].
    fn default() -> Context {
        Context::background()
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("err", &self.err())
            .field("deadline", &self.deadline())
            .finish_non_exhaustive()
    }
}

impl CancelHandle {
    /// Cancels the context and all its descendants with [`Error::Canceled`]. When it returns,
    /// every descendant reports done. Calls after the first cancel (of any kind) do nothing.
    pub fn cancel(&self) {
        self.node.cancel(CANCELED, None);
    }

    /// Cancels like [`cancel`](CancelHandle::cancel) and records `cause`, which
    /// [`Context::cause`] then returns on this context and its descendants (Go's
    /// `CancelCauseFunc`). A `Cause` taken from another context can be passed on as is.
    pub fn cancel_with(&self, cause: impl Into<Cause>) {
        self.node.cancel(CANCELED, Some(cause.into()));
    }

    /// Returns `true` once the context this handle cancels is done, for whatever reason.
    pub fn is_done(&self) -> bool {
        self.node.is_done()
    }

    /// Turns the handle into a guard that cancels the context when dropped.
    ///
    /// ```
    /// let (ctx, cancel) = ctxpipe::Context::background().with_cancel();
    /// {
    ///     let _guard = cancel.drop_guard();
    /// }
    /// assert!(ctx.is_done());
    /// ```
    pub fn drop_guard(self) -> DropGuard {
        DropGuard { handle: Some(self) }
    }
}

impl fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelHandle")
            .field("done", &self.node.is_done())
            .finish()
    }
}

impl DropGuard {
    /// Gives the handle back without cancelling.
    pub fn disarm(mut self) -> CancelHandle {
        self.handle
            .take()
            .expect("a guard holds its handle until dropped or disarmed")
    }
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.cancel();
        }
    }
}

impl fmt::Debug for DropGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DropGuard")
            .field("armed", &self.handle.is_some())
            .finish()
    }
}
