//! The peak heap of the `chain_1m` chain of the `pipeline` bench (1,000,000 integers through 3
//! stages that each add one, summed at the end), per variant.
//!
//! Run with `cargo bench --bench pipeline_memory` (a few seconds). A counting global allocator
//! tracks the live heap bytes and their peak; each variant runs once to warm up (so that
//! buffers the runtime keeps between runs are not counted), then once measured: the figure is
//! the peak during that run minus the live bytes before it. It runs on the same runtime as the
//! `pipeline` bench (multi-thread, 2 worker threads).
//!
//! - `mpsc_batched`: 5 tasks over tokio `mpsc` channels of `Vec` batches of 128 items, 256 items
//!   per channel, as ctxpipe's queues hold. The baseline.
//! - `mpsc`: 5 tasks over tokio `mpsc` channels of 64 items, one item per message.
//! - `ctxpipe`: `Pipeline::new(..).map(..).map(..).map(..).fold(..)`.
//! - `ctxpipe_macro`: the same chain written with `pipeline!` over `#[stage]` functions.
//!
//! Target: `ctxpipe` and `ctxpipe_macro` within 1 MiB of `mpsc_batched`. The bench prints a
//! table and exits with an error if a variant's sum is wrong; it does not fail on the target.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{
    chain_sum, ctxpipe_chain, ctxpipe_macro_chain, mpsc_batched_chain, mpsc_chain_until, runtime,
    CHAIN_ITEMS,
};
use tokio::runtime::Runtime;

/// `System`, counting the bytes it has live and the most it has had live at once.
struct Counting;

/// The bytes allocated and not yet freed.
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// The most `LIVE` has been since the last [`reset_peak`].
static PEAK: AtomicUsize = AtomicUsize::new(0);

// The counters are `Relaxed`: each is one atomic variable that publishes no other memory, and
// read-modify-writes of one variable are totally ordered whatever their ordering, so every
// value `fetch_add` returns is one `LIVE` really held and `PEAK` is the largest of them. The
// reads in `peak_of` come after the runtime's tasks have ended, which orders them after every
// update those tasks made.
fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    LIVE.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments, so it upholds
// `GlobalAlloc`'s contract as `System` does; the counting around it does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is `System.alloc`'s.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc_zeroed` is `System.alloc_zeroed`'s.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc` is `System.dealloc`'s.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract for `realloc` is `System.realloc`'s.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Waits until every task of the last run has ended and been freed, so that none of its
/// memory is counted in, or freed during, the next.
fn settle(rt: &Runtime) {
    while rt.metrics().num_alive_tasks() > 0 {
        std::thread::yield_now();
    }
}

/// Runs `chain` once to warm up and once measured; returns its sum and the peak heap of the
/// measured run above the live bytes before it.
fn peak_of<F: Future<Output = u64>>(rt: &Runtime, chain: impl Fn() -> F) -> (u64, usize) {
    let _ = rt.block_on(chain());
    settle(rt);
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let sum = rt.block_on(chain());
    settle(rt);
    (sum, PEAK.load(Ordering::Relaxed) - before)
}

fn main() -> ExitCode {
    let rt = runtime();
    let items = CHAIN_ITEMS;
    let expected = chain_sum(items, 3);
    let baseline = peak_of(&rt, || mpsc_batched_chain(items, 3));
    let runs = [
        ("mpsc_batched", baseline),
        ("mpsc", peak_of(&rt, || mpsc_chain_until(items, None))),
        ("ctxpipe", peak_of(&rt, || ctxpipe_chain(items))),
        ("ctxpipe_macro", peak_of(&rt, || ctxpipe_macro_chain(items))),
    ];
    println!(
        "peak heap of chain_1m ({items} items, 3 stages), KiB above the live heap before the run"
    );
    println!(
        "{:<16}{:>12}{:>20}",
        "variant", "peak KiB", "vs mpsc_batched KiB"
    );
    let mut failed = false;
    for (name, (sum, peak)) in runs {
        let diff = (peak as f64 - baseline.1 as f64) / 1024.0;
        println!("{name:<16}{:>12.1}{diff:>+20.1}", peak as f64 / 1024.0);
        if sum != expected {
            eprintln!("{name}: sum {sum}, expected {expected}");
            failed = true;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
