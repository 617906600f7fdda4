//! `pipeline!`: what its steps call and with which arguments, the context its stages run
//! under, its error type, its sinks; and its expansion is hygienic (it names std through
//! `::core`, the runtime through `crate = path`, and causes no lint).
#![deny(
    warnings,
    unused_qualifications,
    unused_parens,
    unused_braces,
    unused_results
)]
#![deny(clippy::all)]

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ctxpipe::{ctx_value, pipeline, stage, Context, Error, Progress};

/// Generated code must not resolve `core` to this module.
mod core {}

/// The facade under another name, as `crate = path` expects it.
mod renamed {
    pub use ::ctxpipe::__private;
}

#[derive(Debug, PartialEq)]
enum AppError {
    Context(Error),
    Parse(String),
    Io(std::io::ErrorKind),
    Limit(u32),
}

impl From<Error> for AppError {
    fn from(err: Error) -> Self {
        AppError::Context(err)
    }
}

impl From<std::io::Error> for AppError {
    fn from(err: std::io::Error) -> Self {
        AppError::Io(err.kind())
    }
}

#[ctx_value]
#[derive(Debug)]
struct Tenant(&'static str);

#[derive(Debug, Clone, PartialEq)]
struct Record {
    id: u32,
    name: String,
}

#[derive(Debug, PartialEq)]
struct Enriched {
    id: u32,
    label: String,
}

/// A shared resource that stages receive as an extra argument.
struct Db {
    hidden: Vec<u32>,
    lookups: AtomicUsize,
}

impl Db {
    async fn is_hidden(&self, id: u32) -> bool {
        tokio::time::sleep(Duration::from_millis(u64::from(10 - id % 10))).await;
        let _ = self.lookups.fetch_add(1, Ordering::Relaxed);
        self.hidden.contains(&id)
    }
}

#[stage]
async fn parse(line: String) -> Result<Record, AppError> {
    let (id, name) = line
        .split_once(':')
        .ok_or_else(|| AppError::Parse(line.clone()))?;
    let id = id.parse().map_err(|_| AppError::Parse(line.clone()))?;
    Ok(Record {
        id,
        name: name.to_owned(),
    })
}

#[stage]
async fn enrich(
    rec: Record,
    #[ctx_value] tenant: &Tenant,
    db: Arc<Db>,
) -> Result<Option<Enriched>, AppError> {
    if db.is_hidden(rec.id).await {
        return Ok(None);
    }
    Ok(Some(Enriched {
        id: rec.id,
        label: format!("{}/{}", tenant.0, rec.name),
    }))
}

fn alive() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// The example of the macro's specification, end to end.
async fn the_example(
    ctx: &Context,
    lines: Vec<String>,
    db: &Arc<Db>,
) -> Result<Vec<Enriched>, AppError> {
    let out: Vec<Enriched> = pipeline! {
        in ctx;
        from lines
        => parse
        => enrich(db.clone()) [filter, workers = 16, ordered, buffer = 256]
        => collect
    }
    .await?;
    Ok(out)
}

#[tokio::test(start_paused = true)]
async fn the_example_end_to_end_with_context_values() {
    let ctx = Context::background().with_value(Tenant("acme"));
    let lines: Vec<String> = (0..100).map(|id| format!("{id}:item{id}")).collect();
    let db = Arc::new(Db {
        hidden: vec![3, 50, 99],
        lookups: AtomicUsize::new(0),
    });
    let out = the_example(&ctx, lines, &db).await.unwrap();
    assert_eq!(alive(), 0, "no task outlives the run");

    let expected: Vec<Enriched> = (0..100)
        .filter(|id| ![3, 50, 99].contains(id))
        .map(|id| Enriched {
            id,
            label: format!("acme/item{id}"),
        })
        .collect();
    assert_eq!(out, expected, "in input order, hidden records dropped");
    assert_eq!(db.lookups.load(Ordering::Relaxed), 100);

    // A parse error is the pipeline's error, as the stage returned it.
    let lines = vec!["1:a".to_owned(), "oops".to_owned()];
    assert_eq!(
        the_example(&ctx, lines, &db).await,
        Err(AppError::Parse("oops".to_owned()))
    );

    // Without the value in the caller's context, the stage reports it missing.
    let err = the_example(&Context::background(), vec!["1:a".to_owned()], &db)
        .await
        .unwrap_err();
    let missing = |err: &AppError| match err {
        AppError::Context(Error::MissingValue { type_name }) => type_name.ends_with("Tenant"),
        _ => false,
    };
    assert!(missing(&err), "{err:?}");
}

/// Counts how often it is cloned.
struct Counted(Arc<AtomicUsize>);

impl Clone for Counted {
    fn clone(&self) -> Self {
        let _ = self.0.fetch_add(1, Ordering::Relaxed);
        Counted(self.0.clone())
    }
}

#[stage]
async fn scale(n: u32, factor: u32, _counted: Counted) -> Result<u32, Error> {
    Ok(n * factor)
}

#[tokio::test]
async fn extra_arguments_are_evaluated_once_and_cloned_per_call() {
    let evaluations = AtomicUsize::new(0);
    let clones = Arc::new(AtomicUsize::new(0));
    let factor = || {
        let _ = evaluations.fetch_add(1, Ordering::Relaxed);
        3
    };
    let out = pipeline! {
        from 0..50u32
        => scale(factor(), Counted(clones.clone())) [workers = 4, ordered]
        => collect
    }
    .await
    .unwrap();
    assert_eq!(out, (0..50).map(|n| n * 3).collect::<Vec<_>>());
    assert_eq!(evaluations.load(Ordering::Relaxed), 1, "evaluated once");
    assert_eq!(clones.load(Ordering::Relaxed), 50, "cloned once per call");
}

#[stage]
async fn jitter(n: u64) -> Result<u64, Error> {
    // A deterministic, scrambled delay per item, so workers finish out of order.
    tokio::time::sleep(Duration::from_millis(n * 7919 % 31)).await;
    Ok(n)
}

#[tokio::test(start_paused = true)]
async fn several_workers_keep_input_order_when_ordered() {
    let ordered = pipeline! {
        from 0..500u64
        => jitter [workers = 8, ordered, batch = 1]
        => collect
    }
    .await
    .unwrap();
    assert_eq!(ordered, (0..500).collect::<Vec<_>>());

    let unordered = pipeline! {
        from 0..500u64
        => jitter [workers = 8, batch = 1]
        => collect
    }
    .await
    .unwrap();
    assert_ne!(
        unordered, ordered,
        "without `ordered`, the fastest come first"
    );
    let mut sorted = unordered;
    sorted.sort_unstable();
    assert_eq!(sorted, ordered);
}

#[stage]
async fn even(n: u32) -> Result<Option<u32>, Error> {
    Ok((n % 2 == 0).then_some(n))
}

#[stage]
async fn repeat(n: u32) -> Result<Vec<u32>, Error> {
    Ok(vec![n; n as usize])
}

#[tokio::test]
async fn filter_and_flat_stages() {
    let out = pipeline! {
        from 0..7u32
        => even [filter]
        => repeat [flat, name = "repeat"]
        => collect
    }
    .await
    .unwrap();
    assert_eq!(out, [2, 2, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6]);

    // Closures take the same options.
    let out = pipeline! {
        from ["1", "x", "3"]
        => |_ctx, s: &str| async move { Ok(s.parse::<u32>().ok()) } [filter]
        => |_ctx, n| async move { Ok(0..n) } [flat, workers = 2, ordered]
        => collect
    }
    .await
    .map_err(|err: Error| err)
    .unwrap();
    assert_eq!(out, [0, 0, 1, 2]);
}

#[stage]
async fn limit(n: u32, max: u32) -> Result<u32, AppError> {
    // Item `max` fails early; later items fail later with another error.
    if n == max {
        tokio::time::sleep(Duration::from_millis(10)).await;
        return Err(AppError::Limit(n));
    }
    if n > max {
        tokio::time::sleep(Duration::from_millis(20)).await;
        return Err(AppError::Limit(n));
    }
    Ok(n)
}

#[stage]
async fn check_io(n: u32) -> Result<u32, std::io::Error> {
    if n == 3 {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidData));
    }
    Ok(n)
}

#[tokio::test(start_paused = true)]
async fn the_first_error_wins_and_converts_with_from() {
    // `limit` decides the error type; `check_io`'s `io::Error` converts into it.
    let result = pipeline! {
        from 0..100u32
        => limit(50) [workers = 64]
        => check_io
        => count
    }
    .await;
    assert_eq!(result, Err(AppError::Io(std::io::ErrorKind::InvalidData)));
    assert_eq!(alive(), 0);

    let result = pipeline! {
        from 4..100u32
        => limit(50) [workers = 64]
        => check_io
        => count
    }
    .await;
    assert_eq!(
        result,
        Err(AppError::Limit(50)),
        "the first error, not a later one"
    );
    assert_eq!(alive(), 0);
}

#[tokio::test(start_paused = true)]
async fn error_header_names_the_pipelines_error_type() {
    // `check_io` comes first, but the pipeline's error type is `AppError`.
    let result = pipeline! {
        error = AppError;
        from 0..10u32
        => check_io
        => |_ctx, n| async move { if n > 5 { Err(AppError::Limit(n)) } else { Ok(n) } }
        => collect
    }
    .await;
    assert_eq!(result, Err(AppError::Io(std::io::ErrorKind::InvalidData)));

    // Closures alone name no error type: the header does.
    let sum = pipeline! {
        error = Error;
        from 1..=4u32
        => |_ctx, n| async move { Ok(n * 10) }
        => fold(0, |sum, n| sum + n)
    }
    .await;
    assert_eq!(sum, Ok(100));
}

#[stage]
async fn forever(n: u32) -> Result<u32, AppError> {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    Ok(n)
}

#[tokio::test(start_paused = true)]
async fn cancelling_the_callers_context_returns_canceled() {
    let (ctx, cancel) = Context::background().with_cancel();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        cancel.cancel();
    });
    let started = tokio::time::Instant::now();
    let result = pipeline! {
        in &ctx;
        from 0..1000u32
        => forever [workers = 10]
        => collect
    }
    .await;
    assert_eq!(result, Err(AppError::Context(Error::Canceled)));
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(5),
        "stopped at once"
    );
    canceller.await.unwrap();
    assert_eq!(alive(), 0);

    // A deadline ends it the same way, with its own error.
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(20));
    let result = pipeline! {
        in ctx;
        from 0..10u32
        => forever
        => count
    }
    .await;
    assert_eq!(result, Err(AppError::Context(Error::DeadlineExceeded)));
    // `in ctx;` borrows the context: it is still here.
    assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
}

#[tokio::test]
async fn without_in_a_pipeline_runs_under_the_background_context() {
    let seen = pipeline! {
        from 0..3u32
        => |ctx: Context, n| async move {
            // A child of the background context: no deadline, no values, not done.
            assert!(ctx.deadline().is_none() && !ctx.is_done());
            Ok((n, ctx.value::<Tenant>().is_some()))
        }
        => collect
    }
    .await
    .map_err(|err: Error| err)
    .unwrap();
    assert_eq!(seen, [(0, false), (1, false), (2, false)]);
}

#[tokio::test]
async fn closure_stages_get_an_owned_context() {
    let ctx = Context::background().with_value(Tenant("acme"));
    let labels = pipeline! {
        in &ctx;
        from ["a", "b"]
        => |ctx: Context, item: &'static str| async move {
            // The context can move into spawned work.
            let handle = tokio::spawn(async move { ctx.value::<Tenant>().map(|t| t.0) });
            Ok(format!("{}:{item}", handle.await.unwrap().unwrap_or("none")))
        } [name = "label", workers = 2, ordered]
        => collect
    }
    .await
    .map_err(|err: Error| err)
    .unwrap();
    assert_eq!(labels, ["acme:a", "acme:b"]);
}

#[tokio::test]
async fn every_sink() {
    let all = pipeline! { error = Error; from 0..4u32 => collect }.await;
    assert_eq!(all, Ok(vec![0, 1, 2, 3]));

    let n = pipeline! { from 0..10u32 => even [filter] => count }.await;
    assert_eq!(n, Ok(5));

    // `for_each` and `fold` run in the caller's future: they need not be `Send`.
    let seen = Rc::new(RefCell::new(Vec::new()));
    let sink = Rc::clone(&seen);
    pipeline! {
        from 0..4u32
        => even [filter]
        => for_each(move |n| sink.borrow_mut().push(n))
    }
    .await
    .unwrap();
    assert_eq!(*seen.borrow(), [0, 2]);

    let local = Rc::new(5u32);
    let total = pipeline! {
        from 1..=3u32
        => scale(10, Counted(Arc::default()))
        => fold(*local, |sum, n| sum + n)
    }
    .await;
    assert_eq!(total, Ok(65));

    let mut written = Vec::new();
    let result = pipeline! {
        from 0..10u32
        => limit(1000)
        => try_for_each(|n| {
            written.push(n);
            async move { if n == 4 { Err(AppError::Limit(n)) } else { Ok(()) } }
        })
    }
    .await;
    assert_eq!(result, Err(AppError::Limit(4)));
    assert_eq!(written, [0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn stream_sources_progress_and_a_renamed_crate() {
    let progress: Mutex<Option<Progress>> = Mutex::new(None);
    let out = pipeline! {
        crate = crate::renamed;
        progress = |p| *progress.lock().unwrap() = Some(p);
        from stream futures::stream::iter(vec![3u32, 1, 2])
        => scale(2, Counted(Arc::default())) [name = "double"]
        => even [filter]
        => collect
    }
    .await
    .unwrap();
    assert_eq!(out, [6, 2, 4]);

    let report = progress.lock().unwrap().take().unwrap().report();
    let names: Vec<_> = report.stages.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(names, ["double", "even"]);
    assert_eq!((report.produced, report.consumed), (3, 3));
}

#[tokio::test]
async fn the_future_is_send_when_its_parts_are() {
    fn assert_send<F: Send>(future: F) -> F {
        future
    }
    let run = assert_send(pipeline! {
        from 0..3u32
        => scale(1, Counted(Arc::default()))
        => count
    });
    assert_eq!(tokio::spawn(run).await.unwrap(), Ok(3));
}

/// A pipeline inside a stage, whose `ctx` is a `&Context`: `in &ctx;` as anywhere else.
#[stage]
async fn parse_all(lines: Vec<String>) -> Result<Vec<u32>, AppError> {
    let records = pipeline! {
        in &ctx;
        from lines
        => parse
        => collect
    }
    .await?;
    Ok(records.into_iter().map(|record| record.id).collect())
}

#[tokio::test]
async fn in_takes_a_context_behind_any_reference_or_an_arc() {
    let ctx = Context::background();
    let lines = vec!["1:a".to_owned(), "2:b".to_owned()];
    assert_eq!(parse_all(&ctx, lines).await, Ok(vec![1, 2]));

    let shared = Arc::new(ctx.clone());
    let borrowed = &&ctx;
    let from_arc = pipeline! { in shared; error = Error; from 0..3u32 => count }.await;
    let from_refs = pipeline! { in borrowed; error = Error; from 0..3u32 => count }.await;
    assert_eq!((from_arc, from_refs), (Ok(3), Ok(3)));
}

/// Stages, sinks and stream sources passed through `macro_rules!` fragments arrive wrapped in
/// invisible groups.
macro_rules! run_through {
    ($source:expr, $stage:expr, $sink:expr) => {
        pipeline! { error = Error; from stream $source => $stage => $sink }
    };
}

#[stage]
async fn triple(n: u32) -> Result<u32, Error> {
    Ok(n * 3)
}

#[tokio::test]
async fn fragments_of_a_macro_rules_macro_are_stages_sinks_and_sources() {
    let sum = run_through!(
        futures::stream::iter(1..=3u32),
        triple,
        fold(0, |sum, n| sum + n)
    )
    .await;
    assert_eq!(sum, Ok(18));
    let closure = run_through!(
        futures::stream::iter(1..=2u32),
        |_ctx: Context, n: u32| async move { Ok::<_, Error>(n + 1) },
        collect
    )
    .await;
    assert_eq!(closure, Ok(vec![2, 3]));
    // The parentheses that mark a stream are not linted (`unused_parens` is denied here).
    let counted =
        pipeline! { error = Error; from stream (futures::stream::iter(0..4u32)) => count }.await;
    assert_eq!(counted, Ok(4));
}

/// Fails on items divisible by `every`; fails the first `flaky` calls whatever the item.
#[stage]
async fn picky(n: u32, every: u32, flaky: Arc<AtomicUsize>) -> Result<u32, AppError> {
    if flaky
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            left.checked_sub(1)
        })
        .is_ok()
    {
        return Err(AppError::Parse(format!("flaky on {n}")));
    }
    if n % every == 0 {
        return Err(AppError::Limit(n));
    }
    Ok(n)
}

#[tokio::test(start_paused = true)]
async fn policies_have_the_builders_names() {
    let flaky = Arc::new(AtomicUsize::new(2));
    let (result, report) = pipeline! {
        on_error = skip;
        ordered;
        report;
        from 1..=20_u32
        => picky(5, flaky.clone()) [
            workers = 4,
            retry = 2,
            retry_if = |err: &AppError| matches!(err, AppError::Parse(_)),
            backoff = ctxpipe::Backoff::fixed(Duration::from_millis(10)),
            timeout = Duration::from_secs(1),
        ]
        => |_ctx, n: u32| async move { Ok(n * 10) } [workers = 3, on_error = fail]
        => collect
    }
    .await;
    let expected: Vec<u32> = (1..=20).filter(|n| n % 5 != 0).map(|n| n * 10).collect();
    assert_eq!(
        result,
        Ok(expected),
        "ordered through both stages, failures skipped"
    );
    let picky = report.stage("picky").expect("the stage's report");
    assert_eq!((picky.retried, picky.skipped, picky.errors), (2, 4, 4));
    assert_eq!(report.failure, None);
}

#[tokio::test]
async fn a_stage_can_fail_the_run_under_a_skipping_header() {
    let (result, report) = pipeline! {
        on_error = skip;
        report;
        from 1..=10_u32
        => picky(100, Arc::new(AtomicUsize::new(0)))
        => |_ctx, n: u32| async move { if n == 7 { Err(AppError::Limit(n)) } else { Ok(n) } } [name = "seven", on_error = fail]
        => count
    }
    .await;
    assert_eq!(result, Err(AppError::Limit(7)));
    let failure = report.failure.expect("an item failed the run");
    assert_eq!(failure.to_string(), "stage `seven`, item #6");
}

#[tokio::test]
async fn failed_items_go_to_a_dead_letter_sink() {
    let rejected: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = {
        let rejected = rejected.clone();
        move |n: u32, err: ctxpipe::ItemError<AppError>| {
            rejected
                .lock()
                .unwrap()
                .push(format!("{n}: {:?} at {}", err.error(), err.location()));
            async { Ok(()) }
        }
    };
    let (result, report) = pipeline! {
        report;
        from 1..=10_u32
        => picky(4, Arc::new(AtomicUsize::new(0))) [on_error = dead_letter(sink)]
        => count
    }
    .await;
    assert_eq!(result, Ok(8));
    assert_eq!(report.stage("picky").unwrap().dead_lettered, 2);
    assert_eq!(
        *rejected.lock().unwrap(),
        [
            "4: Limit(4) at stage `picky`, item #3",
            "8: Limit(8) at stage `picky`, item #7"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn chunk_groups_items_by_size_or_time() {
    let sizes = pipeline! {
        from 0..10u32
        => chunk(4, within = Duration::from_millis(5))
        => |_ctx, rows: Vec<u32>| async move { Ok::<_, Error>(rows.len()) }
        => collect
    }
    .await
    .unwrap();
    assert_eq!(sizes, [4, 4, 2]);
    let chunks = pipeline! {
        from 0..3u32
        => chunk(2)
        => collect
    }
    .await;
    let chunks: Vec<Vec<u32>> = chunks.map_err(|err: Error| err).unwrap();
    assert_eq!(chunks, [vec![0, 1], vec![2]]);
}
