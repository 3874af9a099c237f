//! Page migration (`mm/migrate.c`, `mm/rmap.c` `try_to_migrate`, `remove_migration_ptes`, ≈6.18;
//! `migrate_folio_unmap` / `migrate_folio_move` / `folio_migrate_mapping` read at 6.8): lock and
//! isolate the folio, replace every mapping with a migration entry through an rmap walk (a
//! maybe-pinned exclusive anon page aborts it), check that only the isolation reference is left,
//! copy to a new folio, then walk rmap again to turn each migration entry into a mapping of the
//! new folio. Faults on a migration entry wait for the folio lock.
//!
//! Rmap completeness oracle: once `remove_migration_ptes` is done, no migration entry to the old
//! folio may remain anywhere; one that rmap could not find is never restored (`rmap-missed`).

use crate::arch::pgtable::Entry;
use crate::mm::folio;
use crate::mm::rmap::{
    page_vma_mapped_walk, page_vma_mapped_walk_pmd, rmap_walk, PmdWalk, RmapLock,
};
use crate::mm::tlb_batch::{set_tlb_ubc_flush_pending, try_to_unmap_flush, TlbUbc};
use crate::mm::types::MmStruct;
use crate::Ctx;
use mmcheck_platform::{Access, FrameRef, PageField, ViolationKind};

fn mm_of(cx: Ctx<'_>, id: u64) -> Option<std::sync::Arc<MmStruct>> {
    cx.k.mm_by_id(id)
}

/// `try_to_migrate`: replace every mapping of `src` (locked) with a migration entry. Stops at
/// the first mapping of a maybe-pinned exclusive anon page, which it leaves mapped. With a batch
/// (`TTU_BATCH_FLUSH`), each PTE is cleared without a flush and the flush is left to the caller's
/// `try_to_unmap_flush`. A PMD-mapped THP gets a PMD migration entry (`set_pmd_migration_entry`,
/// flushed under the PMD lock whatever the batch); a PTE-mapped large folio one entry per page.
pub fn try_to_migrate(cx: Ctx<'_>, src: FrameRef, batch: Option<&mut TlbUbc>) {
    try_to_migrate_flags(cx, src, batch, RmapLock::Read, false)
}

/// `try_to_migrate` with its flags: `TTU_RMAP_LOCKED` (`lock = Held`) and `TTU_SPLIT_HUGE_PMD`
/// (`split_pmd`: `split_huge_pmd_address(..., freeze = true, folio)` first, so a PMD mapping
/// becomes PTE migration entries at once).
pub fn try_to_migrate_flags(
    cx: Ctx<'_>,
    src: FrameRef,
    mut batch: Option<&mut TlbUbc>,
    lock: RmapLock,
    split_pmd: bool,
) {
    let _f = cx.cpu.enter("try_to_migrate");
    let ps = cx.geo().page_shift;
    let anon = folio::folio_test_anon(cx, src);
    let nr = folio::folio_nr_pages(cx, src);
    rmap_walk(cx, src, lock, &mut |vma, addr| {
        let _f = cx.cpu.enter("try_to_migrate_one");
        let Some(mm) = mm_of(cx, vma.mm_id(cx)) else {
            return true;
        };
        if split_pmd {
            // split_huge_pmd_address: `__split_huge_pmd` takes the PMD lock before it looks at
            // the PMD (a NUMA-hinting `change_huge_pmd` may have it invalidated for a moment).
            // vma_address: the folio's first page may lie before the VMA (split inside it).
            let at = addr.max(vma.start(cx));
            if let Some(pmd) = crate::mm::pgtable::pmd_off(cx, &mm, at) {
                crate::mm::huge_memory::__split_huge_pmd_freeze(
                    cx,
                    &mm,
                    vma,
                    pmd,
                    at,
                    true,
                    Some(src),
                );
            }
        }
        if nr > 1 {
            match page_vma_mapped_walk_pmd(
                cx,
                &mm,
                vma,
                src,
                addr.max(vma.start(cx)),
                false,
                split_pmd,
            ) {
                PmdWalk::Pmd { ptl, pmd, .. } => {
                    let ok =
                        crate::mm::huge_memory::set_pmd_migration_entry(cx, &mm, pmd, addr, src);
                    drop(ptl);
                    return ok;
                }
                PmdWalk::NotFound => return true,
                PmdWalk::Pte => {}
            }
        }
        for i in 0..nr {
            let a = addr + (i << ps);
            if a < vma.start(cx) || a >= vma.end(cx) {
                continue;
            }
            let Some(pv) = page_vma_mapped_walk(cx, &mm, src, a, split_pmd, false) else {
                continue;
            };
            let subpage = pv.entry.pfn();
            let anon_exclusive = anon && folio::page_anon_exclusive(cx, subpage);
            // ptep_clear_flush (or ptep_get_and_clear and a batched flush), then the migration
            // entry, under the PTL.
            let old = pv.pte.xchg(cx, Entry::NONE);
            match batch.as_deref_mut() {
                Some(ubc) => set_tlb_ubc_flush_pending(cx, ubc, &mm, a, old.dirty()),
                None => cx.cpu.flush_tlb_range(mm.id, a >> ps, (a >> ps) + 1, false),
            }
            if old.dirty() {
                folio::folio_set(cx, src, folio::PG_DIRTY);
            }
            // See folio_try_share_anon_rmap_pte: the PTE is cleared first, so GUP-fast either
            // sees the change or sees the page no longer exclusive. A pinned exclusive page
            // cannot be shared: restore the PTE and stop the walk (`ret = false`).
            if anon_exclusive && !folio::folio_try_share_anon_rmap_pte(cx, src, subpage) {
                pv.pte.set(cx, old);
                return false;
            }
            let ty = crate::mm::huge_memory::migration_type(old.write(), anon_exclusive);
            let mut swp = Entry::swp(ty, old.pfn());
            if old.uffd_wp() {
                swp = swp.swp_mkuffd_wp();
            }
            pv.pte.set(cx, swp);
            folio::folio_remove_rmap_pte(cx, old.pfn());
            drop(pv);
            folio::folio_put(cx, src);
        }
        true
    });
}

/// `remove_migration_ptes`: map `dst` wherever a migration entry to `src` is found (a PMD
/// migration entry through `remove_migration_pmd`; a PTE one maps the page of `dst` at the same
/// index); a writable or exclusive entry maps an anon page `RMAP_EXCLUSIVE`.
pub fn remove_migration_ptes(cx: Ctx<'_>, src: FrameRef, dst: FrameRef) {
    remove_migration_ptes_locked(cx, src, dst, RmapLock::Read)
}

/// `remove_migration_ptes` with `RMP_LOCKED` (`lock = Held`: the caller holds the rmap lock).
pub fn remove_migration_ptes_locked(cx: Ctx<'_>, src: FrameRef, dst: FrameRef, lock: RmapLock) {
    let _f = cx.cpu.enter("remove_migration_ptes");
    let ps = cx.geo().page_shift;
    let nr = folio::folio_nr_pages(cx, src);
    rmap_walk(cx, src, lock, &mut |vma, addr| {
        let _f = cx.cpu.enter("remove_migration_pte");
        let Some(mm) = mm_of(cx, vma.mm_id(cx)) else {
            return true;
        };
        if nr > 1 {
            // vma_address: the folio's first page may lie before the VMA (split inside it).
            match page_vma_mapped_walk_pmd(cx, &mm, vma, src, addr.max(vma.start(cx)), true, true) {
                PmdWalk::Pmd { ptl, pmd, entry } => {
                    crate::mm::huge_memory::remove_migration_pmd(cx, pmd, entry, dst);
                    drop(ptl);
                    return true;
                }
                PmdWalk::NotFound => return true,
                PmdWalk::Pte => {}
            }
        }
        for i in 0..nr {
            let a = addr + (i << ps);
            if a < vma.start(cx) || a >= vma.end(cx) {
                continue;
            }
            let Some(pv) = page_vma_mapped_walk(cx, &mm, src, a, true, true) else {
                continue;
            };
            let new = dst.pfn + (pv.entry.pfn() - src.pfn);
            let ty = pv.entry.swp_type();
            let write = ty == Entry::SWP_MIGRATION_WRITE;
            folio::folio_ref_add(cx, dst, 1);
            folio::folio_add_rmap_pte(cx, new);
            if ty != Entry::SWP_MIGRATION_READ && folio::folio_test_anon(cx, dst) {
                folio::set_page_anon_exclusive(cx, new);
            }
            let mut pte = Entry::leaf(new, write, write);
            if !write && pv.entry.swp_uffd_wp() {
                pte = pte.mkuffd_wp();
            }
            pv.pte.set(cx, pte);
        }
        true
    });
}

/// The rmap-completeness oracle: a migration entry to `src` left in any live PTE table, attached
/// or not (a table detached for a while, by mTHP collapse say, comes back with its entries), or
/// in a PMD.
fn check_no_migration_entries(cx: Ctx<'_>, src: FrameRef) {
    let frames = &cx.k.machine.frames;
    // Read once, before the scan: the scan's visible steps must not depend on how many tables
    // exist, which it reads unannounced (one read per entry split equivalent executions by the
    // number of tables a concurrent munmap or mremap had freed).
    let nr = 1u32 << folio::folio_order(cx, src);
    for pfn in 1..frames.len() as u32 {
        let level = match frames.kind(pfn) {
            mmcheck_platform::FrameKind::Table(l @ (1 | 2)) => l,
            _ => continue,
        };
        let t = frames.current(pfn);
        for i in 0..cx.geo().entries() {
            // An oracle's instantaneous scan (see docs/fidelity.md: an entry in flight in a
            // concurrent `move_ptes` is not seen).
            let e = Entry(frames.entry_oracle(t, i));
            if e.is_migration() && e.pfn() >= src.pfn && e.pfn() < src.pfn + nr {
                cx.cpu
                    .blame(mmcheck_platform::Obj::Entry { pfn, idx: i as u32 });
                cx.cpu.report(
                    ViolationKind::RmapMissed,
                    format!("migration entry to pfn {} (level-{level} table pfn {pfn}, entry {i}) survived remove_migration_ptes: rmap never found it", e.pfn()),
                );
                return;
            }
        }
    }
}

/// Migrate the anon folio (small, or a THP PMD- or PTE-mapped) mapped at `addr` of `mm` (as compaction or `move_pages` would,
/// finding it by pfn; `migrate_pages` with one folio and one pass, `MIGRATE_SYNC`): returns true
/// if it moved. `migrate_folio_unmap`, then `migrate_folio_move`.
pub fn migrate_page_at(cx: Ctx<'_>, mm: &MmStruct, addr: u64) -> bool {
    migrate_pages_at(cx, mm, addr, false)
}

/// `migrate_pages_batch`'s first pass alone: `migrate_folio_unmap` of the folio mapped at `addr`,
/// leaving it locked, isolated and replaced by migration entries, as a migration whose task has
/// not reached the move pass yet (it unmaps every folio of the batch and flushes once before
/// moving any). The new folio is given back: nothing but the migrating task would see it.
/// Returns true if the folio is now unmapped.
pub fn migrate_folio_unmap_at(cx: Ctx<'_>, mm: &MmStruct, addr: u64) -> bool {
    migrate_pages_at(cx, mm, addr, true)
}

fn migrate_pages_at(cx: Ctx<'_>, mm: &MmStruct, addr: u64, unmap_only: bool) -> bool {
    let _f = cx.cpu.enter("migrate_pages");
    let Some(pfn) = crate::mm::pgtable::folio_at(cx, mm, addr) else {
        return false;
    };
    if pfn == cx.k.zero_page.pfn {
        return false;
    }
    let src = folio::page_folio(cx, pfn);
    let order = folio::folio_order(cx, src);
    if !folio::folio_try_get(cx, src) {
        return false;
    }
    // Page-cache folios would need the page-cache replacement of `folio_migrate_mapping`
    // (`xas_store` under a frozen refcount), which the model does not have: they stay.
    if !folio::folio_test_anon(cx, src) {
        folio::folio_put(cx, src);
        return false;
    }
    // isolate_lru_folio; then migrate_folio_unmap: the new folio first, then the locks.
    folio::folio_set(cx, src, folio::PG_ISOLATED);
    let undo_src = |cx: Ctx<'_>, mapped: bool| {
        if mapped {
            remove_migration_ptes(cx, src, src);
            check_no_migration_entries(cx, src);
        }
        folio::folio_clear(cx, src, folio::PG_ISOLATED);
        folio::folio_unlock(cx, src);
        folio::folio_put(cx, src);
    };
    let Some(dst) = folio::folio_alloc(cx, order) else {
        folio::folio_clear(cx, src, folio::PG_ISOLATED);
        folio::folio_put(cx, src);
        return false;
    };
    folio::folio_lock(cx, src);
    folio::folio_lock(cx, dst);
    let mut page_was_mapped = false;
    if folio::folio_mapped(cx, src) {
        // migrate_folio_unmap: async migration (compaction) batches the flush (6.4+);
        // migrate_pages_batch flushes once every folio of the batch is unmapped, before any copy.
        let mut ubc = TlbUbc::default();
        let batch = cx.proto().migrate_batch_flush.then_some(&mut ubc);
        try_to_migrate(cx, src, batch);
        try_to_unmap_flush(cx, &mut ubc);
        page_was_mapped = true;
    }
    if folio::folio_mapped(cx, src) {
        // A mapping was not replaced (a pinned exclusive page, or one rmap could not reach):
        // migrate_folio_undo_src / _dst.
        undo_src(cx, page_was_mapped);
        folio::folio_unlock(cx, dst);
        folio::folio_put(cx, dst);
        return false;
    }
    if unmap_only {
        folio::folio_unlock(cx, dst);
        folio::folio_put(cx, dst);
        return true;
    }
    migrate_folio_move(cx, src, dst, page_was_mapped)
}

/// The move pass of a migration left in flight by [`migrate_folio_unmap_at`] (`src` locked and
/// isolated): a new folio, then `migrate_folio_move`. The scenario runner finishes such
/// migrations once every thread is done, before the final checks.
pub fn migrate_folio_move_pending(cx: Ctx<'_>, src: FrameRef) -> bool {
    let _f = cx.cpu.enter("migrate_pages");
    let Some(dst) = folio::folio_alloc(cx, folio::folio_order(cx, src)) else {
        remove_migration_ptes(cx, src, src);
        folio::folio_clear(cx, src, folio::PG_ISOLATED);
        folio::folio_unlock(cx, src);
        folio::folio_put(cx, src);
        return false;
    };
    folio::folio_lock(cx, dst);
    migrate_folio_move(cx, src, dst, true)
}

/// `migrate_folio_move` of the unmapped, locked, isolated `src` into the locked new `dst`.
fn migrate_folio_move(cx: Ctx<'_>, src: FrameRef, dst: FrameRef, page_was_mapped: bool) -> bool {
    let order = folio::folio_order(cx, src);
    let undo_src = |cx: Ctx<'_>, mapped: bool| {
        if mapped {
            remove_migration_ptes(cx, src, src);
            check_no_migration_entries(cx, src);
        }
        folio::folio_clear(cx, src, folio::PG_ISOLATED);
        folio::folio_unlock(cx, src);
        folio::folio_put(cx, src);
    };
    // migrate_folio_move → move_to_new_folio → migrate_folio → folio_migrate_mapping: an anon
    // folio without a mapping may hold only the isolation reference (GUP references and pins
    // taken before the unmap remain): -EAGAIN, restore the old mappings.
    if folio::folio_ref_count(cx, src) != 1 {
        undo_src(cx, page_was_mapped);
        folio::folio_unlock(cx, dst);
        folio::folio_put(cx, dst);
        return false;
    }
    let (mapping, index, flags, exclusive) = {
        let pm = cx.cpu.page(src.pfn, Access::Read);
        (
            pm.get(PageField::Mapping),
            pm.get(PageField::Index),
            pm.get(PageField::Flags),
            pm.get(PageField::AnonExclusive),
        )
    };
    // folio_migrate_copy: the contents, then folio_migrate_flags (`PG_anon_exclusive` travels in
    // the migration entries; the head's bit is copied as `PG_mappedtodisk`).
    folio::copy_pages(cx, dst, src, 1 << order);
    folio::folio_mark_uptodate_barrier(cx); // folio_migrate_flags: folio_mark_uptodate
    {
        let pm = cx.cpu.page(dst.pfn, Access::Write);
        pm.set(PageField::Mapping, mapping);
        pm.set(PageField::Index, index);
        pm.or(
            PageField::Flags,
            flags & (folio::PG_UPTODATE | folio::PG_SWAPBACKED | folio::PG_DIRTY),
        );
        if exclusive != 0 {
            pm.set(PageField::AnonExclusive, 1);
        }
    }
    folio::folio_set(cx, dst, folio::PG_LRU);
    if page_was_mapped {
        remove_migration_ptes(cx, src, dst);
        check_no_migration_entries(cx, src);
    }
    folio::folio_unlock(cx, dst);
    folio::folio_put(cx, dst); // the allocation reference: the mappings hold their own
    folio::folio_clear(cx, src, folio::PG_ISOLATED);
    folio::folio_unlock(cx, src);
    folio::folio_put(cx, src); // migrate_folio_done: the isolation reference frees the old folio
    true
}

/// A fault on a migration entry: wait until the folio is unlocked (`migration_entry_wait`).
pub fn migration_entry_wait(cx: Ctx<'_>, entry: Entry) {
    let _f = cx.cpu.enter("migration_entry_wait");
    // The folio of the page (a THP's head) holds the lock.
    let f = folio::page_folio(cx, entry.pfn());
    cx.cpu.folio_wait_unlocked_raw(f.pfn);
}
