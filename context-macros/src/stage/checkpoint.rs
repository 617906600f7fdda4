//! [`Checkpoints`]: turns every `.await` of a stage's own body into a checkpoint.
//!
//! The awaits rewritten are those of the function's own body, wherever they sit in it: in
//! `match`, `if`, loops, `?` chains, nested blocks, and in the arguments of macros whose input
//! parses as comma-separated expressions (`vec![a.await, b]`, `println!("{}", x.await)`,
//! `assert_eq!(..)`) or as `expr; expr` (`vec![x.await; n]`). Left alone: awaits in closures,
//! `async` blocks and nested items (they run in another future or function), awaits marked
//! `#[uninterruptible]`, and awaits inside macros whose input is not expressions (such as
//! `tokio::select!`) or that quote it (`stringify!`, `assert!`, `debug_assert!`, `dbg!`,
//! anyhow's `ensure!`).

use proc_macro2::{Delimiter, Group, Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::token::Paren;
use syn::visit_mut::{self, VisitMut};
use syn::{
    Arm, Attribute, Expr, ExprAwait, ExprMethodCall, FieldValue, Ident, Item, Local, Macro, Meta,
    Stmt, Token,
};

use super::validate::ReturnSpans;
use crate::errors::Errors;
use crate::runtime::{located_at, Runtime};

const MISPLACED: &str =
    "expected `#[uninterruptible]` on a statement or an expression that contains `.await`";
const NO_AWAIT: &str = "`#[uninterruptible]` has no effect here: expected a statement or an \
                        expression that contains `.await`";
const NESTED: &str = "`#[uninterruptible]` has no effect inside a closure or an async block: \
                      their awaits are not checkpoints, remove it";

/// What the visitor does to the body.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Rewrite awaits into checkpoints and report misused `#[uninterruptible]`s.
    Rewrite(Target),
    /// Only remove `#[uninterruptible]`s, for the fallback emitted next to errors.
    Strip,
}

/// The context a checkpoint races against.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The stage's own, watched since entry: the body never binds `ctx` again (see
    /// `rebinding`), so the checkpoint needs only the stage's `Watch`.
    Watched,
    /// The `ctx` in scope at the await, which the body may have shadowed.
    InScope,
}

pub(crate) struct Checkpoints<'a> {
    rt: &'a Runtime,
    ctx: &'a Ident,
    ret: ReturnSpans,
    mode: Mode,
    errors: &'a mut Errors,
    /// Inside a closure or an async block: not our body.
    nested: usize,
    /// Inside an `#[uninterruptible]` statement or expression.
    uninterruptible: usize,
    /// Awaits of our own body seen so far.
    awaits: usize,
    /// Checkpoints made so far (the awaits not marked `#[uninterruptible]`).
    made: usize,
    /// Whether anything was rewritten or removed since the flag was last cleared.
    changed: bool,
    /// `#[stage(loops)]`: each loop of the body checks the context at the head of every
    /// iteration.
    loops: bool,
}

impl<'a> Checkpoints<'a> {
    pub(crate) fn new(
        rt: &'a Runtime,
        ctx: &'a Ident,
        ret: ReturnSpans,
        mode: Mode,
        errors: &'a mut Errors,
    ) -> Self {
        Checkpoints {
            rt,
            ctx,
            ret,
            mode,
            errors,
            nested: 0,
            uninterruptible: 0,
            awaits: 0,
            made: 0,
            changed: false,
            loops: false,
        }
    }

    /// Also checks the context at the head of every iteration of the body's own loops.
    pub(crate) fn with_loops(mut self, loops: bool) -> Self {
        self.loops = loops;
        self
    }

    /// Puts a check of the context in scope first in `body`, the body of one of the stage's
    /// own loops: `if let Some(error) = __private::loop_check(&ctx) { return .. }`, located at
    /// the loop's keyword.
    fn check_each_iteration(&mut self, body: &mut syn::Block, at: Span) {
        let ours = Span::mixed_site().located_at(at);
        let mut ctx = self.ctx.clone();
        ctx.set_span(self.ctx.span().located_at(at));
        let error = Ident::new("__error", ours);
        let rt = self.rt.at(at);
        let ret = stage_error(self.rt, self.ret, quote_spanned!(ours=> #error));
        let check: Stmt = syn::parse_quote_spanned! {ours=>
            if let ::core::option::Option::Some(#error) = #rt::loop_check(&#ctx) {
                #ret;
            }
        };
        body.stmts.insert(0, check);
        self.changed = true;
    }

    /// How many checkpoints the body got: without any, the stage needs no registration.
    pub(crate) fn made(&self) -> usize {
        self.made
    }

    /// Visits what `attrs` belong to, under the `#[uninterruptible]` found in them, if any.
    fn under(&mut self, attrs: &mut Vec<Attribute>, visit: impl FnOnce(&mut Self)) {
        let Some(attr) = self.take_uninterruptible(attrs) else {
            return visit(self);
        };
        if self.nested > 0 {
            self.report(&attr, NESTED);
            return visit(self);
        }
        let before = self.awaits;
        self.uninterruptible += 1;
        visit(self);
        self.uninterruptible -= 1;
        if self.awaits == before {
            self.report(&attr, NO_AWAIT);
        }
    }

    /// Removes the `#[uninterruptible]` attributes from `attrs`, returning the first.
    fn take_uninterruptible(&mut self, attrs: &mut Vec<Attribute>) -> Option<Attribute> {
        if !attrs.iter().any(is_uninterruptible) {
            return None;
        }
        self.changed = true;
        let (marks, rest): (Vec<_>, Vec<_>) = std::mem::take(attrs)
            .into_iter()
            .partition(is_uninterruptible);
        *attrs = rest;
        for mark in &marks {
            if !matches!(mark.meta, Meta::Path(_)) {
                self.report(
                    &mark.meta,
                    "expected `#[uninterruptible]` without arguments",
                );
            }
        }
        marks.into_iter().next()
    }

    fn report(&mut self, tokens: impl ToTokens, message: &str) {
        if self.mode != Mode::Strip {
            self.errors.error(tokens, message);
        }
    }

    fn nested(&mut self, visit: impl FnOnce(&mut Self)) {
        self.nested += 1;
        visit(self);
        self.nested -= 1;
    }

    /// `base.await` as a checkpoint on the context in scope at the await:
    ///
    /// ```text
    /// ().__stage_await(match __private::checkpoint(base, &ctx, &mut __watch).await {
    ///     Ok(value) => value,
    ///     Err(error) => return __private::stage_error(error),
    /// })
    /// ```
    ///
    /// or, when that is the stage's own context ([`Target::Watched`]),
    /// `__private::watched(base, &mut __watch)` in place of the `checkpoint` call.
    ///
    /// A `match` rather than `?`: `?` would report a wrong return type once per await, while
    /// `stage_error` reports it once, at the return type (identical diagnostics are merged).
    ///
    /// The identity call `().__stage_await(..)` (a trait the stage imports) makes the
    /// checkpoint as a whole the user's expression: its receiver `()` is located at the first
    /// token of `base` with the hygiene of `ctx` (which in user code is the user's own: see
    /// where the inserted `ctx` is named), and its parentheses have the span of `.await`. So
    /// lints about the value (an unused `Result`) point at the user's text, and the user's
    /// edition applies around it (a 2024 let chain). A path in that place would be linted as
    /// the user's (`unused_qualifications`). The receiver is `()` rather than, say, `ctx`
    /// because a method's receiver is kept across the await in its argument: a zero-sized one
    /// costs no store on each await, and cannot be shadowed.
    fn checkpoint(&self, await_expr: ExprAwait) -> Expr {
        let ExprAwait {
            base,
            dot_token,
            await_token,
            ..
        } = await_expr;
        let first = syn::spanned::Spanned::span(&base);
        let base = without_delimiters(*base);
        let at = await_token.span;
        let ours = Span::mixed_site().located_at(at);
        // The user's `ctx` as seen at the await: shadowing it narrows this checkpoint.
        let mut ctx = self.ctx.clone();
        ctx.set_span(self.ctx.span().located_at(at));
        let value = Ident::new("__value", ours);
        let error = Ident::new("__error", ours);
        let checkpoint = located_at(quote!(checkpoint), at);
        let watch = watch_ident(ours);
        let rt = self.rt.at(at);
        let ret = stage_error(self.rt, self.ret, quote_spanned!(ours=> #error));
        let call = if self.mode == Mode::Rewrite(Target::Watched) {
            let watched = located_at(quote!(watched), at);
            quote_spanned!(ours=> #rt::#watched(#base, &mut #watch))
        } else {
            quote_spanned!(ours=> #rt::#checkpoint(#base, &#ctx, &mut #watch))
        };
        let tokens = quote_spanned! {ours=>
            match #call #dot_token #await_token {
                ::core::result::Result::Ok(#value) => #value,
                ::core::result::Result::Err(#error) => #ret,
            }
        };
        let mut receiver = Group::new(Delimiter::Parenthesis, TokenStream::new());
        receiver.set_span(first.resolved_at(self.ctx.span()));
        // An `ExprMethodCall`, so that `visit_expr_mut` can put back the attributes the await
        // carried (`#[cfg(..)]`, lints, a misspelt attribute that rustc must report).
        Expr::MethodCall(ExprMethodCall {
            attrs: Vec::new(),
            receiver: Box::new(Expr::Verbatim(receiver.into_token_stream())),
            dot_token: Token![.](ours),
            method: Ident::new("__stage_await", ours),
            turbofish: None,
            paren_token: Paren(at),
            args: Punctuated::from_iter([Expr::Verbatim(tokens)]),
        })
    }

    /// Rewrites the expressions inside a macro call, if its input parses as expressions.
    fn visit_macro_input(&mut self, mac: &mut Macro) {
        // Macros that quote their input would quote the checkpoint's code instead of the
        // user's: `assert!(x.await)` would fail with a message full of generated code.
        const QUOTING: [&str; 5] = ["stringify", "assert", "debug_assert", "dbg", "ensure"];
        if mac
            .path
            .segments
            .last()
            .is_some_and(|s| QUOTING.iter().any(|name| s.ident == name))
        {
            return;
        }
        let changed = std::mem::replace(&mut self.changed, false);
        if let Ok(mut exprs) =
            Punctuated::<Expr, Token![,]>::parse_terminated.parse2(mac.tokens.clone())
        {
            for expr in &mut exprs {
                self.visit_expr_mut(expr);
            }
            if self.changed {
                mac.tokens = exprs.into_token_stream();
            }
        } else if let Ok((mut value, semi, mut len)) = repeat.parse2(mac.tokens.clone()) {
            self.visit_expr_mut(&mut value);
            self.visit_expr_mut(&mut len);
            if self.changed {
                mac.tokens = quote!(#value #semi #len);
            }
        }
        self.changed |= changed;
    }
}

/// `base` without the parentheses (or braces around one expression) it needed before `.await`:
/// as the argument it becomes, rustc would call them unnecessary.
fn without_delimiters(base: Expr) -> Expr {
    match base {
        Expr::Paren(paren) if paren.attrs.is_empty() => *paren.expr,
        Expr::Block(mut block)
            if block.attrs.is_empty() && block.label.is_none() && block.block.stmts.len() == 1 =>
        {
            match block.block.stmts.pop() {
                Some(Stmt::Expr(expr, None)) => expr,
                other => {
                    block.block.stmts.extend(other);
                    Expr::Block(block)
                }
            }
        }
        base => base,
    }
}

/// `value; len`, as in `vec![value; len]`.
fn repeat(input: ParseStream<'_>) -> syn::Result<(Expr, Token![;], Expr)> {
    Ok((input.parse()?, input.parse()?, input.parse()?))
}

fn is_uninterruptible(attr: &Attribute) -> bool {
    attr.path().is_ident("uninterruptible")
}

/// `return __private::stage_error(error)`, with the call spanning the return type, so that a
/// return type that is not `Result<T, E: From<Error>>` is reported there.
/// The stage's shared checkpoint registration (`__private::watch`), declared on entry: hygienic,
/// so the user's code can neither see nor shadow it.
pub(crate) fn watch_ident(span: Span) -> Ident {
    Ident::new("__watch", Span::mixed_site().located_at(span))
}

pub(crate) fn stage_error(rt: &Runtime, ret: ReturnSpans, error: TokenStream) -> TokenStream {
    // The callee's path is what a failed bound is reported at: from the first token of the
    // return type to its last.
    let root = located_at(quote!(#rt::), ret.first);
    let name = Ident::new("stage_error", Span::call_site().located_at(ret.last));
    let mut args = Group::new(Delimiter::Parenthesis, error);
    args.set_span(Span::mixed_site().located_at(ret.last));
    let ret_kw = quote_spanned!(Span::mixed_site().located_at(ret.first)=> return);
    quote!(#ret_kw #root #name #args)
}

impl VisitMut for Checkpoints<'_> {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        let mut attrs = expr_attrs(expr).map(std::mem::take).unwrap_or_default();
        self.under(&mut attrs, |this| match expr {
            Expr::Closure(_) | Expr::Async(_) => {
                this.nested(|this| visit_mut::visit_expr_mut(this, expr));
            }
            Expr::ForLoop(_) | Expr::While(_) | Expr::Loop(_)
                if this.loops && this.nested == 0 && this.mode != Mode::Strip =>
            {
                visit_mut::visit_expr_mut(this, expr);
                let (body, at) = match expr {
                    Expr::ForLoop(e) => (&mut e.body, e.for_token.span),
                    Expr::While(e) => (&mut e.body, e.while_token.span),
                    Expr::Loop(e) => (&mut e.body, e.loop_token.span),
                    _ => return,
                };
                this.check_each_iteration(body, at);
            }
            Expr::Await(_) => {
                visit_mut::visit_expr_mut(this, expr);
                if this.nested == 0 {
                    this.awaits += 1;
                    if this.uninterruptible == 0 && this.mode != Mode::Strip {
                        if let Expr::Await(await_expr) = std::mem::replace(expr, Expr::PLACEHOLDER)
                        {
                            *expr = this.checkpoint(await_expr);
                            this.made += 1;
                            this.changed = true;
                        }
                    }
                }
            }
            _ => visit_mut::visit_expr_mut(this, expr),
        });
        if let Some(slot) = expr_attrs(expr) {
            *slot = attrs;
        }
    }

    fn visit_local_mut(&mut self, local: &mut Local) {
        let mut attrs = std::mem::take(&mut local.attrs);
        self.under(&mut attrs, |this| visit_mut::visit_local_mut(this, local));
        local.attrs = attrs;
    }

    fn visit_stmt_mut(&mut self, stmt: &mut Stmt) {
        match stmt {
            Stmt::Macro(mac) => {
                let mut attrs = std::mem::take(&mut mac.attrs);
                self.under(&mut attrs, |this| this.visit_macro_input(&mut mac.mac));
                mac.attrs = attrs;
            }
            _ => visit_mut::visit_stmt_mut(self, stmt),
        }
    }

    fn visit_macro_mut(&mut self, mac: &mut Macro) {
        self.visit_macro_input(mac);
    }

    fn visit_arm_mut(&mut self, arm: &mut Arm) {
        if let Some(attr) = self.take_uninterruptible(&mut arm.attrs) {
            self.report(&attr, MISPLACED);
        }
        visit_mut::visit_arm_mut(self, arm);
    }

    fn visit_field_value_mut(&mut self, field: &mut FieldValue) {
        if let Some(attr) = self.take_uninterruptible(&mut field.attrs) {
            self.report(&attr, MISPLACED);
        }
        visit_mut::visit_field_value_mut(self, field);
    }

    fn visit_attribute_mut(&mut self, attr: &mut Attribute) {
        if is_uninterruptible(attr) {
            self.report(&*attr, MISPLACED);
        }
    }

    fn visit_item_mut(&mut self, item: &mut Item) {
        // Nested items are other functions: not this stage's body.
        let _ = item;
    }
}

/// The attributes of an expression, for the variants that have them.
fn expr_attrs(expr: &mut Expr) -> Option<&mut Vec<Attribute>> {
    Some(match expr {
        Expr::Array(e) => &mut e.attrs,
        Expr::Assign(e) => &mut e.attrs,
        Expr::Async(e) => &mut e.attrs,
        Expr::Await(e) => &mut e.attrs,
        Expr::Binary(e) => &mut e.attrs,
        Expr::Block(e) => &mut e.attrs,
        Expr::Break(e) => &mut e.attrs,
        Expr::Call(e) => &mut e.attrs,
        Expr::Cast(e) => &mut e.attrs,
        Expr::Closure(e) => &mut e.attrs,
        Expr::Const(e) => &mut e.attrs,
        Expr::Continue(e) => &mut e.attrs,
        Expr::Field(e) => &mut e.attrs,
        Expr::ForLoop(e) => &mut e.attrs,
        Expr::Group(e) => &mut e.attrs,
        Expr::If(e) => &mut e.attrs,
        Expr::Index(e) => &mut e.attrs,
        Expr::Infer(e) => &mut e.attrs,
        Expr::Let(e) => &mut e.attrs,
        Expr::Lit(e) => &mut e.attrs,
        Expr::Loop(e) => &mut e.attrs,
        Expr::Macro(e) => &mut e.attrs,
        Expr::Match(e) => &mut e.attrs,
        Expr::MethodCall(e) => &mut e.attrs,
        Expr::Paren(e) => &mut e.attrs,
        Expr::Path(e) => &mut e.attrs,
        Expr::Range(e) => &mut e.attrs,
        Expr::RawAddr(e) => &mut e.attrs,
        Expr::Reference(e) => &mut e.attrs,
        Expr::Repeat(e) => &mut e.attrs,
        Expr::Return(e) => &mut e.attrs,
        Expr::Struct(e) => &mut e.attrs,
        Expr::Try(e) => &mut e.attrs,
        Expr::TryBlock(e) => &mut e.attrs,
        Expr::Tuple(e) => &mut e.attrs,
        Expr::Unary(e) => &mut e.attrs,
        Expr::Unsafe(e) => &mut e.attrs,
        Expr::While(e) => &mut e.attrs,
        Expr::Yield(e) => &mut e.attrs,
        _ => return None,
    })
}
