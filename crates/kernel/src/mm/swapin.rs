//! Swap-in faults (`mm/memory.c` `do_swap_page`, ≈6.18, order-0 folios): the swap PTE was read
//! without the PTL (`vmf->orig_pte`); the folio comes from the swap cache, from
//! `swapin_readahead` (through the cache), or, on a `SWP_SYNCHRONOUS_IO` device for an entry
//! mapped once, straight from the device into a new folio that skips the cache, guarded by
//! `swapcache_prepare` (13ddaf26be32). The folio is locked and rechecked (still the entry's
//! cache folio), the PTE rechecked under the PTL (`pte_same`), the swap count dropped
//! (`swap_free`), the swap cache freed when the policy says so (`should_try_to_free_swap`), and
//! the page mapped, writable at once when it is exclusive and the VMA allows writes.

use crate::arch::pgtable::Entry;
use crate::mm::folio::{self, PG_SWAPCACHE};
use crate::mm::memory::{VmFault, Vmf};
use crate::mm::pgtable;
use crate::mm::swap_state;
use crate::mm::swapfile::{self, SwapErr};
use crate::mm::types::{VmFlags, MM_ANONPAGES, MM_SWAPENTS};
use crate::Ctx;
use mmcheck_platform::FrameRef;

/// `should_try_to_free_swap`: a write fault that holds the only reference beside the cache's
/// frees the swap copy (the page is about to diverge from it). `mem_cgroup_swap_full` /
/// `vm_swap_full` and mlock are not modelled (false).
fn should_try_to_free_swap(cx: Ctx<'_>, f: FrameRef, write: bool) -> bool {
    let pm = cx.cpu.page(f.pfn, mmcheck_platform::Access::Read);
    use mmcheck_platform::PageField;
    if pm.get(PageField::Flags) & PG_SWAPCACHE == 0 {
        return false;
    }
    write && pm.count(PageField::Refcount) == 1 + (1i64 << pm.get(PageField::Order))
}

/// `do_swap_page` for the swap PTE `orig` at `vmf->address`.
pub fn do_swap_page(cx: Ctx<'_>, vmf: &Vmf<'_>, orig: Entry) -> VmFault {
    let _f = cx.cpu.enter("do_swap_page");
    if cx.k.swap.is_none() {
        cx.cpu
            .warn_on(true, "do_swap_page: a swap entry without a swap device");
        return VmFault::Sigbus;
    }
    let off = orig.swp_offset();
    let index = vmf.vma.linear_page_index(cx, vmf.addr);
    let Some(av) = vmf.vma.anon_vma(cx) else {
        cx.cpu.warn_on(
            true,
            "do_swap_page: a swap entry in a VMA without an anon_vma",
        );
        return VmFault::Sigbus;
    };
    // The swap cache first.
    let mut folio = swap_state::swap_cache_get_folio(cx, off);
    let mut need_clear_cache = false;
    let mut direct = false;
    if folio.is_none() {
        if cx.proto().swap_synchronous_io && swapfile::__swap_count(cx, off) == 1 {
            // Skip the swap cache. Prevent parallel swap-in from proceeding with the cache
            // flag: otherwise another thread may finish its swap-in first, free the entry, and
            // a pageout reuse the slot: pte_same() cannot see that.
            if cx.proto().swapin_skip_swapcache_prepare {
                match swapfile::swapcache_prepare(cx, off) {
                    Ok(()) => need_clear_cache = true,
                    Err(e) => {
                        // Relax a bit to prevent rapid repeated page faults, then refault.
                        if e == SwapErr::Exist {
                            swapfile::swapcache_wait(cx, off);
                        }
                        return VmFault::Done;
                    }
                }
            }
            let _d = cx.cpu.enter("swapin_direct");
            direct = true;
            let Some(new) = folio::folio_alloc(cx, 0) else {
                if need_clear_cache {
                    swapfile::swapcache_clear(cx, off);
                }
                return VmFault::Oom;
            };
            folio::folio_set_locked_new(cx, new);
            swap_state::init_swapin_folio(cx, new);
            swapfile::swap_read_folio(cx, new, off);
            folio = Some(new);
        } else {
            let _r = cx.cpu.enter("swapin_readahead");
            folio = swap_state::read_swap_cache_async(cx, off);
        }
    }
    let Some(f) = folio else {
        // The entry was freed meanwhile. Back out if somebody else faulted in this PTE while
        // we released the PTE lock (taking the PTL waits for a fault still installing it).
        let Some(l) = pgtable::pte_offset_map_lock(cx, vmf.mm, vmf.pmd) else {
            return VmFault::Done;
        };
        let same = l.pte(cx.geo().index(vmf.addr, 1)).get(cx) == orig;
        drop(l);
        return if same { VmFault::Oom } else { VmFault::Done };
    };
    let swapcache = !direct;
    let out_page = |cx: Ctx<'_>, locked: bool| {
        if locked {
            folio::folio_unlock(cx, f);
        }
        folio::folio_put(cx, f);
        if need_clear_cache {
            swapfile::swapcache_clear(cx, off);
        }
        VmFault::Done
    };
    if swapcache {
        // folio_lock_or_retry, then make sure the folio is still the entry's cache folio:
        // it may have been freed from the cache (folio_free_swap, reclaim) and reused.
        folio::folio_lock(cx, f);
        if !cx.cpu.recheck(
            "folio_swap_entry",
            swapfile::folio_swap_entry(cx, f) == Some(off),
        ) {
            return out_page(cx, true);
        }
    }
    // Back out if somebody else already faulted in this PTE (or zapped it).
    let Some(l) = pgtable::pte_offset_map_lock(cx, vmf.mm, vmf.pmd) else {
        return out_page(cx, true);
    };
    let pte = l.pte(cx.geo().index(vmf.addr, 1));
    if !cx.cpu.recheck("pte_same", pte.get(cx) == orig) {
        drop(l);
        return out_page(cx, true);
    }
    // A fresh folio not exposed to the swap cache is certainly exclusive.
    let exclusive = !swapcache || orig.swp_exclusive();
    // Remove the swap entry: the slot's count drops; the cache may keep the slot.
    swapfile::swap_free(cx, off);
    if should_try_to_free_swap(cx, f, vmf.write) {
        swapfile::folio_free_swap(cx, f);
    }
    vmf.mm.add_rss(MM_ANONPAGES, 1);
    vmf.mm.add_rss(MM_SWAPENTS, -1);
    let mut entry = Entry::leaf(f.pfn, false, false);
    if orig.swp_uffd_wp() {
        entry = entry.mkuffd_wp();
    }
    let mut write_done = false;
    // Same logic as do_wp_page, optimised for pages certainly not shared: allocated without
    // exposing them to the swap cache, or named exclusive by the swap PTE.
    let rmap_exclusive = exclusive || folio::folio_ref_count(cx, f) == 1;
    if rmap_exclusive
        && vmf.vma.flags(cx).has(VmFlags::WRITE)
        && !crate::mm::userfaultfd::userfaultfd_wp(cx, vmf.vma)
    {
        entry = entry.with(Entry::RW);
        if vmf.write {
            entry = entry.with(Entry::DIRTY);
            write_done = true;
        }
    }
    if !folio::folio_test_anon(cx, f) {
        // A new folio, or a cache folio mapped for the first time: fully exclusive or fully
        // shared.
        folio::folio_add_new_anon_rmap(cx, f, av.id, index, false);
        if !rmap_exclusive {
            folio::clear_page_anon_exclusive(cx, f.pfn);
        }
    } else {
        folio::folio_add_rmap_pte(cx, f.pfn);
        if rmap_exclusive {
            folio::set_page_anon_exclusive(cx, f.pfn);
        }
    }
    pte.set(cx, entry.with(Entry::ACCESSED));
    folio::folio_unlock(cx, f);
    drop(l);
    // Clear the swap cache pin for direct swap-in after the PTL unlock.
    if need_clear_cache {
        swapfile::swapcache_clear(cx, off);
    }
    // A write fault on a page mapped read-only (shared with a fork child): the refault takes
    // do_wp_page (the kernel calls it at once, still under the PTL).
    let _ = write_done;
    VmFault::Done
}
