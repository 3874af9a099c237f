//! Per-CPU TLBs (`arch/x86/mm/tlb.c`, `arch/arm64/include/asm/tlbflush.h` as the protocol sees
//! them, ≈6.18): a leaf cache of translations and a paging-structure cache holding table pointers
//! at every level below the top (x86's PML4E/PDPTE/PDE caches, arm64's walk cache). Entries
//! survive until flushed, even after the page tables change.
//!
//! A shootdown reaches other CPUs by [`TlbFlushMode`]: an IPI to the CPUs in `mm_cpumask` that
//! completes only once each target is outside IRQ-off (x86 native `native_flush_tlb_multi`), or a
//! broadcast invalidation that needs no interrupt (arm64 `TLBI ...IS` + `DSB`, x86 INVLPGB,
//! paravirt flushes) and waits only for hardware walks in flight. A flush that frees tables
//! (`tables`) also drops paging-structure entries whose span overlaps the range, as a non-leaf
//! `TLBI VAE1IS` does for each address; a leaf-only flush keeps them (`TLBI VALE1IS`).

use crate::event::Event;
use crate::event::{Access, Obj};
use crate::frames::FrameRef;
use crate::irq::ipi_done;
use crate::machine::{Cpu, Machine};
use std::sync::atomic::Ordering;

/// How a TLB shootdown reaches other CPUs (`tlb.flush`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlbFlushMode {
    /// x86 native: IPI every CPU in `mm_cpumask` (or holding entries of the mm) and wait; an
    /// IRQ-off target takes the IPI when it next enables IRQs, so IRQ-off regions delay the flush.
    Ipi,
    /// arm64 TLBI broadcast, x86 INVLPGB, paravirt flushes: every CPU's entries for the range are
    /// dropped in the flush step, whatever its IRQ state; only walks in flight are waited for.
    Broadcast,
}

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

/// A cached pointer to the table that maps `[key << table_shift, (key + 1) << table_shift)` (a PTE
/// table has `table_shift` = bits per level, a PMD table twice that, and so on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkCacheEntry {
    pub mm: u64,
    /// `vpn >> table_shift`.
    pub key: u64,
    pub table_shift: u32,
    pub table: FrameRef,
}

/// One CPU's TLB.
#[derive(Clone, Debug)]
pub struct Tlb {
    cap: usize,
    leaves: Vec<TlbEntry>,
    walk: Vec<WalkCacheEntry>,
    /// Something was ever cached here (a CPU that never ran user code has nothing to flush,
    /// whatever any other CPU does; see [`Machine::tlb_footprint`]).
    ever_filled: bool,
}

/// The TLB operation a CPU announced last, for [`Machine::tlb_footprint`] (written by the CPU
/// before it announces the step, read by the explorer before running it).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) enum TlbOp {
    #[default]
    Other,
    /// `flush_tlb_range(mm, start, end, tables)`.
    Flush { mm: u64, start: u64, end: u64 },
    /// `tlb_holders(pfn, n)`.
    Holders { pfn: u32, n: u32 },
    /// A shootdown's wait for the deferred targets in the mask.
    Wait { cpus: u16 },
    /// `tlb_fill` of a leaf of `mm` at `vpn` (`1 << shift` pages) translating to `pfn` on.
    Fill {
        mm: u64,
        vpn: u64,
        shift: u32,
        pfn: u32,
    },
}

/// Bit `x % 32` of every `x` in `[start, end)` (all bits for 32 or more).
fn hash_range(start: u64, end: u64) -> u32 {
    if end <= start {
        return 0;
    }
    if end - start >= 32 {
        return u32::MAX;
    }
    (start..end).fold(0, |m, x| m | 1 << (x % 32))
}

impl Tlb {
    pub fn new(cap: usize) -> Self {
        Tlb {
            cap: cap.max(1),
            leaves: Vec::new(),
            walk: Vec::new(),
            ever_filled: false,
        }
    }

    /// Make this TLB what `t` is, keeping its allocations (see
    /// [`crate::Machine::reset_from`]).
    pub(crate) fn reset_from(&mut self, t: &Tlb) {
        let Tlb {
            cap,
            leaves,
            walk,
            ever_filled,
        } = self;
        *cap = t.cap;
        leaves.clone_from(&t.leaves);
        walk.clone_from(&t.walk);
        *ever_filled = t.ever_filled;
    }

    pub(crate) fn flush(&mut self, mm: u64, start: u64, end: u64, tables: bool) {
        self.leaves.retain(|e| !e.overlaps(mm, start, end));
        if tables {
            self.walk.retain(|w| {
                let s = w.key << w.table_shift;
                !(w.mm == mm && s < end && start < s + (1 << w.table_shift))
            });
        }
    }
}

impl Machine {
    /// A shootdown's send step, its wait, or a `tlb_holders` scan as the explorer sees it, from
    /// the state before the step (see [`Machine::footprint`]); any other TLB event as announced.
    /// The wait reads only the IRQ-off counters of the targets it waits for ([`Obj::IpiWait`]),
    /// which only their own IRQ boundaries change.
    ///
    /// A send drops, on every CPU, the leaves and walk-cache entries overlapping its range, and
    /// picks its targets: every other CPU that has the mm loaded (or, broadcast, every CPU), and
    /// one that has not only if it caches entries of the mm. Its footprint
    /// ([`Obj::Shootdown`]) names the pages and frames of what it drops, and whether the target
    /// choice is blind to TLB contents. Each part changes only by events dependent with the
    /// send: fills, local flushes and `switch_mm` (TLB writes of one CPU), IRQ enables that run a
    /// deferred flush, and other shootdowns whose pages meet these (the pages hash includes the
    /// span of every entry dropped, so two shootdowns that would drop one entry both name it).
    pub fn tlb_footprint(&self, cpu: usize, ev: Event) -> Event {
        let op = *self.cpus[cpu].tlb_op.lock();
        match (op, ev.access) {
            (TlbOp::Flush { mm, start, end }, Access::Flush) => {
                let broadcast = self.tlb_flush == TlbFlushMode::Broadcast;
                let mut vpns = hash_range(start, end);
                let mut frames = 0u32;
                let mut blind = true;
                for (i, c) in self.cpus.iter().enumerate() {
                    let t = c.tlb.lock();
                    if i != cpu
                        && !broadcast
                        && c.loaded_mm.load(Ordering::SeqCst) != mm
                        && t.ever_filled
                    {
                        blind = false;
                    }
                    for e in t.leaves.iter().filter(|e| e.overlaps(mm, start, end)) {
                        let s = e.vpn >> e.shift << e.shift;
                        vpns |= hash_range(s, s + (1 << e.shift));
                        let p = e.page.pfn as u64;
                        frames |= hash_range(p, p + (1 << e.shift));
                    }
                    for w in t.walk.iter().filter(|w| w.mm == mm) {
                        let s = w.key << w.table_shift;
                        if s < end && start < s + (1 << w.table_shift) {
                            vpns |= hash_range(s, s.saturating_add(1 << w.table_shift));
                        }
                    }
                }
                Event::new(
                    Obj::Shootdown {
                        vpns,
                        frames,
                        blind,
                    },
                    ev.access,
                )
            }
            (TlbOp::Wait { cpus }, Access::Flush) => Event::new(Obj::IpiWait(cpus), ev.access),
            (
                TlbOp::Fill {
                    mm,
                    vpn,
                    shift,
                    pfn,
                },
                Access::Fill,
            ) => {
                // The frames of the new leaf, of the one it replaces and of the one it evicts
                // (the oldest, when the TLB is full): all a scan for frames can see change.
                let t = self.cpus[cpu].tlb.lock();
                let span = |p: u32, sh: u32| hash_range(p as u64, p as u64 + (1 << sh));
                let mut frames = span(pfn, shift);
                let mut left = t.leaves.len();
                for x in t.leaves.iter() {
                    if x.mm == mm && x.vpn >> x.shift == vpn >> x.shift && x.shift == shift {
                        frames |= span(x.page.pfn, x.shift);
                        left -= 1;
                    }
                }
                if left >= t.cap {
                    if let Some(x) = t.leaves.iter().find(|x| {
                        !(x.mm == mm && x.vpn >> x.shift == vpn >> x.shift && x.shift == shift)
                    }) {
                        frames |= span(x.page.pfn, x.shift);
                    }
                }
                Event::new(
                    Obj::TlbFill {
                        cpu: cpu as u16,
                        frames,
                    },
                    ev.access,
                )
            }
            (TlbOp::Holders { pfn, n }, Access::TlbScan) => Event::new(
                Obj::TlbScanFrames(hash_range(pfn as u64, pfn as u64 + n as u64)),
                ev.access,
            ),
            _ => ev,
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
        *self.state().tlb_op.lock() = TlbOp::Fill {
            mm: e.mm,
            vpn: e.vpn,
            shift: e.shift,
            pfn: e.page.pfn,
        };
        self.visible(Obj::Tlb(self.id as u16), Access::Fill);
        let mut t = self.state().tlb.lock();
        t.ever_filled = true;
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

    /// The lowest-level cached table for `vpn` among the levels `1..levels` (a table at level `l`
    /// spans `bits * l` page-number bits): `(table, level)`. One lookup, as the walker starts.
    pub fn walk_cache_lowest(
        &self,
        mm: u64,
        vpn: u64,
        bits: u32,
        levels: u32,
    ) -> Option<(FrameRef, u32)> {
        self.visible(Obj::Tlb(self.id as u16), Access::Read);
        let t = self.state().tlb.lock();
        (1..levels).find_map(|l| {
            let sh = (bits * l).min(63);
            t.walk
                .iter()
                .find(|w| w.mm == mm && w.table_shift == sh && w.key == vpn >> sh)
                .map(|w| (w.table, l))
        })
    }

    /// Cache a table pointer.
    pub fn walk_cache_fill(&self, w: WalkCacheEntry) {
        self.walk_cache_fill_all(&[w]);
    }

    /// Cache the table pointers one walk went through (filled together at the walk's end: the
    /// walk is one instruction, no shootdown lands inside it).
    pub fn walk_cache_fill_all<'a>(&self, ws: impl IntoIterator<Item = &'a WalkCacheEntry>) {
        let mut ws = ws.into_iter().peekable();
        if ws.peek().is_none() {
            return;
        }
        self.visible(Obj::Tlb(self.id as u16), Access::WalkFill);
        let mut t = self.state().tlb.lock();
        t.ever_filled = true;
        for w in ws {
            t.walk
                .retain(|x| !(x.mm == w.mm && x.key == w.key && x.table_shift == w.table_shift));
            if t.walk.len() >= 16 {
                t.walk.remove(0);
            }
            t.walk.push(*w);
        }
    }

    /// `flush_tlb_range` (or `flush_tlb_mm` with the whole range): drop `[start, end)` (page
    /// numbers) of `mm` from this CPU and from the others, by the machine's [`TlbFlushMode`].
    /// `tables` also drops paging-structure caches (`freed_tables`).
    ///
    /// The shootdown is sent in one step, which sees every target's state at that instant.
    /// `Ipi`: the targets are the CPUs in `mm_cpumask` (`loaded_mm`) or still holding entries of
    /// `mm`; one with IRQs on takes the IPI at once (its TLB is flushed in this step), an IRQ-off
    /// one takes it when it next enables IRQs (its handler flushes then, see
    /// [`crate::IrqGuard`]). `Broadcast`: every CPU is flushed in this step, except one in the
    /// middle of a hardware walk, which drops the range when the walk ends. The sender then
    /// waits, in later steps, until every deferred target has.
    pub fn flush_tlb_range(&self, mm: u64, start: u64, end: u64, tables: bool) {
        let _f = self.enter("flush_tlb_range");
        *self.state().tlb_op.lock() = TlbOp::Flush { mm, start, end };
        self.visible(Obj::Tlb(self.id as u16), Access::Flush);
        self.state().tlb.lock().flush(mm, start, end, tables);
        let broadcast = self.m.tlb_flush == TlbFlushMode::Broadcast;
        let mut waiting = false;
        let mut snap = vec![0u64; self.m.cpus.len()];
        for (i, c) in self.m.cpus.iter().enumerate() {
            if i == self.id {
                continue;
            }
            self.touch(Obj::Tlb(i as u16));
            self.touch(Obj::Irq(i as u16));
            let target = broadcast || c.loaded_mm.load(Ordering::SeqCst) == mm || {
                let t = c.tlb.lock();
                t.leaves.iter().any(|e| e.mm == mm) || t.walk.iter().any(|w| w.mm == mm)
            };
            if !target {
                continue;
            }
            if !broadcast && self.warn_on(self.irqs_disabled(), "TLB shootdown with IRQs disabled")
            {
                return;
            }
            // LOCKING: the target's `ipi_flush` lock orders this decision against its IRQ-state
            // changes (native backend).
            let mut q = c.ipi_flush.lock();
            let defer = if broadcast {
                c.hw_walk.load(Ordering::SeqCst) != 0
            } else {
                c.irq_depth.load(Ordering::SeqCst) != 0
            };
            if !defer {
                c.tlb.lock().flush(mm, start, end, tables);
            } else {
                q.push((mm, start, end, tables));
                snap[i] = c.irq_ctr.load(Ordering::SeqCst);
                waiting = true;
            }
        }
        if waiting {
            let cpus = snap
                .iter()
                .enumerate()
                .filter(|&(_, &s)| s & 1 != 0)
                .fold(0u16, |m, (i, _)| m | 1 << i.min(15));
            *self.state().tlb_op.lock() = TlbOp::Wait { cpus };
            self.wait_for(
                Obj::Tlb(self.id as u16),
                Access::Flush,
                &|| ipi_done(&snap, self),
                &mut || ipi_done(&snap, self),
            );
        }
    }

    /// `flush_tlb_mm`.
    pub fn flush_tlb_mm(&self, mm: u64) {
        self.flush_tlb_range(mm, 0, u64::MAX, true);
    }

    /// Every CPU holding a leaf translation to a frame in `[pfn, pfn + n)` of generation-live or
    /// stale pages (the TLB oracle asks this when a page's refcount reaches zero).
    pub fn tlb_holders(&self, pfn: u32, n: u32) -> Vec<(usize, TlbEntry)> {
        *self.state().tlb_op.lock() = TlbOp::Holders { pfn, n };
        self.visible(Obj::Tlb(self.id as u16), Access::TlbScan);
        let mut out = Vec::new();
        for (i, c) in self.m.cpus.iter().enumerate() {
            self.touch(Obj::Tlb(i as u16));
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

    /// Every leaf translation of `mm` overlapping `[start, end)` on any CPU (the TLB-permission
    /// oracle asks this when a system call that reduces access returns).
    pub fn tlb_entries_in(&self, mm: u64, start: u64, end: u64) -> Vec<(usize, TlbEntry)> {
        *self.state().tlb_op.lock() = TlbOp::Other;
        self.visible(Obj::Tlb(self.id as u16), Access::TlbScan);
        let mut out = Vec::new();
        for (i, c) in self.m.cpus.iter().enumerate() {
            self.touch(Obj::Tlb(i as u16));
            for e in &c.tlb.lock().leaves {
                if e.overlaps(mm, start, end) {
                    out.push((i, *e));
                }
            }
        }
        out
    }

    /// [`Cpu::tlb_entries_in`] without the entries a shootdown already sent covers: a target
    /// with IRQs off (or, broadcast, in the middle of a hardware walk) that has not yet taken
    /// the flush another CPU sent and is waiting for. Those are the sender's to finish (the
    /// TLB-permission oracle asks this when a system call returns: its own shootdowns have
    /// completed by then).
    pub fn tlb_entries_in_unflushed(
        &self,
        mm: u64,
        start: u64,
        end: u64,
    ) -> Vec<(usize, TlbEntry)> {
        *self.state().tlb_op.lock() = TlbOp::Other;
        self.visible(Obj::Tlb(self.id as u16), Access::TlbScan);
        let mut out = Vec::new();
        for (i, c) in self.m.cpus.iter().enumerate() {
            self.touch(Obj::Tlb(i as u16));
            self.touch(Obj::Irq(i as u16));
            let pending = c.ipi_flush.lock().clone();
            for e in &c.tlb.lock().leaves {
                let in_flight = pending
                    .iter()
                    .any(|&(m, s, en, _)| e.overlaps(m, s, en) && m == mm);
                if e.overlaps(mm, start, end) && !in_flight {
                    out.push((i, *e));
                }
            }
        }
        out
    }

    /// `flush_tlb_fix_spurious_fault` / `invlpg`: drop `[start, end)` of `mm` from this CPU only,
    /// paging-structure caches included.
    pub fn local_flush_tlb_range(&self, mm: u64, start: u64, end: u64) {
        *self.state().tlb_op.lock() = TlbOp::Other;
        self.visible(Obj::Tlb(self.id as u16), Access::Fill);
        self.state().tlb.lock().flush(mm, start, end, true);
    }

    /// Drop every cached translation of `mm` on this CPU only (context switch with a new ASID).
    pub fn local_flush_mm(&self, mm: u64) {
        *self.state().tlb_op.lock() = TlbOp::Other;
        self.visible(Obj::Tlb(self.id as u16), Access::Fill);
        self.state().tlb.lock().flush(mm, 0, u64::MAX, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::FrameKind;
    use crate::machine::{Machine, MachineConfig};
    use crate::spinlock::tests::{
        config, expect_done, expect_waiting, kinds, probe_machine, seq_machine, Note, TestBackend,
    };
    use crate::violation::ViolationKind;

    const MM: u64 = 7;
    const OTHER: u64 = 8;

    fn page(m: &Machine) -> FrameRef {
        m.frames.alloc(&m.cpu(0), 0, FrameKind::Data).unwrap()
    }

    fn leaf(mm: u64, vpn: u64, page: FrameRef) -> TlbEntry {
        TlbEntry {
            mm,
            vpn,
            shift: 0,
            page,
            writable: true,
        }
    }

    #[test]
    fn fill_and_lookup() {
        let m = seq_machine(2, 16);
        let (c0, c1) = (m.cpu(0), m.cpu(1));
        let (p, q) = (page(&m), page(&m));
        c0.tlb_fill(leaf(MM, 0x10, p));
        assert_eq!(c0.tlb_lookup(MM, 0x10), Some(leaf(MM, 0x10, p)));
        assert_eq!(c0.tlb_lookup(MM, 0x11), None);
        assert_eq!(c0.tlb_lookup(OTHER, 0x10), None, "tagged by mm");
        assert_eq!(c1.tlb_lookup(MM, 0x10), None, "per CPU");
        // A refill of the same page replaces the entry.
        c0.tlb_fill(TlbEntry {
            writable: false,
            ..leaf(MM, 0x10, q)
        });
        let e = c0.tlb_lookup(MM, 0x10).unwrap();
        assert_eq!((e.page, e.writable), (q, false));
        // A huge entry covers its whole aligned range.
        c0.tlb_fill(TlbEntry {
            shift: 9,
            ..leaf(MM, 0x405, p)
        });
        assert_eq!(c0.tlb_lookup(MM, 0x400).map(|e| e.shift), Some(9));
        assert_eq!(c0.tlb_lookup(MM, 0x5ff).map(|e| e.shift), Some(9));
        assert_eq!(c0.tlb_lookup(MM, 0x600), None);
    }

    #[test]
    fn a_full_tlb_evicts_the_oldest_entry() {
        let cfg = MachineConfig {
            tlb_entries: 2,
            ..config(1, 16)
        };
        let m = Machine::new(cfg, Box::new(TestBackend::Sequential));
        let c = m.cpu(0);
        let p = page(&m);
        for vpn in [1, 2, 3] {
            c.tlb_fill(leaf(MM, vpn, p));
        }
        assert_eq!(c.tlb_lookup(MM, 1), None);
        assert!(c.tlb_lookup(MM, 2).is_some() && c.tlb_lookup(MM, 3).is_some());
    }

    #[test]
    fn flush_tlb_range_removes_the_range_from_another_cpu() {
        let m = seq_machine(2, 16);
        let (c0, c1) = (m.cpu(0), m.cpu(1));
        let p = page(&m);
        for vpn in [0x10, 0x20, 0x27, 0x28, 0x30] {
            c1.tlb_fill(leaf(MM, vpn, p));
            c0.tlb_fill(leaf(MM, vpn, p));
        }
        c1.tlb_fill(leaf(OTHER, 0x20, p));
        c1.tlb_fill(TlbEntry {
            shift: 9,
            ..leaf(MM, 0x200, p)
        });
        c0.flush_tlb_range(MM, 0x18, 0x28, false);
        for c in [c0, c1] {
            assert!(c.tlb_lookup(MM, 0x10).is_some());
            assert!(c.tlb_lookup(MM, 0x20).is_none(), "{c:?}");
            assert!(c.tlb_lookup(MM, 0x27).is_none(), "{c:?}");
            assert!(c.tlb_lookup(MM, 0x28).is_some(), "end is exclusive");
            assert!(c.tlb_lookup(MM, 0x30).is_some());
        }
        assert!(c1.tlb_lookup(OTHER, 0x20).is_some(), "other mms untouched");
        // A range that overlaps part of a huge entry drops all of it.
        assert!(c1.tlb_lookup(MM, 0x3ff).is_some());
        c0.flush_tlb_range(MM, 0x300, 0x301, false);
        assert!(c1.tlb_lookup(MM, 0x200).is_none());
        assert!(kinds(&m).is_empty());
    }

    #[test]
    fn flush_tlb_mm_drops_everything_of_the_mm() {
        let m = seq_machine(2, 16);
        let (c0, c1) = (m.cpu(0), m.cpu(1));
        let p = page(&m);
        c1.tlb_fill(leaf(MM, 0x10, p));
        c1.tlb_fill(leaf(MM, 1 << 30, p));
        c1.tlb_fill(leaf(OTHER, 0x10, p));
        c0.flush_tlb_mm(MM);
        assert!(c1.tlb_lookup(MM, 0x10).is_none() && c1.tlb_lookup(MM, 1 << 30).is_none());
        assert!(c1.tlb_lookup(OTHER, 0x10).is_some());
    }

    #[test]
    fn flushing_tables_drops_walk_cache_entries() {
        let m = seq_machine(2, 16);
        let (c0, c1) = (m.cpu(0), m.cpu(1));
        let t = m.frames.alloc(&c0, 0, FrameKind::Table(1)).unwrap();
        let w = WalkCacheEntry {
            mm: MM,
            key: 0x1000 >> 9,
            table_shift: 9,
            table: t,
        };
        c1.walk_cache_fill(w);
        assert_eq!(c1.walk_cache_lookup(MM, 0x1000, 9), Some(t));
        assert_eq!(c1.walk_cache_lookup(MM, 0x1000 + 511, 9), Some(t));
        assert_eq!(c1.walk_cache_lookup(MM, 0x1000 + 512, 9), None);
        assert_eq!(c1.walk_cache_lookup(OTHER, 0x1000, 9), None);
        // A leaf-only flush keeps the paging-structure cache.
        c0.flush_tlb_range(MM, 0x1000, 0x1200, false);
        assert_eq!(c1.walk_cache_lookup(MM, 0x1000, 9), Some(t));
        // A flush of a different range with tables keeps it too.
        c0.flush_tlb_range(MM, 0x1200, 0x1400, true);
        assert_eq!(c1.walk_cache_lookup(MM, 0x1000, 9), Some(t));
        // Any overlap with tables drops it.
        c0.flush_tlb_range(MM, 0x11ff, 0x1200, true);
        assert_eq!(c1.walk_cache_lookup(MM, 0x1000, 9), None);
    }

    #[test]
    fn local_flush_mm_is_local() {
        let m = seq_machine(2, 16);
        let (c0, c1) = (m.cpu(0), m.cpu(1));
        let p = page(&m);
        c0.tlb_fill(leaf(MM, 1, p));
        c1.tlb_fill(leaf(MM, 1, p));
        c0.local_flush_mm(MM);
        assert!(c0.tlb_lookup(MM, 1).is_none());
        assert!(c1.tlb_lookup(MM, 1).is_some());
    }

    #[test]
    fn tlb_holders_finds_translations_to_a_frame_range() {
        let m = seq_machine(3, 64);
        let (c0, c1, c2) = (m.cpu(0), m.cpu(1), m.cpu(2));
        let p = page(&m);
        let q = page(&m);
        c1.tlb_fill(leaf(MM, 1, p));
        c2.tlb_fill(leaf(OTHER, 9, p));
        c2.tlb_fill(leaf(MM, 2, q));
        let h = c0.tlb_holders(p.pfn, 1);
        let cpus: Vec<usize> = h.iter().map(|(c, _)| *c).collect();
        assert_eq!(cpus, vec![1, 2]);
        assert!(h.iter().all(|(_, e)| e.page == p));
        assert_eq!(c0.tlb_holders(q.pfn, 1).len(), 1);
        // A huge translation whose first frame is below the range still holds frames in it.
        let huge = m.frames.alloc(&c0, 2, FrameKind::Data).unwrap();
        c0.tlb_fill(TlbEntry {
            shift: 2,
            ..leaf(MM, 0x40, huge)
        });
        assert_eq!(c0.tlb_holders(huge.pfn + 3, 1).len(), 1);
        assert_eq!(c0.tlb_holders(huge.pfn + 4, 1).len(), 0);
        c0.flush_tlb_mm(MM);
        c0.flush_tlb_mm(OTHER);
        assert!(c0.tlb_holders(p.pfn, 1).is_empty());
    }

    #[test]
    fn flush_waits_for_an_irq_off_target() {
        let (m, tx, rx) = probe_machine(2, 16);
        let p = page(&m);
        m.cpu(1).tlb_fill(leaf(MM, 5, p));
        let g = m.cpu(1).local_irq_disable();
        std::thread::scope(|s| {
            let m = &m;
            s.spawn(move || {
                m.cpu(0).flush_tlb_range(MM, 0, 16, false);
                tx.send(Note::Done(0, "flush")).unwrap();
            });
            expect_waiting(&rx, 0, Access::Flush);
            assert!(
                m.cpu(1).tlb_lookup(MM, 5).is_some(),
                "the IPI has not been taken yet"
            );
            drop(g);
            expect_done(&rx, 0, "flush");
        });
        assert!(m.cpu(1).tlb_lookup(MM, 5).is_none());
    }

    #[test]
    fn flush_without_remote_holders_does_not_wait() {
        // CPU1 is IRQ-off but neither runs the mm nor caches it: no IPI (sequential backend).
        let m = seq_machine(2, 16);
        let p = page(&m);
        m.cpu(0).tlb_fill(leaf(MM, 5, p));
        let g = m.cpu(1).local_irq_disable();
        m.cpu(0).flush_tlb_range(MM, 0, 16, true);
        assert!(m.cpu(0).tlb_lookup(MM, 5).is_none());
        drop(g);
        // A CPU that has the mm loaded is a target even with an empty TLB.
        m.cpu(1).switch_mm(MM);
        let g = m.cpu(0).local_irq_disable();
        m.cpu(0).flush_tlb_range(MM, 0, 16, false);
        drop(g);
        let v = m.violations();
        assert_eq!(kinds(&m), vec![ViolationKind::Assertion]);
        assert!(v[0].msg.contains("IRQs disabled"));
    }

    #[test]
    fn ipi_targets_a_cpu_in_mm_cpumask_with_an_empty_tlb() {
        // Review B2: a CPU running the mm (GUP-fast, IRQ-off, nothing in its TLB) is a target
        // of the IPI, so the flush waits for it.
        let (mut m, tx, rx) = probe_machine(2, 16);
        m.set_tlb_flush(TlbFlushMode::Ipi);
        m.cpu(1).switch_mm(MM);
        let g = m.cpu(1).local_irq_disable();
        std::thread::scope(|s| {
            let m = &m;
            s.spawn(move || {
                m.cpu(0).flush_tlb_range(MM, 0, 16, true);
                tx.send(Note::Done(0, "flush")).unwrap();
            });
            expect_waiting(&rx, 0, Access::Flush);
            drop(g);
            expect_done(&rx, 0, "flush");
        });
    }

    #[test]
    fn broadcast_does_not_wait_for_irq_off_and_flushes_every_cpu() {
        let mut m = seq_machine(3, 16);
        m.set_tlb_flush(TlbFlushMode::Broadcast);
        let (c0, c1, c2) = (m.cpu(0), m.cpu(1), m.cpu(2));
        let p = page(&m);
        c1.switch_mm(MM);
        c1.tlb_fill(leaf(MM, 5, p));
        c2.tlb_fill(leaf(MM, 6, p));
        // CPU1 is IRQ-off (GUP-fast): the sequential backend would panic on a wait.
        let g = c1.local_irq_disable();
        c0.flush_tlb_range(MM, 0, 16, false);
        assert!(c1.tlb_lookup(MM, 5).is_none() && c2.tlb_lookup(MM, 6).is_none());
        drop(g);
        // No IPI: flushing with IRQs disabled is allowed.
        let g = c0.local_irq_disable();
        c0.flush_tlb_range(MM, 0, 16, false);
        drop(g);
        assert!(kinds(&m).is_empty());
    }

    #[test]
    fn broadcast_waits_for_a_hardware_walk_in_flight() {
        let (mut m, tx, rx) = probe_machine(2, 16);
        m.set_tlb_flush(TlbFlushMode::Broadcast);
        let p = page(&m);
        let walk = m.cpu(1).hw_walk_begin();
        // The walk fills its translation after reading the old tables.
        m.cpu(1).tlb_fill(leaf(MM, 5, p));
        std::thread::scope(|s| {
            let m = &m;
            s.spawn(move || {
                m.cpu(0).flush_tlb_range(MM, 0, 16, false);
                tx.send(Note::Done(0, "flush")).unwrap();
            });
            expect_waiting(&rx, 0, Access::Flush);
            drop(walk);
            expect_done(&rx, 0, "flush");
        });
        assert!(
            m.cpu(1).tlb_lookup(MM, 5).is_none(),
            "the walk's fill is flushed too"
        );
    }

    #[test]
    fn walk_caches_at_every_level() {
        let m = seq_machine(2, 16);
        let (c0, c1) = (m.cpu(0), m.cpu(1));
        let pte_t = m.frames.alloc(&c0, 0, FrameKind::Table(1)).unwrap();
        let pmd_t = m.frames.alloc(&c0, 0, FrameKind::Table(2)).unwrap();
        // 9 bits per level: a PMD table spans 1 << 18 pages.
        let vpn = (3 << 18) + (5 << 9) + 7;
        c1.walk_cache_fill_all(&[
            WalkCacheEntry {
                mm: MM,
                key: vpn >> 18,
                table_shift: 18,
                table: pmd_t,
            },
            WalkCacheEntry {
                mm: MM,
                key: vpn >> 9,
                table_shift: 9,
                table: pte_t,
            },
        ]);
        assert_eq!(c1.walk_cache_lowest(MM, vpn, 9, 4), Some((pte_t, 1)));
        // Another PMD range under the same PMD table: only the PMD-table pointer applies.
        assert_eq!(c1.walk_cache_lowest(MM, vpn + 512, 9, 4), Some((pmd_t, 2)));
        // A table flush of one page drops every level whose span holds it, and only those.
        c0.flush_tlb_range(MM, vpn, vpn + 1, true);
        assert_eq!(c1.walk_cache_lowest(MM, vpn + 512, 9, 4), None);
        let other = vpn + (1 << 18);
        c1.walk_cache_fill(WalkCacheEntry {
            mm: MM,
            key: other >> 18,
            table_shift: 18,
            table: pmd_t,
        });
        c0.flush_tlb_range(MM, vpn, vpn + 1, true);
        assert_eq!(c1.walk_cache_lowest(MM, other, 9, 4), Some((pmd_t, 2)));
    }
}
