//! Folios (`include/linux/mm.h`, `mm/swap.c`, the rmap accounting of `mm/rmap.c`, ≈6.18):
//! refcount, per-page and entire mapcount, pincount, the folio lock, and freeing when the last
//! reference goes. Freeing checks the TLB oracle: no CPU may still hold a translation to the page.

use crate::Ctx;
use mmcheck_platform::{Access, FrameKind, FrameRef, Obj, PageField as F, ViolationKind};

pub const PG_LRU: u64 = 1 << 1;
pub const PG_DIRTY: u64 = 1 << 2;
pub const PG_UPTODATE: u64 = 1 << 3;
pub const PG_SWAPBACKED: u64 = 1 << 4;
pub const PG_ISOLATED: u64 = 1 << 5;
/// `PG_swapcache`: the folio is in the swap cache (its slot in `SwapInfo`'s cache).
pub const PG_SWAPCACHE: u64 = 1 << 6;

/// `folio->mapping` tagging: anon mappings set bit 0 (`PAGE_MAPPING_ANON`).
pub fn mapping_anon(anon_vma_id: u64) -> u64 {
    anon_vma_id << 1 | 1
}

pub fn mapping_file(file_id: u64) -> u64 {
    file_id << 1
}

/// The head of the folio containing `pfn` (`page_folio`).
pub fn page_folio(cx: Ctx<'_>, pfn: u32) -> FrameRef {
    let head = cx.cpu.page_const(pfn).get(F::Head) as u32;
    if head == pfn {
        // The head's generation is read with its `struct page`, in this step.
        cx.cpu.frame_ref_in_step(head)
    } else {
        cx.cpu.frame_ref(head)
    }
}

/// `folio_order` (announced: a split changes it).
pub fn folio_order(cx: Ctx<'_>, f: FrameRef) -> u32 {
    cx.cpu.page_const(f.pfn).get(F::Order) as u32
}

pub fn folio_nr_pages(cx: Ctx<'_>, f: FrameRef) -> u64 {
    1 << folio_order(cx, f)
}

pub fn folio_test(cx: Ctx<'_>, f: FrameRef, flag: u64) -> bool {
    cx.cpu
        .page_parts(f.pfn, Obj::PAGE_FLAGS, Access::Read)
        .get(F::Flags)
        & flag
        != 0
}

pub fn folio_set(cx: Ctx<'_>, f: FrameRef, flag: u64) {
    cx.cpu
        .page_parts(f.pfn, Obj::PAGE_FLAGS, Access::Rmw)
        .or(F::Flags, flag);
}

pub fn folio_clear(cx: Ctx<'_>, f: FrameRef, flag: u64) {
    cx.cpu
        .page_parts(f.pfn, Obj::PAGE_FLAGS, Access::Rmw)
        .and_not(F::Flags, flag);
}

/// `folio_test_anon`.
pub fn folio_test_anon(cx: Ctx<'_>, f: FrameRef) -> bool {
    cx.cpu
        .page_parts(f.pfn, Obj::PAGE_META, Access::Read)
        .get(F::Mapping)
        & 1
        == 1
}

/// `folio_alloc`: a zeroed folio of `order` with one reference.
pub fn folio_alloc(cx: Ctx<'_>, order: u32) -> Option<FrameRef> {
    let _f = cx.cpu.enter("folio_alloc");
    cx.k.machine.frames.alloc(&cx.cpu, order, FrameKind::Data)
}

pub fn folio_ref_count(cx: Ctx<'_>, f: FrameRef) -> i64 {
    cx.cpu
        .page_parts(f.pfn, Obj::PAGE_REF, Access::Read)
        .count(F::Refcount)
}

/// `folio_get` / `folio_ref_add`.
pub fn folio_ref_add(cx: Ctx<'_>, f: FrameRef, n: i64) {
    let pr = cx.cpu.page_parts(f.pfn, Obj::PAGE_REF, Access::Rmw);
    cx.k.machine.frames.check(&cx.cpu, f, "folio_get");
    let old = pr.add(F::Refcount, n);
    cx.cpu
        .warn_on(old <= 0, "folio_get on a folio with refcount 0");
}

/// `folio_try_get`: take a reference unless the count already reached zero (GUP-fast, rmap).
pub fn folio_try_get(cx: Ctx<'_>, f: FrameRef) -> bool {
    // atomic_add_unless: fully ordered.
    let pr = cx.cpu.page_atomic_return(f.pfn, Obj::PAGE_REF);
    if !cx.cpu.frame_is_live(f) {
        return false;
    }
    let mut cur = pr.count(F::Refcount);
    loop {
        if cur <= 0 {
            return false;
        }
        match pr.cmpxchg(F::Refcount, cur, cur + 1) {
            Ok(_) => return true,
            Err(c) => cur = c,
        }
    }
}

/// `folio_put`: drop a reference; the last one frees the folio.
pub fn folio_put(cx: Ctx<'_>, f: FrameRef) {
    folio_put_refs(cx, f, 1)
}

/// `folio_put_refs`.
pub fn folio_put_refs(cx: Ctx<'_>, f: FrameRef, n: i64) {
    put_refs(cx, f, n, 0)
}

/// `folio_mark_dirty` then `folio_put` (`set_page_dirty_lock` + `put_page` after a GUP write),
/// in one step: the state in between (dirty, reference still held) keeps the folio from every
/// reader that looks at either, so merging them hides nothing.
pub fn folio_mark_dirty_put(cx: Ctx<'_>, f: FrameRef) {
    put_refs(cx, f, 1, PG_DIRTY)
}

fn put_refs(cx: Ctx<'_>, f: FrameRef, n: i64, set_flags: u64) {
    if f.pfn == cx.k.zero_page.pfn {
        return;
    }
    let parts = if set_flags != 0 {
        Obj::PAGE_REF | Obj::PAGE_FLAGS
    } else {
        Obj::PAGE_REF
    };
    // folio_put_testzero (atomic_sub_and_test): fully ordered.
    let pr = cx.cpu.page_atomic_return(f.pfn, parts);
    if set_flags != 0 {
        pr.or(F::Flags, set_flags);
    }
    cx.k.machine.frames.check(&cx.cpu, f, "folio_put");
    let old = pr.add(F::Refcount, -n);
    if old == n {
        free_folio(cx, f);
    } else {
        cx.cpu.warn_on(old < n, "folio_put: refcount underflow");
    }
}

/// Free a folio whose last reference is gone (`__folio_put`, or `free_unref_folios` of a folio
/// reclaim froze at zero).
pub(crate) fn free_folio(cx: Ctx<'_>, f: FrameRef) {
    let _g = cx.cpu.enter("__folio_put");
    let order = folio_order(cx, f);
    let n = 1u32 << order;
    let mapped = folio_mapcount(cx, f);
    cx.cpu.warn_on(
        mapped != 0,
        "freeing a mapped folio (bad_page: nonzero mapcount)",
    );
    for (cpu, e) in cx.cpu.tlb_holders(f.pfn, n) {
        cx.cpu.blame(mmcheck_platform::Obj::Tlb(cpu as u16));
        cx.cpu.report(
            ViolationKind::StaleTranslation,
            format!(
                "folio pfn {} freed while CPU{cpu} still caches vpn {:#x} -> pfn {}",
                f.pfn, e.vpn, e.page.pfn
            ),
        );
    }
    cx.k.machine.frames.free(&cx.cpu, f, order);
}

/// Mappings of the page `pfn` through PTEs (`page_mapcount` without the entire part).
pub fn page_mapcount(cx: Ctx<'_>, pfn: u32) -> i64 {
    cx.cpu
        .page_parts(pfn, Obj::PAGE_MAP, Access::Read)
        .count(F::Mapcount)
}

/// `folio_mapcount`: PTE mappings of every page plus PMD mappings of the whole folio. The model
/// keeps per-page mapcounts only, so a large folio's total is read page by page, each read its
/// own step (the kernel reads `_large_mapcount`, one atomic: the model's sum can see a folio
/// half-way through a batched rmap update that the kernel's counter would not).
pub fn folio_mapcount(cx: Ctx<'_>, f: FrameRef) -> i64 {
    let head = cx.cpu.page_parts(f.pfn, Obj::PAGE_MAP, Access::Read);
    let (order, entire, first) = (
        head.get(F::Order) as u32,
        head.count(F::EntireMapcount),
        head.count(F::Mapcount),
    );
    let tails: i64 = (1..1u32 << order)
        .map(|i| {
            cx.cpu
                .page_parts(f.pfn + i, Obj::PAGE_MAP, Access::Read)
                .count(F::Mapcount)
        })
        .sum();
    first + tails + entire
}

/// `folio_maybe_mapped_shared`: a small folio mapped more than once; a large one mapped whole by
/// a PMD, or more often than it has pages. The kernel also knows when two mms map distinct pages
/// of a large folio (the `_mm_ids` shared bit); the model does not and says exclusive there.
pub fn folio_maybe_mapped_shared(cx: Ctx<'_>, f: FrameRef) -> bool {
    let mapcount = folio_mapcount(cx, f);
    let order = folio_order(cx, f);
    if order == 0 {
        return mapcount > 1;
    }
    let entire = cx
        .cpu
        .page_parts(f.pfn, Obj::PAGE_MAP, Access::Read)
        .count(F::EntireMapcount);
    mapcount > 1 && (entire > 0 || mapcount > 1i64 << order)
}

/// `folio_mapped`.
pub fn folio_mapped(cx: Ctx<'_>, f: FrameRef) -> bool {
    folio_mapcount(cx, f) > 0
}

/// `folio_add_new_anon_rmap(..., RMAP_EXCLUSIVE)` for the pages `[pfn, pfn + nr)` mapped by
/// PTEs (or the whole folio by a PMD when `pmd`), at `index` of `anon_vma`. Every page of a
/// PTE-mapped folio becomes `PageAnonExclusive`; a PMD-mapped folio marks its head only (the
/// split hands the bit to each page, `__split_huge_pmd_locked`).
pub fn folio_add_new_anon_rmap(cx: Ctx<'_>, f: FrameRef, anon_vma_id: u64, index: u64, pmd: bool) {
    let pm = cx.cpu.page(f.pfn, Access::Write);
    pm.set(F::Mapping, mapping_anon(anon_vma_id));
    pm.set(F::Index, index);
    pm.or(F::Flags, PG_SWAPBACKED | PG_UPTODATE);
    pm.set(F::AnonExclusive, 1);
    let order = pm.get(F::Order) as u32;
    if pmd {
        pm.add(F::EntireMapcount, 1);
    } else {
        pm.add(F::Mapcount, 1);
        for i in 1..1u32 << order {
            let pt = cx.cpu.page(f.pfn + i, Access::Rmw);
            pt.add(F::Mapcount, 1);
            pt.set(F::AnonExclusive, 1);
        }
    }
}

/// `PageAnonExclusive(page)`: the page is mapped by exactly one process, which may write to it
/// (and pin it) without a COW. Per page, not per folio.
pub fn page_anon_exclusive(cx: Ctx<'_>, pfn: u32) -> bool {
    cx.cpu
        .page_parts(pfn, Obj::PAGE_FLAGS, Access::Read)
        .get(F::AnonExclusive)
        != 0
}

/// `SetPageAnonExclusive`.
pub fn set_page_anon_exclusive(cx: Ctx<'_>, pfn: u32) {
    cx.cpu
        .page_parts(pfn, Obj::PAGE_FLAGS, Access::Write)
        .set(F::AnonExclusive, 1);
}

/// `ClearPageAnonExclusive`.
pub fn clear_page_anon_exclusive(cx: Ctx<'_>, pfn: u32) {
    cx.cpu
        .page_parts(pfn, Obj::PAGE_FLAGS, Access::Write)
        .set(F::AnonExclusive, 0);
}

/// `folio_maybe_dma_pinned`. The kernel counts a small folio's pins as `GUP_PIN_COUNTING_BIAS`
/// (1024) references and answers "maybe" from 1024 references on; the model keeps an exact
/// pincount for every order (`_pincount` of large folios), so it never answers "maybe" for a
/// folio with many plain references.
pub fn folio_maybe_dma_pinned(cx: Ctx<'_>, f: FrameRef) -> bool {
    cx.cpu
        .page_parts(f.pfn, Obj::PAGE_REF, Access::Read)
        .count(F::Pincount)
        > 0
}

/// `__folio_try_share_anon_rmap` for one PTE-mapped page (`folio_try_share_anon_rmap_pte`):
/// the caller cleared (and flushed) the PTE first. Fails with `-EBUSY` (here `false`) if the
/// folio may be pinned: a pinned exclusive page must stay exclusive. The `smp_mb` pairs with the
/// one after GUP-fast's reference (`try_grab_folio_fast`), the second with `gup_must_unshare`'s
/// `smp_rmb`.
pub fn folio_try_share_anon_rmap_pte(cx: Ctx<'_>, f: FrameRef, pfn: u32) -> bool {
    cx.cpu.smp_mb();
    if folio_maybe_dma_pinned(cx, f) {
        return false;
    }
    clear_page_anon_exclusive(cx, pfn);
    cx.cpu.smp_mb();
    true
}

/// `folio_try_dup_anon_rmap_pte` (fork, `__folio_try_dup_anon_rmap` at PTE level, small folio
/// or one page of a large one): `maybe_pinned` is `folio_needs_cow_for_dma`. An exclusive page
/// that may be pinned cannot be shared: `false` (`-EBUSY`), the caller copies it. Otherwise the
/// page stops being exclusive and gains a mapping.
pub fn folio_try_dup_anon_rmap_pte(cx: Ctx<'_>, pfn: u32, maybe_pinned: bool) -> bool {
    if page_anon_exclusive(cx, pfn) {
        if maybe_pinned {
            return false;
        }
        clear_page_anon_exclusive(cx, pfn);
    }
    folio_add_rmap_pte(cx, pfn);
    true
}

/// `folio_try_dup_anon_rmap_pmd`: the PMD-mapped folio's head carries the bit.
pub fn folio_try_dup_anon_rmap_pmd(cx: Ctx<'_>, f: FrameRef, maybe_pinned: bool) -> bool {
    if page_anon_exclusive(cx, f.pfn) {
        if maybe_pinned {
            return false;
        }
        clear_page_anon_exclusive(cx, f.pfn);
    }
    folio_add_rmap_pmd(cx, f);
    true
}

/// `folio_add_{anon,file}_rmap_pte`: one more PTE mapping of page `pfn` (`atomic_inc_and_test`
/// of `page->_mapcount`: fully ordered).
pub fn folio_add_rmap_pte(cx: Ctx<'_>, pfn: u32) {
    cx.cpu
        .page_atomic_return(pfn, Obj::PAGE_MAP)
        .add(F::Mapcount, 1);
}

/// `folio_add_{anon,file}_rmap_pmd`.
pub fn folio_add_rmap_pmd(cx: Ctx<'_>, f: FrameRef) {
    cx.cpu
        .page_atomic_return(f.pfn, Obj::PAGE_MAP)
        .add(F::EntireMapcount, 1);
}

/// `folio_remove_rmap_pte` (`atomic_add_negative` of `page->_mapcount`: fully ordered).
pub fn folio_remove_rmap_pte(cx: Ctx<'_>, pfn: u32) {
    let old = cx
        .cpu
        .page_atomic_return(pfn, Obj::PAGE_MAP)
        .add(F::Mapcount, -1);
    cx.cpu
        .warn_on(old <= 0, "folio_remove_rmap_pte: mapcount underflow");
}

/// `folio_remove_rmap_pmd`.
pub fn folio_remove_rmap_pmd(cx: Ctx<'_>, f: FrameRef) {
    let old = cx
        .cpu
        .page_atomic_return(f.pfn, Obj::PAGE_MAP)
        .add(F::EntireMapcount, -1);
    cx.cpu
        .warn_on(old <= 0, "folio_remove_rmap_pmd: mapcount underflow");
}

/// `folio_lock` (sleeps while another task holds it).
#[track_caller]
pub fn folio_lock(cx: Ctx<'_>, f: FrameRef) {
    let _g = cx.cpu.enter("folio_lock");
    cx.cpu.folio_lock_raw(f.pfn);
}

/// `folio_trylock`.
#[track_caller]
pub fn folio_trylock(cx: Ctx<'_>, f: FrameRef) -> bool {
    cx.cpu.folio_trylock_raw(f.pfn)
}

/// `folio_unlock`.
pub fn folio_unlock(cx: Ctx<'_>, f: FrameRef) {
    let was = cx.cpu.folio_unlock_raw(f.pfn);
    cx.cpu.warn_on(!was, "folio_unlock of an unlocked folio");
}

/// `__folio_set_locked` on a new folio nobody else can see yet.
#[track_caller]
pub fn folio_set_locked_new(cx: Ctx<'_>, f: FrameRef) {
    cx.cpu.folio_set_locked_new(f.pfn);
}

/// A new shmem folio about to enter the page cache of `file_id` at `index`: locked, uptodate,
/// swap-backed, on the LRU (`shmem_alloc_and_add_folio`, `__filemap_add_folio`).
pub fn folio_init_shmem(cx: Ctx<'_>, f: FrameRef, file_id: u64, index: u64) {
    folio_set_locked_new(cx, f);
    let pm = cx.cpu.page(f.pfn, Access::Write);
    pm.set(F::Flags, PG_UPTODATE | PG_SWAPBACKED | PG_LRU);
    pm.set(F::Mapping, mapping_file(file_id));
    pm.set(F::Index, index);
}

/// `folio_test_locked`.
pub fn folio_test_locked(cx: Ctx<'_>, f: FrameRef) -> bool {
    cx.cpu.visible(Obj::Lock(lock_id(f)), Access::Read);
    cx.cpu.folio_test_locked_in_step(f.pfn)
}

/// Lock ids of folio locks live in their own range (above PTL ids).
pub fn lock_id(f: FrameRef) -> u64 {
    Obj::page_lock_id(f.pfn)
}

/// Copy the contents of `src` into the new folio `dst` (`folio_copy` / `copy_user_highpage`),
/// page by page: stores bringing `dst` uptodate (buffered under a weak memory model).
pub fn copy_pages(cx: Ctx<'_>, dst: FrameRef, src: FrameRef, n: u32) {
    let fr = &cx.k.machine.frames;
    for i in 0..n {
        let v = cx.cpu.data_read(fr.current(src.pfn + i));
        cx.cpu.data_init(fr.current(dst.pfn + i), v);
    }
}

/// The `smp_wmb()` of `__folio_mark_uptodate` / `folio_mark_uptodate`: the stores that brought a
/// new folio uptodate (the allocator's zeroing, a copy) become visible before every later store,
/// so before the `set_pte_at`/`set_pmd_at` that maps it to lockless walkers. Switch
/// `uptodate.wmb`; each caller is a mutation site (`FUNCTION:smp_wmb`). The flag itself is set
/// where the model keeps it (`folio_add_new_anon_rmap`, the read-in paths).
#[track_caller]
pub fn folio_mark_uptodate_barrier(cx: Ctx<'_>) {
    if cx.proto().uptodate_wmb {
        cx.cpu.smp_wmb();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::pgtable::tests::{kinds, seq_kernel};
    use crate::Protocol;
    use mmcheck_platform::TlbEntry;

    const MM: u64 = 99;

    fn tlb_entry(vpn: u64, page: FrameRef, shift: u32) -> TlbEntry {
        TlbEntry {
            mm: MM,
            vpn,
            shift,
            page,
            writable: true,
        }
    }

    #[test]
    fn refcount_get_put_and_free_on_the_last_reference() {
        let k = seq_kernel(Protocol::default());
        let cx = k.ctx(0);
        let f = folio_alloc(cx, 0).unwrap();
        assert_eq!(folio_ref_count(cx, f), 1);
        assert_eq!(folio_order(cx, f), 0);
        folio_ref_add(cx, f, 2);
        assert_eq!(folio_ref_count(cx, f), 3);
        folio_put(cx, f);
        assert_eq!(folio_ref_count(cx, f), 2);
        assert!(k.machine.frames.is_live(f));
        folio_put_refs(cx, f, 2);
        assert!(!k.machine.frames.is_live(f));
        assert_eq!(k.machine.frames.kind(f.pfn), FrameKind::Free);
        assert!(kinds(&k).is_empty());
    }

    #[test]
    fn a_higher_order_folio_is_freed_whole() {
        let k = seq_kernel(Protocol::default());
        let cx = k.ctx(0);
        let used = k.machine.frames.nr_used();
        let f = folio_alloc(cx, 2).unwrap();
        assert_eq!(folio_nr_pages(cx, f), 4);
        assert_eq!(page_folio(cx, f.pfn + 3), f);
        assert_eq!(k.machine.frames.nr_used(), used + 4);
        folio_put(cx, f);
        assert_eq!(k.machine.frames.nr_used(), used);
        assert!(kinds(&k).is_empty());
    }

    #[test]
    fn try_get_fails_on_a_freed_folio() {
        let k = seq_kernel(Protocol::default());
        let cx = k.ctx(0);
        let f = folio_alloc(cx, 0).unwrap();
        assert!(folio_try_get(cx, f));
        assert_eq!(folio_ref_count(cx, f), 2);
        folio_put_refs(cx, f, 2);
        assert!(!folio_try_get(cx, f));
        assert!(kinds(&k).is_empty());
    }

    #[test]
    fn the_zero_page_is_never_freed() {
        let k = seq_kernel(Protocol::default());
        let cx = k.ctx(0);
        let z = k.zero_page;
        let rc = folio_ref_count(cx, z);
        for _ in 0..3 {
            folio_put(cx, z);
        }
        assert_eq!(folio_ref_count(cx, z), rc);
        assert!(k.machine.frames.is_live(z));
        assert!(kinds(&k).is_empty());
    }

    #[test]
    fn freeing_a_folio_another_cpu_still_caches_is_a_stale_translation() {
        let k = seq_kernel(Protocol::default());
        let (c0, c1) = (k.ctx(0), k.ctx(1));
        let f = folio_alloc(c0, 0).unwrap();
        c1.cpu.tlb_fill(tlb_entry(0x123, f, 0));
        folio_put(c0, f);
        let v = k.machine.violations();
        assert_eq!(kinds(&k), vec![ViolationKind::StaleTranslation]);
        assert_eq!(v[0].cpu, Some(0));
        assert!(v[0].stack.contains(&"__folio_put"));
        assert!(v[0].msg.contains("CPU1"), "{}", v[0].msg);
        assert!(
            v[0].msg.contains(&format!("folio pfn {}", f.pfn)),
            "{}",
            v[0].msg
        );
        assert!(v[0].msg.contains("vpn 0x123"), "{}", v[0].msg);
        assert_eq!(
            k.machine.frames.kind(f.pfn),
            FrameKind::Free,
            "freed regardless"
        );
    }

    #[test]
    fn freeing_after_the_flush_is_clean() {
        let k = seq_kernel(Protocol::default());
        let (c0, c1) = (k.ctx(0), k.ctx(1));
        let f = folio_alloc(c0, 0).unwrap();
        c1.cpu.tlb_fill(tlb_entry(0x123, f, 0));
        c0.cpu.flush_tlb_range(MM, 0x123, 0x124, false);
        folio_put(c0, f);
        assert!(kinds(&k).is_empty());
        // A translation to another frame does not matter either.
        let g = folio_alloc(c0, 0).unwrap();
        let h = folio_alloc(c0, 0).unwrap();
        c1.cpu.tlb_fill(tlb_entry(0x200, h, 0));
        folio_put(c0, g);
        assert!(kinds(&k).is_empty());
    }

    #[test]
    fn a_cached_translation_to_a_tail_page_is_caught() {
        let k = seq_kernel(Protocol::default());
        let (c0, c1) = (k.ctx(0), k.ctx(1));
        let f = folio_alloc(c0, 2).unwrap();
        let tail = k.machine.frames.current(f.pfn + 3);
        c1.cpu.tlb_fill(tlb_entry(0x40, tail, 0));
        folio_put(c0, f);
        let v = k.machine.violations();
        assert_eq!(kinds(&k), vec![ViolationKind::StaleTranslation]);
        assert!(
            v[0].msg.contains(&format!("-> pfn {}", f.pfn + 3)),
            "{}",
            v[0].msg
        );
    }

    #[test]
    fn freeing_a_mapped_folio_is_reported() {
        let k = seq_kernel(Protocol::default());
        let cx = k.ctx(0);
        let f = folio_alloc(cx, 0).unwrap();
        folio_add_rmap_pte(cx, f.pfn);
        folio_put(cx, f);
        let v = k.machine.violations();
        assert_eq!(kinds(&k), vec![ViolationKind::Assertion]);
        assert!(v[0].msg.contains("mapcount"), "{}", v[0].msg);
    }

    #[test]
    fn refcount_underflow_is_reported_and_frees_nothing() {
        let k = seq_kernel(Protocol::default());
        let cx = k.ctx(0);
        let f = folio_alloc(cx, 0).unwrap();
        folio_put_refs(cx, f, 2);
        assert_eq!(kinds(&k), vec![ViolationKind::Assertion]);
        assert!(k.machine.frames.is_live(f));
    }

    #[test]
    fn putting_a_freed_folio_is_use_after_free() {
        let k = seq_kernel(Protocol::default());
        let cx = k.ctx(0);
        let f = folio_alloc(cx, 0).unwrap();
        folio_put(cx, f);
        folio_put(cx, f);
        assert_eq!(kinds(&k)[0], ViolationKind::UseAfterFree);
        assert!(k.machine.violations()[0].msg.contains("folio_put"));
    }

    #[test]
    fn anon_rmap_and_mapcounts() {
        let k = seq_kernel(Protocol::default());
        let cx = k.ctx(0);
        let f = folio_alloc(cx, 2).unwrap();
        assert!(!folio_test_anon(cx, f));
        assert!(!folio_mapped(cx, f));
        folio_add_new_anon_rmap(cx, f, 5, 77, false);
        assert!(folio_test_anon(cx, f));
        assert!(folio_test(cx, f, PG_UPTODATE));
        assert!((0..4).all(|i| page_anon_exclusive(cx, f.pfn + i)));
        assert_eq!(folio_mapcount(cx, f), 4);
        assert_eq!(page_mapcount(cx, f.pfn + 2), 1);
        folio_add_rmap_pmd(cx, f);
        assert_eq!(folio_mapcount(cx, f), 5);
        folio_remove_rmap_pmd(cx, f);
        for i in 0..4 {
            folio_remove_rmap_pte(cx, f.pfn + i);
        }
        assert!(!folio_mapped(cx, f));
        assert!(kinds(&k).is_empty());
        folio_remove_rmap_pte(cx, f.pfn);
        assert_eq!(
            kinds(&k),
            vec![ViolationKind::Assertion],
            "mapcount underflow"
        );
    }

    #[test]
    fn folio_lock_trylock_unlock() {
        let k = seq_kernel(Protocol::default());
        let (c0, c1) = (k.ctx(0), k.ctx(1));
        let f = folio_alloc(c0, 0).unwrap();
        folio_lock(c0, f);
        assert!(folio_test_locked(c0, f));
        assert!(!folio_trylock(c1, f));
        assert!(folio_test_locked(c0, f), "a failed trylock keeps the lock");
        folio_unlock(c0, f);
        assert!(!folio_test_locked(c0, f));
        assert!(folio_trylock(c1, f));
        folio_unlock(c1, f);
        assert!(kinds(&k).is_empty());
        folio_unlock(c1, f);
        assert_eq!(kinds(&k), vec![ViolationKind::Assertion]);
    }

    #[test]
    fn copy_pages_copies_every_page() {
        let k = seq_kernel(Protocol::default());
        let cx = k.ctx(0);
        let src = folio_alloc(cx, 1).unwrap();
        let dst = folio_alloc(cx, 1).unwrap();
        let fr = &k.machine.frames;
        cx.cpu.data_write(src, 11);
        cx.cpu.data_write(fr.current(src.pfn + 1), 22);
        copy_pages(cx, dst, src, 2);
        assert_eq!(cx.cpu.data_read(dst), 11);
        assert_eq!(cx.cpu.data_read(fr.current(dst.pfn + 1)), 22);
        assert!(kinds(&k).is_empty());
    }
}
