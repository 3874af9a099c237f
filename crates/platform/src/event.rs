//! Visible operations: what object an operation touches and how. The explorer derives its
//! dependency relation from these (two events conflict when they touch the same object and at least
//! one of them writes); the native backend ignores them.

/// The object a visible operation touches.
///
/// `repr(u32)` (and `Access`'s `repr(u64)`): an [`Event`] is three whole words with no padding,
/// so the compiler copies it word by word. With a one-byte tag it copied the seven bytes after
/// the tag as two overlapping halves, and the next whole-word load of the copy stalled on the
/// store buffer (a failed store-to-load forward) at every step: 3% of random exploration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum Obj {
    /// A sleeping or spinning lock, by id (PTLs use their table's pfn, see [`Obj::ptl_id`]).
    Lock(u64),
    /// One entry word of a page table: (pfn of the table, index).
    Entry { pfn: u32, idx: u32 },
    /// Groups of the `struct page` fields of a frame (`parts`, a mask of [`Obj::PAGE_REF`],
    /// [`Obj::PAGE_MAP`], [`Obj::PAGE_FLAGS`], [`Obj::PAGE_META`]): two accesses to one frame's
    /// fields conflict only if their groups meet, so a reference count update commutes with a
    /// mapcount update, as the kernel's separate atomics do.
    Page { pfn: u32, parts: u8 },
    /// The contents of a data page.
    Data(u32),
    /// The frame allocator (allocations).
    Alloc,
    /// The allocator's bitmap over frames `[from, to)`: the explorer's view of an allocation that
    /// scans only those (see `Machine::footprint`). Never announced.
    AllocRange { from: u32, to: u32 },
    /// A block of `1 << order` frames being freed: conflicts with every access to a frame of the
    /// block and with allocations. As a touched object (never announced), `order` 0 names one
    /// frame's allocation state (its generation), which every access through a `FrameRef` reads.
    Frame { pfn: u32, order: u8 },
    /// RCU's global state: the pending callbacks, and every CPU's reader counter as a grace
    /// period or `call_rcu` snapshots them.
    Rcu,
    /// The RCU reader counters of the CPUs in the mask: `rcu_read_lock`/`rcu_read_unlock` of CPU
    /// `c` announce `1 << c`. The explorer gives an RCU callback step the CPUs that a pending
    /// callback's grace period waits for (see `Machine::rcu_callback_footprint`): it reads only those.
    RcuReaders(u16),
    /// An RCU callback step with a callback ready to run, as the explorer sees it (never
    /// announced): it runs the callback queued by the `call_rcu` numbered `seq`, and reads the
    /// counters of the CPUs in `readers`, those that the callbacks queued ahead of it still wait
    /// for (see `Machine::rcu_callback_footprint`). Every other `call_rcu` appends behind that
    /// callback, so the step commutes with it.
    RcuReady { readers: u16, seq: u32 },
    /// `call_rcu` as the explorer sees it (never announced): it queues the callback numbered
    /// `seq`, which a callback step running that callback is ordered after.
    RcuCall(u32),
    /// A CPU's IRQ-enable state.
    Irq(u16),
    /// A CPU's TLB.
    Tlb(u16),
    /// A TLB shootdown's send step as the explorer sees it (never announced; see
    /// `Machine::footprint`): `vpns` hashes the pages it drops (bit `vpn % 32`, its range and
    /// the span of every entry it drops), `frames` the frames those leaf entries translate to
    /// (bit `pfn % 32`), and `blind` says that no target choice reads TLB contents (every other
    /// CPU is a target by `mm_cpumask`, a broadcast, or has never cached anything). Two blind
    /// shootdowns of disjoint pages commute; a scan for frames outside `frames` commutes with it.
    Shootdown { vpns: u32, frames: u32, blind: bool },
    /// CPU `cpu` enabling IRQs as the explorer sees it (never announced): `flushes` if shootdowns
    /// wait in its queue, which its IPI handler then runs (a TLB write); without, the step
    /// leaves the TLB alone and commutes with TLB scans.
    IrqOn { cpu: u16, flushes: bool },
    /// A fill of CPU `cpu`'s leaf TLB as the explorer sees it (never announced): bit `pfn % 32`
    /// of the frames of the new translation and of those it replaces or evicts. It stays a
    /// write of that CPU's TLB to everything but a scan for other frames.
    TlbFill { cpu: u16, frames: u32 },
    /// A shootdown's wait for the IRQ-off targets in the mask to take its IPI, as the explorer
    /// sees it (never announced): it reads their IRQ-off counters only.
    IpiWait(u16),
    /// The TLB oracle's scan for translations to some frames (`tlb_holders`), as the explorer
    /// sees it (never announced): bit `pfn % 32` of each frame asked about.
    TlbScanFrames(u32),
    /// Any other shared word of the model (a VMA refcount, `mm_lock_seq`, a counter), by id. Ids
    /// from [`Obj::SLAB_BASE`] on are fields of slab objects (see [`Obj::slab_base`]).
    Var(u64),
    /// The user-data history words of the addresses in the mask (bit `i`: the scenario's `i`-th
    /// address, modulo 64) that an operation's invocation or response extends, all at once:
    /// ghost state of the linearizability oracle, announced so that the explorer orders one
    /// operation's response against another's invocation on a shared address.
    Hist(u64),
    /// A nondeterministic choice of CPU `cpu` among `n` outcomes: something outside the model
    /// decides (`need_resched()`, a failed `GFP_NOWAIT` allocation). Private to its CPU, so
    /// independent of every other event; the explorer tries every outcome.
    Choice { cpu: u16, n: u8 },
}

impl Obj {
    /// Lock ids at or above this value name the split PTL of the table at `id - PTL_BASE`.
    pub const PTL_BASE: u64 = 1 << 40;

    /// Lock ids at or above this value name the folio lock of the folio headed at
    /// `id - PAGE_LOCK_BASE`.
    pub const PAGE_LOCK_BASE: u64 = 1 << 41;

    /// Var ids at or above this value are fields of slab objects (`vm_area_struct`): the object at
    /// `id & !(SLAB_STRIDE - 1)`, field `id % SLAB_STRIDE`. Freeing the object
    /// ([`Access::ObjFree`] on its base) conflicts with every access to its fields.
    pub const SLAB_BASE: u64 = 1 << 44;

    /// The store buffers of a weak memory model (`memory.rs`): pushes, and the flusher's wait
    /// and choice of what to commit.
    pub const STORE_BUFFERS: Obj = Obj::Var(Self::STORE_BUFFERS_ID);
    /// The id of [`Obj::STORE_BUFFERS`].
    pub const STORE_BUFFERS_ID: u64 = 1 << 43;

    /// Field ids per slab object.
    pub const SLAB_STRIDE: u64 = 8;

    /// Slab ids with this bit (and [`Obj::SLAB_BASE`]) belong to a `SLAB_TYPESAFE_BY_RCU` cache.
    pub const SLAB_TYPESAFE: u64 = 1 << 45;

    /// Set by the explorer's view of an access (never announced; see `Machine::footprint`) to a
    /// field of a `SLAB_TYPESAFE_BY_RCU` object made inside an RCU read-side section: the
    /// object's free changes nothing such an access reads or does, so the two commute.
    pub const RCU_READER: u64 = 1 << 63;

    /// The base id of the slab object a `Var` belongs to, if it is a slab field.
    pub fn slab_base(self) -> Option<u64> {
        match self {
            Obj::Var(id) if id >= Self::SLAB_BASE => {
                Some(id & !Self::RCU_READER & !(Self::SLAB_STRIDE - 1))
            }
            _ => None,
        }
    }

    /// A field of a `SLAB_TYPESAFE_BY_RCU` object (not the object's own id).
    pub fn is_typesafe_field(self) -> bool {
        let both = Self::SLAB_BASE | Self::SLAB_TYPESAFE;
        matches!(self, Obj::Var(id) if id & both == both && id % Self::SLAB_STRIDE != 0)
    }

    /// This object without the explorer's [`Obj::RCU_READER`] mark.
    pub fn unmarked(self) -> Obj {
        match self {
            Obj::Var(id) => Obj::Var(id & !Self::RCU_READER),
            o => o,
        }
    }

    /// `_refcount` and `_pincount`.
    pub const PAGE_REF: u8 = 1;
    /// `_mapcount` and `_entire_mapcount`.
    pub const PAGE_MAP: u8 = 2;
    /// `flags`, `PageAnonExclusive` included.
    pub const PAGE_FLAGS: u8 = 4;
    /// `mapping`, `index`, `private`, and a PMD table's deposited tables (`pmd_huge_pte`).
    pub const PAGE_META: u8 = 8;
    /// Every field group.
    pub const PAGE_ALL: u8 = 15;

    /// Every `struct page` field of `pfn`.
    pub fn page(pfn: u32) -> Obj {
        Obj::Page {
            pfn,
            parts: Self::PAGE_ALL,
        }
    }

    /// The lock id of the PTL embedded in the table frame `pfn`.
    pub fn ptl_id(pfn: u32) -> u64 {
        Self::PTL_BASE + pfn as u64
    }

    /// The lock id of the folio lock of the folio headed at `pfn`.
    pub fn page_lock_id(pfn: u32) -> u64 {
        Self::PAGE_LOCK_BASE + pfn as u64
    }

    /// The frame this object lives in, if any (entries, data, `struct page`, PTLs, folio locks).
    pub fn frame(self) -> Option<u32> {
        match self {
            Obj::Entry { pfn, .. }
            | Obj::Page { pfn, .. }
            | Obj::Data(pfn)
            | Obj::Frame { pfn, .. } => Some(pfn),
            Obj::Lock(id) if id >= Self::PAGE_LOCK_BASE => Some((id - Self::PAGE_LOCK_BASE) as u32),
            Obj::Lock(id) if id >= Self::PTL_BASE => Some((id - Self::PTL_BASE) as u32),
            _ => None,
        }
    }

    /// True if this object lives in a frame of the block `[pfn, pfn + (1 << order))`.
    pub fn in_block(self, pfn: u32, order: u8) -> bool {
        self.frame()
            .is_some_and(|p| p >= pfn && (p as u64) < pfn as u64 + (1u64 << order))
    }
}

/// Strict mode's rule: may a step that announced `ev` touch `obj`? `fresh` lists the frames the
/// step allocated (no reference reaches them before a later step publishes them; a pfn read
/// before they were freed does, which the dependency relation orders against the allocation).
///
/// A step touches what it announced; a shootdown or IPI broadcast touches every CPU's IRQ and
/// TLB state, and a TLB scan every CPU's TLB (the dependency relation orders them against every
/// such access); a frame free touches every object in its block; anything may touch a frame it
/// allocated in this step; and every access through a frame reference reads that frame's
/// generation, which only frees and allocations (dependent with every object of the frame)
/// change.
pub fn covers(ev: &Event, obj: Obj, fresh: &[u32]) -> bool {
    if ev.obj == obj {
        return true;
    }
    if let (Obj::Page { pfn: a, parts: m }, Obj::Page { pfn: b, parts: p }) = (ev.obj, obj) {
        if a == b && p & !m == 0 {
            return true;
        }
    }
    match ev.access {
        Access::Flush | Access::IpiSync if matches!(obj, Obj::Irq(_) | Obj::Tlb(_)) => return true,
        // A TLB scan reads TLBs, and of the IRQ state only the queue of shootdowns not yet
        // taken, which a sender's flush and the target's IRQ enable change (both dependent with
        // a scan); it commutes with IRQ-off, which leaves the queue alone.
        Access::TlbScan if matches!(obj, Obj::Tlb(_) | Obj::Irq(_)) => return true,
        Access::FrameFree | Access::FrameClear => {
            if let Obj::Frame { pfn, order } = ev.obj {
                if obj.in_block(pfn, order) {
                    return true;
                }
            }
        }
        Access::FrameAlloc if obj == Obj::Alloc => return true,
        Access::ObjFree | Access::ObjAlloc
            if ev.obj.slab_base().is_some() && obj.slab_base() == ev.obj.slab_base() =>
        {
            return true
        }
        // The IPI handler runs when IRQs come back on: it flushes this CPU's own TLB. Every other
        // CPU's access to this TLB is a global event, dependent with this one.
        Access::IrqEnable => {
            if let (Obj::Irq(c), Obj::Tlb(d)) = (ev.obj, obj) {
                if c == d {
                    return true;
                }
            }
        }
        _ => {}
    }
    // A reader boundary (`rcu_read_lock`/`unlock`, IRQs off/on) changes its CPU's reader counter;
    // grace-period and callback events read the counters and the pending callbacks.
    let gp = matches!(
        ev.access,
        Access::GracePeriod | Access::CallRcu | Access::RcuCallback
    );
    match (obj, ev.obj) {
        (Obj::RcuReaders(_) | Obj::RcuReady { .. } | Obj::RcuCall(_) | Obj::Rcu, _) if gp => {
            return true
        }
        (Obj::RcuReaders(m), Obj::Irq(c))
            if m == 1 << c.min(15)
                && matches!(ev.access, Access::IrqDisable | Access::IrqEnable) =>
        {
            return true
        }
        _ => {}
    }
    if let Some(p) = obj.frame() {
        if fresh.contains(&p) {
            return true;
        }
        if matches!(obj, Obj::Frame { order: 0, .. }) && ev.obj.frame() == Some(p) {
            return true;
        }
    }
    false
}

impl Obj {
    /// A short name for traces and reports.
    /// The kind of object, for coverage (`ptl`, `folio_lock`, `entry`, ...): the same across
    /// executions and scenarios, unlike ids.
    pub fn class(self) -> &'static str {
        match self {
            Obj::Lock(id) if id >= Obj::PAGE_LOCK_BASE => "folio_lock",
            Obj::Lock(id) if id >= Obj::PTL_BASE => "ptl",
            Obj::Lock(_) => "lock",
            Obj::Entry { .. } => "entry",
            Obj::Page { .. } => "page",
            Obj::Data(_) => "data",
            Obj::Alloc | Obj::AllocRange { .. } => "allocator",
            Obj::Frame { .. } => "frame",
            Obj::Rcu | Obj::RcuReaders(_) | Obj::RcuReady { .. } | Obj::RcuCall(_) => "rcu",
            Obj::Irq(_) | Obj::IrqOn { .. } => "irq",
            Obj::Tlb(_)
            | Obj::Shootdown { .. }
            | Obj::TlbScanFrames(_)
            | Obj::IpiWait(_)
            | Obj::TlbFill { .. } => "tlb",
            Obj::Var(id) if id >= Obj::SLAB_BASE => "vma",
            Obj::Var(_) => "var",
            Obj::Hist(_) => "history",
            Obj::Choice { .. } => "choice",
        }
    }

    pub fn describe(self) -> String {
        match self {
            Obj::Lock(id) if id >= Obj::PAGE_LOCK_BASE => {
                format!("folio_lock(pfn {})", id - Obj::PAGE_LOCK_BASE)
            }
            Obj::Lock(id) if id >= Obj::PTL_BASE => format!("ptl(pfn {})", id - Obj::PTL_BASE),
            Obj::Lock(id) => format!("lock#{id}"),
            Obj::Entry { pfn, idx } => format!("entry[{pfn}:{idx}]"),
            Obj::Page {
                pfn,
                parts: Obj::PAGE_ALL,
            } => format!("page{pfn}"),
            Obj::Page { pfn, parts } => format!("page{pfn}/{parts:#x}"),
            Obj::Data(p) => format!("data{p}"),
            Obj::Alloc => "allocator".into(),
            Obj::AllocRange { from, to } => format!("allocator[{from}..{to})"),
            Obj::Frame { pfn, order: 0 } => format!("frame{pfn}"),
            Obj::Frame { pfn, order } => format!("frame{pfn}/order{order}"),
            Obj::Rcu => "rcu".into(),
            Obj::RcuReaders(m) => format!("rcu readers {m:#x}"),
            Obj::RcuReady { readers, seq } => format!("rcu callback {seq}, readers {readers:#x}"),
            Obj::RcuCall(seq) => format!("rcu callback {seq} queued"),
            Obj::Irq(c) => format!("irq{c}"),
            Obj::IrqOn { cpu, flushes } => format!(
                "irq{cpu} on{}",
                if flushes {
                    ", running queued flushes"
                } else {
                    ""
                }
            ),
            Obj::Tlb(c) => format!("tlb{c}"),
            Obj::Shootdown {
                vpns,
                frames,
                blind,
            } => format!(
                "shootdown of pages {vpns:#x}, frames {frames:#x}{}",
                if blind {
                    ""
                } else {
                    ", targets by TLB contents"
                }
            ),
            Obj::TlbScanFrames(m) => format!("TLB scan for frames {m:#x}"),
            Obj::IpiWait(m) => format!("wait for the IPI on CPUs {m:#x}"),
            Obj::TlbFill { cpu, frames } => format!("tlb{cpu} fill of frames {frames:#x}"),
            Obj::Var(id) if id & Obj::RCU_READER != 0 => {
                format!("var#{} (RCU reader)", id & !Obj::RCU_READER)
            }
            Obj::Var(id) => format!("var#{id}"),
            Obj::Hist(m) => format!("history {m:#x}"),
            Obj::Choice { n, .. } => format!("choice of {n}"),
        }
    }
}

/// How a visible operation accesses its object. A whole word: see [`Obj`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u64)]
pub enum Access {
    Read,
    Write,
    /// Read-modify-write (xchg, cmpxchg, an atomic add whose result is used).
    Rmw,
    /// A read-modify-write of a page-table entry under `memory = lkmm`, announced on the entry:
    /// the kernel's `xchg_relaxed`/`cmpxchg_relaxed` (arm64's `__ptep_get_and_clear`,
    /// `pmdp_establish`, ...), whose write goes to the CPU's store buffer, or the hardware
    /// walker's atomic A/D update. Either may commit another CPU's buffered RMW of the entry
    /// first (see `memory.rs`), so it also conflicts with every access to the store buffers
    /// ([`Obj::STORE_BUFFERS`]).
    RmwWeak,
    /// An atomic add that commutes with the object's other `Add`s, conflicting with every other
    /// access to it: its result is unused (`atomic_inc`, `atomic_dec`), or turns only on
    /// thresholds the other adds cannot cross (a VMA reader's `vm_refcnt` reference).
    Add,
    /// Exclusive acquire (spinlock, rwsem write).
    Acquire,
    /// A trylock attempt (exclusive or shared); cannot deadlock, so lockdep records no order.
    TryAcquire,
    /// Shared acquire (rwsem read).
    AcquireShared,
    /// Announce a waiting writer (rwsem writer preference).
    WriterWait,
    Release,
    ReleaseShared,
    /// Write to read downgrade.
    Downgrade,
    RcuLock,
    RcuUnlock,
    /// `synchronize_rcu`: wait for a grace period.
    GracePeriod,
    /// `call_rcu` registration.
    CallRcu,
    /// An RCU callback runs.
    RcuCallback,
    IrqDisable,
    IrqEnable,
    /// IPI broadcast waiting for every CPU to leave IRQ-off.
    IpiSync,
    /// TLB shootdown.
    Flush,
    /// TLB fill by the hardware walker (a leaf translation), a local flush, or `switch_mm`.
    Fill,
    /// The hardware walker caching the table pointers it went through (the paging-structure
    /// caches): a write to the CPU's TLB that TLB scans, which read only leaf translations, do
    /// not see.
    WalkFill,
    /// Reading every CPU's TLB (the TLB oracle when a page is freed).
    TlbScan,
    FrameAlloc,
    FrameFree,
    /// A weak-memory store buffer's commit of a new table's zeroing (`clear_page` of a
    /// `__GFP_ZERO` allocation), announced on the table's frame: it writes every entry, so it
    /// conflicts with every access to the frame, as [`Access::FrameFree`] does.
    FrameClear,
    /// An operation's invocation on its user addresses' history words ([`Obj::Hist`], the
    /// linearizability oracle's real-time order): it conflicts with another thread's response
    /// on a shared word, and commutes with invocations.
    HistInv,
    /// An operation's response on its addresses' history words: conflicts with invocations on a
    /// shared word, commutes with responses.
    HistResp,
    /// Freeing a slab object (`kmem_cache_free`), announced on its base `Var`: conflicts with
    /// every access to a field of the object.
    ObjFree,
    /// Handing a freed slab object out again (`kmem_cache_alloc` reusing it: SLUB's per-CPU
    /// freelist), announced on its base `Var`: conflicts with every access to a field of the
    /// object, as [`Access::ObjFree`] does.
    ObjAlloc,
}

impl Access {
    /// True if the access only reads its object.
    pub fn is_read_only(self) -> bool {
        matches!(self, Access::Read | Access::RcuLock | Access::RcuUnlock)
    }
}

/// One visible operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Event {
    pub obj: Obj,
    pub access: Access,
}

// Three words, none of them padding (see `Obj`).
const _: () = assert!(std::mem::size_of::<Event>() == 24 && std::mem::size_of::<Obj>() == 16);

impl Event {
    pub const fn new(obj: Obj, access: Access) -> Self {
        Event { obj, access }
    }
}
