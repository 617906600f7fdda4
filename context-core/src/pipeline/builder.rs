//! [`Pipeline`]: the builder users chain stages on, and the sinks that run it.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use futures_core::Stream;

use super::channel::{channel, QueueStats, Receiver, Sender};
use super::chunk::{self, Chunking};
use super::drain::Drain;
use super::keyed::Keying;
use super::located::Located;
use super::options::{StageOptions, DEFAULT_BUFFER};
use super::policy::{DeadLetterSink, RetryPolicy, Timing};
use super::report::{Progress, StageStats};
use super::scope::Scope;
use super::sink::{drive, Absorbing, Collect, Count, Fold, ForEach, TryForEach};
use super::source::{self, Feed, Merged, Source};
use super::stage::{self, Emit, Filter, Flat, Map};
use super::stream::{Handoff, PipelineStream};
use super::with_report::WithReport;
use crate::context::Context;
use crate::error::Error;

/// The queue a step writes into, as its reader wants it.
pub(crate) struct Inlet {
    pub(crate) capacity: usize,
    pub(crate) queue: Arc<QueueStats>,
}

/// Spawns the steps built so far, writing into the given queue, and returns its reading end.
type Build<T, E> = Box<dyn FnOnce(&mut Scope<E>, Inlet) -> Receiver<T> + Send>;

/// What a sink needs of a [`Pipeline`] to run it.
pub(crate) struct Parts<T, E> {
    pub(crate) parent: Context,
    pub(crate) build: Build<T, E>,
    pub(crate) progress: Progress,
    /// The capacity of the sink's queue.
    pub(crate) last_buffer: usize,
    pub(crate) drain: Option<Drain>,
}

/// A concurrent pipeline — source → stages → sink — that runs under one context: bounded
/// queues between steps, several workers per stage, first error cancels everything, nothing
/// outlives the run.
///
/// Build it from a source ([`new`](Pipeline::new) for any `IntoIterator`,
/// [`from_stream`](Pipeline::from_stream) for a `Stream`), chain stages
/// ([`map`](Pipeline::map), [`filter_map`](Pipeline::filter_map),
/// [`flat_map`](Pipeline::flat_map)), and end it with a sink ([`collect`](Pipeline::collect),
/// [`count`](Pipeline::count), [`fold`](Pipeline::fold), [`for_each`](Pipeline::for_each),
/// [`try_for_each`](Pipeline::try_for_each)), whose future runs the whole pipeline. `T` is
/// the type of the items that the steps so far produce; `E` is the pipeline's error type.
///
/// ```
/// use ctxpipe::{Context, Error, Pipeline, StageOptions};
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), Error> {
/// #[derive(Debug)]
/// struct Tenant(&'static str);
///
/// let ctx = Context::background().with_value(Tenant("acme"));
/// let lines = vec!["3", "1", "4", "1", "5"];
///
/// let total: u64 = Pipeline::new(&ctx, lines)
///     // Each call gets an owned handle to the pipeline's context, which descends from `ctx`.
///     .map("parse", |ctx, line: &str| async move {
///         assert_eq!(ctx.value::<Tenant>().unwrap().0, "acme");
///         Ok(line.parse::<u64>().unwrap_or(0))
///     })
///     .map(StageOptions::new("fetch").workers(8).ordered(), |ctx, n| async move {
///         // Awaits raced against the context stop when the pipeline is cancelled.
///         ctx.run(tokio::task::yield_now()).await?;
///         Ok(n * 10)
///     })
///     .fold(0, |sum, n| sum + n)
///     .await?;
/// assert_eq!(total, 140);
/// # Ok(())
/// # }
/// ```
///
/// # Stages
///
/// A stage is an async function called as `f(ctx, item)`: it gets an owned [`Context`] (so its
/// future can be spawned) and returns `Result<_, E>`. The `Ok` value decides the kind of stage:
///
/// | method | stage returns | emits |
/// |---|---|---|
/// | [`map`](Pipeline::map) | `Result<U, E>` | one item per input |
/// | [`filter_map`](Pipeline::filter_map) | `Result<Option<U>, E>` | the item, or nothing for `None` |
/// | [`flat_map`](Pipeline::flat_map) | `Result<impl IntoIterator<Item = U>, E>` | every item of the iterator |
///
/// Each stage takes [`StageOptions`] — its name (for the [`Report`](crate::Report)), its
/// number of workers, the size of its input queue, its batch size and whether it keeps input
/// order — or just a name for the defaults.
///
/// # The error type
///
/// A pipeline has one error type `E`, a type parameter of `Pipeline<T, E>`: **every stage and
/// the sink return `Result<_, E>` with that same `E`**, and the pipeline resolves to
/// `Result<_, E>`. Inside a stage, `?` converts other errors into `E` through `From`, as in any
/// function returning `Result<_, E>`. `E` must implement `From<ctxpipe::Error>`: when the
/// caller's context is cancelled or its deadline passes, that [`Error`] is what the pipeline
/// returns, converted. Because the type is shared, Rust infers it from any one place that names
/// it — a stage whose result has a known error type, the binding the result goes into, or a
/// turbofish such as `Pipeline::<_, MyError>::new(..)` — and no stage needs `Ok::<_, E>`.
/// A stage function with its own error type `E2: Into<E>` joins a pipeline as
/// `|ctx, item| async move { Ok(f(&ctx, item).await?) }`.
///
/// # What a run does
///
/// The future a sink returns is lazy; when first polled (inside a tokio runtime: like
/// `tokio::spawn`, it panics elsewhere) it creates the pipeline's context, a child of the context given to `new` (so stages
/// see its values and its deadline), spawns one task for the source and one per worker, and
/// drains the last queue itself, so the sink's function needs neither `Send` nor `'static`.
///
/// - **First error wins.** The first `Err` from a stage or the sink cancels the pipeline's
///   context; every other step stops at its next checkpoint, and the run returns that error.
///   Later errors are dropped, but counted in the report. [`located`](Self::located) makes
///   that error say which stage, item and attempt it came from.
/// - **Checkpoints.** Every item a worker takes is run under [`Context::run`]: a done context
///   costs one atomic load to notice and drops the item without calling the stage, and a stage
///   future still pending when the context ends is dropped. Waits for input or for room
///   downstream are raced against the context too.
/// - **Cancellation.** When the caller's context is cancelled or its deadline passes, every
///   step stops promptly and the run returns that [`Error`] converted into `E`. Whichever
///   ends the pipeline first, an error or the caller's context, is what the run returns; once
///   every step has finished its input, a cancellation no longer changes the result. The
///   synchronous sinks ([`fold`](Self::fold), [`for_each`](Self::for_each)) notice it between
///   batches, after the batch in hand (the *sink batch* below);
///   [`try_for_each`](Self::try_for_each) before each item.
/// - **Drain.** A [`Drain`] attached with [`drained_by`](Self::drained_by) stops the source
///   gracefully: what it took finishes within a budget, and the run returns `Ok`, or
///   [`Error::DrainTimeout`] converted into `E` when the budget ran out.
/// - **Panics.** A panic in a stage, the source or the sink cancels everything else and is
///   resumed in the caller (with [`std::panic::resume_unwind`]) once every task has stopped,
///   as [`std::thread::scope`] does. A panic is never lost: it is resumed even when an error
///   ended the run first (say, an item whose `Drop` panics as the run is cancelled).
/// - **Structured.** When the future completes, every task it spawned has finished. When it is
///   dropped midway, every task is aborted: the runtime drops each one, with the items it
///   holds, the next time it schedules it (tokio ends aborted tasks asynchronously).
///   Either way the pipeline's context is then cancelled (as Go's `errgroup` does when `Wait`
///   returns), so work a stage spawned with its context learns that the run is over. (The
///   runtime's shared deadline timer is not the pipeline's: a wait under a deadline may have
///   started it, and it ends within a second of the last deadline anyone waits on.)
///
/// # Batches and backpressure
///
/// Items move between steps in batches: a worker takes what is queued (at most
/// `min(batch, ⌈queued / workers⌉)` items, and about 50 µs of work, see [`StageOptions`]) and
/// sends its outputs as one batch, so the cost of a queue — a lock and a wakeup — is paid per
/// batch while the pipeline is busy, and per item only when items trickle in or are slow.
///
/// Each queue is bounded, in items: a step that finds the next queue full waits. The source
/// takes items from its iterator or stream only when the first queue has room for them. Hence,
/// for a pipeline of `map` and `filter_map` stages, at any time
///
/// ```text
/// produced − consumed  ≤  Σ over stages (buffer + held)  +  sink queue  +  sink batch
///
///   held       = workers × min(batch, ⌈buffer / workers⌉)    unordered, or one worker
///              = reorder window                              ordered, several workers
///   sink queue = the last stage's buffer (DEFAULT_BUFFER without stages)
///   sink batch = min(DEFAULT_BATCH, sink queue)
/// ```
///
/// where `produced` counts items taken from the source and `consumed` items handed to the
/// sink. A `flat_map` stage multiplies what it holds by what one input expands to.
///
/// # Observability
///
/// [`progress`](Pipeline::progress) gives a [`Progress`] handle: read it while the pipeline
/// runs or after, as a [`Report`](crate::Report) with per-stage counts (in, out, filtered,
/// errors), busy, starved and blocked time, queue depths, and which step is the bottleneck.
///
/// # Cost
///
/// A trivial stage costs a few nanoseconds per item: the checkpoint's atomic load, the call and
/// a push into the next batch. The owned [`Context`] each call gets is the worker's, *lent*
/// for the call: it takes no reference count, and giving it back when the call drops it is a
/// thread-local write. A call that keeps it longer (moves it into a spawned task, say) still
/// owns a valid handle: it is settled with one compare-and-swap when the call ends and one
/// when the handle is dropped. Batches move between steps whole, without copying their items.
/// Under a context with a deadline, each checkpoint also reads the clock.
#[must_use = "a pipeline does nothing until a sink's future is awaited"]
pub struct Pipeline<T, E> {
    parent: Context,
    build: Build<T, E>,
    progress: Progress,
    /// The input queue's size of the last stage: the sink's queue is as large.
    last_buffer: usize,
    drain: Option<Drain>,
}

impl<T, E> Pipeline<T, E>
where
    T: Send + 'static,
    E: From<Error> + Send + 'static,
{
    /// A pipeline under `ctx` (the pipeline's context will be a child of it) fed by the items
    /// of `source`, taken on a task of their own as the first queue has room.
    ///
    /// The iterator runs on a tokio task: it should not block for long. Use
    /// [`Context::background`] when there is no caller context.
    ///
    /// ```
    /// use ctxpipe::{Context, Error, Pipeline};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Error> {
    /// let squares = Pipeline::new(&Context::background(), 1..=4)
    ///     .map("square", |_ctx, n: u32| async move { Ok(n * n) })
    ///     .collect()
    ///     .await?;
    /// assert_eq!(squares, [1, 4, 9, 16]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new<I>(ctx: &Context, source: I) -> Pipeline<T, E>
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
    {
        let iter = source.into_iter();
        Pipeline::fed_by(ctx, 1, move |feed| source::from_iter(feed, iter))
    }

    /// A pipeline under `ctx` fed by the items of `stream`, polled on a task of its own as the
    /// first queue has room. Items the stream has ready are taken as one batch.
    ///
    /// ```
    /// use ctxpipe::{Context, Error, Pipeline};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Error> {
    /// let (tx, rx) = tokio::sync::mpsc::channel(8);
    /// tokio::spawn(async move {
    ///     for word in ["a", "bb", "ccc"] {
    ///         tx.send(word).await.unwrap();
    ///     }
    /// });
    /// // Any `futures_core::Stream`; here a hand-rolled adapter over the receiver.
    /// struct Words(tokio::sync::mpsc::Receiver<&'static str>);
    /// impl futures_core::Stream for Words {
    ///     type Item = &'static str;
    ///     fn poll_next(
    ///         mut self: std::pin::Pin<&mut Self>,
    ///         cx: &mut std::task::Context<'_>,
    ///     ) -> std::task::Poll<Option<&'static str>> {
    ///         self.0.poll_recv(cx)
    ///     }
    /// }
    /// let letters = Pipeline::from_stream(&Context::background(), Words(rx))
    ///     .map("len", |_ctx, word: &str| async move { Ok(word.len()) })
    ///     .fold(0, |sum, len| sum + len)
    ///     .await?;
    /// assert_eq!(letters, 6);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_stream<S>(ctx: &Context, source: S) -> Pipeline<T, E>
    where
        S: Stream<Item = T> + Send + 'static,
    {
        Pipeline::fed_by(ctx, 1, move |feed| source::from_stream(feed, source))
    }

    /// A pipeline under `ctx` fed by several sources at once, iterators and streams alike.
    /// One task reads them in turn, an item from each (a stream with nothing ready is
    /// skipped, an ended one dropped), so none starves another; the run's input ends when
    /// every source has ended. The [`Report`](crate::Report) counts each source's items and
    /// says which have ended. Like [`new`](Pipeline::new)'s iterator, an iterator here
    /// should not block for long: the others wait meanwhile.
    ///
    /// ```
    /// use ctxpipe::{Context, Error, Pipeline, Source};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Error> {
    /// let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    /// tx.send(100).unwrap();
    /// drop(tx);
    /// let events = futures::stream::unfold(rx, |mut rx| async { Some((rx.recv().await?, rx)) });
    /// let (sum, report) = Pipeline::merge(
    ///     &Context::background(),
    ///     [Source::iter(1..=3), Source::stream(events)],
    /// )
    /// .with_report()
    /// .fold(0, |sum, n| sum + n)
    /// .await;
    /// assert_eq!(sum?, 106);
    /// assert_eq!(report.sources.len(), 2);
    /// assert!(report.sources.iter().all(|source| source.ended));
    /// # Ok(())
    /// # }
    /// ```
    pub fn merge<I>(ctx: &Context, sources: I) -> Pipeline<T, E>
    where
        I: IntoIterator<Item = Source<T>>,
    {
        let sources: Vec<_> = sources.into_iter().collect();
        Pipeline::fed_by(ctx, sources.len(), move |feed| {
            let merged = Merged::new(sources, &feed.sources);
            source::from_stream(feed, merged)
        })
    }

    /// A pipeline whose source task is `feeder(feed)`, spawned when the pipeline runs, for
    /// `sources` sources (each counted in the report).
    fn fed_by<F, Fut>(ctx: &Context, sources: usize, feeder: F) -> Pipeline<T, E>
    where
        F: FnOnce(Feed<T, E>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let progress = Progress::new();
        let counters = progress.counters.clone();
        Pipeline {
            parent: ctx.clone(),
            build: Box::new(move |scope, inlet| {
                let (output, input) = channel(inlet.capacity, inlet.queue);
                let stats: Vec<_> = (0..sources).map(|_| Arc::default()).collect();
                counters
                    .sources
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone_from(&stats);
                let feed = Feed {
                    ctx: scope.source_context(),
                    output,
                    counters: counters.clone(),
                    sources: stats,
                    shared: scope.shared.clone(),
                };
                scope.spawn(feeder(feed));
                input
            }),
            progress,
            last_buffer: DEFAULT_BUFFER,
            drain: None,
        }
    }

    /// Adds a stage that maps each item to one output: `f(ctx, item)` returns
    /// `Result<U, E>`.
    ///
    /// ```
    /// use ctxpipe::{Context, Error, Pipeline, StageOptions};
    ///
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), Error> {
    /// let lengths = Pipeline::new(&Context::background(), ["a", "bb", "ccc"])
    ///     .map(StageOptions::new("len").workers(4).ordered(), |_ctx, s: &str| async move {
    ///         Ok(s.len())
    ///     })
    ///     .collect()
    ///     .await?;
    /// assert_eq!(lengths, [1, 2, 3]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn map<U, F, Fut, P, D, Tm, Ky>(
        self,
        options: impl Into<StageOptions<P, D, Tm, Ky>>,
        f: F,
    ) -> Pipeline<U, E>
    where
        P: RetryPolicy<T, E>,
        D: DeadLetterSink<T, E>,
        Tm: Timing,
        Ky: Keying<T>,
        U: Send + 'static,
        F: Fn(Context, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
    {
        self.stage::<U, U, F, Fut, Map, P, D, Tm, Ky>(options.into(), f)
    }

    /// Adds a stage that keeps or drops each item: `f(ctx, item)` returns
    /// `Result<Option<U>, E>`, and `Ok(None)` filters the item out (counted as `filtered` in the
    /// report).
    ///
    /// ```
    /// use ctxpipe::{Context, Error, Pipeline};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Error> {
    /// let numbers = Pipeline::new(&Context::background(), ["1", "x", "3"])
    ///     .filter_map("parse", |_ctx, s: &str| async move { Ok(s.parse::<u8>().ok()) })
    ///     .collect()
    ///     .await?;
    /// assert_eq!(numbers, [1, 3]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn filter_map<U, F, Fut, P, D, Tm, Ky>(
        self,
        options: impl Into<StageOptions<P, D, Tm, Ky>>,
        f: F,
    ) -> Pipeline<U, E>
    where
        P: RetryPolicy<T, E>,
        D: DeadLetterSink<T, E>,
        Tm: Timing,
        Ky: Keying<T>,
        U: Send + 'static,
        F: Fn(Context, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<U>, E>> + Send + 'static,
    {
        self.stage::<Option<U>, U, F, Fut, Filter, P, D, Tm, Ky>(options.into(), f)
    }

    /// Adds a stage that expands each item into any number of outputs: `f(ctx, item)` returns
    /// `Result<I, E>` and every item of `I` goes on, in order.
    ///
    /// A worker takes an expansion whole before passing it on, so a long one is held in
    /// memory at once (see *Batches and backpressure*); it looks at the context every 1024
    /// items of it, so a cancel stops even an endless one.
    ///
    /// ```
    /// use ctxpipe::{Context, Error, Pipeline};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Error> {
    /// let words = Pipeline::new(&Context::background(), ["a b", "c"])
    ///     .flat_map("split", |_ctx, line: &str| async move {
    ///         Ok(line.split(' ').map(str::to_owned).collect::<Vec<_>>())
    ///     })
    ///     .collect()
    ///     .await?;
    /// assert_eq!(words, ["a", "b", "c"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn flat_map<I, F, Fut, P, D, Tm, Ky>(
        self,
        options: impl Into<StageOptions<P, D, Tm, Ky>>,
        f: F,
    ) -> Pipeline<I::Item, E>
    where
        P: RetryPolicy<T, E>,
        D: DeadLetterSink<T, E>,
        Tm: Timing,
        Ky: Keying<T>,
        I: IntoIterator + 'static,
        I::Item: Send + 'static,
        F: Fn(Context, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<I, E>> + Send + 'static,
    {
        self.stage::<I, I::Item, F, Fut, Flat, P, D, Tm, Ky>(options.into(), f)
    }

    fn stage<R: 'static, U, F, Fut, K, P, D, Tm, Ky>(
        self,
        options: StageOptions<P, D, Tm, Ky>,
        f: F,
    ) -> Pipeline<U, E>
    where
        P: RetryPolicy<T, E>,
        D: DeadLetterSink<T, E>,
        Tm: Timing,
        Ky: Keying<T>,
        U: Send + 'static,
        F: Fn(Context, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        K: Emit<R, U>,
    {
        let stats = Arc::new(StageStats::new(
            options.name.clone(),
            options.workers,
            options.buffer,
        ));
        let buffer = options.buffer;
        self.step(stats, buffer, buffer, move |scope, input, output, stats| {
            stage::spawn::<T, R, U, E, F, Fut, K, P, D, Tm, Ky>(
                scope, options, input, output, f, stats,
            );
        })
    }

    /// Adds a step, counted in `stats`, whose input queue holds `buffer` items: `spawn`
    /// spawns its tasks when the pipeline runs, reading that queue and writing the next step's.
    /// Without a later stage, the sink's queue holds `sink_buffer` items.
    fn step<U, S>(
        self,
        stats: Arc<StageStats>,
        buffer: usize,
        sink_buffer: usize,
        spawn: S,
    ) -> Pipeline<U, E>
    where
        S: FnOnce(&mut Scope<E>, Receiver<T>, Sender<U>, Arc<StageStats>) + Send + 'static,
    {
        self.progress.add_stage(stats.clone());
        let previous = self.build;
        Pipeline {
            parent: self.parent,
            build: Box::new(move |scope, inlet| {
                let queue = stats.queue.clone();
                let input = previous(
                    scope,
                    Inlet {
                        capacity: buffer,
                        queue,
                    },
                );
                let (output, next) = channel(inlet.capacity, inlet.queue);
                spawn(scope, input, output, stats);
                next
            }),
            progress: self.progress,
            last_buffer: sink_buffer,
            drain: self.drain,
        }
    }

    /// Adds a step that groups items into `Vec`s of at most `size` items (at least one), in
    /// order: a chunk leaves when it is full, when `within` has passed since its first item
    /// (with `Some` duration), or when the input ends. A chunk is never empty.
    ///
    /// The wait for a chunk to fill is raced against the pipeline's context, so it never
    /// outlives its deadline. On a [`Drain`] the source's end reaches the step and the partial
    /// chunk leaves; on a cancel it is dropped (counted in
    /// [`Report::unfinished`](crate::Report::unfinished)). The step appears in the report as
    /// a stage named `chunk`: items in, chunks out. The next step's queue holds chunks, so it
    /// bounds memory at `size` × its buffer.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctxpipe::{Context, Error, Pipeline};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Error> {
    /// let rows = Pipeline::new(&Context::background(), 1..=7)
    ///     .chunk(3, Duration::from_millis(50))
    ///     .map("insert", |_ctx, rows: Vec<u32>| async move {
    ///         // One round trip per chunk rather than per row.
    ///         Ok(rows.len())
    ///     })
    ///     .collect()
    ///     .await?;
    /// assert_eq!(rows, [3, 3, 1]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn chunk(self, size: usize, within: impl Into<Option<Duration>>) -> Pipeline<Vec<T>, E> {
        let chunking = Chunking {
            size: size.max(1),
            within: within.into(),
        };
        let buffer = chunking.size.max(DEFAULT_BUFFER);
        let stats = Arc::new(StageStats::new("chunk".into(), 1, buffer));
        self.step(
            stats,
            buffer,
            DEFAULT_BUFFER,
            move |scope, input, output, stats| {
                chunk::spawn(scope, chunking, input, output, stats);
            },
        )
    }

    /// Attaches `drain`: [`Drain::drain`] then stops this pipeline's source and lets what it
    /// took finish within the budget (see [`Drain`]). A pipeline has at most one drain
    /// handle; a later call replaces an earlier one.
    pub fn drained_by(mut self, drain: &Drain) -> Pipeline<T, E> {
        self.drain = Some(drain.clone());
        self
    }

    /// Makes the sinks' error say where it happened: a [`RunError`](crate::RunError) with the stage, the item
    /// and the attempt of the item error that failed the run; see [`Located`].
    pub fn located(self) -> Located<T, E> {
        Located::new(WithReport::new(self))
    }

    /// Makes the sinks return the run's [`Report`](crate::Report) beside its result: see
    /// [`WithReport`].
    pub fn with_report(self) -> WithReport<T, E> {
        WithReport::new(self)
    }

    /// A handle on the pipeline's counters, to read while it runs or after; see [`Progress`].
    pub fn progress(&self) -> Progress {
        self.progress.clone()
    }

    /// Runs the pipeline and collects its outputs, in the order they reach the sink.
    ///
    /// ```
    /// use ctxpipe::{Context, Error, Pipeline};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Error> {
    /// let all = Pipeline::new(&Context::background(), 0..3).collect().await?;
    /// assert_eq!(all, [0, 1, 2]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn collect(self) -> impl Future<Output = Result<Vec<T>, E>> {
        drive(self, Absorbing(Collect(Vec::new())))
    }

    /// Runs the pipeline and counts its outputs.
    ///
    /// ```
    /// use ctxpipe::{Context, Error, Pipeline};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Error> {
    /// let n = Pipeline::new(&Context::background(), 0..1000)
    ///     .filter_map("even", |_ctx, n: i32| async move { Ok((n % 2 == 0).then_some(n)) })
    ///     .count()
    ///     .await?;
    /// assert_eq!(n, 500);
    /// # Ok(())
    /// # }
    /// ```
    pub fn count(self) -> impl Future<Output = Result<usize, E>> {
        drive(self, Absorbing(Count(0)))
    }

    /// Runs the pipeline and folds its outputs into an accumulator, in the order they reach
    /// the sink. `f` runs in the caller's future: it needs neither `Send` nor `'static`.
    ///
    /// ```
    /// use ctxpipe::{Context, Error, Pipeline};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Error> {
    /// let sum = Pipeline::new(&Context::background(), 1..=100u64)
    ///     .fold(0, |sum, n| sum + n)
    ///     .await?;
    /// assert_eq!(sum, 5050);
    /// # Ok(())
    /// # }
    /// ```
    pub fn fold<A, F>(self, init: A, f: F) -> impl Future<Output = Result<A, E>>
    where
        F: FnMut(A, T) -> A,
    {
        let fold = drive(self, Absorbing(Fold { acc: Some(init), f }));
        async move {
            let acc = fold.await?;
            // The accumulator is only ever missing after a panic in `f`, which `drive` resumes.
            Ok(acc.expect("a fold keeps its accumulator unless `f` panicked"))
        }
    }

    /// Runs the pipeline and calls `f` on each output, in the caller's future: `f` may borrow
    /// local state and needs neither `Send` nor `'static`.
    ///
    /// ```
    /// use ctxpipe::{Context, Error, Pipeline};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Error> {
    /// let mut seen = Vec::new();
    /// Pipeline::new(&Context::background(), ["x", "y"])
    ///     .for_each(|s| seen.push(s))
    ///     .await?;
    /// assert_eq!(seen, ["x", "y"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn for_each<F>(self, f: F) -> impl Future<Output = Result<(), E>>
    where
        F: FnMut(T),
    {
        drive(self, Absorbing(ForEach(f)))
    }

    /// Runs the pipeline and awaits `f(item)` on each output, one at a time, in the caller's
    /// future, raced against the pipeline's context. An `Err` is the pipeline's first error
    /// like any stage's. A slow sink holds the whole pipeline back (see the bound above).
    ///
    /// ```
    /// use ctxpipe::{Context, Pipeline};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), std::io::Error> {
    /// let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    /// let printer = tokio::spawn(async move {
    ///     let mut all = String::new();
    ///     while let Some(line) = rx.recv().await {
    ///         all += line;
    ///     }
    ///     all
    /// });
    /// Pipeline::new(&Context::background(), ["a", "b"])
    ///     .try_for_each(|line| {
    ///         let tx = tx.clone();
    ///         async move { tx.send(line).await.map_err(|_| std::io::Error::other("printer gone")) }
    ///     })
    ///     .await?;
    /// drop(tx);
    /// assert_eq!(printer.await.unwrap(), "ab");
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_for_each<F, Fut>(self, f: F) -> impl Future<Output = Result<(), E>>
    where
        F: FnMut(T) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        drive(self, TryForEach(f))
    }

    /// Runs the pipeline as its output is read: a [`PipelineStream`] of `Result<T, E>` that
    /// yields each output, then the run's error if it fails. The pipeline waits when the
    /// caller does not read, and dropping the stream cancels it; see [`PipelineStream`].
    pub fn into_stream(self) -> PipelineStream<T, E> {
        let slot = Arc::default();
        let run = drive(
            self,
            Handoff {
                slot: Arc::clone(&slot),
            },
        );
        PipelineStream::new(Box::pin(run), slot)
    }

    pub(crate) fn into_parts(self) -> Parts<T, E> {
        Parts {
            parent: self.parent,
            build: self.build,
            progress: self.progress,
            last_buffer: self.last_buffer,
            drain: self.drain,
        }
    }
}

impl<T, E> fmt::Debug for Pipeline<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stages: Vec<_> = self
            .progress
            .report()
            .stages
            .into_iter()
            .map(|stage| stage.name)
            .collect();
        f.debug_struct("Pipeline")
            .field("stages", &stages)
            .finish_non_exhaustive()
    }
}
