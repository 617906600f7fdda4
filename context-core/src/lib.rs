//! The runtime of [ctxpipe](https://docs.rs/ctxpipe): Go's `context` for tokio — a cancellation
//! tree, deadlines that flow downward and a request-scoped bag of typed values.
//!
//! Most users depend on the `ctxpipe` facade, which re-exports everything here together with
//! the `#[stage]` and `pipeline!` macros.
//!
//! ```
//! use std::time::Duration;
//! use ctxpipe::{Context, Error};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let (request, cancel) = Context::background().with_timeout(Duration::from_secs(2));
//! let (step, _) = request.with_timeout(Duration::from_secs(5));
//! assert_eq!(step.deadline(), request.deadline(), "a child never outlives its parent");
//!
//! cancel.cancel();
//! assert_eq!(step.err(), Some(Error::Canceled), "cancellation reaches every descendant");
//! assert_eq!(step.run(std::future::pending::<()>()).await, Err(Error::Canceled));
//! # }
//! ```
//!
//! See [`Context`] for the whole API and its Go equivalents.
//!
//! # How it works
//!
//! - **A tree of nodes.** Each cancel or deadline layer is a node holding an atomic state, its
//!   effective deadline and a lock-protected list of children and waiters. Reading the state
//!   (`is_done`, `err`, every checkpoint) is one atomic load; the lock is only taken to attach or
//!   detach a child, to register a waiter, and to cancel. Cancelling walks the subtree
//!   iteratively, one node lock at a time, and wakes waiters after releasing every lock, so
//!   propagation is synchronous: when `cancel()` returns, every descendant reports done.
//! - **No leaks by construction.** A parent holds only weak references to its children; a child
//!   holds its parent. Dropping the last handle of a child frees its slot in the parent at once,
//!   so a long-lived parent that creates and drops millions of children keeps constant memory.
//! - **Deadlines without a task per context.** A deadline is a number in the node. It is
//!   noticed lazily: `is_done`, `err` and checkpoints compare it with tokio's clock. Only when
//!   something must happen at that instant without anyone polling — a pending
//!   [`done()`](Context::done) or [`run()`](Context::run) future, or an
//!   [`after_func`](Context::after_func) — is the deadline handed to a shared timer: one task per
//!   runtime, alive only while it has deadlines to serve, which cancels the deadline's owner when
//!   it passes. Deadlines run on tokio's clock, so `tokio::time::pause()` drives them in tests.
//! - **Values by type.** A value layer copies its parent's small hash table (sharing the values)
//!   and adds one entry, so a lookup is one probe at any depth, and cancel or deadline layers in
//!   between never slow it down.
#![warn(missing_docs, unreachable_pub)]
#![doc(test(attr(deny(warnings))))]

mod after_func;
mod cause;
mod context;
mod ctx_value;
mod done;
mod error;
mod handles;
mod lease;
mod loom;
mod pipeline;
mod slab;
mod task_scope;
mod timer;
mod tree;
mod values;

pub use after_func::AfterFunc;
pub use cause::Cause;
pub use context::{CancelHandle, Context, DropGuard};
pub use ctx_value::CtxValue;
pub use done::{Checkpoint, Done, Run, Watch};
pub use error::Error;
pub use task_scope::TaskScope;
/// Not public API: what the code `#[stage]` generates needs from the runtime, re-exported by
/// the facade's own `__private`.
#[doc(hidden)]
pub mod __private {
    use std::future::IntoFuture;

    pub use crate::done::{HomeWatch, Watcher};
    pub use crate::handles::{Parent, StageContext};
    use crate::{Checkpoint, Context};

    /// The registration of a stage whose checkpoints all race its own context, borrowed for
    /// the stage's whole run: no reference count is taken.
    #[inline]
    pub fn home_watch(ctx: &Context) -> HomeWatch<'_> {
        HomeWatch::new(&ctx.node)
    }

    /// The checkpoint of a stage whose body never binds `ctx` again, on the context `watch`
    /// watches (the stage's own).
    #[inline]
    pub fn watched<F: IntoFuture, W: Watcher>(
        future: F,
        watch: &mut W,
    ) -> Checkpoint<'_, F::IntoFuture, W> {
        Checkpoint::watched(watch, future)
    }
}

pub use pipeline::{
    Backoff, Bottleneck, BoxedSink, DeadLetter, DeadLetterSink, Drain, DrainOutcome, DrainTimeout,
    Drained, ItemError, KeyHash, Keying, Located, Location, NoDeadLetter, NoRetry, OnError,
    OrderedBy, Pipeline, PipelineStream, Progress, Rate, Report, RetryAll, RetryIf, RetryPolicy,
    Retrying, RunError, Source, SourceReport, StageOptions, StageReport, Timed, Timing, Unkeyed,
    Untimed, WithReport, DEFAULT_BATCH, DEFAULT_BUFFER,
};
