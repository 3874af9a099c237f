//! A planted use-after-free of a page table, and the frame check that catches it.
//!
//! CPU0 maps a PTE table with `pte_offset_map` (an RCU reader, like a lockless walker); CPU1 runs
//! `MADV_DONTNEED` over the whole 2 MiB the table maps, so PT reclaim detaches and frees it; then
//! CPU0 reads an entry through its map. Whether that read touches freed memory depends on how the
//! mmu_gather frees tables (`linux-rules.md` §3, "table-freeing rules"):
//! - `Immediate` (x86 bare metal before 6.15): freed right after the TLB flush: use-after-free.
//! - `Ipi` (`tlb_remove_table_sync_one`): the IPI waits for IRQ-off walkers only, not for an
//!   `rcu_read_lock` reader: use-after-free. This is why PT reclaim (6.14) needed real RCU
//!   freeing.
//! - `Rcu` (`MMU_GATHER_RCU_TABLE_FREE`): the table outlives the reader: clean.
//!
//! Everything runs on one OS thread; each CPU is a `Ctx` handle, so the interleaving is fixed.

use mmcheck_kernel::arch::fault::{user_load, user_store};
use mmcheck_kernel::check::check_quiescent;
use mmcheck_kernel::mm::madvise::madvise_dontneed;
use mmcheck_kernel::mm::pgtable::{pmd_off, pte_offset_map};
use mmcheck_kernel::mm::vma::{do_mmap, exit_mmap, mm_alloc, mmdrop, MapBacking};
use mmcheck_kernel::protocol::TableFree;
use mmcheck_kernel::{Entry, Geometry, Kernel, MmStruct, Protocol};
use mmcheck_platform::{Access, FrameKind, Violation, ViolationKind};
use std::sync::Arc;

const BASE: u64 = 0x4000_0000_0000; // 2 MiB (and 1 GiB) aligned
const PG: u64 = 4096;
const PAGES: u64 = 512;

fn kernel(free: TableFree) -> Kernel {
    let proto = Protocol {
        table_free: free,
        pt_reclaim_free: free,
        ..Protocol::default()
    };
    assert!(proto.pt_reclaim, "the scenario needs PT reclaim");
    Kernel::native(Geometry::X86_64, proto, 2, 1 << 14)
}

/// Map and touch the 512-page region on CPU0.
fn populated(k: &Kernel) -> Arc<MmStruct> {
    let cx = k.ctx(0);
    let mm = mm_alloc(cx).unwrap();
    do_mmap(
        cx,
        &mm,
        BASE,
        PAGES * PG,
        MapBacking::AnonPrivate,
        true,
        false,
    )
    .unwrap();
    for i in 0..PAGES {
        user_store(cx, &mm, BASE + i * PG, 1000 + i).unwrap();
    }
    assert_eq!(user_load(cx, &mm, BASE + 7 * PG).unwrap(), 1007);
    assert_eq!(mm.nr_ptes.get_quiescent(), 1);
    assert!(!k.machine.violated(), "{:?}", k.machine.violations());
    mm
}

fn uafs(k: &Kernel) -> Vec<Violation> {
    k.machine
        .violations()
        .into_iter()
        .filter(|v| v.kind == ViolationKind::UseAfterFree)
        .collect()
}

/// Run the scenario with `free`; returns the violations CPU0's read reported and the table's pfn.
fn race(free: TableFree) -> (Kernel, Vec<Violation>, u32) {
    let k = kernel(free);
    let mm = populated(&k);
    let (c0, c1) = (k.ctx(0), k.ctx(1));
    let pmd = pmd_off(c0, &mm, BASE).unwrap();
    let map = pte_offset_map(c0, pmd).expect("the PTE table is installed");
    let table = map.table;
    assert_eq!(
        Entry(c0.cpu.entry_read(table, 3)).pfn(),
        Entry(c0.cpu.entry_peek(table, 3)).pfn()
    );
    assert!(!k.machine.violated());

    madvise_dontneed(c1, &mm, BASE, PAGES * PG).unwrap();
    assert!(pmd.get(c1).is_none(), "PT reclaim detached the table");
    assert_eq!(mm.nr_ptes.get_quiescent(), 0);
    assert!(!k.machine.violated(), "the zap itself is clean");

    let before = k.machine.violations().len();
    let e = map.pte(3).get(c0);
    let after: Vec<Violation> = k.machine.violations()[before..].to_vec();
    if after.is_empty() {
        assert!(e.is_none(), "the zap cleared every entry: {e:?}");
    }
    drop(map);
    drop(mm);
    (k, after, table.pfn)
}

fn assert_uaf_by_madvise(v: &[Violation], pfn: u32, free_path: &str) {
    assert_eq!(v.len(), 1, "{v:#?}");
    let v = &v[0];
    assert_eq!(v.kind, ViolationKind::UseAfterFree);
    assert_eq!(v.cpu, Some(0), "reported on the reader");
    assert!(v.msg.contains("entry read"), "{}", v.msg);
    assert!(v.msg.contains(&format!("pfn {pfn} ")), "{}", v.msg);
    assert!(
        v.msg.contains("freed by CPU1 in madvise_dontneed"),
        "{}",
        v.msg
    );
    assert!(v.msg.contains("tlb_finish_mmu"), "{}", v.msg);
    assert!(v.msg.contains(free_path), "{}", v.msg);
}

#[test]
fn immediate_table_free_is_a_use_after_free_for_a_pte_map_reader() {
    let (k, v, pfn) = race(TableFree::Immediate);
    assert_eq!(k.machine.frames.kind(pfn), FrameKind::Free);
    assert_uaf_by_madvise(&v, pfn, "tlb_remove_page");
    assert_eq!(uafs(&k).len(), 1);
}

#[test]
fn ipi_table_free_does_not_protect_an_rcu_reader() {
    let (k, v, pfn) = race(TableFree::Ipi);
    assert_eq!(k.machine.frames.kind(pfn), FrameKind::Free);
    assert_uaf_by_madvise(&v, pfn, "tlb_remove_table_one");
    assert_eq!(uafs(&k).len(), 1);
}

#[test]
fn rcu_table_free_keeps_the_table_until_the_reader_leaves() {
    let k = kernel(TableFree::Rcu);
    let mm = populated(&k);
    let (c0, c1) = (k.ctx(0), k.ctx(1));
    let pmd = pmd_off(c0, &mm, BASE).unwrap();
    let map = pte_offset_map(c0, pmd).unwrap();
    let table = map.table;

    madvise_dontneed(c1, &mm, BASE, PAGES * PG).unwrap();
    assert!(pmd.get(c1).is_none());
    assert_eq!(
        k.machine.frames.kind(table.pfn),
        FrameKind::Table(1),
        "freed under an RCU reader"
    );
    assert!(k.machine.frames.is_live(table));
    assert_eq!(c1.cpu.rcu_pending(), 1);
    assert_eq!(c1.cpu.rcu_poll(), 0, "CPU0's reader predates the free");

    // The reader sees a detached but intact (zapped) table.
    for idx in [0, 3, 511] {
        assert!(map.pte(idx).get(c0).is_none());
    }
    assert!(!k.machine.violated(), "{:?}", k.machine.violations());

    drop(map);
    assert!(!c0.cpu.in_rcu_reader());
    assert_eq!(c0.cpu.rcu_poll(), 1);
    assert_eq!(k.machine.frames.kind(table.pfn), FrameKind::Free);
    assert!(!k.machine.violated());

    // The region refaults zero-filled, and everything still adds up.
    assert_eq!(user_load(c0, &mm, BASE + 3 * PG).unwrap(), 0);
    assert!(check_quiescent(&k).is_empty());
    exit_mmap(c0, &mm);
    mmdrop(c0, &mm);
    drop(mm);
    assert!(check_quiescent(&k).is_empty());
    assert_eq!(k.machine.frames.nr_used(), 1, "only the zero page is left");
    assert!(!k.machine.violated(), "{:?}", k.machine.violations());
}

/// A backend that reports every wait that cannot proceed at once, then spins it out.
struct Probe(std::sync::mpsc::Sender<(usize, mmcheck_platform::Event)>);

impl mmcheck_platform::Backend for Probe {
    fn visible(&self, _cpu: usize, _ev: mmcheck_platform::Event) {}

    fn block(&self, cpu: usize, ev: mmcheck_platform::Event, ready: &dyn Fn() -> bool) {
        if ready() {
            return;
        }
        let _ = self.0.send((cpu, ev));
        while !ready() {
            std::thread::yield_now();
        }
    }

    fn violation(&self, _cpu: usize, _v: &Violation) {}
}

/// The contrast to `ipi_table_free_does_not_protect_an_rcu_reader`: a walker that keeps IRQs off
/// (GUP-fast) holds up the TLB-flush IPI, so under `Ipi` freeing the table cannot go away under it.
/// CPU1 runs on a second thread; CPU0 (this thread) reads only once CPU1 is seen waiting.
#[test]
fn ipi_table_free_protects_an_irq_off_walker() {
    let (tx, rx) = std::sync::mpsc::channel();
    let proto = Protocol {
        table_free: TableFree::Ipi,
        pt_reclaim_free: TableFree::Ipi,
        ..Protocol::default()
    };
    let cfg = mmcheck_platform::MachineConfig {
        nr_cpus: 2,
        nr_frames: 1 << 14,
        entries_per_table: Geometry::X86_64.entries(),
        ..mmcheck_platform::MachineConfig::default()
    };
    let k = Kernel::new(
        mmcheck_platform::Machine::new(cfg, Box::new(Probe(tx))),
        Geometry::X86_64,
        proto,
    );
    let mm = populated(&k);
    let c0 = k.ctx(0);
    let pmd = pmd_off(c0, &mm, BASE).unwrap();
    let irq = c0.cpu.local_irq_disable();
    let map = pte_offset_map(c0, pmd).unwrap();
    let table = map.table;
    std::thread::scope(|s| {
        let (k, mm) = (&k, &mm);
        let zapper = s.spawn(move || madvise_dontneed(k.ctx(1), mm, BASE, PAGES * PG));
        // Wait until CPU1 is held up by CPU0's IRQ-off region (the shootdown or the sync IPI).
        loop {
            let (cpu, ev) = rx.recv().unwrap();
            if cpu == 1 && matches!(ev.access, Access::Flush | Access::IpiSync) {
                break;
            }
        }
        assert!(
            k.machine.frames.is_live(table),
            "not freed while CPU0 is IRQ-off"
        );
        assert!(map.pte(3).get(c0).is_none(), "zapped before the flush");
        assert!(!k.machine.violated(), "{:?}", k.machine.violations());
        drop(map);
        drop(irq);
        assert_eq!(zapper.join().unwrap(), Ok(()));
    });
    assert_eq!(k.machine.frames.kind(table.pfn), FrameKind::Free);
    assert!(!k.machine.violated(), "{:?}", k.machine.violations());
    assert_eq!(user_load(c0, &mm, BASE + 3 * PG).unwrap(), 0);
}
