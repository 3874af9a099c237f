//! Page faults (`mm/memory.c`, ≈6.14, with the VMA-lock entry of ≈6.17): `handle_mm_fault`,
//! `handle_pte_fault`, `do_anonymous_page`, the file fault family (`do_read_fault` with fault-around,
//! `do_cow_fault`, `do_shared_fault`, `finish_fault`), and `do_wp_page` / `wp_page_copy`.

use crate::arch::pgtable::Entry;
use crate::mm::folio::{self, page_folio};
use crate::mm::huge_memory;
use crate::mm::pgtable::{self, EntryPtr};
use crate::mm::rmap::anon_vma_prepare;
use crate::mm::shmem;
use crate::mm::types::{MmStruct, VmFlags, Vma, MM_ANONPAGES, MM_SHMEMPAGES};
use crate::protocol::AnonVmaCheck;
use crate::{Ctx, Errno};
use mmcheck_platform::FrameRef;
use std::sync::Arc;

/// `vm_fault_t`, reduced to what the paths here return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmFault {
    /// Handled, or a transient race: return to user space and refault if needed.
    Done,
    /// `VM_FAULT_RETRY`: drop the VMA lock and retry under the mmap lock.
    Retry,
    Oom,
    Sigbus,
    Sigsegv,
    /// The huge-PMD path declined (`VM_FAULT_FALLBACK`).
    Fallback,
}

/// `struct vm_fault`.
pub struct Vmf<'a> {
    pub mm: &'a MmStruct,
    pub vma: &'a Arc<Vma>,
    pub addr: u64,
    pub write: bool,
    /// `FAULT_FLAG_UNSHARE`: GUP wants a read-only pin of a page that is not exclusive; break
    /// COW without making the entry writable.
    pub unshare: bool,
    /// `FAULT_FLAG_VMA_LOCK`: only the per-VMA read lock is held.
    pub vma_locked: bool,
    pub pmd: EntryPtr,
    /// `vmf_orig_pte_uffd_wp`: the fault found a uffd-wp marker (`FAULT_FLAG_ORIG_PTE_VALID`
    /// with a marker in `orig_pte`): the page is mapped write-protected with `_PAGE_UFFD_WP`.
    pub orig_uffd_wp_marker: bool,
}

impl Vmf<'_> {
    fn pte_idx(&self, cx: Ctx<'_>) -> usize {
        cx.geo().index(self.addr, 1)
    }

    fn pgoff(&self, cx: Ctx<'_>) -> u64 {
        self.vma.linear_page_index(cx, self.addr)
    }
}

/// `vm_normal_page`: the page behind a present PTE, `None` for special mappings (the zero page).
pub fn vm_normal_page(cx: Ctx<'_>, pte: Entry) -> Option<u32> {
    (!pte.special() && pte.pfn() != cx.k.zero_page.pfn).then_some(pte.pfn())
}

/// rss counter of a page-cache or anon folio (`mm_counter`).
pub fn mm_counter(cx: Ctx<'_>, f: FrameRef) -> usize {
    if folio::folio_test_anon(cx, f) {
        MM_ANONPAGES
    } else {
        MM_SHMEMPAGES
    }
}

/// `handle_mm_fault` → `__handle_mm_fault`.
pub fn handle_mm_fault(
    cx: Ctx<'_>,
    mm: &MmStruct,
    vma: &Arc<Vma>,
    addr: u64,
    write: bool,
    vma_locked: bool,
) -> VmFault {
    handle_mm_fault_flags(cx, mm, vma, addr, write, false, vma_locked)
}

/// `handle_mm_fault` with `FAULT_FLAG_UNSHARE` when `unshare` (GUP's `faultin_page` after
/// `-EMLINK`).
pub fn handle_mm_fault_flags(
    cx: Ctx<'_>,
    mm: &MmStruct,
    vma: &Arc<Vma>,
    addr: u64,
    write: bool,
    unshare: bool,
    vma_locked: bool,
) -> VmFault {
    let _f = cx.cpu.enter("handle_mm_fault");
    if write && !vma.flags(cx).has(VmFlags::WRITE) {
        return VmFault::Sigsegv;
    }
    let pmd = match pgtable::pmd_alloc(cx, mm, addr) {
        Ok(p) => p,
        Err(_) => return VmFault::Oom,
    };
    let vmf = Vmf {
        mm,
        vma,
        addr,
        write,
        unshare: unshare && !write,
        vma_locked,
        pmd,
        orig_uffd_wp_marker: false,
    };
    let pmdval = pmd.get(cx);
    if pmdval.is_none() && huge_memory::thp_vma_allowable(cx, vma, addr) {
        let r = huge_memory::do_huge_pmd_anonymous_page(cx, &vmf);
        if r != VmFault::Fallback {
            return r;
        }
    } else if pmdval.pmd_trans_huge() {
        if !pmdval.present() {
            // Being rewritten under the PMD lock (pmdp_invalidate): huge_pmd_set_accessed waits
            // for the lock, finds the PMD changed, and the access is retried.
            drop(pgtable::pmd_lock(cx, mm, pmd));
            return VmFault::Done;
        }
        if pmdval.protnone() {
            return huge_memory::do_huge_pmd_numa_page(cx, &vmf, pmdval);
        }
        if (vmf.write || vmf.unshare) && !pmdval.write() {
            // wp_huge_pmd (anonymous VMAs only have huge PMDs here).
            let r = huge_memory::do_huge_pmd_wp_page(cx, &vmf, pmdval);
            if r != VmFault::Fallback {
                return r;
            }
        } else {
            huge_memory::huge_pmd_set_accessed(cx, &vmf, pmdval);
            return VmFault::Done;
        }
    } else if !pmdval.is_none() && !pmdval.present() {
        // is_swap_pmd: a PMD migration entry waits for the migration (pmd_migration_entry_wait),
        // then the access is retried.
        // VM_BUG_ON(!is_pmd_migration_entry): x86's pmd_mkinvalid of a migration entry (before
        // 6.10, split.invalidate_nonpresent) leaves a swap PMD of another type for this
        // lockless read to see.
        cx.cpu.warn_on(
            !pmdval.is_migration(),
            "__handle_mm_fault: VM_BUG_ON: a swap PMD that is not a migration entry",
        );
        if pmdval.is_migration() {
            huge_memory::pmd_migration_entry_wait(cx, mm, pmd);
        }
        return VmFault::Done;
    }
    handle_pte_fault(cx, &vmf)
}

/// `handle_pte_fault`.
pub fn handle_pte_fault(cx: Ctx<'_>, vmf: &Vmf<'_>) -> VmFault {
    let _f = cx.cpu.enter("handle_pte_fault");
    let idx = vmf.pte_idx(cx);
    let mut present = None;
    if !vmf.pmd.get(cx).is_none() {
        // A regular PMD can still be retracted by file collapse: map may fail, then refault.
        let Some((map, _pmdval, ptl)) = pgtable::pte_offset_map_rw_nolock(cx, vmf.mm, vmf.pmd)
        else {
            return VmFault::Done;
        };
        let orig = map.pte(idx).get(cx);
        if !orig.is_none() {
            present = Some((map, orig, ptl));
        }
    }
    let Some((map, orig, ptl)) = present else {
        return do_pte_missing(cx, vmf);
    };
    if orig.is_pte_marker() {
        drop(map);
        return handle_pte_marker(cx, vmf, orig);
    }
    if !orig.present() {
        // Swap or migration entry: do_swap_page / migration_entry_wait (a migration entry means
        // "wait for the folio lock, then refault").
        drop(map);
        if orig.is_swap_entry() {
            return crate::mm::swapin::do_swap_page(cx, vmf, orig);
        }
        if orig.is_migration() {
            crate::mm::migrate::migration_entry_wait(cx, orig);
        }
        return VmFault::Done;
    }
    let g = ptl.lock(cx.cpu);
    let pte = map.pte(idx);
    if !cx.cpu.recheck("pte_same", pte.get(cx) == orig) {
        return VmFault::Done; // R2: someone else changed it (or the table was detached)
    }
    if orig.protnone() {
        do_numa_page(cx, vmf, pte, orig);
        drop(g);
        return VmFault::Done;
    }
    let updated = if vmf.write || vmf.unshare {
        if !orig.write() {
            return do_wp_page(cx, vmf, g, map, orig);
        }
        if vmf.write {
            orig.with(Entry::DIRTY | Entry::ACCESSED)
        } else {
            orig.with(Entry::ACCESSED)
        }
    } else {
        orig.with(Entry::ACCESSED)
    };
    if updated != orig {
        pte.set(cx, updated);
    } else {
        // A spurious fault (the entry already allows the access): the faulting CPU's TLB or
        // paging-structure cache is stale; flush_tlb_fix_spurious_fault drops it (invlpg).
        let vpn = vmf.addr >> cx.geo().page_shift;
        cx.cpu.local_flush_tlb_range(vmf.mm.id, vpn, vpn + 1);
    }
    VmFault::Done
}

/// `handle_pte_marker` → `pte_marker_handle_uffd_wp`: a marker left in a VMA no longer
/// registered for wp is cleared (`pte_marker_clear`); otherwise the fault is a missing-page fault
/// that maps the page write-protected with `_PAGE_UFFD_WP` (a write then faults again into
/// `do_wp_page` and `handle_userfault`).
fn handle_pte_marker(cx: Ctx<'_>, vmf: &Vmf<'_>, orig: Entry) -> VmFault {
    let _f = cx.cpu.enter("handle_pte_marker");
    if !orig.is_uffd_wp_marker() {
        return VmFault::Sigbus;
    }
    if !crate::mm::userfaultfd::userfaultfd_wp(cx, vmf.vma) {
        let _c = cx.cpu.enter("pte_marker_clear");
        if let Some(l) = pgtable::pte_offset_map_lock(cx, vmf.mm, vmf.pmd) {
            let pte = l.pte(vmf.pte_idx(cx));
            if cx.cpu.recheck("pte_same", pte.get(cx) == orig) {
                pte.set(cx, Entry::NONE);
            }
        }
        return VmFault::Done;
    }
    let marked = Vmf {
        mm: vmf.mm,
        vma: vmf.vma,
        addr: vmf.addr,
        write: vmf.write,
        unshare: vmf.unshare,
        vma_locked: vmf.vma_locked,
        pmd: vmf.pmd,
        orig_uffd_wp_marker: true,
    };
    do_pte_missing(cx, &marked)
}

/// `do_numa_page`, PTL held and the PTE rechecked (`pte_same`): the model never migrates
/// (`numa_migrate_check` finds no better node), so the mapping is rebuilt in place
/// (`numa_rebuild_single_mapping`: `ptep_modify_prot_start` / `_commit`, young, writable if
/// `can_change_pte_writable`).
fn do_numa_page(cx: Ctx<'_>, vmf: &Vmf<'_>, pte: EntryPtr, orig: Entry) {
    let _f = cx.cpu.enter("do_numa_page");
    let mut e = orig.mk_accessible().with(Entry::ACCESSED);
    if vmf.vma.flags(cx).has(VmFlags::WRITE) && can_change_pte_writable(cx, vmf, orig) {
        e = e.with(Entry::RW);
    }
    pte.xchg(cx, Entry::NONE);
    pte.set(cx, e);
}

/// `can_change_pte_writable`: a private anon page only if `PageAnonExclusive`, a shared page
/// only if already dirty (no write-notify needed).
pub(crate) fn can_change_pte_writable(cx: Ctx<'_>, vmf: &Vmf<'_>, pte: Entry) -> bool {
    // Do not upgrade a uffd-wp PTE: the next write must fault.
    if pte.uffd_wp() {
        return false;
    }
    if vmf.vma.is_shared(cx) {
        return pte.dirty();
    }
    match vm_normal_page(cx, pte) {
        Some(p) => {
            folio::folio_test_anon(cx, page_folio(cx, p)) && folio::page_anon_exclusive(cx, p)
        }
        None => false,
    }
}

fn do_pte_missing(cx: Ctx<'_>, vmf: &Vmf<'_>) -> VmFault {
    if vmf.vma.is_anonymous() {
        do_anonymous_page(cx, vmf)
    } else {
        do_fault(cx, vmf)
    }
}

/// `vmf_anon_prepare` (6.7+): under the VMA lock an anon_vma cannot be set up; retry with mmap.
/// Before 6.7 (`lock_vma_under_rcu.anon_vma_check` set), the fault called `anon_vma_prepare`
/// under the VMA lock alone, trusting `lock_vma_under_rcu` to have refused a VMA without one.
fn vmf_anon_prepare(cx: Ctx<'_>, vmf: &Vmf<'_>) -> Result<u64, VmFault> {
    if let Some(av) = vmf.vma.anon_vma(cx) {
        return Ok(av.id);
    }
    if vmf.vma_locked && cx.proto().lvur_anon_vma_check == AnonVmaCheck::None {
        return Err(VmFault::Retry);
    }
    anon_vma_prepare(cx, vmf.mm, vmf.vma)
        .map(|av| av.id)
        .map_err(|_| VmFault::Oom)
}

/// `do_anonymous_page`.
pub fn do_anonymous_page(cx: Ctx<'_>, vmf: &Vmf<'_>) -> VmFault {
    let _f = cx.cpu.enter("do_anonymous_page");
    if vmf.vma.is_shared(cx) {
        return VmFault::Sigbus;
    }
    if pgtable::pte_alloc(cx, vmf.mm, vmf.pmd).is_err() {
        return VmFault::Oom;
    }
    let idx = vmf.pte_idx(cx);
    if !vmf.write && cx.proto().zero_page {
        let entry = Entry::leaf(cx.k.zero_page.pfn, false, false).with(Entry::SPECIAL);
        let Some(l) = pgtable::pte_offset_map_lock(cx, vmf.mm, vmf.pmd) else {
            return VmFault::Done;
        };
        if !cx
            .cpu
            .recheck("vmf_pte_changed", l.pte(idx).get(cx).is_none())
        {
            return VmFault::Done;
        }
        if crate::mm::userfaultfd::userfaultfd_missing(cx, vmf.vma) {
            drop(l);
            return crate::mm::userfaultfd::handle_userfault(cx, vmf.vma, VmFlags::UFFD_MISSING);
        }
        l.pte(idx).set(cx, entry);
        return VmFault::Done;
    }
    let av = match vmf_anon_prepare(cx, vmf) {
        Ok(av) => av,
        Err(r) => return r,
    };
    let folio = match alloc_anon_folio(cx, vmf) {
        Ok(f) => f,
        Err(r) => return r,
    };
    // The memory barrier inside __folio_mark_uptodate makes the zeroing visible before set_ptes.
    folio::folio_mark_uptodate_barrier(cx);
    let order = folio::folio_order(cx, folio);
    let nr = 1usize << order;
    let first = idx & !(nr - 1);
    let addr = vmf.addr & !((nr as u64) << cx.geo().page_shift).wrapping_sub(1);
    let writable = vmf.vma.flags(cx).has(VmFlags::WRITE);
    let Some(l) = pgtable::pte_offset_map_lock(cx, vmf.mm, vmf.pmd) else {
        folio::folio_put(cx, folio);
        return VmFault::Done;
    };
    // nr == 1: vmf_pte_changed; an mTHP: pte_range_none over its whole range, or (switch off)
    // only the faulting PTE.
    let changed = if nr == 1 || !cx.proto().anon_fault_range_recheck {
        !cx.cpu
            .recheck("vmf_pte_changed", l.pte(idx).get(cx).is_none())
    } else {
        !cx.cpu.recheck(
            "pte_range_none",
            (first..first + nr).all(|i| l.pte(i).get(cx).is_none()),
        )
    };
    if changed {
        drop(l);
        folio::folio_put(cx, folio);
        return VmFault::Done;
    }
    if crate::mm::userfaultfd::userfaultfd_missing(cx, vmf.vma) {
        drop(l);
        folio::folio_put(cx, folio);
        return crate::mm::userfaultfd::handle_userfault(cx, vmf.vma, VmFlags::UFFD_MISSING);
    }
    // LOCKING: rmap and counters are updated before the PTEs become visible, all under the PTL.
    folio::folio_ref_add(cx, folio, nr as i64 - 1);
    vmf.mm.add_rss(MM_ANONPAGES, nr as i64);
    let index = vmf.vma.linear_page_index(cx, addr);
    folio::folio_add_new_anon_rmap(cx, folio, av, index, false);
    folio::folio_set(cx, folio, folio::PG_LRU);
    // set_ptes: one PTE per page, in order.
    for i in 0..nr {
        l.pte(first + i)
            .set(cx, Entry::leaf(folio.pfn + i as u32, writable, writable));
    }
    VmFault::Done
}

/// `alloc_anon_folio`: with an mTHP order enabled (`thp.anon_fault_order`) and its aligned range
/// inside the VMA, scan that range locklessly (`pte_offset_map` under RCU, `pte_range_none`) and
/// allocate a folio of that order if every PTE is none; otherwise an order-0 page. `Done` for
/// -EAGAIN (the table went away under the scan: the access retries), `Oom` if no page is left.
fn alloc_anon_folio(cx: Ctx<'_>, vmf: &Vmf<'_>) -> Result<FrameRef, VmFault> {
    let _f = cx.cpu.enter("alloc_anon_folio");
    let g = cx.geo();
    let order = cx.proto().anon_fault_order;
    // thp_vma_suitable_order: below the PMD order, aligned range inside the VMA (anon: pgoff
    // follows the address). No uffd-armed VMAs in the model.
    if order > 0 && order < g.pmd_order() {
        let size = 1u64 << (order + g.page_shift);
        let haddr = vmf.addr & !(size - 1);
        if haddr >= vmf.vma.start(cx) && haddr + size <= vmf.vma.end(cx) {
            let Some(map) = pgtable::pte_offset_map(cx, vmf.pmd) else {
                return Err(VmFault::Done); // -EAGAIN
            };
            let nr = 1usize << order;
            let first = vmf.pte_idx(cx) & !(nr - 1);
            let none = (first..first + nr).all(|i| map.pte(i).get(cx).is_none());
            drop(map);
            if none {
                if let Some(f) = folio::folio_alloc(cx, order) {
                    return Ok(f);
                }
            }
        }
    }
    folio::folio_alloc(cx, 0).ok_or(VmFault::Oom)
}

/// `do_fault`.
fn do_fault(cx: Ctx<'_>, vmf: &Vmf<'_>) -> VmFault {
    if !vmf.write {
        do_read_fault(cx, vmf)
    } else if !vmf.vma.is_shared(cx) {
        do_cow_fault(cx, vmf)
    } else {
        do_shared_fault(cx, vmf)
    }
}

/// `do_read_fault`: fault-around first, then `->fault`.
fn do_read_fault(cx: Ctx<'_>, vmf: &Vmf<'_>) -> VmFault {
    let _f = cx.cpu.enter("do_read_fault");
    if cx.proto().fault_around_pages > 1 && do_fault_around(cx, vmf) {
        return VmFault::Done;
    }
    let folio = match shmem::shmem_fault(cx, vmf) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let page = folio.pfn
        + (vmf.pgoff(cx)
            - cx.cpu
                .page(folio.pfn, mmcheck_platform::Access::Read)
                .get(mmcheck_platform::PageField::Index)) as u32;
    let ret = finish_fault(cx, vmf, folio, page, false);
    folio::folio_unlock(cx, folio);
    if ret != VmFault::Done {
        folio::folio_put(cx, folio);
        return if ret == VmFault::Fallback {
            VmFault::Done
        } else {
            ret
        };
    }
    VmFault::Done
}

/// `do_fault_around` → `filemap_map_pages`: map the page-cache folios already present around the
/// fault. True if the faulting address got mapped (`VM_FAULT_NOPAGE`).
fn do_fault_around(cx: Ctx<'_>, vmf: &Vmf<'_>) -> bool {
    let _f = cx.cpu.enter("do_fault_around");
    let g = cx.geo();
    let file = vmf.vma.file.as_ref().expect("file fault without a file");
    let nr = cx.proto().fault_around_pages;
    let ps = g.page_shift;
    let pte_off = g.index(vmf.addr, 1) as u64;
    let vma_off = (vmf.addr - vmf.vma.start(cx)) >> ps;
    let vma_pages = (vmf.vma.end(cx) - vmf.vma.start(cx)) >> ps;
    let from = (pte_off - pte_off.min(vma_off)).max(pte_off / nr * nr);
    let to = (from + nr)
        .min(g.entries() as u64)
        .min(pte_off + vma_pages - vma_off)
        - 1;
    let start_pgoff = vmf.pgoff(cx) - (pte_off - from);
    let end_pgoff = start_pgoff + (to - from);
    let folios = file.folios_in(cx, start_pgoff, end_pgoff);
    // filemap_map_pages: nothing cached, nothing to map (and no table allocated).
    let Some(_) = folios.first() else {
        return false;
    };
    if pgtable::pte_alloc(cx, vmf.mm, vmf.pmd).is_err() {
        return false;
    }
    let Some(l) = pgtable::pte_offset_map_lock(cx, vmf.mm, vmf.pmd) else {
        return false;
    };
    let base = vmf.addr - ((pte_off - from) << ps);
    let mut mapped_fault = false;
    for (index, f) in folios {
        // next_uptodate_folio: take a reference, trylock, check still cached and uptodate.
        if !folio::folio_try_get(cx, f) {
            continue;
        }
        if !folio::folio_trylock(cx, f) {
            folio::folio_put(cx, f);
            continue;
        }
        if file.find_get_folio(cx, index) != Some(f)
            || !folio::folio_test(cx, f, folio::PG_UPTODATE)
        {
            folio::folio_unlock(cx, f);
            folio::folio_put(cx, f);
            continue;
        }
        let addr = base + ((index - start_pgoff) << ps);
        let pte = l.pte(g.index(addr, 1));
        if pte.get(cx).is_none() {
            // The page of a (possibly large) folio that backs `index`.
            let first = cx
                .cpu
                .page(f.pfn, mmcheck_platform::Access::Read)
                .get(mmcheck_platform::PageField::Index);
            let page = f.pfn + (index - first) as u32;
            vmf.mm.add_rss(MM_SHMEMPAGES, 1);
            folio::folio_add_rmap_pte(cx, page);
            pte.set(cx, Entry::leaf(page, false, false));
            if addr == vmf.addr {
                mapped_fault = true;
            }
            folio::folio_unlock(cx, f); // the reference is now the mapping's
        } else {
            folio::folio_unlock(cx, f);
            folio::folio_put(cx, f);
        }
    }
    mapped_fault
}

/// `finish_fault` / `set_pte_range`: map `page` of `folio` (a reference the caller passes on) at
/// the fault address. `Fallback` means "not mapped, someone else got there".
fn finish_fault(cx: Ctx<'_>, vmf: &Vmf<'_>, folio: FrameRef, page: u32, anon: bool) -> VmFault {
    let _f = cx.cpu.enter("finish_fault");
    if pgtable::pte_alloc(cx, vmf.mm, vmf.pmd).is_err() {
        return VmFault::Oom;
    }
    let Some(l) = pgtable::pte_offset_map_lock(cx, vmf.mm, vmf.pmd) else {
        return VmFault::Fallback;
    };
    let pte = l.pte(vmf.pte_idx(cx));
    // vmf_pte_changed: pte_same with the marker the fault found, or still none.
    let expect = if vmf.orig_uffd_wp_marker {
        Entry::uffd_wp_marker()
    } else {
        Entry::NONE
    };
    if !cx.cpu.recheck("vmf_pte_changed", pte.get(cx) == expect) {
        return VmFault::Fallback;
    }
    let write = vmf.write && (anon || vmf.vma.is_shared(cx));
    if anon {
        let av = vmf.vma.anon_vma(cx).map(|a| a.id).unwrap_or(0);
        vmf.mm.add_rss(MM_ANONPAGES, 1);
        folio::folio_add_new_anon_rmap(cx, folio, av, vmf.pgoff(cx), false);
        folio::folio_set(cx, folio, folio::PG_LRU);
    } else {
        vmf.mm.add_rss(MM_SHMEMPAGES, 1);
        folio::folio_add_rmap_pte(cx, page);
    }
    let mut e = Entry::leaf(page, write, vmf.write);
    if vmf.orig_uffd_wp_marker {
        e = e.mkuffd_wp();
    }
    pte.set(cx, e);
    VmFault::Done
}

/// `do_cow_fault` (6.18): write fault on a missing PTE of a private file mapping: the VMA gets
/// an anon_vma (`vmf_anon_prepare`: under the VMA lock alone it retries with the mmap lock), a new
/// anon folio is allocated, `__do_fault` returns the page-cache folio locked, the page is copied,
/// and `finish_fault` maps the copy writable under the PTL if the PTE is still none.
fn do_cow_fault(cx: Ctx<'_>, vmf: &Vmf<'_>) -> VmFault {
    let _f = cx.cpu.enter("do_cow_fault");
    if let Err(r) = vmf_anon_prepare(cx, vmf) {
        return r;
    }
    let Some(new) = folio::folio_alloc(cx, 0) else {
        return VmFault::Oom;
    };
    let src = match shmem::shmem_fault(cx, vmf) {
        Ok(f) => f,
        Err(r) => {
            folio::folio_put(cx, new);
            return r;
        }
    };
    let src_index = cx
        .cpu
        .page(src.pfn, mmcheck_platform::Access::Read)
        .get(mmcheck_platform::PageField::Index);
    let src_page =
        cx.k.machine
            .frames
            .current(src.pfn + (vmf.pgoff(cx) - src_index) as u32);
    folio::copy_pages(cx, new, src_page, 1);
    folio::folio_mark_uptodate_barrier(cx);
    // LOCKING: the page-cache folio stays locked until the copy is mapped (finish_fault under the
    // PTL with the none recheck): truncation, which locks it to drop it, then finds the copy
    // mapped and its second unmap_mapping_range (even_cows) zaps it.
    let r = finish_fault(cx, vmf, new, new.pfn, true);
    folio::folio_unlock(cx, src);
    folio::folio_put(cx, src);
    if r != VmFault::Done {
        folio::folio_put(cx, new);
        return if r == VmFault::Fallback {
            VmFault::Done
        } else {
            r
        };
    }
    VmFault::Done
}

/// `do_shared_fault`.
fn do_shared_fault(cx: Ctx<'_>, vmf: &Vmf<'_>) -> VmFault {
    let _f = cx.cpu.enter("do_shared_fault");
    let folio = match shmem::shmem_fault(cx, vmf) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let page = folio.pfn
        + (vmf.pgoff(cx)
            - cx.cpu
                .page(folio.pfn, mmcheck_platform::Access::Read)
                .get(mmcheck_platform::PageField::Index)) as u32;
    let r = finish_fault(cx, vmf, folio, page, false);
    if r == VmFault::Done {
        folio::folio_set(cx, folio, folio::PG_DIRTY);
    }
    folio::folio_unlock(cx, folio);
    if r != VmFault::Done {
        folio::folio_put(cx, folio);
        return if r == VmFault::Fallback {
            VmFault::Done
        } else {
            r
        };
    }
    VmFault::Done
}

/// `do_wp_page` (read at 6.8): write (or unshare) fault on a present read-only PTE, PTL held.
fn do_wp_page<'a>(
    cx: Ctx<'a>,
    vmf: &Vmf<'a>,
    ptl: mmcheck_platform::SpinGuard<'a>,
    map: pgtable::PteMap<'a>,
    orig: Entry,
) -> VmFault {
    let _f = cx.cpu.enter("do_wp_page");
    let pte = map.pte(vmf.pte_idx(cx));
    // userfaultfd_pte_wp: the write is the uffd-wp fault user space asked for.
    if !vmf.unshare && orig.uffd_wp() && crate::mm::userfaultfd::userfaultfd_wp(cx, vmf.vma) {
        drop(ptl);
        drop(map);
        return crate::mm::userfaultfd::handle_userfault(cx, vmf.vma, VmFlags::UFFD_WP);
    }
    if vmf.vma.is_shared(cx) {
        // wp_page_shared → wp_page_reuse (shmem has no page_mkwrite). Unshare faults never
        // reach a shared mapping (gup_must_unshare is false for page-cache pages).
        pte.set(cx, orig.with(Entry::RW | Entry::DIRTY | Entry::ACCESSED));
        if let Some(p) = vm_normal_page(cx, orig) {
            folio::folio_set(cx, page_folio(cx, p), folio::PG_DIRTY);
        }
        return VmFault::Done;
    }
    let page = vm_normal_page(cx, orig);
    if let Some(p) = page {
        let f = page_folio(cx, p);
        // An exclusive anon page is reused at once; otherwise wp_can_reuse_anon_folio decides.
        if folio::folio_test_anon(cx, f)
            && (folio::page_anon_exclusive(cx, p) || wp_can_reuse_anon_folio(cx, vmf.vma, f))
        {
            if !folio::page_anon_exclusive(cx, p) {
                folio::set_page_anon_exclusive(cx, p);
            }
            if vmf.unshare {
                return VmFault::Done; // exclusive now: GUP retries and pins it
            }
            // wp_page_reuse
            pte.set(cx, orig.with(Entry::RW | Entry::DIRTY | Entry::ACCESSED));
            return VmFault::Done;
        }
        folio::folio_ref_add(cx, f, 1);
    }
    drop(ptl);
    drop(map);
    wp_page_copy(cx, vmf, orig, page)
}

/// `wp_can_reuse_anon_folio` (6.8; PTL held): an anon folio is ours alone if its only
/// reference is our mapping's, checked again under the folio lock (a trylock: a locked folio is
/// copied). Large folios are never reused (6.16 reuses one mapped only by this mm).
fn wp_can_reuse_anon_folio(cx: Ctx<'_>, vma: &Vma, f: FrameRef) -> bool {
    if folio::folio_order(cx, f) != 0 {
        return false;
    }
    // No KSM or LRU caches in the model: the early checks reduce to this one (the swap cache
    // holds a reference of its own; only read with swap on).
    let swapcache = cx.k.swap.is_some() && folio::folio_test(cx, f, folio::PG_SWAPCACHE);
    if folio::folio_ref_count(cx, f) > 1 + i64::from(swapcache) {
        return false;
    }
    if !folio::folio_trylock(cx, f) {
        return false;
    }
    if swapcache {
        crate::mm::swapfile::folio_free_swap(cx, f);
    }
    // The reference count again, now under the folio lock.
    if !cx
        .cpu
        .recheck("folio_ref_count", folio::folio_ref_count(cx, f) == 1)
    {
        folio::folio_unlock(cx, f);
        return false;
    }
    // folio_move_anon_rmap: the folio moves to this VMA's own anon_vma (folio lock held).
    if let Some(av) = vma.anon_vma(cx) {
        cx.cpu.page(f.pfn, mmcheck_platform::Access::Write).set(
            mmcheck_platform::PageField::Mapping,
            folio::mapping_anon(av.id),
        );
    }
    folio::folio_unlock(cx, f);
    true
}

/// `wp_page_copy`: copy the old page (or zeroes) into a new anon page and switch the PTE.
fn wp_page_copy(cx: Ctx<'_>, vmf: &Vmf<'_>, orig: Entry, old_page: Option<u32>) -> VmFault {
    let _f = cx.cpu.enter("wp_page_copy");
    let old_folio = old_page.map(|p| page_folio(cx, p));
    let put_old = |cx: Ctx<'_>| {
        if let Some(f) = old_folio {
            folio::folio_put(cx, f);
        }
    };
    let av = match vmf_anon_prepare(cx, vmf) {
        Ok(av) => av,
        Err(r) => {
            put_old(cx);
            return r;
        }
    };
    let Some(new) = folio::folio_alloc(cx, 0) else {
        put_old(cx);
        return VmFault::Oom;
    };
    if let Some(p) = old_page {
        let v = cx.cpu.data_read(cx.cpu.frame_ref(p));
        cx.cpu.data_init(new, v);
    }
    folio::folio_mark_uptodate_barrier(cx);
    let Some(l) = pgtable::pte_offset_map_lock(cx, vmf.mm, vmf.pmd) else {
        folio::folio_put(cx, new);
        put_old(cx);
        return VmFault::Done;
    };
    let pte = l.pte(vmf.pte_idx(cx));
    if !cx.cpu.recheck("pte_same", pte.get(cx) == orig) {
        drop(l);
        folio::folio_put(cx, new);
        put_old(cx);
        return VmFault::Done;
    }
    match old_folio {
        Some(f) if !folio::folio_test_anon(cx, f) => {
            vmf.mm.add_rss(MM_SHMEMPAGES, -1);
            vmf.mm.add_rss(MM_ANONPAGES, 1);
        }
        Some(_) => {}
        None => vmf.mm.add_rss(MM_ANONPAGES, 1),
    }
    // ptep_clear_flush: no CPU may keep writing the old page through a stale translation.
    pte.xchg(cx, Entry::NONE);
    cx.cpu.flush_tlb_range(
        vmf.mm.id,
        vmf.addr >> cx.geo().page_shift,
        (vmf.addr >> cx.geo().page_shift) + 1,
        false,
    );
    folio::folio_add_new_anon_rmap(cx, new, av, vmf.pgoff(cx), false);
    folio::folio_set(cx, new, folio::PG_LRU);
    // An unshare copy stays read-only (and clean); a write makes it writable and dirty.
    let write = !vmf.unshare && vmf.vma.flags(cx).has(VmFlags::WRITE);
    pte.set(cx, Entry::leaf(new.pfn, write, write));
    if let Some(p) = old_page {
        folio::folio_remove_rmap_pte(cx, p);
    }
    drop(l);
    if let Some(f) = old_folio {
        crate::mm::swapfile::free_swap_cache(cx, f);
        folio::folio_put(cx, f); // the old mapping's reference
    }
    put_old(cx); // do_wp_page's temporary reference
    VmFault::Done
}

/// `lock_vma_under_rcu` result: a VMA whose per-VMA read lock is held; drop is `vma_end_read`.
pub struct VmaReadLocked<'a> {
    pub vma: Arc<Vma>,
    cx: Ctx<'a>,
    /// The mmap read lock, kept for the whole operation on a kernel without userfaultfd's
    /// per-VMA locks (`uffd_lock_vma` with `uffd.vma_lock` off: before 6.9 `mfill_atomic` held
    /// `mmap_read_lock` throughout);
    /// released after the VMA lock.
    _mmap: Option<mmcheck_platform::mmap_lock::MmapReadGuard<'a>>,
}

impl<'a> VmaReadLocked<'a> {
    /// A VMA whose read lock the caller took itself (`vma_start_read_locked` under the mmap
    /// read lock).
    pub(crate) fn read_locked(cx: Ctx<'a>, vma: Arc<Vma>) -> Self {
        VmaReadLocked {
            vma,
            cx,
            _mmap: None,
        }
    }

    /// [`Self::read_locked`], still holding the mmap read lock `mmap` until it is dropped.
    pub(crate) fn under_mmap_lock(
        cx: Ctx<'a>,
        vma: Arc<Vma>,
        mmap: mmcheck_platform::mmap_lock::MmapReadGuard<'a>,
    ) -> Self {
        VmaReadLocked {
            vma,
            cx,
            _mmap: Some(mmap),
        }
    }
}

impl Drop for VmaReadLocked<'_> {
    fn drop(&mut self) {
        self.vma.lock.end_read(self.cx.cpu);
    }
}

/// `lock_vma_under_rcu` (`mm/mmap_lock.c`, 6.15+ refcount era): RCU lookup, try
/// `vma_start_read` (retry the lookup if the VMA was detached), check `vma->vm_mm` (a
/// `SLAB_TYPESAFE_BY_RCU` VMA may have been reused by another mm: `vma_start_read.vm_mm_check`),
/// leave RCU, then check the range (`lock_vma_under_rcu.range_check`). A fault below a
/// `VM_GROWSDOWN` VMA finds no VMA here (the walk is `vma_lookup`), so it falls back to
/// `lock_mm_and_find_vma`, which may expand the stack. `lock_vma_under_rcu.anon_vma_check` adds the 6.4–6.6 refusal of file VMAs and of
/// anonymous VMAs without an anon_vma, before or after `vma_start_read`.
pub fn lock_vma_under_rcu<'a>(
    cx: Ctx<'a>,
    mm: &'a MmStruct,
    addr: u64,
) -> Option<VmaReadLocked<'a>> {
    let _f = cx.cpu.enter("lock_vma_under_rcu");
    let check = cx.proto().lvur_anon_vma_check;
    let rcu = cx.cpu.rcu_read_lock();
    let vma = loop {
        let vma = mm.vma_lookup(cx, addr)?;
        if check != AnonVmaCheck::None {
            // 6.4–6.6: only anonymous VMAs (vma_is_anonymous reads vm_ops, fixed per VMA).
            if !vma.is_anonymous() {
                return None;
            }
            // 6.4: "find_mergeable_anon_vma uses adjacent vmas which are not locked", checked
            // before the VMA is locked (a type-safe read under RCU).
            if check == AnonVmaCheck::BeforeStartRead && vma.anon_vma(cx).is_none() {
                return None;
            }
        }
        match vma.lock.start_read_raw(cx.cpu, &mm.mmap_lock) {
            Ok(()) => break vma,
            Err(mmcheck_platform::VmaStartRead::Detached) => continue,
            Err(mmcheck_platform::VmaStartRead::Locked) => return None,
        }
    };
    let locked = VmaReadLocked {
        vma,
        cx,
        _mmap: None,
    };
    // vma_start_read: a VMA reused (SLAB_TYPESAFE_BY_RCU) for another mm is not ours; drop the
    // reference just taken (err_unstable: vma_refcount_put, with the foreign mm grabbed).
    if cx.proto().vma_start_read_mm_check
        && !cx.cpu.recheck("vm_mm", locked.vma.vm_mm_racy(cx) == mm.id)
    {
        return None;
    }
    if check == AnonVmaCheck::AfterStartRead
        && !cx
            .cpu
            .recheck("anon_vma", locked.vma.anon_vma(cx).is_some())
    {
        // 657b5146955e: checked under the VMA lock, which MREMAP_DONTUNMAP's
        // unlink_anon_vmas (under vma_start_write) cannot race.
        return None;
    }
    drop(rcu);
    // "Check if the vma we locked is the right one": it may have shrunk, or been freed and
    // reused for another range, between the walk and vma_start_read.
    if cx.proto().lvur_range_check && !cx.cpu.recheck("vma_range", locked.vma.contains(cx, addr)) {
        return None;
    }
    Some(locked)
}

/// `do_user_addr_fault` (x86): try the per-VMA lock, fall back to the mmap lock.
pub fn do_user_addr_fault(cx: Ctx<'_>, mm: &MmStruct, addr: u64, write: bool) -> Result<(), Errno> {
    let _f = cx.cpu.enter("do_user_addr_fault");
    if cx.proto().per_vma_lock {
        if let Some(l) = lock_vma_under_rcu(cx, mm, addr) {
            let r = handle_mm_fault(cx, mm, &l.vma, addr, write, true);
            drop(l);
            match r {
                VmFault::Retry => {}
                other => return fault_result(other),
            }
        }
    }
    let mut tries = 0;
    loop {
        let Some((g, vma)) = crate::mm::stack::lock_mm_and_find_vma(cx, mm, addr) else {
            return Err(Errno::Sigsegv);
        };
        let r = handle_mm_fault(cx, mm, &vma, addr, write, false);
        drop(g);
        tries += 1;
        if r != VmFault::Retry || tries > 2 {
            return fault_result(r);
        }
    }
}

fn fault_result(r: VmFault) -> Result<(), Errno> {
    match r {
        VmFault::Done | VmFault::Fallback | VmFault::Retry => Ok(()),
        VmFault::Oom => Err(Errno::Enomem),
        VmFault::Sigbus => Err(Errno::Sigbus),
        VmFault::Sigsegv => Err(Errno::Sigsegv),
    }
}
