//! Waiting for a context: [`Done`] (Go's `<-ctx.Done()`), [`Run`] (a future raced against its
//! context) and [`Checkpoint`] (the same, behind every `#[stage]` await).

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, RawWakerVTable, Waker};

use pin_project_lite::pin_project;

use crate::error::Error;
use crate::timer;
use crate::tree::Node;

/// A waker registered with a node. Its owner keeps the node beside it and calls
/// [`Registration::release`] when it goes away.
#[derive(Default)]
struct Registration {
    /// Key in the node's `wakers` slab while registered.
    key: Option<usize>,
    /// The identity of the waker registered under `key` (see [`identity`]), to recognise the
    /// same task on the next poll without taking the node's lock.
    seen: Option<(usize, usize)>,
}

/// The identity of `waker`: its data and vtable addresses. Two wakers with the same identity
/// are the same waker. Compared on the waker as it is handed to us rather than with
/// `Waker::will_wake` on our clone: between a waker and its clone that can be false when the
/// two vtables are distinct copies (as with tokio's), which would defeat the point.
fn identity(waker: &Waker) -> (usize, usize) {
    (
        waker.data() as usize,
        waker.vtable() as *const RawWakerVTable as usize,
    )
}

impl Registration {
    /// Ready once `node` is done; otherwise registers (or refreshes) `cx`'s waker with it.
    fn poll_done(&mut self, node: &Arc<Node>, cx: &mut TaskContext<'_>) -> Poll<()> {
        if node.is_done() {
            return Poll::Ready(());
        }
        if !node.can_be_canceled() {
            // Nothing will ever wake it: skip the lock that every waiter on the background
            // context would otherwise share.
            return Poll::Pending;
        }
        let identity = identity(cx.waker());
        if self.key.is_some() && self.seen == Some(identity) {
            // Registered for this very waker: a cancel will wake it (tree invariant #5).
            return Poll::Pending;
        }
        let key = self.key;
        let registered =
            node.if_open(
                |inner| match key.and_then(|key| inner.wakers.get_mut(key)) {
                    Some(registered) => {
                        registered.clone_from(cx.waker());
                        key
                    }
                    None => Some(inner.wakers.insert(cx.waker().clone())),
                },
            );
        match registered {
            Some(key) => {
                self.key = key;
                self.seen = Some(identity);
                timer::arm(node);
                Poll::Pending
            }
            None => Poll::Ready(()),
        }
    }

    /// [`poll_done`](Self::poll_done), ready with `node`'s error: what a race against the
    /// context does when its future is pending.
    fn poll_error(&mut self, node: &Arc<Node>, cx: &mut TaskContext<'_>) -> Poll<Error> {
        self.poll_done(node, cx)
            .map(|()| node.err().unwrap_or(Error::Canceled))
    }

    /// Removes the waker from `node`, if one is registered.
    fn release(&mut self, node: &Node) {
        if let Some(key) = self.key.take() {
            // A cancel drains the wakers before it publishes its reason, under the lock, and
            // nothing registers after it: once the reason shows, there is nothing to remove,
            // and thousands of waiters ending at a cancel need not queue for the lock.
            if node.has_reason() {
                return;
            }
            // Otherwise a cancel may still come first; then the stale key finds nothing rather
            // than someone else's waker.
            let removed = node.remove_waker(key);
            drop(removed);
        }
    }
}

/// The future returned by [`Context::done`](crate::Context::done): resolves once the context is
/// cancelled or its deadline passes.
///
/// It owns a handle to the context, so it is `'static` and `Send` and can be moved into a task.
/// Creating it costs one reference count; it registers a waker only when polled while the
/// context is open.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Done {
    node: Arc<Node>,
    registration: Registration,
}

impl Done {
    pub(crate) fn new(node: Arc<Node>) -> Done {
        Done {
            node,
            registration: Registration::default(),
        }
    }
}

impl Future for Done {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let this = self.get_mut();
        this.registration.poll_done(&this.node, cx)
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        self.registration.release(&self.node);
    }
}

impl fmt::Debug for Done {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Done")
            .field("done", &self.node.is_done())
            .finish()
    }
}

/// Races a series of futures against one context while registering with it only once, for
/// loops and functions that await many times (every `#[stage]` uses one).
///
/// [`Context::run`](crate::Context::run) registers a waker with the context each time its future is pending and
/// removes it when the future finishes: two lock round trips per pending await. A `Watch` keeps
/// its registration from one [`run`](Watch::run) to the next as long as the same task polls
/// it, so later pending awaits cost one atomic load. It is removed when the `Watch` is dropped.
///
/// # Examples
///
/// ```
/// use ctxpipe::{Context, Error};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (ctx, cancel) = Context::background().with_cancel();
/// let mut watch = ctx.watch();
/// for _ in 0..1_000 {
///     watch.run(tokio::task::yield_now()).await.unwrap();
/// }
/// cancel.cancel();
/// assert_eq!(watch.run(tokio::task::yield_now()).await, Err(Error::Canceled));
/// # }
/// ```
pub struct Watch {
    node: Arc<Node>,
    registration: Registration,
}

impl Watch {
    pub(crate) fn new(node: Arc<Node>) -> Watch {
        Watch {
            node,
            registration: Registration::default(),
        }
    }

    /// Races `future` against the watched context, like [`Context::run`](crate::Context::run).
    pub fn run<F: IntoFuture>(&mut self, future: F) -> Run<'_, F::IntoFuture> {
        Run {
            node: &self.node,
            slot: Slot::Shared(&mut self.registration),
            future: future.into_future(),
        }
    }

    /// A [`Checkpoint`] on another context than the one watched (the stage shadowed `ctx`):
    /// the registration moves there. Kept out of line so the common path stays short.
    #[inline(never)]
    /// Ready with the context's error once it is done; otherwise registers this task with it
    /// (once for all the futures the task races through this `Watch`).
    pub(crate) fn poll_error(&mut self, cx: &mut TaskContext<'_>) -> Poll<Error> {
        self.registration.poll_error(&self.node, cx)
    }

    fn follow(&mut self, node: &Arc<Node>) {
        self.registration.release(&self.node);
        self.node = Arc::clone(node);
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.registration.release(&self.node);
    }
}

impl fmt::Debug for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch")
            .field("done", &self.node.is_done())
            .field("registered", &self.registration.key.is_some())
            .finish()
    }
}

/// The registration a `#[stage]` shares between its checkpoints when they all race the stage's
/// own context, which the stage borrows for as long as it runs: unlike a [`Watch`], making
/// one takes no reference count, so a stage whose awaits are all ready at once pays nothing
/// for it. Not public API: made by the code `#[stage]` generates, through
/// [`Context::__home_watch`](crate::Context::__home_watch).
#[doc(hidden)]
pub struct HomeWatch<'c> {
    /// The context itself, for the check on each poll (one load fewer than through `arc`).
    node: &'c Node,
    /// The same node, for registering (the shared timer keeps a handle to it).
    arc: &'c Arc<Node>,
    registration: Registration,
}

impl<'c> HomeWatch<'c> {
    pub(crate) fn new(arc: &'c Arc<Node>) -> HomeWatch<'c> {
        HomeWatch {
            node: arc,
            arc,
            registration: Registration::default(),
        }
    }
}

impl Drop for HomeWatch<'_> {
    fn drop(&mut self) {
        self.registration.release(self.node);
    }
}

impl fmt::Debug for HomeWatch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HomeWatch")
            .field("done", &self.node.is_done())
            .field("registered", &self.registration.key.is_some())
            .finish()
    }
}

/// What a [`Checkpoint`] registers through: a [`Watch`], or a stage's [`HomeWatch`].
/// Sealed: implemented by those two only.
pub trait Watcher: sealed::Registers {}

impl Watcher for Watch {}
impl Watcher for HomeWatch<'_> {}

mod sealed {
    use std::sync::Arc;
    use std::task::{Context as TaskContext, Poll};

    use super::{HomeWatch, Watch};
    use crate::error::Error;
    use crate::tree::Node;

    /// What a checkpoint needs from its watcher.
    pub trait Registers {
        /// Whether the context the checkpoint races against is open and has no deadline
        /// (`Node::quiet`): then one load says it is not done.
        fn quiet(&self) -> bool;

        /// That context's error, once it is done.
        fn err(&self) -> Option<Error>;

        /// The pending path: ready with the context's error once it is done, otherwise
        /// registers with it. A stage's awaits run one after another, so one registration
        /// serves them all.
        fn wait(&mut self, cx: &mut TaskContext<'_>) -> Poll<Error>;
    }

    impl Registers for Watch {
        #[inline(always)]
        fn quiet(&self) -> bool {
            self.node.quiet()
        }

        fn err(&self) -> Option<Error> {
            self.node.err()
        }

        // Kept out of line so the ready path stays short.
        #[inline(never)]
        fn wait(&mut self, cx: &mut TaskContext<'_>) -> Poll<Error> {
            self.poll_error(cx)
        }
    }

    impl Registers for HomeWatch<'_> {
        #[inline(always)]
        fn quiet(&self) -> bool {
            self.node.quiet()
        }

        fn err(&self) -> Option<Error> {
            self.node.err()
        }

        #[inline(never)]
        fn wait(&mut self, cx: &mut TaskContext<'_>) -> Poll<Error> {
            let arc: &Arc<Node> = self.arc;
            self.registration.poll_error(arc, cx)
        }
    }
}

/// Where a [`Run`] registers its waker: its own registration, made the first time the inner
/// future is pending (so a future ready at once sets up nothing), or a [`Watch`]'s.
enum Slot<'a> {
    Own(Option<Registration>),
    Shared(&'a mut Registration),
}

impl Slot<'_> {
    fn registration(&mut self) -> &mut Registration {
        match self {
            Slot::Own(registration) => registration.get_or_insert_with(Registration::default),
            Slot::Shared(registration) => registration,
        }
    }
}

pin_project! {
    /// The future returned by [`Context::run`](crate::Context::run) and [`Watch::run`]: the
    /// inner future raced against the context.
    ///
    /// Each poll first checks the context (one atomic load while it is open), then polls the
    /// inner future; only when that is pending does it register a waker with the context. So a
    /// future that is ready at once costs one load, and an already-done context never polls it.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct Run<'a, F> {
        node: &'a Arc<Node>,
        slot: Slot<'a>,
        #[pin]
        future: F,
    }

    impl<'a, F> PinnedDrop for Run<'a, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Slot::Own(Some(registration)) = this.slot {
                registration.release(this.node);
            }
        }
    }
}

impl<'a, F: Future> Run<'a, F> {
    pub(crate) fn new(node: &'a Arc<Node>, future: impl IntoFuture<IntoFuture = F>) -> Self {
        Run {
            node,
            slot: Slot::Own(None),
            future: future.into_future(),
        }
    }
}

impl<F: Future> Future for Run<'_, F> {
    type Output = Result<F::Output, Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        if let Some(err) = self.node.err() {
            return Poll::Ready(Err(err));
        }
        self.poll_unchecked(cx)
    }
}

impl<F: Future> Run<'_, F> {
    /// A poll after the context was found open.
    #[inline(always)]
    fn poll_unchecked(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<<Self as Future>::Output> {
        let this = self.project();
        let node: &Arc<Node> = this.node;
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        // Ready if done between the two checks: the inner future is dropped with `Run`.
        this.slot.registration().poll_error(node, cx).map(Err)
    }
}

pin_project! {
    /// [`Run`] for a caller that has just found the context open: the first poll does not
    /// check it again (on a context with a deadline that check reads the clock). The
    /// pipeline's workers and sinks check before calling user code, so that a done context
    /// drops the item without calling it, and race the call with this.
    pub(crate) struct Checked<'a, F> {
        #[pin]
        run: Run<'a, F>,
        first: bool,
    }
}

impl<'a, F: Future> Checked<'a, F> {
    pub(crate) fn new(node: &'a Arc<Node>, future: impl IntoFuture<IntoFuture = F>) -> Self {
        Checked {
            run: Run::new(node, future),
            first: true,
        }
    }
}

impl<F: Future> Future for Checked<'_, F> {
    type Output = Result<F::Output, Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if std::mem::take(this.first) {
            return this.run.poll_unchecked(cx);
        }
        this.run.poll(cx)
    }
}

pin_project! {
    /// The future behind each `.await` of a `#[stage]`: the inner future raced against the
    /// context in scope at that await, registering through the stage's [`Watch`].
    ///
    /// Made by the code `#[stage]` generates; other code uses [`Context::run`](crate::Context::run)
    /// or [`Watch::run`]. While the context is open and the inner future is ready at once, a poll
    /// costs one relaxed atomic load beside the inner poll, and the future owns nothing to drop:
    /// the registration lives in the `Watch`, which follows whichever context the stage awaits
    /// with (its own, or a narrower one it shadowed `ctx` with). It holds nothing but the
    /// `Watch` and the inner future, so that making one on each await stores one pointer.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct Checkpoint<'a, F, W: Watcher = Watch> {
        watch: &'a mut W,
        #[pin]
        future: F,
    }
}

impl<'a, F: Future> Checkpoint<'a, F> {
    /// A checkpoint on `node`, which `watch` moves to if it watches another.
    pub(crate) fn new(
        node: &Arc<Node>,
        watch: &'a mut Watch,
        future: impl IntoFuture<IntoFuture = F>,
    ) -> Self {
        if !Arc::ptr_eq(&watch.node, node) {
            watch.follow(node);
        }
        Checkpoint::watched(watch, future)
    }
}

impl<'a, F: Future, W: Watcher> Checkpoint<'a, F, W> {
    /// A checkpoint on the context `watch` watches.
    #[inline]
    pub(crate) fn watched(watch: &'a mut W, future: impl IntoFuture<IntoFuture = F>) -> Self {
        Checkpoint {
            watch,
            future: future.into_future(),
        }
    }
}

impl<F: Future, W: Watcher> Future for Checkpoint<'_, F, W> {
    type Output = Result<F::Output, Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        if !self.watch.quiet() {
            // Cancelled, or a deadline to compare with the clock: a separate path, so that
            // the common one below does not merge with it and stays a load, a test and the
            // inner poll.
            return self.poll_checked(cx);
        }
        self.poll_inner(cx)
    }
}

impl<F: Future, W: Watcher> Checkpoint<'_, F, W> {
    #[inline(never)]
    fn poll_checked(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<<Self as Future>::Output> {
        if let Some(err) = self.watch.err() {
            return Poll::Ready(Err(err));
        }
        self.poll_inner(cx)
    }

    #[inline(always)]
    fn poll_inner(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<<Self as Future>::Output> {
        let this = self.project();
        match this.future.poll(cx) {
            Poll::Ready(output) => Poll::Ready(Ok(output)),
            Poll::Pending => this.watch.wait(cx).map(Err),
        }
    }
}

impl<F, W: Watcher> fmt::Debug for Checkpoint<'_, F, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkpoint")
            .field("done", &self.watch.err().is_some())
            .finish_non_exhaustive()
    }
}

impl<F> fmt::Debug for Run<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run")
            .field("done", &self.node.is_done())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context as TaskContext, Poll, Wake, Waker};

    use crate::{Context, Error};

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<CountingWaker>, Waker) {
        let counter = Arc::new(CountingWaker::default());
        (counter.clone(), Waker::from(counter))
    }

    #[test]
    fn watch_follows_the_task_that_polls_it() {
        let (ctx, cancel) = Context::background().with_cancel();
        let mut watch = ctx.watch();
        let (first, first_waker) = waker();
        let (second, second_waker) = waker();
        {
            let mut run = pin!(watch.run(std::future::pending::<()>()));
            let mut cx = TaskContext::from_waker(&first_waker);
            assert!(run.as_mut().poll(&mut cx).is_pending());
        }
        {
            // Another task: the registration must move to its waker.
            let mut run = pin!(watch.run(std::future::pending::<()>()));
            let mut cx = TaskContext::from_waker(&second_waker);
            assert!(run.as_mut().poll(&mut cx).is_pending());
            cancel.cancel();
            assert_eq!(
                second.0.load(Ordering::SeqCst),
                1,
                "the last polling task is woken"
            );
            assert_eq!(
                first.0.load(Ordering::SeqCst),
                0,
                "a waker is replaced, not added"
            );
            assert_eq!(run.poll(&mut cx), Poll::Ready(Err(Error::Canceled)));
        }
    }

    #[test]
    fn run_registers_only_while_pending_and_cleans_up() {
        let (ctx, _cancel) = Context::background().with_cancel();
        let (counter, waker) = waker();
        let mut cx = TaskContext::from_waker(&waker);
        assert_eq!(
            pin!(ctx.run(std::future::ready(1))).poll(&mut cx),
            Poll::Ready(Ok(1))
        );
        assert!(
            ctx.node.lock().is_none(),
            "a ready future registers nothing"
        );
        {
            let mut run = pin!(ctx.run(std::future::pending::<()>()));
            assert!(run.as_mut().poll(&mut cx).is_pending());
            assert_eq!(
                ctx.node.lock().as_ref().map(|inner| inner.wakers.len()),
                Some(1)
            );
        }
        assert_eq!(
            ctx.node.lock().as_ref().map(|inner| inner.wakers.len()),
            Some(0)
        );
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn checked_run_skips_only_its_first_check() {
        let (ctx, cancel) = Context::background().with_cancel();
        let (counter, waker) = waker();
        let mut cx = TaskContext::from_waker(&waker);
        let polls = AtomicUsize::new(0);
        let counted = std::future::poll_fn(|_| -> Poll<()> {
            polls.fetch_add(1, Ordering::SeqCst);
            Poll::Pending
        });
        let mut run = pin!(ctx.run_checked(counted));
        // The caller has just checked: the future is polled, and registers once pending.
        cancel.cancel();
        assert_eq!(
            run.as_mut().poll(&mut cx),
            Poll::Ready(Err(Error::Canceled))
        );
        assert_eq!(polls.load(Ordering::SeqCst), 1);

        // Later polls check first, as `run` does.
        let (ctx, cancel) = Context::background().with_cancel();
        let mut first = true;
        let once = std::future::poll_fn(|_| -> Poll<()> {
            assert!(std::mem::take(&mut first), "polled again on a done context");
            Poll::Pending
        });
        let mut run = pin!(ctx.run_checked(once));
        assert!(run.as_mut().poll(&mut cx).is_pending());
        assert_eq!(wakers(&ctx), 1);
        cancel.cancel();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert_eq!(run.poll(&mut cx), Poll::Ready(Err(Error::Canceled)));
    }

    fn wakers(ctx: &Context) -> usize {
        ctx.node
            .lock()
            .as_ref()
            .map_or(0, |inner| inner.wakers.len())
    }

    #[test]
    fn checkpoint_registers_once_and_moves_with_the_context_in_scope() {
        let (outer, cancel_outer) = Context::background().with_cancel();
        let (inner, cancel_inner) = outer.with_cancel();
        let mut watch = outer.watch();
        let (counter, waker) = waker();
        let mut cx = TaskContext::from_waker(&waker);

        // Ready at once: nothing registered.
        let ready = pin!(outer.__checkpoint(&mut watch, std::future::ready(1)));
        assert_eq!(ready.poll(&mut cx), Poll::Ready(Ok(1)));
        assert_eq!(wakers(&outer), 0);

        // Pending on the outer context: one registration, kept after the checkpoint ends.
        for _ in 0..3 {
            let mut pending = pin!(outer.__checkpoint(&mut watch, std::future::pending::<()>()));
            assert!(pending.as_mut().poll(&mut cx).is_pending());
            assert_eq!(wakers(&outer), 1, "one registration for every await");
        }

        // Pending on a narrower context: the registration moves there.
        {
            let mut pending = pin!(inner.__checkpoint(&mut watch, std::future::pending::<()>()));
            assert!(pending.as_mut().poll(&mut cx).is_pending());
            assert_eq!((wakers(&outer), wakers(&inner)), (0, 1));
            cancel_inner.cancel();
            assert_eq!(
                counter.0.load(Ordering::SeqCst),
                1,
                "the inner cancel wakes it"
            );
            assert_eq!(pending.poll(&mut cx), Poll::Ready(Err(Error::Canceled)));
        }

        // Back on the outer context: registered there again, and its cancel wakes the task.
        let mut pending = pin!(outer.__checkpoint(&mut watch, std::future::pending::<()>()));
        assert!(pending.as_mut().poll(&mut cx).is_pending());
        assert_eq!(wakers(&outer), 1);
        cancel_outer.cancel();
        assert_eq!(counter.0.load(Ordering::SeqCst), 2);
        assert_eq!(pending.poll(&mut cx), Poll::Ready(Err(Error::Canceled)));
    }

    #[test]
    fn checkpoint_on_a_done_context_never_polls_the_future() {
        let (ctx, cancel) = Context::background().with_cancel();
        let mut watch = ctx.watch();
        cancel.cancel();
        let (_, waker) = waker();
        let polled = std::future::poll_fn(|_| -> Poll<()> { panic!("polled on a done context") });
        let checkpoint = pin!(ctx.__checkpoint(&mut watch, polled));
        assert_eq!(
            checkpoint.poll(&mut TaskContext::from_waker(&waker)),
            Poll::Ready(Err(Error::Canceled))
        );
    }

    #[test]
    fn home_watch_borrows_its_context_and_registers_once() {
        let (ctx, cancel) = Context::background().with_cancel();
        let handles = Arc::strong_count(&ctx.node);
        let mut watch = crate::__private::home_watch(&ctx);
        assert_eq!(
            Arc::strong_count(&ctx.node),
            handles,
            "making it takes no reference count"
        );
        let (counter, waker) = waker();
        let mut cx = TaskContext::from_waker(&waker);

        let ready = pin!(crate::__private::watched(std::future::ready(1), &mut watch));
        assert_eq!(ready.poll(&mut cx), Poll::Ready(Ok(1)));
        assert_eq!(wakers(&ctx), 0, "a ready await registers nothing");

        for _ in 0..3 {
            let pending = std::future::pending::<()>();
            let mut pending = pin!(crate::__private::watched(pending, &mut watch));
            assert!(pending.as_mut().poll(&mut cx).is_pending());
            assert_eq!(wakers(&ctx), 1, "one registration for every await");
        }
        let mut pending = pin!(crate::__private::watched(
            std::future::pending::<()>(),
            &mut watch
        ));
        assert!(pending.as_mut().poll(&mut cx).is_pending());
        cancel.cancel();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1, "the cancel wakes it");
        assert_eq!(pending.poll(&mut cx), Poll::Ready(Err(Error::Canceled)));
    }

    #[test]
    fn home_watch_leaves_no_waker_behind() {
        let (ctx, _cancel) = Context::background().with_cancel();
        let (_, waker) = waker();
        {
            let mut watch = crate::__private::home_watch(&ctx);
            let pending = std::future::pending::<()>();
            let mut pending = pin!(crate::__private::watched(pending, &mut watch));
            assert!(pending
                .as_mut()
                .poll(&mut TaskContext::from_waker(&waker))
                .is_pending());
            assert_eq!(wakers(&ctx), 1);
        }
        assert_eq!(wakers(&ctx), 0, "dropping it removes its waker");
    }
}
