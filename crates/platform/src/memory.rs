//! Weak memory for page-table entries: per-CPU store buffers under `memory = tso | lkmm`, and
//! entry loads performed early under `lkmm`.
//!
//! Kernel references: Documentation/memory-barriers.txt and tools/memory-model (the LKMM,
//! linux-kernel.cat v5.16+), `pmd_install` and `__pte_alloc` in mm/memory.c (6.18: "ensure all
//! pte setup (eg. pte page lock and page clearing) are visible before the pte is made visible to
//! other CPUs"), `set_pte`/`__ptep_get_and_clear` in arch/arm64/include/asm/pgtable.h.
//!
//! The model is sequentially consistent by default. Under a weak memory model the stores a CPU
//! makes to page-table entries (and the allocator's zeroing of a new table, `clear_page`) go to
//! that CPU's store buffer; a flusher (the `sb` daemon thread of the scenario) commits them to
//! memory one at a time, each commit its own step, so the explorer places every commit anywhere
//! it may fall:
//! - `tso` (x86): commits in program order (FIFO); every store or RMW to other state, every
//!   locked operation and `smp_mb` first waits for the buffer to drain; loads bypass it.
//! - `lkmm` (arm64 level): a store may commit before earlier stores to other entries (W→W) and
//!   after later loads (W→R); stores to one entry stay in order; `smp_wmb` keeps the stores before
//!   it ahead of every store after it (a store to other state after an `smp_wmb` waits for the
//!   stores before it); releases (unlocks), `smp_mb`, grace periods, shootdowns and frees drain
//!   the buffer.
//!
//! Entry RMWs: under `tso` locked (drain, then performed in memory); under `lkmm` relaxed, as
//! arm64's page-table helpers (`xchg_relaxed`): the step reads memory and buffers the write,
//! marked `reserved`; no other write of the entry reaches memory before it (a commit or an RMW
//! performed in memory commits it first), so the RMW stays atomic while later loads of the CPU
//! run ahead of it.
//!
//! A CPU's loads of an entry see its own latest buffered store to it (store forwarding). By
//! default loads are performed in program order (the store side of the LKMM only). With
//! `memory.load_reorder` (`lkmm` only) an entry load may be performed early, as arm64 may
//! satisfy a load before earlier loads it does not depend on:
//! - every write of an entry that reaches memory during the threads' steps is kept, with the
//!   step that made it ([`HistWrite`]);
//! - each CPU has a load floor, a happens-before clock: a load reads any write of the entry
//!   that no later write in the floor (or of the CPU's own) overwrote, newest first, as a choice
//!   step when there is more than one (at most [`MAX_STALE`]);
//! - the floor grows at ordering points: `smp_rmb`, `smp_mb`, a fully ordered RMW and a grace
//!   period take the whole past of the CPU's latest step; an acquisition (a lock, a trylock, the
//!   start of an RCU or IRQ-off section) takes what it synchronized with (`Backend::sync_clock`:
//!   a release, a grace period, a shootdown), not the CPU's earlier loads; and a load takes the
//!   past of the write it read, so entry loads are ordered among themselves (as through an
//!   address dependency: a PTE read through the PMD that was read);
//! - a store the CPU drained past (a release, `smp_mb`, a store after `smp_wmb`) is in the past
//!   of the CPU's next event even when it reached memory before the drain
//!   ([`Cpu::wl_drained`]; the drain's wait step on it orders the two as well).
//!
//! The clocks come from the explorer, computed from the dependency relation its reduction uses,
//! so a load's choices are the same in every interleaving the reduction treats as equivalent
//! (`explore/tests/weak_memory.rs` checks DPOR against naive enumeration with weak loads). Loads
//! of other state (`struct page`, `Shared` cells, locks) stay in program order. See
//! docs/fidelity.md, "weak memory", for what this does not model. The allocator fills a new table's memory with garbage
//! ([`POISON`]) and buffers its zeroing: a CPU that reads an entry before that zeroing is
//! visible to it reads whatever the page held before, an `uninit-table` violation (the reason
//! for `pmd_install`'s `smp_wmb`).
//!
//! Soundness with the explorer: a buffered store is announced on the buffer object (the
//! flusher's enabling event); a commit is announced on the entry (or, for a table's zeroing, on
//! the table's frame, conflicting with every access to it); a CPU draining its buffer takes a
//! wait step on the object of each store its program says it must wait for, committed or not
//! (which are still pending it never reads unannounced), and the store's commit enables it.

use crate::event::{Access, Event, Obj};
use crate::frames::FrameRef;
use crate::machine::Cpu;
use crate::violation::ViolationKind;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;

/// The memory model the explorer runs the kernel under (`memory = sc | tso | lkmm`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MemoryModel {
    /// Sequential consistency: every store is visible to every CPU at once.
    #[default]
    Sc,
    /// x86-TSO: store buffers committed in order.
    Tso,
    /// The Linux-kernel memory model at arm64 level: store buffers committed out of order
    /// except across `smp_wmb`, releases and full barriers, and (with
    /// [`Machine::set_load_reorder`](crate::Machine::set_load_reorder)) entry loads performed
    /// early.
    Lkmm,
}

impl MemoryModel {
    pub fn name(self) -> &'static str {
        match self {
            MemoryModel::Sc => "sc",
            MemoryModel::Tso => "tso",
            MemoryModel::Lkmm => "lkmm",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "sc" => Some(MemoryModel::Sc),
            "tso" => Some(MemoryModel::Tso),
            "lkmm" => Some(MemoryModel::Lkmm),
            _ => None,
        }
    }

    pub(crate) fn encode(self) -> u8 {
        self as u8
    }

    pub(crate) fn decode(v: u8) -> Self {
        match v {
            1 => MemoryModel::Tso,
            2 => MemoryModel::Lkmm,
            _ => MemoryModel::Sc,
        }
    }
}

/// What a freshly allocated table's memory holds until its zeroing is visible: what the page
/// held before (no valid entry encodes to it).
pub const POISON: u64 = 0xdead_4ead_dead_4ead;

/// What a buffered store writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreLoc {
    /// Entry `i` of a table.
    Entry(u32),
    /// The allocator's zeroing of a whole table (`__GFP_ZERO`).
    Table,
    /// A data page's word: a kernel store bringing a new folio uptodate (a copy).
    Data,
    /// The allocator's zeroing of a data page (`__GFP_ZERO`, `folio_zero_user`): one per page
    /// of the folio, each announced on that page's data alone.
    DataZero,
}

/// One buffered store.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pending {
    seq: u64,
    /// The frame written: a table, a data page, or the head of the block a zeroing clears.
    frame: FrameRef,
    loc: StoreLoc,
    val: u64,
    /// The write of a relaxed RMW (`xchg_relaxed`): it read the entry's value in memory when it
    /// was buffered, so no other write to the entry may reach memory before it (atomicity).
    reserved: bool,
}

impl Pending {
    /// The object its commit is announced on.
    fn obj(&self) -> Obj {
        let pfn = self.frame.pfn;
        match self.loc {
            StoreLoc::Entry(idx) => Obj::Entry { pfn, idx },
            StoreLoc::Table => Obj::Frame { pfn, order: 0 },
            StoreLoc::Data | StoreLoc::DataZero => Obj::Data(pfn),
        }
    }

    fn access(&self) -> Access {
        match self.loc {
            StoreLoc::Entry(_) | StoreLoc::Data | StoreLoc::DataZero => Access::Write,
            StoreLoc::Table => Access::FrameClear,
        }
    }

    /// The data frames `[from, to)` it writes, if it writes data.
    fn data_range(&self) -> Option<(u32, u32)> {
        let pfn = self.frame.pfn;
        match self.loc {
            StoreLoc::Data | StoreLoc::DataZero => Some((pfn, pfn + 1)),
            _ => None,
        }
    }

    /// Whether the two stores touch a common word (coherence keeps them in order).
    fn overlaps(&self, o: &Pending) -> bool {
        match (self.data_range(), o.data_range()) {
            (Some((a, b)), Some((c, d))) => a < d && c < b,
            (None, None) => {
                self.frame.pfn == o.frame.pfn
                    && match (self.loc, o.loc) {
                        (StoreLoc::Entry(a), StoreLoc::Entry(b)) => a == b,
                        _ => true,
                    }
            }
            _ => false,
        }
    }

    /// Whether it writes entry `idx` of table `pfn`.
    fn covers(&self, pfn: u32, idx: u32) -> bool {
        self.frame.pfn == pfn
            && match self.loc {
                StoreLoc::Entry(i) => i == idx,
                StoreLoc::Table => true,
                _ => false,
            }
    }

    /// Whether it writes the data word of frame `pfn`.
    fn covers_data(&self, pfn: u32) -> bool {
        self.data_range().is_some_and(|(a, b)| a <= pfn && pfn < b)
    }

    /// The entry it writes (`Some(None)`: every entry of the table), if it writes a table.
    fn entries(&self) -> Option<Option<u32>> {
        match self.loc {
            StoreLoc::Entry(i) => Some(Some(i)),
            StoreLoc::Table => Some(None),
            _ => None,
        }
    }
}

/// A store waiting in a CPU's buffer, as a recorded trace shows it
/// ([`crate::Machine::store_buffers_raw`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferedStore {
    pub cpu: usize,
    /// Program order within the CPU's buffer.
    pub seq: u64,
    /// The frame stored to (a table, a data page, or the head of a zeroed block).
    pub pfn: u32,
    pub loc: StoreLoc,
    pub val: u64,
    /// The write of a relaxed RMW (`xchg_relaxed`).
    pub rmw: bool,
}

impl crate::Machine {
    /// Every CPU's buffered stores, read without an event: for recording a trace's steps only
    /// (the report names what a step buffered or committed), never from the model's paths.
    pub fn store_buffers_raw(&self) -> Vec<BufferedStore> {
        if self.memory_model() == MemoryModel::Sc {
            return Vec::new();
        }
        let mut v = Vec::new();
        for (cpu, st) in self.cpus.iter().enumerate() {
            v.extend(st.wb.lock().items.iter().map(|p| BufferedStore {
                cpu,
                seq: p.seq,
                pfn: p.frame.pfn,
                loc: p.loc,
                val: p.val,
                rmw: p.reserved,
            }));
        }
        v
    }
}

/// A CPU's store buffer.
#[derive(Clone, Debug, Default)]
pub(crate) struct StoreBuffer {
    /// Stores not yet committed, in program order.
    items: VecDeque<Pending>,
    /// For each `smp_wmb` still ordering something: the sequence number of the last store
    /// before it (ascending).
    marks: VecDeque<u64>,
    next_seq: u64,
    /// Weak loads: `next_seq` at the last `smp_wmb` (the stores before it have smaller ones).
    wmb_seq: u64,
    /// This CPU's stores that none of its drains has covered yet, committed or not: what its
    /// own program knows of its buffer (the flusher never touches it). A drain waits for
    /// those it needs from this list (see [`Cpu::wb_drain`]).
    undrained: Vec<Pending>,
}

impl StoreBuffer {
    fn push(&mut self, frame: FrameRef, loc: StoreLoc, val: u64, reserved: bool) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let p = Pending {
            seq,
            frame,
            loc,
            val,
            reserved,
        };
        self.items.push_back(p);
        self.undrained.push(p);
    }

    /// Take out the buffered RMW write to an entry of table `pfn` (entry `idx`, or any entry
    /// for `None`), if there is one. Always eligible: the RMW drained this CPU's earlier stores
    /// to the entry and those before its last `smp_wmb`.
    fn take_reserved(&mut self, pfn: u32, idx: Option<u32>) -> Option<Pending> {
        let seq = self
            .items
            .iter()
            .find(|p| {
                p.reserved
                    && p.frame.pfn == pfn
                    && match idx {
                        Some(i) => p.loc == StoreLoc::Entry(i),
                        None => matches!(p.loc, StoreLoc::Entry(_)),
                    }
            })?
            .seq;
        self.remove(seq)
    }

    fn wmb(&mut self) {
        self.wmb_seq = self.next_seq;
        if let Some(last) = self.items.back() {
            if self.marks.back() != Some(&last.seq) {
                self.marks.push_back(last.seq);
            }
        }
    }

    /// The value this CPU's own load of the entry sees from its buffer, if any.
    fn forward(&self, pfn: u32, idx: u32) -> Option<u64> {
        self.items
            .iter()
            .rev()
            .find(|p| p.covers(pfn, idx))
            .map(|p| if p.loc == StoreLoc::Table { 0 } else { p.val })
    }

    /// The value this CPU's own load of frame `pfn`'s data sees from its buffer, if any.
    fn forward_data(&self, pfn: u32) -> Option<u64> {
        self.items
            .iter()
            .rev()
            .find(|p| p.covers_data(pfn))
            .map(|p| if p.loc == StoreLoc::Data { p.val } else { 0 })
    }

    /// The stores the model lets commit next.
    fn eligible(&self, model: MemoryModel, out: &mut Vec<Pending>) {
        let Some(first) = self.items.front() else {
            return;
        };
        if model == MemoryModel::Tso {
            out.push(*first);
            return;
        }
        let bound = self.marks.iter().copied().find(|&m| m >= first.seq);
        for (i, p) in self.items.iter().enumerate() {
            if bound.is_some_and(|b| p.seq > b) {
                break;
            }
            // Data stores (into pages not yet published) become visible in program order among
            // themselves (docs/fidelity.md): the flusher's choice stays small.
            let data = p.data_range().is_some();
            if !self
                .items
                .iter()
                .take(i)
                .any(|q| q.overlaps(p) || data && q.data_range().is_some())
            {
                out.push(*p);
            }
        }
    }

    fn contains(&self, seq: u64) -> bool {
        self.items.iter().any(|p| p.seq == seq)
    }

    fn remove(&mut self, seq: u64) -> Option<Pending> {
        let i = self.items.iter().position(|p| p.seq == seq)?;
        let p = self.items.remove(i);
        let first = self.items.front().map_or(u64::MAX, |p| p.seq);
        while self.marks.front().is_some_and(|&m| m < first) {
            self.marks.pop_front();
        }
        p
    }
}

/// How much of its buffer a CPU must drain before an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    Nothing,
    /// The stores before the last `smp_wmb` (a store after it).
    Marked,
    /// The stores to this entry, and those before the last `smp_wmb` (an RMW of the entry).
    Entry(u32, u32),
    /// The stores to this frame's data, and those before the last `smp_wmb` (a store to the
    /// data that reaches memory at once: a user store, a GUP write).
    Data(u32),
    /// Everything (a full barrier or a release).
    All,
}

fn need(model: MemoryModel, wb_obj: Obj, ev: Event) -> Need {
    use Access::*;
    if ev.obj == wb_obj {
        return Need::Nothing;
    }
    match ev.access {
        Read | RcuLock | RcuUnlock | IrqDisable | IrqEnable | Fill | WalkFill | TlbScan
        | HistInv | HistResp => return Need::Nothing,
        _ => {}
    }
    if matches!(ev.obj, Obj::Choice { .. }) {
        return Need::Nothing;
    }
    if let (Obj::Entry { pfn, idx }, Rmw | RmwWeak) = (ev.obj, ev.access) {
        return match model {
            MemoryModel::Tso => Need::All,
            _ => Need::Entry(pfn, idx),
        };
    }
    if let (Obj::Data(pfn), MemoryModel::Lkmm) = (ev.obj, model) {
        return Need::Data(pfn);
    }
    match model {
        MemoryModel::Sc => Need::Nothing,
        // Every other store enters the same FIFO; locked operations drain it.
        MemoryModel::Tso => Need::All,
        MemoryModel::Lkmm => match ev.access {
            Release | ReleaseShared | Downgrade | GracePeriod | CallRcu | Flush | IpiSync
            | FrameFree | ObjFree => Need::All,
            _ => Need::Marked,
        },
    }
}

impl<'m> Cpu<'m> {
    /// True if this CPU's entry stores go through its store buffer.
    #[inline]
    pub(crate) fn buffered(&self) -> bool {
        self.m.memory_model() != MemoryModel::Sc && self.state().buffered.load(Ordering::Relaxed)
    }

    /// Before announcing `ev`: drain what the memory model orders before it.
    #[inline]
    pub(crate) fn wb_before(&self, ev: Event) {
        if !self.buffered() {
            return;
        }
        if self.state().wb.lock().undrained.is_empty() {
            return;
        }
        let model = self.m.memory_model();
        let done = match need(model, Obj::Var(self.m.wb_id()), ev) {
            Need::Nothing => return,
            Need::All => self.wb_drain(|_, _| true),
            Need::Marked => self.wb_drain(|b, p| p.seq < b.wmb_seq),
            Need::Entry(pfn, idx) => self.wb_drain(|b, p| p.covers(pfn, idx) || p.seq < b.wmb_seq),
            Need::Data(pfn) => self.wb_drain(|b, p| p.covers_data(pfn) || p.seq < b.wmb_seq),
        };
        self.wl_drained(done);
    }

    /// Wait until every store of this CPU satisfying `must` is committed: a wait step on each
    /// one's object, blocked until the flusher has committed it.
    ///
    /// Which stores to wait for is this CPU's own knowledge, its stores since the drains that
    /// covered its earlier ones (`StoreBuffer::undrained`), never how far the flusher got: a
    /// store already committed still gets its wait step, ready at once. Deciding by what was
    /// still pending (read in the tail of the previous step, unannounced) made the steps
    /// depend on an order the explorer does not see: with the commit first, no wait step, and
    /// the CPU's later events not ordered after the commit (whose order a weak load's floor
    /// takes). Random scheduling reached such executions where DPOR ran only the other kind
    /// (`scenario/tests/classes.rs`). The wait step is a read of the store's object, which the
    /// commit writes: either way the CPU goes on after the commit.
    /// Returns the stores it waited for.
    fn wb_drain(&self, must: impl Fn(&StoreBuffer, &Pending) -> bool) -> Vec<Pending> {
        let waits: Vec<Pending> = {
            let mut b = self.state().wb.lock();
            let all = std::mem::take(&mut b.undrained);
            let (waits, keep): (Vec<Pending>, Vec<Pending>) =
                all.into_iter().partition(|p| must(&b, p));
            b.undrained = keep;
            waits
        };
        let st = self.state();
        for p in &waits {
            self.m
                .backend
                .block(self.id, Event::new(p.obj(), Access::Read), &|| {
                    !st.wb.lock().contains(p.seq)
                });
            if self.m.backend.stopping() {
                break; // the execution is being torn down: nothing will commit any more
            }
        }
        waits
    }

    /// A CPU's own store to an entry: buffered under a weak model. False if not buffered (the
    /// caller stores to memory).
    pub(crate) fn wb_store(&self, table: FrameRef, idx: u32, val: u64) -> bool {
        if !self.buffered() {
            return false;
        }
        self.m
            .backend
            .visible(self.id, Event::new(Obj::Var(self.m.wb_id()), Access::Write));
        self.state()
            .wb
            .lock()
            .push(table, StoreLoc::Entry(idx), val, false);
        true
    }

    /// True if this CPU's stores into pages it is bringing uptodate are buffered: under `lkmm`
    /// with `memory.data_buffered` only. Under `tso` they need not be: TSO keeps them ahead of
    /// every later store of the CPU, the only way the page gets published, and no other CPU
    /// reads the page before that. Off by default under `lkmm`: every buffered store is one
    /// more commit the flusher orders against all the others (`mthp-collapse-wmb#arm64` grows
    /// from 3,688 executions to 331,622), and only a question about the barriers that order
    /// page contents before a mapping needs them.
    #[inline]
    pub(crate) fn wb_data_buffered(&self) -> bool {
        self.m.data_buffered() && self.m.memory_model() == MemoryModel::Lkmm && self.buffered()
    }

    /// True if this CPU's entry RMWs are relaxed (`memory = lkmm`): their writes are buffered
    /// like stores, after the RMW read the entry in memory ([`Cpu::entry_xchg`]).
    #[inline]
    pub(crate) fn wb_rmw_relaxed(&self) -> bool {
        self.m.memory_model() == MemoryModel::Lkmm && self.buffered()
    }

    /// Buffer the write of a relaxed RMW of entry `idx` of `table`, which read the entry's
    /// value in memory in this step.
    pub(crate) fn wb_push_rmw(&self, table: FrameRef, idx: u32, val: u64) {
        self.state()
            .wb
            .lock()
            .push(table, StoreLoc::Entry(idx), val, true);
    }

    /// Before a write of entry `idx` of table `pfn` (every entry for `None`) reaches memory in
    /// this step (an RMW performed in memory, or the flusher's commit of a buffered store):
    /// commit another CPU's buffered RMW write to it first. That RMW read the value in memory,
    /// so every write that reaches memory after its read is ordered after its write.
    pub(crate) fn wb_commit_reserved(&self, pfn: u32, idx: Option<u32>, except: usize) {
        if self.m.memory_model() != MemoryModel::Lkmm {
            return;
        }
        for (c, st) in self.m.cpus.iter().enumerate() {
            if c == except {
                continue;
            }
            loop {
                let Some(p) = st.wb.lock().take_reserved(pfn, idx) else {
                    break;
                };
                self.wb_write_memory(&p, c);
            }
        }
    }

    /// A buffered store reaching memory.
    fn wb_write_memory(&self, p: &Pending, origin: usize) {
        let m = self.m;
        if !m
            .frames
            .check(self, p.frame, "a buffered store reaching memory")
        {
            return;
        }
        let pfn = p.frame.pfn;
        match p.loc {
            StoreLoc::Entry(idx) => {
                let old = m.frames.words_of(pfn)[idx as usize].swap(p.val, Ordering::SeqCst);
                self.wl_record(pfn, idx, old, p.val, origin, p.seq);
            }
            StoreLoc::Table => {
                for (idx, w) in m.frames.words_of(pfn).iter().enumerate() {
                    let old = w.swap(0, Ordering::SeqCst);
                    self.wl_record(pfn, idx as u32, old, 0, origin, p.seq);
                }
            }
            StoreLoc::Data | StoreLoc::DataZero => {
                m.frames.frame(pfn).data.store(p.val, Ordering::SeqCst)
            }
        }
    }

    /// The allocator's zeroing of a new table: buffered under a weak model, with the table's
    /// memory left holding garbage until it commits. False if not buffered.
    pub(crate) fn wb_clear_table(&self, table: FrameRef) -> bool {
        if !self.buffered() {
            return false;
        }
        for w in self.m.frames.words_of(table.pfn) {
            w.store(POISON, Ordering::SeqCst);
        }
        self.wl_new_table(table.pfn);
        self.m
            .backend
            .visible(self.id, Event::new(Obj::Var(self.m.wb_id()), Access::Write));
        self.state()
            .wb
            .lock()
            .push(table, StoreLoc::Table, 0, false);
        true
    }

    /// The allocator's zeroing of a new data block (`__GFP_ZERO`, `folio_zero_user`): buffered
    /// under a weak model, with the pages' memory left holding garbage until it commits.
    pub(crate) fn wb_clear_data(&self, head: FrameRef, order: u32) -> bool {
        if !self.wb_data_buffered() {
            return false;
        }
        for q in head.pfn..head.pfn + (1 << order) {
            self.m.frames.frame(q).data.store(POISON, Ordering::SeqCst);
        }
        self.m
            .backend
            .visible(self.id, Event::new(Obj::Var(self.m.wb_id()), Access::Write));
        let mut b = self.state().wb.lock();
        for q in head.pfn..head.pfn + (1 << order) {
            b.push(self.m.frames.current(q), StoreLoc::DataZero, 0, false);
        }
        true
    }

    /// A kernel store to the data of page `p` that it is bringing uptodate: buffered under a
    /// weak model. False if not buffered (the caller stores to memory).
    pub(crate) fn wb_store_data(&self, p: FrameRef, val: u64) -> bool {
        if !self.wb_data_buffered() {
            return false;
        }
        self.m
            .backend
            .visible(self.id, Event::new(Obj::Var(self.m.wb_id()), Access::Write));
        self.state().wb.lock().push(p, StoreLoc::Data, val, false);
        true
    }

    /// This CPU's own buffered value of frame `pfn`'s data, if it has one.
    #[inline]
    pub(crate) fn wb_forward_data(&self, pfn: u32) -> Option<u64> {
        if !self.buffered() {
            return None;
        }
        self.state().wb.lock().forward_data(pfn)
    }

    /// A load of `v` from page `p`'s data in memory: garbage means the page's zeroing or copy is
    /// not yet visible here.
    #[inline]
    pub(crate) fn wb_check_data_loaded(&self, p: FrameRef, v: u64) -> u64 {
        if v != POISON || self.m.memory_model() == MemoryModel::Sc {
            return v;
        }
        self.report(
            ViolationKind::UninitData,
            format!(
                "data of pfn {} read before the allocating CPU's zeroing of it (__GFP_ZERO, \
                 folio_zero_user) was visible to this CPU: it reads what the page held before",
                p.pfn
            ),
        );
        0
    }

    /// This CPU's own buffered value of an entry, if it has one.
    #[inline]
    pub(crate) fn wb_forward(&self, pfn: u32, idx: u32) -> Option<u64> {
        if !self.buffered() {
            return None;
        }
        self.state().wb.lock().forward(pfn, idx)
    }

    /// A load of `v` from memory: garbage means the table's zeroing is not yet visible here.
    #[inline]
    pub(crate) fn wb_check_loaded(&self, t: FrameRef, idx: usize, v: u64) -> u64 {
        if v != POISON || self.m.memory_model() == MemoryModel::Sc {
            return v;
        }
        self.report(
            ViolationKind::UninitTable,
            format!(
                "entry {idx} of table pfn {} read before the allocating CPU's zeroing of it \
                 (clear_page) was visible to this CPU: it reads what the page held before",
                t.pfn
            ),
        );
        0
    }

    /// `smp_wmb()` under the memory model.
    pub(crate) fn wb_wmb(&self) {
        if self.m.memory_model() == MemoryModel::Lkmm && self.buffered() {
            self.state().wb.lock().wmb();
        }
    }

    /// `smp_mb()` under the memory model: drain the buffer.
    pub(crate) fn wb_mb(&self) {
        if self.buffered() {
            let done = self.wb_drain(|_, _| true);
            self.wl_drained(done);
        }
    }

    /// The `smp_mb()` the LKMM puts before a value-returning atomic (Documentation/atomic_t.txt):
    /// under `lkmm` drain the buffer; under `tso` the RMW's own announcement drains it.
    pub(crate) fn wb_fully_ordered_rmw(&self) {
        if self.m.memory_model() == MemoryModel::Lkmm {
            self.wb_mb();
        }
    }

    /// Drain this CPU's buffer: a thread's last step (its stores reach memory before the
    /// execution's final checks).
    pub fn store_buffer_drain(&self) {
        self.wb_mb();
    }

    /// The body of the flusher thread (`sb`), run on its own CPU: commit buffered stores of every
    /// CPU, one per step, the scheduler choosing which of those the model allows, until the
    /// execution stops.
    pub fn store_buffer_flusher(&self) {
        let m = self.m;
        let model = m.memory_model();
        let wb = Obj::Var(m.wb_id());
        let any = || m.cpus.iter().any(|c| !c.wb.lock().items.is_empty());
        let mut cands: Vec<(usize, Pending)> = Vec::new();
        let mut tmp = Vec::new();
        loop {
            m.backend.block(self.id, Event::new(wb, Access::Read), &any);
            if m.backend.stopping() {
                return;
            }
            cands.clear();
            for (c, st) in m.cpus.iter().enumerate() {
                tmp.clear();
                st.wb.lock().eligible(model, &mut tmp);
                cands.extend(tmp.iter().map(|p| (c, *p)));
            }
            let n = cands.len().min(32);
            let i = if n > 1 {
                self.choose(n as u8) as usize
            } else {
                0
            };
            let (c, p) = cands[i];
            m.backend.visible(self.id, Event::new(p.obj(), p.access()));
            let Some(p) = m.cpus[c].wb.lock().remove(p.seq) else {
                // A buffered RMW write that an RMW of its entry in memory committed first (in a
                // step after this round's choice): nothing left to do.
                continue;
            };
            if let (false, Some(idx)) = (p.reserved, p.entries()) {
                self.wb_commit_reserved(p.frame.pfn, idx, c);
            }
            self.wb_write_memory(&p, c);
        }
    }
}

/// Weak loads: a write of an entry in memory, and the step that made it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HistWrite {
    val: u64,
    /// The thread whose step wrote memory and that step's number among its events
    /// ([`NO_THREAD`]: the value the entry held when the threads started, or a new table's
    /// garbage, in the past of every load).
    thread: u8,
    k: u32,
    /// The CPU whose store it is (the flusher commits other CPUs' stores), and the store's
    /// number in that CPU's buffer.
    origin: u8,
    seq: u64,
    /// The number of the origin CPU's first event after a drain that covered the store (0:
    /// none yet): a load whose floor has that event reads nothing older.
    drained: u32,
}

const NO_THREAD: u8 = u8::MAX;

/// The most values one load chooses among (the newest ones; a choice step's outcome limit).
const MAX_STALE: usize = 8;

impl<'m> Cpu<'m> {
    /// This CPU's entry loads may be performed early (`memory.load_reorder` under `lkmm`). A
    /// path whose ordering weak loads need spelled out step by step (a wait that may or may not
    /// sleep) takes that form only then, and keeps its single step otherwise.
    #[inline]
    pub(crate) fn wl_on(&self) -> bool {
        self.m.load_reorder() && self.buffered()
    }

    /// The history slot of entry `idx` of table `pfn`.
    fn wl_slot(&self, pfn: u32, idx: u32) -> usize {
        pfn as usize * self.m.frames.entries_per_table() + idx as usize
    }

    /// Memory's word of entry `idx` of `pfn` went from `old` to `new` in this step, a store of
    /// CPU `origin`: keep it in the entry's history (threads' steps only; set-up and final
    /// checks run SC).
    pub(crate) fn wl_record(
        &self,
        pfn: u32,
        idx: u32,
        old: u64,
        new: u64,
        origin: usize,
        seq: u64,
    ) {
        if !self.m.load_reorder() {
            return;
        }
        let k = self.m.backend.events_of(self.id);
        if k == 0 {
            return;
        }
        let slot = self.wl_slot(pfn, idx);
        let mut h = self.m.entry_hist.lock();
        let v = &mut h[slot];
        if v.is_empty() {
            v.push(HistWrite {
                val: old,
                thread: NO_THREAD,
                k: 0,
                origin: NO_THREAD,
                seq: 0,
                drained: 0,
            });
        }
        v.push(HistWrite {
            val: new,
            thread: self.id as u8,
            k,
            origin: origin as u8,
            seq,
            drained: 0,
        });
    }

    /// This CPU's drain is over, and `done` are the stores it waited for, all committed: each is
    /// in the past of the CPU's next event (its number is `drained` in the store's history
    /// records).
    fn wl_drained(&self, done: Vec<Pending>) {
        if done.is_empty() || !self.m.load_reorder() {
            return;
        }
        let d = self.m.backend.events_of(self.id) + 1;
        let me = self.id as u8;
        let n = self.m.frames.entries_per_table();
        let mut h = self.m.entry_hist.lock();
        for p in done {
            let slots = match p.loc {
                StoreLoc::Entry(idx) => idx as usize..idx as usize + 1,
                StoreLoc::Table => 0..n,
                _ => continue,
            };
            let base = self.wl_slot(p.frame.pfn, 0);
            for slot in slots {
                if let Some(w) = h[base + slot]
                    .iter_mut()
                    .rev()
                    .find(|w| w.origin == me && w.seq == p.seq && w.thread != NO_THREAD)
                {
                    w.drained = d;
                }
            }
        }
    }

    /// A table frame starts a new life (allocated, or filled with garbage for its buffered
    /// zeroing): its entries' histories start again from what memory holds now.
    pub(crate) fn wl_new_table(&self, pfn: u32) {
        if !self.m.load_reorder() {
            return;
        }
        let from = self.wl_slot(pfn, 0);
        let n = self.m.frames.entries_per_table();
        for v in &mut self.m.entry_hist.lock()[from..from + n] {
            v.clear();
        }
    }

    /// An ordering point for this CPU's later loads (`smp_rmb`, `smp_mb`, a fully ordered RMW,
    /// a grace period): they read nothing older than what is in the happens-before past of
    /// this CPU's latest step.
    pub(crate) fn wl_order(&self) {
        if !self.wl_on() {
            return;
        }
        let b = &self.m.backend;
        let k = b.events_of(self.id);
        if let Some(c) = (k > 0).then(|| b.clock(self.id, k)).flatten() {
            join(&mut self.state().load_floor.lock(), &c);
        }
    }

    /// After announcing an event of `access`: a grace period (a full barrier) is an ordering
    /// point; an acquisition (a lock, or the start of an RCU or IRQ-off section, after which
    /// a grace period or an IPI that waited for none of it is over) orders later loads after
    /// what it synchronized with, not after this CPU's earlier loads.
    #[inline]
    pub(crate) fn wl_after(&self, access: Access) {
        use Access::*;
        match access {
            GracePeriod | RcuCallback => self.wl_order(),
            Acquire | AcquireShared | TryAcquire | RcuLock | IrqDisable if self.wl_on() => {
                let b = &self.m.backend;
                if let Some(c) = b.sync_clock(self.id, b.events_of(self.id)) {
                    join(&mut self.state().load_floor.lock(), &c);
                }
            }
            _ => {}
        }
    }

    /// This CPU's later loads read nothing older than write `w`'s happens-before past (an
    /// address dependency on the value read, see the module doc).
    fn wl_observe(&self, w: HistWrite) {
        if w.thread == NO_THREAD {
            return;
        }
        if let Some(c) = self.m.backend.clock(w.thread as usize, w.k) {
            join(&mut self.state().load_floor.lock(), &c);
        }
    }

    /// An RMW read the entry's latest write.
    pub(crate) fn wl_observe_latest(&self, pfn: u32, idx: u32) {
        if !self.wl_on() {
            return;
        }
        let last = self.m.entry_hist.lock()[self.wl_slot(pfn, idx)]
            .last()
            .copied();
        if let Some(w) = last {
            self.wl_observe(w);
        }
    }

    /// A load of entry `idx` of `pfn` that found `mem` in memory and nothing of this CPU's own
    /// in its buffer. With weak loads it reads any write of the entry that no later write in
    /// this CPU's load floor (or of its own) overwrote, a choice step among them, newest first.
    pub(crate) fn wl_load(&self, pfn: u32, idx: u32, mem: u64) -> u64 {
        if !self.wl_on() {
            return mem;
        }
        let cands: Vec<HistWrite> = {
            let h = self.m.entry_hist.lock();
            let v = &h[self.wl_slot(pfn, idx)];
            let floor = *self.state().load_floor.lock();
            let me = self.id as u8;
            let seen = |w: &HistWrite| {
                w.thread == NO_THREAD
                    || w.thread == me
                    || w.origin == me
                    || floor[w.thread as usize] >= w.k
                    || (w.drained != 0 && floor[w.origin as usize] >= w.drained)
            };
            let first = v.iter().rposition(seen).unwrap_or(0);
            match &v[first.max(v.len().saturating_sub(MAX_STALE))..] {
                [] => return mem,
                &[only] => {
                    // Memory's word: no choice, and no copy.
                    drop(h);
                    debug_assert_eq!(only.val, mem, "an entry's history ends with memory's word");
                    self.wl_observe(only);
                    return mem;
                }
                more => more.to_vec(),
            }
        };
        debug_assert_eq!(
            cands[cands.len() - 1].val,
            mem,
            "an entry's history ends with memory's word"
        );
        let w = cands[cands.len() - 1 - self.choose(cands.len() as u8) as usize];
        self.wl_observe(w);
        w.val
    }
}

fn join(a: &mut crate::backend::Clock, b: &crate::backend::Clock) {
    for (x, y) in a.iter_mut().zip(b) {
        *x = (*x).max(*y);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(pfn: u32) -> FrameRef {
        FrameRef { pfn, gen: 1 }
    }

    fn seqs(b: &StoreBuffer, model: MemoryModel) -> Vec<u64> {
        let mut v = Vec::new();
        b.eligible(model, &mut v);
        v.iter().map(|p| p.seq).collect()
    }

    #[test]
    fn tso_commits_in_order_lkmm_out_of_order_but_not_across_wmb_or_one_entry() {
        let mut b = StoreBuffer::default();
        b.push(t(5), StoreLoc::Entry(0), 1, false); // 0
        b.push(t(5), StoreLoc::Entry(1), 2, false); // 1
        b.push(t(5), StoreLoc::Entry(0), 3, false); // 2: same entry as 0
        b.wmb();
        b.push(t(6), StoreLoc::Entry(0), 4, false); // 3: after the wmb
        assert_eq!(seqs(&b, MemoryModel::Tso), vec![0]);
        assert_eq!(seqs(&b, MemoryModel::Lkmm), vec![0, 1]);
        b.remove(0);
        assert_eq!(seqs(&b, MemoryModel::Lkmm), vec![1, 2]);
        b.remove(1);
        b.remove(2);
        assert_eq!(seqs(&b, MemoryModel::Lkmm), vec![3]);
        assert!(b.marks.is_empty());
    }

    #[test]
    fn a_table_zeroing_orders_against_every_entry_of_the_table() {
        let mut b = StoreBuffer::default();
        b.push(t(5), StoreLoc::Table, 0, false);
        b.push(t(5), StoreLoc::Entry(3), 7, false);
        b.push(t(6), StoreLoc::Entry(0), 8, false);
        assert_eq!(seqs(&b, MemoryModel::Lkmm), vec![0, 2]);
        assert_eq!(b.forward(5, 3), Some(7));
        assert_eq!(b.forward(5, 2), Some(0));
        assert_eq!(b.forward(7, 0), None);
    }
}
