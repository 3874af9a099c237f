//! `madvise(MADV_DONTNEED)` (`mm/madvise.c`, 2026): under the per-VMA read lock when the range
//! lies in one VMA (6.16+ `try_vma_read_lock`), else under the mmap read lock; each VMA is zapped
//! with `reclaim_pt` so emptied PTE tables are freed (PT reclaim, 6.14+).

use crate::check::{check_tlb_permission, tlb_permission_begin};
use crate::mm::memory::lock_vma_under_rcu;
use crate::mm::types::{MmStruct, Vma};
use crate::mm::zap::{zap_page_range_single, ZapDetails};
use crate::{Ctx, Errno};
use std::sync::Arc;

/// `madvise_dontneed_single_vma`.
fn madvise_dontneed_single_vma(cx: Ctx<'_>, mm: &MmStruct, vma: &Arc<Vma>, start: u64, end: u64) {
    let _f = cx.cpu.enter("madvise_dontneed_single_vma");
    zap_page_range_single(
        cx,
        mm,
        vma,
        start,
        end,
        ZapDetails {
            reclaim_pt: true,
            even_cows: true,
            drop_markers: false,
        },
    );
}

/// `madvise(addr, len, MADV_DONTNEED)`. `ENOMEM` if part of the range is unmapped (the mapped
/// parts are still zapped).
pub fn madvise_dontneed(cx: Ctx<'_>, mm: &MmStruct, addr: u64, len: u64) -> Result<(), Errno> {
    let _f = cx.cpu.enter("madvise_dontneed");
    let ps = cx.geo().page_size();
    if !addr.is_multiple_of(ps) {
        return Err(Errno::Einval);
    }
    if len == 0 {
        return Ok(());
    }
    let end = addr
        .checked_add(len.div_ceil(ps) * ps)
        .ok_or(Errno::Einval)?;
    if end > cx.geo().task_size() {
        return Err(Errno::Einval);
    }
    let tlb_before = tlb_permission_begin(cx, mm, addr, end);
    if cx.proto().madv_vma_lock {
        if let Some(l) = lock_vma_under_rcu(cx, mm, addr) {
            if end <= l.vma.end() {
                madvise_dontneed_single_vma(cx, mm, &l.vma, addr, end);
                drop(l);
                cx.rcu_quiescent();
                check_tlb_permission(cx, mm, addr, end, tlb_before, "MADV_DONTNEED");
                return Ok(());
            }
        }
    }
    let r = mm.mmap_lock.read_lock(cx.cpu);
    let vmas = mm.vmas_in(cx, addr, end);
    let mut covered = addr;
    let mut hole = false;
    for v in &vmas {
        if v.start() > covered {
            hole = true;
        }
        let s = addr.max(v.start());
        let e = end.min(v.end());
        madvise_dontneed_single_vma(cx, mm, v, s, e);
        covered = e;
    }
    drop(r);
    cx.rcu_quiescent();
    check_tlb_permission(cx, mm, addr, end, tlb_before, "MADV_DONTNEED");
    if hole || covered < end {
        return Err(Errno::Enomem);
    }
    Ok(())
}
