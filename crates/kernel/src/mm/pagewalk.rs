//! `folio_walk_start` / `folio_walk_end` (`mm/pagewalk.c`, late 2025), and the 2026 FW_VMA_LOCKED
//! proposal (Rik van Riel, June 2026, v1 and v2) that lets callers hold only the per-VMA lock.
//!
//! The walk reads the upper levels locklessly, takes the PMD lock for a huge or non-present PMD,
//! and otherwise `pte_offset_map_lock`s the PTE table. It returns with the PTL (or PMD lock) held,
//! so the caller may use the page under the lock, or take a reference and use it after
//! `folio_walk_end`.

use crate::mm::folio::page_folio;
use crate::mm::memory::vm_normal_page;
use crate::mm::pgtable::{self, PteLocked};
use crate::mm::types::MmStruct;
use crate::Ctx;
use mmcheck_platform::{FrameRef, SpinGuard, ViolationKind};

/// A successful walk: the page and folio, with the lock that keeps them mapped.
pub struct FolioWalk<'a> {
    pub page: FrameRef,
    pub folio: FrameRef,
    pub addr: u64,
    /// PTE-level result: PTL held and table mapped (RCU).
    _pte: Option<PteLocked<'a>>,
    /// PMD-level result: PMD lock held.
    _pmd: Option<SpinGuard<'a>>,
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
    let g = cx.geo();
    let mut p = pgtable::pgd_offset(cx, mm, addr);
    while p.level > 2 {
        let e = p.get(cx);
        if !e.is_table() {
            return None;
        }
        p = pgtable::entry_below(cx, e, p.level, addr);
    }
    let pmdp = p;
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
    })
}

/// `folio_walk_end`: drop the lock (and the mapping of the table).
pub fn folio_walk_end(cx: Ctx<'_>, fw: FolioWalk<'_>) {
    let _f = cx.cpu.enter("folio_walk_end");
    drop(fw);
}
