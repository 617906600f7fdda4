//! Renders a validated [`Stage`]: the stage itself, or the fallback emitted next to errors.
//!
//! ```text
//! #[attrs] vis async fn name(<receiver,> ctx: &Context, <other params>) -> Ret {
//!     #![inner attrs]
//!     use __private::StageAwait as _;           // the trait of `().__stage_await(..)`
//!     if let Some(error) = __private::entry(ctx) { return __private::stage_error(error); }
//!     let mut watch = __private::home_watch(ctx); // the checkpoints' shared registration
//!                                                 // (`watch(ctx)` if the body may shadow ctx)
//!     let user: &UserId = match __private::value::<UserId>(ctx) {
//!         Some(value) => value,
//!         None => return __private::stage_error(__private::missing::<UserId>()),
//!     };
//!     <the body, each `.await` a checkpoint>
//! }
//! ```

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::token::Brace;
use syn::visit_mut::{self, VisitMut};
use syn::{
    Expr, FnArg, GenericParam, Ident, Lifetime, LifetimeParam, Receiver, ReturnType, Signature,
    Stmt, Token, Type, TypeReference,
};

use super::checkpoint::{stage_error, watch_ident, Checkpoints, Mode};
use super::validate::{
    expanded_by_async_trait, lifetime_names, CtxParam, EntryWatch, Stage, StageBody,
};
use crate::errors::Errors;

impl Stage {
    /// The stage. Cannot fail: everything was checked by `validate`.
    pub(crate) fn expand(&self) -> TokenStream {
        match &self.body {
            StageBody::Parsed { rewritten, .. } => {
                self.render(rewritten.brace_token, &rewritten.stmts, true)
            }
            // Without a parsed body there is nothing to rewrite: rustc reports why it does not
            // parse, and the fallback keeps the signature.
            StageBody::Unparsed(_) => self.fallback(),
        }
    }

    /// What is emitted next to errors: the same signature, so that callers still type-check,
    /// over the body as written (no checkpoints, `#[uninterruptible]` removed), with each
    /// `#[ctx_value]` parameter bound to a placeholder.
    pub(crate) fn fallback(&self) -> TokenStream {
        match &self.body {
            StageBody::Parsed { original, .. } => {
                let mut body = original.clone();
                let mut errors = Errors::new();
                Checkpoints::new(
                    &self.rt,
                    self.ctx.ident(),
                    self.ret,
                    Mode::Strip,
                    &mut errors,
                )
                .visit_block_mut(&mut body);
                // Strip mode reports nothing.
                let _ = errors.check();
                self.render(body.brace_token, &body.stmts, false)
            }
            StageBody::Unparsed(group) => {
                let stream = group.stream();
                let body = Stmt::Expr(Expr::Verbatim(quote!({ #stream })), None);
                self.render(brace_of(group), &[body], false)
            }
        }
    }

    fn render(&self, brace: Brace, stmts: &[Stmt], live: bool) -> TokenStream {
        let attrs = &self.attrs;
        let vis = &self.vis;
        let sig = self.signature(live);
        let inner_attrs = &self.inner_attrs;
        let (imports, preamble) = if live {
            (self.imports(), self.preamble())
        } else {
            (TokenStream::new(), self.placeholders())
        };
        // The body's leading items (`use`, `const`, `fn`) stay first, before the preamble's
        // statements (as clippy's `items_after_statements` asks); an item is in scope in its
        // whole block wherever it is written.
        let items = stmts
            .iter()
            .position(|stmt| !matches!(stmt, Stmt::Item(_)))
            .unwrap_or(stmts.len());
        let (items, rest) = stmts.split_at(items);
        let mut out = quote!(#(#attrs)* #vis #sig);
        brace.surround(&mut out, |out| {
            out.extend(quote!(#(#inner_attrs)* #imports #(#items)* #preamble #(#rest)*));
        });
        out
    }

    /// The signature with the context inserted first after the receiver, if it is not declared.
    /// The fallback of a stage whose parameter took the context's name inserts it hidden.
    fn signature(&self, live: bool) -> Signature {
        let mut sig = self.sig.clone();
        // Not on a method `#[async_trait]` expanded: it must keep returning its boxed future.
        if sig.asyncness.is_none() && !expanded_by_async_trait(&sig) {
            sig.asyncness = Some(Token![async](sig.fn_token.span));
        }
        if let CtxParam::Inserted { ident, lifetime } = &self.ctx {
            if lifetime.is_none() && self.values.is_empty() {
                keep_elision(&mut sig, &self.all_tokens());
            }
            let rt = &self.rt;
            let hidden = Ident::new("__ctx", Span::mixed_site());
            let ident = if self.clash && !live { &hidden } else { ident };
            // Always parses: `validate` accepted only an identifier and a plain path.
            if let Ok(param) = syn::parse2::<FnArg>(quote!(#ident: &#lifetime #rt::Context)) {
                let at = usize::from(matches!(sig.inputs.first(), Some(FnArg::Receiver(_))));
                sig.inputs.insert(at, param);
            }
        }
        sig
    }

    /// How the context parameter is passed on entry: `ctx`, or `&ctx` for an owned `Context`.
    fn ctx_ref(&self) -> TokenStream {
        match &self.ctx {
            CtxParam::Declared {
                ident,
                by_ref: false,
            } => quote!(&#ident),
            CtxParam::Declared { ident, .. } | CtxParam::Inserted { ident, .. } => {
                quote!(#ident)
            }
        }
    }

    /// The trait of the checkpoints' identity call `().__stage_await(..)` (see
    /// `Checkpoints::checkpoint`).
    fn imports(&self) -> TokenStream {
        let rt = &self.rt;
        quote_spanned! {Span::mixed_site()=>
            #[allow(unused_imports)]
            use #rt::StageAwait as _;
        }
    }

    /// The entry check, then each `#[ctx_value]` parameter taken from the context in order.
    fn preamble(&self) -> TokenStream {
        let rt = &self.rt;
        let ours = Span::mixed_site();
        let ctx = self.ctx_ref();
        let error = Ident::new("__error", ours);
        let value = Ident::new("__value", ours);
        let ret = stage_error(rt, self.ret, quote!(#error));
        let watch = watch_ident(ours);
        let mut out = quote_spanned! {ours=>
            if let ::core::option::Option::Some(#error) = #rt::entry(#ctx) {
                #ret
            }
        };
        let make = match self.watch {
            EntryWatch::None => None,
            EntryWatch::Borrowed => Some(quote_spanned!(ours=> home_watch)),
            EntryWatch::Owned => Some(quote_spanned!(ours=> watch)),
        };
        if let Some(make) = make {
            out.extend(quote_spanned! {ours=>
                #[allow(unused_mut, unused_variables)]
                let mut #watch = #rt::#make(#ctx);
            });
        }
        for param in &self.values {
            let attrs = &param.attrs;
            let pat = &param.pat;
            let ty = &param.ty;
            let inner = &param.inner;
            let lookup = quote_spanned!(ours=> #rt::value::<#inner>(#ctx));
            if param.optional {
                out.extend(quote_spanned!(ours=> #(#attrs)* let #pat: #ty = #lookup;));
            } else {
                let missing = stage_error(rt, self.ret, quote!(#rt::missing::<#inner>()));
                out.extend(quote_spanned! {ours=>
                    #(#attrs)* let #pat: #ty = match #lookup {
                        ::core::option::Option::Some(#value) => #value,
                        ::core::option::Option::None => #missing,
                    };
                });
            }
        }
        out
    }

    /// The `#[ctx_value]` parameters bound to placeholders, for the fallback; the context is
    /// marked used, as the stage would use it.
    fn placeholders(&self) -> TokenStream {
        let rt = &self.rt;
        let ctx = match &self.ctx {
            CtxParam::Inserted { .. } if self.clash => Ident::new("__ctx", Span::mixed_site()),
            ctx => ctx.ident().clone(),
        };
        let used = quote_spanned!(Span::mixed_site()=> let _ = &#ctx;);
        let values = self.values.iter().map(|param| {
            let attrs = &param.attrs;
            let pat = &param.pat;
            let ty = &param.ty;
            quote_spanned!(Span::mixed_site()=> #(#attrs)* let #pat: #ty = #rt::placeholder();)
        });
        quote!(#used #(#values)*)
    }

    fn all_tokens(&self) -> TokenStream {
        let mut tokens = self.sig.to_token_stream();
        match &self.body {
            StageBody::Parsed { original, .. } => original.to_tokens(&mut tokens),
            StageBody::Unparsed(group) => group.to_tokens(&mut tokens),
        }
        tokens
    }
}

fn brace_of(group: &proc_macro2::Group) -> Brace {
    Brace {
        span: group.delim_span(),
    }
}

/// Keeps the meaning of elided output lifetimes once the context parameter is added.
///
/// `async fn first(s: &str) -> Result<&str, E>` borrows its output from its only input
/// lifetime; with `ctx: &Context` added there would be two, and elision would fail. So the
/// input lifetime is named (`'elided`, or the name it already has) and given to the elided
/// output lifetimes: `async fn first<'elided>(ctx: &Context, s: &'elided str) ->
/// Result<&'elided str, E>`. Not `'a`: a method cannot see its impl's lifetimes, and `impl<'a>`
/// is common. A receiver borrowed as `&self` already decides elision, so it needs nothing. Lifetimes hidden in paths
/// (`Ref<T>` for `Ref<'_, T>`) cannot be seen here: such a function must name them.
fn keep_elision(sig: &mut Signature, all_tokens: &TokenStream) {
    let ReturnType::Type(_, output) = &mut sig.output else {
        return;
    };
    let mut out = Lifetimes::count();
    out.visit_type_mut(output);
    if out.elided == 0 {
        return;
    }
    let mut input = Lifetimes::count();
    for arg in &mut sig.inputs {
        match arg {
            FnArg::Receiver(Receiver {
                reference: Some(_), ..
            }) => return,
            FnArg::Receiver(receiver) => {
                if matches!(&*receiver.ty, Type::Reference(_)) || mentions_reference(&receiver.ty) {
                    return;
                }
                input.visit_type_mut(&mut receiver.ty);
            }
            FnArg::Typed(param) => input.visit_type_mut(&mut param.ty),
        }
    }
    let lifetime = match (input.elided, input.named.as_slice()) {
        (0, [named]) => named.clone(),
        (1, []) => {
            let mut used = Vec::new();
            lifetime_names(all_tokens.clone(), &mut used);
            let Some(name) = fresh_lifetime(&used) else {
                return;
            };
            let lifetime = Lifetime::new(&name, Span::call_site());
            let mut assign = Lifetimes::assign(lifetime.clone());
            for arg in &mut sig.inputs {
                match arg {
                    FnArg::Receiver(receiver) => assign.visit_type_mut(&mut receiver.ty),
                    FnArg::Typed(param) => assign.visit_type_mut(&mut param.ty),
                }
            }
            sig.generics.params.insert(
                0,
                GenericParam::Lifetime(LifetimeParam::new(lifetime.clone())),
            );
            lifetime
        }
        _ => return,
    };
    if let ReturnType::Type(_, output) = &mut sig.output {
        Lifetimes::assign(lifetime).visit_type_mut(output);
    }
}

fn mentions_reference(ty: &Type) -> bool {
    let mut found = Lifetimes::count();
    found.visit_type_mut(&mut ty.clone());
    found.references > 0
}

/// `'elided`, then `'elided1`, `'elided2`…: the first that `used` does not contain (`used` holds
/// names without the quote).
fn fresh_lifetime(used: &[String]) -> Option<String> {
    let numbered = (1..1000).map(|n| format!("elided{n}"));
    std::iter::once("elided".to_owned())
        .chain(numbered)
        .find(|name| !used.contains(name))
        .map(|name| format!("'{name}"))
}

/// Counts the lifetimes of a type as elision sees them, or names the elided ones.
struct Lifetimes {
    assign: Option<Lifetime>,
    elided: usize,
    named: Vec<Lifetime>,
    references: usize,
}

impl Lifetimes {
    fn count() -> Self {
        Lifetimes {
            assign: None,
            elided: 0,
            named: Vec::new(),
            references: 0,
        }
    }

    fn assign(lifetime: Lifetime) -> Self {
        Lifetimes {
            assign: Some(lifetime),
            ..Lifetimes::count()
        }
    }
}

impl VisitMut for Lifetimes {
    fn visit_type_reference_mut(&mut self, reference: &mut TypeReference) {
        self.references += 1;
        if reference.lifetime.is_none() {
            self.elided += 1;
            if let Some(lifetime) = &self.assign {
                reference.lifetime = Some(lifetime.clone());
            }
            self.visit_type_mut(&mut reference.elem);
        } else {
            visit_mut::visit_type_reference_mut(self, reference);
        }
    }

    fn visit_lifetime_mut(&mut self, lifetime: &mut Lifetime) {
        if lifetime.ident == "_" {
            self.elided += 1;
            if let Some(assign) = &self.assign {
                *lifetime = assign.clone();
            }
        } else if !self.named.iter().any(|n| n.ident == lifetime.ident) {
            self.named.push(lifetime.clone());
        }
    }

    // Function pointers and `Fn(..)` bounds have their own elision scope.
    fn visit_type_bare_fn_mut(&mut self, _: &mut syn::TypeBareFn) {}

    fn visit_parenthesized_generic_arguments_mut(
        &mut self,
        _: &mut syn::ParenthesizedGenericArguments,
    ) {
    }
}

#[cfg(test)]
mod tests {
    use quote::{quote, ToTokens};

    use super::super::stage;

    fn signature_of(args: proc_macro2::TokenStream, item: proc_macro2::TokenStream) -> String {
        let out = stage(args, item);
        let func: syn::ItemFn = syn::parse2(out).expect("a function");
        func.sig.to_token_stream().to_string()
    }

    #[test]
    fn inserts_the_context_after_the_receiver() {
        let sig = signature_of(
            quote!(),
            quote!(
                async fn f(&self, n: u8) -> Result<(), E> {
                    Ok(())
                }
            ),
        );
        assert_eq!(
            sig,
            quote!(async fn f(&self, ctx: &::ctxpipe::__private::Context, n: u8) -> Result<(), E>)
                .to_string()
        );
    }

    #[test]
    fn renames_and_reroots_the_context() {
        let sig = signature_of(
            quote!(ctx = cx, crate = ::my::ctx),
            quote!(
                async fn f(#[ctx_value] u: &U) -> Result<(), E> {
                    Ok(())
                }
            ),
        );
        assert_eq!(
            sig,
            quote!(async fn f(cx: &::my::ctx::__private::Context) -> Result<(), E>).to_string()
        );
    }

    #[test]
    fn keeps_a_declared_context() {
        let sig = signature_of(
            quote!(),
            quote!(
                async fn f(n: u8, parent: &ctxpipe::Context) -> Result<(), E> {
                    Ok(())
                }
            ),
        );
        assert_eq!(
            sig,
            quote!(async fn f(n: u8, parent: &ctxpipe::Context) -> Result<(), E>).to_string()
        );
    }

    #[test]
    fn names_the_lifetime_that_an_output_borrows() {
        let sig = signature_of(
            quote!(),
            quote!(
                async fn f<T>(s: &str, n: T) -> Result<&str, E> {
                    Ok(s)
                }
            ),
        );
        assert_eq!(
            sig,
            quote!(async fn f<'elided, T>(ctx: &::ctxpipe::__private::Context, s: &'elided str, n: T)
                -> Result<&'elided str, E>)
            .to_string()
        );
        // A name already used in the function is not reused.
        let sig = signature_of(
            quote!(),
            quote!(
                async fn f(s: &str) -> Result<&'_ str, E> {
                    let _: &'elided str = s;
                    Ok(s)
                }
            ),
        );
        assert!(sig.contains("< 'elided1 >"), "{sig}");
        // A named input lifetime is given to the output.
        let sig = signature_of(
            quote!(),
            quote!(
                async fn f<'x>(s: &'x str) -> Result<&str, E> {
                    Ok(s)
                }
            ),
        );
        assert!(sig.contains("Result < & 'x str , E >"), "{sig}");
    }

    #[test]
    fn leaves_elision_alone_when_the_receiver_or_values_decide_it() {
        let sig = signature_of(
            quote!(),
            quote!(
                async fn f(&self, s: &str) -> Result<&str, E> {
                    Ok(s)
                }
            ),
        );
        assert!(!sig.contains('\''), "{sig}");
        let sig = signature_of(
            quote!(),
            quote!(
                async fn f(#[ctx_value] u: &U) -> Result<&str, E> {
                    Ok(&u.0)
                }
            ),
        );
        assert!(!sig.contains('\''), "{sig}");
        let sig = signature_of(
            quote!(),
            quote!(
                async fn f<'v>(#[ctx_value] u: &'v U) -> Result<&'v str, E> {
                    Ok(&u.0)
                }
            ),
        );
        assert!(sig.contains("ctx : & 'v"), "{sig}");
    }

    #[test]
    fn fresh_lifetimes_skip_used_names() {
        let used = ["elided".to_owned(), "a".to_owned()];
        assert_eq!(super::fresh_lifetime(&[]).as_deref(), Some("'elided"));
        assert_eq!(super::fresh_lifetime(&used).as_deref(), Some("'elided1"));
    }

    #[test]
    fn errors_keep_the_signature_callers_expect() {
        let out = stage(
            quote!(bogus = 1),
            quote!(
                fn f(#[ctx_value] u: &U, ctx: u8) -> Result<(), E> {
                    Ok(())
                }
            ),
        )
        .to_string();
        assert!(out.contains("compile_error"), "{out}");
        // `async` added, the context inserted under a hidden name, the value bound to a
        // placeholder.
        assert!(
            out.contains("async fn f (__ctx : & :: ctxpipe :: __private :: Context , ctx : u8)"),
            "{out}"
        );
        assert!(
            out.contains("let u : & U = :: ctxpipe :: __private :: placeholder ()"),
            "{out}"
        );
    }

    #[test]
    fn unparsable_items_are_kept_next_to_the_error() {
        let out = stage(
            quote!(),
            quote!(
                struct S;
            ),
        )
        .to_string();
        assert!(
            out.contains("compile_error") && out.ends_with("struct S ;"),
            "{out}"
        );
    }

    #[test]
    fn keywords_are_not_context_names() {
        for args in [
            quote!(ctx = self),
            quote!(ctx = crate),
            quote!(crate = a::<T>),
        ] {
            let out = stage(
                args,
                quote!(
                    async fn f() -> Result<(), E> {
                        Ok(())
                    }
                ),
            )
            .to_string();
            assert!(out.contains("compile_error"), "{out}");
        }
    }
}
