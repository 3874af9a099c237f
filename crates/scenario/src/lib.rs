//! Scenarios: a geometry, a protocol, an initial state, 2–4 thread programs of kernel operations
//! and user accesses, and expectations. [`Scenario`] is the Rust builder form; [`KernelModel`]
//! runs one under the explorer (each thread on its own CPU, plus the RCU callback thread).

pub mod catalogue;
pub mod gen;
pub mod linearize;
pub mod model;
pub mod parse;

pub use model::KernelModel;
pub use parse::{load_scenario_file, parse_scenario, scenario_files, ParseError};

use mmcheck_kernel::{Geometry, Protocol};
use mmcheck_platform::ViolationKind;

/// What backs a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backing {
    /// `MAP_PRIVATE | MAP_ANONYMOUS`.
    AnonPrivate,
    /// `MAP_SHARED` of a new shmem file.
    ShmemShared,
    /// `MAP_PRIVATE` of a new shmem file: page-cache pages mapped read-only, COW on write.
    ShmemPrivate,
    /// A mapping of the shmem file mapped at `of` (set-up only), from the file page mapped there:
    /// `MAP_PRIVATE` if `private`, else `MAP_SHARED`.
    SameFile { of: u64, private: bool },
}

/// Initial state, built before any thread runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetupOp {
    /// `mmap` of `pages` pages at `addr`; `huge` adds `VM_HUGEPAGE`.
    Mmap {
        addr: u64,
        pages: u64,
        backing: Backing,
        huge: bool,
    },
    /// Fault the page in with a store of `value`.
    Store { addr: u64, value: u64 },
    /// Fault the page in with a load.
    Load { addr: u64 },
    /// `mremap` a range to an unmapped destination.
    Mremap {
        addr: u64,
        pages: u64,
        new_addr: u64,
    },
    /// `munmap`.
    Munmap { addr: u64, pages: u64 },
    /// `madvise(MADV_FREE)`: the anonymous pages start the threads lazyfree.
    MadvFree { addr: u64, pages: u64 },
    /// `collapse_file` + `retract_page_tables` of the shmem range mapped at `addr`.
    Retract { addr: u64 },
    /// Migrate the folio mapped at `addr`; `unmap_only`: `migrate_folio_unmap` alone, and the
    /// move pass runs on a CPU of its own (`migration`) while the threads run.
    Migrate { addr: u64, unmap_only: bool },
    /// `madvise(MADV_PAGEOUT)`: with `swap = on`, anonymous pages start the threads swapped out.
    MadvPageout { addr: u64, pages: u64 },
    /// `UFFDIO_REGISTER` of `pages` pages at `addr`.
    UffdRegister {
        addr: u64,
        pages: u64,
        missing: bool,
        wp: bool,
    },
    /// `mmap(MAP_GROWSDOWN)` of `pages` anonymous pages at `addr`: a stack VMA.
    MmapStack { addr: u64, pages: u64 },
}

/// One operation of a thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// User load (through the TLB, the hardware walker, then a fault).
    Load {
        addr: u64,
    },
    /// User store.
    Store {
        addr: u64,
        value: u64,
    },
    /// A page fault on `addr` (read or write), without the access.
    Fault {
        addr: u64,
        write: bool,
    },
    Mmap {
        addr: u64,
        pages: u64,
        backing: Backing,
    },
    Munmap {
        addr: u64,
        pages: u64,
    },
    /// `madvise(MADV_DONTNEED)`.
    DontNeed {
        addr: u64,
        pages: u64,
    },
    /// `madvise(MADV_FREE)`.
    MadvFree {
        addr: u64,
        pages: u64,
    },
    /// `madvise(MADV_PAGEOUT)`.
    MadvPageout {
        addr: u64,
        pages: u64,
    },
    /// An RCU-only software walker: `pte_offset_map`, read the PTE of `addr`, `pte_unmap`
    /// (`filemap_fault_recheck_pte_none`, `pte_range_none`).
    RcuWalk {
        addr: u64,
    },
    /// `folio_walk_start` on `addr` under the lock `folio_walk.lock` names, then use the page:
    /// under the PTL, or with a reference after `folio_walk_end`.
    FolioWalk {
        addr: u64,
        use_: WalkUse,
    },
    /// `get_user_pages_fast` (FOLL_PIN if `pin`) of `addr`, then a write of `value` through the
    /// returned page (a DMA) or a read, then unpin. With `fast_only`
    /// (`get_user_pages_fast_only`, FOLL_FAST_ONLY) a failed fast walk is the answer: no slow path.
    GupFast {
        addr: u64,
        write: bool,
        pin: bool,
        value: u64,
        fast_only: bool,
    },
    /// Migrate the folio mapped at `addr` (`try_to_migrate`, copy, `remove_migration_ptes`);
    /// `unmap_only`: `migrate_folio_unmap` alone, the migration left in flight until every
    /// thread is done (the `.mmt` form takes `unmap` only in `init`, see [`SetupOp::Migrate`]:
    /// a later operation of the same thread on that folio would wait for itself).
    Migrate {
        addr: u64,
        unmap_only: bool,
    },
    /// `mremap(addr, pages, pages, MREMAP_MAYMOVE | MREMAP_FIXED, new_addr)` to an unmapped
    /// destination, with `MREMAP_DONTUNMAP` when `dontunmap` (the old VMA stays, empty).
    Mremap {
        addr: u64,
        pages: u64,
        new_addr: u64,
        dontunmap: bool,
    },
    /// Anonymous THP collapse of the `2^order`-page range holding `addr` (`collapse_huge_page`,
    /// as MADV_COLLAPSE or a khugepaged scan drives it; `order` = the PMD order for a THP).
    Collapse {
        addr: u64,
        order: u32,
        /// A khugepaged scan (its `max_ptes_none` applies) rather than MADV_COLLAPSE.
        khugepaged: bool,
    },
    /// `collapse_file` of the PMD range of the shmem file mapped at `addr`, ending in
    /// `retract_page_tables` (the file THP path).
    Retract {
        addr: u64,
    },
    /// `folio_referenced` of the folio mapped at `addr`: an rmap walk that takes each PTL through
    /// `page_vma_mapped_walk` and clears the young bits.
    RmapWalk {
        addr: u64,
    },
    /// `ftruncate` of the shmem file mapped at `addr` to the file page mapped there
    /// (`shmem_setattr`): `unmap_mapping_range` of the tail with `even_cows`, then the page cache.
    Truncate {
        addr: u64,
    },
    /// `fallocate(FALLOC_FL_PUNCH_HOLE)` of the `pages` shmem pages mapped at `addr`:
    /// `unmap_mapping_range` under `i_mmap_rwsem` read (no folio lock), then the page-cache
    /// folios dropped under their locks.
    PunchHole {
        addr: u64,
        pages: u64,
    },
    /// `fork()`: `dup_mmap` of the scenario's mm into a child that lives to the end of the
    /// execution (its tables are checked with the parent's, then it exits).
    /// `mprotect(addr, pages, PROT_READ [| PROT_WRITE])`.
    Mprotect {
        addr: u64,
        pages: u64,
        write: bool,
    },
    /// NUMA hinting of `pages` pages at `addr`: `task_numa_work` → `change_prot_numa` under
    /// the mmap read lock makes them PROTNONE (the next access faults and restores them).
    NumaHint {
        addr: u64,
        pages: u64,
    },
    Fork,
    /// The last forked child that is still alive exits: `mmput` → `exit_mmap` (unmap, free the
    /// tables, unlink the anon_vmas and i_mmap links) → `mmdrop`.
    ChildExit,
    /// `try_to_unmap` of the page-cache folio mapped at `addr`.
    TryToUnmap {
        addr: u64,
    },
    /// `collapse_pte_mapped_thp` of the PMD range holding `addr` (a PMD-order page-cache folio
    /// mapped by PTEs loses its PTE table).
    CollapsePteMappedThp {
        addr: u64,
    },
    /// `UFFDIO_REGISTER` of `pages` pages at `addr` (`missing`: `VM_UFFD_MISSING`, `wp`:
    /// `VM_UFFD_WP`).
    UffdRegister {
        addr: u64,
        pages: u64,
        missing: bool,
        wp: bool,
    },
    /// `UFFDIO_COPY` of one page holding `value` to `addr`.
    UffdCopy {
        addr: u64,
        value: u64,
    },
    /// `UFFDIO_WRITEPROTECT` (protect) of `pages` pages at `addr`.
    UffdWp {
        addr: u64,
        pages: u64,
    },
    /// `mmap(MAP_GROWSDOWN)` of `pages` anonymous pages at `addr`: a stack VMA.
    MmapStack {
        addr: u64,
        pages: u64,
    },
    /// `UFFDIO_MOVE` of `pages` pages from `addr` to `to` (`allow_src_holes`:
    /// `UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES`).
    UffdMove {
        addr: u64,
        pages: u64,
        to: u64,
        allow_src_holes: bool,
    },
    /// `UFFDIO_WRITEPROTECT` with mode 0 (unprotect) of `pages` pages at `addr`.
    UffdUnprotect {
        addr: u64,
        pages: u64,
    },
    /// `UFFDIO_UNREGISTER` of `pages` pages at `addr`.
    UffdUnregister {
        addr: u64,
        pages: u64,
    },
    /// An assertion on the state reached so far (peeked: not a visible step); a failed check is
    /// an `assertion` violation. For sequential analogs of the kernel's selftests.
    Check {
        addr: u64,
        what: CheckWhat,
    },
    /// The debugfs `split_huge_pages` write for `addr`: `split_huge_page_to_list_to_order` of
    /// the anon THP there, to `new_order`.
    SplitHugePage {
        addr: u64,
        new_order: u32,
    },
}

/// What a `check` asserts about an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckWhat {
    /// Mapped by a huge PMD.
    Huge,
    /// Mapped by a PTE.
    Small,
    /// Not mapped.
    Unmapped,
    /// Mapped and holding this word.
    Value(u64),
}

impl std::fmt::Display for CheckWhat {
    /// As the scenario writes it: `huge`, `small`, `unmapped`, `value = 9`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckWhat::Huge => f.write_str("huge"),
            CheckWhat::Small => f.write_str("small"),
            CheckWhat::Unmapped => f.write_str("unmapped"),
            CheckWhat::Value(v) => write!(f, "value = {v}"),
        }
    }
}

/// How a `folio_walk` caller uses its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkUse {
    /// Read the page while the PTL is held.
    Ptl,
    /// Take a reference under the PTL, `folio_walk_end`, then read the page.
    Ref,
}

/// What a scenario expects under a protocol variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    Violation(ViolationKind),
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Clean => f.write_str("clean"),
            Verdict::Violation(k) => write!(f, "{k}"),
        }
    }
}

/// A named protocol variant: switch settings applied on top of the scenario's protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variant {
    pub name: String,
    pub settings: Vec<(String, String)>,
}

/// An expectation: under `variant` (`None`: the scenario's own protocol) the verdict is `verdict`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectation {
    pub variant: Option<String>,
    pub verdict: Verdict,
}

/// A reach pattern over thread states (see [`mmcheck_explore::reach`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReachPattern {
    Once(Atom),
    While(Atom, Atom),
    Before(Atom, Atom),
}

pub use mmcheck_explore::reach::Atom;

/// `expect [VARIANTS:] reach PATTERN`: under `variant` some explored execution reaches
/// `pattern`. `text` is the pattern as written (for reports).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReachExpectation {
    pub variant: Option<String>,
    pub pattern: ReachPattern,
    pub text: String,
}

/// The lock names a reach atom's `holds` takes, with the class each stands for
/// ([`mmcheck_platform::Machine::lock_class`], or the explorer's RCU and IRQ pseudo-classes).
pub const HOLD_NAMES: &[(&str, &str)] = &[
    ("mmap_lock", "&mm->mmap_lock"),
    ("page_table_lock", "&mm->page_table_lock"),
    ("anon_vma_lock", "&anon_vma->rwsem"),
    ("i_mmap_rwsem", "&mapping->i_mmap_rwsem"),
    ("pmd_lock", "pmd_lock"),
    ("ptl", "ptl"),
    ("folio_lock", "folio_lock"),
    ("rcu_read_lock", mmcheck_explore::reach::RCU),
    ("irqs_off", mmcheck_explore::reach::IRQS_OFF),
];

include!(concat!(env!("OUT_DIR"), "/funcs.rs"));

impl Scenario {
    /// The reach patterns of every `expect reach` line, deduplicated, as the explorer takes them;
    /// `reach_index[i]` is the pattern of `self.reach[i]`.
    pub fn reach_spec(&self) -> (mmcheck_explore::reach::Spec, Vec<usize>) {
        use mmcheck_explore::reach::Pattern;
        let mut spec = mmcheck_explore::reach::Spec::default();
        let atom = |spec: &mut mmcheck_explore::reach::Spec, a: &Atom| {
            spec.atoms.iter().position(|x| x == a).unwrap_or_else(|| {
                spec.atoms.push(a.clone());
                spec.atoms.len() - 1
            })
        };
        let mut index = Vec::new();
        for r in &self.reach {
            let p = match &r.pattern {
                ReachPattern::Once(a) => Pattern::Once(atom(&mut spec, a)),
                ReachPattern::While(a, b) => {
                    let a = atom(&mut spec, a);
                    Pattern::While(a, atom(&mut spec, b))
                }
                ReachPattern::Before(a, b) => {
                    let a = atom(&mut spec, a);
                    Pattern::Before(a, atom(&mut spec, b))
                }
            };
            let i = spec
                .patterns
                .iter()
                .position(|x| *x == p)
                .unwrap_or_else(|| {
                    spec.patterns.push(p);
                    spec.patterns.len() - 1
                });
            index.push(i);
        }
        (spec, index)
    }
}

/// A scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    /// One-paragraph description (what it shows).
    pub doc: String,
    pub geometry: Geometry,
    pub protocol: Protocol,
    /// `mutate SITE`: the mutant this scenario runs (see [`mmcheck_platform::mutate`]).
    pub mutate: Option<mmcheck_platform::SiteKey>,
    pub nr_frames: usize,
    /// `frames spare=K`: after `init`, only the `K` lowest free frames stay in the pool and
    /// every allocation takes the lowest free block (a frame a thread frees is taken again
    /// before the spare ones above it, as a hot per-CPU page would be).
    pub spare_frames: Option<usize>,
    pub setup: Vec<SetupOp>,
    pub threads: Vec<Vec<Op>>,
    pub variants: Vec<Variant>,
    pub expect: Vec<Expectation>,
    /// `expect reach` lines (none needed; at most 64 distinct atoms and patterns).
    pub reach: Vec<ReachExpectation>,
}

impl Scenario {
    /// An empty scenario on a small geometry (3 levels of 8 entries: a PTE table maps 8 pages).
    pub fn new(name: &str) -> Self {
        let mut protocol = Protocol {
            inline_rcu_callbacks: false,
            ..Protocol::default()
        };
        protocol.fault_around_pages = 4;
        Scenario {
            name: name.to_string(),
            geometry: Geometry::new(3, 8).expect("valid geometry"),
            protocol,
            mutate: None,
            nr_frames: 64,
            spare_frames: None,
            setup: Vec::new(),
            threads: Vec::new(),
            variants: Vec::new(),
            expect: Vec::new(),
            reach: Vec::new(),
            doc: String::new(),
        }
    }

    /// The protocol of a variant (`None`: the scenario's own).
    pub fn variant_protocol(
        &self,
        variant: Option<&str>,
    ) -> Result<Protocol, mmcheck_kernel::protocol::SwitchError> {
        let mut p = self.protocol.clone();
        if let Some(name) = variant {
            if let Some(v) = self.variants.iter().find(|v| v.name == name) {
                for (k, val) in &v.settings {
                    p.set(k, val)?;
                }
            }
        }
        Ok(p)
    }

    /// This scenario under a variant's protocol.
    pub fn with_variant(
        &self,
        variant: Option<&str>,
    ) -> Result<Scenario, mmcheck_kernel::protocol::SwitchError> {
        Ok(Scenario {
            protocol: self.variant_protocol(variant)?,
            ..self.clone()
        })
    }

    pub fn doc(mut self, d: &str) -> Self {
        self.doc = d.to_string();
        self
    }

    pub fn variant(mut self, name: &str, settings: &[(&str, &str)]) -> Self {
        self.variants.push(Variant {
            name: name.to_string(),
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        });
        self
    }

    pub fn expect(mut self, variant: Option<&str>, verdict: Verdict) -> Self {
        self.expect.push(Expectation {
            variant: variant.map(str::to_string),
            verdict,
        });
        self
    }

    pub fn geometry(mut self, g: Geometry) -> Self {
        self.geometry = g;
        self
    }

    pub fn protocol(mut self, f: impl FnOnce(&mut Protocol)) -> Self {
        f(&mut self.protocol);
        self
    }

    pub fn setup(mut self, op: SetupOp) -> Self {
        self.setup.push(op);
        self
    }

    pub fn thread(mut self, ops: Vec<Op>) -> Self {
        self.threads.push(ops);
        self
    }

    /// Address of page `p` in the conventional scenario window (second PMD range).
    pub fn page(&self, p: u64) -> u64 {
        self.geometry.pmd_size() + p * self.geometry.page_size()
    }
}
