//! [`CtxValue`]: the types declared as context values.

use std::any::Any;

use crate::context::Context;

/// A type declared as a context value, usually with `#[ctx_value]`.
///
/// Any `Send + Sync + 'static` type can be stored with [`Context::with_value`]; declaring it
/// makes it usable as a `#[ctx_value]` parameter of a `#[stage]` function and gives it the
/// typed accessor [`from_ctx`](CtxValue::from_ctx).
///
/// # Examples
///
/// ```
/// use ctxpipe::{Context, CtxValue};
///
/// #[derive(Debug, PartialEq)]
/// struct Tenant(&'static str);
/// impl CtxValue for Tenant {}
///
/// let ctx = Context::background().with_value(Tenant("acme"));
/// assert_eq!(Tenant::from_ctx(&ctx), Some(&Tenant("acme")));
/// ```
pub trait CtxValue: Any + Send + Sync {
    /// The value of this type carried by `ctx`, if any.
    fn from_ctx(ctx: &Context) -> Option<&Self>
    where
        Self: Sized,
    {
        ctx.value::<Self>()
    }
}
