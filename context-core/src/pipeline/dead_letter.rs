//! The task that hands a stage's failed items to its dead-letter sink.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::channel::{channel, Receiver, Sender};
use super::options::DEFAULT_BATCH;
use super::policy::{BoxedSink, ItemError};
use super::report::StageStats;
use super::scope::{Scope, Shared};
use crate::context::Context;
use crate::error::Error;

/// A failed item and its error, on their way to the sink.
pub(crate) type Letter<T, E> = (T, ItemError<E>);

/// Spawns the task that awaits `sink(item, err)` for each failed item the stage's workers
/// send, one at a time, and returns the sender, whose queue holds at most `capacity` items.
/// The task ends when every sender is gone and the queue is empty, or when the run stops; an
/// error of the sink is the run's error, like a stage's.
pub(crate) fn spawn<T, E>(
    scope: &mut Scope<E>,
    sink: BoxedSink<T, E>,
    capacity: usize,
    stats: Arc<StageStats>,
) -> Sender<Letter<T, E>>
where
    T: Send + 'static,
    E: From<Error> + Send + 'static,
{
    let (sender, letters) = channel(capacity, Arc::default());
    let task = hand_over(
        scope.step_context(),
        letters,
        sink,
        stats,
        scope.shared.clone(),
    );
    scope.spawn(task);
    sender
}

async fn hand_over<T, E>(
    ctx: Context,
    letters: Receiver<Letter<T, E>>,
    mut sink: BoxedSink<T, E>,
    stats: Arc<StageStats>,
    shared: Arc<Shared<E>>,
) {
    let mut watch = ctx.watch();
    let mut batch = Vec::new();
    loop {
        match watch.run(letters.recv(&mut batch, DEFAULT_BATCH, 1)).await {
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(_) => return shared.stopped_early(),
        }
        for (item, err) in batch.drain(..) {
            match watch.run(sink(item, err)).await {
                // Relaxed: a statistic (see `StageStats`).
                Ok(Ok(())) => {
                    stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Err(err)) => {
                    shared.fail(err);
                    return shared.stopped_early();
                }
                Err(_) => return shared.stopped_early(),
            }
        }
    }
}
