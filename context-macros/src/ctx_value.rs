//! `#[ctx_value]` on a type: declares it as a context value.
//!
//! ```text
//! #[ctx_value] pub struct UserId(u64);
//! ```
//! becomes the type plus, inside `const _: () = { .. };`:
//! ```text
//! impl UserId { fn __ctxpipe_assert_fields() { assert_field_send::<u64>(); assert_field_sync::<u64>(); } }
//! impl __private::CtxValue for UserId where for<'v> UserId: Send + Sync + 'v {}
//! impl UserId where .. { pub fn from_ctx(ctx: &Context) -> Option<&Self> { .. } }
//! ```
//! The per-field assertions report a field that is not `Send` or `Sync` at that field. The
//! higher-ranked `where` clause keeps rustc from also reporting it at the impl: a bound that
//! names no generic parameter is checked where it is written, one under `for<'v>` only where
//! the impl is used. Type parameters get `Send + Sync + 'static` bounds, as derives add theirs;
//! lifetime parameters are an error, since a context value is `'static`.
//!
//! `#[ctx_value(baggage = "user-id")]` also implements `BaggageValue` (from the `tower`
//! feature), declaring that the value crosses process boundaries under that key.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{parse_quote, Data, DeriveInput, Fields, GenericParam, Item, LitStr, Path, Type};

use crate::errors::{with_error, Errors};
use crate::runtime::Runtime;

pub(crate) fn ctx_value(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::new();
    let Args { krate, baggage } = parse_args(args, &mut errors);
    let rt = Runtime(krate);
    let input = match syn::parse2::<DeriveInput>(item.clone()) {
        Ok(input) => input,
        Err(err) => {
            errors.push(match syn::parse2::<Item>(item.clone()) {
                Ok(item) => syn::Error::new(
                    item_keyword(&item),
                    "expected a struct, an enum or a union: `#[ctx_value]` declares a type as a \
                     context value (on a parameter, it goes inside a `#[stage]` function)",
                ),
                Err(_) => err,
            });
            let Err(err) = errors.check() else {
                return item;
            };
            return with_error(item, err);
        }
    };
    let mut lifetimes = Errors::new();
    for param in &input.generics.params {
        if let GenericParam::Lifetime(param) = param {
            lifetimes.error(
                &param.lifetime,
                format_args!(
                    "expected no lifetime parameter: a context value is `'static`, remove `{}`",
                    param.lifetime
                ),
            );
        }
    }
    let expanded = match lifetimes.check() {
        Ok(()) => expand(&input, &rt, baggage.as_ref()),
        Err(err) => {
            errors.push(err);
            input.to_token_stream()
        }
    };
    match errors.check() {
        Ok(()) => expanded,
        Err(err) => with_error(expanded, err),
    }
}

/// The arguments: `crate = path` and `baggage = "key"`.
struct Args {
    krate: Option<Path>,
    /// The key under which the value crosses process boundaries in W3C `baggage`.
    baggage: Option<LitStr>,
}

fn parse_args(args: TokenStream, errors: &mut Errors) -> Args {
    let mut krate: Option<Path> = None;
    let mut baggage: Option<LitStr> = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("crate") {
            let path: Path = meta.value()?.parse()?;
            if krate.is_some() {
                errors.error(&meta.path, "duplicate argument `crate`: keep one");
            } else {
                krate = Some(path);
            }
        } else if meta.path.is_ident("baggage") {
            let key: LitStr = meta.value()?.parse()?;
            if baggage.is_some() {
                errors.error(&meta.path, "duplicate argument `baggage`: keep one");
            } else if !is_token(&key.value()) {
                errors.error(
                    &key,
                    "expected a baggage key made of letters, digits and `!#$%&'*+-.^_`|~`, such \
                     as \"user-id\"",
                );
            } else {
                baggage = Some(key);
            }
        } else {
            let key = meta.path.segments.last().map(|s| s.ident.to_string());
            errors.error(
                &meta.path,
                format_args!(
                    "unknown argument `{}`: expected `crate = path` or `baggage = \"key\"`",
                    key.unwrap_or_default()
                ),
            );
            if meta.input.peek(syn::Token![=]) {
                meta.value()?.parse::<syn::Expr>()?;
            }
        }
        Ok(())
    });
    if let Err(err) = parser.parse2(args) {
        errors.push(err);
    }
    Args { krate, baggage }
}

/// An RFC 7230 token: what W3C baggage accepts as a key.
fn is_token(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn expand(input: &DeriveInput, rt: &Runtime, baggage: Option<&LitStr>) -> TokenStream {
    let ident = &input.ident;
    let vis = &input.vis;
    let mut generics = input.generics.clone();
    for param in generics.type_params_mut() {
        param.bounds.push(parse_quote!(::core::marker::Send));
        param.bounds.push(parse_quote!(::core::marker::Sync));
        param.bounds.push(parse_quote!('static));
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    let mut used = where_clause.cloned().unwrap_or_else(|| parse_quote!(where));
    used.predicates.push(parse_quote! {
        for<'__ctx_value> #ident #ty_generics:
            ::core::marker::Send + ::core::marker::Sync + '__ctx_value
    });

    let assertions = field_types(&input.data).into_iter().map(|ty| {
        let at = Span::mixed_site().located_at(ty.span());
        quote_spanned! {at=>
            #rt::assert_field_send::<#ty>();
            #rt::assert_field_sync::<#ty>();
        }
    });
    let assert_fn = format_ident!("__ctxpipe_assert_fields", span = Span::mixed_site());
    let doc = format!(
        "The `{ident}` carried by `ctx` or by its nearest ancestor that has one, if any: a \
         lookup by type, as cheap at any depth."
    );
    // Spanned at the key: without the `tower` feature, or without `FromStr`/`Display`, the
    // error points there.
    let baggage = baggage.map(|key| {
        quote_spanned! {key.span()=>
            #[automatically_derived]
            impl #impl_generics #rt::BaggageValue for #ident #ty_generics #used {
                const KEY: &'static str = #key;
            }
        }
    });
    quote! {
        #input
        const _: () = {
            #baggage
            impl #impl_generics #ident #ty_generics #where_clause {
                #[allow(dead_code)]
                fn #assert_fn() {
                    #(#assertions)*
                }
            }
            #[automatically_derived]
            impl #impl_generics #rt::CtxValue for #ident #ty_generics #used {}
            impl #impl_generics #ident #ty_generics #used {
                #[doc = #doc]
                #[inline]
                #vis fn from_ctx(ctx: &#rt::Context) -> ::core::option::Option<&Self> {
                    #rt::from_ctx::<Self>(ctx)
                }
            }
        };
    }
}

fn field_types(data: &Data) -> Vec<&Type> {
    let fields: Vec<&Fields> = match data {
        Data::Struct(data) => vec![&data.fields],
        Data::Enum(data) => data.variants.iter().map(|v| &v.fields).collect(),
        Data::Union(data) => return data.fields.named.iter().map(|f| &f.ty).collect(),
    };
    fields
        .into_iter()
        .flat_map(|f| f.iter().map(|f| &f.ty))
        .collect()
}

/// The keyword that says what kind of item this is, where "expected a type" points.
fn item_keyword(item: &Item) -> Span {
    match item {
        Item::Fn(item) => item.sig.fn_token.span,
        Item::Trait(item) => item.trait_token.span,
        Item::Impl(item) => item.impl_token.span,
        Item::Mod(item) => item.mod_token.span,
        Item::Type(item) => item.type_token.span,
        Item::Const(item) => item.const_token.span,
        Item::Static(item) => item.static_token.span,
        Item::Use(item) => item.use_token.span,
        Item::TraitAlias(item) => item.trait_token.span,
        other => other.span(),
    }
}
