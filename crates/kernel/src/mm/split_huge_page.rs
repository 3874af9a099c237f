//! Splitting an anonymous large folio (`mm/huge_memory.c`, read at 6.8 and ≈6.12:
//! `split_huge_page_to_list_to_order`, `can_split_folio`, `unmap_folio`, `__split_huge_page`,
//! `remap_page`), and the debugfs entry the selftests use (`split_huge_pages_pid`): with the folio
//! locked and the anon_vma write-locked, refuse a folio with references beyond its mappings
//! (a GUP pin or reference: `-EAGAIN`), replace every mapping by a migration entry
//! (`TTU_SPLIT_HUGE_PMD`: a PMD is split frozen), freeze the reference count, cut the folio into
//! folios of the new order, and map each page again from its migration entries.

use crate::mm::folio;
use crate::mm::migrate::{remove_migration_ptes_locked, try_to_migrate_flags};
use crate::mm::pagewalk::{folio_walk_end, folio_walk_start};
use crate::mm::rmap::RmapLock;
use crate::mm::tlb_batch::{try_to_unmap_flush, TlbUbc};
use crate::mm::types::MmStruct;
use crate::{Ctx, Errno};
use mmcheck_platform::{Access, FrameRef, Obj, PageField};

/// `can_split_folio(folio, caller_pins)`: every reference is a mapping's or the caller's (an
/// anon folio outside the swap cache has no other expected reference).
fn can_split_folio(cx: Ctx<'_>, f: FrameRef, caller_pins: i64) -> bool {
    folio::folio_mapcount(cx, f) == folio::folio_ref_count(cx, f) - caller_pins
}

/// `folio_ref_freeze(folio, count)`: the count drops to 0 only if it is exactly `count`.
fn folio_ref_freeze(cx: Ctx<'_>, f: FrameRef, count: i64) -> bool {
    // page_ref_freeze (atomic_cmpxchg): fully ordered.
    cx.cpu
        .page_atomic_return(f.pfn, Obj::PAGE_ALL)
        .cmpxchg(PageField::Refcount, count, 0)
        .is_ok()
}

/// `unmap_folio`: `try_to_migrate(TTU_RMAP_LOCKED | TTU_SYNC | TTU_BATCH_FLUSH |
/// TTU_SPLIT_HUGE_PMD)`, then the batched flush.
fn unmap_folio(cx: Ctx<'_>, f: FrameRef) {
    let _f = cx.cpu.enter("unmap_folio");
    let mut ubc = TlbUbc::default();
    try_to_migrate_flags(cx, f, Some(&mut ubc), RmapLock::Held, true);
    try_to_unmap_flush(cx, &mut ubc);
}

/// `__split_huge_page` with the count frozen: every `1 << new_order` pages become a folio of
/// their own (head, order, `mapping`, `index`, flags) with one reference; the original head keeps
/// the caller's. Then IRQs back on (`irq`, taken before the freeze) and `remap_page`, and the new
/// folios other than the first lose that reference.
fn __split_huge_page(
    cx: Ctx<'_>,
    f: FrameRef,
    order: u32,
    new_order: u32,
    irq: mmcheck_platform::IrqGuard<'_>,
) {
    let _f = cx.cpu.enter("__split_huge_page");
    let nr = 1u32 << order;
    let new_nr = 1u32 << new_order;
    let (mapping, index, flags) = {
        let pm = cx.cpu.page(f.pfn, Access::Read);
        (
            pm.get(PageField::Mapping),
            pm.get(PageField::Index),
            pm.get(PageField::Flags),
        )
    };
    let frames = &cx.k.machine.frames;
    let mut new_folios = Vec::new();
    for i in (0..nr).step_by(new_nr as usize) {
        let head = f.pfn + i;
        if i > 0 {
            // __split_huge_page_tail: the flags and the anon mapping are copied and the index
            // advances while the page is still a tail; smp_wmb() ("page flags must be visible
            // before we make the page non-compound"), so whoever finds it a folio of its own
            // finds them.
            let pm = cx.cpu.page(head, Access::Write);
            pm.set(PageField::Mapping, mapping);
            pm.set(PageField::Index, index + i as u64);
            pm.set(PageField::Flags, flags);
            // PG_locked is among the flags copied: each new folio stays locked until
            // remap_page has mapped it back, so a fault on its migration entry sleeps
            // (migration_entry_wait) instead of retrying.
            cx.cpu.folio_set_locked_new(head);
            cx.cpu.smp_wmb();
        }
        for p in head..head + new_nr {
            // compound_head / folio_order: constant from allocation to free except here.
            cx.cpu
                .visible(Obj::Frame { pfn: p, order: 0 }, Access::Write);
            let pm = cx.cpu.page_in_step(p);
            pm.set(PageField::Head, head as u64);
            pm.set(
                PageField::Order,
                if p == head { new_order as u64 } else { 0 },
            );
        }
        if i > 0 {
            // page_ref_unfreeze(page_tail, 1), after clear_compound_head.
            cx.cpu.page(head, Access::Write).set(PageField::Refcount, 1);
        }
        new_folios.push(frames.current(head));
    }
    // The head's count: the caller's reference (page_ref_unfreeze).
    cx.cpu
        .page(f.pfn, Access::Write)
        .set(PageField::Refcount, 1);
    // local_irq_enable() before remap_page: the rmap walk takes PTLs, whose holders may be
    // waiting for this CPU to take a TLB-flush IPI.
    drop(irq);
    remap_page(cx, &new_folios);
    // Every new folio but the caller's (the head's) is unlocked and its reference dropped.
    for nf in new_folios.into_iter().skip(1) {
        folio::folio_unlock(cx, nf);
        folio::folio_put(cx, nf);
    }
}

/// `remap_page`: every folio maps itself back from its migration entries
/// (`remove_migration_ptes(folio, folio, RMP_LOCKED)`).
fn remap_page(cx: Ctx<'_>, folios: &[FrameRef]) {
    let _f = cx.cpu.enter("remap_page");
    for &nf in folios {
        remove_migration_ptes_locked(cx, nf, nf, RmapLock::Held);
    }
}

/// `split_huge_page_to_list_to_order` of the locked anon folio `f` (the caller holds a
/// reference): `Err(Eagain)` when extra references or pins stop it (before the unmap), or when
/// the count cannot be frozen after it (then the mappings come back).
pub fn split_huge_page_to_order(cx: Ctx<'_>, f: FrameRef, new_order: u32) -> Result<(), Errno> {
    let _f = cx.cpu.enter("split_huge_page_to_list_to_order");
    let order = folio::folio_order(cx, f);
    if new_order >= order || !folio::folio_test_anon(cx, f) {
        return Err(Errno::Einval);
    }
    // folio_get_anon_vma + anon_vma_lock_write.
    let mapping = cx.cpu.page(f.pfn, Access::Read).get(PageField::Mapping);
    let av = cx.k.anon_vmas.deref(|v| {
        v.iter()
            .filter_map(|w| w.upgrade())
            .find(|a| a.id == mapping >> 1)
    });
    let Some(av) = av else {
        return Err(Errno::Eagain); // -EBUSY: the anon_vma is gone
    };
    let w = av.lock().write(cx.cpu);
    if !can_split_folio(cx, f, 1) {
        drop(w);
        return Err(Errno::Eagain);
    }
    unmap_folio(cx, f);
    // local_irq_disable(); folio_ref_freeze(folio, 1 + extra_pins).
    let irq = cx.cpu.local_irq_disable();
    if !folio_ref_freeze(cx, f, 1) {
        drop(irq);
        remap_page(cx, &[f]);
        drop(w);
        return Err(Errno::Eagain);
    }
    __split_huge_page(cx, f, order, new_order, irq);
    drop(w);
    Ok(())
}

/// The debugfs `split_huge_pages` write for one address of `mm` (`split_huge_pages_pid`): under
/// the mmap read lock, find the folio with `folio_walk_start`; skip it unless it is a large anon
/// folio above `new_order` with no extra references (`can_split_folio(folio, 0)`) and its lock
/// can be taken at once; then split it. Returns whether it was split.
pub fn split_huge_pages_pid(cx: Ctx<'_>, mm: &MmStruct, addr: u64, new_order: u32) -> bool {
    let _f = cx.cpu.enter("split_huge_pages_pid");
    let r = mm.mmap_lock.read_lock(cx.cpu);
    if mm.vma_lookup(cx, addr).is_none() {
        return false;
    }
    let Some(fw) = folio_walk_start(cx, mm, addr) else {
        return false;
    };
    let f = fw.folio;
    if folio::folio_order(cx, f) <= new_order
        || !folio::folio_test_anon(cx, f)
        || !can_split_folio(cx, f, 0)
        || !folio::folio_trylock(cx, f)
    {
        folio_walk_end(cx, fw);
        return false;
    }
    folio::folio_ref_add(cx, f, 1);
    folio_walk_end(cx, fw);
    let ok = split_huge_page_to_order(cx, f, new_order).is_ok();
    folio::folio_unlock(cx, f);
    folio::folio_put(cx, f);
    drop(r);
    ok
}
