//! Differential-test cases: a random sequence of mm syscalls and user accesses inside a fixed
//! window of the address space, replayable on the host kernel and on the model.

/// Base of the case window: 512 GiB aligned, so the window has a PGD slot (and therefore its own
/// PUD, PMD and PTE tables) to itself on x86-64 with 4-level paging.
pub const REGION_BASE: u64 = 0x4000_0000_0000;
/// Size of the window in 4 KiB pages (16 MiB: eight PMD ranges).
pub const REGION_PAGES: u64 = 4096;
/// Page size used by the cases.
pub const PAGE_SIZE: u64 = 4096;

/// What backs a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backing {
    /// `MAP_PRIVATE | MAP_ANONYMOUS`.
    AnonPrivate,
    /// `MAP_SHARED | MAP_ANONYMOUS` (shmem-backed).
    ShmemShared,
    /// `MAP_PRIVATE` of a new memfd (shmem) of the mapping's size, which the runner keeps open:
    /// reads map page-cache pages, writes COW them. Files are numbered in the order of their
    /// `Mmap` ops, from 0, for [`Op::PunchHole`] and [`Op::Truncate`].
    ShmemPrivate,
}

/// One step of a case. Pages are indices into the window (address = REGION_BASE + page * 4096).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `mmap(addr, pages * 4096, PROT_READ|PROT_WRITE, backing | MAP_FIXED_NOREPLACE)`.
    Mmap {
        start: u64,
        pages: u64,
        backing: Backing,
    },
    /// `munmap(addr, pages * 4096)`.
    Munmap { start: u64, pages: u64 },
    /// `madvise(addr, pages * 4096, MADV_DONTNEED)`.
    DontNeed { start: u64, pages: u64 },
    /// Store `value` to the first 8 bytes of `page`.
    Store { page: u64, value: u64 },
    /// Load the first 8 bytes of `page`.
    Load { page: u64 },
    /// `mremap(start, pages * 4096, pages * 4096, MREMAP_MAYMOVE | MREMAP_FIXED, new_start)`:
    /// move the range (inside one mapping) to an unmapped destination.
    Mremap {
        start: u64,
        pages: u64,
        new_start: u64,
    },
    /// `madvise(addr, pages * 4096, MADV_HUGEPAGE)` on anonymous private mappings.
    Hugepage { start: u64, pages: u64 },
    /// `madvise(addr, pages * 4096, MADV_COLLAPSE)` on anonymous private mappings. May fail; the
    /// errno is part of the observation.
    Collapse { start: u64, pages: u64 },
    /// `fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset * 4096, pages * 4096)` on
    /// file `file` (see [`Backing::ShmemPrivate`]): page-cache pages go, private COW copies stay.
    PunchHole { file: u32, offset: u64, pages: u64 },
    /// `ftruncate(fd, pages * 4096)` of file `file`, shrinking it: every mapping of the tail goes,
    /// private COW copies included; accesses beyond the new size would raise SIGBUS (cases make
    /// none).
    Truncate { file: u32, pages: u64 },
    /// `mprotect(addr, pages * 4096, PROT_READ [| PROT_WRITE])`: the range must be mapped (no
    /// ENOMEM half-way); stores to a read-only page are never generated (no SIGSEGV).
    Mprotect { start: u64, pages: u64, write: bool },
    /// `fork()`: a child process that stays blocked until told to load, store or exit. The
    /// observations stay the parent's; the child's view shows through [`Op::ChildLoad`]. At most
    /// one child is alive at a time.
    Fork,
    /// The child loads the first 8 bytes of `page` (its own mappings, as of the fork).
    ChildLoad { page: u64 },
    /// The child stores `value` to the first 8 bytes of `page`.
    ChildStore { page: u64, value: u64 },
    /// The child exits and the parent reaps it (`exit_mmap` of the child's mm).
    ChildExit,
    /// `madvise(addr, pages * 4096, MADV_FREE)` on anonymous private memory: the pages become
    /// lazyfree, discarded by the next reclaim unless stored to first.
    Free { start: u64, pages: u64 },
    /// `madvise(addr, pages * 4096, MADV_PAGEOUT)`: reclaim the range now. Without swap (the
    /// host and the model) only clean lazyfree pages go; they read back as zero.
    Pageout { start: u64, pages: u64 },
}

/// A whole case.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Case {
    pub ops: Vec<Op>,
}

/// What is observed after each op. Counters are deltas against the process's values just before
/// the first op, so the rest of the process does not matter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observation {
    /// For a `Load` or `ChildLoad`, the value read; `None` for every other op.
    pub load: Option<u64>,
    /// For a `Collapse`, the errno of `madvise(MADV_COLLAPSE)` (0 on success); 0 for every other
    /// op (their failures are infrastructure errors, not observations).
    pub errno: i32,
    /// `VmPTE` delta in KiB (PTE + PMD + PUD tables).
    pub vm_pte_kb: i64,
    /// `Rss` delta in KiB, from smaps_rollup.
    pub rss_kb: i64,
    /// `AnonHugePages` delta in KiB, from smaps_rollup.
    pub anon_huge_kb: i64,
    /// Present bit of every page in the window (bit `p % 64` of word `p / 64`), from pagemap.
    pub present: Vec<u64>,
}

/// Anything that can run a case: the host kernel or the model.
pub trait CaseRunner {
    /// Short name for reports ("host", "model").
    fn name(&self) -> &str;
    /// Run a case, one observation per op. `Err` is an infrastructure failure, not a divergence.
    fn run(&self, case: &Case) -> Result<Vec<Observation>, String>;

    /// Run a case and say whether something outside the case may have disturbed the run (for the
    /// host: a THP allocation that failed, khugepaged activity). A divergence on a disturbed run
    /// is retried, not reported. The default: never disturbed.
    fn run_noted(&self, case: &Case) -> Result<(Vec<Observation>, Option<String>), String> {
        self.run(case).map(|o| (o, None))
    }
}
