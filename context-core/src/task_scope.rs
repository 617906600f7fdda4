//! [`TaskScope`]: Go's `errgroup` for contexts — a few concurrent calls, each under a child
//! context, the first error cancelling the rest, nothing outliving the scope.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::resume_unwind;
use std::pin::Pin;

use tokio::task::JoinSet;

use crate::cause::Cause;
use crate::context::{CancelHandle, Context, DropGuard};

/// A task not started yet because the scope was at its limit.
type Queued<T, E> =
    Box<dyn FnOnce(Context) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send>> + Send>;

/// Concurrent tasks under one context, joined as one: Go's `errgroup`, with results.
///
/// Each task spawned with [`spawn`](TaskScope::spawn) runs on the tokio runtime under a child
/// of the scope's context, itself a child of the context the scope was made from (so tasks see
/// its values and deadline, and its cancellation reaches them). A join
/// ([`join`](TaskScope::join), [`first_ok`](TaskScope::first_ok),
/// [`join_until`](TaskScope::join_until)) waits for them:
///
/// - **The first error wins.** It cancels the scope's context with a cause that carries its
///   message, so every sibling sees `Canceled` and why; the join returns it once every task
///   has stopped. Later errors are dropped.
/// - **Panics** cancel the rest too, and are resumed in the joining task once every task has
///   stopped (as [`std::thread::scope`] does).
/// - **Structured.** When a join returns, no task of the scope is alive. A scope dropped
///   before its join (or whose join future is dropped) aborts its tasks and cancels its
///   context.
/// - **A limit** ([`limit`](TaskScope::limit), Go's `SetLimit`) bounds how many tasks run at
///   once; the others wait in spawn order, and start as running ones finish while the scope
///   is joined.
///
/// ```
/// use std::time::Duration;
/// use ctxpipe::{Context, Error, TaskScope};
///
/// async fn fetch(ctx: &Context, id: u32) -> Result<String, Error> {
///     ctx.run(tokio::time::sleep(Duration::from_millis(10))).await?;
///     Ok(format!("user {id}"))
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Error> {
/// let ctx = Context::background();
/// let mut scope = TaskScope::new(&ctx).limit(2);
/// for id in [1, 2, 3] {
///     scope.spawn(move |ctx| async move { fetch(&ctx, id).await });
/// }
/// // In spawn order, whichever finished first.
/// assert_eq!(scope.join().await?, ["user 1", "user 2", "user 3"]);
/// # Ok(())
/// # }
/// ```
#[must_use = "a scope's tasks are aborted when it is dropped without a join"]
pub struct TaskScope<T, E> {
    ctx: Context,
    cancel: CancelHandle,
    tasks: JoinSet<(usize, Result<T, E>)>,
    /// Tasks waiting for a free slot under the limit, with their spawn numbers.
    queued: VecDeque<(usize, Queued<T, E>)>,
    limit: usize,
    spawned: usize,
    /// Cancels the scope's context when the scope ends, joined or dropped.
    _end: DropGuard,
}

impl<T, E> TaskScope<T, E>
where
    T: Send + 'static,
    E: Send + 'static,
{
    /// A scope under a new child of `parent`. Must be used inside a tokio runtime.
    pub fn new(parent: &Context) -> TaskScope<T, E> {
        let (ctx, cancel) = parent.with_cancel();
        TaskScope {
            ctx,
            _end: cancel.clone().drop_guard(),
            cancel,
            tasks: JoinSet::new(),
            queued: VecDeque::new(),
            limit: usize::MAX,
            spawned: 0,
        }
    }

    /// Runs at most `n` tasks at once (at least one); the rest wait their turn in spawn order.
    pub fn limit(mut self, n: usize) -> TaskScope<T, E> {
        self.limit = n.max(1);
        self
    }

    /// The scope's context: the parent of every task's.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Spawns `task(ctx)` with `ctx` a child of the scope's context, now or, at the limit,
    /// once a running task has finished. A scope that has been cancelled (by an error, or its
    /// parent) still runs it: the task sees its context done.
    pub fn spawn<F, Fut>(&mut self, task: F)
    where
        F: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let number = self.spawned;
        self.spawned += 1;
        if self.tasks.len() < self.limit && self.queued.is_empty() {
            self.start(number, task);
        } else {
            let boxed: Queued<T, E> = Box::new(move |ctx| Box::pin(task(ctx)));
            self.queued.push_back((number, boxed));
        }
    }

    fn start<F, Fut>(&mut self, number: usize, task: F)
    where
        F: FnOnce(Context) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let (ctx, _) = self.ctx.with_cancel();
        let run = task(ctx);
        self.tasks.spawn(async move { (number, run.await) });
    }

    /// Starts queued tasks while there is room under the limit. Once the scope is cancelled
    /// they still start, see their context done and end at their first checkpoint: every
    /// task spawned has its say in the result.
    fn fill(&mut self) {
        while self.tasks.len() < self.limit {
            let Some((number, task)) = self.queued.pop_front() else {
                return;
            };
            self.start(number, task);
        }
    }

    /// Waits for every task and returns their results in spawn order, or the first error
    /// (see [`TaskScope`]).
    pub async fn join(self) -> Result<Vec<T>, E>
    where
        E: fmt::Display,
    {
        let mut results: Vec<Option<T>> =
            std::iter::repeat_with(|| None).take(self.spawned).collect();
        let outcome = self
            .run(|number, value| {
                results[number] = Some(value);
                false
            })
            .await;
        outcome.map(|()| results.into_iter().flatten().collect())
    }

    /// Returns the first result that succeeds and cancels the rest (with a cause that says
    /// so), or, when every task fails, the first error (Java's `anySuccessfulOrThrow`). A scope
    /// without tasks gives `None`.
    pub async fn first_ok(self) -> Option<Result<T, E>>
    where
        E: fmt::Display,
    {
        let mut first = None;
        let mut first_error = None;
        self.drive(&mut first_error, true, |_, value| {
            first = Some(value);
            true
        })
        .await;
        match (first, first_error) {
            (Some(value), _) => Some(Ok(value)),
            (None, Some(err)) => Some(Err(err)),
            (None, None) => None,
        }
    }

    /// Like [`join`](TaskScope::join), but stops as soon as `enough(&result)` holds for a
    /// result: the rest are cancelled (with a cause that says so), and the results so far come
    /// back in spawn order.
    pub async fn join_until<P>(self, mut enough: P) -> Result<Vec<T>, E>
    where
        E: fmt::Display,
        P: FnMut(&T) -> bool,
    {
        let mut results: Vec<Option<T>> =
            std::iter::repeat_with(|| None).take(self.spawned).collect();
        let outcome = self
            .run(|number, value| {
                let done = enough(&value);
                results[number] = Some(value);
                done
            })
            .await;
        outcome.map(|()| results.into_iter().flatten().collect())
    }

    /// Joins every task, handing each success to `take` (which says whether that is enough),
    /// cancelling the rest on the first error or when `take` says so.
    async fn run<F>(self, take: F) -> Result<(), E>
    where
        E: fmt::Display,
        F: FnMut(usize, T) -> bool,
    {
        let mut first_error = None;
        self.drive(&mut first_error, false, take).await;
        first_error.map_or(Ok(()), Err)
    }

    /// Joins every task: each success goes to `take`, which says whether that is enough (then
    /// the rest are cancelled); the first error goes to `first_error`, and cancels the rest
    /// unless `tolerate_errors`. Resumes a task's panic once every task has stopped.
    async fn drive<F>(mut self, first_error: &mut Option<E>, tolerate_errors: bool, mut take: F)
    where
        E: fmt::Display,
        F: FnMut(usize, T) -> bool,
    {
        let mut panic = None;
        // Set once a success was enough: the errors of the cancelled rest do not count.
        let mut enough = false;
        self.fill();
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok((number, Ok(value))) => {
                    if !enough && take(number, value) {
                        enough = true;
                        self.cancel
                            .cancel_with(Cause::msg("the scope has the results it needs"));
                    }
                }
                Ok((_, Err(err))) => {
                    // The first error, even one that a cancel from above caused: the scope
                    // did not complete.
                    if first_error.is_none() && !enough {
                        if !tolerate_errors && !self.ctx.is_done() {
                            self.cancel.cancel_with(Cause::msg(format!(
                                "a task of the scope failed: {err}"
                            )));
                        }
                        *first_error = Some(err);
                    }
                }
                Err(err) if err.is_panic() => {
                    self.cancel
                        .cancel_with(Cause::msg("a task of the scope panicked"));
                    panic.get_or_insert(err.into_panic());
                }
                Err(_) => {}
            }
            self.fill();
        }
        if let Some(payload) = panic {
            resume_unwind(payload);
        }
    }
}

impl<T, E> fmt::Debug for TaskScope<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskScope")
            .field("running", &self.tasks.len())
            .field("queued", &self.queued.len())
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}
