//! `PageAnonExclusive` (review B11), migration's reference checks (B6) and the huge zero PMD
//! write fault (B10), run sequentially on the x86-64 geometry. fork is not a scenario operation
//! yet, so its side of B11 is tested here. Each test fails on the model before these paths were
//! modelled (noted per test).

use mmcheck_kernel::arch::fault::{user_load, user_store};
use mmcheck_kernel::check::check_quiescent;
use mmcheck_kernel::mm::folio;
use mmcheck_kernel::mm::fork::dup_mmap;
use mmcheck_kernel::mm::gup::{get_user_page_fast, gup_fast, gup_put};
use mmcheck_kernel::mm::migrate::migrate_page_at;
use mmcheck_kernel::mm::pgtable::read_translation;
use mmcheck_kernel::mm::types::{MmStruct, MM_ANONPAGES};
use mmcheck_kernel::mm::vma::{do_mmap, exit_mmap, mm_alloc, mmdrop, MapBacking};
use mmcheck_kernel::{Ctx, Geometry, Kernel, Protocol};
use std::sync::Arc;

const BASE: u64 = 0x4000_0000_0000;
const PG: u64 = 4096;

fn kernel() -> Kernel {
    Kernel::native(Geometry::X86_64, Protocol::default(), 2, 1 << 12)
}

fn clean(k: &Kernel) {
    let errs = check_quiescent(k);
    assert!(errs.is_empty(), "invariants: {errs:?}");
    assert!(!k.machine.violated(), "{:?}", k.machine.violations());
}

fn anon_mm(cx: Ctx<'_>, pages: u64, huge: bool) -> Arc<MmStruct> {
    let mm = mm_alloc(cx).unwrap();
    do_mmap(
        cx,
        &mm,
        BASE,
        pages * PG,
        MapBacking::AnonPrivate,
        true,
        huge,
    )
    .unwrap();
    mm
}

fn pfn_at(cx: Ctx<'_>, mm: &MmStruct, addr: u64) -> u32 {
    read_translation(cx, mm, addr).0.expect("mapped")
}

fn teardown(k: &Kernel, mms: &[&Arc<MmStruct>]) {
    let cx = k.ctx(0);
    for m in mms {
        exit_mmap(cx, m);
        mmdrop(cx, m);
    }
    clean(k);
}

#[test]
fn new_anon_pages_are_exclusive_and_fork_shares_them_non_exclusive() {
    let k = kernel();
    let cx = k.ctx(0);
    let mm = anon_mm(cx, 8, false);
    user_store(cx, &mm, BASE, 5).unwrap();
    let p = pfn_at(cx, &mm, BASE);
    assert!(folio::page_anon_exclusive(cx, p), "do_anonymous_page");
    let child = dup_mmap(cx, &mm).unwrap();
    assert_eq!(pfn_at(cx, &child, BASE), p, "shared with the child");
    assert!(
        !folio::page_anon_exclusive(cx, p),
        "shared: no longer exclusive"
    );
    // The child's write copies; the copy is exclusive.
    user_store(k.ctx(1), &child, BASE, 6).unwrap();
    let c = pfn_at(cx, &child, BASE);
    assert_ne!(c, p);
    assert!(folio::page_anon_exclusive(cx, c), "wp_page_copy");
    // The parent is the only mapper again: wp_can_reuse_anon_folio reuses and marks it.
    user_store(cx, &mm, BASE, 7).unwrap();
    assert_eq!(pfn_at(cx, &mm, BASE), p, "reused");
    assert!(folio::page_anon_exclusive(cx, p));
    assert_eq!(user_load(cx, &child, BASE).unwrap(), 6);
    teardown(&k, &[&mm, &child]);
}

/// Before: fork shared the pinned page and the parent's next store COWed away from it, so the
/// DMA reader kept seeing the old data.
#[test]
fn fork_copies_a_pinned_exclusive_page_for_the_child() {
    let k = kernel();
    let cx = k.ctx(0);
    let mm = anon_mm(cx, 8, false);
    user_store(cx, &mm, BASE, 5).unwrap();
    let pin = get_user_page_fast(cx, &mm, BASE, false, true).unwrap();
    let p = pin.page.pfn;
    let child = dup_mmap(cx, &mm).unwrap();
    let c = pfn_at(cx, &child, BASE);
    assert_ne!(c, p, "the child got a copy");
    assert_eq!(user_load(k.ctx(1), &child, BASE).unwrap(), 5);
    assert!(
        folio::page_anon_exclusive(cx, p),
        "still the parent's alone"
    );
    assert!(
        folio::page_anon_exclusive(cx, c),
        "the copy is the child's alone"
    );
    // The parent's PTE stayed writable: its store lands in the pinned page.
    user_store(cx, &mm, BASE, 9).unwrap();
    assert_eq!(pfn_at(cx, &mm, BASE), p);
    assert_eq!(
        cx.cpu.data_read(pin.page),
        9,
        "the pin sees the parent's store"
    );
    assert_eq!(user_load(k.ctx(1), &child, BASE).unwrap(), 5);
    gup_put(cx, pin);
    teardown(&k, &[&mm, &child]);
}

/// Before: a read-only pin of a page shared with a child took the shared page; the parent's next
/// store COWed away from it (the pin lost the parent's writes).
#[test]
fn a_read_pin_of_a_shared_anon_page_unshares_it_first() {
    let k = kernel();
    let cx = k.ctx(0);
    let mm = anon_mm(cx, 8, false);
    user_store(cx, &mm, BASE, 5).unwrap();
    let shared = pfn_at(cx, &mm, BASE);
    let child = dup_mmap(cx, &mm).unwrap();
    // GUP-fast must back off (gup_must_unshare); a plain reference need not.
    let r = gup_fast(cx, &mm, BASE, false, false).expect("FOLL_GET of a shared page is fine");
    assert_eq!(r.page.pfn, shared);
    gup_put(cx, r);
    assert!(
        gup_fast(cx, &mm, BASE, false, true).is_none(),
        "FOLL_PIN backs off"
    );
    // The slow path takes an unshare fault: the parent gets its own exclusive copy, read-only.
    let pin = get_user_page_fast(cx, &mm, BASE, false, true).unwrap();
    assert_ne!(pin.page.pfn, shared);
    assert_eq!(pfn_at(cx, &mm, BASE), pin.page.pfn);
    assert!(folio::page_anon_exclusive(cx, pin.page.pfn));
    assert_eq!(cx.cpu.data_read(pin.page), 5);
    // The parent's store reuses the exclusive page despite the pin's extra reference.
    user_store(cx, &mm, BASE, 9).unwrap();
    assert_eq!(pfn_at(cx, &mm, BASE), pin.page.pfn, "reused, not copied");
    assert_eq!(cx.cpu.data_read(pin.page), 9);
    assert_eq!(user_load(k.ctx(1), &child, BASE).unwrap(), 5);
    assert_eq!(child.get_rss(MM_ANONPAGES), 1);
    gup_put(cx, pin);
    teardown(&k, &[&mm, &child]);
}

/// Before: migration moved a pinned (or GUP-referenced) page, leaving the holder with the old one.
#[test]
fn migration_keeps_pinned_and_referenced_pages() {
    let k = kernel();
    let cx = k.ctx(0);
    let mm = anon_mm(cx, 8, false);
    user_store(cx, &mm, BASE, 5).unwrap();
    user_store(cx, &mm, BASE + PG, 6).unwrap();
    let p = pfn_at(cx, &mm, BASE);
    // FOLL_PIN of an exclusive page: folio_try_share_anon_rmap_pte fails, the PTE is restored.
    let pin = get_user_page_fast(cx, &mm, BASE, true, true).unwrap();
    assert!(!migrate_page_at(cx, &mm, BASE));
    assert_eq!(pfn_at(cx, &mm, BASE), p);
    assert!(folio::page_anon_exclusive(cx, p));
    gup_put(cx, pin);
    // FOLL_GET: unmapped, then folio_migrate_mapping's reference check fails (-EAGAIN) and the
    // migration entries are restored as exclusive mappings.
    let r = get_user_page_fast(cx, &mm, BASE, true, false).unwrap();
    assert!(!migrate_page_at(cx, &mm, BASE));
    assert_eq!(pfn_at(cx, &mm, BASE), p);
    assert!(folio::page_anon_exclusive(cx, p), "restored RMAP_EXCLUSIVE");
    gup_put(cx, r);
    // Unreferenced: it moves, and the new page is exclusive.
    assert!(migrate_page_at(cx, &mm, BASE));
    let n = pfn_at(cx, &mm, BASE);
    assert_ne!(n, p);
    assert!(folio::page_anon_exclusive(cx, n));
    assert_eq!(user_load(cx, &mm, BASE).unwrap(), 5);
    clean(&k);
    teardown(&k, &[&mm]);
}

/// 5.8–6.12 (`thp.zero_wp_alloc = off`). Before: the model always replaced the huge zero PMD by
/// a freshly allocated THP, whatever the kernel version.
#[test]
fn before_6_13_a_write_to_the_huge_zero_pmd_splits_it_and_copies_one_page() {
    let mut proto = Protocol::default();
    proto.set("thp.zero_wp_alloc", "off").unwrap();
    let k = Kernel::native(Geometry::X86_64, proto, 2, 1 << 12);
    let cx = k.ctx(0);
    let mm = anon_mm(cx, 1024, true);
    assert_eq!(user_load(cx, &mm, BASE + 3 * PG).unwrap(), 0);
    assert!(read_translation(cx, &mm, BASE).1, "the huge zero PMD");
    user_store(cx, &mm, BASE + 3 * PG, 33).unwrap();
    let (pfn, huge) = read_translation(cx, &mm, BASE + 3 * PG);
    assert!(!huge, "split to PTEs");
    assert!(folio::page_anon_exclusive(cx, pfn.unwrap()));
    assert_eq!(mm.get_rss(MM_ANONPAGES), 1, "one page, not a THP");
    assert_eq!(
        read_translation(cx, &mm, BASE).0,
        Some(k.zero_page.pfn),
        "the rest maps the zero page"
    );
    assert_eq!(user_load(cx, &mm, BASE + 3 * PG).unwrap(), 33);
    assert_eq!(user_load(cx, &mm, BASE + 4 * PG).unwrap(), 0);
    clean(&k);
    teardown(&k, &[&mm]);
}

/// 6.13+ (`do_huge_zero_wp_pmd`, the default): the write maps a new THP; if no THP can be
/// allocated, the PMD is split as before 6.13.
#[test]
fn a_write_to_the_huge_zero_pmd_maps_a_thp_or_splits_without_memory() {
    let k = kernel();
    let cx = k.ctx(0);
    let mm = anon_mm(cx, 1024, true);
    assert_eq!(user_load(cx, &mm, BASE + 3 * PG).unwrap(), 0);
    let tables = mm.pgtables();
    user_store(cx, &mm, BASE + 3 * PG, 33).unwrap();
    let (pfn, huge) = read_translation(cx, &mm, BASE + 3 * PG);
    assert!(huge, "a THP");
    assert!(
        folio::page_anon_exclusive(cx, pfn.unwrap() - 3),
        "the head is exclusive"
    );
    assert_eq!(mm.get_rss(MM_ANONPAGES), 512);
    assert_eq!(mm.pgtables(), tables, "the deposited table stays");
    assert_eq!(user_load(cx, &mm, BASE + 4 * PG).unwrap(), 0);
    clean(&k);
    teardown(&k, &[&mm]);

    // Room for the huge zero folio only (pfn 0 is reserved): the fallback split.
    let k = Kernel::native(Geometry::X86_64, Protocol::default(), 2, 1024);
    let cx = k.ctx(0);
    let mm = anon_mm(cx, 1024, true);
    assert_eq!(user_load(cx, &mm, BASE).unwrap(), 0);
    assert!(read_translation(cx, &mm, BASE).1, "the huge zero PMD");
    user_store(cx, &mm, BASE + 3 * PG, 33).unwrap();
    assert!(!read_translation(cx, &mm, BASE + 3 * PG).1, "split to PTEs");
    assert_eq!(mm.get_rss(MM_ANONPAGES), 1);
    assert_eq!(user_load(cx, &mm, BASE + 3 * PG).unwrap(), 33);
    clean(&k);
    teardown(&k, &[&mm]);
}
