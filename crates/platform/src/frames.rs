//! The frames arena: physical memory as an array of `struct page`s (`mm/page_alloc.c` as far as
//! lifetimes go). A frame is free, a page table of some level, or part of a data folio. Every frame
//! has a generation, bumped when it is freed; a [`FrameRef`] remembers the generation it was derived
//! at, so any access through a stale reference (to a freed or reused table, its PTL, or a data page)
//! is caught at once, KASAN-like, and reported with the CPU and kernel path that freed it.
//!
//! Allocation is next-fit over a bitmap with natural alignment for higher orders (buddy-like), and
//! reuses freed frames, so stale references meet reused frames as they would in the kernel.
//! pfn 0 is reserved: a table derived from a none entry points there (R5 in the rules).

use crate::event::{Access, Obj};
use crate::machine::Cpu;
use crate::spinlock::SpinLock;
use crate::violation::{Limit, ViolationKind};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

/// A physical frame as seen by whoever derived it: pfn plus the generation at derivation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FrameRef {
    pub pfn: u32,
    pub gen: u32,
}

/// What a frame currently is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameKind {
    Free,
    /// A page table; the level is 1 for PTE tables, 2 for PMD tables, and so on.
    Table(u8),
    /// A page of a data folio.
    Data,
    /// Never allocated (pfn 0).
    Reserved,
}

impl std::fmt::Display for FrameKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameKind::Free => f.write_str("free"),
            FrameKind::Table(1) => f.write_str("a PTE table"),
            FrameKind::Table(2) => f.write_str("a PMD table"),
            FrameKind::Table(l) => write!(f, "a level-{l} table"),
            FrameKind::Data => f.write_str("a data page"),
            FrameKind::Reserved => f.write_str("reserved"),
        }
    }
}

impl FrameKind {
    fn encode(self) -> u64 {
        match self {
            FrameKind::Free => 0,
            FrameKind::Table(l) => 1 | (l as u64) << 8,
            FrameKind::Data => 2,
            FrameKind::Reserved => 3,
        }
    }

    fn decode(v: u64) -> Self {
        match v & 0xff {
            0 => FrameKind::Free,
            1 => FrameKind::Table((v >> 8) as u8),
            2 => FrameKind::Data,
            _ => FrameKind::Reserved,
        }
    }
}

/// The `struct page` / `struct folio` words the model uses. Meaningful on the head frame of a
/// folio unless noted; the kernel crate gives them meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageField {
    Refcount,
    /// Total mapcount of the folio (head) or of this page (tail: per-page mapcount).
    Mapcount,
    Pincount,
    /// PMD mappings of the whole folio (`_entire_mapcount`), head only.
    EntireMapcount,
    /// Folio flags (LRU, anon, dirty, uptodate, isolated ...), defined by the kernel crate. The
    /// lock bit is not here: the folio lock is its own object ([`Obj::page_lock_id`]).
    Flags,
    Order,
    /// pfn of the folio's head frame (`compound_head`).
    Head,
    /// `folio->mapping`: an anon_vma id or a file id, tagged by the kernel crate.
    Mapping,
    /// `folio->index`: page offset in the file or the anon linear index.
    Index,
    /// `PageAnonExclusive` (`PG_anon_exclusive`): a per-page bit, meaningful on every page of an
    /// anon folio (on the head only while the folio is PMD-mapped). 0 or 1.
    AnonExclusive,
    /// `folio->private` / `folio->swap`: the swap slot of a swap-cache folio (head only).
    Private,
}

const NR_PAGE_FIELDS: usize = 11;

impl PageField {
    /// The field's group in [`Obj::Page`] (`Head` and `Order` are the frame's state).
    pub fn part(self) -> u8 {
        match self {
            PageField::Refcount | PageField::Pincount => Obj::PAGE_REF,
            PageField::Mapcount | PageField::EntireMapcount => Obj::PAGE_MAP,
            PageField::Flags | PageField::AnonExclusive => Obj::PAGE_FLAGS,
            PageField::Mapping | PageField::Index | PageField::Private => Obj::PAGE_META,
            PageField::Order | PageField::Head => 0,
        }
    }
}

/// The fields of one `struct page`. Reached only through [`PageRef`] (announced accesses of the
/// running CPU) or [`PagePeek`] (quiescent reads).
#[derive(Debug, Default)]
pub struct PageMeta {
    words: [AtomicU64; NR_PAGE_FIELDS],
    /// `PG_locked`: the folio lock (head only).
    locked: AtomicBool,
    /// Tables deposited under this PMD table (`pmd_huge_pte`), as pfns; under the PMD lock.
    deposit: Mutex<Vec<u32>>,
}

impl PageMeta {
    fn word(&self, f: PageField) -> &AtomicU64 {
        &self.words[f as usize]
    }
}

/// The `struct page` of `pfn` as the running CPU accesses it: every access touches the field's
/// group of [`Obj::Page`], which the step must have announced (strict mode checks it). A field
/// outside the groups this reference was announced with is reported as an unannounced access in
/// every mode: the dependency relation would not order it.
#[derive(Clone, Copy)]
pub struct PageRef<'m> {
    cpu: Cpu<'m>,
    pfn: u32,
    parts: u8,
    meta: &'m PageMeta,
}

impl PageRef<'_> {
    pub fn pfn(&self) -> u32 {
        self.pfn
    }

    #[track_caller]
    fn w(&self, f: PageField) -> &AtomicU64 {
        match f {
            // Set when the frame is allocated and constant until it is freed: part of the
            // frame's state, ordered by frees and allocations only.
            PageField::Head | PageField::Order => self.cpu.touch(Obj::Frame {
                pfn: self.pfn,
                order: 0,
            }),
            _ => {
                let part = f.part();
                if part & !self.parts != 0 {
                    self.cpu.report(
                        ViolationKind::Unannounced,
                        format!(
                            "struct page of pfn {}: {f:?} outside the announced fields {:#x} ({})",
                            self.pfn,
                            self.parts,
                            std::panic::Location::caller()
                        ),
                    );
                }
                self.cpu.touch(Obj::Page {
                    pfn: self.pfn,
                    parts: part,
                })
            }
        }
        self.meta.word(f)
    }

    /// Read a field.
    #[track_caller]
    pub fn get(&self, f: PageField) -> u64 {
        self.w(f).load(Ordering::SeqCst)
    }

    /// Read a counter field.
    #[track_caller]
    pub fn count(&self, f: PageField) -> i64 {
        self.get(f) as i64
    }

    #[track_caller]
    pub fn set(&self, f: PageField, v: u64) {
        self.w(f).store(v, Ordering::SeqCst)
    }

    /// `atomic_add`: returns the old value.
    #[track_caller]
    pub fn add(&self, f: PageField, n: i64) -> i64 {
        self.w(f).fetch_add(n as u64, Ordering::SeqCst) as i64
    }

    /// Set bits; returns the old value.
    #[track_caller]
    pub fn or(&self, f: PageField, bits: u64) -> u64 {
        self.w(f).fetch_or(bits, Ordering::SeqCst)
    }

    /// Clear bits; returns the old value.
    #[track_caller]
    pub fn and_not(&self, f: PageField, bits: u64) -> u64 {
        self.w(f).fetch_and(!bits, Ordering::SeqCst)
    }

    /// `atomic_cmpxchg` of a counter.
    #[track_caller]
    pub fn cmpxchg(&self, f: PageField, old: i64, new: i64) -> Result<i64, i64> {
        self.w(f)
            .compare_exchange(old as u64, new as u64, Ordering::SeqCst, Ordering::SeqCst)
            .map(|v| v as i64)
            .map_err(|v| v as i64)
    }

    /// `pgtable_trans_huge_deposit`.
    #[track_caller]
    pub fn deposit_push(&self, table_pfn: u32) {
        self.cpu.touch(Obj::Page {
            pfn: self.pfn,
            parts: Obj::PAGE_META,
        });
        self.meta.deposit.lock().push(table_pfn);
    }

    /// `pgtable_trans_huge_withdraw`.
    #[track_caller]
    pub fn deposit_pop(&self) -> Option<u32> {
        self.cpu.touch(Obj::Page {
            pfn: self.pfn,
            parts: Obj::PAGE_META,
        });
        self.meta.deposit.lock().pop()
    }
}

/// Quiescent, unannounced reads of a `struct page` (invariant checks, reports, set-up): strict
/// mode reports one made from inside a thread's step.
#[derive(Clone, Copy)]
pub struct PagePeek<'m> {
    meta: &'m PageMeta,
}

impl PagePeek<'_> {
    pub fn get(&self, f: PageField) -> u64 {
        self.meta.word(f).load(Ordering::SeqCst)
    }

    pub fn count(&self, f: PageField) -> i64 {
        self.get(f) as i64
    }

    pub fn locked(&self) -> bool {
        self.meta.locked.load(Ordering::SeqCst)
    }

    pub fn deposit(&self) -> Vec<u32> {
        self.meta.deposit.lock().clone()
    }
}

/// One physical frame.
pub struct Frame {
    state: AtomicU64,
    words: OnceLock<Box<[AtomicU64]>>,
    /// Contents of a data page: one word per page is enough to detect lost writes.
    pub(crate) data: AtomicU64,
    /// The split PTL (PTE tables) or split PMD lock (PMD tables) living in this page.
    pub ptl: SpinLock,
    page: PageMeta,
    freed_by: Mutex<FreedBy>,
}

/// Who freed a frame last, for use-after-free reports: the CPU and its kernel functions. The
/// stack's allocation is kept across frees and restores (no allocation in a step that frees).
#[derive(Clone, Debug, Default)]
struct FreedBy {
    cpu: Option<usize>,
    stack: Vec<&'static str>,
}

impl FreedBy {
    /// " in f > g" after the CPU, if the frame was freed.
    fn describe(&self, lead: &str) -> String {
        match self.cpu {
            Some(c) => format!("{lead}CPU{c} in {}", self.stack.join(" > ")),
            None => String::new(),
        }
    }
}

impl Frame {
    /// Frame `pfn` of a new arena (pfn 0 reserved).
    fn unused(pfn: usize) -> Frame {
        Frame {
            state: AtomicU64::new(if pfn == 0 {
                FrameKind::Reserved.encode()
            } else {
                0
            }),
            words: OnceLock::new(),
            data: AtomicU64::new(0),
            ptl: SpinLock::new(Obj::ptl_id(pfn as u32)),
            page: PageMeta::default(),
            freed_by: Mutex::new(FreedBy::default()),
        }
    }

    fn gen_kind(&self) -> (u32, FrameKind) {
        let s = self.state.load(Ordering::SeqCst);
        ((s >> 16) as u32, FrameKind::decode(s))
    }
}

#[derive(Clone)]
struct AllocState {
    used: Vec<u64>,
    cursor: usize,
    nr_free: usize,
    /// Frames taken out of the pool by [`Frames::keep_lowest_free`]: used, never freed, no
    /// allocation's.
    reserved: usize,
    /// Set by [`Frames::keep_lowest_free`]: every scan starts at pfn 0 (lowest fit), not at the
    /// cursor (next fit).
    lowest_first: bool,
}

impl AllocState {
    /// The first block boundary at or after the cursor, where a scan for `n` frames starts.
    fn start(&self, n: usize, len: usize) -> usize {
        if self.lowest_first {
            return 0;
        }
        let start = self.cursor.div_ceil(n) * n;
        if start >= len {
            0
        } else {
            start
        }
    }

    /// Next fit: the first free block of `n` frames from the cursor on, wrapping once; and
    /// whether the scan wrapped to reach it.
    fn find(&self, n: usize, len: usize) -> Option<(usize, bool)> {
        let mut p = self.start(n, len);
        let mut wrapped = false;
        for _ in 0..=len / n + 1 {
            if p + n <= len && (p..p + n).all(|q| !self.is_used(q)) {
                return Some((p, wrapped));
            }
            p += n;
            if p + n > len {
                p = 0;
                wrapped = true;
            }
        }
        None
    }

    fn is_used(&self, pfn: usize) -> bool {
        self.used[pfn / 64] >> (pfn % 64) & 1 != 0
    }

    fn set(&mut self, pfn: usize, used: bool) {
        if used {
            self.used[pfn / 64] |= 1 << (pfn % 64);
        } else {
            self.used[pfn / 64] &= !(1 << (pfn % 64));
        }
    }
}

/// The arena.
pub struct Frames {
    frames: Box<[Frame]>,
    entries: usize,
    alloc: Mutex<AllocState>,
}

impl Frames {
    pub fn new(nr: usize, entries_per_table: usize) -> Self {
        let nr = nr.max(2);
        let frames: Box<[Frame]> = (0..nr).map(Frame::unused).collect();
        let mut st = AllocState {
            used: vec![0; nr.div_ceil(64)],
            cursor: 1,
            nr_free: nr - 1,
            reserved: 0,
            lowest_first: false,
        };
        st.set(0, true);
        for pfn in nr..st.used.len() * 64 {
            st.set(pfn, true);
        }
        Frames {
            frames,
            entries: entries_per_table,
            alloc: Mutex::new(st),
        }
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Entries in one page table.
    pub fn entries_per_table(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The frames a pending allocation of `1 << order` will scan, `[from, to)`: from the block
    /// boundary at the cursor (pfn 0 in a tight pool's lowest fit) to the end of the block it
    /// will take. None if the pool is short or
    /// the scan would wrap (then it depends on every free). A free of a frame outside the range
    /// cannot change the allocation's result.
    pub fn alloc_scan(&self, order: u32) -> Option<(u32, u32)> {
        let n = 1usize << order;
        let st = self.alloc.lock();
        if st.nr_free < n {
            return None;
        }
        match st.find(n, self.frames.len()) {
            Some((head, false)) => Some((st.start(n, self.frames.len()) as u32, (head + n) as u32)),
            _ => None,
        }
    }

    /// Keep only the `keep` lowest free frames in the pool (the others are taken out for good,
    /// as if another task held them), and from now on allocate the lowest free block (lowest
    /// fit instead of next fit): a frame freed meanwhile is taken again before the spare frames
    /// above it, as the page allocator's per-CPU lists hand out the page freed last. Quiescent
    /// only (the scenario's set-up, before any thread).
    pub fn keep_lowest_free(&self, keep: usize) {
        let mut st = self.alloc.lock();
        let mut kept = 0;
        for pfn in 0..self.frames.len() {
            if st.is_used(pfn) {
                continue;
            }
            if kept < keep {
                kept += 1;
            } else {
                st.set(pfn, true);
                st.nr_free -= 1;
                st.reserved += 1;
            }
        }
        st.lowest_first = true;
    }

    pub fn nr_free(&self) -> usize {
        self.alloc.lock().nr_free
    }

    /// The frame at `pfn` (no lifetime check: metadata of `struct page` is always addressable).
    pub fn frame(&self, pfn: u32) -> &Frame {
        &self.frames[pfn as usize]
    }

    /// Unannounced reads of the `struct page` of `pfn` (quiescent code only: the caller holds a
    /// [`crate::Machine`] and calls [`crate::Machine::page_peek`], which checks that).
    pub(crate) fn page_peek(&self, pfn: u32) -> PagePeek<'_> {
        PagePeek {
            meta: &self.frames[pfn as usize].page,
        }
    }

    /// An oracle's instantaneous read of an entry (the rmap-completeness scan after
    /// `remove_migration_ptes`): not checked by strict mode, so every use must be justified where
    /// it is made (see docs/fidelity.md).
    pub fn entry_oracle(&self, t: FrameRef, idx: usize) -> u64 {
        self.words(t.pfn)[idx].load(Ordering::SeqCst)
    }

    /// Unannounced read of a data word (quiescent code only, see [`crate::Machine::data_peek`]).
    pub(crate) fn data_peek(&self, pfn: u32) -> u64 {
        self.frames[pfn as usize].data.load(Ordering::SeqCst)
    }

    /// What the frame is now.
    #[inline]
    pub fn kind(&self, pfn: u32) -> FrameKind {
        self.frames
            .get(pfn as usize)
            .map_or(FrameKind::Reserved, |f| f.gen_kind().1)
    }

    /// A reference to `pfn` at its current generation: what dereferencing a pfn read from an
    /// entry yields.
    pub fn current(&self, pfn: u32) -> FrameRef {
        let gen = self.frames.get(pfn as usize).map_or(0, |f| f.gen_kind().0);
        FrameRef { pfn, gen }
    }

    /// True if `r` still names a live frame of the generation it was derived at.
    pub fn is_live(&self, r: FrameRef) -> bool {
        match self.frames.get(r.pfn as usize) {
            Some(f) => {
                let (gen, kind) = f.gen_kind();
                gen == r.gen && !matches!(kind, FrameKind::Free | FrameKind::Reserved)
            }
            None => false,
        }
    }

    /// Check an access through `r`; report a use-after-free on `cpu` if it is stale.
    #[track_caller]
    pub fn check(&self, cpu: &Cpu<'_>, r: FrameRef, what: &str) -> bool {
        cpu.touch(Obj::Frame {
            pfn: r.pfn,
            order: 0,
        });
        if self.is_live(r) {
            return true;
        }
        let Some(f) = self.frames.get(r.pfn as usize) else {
            cpu.report(
                ViolationKind::UseAfterFree,
                format!("{what}: pfn {} is outside physical memory", r.pfn),
            );
            return false;
        };
        let (gen, kind) = f.gen_kind();
        let by = f.freed_by.lock().describe("; freed by ");
        let now = match kind {
            FrameKind::Free => "free".to_string(),
            FrameKind::Reserved => "reserved (pfn 0: derived from a none entry?)".to_string(),
            k => format!("reused as {k} (gen {gen})"),
        };
        cpu.report(
            ViolationKind::UseAfterFree,
            format!("{what}: pfn {} gen {} is {now}{by}", r.pfn, r.gen),
        );
        false
    }

    /// The entry words of frame `pfn` (the store buffers' commits; see [`crate::memory`]).
    pub(crate) fn words_of(&self, pfn: u32) -> &[AtomicU64] {
        self.words(pfn)
    }

    fn words(&self, pfn: u32) -> &[AtomicU64] {
        self.frames[pfn as usize]
            .words
            .get_or_init(|| (0..self.entries).map(|_| AtomicU64::new(0)).collect())
    }

    /// The word of entry `idx` of frame `pfn`, read outside every step for a trace's entry
    /// values (no checks: the frame may have been freed by the step).
    pub fn entry_word_raw(&self, pfn: u32, idx: usize) -> u64 {
        match self.frames.get(pfn as usize) {
            Some(f) => f
                .words
                .get()
                .and_then(|w| w.get(idx))
                .map_or(0, |w| w.load(Ordering::SeqCst)),
            None => 0,
        }
    }

    /// Allocate a naturally aligned block of `1 << order` frames as `kind`; `None` when out of
    /// memory.
    pub fn alloc(&self, cpu: &Cpu<'_>, order: u32, kind: FrameKind) -> Option<FrameRef> {
        cpu.state().alloc_order.store(order, Ordering::Relaxed);
        cpu.visible(Obj::Alloc, Access::FrameAlloc);
        let n = 1usize << order;
        let head = {
            let mut st = self.alloc.lock();
            if st.nr_free < n {
                drop(st);
                cpu.m
                    .backend()
                    .limit(cpu.id, Limit::Frames(self.frames.len()));
                return None;
            }
            let Some((head, _)) = st.find(n, self.frames.len()) else {
                drop(st);
                cpu.m
                    .backend()
                    .limit(cpu.id, Limit::Frames(self.frames.len()));
                return None;
            };
            for q in head..head + n {
                st.set(q, true);
            }
            st.nr_free -= n;
            st.cursor = head + n;
            head
        };
        for q in head..head + n {
            let f = &self.frames[q];
            let (gen, _) = f.gen_kind();
            f.ptl.reset();
            f.data.store(0, Ordering::SeqCst);
            let m = &f.page;
            for w in &m.words {
                w.store(0, Ordering::SeqCst);
            }
            m.word(PageField::Refcount)
                .store(u64::from(q == head), Ordering::SeqCst);
            if q == head {
                m.word(PageField::Order)
                    .store(order as u64, Ordering::SeqCst);
            }
            m.word(PageField::Head).store(head as u64, Ordering::SeqCst);
            m.locked.store(false, Ordering::SeqCst);
            m.deposit.lock().clear();
            if let FrameKind::Table(_) = kind {
                for w in self.words(q as u32) {
                    w.store(0, Ordering::SeqCst);
                }
                cpu.wl_new_table(q as u32);
            }
            f.state
                .store((gen as u64) << 16 | kind.encode(), Ordering::SeqCst);
        }
        cpu.m.name(crate::naming::NameRec::Alloc {
            pfn: head as u32,
            order: order as u8,
            kind,
        });
        if cpu.m.strict() {
            cpu.m.backend().allocated(cpu.id, head as u32, order);
        }
        let r = self.current(head as u32);
        match kind {
            // `__GFP_ZERO`: under a weak memory model the zeroing is this CPU's buffered stores.
            FrameKind::Table(_) => {
                cpu.wb_clear_table(r);
            }
            // The zeroing (`__GFP_ZERO`, `folio_zero_user`) or whatever a copy overwrites.
            FrameKind::Data => {
                cpu.wb_clear_data(r, order);
            }
            _ => {}
        }
        Some(r)
    }

    /// Free the block of `1 << order` frames headed by `r`. Freeing a stale reference is a
    /// double free (or a use-after-free if the frame was reused).
    pub fn free(&self, cpu: &Cpu<'_>, r: FrameRef, order: u32) {
        cpu.visible(
            Obj::Frame {
                pfn: r.pfn,
                order: order as u8,
            },
            Access::FrameFree,
        );
        if !self.is_live(r) {
            let kind = self.kind(r.pfn);
            let k = if kind == FrameKind::Free {
                ViolationKind::DoubleFree
            } else {
                ViolationKind::UseAfterFree
            };
            let by = self.frames[r.pfn as usize]
                .freed_by
                .lock()
                .describe(" (first freed by ");
            let by = if by.is_empty() { by } else { by + ")" };
            cpu.report(
                k,
                format!("free of pfn {} gen {}: frame is {kind}{by}", r.pfn, r.gen),
            );
            return;
        }
        let n = 1usize << order;
        let stack = cpu.state().stack.lock();
        for q in r.pfn as usize..(r.pfn as usize + n).min(self.frames.len()) {
            let f = &self.frames[q];
            let (gen, _) = f.gen_kind();
            f.state
                .store(((gen.wrapping_add(1)) as u64) << 16, Ordering::SeqCst);
            let mut by = f.freed_by.lock();
            by.cpu = Some(cpu.id);
            by.stack.clone_from(&stack);
        }
        drop(stack);
        let mut st = self.alloc.lock();
        for q in r.pfn as usize..(r.pfn as usize + n).min(self.frames.len()) {
            st.set(q, false);
        }
        st.nr_free += n;
    }

    /// Frames currently allocated (everything but free frames and pfn 0).
    /// Frames allocated (not counting pfn 0 and frames taken out of the pool).
    pub fn nr_used(&self) -> usize {
        let st = self.alloc.lock();
        self.frames.len() - 1 - st.nr_free - st.reserved
    }
}

impl<'m> Cpu<'m> {
    /// Announce an access to entry `idx` of table `t`, check the table is live, and return the
    /// word: the common part of every entry verb.
    #[inline]
    fn entry_word(&self, t: FrameRef, idx: usize, access: Access, what: &str) -> &'m AtomicU64 {
        self.visible(
            Obj::Entry {
                pfn: t.pfn,
                idx: idx as u32,
            },
            access,
        );
        let fr = &self.m.frames;
        fr.check(self, t, what);
        &fr.words(t.pfn)[idx]
    }

    /// `READ_ONCE(*entry)`: a lockless or locked read of entry `idx` of table `t`.
    #[inline]
    pub fn entry_read(&self, t: FrameRef, idx: usize) -> u64 {
        let w = self.entry_word(t, idx, Access::Read, "entry read");
        if self.m.memory_model() == crate::MemoryModel::Sc {
            return w.load(Ordering::SeqCst);
        }
        match self.wb_forward(t.pfn, idx as u32) {
            Some(v) => v,
            None => {
                let v = self.wl_load(t.pfn, idx as u32, w.load(Ordering::SeqCst));
                self.wb_check_loaded(t, idx, v)
            }
        }
    }

    /// `WRITE_ONCE(*entry, v)` (`set_pte`, `pmd_populate`, `pmd_clear`, ...). Under a weak
    /// memory model it goes to this CPU's store buffer (see [`crate::memory`]).
    #[inline]
    pub fn entry_write(&self, t: FrameRef, idx: usize, v: u64) {
        if self.m.memory_model() != crate::MemoryModel::Sc && self.wb_store(t, idx as u32, v) {
            return;
        }
        let old = self
            .entry_word_at_once(t, idx, Access::Write, "entry write")
            .swap(v, Ordering::SeqCst);
        self.wl_record(t.pfn, idx as u32, old, v, self.id, u64::MAX);
    }

    /// Announce a write of entry `idx` of `t` that reaches memory in this step. Under `lkmm`
    /// (as [`Access::RmwWeak`]) another CPU's buffered RMW of the entry is committed first.
    #[inline]
    fn entry_word_at_once(
        &self,
        t: FrameRef,
        idx: usize,
        access: Access,
        what: &str,
    ) -> &'m AtomicU64 {
        if self.m.memory_model() != crate::MemoryModel::Lkmm {
            return self.entry_word(t, idx, access, what);
        }
        let w = self.entry_word(t, idx, Access::RmwWeak, what);
        self.wb_commit_reserved(t.pfn, Some(idx as u32), self.id);
        w
    }

    /// A relaxed RMW of an entry under `memory = lkmm` (arm64's `xchg_relaxed` and
    /// `cmpxchg_relaxed` in `__ptep_get_and_clear`, `pmdp_establish`, `ptep_set_wrprotect`,
    /// `ptep_test_and_clear_young`): one step reads the entry in memory (after this CPU's own
    /// buffered stores to it, and another CPU's buffered RMW of it) and buffers the write
    /// `f(old)` if any; later loads of this CPU may be performed before other CPUs see it.
    fn entry_rmw_relaxed(
        &self,
        t: FrameRef,
        idx: usize,
        f: impl FnOnce(u64) -> Option<u64>,
    ) -> u64 {
        let w = self.entry_word_at_once(t, idx, Access::RmwWeak, "entry rmw");
        let old = self.wb_check_loaded(t, idx, w.load(Ordering::SeqCst));
        self.wl_observe_latest(t.pfn, idx as u32);
        if let Some(new) = f(old) {
            self.wb_push_rmw(t, idx as u32, new);
        }
        old
    }

    /// `xchg(entry, v)` (`ptep_get_and_clear`): performed in memory, after this CPU's buffered
    /// stores to the entry; under `lkmm`, relaxed (its write buffered, see
    /// [`Cpu::entry_rmw_relaxed`]).
    #[inline]
    pub fn entry_xchg(&self, t: FrameRef, idx: usize, v: u64) -> u64 {
        if self.wb_rmw_relaxed() {
            return self.entry_rmw_relaxed(t, idx, |_| Some(v));
        }
        let old = self
            .entry_word_at_once(t, idx, Access::Rmw, "entry xchg")
            .swap(v, Ordering::SeqCst);
        self.wl_record(t.pfn, idx as u32, old, v, self.id, u64::MAX);
        self.wb_check_loaded(t, idx, old)
    }

    /// `cmpxchg(entry, old, new)`: `Ok(old)` on success, `Err(current)` otherwise; under `lkmm`
    /// relaxed, as [`Cpu::entry_xchg`].
    #[inline]
    pub fn entry_cmpxchg(&self, t: FrameRef, idx: usize, old: u64, new: u64) -> Result<u64, u64> {
        if self.wb_rmw_relaxed() {
            let cur = self.entry_rmw_relaxed(t, idx, |cur| (cur == old).then_some(new));
            return if cur == old { Ok(cur) } else { Err(cur) };
        }
        self.entry_cmpxchg_hw(t, idx, old, new)
    }

    /// The hardware walker's atomic update of an entry's access and dirty bits: performed in
    /// memory under every model.
    #[inline]
    pub fn entry_cmpxchg_hw(
        &self,
        t: FrameRef,
        idx: usize,
        old: u64,
        new: u64,
    ) -> Result<u64, u64> {
        let r = self
            .entry_word_at_once(t, idx, Access::Rmw, "entry cmpxchg")
            .compare_exchange(old, new, Ordering::SeqCst, Ordering::SeqCst);
        match r {
            Ok(_) => self.wl_record(t.pfn, idx as u32, old, new, self.id, u64::MAX),
            Err(_) => self.wl_observe_latest(t.pfn, idx as u32),
        }
        r.map_err(|v| self.wb_check_loaded(t, idx, v))
    }

    /// Read a table's entries without visible events or checks (quiescent invariant checks only;
    /// strict mode reports a peek inside a step).
    #[track_caller]
    pub fn entry_peek(&self, t: FrameRef, idx: usize) -> u64 {
        self.m.peek_check();
        self.m.frames.words(t.pfn)[idx].load(Ordering::SeqCst)
    }

    /// The PTL embedded in table `t`. Deriving it from a reference to a freed table is a
    /// use-after-free (`ptlock_ptr` reads the table's `struct page`): an announced read of the
    /// frame's state, so the explorer orders it against the free.
    pub fn ptl_of(&self, t: FrameRef) -> &'m SpinLock {
        self.visible(
            Obj::Frame {
                pfn: t.pfn,
                order: 0,
            },
            Access::Read,
        );
        self.m.frames.check(self, t, "page-table lock");
        &self.m.frames.frame(t.pfn).ptl
    }

    /// Read the data word of page `p`: this CPU's own buffered store to it first, under a weak
    /// memory model; garbage in memory (a zeroing or copy not yet visible here) is an
    /// `uninit-data` violation.
    #[inline]
    pub fn data_read(&self, p: FrameRef) -> u64 {
        self.visible(Obj::Data(p.pfn), Access::Read);
        self.m.frames.check(self, p, "data read");
        if self.m.memory_model() != crate::MemoryModel::Sc {
            if let Some(v) = self.wb_forward_data(p.pfn) {
                return v;
            }
            let v = self.m.frames.frame(p.pfn).data.load(Ordering::SeqCst);
            return self.wb_check_data_loaded(p, v);
        }
        self.m.frames.frame(p.pfn).data.load(Ordering::SeqCst)
    }

    /// A kernel store into page `p` while bringing a new folio uptodate (a copy into it before
    /// it is mapped or cached: `copy_user_highpage`, `copy_mc_user_highpage`, `copy_from_user`
    /// of `UFFDIO_COPY`, a read-in): buffered under a weak memory model, so that only a
    /// barrier (`__folio_mark_uptodate`'s `smp_wmb`) or a release makes it visible before a
    /// later store that publishes the page.
    /// Under `tso` it is a plain store, performed at once (see [`Cpu::wb_data_buffered`]) and
    /// draining nothing.
    #[inline]
    pub fn data_init(&self, p: FrameRef, v: u64) {
        match self.m.memory_model() {
            crate::MemoryModel::Sc => self.data_write(p, v),
            _ if self.wb_store_data(p, v) => {}
            _ => {
                self.assert_not_in_cell();
                self.m
                    .backend
                    .visible(self.id, crate::Event::new(Obj::Data(p.pfn), Access::Write));
                self.m.frames.check(self, p, "data write");
                self.m.frames.frame(p.pfn).data.store(v, Ordering::SeqCst)
            }
        }
    }

    /// Write the data word of page `p` at once (a user store through a translation, a GUP
    /// write): under `lkmm` after this CPU's buffered stores to it.
    #[inline]
    pub fn data_write(&self, p: FrameRef, v: u64) {
        self.visible(Obj::Data(p.pfn), Access::Write);
        self.m.frames.check(self, p, "data write");
        self.m.frames.frame(p.pfn).data.store(v, Ordering::SeqCst)
    }

    /// Announce an access to every `struct page` field of `pfn` and return them.
    #[inline]
    pub fn page(&self, pfn: u32, access: Access) -> PageRef<'m> {
        self.page_parts(pfn, Obj::PAGE_ALL, access)
    }

    /// Announce an access to the field groups `parts` of the `struct page` of `pfn` (a mask of
    /// [`Obj::PAGE_REF`] ...) and return them: a field outside them is an unannounced access.
    #[inline]
    pub fn page_parts(&self, pfn: u32, parts: u8, access: Access) -> PageRef<'m> {
        self.visible(Obj::Page { pfn, parts }, access);
        self.page_with(pfn, parts)
    }

    /// A value-returning atomic on the field groups `parts` of the `struct page` of `pfn`
    /// (`atomic_dec_and_test`, `atomic_add_unless`, `atomic_inc_and_test`,
    /// `atomic_add_negative`, `atomic_cmpxchg`): an RMW the LKMM fully orders
    /// (Documentation/atomic_t.txt), so under `memory = lkmm` this CPU's buffered stores become
    /// visible before it, as after `smp_mb()` (under `tso` every RMW drains anyway). Later loads
    /// follow it (an ordering point for weak loads, see [`crate::memory`]) and so do later
    /// stores (this RMW is performed in memory, later stores are buffered). A failed conditional one (`atomic_add_unless` on
    /// zero, a failed `folio_ref_freeze`) orders too: stronger than the LKMM
    /// (docs/fidelity.md). Not a mutation site: the ordering is part of the atomic.
    #[inline]
    pub fn page_atomic_return(&self, pfn: u32, parts: u8) -> PageRef<'m> {
        self.wb_fully_ordered_rmw();
        let r = self.page_parts(pfn, parts, Access::Rmw);
        self.wl_order();
        r
    }

    /// The fields of `pfn` fixed from allocation to free (`compound_head`, `folio_order`): an
    /// announced read of the frame's state, independent of refcount and mapcount updates.
    #[inline]
    pub fn page_const(&self, pfn: u32) -> PageRef<'m> {
        self.visible(Obj::Frame { pfn, order: 0 }, Access::Read);
        self.page_with(pfn, 0)
    }

    /// The `struct page` fields of `pfn`, for a step that already announced them.
    #[inline]
    pub fn page_in_step(&self, pfn: u32) -> PageRef<'m> {
        self.page_with(pfn, Obj::PAGE_ALL)
    }

    fn page_with(&self, pfn: u32, parts: u8) -> PageRef<'m> {
        PageRef {
            cpu: *self,
            pfn,
            parts,
            meta: &self.m.frames.frame(pfn).page,
        }
    }

    /// `pfn_to_page` of a pfn read from an entry or a `struct page`: a reference at the frame's
    /// generation now. Reading the generation is an announced read of the frame's state, so the
    /// explorer orders it against frees of the frame (an unannounced read in the step of the
    /// entry read could be reordered after a free and a reuse and hide the use-after-free).
    #[inline]
    pub fn frame_ref(&self, pfn: u32) -> FrameRef {
        self.visible(Obj::Frame { pfn, order: 0 }, Access::Read);
        self.m.frames.current(pfn)
    }

    /// `frame_ref` in a step that already announced an object of frame `pfn`.
    #[inline]
    #[track_caller]
    pub fn frame_ref_in_step(&self, pfn: u32) -> FrameRef {
        self.touch(Obj::Frame { pfn, order: 0 });
        self.m.frames.current(pfn)
    }

    /// True if `r` is live; a read of the frame's state in the running step.
    #[inline]
    #[track_caller]
    pub fn frame_is_live(&self, r: FrameRef) -> bool {
        self.touch(Obj::Frame {
            pfn: r.pfn,
            order: 0,
        });
        self.m.frames.is_live(r)
    }

    /// `folio_trylock` of the folio headed at `pfn` (announced as a trylock of its lock).
    #[track_caller]
    pub fn folio_trylock_raw(&self, pfn: u32) -> bool {
        let id = Obj::page_lock_id(pfn);
        if self.lock_site("folio_lock", id) {
            return true;
        }
        self.visible(Obj::Lock(id), Access::TryAcquire);
        let ok = !self
            .m
            .frames
            .frame(pfn)
            .page
            .locked
            .swap(true, Ordering::SeqCst);
        self.trylock_result(id, ok);
        ok
    }

    /// `folio_lock`: sleep until the folio lock is free, then take it.
    #[track_caller]
    pub fn folio_lock_raw(&self, pfn: u32) {
        if self.lock_site("folio_lock", Obj::page_lock_id(pfn)) {
            return;
        }
        let l = &self.m.frames.frame(pfn).page.locked;
        self.wait_for(
            Obj::Lock(Obj::page_lock_id(pfn)),
            Access::Acquire,
            &|| !l.load(Ordering::SeqCst),
            &mut || !l.swap(true, Ordering::SeqCst),
        );
    }

    /// `__folio_set_locked` on a folio nobody else can lock yet (a new folio, or a tail that a
    /// split makes a folio of its own). It cannot wait, so it is announced as a trylock that
    /// succeeds: held from here, with no lock-order edge into it.
    #[track_caller]
    pub fn folio_set_locked_new(&self, pfn: u32) {
        let id = Obj::page_lock_id(pfn);
        if self.lock_site("folio_lock", id) {
            return;
        }
        self.visible(Obj::Lock(id), Access::TryAcquire);
        let old = self
            .m
            .frames
            .frame(pfn)
            .page
            .locked
            .swap(true, Ordering::SeqCst);
        self.trylock_result(id, true);
        self.warn_on(old, "__folio_set_locked on a locked folio");
    }

    /// `folio_wait_bit(PG_locked)`: sleep until the folio is unlocked (without taking it).
    pub fn folio_wait_unlocked_raw(&self, pfn: u32) {
        let l = &self.m.frames.frame(pfn).page.locked;
        self.block(Obj::Lock(Obj::page_lock_id(pfn)), Access::Read, &|| {
            !l.load(Ordering::SeqCst)
        });
    }

    /// `folio_unlock`; returns false if it was not locked.
    pub fn folio_unlock_raw(&self, pfn: u32) -> bool {
        if self.skip_release(Obj::page_lock_id(pfn)) {
            return true;
        }
        self.visible(Obj::Lock(Obj::page_lock_id(pfn)), Access::Release);
        self.m
            .frames
            .frame(pfn)
            .page
            .locked
            .swap(false, Ordering::SeqCst)
    }

    /// `folio_test_locked`, read in a step that announced the folio's lock.
    #[track_caller]
    pub fn folio_test_locked_in_step(&self, pfn: u32) -> bool {
        self.touch(Obj::Lock(Obj::page_lock_id(pfn)));
        self.m.frames.frame(pfn).page.locked.load(Ordering::SeqCst)
            || self.holds_skipped(Obj::page_lock_id(pfn))
    }
}

impl Frames {
    /// Make this arena what `t` (an arena of the same shape) is, keeping its allocations: a
    /// copy of a set-up state onto a new machine or onto the previous execution's (see
    /// [`crate::Machine::reset_from`]). Table words are copied where `t` has them and dropped
    /// where it has none (they are made again, zeroed, on first use).
    pub(crate) fn reset_from(&mut self, t: &Frames) {
        let load = |a: &AtomicU64| a.load(Ordering::SeqCst);
        let Frames {
            frames,
            entries,
            alloc,
        } = self;
        assert_eq!((frames.len(), *entries), (t.frames.len(), t.entries));
        for (f, tf) in frames.iter_mut().zip(t.frames.iter()) {
            let Frame {
                state,
                words,
                data,
                ptl,
                page,
                freed_by,
            } = f;
            *state.get_mut() = load(&tf.state);
            match (words.get_mut(), tf.words.get()) {
                (Some(w), Some(tw)) => w
                    .iter_mut()
                    .zip(tw.iter())
                    .for_each(|(a, b)| *a.get_mut() = load(b)),
                // Dropped rather than zeroed: frames that were tables in some earlier
                // execution would otherwise be zeroed at every restore.
                (Some(_), None) => drop(words.take()),
                (None, Some(tw)) => {
                    let _ = words.set(tw.iter().map(|b| AtomicU64::new(load(b))).collect());
                }
                (None, None) => {}
            }
            *data.get_mut() = load(&tf.data);
            ptl.reset_from(&tf.ptl);
            let PageMeta {
                words: page_words,
                locked,
                deposit,
            } = page;
            for (a, b) in page_words.iter_mut().zip(tf.page.words.iter()) {
                *a.get_mut() = load(b);
            }
            *locked.get_mut() = tf.page.locked.load(Ordering::SeqCst);
            deposit.get_mut().clone_from(&tf.page.deposit.lock());
            let (by, tby) = (freed_by.get_mut(), tf.freed_by.lock());
            by.cpu = tby.cpu;
            by.stack.clone_from(&tby.stack);
        }
        let (st, ts) = (alloc.get_mut(), t.alloc.lock());
        let AllocState {
            used,
            cursor,
            nr_free,
            reserved,
            lowest_first,
        } = st;
        used.clone_from(&ts.used);
        (*cursor, *nr_free, *reserved, *lowest_first) =
            (ts.cursor, ts.nr_free, ts.reserved, ts.lowest_first);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spinlock::tests::{kinds, seq_machine};

    #[test]
    fn pfn_zero_is_reserved() {
        let m = seq_machine(1, 8);
        assert_eq!(m.frames.len(), 8);
        assert_eq!(m.frames.kind(0), FrameKind::Reserved);
        assert_eq!(m.frames.nr_free(), 7);
        assert_eq!(m.frames.nr_used(), 0);
        assert!(!m.frames.is_live(m.frames.current(0)));
        assert_eq!(m.frames.kind(1000), FrameKind::Reserved, "outside memory");
    }

    #[test]
    fn a_tight_pool_reuses_the_lowest_freed_frame_first() {
        let m = seq_machine(1, 16);
        let c = m.cpu(0);
        let fr = &m.frames;
        let a = fr.alloc(&c, 0, FrameKind::Data).unwrap();
        let b = fr.alloc(&c, 0, FrameKind::Data).unwrap();
        fr.keep_lowest_free(2);
        assert_eq!((fr.nr_free(), fr.nr_used()), (2, 2));
        let s1 = fr.alloc(&c, 0, FrameKind::Data).unwrap();
        assert!(s1.pfn > b.pfn);
        // A frame freed now is taken before the spare one above it (next fit would not).
        fr.free(&c, a, 0);
        let a2 = fr.alloc(&c, 0, FrameKind::Data).unwrap();
        assert_eq!(a2.pfn, a.pfn);
        let s2 = fr.alloc(&c, 0, FrameKind::Data).unwrap();
        assert!(s2.pfn > s1.pfn);
        assert!(
            fr.alloc(&c, 0, FrameKind::Data).is_none(),
            "the pool keeps 2 spare frames"
        );
        for r in [b, s1, a2, s2] {
            fr.free(&c, r, 0);
        }
        assert_eq!(fr.nr_used(), 0);
    }

    #[test]
    fn alloc_and_free_bump_the_generation() {
        let m = seq_machine(1, 4); // pfns 1..=3
        let c = m.cpu(0);
        let fr = &m.frames;
        let a = fr.alloc(&c, 0, FrameKind::Data).unwrap();
        let b = fr.alloc(&c, 0, FrameKind::Table(1)).unwrap();
        let d = fr.alloc(&c, 0, FrameKind::Data).unwrap();
        assert_ne!(a.pfn, 0);
        assert_eq!(fr.nr_used(), 3);
        assert_eq!(fr.kind(b.pfn), FrameKind::Table(1));
        assert!(fr.is_live(b));
        assert_eq!(m.page_peek(a.pfn).count(PageField::Refcount), 1);
        fr.free(&c, b, 0);
        assert_eq!(fr.kind(b.pfn), FrameKind::Free);
        assert!(!fr.is_live(b));
        assert_eq!(fr.current(b.pfn).gen, b.gen.wrapping_add(1));
        assert_eq!(fr.nr_used(), 2);
        // The only free frame is reused, at the new generation.
        let b2 = fr.alloc(&c, 0, FrameKind::Data).unwrap();
        assert_eq!(b2.pfn, b.pfn);
        assert_eq!(b2.gen, b.gen.wrapping_add(1));
        assert!(fr.is_live(b2) && !fr.is_live(b));
        assert_eq!(fr.kind(b2.pfn), FrameKind::Data);
        for r in [a, b2, d] {
            fr.free(&c, r, 0);
        }
        assert_eq!(fr.nr_used(), 0);
        assert!(kinds(&m).is_empty());
    }

    #[test]
    fn a_reallocated_table_is_zeroed() {
        let m = seq_machine(1, 2); // only pfn 1
        let c = m.cpu(0);
        let t = m.frames.alloc(&c, 0, FrameKind::Table(1)).unwrap();
        c.entry_write(t, 5, 0xdead);
        assert_eq!(c.entry_read(t, 5), 0xdead);
        m.frames.free(&c, t, 0);
        let t2 = m.frames.alloc(&c, 0, FrameKind::Table(2)).unwrap();
        assert_eq!(t2.pfn, t.pfn);
        assert_eq!(c.entry_read(t2, 5), 0);
        assert!(kinds(&m).is_empty());
    }

    #[test]
    fn stale_access_reports_use_after_free_naming_the_freer() {
        let m = seq_machine(2, 8);
        let (c0, c1) = (m.cpu(0), m.cpu(1));
        let p = m.frames.alloc(&c0, 0, FrameKind::Data).unwrap();
        c0.data_write(p, 5);
        {
            let _outer = c1.enter("outer_path");
            let _f = c1.enter("test_freer");
            m.frames.free(&c1, p, 0);
        }
        let _ = c0.data_read(p);
        let v = m.violations();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].kind, ViolationKind::UseAfterFree);
        assert_eq!(v[0].cpu, Some(0));
        assert!(v[0].msg.contains("data read"), "{}", v[0].msg);
        assert!(v[0].msg.contains(&format!("pfn {}", p.pfn)), "{}", v[0].msg);
        assert!(
            v[0].msg
                .contains("freed by CPU1 in outer_path > test_freer"),
            "{}",
            v[0].msg
        );
        assert!(v[0].msg.contains("is free"), "{}", v[0].msg);
    }

    #[test]
    fn stale_access_to_a_reused_frame_says_what_it_became() {
        let m = seq_machine(2, 2); // only pfn 1
        let (c0, c1) = (m.cpu(0), m.cpu(1));
        let t = m.frames.alloc(&c0, 0, FrameKind::Table(1)).unwrap();
        m.frames.free(&c1, t, 0);
        let p = m.frames.alloc(&c1, 0, FrameKind::Data).unwrap();
        assert_eq!(p.pfn, t.pfn);
        c0.entry_write(t, 0, 1);
        let _ = c0.ptl_of(t);
        let v = m.violations();
        assert_eq!(v.len(), 2);
        assert!(v.iter().all(|v| v.kind == ViolationKind::UseAfterFree));
        assert!(v[0].msg.contains("entry write"), "{}", v[0].msg);
        assert!(v[0].msg.contains("reused as a data page"), "{}", v[0].msg);
        assert!(v[0].msg.contains("freed by CPU1"), "{}", v[0].msg);
        assert!(v[1].msg.contains("page-table lock"), "{}", v[1].msg);
        // The live reference is fine.
        c1.data_write(p, 3);
        assert_eq!(m.violations().len(), 2);
    }

    #[test]
    fn double_free_is_reported_as_double_free() {
        let m = seq_machine(2, 8);
        let (c0, c1) = (m.cpu(0), m.cpu(1));
        let p = m.frames.alloc(&c0, 0, FrameKind::Data).unwrap();
        {
            let _f = c1.enter("first_free");
            m.frames.free(&c1, p, 0);
        }
        let free_before = m.frames.nr_free();
        m.frames.free(&c0, p, 0);
        assert_eq!(
            m.frames.nr_free(),
            free_before,
            "a double free frees nothing"
        );
        let v = m.violations();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].kind, ViolationKind::DoubleFree);
        assert_eq!(v[0].cpu, Some(0));
        assert!(
            v[0].msg.contains("first freed by CPU1 in first_free"),
            "{}",
            v[0].msg
        );
    }

    #[test]
    fn freeing_a_stale_reference_to_a_reused_frame_is_use_after_free() {
        let m = seq_machine(1, 2);
        let c = m.cpu(0);
        let p = m.frames.alloc(&c, 0, FrameKind::Data).unwrap();
        m.frames.free(&c, p, 0);
        let q = m.frames.alloc(&c, 0, FrameKind::Data).unwrap();
        m.frames.free(&c, p, 0);
        assert_eq!(kinds(&m), vec![ViolationKind::UseAfterFree]);
        assert!(m.frames.is_live(q), "the new owner's frame survives");
    }

    #[test]
    fn higher_order_allocations_are_naturally_aligned() {
        let m = seq_machine(1, 64);
        let c = m.cpu(0);
        let fr = &m.frames;
        let single = fr.alloc(&c, 0, FrameKind::Data).unwrap();
        for order in [1u32, 2, 3, 2, 1] {
            let f = fr.alloc(&c, order, FrameKind::Data).unwrap();
            let n = 1u32 << order;
            assert_eq!(f.pfn % n, 0, "order {order} at pfn {}", f.pfn);
            for q in f.pfn..f.pfn + n {
                assert_eq!(fr.kind(q), FrameKind::Data);
                let pm = m.page_peek(q);
                assert_eq!(pm.get(PageField::Head), f.pfn as u64);
                let head = q == f.pfn;
                assert_eq!(pm.count(PageField::Refcount), i64::from(head));
                assert_eq!(
                    pm.get(PageField::Order),
                    if head { order as u64 } else { 0 }
                );
            }
            assert_ne!(f.pfn, single.pfn);
        }
        assert_eq!(fr.nr_used(), 1 + 2 + 4 + 8 + 4 + 2);
        assert!(kinds(&m).is_empty());
    }

    #[test]
    fn freeing_a_block_frees_every_frame_of_it() {
        let m = seq_machine(1, 16);
        let c = m.cpu(0);
        let f = m.frames.alloc(&c, 2, FrameKind::Data).unwrap();
        let tail = m.frames.current(f.pfn + 3);
        assert!(m.frames.is_live(tail));
        m.frames.free(&c, f, 2);
        assert_eq!(m.frames.nr_used(), 0);
        assert!(!m.frames.is_live(tail));
        assert_eq!(m.frames.kind(f.pfn + 3), FrameKind::Free);
    }

    #[test]
    fn out_of_memory_returns_none() {
        let m = seq_machine(1, 8); // pfns 1..=7
        let c = m.cpu(0);
        let fr = &m.frames;
        let all: Vec<FrameRef> = (0..7)
            .map(|_| fr.alloc(&c, 0, FrameKind::Data).unwrap())
            .collect();
        assert_eq!(fr.nr_free(), 0);
        assert!(fr.alloc(&c, 0, FrameKind::Data).is_none());
        // Two free frames that do not form an aligned pair cannot serve order 1.
        let (a, b) = (all[1], all[4]); // pfns 2 and 5
        assert_eq!((a.pfn, b.pfn), (2, 5));
        fr.free(&c, a, 0);
        fr.free(&c, b, 0);
        assert_eq!(fr.nr_free(), 2);
        assert!(fr.alloc(&c, 1, FrameKind::Data).is_none());
        assert!(fr.alloc(&c, 3, FrameKind::Data).is_none());
        assert_eq!(fr.nr_free(), 2, "a failed allocation takes nothing");
        // Freeing pfn 4 completes the aligned pair {4, 5}.
        fr.free(&c, all[3], 0);
        let pair = fr.alloc(&c, 1, FrameKind::Data).unwrap();
        assert_eq!(pair.pfn, 4);
        assert!(kinds(&m).is_empty());
    }
}
