//! The source tasks: each pulls items from an iterator or a stream into the first queue,
//! never more than the queue has room for; [`Source`] is one of several merged sources.

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use futures_core::Stream;

use super::channel::Sender;
use super::options::DEFAULT_BATCH;
use super::report::{Counters, Progress, SourceStats};
use super::scope::Shared;
use crate::context::Context;
use crate::done::Watch;

/// One source of a pipeline that merges several (see [`Pipeline::merge`]): an iterator or a
/// stream, read in turn with the others.
///
/// [`Pipeline::merge`]: crate::Pipeline::merge
pub struct Source<T> {
    items: Items<T>,
}

enum Items<T> {
    Iter(Box<dyn Iterator<Item = T> + Send>),
    Stream(Pin<Box<dyn Stream<Item = T> + Send>>),
}

impl<T> Source<T> {
    /// A source of the items of `items`, as [`Pipeline::new`](crate::Pipeline::new) takes.
    pub fn iter<I>(items: I) -> Source<T>
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
    {
        Source {
            items: Items::Iter(Box::new(items.into_iter())),
        }
    }

    /// A source of the items of `stream`, as
    /// [`Pipeline::from_stream`](crate::Pipeline::from_stream) takes.
    pub fn stream<S>(stream: S) -> Source<T>
    where
        S: Stream<Item = T> + Send + 'static,
    {
        Source {
            items: Items::Stream(Box::pin(stream)),
        }
    }

    /// Polls the next item: an iterator is always ready.
    fn poll_next(&mut self, cx: &mut TaskContext<'_>) -> Poll<Option<T>> {
        match &mut self.items {
            Items::Iter(iter) => Poll::Ready(iter.next()),
            Items::Stream(stream) => stream.as_mut().poll_next(cx),
        }
    }
}

/// Several sources read in turn, one item from each, as one stream: none can take the room
/// of the queue while another waits for it. Each one's items and end are counted in its own
/// [`SourceStats`].
pub(crate) struct Merged<T> {
    /// The sources not ended yet, with their counters, in the order given.
    sources: Vec<(Source<T>, Arc<SourceStats>)>,
    /// The source to read first next time.
    next: usize,
}

impl<T> Merged<T> {
    pub(crate) fn new(sources: Vec<Source<T>>, stats: &[Arc<SourceStats>]) -> Merged<T> {
        Merged {
            sources: sources.into_iter().zip(stats.iter().cloned()).collect(),
            next: 0,
        }
    }
}

impl<T> Stream for Merged<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<T>> {
        // Every field is `Unpin`: the streams are boxed.
        let this = self.get_mut();
        let mut tried = 0;
        while tried < this.sources.len() {
            let at = this.next % this.sources.len();
            let (source, stats) = &mut this.sources[at];
            match source.poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    this.next = at + 1;
                    // Relaxed: a statistic (see `StageStats`).
                    stats.produced.fetch_add(1, Ordering::Relaxed);
                    return Poll::Ready(Some(item));
                }
                Poll::Ready(None) => {
                    stats.ended.store(true, Ordering::Relaxed);
                    this.sources.remove(at);
                    this.next = at;
                }
                Poll::Pending => {
                    this.next = at + 1;
                    tried += 1;
                }
            }
        }
        if this.sources.is_empty() {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}

impl<T> std::fmt::Debug for Source<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.items {
            Items::Iter(_) => "iter",
            Items::Stream(_) => "stream",
        };
        f.debug_struct("Source").field("kind", &kind).finish()
    }
}

/// What a source task needs.
pub(crate) struct Feed<T, E> {
    /// The source's own child of the pipeline's context.
    pub(crate) ctx: Context,
    pub(crate) output: Sender<T>,
    pub(crate) counters: Arc<Counters>,
    /// The counters of the run's sources: this one's, or those [`Merged`] reads.
    pub(crate) sources: Vec<Arc<SourceStats>>,
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

    /// The source has sent everything it took: its input ended (counted), or a drain ended
    /// it (not counted).
    fn ended(&self) {
        if let ([only], false) = (&self.sources[..], self.drained()) {
            // Relaxed: a statistic (see `StageStats`).
            only.ended.store(true, Ordering::Relaxed);
        }
    }

    /// The source stops before its input ended: an early stop, unless drained.
    fn halt(&self) {
        if !self.drained() {
            self.shared.stopped_early();
        }
    }

    /// Sends `batch`, which fits unless other sources took the room first (then it waits).
    async fn push(&self, batch: &mut Vec<T>) -> Option<()> {
        Progress::add(&self.counters.produced, batch.len());
        if let [only] = &self.sources[..] {
            Progress::add(&only.produced, batch.len());
        }
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
        if feed.push(&mut batch).await.is_none() {
            return;
        }
        if ended {
            return feed.ended();
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
        if feed.push(&mut batch).await.is_none() {
            return;
        }
        if ended {
            return feed.ended();
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
