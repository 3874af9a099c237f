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
    pub fn lock<'a>(&'a self, cpu: Cpu<'a>) -> SpinGuard<'a> {
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
        SpinGuard {
            lock: self,
            cpu,
            owned: true,
        }
    }

    /// `spin_trylock`.
    pub fn try_lock<'a>(&'a self, cpu: Cpu<'a>) -> Option<SpinGuard<'a>> {
        cpu.visible(Obj::Lock(self.id), Access::Acquire);
        self.try_acquire(&cpu).then_some(SpinGuard {
            lock: self,
            cpu,
            owned: true,
        })
    }

    /// Release without a guard. Used only by the frames arena to reset a lock of a fresh frame.
    pub(crate) fn reset(&self) {
        self.owner.store(0, Ordering::SeqCst);
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
        }
    }
}
