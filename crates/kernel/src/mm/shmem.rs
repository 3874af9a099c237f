//! shmem-like files (`mm/shmem.c`, `mm/truncate.c`, ≈6.18): `shmem_zero_setup` for
//! `MAP_SHARED|MAP_ANONYMOUS`, `shmem_get_folio` (SGP_CACHE) behind `shmem_fault`, and truncation
//! and hole punching: `unmap_mapping_range` under `i_mmap_rwsem` read, then removal from the page
//! cache under the folio lock; `ftruncate` (`shmem_setattr`), whose unmap also zaps private COW
//! copies.

use crate::mm::folio;
use crate::mm::memory::{VmFault, Vmf};
use crate::mm::types::File;
use crate::mm::zap::{zap_page_range_single, ZapDetails};
use crate::Ctx;
use mmcheck_platform::FrameRef;
use std::sync::Arc;

/// `shmem_zero_setup` / `shmem_file_setup`: a new file of `pages` pages with one reference.
pub fn shmem_file_setup(cx: Ctx<'_>, pages: u64) -> Arc<File> {
    let f = Arc::new(File::new(cx, pages));
    cx.k.files.record(|v| v.push(Arc::downgrade(&f)));
    f
}

/// `shmem_get_folio(SGP_CACHE)`: the folio at `index`, locked and with a reference, allocated
/// (zero-filled, uptodate) and added to the cache if absent.
pub fn shmem_get_folio(cx: Ctx<'_>, file: &File, index: u64) -> Result<FrameRef, VmFault> {
    let _f = cx.cpu.enter("shmem_get_folio");
    if index >= file.size_pages.read(&cx.cpu) {
        return Err(VmFault::Sigbus);
    }
    loop {
        if let Some(f) = file.find_get_folio(cx, index) {
            if !folio::folio_try_get(cx, f) {
                // Frozen by __remove_mapping, which takes it out of the cache under the same
                // xarray lock: the kernel retries the lookup until the entry changes, the model
                // sleeps until it does (an unrolled retry ran schedules to the step limit).
                file.pages
                    .wait_until(&cx.cpu, |p| p.get(&index) != Some(&f));
                continue;
            }
            folio::folio_lock(cx, f);
            if !cx
                .cpu
                .recheck("folio_mapping", file.find_get_folio(cx, index) == Some(f))
            {
                folio::folio_unlock(cx, f);
                folio::folio_put(cx, f);
                continue; // truncated meanwhile
            }
            return Ok(f);
        }
        let f = folio::folio_alloc(cx, 0).ok_or(VmFault::Oom)?;
        folio::folio_init_shmem(cx, f, file.id, index);
        folio::folio_ref_add(cx, f, 1); // the page cache's reference
                                        // shmem_add_to_page_cache: the store under the xarray lock (-EEXIST if a racing fault
                                        // filled the slot first).
        let xa = file.xa_lock(cx);
        let added = file.cache_insert(cx, &xa, index, f);
        drop(xa);
        if added {
            return Ok(f);
        }
        folio::folio_unlock(cx, f);
        folio::folio_put_refs(cx, f, 2);
    }
}

/// `shmem_fault`.
pub fn shmem_fault(cx: Ctx<'_>, vmf: &Vmf<'_>) -> Result<FrameRef, VmFault> {
    let _f = cx.cpu.enter("shmem_fault");
    let file = vmf
        .vma
        .file
        .as_ref()
        .expect("shmem_fault on an anonymous VMA");
    let index = vmf.vma.linear_page_index(cx, vmf.addr);
    // shmem_get_folio_gfp: no folio cached and the VMA registered for missing faults.
    if crate::mm::userfaultfd::userfaultfd_missing(cx, vmf.vma)
        && file.find_get_folio(cx, index).is_none()
    {
        return Err(crate::mm::userfaultfd::handle_userfault(
            cx,
            vmf.vma,
            crate::mm::types::VmFlags::UFFD_MISSING,
        ));
    }
    shmem_get_folio(cx, file, index)
}

/// `unmap_mapping_range`: zap every mapping of pages `[first, last]` of `file`, under
/// `i_mmap_rwsem` read alone. `even_cows` also zaps private COW copies (truncation).
pub fn unmap_mapping_range(cx: Ctx<'_>, file: &File, first: u64, last: u64, even_cows: bool) {
    let _f = cx.cpu.enter("unmap_mapping_range");
    let ps = cx.geo().page_shift;
    let r = file.i_mmap_rwsem.read(cx.cpu);
    for vma in file.i_mmap_overlapping(cx, first, last) {
        let Some(mm) = cx.k.mm_by_id(vma.mm_id(cx)) else {
            continue;
        };
        let vpg = vma.pgoff(cx);
        let s = first.max(vpg);
        let e = (last + 1).min(vpg + ((vma.end(cx) - vma.start(cx)) >> ps));
        let start = vma.start(cx) + ((s - vpg) << ps);
        let end = vma.start(cx) + ((e - vpg) << ps);
        zap_page_range_single(
            cx,
            &mm,
            &vma,
            start,
            end,
            ZapDetails {
                reclaim_pt: false,
                even_cows,
                drop_markers: false,
            },
        );
    }
    drop(r);
}

/// Truncation (`shmem_setattr` shrinking `i_size`, inode eviction): unmap every mapping of the
/// range, private COW copies included, then drop the cached folios.
pub fn shmem_truncate_range(cx: Ctx<'_>, file: &File, first: u64, last: u64) {
    let _f = cx.cpu.enter("shmem_truncate_range");
    unmap_mapping_range(cx, file, first, last, true);
    shmem_undo_range(cx, file, first, last);
}

/// `ftruncate` shrinking a shmem file to `new_pages` pages (`shmem_setattr`, 6.18): write
/// `i_size` (faults at or beyond it now fail with SIGBUS), `unmap_mapping_range` of the tail with
/// `even_cows` (private COW copies go too, unlike a hole punch), `shmem_truncate_range` drops the
/// cached folios under their locks, then the tail is unmapped again to catch a COW copy a racing
/// `do_cow_fault` mapped after the first unmap.
pub fn shmem_setattr_truncate(cx: Ctx<'_>, file: &File, new_pages: u64) {
    let _f = cx.cpu.enter("shmem_setattr");
    let old = file.size_pages.read(&cx.cpu);
    if new_pages >= old {
        return;
    }
    file.size_pages.write(&cx.cpu, new_pages);
    unmap_mapping_range(cx, file, new_pages, u64::MAX - 1, true);
    {
        let _t = cx.cpu.enter("shmem_truncate_range");
        shmem_undo_range(cx, file, new_pages, u64::MAX - 1);
    }
    unmap_mapping_range(cx, file, new_pages, u64::MAX - 1, true);
}

/// `shmem_fallocate(FALLOC_FL_PUNCH_HOLE)` of pages `[first, last]`: `unmap_mapping_range`
/// (shared mappings only, `even_cows` = 0), under `i_mmap_rwsem` read and without any folio
/// lock, then `shmem_truncate_range` drops the cached folios under their locks.
pub fn shmem_punch_hole(cx: Ctx<'_>, file: &File, first: u64, last: u64) {
    let _f = cx.cpu.enter("shmem_fallocate");
    unmap_mapping_range(cx, file, first, last, false);
    let _t = cx.cpu.enter("shmem_truncate_range");
    shmem_undo_range(cx, file, first, last);
}

/// `shmem_undo_range`: drop each cached folio in `[first, last]` under its lock, unmapping it
/// again if a fault mapped it since the caller's unmap (`truncate_inode_folio`).
fn shmem_undo_range(cx: Ctx<'_>, file: &File, first: u64, last: u64) {
    let _f = cx.cpu.enter("shmem_undo_range");
    for (index, f) in file.folios_in(cx, first, last) {
        if !folio::folio_try_get(cx, f) {
            continue;
        }
        folio::folio_lock(cx, f);
        let nr = folio::folio_nr_pages(cx, f);
        let head = cx
            .cpu
            .page(f.pfn, mmcheck_platform::Access::Read)
            .get(mmcheck_platform::PageField::Index);
        if file.find_get_folio(cx, index) == Some(f) && (head < first || head + nr - 1 > last) {
            // truncate_inode_partial_folio: zero the part in the range; the folio stays (the
            // kernel then tries split_folio, which may fail; the model takes the failure).
            let fr = &cx.k.machine.frames;
            let pfn = f.pfn + (index - head) as u32;
            cx.cpu.data_write(fr.current(pfn), 0);
        } else if file.find_get_folio(cx, index) == Some(f) {
            if folio::folio_mapped(cx, f) {
                // Faulted back in since the unmap: truncate_inode_folio unmaps it again.
                unmap_mapping_range(cx, file, index, index, false);
            }
            // filemap_remove_folio: out of the cache under the xarray lock.
            let xa = file.xa_lock(cx);
            file.cache_remove(cx, &xa, index);
            drop(xa);
            folio::folio_put(cx, f); // the cache's reference
        }
        folio::folio_unlock(cx, f);
        folio::folio_put(cx, f);
    }
    cx.rcu_quiescent();
}

/// `get_file`.
pub fn get_file(cx: Ctx<'_>, file: &File) {
    file.f_count.add(&cx.cpu, 1);
}

/// `fput`: the last reference evicts the inode (`shmem_evict_inode` truncates everything).
pub fn fput(cx: Ctx<'_>, file: &File) {
    if file.f_count.add(&cx.cpu, -1) == 0 {
        let _f = cx.cpu.enter("shmem_evict_inode");
        shmem_truncate_range(cx, file, 0, u64::MAX - 1);
    }
}
