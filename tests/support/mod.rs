//! What several pipeline tests share: a count of live tasks, and items that record their
//! drops, to prove that each is dropped exactly once however the run ends.
// Each test crate uses a part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The runtime's live tasks: back to where it was once a run has stopped everything.
pub fn alive() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Records every drop of every [`Item`], by number.
#[derive(Clone, Debug, Default)]
pub struct Drops(Arc<Mutex<HashMap<u64, u32>>>);

impl Drops {
    pub fn item(&self, n: u64) -> Item {
        Item {
            n,
            drops: self.clone(),
        }
    }

    /// Every item of `0..n` was dropped exactly once, and no other original (copies,
    /// numbered from [`CLONED`], are counted apart).
    pub fn assert_each_dropped_once(&self, n: u64) {
        let drops = self.0.lock().unwrap();
        for item in 0..n {
            assert_eq!(drops.get(&item), Some(&1), "drops of item {item}");
        }
        let originals = drops.keys().filter(|&&item| item < CLONED).count();
        assert_eq!(originals as u64, n, "originals dropped");
    }
}

/// An item whose drop is recorded.
#[derive(Debug)]
pub struct Item {
    pub n: u64,
    drops: Drops,
}

impl Drop for Item {
    fn drop(&mut self) {
        *self.drops.0.lock().unwrap().entry(self.n).or_default() += 1;
    }
}

impl Clone for Item {
    fn clone(&self) -> Self {
        // A copy counts as an item of its own: the drop counts of originals see only them.
        Item {
            n: self.n + CLONED,
            drops: self.drops.clone(),
        }
    }
}

/// Added to an item's number in its copies.
pub const CLONED: u64 = 1 << 32;

/// An endless source of numbered items that counts, in `taken`, the items it was asked for.
pub fn endless(drops: &Drops, taken: &Arc<AtomicU64>) -> impl Iterator<Item = Item> + Send {
    let (drops, taken) = (drops.clone(), taken.clone());
    (0..).map(move |n| {
        taken.fetch_add(1, Ordering::Relaxed);
        drops.item(n)
    })
}
