//! [`Error`]: why a context ended, why a stage could not start, or why a drained pipeline
//! stopped.

use std::fmt;
use std::io;

/// Why a context is done, why a stage could not start, or why a drained pipeline stopped.
///
/// This is the error every stage converts from: `Canceled` and `DeadlineExceeded` mirror Go's
/// `context.Canceled` and `context.DeadlineExceeded`, `MissingValue` reports a required
/// context value that was not there, and `DrainTimeout` is what a pipeline returns when a
/// [`Drain`](crate::Drain)'s budget ran out.
///
/// # Examples
///
/// ```
/// use ctxpipe::{Context, Error};
///
/// let (ctx, cancel) = Context::background().with_cancel();
/// assert_eq!(ctx.err(), None);
/// cancel.cancel();
/// assert_eq!(ctx.err(), Some(Error::Canceled));
/// assert_eq!(Error::Canceled.to_string(), "context canceled");
///
/// // io-based code gets `?` for free.
/// let io: std::io::Error = Error::DeadlineExceeded.into();
/// assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
/// ```
///
/// # Finding it again
///
/// Converted straight into a boxed or `anyhow` error, it is found with
/// `err.downcast_ref::<ctxpipe::Error>()`. Wrapped in an error enum of yours first (a
/// `thiserror` variant with `#[from] ctxpipe::Error`, say), downcast to that enum and match
/// the variant: the downcast sees the outer type only.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum Error {
    /// The context was cancelled through its [`CancelHandle`](crate::CancelHandle) or an ancestor's.
    Canceled,
    /// The context's deadline, or an ancestor's, passed.
    DeadlineExceeded,
    /// A required context value was not in the context.
    MissingValue {
        /// The type name of the missing value, as [`std::any::type_name`] gives it.
        type_name: &'static str,
    },
    /// A pipeline was drained and its budget ran out before it finished what it had taken:
    /// what the run returns (the stages' context was cancelled with a
    /// [`DrainTimeout`](crate::DrainTimeout) cause). See [`Drain`](crate::Drain).
    DrainTimeout,
}

impl Error {
    /// Returns `true` for [`Error::DeadlineExceeded`], like Go's `Timeout()` on that error.
    ///
    /// ```
    /// assert!(ctxpipe::Error::DeadlineExceeded.is_timeout());
    /// assert!(!ctxpipe::Error::Canceled.is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::DeadlineExceeded)
    }

    /// Returns `true` for [`Error::Canceled`] and [`Error::DeadlineExceeded`]: the errors a
    /// context reports once it is done.
    ///
    /// ```
    /// assert!(ctxpipe::Error::Canceled.is_done());
    /// assert!(!ctxpipe::Error::MissingValue { type_name: "u32" }.is_done());
    /// ```
    pub fn is_done(&self) -> bool {
        matches!(self, Error::Canceled | Error::DeadlineExceeded)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Canceled => f.write_str("context canceled"),
            Error::DeadlineExceeded => f.write_str("context deadline exceeded"),
            Error::MissingValue { type_name } => {
                write!(f, "context value `{type_name}` is missing")
            }
            Error::DrainTimeout => f.write_str("pipeline drain ran out of its budget"),
        }
    }
}

impl std::error::Error for Error {}

/// Maps `DeadlineExceeded` and `DrainTimeout` to [`io::ErrorKind::TimedOut`], `Canceled` to
/// [`io::ErrorKind::Interrupted`] and `MissingValue` to [`io::ErrorKind::NotFound`]; the
/// `Error` stays reachable through [`io::Error::get_ref`].
impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        let kind = match err {
            Error::DeadlineExceeded | Error::DrainTimeout => io::ErrorKind::TimedOut,
            Error::Canceled => io::ErrorKind::Interrupted,
            Error::MissingValue { .. } => io::ErrorKind::NotFound,
        };
        io::Error::new(kind, err)
    }
}
