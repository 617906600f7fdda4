//! The sink: runs in the caller's future, drains the last queue, then closes the scope.

use std::future::{ready, Future};
use std::sync::atomic::{AtomicU64, Ordering};

use super::builder::{Inlet, Parts, Pipeline};
use super::options::DEFAULT_BATCH;
use super::report::Counters;
use super::scope::{CatchUnwind, Scope};
use crate::context::Context;
use crate::error::Error;

/// Why a sink stopped before its input ended.
pub(crate) enum Stop<E> {
    /// Its function returned this error.
    Failed(E),
    /// The pipeline's context is done.
    Canceled,
}

/// What the pipeline's future does with the items that come out of the last stage.
pub(crate) trait Sink<T, E> {
    type Output;

    /// Consumes every item of `batch`, counting each one handed to user code in
    /// `counters.consumed`, and on `Err` those dropped without it in `counters.sink_unfinished`.
    fn consume(
        &mut self,
        ctx: &Context,
        batch: &mut Vec<T>,
        counters: &Counters,
    ) -> impl Future<Output = Result<(), Stop<E>>>;

    fn finish(self) -> Self::Output;
}

pub(crate) fn count(consumed: &AtomicU64, n: usize) {
    // Relaxed: a statistic (see `report.rs`).
    consumed.fetch_add(n as u64, Ordering::Relaxed);
}

/// A sink that takes each batch whole, at once: it neither awaits nor fails.
pub(crate) trait Absorb<T> {
    type Output;

    /// Takes every item of `batch`.
    fn absorb(&mut self, batch: &mut Vec<T>);

    fn finish(self) -> Self::Output;
}

/// The [`Sink`] of an [`Absorb`]: counts the batch, then hands it over.
pub(crate) struct Absorbing<S>(pub(crate) S);

impl<T, E, S: Absorb<T>> Sink<T, E> for Absorbing<S> {
    type Output = S::Output;

    fn consume(
        &mut self,
        _: &Context,
        batch: &mut Vec<T>,
        counters: &Counters,
    ) -> impl Future<Output = Result<(), Stop<E>>> {
        count(&counters.consumed, batch.len());
        self.0.absorb(batch);
        ready(Ok(()))
    }

    fn finish(self) -> S::Output {
        self.0.finish()
    }
}

pub(crate) struct Collect<T>(pub(crate) Vec<T>);

impl<T> Absorb<T> for Collect<T> {
    type Output = Vec<T>;

    fn absorb(&mut self, batch: &mut Vec<T>) {
        self.0.append(batch);
    }

    fn finish(self) -> Vec<T> {
        self.0
    }
}

pub(crate) struct Count(pub(crate) usize);

impl<T> Absorb<T> for Count {
    type Output = usize;

    fn absorb(&mut self, batch: &mut Vec<T>) {
        self.0 += batch.len();
        batch.clear();
    }

    fn finish(self) -> usize {
        self.0
    }
}

pub(crate) struct Fold<A, F> {
    /// `None` only after a panic in `f`, which is then resumed.
    pub(crate) acc: Option<A>,
    pub(crate) f: F,
}

impl<T, A, F: FnMut(A, T) -> A> Absorb<T> for Fold<A, F> {
    type Output = Option<A>;

    fn absorb(&mut self, batch: &mut Vec<T>) {
        if let Some(mut acc) = self.acc.take() {
            for item in batch.drain(..) {
                acc = (self.f)(acc, item);
            }
            self.acc = Some(acc);
        }
    }

    fn finish(self) -> Option<A> {
        self.acc
    }
}

pub(crate) struct ForEach<F>(pub(crate) F);

impl<T, F: FnMut(T)> Absorb<T> for ForEach<F> {
    type Output = ();

    fn absorb(&mut self, batch: &mut Vec<T>) {
        batch.drain(..).for_each(&mut self.0);
    }

    fn finish(self) {}
}

pub(crate) struct TryForEach<F>(pub(crate) F);

impl<T, E, F, Fut> Sink<T, E> for TryForEach<F>
where
    F: FnMut(T) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    type Output = ();

    async fn consume(
        &mut self,
        ctx: &Context,
        batch: &mut Vec<T>,
        counters: &Counters,
    ) -> Result<(), Stop<E>> {
        let mut items = batch.drain(..);
        let (stop, left) = loop {
            let Some(item) = items.next() else {
                return Ok(());
            };
            if ctx.is_done() {
                break (Stop::Canceled, 1 + items.len());
            }
            count(&counters.consumed, 1);
            match ctx.run_checked((self.0)(item)).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => break (Stop::Failed(err), items.len()),
                Err(_) => break (Stop::Canceled, 1 + items.len()),
            }
        };
        count(&counters.sink_unfinished, left);
        Err(stop)
    }

    fn finish(self) {}
}

/// Runs `pipeline` into `sink`: spawns every step, drains the last queue, waits for every task
/// and decides the result (`Scope::finish`).
pub(crate) async fn drive<T, E, S>(pipeline: Pipeline<T, E>, mut sink: S) -> Result<S::Output, E>
where
    T: Send + 'static,
    E: From<Error> + Send + 'static,
    S: Sink<T, E>,
{
    let Parts {
        parent,
        build,
        progress,
        last_buffer,
        drain,
    } = pipeline.into_parts();
    let counters = progress.counters;
    let drain = drain.map(|drain| drain.register(counters.clone()));
    let mut scope = Scope::<E>::new(&parent, drain.clone());
    let input = build(
        &mut scope,
        Inlet {
            capacity: last_buffer,
            queue: counters.sink_queue.clone(),
        },
    );
    let ctx = scope.step_context();
    let shared = scope.shared.clone();
    let run = async {
        let consume = async {
            let mut batch = Vec::new();
            // Registers with the context once for every wait, not at each one.
            let mut watch = ctx.watch();
            loop {
                match watch.run(input.recv(&mut batch, DEFAULT_BATCH, 1)).await {
                    Ok(Some(_)) => {}
                    Ok(None) => return true,
                    Err(_) => return false,
                }
                match sink.consume(&ctx, &mut batch, &counters).await {
                    Ok(()) => {}
                    Err(Stop::Failed(err)) => {
                        count(&counters.sink_errors, 1);
                        shared.fail(err);
                        return false;
                    }
                    Err(Stop::Canceled) => return false,
                }
                tokio::task::coop::consume_budget().await; // see `stage.rs`
            }
        };
        let (completed, panic) = match CatchUnwind::new(consume, shared.cancel.clone()).await {
            Ok(completed) => (completed, None),
            Err(payload) => (false, Some(payload)),
        };
        drop(input);
        scope.finish(completed, panic).await
    };
    let result = match &drain {
        // The drain's timer runs beside the whole run, until every task has stopped.
        Some(drain) => {
            let timer = drain.time_out(&shared.cancel);
            tokio::select! {
                biased;
                result = run => result,
                never = timer => match never {},
            }
        }
        None => run.await,
    };
    if let Some(drain) = &drain {
        drain.settle(&shared.ctx, result.is_ok());
    }
    result?;
    Ok(sink.finish())
}
