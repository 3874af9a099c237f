//! `change_protection` (`mm/mprotect.c`, `mm/huge_memory.c` `change_huge_pmd`; read at ≈6.18)
//! for its two callers here:
//! - `mprotect` (`do_mprotect_pkey` → `mprotect_fixup`): under the mmap write lock, split the
//!   VMAs at the range's edges, write-lock them, change `vm_flags`, and write-protect the mapped
//!   entries when write permission goes away, all inside one mmu_gather; then merge the changed
//!   VMAs with compatible neighbours;
//! - NUMA hinting (`kernel/sched/fair.c` `task_numa_work` → `change_prot_numa`): under the mmap
//!   read lock, make a range's mapped pages PROTNONE so the next access faults (`do_numa_page` /
//!   `do_huge_pmd_numa_page` in `memory.rs` and `huge_memory.rs`).
//!
//! PTEs change under the PTL with `ptep_modify_prot_start` (x86: get-and-clear, a transient
//! none) and `ptep_modify_prot_commit`; a huge PMD under the PMD lock with `pmdp_invalidate_ad`
//! (the entry stays huge to software, not present to the hardware, flushed) and `set_pmd_at`, or,
//! before ced108037c2a (switch `numa.huge_pmd_update = get_and_clear`), with
//! `pmdp_huge_get_and_clear`, whose transient none lets a lockless `zap_pmd_range` skip the THP.
//! The flushes go through the mmu_gather (`tlb_flush_pte_range` / `tlb_flush_pmd_range`).
//! The model does not migrate: the fault restores the mapping in place (a one-node machine).

use crate::arch::pgtable::Entry;
use crate::mm::folio::{self, page_folio};
use crate::mm::huge_memory::is_huge_zero_pmd;
use crate::mm::memory::vm_normal_page;
use crate::mm::mmu_gather::MmuGather;
use crate::mm::pgtable::{self, EntryPtr};
use crate::mm::types::VmFlags;
use crate::mm::types::{MmStruct, Vma};
use crate::protocol::HugePmdUpdate;
use crate::{Ctx, Errno};
use std::sync::Arc;

/// What `change_protection` does to each mapped entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewProt {
    /// `MM_CP_PROT_NUMA`: PROTNONE.
    Numa,
    /// `mprotect` dropping `PROT_WRITE`: read-only.
    ReadOnly,
    /// `MM_CP_UFFD_WP` (`UFFDIO_WRITEPROTECT`): read-only with `_PAGE_UFFD_WP`, and uffd-wp
    /// markers in the none PTEs of file and shmem VMAs.
    UffdWp,
    /// `MM_CP_UFFD_WP_RESOLVE` (`UFFDIO_WRITEPROTECT` mode 0, `UFFDIO_UNREGISTER`):
    /// `_PAGE_UFFD_WP` cleared, uffd-wp markers dropped.
    UffdWpResolve,
}

/// The VMA being changed and how (`change_protection`'s `vma`, `newprot` and `cp_flags`).
#[derive(Clone, Copy)]
struct Cp<'a> {
    vma: &'a Arc<Vma>,
    prot: NewProt,
}

/// `mprotect(addr, len, PROT_READ [| PROT_WRITE])`. Granting write changes no entry (the next
/// write faults and `do_wp_page` reuses or copies; the kernel may upgrade eagerly with
/// `MM_CP_TRY_CHANGE_WRITABLE`, an optimisation only).
pub fn do_mprotect(
    cx: Ctx<'_>,
    mm: &MmStruct,
    start: u64,
    end: u64,
    write: bool,
) -> Result<(), Errno> {
    let _f = cx.cpu.enter("do_mprotect_pkey");
    let tlb_before = crate::check::tlb_permission_begin(cx, mm, start, end);
    let w = mm.mmap_lock.write_lock(cx.cpu);
    let vmas = mm.vmas_in(cx, start, end);
    if vmas.is_empty() {
        return Err(Errno::Enomem);
    }
    let mut tlb = MmuGather::new(cx, mm, false);
    for v in vmas {
        let old = v.flags(cx);
        let mut new = if write {
            VmFlags(old.0 | VmFlags::WRITE)
        } else {
            VmFlags(old.0 & !VmFlags::WRITE)
        };
        // mprotect_fixup's commit accounting: a private mapping turning writable is charged;
        // one turning read-only is uncharged only while anonymous without an anon_vma. The flag
        // decides later merges (a read-only piece that kept VM_ACCOUNT does not merge with one
        // that lost it), as on the host.
        if write {
            if old.0 & (VmFlags::ACCOUNT | VmFlags::WRITE | VmFlags::SHARED) == 0 {
                new.0 |= VmFlags::ACCOUNT;
            }
        } else if old.has(VmFlags::ACCOUNT) && v.is_anonymous() && v.anon_vma(cx).is_none() {
            new.0 &= !VmFlags::ACCOUNT;
        }
        if new.0 == old.0 {
            continue;
        }
        // mprotect_fixup → vma_modify_flags: split at the range's edges.
        let mut v = v;
        if v.start(cx) < start {
            v = crate::mm::vma::__split_vma(cx, mm, &w, &v, start);
        }
        if v.end(cx) > end {
            crate::mm::vma::__split_vma(cx, mm, &w, &v, end);
        }
        w.vma_start_write(&v.lock);
        v.set_flags(cx, new);
        if !write {
            change_protection(
                cx,
                &mut tlb,
                mm,
                &v,
                v.start(cx),
                v.end(cx),
                NewProt::ReadOnly,
            );
        }
    }
    tlb.finish(cx);
    crate::mm::vma::vma_merge_modified(cx, mm, &w, start, end);
    drop(w);
    if !write {
        crate::check::check_tlb_write_permission(cx, mm, &[(start, end)], tlb_before, "mprotect");
    }
    Ok(())
}

/// `task_numa_work` for `[start, end)`: `mmap_read_lock`, then `change_prot_numa` of each VMA
/// in the range (anonymous and shmem alike here). Returns the entries made PROTNONE.
pub fn task_numa_work(cx: Ctx<'_>, mm: &MmStruct, start: u64, end: u64) -> u64 {
    let _f = cx.cpu.enter("task_numa_work");
    let r = mm.mmap_lock.read_lock(cx.cpu);
    let mut pages = 0;
    for vma in mm.vmas_in(cx, start, end) {
        let (s, e) = (start.max(vma.start(cx)), end.min(vma.end(cx)));
        pages += change_prot_numa(cx, mm, &vma, s, e);
    }
    drop(r);
    pages
}

/// `change_prot_numa`: `change_protection(MM_CP_PROT_NUMA)` inside one mmu_gather.
pub fn change_prot_numa(cx: Ctx<'_>, mm: &MmStruct, vma: &Arc<Vma>, start: u64, end: u64) -> u64 {
    let _f = cx.cpu.enter("change_prot_numa");
    let mut tlb = MmuGather::new(cx, mm, false);
    let pages = change_protection(cx, &mut tlb, mm, vma, start, end, NewProt::Numa);
    tlb.finish(cx);
    pages
}

/// Oracle bookkeeping: `UFFDIO_WRITEPROTECT` on this CPU protected the page at `addr` (see
/// `MmStruct::uffd_wp_done`).
fn uffd_wp_done(cx: Ctx<'_>, mm: &MmStruct, addr: u64) {
    let cpu = cx.cpu.id;
    mm.uffd_wp_done.record(|s| s.insert((cpu, addr)));
}

/// `change_protection(MM_CP_UFFD_WP)` of `[start, end)` inside the caller's gather
/// (`uffd_wp_range`).
pub(crate) fn change_protection_uffd_wp(
    cx: Ctx<'_>,
    tlb: &mut MmuGather<'_>,
    mm: &MmStruct,
    vma: &Arc<Vma>,
    start: u64,
    end: u64,
) -> u64 {
    change_protection(cx, tlb, mm, vma, start, end, NewProt::UffdWp)
}

/// `change_protection(MM_CP_UFFD_WP_RESOLVE)` of `[start, end)` inside the caller's gather.
pub(crate) fn change_protection_uffd_wp_resolve(
    cx: Ctx<'_>,
    tlb: &mut MmuGather<'_>,
    mm: &MmStruct,
    vma: &Arc<Vma>,
    start: u64,
    end: u64,
) -> u64 {
    change_protection(cx, tlb, mm, vma, start, end, NewProt::UffdWpResolve)
}

/// `change_protection` → `change_protection_range`: each PMD of `[start, end)`.
fn change_protection(
    cx: Ctx<'_>,
    tlb: &mut MmuGather<'_>,
    mm: &MmStruct,
    vma: &Arc<Vma>,
    start: u64,
    end: u64,
    prot: NewProt,
) -> u64 {
    let _f = cx.cpu.enter("change_protection");
    let g = cx.geo();
    let mut pages = 0;
    let mut addr = start;
    while addr < end {
        let next = ((addr & g.pmd_mask()) + g.pmd_size()).min(end);
        // change_prepare: uffd-wp markers need the upper tables (pmd_alloc).
        let pmd = if prot == NewProt::UffdWp
            && crate::mm::userfaultfd::userfaultfd_wp_use_markers(cx, vma)
        {
            pgtable::pmd_alloc(cx, mm, addr).ok()
        } else {
            pgtable::pmd_off(cx, mm, addr)
        };
        if let Some(pmd) = pmd {
            pages += change_pmd_range(cx, tlb, mm, Cp { vma, prot }, pmd, addr, next);
        }
        addr = next;
    }
    pages
}

/// `change_pmd_range` for one PMD entry.
fn change_pmd_range(
    cx: Ctx<'_>,
    tlb: &mut MmuGather<'_>,
    mm: &MmStruct,
    cp: Cp<'_>,
    pmd: EntryPtr,
    addr: u64,
    next: u64,
) -> u64 {
    let g = cx.geo();
    loop {
        let v = pmd.get(cx); // pmdp_get_lockless
        if v.is_none() {
            // change_pmd_prepare: markers need a table to live in.
            if cp.prot == NewProt::UffdWp
                && crate::mm::userfaultfd::userfaultfd_wp_use_markers(cx, cp.vma)
            {
                if pgtable::pte_alloc(cx, mm, pmd).is_err() {
                    return 0;
                }
                continue;
            }
            return 0;
        }
        // is_swap_pmd || pmd_trans_huge: a PMD being split (pmdp_invalidate) is still huge to
        // software, which then waits for the splitter on the PMD lock.
        if v.pmd_trans_huge() || v.is_migration() {
            // uffd-wp of a huge PMD is done on its PTEs here (the kernel sets pmd_mkuffd_wp on
            // an anon THP; see docs/fidelity.md).
            if next - addr != g.pmd_size() || cp.prot == NewProt::UffdWp {
                crate::mm::huge_memory::__split_huge_pmd(cx, mm, cp.vma, pmd, addr);
            } else {
                // None: not huge any more (split meanwhile): fall through to the PTEs.
                if let Some(n) = change_huge_pmd(cx, tlb, mm, pmd, addr, cp.prot) {
                    return n;
                }
            }
        }
        match change_pte_range(cx, tlb, mm, cp, pmd, addr, next) {
            Some(n) => return n,
            // -EAGAIN: the table changed under us (or went away), read the PMD again.
            None => continue,
        }
    }
}

/// `change_huge_pmd(prot_numa)`: `None` when the PMD is not huge under its lock
/// (`__pmd_trans_huge_lock` failed).
fn change_huge_pmd(
    cx: Ctx<'_>,
    tlb: &mut MmuGather<'_>,
    mm: &MmStruct,
    pmd: EntryPtr,
    addr: u64,
    prot: NewProt,
) -> Option<u64> {
    let _f = cx.cpu.enter("change_huge_pmd");
    let g = cx.geo();
    let ptl = pgtable::pmd_lock(cx, mm, pmd);
    let orig = pmd.get(cx);
    if orig.is_migration() {
        // is_swap_pmd: "a protection check is difficult so just be safe and disable write": a
        // writable migration entry becomes a read-only one (exclusive for anon), NUMA or not.
        if orig.swp_type() == Entry::SWP_MIGRATION_WRITE {
            let f = cx.cpu.frame_ref(orig.pfn());
            let ty = if crate::mm::folio::folio_test_anon(cx, f) {
                Entry::SWP_MIGRATION_READ_EXCLUSIVE
            } else {
                Entry::SWP_MIGRATION_READ
            };
            pmd.set(cx, Entry::swp(ty, orig.pfn()));
        }
        return Some(0);
    }
    if !orig.huge_leaf() {
        drop(ptl);
        return None;
    }
    let skip = match prot {
        NewProt::Numa => is_huge_zero_pmd(cx, orig) || orig.protnone(),
        NewProt::ReadOnly => !orig.write(),
        NewProt::UffdWp => unreachable!("uffd-wp splits huge PMDs"),
        // No huge PMD carries _PAGE_UFFD_WP in the model (protection splits them).
        NewProt::UffdWpResolve => true,
    };
    if skip {
        return Some(0);
    }
    let haddr = addr & g.pmd_mask();
    let old = match cx.proto().numa_huge_pmd_update {
        // pmdp_invalidate_ad: not present (still huge to software). x86 does not flush here (an
        // invalid entry's A/D bits cannot change); the gather flushes the range below.
        HugePmdUpdate::Invalidate => pmd.xchg(cx, orig.without(Entry::PRESENT | Entry::PROTNONE)),
        // pmdp_huge_get_and_clear_notify: none until set_pmd_at.
        HugePmdUpdate::GetAndClear => pmd.xchg(cx, Entry::NONE),
    };
    pmd.set(
        cx,
        match prot {
            NewProt::Numa => old.mk_protnone(),
            NewProt::ReadOnly | NewProt::UffdWp | NewProt::UffdWpResolve => {
                old.with(Entry::PRESENT).wrprotect()
            }
        },
    );
    tlb.add_range(cx, haddr, g.pmd_size());
    drop(ptl);
    Some(1 << g.pmd_order())
}

/// `change_pte_range(prot_numa)`: `None` for `-EAGAIN` (the table could not be mapped).
fn change_pte_range(
    cx: Ctx<'_>,
    tlb: &mut MmuGather<'_>,
    mm: &MmStruct,
    cp: Cp<'_>,
    pmd: EntryPtr,
    addr: u64,
    end: u64,
) -> Option<u64> {
    let (vma, prot) = (cp.vma, cp.prot);
    let _f = cx.cpu.enter("change_pte_range");
    let g = cx.geo();
    let l = pgtable::pte_offset_map_lock(cx, mm, pmd)?;
    // A reclaim that unmapped entries here with a deferred flush (TTU_BATCH_FLUSH) may leave
    // other CPUs writable translations that this call, finding the entries none, would not
    // flush (3ea277194daa).
    if cx.proto().mprotect_flush_batched_pending {
        crate::mm::tlb_batch::flush_tlb_batched_pending(cx, mm);
    }
    let mut pages = 0;
    let mut a = addr;
    while a < end {
        let pte = l.pte(g.index(a, 1));
        let v = pte.get(cx);
        a += g.page_size();
        if prot == NewProt::UffdWp {
            if v.is_none() {
                // Nobody plays with none PTEs but userfaultfd: a marker keeps the wp state.
                if crate::mm::userfaultfd::userfaultfd_wp_use_markers(cx, vma) {
                    pte.set(cx, Entry::uffd_wp_marker());
                    pages += 1;
                    uffd_wp_done(cx, mm, a - g.page_size());
                }
                continue;
            }
            uffd_wp_done(cx, mm, a - g.page_size());
            if v.is_pte_marker() {
                continue;
            }
            if !v.present() {
                // A swap or migration entry keeps the state in its swap uffd-wp bit; a
                // writable migration entry becomes a readable one first ("a protection check is
                // difficult so just be safe and disable write").
                let nv = migration_entry_wrprotect(cx, v).swp_mkuffd_wp();
                if nv != v {
                    pte.set(cx, nv);
                    pages += 1;
                }
                continue;
            }
            let old = pte.xchg(cx, Entry::NONE);
            pte.set(cx, old.mkuffd_wp());
            tlb.add_range(cx, a - g.page_size(), g.page_size());
            pages += 1;
            continue;
        }
        if prot == NewProt::UffdWpResolve {
            if v.is_uffd_wp_marker() {
                // An uffd-wp marker we'd like to unprotect: drop it.
                pte.set(cx, Entry::NONE);
                pages += 1;
                continue;
            }
            if v.swp_uffd_wp() {
                pte.set(cx, migration_entry_wrprotect(cx, v).swp_clear_uffd_wp());
                pages += 1;
                continue;
            }
            if !v.present() || !v.uffd_wp() {
                continue;
            }
            let old = pte.xchg(cx, Entry::NONE);
            pte.set(cx, old.without(Entry::UFFD_WP));
            tlb.add_range(cx, a - g.page_size(), g.page_size());
            pages += 1;
            continue;
        }
        if prot == NewProt::ReadOnly {
            if v.is_migration() && v.swp_type() == Entry::SWP_MIGRATION_WRITE {
                // A writable migration entry becomes a read one.
                pte.set(cx, migration_entry_wrprotect(cx, v));
                continue;
            }
            if !v.present() || !v.write() {
                continue;
            }
            let old = pte.xchg(cx, Entry::NONE);
            pte.set(cx, old.wrprotect());
            tlb.add_range(cx, a - g.page_size(), g.page_size());
            pages += 1;
            continue;
        }
        // Only present, accessible entries of normal pages: not the zero page, not already
        // PROTNONE, not a page pinned for DMA (it cannot move anyway).
        if !v.present() || v.protnone() {
            continue;
        }
        let Some(page) = vm_normal_page(cx, v) else {
            continue;
        };
        let f = page_folio(cx, page);
        // prot_numa_skip: shared copy-on-write pages (pinned, or mapped by a fork child too).
        if !vma.is_shared(cx)
            && (folio::folio_maybe_dma_pinned(cx, f) || folio::folio_mapcount(cx, f) > 1)
        {
            continue;
        }
        // ptep_modify_prot_start (x86: ptep_get_and_clear) / ptep_modify_prot_commit.
        let old = pte.xchg(cx, Entry::NONE);
        pte.set(cx, old.mk_protnone());
        tlb.add_range(cx, a - g.page_size(), g.page_size());
        pages += 1;
    }
    drop(l);
    Some(pages)
}

/// `change_pte_range` on a writable migration entry, whatever the new protection: "a
/// protection check is difficult so just be safe and disable write": it becomes a readable one
/// (exclusive for an anonymous folio), keeping its swap uffd-wp bit. Anything else unchanged.
fn migration_entry_wrprotect(cx: Ctx<'_>, v: Entry) -> Entry {
    if !v.is_migration() || v.swp_type() != Entry::SWP_MIGRATION_WRITE {
        return v;
    }
    let ty = if folio::folio_test_anon(cx, page_folio(cx, v.pfn())) {
        Entry::SWP_MIGRATION_READ_EXCLUSIVE
    } else {
        Entry::SWP_MIGRATION_READ
    };
    Entry::swp(ty, v.pfn()).swp_keep_uffd_wp(v)
}
