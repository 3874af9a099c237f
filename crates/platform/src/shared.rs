//! Shared model state outside page tables and `struct page`: the fields of `mm_struct`,
//! `vm_area_struct`, `anon_vma` and `address_space` that more than one simulated CPU touches.
//! The kernel crate holds no raw atomics or locks over such state; it uses these cells, whose
//! accessors say how the access is ordered against other CPUs:
//!
//! - [`SharedWord`] and [`Shared`]: every access announces [`Obj::Var`] of the cell, so the
//!   explorer sees it as its own step (the field is written without a lock every reader holds:
//!   `vma->anon_vma`, `vm_flags`, `mm->tlb_flush_pending`, the maple tree, the page cache);
//! - [`Locked`]: a field whose writers hold every lock of a set exclusively and whose readers hold
//!   at least one of them (`vm_start`/`vm_end`/`vm_pgoff`: mmap W + VMA W + rmap W to write). The
//!   lock events order every read against every write, so the reads need no event of their own;
//!   writes announce one. The explorer checks the rule in every explored execution, as a
//!   happens-before data-race detector would ([`GuardLog`]): a read must come after the cell's
//!   last write, and a write after every read since the one before, in the happens-before order
//!   of the announced events; an unordered pair is a `data-race` violation;
//! - [`Counter`]: a statistic only updated by commutative atomic adds and only read at
//!   quiescence (`rss`, `nr_ptes`): no step's behaviour depends on it, so its updates need no
//!   event (reading it inside a step is a strict-mode violation);
//! - [`Ghost`]: the checker's own bookkeeping (registries of live objects, oracle histories),
//!   written anywhere and read only at quiescence.
//!
//! `peek` reads bypass the protocol and are allowed only outside the threads' steps (set-up,
//! quiescent checks, reports); strict mode reports one made inside a step.

use crate::backend::{Clock, CLOCK_THREADS};
use crate::event::{Access, Obj};
use crate::machine::{Cpu, Machine};
use crate::snapshot::{Memo, Snapshot};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// A word of shared state whose every access is announced.
#[derive(Debug)]
pub struct SharedWord {
    id: u64,
    v: AtomicU64,
}

impl SharedWord {
    pub fn new(id: u64, v: u64) -> Self {
        SharedWord {
            id,
            v: AtomicU64::new(v),
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// `READ_ONCE`.
    pub fn read(&self, cpu: &Cpu<'_>) -> u64 {
        cpu.visible(Obj::Var(self.id), Access::Read);
        self.v.load(Ordering::SeqCst)
    }

    /// `WRITE_ONCE`.
    pub fn write(&self, cpu: &Cpu<'_>, v: u64) {
        cpu.visible(Obj::Var(self.id), Access::Write);
        self.v.store(v, Ordering::SeqCst)
    }

    /// An RMW add returning the new value. Relaxed under `lkmm` (ordered like a store): its
    /// users are the kernel's void `atomic_inc` and seqcount increments, not a fully ordered
    /// `atomic_add_return`.
    pub fn add(&self, cpu: &Cpu<'_>, n: i64) -> i64 {
        cpu.visible(Obj::Var(self.id), Access::Rmw);
        (self.v.fetch_add(n as u64, Ordering::SeqCst) as i64).wrapping_add(n)
    }

    /// `atomic_add`, `atomic_inc`, `atomic_dec`: no result, so it commutes with other such adds.
    /// Under the weak memory models it orders like [`SharedWord::add`]: `tso` drains the buffer,
    /// `lkmm` only the stores before the last `smp_wmb` (relaxed, as the kernel's void atomics).
    pub fn atomic_add(&self, cpu: &Cpu<'_>, n: i64) {
        cpu.visible(Obj::Var(self.id), Access::Add);
        self.v.fetch_add(n as u64, Ordering::SeqCst);
    }

    /// `atomic_cmpxchg`: returns the value found (`old` on success). Fully ordered (under
    /// `lkmm` the CPU's buffered stores drain first), on failure too (stronger than the LKMM).
    pub fn cmpxchg(&self, cpu: &Cpu<'_>, old: u64, new: u64) -> u64 {
        cpu.wb_fully_ordered_rmw();
        cpu.visible(Obj::Var(self.id), Access::Rmw);
        cpu.wl_order();
        match self
            .v
            .compare_exchange(old, new, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(v) | Err(v) => v,
        }
    }

    /// Quiescent read (see the module doc).
    #[track_caller]
    pub fn peek(&self, m: &Machine) -> u64 {
        m.peek_check();
        self.v.load(Ordering::SeqCst)
    }
}

/// Structured shared state (a tree, a list) whose every access is announced.
#[derive(Debug)]
pub struct Shared<T> {
    id: u64,
    v: Mutex<T>,
}

impl<T> Shared<T> {
    pub fn new(id: u64, v: T) -> Self {
        Shared {
            id,
            v: Mutex::new(v),
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// The same cell holding `v` (a copy for a restored set-up state).
    fn copy_with(&self, v: T) -> Self {
        Shared::new(self.id, v)
    }

    /// An announced read.
    pub fn read<R>(&self, cpu: &Cpu<'_>, f: impl FnOnce(&T) -> R) -> R {
        cpu.visible(Obj::Var(self.id), Access::Read);
        cpu.in_cell(|| f(&self.v.lock()))
    }

    /// An announced read-modify-write.
    pub fn write<R>(&self, cpu: &Cpu<'_>, f: impl FnOnce(&mut T) -> R) -> R {
        cpu.visible(Obj::Var(self.id), Access::Rmw);
        cpu.in_cell(|| f(&mut self.v.lock()))
    }

    /// Quiescent read (see the module doc).
    #[track_caller]
    pub fn peek<R>(&self, m: &Machine, f: impl FnOnce(&T) -> R) -> R {
        m.peek_check();
        f(&self.v.lock())
    }

    /// Sleep until `ready` holds of the value (a wait queue its writers wake): a blocking
    /// announced read.
    pub fn wait_until(&self, cpu: &Cpu<'_>, ready: impl Fn(&T) -> bool) {
        cpu.block(Obj::Var(self.id), Access::Read, &|| ready(&self.v.lock()));
    }
}

/// State protected by a set of locks: writers hold all of them exclusively (and announce the
/// write), readers hold at least one (and need not announce: see the module doc). Each use states
/// its rule with `// LOCKING:`; the explorer checks that the lock events order every read after
/// the last write and every write after the reads before it ([`GuardLog`]).
#[derive(Debug)]
pub struct Locked<T> {
    id: u64,
    v: Mutex<T>,
    log: GuardLog,
    /// What reports call the field when its id names something else (see [`Locked::labelled`]).
    label: Option<&'static str>,
}

impl<T> Locked<T> {
    pub fn new(id: u64, v: T) -> Self {
        Locked {
            id,
            v: Mutex::new(v),
            log: GuardLog::default(),
            label: None,
        }
    }

    /// A cell whose writes are announced on `id`, an object that also stands for other state
    /// (a VMA's range on its mm's maple tree), named `label` in reports.
    pub fn labelled(id: u64, label: &'static str, v: T) -> Self {
        Locked {
            label: Some(label),
            ..Locked::new(id, v)
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// The same cell holding `v`, with an empty access log (a copy for a restored set-up
    /// state).
    fn copy_with(&self, v: T) -> Self {
        Locked {
            label: self.label,
            ..Locked::new(self.id, v)
        }
    }

    /// A read under one of the protecting locks (checked: see [`GuardLog`]).
    #[track_caller]
    pub fn read<R>(&self, cpu: &Cpu<'_>, f: impl FnOnce(&T) -> R) -> R {
        cpu.guarded(self.id, self.label, &self.log, false);
        cpu.in_cell(|| f(&self.v.lock()))
    }

    /// An announced read by a CPU that holds none of the protecting locks for write (the
    /// kernel's racy reads of such state, e.g. `list_is_singular` on a neighbour's chain).
    pub fn read_racy<R>(&self, cpu: &Cpu<'_>, f: impl FnOnce(&T) -> R) -> R {
        cpu.visible(Obj::Var(self.id), Access::Read);
        cpu.in_cell(|| f(&self.v.lock()))
    }

    /// A write with every protecting lock held exclusively.
    #[track_caller]
    pub fn write<R>(&self, cpu: &Cpu<'_>, f: impl FnOnce(&mut T) -> R) -> R {
        cpu.visible(Obj::Var(self.id), Access::Write);
        cpu.guarded(self.id, self.label, &self.log, true);
        cpu.in_cell(|| f(&mut self.v.lock()))
    }

    /// Quiescent read (see the module doc).
    #[track_caller]
    pub fn peek<R>(&self, m: &Machine, f: impl FnOnce(&T) -> R) -> R {
        m.peek_check();
        f(&self.v.lock())
    }

    /// The value for `Debug` output only: never for a decision of the model.
    pub fn debug_value<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.v.lock())
    }
}

/// What the explorer remembers of a [`Locked`] cell's unannounced accesses in the running
/// execution: its last write and, per thread, the latest event of that thread that read it
/// since, each as (thread, event number from 1). Checked against the happens-before clock of
/// the step making the access, which the explorer computes from the same dependency relation
/// its reduction uses: if no explored execution has an unordered pair, none has (the pair that
/// first becomes unordered in an unexplored execution is unordered in an explored one), so
/// the reads may safely stay out of the dependency relation.
#[derive(Debug, Default)]
pub struct GuardLog(Mutex<GuardState>);

#[derive(Debug, Default)]
struct GuardState {
    write: Option<(usize, u32)>,
    reads: [u32; CLOCK_THREADS],
}

/// An access a [`GuardLog`] check found unordered with the one being made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unordered {
    pub thread: usize,
    /// The thread's event number (from 1) whose step made the access.
    pub event: u32,
    pub write: bool,
}

impl GuardLog {
    /// Thread `t`'s `k`-th event reads (`write` false) or writes the cell: check it against the
    /// accesses the log holds, then record it. `clock` gives the event's happens-before clock;
    /// it is asked only when another thread made one of those accesses.
    pub fn access(
        &self,
        t: usize,
        k: u32,
        write: bool,
        clock: impl FnOnce() -> Clock,
    ) -> Result<(), Unordered> {
        let mut s = self.0.lock();
        let other_write = s.write.filter(|&(w, _)| w != t);
        let other_read = |s: &GuardState| s.reads.iter().enumerate().any(|(u, &a)| u != t && a > 0);
        let mut r = Ok(());
        if other_write.is_some() || write && other_read(&s) {
            let c = clock();
            if let Some((w, wk)) = other_write.filter(|&(w, wk)| c[w] < wk) {
                r = Err(Unordered {
                    thread: w,
                    event: wk,
                    write: true,
                });
            }
            if write {
                let unordered = s
                    .reads
                    .iter()
                    .enumerate()
                    .find(|&(u, &a)| u != t && a > 0 && c[u] < a);
                if let Some((u, &a)) = unordered {
                    r = r.and(Err(Unordered {
                        thread: u,
                        event: a,
                        write: false,
                    }));
                }
            }
        }
        if write {
            s.write = Some((t, k));
            s.reads = [0; CLOCK_THREADS];
        } else if let Some(x) = s.reads.get_mut(t) {
            *x = (*x).max(k);
        }
        r
    }
}

/// A statistic: commutative adds from anywhere, reads only at quiescence.
#[derive(Debug, Default)]
pub struct Counter(AtomicI64);

impl Counter {
    pub fn new(v: i64) -> Self {
        Counter(AtomicI64::new(v))
    }

    /// `add_mm_counter` and the like.
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::SeqCst);
    }

    /// Quiescent read.
    #[track_caller]
    pub fn peek(&self, m: &Machine) -> i64 {
        m.peek_check();
        self.0.load(Ordering::SeqCst)
    }

    /// Read in code that has no machine at hand and runs only at quiescence or natively
    /// (differential tests against the host kernel).
    pub fn get_quiescent(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The checker's own bookkeeping: written anywhere, never read by the model's paths.
#[derive(Debug, Default)]
pub struct Ghost<T>(Mutex<T>);

impl<T> Ghost<T> {
    pub fn new(v: T) -> Self {
        Ghost(Mutex::new(v))
    }

    /// Record something (any time).
    pub fn record<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.0.lock())
    }

    /// Read at quiescence (strict mode checks it).
    #[track_caller]
    pub fn peek<R>(&self, m: &Machine, f: impl FnOnce(&T) -> R) -> R {
        m.peek_check();
        f(&self.0.lock())
    }

    /// Resolve an id to its object (a registry standing in for a pointer the kernel stores, like
    /// `folio->mapping`): the association never changes while the object lives.
    pub fn deref<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.0.lock())
    }

    /// Read by an oracle at the instant the kernel's contract is checked, inside a step: the
    /// value read must be ghost state updated at linearization points (never model state).
    pub fn oracle<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.0.lock())
    }
}

// Copies for restoring a set-up state (see [`crate::snapshot`]): the same id, the value copied.

impl Snapshot for SharedWord {
    fn snapshot(&self, _: &mut Memo) -> Self {
        SharedWord::new(self.id, self.v.load(Ordering::SeqCst))
    }
}

impl Snapshot for Counter {
    fn snapshot(&self, _: &mut Memo) -> Self {
        Counter::new(self.0.load(Ordering::SeqCst))
    }
}

impl<T: Snapshot> Snapshot for Ghost<T> {
    fn snapshot(&self, m: &mut Memo) -> Self {
        Ghost::new(self.0.lock().snapshot(m))
    }
}

/// The cells of an object that may hold other objects are copied in two parts (see
/// [`crate::snapshot::SnapshotObj`]): [`CellCopy::empty_copy`] in the shell, then
/// [`CellCopy::fill_copy`].
pub trait CellCopy: Sized {
    /// The same cell with the default value.
    fn empty_copy(&self) -> Self;
    /// Set `copy`'s value to a copy of this cell's.
    fn fill_copy(&self, copy: &Self, m: &mut Memo);
}

macro_rules! cell_snapshot {
    ($cell:ident) => {
        impl<T: Snapshot> Snapshot for $cell<T> {
            fn snapshot(&self, m: &mut Memo) -> Self {
                self.copy_with(self.v.lock().snapshot(m))
            }
        }

        impl<T: Snapshot + Default> CellCopy for $cell<T> {
            fn empty_copy(&self) -> Self {
                self.copy_with(T::default())
            }

            fn fill_copy(&self, copy: &Self, m: &mut Memo) {
                let v = self.v.lock().snapshot(m);
                *copy.v.lock() = v;
            }
        }
    };
}

cell_snapshot!(Shared);

// A copy of a Locked starts with an empty access log (`copy_with`): the set-up's accesses come
// before every step.
cell_snapshot!(Locked);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spinlock::tests::seq_machine;

    #[test]
    fn announcing_inside_a_cell_closure_is_a_model_bug() {
        let m = seq_machine(1, 4);
        let c = m.cpu(0);
        let a = Shared::new(m.new_id(), 1u64);
        let b = SharedWord::new(m.new_id(), 2);
        // Cloning out first is fine.
        let v = a.read(&c, |x| *x);
        assert_eq!(v + b.read(&c), 3);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            a.read(&c, |_| b.read(&c));
        }));
        assert!(
            r.is_err(),
            "a visible operation inside a closure must be refused"
        );
    }

    #[test]
    fn a_panic_inside_a_cell_closure_leaves_visible_operations_allowed() {
        let m = seq_machine(1, 4);
        let c = m.cpu(0);
        let a = Shared::new(m.new_id(), 1u64);
        let b = SharedWord::new(m.new_id(), 2);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            a.read(&c, |_| -> u64 { panic!("a model bug inside the closure") })
        }));
        assert!(r.is_err());
        // The unwinding's lock releases, and everything after, announce as usual.
        assert_eq!(b.read(&c), 2);
    }
}
