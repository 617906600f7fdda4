//! The typed value map: an immutable open-addressing table keyed by [`TypeId`].
//!
//! `with_value` copies the parent's table and adds one entry, so a lookup is one hash and one
//! probe whatever the depth: 100 stacked values cost what one does, where Go walks the chain.
//! The copy is cheap because entries are shared (`Arc`), and contexts rarely carry more than a
//! handful of values. Cancel and deadline layers share their parent's table untouched, so they
//! never slow a lookup down.

use std::any::{Any, TypeId};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

type Shared = Arc<dyn Any + Send + Sync>;

pub(crate) struct Values {
    /// Length is a power of two, at most three quarters full, so every probe ends at a `None`.
    slots: Box<[Option<(TypeId, Shared)>]>,
    len: usize,
}

impl Values {
    /// A table holding `parent`'s entries plus `value`, which replaces an entry of its type.
    pub(crate) fn with<T: Any + Send + Sync>(parent: Option<&Values>, value: T) -> Values {
        let inherited = parent.map_or(0, |p| p.len);
        // At most three quarters full, so every probe sequence ends at an empty slot.
        let capacity = ((inherited + 1) * 4 / 3 + 1).next_power_of_two();
        let mut slots: Box<[Option<(TypeId, Shared)>]> = (0..capacity).map(|_| None).collect();
        let mut len = 1;
        if let Some(parent) = parent {
            for (id, value) in parent.slots.iter().flatten() {
                if *id != TypeId::of::<T>() {
                    Self::place(&mut slots, *id, value.clone());
                    len += 1;
                }
            }
        }
        Self::place(&mut slots, TypeId::of::<T>(), Arc::new(value));
        Values { slots, len }
    }

    fn place(slots: &mut [Option<(TypeId, Shared)>], id: TypeId, value: Shared) {
        let mask = slots.len() - 1;
        let mut index = slot_of(id) & mask;
        while slots[index].is_some() {
            index = (index + 1) & mask;
        }
        slots[index] = Some((id, value));
    }

    pub(crate) fn get<T: Any>(&self) -> Option<&T> {
        let id = TypeId::of::<T>();
        let mask = self.slots.len() - 1;
        let mut index = slot_of(id) & mask;
        loop {
            match &self.slots[index] {
                Some((found, value)) if *found == id => return value.downcast_ref::<T>(),
                Some(_) => index = (index + 1) & mask,
                None => return None,
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::Values;

    #[derive(Debug, PartialEq)]
    struct A(u32);
    #[derive(Debug, PartialEq)]
    struct B(&'static str);

    #[test]
    fn lookup_by_type_and_shadowing() {
        let one = Values::with(None, A(1));
        let two = Values::with(Some(&one), B("b"));
        let three = Values::with(Some(&two), A(3));
        assert_eq!(one.get::<A>(), Some(&A(1)));
        assert_eq!(one.get::<B>(), None);
        assert_eq!(two.get::<A>(), Some(&A(1)));
        assert_eq!(two.get::<B>(), Some(&B("b")));
        assert_eq!(three.get::<A>(), Some(&A(3)), "newest value of a type wins");
        assert_eq!(
            three.slots.iter().flatten().count(),
            2,
            "a replaced entry is not kept"
        );
        assert_eq!(three.get::<u8>(), None);
    }

    #[test]
    fn many_types_stay_reachable() {
        struct N<const I: usize>;
        macro_rules! stack {
            ($($i:literal)*) => {{
                let mut v = Values::with(None, 0u8);
                $( v = Values::with(Some(&v), N::<$i>); )*
                $( assert!(v.get::<N<$i>>().is_some()); )*
                v
            }};
        }
        let v = stack!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32);
        assert_eq!(v.len, 34);
        assert_eq!(v.slots.iter().flatten().count(), 34);
        assert_eq!(v.get::<u8>(), Some(&0));
        assert!(4 * v.len <= 3 * v.slots.len() && v.slots.len() <= 4 * v.len);
    }
}
