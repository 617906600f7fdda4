//! Ports of the behaviours that Go's own `context` tests check (`src/context/x_test.go`,
//! `context_test.go`), one Rust test per Go test, named after it.
//!
//! Go's `otherContext` wrapper (a Context of a type the package does not know) becomes a value
//! layer here, the only way to wrap a context in ctxpipe. Real sleeps become paused tokio time.
//!
//! Not ported, because they check Go-only features:
//! - `TestAllocs` (Go allocation counts) and the `String()` checks inside `TestBackground`,
//!   `TestTODO`, `TestWithCancel`, `TestDeadline`, `TestTimeout`, `TestValues`, `testLayers`;
//! - `TestWithValueChecksKey` and `TestInvalidDerivedFail` (nil or non-comparable keys and nil
//!   parents cannot be written in Rust: values are keyed by type and a parent is a `&Context`);
//! - `TestCustomContextGoroutines` (goroutine counting; the task count is checked in
//!   `shared_timer.rs`) and the `TestCustomContextAfterFunc*` tests of `afterfunc_test.go`
//!   (custom `Context` implementations do not exist in ctxpipe);
//! - the `WithTimeoutCause` / `WithDeadlineCause` rows of `TestCause` (no such constructors);
//!   the "stacked" rows are kept with a plain `with_timeout`.

use std::error::Error as StdError;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use ctxpipe::{CancelHandle, Cause, Context, Error};
use futures::FutureExt;
use tokio::time::Instant;

/// Go's `shortDuration`.
const SHORT: Duration = Duration::from_millis(1);
/// Go's `veryLongDuration`.
const VERY_LONG: Duration = Duration::from_secs(1000 * 3600);
/// How long a test that runs on threads waits before calling a run hung (Go's `quiescent`).
const HANG_GUARD: Duration = Duration::from_secs(10);

/// A Go `fmt.Errorf(name)`: an error identified by its text.
#[derive(Debug)]
struct GoError(&'static str);

impl fmt::Display for GoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl StdError for GoError {}

/// Go's `select { case <-c.Done(): ... default: }`: whether `done()` is ready right now.
fn done_now(ctx: &Context) -> bool {
    ctx.done().now_or_never().is_some()
}

/// `true` if both causes hold the very same error (Go compares errors by identity).
fn same_error(a: &Cause, b: &Cause) -> bool {
    let a = a.as_error() as *const (dyn StdError + Send + Sync) as *const u8;
    let b = b.as_error() as *const (dyn StdError + Send + Sync) as *const u8;
    std::ptr::eq(a, b)
}

/// Go's `testDeadline`: `done()` resolves (on paused time) and `err()` is `DeadlineExceeded`.
async fn check_deadline(ctx: &Context, name: &str) {
    let waited = tokio::time::timeout(VERY_LONG, ctx.done()).await;
    assert!(waited.is_ok(), "{name}: context not timed out");
    assert_eq!(ctx.err(), Some(Error::DeadlineExceeded), "{name}: err()");
}

// TestBackground
#[test]
fn go_background() {
    let c = Context::background();
    assert!(!done_now(&c), "<-c.Done() should block");
    assert_eq!(c.err(), None);
}

// TestTODO
#[test]
fn go_todo() {
    let c = Context::todo();
    assert!(!done_now(&c), "<-c.Done() should block");
    assert_eq!(c.err(), None);
}

// TestWithCancel
#[test]
fn go_with_cancel() {
    let (c1, cancel) = Context::background().with_cancel();
    let o = c1.with_value("otherContext");
    let (c2, _c2_cancel) = o.with_cancel();
    let contexts = [&c1, &o, &c2];
    for (i, c) in contexts.iter().enumerate() {
        assert_eq!(c.err(), None, "c[{i}].err()");
        assert!(!done_now(c), "<-c[{i}].Done() should block");
    }
    cancel.cancel(); // Should propagate synchronously.
    for (i, c) in contexts.iter().enumerate() {
        assert!(done_now(c), "<-c[{i}].Done() blocked, but shouldn't have");
        assert_eq!(c.err(), Some(Error::Canceled), "c[{i}].err()");
    }
}

// TestParentFinishesChild
#[test]
fn go_parent_finishes_child() {
    // Context tree:
    // parent -> cancel_child
    // parent -> value_child -> timer_child
    let (parent, cancel) = Context::background().with_cancel();
    let (cancel_child, _stop_cancel_child) = parent.with_cancel();
    let value_child = parent.with_value("value");
    let (timer_child, _stop_timer_child) = value_child.with_timeout(VERY_LONG);

    for (name, ctx) in [
        ("parent", &parent),
        ("cancel_child", &cancel_child),
        ("timer_child", &timer_child),
        ("value_child", &value_child),
    ] {
        assert!(!done_now(ctx), "<-{name}.Done() should block");
    }
    assert_eq!(
        parent.__live_children(),
        2,
        "the parent's children are the two cancelable children"
    );

    cancel.cancel();
    assert_eq!(parent.__live_children(), 0, "cancel clears the children");

    for (name, ctx) in [
        ("parent", &parent),
        ("cancel_child", &cancel_child),
        ("value_child", &value_child),
        ("timer_child", &timer_child),
    ] {
        assert!(done_now(ctx), "<-{name}.Done() blocked, but shouldn't have");
        assert_eq!(ctx.err(), Some(Error::Canceled), "{name}.err()");
    }

    // A child of a cancelled parent is cancelled from the start.
    let precanceled_child = parent.with_value("value");
    assert!(done_now(&precanceled_child), "<-precanceledChild.Done()");
    assert_eq!(precanceled_child.err(), Some(Error::Canceled));
}

// TestChildFinishesFirst
#[test]
fn go_child_finishes_first() {
    let (cancelable, _stop) = Context::background().with_cancel();
    for (parent, attaches) in [(Context::background(), false), (cancelable, true)] {
        let (child, cancel) = parent.with_cancel();
        assert!(!done_now(&parent), "<-parent.Done() should block");
        assert!(!done_now(&child), "<-child.Done() should block");
        if attaches {
            assert_eq!(parent.__live_children(), 1, "the child is linked");
        } else {
            assert_eq!(parent.__live_children(), 0, "background keeps no children");
        }

        cancel.cancel();

        assert!(
            done_now(&child),
            "<-child.Done() blocked, but shouldn't have"
        );
        assert_eq!(child.err(), Some(Error::Canceled));
        assert!(!done_now(&parent), "<-parent.Done() should block");
        assert_eq!(parent.err(), None, "parent.err()");
        assert_eq!(
            parent.__live_children(),
            0,
            "the cancelled child is unlinked"
        );

        drop((child, cancel));
        assert_eq!(parent.__live_children(), 0, "dropping it changes nothing");
    }
}

// TestDeadline
#[tokio::test(start_paused = true)]
async fn go_deadline() {
    let (c, _) = Context::background().with_deadline(Instant::now() + SHORT);
    check_deadline(&c, "WithDeadline").await;

    let (c, _) = Context::background().with_deadline(Instant::now() + SHORT);
    let o = c.with_value("otherContext");
    check_deadline(&o, "WithDeadline+otherContext").await;

    let (c, _) = Context::background().with_deadline(Instant::now() + SHORT);
    let o = c.with_value("otherContext");
    let (c, _) = o.with_deadline(Instant::now() + VERY_LONG);
    check_deadline(&c, "WithDeadline+otherContext+WithDeadline").await;

    let (c, _) = Context::background().with_deadline(Instant::now() - SHORT);
    check_deadline(&c, "WithDeadline+inthepast").await;

    let (c, _) = Context::background().with_deadline(Instant::now());
    check_deadline(&c, "WithDeadline+now").await;
}

// TestTimeout
#[tokio::test(start_paused = true)]
async fn go_timeout() {
    let (c, _) = Context::background().with_timeout(SHORT);
    check_deadline(&c, "WithTimeout").await;

    let (c, _) = Context::background().with_timeout(SHORT);
    let o = c.with_value("otherContext");
    check_deadline(&o, "WithTimeout+otherContext").await;

    let (c, _) = Context::background().with_timeout(SHORT);
    let o = c.with_value("otherContext");
    let (c, _) = o.with_timeout(VERY_LONG);
    check_deadline(&c, "WithTimeout+otherContext+WithTimeout").await;
}

// TestCanceledTimeout
#[tokio::test(start_paused = true)]
async fn go_canceled_timeout() {
    let (c, _) = Context::background().with_timeout(Duration::from_secs(1));
    let o = c.with_value("otherContext");
    let (c, cancel) = o.with_timeout(VERY_LONG);
    cancel.cancel(); // Should propagate synchronously.
    assert!(done_now(&c), "<-c.Done() blocked, but shouldn't have");
    assert_eq!(c.err(), Some(Error::Canceled));
}

/// Go's `k1 = key1(1)`.
struct K1(Option<&'static str>);
/// Go's `k2 = key2(1)`: same int as k1, different type.
struct K2<const N: u8>(Option<&'static str>);
/// Go's `k3 = key2(3)`: the same Go type as k2 but another key, so another Rust type here.
type K3 = K2<3>;

/// Go's `check(c, nm, v1, v2, v3)`; an empty string means "no value".
#[track_caller]
fn check_values(c: &Context, nm: &str, v1: &str, v2: &str, v3: &str) {
    let found = |v: Option<Option<&'static str>>| v.flatten().unwrap_or("");
    assert_eq!(found(c.value::<K1>().map(|k| k.0)), v1, "{nm}.value(k1)");
    assert_eq!(found(c.value::<K2<1>>().map(|k| k.0)), v2, "{nm}.value(k2)");
    assert_eq!(found(c.value::<K3>().map(|k| k.0)), v3, "{nm}.value(k3)");
}

// TestValues
#[test]
fn go_values() {
    let c0 = Context::background();
    check_values(&c0, "c0", "", "", "");

    let c1 = Context::background().with_value(K1(Some("c1k1")));
    check_values(&c1, "c1", "c1k1", "", "");

    let c2 = c1.with_value(K2::<1>(Some("c2k2")));
    check_values(&c2, "c2", "c1k1", "c2k2", "");

    let c3 = c2.with_value(K2::<3>(Some("c3k3")));
    check_values(&c3, "c2", "c1k1", "c2k2", "c3k3");

    let c4 = c3.with_value(K1(None));
    check_values(&c4, "c4", "", "c2k2", "c3k3");

    let o0 = Context::background().with_value("otherContext");
    check_values(&o0, "o0", "", "", "");

    let o1 = Context::background()
        .with_value(K1(Some("c1k1")))
        .with_value("otherContext");
    check_values(&o1, "o1", "c1k1", "", "");

    let o2 = o1.with_value(K2::<1>(Some("o2k2")));
    check_values(&o2, "o2", "c1k1", "o2k2", "");

    let o3 = c4.with_value("otherContext");
    check_values(&o3, "o3", "", "c2k2", "c3k3");

    let o4 = o3.with_value(K2::<3>(None));
    check_values(&o4, "o4", "", "c2k2", "");
}

// TestSimultaneousCancels
#[test]
fn go_simultaneous_cancels() {
    let (root, cancel) = Context::background().with_cancel();
    let mut all: Vec<(Context, CancelHandle)> = vec![(root.clone(), cancel)];
    let mut queue = vec![root];
    // Create a tree of contexts, breadth first.
    while !queue.is_empty() && all.len() < 100 {
        let parent = queue.remove(0);
        for _ in 0..4 {
            let (ctx, cancel) = parent.with_cancel();
            all.push((ctx.clone(), cancel));
            queue.push(ctx);
        }
    }
    // Start all the cancels, in an order the scheduler picks.
    let (finished, cancels_done) = mpsc::channel();
    for (_, cancel) in &all {
        let cancel = cancel.clone();
        let finished = finished.clone();
        std::thread::spawn(move || {
            cancel.cancel();
            let _ = finished.send(());
        });
    }
    // Wait on all the contexts.
    for (i, (ctx, _)) in all.iter().enumerate() {
        let (tx, rx) = mpsc::channel();
        let done = ctx.done();
        std::thread::spawn(move || {
            futures::executor::block_on(done);
            let _ = tx.send(());
        });
        assert!(
            rx.recv_timeout(HANG_GUARD).is_ok(),
            "timed out waiting for <-ctx[{i}].Done()"
        );
    }
    // Wait for all the cancel functions to return.
    for _ in 0..all.len() {
        assert!(
            cancels_done.recv_timeout(HANG_GUARD).is_ok(),
            "timed out waiting for cancel functions"
        );
    }
}

// TestInterlockedCancels
#[test]
fn go_interlocked_cancels() {
    let (parent, cancel_parent) = Context::background().with_cancel();
    let (child, cancel_child) = parent.with_cancel();
    let parent_done = parent.done();
    let interlocked = std::thread::spawn(move || {
        futures::executor::block_on(parent_done);
        cancel_child.cancel();
    });
    cancel_parent.cancel();
    let (tx, rx) = mpsc::channel();
    let child_done = child.done();
    std::thread::spawn(move || {
        futures::executor::block_on(child_done);
        let _ = tx.send(());
    });
    assert!(
        rx.recv_timeout(HANG_GUARD).is_ok(),
        "timed out waiting for child.Done()"
    );
    interlocked.join().expect("the interlocked cancel finished");
}

/// A value type per slot, so that layers of `go_layers_*` can carry several distinct keys.
struct Layer<const N: usize>(usize);

/// Adds the value `id` under key type number `slot`.
fn with_layer_value(ctx: &Context, slot: usize, id: usize) -> Context {
    match slot {
        0 => ctx.with_value(Layer::<0>(id)),
        1 => ctx.with_value(Layer::<1>(id)),
        2 => ctx.with_value(Layer::<2>(id)),
        3 => ctx.with_value(Layer::<3>(id)),
        4 => ctx.with_value(Layer::<4>(id)),
        5 => ctx.with_value(Layer::<5>(id)),
        6 => ctx.with_value(Layer::<6>(id)),
        _ => ctx.with_value(Layer::<7>(id)),
    }
}

fn layer_value(ctx: &Context, slot: usize) -> Option<usize> {
    match slot {
        0 => ctx.value::<Layer<0>>().map(|v| v.0),
        1 => ctx.value::<Layer<1>>().map(|v| v.0),
        2 => ctx.value::<Layer<2>>().map(|v| v.0),
        3 => ctx.value::<Layer<3>>().map(|v| v.0),
        4 => ctx.value::<Layer<4>>().map(|v| v.0),
        5 => ctx.value::<Layer<5>>().map(|v| v.0),
        6 => ctx.value::<Layer<6>>().map(|v| v.0),
        _ => ctx.value::<Layer<7>>().map(|v| v.0),
    }
}

/// A small deterministic generator (xorshift), standing in for Go's `rand.New(seed)`.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Go's `testLayers`.
async fn test_layers(seed: u64, test_timeout: bool) {
    const MIN_LAYERS: usize = 30;
    let mut r = Rng(seed);
    let mut vals = [None; 8];
    let mut cancels = Vec::new();
    let mut num_timers = 0;
    let mut ctx = Context::background();
    let mut i = 0;
    while i < MIN_LAYERS
        || num_timers == 0
        || cancels.is_empty()
        || vals.iter().all(Option::is_none)
    {
        match r.below(3) {
            0 => {
                let slot = r.below(vals.len());
                ctx = with_layer_value(&ctx, slot, i);
                vals[slot] = Some(i);
            }
            1 => {
                let (child, cancel) = ctx.with_cancel();
                ctx = child;
                cancels.push(cancel);
            }
            _ => {
                let d = if test_timeout { SHORT } else { VERY_LONG };
                let (child, cancel) = ctx.with_timeout(d);
                ctx = child;
                cancels.push(cancel);
                num_timers += 1;
            }
        }
        i += 1;
    }
    let check_values = |when: &str| {
        for (slot, want) in vals.iter().enumerate() {
            assert_eq!(
                layer_value(&ctx, slot),
                *want,
                "seed={seed}: {when}: value of slot {slot}"
            );
        }
    };
    if !test_timeout {
        assert!(
            !done_now(&ctx),
            "seed={seed}: ctx should not be canceled yet"
        );
    }
    check_values("before cancel");
    if test_timeout {
        let waited = tokio::time::timeout(VERY_LONG, ctx.done()).await;
        assert!(waited.is_ok(), "seed={seed}: ctx should have timed out");
        check_values("after timeout");
    } else {
        cancels[r.below(cancels.len())].cancel();
        assert!(done_now(&ctx), "seed={seed}: ctx should be canceled");
        check_values("after cancel");
    }
}

// TestLayersCancel
#[tokio::test(start_paused = true)]
async fn go_layers_cancel() {
    for seed in 1..=20 {
        test_layers(seed * 0x9E37_79B9, false).await;
    }
}

// TestLayersTimeout
#[tokio::test(start_paused = true)]
async fn go_layers_timeout() {
    for seed in 1..=20 {
        test_layers(seed * 0x9E37_79B9, true).await;
    }
}

// TestCancelRemoves
#[tokio::test(start_paused = true)]
async fn go_cancel_removes() {
    let (ctx, _) = Context::background().with_cancel();
    assert_eq!(ctx.__live_children(), 0, "after creation");
    let (child, cancel) = ctx.with_cancel();
    assert_eq!(ctx.__live_children(), 1, "with WithCancel child");
    cancel.cancel();
    assert_eq!(ctx.__live_children(), 0, "after canceling WithCancel child");
    drop((child, cancel));

    let (ctx, _) = Context::background().with_cancel();
    assert_eq!(ctx.__live_children(), 0, "after creation");
    let (_child, cancel) = ctx.with_timeout(Duration::from_secs(60 * 60));
    assert_eq!(ctx.__live_children(), 1, "with WithTimeout child");
    cancel.cancel();
    assert_eq!(
        ctx.__live_children(),
        0,
        "after canceling WithTimeout child"
    );
}

// TestWithCancelCanceledParent
#[test]
fn go_with_cancel_canceled_parent() {
    let (parent, pcancel) = Context::background().with_cancel();
    let cause = Cause::new(GoError("Because!"));
    pcancel.cancel_with(cause.clone());

    let (c, _) = parent.with_cancel();
    assert!(done_now(&c), "child not done immediately upon construction");
    assert_eq!(c.err(), Some(Error::Canceled), "child not canceled");
    let got = c.cause().expect("a done child has a cause");
    assert!(same_error(&got, &cause), "child has wrong cause: {got}");
}

// TestWithCancelSimultaneouslyCanceledParent
#[test]
fn go_with_cancel_simultaneously_canceled_parent() {
    // Cancel the parent on another thread while a child is being created.
    for i in 0..100 {
        let (parent, pcancel) = Context::background().with_cancel();
        let cause = Cause::new(GoError("Because!"));
        let given = cause.clone();
        let canceller = std::thread::spawn(move || pcancel.cancel_with(given));

        let (c, _) = parent.with_cancel();
        let (tx, rx) = mpsc::channel();
        let done = c.done();
        std::thread::spawn(move || {
            futures::executor::block_on(done);
            let _ = tx.send(());
        });
        assert!(rx.recv_timeout(HANG_GUARD).is_ok(), "#{i}: <-c.Done() hung");
        assert_eq!(c.err(), Some(Error::Canceled), "#{i}: child not canceled");
        let got = c.cause().expect("a done child has a cause");
        assert!(
            same_error(&got, &cause),
            "#{i}: child has wrong cause: {got}"
        );
        canceller.join().expect("the canceller finished");
    }
}

// TestDeadlineExceededSupportsTimeout
#[test]
fn go_deadline_exceeded_supports_timeout() {
    assert!(
        Error::DeadlineExceeded.is_timeout(),
        "wrong value for timeout"
    );
    let io = std::io::Error::from(Error::DeadlineExceeded);
    assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
}

/// One row of Go's `TestCause` table: the context, then its expected `err()` and the text of
/// its expected `cause()`.
type CauseCase = (
    &'static str,
    fn() -> Context,
    Option<Error>,
    Option<&'static str>,
);

// TestCause
#[test]
fn go_cause() {
    const FOREVER: Duration = Duration::from_secs(1_000_000);
    let cases: Vec<CauseCase> = vec![
        ("Background", Context::background, None, None),
        ("TODO", Context::todo, None, None),
        (
            "WithCancel",
            || {
                let (ctx, cancel) = Context::background().with_cancel();
                cancel.cancel();
                ctx
            },
            Some(Error::Canceled),
            Some("context canceled"),
        ),
        (
            "WithCancelCause",
            || {
                let (ctx, cancel) = Context::background().with_cancel();
                cancel.cancel_with(GoError("parentCause"));
                ctx
            },
            Some(Error::Canceled),
            Some("parentCause"),
        ),
        (
            "WithCancelCause: parent cause before child",
            || {
                let (ctx, cancel_parent) = Context::background().with_cancel();
                let (ctx, cancel_child) = ctx.with_cancel();
                cancel_parent.cancel_with(GoError("parentCause"));
                cancel_child.cancel_with(GoError("childCause"));
                ctx
            },
            Some(Error::Canceled),
            Some("parentCause"),
        ),
        (
            "WithCancelCause: parent cause after child",
            || {
                let (ctx, cancel_parent) = Context::background().with_cancel();
                let (ctx, cancel_child) = ctx.with_cancel();
                cancel_child.cancel_with(GoError("childCause"));
                cancel_parent.cancel_with(GoError("parentCause"));
                ctx
            },
            Some(Error::Canceled),
            Some("childCause"),
        ),
        (
            "WithCancelCause: parent cause before nil",
            || {
                let (ctx, cancel_parent) = Context::background().with_cancel();
                let (ctx, cancel_child) = ctx.with_cancel();
                cancel_parent.cancel_with(GoError("parentCause"));
                cancel_child.cancel();
                ctx
            },
            Some(Error::Canceled),
            Some("parentCause"),
        ),
        (
            "WithCancelCause: parent cause after nil",
            || {
                let (ctx, cancel_parent) = Context::background().with_cancel();
                let (ctx, cancel_child) = ctx.with_cancel();
                cancel_child.cancel();
                cancel_parent.cancel_with(GoError("parentCause"));
                ctx
            },
            Some(Error::Canceled),
            Some("context canceled"),
        ),
        (
            "WithCancelCause: child cause after nil",
            || {
                let (ctx, cancel_parent) = Context::background().with_cancel();
                let (ctx, cancel_child) = ctx.with_cancel();
                cancel_parent.cancel();
                cancel_child.cancel_with(GoError("childCause"));
                ctx
            },
            Some(Error::Canceled),
            Some("context canceled"),
        ),
        (
            "WithCancelCause: child cause before nil",
            || {
                let (ctx, cancel_parent) = Context::background().with_cancel();
                let (ctx, cancel_child) = ctx.with_cancel();
                cancel_child.cancel_with(GoError("childCause"));
                cancel_parent.cancel();
                ctx
            },
            Some(Error::Canceled),
            Some("childCause"),
        ),
        (
            "WithTimeout",
            || {
                let (ctx, cancel) = Context::background().with_timeout(Duration::ZERO);
                cancel.cancel();
                ctx
            },
            Some(Error::DeadlineExceeded),
            Some("context deadline exceeded"),
        ),
        (
            "WithTimeout canceled",
            || {
                let (ctx, cancel) = Context::background().with_timeout(FOREVER);
                cancel.cancel();
                ctx
            },
            Some(Error::Canceled),
            Some("context canceled"),
        ),
        (
            "WithTimeout stacked",
            || {
                let (ctx, cancel) = Context::background().with_cancel();
                let (ctx, _) = ctx.with_timeout(Duration::ZERO);
                cancel.cancel_with(GoError("finishedEarly"));
                ctx
            },
            Some(Error::DeadlineExceeded),
            Some("context deadline exceeded"),
        ),
        (
            "WithTimeout stacked canceled",
            || {
                let (ctx, cancel) = Context::background().with_cancel();
                let (ctx, _) = ctx.with_timeout(FOREVER);
                cancel.cancel_with(GoError("finishedEarly"));
                ctx
            },
            Some(Error::Canceled),
            Some("finishedEarly"),
        ),
        (
            "WithoutCancel",
            || Context::background().without_cancel(),
            None,
            None,
        ),
        (
            "WithoutCancel canceled",
            || {
                let (ctx, cancel) = Context::background().with_cancel();
                let ctx = ctx.without_cancel();
                cancel.cancel_with(GoError("finishedEarly"));
                ctx
            },
            None,
            None,
        ),
        (
            "WithoutCancel timeout",
            || {
                let (ctx, cancel) = Context::background().with_timeout(Duration::ZERO);
                let ctx = ctx.without_cancel();
                cancel.cancel();
                ctx
            },
            None,
            None,
        ),
    ];
    for (name, make, err, cause) in cases {
        let ctx = make();
        assert_eq!(ctx.err(), err, "{name}: ctx.err()");
        let got = ctx.cause().map(|c| c.to_string());
        assert_eq!(got.as_deref(), cause, "{name}: cause(ctx)");
    }
}

// TestCauseRace
#[test]
fn go_cause_race() {
    let cause = Cause::new(GoError("TestCauseRace"));
    let (ctx, cancel) = Context::background().with_cancel();
    let given = cause.clone();
    let canceller = std::thread::spawn(move || cancel.cancel_with(given));
    let started = std::time::Instant::now();
    loop {
        // Poll cause() rather than waiting for done(), to check that the cause is published
        // together with the cancellation.
        if let Some(got) = ctx.cause() {
            assert!(same_error(&got, &cause), "cause() = {got}, want {cause}");
            break;
        }
        assert!(started.elapsed() < HANG_GUARD, "the cause never appeared");
        std::thread::yield_now();
    }
    canceller.join().expect("the canceller finished");
}

// TestWithoutCancel
#[test]
fn go_without_cancel() {
    let ctx = Context::background().with_value("value").without_cancel();
    assert_eq!(ctx.deadline(), None, "ctx.Deadline()");
    assert!(!done_now(&ctx), "ctx.Done() never closes");
    assert_eq!(ctx.err(), None, "ctx.Err()");
    assert_eq!(ctx.value::<&str>(), Some(&"value"), "ctx.Value(key)");
}

// TestCustomContextPropagation, with a value layer as the wrapping context.
#[test]
fn go_custom_context_propagation() {
    let cause = Cause::new(GoError("TestCustomContextPropagation"));
    let (ctx1, cancel1) = Context::background().with_cancel();
    let ctx2 = ctx1.with_value("customDoneContext");
    let (ctx3, _cancel3) = ctx2.with_cancel();

    cancel1.cancel_with(cause.clone());

    assert!(done_now(&ctx3), "<-ctx3.Done()");
    assert_eq!(ctx3.err(), Some(Error::Canceled), "child not canceled");
    let got = ctx3.cause().expect("a done child has a cause");
    assert!(same_error(&got, &cause), "child has wrong cause: {got}");
}

// TestCustomContextCause, with an ordinary cancellable context as the parent.
#[test]
fn go_custom_context_cause() {
    // Cancelling the parent: err and cause are Canceled.
    let (parent, cancel_parent) = Context::background().with_cancel();
    cancel_parent.cancel();
    assert_eq!(parent.err(), Some(Error::Canceled));
    let cause = parent.cause().map(|c| c.to_string());
    assert_eq!(cause.as_deref(), Some("context canceled"));

    // Cancelling a child with a cause leaves the parent alone.
    let (parent, cancel_parent) = Context::background().with_cancel();
    let (ctx, cause_func) = parent.with_cancel();
    let cause = Cause::new(GoError("TestCustomContextCause"));
    cause_func.cancel_with(cause.clone());
    assert_eq!(ctx.err(), Some(Error::Canceled));
    assert!(same_error(&ctx.cause().expect("done"), &cause));
    assert_eq!(parent.err(), None);
    assert!(parent.cause().is_none());

    // Cancelling the parent afterwards keeps the child's cause; the parent has none.
    cancel_parent.cancel();
    assert_eq!(ctx.err(), Some(Error::Canceled));
    assert!(same_error(&ctx.cause().expect("done"), &cause));
    assert_eq!(parent.err(), Some(Error::Canceled));
    let parent_cause = parent.cause().map(|c| c.to_string());
    assert_eq!(parent_cause.as_deref(), Some("context canceled"));

    // Cancelling the parent cancels a plain child with Canceled.
    let (parent, cancel_parent) = Context::background().with_cancel();
    let (ctx, _cancel) = parent.with_cancel();
    cancel_parent.cancel();
    assert_eq!(ctx.err(), Some(Error::Canceled));
    let cause = ctx.cause().map(|c| c.to_string());
    assert_eq!(cause.as_deref(), Some("context canceled"));
}

// TestAfterFuncCalledAfterCancel
#[tokio::test(start_paused = true)]
async fn go_after_func_called_after_cancel() {
    let (ctx, cancel) = Context::background().with_cancel();
    let (donec, mut called) = tokio::sync::oneshot::channel();
    let stop = ctx.after_func(move || {
        let _ = donec.send(());
    });
    let early = tokio::time::timeout(SHORT, &mut called).await;
    assert!(early.is_err(), "AfterFunc called before context is done");
    cancel.cancel();
    let waited = tokio::time::timeout(VERY_LONG, called).await;
    assert!(
        matches!(waited, Ok(Ok(()))),
        "AfterFunc not called after context is canceled"
    );
    assert!(!stop.stop(), "stop() = true, want false");
}

// TestAfterFuncCalledAfterTimeout
#[tokio::test(start_paused = true)]
async fn go_after_func_called_after_timeout() {
    let (ctx, _cancel) = Context::background().with_timeout(SHORT);
    let (donec, called) = tokio::sync::oneshot::channel();
    let _ = ctx.after_func(move || {
        let _ = donec.send(());
    });
    let waited = tokio::time::timeout(VERY_LONG, called).await;
    assert!(
        matches!(waited, Ok(Ok(()))),
        "AfterFunc not called after context is canceled"
    );
}

// TestAfterFuncCalledImmediately
#[tokio::test(start_paused = true)]
async fn go_after_func_called_immediately() {
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    let (donec, called) = tokio::sync::oneshot::channel();
    let _ = ctx.after_func(move || {
        let _ = donec.send(());
    });
    let waited = tokio::time::timeout(VERY_LONG, called).await;
    assert!(
        matches!(waited, Ok(Ok(()))),
        "AfterFunc not called for already-canceled context"
    );
}

// TestAfterFuncNotCalledAfterStop
#[tokio::test(start_paused = true)]
async fn go_after_func_not_called_after_stop() {
    let (ctx, cancel) = Context::background().with_cancel();
    let called = Arc::new(AtomicBool::new(false));
    let flag = called.clone();
    let stop = ctx.after_func(move || flag.store(true, Ordering::SeqCst));
    assert!(stop.stop(), "stop() = false, want true");
    cancel.cancel();
    tokio::time::sleep(SHORT).await;
    assert!(
        !called.load(Ordering::SeqCst),
        "AfterFunc called for already-canceled context"
    );
    assert!(!stop.stop(), "stop() = true, want false");
}

// TestAfterFuncCalledAsynchronously: cancelling does not wait for the AfterFunc to finish.
#[test]
fn go_after_func_called_asynchronously() {
    let (ctx, cancel) = Context::background().with_cancel();
    // A rendezvous channel: the send blocks until the receiver reads.
    let (donec, receiver) = mpsc::sync_channel::<()>(0);
    let stop = ctx.after_func(move || {
        let _ = donec.send(());
    });
    cancel.cancel();
    // After cancel returns, read and unblock the AfterFunc.
    assert!(
        receiver.recv_timeout(HANG_GUARD).is_ok(),
        "AfterFunc not called after context is canceled"
    );
    assert!(!stop.stop(), "stop() after the call started");
}
