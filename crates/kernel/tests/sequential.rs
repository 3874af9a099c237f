//! Sequential semantics of the core mm on x86-64 geometry: faults, COW, zap, PT reclaim,
//! free_pgtables, fork, shmem, huge PMDs, and the quiescent invariants after each.

use mmcheck_kernel::arch::fault::{user_load, user_store};
use mmcheck_kernel::check::check_quiescent;
use mmcheck_kernel::mm::fork::dup_mmap;
use mmcheck_kernel::mm::madvise::madvise_dontneed;
use mmcheck_kernel::mm::vma::{
    do_mmap, do_munmap, exit_mmap, madvise_hugepage, mm_alloc, mmdrop, MapBacking,
};
use mmcheck_kernel::{Geometry, Kernel, Protocol};

const BASE: u64 = 0x4000_0000_0000;
const PG: u64 = 4096;

fn kernel() -> Kernel {
    Kernel::native(Geometry::X86_64, Protocol::default(), 2, 1 << 14)
}

fn assert_clean(k: &Kernel) {
    let errs = check_quiescent(k);
    assert!(errs.is_empty(), "invariants: {errs:?}");
    assert!(
        !k.machine.violated(),
        "violations: {:?}",
        k.machine.violations()
    );
}

#[test]
fn anon_fault_store_load_and_tables() {
    let k = kernel();
    let cx = k.ctx(0);
    let mm = mm_alloc(cx).unwrap();
    do_mmap(cx, &mm, BASE, PG, MapBacking::AnonPrivate, true, false).unwrap();
    user_store(cx, &mm, BASE, 7).unwrap();
    assert_eq!(user_load(cx, &mm, BASE).unwrap(), 7);
    assert_eq!(mm.pgtables(), 3, "PUD + PMD + PTE table");
    assert_eq!(mm.get_rss(1), 1);
    assert_clean(&k);
    do_munmap(cx, &mm, BASE, PG).unwrap();
    assert_eq!(mm.pgtables(), 0);
    assert_eq!(mm.get_rss(1), 0);
    assert_clean(&k);
}

#[test]
fn zero_page_then_cow() {
    let k = kernel();
    let cx = k.ctx(0);
    let mm = mm_alloc(cx).unwrap();
    do_mmap(cx, &mm, BASE, 4 * PG, MapBacking::AnonPrivate, true, false).unwrap();
    assert_eq!(user_load(cx, &mm, BASE + PG).unwrap(), 0);
    assert_eq!(mm.get_rss(1), 0, "zero page is not rss");
    user_store(cx, &mm, BASE + PG, 9).unwrap();
    assert_eq!(mm.get_rss(1), 1);
    assert_eq!(user_load(cx, &mm, BASE + PG).unwrap(), 9);
    assert_clean(&k);
}

#[test]
fn dontneed_reclaims_whole_table_only() {
    let k = kernel();
    let cx = k.ctx(0);
    let mm = mm_alloc(cx).unwrap();
    do_mmap(
        cx,
        &mm,
        BASE,
        1024 * PG,
        MapBacking::AnonPrivate,
        true,
        false,
    )
    .unwrap();
    user_store(cx, &mm, BASE, 1).unwrap();
    user_store(cx, &mm, BASE + 512 * PG, 2).unwrap();
    assert_eq!(mm.pgtables(), 4);
    madvise_dontneed(cx, &mm, BASE + PG, 511 * PG).unwrap();
    assert_eq!(mm.pgtables(), 4, "partial range: no reclaim");
    madvise_dontneed(cx, &mm, BASE + 512 * PG, 512 * PG).unwrap();
    assert_eq!(mm.pgtables(), 3, "whole table emptied and reclaimed");
    assert_eq!(user_load(cx, &mm, BASE + 512 * PG).unwrap(), 0);
    assert_eq!(user_load(cx, &mm, BASE).unwrap(), 1);
    assert_clean(&k);
}

#[test]
fn munmap_floor_ceiling() {
    let k = kernel();
    let cx = k.ctx(0);
    let mm = mm_alloc(cx).unwrap();
    do_mmap(
        cx,
        &mm,
        BASE,
        1024 * PG,
        MapBacking::AnonPrivate,
        true,
        false,
    )
    .unwrap();
    for p in [0, 200, 700, 1000] {
        user_store(cx, &mm, BASE + p * PG, p + 1).unwrap();
    }
    do_munmap(cx, &mm, BASE + 100 * PG, 800 * PG).unwrap();
    assert_eq!(mm.pgtables(), 4, "both PTE tables still overlap mappings");
    assert_eq!(user_load(cx, &mm, BASE + 1000 * PG).unwrap(), 1001);
    assert_clean(&k);
    do_munmap(cx, &mm, BASE, 1024 * PG).unwrap();
    assert_eq!(mm.pgtables(), 0);
    assert_clean(&k);
}

#[test]
fn shmem_shared_survives_dontneed_and_fault_around() {
    let k = kernel();
    let cx = k.ctx(0);
    let mm = mm_alloc(cx).unwrap();
    do_mmap(cx, &mm, BASE, 40 * PG, MapBacking::ShmemShared, true, false).unwrap();
    for p in 0..20 {
        user_store(cx, &mm, BASE + p * PG, 100 + p).unwrap();
    }
    assert_eq!(mm.get_rss(2), 20);
    madvise_dontneed(cx, &mm, BASE, 40 * PG).unwrap();
    assert_eq!(mm.get_rss(2), 0);
    assert_eq!(user_load(cx, &mm, BASE + 3 * PG).unwrap(), 103);
    assert_eq!(
        mm.get_rss(2),
        16,
        "fault-around maps the cached 16-page window"
    );
    assert_clean(&k);
    exit_mmap(cx, &mm);
    mmdrop(cx, &mm);
    drop(mm);
    assert_clean(&k);
    assert_eq!(k.machine.frames.nr_used(), 1, "only the zero page remains");
}

#[test]
fn fork_cow_isolation() {
    let k = kernel();
    let cx = k.ctx(0);
    let mm = mm_alloc(cx).unwrap();
    do_mmap(cx, &mm, BASE, 8 * PG, MapBacking::AnonPrivate, true, false).unwrap();
    do_mmap(
        cx,
        &mm,
        BASE + 64 * PG,
        8 * PG,
        MapBacking::ShmemShared,
        true,
        false,
    )
    .unwrap();
    user_store(cx, &mm, BASE, 5).unwrap();
    user_store(cx, &mm, BASE + 64 * PG, 6).unwrap();
    let child = dup_mmap(cx, &mm).unwrap();
    assert_clean(&k);
    let c1 = k.ctx(1);
    user_store(c1, &child, BASE, 50).unwrap();
    user_store(c1, &child, BASE + 64 * PG, 60).unwrap();
    assert_eq!(user_load(cx, &mm, BASE).unwrap(), 5, "private: COW");
    assert_eq!(
        user_load(cx, &mm, BASE + 64 * PG).unwrap(),
        60,
        "shared: same page"
    );
    user_store(cx, &mm, BASE, 51).unwrap();
    assert_eq!(user_load(c1, &child, BASE).unwrap(), 50);
    assert_clean(&k);
    for m in [&mm, &child] {
        exit_mmap(cx, m);
        mmdrop(cx, m);
    }
    drop((mm, child));
    assert_clean(&k);
    assert_eq!(k.machine.frames.nr_used(), 1);
}

#[test]
fn huge_pmd_fault_zap_and_split() {
    let k = kernel();
    let cx = k.ctx(0);
    let mm = mm_alloc(cx).unwrap();
    do_mmap(
        cx,
        &mm,
        BASE,
        1024 * PG,
        MapBacking::AnonPrivate,
        true,
        true,
    )
    .unwrap();
    user_store(cx, &mm, BASE + 3 * PG, 33).unwrap();
    assert_eq!(mm.get_rss(1), 512, "one THP");
    assert_eq!(user_load(cx, &mm, BASE + 3 * PG).unwrap(), 33);
    assert_eq!(
        user_load(cx, &mm, BASE + 600 * PG).unwrap(),
        0,
        "huge zero page"
    );
    assert_clean(&k);
    // Partial zap splits the PMD.
    madvise_dontneed(cx, &mm, BASE, 2 * PG).unwrap();
    assert_eq!(mm.get_rss(1), 510);
    assert_eq!(user_load(cx, &mm, BASE + 3 * PG).unwrap(), 33);
    assert_clean(&k);
    madvise_hugepage(cx, &mm, BASE, 1024 * PG).unwrap();
    do_munmap(cx, &mm, BASE, 1024 * PG).unwrap();
    assert_eq!(mm.pgtables(), 0);
    assert_clean(&k);
}
