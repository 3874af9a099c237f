//! Visible operations: what object an operation touches and how. The explorer derives its
//! dependency relation from these (two events conflict when they touch the same object and at least
//! one of them writes); the native backend ignores them.

/// The object a visible operation touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Obj {
    /// A sleeping or spinning lock, by id (PTLs use their table's pfn, see [`Obj::ptl_id`]).
    Lock(u64),
    /// One entry word of a page table: (pfn of the table, index).
    Entry { pfn: u32, idx: u32 },
    /// The `struct page` fields of a frame (refcount, mapcount, flags).
    Page(u32),
    /// The contents of a data page.
    Data(u32),
    /// The frame allocator (allocations).
    Alloc,
    /// A frame being freed: conflicts with every access to that frame and with allocations.
    Frame(u32),
    /// RCU: read-side sections and grace periods.
    Rcu,
    /// A CPU's IRQ-enable state.
    Irq(u16),
    /// A CPU's TLB.
    Tlb(u16),
    /// Any other shared word of the model (a VMA refcount, `mm_lock_seq`, a counter), by id.
    Var(u64),
}

impl Obj {
    /// Lock ids at or above this value name the split PTL of the table at `id - PTL_BASE`.
    pub const PTL_BASE: u64 = 1 << 40;

    /// Lock ids at or above this value name the folio lock of the folio headed at
    /// `id - PAGE_LOCK_BASE`.
    pub const PAGE_LOCK_BASE: u64 = 1 << 41;

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
            Obj::Entry { pfn, .. } | Obj::Page(pfn) | Obj::Data(pfn) | Obj::Frame(pfn) => Some(pfn),
            Obj::Lock(id) if id >= Self::PAGE_LOCK_BASE => Some((id - Self::PAGE_LOCK_BASE) as u32),
            Obj::Lock(id) if id >= Self::PTL_BASE => Some((id - Self::PTL_BASE) as u32),
            _ => None,
        }
    }
}

/// How a visible operation accesses its object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    Read,
    Write,
    /// Read-modify-write (xchg, cmpxchg, atomic add).
    Rmw,
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
    /// TLB fill by the hardware walker.
    Fill,
    /// Reading every CPU's TLB (the TLB oracle when a page is freed).
    TlbScan,
    FrameAlloc,
    FrameFree,
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

impl Event {
    pub const fn new(obj: Obj, access: Access) -> Self {
        Event { obj, access }
    }
}
