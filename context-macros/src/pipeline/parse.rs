//! The syntax of `pipeline!`: header lines ending in `;`, then `from <source>` and the steps
//! after it, separated by `=>`.
//!
//! The input is first split at its top-level `;` and `=>` (those inside brackets, braces and
//! parentheses belong to expressions), then each piece is parsed on its own. A piece that does
//! not parse is reported and left out, and the other pieces are still read, so that one build
//! reports every mistake. What the pieces mean — which header, which option, which sink — is
//! checked by `validate`.

use proc_macro2::{Delimiter, Group, Spacing, TokenStream, TokenTree};
use quote::ToTokens;
use syn::parse::{ParseStream, Parser};
use syn::{Expr, Ident, Path, Token, Type};

use super::OPTION_NAMES;
use crate::errors::Errors;

/// The whole input, as written.
pub(crate) struct Input {
    pub(crate) headers: Vec<Header>,
    /// `from ..` and the steps; `None` when there is no `from`, which has been reported.
    pub(crate) body: Option<Body>,
}

/// One header line: `in <context>;`, `error = <type>;`, `on_error = <policy>;`, `ordered;`,
/// `report;`, `located;`, `progress = <fn>;`, `drained_by = <handle>;`, `crate = <path>;`.
pub(crate) struct Header {
    /// The keyword, for the errors about this line.
    pub(crate) key: Ident,
    pub(crate) value: HeaderValue,
}

pub(crate) enum HeaderValue {
    In(Expr),
    Error(Type),
    /// The default error policy of every stage.
    OnError(Expr),
    /// Every stage keeps source order.
    Ordered,
    /// The sink returns the report beside the result.
    Report,
    /// The sink's error says where it happened.
    Located,
    Progress(Expr),
    /// The `Drain` handle that can drain the run.
    DrainedBy(Expr),
    Crate(Path),
}

/// The header keywords, as the messages list them.
pub(crate) const HEADERS: &str = "`in <context>;`, `error = <type>;`, `on_error = <policy>;`, \
                                  `ordered;`, `report;`, `located;`, `progress = <closure>;`, \
                                  `drained_by = <drain handle>;`, `crate = <path>;`";

/// `from <source> => <step> => ...`.
pub(crate) struct Body {
    /// `from`, or the first token of the source when `from` is missing (reported).
    pub(crate) from: TokenStream,
    /// The sources, several for `from a, b, ..`; `None` when one did not parse (reported).
    pub(crate) sources: Option<Vec<Source>>,
    pub(crate) steps: Vec<Step>,
}

pub(crate) struct Source {
    /// `stream` in `from stream <expr>`.
    pub(crate) stream: Option<Ident>,
    pub(crate) expr: Expr,
}

/// What follows one `=>`: a stage, or the sink when it is the last.
pub(crate) struct Step {
    /// The step as written, options included, for errors about the whole step.
    pub(crate) tokens: TokenStream,
    /// `None` when the step is empty or does not parse (reported).
    pub(crate) expr: Option<Expr>,
    /// `[..]` after the step.
    pub(crate) options: Option<Options>,
}

/// `[key, key = value, ..]` after a step.
pub(crate) struct Options {
    pub(crate) group: Group,
    pub(crate) items: Vec<RawOption>,
}

/// One option as written: `key`, `key = value` or `key(..)`.
pub(crate) struct RawOption {
    pub(crate) key: Path,
    pub(crate) value: Option<Expr>,
    /// `(..)` after the key: never valid, kept to report it.
    pub(crate) list: Option<Group>,
}

impl Input {
    /// Parses `tokens`, recording every syntax error in `errors` and keeping what was valid.
    pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> Input {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut headers = Vec::new();
        let mut rest = &tokens[..];
        loop {
            let Some(first) = rest.first() else {
                return Input {
                    headers,
                    body: None,
                };
            };
            if is_ident(first, "from") {
                return Input {
                    headers,
                    body: Some(Body::parse(rest, errors)),
                };
            }
            let end = position(rest, is_semicolon).unwrap_or(rest.len());
            let (line, after) = rest.split_at(end);
            // A header line never holds a top-level `=>`: this one holds the source and steps.
            if split(line, arrow_at).len() > 1 {
                let from = position(line, |tokens| {
                    tokens.first().is_some_and(|t| is_ident(t, "from"))
                });
                let body = match from {
                    Some(at) => {
                        errors.error(
                            &line[at],
                            "expected `;` before `from`: each header line ends with `;`",
                        );
                        headers.extend(Header::parse(&line[..at], errors));
                        &rest[at..]
                    }
                    None => {
                        errors.error(
                            first,
                            "expected `from` before the source: a pipeline starts with \
                             `from <items>` or `from stream <stream>`",
                        );
                        rest
                    }
                };
                return Input {
                    headers,
                    body: Some(Body::parse(body, errors)),
                };
            }
            if let Some(header) = Header::parse(line, errors) {
                headers.push(header);
            }
            rest = after.get(1..).unwrap_or_default();
        }
    }
}

impl Header {
    fn parse(line: &[TokenTree], errors: &mut Errors) -> Option<Header> {
        let (first, rest) = line.split_first()?;
        let key = match first {
            TokenTree::Ident(key) => key.clone(),
            other => {
                errors.error(
                    other,
                    format_args!("expected a header line ({HEADERS}) or `from <source>`"),
                );
                return None;
            }
        };
        let name = key.to_string();
        let rest: TokenStream = rest.iter().cloned().collect();
        let parsed = match name.as_str() {
            "in" => parse_all(rest, |input| {
                if input.is_empty() {
                    return Err(syn::Error::new(
                        key.span(),
                        "expected the context after `in`: `in &ctx;`",
                    ));
                }
                input.parse().map(HeaderValue::In)
            }),
            "error" => after_eq(&key, rest, "error = <type>", |input| {
                input.parse().map(HeaderValue::Error)
            }),
            "on_error" => after_eq(&key, rest, "on_error = skip", |input| {
                input.parse().map(HeaderValue::OnError)
            }),
            "ordered" | "report" | "located" => match rest.into_iter().next() {
                None if name == "ordered" => Ok(HeaderValue::Ordered),
                None if name == "located" => Ok(HeaderValue::Located),
                None => Ok(HeaderValue::Report),
                Some(extra) => Err(syn::Error::new(
                    extra.span(),
                    format_args!("`{name}` takes no value: write `{name};`"),
                )),
            },
            "progress" => after_eq(&key, rest, "progress = <closure>", |input| {
                input.parse().map(HeaderValue::Progress)
            }),
            "drained_by" => after_eq(&key, rest, "drained_by = <drain handle>", |input| {
                input.parse().map(HeaderValue::DrainedBy)
            }),
            "crate" => after_eq(&key, rest, "crate = <path>", |input| {
                input.call(Path::parse_mod_style).map(HeaderValue::Crate)
            }),
            _ => Err(syn::Error::new(
                key.span(),
                format_args!("unknown header `{name}`: expected {HEADERS} or `from <source>`"),
            )),
        };
        match parsed {
            Ok(value) => Some(Header { key, value }),
            Err(err) => {
                errors.push(err);
                None
            }
        }
    }
}

/// `= <value>` after a header key, parsed by `value`.
fn after_eq(
    key: &Ident,
    tokens: TokenStream,
    form: &str,
    value: impl FnOnce(ParseStream<'_>) -> syn::Result<HeaderValue>,
) -> syn::Result<HeaderValue> {
    let message = format!("expected `{form};`");
    let span = key.span();
    parse_all(tokens, move |input| {
        if !input.peek(Token![=]) {
            return Err(syn::Error::new(span, message));
        }
        input.parse::<Token![=]>()?;
        if input.is_empty() {
            return Err(syn::Error::new(span, message));
        }
        value(input)
    })
}

/// Parses all of `tokens` with `parser`; leftover tokens are an error at the first of them.
fn parse_all<T>(
    tokens: TokenStream,
    parser: impl FnOnce(ParseStream<'_>) -> syn::Result<T>,
) -> syn::Result<T> {
    let parser = |input: ParseStream<'_>| {
        let value = parser(input)?;
        if !input.is_empty() {
            return Err(input.error("expected `;`"));
        }
        Ok(value)
    };
    parser.parse2(tokens)
}

impl Body {
    /// `tokens` starts with `from` (or, reported, with the source itself).
    fn parse(tokens: &[TokenTree], errors: &mut Errors) -> Body {
        let mut tokens = tokens;
        // One `;` may end the pipeline.
        if let [init @ .., last] = tokens {
            if is_semicolon(std::slice::from_ref(last)) {
                tokens = init;
            }
        }
        let mut pieces = split(tokens, arrow_at)
            .into_iter()
            .enumerate()
            .flat_map(|(i, piece)| split_mistaken_arrows(piece, i == 0, errors))
            .collect::<Vec<_>>()
            .into_iter();
        let first = pieces.next().unwrap_or_default();
        let (from, sources) = match first.split_first() {
            Some((from, rest)) if is_ident(from, "from") => (
                from.to_token_stream(),
                Source::parse_all(from, rest, errors),
            ),
            Some((token, _)) => (
                token.to_token_stream(),
                Source::parse_all(token, first, errors),
            ),
            None => (TokenStream::new(), None),
        };
        let mut steps = Vec::new();
        for (arrow, piece) in pieces.map(|piece| piece.split_at(piece.len().min(2))) {
            steps.push(Step::parse(arrow, piece, errors));
        }
        Body {
            from,
            sources,
            steps,
        }
    }
}

impl Source {
    /// The tokens after `from` (`at`, for the error when there are none): one source, or
    /// several separated by top-level commas (`from a, stream b`). Tokens that parse as one
    /// expression are one source, whatever commas they hold (`HashMap::<K, V>::new()`).
    fn parse_all(at: &TokenTree, tokens: &[TokenTree], errors: &mut Errors) -> Option<Vec<Source>> {
        let one = match tokens {
            [TokenTree::Ident(stream), next, rest @ ..]
                if stream == "stream" && starts_expr(next) =>
            {
                std::iter::once(next).chain(rest).cloned().collect()
            }
            _ => tokens.iter().cloned().collect(),
        };
        if syn::parse2::<Expr>(one).is_ok() {
            return Some(vec![Source::parse(at, tokens, errors)?]);
        }
        let pieces = split(tokens, |rest| match rest.first() {
            Some(TokenTree::Punct(punct)) if punct.as_char() == ',' => Some(1),
            _ => None,
        });
        if pieces.len() == 1 {
            return Some(vec![Source::parse(at, tokens, errors)?]);
        }
        let mut sources = Vec::new();
        let mut failed = false;
        for (n, piece) in pieces.iter().enumerate() {
            // Each piece after the first starts with its `,`.
            let piece = if n == 0 { piece } else { &piece[1..] };
            if piece.is_empty() {
                // At the `,` with nothing after it (or `from` itself when the first is empty).
                errors.error(
                    pieces[n].first().unwrap_or(at),
                    "expected a source after `,`: `from a, b` merges the sources `a` and `b`",
                );
                failed = true;
                continue;
            }
            match Source::parse(at, piece, errors) {
                Some(source) => sources.push(source),
                None => failed = true,
            }
        }
        (!failed).then_some(sources)
    }

    /// One source: `<items>` or `stream <stream>` (`at`, for the error when there are none).
    fn parse(at: &TokenTree, tokens: &[TokenTree], errors: &mut Errors) -> Option<Source> {
        if tokens.is_empty() {
            errors.error(
                at,
                "expected a source after `from`: `from <items>` for an `IntoIterator`, or \
                 `from stream <stream>` for a `Stream`",
            );
            return None;
        }
        let (stream, tokens) = match tokens {
            [TokenTree::Ident(stream), next, ..] if stream == "stream" && starts_expr(next) => {
                (Some(stream.clone()), &tokens[1..])
            }
            _ => (None, tokens),
        };
        match syn::parse2::<Expr>(tokens.iter().cloned().collect()) {
            Ok(expr) => {
                let expr = match ungrouped(expr) {
                    // `from stream (expr)`: the parentheses only mark the stream; kept, they
                    // would be linted as unnecessary around the value.
                    Expr::Paren(paren) if stream.is_some() && paren.attrs.is_empty() => *paren.expr,
                    expr => expr,
                };
                Some(Source { stream, expr })
            }
            Err(err) => {
                errors.push(err);
                None
            }
        }
    }
}

/// Whether `stream <token> ..` reads as `from stream <expr>` rather than as an expression
/// that starts with a variable named `stream` (`stream.iter()`, `stream::iter(..)`).
fn starts_expr(token: &TokenTree) -> bool {
    match token {
        TokenTree::Ident(_) | TokenTree::Literal(_) => true,
        // `None`: a `macro_rules!` fragment, such as `from stream $s`.
        TokenTree::Group(group) => matches!(
            group.delimiter(),
            Delimiter::Parenthesis | Delimiter::Brace | Delimiter::None
        ),
        TokenTree::Punct(_) => false,
    }
}

/// `expr` without the invisible groups a `macro_rules!` fragment (`$stage:expr`) arrives in.
fn ungrouped(expr: Expr) -> Expr {
    match expr {
        Expr::Group(group) if group.attrs.is_empty() => ungrouped(*group.expr),
        expr => expr,
    }
}

impl Step {
    fn parse(arrow: &[TokenTree], tokens: &[TokenTree], errors: &mut Errors) -> Step {
        let all: TokenStream = tokens.iter().cloned().collect();
        let (call, options) = match tokens {
            [call @ .., TokenTree::Group(group)]
                if !call.is_empty() && group.delimiter() == Delimiter::Bracket =>
            {
                (call, Some(Options::parse(group.clone(), errors)))
            }
            _ => (tokens, None),
        };
        let expr = if call.is_empty() {
            let at: TokenStream = if tokens.is_empty() {
                arrow.iter().cloned().collect()
            } else {
                all.clone()
            };
            errors.error(
                at,
                "expected a stage or a sink after `=>`: a function `f`, a call `f(args)`, \
                 a closure `|ctx, item| async move { .. }`, or a sink such as `collect`",
            );
            None
        } else {
            match syn::parse2::<Expr>(call.iter().cloned().collect()) {
                Ok(expr) => Some(ungrouped(expr)),
                Err(err) => {
                    errors.push(unbracketed_options(call).unwrap_or(err));
                    None
                }
            }
        };
        Step {
            tokens: if all.is_empty() {
                arrow.iter().cloned().collect()
            } else {
                all
            },
            expr,
            options,
        }
    }
}

impl Options {
    fn parse(group: Group, errors: &mut Errors) -> Options {
        let mut items = Vec::new();
        let parser = syn::meta::parser(|meta| {
            let mut option = RawOption {
                key: meta.path.clone(),
                value: None,
                list: None,
            };
            if meta.input.peek(Token![=]) {
                option.value = Some(meta.value()?.parse()?);
            } else if meta.input.peek(syn::token::Paren) {
                option.list = Some(meta.input.parse()?);
            }
            items.push(option);
            Ok(())
        });
        if let Err(err) = parser.parse2(group.stream()) {
            errors.push(err);
        }
        Options { group, items }
    }
}

/// Splits `tokens` at each top-level separator found by `at` (which returns its length in
/// tokens); each piece after the first starts with its separator.
fn split(tokens: &[TokenTree], at: fn(&[TokenTree]) -> Option<usize>) -> Vec<&[TokenTree]> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < tokens.len() {
        if let Some(len) = at(&tokens[i..]) {
            pieces.push(&tokens[start..i]);
            start = i;
            i += len;
        } else {
            i += 1;
        }
    }
    pieces.push(&tokens[start..]);
    pieces
}

/// `piece` (the source, or `=>` and a step), split again where it only fails to parse because
/// `->` was written for `=>`: each such `->` is reported and then read as `=>`, so that the
/// steps after it are still checked. A piece that parses keeps its `->`s (a closure's return
/// type, a `fn() -> T` type).
fn split_mistaken_arrows<'a>(
    piece: &'a [TokenTree],
    is_source: bool,
    errors: &mut Errors,
) -> Vec<&'a [TokenTree]> {
    let arrows: Vec<usize> = (0..piece.len())
        .filter(|&i| is_thin_arrow(&piece[i..]) && !(i > 0 && is_bar(&piece[i - 1])))
        .collect();
    if arrows.is_empty() || parses_as_step(piece, is_source) {
        return vec![piece];
    }
    let mut pieces = Vec::new();
    let mut start = 0;
    for &at in &arrows {
        errors.error(
            piece[at..at + 2].iter().cloned().collect::<TokenStream>(),
            "expected `=>` between the steps of a pipeline, found `->`",
        );
        pieces.push(&piece[start..at]);
        start = at;
    }
    pieces.push(&piece[start..]);
    pieces
}

/// Whether the expression in `piece` parses: after `from` (and `stream`) or the arrow, and
/// before the `[..]` options.
fn parses_as_step(piece: &[TokenTree], is_source: bool) -> bool {
    let mut expr = match piece {
        [from, rest @ ..] if is_source && is_ident(from, "from") => rest,
        _ if is_source => piece,
        _ => piece.get(2..).unwrap_or_default(),
    };
    if let [stream, next, rest @ ..] = expr {
        if is_source && is_ident(stream, "stream") && starts_expr(next) {
            expr = &expr[expr.len() - rest.len() - 1..];
        }
    }
    if let [call @ .., TokenTree::Group(group)] = expr {
        if group.delimiter() == Delimiter::Bracket {
            expr = call;
        }
    }
    syn::parse2::<Expr>(expr.iter().cloned().collect()).is_ok()
}

/// `->`: a joint `-` followed by `>`.
fn is_thin_arrow(tokens: &[TokenTree]) -> bool {
    matches!(
        tokens,
        [TokenTree::Punct(minus), TokenTree::Punct(gt), ..]
            if minus.as_char() == '-' && minus.spacing() == Spacing::Joint && gt.as_char() == '>'
    )
}

/// `|`, as after a closure's parameters (`|x| -> T { .. }`).
fn is_bar(token: &TokenTree) -> bool {
    matches!(token, TokenTree::Punct(bar) if bar.as_char() == '|')
}

/// `=>`: a joint `=` followed by `>`.
fn arrow_at(tokens: &[TokenTree]) -> Option<usize> {
    match tokens {
        [TokenTree::Punct(eq), TokenTree::Punct(gt), ..]
            if eq.as_char() == '=' && eq.spacing() == Spacing::Joint && gt.as_char() == '>' =>
        {
            Some(2)
        }
        _ => None,
    }
}

/// The error for a step that does not parse because its options were written without their
/// brackets (`=> parse workers = 4`, `=> parse, ordered`): at the first of them.
fn unbracketed_options(call: &[TokenTree]) -> Option<syn::Error> {
    let at = (1..call.len()).find(
        |&i| matches!(&call[i], TokenTree::Ident(ident) if OPTION_NAMES.iter().any(|o| ident == o)),
    )?;
    let options: TokenStream = call[at..].iter().cloned().collect();
    Some(syn::Error::new(
        call[at].span(),
        format!("expected the options in brackets after the step: `[{options}]`"),
    ))
}

fn is_semicolon(tokens: &[TokenTree]) -> bool {
    matches!(tokens.first(), Some(TokenTree::Punct(p)) if p.as_char() == ';')
}

fn is_ident(token: &TokenTree, name: &str) -> bool {
    matches!(token, TokenTree::Ident(ident) if ident == name)
}

/// The index of the first top-level position where `pred` holds.
fn position(tokens: &[TokenTree], pred: impl Fn(&[TokenTree]) -> bool) -> Option<usize> {
    (0..tokens.len()).find(|&i| pred(&tokens[i..]))
}

#[cfg(test)]
mod tests {
    use quote::{quote, ToTokens};

    use super::{Body, Input};
    use crate::errors::Errors;

    fn body(tokens: proc_macro2::TokenStream) -> Body {
        let mut errors = Errors::new();
        let input = Input::parse(tokens, &mut errors);
        if let Err(err) = errors.check() {
            panic!("{err}");
        }
        input.body.expect("a body")
    }

    #[test]
    fn a_stream_source_is_marked_by_stream_and_an_expression() {
        for (tokens, stream) in [
            (quote!(from stream s => collect), true),
            (
                quote!(from stream futures::stream::iter(v) => collect),
                true,
            ),
            (quote!(from stream (a.b()) => collect), true),
            (quote!(from stream.iter() => collect), false),
            (quote!(from stream::iter(v) => collect), false),
            (quote!(from stream => collect), false),
        ] {
            let text = tokens.to_string();
            let sources = body(tokens).sources.expect("a source");
            assert_eq!(sources.len(), 1, "{text}");
            assert_eq!(sources[0].stream.is_some(), stream, "{text}");
        }
    }

    #[test]
    fn sources_split_at_top_level_commas_unless_they_parse_as_one() {
        for (tokens, expected) in [
            (
                quote!(from a, stream b, [1, 2] => collect),
                vec![false, true, false],
            ),
            (quote!(from HashMap::<K, V>::new() => collect), vec![false]),
            (quote!(from f(a, b), g(c) => collect), vec![false, false]),
            (quote!(from stream s => collect), vec![true]),
        ] {
            let text = tokens.to_string();
            let sources = body(tokens).sources.expect("sources");
            let streams: Vec<_> = sources.iter().map(|s| s.stream.is_some()).collect();
            assert_eq!(streams, expected, "{text}");
        }
    }

    #[test]
    fn steps_split_at_top_level_arrows_only() {
        let body = body(quote! {
            from xs
            => |_ctx, n| async move { Ok(match n { 0 => 1, n => n }) } [filter]
            => f(match a { _ => b }) [workers = 2, ordered]
            => collect;
        });
        assert_eq!(body.steps.len(), 3);
        let options: Vec<usize> = body
            .steps
            .iter()
            .map(|step| {
                step.options
                    .as_ref()
                    .map_or(0, |options| options.items.len())
            })
            .collect();
        assert_eq!(options, [1, 2, 0]);
        let last = body.steps[2].expr.as_ref().expect("the sink");
        assert_eq!(last.to_token_stream().to_string(), "collect");
    }

    #[test]
    fn a_thin_arrow_for_a_fat_one_is_reported_and_read_as_one() {
        let mut errors = Errors::new();
        let input = Input::parse(
            quote!(from xs -> parse [workers = 2] => |x: u32| -> Result<u32, E> { Ok(x) } -> collect),
            &mut errors,
        );
        let messages: Vec<String> = errors
            .check()
            .expect_err("errors")
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            messages,
            ["expected `=>` between the steps of a pipeline, found `->`"; 2]
        );
        let read = input.body.expect("a body");
        assert!(read.sources.is_some());
        assert_eq!(read.steps.len(), 3, "the closure keeps its return type");
        assert!(read.steps.iter().all(|step| step.expr.is_some()));

        let fine = body(quote!(from xs => |x: u32| -> Result<u32, E> { Ok(x) } => collect));
        assert_eq!(fine.steps.len(), 2);
    }

    #[test]
    fn headers_come_before_from() {
        let mut errors = Errors::new();
        let input = Input::parse(
            quote!(in &ctx; error = E; on_error = skip; ordered; report; progress = |p| drop(p);
                crate = ::x; from a => count),
            &mut errors,
        );
        assert!(errors.check().is_ok());
        let keys: Vec<String> = input.headers.iter().map(|h| h.key.to_string()).collect();
        assert_eq!(
            keys,
            ["in", "error", "on_error", "ordered", "report", "progress", "crate"]
        );
        assert!(input.body.is_some());
    }

    #[test]
    fn mistakes_are_collected_and_the_rest_is_read() {
        let mut errors = Errors::new();
        let input = Input::parse(quote!(bogus; in &ctx from a => => count), &mut errors);
        let err = errors.check().expect_err("errors");
        let messages: Vec<String> = err.into_iter().map(|e| e.to_string()).collect();
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(messages[0].starts_with("unknown header `bogus`"));
        assert!(messages[1].starts_with("expected `;` before `from`"));
        assert!(messages[2].starts_with("expected a stage or a sink after `=>`"));
        assert_eq!(input.headers.len(), 1, "`in &ctx` is still read");
        assert_eq!(input.body.expect("a body").steps.len(), 2);
    }
}
