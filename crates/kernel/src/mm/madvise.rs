//! `madvise` (`mm/madvise.c`, 2026):
//! - `MADV_DONTNEED`: under the per-VMA read lock when the range lies in one VMA (6.16+
//!   `try_vma_read_lock`), else under the mmap read lock; each VMA is zapped with `reclaim_pt` so
//!   emptied PTE tables are freed (PT reclaim, 6.14+).
//! - `MADV_FREE` (same locking): `madvise_free_single_vma` walks the anonymous range
//!   (`madvise_free_pte_range`, `madvise_free_huge_pmd`), makes each mapped page clean and old
//!   under the PTL and marks its folio lazyfree; reclaim may then discard it instead of swapping.
//! - `MADV_PAGEOUT` (mmap read lock): `madvise_cold_or_pageout_pte_range` makes each exclusively
//!   mapped page old, isolates its folio and hands the list to `reclaim_pages` (`vmscan.rs`).
//!
//! Large folios: the kernel splits a large folio that the range covers only in part (MADV_FREE,
//! MADV_PAGEOUT) and handles a fully covered PTE-mapped one as a batch; the model skips PTE-mapped
//! large folios, and a huge PMD only partly in the range (docs/fidelity.md).

use crate::arch::pgtable::Entry;
use crate::check::{check_tlb_permission, tlb_permission_begin};
use crate::mm::folio::{self, page_folio, PG_DIRTY};
use crate::mm::memory::{lock_vma_under_rcu, vm_normal_page};
use crate::mm::mmu_gather::MmuGather;
use crate::mm::pgtable::{self, EntryPtr};
use crate::mm::types::{MmStruct, Vma};
use crate::mm::vmscan;
use crate::mm::zap::{zap_page_range_single, ZapDetails};
use crate::protocol::HugePmdUpdate;
use crate::{Ctx, Errno};
use mmcheck_platform::FrameRef;
use std::sync::Arc;

/// `madvise_dontneed_single_vma`.
fn madvise_dontneed_single_vma(cx: Ctx<'_>, mm: &MmStruct, vma: &Arc<Vma>, start: u64, end: u64) {
    let _f = cx.cpu.enter("madvise_dontneed_single_vma");
    zap_page_range_single(
        cx,
        mm,
        vma,
        start,
        end,
        ZapDetails {
            reclaim_pt: true,
            even_cows: true,
            drop_markers: false,
        },
    );
}

/// `madvise(addr, len, MADV_DONTNEED)`. `ENOMEM` if part of the range is unmapped (the mapped
/// parts are still zapped).
pub fn madvise_dontneed(cx: Ctx<'_>, mm: &MmStruct, addr: u64, len: u64) -> Result<(), Errno> {
    let _f = cx.cpu.enter("madvise_dontneed");
    let ps = cx.geo().page_size();
    if !addr.is_multiple_of(ps) {
        return Err(Errno::Einval);
    }
    if len == 0 {
        return Ok(());
    }
    let end = addr
        .checked_add(len.div_ceil(ps) * ps)
        .ok_or(Errno::Einval)?;
    if end > cx.geo().task_size() {
        return Err(Errno::Einval);
    }
    let tlb_before = tlb_permission_begin(cx, mm, addr, end);
    if cx.proto().madv_vma_lock {
        if let Some(l) = lock_vma_under_rcu(cx, mm, addr) {
            if end <= l.vma.end(cx) {
                madvise_dontneed_single_vma(cx, mm, &l.vma, addr, end);
                drop(l);
                cx.rcu_quiescent();
                check_tlb_permission(cx, mm, &[(addr, end)], tlb_before, "MADV_DONTNEED");
                return Ok(());
            }
        }
    }
    let r = mm.mmap_lock.read_lock(cx.cpu);
    let vmas = mm.vmas_in(cx, addr, end);
    let mut covered = addr;
    let mut hole = false;
    let mut acted = Vec::new();
    for v in &vmas {
        if v.start(cx) > covered {
            hole = true;
        }
        let s = addr.max(v.start(cx));
        let e = end.min(v.end(cx));
        madvise_dontneed_single_vma(cx, mm, v, s, e);
        acted.push((s, e));
        covered = e;
    }
    drop(r);
    cx.rcu_quiescent();
    check_tlb_permission(cx, mm, &acted, tlb_before, "MADV_DONTNEED");
    if hole || covered < end {
        return Err(Errno::Enomem);
    }
    Ok(())
}

/// The page-aligned end of `[addr, addr + len)`, or the errno `madvise` returns for the range.
fn madvise_range(cx: Ctx<'_>, addr: u64, len: u64) -> Result<Option<u64>, Errno> {
    let ps = cx.geo().page_size();
    if !addr.is_multiple_of(ps) {
        return Err(Errno::Einval);
    }
    if len == 0 {
        return Ok(None);
    }
    let end = addr
        .checked_add(len.div_ceil(ps) * ps)
        .ok_or(Errno::Einval)?;
    if end > cx.geo().task_size() {
        return Err(Errno::Einval);
    }
    Ok(Some(end))
}

/// What `madvise_walk_vmas` does to one VMA's part of the range.
type VmaRangeFn<'f> = dyn FnMut(&Arc<Vma>, u64, u64) -> Result<(), Errno> + 'f;

/// `madvise_walk_vmas` under the mmap read lock (or first the per-VMA read lock when
/// `vma_lock`): `f` on each VMA's part of `[addr, end)`, stopping at its first error; `ENOMEM`
/// at the end if part of the range is unmapped.
fn madvise_walk_vmas(
    cx: Ctx<'_>,
    mm: &MmStruct,
    addr: u64,
    end: u64,
    vma_lock: bool,
    f: &mut VmaRangeFn<'_>,
) -> Result<(), Errno> {
    if vma_lock && cx.proto().madv_vma_lock {
        if let Some(l) = lock_vma_under_rcu(cx, mm, addr) {
            if end <= l.vma.end(cx) {
                let r = f(&l.vma, addr, end);
                drop(l);
                cx.rcu_quiescent();
                return r;
            }
        }
    }
    let r = mm.mmap_lock.read_lock(cx.cpu);
    let vmas = mm.vmas_in(cx, addr, end);
    let mut covered = addr;
    let mut hole = false;
    let mut res = Ok(());
    for v in &vmas {
        if v.start(cx) > covered {
            hole = true;
        }
        let s = addr.max(v.start(cx));
        let e = end.min(v.end(cx));
        res = f(v, s, e);
        if res.is_err() {
            break;
        }
        covered = e;
    }
    drop(r);
    cx.rcu_quiescent();
    res?;
    if hole || covered < end {
        return Err(Errno::Enomem);
    }
    Ok(())
}

/// `madvise(addr, len, MADV_FREE)`: `EINVAL` on a VMA that is not anonymous.
pub fn madvise_free(cx: Ctx<'_>, mm: &MmStruct, addr: u64, len: u64) -> Result<(), Errno> {
    let _f = cx.cpu.enter("madvise_free");
    let Some(end) = madvise_range(cx, addr, len)? else {
        return Ok(());
    };
    madvise_walk_vmas(cx, mm, addr, end, true, &mut |vma, s, e| {
        madvise_free_single_vma(cx, mm, vma, s, e)
    })
}

/// `madvise_free_single_vma`: one mmu_gather over the range's page tables.
fn madvise_free_single_vma(
    cx: Ctx<'_>,
    mm: &MmStruct,
    vma: &Arc<Vma>,
    start: u64,
    end: u64,
) -> Result<(), Errno> {
    let _f = cx.cpu.enter("madvise_free_single_vma");
    // MADV_FREE works only for anonymous memory.
    if !vma.is_anonymous() {
        return Err(Errno::Einval);
    }
    let g = cx.geo();
    let mut tlb = MmuGather::new(cx, mm, false);
    let mut addr = start;
    while addr < end {
        let next = ((addr & g.pmd_mask()) + g.pmd_size()).min(end);
        if let Some(pmd) = pgtable::pmd_off(cx, mm, addr) {
            madvise_free_pte_range(cx, &mut tlb, mm, pmd, addr, next);
        }
        addr = next;
    }
    tlb.finish(cx);
    Ok(())
}

/// `madvise_free_huge_pmd`: true if the PMD was huge and handled here. A THP only partly in the
/// range is split by the kernel (`split_folio`), skipped by the model.
fn madvise_free_huge_pmd(
    cx: Ctx<'_>,
    tlb: &mut MmuGather<'_>,
    mm: &MmStruct,
    pmd: EntryPtr,
    addr: u64,
    next: u64,
) -> bool {
    let _f = cx.cpu.enter("madvise_free_huge_pmd");
    let g = cx.geo();
    // pmd_trans_huge_lock.
    let ptl = pgtable::pmd_lock(cx, mm, pmd);
    let orig = pmd.get(cx);
    if !cx.cpu.recheck("pmd_trans_huge", orig.huge_leaf()) {
        drop(ptl);
        return false;
    }
    if crate::mm::huge_memory::is_huge_zero_pmd(cx, orig) {
        return true;
    }
    let f = page_folio(cx, orig.pfn());
    // Other processes map it: it could be discarded only if they all did MADV_FREE.
    if folio::folio_mapcount(cx, f) != 1 || !folio::folio_trylock(cx, f) {
        return true;
    }
    if next - addr != g.pmd_size() {
        folio::folio_unlock(cx, f);
        return true;
    }
    if folio::folio_test(cx, f, PG_DIRTY) {
        folio::folio_clear(cx, f, PG_DIRTY);
    }
    folio::folio_unlock(cx, f);
    if orig.young() || orig.dirty() {
        let haddr = addr & g.pmd_mask();
        let old = match cx.proto().lazyfree_huge_pmd_update {
            // pmdp_invalidate: not present, still huge to software, flushed.
            HugePmdUpdate::Invalidate => {
                let old = pmd.xchg(cx, orig.without(Entry::PRESENT | Entry::PROTNONE));
                cx.cpu.flush_tlb_range(
                    mm.id,
                    haddr >> g.page_shift,
                    (haddr + g.pmd_size()) >> g.page_shift,
                    false,
                );
                old
            }
            // pmdp_huge_get_and_clear: none until set_pmd_at (before 58ceeb6bec86).
            HugePmdUpdate::GetAndClear => pmd.xchg(cx, Entry::NONE),
        };
        pmd.set(cx, old.without(Entry::ACCESSED | Entry::DIRTY));
        tlb.add_range(cx, haddr, g.pmd_size());
    }
    vmscan::folio_mark_lazyfree(cx, f);
    drop(ptl);
    true
}

/// `madvise_free_pte_range` for one PMD entry.
fn madvise_free_pte_range(
    cx: Ctx<'_>,
    tlb: &mut MmuGather<'_>,
    mm: &MmStruct,
    pmd: EntryPtr,
    addr: u64,
    end: u64,
) {
    let _f = cx.cpu.enter("madvise_free_pte_range");
    let g = cx.geo();
    if pmd.get(cx).pmd_trans_huge() && madvise_free_huge_pmd(cx, tlb, mm, pmd, addr, end) {
        return;
    }
    let Some(l) = pgtable::pte_offset_map_lock(cx, mm, pmd) else {
        return;
    };
    crate::mm::tlb_batch::flush_tlb_batched_pending(cx, mm);
    let mut a = addr;
    while a < end {
        let pte = l.pte(g.index(a, 1));
        let cur = a;
        a += g.page_size();
        let ptent = pte.get(cx);
        // A swap entry is dropped: its data need not survive (free_swap_and_cache,
        // clear_not_present_full_ptes). Migration entries stay.
        if ptent.is_swap_entry() {
            pte.set(cx, Entry::NONE);
            mm.add_rss(crate::mm::types::MM_SWAPENTS, -1);
            crate::mm::swapfile::free_swap_and_cache(cx, ptent.swp_offset());
            continue;
        }
        if ptent.is_none() || !ptent.present() {
            continue;
        }
        let Some(page) = vm_normal_page(cx, ptent) else {
            continue;
        };
        let f = page_folio(cx, page);
        if folio::folio_order(cx, f) != 0 {
            continue; // the kernel batches or splits large folios
        }
        if folio::folio_test(cx, f, PG_DIRTY) {
            if !folio::folio_trylock(cx, f) {
                continue;
            }
            // Shared with others: its dirty flag must not be cleared.
            if folio::folio_mapcount(cx, f) != 1 {
                folio::folio_unlock(cx, f);
                continue;
            }
            folio::folio_clear(cx, f, PG_DIRTY);
            folio::folio_unlock(cx, f);
        }
        if ptent.young() || ptent.dirty() {
            // clear_young_dirty_ptes (generic): get-and-clear, then set old and clean, so a
            // concurrent hardware dirty-bit update faults instead of being lost.
            let old = pte.xchg(cx, Entry::NONE);
            pte.set(cx, old.without(Entry::ACCESSED | Entry::DIRTY));
            tlb.add_range(cx, cur, g.page_size());
        }
        vmscan::folio_mark_lazyfree(cx, f);
    }
    drop(l);
}

/// `madvise(addr, len, MADV_PAGEOUT)` (mmap read lock).
pub fn madvise_pageout(cx: Ctx<'_>, mm: &MmStruct, addr: u64, len: u64) -> Result<(), Errno> {
    let _f = cx.cpu.enter("madvise_pageout");
    let Some(end) = madvise_range(cx, addr, len)? else {
        return Ok(());
    };
    madvise_walk_vmas(cx, mm, addr, end, false, &mut |_vma, s, e| {
        madvise_pageout_vma(cx, mm, s, e);
        Ok(())
    })
}

/// `madvise_pageout` of one VMA: `madvise_pageout_page_range` inside one mmu_gather.
fn madvise_pageout_vma(cx: Ctx<'_>, mm: &MmStruct, start: u64, end: u64) {
    let g = cx.geo();
    let mut tlb = MmuGather::new(cx, mm, false);
    let mut addr = start;
    while addr < end {
        let next = ((addr & g.pmd_mask()) + g.pmd_size()).min(end);
        if let Some(pmd) = pgtable::pmd_off(cx, mm, addr) {
            madvise_cold_or_pageout_pte_range(cx, &mut tlb, mm, pmd, addr, next);
        }
        addr = next;
    }
    tlb.finish(cx);
}

/// `madvise_cold_or_pageout_pte_range(pageout)` for one PMD entry: age and isolate each
/// exclusively mapped small folio under the PTL, then reclaim the list after dropping it. A huge
/// PMD is left alone (the kernel isolates the THP, and without swap splits it: not modelled).
fn madvise_cold_or_pageout_pte_range(
    cx: Ctx<'_>,
    tlb: &mut MmuGather<'_>,
    mm: &MmStruct,
    pmd: EntryPtr,
    addr: u64,
    end: u64,
) {
    let _f = cx.cpu.enter("madvise_cold_or_pageout_pte_range");
    let g = cx.geo();
    let Some(l) = pgtable::pte_offset_map_lock(cx, mm, pmd) else {
        return;
    };
    crate::mm::tlb_batch::flush_tlb_batched_pending(cx, mm);
    let mut list: Vec<FrameRef> = Vec::new();
    let mut a = addr;
    while a < end {
        let pte = l.pte(g.index(a, 1));
        let cur = a;
        a += g.page_size();
        let ptent = pte.get(cx);
        if ptent.is_none() || !ptent.present() {
            continue;
        }
        let Some(page) = vm_normal_page(cx, ptent) else {
            continue;
        };
        let f = page_folio(cx, page);
        if folio::folio_order(cx, f) != 0 {
            continue; // large folios: split or batched by the kernel
        }
        // Do not interfere with other mappings of this folio.
        if folio::folio_mapcount(cx, f) != 1 {
            continue;
        }
        if ptent.young() {
            let old = pte.xchg(cx, Entry::NONE);
            pte.set(cx, old.without(Entry::ACCESSED));
            tlb.add_range(cx, cur, g.page_size());
        }
        if vmscan::folio_isolate_lru(cx, f) {
            list.push(f);
        }
    }
    drop(l);
    vmscan::reclaim_pages(cx, list);
}
