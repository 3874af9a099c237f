//! `madvise(MADV_COLLAPSE)` on anonymous memory (`mm/madvise.c` `madvise_walk_vmas` →
//! `mm/khugepaged.c` `madvise_collapse` → `hpage_collapse_scan_pmd` → `collapse_huge_page`,
//! ≈6.18), as the host kernel behaves:
//!
//! - the VMAs of the range are visited in order; a hole makes the result `ENOMEM` (after the
//!   mapped parts are done), the first VMA that fails stops the walk with its error;
//! - a VMA is eligible (`thp_vma_allowable_order` without sysfs enforcement) if it is anonymous,
//!   private, not `VM_NOHUGEPAGE`, already has an anon_vma (a VMA never written to is refused),
//!   and holds at least one aligned PMD range; else `EINVAL`. `VM_HUGEPAGE` is not needed;
//! - each whole aligned PMD range of the VMA's part of the range (`hstart`..`hend`) is collapsed:
//!   no PMD table at all (`SCAN_PMD_NULL`) is skipped, a huge PMD (`SCAN_PMD_MAPPED`) counts as
//!   done, a none PMD (`SCAN_PMD_NONE`) stops the VMA, a PTE table goes to `collapse_huge_page`;
//!   results in the whitelist (`SCAN_PMD_NULL`, `SCAN_PTE_NON_PRESENT`, `SCAN_PAGE_RO`,
//!   `SCAN_PAGE_NULL`, `SCAN_PAGE_COUNT`, `SCAN_PAGE_LOCK`, ...) go on to the next PMD, any other
//!   stops; the VMA succeeds iff every PMD range was collapsed (`thps == (hend - hstart) >>
//!   HPAGE_PMD_SHIFT`, unsigned: a range inside one PMD range that does not start on its boundary
//!   wraps and fails with the last error, `SCAN_FAIL` → `EINVAL`);
//! - the error is `madvise_collapse_errno(last_fail)`: `ENOMEM` for an allocation failure, `EBUSY`
//!   for `SCAN_EXCEED_NONE_PTE`, `EAGAIN` for page count/lock/LRU, else `EINVAL`.

use crate::mm::khugepaged::{collapse_huge_page, CollapseFail};
use crate::mm::pgtable;
use crate::mm::types::{MmStruct, VmFlags, Vma};
use crate::Ctx;

/// Why `madvise(MADV_COLLAPSE)` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MadvCollapseError {
    #[error("ENOMEM")]
    Enomem,
    #[error("EINVAL")]
    Einval,
    #[error("EBUSY")]
    Ebusy,
    #[error("EAGAIN")]
    Eagain,
}

impl MadvCollapseError {
    /// The errno value (x86-64 numbering).
    pub fn errno(self) -> i32 {
        match self {
            MadvCollapseError::Enomem => 12,
            MadvCollapseError::Einval => 22,
            MadvCollapseError::Ebusy => 16,
            MadvCollapseError::Eagain => 11,
        }
    }
}

/// The `enum scan_result` values MADV_COLLAPSE tells apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scan {
    Succeed,
    PmdMapped,
    /// No PMD table (`mm_find_pmd` is NULL), or the PTE table went away: whitelisted.
    PmdNull,
    /// The PMD entry is none: not whitelisted.
    PmdNone,
    /// Any other `collapse_huge_page` result.
    Collapse(CollapseFail),
    /// The initial `last_fail`.
    Fail,
}

impl Scan {
    /// `madvise_collapse`'s switch: go on to the next PMD range?
    fn whitelisted(self) -> bool {
        match self {
            Scan::PmdNull => true,
            Scan::Collapse(f) => matches!(
                f,
                CollapseFail::NoPteTable
                    | CollapseFail::PageNotPresent
                    | CollapseFail::PageLocked
                    | CollapseFail::PageCount
                    | CollapseFail::PageRo
            ),
            _ => false,
        }
    }

    /// `madvise_collapse_errno`.
    fn errno(self) -> MadvCollapseError {
        match self {
            Scan::Collapse(CollapseFail::AllocFailed) => MadvCollapseError::Enomem,
            Scan::Collapse(CollapseFail::ExceedNone) => MadvCollapseError::Ebusy,
            Scan::Collapse(CollapseFail::PageLocked | CollapseFail::PageCount) => {
                MadvCollapseError::Eagain
            }
            _ => MadvCollapseError::Einval,
        }
    }
}

/// `thp_vma_allowable_order(vma, vm_flags, 0, PMD_ORDER)` for an anonymous VMA, as MADV_COLLAPSE
/// asks it: no sysfs enforcement, an anon_vma required outside the fault path, and the VMA must
/// hold an aligned PMD range (the check at `vm_end - PMD_SIZE`).
fn collapse_allowed(cx: Ctx<'_>, vma: &Vma) -> bool {
    let g = cx.geo();
    let pmd = g.pmd_size();
    let fits = vma.end(cx) >= pmd && {
        let haddr = (vma.end(cx) - pmd) & g.pmd_mask();
        haddr >= vma.start(cx) && haddr + pmd <= vma.end(cx)
    };
    vma.is_anonymous()
        && !vma.is_shared(cx)
        && !vma.flags(cx).has(VmFlags::NOHUGEPAGE)
        && vma.anon_vma(cx).is_some()
        && fits
}

/// `hpage_collapse_scan_pmd` + `collapse_huge_page` for the PMD range at `addr`.
fn collapse_pmd(cx: Ctx<'_>, mm: &MmStruct, addr: u64) -> Scan {
    let state = {
        let _r = mm.mmap_lock.read_lock(cx.cpu);
        match pgtable::pmd_off(cx, mm, addr) {
            None => Scan::PmdNull,
            Some(p) => {
                let v = p.get(cx);
                if v.is_none() {
                    Scan::PmdNone
                } else if v.huge_leaf() && v.present() {
                    Scan::PmdMapped
                } else if v.is_table() {
                    Scan::Succeed
                } else {
                    Scan::PmdNull
                }
            }
        }
    };
    if state != Scan::Succeed {
        return state;
    }
    match collapse_huge_page(cx, mm, addr, cx.geo().pmd_order()) {
        Ok(()) => Scan::Succeed,
        Err(e) => Scan::Collapse(e),
    }
}

/// `madvise_collapse` for the part `[start, end)` of one VMA.
fn madvise_collapse_vma(
    cx: Ctx<'_>,
    mm: &MmStruct,
    vma: &Vma,
    start: u64,
    end: u64,
) -> Result<(), MadvCollapseError> {
    let _f = cx.cpu.enter("madvise_collapse");
    if !collapse_allowed(cx, vma) {
        return Err(MadvCollapseError::Einval);
    }
    let g = cx.geo();
    let pmd = g.pmd_size();
    let hstart = (start + pmd - 1) & g.pmd_mask();
    let mut hend = end & g.pmd_mask();
    let mut thps = 0u64;
    let mut last_fail = Scan::Fail;
    let mut relock = false;
    let mut addr = hstart;
    while addr < hend {
        if relock {
            // hugepage_vma_revalidate after the lock was dropped.
            let r = mm.mmap_lock.read_lock(cx.cpu);
            let v = mm.vma_lookup(cx, addr);
            drop(r);
            match v {
                Some(v)
                    if collapse_allowed(cx, &v)
                        && v.start(cx) <= addr
                        && addr + pmd <= v.end(cx) =>
                {
                    hend = hend.min(v.end(cx) & g.pmd_mask());
                }
                _ => {
                    last_fail = Scan::Fail;
                    break;
                }
            }
        }
        let r = collapse_pmd(cx, mm, addr);
        relock = matches!(r, Scan::Succeed | Scan::Collapse(_));
        match r {
            Scan::Succeed | Scan::PmdMapped => thps += 1,
            r if r.whitelisted() => last_fail = r,
            r => {
                last_fail = r;
                break;
            }
        }
        addr += pmd;
    }
    // Unsigned, as in the kernel: hstart > hend wraps and never matches.
    if thps == hend.wrapping_sub(hstart) >> g.shift(2) {
        Ok(())
    } else {
        Err(last_fail.errno())
    }
}

/// `madvise(addr, len, MADV_COLLAPSE)`.
pub fn madvise_collapse(
    cx: Ctx<'_>,
    mm: &MmStruct,
    addr: u64,
    len: u64,
) -> Result<(), MadvCollapseError> {
    let _f = cx.cpu.enter("madvise_collapse_walk");
    let ps = cx.geo().page_size();
    if !addr.is_multiple_of(ps) {
        return Err(MadvCollapseError::Einval);
    }
    if len == 0 {
        return Ok(());
    }
    let end = addr
        .checked_add(len.div_ceil(ps) * ps)
        .ok_or(MadvCollapseError::Einval)?;
    let vmas = {
        let _r = mm.mmap_lock.read_lock(cx.cpu);
        mm.vmas_in(cx, addr, end)
    };
    let mut unmapped = false;
    let mut covered = addr;
    for v in &vmas {
        if v.start(cx) > covered {
            unmapped = true;
        }
        let s = covered.max(v.start(cx));
        let e = end.min(v.end(cx));
        madvise_collapse_vma(cx, mm, v, s, e)?;
        covered = e;
    }
    cx.rcu_quiescent();
    if unmapped || covered < end {
        return Err(MadvCollapseError::Enomem);
    }
    Ok(())
}
