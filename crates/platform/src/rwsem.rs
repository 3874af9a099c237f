//! Read-write semaphores with writer preference and trylock: `mmap_lock`, `anon_vma->rwsem`,
//! `i_mmap_rwsem` (`kernel/locking/rwsem.c`, as far as the protocol can tell: a waiting writer
//! blocks new readers).

use crate::event::{Access, Obj};
use crate::machine::Cpu;
use std::sync::atomic::{AtomicU64, Ordering};

const WRITER: u64 = 1 << 32;
const WAITER: u64 = 1 << 33;
const READERS: u64 = WRITER - 1;

/// A read-write semaphore.
///
/// # Invariants
/// `state` holds the reader count (low 32 bits), a writer bit, and the number of waiting writers
/// (from bit 33). Writer and readers are never both present.
#[derive(Debug)]
pub struct RwSem {
    id: u64,
    state: AtomicU64,
    /// CPU + 1 of the writer, for reports.
    writer: AtomicU64,
}

impl RwSem {
    pub const fn new(id: u64) -> Self {
        RwSem {
            id,
            state: AtomicU64::new(0),
            writer: AtomicU64::new(0),
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn is_write_locked(&self) -> bool {
        self.state.load(Ordering::SeqCst) & WRITER != 0
    }

    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::SeqCst) & (WRITER | READERS) != 0
    }

    pub fn readers(&self) -> u64 {
        self.state.load(Ordering::SeqCst) & READERS
    }

    /// The CPU holding the semaphore for write, if any.
    pub fn write_owner(&self) -> Option<usize> {
        match self.writer.load(Ordering::SeqCst) {
            0 => None,
            w => Some(w as usize - 1),
        }
    }

    fn read_ready(s: u64) -> bool {
        s & WRITER == 0 && s >> 33 == 0
    }

    fn try_read_raw(&self) -> bool {
        let s = self.state.load(Ordering::SeqCst);
        Self::read_ready(s)
            && self
                .state
                .compare_exchange(s, s + 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
    }

    /// `down_read`.
    #[track_caller]
    pub fn read<'a>(&'a self, cpu: Cpu<'a>) -> RwSemReadGuard<'a> {
        self.read_raw(cpu);
        RwSemReadGuard { sem: self, cpu }
    }

    #[track_caller]
    pub(crate) fn read_raw(&self, cpu: Cpu<'_>) {
        if cpu.lock_site_id(self.id) {
            return;
        }
        cpu.wait_for(
            Obj::Lock(self.id),
            Access::AcquireShared,
            &|| Self::read_ready(self.state.load(Ordering::SeqCst)),
            &mut || self.try_read_raw(),
        );
    }

    /// `down_read_trylock`.
    #[track_caller]
    pub fn try_read<'a>(&'a self, cpu: Cpu<'a>) -> Option<RwSemReadGuard<'a>> {
        if cpu.lock_site_id(self.id) {
            return Some(RwSemReadGuard { sem: self, cpu });
        }
        cpu.visible(Obj::Lock(self.id), Access::TryAcquire);
        let ok = self.try_read_raw();
        cpu.trylock_result(self.id, ok);
        ok.then(|| RwSemReadGuard { sem: self, cpu })
    }

    pub(crate) fn read_unlock_raw(&self, cpu: Cpu<'_>) {
        if cpu.skip_release(self.id) {
            return;
        }
        cpu.visible(Obj::Lock(self.id), Access::ReleaseShared);
        self.state.fetch_sub(1, Ordering::SeqCst);
    }

    /// `down_write`: announce the waiting writer (new readers now block), then wait for the owners
    /// to leave.
    #[track_caller]
    pub fn write<'a>(&'a self, cpu: Cpu<'a>) -> RwSemWriteGuard<'a> {
        self.write_raw(cpu);
        RwSemWriteGuard { sem: self, cpu }
    }

    #[track_caller]
    pub(crate) fn write_raw(&self, cpu: Cpu<'_>) {
        if cpu.lock_site_id(self.id) {
            return;
        }
        cpu.visible(Obj::Lock(self.id), Access::WriterWait);
        self.state.fetch_add(WAITER, Ordering::SeqCst);
        cpu.wait_for(
            Obj::Lock(self.id),
            Access::Acquire,
            &|| self.state.load(Ordering::SeqCst) & (WRITER | READERS) == 0,
            &mut || {
                let s = self.state.load(Ordering::SeqCst);
                s & (WRITER | READERS) == 0
                    && self
                        .state
                        .compare_exchange(
                            s,
                            s - WAITER + WRITER,
                            Ordering::SeqCst,
                            Ordering::SeqCst,
                        )
                        .is_ok()
            },
        );
        self.writer.store(cpu.id as u64 + 1, Ordering::SeqCst);
    }

    #[track_caller]
    pub(crate) fn try_write_raw(&self, cpu: Cpu<'_>) -> bool {
        if cpu.lock_site_id(self.id) {
            return true;
        }
        cpu.visible(Obj::Lock(self.id), Access::TryAcquire);
        let ok = self
            .state
            .compare_exchange(0, WRITER, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        cpu.trylock_result(self.id, ok);
        if ok {
            self.writer.store(cpu.id as u64 + 1, Ordering::SeqCst);
        }
        ok
    }

    /// `down_write_trylock`.
    #[track_caller]
    pub fn try_write<'a>(&'a self, cpu: Cpu<'a>) -> Option<RwSemWriteGuard<'a>> {
        self.try_write_raw(cpu)
            .then(|| RwSemWriteGuard { sem: self, cpu })
    }

    pub(crate) fn write_unlock_raw(&self, cpu: Cpu<'_>) {
        if cpu.skip_release(self.id) {
            return;
        }
        cpu.visible(Obj::Lock(self.id), Access::Release);
        self.writer.store(0, Ordering::SeqCst);
        self.state.fetch_sub(WRITER, Ordering::SeqCst);
    }

    /// `downgrade_write`: writer becomes a reader atomically.
    pub(crate) fn downgrade_raw(&self, cpu: Cpu<'_>) {
        if cpu.holds_skipped(self.id) {
            return; // a skipped write hold becomes a skipped read hold
        }
        cpu.visible(Obj::Lock(self.id), Access::Downgrade);
        self.writer.store(0, Ordering::SeqCst);
        self.state.fetch_sub(WRITER - 1, Ordering::SeqCst);
    }
}

/// A read hold; dropping it is `up_read`.
#[must_use = "dropping the guard unlocks"]
pub struct RwSemReadGuard<'a> {
    sem: &'a RwSem,
    cpu: Cpu<'a>,
}

impl Drop for RwSemReadGuard<'_> {
    fn drop(&mut self) {
        self.sem.read_unlock_raw(self.cpu);
    }
}

/// A write hold; dropping it is `up_write`.
#[must_use = "dropping the guard unlocks"]
pub struct RwSemWriteGuard<'a> {
    sem: &'a RwSem,
    cpu: Cpu<'a>,
}

impl<'a> RwSemWriteGuard<'a> {
    /// `downgrade_write`.
    pub fn downgrade(self) -> RwSemReadGuard<'a> {
        let (sem, cpu) = (self.sem, self.cpu);
        std::mem::forget(self);
        sem.downgrade_raw(cpu);
        RwSemReadGuard { sem, cpu }
    }
}

impl Drop for RwSemWriteGuard<'_> {
    fn drop(&mut self) {
        self.sem.write_unlock_raw(self.cpu);
    }
}

impl crate::Snapshot for RwSem {
    fn snapshot(&self, _: &mut crate::Memo) -> Self {
        let RwSem { id, state, writer } = self;
        RwSem {
            id: *id,
            state: AtomicU64::new(state.load(Ordering::SeqCst)),
            writer: AtomicU64::new(writer.load(Ordering::SeqCst)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spinlock::tests::{kinds, seq_machine};
    use crate::Machine;
    use parking_lot::Mutex;

    fn waiting_writers(s: &RwSem) -> u64 {
        s.state.load(Ordering::SeqCst) >> 33
    }

    #[test]
    fn readers_share() {
        let m = seq_machine(3, 4);
        let s = RwSem::new(7);
        let r0 = s.read(m.cpu(0));
        let r1 = s.try_read(m.cpu(1)).expect("readers share");
        assert_eq!(s.readers(), 2);
        assert!(s.is_locked() && !s.is_write_locked());
        assert_eq!(s.write_owner(), None);
        assert!(s.try_write(m.cpu(2)).is_none(), "readers exclude a writer");
        drop(r0);
        assert_eq!(s.readers(), 1);
        assert!(s.try_write(m.cpu(2)).is_none());
        drop(r1);
        assert!(!s.is_locked());
        let w = s.try_write(m.cpu(2)).expect("free again");
        assert_eq!(s.write_owner(), Some(2));
        drop(w);
        assert!(kinds(&m).is_empty());
    }

    #[test]
    fn writer_excludes_readers_and_writers() {
        let m = seq_machine(2, 4);
        let s = RwSem::new(7);
        let w = s.write(m.cpu(0));
        assert!(s.is_write_locked() && s.is_locked());
        assert_eq!(s.write_owner(), Some(0));
        assert_eq!(s.readers(), 0);
        assert_eq!(
            waiting_writers(&s),
            0,
            "the acquired writer is no longer waiting"
        );
        assert!(s.try_read(m.cpu(1)).is_none());
        assert!(s.try_write(m.cpu(1)).is_none());
        assert_eq!(s.write_owner(), Some(0), "failed attempts change nothing");
        drop(w);
        assert!(!s.is_locked());
        assert_eq!(s.write_owner(), None);
        let r = s.try_read(m.cpu(1)).expect("released");
        drop(r);
    }

    #[test]
    fn downgrade_turns_the_writer_into_a_reader() {
        let m = seq_machine(3, 4);
        let s = RwSem::new(7);
        let w = s.write(m.cpu(0));
        let r = w.downgrade();
        assert!(!s.is_write_locked());
        assert_eq!(s.write_owner(), None);
        assert_eq!(s.readers(), 1);
        let r2 = s
            .try_read(m.cpu(1))
            .expect("other readers may join after a downgrade");
        assert_eq!(s.readers(), 2);
        assert!(s.try_write(m.cpu(2)).is_none());
        drop(r);
        drop(r2);
        assert!(!s.is_locked());
        assert_eq!(s.state.load(Ordering::SeqCst), 0);
    }

    /// CPU0 reads; CPU1 wants to write and announces itself; from then on CPU2's `try_read`
    /// fails and a blocking reader (CPU3) gets in only after the writer.
    #[test]
    fn waiting_writer_blocks_new_readers() {
        let m = Machine::native(crate::spinlock::tests::config(4, 4));
        let s = RwSem::new(7);
        let log = Mutex::new(Vec::new());
        let r0 = s.read(m.cpu(0));
        std::thread::scope(|sc| {
            let (m, s, log) = (&m, &s, &log);
            let writer = sc.spawn(move || {
                let w = s.write(m.cpu(1));
                log.lock().push("writer in");
                assert_eq!(s.readers(), 0);
                assert_eq!(s.write_owner(), Some(1));
                drop(w);
            });
            while waiting_writers(s) == 0 {
                std::thread::yield_now();
            }
            assert!(!s.is_write_locked(), "the reader still holds the lock");
            assert!(
                s.try_read(m.cpu(2)).is_none(),
                "a waiting writer must block new readers"
            );
            assert_eq!(s.readers(), 1);
            let late = sc.spawn(move || {
                let g = s.read(m.cpu(3));
                log.lock().push("late reader in");
                drop(g);
            });
            log.lock().push("first reader out");
            drop(r0);
            writer.join().unwrap();
            late.join().unwrap();
        });
        assert_eq!(
            *log.lock(),
            vec!["first reader out", "writer in", "late reader in"]
        );
        assert!(!s.is_locked());
        assert_eq!(s.state.load(Ordering::SeqCst), 0);
        assert!(!m.violated());
    }

    /// A writer that waits behind a downgraded writer still keeps new readers out.
    #[test]
    fn downgrade_keeps_writer_preference() {
        let m = Machine::native(crate::spinlock::tests::config(3, 4));
        let s = RwSem::new(7);
        let w = s.write(m.cpu(0));
        std::thread::scope(|sc| {
            let (m, s) = (&m, &s);
            let writer = sc.spawn(move || {
                let w = s.write(m.cpu(1));
                assert_eq!(s.write_owner(), Some(1));
                drop(w);
            });
            while waiting_writers(s) == 0 {
                std::thread::yield_now();
            }
            let r = w.downgrade();
            assert_eq!(s.readers(), 1);
            assert!(s.try_read(m.cpu(2)).is_none());
            drop(r);
            writer.join().unwrap();
        });
        assert_eq!(s.state.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn try_write_fails_while_a_writer_waits() {
        let s = RwSem::new(7);
        let m = seq_machine(2, 4);
        // Simulate an announced waiter (down_write's first step) without blocking this thread.
        s.state.fetch_add(WAITER, Ordering::SeqCst);
        assert!(s.try_write(m.cpu(0)).is_none());
        assert!(s.try_read(m.cpu(1)).is_none());
        s.state.fetch_sub(WAITER, Ordering::SeqCst);
        assert!(s.try_write(m.cpu(0)).is_some());
    }
}
