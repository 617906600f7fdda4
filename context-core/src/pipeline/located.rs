//! [`Located`]: a pipeline whose error says where it happened, as a [`RunError`].

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;

use super::policy::Location;
use super::report::Report;
use super::with_report::WithReport;
use crate::error::Error;

/// The error of a run, with the place of the item that failed it: what the sinks of a
/// [`Located`] pipeline return.
///
/// It displays as `stage `charge`, item #17 (attempt 3 of 3): card declined` when an item's
/// error failed the run, and as the error alone when something else did (the caller's cancel
/// or deadline, the sink's own error). The error inside stays the pipeline's own type:
/// [`error`](RunError::error) and [`into_error`](RunError::into_error) give it back, and its
/// [`source`](StdError::source) chain is this one's, so `anyhow` and `?` see it whole.
///
/// ```
/// use std::io;
/// use ctxpipe::{Context, Pipeline};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let err = Pipeline::<_, io::Error>::new(&Context::background(), ["4", "x", "6"])
///     .map("parse", |_ctx, s: &str| async move { s.parse::<u32>().map_err(io::Error::other) })
///     .located()
///     .collect()
///     .await
///     .unwrap_err();
/// assert_eq!(err.to_string(), "stage `parse`, item #1: invalid digit found in string");
/// assert_eq!(err.location().unwrap().stage, "parse");
/// let io: io::Error = err.into_error();
/// assert_eq!(io.kind(), io::ErrorKind::Other);
/// # }
/// ```
pub struct RunError<E> {
    error: E,
    at: Option<Location>,
}

impl<E> RunError<E> {
    /// The pipeline's error.
    pub fn error(&self) -> &E {
        &self.error
    }

    /// The pipeline's error, taken out.
    pub fn into_error(self) -> E {
        self.error
    }

    /// Where the item whose error failed the run was: its stage, its number and its attempt.
    /// `None` when no item failed it (a cancel, a deadline, a drain's timeout, the sink).
    pub fn location(&self) -> Option<&Location> {
        self.at.as_ref()
    }
}

impl<E: fmt::Display> fmt::Display for RunError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.at {
            Some(at) => write!(f, "{at}: {}", self.error),
            None => self.error.fmt(f),
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for RunError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunError")
            .field("error", &self.error)
            .field("at", &self.at)
            .finish()
    }
}

impl<E: StdError> StdError for RunError<E> {
    /// The error's own source: its message is already part of this one's.
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.error.source()
    }
}

/// A pipeline whose sinks return a [`RunError`]: the run's error with the place of the item
/// that failed it. Made by [`Pipeline::located`](crate::Pipeline::located) (`located;` in
/// `pipeline!`); the sinks are the pipeline's own.
#[must_use = "a pipeline does nothing until a sink's future is awaited"]
pub struct Located<T, E> {
    run: WithReport<T, E>,
}

impl<T, E> Located<T, E>
where
    T: Send + 'static,
    E: From<Error> + Send + 'static,
{
    pub(crate) fn new(run: WithReport<T, E>) -> Located<T, E> {
        Located { run }
    }

    /// [`Pipeline::collect`](crate::Pipeline::collect), with the error located.
    pub fn collect(self) -> impl Future<Output = Result<Vec<T>, RunError<E>>> {
        locate(self.run.collect())
    }

    /// [`Pipeline::count`](crate::Pipeline::count), with the error located.
    pub fn count(self) -> impl Future<Output = Result<usize, RunError<E>>> {
        locate(self.run.count())
    }

    /// [`Pipeline::fold`](crate::Pipeline::fold), with the error located.
    pub fn fold<A, F>(self, init: A, f: F) -> impl Future<Output = Result<A, RunError<E>>>
    where
        F: FnMut(A, T) -> A,
    {
        locate(self.run.fold(init, f))
    }

    /// [`Pipeline::for_each`](crate::Pipeline::for_each), with the error located.
    pub fn for_each<F>(self, f: F) -> impl Future<Output = Result<(), RunError<E>>>
    where
        F: FnMut(T),
    {
        locate(self.run.for_each(f))
    }

    /// [`Pipeline::try_for_each`](crate::Pipeline::try_for_each), with the error located.
    pub fn try_for_each<F, Fut>(self, f: F) -> impl Future<Output = Result<(), RunError<E>>>
    where
        F: FnMut(T) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        locate(self.run.try_for_each(f))
    }
}

/// The result of `run`, its error located by the report's failure.
async fn locate<O, E>(run: impl Future<Output = (Result<O, E>, Report)>) -> Result<O, RunError<E>> {
    let (result, report) = run.await;
    result.map_err(|error| RunError {
        error,
        at: report.failure,
    })
}

impl<T, E> fmt::Debug for Located<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Located").field(&self.run).finish()
    }
}
