//! The mmu_gather (`mm/mmu_gather.c`, `include/asm-generic/tlb.h`, ≈6.14–2026): zapped pages are
//! freed only after the TLB flush that covers them; freed tables are flushed from the
//! paging-structure caches and then handed to RCU (`tlb_remove_table` with
//! `MMU_GATHER_RCU_TABLE_FREE`), or freed after an IPI or immediately under the older protocols.

use crate::mm::folio::folio_put;
use crate::mm::types::MmStruct;
use crate::protocol::TableFree;
use crate::Ctx;
use mmcheck_platform::{FrameRef, RcuWork};
use std::sync::atomic::Ordering;

/// `struct mmu_gather`.
pub struct MmuGather<'a> {
    pub mm: &'a MmStruct,
    pub fullmm: bool,
    /// Pending flush range, in page numbers.
    start: u64,
    end: u64,
    /// `freed_tables`: the flush must also drop paging-structure caches.
    pub freed_tables: bool,
    /// Folios whose mapping reference is dropped after the flush.
    pages: Vec<FrameRef>,
    /// Tables to free after the flush: `(table, level)`.
    tables: Vec<(FrameRef, u32)>,
    /// PTE tables PT reclaim emptied (freed by `Protocol::pt_reclaim_free`).
    reclaimed: Vec<FrameRef>,
}

impl<'a> MmuGather<'a> {
    /// `tlb_gather_mmu` / `tlb_gather_mmu_fullmm`: also `inc_tlb_flush_pending`.
    pub fn new(_cx: Ctx<'_>, mm: &'a MmStruct, fullmm: bool) -> Self {
        mm.tlb_flush_pending.fetch_add(1, Ordering::SeqCst);
        MmuGather {
            mm,
            fullmm,
            start: u64::MAX,
            end: 0,
            freed_tables: false,
            pages: Vec::new(),
            tables: Vec::new(),
            reclaimed: Vec::new(),
        }
    }

    /// `tlb_remove_tlb_entry` / `tlb_flush_pte_range`: `[addr, addr + size)` needs a flush.
    pub fn add_range(&mut self, cx: Ctx<'_>, addr: u64, size: u64) {
        let ps = cx.geo().page_shift;
        self.start = self.start.min(addr >> ps);
        self.end = self.end.max((addr + size).div_ceil(1 << ps));
    }

    /// `__tlb_remove_page`: queue the mapping's reference; true when the batch is full and the
    /// caller must flush (`force_flush`).
    pub fn remove_page(&mut self, cx: Ctx<'_>, folio: FrameRef) -> bool {
        self.pages.push(folio);
        self.pages.len() >= cx.proto().gather_batch
    }

    /// `pte_free_tlb` / `pmd_free_tlb` / `pud_free_tlb`: queue a detached table covering `addr`.
    pub fn free_table(&mut self, cx: Ctx<'_>, table: FrameRef, level: u32, addr: u64) {
        self.freed_tables = true;
        let span = 1u64 << cx.geo().shift(level + 1).min(63);
        self.add_range(cx, addr & !(span - 1), span);
        self.tables.push((table, level));
    }

    /// PT reclaim's `pte_free_tlb` of an emptied PTE table.
    pub fn free_reclaimed_table(&mut self, cx: Ctx<'_>, table: FrameRef, addr: u64) {
        self.free_table(cx, table, 1, addr);
        let t = self.tables.pop().expect("just queued");
        self.reclaimed.push(t.0);
    }

    /// `tlb_flush_mmu_tlbonly`: flush the pending range.
    pub fn flush_tlbonly(&mut self, cx: Ctx<'_>) {
        if !cx.proto().gather_tlb_flush {
            self.start = u64::MAX;
            self.end = 0;
            return;
        }
        if self.fullmm {
            if self.end > 0 || self.freed_tables {
                cx.cpu.flush_tlb_mm(self.mm.id);
            }
        } else if self.start < self.end {
            cx.cpu
                .flush_tlb_range(self.mm.id, self.start, self.end, self.freed_tables);
        }
        self.start = u64::MAX;
        self.end = 0;
    }

    /// `tlb_table_flush`: hand the queued tables to the allocator by the configured route.
    fn table_flush(&mut self, cx: Ctx<'_>) {
        let tables: Vec<(FrameRef, u32)> = self.tables.drain(..).map(|(t, _)| (t, 0)).collect();
        free_tables(cx, tables, cx.proto().table_free);
        let reclaimed: Vec<(FrameRef, u32)> = self.reclaimed.drain(..).map(|t| (t, 0)).collect();
        free_tables(cx, reclaimed, cx.proto().pt_reclaim_free);
    }

    /// `tlb_flush_mmu`: flush, then free tables, then drop the pages' references.
    pub fn flush_mmu(&mut self, cx: Ctx<'_>) {
        let _f = cx.cpu.enter("tlb_flush_mmu");
        self.flush_tlbonly(cx);
        self.table_flush(cx);
        for f in std::mem::take(&mut self.pages) {
            folio_put(cx, f);
        }
    }

    /// `tlb_finish_mmu`: a nested gather (another zapper under a shared lock) forces a full flush.
    pub fn finish(mut self, cx: Ctx<'_>) {
        let _f = cx.cpu.enter("tlb_finish_mmu");
        if self.mm.tlb_flush_nested() {
            self.fullmm = true;
            self.freed_tables = true;
            self.end = 1;
        }
        self.flush_mmu(cx);
        self.mm.tlb_flush_pending.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Free detached, flushed tables by `how`.
fn free_tables(cx: Ctx<'_>, tables: Vec<(FrameRef, u32)>, how: TableFree) {
    if tables.is_empty() {
        return;
    }
    match how {
        TableFree::Rcu => {
            let _f = cx.cpu.enter("tlb_remove_table");
            cx.cpu.call_rcu(RcuWork::FreeFrames { frames: tables, reason: "tlb_remove_table_rcu" });
        }
        TableFree::Ipi => {
            let _f = cx.cpu.enter("tlb_remove_table_one");
            cx.cpu.tlb_remove_table_sync_one();
            for (t, o) in tables {
                cx.k.machine.frames.free(&cx.cpu, t, o);
            }
        }
        TableFree::Immediate => {
            let _f = cx.cpu.enter("tlb_remove_page");
            for (t, o) in tables {
                cx.k.machine.frames.free(&cx.cpu, t, o);
            }
        }
    }
}
