//! Per-CPU TLBs (`arch/x86/mm/tlb.c` as the protocol sees it): a leaf cache of translations and a
//! paging-structure cache of PTE-table pointers (the PMD-level walk cache). Entries survive until
//! flushed, even after the page tables change. A shootdown is an IPI: it completes only when every
//! target CPU is outside IRQ-off, then drops the range from every target.

use crate::event::{Access, Obj};
use crate::frames::FrameRef;
use crate::irq::ipi_done;
use crate::machine::Cpu;
use std::sync::atomic::Ordering;

/// A cached translation: `1 << shift` pages at `vpn` map the frames starting at `page`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlbEntry {
    pub mm: u64,
    /// First virtual page number covered.
    pub vpn: u64,
    /// log2 of the pages covered (0 for a PTE, 9 for a PMD leaf on x86-64).
    pub shift: u32,
    /// The frame mapped at the first page of the entry (`vpn` aligned down to `shift`), at its
    /// generation when the walker read the entry.
    pub page: FrameRef,
    pub writable: bool,
}

impl TlbEntry {
    fn covers(&self, mm: u64, vpn: u64) -> bool {
        self.mm == mm && vpn >> self.shift == self.vpn >> self.shift
    }

    fn overlaps(&self, mm: u64, start: u64, end: u64) -> bool {
        let s = self.vpn >> self.shift << self.shift;
        self.mm == mm && s < end && start < s + (1 << self.shift)
    }
}

/// A cached pointer to the PTE table that maps `[key << table_shift, (key + 1) << table_shift)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkCacheEntry {
    pub mm: u64,
    /// `vpn >> table_shift`.
    pub key: u64,
    pub table_shift: u32,
    pub table: FrameRef,
}

/// One CPU's TLB.
#[derive(Debug)]
pub struct Tlb {
    cap: usize,
    leaves: Vec<TlbEntry>,
    walk: Vec<WalkCacheEntry>,
}

impl Tlb {
    pub fn new(cap: usize) -> Self {
        Tlb {
            cap: cap.max(1),
            leaves: Vec::new(),
            walk: Vec::new(),
        }
    }

    fn flush(&mut self, mm: u64, start: u64, end: u64, tables: bool) {
        self.leaves.retain(|e| !e.overlaps(mm, start, end));
        if tables {
            self.walk.retain(|w| {
                let s = w.key << w.table_shift;
                !(w.mm == mm && s < end && start < s + (1 << w.table_shift))
            });
        }
    }
}

impl<'m> Cpu<'m> {
    /// Look up `vpn` of `mm` in this CPU's leaf TLB.
    pub fn tlb_lookup(&self, mm: u64, vpn: u64) -> Option<TlbEntry> {
        self.visible(Obj::Tlb(self.id as u16), Access::Read);
        self.state()
            .tlb
            .lock()
            .leaves
            .iter()
            .rev()
            .find(|e| e.covers(mm, vpn))
            .copied()
    }

    /// Insert a translation (the hardware walker's fill), evicting the oldest when full.
    pub fn tlb_fill(&self, e: TlbEntry) {
        self.visible(Obj::Tlb(self.id as u16), Access::Fill);
        let mut t = self.state().tlb.lock();
        t.leaves.retain(|x| {
            !(x.mm == e.mm && x.vpn >> x.shift == e.vpn >> x.shift && x.shift == e.shift)
        });
        if t.leaves.len() >= t.cap {
            t.leaves.remove(0);
        }
        t.leaves.push(e);
    }

    /// Look up the paging-structure cache.
    pub fn walk_cache_lookup(&self, mm: u64, vpn: u64, table_shift: u32) -> Option<FrameRef> {
        self.visible(Obj::Tlb(self.id as u16), Access::Read);
        let key = vpn >> table_shift;
        self.state()
            .tlb
            .lock()
            .walk
            .iter()
            .find(|w| w.mm == mm && w.key == key && w.table_shift == table_shift)
            .map(|w| w.table)
    }

    /// Cache a PTE-table pointer.
    pub fn walk_cache_fill(&self, w: WalkCacheEntry) {
        self.visible(Obj::Tlb(self.id as u16), Access::Fill);
        let mut t = self.state().tlb.lock();
        t.walk
            .retain(|x| !(x.mm == w.mm && x.key == w.key && x.table_shift == w.table_shift));
        if t.walk.len() >= 8 {
            t.walk.remove(0);
        }
        t.walk.push(w);
    }

    /// `flush_tlb_range` (or `flush_tlb_mm` with the whole range): drop `[start, end)` (page
    /// numbers) of `mm` from this CPU and, by IPI, from every CPU that has `mm` loaded or cached.
    /// `tables` also drops paging-structure caches (`freed_tables`).
    pub fn flush_tlb_range(&self, mm: u64, start: u64, end: u64, tables: bool) {
        let _f = self.enter("flush_tlb_range");
        self.state().tlb.lock().flush(mm, start, end, tables);
        let targets: Vec<bool> = self
            .m
            .cpus
            .iter()
            .enumerate()
            .map(|(i, c)| {
                i != self.id
                    && (c.loaded_mm.load(Ordering::SeqCst) == mm || {
                        let t = c.tlb.lock();
                        t.leaves.iter().any(|e| e.mm == mm) || t.walk.iter().any(|w| w.mm == mm)
                    })
            })
            .collect();
        if targets.iter().any(|&t| t) {
            if self.warn_on(self.irqs_disabled(), "TLB shootdown with IRQs disabled") {
                return;
            }
            let snap: Vec<u64> = self
                .irq_snapshot()
                .into_iter()
                .zip(&targets)
                .map(|(s, &t)| if t { s } else { 0 })
                .collect();
            self.wait_for(
                Obj::Tlb(self.id as u16),
                Access::Flush,
                &|| ipi_done(&snap, self),
                &mut || ipi_done(&snap, self),
            );
            for (i, c) in self.m.cpus.iter().enumerate() {
                if targets[i] {
                    c.tlb.lock().flush(mm, start, end, tables);
                }
            }
        }
    }

    /// `flush_tlb_mm`.
    pub fn flush_tlb_mm(&self, mm: u64) {
        self.flush_tlb_range(mm, 0, u64::MAX, true);
    }

    /// Every CPU holding a leaf translation to a frame in `[pfn, pfn + n)` of generation-live or
    /// stale pages (the TLB oracle asks this when a page's refcount reaches zero).
    pub fn tlb_holders(&self, pfn: u32, n: u32) -> Vec<(usize, TlbEntry)> {
        let mut out = Vec::new();
        for (i, c) in self.m.cpus.iter().enumerate() {
            for e in &c.tlb.lock().leaves {
                let p = e.page.pfn;
                let len = 1u32 << e.shift;
                if p < pfn + n && pfn < p + len {
                    out.push((i, *e));
                }
            }
        }
        out
    }

    /// Drop every cached translation of `mm` on this CPU only (context switch with a new ASID).
    pub fn local_flush_mm(&self, mm: u64) {
        self.state().tlb.lock().flush(mm, 0, u64::MAX, true);
    }
}
