//! Renders a validated [`Pipeline`] as calls of the runtime's builder.
//!
//! ```text
//! pipeline! {
//!     in &ctx;
//!     from lines => parse => enrich(db.clone()) [filter, workers = 16] => collect
//! }
//! ```
//! becomes
//! ```text
//! {
//!     let __parent = &(&ctx);                  // each expression evaluated once, in order
//!     let __source = lines;
//!     let __arg_1_0 = db.clone();
//!     let __pipeline = __private::Pipeline::new(__private::parent(__parent), __source)
//!         .map(StageOptions::new("parse"), move |__ctx: Context, __item| {
//!             async move { parse(&__ctx, __item).await }       // its error is the pipeline's
//!         })
//!         .filter_map(StageOptions::new("enrich").workers(16), move |__ctx: Context, __item| {
//!             let __arg_0 = Clone::clone(&__arg_1_0);        // cloned per call
//!             async move { __private::stage_output(enrich(&__ctx, __item, __arg_0).await) }
//!         });
//!     __pipeline.collect()
//! }
//! ```
//! Each stage's call is located at the stage's name, so that rustc reports a stage that does
//! not fit (its input type, its arguments, its error type) at that stage. Generated names are
//! hygienic (mixed-site), and every path is absolute.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::{Expr, Ident};

use super::first_span;
use super::validate::{
    Call, Kind, OnError, Pipeline, RateLimit, RateValue, Sink, SinkKind, Stage, StageOptions,
};
use crate::runtime::Runtime;

impl Pipeline {
    /// The expression: a block evaluating to the sink's future. Cannot fail.
    pub(crate) fn expand(&self) -> TokenStream {
        let rt = &self.rt;
        let ours = Span::mixed_site();
        let mut lets = TokenStream::new();

        let parent = match &self.parent {
            Some(expr) => {
                let at = first_span(expr);
                let local = format_ident!("__parent", span = ours.located_at(at));
                lets.extend(quote_spanned!(ours.located_at(at)=> let #local = &(#expr);));
                let parent = rt.at(at);
                quote_spanned!(Span::call_site().located_at(at)=> #parent::parent(#local))
            }
            None => quote_spanned!(ours=> &#rt::Context::background()),
        };

        // Each source is evaluated once, in order, into a local at its own tokens.
        let mut sources = Vec::new();
        for (index, source) in self.sources.iter().enumerate() {
            let at = first_span(&source.expr);
            let local = format_ident!("__source_{}", index, span = ours.located_at(at));
            let expr = &source.expr;
            lets.extend(quote_spanned!(ours.located_at(at)=> let #local = #expr;));
            sources.push((local, at, source.stream.is_some()));
        }
        let source_at = sources.first().map_or(ours, |(_, at, _)| *at);

        let mut args = Vec::new();
        for (index, stage) in self.stages.iter().enumerate() {
            let mut locals = Vec::new();
            if let Call::Fn { args: exprs, .. } = &stage.call {
                for (position, expr) in exprs.iter().enumerate() {
                    let at = first_span(expr);
                    let local =
                        format_ident!("__arg_{}_{}", index, position, span = ours.located_at(at));
                    lets.extend(quote_spanned!(ours.located_at(at)=> let #local = #expr;));
                    locals.push((local, at));
                }
            }
            args.push(locals);
        }

        let pipeline = format_ident!("__pipeline", span = ours);
        let error = self.error.as_ref().map(|ty| quote!(::<_, #ty>));
        let pipeline_type = rt.at(source_at);
        let mut build = match &sources[..] {
            [(source, _, stream)] => {
                let constructor = if *stream {
                    quote_spanned!(Span::call_site().located_at(source_at)=> from_stream)
                } else {
                    quote_spanned!(Span::call_site().located_at(source_at)=> new)
                };
                quote_spanned! {Span::call_site().located_at(source_at)=>
                    #pipeline_type::Pipeline #error::#constructor(#parent, #source)
                }
            }
            _ => {
                let merged = sources.iter().map(|(source, at, stream)| {
                    let at = Span::call_site().located_at(*at);
                    let kind = if *stream {
                        quote_spanned!(at=> stream)
                    } else {
                        quote_spanned!(at=> iter)
                    };
                    let rt = rt.at(at);
                    quote_spanned!(at=> #rt::Source::#kind(#source))
                });
                quote_spanned! {Span::call_site().located_at(source_at)=>
                    #pipeline_type::Pipeline #error::merge(#parent, [#(#merged),*])
                }
            }
        };
        for (stage, locals) in self.stages.iter().zip(&args) {
            build.extend(stage.expand(rt, locals));
        }
        if let Some(drain) = &self.drained_by {
            let at = Span::call_site().located_at(first_span(drain));
            build.extend(quote_spanned!(at=> .drained_by(&#drain)));
        }

        let progress = self.progress.as_ref().map(|expr| {
            let at = first_span(expr);
            let rt = rt.at(at);
            quote_spanned! {Span::call_site().located_at(at)=>
                #rt::on_progress(&#pipeline, #expr);
            }
        });
        let sink = self.sink.expand(&pipeline, self.report, self.located);

        quote_spanned! {ours=>
            {
                #lets
                let #pipeline = #build;
                #progress
                #sink
            }
        }
    }
}

impl Stage {
    /// `.map(options, f)` (or `filter_map`, `flat_map`), located at the stage.
    fn expand(&self, rt: &Runtime, args: &[(Ident, Span)]) -> TokenStream {
        let at = Span::call_site().located_at(self.span);
        let f = match &self.call {
            Call::Closure(closure) => closure.to_token_stream(),
            Call::Fn { path, .. } => self.wrapper(rt, path, args),
            Call::Chunk { size, within } => {
                let within = match within {
                    Some(within) => within.to_token_stream(),
                    None => quote_spanned!(at=> ::core::option::Option::None),
                };
                return quote_spanned!(at=> .chunk(#size, #within));
            }
        };
        let method = match self.kind {
            Kind::Map => quote_spanned!(at=> map),
            Kind::Filter => quote_spanned!(at=> filter_map),
            Kind::Flat => quote_spanned!(at=> flat_map),
        };
        let options = self.options.expand(rt, self.span);
        quote_spanned!(at=> .#method(#options, #f))
    }

    /// `move |ctx, item| { <clone the args>; async move { path(&ctx, item, args..).await } }`,
    /// with its error converted by `stage_output` unless it is the pipeline's.
    fn wrapper(&self, rt: &Runtime, path: &Expr, args: &[(Ident, Span)]) -> TokenStream {
        let ours = Span::mixed_site().located_at(self.span);
        let ctx = format_ident!("__ctx", span = ours);
        let item = format_ident!("__item", span = ours);
        let context = rt.at(self.span);
        let mut clones = TokenStream::new();
        let mut values = Vec::new();
        for (position, (local, at)) in args.iter().enumerate() {
            let value = format_ident!(
                "__arg_{}",
                position,
                span = Span::mixed_site().located_at(*at)
            );
            clones.extend(quote_spanned! {Span::mixed_site().located_at(*at)=>
                let #value = ::core::clone::Clone::clone(&#local);
            });
            values.push(value);
        }
        let call = quote_spanned!(ours=> #path(&#ctx, #item #(, #values)*).await);
        let body = if self.decides_error {
            call
        } else {
            // Converted with `From`, as `?` would, with a message that names the pipeline's
            // error type and the header line that sets it when it cannot.
            let convert = rt.at(self.span);
            quote_spanned!(ours=> #convert::stage_output(#call))
        };
        quote_spanned! {ours=>
            move |#ctx: #context::Context, #item| {
                #clones
                async move { #body }
            }
        }
    }
}

impl StageOptions {
    /// `StageOptions::new(name).workers(n)..`.
    fn expand(&self, rt: &Runtime, span: Span) -> TokenStream {
        let at = Span::call_site().located_at(span);
        let options = rt.at(span);
        let name = &self.name;
        let mut out = quote_spanned!(at=> #options::StageOptions::new(#name));
        // `.setter(value)` for each value given, located at the value.
        let set = |out: &mut TokenStream, setters: &[(&str, &Option<Expr>)]| {
            for (setter, value) in setters {
                if let Some(value) = value {
                    let at = Span::call_site().located_at(first_span(value));
                    let setter = Ident::new(setter, at);
                    out.extend(quote!(.#setter(#value)));
                }
            }
        };
        set(
            &mut out,
            &[
                ("workers", &self.workers),
                ("buffer", &self.buffer),
                ("batch", &self.batch),
                ("reorder_window", &self.reorder_window),
            ],
        );
        if self.ordered {
            out.extend(quote_spanned!(at=> .ordered()));
        }
        if let Some(key) = &self.ordered_by {
            let at = Span::call_site().located_at(first_span(key));
            out.extend(quote_spanned!(at=> .ordered_by(#key)));
        }
        match &self.on_error {
            Some(OnError::Policy { skip, span }) => {
                let at = Span::call_site().located_at(*span);
                let rt = rt.at(*span);
                let variant = if *skip {
                    quote_spanned!(at=> Skip)
                } else {
                    quote_spanned!(at=> Fail)
                };
                out.extend(quote_spanned!(at=> .on_error(#rt::OnError::#variant)));
            }
            Some(OnError::DeadLetter(name, sink)) => out.extend(quote!(.#name(#sink))),
            None => {}
        }
        // `retry_if` after `retry`, as the builder's documentation writes them.
        set(
            &mut out,
            &[
                ("retry", &self.retry),
                ("retry_if", &self.retry_if),
                ("backoff", &self.backoff),
                ("timeout", &self.timeout),
            ],
        );
        if let Some(RateLimit { rate, burst }) = &self.rate {
            let mut value = match rate {
                RateValue::PerUnit {
                    count,
                    seconds,
                    unit,
                } => {
                    let at = Span::call_site().located_at(unit.span());
                    let rate = rt.at(unit.span());
                    quote_spanned! {at=>
                        #rate::Rate::new(#count, ::core::time::Duration::from_secs(#seconds))
                    }
                }
                RateValue::Value(expr) => expr.to_token_stream(),
            };
            if let Some(burst) = burst {
                let at = Span::call_site().located_at(first_span(burst));
                value = quote_spanned!(at=> (#value).burst(#burst));
            }
            out.extend(quote!(.rate(#value)));
        }
        out
    }
}

impl Sink {
    /// `pipeline.collect()` or another sink, located at the sink's name; with `report`, the
    /// sink of `pipeline.with_report()`.
    fn expand(&self, pipeline: &Ident, report: bool, located: bool) -> TokenStream {
        let ident = &self.ident;
        let at = Span::call_site().located_at(ident.span());
        if let SinkKind::Stream = self.kind {
            return quote_spanned!(at=> #pipeline.into_stream());
        }
        let args = match &self.kind {
            SinkKind::Collect | SinkKind::Count | SinkKind::Stream => TokenStream::new(),
            SinkKind::ForEach(f) | SinkKind::TryForEach(f) => f.to_token_stream(),
            SinkKind::Fold(init, f) => quote!(#init, #f),
        };
        let method = Ident::new(&ident.to_string(), at);
        if report {
            return quote_spanned!(at=> #pipeline.with_report().#method(#args));
        }
        if located {
            return quote_spanned!(at=> #pipeline.located().#method(#args));
        }
        quote_spanned!(at=> #pipeline.#method(#args))
    }
}
