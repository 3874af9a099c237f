//! Protocol configuration: the kernel behaviours the model can be flipped between. The defaults
//! are the 2026 mainline (≈6.18, as on the host); each field names the kernel option or commit it
//! follows. Every field that a seed thread or a race argues about is a named switch ([`SWITCHES`])
//! settable as `name = value`, and presets name kernel versions ([`PRESETS`]).

pub use mmcheck_platform::TlbFlushMode;

/// How freed page tables reach the allocator (`mm/mmu_gather.c`, `tlb_remove_table`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableFree {
    /// `MMU_GATHER_RCU_TABLE_FREE`: `call_rcu` after the TLB flush (x86 since 6.15).
    Rcu,
    /// `tlb_remove_table_sync_one` (IPI) and then free: semi-RCU, safe for IRQ-off walkers only.
    Ipi,
    /// Free right after the TLB flush (`tlb_remove_page`, x86 bare metal before 6.15).
    Immediate,
}

/// The protocol the model follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Protocol {
    /// `CONFIG_PT_RECLAIM` (6.14+): MADV_DONTNEED frees PTE tables it emptied.
    pub pt_reclaim: bool,
    /// How the mmu_gather frees tables (munmap, exit).
    pub table_free: TableFree,
    /// How `tlb_remove_table_one` (`__tlb_remove_table_one`) frees a single table when
    /// `tlb_remove_table` cannot allocate its batch page (an explored choice): `call_rcu` with
    /// `CONFIG_PT_RECLAIM` (6.14+), `tlb_remove_table_sync_one` then free before. PT reclaim's
    /// tables are its reason (an RCU `pte_offset_map` reader), munmap's take the same path.
    pub pt_reclaim_free: TableFree,
    /// MADV_DONTNEED may run under the per-VMA read lock (6.16+).
    pub madv_vma_lock: bool,
    /// Faults try `lock_vma_under_rcu` first (6.4+).
    pub per_vma_lock: bool,
    /// The userfaultfd fill and move ioctls run under the per-VMA read lock (`uffd_lock_vma`,
    /// 6.9+; with `per_vma_lock`), else under the mmap read lock throughout.
    pub uffd_vma_lock: bool,
    /// Where `lock_vma_under_rcu` refuses an anonymous VMA without an anon_vma (6.4–6.9; 6.4 and
    /// 6.5 also refused file VMAs), or not at all (6.10+: `vmf_anon_prepare` retries under the
    /// mmap lock).
    pub lvur_anon_vma_check: AnonVmaCheck,
    /// `CONFIG_SPLIT_PTE_PTLOCKS` / `CONFIG_SPLIT_PMD_PTLOCKS`: locks live in table pages; off means
    /// every table lock is `mm->page_table_lock`.
    pub split_ptlocks: bool,
    /// Read faults on anonymous memory map the zero page (`mm_forbids_zeropage` false).
    pub zero_page: bool,
    /// `/sys/kernel/mm/transparent_hugepage/use_zero_page`.
    pub huge_zero_page: bool,
    /// A write fault on the huge zero PMD allocates a THP (`do_huge_zero_wp_pmd`, 6.13+); off:
    /// split the PMD and COW one page (5.8–6.12).
    pub huge_zero_wp_alloc: bool,
    /// `fault_around_bytes` in pages (16 = 64 KiB).
    pub fault_around_pages: u64,
    /// The mTHP order enabled for anonymous faults (`hugepages-<size>kB/enabled = always`), 0 for
    /// none (this host's default).
    pub anon_fault_order: u32,
    /// `do_anonymous_page` rechecks the whole range of an mTHP under the PTL (`pte_range_none`),
    /// not only the faulting PTE.
    pub anon_fault_range_recheck: bool,
    /// Pages an mmu_gather batches before a forced flush.
    pub gather_batch: usize,
    /// Run RCU callbacks at system-call boundaries (native); the explorer runs them on their own
    /// thread instead.
    pub inline_rcu_callbacks: bool,
    /// `pte_offset_map_lock` rechecks the PMD after taking the PTL (R1; 6.5+, Hugh Dickins,
    /// "mm/pgtable: allow pte_offset_map[_lock]() to fail"). Off plants a missing recheck.
    pub pmd_same_recheck: bool,
    /// `pmd_install` / `__p*d_alloc` populate under the table's lock (I4). Off plants a missing
    /// lock.
    pub populate_locked: bool,
    /// `pmd_install` / `__p*d_alloc` issue `smp_wmb` before populating (the table's zeroing
    /// visible before the pointer). Only a weak `memory` model can tell it is missing.
    pub populate_wmb: bool,
    /// `__folio_mark_uptodate` issues `smp_wmb`: a new folio's zeroing or copy visible before
    /// the entry that maps it. Only a weak `memory` model can tell it is missing.
    pub uptodate_wmb: bool,
    /// Under `memory = lkmm`, the kernel's stores into a new folio (its zeroing, a copy) are
    /// buffered like entry stores (off: they reach memory at once).
    pub memory_data_buffered: bool,
    /// Under `memory = lkmm`, the kernel's loads of page-table entries may be performed early:
    /// they may read an entry's older value unless a read barrier, an acquisition, a fully
    /// ordered RMW or an address dependency orders them (on by default; off: loads in program
    /// order, the store side of the LKMM only).
    pub memory_load_reorder: bool,
    /// mTHP collapse issues `smp_wmb` between the new PTEs and `pmd_populate` of the detached
    /// table (seed 002's "make PTEs visible before PMD. See pmd_install()").
    pub collapse_mthp_wmb: bool,
    /// The memory model the threads run under (`sc`, `tso` for x86, `lkmm` for arm64).
    pub memory: mmcheck_platform::MemoryModel,
    /// PT reclaim's fast path takes the PMD lock with `spin_trylock` while holding the PTL (1.4).
    /// Off takes it with `spin_lock`, inverting the PMD-lock → PTL order of the slow path.
    pub pt_reclaim_pmd_trylock: bool,
    /// The mmu_gather flushes the TLB before freeing what it gathered (I20). Off plants a missing
    /// flush.
    pub gather_tlb_flush: bool,
    /// GUP-fast rechecks the PMD after grabbing the folio (Yang Shi, 6.1).
    pub gup_fast_recheck_pmd: bool,
    /// FOLL_PIN GUP-fast samples `mm->write_protect_seq` and backs off if fork's
    /// `copy_page_range` ran meanwhile (5.11, 57efa1fe5957).
    pub gup_fast_write_protect_seq: bool,
    /// `try_grab_folio_fast` issues `smp_mb__after_atomic` after a pin's count update, before
    /// GUP-fast rechecks the entries (paired with `folio_try_share_anon_rmap_*`'s `smp_mb`).
    pub gup_fast_pin_mb: bool,
    /// What-if: `__vma_enter_locked` orders the writer's later loads after the last reader's
    /// `vma_end_read` also when it finds no reader at its first check (the kernel orders them
    /// only when it slept).
    pub vma_lock_wait_acquire: bool,
    /// How `change_huge_pmd` rewrites a huge PMD for NUMA hinting.
    pub numa_huge_pmd_update: HugePmdUpdate,
    /// `change_pte_range` calls `flush_tlb_batched_pending` after taking the PTL (3ea277194daa).
    pub mprotect_flush_batched_pending: bool,
    /// GUP-fast rechecks the PTE after grabbing the folio.
    pub gup_fast_recheck_pte: bool,
    /// What a `folio_walk_start` caller holds: the mmap read lock, the per-VMA read lock
    /// (FW_VMA_LOCKED v1), or the VMA lock with IRQs off across the walk (v2).
    pub folio_walk_lock: FolioWalkLock,
    /// How `folio_walk_start` walks to the PTE: taking the PTL (today), or locklessly in the
    /// GUP-fast manner under RCU alone (FW_VMA_LOCKED v1) or with IRQs off (v2).
    pub folio_walk_design: FolioWalkDesign,
    /// A lockless `folio_walk_start` rechecks the PMD and the PTE after taking the folio
    /// reference, as `gup_fast_pte_range` does; off keeps the first reference it gets.
    pub folio_walk_recheck: bool,
    /// Whether `move_ptes` takes the rmap locks: as `copy_vma` decides, always, or never.
    pub mremap_rmap_locks: MremapRmapLocks,
    /// mremap moves whole PTE tables with `move_normal_pmd`.
    pub mremap_normal_pmd: bool,
    /// `move_normal_pmd` always takes the rmap locks (5.14+), or only when `copy_vma` asks.
    pub mremap_normal_pmd_rmap_locks: bool,
    /// `try_realign_addr` (6.7+): mutually aligned moves start at the PMD boundary below.
    pub mremap_realign: bool,
    /// `move_normal_pmd` rechecks, under both PMD locks, that the old PMD still points to a
    /// table (6.12, 6.6.58: retraction may have cleared it meanwhile).
    pub mremap_normal_pmd_recheck: bool,
    /// `collapse_pte_mapped_thp` rechecks the PMD in step 4 even when the PMD lock and the PTL
    /// are one lock (the 6.13 code rechecks only when they differ).
    pub collapse_pte_mapped_recheck_always: bool,
    /// `collapse_pte_mapped_thp` takes the PMD lock before the PTL and clears the PTEs with both
    /// held when the VMA is uffd-armed and private (a98460494b16, 6.6), or always drops the PTL
    /// after clearing and takes the PMD lock in step 4 (1043173eb5eb, the 6.6-rc bug).
    pub collapse_pte_mapped_uffd_pml_early: bool,
    /// `collapse_pte_mapped_thp` runs under the mmap write lock (before 6.6) instead of the
    /// read lock.
    pub collapse_pte_mapped_mmap_write: bool,
    /// `retract_page_tables` checks `userfaultfd_wp(vma)` again under the locks that exclude
    /// `UFFDIO_WRITEPROTECT` installing markers (the PTL, 6.6+; the mmap write lock before), or
    /// only before taking them.
    pub retract_uffd_wp_recheck: bool,
    /// `move_pages_pte` rechecks under both PTLs that the destination PMD still names the table
    /// it mapped (`pmd_same`, 6.14), or only that both PTEs are unchanged.
    pub uffd_move_dst_pmd_recheck: bool,
    /// `mfill_atomic` (`UFFDIO_COPY`) judges the destination PMD on a read after `__pte_alloc`
    /// (`-EEXIST` for a THP or a none PMD, 71c186efc1b2, 6.11), or checks for a THP before it
    /// and `BUG_ON`s a none or THP PMD after it (6.5-6.10).
    pub uffd_copy_dst_pmd_recheck: bool,
    /// `dup_mmap` write-locks each parent VMA (`vma_start_write`) before copying it (6.5,
    /// fb49c455323f), or not (6.4: per-VMA-locked faults race the copy).
    pub fork_lock_vmas: bool,
    /// Where `zap_pte_range` explores `need_resched()` (a choice step).
    pub zap_need_resched: ZapResched,
    /// When `move_ptes` flushes the old range: before releasing the PTLs, or after.
    pub mremap_flush: MremapFlush,
    /// mTHP collapse keeps the anon_vma write lock until the table is back (v18), or drops it right
    /// after isolation as PMD-order collapse does.
    pub collapse_mthp_anon_vma: MthpAnonVma,
    /// `tlb_remove_table_sync_one` after `pmdp_collapse_flush` (Jann Horn, 6.1).
    pub collapse_ipi_sync: bool,
    /// The re-install check on the PMD: BUG_ON or WARN_ON_ONCE (v18).
    pub collapse_pmd_none_check: PmdNoneCheck,
    /// `vma_start_write` before `check_pmd_still_valid` (2026 base) or after (≤ 6.12).
    pub collapse_vma_write_order: VmaWriteOrder,
    /// khugepaged's `max_ptes_none` (`/sys/kernel/mm/transparent_hugepage/khugepaged/max_ptes_none`,
    /// capped at `HPAGE_PMD_NR - 1`; for mTHP orders only 0 or the maximum are meaningful).
    pub collapse_max_ptes_none: u64,
    /// khugepaged's `max_ptes_shared`: PTEs mapping an anon page that may be mapped by another
    /// mm (after fork) that a PMD-order collapse accepts.
    pub collapse_max_ptes_shared: MaxPtesShared,
    /// `pte_offset_map*` enter RCU (6.5+, Hugh Dickins); before, they relied on the caller's locks.
    pub pte_map_rcu: bool,
    /// `retract_page_tables` rechecks the PMD under the PMD lock (`check_pmd_state`, 6.14).
    pub retract_recheck_pmd: bool,
    /// `retract_page_tables` checks `vma->anon_vma` again once it holds the locks that exclude
    /// `anon_vma_prepare` (≤6.5: the mmap write lock, 023f47a8250c; 6.6+: the PMD lock and PTL).
    pub retract_anon_vma_recheck: bool,
    /// `retract_page_tables` holds `i_mmap_rwsem` for read (6.6+), or every walk-start lock
    /// exclusively (`i_mmap` write and the mmap write lock, ≤6.5 after Jann Horn's fix).
    pub retract_locks: RetractLocks,
    /// How a retracted table is freed: `pte_free_defer` (RCU), IPI then free, or right away.
    pub retract_free: TableFree,
    /// How PT reclaim decides a table is empty.
    pub pt_reclaim_empty_check: EmptyCheck,
    /// How TLB shootdowns reach other CPUs: IPIs to `mm_cpumask` (x86 native) or a broadcast
    /// invalidation (arm64, x86 INVLPGB, paravirt).
    pub tlb_flush: TlbFlushMode,
    /// Reclaim's `try_to_unmap` passes `TTU_BATCH_FLUSH` (`shrink_folio_list`): the flush is
    /// deferred to `try_to_unmap_flush` after the batch.
    pub reclaim_batch_flush: bool,
    /// Async migration's `try_to_migrate` passes `TTU_BATCH_FLUSH` (`migrate_pages_batch`, 6.4+).
    pub migrate_batch_flush: bool,
    /// `zap_pte_range` calls `flush_tlb_batched_pending` after taking the PTL.
    pub zap_flush_batched_pending: bool,
    /// `move_ptes` calls `flush_tlb_batched_pending` after taking the PTLs.
    pub mremap_flush_batched_pending: bool,
    /// `try_to_unmap_one` discards a lazyfree (MADV_FREE) anon folio only if neither the PTE it
    /// just cleared nor the folio is dirty; off discards it whenever the references match.
    pub lazyfree_dirty_check: bool,
    /// `try_to_unmap_one` discards a lazyfree folio only if no reference beyond the isolation
    /// and the mappings is held (`ref_count == 1 + map_count`, 6c8e2a256915, 5.18).
    pub lazyfree_ref_check: bool,
    /// The `smp_mb()` between clearing a lazyfree PTE and reading the folio's reference count
    /// in `try_to_unmap_one` ("clear PTE; barrier; read refcount" against GUP-fast's "inc
    /// refcount; barrier; read PTE", 6c8e2a256915, 5.18). Only a weak memory model can tell.
    pub lazyfree_mb: bool,
    /// How `madvise_free_huge_pmd` cleans a huge PMD: `pmdp_invalidate` then `set_pmd_at`
    /// (58ceeb6bec86, 4.11), or `pmdp_huge_get_and_clear` then `set_pmd_at` before it.
    pub lazyfree_huge_pmd_update: HugePmdUpdate,
    /// A swap device is configured (`swapon`): reclaim writes swap-backed anonymous folios to
    /// swap slots and leaves swap PTEs. Off (the default, like the host) keeps them mapped.
    pub swap: bool,
    /// The swap device has `SWP_SYNCHRONOUS_IO` (zram, pmem): `do_swap_page` reads an entry
    /// mapped once straight into a new folio, skipping the swap cache.
    pub swap_synchronous_io: bool,
    /// `do_swap_page`'s skip-swapcache path pins the entry with `swapcache_prepare` (sets
    /// `SWAP_HAS_CACHE`) before reading it, and clears it after the PTL is dropped (13ddaf26be32,
    /// 6.8); off: two faults may read the same entry into two folios.
    pub swapin_skip_swapcache_prepare: bool,
    /// khugepaged's `max_ptes_swap`: swap PTEs a PMD-order scan swaps in before collapsing.
    pub collapse_max_ptes_swap: MaxPtesSwap,
    /// `vm_area_cachep` is `SLAB_TYPESAFE_BY_RCU` (6.15+): a freed VMA object may be handed out
    /// again while an RCU reader still holds it. Off: freed after a grace period (`call_rcu`,
    /// 6.4-6.14), never reused under a reader.
    pub vma_reuse: bool,
    /// `vma_start_read` fails on a VMA whose `vm_mm` is not the faulting mm (a reused object).
    pub vma_start_read_mm_check: bool,
    /// `lock_vma_under_rcu` checks that the address lies in the locked VMA's range.
    pub lvur_range_check: bool,
    /// Stack expansion (`expand_downwards` from the fault path) takes the mmap write lock (6.5+,
    /// 8d7071af8907); off: under the mmap read lock, as before.
    pub stack_expand_write_lock: bool,
    /// `lock_mm_and_find_vma` looks the VMA up again after trading the read lock for the write
    /// lock (the VMA found under the read lock may have been unmapped and freed meanwhile).
    pub stack_relookup: bool,
    /// munmap downgrades the mmap lock for the zap and the table free whatever its neighbours
    /// (6.5+), or keeps the write lock when the next VMA is `VM_GROWSDOWN` (5.8 to 6.4).
    pub munmap_downgrade_next_to_stack: bool,
    /// `__split_huge_pmd_locked` runs `pmdp_invalidate` on the PMD whatever it holds, a migration
    /// entry included (4.14–6.9); off: only on a present PMD (6.10+, 3a5a8d343e1c).
    pub split_invalidate_nonpresent: bool,
    /// What the architecture's `pmd_mkinvalid` makes of a non-present (swap) PMD.
    pub pmd_mkinvalid_nonpresent: MkinvalidNonpresent,
}

/// `arch.pmd_mkinvalid_nonpresent`: `pmd_mkinvalid` is only defined for present PMDs; what it
/// does to a swap PMD is an accident of each architecture's encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MkinvalidNonpresent {
    /// x86: the entry stays a non-present migration entry, with offset bits 3-11 corrupted.
    CorruptsOffset,
    /// arm64: `PMD_PRESENT_INVALID` makes it read as present (`pmd_present`), a leaf.
    ReadsPresent,
}

/// `numa.huge_pmd_update`: how `change_huge_pmd` replaces a huge PMD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HugePmdUpdate {
    /// `pmdp_invalidate_ad`, then `set_pmd_at`: never none (ced108037c2a, 4.11).
    Invalidate,
    /// `pmdp_huge_get_and_clear_notify`, then `set_pmd_at`: none in between (before 4.11).
    GetAndClear,
}

/// `lock_vma_under_rcu.anon_vma_check`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnonVmaCheck {
    /// No check: `vmf_anon_prepare` returns `VM_FAULT_RETRY` under the VMA lock (6.7+).
    None,
    /// Checked after `vma_start_read` (657b5146955e, 6.5-rc, 6.4.9): the fault then runs
    /// `anon_vma_prepare` under the VMA lock, which finds the anon_vma set.
    AfterStartRead,
    /// Checked before `vma_start_read` (5e31275cc997, 6.4): `MREMAP_DONTUNMAP` can clear it in
    /// between, and `anon_vma_prepare` then runs `find_mergeable_anon_vma` under the VMA lock
    /// alone.
    BeforeStartRead,
}

/// `pt_reclaim.empty_check`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmptyCheck {
    /// The zap held the PTL continuously up to the PMD clear (fast path), else rescan (6.14).
    ContinuousPtl,
    /// Always rescan every entry under the PMD lock and PTL (slow path only).
    Rescan,
    /// Trust the zap even across a PTL drop (the 6.14-rc bug).
    None,
}

/// `retract.locks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetractLocks {
    IMmapRead,
    AllExclusive,
}

/// `khugepaged.max_ptes_shared`, as a fraction of the PTEs of a table (the geometry decides
/// HPAGE_PMD_NR).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxPtesShared {
    /// `HPAGE_PMD_NR / 2`, the kernel's default.
    Half,
    /// 0: any shared page fails the collapse.
    Zero,
    /// `HPAGE_PMD_NR - 1`, as khugepaged.c's `collapse_fork_compound` sets it.
    Max,
}

impl MaxPtesShared {
    /// The limit for a table of `entries` PTEs.
    pub fn limit(self, entries: u64) -> u64 {
        match self {
            MaxPtesShared::Half => entries / 2,
            MaxPtesShared::Zero => 0,
            MaxPtesShared::Max => entries - 1,
        }
    }
}

/// `khugepaged.max_ptes_swap`, as a fraction of the PTEs of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxPtesSwap {
    /// `HPAGE_PMD_NR / 8` (64 of 512), the kernel's default.
    Eighth,
    /// 0: any swap entry fails the scan (`SCAN_EXCEED_SWAP_PTE`).
    Zero,
    /// `HPAGE_PMD_NR - 1`.
    Max,
}

impl MaxPtesSwap {
    /// The limit for a table of `entries` PTEs.
    pub fn limit(self, entries: u64) -> u64 {
        match self {
            MaxPtesSwap::Eighth => entries / 8,
            MaxPtesSwap::Zero => 0,
            MaxPtesSwap::Max => entries - 1,
        }
    }
}

/// `collapse.mthp_anon_vma`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MthpAnonVma {
    Hold,
    DropEarly,
}

/// `collapse.pmd_none_check`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PmdNoneCheck {
    Bug,
    Warn,
}

/// `collapse.vma_write_order`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmaWriteOrder {
    BeforeCheck,
    AfterCheck,
    /// No `vma_start_write` at all: the per-VMA lock series before Suren Baghdasaryan's
    /// "mm/khugepaged: write-lock VMA while collapsing a huge page" (6.4), where the mmap write
    /// lock alone did not exclude per-VMA-locked faults.
    None,
}

/// `zap.need_resched`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZapResched {
    /// Before every batch of entries, as the kernel checks it.
    Every,
    /// Only before the first batch of a call.
    First,
    /// Never true.
    Off,
}

/// `mremap.rmap_locks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MremapRmapLocks {
    Need,
    Always,
    Never,
}

/// `mremap.flush`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MremapFlush {
    BeforeUnlock,
    AfterUnlock,
}

/// The lock a `folio_walk_start` caller holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FolioWalkLock {
    Mmap,
    Vma,
    VmaIrqoff,
}

/// How `folio_walk_start` walks to the PTE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FolioWalkDesign {
    /// `pte_offset_map_lock` with its `pmd_same` loop; returns with the PTL held.
    Ptl,
    /// GUP-fast-like, relying on the RCU read lock alone: no PTL, no `pmd_same` loop, a folio
    /// reference with `folio_try_get` (v1).
    LocklessRcu,
    /// The same with IRQs off across the walk, so a TLB-flush IPI waits for it (v2).
    LocklessIrqoff,
}

impl Default for Protocol {
    fn default() -> Self {
        Protocol {
            pt_reclaim: true,
            table_free: TableFree::Rcu,
            pt_reclaim_free: TableFree::Rcu,
            madv_vma_lock: true,
            per_vma_lock: true,
            uffd_vma_lock: true,
            lvur_anon_vma_check: AnonVmaCheck::None,
            split_ptlocks: true,
            zero_page: true,
            huge_zero_page: true,
            huge_zero_wp_alloc: true,
            fault_around_pages: 16,
            anon_fault_order: 0,
            anon_fault_range_recheck: true,
            gather_batch: 512,
            inline_rcu_callbacks: true,
            pmd_same_recheck: true,
            populate_locked: true,
            populate_wmb: true,
            uptodate_wmb: true,
            memory_data_buffered: false,
            memory_load_reorder: true,
            collapse_mthp_wmb: true,
            memory: mmcheck_platform::MemoryModel::Sc,
            pt_reclaim_pmd_trylock: true,
            gather_tlb_flush: true,
            gup_fast_recheck_pmd: true,
            gup_fast_write_protect_seq: true,
            gup_fast_pin_mb: true,
            vma_lock_wait_acquire: false,
            numa_huge_pmd_update: HugePmdUpdate::Invalidate,
            mprotect_flush_batched_pending: true,
            gup_fast_recheck_pte: true,
            folio_walk_lock: FolioWalkLock::Mmap,
            folio_walk_design: FolioWalkDesign::Ptl,
            folio_walk_recheck: true,
            mremap_rmap_locks: MremapRmapLocks::Need,
            mremap_normal_pmd: true,
            mremap_normal_pmd_rmap_locks: true,
            mremap_realign: true,
            mremap_normal_pmd_recheck: true,
            fork_lock_vmas: true,
            zap_need_resched: ZapResched::Every,
            collapse_pte_mapped_recheck_always: false,
            collapse_pte_mapped_uffd_pml_early: true,
            collapse_pte_mapped_mmap_write: false,
            retract_uffd_wp_recheck: true,
            uffd_move_dst_pmd_recheck: true,
            uffd_copy_dst_pmd_recheck: true,
            mremap_flush: MremapFlush::BeforeUnlock,
            collapse_mthp_anon_vma: MthpAnonVma::Hold,
            collapse_ipi_sync: true,
            collapse_pmd_none_check: PmdNoneCheck::Warn,
            collapse_vma_write_order: VmaWriteOrder::BeforeCheck,
            collapse_max_ptes_none: 511,
            collapse_max_ptes_shared: MaxPtesShared::Half,
            pte_map_rcu: true,
            retract_recheck_pmd: true,
            retract_anon_vma_recheck: true,
            retract_locks: RetractLocks::IMmapRead,
            retract_free: TableFree::Rcu,
            pt_reclaim_empty_check: EmptyCheck::ContinuousPtl,
            tlb_flush: TlbFlushMode::Ipi,
            reclaim_batch_flush: true,
            migrate_batch_flush: true,
            zap_flush_batched_pending: true,
            mremap_flush_batched_pending: true,
            split_invalidate_nonpresent: false,
            pmd_mkinvalid_nonpresent: MkinvalidNonpresent::CorruptsOffset,
            lazyfree_dirty_check: true,
            lazyfree_ref_check: true,
            lazyfree_mb: true,
            lazyfree_huge_pmd_update: HugePmdUpdate::Invalidate,
            swap: false,
            swap_synchronous_io: true,
            swapin_skip_swapcache_prepare: true,
            collapse_max_ptes_swap: MaxPtesSwap::Eighth,
            vma_reuse: true,
            vma_start_read_mm_check: true,
            lvur_range_check: true,
            stack_expand_write_lock: true,
            stack_relookup: true,
            munmap_downgrade_next_to_stack: true,
        }
    }
}

/// A named protocol switch: its values (the first is the 2026 default), what each means, and
/// where the behaviour comes from.
pub struct Switch {
    pub name: &'static str,
    pub values: &'static [&'static str],
    pub doc: &'static str,
    pub cite: &'static str,
    get: fn(&Protocol) -> &'static str,
    set: fn(&mut Protocol, &str) -> bool,
}

impl Switch {
    /// The switch's value in `p`.
    pub fn get(&self, p: &Protocol) -> &'static str {
        (self.get)(p)
    }

    /// The kernel's (2026) value.
    pub fn default_value(&self) -> &'static str {
        self.get(&Protocol::default())
    }
}

fn onoff(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

fn parse_onoff(v: &str) -> Option<bool> {
    match v {
        "on" => Some(true),
        "off" => Some(false),
        _ => None,
    }
}

fn tf_name(t: TableFree) -> &'static str {
    match t {
        TableFree::Rcu => "rcu",
        TableFree::Ipi => "ipi",
        TableFree::Immediate => "immediate",
    }
}

fn parse_tf(v: &str) -> Option<TableFree> {
    match v {
        "rcu" => Some(TableFree::Rcu),
        "ipi" => Some(TableFree::Ipi),
        "immediate" => Some(TableFree::Immediate),
        _ => None,
    }
}

macro_rules! bool_switch {
    ($name:expr, $field:ident, $doc:expr, $cite:expr) => {
        bool_switch!(@ &["on", "off"], $name, $field, $doc, $cite)
    };
    // An on/off switch whose default is off (listed first).
    (off: $name:expr, $field:ident, $doc:expr, $cite:expr) => {
        bool_switch!(@ &["off", "on"], $name, $field, $doc, $cite)
    };
    (@ $values:expr, $name:expr, $field:ident, $doc:expr, $cite:expr) => {
        Switch {
            name: $name,
            values: $values,
            doc: $doc,
            cite: $cite,
            get: |p| onoff(p.$field),
            set: |p, v| parse_onoff(v).map(|b| p.$field = b).is_some(),
        }
    };
}

/// Every switch.
pub const SWITCHES: &[Switch] = &[
    bool_switch!(
        "pt_reclaim",
        pt_reclaim,
        "MADV_DONTNEED frees the PTE tables it empties",
        "6375e95f381e (Qi Zheng, PT_RECLAIM, 6.14); def_bool y since the Dec-2025 series"
    ),
    Switch {
        name: "pt_reclaim.free",
        values: &["rcu", "ipi", "immediate"],
        doc: "how tlb_remove_table_one frees a single table when tlb_remove_table's GFP_NOWAIT batch page allocation fails (an explored choice under tlb.table_free = rcu, for PT reclaim's and munmap's tables alike): call_rcu (__tlb_remove_table_one with CONFIG_PT_RECLAIM, 6.14+), tlb_remove_table_sync_one IPI then free (the fallback before 6.14 and without PT_RECLAIM), or free at once",
        cite: "mm/mmu_gather.c tlb_remove_table / tlb_remove_table_one; Qi Zheng, 718b13861d22 'x86: mm: free page table pages by RCU instead of semi-RCU' (6.14); Kirill Shutemov, 14 Jul 2026",
        get: |p| tf_name(p.pt_reclaim_free),
        set: |p, v| parse_tf(v).map(|t| p.pt_reclaim_free = t).is_some(),
    },
    Switch {
        name: "tlb.table_free",
        values: &["rcu", "ipi", "immediate"],
        doc: "how the mmu_gather frees tables (munmap, exit): MMU_GATHER_RCU_TABLE_FREE, semi-RCU IPI, or tlb_remove_page after the flush",
        cite: "Rik van Riel, 'x86/mm: Make MMU_GATHER_RCU_TABLE_FREE unconditional' (6.15)",
        get: |p| tf_name(p.table_free),
        set: |p, v| parse_tf(v).map(|t| p.table_free = t).is_some(),
    },
    bool_switch!(
        "madvise.vma_lock",
        madv_vma_lock,
        "MADV_DONTNEED runs under the per-VMA read lock when the range is in one VMA",
        "mm/madvise.c try_vma_read_lock (6.16)"
    ),
    bool_switch!(
        "uffd.vma_lock",
        uffd_vma_lock,
        "UFFDIO_COPY, ZEROPAGE, CONTINUE, POISON and MOVE take the per-VMA read lock (uffd_lock_vma: lock_vma_under_rcu, or vma_start_read_locked under a brief mmap read lock) and run without the mmap lock (on, with fault.vma_lock); off: mfill_atomic holds mmap_read_lock for the whole operation, as before 6.9",
        "Lokesh Gidra, 867a43a34ff8 'userfaultfd: use per-vma locks in userfaultfd operations' (6.9)"
    ),
    bool_switch!(
        "fault.vma_lock",
        per_vma_lock,
        "page faults try lock_vma_under_rcu before the mmap lock",
        "Suren Baghdasaryan, per-VMA locks (6.4)"
    ),
    Switch {
        name: "lock_vma_under_rcu.anon_vma_check",
        values: &["none", "after_start_read", "before_start_read"],
        doc: "where lock_vma_under_rcu refuses an anonymous VMA with no anon_vma (falling back to the mmap lock), since find_mergeable_anon_vma reads neighbour VMAs that the VMA lock does not hold: nowhere (none: 6.10+, vmf_anon_prepare returns VM_FAULT_RETRY under the VMA lock instead), after vma_start_read (the 6.5 fix, to 6.9), or before it (6.4, where MREMAP_DONTUNMAP can clear vma->anon_vma in between). With either check, lock_vma_under_rcu also refuses file VMAs, as 6.4-6.5 did (6.6 took file VMAs: a possible false clean there, never a false alarm)",
        cite: "657b5146955e Jann Horn, 'mm: lock_vma_under_rcu() must check vma->anon_vma under vma lock' (6.5-rc, 6.4.9); 5e31275cc997 (6.4); Matthew Wilcox, 'mm: delay the check for a NULL anon_vma' (6.10; vmf_anon_prepare is 6.7)",
        get: |p| match p.lvur_anon_vma_check {
            AnonVmaCheck::None => "none",
            AnonVmaCheck::AfterStartRead => "after_start_read",
            AnonVmaCheck::BeforeStartRead => "before_start_read",
        },
        set: |p, v| {
            p.lvur_anon_vma_check = match v {
                "none" => AnonVmaCheck::None,
                "after_start_read" => AnonVmaCheck::AfterStartRead,
                "before_start_read" => AnonVmaCheck::BeforeStartRead,
                _ => return false,
            };
            true
        },
    },
    bool_switch!(
        "ptlock.split",
        split_ptlocks,
        "split PTE and PMD locks live in the table pages; off means every table lock is mm->page_table_lock",
        "CONFIG_SPLIT_PTE_PTLOCKS / CONFIG_SPLIT_PMD_PTLOCKS"
    ),
    bool_switch!(
        "pte_map.recheck_pmd",
        pmd_same_recheck,
        "pte_offset_map_lock rechecks pmd_same after taking the PTL (R1)",
        "0d940a9b270b Hugh Dickins, 'mm/pgtable: allow pte_offset_map[_lock]() to fail' (6.5)"
    ),
    bool_switch!(
        "populate.lock",
        populate_locked,
        "pmd_install and __p*d_alloc populate under the table lock after rechecking none (I4)",
        "mm/memory.c pmd_install"
    ),
    bool_switch!(
        "populate.wmb",
        populate_wmb,
        "pmd_install and __p*d_alloc issue smp_wmb before pmd_populate, so that the new table's zeroing (and PTL set-up) is visible to lockless walkers before the pointer to it; off removes it (harmless under memory = sc and tso, a walker reading garbage under lkmm)",
        "mm/memory.c pmd_install ('Ensure all pte setup (eg. pte page lock and page clearing) are visible before the pte is made visible to other CPUs by being put into page tables'); 362a61ad6119 Nick Piggin, 'fix SMP data race in pagetable setup vs walking' (2.6.28)"
    ),
    bool_switch!(
        "uptodate.wmb",
        uptodate_wmb,
        "__folio_mark_uptodate (and folio_mark_uptodate) issue smp_wmb, so that the stores bringing a new folio uptodate (its zeroing, a copy) are visible before the set_pte_at/set_pmd_at that maps it to lockless walkers; off removes it from every caller (harmless under memory = sc and tso, a walker reading the page's old contents under lkmm)",
        "mm/memory.c do_anonymous_page ('The memory barrier inside __folio_mark_uptodate makes sure that preceding stores to the page contents become visible before the set_pte_at() write'); include/linux/page-flags.h __folio_mark_uptodate, folio_mark_uptodate ('Memory barrier must be issued before setting the PG_uptodate bit, so that all previous stores issued in order to bring the folio uptodate are actually visible')"
    ),
    bool_switch!(
        off: "memory.data_buffered",
        memory_data_buffered,
        "under memory = lkmm, the kernel's stores into a new folio (the allocator's zeroing, a copy, a read-in) are buffered like entry stores, so a lockless walker may see the entry that maps the page before its contents; off (the default) stores them at once: a question about the barriers that order page contents before a mapping (uptodate.wmb) needs it on, at the cost of a larger search",
        "crates/platform/src/memory.rs; docs/fidelity.md 'weak memory'"
    ),
    Switch {
        name: "memory.load_reorder",
        values: &["on", "off"],
        doc: "under memory = lkmm (on, the default), the kernel's loads of page-table entries may be performed early (the load side of the LKMM): a load reads any value of the entry not overwritten in its CPU's load floor, the happens-before past of its ordering points (smp_rmb, smp_mb, a fully ordered RMW, a grace period), of what its acquisitions synchronized with (a lock's release; the grace period or shootdown an RCU or IRQ-off section's start depends on) and of the writes its earlier entry loads read (an address dependency); off performs loads in program order (the store side only), so no question about a read barrier can fail; no effect under sc and tso",
        cite: "tools/memory-model/Documentation/explanation.txt ('the read-read ordering'); Documentation/memory-barriers.txt 'READ MEMORY BARRIERS'; crates/platform/src/memory.rs 'loads'; docs/fidelity.md 'weak memory'",
        get: |p| onoff(p.memory_load_reorder),
        set: |p, v| parse_onoff(v).map(|b| p.memory_load_reorder = b).is_some(),
    },
    bool_switch!(
        "collapse.mthp_wmb",
        collapse_mthp_wmb,
        "mTHP collapse issues smp_wmb between setting the new folio's PTEs in the detached table and pmd_populate re-attaching it ('make PTEs visible before PMD. See pmd_install()'); off removes it",
        "Nico Pache, 'khugepaged: add mTHP support' (v18 06/14, May 2026), collapse_huge_page"
    ),
    Switch {
        name: "memory",
        values: &["sc", "tso", "lkmm"],
        doc: "the memory model the threads run under: sequential consistency; x86-TSO (each CPU's page-table stores buffered and made visible in order; locked operations and smp_mb drain the buffer); or the Linux-kernel memory model, arm64-level (buffered entry stores may become visible out of order except across smp_wmb, releases and full barriers; entry RMWs are relaxed, their writes buffered; entry loads may be performed early unless memory.load_reorder = off). The set-up always runs SC. arch = x86 sets tso with tlb.flush = ipi, arch = arm64 lkmm with tlb.flush = broadcast",
        cite: "tools/memory-model (linux-kernel.cat); Documentation/memory-barriers.txt; Sewell et al., 'x86-TSO' (CACM 2010); crates/platform/src/memory.rs, docs/fidelity.md 'weak memory'",
        get: |p| p.memory.name(),
        set: |p, v| {
            mmcheck_platform::MemoryModel::from_name(v)
                .map(|m| p.memory = m)
                .is_some()
        },
    },
    Switch {
        name: "pt_reclaim.pmd_lock",
        values: &["trylock", "lock"],
        doc: "PT reclaim's fast path takes the PMD lock under the PTL with spin_trylock (lock inverts the PMD lock -> PTL order)",
        cite: "mm/pt_reclaim.c try_get_and_clear_pmd (6.14)",
        get: |p| if p.pt_reclaim_pmd_trylock { "trylock" } else { "lock" },
        set: |p, v| match v {
            "trylock" => {
                p.pt_reclaim_pmd_trylock = true;
                true
            }
            "lock" => {
                p.pt_reclaim_pmd_trylock = false;
                true
            }
            _ => false,
        },
    },
    bool_switch!(
        "tlb.gather_flush",
        gather_tlb_flush,
        "the mmu_gather flushes the TLB before freeing pages and tables it gathered (I20)",
        "mm/mmu_gather.c tlb_flush_mmu"
    ),
    Switch {
        name: "gather.batch",
        values: &["512", "1", "2", "4", "8", "16"],
        doc: "pages an mmu_gather batches before a forced flush (small batches force the PTL drop and PT reclaim's slow path)",
        cite: "MAX_GATHER_BATCH, include/asm-generic/tlb.h",
        get: |p| match p.gather_batch {
            1 => "1",
            2 => "2",
            4 => "4",
            8 => "8",
            16 => "16",
            _ => "512",
        },
        set: |p, v| match v.parse::<usize>() {
            Ok(n @ (1 | 2 | 4 | 8 | 16 | 512)) => {
                p.gather_batch = n;
                true
            }
            _ => false,
        },
    },
    Switch {
        name: "numa.huge_pmd_update",
        values: &["invalidate", "get_and_clear"],
        doc: "how change_huge_pmd (NUMA hinting, mprotect) rewrites a huge PMD: pmdp_invalidate_ad then set_pmd_at, never none; or get-and-clear then set_pmd_at, none in between, which a lockless zap_pmd_range (MADV_DONTNEED) skips",
        cite: "Kirill Shutemov, 'thp: fix MADV_DONTNEED vs. numa balancing race' (ced108037c2a, 4.11)",
        get: |p| match p.numa_huge_pmd_update {
            HugePmdUpdate::Invalidate => "invalidate",
            HugePmdUpdate::GetAndClear => "get_and_clear",
        },
        set: |p, v| {
            p.numa_huge_pmd_update = match v {
                "invalidate" => HugePmdUpdate::Invalidate,
                "get_and_clear" => HugePmdUpdate::GetAndClear,
                _ => return false,
            };
            true
        },
    },
    bool_switch!(
        "mprotect.flush_batched_pending",
        mprotect_flush_batched_pending,
        "change_pte_range (mprotect, NUMA hinting) flushes a pending deferred reclaim flush (flush_tlb_batched_pending) after taking the PTL (on), or not (off: before 4.13)",
        "Mel Gorman, 'mm, mprotect: flush TLB if potentially racing with a parallel reclaim leaving stale TLB entries' (3ea277194daa, 4.13)"
    ),
    bool_switch!(
        "gup_fast.write_protect_seq",
        gup_fast_write_protect_seq,
        "a FOLL_PIN GUP-fast samples mm->write_protect_seq (raw_seqcount_try_begin) and drops its pins if fork's copy_page_range of a COW mapping began or ran meanwhile (read_seqcount_retry), falling back to the slow path",
        "Jason Gunthorpe / Peter Xu, 'mm/gup: prevent gup_fast from racing with COW during fork' (57efa1fe5957, 5.11)"
    ),
    bool_switch!(
        off: "vma_lock.wait_acquire",
        vma_lock_wait_acquire,
        "a what-if for weak loads (memory = lkmm): __vma_enter_locked (vma_start_write) waits for readers with rcuwait_wait_event; when its first check already finds none it goes on with no acquire, so its later page-table loads may be satisfied before that check and miss what the last reader stored under its VMA read lock (a writer that slept is ordered by its wake-up). on adds an acquire after the wait (smp_acquire__after_ctrl_dep, or refcount_read_acquire in the condition); off (the default) is the kernel",
        "mm/mmap_lock.c __vma_enter_locked, __vma_start_write (6.15+, Suren Baghdasaryan's vm_refcnt rework); include/linux/rcuwait.h rcuwait_wait_event; scenarios/memory/vma-start-write-no-sleep-vs-pt-reclaim.mmt"
    ),
    bool_switch!(
        "gup_fast.pin_mb",
        gup_fast_pin_mb,
        "try_grab_folio_fast issues smp_mb__after_atomic after a FOLL_PIN's pin-count update, so the PTE recheck that follows reads nothing older than what the pin's store is ordered after ('Adjust the pincount before re-checking the PTE for changes'); it pairs with the smp_mb of folio_try_share_anon_rmap_pte between a migration's PTE clear and its maybe-pinned check (a store-buffering shape whose GUP side is a load: only memory = lkmm with memory.load_reorder = on can tell it is missing)",
        "088b8aa537c2 David Hildenbrand, 'mm: fix PageAnonExclusive clearing racing with concurrent RCU GUP-fast' (2022); mm/gup.c try_grab_folio_fast"
    ),
    bool_switch!(
        "gup_fast.recheck_pmd",
        gup_fast_recheck_pmd,
        "GUP-fast rechecks the PMD after taking the folio reference",
        "Yang Shi, 'mm: gup: fix the fast GUP race against THP collapse' (6.1)"
    ),
    bool_switch!(
        "gup_fast.recheck_pte",
        gup_fast_recheck_pte,
        "GUP-fast rechecks the PTE after taking the folio reference",
        "mm/gup.c gup_fast_pte_range"
    ),
    Switch {
        name: "folio_walk.lock",
        values: &["mmap", "vma", "vma_irqoff"],
        doc: "what folio_walk_start callers hold: the mmap read lock, the per-VMA read lock (FW_VMA_LOCKED v1), or the VMA lock with IRQs off across the walk (v2)",
        cite: "Rik van Riel, '[PATCH 2/3] mm/pagewalk: let folio_walk_start() run under the per-VMA lock' v1 (16 Jun 2026), v2 (24 Jun 2026); Lorenzo Stoakes' reviews",
        get: |p| match p.folio_walk_lock {
            FolioWalkLock::Mmap => "mmap",
            FolioWalkLock::Vma => "vma",
            FolioWalkLock::VmaIrqoff => "vma_irqoff",
        },
        set: |p, v| {
            p.folio_walk_lock = match v {
                "mmap" => FolioWalkLock::Mmap,
                "vma" => FolioWalkLock::Vma,
                "vma_irqoff" => FolioWalkLock::VmaIrqoff,
                _ => return false,
            };
            true
        },
    },
    Switch {
        name: "folio_walk.design",
        values: &["ptl", "lockless_rcu", "lockless_irqoff"],
        doc: "how folio_walk_start reaches the PTE: pte_offset_map_lock with its pmd_same loop, returning with the PTL held (ptl); or the GUP-fast-imitating lockless walk, no PTL and no pmd_same loop, a folio_try_get reference, relying on rcu_read_lock alone (lockless_rcu, FW_VMA_LOCKED v1) or with IRQs off across the walk so that a TLB-flush IPI waits for it (lockless_irqoff, v2)",
        cite: "Rik van Riel, '[PATCH 2/3] mm/pagewalk: let folio_walk_start() run under the per-VMA lock' v1 (16 Jun 2026), v2 (24 Jun 2026), and his reply to Lorenzo Stoakes (25 Jun 2026): 'Relying only on the RCU read lock to read the page table could result in us seeing old page table contents'; mm/gup.c gup_fast_pte_range",
        get: |p| match p.folio_walk_design {
            FolioWalkDesign::Ptl => "ptl",
            FolioWalkDesign::LocklessRcu => "lockless_rcu",
            FolioWalkDesign::LocklessIrqoff => "lockless_irqoff",
        },
        set: |p, v| {
            p.folio_walk_design = match v {
                "ptl" => FolioWalkDesign::Ptl,
                "lockless_rcu" => FolioWalkDesign::LocklessRcu,
                "lockless_irqoff" => FolioWalkDesign::LocklessIrqoff,
                _ => return false,
            };
            true
        },
    },
    bool_switch!(
        "folio_walk.recheck",
        folio_walk_recheck,
        "a lockless folio_walk_start rechecks the PMD and then the PTE after folio_try_get and drops the reference if either changed (as gup_fast_pte_range does); off returns the first folio it gets a reference on",
        "mm/gup.c gup_fast_pte_range; the FW_VMA_LOCKED thread does not show whether the patch rechecks"
    ),
    Switch {
        name: "mremap.rmap_locks",
        values: &["need", "always", "never"],
        doc: "move_ptes takes the rmap locks when copy_vma says the new VMA may be visited before the old one (need), always, or never",
        cite: "copy_vma need_rmap_locks (mm/vma.c); Jann Horn's 2024 mremap fixes and the Joel Fernandes thread (6.12-rc, 6.11.5)",
        get: |p| match p.mremap_rmap_locks {
            MremapRmapLocks::Need => "need",
            MremapRmapLocks::Always => "always",
            MremapRmapLocks::Never => "never",
        },
        set: |p, v| {
            p.mremap_rmap_locks = match v {
                "need" => MremapRmapLocks::Need,
                "always" => MremapRmapLocks::Always,
                "never" => MremapRmapLocks::Never,
                _ => return false,
            };
            true
        },
    },
    bool_switch!(
        "mremap.normal_pmd",
        mremap_normal_pmd,
        "mremap moves a whole PTE table by moving the PMD (move_normal_pmd) when source and destination are PMD-aligned",
        "mm/mremap.c move_normal_pmd; always under rmap locks since the 6.12 fix"
    ),
    Switch {
        name: "collapse_pte_mapped.recheck",
        values: &["split_only", "always"],
        doc: "collapse_pte_mapped_thp rechecks pmd_same after taking the PMD lock in step 4 only when the PTL is a different lock (split_only: the 6.13 code), or also when they are one lock (always)",
        cite: "Qi Zheng, 'mm: khugepaged: collapse_pte_mapped_thp() use pte_offset_map_rw_nolock()' (6.13) and its review versions",
        get: |p| if p.collapse_pte_mapped_recheck_always { "always" } else { "split_only" },
        set: |p, v| {
            p.collapse_pte_mapped_recheck_always = match v {
                "split_only" => false,
                "always" => true,
                _ => return false,
            };
            true
        },
    },
    Switch {
        name: "collapse_pte_mapped.uffd_pml",
        values: &["early", "late"],
        doc: "collapse_pte_mapped_thp on a uffd-armed private VMA takes the PMD lock before the PTL and keeps the PTL from clearing the PTEs to pmdp_collapse_flush (early), or drops the PTL after clearing and takes the PMD lock in step 4 (late): UFFDIO_COPY can then install an anon PTE in the table being freed",
        cite: "a98460494b16 Hugh Dickins, 'mm/khugepaged: fix collapse_pte_mapped_thp() versus uffd' (6.6-rc; fixes 1043173eb5eb)",
        get: |p| if p.collapse_pte_mapped_uffd_pml_early { "early" } else { "late" },
        set: |p, v| {
            p.collapse_pte_mapped_uffd_pml_early = match v {
                "early" => true,
                "late" => false,
                _ => return false,
            };
            true
        },
    },
    Switch {
        name: "collapse_pte_mapped.mmap_lock",
        values: &["read", "write"],
        doc: "collapse_pte_mapped_thp runs under the mmap read lock (read: 6.6 on) or its callers hold the mmap write lock (write: before 6.6, mmap_assert_write_locked), which keeps every fault out",
        cite: "1043173eb5eb Hugh Dickins, 'mm/khugepaged: collapse_pte_mapped_thp() with mmap_read_lock()' (6.6-rc1)",
        get: |p| if p.collapse_pte_mapped_mmap_write { "write" } else { "read" },
        set: |p, v| {
            p.collapse_pte_mapped_mmap_write = match v {
                "read" => false,
                "write" => true,
                _ => return false,
            };
            true
        },
    },
    Switch {
        name: "zap.need_resched",
        values: &["every", "first", "off"],
        doc: "where zap_pte_range may find need_resched() true (a choice the explorer tries both ways): before every batch of entries as the kernel checks it, only before the first batch of a call, or never (fewer executions). When true it drops the PTL without a TLB flush, retries the table from where it stopped, and PT reclaim takes its slow path",
        cite: "zap_pte_range's need_resched() check before each do_zap_pte_range batch (mm/memory.c, 6.14+)",
        get: |p| match p.zap_need_resched {
            ZapResched::Every => "every",
            ZapResched::First => "first",
            ZapResched::Off => "off",
        },
        set: |p, v| {
            p.zap_need_resched = match v {
                "every" => ZapResched::Every,
                "first" => ZapResched::First,
                "off" => ZapResched::Off,
                _ => return false,
            };
            true
        },
    },
    bool_switch!(
        "mremap.normal_pmd_rmap_locks",
        mremap_normal_pmd_rmap_locks,
        "move_normal_pmd (and move_normal_pud) take the rmap locks whatever copy_vma decided (on: move_pgt_entry is passed true since 5.14, should_take_rmap_locks today), or only when copy_vma asks for them (off: 4.20 to 5.13)",
        "Aneesh Kumar K.V, 97113eb39fa7 'mm/mremap: hold the rmap lock in write mode when moving page table entries' (5.14; fixes 2c91bd4a4e2e, 4.20)"
    ),
    bool_switch!(
        "fork.lock_vmas",
        fork_lock_vmas,
        "dup_mmap write-locks every parent VMA (vma_start_write) before anon_vma_fork and copy_page_range (on), or not (off: 6.4, where a per-VMA-locked fault can COW in the parent while its VMA is copied)",
        "Suren Baghdasaryan, 'fork: lock VMAs of the parent process when forking' (fb49c455323f, 6.5-rc1, 6.4.y)"
    ),
    bool_switch!(
        "mremap.normal_pmd_recheck",
        mremap_normal_pmd_recheck,
        "move_normal_pmd reads the old PMD again under both PMD locks and gives up unless it still points to a table ('racing with collapse?'); off trusts move_page_tables' unlocked read, so a PMD retract_page_tables cleared meanwhile (no mmap lock there since 1d65b771bc08, 6.6) is moved as a table: pmd_populate of pfn 0",
        "Jann Horn, 6fa1066fc5d0 'mm/mremap: fix move_normal_pmd/retract_page_tables race' (6.12-rc4, 6.6.58, 6.11.5; CVE-2024-50066)"
    ),
    bool_switch!(
        "mremap.realign",
        mremap_realign,
        "move_page_tables realigns a move whose source and destination sit at the same offset in their PMD ranges, with nothing mapped below either down to the boundary, so the first table moves whole (try_realign_addr)",
        "Joel Fernandes, 'mm/mremap: optimize the start addresses in move_page_tables()' (6.7); can_realign_addr (mm/mremap.c)"
    ),
    Switch {
        name: "mremap.flush",
        values: &["before_unlock", "after_unlock"],
        doc: "move_ptes flushes the old range before releasing either PTL (I24), or after",
        cite: "Jann Horn, 'mm/mremap: hold the rmap lock in write mode when moving page table entries' / flush-before-unlock rule (CVE-2018-18281)",
        get: |p| match p.mremap_flush {
            MremapFlush::BeforeUnlock => "before_unlock",
            MremapFlush::AfterUnlock => "after_unlock",
        },
        set: |p, v| {
            p.mremap_flush = match v {
                "before_unlock" => MremapFlush::BeforeUnlock,
                "after_unlock" => MremapFlush::AfterUnlock,
                _ => return false,
            };
            true
        },
    },
    Switch {
        name: "collapse.mthp_anon_vma",
        values: &["hold", "drop_early"],
        doc: "mTHP collapse keeps the anon_vma write lock until the detached table is reinstalled, or drops it after isolation like PMD-order collapse",
        cite: "Nico Pache, '[PATCH mm-unstable v18 06/14] mm/khugepaged: generalize collapse_huge_page for mTHP collapse' (May 2026) and its v5/v14 reviews",
        get: |p| match p.collapse_mthp_anon_vma {
            MthpAnonVma::Hold => "hold",
            MthpAnonVma::DropEarly => "drop_early",
        },
        set: |p, v| {
            p.collapse_mthp_anon_vma = match v {
                "hold" => MthpAnonVma::Hold,
                "drop_early" => MthpAnonVma::DropEarly,
                _ => return false,
            };
            true
        },
    },
    bool_switch!(
        "collapse.ipi_sync",
        collapse_ipi_sync,
        "collapse_huge_page calls tlb_remove_table_sync_one after pmdp_collapse_flush, so no GUP-fast still walks the old PMD",
        "Jann Horn, 'mm/khugepaged: fix GUP-fast interaction by sending IPI' (6.1)"
    ),
    Switch {
        name: "collapse.pmd_none_check",
        values: &["warn", "bug"],
        doc: "the check that the PMD is still none when collapse reinstalls it: WARN_ON_ONCE and go on (v18), or BUG_ON",
        cite: "mTHP series v18 06/14 (BUG_ON became WARN_ON_ONCE)",
        get: |p| match p.collapse_pmd_none_check {
            PmdNoneCheck::Warn => "warn",
            PmdNoneCheck::Bug => "bug",
        },
        set: |p, v| {
            p.collapse_pmd_none_check = match v {
                "warn" => PmdNoneCheck::Warn,
                "bug" => PmdNoneCheck::Bug,
                _ => return false,
            };
            true
        },
    },
    Switch {
        name: "collapse.vma_write_order",
        values: &["before_check", "after_check", "none"],
        doc: "collapse_huge_page write-locks the VMA before check_pmd_still_valid (2026 base), after (6.4-6.12), or not at all (the per-VMA lock series before that patch: mmap_lock write alone does not exclude a lock_vma_under_rcu fault)",
        cite: "Suren Baghdasaryan, 'mm/khugepaged: write-lock VMA while collapsing a huge page' (6.4); May-2026 mm-unstable base",
        get: |p| match p.collapse_vma_write_order {
            VmaWriteOrder::BeforeCheck => "before_check",
            VmaWriteOrder::AfterCheck => "after_check",
            VmaWriteOrder::None => "none",
        },
        set: |p, v| {
            p.collapse_vma_write_order = match v {
                "before_check" => VmaWriteOrder::BeforeCheck,
                "after_check" => VmaWriteOrder::AfterCheck,
                "none" => VmaWriteOrder::None,
                _ => return false,
            };
            true
        },
    },
    bool_switch!(
        "pte_map.rcu",
        pte_map_rcu,
        "pte_offset_map* take rcu_read_lock and may fail (6.5+); off is the pre-6.5 rule where the walk-start locks keep tables attached",
        "0d940a9b270b Hugh Dickins, 'mm/pgtable: allow pte_offset_map[_lock]() to fail' (6.5)"
    ),
    bool_switch!(
        "retract.recheck_pmd",
        retract_recheck_pmd,
        "retract_page_tables rechecks the PMD under the PMD lock (check_pmd_state) before taking the PTL from its value",
        "Qi Zheng, 'mm: khugepaged: recheck pmd state in retract_page_tables()' (v4 01/11, Dec 2024, 6.14)"
    ),
    bool_switch!(
        "retract.anon_vma_recheck",
        retract_anon_vma_recheck,
        "retract_page_tables checks vma->anon_vma again under the locks that exclude anon_vma_prepare (the mmap write lock before 6.6, the PMD lock and PTL after); off trusts the unlocked first check, so a VMA that merged a neighbour's anon_vma meanwhile loses its table under that anon_vma's rmap walkers",
        "023f47a8250c Jann Horn, 'mm/khugepaged: fix ->anon_vma race' (6.2-rc, 6.1.11, CVE-2023-52935)"
    ),
    bool_switch!(
        "retract.uffd_wp_recheck",
        retract_uffd_wp_recheck,
        "retract_page_tables checks userfaultfd_wp(vma) again once it holds the locks that exclude UFFDIO_WRITEPROTECT installing PTE markers (the PTL, 6.6+; the mmap write lock in deb4c93a9871); off trusts the check made before them, so a table that gained uffd-wp markers meanwhile is freed and the write-protection is lost",
        "deb4c93a9871 Peter Xu, 'mm/khugepaged: don't recycle vma pgtable if uffd-wp registered' (5.19); 1d65b771bc08 Hugh Dickins (6.6) rechecks under the PTL"
    ),
    bool_switch!(
        "uffd_move.dst_pmd_recheck",
        uffd_move_dst_pmd_recheck,
        "UFFDIO_MOVE's move_pages_pte rechecks, with both PTLs held, that the destination PMD still names the PTE table it mapped (pmd_same, is_pte_pages_stable); off trusts pte_same alone, which a none destination PTE passes even when PT reclaim has freed its table meanwhile, so the moved page is installed in a detached table",
        "Qi Zheng, 'mm: userfaultfd: recheck dst_pmd entry in move_pages_pte()' (6.14, in 'synchronously scan and reclaim empty user PTE pages', pointed out by Jann Horn; v3 Nov 2024)"
    ),
    bool_switch!(
        "uffd_copy.dst_pmd_recheck",
        uffd_copy_dst_pmd_recheck,
        "UFFDIO_COPY's mfill_atomic judges the destination PMD on a fresh read after __pte_alloc and fails with EEXIST if it is not a present table (a THP, or none again); off is the code the fix replaced (4.11 to 6.10, 6.1.y and 6.6.y before the backport; here in its 6.5-6.10 form), which checks for a THP before __pte_alloc and then BUG_ONs pmd_none / pmd_trans_huge on a second read: a THP installed and zapped around __pte_alloc leaves the PMD none there",
        "71c186efc1b2 Jann Horn, 'userfaultfd: fix checks for huge PMDs' (6.11, Cc stable)"
    ),
    Switch {
        name: "retract.locks",
        values: &["i_mmap_read", "all_exclusive"],
        doc: "retract_page_tables holds i_mmap_rwsem for read (6.6+), or every walk-start lock exclusively: i_mmap for write and each mm's mmap lock (trylock), the pre-6.5 rule",
        cite: "Jann Horn, 'mm/khugepaged: Take the right locks for page table retraction' (v3, Nov 2022); 1d65b771bc08 Hugh Dickins, 'retract_page_tables() without mmap or vma lock' (6.6)",
        get: |p| match p.retract_locks {
            RetractLocks::IMmapRead => "i_mmap_read",
            RetractLocks::AllExclusive => "all_exclusive",
        },
        set: |p, v| {
            p.retract_locks = match v {
                "i_mmap_read" => RetractLocks::IMmapRead,
                "all_exclusive" => RetractLocks::AllExclusive,
                _ => return false,
            };
            true
        },
    },
    Switch {
        name: "retract.free",
        values: &["rcu", "ipi", "immediate"],
        doc: "how retract_page_tables frees the table: pte_free_defer (RCU, 6.6+), tlb_remove_table_sync_one then free (≤6.5 collapse_and_free_pmd), or right away",
        cite: "Hugh Dickins, 'mm/pgtable: add pte_free_defer() for pgtable as page' (6.6)",
        get: |p| tf_name(p.retract_free),
        set: |p, v| parse_tf(v).map(|t| p.retract_free = t).is_some(),
    },
    Switch {
        name: "pt_reclaim.empty_check",
        values: &["continuous_ptl", "rescan", "none"],
        doc: "how PT reclaim decides a table is empty: the zap held the PTL continuously up to pmd_clear, else a rescan under PMD lock + PTL (6.14); always rescan; or trust the zap across a PTL drop (the 6.14-rc bug)",
        cite: "'mm: pgtable: fix incorrect reclaim of non-empty PTE pages' (6.14-rc); mm/pt_reclaim.c try_get_and_clear_pmd / try_to_free_pte",
        get: |p| match p.pt_reclaim_empty_check {
            EmptyCheck::ContinuousPtl => "continuous_ptl",
            EmptyCheck::Rescan => "rescan",
            EmptyCheck::None => "none",
        },
        set: |p, v| {
            p.pt_reclaim_empty_check = match v {
                "continuous_ptl" => EmptyCheck::ContinuousPtl,
                "rescan" => EmptyCheck::Rescan,
                "none" => EmptyCheck::None,
                _ => return false,
            };
            true
        },
    },
    Switch {
        name: "khugepaged.max_ptes_none",
        values: &["max", "0"],
        doc: "how many empty PTEs a khugepaged collapse accepts: HPAGE_PMD_NR - 1 (the default, scaled to 2^order - 1 for mTHP), or none; MADV_COLLAPSE has no limit",
        cite: "/sys/kernel/mm/transparent_hugepage/khugepaged/max_ptes_none; mTHP series v18 (0 or 2^order - 1 only)",
        get: |p| if p.collapse_max_ptes_none == 0 { "0" } else { "max" },
        set: |p, v| match v {
            "max" => {
                p.collapse_max_ptes_none = 511;
                true
            }
            "0" => {
                p.collapse_max_ptes_none = 0;
                true
            }
            _ => false,
        },
    },
    Switch {
        name: "khugepaged.max_ptes_shared",
        values: &["half", "0", "max"],
        doc: "how many PTEs mapping a page that may be shared with another mm (after fork) a khugepaged PMD-order collapse accepts: HPAGE_PMD_NR / 2 (the default), none, or HPAGE_PMD_NR - 1; an mTHP-order collapse fails on any shared page, and MADV_COLLAPSE has no limit",
        cite: "/sys/kernel/mm/transparent_hugepage/khugepaged/max_ptes_shared (71a2c112a0f6, 5.8); mTHP series v16/v17 04/14 (mTHP collapse fails on a shared or swapped entry)",
        get: |p| match p.collapse_max_ptes_shared {
            MaxPtesShared::Half => "half",
            MaxPtesShared::Zero => "0",
            MaxPtesShared::Max => "max",
        },
        set: |p, v| {
            p.collapse_max_ptes_shared = match v {
                "half" => MaxPtesShared::Half,
                "0" => MaxPtesShared::Zero,
                "max" => MaxPtesShared::Max,
                _ => return false,
            };
            true
        },
    },
    Switch {
        name: "thp.anon_fault_order",
        values: &["0", "1", "2", "3", "4"],
        doc: "the mTHP order anonymous faults try first (hugepages-<size>kB/enabled = always; the range must be aligned, inside the VMA and all pte_none, else order 0); 0 for none, the default",
        cite: "19eaf44954df (mm: thp: support allocation of anonymous multi-size THP, 6.8)",
        get: |p| ["0", "1", "2", "3", "4"][p.anon_fault_order.min(4) as usize],
        set: |p, v| match v.parse::<u32>() {
            Ok(o) if o <= 4 => {
                p.anon_fault_order = o;
                true
            }
            _ => false,
        },
    },
    bool_switch!(
        "fault.mthp_range_recheck",
        anon_fault_range_recheck,
        "do_anonymous_page rechecks that every PTE of an mTHP's range is still none under the PTL (pte_range_none), not only the faulting one (vmf_pte_changed)",
        "19eaf44954df (mm: thp: support allocation of anonymous multi-size THP, 6.8)"
    ),
    bool_switch!("thp.zero_page", huge_zero_page, "read faults on THP-eligible VMAs map the huge zero folio", "/sys/kernel/mm/transparent_hugepage/use_zero_page"),
    bool_switch!(
        "thp.zero_wp_alloc",
        huge_zero_wp_alloc,
        "a write fault on the huge zero PMD replaces it by a new THP (falling back to the split if the allocation fails); off: split it into zero-page PTEs and COW one page",
        "1ced09e0331f (Dev Jain, 'mm: allocate THP on hugezeropage wp-fault', 6.13); off: 3917c80280c9 (5.8)"
    ),
    Switch {
        name: "tlb.flush",
        values: &["ipi", "broadcast"],
        doc: "how a TLB shootdown reaches other CPUs: an IPI to every CPU in mm_cpumask, waited for, so IRQ-off regions (GUP-fast) delay it (x86 native); or a broadcast invalidation with no interrupt and no wait on IRQ-off (arm64 TLBI, x86 INVLPGB, paravirt): use broadcast for arm64",
        cite: "arch/x86/mm/tlb.c native_flush_tlb_multi; arch/arm64/include/asm/tlbflush.h __flush_tlb_range; Rik van Riel, 'x86/mm: enable broadcast TLB invalidation for multi-threaded processes' (INVLPGB, 6.15)",
        get: |p| match p.tlb_flush {
            TlbFlushMode::Ipi => "ipi",
            TlbFlushMode::Broadcast => "broadcast",
        },
        set: |p, v| {
            p.tlb_flush = match v {
                "ipi" => TlbFlushMode::Ipi,
                "broadcast" => TlbFlushMode::Broadcast,
                _ => return false,
            };
            true
        },
    },
    bool_switch!(
        "reclaim.batch_flush",
        reclaim_batch_flush,
        "reclaim's try_to_unmap passes TTU_BATCH_FLUSH: try_to_unmap_one clears the PTE without a flush (set_tlb_ubc_flush_pending, mm->tlb_flush_batched) and try_to_unmap_flush flushes after the batch; off flushes under the PTL (ptep_clear_flush)",
        "72b252aed506 Mel Gorman, 'mm: send one IPI per CPU to TLB flush all entries after unmapping pages' (4.3); mm/vmscan.c shrink_folio_list"
    ),
    bool_switch!(
        "migrate.batch_flush",
        migrate_batch_flush,
        "async migration's try_to_migrate passes TTU_BATCH_FLUSH and migrate_pages_batch calls try_to_unmap_flush before copying; off flushes under the PTL (≤6.3, and sync migration)",
        "7e12beb8ca2a Huang Ying, 'migrate_pages: batch flushing TLB' (6.4)"
    ),
    bool_switch!(
        "zap.flush_batched_pending",
        zap_flush_batched_pending,
        "zap_pte_range calls flush_tlb_batched_pending after taking the PTL, so a PTE that reclaim or migration cleared with its flush deferred is not left in a TLB when munmap or MADV_DONTNEED returns",
        "3ea277194daa Mel Gorman, 'mm, mprotect: flush TLB if potentially racing with a parallel reclaim leaving stale TLB entries' (4.13)"
    ),
    bool_switch!(
        "mremap.flush_batched_pending",
        mremap_flush_batched_pending,
        "move_ptes calls flush_tlb_batched_pending after taking both PTLs",
        "3ea277194daa Mel Gorman (4.13); mm/mremap.c move_ptes"
    ),
    bool_switch!(
        off: "split.invalidate_nonpresent",
        split_invalidate_nonpresent,
        "__split_huge_pmd_locked calls pmdp_invalidate only on a present PMD and rewrites a PMD migration entry into PTE migration entries as it is (off, 6.10+); on: it invalidates whatever the PMD holds, a migration entry included, and only then looks at the old value (4.14-6.9), which lockless readers see as whatever the architecture's pmd_mkinvalid makes of a swap entry (arch.pmd_mkinvalid_nonpresent)",
        "3a5a8d343e1c Ryan Roberts, 'mm: fix race between __split_huge_pmd_locked() and GUP-fast' (6.10; stable to 5.15); fixes 84c3fc4e9c56 'mm: thp: check pmd migration entry in common path' (4.14)"
    ),
    Switch {
        name: "arch.pmd_mkinvalid_nonpresent",
        values: &["corrupts_offset", "reads_present"],
        doc: "what pmd_mkinvalid makes of a non-present (swap, migration) PMD: x86 keeps it a non-present migration entry of the same type but sets the swap offset's bits 3-11 (corrupts_offset: PHYSICAL_PMD_PAGE_MASK); arm64 sets PMD_PRESENT_INVALID and clears the valid bit, so pmd_present and pmd_leaf read true and the swap bits read as a pfn, while pmd_access_permitted (PTE_VALID) is false (reads_present: use it for arm64)",
        cite: "arch/x86/include/asm/pgtable.h pmd_mkinvalid; arch/arm64/include/asm/pgtable.h pmd_mkinvalid (PMD_PRESENT_INVALID, 6.9) and pte_access_permitted_no_overlay; the 3a5a8d343e1c message",
        get: |p| match p.pmd_mkinvalid_nonpresent {
            MkinvalidNonpresent::CorruptsOffset => "corrupts_offset",
            MkinvalidNonpresent::ReadsPresent => "reads_present",
        },
        set: |p, v| {
            p.pmd_mkinvalid_nonpresent = match v {
                "corrupts_offset" => MkinvalidNonpresent::CorruptsOffset,
                "reads_present" => MkinvalidNonpresent::ReadsPresent,
                _ => return false,
            };
            true
        },
    },
    bool_switch!(
        "lazyfree.dirty_check",
        lazyfree_dirty_check,
        "try_to_unmap_one discards a lazyfree (MADV_FREE) anon folio only if it is clean: the dirty bit of the PTE it just cleared under the PTL is moved to the folio (folio_mark_dirty) and a dirty folio is remapped and made swap-backed again; off discards a lazyfree folio whenever only the isolation and mapping references remain, dirty or not (the store after MADV_FREE is lost)",
        "854e9ed09ded Minchan Kim, 'mm: support madvise(MADV_FREE)' (4.5, the pte_dirty -> PageDirty check before discarding); 802a3a92ad7a Shaohua Li, 'mm: reclaim MADV_FREE pages' (4.12, remap and SetPageSwapBacked when redirtied); 6c8e2a256915 (5.18, the reference-count check)"
    ),
    bool_switch!(
        "lazyfree.ref_check",
        lazyfree_ref_check,
        "try_to_unmap_one discards a lazyfree (MADV_FREE) folio only if its references are the isolation one plus one per mapping (smp_mb after clearing the PTE, pairing with GUP-fast's reference then PTE recheck); off discards a clean lazyfree mapping even while a GUP reference is held (a direct-I/O read into the page then lands in a folio no PTE maps)",
        "6c8e2a256915 Mauricio Faria de Oliveira, 'mm: fix race between MADV_FREE reclaim and blkdev direct IO read' (5.18)"
    ),
    bool_switch!(
        "lazyfree.mb",
        lazyfree_mb,
        "the smp_mb in try_to_unmap_one between clearing a lazyfree PTE and reading the folio's reference count, pairing with GUP-fast's reference then PTE recheck (a store-buffering shape); off leaves the PTE clear and the count read unordered where the architecture's ptep_get_and_clear and TLB batching do not order them (memory = lkmm)",
        "6c8e2a256915 Mauricio Faria de Oliveira, 'mm: fix race between MADV_FREE reclaim and blkdev direct IO read' (5.18)"
    ),
    Switch {
        name: "lazyfree.huge_pmd_update",
        values: &["invalidate", "get_and_clear"],
        doc: "how madvise_free_huge_pmd cleans (mkold, mkclean) a huge PMD: pmdp_invalidate keeps it huge to software, so a lockless zap_pmd_range (MADV_DONTNEED) waits for the PMD lock; get_and_clear leaves it none until set_pmd_at, and MADV_DONTNEED skips the THP",
        cite: "58ceeb6bec86 Kirill A. Shutemov, 'thp: fix MADV_DONTNEED vs. MADV_FREE race' (4.11)",
        get: |p| match p.lazyfree_huge_pmd_update {
            HugePmdUpdate::Invalidate => "invalidate",
            HugePmdUpdate::GetAndClear => "get_and_clear",
        },
        set: |p, v| {
            p.lazyfree_huge_pmd_update = match v {
                "invalidate" => HugePmdUpdate::Invalidate,
                "get_and_clear" => HugePmdUpdate::GetAndClear,
                _ => return false,
            };
            true
        },
    },
    bool_switch!(
        off: "swap",
        swap,
        "a swap device with a few slots is configured: reclaim (MADV_PAGEOUT) moves a swap-backed anonymous folio to the swap cache (add_to_swap), replaces its PTEs by swap entries (try_to_unmap), writes it to its slot and frees it (__remove_mapping); faults read it back (do_swap_page). Off, like the host: a swap-backed anonymous folio stays mapped",
        "mm/vmscan.c shrink_folio_list, mm/swap_state.c, mm/swapfile.c, mm/memory.c do_swap_page"
    ),
    bool_switch!(
        "swap.synchronous_io",
        swap_synchronous_io,
        "the swap device is SWP_SYNCHRONOUS_IO (zram, pmem): do_swap_page reads an entry whose swap count is 1 straight into a new folio without adding it to the swap cache (skip swapcache); off: every swap-in goes through the swap cache (swapin_readahead -> __read_swap_cache_async)",
        "0bcac06f27d7 Minchan Kim, 'mm, swap: skip swapcache for swapin of synchronous device' (4.15)"
    ),
    bool_switch!(
        "swapin.skip_swapcache_prepare",
        swapin_skip_swapcache_prepare,
        "do_swap_page's skip-swapcache path claims the entry with swapcache_prepare (SWAP_HAS_CACHE) before reading it and releases it (swapcache_clear) after dropping the PTL; a second fault of the entry waits and refaults. Off: two threads may swap the same entry into two folios; one finishes, frees the entry, and a pageout reuses the slot for the modified page, so the other's pte_same recheck passes on the same swap PTE (ABA) and it maps its stale folio",
        "13ddaf26be32 Kairui Song, 'mm/swap: fix race when skipping swapcache' (6.8-rc5, Cc: stable; after 6.1)"
    ),
    Switch {
        name: "khugepaged.max_ptes_swap",
        values: &["eighth", "0", "max"],
        doc: "how many swap PTEs a khugepaged PMD-order scan (hpage_collapse_scan_pmd) accepts and swaps in (__collapse_huge_page_swapin, under the mmap read lock) before collapsing: HPAGE_PMD_NR / 8 (64 of 512, the default), none (SCAN_EXCEED_SWAP_PTE), or HPAGE_PMD_NR - 1; an mTHP-order collapse fails on any swap entry, and MADV_COLLAPSE has no limit",
        cite: "/sys/kernel/mm/transparent_hugepage/khugepaged/max_ptes_swap (mm/khugepaged.c khugepaged_max_ptes_swap = HPAGE_PMD_NR / 8); tools/testing/selftests/mm/khugepaged.c collapse_max_ptes_swap",
        get: |p| match p.collapse_max_ptes_swap {
            MaxPtesSwap::Eighth => "eighth",
            MaxPtesSwap::Zero => "0",
            MaxPtesSwap::Max => "max",
        },
        set: |p, v| {
            p.collapse_max_ptes_swap = match v {
                "eighth" => MaxPtesSwap::Eighth,
                "0" => MaxPtesSwap::Zero,
                "max" => MaxPtesSwap::Max,
                _ => return false,
            };
            true
        },
    },
    bool_switch!(
        "vma.typesafe_by_rcu",
        vma_reuse,
        "vm_area_cachep is SLAB_TYPESAFE_BY_RCU (on, 6.15+): vm_area_free returns an anonymous VMA to the freeing CPU's freelist and the next vm_area_alloc there (mmap, split, mremap, fork's dup) reuses it while a lock_vma_under_rcu reader may still hold the pointer; off: VMAs are freed after a grace period (call_rcu, 6.4-6.14) and never reused under a reader",
        "Suren Baghdasaryan, 3104138517fc 'mm: make vma cache SLAB_TYPESAFE_BY_RCU' (6.15), with 'mm: prepare lock_vma_under_rcu() for vma reuse possibility' in the same series"
    ),
    bool_switch!(
        "vma_start_read.vm_mm_check",
        vma_start_read_mm_check,
        "vma_start_read fails (dropping the reference it took) when the VMA's vm_mm is not the faulting mm, as a VMA reused for another mm is (on); off trusts a VMA found under RCU to belong to the mm it was looked up in",
        "Suren Baghdasaryan, 'mm: prepare lock_vma_under_rcu() for vma reuse possibility' (6.15, with 3104138517fc); moved into vma_start_read by 'mm: fix a UAF when vma->mm is freed after vma->vm_refcnt got dropped' (6.15-rc, reported by Jann Horn)"
    ),
    bool_switch!(
        "lock_vma_under_rcu.range_check",
        lvur_range_check,
        "lock_vma_under_rcu, once it holds the VMA read lock, checks that the address lies in [vm_start, vm_end) and fails otherwise (on): the VMA found in the maple-tree walk may have been shrunk, or (SLAB_TYPESAFE_BY_RCU) freed and reused for another range, before vma_start_read; off trusts the walk",
        "Suren Baghdasaryan, 50ee32537206 'mm: introduce lock_vma_under_rcu to be used from arch-specific code' (6.4); the reuse case since 3104138517fc (6.15)"
    ),
    bool_switch!(
        "stack.expand_write_lock",
        stack_expand_write_lock,
        "a fault below a VM_GROWSDOWN VMA expands it with the mmap write lock held (on: lock_mm_and_find_vma drops the read lock, takes the write lock, looks the VMA up again and runs expand_stack_locked -> expand_downwards, then downgrades); off: expand_stack under the mmap read lock, serialised against other expansions by the anon_vma lock and mm->page_table_lock only (before 6.5)",
        "Linus Torvalds, 8d7071af8907 'mm: always expand the stack with the mmap write lock held' and a050ba1e7422 'mm/fault: convert remaining simple cases to lock_mm_and_find_vma()' (6.5-rc1, 6.4.1, 6.1.37); StackRot, CVE-2023-3269"
    ),
    bool_switch!(
        "lock_mm_and_find_vma.relookup",
        stack_relookup,
        "lock_mm_and_find_vma, having dropped the mmap read lock to take the write lock for a stack expansion, looks the VMA up again and rechecks it (on: 'we'll have to drop the mmap lock and re-take it, and also look up the vma again, re-checking it'); off expands the VMA found under the read lock, which munmap may have freed in between",
        "Linus Torvalds, c2508ec5a58d 'mm: introduce new lock_mm_and_find_vma() page fault helper' (6.5-rc1, 6.4.1, 6.1.37)"
    ),
    bool_switch!(
        "munmap.downgrade_next_to_stack",
        munmap_downgrade_next_to_stack,
        "munmap downgrades the mmap write lock to read before zapping and freeing the tables even when the VMA after the range is VM_GROWSDOWN (on: 6.5+, where stacks grow under the write lock); off keeps the write lock then, so a stack expansion under the read lock cannot fault into tables being freed (5.8 to 6.4)",
        "Kirill A. Shutemov, 246c320a8cfe 'mm/mmap.c: close race between munmap() and expand_upwards()/downwards()' (5.8-rc7, CVE-2020-29369, reported by Jann Horn; fixes dd2283f2605e, 4.20); Matthew Wilcox, e4bd84c069f2 'mm: always downgrade mmap_lock if requested' (6.5)"
    ),
];

/// A preset: a kernel version and the switch values that differ from the 2026 defaults.
pub struct Preset {
    pub name: &'static str,
    pub doc: &'static str,
    pub settings: &'static [(&'static str, &'static str)],
}

/// Every preset.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "linux-6.1",
        doc: "the pre-6.5 kernel (with the later 6.1.y fixes of retract.anon_vma_recheck, uffd_copy.dst_pmd_recheck and split.invalidate_nonpresent: set them for 6.1.0): no per-VMA locks, no PT reclaim, no RCU or pmd_same recheck in pte_offset_map, retraction under every walk-start lock exclusively with no spinlock, collapse_pte_mapped_thp under the mmap write lock, x86 bare metal frees tables after the IPI flush",
        settings: &[
            ("fault.vma_lock", "off"),
            ("madvise.vma_lock", "off"),
            ("uffd.vma_lock", "off"),
            ("pt_reclaim", "off"),
            ("tlb.table_free", "immediate"),
            ("pt_reclaim.free", "ipi"),
            ("pte_map.rcu", "off"),
            ("retract.locks", "all_exclusive"),
            ("retract.free", "ipi"),
            ("retract.recheck_pmd", "off"),
            ("collapse.vma_write_order", "after_check"),
            ("mremap.realign", "off"),
            ("thp.zero_wp_alloc", "off"),
            ("pte_map.recheck_pmd", "off"),
            ("migrate.batch_flush", "off"),
            ("swapin.skip_swapcache_prepare", "off"),
            ("vma.typesafe_by_rcu", "off"),
            ("stack.expand_write_lock", "off"),
            ("munmap.downgrade_next_to_stack", "off"),
            ("collapse_pte_mapped.mmap_lock", "write"),
            ("collapse_pte_mapped.uffd_pml", "late"),
        ],
    },
    Preset {
        name: "linux-6.6",
        doc: "per-VMA locked faults (an anonymous VMA without an anon_vma refused), userfaultfd under the mmap read lock, no mremap realignment, RCU-freed retracted tables, no PT reclaim; with the later 6.6.y fixes of uffd_copy.dst_pmd_recheck, split.invalidate_nonpresent, swapin.skip_swapcache_prepare and mremap.normal_pmd_recheck (set them for 6.6.0)",
        settings: &[
            ("madvise.vma_lock", "off"),
            ("uffd.vma_lock", "off"),
            ("lock_vma_under_rcu.anon_vma_check", "after_start_read"),
            ("mremap.realign", "off"),
            ("pt_reclaim", "off"),
            ("tlb.table_free", "immediate"),
            ("pt_reclaim.free", "ipi"),
            ("retract.recheck_pmd", "off"),
            ("collapse.vma_write_order", "after_check"),
            ("thp.zero_wp_alloc", "off"),
            ("vma.typesafe_by_rcu", "off"),
        ],
    },
    Preset {
        name: "linux-6.14",
        doc: "PT reclaim under the mmap read lock; tables freed through tlb_remove_table",
        settings: &[("madvise.vma_lock", "off"), ("vma.typesafe_by_rcu", "off")],
    },
    Preset {
        name: "linux-2026",
        doc: "mm-unstable, 2026: every default",
        settings: &[],
    },
];

/// Why a switch setting was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SwitchError {
    #[error("unknown switch '{0}' (mmcheck switches lists them)")]
    Unknown(String),
    #[error("switch '{name}' takes {allowed}, not '{value}'")]
    Value {
        name: String,
        value: String,
        allowed: String,
    },
    #[error("unknown preset '{0}' (known: linux-6.1, linux-6.6, linux-6.14, linux-2026)")]
    Preset(String),
}

impl Protocol {
    /// The userfaultfd ioctls lock the VMA rather than holding the mmap lock (6.9+).
    pub fn uffd_per_vma_lock(&self) -> bool {
        self.per_vma_lock && self.uffd_vma_lock
    }

    /// Set switch `name` to `value`.
    ///
    /// The pseudo-switch `arch = x86 | arm64` sets `memory` and `tlb.flush` as that architecture
    /// has them (x86: `tso`, `ipi`; arm64: `lkmm`, `broadcast`).
    ///
    /// The pseudo-switch `protocol = PRESET` applies every setting of that preset (a variant that
    /// is another kernel version: `variant pre65: protocol = linux-6.1, retract.locks = ...`).
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), SwitchError> {
        if name == "protocol" {
            return self.apply_preset(value);
        }
        if name == "arch" {
            let (memory, flush) = match value {
                "x86" => ("tso", "ipi"),
                "arm64" => ("lkmm", "broadcast"),
                _ => {
                    return Err(SwitchError::Value {
                        name: name.into(),
                        value: value.into(),
                        allowed: "x86 | arm64".into(),
                    })
                }
            };
            self.set("memory", memory)?;
            return self.set("tlb.flush", flush);
        }
        let sw = SWITCHES
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| SwitchError::Unknown(name.into()))?;
        if (sw.set)(self, value) {
            Ok(())
        } else {
            Err(SwitchError::Value {
                name: name.into(),
                value: value.into(),
                allowed: sw.values.join(" | "),
            })
        }
    }

    /// The protocol of a preset.
    pub fn preset(name: &str) -> Result<Protocol, SwitchError> {
        let mut proto = Protocol::default();
        proto.apply_preset(name)?;
        Ok(proto)
    }

    /// Apply every setting of a preset (they are what differs from the 2026 defaults).
    pub fn apply_preset(&mut self, name: &str) -> Result<(), SwitchError> {
        let p = PRESETS
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| SwitchError::Preset(name.into()))?;
        for (k, v) in p.settings {
            self.set(k, v).expect("presets name valid switches");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_roundtrip_and_presets() {
        for sw in SWITCHES {
            assert_eq!(
                sw.default_value(),
                sw.values[0],
                "{}: default is the first value",
                sw.name
            );
            for v in sw.values {
                let mut p = Protocol::default();
                p.set(sw.name, v).unwrap();
                assert_eq!(sw.get(&p), *v);
            }
        }
        assert!(matches!(
            Protocol::default().set("nope", "on"),
            Err(SwitchError::Unknown(_))
        ));
        assert!(matches!(
            Protocol::default().set("pt_reclaim", "maybe"),
            Err(SwitchError::Value { .. })
        ));
        let p = Protocol::preset("linux-6.1").unwrap();
        assert!(!p.per_vma_lock && !p.pt_reclaim && p.table_free == TableFree::Immediate);
        // Review B13: the pre-6.5 kernel, not 2026 defaults with two switches flipped.
        assert!(!p.pte_map_rcu && !p.pmd_same_recheck && !p.madv_vma_lock);
        assert_eq!(p.retract_locks, RetractLocks::AllExclusive);
        assert!(!p.mremap_realign && p.mremap_normal_pmd_rmap_locks);
        // userfaultfd took per-VMA locks in 6.9, after per-VMA locked faults (6.4).
        let p66 = Protocol::preset("linux-6.6").unwrap();
        assert!(p66.per_vma_lock && !p66.uffd_vma_lock && !p.uffd_vma_lock);
        // A variant may name a preset: its settings apply on top.
        let mut q = Protocol::default();
        q.set("protocol", "linux-6.1").unwrap();
        assert_eq!(q, p);
        assert!(matches!(
            q.set("protocol", "linux-9"),
            Err(SwitchError::Preset(_))
        ));
        assert_eq!(Protocol::preset("linux-2026").unwrap(), Protocol::default());
        assert!(Protocol::preset("linux-9").is_err());
    }
}
