//! `UFFDIO_MOVE` (`mm/userfaultfd.c` `move_pages`, `move_pages_pte`, `move_present_pte`,
//! `move_zeropage_pte`, and `move_pages_huge_pmd` of `mm/huge_memory.c`; read at 6.11
//! (71c186efc1b2) with the 6.14 `dst_pmd` recheck, "mm: userfaultfd: recheck dst_pmd entry in
//! move_pages_pte()", Qi Zheng, in the series that added PT reclaim).
//!
//! The move remaps private anonymous pages from `src` to `dst` with no copy: under the per-VMA
//! read locks of both VMAs (`uffd_move_lock`, or the mmap read lock while they are taken), each
//! source PTE is moved with both PTLs held (`double_pt_lock`) after rechecking that neither PTE
//! changed since it was read (`pte_same`) and that the destination table is still the one the
//! PMD names (`pmd_same`: a none destination PTE does not keep its table from being reclaimed).
//! The folio must be exclusive to this process (`PageAnonExclusive`, not pinned: `-EBUSY`
//! otherwise); it is locked (a trylock while the tables are mapped, else drop them, sleep and
//! retry), its anon_vma write-locked the same way, then it moves to the destination VMA's
//! anon_vma at its new index (`folio_move_anon_rmap`) and the source PTE is cleared and flushed
//! (`ptep_clear_flush`). A huge source PMD moves whole when both addresses are PMD-aligned, the
//! rest of the range covers it and the destination PMD is none; otherwise it is split first.
//!
//! The context has no event features (fork, remap, remove events): `mmap_changing` is never
//! raised, so its check under `map_changing_lock` always passes (docs/fidelity.md).

use crate::arch::pgtable::Entry;
use crate::mm::folio;
use crate::mm::huge_memory;
use crate::mm::memory::{lock_vma_under_rcu, VmaReadLocked};
use crate::mm::pgtable::{self, EntryPtr};
use crate::mm::rmap::anon_vma_prepare;
use crate::mm::types::{AnonVma, MmStruct, VmFlags, Vma};
use crate::mm::userfaultfd::{uffd_lock_vma, userfaultfd_armed};
use crate::{Ctx, Errno};
use mmcheck_platform::{Access, FrameRef, PageField, SpinGuard, SpinLock};
use std::sync::Arc;

/// `UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES`: a hole in the source is moved as a hole (counted as
/// moved) instead of failing with `-ENOENT`.
pub const UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES: u64 = 1 << 1;

/// The VMAs `uffd_move_lock` read-locked; dropping is `uffd_move_unlock` (source first).
struct MoveLocks<'a> {
    /// `None` when the source lies in the destination VMA (locked once).
    src: Option<VmaReadLocked<'a>>,
    dst: VmaReadLocked<'a>,
}

impl MoveLocks<'_> {
    fn src_vma(&self) -> &Arc<Vma> {
        self.src.as_ref().map(|l| &l.vma).unwrap_or(&self.dst.vma)
    }
}

/// `find_vma_and_prepare_anon` (mmap lock held).
fn find_vma_and_prepare_anon(cx: Ctx<'_>, mm: &MmStruct, addr: u64) -> Result<Arc<Vma>, Errno> {
    let vma = mm.vma_lookup(cx, addr).ok_or(Errno::Enoent)?;
    if !vma.is_shared(cx) {
        anon_vma_prepare(cx, mm, &vma).map_err(|_| Errno::Enomem)?;
    }
    Ok(vma)
}

/// `uffd_move_lock`: the destination VMA through `uffd_lock_vma` (its anon_vma prepared), then
/// the source with `lock_vma_under_rcu`. If that fails, drop the destination's lock and take
/// both under the mmap read lock (`find_vmas_mm_locked`, then `down_read` of each VMA lock):
/// taking the second VMA lock by `uffd_lock_vma` could deadlock against a writer that holds
/// the mmap write lock and waits for the first.
fn uffd_move_lock<'a>(
    cx: Ctx<'a>,
    mm: &'a MmStruct,
    dst_start: u64,
    src_start: u64,
) -> Result<MoveLocks<'a>, Errno> {
    let _f = cx.cpu.enter("uffd_move_lock");
    let dst = uffd_lock_vma(cx, mm, dst_start)?;
    // The source in the destination VMA: never lock the same VMA twice.
    if dst.vma.contains(cx, src_start) {
        return Ok(MoveLocks { src: None, dst });
    }
    if cx.proto().uffd_per_vma_lock() {
        if let Some(src) = lock_vma_under_rcu(cx, mm, src_start) {
            return Ok(MoveLocks {
                src: Some(src),
                dst,
            });
        }
    }
    drop(dst);
    let r = mm.mmap_lock.read_lock(cx.cpu);
    let dvma = find_vma_and_prepare_anon(cx, mm, dst_start)?;
    let svma = if dvma.contains(cx, src_start) {
        None
    } else {
        Some(mm.vma_lookup(cx, src_start).ok_or(Errno::Enoent)?)
    };
    // down_read(&vma->vm_lock): no writer holds it while we hold the mmap read lock.
    if dvma.lock.start_read_raw(cx.cpu, &mm.mmap_lock).is_err() {
        return Err(Errno::Eagain);
    }
    let dst = VmaReadLocked::read_locked(cx, dvma);
    let src = match svma {
        Some(s) => {
            if s.lock.start_read_raw(cx.cpu, &mm.mmap_lock).is_err() {
                return Err(Errno::Eagain);
            }
            Some(VmaReadLocked::read_locked(cx, s))
        }
        None => None,
    };
    drop(r);
    Ok(MoveLocks { src, dst })
}

/// `validate_move_areas`: same access flags, writable, both private anonymous, and the
/// destination registered with this context.
fn validate_move_areas(cx: Ctx<'_>, src: &Vma, dst: &Vma) -> Result<(), Errno> {
    let access = VmFlags::READ | VmFlags::WRITE;
    let (sf, df) = (src.flags(cx), dst.flags(cx));
    if sf.0 & access != df.0 & access {
        return Err(Errno::Einval);
    }
    if !sf.has(VmFlags::WRITE) {
        return Err(Errno::Einval);
    }
    // vm_userfaultfd_ctx.ctx == ctx: the model has one context, the registration flags say it.
    if !userfaultfd_armed(cx, dst) {
        return Err(Errno::Einval);
    }
    if !src.is_anonymous() || !dst.is_anonymous() {
        return Err(Errno::Einval);
    }
    Ok(())
}

/// `mm_find_pmd`: the PMD entry for `addr` if the upper tables exist (its value unchecked).
fn mm_find_pmd(cx: Ctx<'_>, mm: &MmStruct, addr: u64) -> Option<EntryPtr> {
    pgtable::pmd_off(cx, mm, addr)
}

/// `pmd_trans_huge_lock`: the PMD lock if the PMD is a huge leaf or a migration entry, checked
/// again under the lock.
fn pmd_trans_huge_lock<'a>(cx: Ctx<'a>, mm: &'a MmStruct, pmd: EntryPtr) -> Option<SpinGuard<'a>> {
    let v = pmd.get(cx);
    if !(v.huge_leaf() || v.is_migration()) {
        return None;
    }
    let g = pgtable::pmd_lock(cx, mm, pmd);
    let v = pmd.get(cx);
    (v.huge_leaf() || v.is_migration()).then_some(g)
}

/// `move_splits_huge_pmd`.
fn move_splits_huge_pmd(cx: Ctx<'_>, dst: u64, src: u64, src_end: u64) -> bool {
    let g = cx.geo();
    let off = g.pmd_size() - 1;
    src & off != 0 || dst & off != 0 || src_end - src < g.pmd_size()
}

/// `move_pages` (`UFFDIO_MOVE` of `len` bytes from `src_start` to `dst_start`): the bytes
/// moved, or the error that stopped the move before anything was moved.
pub fn move_pages(
    cx: Ctx<'_>,
    mm: &MmStruct,
    dst_start: u64,
    src_start: u64,
    len: u64,
    mode: u64,
) -> Result<u64, Errno> {
    let _f = cx.cpu.enter("move_pages");
    let g = cx.geo();
    let ps = g.page_size();
    if !src_start.is_multiple_of(ps)
        || !dst_start.is_multiple_of(ps)
        || !len.is_multiple_of(ps)
        || len == 0
    {
        return Err(Errno::Einval);
    }
    if src_start.checked_add(len).is_none() || dst_start.checked_add(len).is_none() {
        return Err(Errno::Einval);
    }
    let locks = uffd_move_lock(cx, mm, dst_start, src_start)?;
    // down_read(&ctx->map_changing_lock); mmap_changing is never raised (no event features).
    let (dst_vma, src_vma) = (locks.dst.vma.clone(), locks.src_vma().clone());
    if src_vma.is_shared(cx) || src_start + len > src_vma.end(cx) {
        return Err(Errno::Einval);
    }
    if dst_vma.is_shared(cx) || dst_start + len > dst_vma.end(cx) {
        return Err(Errno::Einval);
    }
    validate_move_areas(cx, &src_vma, &dst_vma)?;
    let mut moved = 0u64;
    let mut err = None;
    let (mut src_addr, mut dst_addr) = (src_start, dst_start);
    while src_addr < src_start + len {
        let src_pmd = match mm_find_pmd(cx, mm, src_addr) {
            Some(p) => p,
            None if mode & UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES == 0 => {
                err = Some(Errno::Enoent);
                break;
            }
            None => match pgtable::pmd_alloc(cx, mm, src_addr) {
                Ok(p) => p,
                Err(e) => {
                    err = Some(e);
                    break;
                }
            },
        };
        let dst_pmd = match pgtable::pmd_alloc(cx, mm, dst_addr) {
            Ok(p) => p,
            Err(e) => {
                err = Some(e);
                break;
            }
        };
        // pmdp_get_lockless. A THP at the destination: be strict. If one appears later,
        // move_pages_huge_pmd sees it and retries, move_pages_pte fails.
        let dst_pmdval = dst_pmd.get(cx);
        if dst_pmdval.pmd_trans_huge() {
            err = Some(Errno::Eexist);
            break;
        }
        let step;
        let r = if let Some(ptl) = pmd_trans_huge_lock(cx, mm, src_pmd) {
            let sv = src_pmd.get(cx);
            if move_splits_huge_pmd(cx, dst_addr, src_addr, src_start + len)
                || !dst_pmdval.is_none()
            {
                // A migration entry has no folio to check (pmd_present).
                if sv.present() && !huge_memory::is_huge_zero_pmd(cx, sv) {
                    let f = folio::page_folio(cx, sv.pfn());
                    if !folio::page_anon_exclusive(cx, f.pfn) {
                        drop(ptl);
                        err = Some(Errno::Ebusy);
                        break;
                    }
                }
                drop(ptl);
                huge_memory::__split_huge_pmd(cx, mm, &src_vma, src_pmd, src_addr);
                // The folio will be split by move_pages_pte.
                continue;
            }
            step = g.pmd_size();
            move_pages_huge_pmd(
                cx, mm, dst_pmd, src_pmd, dst_pmdval, &dst_vma, dst_addr, src_addr, ptl,
            )
        } else {
            step = ps;
            let sv = src_pmd.get(cx);
            if sv.is_none() {
                if mode & UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES == 0 {
                    err = Some(Errno::Enoent);
                    break;
                }
                if let Err(e) = pgtable::__pte_alloc(cx, mm, src_pmd) {
                    err = Some(e);
                    break;
                }
            }
            if let Err(e) = pgtable::pte_alloc(cx, mm, dst_pmd) {
                err = Some(e);
                break;
            }
            move_pages_pte(
                cx, mm, dst_pmd, src_pmd, &dst_vma, &src_vma, dst_addr, src_addr, mode,
            )
        };
        match r {
            Ok(()) => {
                // The moved pages are filled, not write-protected (as after UFFDIO_COPY): the
                // uffd-wp oracle's record lets them go.
                let (d, n) = (dst_addr, step >> g.page_shift);
                mm.uffd_wp_protected.record(|s| {
                    for p in 0..n {
                        s.remove(&(d + (p << g.page_shift)));
                    }
                });
            }
            Err(Errno::Eagain) => continue,
            Err(e) => {
                err = Some(e);
                break;
            }
        }
        dst_addr += step;
        src_addr += step;
        moved += step;
    }
    drop(locks);
    match (moved, err) {
        (0, Some(e)) => Err(e),
        (m, _) => Ok(m),
    }
}

/// `double_pt_lock`: both PTLs in address order (one lock when the tables share it).
fn double_pt_lock<'a>(
    cx: Ctx<'a>,
    a: &'a SpinLock,
    b: &'a SpinLock,
) -> (SpinGuard<'a>, Option<SpinGuard<'a>>) {
    if std::ptr::eq(a, b) {
        return (a.lock(cx.cpu), None);
    }
    let (first, second) = if a.id() <= b.id() { (a, b) } else { (b, a) };
    let g1 = first.lock(cx.cpu);
    let g2 = second.lock(cx.cpu);
    (g1, Some(g2))
}

/// `is_pte_pages_stable`: both PTEs as read, and (6.14+) the destination PMD still naming the
/// table the destination PTE lives in. Without that last recheck (switch
/// `uffd_move.dst_pmd_recheck = off`) a none destination PTE proves nothing about its table.
fn is_pte_pages_stable(cx: Ctx<'_>, st: &Stable<'_>) -> bool {
    let ptes = st.src_pte.get(cx) == st.orig_src && st.dst_pte.get(cx) == st.orig_dst;
    cx.cpu.recheck("pte_same", ptes)
        && (!cx.proto().uffd_move_dst_pmd_recheck
            || cx
                .cpu
                .recheck("pmd_same", st.dst_pmd.get(cx) == st.dst_pmdval))
}

/// `folio_get_anon_vma`: the folio's anon_vma, if it is anonymous and still mapped.
fn folio_get_anon_vma(cx: Ctx<'_>, f: FrameRef) -> Option<Arc<AnonVma>> {
    let mapping = cx.cpu.page(f.pfn, Access::Read).get(PageField::Mapping);
    if mapping & 1 == 0 || !folio::folio_mapped(cx, f) {
        return None;
    }
    cx.k.anon_vmas.deref(|v| {
        v.iter()
            .filter_map(|w| w.upgrade())
            .find(|a| a.id == mapping >> 1)
    })
}

/// `folio_move_anon_rmap` and the `folio->index` update: the folio now belongs to the
/// destination VMA's anon_vma at the destination's page offset (folio and anon_vma locked).
fn folio_move_anon_rmap(cx: Ctx<'_>, f: FrameRef, dst_vma: &Vma, dst_addr: u64) {
    let av = dst_vma.anon_vma(cx);
    cx.cpu.warn_on(
        av.is_none(),
        "folio_move_anon_rmap: destination without anon_vma",
    );
    let pm = cx.cpu.page(f.pfn, Access::Write);
    if let Some(av) = av {
        pm.set(PageField::Mapping, folio::mapping_anon(av.id));
    }
    pm.set(PageField::Index, dst_vma.linear_page_index(cx, dst_addr));
}

/// One pass of `move_pages_pte` ends in a result, a retry, or the need to sleep on the
/// source anon_vma's lock (its trylock failed while the tables were mapped).
enum Pass {
    Done(Result<(), Errno>),
    Retry,
    LockAnonVma(Arc<AnonVma>),
}

/// `move_pages_pte`: move one PTE from `src_pmd`'s table to `dst_pmd`'s. `-EAGAIN` makes
/// `move_pages` call it again for the same page.
#[allow(clippy::too_many_arguments)]
fn move_pages_pte(
    cx: Ctx<'_>,
    mm: &MmStruct,
    dst_pmd: EntryPtr,
    src_pmd: EntryPtr,
    dst_vma: &Arc<Vma>,
    src_vma: &Arc<Vma>,
    dst_addr: u64,
    src_addr: u64,
    mode: u64,
) -> Result<(), Errno> {
    let _f = cx.cpu.enter("move_pages_pte");
    // mmu_notifier_invalidate_range_start: no notifiers in the model.
    let a = Args {
        mm,
        dst_pmd,
        src_pmd,
        dst_vma,
        dst_addr,
        src_addr,
        mode,
    };
    let _ = src_vma; // flush_cache_range(src_vma, ..): no virtually indexed caches here
                     // The locked source folio (with a reference) and the PTE it was found under.
    let mut folio = None;
    let r = move_pages_pte_retry(cx, &a, &mut folio, false);
    if let Some((f, _)) = folio {
        folio::folio_unlock(cx, f);
        folio::folio_put(cx, f);
    }
    r
}

/// `move_pages_pte`'s arguments.
struct Args<'a> {
    mm: &'a MmStruct,
    dst_pmd: EntryPtr,
    src_pmd: EntryPtr,
    dst_vma: &'a Arc<Vma>,
    dst_addr: u64,
    src_addr: u64,
    mode: u64,
}

/// The `retry:` loop of `move_pages_pte`; `av_locked` once the anon_vma lock was taken by
/// sleeping (held by the caller's frame until the move ends).
fn move_pages_pte_retry(
    cx: Ctx<'_>,
    a: &Args<'_>,
    folio: &mut Option<(FrameRef, Entry)>,
    av_locked: bool,
) -> Result<(), Errno> {
    loop {
        match move_pages_pte_pass(cx, a, folio, av_locked) {
            Pass::Done(r) => return r,
            Pass::Retry => continue,
            Pass::LockAnonVma(av) => {
                // Now we can block and wait.
                let _g = av.lock().write(cx.cpu);
                return move_pages_pte_retry(cx, a, folio, true);
            }
        }
    }
}

/// One pass from `retry:`: map both tables, read both PTEs under their PTLs, lock what the
/// move needs (trylocks while mapped), then `move_present_pte` / `move_zeropage_pte`.
fn move_pages_pte_pass(
    cx: Ctx<'_>,
    a: &Args<'_>,
    held: &mut Option<(FrameRef, Entry)>,
    av_locked: bool,
) -> Pass {
    use Pass::{Done, Retry};
    let g = cx.geo();
    let mm = a.mm;
    // The maywrite map of the destination keeps the PMD value read: a none PTE cannot prove
    // that its table is still attached, pmd_same must.
    let Some((dst_map, dst_pmdval, dst_ptl)) = pgtable::pte_offset_map_rw_nolock(cx, mm, a.dst_pmd)
    else {
        // A huge PMD materialised under us.
        return Done(Err(Errno::Eagain));
    };
    let Some((src_map, _, src_ptl)) = pgtable::pte_offset_map_rw_nolock(cx, mm, a.src_pmd) else {
        // MADV_DONTNEED can zap a THP, a fault can install one (VMA read lock only).
        return Done(Err(Errno::Eagain));
    };
    // Sanity checks before the operation (a WARN_ON_ONCE in the kernel, see docs/fidelity.md).
    let (dv, sv) = (a.dst_pmd.get(cx), a.src_pmd.get(cx));
    if dv.is_none() || sv.is_none() || dv.pmd_trans_huge() || sv.pmd_trans_huge() {
        return Done(Err(Errno::Einval));
    }
    let dst_pte = dst_map.pte(g.index(a.dst_addr, 1));
    let src_pte = src_map.pte(g.index(a.src_addr, 1));
    let orig_dst = {
        let _l = dst_ptl.lock(cx.cpu);
        dst_pte.get(cx)
    };
    if !orig_dst.is_none() {
        return Done(Err(Errno::Eexist));
    }
    let orig_src = {
        let _l = src_ptl.lock(cx.cpu);
        src_pte.get(cx)
    };
    if orig_src.is_none() {
        return Done(if a.mode & UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES == 0 {
            Err(Errno::Enoent)
        } else {
            Ok(()) // nothing to do to move a hole
        });
    }
    // The PTE changed after the folio was locked: start over.
    if let Some((_, pte)) = *held {
        if !cx.cpu.recheck("pte_same", pte == orig_src) {
            return Done(Err(Errno::Eagain));
        }
    }
    let st = Stable {
        dst_pte,
        src_pte,
        orig_dst,
        orig_src,
        dst_pmd: a.dst_pmd,
        dst_pmdval,
        dst_ptl,
        src_ptl,
    };
    if !orig_src.present() {
        drop(src_map);
        drop(dst_map);
        if orig_src.is_migration() {
            crate::mm::migrate::migration_entry_wait(cx, orig_src);
            return Done(Err(Errno::Eagain));
        }
        // No swap entries in this model (move_swap_pte); a marker: -EFAULT.
        return Done(Err(Errno::Efault));
    }
    if orig_src.pfn() == cx.k.zero_page.pfn {
        return Done(move_zeropage_pte(cx, mm, a.src_addr, &st));
    }
    // Pin and lock the source folio and its anon_vma. Inside the RCU section of the mapped
    // tables we cannot sleep: on contention unmap, take the lock, retry.
    if held.is_none() {
        let l = src_ptl.lock(cx.cpu);
        if !cx.cpu.recheck("pte_same", src_pte.get(cx) == orig_src) {
            return Done(Err(Errno::Eagain));
        }
        let Some(page) = crate::mm::memory::vm_normal_page(cx, orig_src) else {
            return Done(Err(Errno::Ebusy));
        };
        if !folio::page_anon_exclusive(cx, page) {
            return Done(Err(Errno::Ebusy));
        }
        let f = folio::page_folio(cx, page);
        folio::folio_ref_add(cx, f, 1); // folio_get
        drop(l);
        *held = Some((f, orig_src));
        if !folio::folio_trylock(cx, f) {
            drop(src_map);
            drop(dst_map);
            folio::folio_lock(cx, f);
            return Retry;
        }
        if !folio::folio_test_anon(cx, f) {
            cx.cpu
                .warn_on(true, "move_pages_pte: locked source folio is not anon");
            // Keep the unlock in move_pages_pte balanced: the folio was locked here.
            return Done(Err(Errno::Ebusy));
        }
    }
    let (f, _) = held.expect("locked above");
    if folio::folio_order(cx, f) > 0 {
        // split_folio can sleep: unmap first, then take the split folio again.
        drop(src_map);
        drop(dst_map);
        let r = crate::mm::split_huge_page::split_huge_page_to_order(cx, f, 0);
        folio::folio_unlock(cx, f);
        folio::folio_put(cx, f);
        *held = None;
        return match r {
            Ok(()) => Retry,
            Err(_) => Done(Err(Errno::Eagain)),
        };
    }
    let av;
    let mut _avg = None;
    if !av_locked {
        // folio_referenced walks the anon_vma without the folio lock: serialise against it
        // with the anon_vma lock.
        let Some(x) = folio_get_anon_vma(cx, f) else {
            return Done(Err(Errno::Eagain)); // unmapped from under us
        };
        av = x;
        match av.lock().try_write(cx.cpu) {
            Some(gd) => _avg = Some(gd),
            None => {
                drop(src_map);
                drop(dst_map);
                return Pass::LockAnonVma(av.clone());
            }
        }
    }
    Done(move_present_pte(
        cx, mm, a.dst_vma, a.dst_addr, a.src_addr, &st, f,
    ))
}

/// The PTEs `move_pages_pte` read, their locks, and the destination PMD value: what
/// `is_pte_pages_stable` rechecks under both PTLs.
struct Stable<'a> {
    dst_pte: EntryPtr,
    src_pte: EntryPtr,
    orig_dst: Entry,
    orig_src: Entry,
    dst_pmd: EntryPtr,
    dst_pmdval: Entry,
    dst_ptl: &'a SpinLock,
    src_ptl: &'a SpinLock,
}

/// `move_present_pte`: under both PTLs, recheck, then clear and flush the source PTE and set
/// the destination (writable, dirty if the source was).
fn move_present_pte(
    cx: Ctx<'_>,
    mm: &MmStruct,
    dst_vma: &Vma,
    dst_addr: u64,
    src_addr: u64,
    st: &Stable<'_>,
    f: FrameRef,
) -> Result<(), Errno> {
    let _f = cx.cpu.enter("move_present_pte");
    let ps = cx.geo().page_shift;
    let _l = double_pt_lock(cx, st.dst_ptl, st.src_ptl);
    if !is_pte_pages_stable(cx, st) {
        return Err(Errno::Eagain);
    }
    if folio::folio_order(cx, f) > 0
        || folio::folio_maybe_dma_pinned(cx, f)
        || !folio::page_anon_exclusive(cx, f.pfn)
    {
        return Err(Errno::Ebusy);
    }
    // ptep_clear_flush.
    let old = st.src_pte.xchg(cx, Entry::NONE);
    cx.cpu
        .flush_tlb_range(mm.id, src_addr >> ps, (src_addr >> ps) + 1, false);
    // Pinned from under us (GUP-fast takes no PTL): put it back and fail the move.
    if folio::folio_maybe_dma_pinned(cx, f) {
        st.src_pte.set(cx, old);
        return Err(Errno::Ebusy);
    }
    folio_move_anon_rmap(cx, f, dst_vma, dst_addr);
    // Dirty as the source was when cleared (75cb1cca2c88, 6.15; before it always dirty, as
    // mremap), writable if the VMA is.
    let write = dst_vma.flags(cx).has(VmFlags::WRITE);
    st.dst_pte.set(cx, Entry::leaf(f.pfn, write, old.dirty()));
    Ok(())
}

/// `move_zeropage_pte`: the shared zero page moves as a new zero-page PTE.
fn move_zeropage_pte(
    cx: Ctx<'_>,
    mm: &MmStruct,
    src_addr: u64,
    st: &Stable<'_>,
) -> Result<(), Errno> {
    let _f = cx.cpu.enter("move_zeropage_pte");
    let ps = cx.geo().page_shift;
    let _l = double_pt_lock(cx, st.dst_ptl, st.src_ptl);
    if !is_pte_pages_stable(cx, st) {
        return Err(Errno::Eagain);
    }
    st.src_pte.xchg(cx, Entry::NONE);
    cx.cpu
        .flush_tlb_range(mm.id, src_addr >> ps, (src_addr >> ps) + 1, false);
    st.dst_pte.set(
        cx,
        Entry::leaf(cx.k.zero_page.pfn, false, false).with(Entry::SPECIAL),
    );
    Ok(())
}

/// `move_pages_huge_pmd` (`mm/huge_memory.c`): move a whole PMD-mapped THP (or the huge zero
/// page) into a none destination PMD. Entered with the source PMD lock held (`ptl`).
#[allow(clippy::too_many_arguments)]
fn move_pages_huge_pmd<'a>(
    cx: Ctx<'a>,
    mm: &'a MmStruct,
    dst_pmd: EntryPtr,
    src_pmd: EntryPtr,
    dst_pmdval: Entry,
    dst_vma: &Vma,
    dst_addr: u64,
    src_addr: u64,
    ptl: SpinGuard<'a>,
) -> Result<(), Errno> {
    let _f = cx.cpu.enter("move_pages_huge_pmd");
    let src_pmdval = src_pmd.get(cx);
    if !dst_pmdval.is_none() {
        drop(ptl);
        cx.cpu
            .warn_on(true, "move_pages_huge_pmd: destination PMD not none");
        return Err(Errno::Einval);
    }
    if !src_pmdval.huge_leaf() || !src_pmdval.present() {
        drop(ptl);
        if src_pmdval.is_migration() {
            huge_memory::pmd_migration_entry_wait(cx, mm, src_pmd);
            return Err(Errno::Eagain);
        }
        return Err(Errno::Enoent);
    }
    let src_folio = if huge_memory::is_huge_zero_pmd(cx, src_pmdval) {
        None
    } else {
        let f = folio::page_folio(cx, src_pmdval.pfn());
        if !folio::page_anon_exclusive(cx, f.pfn) {
            drop(ptl);
            return Err(Errno::Ebusy);
        }
        folio::folio_ref_add(cx, f, 1); // folio_get
        Some(f)
    };
    drop(ptl);
    let r = match src_folio {
        Some(f) => {
            folio::folio_lock(cx, f);
            // split_huge_page walks the anon_vma chain without the folio lock: serialise
            // against it with the anon_vma lock.
            let r = match folio_get_anon_vma(cx, f) {
                Some(av) => {
                    let _w = av.lock().write(cx.cpu);
                    move_huge_pmd_locked(
                        cx, mm, dst_pmd, src_pmd, dst_pmdval, src_pmdval, dst_vma, dst_addr,
                        src_addr, src_folio,
                    )
                }
                None => Err(Errno::Eagain),
            };
            // Unblock rmap walks.
            folio::folio_unlock(cx, f);
            r
        }
        None => move_huge_pmd_locked(
            cx, mm, dst_pmd, src_pmd, dst_pmdval, src_pmdval, dst_vma, dst_addr, src_addr, None,
        ),
    };
    if let Some(f) = src_folio {
        folio::folio_put(cx, f);
    }
    r
}

/// The part of `move_pages_huge_pmd` under both PMD locks.
#[allow(clippy::too_many_arguments)]
fn move_huge_pmd_locked(
    cx: Ctx<'_>,
    mm: &MmStruct,
    dst_pmd: EntryPtr,
    src_pmd: EntryPtr,
    dst_pmdval: Entry,
    src_pmdval: Entry,
    dst_vma: &Vma,
    dst_addr: u64,
    src_addr: u64,
    src_folio: Option<FrameRef>,
) -> Result<(), Errno> {
    let g = cx.geo();
    let ps = g.page_shift;
    let src_ptl = pgtable::pmd_lockptr(cx, mm, src_pmd);
    let dst_ptl = pgtable::pmd_lockptr(cx, mm, dst_pmd);
    let _l = double_pt_lock(cx, src_ptl, dst_ptl);
    if !cx.cpu.recheck(
        "pmd_same",
        src_pmd.get(cx) == src_pmdval && dst_pmd.get(cx) == dst_pmdval,
    ) {
        return Err(Errno::Eagain);
    }
    let flush = |cx: Ctx<'_>| {
        let haddr = src_addr & g.pmd_mask();
        cx.cpu.flush_tlb_range(
            mm.id,
            haddr >> ps,
            (haddr >> ps) + g.entries() as u64,
            false,
        );
    };
    let new = match src_folio {
        Some(f) => {
            if folio::folio_maybe_dma_pinned(cx, f) || !folio::page_anon_exclusive(cx, f.pfn) {
                return Err(Errno::Ebusy);
            }
            // pmdp_huge_clear_flush.
            let old = src_pmd.xchg(cx, Entry::NONE);
            flush(cx);
            // Pinned from under us: put it back and fail the move.
            if folio::folio_maybe_dma_pinned(cx, f) {
                src_pmd.set(cx, old);
                return Err(Errno::Ebusy);
            }
            folio_move_anon_rmap(cx, f, dst_vma, dst_addr);
            Entry::huge(f.pfn, dst_vma.flags(cx).has(VmFlags::WRITE), true)
        }
        None => {
            let old = src_pmd.xchg(cx, Entry::NONE);
            flush(cx);
            old
        }
    };
    dst_pmd.set(cx, new);
    // The deposited table follows the PMD.
    if let Some(t) = huge_memory::withdraw(cx, src_pmd) {
        huge_memory::deposit(cx, dst_pmd, t);
    }
    Ok(())
}
