//! [`StageOptions`]: how one stage runs.

use std::borrow::Cow;

/// How many items a stage's input queue holds unless [`StageOptions::buffer`] says otherwise
/// (and the sink's queue, in a pipeline without stages).
///
/// ```
/// assert_eq!(ctxpipe::DEFAULT_BUFFER, 256);
/// ```
pub const DEFAULT_BUFFER: usize = 256;

/// The most items a worker takes from its queue at once unless [`StageOptions::batch`] says
/// otherwise; also the most items the source and the sink move at once.
///
/// ```
/// assert_eq!(ctxpipe::DEFAULT_BATCH, 128);
/// ```
pub const DEFAULT_BATCH: usize = 128;

/// How one stage runs: its name, its workers, its input queue, its batches and whether it keeps
/// input order.
///
/// A `&'static str` or a `String` converts into options with that name and every default, so
/// `.map("parse", f)` and `.map(StageOptions::new("parse"), f)` mean the same.
///
/// | option | default | meaning |
/// |---|---|---|
/// | [`workers(n)`](StageOptions::workers) | 1 | `n` calls of the stage function run at once, each worker a tokio task |
/// | [`buffer(n)`](StageOptions::buffer) | [`DEFAULT_BUFFER`] (256) | the input queue holds at most `n` items; upstream waits when it is full |
/// | [`batch(n)`](StageOptions::batch) | [`DEFAULT_BATCH`] (128) | a worker takes at most `n` queued items at once |
/// | [`ordered()`](StageOptions::ordered) | off | outputs leave in input order |
/// | [`reorder_window(n)`](StageOptions::reorder_window) | see below | ordered, with at most `n` items between input and output |
///
/// A worker takes at most `min(batch, ⌈queued / workers⌉)` items at once, so idle workers
/// share a short queue and a long one moves in large batches. Within that, it sizes its batches
/// to about 50 µs of work: it starts with one item and doubles while batches are quicker, so
/// quick items move in large batches and slow ones one by one (an idle worker never waits long
/// for items another one holds). Zero counts are taken as one.
///
/// # Examples
///
/// ```
/// use ctxpipe::StageOptions;
///
/// let fetch = StageOptions::new("fetch").workers(64).buffer(512).ordered();
/// assert_eq!(fetch.name(), "fetch");
/// let parse: StageOptions = "parse".into();
/// assert_eq!(parse.name(), "parse");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageOptions {
    pub(crate) name: Cow<'static, str>,
    pub(crate) workers: usize,
    pub(crate) buffer: usize,
    pub(crate) batch: usize,
    pub(crate) order: Order,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Order {
    Unordered,
    /// Ordered, with the default window.
    Ordered,
    Window(usize),
}

impl StageOptions {
    /// Options named `name` (shown in the [`Report`](crate::Report)), with every default.
    pub fn new(name: impl Into<Cow<'static, str>>) -> StageOptions {
        StageOptions {
            name: name.into(),
            workers: 1,
            buffer: DEFAULT_BUFFER,
            batch: DEFAULT_BATCH,
            order: Order::Unordered,
        }
    }

    /// Runs `n` workers (at least one): up to `n` calls of the stage function at once, each
    /// worker a tokio task, so a CPU-bound stage with one worker per core keeps every core busy
    /// and an IO-bound stage overlaps `n` waits.
    pub fn workers(mut self, n: usize) -> StageOptions {
        self.workers = n.max(1);
        self
    }

    /// Bounds the stage's input queue to `n` items (at least one). When it is full, the step
    /// before waits: this is the pipeline's backpressure.
    pub fn buffer(mut self, n: usize) -> StageOptions {
        self.buffer = n.max(1);
        self
    }

    /// Lets a worker take at most `n` queued items at once (at least one). Larger batches cost
    /// less per item; `1` hands out items one by one.
    pub fn batch(mut self, n: usize) -> StageOptions {
        self.batch = n.max(1);
        self
    }

    /// Keeps input order: the stage's outputs leave in the order its inputs arrived, whatever
    /// order its workers finish them in. Items finished early wait in a reorder window of
    /// `2 × workers × min(batch, ⌈buffer / workers⌉)` items (see
    /// [`reorder_window`](StageOptions::reorder_window)); a worker that would go past it waits.
    /// With one worker, order is kept anyway and this costs nothing.
    pub fn ordered(mut self) -> StageOptions {
        if self.order == Order::Unordered {
            self.order = Order::Ordered;
        }
        self
    }

    /// Keeps input order with a window of `n` items (at least one): at most `n` items are
    /// between this stage's input queue and its output, taken by a worker or finished and
    /// waiting for an earlier one.
    pub fn reorder_window(mut self, n: usize) -> StageOptions {
        self.order = Order::Window(n.max(1));
        self
    }

    /// The stage's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The most items one worker takes at once: `min(batch, ⌈buffer / workers⌉)`.
    pub(crate) fn take(&self) -> usize {
        self.batch.min(self.buffer.div_ceil(self.workers))
    }

    /// The reorder window if the stage keeps order with more than one worker.
    pub(crate) fn window(&self) -> Option<usize> {
        if self.workers == 1 {
            return None;
        }
        match self.order {
            Order::Unordered => None,
            Order::Ordered => Some(self.take().saturating_mul(self.workers).saturating_mul(2)),
            Order::Window(n) => Some(n),
        }
    }
}

impl From<&'static str> for StageOptions {
    /// Options with this name and every default.
    fn from(name: &'static str) -> StageOptions {
        StageOptions::new(name)
    }
}

impl From<String> for StageOptions {
    /// Options with this name and every default.
    fn from(name: String) -> StageOptions {
        StageOptions::new(name)
    }
}
