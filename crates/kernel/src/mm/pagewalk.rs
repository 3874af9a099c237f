//! `folio_walk_start` / `folio_walk_end` (`mm/pagewalk.c`, late 2025), and the 2026 FW_VMA_LOCKED
//! proposal (Rik van Riel, June 2026, v1 and v2) that lets callers hold only the per-VMA lock.
//!
//! The walk reads the upper levels locklessly, takes the PMD lock for a huge or non-present PMD,
//! and otherwise `pte_offset_map_lock`s the PTE table. It returns with the PTL (or PMD lock) held,
//! so the caller may use the page under the lock, or take a reference and use it after
//! `folio_walk_end`.
//!
//! `folio_walk.design` selects the proposal's lockless walks instead (GUP-fast's pattern,
//! `mm/gup.c` `gup_fast_pte_range`): read the PMD locklessly, map the table through that value,
//! read the PTE, `folio_try_get` the folio, optionally recheck the PMD and the PTE; no PTL and no
//! `pmd_same` loop. v1 holds `rcu_read_lock` across it, v2 disables IRQs. The result then holds a
//! folio reference instead of a lock, and `folio_walk_end` drops it.

use crate::mm::folio;
use crate::mm::folio::page_folio;
use crate::mm::memory::vm_normal_page;
use crate::mm::pgtable::{self, EntryPtr, PteLocked};
use crate::mm::types::MmStruct;
use crate::protocol::FolioWalkDesign;
use crate::Ctx;
use mmcheck_platform::{FrameRef, IrqGuard, RcuGuard, SpinGuard, ViolationKind};

/// A successful walk: the page and folio, with the lock that keeps them mapped.
pub struct FolioWalk<'a> {
    pub page: FrameRef,
    pub folio: FrameRef,
    pub addr: u64,
    /// PTE-level result: PTL held and table mapped (RCU).
    _pte: Option<PteLocked<'a>>,
    /// PMD-level result: PMD lock held.
    _pmd: Option<SpinGuard<'a>>,
    /// Lockless result: a folio reference, and the RCU read side (v1) or IRQs off (v2) the
    /// walk ran under, kept until `folio_walk_end`.
    lockless: Option<Lockless<'a>>,
}

/// What a lockless walk holds until `folio_walk_end`.
struct Lockless<'a> {
    _rcu: Option<RcuGuard<'a>>,
    _irq: Option<IrqGuard<'a>>,
}

impl<'a> FolioWalk<'a> {
    /// A lockless walk's result: it holds a folio reference and its RCU or IRQ-off section.
    fn lockless(page: FrameRef, folio: FrameRef, addr: u64, l: Lockless<'a>) -> Self {
        FolioWalk {
            page,
            folio,
            addr,
            _pte: None,
            _pmd: None,
            lockless: Some(l),
        }
    }

    /// True if the walk holds a lock (PTL or PMD lock) that keeps the entry in place.
    pub fn locked(&self) -> bool {
        self.lockless.is_none()
    }
}

impl FolioWalk<'_> {
    /// The walker-result oracle for locked results: while the lock is held the page must still be
    /// mapped at the address, in the live tables.
    pub fn check_still_mapped(&self, cx: Ctx<'_>, mm: &MmStruct) {
        // LOCKING: with the PTL (or PMD lock) held nobody changes the entry or detaches its
        // table, so an announced walk reads what the kernel guarantees at this instant.
        if pgtable::read_translation(cx, mm, self.addr).0 != Some(self.page.pfn) {
            cx.cpu.report(
                ViolationKind::WalkerResult,
                format!(
                    "folio_walk result pfn {} is no longer mapped at {:#x} while its lock is held",
                    self.page.pfn, self.addr
                ),
            );
        }
    }
}

/// `folio_walk_start`. The caller holds the mmap lock or (FW_VMA_LOCKED) the VMA read lock.
pub fn folio_walk_start<'a>(cx: Ctx<'a>, mm: &'a MmStruct, addr: u64) -> Option<FolioWalk<'a>> {
    let _f = cx.cpu.enter("folio_walk_start");
    if cx.proto().folio_walk_design != FolioWalkDesign::Ptl {
        return folio_walk_lockless(cx, mm, addr);
    }
    let g = cx.geo();
    let pmdp = pgtable::pmd_off(cx, mm, addr)?;
    let pmd = pmdp.get(cx); // pmdp_get_lockless
    if pmd.is_none() {
        return None;
    }
    if !pmd.present() || pmd.huge_leaf() {
        let ptl = pgtable::pmd_lock(cx, mm, pmdp);
        let pmd = pmdp.get(cx);
        if pmd.huge_leaf() && pmd.present() && !crate::mm::huge_memory::is_huge_zero_pmd(cx, pmd) {
            let folio = cx.cpu.frame_ref(pmd.pfn());
            let page =
                cx.k.machine
                    .frames
                    .current(pmd.pfn() + g.index(addr, 1) as u32);
            return Some(FolioWalk {
                page,
                folio,
                addr,
                _pte: None,
                _pmd: Some(ptl),
                lockless: None,
            });
        }
        if !pmd.is_table() {
            return None;
        }
        drop(ptl);
    }
    let l = pgtable::pte_offset_map_lock(cx, mm, pmdp)?;
    let pte = l.pte(g.index(addr, 1)).get(cx);
    if !pte.present() {
        return None;
    }
    let page = vm_normal_page(cx, pte)?;
    let folio = page_folio(cx, page);
    Some(FolioWalk {
        page: cx.cpu.frame_ref(page),
        folio,
        addr,
        _pte: Some(l),
        _pmd: None,
        lockless: None,
    })
}

/// The FW_VMA_LOCKED lockless walk (v1: RCU alone; v2: IRQs off), GUP-fast's pattern: every
/// level read once without a lock, the table mapped through the PMD value read, a speculative
/// `folio_try_get`, then (with `folio_walk.recheck`) the PMD and PTE rechecks.
///
/// The walker-result oracle: the page returned must be the page the PTE named when the walk read
/// it. A page named by a PTE, in an attached table or in a detached one not yet emptied, is not
/// freed until that entry is cleared, so the generation of the frame when the PTE was read is
/// fixed by that read; the oracle notes it there without announcing it (a ghost read). If the
/// frame was freed and reallocated before `folio_try_get` took its reference, the walk returns
/// another owner's page: it was never this address's memory during the call.
fn folio_walk_lockless<'a>(cx: Ctx<'a>, mm: &'a MmStruct, addr: u64) -> Option<FolioWalk<'a>> {
    let g = cx.geo();
    let design = cx.proto().folio_walk_design;
    let recheck = cx.proto().folio_walk_recheck;
    let (rcu, irq) = match design {
        FolioWalkDesign::LocklessIrqoff => (None, Some(cx.cpu.local_irq_disable())),
        _ => (Some(cx.cpu.rcu_read_lock()), None),
    };
    let lockless = Lockless {
        _rcu: rcu,
        _irq: irq,
    };
    let pmdp = pgtable::pmd_off(cx, mm, addr)?;
    let pmd = pmdp.get(cx); // pmdp_get_lockless
    if !pmd.present() {
        return None;
    }
    if pmd.huge_leaf() {
        // Ghost, as for a PTE below: the THP this PMD names, fixed by the read above.
        let named = cx.k.machine.frames.current(pmd.pfn());
        if crate::mm::huge_memory::is_huge_zero_pmd(cx, pmd) {
            return None;
        }
        let f = cx.cpu.frame_ref(pmd.pfn());
        if !folio::folio_try_get(cx, f) {
            return None;
        }
        if recheck && !cx.cpu.recheck("pmd_same", pmdp.get(cx) == pmd) {
            folio::folio_put(cx, f);
            return None;
        }
        if f != named {
            stale_result(cx, f.pfn, addr);
        }
        let page = cx.cpu.frame_ref(pmd.pfn() + g.index(addr, 1) as u32);
        return Some(FolioWalk::lockless(page, f, addr, lockless));
    }
    // Map the table through the value read (no pmd_same loop).
    let ptep = EntryPtr {
        table: cx.cpu.frame_ref(pmd.pfn()),
        idx: g.index(addr, 1),
        level: 1,
    };
    let pte = ptep.get(cx); // ptep_get_lockless
    if !pte.present() {
        return None;
    }
    // Ghost: the generation of the frame this PTE names, fixed by the read above.
    let named = cx.k.machine.frames.current(pte.pfn());
    let page = vm_normal_page(cx, pte)?;
    let f = page_folio(cx, page);
    if !folio::folio_try_get(cx, f) {
        return None;
    }
    if recheck
        && !cx
            .cpu
            .recheck("pte_same", pmdp.get(cx) == pmd && ptep.get(cx) == pte)
    {
        folio::folio_put(cx, f);
        return None;
    }
    let page = cx.cpu.frame_ref(page);
    if page != named {
        stale_result(cx, page.pfn, addr);
    }
    Some(FolioWalk::lockless(page, f, addr, lockless))
}

/// The walker-result oracle of a lockless walk: the frame it returns is not the one its entry
/// named when read.
fn stale_result(cx: Ctx<'_>, pfn: u32, addr: u64) {
    cx.cpu.report(
        ViolationKind::WalkerResult,
        format!(
            "folio_walk_start: returned pfn {pfn} for {addr:#x}, but the page its entry named was \
             freed before folio_try_get and the frame reallocated: never this address's memory \
             during the walk"
        ),
    );
}

/// `folio_walk_end`: drop the lock (and the mapping of the table).
pub fn folio_walk_end(cx: Ctx<'_>, fw: FolioWalk<'_>) {
    let _f = cx.cpu.enter("folio_walk_end");
    let folio = fw.folio;
    let lockless = fw.lockless.is_some();
    drop(fw);
    if lockless {
        folio::folio_put(cx, folio);
    }
}
