//! [`Runtime`]: the path through which generated code names the ctxpipe runtime.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{quote, ToTokens};

/// Renders `::ctxpipe::__private`, or `path::__private` for `crate = path`.
#[derive(Clone)]
pub(crate) struct Runtime(pub(crate) Option<syn::Path>);

impl Runtime {
    /// The path with every token located at `span` (keeping each token's name resolution), so
    /// that diagnostics about the generated call point at the user's token it stands for.
    pub(crate) fn at(&self, span: Span) -> TokenStream {
        located_at(self.to_token_stream(), span)
    }
}

impl ToTokens for Runtime {
    fn to_tokens(&self, out: &mut TokenStream) {
        if let Some(path) = &self.0 {
            quote!(#path::__private).to_tokens(out);
        } else {
            quote!(::ctxpipe::__private).to_tokens(out);
        }
    }
}

/// `tokens` with every token (and group) located at `span`, resolved as before.
pub(crate) fn located_at(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|token| match token {
            TokenTree::Group(group) => {
                let mut located = Group::new(group.delimiter(), located_at(group.stream(), span));
                located.set_span(group.span().located_at(span));
                TokenTree::Group(located)
            }
            mut other => {
                other.set_span(other.span().located_at(span));
                other
            }
        })
        .collect()
}
