//! A minimal slab: stable keys, reused slots, no allocation while empty.
//!
//! Used for a node's children, its waiting wakers and its pending `after_func`s. Keys stay valid
//! until removed, so the owner of an entry can find it again in O(1) without searching.

/// Capacity kept when the slab empties.
const KEEP: usize = 16;

pub(crate) struct Slab<T> {
    entries: Vec<Option<T>>,
    free: Vec<usize>,
    len: usize,
}

impl<T> Slab<T> {
    pub(crate) const fn new() -> Slab<T> {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stores `value`, reusing a freed slot when there is one, and returns its key.
    pub(crate) fn insert(&mut self, value: T) -> usize {
        self.len += 1;
        match self.free.pop() {
            Some(key) => {
                debug_assert!(self.entries[key].is_none());
                self.entries[key] = Some(value);
                key
            }
            None => {
                self.entries.push(Some(value));
                self.entries.len() - 1
            }
        }
    }

    /// The key the next `insert` will return.
    pub(crate) fn next_key(&self) -> usize {
        self.free.last().copied().unwrap_or(self.entries.len())
    }

    /// Removes the entry at `key`; `None` if it was not there.
    pub(crate) fn remove(&mut self, key: usize) -> Option<T> {
        let value = self.entries.get_mut(key)?.take()?;
        self.len -= 1;
        if self.len == 0 {
            // Nothing is live. Give a large buffer back rather than keep the peak forever; keep a
            // small one, so a parent that creates and drops one child at a time does not
            // allocate each time.
            self.entries.clear();
            self.free.clear();
            if self.entries.capacity() > KEEP {
                self.entries = Vec::new();
                self.free = Vec::new();
            }
        } else if key + 1 == self.entries.len() {
            self.entries.pop();
        } else {
            self.free.push(key);
        }
        Some(value)
    }

    pub(crate) fn get_mut(&mut self, key: usize) -> Option<&mut T> {
        self.entries.get_mut(key)?.as_mut()
    }

    /// Every entry, in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().flatten()
    }

    /// Removes and yields every entry, keeping the memory for the slab's owner to free.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.len = 0;
        self.free.clear();
        self.entries.drain(..).flatten()
    }
}

impl<T> Default for Slab<T> {
    fn default() -> Slab<T> {
        Slab::new()
    }
}

#[cfg(test)]
mod tests {
    use super::Slab;

    #[test]
    fn keys_stay_valid_and_slots_are_reused() {
        let mut slab = Slab::new();
        let a = slab.insert('a');
        let b = slab.insert('b');
        let c = slab.insert('c');
        assert_eq!(slab.remove(b), Some('b'));
        assert_eq!(slab.remove(b), None);
        let d = slab.insert('d');
        assert_eq!(d, b, "freed slot is reused");
        assert_eq!(slab.get_mut(a), Some(&mut 'a'));
        assert_eq!(slab.get_mut(c), Some(&mut 'c'));
        assert_eq!(slab.len(), 3);
        let mut all: Vec<_> = slab.drain().collect();
        all.sort();
        assert_eq!(all, ['a', 'c', 'd']);
        assert!(slab.is_empty());
    }

    #[test]
    fn memory_is_released_when_empty() {
        let mut slab = Slab::new();
        let keys: Vec<_> = (0..1000).map(|i| slab.insert(i)).collect();
        for key in keys {
            slab.remove(key);
        }
        assert_eq!(slab.entries.capacity(), 0);
        assert_eq!(slab.free.capacity(), 0);
    }
}
