//! VMA operations (`mm/vma.c`, `mm/mmap.c`, ≈6.12–6.18): `mm_alloc`, `mmap_region` with the merge
//! of anonymous neighbours, `__split_vma`, munmap (`do_vmi_munmap`: gather and detach under the
//! write lock, downgrade, `vms_clear_ptes`), and `exit_mmap`.

use crate::mm::mmu_gather::MmuGather;
use crate::mm::rmap::{anon_vma_clone, link_file_vma};
use crate::mm::shmem::{fput, get_file, shmem_file_setup};
use crate::mm::types::{File, MmStruct, VmFlags, Vma};
use crate::mm::zap::{free_pgtables, unmap_vmas};
use crate::{Ctx, Errno};
use mmcheck_platform::{FrameKind, MmapWriteGuard};
use std::sync::Arc;

/// `mm_alloc` + `pgd_alloc`.
pub fn mm_alloc(cx: Ctx<'_>) -> Result<Arc<MmStruct>, Errno> {
    let pgd =
        cx.k.machine
            .frames
            .alloc(&cx.cpu, 0, FrameKind::Table(cx.geo().levels as u8))
            .ok_or(Errno::Enomem)?;
    let mm = Arc::new(MmStruct::new(cx, pgd));
    cx.k.mms.record(|v| v.push(Arc::downgrade(&mm)));
    Ok(mm)
}

/// What backs a new mapping.
#[derive(Clone)]
pub enum MapBacking {
    /// `MAP_PRIVATE | MAP_ANONYMOUS`.
    AnonPrivate,
    /// `MAP_SHARED | MAP_ANONYMOUS`: a new shmem object.
    ShmemShared,
    /// `MAP_PRIVATE` of a new shmem file (a memfd mapped private, then closed: the VMA holds the
    /// only reference). Reads map the page-cache pages read-only; writes copy them (COW).
    ShmemPrivate,
    /// A mapping of an existing file at `pgoff`; `shared` is `MAP_SHARED`.
    File {
        file: Arc<File>,
        pgoff: u64,
        shared: bool,
    },
}

fn check_range(cx: Ctx<'_>, addr: u64, len: u64) -> Result<u64, Errno> {
    let ps = cx.geo().page_size();
    if !addr.is_multiple_of(ps) || len == 0 {
        return Err(Errno::Einval);
    }
    let len = len.div_ceil(ps) * ps;
    let end = addr.checked_add(len).ok_or(Errno::Einval)?;
    if end > cx.geo().task_size() {
        return Err(Errno::Einval);
    }
    Ok(end)
}

/// `mmap(addr, len, PROT_READ|PROT_WRITE, backing | MAP_FIXED_NOREPLACE)`; `hugepage` adds
/// `VM_HUGEPAGE` as a following `madvise(MADV_HUGEPAGE)` would.
pub fn do_mmap(
    cx: Ctx<'_>,
    mm: &MmStruct,
    addr: u64,
    len: u64,
    backing: MapBacking,
    write: bool,
    hugepage: bool,
) -> Result<u64, Errno> {
    let _f = cx.cpu.enter("do_mmap");
    let end = check_range(cx, addr, len)?;
    let ps = cx.geo().page_shift;
    let w = mm.mmap_lock.write_lock(cx.cpu);
    if !mm.vmas_in(cx, addr, end).is_empty() {
        return Err(Errno::Eexist);
    }
    let mut flags = VmFlags::READ | VmFlags::MAYWRITE;
    if write {
        flags |= VmFlags::WRITE;
    }
    if hugepage {
        flags |= VmFlags::HUGEPAGE;
    }
    // accountable_mapping: a private writable mapping is charged (VM_ACCOUNT).
    let shared = matches!(
        backing,
        MapBacking::ShmemShared | MapBacking::File { shared: true, .. }
    );
    if write && !shared {
        flags |= VmFlags::ACCOUNT;
    }
    let (file, pgoff) = match backing {
        MapBacking::AnonPrivate => {
            if vma_merge_new_anon(cx, mm, &w, addr, end, flags) {
                return Ok(addr);
            }
            (None, addr >> ps)
        }
        MapBacking::ShmemShared => {
            flags |= VmFlags::SHARED;
            (Some(shmem_file_setup(cx, (end - addr) >> ps)), 0)
        }
        MapBacking::ShmemPrivate => (Some(shmem_file_setup(cx, (end - addr) >> ps)), 0),
        MapBacking::File {
            file,
            pgoff,
            shared,
        } => {
            if shared {
                flags |= VmFlags::SHARED;
            }
            get_file(cx, &file);
            (Some(file), pgoff)
        }
    };
    let vma = vm_area_alloc(cx, mm, addr, end, pgoff, VmFlags(flags), file);
    link_file_vma(cx, &vma);
    // vma_iter_store_new: attach, then publish in the tree.
    w.vma_mark_attached(&vma.lock);
    mm.tree_insert(cx, vma.clone());
    drop(w);
    Ok(addr)
}

/// `vma_merge_new_range` for an anonymous private mapping: extend a compatible neighbour
/// (same flags, contiguous pgoff, compatible anon_vmas) instead of creating a VMA.
fn vma_merge_new_anon(
    cx: Ctx<'_>,
    mm: &MmStruct,
    w: &MmapWriteGuard<'_>,
    addr: u64,
    end: u64,
    flags: u64,
) -> bool {
    let ps = cx.geo().page_shift;
    let (prev, next) = mm.neighbours(cx, addr, end);
    let ok = |v: &Arc<Vma>| v.is_anonymous() && v.flags(cx).0 == flags;
    let prev = prev.filter(|p| {
        ok(p) && p.end(cx) == addr && p.pgoff(cx) + ((addr - p.start(cx)) >> ps) == addr >> ps
    });
    let next = next.filter(|n| ok(n) && n.start(cx) == end && n.pgoff(cx) == end >> ps);
    let av_compat = |a: &Arc<Vma>, b: &Arc<Vma>| match (a.anon_vma(cx), b.anon_vma(cx)) {
        (Some(x), Some(y)) => x.id == y.id,
        _ => true,
    };
    match (prev, next) {
        (Some(p), Some(n)) if av_compat(&p, &n) => {
            // Merge prev, the new range and next into prev; next goes away.
            w.vma_start_write(&p.lock);
            w.vma_start_write(&n.lock);
            if p.anon_vma(cx).is_none() {
                if let Some(_av) = n.anon_vma(cx) {
                    anon_vma_clone(cx, &p, &n);
                }
            }
            let locks: Vec<_> = p.anon_vma(cx).into_iter().collect();
            let guards: Vec<_> = locks.iter().map(|a| a.lock().write(cx.cpu)).collect();
            mm.tree_remove(cx, n.start(cx));
            w.vma_mark_detached(&n.lock);
            for av in n.anon_vma_chain.write(&cx.cpu, std::mem::take) {
                av.tree_remove(cx, &n);
            }
            p.set_range(cx, p.start(cx), n.end(cx), p.pgoff(cx));
            drop(guards);
            // vma_complete: the VMA merged away is freed (remove_vma) under the write lock.
            vm_area_free(cx, &n);
            true
        }
        (Some(p), _) => {
            w.vma_start_write(&p.lock);
            let locks: Vec<_> = p.anon_vma(cx).into_iter().collect();
            let guards: Vec<_> = locks.iter().map(|a| a.lock().write(cx.cpu)).collect();
            p.set_range(cx, p.start(cx), end, p.pgoff(cx));
            drop(guards);
            true
        }
        (None, Some(n)) => {
            w.vma_start_write(&n.lock);
            let locks: Vec<_> = n.anon_vma(cx).into_iter().collect();
            let guards: Vec<_> = locks.iter().map(|a| a.lock().write(cx.cpu)).collect();
            mm.tree_remove(cx, n.start(cx));
            for av in n.anon_vma_chain.read(&cx.cpu, |c| c.clone()).iter() {
                av.tree_remove(cx, &n);
            }
            n.set_range(cx, addr, n.end(cx), addr >> ps);
            for av in n.anon_vma_chain.read(&cx.cpu, |c| c.clone()).iter() {
                av.tree_insert(cx, n.clone());
            }
            mm.tree_insert(cx, n.clone());
            drop(guards);
            true
        }
        _ => false,
    }
}

/// The merge at the end of `vma_modify_flags` (`vma_merge_existing_range`, `mm/vma.c`): after a
/// flags change on `[addr, end)`, each VMA there merges with a neighbour when both are anonymous
/// or map the same file at contiguous offsets, have the same flags and compatible anon_vmas. The
/// surviving VMA grows under `i_mmap_rwsem` and the anon_vma lock (both written, as
/// `vma_prepare` takes them); the other is detached and removed. mmap W held.
pub fn vma_merge_modified(cx: Ctx<'_>, mm: &MmStruct, w: &MmapWriteGuard<'_>, addr: u64, end: u64) {
    let ps = cx.geo().page_shift;
    loop {
        let all = mm.vmas_in(cx, addr.saturating_sub(1 << ps), end + (1 << ps));
        let mergeable = |p: &Arc<Vma>, n: &Arc<Vma>| {
            let same_backing = match (&p.file, &n.file) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            };
            let compat = match (p.anon_vma(cx), n.anon_vma(cx)) {
                (Some(x), Some(y)) => x.id == y.id,
                _ => true,
            };
            p.end(cx) == n.start(cx)
                && same_backing
                && p.flags(cx).0 == n.flags(cx).0
                && compat
                && p.pgoff(cx) + ((p.end(cx) - p.start(cx)) >> ps) == n.pgoff(cx)
        };
        let Some(pair) = all.windows(2).find(|pair| mergeable(&pair[0], &pair[1])) else {
            break;
        };
        let (p, n) = (&pair[0], &pair[1]);
        w.vma_start_write(&p.lock);
        w.vma_start_write(&n.lock);
        if p.anon_vma(cx).is_none() && n.anon_vma(cx).is_some() {
            anon_vma_clone(cx, p, n);
        }
        let im = p.file.as_ref().map(|f| f.i_mmap_rwsem.write(cx.cpu));
        let locks: Vec<_> = p.anon_vma(cx).into_iter().collect();
        let guards: Vec<_> = locks.iter().map(|a| a.lock().write(cx.cpu)).collect();
        mm.tree_remove(cx, n.start(cx));
        w.vma_mark_detached(&n.lock);
        for av in n.anon_vma_chain.write(&cx.cpu, std::mem::take) {
            av.tree_remove(cx, n);
        }
        if let Some(f) = &n.file {
            f.i_mmap_remove(cx, n);
        }
        p.set_range(cx, p.start(cx), n.end(cx), p.pgoff(cx));
        drop(guards);
        drop(im);
        remove_vma(cx, n);
    }
}

/// `__split_vma`: split `vma` at `addr`; the upper part becomes a new VMA. mmap W held.
pub fn __split_vma(
    cx: Ctx<'_>,
    mm: &MmStruct,
    w: &MmapWriteGuard<'_>,
    vma: &Arc<Vma>,
    addr: u64,
) -> Arc<Vma> {
    let _f = cx.cpu.enter("__split_vma");
    let ps = cx.geo().page_shift;
    w.vma_start_write(&vma.lock);
    {
        let g = cx.geo();
        let lo = addr & g.pmd_mask();
        if addr != lo && lo >= vma.start(cx) && lo + g.pmd_size() <= vma.end(cx) {
            if let Some(pmd) = crate::mm::pgtable::pmd_off(cx, mm, addr) {
                let v = pmd.get(cx);
                if v.pmd_trans_huge() || v.is_migration() {
                    crate::mm::huge_memory::__split_huge_pmd(cx, mm, vma, pmd, addr);
                }
            }
        }
    }
    let pgoff = vma.pgoff(cx) + ((addr - vma.start(cx)) >> ps);
    if let Some(f) = &vma.file {
        get_file(cx, f);
    }
    let new = vm_area_alloc(
        cx,
        mm,
        addr,
        vma.end(cx),
        pgoff,
        vma.flags(cx),
        vma.file.clone(),
    );
    anon_vma_clone(cx, &new, vma);
    // vma_prepare: i_mmap then anon_vma, both for write, around the key change.
    let im = vma.file.as_ref().map(|f| f.i_mmap_rwsem.write(cx.cpu));
    let av = vma.anon_vma(cx);
    let ag = av.as_ref().map(|a| a.lock().write(cx.cpu));
    vma.set_range(cx, vma.start(cx), addr, vma.pgoff(cx));
    if let Some(f) = &vma.file {
        f.i_mmap_insert(cx, new.clone());
    }
    drop(ag);
    drop(im);
    // The new half is write-locked like the old one until the mmap write lock is dropped.
    w.vma_mark_attached(&new.lock);
    w.vma_start_write(&new.lock);
    mm.tree_insert(cx, new.clone());
    new
}

/// `remove_vma`: drop the VMA's file reference and free it.
fn remove_vma(cx: Ctx<'_>, vma: &Arc<Vma>) {
    if let Some(f) = &vma.file {
        fput(cx, f);
    }
    vm_area_free(cx, vma);
}

/// `vm_area_free`: return a detached VMA, unreachable from the maple tree and every rmap tree, to
/// `vm_area_cachep` (`SLAB_TYPESAFE_BY_RCU`, 6.15+; earlier kernels freed it after a grace period
/// with `call_rcu`). A reader that still holds a pointer may read it only inside an RCU read-side
/// section (and must validate it, as `vma_start_read` does); any other access is a use-after-free.
/// An anonymous VMA goes on this CPU's freelist, and [`vm_area_alloc`] on this CPU hands it out
/// again (a file VMA's object is never reused: see docs/fidelity.md).
pub fn vm_area_free(cx: Ctx<'_>, vma: &Arc<Vma>) {
    let _f = cx.cpu.enter("vm_area_free");
    vma.slab.free(&cx.cpu);
    // vma_assert_detached: read in the free's step, which covers every field of the VMA.
    cx.cpu
        .warn_on(vma.lock.is_attached(), "vm_area_free: VMA still attached");
    if vma.is_anonymous() && cx.proto().vma_reuse {
        cx.k.vma_cache.push(&cx.cpu, vma.clone());
    }
}

/// `vm_area_alloc` (+ the initialisation its callers do before publishing): the most recently
/// freed anonymous VMA object on this CPU's freelist if the new VMA is anonymous, as SLUB's
/// per-CPU freelist hands it out, else a new object. A reader that looked the old VMA up under
/// RCU may still hold the pointer: `vma_start_read` and `lock_vma_under_rcu` recheck `vm_mm`,
/// attachment and the range.
pub fn vm_area_alloc(
    cx: Ctx<'_>,
    mm: &MmStruct,
    start: u64,
    end: u64,
    pgoff: u64,
    flags: VmFlags,
    file: Option<Arc<File>>,
) -> Arc<Vma> {
    if file.is_none() {
        if let Some(v) = cx.k.vma_cache.pop_if(&cx.cpu, |_| true) {
            let _f = cx.cpu.enter("vm_area_alloc");
            v.reinit(cx, mm, start, end, pgoff, flags);
            return v;
        }
    }
    Arc::new(Vma::new(cx, mm, start, end, pgoff, flags, file))
}

/// munmap: `do_vmi_munmap` → `vms_gather_munmap_vmas` (split, write-lock, detach) →
/// `vms_complete_munmap_vmas` (downgrade, `vms_clear_ptes`, `remove_vma`).
pub fn do_munmap(cx: Ctx<'_>, mm: &MmStruct, addr: u64, len: u64) -> Result<(), Errno> {
    let _f = cx.cpu.enter("do_vmi_munmap");
    let end = check_range(cx, addr, len)?;
    let tlb_before = crate::check::tlb_permission_begin(cx, mm, addr, end);
    let w = mm.mmap_lock.write_lock(cx.cpu);
    let acted = do_vmi_munmap(cx, mm, w, addr, end, true);
    cx.rcu_quiescent();
    crate::check::check_tlb_permission(cx, mm, &acted, tlb_before, "munmap");
    Ok(())
}

/// The body of munmap with the write lock held; `unlock` downgrades for the zap (munmap), else
/// the write lock is kept throughout (mremap's unmap of the old range). Releases the lock.
/// Returns the ranges it unmapped (those of the VMAs it found).
pub fn do_vmi_munmap<'a>(
    cx: Ctx<'a>,
    mm: &'a MmStruct,
    w: MmapWriteGuard<'a>,
    addr: u64,
    end: u64,
    unlock: bool,
) -> Vec<(u64, u64)> {
    let vmas = mm.vmas_in(cx, addr, end);
    if vmas.is_empty() {
        return Vec::new();
    }
    if vmas[0].start(cx) < addr {
        __split_vma(cx, mm, &w, &vmas[0], addr);
    }
    if let Some(last) = mm.vmas_in(cx, addr, end).last().cloned() {
        if last.end(cx) > end {
            __split_vma(cx, mm, &w, &last, end);
        }
    }
    let detached = mm.vmas_in(cx, addr, end);
    let ranges = detached
        .iter()
        .map(|v| (v.start(cx).max(addr), v.end(cx).min(end)))
        .collect();
    for v in &detached {
        w.vma_start_write(&v.lock);
        mm.tree_remove(cx, v.start(cx));
        w.vma_mark_detached(&v.lock);
    }
    let (prev, next) = mm.neighbours(cx, addr, end);
    let floor = prev.map_or(0, |p| p.end(cx));
    let ceiling = next.as_ref().map_or(0, |n| n.start(cx));
    let mut tlb = MmuGather::new(cx, mm, false);
    // LOCKING: while stacks grew under the mmap read lock (before 6.5), munmap kept the write
    // lock when the next VMA is VM_GROWSDOWN: an expansion into the range would otherwise fault
    // into the tables being freed (246c320a8cfe, 5.8; dropped by e4bd84c069f2 in 6.5, when
    // stack growth took the write lock). VM_GROWSUP is not modelled.
    let unlock = unlock
        && (cx.proto().munmap_downgrade_next_to_stack
            || !next.is_some_and(|n| n.flags(cx).has(VmFlags::GROWSDOWN)));
    if unlock {
        // LOCKING: detach and VMA write locks happened under the write lock, so freeing under the
        // downgraded lock is safe: nobody can reach these VMAs to install entries.
        let r = w.downgrade();
        unmap_vmas(cx, &mut tlb, &detached, addr, end);
        free_pgtables(cx, &mut tlb, &detached, floor, ceiling, None);
        tlb.finish(cx);
        drop(r);
    } else {
        unmap_vmas(cx, &mut tlb, &detached, addr, end);
        free_pgtables(cx, &mut tlb, &detached, floor, ceiling, Some(&w));
        tlb.finish(cx);
        drop(w);
    }
    for v in &detached {
        remove_vma(cx, v);
    }
    ranges
}

/// `exit_mmap`: zap everything under the read lock, then free the tables under the write lock,
/// then the VMAs and the PGD.
pub fn exit_mmap(cx: Ctx<'_>, mm: &MmStruct) {
    let _f = cx.cpu.enter("exit_mmap");
    let r = mm.mmap_lock.read_lock(cx.cpu);
    let vmas = mm.all_vmas_locked(cx);
    let mut tlb = MmuGather::new(cx, mm, true);
    unmap_vmas(cx, &mut tlb, &vmas, 0, cx.geo().task_size());
    drop(r);
    let w = mm.mmap_lock.write_lock(cx.cpu);
    mm.exiting.write(&cx.cpu, 1);
    free_pgtables(cx, &mut tlb, &vmas, 0, 0, Some(&w));
    tlb.finish(cx);
    for v in &vmas {
        mm.tree_remove(cx, v.start(cx));
        w.vma_mark_detached(&v.lock);
    }
    drop(w);
    for v in &vmas {
        remove_vma(cx, v);
    }
    cx.cpu.local_flush_mm(mm.id);
    cx.rcu_quiescent();
}

/// `mmput` → `__mmdrop`: free the PGD once the address space is gone.
pub fn mmdrop(cx: Ctx<'_>, mm: &MmStruct) {
    cx.k.mms
        .record(|v| v.retain(|w| w.upgrade().is_some_and(|m| m.id != mm.id)));
    cx.k.machine.frames.free(&cx.cpu, mm.pgd, 0);
}

/// `madvise(MADV_HUGEPAGE)` on whole VMAs within `[addr, addr + len)`, splitting at the edges.
pub fn madvise_hugepage(cx: Ctx<'_>, mm: &MmStruct, addr: u64, len: u64) -> Result<(), Errno> {
    let _f = cx.cpu.enter("madvise_hugepage");
    let end = check_range(cx, addr, len)?;
    let w = mm.mmap_lock.write_lock(cx.cpu);
    let vmas = mm.vmas_in(cx, addr, end);
    if vmas.is_empty() {
        return Err(Errno::Enomem);
    }
    for v in vmas {
        if v.flags(cx).has(VmFlags::HUGEPAGE) {
            continue;
        }
        let mut v = v;
        if v.start(cx) < addr {
            v = __split_vma(cx, mm, &w, &v, addr);
        }
        if v.end(cx) > end {
            __split_vma(cx, mm, &w, &v, end);
        }
        w.vma_start_write(&v.lock);
        let f = v.flags(cx);
        v.set_flags(cx, VmFlags(f.0 | VmFlags::HUGEPAGE));
    }
    vma_merge_modified(cx, mm, &w, addr, end);
    Ok(())
}
