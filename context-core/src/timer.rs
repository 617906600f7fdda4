//! The shared deadline timer: at most one task per runtime, and only while someone waits.
//!
//! A context with a deadline costs no task and no timer entry when it is made. Its expiry is
//! noticed in two ways:
//!
//! - lazily: `is_done()`, `err()` and every checkpoint compare the deadline with tokio's clock, so
//!   code that polls the context sees it end on time without any timer;
//! - by this timer, when something must happen at that instant without anyone polling: a pending
//!   `done()` or `run()` future, or a pending `after_func`. The first waiter *arms* the deadline's
//!   owner node (once per node, see `Node::claim_timer`), which pushes `(deadline, Weak<node>)` on
//!   the heap of the current runtime's timer. At the deadline the timer cancels the owner with
//!   `DeadlineExceeded`, which wakes every waiter of every descendant.
//!
//! The timer of a runtime is one task, spawned when its heap gets its first entry and finished
//! when the heap is empty, so an idle runtime has none. Entries of contexts that ended early are
//! dropped as they come first (the task looks once a second, see `SWEEP`), so a task outlives
//! the last deadline anyone waits on by at most that. Its sleep runs on tokio's clock, so
//! `tokio::time::pause()` drives it. Outside any runtime, waiters use one shared background
//! thread that runs a small runtime of its own. The heap holds `Weak` references: a context that
//! is dropped before its deadline keeps only its allocation (not its children or values) until
//! the entry is popped.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use tokio::runtime::{self, Handle};
use tokio::sync::Notify;
use tokio::time::{self, Instant};

use crate::tree::Node;

/// The timers of all runtimes that currently have one, keyed by runtime id. An entry exists
/// exactly while its task runs (it removes the entry, under this lock, when its heap is empty).
static TIMERS: Mutex<Vec<RuntimeTimer>> = Mutex::new(Vec::new());

struct RuntimeTimer {
    runtime: runtime::Id,
    /// Tells a guard of an old task from the current one.
    task: u64,
    heap: BinaryHeap<Reverse<Entry>>,
    wake: Arc<Notify>,
}

struct Entry {
    at: Instant,
    seq: u64,
    node: Weak<Node>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Entry) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Entry) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

fn timers() -> MutexGuard<'static, Vec<RuntimeTimer>> {
    // Only heap and Vec operations run under this lock; a poison carries no meaning.
    TIMERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn next_serial() -> u64 {
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    SERIAL.fetch_add(1, Ordering::Relaxed)
}

/// Entries made useless (their node was cancelled or dropped) since the last prune.
static STALE: AtomicUsize = AtomicUsize::new(0);

/// Notes that `count` timer entries no longer matter (their node was cancelled or dropped).
/// Once they are half of all entries, the next timer operation drops them, so short-lived
/// requests with long timeouts do not pile up entries (and the memory of their nodes) until
/// their deadlines.
pub(crate) fn forget(count: usize) {
    if count > 0 {
        STALE.fetch_add(count, Ordering::Relaxed);
    }
}

/// How often a timer task looks at its earliest entry even when it is not due: it drops that
/// entry if it is stale, and ends once none is left. So no task outlives by more than this the
/// last deadline anyone waits on, without a wakeup per finished request.
const SWEEP: Duration = Duration::from_secs(1);

/// Whether `entry`'s node is gone or done. A node it upgrades is pushed on `looked_at`, to be
/// released after the registry lock (dropping the last handle of a node takes its parent's
/// lock).
fn is_stale(entry: &Entry, looked_at: &mut Vec<Arc<Node>>) -> bool {
    let Some(node) = entry.node.upgrade() else {
        return true;
    };
    let done = node.has_reason();
    looked_at.push(node);
    done
}

/// Drops the entries whose node is gone or done, if they are many; under the registry lock.
/// Returns the nodes it looked at, to be released after the lock (dropping the last handle of
/// a node takes its parent's lock).
#[must_use]
fn prune(timers: &mut [RuntimeTimer]) -> Vec<Arc<Node>> {
    let mut looked_at = Vec::new();
    let total: usize = timers.iter().map(|t| t.heap.len()).sum();
    if total < 64 || STALE.load(Ordering::Relaxed) * 2 < total {
        return looked_at;
    }
    STALE.store(0, Ordering::Relaxed);
    for timer in timers {
        timer
            .heap
            .retain(|Reverse(entry)| !is_stale(entry, &mut looked_at));
    }
    looked_at
}

/// Runtimes found to have no time driver: their deadlines go to the fallback timer.
static TIMELESS: Mutex<Vec<runtime::Id>> = Mutex::new(Vec::new());

/// Makes sure someone will cancel `node`'s deadline owner at the deadline, if it has one and no
/// timer holds it yet. Call it after registering a waiter.
pub(crate) fn arm(node: &Arc<Node>) {
    match Handle::try_current() {
        Ok(handle) if !is_timeless(handle.id()) => arm_on(node, &handle),
        _ => arm_on(node, fallback()),
    }
}

/// [`arm`] on `handle`'s timer.
fn arm_on(node: &Arc<Node>, handle: &Handle) {
    let Some((owner, at)) = node.claim_timer() else {
        return;
    };
    push(
        handle,
        Entry {
            at,
            seq: next_serial(),
            node: Arc::downgrade(&owner),
        },
    );
}

fn is_timeless(runtime: runtime::Id) -> bool {
    let timeless = TIMELESS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    timeless.contains(&runtime)
}

/// Adds `entry` to `handle`'s timer, starting its task if it has none.
fn push(handle: &Handle, entry: Entry) {
    let mut timers = timers();
    let pruned = prune(&mut timers);
    let started = match timers.iter_mut().find(|t| t.runtime == handle.id()) {
        Some(timer) => {
            let earliest = timer
                .heap
                .peek()
                .is_none_or(|Reverse(first)| entry.at < first.at);
            timer.heap.push(Reverse(entry));
            if earliest {
                timer.wake.notify_one();
            }
            None
        }
        None => {
            let task = next_serial();
            let wake = Arc::new(Notify::new());
            timers.push(RuntimeTimer {
                runtime: handle.id(),
                task,
                heap: BinaryHeap::from([Reverse(entry)]),
                wake: wake.clone(),
            });
            Some((task, wake))
        }
    };
    drop(timers);
    drop(pruned);
    if let Some((task, wake)) = started {
        // Made before the task runs, so it cleans up even if the task is dropped unpolled (its
        // runtime is shutting down). Not under the lock: that drop may happen inside `spawn`.
        let abandon = Abandon {
            runtime: handle.id(),
            task,
            finished: false,
        };
        handle.spawn(run(task, wake, abandon));
    }
}

/// The timer task of one runtime.
async fn run(task: u64, wake: Arc<Notify>, mut abandon: Abandon) {
    let mut pruned;
    loop {
        let (due, next) = {
            let mut timers = timers();
            pruned = prune(&mut timers);
            let Some(index) = timers.iter().position(|t| t.task == task) else {
                break;
            };
            let now = Instant::now();
            let heap = &mut timers[index].heap;
            let mut due = Vec::new();
            while heap.peek().is_some_and(|Reverse(first)| first.at <= now) {
                due.extend(heap.pop().map(|Reverse(entry)| entry.node));
            }
            // A stale entry must not keep the task sleeping (see `SWEEP`).
            while heap
                .peek()
                .is_some_and(|Reverse(first)| is_stale(first, &mut pruned))
            {
                heap.pop();
            }
            let next = heap.peek().map(|Reverse(first)| first.at);
            if next.is_none() {
                timers.swap_remove(index);
            }
            (due, next)
        };
        drop(pruned);
        let now = Instant::now();
        for node in due.iter().filter_map(Weak::upgrade) {
            node.expire(now);
        }
        let Some(next) = next else {
            break;
        };
        let wake_at = next.min(now + SWEEP);
        // A runtime built without `enable_time` panics here, once: its deadlines move to the
        // fallback timer, and so do later ones.
        let sleep = match std::panic::catch_unwind(|| time::sleep_until(wake_at)) {
            Ok(sleep) => sleep,
            Err(_) => {
                move_to_fallback(&mut abandon);
                break;
            }
        };
        tokio::select! {
            () = sleep => {}
            () = wake.notified() => {}
        }
    }
    abandon.finished = true;
}

/// Hands every entry of a runtime without time driver to the fallback timer.
fn move_to_fallback(abandon: &mut Abandon) {
    TIMELESS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(abandon.runtime);
    for Reverse(entry) in abandon.take().into_iter().flat_map(|timer| timer.heap) {
        push(fallback(), entry);
    }
}

/// Cleans up after a timer task that ends before its heap is empty: its runtime shut down (the
/// task was dropped, polled or not) or has no time driver.
struct Abandon {
    runtime: runtime::Id,
    task: u64,
    /// Set when the task ends normally, having removed its timer itself.
    finished: bool,
}

impl Abandon {
    /// Removes this task's timer from the registry.
    fn take(&mut self) -> Option<RuntimeTimer> {
        self.finished = true;
        let mut timers = timers();
        let index = timers
            .iter()
            .position(|t| t.runtime == self.runtime && t.task == self.task)?;
        Some(timers.swap_remove(index))
    }
}

impl Drop for Abandon {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Lets the next waiter of each pending node arm a timer again, on its own runtime. A
        // pending `after_func` has no next waiter: its deadline moves to the fallback timer.
        for Reverse(entry) in self.take().into_iter().flat_map(|timer| timer.heap) {
            if let Some(node) = entry.node.upgrade() {
                node.disarm_timer();
                if !node.has_reason() && node.has_pending_after_func() {
                    arm_on(&node, fallback());
                }
            }
        }
    }
}

/// A runtime for waiters outside any runtime, on one background thread started on first use.
fn fallback() -> &'static Handle {
    static FALLBACK: OnceLock<Handle> = OnceLock::new();
    FALLBACK.get_or_init(|| {
        let runtime = runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("building a current-thread runtime with only a timer does not fail");
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("ctxpipe-timer".into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .expect("spawning the ctxpipe timer thread");
        handle
    })
}
