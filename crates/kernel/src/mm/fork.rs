//! fork (`kernel/fork.c` `dup_mmap`, `mm/memory.c` `copy_page_range`, ≈6.18): write-lock every
//! parent VMA, clone it with `anon_vma_fork`, and copy its page tables, write-protecting private
//! anonymous pages in both parent and child for COW; then flush the parent's TLBs. An anon page
//! shared with the child stops being `PageAnonExclusive`; one that may be DMA-pinned and is
//! exclusive is copied for the child instead (`copy_present_page`, read at 6.8), so the pin
//! keeps seeing the parent's writes.

use crate::arch::pgtable::Entry;
use crate::mm::folio::{self, page_folio};
use crate::mm::memory::{mm_counter, vm_normal_page};
use crate::mm::pgtable::{self, EntryPtr};
use crate::mm::rmap::{anon_vma_fork, link_file_vma};
use crate::mm::shmem::get_file;
use crate::mm::types::{MmStruct, Vma};
use crate::mm::vma::mm_alloc;
use crate::{Ctx, Errno};
use mmcheck_platform::FrameRef;
use std::sync::Arc;

/// `dup_mmap`: a child mm sharing the parent's pages copy-on-write.
pub fn dup_mmap(cx: Ctx<'_>, old: &MmStruct) -> Result<Arc<MmStruct>, Errno> {
    let _f = cx.cpu.enter("dup_mmap");
    let new = mm_alloc(cx)?;
    let ow = old.mmap_lock.write_lock(cx.cpu);
    let nw = new.mmap_lock.write_lock(cx.cpu);
    let mut res = Ok(());
    for vma in old.all_vmas_locked(cx) {
        if cx.proto().fork_lock_vmas {
            ow.vma_start_write(&vma.lock);
        }
        if let Some(f) = &vma.file {
            get_file(cx, f);
        }
        let tmp = crate::mm::vma::vm_area_alloc(
            cx,
            &new,
            vma.start(cx),
            vma.end(cx),
            vma.pgoff(cx),
            // dup_userfaultfd without UFFD_FEATURE_EVENT_FORK: the child is not registered.
            crate::mm::types::VmFlags(
                vma.flags(cx).0
                    & !(crate::mm::types::VmFlags::UFFD_MISSING
                        | crate::mm::types::VmFlags::UFFD_WP),
            ),
            vma.file.clone(),
        );
        anon_vma_fork(cx, &tmp, &vma);
        link_file_vma(cx, &tmp);
        nw.vma_mark_attached(&tmp.lock);
        new.tree_insert(cx, tmp.clone());
        if let Err(e) = copy_page_range(cx, &new, &tmp, old, &vma) {
            res = Err(e);
            break;
        }
    }
    drop(nw);
    cx.cpu.flush_tlb_mm(old.id);
    drop(ow);
    res.map(|_| new)
}

/// `copy_page_range` for one VMA.
fn copy_page_range(
    cx: Ctx<'_>,
    dst_mm: &MmStruct,
    dst: &Arc<Vma>,
    src_mm: &MmStruct,
    src: &Arc<Vma>,
) -> Result<(), Errno> {
    let _f = cx.cpu.enter("copy_page_range");
    // vma_needs_copy: without an anon_vma, every page refaults correctly in the child (file
    // pages from the page cache, the zero page); read now, after anon_vma_fork, so an anon_vma
    // a racing fault attached in between (no vma_start_write, 6.4) makes the copy happen for a
    // child VMA linked to nothing.
    if src.anon_vma(cx).is_none() {
        return Ok(());
    }
    // A COW mapping: raw_write_seqcount_begin(&src_mm->write_protect_seq) around the copy, so a
    // FOLL_PIN GUP-fast that overlaps it backs off (the read side goes to the mmap lock).
    let is_cow = !src.is_shared(cx);
    if is_cow {
        src_mm.write_protect_seq.add(&cx.cpu, 1);
    }
    let r = copy_page_range_inner(cx, dst_mm, dst, src_mm, src);
    if is_cow {
        src_mm.write_protect_seq.add(&cx.cpu, 1);
    }
    r
}

fn copy_page_range_inner(
    cx: Ctx<'_>,
    dst_mm: &MmStruct,
    dst: &Arc<Vma>,
    src_mm: &MmStruct,
    src: &Arc<Vma>,
) -> Result<(), Errno> {
    let g = cx.geo();
    let mut addr = src.start(cx);
    while addr < src.end(cx) {
        let next = ((addr & g.pmd_mask()) + g.pmd_size()).min(src.end(cx));
        if let Some(spmd) = pgtable::pmd_off(cx, src_mm, addr) {
            // copy_pmd_range: a huge PMD that cannot be shared (-EAGAIN) was split; fall
            // through to the PTE copy.
            let mut v = spmd.get(cx);
            if v.pmd_trans_huge() || v.is_migration() {
                match copy_huge_pmd(cx, dst_mm, dst, src_mm, src, spmd, addr) {
                    Err(Errno::Eagain) => v = spmd.get(cx),
                    r => {
                        r?;
                        addr = next;
                        continue;
                    }
                }
            }
            if v.is_table() {
                copy_pte_range(cx, dst_mm, dst, src_mm, src, spmd, addr, next)?;
            }
        }
        addr = next;
    }
    Ok(())
}

/// `copy_huge_pmd`: share the THP write-protected, with a new deposited table for the child. A
/// maybe-pinned exclusive THP cannot be shared: split the source PMD, `-EAGAIN`.
fn copy_huge_pmd(
    cx: Ctx<'_>,
    dst_mm: &MmStruct,
    _dst: &Arc<Vma>,
    src_mm: &MmStruct,
    src: &Arc<Vma>,
    spmd: EntryPtr,
    addr: u64,
) -> Result<(), Errno> {
    let dpmd = pgtable::pmd_alloc(cx, dst_mm, addr)?;
    let table = pgtable::alloc_table(cx, 1).ok_or(Errno::Enomem)?;
    let dl = pgtable::pmd_lock(cx, dst_mm, dpmd);
    let sl = pgtable::pmd_lockptr(cx, src_mm, spmd);
    let sg = sl.lock(cx.cpu);
    let v = spmd.get(cx);
    if v.is_migration() {
        // is_swap_pmd: both get a read-only migration entry (the parent's is downgraded unless
        // already readable), the child its rss and a deposited table.
        let e = if v.swp_type() == Entry::SWP_MIGRATION_READ {
            v
        } else {
            Entry::swp(Entry::SWP_MIGRATION_READ, v.pfn())
        };
        spmd.set(cx, e);
        dst_mm.add_rss(crate::mm::types::MM_ANONPAGES, 1 << g_order(cx));
        crate::mm::huge_memory::deposit(cx, dpmd, table);
        pgtable::mm_inc_nr_tables(dst_mm, 1, 1);
        dpmd.set(cx, e);
        drop(sg);
        drop(dl);
        return Ok(());
    }
    if !v.pmd_trans_huge() {
        // Split under us (the lockless read saw it huge): -EAGAIN, so that copy_pmd_range
        // falls through to the PTEs. The model used to return 0 here, skipping them.
        pgtable::free_table(cx, table);
        drop(sg);
        drop(dl);
        return Err(Errno::Eagain);
    }
    let f = cx.cpu.frame_ref(v.pfn());
    if !crate::mm::huge_memory::is_huge_zero_pmd(cx, v) {
        folio::folio_ref_add(cx, f, 1);
        let maybe_pinned = folio::folio_maybe_dma_pinned(cx, f);
        if !folio::folio_try_dup_anon_rmap_pmd(cx, f, maybe_pinned) {
            // Page maybe pinned: split and retry on PTEs.
            folio::folio_put(cx, f);
            pgtable::free_table(cx, table);
            drop(sg);
            drop(dl);
            crate::mm::huge_memory::__split_huge_pmd(cx, src_mm, src, spmd, addr);
            return Err(Errno::Eagain);
        }
        dst_mm.add_rss(crate::mm::types::MM_ANONPAGES, 1 << g_order(cx));
        spmd.set(cx, v.wrprotect());
    }
    crate::mm::huge_memory::deposit(cx, dpmd, table);
    pgtable::mm_inc_nr_tables(dst_mm, 1, 1);
    dpmd.set(cx, v.wrprotect());
    Ok(())
}

fn g_order(cx: Ctx<'_>) -> u32 {
    cx.geo().pmd_order()
}

/// `copy_pte_range`: both PTLs (dst then src, nested), entry by entry. A page that must be
/// copied now (`copy_present_page`) needs a preallocated folio: drop both locks, allocate, and
/// start again at that entry (`-EAGAIN`, `folio_prealloc`).
#[allow(clippy::too_many_arguments)]
fn copy_pte_range(
    cx: Ctx<'_>,
    dst_mm: &MmStruct,
    dst: &Arc<Vma>,
    src_mm: &MmStruct,
    src: &Arc<Vma>,
    spmd: EntryPtr,
    mut addr: u64,
    end: u64,
) -> Result<(), Errno> {
    let dpmd = pgtable::pmd_alloc(cx, dst_mm, addr)?;
    let mut prealloc: Option<FrameRef> = None;
    let r = loop {
        match copy_pte_range_locked(
            cx,
            dst_mm,
            dst,
            src_mm,
            src,
            spmd,
            dpmd,
            addr,
            end,
            &mut prealloc,
        ) {
            Ok(None) => break Ok(()),
            Ok(Some(again)) => {
                addr = again;
                match folio::folio_alloc(cx, 0) {
                    Some(f) => prealloc = Some(f),
                    None => break Err(Errno::Enomem),
                }
            }
            Err(e) => break Err(e),
        }
    };
    if let Some(f) = prealloc {
        folio::folio_put(cx, f);
    }
    r
}

/// One pass of `copy_pte_range` under both PTLs: `Some(addr)` when the entry at `addr` needs a
/// preallocated folio.
#[allow(clippy::too_many_arguments)]
fn copy_pte_range_locked(
    cx: Ctx<'_>,
    dst_mm: &MmStruct,
    dst: &Arc<Vma>,
    src_mm: &MmStruct,
    src: &Arc<Vma>,
    spmd: EntryPtr,
    dpmd: EntryPtr,
    addr: u64,
    end: u64,
    prealloc: &mut Option<FrameRef>,
) -> Result<Option<u64>, Errno> {
    let g = cx.geo();
    pgtable::pte_alloc(cx, dst_mm, dpmd)?;
    let Some(dl) = pgtable::pte_offset_map_lock(cx, dst_mm, dpmd) else {
        return Ok(None);
    };
    let Some((smap, _v, sptl)) = pgtable::pte_offset_map_rw_nolock(cx, src_mm, spmd) else {
        return Ok(None);
    };
    let _sg = sptl.lock(cx.cpu);
    let cow = !src.is_shared(cx);
    let mut a = addr;
    while a < end {
        let i = g.index(a, 1);
        let spte = smap.pte(i);
        let v = spte.get(cx);
        if v.is_migration() {
            // copy_nonpresent_pte: the child gets the migration entry too (no reference: the
            // migration holds it; remove_migration_ptes restores both through the anon_vma or
            // i_mmap). A writable or exclusive entry of a COW mapping becomes readable in both.
            let f = page_folio(cx, v.pfn());
            dst_mm.add_rss(mm_counter(cx, f), 1);
            let mut nv = v;
            if cow && v.swp_type() != Entry::SWP_MIGRATION_READ {
                nv = Entry::swp(Entry::SWP_MIGRATION_READ, v.pfn()).swp_keep_uffd_wp(v);
                spte.set(cx, nv);
            }
            // The child is not registered for uffd-wp: pte_swp_clear_uffd_wp.
            dl.pte(i).set(cx, nv.swp_clear_uffd_wp());
            a += g.page_size();
            continue;
        }
        if v.is_swap_entry() {
            // copy_nonpresent_pte: one more reference on the slot (swap_duplicate), and the
            // entry is shared now: the parent's loses its exclusive bit, the child's never has
            // it.
            let _c = cx.cpu.enter("copy_nonpresent_pte");
            if !crate::mm::swapfile::swap_duplicate(cx, v.swp_offset()) {
                cx.cpu
                    .warn_on(true, "copy_nonpresent_pte: swap_duplicate of a free slot");
                a += g.page_size();
                continue;
            }
            let nv = v.swp_clear_exclusive();
            if v.swp_exclusive() {
                spte.set(cx, nv);
            }
            dst_mm.add_rss(crate::mm::types::MM_SWAPENTS, 1);
            dl.pte(i).set(cx, nv.swp_clear_uffd_wp());
            a += g.page_size();
            continue;
        }
        if v.is_none() || !v.present() {
            a += g.page_size();
            continue;
        }
        let mut nv = v;
        if let Some(p) = vm_normal_page(cx, v) {
            let f = page_folio(cx, p);
            folio::folio_ref_add(cx, f, 1);
            if folio::folio_test_anon(cx, f) {
                // folio_needs_cow_for_dma (MMF_HAS_PINNED is implied by a pin of this mm's
                // exclusive page).
                let maybe_pinned = folio::folio_maybe_dma_pinned(cx, f);
                if !folio::folio_try_dup_anon_rmap_pte(cx, p, maybe_pinned) {
                    folio::folio_put(cx, f);
                    // copy_present_page: the child gets its own copy now; the parent keeps its
                    // writable exclusive page (and the pin keeps pointing into it).
                    let Some(new) = prealloc.take() else {
                        return Ok(Some(a));
                    };
                    folio::copy_pages(cx, new, cx.cpu.frame_ref(p), 1);
                    folio::folio_mark_uptodate_barrier(cx);
                    let av = dst.anon_vma(cx).map(|a| a.id).unwrap_or(0);
                    folio::folio_add_new_anon_rmap(
                        cx,
                        new,
                        av,
                        dst.linear_page_index(cx, a),
                        false,
                    );
                    folio::folio_set(cx, new, folio::PG_LRU);
                    dst_mm.add_rss(crate::mm::types::MM_ANONPAGES, 1);
                    let writable = dst.flags(cx).has(crate::mm::types::VmFlags::WRITE);
                    dl.pte(i).set(cx, Entry::leaf(new.pfn, writable, true));
                    a += g.page_size();
                    continue;
                }
            } else {
                folio::folio_add_rmap_pte(cx, p);
            }
            dst_mm.add_rss(mm_counter(cx, f), 1);
            if cow && v.write() {
                // ptep_set_wrprotect on the parent: atomically, hardware may set D meanwhile.
                let mut cur = v;
                loop {
                    match spte.cmpxchg(cx, cur, cur.wrprotect()) {
                        Ok(_) => break,
                        Err(now) => cur = now,
                    }
                }
                nv = cur.wrprotect();
            }
        }
        if !cow {
            nv = nv.without(Entry::DIRTY); // pte_mkclean for shared mappings
        }
        // The child is not registered for uffd-wp: pte_clear_uffd_wp.
        dl.pte(i)
            .set(cx, nv.without(Entry::ACCESSED | Entry::UFFD_WP));
        a += g.page_size();
    }
    Ok(None)
}
