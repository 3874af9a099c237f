//! Anonymous reverse mapping structures (`mm/rmap.c`, ≈6.18): `anon_vma_prepare`,
//! `anon_vma_clone`, `anon_vma_fork`, `unlink_anon_vmas`, and the file-side `i_mmap` link and
//! unlink. The rmap walks themselves come with the seed mechanisms.

use crate::mm::types::{AnonVma, MmStruct, Vma};
use crate::{Ctx, Errno};
use mmcheck_platform::{Access, FrameRef, RwSem};
use std::sync::Arc;

fn new_anon_vma(cx: Ctx<'_>, root: Option<Arc<AnonVma>>) -> Arc<AnonVma> {
    let m = &cx.k.machine;
    let id = m.name_owner(m.new_id(), mmcheck_platform::Owner::AnonVma);
    let av = Arc::new(AnonVma {
        id,
        root,
        rwsem: RwSem::new(m.name_field(m.new_lock_id("&anon_vma->rwsem"), id, "rwsem")),
        tree: crate::mm::types::VmaIntervalTree::new(m.name_field(m.new_id(), id, "rb_root")),
    });
    cx.k.anon_vmas.record(|v| v.push(Arc::downgrade(&av)));
    av
}

/// `anon_vma_compatible(a, b)` (`mm/vma.c`): `a` ends where `b` starts, they map the same file
/// (or none) at contiguous offsets, and their flags differ at most in the access bits. (No
/// mempolicies in the model: `mpol_equal` holds.)
fn anon_vma_compatible(cx: Ctx<'_>, a: &Vma, b: &Vma) -> bool {
    use crate::mm::types::VmFlags;
    let ps = cx.geo().page_shift;
    let access = VmFlags::READ | VmFlags::WRITE;
    a.end(cx) == b.start(cx)
        && a.file.as_ref().map(|f| f.id) == b.file.as_ref().map(|f| f.id)
        && (a.flags(cx).0 ^ b.flags(cx).0) & !access == 0
        && b.pgoff(cx) == a.pgoff(cx) + ((b.start(cx) - a.start(cx)) >> ps)
}

/// `reusable_anon_vma(old, a, b)`: `old`'s anon_vma, if `a` and `b` are compatible and `old` is
/// linked to that one anon_vma alone (`list_is_singular(&old->anon_vma_chain)`: no fork history).
/// LOCKING: mmap lock held (read); `old->anon_vma` is read with `READ_ONCE` and `old`'s chain
/// racily, as the kernel does: a concurrent `anon_vma_prepare` on `old` may be linking it.
fn reusable_anon_vma(cx: Ctx<'_>, old: &Vma, a: &Vma, b: &Vma) -> Option<Arc<AnonVma>> {
    if !anon_vma_compatible(cx, a, b) {
        return None;
    }
    let av = old.anon_vma(cx)?;
    old.anon_vma_chain_is_singular_racy(cx).then_some(av)
}

/// `find_mergeable_anon_vma` (`mm/vma.c`): reuse the anon_vma of a neighbour this VMA could
/// merge with, trying the next VMA first, then the previous one, so that a later merge of the
/// two needs no anon_vma change.
pub fn find_mergeable_anon_vma(cx: Ctx<'_>, mm: &MmStruct, vma: &Vma) -> Option<Arc<AnonVma>> {
    let _f = cx.cpu.enter("find_mergeable_anon_vma");
    let (prev, next) = mm.neighbours(cx, vma.start(cx), vma.end(cx));
    if let Some(n) = next {
        if let Some(av) = reusable_anon_vma(cx, &n, vma, &n) {
            return Some(av);
        }
    }
    prev.and_then(|p| reusable_anon_vma(cx, &p, &p, vma))
}

/// `__anon_vma_prepare` (mmap lock held, read or write): give `vma` an anon_vma, a mergeable
/// neighbour's (`find_mergeable_anon_vma`) or a new one.
/// LOCKING: the anon_vma's (root) lock for write, then `page_table_lock`; recheck
/// `vma->anon_vma` (another thread may have prepared it), then set it and link the VMA into the
/// anon_vma's tree.
pub fn anon_vma_prepare(cx: Ctx<'_>, mm: &MmStruct, vma: &Arc<Vma>) -> Result<Arc<AnonVma>, Errno> {
    if let Some(av) = vma.anon_vma(cx) {
        return Ok(av);
    }
    let _f = cx.cpu.enter("__anon_vma_prepare");
    let av = match find_mergeable_anon_vma(cx, mm, vma) {
        Some(av) => av,
        None => new_anon_vma(cx, None),
    };
    let w = av.lock().write(cx.cpu);
    let ptl = mm.page_table_lock.lock(cx.cpu);
    let res = match vma.anon_vma(cx) {
        Some(existing) => existing,
        None => {
            vma.set_anon_vma(cx, Some(av.clone()));
            // LOCKING: the chain is changed under mmap R + page_table_lock here, the tree under
            // the anon_vma's lock.
            vma.anon_vma_chain.write(&cx.cpu, |c| c.push(av.clone()));
            av.tree_insert(cx, vma.clone());
            av.clone()
        }
    };
    drop(ptl);
    drop(w);
    Ok(res)
}

/// `anon_vma_clone`: link `dst` into every anon_vma `src` is linked into.
pub fn anon_vma_clone(cx: Ctx<'_>, dst: &Arc<Vma>, src: &Vma) {
    let chain = src.anon_vma_chain.read(&cx.cpu, |c| c.clone());
    for av in chain {
        let w = av.lock().write(cx.cpu);
        av.tree_insert(cx, dst.clone());
        dst.anon_vma_chain.write(&cx.cpu, |c| c.push(av.clone()));
        drop(w);
    }
    dst.init_anon_vma(cx, src.anon_vma(cx));
}

/// `anon_vma_fork`: the child VMA joins the parent's anon_vmas and gets its own, whose root is
/// the parent's root.
pub fn anon_vma_fork(cx: Ctx<'_>, dst: &Arc<Vma>, src: &Vma) {
    let _f = cx.cpu.enter("anon_vma_fork");
    let Some(parent) = src.anon_vma(cx) else {
        return;
    };
    anon_vma_clone(cx, dst, src);
    let root = parent.root.clone().unwrap_or(parent);
    let av = new_anon_vma(cx, Some(root));
    let w = av.lock().write(cx.cpu);
    av.tree_insert(cx, dst.clone());
    dst.anon_vma_chain.write(&cx.cpu, |c| c.push(av.clone()));
    dst.init_anon_vma(cx, Some(av.clone()));
    drop(w);
}

/// `unlink_anon_vmas`: hide `vma` from every anon rmap walk, and (since 2555283eb40d, 6.0)
/// clear `vma->anon_vma` under the anon_vma lock: a VMA that lives on (`MREMAP_DONTUNMAP`'s old
/// VMA) gets a new anon_vma at its next anonymous fault.
pub fn unlink_anon_vmas(cx: Ctx<'_>, vma: &Vma) {
    let chain = vma.anon_vma_chain.write(&cx.cpu, std::mem::take);
    if chain.is_empty() {
        return;
    }
    let _f = cx.cpu.enter("unlink_anon_vmas");
    let last = chain.len() - 1;
    for (i, av) in chain.into_iter().enumerate() {
        let w = av.lock().write(cx.cpu);
        av.tree_remove(cx, vma);
        if i == last {
            vma.set_anon_vma(cx, None);
        }
        drop(w);
    }
}

/// `vma_link_file` / `unlink_file_vma`: under `i_mmap_rwsem` write.
pub fn link_file_vma(cx: Ctx<'_>, vma: &Arc<Vma>) {
    if let Some(f) = &vma.file {
        let w = f.i_mmap_rwsem.write(cx.cpu);
        f.i_mmap_insert(cx, vma.clone());
        drop(w);
    }
}

pub fn unlink_file_vma(cx: Ctx<'_>, vma: &Vma) {
    if let Some(f) = &vma.file {
        let _f = cx.cpu.enter("unlink_file_vma");
        let w = f.i_mmap_rwsem.write(cx.cpu);
        f.i_mmap_remove(cx, vma);
        drop(w);
    }
}

/// How an rmap walk locks its tree (`rmap_walk` vs `rmap_walk_locked`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RmapLock {
    /// Take the anon_vma / i_mmap lock for read.
    Read,
    /// The caller already holds it.
    Held,
}

/// `rmap_walk` (`rmap_walk_anon` / `rmap_walk_file`): call `rmap_one(vma, addr)` for every VMA
/// that may map `folio`, in interval-tree order; stop early when it returns false.
pub fn rmap_walk(
    cx: Ctx<'_>,
    folio: FrameRef,
    lock: RmapLock,
    rmap_one: &mut dyn FnMut(&Arc<Vma>, u64) -> bool,
) {
    let _f = cx.cpu.enter("rmap_walk");
    let pm = cx.cpu.page(folio.pfn, Access::Read);
    let mapping = pm.get(mmcheck_platform::PageField::Mapping);
    let index = pm.get(mmcheck_platform::PageField::Index);
    let nr = crate::mm::folio::folio_nr_pages(cx, folio);
    if mapping & 1 == 1 {
        let id = mapping >> 1;
        let av =
            cx.k.anon_vmas
                .deref(|v| v.iter().filter_map(|w| w.upgrade()).find(|a| a.id == id));
        let Some(av) = av else { return };
        let _f = cx.cpu.enter("rmap_walk_anon");
        let g = (lock == RmapLock::Read).then(|| av.lock().read(cx.cpu));
        // The tree is read under the lock, one VMA at a time (interval-tree order).
        let vmas = av.tree_overlapping(cx, index, index + nr - 1);
        for vma in vmas {
            let Some(addr) = vma.folio_address(cx, index, nr) else {
                continue;
            };
            if !rmap_one(&vma, addr) {
                break;
            }
        }
        drop(g);
    } else if mapping != 0 {
        let id = mapping >> 1;
        let Some(file) = cx.k.file_by_id(id) else {
            return;
        };
        let _f = cx.cpu.enter("rmap_walk_file");
        // VM_BUG_ON_FOLIO(!folio_test_locked(folio)): the folio lock keeps `mapping` (and the
        // i_mmap tree under it) from being truncated away and freed during the walk.
        cx.cpu.warn_on(
            !crate::mm::folio::folio_test_locked(cx, folio),
            "rmap_walk_file: folio not locked",
        );
        let g = (lock == RmapLock::Read).then(|| file.i_mmap_rwsem.read(cx.cpu));
        for vma in file.i_mmap_overlapping(cx, index, index + nr - 1) {
            let Some(addr) = vma.folio_address(cx, index, nr) else {
                continue;
            };
            if !rmap_one(&vma, addr) {
                break;
            }
        }
        drop(g);
    }
}

/// A mapping found by [`page_vma_mapped_walk`]: the PTE, with its PTL held and table mapped.
pub struct Pvmw<'a> {
    pub locked: crate::mm::pgtable::PteLocked<'a>,
    pub pte: crate::mm::pgtable::EntryPtr,
    pub entry: crate::arch::pgtable::Entry,
}

/// `page_vma_mapped_walk` for one address (PTE level): find the entry at `addr` that maps a page
/// of `folio` (or, with `migration`, a migration entry to it), and return it with the PTL held.
/// Without `sync` (6.13+): map without the lock, skip a none entry, then lock and recheck the PMD
/// (`map_pte`, R1).
pub fn page_vma_mapped_walk<'a>(
    cx: Ctx<'a>,
    mm: &'a MmStruct,
    folio: FrameRef,
    addr: u64,
    sync: bool,
    migration: bool,
) -> Option<Pvmw<'a>> {
    use crate::mm::pgtable;
    let _f = cx.cpu.enter("page_vma_mapped_walk");
    let g = cx.geo();
    let nr = crate::mm::folio::folio_nr_pages(cx, folio) as u32;
    let pmd = pgtable::pmd_off(cx, mm, addr)?;
    let idx = g.index(addr, 1);
    let locked = if sync {
        pgtable::pte_offset_map_lock(cx, mm, pmd)?
    } else {
        loop {
            let (map, pmdval, ptl) = pgtable::pte_offset_map_rw_nolock(cx, mm, pmd)?;
            if map.pte(idx).get(cx).is_none() {
                return None;
            }
            let guard = ptl.lock(cx.cpu);
            if cx.cpu.recheck("pmd_same", pmd.get(cx) == pmdval) {
                break pgtable::PteLocked {
                    ptl: guard,
                    map,
                    pmdval,
                };
            }
        }
    };
    let pte = locked.pte(idx);
    let entry = pte.get(cx);
    // check_pte: with PVMW_MIGRATION only a migration entry to the folio matches.
    let in_folio = entry.pfn() >= folio.pfn && entry.pfn() < folio.pfn + nr;
    let hit = if migration {
        entry.is_migration() && in_folio
    } else {
        entry.present() && in_folio
    };
    hit.then(|| Pvmw { locked, pte, entry })
}

/// What `page_vma_mapped_walk` finds at the PMD level of `addr`.
pub enum PmdWalk<'a> {
    /// The PMD maps `folio` (or, with `migration`, holds a migration entry to it): PMD lock held.
    Pmd {
        ptl: mmcheck_platform::SpinGuard<'a>,
        pmd: crate::mm::pgtable::EntryPtr,
        entry: crate::arch::pgtable::Entry,
    },
    /// A PTE table (or a THP split under us): go on at the PTE level.
    Pte,
    /// Nothing of the folio here.
    NotFound,
}

/// The PMD step of `page_vma_mapped_walk`: read the PMD locklessly (`pmdp_get_lockless`); on a
/// huge PMD or a PMD migration entry take the PMD lock and read it again: a migration entry
/// matches only with `PVMW_MIGRATION`, a huge PMD only without; anything else under the lock
/// was split under us (PTE level).
///
/// With `sync` (`PVMW_SYNC`: `remove_migration_pte`, `TTU_SYNC`), a PMD found none for a
/// PMD-sized folio in a range that can hold one (`thp_vma_suitable_order`) is not passed over
/// before the PMD lock has been taken and dropped: whoever cleared it under that lock
/// (`zap_huge_pmd`, `move_huge_pmd`, which sets the new PMD before it unlocks) has finished.
/// That is what lets an rmap walk that visits mremap's old VMA before its new one see a moved
/// PMD in one of them (732ed55823fc, Hugh Dickins, "mm/thp: try_to_unmap() use TTU_SYNC for
/// safe splitting", 5.13; today's condition is `thp_vma_suitable_order(vma, addr, PMD_ORDER)`
/// and `nr_pages >= HPAGE_PMD_NR`).
pub fn page_vma_mapped_walk_pmd<'a>(
    cx: Ctx<'a>,
    mm: &'a MmStruct,
    vma: &Vma,
    folio: FrameRef,
    addr: u64,
    migration: bool,
    sync: bool,
) -> PmdWalk<'a> {
    use crate::mm::pgtable;
    let _f = cx.cpu.enter("page_vma_mapped_walk");
    let Some(pmd) = pgtable::pmd_off(cx, mm, addr) else {
        return PmdWalk::NotFound;
    };
    let pmde = pmd.get(cx);
    let nr = crate::mm::folio::folio_nr_pages(cx, folio) as u32;
    let in_folio =
        |e: crate::arch::pgtable::Entry| e.pfn() >= folio.pfn && e.pfn() < folio.pfn + nr;
    if pmde.pmd_trans_huge() || pmde.is_migration() {
        let ptl = pgtable::pmd_lock(cx, mm, pmd);
        let pmde = pmd.get(cx);
        if !pmde.present() {
            if migration && pmde.is_migration() && in_folio(pmde) {
                return PmdWalk::Pmd {
                    ptl,
                    pmd,
                    entry: pmde,
                };
            }
            return PmdWalk::NotFound;
        }
        if pmde.huge_leaf() {
            if !migration && in_folio(pmde) {
                return PmdWalk::Pmd {
                    ptl,
                    pmd,
                    entry: pmde,
                };
            }
            return PmdWalk::NotFound;
        }
        drop(ptl);
        return PmdWalk::Pte;
    }
    if !pmde.present() {
        let g = cx.geo();
        let suitable = {
            let h = addr & g.pmd_mask();
            h >= vma.start(cx) && h + g.pmd_size() <= vma.end(cx)
        };
        if sync && suitable && u64::from(nr) >= g.pmd_size() >> g.page_shift {
            drop(pgtable::pmd_lock(cx, mm, pmd));
        }
        return PmdWalk::NotFound;
    }
    PmdWalk::Pte
}
