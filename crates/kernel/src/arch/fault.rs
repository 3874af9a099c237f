//! User memory access on a simulated x86-64 CPU (`arch/x86/mm/fault.c`, and the MMU): a load or
//! store looks up the CPU's TLB, then walks the page tables in hardware (locklessly, using and
//! filling the paging-structure cache, setting A/D atomically), and faults into the kernel on a
//! miss. A TLB hit on a page that was freed since is a stale translation.

use crate::arch::pgtable::Entry;
use crate::mm::memory::do_user_addr_fault;
use crate::mm::pgtable::{self, EntryPtr};
use crate::mm::types::MmStruct;
use crate::{Ctx, Errno};
use mmcheck_platform::{FrameRef, TlbEntry, ViolationKind, WalkCacheEntry};

/// The frame backing `vpn` under translation `e`.
fn frame_of(cx: Ctx<'_>, e: &TlbEntry, vpn: u64) -> FrameRef {
    let off = (vpn - (e.vpn >> e.shift << e.shift)) as u32;
    cx.cpu.frame_ref(e.page.pfn + off)
}

/// Perform the access through a translation; `None` if it does not allow it.
fn access(cx: Ctx<'_>, e: &TlbEntry, vpn: u64, store: Option<u64>) -> Option<u64> {
    if store.is_some() && !e.writable {
        return None;
    }
    if !cx.k.machine.frames.is_live(e.page) {
        cx.cpu.report(
            ViolationKind::StaleTranslation,
            format!(
                "access to vpn {vpn:#x} through a TLB entry for freed pfn {} gen {}",
                e.page.pfn, e.page.gen
            ),
        );
    }
    let page = frame_of(cx, e, vpn);
    Some(match store {
        Some(v) => {
            cx.cpu.data_write(page, v);
            v
        }
        None => cx.cpu.data_read(page),
    })
}

/// Set A (and D for a write) on a leaf the walker is using, as the hardware does: atomically,
/// racing with software that holds the PTL. False if the entry changed under the walk.
fn set_ad(cx: Ctx<'_>, p: EntryPtr, v: Entry, write: bool) -> bool {
    let want = v.with(Entry::ACCESSED | if write { Entry::DIRTY } else { 0 });
    want == v || p.cmpxchg_hw(cx, v, want).is_ok()
}

/// Whether the translation a walk caches lets a later store through without another walk. x86
/// caches the dirty bit with the translation: a store through an entry cached clean walks the
/// tables again to set D, and faults if the PTE is no longer present (SDM 4.8). `try_to_unmap_one`
/// relies on it to discard a clean lazyfree page whose flush it deferred. The model caches a
/// clean writable leaf as read-only, which makes the next store walk.
fn tlb_writable(e: Entry, write: bool) -> bool {
    e.write() && (write || e.dirty())
}

/// The hardware page walk. Returns the translation it filled, or `None` for a fault.
///
/// It starts from the lowest table the paging-structure cache holds for the address (a cached
/// PTE-table pointer skips the upper levels, a cached PMD-table pointer the PGD and PUD, ...), and
/// caches every table it went through below the top.
fn hw_walk(cx: Ctx<'_>, mm: &MmStruct, addr: u64, write: bool) -> Option<TlbEntry> {
    let g = cx.geo();
    let vpn = addr >> g.page_shift;
    let mut p = match cx.cpu.walk_cache_lowest(mm.id, vpn, g.bits, g.levels) {
        Some((table, level)) => EntryPtr {
            table,
            idx: g.index(addr, level),
            level,
        },
        None => pgtable::pgd_offset(cx, mm, addr),
    };
    // One cached table per level below the top (five levels at most): no allocation.
    let mut filled = [None; 4];
    let mut nr_filled = 0;
    let leaf = loop {
        let e = p.get(cx);
        if p.level == 1 {
            if !e.hw_present() || (write && !e.write()) || !set_ad(cx, p, e, write) {
                break None;
            }
            break Some(TlbEntry {
                mm: mm.id,
                vpn,
                shift: 0,
                page: cx.cpu.frame_ref(e.pfn()),
                writable: tlb_writable(e, write),
            });
        }
        if !e.hw_present() {
            break None;
        }
        if p.level == 2 && e.huge_leaf() {
            if write && !e.write() || !set_ad(cx, p, e, write) {
                break None;
            }
            break Some(TlbEntry {
                mm: mm.id,
                vpn,
                shift: g.bits,
                page: cx.cpu.frame_ref(e.pfn()),
                writable: tlb_writable(e, write),
            });
        }
        p = pgtable::entry_below(cx, e, p.level, addr);
        let table_shift = (g.bits * p.level).min(63);
        filled[nr_filled] = Some(WalkCacheEntry {
            mm: mm.id,
            key: vpn >> table_shift,
            table_shift,
            table: p.table,
        });
        nr_filled += 1;
    };
    // Paging-structure entries are cached whether or not the walk ends in a translation.
    cx.cpu
        .walk_cache_fill_all(filled[..nr_filled].iter().flatten());
    let te = leaf?;
    cx.cpu.tlb_fill(te);
    Some(te)
}

/// A user access to `addr` in `mm` from this CPU: TLB, hardware walk, fault, retry.
fn user_access(cx: Ctx<'_>, mm: &MmStruct, addr: u64, store: Option<u64>) -> Result<u64, Errno> {
    let vpn = addr >> cx.geo().page_shift;
    if cx.cpu.loaded_mm() != mm.id {
        cx.cpu.switch_mm(mm.id);
    }
    for _ in 0..1000 {
        {
            // TLB lookup, walk and access form one instruction: no IPI lands in between.
            let _hw = cx.cpu.hw_walk_begin();
            if let Some(e) = cx.cpu.tlb_lookup(mm.id, vpn) {
                if let Some(v) = access(cx, &e, vpn, store) {
                    return Ok(v);
                }
            }
            if let Some(e) = hw_walk(cx, mm, addr, store.is_some()) {
                if let Some(v) = access(cx, &e, vpn, store) {
                    return Ok(v);
                }
            }
        }
        do_user_addr_fault(cx, mm, addr, store.is_some())?;
        cx.rcu_quiescent();
    }
    cx.cpu.report(
        ViolationKind::Assertion,
        format!("no forward progress on a user access to {addr:#x}"),
    );
    Err(Errno::Eagain)
}

/// A user load of the word at `addr`.
pub fn user_load(cx: Ctx<'_>, mm: &MmStruct, addr: u64) -> Result<u64, Errno> {
    let _f = cx.cpu.enter("user_load");
    user_access(cx, mm, addr, None)
}

/// A user store of `v` to the word at `addr`.
pub fn user_store(cx: Ctx<'_>, mm: &MmStruct, addr: u64, v: u64) -> Result<(), Errno> {
    let _f = cx.cpu.enter("user_store");
    user_access(cx, mm, addr, Some(v)).map(|_| ())
}
