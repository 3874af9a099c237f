//! The mmap lock and the per-VMA lock, with the 6.15+ refcount semantics (`mm/mmap_lock.c`,
//! `include/linux/mmap_lock.h`, read at ≈6.17).
//!
//! - `mmap_write_lock` begins the `mm_lock_seq` seqcount (odd while held); `mmap_write_unlock` and
//!   `mmap_write_downgrade` end it, which ends every VMA write lock taken in that section at once:
//!   there is no `vma_end_write`.
//! - `vma_start_write` needs the mmap write lock (a [`MmapWriteGuard`] proves it), adds
//!   `VMA_LOCK_OFFSET` to `vm_refcnt`, waits until no reader remains, publishes `vm_lock_seq` and
//!   drops the offset.
//! - `vma_start_read` is try-only: it fails while the VMA is write-locked (seqs equal, or the offset
//!   is present) or detached (`vm_refcnt == 0`).

use crate::event::{Access, Obj};
use crate::machine::Cpu;
use crate::mutate::{VMA_READ_KEY, VMA_WRITE_KEY};
use crate::rwsem::RwSem;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// `VMA_LOCK_OFFSET`: added to `vm_refcnt` by a writer excluding readers.
pub const VMA_LOCK_OFFSET: u32 = 0x4000_0000;
/// `VMA_REF_LIMIT`: readers may not push the count past this.
pub const VMA_REF_LIMIT: u32 = VMA_LOCK_OFFSET - 1;

/// `mm->mmap_lock` plus `mm->mm_lock_seq`.
#[derive(Debug)]
pub struct MmapLock {
    sem: RwSem,
    seq_id: u64,
    seq: AtomicU64,
}

impl MmapLock {
    /// `lock_id` names the rwsem; `seq_id` names `mm_lock_seq`.
    pub const fn new(lock_id: u64, seq_id: u64) -> Self {
        MmapLock {
            sem: RwSem::new(lock_id),
            seq_id,
            seq: AtomicU64::new(0),
        }
    }

    pub fn sem(&self) -> &RwSem {
        &self.sem
    }

    fn read_seq(&self, cpu: &Cpu<'_>) -> u64 {
        cpu.read_var(self.seq_id, &self.seq)
    }

    /// `mmap_read_lock`.
    #[track_caller]
    pub fn read_lock<'a>(&'a self, cpu: Cpu<'a>) -> MmapReadGuard<'a> {
        let _f = cpu.enter("mmap_read_lock");
        self.sem.read_raw(cpu);
        MmapReadGuard { lock: self, cpu }
    }

    /// `mmap_read_trylock`.
    #[track_caller]
    pub fn read_trylock<'a>(&'a self, cpu: Cpu<'a>) -> Option<MmapReadGuard<'a>> {
        let g = self.sem.try_read(cpu)?;
        std::mem::forget(g);
        Some(MmapReadGuard { lock: self, cpu })
    }

    /// `mmap_write_lock`: take the rwsem, then begin the seqcount.
    #[track_caller]
    pub fn write_lock<'a>(&'a self, cpu: Cpu<'a>) -> MmapWriteGuard<'a> {
        let _f = cpu.enter("mmap_write_lock");
        self.sem.write_raw(cpu);
        self.seq_begin(&cpu);
        MmapWriteGuard { lock: self, cpu }
    }

    /// `mmap_write_trylock`.
    #[track_caller]
    pub fn write_trylock<'a>(&'a self, cpu: Cpu<'a>) -> Option<MmapWriteGuard<'a>> {
        if !self.sem.try_write_raw(cpu) {
            return None;
        }
        self.seq_begin(&cpu);
        Some(MmapWriteGuard { lock: self, cpu })
    }

    fn seq_begin(&self, cpu: &Cpu<'_>) {
        cpu.visible(Obj::Var(self.seq_id), Access::Rmw);
        self.seq.fetch_add(1, Ordering::SeqCst);
    }

    /// Ends every VMA write lock of this section.
    fn seq_end(&self, cpu: &Cpu<'_>) {
        cpu.end_skipped(|k| k & VMA_WRITE_KEY != 0);
        cpu.visible(Obj::Var(self.seq_id), Access::Rmw);
        self.seq.fetch_add(1, Ordering::SeqCst);
    }

    /// True while some CPU holds the lock for write.
    pub fn is_write_locked(&self) -> bool {
        self.sem.is_write_locked()
    }

    pub fn is_locked(&self) -> bool {
        self.sem.is_locked()
    }
}

/// `mmap_read_lock` held.
#[must_use = "dropping the guard unlocks"]
pub struct MmapReadGuard<'a> {
    lock: &'a MmapLock,
    cpu: Cpu<'a>,
}

impl<'a> MmapReadGuard<'a> {
    pub fn lock(&self) -> &'a MmapLock {
        self.lock
    }
}

impl Drop for MmapReadGuard<'_> {
    fn drop(&mut self) {
        let _f = self.cpu.enter("mmap_read_unlock");
        self.lock.sem.read_unlock_raw(self.cpu);
    }
}

/// `mmap_write_lock` held: the proof `vma_start_write` and VMA-tree changes ask for.
#[must_use = "dropping the guard unlocks"]
pub struct MmapWriteGuard<'a> {
    lock: &'a MmapLock,
    cpu: Cpu<'a>,
}

impl<'a> MmapWriteGuard<'a> {
    pub fn lock(&self) -> &'a MmapLock {
        self.lock
    }

    /// `mmap_write_downgrade`: end every VMA write lock, keep a read hold.
    pub fn downgrade(self) -> MmapReadGuard<'a> {
        let (lock, cpu) = (self.lock, self.cpu);
        std::mem::forget(self);
        let _f = cpu.enter("mmap_write_downgrade");
        lock.seq_end(&cpu);
        lock.sem.downgrade_raw(cpu);
        MmapReadGuard { lock, cpu }
    }

    /// `vma_start_write`.
    #[track_caller]
    pub fn vma_start_write(&self, vma: &VmaLock) {
        let cpu = self.cpu;
        let _f = cpu.enter("vma_start_write");
        if cpu.lock_site("vma_lock", vma.refcnt_id | VMA_WRITE_KEY) {
            return;
        }
        let mm_seq = self.lock.read_seq(&cpu);
        if cpu.read_var(vma.seq_id, &vma.vm_lock_seq) == mm_seq {
            return;
        }
        // __vma_enter_locked: exclude new readers, wait for the current ones.
        cpu.visible(Obj::Var(vma.refcnt_id), Access::Rmw);
        let attached = add_not_zero(&vma.vm_refcnt, VMA_LOCK_OFFSET);
        if attached {
            let ready = || vma.vm_refcnt.load(Ordering::SeqCst) == VMA_LOCK_OFFSET + 1;
            // rcuwait_wait_event. With weak loads, step by step: set_current_state's smp_mb,
            // then the check; a writer that finds readers sleeps, and its wake-up orders its
            // later loads after the last reader's vma_end_read; one that finds none goes on
            // with no acquire (unless the what-if `vma_lock.wait_acquire` adds one). Otherwise
            // one waiting step.
            let weak = cpu.wl_on();
            let sleeps = !weak || {
                cpu.smp_mb();
                cpu.visible(Obj::Var(vma.refcnt_id), Access::Read);
                !ready()
            };
            if sleeps {
                cpu.wait_for(Obj::Var(vma.refcnt_id), Access::Read, &ready, &mut || {
                    ready()
                });
            }
            if weak && (sleeps || cpu.m.vma_wait_acquire.load(Ordering::Relaxed)) {
                cpu.wl_order();
            }
        }
        cpu.write_var(vma.seq_id, &vma.vm_lock_seq, mm_seq);
        if attached {
            cpu.visible(Obj::Var(vma.refcnt_id), Access::Rmw);
            vma.vm_refcnt.fetch_sub(VMA_LOCK_OFFSET, Ordering::SeqCst);
        }
    }

    /// True if `vma` is write-locked in this section (`vma_assert_write_locked`).
    pub fn is_vma_write_locked(&self, vma: &VmaLock) -> bool {
        vma.vm_lock_seq.load(Ordering::SeqCst) == self.lock.seq.load(Ordering::SeqCst)
            || self.cpu.holds_skipped(vma.refcnt_id | VMA_WRITE_KEY)
    }

    /// `vma_mark_detached`: the VMA must be write-locked; drop the attach reference, waiting out
    /// readers that raced in and will fail their seq recheck.
    pub fn vma_mark_detached(&self, vma: &VmaLock) {
        let cpu = self.cpu;
        let _f = cpu.enter("vma_mark_detached");
        cpu.warn_on(
            !self.is_vma_write_locked(vma),
            "vma_mark_detached: VMA not write-locked",
        );
        cpu.wait_for(
            Obj::Var(vma.refcnt_id),
            Access::Rmw,
            &|| vma.vm_refcnt.load(Ordering::SeqCst) <= 1,
            &mut || {
                let r = vma.vm_refcnt.load(Ordering::SeqCst);
                r <= 1
                    && vma
                        .vm_refcnt
                        .compare_exchange(r, 0, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok()
            },
        );
        // refcount_dec_and_test reaching zero: acquire ordering, so the page-table loads of
        // the unmap that follows read nothing older than the last reader's stores (released
        // by its vma_end_read).
        cpu.wl_order();
    }

    /// `vma_mark_attached`: a new or re-inserted VMA gets its attach reference.
    pub fn vma_mark_attached(&self, vma: &VmaLock) {
        self.cpu.visible(Obj::Var(vma.refcnt_id), Access::Write);
        vma.vm_refcnt.store(1, Ordering::SeqCst);
    }
}

impl Drop for MmapWriteGuard<'_> {
    fn drop(&mut self) {
        let _f = self.cpu.enter("mmap_write_unlock");
        self.lock.seq_end(&self.cpu);
        self.lock.sem.write_unlock_raw(self.cpu);
    }
}

fn add_not_zero(a: &AtomicU32, add: u32) -> bool {
    let mut cur = a.load(Ordering::SeqCst);
    loop {
        if cur == 0 {
            return false;
        }
        match a.compare_exchange(cur, cur + add, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return true,
            Err(c) => cur = c,
        }
    }
}

/// The per-VMA lock: `vma->vm_refcnt` and `vma->vm_lock_seq`.
#[derive(Debug)]
pub struct VmaLock {
    refcnt_id: u64,
    seq_id: u64,
    vm_refcnt: AtomicU32,
    vm_lock_seq: AtomicU64,
}

/// Why `vma_start_read` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmaStartRead {
    /// Write-locked (or being write-locked): fall back to the mmap lock.
    Locked,
    /// Detached (`vm_refcnt` was 0): `-EAGAIN`, redo the lookup.
    Detached,
}

impl VmaLock {
    /// A detached VMA lock (`vm_refcnt == 0`), as `vm_area_alloc` leaves it.
    pub fn new(refcnt_id: u64, seq_id: u64) -> Self {
        VmaLock {
            refcnt_id,
            seq_id,
            vm_refcnt: AtomicU32::new(0),
            vm_lock_seq: AtomicU64::new(u64::MAX),
        }
    }

    /// `vma_lock_init` on an object `vm_area_alloc` reused (`SLAB_TYPESAFE_BY_RCU`): the
    /// refcount stays 0 (a detached VMA cannot gain readers), `vm_lock_seq` is reset.
    pub fn reinit(&self, cpu: &Cpu<'_>) {
        cpu.warn_on(
            self.is_attached(),
            "vm_area_alloc: reused VMA still attached",
        );
        cpu.write_var(self.seq_id, &self.vm_lock_seq, u64::MAX);
    }

    pub fn refcnt(&self) -> u32 {
        self.vm_refcnt.load(Ordering::SeqCst)
    }

    pub fn is_attached(&self) -> bool {
        self.refcnt() != 0
    }

    /// `vma_start_read`: try-only.
    #[track_caller]
    pub fn start_read<'a>(
        &'a self,
        cpu: Cpu<'a>,
        mm: &MmapLock,
    ) -> Result<VmaReadGuard<'a>, VmaStartRead> {
        self.start_read_raw(cpu, mm)?;
        Ok(VmaReadGuard { vma: self, cpu })
    }

    /// `vma_start_read` without a guard; pair with [`VmaLock::end_read`]. For owners that keep
    /// the VMA alive themselves (an `Arc` next to the held lock).
    #[track_caller]
    pub fn start_read_raw(&self, cpu: Cpu<'_>, mm: &MmapLock) -> Result<(), VmaStartRead> {
        let _f = cpu.enter("vma_start_read");
        if cpu.lock_site("vma_lock", self.refcnt_id | VMA_READ_KEY) {
            return Ok(());
        }
        if cpu.read_var(self.seq_id, &self.vm_lock_seq) == mm.read_seq(&cpu) {
            return Err(VmaStartRead::Locked);
        }
        // A reader's reference commutes with other readers' (`Access::Add`): its result turns only
        // on zero and on the limit, which other readers' adds never cross (a reader's drop never
        // takes the count to zero: `end_read_raw`); writers' accesses conflict with it.
        cpu.visible(Obj::Var(self.refcnt_id), Access::Add);
        let mut cur = self.vm_refcnt.load(Ordering::SeqCst);
        loop {
            if cur == 0 {
                return Err(VmaStartRead::Detached);
            }
            if cur + 1 > VMA_REF_LIMIT {
                return Err(VmaStartRead::Locked);
            }
            match self
                .vm_refcnt
                .compare_exchange(cur, cur + 1, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => break,
                Err(c) => cur = c,
            }
        }
        // __refcount_inc_not_zero_limited_acquire: later loads are ordered after it.
        cpu.wl_order();
        if cpu.read_var(self.seq_id, &self.vm_lock_seq) == mm.read_seq(&cpu) {
            self.end_read_raw(cpu);
            return Err(VmaStartRead::Locked);
        }
        Ok(())
    }

    /// `vma_end_read` for a lock taken with [`VmaLock::start_read_raw`].
    pub fn end_read(&self, cpu: Cpu<'_>) {
        let _f = cpu.enter("vma_end_read");
        if cpu.skip_release(self.refcnt_id | VMA_READ_KEY) {
            return;
        }
        self.end_read_raw(cpu);
    }

    fn end_read_raw(&self, cpu: Cpu<'_>) {
        cpu.visible(Obj::Var(self.refcnt_id), Access::Add);
        let old = self.vm_refcnt.fetch_sub(1, Ordering::SeqCst);
        // The attach reference goes only once no reader holds one (`vma_mark_detached`), so a
        // reader never drops the last: readers' adds commute only while that holds.
        cpu.warn_on(
            old <= 1,
            "vma_end_read: a reader dropped the last vm_refcnt reference",
        );
    }
}

/// A VMA read lock; dropping it is `vma_end_read`.
#[must_use = "dropping the guard is vma_end_read"]
pub struct VmaReadGuard<'a> {
    vma: &'a VmaLock,
    cpu: Cpu<'a>,
}

impl Drop for VmaReadGuard<'_> {
    fn drop(&mut self) {
        self.vma.end_read(self.cpu);
    }
}

impl crate::Snapshot for MmapLock {
    fn snapshot(&self, m: &mut crate::Memo) -> Self {
        let MmapLock { sem, seq_id, seq } = self;
        MmapLock {
            sem: sem.snapshot(m),
            seq_id: *seq_id,
            seq: AtomicU64::new(seq.load(Ordering::SeqCst)),
        }
    }
}

impl crate::Snapshot for VmaLock {
    fn snapshot(&self, _: &mut crate::Memo) -> Self {
        let VmaLock {
            refcnt_id,
            seq_id,
            vm_refcnt,
            vm_lock_seq,
        } = self;
        VmaLock {
            refcnt_id: *refcnt_id,
            seq_id: *seq_id,
            vm_refcnt: AtomicU32::new(vm_refcnt.load(Ordering::SeqCst)),
            vm_lock_seq: AtomicU64::new(vm_lock_seq.load(Ordering::SeqCst)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spinlock::tests::{config, kinds, seq_machine};
    use crate::violation::ViolationKind;
    use crate::Machine;
    use parking_lot::Mutex;

    fn attached(m: &Machine, mm: &MmapLock) -> VmaLock {
        let vma = VmaLock::new(10, 11);
        let w = mm.write_lock(m.cpu(0));
        w.vma_mark_attached(&vma);
        drop(w);
        assert_eq!(vma.refcnt(), 1);
        vma
    }

    #[test]
    fn start_read_fails_while_write_locked_in_this_section() {
        let m = seq_machine(2, 4);
        let mm = MmapLock::new(1, 2);
        let vma = attached(&m, &mm);
        let w = mm.write_lock(m.cpu(0));
        // The mmap write lock alone does not exclude VMA readers.
        let r = vma.start_read(m.cpu(1), &mm).expect("not VMA-locked yet");
        assert_eq!(vma.refcnt(), 2);
        drop(r);
        w.vma_start_write(&vma);
        assert!(w.is_vma_write_locked(&vma));
        assert_eq!(
            vma.start_read(m.cpu(1), &mm).err(),
            Some(VmaStartRead::Locked)
        );
        assert_eq!(
            vma.refcnt(),
            1,
            "a failed reader leaves no reference behind"
        );
        // Idempotent within the section.
        w.vma_start_write(&vma);
        assert_eq!(vma.refcnt(), 1);
        drop(w);
        let r = vma
            .start_read(m.cpu(1), &mm)
            .expect("mmap_write_unlock ends VMA write locks");
        assert_eq!(vma.refcnt(), 2);
        drop(r);
        assert_eq!(vma.refcnt(), 1);
        assert!(kinds(&m).is_empty());
    }

    #[test]
    fn downgrade_ends_vma_write_locks() {
        let m = seq_machine(2, 4);
        let mm = MmapLock::new(1, 2);
        let vma = attached(&m, &mm);
        let w = mm.write_lock(m.cpu(0));
        w.vma_start_write(&vma);
        assert!(vma.start_read(m.cpu(1), &mm).is_err());
        let r = w.downgrade();
        assert!(!mm.is_write_locked() && mm.is_locked());
        assert_eq!(mm.sem().readers(), 1);
        let vr = vma
            .start_read(m.cpu(1), &mm)
            .expect("downgrade ends VMA write locks");
        drop(vr);
        drop(r);
        assert!(!mm.is_locked());
    }

    #[test]
    fn a_new_write_section_needs_a_new_vma_start_write() {
        let m = seq_machine(2, 4);
        let mm = MmapLock::new(1, 2);
        let vma = attached(&m, &mm);
        let w = mm.write_lock(m.cpu(0));
        w.vma_start_write(&vma);
        drop(w);
        let w = mm.write_lock(m.cpu(0));
        assert!(!w.is_vma_write_locked(&vma));
        assert!(vma.start_read(m.cpu(1), &mm).is_ok());
        w.vma_start_write(&vma);
        assert_eq!(
            vma.start_read(m.cpu(1), &mm).err(),
            Some(VmaStartRead::Locked)
        );
        drop(w);
    }

    #[test]
    fn start_read_on_a_detached_vma_fails_with_detached() {
        let m = seq_machine(2, 4);
        let mm = MmapLock::new(1, 2);
        let fresh = VmaLock::new(20, 21);
        assert!(!fresh.is_attached());
        assert_eq!(
            fresh.start_read(m.cpu(1), &mm).err(),
            Some(VmaStartRead::Detached)
        );
        assert_eq!(fresh.refcnt(), 0);
        // Attach, then detach under a write lock.
        let vma = attached(&m, &mm);
        let w = mm.write_lock(m.cpu(0));
        w.vma_start_write(&vma);
        w.vma_mark_detached(&vma);
        assert!(!vma.is_attached());
        assert_eq!(vma.refcnt(), 0);
        assert_eq!(
            vma.start_read(m.cpu(1), &mm).err(),
            Some(VmaStartRead::Locked),
            "inside the section the seq check fails first"
        );
        drop(w);
        assert_eq!(
            vma.start_read(m.cpu(1), &mm).err(),
            Some(VmaStartRead::Detached)
        );
        assert!(kinds(&m).is_empty());
    }

    #[test]
    fn mark_detached_without_vma_write_lock_is_reported() {
        let m = seq_machine(1, 4);
        let mm = MmapLock::new(1, 2);
        let vma = attached(&m, &mm);
        let w = mm.write_lock(m.cpu(0));
        w.vma_mark_detached(&vma);
        drop(w);
        let v = m.violations();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].kind, ViolationKind::Assertion);
        assert!(v[0].msg.contains("not write-locked"), "{}", v[0].msg);
        assert!(v[0].stack.contains(&"vma_mark_detached"));
    }

    #[test]
    fn start_read_fails_at_the_reference_limit() {
        let m = seq_machine(1, 4);
        let mm = MmapLock::new(1, 2);
        let vma = attached(&m, &mm);
        vma.vm_refcnt.store(VMA_REF_LIMIT, Ordering::SeqCst);
        assert_eq!(
            vma.start_read(m.cpu(0), &mm).err(),
            Some(VmaStartRead::Locked)
        );
        assert_eq!(vma.refcnt(), VMA_REF_LIMIT);
    }

    #[test]
    fn mmap_trylocks() {
        let m = seq_machine(2, 4);
        let mm = MmapLock::new(1, 2);
        let r = mm.read_trylock(m.cpu(0)).expect("free");
        assert!(mm.write_trylock(m.cpu(1)).is_none());
        let r2 = mm.read_trylock(m.cpu(1)).expect("readers share");
        drop((r, r2));
        let w = mm.write_trylock(m.cpu(1)).expect("free");
        assert!(mm.is_write_locked());
        assert!(mm.read_trylock(m.cpu(0)).is_none());
        drop(w);
        assert!(!mm.is_locked());
    }

    /// CPU1 holds a VMA read lock; CPU0's `vma_start_write` must exclude new readers at once and
    /// then wait until CPU1 leaves.
    #[test]
    fn vma_start_write_waits_for_readers() {
        let m = Machine::native(config(3, 4));
        let mm = MmapLock::new(1, 2);
        let vma = attached(&m, &mm);
        let log = Mutex::new(Vec::new());
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|sc| {
            let (m, mm, vma, log) = (&m, &mm, &vma, &log);
            let reader = sc.spawn(move || {
                let g = vma.start_read(m.cpu(1), mm).expect("attached, unlocked");
                held_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                log.lock().push("reader out");
                drop(g);
            });
            held_rx.recv().unwrap();
            assert_eq!(vma.refcnt(), 2);
            let writer = sc.spawn(move || {
                let w = mm.write_lock(m.cpu(0));
                w.vma_start_write(vma);
                log.lock().push("writer locked");
                assert!(w.is_vma_write_locked(vma));
                assert_eq!(
                    vma.refcnt(),
                    1,
                    "the offset is dropped once readers are gone"
                );
                drop(w);
            });
            while vma.refcnt() < VMA_LOCK_OFFSET {
                std::thread::yield_now();
            }
            assert_eq!(vma.refcnt(), VMA_LOCK_OFFSET + 2);
            assert_eq!(
                vma.start_read(m.cpu(2), mm).err(),
                Some(VmaStartRead::Locked),
                "a writer in __vma_enter_locked excludes new readers"
            );
            assert_eq!(vma.refcnt(), VMA_LOCK_OFFSET + 2);
            release_tx.send(()).unwrap();
            reader.join().unwrap();
            writer.join().unwrap();
        });
        assert_eq!(*log.lock(), vec!["reader out", "writer locked"]);
        assert_eq!(vma.refcnt(), 1);
        assert!(vma.start_read(m.cpu(2), &mm).is_ok());
        assert!(!m.violated());
    }
}
