//! Copies of the kernel's objects for restoring the state a scenario's set-up left (see
//! `mmcheck_platform::snapshot`): the checker's, not the kernel's. The cells that hold objects
//! (the maple tree, `vma->anon_vma`, the anon_vma chain, the rmap interval trees) are filled
//! after every shell exists, which is how the VMA ↔ anon_vma cycles are copied.

use super::{AnonVma, File, MmStruct, TlbOwed, Vma, VmaIntervalTree};
use crate::mm::swapfile::{SwapInfo, SwapState};
use crate::Kernel;
use mmcheck_platform::{Backend, CellCopy, Machine, Memo, Snapshot, SnapshotObj};

mmcheck_platform::snapshot_by_clone!(TlbOwed, SwapState);

impl SnapshotObj for MmStruct {
    fn shell(&self, m: &mut Memo) -> Self {
        let MmStruct {
            id,
            pgd,
            mmap_lock,
            page_table_lock,
            tree,
            nr_ptes,
            nr_pmds,
            nr_puds,
            rss,
            tlb_flush_pending,
            tlb_flush_batched,
            write_protect_seq,
            exiting,
            uffd_wp_protected,
            uffd_wp_done,
            tlb_owed,
        } = self;
        MmStruct {
            id: *id,
            pgd: *pgd,
            mmap_lock: mmap_lock.snapshot(m),
            page_table_lock: page_table_lock.snapshot(m),
            tree: tree.empty_copy(),
            nr_ptes: nr_ptes.snapshot(m),
            nr_pmds: nr_pmds.snapshot(m),
            nr_puds: nr_puds.snapshot(m),
            rss: rss.snapshot(m),
            tlb_flush_pending: tlb_flush_pending.snapshot(m),
            tlb_flush_batched: tlb_flush_batched.snapshot(m),
            write_protect_seq: write_protect_seq.snapshot(m),
            exiting: exiting.snapshot(m),
            uffd_wp_protected: uffd_wp_protected.snapshot(m),
            uffd_wp_done: uffd_wp_done.snapshot(m),
            tlb_owed: tlb_owed.snapshot(m),
        }
    }

    fn fill(&self, copy: &Self, m: &mut Memo) {
        self.tree.fill_copy(&copy.tree, m);
    }
}

impl SnapshotObj for Vma {
    fn shell(&self, m: &mut Memo) -> Self {
        let Vma {
            id,
            slab,
            vm_mm,
            tree_id,
            range,
            vm_flags,
            file,
            anon_vma,
            anon_vma_chain,
            lock,
        } = self;
        Vma {
            id: *id,
            slab: slab.snapshot(m),
            vm_mm: vm_mm.snapshot(m),
            tree_id: tree_id.snapshot(m),
            range: range.snapshot(m),
            vm_flags: vm_flags.snapshot(m),
            file: file.snapshot(m),
            anon_vma: anon_vma.empty_copy(),
            anon_vma_chain: anon_vma_chain.empty_copy(),
            lock: lock.snapshot(m),
        }
    }

    fn fill(&self, copy: &Self, m: &mut Memo) {
        self.anon_vma.fill_copy(&copy.anon_vma, m);
        self.anon_vma_chain.fill_copy(&copy.anon_vma_chain, m);
    }
}

impl SnapshotObj for AnonVma {
    fn shell(&self, m: &mut Memo) -> Self {
        let AnonVma {
            id,
            root,
            rwsem,
            tree,
        } = self;
        AnonVma {
            id: *id,
            root: root.snapshot(m),
            rwsem: rwsem.snapshot(m),
            tree: VmaIntervalTree {
                vmas: tree.vmas.empty_copy(),
            },
        }
    }

    fn fill(&self, copy: &Self, m: &mut Memo) {
        self.tree.vmas.fill_copy(&copy.tree.vmas, m);
    }
}

impl SnapshotObj for File {
    fn shell(&self, m: &mut Memo) -> Self {
        let File {
            id,
            i_mmap_rwsem,
            i_mmap,
            pages,
            i_pages_lock,
            size_pages,
            f_count,
        } = self;
        File {
            id: *id,
            i_mmap_rwsem: i_mmap_rwsem.snapshot(m),
            i_mmap: VmaIntervalTree {
                vmas: i_mmap.vmas.empty_copy(),
            },
            pages: pages.snapshot(m),
            i_pages_lock: i_pages_lock.snapshot(m),
            size_pages: size_pages.snapshot(m),
            f_count: f_count.snapshot(m),
        }
    }

    fn fill(&self, copy: &Self, m: &mut Memo) {
        self.i_mmap.vmas.fill_copy(&copy.i_mmap.vmas, m);
    }
}

impl Snapshot for SwapInfo {
    fn snapshot(&self, m: &mut Memo) -> Self {
        let SwapInfo { state, data } = self;
        SwapInfo {
            state: state.snapshot(m),
            data: data.snapshot(m),
        }
    }
}

impl Kernel {
    /// A copy of this kernel and its machine on `backend`, with every object it reaches copied
    /// in `m` (call [`Memo::finish`] before running it). For restoring a set-up state.
    pub fn snapshot(&self, backend: Box<dyn Backend>, m: &mut Memo) -> Kernel {
        self.snapshot_onto(self.machine.snapshot(backend), m)
    }

    /// [`Kernel::snapshot`] with `machine` as the copy's machine: a copy of this kernel's
    /// (made by [`Machine::snapshot`] or [`Machine::reset_from`]).
    pub fn snapshot_onto(&self, machine: Machine, m: &mut Memo) -> Kernel {
        let Kernel {
            machine: _,
            geo,
            proto,
            zero_page,
            huge_zero,
            swap,
            mms,
            anon_vmas,
            files,
            vma_cache,
        } = self;
        Kernel {
            machine,
            geo: *geo,
            proto: proto.clone(),
            zero_page: *zero_page,
            huge_zero: huge_zero.snapshot(m),
            swap: swap.snapshot(m),
            mms: mms.snapshot(m),
            anon_vmas: anon_vmas.snapshot(m),
            files: files.snapshot(m),
            vma_cache: vma_cache.snapshot(m),
        }
    }
}
