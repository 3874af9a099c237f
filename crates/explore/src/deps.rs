//! The dependency relation over visible operations. Two events conflict when they touch the same
//! object and at least one of them modifies it, plus the families the platform's objects form:
//! - freeing a frame conflicts with every access to that frame (entries, data, `struct page`, its
//!   PTL or folio lock), with frees of overlapping blocks, and with allocations that scan it
//!   (an allocation's footprint, `Obj::AllocRange`, is its scan of the bitmap; as announced, on
//!   `Obj::Alloc`, it conflicts with every free);
//! - an allocation conflicts with every access to a frame of the range it scans (it initializes
//!   the block it takes, which a pfn read earlier still reaches: a speculative reference), and
//!   as announced, with every access to any frame;
//! - freeing a slab object (a VMA) conflicts with every access to one of its fields;
//! - IPI broadcasts and TLB shootdowns conflict with the IRQ state and TLB of every CPU;
//! - grace periods and `call_rcu` conflict with every RCU reader boundary (including IRQ-off);
//!   an RCU callback step with the boundaries of the CPUs that can change which callback it runs
//!   (its footprint, `Obj::RcuReaders`, or `Obj::RcuReady` when a callback is ready: then it
//!   commutes with every `call_rcu` but the one that queued that callback, `Obj::RcuCall`; as
//!   announced, every boundary and every `call_rcu`).
//!
//! The footprints are computed from the state before the step (`Machine::footprint`) and change
//! only by events dependent with the step (allocations and frees in the scanned range; `call_rcu`
//! and other callback steps), so they are stable wherever the search reorders the step.

use mmcheck_platform::{Access, Event, Obj};

#[derive(PartialEq, Eq)]
enum Class {
    Read,
    Shared,
    /// `Access::Add`: atomic adds that commute with each other (see its doc).
    Add,
    Write,
}

fn class(a: Access) -> Class {
    match a {
        Access::Read => Class::Read,
        Access::Add => Class::Add,
        Access::AcquireShared | Access::ReleaseShared | Access::RcuLock | Access::RcuUnlock => {
            Class::Shared
        }
        _ => Class::Write,
    }
}

fn is_global(e: &Event) -> bool {
    matches!(e.access, Access::IpiSync | Access::Flush | Access::TlbScan)
}

fn is_hist(e: &Event) -> bool {
    matches!(e.access, Access::HistInv | Access::HistResp)
}

fn is_cpu_state(e: &Event) -> bool {
    is_cpu_obj(e.obj)
}

/// A CPU's IRQ state or TLB, or every CPU's TLBs (a shootdown or a scan, as footprints).
fn is_cpu_obj(o: Obj) -> bool {
    matches!(
        o,
        Obj::Irq(_)
            | Obj::IrqOn { .. }
            | Obj::Tlb(_)
            | Obj::Shootdown { .. }
            | Obj::TlbScanFrames(_)
            | Obj::IpiWait(_)
            | Obj::TlbFill { .. }
    )
}

/// A store-buffer push or flusher wait, or an entry RMW that may commit another CPU's buffered
/// RMW of its entry (`Access::RmwWeak`).
fn touches_buffers(e: &Event) -> bool {
    e.access == Access::RmwWeak || e.obj == Obj::STORE_BUFFERS
}

fn is_gp(e: &Event) -> bool {
    matches!(
        e.access,
        Access::GracePeriod | Access::CallRcu | Access::RcuCallback
    )
}

fn is_reader_boundary(e: &Event) -> bool {
    matches!(
        e.access,
        Access::RcuLock | Access::RcuUnlock | Access::IrqDisable | Access::IrqEnable
    )
}

/// The family of an event, for a cheap prefilter in scans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Plain,
    /// Frame frees and allocations.
    FreeAlloc,
    /// IPI broadcasts, shootdowns, TLB scans.
    Global,
    /// Grace periods and RCU callbacks.
    Gp,
    /// RCU read-side and IRQ-off boundaries.
    Reader,
    /// Invocations and responses on user-data history words.
    Hist,
    /// The store buffers, and the weak-memory entry RMWs that touch them.
    Buffers,
}

/// A cheap summary for scans: `may_depend` is false only when [`dependent`] certainly is.
///
/// Two bit signatures answer most scans with one AND: `mask`, what the event is, and `query`,
/// what it may conflict with, such that `dependent(a, b)` implies `a.mask & b.query != 0`
/// (the family and object rules of `may_depend` decide the rest). Scans for the latest dependent event
/// of another thread mostly find none and look at every event since the two threads last
/// synchronized (under `memory = lkmm`, 39 per step on the reference scenario): the AND is what
/// they pay per event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    obj: Obj,
    family: Family,
    mask: u64,
    query: u64,
}

/// Signature bits (see [`Key`]), one per way [`dependent`] can say true. Every query has
/// `SIG_FA` (a frame free or allocation's mask is all ones), every mask `SIG_ANY` (and such a
/// query is all ones).
const SIG_FA: u64 = 1 << 0;
const SIG_ANY: u64 = 1 << 1;
/// A CPU's state (`is_cpu_obj`), which a global event's query asks for.
const SIG_CPU: u64 = 1 << 2;
/// A global event (an IPI, a shootdown, a TLB scan or IPI wait), which every query on CPU state
/// asks for.
const SIG_GLOBAL: u64 = 1 << 3;
/// A grace period or callback step, asked for by those and by reader boundaries.
const SIG_GP: u64 = 1 << 4;
/// A reader boundary, asked for by grace-period events.
const SIG_READER: u64 = 1 << 5;
/// A weak entry RMW, asked for by the flusher's read of the store buffers, and that read.
const SIG_RMW_WEAK: u64 = 1 << 6;
const SIG_BUFFERS_READ: u64 = 1 << 7;
/// The rest: the object's hash bucket, a bit for reads and a bit for every other access (two
/// reads of one object commute), or the folded address mask of a history event.
const SIG_HASH_FROM: u32 = 8;
const SIG_HASH_BITS: u64 = 64 - SIG_HASH_FROM as u64;

/// The read bit of an object's hash bucket (the other-access bit is the next one): FNV-1a (a word at a
/// time) over its discriminant and fields (fixed, so the same in every run).
fn read_bit(o: &Obj) -> u64 {
    struct Fnv(u64);
    impl std::hash::Hasher for Fnv {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for &b in bytes {
                self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
            }
        }
        fn write_u64(&mut self, x: u64) {
            self.0 = (self.0 ^ x).wrapping_mul(0x100_0000_01b3);
        }
        fn write_u32(&mut self, x: u32) {
            self.write_u64(x.into());
        }
        fn write_u16(&mut self, x: u16) {
            self.write_u64(x.into());
        }
        fn write_u8(&mut self, x: u8) {
            self.write_u64(x.into());
        }
        fn write_usize(&mut self, x: usize) {
            self.write_u64(x as u64);
        }
        fn write_isize(&mut self, x: isize) {
            self.write_u64(x as u64);
        }
    }
    use std::hash::{Hash, Hasher};
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    o.hash(&mut h);
    // The splitmix64 finalizer: FNV's high bits are weak on short inputs.
    let mut x = h.finish();
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    let bucket = ((x >> 32) * (SIG_HASH_BITS / 2)) >> 32;
    1 << (u64::from(SIG_HASH_FROM) + 2 * bucket)
}

/// A history event's address mask folded onto the hash bits: two masks that meet fold onto
/// bits that meet.
fn fold_bits(m: u64) -> u64 {
    let mut out = 0;
    let mut m = m;
    while m != 0 {
        let i = u64::from(m.trailing_zeros());
        m &= m - 1;
        out |= 1 << (u64::from(SIG_HASH_FROM) + i % SIG_HASH_BITS);
    }
    out
}

/// A frame or slab object's free or allocation: each conflicts with every access to what it
/// frees or hands out.
fn frees_or_allocates(e: &Event) -> bool {
    matches!(
        e.access,
        Access::FrameFree
            | Access::FrameClear
            | Access::FrameAlloc
            | Access::ObjFree
            | Access::ObjAlloc
    )
}

impl Key {
    pub fn of(e: &Event) -> Key {
        let family = if frees_or_allocates(e) {
            Family::FreeAlloc
        } else if is_global(e) || matches!(e.obj, Obj::IpiWait(_)) {
            Family::Global
        } else if is_gp(e) {
            Family::Gp
        } else if is_reader_boundary(e) {
            Family::Reader
        } else if is_hist(e) {
            Family::Hist
        } else if touches_buffers(e) {
            Family::Buffers
        } else {
            Family::Plain
        };
        // Field groups of one `struct page` compare as the whole page.
        let obj = match e.obj {
            Obj::Page { pfn, .. } => Obj::page(pfn),
            o => o.unmarked(),
        };
        let (mask, query) = Self::signatures(e, obj);
        Key {
            obj,
            family,
            mask,
            query,
        }
    }

    /// The signatures of `e` (its object normalized as `obj`): a bit for each branch of
    /// [`dependent`] that can say true, so that `dependent(a, b)` implies
    /// `a.mask & b.query != 0` (checked over a spread of events by the tests). They follow the
    /// relation's own tests, not the families (which [`Key::may_depend`] checks after them).
    fn signatures(e: &Event, obj: Obj) -> (u64, u64) {
        if frees_or_allocates(e) {
            return (!0, !0);
        }
        let (mut mask, mut query) = (SIG_ANY, SIG_FA);
        if is_cpu_obj(obj) {
            mask |= SIG_CPU;
            query |= SIG_GLOBAL;
        }
        if is_global(e) || matches!(obj, Obj::IpiWait(_)) {
            mask |= SIG_GLOBAL;
            query |= SIG_CPU;
        }
        if is_gp(e) {
            mask |= SIG_GP;
            query |= SIG_GP | SIG_READER;
        }
        if is_reader_boundary(e) {
            mask |= SIG_READER;
            query |= SIG_GP;
        }
        if e.access == Access::RmwWeak {
            mask |= SIG_RMW_WEAK;
            query |= SIG_BUFFERS_READ;
        }
        if obj == Obj::STORE_BUFFERS && e.access == Access::Read {
            mask |= SIG_BUFFERS_READ;
            query |= SIG_RMW_WEAK;
        }
        if is_hist(e) {
            let bits = match obj {
                Obj::Hist(m) => fold_bits(m),
                _ => !0 << SIG_HASH_FROM,
            };
            return (mask | bits, query | bits);
        }
        let read = read_bit(&obj);
        let other = read << 1;
        if class(e.access) == Class::Read {
            (mask | read, query | other)
        } else {
            (mask | other, query | read | other)
        }
    }

    /// False only if the two events are certainly independent.
    #[inline]
    pub fn may_depend(&self, other: &Key) -> bool {
        use Family::*;
        if self.mask & other.query == 0 {
            return false;
        }
        match (self.family, other.family) {
            (FreeAlloc, _) | (_, FreeAlloc) => true,
            (Global, _) | (_, Global) => is_cpu_obj(self.obj) && is_cpu_obj(other.obj),
            (Gp, Gp) | (Gp, Reader) | (Reader, Gp) => true,
            (Gp, _) | (_, Gp) => false,
            (Hist, Hist) => true,
            (Hist, _) | (_, Hist) => false,
            (Buffers, _) | (_, Buffers) => {
                self.obj == other.obj
                    || self.obj == Obj::STORE_BUFFERS
                    || other.obj == Obj::STORE_BUFFERS
            }
            (Reader, Reader) => self.obj == other.obj,
            _ => self.obj == other.obj,
        }
    }
}

/// The CPUs whose reader counter a reader boundary changes.
fn reader_cpus(e: &Event) -> u16 {
    match e.obj {
        Obj::RcuReaders(m) | Obj::RcuReady { readers: m, .. } => m,
        Obj::Irq(c) | Obj::IrqOn { cpu: c, .. } => 1 << c.min(15),
        _ => u16::MAX,
    }
}

/// True if the blocks `[p1, p1 + (1 << o1))` and `[p2, p2 + (1 << o2))` share a frame.
fn blocks_overlap(p1: u32, o1: u8, p2: u32, o2: u8) -> bool {
    (p1 as u64) < block_end(p2, o2) && (p2 as u64) < block_end(p1, o1)
}

/// One past the last frame of the block `[p, p + (1 << o))`.
fn block_end(p: u32, o: u8) -> u64 {
    p as u64 + (1u64 << o)
}

/// True if the order of `a` and `b` (by different threads) can matter.
pub fn dependent(a: &Event, b: &Event) -> bool {
    let frame_wide = |e: &Event| matches!(e.access, Access::FrameFree | Access::FrameClear);
    if frame_wide(a) || frame_wide(b) {
        let (f, o) = if frame_wide(a) { (a, b) } else { (b, a) };
        let Obj::Frame { pfn, order } = f.obj else {
            return true;
        };
        if o.access == Access::FrameFree && f.access == Access::FrameFree {
            // Frees of disjoint blocks commute: each clears its own frames' bits and bumps
            // their generations, and the allocator picks by the set of free frames (next fit
            // from a cursor only allocations move), never by the order they were freed in.
            let Obj::Frame { pfn: p2, order: o2 } = o.obj else {
                return true;
            };
            return blocks_overlap(pfn, order, p2, o2);
        }
        if o.access == Access::FrameAlloc && f.access == Access::FrameFree {
            // An allocation's result depends only on the frames it scans.
            if let Obj::AllocRange { from, to } = o.obj {
                return (pfn as u64) < to as u64 && (from as u64) < block_end(pfn, order);
            }
        }
        return matches!(o.access, Access::FrameAlloc | Access::FrameFree)
            || o.obj.in_block(pfn, order);
    }
    let obj_life = |e: &Event| matches!(e.access, Access::ObjFree | Access::ObjAlloc);
    if obj_life(a) || obj_life(b) {
        // Freeing or reusing a slab object conflicts with every access to one of its fields,
        // but for the free of a `SLAB_TYPESAFE_BY_RCU` object an access inside an RCU
        // read-side section (`Obj::RCU_READER`: legal after the free, which changes no field).
        let (l, o) = if obj_life(a) { (a, b) } else { (b, a) };
        if l.access == Access::ObjFree && matches!(o.obj, Obj::Var(id) if id & Obj::RCU_READER != 0)
        {
            return false;
        }
        return a.obj.slab_base().is_some() && a.obj.slab_base() == b.obj.slab_base();
    }
    if a.access == Access::FrameAlloc || b.access == Access::FrameAlloc {
        if a.access == b.access {
            return true;
        }
        // The allocation initializes the block it takes (its `struct page` fields, its kind) in
        // its own step. Nobody holds a reference to a free frame, but a pfn is enough to reach
        // it: a speculative reference taken through a pfn read before the frame was freed
        // (GUP-fast's, `folio_walk`'s `folio_try_get`) sees a free page or the new owner's,
        // depending on which came first. As the explorer sees it, the allocation scans
        // `[from, to)` and takes its last block; every frame of the range counts.
        let (al, o) = if a.access == Access::FrameAlloc {
            (a, b)
        } else {
            (b, a)
        };
        return match al.obj {
            Obj::AllocRange { from, to } => o.obj.frame().is_some_and(|p| p >= from && p < to),
            _ => o.obj.frame().is_some(),
        };
    }
    if let Some((w, o)) = match (a.obj, b.obj) {
        (Obj::IpiWait(w), _) => Some((w, b)),
        (_, Obj::IpiWait(w)) => Some((w, a)),
        _ => None,
    } {
        // A shootdown's wait reads the IRQ-off counters of its deferred targets, which only
        // their IRQ boundaries change.
        return matches!(o.obj, Obj::Irq(c) | Obj::IrqOn { cpu: c, .. } if w & 1 << c.min(15) != 0);
    }
    if a.access == Access::TlbScan || b.access == Access::TlbScan {
        // A TLB scan reads every CPU's leaf translations and nothing else: it commutes with other
        // reads of a TLB, with fills of the paging-structure caches and with IRQ-off entries; an
        // IRQ enable may run a deferred flush (a TLB write).
        let (scan, o) = if a.access == Access::TlbScan {
            (a, b)
        } else {
            (b, a)
        };
        if !is_cpu_state(scan) {
            return false;
        }
        return match (o.obj, o.access) {
            // A scan for some frames against a shootdown that drops no translation to them.
            (Obj::Shootdown { frames, .. } | Obj::TlbFill { frames, .. }, _) => match scan.obj {
                Obj::TlbScanFrames(asked) => asked & frames != 0,
                _ => true,
            },
            (_, Access::TlbScan) => false,
            (Obj::Tlb(_), Access::Read | Access::WalkFill) => false,
            (Obj::Tlb(_), _) => true,
            // An IRQ enable with no shootdown queued leaves the TLB alone.
            (Obj::IrqOn { flushes, .. }, _) => flushes,
            (Obj::Irq(_), Access::IrqDisable) => false,
            (Obj::Irq(_), _) => true,
            _ => false,
        };
    }
    if is_hist(a) || is_hist(b) {
        // Only the order of one operation's response against another's invocation decides
        // whether they overlap: three classes for two operations (before, after, overlapping)
        // rather than every interleaving of their four boundaries.
        // One operation announces all its addresses in one step: the order of two operations'
        // boundaries is one decision, not one per shared address.
        return match (a.obj, b.obj) {
            (Obj::Hist(x), Obj::Hist(y)) => {
                is_hist(a) && is_hist(b) && x & y != 0 && a.access != b.access
            }
            _ => false,
        };
    }
    if is_global(a) || is_global(b) {
        if let (
            Obj::Shootdown {
                vpns: x,
                blind: true,
                ..
            },
            Obj::Shootdown {
                vpns: y,
                blind: true,
                ..
            },
        ) = (a.obj, b.obj)
        {
            // Two shootdowns that pick their targets without reading TLB contents, of disjoint
            // pages: each drops its own entries (set removals commute) and queues its flush
            // for IRQ-off targets (the handler runs the queue whole).
            return x & y != 0;
        }
        return is_cpu_state(a) && is_cpu_state(b);
    }
    if is_gp(a) || is_gp(b) {
        if is_gp(a) && is_gp(b) {
            // A ready callback is already queued: any other `call_rcu` appends behind it.
            return match (a.obj, b.obj) {
                (Obj::RcuReady { seq, .. }, Obj::RcuCall(q))
                | (Obj::RcuCall(q), Obj::RcuReady { seq, .. }) => seq == q,
                _ => true,
            };
        }
        let (gp, o) = if is_gp(a) { (a, b) } else { (b, a) };
        if !is_reader_boundary(o) {
            return false;
        }
        // A callback step reads only the counters of the CPUs that can change which callback it
        // runs (`Machine::rcu_callback_footprint`, given by the explorer as `RcuReaders` or
        // `RcuReady`); a grace period's start and `call_rcu` snapshot them all.
        return match (gp.access, gp.obj) {
            (Access::RcuCallback, Obj::RcuReaders(w) | Obj::RcuReady { readers: w, .. }) => {
                w & reader_cpus(o) != 0
            }
            // A reader's exit and `call_rcu` commute: if `call_rcu` comes first, its snapshot
            // records the reader inside and the exit ends that wait for good (the counter only
            // grows); if the exit comes first, the snapshot does not record it. Either way the
            // callback never waits for that CPU again. An entry does not commute: the callback
            // waits for a section entered before `call_rcu` and not for one entered after.
            (Access::CallRcu, _) => !matches!(o.access, Access::RcuUnlock | Access::IrqEnable),
            _ => true,
        };
    }
    let weak_rmw = |x: &Event, y: &Event| {
        x.access == Access::RmwWeak && y.obj == Obj::STORE_BUFFERS && y.access == Access::Read
    };
    if weak_rmw(a, b) || weak_rmw(b, a) {
        // A weak entry RMW pushes its write into its CPU's store buffer, or commits another
        // CPU's buffered RMW of its entry: both change what the flusher's wait finds to commit.
        // A plain push commutes with it: it appends to another buffer, and the RMW takes out
        // only an RMW's write, of its own entry.
        return true;
    }
    let (ca, cb) = (class(a.access), class(b.access));
    if let (Obj::Page { pfn: x, parts: p }, Obj::Page { pfn: y, parts: q }) = (a.obj, b.obj) {
        // Field groups of one `struct page`: separate words, as in the kernel.
        return x == y
            && p & q != 0
            && !(ca == cb && matches!(ca, Class::Read | Class::Shared | Class::Add));
    }
    if a.obj.unmarked() != b.obj.unmarked() {
        return false;
    }
    !(ca == cb && matches!(ca, Class::Read | Class::Shared | Class::Add))
}

/// True if the dependent event `b` (of another thread, later) can never run before `a` from the
/// state before `a`, so their race is not reversible and the search has nothing to try for it
/// (they stay ordered: the relation is unchanged):
/// - `a` is the `call_rcu` that queued the callback the step `b` runs (as the explorer gives
///   them, `Obj::RcuCall` and `Obj::RcuReady`);
/// - `a` releases or downgrades a lock, and `b` waits for it (`b_blocking`: a sleeping or spinning
///   acquire, or a wait for a folio lock to be dropped). Before `a`, `a`'s thread holds the
///   lock, which keeps every such wait of another thread blocked: exclusively for a write hold,
///   and against a writer for a read hold (two read-side events commute anyway). A trylock is
///   not a wait: it can fail before `a`, a real alternative.
pub fn enables(a: &Event, b: &Event, b_blocking: bool) -> bool {
    match (a.obj, b.obj) {
        (Obj::RcuCall(q), Obj::RcuReady { seq, .. }) => q == seq,
        (Obj::Lock(x), Obj::Lock(y)) => {
            x == y
                && b_blocking
                && matches!(
                    a.access,
                    Access::Release | Access::ReleaseShared | Access::Downgrade
                )
                && matches!(
                    b.access,
                    Access::Acquire | Access::AcquireShared | Access::Read
                )
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(obj: Obj, access: Access) -> Event {
        Event::new(obj, access)
    }

    /// Every kind of access, for the relation's spread tests.
    const ACCESSES: [Access; 30] = [
        Access::Read,
        Access::Write,
        Access::Rmw,
        Access::Add,
        Access::Acquire,
        Access::TryAcquire,
        Access::AcquireShared,
        Access::WriterWait,
        Access::Release,
        Access::ReleaseShared,
        Access::Downgrade,
        Access::RcuLock,
        Access::RcuUnlock,
        Access::GracePeriod,
        Access::CallRcu,
        Access::RcuCallback,
        Access::IrqDisable,
        Access::IrqEnable,
        Access::IpiSync,
        Access::Flush,
        Access::Fill,
        Access::WalkFill,
        Access::TlbScan,
        Access::FrameAlloc,
        Access::FrameFree,
        Access::HistInv,
        Access::HistResp,
        Access::ObjFree,
        Access::ObjAlloc,
        Access::RmwWeak,
    ];

    /// Every object with every access.
    fn spread(objs: &[Obj]) -> Vec<Event> {
        objs.iter()
            .flat_map(|&o| ACCESSES.iter().map(move |&a| ev(o, a)))
            .collect()
    }

    #[test]
    fn key_prefilter_is_sound() {
        // may_depend must hold whenever dependent does, over a spread of events.
        let objs = [
            Obj::Entry { pfn: 5, idx: 1 },
            Obj::Entry { pfn: 5, idx: 2 },
            Obj::Lock(Obj::ptl_id(5)),
            Obj::Lock(7),
            Obj::page(5),
            Obj::Page {
                pfn: 5,
                parts: Obj::PAGE_REF,
            },
            Obj::Page {
                pfn: 5,
                parts: Obj::PAGE_MAP | Obj::PAGE_FLAGS,
            },
            Obj::Page {
                pfn: 6,
                parts: Obj::PAGE_REF,
            },
            Obj::Data(5),
            Obj::Frame { pfn: 5, order: 0 },
            Obj::Alloc,
            Obj::Shootdown {
                vpns: 1,
                frames: 2,
                blind: true,
            },
            Obj::Shootdown {
                vpns: 2,
                frames: 4,
                blind: false,
            },
            Obj::TlbScanFrames(2),
            Obj::TlbFill { cpu: 1, frames: 2 },
            Obj::IpiWait(0b10),
            Obj::IrqOn {
                cpu: 1,
                flushes: false,
            },
            Obj::IrqOn {
                cpu: 1,
                flushes: true,
            },
            Obj::Irq(1),
            Obj::Var(Obj::SLAB_BASE | Obj::SLAB_TYPESAFE),
            Obj::Var(Obj::SLAB_BASE | Obj::SLAB_TYPESAFE | 1),
            Obj::Var(Obj::SLAB_BASE | Obj::SLAB_TYPESAFE | 1 | Obj::RCU_READER),
            Obj::Rcu,
            Obj::RcuReaders(0b01),
            Obj::RcuReaders(0b10),
            Obj::RcuReady { readers: 0, seq: 0 },
            Obj::RcuReady {
                readers: 0b10,
                seq: 1,
            },
            Obj::RcuCall(0),
            Obj::RcuCall(1),
            Obj::AllocRange { from: 4, to: 8 },
            Obj::STORE_BUFFERS,
            Obj::Irq(0),
            Obj::Irq(1),
            Obj::Tlb(0),
            Obj::Tlb(1),
            Obj::Var(3),
            Obj::Var(Obj::SLAB_BASE),
            Obj::Var(Obj::SLAB_BASE + 2),
            Obj::Var(Obj::SLAB_BASE + Obj::SLAB_STRIDE),
            Obj::Hist(0b011),
            Obj::Hist(0b110),
            Obj::Hist(0b1000),
        ];
        let evs = spread(&objs);
        for a in &evs {
            for b in &evs {
                if dependent(a, b) {
                    assert!(Key::of(a).may_depend(&Key::of(b)), "{a:?} {b:?}");
                }
            }
        }
    }

    #[test]
    fn an_allocation_conflicts_with_a_pfn_access_to_the_block_it_takes() {
        // `folio_try_get` through a stale pfn against the allocation that hands the frame to a
        // new owner: which came first decides what the reference sees.
        let alloc = ev(Obj::AllocRange { from: 2, to: 5 }, Access::FrameAlloc);
        let try_get = ev(
            Obj::Page {
                pfn: 4,
                parts: Obj::PAGE_REF,
            },
            Access::Rmw,
        );
        assert!(dependent(&alloc, &try_get) && dependent(&try_get, &alloc));
        let elsewhere = ev(Obj::Data(7), Access::Read);
        assert!(!dependent(&alloc, &elsewhere));
        let announced = ev(Obj::Alloc, Access::FrameAlloc);
        assert!(dependent(&announced, &elsewhere));
        assert!(!dependent(&announced, &ev(Obj::Var(3), Access::Write)));
    }

    #[test]
    fn key_signatures_are_sound_over_many_objects() {
        // Hash collisions and folded history masks: over dozens of objects of each kind (with
        // one access of each family, to keep the pairs few), the
        // signature test never hides a dependency, and it does tell distinct plain objects
        // apart (the scans' point).
        let mut objs = vec![Obj::STORE_BUFFERS, Obj::Alloc, Obj::Rcu];
        for i in 0..64u32 {
            objs.push(Obj::Entry {
                pfn: i / 8,
                idx: i % 8,
            });
            objs.push(Obj::Lock(u64::from(i) * 7));
            objs.push(Obj::Lock(Obj::ptl_id(i)));
            objs.push(Obj::Var(u64::from(i)));
            objs.push(Obj::Var(Obj::SLAB_BASE + u64::from(i)));
            objs.push(Obj::Page {
                pfn: i,
                parts: Obj::PAGE_REF,
            });
            objs.push(Obj::Data(i));
            objs.push(Obj::Frame {
                pfn: i,
                order: (i % 3) as u8,
            });
            objs.push(Obj::Hist(1 << i));
            objs.push(Obj::Hist(3 << (i % 62)));
            objs.push(Obj::RcuReaders(1 << (i % 16)));
            objs.push(Obj::Irq((i % 16) as u16));
            objs.push(Obj::Tlb((i % 16) as u16));
            objs.push(Obj::RcuCall(i));
        }
        use Access::*;
        let accs = ACCESSES.iter().filter(|a| {
            matches!(
                a,
                Read | Write | Rmw | RmwWeak | Add | Acquire | Release | RcuLock | IrqEnable
            ) || matches!(a, GracePeriod | CallRcu | RcuCallback | IpiSync | TlbScan)
                || matches!(a, FrameAlloc | FrameFree | HistInv | HistResp | ObjFree)
        });
        let evs: Vec<Event> = objs
            .iter()
            .flat_map(|&o| accs.clone().map(move |&a| ev(o, a)))
            .collect();
        let keys: Vec<Key> = evs.iter().map(Key::of).collect();
        let (mut pairs, mut cut) = (0u64, 0u64);
        for (a, ka) in evs.iter().zip(&keys) {
            for (b, kb) in evs.iter().zip(&keys) {
                if dependent(a, b) {
                    assert!(ka.may_depend(kb), "{a:?} {b:?}");
                }
                if ka.obj != kb.obj && ka.family == Family::Plain && kb.family == Family::Plain {
                    pairs += 1;
                    cut += u64::from(ka.mask & kb.query == 0);
                }
            }
        }
        assert!(
            cut * 10 > pairs * 9,
            "{cut} of {pairs} plain pairs told apart"
        );
    }

    #[test]
    fn a_weak_entry_rmw_conflicts_with_its_entry_and_the_store_buffers() {
        let e = |idx| Obj::Entry { pfn: 5, idx };
        let rmw = ev(e(1), Access::RmwWeak);
        let wait = ev(Obj::STORE_BUFFERS, Access::Read);
        assert!(dependent(&rmw, &wait) && dependent(&wait, &rmw));
        assert!(!dependent(&rmw, &ev(Obj::STORE_BUFFERS, Access::Write)));
        assert!(dependent(&rmw, &ev(e(1), Access::Read)));
        assert!(dependent(&rmw, &ev(e(1), Access::RmwWeak)));
        // RMWs of other entries: each pushes into its own buffer and commits only a buffered
        // RMW of its own entry.
        assert!(!dependent(&rmw, &ev(e(2), Access::RmwWeak)));
        assert!(!dependent(&rmw, &ev(e(2), Access::Write)));
        assert!(!dependent(
            &ev(e(1), Access::Rmw),
            &ev(Obj::STORE_BUFFERS, Access::Read)
        ));
    }

    #[test]
    fn history_boundaries_conflict_only_invocation_against_response() {
        let h = Obj::Hist(0b011);
        let (inv, resp) = (ev(h, Access::HistInv), ev(h, Access::HistResp));
        assert!(dependent(&inv, &resp) && dependent(&resp, &inv));
        assert!(!dependent(&inv, &inv) && !dependent(&resp, &resp));
        // Operations sharing one address of their ranges; sharing none.
        assert!(dependent(&inv, &ev(Obj::Hist(0b110), Access::HistResp)));
        assert!(!dependent(&inv, &ev(Obj::Hist(0b100), Access::HistResp)));
        assert!(!dependent(&resp, &ev(h, Access::Write)));
    }

    #[test]
    fn slab_free_conflicts_with_the_objects_fields_only() {
        let base = Obj::Var(Obj::SLAB_BASE + 2 * Obj::SLAB_STRIDE);
        let field = Obj::Var(Obj::SLAB_BASE + 2 * Obj::SLAB_STRIDE + 3);
        let other = Obj::Var(Obj::SLAB_BASE + 3 * Obj::SLAB_STRIDE + 3);
        assert!(dependent(
            &ev(base, Access::ObjFree),
            &ev(field, Access::Read)
        ));
        assert!(dependent(
            &ev(field, Access::Rmw),
            &ev(base, Access::ObjFree)
        ));
        assert!(!dependent(
            &ev(base, Access::ObjFree),
            &ev(other, Access::Read)
        ));
        assert!(!dependent(
            &ev(base, Access::ObjFree),
            &ev(Obj::Var(3), Access::Write)
        ));
    }

    #[test]
    fn relation() {
        let e = Obj::Entry { pfn: 5, idx: 1 };
        assert!(!dependent(&ev(e, Access::Read), &ev(e, Access::Read)));
        assert!(dependent(&ev(e, Access::Read), &ev(e, Access::Write)));
        assert!(!dependent(
            &ev(e, Access::Write),
            &ev(Obj::Entry { pfn: 5, idx: 2 }, Access::Write)
        ));
        assert!(dependent(
            &ev(Obj::Frame { pfn: 5, order: 0 }, Access::FrameFree),
            &ev(e, Access::Read)
        ));
        assert!(dependent(
            &ev(Obj::Frame { pfn: 5, order: 0 }, Access::FrameFree),
            &ev(Obj::Lock(Obj::ptl_id(5)), Access::Acquire)
        ));
        assert!(!dependent(
            &ev(Obj::Frame { pfn: 6, order: 0 }, Access::FrameFree),
            &ev(e, Access::Read)
        ));
        // Freeing a large folio conflicts with accesses to its tail pages.
        assert!(dependent(
            &ev(Obj::Frame { pfn: 4, order: 2 }, Access::FrameFree),
            &ev(Obj::Data(7), Access::Read)
        ));
        assert!(!dependent(
            &ev(Obj::Frame { pfn: 4, order: 2 }, Access::FrameFree),
            &ev(Obj::Data(8), Access::Read)
        ));
        assert!(dependent(
            &ev(Obj::Frame { pfn: 6, order: 0 }, Access::FrameFree),
            &ev(Obj::Alloc, Access::FrameAlloc)
        ));
        assert!(dependent(
            &ev(Obj::Irq(0), Access::IpiSync),
            &ev(Obj::Irq(1), Access::IrqDisable)
        ));
        assert!(dependent(
            &ev(Obj::Tlb(0), Access::Flush),
            &ev(Obj::Tlb(1), Access::Fill)
        ));
        assert!(!dependent(
            &ev(Obj::Tlb(0), Access::Fill),
            &ev(Obj::Tlb(1), Access::Fill)
        ));
        // A TLB scan reads TLBs: it orders against fills, flushes and IRQ enables (which may
        // run a deferred flush), not against lookups or IRQ disables.
        let scan = ev(Obj::Tlb(0), Access::TlbScan);
        assert!(dependent(&scan, &ev(Obj::Tlb(1), Access::Fill)));
        assert!(!dependent(&scan, &ev(Obj::Tlb(1), Access::WalkFill)));
        assert!(dependent(
            &ev(Obj::Tlb(0), Access::Flush),
            &ev(Obj::Tlb(1), Access::WalkFill)
        ));
        assert!(dependent(&scan, &ev(Obj::Tlb(1), Access::Flush)));
        assert!(dependent(&scan, &ev(Obj::Irq(1), Access::IrqEnable)));
        assert!(!dependent(&scan, &ev(Obj::Tlb(1), Access::Read)));
        assert!(!dependent(&scan, &ev(Obj::Irq(1), Access::IrqDisable)));
        assert!(!dependent(&scan, &ev(Obj::Tlb(1), Access::TlbScan)));
        assert!(!dependent(&scan, &ev(e, Access::Write)));
        assert!(dependent(
            &ev(Obj::Rcu, Access::GracePeriod),
            &ev(Obj::Irq(1), Access::IrqEnable)
        ));
        assert!(!dependent(
            &ev(Obj::Rcu, Access::RcuLock),
            &ev(Obj::Rcu, Access::RcuUnlock)
        ));
        // A callback step, as the explorer gives it (`Machine::footprint`), orders only against
        // the reader boundaries of the CPUs a pending callback waits for; `call_rcu` and a
        // callback step as announced order against every boundary.
        let cb = ev(Obj::RcuReaders(0b10), Access::RcuCallback);
        assert!(dependent(
            &cb,
            &ev(Obj::RcuReaders(0b10), Access::RcuUnlock)
        ));
        assert!(dependent(&cb, &ev(Obj::Irq(1), Access::IrqEnable)));
        assert!(!dependent(&cb, &ev(Obj::RcuReaders(0b01), Access::RcuLock)));
        assert!(!dependent(&cb, &ev(Obj::Irq(0), Access::IrqDisable)));
        assert!(dependent(&cb, &ev(Obj::Rcu, Access::CallRcu)));
        // With a callback ready, a step runs that callback, queued before any `call_rcu` still to
        // come: it commutes with every `call_rcu` but the one that queued it (as the explorer
        // gives them, `RcuCall`). It still orders against other callback steps and grace periods,
        // and against the boundaries of the CPUs that callbacks ahead of it wait for.
        let ready = ev(
            Obj::RcuReady {
                readers: 0b10,
                seq: 3,
            },
            Access::RcuCallback,
        );
        assert!(!dependent(&ready, &ev(Obj::RcuCall(4), Access::CallRcu)));
        assert!(!dependent(&ev(Obj::RcuCall(2), Access::CallRcu), &ready));
        assert!(dependent(&ready, &ev(Obj::RcuCall(3), Access::CallRcu)));
        assert!(dependent(&ev(Obj::RcuCall(3), Access::CallRcu), &ready));
        assert!(dependent(&ready, &ev(Obj::Rcu, Access::CallRcu)));
        assert!(dependent(&cb, &ev(Obj::RcuCall(3), Access::CallRcu)));
        // The step that runs callback 3 cannot come before the call_rcu that queued it: no race
        // to reverse, though they stay ordered.
        assert!(enables(&ev(Obj::RcuCall(3), Access::CallRcu), &ready, true));
        assert!(!enables(
            &ev(Obj::RcuCall(4), Access::CallRcu),
            &ready,
            true
        ));
        assert!(!enables(
            &ready,
            &ev(Obj::RcuCall(3), Access::CallRcu),
            true
        ));
        assert!(!enables(&ev(Obj::Rcu, Access::CallRcu), &cb, true));
        // A wait for a lock cannot come before the release of the hold that blocks it; a
        // trylock, a non-blocking acquire (`__folio_set_locked` of a new folio) or another
        // lock's release can.
        let l = |id, a| ev(Obj::Lock(id), a);
        assert!(enables(
            &l(3, Access::Release),
            &l(3, Access::AcquireShared),
            true
        ));
        assert!(enables(
            &l(3, Access::ReleaseShared),
            &l(3, Access::Acquire),
            true
        ));
        assert!(enables(
            &l(3, Access::Downgrade),
            &l(3, Access::AcquireShared),
            true
        ));
        assert!(!enables(
            &l(3, Access::Release),
            &l(3, Access::TryAcquire),
            true
        ));
        assert!(!enables(
            &l(3, Access::Release),
            &l(3, Access::Acquire),
            false
        ));
        assert!(!enables(
            &l(3, Access::Release),
            &l(4, Access::Acquire),
            true
        ));
        assert!(!enables(
            &l(3, Access::Acquire),
            &l(3, Access::Acquire),
            true
        ));
        assert!(dependent(&ready, &ev(Obj::Rcu, Access::RcuCallback)));
        assert!(dependent(&ready, &ev(Obj::Rcu, Access::GracePeriod)));
        assert!(dependent(&ready, &ev(Obj::Irq(1), Access::IrqEnable)));
        assert!(!dependent(
            &ready,
            &ev(Obj::RcuReaders(0b01), Access::RcuUnlock)
        ));
        for gp in [
            ev(Obj::Rcu, Access::RcuCallback),
            ev(Obj::Rcu, Access::CallRcu),
            ev(Obj::Rcu, Access::GracePeriod),
        ] {
            assert!(dependent(&gp, &ev(Obj::RcuReaders(0b01), Access::RcuLock)));
            assert!(dependent(&gp, &ev(Obj::Irq(0), Access::IrqDisable)));
        }
        // Field groups of one struct page: a reference update commutes with a mapcount update,
        // not with another reference update or with an access to every field; a free of the
        // frame conflicts with all of them.
        let page = |parts, a| ev(Obj::Page { pfn: 5, parts }, a);
        let refs = page(Obj::PAGE_REF, Access::Rmw);
        assert!(!dependent(&refs, &page(Obj::PAGE_MAP, Access::Rmw)));
        assert!(dependent(&refs, &page(Obj::PAGE_REF, Access::Read)));
        assert!(dependent(&refs, &ev(Obj::page(5), Access::Read)));
        assert!(dependent(&page(Obj::PAGE_ALL, Access::Write), &refs));
        assert!(!dependent(&refs, &ev(Obj::page(6), Access::Write)));
        assert!(!dependent(
            &page(Obj::PAGE_MAP, Access::Read),
            &ev(Obj::page(5), Access::Read)
        ));
        assert!(dependent(
            &refs,
            &ev(Obj::Frame { pfn: 5, order: 0 }, Access::FrameFree)
        ));
        // Frees of disjoint blocks commute; overlapping ones (either way round) do not.
        let free = |pfn, order| ev(Obj::Frame { pfn, order }, Access::FrameFree);
        assert!(!dependent(&free(4, 0), &free(5, 0)));
        assert!(dependent(&free(4, 2), &free(6, 0)));
        assert!(dependent(&free(6, 0), &free(4, 2)));
        assert!(dependent(&free(5, 0), &free(5, 0)));
        // An allocation as the explorer gives it depends only on frees in the range it scans;
        // as announced, on every free.
        let alloc = ev(Obj::AllocRange { from: 8, to: 12 }, Access::FrameAlloc);
        assert!(dependent(&alloc, &free(11, 0)));
        assert!(dependent(&free(4, 3), &alloc));
        assert!(!dependent(&alloc, &free(12, 0)));
        assert!(!dependent(&free(4, 2), &alloc));
        assert!(dependent(&ev(Obj::Alloc, Access::FrameAlloc), &free(12, 0)));
        assert!(dependent(&alloc, &ev(Obj::Alloc, Access::FrameAlloc)));
        let l = Obj::Lock(3);
        assert!(!dependent(
            &ev(l, Access::AcquireShared),
            &ev(l, Access::ReleaseShared)
        ));
        assert!(dependent(
            &ev(l, Access::AcquireShared),
            &ev(l, Access::WriterWait)
        ));
    }

    #[test]
    fn shootdowns_and_tlb_scans() {
        let sd = |vpns, frames, blind| {
            ev(
                Obj::Shootdown {
                    vpns,
                    frames,
                    blind,
                },
                Access::Flush,
            )
        };
        // Blind shootdowns of disjoint pages commute; common pages, or a target choice by TLB
        // contents, order them.
        assert!(!dependent(&sd(0b01, 1, true), &sd(0b10, 1, true)));
        assert!(dependent(&sd(0b11, 0, true), &sd(0b10, 0, true)));
        assert!(dependent(&sd(0b01, 0, false), &sd(0b10, 0, true)));
        // A scan for frames conflicts with a shootdown only if it drops a translation to one.
        let scan = ev(Obj::TlbScanFrames(0b100), Access::TlbScan);
        assert!(!dependent(&scan, &sd(u32::MAX, 0b011, true)));
        assert!(dependent(&scan, &sd(1, 0b100, true)));
        // Any other scan, or a shootdown's wait, as before.
        assert!(dependent(
            &ev(Obj::Tlb(2), Access::TlbScan),
            &sd(1, 0, true)
        ));
        assert!(dependent(&scan, &ev(Obj::Tlb(1), Access::Flush)));
        assert!(!dependent(&scan, &ev(Obj::Tlb(1), Access::TlbScan)));
        // A fill, likewise by the frames it adds, replaces or evicts.
        let fill = |frames| ev(Obj::TlbFill { cpu: 1, frames }, Access::Fill);
        assert!(!dependent(&scan, &fill(0b011)));
        assert!(dependent(&scan, &fill(0b110)));
        assert!(dependent(&sd(1, 0, true), &fill(0)));
        // An IRQ enable touches the TLB only with shootdowns queued.
        let on = |flushes| ev(Obj::IrqOn { cpu: 1, flushes }, Access::IrqEnable);
        assert!(!dependent(&scan, &on(false)));
        assert!(dependent(&scan, &on(true)));
        assert!(dependent(&sd(1, 0, true), &on(false)));
        assert!(dependent(
            &ev(Obj::IpiWait(0b10), Access::Flush),
            &on(false)
        ));
        assert!(!dependent(
            &ev(Obj::IpiWait(0b01), Access::Flush),
            &on(false)
        ));
        // Shootdowns still conflict with every CPU's TLB and IRQ state.
        assert!(dependent(&sd(1, 0, true), &ev(Obj::Tlb(3), Access::Read)));
        assert!(dependent(
            &sd(1, 0, true),
            &ev(Obj::Irq(3), Access::IrqDisable)
        ));
    }

    #[test]
    fn typesafe_free_commutes_with_rcu_readers_of_its_fields() {
        let base = Obj::SLAB_BASE | Obj::SLAB_TYPESAFE;
        let free = ev(Obj::Var(base), Access::ObjFree);
        let reader = ev(Obj::Var(base | 1 | Obj::RCU_READER), Access::Add);
        let other = ev(Obj::Var(base | 1), Access::Read);
        assert!(Obj::Var(base | 1).is_typesafe_field());
        assert!(!Obj::Var(base).is_typesafe_field());
        assert!(!Obj::Var(Obj::SLAB_BASE | 1).is_typesafe_field());
        assert!(!dependent(&free, &reader));
        assert!(dependent(&free, &other));
        // Reuse still conflicts with the reader; the mark does not hide the field otherwise.
        assert!(dependent(&ev(Obj::Var(base), Access::ObjAlloc), &reader));
        assert!(dependent(&reader, &ev(Obj::Var(base | 1), Access::Write)));
        assert!(!dependent(&reader, &ev(Obj::Var(base | 2), Access::Write)));
        assert_eq!(Obj::Var(base | 1 | Obj::RCU_READER).slab_base(), Some(base));
    }
}
