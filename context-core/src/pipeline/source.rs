//! The source task: pulls items from an iterator or a stream into the first queue, never more
//! than the queue has room for.

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use futures_core::Stream;

use super::channel::Sender;
use super::options::DEFAULT_BATCH;
use super::report::{Counters, Progress};
use super::scope::Shared;
use crate::context::Context;
use crate::done::Watch;

/// What a source task needs.
pub(crate) struct Feed<T, E> {
    /// The source's own child of the pipeline's context.
    pub(crate) ctx: Context,
    pub(crate) output: Sender<T>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) shared: Arc<Shared<E>>,
}

impl<T, E> Feed<T, E> {
    /// Waits for room in the queue: `Some(room)`, or `None` if the source is to stop. The
    /// wait is raced against the source's context through `watch`, which registers once.
    async fn room(&self, watch: &mut Watch) -> Option<usize> {
        match watch.run(self.output.room()).await {
            Ok(Ok(room)) => Some(room.min(DEFAULT_BATCH)),
            Ok(Err(_)) | Err(_) => {
                self.halt();
                None
            }
        }
    }

    /// A [`Drain`](super::Drain) stopped the source: its own context is done while the
    /// pipeline's is not. Its output then ends as if its input had.
    fn drained(&self) -> bool {
        self.ctx.is_done() && !self.shared.ctx.is_done()
    }

    /// The source stops before its input ended: an early stop, unless drained.
    fn halt(&self) {
        if !self.drained() {
            self.shared.stopped_early();
        }
    }

    /// Sends `batch`, which fits: this task is the queue's only sender and asked for room.
    async fn push(&self, batch: &mut Vec<T>) -> Option<()> {
        Progress::add(&self.counters.produced, batch.len());
        match self.output.send(batch).await {
            Ok(()) => Some(()),
            Err(_) => {
                self.shared.stopped_early();
                None
            }
        }
    }
}

/// Feeds the items of `iter`, checking the context before each.
pub(crate) async fn from_iter<I, E>(feed: Feed<I::Item, E>, mut iter: I)
where
    I: Iterator,
{
    let mut batch = Vec::new();
    let mut watch = feed.ctx.watch();
    loop {
        let Some(room) = feed.room(&mut watch).await else {
            return;
        };
        let mut ended = false;
        for _ in 0..room {
            if feed.ctx.is_done() {
                if !feed.drained() {
                    feed.shared.stopped_early();
                    return;
                }
                // What was taken before the drain goes on.
                ended = true;
                break;
            }
            match iter.next() {
                Some(item) => batch.push(item),
                None => {
                    ended = true;
                    break;
                }
            }
        }
        if feed.push(&mut batch).await.is_none() || ended {
            return;
        }
        tokio::task::coop::consume_budget().await; // see `stage.rs`
    }
}

/// Feeds the items of `stream`: as many as it has ready, up to the room in the queue, in one
/// batch.
pub(crate) async fn from_stream<S, E>(feed: Feed<S::Item, E>, stream: S)
where
    S: Stream,
{
    let mut stream = pin!(stream);
    let mut batch = Vec::new();
    let mut watch = feed.ctx.watch();
    loop {
        let Some(room) = feed.room(&mut watch).await else {
            return;
        };
        let more = ReadyBatch {
            stream: stream.as_mut(),
            batch: &mut batch,
            max: room,
        };
        let ended = match watch.run(more).await {
            Ok(ended) => ended,
            Err(_) => {
                feed.halt();
                // Only a drain lets what was taken go on; `push` sends nothing for none.
                if !feed.drained() {
                    return;
                }
                true
            }
        };
        if feed.push(&mut batch).await.is_none() || ended {
            return;
        }
        tokio::task::coop::consume_budget().await; // see `stage.rs`
    }
}

/// Resolves once `batch` holds `max` items, or at least one and the stream is pending, or the
/// stream has ended (`true`).
struct ReadyBatch<'a, S: Stream> {
    stream: Pin<&'a mut S>,
    batch: &'a mut Vec<S::Item>,
    max: usize,
}

impl<S: Stream> Future for ReadyBatch<'_, S> {
    type Output = bool;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<bool> {
        let this = self.get_mut();
        while this.batch.len() < this.max {
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => this.batch.push(item),
                Poll::Ready(None) => return Poll::Ready(true),
                Poll::Pending if this.batch.is_empty() => return Poll::Pending,
                Poll::Pending => break,
            }
        }
        Poll::Ready(false)
    }
}
