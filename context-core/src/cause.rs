//! [`Cause`]: the shared, downcastable reason a context was cancelled.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// Why a context was cancelled: the error given to
/// [`CancelHandle::cancel_with`](crate::CancelHandle::cancel_with), or the context's
/// [`Error`](crate::Error) when none was given.
///
/// A `Cause` is cheap to clone (one shared allocation) and can be passed on as is. It forwards
/// `Display` and `Debug` to the error inside and can be downcast to it. Like `anyhow::Error`, it
/// does not implement [`std::error::Error`] itself, so that every error converts into it with
/// `From`; [`Cause::as_error`] gives the inner error where a `&dyn Error` is needed.
///
/// # Examples
///
/// ```
/// use ctxpipe::{Context, Error};
///
/// #[derive(Debug)]
/// struct Shutdown;
/// impl std::fmt::Display for Shutdown {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("server shutting down")
///     }
/// }
/// impl std::error::Error for Shutdown {}
///
/// let (ctx, cancel) = Context::background().with_cancel();
/// cancel.cancel_with(Shutdown);
/// let cause = ctx.cause().unwrap();
/// assert!(cause.downcast_ref::<Shutdown>().is_some());
/// assert_eq!(cause.to_string(), "server shutting down");
/// assert_eq!(ctx.err(), Some(Error::Canceled));
/// ```
#[derive(Clone)]
pub struct Cause(Arc<dyn StdError + Send + Sync + 'static>);

impl Cause {
    /// Wraps any error.
    pub fn new<E>(err: E) -> Cause
    where
        E: StdError + Send + Sync + 'static,
    {
        Cause(Arc::new(err))
    }

    /// A cause that is only a message.
    ///
    /// ```
    /// let cause = ctxpipe::Cause::msg("user logged out");
    /// assert_eq!(cause.to_string(), "user logged out");
    /// ```
    pub fn msg<M>(message: M) -> Cause
    where
        M: fmt::Display + fmt::Debug + Send + Sync + 'static,
    {
        Cause(Arc::new(Message(message)))
    }

    /// The inner error, if it is a `T`.
    pub fn downcast_ref<T>(&self) -> Option<&T>
    where
        T: StdError + 'static,
    {
        self.0.downcast_ref::<T>()
    }

    /// Returns `true` if the inner error is a `T`.
    pub fn is<T>(&self) -> bool
    where
        T: StdError + 'static,
    {
        self.0.is::<T>()
    }

    /// The inner error.
    pub fn as_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.0
    }
}

impl<E> From<E> for Cause
where
    E: StdError + Send + Sync + 'static,
{
    fn from(err: E) -> Cause {
        Cause::new(err)
    }
}

impl AsRef<dyn StdError + Send + Sync> for Cause {
    fn as_ref(&self) -> &(dyn StdError + Send + Sync + 'static) {
        self.as_error()
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// The error behind [`Cause::msg`].
struct Message<M>(M);

impl<M: fmt::Display> fmt::Display for Message<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<M: fmt::Debug> fmt::Debug for Message<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<M: fmt::Display + fmt::Debug> StdError for Message<M> {}
