//! Multi-threaded stress: threads creating, dropping, waiting on and registering `after_func`s
//! on children of a shared parent while another thread cancels it, with invariants checked after
//! every round and every test guarded against hangs.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use ctxpipe::{stage, AfterFunc, CancelHandle, Context, Error};
use tokio::runtime::Runtime;

/// How long a whole test may run before it is called hung. Not a timing assertion: each test
/// normally finishes in a second or two.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// Runs `body` on its own thread and fails if it does not finish within [`HANG_GUARD`]
/// (a deadlock), passing its panic on otherwise.
fn with_hang_guard(name: &'static str, body: impl FnOnce() + Send + 'static) {
    let (finished, outcome) = mpsc::channel();
    let worker = thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            body();
            let _ = finished.send(());
        })
        .expect("spawning the test thread");
    match outcome.recv_timeout(HANG_GUARD) {
        Ok(()) => worker.join().expect("the test thread finished"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{name}: hung (deadlock?)"),
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("a two-worker runtime builds")
}

/// A small deterministic generator (xorshift), so that each round is reproducible.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One registered `after_func`: how often it ran, and what `stop()` said if it was called.
struct Tracked {
    call: AfterFunc,
    runs: Arc<AtomicU8>,
    stopped: Option<bool>,
}

/// Registers an `after_func` on `ctx` that counts its runs and reports to `ran`.
fn track(ctx: &Context, ran: &mpsc::Sender<()>) -> Tracked {
    let runs = Arc::new(AtomicU8::new(0));
    let counter = runs.clone();
    let ran = ran.clone();
    let call = ctx.after_func(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        let _ = ran.send(());
    });
    Tracked {
        call,
        runs,
        stopped: None,
    }
}

/// Checks, once every expected call has reported, that each ran exactly once unless `stop()`
/// returned true, and that a call whose `stop()` returned true never ran.
fn check_after_funcs(round: u64, tracked: &[Tracked], ran: &mpsc::Receiver<()>) {
    let expected = tracked.iter().filter(|t| t.stopped != Some(true)).count();
    for i in 0..expected {
        assert!(
            ran.recv_timeout(HANG_GUARD).is_ok(),
            "round {round}: only {i} of {expected} after_funcs ran"
        );
    }
    for (i, t) in tracked.iter().enumerate() {
        let runs = t.runs.load(Ordering::SeqCst);
        match t.stopped {
            Some(true) => assert_eq!(runs, 0, "round {round}, #{i}: stopped yet ran"),
            _ => assert_eq!(
                runs, 1,
                "round {round}, #{i}: not stopped, ran {runs} times"
            ),
        }
        assert!(!t.call.stop(), "round {round}, #{i}: stop() after the end");
    }
}

#[test]
fn cancelling_a_parent_while_threads_use_its_children() {
    with_hang_guard("cancel-while-busy", || {
        let rt = runtime();
        const ROUNDS: u64 = 200;
        const WORKERS: u64 = 3;
        for round in 0..ROUNDS {
            let (parent, cancel) = Context::background().with_cancel();
            // Every context made this round, for the check right after cancel() returns.
            let seen: Arc<Mutex<Vec<Context>>> = Arc::default();
            let cancelled = Arc::new(AtomicBool::new(false));
            let (ran_tx, ran_rx) = mpsc::channel();
            let start = Arc::new(Barrier::new(WORKERS as usize + 1));

            let workers: Vec<_> = (0..WORKERS)
                .map(|w| {
                    let parent = parent.clone();
                    let seen = seen.clone();
                    let cancelled = cancelled.clone();
                    let ran_tx = ran_tx.clone();
                    let start = start.clone();
                    let handle = rt.handle().clone();
                    thread::spawn(move || {
                        let _runtime = handle.enter();
                        let mut rng = Rng::new(round * 31 + w);
                        let mut kept: Vec<(Context, CancelHandle)> = Vec::new();
                        let mut tracked: Vec<Tracked> = Vec::new();
                        let mut waiters = Vec::new();
                        start.wait();
                        for _ in 0..200 {
                            match rng.below(8) {
                                0 | 1 => {
                                    let (child, h) = if rng.below(2) == 0 {
                                        parent.with_cancel()
                                    } else {
                                        parent.with_timeout(Duration::from_secs(3600))
                                    };
                                    seen.lock().expect("seen").push(child.clone());
                                    kept.push((child, h));
                                }
                                2 => {
                                    // Made and dropped at once.
                                    let (child, _) = parent.with_value(w).with_cancel();
                                    drop(child);
                                }
                                3 => {
                                    if let Some((child, _)) = kept.last() {
                                        let (leaf, leaf_cancel) = child.with_cancel();
                                        seen.lock().expect("seen").push(leaf.clone());
                                        if rng.below(2) == 0 {
                                            leaf_cancel.cancel();
                                            assert!(leaf.is_done(), "own cancel");
                                        }
                                    }
                                }
                                4 => {
                                    let target = match kept.last() {
                                        Some((child, _)) if rng.below(2) == 0 => child.clone(),
                                        _ => parent.clone(),
                                    };
                                    tracked.push(track(&target, &ran_tx));
                                    if rng.below(2) == 0 {
                                        // Dropped at once: the pending call keeps it alive.
                                        drop(target);
                                    }
                                }
                                5 => {
                                    let i = rng.below(tracked.len().max(1) as u64) as usize;
                                    if let Some(t) = tracked.get_mut(i) {
                                        if t.stopped.is_none() {
                                            t.stopped = Some(t.call.stop());
                                        }
                                    }
                                }
                                6 => {
                                    if let Some((child, _)) = kept.last() {
                                        waiters.push(handle.spawn(child.done()));
                                    }
                                }
                                _ => {
                                    if !kept.is_empty() {
                                        let i = rng.below(kept.len() as u64) as usize;
                                        if rng.below(2) == 0 {
                                            // An inner node (it may have leaves), racing the
                                            // parent's cancel.
                                            let (child, child_cancel) = &kept[i];
                                            child_cancel.cancel();
                                            assert!(child.is_done(), "own cancel");
                                        } else {
                                            kept.swap_remove(i);
                                        }
                                    }
                                }
                            }
                            if cancelled.load(Ordering::SeqCst) {
                                let (late, _) = parent.with_cancel();
                                assert!(
                                    late.is_done(),
                                    "a child of a cancelled parent is born done"
                                );
                            }
                        }
                        (kept, tracked, waiters)
                    })
                })
                .collect();

            let canceller = {
                let seen = seen.clone();
                let cancelled = cancelled.clone();
                let start = start.clone();
                let mut rng = Rng::new(round);
                thread::spawn(move || {
                    start.wait();
                    for _ in 0..rng.below(60_000) {
                        std::hint::spin_loop();
                    }
                    cancel.cancel();
                    cancelled.store(true, Ordering::SeqCst);
                    // Everything made before this point is done: attached ones by the cancel,
                    // later ones from birth.
                    let seen = seen.lock().expect("seen");
                    for (i, ctx) in seen.iter().enumerate() {
                        assert_eq!(
                            ctx.err(),
                            Some(Error::Canceled),
                            "round {round}: context #{i} open after cancel() returned"
                        );
                    }
                })
            };

            canceller.join().expect("the canceller's checks held");
            let mut tracked = Vec::new();
            let mut waiters = Vec::new();
            let mut kept = Vec::new();
            for worker in workers {
                let (k, t, w) = worker.join().expect("a worker's checks held");
                kept.extend(k);
                tracked.extend(t);
                waiters.extend(w);
            }
            for (ctx, _) in &kept {
                assert_eq!(
                    ctx.err(),
                    Some(Error::Canceled),
                    "round {round}: kept child"
                );
            }
            rt.block_on(async {
                for waiter in waiters {
                    waiter.await.expect("a done() waiter finished");
                }
            });
            check_after_funcs(round, &tracked, &ran_rx);
            assert_eq!(
                parent.__live_children(),
                0,
                "round {round}: children left after cancel"
            );
        }
    });
}

#[test]
fn churn_without_cancel_leaves_no_children() {
    with_hang_guard("churn", || {
        let rt = runtime();
        for round in 0..50u64 {
            let (parent, _cancel) = Context::background().with_cancel();
            let start = Arc::new(Barrier::new(4));
            let workers: Vec<_> = (0..4u64)
                .map(|w| {
                    let parent = parent.clone();
                    let start = start.clone();
                    let handle = rt.handle().clone();
                    thread::spawn(move || {
                        let _runtime = handle.enter();
                        let mut rng = Rng::new(round * 17 + w);
                        let mut kept = Vec::new();
                        let mut waiters = Vec::new();
                        start.wait();
                        for _ in 0..500 {
                            match rng.below(5) {
                                0 => kept.push(parent.with_cancel()),
                                1 => {
                                    // Only the grandchild is kept; it holds its parent.
                                    let (child, _) = parent.with_timeout(Duration::from_secs(60));
                                    kept.push(child.with_cancel());
                                }
                                2 => {
                                    let (child, _) = parent.with_cancel();
                                    let call = child.after_func(|| panic!("stopped, never run"));
                                    drop(child);
                                    assert!(call.stop(), "stopped while pending");
                                }
                                3 => {
                                    let (child, cancel) = parent.with_cancel();
                                    waiters.push(handle.spawn(child.done()));
                                    cancel.cancel();
                                    kept.push((child, cancel));
                                }
                                _ => {
                                    if !kept.is_empty() {
                                        let i = rng.below(kept.len() as u64) as usize;
                                        kept.swap_remove(i);
                                    }
                                }
                            }
                        }
                        drop(kept);
                        waiters
                    })
                })
                .collect();
            let mut waiters = Vec::new();
            for worker in workers {
                waiters.extend(worker.join().expect("a worker's checks held"));
            }
            rt.block_on(async {
                for waiter in waiters {
                    waiter.await.expect("a done() waiter finished");
                }
                for _ in 0..16 {
                    tokio::task::yield_now().await;
                }
            });
            assert_eq!(
                parent.__live_children(),
                0,
                "round {round}: every child was dropped, none may stay attached"
            );
            assert!(
                !parent.is_done(),
                "round {round}: nothing cancelled the parent"
            );
        }
    });
}

#[test]
fn simultaneous_cancels_of_a_tree_end_every_node() {
    with_hang_guard("simultaneous", || {
        for round in 0..50u64 {
            let (root, cancel) = Context::background().with_cancel();
            let mut nodes = vec![(root.clone(), cancel)];
            let mut i = 0;
            while nodes.len() < 200 {
                let parent = nodes[i].0.clone();
                for _ in 0..3 {
                    nodes.push(parent.with_cancel());
                }
                i += 1;
            }
            let start = Arc::new(Barrier::new(4));
            let threads: Vec<_> = (0..4)
                .map(|t| {
                    let handles: Vec<CancelHandle> = nodes
                        .iter()
                        .skip(t)
                        .step_by(4)
                        .map(|(_, h)| h.clone())
                        .collect();
                    let start = start.clone();
                    thread::spawn(move || {
                        start.wait();
                        for h in handles.iter().rev() {
                            h.cancel();
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().expect("a cancelling thread finished");
            }
            for (i, (ctx, _)) in nodes.iter().enumerate() {
                assert_eq!(ctx.err(), Some(Error::Canceled), "round {round}: node #{i}");
            }
            assert_eq!(root.__live_children(), 0, "round {round}");
        }
    });
}

#[test]
fn deadlines_racing_cancels_settle_on_one_error() {
    with_hang_guard("deadline-vs-cancel", || {
        let rt = runtime();
        for round in 0..40u64 {
            let contexts: Vec<_> = (0..200u64)
                .map(|i| {
                    let _runtime = rt.enter();
                    Context::background().with_timeout(Duration::from_micros(200 + i * 3))
                })
                .collect();
            let observed: Vec<Mutex<Option<Error>>> =
                contexts.iter().map(|_| Mutex::new(None)).collect();
            let observed = Arc::new(observed);
            let contexts = Arc::new(contexts);
            let start = Arc::new(Barrier::new(3));
            let observers: Vec<_> = (0..2u64)
                .map(|t| {
                    let contexts = contexts.clone();
                    let observed = observed.clone();
                    let start = start.clone();
                    thread::spawn(move || {
                        start.wait();
                        let mut rng = Rng::new(round * 7 + t);
                        for _ in 0..2000 {
                            let i = rng.below(contexts.len() as u64) as usize;
                            let (ctx, handle) = &contexts[i];
                            if rng.below(4) == 0 {
                                handle.cancel();
                            }
                            if let Some(err) = ctx.err() {
                                let cause = ctx.cause().map(|c| c.to_string());
                                assert_eq!(
                                    cause,
                                    Some(err.to_string()),
                                    "round {round}: cause agrees with err"
                                );
                                let mut first = observed[i].lock().expect("observed");
                                match &*first {
                                    Some(seen) => assert_eq!(
                                        *seen, err,
                                        "round {round}: #{i} changed its error"
                                    ),
                                    None => *first = Some(err),
                                }
                            }
                        }
                    })
                })
                .collect();
            start.wait();
            let waited = rt.block_on(async {
                let all = contexts.iter().map(|(ctx, _)| ctx.done());
                tokio::time::timeout(HANG_GUARD, futures::future::join_all(all)).await
            });
            assert!(waited.is_ok(), "round {round}: every context ended");
            for o in observers {
                o.join().expect("an observer's checks held");
            }
            for (i, (ctx, _)) in contexts.iter().enumerate() {
                let err = ctx.err().expect("every context ended");
                if let Some(first) = observed[i].lock().expect("observed").clone() {
                    assert_eq!(err, first, "round {round}: #{i} changed its error");
                }
            }
        }
    });
}

#[test]
fn many_tasks_waiting_on_one_context_all_wake() {
    with_hang_guard("many-waiters", || {
        let rt = runtime();
        for round in 0..50u64 {
            let (parent, cancel) = Context::background().with_cancel();
            let woken = Arc::new(AtomicUsize::new(0));
            let tasks: Vec<_> = (0..100)
                .map(|i| {
                    let ctx = if i % 2 == 0 {
                        parent.clone()
                    } else {
                        parent.with_cancel().0
                    };
                    let woken = woken.clone();
                    rt.spawn(async move {
                        let outcome = ctx.run(std::future::pending::<()>()).await;
                        assert_eq!(outcome, Err(Error::Canceled));
                        woken.fetch_add(1, Ordering::SeqCst);
                    })
                })
                .collect();
            let canceller = thread::spawn(move || cancel.cancel());
            rt.block_on(async {
                for task in tasks {
                    task.await.expect("a waiting task finished");
                }
            });
            canceller.join().expect("the canceller finished");
            assert_eq!(woken.load(Ordering::SeqCst), 100, "round {round}");
        }
    });
}

/// A narrower context handed to [`alternate`] (a plain `Context` parameter would be taken as
/// the stage's own).
struct Narrower(Context);

/// A stage whose awaits alternate between its own context and a narrower one it shadows `ctx`
/// with, each pending once, and which then waits for good on one of the two: only a cancel
/// can end it, and only if its registration followed the context in scope.
#[stage]
async fn alternate(
    inner: Narrower,
    rounds: u64,
    park_on_inner: bool,
    parked: Arc<AtomicUsize>,
) -> Result<(), Error> {
    for _ in 0..rounds {
        tokio::task::yield_now().await;
        let ctx = &inner.0;
        tokio::task::yield_now().await;
        let _ = ctx;
    }
    parked.fetch_add(1, Ordering::SeqCst);
    if park_on_inner {
        let ctx = &inner.0;
        std::future::pending::<()>().await;
        let _ = ctx;
    } else {
        std::future::pending::<()>().await;
    }
    Ok(())
}

#[test]
fn stage_checkpoints_moving_between_contexts_never_miss_a_cancel() {
    const STAGES: usize = 8;
    with_hang_guard("stage-checkpoints", || {
        let rt = runtime();
        let mut rng = Rng::new(7);
        for round in 0..300u64 {
            let (outer, cancel_outer) = Context::background().with_cancel();
            let (inner, cancel_inner) = outer.with_cancel();
            let parked = Arc::new(AtomicUsize::new(0));
            // A stage parked on `outer` ends only when `outer` is cancelled.
            let cancel_outer_side = rng.below(2) == 0;
            let stages: Vec<_> = (0..STAGES)
                .map(|_| {
                    let (outer, inner, parked) = (outer.clone(), inner.clone(), parked.clone());
                    let rounds = rng.below(4);
                    let park_on_inner = !cancel_outer_side || rng.below(2) == 0;
                    rt.spawn(async move {
                        alternate(&outer, Narrower(inner), rounds, park_on_inner, parked).await
                    })
                })
                .collect();
            // Half the rounds cancel once every stage is parked, half at any moment.
            let wait_for_parked = rng.below(2) == 0;
            let spins = rng.below(100);
            let waiting = parked.clone();
            let canceller = thread::spawn(move || {
                while wait_for_parked && waiting.load(Ordering::SeqCst) < STAGES {
                    thread::yield_now();
                }
                for _ in 0..spins {
                    thread::yield_now();
                }
                if cancel_outer_side {
                    cancel_outer.cancel();
                } else {
                    cancel_inner.cancel();
                }
                (cancel_outer, cancel_inner)
            });
            rt.block_on(async {
                for stage in stages {
                    let outcome = stage.await.expect("the stage did not panic");
                    assert_eq!(outcome, Err(Error::Canceled), "round {round}");
                }
            });
            drop(canceller.join().expect("the canceller finished"));
            assert_eq!(
                outer.__live_children(),
                0,
                "round {round}: cancelled children detach"
            );
        }
    });
}

#[test]
fn values_are_read_and_layered_from_many_threads() {
    #[derive(Debug, PartialEq)]
    struct Name(String);
    with_hang_guard("values", || {
        for round in 0..20u64 {
            let root = Context::background()
                .with_value(Name(format!("root {round}")))
                .with_value(round);
            let start = Arc::new(Barrier::new(4));
            let threads: Vec<_> = (0..4u64)
                .map(|t| {
                    let mut ctx = root.clone();
                    let start = start.clone();
                    thread::spawn(move || {
                        start.wait();
                        let mut rng = Rng::new(round * 13 + t);
                        let mut layers = vec![ctx.clone()];
                        for i in 0..2000u64 {
                            match rng.below(4) {
                                0 => ctx = ctx.with_value(vec![t, i]),
                                1 => ctx = ctx.with_cancel().0,
                                2 => {
                                    layers.push(ctx.clone());
                                    let back = rng.below(layers.len() as u64) as usize;
                                    ctx = layers.swap_remove(back);
                                }
                                _ => ctx = ctx.with_value(Name(format!("t{t} #{i}"))),
                            }
                            assert_eq!(ctx.value::<u64>(), Some(&round), "round {round}");
                            let name = ctx.value::<Name>().expect("a name is always there");
                            assert!(
                                name.0 == format!("root {round}")
                                    || name.0.starts_with(&format!("t{t} #")),
                                "round {round}: unexpected {name:?}"
                            );
                            if let Some(v) = ctx.value::<Vec<u64>>() {
                                assert_eq!(v.len(), 2, "round {round}");
                                assert_eq!(v[0], t, "round {round}: another thread's value");
                            }
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().expect("a reading thread's checks held");
            }
            assert_eq!(
                root.value::<Name>(),
                Some(&Name(format!("root {round}"))),
                "the root's values never changed"
            );
        }
    });
}

#[test]
fn cancel_returns_after_every_descendant_is_done_even_with_a_concurrent_inner_cancel() {
    with_hang_guard("nested-cancel", || {
        for round in 0..20 {
            let (root, root_cancel) = Context::background().with_cancel();
            let (inner, inner_cancel) = root.with_cancel();
            let leaves: Vec<_> = (0..100_000).map(|_| inner.with_cancel()).collect();
            let watched = inner.clone();
            let other = thread::spawn(move || inner_cancel.cancel());
            // Wait until the inner cancel has begun (the inner context reports done) ...
            while !watched.is_done() {
                std::hint::spin_loop();
            }
            // ... then cancel the root: when this returns, every descendant must be done.
            root_cancel.cancel();
            let open = leaves.iter().filter(|(leaf, _)| !leaf.is_done()).count();
            other.join().expect("the inner cancel finished");
            assert_eq!(
                open, 0,
                "round {round}: {open} descendants still open after the root's cancel() returned"
            );
        }
    });
}

/// Stage calls that keep their context past the call — moved into spawned tasks, sent to
/// another thread, cloned, held across awaits — while many items run on two threads: every
/// handle stays usable (the same context, its values, its cancellation) and, once all are
/// dropped, every context the pipeline made has left its parent.
#[test]
fn pipeline_calls_that_keep_their_context() {
    with_hang_guard("pipeline_calls_that_keep_their_context", || {
        let rt = runtime();
        let released = Arc::new(AtomicUsize::new(0));
        for round in 0..20u64 {
            // Every context of the run shares this value: it is dropped once they all are.
            let (parent, cancel) = Context::background()
                .with_value(Round(released.clone()))
                .with_cancel();
            let spawned = Arc::new(std::sync::Mutex::new(Vec::new()));
            let (kept_tx, kept_rx) = mpsc::channel::<Context>();
            // Holds the contexts it is sent on another thread, until the run is over.
            let keeper = thread::spawn(move || kept_rx.iter().collect::<Vec<Context>>());
            let tasks = spawned.clone();
            let pipeline = ctxpipe::Pipeline::<u64, ctxpipe::Error>::new(&parent, 0..2_000u64)
                .map(
                    ctxpipe::StageOptions::new("keep").workers(4),
                    move |ctx: Context, n: u64| {
                        let mut rng = Rng::new(round * 10_000 + n);
                        let kept_tx = kept_tx.clone();
                        let tasks = tasks.clone();
                        match rng.below(5) {
                            0 => drop(ctx),
                            1 => {
                                let clone = ctx.clone();
                                let task = tokio::spawn(async move {
                                    tokio::task::yield_now().await;
                                    assert!(clone.value::<Round>().is_some());
                                });
                                tasks.lock().unwrap().push(task);
                            }
                            2 => {
                                let task = tokio::spawn(async move {
                                    tokio::task::yield_now().await;
                                    assert!(ctx.value::<Round>().is_some());
                                    drop(ctx);
                                });
                                tasks.lock().unwrap().push(task);
                            }
                            3 => kept_tx.send(ctx).unwrap(),
                            _ => {
                                return boxed(async move {
                                    tokio::task::yield_now().await;
                                    assert!(ctx.value::<Round>().is_some());
                                    Ok(n)
                                });
                            }
                        }
                        boxed(async move { Ok(n) })
                    },
                )
                .count();
            let count = rt.block_on(pipeline).expect("no stage fails");
            assert_eq!(count, 2_000);
            let tasks: Vec<_> = std::mem::take(&mut *spawned.lock().unwrap());
            rt.block_on(async {
                for task in tasks {
                    task.await.expect("a spawned holder");
                }
            });
            let kept = keeper.join().expect("the keeping thread");
            for ctx in &kept {
                assert!(ctx.is_done(), "the run is over: its contexts are cancelled");
                assert!(ctx.value::<Round>().is_some());
            }
            thread::spawn(move || drop(kept)).join().unwrap();
            assert_eq!(
                parent.__live_children(),
                0,
                "round {round}: every context of the run left its parent"
            );
            drop((parent, cancel));
            assert_eq!(
                released.load(Ordering::SeqCst),
                round as usize + 1,
                "round {round}: every handle of the run was released"
            );
        }
    });
}

/// Counts its drops.
struct Round(Arc<AtomicUsize>);

impl Drop for Round {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Boxes the two async blocks of a stage into one future type.
fn boxed(
    fut: impl std::future::Future<Output = Result<u64, ctxpipe::Error>> + Send + 'static,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, ctxpipe::Error>> + Send>> {
    Box::pin(fut)
}
