//! `#[stage]`: parse → validate → expand.
//!
//! [`args`] reads the attribute's arguments, [`validate`] checks the function and records what
//! the expansion needs (reporting every problem at its own tokens), [`checkpoint`] rewrites the
//! awaits of the body (on the stage's own context when [`rebinding`] finds that the body never
//! binds its name again), and [`expand`] renders the stage — or, when there were errors, the same
//! signature over the untouched body, so that callers and completion keep working.

mod args;
mod checkpoint;
mod expand;
mod rebinding;
mod validate;

use proc_macro2::{Delimiter, Group, TokenStream, TokenTree};
use quote::ToTokens;
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Block, Signature, Token, Visibility};

use crate::errors::{with_error, Errors};

use self::args::StageArgs;
use self::validate::Stage;

pub(crate) fn stage(args: TokenStream, item: TokenStream) -> TokenStream {
    let func = match syn::parse2::<StageFn>(item.clone()) {
        Ok(func) => func,
        Err(err) => return with_error(item, err),
    };
    let mut errors = Errors::new();
    let args = StageArgs::from_tokens(args, &mut errors);
    let stage = Stage::validate(args, func, &mut errors);
    match errors.check() {
        Ok(()) => stage.expand(),
        Err(err) => with_error(stage.fallback(), err),
    }
}

/// The function under `#[stage]`. Its body is kept as tokens when it does not parse, so that
/// the function is still emitted and rustc reports the user's own syntax error.
pub(crate) struct StageFn {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    /// `#![..]` attributes at the top of the body.
    pub(crate) inner_attrs: Vec<Attribute>,
    pub(crate) body: Body,
}

pub(crate) enum Body {
    Parsed(Block),
    Unparsed(Group),
}

impl Parse for StageFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<StageFn> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let looks_like_fn = input.peek(Token![fn])
            || input.peek(Token![async])
            || input.peek(Token![const])
            || input.peek(Token![unsafe])
            || input.peek(Token![extern]);
        if !looks_like_fn {
            return Err(input.error("expected `async fn`: `#[stage]` goes on an async function"));
        }
        let sig: Signature = input.parse()?;
        if input.peek(Token![;]) {
            return Err(input.error(
                "expected a function body: in a trait, declare the context parameter \
                 explicitly, as in `async fn name(&self, ctx: &ctxpipe::Context)`",
            ));
        }
        let mut body: TokenTree = input.parse()?;
        // A body passed through a `macro_rules!` fragment (`$body:block`) arrives wrapped in an
        // invisible group.
        while let TokenTree::Group(invisible) = &body {
            let mut inner = invisible.stream().into_iter();
            match (invisible.delimiter(), inner.next(), inner.next()) {
                (Delimiter::None, Some(only), None) => body = only,
                _ => break,
            }
        }
        let group = match body {
            TokenTree::Group(group) if group.delimiter() == Delimiter::Brace => group,
            other => return Err(syn::Error::new(other.span(), "expected a function body")),
        };
        let (inner_attrs, body) = match syn::parse2::<BlockWithInner>(group.to_token_stream()) {
            Ok(BlockWithInner(inner_attrs, block)) => (inner_attrs, Body::Parsed(block)),
            Err(_) => (Vec::new(), Body::Unparsed(group)),
        };
        Ok(StageFn {
            attrs,
            vis,
            sig,
            inner_attrs,
            body,
        })
    }
}

/// A braced body with its inner attributes (`#![allow(..)]`), which `Block` alone rejects.
struct BlockWithInner(Vec<Attribute>, Block);

impl Parse for BlockWithInner {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let content;
        let brace_token = syn::braced!(content in input);
        let inner = content.call(Attribute::parse_inner)?;
        let stmts = content.call(Block::parse_within)?;
        Ok(BlockWithInner(inner, Block { brace_token, stmts }))
    }
}

/// Whether any identifier in `tokens`, at any depth, satisfies `matches`.
fn mentions(tokens: TokenStream, matches: impl Fn(&proc_macro2::Ident) -> bool + Copy) -> bool {
    tokens.into_iter().any(|tree| match tree {
        TokenTree::Ident(ident) => matches(&ident),
        TokenTree::Group(group) => mentions(group.stream(), matches),
        _ => false,
    })
}
