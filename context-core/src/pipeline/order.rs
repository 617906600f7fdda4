//! Keeping input order across several workers: a reorder window.
//!
//! Items are numbered as they leave the stage's input queue (channel invariant #2), so a batch
//! is a range `first..first + n`. A worker that finishes a batch hands it here. The worker
//! whose batch is the next one due becomes the emitter: it sends that batch downstream, then
//! every batch that was waiting for it, in order, and stops being the emitter when the next
//! batch due is still being worked on.
//!
//! # Invariants
//!
//! 1. At most one emitter at a time (`emitting`, under the lock), so batches reach the output
//!    channel one after another, in order.
//! 2. The window is a semaphore of item permits: a worker holds one permit per item it takes,
//!    from before it takes it until its batch has been sent downstream. So at most `window`
//!    items are between the input queue and the output channel.
//! 3. The batch due next is always held by a worker or waiting here, never blocked on permits
//!    (its permits were taken with it), so the window never deadlocks.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Semaphore;

use super::channel::{Closed, Sender};
use super::report::StageStats;
use crate::context::Context;

pub(crate) struct Reorder<U> {
    window: Semaphore,
    state: Mutex<State<U>>,
    output: Sender<U>,
    /// Counts the items of the batches dropped unsent when the run stops early.
    stats: Arc<StageStats>,
}

struct State<U> {
    /// Number of the first item of the batch due next.
    next: u64,
    /// Finished batches waiting for an earlier one: first item number → (inputs, outputs).
    waiting: BTreeMap<u64, (usize, Vec<U>)>,
    emitting: bool,
}

impl<U> Reorder<U> {
    pub(crate) fn new(window: usize, output: Sender<U>, stats: Arc<StageStats>) -> Reorder<U> {
        Reorder {
            window: Semaphore::new(window.clamp(1, Semaphore::MAX_PERMITS)),
            state: Mutex::new(State {
                next: 0,
                waiting: BTreeMap::new(),
                emitting: false,
            }),
            output,
            stats,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<U>> {
        // No user code runs under this lock (outputs are only moved), so a poisoned lock still
        // holds a consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for at least one permit and takes up to `max` (invariant #2).
    pub(crate) async fn reserve(&self, max: usize) -> usize {
        let Ok(permit) = self.window.acquire().await else {
            return 0; // never closed
        };
        permit.forget();
        let extra = max
            .saturating_sub(1)
            .min(self.window.available_permits())
            .min(u32::MAX as usize);
        match u32::try_from(extra).map(|n| self.window.try_acquire_many(n)) {
            Ok(Ok(more)) if extra > 0 => {
                more.forget();
                1 + extra
            }
            _ => 1,
        }
    }

    /// Gives back permits that were reserved but not used.
    pub(crate) fn release(&self, n: usize) {
        if n > 0 {
            self.window.add_permits(n);
        }
    }

    /// Hands over the outputs of the `inputs` items numbered from `first`; sends them and every
    /// batch waiting for them if they are due (invariant #1). `Err` if the context ended or the
    /// output is gone while sending.
    pub(crate) async fn deliver(
        &self,
        ctx: &Context,
        first: u64,
        inputs: usize,
        outputs: Vec<U>,
    ) -> Result<(), Closed> {
        {
            let mut state = self.lock();
            if state.emitting || first != state.next {
                state.waiting.insert(first, (inputs, outputs));
                return Ok(());
            }
            state.emitting = true;
        }
        let (mut inputs, mut outputs) = (inputs, outputs);
        loop {
            match ctx.run(self.output.send(&mut outputs)).await {
                Ok(Ok(())) => {}
                // The pipeline is ending: the emitter stays taken, nothing more is sent.
                Ok(Err(Closed)) | Err(_) => {
                    self.dropped(inputs);
                    return Err(Closed);
                }
            }
            self.release(inputs);
            let mut state = self.lock();
            state.next += inputs as u64;
            let next = state.next;
            match state.waiting.remove(&next) {
                Some(batch) => (inputs, outputs) = batch,
                None => {
                    state.emitting = false;
                    return Ok(());
                }
            }
        }
    }
}

impl<U> Reorder<U> {
    /// Counts `inputs` items dropped unsent.
    fn dropped(&self, inputs: usize) {
        // Relaxed: a statistic (see `StageStats`).
        self.stats
            .unfinished
            .fetch_add(inputs as u64, Ordering::Relaxed);
    }
}

impl<U> Drop for Reorder<U> {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        let waiting: usize = state.waiting.values().map(|(inputs, _)| inputs).sum();
        if waiting > 0 {
            self.dropped(waiting);
        }
    }
}
