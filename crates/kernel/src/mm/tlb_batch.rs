//! Deferred TLB flushing for rmap unmaps (`mm/rmap.c`, ≈6.18: `set_tlb_ubc_flush_pending`,
//! `try_to_unmap_flush`, `flush_tlb_batched_pending`; x86 `arch_tlbbatch_*` in
//! `arch/x86/mm/tlb.c`).
//!
//! With `TTU_BATCH_FLUSH`, `try_to_unmap_one` / `try_to_migrate_one` clear a PTE under the PTL
//! without flushing: the mm joins the task's batch (`current->tlb_ubc`) and `mm->tlb_flush_batched`
//! counts one more pending flush. The caller flushes the whole batch with `try_to_unmap_flush`
//! before the folios are freed or copied. Meanwhile other CPUs may still hold the old translation,
//! after the PTL is dropped: anyone else who changes those PTEs under the PTL and relies on the
//! TLB being clean for them (munmap, MADV_DONTNEED, mremap, mprotect) first calls
//! `flush_tlb_batched_pending`, which flushes the mm if a batched flush may still be pending.

use crate::mm::types::MmStruct;
use crate::Ctx;

/// `TLB_FLUSH_BATCH_FLUSHED_SHIFT`: the high half of `tlb_flush_batched` counts flushes done.
const FLUSHED_SHIFT: u32 = 16;
/// `TLB_FLUSH_BATCH_PENDING_MASK`: the low half counts flushes deferred.
const PENDING_MASK: u64 = (1 << FLUSHED_SHIFT) - 1;
/// `TLB_FLUSH_BATCH_PENDING_LARGE`.
const PENDING_LARGE: u64 = PENDING_MASK / 2;

/// `struct tlbflush_unmap_batch` (`current->tlb_ubc`): the task's own, never shared.
#[derive(Debug, Default)]
pub struct TlbUbc {
    /// x86 `arch_tlbbatch_add_pending` ORs the mm's `mm_cpumask` into the batch; the model keeps
    /// the mms and flushes each one's CPUs.
    mms: Vec<u64>,
    /// `flush_required`.
    pub flush_required: bool,
    /// `writable`: some PTE was dirty when cleared (`try_to_unmap_flush_dirty` cares).
    pub writable: bool,
}

/// `set_tlb_ubc_flush_pending`: the PTE of `mm` just cleared will be flushed with the batch.
pub fn set_tlb_ubc_flush_pending(
    cx: Ctx<'_>,
    ubc: &mut TlbUbc,
    mm: &MmStruct,
    addr: u64,
    writable: bool,
) {
    let _f = cx.cpu.enter("set_tlb_ubc_flush_pending");
    if cx.k.machine.tlb_flush_mode() == mmcheck_platform::TlbFlushMode::Broadcast {
        // arm64's arch_tlbbatch_add_pending issues the TLBI now, without waiting for it:
        // dsb(ishst) first, so the cleared entry is visible before anything after it runs.
        cx.cpu.dsb_ishst();
    }
    if !ubc.mms.contains(&mm.id) {
        ubc.mms.push(mm.id);
    }
    ubc.flush_required = true;
    // The TLB-permission oracle: this page's flush is batched; a call that finds it cleared
    // answers for it (`flush_tlb_batched_pending`).
    let (cpu, vpn) = (cx.cpu.id, addr >> cx.geo().page_shift);
    mm.tlb_owed.record(|o| o.batched(cpu, vpn, vpn + 1));
    // Ensure compatibility with flush_tlb_batched_pending: one more pending, wrapping the count
    // back to 1 before it reaches the flushed half.
    let mut batch = mm.tlb_flush_batched.read(&cx.cpu);
    loop {
        if batch & PENDING_MASK > PENDING_LARGE {
            let n = mm.tlb_flush_batched.cmpxchg(&cx.cpu, batch, 1);
            if n != batch {
                batch = n;
                continue;
            }
        } else {
            mm.tlb_flush_batched.add(&cx.cpu, 1);
        }
        break;
    }
    if writable {
        ubc.writable = true;
    }
}

/// `try_to_unmap_flush`: flush every mm of the batch (x86 `arch_tlbbatch_flush`: one full flush
/// on the union of their `mm_cpumask`s). It does not touch `mm->tlb_flush_batched`: a later
/// `flush_tlb_batched_pending` still flushes once.
pub fn try_to_unmap_flush(cx: Ctx<'_>, ubc: &mut TlbUbc) {
    if !ubc.flush_required {
        return;
    }
    let _f = cx.cpu.enter("try_to_unmap_flush");
    for mm in std::mem::take(&mut ubc.mms) {
        cx.cpu.flush_tlb_range(mm, 0, u64::MAX, false);
        if let Some(m) = cx.k.mm_by_id(mm) {
            let cpu = cx.cpu.id;
            m.tlb_owed.record(|o| o.batch_flushed(cpu));
        }
    }
    ubc.flush_required = false;
    ubc.writable = false;
}

/// `try_to_unmap_flush_dirty`: flush the batch if some PTE cleared in it was dirty, before
/// reclaim writes a folio out (a CPU writing through a stale writable translation would change
/// the page after its data went to swap).
pub fn try_to_unmap_flush_dirty(cx: Ctx<'_>, ubc: &mut TlbUbc) {
    if ubc.writable {
        try_to_unmap_flush(cx, ubc);
    }
}

/// `flush_tlb_batched_pending`: called with the PTL held by whoever is about to change PTEs that
/// reclaim or migration may have cleared with a deferred flush; flushes `mm` if any batched flush
/// is pending.
pub fn flush_tlb_batched_pending(cx: Ctx<'_>, mm: &MmStruct) {
    let batch = mm.tlb_flush_batched.read(&cx.cpu);
    let pending = batch & PENDING_MASK;
    let flushed = batch >> FLUSHED_SHIFT;
    if pending != flushed {
        let _f = cx.cpu.enter("flush_tlb_batched_pending");
        cx.cpu.flush_tlb_range(mm.id, 0, u64::MAX, false);
        // A flush batched meanwhile leaves the word as it is, so that one is not lost.
        mm.tlb_flush_batched
            .cmpxchg(&cx.cpu, batch, pending | (pending << FLUSHED_SHIFT));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::pgtable::tests::{kinds, seq_kernel};
    use crate::mm::vma::mm_alloc;
    use crate::Protocol;
    use mmcheck_platform::TlbEntry;

    #[test]
    fn a_batched_flush_is_pending_until_someone_flushes() {
        let k = seq_kernel(Protocol::default());
        let (c0, c1) = (k.ctx(0), k.ctx(1));
        let mm = mm_alloc(c0).unwrap();
        let f = crate::mm::folio::folio_alloc(c0, 0).unwrap();
        let e = TlbEntry {
            mm: mm.id,
            vpn: 0x100,
            shift: 0,
            page: f,
            writable: true,
        };
        c1.cpu.tlb_fill(e);
        let mut ubc = TlbUbc::default();
        set_tlb_ubc_flush_pending(c0, &mut ubc, &mm, 0x100 << 12, true);
        assert!(ubc.flush_required && ubc.writable);
        assert_eq!(mm.tlb_flush_batched.peek(&k.machine), 1);
        // Another zapper sees the pending flush and flushes the mm.
        flush_tlb_batched_pending(c1, &mm);
        assert!(c1.cpu.tlb_lookup(mm.id, 0x100).is_none());
        assert_eq!(
            mm.tlb_flush_batched.peek(&k.machine),
            1 | (1 << FLUSHED_SHIFT)
        );
        // Nothing pending: no flush.
        c1.cpu.tlb_fill(e);
        flush_tlb_batched_pending(c0, &mm);
        assert!(c1.cpu.tlb_lookup(mm.id, 0x100).is_some());
        // try_to_unmap_flush flushes the batch but leaves the counts alone.
        set_tlb_ubc_flush_pending(c0, &mut ubc, &mm, 0x100 << 12, false);
        try_to_unmap_flush(c0, &mut ubc);
        assert!(!ubc.flush_required);
        assert!(c1.cpu.tlb_lookup(mm.id, 0x100).is_none());
        assert_eq!(
            mm.tlb_flush_batched.peek(&k.machine),
            2 | (1 << FLUSHED_SHIFT)
        );
        crate::mm::folio::folio_put(c0, f);
        assert!(kinds(&k).is_empty());
    }
}
