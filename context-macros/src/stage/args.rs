//! The arguments of `#[stage(..)]`: `ctx = name`, `crate = path` and `loops`.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::{Expr, Ident, Path, Token};

use crate::errors::Errors;

const EXPECTED: &str = "expected `ctx = name`, `crate = path` or `loops`";

/// The parsed arguments. Each keeps the tokens of its whole `key = value` for error spans.
#[derive(Default)]
pub(crate) struct StageArgs {
    /// `ctx = name`: the name of the inserted context parameter.
    pub(crate) ctx: Option<Arg<Ident>>,
    /// `crate = path`: where the `ctxpipe` facade is, for renamed dependencies.
    pub(crate) krate: Option<Arg<Path>>,
    /// `loops`: the context is also checked at the head of every loop iteration.
    pub(crate) loops: bool,
}

/// One argument's value and the tokens it was written with.
pub(crate) struct Arg<T> {
    pub(crate) value: T,
    pub(crate) tokens: TokenStream,
}

impl StageArgs {
    /// Parses `args`, recording every problem in `errors` and keeping what was valid.
    pub(crate) fn from_tokens(args: TokenStream, errors: &mut Errors) -> StageArgs {
        let mut parsed = StageArgs::default();
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("ctx") {
                let key = meta.path.clone();
                if let Some(expr) = value_of(&meta, "ctx = name", errors)? {
                    match &expr {
                        Expr::Path(path) if path.qself.is_none() && path.attrs.is_empty() => {
                            // `self`, `crate` and other keywords are paths, not identifiers.
                            let ident = path.path.get_ident().filter(|ident| {
                                syn::parse2::<Ident>(ident.to_token_stream()).is_ok()
                            });
                            match ident {
                                Some(ident) => {
                                    set(&mut parsed.ctx, &key, ident.clone(), &expr, errors);
                                }
                                None => errors.error(&expr, "expected an identifier: `ctx = name`"),
                            }
                        }
                        _ => errors.error(&expr, "expected an identifier: `ctx = name`"),
                    }
                }
            } else if meta.path.is_ident("crate") {
                let key = meta.path.clone();
                if let Some(expr) = value_of(&meta, "crate = path", errors)? {
                    match &expr {
                        Expr::Path(path)
                            if path.qself.is_none()
                                && path.attrs.is_empty()
                                && path.path.segments.iter().all(|s| s.arguments.is_none()) =>
                        {
                            set(&mut parsed.krate, &key, path.path.clone(), &expr, errors);
                        }
                        _ => errors.error(&expr, "expected a path: `crate = path`"),
                    }
                }
            } else if meta.path.is_ident("loops") {
                if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
                    errors.error(
                        &meta.path,
                        "`loops` takes no value: write `#[stage(loops)]`",
                    );
                    skip_value(&meta)?;
                } else if parsed.loops {
                    errors.error(&meta.path, "duplicate argument `loops`: keep one");
                } else {
                    parsed.loops = true;
                }
            } else {
                errors.error(
                    &meta.path,
                    format_args!("unknown argument `{}`: {EXPECTED}", path_string(&meta.path)),
                );
                skip_value(&meta)?;
            }
            Ok(())
        });
        if let Err(err) = parser.parse2(args) {
            errors.push(err);
        }
        parsed
    }
}

/// The value after `key =`, or an error (recorded) if the `=` is missing.
fn value_of(
    meta: &ParseNestedMeta<'_>,
    form: &str,
    errors: &mut Errors,
) -> syn::Result<Option<Expr>> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse().map(Some)
    } else {
        errors.error(&meta.path, format_args!("expected `{form}`"));
        skip_value(meta)?;
        Ok(None)
    }
}

/// Consumes whatever follows an unknown or malformed key, up to the next comma.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
        meta.input.parse::<proc_macro2::TokenTree>()?;
    }
    Ok(())
}

/// Sets an argument once; a second occurrence is an error at its key (serde's `Attr::set`).
fn set<T>(slot: &mut Option<Arg<T>>, key: &Path, value: T, expr: &Expr, errors: &mut Errors) {
    if slot.is_some() {
        errors.error(
            key,
            format_args!("duplicate argument `{}`: keep one", path_string(key)),
        );
        return;
    }
    let mut tokens = key.to_token_stream();
    tokens.extend(quote::quote!(=));
    expr.to_tokens(&mut tokens);
    *slot = Some(Arg { value, tokens });
}

pub(crate) fn path_string(path: &Path) -> String {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    let prefix = if path.leading_colon.is_some() {
        "::"
    } else {
        ""
    };
    format!("{prefix}{}", segments.join("::"))
}
