//! GUP-fast and its slow-path fallback (`mm/gup.c`, 2024–2026: `gup_fast_pte_range`,
//! `gup_fast_pmd_leaf`, `try_grab_folio_fast`). GUP-fast walks with IRQs off and takes no lock:
//! it reads each level locklessly, grabs a reference (or a pin with FOLL_PIN), then rechecks that
//! the PMD and the PTE still hold the values it walked through, dropping the reference otherwise.
//! Its safety rests on tables being freed only after an RCU grace period or an IPI it blocks, and
//! on detachers clearing the entry before checking refcounts.

use crate::mm::folio::{self, page_folio};
use crate::mm::memory::{do_user_addr_fault, handle_mm_fault_flags, vm_normal_page, VmFault};
use crate::mm::pgtable::{self, EntryPtr};
use crate::mm::types::MmStruct;
use crate::{Ctx, Errno};
use mmcheck_platform::{Access, FrameRef, ViolationKind};

/// A page returned by GUP with a reference (or a pin) the caller must drop.
#[derive(Clone, Copy, Debug)]
pub struct GupPage {
    pub page: FrameRef,
    pub folio: FrameRef,
    pub pinned: bool,
}

fn grab(cx: Ctx<'_>, f: FrameRef, pin: bool) -> bool {
    if !folio::folio_try_get(cx, f) {
        return false;
    }
    if pin {
        cx.cpu
            .page(f.pfn, Access::Rmw)
            .add(mmcheck_platform::PageField::Pincount, 1);
        // try_grab_folio_fast: the pin's count before the entry rechecks (paired with
        // folio_try_share_anon_rmap_pte's smp_mb). A plain reference needs none: folio_try_get
        // is a fully ordered atomic.
        if cx.proto().gup_fast_pin_mb {
            cx.cpu.smp_mb();
        }
    }
    true
}

/// `gup_must_unshare` (`mm/internal.h`, read at 6.8): a read-only `FOLL_PIN` of an anon page
/// that is not `PageAnonExclusive` must first break COW (an unshare fault), or the pin could
/// later stop seeing the process's writes. Write pins need a writable entry, which an anon page
/// only has while exclusive; page-cache pages matter only for `FOLL_LONGTERM` (not modelled).
fn gup_must_unshare(cx: Ctx<'_>, write: bool, pin: bool, folio: FrameRef, page: u32) -> bool {
    if write || !pin {
        return false;
    }
    if !folio::folio_test_anon(cx, folio) {
        return false;
    }
    // Paired with the barriers of folio_try_share_anon_rmap_*.
    cx.cpu.smp_rmb();
    !folio::page_anon_exclusive(cx, page)
}

/// `sanity_check_pinned_pages` (CONFIG_DEBUG_VM): a pinned anon page is `PageAnonExclusive`,
/// else a later COW in the process replaces it under the pin (the pin follows the other
/// mapper: fork's child, or a page about to be reused). Of a large folio, either the head
/// (which carries the bit while the folio is PMD-mapped) or the page itself (PTE-mapped) must
/// have it: the pin does not know how the folio was mapped.
fn sanity_check_pinned_page(cx: Ctx<'_>, p: &GupPage) {
    if !folio::folio_test_anon(cx, p.folio) {
        return;
    }
    let exclusive = folio::page_anon_exclusive(cx, p.folio.pfn)
        || (folio::folio_order(cx, p.folio) > 0 && folio::page_anon_exclusive(cx, p.page.pfn));
    if !exclusive {
        cx.cpu.report(
            ViolationKind::Assertion,
            format!(
                "sanity_check_pinned_pages: pinned anon page {} is not PageAnonExclusive",
                p.page.pfn
            ),
        );
    }
}

/// `unpin_user_page` / `put_page`.
/// `unpin_user_pages_dirty_lock(make_dirty)` / `set_page_dirty_lock` + `put_page`: the caller
/// wrote through the page (a direct-I/O read into user memory), so the folio is marked dirty
/// before the reference goes (reclaim must not discard it as a clean lazyfree page).
pub fn gup_put_dirty(cx: Ctx<'_>, p: GupPage) {
    if p.pinned {
        cx.cpu
            .page(p.folio.pfn, Access::Rmw)
            .add(mmcheck_platform::PageField::Pincount, -(1));
    }
    folio::folio_mark_dirty_put(cx, p.folio);
}

pub fn gup_put(cx: Ctx<'_>, p: GupPage) {
    if p.pinned {
        cx.cpu
            .page(p.folio.pfn, Access::Rmw)
            .add(mmcheck_platform::PageField::Pincount, -(1));
    }
    folio::folio_put(cx, p.folio);
}

// The GUP-fast result oracle: the kernel's contract is that the page was
// mapped at `addr` at the PMD recheck (a detacher that clears the PMD later sees the reference
// GUP-fast took and backs off). GUP-fast's own announced reads establish it: the PMD still
// pointed to the table it walked at the PMD recheck, and the PTE still held the page at the PTE
// recheck, which comes after. The oracle reads them even when a protocol variant drops a
// recheck, so it never reads state its step did not announce.

/// GUP-fast for one page: `None` means "fall back to the slow path".
pub fn gup_fast(cx: Ctx<'_>, mm: &MmStruct, addr: u64, write: bool, pin: bool) -> Option<GupPage> {
    let _f = cx.cpu.enter("gup_fast");
    let g = cx.geo();
    let irq = cx.cpu.local_irq_disable();
    let pmdp = pgtable::pmd_off(cx, mm, addr)?;
    let pmd = pmdp.get(cx); // pmdp_get_lockless
    if !pmd.present() || pmd.protnone() {
        // A NUMA-hinting PMD must fault (gup_fast_pmd_range: pmd_protnone).
        return None;
    }
    let (res, mapped) = if pmd.huge_leaf() {
        // gup_fast_pmd_leaf
        if pmd.nonpresent_made_present() {
            // I7: the writer left a non-present PMD (a migration entry run through arm64's
            // pmd_mkinvalid), and this lockless read decodes it as a present huge leaf whose pfn
            // is the swap entry's bits.
            cx.cpu.report(
                ViolationKind::WalkerResult,
                format!(
                    "gup_fast: pmd_present and pmd_leaf true for {addr:#x} on a PMD migration entry that pmdp_invalidate made present-invalid: the lockless walker decodes swap bits as huge pfn {} (I7: an update changed the entry's type as lockless readers see it)",
                    pmd.pfn()
                ),
            );
        }
        // pmd_access_permitted: an entry the hardware would fault on (arm64: PTE_VALID clear)
        // is refused; so is a write to a read-only one.
        if !pmd.hw_present()
            || write && !pmd.write()
            || crate::mm::huge_memory::is_huge_zero_pmd(cx, pmd)
        {
            return None;
        }
        let f = cx.cpu.frame_ref(pmd.pfn());
        if !grab(cx, f, pin) {
            return None;
        }
        let page = pmd.pfn() + g.index(addr, 1) as u32;
        // The PMD recheck; without it, the oracle still reads the PMD here.
        let now = pmdp.get(cx);
        let mapped = now == pmd;
        // Back off on a changed PMD, or a read-only pin that must unshare first.
        if (cx.proto().gup_fast_recheck_pmd && !cx.cpu.recheck("pmd_same", now == pmd))
            || (!pmd.write() && gup_must_unshare(cx, write, pin, f, f.pfn))
        {
            gup_put(
                cx,
                GupPage {
                    page: f,
                    folio: f,
                    pinned: pin,
                },
            );
            return None;
        }
        (
            GupPage {
                page: cx.k.machine.frames.current(page),
                folio: f,
                pinned: pin,
            },
            mapped,
        )
    } else {
        // gup_fast_pte_range: map through the local PMD copy.
        let table = cx.cpu.frame_ref(pmd.pfn());
        let ptep = EntryPtr {
            table,
            idx: g.index(addr, 1),
            level: 1,
        };
        let pte = ptep.get(cx);
        if !pte.present() || pte.protnone() || (write && !pte.write()) {
            return None;
        }
        let page = vm_normal_page(cx, pte)?;
        let f = page_folio(cx, page);
        if !grab(cx, f, pin) {
            return None;
        }
        // The rechecks. Without them (protocol variants) the oracle still reads both entries
        // here: the result is valid if the PMD still pointed to this table at the PMD recheck
        // and the PTE still held this page at the PTE recheck.
        let pmd_now = pmdp.get(cx);
        let pmd_changed =
            cx.proto().gup_fast_recheck_pmd && !cx.cpu.recheck("pmd_same", pmd_now == pmd);
        let pte_now = (!pmd_changed).then(|| ptep.get(cx));
        let pte_changed = cx.proto().gup_fast_recheck_pte
            && pte_now.is_some_and(|v| !cx.cpu.recheck("pte_same", v == pte));
        let mapped = pmd_now == pmd && pte_now == Some(pte);
        // Back off on a changed entry, or a read-only pin that must unshare first.
        if pmd_changed || pte_changed || (!pte.write() && gup_must_unshare(cx, write, pin, f, page))
        {
            gup_put(
                cx,
                GupPage {
                    page: cx.cpu.frame_ref(page),
                    folio: f,
                    pinned: pin,
                },
            );
            return None;
        }
        (
            GupPage {
                page: cx.cpu.frame_ref(page),
                folio: f,
                pinned: pin,
            },
            mapped,
        )
    };
    if !mapped {
        cx.cpu.report(
            ViolationKind::WalkerResult,
            format!(
                "gup_fast: returned pfn {} for {addr:#x}, which was no longer mapped there at its \
                 rechecks",
                res.page.pfn
            ),
        );
    }
    drop(irq);
    Some(res)
}

/// `get_user_pages` slow path for one page: fault it in under the mmap lock, then take the
/// reference under the PTL (`follow_page_mask`). A read-only pin of a shared anon page makes
/// `follow_page_pte` answer `-EMLINK`: `faultin_page` with `FAULT_FLAG_UNSHARE`, then again.
pub fn gup_slow(
    cx: Ctx<'_>,
    mm: &MmStruct,
    addr: u64,
    write: bool,
    pin: bool,
) -> Result<GupPage, Errno> {
    let _f = cx.cpu.enter("__get_user_pages");
    for _ in 0..8 {
        let r = mm.mmap_lock.read_lock(cx.cpu);
        let vma = mm.vma_lookup(cx, addr).ok_or(Errno::Sigsegv)?;
        let Some(pmd) = pgtable::pmd_off(cx, mm, addr) else {
            drop(r);
            do_user_addr_fault(cx, mm, addr, write)?;
            continue;
        };
        let v = pmd.get(cx);
        let mut unshare = false;
        // follow_page: a PROTNONE entry is "no page" (gup_can_follow_protnone): fault it in.
        if v.huge_leaf()
            && v.present()
            && !v.protnone()
            && (!write || v.write())
            && !crate::mm::huge_memory::is_huge_zero_pmd(cx, v)
        {
            let _ptl = pgtable::pmd_lock(cx, mm, pmd);
            if cx.cpu.recheck("pmd_same", pmd.get(cx) == v) {
                let f = cx.cpu.frame_ref(v.pfn());
                if !v.write() && gup_must_unshare(cx, write, pin, f, f.pfn) {
                    unshare = true;
                } else if grab(cx, f, pin) {
                    let page =
                        cx.k.machine
                            .frames
                            .current(v.pfn() + cx.geo().index(addr, 1) as u32);
                    return Ok(GupPage {
                        page,
                        folio: f,
                        pinned: pin,
                    });
                }
            }
        } else if let Some(l) = pgtable::pte_offset_map_lock(cx, mm, pmd) {
            let pte = l.pte(cx.geo().index(addr, 1)).get(cx);
            if pte.present() && !pte.protnone() && (!write || pte.write()) {
                if let Some(page) = vm_normal_page(cx, pte) {
                    let f = page_folio(cx, page);
                    if !pte.write() && gup_must_unshare(cx, write, pin, f, page) {
                        unshare = true;
                    } else if grab(cx, f, pin) {
                        return Ok(GupPage {
                            page: cx.cpu.frame_ref(page),
                            folio: f,
                            pinned: pin,
                        });
                    }
                }
            }
        }
        if unshare {
            // faultin_page(..., unshare = true) under the mmap lock.
            let ret = handle_mm_fault_flags(cx, mm, &vma, addr, false, true, false);
            drop(r);
            match ret {
                VmFault::Oom => return Err(Errno::Enomem),
                VmFault::Sigbus => return Err(Errno::Sigbus),
                VmFault::Sigsegv => return Err(Errno::Sigsegv),
                _ => continue,
            }
        }
        drop(r);
        do_user_addr_fault(cx, mm, addr, write)?;
    }
    Err(Errno::Eagain)
}

/// `get_user_pages_fast_only` (FOLL_FAST_ONLY) for one page: the fast walk or nothing
/// (`Eagain` stands for "0 pages").
pub fn get_user_page_fast_only(
    cx: Ctx<'_>,
    mm: &MmStruct,
    addr: u64,
    write: bool,
    pin: bool,
) -> Result<GupPage, Errno> {
    get_user_page(cx, mm, addr, write, pin, true)
}

/// `pin_user_pages_fast` / `get_user_pages_fast` for one page.
pub fn get_user_page_fast(
    cx: Ctx<'_>,
    mm: &MmStruct,
    addr: u64,
    write: bool,
    pin: bool,
) -> Result<GupPage, Errno> {
    get_user_page(cx, mm, addr, write, pin, false)
}

/// `gup_fast_fallback` for one page.
fn get_user_page(
    cx: Ctx<'_>,
    mm: &MmStruct,
    addr: u64,
    write: bool,
    pin: bool,
    fast_only: bool,
) -> Result<GupPage, Errno> {
    let gup_slow = |cx, mm, addr, write, pin| {
        if fast_only {
            Err(Errno::Eagain)
        } else {
            gup_slow(cx, mm, addr, write, pin)
        }
    };
    // gup_fast_fallback: a pin samples write_protect_seq (raw_seqcount_try_begin: odd means
    // fork is write-protecting, go slow) and rechecks it once the fast walk is done.
    let seq = (pin && cx.proto().gup_fast_write_protect_seq).then(|| {
        let _f = cx.cpu.enter("gup_fast_fallback");
        let s = mm.write_protect_seq.read(&cx.cpu);
        // raw_read_seqcount: the walk's loads are ordered after the sample.
        cx.cpu.smp_rmb();
        s
    });
    if seq.is_some_and(|s| s & 1 == 1) {
        return gup_slow(cx, mm, addr, write, pin);
    }
    match gup_fast(cx, mm, addr, write, pin) {
        Some(p) => {
            if seq.is_some_and(|s| mm.write_protect_seq.read(&cx.cpu) != s) {
                // read_seqcount_retry: fork may have shared the page after the walk.
                gup_put(cx, p);
                return gup_slow(cx, mm, addr, write, pin);
            }
            if pin {
                sanity_check_pinned_page(cx, &p);
            }
            Ok(p)
        }
        None => gup_slow(cx, mm, addr, write, pin),
    }
}
