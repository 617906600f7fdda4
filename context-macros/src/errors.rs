//! [`Errors`]: every problem found in one expansion, reported together.

use std::fmt::Display;
use std::thread;

use proc_macro2::TokenStream;
use quote::ToTokens;

/// Collects errors so that all of them are reported at once, each at its own tokens.
///
/// It must be consumed with [`Errors::check`]; dropping it unchecked is a bug in this crate.
pub(crate) struct Errors {
    errors: Option<Vec<syn::Error>>,
}

impl Errors {
    pub(crate) fn new() -> Errors {
        Errors {
            errors: Some(Vec::new()),
        }
    }

    /// Records an error spanning `tokens`.
    pub(crate) fn error(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens.into_token_stream(), message));
    }

    pub(crate) fn push(&mut self, error: syn::Error) {
        if let Some(errors) = &mut self.errors {
            errors.push(error);
        }
    }

    /// All recorded errors combined into one, if there were any.
    pub(crate) fn check(mut self) -> Result<(), syn::Error> {
        let mut errors = self.errors.take().into_iter().flatten();
        match errors.next() {
            None => Ok(()),
            Some(mut first) => {
                errors.for_each(|error| first.combine(error));
                Err(first)
            }
        }
    }
}

impl Drop for Errors {
    fn drop(&mut self) {
        assert!(
            self.errors.is_none() || thread::panicking(),
            "forgot to check for errors"
        );
    }
}

/// `item` unchanged, followed by `error` as `compile_error!`s: callers still see the item.
pub(crate) fn with_error(item: TokenStream, error: syn::Error) -> TokenStream {
    let mut out = error.into_compile_error();
    out.extend(item);
    out
}
