//! mremap (`mm/mremap.c` ≈6.15-rc with `pagetable_move_control`, `mm/vma.c` `copy_vma`):
//! `copy_vma` makes the destination VMA (new, or merged into a neighbour) and decides
//! `need_rmap_locks`; `move_page_tables` moves whole PTE tables with `move_normal_pmd` (rmap
//! locks since 5.14, and a recheck under both PMD locks since 6.12) and single entries with `move_ptes` (both PTLs;
//! the TLB flush of the old range before either PTL is released); then the old range is unmapped
//! with the mmap write lock still held.
//!
//! Without rmap locks a move is safe only if every rmap traversal visits the old VMA before the
//! new one (I17): a walker that has passed the new VMA and not yet reached the old one would miss an
//! entry moved in between. A fresh VMA is inserted after the old one (same `vm_pgoff`, later in
//! the tree); a merge into a neighbour with a smaller `vm_pgoff` puts the destination first.

use crate::arch::pgtable::Entry;
use crate::mm::pgtable::{self, EntryPtr};
use crate::mm::rmap::{anon_vma_clone, link_file_vma};
use crate::mm::shmem::get_file;
use crate::mm::types::{MmStruct, Vma};
use crate::mm::vma::{__split_vma, do_vmi_munmap};
use crate::protocol::{MremapFlush, MremapRmapLocks};
use crate::{Ctx, Errno};
use mmcheck_platform::{MmapWriteGuard, RwSemWriteGuard};
use std::sync::Arc;

/// `copy_vma`: the destination VMA for `[new_addr, new_addr + len)` and whether moving into it
/// needs the rmap locks.
fn copy_vma(
    cx: Ctx<'_>,
    mm: &MmStruct,
    w: &MmapWriteGuard<'_>,
    vma: &Arc<Vma>,
    new_addr: u64,
    len: u64,
) -> (Arc<Vma>, bool) {
    let _f = cx.cpu.enter("copy_vma");
    let ps = cx.geo().page_shift;
    let mut pgoff = vma.pgoff(cx);
    if vma.is_anonymous() && vma.anon_vma(cx).is_none() {
        pgoff = new_addr >> ps;
    }
    let (prev, next) = mm.neighbours(cx, new_addr, new_addr + len);
    let compat = |p: &Arc<Vma>| match (p.anon_vma(cx), vma.anon_vma(cx)) {
        (Some(a), Some(b)) => a.id == b.id,
        _ => true,
    };
    let prev = prev.filter(|p| {
        p.end(cx) == new_addr
            && p.flags(cx) == vma.flags(cx)
            && p.file.as_ref().map(|f| f.id) == vma.file.as_ref().map(|f| f.id)
            && compat(p)
            && p.pgoff(cx) + ((p.end(cx) - p.start(cx)) >> ps) == pgoff
    });
    let next = next.filter(|n| {
        n.start(cx) == new_addr + len
            && n.flags(cx) == vma.flags(cx)
            && n.file.as_ref().map(|f| f.id) == vma.file.as_ref().map(|f| f.id)
            && compat(n)
            && pgoff + (len >> ps) == n.pgoff(cx)
    });
    let next = next.filter(|n| match &prev {
        Some(p) => match (p.anon_vma(cx), n.anon_vma(cx)) {
            (Some(a), Some(b)) => a.id == b.id,
            _ => true,
        },
        None => true,
    });
    if let Some(p) = prev {
        w.vma_start_write(&p.lock);
        if p.anon_vma(cx).is_none() {
            if vma.anon_vma(cx).is_some() {
                anon_vma_clone(cx, &p, vma);
            } else if let Some(n) = &next {
                if n.anon_vma(cx).is_some() {
                    anon_vma_clone(cx, &p, n);
                }
            }
        }
        let av = p.anon_vma(cx);
        let g = av.as_ref().map(|a| a.lock().write(cx.cpu));
        let mut end = new_addr + len;
        if let Some(n) = &next {
            w.vma_start_write(&n.lock);
            mm.tree_remove(cx, n.start(cx));
            w.vma_mark_detached(&n.lock);
            for a in n.anon_vma_chain.write(&cx.cpu, std::mem::take) {
                a.tree_remove(cx, n);
            }
            end = n.end(cx);
        }
        p.set_range(cx, p.start(cx), end, p.pgoff(cx));
        drop(g);
        // vma_complete frees the VMA merged away. The model's merge leaves a file VMA in i_mmap
        // (see docs/fidelity.md), so only an anonymous one is freed.
        if let Some(n) = next.as_ref().filter(|n| n.is_anonymous()) {
            crate::mm::vma::vm_area_free(cx, n);
        }
        let need = p.pgoff(cx) <= vma.pgoff(cx);
        return (p, need);
    }
    if let Some(n) = next {
        w.vma_start_write(&n.lock);
        if n.anon_vma(cx).is_none() && vma.anon_vma(cx).is_some() {
            anon_vma_clone(cx, &n, vma);
        }
        let av = n.anon_vma(cx);
        let g = av.as_ref().map(|a| a.lock().write(cx.cpu));
        mm.tree_remove(cx, n.start(cx));
        for a in n.anon_vma_chain.read(&cx.cpu, |c| c.clone()).iter() {
            a.tree_remove(cx, &n);
        }
        n.set_range(cx, new_addr, n.end(cx), pgoff);
        for a in n.anon_vma_chain.read(&cx.cpu, |c| c.clone()).iter() {
            a.tree_insert(cx, n.clone());
        }
        mm.tree_insert(cx, n.clone());
        drop(g);
        let need = n.pgoff(cx) <= vma.pgoff(cx);
        return (n, need);
    }
    if let Some(f) = &vma.file {
        get_file(cx, f);
    }
    let new = crate::mm::vma::vm_area_alloc(
        cx,
        mm,
        new_addr,
        new_addr + len,
        pgoff,
        vma.flags(cx),
        vma.file.clone(),
    );
    anon_vma_clone(cx, &new, vma);
    // vma_link: write-lock the new VMA before it enters the tree, so a per-VMA-locked fault
    // cannot populate the destination before move_page_tables fills it (it stays locked until
    // mmap_write_unlock).
    let _l = cx.cpu.enter("vma_link");
    w.vma_start_write(&new.lock);
    w.vma_mark_attached(&new.lock);
    mm.tree_insert(cx, new.clone());
    link_file_vma(cx, &new);
    (new, false)
}

/// `take_rmap_locks`: `i_mmap_rwsem` then the anon_vma lock, both for write.
struct RmapLocks<'a> {
    _anon: Option<RwSemWriteGuard<'a>>,
    _file: Option<RwSemWriteGuard<'a>>,
}

#[track_caller]
fn take_rmap_locks<'a>(
    cx: Ctx<'a>,
    vma: &'a Vma,
    av: &'a Option<Arc<crate::mm::types::AnonVma>>,
) -> RmapLocks<'a> {
    let _f = cx.cpu.enter("take_rmap_locks");
    let file = vma.file.as_ref().map(|f| f.i_mmap_rwsem.write(cx.cpu));
    let anon = av.as_ref().map(|a| a.lock().write(cx.cpu));
    RmapLocks {
        _anon: anon,
        _file: file,
    }
}

/// `move_ptes`: move the entries of one PMD range under both PTLs.
#[allow(clippy::too_many_arguments)]
fn move_ptes(
    cx: Ctx<'_>,
    mm: &MmStruct,
    vma: &Vma,
    old_pmd: EntryPtr,
    old_addr: u64,
    new_pmd: EntryPtr,
    new_addr: u64,
    extent: u64,
    need_rmap_locks: bool,
) {
    let _f = cx.cpu.enter("move_ptes");
    let g = cx.geo();
    let ps = g.page_shift;
    let av = vma.anon_vma(cx);
    let _rmap = need_rmap_locks.then(|| take_rmap_locks(cx, vma, &av));
    let Some(old) = pgtable::pte_offset_map_lock(cx, mm, old_pmd) else {
        return;
    };
    // The new table was just allocated under the mmap write lock: nobody else can detach it.
    let Some((new_map, _pmdval, new_ptl)) = pgtable::pte_offset_map_rw_nolock(cx, mm, new_pmd)
    else {
        return;
    };
    let same = std::ptr::eq(new_ptl, pgtable::pte_lockptr(cx, mm, old.pmdval));
    let new_guard = (!same).then(|| new_ptl.lock(cx.cpu));
    if cx.proto().mremap_flush_batched_pending {
        crate::mm::tlb_batch::flush_tlb_batched_pending(cx, mm);
    }
    let mut force_flush = false;
    let n = extent >> ps;
    for i in 0..n {
        let op = old.pte(g.index(old_addr + (i << ps), 1));
        let pte = op.xchg(cx, Entry::NONE);
        if pte.is_none() {
            continue;
        }
        if pte.present() {
            force_flush = true;
            // The TLB-permission oracle: a translation of a moved entry is this call's to flush.
            let (cpu, vpn) = (cx.cpu.id, (old_addr >> ps) + i);
            mm.tlb_owed.record(|o| o.cleared(cpu, vpn, vpn + 1));
        }
        let np = new_map.pte(g.index(new_addr + (i << ps), 1));
        // VM_WARN_ON_ONCE(!pte_none(*new_ptep)): the destination is a fresh, write-locked range.
        cx.cpu
            .warn_on(!np.get(cx).is_none(), "move_ptes: destination PTE not none");
        np.set(cx, pte);
    }
    let flush = |cx: Ctx<'_>| {
        cx.cpu
            .flush_tlb_range(mm.id, old_addr >> ps, (old_addr + extent) >> ps, false)
    };
    if force_flush && cx.proto().mremap_flush == MremapFlush::BeforeUnlock {
        flush(cx);
    }
    drop(new_guard);
    drop(new_map);
    drop(old);
    if force_flush && cx.proto().mremap_flush == MremapFlush::AfterUnlock {
        flush(cx);
    }
}

/// `move_normal_pmd`: move a whole PTE table by moving the PMD, under the rmap locks and both PMD
/// locks, rechecking the PMD ("racing with collapse?") after locking.
fn move_normal_pmd(
    cx: Ctx<'_>,
    mm: &MmStruct,
    vma: &Vma,
    old_pmd: EntryPtr,
    old_addr: u64,
    new_pmd: EntryPtr,
    need_rmap_locks: bool,
) -> bool {
    let _f = cx.cpu.enter("move_normal_pmd");
    let g = cx.geo();
    if !new_pmd.get(cx).is_none() {
        return false;
    }
    // move_pgt_entry: a whole table always moves under the rmap locks since 5.14 (97113eb39fa7;
    // a walker holding only an rmap lock must not see the table vanish from under it).
    let av = vma.anon_vma(cx);
    let _rmap = (need_rmap_locks || cx.proto().mremap_normal_pmd_rmap_locks)
        .then(|| take_rmap_locks(cx, vma, &av));
    let old_ptl = pgtable::pmd_lockptr(cx, mm, old_pmd);
    let og = old_ptl.lock(cx.cpu);
    let new_ptl = pgtable::pmd_lockptr(cx, mm, new_pmd);
    let ng = (!std::ptr::eq(old_ptl, new_ptl)).then(|| new_ptl.lock(cx.cpu));
    let pmd = old_pmd.get(cx);
    // "Racing with collapse?": the old PMD is still a table under both PMD locks (6.12).
    if cx.warn_on_new_pmd(new_pmd)
        || cx.proto().mremap_normal_pmd_recheck && !cx.cpu.recheck("pmd_present", pmd.is_table())
    {
        drop(ng);
        drop(og);
        return false;
    }
    old_pmd.set(cx, Entry::NONE);
    let (cpu, vpn) = (cx.cpu.id, old_addr >> g.page_shift);
    mm.tlb_owed
        .record(|o| o.cleared(cpu, vpn, vpn + g.entries() as u64));
    pgtable::pmd_populate(cx, new_pmd, cx.cpu.frame_ref(pmd.pfn()));
    cx.cpu.flush_tlb_range(
        mm.id,
        old_addr >> g.page_shift,
        (old_addr + g.pmd_size()) >> g.page_shift,
        true,
    );
    drop(ng);
    drop(og);
    true
}

impl Ctx<'_> {
    /// `WARN_ON_ONCE(!pmd_none(*new_pmd))` in `move_normal_pmd`.
    fn warn_on_new_pmd(&self, new_pmd: EntryPtr) -> bool {
        self.cpu.warn_on(
            !new_pmd.get(*self).is_none(),
            "move_normal_pmd: destination PMD is not none",
        )
    }
}

/// `can_realign_addr(pmc, PMD_MASK)` (6.7+, `mm/mremap.c`): the move reaches the next PMD
/// boundary, the two addresses sit at the same offset in their tables (and not at 0), and for
/// both VMAs the address is the VMA's start with nothing mapped between the boundary below and
/// it (`can_align_down`, not the exec stack case).
#[allow(clippy::too_many_arguments)]
fn can_realign_addr(
    cx: Ctx<'_>,
    mm: &MmStruct,
    old: &Vma,
    new: &Vma,
    old_addr: u64,
    new_addr: u64,
    len: u64,
) -> bool {
    let g = cx.geo();
    let align = g.pmd_size() - 1;
    let (old_align, new_align) = (old_addr & align, new_addr & align);
    if len < g.pmd_size() - old_align || old_align == 0 || old_align != new_align {
        return false;
    }
    let can_align_down = |vma: &Vma, addr: u64| {
        vma.start(cx) == addr
            && mm
                .vmas_in(cx, addr & g.pmd_mask(), vma.start(cx))
                .is_empty()
    };
    can_align_down(old, old_addr) && can_align_down(new, new_addr)
}

/// `move_page_tables`.
#[allow(clippy::too_many_arguments)]
fn move_page_tables(
    cx: Ctx<'_>,
    mm: &MmStruct,
    vma: &Arc<Vma>,
    new_vma: &Vma,
    old_addr: u64,
    new_addr: u64,
    len: u64,
    need_rmap_locks: bool,
) -> Result<(), Errno> {
    let _f = cx.cpu.enter("move_page_tables");
    let g = cx.geo();
    let pmd_size = g.pmd_size();
    let old_end = old_addr + len;
    // try_realign_addr (6.7+): start both addresses at their PMD boundary when that is safe, so
    // the first table moves whole (move_normal_pmd) instead of entry by entry.
    let realign = cx.proto().mremap_realign
        && can_realign_addr(cx, mm, vma, new_vma, old_addr, new_addr, len);
    let (old_addr, new_addr) = if realign {
        (old_addr & g.pmd_mask(), new_addr & g.pmd_mask())
    } else {
        (old_addr, new_addr)
    };
    let len = old_end - old_addr;
    let mut done = 0;
    while done < len {
        let (o, n) = (old_addr + done, new_addr + done);
        let extent = (pmd_size - (o & (pmd_size - 1)))
            .min(pmd_size - (n & (pmd_size - 1)))
            .min(len - done);
        if let Some(old_pmd) = pgtable::pmd_off(cx, mm, o) {
            let ov = old_pmd.get(cx);
            // is_swap_pmd || pmd_trans_huge: a PMD migration entry moves as a huge PMD does.
            if ov.pmd_trans_huge() || ov.is_migration() {
                let new_pmd = pgtable::pmd_alloc(cx, mm, n)?;
                if extent == pmd_size && new_pmd.get(cx).is_none() {
                    // move_huge_pmd: both PMD locks (new nested), the deposited table follows
                    // the entry (pmd_move_must_withdraw with split PMD locks).
                    let _f = cx.cpu.enter("move_huge_pmd");
                    let av = vma.anon_vma(cx);
                    let _rmap = need_rmap_locks.then(|| take_rmap_locks(cx, vma, &av));
                    let old_ptl = pgtable::pmd_lockptr(cx, mm, old_pmd);
                    let og = old_ptl.lock(cx.cpu);
                    let new_ptl = pgtable::pmd_lockptr(cx, mm, new_pmd);
                    let ng = (!std::ptr::eq(old_ptl, new_ptl)).then(|| new_ptl.lock(cx.cpu));
                    // __pmd_trans_huge_lock: still huge (or a migration entry) under the lock,
                    // else a split won the lock first: PTE level below.
                    let cur = old_pmd.get(cx);
                    if cx
                        .cpu
                        .recheck("pmd_trans_huge", cur.pmd_trans_huge() || cur.is_migration())
                    {
                        let v = old_pmd.xchg(cx, Entry::NONE);
                        let (cpu, vpn) = (cx.cpu.id, o >> g.page_shift);
                        mm.tlb_owed
                            .record(|r| r.cleared(cpu, vpn, vpn + g.entries() as u64));
                        if let Some(t) = crate::mm::huge_memory::withdraw(cx, old_pmd) {
                            crate::mm::huge_memory::deposit(cx, new_pmd, t);
                        }
                        new_pmd.set(cx, v);
                        cx.cpu.flush_tlb_range(
                            mm.id,
                            o >> g.page_shift,
                            (o + pmd_size) >> g.page_shift,
                            false,
                        );
                        drop(ng);
                        drop(og);
                        done += extent;
                        continue;
                    }
                }
                crate::mm::huge_memory::__split_huge_pmd(cx, mm, vma, old_pmd, o);
            }
            if !old_pmd.get(cx).is_none() {
                let new_pmd = pgtable::pmd_alloc(cx, mm, n)?;
                let moved = extent == pmd_size
                    && cx.proto().mremap_normal_pmd
                    && move_normal_pmd(cx, mm, vma, old_pmd, o, new_pmd, need_rmap_locks);
                if !moved {
                    pgtable::pte_alloc(cx, mm, new_pmd)?;
                    move_ptes(cx, mm, vma, old_pmd, o, new_pmd, n, extent, need_rmap_locks);
                }
            }
        }
        done += extent;
    }
    Ok(())
}

/// `mremap(old_addr, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, new_addr)` to an unmapped
/// destination.
pub fn do_mremap(
    cx: Ctx<'_>,
    mm: &MmStruct,
    old_addr: u64,
    len: u64,
    new_addr: u64,
) -> Result<u64, Errno> {
    do_mremap_flags(cx, mm, old_addr, len, new_addr, false)
}

/// `mremap` as [`do_mremap`], with `MREMAP_DONTUNMAP` when `dontunmap` (5.7+): `move_vma` keeps
/// the old VMA, empty, and unlinks it from its anon_vmas (`unlink_anon_vmas`, which clears
/// `vma->anon_vma`), still under the VMA write lock `move_vma` took before the move.
pub fn do_mremap_flags(
    cx: Ctx<'_>,
    mm: &MmStruct,
    old_addr: u64,
    len: u64,
    new_addr: u64,
    dontunmap: bool,
) -> Result<u64, Errno> {
    let _f = cx.cpu.enter("do_mremap");
    let g = cx.geo();
    let ps = g.page_size();
    if !old_addr.is_multiple_of(ps)
        || !new_addr.is_multiple_of(ps)
        || len == 0
        || !len.is_multiple_of(ps)
    {
        return Err(Errno::Einval);
    }
    let (old_end, new_end) = (
        old_addr.checked_add(len).ok_or(Errno::Einval)?,
        new_addr.checked_add(len).ok_or(Errno::Einval)?,
    );
    if new_end > g.task_size()
        || old_end > g.task_size()
        || (old_addr < new_end && new_addr < old_end)
    {
        return Err(Errno::Einval);
    }
    let tlb_before = crate::check::tlb_permission_begin(cx, mm, old_addr, old_end);
    let w = mm.mmap_lock.write_lock(cx.cpu);
    let vma = mm.vma_lookup(cx, old_addr).ok_or(Errno::Einval)?;
    if vma.end(cx) < old_end {
        return Err(Errno::Einval);
    }
    if !mm.vmas_in(cx, new_addr, new_end).is_empty() {
        return Err(Errno::Eexist);
    }
    // Make [old_addr, old_end) exactly one VMA.
    let vma = if vma.start(cx) < old_addr {
        __split_vma(cx, mm, &w, &vma, old_addr)
    } else {
        vma
    };
    if vma.end(cx) > old_end {
        __split_vma(cx, mm, &w, &vma, old_end);
    }
    w.vma_start_write(&vma.lock);
    let (new_vma, need) = copy_vma(cx, mm, &w, &vma, new_addr, len);
    w.vma_start_write(&new_vma.lock);
    let need = match cx.proto().mremap_rmap_locks {
        MremapRmapLocks::Need => need,
        MremapRmapLocks::Always => true,
        MremapRmapLocks::Never => false,
    };
    move_page_tables(cx, mm, &vma, &new_vma, old_addr, new_addr, len, need)?;
    // The uffd-wp oracle's contract does not follow the pages: the kernel clears their wp state
    // on the move unless the context asked for remap events (see docs/fidelity.md).
    mm.uffd_wp_protected
        .record(|s| s.retain(|&a| a < old_addr || a >= old_end));
    if dontunmap {
        // move_vma: the old VMA stays mapped, without its pages; the anon_vma links of the old
        // VMA are no longer needed once its page tables moved (it is exactly the old range).
        let _m = cx.cpu.enter("move_vma");
        if !Arc::ptr_eq(&new_vma, &vma) && vma.start(cx) == old_addr && vma.end(cx) == old_end {
            crate::mm::rmap::unlink_anon_vmas(cx, &vma);
        }
        drop(w);
    } else {
        // Unmap the old range with the write lock held throughout.
        do_vmi_munmap(cx, mm, w, old_addr, old_end, false);
    }
    cx.rcu_quiescent();
    crate::check::check_tlb_permission(cx, mm, &[(old_addr, old_end)], tlb_before, "mremap");
    Ok(new_addr)
}
