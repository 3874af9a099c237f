//! userfaultfd (`fs/userfaultfd.c` `userfaultfd_register`, `mm/userfaultfd.c` `mfill_atomic`,
//! `mwriteprotect_range`; read at ≈6.18 with the 2026 `uffd_mfill_lock`): the three ioctls the
//! page-table protocol sees.
//!
//! - `UFFDIO_REGISTER` sets `VM_UFFD_MISSING` / `VM_UFFD_WP` on the VMAs of a range under the
//!   mmap write lock, splitting them at the range's edges, each write-locked
//!   (`vma_start_write`) before its flags change.
//! - `UFFDIO_COPY` fills one missing page: under the per-VMA read lock (or the mmap read lock
//!   while `anon_vma_prepare` runs), allocate the table, then `mfill_atomic_pte_copy` installs a
//!   new anon page under the PTL if the PTE is still none or a marker (`-EEXIST` otherwise). Into
//!   a private file or shmem VMA the page is an "as-if-COWed" anon page: no page-cache lookup, so
//!   no folio lock is taken.
//! - `UFFDIO_WRITEPROTECT` (protect) runs `change_protection(MM_CP_UFFD_WP)` under the mmap read
//!   lock: present PTEs get `_PAGE_UFFD_WP` and lose write; none PTEs of file and shmem VMAs get
//!   `PTE_MARKER_UFFD_WP` markers, tables allocated for them (`change_pmd_prepare`).
//!
//! The context's file descriptor is opened with `UFFD_FEATURE_SIGBUS`: a fault that would call
//! `handle_userfault` returns `VM_FAULT_SIGBUS` at once (no fault-handling thread is modelled);
//! see [`handle_userfault`].

use crate::arch::pgtable::Entry;
use crate::mm::folio;
use crate::mm::memory::{lock_vma_under_rcu, VmFault, VmaReadLocked};
use crate::mm::mmu_gather::MmuGather;
use crate::mm::pgtable;
use crate::mm::rmap::anon_vma_prepare;
use crate::mm::types::{MmStruct, VmFlags, Vma, MM_ANONPAGES};
use crate::{Ctx, Errno};
use std::sync::Arc;

/// `userfaultfd_missing`.
pub fn userfaultfd_missing(cx: Ctx<'_>, vma: &Vma) -> bool {
    vma.flags(cx).has(VmFlags::UFFD_MISSING)
}

/// `userfaultfd_wp`.
pub fn userfaultfd_wp(cx: Ctx<'_>, vma: &Vma) -> bool {
    vma.flags(cx).has(VmFlags::UFFD_WP)
}

/// `userfaultfd_armed`: registered in any mode.
pub fn userfaultfd_armed(cx: Ctx<'_>, vma: &Vma) -> bool {
    vma.flags(cx).has(VmFlags::UFFD_MISSING | VmFlags::UFFD_WP)
}

/// `userfaultfd_wp_use_markers`: none PTEs of file and shmem VMAs carry the wp state in markers
/// (anonymous VMAs only with `UFFD_FEATURE_WP_UNPOPULATED`, not modelled).
pub fn userfaultfd_wp_use_markers(cx: Ctx<'_>, vma: &Vma) -> bool {
    userfaultfd_wp(cx, vma) && !vma.is_anonymous()
}

/// `handle_userfault(vmf, reason)` for a context opened with `UFFD_FEATURE_SIGBUS`: the fault
/// is not queued for a handler thread, the access gets SIGBUS.
pub fn handle_userfault(cx: Ctx<'_>, vma: &Vma, reason: u64) -> VmFault {
    let _f = cx.cpu.enter("handle_userfault");
    // vma->vm_userfaultfd_ctx.ctx and its features (the registration, here vm_flags).
    let registered = vma.flags(cx).has(reason);
    cx.cpu.warn_on(
        !registered,
        "handle_userfault: the VMA is not registered for this reason",
    );
    VmFault::Sigbus
}

/// `UFFDIO_REGISTER` of `[start, end)` (`userfaultfd_register` → `userfaultfd_register_range`):
/// every page of the range must be mapped (`-EINVAL` for a hole); each VMA is split at the
/// range's edges (`vma_modify_flags_uffd`), write-locked, and gains the mode's flags.
pub fn userfaultfd_register(
    cx: Ctx<'_>,
    mm: &MmStruct,
    start: u64,
    end: u64,
    mode: u64,
) -> Result<(), Errno> {
    let _f = cx.cpu.enter("userfaultfd_register");
    let w = mm.mmap_lock.write_lock(cx.cpu);
    let vmas = mm.vmas_in(cx, start, end);
    // The range must be covered without holes.
    let mut at = start;
    for v in &vmas {
        if v.start(cx) > at {
            return Err(Errno::Einval);
        }
        at = v.end(cx);
    }
    if vmas.is_empty() || at < end {
        return Err(Errno::Einval);
    }
    for v in vmas {
        let old = v.flags(cx);
        let new = VmFlags(old.0 | mode);
        if new == old {
            continue;
        }
        let mut v = v;
        if v.start(cx) < start {
            v = crate::mm::vma::__split_vma(cx, mm, &w, &v, start);
        }
        if v.end(cx) > end {
            crate::mm::vma::__split_vma(cx, mm, &w, &v, end);
        }
        // userfaultfd_set_ctx: vma_start_write, then vm_flags_reset.
        w.vma_start_write(&v.lock);
        v.set_flags(cx, new);
    }
    drop(w);
    Ok(())
}

/// `uffd_mfill_lock` → `uffd_lock_vma`.
fn uffd_mfill_lock<'a>(
    cx: Ctx<'a>,
    mm: &'a MmStruct,
    addr: u64,
) -> Result<VmaReadLocked<'a>, Errno> {
    let _f = cx.cpu.enter("uffd_mfill_lock");
    uffd_lock_vma(cx, mm, addr)
}

/// `uffd_lock_vma`: the per-VMA read lock from `lock_vma_under_rcu`, unless the VMA is private
/// with no anon_vma yet; then the mmap read lock, `anon_vma_prepare`, and the VMA read lock
/// taken under it (`vma_start_read_locked`) before the mmap lock is dropped. With `uffd.vma_lock`
/// off (before 6.9) the mmap read lock is kept to the end instead (the VMA lock taken under it
/// then excludes nothing more: every VMA writer holds the mmap write lock).
pub(crate) fn uffd_lock_vma<'a>(
    cx: Ctx<'a>,
    mm: &'a MmStruct,
    addr: u64,
) -> Result<VmaReadLocked<'a>, Errno> {
    let _f = cx.cpu.enter("uffd_lock_vma");
    let per_vma = cx.proto().uffd_per_vma_lock();
    if per_vma {
        if let Some(l) = lock_vma_under_rcu(cx, mm, addr) {
            if l.vma.is_shared(cx) || l.vma.anon_vma(cx).is_some() {
                return Ok(l);
            }
            drop(l);
        }
    }
    let r = mm.mmap_lock.read_lock(cx.cpu);
    let vma = mm.vma_lookup(cx, addr).ok_or(Errno::Enoent)?;
    if !vma.is_shared(cx) {
        anon_vma_prepare(cx, mm, &vma).map_err(|_| Errno::Enomem)?;
    }
    // vma_start_read_locked: no writer can hold the VMA lock while we hold the mmap read lock.
    if vma.lock.start_read_raw(cx.cpu, &mm.mmap_lock).is_err() {
        return Err(Errno::Eagain);
    }
    // LOCKING: before userfaultfd's per-VMA locks (6.9; linux-6.1 and 6.6) the operation runs
    // under the mmap read lock throughout; an mmap write-lock holder that takes no VMA lock
    // (collapse_pte_mapped_thp on 6.1) is kept out by it alone.
    if !per_vma {
        return Ok(VmaReadLocked::under_mmap_lock(cx, vma, r));
    }
    drop(r);
    Ok(VmaReadLocked::read_locked(cx, vma))
}

/// `UFFDIO_COPY` of one page holding `value` to `dst` (`mfill_atomic` →
/// `mfill_atomic_pte`). Returns `-EEXIST` if the page is mapped, `-EAGAIN` if the table went
/// away under it (user space retries), `-ENOENT` if the VMA is not registered.
pub fn mfill_atomic_copy(cx: Ctx<'_>, mm: &MmStruct, dst: u64, value: u64) -> Result<(), Errno> {
    let _f = cx.cpu.enter("mfill_atomic");
    let l = uffd_mfill_lock(cx, mm, dst)?;
    let vma = &l.vma;
    // The range is inside the VMA and the VMA belongs to this context.
    if !vma.contains(cx, dst) || !userfaultfd_armed(cx, vma) {
        return Err(Errno::Enoent);
    }
    if vma.is_shared(cx) {
        // shmem_mfill_atomic_pte (the page goes into the page cache): not modelled.
        return Err(Errno::Einval);
    }
    let pmd = pgtable::pmd_alloc(cx, mm, dst)?; // mm_alloc_pmd
    if cx.proto().uffd_copy_dst_pmd_recheck {
        // 71c186efc1b2 (6.11): allocate if none, then judge a fresh read: a PMD that is a THP,
        // or none again (a THP zapped after __pte_alloc saw it), is -EEXIST.
        if pmd.get(cx).is_none() {
            pgtable::__pte_alloc(cx, mm, pmd)?;
        }
        let v = pmd.get(cx);
        if !v.present() || v.pmd_trans_huge() || v.is_none() {
            return Err(Errno::Eexist);
        }
        if !v.is_table() {
            return Err(Errno::Efault); // pmd_bad
        }
    } else {
        // 6.5-6.10: the THP check before __pte_alloc, then BUG_ONs on a second read.
        let v = pmd.get(cx);
        if v.pmd_trans_huge() {
            return Err(Errno::Eexist);
        }
        if v.is_none() {
            pgtable::__pte_alloc(cx, mm, pmd)?;
        }
        // "If an huge pmd materialized from under us fail".
        if pmd.get(cx).pmd_trans_huge() {
            return Err(Errno::Efault);
        }
        let v = pmd.get(cx);
        cx.cpu
            .warn_on(v.is_none(), "mfill_atomic: BUG_ON(pmd_none(*dst_pmd))");
        cx.cpu.warn_on(
            v.pmd_trans_huge(),
            "mfill_atomic: BUG_ON(pmd_trans_huge(*dst_pmd))",
        );
        if !v.is_table() {
            return Err(Errno::Eagain);
        }
    }
    let r = mfill_atomic_pte_copy(cx, mm, vma, pmd, dst, value);
    drop(l);
    r
}

/// `mfill_atomic_pte_copy` + `mfill_atomic_install_pte` for a private VMA (anonymous, or the
/// as-if-COWed page of a private file mapping).
fn mfill_atomic_pte_copy(
    cx: Ctx<'_>,
    mm: &MmStruct,
    vma: &Arc<Vma>,
    pmd: pgtable::EntryPtr,
    dst: u64,
    value: u64,
) -> Result<(), Errno> {
    let _f = cx.cpu.enter("mfill_atomic_pte_copy");
    let g = cx.geo();
    let folio = folio::folio_alloc(cx, 0).ok_or(Errno::Enomem)?;
    // copy_mc_user_highpage / copy_from_user into the new page, then __folio_mark_uptodate.
    cx.cpu.data_init(folio, value);
    folio::folio_mark_uptodate_barrier(cx);
    let _i = cx.cpu.enter("mfill_atomic_install_pte");
    let writable = vma.flags(cx).has(VmFlags::WRITE);
    let entry = Entry::leaf(folio.pfn, writable, true);
    let Some(pl) = pgtable::pte_offset_map_lock(cx, mm, pmd) else {
        folio::folio_put(cx, folio);
        return Err(Errno::Eagain);
    };
    // mfill_file_over_size: a private file mapping past EOF.
    if let Some(file) = &vma.file {
        if vma.linear_page_index(cx, dst) >= file.size_pages.read(&cx.cpu) {
            drop(pl);
            folio::folio_put(cx, folio);
            return Err(Errno::Efault);
        }
    }
    let pte = pl.pte(g.index(dst, 1));
    if !cx.cpu.recheck("pte_none", pte.get(cx).none_mostly()) {
        drop(pl);
        folio::folio_put(cx, folio);
        return Err(Errno::Eexist);
    }
    let av = vma.anon_vma(cx).map(|a| a.id).unwrap_or(0);
    folio::folio_add_new_anon_rmap(cx, folio, av, vma.linear_page_index(cx, dst), false);
    folio::folio_set(cx, folio, folio::PG_LRU);
    mm.add_rss(MM_ANONPAGES, 1);
    pte.set(cx, entry);
    drop(pl);
    // The page is filled: it is no longer write-protected (the copy replaced any marker).
    mm.uffd_wp_forget(dst);
    Ok(())
}

/// `UFFDIO_WRITEPROTECT` of `[start, end)` (`mwriteprotect_range` → `uffd_wp_range`): mmap
/// read lock, every VMA of the range must be registered for wp (`-ENOENT`), then
/// `change_protection` in one mmu_gather per VMA: `MM_CP_UFFD_WP` with
/// `UFFDIO_WRITEPROTECT_MODE_WP` (`enable_wp`), else `MM_CP_UFFD_WP_RESOLVE` (unprotect:
/// `_PAGE_UFFD_WP` cleared, uffd-wp markers removed).
pub fn mwriteprotect_range(
    cx: Ctx<'_>,
    mm: &MmStruct,
    start: u64,
    end: u64,
    enable_wp: bool,
) -> Result<(), Errno> {
    let _f = cx.cpu.enter("mwriteprotect_range");
    let r = mm.mmap_lock.read_lock(cx.cpu);
    let vmas = mm.vmas_in(cx, start, end);
    let mut at = start;
    for v in &vmas {
        if v.start(cx) > at || !userfaultfd_wp(cx, v) {
            return Err(Errno::Enoent);
        }
        at = v.end(cx);
    }
    if vmas.is_empty() || at < end {
        return Err(Errno::Enoent);
    }
    for v in &vmas {
        let (s, e) = (start.max(v.start(cx)), end.min(v.end(cx)));
        uffd_wp_range(cx, mm, v, s, e, enable_wp);
    }
    drop(r);
    // The syscall returns: from here until unprotected, a store to these pages must fault.
    record_wp_contract(cx, mm, start, end, enable_wp);
    Ok(())
}

/// The uffd-wp oracle's contract (`check.rs`): pages write-protected by a returned
/// `UFFDIO_WRITEPROTECT`, until unprotected or unregistered.
/// A protect adds only the pages it protected (see `MmStruct::uffd_wp_done`). An unprotect
/// that returns while a protect of the same page is in progress overlaps it: either order is a
/// valid outcome (two `UFFDIO_WRITEPROTECT` calls are not serialized, each takes the PTL per
/// table), so the page the protect already did leaves its contract.
fn record_wp_contract(cx: Ctx<'_>, mm: &MmStruct, start: u64, end: u64, protected: bool) {
    let ps = cx.geo().page_shift;
    let cpu = cx.cpu.id;
    let done = mm.uffd_wp_done.record(|s| {
        let mine: std::collections::BTreeSet<u64> =
            s.iter().filter(|e| e.0 == cpu).map(|e| e.1).collect();
        s.retain(|e| e.0 != cpu);
        if !protected {
            s.retain(|e| e.1 < start || e.1 >= end);
        }
        mine
    });
    mm.uffd_wp_protected.record(|s| {
        for p in (start >> ps)..(end >> ps) {
            if !protected {
                s.remove(&(p << ps));
            } else if done.contains(&(p << ps)) {
                s.insert(p << ps);
            }
        }
    });
}

/// `uffd_wp_range`: `change_protection` of `[start, end)` of `vma` in its own mmu_gather.
/// (Write permission is not upgraded eagerly on unprotect, `MM_CP_TRY_CHANGE_WRITABLE`: the
/// next write faults and reuses the page; see docs/fidelity.md.)
fn uffd_wp_range(
    cx: Ctx<'_>,
    mm: &MmStruct,
    vma: &Arc<Vma>,
    start: u64,
    end: u64,
    enable_wp: bool,
) {
    let mut tlb = MmuGather::new(cx, mm, false);
    if enable_wp {
        crate::mm::mprotect::change_protection_uffd_wp(cx, &mut tlb, mm, vma, start, end);
    } else {
        crate::mm::mprotect::change_protection_uffd_wp_resolve(cx, &mut tlb, mm, vma, start, end);
    }
    tlb.finish(cx);
}

/// `UFFDIO_UNREGISTER` of `[start, end)` (`userfaultfd_unregister`): under the mmap write lock,
/// `-EINVAL` if no VMA meets the range; each registered VMA there is unprotected if it was
/// registered for wp (`uffd_wp_range(.., false)`: markers dropped, `_PAGE_UFFD_WP` cleared),
/// split at the range's edges, write-locked and loses `VM_UFFD_*` (`userfaultfd_clear_vma`),
/// and merges back with its neighbours (`vma_modify_flags_uffd`).
pub fn userfaultfd_unregister(
    cx: Ctx<'_>,
    mm: &MmStruct,
    start: u64,
    end: u64,
) -> Result<(), Errno> {
    let _f = cx.cpu.enter("userfaultfd_unregister");
    let w = mm.mmap_lock.write_lock(cx.cpu);
    let vmas = mm.vmas_in(cx, start, end);
    if vmas.is_empty() {
        return Err(Errno::Einval);
    }
    for v in vmas {
        let old = v.flags(cx);
        if !old.has(VmFlags::UFFD_MISSING | VmFlags::UFFD_WP) {
            continue;
        }
        let (s, e) = (start.max(v.start(cx)), end.min(v.end(cx)));
        let _c = cx.cpu.enter("userfaultfd_clear_vma");
        // Reset the PTEs of the range if it was write-protected.
        if userfaultfd_wp(cx, &v) {
            uffd_wp_range(cx, mm, &v, s, e, false);
        }
        let mut v = v;
        if v.start(cx) < s {
            v = crate::mm::vma::__split_vma(cx, mm, &w, &v, s);
        }
        if v.end(cx) > e {
            crate::mm::vma::__split_vma(cx, mm, &w, &v, e);
        }
        w.vma_start_write(&v.lock);
        v.set_flags(
            cx,
            VmFlags(old.0 & !(VmFlags::UFFD_MISSING | VmFlags::UFFD_WP)),
        );
    }
    crate::mm::vma::vma_merge_modified(cx, mm, &w, start, end);
    drop(w);
    record_wp_contract(cx, mm, start, end, false);
    Ok(())
}
