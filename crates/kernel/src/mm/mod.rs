//! The core mm, one module per kernel file.

pub mod folio;
pub mod fork;
pub mod gup;
pub mod huge_memory;
pub mod khugepaged;
pub mod khugepaged_file;
pub mod madvise;
pub mod madvise_collapse;
pub mod memory;
pub mod migrate;
pub mod mmu_gather;
pub mod mprotect;
pub mod mremap;
pub mod pagewalk;
pub mod pgtable;
pub mod rmap;
pub mod shmem;
pub mod split_huge_page;
pub mod tlb_batch;
pub mod types;
pub mod userfaultfd;
pub mod userfaultfd_move;
pub mod vma;
pub mod vmscan;
pub mod zap;
