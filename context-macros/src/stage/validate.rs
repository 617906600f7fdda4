//! Checks a `#[stage]` function and records what its expansion needs.
//!
//! Every problem is recorded at its own tokens and checking goes on, so that one build reports
//! all of them. The [`Stage`] is complete even when there were errors: its fallback still
//! renders the function that callers expect.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::punctuated::Punctuated;
use syn::visit_mut::VisitMut;
use syn::{
    Attribute, Block, FnArg, GenericArgument, Ident, Lifetime, Meta, Pat, PatIdent, PatType, Path,
    PathArguments, ReturnType, Signature, Token, Type, Visibility,
};

use super::args::{Arg, StageArgs};
use super::checkpoint::{Checkpoints, Mode, Target};
use super::rebinding::may_rebind;
use super::{mentions, Body, StageFn};
use crate::errors::Errors;
use crate::runtime::Runtime;

const NOT_ASYNC: &str = "expected `async fn`: `#[stage]` only rewrites async functions";
const UNDER_ASYNC_TRAIT: &str = "`#[stage]` cannot rewrite a method that `#[async_trait]` has \
                                 already turned into a boxed future: remove `#[async_trait]` from \
                                 the trait and its impls, and declare the method as a native \
                                 `async fn` (Rust 1.75 or later)";
const NO_RETURN: &str =
    "expected a return type `-> Result<T, E>` where `E: From<ctxpipe::Error>`: \
                         a stage returns an error when its context ends";
const BELOW_INSTRUMENT: &str = "expected `#[stage]` above `#[tracing::instrument]`: below it, \
                                `#[stage]` sees the body moved into an async block, whose awaits \
                                cannot be checkpoints";
const VALUE_TYPE: &str = "expected `&T` or `Option<&T>`: a `#[ctx_value]` parameter borrows its \
                          value from the context";

/// A validated `#[stage]` function.
pub(crate) struct Stage {
    pub(crate) rt: Runtime,
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    /// The signature without its `#[ctx_value]` parameters and before the context is inserted.
    pub(crate) sig: Signature,
    pub(crate) inner_attrs: Vec<Attribute>,
    pub(crate) ctx: CtxParam,
    pub(crate) values: Vec<ValueParam>,
    /// Where the return type starts and ends, for the errors that stand for it.
    pub(crate) ret: ReturnSpans,
    pub(crate) body: StageBody,
    /// A parameter has the inserted context's name: the fallback inserts it under a hidden one.
    pub(crate) clash: bool,
    /// The registration the body's checkpoints share, made on entry.
    pub(crate) watch: EntryWatch,
}

/// The registration a stage makes on entry for its checkpoints to share.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryWatch {
    /// The body has no checkpoint.
    None,
    /// Every checkpoint races the stage's own context, which the stage borrows (`&Context`):
    /// the registration borrows it too, so entry takes no reference count
    /// (`__private::home_watch`).
    Borrowed,
    /// A registration that owns a handle and can move to a shadowing `ctx`
    /// (`__private::watch`).
    Owned,
}

/// Where the context comes from.
pub(crate) enum CtxParam {
    /// Inserted by the expansion, first after the receiver.
    Inserted {
        ident: Ident,
        /// The lifetime that the `#[ctx_value]` parameters name, if they name one.
        lifetime: Option<Lifetime>,
    },
    /// Declared by the function itself, under `ident`; `by_ref` for `&Context`.
    Declared { ident: Ident, by_ref: bool },
}

impl CtxParam {
    pub(crate) fn ident(&self) -> &Ident {
        match self {
            CtxParam::Inserted { ident, .. } | CtxParam::Declared { ident, .. } => ident,
        }
    }
}

/// A `#[ctx_value]` parameter, taken from the context on entry.
pub(crate) struct ValueParam {
    /// Its other attributes, which go on the `let` that binds it.
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) pat: Box<Pat>,
    pub(crate) ty: Box<Type>,
    /// The value's type: `T` in `&T` or `Option<&T>`.
    pub(crate) inner: Type,
    pub(crate) optional: bool,
}

#[derive(Clone, Copy)]
pub(crate) struct ReturnSpans {
    pub(crate) first: Span,
    pub(crate) last: Span,
}

pub(crate) enum StageBody {
    Parsed {
        original: Block,
        /// The body with its awaits turned into checkpoints.
        rewritten: Block,
    },
    Unparsed(proc_macro2::Group),
}

impl Stage {
    pub(crate) fn validate(args: StageArgs, func: StageFn, errors: &mut Errors) -> Stage {
        let StageFn {
            attrs,
            vis,
            mut sig,
            inner_attrs,
            body,
        } = func;
        let StageArgs {
            ctx: ctx_arg,
            krate,
            loops,
        } = args;
        let krate = krate.map(|arg| arg.value);

        if expanded_by_async_trait(&sig) {
            errors.push(syn::Error::new(Span::call_site(), UNDER_ASYNC_TRAIT));
        } else if sig.asyncness.is_none() {
            errors.error(sig.fn_token, NOT_ASYNC);
        }
        let ret = match &sig.output {
            ReturnType::Default => {
                let close = sig.paren_token.span.close();
                errors.push(syn::Error::new(close, NO_RETURN));
                ReturnSpans {
                    first: close,
                    last: close,
                }
            }
            ReturnType::Type(_, ty) => ReturnSpans::of(ty),
        };
        let params = Params::split(std::mem::take(&mut sig.inputs), krate.as_ref(), errors);
        sig.inputs = params.inputs;
        let (ctx, clash) = context(ctx_arg, params.declared, &sig, &params.values, errors);
        let rt = Runtime(krate);
        let mut watch = EntryWatch::None;
        let body = match body {
            Body::Parsed(original) => {
                if expanded_by_instrument(&original) {
                    errors.push(syn::Error::new(Span::call_site(), BELOW_INSTRUMENT));
                }
                let mut rewritten = original.clone();
                let target = if declared_mutably(&sig, &ctx) || may_rebind(&original, ctx.ident()) {
                    Target::InScope
                } else {
                    Target::Watched
                };
                let mut checkpoints =
                    Checkpoints::new(&rt, ctx.ident(), ret, Mode::Rewrite(target), errors)
                        .with_loops(loops);
                checkpoints.visit_block_mut(&mut rewritten);
                let borrowed = target == Target::Watched
                    && !matches!(ctx, CtxParam::Declared { by_ref: false, .. });
                watch = match (checkpoints.made(), borrowed) {
                    (0, _) => EntryWatch::None,
                    (_, true) => EntryWatch::Borrowed,
                    (_, false) => EntryWatch::Owned,
                };
                StageBody::Parsed {
                    original,
                    rewritten,
                }
            }
            Body::Unparsed(group) => StageBody::Unparsed(group),
        };

        Stage {
            rt,
            attrs,
            vis,
            sig,
            inner_attrs,
            ctx,
            values: params.values,
            ret,
            body,
            clash,
            watch,
        }
    }
}

/// The parameters sorted out: the `#[ctx_value]` ones taken out, a declared context found.
struct Params {
    /// What stays in the signature.
    inputs: Punctuated<FnArg, Token![,]>,
    values: Vec<ValueParam>,
    /// The declared context parameter and whether it is a reference.
    declared: Option<(Ident, bool)>,
}

impl Params {
    fn split(
        inputs: Punctuated<FnArg, Token![,]>,
        krate: Option<&Path>,
        errors: &mut Errors,
    ) -> Params {
        let mut params = Params {
            inputs: Punctuated::new(),
            values: Vec::new(),
            declared: None,
        };
        for arg in inputs {
            match arg {
                FnArg::Receiver(mut receiver) => {
                    for mark in take_ctx_value_attrs(&mut receiver.attrs) {
                        errors.error(
                            mark,
                            "expected a typed parameter such as `#[ctx_value] user: &UserId`: \
                             `self` cannot be a context value",
                        );
                    }
                    params.inputs.push(FnArg::Receiver(receiver));
                }
                FnArg::Typed(mut param) => {
                    let marks = take_ctx_value_attrs(&mut param.attrs);
                    if marks.is_empty() {
                        if is_context(&param.ty, krate) {
                            params.declare(&mut param, errors);
                        }
                        params.inputs.push(FnArg::Typed(param));
                    } else {
                        params.values.push(ValueParam::new(param, &marks, errors));
                    }
                }
            }
        }
        params
    }

    /// Records a parameter of type `Context` as the stage's context: only one may be.
    fn declare(&mut self, param: &mut PatType, errors: &mut Errors) {
        if let Some((first, _)) = &self.declared {
            errors.error(
                &*param,
                format_args!(
                    "expected one context parameter: `{first}` is already the context, remove \
                     this one"
                ),
            );
            return;
        }
        let ident = context_ident(&mut param.pat).unwrap_or_else(|| {
            errors.error(
                &param.pat,
                "expected an identifier for the context parameter, as in `ctx: &Context`",
            );
            Ident::new("__ctx", Span::mixed_site())
        });
        self.declared = Some((ident, is_reference(&param.ty)));
    }
}

impl ValueParam {
    fn new(param: PatType, marks: &[Attribute], errors: &mut Errors) -> ValueParam {
        for mark in marks {
            if !matches!(mark.meta, Meta::Path(_)) {
                errors.error(&mark.meta, "expected `#[ctx_value]` without arguments");
            }
        }
        let (inner, optional) = value_type(&param.ty).unwrap_or_else(|err| {
            errors.push(err);
            ((*param.ty).clone(), false)
        });
        ValueParam {
            attrs: param.attrs,
            pat: param.pat,
            ty: param.ty,
            inner,
            optional,
        }
    }
}

/// The stage's context: the declared one, or one inserted under `ctx` or `ctx = name`; and
/// whether a parameter clashes with its name.
fn context(
    ctx_arg: Option<Arg<Ident>>,
    declared: Option<(Ident, bool)>,
    sig: &Signature,
    values: &[ValueParam],
    errors: &mut Errors,
) -> (CtxParam, bool) {
    let mut clash = false;
    let ctx = if let Some((ident, by_ref)) = declared {
        if let Some(arg) = &ctx_arg {
            errors.error(
                &arg.tokens,
                format_args!(
                    "`ctx = {}` names the context parameter that `#[stage]` inserts, but this \
                     function declares its own (`{ident}`): remove `ctx = {0}`",
                    arg.value
                ),
            );
        }
        CtxParam::Declared { ident, by_ref }
    } else {
        // Named as if written at the function's name: in user code that is the user's own
        // hygiene, and for a stage a `macro_rules!` writes from a `$name` and a `$body`, the
        // hygiene of the body, which can then name `ctx`.
        let ident = ctx_arg.map_or_else(|| Ident::new("ctx", sig.ident.span()), |arg| arg.value);
        for input in &sig.inputs {
            if let FnArg::Typed(param) = input {
                clash |= check_clash(&param.pat, &ident, errors);
            }
        }
        CtxParam::Inserted {
            lifetime: value_lifetime(values, errors),
            ident,
        }
    };
    for value in values {
        clash |= check_clash(&value.pat, ctx.ident(), errors);
    }
    (ctx, clash)
}

impl ReturnSpans {
    fn of(ty: &Type) -> ReturnSpans {
        let mut tokens = ty.to_token_stream().into_iter();
        let first = tokens
            .next()
            .map_or_else(Span::call_site, |token| token.span());
        let last = tokens.last().map_or(first, |token| token.span());
        ReturnSpans { first, last }
    }
}

/// Removes the `#[ctx_value]` (or `#[ctxpipe::ctx_value]`) attributes from `attrs`.
fn take_ctx_value_attrs(attrs: &mut Vec<Attribute>) -> Vec<Attribute> {
    let (marks, rest) = std::mem::take(attrs).into_iter().partition(|attr| {
        attr.path()
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "ctx_value")
    });
    *attrs = rest;
    marks
}

/// `(T, optional)` for `&T`, `&'a T` and `Option<&T>`.
fn value_type(ty: &Type) -> syn::Result<(Type, bool)> {
    match unwrap_type(ty) {
        Type::Reference(reference) => match reference.mutability {
            Some(mutability) => Err(syn::Error::new_spanned(
                mutability,
                "expected `&T`, not `&mut T`: context values are shared",
            )),
            None => Ok(((*reference.elem).clone(), false)),
        },
        Type::Path(path) if path.qself.is_none() => {
            let inner = path
                .path
                .segments
                .last()
                .filter(|segment| segment.ident == "Option")
                .and_then(|segment| match &segment.arguments {
                    PathArguments::AngleBracketed(args) if args.args.len() == 1 => {
                        match args.args.first() {
                            Some(GenericArgument::Type(inner)) => Some(inner),
                            _ => None,
                        }
                    }
                    _ => None,
                });
            match inner {
                Some(inner) if matches!(unwrap_type(inner), Type::Reference(_)) => {
                    value_type(inner).map(|(inner, _)| (inner, true))
                }
                _ => Err(syn::Error::new_spanned(ty, VALUE_TYPE)),
            }
        }
        _ => Err(syn::Error::new_spanned(ty, VALUE_TYPE)),
    }
}

/// The lifetime that the `#[ctx_value]` parameters name (all must name the same one, or none).
fn value_lifetime(values: &[ValueParam], errors: &mut Errors) -> Option<Lifetime> {
    let mut found: Option<Lifetime> = None;
    for value in values {
        let lifetime = match unwrap_type(&value.ty) {
            Type::Reference(reference) => reference.lifetime.as_ref(),
            Type::Path(path) => {
                path.path
                    .segments
                    .last()
                    .and_then(|segment| match &segment.arguments {
                        PathArguments::AngleBracketed(args) => match args.args.first() {
                            Some(GenericArgument::Type(Type::Reference(r))) => r.lifetime.as_ref(),
                            _ => None,
                        },
                        _ => None,
                    })
            }
            _ => None,
        };
        let Some(lifetime) = lifetime.filter(|lifetime| lifetime.ident != "_") else {
            continue;
        };
        match &found {
            None => found = Some(lifetime.clone()),
            Some(first) if first.ident == lifetime.ident => {}
            Some(first) => errors.error(
                lifetime,
                format_args!(
                    "expected `{first}` or no lifetime: every `#[ctx_value]` parameter borrows \
                     from the same context"
                ),
            ),
        }
    }
    found
}

fn unwrap_type(mut ty: &Type) -> &Type {
    loop {
        match ty {
            Type::Paren(inner) => ty = &inner.elem,
            Type::Group(inner) => ty = &inner.elem,
            _ => return ty,
        }
    }
}

/// Whether the function declares its context so that the body can replace it in place (a
/// `mut` binding, or `&mut Context`): then each checkpoint must look at it again.
fn declared_mutably(sig: &Signature, ctx: &CtxParam) -> bool {
    let CtxParam::Declared { ident, .. } = ctx else {
        return false;
    };
    sig.inputs.iter().any(|input| match input {
        FnArg::Typed(param) => match &*param.pat {
            Pat::Ident(pat) if pat.ident == *ident => {
                pat.mutability.is_some()
                    || matches!(unwrap_type(&param.ty), Type::Reference(r) if r.mutability.is_some())
            }
            _ => false,
        },
        FnArg::Receiver(_) => false,
    })
}

fn is_reference(ty: &Type) -> bool {
    matches!(unwrap_type(ty), Type::Reference(_))
}

/// Whether `ty` is `Context`, `&Context` or `&mut Context` of ctxpipe: a path ending in
/// `Context` with no generic arguments, alone or after `ctxpipe`, `context_core`, `__private`
/// or the `crate = path` given.
fn is_context(ty: &Type, krate: Option<&Path>) -> bool {
    let ty = match unwrap_type(ty) {
        Type::Reference(reference) => unwrap_type(&reference.elem),
        other => other,
    };
    let Type::Path(path) = ty else { return false };
    if path.qself.is_some() {
        return false;
    }
    let segments = &path.path.segments;
    let Some(last) = segments.last() else {
        return false;
    };
    if last.ident != "Context" || !last.arguments.is_none() {
        return false;
    }
    if segments.len() == 1 {
        return path.path.leading_colon.is_none();
    }
    if let Some(parent) = segments.iter().rev().nth(1).map(|segment| &segment.ident) {
        if parent == "ctxpipe" || parent == "context_core" || parent == "__private" {
            return true;
        }
    }
    krate.is_some_and(|krate| {
        let prefix: Vec<_> = segments
            .iter()
            .take(segments.len() - 1)
            .map(|s| &s.ident)
            .collect();
        let krate: Vec<_> = krate.segments.iter().map(|s| &s.ident).collect();
        prefix == krate
    })
}

/// The identifier of a declared context parameter; a `_` pattern gets a hidden name.
fn context_ident(pat: &mut Pat) -> Option<Ident> {
    match pat {
        Pat::Ident(PatIdent {
            ident,
            subpat: None,
            ..
        }) => Some(ident.clone()),
        Pat::Wild(_) => {
            let ident = Ident::new("__ctx", Span::mixed_site());
            *pat = Pat::Ident(PatIdent {
                attrs: Vec::new(),
                by_ref: None,
                mutability: None,
                ident: ident.clone(),
                subpat: None,
            });
            Some(ident)
        }
        _ => None,
    }
}

/// A parameter bound to the context's name would hide the context from the checkpoints.
fn check_clash(pat: &Pat, ctx: &Ident, errors: &mut Errors) -> bool {
    /// The bindings of a pattern named like the context (`ctx`, `r#ctx`, or a field
    /// shorthand in `Req { ctx, .. }`).
    struct Clashes<'a> {
        ctx: &'a Ident,
        found: Vec<Ident>,
    }
    impl VisitMut for Clashes<'_> {
        fn visit_pat_ident_mut(&mut self, pat: &mut PatIdent) {
            if pat.ident.unraw() == self.ctx.unraw() {
                self.found.push(pat.ident.clone());
            }
            syn::visit_mut::visit_pat_ident_mut(self, pat);
        }
    }
    let mut clashes = Clashes {
        ctx,
        found: Vec::new(),
    };
    // `visit-mut` is the visitor this crate builds syn with; the pattern is not changed.
    clashes.visit_pat_mut(&mut pat.clone());
    for ident in &clashes.found {
        errors.error(
            ident,
            format_args!(
                "this parameter hides the context parameter `{ctx}` of the stage: rename \
                 it, or name the context with `#[stage(ctx = name)]`"
            ),
        );
    }
    !clashes.found.is_empty()
}

/// Whether `#[tracing::instrument]` already expanded this body: it moves an async fn's body
/// into an async block bound to `__tracing_instrument_future`.
fn expanded_by_instrument(body: &Block) -> bool {
    mentions(body.to_token_stream(), |ident| {
        ident == "__tracing_instrument_future"
    })
}

/// Whether `#[async_trait]` expanded this method before `#[stage]` saw it: it is no longer
/// `async`, and returns a boxed future bound by the lifetime `'async_trait`.
pub(crate) fn expanded_by_async_trait(sig: &Signature) -> bool {
    let mut names = Vec::new();
    lifetime_names(sig.output.to_token_stream(), &mut names);
    sig.asyncness.is_none() && names.iter().any(|name| name == "async_trait")
}

/// All the lifetime names used anywhere in `tokens`, for picking a fresh one.
pub(crate) fn lifetime_names(tokens: TokenStream, names: &mut Vec<String>) {
    let mut after_quote = false;
    for token in tokens {
        match token {
            proc_macro2::TokenTree::Group(group) => {
                lifetime_names(group.stream(), names);
                after_quote = false;
            }
            proc_macro2::TokenTree::Punct(punct) => after_quote = punct.as_char() == '\'',
            proc_macro2::TokenTree::Ident(ident) => {
                if after_quote {
                    names.push(ident.to_string());
                }
                after_quote = false;
            }
            proc_macro2::TokenTree::Literal(_) => after_quote = false,
        }
    }
}
