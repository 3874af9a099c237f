//! `try_realign_addr` (review B7, `mm/mremap.c`, 6.7+): a move whose source and destination sit
//! at the same offset in their PMD ranges, with nothing mapped below either down to the
//! boundary, starts at that boundary, so the first PTE table moves whole (`move_normal_pmd`)
//! instead of entry by entry. Before the fix the model always moved entry by entry.

use mmcheck_kernel::arch::fault::user_store;
use mmcheck_kernel::check::check_quiescent;
use mmcheck_kernel::mm::mremap::do_mremap;
use mmcheck_kernel::mm::pgtable::{pmd_off, read_translation};
use mmcheck_kernel::mm::vma::{do_mmap, exit_mmap, mm_alloc, mmdrop, MapBacking};
use mmcheck_kernel::{Geometry, Kernel, Protocol};

const BASE: u64 = 0x4000_0000_0000;
const PG: u64 = 4096;
const PMD: u64 = 512 * PG;

/// Map 600 pages 5 pages above a PMD boundary, store to the first, move them 5 pages above a
/// boundary 4 PMDs up: returns (the PTE table of the source before, the one of the destination
/// after), and checks the data moved.
fn moved_table(proto: Protocol) -> (u32, u32) {
    let k = Kernel::native(Geometry::X86_64, proto, 1, 1 << 12);
    let cx = k.ctx(0);
    let mm = mm_alloc(cx).unwrap();
    let (old, new) = (BASE + 5 * PG, BASE + 4 * PMD + 5 * PG);
    do_mmap(cx, &mm, old, 600 * PG, MapBacking::AnonPrivate, true, false).unwrap();
    user_store(cx, &mm, old, 7).unwrap();
    let before = pmd_off(cx, &mm, old).unwrap().get(cx).pfn();
    do_mremap(cx, &mm, old, 600 * PG, new).unwrap();
    let after = pmd_off(cx, &mm, new).unwrap().get(cx).pfn();
    assert!(read_translation(cx, &mm, new).0.is_some(), "the page moved");
    exit_mmap(cx, &mm);
    mmdrop(cx, &mm);
    assert!(check_quiescent(&k).is_empty());
    assert!(!k.machine.violated(), "{:?}", k.machine.violations());
    (before, after)
}

#[test]
fn mutually_aligned_move_takes_the_table_whole() {
    let (before, after) = moved_table(Protocol::default());
    assert_eq!(
        before, after,
        "the source's PTE table is now the destination's"
    );
}

#[test]
fn without_realign_the_entries_move_into_a_new_table() {
    let mut p = Protocol::default();
    p.set("mremap.realign", "off").unwrap();
    let (before, after) = moved_table(p);
    assert_ne!(before, after);
}
