//! The address-space structures (`include/linux/mm_types.h`, ≈6.18): `mm_struct`, VMAs,
//! `anon_vma` with its interval tree of VMAs, and shmem-like files with a page cache and an
//! `i_mmap` interval tree.
//!
//! The maple tree is a `BTreeMap` behind a host lock that the model never blocks on; its
//! protocol-level protection is the mmap lock and RCU (lookups are visible reads of the tree
//! object). Interval trees are vectors kept in `(pgoff, id)` order, which is the traversal order
//! of the kernel's augmented rbtree for these keys.

use crate::Ctx;
use mmcheck_platform::{Access, FrameRef, MmapLock, Obj, RwSem, SpinLock, VmaLock};
use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

/// `vm_flags`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct VmFlags(pub u64);

impl VmFlags {
    pub const READ: u64 = 1 << 0;
    pub const WRITE: u64 = 1 << 1;
    pub const SHARED: u64 = 1 << 3;
    pub const MAYWRITE: u64 = 1 << 5;
    pub const HUGEPAGE: u64 = 1 << 29;
    pub const NOHUGEPAGE: u64 = 1 << 30;

    pub fn has(self, f: u64) -> bool {
        self.0 & f != 0
    }
}

/// rss counter indices (`MM_FILEPAGES`, `MM_ANONPAGES`, `MM_SHMEMPAGES`).
pub const MM_FILEPAGES: usize = 0;
pub const MM_ANONPAGES: usize = 1;
pub const MM_SHMEMPAGES: usize = 2;
pub const NR_MM_COUNTERS: usize = 3;

/// `struct mm_struct`.
pub struct MmStruct {
    pub id: u64,
    /// The top-level table (never freed before the mm).
    pub pgd: FrameRef,
    pub mmap_lock: MmapLock,
    /// `mm->page_table_lock`: upper-level populates, and every table lock without split ptlocks.
    pub page_table_lock: SpinLock,
    tree_id: u64,
    tree: RwLock<BTreeMap<u64, Arc<Vma>>>,
    /// `mm_pgtables_bytes` split by level: PTE, PMD and PUD tables (P4D is folded).
    pub nr_ptes: AtomicI64,
    pub nr_pmds: AtomicI64,
    pub nr_puds: AtomicI64,
    pub rss: [AtomicI64; NR_MM_COUNTERS],
    /// `mm->tlb_flush_pending`: gathers in progress (`inc_tlb_flush_pending`).
    pub tlb_flush_pending: AtomicI64,
    /// `mm->mm_users`.
    pub mm_users: AtomicI64,
    /// Set by `exit_mmap` (`MMF_OOM_SKIP`-like: khugepaged's `hpage_collapse_test_exit`).
    pub exiting: AtomicU64,
}

impl MmStruct {
    pub(crate) fn new(cx: Ctx<'_>, pgd: FrameRef) -> Self {
        let m = &cx.k.machine;
        MmStruct {
            id: m.new_id(),
            pgd,
            mmap_lock: MmapLock::new(m.new_id(), m.new_id()),
            page_table_lock: SpinLock::new(m.new_id()),
            tree_id: m.new_id(),
            tree: RwLock::new(BTreeMap::new()),
            nr_ptes: AtomicI64::new(0),
            nr_pmds: AtomicI64::new(0),
            nr_puds: AtomicI64::new(0),
            rss: Default::default(),
            tlb_flush_pending: AtomicI64::new(0),
            mm_users: AtomicI64::new(1),
            exiting: AtomicU64::new(0),
        }
    }

    /// `find_vma`: the first VMA ending above `addr` (RCU or mmap lock).
    pub fn find_vma(&self, cx: Ctx<'_>, addr: u64) -> Option<Arc<Vma>> {
        cx.cpu.visible(Obj::Var(self.tree_id), Access::Read);
        let t = self.tree.read();
        if let Some((_, v)) = t.range(..=addr).next_back() {
            if v.end() > addr {
                return Some(v.clone());
            }
        }
        t.range(addr + 1..).next().map(|(_, v)| v.clone())
    }

    /// `vma_lookup`: the VMA containing `addr`.
    pub fn vma_lookup(&self, cx: Ctx<'_>, addr: u64) -> Option<Arc<Vma>> {
        self.find_vma(cx, addr).filter(|v| v.start() <= addr)
    }

    /// VMAs overlapping `[start, end)`, in address order.
    pub fn vmas_in(&self, cx: Ctx<'_>, start: u64, end: u64) -> Vec<Arc<Vma>> {
        cx.cpu.visible(Obj::Var(self.tree_id), Access::Read);
        let t = self.tree.read();
        let first = t
            .range(..=start)
            .next_back()
            .filter(|(_, v)| v.end() > start)
            .map(|(k, _)| *k);
        let from = first.unwrap_or(start);
        t.range(from..end)
            .map(|(_, v)| v.clone())
            .filter(|v| v.end() > start)
            .collect()
    }

    /// The VMA before `addr` (ending at or below it) and the one after `end`.
    pub fn neighbours(
        &self,
        cx: Ctx<'_>,
        start: u64,
        end: u64,
    ) -> (Option<Arc<Vma>>, Option<Arc<Vma>>) {
        cx.cpu.visible(Obj::Var(self.tree_id), Access::Read);
        let t = self.tree.read();
        let prev = t
            .range(..start)
            .next_back()
            .map(|(_, v)| v.clone())
            .filter(|v| v.end() <= start);
        let next = t.range(end..).next().map(|(_, v)| v.clone());
        (prev, next)
    }

    /// Every VMA, in address order.
    pub fn all_vmas(&self) -> Vec<Arc<Vma>> {
        self.tree.read().values().cloned().collect()
    }

    /// `mas_store` of a VMA (mmap write lock held).
    pub(crate) fn tree_insert(&self, cx: Ctx<'_>, vma: Arc<Vma>) {
        cx.cpu.visible(Obj::Var(self.tree_id), Access::Write);
        self.tree.write().insert(vma.start(), vma);
    }

    /// Remove a VMA from the tree by its start (mmap write lock held).
    pub(crate) fn tree_remove(&self, cx: Ctx<'_>, start: u64) -> Option<Arc<Vma>> {
        cx.cpu.visible(Obj::Var(self.tree_id), Access::Write);
        self.tree.write().remove(&start)
    }

    /// `add_mm_counter`.
    pub fn add_rss(&self, member: usize, n: i64) {
        self.rss[member].fetch_add(n, Ordering::SeqCst);
    }

    pub fn get_rss(&self, member: usize) -> i64 {
        self.rss[member].load(Ordering::SeqCst)
    }

    /// `mm_pgtables_bytes` in pages (what `VmPTE` reports, in tables).
    pub fn pgtables(&self) -> i64 {
        self.nr_ptes.load(Ordering::SeqCst)
            + self.nr_pmds.load(Ordering::SeqCst)
            + self.nr_puds.load(Ordering::SeqCst)
    }

    /// Counter for tables of `level` (1 = PTE, 2 = PMD, 3 = PUD); higher levels are not counted.
    pub fn nr_tables(&self, level: u32) -> Option<&AtomicI64> {
        match level {
            1 => Some(&self.nr_ptes),
            2 => Some(&self.nr_pmds),
            3 => Some(&self.nr_puds),
            _ => None,
        }
    }

    /// `mm_tlb_flush_nested`.
    pub fn tlb_flush_nested(&self) -> bool {
        self.tlb_flush_pending.load(Ordering::SeqCst) > 1
    }
}

/// `struct vm_area_struct`.
pub struct Vma {
    pub id: u64,
    pub mm_id: u64,
    vm_start: AtomicU64,
    vm_end: AtomicU64,
    vm_pgoff: AtomicU64,
    pub vm_flags: AtomicU64,
    /// `vm_file` (shmem and file mappings); `None` for anonymous VMAs.
    pub file: Option<Arc<File>>,
    /// `vma->anon_vma`: set once under mmap R + `page_table_lock` (`anon_vma_prepare`).
    pub anon_vma: Mutex<Option<Arc<AnonVma>>>,
    /// The anon_vmas this VMA is linked into (`anon_vma_chain`), own last.
    pub anon_vma_chain: Mutex<Vec<Arc<AnonVma>>>,
    pub lock: VmaLock,
}

impl std::fmt::Debug for Vma {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "vma#{}[{:#x}-{:#x} pgoff {:#x}]",
            self.id,
            self.start(),
            self.end(),
            self.pgoff()
        )
    }
}

impl Vma {
    pub(crate) fn new(
        cx: Ctx<'_>,
        mm: &MmStruct,
        start: u64,
        end: u64,
        pgoff: u64,
        flags: VmFlags,
        file: Option<Arc<File>>,
    ) -> Self {
        let m = &cx.k.machine;
        Vma {
            id: m.new_id(),
            mm_id: mm.id,
            vm_start: AtomicU64::new(start),
            vm_end: AtomicU64::new(end),
            vm_pgoff: AtomicU64::new(pgoff),
            vm_flags: AtomicU64::new(flags.0),
            file,
            anon_vma: Mutex::new(None),
            anon_vma_chain: Mutex::new(Vec::new()),
            lock: VmaLock::new(m.new_id(), m.new_id()),
        }
    }

    pub fn start(&self) -> u64 {
        self.vm_start.load(Ordering::SeqCst)
    }

    pub fn end(&self) -> u64 {
        self.vm_end.load(Ordering::SeqCst)
    }

    pub fn pgoff(&self) -> u64 {
        self.vm_pgoff.load(Ordering::SeqCst)
    }

    pub fn flags(&self) -> VmFlags {
        VmFlags(self.vm_flags.load(Ordering::SeqCst))
    }

    /// Change `vm_start`/`vm_end`/`vm_pgoff`: mmap W + VMA W + rmap W held by the caller.
    pub(crate) fn set_range(&self, start: u64, end: u64, pgoff: u64) {
        self.vm_start.store(start, Ordering::SeqCst);
        self.vm_end.store(end, Ordering::SeqCst);
        self.vm_pgoff.store(pgoff, Ordering::SeqCst);
    }

    /// `vma_is_anonymous`.
    pub fn is_anonymous(&self) -> bool {
        self.file.is_none()
    }

    pub fn is_shared(&self) -> bool {
        self.flags().has(VmFlags::SHARED)
    }

    pub fn contains(&self, addr: u64) -> bool {
        self.start() <= addr && addr < self.end()
    }

    /// The linear page index of `addr` (`linear_page_index`).
    pub fn linear_page_index(&self, addr: u64, page_shift: u32) -> u64 {
        ((addr - self.start()) >> page_shift) + self.pgoff()
    }

    /// `vma_address`: where page index `pgoff` is mapped, if inside the VMA.
    pub fn address_of(&self, pgoff: u64, page_shift: u32) -> Option<u64> {
        let first = self.pgoff();
        let pages = (self.end() - self.start()) >> page_shift;
        (pgoff >= first && pgoff < first + pages)
            .then(|| self.start() + ((pgoff - first) << page_shift))
    }

    pub fn anon_vma(&self) -> Option<Arc<AnonVma>> {
        self.anon_vma.lock().clone()
    }
}

/// `struct anon_vma`. The root's rwsem guards the interval tree of every anon_vma in the family.
pub struct AnonVma {
    pub id: u64,
    /// `None` for a root.
    pub root: Option<Arc<AnonVma>>,
    /// `anon_vma->rwsem` (only the root's is used).
    pub rwsem: RwSem,
    /// `rb_root`: the VMAs linked through an anon_vma_chain.
    pub tree: VmaIntervalTree,
}

impl AnonVma {
    /// The root's rwsem (`anon_vma_lock_read/write`).
    pub fn lock(&self) -> &RwSem {
        match &self.root {
            Some(r) => &r.rwsem,
            None => &self.rwsem,
        }
    }

    pub(crate) fn tree_insert(&self, vma: Arc<Vma>) {
        self.tree.insert(vma);
    }

    pub(crate) fn tree_remove(&self, vma: &Vma) {
        self.tree.remove(vma);
    }

    /// VMAs whose page range overlaps `[first, last]`, in tree order.
    pub fn tree_overlapping(&self, first: u64, last: u64, page_shift: u32) -> Vec<Arc<Vma>> {
        self.tree.overlapping(first, last, page_shift)
    }
}

/// A shmem-like file: a page cache and an `i_mmap` tree.
pub struct File {
    pub id: u64,
    /// `mapping->i_mmap_rwsem`.
    pub i_mmap_rwsem: RwSem,
    /// `mapping->i_mmap`.
    pub i_mmap: VmaIntervalTree,
    xa_id: u64,
    /// `mapping->i_pages`: page index → folio (head), with the cache's reference.
    pub(crate) pages: Mutex<BTreeMap<u64, FrameRef>>,
    /// File size in pages.
    pub size_pages: AtomicU64,
    /// `f_count`: references from VMAs and from the user (memfd).
    pub f_count: AtomicI64,
}

impl File {
    pub(crate) fn new(cx: Ctx<'_>, size_pages: u64) -> Self {
        let m = &cx.k.machine;
        File {
            id: m.new_id(),
            i_mmap_rwsem: RwSem::new(m.new_id()),
            i_mmap: VmaIntervalTree::default(),
            xa_id: m.new_id(),
            pages: Mutex::new(BTreeMap::new()),
            size_pages: AtomicU64::new(size_pages),
            f_count: AtomicI64::new(1),
        }
    }

    /// `filemap_get_entry`: the cached folio at `index` (RCU xarray lookup).
    pub fn find_get_folio(&self, cx: Ctx<'_>, index: u64) -> Option<FrameRef> {
        cx.cpu.visible(Obj::Var(self.xa_id), Access::Read);
        self.pages.lock().get(&index).copied()
    }

    /// Cached folios with index in `[first, last]`.
    pub fn folios_in(&self, cx: Ctx<'_>, first: u64, last: u64) -> Vec<(u64, FrameRef)> {
        cx.cpu.visible(Obj::Var(self.xa_id), Access::Read);
        self.pages
            .lock()
            .range(first..=last)
            .map(|(i, f)| (*i, *f))
            .collect()
    }

    pub(crate) fn cache_insert(&self, cx: Ctx<'_>, index: u64, f: FrameRef) -> bool {
        cx.cpu.visible(Obj::Var(self.xa_id), Access::Write);
        let mut p = self.pages.lock();
        if p.contains_key(&index) {
            return false;
        }
        p.insert(index, f);
        true
    }

    /// `xas_store` of `f` at `index` under the xarray lock: returns what was there.
    pub(crate) fn cache_replace(&self, cx: Ctx<'_>, index: u64, f: FrameRef) -> Option<FrameRef> {
        cx.cpu.visible(Obj::Var(self.xa_id), Access::Rmw);
        self.pages.lock().insert(index, f)
    }

    pub(crate) fn cache_remove(&self, cx: Ctx<'_>, index: u64) -> Option<FrameRef> {
        cx.cpu.visible(Obj::Var(self.xa_id), Access::Write);
        self.pages.lock().remove(&index)
    }

    pub fn nr_cached(&self) -> usize {
        self.pages.lock().len()
    }

    pub(crate) fn i_mmap_insert(&self, vma: Arc<Vma>) {
        self.i_mmap.insert(vma);
    }

    pub(crate) fn i_mmap_remove(&self, vma: &Vma) {
        self.i_mmap.remove(vma);
    }

    /// VMAs mapping some page in `[first, last]`, in tree order.
    pub fn i_mmap_overlapping(&self, first: u64, last: u64, page_shift: u32) -> Vec<Arc<Vma>> {
        self.i_mmap.overlapping(first, last, page_shift)
    }
}

/// An interval tree of VMAs keyed by their page range (`anon_vma->rb_root`, `mapping->i_mmap`),
/// kept as a vector in `(vm_pgoff, id)` order: the traversal order of the kernel's augmented
/// rbtree for these keys, with a VMA inserted after the ones already there at the same pgoff.
/// Callers hold the owning rmap lock.
#[derive(Default)]
pub struct VmaIntervalTree {
    vmas: Mutex<Vec<Arc<Vma>>>,
}

impl VmaIntervalTree {
    pub fn insert(&self, vma: Arc<Vma>) {
        let mut t = self.vmas.lock();
        let key = (vma.pgoff(), vma.id);
        let at = t.partition_point(|v| (v.pgoff(), v.id) < key);
        t.insert(at, vma);
    }

    pub fn remove(&self, vma: &Vma) {
        self.vmas.lock().retain(|v| v.id != vma.id);
    }

    /// VMAs whose page range overlaps `[first, last]`, in tree order.
    pub fn overlapping(&self, first: u64, last: u64, page_shift: u32) -> Vec<Arc<Vma>> {
        self.vmas
            .lock()
            .iter()
            .filter(|v| {
                let s = v.pgoff();
                let e = s + ((v.end() - v.start()) >> page_shift);
                s <= last && first < e
            })
            .cloned()
            .collect()
    }
}
