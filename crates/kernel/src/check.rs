//! Invariants at quiescence (`check_mm`, `mm/debug.c`, and the bad_page checks of
//! `mm/page_alloc.c`, extended): with no operation in flight and RCU callbacks drained,
//! - `nr_ptes`/`nr_pmds`/`nr_puds` equal the attached plus deposited tables (I10, I11);
//! - rss counters equal the normal pages mapped, by type;
//! - each page's mapcount equals the PTEs mapping it, each folio's entire mapcount the PMDs;
//! - each folio's refcount equals its mappings plus its page-cache reference (I19, exact when
//!   nothing is pinned or in flight);
//! - a writable entry maps an anon page only if the page is `PageAnonExclusive`;
//! - every allocated frame is reachable (a table from some mm, a folio from a mapping or a cache);
//!   anything else is a leak.

use crate::arch::pgtable::Entry;
use crate::mm::types::{MmStruct, MM_ANONPAGES, MM_SHMEMPAGES, MM_SWAPENTS, NR_MM_COUNTERS};
use crate::{Ctx, Kernel};
use mmcheck_platform::{FrameKind, TlbEntry, ViolationKind};
use std::collections::BTreeMap;

#[derive(Default)]
struct Tally {
    /// PTE mappings per pfn.
    mapcount: BTreeMap<u32, i64>,
    /// PMD mappings per head pfn.
    entire: BTreeMap<u32, i64>,
    /// Expected references per head pfn.
    refs: BTreeMap<u32, i64>,
    /// Tables reachable (pfn).
    tables: BTreeMap<u32, u32>,
    /// Swap PTEs per swap slot.
    swap: BTreeMap<u32, i64>,
}

fn head_of(k: &Kernel, pfn: u32) -> u32 {
    k.machine
        .page_peek(pfn)
        .get(mmcheck_platform::PageField::Head) as u32
}

fn is_anon(k: &Kernel, head: u32) -> bool {
    k.machine
        .page_peek(head)
        .get(mmcheck_platform::PageField::Mapping)
        & 1
        == 1
}

/// I4 for anon memory: the VMA mapping an anon folio at `addr` is linked to the folio's
/// anon_vma (its `anon_vma_chain` holds it), so an rmap walk of the folio finds this mapping.
/// Broken by fork copying PTEs of a VMA whose anon_vma appeared after `anon_vma_fork`
/// (fb49c455323f).
fn anon_rmap_reaches(
    k: &Kernel,
    mm: &MmStruct,
    vmas: &[std::sync::Arc<crate::mm::types::Vma>],
    addr: u64,
    head: u32,
    errs: &mut Vec<(ViolationKind, String)>,
) {
    if !is_anon(k, head) {
        return;
    }
    let id = k
        .machine
        .page_peek(head)
        .get(mmcheck_platform::PageField::Mapping)
        >> 1;
    let Some(vma) = vmas.iter().find(|v| v.contains_peek(&k.machine, addr)) else {
        errs.push((
            ViolationKind::RmapMissed,
            format!(
                "mm {}: anon folio {head} mapped at {addr:#x}, outside every VMA",
                mm.id
            ),
        ));
        return;
    };
    // LOCKING: quiescent, no operation in flight.
    let linked = vma
        .anon_vma_chain
        .peek(&k.machine, |c| c.iter().any(|a| a.id == id));
    if !linked {
        let (start, end, _) = vma.range_peek(&k.machine);
        errs.push((
            ViolationKind::RmapMissed,
            format!(
                "mm {}: anon folio {head} mapped at {addr:#x} in VMA {start:#x}-{end:#x}, which is not linked to its anon_vma {id}: rmap walks of the folio miss this mapping",
                mm.id,
            ),
        ));
    }
}

/// A writable mapping of an anon page implies `PageAnonExclusive` (`include/linux/page-flags.h`;
/// the kernel's `VM_BUG_ON`s in `wp_page_reuse` and `try_to_migrate_one`). For a PMD, `page` is
/// the head, which carries the bit.
fn anon_write_exclusive(
    k: &Kernel,
    mm: &MmStruct,
    e: Entry,
    page: u32,
    head: u32,
    errs: &mut Vec<(ViolationKind, String)>,
) {
    let exclusive = k
        .machine
        .page_peek(page)
        .get(mmcheck_platform::PageField::AnonExclusive)
        != 0;
    if e.write() && is_anon(k, head) && !exclusive {
        errs.push((
            ViolationKind::Assertion,
            format!(
                "mm {}: a writable entry maps anon page {page}, which is not PageAnonExclusive",
                mm.id
            ),
        ));
    }
}

/// The uffd-wp contract (`Documentation/admin-guide/mm/userfaultfd.rst`): once
/// `UFFDIO_WRITEPROTECT` returned, until the page is unprotected (or filled by `UFFDIO_COPY`, or
/// unregistered, or unmapped), a write to it raises a uffd-wp fault. For that the page's PTE must
/// carry `_PAGE_UFFD_WP` while present, or a `PTE_MARKER_UFFD_WP` marker while unmapped (a
/// file or shmem VMA; an anonymous page's none PTE is not write-protected, so only its present
/// PTE counts). A none PTE there means the next store maps the page writable: the
/// write-protection was silently lost.
fn uffd_wp_kept(
    k: &Kernel,
    mm: &MmStruct,
    vmas: &[std::sync::Arc<crate::mm::types::Vma>],
    ptes: &BTreeMap<u64, Entry>,
    errs: &mut Vec<(ViolationKind, String)>,
) {
    let pages = mm.uffd_wp_protected.peek(&k.machine, |s| s.clone());
    for addr in pages {
        let Some(vma) = vmas.iter().find(|v| v.contains_peek(&k.machine, addr)) else {
            continue;
        };
        if !vma
            .flags_peek(&k.machine)
            .has(crate::mm::types::VmFlags::UFFD_WP)
        {
            continue;
        }
        let e = ptes.get(&addr).copied().unwrap_or(Entry::NONE);
        let kept = e.uffd_wp()
            || e.swp_uffd_wp()
            || e.is_uffd_wp_marker()
            || (vma.is_anonymous() && e.is_none());
        if !kept {
            errs.push((
                ViolationKind::UffdWpLost,
                format!(
                    "mm {}: {addr:#x} was write-protected by UFFDIO_WRITEPROTECT and its VMA is still registered for uffd-wp, but its PTE is {}: a store there would succeed without a uffd-wp fault",
                    mm.id,
                    crate::arch::pgtable::entry_text(1, e.0)
                ),
            ));
        }
    }
}

fn walk_mm(k: &Kernel, mm: &MmStruct, t: &mut Tally, errs: &mut Vec<(ViolationKind, String)>) {
    let g = k.geo;
    let frames = &k.machine.frames;
    let cpu = k.machine.cpu(0);
    let mut nr = [0i64; 5]; // tables per level, 1 (PTE) to 5 (P4D)
    let mut rss = [0i64; NR_MM_COUNTERS];
    let hz = k.huge_zero_peek();
    t.tables.insert(mm.pgd.pfn, g.levels);
    let vmas = mm.all_vmas(&k.machine);
    let mut ptes: BTreeMap<u64, Entry> = BTreeMap::new();
    let mut stack = vec![(mm.pgd, g.levels, 0u64)];
    while let Some((table, level, base)) = stack.pop() {
        if !frames.is_live(table) {
            errs.push((
                ViolationKind::UseAfterFree,
                format!(
                    "mm {}: level-{level} table pfn {} is freed but reachable",
                    mm.id, table.pfn
                ),
            ));
            continue;
        }
        if level == 2 {
            for d in k.machine.page_peek(table.pfn).deposit() {
                nr[1] += 1;
                t.tables.insert(d, 1);
            }
        }
        for i in 0..g.entries() {
            let e = Entry(cpu.entry_peek(table, i));
            if level == 1 && !e.is_none() {
                ptes.insert(base + ((i as u64) << g.shift(1)), e);
            }
            if level <= 2 && e.is_migration() {
                // A PMD migration entry counts the whole THP (zap_huge_pmd takes HPAGE_PMD_NR).
                let h = head_of(k, e.pfn());
                rss[if is_anon(k, h) {
                    MM_ANONPAGES
                } else {
                    MM_SHMEMPAGES
                }] += if level == 1 { 1 } else { 1 << g.bits };
                continue;
            }
            if level == 1 && e.is_swap_entry() {
                rss[MM_SWAPENTS] += 1;
                *t.swap.entry(e.swp_offset()).or_default() += 1;
                continue;
            }
            if e.is_none() || !e.present() && !e.huge_leaf() {
                continue;
            }
            if level == 1 {
                if e.special() || e.pfn() == k.zero_page.pfn {
                    continue;
                }
                let h = head_of(k, e.pfn());
                anon_write_exclusive(k, mm, e, e.pfn(), h, errs);
                anon_rmap_reaches(k, mm, &vmas, base + ((i as u64) << g.shift(1)), h, errs);
                *t.mapcount.entry(e.pfn()).or_default() += 1;
                *t.refs.entry(h).or_default() += 1;
                rss[if is_anon(k, h) {
                    MM_ANONPAGES
                } else {
                    MM_SHMEMPAGES
                }] += 1;
            } else if level == 2 && e.huge_leaf() {
                if hz.is_some_and(|z| z.pfn == e.pfn()) {
                    continue;
                }
                anon_write_exclusive(k, mm, e, e.pfn(), e.pfn(), errs);
                anon_rmap_reaches(
                    k,
                    mm,
                    &vmas,
                    base + ((i as u64) << g.shift(2)),
                    e.pfn(),
                    errs,
                );
                *t.entire.entry(e.pfn()).or_default() += 1;
                *t.refs.entry(e.pfn()).or_default() += 1;
                rss[MM_ANONPAGES] += 1 << g.pmd_order();
            } else {
                let child = frames.current(e.pfn());
                nr[(level - 1) as usize] += 1;
                t.tables.insert(e.pfn(), level - 1);
                stack.push((child, level - 1, base + ((i as u64) << g.shift(level))));
            }
        }
    }
    uffd_wp_kept(k, mm, &vmas, &ptes, errs);
    let want = [
        ("nr_ptes", mm.nr_ptes.peek(&k.machine), nr[1]),
        (
            "nr_pmds",
            mm.nr_pmds.peek(&k.machine),
            if g.levels > 2 { nr[2] } else { 0 },
        ),
        (
            "nr_puds",
            mm.nr_puds.peek(&k.machine),
            if g.levels > 3 { nr[3] } else { 0 },
        ),
    ];
    for (name, have, expect) in want {
        if have != expect {
            errs.push((
                ViolationKind::CounterMismatch,
                format!("mm {}: {name} = {have}, tables say {expect}", mm.id),
            ));
        }
    }
    for (i, name) in [
        (MM_ANONPAGES, "MM_ANONPAGES"),
        (MM_SHMEMPAGES, "MM_SHMEMPAGES"),
        (MM_SWAPENTS, "MM_SWAPENTS"),
    ] {
        let have = mm.get_rss(i);
        if have != rss[i] {
            errs.push((
                ViolationKind::CounterMismatch,
                format!("mm {}: rss {name} = {have}, tables say {}", mm.id, rss[i]),
            ));
        }
    }
}

/// Check every invariant; each failure is reported on the machine and returned.
pub fn check_quiescent(k: &Kernel) -> Vec<(ViolationKind, String)> {
    let cpu = k.machine.cpu(0);
    cpu.rcu_barrier();
    let mut t = Tally::default();
    let mut errs = Vec::new();
    for mm in k.mms() {
        walk_mm(k, &mm, &mut t, &mut errs);
    }
    for f in k.files() {
        for (_, fr) in f.cached_peek(&k.machine) {
            *t.refs.entry(fr.pfn).or_default() += 1;
        }
    }
    if let Some(si) = &k.swap {
        check_swap(k, si, &mut t, &mut errs);
    }
    let frames = &k.machine.frames;
    let hz = k.huge_zero_peek();
    for pfn in 1..frames.len() as u32 {
        match frames.kind(pfn) {
            FrameKind::Table(l) => {
                if !t.tables.contains_key(&pfn) {
                    errs.push((
                        ViolationKind::Leak,
                        format!("level-{l} table pfn {pfn} is allocated but unreachable"),
                    ));
                }
            }
            FrameKind::Data => {
                if pfn == k.zero_page.pfn
                    || hz.is_some_and(|z| pfn >= z.pfn && pfn < z.pfn + (1 << k.geo.pmd_order()))
                {
                    continue;
                }
                let pm = k.machine.page_peek(pfn);
                let mc = pm.count(mmcheck_platform::PageField::Mapcount);
                let want = t.mapcount.get(&pfn).copied().unwrap_or(0);
                if mc != want {
                    errs.push((
                        ViolationKind::CounterMismatch,
                        format!("pfn {pfn}: mapcount {mc}, page tables map it {want} times"),
                    ));
                }
                if head_of(k, pfn) != pfn {
                    continue;
                }
                let em = pm.count(mmcheck_platform::PageField::EntireMapcount);
                let want = t.entire.get(&pfn).copied().unwrap_or(0);
                if em != want {
                    errs.push((
                        ViolationKind::CounterMismatch,
                        format!("folio {pfn}: entire mapcount {em}, PMDs map it {want} times"),
                    ));
                }
                let rc = pm.count(mmcheck_platform::PageField::Refcount);
                // A folio still under migration at the end (its task between
                // migrate_folio_unmap and migrate_folio_move) holds the isolation reference.
                let isolated =
                    pm.get(mmcheck_platform::PageField::Flags) & crate::mm::folio::PG_ISOLATED != 0;
                let want = t.refs.get(&pfn).copied().unwrap_or(0) + i64::from(isolated);
                if want == 0 {
                    errs.push((ViolationKind::Leak, format!("folio {pfn} (refcount {rc}) is allocated but neither mapped nor cached")));
                } else if rc != want {
                    errs.push((
                        ViolationKind::CounterMismatch,
                        format!(
                            "folio {pfn}: refcount {rc}, mappings and cache account for {want}"
                        ),
                    ));
                }
            }
            FrameKind::Free | FrameKind::Reserved => {}
        }
    }
    // The rmap-completeness oracle at quiescence: no migration is in progress, so a migration
    // entry left anywhere was missed by `remove_migration_ptes`. Final states are the same for
    // equivalent executions, so this half is exact under partial-order reduction (the scan at the
    // end of each migration is the early, best-effort half).
    for pfn in 1..frames.len() as u32 {
        if !matches!(frames.kind(pfn), FrameKind::Table(1 | 2)) {
            continue;
        }
        let t = frames.current(pfn);
        for i in 0..k.geo.entries() {
            let e = crate::arch::pgtable::Entry(cpu.entry_peek(t, i));
            // A migration still in flight at the end (its folio isolated) is not missed.
            let in_flight = || {
                let h = head_of(k, e.pfn());
                k.machine
                    .page_peek(h)
                    .get(mmcheck_platform::PageField::Flags)
                    & crate::mm::folio::PG_ISOLATED
                    != 0
            };
            if e.is_migration() && !in_flight() {
                cpu.blame(mmcheck_platform::Obj::Entry { pfn, idx: i as u32 });
                errs.push((
                    ViolationKind::RmapMissed,
                    format!(
                        "migration entry to pfn {} (table pfn {pfn}, entry {i}) outlived its \
                         migration: rmap never found it",
                        e.pfn()
                    ),
                ));
            }
        }
    }
    for (kind, msg) in &errs {
        k.machine.report_global(*kind, msg.clone());
    }
    errs
}

/// The swap area at quiescence: each slot's swap count equals the swap PTEs naming it,
/// `SWAP_HAS_CACHE` is set exactly for the slots the swap cache holds (no direct swap-in is in
/// flight), and each cached folio is live, `PG_swapcache`, and holds a reference per page.
fn check_swap(
    k: &Kernel,
    si: &crate::mm::swapfile::SwapInfo,
    t: &mut Tally,
    errs: &mut Vec<(ViolationKind, String)>,
) {
    use crate::mm::swapfile::SWAP_HAS_CACHE;
    let (map, cache) = si
        .state
        .peek(&k.machine, |s| (s.map.clone(), s.cache.clone()));
    for (off, &m) in map.iter().enumerate().skip(1) {
        let off = off as u32;
        let count = i64::from(m & !SWAP_HAS_CACHE);
        let ptes = t.swap.get(&off).copied().unwrap_or(0);
        if count != ptes {
            errs.push((
                if count > ptes {
                    ViolationKind::Leak
                } else {
                    ViolationKind::CounterMismatch
                },
                format!("swap slot {off}: swap count {count}, page tables hold {ptes} swap entries for it"),
            ));
        }
        let has_cache = m & SWAP_HAS_CACHE != 0;
        if has_cache != cache.contains_key(&off) {
            errs.push((
                ViolationKind::CounterMismatch,
                format!(
                    "swap slot {off}: SWAP_HAS_CACHE {}, but the swap cache {} it",
                    if has_cache { "set" } else { "clear" },
                    if has_cache { "does not hold" } else { "holds" }
                ),
            ));
        }
    }
    for (off, f) in cache {
        if !k.machine.frames.is_live(f) {
            errs.push((
                ViolationKind::UseAfterFree,
                format!(
                    "swap slot {off}: the swap cache holds freed folio {}",
                    f.pfn
                ),
            ));
            continue;
        }
        let pm = k.machine.page_peek(f.pfn);
        if pm.get(mmcheck_platform::PageField::Flags) & crate::mm::folio::PG_SWAPCACHE == 0 {
            errs.push((
                ViolationKind::CounterMismatch,
                format!(
                    "swap slot {off}: cached folio {} is not PG_swapcache",
                    f.pfn
                ),
            ));
        }
        let nr = 1i64 << pm.get(mmcheck_platform::PageField::Order);
        *t.refs.entry(f.pfn).or_default() += nr;
    }
}

/// What the page tables of `mm` map at `vpn` right now, read at one instant by the oracle:
/// `(pfn, generation, writable, shift)` of the leaf, or `None`.
fn oracle_translation(k: &Kernel, mm: &MmStruct, vpn: u64) -> Option<(u32, u32, bool, u32)> {
    let g = k.geo;
    let frames = &k.machine.frames;
    let addr = vpn << g.page_shift;
    let mut table = mm.pgd;
    let mut level = g.levels;
    loop {
        if !frames.is_live(table) {
            return None;
        }
        let e = Entry(frames.entry_oracle(table, g.index(addr, level)));
        if !e.present() {
            return None;
        }
        if level == 1 || (level == 2 && e.huge_leaf()) {
            let f = frames.current(e.pfn());
            let shift = if level == 1 { 0 } else { g.bits };
            return Some((f.pfn, f.gen, e.write(), shift));
        }
        table = frames.current(e.pfn());
        level -= 1;
    }
}

/// Does `e` (for a page of `vpn`) grant more than the page tables do?
fn tlb_grants_more(k: &Kernel, mm: &MmStruct, e: &TlbEntry, vpn: u64) -> Option<String> {
    let off = vpn - (e.vpn >> e.shift << e.shift);
    let want = e.page.pfn + off as u32;
    match oracle_translation(k, mm, vpn) {
        None => Some("the page tables map nothing there".to_string()),
        Some((pfn, gen, w, shift)) => {
            let pfn = pfn + if shift > 0 { off as u32 } else { 0 };
            let same_frame = pfn == want && (e.shift > 0 || gen == e.page.gen);
            if !same_frame {
                Some(format!("the page tables map pfn {pfn} there"))
            } else if e.writable && !w {
                Some("the page tables map it read-only".to_string())
            } else {
                None
            }
        }
    }
}

/// The TLB entries of `mm` in `[start, end)` when a system call that reduces access there begins:
/// the ones it is answerable for (see [`check_tlb_permission`]).
pub fn tlb_permission_begin(cx: Ctx<'_>, mm: &MmStruct, start: u64, end: u64) -> TlbSnapshot {
    let ps = cx.geo().page_shift;
    let (s, e) = (start >> ps, end.div_ceil(1 << ps));
    let cpu = cx.cpu.id;
    mm.tlb_owed.record(|o| o.begin(cpu));
    TlbSnapshot(if s < e {
        cx.cpu.tlb_entries_in(mm.id, s, e)
    } else {
        Vec::new()
    })
}

/// What [`tlb_permission_begin`] saw.
pub struct TlbSnapshot(Vec<(usize, TlbEntry)>);

/// The TLB-permission oracle (I3's second half): when `syscall`, which reduced access to
/// `ranges` of `mm` (the parts of its range where it found VMAs: a part another thread unmapped
/// first is that thread's to flush, and the kernel returns at once there), returns, no CPU's
/// TLB may still hold an entry it held when the call began that grants more than the page
/// tables now do (a translation where they map nothing or
/// another page, or a writable one where they are read-only). Entries filled during the call come
/// from a concurrent fault after the zap and are another thread's business. The TLB half is an
/// announced scan of every CPU's TLB; the page tables are read at the same instant, unannounced
/// (`entry_oracle`; see docs/fidelity.md).
pub fn check_tlb_permission(
    cx: Ctx<'_>,
    mm: &MmStruct,
    ranges: &[(u64, u64)],
    before: TlbSnapshot,
    syscall: &str,
) {
    check_tlb_permission_of(cx, mm, ranges, before, syscall, Answers::All);
}

/// [`check_tlb_permission`] for a call that removes write access only (`mprotect` dropping
/// `PROT_WRITE`): it answers for writable entries alone. A read-only entry that disagrees with
/// the page tables there was left by another thread's unmap (reclaim with its flush batched, a
/// zap) and is that thread's to flush: `mprotect(PROT_READ)` promises no write, not a fresh
/// read.
pub fn check_tlb_write_permission(
    cx: Ctx<'_>,
    mm: &MmStruct,
    ranges: &[(u64, u64)],
    before: TlbSnapshot,
    syscall: &str,
) {
    check_tlb_permission_of(cx, mm, ranges, before, syscall, Answers::WritesOnly);
}

/// Which stale entries a returning call answers for.
#[derive(Clone, Copy, PartialEq)]
enum Answers {
    All,
    WritesOnly,
}

fn check_tlb_permission_of(
    cx: Ctx<'_>,
    mm: &MmStruct,
    ranges: &[(u64, u64)],
    before: TlbSnapshot,
    syscall: &str,
    answers: Answers,
) {
    check_owed(cx, mm, ranges, before, syscall, answers);
    let cpu = cx.cpu.id;
    mm.tlb_owed.record(|o| o.end(cpu));
}

fn check_owed(
    cx: Ctx<'_>,
    mm: &MmStruct,
    ranges: &[(u64, u64)],
    before: TlbSnapshot,
    syscall: &str,
    answers: Answers,
) {
    if before.0.is_empty() || ranges.is_empty() {
        return;
    }
    let ps = cx.geo().page_shift;
    let (lo, hi) = (
        ranges[0].0 >> ps,
        ranges[ranges.len() - 1].1.div_ceil(1 << ps),
    );
    let acted = |vpn: u64| {
        ranges
            .iter()
            .any(|&(a, b)| (a >> ps..b.div_ceil(1 << ps)).contains(&vpn))
    };
    // An entry a shootdown in flight covers (its target has IRQs off) is its sender's to finish.
    for (cpu, te) in cx.cpu.tlb_entries_in_unflushed(mm.id, lo, hi) {
        if !before.0.contains(&(cpu, te)) || answers == Answers::WritesOnly && !te.writable {
            continue;
        }
        let span = te.vpn >> te.shift << te.shift;
        // The first page of the entry (a huge one spans several) in a range the call acted on.
        let Some(vpn) = (span.max(lo)..(span + (1 << te.shift)).min(hi)).find(|&v| acted(v)) else {
            continue;
        };
        // Only what this call cleared, or what reclaim's batched flush owes (see `TlbOwed`).
        if !mm.tlb_owed.oracle(|o| o.answers(cx.cpu.id, vpn)) {
            continue;
        }
        if let Some(why) = tlb_grants_more(cx.k, mm, &te, vpn) {
            cx.cpu.report(
                ViolationKind::TlbPermission,
                format!(
                    "{syscall} returned while CPU {cpu}'s TLB still maps vpn {vpn:#x} to pfn {}{} \
                     but {why}: a missing or late TLB flush",
                    te.page.pfn + (vpn - span) as u32,
                    if te.writable { " (writable)" } else { "" },
                ),
            );
            return;
        }
    }
}
