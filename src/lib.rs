//! Go's `context` for tokio, without the boilerplate: a cancellation tree, deadlines that flow
//! downward, a request-scoped bag of typed values — and macros that thread them for you.
//!
//! ```
//! use std::time::Duration;
//! use ctxpipe::{Context, Error};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! #[derive(Debug, PartialEq)]
//! struct UserId(u64);
//!
//! let (ctx, cancel) = Context::background()
//!     .with_value(UserId(42))
//!     .with_timeout(Duration::from_secs(1));
//! assert_eq!(ctx.value::<UserId>(), Some(&UserId(42)));
//!
//! // A future raced against the context: the deadline wins here.
//! let answer = ctx.run(tokio::time::sleep(Duration::from_secs(60))).await;
//! assert_eq!(answer, Err(Error::DeadlineExceeded));
//! cancel.cancel(); // does nothing now: the first end wins
//! assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
//! # }
//! ```
#![warn(missing_docs, unreachable_pub)]
#![doc(test(attr(deny(warnings))))]

// The runtime's public API, listed so that nothing becomes API here by accident.
pub use context_core::{AfterFunc, CancelHandle, Cause, Context, CtxValue, DropGuard, Error};
pub use context_core::{Done, Run, TaskScope, Watch};
// The pipeline runtime that `pipeline!` expands to, and its options and reports.
pub use context_core::{
    Backoff, Bottleneck, BoxedSink, DeadLetter, DeadLetterSink, Drain, DrainOutcome, DrainTimeout,
    Drained, ItemError, KeyHash, Keying, Located, Location, NoDeadLetter, NoRetry, OnError,
    OrderedBy, Pipeline, PipelineStream, Progress, Rate, Report, RetryAll, RetryIf, RetryPolicy,
    Retrying, RunError, Source, SourceReport, StageOptions, StageReport, Timed, Timing, Unkeyed,
    Untimed, WithReport, DEFAULT_BATCH, DEFAULT_BUFFER,
};

/// Turns an `async fn` into a *stage*: a function that runs under a [`Context`], ends at its
/// next `.await` once that context is cancelled or past its deadline, and receives typed
/// context values as parameters.
///
/// ```
/// use std::time::Duration;
/// use ctxpipe::{ctx_value, stage, Context, Error};
///
/// #[ctx_value]
/// struct UserId(u64);
///
/// struct Db;
///
/// impl Db {
///     async fn name_of(&self, id: u64) -> String {
///         tokio::time::sleep(Duration::from_millis(100)).await;
///         format!("user {id}")
///     }
/// }
///
/// /// Greets the user of the request.
/// #[stage]
/// async fn greeting(#[ctx_value] user: &UserId, db: &Db) -> Result<String, Error> {
///     let name = db.name_of(user.0).await; // a checkpoint
///     Ok(format!("hello, {name}"))
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let ctx = Context::background().with_value(UserId(7));
/// // The context comes first; `#[ctx_value]` parameters are not passed, they are looked up.
/// assert_eq!(greeting(&ctx, &Db).await, Ok("hello, user 7".to_string()));
///
/// let (hurried, _cancel) = ctx.with_timeout(Duration::from_millis(10));
/// assert_eq!(greeting(&hurried, &Db).await, Err(Error::DeadlineExceeded));
///
/// let anonymous = Context::background();
/// assert!(matches!(
///     greeting(&anonymous, &Db).await,
///     Err(Error::MissingValue { type_name }) if type_name.ends_with("UserId")
/// ));
/// # }
/// ```
///
/// # The context parameter
///
/// The stage takes `ctx: &Context` as its first parameter (after `self`), visible in the
/// body as `ctx`: pass it on to the stages it calls, or derive children from it.
/// `#[stage(ctx = name)]` gives it another name. A function that already declares a `Context`
/// or `&Context` parameter, under any name, keeps it and gets no second one; its checkpoints
/// use that parameter (and then `ctx = name` is an error).
///
/// On entry, before any of the body runs, a context that is already done ends the stage with
/// its error; then the `#[ctx_value]` parameters are looked up, in declaration order.
///
/// # Checkpoints
///
/// Every `.await` of the function's own body — inside `match`, `if`, loops, `?` chains, nested
/// blocks, and the arguments of macros whose input is comma-separated expressions such as
/// `vec![..]`, `format!(..)` or `assert_eq!(..)` — races the awaited future against the context
/// in scope at that await, as [`Context::run`] does: the context is checked before the first
/// poll (one atomic load while it is open, nothing allocated), and when it ends first the
/// future is dropped and the stage returns `Err(Error::Canceled.into())` or
/// `Err(Error::DeadlineExceeded.into())`.
///
/// The context in scope is the one named `ctx` where the await is written, so shadowing it
/// narrows the checkpoints that follow:
///
/// ```
/// # use std::time::Duration;
/// # use ctxpipe::{stage, Context, Error};
/// #[stage]
/// async fn fetch_all(urls: &[&str]) -> Result<usize, Error> {
///     let mut fetched = 0;
///     for _url in urls {
///         // Each fetch gets at most a second, the whole stage no more than the caller's ctx.
///         let (ctx, _cancel) = ctx.with_timeout(Duration::from_secs(1));
///         tokio::time::sleep(Duration::from_millis(300)).await; // checks the narrower ctx
///         fetched += 1;
///     }
///     Ok(fetched)
/// }
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// # assert_eq!(fetch_all(&Context::background(), &["a", "b"]).await, Ok(2));
/// # }
/// ```
///
/// Awaits inside closures, `async` blocks and nested items are left alone: they belong to
/// another future or function, which can be a stage of its own.
///
/// # Loops that compute: `#[stage(loops)]`
///
/// A stage that computes without awaiting has no checkpoint to stop at. With `loops`, every
/// `for`, `while` and `loop` of its own body also checks the context in scope at the head of
/// each iteration, and returns its error the same way: one atomic load per iteration while
/// the context is open (plus a clock read, about 20 ns, under a deadline). Loops in closures,
/// `async` blocks and nested items are left alone, as their awaits are.
///
/// ```
/// # use ctxpipe::{stage, Context, Error};
/// #[stage(loops)]
/// async fn checksum(data: &[u8]) -> Result<u64, Error> {
///     let mut sum = 0u64;
///     for chunk in data.chunks(4096) {
///         // Stops here, between chunks, once the context is done.
///         sum = chunk.iter().fold(sum, |sum, &byte| sum.rotate_left(5) ^ u64::from(byte));
///     }
///     Ok(sum)
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (ctx, cancel) = Context::background().with_cancel();
/// assert!(checksum(&ctx, &[1, 2, 3]).await.is_ok());
/// cancel.cancel();
/// assert_eq!(checksum(&ctx, &[1, 2, 3]).await, Err(Error::Canceled));
/// # }
/// ```
///
/// # Opting out: `#[uninterruptible]`
///
/// An await that must finish once started (a commit, a cleanup) is marked where it is written,
/// on its statement or expression: every await inside it is a plain await.
///
/// ```
/// # use ctxpipe::{stage, Error};
/// # struct Tx;
/// # impl Tx { async fn commit(self) -> Result<(), Error> { Ok(()) } }
/// #[stage]
/// async fn save(tx: Tx) -> Result<(), Error> {
///     #[uninterruptible]
///     tx.commit().await?;
///     let answer = #[uninterruptible] std::future::ready(42).await;
///     # let _ = answer;
///     Ok(())
/// }
/// # let _ = save;
/// ```
///
/// It is an attribute because `#[stage]` recognises it from the syntax alone, at the await it
/// concerns: no import, no wrapper type, nothing that a rename could hide. Outside a stage it
/// does not compile, so it can never silently do nothing, and `#[stage]` reports it where it
/// would have no effect (on code without awaits, in closures and `async` blocks).
///
/// # Context values as parameters
///
/// A parameter marked `#[ctx_value]` is removed from the signature and taken from the context
/// on entry, by its type: `#[ctx_value] user: &UserId` ends the stage with
/// `Error::MissingValue { type_name }` (before any of the body runs) when the context has no
/// `UserId`, and `#[ctx_value] user: Option<&UserId>` is `None` instead. The type must
/// implement [`CtxValue`], usually through [`#[ctx_value]`](macro@ctx_value) on its
/// definition.
///
/// # The return type
///
/// A stage returns `Result<T, E>` with `E: From<ctxpipe::Error>`, written out or through an
/// alias such as `anyhow::Result<T>` or `std::io::Result<T>`; anything else is a compile error
/// at the return type. [`Error`] converts into `io::Error`, and `anyhow` and `thiserror`
/// (`#[from] ctxpipe::Error`) convert it too.
///
/// # Arguments
///
/// - `ctx = name`: the name of the inserted context parameter (default `ctx`).
/// - `crate = path`: where this crate is, for a dependency renamed in `Cargo.toml`
///   (`#[stage(crate = my_ctxpipe)]`).
/// - `loops`: every loop of the body also checks the context at each iteration (see
///   *Loops that compute* above).
///
/// # Shapes and attributes
///
/// Free functions, inherent methods (`&self`, `&mut self`, `self`, `self: Arc<Self>`) and
/// methods of trait impls (the trait declares the `ctx: &Context` parameter itself), with any
/// visibility, generics, lifetimes, `where` clauses and `impl Trait` parameters. An output that
/// borrows from the only input lifetime keeps doing so. Doc comments and other attributes stay
/// on the function; attribute macros that rewrite the body go below `#[stage]`, which then
/// expands first: `#[tracing::instrument(skip(ctx))]` sees `ctx` and the plain parameters (not
/// the `#[ctx_value]` ones, which are bound inside the body) and wraps the whole stage.
///
/// Panics are not caught. The stage's future is `Send` whenever the same function without
/// `#[stage]` would be.
///
/// # Limits
///
/// - Awaits inside macro calls whose input is not expressions, such as the branches of
///   `tokio::select!`, are not checkpoints; nor are awaits inside macros that quote their
///   input (`stringify!`, `assert!`, `debug_assert!`, `dbg!`, anyhow's `ensure!`), which would
///   otherwise print the checkpoint's code in place of yours.
/// - A checkpoint may borrow `ctx` (it does when the body could rebind the name), so do not
///   move `ctx` while awaits follow: to hand the context to a spawned task, clone it into
///   another name (`let task_ctx = ctx.clone(); tokio::spawn(async move { work(&task_ctx).await })`).
/// - `ctx.done().await` inside a stage is itself a checkpoint on `ctx`, so it returns
///   `Err(Canceled)` rather than running what follows; to clean up once the context ends,
///   mark that await `#[uninterruptible]`. Likewise `ctx.run(f).await` returns from the stage
///   when `ctx` ends, rather than handing back `run`'s `Err`.
/// - A stage written by a `macro_rules!` macro names its `ctx` with the hygiene of the
///   function's name: a body passed by the caller sees it when the name is passed too
///   (`async fn $name(..) $body`); otherwise pass the context's name in as well and use
///   `#[stage(ctx = $ctx)]`.
/// - A parameter whose type is a path ending in `Context` (without generic arguments) is taken
///   as the declared context, also another crate's (`opentelemetry::Context`, `tera::Context`):
///   give such a type another name (`use tera::Context as Template;`).
/// - `ctx` may be shadowed by a `Context` or anything that dereferences to one (a reference,
///   `Arc`, `Rc`, `Box`, a lock guard, a type of your own with `Deref<Target = Context>`);
///   shadowing it with anything else makes the awaits after it fail to compile (rustc says
///   "here `ctx` refers to a ..."): name the context otherwise with `ctx = name`.
///   A macro may shadow it too (`narrow!(ctx, ..)`), with one exception: a procedural macro
///   that binds `ctx` without being given the name, called unqualified under the name of a
///   macro of the standard library, `log`, `tracing` or tokio (an `info!` or `select!`
///   imported from elsewhere). Such a binding would go unseen, and the awaits after it would
///   keep checking the stage's own context.
/// - Methods of an `#[async_trait]` impl are rewritten by `#[async_trait]` first, into boxed
///   futures `#[stage]` cannot rewrite: use native `async fn` in traits instead.
/// - An output that borrows through a lifetime hidden in a path (`Ref<T>` for `Ref<'_, T>`)
///   must name that lifetime.
/// - On an error in the attribute or the function, the function is still emitted next to the
///   error, with the stage's signature, so that its callers keep compiling.
///
/// # Equivalent code not using the macro
///
/// The `greeting` stage above is this function (`examples/stage-expanded.rs` shows the
/// expansion itself):
///
/// ```
/// # use std::time::Duration;
/// use ctxpipe::{Context, CtxValue, Error};
///
/// struct UserId(u64);
/// impl CtxValue for UserId {}
/// # struct Db;
/// # impl Db {
/// #     async fn name_of(&self, id: u64) -> String {
/// #         tokio::time::sleep(Duration::from_millis(100)).await;
/// #         format!("user {id}")
/// #     }
/// # }
///
/// /// Greets the user of the request.
/// async fn greeting(ctx: &Context, db: &Db) -> Result<String, Error> {
///     if let Some(error) = ctx.err() {
///         return Err(error);
///     }
///     let Some(user) = ctx.value::<UserId>() else {
///         let type_name = std::any::type_name::<UserId>();
///         return Err(Error::MissingValue { type_name });
///     };
///     let name = match ctx.run(db.name_of(user.0)).await {
///         Ok(value) => value,
///         Err(error) => return Err(error),
///     };
///     Ok(format!("hello, {name}"))
/// }
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// # let ctx = Context::background().with_value(UserId(7));
/// # assert_eq!(greeting(&ctx, &Db).await, Ok("hello, user 7".to_string()));
/// # let (hurried, _cancel) = ctx.with_timeout(Duration::from_millis(10));
/// # assert_eq!(greeting(&hurried, &Db).await, Err(Error::DeadlineExceeded));
/// # }
/// ```
pub use context_macros::stage;

/// Declares a type as a context value: implements [`CtxValue`] for it and gives it the typed
/// accessor `Type::from_ctx(&ctx) -> Option<&Type>`.
///
/// ```
/// use ctxpipe::{ctx_value, stage, Context, Error};
///
/// #[ctx_value]
/// #[derive(Debug, PartialEq)]
/// pub struct Tenant {
///     pub name: String,
/// }
///
/// #[stage]
/// async fn bill(#[ctx_value] tenant: &Tenant, cents: u64) -> Result<String, Error> {
///     Ok(format!("{cents} cents to {}", tenant.name))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let ctx = Context::background().with_value(Tenant { name: "acme".into() });
/// assert_eq!(Tenant::from_ctx(&ctx).map(|t| t.name.as_str()), Some("acme"));
/// assert_eq!(bill(&ctx, 250).await, Ok("250 cents to acme".to_string()));
/// # }
/// ```
///
/// It goes on a struct, an enum or a union, before its `#[derive(..)]`s. A context value is
/// shared by every task that holds the context, so the type must be `Send + Sync + 'static`:
/// a field that is not `Send` or `Sync` is reported at that field, and lifetime parameters
/// are an error. Type parameters get `Send + Sync + 'static` bounds, as derives add theirs,
/// so `Wrapper<T>` is a context value for every such `T`.
///
/// On a parameter of a [`#[stage]`](macro@stage) function, `#[ctx_value]` takes that
/// parameter from the context instead (see there).
///
/// Arguments:
///
/// - `crate = path` names this crate when the dependency is renamed.
/// - `baggage = "key"` declares that the value crosses process boundaries: with the `tower`
///   feature, the layers of `ctxpipe::tower` carry it in the W3C `baggage` header under that
///   key (the type must also implement `FromStr` and `Display`). Values without it never leave
///   the process.
///
/// # Equivalent code not using the macro
///
/// ```
/// use ctxpipe::{Context, CtxValue};
///
/// #[derive(Debug, PartialEq)]
/// pub struct Tenant {
///     pub name: String,
/// }
///
/// impl CtxValue for Tenant {}
///
/// impl Tenant {
///     /// The `Tenant` carried by `ctx` or by its nearest ancestor that has one, if any.
///     pub fn from_ctx(ctx: &Context) -> Option<&Self> {
///         ctx.value::<Self>()
///     }
/// }
/// # let ctx = Context::background().with_value(Tenant { name: "acme".into() });
/// # assert_eq!(Tenant::from_ctx(&ctx).map(|t| t.name.as_str()), Some("acme"));
/// ```
pub use context_macros::ctx_value;

/// Wires stages into a concurrent [`Pipeline`] that runs under one context, and returns the
/// future of its sink: `from` a source, `=>` each stage, `=>` a sink.
///
/// ```
/// use std::sync::Arc;
/// use ctxpipe::{ctx_value, pipeline, stage, Context, Error};
///
/// #[derive(Debug, thiserror::Error)]
/// enum AppError {
///     #[error(transparent)]
///     Context(#[from] Error),
///     #[error("bad line: {0:?}")]
///     BadLine(String),
/// }
///
/// #[ctx_value]
/// struct Tenant(&'static str);
///
/// struct Record {
///     id: u32,
///     name: String,
/// }
///
/// #[derive(Debug, PartialEq)]
/// struct Enriched {
///     id: u32,
///     label: String,
/// }
///
/// struct Db {
///     hidden: Vec<u32>,
/// }
///
/// #[stage]
/// async fn parse(line: String) -> Result<Record, AppError> {
///     let (id, name) = line.split_once(':').ok_or_else(|| AppError::BadLine(line.clone()))?;
///     let id = id.parse().map_err(|_| AppError::BadLine(line.clone()))?;
///     Ok(Record { id, name: name.to_string() })
/// }
///
/// #[stage]
/// async fn enrich(
///     rec: Record,
///     #[ctx_value] tenant: &Tenant,
///     db: Arc<Db>,
/// ) -> Result<Option<Enriched>, AppError> {
///     tokio::task::yield_now().await; // a checkpoint, as a database call would be
///     if db.hidden.contains(&rec.id) {
///         return Ok(None); // dropped: `enrich` is a `filter` stage
///     }
///     Ok(Some(Enriched { id: rec.id, label: format!("{}/{}", tenant.0, rec.name) }))
/// }
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), AppError> {
/// let ctx = Context::background().with_value(Tenant("acme"));
/// let lines: Vec<String> = (1..=100).map(|id| format!("{id}:item{id}")).collect();
/// let db = Arc::new(Db { hidden: vec![2, 3] });
///
/// let out: Vec<Enriched> = pipeline! {
///     in &ctx;
///     from lines
///     => parse
///     => enrich(db.clone()) [filter, workers = 16, ordered, buffer = 256]
///     => collect
/// }
/// .await?;
///
/// assert_eq!(out.len(), 98);
/// assert_eq!(out[1], Enriched { id: 4, label: "acme/item4".to_string() });
///
/// // The first error ends the run and is what it returns.
/// let lines = vec!["1:a".to_string(), "oops".to_string(), "3:c".to_string()];
/// let err = pipeline! { in &ctx; from lines => parse => count }.await.unwrap_err();
/// assert_eq!(err.to_string(), r#"bad line: "oops""#);
/// # Ok(())
/// # }
/// ```
///
/// The pipeline runs as [`Pipeline`] documents: each stage reads a bounded queue with its own
/// workers (tokio tasks), the first error cancels every other stage and is what the future
/// returns, cancelling `ctx` stops everything promptly, a panic is resumed in the caller, and
/// when the future completes no task it started is alive (dropped midway, it aborts them all).
///
/// # Grammar
///
/// ```text
/// pipeline! {
///     in CONTEXT;                  // optional header lines, in any order, each at most once
///     error = TYPE;
///     on_error = POLICY;
///     ordered;
///     report;                      // or: located;
///     progress = CLOSURE;
///     drained_by = DRAIN;
///     crate = PATH;
///     from SOURCE, ..              // SOURCE = ITEMS | stream STREAM; several are merged
///     => STAGE [OPTION, ..]        // any number of stages; `[..]` is optional
///     => SINK
/// }
///
/// STAGE  = PATH | PATH(ARG, ..) | |ctx, item| async move { .. }
///        | chunk(N) | chunk(N, within = DURATION)     // no options
/// OPTION = workers = N | buffer = N | batch = N | ordered | reorder_window = N
///        | ordered_by = |item: &T| KEY
///        | on_error = POLICY | retry = N | retry_if = CLOSURE | backoff = BACKOFF
///        | timeout = DURATION | rate = N / UNIT | rate = RATE | burst = N
///        | name = NAME | filter | flat
/// UNIT   = s | min | h
/// POLICY = fail | skip | dead_letter(SINK)   // dead_letter only in a stage's options
/// SINK   = collect | count | for_each(F) | fold(INIT, F) | try_for_each(F) | stream
/// ```
///
/// Every expression is evaluated once, where the macro is: the context, the source and the
/// stages' extra arguments in the order written; then, as the pipeline is built, each stage's
/// options (its `name`, then its numbers); then the `progress` closure, which is called there
/// and then; and last the sink's arguments. Nothing runs until the returned future is first
/// polled.
///
/// # Header lines
///
/// | line | meaning | without it |
/// |---|---|---|
/// | `in CONTEXT;` | the pipeline runs under a child of this [`Context`] (a `Context` or anything that dereferences to one: a reference at any depth, an `Arc<Context>`; borrowed, not moved): stages see its values and its deadline, and cancelling it stops the pipeline, which returns [`Error::Canceled`] (or [`Error::DeadlineExceeded`]) converted into its error type | [`Context::background()`] |
/// | `error = TYPE;` | the pipeline's error type (see [below](#the-error-type)) | the first function stage's error type |
/// | `on_error = POLICY;` | what every stage does with a failed item unless it says otherwise: `fail` the run or `skip` the item (see [below](#failed-items)) | `fail` |
/// | `ordered;` | every stage keeps input order, so the sink gets the items in source order | each stage as its options say |
/// | `report;` | the future's output is `(result, report)`: the run's result and its [`Report`] (as [`Pipeline::with_report`]) | the result alone |
/// | `located;` | the future's error is a [`RunError`]: the run's error with the stage, item and attempt of the item that failed it (as [`Pipeline::located`]); not with `report;` or `=> stream` | the error alone |
/// | `progress = CLOSURE;` | called once, before anything runs, with the pipeline's [`Progress`]: a live view of its counters and, after the run, its [`Report`] | no progress handle |
/// | `drained_by = DRAIN;` | a [`Drain`] handle (borrowed) whose [`drain`](Drain::drain) stops the source and lets what is in flight finish within a budget (as [`Pipeline::drained_by`]) | only cancellation stops the run early |
/// | `crate = PATH;` | where ctxpipe is, for a dependency renamed in `Cargo.toml` | `::ctxpipe` |
///
/// # Source
///
/// `from ITEMS` takes any `IntoIterator` whose iterator is `Send + 'static` (as
/// [`Pipeline::new`]); `from stream STREAM` any `futures_core::Stream` that is
/// `Send + 'static` (as [`Pipeline::from_stream`]). Either is drained on a task of its own as
/// the first queue has room. Several, separated by commas (`from ids, stream events`), are
/// merged fairly, one item from each in turn (as [`Pipeline::merge`] with a [`Source`] each),
/// and the report counts each one's items and end.
///
/// # Stages
///
/// A stage is one of:
///
/// - **A function**, `f` or `f(ARG, ..)`: called as `f(&ctx, item, ARG, ..)` — the shape of a
///   [`#[stage]`](macro@stage) function, whose first parameter after the inserted context is
///   the item (any async function taking `&Context` first fits too). `ctx` is the pipeline's
///   context, so `#[ctx_value]` parameters are found in the caller's context. Each extra
///   argument is evaluated once, before the pipeline starts, and cloned for each call: in
///   `enrich(db.clone())` above, `db.clone()` runs once and every call gets a clone of that
///   `Arc`. Arguments are therefore `Clone + Send + Sync + 'static` (every worker shares them):
///   pass an `Arc`, not a reference.
/// - **A closure** `|ctx, item| async move { .. }`, which gets an owned [`Context`] (its future
///   can move it into spawned work) and returns `Result<_, E>` with the pipeline's error type
///   `E` exactly (`?` inside it converts, as in any function).
/// - **The chunk step** `chunk(N)` or `chunk(N, within = DURATION)`: not a function but
///   [`Pipeline::chunk`], which groups items into `Vec`s of at most `N`, in order; with
///   `within`, a chunk also leaves `DURATION` after its first item, full or not. It takes no
///   options. (A stage function of yours named `chunk` is written with its path,
///   `self::chunk(..)`.)
///
/// A stage's kind says what it returns; a macro sees no types, so it is an option:
///
/// | option | the stage returns | it emits | runtime method |
/// |---|---|---|---|
/// | (none) | `Result<U, E>` | one item per input | [`Pipeline::map`] |
/// | `filter` | `Result<Option<U>, E>` | the item, or nothing for `None` | [`Pipeline::filter_map`] |
/// | `flat` | `Result<impl IntoIterator<Item = U>, E>` | every item of the iterator | [`Pipeline::flat_map`] |
///
/// # Options
///
/// `[..]` after a stage sets its [`StageOptions`]:
///
/// | option | default | meaning |
/// |---|---|---|
/// | `workers = N` | 1 | `N` calls run at once, each worker a tokio task |
/// | `buffer = N` | [`DEFAULT_BUFFER`] | the stage's input queue holds at most `N` items (backpressure) |
/// | `batch = N` | [`DEFAULT_BATCH`] | a worker takes at most `N` queued items at once |
/// | `ordered` | off | outputs leave in input order, through a bounded reorder window |
/// | `reorder_window = N` | see [`StageOptions::ordered`] | ordered, with a window of `N` items |
/// | `on_error = POLICY` | the header's, else `fail` | `fail`: a failed item fails the run; `skip`: it is dropped and counted; `dead_letter(SINK)`: `SINK(item, err)` gets it, with an [`ItemError`] that says where it failed ([`StageOptions::dead_letter`]) |
/// | `retry = N` | 0 | a failed call is tried again up to `N` times, within the deadline ([`StageOptions::retry`]) |
/// | `retry_if = CLOSURE` | every error | `\|err: &E\| -> bool`: which errors are retried (with `retry`) |
/// | `backoff = BACKOFF` | [`Backoff::default`] | the waits between attempts, a [`Backoff`] (with `retry`) |
/// | `timeout = DURATION` | none | each call runs under a context that ends this long after it starts; a call past it fails with `DeadlineExceeded` ([`StageOptions::timeout`]) |
/// | `ordered_by = \|item: &T\| key` | off | the items with the same key leave in input order, while different keys run on different workers at once ([`StageOptions::ordered_by`]); not with `ordered`, which keeps every order |
/// | `rate = N / s` (or `/ min`, `/ h`), `rate = RATE` | none | calls start at most `N` per second (minute, hour), evenly spaced and shared by the workers; the wait is a checkpoint, reported as `throttled` ([`StageOptions::rate`], [`Rate`]) |
/// | `burst = N` | 1 | with `rate`: up to `N` calls start at once after a pause ([`Rate::burst`]) |
/// | `name = NAME` | the function's name; `"stage N"` for the `N`th stage if a closure | the stage's name in the [`Report`] (a string literal, or an expression of a type that converts into `Cow<'static, str>`) |
/// | `filter`, `flat` | map | the stage's kind (above) |
///
/// `N` is an integer literal, checked at compile time (at least 1, or for `retry` at least
/// 0), or an expression of type `usize` (`u32` for `retry`; 0 workers are taken as 1).
///
/// # Failed items
///
/// A stage that fails on one item need not end the run. `on_error = skip` drops the item and
/// counts it; `retry = N` calls again, after a [`Backoff`], only for errors `retry_if`
/// accepts, and only while the wait and one more attempt fit before the deadline; a retrying
/// stage's items are cloned for each attempt, so they must be `Clone`. `timeout = D` bounds
/// each call. With `report;` the run says what happened to whom:
///
/// ```
/// use std::time::Duration;
/// use ctxpipe::{pipeline, stage, Backoff, Context};
///
/// #[derive(Debug, thiserror::Error)]
/// enum ChargeError {
///     #[error(transparent)]
///     Context(#[from] ctxpipe::Error),
///     #[error("card declined")]
///     Declined,
///     #[error("gateway busy")]
///     Busy,
/// }
///
/// #[stage]
/// async fn charge(id: u32) -> Result<u32, ChargeError> {
///     tokio::time::sleep(Duration::from_millis(5)).await; // the gateway's round trip
///     match id % 10 {
///         3 => Err(ChargeError::Declined),
///         7 => Err(ChargeError::Busy),
///         _ => Ok(id),
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(30));
/// let (charged, report) = pipeline! {
///     in &ctx;
///     on_error = skip;
///     ordered;
///     report;
///     from 0..30_u32
///     => charge [
///         workers = 8,
///         retry = 2,
///         retry_if = |err: &ChargeError| matches!(err, ChargeError::Busy),
///         backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1)),
///         timeout = Duration::from_secs(2),
///     ]
///     => collect
/// }
/// .await;
/// let charged = charged.expect("failed items are skipped");
/// assert_eq!(charged.len(), 24);
/// let stage = report.stage("charge").unwrap();
/// // Declined once each (3, 13, 23); busy three times each (7, 17, 27).
/// assert_eq!((stage.skipped, stage.retried), (6, 6));
/// # }
/// ```
///
/// # Sinks
///
/// | sink | the future's output | |
/// |---|---|---|
/// | `collect` | `Result<Vec<T>, E>` | the items in the order they reach the sink |
/// | `count` | `Result<usize, E>` | how many items reach the sink |
/// | `for_each(f)` | `Result<(), E>` | `f(item)` for each item |
/// | `fold(init, f)` | `Result<A, E>` | `f(acc, item)` for each item, from `init` |
/// | `try_for_each(f)` | `Result<(), E>` | awaits `f(item)`, a `Result<(), E>`; an `Err` is the pipeline's error |
/// | `stream` | — | not a future: the macro returns a [`PipelineStream`] of `Result<T, E>`, which runs the pipeline as it is read (no `report;` with it) |
///
/// The sink runs in the returned future itself, so its function may borrow local state and
/// needs neither `Send` nor `'static`; the future is `Send` when its parts are.
///
/// # The error type
///
/// A pipeline has one error type `E`, which implements `From<ctxpipe::Error>` (see
/// [`Pipeline`]). Without `error = TYPE;` it is the error type of the first stage that is a
/// function: that stage's result passes through as it is, and every other function stage
/// converts its own error with `From`, as `?` does. So stages may have different error types,
/// and the usual `let out: Vec<_> = pipeline! { .. }.await?;` works: a caller's `?` only asks
/// for a conversion from `E`, it cannot name `E`, but the first stage does.
///
/// `error = TYPE;` names `E` instead, and then every function stage converts. It is needed
///
/// - when no stage is a function and the closures do not name the error type (rustc says
///   "type annotations needed"): `error = ctxpipe::Error;`, say;
/// - when the first function stage's error type is not the one to return, for example it
///   returns `ctxpipe::Error` and a later stage `AppError`: rustc says "this stage fails with
///   `AppError`, which the pipeline's error type `ctxpipe::Error` does not convert from" at
///   that later stage.
///
/// ```
/// use ctxpipe::{pipeline, Error, Progress};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// let mut progress: Option<Progress> = None;
/// let words = pipeline! {
///     error = Error;
///     progress = |p| progress = Some(p);
///     from ["a b", "c", "d e f"]
///     => |_ctx, line: &str| async move { Ok(line.split(' ').collect::<Vec<_>>()) } [flat]
///     => |_ctx, word: &str| async move { Ok((word != "c").then(|| word.to_uppercase())) }
///        [filter, name = "not c"]
///     => fold(String::new(), |all, word| all + &word)
/// }
/// .await?;
/// assert_eq!(words, "ABDEF");
///
/// let report = progress.unwrap().report();
/// assert_eq!(report.stage("not c").unwrap().filtered, 1);
/// # Ok(())
/// # }
/// ```
///
/// # Compile errors
///
/// Mistakes in the macro's own syntax — an unknown, duplicate or malformed option or header,
/// a missing `from` or sink, an unknown sink — are reported together, each at its tokens. Type
/// errors are rustc's, located at the stage they concern: a stage whose input type is not the
/// previous step's output reads "mismatched types: expected `String`, found `u32`" at the
/// stage's name, and a stage whose extra arguments do not fit reads as a call with the wrong
/// arguments.
///
/// # Limits
///
/// - A stage function is called with `&Context` first and the item second: a method with a
///   receiver, or a function taking an owned `Context`, joins through a closure.
/// - A `[..]` at the end of a step is always its options (a closure whose body ends in an
///   index expression needs braces around its body).
/// - `from stream` followed by an identifier, a literal or a parenthesized or braced
///   expression is a stream source; `from stream.iter()` is a variable named `stream`.
/// - When the stage's input type does not match, rustc may suggest a conversion method at the
///   stage's name (`=> shout.to_string()`): the conversion belongs in a stage of its own.
///
/// # Equivalent code not using the macro
///
/// The first example is this use of [`Pipeline`]:
///
/// ```
/// # use std::sync::Arc;
/// # use ctxpipe::{ctx_value, stage, Context, Error};
/// use ctxpipe::{Pipeline, StageOptions};
/// # #[derive(Debug, thiserror::Error)]
/// # enum AppError {
/// #     #[error(transparent)]
/// #     Context(#[from] Error),
/// #     #[error("bad line: {0:?}")]
/// #     BadLine(String),
/// # }
/// # #[ctx_value]
/// # struct Tenant(&'static str);
/// # struct Record { id: u32, name: String }
/// # #[derive(Debug, PartialEq)]
/// # struct Enriched { id: u32, label: String }
/// # struct Db { hidden: Vec<u32> }
/// # #[stage]
/// # async fn parse(line: String) -> Result<Record, AppError> {
/// #     let (id, name) = line.split_once(':').ok_or_else(|| AppError::BadLine(line.clone()))?;
/// #     let id = id.parse().map_err(|_| AppError::BadLine(line.clone()))?;
/// #     Ok(Record { id, name: name.to_string() })
/// # }
/// # #[stage]
/// # async fn enrich(
/// #     rec: Record,
/// #     #[ctx_value] tenant: &Tenant,
/// #     db: Arc<Db>,
/// # ) -> Result<Option<Enriched>, AppError> {
/// #     tokio::task::yield_now().await;
/// #     if db.hidden.contains(&rec.id) {
/// #         return Ok(None);
/// #     }
/// #     Ok(Some(Enriched { id: rec.id, label: format!("{}/{}", tenant.0, rec.name) }))
/// # }
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), AppError> {
/// # let ctx = Context::background().with_value(Tenant("acme"));
/// # let lines: Vec<String> = (1..=100).map(|id| format!("{id}:item{id}")).collect();
/// # let db = Arc::new(Db { hidden: vec![2, 3] });
/// let out: Vec<Enriched> = {
///     let db = db.clone(); // extra arguments: evaluated once
///     Pipeline::new(&ctx, lines)
///         // The first function stage's error type is the pipeline's.
///         .map("parse", |ctx: Context, line| async move { parse(&ctx, line).await })
///         .filter_map(
///             StageOptions::new("enrich").workers(16).buffer(256).ordered(),
///             move |ctx: Context, rec| {
///                 let db = db.clone(); // and cloned per call
///                 // Other stages convert theirs with `From`.
///                 async move { Ok(enrich(&ctx, rec, db).await?) }
///             },
///         )
///         .collect()
/// }
/// .await?;
/// # assert_eq!(out.len(), 98);
/// # assert_eq!(out[1], Enriched { id: 4, label: "acme/item4".to_string() });
/// # Ok(())
/// # }
/// ```
pub use context_macros::pipeline;

/// Not public API: the paths that code generated by the ctxpipe macros names. It may change in
/// any release.
#[doc(hidden)]
pub mod __private {
    use core::future::IntoFuture;

    pub use context_core::__private::{
        home_watch, watched, HomeWatch, Parent, StageContext, Watcher,
    };
    pub use context_core::{Checkpoint, Context, CtxValue, Error, Watch};

    /// The registration that a stage's checkpoints share (see [`Watch`]): made on entry, so a
    /// stage that awaits many pending futures registers with its context once.
    #[inline]
    pub fn watch(ctx: &Context) -> Watch {
        ctx.watch()
    }

    /// The checkpoint behind each `.await` of a stage: the future raced against `ctx`, which
    /// checks the context before every poll (one atomic load while it is open) and registers
    /// a waker only while `future` is pending, through `watch`, which moves to `ctx` first if
    /// it watched another context (the stage shadowed `ctx` with a narrower one).
    ///
    /// The future comes first: it is evaluated before `watch` is borrowed, so an await nested
    /// in it (`f(g().await).await`) has finished with `watch` by then.
    #[inline]
    pub fn checkpoint<'a, F: IntoFuture, C: StageContext + ?Sized>(
        future: F,
        ctx: &C,
        watch: &'a mut Watch,
    ) -> Checkpoint<'a, F::IntoFuture> {
        ctx.context().__checkpoint(watch, future)
    }

    /// The check at the head of each loop iteration of a `#[stage(loops)]` body: the
    /// context's error once it is done.
    #[inline]
    pub fn loop_check<C: StageContext + ?Sized>(ctx: &C) -> Option<Error> {
        ctx.context().err()
    }

    /// The identity call around each `#[stage]` checkpoint, `().__stage_await(..)`. Its
    /// receiver and parentheses carry the spans of the user's awaited expression and `.await`,
    /// so that the checkpoint as a whole spans the user's own tokens: lints about its value (an
    /// unused `Result`) point there, and the user's edition applies around it. The receiver is
    /// `()`, taken by value, so that nothing is kept across the await for the call.
    pub trait StageAwait {
        /// `value`, unchanged.
        fn __stage_await<T>(self, value: T) -> T;
    }

    impl StageAwait for () {
        #[inline(always)]
        fn __stage_await<T>(self, value: T) -> T {
            value
        }
    }

    /// The check on entering a stage: the context's error if it is already done.
    #[inline]
    pub fn entry(ctx: &Context) -> Option<Error> {
        ctx.err()
    }

    /// The return types a stage may have: `Result<T, E>` with `E: From<Error>`, also when
    /// written through an alias such as `anyhow::Result<T>` or `io::Result<T>`.
    #[diagnostic::on_unimplemented(
        message = "a stage must return `Result<T, E>` with `E: From<ctxpipe::Error>`, not `{Self}`",
        label = "expected `Result<T, E>` where `E: From<ctxpipe::Error>`",
        note = "a stage returns `Err(ctxpipe::Error::Canceled.into())` when its context ends \
                before an await completes; aliases such as `anyhow::Result<T>` and \
                `std::io::Result<T>` work too"
    )]
    pub trait StageReturn {
        /// The error type, `E`.
        type Error;
        /// `Err(error)`.
        fn from_error(error: Self::Error) -> Self;
    }

    impl<T, E> StageReturn for Result<T, E> {
        type Error = E;

        #[inline]
        fn from_error(error: E) -> Self {
            Err(error)
        }
    }

    /// The error types a stage may have: those that can hold an [`Error`]. A separate trait
    /// from [`StageReturn`] so that a wrong one is reported with this message, naming the
    /// error type, rather than as a bare unmet `From` bound.
    #[diagnostic::on_unimplemented(
        message = "a stage's error type must implement `From<ctxpipe::Error>`, and `{Self}` \
                   does not",
        label = "`{Self}` cannot hold the `ctxpipe::Error` a stage returns when its context ends",
        note = "use `ctxpipe::Error`, `anyhow::Error`, `std::io::Error`, or an error type of \
                your own that implements `From<ctxpipe::Error>` (with thiserror, a variant \
                `Context(#[from] ctxpipe::Error)`)"
    )]
    pub trait StageError {
        /// `E::from(error)`.
        fn from_context_error(error: Error) -> Self;
    }

    impl<E: From<Error>> StageError for E {
        #[inline]
        fn from_context_error(error: Error) -> Self {
            E::from(error)
        }
    }

    /// What a stage returns when its context ends or a value is missing. The generated call
    /// spans the stage's return type, so a wrong one is reported there, once.
    #[inline]
    pub fn stage_error<R: StageReturn>(error: Error) -> R
    where
        R::Error: StageError,
    {
        R::from_error(StageError::from_context_error(error))
    }

    /// The types a `#[ctx_value]` parameter may borrow: those implementing [`CtxValue`].
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is not a context value",
        label = "expected a type declared with `#[ctx_value]`",
        note = "declare it where it is defined: `#[ctx_value] struct {Self}`, or \
                `impl ctxpipe::CtxValue for {Self} {{}}`",
        note = "a type from another crate cannot be declared there: wrap it in a type of your \
                own, `#[ctx_value] struct MyValue(Inner);`"
    )]
    pub trait ValueParam {
        /// The value of this type in `ctx`.
        fn lookup(ctx: &Context) -> Option<&Self>;
    }

    impl<T: CtxValue> ValueParam for T {
        #[inline]
        fn lookup(ctx: &Context) -> Option<&T> {
            ctx.value::<T>()
        }
    }

    /// A `#[ctx_value]` parameter's value; the generated call spans the parameter's type.
    #[inline]
    pub fn value<T: ValueParam>(ctx: &Context) -> Option<&T> {
        T::lookup(ctx)
    }

    /// The error of a missing `#[ctx_value]` parameter of type `T`.
    #[cold]
    pub fn missing<T: ?Sized>() -> Error {
        Error::MissingValue {
            type_name: core::any::type_name::<T>(),
        }
    }

    /// What `#[ctx_value(baggage = "key")]` implements: the value crosses process boundaries.
    #[cfg(feature = "tower")]
    pub use context_tower::BaggageValue;

    /// Without the `tower` feature, `#[ctx_value(baggage = "key")]` asks for it, at the key.
    #[cfg(not(feature = "tower"))]
    pub trait BaggageValue: TowerFeature {
        /// The baggage key.
        const KEY: &'static str;
    }

    /// Implemented by nothing: names the missing feature in the error.
    #[cfg(not(feature = "tower"))]
    #[diagnostic::on_unimplemented(
        message = "`#[ctx_value(baggage = ..)]` needs the `tower` feature of ctxpipe",
        label = "values cross process boundaries through the `tower` layers",
        note = "enable it in Cargo.toml: `ctxpipe = {{ version = \"..\", features = [\"tower\"] }}`"
    )]
    pub trait TowerFeature {}

    /// The typed accessor that `#[ctx_value]` generates.
    #[inline]
    pub fn from_ctx<T: CtxValue>(ctx: &Context) -> Option<&T> {
        ctx.value::<T>()
    }

    /// Field types of a context value must be `Send`.
    #[diagnostic::on_unimplemented(
        message = "a context value must be `Send`, but its field type `{Self}` is not",
        label = "this field's type is not `Send`",
        note = "context values are shared between tasks and threads: use thread-safe field \
                types, such as `Arc` rather than `Rc`, and `Mutex` or atomics rather than \
                `RefCell` or `Cell`"
    )]
    pub trait FieldSend {}
    impl<T: ?Sized + Send> FieldSend for T {}

    /// Field types of a context value must be `Sync`.
    #[diagnostic::on_unimplemented(
        message = "a context value must be `Sync`, but its field type `{Self}` is not",
        label = "this field's type is not `Sync`",
        note = "context values are shared between tasks and threads: use thread-safe field \
                types, such as `Arc` rather than `Rc`, and `Mutex` or atomics rather than \
                `RefCell` or `Cell`"
    )]
    pub trait FieldSync {}
    impl<T: ?Sized + Sync> FieldSync for T {}

    /// Asserts that a field of a `#[ctx_value]` type is `Send`; spans the field's type.
    #[inline]
    pub fn assert_field_send<T: ?Sized + FieldSend>() {}

    /// Asserts that a field of a `#[ctx_value]` type is `Sync`; spans the field's type.
    #[inline]
    pub fn assert_field_sync<T: ?Sized + FieldSync>() {}

    /// Stands for a `#[ctx_value]` parameter in the function emitted next to a `#[stage]`
    /// error, so that its body still type-checks. Never runs: the crate does not compile.
    pub fn placeholder<T>() -> T {
        unreachable!("emitted only next to a compile error")
    }

    pub use context_core::{OnError, Pipeline, Progress, Rate, Source, StageOptions};

    /// The context of `in <context>;`; the generated call spans the user's expression.
    #[inline]
    pub fn parent<C: Parent + ?Sized>(ctx: &C) -> &Context {
        ctx.context()
    }

    /// The error types a `pipeline!` may have, given a stage that fails with `E`: those that
    /// convert from `E`. Written on the pipeline's error type rather than the stage's, so that
    /// rustc reports a wrong one with this message rather than as a bare unmet `From` bound.
    #[diagnostic::on_unimplemented(
        message = "this stage fails with `{E}`, which the pipeline's error type `{Self}` does \
                   not convert from",
        label = "fails with `{E}`, which does not convert into `{Self}`",
        note = "a pipeline's error type is its first stage's, unless its header names one: \
                write `error = {E};` before `from` if `{E}` converts from `ctxpipe::Error` and \
                from the other stages' error types, or name an error type that does"
    )]
    pub trait FromStageError<E> {
        /// `Self::from(error)`.
        fn from_stage_error(error: E) -> Self;
    }

    impl<E, P: From<E>> FromStageError<E> for P {
        #[inline]
        fn from_stage_error(error: E) -> P {
            P::from(error)
        }
    }

    /// A `pipeline!` stage's result with its error converted into the pipeline's, as `?`
    /// would; the generated call spans the stage's name, so a stage whose error does not fit
    /// is reported there.
    #[inline]
    pub fn stage_output<T, E, P>(result: Result<T, E>) -> Result<T, P>
    where
        P: FromStageError<E>,
    {
        result.map_err(P::from_stage_error)
    }

    /// `progress = f;` of `pipeline!`: calls `f` once with the pipeline's [`Progress`], before
    /// anything runs.
    #[inline]
    pub fn on_progress<T, E, F>(pipeline: &Pipeline<T, E>, f: F)
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
        F: FnOnce(Progress),
    {
        f(pipeline.progress());
    }
}

/// Tower layers that carry a context's deadline (`grpc-timeout`) and declared values (W3C
/// `baggage`) across services, for hyper, axum and tonic (the `tower` feature).
#[cfg(feature = "tower")]
pub use context_tower as tower;

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;

/// A stage in a crate on edition 2024: a checkpoint is the user's own expression, so it may
/// sit in a let chain (which the macro's own edition, 2021, would reject).
///
/// ```edition2024
/// use ctxpipe::{stage, Context, Error};
///
/// #[stage]
/// async fn sum_below(rx: &mut tokio::sync::mpsc::Receiver<u32>, limit: u32) -> Result<u32, Error> {
///     let mut sum = 0;
///     while let Some(x) = rx.recv().await
///         && x < limit
///     {
///         sum += x;
///     }
///     Ok(sum)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (tx, mut rx) = tokio::sync::mpsc::channel(4);
/// for x in [1, 2, 9, 3] {
///     tx.send(x).await.unwrap();
/// }
/// assert_eq!(sum_below(&Context::background(), &mut rx, 5).await, Ok(3));
/// # }
/// ```
#[cfg(doctest)]
struct StageInEdition2024;
