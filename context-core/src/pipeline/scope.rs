//! The structured scope of one pipeline run: every task it spawns, the first error, the first
//! panic, and the rule that decides what the run returns.
//!
//! Like `std::thread::scope`, the run does not return before every task it spawned has
//! finished: a panic is caught where it happens, cancels the pipeline's context, and is resumed
//! in the caller once the rest have stopped. If the run's future is dropped instead, the
//! `JoinSet` aborts every task. Either way the pipeline's context is cancelled when the scope
//! ends (as Go's `errgroup` cancels its context when `Wait` returns), so work that a stage
//! spawned with it learns that the pipeline is over.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context as TaskContext, Poll};

use pin_project_lite::pin_project;
use tokio::task::JoinSet;

use super::drain::{DrainTimeout, RunDrain};
use crate::context::{CancelHandle, Context, DropGuard};
use crate::error::Error;

/// A caught panic's payload.
pub(crate) type Payload = Box<dyn Any + Send + 'static>;

/// What every task of one run shares.
pub(crate) struct Shared<E> {
    /// The pipeline's context: a child of the caller's.
    pub(crate) ctx: Context,
    pub(crate) cancel: CancelHandle,
    first_error: Mutex<Option<E>>,
    /// Some step stopped before its input ended (the context was done, or it failed).
    stopped_early: AtomicBool,
}

impl<E> Shared<E> {
    /// Records a stage's or the sink's error: the first one is kept and cancels the pipeline;
    /// later ones, and any error after the pipeline's context ended some other way (the
    /// caller's cancel or deadline, a panic), are dropped (their count is in the report).
    /// Returns whether `err` is the one kept.
    pub(crate) fn fail(&self, err: E) -> bool {
        let mut first = self
            .first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if first.is_some() || self.ctx.is_done() {
            return false;
        }
        *first = Some(err);
        drop(first);
        self.cancel.cancel();
        true
    }

    /// A step stopped before its input ended.
    pub(crate) fn stopped_early(&self) {
        // Relaxed: read after every task has been joined, which orders it. Loaded first so
        // that thousands of workers stopping at once mostly share the line rather than each
        // taking it to write.
        if !self.stopped_early.load(Ordering::Relaxed) {
            self.stopped_early.store(true, Ordering::Relaxed);
        }
    }
}

/// The tasks of one run.
pub(crate) struct Scope<E> {
    pub(crate) shared: Arc<Shared<E>>,
    /// The run's drain state, when a [`Drain`](super::Drain) is attached.
    pub(crate) drain: Option<Arc<RunDrain>>,
    tasks: JoinSet<Result<(), Payload>>,
    /// Cancels the pipeline's context when the scope ends, finished or dropped.
    _end: DropGuard,
}

impl<E: From<Error> + Send + 'static> Scope<E> {
    /// A scope whose context is a new child of `parent`.
    pub(crate) fn new(parent: &Context, drain: Option<Arc<RunDrain>>) -> Scope<E> {
        let (ctx, cancel) = parent.with_cancel();
        Scope {
            drain,
            _end: cancel.clone().drop_guard(),
            shared: Arc::new(Shared {
                ctx,
                cancel,
                first_error: Mutex::new(None),
                stopped_early: AtomicBool::new(false),
            }),
            tasks: JoinSet::new(),
        }
    }

    /// A context for one step: a child of the pipeline's, so that its reference counts and
    /// wakers are its own while cancellation still reaches it at once.
    pub(crate) fn step_context(&self) -> Context {
        self.shared.ctx.with_cancel().0
    }

    /// A context for a source: a step context that a drain cancels to stop the source.
    pub(crate) fn source_context(&self) -> Context {
        let (ctx, cancel) = self.shared.ctx.with_cancel();
        if let Some(drain) = &self.drain {
            drain.add_source(cancel);
        }
        ctx
    }

    /// Spawns `task` on the current runtime; a panic in it cancels the pipeline.
    pub(crate) fn spawn<F>(&mut self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks
            .spawn(CatchUnwind::new(task, self.shared.cancel.clone()));
    }

    /// Waits for every task, then decides the outcome: a panic (of the sink, `sink_panic`, or
    /// of any task) is resumed; otherwise the first error wins; otherwise, if anything stopped
    /// early (`completed` is false for the sink), the context's error; otherwise `Ok`. The
    /// context is cancelled once the outcome is known, when `self` is dropped.
    pub(crate) async fn finish(
        mut self,
        completed: bool,
        sink_panic: Option<Payload>,
    ) -> Result<(), E> {
        if !completed || sink_panic.is_some() {
            self.shared.cancel.cancel();
        }
        let mut panic = sink_panic;
        while let Some(joined) = self.tasks.join_next().await {
            let caught = match joined {
                Ok(Ok(())) => continue,
                Ok(Err(payload)) => payload,
                Err(err) if err.is_panic() => err.into_panic(),
                Err(_) => continue,
            };
            panic.get_or_insert(caught);
        }
        if let Some(payload) = panic {
            resume_unwind(payload);
        }
        let shared = &*self.shared;
        if let Some(err) = shared
            .first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            return Err(err);
        }
        if !completed || shared.stopped_early.load(Ordering::Relaxed) {
            let drain_timeout = shared
                .ctx
                .cause()
                .is_some_and(|cause| cause.is::<DrainTimeout>());
            let err = match shared.ctx.err() {
                _ if drain_timeout => Error::DrainTimeout,
                Some(err) => err,
                None => Error::Canceled,
            };
            return Err(err.into());
        }
        Ok(())
    }
}

pin_project! {
    /// Polls a future inside `catch_unwind`; a panic cancels the pipeline and ends the future
    /// with the payload, so every other step stops while the panic waits to be resumed.
    pub(crate) struct CatchUnwind<F> {
        #[pin]
        inner: F,
        cancel: CancelHandle,
    }
}

impl<F> CatchUnwind<F> {
    pub(crate) fn new(inner: F, cancel: CancelHandle) -> Self {
        CatchUnwind { inner, cancel }
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Payload>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut inner = this.inner;
        // The inner future is never polled again after a panic (this one returns `Ready`), so
        // whatever state the panic left it in is only ever dropped.
        match catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => {
                this.cancel.cancel();
                Poll::Ready(Err(payload))
            }
        }
    }
}
