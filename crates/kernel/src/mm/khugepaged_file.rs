//! File/shmem THP collapse (`mm/khugepaged.c` `collapse_file` and `retract_page_tables`, 6.6+
//! with the 6.14 `check_pmd_state` recheck and the 2025 lock-pointer fix; the ≤6.5 rule as an
//! alternative protocol).
//!
//! `collapse_file` (reduced to what the page-table protocol sees): a new PMD-order folio, locked,
//! replaces the small folios in the page cache, so faults on the range block on its lock; the old
//! pages are unmapped from every mapping through `i_mmap`; the contents are copied; then
//! `retract_page_tables` removes the now-empty PTE tables of every mapping that has no anon_vma,
//! under `i_mmap_rwsem` read, the PMD lock and the PTL, and frees them with `pte_free_defer`.

use crate::arch::pgtable::Entry;
use crate::mm::folio;
use crate::mm::khugepaged::CollapseFail;
use crate::mm::pgtable;
use crate::mm::shmem::unmap_mapping_range;
use crate::mm::tlb_batch::{set_tlb_ubc_flush_pending, try_to_unmap_flush, TlbUbc};
use crate::mm::types::{File, MmStruct};
use crate::mm::userfaultfd::{userfaultfd_armed, userfaultfd_wp};
use crate::protocol::{RetractLocks, TableFree};
use crate::Ctx;
use mmcheck_platform::{FrameRef, RcuWork};
use std::sync::Arc;

fn mm_of(cx: Ctx<'_>, id: u64) -> Option<Arc<MmStruct>> {
    cx.k.mm_by_id(id)
}

/// Free a retracted table by the configured route.
fn free_retracted(cx: Ctx<'_>, t: FrameRef) {
    match cx.proto().retract_free {
        TableFree::Rcu => {
            let _f = cx.cpu.enter("pte_free_defer");
            cx.cpu.call_rcu(RcuWork::FreeFrames {
                frames: vec![(t, 0)],
                reason: "pte_free_now",
            });
        }
        TableFree::Ipi => {
            let _f = cx.cpu.enter("collapse_and_free_pmd");
            cx.cpu.tlb_remove_table_sync_one();
            cx.k.machine.frames.free(&cx.cpu, t, 0);
        }
        TableFree::Immediate => {
            let _f = cx.cpu.enter("pte_free");
            cx.k.machine.frames.free(&cx.cpu, t, 0);
        }
    }
}

/// `retract_page_tables(mapping, pgoff)`: remove the PTE table mapping the PMD-aligned range at
/// `pgoff` from every VMA of `file` that can do without it.
pub fn retract_page_tables(cx: Ctx<'_>, file: &File, pgoff: u64) {
    let _f = cx.cpu.enter("retract_page_tables");
    let g = cx.geo();
    let ps = g.page_shift;
    let n = g.entries() as u64;
    let exclusive = cx.proto().retract_locks == RetractLocks::AllExclusive;
    let (_r, _w) = if exclusive {
        (None, Some(file.i_mmap_rwsem.write(cx.cpu)))
    } else {
        (Some(file.i_mmap_rwsem.read(cx.cpu)), None)
    };
    for vma in file.i_mmap_overlapping(cx, pgoff, pgoff + n - 1) {
        // file_backed_vma_is_retractable, first without the locks: no anon_vma, and not
        // registered for uffd-wp (the table may hold PTE markers).
        if vma.anon_vma(cx).is_some() || userfaultfd_wp(cx, &vma) {
            continue;
        }
        let Some(addr) = vma.address_of(cx, pgoff) else {
            continue;
        };
        if addr & !g.pmd_mask() != 0 || addr + g.pmd_size() > vma.end(cx) {
            continue;
        }
        let Some(mm) = mm_of(cx, vma.mm_id(cx)) else {
            continue;
        };
        if mm.exiting.read(&cx.cpu) != 0 {
            continue;
        }
        let Some(pmd) = pgtable::pmd_off(cx, &mm, addr) else {
            continue;
        };
        if !pmd.get(cx).is_table() {
            continue;
        }
        // ≤6.5: every walk-start lock exclusively, so also this mm's mmap lock (trylock).
        let _mw = if exclusive {
            match mm.mmap_lock.write_trylock(cx.cpu) {
                Some(w) => Some(w),
                None => continue,
            }
        } else {
            None
        };
        // LOCKING: ≤6.5 (`collapse_and_free_pmd`) takes no spinlock: the mmap write lock and
        // i_mmap write exclude every walker but GUP-fast (the IPI) and the hardware walker (the
        // flush). 6.6+ takes the PMD lock, then the PTL nested.
        let pml = pgtable::pmd_lockptr(cx, &mm, pmd);
        let pg = (!exclusive).then(|| pml.lock(cx.cpu));
        let v = pmd.get(cx);
        if cx.proto().retract_recheck_pmd && !cx.cpu.recheck("check_pmd_state", v.is_table()) {
            drop(pg);
            continue; // check_pmd_state: none or huge now
        }
        // The PTL from a copy of the PMD value (2025 fix); without the recheck, from whatever is
        // there (R5: a none PMD names pfn 0).
        let tg = if exclusive {
            None
        } else {
            let ptl = pgtable::pte_lockptr(cx, &mm, v);
            (!std::ptr::eq(ptl, pml)).then(|| ptl.lock(cx.cpu))
        };
        // The recheck (023f47a8250c before 6.6; 6.6+ under the PTL): the first check ran without
        // the mmap lock, so a fault may have given the VMA an anon_vma since, possibly a
        // neighbour's (find_mergeable_anon_vma), whose rmap walkers reach this table holding only
        // that anon_vma's lock.
        if cx.proto().retract_anon_vma_recheck
            && !cx.cpu.recheck("anon_vma", vma.anon_vma(cx).is_none())
        {
            drop(tg);
            drop(pg);
            continue;
        }
        // The uffd-wp recheck (deb4c93a9871 under the mmap write lock; 6.6+ under the PTL):
        // UFFDIO_REGISTER may have set VM_UFFD_WP since the first check, and UFFDIO_WRITEPROTECT
        // installs its markers under this PTL.
        if cx.proto().retract_uffd_wp_recheck
            && !cx.cpu.recheck("userfaultfd_wp", !userfaultfd_wp(cx, &vma))
        {
            drop(tg);
            drop(pg);
            continue;
        }
        let pgt = pmd.xchg(cx, Entry::NONE);
        cx.cpu
            .flush_tlb_range(mm.id, addr >> ps, (addr + g.pmd_size()) >> ps, true);
        drop(tg);
        drop(pg);
        pgtable::mm_inc_nr_tables(&mm, 1, -1);
        free_retracted(cx, cx.cpu.frame_ref(pgt.pfn()));
    }
}

/// `collapse_file`'s rollback: the old folios go back into their slots (holes become holes
/// again), unlocked, and the new folio loses every slot's reference. Pages already unmapped stay
/// unmapped: the next fault maps the old folio again.
fn rollback(
    cx: Ctx<'_>,
    file: &File,
    replaced: &[(u64, Option<FrameRef>)],
    old: &[(u64, FrameRef)],
    new: FrameRef,
    n: u64,
) {
    let xa = file.xa_lock(cx);
    for &(i, prev) in replaced {
        match prev {
            Some(f) => {
                file.cache_replace(cx, &xa, i, f);
            }
            None => {
                file.cache_remove(cx, &xa, i);
            }
        }
    }
    drop(xa);
    for &(_, f) in old {
        folio::folio_unlock(cx, f);
        folio::folio_put(cx, f); // ours: the cache's stays with the restored slot
    }
    folio::folio_unlock(cx, new);
    folio::folio_put_refs(cx, new, n as i64);
    cx.rcu_quiescent();
}

/// khugepaged's file step (`khugepaged_scan_mm_slot` → `hpage_collapse_scan_file` →
/// `collapse_file`; `madvise_collapse` takes the same steps): under the mmap read lock, find the
/// VMA at `addr`, take a reference on its file (`get_file`) and its page index, drop the lock,
/// collapse, then `fput`. The reference keeps the inode, and so its page cache, alive while
/// the collapse runs without the mmap lock: a racing munmap of the last mapping does not
/// evict it under the collapse.
pub fn khugepaged_scan_file(cx: Ctx<'_>, mm: &MmStruct, addr: u64) -> Result<(), CollapseFail> {
    let _f = cx.cpu.enter("khugepaged_scan_mm_slot");
    let (file, index) = {
        let _r = mm.mmap_lock.read_lock(cx.cpu);
        let vma = mm.vma_lookup(cx, addr).ok_or(CollapseFail::VmaCheck)?;
        let file = vma.file.clone().ok_or(CollapseFail::VmaCheck)?;
        crate::mm::shmem::get_file(cx, &file);
        (file, vma.linear_page_index(cx, addr))
    };
    let r = collapse_file(cx, &file, index);
    crate::mm::shmem::fput(cx, &file);
    r
}

/// `collapse_file` for the PMD-aligned range of `file` holding `index`.
pub fn collapse_file(cx: Ctx<'_>, file: &Arc<File>, index: u64) -> Result<(), CollapseFail> {
    let _f = cx.cpu.enter("collapse_file");
    let g = cx.geo();
    let n = g.entries() as u64;
    let start = index & !(n - 1);
    if start + n > file.size_pages.read(&cx.cpu) {
        return Err(CollapseFail::VmaCheck);
    }
    let new = folio::folio_alloc(cx, g.pmd_order()).ok_or(CollapseFail::AllocFailed)?;
    folio::folio_init_shmem(cx, new, file.id, start);
    // The cache holds one reference per slot.
    folio::folio_ref_add(cx, new, n as i64 - 1);
    // Replace every slot with the new, locked folio: faults on the range now wait for it.
    // `replaced` remembers what each slot held, to undo the collapse if it fails.
    let mut old: Vec<(u64, FrameRef)> = Vec::new();
    let mut replaced: Vec<(u64, Option<FrameRef>)> = Vec::new();
    let mut fail = None;
    // LOCKING: each slot is loaded, its folio trylocked and referenced, and the slot replaced
    // under the xarray lock, taken before the scan and kept across holes; the kernel drops it
    // after taking each folio (to isolate and unmap it) and takes it again for the next slot.
    // A folio found in the cache under it has a nonzero count (`__remove_mapping` freezes and
    // deletes under it), so a plain `folio_get` does; once locked, nothing (truncation,
    // reclaim) takes it out of its slot.
    let mut xa = Some(file.xa_lock(cx));
    for i in start..start + n {
        let g = xa.get_or_insert_with(|| file.xa_lock(cx));
        let cur = file.find_get_folio(cx, i);
        if let Some(f) = cur {
            // SCAN_PAGE_LOCK if someone holds it (truncation, reclaim, a fault).
            if !folio::folio_trylock(cx, f) {
                fail = Some(CollapseFail::PageLocked);
                break;
            }
            folio::folio_ref_add(cx, f, 1); // folio_get
            old.push((i, f));
        }
        let prev = file.cache_replace(cx, g, i, new);
        replaced.push((i, prev));
        if cur.is_some() {
            xa = None;
        }
    }
    drop(xa);
    if let Some(why) = fail {
        rollback(cx, file, &replaced, &old, new, n);
        return Err(why);
    }
    // Unmap the old pages from every mapping (try_to_unmap through i_mmap).
    unmap_mapping_range(cx, file, start, start + n - 1, false);
    // SCAN_PAGE_COUNT: unmapped, an old folio may hold only our reference and the cache's. Any
    // other (a GUP reference taken before the unmap) could still write to it after the copy.
    let extra = old.iter().any(|&(_, f)| {
        let ours = old.iter().filter(|&&(_, g)| g == f).count() as i64;
        folio::folio_ref_count(cx, f) != 2 * ours
    });
    if extra {
        rollback(cx, file, &replaced, &old, new, n);
        return Err(CollapseFail::PageCount);
    }
    let fr = &cx.k.machine.frames;
    for &(i, f) in &old {
        let v = cx.cpu.data_read(fr.current(f.pfn));
        cx.cpu
            .data_init(fr.current(new.pfn + (i - start) as u32), v);
    }
    folio::folio_mark_uptodate_barrier(cx);
    retract_page_tables(cx, file, start);
    folio::folio_unlock(cx, new);
    for (_, f) in old {
        folio::folio_unlock(cx, f);
        folio::folio_put_refs(cx, f, 2); // ours and the cache's
    }
    cx.rcu_quiescent();
    Ok(())
}

/// `folio_referenced` of the folio mapped at `addr` (reclaim's rmap walk, `is_locked` false):
/// clear the young bit of every mapping, found through rmap under the rmap lock, with the PTL
/// taken by `map_pte`. As in `mm/rmap.c` (6.18): an unmapped folio returns at once, and a file
/// (or KSM) folio is trylocked first, the walk skipped (counted as referenced) if that fails, so
/// this walker never overlaps a path that holds the folio lock (`collapse_file`, truncation).
pub fn folio_referenced_at(cx: Ctx<'_>, mm: &MmStruct, addr: u64) -> usize {
    let _f = cx.cpu.enter("folio_referenced");
    let Some(pfn) = pgtable::folio_at(cx, mm, addr) else {
        return 0;
    };
    if pfn == cx.k.zero_page.pfn {
        return 0;
    }
    let f = folio::page_folio(cx, pfn);
    if !folio::folio_try_get(cx, f) {
        return 0;
    }
    // `.mapcount = folio_mapcount(folio)`; `if (!pra.mapcount) return 0`.
    if folio::folio_mapcount(cx, f) == 0 {
        folio::folio_put(cx, f);
        return 0;
    }
    let we_locked = !folio::folio_test_anon(cx, f);
    if we_locked && !folio::folio_trylock(cx, f) {
        folio::folio_put(cx, f);
        return 1;
    }
    let mut referenced = 0;
    crate::mm::rmap::rmap_walk(cx, f, crate::mm::rmap::RmapLock::Read, &mut |vma, a| {
        let _f = cx.cpu.enter("folio_referenced_one");
        let Some(m) = mm_of(cx, vma.mm_id(cx)) else {
            return true;
        };
        // The folio's first page may lie before the VMA (split inside the folio): vma_address.
        let a = a.max(vma.start(cx));
        if let Some(pv) = crate::mm::rmap::page_vma_mapped_walk(cx, &m, f, a, false, false) {
            if pv.entry.young() {
                referenced += 1;
                let _ = pv
                    .pte
                    .cmpxchg(cx, pv.entry, pv.entry.without(Entry::ACCESSED));
            }
        }
        true
    });
    if we_locked {
        folio::folio_unlock(cx, f);
    }
    folio::folio_put(cx, f);
    referenced
}

/// `try_collapse_pte_mapped_thp(mm, addr, install_pmd = false)` (≈6.12 with the 6.13 `pmd_same`
/// rechecks; caller holds the mmap read lock, or the write lock before 6.6: switch
/// `collapse_pte_mapped.mmap_lock`): a PMD-order page-cache folio mapped by PTEs loses its PTE
/// table, so the range can later be mapped by a PMD. Returns true if the table was removed.
pub fn collapse_pte_mapped_thp(cx: Ctx<'_>, mm: &MmStruct, addr: u64) -> bool {
    let _f = cx.cpu.enter("collapse_pte_mapped_thp");
    let g = cx.geo();
    let ps = g.page_shift;
    let haddr = addr & g.pmd_mask();
    // LOCKING: since 1043173eb5eb (6.6) the mmap read lock; before it the callers
    // (khugepaged's collapse_pte_mapped_thps, MADV_COLLAPSE) held it for write
    // (`mmap_assert_write_locked`), which kept every fault out of the table being freed.
    let (r, w) = if cx.proto().collapse_pte_mapped_mmap_write {
        (None, Some(mm.mmap_lock.write_lock(cx.cpu)))
    } else {
        (Some(mm.mmap_lock.read_lock(cx.cpu)), None)
    };
    // 1. vma_lookup first: the tables may be going away with the VMA.
    let Some(vma) = mm.vma_lookup(cx, haddr) else {
        return false;
    };
    let Some(file) = vma.file.clone() else {
        return false;
    };
    if vma.start(cx) > haddr || haddr + g.pmd_size() > vma.end(cx) {
        return false;
    }
    // Keep the table while uffd-wp is in use: it may hold markers (SCAN_PTE_UFFD_WP).
    if userfaultfd_wp(cx, &vma) {
        return false;
    }
    // 2. The folio at the range's index, locked; it must be PMD order.
    let index = vma.linear_page_index(cx, haddr);
    let Some(f) = file.find_get_folio(cx, index) else {
        return false;
    };
    if !folio::folio_try_get(cx, f) {
        return false;
    }
    let release = |cx: Ctx<'_>, locked: bool| {
        if locked {
            folio::folio_unlock(cx, f);
        }
        folio::folio_put(cx, f);
    };
    folio::folio_lock(cx, f);
    if folio::folio_order(cx, f) != g.pmd_order() || file.find_get_folio(cx, index) != Some(f) {
        release(cx, true);
        return false;
    }
    // 3. A PTE table must be there.
    let Some(pmd) = pgtable::pmd_off(cx, mm, haddr) else {
        release(cx, true);
        return false;
    };
    // LOCKING: UFFDIO_COPY into a private VMA installs an anon PTE without looking at the page
    // cache, so the folio lock does not keep it out: on a uffd-armed private VMA the PMD lock is
    // taken now, before the PTL, and both are held from clearing the PTEs to pmdp_collapse_flush
    // (a98460494b16). Otherwise the PTL is dropped between the two (switch
    // collapse_pte_mapped.uffd_pml = late: always).
    // LOCKING: under the mmap write lock (6.1) the function also took i_mmap_rwsem for write
    // from step 1 to step 4 and, around step 4, the anon_vma lock for write (8d3c106e19e8,
    // ab0c3f1251b4): "only GUP-fast and hardware page walks" reach the table then.
    let old_w = cx.proto().collapse_pte_mapped_mmap_write;
    let i_mmap = old_w.then(|| file.i_mmap_rwsem.write(cx.cpu));
    let pml = pgtable::pmd_lockptr(cx, mm, pmd);
    let early = cx.proto().collapse_pte_mapped_uffd_pml_early
        && userfaultfd_armed(cx, &vma)
        && !vma.is_shared(cx);
    let pg_early = early.then(|| pml.lock(cx.cpu));
    // 7. Map without the lock, lock the PTL (nested in the PMD lock if taken), recheck the PMD
    // (R1, 6.13).
    let Some((map, pgt_pmd, ptl)) = pgtable::pte_offset_map_rw_nolock(cx, mm, pmd) else {
        drop(pg_early);
        release(cx, true);
        return false;
    };
    let tg = (!early || !std::ptr::eq(ptl, pml)).then(|| ptl.lock(cx.cpu));
    if !cx.cpu.recheck("pmd_same", pmd.get(cx) == pgt_pmd) {
        drop(tg);
        drop(pg_early);
        drop(map);
        release(cx, true);
        return false;
    }
    // 8. Every entry is none or maps exactly its page of the folio; clear them.
    let n = g.entries();
    let ok = (0..n).all(|i| {
        let e = map.pte(i).get(cx);
        e.is_none() || e.present() && e.pfn() == f.pfn + i as u32
    });
    if !ok {
        drop(tg);
        drop(pg_early);
        drop(map);
        release(cx, true);
        return false;
    }
    let mut cleared = 0;
    for i in 0..n {
        let e = map.pte(i).xchg(cx, Entry::NONE);
        if e.present() {
            folio::folio_remove_rmap_pte(cx, e.pfn());
            cleared += 1;
        }
    }
    // Step 4: PMD lock, then the PTL nested, recheck, and take the table out. The 6.13 code
    // rechecks the PMD only when the two locks differ (inside `if (ptl != pml)`); with one lock
    // for both (no split PTE locks) it goes straight to pmdp_collapse_flush and frees whatever
    // that returns. With the PMD lock taken early both are still held: no recheck needed.
    // (vma->anon_vma cannot change under the mmap write lock: read it once here.)
    let av = if old_w { vma.anon_vma(cx) } else { None };
    let mut anon_vma_w = None;
    let (pg, tg, recheck) = match pg_early {
        Some(pg) => (pg, tg, false),
        None => {
            // LOCKING: only the PTL is dropped; the table stays mapped (RCU) until after step
            // 4, so the PTL taken again below cannot be in a freed table. Nothing but the PTL
            // kept others out of the table meanwhile: a fill that does not take the folio lock
            // (UFFDIO_COPY into a private VMA) can install a PTE here now.
            drop(tg);
            anon_vma_w = av.as_ref().map(|av| av.lock().write(cx.cpu));
            let pg = pml.lock(cx.cpu);
            let ptl = pgtable::pte_lockptr(cx, mm, pgt_pmd);
            let split = !std::ptr::eq(ptl, pml);
            let tg = split.then(|| ptl.lock(cx.cpu));
            (
                pg,
                tg,
                split || cx.proto().collapse_pte_mapped_recheck_always,
            )
        }
    };
    let mut pgt_pmd = pgt_pmd;
    let removed = if !recheck || cx.cpu.recheck("pmd_same", pmd.get(cx) == pgt_pmd) {
        pgt_pmd = pmd.xchg(cx, Entry::NONE);
        cx.cpu
            .flush_tlb_range(mm.id, haddr >> ps, (haddr + g.pmd_size()) >> ps, true);
        true
    } else {
        // The entries were cleared already: flush them before giving up.
        cx.cpu
            .flush_tlb_range(mm.id, haddr >> ps, (haddr + g.pmd_size()) >> ps, false);
        false
    };
    drop(tg);
    drop(pg);
    drop(map);
    mm.add_rss(crate::mm::types::MM_SHMEMPAGES, -cleared);
    if cleared > 0 {
        folio::folio_put_refs(cx, f, cleared);
    }
    if removed {
        pgtable::mm_inc_nr_tables(mm, 1, -1);
        free_retracted(cx, cx.cpu.frame_ref(pgt_pmd.pfn()));
    }
    drop(anon_vma_w);
    drop(i_mmap);
    release(cx, true);
    drop(r);
    drop(w);
    cx.rcu_quiescent();
    removed
}

/// `try_to_unmap` of the page-cache folio mapped at `addr` (reclaim of a clean shmem page, as
/// `shrink_folio_list` does it): lock it, walk `i_mmap`, clear each mapping under its PTL, with
/// the TLB flush batched (`TTU_BATCH_FLUSH`, `reclaim.batch_flush`) or at once. Anonymous folios
/// need swap, which is not modelled: returns false for them.
pub fn try_to_unmap_at(cx: Ctx<'_>, mm: &MmStruct, addr: u64) -> bool {
    let _f = cx.cpu.enter("try_to_unmap");
    let Some(pfn) = pgtable::folio_at(cx, mm, addr) else {
        return false;
    };
    if pfn == cx.k.zero_page.pfn {
        return false;
    }
    let f = folio::page_folio(cx, pfn);
    if folio::folio_test_anon(cx, f) || !folio::folio_try_get(cx, f) {
        return false;
    }
    folio::folio_lock(cx, f);
    let ps = cx.geo().page_shift;
    let nr = folio::folio_nr_pages(cx, f);
    // shrink_folio_list passes TTU_BATCH_FLUSH and flushes the batch before freeing anything.
    let mut ubc = TlbUbc::default();
    crate::mm::rmap::rmap_walk(cx, f, crate::mm::rmap::RmapLock::Read, &mut |vma, a| {
        let _f = cx.cpu.enter("try_to_unmap_one");
        let Some(m) = mm_of(cx, vma.mm_id(cx)) else {
            return true;
        };
        for i in 0..nr {
            let addr = a + (i << ps);
            if addr < vma.start(cx) {
                continue;
            }
            if addr >= vma.end(cx) {
                break;
            }
            if let Some(pv) = crate::mm::rmap::page_vma_mapped_walk(cx, &m, f, addr, false, false) {
                let old = pv.pte.xchg(cx, Entry::NONE);
                // pte_install_uffd_wp_if_needed: a shmem page keeps its uffd-wp state.
                if old.uffd_wp() && !vma.is_anonymous() {
                    pv.pte.set(cx, Entry::uffd_wp_marker());
                }
                if cx.proto().reclaim_batch_flush {
                    set_tlb_ubc_flush_pending(cx, &mut ubc, &m, addr, old.dirty());
                } else {
                    cx.cpu
                        .flush_tlb_range(m.id, addr >> ps, (addr >> ps) + 1, false);
                }
                if old.dirty() {
                    folio::folio_set(cx, f, folio::PG_DIRTY);
                }
                folio::folio_remove_rmap_pte(cx, old.pfn());
                m.add_rss(crate::mm::types::MM_SHMEMPAGES, -1);
                drop(pv);
                folio::folio_put(cx, f);
            }
        }
        true
    });
    let unmapped = !folio::folio_mapped(cx, f);
    folio::folio_unlock(cx, f);
    // The end of shrink_folio_list: the batch is flushed after the folios are unlocked, before
    // they are freed.
    try_to_unmap_flush(cx, &mut ubc);
    folio::folio_put(cx, f);
    unmapped
}
