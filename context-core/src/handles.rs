//! Not public API: the ways the code the macros generate is handed a context. Each is a
//! trait implemented for [`Context`] and for anything that dereferences to one (a reference at
//! any depth, `Arc`, `Rc`, `Box`, a lock guard, a type with `Deref<Target = Context>`), with
//! its own message for anything else. Defined here, beside `Context`, so that the impl for
//! every `Deref` type may leave `Context` out.

use std::ops::Deref;

use crate::context::Context;

/// What the context named at a `#[stage]` await may be. Anything else means the stage
/// shadowed the name with something else.
#[diagnostic::on_unimplemented(
    message = "each `.await` of a stage races against its context, but here `ctx` refers to a \
               `{Self}`",
    label = "this checkpoint expects `ctx` to be a `ctxpipe::Context`",
    note = "a variable named like the stage's context (`ctx`, or the name given with \
            `#[stage(ctx = ..)]`) hides the context from the awaits after it: rename that \
            variable, or give the context another name with `#[stage(ctx = name)]`"
)]
pub trait StageContext {
    /// The context itself.
    fn context(&self) -> &Context;
}

impl StageContext for Context {
    #[inline]
    fn context(&self) -> &Context {
        self
    }
}

impl<T: Deref + ?Sized> StageContext for T
where
    T::Target: StageContext,
{
    #[inline]
    fn context(&self) -> &Context {
        (**self).context()
    }
}

/// What `in <context>;` of `pipeline!` accepts.
#[diagnostic::on_unimplemented(
    message = "expected a `Context` after `in`, found `{Self}`",
    label = "expected `ctxpipe::Context` or a reference to one",
    note = "the pipeline runs under a child of this context: write `in &ctx;` or `in ctx;`, \
            or leave the line out to run under `Context::background()`"
)]
pub trait Parent {
    /// The context itself.
    fn context(&self) -> &Context;
}

impl Parent for Context {
    #[inline]
    fn context(&self) -> &Context {
        self
    }
}

impl<T: Deref + ?Sized> Parent for T
where
    T::Target: Parent,
{
    #[inline]
    fn context(&self) -> &Context {
        (**self).context()
    }
}
