//! Tearing down (the zap and free half of `mm/memory.c`, ≈6.14 with the 2026 PT-reclaim code
//! folded in): `unmap_page_range` → `zap_pmd_range` → `zap_pte_range` with PT reclaim
//! (`try_get_and_clear_pmd` fast path, `try_to_free_pte` slow path), `unmap_vmas`,
//! `zap_page_range_single`, and `free_pgtables` / `free_pgd_range` with floor and ceiling.

use crate::arch::pgtable::Entry;
use crate::mm::folio::{self, page_folio};
use crate::mm::huge_memory;
use crate::mm::memory::{mm_counter, vm_normal_page};
use crate::mm::mmu_gather::MmuGather;
use crate::mm::pgtable::{self, EntryPtr};
use crate::mm::rmap::{unlink_anon_vmas, unlink_file_vma};
use crate::mm::types::{MmStruct, Vma};
use crate::protocol::{EmptyCheck, ZapResched};
use crate::Ctx;
use mmcheck_platform::MmapWriteGuard;
use std::sync::Arc;

/// `struct zap_details`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ZapDetails {
    /// Set only by MADV_DONTNEED: free PTE tables this zap empties.
    pub reclaim_pt: bool,
    /// Also zap private anonymous copies in file VMAs (`should_zap_cows`).
    pub even_cows: bool,
    /// `ZAP_FLAG_DROP_MARKER` (munmap and exit, `unmap_vmas`): uffd-wp markers go too.
    /// Without it a file VMA keeps its markers, and a zapped uffd-wp PTE leaves one
    /// (`zap_install_uffd_wp_if_needed`).
    pub drop_markers: bool,
}

/// `unmap_page_range`: zap `[start, end)` of `vma`.
pub fn unmap_page_range(
    cx: Ctx<'_>,
    tlb: &mut MmuGather<'_>,
    vma: &Arc<Vma>,
    start: u64,
    end: u64,
    d: ZapDetails,
) {
    let _f = cx.cpu.enter("unmap_page_range");
    let mm = tlb.mm;
    let top = pgtable::pgd_offset(cx, mm, start);
    zap_level(cx, tlb, vma, top, start, end, d);
}

/// Walk one level of `[addr, end)` starting at entry `p`.
fn zap_level(
    cx: Ctx<'_>,
    tlb: &mut MmuGather<'_>,
    vma: &Arc<Vma>,
    p: EntryPtr,
    mut addr: u64,
    end: u64,
    d: ZapDetails,
) {
    let g = cx.geo();
    let span = 1u64 << g.shift(p.level);
    let mut idx = p.idx;
    while addr < end {
        let next = ((addr & !(span - 1)) + span).min(end);
        let e = p.at(idx);
        if p.level == 2 {
            zap_pmd(cx, tlb, vma, e, addr, next, d);
        } else {
            let v = e.get(cx);
            if v.is_table() {
                let below = pgtable::entry_below(cx, v, p.level, addr);
                zap_level(cx, tlb, vma, below, addr, next, d);
            }
        }
        addr = next;
        idx += 1;
    }
}

/// `zap_pmd_range` for one PMD entry.
fn zap_pmd(
    cx: Ctx<'_>,
    tlb: &mut MmuGather<'_>,
    vma: &Arc<Vma>,
    pmd: EntryPtr,
    addr: u64,
    next: u64,
    d: ZapDetails,
) {
    let g = cx.geo();
    let mut addr = addr;
    loop {
        let v = pmd.get(cx);
        // is_swap_pmd || pmd_trans_huge: a PMD migration entry, or also a PMD another CPU is
        // rewriting under its lock (pmdp_invalidate): zap_huge_pmd waits for that lock, then
        // looks again.
        if v.pmd_trans_huge() || v.is_migration() {
            if next - addr == g.pmd_size() {
                if huge_memory::zap_huge_pmd(cx, tlb, pmd, addr) {
                    return;
                }
                continue;
            }
            huge_memory::__split_huge_pmd(cx, tlb.mm, vma, pmd, addr);
            continue;
        }
        if v.is_none() {
            return;
        }
        addr = zap_pte_range(cx, tlb, vma, pmd, addr, next, d);
        if addr == next {
            return;
        }
    }
}

/// `zap_pte_range` with PT reclaim (6.14 after "fix incorrect reclaim of non-empty PTE pages").
/// Returns how far it got: `end` when done, less when the table could not be mapped (the PMD is
/// none, huge or changing now), and `zap_pmd_range` then reads the same PMD again.
///
/// `need_resched()` is checked before every batch of entries (one present entry or folio run):
/// when true, the PTL is dropped without a TLB flush (the gather still holds the pages), the
/// table is retried after `cond_resched()` from where the zap stopped, and PT reclaim must take
/// its slow path. The model explores it as a choice step (switch `zap.need_resched`): before
/// every batch but the first of a retried pass (`every`), or only before the first batch of a
/// call (`first`).
pub fn zap_pte_range(
    cx: Ctx<'_>,
    tlb: &mut MmuGather<'_>,
    vma: &Arc<Vma>,
    pmd: EntryPtr,
    start: u64,
    end: u64,
    d: ZapDetails,
) -> u64 {
    let _f = cx.cpu.enter("zap_pte_range");
    let g = cx.geo();
    let mm = tlb.mm;
    let ps = g.page_shift;
    let can_reclaim_pt = cx.proto().pt_reclaim && d.reclaim_pt && end - start >= g.pmd_size();
    let mut can_reclaim_pt = can_reclaim_pt;
    // pt_reclaim.empty_check: `rescan` never trusts the zap, `none` (the 6.14-rc bug) trusts it
    // even after the PTL was dropped.
    let check = cx.proto().pt_reclaim_empty_check;
    let mut direct_reclaim = check != EmptyCheck::Rescan;
    let mut addr = start;
    let mut pmdval = Entry::NONE;
    let resched = cx.proto().zap_need_resched;
    // A pass right after cond_resched() does not see need_resched() at its first batch.
    let mut just_rescheduled = false;
    loop {
        let Some(l) = pgtable::pte_offset_map_lock(cx, mm, pmd) else {
            return addr;
        };
        if cx.proto().zap_flush_batched_pending {
            crate::mm::tlb_batch::flush_tlb_batched_pending(cx, mm);
        }
        let mut force_flush = false;
        let mut batches = 0;
        let mut resched_now = false;
        while addr < end {
            let pte = l.pte(g.index(addr, 1));
            let v = pte.get(cx);
            if v.is_none() {
                addr += 1 << ps;
                continue;
            }
            let ask = match resched {
                ZapResched::Off => false,
                ZapResched::First => batches == 0 && addr == start && !just_rescheduled,
                ZapResched::Every => batches > 0 || !just_rescheduled,
            };
            batches += 1;
            if ask && cx.cpu.choose(2) == 1 {
                resched_now = true;
                break;
            }
            if v.present() {
                let page = vm_normal_page(cx, v);
                if let Some(p) = page {
                    let f = page_folio(cx, p);
                    if !d.even_cows
                        && !vma.is_anonymous()
                        && folio::folio_test_anon(cx, f)
                        && !d.reclaim_pt
                    {
                        // A private COW copy that this zap must keep (should_zap_cows).
                        can_reclaim_pt = false;
                        addr += 1 << ps;
                        continue;
                    }
                }
                let old = pte.xchg(cx, Entry::NONE);
                tlb.add_range(cx, addr, 1 << ps);
                // zap_install_uffd_wp_if_needed: a file VMA keeps the page's wp state; "zap on
                // anonymous always means dropping everything", so the uffd-wp oracle's contract
                // for the page ends here (a later fault maps it writable, as in the kernel).
                if old.uffd_wp() && !vma.is_anonymous() && !d.drop_markers {
                    pte.set(cx, Entry::uffd_wp_marker());
                    can_reclaim_pt = false;
                } else if old.uffd_wp() {
                    mm.uffd_wp_forget(addr);
                }
                if let Some(p) = page {
                    let f = page_folio(cx, p);
                    if old.dirty() && !folio::folio_test_anon(cx, f) {
                        folio::folio_set(cx, f, folio::PG_DIRTY);
                    }
                    mm.add_rss(mm_counter(cx, f), -1);
                    folio::folio_remove_rmap_pte(cx, p);
                    if tlb.remove_page(cx, f) {
                        force_flush = true;
                        addr += 1 << ps;
                        break;
                    }
                }
            } else if v.is_pte_marker() && !vma.is_anonymous() && !d.drop_markers {
                // zap_nonpresent_ptes: a file VMA's uffd-wp marker stays unless the zap says
                // ZAP_FLAG_DROP_MARKER; the table is then not empty.
                can_reclaim_pt = false;
            } else if v.is_swap_entry() && !d.even_cows && !vma.is_anonymous() && !d.reclaim_pt {
                // zap_nonpresent_ptes: a swapped-out private COW copy that this zap must keep
                // (should_zap_cows).
                can_reclaim_pt = false;
            } else if v.is_migration()
                && !d.even_cows
                && !vma.is_anonymous()
                && !d.reclaim_pt
                && folio::folio_test_anon(cx, page_folio(cx, v.pfn()))
            {
                // zap_nonpresent_ptes: a private COW copy under migration that this zap must
                // keep (should_zap_folio: only non-anonymous folios without even_cows).
                can_reclaim_pt = false;
            } else {
                // zap_nonpresent_ptes: a migration entry still counts in rss (the folio's
                // mapcount and reference were dropped when it was installed); a swap entry
                // drops its swap count (free_swap_and_cache).
                let old = pte.xchg(cx, Entry::NONE);
                if old.is_swap_entry() {
                    mm.add_rss(crate::mm::types::MM_SWAPENTS, -1);
                    crate::mm::swapfile::free_swap_and_cache(cx, old.swp_offset());
                } else if old.is_migration() {
                    let f = page_folio(cx, old.pfn());
                    mm.add_rss(mm_counter(cx, f), -1);
                }
                // zap_install_uffd_wp_if_needed, for a swap or migration entry as for a
                // present PTE above.
                if old.swp_uffd_wp() && !vma.is_anonymous() && !d.drop_markers {
                    pte.set(cx, Entry::uffd_wp_marker());
                    can_reclaim_pt = false;
                } else if old.swp_uffd_wp() {
                    mm.uffd_wp_forget(addr);
                }
            }
            addr += 1 << ps;
        }
        just_rescheduled = resched_now;
        if resched_now {
            // need_resched(): the fast-path reclaim is off for this call.
            direct_reclaim = false;
        }
        if can_reclaim_pt && (direct_reclaim || check == EmptyCheck::None) && addr == end {
            direct_reclaim = try_get_and_clear_pmd(cx, mm, pmd, l.pmdval, &mut pmdval);
        }
        if force_flush {
            tlb.flush_tlbonly(cx);
        }
        drop(l);
        if force_flush {
            tlb.flush_mmu(cx);
        }
        if addr != end {
            // The PTL was dropped: an emptiness decision must be remade (R4).
            direct_reclaim = false;
            continue;
        }
        break;
    }
    if can_reclaim_pt {
        if !direct_reclaim {
            direct_reclaim = try_to_free_pte(cx, mm, pmd, &mut pmdval);
        }
        if direct_reclaim {
            let table = cx.cpu.frame_ref(pmdval.pfn());
            tlb.free_reclaimed_table(cx, table, start);
            pgtable::mm_inc_nr_tables(mm, 1, -1);
        }
    }
    end
}

/// `try_get_and_clear_pmd` (2026: `zap_empty_pte_table`): with the PTL held, trylock the PMD lock
/// and clear the PMD.
fn try_get_and_clear_pmd(
    cx: Ctx<'_>,
    mm: &MmStruct,
    pmd: EntryPtr,
    locked_val: Entry,
    out: &mut Entry,
) -> bool {
    let _f = cx.cpu.enter("try_get_and_clear_pmd");
    let pml = pgtable::pmd_lockptr(cx, mm, pmd);
    let ptl = pgtable::pte_lockptr(cx, mm, locked_val);
    if std::ptr::eq(pml, ptl) {
        // spin_trylock(pml) with the PTL held: the same lock without split PTE locks, so the
        // trylock fails and the slow path (try_to_free_pte) decides after the PTL is dropped.
        return false;
    }
    let g = if !cx.proto().pt_reclaim_pmd_trylock {
        Some(pml.lock(cx.cpu))
    } else {
        match pml.try_lock(cx.cpu) {
            Some(g) => Some(g),
            None => return false,
        }
    };
    *out = pmd.get(cx);
    pmd.set(cx, Entry::NONE);
    drop(g);
    true
}

/// `try_to_free_pte` (2026: `zap_pte_table_if_empty`): PMD lock, then PTL, rescan every entry.
fn try_to_free_pte(cx: Ctx<'_>, mm: &MmStruct, pmd: EntryPtr, out: &mut Entry) -> bool {
    let _f = cx.cpu.enter("try_to_free_pte");
    let pml = pgtable::pmd_lockptr(cx, mm, pmd);
    let pg = pml.lock(cx.cpu);
    let Some((map, pmdval, ptl)) = pgtable::pte_offset_map_rw_nolock(cx, mm, pmd) else {
        return false;
    };
    let tg = if std::ptr::eq(pml, ptl) {
        None
    } else {
        Some(ptl.lock(cx.cpu))
    };
    // The rescan under both locks: a fault may have filled the table since the zap.
    let empty = (0..cx.geo().entries()).all(|i| map.pte(i).get(cx).is_none());
    if !cx.cpu.recheck("pte_none", empty) {
        drop(tg);
        drop(map);
        drop(pg);
        return false;
    }
    drop(map);
    pmd.set(cx, Entry::NONE);
    *out = pmdval;
    drop(tg);
    drop(pg);
    true
}

/// `unmap_vmas`: zap every VMA of `vmas` within `[start, end)`.
pub fn unmap_vmas(cx: Ctx<'_>, tlb: &mut MmuGather<'_>, vmas: &[Arc<Vma>], start: u64, end: u64) {
    let _f = cx.cpu.enter("unmap_vmas");
    for vma in vmas {
        let s = start.max(vma.start(cx));
        let e = end.min(vma.end(cx));
        if s < e {
            unmap_page_range(
                cx,
                tlb,
                vma,
                s,
                e,
                ZapDetails {
                    reclaim_pt: false,
                    even_cows: true,
                    drop_markers: true,
                },
            );
        }
    }
}

/// `zap_page_range_single` (2026: `zap_vma_range`): its own gather.
pub fn zap_page_range_single(
    cx: Ctx<'_>,
    mm: &MmStruct,
    vma: &Arc<Vma>,
    start: u64,
    end: u64,
    d: ZapDetails,
) {
    let _f = cx.cpu.enter("zap_page_range_single");
    let mut tlb = MmuGather::new(cx, mm, false);
    unmap_page_range(cx, &mut tlb, vma, start, end, d);
    tlb.finish(cx);
}

/// `free_pgtables`: unlink every VMA from rmap, then free the tables under them, gathering VMAs
/// closer than `PMD_SIZE` into one `free_pgd_range`. `vmas` are detached and in address order.
pub fn free_pgtables(
    cx: Ctx<'_>,
    tlb: &mut MmuGather<'_>,
    vmas: &[Arc<Vma>],
    floor: u64,
    ceiling: u64,
    mm_wr: Option<&MmapWriteGuard<'_>>,
) {
    let _f = cx.cpu.enter("free_pgtables");
    let pmd_size = cx.geo().pmd_size();
    let unlink = |v: &Vma| {
        if let Some(w) = mm_wr {
            w.vma_start_write(&v.lock);
        }
        unlink_anon_vmas(cx, v);
        unlink_file_vma(cx, v);
    };
    let mut i = 0;
    while i < vmas.len() {
        let addr = vmas[i].start(cx);
        unlink(&vmas[i]);
        while i + 1 < vmas.len() && vmas[i + 1].start(cx) <= vmas[i].end(cx) + pmd_size {
            i += 1;
            unlink(&vmas[i]);
        }
        let next_start = vmas.get(i + 1).map_or(ceiling, |v| v.start(cx));
        free_pgd_range(cx, tlb, addr, vmas[i].end(cx), floor, next_start);
        i += 1;
    }
}

/// `free_pgd_range`: free the tables of `[addr, end)`, but no table that also covers memory
/// outside `[floor, ceiling)` (ceiling 0 means the top of the address space).
pub fn free_pgd_range(
    cx: Ctx<'_>,
    tlb: &mut MmuGather<'_>,
    addr: u64,
    end: u64,
    floor: u64,
    ceiling: u64,
) {
    let _f = cx.cpu.enter("free_pgd_range");
    let g = cx.geo();
    let pmd_size = g.pmd_size();
    let pmd_mask = g.pmd_mask();
    let mut addr = addr & pmd_mask;
    let mut end = end;
    let mut ceiling = ceiling;
    if addr < floor {
        addr = addr.wrapping_add(pmd_size);
        if addr == 0 {
            return;
        }
    }
    if ceiling != 0 {
        ceiling &= pmd_mask;
        if ceiling == 0 {
            return;
        }
    }
    if end.wrapping_sub(1) > ceiling.wrapping_sub(1) {
        end = end.wrapping_sub(pmd_size);
    }
    if addr > end.wrapping_sub(1) {
        return;
    }
    let top = pgtable::pgd_offset(cx, tlb.mm, addr);
    free_level(cx, tlb, top, None, addr, end, floor, ceiling);
}

/// Free the tables below entries `[addr, end)` of the table `p` points into, then `p`'s table
/// itself if floor and ceiling allow (`free_pmd_range`/`free_pud_range`/`free_p4d_range` tails).
#[allow(clippy::too_many_arguments)]
fn free_level(
    cx: Ctx<'_>,
    tlb: &mut MmuGather<'_>,
    p: EntryPtr,
    parent: Option<EntryPtr>,
    addr: u64,
    end: u64,
    floor: u64,
    ceiling: u64,
) {
    let g = cx.geo();
    let span = 1u64 << g.shift(p.level);
    let start = addr;
    let mut a = addr;
    let mut idx = p.idx;
    loop {
        let next = ((a & !(span - 1)) + span).min(end);
        let e = p.at(idx);
        let v = e.get(cx);
        if !v.is_none() {
            if p.level == 2 {
                // free_pte_range: no lock, nobody can reach the range any more.
                e.set(cx, Entry::NONE);
                let table = cx.cpu.frame_ref(v.pfn());
                tlb.free_table(cx, table, 1, a);
                pgtable::mm_inc_nr_tables(tlb.mm, 1, -1);
            } else if v.is_table() {
                let below = pgtable::entry_below(cx, v, p.level, a);
                free_level(cx, tlb, below, Some(e), a, next, floor, ceiling);
            }
        }
        a = next;
        idx += 1;
        if a == end || idx >= g.entries() {
            break;
        }
    }
    let Some(parent) = parent else { return };
    // This table spans one entry of the level above.
    let tspan = 1u64.checked_shl(g.shift(p.level + 1)).unwrap_or(0);
    let mask = if tspan == 0 { 0 } else { !(tspan - 1) };
    let s = start & mask;
    if s < floor {
        return;
    }
    let mut c = ceiling;
    if c != 0 {
        c &= mask;
        if c == 0 {
            return;
        }
    }
    if end.wrapping_sub(1) > c.wrapping_sub(1) {
        return;
    }
    parent.set(cx, Entry::NONE);
    tlb.free_table(cx, p.table, p.level, s);
    pgtable::mm_inc_nr_tables(tlb.mm, p.level, -1);
}
