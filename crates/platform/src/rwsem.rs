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
    pub fn read<'a>(&'a self, cpu: Cpu<'a>) -> RwSemReadGuard<'a> {
        self.read_raw(cpu);
        RwSemReadGuard { sem: self, cpu }
    }

    pub(crate) fn read_raw(&self, cpu: Cpu<'_>) {
        cpu.wait_for(
            Obj::Lock(self.id),
            Access::AcquireShared,
            &|| Self::read_ready(self.state.load(Ordering::SeqCst)),
            &mut || self.try_read_raw(),
        );
    }

    /// `down_read_trylock`.
    pub fn try_read<'a>(&'a self, cpu: Cpu<'a>) -> Option<RwSemReadGuard<'a>> {
        cpu.visible(Obj::Lock(self.id), Access::AcquireShared);
        self.try_read_raw()
            .then_some(RwSemReadGuard { sem: self, cpu })
    }

    pub(crate) fn read_unlock_raw(&self, cpu: Cpu<'_>) {
        cpu.visible(Obj::Lock(self.id), Access::ReleaseShared);
        self.state.fetch_sub(1, Ordering::SeqCst);
    }

    /// `down_write`: announce the waiting writer (new readers now block), then wait for the owners
    /// to leave.
    pub fn write<'a>(&'a self, cpu: Cpu<'a>) -> RwSemWriteGuard<'a> {
        self.write_raw(cpu);
        RwSemWriteGuard { sem: self, cpu }
    }

    pub(crate) fn write_raw(&self, cpu: Cpu<'_>) {
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

    pub(crate) fn try_write_raw(&self, cpu: Cpu<'_>) -> bool {
        cpu.visible(Obj::Lock(self.id), Access::Acquire);
        let ok = self
            .state
            .compare_exchange(0, WRITER, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if ok {
            self.writer.store(cpu.id as u64 + 1, Ordering::SeqCst);
        }
        ok
    }

    /// `down_write_trylock`.
    pub fn try_write<'a>(&'a self, cpu: Cpu<'a>) -> Option<RwSemWriteGuard<'a>> {
        self.try_write_raw(cpu)
            .then_some(RwSemWriteGuard { sem: self, cpu })
    }

    pub(crate) fn write_unlock_raw(&self, cpu: Cpu<'_>) {
        cpu.visible(Obj::Lock(self.id), Access::Release);
        self.writer.store(0, Ordering::SeqCst);
        self.state.fetch_sub(WRITER, Ordering::SeqCst);
    }

    /// `downgrade_write`: writer becomes a reader atomically.
    pub(crate) fn downgrade_raw(&self, cpu: Cpu<'_>) {
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
