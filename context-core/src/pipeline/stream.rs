//! [`PipelineStream`]: a pipeline's output as a `Stream`, for code that pulls.
//!
//! The stream owns the run's future and polls it from `poll_next`. Its sink moves each batch
//! it receives into a one-batch slot and then waits for the slot to be taken; `poll_next` takes
//! the slot whole when its own items run out, and polls the run only then. So the run goes on
//! only while the caller reads, at most two batches are held between them, and the queues
//! behind hold the rest of the backpressure.

use std::fmt;
use std::future::{poll_fn, Future};
use std::mem;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context as TaskContext, Poll};

use futures_core::{FusedStream, Stream};

use super::report::Counters;
use super::sink::{count, Sink, Stop};
use crate::context::Context;

/// The batch handed from the sink to the stream.
type Slot<T> = Arc<Mutex<Vec<T>>>;

/// The run's future, polled by the stream.
pub(crate) type Run<E> = Pin<Box<dyn Future<Output = Result<(), E>> + Send>>;

/// The sink of a [`PipelineStream`]: hands each batch over through the slot.
pub(crate) struct Handoff<T> {
    pub(crate) slot: Slot<T>,
}

impl<T, E> Sink<T, E> for Handoff<T> {
    type Output = ();

    async fn consume(
        &mut self,
        _: &Context,
        batch: &mut Vec<T>,
        counters: &Counters,
    ) -> Result<(), Stop<E>> {
        count(&counters.consumed, batch.len());
        mem::swap(&mut *lock(&self.slot), batch);
        // `poll_next` polls the run again only once it has taken the slot: no waker needed.
        poll_fn(|_| {
            if lock(&self.slot).is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        Ok(())
    }

    fn finish(self) {}
}

fn lock<T>(slot: &Mutex<Vec<T>>) -> std::sync::MutexGuard<'_, Vec<T>> {
    // No user code runs under this lock: it only swaps vectors.
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A pipeline's output as a [`Stream`]: made by
/// [`Pipeline::into_stream`](crate::Pipeline::into_stream), or `=> stream` in `pipeline!`.
///
/// It yields `Ok(item)` for each output, in the order the sink gets them, and, if the run
/// fails, one `Err` with the run's error, then ends. The pipeline runs as the stream is
/// polled, inside the caller's task: when the caller stops reading, the queues fill up and
/// every step waits (memory stays bounded as for any sink). Dropping the stream midway
/// cancels the pipeline and aborts its tasks, as dropping a sink's future does. A panic in a
/// step is resumed in the caller's `poll_next`.
///
/// ```
/// use ctxpipe::{Context, Error, Pipeline};
/// use futures::StreamExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// let mut squares = Pipeline::new(&Context::background(), 1..)
///     .map("square", |_ctx, n: u64| async move { Ok(n * n) })
///     .into_stream();
/// let mut first = Vec::new();
/// while let Some(square) = squares.next().await {
///     first.push(square?);
///     if first.len() == 4 {
///         break; // dropping the stream stops the endless pipeline
///     }
/// }
/// assert_eq!(first, [1, 4, 9, 16]);
/// # Ok(())
/// # }
/// ```
#[must_use = "a stream does nothing unless polled"]
pub struct PipelineStream<T, E> {
    /// The run; `None` once it has returned.
    run: Option<Run<E>>,
    slot: Slot<T>,
    /// Items taken from the slot and not yet yielded.
    taken: std::vec::IntoIter<T>,
}

impl<T, E> PipelineStream<T, E> {
    pub(crate) fn new(run: Run<E>, slot: Slot<T>) -> PipelineStream<T, E> {
        PipelineStream {
            run: Some(run),
            slot,
            taken: Vec::new().into_iter(),
        }
    }
}

// No field is pinned structurally: the run is boxed, and the items are only ever moved out.
impl<T, E> Unpin for PipelineStream<T, E> {}

impl<T, E> Stream for PipelineStream<T, E> {
    type Item = Result<T, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(item) = this.taken.next() {
                return Poll::Ready(Some(Ok(item)));
            }
            let batch = mem::take(&mut *lock(&this.slot));
            if !batch.is_empty() {
                this.taken = batch.into_iter();
                continue;
            }
            let Some(run) = &mut this.run else {
                return Poll::Ready(None);
            };
            match run.as_mut().poll(cx) {
                // The sink waits for the slot to be taken: take it.
                Poll::Pending if !lock(&this.slot).is_empty() => {}
                Poll::Pending => return Poll::Pending,
                Poll::Ready(result) => {
                    this.run = None;
                    if let Err(err) = result {
                        return Poll::Ready(Some(Err(err)));
                    }
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let taken = self.taken.len();
        match self.run {
            Some(_) => (taken, None),
            None => (taken, Some(taken)),
        }
    }
}

impl<T, E> FusedStream for PipelineStream<T, E> {
    fn is_terminated(&self) -> bool {
        self.run.is_none() && self.taken.len() == 0 && lock(&self.slot).is_empty()
    }
}

impl<T, E> fmt::Debug for PipelineStream<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineStream")
            .field("running", &self.run.is_some())
            .field("ready", &self.taken.len())
            .finish_non_exhaustive()
    }
}
