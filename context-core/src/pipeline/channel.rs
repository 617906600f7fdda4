//! The bounded channel between two steps of a pipeline: items move in batches.
//!
//! One lock guards a queue of batches. A sender moves its whole batch (a `Vec`) into the queue
//! and takes back an empty one that a receiver left; a receiver takes a queued batch whole in
//! exchange for its own empty one. So while batches fit, no item is copied on the way, nothing
//! is allocated, and the lock, the bookkeeping and the wakeups are paid per batch, not per
//! item. A batch is split (its items copied) only where a bound requires it: a sender with
//! less room than items, or a receiver that may take fewer than the batch holds.
//!
//! # Invariants
//!
//! 1. `len <= capacity` at every release of the lock, where `len` counts the items of every
//!    queued batch: a sender moves at most the free room, and waits for the rest.
//! 2. `taken` counts every item ever received; the items a receiver takes are the next ones in
//!    the queue, so a batch is numbered `taken..taken + n` (the ordered stages rely on this).
//! 3. A waiter enables its `Notified` before it last looks at the state under the lock, so a
//!    notification sent after that look reaches it (`Notify::notified` + `enable`).
//! 4. Wakeups are chained: whoever leaves items behind for other waiting receivers, or room
//!    behind for other waiting senders, wakes one more, so one `notify_one` per state change
//!    suffices however many wait.
//! 5. No queued batch is empty, and `spare` holds only empty batches, at most [`SPARES`].

use std::collections::VecDeque;
use std::mem;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

/// Queue depth, shared with the report.
#[derive(Debug, Default)]
pub(crate) struct QueueStats {
    pub(crate) queued: AtomicUsize,
    pub(crate) peak: AtomicUsize,
    /// Items still queued when the channel went away: the run stopped before they were read.
    pub(crate) unfinished: AtomicU64,
}

/// The receiving side is gone: nothing sent will ever be read.
#[derive(Debug)]
pub(crate) struct Closed;

/// The most empty batches a channel keeps for its senders: one in flight each way is the
/// steady state of a sender and a receiver; a few more absorb bursts.
const SPARES: usize = 4;

struct State<T> {
    /// Non-empty batches in order (invariant #5).
    batches: VecDeque<Vec<T>>,
    /// Items in `batches` (invariant #1).
    len: usize,
    /// Empty batches left by receivers, which senders take in exchange for theirs.
    spare: Vec<Vec<T>>,
    senders: usize,
    receivers: usize,
    /// Receivers and senders currently parked; only counts, so a waiter dropped while parked
    /// leaves a count behind, which costs at most a spurious wakeup later (harmless under #4).
    parked_receivers: usize,
    parked_senders: usize,
    taken: u64,
    peak: usize,
}

impl<T> State<T> {
    /// Keeps `batch`'s allocation for a sender, if it has one and there is room (#5).
    fn recycle(&mut self, batch: Vec<T>) {
        debug_assert!(batch.is_empty());
        if batch.capacity() > 0 && self.spare.len() < SPARES {
            self.spare.push(batch);
        }
    }
}

struct Channel<T> {
    state: Mutex<State<T>>,
    capacity: usize,
    readable: Notify,
    writable: Notify,
    stats: Arc<QueueStats>,
}

/// Creates a channel holding at most `capacity` items (at least one).
pub(crate) fn channel<T>(capacity: usize, stats: Arc<QueueStats>) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Channel {
        state: Mutex::new(State {
            batches: VecDeque::new(),
            len: 0,
            spare: Vec::new(),
            senders: 1,
            receivers: 1,
            parked_receivers: 0,
            parked_senders: 0,
            taken: 0,
            peak: 0,
        }),
        capacity: capacity.max(1),
        readable: Notify::new(),
        writable: Notify::new(),
        stats,
    });
    (Sender { chan: chan.clone() }, Receiver { chan })
}

impl<T> Channel<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // No user code runs under this lock, so a poisoned lock still holds a consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish_depth(&self, state: &mut State<T>) {
        let len = state.len;
        // Relaxed: statistics only, written under the lock and read by whoever polls a report.
        self.stats.queued.store(len, Ordering::Relaxed);
        if len > state.peak {
            state.peak = len;
            self.stats.peak.store(len, Ordering::Relaxed);
        }
    }
}

impl<T> Drop for Channel<T> {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        if state.len > 0 {
            // Relaxed: a statistic, read after the run's tasks have been joined.
            self.stats
                .unfinished
                .fetch_add(state.len as u64, Ordering::Relaxed);
        }
    }
}

/// The sending half; clones share the channel, which closes when the last one is dropped.
pub(crate) struct Sender<T> {
    chan: Arc<Channel<T>>,
}

/// The receiving half; clones share the channel and take items in turn.
pub(crate) struct Receiver<T> {
    chan: Arc<Channel<T>>,
}

impl<T> Sender<T> {
    /// Moves every item of `items` into the channel, in order, waiting for room as needed.
    /// `items` is left empty on success, holding an allocation for the next batch when the
    /// channel had one to give back. On `Err`, the items not yet moved stay in `items`.
    pub(crate) async fn send(&self, items: &mut Vec<T>) -> Result<(), Closed> {
        let chan = &*self.chan;
        loop {
            if self.push(items)? {
                return Ok(());
            }
            let mut notified = pin!(chan.writable.notified());
            notified.as_mut().enable(); // invariant #3
            {
                let mut state = chan.lock();
                if state.len < chan.capacity || state.receivers == 0 {
                    continue;
                }
                state.parked_senders += 1;
            }
            notified.await;
            chan.lock().parked_senders -= 1;
        }
    }

    /// Moves what fits of `items` into the channel without waiting: `Ok(true)` once `items`
    /// is empty, `Ok(false)` with the rest left in `items` for [`send`](Self::send).
    pub(crate) fn try_send(&self, items: &mut Vec<T>) -> Result<bool, Closed> {
        self.push(items)
    }

    /// Pushes what fits; `Ok(true)` once `items` is empty.
    fn push(&self, items: &mut Vec<T>) -> Result<bool, Closed> {
        let chan = &*self.chan;
        let mut state = chan.lock();
        if state.receivers == 0 {
            return Err(Closed);
        }
        let room = chan.capacity - state.len; // invariant #1
        let n = room.min(items.len());
        if n == 0 {
            return Ok(items.is_empty());
        }
        if n == items.len() {
            // The whole batch fits: it moves as it is, and an empty one comes back.
            let spare = state.spare.pop().unwrap_or_default();
            state.batches.push_back(mem::replace(items, spare));
        } else {
            state.batches.push_back(items.drain(..n).collect());
        }
        state.len += n;
        chan.publish_depth(&mut state);
        let wake_receiver = state.parked_receivers > 0;
        let wake_sender = n < room && state.parked_senders > 0; // invariant #4
        drop(state);
        if wake_receiver {
            chan.readable.notify_one();
        }
        if wake_sender {
            chan.writable.notify_one();
        }
        Ok(items.is_empty())
    }

    /// Waits until the channel has room and returns how much. With a single sender the room
    /// can only grow until that sender pushes, so pushing at most this many never waits.
    pub(crate) async fn room(&self) -> Result<usize, Closed> {
        let chan = &*self.chan;
        loop {
            let mut notified = pin!(chan.writable.notified());
            notified.as_mut().enable(); // invariant #3
            {
                let mut state = chan.lock();
                if state.receivers == 0 {
                    return Err(Closed);
                }
                let room = chan.capacity - state.len;
                if room > 0 {
                    return Ok(room);
                }
                state.parked_senders += 1;
            }
            notified.await;
            chan.lock().parked_senders -= 1;
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.lock().senders += 1;
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let last = {
            let mut state = self.chan.lock();
            state.senders -= 1;
            state.senders == 0
        };
        if last {
            // Every receiver parked or about to park (invariant #3) sees the end.
            self.chan.readable.notify_waiters();
        }
    }
}

impl<T> Receiver<T> {
    /// Appends to `batch` the next items of the channel, waiting while it is empty: at most
    /// `max`, and at most `ceil(queued / share)` so that `share` receivers waiting together
    /// split what is there. Returns the number of the first item taken (invariant #2), or
    /// `None` once the channel is empty and every sender is gone.
    pub(crate) async fn recv(&self, batch: &mut Vec<T>, max: usize, share: usize) -> Option<u64> {
        let chan = &*self.chan;
        loop {
            if let Some(taken) = self.take(batch, max, share) {
                return taken;
            }
            let mut notified = pin!(chan.readable.notified());
            notified.as_mut().enable(); // invariant #3
            {
                let mut state = chan.lock();
                if state.len > 0 || state.senders == 0 {
                    continue;
                }
                state.parked_receivers += 1;
            }
            notified.await;
            chan.lock().parked_receivers -= 1;
        }
    }

    /// Takes what [`recv`](Self::recv) would without waiting: `Some(Some(first))` after
    /// taking items, `Some(None)` at the end, `None` if the channel is empty.
    pub(crate) fn try_recv(
        &self,
        batch: &mut Vec<T>,
        max: usize,
        share: usize,
    ) -> Option<Option<u64>> {
        self.take(batch, max, share)
    }

    /// `Some(Some(first))` after taking items, `Some(None)` at the end, `None` if empty.
    fn take(&self, batch: &mut Vec<T>, max: usize, share: usize) -> Option<Option<u64>> {
        let chan = &*self.chan;
        let mut state = chan.lock();
        let len = state.len;
        if len == 0 {
            return if state.senders == 0 { Some(None) } else { None };
        }
        let n = len.div_ceil(share.max(1)).min(max.max(1));
        let mut wanted = n;
        while wanted > 0 {
            let Some(front) = state.batches.front_mut() else {
                break; // unreachable: `len` counts the queued items (invariant #1)
            };
            if front.len() > wanted {
                batch.extend(front.drain(..wanted));
                break;
            }
            let mut whole = state.batches.pop_front().unwrap_or_default();
            wanted -= whole.len();
            if batch.is_empty() {
                // Taken as it is; the receiver's empty batch goes to the senders.
                mem::swap(batch, &mut whole);
            } else {
                batch.append(&mut whole);
            }
            state.recycle(whole);
        }
        state.len -= n;
        let first = state.taken;
        state.taken += n as u64; // invariant #2
        chan.publish_depth(&mut state);
        let wake_receiver = n < len && state.parked_receivers > 0; // invariant #4
        let wake_sender = state.parked_senders > 0;
        drop(state);
        if wake_receiver {
            chan.readable.notify_one();
        }
        if wake_sender {
            chan.writable.notify_one();
        }
        Some(Some(first))
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.chan.lock().receivers += 1;
        Receiver {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let last = {
            let mut state = self.chan.lock();
            state.receivers -= 1;
            state.receivers == 0
        };
        if last {
            self.chan.writable.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_are_numbered_split_and_bounded() {
        let stats = Arc::new(QueueStats::default());
        let (tx, rx) = channel::<u32>(5, stats.clone());
        let mut items: Vec<u32> = (0..8).collect();
        // Only 5 fit: `push` moves what fits and keeps the rest.
        assert!(!tx.push(&mut items).unwrap());
        assert_eq!(items, [5, 6, 7]);
        assert_eq!(stats.queued.load(Ordering::Relaxed), 5);

        let mut batch = Vec::new();
        // Two receivers share 5 queued items: ⌈5 / 2⌉ = 3 for the first.
        assert_eq!(rx.recv(&mut batch, 10, 2).await, Some(0));
        assert_eq!(batch, [0, 1, 2]);
        batch.clear();
        tx.send(&mut items).await.unwrap();
        assert_eq!(rx.recv(&mut batch, 4, 1).await, Some(3));
        assert_eq!(batch, [3, 4, 5, 6]);
        batch.clear();
        drop(tx);
        assert_eq!(rx.recv(&mut batch, 4, 1).await, Some(7));
        assert_eq!(rx.recv(&mut batch, 4, 1).await, None);
        assert_eq!(stats.peak.load(Ordering::Relaxed), 5);
    }

    #[tokio::test]
    async fn a_full_channel_waits_for_room_and_a_dropped_receiver_closes_it() {
        let (tx, rx) = channel::<u32>(2, Arc::default());
        let sender = tokio::spawn(async move {
            let sent = tx.send(&mut vec![1, 2, 3, 4]).await;
            (sent.is_ok(), tx)
        });
        let mut batch = Vec::new();
        for _ in 0..2 {
            rx.recv(&mut batch, 1, 1).await;
        }
        let (sent, tx) = sender.await.unwrap();
        assert!(sent, "room freed by the receiver let every item in");
        assert_eq!(batch, [1, 2]);
        drop(rx);
        assert!(tx.send(&mut vec![5]).await.is_err());
        assert!(tx.room().await.is_err());
    }

    #[tokio::test]
    async fn whole_batches_move_without_copies_and_come_back_empty() {
        let (tx, rx) = channel::<u32>(256, Arc::default());
        let mut items: Vec<u32> = (0..100).collect();
        let sent = items.as_ptr();
        tx.send(&mut items).await.unwrap();
        assert!(items.is_empty());
        assert_eq!(items.capacity(), 0, "no spare yet");

        let mut batch = Vec::with_capacity(64);
        let lent = batch.as_ptr();
        assert_eq!(rx.recv(&mut batch, 128, 1).await, Some(0));
        assert_eq!(batch.as_ptr(), sent, "the sent allocation, moved");
        assert_eq!(batch.len(), 100);

        // The receiver's empty batch is the next sender's.
        let mut more: Vec<u32> = (100..110).collect();
        tx.send(&mut more).await.unwrap();
        assert_eq!(more.as_ptr(), lent, "given back to the sender");
        assert!(more.is_empty());

        // A receiver that may take fewer than a batch holds gets a copy of that many.
        batch.clear();
        assert_eq!(rx.recv(&mut batch, 4, 1).await, Some(100));
        assert_eq!(batch, [100, 101, 102, 103]);
        batch.clear();
        assert_eq!(rx.recv(&mut batch, 128, 1).await, Some(104));
        assert_eq!(batch, [104, 105, 106, 107, 108, 109]);
    }
}
