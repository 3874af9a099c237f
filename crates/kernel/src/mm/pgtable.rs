//! Walking, allocating and mapping page tables (`mm/pgtable-generic.c`, the allocation half of
//! `mm/memory.c`, ≈6.14): `pgd_offset` … `pmd_alloc`, `__pte_alloc`/`pmd_install`, the lock
//! pointers (`pmd_lockptr` from the entry's address, `pte_lockptr` from the PMD's value), and the
//! `pte_offset_map*` family, which enter RCU and may fail (6.5+).

use crate::arch::pgtable::Entry;
use crate::mm::types::MmStruct;
use crate::{Ctx, Errno};
use mmcheck_platform::{FrameKind, FrameRef, RcuGuard, SpinGuard, SpinLock};

/// A pointer to one entry: the table (as derived, with its generation), the index, and the level
/// of the table (1 = PTE table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryPtr {
    pub table: FrameRef,
    pub idx: usize,
    pub level: u32,
}

impl EntryPtr {
    /// `READ_ONCE` (`ptep_get`, `pmdp_get_lockless`, ...).
    #[inline]
    pub fn get(&self, cx: Ctx<'_>) -> Entry {
        Entry(cx.cpu.entry_read(self.table, self.idx))
    }

    /// `WRITE_ONCE` (`set_pte`, `pmd_populate`, `pmd_clear`, ...).
    #[inline]
    pub fn set(&self, cx: Ctx<'_>, e: Entry) {
        cx.cpu.entry_write(self.table, self.idx, e.0);
        self.name_link(cx, e);
    }

    /// `xchg` (`ptep_get_and_clear`; relaxed under `memory = lkmm`, as arm64's
    /// `__ptep_get_and_clear` is).
    #[inline]
    pub fn xchg(&self, cx: Ctx<'_>, e: Entry) -> Entry {
        let old = Entry(cx.cpu.entry_xchg(self.table, self.idx, e.0));
        self.name_link(cx, e);
        old
    }

    /// The hardware walker's atomic A/D update (performed in memory under every model).
    #[inline]
    pub fn cmpxchg_hw(&self, cx: Ctx<'_>, old: Entry, new: Entry) -> Result<Entry, Entry> {
        cx.cpu
            .entry_cmpxchg_hw(self.table, self.idx, old.0, new.0)
            .map(Entry)
            .map_err(Entry)
    }

    /// `cmpxchg` (relaxed under `memory = lkmm`, as arm64's page-table RMWs are).
    #[inline]
    pub fn cmpxchg(&self, cx: Ctx<'_>, old: Entry, new: Entry) -> Result<Entry, Entry> {
        let r = cx
            .cpu
            .entry_cmpxchg(self.table, self.idx, old.0, new.0)
            .map(Entry)
            .map_err(Entry);
        if r.is_ok() {
            self.name_link(cx, new);
        }
        r
    }

    /// Log a table linked by a write of `e` here, for the names in traces.
    #[inline]
    fn name_link(&self, cx: Ctx<'_>, e: Entry) {
        if self.level > 1 && e.is_table() {
            cx.k.machine.name_link(self.table.pfn, self.idx, e.pfn());
        }
    }

    /// The sibling entry at `idx`.
    pub fn at(&self, idx: usize) -> EntryPtr {
        EntryPtr { idx, ..*self }
    }
}

/// `pgd_offset`.
pub fn pgd_offset(cx: Ctx<'_>, mm: &MmStruct, addr: u64) -> EntryPtr {
    let g = cx.geo();
    EntryPtr {
        table: mm.pgd,
        idx: g.index(addr, g.levels),
        level: g.levels,
    }
}

/// The entry for `addr` in the table `e` points to (one level down).
pub fn entry_below(cx: Ctx<'_>, e: Entry, level: u32, addr: u64) -> EntryPtr {
    let table = cx.cpu.frame_ref(e.pfn());
    EntryPtr {
        table,
        idx: cx.geo().index(addr, level - 1),
        level: level - 1,
    }
}

/// The lock protecting entries of the level-`level` table `table`: the split PTL for PTE tables,
/// the split PMD lock for PMD tables (unless the PMD table is the PGD), and `page_table_lock` for
/// upper levels or without split ptlocks.
pub fn table_lock<'a>(cx: Ctx<'a>, mm: &'a MmStruct, table: FrameRef, level: u32) -> &'a SpinLock {
    if !cx.proto().split_ptlocks || level >= 3 || level == cx.geo().levels {
        &mm.page_table_lock
    } else {
        cx.cpu.ptl_of(table)
    }
}

/// `pmd_lockptr`: from the ADDRESS of the PMD entry.
pub fn pmd_lockptr<'a>(cx: Ctx<'a>, mm: &'a MmStruct, pmd: EntryPtr) -> &'a SpinLock {
    table_lock(cx, mm, pmd.table, 2)
}

/// `pmd_lock`.
#[track_caller]
pub fn pmd_lock<'a>(cx: Ctx<'a>, mm: &'a MmStruct, pmd: EntryPtr) -> SpinGuard<'a> {
    pmd_lockptr(cx, mm, pmd).lock(cx.cpu)
}

/// `pte_lockptr`: from the VALUE of the PMD (the table it points to).
pub fn pte_lockptr<'a>(cx: Ctx<'a>, mm: &'a MmStruct, pmdval: Entry) -> &'a SpinLock {
    let table = cx.cpu.frame_ref(pmdval.pfn());
    table_lock(cx, mm, table, 1)
}

/// Walk the upper levels locklessly down to the PMD entry for `addr`; `None` if an upper table is
/// missing (`pmd_off` with `*_none` checks).
pub fn pmd_off(cx: Ctx<'_>, mm: &MmStruct, addr: u64) -> Option<EntryPtr> {
    let mut p = pgd_offset(cx, mm, addr);
    while p.level > 2 {
        let e = p.get(cx);
        if !e.is_table() {
            return None;
        }
        p = entry_below(cx, e, p.level, addr);
    }
    Some(p)
}

/// Allocate a zeroed table of `level` (`pte_alloc_one`, `pmd_alloc_one`, ...).
pub fn alloc_table(cx: Ctx<'_>, level: u32) -> Option<FrameRef> {
    cx.k.machine
        .frames
        .alloc(&cx.cpu, 0, FrameKind::Table(level as u8))
}

/// Free a table that was never published.
pub fn free_table(cx: Ctx<'_>, t: FrameRef) {
    cx.k.machine.frames.free(&cx.cpu, t, 0);
}

/// Bump the table counter of `level` (`mm_inc_nr_ptes`, `mm_inc_nr_pmds`, ...).
pub fn mm_inc_nr_tables(mm: &MmStruct, level: u32, n: i64) {
    if let Some(c) = mm.nr_tables(level) {
        c.add(n);
    }
}

/// `__p4d_alloc` / `__pud_alloc` / `__pmd_alloc` / `pmd_install`: populate the none entry `p`
/// with `new` under its lock after re-checking none; free `new` if someone beat us.
/// LOCKING: `smp_wmb` orders the zeroed table before the pointer (lockless walkers).
pub fn populate(cx: Ctx<'_>, mm: &MmStruct, p: EntryPtr, new: FrameRef) -> bool {
    let lock = table_lock(cx, mm, p.table, p.level);
    let g = cx.proto().populate_locked.then(|| lock.lock(cx.cpu));
    let installed = if cx.cpu.recheck("pmd_none", p.get(cx).is_none()) {
        mm_inc_nr_tables(mm, p.level - 1, 1);
        if cx.proto().populate_wmb {
            cx.cpu.smp_wmb();
        }
        pmd_populate(cx, p, new);
        true
    } else {
        false
    };
    drop(g);
    if !installed {
        free_table(cx, new);
    }
    installed
}

/// `pmd_populate` / `pud_populate`: point a none entry at a table. The structural oracle (I4):
/// a populate never overwrites a non-none entry.
pub fn pmd_populate(cx: Ctx<'_>, p: EntryPtr, table: FrameRef) {
    let cur = pmd_populate_over(cx, p, table);
    if !cur.is_none() {
        cx.cpu.report(
            mmcheck_platform::ViolationKind::BadPopulate,
            format!(
                "populate of entry {} of table pfn {} overwrites {}",
                p.idx,
                p.table.pfn,
                crate::arch::pgtable::entry_text(p.level, cur.0)
            ),
        );
    }
}

/// `pmd_populate` where the kernel has already checked the entry and warned (`WARN_ON_ONCE`)
/// but stores anyway: no overwrite report here, what it overwrote (returned) is leaked and the
/// quiescent checks find it. R5 still applies to the table stored.
pub fn pmd_populate_over(cx: Ctx<'_>, p: EntryPtr, table: FrameRef) -> Entry {
    // R5: never populate with something that is not a live table of the level below.
    let kind = cx.k.machine.frames.kind(table.pfn);
    if !cx.k.machine.frames.is_live(table)
        || kind != mmcheck_platform::FrameKind::Table((p.level - 1) as u8)
    {
        cx.cpu.report(
            mmcheck_platform::ViolationKind::BadPopulate,
            format!("populate of entry {} of table pfn {} with pfn {}, which is {kind}, not a live level-{} table (R5: pmd_pgtable of a none or stale value)", p.idx, p.table.pfn, table.pfn, p.level - 1),
        );
    }
    // A plain store in the kernel; an exchange here so the caller sees what it overwrote.
    p.xchg(cx, Entry::table(table.pfn))
}

pub fn pmd_install(cx: Ctx<'_>, mm: &MmStruct, pmd: EntryPtr, new: FrameRef) -> bool {
    let _f = cx.cpu.enter("pmd_install");
    populate(cx, mm, pmd, new)
}

/// `__pte_alloc`: allocate a PTE table and install it if the PMD is still none.
pub fn __pte_alloc(cx: Ctx<'_>, mm: &MmStruct, pmd: EntryPtr) -> Result<(), Errno> {
    let _f = cx.cpu.enter("__pte_alloc");
    let new = alloc_table(cx, 1).ok_or(Errno::Enomem)?;
    pmd_install(cx, mm, pmd, new);
    Ok(())
}

/// `pte_alloc`: `__pte_alloc` if the PMD is none.
pub fn pte_alloc(cx: Ctx<'_>, mm: &MmStruct, pmd: EntryPtr) -> Result<(), Errno> {
    if pmd.get(cx).is_none() {
        __pte_alloc(cx, mm, pmd)?;
    }
    Ok(())
}

/// `p4d_alloc` … `pmd_alloc` for `addr`: the PMD entry, allocating missing upper tables.
pub fn pmd_alloc(cx: Ctx<'_>, mm: &MmStruct, addr: u64) -> Result<EntryPtr, Errno> {
    let mut p = pgd_offset(cx, mm, addr);
    while p.level > 2 {
        let mut e = p.get(cx);
        if e.is_none() {
            let _f = cx.cpu.enter(match p.level - 1 {
                2 => "__pmd_alloc",
                3 => "__pud_alloc",
                _ => "__p4d_alloc",
            });
            let new = alloc_table(cx, p.level - 1).ok_or(Errno::Enomem)?;
            populate(cx, mm, p, new);
            e = p.get(cx);
        }
        if !e.is_table() {
            return Err(Errno::Enomem);
        }
        p = entry_below(cx, e, p.level, addr);
    }
    Ok(p)
}

/// A PTE table mapped by `pte_offset_map*`: RCU is held until it is dropped (`pte_unmap`).
pub struct PteMap<'a> {
    pub table: FrameRef,
    _rcu: Option<RcuGuard<'a>>,
}

impl PteMap<'_> {
    /// The PTE at `idx`.
    pub fn pte(&self, idx: usize) -> EntryPtr {
        EntryPtr {
            table: self.table,
            idx,
            level: 1,
        }
    }
}

/// `pte_offset_map_lock` result: the PTL is released before the map (`pte_unmap_unlock`).
pub struct PteLocked<'a> {
    pub ptl: SpinGuard<'a>,
    pub map: PteMap<'a>,
    pub pmdval: Entry,
}

impl PteLocked<'_> {
    pub fn pte(&self, idx: usize) -> EntryPtr {
        self.map.pte(idx)
    }

    pub fn table(&self) -> FrameRef {
        self.map.table
    }
}

/// `___pte_offset_map`: enter RCU, read the PMD once, and map the table its value names. Returns
/// the value read in every case; `None` (RCU dropped) for none, huge, migration or bad.
///
/// Before 6.5 (`pte_map.rcu = off`) the map took no RCU read lock: callers relied on their locks
/// keeping the table attached.
#[track_caller]
pub fn __pte_offset_map<'a>(cx: Ctx<'a>, pmd: EntryPtr) -> (Option<PteMap<'a>>, Entry) {
    let rcu = cx.proto().pte_map_rcu.then(|| cx.cpu.rcu_read_lock());
    let pmdval = pmd.get(cx);
    (map_val(cx, pmdval, rcu), pmdval)
}

fn map_val<'a>(cx: Ctx<'a>, pmdval: Entry, rcu: Option<RcuGuard<'a>>) -> Option<PteMap<'a>> {
    if pmdval.is_none() || !pmdval.present() || pmdval.huge_leaf() {
        drop(rcu);
        return None;
    }
    Some(PteMap {
        table: cx.cpu.frame_ref(pmdval.pfn()),
        _rcu: rcu,
    })
}

/// Map the table named by a PMD value the caller already holds (GUP-fast and collapse map through
/// a stack copy; the `pmd_same` recheck then compares against the copy).
pub fn pte_offset_map_val<'a>(cx: Ctx<'a>, pmdval: Entry, rcu: RcuGuard<'a>) -> Option<PteMap<'a>> {
    map_val(cx, pmdval, Some(rcu))
}

/// `pte_offset_map`.
#[track_caller]
pub fn pte_offset_map<'a>(cx: Ctx<'a>, pmd: EntryPtr) -> Option<PteMap<'a>> {
    __pte_offset_map(cx, pmd).0
}

/// `pte_offset_map_rw_nolock` (6.13+): map, and return the PMD value and its PTL, unlocked. The
/// caller must recheck attachment after locking (`pmd_same`, or `pte_same` on a non-none pte).
#[track_caller]
pub fn pte_offset_map_rw_nolock<'a>(
    cx: Ctx<'a>,
    mm: &'a MmStruct,
    pmd: EntryPtr,
) -> Option<(PteMap<'a>, Entry, &'a SpinLock)> {
    let (map, pmdval) = __pte_offset_map(cx, pmd);
    let map = map?;
    let ptl = pte_lockptr(cx, mm, pmdval);
    Some((map, pmdval, ptl))
}

/// `pte_offset_map_lock`: map, lock the PTL named by the value, and retry until the PMD still
/// holds that value (R1). `None` only when the PMD is none, huge, migration or bad.
#[track_caller]
pub fn pte_offset_map_lock<'a>(
    cx: Ctx<'a>,
    mm: &'a MmStruct,
    pmd: EntryPtr,
) -> Option<PteLocked<'a>> {
    let _f = cx.cpu.enter("pte_offset_map_lock");
    loop {
        let (map, pmdval) = __pte_offset_map(cx, pmd);
        let map = map?;
        let ptl = pte_lockptr(cx, mm, pmdval).lock(cx.cpu);
        if !cx.proto().pmd_same_recheck || cx.cpu.recheck("pmd_same", pmd.get(cx) == pmdval) {
            return Some(PteLocked { ptl, map, pmdval });
        }
        drop(ptl);
        drop(map);
    }
}

/// The folio a scenario names by address for reclaim, compaction or migration, which find folios
/// on the LRU or by pfn, never through the page tables: the page cache for file mappings, and for
/// anonymous memory a walk under the mmap read lock and RCU inside a VMA looked up under it, so
/// that the lookup itself never races a table free: mremap frees tables under the mmap write
/// lock, munmap after it detached the VMAs under it (then downgraded), and without RCU-freed
/// tables (`tlb.table_free = immediate`, linux-6.1 and 6.6) RCU alone did not keep them (a
/// false use-after-free in `migrate_pages`, `try_to_unmap` and `folio_referenced` against munmap
/// and mremap on those presets, December 2026). Returns the pfn of the page.
pub fn folio_at(cx: Ctx<'_>, mm: &MmStruct, addr: u64) -> Option<u32> {
    // The VMA's range is read under its read lock (or the mmap lock if that fails).
    let (file, idx) = match crate::mm::memory::lock_vma_under_rcu(cx, mm, addr) {
        Some(l) => (
            l.vma.file.clone().filter(|_| l.vma.is_shared(cx)),
            l.vma.linear_page_index(cx, addr),
        ),
        None => {
            let _r = mm.mmap_lock.read_lock(cx.cpu);
            let vma = mm.vma_lookup(cx, addr)?;
            (
                vma.file.clone().filter(|_| vma.is_shared(cx)),
                vma.linear_page_index(cx, addr),
            )
        }
    };
    if let Some(file) = file {
        return file.find_get_folio(cx, idx).map(|f| f.pfn);
    }
    let _m = mm.mmap_lock.read_lock(cx.cpu);
    mm.vma_lookup(cx, addr)?;
    let _r = cx.cpu.rcu_read_lock();
    read_translation(cx, mm, addr).0
}

/// The pfn mapped at `addr`, read as a lockless software walk would, one announced entry read per
/// level (a scenario's `check` in a thread racing others).
pub fn read_translation(cx: Ctx<'_>, mm: &MmStruct, addr: u64) -> (Option<u32>, bool) {
    let g = cx.geo();
    let mut table = mm.pgd;
    let mut level = g.levels;
    loop {
        let e = Entry(cx.cpu.entry_read(table, g.index(addr, level)));
        if !e.present() {
            return (None, false);
        }
        if level == 1 {
            return (Some(e.pfn()), false);
        }
        if level == 2 && e.huge_leaf() {
            return (Some(e.pfn() + g.index(addr, 1) as u32), true);
        }
        table = cx.cpu.frame_ref(e.pfn());
        level -= 1;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Unit tests of the walk/alloc/map helpers, and test support for the other kernel test
    //! modules: kernels whose waits panic (single-threaded tests) or are reported (threaded ones).

    use super::*;
    use crate::mm::vma::mm_alloc;
    use crate::{Geometry, Kernel, Protocol};
    use mmcheck_platform::{
        Access, Backend, Event, Machine, MachineConfig, Obj, Violation, ViolationKind,
    };
    use std::sync::mpsc;
    use std::sync::Arc;

    pub(crate) const BASE: u64 = 0x4000_0000_0000;
    pub(crate) const PG: u64 = 4096;

    /// What the probe backend or a test thread reports.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum Note {
        Waiting { cpu: usize, ev: Event },
        Done(usize, &'static str),
    }

    /// `Sequential`: a wait that cannot proceed at once panics (it would never end in a
    /// single-threaded test). `Probe`: such a wait is reported, then spun out.
    pub(crate) enum TestBackend {
        Sequential,
        Probe(mpsc::Sender<Note>),
    }

    impl Backend for TestBackend {
        fn visible(&self, _cpu: usize, _ev: Event) {}

        fn block(&self, cpu: usize, ev: Event, ready: &dyn Fn() -> bool) {
            if ready() {
                return;
            }
            match self {
                TestBackend::Sequential => {
                    panic!("CPU{cpu} would wait forever for {ev:?} in a single-threaded test")
                }
                TestBackend::Probe(tx) => {
                    let _ = tx.send(Note::Waiting { cpu, ev });
                    while !ready() {
                        std::thread::yield_now();
                    }
                }
            }
        }

        fn violation(&self, _cpu: usize, _v: &Violation) {}
    }

    fn kernel_on(backend: TestBackend, proto: Protocol, nr_cpus: usize) -> Kernel {
        let geo = Geometry::X86_64;
        let cfg = MachineConfig {
            nr_cpus,
            nr_frames: 1 << 12,
            entries_per_table: geo.entries(),
            ..MachineConfig::default()
        };
        Kernel::new(Machine::new(cfg, Box::new(backend)), geo, proto)
    }

    /// A 2-CPU x86-64 kernel for single-threaded tests.
    pub(crate) fn seq_kernel(proto: Protocol) -> Kernel {
        kernel_on(TestBackend::Sequential, proto, 2)
    }

    /// A 2-CPU kernel whose waits are reported on the receiver.
    pub(crate) fn probe_kernel(
        proto: Protocol,
    ) -> (Kernel, mpsc::Sender<Note>, mpsc::Receiver<Note>) {
        let (tx, rx) = mpsc::channel();
        let k = kernel_on(TestBackend::Probe(tx.clone()), proto, 2);
        (k, tx, rx)
    }

    /// Receive notes until `cpu` waits for an `access` event; panic if it reports done first.
    pub(crate) fn expect_waiting(rx: &mpsc::Receiver<Note>, cpu: usize, access: Access) -> Event {
        loop {
            match rx.recv().expect("test threads hung up") {
                Note::Waiting { cpu: c, ev } if c == cpu && ev.access == access => return ev,
                Note::Done(c, tag) if c == cpu => {
                    panic!("CPU{cpu} finished {tag:?} without waiting for {access:?}")
                }
                _ => {}
            }
        }
    }

    pub(crate) fn kinds(k: &Kernel) -> Vec<ViolationKind> {
        k.machine.violations().iter().map(|v| v.kind).collect()
    }

    /// An mm with the upper tables for `BASE` and its PMD entry (none).
    fn mm_and_pmd(k: &Kernel) -> (Arc<MmStruct>, EntryPtr) {
        let cx = k.ctx(0);
        let mm = mm_alloc(cx).unwrap();
        let pmd = pmd_alloc(cx, &mm, BASE).unwrap();
        (mm, pmd)
    }

    #[test]
    fn pmd_alloc_builds_the_upper_levels_once() {
        let k = seq_kernel(Protocol::default());
        let cx = k.ctx(0);
        let (mm, pmd) = mm_and_pmd(&k);
        assert_eq!(pmd.level, 2);
        assert_eq!(pmd.idx, Geometry::X86_64.index(BASE, 2));
        assert_eq!(mm.nr_puds.get_quiescent(), 1);
        assert_eq!(mm.nr_pmds.get_quiescent(), 1);
        assert_eq!(mm.pgtables(), 2);
        assert_eq!(k.machine.frames.kind(pmd.table.pfn), FrameKind::Table(2));
        let used = k.machine.frames.nr_used();
        // Same PMD table for the neighbouring 2 MiB; no new allocation.
        let pmd2 = pmd_alloc(cx, &mm, BASE + (2 << 20)).unwrap();
        assert_eq!((pmd2.table, pmd2.idx), (pmd.table, pmd.idx + 1));
        assert_eq!(k.machine.frames.nr_used(), used);
        assert_eq!(pmd_off(cx, &mm, BASE), Some(pmd));
        assert_eq!(pmd_off(cx, &mm, BASE + (1 << 39)), None, "another PGD slot");
        assert!(pmd.get(cx).is_none());
        assert!(kinds(&k).is_empty());
    }

    #[test]
    fn pte_offset_map_lock_fails_on_a_none_pmd() {
        let k = seq_kernel(Protocol::default());
        let cx = k.ctx(0);
        let (mm, pmd) = mm_and_pmd(&k);
        assert!(pte_offset_map_lock(cx, &mm, pmd).is_none());
        assert!(pte_offset_map(cx, pmd).is_none());
        assert!(pte_offset_map_rw_nolock(cx, &mm, pmd).is_none());
        assert!(!cx.cpu.in_rcu_reader(), "a failed map leaves RCU");
        assert!(kinds(&k).is_empty());
    }

    #[test]
    fn pte_offset_map_lock_fails_on_a_huge_or_migration_pmd() {
        let k = seq_kernel(Protocol::default());
        let cx = k.ctx(0);
        let (mm, pmd) = mm_and_pmd(&k);
        for e in [
            Entry::huge(512, true, true),
            Entry::huge(512, false, false).without(Entry::PRESENT),
            Entry::swp(Entry::SWP_MIGRATION_READ, 512),
        ] {
            pmd.set(cx, e);
            assert!(pte_offset_map_lock(cx, &mm, pmd).is_none(), "{e:?}");
            let (map, val) = __pte_offset_map(cx, pmd);
            assert!(map.is_none());
            assert_eq!(val, e, "the value read is returned");
            assert!(!cx.cpu.in_rcu_reader());
        }
        pmd.set(cx, Entry::NONE);
        assert!(kinds(&k).is_empty());
    }

    #[test]
    fn pte_offset_map_lock_maps_and_locks_the_installed_table() {
        let k = seq_kernel(Protocol::default());
        let cx = k.ctx(0);
        let (mm, pmd) = mm_and_pmd(&k);
        __pte_alloc(cx, &mm, pmd).unwrap();
        assert_eq!(mm.nr_ptes.get_quiescent(), 1);
        let val = pmd.get(cx);
        assert!(val.is_table());
        let l = pte_offset_map_lock(cx, &mm, pmd).expect("a table is installed");
        assert_eq!(l.table(), k.machine.frames.current(val.pfn()));
        assert_eq!(l.pmdval, val);
        assert_eq!(k.machine.frames.kind(l.table().pfn), FrameKind::Table(1));
        let ptl = pte_lockptr(cx, &mm, val);
        assert!(std::ptr::eq(ptl, &k.machine.frames.frame(val.pfn()).ptl));
        assert_eq!(ptl.owner(), Some(0));
        assert!(cx.cpu.in_rcu_reader(), "the map holds RCU");
        assert!(l.pte(7).get(cx).is_none());
        drop(l);
        assert!(!ptl.is_locked());
        assert!(!cx.cpu.in_rcu_reader());
        // pte_alloc on a populated PMD allocates nothing.
        let used = k.machine.frames.nr_used();
        pte_alloc(cx, &mm, pmd).unwrap();
        assert_eq!(k.machine.frames.nr_used(), used);
        assert!(kinds(&k).is_empty());
    }

    #[test]
    fn without_split_ptlocks_every_table_lock_is_page_table_lock() {
        let proto = Protocol {
            split_ptlocks: false,
            ..Protocol::default()
        };
        let k = seq_kernel(proto);
        let cx = k.ctx(0);
        let (mm, pmd) = mm_and_pmd(&k);
        __pte_alloc(cx, &mm, pmd).unwrap();
        assert!(std::ptr::eq(
            pte_lockptr(cx, &mm, pmd.get(cx)),
            &mm.page_table_lock
        ));
        assert!(std::ptr::eq(pmd_lockptr(cx, &mm, pmd), &mm.page_table_lock));
        let l = pte_offset_map_lock(cx, &mm, pmd).unwrap();
        assert_eq!(mm.page_table_lock.owner(), Some(0));
        drop(l);
        assert!(!mm.page_table_lock.is_locked());
        // With split locks the PMD lock lives in the PMD table's page.
        let k = seq_kernel(Protocol::default());
        let (mm, pmd) = mm_and_pmd(&k);
        let cx = k.ctx(0);
        assert!(std::ptr::eq(
            pmd_lockptr(cx, &mm, pmd),
            &k.machine.frames.frame(pmd.table.pfn).ptl
        ));
    }

    #[test]
    fn pmd_install_frees_the_losers_table() {
        let k = seq_kernel(Protocol::default());
        let cx = k.ctx(0);
        let (mm, pmd) = mm_and_pmd(&k);
        let winner = alloc_table(cx, 1).unwrap();
        let loser = alloc_table(cx, 1).unwrap();
        assert!(pmd_install(cx, &mm, pmd, winner));
        assert!(!pmd_install(cx, &mm, pmd, loser));
        assert_eq!(pmd.get(cx), Entry::table(winner.pfn));
        assert_eq!(k.machine.frames.kind(loser.pfn), FrameKind::Free);
        assert!(k.machine.frames.is_live(winner));
        assert_eq!(mm.nr_ptes.get_quiescent(), 1, "only the winner is counted");
        assert!(!k.machine.frames.frame(pmd.table.pfn).ptl.is_locked());
        assert!(kinds(&k).is_empty());
    }

    #[test]
    fn pte_offset_map_lock_follows_a_replaced_table() {
        let k = seq_kernel(Protocol::default());
        let cx = k.ctx(0);
        let (mm, pmd) = mm_and_pmd(&k);
        let t1 = alloc_table(cx, 1).unwrap();
        assert!(pmd_install(cx, &mm, pmd, t1));
        let l = pte_offset_map_lock(cx, &mm, pmd).unwrap();
        assert_eq!(l.table(), t1);
        drop(l);
        // Detach t1 (as PT reclaim or collapse would), install t2.
        {
            let _g = pmd_lock(cx, &mm, pmd);
            pmd.set(cx, Entry::NONE);
        }
        let t2 = alloc_table(cx, 1).unwrap();
        assert!(pmd_install(cx, &mm, pmd, t2));
        let l = pte_offset_map_lock(cx, &mm, pmd).unwrap();
        assert_eq!(l.table(), t2);
        assert_eq!(l.pmdval, Entry::table(t2.pfn));
        assert_eq!(k.machine.frames.frame(t2.pfn).ptl.owner(), Some(0));
        assert!(!k.machine.frames.frame(t1.pfn).ptl.is_locked());
        drop(l);
        free_table(cx, t1);
        assert!(kinds(&k).is_empty());
    }

    /// CPU0 maps table t1 and waits for its PTL, held by CPU1. CPU1 replaces t1 by t2 in the PMD
    /// and unlocks: CPU0 must notice `!pmd_same` after locking, retry, and return t2 locked (R1).
    #[test]
    fn pte_offset_map_lock_retries_when_the_pmd_changes_under_it() {
        let (k, tx, rx) = probe_kernel(Protocol::default());
        let (mm, pmd) = mm_and_pmd(&k);
        let c1 = k.ctx(1);
        let t1 = alloc_table(c1, 1).unwrap();
        assert!(pmd_install(c1, &mm, pmd, t1));
        let t2 = alloc_table(c1, 1).unwrap();
        let held = pte_offset_map_lock(c1, &mm, pmd).unwrap(); // this thread is CPU1
        assert_eq!(held.table(), t1);
        std::thread::scope(|s| {
            let (k, mm) = (&k, &mm);
            s.spawn(move || {
                let cx = k.ctx(0);
                let l = pte_offset_map_lock(cx, mm, pmd).expect("t2 is installed");
                assert_eq!(l.table(), t2, "must not return the detached table");
                assert_eq!(l.pmdval, Entry::table(t2.pfn));
                assert_eq!(k.machine.frames.frame(t2.pfn).ptl.owner(), Some(0));
                drop(l);
                tx.send(Note::Done(0, "mapped")).unwrap();
            });
            let ev = expect_waiting(&rx, 0, Access::Acquire);
            assert_eq!(
                ev.obj,
                Obj::Lock(Obj::ptl_id(t1.pfn)),
                "CPU0 waits for t1's PTL"
            );
            {
                let _g = pmd_lock(c1, mm, pmd);
                pmd.set(c1, Entry::NONE);
            }
            assert!(pmd_install(c1, mm, pmd, t2));
            drop(held);
        });
        assert!(!k.machine.frames.frame(t1.pfn).ptl.is_locked());
        assert!(!k.machine.frames.frame(t2.pfn).ptl.is_locked());
        free_table(c1, t1);
        assert!(kinds(&k).is_empty(), "{:?}", k.machine.violations());
    }

    #[test]
    fn locking_the_ptl_of_a_freed_table_is_use_after_free() {
        let k = seq_kernel(Protocol::default());
        let cx = k.ctx(0);
        let (mm, _pmd) = mm_and_pmd(&k);
        let t = alloc_table(cx, 1).unwrap();
        {
            let _f = cx.cpu.enter("test_free_table");
            free_table(cx, t);
        }
        let stale = Entry::table(t.pfn);
        let _ = pte_lockptr(cx, &mm, stale);
        let v = k.machine.violations();
        assert_eq!(kinds(&k), vec![ViolationKind::UseAfterFree]);
        assert!(v[0].msg.contains("page-table lock"), "{}", v[0].msg);
        assert!(v[0].msg.contains("test_free_table"), "{}", v[0].msg);
    }
}
