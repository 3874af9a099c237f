//! Reclaim of an isolated folio list (`mm/vmscan.c` `reclaim_pages` → `reclaim_folio_list` →
//! `shrink_folio_list`, and `mm/rmap.c` `try_to_unmap` / `try_to_unmap_one`, read at ≈6.18), as
//! MADV_PAGEOUT drives it: every folio comes with the isolation reference taken by
//! `folio_isolate_lru`, references are ignored (`ignore_references`), unmapping is allowed.
//!
//! Without a swap device (`swap = off`, like the host the model is compared with) a swap-backed
//! anonymous folio cannot be written out and is kept mapped (`folio_alloc_swap` fails:
//! `activate_locked_split`). With one (`swap = on`) it enters the swap cache (`add_to_swap`),
//! `try_to_unmap_one` replaces each PTE by a swap entry (`swap_duplicate`, the exclusive bit
//! carried over, a pinned exclusive page aborts the walk), the batch is flushed if a PTE was dirty
//! (`try_to_unmap_flush_dirty`), the folio is written to its slot (`pageout` →
//! `swap_writepage`, synchronous), relocked, and `__remove_mapping` frees it if the references
//! are only the isolation one and the cache's (a GUP reference keeps it in the cache). A shmem folio is unmapped, then kept in the page cache if dirty
//! (`shmem_writeout` redirties it without swap) or dropped from it if clean. A lazyfree anonymous folio (MADV_FREE, swap-backed flag
//! clear) needs no backing store: `try_to_unmap_one` clears each PTE under the PTL with
//! `TTU_BATCH_FLUSH` (the flush deferred to `try_to_unmap_flush`), moves the PTE's dirty bit to the
//! folio, and discards the mapping if the folio is clean and holds only the isolation and mapping
//! references (`ref_count == 1 + map_count`); otherwise it restores the PTE, makes the folio
//! swap-backed again and stops the walk. A fully unmapped lazyfree folio is frozen at one
//! reference (`folio_ref_freeze`) and freed after the batched flush.
//!
//! The deferred flush is safe because x86 re-walks the tables to set the dirty bit on the first
//! store through a translation cached clean (see `arch/fault.rs`): a CPU that could still write
//! the page after the PTE was cleared either had it dirty already (the folio is kept) or faults.

use crate::arch::pgtable::Entry;
use crate::mm::folio::{self, PG_DIRTY, PG_LRU, PG_SWAPBACKED, PG_SWAPCACHE};
use crate::mm::rmap::{page_vma_mapped_walk, rmap_walk, RmapLock};
use crate::mm::swap_state;
use crate::mm::swapfile;
use crate::mm::tlb_batch::{
    set_tlb_ubc_flush_pending, try_to_unmap_flush, try_to_unmap_flush_dirty, TlbUbc,
};
use crate::mm::types::{Vma, MM_ANONPAGES, MM_SHMEMPAGES, MM_SWAPENTS};
use crate::Ctx;
use mmcheck_platform::{Access, FrameRef, PageField};
use std::sync::Arc;

/// `folio_isolate_lru`: take the folio off the LRU (`folio_test_clear_lru`) with a reference of
/// its own. False if it was not on the LRU (isolated by someone else, or never added).
pub fn folio_isolate_lru(cx: Ctx<'_>, f: FrameRef) -> bool {
    let _f = cx.cpu.enter("folio_isolate_lru");
    let pm = cx.cpu.page(f.pfn, Access::Rmw);
    if pm.get(PageField::Flags) & PG_LRU == 0 {
        return false;
    }
    pm.and_not(PageField::Flags, PG_LRU);
    folio::folio_ref_add(cx, f, 1);
    true
}

/// `folio_putback_lru`: back on the LRU, and the isolation reference dropped.
pub fn folio_putback_lru(cx: Ctx<'_>, f: FrameRef) {
    folio::folio_set(cx, f, PG_LRU);
    folio::folio_put(cx, f);
}

/// `folio_mark_lazyfree` (`mm/swap.c`, through `lru_lazyfree`): an anonymous swap-backed folio on
/// the LRU, not in the swap cache, loses `PG_swapbacked` (and moves to the inactive file LRU).
/// The kernel does it from a per-CPU folio batch that `lru_add_drain` empties; the model does it
/// at once.
pub fn folio_mark_lazyfree(cx: Ctx<'_>, f: FrameRef) {
    let pm = cx.cpu.page(f.pfn, Access::Rmw);
    let flags = pm.get(PageField::Flags);
    let anon = pm.get(PageField::Mapping) & 1 == 1;
    if anon && flags & PG_SWAPBACKED != 0 && flags & PG_LRU != 0 {
        pm.and_not(PageField::Flags, PG_SWAPBACKED);
    }
}

/// `folio_ref_freeze(folio, count)`: the count drops to zero only if it is exactly `count`.
fn folio_ref_freeze(cx: Ctx<'_>, f: FrameRef, count: i64) -> bool {
    // page_ref_freeze (atomic_cmpxchg): fully ordered.
    cx.cpu
        .page_atomic_return(f.pfn, mmcheck_platform::Obj::PAGE_ALL)
        .cmpxchg(PageField::Refcount, count, 0)
        .is_ok()
}

/// `__remove_mapping` of a clean, unmapped page-cache folio (locked): freeze its references at
/// the isolation one plus the page cache's, then take it out of the page cache
/// (`__filemap_remove_folio`). False if someone else holds a reference (kept).
fn remove_mapping(cx: Ctx<'_>, f: FrameRef) -> bool {
    let _f = cx.cpu.enter("__remove_mapping");
    let (mapping, index) = {
        let pm = cx.cpu.page(f.pfn, Access::Read);
        (pm.get(PageField::Mapping), pm.get(PageField::Index))
    };
    let Some(file) = cx.k.file_by_id(mapping >> 1) else {
        return false;
    };
    let nr = folio::folio_nr_pages(cx, f) as i64;
    // LOCKING: the freeze and the removal under the xarray lock, so that no one who finds the
    // folio in the cache under that lock (collapse_file's folio_get) sees it frozen.
    let xa = file.xa_lock(cx);
    if !folio_ref_freeze(cx, f, 1 + nr) {
        return false;
    }
    // __filemap_remove_folio
    file.cache_remove(cx, &xa, index);
    cx.cpu.page(f.pfn, Access::Write).set(PageField::Mapping, 0);
    drop(xa);
    true
}

/// `reclaim_pages` → `reclaim_folio_list`: shrink the isolated folios, then put back the ones
/// kept. Returns the number of folios freed.
pub fn reclaim_pages(cx: Ctx<'_>, folios: Vec<FrameRef>) -> usize {
    if folios.is_empty() {
        return 0;
    }
    let _f = cx.cpu.enter("reclaim_pages");
    let (freed, kept) = shrink_folio_list(cx, folios);
    for f in kept {
        folio_putback_lru(cx, f);
    }
    freed
}

/// `shrink_folio_list(ignore_references = true)`: returns how many folios were freed and the
/// folios kept (still holding their isolation reference).
pub fn shrink_folio_list(cx: Ctx<'_>, folios: Vec<FrameRef>) -> (usize, Vec<FrameRef>) {
    let _f = cx.cpu.enter("shrink_folio_list");
    let mut ubc = TlbUbc::default();
    let mut free = Vec::new();
    let mut kept = Vec::new();
    for f in folios {
        if !folio::folio_trylock(cx, f) {
            kept.push(f);
            continue;
        }
        // Anonymous process memory needs backing store: without a swap device
        // (`folio_alloc_swap` fails) a swap-backed anon folio stays as it is, mapped.
        let anon = folio::folio_test_anon(cx, f);
        let swapbacked = anon && folio::folio_test(cx, f, PG_SWAPBACKED);
        if swapbacked {
            if !cx.proto().swap {
                folio::folio_unlock(cx, f);
                kept.push(f);
                continue;
            }
            if !folio::folio_test(cx, f, PG_SWAPCACHE) && !swap_state::add_to_swap(cx, f) {
                // activate_locked_split: the area is full.
                folio::folio_unlock(cx, f);
                kept.push(f);
                continue;
            }
        }
        // A lazyfree anon folio, or a page-cache (shmem) one: unmap it everywhere,
        // TTU_BATCH_FLUSH.
        if folio::folio_mapped(cx, f) {
            try_to_unmap(cx, f, &mut ubc);
            if folio::folio_mapped(cx, f) {
                folio::folio_unlock(cx, f);
                kept.push(f);
                continue;
            }
        }
        if swapbacked {
            if swap_pageout(cx, f, &mut ubc) {
                free.push(f);
            } else {
                kept.push(f);
            }
            continue;
        }
        // shmem: a dirty folio goes to shmem_writeout, which cannot write it without swap and
        // redirties it (activate_locked); a clean one (never written: zeroes) leaves the page
        // cache (__remove_mapping) and is freed.
        if !anon {
            if folio::folio_test(cx, f, PG_DIRTY) || !remove_mapping(cx, f) {
                folio::folio_unlock(cx, f);
                kept.push(f);
                continue;
            }
            folio::folio_unlock(cx, f);
            free.push(f);
            continue;
        }
        // A dirty folio would need writeback (activate_locked): a lazyfree folio that reached
        // here clean is dropped; the unchecked variant drops it dirty too.
        if cx.proto().lazyfree_dirty_check && folio::folio_test(cx, f, PG_DIRTY) {
            folio::folio_unlock(cx, f);
            kept.push(f);
            continue;
        }
        // Follow __remove_mapping: only the isolation reference may remain (a GUP reference
        // taken meanwhile keeps the folio).
        if !folio_ref_freeze(cx, f, 1) {
            folio::folio_unlock(cx, f);
            kept.push(f);
            continue;
        }
        folio::folio_unlock(cx, f);
        free.push(f);
    }
    // The batch is flushed before any folio is freed (free_unref_folios).
    try_to_unmap_flush(cx, &mut ubc);
    let freed = free.len();
    for f in free {
        folio::free_folio(cx, f);
    }
    (freed, kept)
}

/// The rest of `shrink_folio_list` for an unmapped swap-cache folio (locked): `pageout` if
/// dirty, then `__remove_mapping`. True if the folio is to be freed (unlocked, references
/// frozen); false if kept (unlocked).
fn swap_pageout(cx: Ctx<'_>, f: FrameRef, ubc: &mut TlbUbc) -> bool {
    // One read of the folio: its slot, size and dirty bit (the folio lock is held).
    let (off, nr, dirty) = {
        let pm = cx.cpu.page(f.pfn, Access::Read);
        (
            pm.get(PageField::Private) as u32,
            1i64 << pm.get(PageField::Order),
            pm.get(PageField::Flags) & PG_DIRTY != 0,
        )
    };
    if dirty {
        // Folio is dirty: flush the TLB if a writable entry potentially exists, so that no CPU
        // writes the page after it went to swap.
        try_to_unmap_flush_dirty(cx, ubc);
        let _p = cx.cpu.enter("pageout");
        // is_page_cache_freeable (only the isolation and the cache's references), then
        // folio_clear_dirty_for_io.
        let freeable = {
            let pm = cx.cpu.page(f.pfn, Access::Rmw);
            let ok = pm.count(PageField::Refcount) == 1 + nr;
            if ok {
                pm.and_not(PageField::Flags, PG_DIRTY);
            }
            ok
        };
        if !freeable {
            folio::folio_unlock(cx, f);
            return false;
        }
        // swap_writepage; the write completes at once and unlocks the folio
        // (folio_end_writeback).
        swapfile::swap_writepage(cx, f, off);
        folio::folio_unlock(cx, f);
        // A synchronous write: go ahead and try to reclaim the folio.
        if !folio::folio_trylock(cx, f) {
            return false;
        }
    }
    // __remove_mapping: freeze the references at the isolation one plus the cache's (a
    // reference taken meanwhile, by GUP or a swap-in that found the folio in the cache, keeps
    // it), then check it was not redirtied (else folio_ref_unfreeze). One step: the frozen
    // folio of a redirtied page is never seen by lookups (it cannot be redirtied without a
    // reference, which the freeze excludes).
    let _r = cx.cpu.enter("__remove_mapping");
    let frozen = {
        let pm = cx
            .cpu
            .page_atomic_return(f.pfn, mmcheck_platform::Obj::PAGE_ALL);
        pm.get(PageField::Flags) & PG_DIRTY == 0
            && pm.cmpxchg(PageField::Refcount, 1 + nr, 0).is_ok()
    };
    if !frozen {
        folio::folio_unlock(cx, f);
        return false;
    }
    swap_state::__delete_from_swap_cache(cx, f, off, 0);
    folio::folio_unlock(cx, f);
    true
}

/// `try_to_unmap(folio, TTU_BATCH_FLUSH)` of a locked folio: an rmap walk calling
/// `try_to_unmap_one` for every VMA that may map it, until one aborts.
pub fn try_to_unmap(cx: Ctx<'_>, f: FrameRef, ubc: &mut TlbUbc) {
    let _f = cx.cpu.enter("try_to_unmap");
    rmap_walk(cx, f, RmapLock::Read, &mut |vma, a| {
        try_to_unmap_one(cx, f, vma, a, ubc)
    });
}

/// `try_to_unmap_one` for the small folio `f` in `vma` at `addr`: false stops the walk
/// (`walk_abort`).
fn try_to_unmap_one(cx: Ctx<'_>, f: FrameRef, vma: &Arc<Vma>, addr: u64, ubc: &mut TlbUbc) -> bool {
    let _f = cx.cpu.enter("try_to_unmap_one");
    let ps = cx.geo().page_shift;
    let Some(mm) = cx.k.mm_by_id(vma.mm_id(cx)) else {
        return true;
    };
    let nr = folio::folio_nr_pages(cx, f);
    let anon = folio::folio_test_anon(cx, f);
    for i in 0..nr {
        let a = addr + (i << ps);
        if a < vma.start(cx) {
            continue;
        }
        if a >= vma.end(cx) {
            break;
        }
        let Some(pv) = page_vma_mapped_walk(cx, &mm, f, a, false, false) else {
            continue;
        };
        // Nuke the page table entry: flush now, or clear and defer the flush to the batch.
        let pteval = pv.pte.xchg(cx, Entry::NONE);
        if cx.proto().reclaim_batch_flush {
            set_tlb_ubc_flush_pending(cx, ubc, &mm, a, pteval.dirty());
        } else {
            cx.cpu.flush_tlb_range(mm.id, a >> ps, (a >> ps) + 1, false);
        }
        // Set the dirty flag on the folio now the PTE is gone.
        if pteval.dirty() {
            folio::folio_set(cx, f, PG_DIRTY);
        }
        if anon {
            if folio::folio_test(cx, f, PG_SWAPBACKED) {
                if !cx.proto().swap || !folio::folio_test(cx, f, PG_SWAPCACHE) {
                    // Would need a swap entry (`folio_dup_swap`): no swap device, restore.
                    pv.pte.set(cx, pteval);
                    return false;
                }
                if !unmap_to_swap(cx, f, &mm, &pv.pte, pteval) {
                    return false;
                }
                drop(pv);
                folio::folio_put(cx, f);
                continue;
            }
            // MADV_FREE page check. Synchronize with GUP-fast: clear PTE; barrier; read
            // refcount (against: take a reference; barrier; read PTE).
            if cx.proto().lazyfree_mb {
                cx.cpu.smp_mb();
            }
            let ref_count = folio::folio_ref_count(cx, f);
            let map_count = folio::folio_mapcount(cx, f);
            // Order the reference count before the dirty flag (see __remove_mapping).
            cx.cpu.smp_rmb();
            let clean = !cx.proto().lazyfree_dirty_check || !folio::folio_test(cx, f, PG_DIRTY);
            let refs = !cx.proto().lazyfree_ref_check || ref_count == 1 + map_count;
            if refs && clean {
                mm.add_rss(MM_ANONPAGES, -1);
            } else {
                // Redirtied (or referenced): it cannot be discarded. Remap the page.
                pv.pte.set(cx, pteval);
                folio::folio_set(cx, f, PG_SWAPBACKED);
                return false;
            }
        } else {
            mm.add_rss(MM_SHMEMPAGES, -1);
        }
        // discard:
        folio::folio_remove_rmap_pte(cx, pteval.pfn());
        drop(pv);
        folio::folio_put(cx, f);
    }
    true
}

/// `try_to_unmap_one`'s swap-backed anon branch, PTE already cleared (and the flush batched):
/// a swap PTE for the folio's slot. False (PTE restored, walk aborted) if the slot is gone or
/// the page may be pinned.
fn unmap_to_swap(
    cx: Ctx<'_>,
    f: FrameRef,
    mm: &crate::mm::types::MmStruct,
    pte: &crate::mm::pgtable::EntryPtr,
    pteval: Entry,
) -> bool {
    let subpage = pteval.pfn();
    // The page's PageAnonExclusive and the folio's slot (folio->swap).
    let anon_exclusive = folio::page_anon_exclusive(cx, subpage);
    let off = cx.cpu.page(f.pfn, Access::Read).get(PageField::Private) as u32;
    if !swapfile::swap_duplicate(cx, off) {
        pte.set(cx, pteval);
        return false;
    }
    // See folio_try_share_anon_rmap(): clear the PTE first. A pinned exclusive page stays.
    if anon_exclusive && !folio::folio_try_share_anon_rmap_pte(cx, f, subpage) {
        swapfile::swap_free(cx, off);
        pte.set(cx, pteval);
        return false;
    }
    mm.add_rss(MM_ANONPAGES, -1);
    mm.add_rss(MM_SWAPENTS, 1);
    let mut swp = Entry::swap(off, anon_exclusive);
    if pteval.uffd_wp() {
        swp = swp.swp_mkuffd_wp();
    }
    pte.set(cx, swp);
    folio::folio_remove_rmap_pte(cx, subpage);
    true
}
