//! Checks a parsed `pipeline!` and records what its expansion needs: which header is which,
//! which steps are stages and which is the sink, and each stage's kind and options.
//!
//! Every problem is recorded at its own tokens and checking goes on, so that one build reports
//! all of them.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::{Expr, ExprLit, Ident, Lit, LitStr, Path, Type, UnOp};

use super::first_span;
use super::parse::{Body, Header, HeaderValue, Input, Options, RawOption, Source, Step};
use crate::errors::Errors;
use crate::runtime::Runtime;

const MISSING_FROM: &str =
    "expected `from <source>`: a pipeline is `from <items> => <stage> => .. => <sink>`";
const SINKS: &str = "`=> collect`, `=> count`, `=> for_each(f)`, `=> fold(init, f)`, \
                     `=> try_for_each(f)` or `=> stream`";
const STAGE: &str = "expected a stage: a function `f`, a call `f(args)` or a closure \
                     `|ctx, item| async move { .. }`";
const CHUNK: &str = "expected `chunk(N)` (chunks of at most N items) or \
                     `chunk(N, within = DURATION)` (a chunk also leaves DURATION after its first \
                     item)";
const OPTIONS: &str = "`workers = N`, `buffer = N`, `batch = N`, `ordered`, \
                       `reorder_window = N`, `on_error = fail | skip | dead_letter(sink)`, `retry = N`, \
                       `retry_if = <fn>`, `backoff = <Backoff>`, `timeout = <Duration>`, \
                       `ordered_by = |item: &T| key`, `rate = N / s`, `burst = N`, \
                       `name = \"..\"`, `filter` or `flat`";
const RATE: &str = "expected `rate = N / s`, `rate = N / min`, `rate = N / h` or `rate = <Rate>`";
const ON_ERROR: &str = "expected `on_error = fail` (the first failed item fails the run), \
                        `on_error = skip` (failed items are dropped and counted) or \
                        `on_error = dead_letter(sink)` (failed items go to `sink`)";

/// A validated pipeline: everything `expand` needs, nothing it must check.
pub(crate) struct Pipeline {
    pub(crate) rt: Runtime,
    /// `in <context>`; the background context without it.
    pub(crate) parent: Option<Expr>,
    /// `error = <type>`; without it, the first function stage's error type.
    pub(crate) error: Option<Type>,
    /// `progress = <closure>`.
    pub(crate) progress: Option<Expr>,
    /// `drained_by = <handle>`.
    pub(crate) drained_by: Option<Expr>,
    /// `report;`: the sink returns `(result, report)`.
    pub(crate) report: bool,
    /// `located;`: the sink's error is a `RunError`.
    pub(crate) located: bool,
    /// One or more (`from a, b`: merged).
    pub(crate) sources: Vec<Source>,
    pub(crate) stages: Vec<Stage>,
    pub(crate) sink: Sink,
}

pub(crate) struct Stage {
    pub(crate) call: Call,
    pub(crate) kind: Kind,
    pub(crate) options: StageOptions,
    /// Where errors about the generated call are reported: the function's name, or the
    /// closure's first token.
    pub(crate) span: Span,
    /// Its error type is the pipeline's: it is the first function stage and there is no
    /// `error = <type>` header. The other function stages convert theirs with `From`.
    pub(crate) decides_error: bool,
}

pub(crate) enum Call {
    /// `path` or `path(args)`: called as `path(&ctx, item, args..)`.
    Fn { path: Expr, args: Vec<Expr> },
    /// `|ctx, item| ..`: given to the runtime as it is.
    Closure(Expr),
    /// `chunk(size)` or `chunk(size, within = duration)`: the chunk step, not a function.
    Chunk { size: Expr, within: Option<Expr> },
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Map,
    Filter,
    Flat,
}

pub(crate) struct StageOptions {
    /// A string literal, or an expression of a type that converts into the name.
    pub(crate) name: Expr,
    pub(crate) workers: Option<Expr>,
    pub(crate) buffer: Option<Expr>,
    pub(crate) batch: Option<Expr>,
    pub(crate) reorder_window: Option<Expr>,
    pub(crate) ordered: bool,
    pub(crate) on_error: Option<OnError>,
    pub(crate) retry: Option<Expr>,
    pub(crate) retry_if: Option<Expr>,
    pub(crate) backoff: Option<Expr>,
    pub(crate) timeout: Option<Expr>,
    /// `rate = ..` with its `burst`: an expression of a `Rate`.
    pub(crate) rate: Option<RateLimit>,
    /// `ordered_by = <key fn>`.
    pub(crate) ordered_by: Option<Expr>,
}

/// `rate = N / unit` (the count and the unit's seconds) or `rate = <Rate>`, and `burst = N`.
pub(crate) struct RateLimit {
    pub(crate) rate: RateValue,
    pub(crate) burst: Option<Expr>,
}

pub(crate) enum RateValue {
    /// `N / s`, `N / min` or `N / h`: the count and the period in seconds, at the unit.
    PerUnit {
        count: Expr,
        seconds: u64,
        unit: Ident,
    },
    /// A `Rate` written out.
    Value(Expr),
}

/// `on_error = fail`, `on_error = skip` or `on_error = dead_letter(sink)`.
#[derive(Clone)]
pub(crate) enum OnError {
    /// `fail` or `skip`, with the span of the policy's name.
    Policy { skip: bool, span: Span },
    /// `dead_letter(sink)`: the name and the sink.
    DeadLetter(Ident, Expr),
}

pub(crate) struct Sink {
    /// The sink's name as written, where errors about running the pipeline are reported.
    pub(crate) ident: Ident,
    pub(crate) kind: SinkKind,
}

pub(crate) enum SinkKind {
    Collect,
    Count,
    /// `stream`: the pipeline's output as a `Stream`, not a future.
    Stream,
    ForEach(Expr),
    Fold(Expr, Expr),
    TryForEach(Expr),
}

impl Pipeline {
    /// The pipeline, or `None` when a part of it is missing; every problem is in `errors`.
    pub(crate) fn validate(input: Input, errors: &mut Errors) -> Option<Pipeline> {
        let mut parent = None;
        let mut error = None;
        let mut progress = None;
        let mut krate = None;
        let mut on_error = None;
        let mut ordered = None;
        let mut report = None;
        let mut located = None;
        let mut drained_by = None;
        for Header { key, value } in input.headers {
            let what = format!("header `{key}`");
            match value {
                HeaderValue::In(expr) => set(&mut parent, &key, &what, expr, errors),
                HeaderValue::Error(ty) => set(&mut error, &key, &what, ty, errors),
                HeaderValue::OnError(expr) => match on_error_policy(expr, errors) {
                    Some(OnError::DeadLetter(name, _)) => errors.error(
                        name,
                        "a dead-letter sink takes one stage's items: write \
                         `on_error = dead_letter(..)` in that stage's options",
                    ),
                    Some(policy) => set(&mut on_error, &key, &what, policy, errors),
                    None => {}
                },
                HeaderValue::Ordered => set(&mut ordered, &key, &what, (), errors),
                HeaderValue::Report => set(&mut report, &key, &what, key.clone(), errors),
                HeaderValue::Located => set(&mut located, &key, &what, key.clone(), errors),
                HeaderValue::Progress(expr) => set(&mut progress, &key, &what, expr, errors),
                HeaderValue::DrainedBy(expr) => set(&mut drained_by, &key, &what, expr, errors),
                HeaderValue::Crate(path) => set(&mut krate, &key, &what, path, errors),
            }
        }
        let Some(Body {
            from,
            sources,
            steps,
        }) = input.body
        else {
            errors.push(syn::Error::new(Span::call_site(), MISSING_FROM));
            return None;
        };

        let mut steps = steps;
        let last = steps.pop();
        let mut stages = Vec::new();
        let mut decided = error.is_some();
        // The last stage that lost source order (several workers, unordered), for a later
        // stage that asks for order it can no longer restore.
        let mut lost: Option<(String, usize)> = None;
        for (index, step) in steps.into_iter().enumerate() {
            if let Some((mut stage, ordered_key)) = Stage::validate(step, index + 1, errors) {
                if matches!(stage.call, Call::Fn { .. }) && !decided {
                    stage.decides_error = true;
                    decided = true;
                }
                if ordered.is_some() {
                    stage.options.ordered = true;
                } else if let (Some(key), Some((name, workers))) = (&ordered_key, &lost) {
                    errors.error(
                        key,
                        format_args!(
                            "`ordered` cannot restore the source order: stage `{name}` before \
                             it runs {workers} workers unordered, so its outputs already left \
                             out of order; write `ordered;` in the header to keep source \
                             order through every stage"
                        ),
                    );
                }
                if let Some(workers) = stage.options.lost_order() {
                    lost = Some((stage_name(&stage.options.name), workers));
                }
                if stage.options.on_error.is_none() {
                    stage.options.on_error.clone_from(&on_error);
                }
                stages.push(stage);
            }
        }
        let sink = match last {
            Some(step) => Sink::validate(step, errors),
            None => {
                let mut at = from;
                for source in sources.iter().flatten() {
                    source.expr.to_tokens(&mut at);
                }
                errors.error(
                    at,
                    format_args!("missing sink: end the pipeline with {SINKS}"),
                );
                None
            }
        };
        if let (Some(_), Some(key)) = (&report, &located) {
            errors.error(
                key,
                "`located;` conflicts with `report;`: with `report;` the location of the item \
                 that failed the run is the report's `failure`; keep one",
            );
        }
        if let Some(Sink {
            ident,
            kind: SinkKind::Stream,
        }) = &sink
        {
            if report.is_some() {
                errors.error(
                    ident,
                    "`=> stream` makes a stream, whose items are the run's outputs: the \
                     `report;` header does not apply to it; take the report from a \
                     `progress = ..` handle",
                );
            }
            if let Some(key) = &located {
                errors.error(
                    key,
                    "`located;` does not apply to `=> stream`: its error is the run's own; \
                     take the failed item's location from a `progress = ..` handle's report",
                );
            }
        }
        Some(Pipeline {
            rt: Runtime(krate),
            parent,
            error,
            progress,
            drained_by,
            report: report.is_some(),
            located: located.is_some(),
            sources: sources?,
            stages,
            sink: sink?,
        })
    }
}

impl Stage {
    /// The stage `step`, the `index`th (from 1), and its `ordered` option's key if it has one.
    fn validate(step: Step, index: usize, errors: &mut Errors) -> Option<(Stage, Option<Path>)> {
        if let Some(Expr::Call(call)) = &step.expr {
            if is_ident(&call.func, "chunk") {
                return Stage::chunk(step, errors).map(|stage| (stage, None));
            }
        }
        let options = step
            .options
            .map(|options| StageOptionsBuilder::read(options, errors));
        let (call, span, default_name) = match step.expr? {
            Expr::Path(path) => {
                let (span, name) = name_of(&path.path)?;
                let path = Expr::Path(path);
                let args = Vec::new();
                (Call::Fn { path, args }, span, name)
            }
            Expr::Call(call) => match *call.func {
                Expr::Path(path) => {
                    let (span, name) = name_of(&path.path)?;
                    let path = Expr::Path(path);
                    let args = call.args.into_iter().collect();
                    (Call::Fn { path, args }, span, name)
                }
                func => {
                    errors.error(func, STAGE);
                    return None;
                }
            },
            Expr::Closure(closure) => {
                if closure.inputs.len() != 2 {
                    let params = closure.inputs.len();
                    let (or1, or2) = (closure.or1_token, closure.or2_token);
                    errors.error(
                        quote::quote!(#or1 #or2),
                        format_args!(
                            "a stage closure takes two parameters, `|ctx, item|` (the call's \
                             context and the item), not {params}: write \
                             `|ctx, item| async move {{ .. }}` (`_ctx` if it is unused)"
                        ),
                    );
                    return None;
                }
                let span = first_span(&closure);
                (
                    Call::Closure(Expr::Closure(closure)),
                    span,
                    format!("stage {index}"),
                )
            }
            other => {
                errors.error(other, STAGE);
                return None;
            }
        };
        let options = options.unwrap_or_default();
        let name = options.name.unwrap_or_else(|| {
            Expr::Lit(ExprLit {
                attrs: Vec::new(),
                lit: Lit::Str(LitStr::new(&default_name, span)),
            })
        });
        let stage = Stage {
            call,
            kind: options.kind.map_or(Kind::Map, |(kind, _)| kind),
            options: StageOptions {
                name,
                workers: options.workers,
                buffer: options.buffer,
                batch: options.batch,
                ordered: options.ordered.is_some() || options.reorder_window.is_some(),
                reorder_window: options.reorder_window,
                on_error: options.on_error,
                retry: options.retry,
                retry_if: options.retry_if,
                backoff: options.backoff,
                timeout: options.timeout,
                rate: options.rate.map(|rate| RateLimit {
                    rate,
                    burst: options.burst.map(|(value, _)| value),
                }),
                ordered_by: options.ordered_by.map(|(value, _)| value),
            },
            span,
            decides_error: false,
        };
        Some((stage, options.ordered))
    }
}

impl Stage {
    /// The chunk step `chunk(size)` or `chunk(size, within = duration)`.
    fn chunk(step: Step, errors: &mut Errors) -> Option<Stage> {
        let Some(Expr::Call(call)) = step.expr else {
            return None;
        };
        if let Some(options) = &step.options {
            errors.error(&options.group, "`chunk` takes no options: remove `[..]`");
        }
        let span = first_span(&call.func);
        let mut args = call.args.into_iter();
        let size = match args.next() {
            Some(Expr::Assign(_)) | None => {
                errors.error(&step.tokens, CHUNK);
                return None;
            }
            Some(size) => size,
        };
        let within = match args.next() {
            None => None,
            Some(Expr::Assign(assign)) if is_ident(&assign.left, "within") => Some(*assign.right),
            Some(other) => {
                errors.error(other, CHUNK);
                return None;
            }
        };
        if let Some(extra) = args.next() {
            errors.error(extra, CHUNK);
            return None;
        }
        Some(Stage {
            call: Call::Chunk { size, within },
            kind: Kind::Map,
            options: StageOptions::named(Expr::Lit(ExprLit {
                attrs: Vec::new(),
                lit: Lit::Str(LitStr::new("chunk", span)),
            })),
            span,
            decides_error: false,
        })
    }
}

/// Whether `expr` is the plain identifier `name`.
fn is_ident(expr: &Expr, name: &str) -> bool {
    matches!(expr, Expr::Path(path) if path.qself.is_none() && path.path.is_ident(name))
}

impl StageOptions {
    /// A stage's options with only its name.
    fn named(name: Expr) -> StageOptions {
        StageOptions {
            name,
            workers: None,
            buffer: None,
            batch: None,
            reorder_window: None,
            ordered: false,
            on_error: None,
            retry: None,
            retry_if: None,
            backoff: None,
            timeout: None,
            rate: None,
            ordered_by: None,
        }
    }

    /// `N` of `workers = N`, when it is a literal above 1 and the stage does not keep order:
    /// its outputs leave in the order its workers finish. (A count computed at run time may
    /// be 1: it is not taken to lose order.)
    fn lost_order(&self) -> Option<usize> {
        if self.ordered {
            return None;
        }
        match &self.workers {
            Some(Expr::Lit(ExprLit {
                lit: Lit::Int(int), ..
            })) => int.base10_parse::<usize>().ok().filter(|&n| n > 1),
            _ => None,
        }
    }
}

/// A stage's name for messages: the string literal's value, or the expression as written.
fn stage_name(name: &Expr) -> String {
    match name {
        Expr::Lit(ExprLit {
            lit: Lit::Str(text),
            ..
        }) => text.value(),
        other => other.to_token_stream().to_string(),
    }
}

/// The policy of `on_error = <policy>`.
fn on_error_policy(value: Expr, errors: &mut Errors) -> Option<OnError> {
    match &value {
        Expr::Path(path) => match path.path.get_ident() {
            Some(ident) if ident == "fail" || ident == "skip" => {
                return Some(OnError::Policy {
                    skip: ident == "skip",
                    span: ident.span(),
                })
            }
            _ => {}
        },
        Expr::Call(call) => match &*call.func {
            Expr::Path(path) if path.path.is_ident("dead_letter") => {
                let name = path.path.get_ident()?.clone();
                if call.args.len() == 1 {
                    return Some(OnError::DeadLetter(name, call.args.first()?.clone()));
                }
                errors.error(
                    &value,
                    "expected `dead_letter(sink)`: one function `|item, err| async { .. }`",
                );
                return None;
            }
            _ => {}
        },
        _ => {}
    }
    errors.error(value, ON_ERROR);
    None
}

/// The options of one stage as they are read, each set at most once.
#[derive(Default)]
struct StageOptionsBuilder {
    name: Option<Expr>,
    workers: Option<Expr>,
    buffer: Option<Expr>,
    batch: Option<Expr>,
    reorder_window: Option<Expr>,
    /// The key, for the error when order cannot be restored.
    ordered: Option<Path>,
    on_error: Option<OnError>,
    retry: Option<Expr>,
    retry_if: Option<Expr>,
    backoff: Option<Expr>,
    timeout: Option<Expr>,
    rate: Option<RateValue>,
    /// `ordered_by = ..` and its key.
    ordered_by: Option<(Expr, Path)>,
    /// `burst = N` and its key.
    burst: Option<(Expr, Path)>,
    /// The kind and the key that chose it.
    kind: Option<(Kind, Path)>,
}

impl StageOptionsBuilder {
    fn read(options: Options, errors: &mut Errors) -> StageOptionsBuilder {
        let mut read = StageOptionsBuilder::default();
        for RawOption { key, value, list } in options.items {
            let Some(ident) = key.get_ident().map(Ident::to_string) else {
                errors.error(&key, format_args!("unknown option: expected {OPTIONS}"));
                continue;
            };
            if let Some(list) = list {
                errors.error(
                    quote::quote!(#key #list),
                    format_args!("expected `{ident}` or `{ident} = value`, not `{ident}(..)`"),
                );
                continue;
            }
            let what = format!("option `{ident}`");
            match ident.as_str() {
                "workers" | "buffer" | "batch" | "reorder_window" => {
                    let Some(value) = count(&key, &ident, value, errors) else {
                        continue;
                    };
                    let slot = match ident.as_str() {
                        "workers" => &mut read.workers,
                        "buffer" => &mut read.buffer,
                        "batch" => &mut read.batch,
                        _ => &mut read.reorder_window,
                    };
                    set(slot, &key, &what, value, errors);
                }
                "name" => {
                    let Some(value) = name(&key, value, errors) else {
                        continue;
                    };
                    set(&mut read.name, &key, &what, value, errors);
                }
                "ordered" => {
                    if flag(&key, &ident, value.as_ref(), errors) {
                        set(&mut read.ordered, &key, &what, key.clone(), errors);
                    }
                }
                "on_error" => {
                    let Some(value) = value else {
                        errors.error(&key, ON_ERROR);
                        continue;
                    };
                    if let Some(policy) = on_error_policy(value, errors) {
                        set(&mut read.on_error, &key, &what, policy, errors);
                    }
                }
                "retry" => {
                    let Some(value) = retries(&key, value, errors) else {
                        continue;
                    };
                    set(&mut read.retry, &key, &what, value, errors);
                }
                "retry_if" | "backoff" | "timeout" => {
                    let Some(value) = value else {
                        let form = match ident.as_str() {
                            "retry_if" => "retry_if = |err: &E| ..",
                            "backoff" => "backoff = Backoff::new(min, max)",
                            _ => "timeout = Duration::from_secs(N)",
                        };
                        errors.error(&key, format_args!("expected `{form}`"));
                        continue;
                    };
                    let slot = match ident.as_str() {
                        "retry_if" => &mut read.retry_if,
                        "backoff" => &mut read.backoff,
                        _ => &mut read.timeout,
                    };
                    set(slot, &key, &what, value, errors);
                }
                "ordered_by" => {
                    let Some(value) = value else {
                        errors.error(&key, "expected `ordered_by = |item: &T| key`");
                        continue;
                    };
                    set(
                        &mut read.ordered_by,
                        &key,
                        &what,
                        (value, key.clone()),
                        errors,
                    );
                }
                "rate" => {
                    if let Some(rate) = rate_value(&key, value, errors) {
                        set(&mut read.rate, &key, &what, rate, errors);
                    }
                }
                "burst" => {
                    if let Some(value) = count(&key, &ident, value, errors) {
                        set(&mut read.burst, &key, &what, (value, key.clone()), errors);
                    }
                }
                "filter" | "flat" => {
                    if !flag(&key, &ident, value.as_ref(), errors) {
                        continue;
                    }
                    let kind = if ident == "filter" {
                        Kind::Filter
                    } else {
                        Kind::Flat
                    };
                    match &read.kind {
                        Some((chosen, _)) if *chosen == kind => {
                            errors.error(&key, format_args!("duplicate {what}: keep one"));
                        }
                        Some((_, other)) => errors.error(
                            &key,
                            format_args!(
                                "`{ident}` conflicts with `{}`: a stage either drops items \
                                 (`filter`, it returns `Option`) or expands them (`flat`, it \
                                 returns an iterator)",
                                other.to_token_stream()
                            ),
                        ),
                        None => read.kind = Some((kind, key)),
                    }
                }
                _ => errors.error(
                    &key,
                    format_args!("unknown option `{ident}`: expected {OPTIONS}"),
                ),
            }
        }
        if let (Some(_), Some((_, key))) = (&read.ordered, &read.ordered_by) {
            errors.error(
                key,
                "`ordered_by` conflicts with `ordered`: `ordered` keeps the order of every item, \
                 which keeps each key's order too; keep `ordered_by` to let different keys \
                 pass each other",
            );
        }
        if let (None, Some((_, key))) = (&read.rate, &read.burst) {
            errors.error(
                key,
                "`burst` applies to a rate limit: add `rate = N / s` to say which",
            );
        }
        if read.retry.is_none() {
            for (option, value) in [("retry_if", &read.retry_if), ("backoff", &read.backoff)] {
                if let Some(value) = value {
                    errors.error(
                        value,
                        format_args!(
                            "`{option}` applies to retries: add `retry = N` to say how many"
                        ),
                    );
                }
            }
        }
        read
    }
}

/// The value of `rate`: `N / s`, `N / min` or `N / h` (a literal `N` of at least 1), or any
/// other expression, taken as a `Rate`.
fn rate_value(key: &Path, value: Option<Expr>, errors: &mut Errors) -> Option<RateValue> {
    let Some(value) = value else {
        errors.error(key, RATE);
        return None;
    };
    let Expr::Binary(binary) = value else {
        return Some(RateValue::Value(value));
    };
    if !matches!(binary.op, syn::BinOp::Div(_)) {
        return Some(RateValue::Value(Expr::Binary(binary)));
    }
    let unit = match &*binary.right {
        Expr::Path(path) if path.qself.is_none() => path.path.get_ident().cloned(),
        _ => None,
    };
    let seconds = match unit.as_ref().map(Ident::to_string).as_deref() {
        Some("s") => 1,
        Some("min") => 60,
        Some("h") => 3600,
        _ => {
            errors.error(&binary.right, RATE);
            return None;
        }
    };
    if let Expr::Lit(ExprLit {
        lit: Lit::Int(int), ..
    }) = &*binary.left
    {
        if int.base10_parse::<u32>().ok() == Some(0) {
            errors.error(
                int,
                "a rate of 0 lets no call through: write at least `rate = 1 / h`",
            );
            return None;
        }
    }
    Some(RateValue::PerUnit {
        count: *binary.left,
        seconds,
        unit: unit?,
    })
}

/// The value of `workers`, `buffer`, `batch` or `reorder_window`: an integer literal of at
/// least 1, or an expression evaluated when the pipeline is built.
fn count(key: &Path, ident: &str, value: Option<Expr>, errors: &mut Errors) -> Option<Expr> {
    let Some(value) = value else {
        errors.error(key, format_args!("expected `{ident} = N`"));
        return None;
    };
    let positive = format!("expected an integer of at least 1: `{ident} = N`");
    match &value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => match int.base10_parse::<usize>() {
            Ok(0) => errors.error(int, positive),
            Ok(_) if matches!(int.suffix(), "" | "usize") => return Some(value),
            Ok(_) => errors.error(int, format_args!("expected a `usize`: `{ident} = N`")),
            Err(_) => errors.error(int, format_args!("expected a `usize`: `{ident} = N`")),
        },
        Expr::Lit(lit) => errors.error(lit, positive),
        Expr::Unary(unary) if matches!(unary.op, UnOp::Neg(_)) => errors.error(unary, positive),
        _ => return Some(value),
    }
    None
}

/// The value of `retry`: an integer literal (a `u32`), or an expression evaluated when the
/// pipeline is built.
fn retries(key: &Path, value: Option<Expr>, errors: &mut Errors) -> Option<Expr> {
    let form = "expected a number of retries: `retry = N`";
    let Some(value) = value else {
        errors.error(key, form);
        return None;
    };
    match &value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) if matches!(int.suffix(), "" | "u32") && int.base10_parse::<u32>().is_ok() => {
            return Some(value)
        }
        Expr::Lit(lit) => errors.error(lit, form),
        Expr::Unary(unary) if matches!(unary.op, UnOp::Neg(_)) => errors.error(unary, form),
        _ => return Some(value),
    }
    None
}

/// The value of `name`: a string literal, or an expression evaluated when the pipeline is
/// built.
fn name(key: &Path, value: Option<Expr>, errors: &mut Errors) -> Option<Expr> {
    match value {
        None => errors.error(key, "expected `name = \"..\"`"),
        Some(Expr::Lit(ExprLit {
            lit: Lit::Str(_), ..
        })) => return value,
        Some(Expr::Lit(lit)) => errors.error(lit, "expected a string: `name = \"..\"`"),
        Some(value) => return Some(value),
    }
    None
}

/// Whether a flag option is written as one, without a value.
fn flag(key: &Path, ident: &str, value: Option<&Expr>, errors: &mut Errors) -> bool {
    if let Some(value) = value {
        errors.error(
            quote::quote!(#key = #value),
            format_args!("`{ident}` takes no value: write `{ident}`"),
        );
        return false;
    }
    true
}

impl Sink {
    fn validate(step: Step, errors: &mut Errors) -> Option<Sink> {
        let Step {
            tokens,
            expr,
            options,
        } = step;
        let (ident, args) = match expr? {
            Expr::Path(path) if path.qself.is_none() && path.path.get_ident().is_some() => {
                (path.path.get_ident()?.clone(), None)
            }
            Expr::Call(call) => match &*call.func {
                Expr::Path(path) if path.qself.is_none() && path.path.get_ident().is_some() => {
                    let args: Vec<Expr> = call.args.into_iter().collect();
                    (path.path.get_ident()?.clone(), Some(args))
                }
                _ => return missing_sink(tokens, errors),
            },
            _ => return missing_sink(tokens, errors),
        };
        let known = matches!(
            ident.to_string().as_str(),
            "collect" | "count" | "for_each" | "fold" | "try_for_each" | "stream"
        );
        match &options {
            // A stage with options at the end: the sink is missing, not misspelt.
            Some(_) if !known => return missing_sink(tokens, errors),
            Some(options) => errors.error(&options.group, "a sink takes no options: remove `[..]`"),
            None => {}
        }
        let arity = |errors: &mut Errors, form: &str| {
            errors.error(&tokens, format_args!("expected `{form}`"));
        };
        let kind = match (ident.to_string().as_str(), args) {
            ("collect", None) => SinkKind::Collect,
            ("count", None) => SinkKind::Count,
            ("stream", None) => SinkKind::Stream,
            ("collect" | "count" | "stream", Some(args)) if args.is_empty() => {
                match ident.to_string().as_str() {
                    "collect" => SinkKind::Collect,
                    "count" => SinkKind::Count,
                    _ => SinkKind::Stream,
                }
            }
            ("collect" | "count" | "stream", Some(_)) => {
                arity(errors, &ident.to_string());
                return None;
            }
            ("for_each" | "try_for_each", Some(args)) if args.len() == 1 => {
                let f = args.into_iter().next()?;
                if ident == "for_each" {
                    SinkKind::ForEach(f)
                } else {
                    SinkKind::TryForEach(f)
                }
            }
            ("for_each" | "try_for_each", _) => {
                arity(errors, &format!("{ident}(f)"));
                return None;
            }
            ("fold", Some(args)) if args.len() == 2 => {
                let mut args = args.into_iter();
                SinkKind::Fold(args.next()?, args.next()?)
            }
            ("fold", _) => {
                arity(errors, "fold(init, f)");
                return None;
            }
            (other, _) => {
                errors.error(
                    &tokens,
                    format_args!("expected a sink, found `{other}`: end the pipeline with {SINKS}"),
                );
                return None;
            }
        };
        if options.is_some() {
            return None;
        }
        Some(Sink { ident, kind })
    }
}

fn missing_sink(tokens: TokenStream, errors: &mut Errors) -> Option<Sink> {
    errors.error(
        tokens,
        format_args!("missing sink after this stage: end the pipeline with {SINKS}"),
    );
    None
}

/// Sets a header or an option once; a second occurrence is an error at its key (serde's
/// `Attr::set`).
fn set<T>(slot: &mut Option<T>, key: impl ToTokens, what: &str, value: T, errors: &mut Errors) {
    if slot.is_some() {
        errors.error(key, format_args!("duplicate {what}: keep one"));
    } else {
        *slot = Some(value);
    }
}

/// The span and the name of a function path's last segment: where errors about calling it
/// are reported, and the stage's default name.
fn name_of(path: &Path) -> Option<(Span, String)> {
    let ident = &path.segments.last()?.ident;
    Some((ident.span(), ident.to_string()))
}

#[cfg(test)]
mod option_names {
    #[test]
    fn the_message_of_an_unknown_option_names_every_option() {
        for name in super::super::OPTION_NAMES {
            assert!(super::OPTIONS.contains(&format!("`{name}")), "{name}");
        }
    }
}
