//! A stage's workers: take a batch, call the stage function on each item under the pipeline's
//! context, pass the outputs on.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::channel::{Receiver, Sender};
use super::options::StageOptions;
use super::order::Reorder;
use super::report::{StageStats, Tally};
use super::scope::{Scope, Shared};
use crate::context::Context;
use crate::error::Error;

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
    fn emit(result: R, out: &mut Vec<U>, tally: &mut Tally);
}

/// `Ok(u)`: one output.
pub(crate) enum Map {}
/// `Ok(Some(u))`: one output; `Ok(None)`: the item is filtered out.
pub(crate) enum Filter {}
/// `Ok(iter)`: every item of `iter`.
pub(crate) enum Flat {}

impl<U> Emit<U, U> for Map {
    #[inline]
    fn emit(result: U, out: &mut Vec<U>, tally: &mut Tally) {
        out.push(result);
        tally.items_out += 1;
    }
}

impl<U> Emit<Option<U>, U> for Filter {
    #[inline]
    fn emit(result: Option<U>, out: &mut Vec<U>, tally: &mut Tally) {
        match result {
            Some(item) => {
                out.push(item);
                tally.items_out += 1;
            }
            None => tally.filtered += 1,
        }
    }
}

impl<I: IntoIterator> Emit<I, I::Item> for Flat {
    #[inline]
    fn emit(result: I, out: &mut Vec<I::Item>, tally: &mut Tally) {
        let before = out.len();
        out.extend(result);
        tally.items_out += (out.len() - before) as u64;
    }
}

/// Where a worker's outputs go.
enum Outlet<U> {
    Direct(Sender<U>),
    Ordered(Arc<Reorder<U>>),
}

/// Spawns the workers of one stage, reading `input` and writing `output`.
pub(crate) fn spawn<T, R: 'static, U, E, F, Fut, K>(
    scope: &mut Scope<E>,
    options: &StageOptions,
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
{
    let f = Arc::new(f);
    let reorder = options
        .window()
        .map(|window| Arc::new(Reorder::new(window, output.clone())));
    for _ in 0..options.workers {
        let worker = Worker::<T, U, E, F, K> {
            ctx: scope.step_context(),
            input: input.clone(),
            outlet: match &reorder {
                Some(reorder) => Outlet::Ordered(reorder.clone()),
                None => Outlet::Direct(output.clone()),
            },
            f: f.clone(),
            stats: stats.clone(),
            shared: scope.shared.clone(),
            max_take: options.take(),
            share: options.workers,
            kind: PhantomData,
        };
        scope.spawn(worker.run());
    }
}

struct Worker<T, U, E, F, K> {
    /// This worker's own child of the pipeline's context.
    ctx: Context,
    input: Receiver<T>,
    outlet: Outlet<U>,
    f: Arc<F>,
    stats: Arc<StageStats>,
    shared: Arc<Shared<E>>,
    /// The most items taken at once: `min(batch, ⌈buffer / workers⌉)`.
    max_take: usize,
    share: usize,
    kind: PhantomData<fn() -> K>,
}

impl<T, U, E, F, K> Worker<T, U, E, F, K> {
    async fn run<R, Fut>(self)
    where
        F: Fn(Context, T) -> Fut,
        Fut: Future<Output = Result<R, E>>,
        K: Emit<R, U>,
    {
        let ctx = &self.ctx;
        let mut batch = Vec::new();
        let mut out = Vec::new();
        let mut tally = Tally::default();
        // Starts with single items, so that slow items are shared out from the first one.
        let mut take = 1;
        loop {
            let max = match &self.outlet {
                Outlet::Direct(_) => take,
                Outlet::Ordered(reorder) => match ctx.run(reorder.reserve(take)).await {
                    Ok(permits) => permits,
                    Err(_) => return self.stop(&mut tally),
                },
            };
            let received = ctx.run(self.input.recv(&mut batch, max, self.share)).await;
            if let Outlet::Ordered(reorder) = &self.outlet {
                reorder.release(max - batch.len());
            }
            let first = match received {
                Ok(Some(first)) => first,
                Ok(None) => return, // input ended: dropping `outlet` may close the output
                Err(_) => return self.stop(&mut tally),
            };
            let inputs = batch.len();
            let started = Instant::now();
            for item in batch.drain(..) {
                // The checkpoint: one atomic load while the pipeline runs; a done context drops
                // the item (and the rest of the batch) without calling the stage, and `run`
                // drops a call that is still pending when the context ends.
                if ctx.is_done() {
                    tally.busy += started.elapsed();
                    return self.stop(&mut tally);
                }
                tally.items_in += 1;
                match ctx.run((self.f)(ctx.clone(), item)).await {
                    Ok(Ok(result)) => K::emit(result, &mut out, &mut tally),
                    Ok(Err(err)) => {
                        // An error returned once the run's context is done is the call noticing
                        // the cancellation (a `#[stage]` checkpoint ends with `Canceled`), not
                        // an error of its own.
                        if !ctx.is_done() {
                            tally.errors += 1;
                        }
                        tally.busy += started.elapsed();
                        self.shared.fail(err);
                        return self.stop(&mut tally);
                    }
                    Err(_) => {
                        tally.busy += started.elapsed();
                        return self.stop(&mut tally);
                    }
                }
            }
            let elapsed = started.elapsed();
            tally.busy += elapsed;
            self.stats.add(&mut tally);
            take = next_take(take, inputs, elapsed, self.max_take);
            let sent = match &self.outlet {
                Outlet::Direct(output) => match ctx.run(output.send(&mut out)).await {
                    Ok(sent) => sent,
                    Err(_) => return self.stop(&mut tally),
                },
                Outlet::Ordered(reorder) => {
                    reorder
                        .deliver(ctx, first, inputs, std::mem::take(&mut out))
                        .await
                }
            };
            if sent.is_err() {
                return self.stop(&mut tally);
            }
            // Queues that never run dry would never make this task yield: take part in
            // tokio's cooperative budget, once per batch.
            tokio::task::coop::consume_budget().await;
        }
    }

    /// Stops before the input ended: the pipeline's context is done, or this stage failed.
    fn stop(&self, tally: &mut Tally) {
        self.stats.add(tally);
        self.shared.stopped_early();
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
