//! Procedural macros of ctxpipe: `#[stage]`, `#[ctx_value]` and `pipeline!`. Use them through
//! the `ctxpipe` facade, which documents them and holds the runtime that the generated code
//! names.
#![warn(missing_docs, unreachable_pub)]

use proc_macro::TokenStream;

mod ctx_value;
mod errors;
mod pipeline;
mod runtime;
mod stage;

/// The attribute is expanded by the `context-macros` crate.
#[proc_macro_attribute]
pub fn stage(args: TokenStream, item: TokenStream) -> TokenStream {
    stage::stage(args.into(), item.into()).into()
}

/// The attribute is expanded by the `context-macros` crate.
#[proc_macro_attribute]
pub fn ctx_value(args: TokenStream, item: TokenStream) -> TokenStream {
    ctx_value::ctx_value(args.into(), item.into()).into()
}

/// The macro is expanded by the `context-macros` crate.
#[proc_macro]
pub fn pipeline(input: TokenStream) -> TokenStream {
    pipeline::pipeline(input.into()).into()
}
