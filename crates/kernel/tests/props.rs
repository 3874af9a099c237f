//! Property tests: random sequences of system calls and user accesses on the model (x86-64
//! geometry, native backend, one CPU), checked op by op against an abstract model of what user
//! space sees (address → value per mm), with the quiescent invariants checked after every op and
//! a leak check after tearing everything down.
//!
//! The abstract model: a private anonymous page reads 0 until stored to; `MADV_DONTNEED` makes it
//! 0 again; a shared (shmem) page keeps its value across `MADV_DONTNEED` and is the same page in
//! every mm that maps it; munmap removes pages; fork copies private pages and shares shmem;
//! `mmap` is `MAP_FIXED_NOREPLACE` (EEXIST on any overlap); accesses to unmapped pages are
//! SIGSEGV; `MADV_DONTNEED` over a range with a hole is ENOMEM after zapping the mapped parts.

use mmcheck_kernel::arch::fault::{user_load, user_store};
use mmcheck_kernel::check::check_quiescent;
use mmcheck_kernel::mm::fork::dup_mmap;
use mmcheck_kernel::mm::madvise::madvise_dontneed;
use mmcheck_kernel::mm::vma::{do_mmap, do_munmap, exit_mmap, mm_alloc, mmdrop, MapBacking};
use mmcheck_kernel::{Errno, Geometry, Kernel, MmStruct, Protocol};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use std::collections::BTreeMap;
use std::sync::Arc;

const BASE: u64 = 0x4000_0000_0000; // 2 MiB aligned
const PG: u64 = 4096;
/// The window ops work in, in pages: two PTE tables' worth.
const WINDOW: u64 = 1024;
const MAX_MMS: usize = 3;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x6d6d_6368_6563_6b21),
        ..ProptestConfig::default()
    }
}

/// A page: one that the chosen mm maps (if any), or any page of the window.
#[derive(Clone, Debug)]
enum Pick {
    Mapped(u32),
    Any(u64),
}

#[derive(Clone, Debug)]
enum Op {
    Mmap {
        mm: usize,
        start: u64,
        len: u64,
        shmem: bool,
        huge: bool,
    },
    Munmap {
        mm: usize,
        at: Pick,
        len: u64,
    },
    Dontneed {
        mm: usize,
        at: Pick,
        len: u64,
    },
    Store {
        mm: usize,
        at: Pick,
        val: u64,
    },
    Load {
        mm: usize,
        at: Pick,
    },
    /// Fork the mm (if fewer than `MAX_MMS` exist), then maybe store in the child.
    Fork {
        mm: usize,
        store: Option<(Pick, u64)>,
    },
    /// `exit_mmap` + `mmdrop` of the mm (if more than one exists).
    Exit {
        mm: usize,
    },
}

fn start() -> impl Strategy<Value = u64> {
    prop_oneof![
        2 => 0..WINDOW,
        2 => (0..WINDOW / 16).prop_map(|x| x * 16),
        1 => (0..WINDOW / 512).prop_map(|x| x * 512),
    ]
}

fn len() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 1..=16u64,
        1 => Just(64u64),
        2 => Just(512u64),
        1 => 1..=WINDOW,
    ]
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        4 => any::<u32>().prop_map(Pick::Mapped),
        1 => (0..WINDOW).prop_map(Pick::Any),
    ]
}

fn op(thp: bool) -> impl Strategy<Value = Op> {
    let huge = if thp {
        any::<bool>().boxed()
    } else {
        Just(false).boxed()
    };
    // With THP, also map whole aligned 2 MiB ranges often, so huge PMDs actually appear.
    let aligned_huge = (
        0..MAX_MMS,
        prop_oneof![Just(0u64), Just(512)],
        prop_oneof![Just(512u64), Just(1024)],
    )
        .prop_map(|(mm, start, len)| Op::Mmap {
            mm,
            start,
            len,
            shmem: false,
            huge: true,
        });
    prop_oneof![
        if thp { 3 } else { 0 } => aligned_huge,
        3 => (0..MAX_MMS, start(), len(), any::<bool>(), huge).prop_map(
            |(mm, start, len, shmem, huge)| Op::Mmap { mm, start, len, shmem, huge }
        ),
        1 => (0..MAX_MMS, pick(), len()).prop_map(|(mm, at, len)| Op::Munmap { mm, at, len }),
        2 => (0..MAX_MMS, pick(), len()).prop_map(|(mm, at, len)| Op::Dontneed { mm, at, len }),
        4 => (0..MAX_MMS, pick(), 1..u64::MAX).prop_map(|(mm, at, val)| Op::Store { mm, at, val }),
        3 => (0..MAX_MMS, pick()).prop_map(|(mm, at)| Op::Load { mm, at }),
        1 => (0..MAX_MMS, proptest::option::of((pick(), 1..u64::MAX)))
            .prop_map(|(mm, store)| Op::Fork { mm, store }),
        1 => (0..MAX_MMS).prop_map(|mm| Op::Exit { mm }),
    ]
}

/// What user space sees at a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Anon(u64),
    Shmem { obj: usize, off: u64 },
}

struct Harness {
    k: Kernel,
    mms: Vec<Arc<MmStruct>>,
    /// Per mm (parallel to `mms`): page → slot.
    model: Vec<BTreeMap<u64, Slot>>,
    /// Contents of each shmem object: offset → value (absent: 0).
    objs: Vec<BTreeMap<u64, u64>>,
}

fn addr(page: u64) -> u64 {
    BASE + page * PG
}

impl Harness {
    fn new(proto: Protocol) -> Self {
        let k = Kernel::native(Geometry::X86_64, proto, 1, 1 << 14);
        let mm = mm_alloc(k.ctx(0)).expect("mm_alloc");
        Harness {
            k,
            mms: vec![mm],
            model: vec![BTreeMap::new()],
            objs: Vec::new(),
        }
    }

    fn value(&self, m: usize, page: u64) -> Option<u64> {
        self.model[m].get(&page).map(|s| match *s {
            Slot::Anon(v) => v,
            Slot::Shmem { obj, off } => self.objs[obj].get(&off).copied().unwrap_or(0),
        })
    }

    fn resolve(&self, m: usize, at: &Pick) -> u64 {
        match at {
            Pick::Mapped(i) if !self.model[m].is_empty() => *self.model[m]
                .keys()
                .nth(*i as usize % self.model[m].len())
                .unwrap(),
            Pick::Mapped(i) => u64::from(*i) % WINDOW,
            Pick::Any(p) => *p,
        }
    }

    fn store(&mut self, m: usize, page: u64, val: u64) -> Result<(), TestCaseError> {
        let r = user_store(self.k.ctx(0), &self.mms[m], addr(page), val);
        match self.model[m].get_mut(&page) {
            Some(slot) => {
                prop_assert_eq!(r, Ok(()), "store to mapped page {} of mm {}", page, m);
                match slot {
                    Slot::Anon(v) => *v = val,
                    Slot::Shmem { obj, off } => {
                        self.objs[*obj].insert(*off, val);
                    }
                }
            }
            None => prop_assert_eq!(r, Err(Errno::Sigsegv), "store to unmapped page {}", page),
        }
        Ok(())
    }

    fn load(&self, m: usize, page: u64) -> Result<(), TestCaseError> {
        let r = user_load(self.k.ctx(0), &self.mms[m], addr(page));
        match self.value(m, page) {
            Some(v) => prop_assert_eq!(r, Ok(v), "load of page {} of mm {}", page, m),
            None => prop_assert_eq!(r, Err(Errno::Sigsegv), "load of unmapped page {}", page),
        }
        Ok(())
    }

    fn run(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let cx = self.k.ctx(0);
        match op {
            Op::Mmap {
                mm,
                start,
                len,
                shmem,
                huge,
            } => {
                let m = *mm % self.mms.len();
                let len = (*len).min(WINDOW - start);
                let overlap = self.model[m].range(*start..start + len).next().is_some();
                let backing = if *shmem {
                    MapBacking::ShmemShared
                } else {
                    MapBacking::AnonPrivate
                };
                let r = do_mmap(
                    cx,
                    &self.mms[m],
                    addr(*start),
                    len * PG,
                    backing,
                    true,
                    *huge,
                );
                if overlap {
                    prop_assert_eq!(r, Err(Errno::Eexist));
                } else {
                    prop_assert_eq!(r, Ok(addr(*start)));
                    let obj = self.objs.len();
                    if *shmem {
                        self.objs.push(BTreeMap::new());
                    }
                    for p in *start..start + len {
                        let slot = if *shmem {
                            Slot::Shmem {
                                obj,
                                off: p - start,
                            }
                        } else {
                            Slot::Anon(0)
                        };
                        self.model[m].insert(p, slot);
                    }
                }
            }
            Op::Munmap { mm, at, len } => {
                let m = *mm % self.mms.len();
                let p = self.resolve(m, at);
                prop_assert_eq!(do_munmap(cx, &self.mms[m], addr(p), len * PG), Ok(()));
                let gone: Vec<u64> = self.model[m].range(p..p + len).map(|(k, _)| *k).collect();
                for g in gone {
                    self.model[m].remove(&g);
                }
            }
            Op::Dontneed { mm, at, len } => {
                let m = *mm % self.mms.len();
                let p = self.resolve(m, at);
                let r = madvise_dontneed(cx, &self.mms[m], addr(p), len * PG);
                let hole = (p..p + len).any(|q| !self.model[m].contains_key(&q));
                prop_assert_eq!(r, if hole { Err(Errno::Enomem) } else { Ok(()) });
                for (_, slot) in self.model[m].range_mut(p..p + len) {
                    if let Slot::Anon(v) = slot {
                        *v = 0;
                    }
                }
            }
            Op::Store { mm, at, val } => {
                let m = *mm % self.mms.len();
                let p = self.resolve(m, at);
                self.store(m, p, *val)?;
            }
            Op::Load { mm, at } => {
                let m = *mm % self.mms.len();
                let p = self.resolve(m, at);
                self.load(m, p)?;
            }
            Op::Fork { mm, store } => {
                if self.mms.len() >= MAX_MMS {
                    return Ok(());
                }
                let m = *mm % self.mms.len();
                let child = dup_mmap(cx, &self.mms[m]);
                prop_assert!(child.is_ok(), "fork: {:?}", child.as_ref().err());
                self.mms.push(child.unwrap());
                self.model.push(self.model[m].clone());
                if let Some((at, val)) = store {
                    let c = self.mms.len() - 1;
                    let p = self.resolve(c, at);
                    self.store(c, p, *val)?;
                    // The parent is unaffected unless the page is shared.
                    if self.model[m].contains_key(&p) {
                        self.load(m, p)?;
                    }
                }
            }
            Op::Exit { mm } => {
                if self.mms.len() < 2 {
                    return Ok(());
                }
                let m = *mm % self.mms.len();
                let victim = self.mms.remove(m);
                self.model.remove(m);
                exit_mmap(cx, &victim);
                mmdrop(cx, &victim);
            }
        }
        Ok(())
    }

    fn check(&self, what: &dyn std::fmt::Debug) -> Result<(), TestCaseError> {
        let errs = check_quiescent(&self.k);
        prop_assert!(errs.is_empty(), "after {:?}: {:?}", what, errs);
        prop_assert!(
            !self.k.machine.violated(),
            "after {:?}: {:#?}",
            what,
            self.k.machine.violations()
        );
        Ok(())
    }

    /// Load every page of the window in every mm.
    fn sweep(&self) -> Result<(), TestCaseError> {
        for m in 0..self.mms.len() {
            for p in 0..WINDOW {
                self.load(m, p)?;
            }
        }
        self.check(&"the final sweep")
    }

    /// Tear everything down and check nothing leaked.
    fn teardown(mut self) -> Result<(), TestCaseError> {
        let cx = self.k.ctx(0);
        for mm in &self.mms {
            exit_mmap(cx, mm);
        }
        for mm in &self.mms {
            mmdrop(cx, mm);
        }
        self.mms.clear();
        self.check(&"teardown")?;
        prop_assert!(self.k.mms().is_empty());
        prop_assert!(self.k.files().is_empty(), "every shmem file was evicted");
        let huge_zero = self
            .k
            .huge_zero_peek()
            .map_or(0, |_| 1usize << Geometry::X86_64.pmd_order());
        prop_assert_eq!(
            self.k.machine.frames.nr_used(),
            1 + huge_zero,
            "only the zero page (and the huge zero folio) may remain"
        );
        Ok(())
    }
}

fn run_case(ops: &[Op]) -> Result<(), TestCaseError> {
    run_case_with(Protocol::default(), ops)
}

fn run_case_with(proto: Protocol, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut h = Harness::new(proto);
    for op in ops {
        h.run(op)?;
        h.check(op)?;
    }
    h.sweep()?;
    h.teardown()
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn ops_match_the_abstract_model(ops in proptest::collection::vec(op(false), 1..40)) {
        run_case(&ops)?;
    }
}

fn protocol() -> impl Strategy<Value = Protocol> {
    use mmcheck_kernel::protocol::TableFree;
    let tf = prop_oneof![
        Just(TableFree::Rcu),
        Just(TableFree::Ipi),
        Just(TableFree::Immediate)
    ];
    (
        any::<bool>(),
        tf.clone(),
        tf,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![Just(1u64), Just(16)],
        prop_oneof![Just(1usize), Just(2), Just(16), Just(512)],
    )
        .prop_map(
            |(
                pt_reclaim,
                table_free,
                pt_reclaim_free,
                madv_vma_lock,
                per_vma_lock,
                split_ptlocks,
                zero_page,
                huge_zero_page,
                fault_around_pages,
                gather_batch,
            )| Protocol {
                pt_reclaim,
                table_free,
                pt_reclaim_free,
                madv_vma_lock,
                per_vma_lock,
                split_ptlocks,
                zero_page,
                huge_zero_page,
                fault_around_pages,
                gather_batch,
                ..Protocol::default()
            },
        )
}

proptest! {
    #![proptest_config(config(64))]

    /// Older and stressed protocols (no PT reclaim, IPI or immediate table freeing, mmap-locked
    /// faults and MADV_DONTNEED, one big lock, no zero pages, gather batches that force PT
    /// reclaim's slow path) must not change what user space sees.
    #[test]
    fn ops_under_protocol_variants(proto in protocol(), ops in proptest::collection::vec(op(true), 1..40)) {
        run_case_with(proto, &ops)?;
    }
}

proptest! {
    #![proptest_config(config(32))]

    /// The same with `MADV_HUGEPAGE` mappings: huge PMDs, the huge zero folio, splits on partial
    /// zaps and COW of huge PMDs after fork.
    #[test]
    fn ops_with_thp_match_the_abstract_model(ops in proptest::collection::vec(op(true), 1..40)) {
        run_case(&ops)?;
    }
}

/// A fixed sequence through every op kind, so a regression shows up without shrinking.
#[test]
fn a_fixed_sequence_matches_the_abstract_model() {
    let ops = vec![
        Op::Mmap {
            mm: 0,
            start: 0,
            len: 512,
            shmem: false,
            huge: false,
        },
        Op::Mmap {
            mm: 0,
            start: 512,
            len: 64,
            shmem: true,
            huge: false,
        },
        Op::Mmap {
            mm: 0,
            start: 600,
            len: 8,
            shmem: false,
            huge: false,
        },
        Op::Mmap {
            mm: 0,
            start: 604,
            len: 8,
            shmem: false,
            huge: false,
        },
        Op::Store {
            mm: 0,
            at: Pick::Any(3),
            val: 33,
        },
        Op::Store {
            mm: 0,
            at: Pick::Any(520),
            val: 520,
        },
        Op::Fork {
            mm: 0,
            store: Some((Pick::Any(3), 44)),
        },
        Op::Load {
            mm: 0,
            at: Pick::Any(3),
        },
        Op::Store {
            mm: 1,
            at: Pick::Any(521),
            val: 521,
        },
        Op::Load {
            mm: 0,
            at: Pick::Any(521),
        },
        Op::Dontneed {
            mm: 0,
            at: Pick::Any(0),
            len: 600,
        },
        Op::Load {
            mm: 0,
            at: Pick::Any(520),
        },
        Op::Load {
            mm: 1,
            at: Pick::Any(3),
        },
        Op::Munmap {
            mm: 0,
            at: Pick::Any(2),
            len: 520,
        },
        Op::Load {
            mm: 0,
            at: Pick::Any(1),
        },
        Op::Load {
            mm: 0,
            at: Pick::Any(530),
        },
        Op::Exit { mm: 0 },
        Op::Load {
            mm: 0,
            at: Pick::Any(521),
        },
    ];
    run_case(&ops).unwrap();
}
