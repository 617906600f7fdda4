//! What a stage does when a call fails: its error policy ([`OnError`]), its retries (how many,
//! for which errors, with which [`Backoff`]), its dead-letter sink, and where a failed item was
//! ([`Location`], [`ItemError`]).

use std::borrow::Cow;
use std::collections::hash_map::RandomState;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::time::Duration;

/// What a stage does with an item whose call failed (after its last attempt, when the stage
/// retries).
///
/// An error returned because the pipeline itself is stopping (its context was cancelled or
/// reached its deadline) is never an item error: the run stops, whatever the policy.
///
/// ```
/// use std::num::ParseIntError;
/// use ctxpipe::{Context, OnError, Pipeline, StageOptions};
///
/// #[derive(Debug, PartialEq)]
/// enum AppError {
///     Parse(ParseIntError),
///     Context(ctxpipe::Error),
/// }
/// impl From<ParseIntError> for AppError {
///     fn from(err: ParseIntError) -> Self { AppError::Parse(err) }
/// }
/// impl From<ctxpipe::Error> for AppError {
///     fn from(err: ctxpipe::Error) -> Self { AppError::Context(err) }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (numbers, report) = Pipeline::<_, AppError>::new(&Context::background(), ["1", "x", "3"])
///     .map(StageOptions::new("parse").on_error(OnError::Skip), |_ctx, s: &str| async move {
///         Ok(s.parse::<u32>()?)
///     })
///     .with_report()
///     .collect()
///     .await;
/// assert_eq!(numbers, Ok(vec![1, 3]));
/// assert_eq!(report.stage("parse").unwrap().skipped, 1);
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OnError {
    /// The first failed item fails the run: every stage stops and the run returns its error
    /// (the default).
    #[default]
    Fail,
    /// The failed item is dropped and counted as `skipped` in the stage's report; the run goes
    /// on. In an ordered stage the items after it flow on in order.
    Skip,
}

/// How long a stage waits before it calls again for an item that failed: exponential, from
/// `min` doubling up to `max`, with jitter unless turned off.
///
/// With jitter, each wait is drawn between half the exponential delay and all of it, so that
/// items that failed together do not all retry at the same instant; the first wait is at least
/// `min / 2`.
///
/// ```
/// use std::time::Duration;
/// use ctxpipe::Backoff;
///
/// let backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(50)).jitter(false);
/// let waits: Vec<_> = (1..=4).map(|retry| backoff.delay(retry)).collect();
/// assert_eq!(waits, [10, 20, 40, 50].map(Duration::from_millis));
/// assert_eq!(Backoff::default().delay(1), Duration::from_millis(100));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    jitter: bool,
}

impl Backoff {
    /// Waits of `min`, `2 × min`, `4 × min`... up to `max` (at least `min`), with jitter.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            jitter: true,
        }
    }

    /// The same wait before every retry, with jitter unless turned off.
    pub fn fixed(wait: Duration) -> Backoff {
        Backoff::new(wait, wait)
    }

    /// Turns jitter on (the default) or off. Without it every wait is exact, as tests want.
    pub fn jitter(mut self, on: bool) -> Backoff {
        self.jitter = on;
        self
    }

    /// The wait before retry number `retry` (1 for the first retry), without jitter: the
    /// longest it can be.
    pub fn delay(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(31);
        self.min
            .checked_mul(1 << doublings)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The wait before retry number `retry` of the item numbered `item`: [`delay`](Self::delay),
    /// less a random part of up to half of it when jitter is on.
    pub(crate) fn wait(&self, item: u64, retry: u32) -> Duration {
        let delay = self.delay(retry);
        if !self.jitter {
            return delay;
        }
        // A randomly keyed hash is random enough to spread retries, and needs no generator
        // state shared between workers.
        let draw = RandomState::new().hash_one((item, retry));
        let half = delay / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        delay - Duration::from_nanos(draw % nanos.saturating_add(1))
    }
}

impl Default for Backoff {
    /// From 100 ms up to 5 s, with jitter.
    fn default() -> Backoff {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(5))
    }
}

/// Where an item failed: its stage, its number and its attempt.
///
/// `item` counts the stage's inputs from 0 in the order the stage received them. For the
/// first stage that is the item's place in the source, and so it is for every later stage of
/// a pipeline of one-to-one stages that keep order (`map` stages with one worker or
/// `ordered`).
///
/// ```
/// use ctxpipe::Location;
///
/// let at = Location::new("charge", 17, 3, 3);
/// assert_eq!(at.to_string(), "stage `charge`, item #17 (attempt 3 of 3)");
/// assert_eq!(Location::new("parse", 2, 1, 1).to_string(), "stage `parse`, item #2");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    /// The stage's name.
    pub stage: Cow<'static, str>,
    /// The item's number among the stage's inputs, from 0.
    pub item: u64,
    /// The attempt that failed last, from 1.
    pub attempt: u32,
    /// How many attempts the stage allows an item: one more than its retries.
    pub attempts: u32,
}

impl Location {
    /// The location of attempt `attempt` of `attempts` on item number `item` of `stage`.
    pub fn new(
        stage: impl Into<Cow<'static, str>>,
        item: u64,
        attempt: u32,
        attempts: u32,
    ) -> Location {
        Location {
            stage: stage.into(),
            item,
            attempt,
            attempts,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stage `{}`, item #{}", self.stage, self.item)?;
        if self.attempts > 1 {
            write!(f, " (attempt {} of {})", self.attempt, self.attempts)?;
        }
        Ok(())
    }
}

/// A stage's error with where it happened: the stage, the item's number and the attempt.
///
/// A dead-letter sink ([`StageOptions::dead_letter`](crate::StageOptions::dead_letter)) gets
/// one beside each failed item. It displays as its [`Location`] and then the error:
///
/// ```
/// use ctxpipe::{ItemError, Location};
///
/// let err = ItemError::new(Location::new("charge", 17, 3, 3), std::io::Error::other("card declined"));
/// assert_eq!(err.to_string(), "stage `charge`, item #17 (attempt 3 of 3): card declined");
/// assert_eq!(err.location().item, 17);
/// let inner: std::io::Error = err.into_error();
/// assert_eq!(inner.to_string(), "card declined");
/// ```
///
/// As its `Display` already shows the error's own message, its [`source`](StdError::source) is
/// the error's source: a report that walks the chain (`anyhow`'s `{:#}`) shows each message
/// once. The error itself is [`error`](ItemError::error) or [`into_error`](ItemError::into_error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemError<E> {
    location: Location,
    error: E,
}

impl<E> ItemError<E> {
    /// `error`, which happened at `location`.
    pub fn new(location: Location, error: E) -> ItemError<E> {
        ItemError { location, error }
    }

    /// Where it happened.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The stage's error.
    pub fn error(&self) -> &E {
        &self.error
    }

    /// The stage's error, without its location.
    pub fn into_error(self) -> E {
        self.error
    }
}

impl<E: fmt::Display> fmt::Display for ItemError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.error)
    }
}

impl<E: StdError> StdError for ItemError<E> {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.error.source()
    }
}

/// Where a stage's failed items go: see
/// [`StageOptions::dead_letter`](crate::StageOptions::dead_letter).
///
/// Implemented by [`NoDeadLetter`] and [`DeadLetter`] only; it appears in the stage methods'
/// bounds so that only a stage with a sink requires `T: Clone` of its items.
pub trait DeadLetterSink<T, E>: sealed::Sealed + Send + 'static {
    /// Whether this stage hands failed items to a sink.
    #[doc(hidden)]
    const SINKS: bool;
    /// A copy of `item` for the sink, if the stage has one.
    #[doc(hidden)]
    fn keep(item: &T) -> Option<T>;
    /// The sink as one boxed function, if the stage has one.
    #[doc(hidden)]
    fn into_sink(self) -> Option<BoxedSink<T, E>>;
}

/// A dead-letter sink, boxed: it runs only for failed items.
#[doc(hidden)]
pub type BoxedSink<T, E> =
    Box<dyn FnMut(T, ItemError<E>) -> Pin<Box<dyn Future<Output = Result<(), E>> + Send>> + Send>;

/// A stage without a dead-letter sink (the default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoDeadLetter;

/// A stage whose failed items go to the function `S`: see
/// [`StageOptions::dead_letter`](crate::StageOptions::dead_letter).
#[derive(Clone, Copy)]
pub struct DeadLetter<S>(pub(crate) S);

impl<S> fmt::Debug for DeadLetter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeadLetter(..)")
    }
}

impl<T, E> DeadLetterSink<T, E> for NoDeadLetter {
    const SINKS: bool = false;

    #[inline]
    fn keep(_: &T) -> Option<T> {
        None
    }

    fn into_sink(self) -> Option<BoxedSink<T, E>> {
        None
    }
}

impl<T, E, S, Fut> DeadLetterSink<T, E> for DeadLetter<S>
where
    T: Clone,
    S: FnMut(T, ItemError<E>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
{
    const SINKS: bool = true;

    #[inline]
    fn keep(item: &T) -> Option<T> {
        Some(item.clone())
    }

    fn into_sink(self) -> Option<BoxedSink<T, E>> {
        let mut sink = self.0;
        Some(Box::new(move |item, err| Box::pin(sink(item, err))))
    }
}

/// Which errors of a stage are retried: see [`StageOptions::retry`](crate::StageOptions::retry).
///
/// Implemented by [`NoRetry`], [`RetryAll`] and [`RetryIf`] only; it appears in the stage
/// methods' bounds so that a retrying stage requires `T: Clone` of its items and no other
/// stage does.
pub trait RetryPolicy<T, E>: sealed::Sealed + Send + Sync + 'static {
    /// Whether this kind of stage retries at all: a stage that never does skips the
    /// bookkeeping of attempts.
    #[doc(hidden)]
    const RETRIES: bool = true;
    /// A copy of `item` for a later attempt, if this stage retries.
    #[doc(hidden)]
    fn keep(&self, item: &T) -> Option<T>;
    /// Whether `err` may be retried.
    #[doc(hidden)]
    fn retryable(&self, err: &E) -> bool;
}

/// A stage that never retries (the default): its items need not be `Clone`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoRetry;

/// A stage that retries every error of its calls (not the pipeline's own stop): its items are
/// cloned for each attempt but the last.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetryAll;

/// A stage that retries the errors its predicate accepts.
#[derive(Clone, Copy)]
pub struct RetryIf<P>(pub(crate) P);

impl<P> fmt::Debug for RetryIf<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RetryIf(..)")
    }
}

impl<T, E> RetryPolicy<T, E> for NoRetry {
    const RETRIES: bool = false;

    #[inline]
    fn keep(&self, _: &T) -> Option<T> {
        None
    }

    #[inline]
    fn retryable(&self, _: &E) -> bool {
        false
    }
}

impl<T: Clone, E> RetryPolicy<T, E> for RetryAll {
    #[inline]
    fn keep(&self, item: &T) -> Option<T> {
        Some(item.clone())
    }

    #[inline]
    fn retryable(&self, _: &E) -> bool {
        true
    }
}

impl<T, E, P> RetryPolicy<T, E> for RetryIf<P>
where
    T: Clone,
    P: Fn(&E) -> bool + Send + Sync + 'static,
{
    #[inline]
    fn keep(&self, item: &T) -> Option<T> {
        Some(item.clone())
    }

    #[inline]
    fn retryable(&self, err: &E) -> bool {
        (self.0)(err)
    }
}

/// The retry kind a stage's options get from [`StageOptions::retry`](crate::StageOptions::retry):
/// [`RetryAll`] unless a predicate was already given.
pub trait Retrying: sealed::Sealed {
    /// The kind after `retry(n)`.
    #[doc(hidden)]
    type On;
    #[doc(hidden)]
    fn on(self) -> Self::On;
}

impl Retrying for NoRetry {
    type On = RetryAll;
    fn on(self) -> RetryAll {
        RetryAll
    }
}

impl Retrying for RetryAll {
    type On = RetryAll;
    fn on(self) -> RetryAll {
        self
    }
}

impl<P> Retrying for RetryIf<P> {
    type On = RetryIf<P>;
    fn on(self) -> RetryIf<P> {
        self
    }
}

/// Whether a stage's calls run under a timeout: see
/// [`StageOptions::timeout`](crate::StageOptions::timeout).
///
/// Implemented by [`Timed`] and [`Untimed`] only. Known from the options' type, so that a stage
/// without a timeout has none of its code, and each stage function is called from one place.
pub trait Timing: sealed::Sealed + Send + Sync + 'static {
    /// Whether the calls run under a timeout.
    #[doc(hidden)]
    const TIMED: bool;
}

/// A stage whose calls run under a timeout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timed;

/// A stage without a timeout (the default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Untimed;

impl Timing for Timed {
    const TIMED: bool = true;
}

impl Timing for Untimed {
    const TIMED: bool = false;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Timed {}
    impl Sealed for super::Untimed {}
    impl Sealed for super::NoDeadLetter {}
    impl<S> Sealed for super::DeadLetter<S> {}
    impl Sealed for super::NoRetry {}
    impl Sealed for super::RetryAll {}
    impl<P> Sealed for super::RetryIf<P> {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_max() {
        let backoff =
            Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).jitter(false);
        let waits: Vec<_> = (1..=6).map(|n| backoff.wait(7, n).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(1));
        assert_eq!(backoff.delay(0), Duration::from_millis(100));
    }

    #[test]
    fn jitter_stays_between_half_and_all_of_the_delay() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let mut seen = std::collections::HashSet::new();
        for item in 0..200 {
            let wait = backoff.wait(item, 2);
            assert!(wait >= Duration::from_millis(100) && wait <= Duration::from_millis(200));
            seen.insert(wait);
        }
        assert!(
            seen.len() > 100,
            "waits are spread: {} distinct",
            seen.len()
        );
        assert_eq!(Backoff::fixed(Duration::ZERO).wait(1, 1), Duration::ZERO);
    }

    #[test]
    fn a_location_reads_as_a_sentence() {
        assert_eq!(
            Location::new("charge", 17, 3, 3).to_string(),
            "stage `charge`, item #17 (attempt 3 of 3)"
        );
    }
}
