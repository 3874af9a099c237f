//! Huge PMDs (`mm/huge_memory.c`, ≈6.14–6.18; `do_huge_pmd_wp_page` and `__split_huge_pmd*`
//! read at 6.8, `do_huge_zero_wp_pmd` in its 6.13 commit): `do_huge_pmd_anonymous_page` with a deposited table, the huge zero folio,
//! `zap_huge_pmd`, `__split_huge_pmd`, and the huge write-protect and accessed paths. THP is in madvise mode: only `VM_HUGEPAGE` anonymous VMAs get huge PMDs.

use crate::arch::pgtable::Entry;
use crate::mm::folio;
use crate::mm::memory::{VmFault, Vmf};
use crate::mm::mmu_gather::MmuGather;
use crate::mm::pgtable::{self, EntryPtr};
use crate::mm::types::{MmStruct, VmFlags, Vma, MM_ANONPAGES};
use crate::Ctx;
use mmcheck_platform::{FrameKind, FrameRef};
use std::sync::Arc;

/// `thp_vma_allowable_order` at PMD order for a fault at `addr`.
pub fn thp_vma_allowable(cx: Ctx<'_>, vma: &Vma, addr: u64) -> bool {
    let g = cx.geo();
    let haddr = addr & g.pmd_mask();
    vma.is_anonymous()
        && !vma.is_shared(cx)
        && vma.flags(cx).has(VmFlags::HUGEPAGE)
        && !vma.flags(cx).has(VmFlags::NOHUGEPAGE)
        && haddr >= vma.start(cx)
        && haddr + g.pmd_size() <= vma.end(cx)
}

/// The huge zero folio, allocated on first use and never freed (`mm_get_huge_zero_folio`).
pub fn huge_zero_folio(cx: Ctx<'_>) -> Option<FrameRef> {
    if let Some(z) = cx.k.huge_zero.read(&cx.cpu, |z| *z) {
        return Some(z);
    }
    // `get_huge_zero_folio`: allocate, then install unless another CPU won the race.
    let new =
        cx.k.machine
            .frames
            .alloc(&cx.cpu, cx.geo().pmd_order(), FrameKind::Data)?;
    let won = cx.k.huge_zero.write(&cx.cpu, |z| match *z {
        Some(other) => other,
        None => {
            *z = Some(new);
            new
        }
    });
    if won != new {
        cx.k.machine.frames.free(&cx.cpu, new, cx.geo().pmd_order());
    }
    Some(won)
}

/// `is_huge_zero_pmd` (`READ_ONCE(huge_zero_pfn)`, announced).
pub fn is_huge_zero_pmd(cx: Ctx<'_>, pmd: Entry) -> bool {
    pmd.huge_leaf()
        && cx
            .k
            .huge_zero
            .read(&cx.cpu, |z| z.is_some_and(|z| z.pfn == pmd.pfn()))
}

/// `pgtable_trans_huge_deposit` (PMD lock held).
pub fn deposit(cx: Ctx<'_>, pmd: EntryPtr, table: FrameRef) {
    cx.cpu
        .page(pmd.table.pfn, mmcheck_platform::Access::Rmw)
        .deposit_push(table.pfn);
}

/// `pgtable_trans_huge_withdraw` (PMD lock held).
pub fn withdraw(cx: Ctx<'_>, pmd: EntryPtr) -> Option<FrameRef> {
    let pfn = cx
        .cpu
        .page(pmd.table.pfn, mmcheck_platform::Access::Rmw)
        .deposit_pop()?;
    Some(cx.cpu.frame_ref(pfn))
}

/// `do_huge_pmd_anonymous_page`.
pub fn do_huge_pmd_anonymous_page(cx: Ctx<'_>, vmf: &Vmf<'_>) -> VmFault {
    let _f = cx.cpu.enter("do_huge_pmd_anonymous_page");
    let g = cx.geo();
    let haddr = vmf.addr & g.pmd_mask();
    let av = match vmf.vma.anon_vma(cx) {
        Some(av) => av.id,
        None if vmf.vma_locked => return VmFault::Retry,
        None => match crate::mm::rmap::anon_vma_prepare(cx, vmf.mm, vmf.vma) {
            Ok(av) => av.id,
            Err(_) => return VmFault::Oom,
        },
    };
    let Some(pgtable) = pgtable::alloc_table(cx, 1) else {
        return VmFault::Oom;
    };
    if !vmf.write && cx.proto().huge_zero_page {
        let Some(zero) = huge_zero_folio(cx) else {
            pgtable::free_table(cx, pgtable);
            return VmFault::Fallback;
        };
        let ptl = pgtable::pmd_lock(cx, vmf.mm, vmf.pmd);
        if vmf.pmd.get(cx).is_none() {
            if crate::mm::userfaultfd::userfaultfd_missing(cx, vmf.vma) {
                drop(ptl);
                pgtable::free_table(cx, pgtable);
                return crate::mm::userfaultfd::handle_userfault(
                    cx,
                    vmf.vma,
                    VmFlags::UFFD_MISSING,
                );
            }
            deposit(cx, vmf.pmd, pgtable);
            pgtable::mm_inc_nr_tables(vmf.mm, 1, 1);
            vmf.pmd
                .set(cx, Entry::huge(zero.pfn, false, false).with(Entry::SPECIAL));
            return VmFault::Done;
        }
        drop(ptl);
        pgtable::free_table(cx, pgtable);
        return VmFault::Done;
    }
    let Some(f) = folio::folio_alloc(cx, g.pmd_order()) else {
        pgtable::free_table(cx, pgtable);
        return VmFault::Fallback;
    };
    // vma_alloc_anon_folio_pmd: folio_zero_user, then __folio_mark_uptodate before set_pmd_at.
    folio::folio_mark_uptodate_barrier(cx);
    let ptl = pgtable::pmd_lock(cx, vmf.mm, vmf.pmd);
    if !cx.cpu.recheck("pmd_none", vmf.pmd.get(cx).is_none()) {
        drop(ptl);
        folio::folio_put(cx, f);
        pgtable::free_table(cx, pgtable);
        return VmFault::Done;
    }
    // __do_huge_pmd_anonymous_page: deliver a missing fault of a registered VMA to userspace.
    if crate::mm::userfaultfd::userfaultfd_missing(cx, vmf.vma) {
        drop(ptl);
        folio::folio_put(cx, f);
        pgtable::free_table(cx, pgtable);
        return crate::mm::userfaultfd::handle_userfault(cx, vmf.vma, VmFlags::UFFD_MISSING);
    }
    let writable = vmf.vma.flags(cx).has(VmFlags::WRITE);
    folio::folio_add_new_anon_rmap(cx, f, av, vmf.vma.linear_page_index(cx, haddr), true);
    folio::folio_set(cx, f, folio::PG_LRU);
    deposit(cx, vmf.pmd, pgtable);
    vmf.mm.add_rss(MM_ANONPAGES, 1 << g.pmd_order());
    pgtable::mm_inc_nr_tables(vmf.mm, 1, 1);
    vmf.pmd.set(cx, Entry::huge(f.pfn, writable, writable));
    drop(ptl);
    VmFault::Done
}

/// `do_huge_pmd_wp_page` (read at 6.8, and the 6.13 `do_huge_zero_wp_pmd`): on the huge zero
/// PMD, 6.13+ (`thp.zero_wp_alloc`) replaces it by a new THP and falls back to the split only if
/// the allocation fails; 5.8–6.12 always split it into zero-page PTEs and let the PTE path
/// (`do_wp_page` → `wp_page_copy`) COW one page. An anon THP is reused when its head is
/// `PageAnonExclusive`, or when it is ours alone under the folio lock; otherwise it is split.
pub fn do_huge_pmd_wp_page(cx: Ctx<'_>, vmf: &Vmf<'_>, orig: Entry) -> VmFault {
    let _f = cx.cpu.enter("do_huge_pmd_wp_page");
    if is_huge_zero_pmd(cx, orig) {
        if cx.proto().huge_zero_wp_alloc {
            let r = do_huge_zero_wp_pmd(cx, vmf, orig);
            if r != VmFault::Fallback {
                return r;
            }
        }
        return wp_huge_fallback(cx, vmf);
    }
    let ptl = pgtable::pmd_lockptr(cx, vmf.mm, vmf.pmd);
    let mut g = ptl.lock(cx.cpu);
    if !cx.cpu.recheck("pmd_same", vmf.pmd.get(cx) == orig) {
        return VmFault::Done;
    }
    let f = cx.cpu.frame_ref(orig.pfn());
    // Early check when only holding the PMD lock.
    let reuse = if folio::page_anon_exclusive(cx, f.pfn) {
        true
    } else {
        if !folio::folio_trylock(cx, f) {
            folio::folio_ref_add(cx, f, 1);
            drop(g);
            folio::folio_lock(cx, f);
            g = ptl.lock(cx.cpu);
            if !cx.cpu.recheck("pmd_same", vmf.pmd.get(cx) == orig) {
                drop(g);
                folio::folio_unlock(cx, f);
                folio::folio_put(cx, f);
                return VmFault::Done;
            }
            folio::folio_put(cx, f);
        }
        // Recheck after temporarily dropping the PMD lock.
        if folio::page_anon_exclusive(cx, f.pfn) {
            folio::folio_unlock(cx, f);
            true
        } else if folio::folio_ref_count(cx, f) == 1 {
            // folio_move_anon_rmap, SetPageAnonExclusive.
            if let Some(av) = vmf.vma.anon_vma(cx) {
                cx.cpu.page(f.pfn, mmcheck_platform::Access::Write).set(
                    mmcheck_platform::PageField::Mapping,
                    folio::mapping_anon(av.id),
                );
            }
            folio::set_page_anon_exclusive(cx, f.pfn);
            folio::folio_unlock(cx, f);
            true
        } else {
            folio::folio_unlock(cx, f);
            false
        }
    };
    if !reuse {
        drop(g);
        return wp_huge_fallback(cx, vmf);
    }
    if !vmf.unshare {
        vmf.pmd
            .set(cx, orig.with(Entry::RW | Entry::DIRTY | Entry::ACCESSED));
    }
    drop(g);
    VmFault::Done
}

/// `do_huge_zero_wp_pmd` (6.13+): allocate a zeroed THP, then under the PMD lock, if the PMD is
/// still the huge zero PMD, clear and flush it (`pmdp_huge_clear_flush`) and map the THP
/// (`map_anon_folio_pmd`; the zero PMD's deposited table stays deposited).
fn do_huge_zero_wp_pmd(cx: Ctx<'_>, vmf: &Vmf<'_>, orig: Entry) -> VmFault {
    let _f = cx.cpu.enter("do_huge_zero_wp_pmd");
    let g = cx.geo();
    let haddr = vmf.addr & g.pmd_mask();
    let Some(f) = folio::folio_alloc(cx, g.pmd_order()) else {
        return VmFault::Fallback;
    };
    folio::folio_mark_uptodate_barrier(cx); // vma_alloc_anon_folio_pmd
    let ptl = pgtable::pmd_lock(cx, vmf.mm, vmf.pmd);
    if !cx.cpu.recheck("pmd_same", vmf.pmd.get(cx) == orig) {
        drop(ptl);
        folio::folio_put(cx, f);
        return VmFault::Done;
    }
    vmf.pmd.xchg(cx, Entry::NONE);
    let hvpn = haddr >> g.page_shift;
    cx.cpu
        .flush_tlb_range(vmf.mm.id, hvpn, hvpn + g.entries() as u64, false);
    // map_anon_folio_pmd (VM_BUG_ON(!vma->anon_vma) in do_huge_pmd_wp_page: the huge zero
    // fault prepared it).
    let av = vmf.vma.anon_vma(cx).map(|a| a.id).unwrap_or(0);
    let writable = vmf.vma.flags(cx).has(VmFlags::WRITE);
    folio::folio_add_new_anon_rmap(cx, f, av, vmf.vma.linear_page_index(cx, haddr), true);
    folio::folio_set(cx, f, folio::PG_LRU);
    vmf.pmd.set(cx, Entry::huge(f.pfn, writable, writable));
    vmf.mm.add_rss(MM_ANONPAGES, 1 << g.pmd_order());
    drop(ptl);
    VmFault::Done
}

/// The `fallback:` of `do_huge_pmd_wp_page`: split the PMD (it takes the PMD lock and rechecks
/// the entry itself) and let `handle_pte_fault` COW one page.
fn wp_huge_fallback(cx: Ctx<'_>, vmf: &Vmf<'_>) -> VmFault {
    __split_huge_pmd(cx, vmf.mm, vmf.vma, vmf.pmd, vmf.addr);
    VmFault::Fallback
}

/// `huge_pmd_set_accessed`.
pub fn huge_pmd_set_accessed(cx: Ctx<'_>, vmf: &Vmf<'_>, orig: Entry) {
    let _ptl = pgtable::pmd_lock(cx, vmf.mm, vmf.pmd);
    if vmf.pmd.get(cx) == orig && !orig.young() {
        vmf.pmd.set(cx, orig.with(Entry::ACCESSED));
    }
}

/// `do_huge_pmd_numa_page`: under the PMD lock, if the PMD is unchanged (`pmd_same`), restore it
/// in place (the model never migrates): accessible, young, writable if an exclusive anon THP in
/// a writable VMA (`can_change_pmd_writable`).
pub fn do_huge_pmd_numa_page(cx: Ctx<'_>, vmf: &Vmf<'_>, orig: Entry) -> VmFault {
    let _f = cx.cpu.enter("do_huge_pmd_numa_page");
    let _ptl = pgtable::pmd_lock(cx, vmf.mm, vmf.pmd);
    if !cx.cpu.recheck("pmd_same", vmf.pmd.get(cx) == orig) {
        return VmFault::Done;
    }
    let mut e = orig.mk_accessible().with(Entry::ACCESSED);
    let f = cx.cpu.frame_ref(orig.pfn());
    if vmf.vma.flags(cx).has(crate::mm::types::VmFlags::WRITE)
        && folio::folio_test_anon(cx, f)
        && folio::page_anon_exclusive(cx, orig.pfn())
    {
        e = e.with(Entry::RW);
    }
    vmf.pmd.set(cx, e);
    VmFault::Done
}

/// `zap_deposited_table`.
fn zap_deposited_table(cx: Ctx<'_>, mm: &MmStruct, pmd: EntryPtr) {
    if let Some(t) = withdraw(cx, pmd) {
        pgtable::free_table(cx, t);
        pgtable::mm_inc_nr_tables(mm, 1, -1);
    }
}

/// `zap_huge_pmd`: clear a huge PMD, or a PMD migration entry, under its lock and queue the
/// folio. A migration entry holds neither a mapping nor a reference of the folio: the zap only
/// frees the deposited table and the rss (no TLB flush, no page to free).
pub fn zap_huge_pmd(cx: Ctx<'_>, tlb: &mut MmuGather<'_>, pmd: EntryPtr, addr: u64) -> bool {
    let _f = cx.cpu.enter("zap_huge_pmd");
    let mm = tlb.mm;
    let ptl = pgtable::pmd_lock(cx, mm, pmd);
    let orig = pmd.get(cx);
    // __pmd_trans_huge_lock: a huge leaf or a migration entry, else raced with a split.
    if orig.is_migration() {
        pmd.xchg(cx, Entry::NONE);
        zap_deposited_table(cx, mm, pmd);
        mm.add_rss(MM_ANONPAGES, -(1 << cx.geo().pmd_order()));
        return true;
    }
    if !cx.cpu.recheck("pmd_trans_huge", orig.huge_leaf()) {
        return false;
    }
    pmd.xchg(cx, Entry::NONE);
    tlb.add_range(cx, addr & cx.geo().pmd_mask(), cx.geo().pmd_size());
    zap_deposited_table(cx, mm, pmd);
    if !is_huge_zero_pmd(cx, orig) {
        let f = cx.cpu.frame_ref(orig.pfn());
        folio::folio_remove_rmap_pmd(cx, f);
        mm.add_rss(MM_ANONPAGES, -(1 << cx.geo().pmd_order()));
        drop(ptl);
        if tlb.remove_page(cx, f) {
            tlb.flush_mmu(cx);
        }
    }
    true
}

/// `pmdp_invalidate` (PMD lock held): replace the PMD by `pmd_mkinvalid` of its value, flush
/// the range, return the old value. On a present huge PMD the result is "not present, still
/// huge to software" (x86: `_PAGE_PSE` kept), which lockless readers skip and locked ones wait
/// out. It is only defined for present PMDs (VM_WARN_ON_ONCE since 3a5a8d343e1c); what it makes
/// of a swap PMD is the `arch.pmd_mkinvalid_nonpresent` switch.
pub fn pmdp_invalidate(cx: Ctx<'_>, mm: &MmStruct, pmd: EntryPtr, addr: u64) -> Entry {
    let _f = cx.cpu.enter("pmdp_invalidate");
    let g = cx.geo();
    let old = pmd.get(cx);
    let new = if old.present() {
        old.without(Entry::PRESENT)
    } else {
        let reads_present = cx.proto().pmd_mkinvalid_nonpresent
            == crate::protocol::MkinvalidNonpresent::ReadsPresent;
        old.mkinvalid_nonpresent(reads_present)
    };
    let old = pmd.xchg(cx, new);
    let hvpn = (addr & g.pmd_mask()) >> g.page_shift;
    cx.cpu
        .flush_tlb_range(mm.id, hvpn, hvpn + g.entries() as u64, false);
    old
}

/// The type of the migration entry replacing a mapping: writable, read-only of an exclusive anon
/// page, or read-only (`make_{writable,readable_exclusive,readable}_migration_entry`).
pub fn migration_type(write: bool, anon_exclusive: bool) -> u64 {
    if write {
        Entry::SWP_MIGRATION_WRITE
    } else if anon_exclusive {
        Entry::SWP_MIGRATION_READ_EXCLUSIVE
    } else {
        Entry::SWP_MIGRATION_READ
    }
}

/// `set_pmd_migration_entry` (PMD lock held, from `try_to_migrate_one`): invalidate and flush the
/// PMD, then, unless a maybe-pinned exclusive anon folio must stay mapped
/// (`folio_try_share_anon_rmap_pmd`: the PMD is invalidated first so GUP-fast sees the change or
/// the folio no longer exclusive), install the migration entry and drop the PMD mapping and its
/// reference. Returns false (`-EBUSY`) when it restored the PMD.
pub fn set_pmd_migration_entry(
    cx: Ctx<'_>,
    mm: &MmStruct,
    pmd: EntryPtr,
    addr: u64,
    f: FrameRef,
) -> bool {
    let _f = cx.cpu.enter("set_pmd_migration_entry");
    let pmdval = pmdp_invalidate(cx, mm, pmd, addr);
    let anon_exclusive = folio::folio_test_anon(cx, f) && folio::page_anon_exclusive(cx, f.pfn);
    if anon_exclusive && !folio::folio_try_share_anon_rmap_pte(cx, f, f.pfn) {
        pmd.set(cx, pmdval);
        return false;
    }
    if pmdval.dirty() {
        folio::folio_set(cx, f, folio::PG_DIRTY);
    }
    let ty = migration_type(pmdval.write(), anon_exclusive);
    pmd.set(cx, Entry::swp(ty, pmdval.pfn()));
    folio::folio_remove_rmap_pmd(cx, f);
    folio::folio_put(cx, f);
    true
}

/// `remove_migration_pmd` (PMD lock held, from `remove_migration_pte`): map `new` where the PMD
/// migration entry is, writable if the entry was, `RMAP_EXCLUSIVE` unless it was a plain
/// read-only entry. No flush: the entry was not present.
pub fn remove_migration_pmd(cx: Ctx<'_>, pmd: EntryPtr, entry: Entry, new: FrameRef) {
    let _f = cx.cpu.enter("remove_migration_pmd");
    let ty = entry.swp_type();
    let write = ty == Entry::SWP_MIGRATION_WRITE;
    folio::folio_ref_add(cx, new, 1);
    folio::folio_add_rmap_pmd(cx, new);
    if ty != Entry::SWP_MIGRATION_READ && folio::folio_test_anon(cx, new) {
        folio::set_page_anon_exclusive(cx, new.pfn);
    }
    pmd.set(cx, Entry::huge(new.pfn, write, write));
}

/// `pmd_migration_entry_wait`: under the PMD lock, if the PMD still holds a migration entry,
/// wait for its folio to be unlocked (`migration_entry_wait_on_locked`, which drops the lock).
pub fn pmd_migration_entry_wait(cx: Ctx<'_>, mm: &MmStruct, pmd: EntryPtr) {
    let _f = cx.cpu.enter("pmd_migration_entry_wait");
    let ptl = pgtable::pmd_lock(cx, mm, pmd);
    let e = pmd.get(cx);
    drop(ptl);
    if e.is_migration() {
        crate::mm::migrate::migration_entry_wait(cx, e);
    }
}

/// `__split_huge_pmd` → `__split_huge_pmd_locked` (read at 6.8 and 6.10): under the PMD lock,
/// if the entry is still a huge PMD or a PMD migration entry, replace it by the deposited table
/// filled with one entry per page. The huge zero PMD goes through `__split_huge_zero_page_pmd`:
/// cleared and flushed (`pmdp_huge_clear_flush`), then the table of read-only zero-page PTEs is
/// populated. An anon THP is invalidated (`pmdp_invalidate`), and each page inherits the head's
/// `PageAnonExclusive` (`RMAP_EXCLUSIVE`). With `freeze` (`unmap_folio` of `split_huge_page`,
/// `TTU_SPLIT_HUGE_PMD`) each page gets a migration entry instead, and the PMD's mapping and
/// reference go. A migration entry becomes one PTE migration entry per page, of the same type;
/// 6.10+ leaves it in the PMD until the table is populated, 4.14–6.9
/// (`split.invalidate_nonpresent`) ran `pmdp_invalidate` on it first.
pub fn __split_huge_pmd(cx: Ctx<'_>, mm: &MmStruct, vma: &Arc<Vma>, pmd: EntryPtr, addr: u64) {
    __split_huge_pmd_freeze(cx, mm, vma, pmd, addr, false, None);
}

/// `__split_huge_pmd` with its `freeze` argument (`split_huge_pmd_address` from `unmap_folio`).
pub fn __split_huge_pmd_freeze(
    cx: Ctx<'_>,
    mm: &MmStruct,
    _vma: &Arc<Vma>,
    pmd: EntryPtr,
    addr: u64,
    freeze: bool,
    folio: Option<FrameRef>,
) {
    let _f = cx.cpu.enter("__split_huge_pmd");
    let g = cx.geo();
    let _ptl = pgtable::pmd_lock(cx, mm, pmd);
    let orig = pmd.get(cx);
    let migration = orig.is_migration();
    if !migration
        && !cx
            .cpu
            .recheck("pmd_trans_huge", orig.huge_leaf() && orig.present())
    {
        return;
    }
    // split_huge_pmd_locked with a folio (`split_huge_pmd_address` for `try_to_migrate`): only
    // the PMD that maps it, judged under the lock.
    if folio.is_some_and(|f| orig.pfn() != f.pfn) {
        return;
    }
    let _l = cx.cpu.enter("__split_huge_pmd_locked");
    let hvpn = (addr & g.pmd_mask()) >> g.page_shift;
    if !migration && is_huge_zero_pmd(cx, orig) {
        // __split_huge_zero_page_pmd: the PMD stays empty until the PTEs are filled.
        pmd.xchg(cx, Entry::NONE);
        cx.cpu
            .flush_tlb_range(mm.id, hvpn, hvpn + g.entries() as u64, false);
        let Some(table) = withdraw(cx, pmd) else {
            cx.cpu
                .warn_on(true, "split of a huge zero PMD without a deposited table");
            return;
        };
        for i in 0..g.entries() {
            let e = Entry::leaf(cx.k.zero_page.pfn, false, false).with(Entry::SPECIAL);
            cx.cpu.entry_write(table, i, e.0);
        }
        cx.cpu.smp_wmb(); // make the PTEs visible before the PMD
        pmd.set(cx, Entry::table(table.pfn));
        return;
    }
    let orig = if migration {
        if cx.proto().split_invalidate_nonpresent {
            // Before 6.10: pmdp_invalidate first, whatever the PMD holds; the old value it
            // returns is still the migration entry, which is what the split reads.
            pmdp_invalidate(cx, mm, pmd, addr)
        } else {
            orig
        }
    } else {
        // pmdp_invalidate: not present (but still "huge" to software), TLB flushed.
        pmdp_invalidate(cx, mm, pmd, addr)
    };
    let Some(table) = withdraw(cx, pmd) else {
        cx.cpu
            .warn_on(true, "split of a huge PMD without a deposited table");
        return;
    };
    let head = orig.pfn();
    if migration {
        // Each page gets a migration entry of the PMD entry's type; no rmap or reference
        // changes (the migration entry holds neither).
        let ty = orig.swp_type();
        for i in 0..g.entries() {
            cx.cpu
                .entry_write(table, i, Entry::swp(ty, head + i as u32).0);
        }
        cx.cpu.smp_wmb();
        pmd.set(cx, Entry::table(table.pfn));
        return;
    }
    let f = cx.cpu.frame_ref(head);
    let anon = folio::folio_test_anon(cx, f);
    let anon_exclusive = anon && folio::page_anon_exclusive(cx, head);
    if freeze && anon_exclusive && !folio::folio_try_share_anon_rmap_pte(cx, f, head) {
        // __split_huge_pmd_locked: a pinned exclusive folio cannot be frozen; map it with
        // present PTEs (freeze = false), as the kernel does when the share fails.
        return split_to_ptes(cx, pmd, table, orig, f, anon_exclusive, false);
    }
    split_to_ptes(cx, pmd, table, orig, f, anon_exclusive, freeze)
}

/// The tail of `__split_huge_pmd_locked` for an invalidated present PMD: fill `table` with
/// present PTEs (or, frozen, with migration entries), then populate the PMD.
fn split_to_ptes(
    cx: Ctx<'_>,
    pmd: EntryPtr,
    table: FrameRef,
    orig: Entry,
    f: FrameRef,
    anon_exclusive: bool,
    freeze: bool,
) {
    let g = cx.geo();
    let head = orig.pfn();
    for i in 0..g.entries() {
        let page = head + i as u32;
        let e = if freeze {
            Entry::swp(migration_type(orig.write(), anon_exclusive), page)
        } else {
            folio::folio_add_rmap_pte(cx, page);
            if anon_exclusive {
                folio::set_page_anon_exclusive(cx, page);
            }
            let mut e = Entry::leaf(page, orig.write(), orig.dirty());
            if !orig.young() {
                e = e.without(Entry::ACCESSED);
            }
            e
        };
        cx.cpu.entry_write(table, i, e.0);
    }
    if freeze && orig.dirty() {
        folio::folio_set(cx, f, folio::PG_DIRTY);
    }
    folio::folio_remove_rmap_pmd(cx, f);
    if freeze {
        // put_page: the PMD's reference goes with its mapping.
        folio::folio_put(cx, f);
    } else {
        // Each PTE mapping holds its own reference from now on.
        folio::folio_ref_add(cx, f, g.entries() as i64 - 1);
    }
    cx.cpu.smp_wmb();
    pmd.set(cx, Entry::table(table.pfn));
}
