//! Anonymous THP collapse (`mm/khugepaged.c`): `collapse_huge_page` at PMD order and, as in the
//! 2026 mTHP series (Nico Pache, mm-unstable v18, May 2026), at smaller orders; the entry points
//! MADV_COLLAPSE and a khugepaged scan of one PMD range (`hpage_collapse_scan_pmd`, with
//! `max_ptes_none`).
//!
//! The sequence: allocate; revalidate under the mmap read lock (the VMA must span the whole PMD
//! range even for mTHP); mmap write lock; `vma_start_write` and `check_pmd_still_valid` (in an order
//! that is a switch: the 2026 base locks first; `none` leaves the VMA unlocked, as the per-VMA lock
//! series did before its khugepaged patch); anon_vma write lock; `pmdp_collapse_flush`;
//! `tlb_remove_table_sync_one`; map the detached table through the stack copy of the PMD and isolate
//! the pages under its PTL; for PMD order drop the anon_vma lock; copy; then under the PMD lock either
//! install the huge PMD (depositing the old table) or write the new PTEs into the detached table
//! and repopulate the PMD with it.
//! Both re-install points check `pmd_none` first: v18's `WARN_ON_ONCE` (then the store goes ahead
//! over whatever is there) or the earlier `BUG_ON` (switch `collapse.pmd_none_check`).

use crate::arch::pgtable::Entry;
use crate::mm::folio::{self, page_folio};
use crate::mm::memory::vm_normal_page;
use crate::mm::pgtable::{self, EntryPtr};
use crate::mm::types::{MmStruct, Vma, MM_ANONPAGES};
use crate::protocol::{PmdNoneCheck, VmaWriteOrder};
use crate::Ctx;
use mmcheck_platform::FrameRef;
use std::sync::Arc;

/// Why a collapse gave up (the `SCAN_*` results that matter here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CollapseFail {
    AllocFailed,
    VmaCheck,
    PmdNull,
    NoPteTable,
    ExceedNone,
    PageNotPresent,
    PageLocked,
    PageCount,
    PageRo,
    /// `SCAN_TRUNCATED`: a folio left the page cache while the collapse held it.
    Truncated,
    /// `SCAN_EXCEED_SHARED_PTE`: more than `max_ptes_shared` PTEs map pages another mm may map.
    ExceedShared,
    /// `SCAN_EXCEED_SWAP_PTE`: more than `max_ptes_swap` swap PTEs.
    ExceedSwap,
    /// `SCAN_FAIL` / `SCAN_PMD_NULL` from `__collapse_huge_page_swapin`.
    SwapinFailed,
    /// `SCAN_PTE_UFFD_WP`: a PTE write-protected by userfaultfd (the collapsed mapping would
    /// lose the bit).
    PteUffdWp,
}

/// `hugepage_vma_revalidate`: an anonymous VMA with an anon_vma spanning the whole PMD range.
fn revalidate(cx: Ctx<'_>, mm: &MmStruct, pmd_addr: u64) -> Option<Arc<Vma>> {
    let g = cx.geo();
    if mm.exiting.read(&cx.cpu) != 0 {
        return None;
    }
    let vma = mm.vma_lookup(cx, pmd_addr)?;
    (vma.is_anonymous()
        && !vma.is_shared(cx)
        && vma.anon_vma(cx).is_some()
        && vma.start(cx) <= pmd_addr
        && pmd_addr + g.pmd_size() <= vma.end(cx))
    .then_some(vma)
}

/// `check_pmd_still_valid` / `find_pmd_or_thp_or_none`: the PMD still points to a table.
fn pmd_is_table(cx: Ctx<'_>, mm: &MmStruct, addr: u64) -> Option<EntryPtr> {
    let pmd = pgtable::pmd_off(cx, mm, addr)?;
    pmd.get(cx).is_table().then_some(pmd)
}

/// The re-install check under the PMD lock: BUG_ON (≤ v17) or WARN_ON_ONCE (v18) on a PMD that is
/// not none. With `bug` the path stops (an assertion, the kernel's oops). With `warn` the kernel
/// prints a splat and goes on: the caller then overwrites the PMD with a plain store
/// ([`pgtable::pmd_populate_over`] or `set_pmd_at`), and what was there (a table a fault installed,
/// a huge PMD and its folio) is leaked with its mappings; the quiescent checks report that
/// (`nr_ptes`, rss and mapcount mismatches, the unreachable table). The `WARN_ON_ONCE` frame marks
/// the step in traces. `reinstall` is what follows the check in the kernel.
fn pmd_none_check(cx: Ctx<'_>, pmd: EntryPtr, reinstall: impl FnOnce(Ctx<'_>)) {
    let v = pmd.get(cx);
    if v.is_none() {
        reinstall(cx);
        return;
    }
    match cx.proto().collapse_pmd_none_check {
        PmdNoneCheck::Bug => {
            cx.cpu.report(
                mmcheck_platform::ViolationKind::Assertion,
                format!(
                    "BUG_ON(!pmd_none(*pmd)): PMD is {}",
                    crate::arch::pgtable::entry_text(2, v.0)
                ),
            );
        }
        PmdNoneCheck::Warn => {
            let _w = cx.cpu.enter("WARN_ON_ONCE(!pmd_none(*pmd))");
            reinstall(cx);
        }
    }
}

struct Isolated {
    folio: FrameRef,
    maps: i64,
}

/// Who asked for a collapse (`struct collapse_control`'s `is_khugepaged`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CollapseCaller {
    /// MADV_COLLAPSE: no limit on empty PTEs.
    Madvise,
    /// A khugepaged scan: at most `max_ptes_none` empty PTEs (scaled for mTHP orders: 0 or
    /// `2^order - 1`).
    Khugepaged,
}

/// `collapse_huge_page` at `order` for the range starting at `start`, as MADV_COLLAPSE.
pub fn collapse_huge_page(
    cx: Ctx<'_>,
    mm: &MmStruct,
    start: u64,
    order: u32,
) -> Result<(), CollapseFail> {
    collapse_huge_page_by(cx, mm, start, order, CollapseCaller::Madvise)
}

/// `collapse_huge_page` with the caller's limits.
pub fn collapse_huge_page_by(
    cx: Ctx<'_>,
    mm: &MmStruct,
    start: u64,
    order: u32,
    caller: CollapseCaller,
) -> Result<(), CollapseFail> {
    let _f = cx.cpu.enter("collapse_huge_page");
    let g = cx.geo();
    let ps = g.page_shift;
    let pmd_order = g.pmd_order();
    let nr = 1u64 << order;
    let pmd_addr = start & g.pmd_mask();
    let new = folio::folio_alloc(cx, order).ok_or(CollapseFail::AllocFailed)?;
    let fail_put = |cx: Ctx<'_>, e| {
        folio::folio_put(cx, new);
        Err(e)
    };
    {
        let r = mm.mmap_lock.read_lock(cx.cpu);
        if revalidate(cx, mm, pmd_addr).is_none() {
            drop(r);
            return fail_put(cx, CollapseFail::VmaCheck);
        }
        let Some(pmd) = pmd_is_table(cx, mm, pmd_addr) else {
            drop(r);
            return fail_put(cx, CollapseFail::PmdNull);
        };
        // Only with a swap device can a swap PTE exist: the scan and swap-in are skipped
        // otherwise (no step of theirs could change anything).
        if cx.k.swap.is_some() {
            let vma = revalidate(cx, mm, pmd_addr).expect("revalidated under the same lock");
            if let Err(e) = scan_and_swapin(cx, mm, &vma, pmd, start, order, caller) {
                drop(r);
                return fail_put(cx, e);
            }
        }
    }
    let w = mm.mmap_lock.write_lock(cx.cpu);
    // The revalidation after the lock was dropped (a mutant without it goes on with whatever VMA
    // is there now).
    let vma = revalidate(cx, mm, pmd_addr).or_else(|| {
        cx.cpu
            .recheck("hugepage_vma_revalidate", false)
            .then(|| mm.vma_lookup(cx, pmd_addr))
            .flatten()
    });
    let Some(vma) = vma else {
        drop(w);
        return fail_put(cx, CollapseFail::VmaCheck);
    };
    // check_pmd_still_valid (a mutant without it goes on with the PMD as it is).
    let still_valid = |cx: Ctx<'_>| {
        pmd_is_table(cx, mm, pmd_addr).or_else(|| {
            cx.cpu
                .recheck("check_pmd_still_valid", false)
                .then(|| pgtable::pmd_off(cx, mm, pmd_addr))
                .flatten()
        })
    };
    let pmd = match cx.proto().collapse_vma_write_order {
        VmaWriteOrder::BeforeCheck => {
            w.vma_start_write(&vma.lock);
            still_valid(cx)
        }
        VmaWriteOrder::AfterCheck => {
            let p = still_valid(cx);
            w.vma_start_write(&vma.lock);
            p
        }
        VmaWriteOrder::None => still_valid(cx),
    };
    let Some(pmd) = pmd else {
        drop(w);
        return fail_put(cx, CollapseFail::PmdNull);
    };
    let Some(av) = vma.anon_vma(cx) else {
        // Only a mutant without the revalidation gets here.
        drop(w);
        return fail_put(cx, CollapseFail::VmaCheck);
    };
    let mut av_guard = Some(av.lock().write(cx.cpu));
    // pmdp_collapse_flush, under the PMD lock.
    let old_pmd = {
        let _pml = pgtable::pmd_lock(cx, mm, pmd);
        let v = pmd.xchg(cx, Entry::NONE);
        cx.cpu
            .flush_tlb_range(mm.id, pmd_addr >> ps, (pmd_addr + g.pmd_size()) >> ps, true);
        v
    };
    if cx.proto().collapse_ipi_sync {
        cx.cpu.tlb_remove_table_sync_one();
    }
    let restore = |cx: Ctx<'_>| {
        let _pml = pgtable::pmd_lock(cx, mm, pmd);
        pmd_none_check(cx, pmd, |cx| {
            pgtable::pmd_populate_over(cx, pmd, cx.cpu.frame_ref(old_pmd.pfn()));
        });
    };
    // Map the detached table through the stack copy of the PMD.
    let rcu = cx.cpu.rcu_read_lock();
    let Some(map) = pgtable::pte_offset_map_val(cx, old_pmd, rcu) else {
        // Step 12 on a none or huge _pmd: repopulating would install pmd_pgtable(garbage).
        restore(cx);
        drop(av_guard);
        drop(w);
        return fail_put(cx, CollapseFail::NoPteTable);
    };
    let ptl = pgtable::pte_lockptr(cx, mm, old_pmd);
    let first = g.index(start, 1);
    let max_none = match caller {
        CollapseCaller::Madvise => nr,
        CollapseCaller::Khugepaged => {
            let max = cx
                .proto()
                .collapse_max_ptes_none
                .min(g.entries() as u64 - 1);
            if order == pmd_order {
                max
            } else if max == g.entries() as u64 - 1 {
                nr - 1
            } else {
                0
            }
        }
    };
    // max_ptes_shared: khugepaged only; an mTHP order accepts no shared page.
    let max_shared = match caller {
        CollapseCaller::Madvise => nr,
        CollapseCaller::Khugepaged if order == pmd_order => cx
            .proto()
            .collapse_max_ptes_shared
            .limit(g.entries() as u64),
        CollapseCaller::Khugepaged => 0,
    };
    let mut isolated: Vec<Isolated> = Vec::new();
    let mut none = 0u64;
    let mut shared = 0u64;
    let mut result = Ok(());
    // __collapse_huge_page_isolate, under the PTL: a userfaultfd-armed VMA takes no none PTE
    // (the collapse would fill a hole a missing fault should see), and a uffd-wp PTE stops it
    // (8fd5eda4c726, Peter Xu: "check again on anon uffd-wp during isolation"; the scan's
    // check ran without the mmap write lock).
    let armed = crate::mm::userfaultfd::userfaultfd_armed(cx, &vma);
    {
        let _l = ptl.lock(cx.cpu);
        for i in 0..nr as usize {
            let pte = map.pte(first + i).get(cx);
            if pte.is_none() || pte.pfn() == cx.k.zero_page.pfn && pte.present() {
                none += 1;
                if armed || none > max_none {
                    result = Err(CollapseFail::ExceedNone);
                    break;
                }
                continue;
            }
            if !pte.present() {
                result = Err(CollapseFail::PageNotPresent);
                break;
            }
            if pte.uffd_wp() {
                result = Err(CollapseFail::PteUffdWp);
                break;
            }
            let Some(page) = vm_normal_page(cx, pte) else {
                result = Err(CollapseFail::PageNotPresent);
                break;
            };
            let f = page_folio(cx, page);
            if !folio::folio_test_anon(cx, f) {
                result = Err(CollapseFail::PageNotPresent);
                break;
            }
            // (MADV_COLLAPSE's limit cannot be exceeded: skip the mapcount reads.)
            if max_shared < nr && folio::folio_maybe_mapped_shared(cx, f) {
                shared += 1;
                if shared > max_shared {
                    result = Err(CollapseFail::ExceedShared);
                    break;
                }
            }
            if let Some(i) = isolated.iter_mut().find(|i| i.folio.pfn == f.pfn) {
                i.maps += 1;
                continue;
            }
            if !folio::folio_trylock(cx, f) {
                result = Err(CollapseFail::PageLocked);
                break;
            }
            // is_refcount_suitable: no GUP pin or other reference can appear any more.
            if folio::folio_ref_count(cx, f) != folio::folio_mapcount(cx, f) {
                folio::folio_unlock(cx, f);
                result = Err(CollapseFail::PageCount);
                break;
            }
            folio::folio_ref_add(cx, f, 1); // folio_isolate_lru
            folio::folio_set(cx, f, folio::PG_ISOLATED);
            isolated.push(Isolated { folio: f, maps: 1 });
        }
    }
    if let Err(e) = result {
        for i in &isolated {
            folio::folio_clear(cx, i.folio, folio::PG_ISOLATED);
            folio::folio_unlock(cx, i.folio);
            folio::folio_put(cx, i.folio);
        }
        drop(map);
        restore(cx);
        drop(av_guard);
        drop(w);
        return fail_put(cx, e);
    }
    // PMD order: every page is isolated and locked, rmap walkers cannot act on them. mTHP: the
    // table still maps other folios and the PMD is none, so keep the lock (unless the switch drops
    // it, as v5–v17 did).
    if order == pmd_order
        || cx.proto().collapse_mthp_anon_vma == crate::protocol::MthpAnonVma::DropEarly
    {
        av_guard = None;
    }
    // __collapse_huge_page_copy, then _copy_succeeded.
    for i in 0..nr as usize {
        let pte = map.pte(first + i).get(cx);
        let v = match vm_normal_page(cx, pte) {
            Some(p) if pte.present() => cx.cpu.data_read(cx.cpu.frame_ref(p)),
            _ => 0,
        };
        cx.cpu.data_init(cx.cpu.frame_ref(new.pfn + i as u32), v);
    }
    for i in 0..nr as usize {
        let _l = ptl.lock(cx.cpu);
        let pte = map.pte(first + i).xchg(cx, Entry::NONE);
        if let Some(p) = vm_normal_page(cx, pte).filter(|_| pte.present()) {
            folio::folio_remove_rmap_pte(cx, p);
        }
    }
    for i in &isolated {
        folio::folio_clear(cx, i.folio, folio::PG_ISOLATED);
        folio::folio_unlock(cx, i.folio);
        folio::folio_put_refs(cx, i.folio, 1 + i.maps); // the isolation and the old mappings
    }
    folio::folio_mark_uptodate_barrier(cx);
    let index = vma.linear_page_index(cx, start);
    {
        let _pml = pgtable::pmd_lock(cx, mm, pmd);
        pmd_none_check(cx, pmd, |cx| {
            mm.add_rss(MM_ANONPAGES, none as i64);
            let w = vma.flags(cx).has(crate::mm::types::VmFlags::WRITE);
            if order == pmd_order {
                folio::folio_add_new_anon_rmap(cx, new, av.id, index, true);
                folio::folio_set(cx, new, folio::PG_LRU);
                crate::mm::huge_memory::deposit(cx, pmd, cx.cpu.frame_ref(old_pmd.pfn()));
                // set_pmd_at: a plain store over whatever the WARN saw.
                pmd.set(cx, Entry::huge(new.pfn, w, w));
            } else {
                // map_anon_folio_pte_nopf into the still-detached table, then publish it.
                folio::folio_add_new_anon_rmap(cx, new, av.id, index, false);
                folio::folio_ref_add(cx, new, nr as i64 - 1);
                folio::folio_set(cx, new, folio::PG_LRU);
                for i in 0..nr as usize {
                    map.pte(first + i)
                        .set(cx, Entry::leaf(new.pfn + i as u32, w, w));
                }
                if cx.proto().collapse_mthp_wmb {
                    cx.cpu.smp_wmb(); // "make PTEs visible before PMD. See pmd_install()"
                }
                pgtable::pmd_populate_over(cx, pmd, cx.cpu.frame_ref(old_pmd.pfn()));
            }
        });
    }
    drop(map);
    drop(av_guard);
    drop(w);
    Ok(())
}

/// `hpage_collapse_scan_pmd` + `collapse_huge_page` of the `2^order` range holding `addr`, for
/// a khugepaged scan or MADV_COLLAPSE (which ignores `max_ptes_none`).
pub fn collapse_scan(
    cx: Ctx<'_>,
    mm: &MmStruct,
    addr: u64,
    order: u32,
    caller: CollapseCaller,
) -> Result<(), CollapseFail> {
    let _f = cx.cpu.enter(if caller == CollapseCaller::Khugepaged {
        "khugepaged_scan_pmd"
    } else {
        "madvise_collapse"
    });
    let g = cx.geo();
    let nr = 1u64 << order;
    let start = addr & !((nr << g.page_shift) - 1);
    collapse_huge_page_by(cx, mm, start, order, caller)
}

/// The swap half of `hpage_collapse_scan_pmd` (count the swap PTEs of the range under the PTL,
/// at most `max_ptes_swap` for khugepaged at PMD order, none at an mTHP order, any number for
/// MADV_COLLAPSE), then `__collapse_huge_page_swapin`: each swap PTE read locklessly
/// (`pte_offset_map_ro_nolock`, `ptep_get_lockless`) is faulted in by `do_swap_page`, under the
/// mmap read lock the caller holds. A PTE changed meanwhile is left to the isolation step, which
/// fails on anything not present; the caller revalidates the VMA and PMD after taking the mmap
/// write lock.
fn scan_and_swapin(
    cx: Ctx<'_>,
    mm: &MmStruct,
    vma: &Arc<Vma>,
    pmd: EntryPtr,
    start: u64,
    order: u32,
    caller: CollapseCaller,
) -> Result<(), CollapseFail> {
    let g = cx.geo();
    let nr = 1u64 << order;
    let first = g.index(start, 1);
    let max_swap = match caller {
        CollapseCaller::Madvise => nr,
        CollapseCaller::Khugepaged if order == g.pmd_order() => {
            cx.proto().collapse_max_ptes_swap.limit(g.entries() as u64)
        }
        CollapseCaller::Khugepaged => 0,
    };
    let unmapped = {
        let _s = cx.cpu.enter("hpage_collapse_scan_pmd");
        let Some(l) = pgtable::pte_offset_map_lock(cx, mm, pmd) else {
            return Err(CollapseFail::PmdNull);
        };
        let n = (0..nr as usize)
            .filter(|&i| l.pte(first + i).get(cx).is_swap_entry())
            .count() as u64;
        drop(l);
        n
    };
    if unmapped > max_swap {
        return Err(CollapseFail::ExceedSwap);
    }
    if unmapped == 0 {
        return Ok(());
    }
    let _f = cx.cpu.enter("__collapse_huge_page_swapin");
    for i in 0..nr {
        let addr = start + (i << g.page_shift);
        let Some(map) = pgtable::pte_offset_map(cx, pmd) else {
            return Err(CollapseFail::PmdNull);
        };
        let orig = map.pte(first + i as usize).get(cx);
        drop(map);
        if !orig.is_swap_entry() {
            continue;
        }
        let vmf = crate::mm::memory::Vmf {
            mm,
            vma,
            addr,
            write: false,
            unshare: false,
            vma_locked: false,
            pmd,
            orig_uffd_wp_marker: false,
        };
        match crate::mm::swapin::do_swap_page(cx, &vmf, orig) {
            crate::mm::memory::VmFault::Done => {}
            _ => return Err(CollapseFail::SwapinFailed),
        }
    }
    Ok(())
}
