//! Copies of a machine and of the objects on it, to restore the state a scenario's set-up left
//! instead of re-running the set-up for every execution (the explorer builds one instance per
//! search and copies it). Not a kernel mechanism: the checker's.
//!
//! A copy must be indistinguishable from the original: the same ids, values and sharing. An
//! object behind an `Arc` is copied once ([`Memo`] maps each original to its copy), so two
//! references to one object stay two references to one copy. The object graph has strong
//! cycles (a VMA holds its anon_vma, whose interval tree holds the VMA), and a cycle can only be
//! made through a cell, after construction; so an object is copied in two parts
//! ([`SnapshotObj`]): a shell, whose cells that hold objects are left empty, then, once the
//! shell is in the memo, the fill of those cells. Every implementation destructures the whole
//! original, so a field added later is a compile error until the copy says what it does with it.
//!
//! The copy runs on one thread, with no step running: the original is quiescent and read raw.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Weak};

/// A copy's cells still to fill.
type Fill = Box<dyn FnOnce(&mut Memo)>;

/// Original object (by address) to its copy, and the fills still to do.
#[derive(Default)]
pub struct Memo {
    copies: BTreeMap<usize, Box<dyn Any>>,
    /// Objects whose shell is being made: reaching one again is a strong cycle outside cells.
    busy: BTreeSet<usize>,
    fills: Vec<Fill>,
}

impl Memo {
    /// A copy of `v` and of everything it reaches.
    pub fn copy<T: Snapshot>(v: &T) -> T {
        let mut m = Memo::default();
        let c = v.snapshot(&mut m);
        m.finish();
        c
    }

    /// Copy `v` within this memo (objects already copied are shared); call [`Memo::finish`]
    /// before using the copies.
    pub fn add<T: Snapshot>(&mut self, v: &T) -> T {
        v.snapshot(self)
    }

    /// Run the pending fills (which may copy more objects, and queue their fills).
    pub fn finish(&mut self) {
        while let Some(f) = self.fills.pop() {
            f(self);
        }
    }
}

/// A deep copy for restoring (see the module doc).
pub trait Snapshot: Sized {
    fn snapshot(&self, m: &mut Memo) -> Self;
}

/// An object shared through `Arc`: its copy is made as a shell, then filled.
pub trait SnapshotObj: Sized + 'static {
    /// The copy, with every cell that holds objects left empty.
    fn shell(&self, m: &mut Memo) -> Self;
    /// Copy those cells' contents into `copy`.
    fn fill(&self, copy: &Self, m: &mut Memo);
}

impl<T: SnapshotObj> Snapshot for Arc<T> {
    fn snapshot(&self, m: &mut Memo) -> Self {
        let key = Arc::as_ptr(self) as usize;
        if let Some(c) = m.copies.get(&key) {
            return c
                .downcast_ref::<Arc<T>>()
                .expect("snapshot: one type per address")
                .clone();
        }
        assert!(
            m.busy.insert(key),
            "snapshot: a strong cycle outside cells ({})",
            std::any::type_name::<T>()
        );
        let copy = Arc::new(self.shell(m));
        m.busy.remove(&key);
        m.copies.insert(key, Box::new(copy.clone()));
        let (orig, c) = (self.clone(), copy.clone());
        m.fills.push(Box::new(move |m| orig.fill(&c, m)));
        copy
    }
}

impl<T: SnapshotObj> Snapshot for Weak<T> {
    fn snapshot(&self, m: &mut Memo) -> Self {
        self.upgrade()
            .map_or_else(Weak::new, |a| Arc::downgrade(&a.snapshot(m)))
    }
}

/// Plain values: a copy is a clone.
#[macro_export]
macro_rules! snapshot_by_clone {
    ($($t:ty),* $(,)?) => {
        $(impl $crate::snapshot::Snapshot for $t {
            fn snapshot(&self, _: &mut $crate::snapshot::Memo) -> Self {
                self.clone()
            }
        })*
    };
}

snapshot_by_clone!(
    bool,
    u8,
    u16,
    u32,
    u64,
    usize,
    i64,
    String,
    &'static str,
    crate::FrameRef,
    crate::Violation,
    crate::RcuWork,
    crate::NameRec,
);

impl<T: Snapshot> Snapshot for Option<T> {
    fn snapshot(&self, m: &mut Memo) -> Self {
        self.as_ref().map(|v| v.snapshot(m))
    }
}

impl<T: Snapshot> Snapshot for Vec<T> {
    fn snapshot(&self, m: &mut Memo) -> Self {
        self.iter().map(|v| v.snapshot(m)).collect()
    }
}

impl<T: Snapshot> Snapshot for VecDeque<T> {
    fn snapshot(&self, m: &mut Memo) -> Self {
        self.iter().map(|v| v.snapshot(m)).collect()
    }
}

impl<T: Snapshot> Snapshot for Box<[T]> {
    fn snapshot(&self, m: &mut Memo) -> Self {
        self.iter().map(|v| v.snapshot(m)).collect()
    }
}

impl<K: Snapshot + Ord, V: Snapshot> Snapshot for BTreeMap<K, V> {
    fn snapshot(&self, m: &mut Memo) -> Self {
        self.iter()
            .map(|(k, v)| (k.snapshot(m), v.snapshot(m)))
            .collect()
    }
}

impl<T: Snapshot + Ord> Snapshot for BTreeSet<T> {
    fn snapshot(&self, m: &mut Memo) -> Self {
        self.iter().map(|v| v.snapshot(m)).collect()
    }
}

impl<A: Snapshot, B: Snapshot> Snapshot for (A, B) {
    fn snapshot(&self, m: &mut Memo) -> Self {
        (self.0.snapshot(m), self.1.snapshot(m))
    }
}

impl<A: Snapshot, B: Snapshot, C: Snapshot> Snapshot for (A, B, C) {
    fn snapshot(&self, m: &mut Memo) -> Self {
        (self.0.snapshot(m), self.1.snapshot(m), self.2.snapshot(m))
    }
}

impl<T: Snapshot, const N: usize> Snapshot for [T; N] {
    fn snapshot(&self, m: &mut Memo) -> Self {
        std::array::from_fn(|i| self[i].snapshot(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Two nodes that point at each other through a cell, and a shared leaf.
    struct Node {
        name: u64,
        leaf: Arc<Leaf>,
        peer: Mutex<Option<Arc<Node>>>,
    }
    struct Leaf(u64);

    impl SnapshotObj for Leaf {
        fn shell(&self, _: &mut Memo) -> Self {
            Leaf(self.0)
        }
        fn fill(&self, _: &Self, _: &mut Memo) {}
    }

    impl SnapshotObj for Node {
        fn shell(&self, m: &mut Memo) -> Self {
            let Node {
                name,
                leaf,
                peer: _,
            } = self;
            Node {
                name: *name,
                leaf: leaf.snapshot(m),
                peer: Mutex::new(None),
            }
        }
        fn fill(&self, copy: &Self, m: &mut Memo) {
            let p = self.peer.lock().unwrap().clone();
            *copy.peer.lock().unwrap() = p.snapshot(m);
        }
    }

    #[test]
    fn cycles_and_sharing_survive_a_copy() {
        let leaf = Arc::new(Leaf(7));
        let a = Arc::new(Node {
            name: 1,
            leaf: leaf.clone(),
            peer: Mutex::new(None),
        });
        let b = Arc::new(Node {
            name: 2,
            leaf,
            peer: Mutex::new(Some(a.clone())),
        });
        *a.peer.lock().unwrap() = Some(b.clone());
        let both = (a.clone(), Arc::downgrade(&b));
        let (ca, cb) = Memo::copy(&both);
        let cb = cb.upgrade().expect("b is reachable from a");
        assert!(!Arc::ptr_eq(&ca, &a));
        assert_eq!((ca.name, cb.name), (1, 2));
        assert!(Arc::ptr_eq(&ca.leaf, &cb.leaf), "the leaf is still shared");
        assert!(Arc::ptr_eq(ca.peer.lock().unwrap().as_ref().unwrap(), &cb));
        assert!(Arc::ptr_eq(cb.peer.lock().unwrap().as_ref().unwrap(), &ca));
        assert_eq!(ca.leaf.0, 7);
        // Break the cycles so the test does not leak.
        for n in [&a, &b, &ca, &cb] {
            n.peer.lock().unwrap().take();
        }
    }
}
