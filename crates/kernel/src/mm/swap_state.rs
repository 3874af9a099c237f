//! The swap cache (`mm/swap_state.c`, ≈6.18): folios keyed by their swap slot. A folio in the
//! cache has `PG_swapcache`, holds `SWAP_HAS_CACHE` on its slot and one reference per page
//! from the cache. Entering it (`add_to_swap` at reclaim, `__read_swap_cache_async` at swap-in)
//! and leaving it (`__remove_mapping`, `folio_free_swap`) happen under the folio lock.
//!
//! No readahead: `swapin_readahead` reads the faulting entry only (see docs/fidelity.md).

use crate::mm::folio::{self, PG_DIRTY, PG_LRU, PG_SWAPBACKED, PG_SWAPCACHE};
use crate::mm::swapfile::{self, si, SwapErr};
use crate::Ctx;
use mmcheck_platform::FrameRef;
use mmcheck_platform::{Access, PageField};

/// `swap_cache_get_folio` (`filemap_get_folio` on the swap address space): the cached folio
/// of the slot with a reference (`folio_try_get`: it may be on its way out), or `None`.
pub fn swap_cache_get_folio(cx: Ctx<'_>, off: u32) -> Option<FrameRef> {
    let _f = cx.cpu.enter("swap_cache_get_folio");
    let _rcu = cx.cpu.rcu_read_lock();
    loop {
        let f = si(cx).state.read(&cx.cpu, |s| s.cache.get(&off).copied())?;
        if !folio::folio_try_get(cx, f) {
            // Frozen by __remove_mapping (or freed) meanwhile: the kernel retries the lookup
            // until the entry changes; the model sleeps until it does.
            si(cx)
                .state
                .wait_until(&cx.cpu, |s| s.cache.get(&off) != Some(&f));
            continue;
        }
        // xas_reload: still the slot's folio?
        if si(cx).state.read(&cx.cpu, |s| s.cache.get(&off).copied()) != Some(f) {
            folio::folio_put(cx, f);
            continue;
        }
        return Some(f);
    }
}

/// `add_to_swap_cache` of a locked folio whose slot holds `SWAP_HAS_CACHE`: the cache takes a
/// reference per page, `PG_swapcache` and `folio->swap` are set (with `extra` flags, in the same
/// step: the folio lock excludes every other writer of them).
pub fn add_to_swap_cache(cx: Ctx<'_>, f: FrameRef, off: u32, extra: u64) {
    let _f = cx.cpu.enter("add_to_swap_cache");
    {
        let pm = cx.cpu.page(f.pfn, Access::Rmw);
        cx.k.machine.frames.check(&cx.cpu, f, "add_to_swap_cache");
        let nr = 1i64 << pm.get(PageField::Order);
        pm.add(PageField::Refcount, nr);
        pm.or(PageField::Flags, PG_SWAPCACHE | extra);
        pm.set(PageField::Private, u64::from(off));
    }
    si(cx).state.write(&cx.cpu, |s| {
        let old = s.cache.insert(off, f);
        cx.cpu.warn_on(
            old.is_some(),
            "add_to_swap_cache: the slot is already cached",
        );
    });
}

/// `__delete_from_swap_cache` then `put_swap_folio` (folio locked): out of the cache and
/// `SWAP_HAS_CACHE` dropped in one step (the model folds the xarray lock into the cluster
/// lock), then `PG_swapcache` cleared with `extra` flags set. The caller drops the cache's
/// references.
pub fn __delete_from_swap_cache(cx: Ctx<'_>, f: FrameRef, off: u32, extra: u64) {
    let _f = cx.cpu.enter("__delete_from_swap_cache");
    si(cx).state.write(&cx.cpu, |s| {
        s.cache.remove(&off);
        let m = &mut s.map[off as usize];
        cx.cpu.warn_on(
            *m & swapfile::SWAP_HAS_CACHE == 0,
            "put_swap_folio: no SWAP_HAS_CACHE",
        );
        *m &= !swapfile::SWAP_HAS_CACHE;
    });
    let pm = cx.cpu.page(f.pfn, Access::Rmw);
    pm.and_not(PageField::Flags, PG_SWAPCACHE);
    pm.or(PageField::Flags, extra);
    pm.set(PageField::Private, 0);
}

/// `delete_from_swap_cache`: `__delete_from_swap_cache`, `put_swap_folio`, and the cache's
/// references dropped.
pub fn delete_from_swap_cache(cx: Ctx<'_>, f: FrameRef, off: u32, extra: u64) {
    __delete_from_swap_cache(cx, f, off, extra);
    let nr = folio::folio_nr_pages(cx, f) as i64;
    folio::folio_put_refs(cx, f, nr);
}

/// `add_to_swap` (folio locked, anon, swap-backed, not yet in the cache): a slot, the cache,
/// and the folio dirtied so that pageout writes it. False if the area is full.
pub fn add_to_swap(cx: Ctx<'_>, f: FrameRef) -> bool {
    let _f = cx.cpu.enter("add_to_swap");
    let Some(off) = swapfile::folio_alloc_swap_slot(cx) else {
        return false;
    };
    // Normally the PTE's dirty bit dirties the folio at unmap; a clean anon folio (its data is
    // nowhere else) must be written too: folio_mark_dirty.
    add_to_swap_cache(cx, f, off, PG_DIRTY);
    true
}

/// `__read_swap_cache_async`: the slot's folio from the cache, or a new one read into it. The
/// folio is returned with a reference, unlocked once read (`swap_read_folio` completes at once
/// on the model's device). `None` if the entry was freed meanwhile.
pub fn read_swap_cache_async(cx: Ctx<'_>, off: u32) -> Option<FrameRef> {
    let _f = cx.cpu.enter("__read_swap_cache_async");
    loop {
        if let Some(f) = swap_cache_get_folio(cx, off) {
            return Some(f);
        }
        // swap_entry_swapped: the entry was freed (raced with a zap or another swap-in).
        if !swapfile::folio_swapped(cx, off) {
            return None;
        }
        let new = folio::folio_alloc(cx, 0)?;
        match swapfile::swapcache_prepare(cx, off) {
            Ok(()) => {
                folio::folio_set_locked_new(cx, new);
                add_to_swap_cache(cx, new, off, PG_SWAPBACKED | PG_LRU);
                swapfile::swap_read_folio(cx, new, off);
                folio::folio_unlock(cx, new);
                return Some(new);
            }
            Err(e) => {
                folio::folio_put(cx, new);
                if e == SwapErr::Noent {
                    return None;
                }
                // -EEXIST: another task claimed the slot and is adding its folio, or the
                // folio is leaving the cache; relax and look again.
                swapfile::swapcache_wait_added(cx, off);
            }
        }
    }
}

/// A folio about to be read from swap: swap-backed and on the LRU (`__folio_set_swapbacked`,
/// `folio_add_lru`); it becomes anon when `do_swap_page` maps it (`folio_add_new_anon_rmap`).
pub fn init_swapin_folio(cx: Ctx<'_>, f: FrameRef) {
    cx.cpu
        .page(f.pfn, mmcheck_platform::Access::Write)
        .set(mmcheck_platform::PageField::Flags, PG_SWAPBACKED | PG_LRU);
}
