//! A stage's workers: take a batch, call the stage function on each item under the pipeline's
//! context, pass the outputs on.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::calls::{Batch, Calls, Outcome, Policy};
use super::channel::{Receiver, Sender};
use super::dead_letter::{self, Letter};
use super::keyed::{self, Keying};
use super::options::StageOptions;
use super::order::Reorder;
use super::policy::{DeadLetterSink, Location, RetryPolicy, Timing};
use super::rate::Limiter;
use super::report::{StageStats, Tally};
use super::scope::{Scope, Shared};
use crate::context::Context;
use crate::error::Error;
use crate::lease::Lender;

/// How much work a worker aims to take at once. Outputs leave with their batch and items wait
/// in it while an earlier one is processed, so this bounds the latency that batching adds
/// (and how long an idle worker can wait while another holds unstarted items), while keeping
/// batches of quick items large.
const BATCH_TIME: Duration = Duration::from_micros(50);

/// The next batch size: doubled while a batch takes less than [`BATCH_TIME`], otherwise as
/// many items as the last batch processed in that time (at least one), and at most `cap`.
fn next_take(take: usize, items: usize, elapsed: Duration, cap: usize) -> usize {
    if elapsed <= BATCH_TIME {
        return take.saturating_mul(2).min(cap);
    }
    let fit = items as u128 * BATCH_TIME.as_nanos() / elapsed.as_nanos().max(1);
    usize::try_from(fit).unwrap_or(cap).clamp(1, cap)
}

/// How a stage's `Ok` value becomes outputs: one item, zero or one, or many.
pub(crate) trait Emit<R, U>: 'static {
    /// Appends the outputs of `result` to `out`; `false` if `ctx` ended before they were all
    /// taken (only a long expansion looks).
    fn emit(result: R, out: &mut Vec<U>, tally: &mut Tally, ctx: &Context) -> bool;
}

/// How many items of an expansion a `flat_map` worker takes between two looks at its context,
/// so that a cancel stops even a very long (or endless) expansion.
const EXPANSION_CHECK: usize = 1024;

/// `Ok(u)`: one output.
pub(crate) enum Map {}
/// `Ok(Some(u))`: one output; `Ok(None)`: the item is filtered out.
pub(crate) enum Filter {}
/// `Ok(iter)`: every item of `iter`.
pub(crate) enum Flat {}

impl<U> Emit<U, U> for Map {
    #[inline]
    fn emit(result: U, out: &mut Vec<U>, tally: &mut Tally, _: &Context) -> bool {
        out.push(result);
        tally.items_out += 1;
        true
    }
}

impl<U> Emit<Option<U>, U> for Filter {
    #[inline]
    fn emit(result: Option<U>, out: &mut Vec<U>, tally: &mut Tally, _: &Context) -> bool {
        match result {
            Some(item) => {
                out.push(item);
                tally.items_out += 1;
            }
            None => tally.filtered += 1,
        }
        true
    }
}

impl<I: IntoIterator> Emit<I, I::Item> for Flat {
    #[inline]
    fn emit(result: I, out: &mut Vec<I::Item>, tally: &mut Tally, ctx: &Context) -> bool {
        let mut items = result.into_iter();
        loop {
            let before = out.len();
            out.extend(items.by_ref().take(EXPANSION_CHECK));
            let taken = out.len() - before;
            tally.items_out += taken as u64;
            if taken < EXPANSION_CHECK {
                return true;
            }
            if ctx.is_done() {
                return false;
            }
        }
    }
}

/// How many of a stage's workers share one child of the pipeline's context. Up to
/// [`MAX_STEP_CONTEXTS`] workers, one each, so that busy workers on different threads never
/// share the reference count and the waker list of a context; beyond that, the workers share
/// [`MAX_STEP_CONTEXTS`] of them, so that a cancel reaches a stage of thousands of workers
/// through a few dozen contexts rather than thousands.
fn workers_per_context(workers: usize) -> usize {
    workers.div_ceil(MAX_STEP_CONTEXTS).max(1)
}

/// The most children of the pipeline's context one stage makes (see [`workers_per_context`]).
const MAX_STEP_CONTEXTS: usize = 64;

/// Where a worker's outputs go.
enum Outlet<U> {
    Direct(Sender<U>),
    Ordered(Reorder<U>),
}

/// Spawns the workers of one stage, reading `input` and writing `output`.
pub(crate) fn spawn<T, R: 'static, U, E, F, Fut, K, P, D, Tm, Ky>(
    scope: &mut Scope<E>,
    options: StageOptions<P, D, Tm, Ky>,
    input: Receiver<T>,
    output: Sender<U>,
    f: F,
    stats: Arc<StageStats>,
) where
    T: Send + 'static,
    U: Send + 'static,
    E: From<Error> + Send + 'static,
    F: Fn(Context, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + Send + 'static,
    K: Emit<R, U>,
    P: RetryPolicy<T, E>,
    D: DeadLetterSink<T, E>,
    Tm: Timing,
    Ky: Keying<T>,
{
    let window = options.window();
    let workers = options.workers;
    let max_take = options.take();
    let attempts = options.attempts();
    // Keyed: a lane per worker, unless full order (which keeps per-key order too) or a single
    // worker (which keeps every order) makes lanes pointless.
    let lanes = match options.keying.into_hash() {
        Some(hash) if window.is_none() && workers > 1 => Some(keyed::spawn_router(
            scope,
            input.clone(),
            hash,
            workers,
            max_take,
        )),
        _ => None,
    };
    let outlet = match window {
        Some(window) => Outlet::Ordered(Reorder::new(window, output, stats.clone())),
        None => Outlet::Direct(output),
    };
    let dead_letters = options
        .dead_letter
        .into_sink()
        .map(|sink| dead_letter::spawn(scope, sink, options.buffer, stats.clone()));
    let stage = Arc::new(Stage {
        outlet,
        dead_letters,
        f,
        stats,
        shared: scope.shared.clone(),
        max_take,
        limiter: options.rate.map(Limiter::new),
        policy: Policy {
            on_error: options.on_error,
            timeout: options.timeout,
            attempts,
            backoff: options.backoff,
            retry: options.retry,
            dead_letter: PhantomData,
        },
    });
    let mut lanes = lanes.map(Vec::into_iter);
    let mut ctx = scope.step_context();
    for n in 0..workers {
        if n > 0 && n % workers_per_context(workers) == 0 {
            ctx = scope.step_context();
        }
        // Each worker reads its own lane, or its share of the stage's queue.
        let (input, share) = match lanes.as_mut().and_then(Iterator::next) {
            Some(lane) => (lane, 1),
            None => (input.clone(), workers),
        };
        let worker = Worker::<T, U, E, F, K, P, D> {
            ctx: ctx.clone(),
            input,
            share,
            stage: stage.clone(),
            kind: PhantomData,
        };
        scope.spawn(worker.run::<R, Fut, Tm>());
    }
}

/// What a stage's workers share. One reference count per worker, so that thousands of workers
/// ending at once (a cancel) touch one shared counter each rather than one per field. The
/// output channel sees the stage's workers as one sender, which goes away with the last one.
struct Stage<T, U, E, F, P, D> {
    outlet: Outlet<U>,
    /// Where failed items go, with a dead-letter sink.
    dead_letters: Option<Sender<Letter<T, E>>>,
    f: F,
    stats: Arc<StageStats>,
    shared: Arc<Shared<E>>,
    /// The most items taken at once: `min(batch, ⌈buffer / workers⌉)`.
    max_take: usize,
    policy: Policy<P, D>,
    /// The stage's rate limit, if it has one.
    limiter: Option<Limiter>,
}

struct Worker<T, U, E, F, K, P, D> {
    /// A child of the pipeline's context, this worker's own or shared with a few others (see
    /// [`workers_per_context`]).
    ctx: Context,
    /// The stage's queue, shared with the other workers, or this worker's lane (keyed order).
    input: Receiver<T>,
    /// How many workers read `input`: they split what is queued.
    share: usize,
    stage: Arc<Stage<T, U, E, F, P, D>>,
    kind: PhantomData<fn() -> K>,
}

impl<T, U, E, F, K, P, D> Worker<T, U, E, F, K, P, D> {
    async fn run<R, Fut, Tm: Timing>(self)
    where
        F: Fn(Context, T) -> Fut,
        Fut: Future<Output = Result<R, E>>,
        E: From<Error>,
        K: Emit<R, U>,
        P: RetryPolicy<T, E>,
        D: DeadLetterSink<T, E>,
    {
        let ctx = &self.ctx;
        // The same context, lent to each call rather than cloned for it: a trivial stage would
        // otherwise spend most of its time on the clone's two reference counts.
        let mut lender = Lender::new(ctx.clone());
        // Races every wait of this worker (for input, for room, for a pending call) against
        // the context, registering with it once rather than at each wait.
        let mut watch = ctx.watch();
        let stage = &*self.stage;
        let mut batch = Vec::new();
        let mut out = Vec::new();
        let mut dead = Vec::new();
        let mut tally = Tally::default();
        // Starts with single items, so that slow items are shared out from the first one.
        let mut take = 1;
        loop {
            let max = match &stage.outlet {
                Outlet::Direct(_) => take,
                Outlet::Ordered(reorder) => match watch.run(reorder.reserve(take)).await {
                    Ok(permits) => permits,
                    Err(_) => return self.stop(&mut tally),
                },
            };
            // The clock is read for a wait only when there is one: a busy pipeline's queues
            // have items and room, and pays nothing for the starved and blocked times.
            let mut starved_since = None;
            let received = match self.input.try_recv(&mut batch, max, self.share) {
                Some(first) => Ok(first),
                None => {
                    starved_since = Some(Instant::now());
                    watch
                        .run(self.input.recv(&mut batch, max, self.share))
                        .await
                }
            };
            if let Outlet::Ordered(reorder) = &stage.outlet {
                reorder.release(max - batch.len());
            }
            let first = match received {
                Ok(Some(first)) => first,
                Ok(None) => {
                    // Input ended: the last worker to go drops the output.
                    tally.starved += starved_since.map_or(Duration::ZERO, |since| since.elapsed());
                    return stage.stats.add(&mut tally);
                }
                Err(_) => return self.stop(&mut tally),
            };
            let inputs = batch.len();
            if let Some(since) = starved_since {
                tally.starved += since.elapsed();
            }
            if let Some(limiter) = &stage.limiter {
                // The item is taken first, so that no token is spent once the input has ended.
                let due = limiter.reserve();
                let now = Instant::now();
                if due > now {
                    if watch.run(tokio::time::sleep_until(due)).await.is_err() {
                        tally.unfinished += inputs as u64;
                        return self.stop(&mut tally);
                    }
                    tally.throttled += due.saturating_duration_since(now);
                }
            }
            let started = Instant::now();
            let calls = Calls::<T, U, E, F, Fut, K, P, D, Tm>::new(Batch {
                ctx,
                watch: &mut watch,
                lender: &mut lender,
                f: &stage.f,
                policy: &stage.policy,
                stage: &stage.stats.name,
                first,
                started,
                items: batch.drain(..),
                dead: &mut dead,
                out: &mut out,
                tally: &mut tally,
            });
            match calls.await {
                Outcome::Completed => {}
                Outcome::Stopped => return self.stop_busy(&mut tally, started, inputs, &dead),
                Outcome::Failed(err, at) => {
                    if let (true, Some((item, attempt))) = (stage.shared.fail(err), at) {
                        let name = stage.stats.name.clone();
                        let attempts = stage.policy.attempts;
                        stage
                            .stats
                            .failed_at(Location::new(name, item, attempt, attempts));
                    }
                    return self.stop_busy(&mut tally, started, inputs, &dead);
                }
            }
            if let (Some(letters), false) = (&stage.dead_letters, dead.is_empty()) {
                // Waits while the sink is a whole queue behind.
                if !matches!(watch.run(letters.send(&mut dead)).await, Ok(Ok(()))) {
                    return self.stop_busy(&mut tally, started, inputs, &dead);
                }
            }
            let done = Instant::now();
            let elapsed = done.saturating_duration_since(started);
            tally.busy += elapsed;
            stage.stats.add(&mut tally);
            take = next_take(take, inputs, elapsed, stage.max_take);
            let sent = match &stage.outlet {
                Outlet::Direct(output) => match output.try_send(&mut out) {
                    Ok(true) => true,
                    Ok(false) => {
                        let sent = watch.run(output.send(&mut out)).await;
                        tally.blocked += done.elapsed();
                        matches!(sent, Ok(Ok(())))
                    }
                    Err(_) => false,
                },
                Outlet::Ordered(reorder) => {
                    let sent = reorder
                        .deliver(ctx, first, inputs, std::mem::take(&mut out))
                        .await;
                    tally.blocked += done.elapsed();
                    sent.is_ok()
                }
            };
            if !sent {
                // What was not sent stays in `out` (an ordered stage counts its own).
                tally.unfinished += out.len() as u64;
                return self.stop(&mut tally);
            }
            // Queues that never run dry would never make this task yield: take part in
            // tokio's cooperative budget, once per batch.
            tokio::task::coop::consume_budget().await;
        }
    }

    /// Stops before the input ended: the pipeline's context is done, or this stage failed.
    fn stop(&self, tally: &mut Tally) {
        self.stage.stats.add(tally);
        self.stage.shared.stopped_early();
    }

    /// [`stop`](Self::stop) in the middle of a batch of `inputs` items that began at
    /// `started`, counting the time spent on it and the items dropped with it: all but those
    /// that were filtered out, skipped, or failed (other than `dead`, the failed items whose
    /// letters go unsent).
    fn stop_busy<L>(&self, tally: &mut Tally, started: Instant, inputs: usize, dead: &[L]) {
        tally.busy += started.elapsed();
        let ended = tally.filtered + tally.skipped + tally.errors - dead.len() as u64;
        tally.unfinished += (inputs as u64).saturating_sub(ended);
        self.stop(tally);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_batches_double_up_to_the_cap() {
        let quick = Duration::from_micros(1);
        assert_eq!(next_take(1, 1, quick, 128), 2);
        assert_eq!(next_take(64, 64, quick, 128), 128);
        assert_eq!(next_take(128, 128, quick, 128), 128);
        assert_eq!(next_take(usize::MAX, 3, quick, 7), 7);
    }

    #[test]
    fn slow_batches_shrink_to_what_fits_in_the_batch_time() {
        // 100 items in 100 µs: 50 fit in 50 µs.
        assert_eq!(next_take(100, 100, Duration::from_micros(100), 128), 50);
        // One item of 1 ms: one at a time.
        assert_eq!(next_take(8, 1, Duration::from_millis(1), 128), 1);
        assert_eq!(next_take(8, 8, Duration::MAX, 128), 1);
    }
}
