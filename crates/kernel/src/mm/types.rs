//! The address-space structures (`include/linux/mm_types.h`, ≈6.18): `mm_struct`, VMAs,
//! `anon_vma` with its interval tree of VMAs, and shmem-like files with a page cache and an
//! `i_mmap` interval tree.
//!
//! The maple tree is a `BTreeMap` behind a host lock that the model never blocks on; its
//! protocol-level protection is the mmap lock and RCU (lookups are visible reads of the tree
//! object). Interval trees are vectors kept in `(pgoff, id)` order, which is the traversal order
//! of the kernel's augmented rbtree for these keys.

mod snapshot;

use crate::Ctx;
use mmcheck_platform::{
    Counter, FrameRef, Ghost, Locked, Machine, MmapLock, Owner, RwSem, Shared, SharedWord, SlabObj,
    SpinGuard, SpinLock, VmaLock,
};
use std::collections::BTreeMap;
use std::sync::Arc;

/// `vm_flags`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct VmFlags(pub u64);

impl VmFlags {
    pub const READ: u64 = 1 << 0;
    pub const WRITE: u64 = 1 << 1;
    pub const SHARED: u64 = 1 << 3;
    pub const MAYWRITE: u64 = 1 << 5;
    /// `VM_GROWSDOWN` (0x100): a stack mapping, expanded down by faults below it.
    pub const GROWSDOWN: u64 = 1 << 8;
    /// `VM_UFFD_MISSING` (0x200): registered with `UFFDIO_REGISTER_MODE_MISSING`.
    pub const UFFD_MISSING: u64 = 1 << 9;
    /// `VM_UFFD_WP` (0x1000): registered with `UFFDIO_REGISTER_MODE_WP`.
    pub const UFFD_WP: u64 = 1 << 12;
    /// `VM_ACCOUNT` (0x100000): the mapping is charged to the overcommit accounting; private
    /// writable mappings at mmap (`accountable_mapping`), changed by mprotect, and compared by
    /// every VMA merge like any other flag.
    pub const ACCOUNT: u64 = 1 << 20;
    pub const HUGEPAGE: u64 = 1 << 29;
    pub const NOHUGEPAGE: u64 = 1 << 30;

    pub fn has(self, f: u64) -> bool {
        self.0 & f != 0
    }
}

/// rss counter indices (`MM_FILEPAGES`, `MM_ANONPAGES`, `MM_SWAPENTS`, `MM_SHMEMPAGES`; the
/// model's order differs from the kernel's enum).
pub const MM_FILEPAGES: usize = 0;
pub const MM_ANONPAGES: usize = 1;
pub const MM_SHMEMPAGES: usize = 2;
/// Swap entries in the page tables.
pub const MM_SWAPENTS: usize = 3;
pub const NR_MM_COUNTERS: usize = 4;

/// `struct mm_struct`.
pub struct MmStruct {
    pub id: u64,
    /// The top-level table (never freed before the mm).
    pub pgd: FrameRef,
    pub mmap_lock: MmapLock,
    /// `mm->page_table_lock`: upper-level populates, and every table lock without split ptlocks.
    pub page_table_lock: SpinLock,
    /// The maple tree (lookups under RCU or the mmap lock, stores under mmap W).
    tree: Shared<BTreeMap<u64, Arc<Vma>>>,
    /// `mm_pgtables_bytes` split by level: PTE, PMD and PUD tables (P4D is folded). Statistics:
    /// only read at quiescence.
    pub nr_ptes: Counter,
    pub nr_pmds: Counter,
    pub nr_puds: Counter,
    pub rss: [Counter; NR_MM_COUNTERS],
    /// `mm->tlb_flush_pending`: gathers in progress (`inc_tlb_flush_pending`); read by
    /// `mm_tlb_flush_nested` in another CPU's `tlb_finish_mmu`.
    pub tlb_flush_pending: SharedWord,
    /// `mm->tlb_flush_batched`: deferred rmap flushes pending (low half) and flushes done by
    /// `flush_tlb_batched_pending` (high half); see [`crate::mm::tlb_batch`].
    pub tlb_flush_batched: SharedWord,
    /// `mm->write_protect_seq`: odd while fork's `copy_page_range` write-protects a COW mapping;
    /// FOLL_PIN GUP-fast samples it.
    pub write_protect_seq: SharedWord,
    /// Set by `exit_mmap` (`MMF_OOM_SKIP`-like: khugepaged's `hpage_collapse_test_exit`).
    pub exiting: SharedWord,
    /// The checker's record of the pages `UFFDIO_WRITEPROTECT` protected (and no `UFFDIO_COPY`
    /// filled since): the uffd-wp oracle's contract (`check.rs`).
    pub uffd_wp_protected: Ghost<std::collections::BTreeSet<u64>>,
    /// Oracle bookkeeping: the pages an `UFFDIO_WRITEPROTECT` in progress on CPU `.0` has
    /// protected (wp bit or marker set, or found so). A page it found none and left so (an
    /// anonymous VMA without markers, or no table at all) is not protected: a later fault maps
    /// it writable, as the kernel does without `UFFD_FEATURE_WP_UNPOPULATED`.
    pub uffd_wp_done: Ghost<std::collections::BTreeSet<(usize, u64)>>,
    /// Oracle bookkeeping: which stale translations a returning call answers for (see
    /// [`TlbOwed`]).
    pub tlb_owed: Ghost<TlbOwed>,
}

/// The TLB-permission oracle's record of whose flush a translation is: a call that reduces
/// access (munmap, MADV_DONTNEED, mremap, mprotect) answers, when it returns, for the pages it
/// cleared or changed itself (its mmu_gather's ranges, the entries mremap moved) and for those
/// reclaim cleared with its flush batched (`set_tlb_ubc_flush_pending`): the call must flush
/// them (`flush_tlb_batched_pending`) before it relies on their absence. A page another thread
/// cleared and is still flushing (its own `flush_tlb_range` or `tlb_finish_mmu` to come, or an
/// IPI in flight) is that thread's.
#[derive(Clone, Debug, Default)]
pub struct TlbOwed {
    /// Per CPU: page ranges cleared by the call running there since its
    /// [`crate::check::tlb_permission_begin`].
    own: BTreeMap<usize, Vec<(u64, u64)>>,
    /// Page ranges cleared by reclaim or migration with the flush batched, by the batching CPU,
    /// until its `try_to_unmap_flush`.
    batched: Vec<(usize, u64, u64)>,
}

impl TlbOwed {
    /// A call that will be checked begins on `cpu`.
    pub fn begin(&mut self, cpu: usize) {
        self.own.insert(cpu, Vec::new());
    }

    /// The call on `cpu` cleared or changed pages `[lo, hi)` (recorded only while a call is
    /// being checked there).
    pub fn cleared(&mut self, cpu: usize, lo: u64, hi: u64) {
        if let Some(r) = self.own.get_mut(&cpu) {
            r.push((lo, hi));
        }
    }

    /// `cpu` cleared pages `[lo, hi)` with the flush batched.
    pub fn batched(&mut self, cpu: usize, lo: u64, hi: u64) {
        self.batched.push((cpu, lo, hi));
    }

    /// `cpu` flushed its batch.
    pub fn batch_flushed(&mut self, cpu: usize) {
        self.batched.retain(|e| e.0 != cpu);
    }

    /// Whether the call returning on `cpu` answers for page `vpn`; ends its record.
    pub fn answers(&self, cpu: usize, vpn: u64) -> bool {
        let own = self
            .own
            .get(&cpu)
            .is_some_and(|r| r.iter().any(|&(lo, hi)| (lo..hi).contains(&vpn)));
        own || self
            .batched
            .iter()
            .any(|&(c, lo, hi)| c != cpu && (lo..hi).contains(&vpn))
    }

    /// The call on `cpu` returned.
    pub fn end(&mut self, cpu: usize) {
        self.own.remove(&cpu);
    }
}

impl MmStruct {
    pub(crate) fn new(cx: Ctx<'_>, pgd: FrameRef) -> Self {
        let m = &cx.k.machine;
        let id = m.name_owner(m.new_id(), Owner::Mm);
        let field = |lock: Option<&'static str>, name| {
            let i = lock.map_or_else(|| m.new_id(), |c| m.new_lock_id(c));
            m.name_field(i, id, name)
        };
        MmStruct {
            id,
            pgd,
            mmap_lock: MmapLock::new(
                field(Some("&mm->mmap_lock"), "mmap_lock"),
                field(None, "mm_lock_seq"),
            ),
            page_table_lock: SpinLock::new(field(Some("&mm->page_table_lock"), "page_table_lock")),
            tree: Shared::new(field(None, "mm_mt"), BTreeMap::new()),
            nr_ptes: Counter::default(),
            nr_pmds: Counter::default(),
            nr_puds: Counter::default(),
            rss: Default::default(),
            tlb_flush_pending: SharedWord::new(field(None, "tlb_flush_pending"), 0),
            tlb_flush_batched: SharedWord::new(field(None, "tlb_flush_batched"), 0),
            write_protect_seq: SharedWord::new(field(None, "write_protect_seq"), 0),
            exiting: SharedWord::new(field(None, "flags(MMF_OOM_SKIP)"), 0),
            uffd_wp_protected: Ghost::default(),
            uffd_wp_done: Ghost::default(),
            tlb_owed: Ghost::default(),
        }
    }

    /// `find_vma`: the first VMA ending above `addr` (RCU or mmap lock).
    pub fn find_vma(&self, cx: Ctx<'_>, addr: u64) -> Option<Arc<Vma>> {
        // LOCKING: the tree's ranges are read in the tree's step; `end()` is the maple tree's copy
        // of the range (changed only under mmap W, with a tree store).
        self.tree.read(&cx.cpu, |t| {
            if let Some((_, v)) = t.range(..=addr).next_back() {
                if v.end(cx) > addr {
                    return Some(v.clone());
                }
            }
            t.range(addr + 1..).next().map(|(_, v)| v.clone())
        })
    }

    /// `vma_lookup`: the VMA containing `addr`.
    pub fn vma_lookup(&self, cx: Ctx<'_>, addr: u64) -> Option<Arc<Vma>> {
        self.find_vma(cx, addr).filter(|v| v.start(cx) <= addr)
    }

    /// VMAs overlapping `[start, end)`, in address order.
    pub fn vmas_in(&self, cx: Ctx<'_>, start: u64, end: u64) -> Vec<Arc<Vma>> {
        self.tree.read(&cx.cpu, |t| {
            let first = t
                .range(..=start)
                .next_back()
                .filter(|(_, v)| v.end(cx) > start)
                .map(|(k, _)| *k);
            let from = first.unwrap_or(start);
            t.range(from..end)
                .map(|(_, v)| v.clone())
                .filter(|v| v.end(cx) > start)
                .collect()
        })
    }

    /// The VMA before `addr` (ending at or below it) and the one after `end`.
    pub fn neighbours(
        &self,
        cx: Ctx<'_>,
        start: u64,
        end: u64,
    ) -> (Option<Arc<Vma>>, Option<Arc<Vma>>) {
        self.tree.read(&cx.cpu, |t| {
            let prev = t
                .range(..start)
                .next_back()
                .map(|(_, v)| v.clone())
                .filter(|v| v.end(cx) <= start);
            let next = t.range(end..).next().map(|(_, v)| v.clone());
            (prev, next)
        })
    }

    /// Every VMA, in address order (quiescent code: set-up, checks, teardown).
    #[track_caller]
    pub fn all_vmas(&self, m: &Machine) -> Vec<Arc<Vma>> {
        self.tree.peek(m, |t| t.values().cloned().collect())
    }

    /// Every VMA, in address order, read in an announced step of the tree (mmap lock held).
    pub fn all_vmas_locked(&self, cx: Ctx<'_>) -> Vec<Arc<Vma>> {
        self.tree.read(&cx.cpu, |t| t.values().cloned().collect())
    }

    /// `mas_store` of a VMA (mmap write lock held).
    pub(crate) fn tree_insert(&self, cx: Ctx<'_>, vma: Arc<Vma>) {
        self.tree.write(&cx.cpu, |t| t.insert(vma.start(cx), vma));
    }

    /// Remove a VMA from the tree by its start (mmap write lock held).
    pub(crate) fn tree_remove(&self, cx: Ctx<'_>, start: u64) -> Option<Arc<Vma>> {
        self.tree.write(&cx.cpu, |t| t.remove(&start))
    }

    /// `add_mm_counter`.
    pub fn add_rss(&self, member: usize, n: i64) {
        self.rss[member].add(n);
    }

    /// An rss counter, read at quiescence (or natively, between operations).
    pub fn get_rss(&self, member: usize) -> i64 {
        self.rss[member].get_quiescent()
    }

    /// `mm_pgtables_bytes` in pages (what `VmPTE` reports, in tables), read at quiescence.
    pub fn pgtables(&self) -> i64 {
        self.nr_ptes.get_quiescent() + self.nr_pmds.get_quiescent() + self.nr_puds.get_quiescent()
    }

    /// Counter for tables of `level` (1 = PTE, 2 = PMD, 3 = PUD); higher levels are not counted.
    pub fn nr_tables(&self, level: u32) -> Option<&Counter> {
        match level {
            1 => Some(&self.nr_ptes),
            2 => Some(&self.nr_pmds),
            3 => Some(&self.nr_puds),
            _ => None,
        }
    }

    /// The uffd-wp oracle: the page at `addr` is no longer write-protected (filled by
    /// `UFFDIO_COPY`, zapped in an anonymous VMA): its contract ends, including the part an
    /// `UFFDIO_WRITEPROTECT` in progress has already done (it would otherwise record the page
    /// when it returns).
    pub fn uffd_wp_forget(&self, addr: u64) {
        self.uffd_wp_protected.record(|s| s.remove(&addr));
        self.uffd_wp_done.record(|s| s.retain(|e| e.1 != addr));
    }

    /// `mm_tlb_flush_nested`.
    pub fn tlb_flush_nested(&self, cx: Ctx<'_>) -> bool {
        self.tlb_flush_pending.read(&cx.cpu) as i64 > 1
    }
}

/// `struct vm_area_struct`, an object of `vm_area_cachep` (`SLAB_TYPESAFE_BY_RCU`, 6.15+):
/// freed by [`crate::mm::vma::vm_area_free`] once unreachable from the tree and the rmap trees;
/// every announced access to `vm_flags` and `anon_vma` checks it was not freed (outside RCU).
pub struct Vma {
    pub id: u64,
    /// The object's lifetime: its fields are slab fields of this object.
    pub slab: SlabObj,
    /// `vma->vm_mm` (the mm's id). LOCKING: set by `vm_area_alloc` before the VMA is published;
    /// a VMA reused under `SLAB_TYPESAFE_BY_RCU` may belong to another mm when a stale RCU
    /// reader looks, which `vma_start_read` checks with an announced read ([`Vma::vm_mm_racy`]).
    vm_mm: Locked<u64>,
    /// The maple tree that holds the VMA now (its mm's `mm_mt` id): a range change is announced
    /// on it as well when the object was first built for another mm (see [`Vma::set_range`]).
    tree_id: Locked<u64>,
    /// `vm_start`, `vm_end`, `vm_pgoff`. LOCKING: written with mmap W + VMA W + the rmap locks
    /// (`vma_prepare`), read with any one of them, or under RCU in a maple-tree lookup: a write
    /// announces the mm's tree object, which every lookup reads.
    range: Locked<(u64, u64, u64)>,
    /// `vm_flags`: written under mmap W + VMA W (`vm_flags_set`), read by rmap walkers too.
    pub vm_flags: SharedWord,
    /// `vm_file` (shmem and file mappings); `None` for anonymous VMAs.
    pub file: Option<Arc<File>>,
    /// `vma->anon_vma`: set once under mmap R + `page_table_lock` (`anon_vma_prepare`), read
    /// locklessly.
    anon_vma: Shared<Option<Arc<AnonVma>>>,
    /// The anon_vmas this VMA is linked into (`anon_vma_chain`), own last. LOCKING: changed under
    /// mmap W (or mmap R + `page_table_lock` in `anon_vma_prepare`), read under mmap R.
    pub anon_vma_chain: Locked<Vec<Arc<AnonVma>>>,
    pub lock: VmaLock,
}

impl std::fmt::Debug for Vma {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self.range.debug_value(|r| *r);
        write!(f, "vma#{}[{:#x}-{:#x} pgoff {:#x}]", self.id, r.0, r.1, r.2)
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
        let slab = SlabObj::new(m, true);
        let id = m.name_owner(slab.id(), Owner::Vma { start, end });
        let field = |k, name| m.name_field(slab.field(k), id, name);
        Vma {
            id,
            vm_mm: Locked::new(field(6, "vm_mm"), mm.id),
            tree_id: Locked::new(field(7, "vm_mm.mm_mt"), mm.tree.id()),
            // The maple tree holds each VMA's range: a range change is a store to the tree, and a
            // lookup reads the ranges in the tree's step.
            range: Locked::labelled(
                mm.tree.id(),
                "vm_start/vm_end/vm_pgoff",
                (start, end, pgoff),
            ),
            vm_flags: SharedWord::new(field(1, "vm_flags"), flags.0),
            file,
            anon_vma: Shared::new(field(2, "anon_vma"), None),
            anon_vma_chain: Locked::new(field(3, "anon_vma_chain"), Vec::new()),
            lock: VmaLock::new(field(4, "vm_refcnt"), field(5, "vm_lock_seq")),
            slab,
        }
    }

    /// `vm_area_alloc` handing this freed object out again for `mm` (`SLAB_TYPESAFE_BY_RCU`):
    /// the reuse step, then the initialisation of every field, each an announced write, before
    /// the caller publishes it. Anonymous VMAs only (`file` is fixed per object in the model).
    pub(crate) fn reinit(
        &self,
        cx: Ctx<'_>,
        mm: &MmStruct,
        start: u64,
        end: u64,
        pgoff: u64,
        flags: VmFlags,
    ) {
        debug_assert!(self.file.is_none());
        self.slab.reuse(&cx.cpu);
        self.vm_mm.write(&cx.cpu, |v| *v = mm.id);
        self.tree_id.write(&cx.cpu, |v| *v = mm.tree.id());
        self.vm_flags.write(&cx.cpu, flags.0);
        self.anon_vma.write(&cx.cpu, |a| *a = None);
        self.anon_vma_chain.write(&cx.cpu, |c| c.clear());
        self.lock.reinit(&cx.cpu);
        self.set_range(cx, start, end, pgoff);
    }

    /// `vma->vm_mm` (its id) by a holder of the VMA or of a lock that keeps it alive.
    #[track_caller]
    pub fn mm_id(&self, cx: Ctx<'_>) -> u64 {
        self.vm_mm.read(&cx.cpu, |v| *v)
    }

    /// `vma->vm_mm` read by a CPU that may hold a stale pointer (`vma_start_read` under RCU): an
    /// announced read, ordered against a reuse's initialisation.
    pub fn vm_mm_racy(&self, cx: Ctx<'_>) -> u64 {
        let v = self.vm_mm.read_racy(&cx.cpu, |v| *v);
        self.slab.check(&cx.cpu, self.vm_mm.id(), "vma->vm_mm read");
        v
    }

    /// `vm_start` (see `range` for the locking rule, which the explorer checks).
    #[track_caller]
    pub fn start(&self, cx: Ctx<'_>) -> u64 {
        self.range.read(&cx.cpu, |r| r.0)
    }

    /// `vm_end`.
    #[track_caller]
    pub fn end(&self, cx: Ctx<'_>) -> u64 {
        self.range.read(&cx.cpu, |r| r.1)
    }

    /// `vm_pgoff`.
    #[track_caller]
    pub fn pgoff(&self, cx: Ctx<'_>) -> u64 {
        self.range.read(&cx.cpu, |r| r.2)
    }

    /// `vm_start`, `vm_end`, `vm_pgoff` in one read.
    #[track_caller]
    pub fn range(&self, cx: Ctx<'_>) -> (u64, u64, u64) {
        self.range.read(&cx.cpu, |r| *r)
    }

    /// `vm_start`, `vm_end`, `vm_pgoff` at quiescence (set-up, checks, reports).
    #[track_caller]
    pub fn range_peek(&self, m: &Machine) -> (u64, u64, u64) {
        self.range.peek(m, |r| *r)
    }

    /// `vm_flags` (an announced read).
    #[track_caller]
    pub fn flags(&self, cx: Ctx<'_>) -> VmFlags {
        let v = self.vm_flags.read(&cx.cpu);
        self.slab
            .check(&cx.cpu, self.vm_flags.id(), "vma->vm_flags read");
        VmFlags(v)
    }

    /// `vm_flags` at quiescence (set-up, checks, reports).
    #[track_caller]
    pub fn flags_peek(&self, m: &Machine) -> VmFlags {
        VmFlags(self.vm_flags.peek(m))
    }

    /// `vm_flags_set`/`vm_flags_reset` (mmap W + VMA W held).
    pub(crate) fn set_flags(&self, cx: Ctx<'_>, f: VmFlags) {
        self.vm_flags.write(&cx.cpu, f.0);
        self.slab
            .check(&cx.cpu, self.vm_flags.id(), "vma->vm_flags write");
    }

    /// Change `vm_start`/`vm_end`/`vm_pgoff`: mmap W + VMA W + rmap W held by the caller.
    #[track_caller]
    pub(crate) fn set_range(&self, cx: Ctx<'_>, start: u64, end: u64, pgoff: u64) {
        cx.k.machine.name_owner(self.id, Owner::Vma { start, end });
        // A reused object's range is announced on the tree of the mm it was first built for;
        // announce the current one too, which lookups read.
        let tree = self.tree_id.read(&cx.cpu, |t| *t);
        if tree != self.range.id() {
            cx.cpu.visible(
                mmcheck_platform::Obj::Var(tree),
                mmcheck_platform::Access::Write,
            );
        }
        self.range.write(&cx.cpu, |r| *r = (start, end, pgoff));
    }

    /// `vma_is_anonymous`.
    pub fn is_anonymous(&self) -> bool {
        self.file.is_none()
    }

    /// `VM_SHARED` (an announced read of `vm_flags`).
    pub fn is_shared(&self, cx: Ctx<'_>) -> bool {
        self.flags(cx).has(VmFlags::SHARED)
    }

    #[track_caller]
    pub fn contains(&self, cx: Ctx<'_>, addr: u64) -> bool {
        let (start, end, _) = self.range(cx);
        start <= addr && addr < end
    }

    /// [`Vma::contains`] at quiescence.
    #[track_caller]
    pub fn contains_peek(&self, m: &Machine, addr: u64) -> bool {
        let (start, end, _) = self.range_peek(m);
        start <= addr && addr < end
    }

    /// The linear page index of `addr` (`linear_page_index`).
    #[track_caller]
    pub fn linear_page_index(&self, cx: Ctx<'_>, addr: u64) -> u64 {
        let (start, _, pgoff) = self.range(cx);
        (addr.wrapping_sub(start) >> cx.geo().page_shift).wrapping_add(pgoff)
    }

    /// `vma_address`: where page index `pgoff` is mapped, if inside the VMA.
    /// For an rmap walk of a folio of `nr` pages at `pgoff`: the address its first page has in
    /// this VMA's linear map if any of its pages falls inside the VMA (that first page may be
    /// outside, before `vm_start`: the VMA was split inside the folio), else `None`. The kernel's
    /// `vma_address` returns `vm_start` then; the model's callers walk the folio's pages from
    /// its first and skip those outside the VMA.
    #[track_caller]
    pub fn folio_address(&self, cx: Ctx<'_>, pgoff: u64, nr: u64) -> Option<u64> {
        let page_shift = cx.geo().page_shift;
        let (start, end, first) = self.range(cx);
        let pages = (end - start) >> page_shift;
        if pgoff + nr <= first || pgoff >= first + pages {
            return None;
        }
        let a = start as i128 + ((pgoff as i128 - first as i128) << page_shift);
        u64::try_from(a).ok()
    }

    #[track_caller]
    pub fn address_of(&self, cx: Ctx<'_>, pgoff: u64) -> Option<u64> {
        let page_shift = cx.geo().page_shift;
        let (start, end, first) = self.range(cx);
        let pages = (end - start) >> page_shift;
        (pgoff >= first && pgoff < first + pages).then(|| start + ((pgoff - first) << page_shift))
    }

    /// `READ_ONCE(vma->anon_vma)` (announced).
    #[track_caller]
    pub fn anon_vma(&self, cx: Ctx<'_>) -> Option<Arc<AnonVma>> {
        let a = self.anon_vma.read(&cx.cpu, |a| a.clone());
        self.slab
            .check(&cx.cpu, self.anon_vma.id(), "vma->anon_vma read");
        a
    }

    /// `list_is_singular(&vma->anon_vma_chain)` by a CPU that holds no lock excluding its
    /// writers (`reusable_anon_vma` on a neighbour): an announced read.
    pub fn anon_vma_chain_is_singular_racy(&self, cx: Ctx<'_>) -> bool {
        let r = self.anon_vma_chain.read_racy(&cx.cpu, |c| c.len() == 1);
        self.slab.check(
            &cx.cpu,
            self.anon_vma_chain.id(),
            "vma->anon_vma_chain read",
        );
        r
    }

    /// `vma->anon_vma` at quiescence.
    #[track_caller]
    pub fn anon_vma_peek(&self, m: &Machine) -> Option<Arc<AnonVma>> {
        self.anon_vma.peek(m, |a| a.clone())
    }

    /// Set `vma->anon_vma` (under `page_table_lock` + the anon_vma lock, or mmap W).
    pub(crate) fn set_anon_vma(&self, cx: Ctx<'_>, a: Option<Arc<AnonVma>>) {
        self.anon_vma.write(&cx.cpu, |x| *x = a);
        self.slab
            .check(&cx.cpu, self.anon_vma.id(), "vma->anon_vma write");
    }

    /// Set `vma->anon_vma` before the VMA is published.
    pub(crate) fn init_anon_vma(&self, cx: Ctx<'_>, a: Option<Arc<AnonVma>>) {
        self.anon_vma.write(&cx.cpu, |x| *x = a);
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

    #[track_caller]
    pub(crate) fn tree_insert(&self, cx: Ctx<'_>, vma: Arc<Vma>) {
        self.tree.insert(cx, vma);
    }

    #[track_caller]
    pub(crate) fn tree_remove(&self, cx: Ctx<'_>, vma: &Vma) {
        self.tree.remove(cx, vma);
    }

    /// VMAs whose page range overlaps `[first, last]`, in tree order.
    #[track_caller]
    pub fn tree_overlapping(&self, cx: Ctx<'_>, first: u64, last: u64) -> Vec<Arc<Vma>> {
        self.tree.overlapping(cx, first, last)
    }
}

/// A shmem-like file: a page cache and an `i_mmap` tree.
pub struct File {
    pub id: u64,
    /// `mapping->i_mmap_rwsem`.
    pub i_mmap_rwsem: RwSem,
    /// `mapping->i_mmap`.
    pub i_mmap: VmaIntervalTree,
    /// `mapping->i_pages`: page index → folio (head), with the cache's reference.
    /// LOCKING: changed only under `i_pages_lock`; looked up without it (the kernel's RCU
    /// xarray walk, `folio_try_get` and a reload).
    pub(crate) pages: Shared<BTreeMap<u64, FrameRef>>,
    /// The xarray's spinlock (`xa_lock_irq(&mapping->i_pages)`): every insertion, removal and
    /// replacement of a cached folio, and `__remove_mapping`'s freeze with the removal, so that
    /// a folio found in the cache under it has a nonzero count.
    pub i_pages_lock: SpinLock,
    /// File size in pages (`i_size`).
    pub size_pages: SharedWord,
    /// `f_count`: references from VMAs and from the user (memfd).
    pub f_count: SharedWord,
}

impl File {
    pub(crate) fn new(cx: Ctx<'_>, size_pages: u64) -> Self {
        let m = &cx.k.machine;
        let id = m.name_owner(m.new_id(), Owner::Mapping);
        let field = |name| m.name_field(m.new_id(), id, name);
        File {
            id,
            i_mmap_rwsem: RwSem::new(m.name_field(
                m.new_lock_id("&mapping->i_mmap_rwsem"),
                id,
                "i_mmap_rwsem",
            )),
            i_mmap: VmaIntervalTree::new(field("i_mmap")),
            pages: Shared::new(field("i_pages"), BTreeMap::new()),
            i_pages_lock: SpinLock::new(m.name_field(
                m.new_lock_id("&mapping->i_pages"),
                id,
                "i_pages.xa_lock",
            )),
            size_pages: SharedWord::new(field("i_size"), size_pages),
            f_count: SharedWord::new(field("f_count"), 1),
        }
    }

    /// `filemap_get_entry`: the cached folio at `index` (RCU xarray lookup).
    pub fn find_get_folio(&self, cx: Ctx<'_>, index: u64) -> Option<FrameRef> {
        self.pages.read(&cx.cpu, |p| p.get(&index).copied())
    }

    /// Cached folios with index in `[first, last]` (none when `first > last`: an xarray walk
    /// past its end, which a caller computing the range from a VMA that changed under it
    /// can ask for).
    pub fn folios_in(&self, cx: Ctx<'_>, first: u64, last: u64) -> Vec<(u64, FrameRef)> {
        self.pages.read(&cx.cpu, |p| {
            if first > last {
                return Vec::new();
            }
            p.range(first..=last).map(|(i, f)| (*i, *f)).collect()
        })
    }

    /// `xa_lock_irq(&mapping->i_pages)`. IRQs stay on: nothing under it sends or waits for an
    /// IPI.
    pub(crate) fn xa_lock<'a>(&'a self, cx: Ctx<'a>) -> SpinGuard<'a> {
        self.i_pages_lock.lock(cx.cpu)
    }

    fn assert_xa_locked(&self, xa: &SpinGuard<'_>) {
        debug_assert_eq!(
            xa.lock_id(),
            self.i_pages_lock.id(),
            "another file's i_pages lock"
        );
    }

    /// Store `f` at an empty `index` (`shmem_add_to_page_cache`), under the xarray lock.
    pub(crate) fn cache_insert(
        &self,
        cx: Ctx<'_>,
        xa: &SpinGuard<'_>,
        index: u64,
        f: FrameRef,
    ) -> bool {
        self.assert_xa_locked(xa);
        self.pages.write(&cx.cpu, |p| {
            if p.contains_key(&index) {
                return false;
            }
            p.insert(index, f);
            true
        })
    }

    /// `xas_store` of `f` at `index` under the xarray lock: returns what was there.
    pub(crate) fn cache_replace(
        &self,
        cx: Ctx<'_>,
        xa: &SpinGuard<'_>,
        index: u64,
        f: FrameRef,
    ) -> Option<FrameRef> {
        self.assert_xa_locked(xa);
        self.pages.write(&cx.cpu, |p| p.insert(index, f))
    }

    /// `page_cache_delete` / `xas_store(NULL)`, under the xarray lock.
    pub(crate) fn cache_remove(
        &self,
        cx: Ctx<'_>,
        xa: &SpinGuard<'_>,
        index: u64,
    ) -> Option<FrameRef> {
        self.assert_xa_locked(xa);
        self.pages.write(&cx.cpu, |p| p.remove(&index))
    }

    /// Folios in the page cache (quiescent).
    #[track_caller]
    pub fn nr_cached(&self, m: &Machine) -> usize {
        self.pages.peek(m, |p| p.len())
    }

    /// Every cached folio (quiescent).
    #[track_caller]
    pub fn cached_peek(&self, m: &Machine) -> Vec<(u64, FrameRef)> {
        self.pages
            .peek(m, |p| p.iter().map(|(i, f)| (*i, *f)).collect())
    }

    #[track_caller]
    pub(crate) fn i_mmap_insert(&self, cx: Ctx<'_>, vma: Arc<Vma>) {
        self.i_mmap.insert(cx, vma);
    }

    #[track_caller]
    pub(crate) fn i_mmap_remove(&self, cx: Ctx<'_>, vma: &Vma) {
        self.i_mmap.remove(cx, vma);
    }

    /// VMAs mapping some page in `[first, last]`, in tree order.
    #[track_caller]
    pub fn i_mmap_overlapping(&self, cx: Ctx<'_>, first: u64, last: u64) -> Vec<Arc<Vma>> {
        self.i_mmap.overlapping(cx, first, last)
    }
}

/// An interval tree of VMAs keyed by their page range (`anon_vma->rb_root`, `mapping->i_mmap`),
/// kept as a vector in `(vm_pgoff, id)` order: the traversal order of the kernel's augmented
/// rbtree for these keys, with a VMA inserted after the ones already there at the same pgoff.
/// Callers hold the owning rmap lock.
pub struct VmaIntervalTree {
    /// LOCKING: changed with the owning rmap lock held for write (and mmap W), read with it held.
    vmas: Locked<Vec<Arc<Vma>>>,
}

impl VmaIntervalTree {
    pub fn new(id: u64) -> Self {
        VmaIntervalTree {
            vmas: Locked::new(id, Vec::new()),
        }
    }

    #[track_caller]
    pub fn insert(&self, cx: Ctx<'_>, vma: Arc<Vma>) {
        // vma_interval_tree_insert: ordered by vm_pgoff, a node with an equal key goes to the
        // right of the ones already there (insertion order, which mremap's copy_vma relies on:
        // a new VMA is walked after the one it is copied from). Not the object's id: a reused
        // (SLAB_TYPESAFE_BY_RCU) object keeps its old id.
        self.vmas.write(&cx.cpu, |t| {
            let key = vma.pgoff(cx);
            let at = t.partition_point(|v| v.pgoff(cx) <= key);
            t.insert(at, vma);
        })
    }

    #[track_caller]
    pub fn remove(&self, cx: Ctx<'_>, vma: &Vma) {
        self.vmas.write(&cx.cpu, |t| t.retain(|v| v.id != vma.id));
    }

    /// VMAs whose page range overlaps `[first, last]`, in tree order.
    #[track_caller]
    pub fn overlapping(&self, cx: Ctx<'_>, first: u64, last: u64) -> Vec<Arc<Vma>> {
        let page_shift = cx.geo().page_shift;
        self.vmas.read(&cx.cpu, |t| {
            t.iter()
                .filter(|v| {
                    let (start, end, s) = v.range(cx);
                    let e = s + ((end - start) >> page_shift);
                    s <= last && first < e
                })
                .cloned()
                .collect()
        })
    }
}
