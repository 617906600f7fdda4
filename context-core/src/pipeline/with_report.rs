//! [`WithReport`]: a pipeline whose sinks return the run's [`Report`] beside its result.

use std::fmt;
use std::future::Future;

use super::builder::Pipeline;
use super::report::Report;
use crate::error::Error;

/// A pipeline whose sinks return `(result, report)`: the run's outcome and the [`Report`] of
/// its counters once every task has stopped, so the counts are exact. Made by
/// [`Pipeline::with_report`]; the sinks are the pipeline's own.
///
/// ```
/// use std::io;
/// use ctxpipe::{Context, Pipeline};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (sum, report) = Pipeline::<_, io::Error>::new(&Context::background(), 1..=10_u32)
///     .map("half", |_ctx, n| async move {
///         if n % 2 == 0 { Ok(n / 2) } else { Err(io::Error::other(format!("{n} is odd"))) }
///     })
///     .with_report()
///     .fold(0, |sum, n| sum + n)
///     .await;
/// assert_eq!(sum.unwrap_err().to_string(), "1 is odd");
/// let failure = report.failure.expect("an item failed the run");
/// assert_eq!(failure.to_string(), "stage `half`, item #0");
/// # }
/// ```
#[must_use = "a pipeline does nothing until a sink's future is awaited"]
pub struct WithReport<T, E> {
    pipeline: Pipeline<T, E>,
}

impl<T, E> WithReport<T, E>
where
    T: Send + 'static,
    E: From<Error> + Send + 'static,
{
    pub(crate) fn new(pipeline: Pipeline<T, E>) -> WithReport<T, E> {
        WithReport { pipeline }
    }

    /// [`Pipeline::collect`], with the report.
    pub fn collect(self) -> impl Future<Output = (Result<Vec<T>, E>, Report)> {
        self.run(Pipeline::collect)
    }

    /// [`Pipeline::count`], with the report.
    pub fn count(self) -> impl Future<Output = (Result<usize, E>, Report)> {
        self.run(Pipeline::count)
    }

    /// [`Pipeline::fold`], with the report.
    pub fn fold<A, F>(self, init: A, f: F) -> impl Future<Output = (Result<A, E>, Report)>
    where
        F: FnMut(A, T) -> A,
    {
        self.run(move |pipeline| pipeline.fold(init, f))
    }

    /// [`Pipeline::for_each`], with the report.
    pub fn for_each<F>(self, f: F) -> impl Future<Output = (Result<(), E>, Report)>
    where
        F: FnMut(T),
    {
        self.run(move |pipeline| pipeline.for_each(f))
    }

    /// [`Pipeline::try_for_each`], with the report.
    pub fn try_for_each<F, Fut>(self, f: F) -> impl Future<Output = (Result<(), E>, Report)>
    where
        F: FnMut(T) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        self.run(move |pipeline| pipeline.try_for_each(f))
    }

    fn run<O, Fut>(
        self,
        sink: impl FnOnce(Pipeline<T, E>) -> Fut,
    ) -> impl Future<Output = (Result<O, E>, Report)>
    where
        Fut: Future<Output = Result<O, E>>,
    {
        let progress = self.pipeline.progress();
        let run = sink(self.pipeline);
        async move {
            let result = run.await;
            (result, progress.report())
        }
    }
}

impl<T, E> fmt::Debug for WithReport<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("WithReport").field(&self.pipeline).finish()
    }
}
