//! [`StageOptions`]: how one stage runs.

use std::borrow::Cow;
use std::time::Duration;

use super::keyed::{OrderedBy, Unkeyed};
use super::policy::{
    Backoff, DeadLetter, NoDeadLetter, NoRetry, OnError, RetryIf, Retrying, Timed, Untimed,
};
use super::rate::Rate;

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
/// | [`on_error(policy)`](StageOptions::on_error) | [`OnError::Fail`] | a failed item fails the run, or is skipped |
/// | [`dead_letter(sink)`](StageOptions::dead_letter) | none | a failed item goes to `sink` with its error, and the run goes on |
/// | [`retry(n)`](StageOptions::retry) | 0 | a failed call is tried again, up to `n` times, within the deadline |
/// | [`retry_if(pred)`](StageOptions::retry_if) | every error | which errors are retried |
/// | [`backoff(b)`](StageOptions::backoff) | [`Backoff::default`] | the waits between attempts |
/// | [`timeout(d)`](StageOptions::timeout) | none | each call runs under a context that ends `d` after it starts |
/// | [`ordered_by(key)`](StageOptions::ordered_by) | off | items with the same key leave in input order; different keys run in parallel |
/// | [`rate(r)`](StageOptions::rate) | none | calls start at most at [`Rate`] `r`, shared by the workers |
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
pub struct StageOptions<R = NoRetry, D = NoDeadLetter, Tm = Untimed, Ky = Unkeyed> {
    pub(crate) name: Cow<'static, str>,
    pub(crate) workers: usize,
    pub(crate) buffer: usize,
    pub(crate) batch: usize,
    pub(crate) order: Order,
    pub(crate) on_error: OnError,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retries: u32,
    pub(crate) backoff: Backoff,
    pub(crate) rate: Option<Rate>,
    pub(crate) retry: R,
    pub(crate) dead_letter: D,
    pub(crate) timing: Tm,
    pub(crate) keying: Ky,
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
            on_error: OnError::Fail,
            timeout: None,
            retries: 0,
            backoff: Backoff::default(),
            rate: None,
            retry: NoRetry,
            dead_letter: NoDeadLetter,
            timing: Untimed,
            keying: Unkeyed,
        }
    }
}

impl<R, D, Tm, Ky> StageOptions<R, D, Tm, Ky> {
    /// Runs `n` workers (at least one): up to `n` calls of the stage function at once, each
    /// worker a tokio task, so a CPU-bound stage with one worker per core keeps every core busy
    /// and an IO-bound stage overlaps `n` waits.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// Bounds the stage's input queue to `n` items (at least one). When it is full, the step
    /// before waits: this is the pipeline's backpressure.
    pub fn buffer(mut self, n: usize) -> Self {
        self.buffer = n.max(1);
        self
    }

    /// Lets a worker take at most `n` queued items at once (at least one). Larger batches cost
    /// less per item; `1` hands out items one by one.
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// Keeps input order: the stage's outputs leave in the order its inputs arrived, whatever
    /// order its workers finish them in. Items finished early wait in a reorder window of
    /// `2 × workers × min(batch, ⌈buffer / workers⌉)` items (see
    /// [`reorder_window`](StageOptions::reorder_window)); a worker that would go past it waits.
    /// With one worker, order is kept anyway and this costs nothing.
    ///
    /// It keeps the order in which the stage's *input* arrives: after an earlier stage with
    /// several workers that is not ordered, that order is already not the source's, and this
    /// cannot restore it. To keep source order end to end, make every stage with more than one
    /// worker ordered (`pipeline!`'s `ordered;` header does so, and rejects a stage-level
    /// `ordered` after an unordered multi-worker stage).
    pub fn ordered(mut self) -> Self {
        if self.order == Order::Unordered {
            self.order = Order::Ordered;
        }
        self
    }

    /// Keeps input order with a window of `n` items (at least one): at most `n` items are
    /// between this stage's input queue and its output, taken by a worker or finished and
    /// waiting for an earlier one.
    pub fn reorder_window(mut self, n: usize) -> Self {
        self.order = Order::Window(n.max(1));
        self
    }

    /// What the stage does with an item whose call failed: fail the run (the default) or skip
    /// the item. See [`OnError`]; to hand failed items to a sink instead, see
    /// [`dead_letter`](StageOptions::dead_letter).
    pub fn on_error(mut self, policy: OnError) -> Self {
        self.on_error = policy;
        self
    }

    /// Runs each call under a child of the pipeline's context that ends `limit` after the call
    /// starts (never later than the pipeline's own deadline). A call still running then is
    /// dropped, and the item fails with `E::from(Error::DeadlineExceeded)`, counted as
    /// `timed_out` and handled by the stage's retries and error policy. When the pipeline's
    /// deadline comes first, the run stops as it would without a timeout.
    ///
    /// Each call then gets a context of its own rather than the worker's: one allocation per
    /// call, and a timer while the call is pending.
    pub fn timeout(self, limit: Duration) -> StageOptions<R, D, Timed, Ky> {
        let mut options = self.rebuild(|retry| retry, |sink| sink, |_| Timed, |key| key);
        options.timeout = Some(limit);
        options
    }

    /// Retries an item whose call failed, up to `n` times (so at most `n + 1` attempts), each
    /// after a wait given by the stage's [`backoff`](StageOptions::backoff).
    ///
    /// - Every error is retried unless [`retry_if`](StageOptions::retry_if) says otherwise; an
    ///   error returned because the pipeline is stopping never is. A call that ran out of its
    ///   [`timeout`](StageOptions::timeout) is retried too.
    /// - A retry is made only if its wait and one more attempt fit before the pipeline's
    ///   deadline (an attempt is taken to last as long as the stage's timeout, or else as long
    ///   as the attempt that just failed). Otherwise the item fails at once with the error of
    ///   its last attempt, not with `DeadlineExceeded`.
    /// - The wait is a checkpoint: a cancel ends it at once and stops the run.
    /// - Each attempt gets the item anew: the stage's items must be `Clone`, and are cloned
    ///   once per attempt but the last (a cheap `Arc` or a small value keeps this free).
    ///
    /// ```
    /// use std::io;
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::time::Duration;
    /// use ctxpipe::{Backoff, Context, Pipeline, StageOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let calls = AtomicU32::new(0);
    /// let flaky = StageOptions::new("flaky")
    ///     .retry(2)
    ///     .retry_if(|err: &io::Error| err.kind() == io::ErrorKind::ConnectionReset)
    ///     .backoff(Backoff::fixed(Duration::from_millis(10)));
    /// let (result, report) = Pipeline::<_, io::Error>::new(&Context::background(), [1_u32])
    ///     .map(flaky, move |_ctx, n| {
    ///         // Fails twice, then succeeds.
    ///         let fail = calls.fetch_add(1, Ordering::Relaxed) < 2;
    ///         async move {
    ///             if fail { Err(io::ErrorKind::ConnectionReset.into()) } else { Ok(n) }
    ///         }
    ///     })
    ///     .with_report()
    ///     .collect()
    ///     .await;
    /// assert_eq!(result.unwrap(), [1]);
    /// assert_eq!(report.stage("flaky").unwrap().retried, 2);
    /// # }
    /// ```
    pub fn retry(self, n: u32) -> StageOptions<R::On, D, Tm, Ky>
    where
        R: Retrying,
    {
        let mut options = self.rebuild(|retry| retry.on(), |sink| sink, |timing| timing, |key| key);
        options.retries = n;
        options
    }

    /// Retries only the errors `retryable` accepts (with [`retry`](StageOptions::retry), which
    /// says how many times).
    pub fn retry_if<E, P>(self, retryable: P) -> StageOptions<RetryIf<P>, D, Tm, Ky>
    where
        P: Fn(&E) -> bool + Send + Sync + 'static,
    {
        self.rebuild(
            |_| RetryIf(retryable),
            |sink| sink,
            |timing| timing,
            |key| key,
        )
    }

    /// Keeps the order of the items that share a key, while items of different keys run on
    /// different workers at once: each worker owns a lane, and each item goes to the lane of
    /// its key's hash, so one key's items are worked on one after another, in input order
    /// (per-key order, as Kafka's parallel consumers keep it). Different keys that share a
    /// lane wait for each other. Give the item's type in the closure (`|order: &Order| ..`);
    /// it returns the key by value (an id, or a clone of a string).
    ///
    /// Full input order ([`ordered`](StageOptions::ordered)) keeps per-key order too, and
    /// takes precedence when both are set. In a keyed stage, an item's number (in
    /// [`ItemError`](crate::ItemError)s and the report) counts within its lane.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctxpipe::{Context, Error, Pipeline, StageOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Error> {
    /// // (user id, event number)
    /// let events = [(7, 1), (9, 1), (7, 2), (9, 2), (7, 3)];
    /// let applied = Pipeline::new(&Context::background(), events)
    ///     .map(
    ///         StageOptions::new("apply").workers(4).ordered_by(|event: &(u32, u64)| event.0),
    ///         |_ctx, (user, n)| async move {
    ///             // Later events of a user are quicker: their order still holds.
    ///             tokio::time::sleep(Duration::from_millis(10 / n)).await;
    ///             Ok((user, n))
    ///         },
    ///     )
    ///     .collect()
    ///     .await?;
    /// let user_7: Vec<_> = applied.iter().filter(|e| e.0 == 7).map(|e| e.1).collect();
    /// assert_eq!(user_7, [1, 2, 3]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn ordered_by<F>(self, key: F) -> StageOptions<R, D, Tm, OrderedBy<F>> {
        self.rebuild(
            |retry| retry,
            |sink| sink,
            |timing| timing,
            |_| OrderedBy(key),
        )
    }

    /// The waits between attempts of a retrying stage: [`Backoff::default`] unless given.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Starts the stage's calls at most at `rate`, shared by all its workers: a worker waits
    /// for a token before it takes an item (see [`Rate`]); the wait is a checkpoint, counted
    /// as the stage's [`throttled`](crate::StageReport::throttled) time. A rate-limited worker
    /// takes one item at a time.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctxpipe::{Context, Error, Pipeline, Rate, StageOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Error> {
    /// let start = tokio::time::Instant::now();
    /// let (sent, report) = Pipeline::new(&Context::background(), 0..50)
    ///     .map(
    ///         StageOptions::new("send").workers(4).rate(Rate::per_second(10)),
    ///         |_ctx, n: u32| async move { Ok(n) },
    ///     )
    ///     .with_report()
    ///     .count()
    ///     .await;
    /// assert_eq!(sent?, 50);
    /// // 50 calls at 10 a second: the last starts 4.9 s after the first.
    /// assert_eq!(start.elapsed(), Duration::from_millis(4_900));
    /// assert!(report.stage("send").unwrap().throttled > Duration::ZERO);
    /// # Ok(())
    /// # }
    /// ```
    pub fn rate(mut self, rate: Rate) -> Self {
        self.rate = Some(rate);
        self
    }

    /// These options with their retry kind, dead-letter sink, timing and keying replaced.
    fn rebuild<Q, S, Ti, K>(
        self,
        retry: impl FnOnce(R) -> Q,
        dead_letter: impl FnOnce(D) -> S,
        timing: impl FnOnce(Tm) -> Ti,
        keying: impl FnOnce(Ky) -> K,
    ) -> StageOptions<Q, S, Ti, K> {
        StageOptions {
            name: self.name,
            workers: self.workers,
            buffer: self.buffer,
            batch: self.batch,
            order: self.order,
            on_error: self.on_error,
            timeout: self.timeout,
            retries: self.retries,
            backoff: self.backoff,
            rate: self.rate,
            retry: retry(self.retry),
            dead_letter: dead_letter(self.dead_letter),
            timing: timing(self.timing),
            keying: keying(self.keying),
        }
    }

    /// Sends each item that fails (after its last attempt) with its error to `sink`, and goes
    /// on: `sink(item, err)` is awaited on a task of its own, one item at a time, while the
    /// stage works on; an `Err` it returns fails the run like a stage's error. The error comes
    /// as an [`ItemError`](crate::ItemError), which says which stage, which item and which attempt. The error
    /// policy ([`on_error`](StageOptions::on_error)) then plays no part.
    ///
    /// The sink's queue is as large as the stage's input queue (its
    /// [`buffer`](StageOptions::buffer)): when the sink falls that far behind, the stage waits
    /// for it. The stage's items must be `Clone`: each call gets a copy, so that the item is
    /// still there to hand to the sink (a cheap `Arc` or a small value keeps this free). A
    /// `tokio::sync::mpsc::Sender` becomes a sink with
    /// `move |item, err| { let tx = tx.clone(); async move { tx.send((item, err)).await.map_err(..) } }`.
    ///
    /// ```
    /// use std::io;
    /// use std::sync::{Arc, Mutex};
    /// use ctxpipe::{Context, Pipeline, StageOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> io::Result<()> {
    /// let rejected = Arc::new(Mutex::new(Vec::new()));
    /// let sink = {
    ///     let rejected = rejected.clone();
    ///     move |line: &'static str, err: ctxpipe::ItemError<io::Error>| {
    ///         rejected.lock().unwrap().push(format!("{line:?}: {err}"));
    ///         async { Ok(()) }
    ///     }
    /// };
    /// let numbers = Pipeline::<_, io::Error>::new(&Context::background(), ["1", "x", "3"])
    ///     .map(StageOptions::new("parse").dead_letter(sink), |_ctx, line: &str| async move {
    ///         line.parse::<u32>().map_err(io::Error::other)
    ///     })
    ///     .collect()
    ///     .await?;
    /// assert_eq!(numbers, [1, 3]);
    /// assert_eq!(
    ///     *rejected.lock().unwrap(),
    ///     [r#""x": stage `parse`, item #1: invalid digit found in string"#]
    /// );
    /// # Ok(())
    /// # }
    /// ```
    pub fn dead_letter<S>(self, sink: S) -> StageOptions<R, DeadLetter<S>, Tm, Ky> {
        self.rebuild(
            |retry| retry,
            |_| DeadLetter(sink),
            |timing| timing,
            |key| key,
        )
    }

    /// How many attempts an item gets.
    pub(crate) fn attempts(&self) -> u32 {
        self.retries.saturating_add(1)
    }

    /// The stage's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The most items one worker takes at once: `min(batch, ⌈buffer / workers⌉)`, or one
    /// under a rate limit (each item waits for its own token).
    pub(crate) fn take(&self) -> usize {
        if self.rate.is_some() {
            return 1;
        }
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
