//! Keyed order: a stage's workers each own a lane, and a router sends every item to the lane
//! of its key, so the items of one key are worked on one after another, in input order, while
//! different keys run in parallel (as Kafka's parallel consumers order by key).

use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::channel::{channel, Receiver, Sender};
use super::options::DEFAULT_BATCH;
use super::scope::{Scope, Shared};
use crate::context::Context;
use crate::error::Error;

/// The hash of an item's key, which picks its lane.
pub type KeyHash<T> = Box<dyn Fn(&T) -> u64 + Send + Sync>;

/// Whether a stage keeps the order of the items that share a key: see
/// [`StageOptions::ordered_by`](crate::StageOptions::ordered_by).
///
/// Implemented by [`Unkeyed`] and [`OrderedBy`] only.
pub trait Keying<T>: sealed::Sealed + Send + 'static {
    /// The hash of an item's key, if the stage has one.
    #[doc(hidden)]
    fn into_hash(self) -> Option<KeyHash<T>>;
}

/// A stage without keyed order (the default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unkeyed;

/// A stage that keeps the order of the items whose keys its function gives.
#[derive(Clone, Copy)]
pub struct OrderedBy<F>(pub(crate) F);

impl<F> fmt::Debug for OrderedBy<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OrderedBy(..)")
    }
}

impl<T> Keying<T> for Unkeyed {
    fn into_hash(self) -> Option<KeyHash<T>> {
        None
    }
}

impl<T, F, K> Keying<T> for OrderedBy<F>
where
    F: Fn(&T) -> K + Send + Sync + 'static,
    K: Hash,
{
    fn into_hash(self) -> Option<KeyHash<T>> {
        let key = self.0;
        Some(Box::new(move |item| {
            // Fixed keys: the same key always lands in the same lane.
            let mut hasher = DefaultHasher::new();
            key(item).hash(&mut hasher);
            hasher.finish()
        }))
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Unkeyed {}
    impl<F> Sealed for super::OrderedBy<F> {}
}

/// Spawns the router of a keyed stage: it reads `input` and sends each item to lane
/// `hash(item) % lanes`, each lane a queue of `capacity` items. Returns the lanes' receivers.
pub(crate) fn spawn_router<T, E>(
    scope: &mut Scope<E>,
    input: Receiver<T>,
    hash: KeyHash<T>,
    lanes: usize,
    capacity: usize,
) -> Vec<Receiver<T>>
where
    T: Send + 'static,
    E: From<Error> + Send + 'static,
{
    let (senders, receivers) = (0..lanes)
        .map(|_| channel(capacity, Arc::default()))
        .unzip();
    let task = route(
        scope.step_context(),
        input,
        hash,
        senders,
        scope.shared.clone(),
    );
    scope.spawn(task);
    receivers
}

async fn route<T, E>(
    ctx: Context,
    input: Receiver<T>,
    hash: KeyHash<T>,
    lanes: Vec<Sender<T>>,
    shared: Arc<Shared<E>>,
) {
    let mut watch = ctx.watch();
    let mut batch = Vec::new();
    let mut sorted: Vec<Vec<T>> = lanes.iter().map(|_| Vec::new()).collect();
    loop {
        match watch.run(input.recv(&mut batch, DEFAULT_BATCH, 1)).await {
            Ok(Some(_)) => {}
            Ok(None) => return, // the lanes end as their senders go
            Err(_) => return shared.stopped_early(),
        }
        for item in batch.drain(..) {
            let lane = (hash(&item) % lanes.len() as u64) as usize;
            sorted[lane].push(item);
        }
        // In lane order: a full lane holds the others back, as a slow key would anyway.
        for (lane, items) in lanes.iter().zip(&mut sorted) {
            if !items.is_empty() && !matches!(watch.run(lane.send(items)).await, Ok(Ok(()))) {
                return shared.stopped_early();
            }
        }
        tokio::task::coop::consume_budget().await; // see `stage.rs`
    }
}
