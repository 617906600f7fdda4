//! `pipeline!`: parse → validate → expand.
//!
//! [`parse`] splits the input into header lines, the source and the steps and parses each
//! piece, [`validate`] decides what each piece is (which header, which stage kind and options,
//! which sink) and reports every problem at its own tokens, and [`expand`] renders the builder
//! calls of the runtime. On errors, the expansion is only the errors: the macro is an
//! expression whose type rustc then leaves open, so that the code around it reports nothing
//! more.

mod expand;
mod parse;
mod validate;

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};

use crate::errors::Errors;

use self::parse::Input;
use self::validate::Pipeline;

/// The names of a step's options, as written in its `[..]`.
const OPTION_NAMES: [&str; 13] = [
    "workers",
    "buffer",
    "batch",
    "ordered",
    "reorder_window",
    "on_error",
    "retry",
    "retry_if",
    "backoff",
    "timeout",
    "name",
    "filter",
    "flat",
];

pub(crate) fn pipeline(input: TokenStream) -> TokenStream {
    let mut errors = Errors::new();
    let input = Input::parse(input, &mut errors);
    let pipeline = Pipeline::validate(input, &mut errors);
    match (errors.check(), pipeline) {
        (Ok(()), Some(pipeline)) => pipeline.expand(),
        (Err(err), _) => only_errors(err),
        // `validate` records an error for every part it leaves out.
        (Ok(()), None) => only_errors(syn::Error::new(
            Span::call_site(),
            "expected a pipeline: `from <items> => <stage> => .. => <sink>`",
        )),
    }
}

/// The errors as a block expression of any type.
fn only_errors(err: syn::Error) -> TokenStream {
    let errors = err.into_compile_error();
    quote!({ #errors })
}

/// The span of the first token of `tokens`: where its errors are reported.
fn first_span(tokens: &impl ToTokens) -> Span {
    tokens
        .to_token_stream()
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |token| token.span())
}
