//! Sequential self-tests of the core mm on x86-64 geometry: faults, COW, zap, PT reclaim,
//! free_pgtables floor/ceiling, fork, shmem fault-around, huge PMDs, and the quiescent invariants
//! after each step. Each expectation is what Linux 6.18 does (checked against the host by
//! `mmcheck diff-kernel`). `mmcheck check` runs them natively; the test suite runs them too.

use crate::arch::fault::{user_load, user_store};
use crate::check::check_quiescent;
use crate::mm::fork::dup_mmap;
use crate::mm::madvise::madvise_dontneed;
use crate::mm::vma::{
    do_mmap, do_munmap, exit_mmap, madvise_hugepage, mm_alloc, mmdrop, MapBacking,
};
use crate::{Geometry, Kernel, Protocol};

const BASE: u64 = 0x4000_0000_0000;
const PG: u64 = 4096;

macro_rules! ensure {
    ($c:expr, $($m:tt)+) => {
        if !$c {
            return Err(format!($($m)+));
        }
    };
}

macro_rules! ensure_eq {
    ($a:expr, $b:expr $(, $m:expr)?) => {{
        let (a, b) = ($a, $b);
        if a != b {
            return Err(format!("{} = {:?}, expected {:?} {}", stringify!($a), a, b, concat!($($m)?)));
        }
    }};
}

/// A self-test: its name and body.
pub type SelfTest = (&'static str, fn() -> Result<(), String>);

fn kernel() -> Kernel {
    Kernel::native(Geometry::X86_64, Protocol::default(), 2, 1 << 14)
}

fn clean(k: &Kernel) -> Result<(), String> {
    let errs = check_quiescent(k);
    ensure!(errs.is_empty(), "invariants: {errs:?}");
    ensure!(
        !k.machine.violated(),
        "violations: {:?}",
        k.machine.violations()
    );
    Ok(())
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn anon_fault_store_load_and_tables() -> Result<(), String> {
    let k = kernel();
    let cx = k.ctx(0);
    let mm = mm_alloc(cx).map_err(err)?;
    do_mmap(cx, &mm, BASE, PG, MapBacking::AnonPrivate, true, false).map_err(err)?;
    user_store(cx, &mm, BASE, 7).map_err(err)?;
    ensure_eq!(user_load(cx, &mm, BASE).map_err(err)?, 7);
    ensure_eq!(mm.pgtables(), 3, "PUD + PMD + PTE table");
    ensure_eq!(mm.get_rss(1), 1);
    clean(&k)?;
    do_munmap(cx, &mm, BASE, PG).map_err(err)?;
    ensure_eq!(mm.pgtables(), 0);
    ensure_eq!(mm.get_rss(1), 0);
    clean(&k)?;
    Ok(())
}

fn zero_page_then_cow() -> Result<(), String> {
    let k = kernel();
    let cx = k.ctx(0);
    let mm = mm_alloc(cx).map_err(err)?;
    do_mmap(cx, &mm, BASE, 4 * PG, MapBacking::AnonPrivate, true, false).map_err(err)?;
    ensure_eq!(user_load(cx, &mm, BASE + PG).map_err(err)?, 0);
    ensure_eq!(mm.get_rss(1), 0, "zero page is not rss");
    user_store(cx, &mm, BASE + PG, 9).map_err(err)?;
    ensure_eq!(mm.get_rss(1), 1);
    ensure_eq!(user_load(cx, &mm, BASE + PG).map_err(err)?, 9);
    clean(&k)?;
    Ok(())
}

fn dontneed_reclaims_whole_table_only() -> Result<(), String> {
    let k = kernel();
    let cx = k.ctx(0);
    let mm = mm_alloc(cx).map_err(err)?;
    do_mmap(
        cx,
        &mm,
        BASE,
        1024 * PG,
        MapBacking::AnonPrivate,
        true,
        false,
    )
    .map_err(err)?;
    user_store(cx, &mm, BASE, 1).map_err(err)?;
    user_store(cx, &mm, BASE + 512 * PG, 2).map_err(err)?;
    ensure_eq!(mm.pgtables(), 4);
    madvise_dontneed(cx, &mm, BASE + PG, 511 * PG).map_err(err)?;
    ensure_eq!(mm.pgtables(), 4, "partial range: no reclaim");
    madvise_dontneed(cx, &mm, BASE + 512 * PG, 512 * PG).map_err(err)?;
    ensure_eq!(mm.pgtables(), 3, "whole table emptied and reclaimed");
    ensure_eq!(user_load(cx, &mm, BASE + 512 * PG).map_err(err)?, 0);
    ensure_eq!(user_load(cx, &mm, BASE).map_err(err)?, 1);
    clean(&k)?;
    Ok(())
}

fn munmap_floor_ceiling() -> Result<(), String> {
    let k = kernel();
    let cx = k.ctx(0);
    let mm = mm_alloc(cx).map_err(err)?;
    do_mmap(
        cx,
        &mm,
        BASE,
        1024 * PG,
        MapBacking::AnonPrivate,
        true,
        false,
    )
    .map_err(err)?;
    for p in [0, 200, 700, 1000] {
        user_store(cx, &mm, BASE + p * PG, p + 1).map_err(err)?;
    }
    do_munmap(cx, &mm, BASE + 100 * PG, 800 * PG).map_err(err)?;
    ensure_eq!(mm.pgtables(), 4, "both PTE tables still overlap mappings");
    ensure_eq!(user_load(cx, &mm, BASE + 1000 * PG).map_err(err)?, 1001);
    clean(&k)?;
    do_munmap(cx, &mm, BASE, 1024 * PG).map_err(err)?;
    ensure_eq!(mm.pgtables(), 0);
    clean(&k)?;
    Ok(())
}

fn shmem_shared_survives_dontneed_and_fault_around() -> Result<(), String> {
    let k = kernel();
    let cx = k.ctx(0);
    let mm = mm_alloc(cx).map_err(err)?;
    do_mmap(cx, &mm, BASE, 40 * PG, MapBacking::ShmemShared, true, false).map_err(err)?;
    for p in 0..20 {
        user_store(cx, &mm, BASE + p * PG, 100 + p).map_err(err)?;
    }
    ensure_eq!(mm.get_rss(2), 20);
    madvise_dontneed(cx, &mm, BASE, 40 * PG).map_err(err)?;
    ensure_eq!(mm.get_rss(2), 0);
    ensure_eq!(user_load(cx, &mm, BASE + 3 * PG).map_err(err)?, 103);
    ensure_eq!(
        mm.get_rss(2),
        16,
        "fault-around maps the cached 16-page window"
    );
    clean(&k)?;
    exit_mmap(cx, &mm);
    mmdrop(cx, &mm);
    drop(mm);
    clean(&k)?;
    ensure_eq!(k.machine.frames.nr_used(), 1, "only the zero page remains");
    Ok(())
}

fn fork_cow_isolation() -> Result<(), String> {
    let k = kernel();
    let cx = k.ctx(0);
    let mm = mm_alloc(cx).map_err(err)?;
    do_mmap(cx, &mm, BASE, 8 * PG, MapBacking::AnonPrivate, true, false).map_err(err)?;
    do_mmap(
        cx,
        &mm,
        BASE + 64 * PG,
        8 * PG,
        MapBacking::ShmemShared,
        true,
        false,
    )
    .map_err(err)?;
    user_store(cx, &mm, BASE, 5).map_err(err)?;
    user_store(cx, &mm, BASE + 64 * PG, 6).map_err(err)?;
    let child = dup_mmap(cx, &mm).map_err(err)?;
    clean(&k)?;
    let c1 = k.ctx(1);
    user_store(c1, &child, BASE, 50).map_err(err)?;
    user_store(c1, &child, BASE + 64 * PG, 60).map_err(err)?;
    ensure_eq!(user_load(cx, &mm, BASE).map_err(err)?, 5, "private: COW");
    ensure_eq!(
        user_load(cx, &mm, BASE + 64 * PG).map_err(err)?,
        60,
        "shared: same page"
    );
    user_store(cx, &mm, BASE, 51).map_err(err)?;
    ensure_eq!(user_load(c1, &child, BASE).map_err(err)?, 50);
    clean(&k)?;
    for m in [&mm, &child] {
        exit_mmap(cx, m);
        mmdrop(cx, m);
    }
    drop((mm, child));
    clean(&k)?;
    ensure_eq!(k.machine.frames.nr_used(), 1);
    Ok(())
}

fn huge_pmd_fault_zap_and_split() -> Result<(), String> {
    let k = kernel();
    let cx = k.ctx(0);
    let mm = mm_alloc(cx).map_err(err)?;
    do_mmap(
        cx,
        &mm,
        BASE,
        1024 * PG,
        MapBacking::AnonPrivate,
        true,
        true,
    )
    .map_err(err)?;
    user_store(cx, &mm, BASE + 3 * PG, 33).map_err(err)?;
    ensure_eq!(mm.get_rss(1), 512, "one THP");
    ensure_eq!(user_load(cx, &mm, BASE + 3 * PG).map_err(err)?, 33);
    ensure_eq!(
        user_load(cx, &mm, BASE + 600 * PG).map_err(err)?,
        0,
        "huge zero page"
    );
    clean(&k)?;
    // Partial zap splits the PMD.
    madvise_dontneed(cx, &mm, BASE, 2 * PG).map_err(err)?;
    ensure_eq!(mm.get_rss(1), 510);
    ensure_eq!(user_load(cx, &mm, BASE + 3 * PG).map_err(err)?, 33);
    clean(&k)?;
    madvise_hugepage(cx, &mm, BASE, 1024 * PG).map_err(err)?;
    do_munmap(cx, &mm, BASE, 1024 * PG).map_err(err)?;
    ensure_eq!(mm.pgtables(), 0);
    clean(&k)?;
    Ok(())
}

/// Every self-test.
pub const SELFTESTS: &[SelfTest] = &[
    (
        "anon_fault_store_load_and_tables",
        anon_fault_store_load_and_tables,
    ),
    ("zero_page_then_cow", zero_page_then_cow),
    (
        "dontneed_reclaims_whole_table_only",
        dontneed_reclaims_whole_table_only,
    ),
    ("munmap_floor_ceiling", munmap_floor_ceiling),
    (
        "shmem_shared_survives_dontneed_and_fault_around",
        shmem_shared_survives_dontneed_and_fault_around,
    ),
    ("fork_cow_isolation", fork_cow_isolation),
    ("huge_pmd_fault_zap_and_split", huge_pmd_fault_zap_and_split),
];
