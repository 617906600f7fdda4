//! Benchmarks of the context runtime, each next to the baseline it has to beat.
//!
//! Run with `cargo bench --bench context` (add a filter such as `-- cancel_` to run some groups).
//!
//! Every criterion group benches ctxpipe and its baseline side by side, so results read as ratios:
//!
//! - `is_done`, `is_done_contended`: checking a context against a bare `AtomicBool` load and
//!   tokio-util's `CancellationToken::is_cancelled`, alone and while another thread checks the
//!   same object in a loop.
//! - `child`: deriving a cancellable child and dropping it, against `child_token()`.
//! - `cancel_chain_1000`, `cancel_fanout_10000`: cancelling the root of a deep chain and of a
//!   wide tree, against the same trees of child tokens (building the tree is not measured).
//! - `value`, `with_value`: typed value lookup at depth 1 and 100, and adding an 11th value.
//! - `with_timeout`: a child with a deadline, against a child token plus a `tokio::time::Sleep`.
//! - `run`: a ready future raced against the context, against a plain `.await`,
//!   `run_until_cancelled` and a biased `tokio::select!`.
//!
//! Before the timing benches, a counting global allocator measures memory and prints a table:
//! heap bytes retained per live child, allocations per `with_cancel` / `with_timeout`, and the
//! cost of a `with_value` layer. The allocator only counts while a measurement is running (one
//! relaxed load per allocation otherwise), so it barely touches the timing benches.

use std::alloc::{GlobalAlloc, Layout, System};
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::ready;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, BenchmarkGroup, Criterion, Throughput};
use ctxpipe::{CancelHandle, Context, TaskScope};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------------------------------------
// Counting allocator
// ---------------------------------------------------------------------------------------------

/// `System`, counting live bytes and allocation calls while `COUNTING` is set.
struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
/// Bytes requested minus bytes freed while counting (wrapping: frees of older blocks may
/// take it below its starting value).
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
/// Calls to `alloc`, `alloc_zeroed` and `realloc` while counting.
static ALLOC_CALLS: AtomicUsize = AtomicUsize::new(0);

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

impl CountingAlloc {
    #[inline]
    fn grew(size: usize) {
        // Relaxed: the counters are only read on the thread that runs the measurement, after
        // the measured code, and nothing is ordered by them.
        if COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_add(size, Ordering::Relaxed);
            ALLOC_CALLS.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[inline]
    fn shrank(size: usize) {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_sub(size, Ordering::Relaxed);
        }
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the counting
// around it neither allocates nor touches the returned memory.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::grew(layout.size());
        // SAFETY: forwarded from the caller, who upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::grew(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        Self::shrank(layout.size());
        // SAFETY: `ptr` was allocated by `System` with `layout` (every block goes through here).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::shrank(layout.size());
        Self::grew(new_size);
        // SAFETY: as for `dealloc`; `new_size` is forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// What the heap did during one measurement.
#[derive(Clone, Copy)]
struct HeapDelta {
    /// Bytes still allocated at the end that were not at the start.
    bytes: isize,
    /// Allocation calls (`alloc`, `alloc_zeroed`, `realloc`).
    calls: usize,
}

/// Runs `f` with counting on and returns its output, which is dropped only after the counters
/// are read, so the delta is what the output retains (plus anything leaked).
fn heap_delta<T>(f: impl FnOnce() -> T) -> (T, HeapDelta) {
    let bytes = LIVE_BYTES.load(Ordering::Relaxed);
    let calls = ALLOC_CALLS.load(Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    let out = black_box(f());
    COUNTING.store(false, Ordering::Relaxed);
    let delta = HeapDelta {
        bytes: LIVE_BYTES.load(Ordering::Relaxed).wrapping_sub(bytes) as isize,
        calls: ALLOC_CALLS.load(Ordering::Relaxed) - calls,
    };
    (out, delta)
}

// ---------------------------------------------------------------------------------------------
// Shared fixtures
// ---------------------------------------------------------------------------------------------

/// A hundred distinct value types: `V<0>` .. `V<99>`.
struct V<const N: usize>(u64);

/// Calls `$callback!($($prefix)* 0 1 .. 99)`.
macro_rules! zero_to_99 {
    ($callback:ident!($($prefix:tt)*)) => {
        $callback!($($prefix)*
            0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19
            20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39
            40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59
            60 61 62 63 64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79
            80 81 82 83 84 85 86 87 88 89 90 91 92 93 94 95 96 97 98 99)
    };
}

/// `$ctx` with `V<n>(n)` added for every listed `n`, one `with_value` layer each.
macro_rules! stack_values {
    ($ctx:expr; $($n:literal)*) => {{
        let mut ctx: Context = $ctx;
        $( ctx = ctx.with_value(V::<$n>($n)); )*
        ctx
    }};
}

type AnyMap = HashMap<TypeId, Arc<dyn Any + Send + Sync>>;

/// A type-keyed map holding `V<n>(n)` for every listed `n`.
macro_rules! any_map {
    ($($n:literal)*) => {{
        let mut map = AnyMap::new();
        $( map.insert(TypeId::of::<V<$n>>(), Arc::new(V::<$n>($n))); )*
        map
    }};
}

fn current_thread_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("building a current-thread runtime")
}

/// An open, cancellable context: the parent every "child of an open parent" bench derives from.
fn open_parent() -> (Context, CancelHandle) {
    Context::background().with_cancel()
}

const TIMEOUT: Duration = Duration::from_secs(30);

fn configure<'a>(c: &'a mut Criterion, name: &str, samples: usize) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(samples);
    group
}

// ---------------------------------------------------------------------------------------------
// is_done
// ---------------------------------------------------------------------------------------------

/// Target: `is_done()` (and `err()`) on an open context ≤ 1.5x a bare `AtomicBool` load.
fn is_done(c: &mut Criterion) {
    let (ctx, _cancel) = open_parent();
    let token = CancellationToken::new();
    let flag = AtomicBool::new(false);
    let shared_flag = Arc::new(AtomicBool::new(false));

    let mut group = configure(c, "is_done", 50);
    group.bench_function("ctxpipe", |b| b.iter(|| black_box(&ctx).is_done()));
    group.bench_function("ctxpipe_err", |b| b.iter(|| black_box(&ctx).err()));
    group.bench_function("atomic_bool", |b| {
        b.iter(|| black_box(&flag).load(Ordering::Acquire))
    });
    // A flag behind a shared handle, as a context is: the cost of the pointer hop alone.
    group.bench_function("arc_atomic_bool", |b| {
        b.iter(|| black_box(&shared_flag).load(Ordering::Acquire))
    });
    group.bench_function("tokio_util", |b| {
        b.iter(|| black_box(&token).is_cancelled())
    });
    // Not a target: an open context with a deadline also reads the clock.
    let (with_deadline, _cancel) = ctx.with_timeout(TIMEOUT);
    group.bench_function("ctxpipe_with_deadline", |b| {
        b.iter(|| black_box(&with_deadline).is_done())
    });
    group.finish();
}

/// Benches `read(shared)` while a second thread calls it on the same object in a loop.
fn bench_contended<T: Sync, R: Sync>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    shared: &T,
    read: impl Fn(&T) -> R + Sync,
) {
    let stop = AtomicBool::new(false);
    let started = AtomicBool::new(false);
    thread::scope(|scope| {
        scope.spawn(|| {
            started.store(true, Ordering::Relaxed);
            while !stop.load(Ordering::Relaxed) {
                black_box(read(black_box(shared)));
            }
        });
        while !started.load(Ordering::Relaxed) {
            std::hint::spin_loop();
        }
        group.bench_function(id, |b| b.iter(|| read(black_box(shared))));
        stop.store(true, Ordering::Relaxed);
    });
}

/// Target: `is_done()` ≤ 1.5x an `AtomicBool` load also while another thread checks the same
/// context (reads must not write shared state, or the two threads fight over the cache line).
fn is_done_contended(c: &mut Criterion) {
    let (ctx, _cancel) = open_parent();
    let token = CancellationToken::new();
    let flag = AtomicBool::new(false);
    let shared_flag = Arc::new(AtomicBool::new(false));

    let mut group = configure(c, "is_done_contended", 50);
    bench_contended(&mut group, "ctxpipe", &ctx, Context::is_done);
    bench_contended(&mut group, "ctxpipe_err", &ctx, Context::err);
    bench_contended(&mut group, "atomic_bool", &flag, |f| {
        f.load(Ordering::Acquire)
    });
    bench_contended(&mut group, "arc_atomic_bool", &shared_flag, |f| {
        f.load(Ordering::Acquire)
    });
    bench_contended(
        &mut group,
        "tokio_util",
        &token,
        CancellationToken::is_cancelled,
    );
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// child
// ---------------------------------------------------------------------------------------------

/// Target: `with_cancel()` + drop of a child of an open parent ≤ 1.0x `child_token()` + drop.
fn child(c: &mut Criterion) {
    let (parent, _cancel) = open_parent();
    let parent_token = CancellationToken::new();
    let background = Context::background();

    let mut group = configure(c, "child", 50);
    group.bench_function("ctxpipe", |b| b.iter(|| black_box(&parent).with_cancel()));
    group.bench_function("tokio_util", |b| {
        b.iter(|| black_box(&parent_token).child_token())
    });
    // The same while the parent keeps another child: its child list stays allocated.
    let (sibling, _) = parent.with_cancel();
    let sibling_token = parent_token.child_token();
    group.bench_function("ctxpipe_with_sibling", |b| {
        b.iter(|| black_box(&parent).with_cancel())
    });
    group.bench_function("tokio_util_with_sibling", |b| {
        b.iter(|| black_box(&parent_token).child_token())
    });
    drop((sibling, sibling_token));
    // A child of background attaches to nothing; its baseline is a fresh root token.
    group.bench_function("ctxpipe_from_background", |b| {
        b.iter(|| black_box(&background).with_cancel())
    });
    group.bench_function("tokio_util_new", |b| b.iter(CancellationToken::new));
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// cancel_chain_1000, cancel_fanout_10000
// ---------------------------------------------------------------------------------------------

const CHAIN_DEPTH: usize = 1000;
const FANOUT: usize = 10_000;

/// Times only `cancel` over `iters` freshly built trees; building and dropping are not timed.
fn time_cancel<T>(iters: u64, build: impl Fn() -> T, cancel: impl Fn(&T)) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let tree = build();
        let start = Instant::now();
        cancel(black_box(&tree));
        total += start.elapsed();
        drop(tree);
    }
    total
}

/// `CHAIN_DEPTH` contexts, each the child of the one before, under a cancellable root.
fn ctx_chain() -> (CancelHandle, Vec<Context>) {
    let (root, cancel) = open_parent();
    let mut chain = Vec::with_capacity(CHAIN_DEPTH + 1);
    chain.push(root);
    for _ in 0..CHAIN_DEPTH {
        let next = chain.last().expect("starts with the root").with_cancel().0;
        chain.push(next);
    }
    (cancel, chain)
}

fn token_chain() -> Vec<CancellationToken> {
    let mut chain = Vec::with_capacity(CHAIN_DEPTH + 1);
    chain.push(CancellationToken::new());
    for _ in 0..CHAIN_DEPTH {
        let next = chain.last().expect("starts with the root").child_token();
        chain.push(next);
    }
    chain
}

fn ctx_fanout() -> (CancelHandle, Vec<Context>) {
    let (root, cancel) = open_parent();
    let children = (0..FANOUT).map(|_| root.with_cancel().0).collect();
    (cancel, children)
}

fn token_fanout() -> (CancellationToken, Vec<CancellationToken>) {
    let root = CancellationToken::new();
    let children = (0..FANOUT).map(|_| root.child_token()).collect();
    (root, children)
}

/// Target: cancelling the root of a 1000-deep chain ≤ 1.0x tokio-util's chain of child tokens.
fn cancel_chain(c: &mut Criterion) {
    let (cancel, chain) = ctx_chain();
    cancel.cancel();
    assert!(
        chain.iter().all(Context::is_done),
        "the whole chain is cancelled"
    );

    let mut group = configure(c, "cancel_chain_1000", 20);
    group.bench_function("ctxpipe", |b| {
        b.iter_custom(|iters| time_cancel(iters, ctx_chain, |(cancel, _)| cancel.cancel()))
    });
    group.bench_function("tokio_util", |b| {
        b.iter_custom(|iters| time_cancel(iters, token_chain, |chain| chain[0].cancel()))
    });
    group.finish();
}

/// Target: cancelling a parent of 10,000 children ≤ 1.0x the same tree of child tokens.
fn cancel_fanout(c: &mut Criterion) {
    let (cancel, children) = ctx_fanout();
    cancel.cancel();
    assert!(
        children.iter().all(Context::is_done),
        "every child is cancelled"
    );

    let mut group = configure(c, "cancel_fanout_10000", 20);
    group.bench_function("ctxpipe", |b| {
        b.iter_custom(|iters| time_cancel(iters, ctx_fanout, |(cancel, _)| cancel.cancel()))
    });
    group.bench_function("tokio_util", |b| {
        b.iter_custom(|iters| time_cancel(iters, token_fanout, |(root, _)| root.cancel()))
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// value, with_value
// ---------------------------------------------------------------------------------------------

/// Targets: `value::<T>()` with 100 values stacked ≤ 15 ns and ≤ 1.5x with one value; the
/// cancel and deadline layers above the values change nothing.
fn value(c: &mut Criterion) {
    let one = Context::background().with_value(V::<0>(0));
    let hundred = zero_to_99!(stack_values!(Context::background();));
    let mut layered = hundred.clone();
    for layer in 0..10 {
        layered = if layer % 2 == 0 {
            layered.with_cancel().0
        } else {
            layered.with_timeout(TIMEOUT).0
        };
    }
    let map = zero_to_99!(any_map!());
    assert_eq!(hundred.value::<V<0>>().map(|v| v.0), Some(0));
    assert_eq!(layered.value::<V<99>>().map(|v| v.0), Some(99));

    let mut group = configure(c, "value", 50);
    group.bench_function("ctxpipe_1", |b| {
        b.iter(|| black_box(&one).value::<V<0>>().map(|v| v.0))
    });
    // The oldest of the hundred: the one a chain walk (Go) reaches last.
    group.bench_function("ctxpipe_100", |b| {
        b.iter(|| black_box(&hundred).value::<V<0>>().map(|v| v.0))
    });
    group.bench_function("ctxpipe_100_missing", |b| {
        b.iter(|| black_box(&hundred).value::<u32>().copied())
    });
    group.bench_function("ctxpipe_100_under_10_layers", |b| {
        b.iter(|| black_box(&layered).value::<V<0>>().map(|v| v.0))
    });
    // What a type-keyed extension map (`HashMap<TypeId, Arc<dyn Any>>`) costs for the same find.
    group.bench_function("std_hashmap_100", |b| {
        b.iter(|| {
            black_box(&map)
                .get(&TypeId::of::<V<0>>())
                .and_then(|v| v.downcast_ref::<V<0>>())
                .map(|v| v.0)
        })
    });
    group.finish();
}

/// Target: `with_value` on a context carrying 10 values (making the 11th layer + drop) ≤ 120 ns.
fn with_value(c: &mut Criterion) {
    let background = Context::background();
    let ten = stack_values!(Context::background(); 0 1 2 3 4 5 6 7 8 9);
    let ten_map = Arc::new(any_map!(0 1 2 3 4 5 6 7 8 9));

    let mut group = configure(c, "with_value", 50);
    group.bench_function("ctxpipe_at_10", |b| {
        b.iter(|| black_box(&ten).with_value(V::<10>(10)))
    });
    group.bench_function("ctxpipe_at_0", |b| {
        b.iter(|| black_box(&background).with_value(V::<10>(10)))
    });
    // Copy-on-write of a type-keyed map: clone it, insert, share it.
    group.bench_function("std_hashmap_clone_insert_at_10", |b| {
        b.iter(|| {
            let mut map = AnyMap::clone(black_box(&ten_map));
            map.insert(TypeId::of::<V<10>>(), Arc::new(V::<10>(10)));
            Arc::new(map)
        })
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// with_timeout
// ---------------------------------------------------------------------------------------------

/// Target: `with_timeout` spawns no task and allocates once (see the memory table); its
/// create + drop is compared with what users write today, a child token plus a boxed `Sleep`.
fn with_timeout(c: &mut Criterion) {
    let rt = current_thread_runtime();
    let _guard = rt.enter();
    let (parent, _cancel) = open_parent();
    let background = Context::background();
    let parent_token = CancellationToken::new();

    let mut group = configure(c, "with_timeout", 50);
    group.bench_function("ctxpipe", |b| {
        b.iter(|| black_box(&parent).with_timeout(TIMEOUT))
    });
    group.bench_function("ctxpipe_from_background", |b| {
        b.iter(|| black_box(&background).with_timeout(TIMEOUT))
    });
    group.bench_function("tokio_util_sleep", |b| {
        b.iter(|| {
            let child = black_box(&parent_token).child_token();
            let sleep = Box::pin(tokio::time::sleep(TIMEOUT));
            (child, sleep)
        })
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// run
// ---------------------------------------------------------------------------------------------

/// Futures awaited per iteration of the `run` group.
const RUN_BATCH: u64 = 1000;

/// Reference for the checkpoint behind every `#[stage]` await: `ctx.run(ready)` against a
/// plain `.await`, `run_until_cancelled` and a biased `select!` on `cancelled()`.
fn run(c: &mut Criterion) {
    let rt = current_thread_runtime();
    let (ctx, _cancel) = open_parent();
    let token = CancellationToken::new();
    let (ctx, token) = (&ctx, &token);

    let mut group = configure(c, "run", 50);
    group.throughput(Throughput::Elements(RUN_BATCH));
    group.bench_function("ctxpipe", |b| {
        b.to_async(&rt).iter(|| async move {
            for _ in 0..RUN_BATCH {
                black_box(ctx.run(ready(black_box(1u64))).await.ok());
            }
        })
    });
    group.bench_function("plain_await", |b| {
        b.to_async(&rt).iter(|| async move {
            for _ in 0..RUN_BATCH {
                black_box(ready(black_box(1u64)).await);
            }
        })
    });
    group.bench_function("tokio_util_run_until_cancelled", |b| {
        b.to_async(&rt).iter(|| async move {
            for _ in 0..RUN_BATCH {
                black_box(token.run_until_cancelled(ready(black_box(1u64))).await);
            }
        })
    });
    group.bench_function("tokio_select", |b| {
        b.to_async(&rt).iter(|| async move {
            for _ in 0..RUN_BATCH {
                let out = tokio::select! {
                    biased;
                    () = token.cancelled() => None,
                    v = ready(black_box(1u64)) => Some(v),
                };
                black_box(out);
            }
        })
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// Memory (printed once, not timed)
// ---------------------------------------------------------------------------------------------

const LIVE_CHILDREN: usize = 100_000;

/// Heap bytes and allocation calls per node, over `LIVE_CHILDREN` nodes kept alive at once.
fn per_live_child<T>(make: impl Fn() -> T) -> (f64, f64) {
    let mut kept = Vec::with_capacity(LIVE_CHILDREN);
    // Warms up any lazy state (the first child allocates its parent's child list).
    kept.push(make());
    let ((), delta) = heap_delta(|| {
        for _ in 1..LIVE_CHILDREN {
            kept.push(make());
        }
    });
    let n = (LIVE_CHILDREN - 1) as f64;
    (delta.bytes as f64 / n, delta.calls as f64 / n)
}

/// The heap cost of one call of `make`, at steady state (after a first call whose output stays
/// alive, so the parent already has a child list), keeping the output alive while counting.
fn one_call<T>(make: impl Fn() -> T) -> HeapDelta {
    let _first = make();
    heap_delta(make).1
}

/// Targets: heap bytes retained per live child ≤ tokio-util's per `child_token()`; one
/// allocation and no task per `with_timeout`. Printed once before the timing benches.
fn memory_report() {
    let rt = current_thread_runtime();
    let _guard = rt.enter();

    let (parent, _cancel) = open_parent();
    let parent_token = CancellationToken::new();
    let (ctx_bytes, ctx_calls) = per_live_child(|| parent.with_cancel());
    let (token_bytes, token_calls) = per_live_child(|| parent_token.child_token());

    let (parent, _cancel) = open_parent();
    let parent_token = CancellationToken::new();
    let tasks_before = rt.metrics().num_alive_tasks();
    let timeout = one_call(|| parent.with_timeout(TIMEOUT));
    let tasks_spawned = rt.metrics().num_alive_tasks() - tasks_before;
    let cancel = one_call(|| parent.with_cancel());
    let timeout_bg = one_call(|| Context::background().with_timeout(TIMEOUT));
    let (fresh, _cancel_fresh) = open_parent();
    let (_child, first_child) = heap_delta(|| fresh.with_cancel());
    let token_child = one_call(|| parent_token.child_token());
    let token_sleep = one_call(|| {
        (
            parent_token.child_token(),
            Box::pin(tokio::time::sleep(TIMEOUT)),
        )
    });
    let fresh_token = CancellationToken::new();
    let (_token_child, token_first_child) = heap_delta(|| fresh_token.child_token());

    let background = Context::background();
    let ten = stack_values!(Context::background(); 0 1 2 3 4 5 6 7 8 9);
    let value_at_0 = one_call(|| background.with_value(V::<10>(10)));
    let value_at_10 = one_call(|| ten.with_value(V::<10>(10)));
    let cancel_over_values = one_call(|| ten.with_cancel());

    let handle = std::mem::size_of::<Context>() + std::mem::size_of::<CancelHandle>();
    let token_handle = std::mem::size_of::<CancellationToken>();

    println!();
    println!("memory (requested heap bytes; one measurement, not timed)");
    println!("{:-<96}", "");
    println!("{:<62} {:>15} {:>17}", "", "ctxpipe", "tokio-util");
    println!("{:-<96}", "");
    let row = |what: &str, ours: String, theirs: String| {
        println!("{what:<62} {ours:>15} {theirs:>17}");
    };
    row(
        "retained heap bytes per live child (100,000 of one parent)",
        format!("{ctx_bytes:.1}"),
        format!("{token_bytes:.1}"),
    );
    row(
        "allocation calls per live child",
        format!("{ctx_calls:.2}"),
        format!("{token_calls:.2}"),
    );
    row(
        "inline size of the handles (Context + CancelHandle / token)",
        handle.to_string(),
        token_handle.to_string(),
    );
    let calls = |d: HeapDelta| format!("{} ({} B)", d.calls, d.bytes);
    row(
        "allocations: with_timeout on an open parent / token + Sleep",
        calls(timeout),
        calls(token_sleep),
    );
    row(
        "allocations: with_cancel on an open parent / child_token",
        calls(cancel),
        calls(token_child),
    );
    row(
        "allocations: first child of a fresh parent",
        calls(first_child),
        calls(token_first_child),
    );
    row(
        "allocations: with_timeout from background",
        calls(timeout_bg),
        "-".into(),
    );
    row(
        "tasks spawned by with_timeout",
        tasks_spawned.to_string(),
        "-".into(),
    );
    row(
        "with_value layer on a context with 0 values",
        calls(value_at_0),
        "-".into(),
    );
    row(
        "with_value layer on a context with 10 values",
        calls(value_at_10),
        "-".into(),
    );
    row(
        "with_cancel over 10 values (values are shared)",
        calls(cancel_over_values),
        "-".into(),
    );
    println!("{:-<96}", "");
    println!();
}

// ---------------------------------------------------------------------------------------------
// linked
// ---------------------------------------------------------------------------------------------

/// Target: a context linked to a second parent, created and dropped, ≤ 2x `with_cancel()` +
/// drop of a child of one open parent.
fn linked(c: &mut Criterion) {
    let (parent, _cancel) = open_parent();
    let (other, _other_cancel) = open_parent();
    let mut group = configure(c, "linked", 50);
    group.bench_function("with_cancel", |b| {
        b.iter(|| black_box(&parent).with_cancel())
    });
    group.bench_function("with_linked", |b| {
        b.iter(|| black_box(&parent).with_linked([black_box(&other)]))
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// scope
// ---------------------------------------------------------------------------------------------

/// Tasks spawned and joined per iteration of the `scope` group.
const SCOPE_TASKS: u32 = 1000;

/// Target: a [`TaskScope`] spawning and joining 1,000 trivial tasks (each under a child
/// context, results in spawn order) ≤ 1.1x what a user writes by hand: a `JoinSet` whose
/// tasks each get a child token, the first error cancelling the rest.
fn scope(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building a runtime");
    let mut group = configure(c, "scope_1000_tasks", 30);
    group.throughput(Throughput::Elements(u64::from(SCOPE_TASKS)));
    group.bench_function("ctxpipe_task_scope", |b| {
        b.to_async(&rt).iter(|| async {
            let mut scope = TaskScope::<u32, ctxpipe::Error>::new(&Context::background());
            for n in 0..SCOPE_TASKS {
                scope.spawn(move |ctx| async move { Ok(black_box(n) + u32::from(ctx.is_done())) });
            }
            let sum: u32 = scope.join().await.expect("no task fails").into_iter().sum();
            black_box(sum)
        })
    });
    group.bench_function("joinset_tokio_util", |b| {
        b.to_async(&rt).iter(|| async {
            let token = CancellationToken::new();
            let mut tasks = tokio::task::JoinSet::new();
            for n in 0..SCOPE_TASKS {
                let child = token.child_token();
                tasks.spawn(async move {
                    Ok::<_, ctxpipe::Error>((n, black_box(n) + u32::from(child.is_cancelled())))
                });
            }
            let mut results = vec![0; SCOPE_TASKS as usize];
            while let Some(joined) = tasks.join_next().await {
                match joined.expect("no task panics") {
                    Ok((n, value)) => results[n as usize] = value,
                    Err(_) => token.cancel(),
                }
            }
            black_box(results.into_iter().sum::<u32>())
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    is_done,
    is_done_contended,
    child,
    cancel_chain,
    cancel_fanout,
    value,
    with_value,
    with_timeout,
    run,
    linked,
    scope
);

fn main() {
    // `--list` prints bench names only; keep its output parseable.
    if !std::env::args().any(|arg| arg == "--list") {
        memory_report();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
