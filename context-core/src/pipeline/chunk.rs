//! The chunk step: groups items into `Vec`s of at most `size`, emitted when full, or when
//! `within` has passed since a chunk's first item, or when the input ends.

use std::mem;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{sleep_until, Instant};

use super::channel::{Receiver, Sender};
use super::report::{StageStats, Tally};
use super::scope::{Scope, Shared};
use crate::context::Context;
use crate::error::Error;

/// The most chunks the step hands downstream at once when its input has many ready: the
/// queue's lock and wakeup are then paid per group of chunks, as the stages pay them per
/// batch.
const CHUNKS_AT_ONCE: usize = 32;

/// How a chunk step groups its items.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Chunking {
    /// At most this many items per chunk (at least one).
    pub(crate) size: usize,
    /// A chunk leaves when this long has passed since its first item, full or not.
    pub(crate) within: Option<Duration>,
}

/// Spawns the task of a chunk step, reading `input` and writing `output`.
pub(crate) fn spawn<T, E>(
    scope: &mut Scope<E>,
    chunking: Chunking,
    input: Receiver<T>,
    output: Sender<Vec<T>>,
    stats: Arc<StageStats>,
) where
    T: Send + 'static,
    E: From<Error> + Send + 'static,
{
    let task = run(
        scope.step_context(),
        chunking,
        input,
        output,
        stats,
        scope.shared.clone(),
    );
    scope.spawn(task);
}

/// What ended one wait of the chunk step.
enum Woken {
    /// Items were appended to the chunk.
    Items,
    /// The input has ended.
    End,
    /// The chunk's time is up.
    Due,
}

async fn run<T, E>(
    ctx: Context,
    chunking: Chunking,
    input: Receiver<T>,
    output: Sender<Vec<T>>,
    stats: Arc<StageStats>,
    shared: Arc<Shared<E>>,
) {
    let size = chunking.size.max(1);
    let mut watch = ctx.watch();
    let mut tally = Tally::default();
    let mut chunk: Vec<T> = Vec::new();
    let mut out: Vec<Vec<T>> = Vec::new();
    // Armed while the chunk holds an item and the step has a time bound.
    let mut timer = pin!(sleep_until(Instant::now()));
    let mut armed = false;
    let mut idle_since = Instant::now();
    loop {
        let before = chunk.len();
        let want = size - before;
        let woken = watch
            .run(async {
                tokio::select! {
                    biased;
                    first = input.recv(&mut chunk, want, 1) => match first {
                        Some(_) => Woken::Items,
                        None => Woken::End,
                    },
                    () = &mut timer, if armed => Woken::Due,
                }
            })
            .await;
        let started = Instant::now();
        tally.starved += started.saturating_duration_since(idle_since);
        let ended = match woken {
            Err(_) => {
                // Cancelled: what the step holds is dropped unfinished.
                tally.unfinished += (chunk.len() + out.iter().map(Vec::len).sum::<usize>()) as u64;
                stats.add(&mut tally);
                return shared.stopped_early();
            }
            Ok(Woken::Items) => {
                tally.items_in += (chunk.len() - before) as u64;
                if before == 0 {
                    if let Some(within) = chunking.within {
                        timer.as_mut().reset(started + within);
                        armed = true;
                    }
                }
                // Whole chunks of what is ready, without waiting.
                while chunk.len() == size && out.len() < CHUNKS_AT_ONCE {
                    out.push(mem::replace(&mut chunk, Vec::with_capacity(size)));
                    armed = false;
                    if input
                        .try_recv(&mut chunk, size, 1)
                        .is_some_and(|first| first.is_some())
                    {
                        tally.items_in += chunk.len() as u64;
                        if let Some(within) = chunking.within {
                            timer.as_mut().reset(started + within);
                            armed = true;
                        }
                    }
                }
                false
            }
            Ok(Woken::End) => {
                if !chunk.is_empty() {
                    out.push(mem::take(&mut chunk));
                }
                true
            }
            Ok(Woken::Due) => {
                out.push(mem::replace(&mut chunk, Vec::with_capacity(size)));
                armed = false;
                false
            }
        };
        let done = Instant::now();
        tally.busy += done.saturating_duration_since(started);
        if !out.is_empty() {
            tally.items_out += out.len() as u64;
            stats.add(&mut tally);
            match watch.run(output.send(&mut out)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => {
                    tally.unfinished += out.iter().map(Vec::len).sum::<usize>() as u64;
                    tally.unfinished += chunk.len() as u64;
                    stats.add(&mut tally);
                    return shared.stopped_early();
                }
            }
        }
        idle_since = Instant::now();
        tally.blocked += idle_since.saturating_duration_since(done);
        if ended {
            return stats.add(&mut tally);
        }
        // See `stage.rs`: a queue that never runs dry would otherwise never yield.
        tokio::task::coop::consume_budget().await;
    }
}
