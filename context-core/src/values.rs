//! The typed values of a context: a persistent chain of layers, each with a flat index.
//!
//! `with_value` adds a [`Layer`] that owns the new value and keeps its parent layer alive. Its
//! index is an open-addressing table keyed by [`TypeId`] that points at every visible value —
//! its own and its ancestors' — so a lookup is one hash and one probe whatever the depth: 100
//! stacked values cost what one does, where Go walks the chain. Building the index copies the
//! parent's plain `(TypeId, pointer)` pairs and touches no reference count, so `with_value` costs
//! two allocations plus a small copy. Cancel and deadline layers share their parent's layer
//! untouched, so they never slow a lookup down.
//!
//! # Safety
//!
//! Index entries are raw pointers into the `value` field of this layer or an ancestor. They are
//! valid for as long as the layer is: a layer owns (`Arc`) its parent, so every ancestor outlives
//! it, and layers are never mutated after construction, so no value moves or is dropped while a
//! descendant layer exists. `unsafe` is confined to turning those pointers back into references
//! (`Layer::get`) and to the `Send`/`Sync` impls that the raw pointers suppress.

use std::any::{Any, TypeId};
use std::hash::{Hash, Hasher};
use std::ptr::NonNull;
use std::sync::Arc;

type Value = dyn Any + Send + Sync;

/// An index slot: a visible value's type and where it lives.
type Slot = Option<(TypeId, NonNull<Value>)>;

/// The values of a context, `None` in a context that has none.
pub(crate) type Values = Arc<Layer<Value>>;

/// One `with_value` layer. `V` is the added value's type until the layer is type-erased.
pub(crate) struct Layer<V: ?Sized> {
    /// Keeps every ancestor's value, which `index` points into, alive (see "Safety").
    parent: Option<Values>,
    /// Power-of-two length, at most three quarters full, so every probe ends at a `None`. Holds
    /// the visible values of the ancestors; this layer's own value is matched by `own_type`.
    index: Box<[Slot]>,
    /// Number of entries in `index`.
    len: usize,
    own_type: TypeId,
    value: V,
}

// SAFETY: the only non-`Send`/`Sync` fields are the `NonNull<Value>` pointers in `index`. They
// point at `dyn Any + Send + Sync` values owned by ancestor layers (see "Safety"), which are only
// ever read through shared references, so sharing or sending a layer shares or sends nothing
// that is not itself `Send + Sync`.
unsafe impl<V: ?Sized + Send> Send for Layer<V> {}
// SAFETY: as for `Send`.
unsafe impl<V: ?Sized + Sync> Sync for Layer<V> {}

impl Layer<Value> {
    /// A layer on top of `parent` that adds `value`, which hides an inherited value of its type.
    pub(crate) fn with<T: Any + Send + Sync>(parent: Option<&Values>, value: T) -> Values {
        let own_type = TypeId::of::<T>();
        let Some(parent) = parent else {
            return Arc::new(Layer {
                parent: None,
                index: Box::new([]),
                len: 0,
                own_type,
                value,
            });
        };
        let inherited = parent.len + 1;
        // Three quarters full at most: an empty slot ends every probe sequence.
        let capacity = (inherited * 4 / 3 + 1).next_power_of_two();
        let mut index: Box<[_]> = (0..capacity).map(|_| None).collect();
        let mut len = 0;
        let parent_own = NonNull::from(&parent.value);
        let visible = parent.index.iter().flatten().copied();
        for (id, ptr) in visible.chain([(parent.own_type, parent_own)]) {
            if id != own_type {
                place(&mut index, id, ptr);
                len += 1;
            }
        }
        Arc::new(Layer {
            parent: Some(parent.clone()),
            index,
            len,
            own_type,
            value,
        })
    }

    pub(crate) fn get<T: Any>(&self) -> Option<&T> {
        let id = TypeId::of::<T>();
        if id == self.own_type {
            return self.value.downcast_ref::<T>();
        }
        if self.index.is_empty() {
            return None;
        }
        let mask = self.index.len() - 1;
        let mut slot = slot_of(id) & mask;
        loop {
            match &self.index[slot] {
                Some((found, ptr)) if *found == id => {
                    // SAFETY: `ptr` points at the value of an ancestor layer, which `self` keeps
                    // alive through `parent` and which is never mutated (module docs, "Safety"),
                    // so it is valid for shared access for as long as `&self`.
                    let value: &Value = unsafe { ptr.as_ref() };
                    return value.downcast_ref::<T>();
                }
                Some(_) => slot = (slot + 1) & mask,
                None => return None,
            }
        }
    }
}

impl<V: ?Sized> Drop for Layer<V> {
    fn drop(&mut self) {
        // Release the chain of ancestors in a loop rather than recursively, so that dropping a
        // very deep chain of value layers cannot overflow the stack.
        let mut next = self.parent.take();
        while let Some(mut layer) = next {
            next = Arc::get_mut(&mut layer).and_then(|last| last.parent.take());
        }
    }
}

fn place(index: &mut [Slot], id: TypeId, ptr: NonNull<Value>) {
    let mask = index.len() - 1;
    let mut slot = slot_of(id) & mask;
    while index[slot].is_some() {
        slot = (slot + 1) & mask;
    }
    index[slot] = Some((id, ptr));
}

/// The table index for `id`. `TypeId` is already a strong hash, so this only folds it to a word.
fn slot_of(id: TypeId) -> usize {
    let mut hasher = FoldHasher(0);
    id.hash(&mut hasher);
    hasher.0 as usize
}

struct FoldHasher(u64);

impl Hasher for FoldHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_ne_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        // Multiplicative mixing (Fx): keeps the low bits, which the mask uses, well spread even
        // if the std implementation hands over a value whose entropy sits in the high bits.
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Layer, Values};

    #[derive(Debug, PartialEq)]
    struct A(u32);
    #[derive(Debug, PartialEq)]
    struct B(&'static str);

    fn with<T: std::any::Any + Send + Sync>(parent: Option<&Values>, value: T) -> Values {
        Layer::with(parent, value)
    }

    #[test]
    fn lookup_by_type_and_shadowing() {
        let one = with(None, A(1));
        let two = with(Some(&one), B("b"));
        let three = with(Some(&two), A(3));
        assert_eq!(one.get::<A>(), Some(&A(1)));
        assert_eq!(one.get::<B>(), None);
        assert_eq!(two.get::<A>(), Some(&A(1)));
        assert_eq!(two.get::<B>(), Some(&B("b")));
        assert_eq!(three.get::<A>(), Some(&A(3)), "newest value of a type wins");
        assert_eq!(three.len, 1, "a hidden value is not indexed");
        assert_eq!(three.get::<u8>(), None);
    }

    #[test]
    fn many_types_stay_reachable() {
        struct N<const I: usize>;
        macro_rules! stack {
            ($($i:literal)*) => {{
                let mut v = with(None, 0u8);
                $( v = with(Some(&v), N::<$i>); )*
                $( assert!(v.get::<N<$i>>().is_some()); )*
                v
            }};
        }
        let v = stack!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32);
        assert_eq!(v.len, 33, "every value but the layer's own is indexed");
        assert_eq!(v.index.iter().flatten().count(), 33);
        assert_eq!(v.get::<u8>(), Some(&0));
        assert!(4 * v.len <= 3 * v.index.len() && v.index.len() <= 4 * (v.len + 1));
    }

    /// A value that notices being read after it was dropped.
    struct Canary(u64);

    const ALIVE: u64 = 0x5eed_cafe_f00d_beef;

    impl Drop for Canary {
        fn drop(&mut self) {
            self.0 = 0;
        }
    }

    #[test]
    fn ancestors_stay_alive_after_their_handles_are_dropped() {
        struct Depth<const I: usize>(Canary);
        let root = with(None, Canary(ALIVE));
        let mid = with(Some(&root), Depth::<1>(Canary(ALIVE)));
        let leaf = with(Some(&mid), Depth::<2>(Canary(ALIVE)));
        drop((root, mid));
        // Churn the allocator so freed memory would be reused and overwritten.
        let churn: Vec<Vec<u64>> = (0..1000).map(|i| vec![i; 16]).collect();
        assert_eq!(leaf.get::<Canary>().map(|c| c.0), Some(ALIVE));
        assert_eq!(leaf.get::<Depth<1>>().map(|d| d.0 .0), Some(ALIVE));
        assert_eq!(leaf.get::<Depth<2>>().map(|d| d.0 .0), Some(ALIVE));
        drop(churn);
    }

    #[test]
    fn values_are_read_from_many_threads_while_layers_come_and_go() {
        let root = with(None, Canary(ALIVE));
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for round in 0..2_000u32 {
                        let mut layer = with(Some(&root), round);
                        for depth in 0..8u64 {
                            layer = with(Some(&layer), depth);
                            let canary = layer.get::<Canary>().expect("inherited");
                            assert_eq!(canary.0, ALIVE, "read after free");
                        }
                        assert_eq!(layer.get::<u32>(), Some(&round));
                        assert_eq!(layer.get::<u64>(), Some(&7));
                    }
                });
            }
        });
    }

    #[test]
    fn dropping_a_deep_chain_does_not_overflow() {
        let mut layer = with(None, 0u32);
        for depth in 1..200_000u32 {
            layer = with(Some(&layer), depth);
        }
        assert_eq!(layer.get::<u32>(), Some(&199_999));
        drop(layer);
    }
}
