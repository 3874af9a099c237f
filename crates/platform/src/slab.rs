//! Slab objects with a lifetime (`mm/slub.c` as far as lifetimes go): an object allocated from a
//! `kmem_cache` and freed with `kmem_cache_free`, with a KASAN-like check on every access to one
//! of its fields. The model's `vm_area_struct` is one (`vm_area_cachep`, `SLAB_TYPESAFE_BY_RCU`
//! since 6.15).
//!
//! An object owns a block of [`Obj::SLAB_STRIDE`] `Var` ids (from [`Machine::new_slab_ids`]): id 0
//! of the block names the object itself, the others its fields (the shared words, cells and locks
//! built with [`SlabObj::field`]). Freeing is one step announced as [`Access::ObjFree`] on the
//! base id, which the explorer orders against every access to a field of the object; every
//! field access calls [`SlabObj::check`] in the step that announced the field, so the check reads
//! the object's state in a step ordered against its free.
//!
//! With `SLAB_TYPESAFE_BY_RCU` the memory of a freed object stays an object of the same type
//! until a grace period has passed, so a reader inside an RCU read-side section may still read
//! it (and must then validate what it read: `vma_start_read`'s refcount, `vm_mm` and range
//! checks). A read of a freed object outside any RCU read-side section is a use-after-free.
//!
//! Reuse: [`SlabCache`] is SLUB's per-CPU freelist as far as reuse goes: an object freed on a CPU
//! is the first one a later allocation on that CPU gets back (LIFO). [`SlabObj::reuse`] is that
//! allocation, one step announced as [`Access::ObjAlloc`] and ordered like the free against every
//! access to a field. A reader that still holds the pointer reads the new contents: not a
//! use-after-free (the memory is an object of the same type), but not the object it looked up.

use crate::event::{Access, Obj};
use crate::machine::{Cpu, Machine};
use crate::violation::ViolationKind;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

/// The lifetime of one slab object.
#[derive(Debug)]
pub struct SlabObj {
    base: u64,
    /// `SLAB_TYPESAFE_BY_RCU`: reads inside RCU read-side sections stay legal after the free.
    typesafe_by_rcu: bool,
    freed: AtomicBool,
    freed_by: Mutex<Option<(usize, Vec<&'static str>)>>,
}

impl SlabObj {
    /// A new object (`kmem_cache_alloc`): nobody else can reach it until it is published.
    pub fn new(m: &Machine, typesafe_by_rcu: bool) -> Self {
        SlabObj {
            base: m.new_slab_ids(typesafe_by_rcu),
            typesafe_by_rcu,
            freed: AtomicBool::new(false),
            freed_by: Mutex::new(None),
        }
    }

    /// The id naming the object (its owner id for field names).
    pub fn id(&self) -> u64 {
        self.base
    }

    /// The id of field `k` (1 ≤ k < [`Obj::SLAB_STRIDE`]).
    pub fn field(&self, k: u64) -> u64 {
        assert!(
            (1..Obj::SLAB_STRIDE).contains(&k),
            "slab field {k} out of range"
        );
        self.base + k
    }

    /// True once freed. For the checker's own reports only (quiescent code).
    pub fn is_freed(&self) -> bool {
        self.freed.load(Ordering::SeqCst)
    }

    /// An access to `field` (an id of this object) in the step that announced it: report a
    /// use-after-free if the object was freed, unless the cache is `SLAB_TYPESAFE_BY_RCU` and
    /// `cpu` is inside an RCU read-side section. Returns true if the access is allowed.
    #[track_caller]
    pub fn check(&self, cpu: &Cpu<'_>, field: u64, what: &str) -> bool {
        cpu.touch(Obj::Var(field));
        // A reader of a type-stable object reads nothing the free changes (the explorer orders
        // such an access after no free: `Obj::RCU_READER`), so it does not look at `freed`.
        if self.typesafe_by_rcu && cpu.in_rcu_reader() {
            return true;
        }
        if !self.freed.load(Ordering::SeqCst) {
            return true;
        }
        let by = match &*self.freed_by.lock() {
            Some((c, stack)) => format!("; freed by CPU{c} in {}", stack.join(" > ")),
            None => String::new(),
        };
        cpu.blame(Obj::Var(field));
        cpu.report(
            ViolationKind::UseAfterFree,
            format!(
                "{what}: the object was freed{by}; read outside an RCU read-side section{}",
                if self.typesafe_by_rcu {
                    " (SLAB_TYPESAFE_BY_RCU keeps it type-stable only for RCU readers)"
                } else {
                    ""
                }
            ),
        );
        false
    }

    /// `kmem_cache_free`: one step, ordered against every access to a field of the object. A
    /// second free is a double free.
    pub fn free(&self, cpu: &Cpu<'_>) {
        cpu.visible(Obj::Var(self.base), Access::ObjFree);
        if self.freed.swap(true, Ordering::SeqCst) {
            let by = match &*self.freed_by.lock() {
                Some((c, stack)) => format!("; first freed by CPU{c} in {}", stack.join(" > ")),
                None => String::new(),
            };
            cpu.report(
                ViolationKind::DoubleFree,
                format!("kmem_cache_free of a freed object{by}"),
            );
            return;
        }
        *self.freed_by.lock() = Some((cpu.id, cpu.stack()));
    }

    /// `kmem_cache_alloc` handing this freed object out again: one step, ordered against every
    /// access to a field of the object. The fields keep their old values until the caller
    /// initialises them (in steps of their own).
    pub fn reuse(&self, cpu: &Cpu<'_>) {
        cpu.visible(Obj::Var(self.base), Access::ObjAlloc);
        let was = self.freed.swap(false, Ordering::SeqCst);
        cpu.warn_on(!was, "kmem_cache_alloc: reused object was not free");
        *self.freed_by.lock() = None;
    }
}

/// The freed objects of one cache, per CPU, most recent last (SLUB's per-CPU freelist, LIFO).
/// Each list is touched only by its own CPU (the free and the allocation run on it), so it is not
/// shared between simulated CPUs and needs no announcement; the reuse itself is announced by
/// [`SlabObj::reuse`].
pub struct SlabCache<T> {
    free: Mutex<BTreeMap<usize, Vec<T>>>,
}

impl<T> Default for SlabCache<T> {
    fn default() -> Self {
        SlabCache {
            free: Mutex::new(BTreeMap::new()),
        }
    }
}

impl<T> SlabCache<T> {
    /// Put an object `cpu` just freed on its freelist.
    pub fn push(&self, cpu: &Cpu<'_>, obj: T) {
        self.free.lock().entry(cpu.id).or_default().push(obj);
    }

    /// The most recently freed object on `cpu`'s freelist for which `fits` holds, taken off it.
    pub fn pop_if(&self, cpu: &Cpu<'_>, fits: impl Fn(&T) -> bool) -> Option<T> {
        let mut g = self.free.lock();
        let list = g.get_mut(&cpu.id)?;
        let i = list.iter().rposition(fits)?;
        Some(list.remove(i))
    }
}

impl crate::Snapshot for SlabObj {
    fn snapshot(&self, m: &mut crate::Memo) -> Self {
        let SlabObj {
            base,
            typesafe_by_rcu,
            freed,
            freed_by,
        } = self;
        SlabObj {
            base: *base,
            typesafe_by_rcu: *typesafe_by_rcu,
            freed: AtomicBool::new(freed.load(Ordering::SeqCst)),
            freed_by: Mutex::new(freed_by.lock().snapshot(m)),
        }
    }
}

impl<T: crate::Snapshot> crate::Snapshot for SlabCache<T> {
    fn snapshot(&self, m: &mut crate::Memo) -> Self {
        SlabCache {
            free: Mutex::new(self.free.lock().snapshot(m)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spinlock::tests::{kinds, seq_machine};

    #[test]
    fn typesafe_by_rcu_reads_are_legal_only_inside_rcu() {
        let m = seq_machine(2, 4);
        let (c0, c1) = (m.cpu(0), m.cpu(1));
        let o = SlabObj::new(&m, true);
        let f = o.field(1);
        assert!(f.checked_sub(o.id()) == Some(1) && Obj::Var(f).slab_base() == Some(o.id()));
        assert!(o.check(&c0, f, "live read"));
        {
            let _f = c1.enter("test_freer");
            o.free(&c1);
        }
        {
            let _r = c0.rcu_read_lock();
            assert!(o.check(&c0, f, "type-safe read"));
        }
        assert!(kinds(&m).is_empty());
        assert!(!o.check(&c0, f, "vm_flags read"));
        let v = m.violations();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].kind, ViolationKind::UseAfterFree);
        assert!(v[0].msg.contains("vm_flags read"), "{}", v[0].msg);
        assert!(
            v[0].msg.contains("freed by CPU1 in test_freer"),
            "{}",
            v[0].msg
        );
        o.free(&c1);
        assert_eq!(
            kinds(&m),
            vec![ViolationKind::UseAfterFree, ViolationKind::DoubleFree]
        );
    }

    #[test]
    fn reuse_makes_the_object_live_again_and_the_cache_is_lifo_per_cpu() {
        let m = seq_machine(2, 4);
        let (c0, c1) = (m.cpu(0), m.cpu(1));
        let cache: SlabCache<u32> = SlabCache::default();
        cache.push(&c0, 1);
        cache.push(&c0, 2);
        cache.push(&c1, 3);
        assert_eq!(cache.pop_if(&c0, |_| true), Some(2));
        assert_eq!(cache.pop_if(&c0, |&x| x != 1), None);
        assert_eq!(cache.pop_if(&c1, |_| true), Some(3));
        let o = SlabObj::new(&m, true);
        o.free(&c1);
        o.reuse(&c1);
        assert!(!o.is_freed());
        assert!(o.check(&c0, o.field(1), "read of the new object"));
        assert!(kinds(&m).is_empty());
    }
}
