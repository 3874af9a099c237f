//! The swap device (`mm/swapfile.c`, ≈6.18, before the 6.18+ swap-table rework): one swap area
//! of [`NR_SWAP_SLOTS`] slots, its `swap_map` (per slot: the number of swap PTEs and other
//! references, `SWAP_HAS_CACHE` while a folio holds the slot in the swap cache or a direct
//! swap-in has claimed it), and the data written to each slot. Slot 0 is the header page and
//! never handed out, so no swap entry is the none PTE.
//!
//! The swap cache (`mm/swap_state.c`: the `address_space` keyed by the entry) lives in the same
//! cell as the map: the model has one cluster (the kernel's are 512 slots), so every `swap_map`
//! update is serialised by that one cluster lock, and the cache's xarray lock is folded into it
//! (more dependencies than the kernel has, never fewer).
//!
//! Allocation takes the lowest free slot (`cluster_alloc_swap_entry` reuses a freed slot of
//! the cluster it scans): a slot freed by one swap-in is the next one pageout gets, which is
//! the reuse the ABA races of swap need.

use crate::mm::folio::{self, PG_DIRTY, PG_SWAPCACHE};
use crate::Ctx;
use mmcheck_platform::{Access, FrameRef, Machine, PageField, Shared};
use std::collections::BTreeMap;

/// Slots of the model's swap area, the header included.
pub const NR_SWAP_SLOTS: usize = 9;
/// `SWAP_HAS_CACHE` in a `swap_map` byte.
pub const SWAP_HAS_CACHE: u8 = 0x40;
/// The count bits (`SWAP_MAP_MAX` is 0x3e; continuations are not modelled).
const COUNT_MASK: u8 = 0x3f;

/// `swap_map` and the swap cache.
#[derive(Clone, Debug, Default)]
pub struct SwapState {
    /// `si->swap_map`.
    pub map: Vec<u8>,
    /// The swap cache: slot → folio.
    pub cache: BTreeMap<u32, FrameRef>,
}

/// `struct swap_info_struct` of the one swap area, with the device's contents.
#[derive(Debug)]
pub struct SwapInfo {
    pub state: Shared<SwapState>,
    /// The data word of each slot (what `swap_writepage` wrote).
    pub data: Shared<Vec<u64>>,
}

/// Why `swapcache_prepare` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwapErr {
    /// `-EEXIST`: the slot already has `SWAP_HAS_CACHE`.
    Exist,
    /// `-ENOENT`: the slot is free (the entry was freed meanwhile).
    Noent,
}

impl SwapInfo {
    pub fn new(m: &Machine) -> Self {
        let state = Shared::new(
            m.name_global(m.new_id(), "swap_map"),
            SwapState {
                map: vec![0; NR_SWAP_SLOTS],
                cache: BTreeMap::new(),
            },
        );
        let data = Shared::new(
            m.name_global(m.new_id(), "swap_data"),
            vec![0; NR_SWAP_SLOTS],
        );
        SwapInfo { state, data }
    }
}

/// The swap area; callers reach here only from a swap entry, which only exists with swap on.
pub fn si(cx: Ctx<'_>) -> &SwapInfo {
    cx.k.swap
        .as_ref()
        .expect("a swap entry without a swap device")
}

/// `folio_alloc_swap` → `cluster_alloc_swap_entry`: the lowest free slot, marked
/// `SWAP_HAS_CACHE` for the folio about to enter the swap cache. `None`: the area is full.
pub fn folio_alloc_swap_slot(cx: Ctx<'_>) -> Option<u32> {
    let _f = cx.cpu.enter("folio_alloc_swap");
    let si = cx.k.swap.as_ref()?;
    si.state.write(&cx.cpu, |s| {
        let off = (1..s.map.len()).find(|&i| s.map[i] == 0)?;
        s.map[off] = SWAP_HAS_CACHE;
        Some(off as u32)
    })
}

/// `__swap_count`: the references beside the cache.
pub fn __swap_count(cx: Ctx<'_>, off: u32) -> u8 {
    si(cx)
        .state
        .read(&cx.cpu, |s| s.map[off as usize] & COUNT_MASK)
}

/// `swap_duplicate` (fork, `try_to_unmap_one`): one more swap PTE. False if the slot is free
/// (`-ENOENT`: a stale entry).
pub fn swap_duplicate(cx: Ctx<'_>, off: u32) -> bool {
    let _f = cx.cpu.enter("swap_duplicate");
    si(cx).state.write(&cx.cpu, |s| {
        let m = &mut s.map[off as usize];
        if *m == 0 {
            return false;
        }
        *m += 1;
        true
    })
}

/// `swapcache_prepare`: claim the slot for a folio about to be read (`SWAP_HAS_CACHE`).
pub fn swapcache_prepare(cx: Ctx<'_>, off: u32) -> Result<(), SwapErr> {
    let _f = cx.cpu.enter("swapcache_prepare");
    si(cx).state.write(&cx.cpu, |s| {
        let m = &mut s.map[off as usize];
        if *m & SWAP_HAS_CACHE != 0 {
            Err(SwapErr::Exist)
        } else if *m & COUNT_MASK == 0 {
            Err(SwapErr::Noent)
        } else {
            *m |= SWAP_HAS_CACHE;
            Ok(())
        }
    })
}

/// `swapcache_clear` / `put_swap_folio`: drop `SWAP_HAS_CACHE`; the slot is free if no count
/// remains.
pub fn swapcache_clear(cx: Ctx<'_>, off: u32) {
    let _f = cx.cpu.enter("swapcache_clear");
    si(cx).state.write(&cx.cpu, |s| {
        let m = &mut s.map[off as usize];
        cx.cpu.warn_on(
            *m & SWAP_HAS_CACHE == 0,
            "swapcache_clear: no SWAP_HAS_CACHE",
        );
        *m &= !SWAP_HAS_CACHE;
    });
}

/// Wait for `SWAP_HAS_CACHE` to clear or the slot to be freed: `schedule_timeout_uninterruptible(1)`
/// on `swapcache_wq`, which `swapcache_clear`'s caller wakes (later kernels add the wait queue; a
/// refault before the flag clears finds it set again, so waiting for it hides nothing).
pub fn swapcache_wait(cx: Ctx<'_>, off: u32) {
    let _f = cx.cpu.enter("schedule_timeout_uninterruptible");
    si(cx)
        .state
        .wait_until(&cx.cpu, |s| s.map[off as usize] & SWAP_HAS_CACHE == 0);
}

/// Wait until the slot is in the swap cache, no longer claimed, or free: the EEXIST retry of
/// `__read_swap_cache_async` (another task set `SWAP_HAS_CACHE` and is adding its folio).
pub fn swapcache_wait_added(cx: Ctx<'_>, off: u32) {
    let _f = cx.cpu.enter("schedule_timeout_uninterruptible");
    si(cx).state.wait_until(&cx.cpu, |s| {
        s.map[off as usize] & SWAP_HAS_CACHE == 0 || s.cache.contains_key(&off)
    });
}

/// `swap_free` / `swap_entry_put`: one swap PTE fewer. Returns what is left of the slot's
/// `swap_map` byte.
pub fn swap_free(cx: Ctx<'_>, off: u32) -> u8 {
    let _f = cx.cpu.enter("swap_free");
    si(cx).state.write(&cx.cpu, |s| {
        let m = &mut s.map[off as usize];
        if *m & COUNT_MASK == 0 {
            cx.cpu.warn_on(
                true,
                "swap_free: swap count underflow (Unused swap offset entry)",
            );
            return *m;
        }
        *m -= 1;
        *m
    })
}

/// `folio_swapped`: some swap PTE still names the folio's slot.
pub fn folio_swapped(cx: Ctx<'_>, off: u32) -> bool {
    __swap_count(cx, off) > 0
}

/// The slot of a swap-cache folio (`folio->swap`, read with its flags in one step).
pub fn folio_swap_entry(cx: Ctx<'_>, f: FrameRef) -> Option<u32> {
    let pm = cx.cpu.page(f.pfn, Access::Read);
    (pm.get(PageField::Flags) & PG_SWAPCACHE != 0).then(|| pm.get(PageField::Private) as u32)
}

/// `folio_free_swap` (folio locked): a swap-cache folio no swap PTE refers to any more leaves
/// the cache and is dirtied (its only copy is now in memory).
pub fn folio_free_swap(cx: Ctx<'_>, f: FrameRef) -> bool {
    let _f = cx.cpu.enter("folio_free_swap");
    let Some(off) = folio_swap_entry(cx, f) else {
        return false;
    };
    if folio_swapped(cx, off) {
        return false;
    }
    crate::mm::swap_state::delete_from_swap_cache(cx, f, off, PG_DIRTY);
    true
}

/// `free_swap_cache` (`mm/swap_state.c`, from `free_pages_and_swap_cache` after a zap and from
/// `wp_page_copy`): a swap-cache folio no one maps any more leaves the cache if its slot has no
/// other user (`folio_free_swap` under a trylock). Nothing without swap.
pub fn free_swap_cache(cx: Ctx<'_>, f: FrameRef) {
    if cx.k.swap.is_none() || f.pfn == cx.k.zero_page.pfn {
        return;
    }
    if folio::folio_test(cx, f, PG_SWAPCACHE)
        && !folio::folio_mapped(cx, f)
        && folio::folio_trylock(cx, f)
    {
        folio_free_swap(cx, f);
        folio::folio_unlock(cx, f);
    }
}

/// `free_swap_and_cache` (zap): drop one swap PTE's count; if only the cache holds the slot
/// then, try to reclaim the cached folio (`__try_to_reclaim_swap(TTRS_UNMAPPED | TTRS_FULL)`:
/// a trylock, and `folio_free_swap`).
pub fn free_swap_and_cache(cx: Ctx<'_>, off: u32) {
    let _f = cx.cpu.enter("free_swap_and_cache");
    let left = swap_free(cx, off);
    if left != SWAP_HAS_CACHE {
        return;
    }
    let _r = cx.cpu.enter("__try_to_reclaim_swap");
    let Some(f) = crate::mm::swap_state::swap_cache_get_folio(cx, off) else {
        return;
    };
    if folio::folio_trylock(cx, f) {
        // TTRS_UNMAPPED: only a folio no one maps.
        if !folio::folio_mapped(cx, f) {
            folio_free_swap(cx, f);
        }
        folio::folio_unlock(cx, f);
    }
    folio::folio_put(cx, f);
}

/// `swap_read_folio` of a synchronous device: the slot's data into the folio, uptodate.
pub fn swap_read_folio(cx: Ctx<'_>, f: FrameRef, off: u32) {
    let _f = cx.cpu.enter("swap_read_folio");
    let v = si(cx).data.read(&cx.cpu, |d| d[off as usize]);
    cx.cpu.data_init(f, v);
    folio::folio_mark_uptodate_barrier(cx);
    folio::folio_set(cx, f, folio::PG_UPTODATE);
}

/// `swap_writepage` (synchronous, completes at once): the folio's data to its slot.
pub fn swap_writepage(cx: Ctx<'_>, f: FrameRef, off: u32) {
    let _f = cx.cpu.enter("swap_writepage");
    let v = cx.cpu.data_read(f);
    si(cx).data.write(&cx.cpu, |d| d[off as usize] = v);
}

/// `swap_reclaim_full_clusters` / `__try_to_reclaim_swap(TTRS_ANYWAY)` over the whole area: every
/// cached folio whose slot has no swap count left (a swap-in that backed out, a read fault that
/// kept the cache) leaves the cache, as the allocator or memory pressure would free it. Run at
/// the end, after every mm exited, so that such folios are not counted as leaks.
pub fn swap_reclaim_unused(cx: Ctx<'_>) {
    let Some(si) = cx.k.swap.as_ref() else {
        return;
    };
    let _f = cx.cpu.enter("swap_reclaim_full_clusters");
    let cached: Vec<u32> = si
        .state
        .read(&cx.cpu, |s| s.cache.keys().copied().collect());
    for off in cached {
        let Some(f) = crate::mm::swap_state::swap_cache_get_folio(cx, off) else {
            continue;
        };
        if folio::folio_trylock(cx, f) {
            folio_free_swap(cx, f);
            folio::folio_unlock(cx, f);
        }
        folio::folio_put(cx, f);
    }
}
