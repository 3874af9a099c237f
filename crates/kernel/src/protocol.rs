//! Protocol configuration: the kernel behaviours the model can be flipped between. The defaults
//! are the 2026 mainline (≈6.18, as on the host); each field names the kernel option or commit it
//! follows. The seed-mechanisms issue turns these into named `switch = value` settings with presets.

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
    /// How the mmu_gather frees tables.
    pub table_free: TableFree,
    /// MADV_DONTNEED may run under the per-VMA read lock (6.16+).
    pub madv_vma_lock: bool,
    /// Faults try `lock_vma_under_rcu` first (6.4+).
    pub per_vma_lock: bool,
    /// `CONFIG_SPLIT_PTE_PTLOCKS` / `CONFIG_SPLIT_PMD_PTLOCKS`: locks live in table pages; off means
    /// every table lock is `mm->page_table_lock`.
    pub split_ptlocks: bool,
    /// Read faults on anonymous memory map the zero page (`mm_forbids_zeropage` false).
    pub zero_page: bool,
    /// `/sys/kernel/mm/transparent_hugepage/use_zero_page`.
    pub huge_zero_page: bool,
    /// `fault_around_bytes` in pages (16 = 64 KiB).
    pub fault_around_pages: u64,
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
    /// PT reclaim's fast path takes the PMD lock with `spin_trylock` while holding the PTL (1.4).
    /// Off takes it with `spin_lock`, inverting the PMD-lock → PTL order of the slow path.
    pub pt_reclaim_pmd_trylock: bool,
    /// The mmu_gather flushes the TLB before freeing what it gathered (I20). Off plants a missing
    /// flush.
    pub gather_tlb_flush: bool,
}

impl Default for Protocol {
    fn default() -> Self {
        Protocol {
            pt_reclaim: true,
            table_free: TableFree::Rcu,
            madv_vma_lock: true,
            per_vma_lock: true,
            split_ptlocks: true,
            zero_page: true,
            huge_zero_page: true,
            fault_around_pages: 16,
            gather_batch: 512,
            inline_rcu_callbacks: true,
            pmd_same_recheck: true,
            populate_locked: true,
            pt_reclaim_pmd_trylock: true,
            gather_tlb_flush: true,
        }
    }
}
