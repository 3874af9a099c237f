//! Walking, allocating and mapping page tables (`mm/pgtable-generic.c`, the allocation half of
//! `mm/memory.c`, ≈6.14): `pgd_offset` … `pmd_alloc`, `__pte_alloc`/`pmd_install`, the lock
//! pointers (`pmd_lockptr` from the entry's address, `pte_lockptr` from the PMD's value), and the
//! `pte_offset_map*` family, which enter RCU and may fail (6.5+).

use crate::arch::pgtable::Entry;
use crate::mm::types::MmStruct;
use crate::{Ctx, Errno};
use mmcheck_platform::{FrameKind, FrameRef, RcuGuard, SpinGuard, SpinLock};
use std::sync::atomic::Ordering;

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
        cx.cpu.entry_write(self.table, self.idx, e.0)
    }

    /// `xchg` (`ptep_get_and_clear`).
    #[inline]
    pub fn xchg(&self, cx: Ctx<'_>, e: Entry) -> Entry {
        Entry(cx.cpu.entry_xchg(self.table, self.idx, e.0))
    }

    /// `cmpxchg`.
    #[inline]
    pub fn cmpxchg(&self, cx: Ctx<'_>, old: Entry, new: Entry) -> Result<Entry, Entry> {
        cx.cpu
            .entry_cmpxchg(self.table, self.idx, old.0, new.0)
            .map(Entry)
            .map_err(Entry)
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
    let table = cx.k.machine.frames.current(e.pfn());
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
pub fn pmd_lock<'a>(cx: Ctx<'a>, mm: &'a MmStruct, pmd: EntryPtr) -> SpinGuard<'a> {
    pmd_lockptr(cx, mm, pmd).lock(cx.cpu)
}

/// `pte_lockptr`: from the VALUE of the PMD (the table it points to).
pub fn pte_lockptr<'a>(cx: Ctx<'a>, mm: &'a MmStruct, pmdval: Entry) -> &'a SpinLock {
    let table = cx.k.machine.frames.current(pmdval.pfn());
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
        c.fetch_add(n, Ordering::SeqCst);
    }
}

/// `__p4d_alloc` / `__pud_alloc` / `__pmd_alloc` / `pmd_install`: populate the none entry `p`
/// with `new` under its lock after re-checking none; free `new` if someone beat us.
/// LOCKING: `smp_wmb` orders the zeroed table before the pointer (lockless walkers).
pub fn populate(cx: Ctx<'_>, mm: &MmStruct, p: EntryPtr, new: FrameRef) -> bool {
    let lock = table_lock(cx, mm, p.table, p.level);
    let g = cx.proto().populate_locked.then(|| lock.lock(cx.cpu));
    let installed = if p.get(cx).is_none() {
        mm_inc_nr_tables(mm, p.level - 1, 1);
        cx.cpu.smp_wmb();
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
    // A plain store in the kernel; an exchange here so the oracle sees what it overwrote.
    let cur = p.xchg(cx, Entry::table(table.pfn));
    if !cur.is_none() {
        cx.cpu.report(
            mmcheck_platform::ViolationKind::BadPopulate,
            format!(
                "populate of entry {} of table pfn {} overwrites {cur:?}",
                p.idx, p.table.pfn
            ),
        );
    }
}

/// `pmd_install`.
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
    _rcu: RcuGuard<'a>,
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
pub fn __pte_offset_map<'a>(cx: Ctx<'a>, pmd: EntryPtr) -> (Option<PteMap<'a>>, Entry) {
    let rcu = cx.cpu.rcu_read_lock();
    let pmdval = pmd.get(cx);
    (pte_offset_map_val(cx, pmdval, rcu), pmdval)
}

/// Map the table named by a PMD value the caller already holds (GUP-fast and collapse map through
/// a stack copy; the `pmd_same` recheck then compares against the copy).
pub fn pte_offset_map_val<'a>(cx: Ctx<'a>, pmdval: Entry, rcu: RcuGuard<'a>) -> Option<PteMap<'a>> {
    if pmdval.is_none() || !pmdval.present() || pmdval.huge_leaf() {
        drop(rcu);
        return None;
    }
    Some(PteMap {
        table: cx.k.machine.frames.current(pmdval.pfn()),
        _rcu: rcu,
    })
}

/// `pte_offset_map`.
pub fn pte_offset_map<'a>(cx: Ctx<'a>, pmd: EntryPtr) -> Option<PteMap<'a>> {
    __pte_offset_map(cx, pmd).0
}

/// `pte_offset_map_rw_nolock` (6.13+): map, and return the PMD value and its PTL, unlocked. The
/// caller must recheck attachment after locking (`pmd_same`, or `pte_same` on a non-none pte).
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
        if !cx.proto().pmd_same_recheck || pmd.get(cx) == pmdval {
            return Some(PteLocked { ptl, map, pmdval });
        }
        drop(ptl);
        drop(map);
    }
}
