//! Spinlocks: the PTE and PMD page-table locks and `mm->page_table_lock`
//! (`include/linux/spinlock.h`, `include/linux/mm.h` split ptlocks).

use crate::event::{Access, Obj};
use crate::machine::Cpu;
use std::sync::atomic::{AtomicU32, Ordering};

/// A spinlock. The owner is recorded (CPU + 1) so deadlock and lock-order reports can name it.
#[derive(Debug)]
pub struct SpinLock {
    id: u64,
    owner: AtomicU32,
}

impl SpinLock {
    pub const fn new(id: u64) -> Self {
        SpinLock {
            id,
            owner: AtomicU32::new(0),
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// The CPU holding the lock, if any.
    pub fn owner(&self) -> Option<usize> {
        match self.owner.load(Ordering::SeqCst) {
            0 => None,
            o => Some(o as usize - 1),
        }
    }

    pub fn is_locked(&self) -> bool {
        self.owner.load(Ordering::SeqCst) != 0
    }

    fn try_acquire(&self, cpu: &Cpu<'_>) -> bool {
        self.owner
            .compare_exchange(0, cpu.id as u32 + 1, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// `spin_lock`.
    #[track_caller]
    pub fn lock<'a>(&'a self, cpu: Cpu<'a>) -> SpinGuard<'a> {
        if cpu.lock_site_id(self.id) {
            return SpinGuard {
                lock: self,
                cpu,
                owned: false,
            };
        }
        if cpu.warn_on(
            self.owner() == Some(cpu.id),
            "spin_lock: recursive acquire (AA deadlock)",
        ) {
            return SpinGuard {
                lock: self,
                cpu,
                owned: false,
            };
        }
        cpu.wait_for(
            Obj::Lock(self.id),
            Access::Acquire,
            &|| !self.is_locked(),
            &mut || self.try_acquire(&cpu),
        );
        self.check_frame(&cpu);
        SpinGuard {
            lock: self,
            cpu,
            owned: true,
        }
    }

    /// `spin_trylock`.
    #[track_caller]
    pub fn try_lock<'a>(&'a self, cpu: Cpu<'a>) -> Option<SpinGuard<'a>> {
        if cpu.lock_site_id(self.id) {
            return Some(SpinGuard {
                lock: self,
                cpu,
                owned: false,
            });
        }
        cpu.visible(Obj::Lock(self.id), Access::TryAcquire);
        let ok = self.try_acquire(&cpu);
        cpu.trylock_result(self.id, ok);
        if ok {
            self.check_frame(&cpu);
        }
        ok.then(|| SpinGuard {
            lock: self,
            cpu,
            owned: true,
        })
    }

    /// A lock living in a frame (a split PTL) must be taken while the frame is allocated:
    /// checked in the same step as the acquisition.
    fn check_frame(&self, cpu: &Cpu<'_>) {
        if let Some(pfn) = Obj::Lock(self.id).frame() {
            let f = &cpu.m.frames;
            f.check(cpu, f.current(pfn), "lock in a freed page (PTL)");
        }
    }

    /// Release without a guard. Used only by the frames arena to reset a lock of a fresh frame.
    pub(crate) fn reset(&self) {
        self.owner.store(0, Ordering::SeqCst);
    }

    /// Make this lock (of the same id) what `t` is (see [`crate::Machine::reset_from`]).
    pub(crate) fn reset_from(&mut self, t: &SpinLock) {
        let SpinLock { id, owner } = self;
        debug_assert_eq!(*id, t.id);
        *owner.get_mut() = t.owner.load(Ordering::SeqCst);
    }
}

/// A held spinlock; dropping it is `spin_unlock`.
#[must_use = "dropping the guard unlocks"]
pub struct SpinGuard<'a> {
    lock: &'a SpinLock,
    cpu: Cpu<'a>,
    owned: bool,
}

impl SpinGuard<'_> {
    pub fn lock_id(&self) -> u64 {
        self.lock.id
    }
}

impl Drop for SpinGuard<'_> {
    fn drop(&mut self) {
        if self.owned {
            self.cpu.visible(Obj::Lock(self.lock.id), Access::Release);
            self.lock.owner.store(0, Ordering::SeqCst);
        } else {
            // A mutant's skipped acquisition (or a reported AA deadlock): nothing to release.
            self.cpu.skip_release(self.lock.id);
        }
    }
}

impl crate::Snapshot for SpinLock {
    fn snapshot(&self, _: &mut crate::Memo) -> Self {
        let SpinLock { id, owner } = self;
        SpinLock {
            id: *id,
            owner: AtomicU32::new(owner.load(Ordering::SeqCst)),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Spinlock unit tests, and the test support the other platform test modules share: a
    //! backend that turns waits into observable notes (or into panics in single-threaded tests).

    use super::*;
    use crate::backend::Backend;
    use crate::event::Event;
    use crate::machine::{Machine, MachineConfig};
    use crate::violation::{Violation, ViolationKind};
    use std::sync::mpsc;

    /// What the probe backend or a test thread reports.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum Note {
        /// `cpu` began waiting for `ev` and the condition did not hold yet.
        Waiting { cpu: usize, ev: Event },
        /// A test thread running as `cpu` finished the step named by the tag.
        Done(usize, &'static str),
    }

    /// A backend for tests.
    pub(crate) enum TestBackend {
        /// Single-threaded tests: a wait whose condition does not hold at once can never end, so
        /// it panics instead of spinning forever.
        Sequential,
        /// Multi-threaded tests: a wait whose condition does not hold yet is reported, then the
        /// backend spins like the native one.
        Probe(mpsc::Sender<Note>),
    }

    impl Backend for TestBackend {
        fn visible(&self, _cpu: usize, _ev: Event) {}

        fn block(&self, cpu: usize, ev: Event, ready: &dyn Fn() -> bool) {
            if ready() {
                return;
            }
            match self {
                TestBackend::Sequential => {
                    panic!("CPU{cpu} would wait forever for {ev:?} in a single-threaded test")
                }
                TestBackend::Probe(tx) => {
                    let _ = tx.send(Note::Waiting { cpu, ev });
                    while !ready() {
                        std::thread::yield_now();
                    }
                }
            }
        }

        fn violation(&self, _cpu: usize, _v: &Violation) {}
    }

    pub(crate) fn config(nr_cpus: usize, nr_frames: usize) -> MachineConfig {
        MachineConfig {
            nr_cpus,
            nr_frames,
            entries_per_table: 512,
            tlb_entries: 64,
        }
    }

    /// A machine for single-threaded tests (waits that cannot proceed panic).
    pub(crate) fn seq_machine(nr_cpus: usize, nr_frames: usize) -> Machine {
        Machine::new(
            config(nr_cpus, nr_frames),
            Box::new(TestBackend::Sequential),
        )
    }

    /// A machine whose waits are reported on the returned receiver; the sender is for test
    /// threads' own [`Note::Done`] notes.
    pub(crate) fn probe_machine(
        nr_cpus: usize,
        nr_frames: usize,
    ) -> (Machine, mpsc::Sender<Note>, mpsc::Receiver<Note>) {
        let (tx, rx) = mpsc::channel();
        let m = Machine::new(
            config(nr_cpus, nr_frames),
            Box::new(TestBackend::Probe(tx.clone())),
        );
        (m, tx, rx)
    }

    /// Receive notes until `cpu` is seen waiting for an `access` event. Panics if `cpu` reports
    /// that it finished first: the operation did not wait.
    pub(crate) fn expect_waiting(
        rx: &mpsc::Receiver<Note>,
        cpu: usize,
        access: crate::event::Access,
    ) -> Event {
        loop {
            match rx.recv().expect("test threads hung up") {
                Note::Waiting { cpu: c, ev } if c == cpu && ev.access == access => return ev,
                Note::Done(c, tag) if c == cpu => {
                    panic!("CPU{cpu} finished {tag:?} without waiting for {access:?}")
                }
                _ => {}
            }
        }
    }

    /// Receive notes until `cpu` reports `tag` done.
    pub(crate) fn expect_done(rx: &mpsc::Receiver<Note>, cpu: usize, tag: &'static str) {
        loop {
            if rx.recv().expect("test threads hung up") == Note::Done(cpu, tag) {
                return;
            }
        }
    }

    /// The kinds of every violation recorded on `m`.
    pub(crate) fn kinds(m: &Machine) -> Vec<ViolationKind> {
        m.violations().iter().map(|v| v.kind).collect()
    }

    #[test]
    fn lock_records_owner_and_drop_releases() {
        let m = seq_machine(2, 4);
        let l = SpinLock::new(42);
        assert_eq!(l.id(), 42);
        assert!(!l.is_locked());
        assert_eq!(l.owner(), None);
        let g = l.lock(m.cpu(1));
        assert_eq!(g.lock_id(), 42);
        assert!(l.is_locked());
        assert_eq!(l.owner(), Some(1));
        drop(g);
        assert!(!l.is_locked());
        assert_eq!(l.owner(), None);
        let g = l.lock(m.cpu(0));
        assert_eq!(l.owner(), Some(0));
        drop(g);
        assert!(!m.violated());
    }

    #[test]
    fn try_lock_fails_while_held_and_succeeds_after() {
        let m = seq_machine(2, 4);
        let l = SpinLock::new(1);
        let g = l.try_lock(m.cpu(0)).expect("free lock");
        assert_eq!(l.owner(), Some(0));
        assert!(l.try_lock(m.cpu(1)).is_none());
        assert_eq!(l.owner(), Some(0), "a failed trylock changes nothing");
        drop(g);
        let g = l.try_lock(m.cpu(1)).expect("released");
        assert_eq!(l.owner(), Some(1));
        drop(g);
        assert!(!l.is_locked());
    }

    #[test]
    fn recursive_lock_is_reported_and_its_guard_does_not_unlock() {
        let m = seq_machine(1, 4);
        let l = SpinLock::new(1);
        let g = l.lock(m.cpu(0));
        let again = l.lock(m.cpu(0));
        assert_eq!(kinds(&m), vec![ViolationKind::Assertion]);
        assert!(m.violations()[0].msg.contains("recursive"));
        drop(again);
        assert_eq!(
            l.owner(),
            Some(0),
            "the bogus guard must not release the real hold"
        );
        drop(g);
        assert!(!l.is_locked());
    }

    #[test]
    fn lock_waits_for_the_holder_on_another_cpu() {
        let (m, tx, rx) = probe_machine(2, 4);
        let l = SpinLock::new(9);
        let g = l.lock(m.cpu(0));
        std::thread::scope(|s| {
            let (m, l) = (&m, &l);
            s.spawn(move || {
                let g = l.lock(m.cpu(1));
                assert_eq!(l.owner(), Some(1));
                drop(g);
                tx.send(Note::Done(1, "locked")).unwrap();
            });
            let ev = expect_waiting(&rx, 1, crate::event::Access::Acquire);
            assert_eq!(ev.obj, crate::event::Obj::Lock(9));
            assert_eq!(l.owner(), Some(0));
            drop(g);
            expect_done(&rx, 1, "locked");
        });
        assert!(!l.is_locked());
        assert!(!m.violated());
    }
}
