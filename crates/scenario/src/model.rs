//! Running a [`Scenario`] under the explorer: each execution builds a fresh kernel on the
//! explorer's backend, applies the setup, runs each thread program on its CPU and the RCU callback
//! thread on the last CPU, and finishes with the quiescent invariants, teardown and the leak check.

use crate::{Backing, Op, Scenario, SetupOp, WalkUse};
use mmcheck_explore::{Finish, Model};
use mmcheck_kernel::arch::fault::{user_load, user_store};
use mmcheck_kernel::check::check_quiescent;
use mmcheck_kernel::mm::folio;
use mmcheck_kernel::mm::gup::{get_user_page_fast, get_user_page_fast_only, gup_put};
use mmcheck_kernel::mm::madvise::madvise_dontneed;
use mmcheck_kernel::mm::memory::do_user_addr_fault;
use mmcheck_kernel::mm::memory::lock_vma_under_rcu;
use mmcheck_kernel::mm::pagewalk::{folio_walk_end, folio_walk_start};
use mmcheck_kernel::mm::pgtable::{pmd_off, pte_offset_map};
use mmcheck_kernel::mm::types::MmStruct;
use mmcheck_kernel::mm::vma::{
    do_mmap, do_munmap, exit_mmap, madvise_hugepage, mm_alloc, mmdrop, MapBacking,
};
use mmcheck_kernel::protocol::FolioWalkLock;
use mmcheck_kernel::{Ctx, Kernel};
use mmcheck_platform::Ghost;
use mmcheck_platform::{Access, Backend, Machine, MachineConfig, Obj, Violation, ViolationKind};
use std::collections::BTreeSet;
use std::fmt::Write;
use std::sync::Arc;

/// A scenario as an explorer model.
pub struct KernelModel {
    pub scenario: Scenario,
    /// Pages only ever mapped anonymous-private (MADV_DONTNEED zeroes them).
    anon_pages: std::collections::BTreeSet<u64>,
    /// Addresses whose user-data history two or more threads write (see [`KernelModel::hist_point`]).
    hist_addrs: std::collections::BTreeSet<u64>,
    /// Pages whose data the oracle does not follow: mapped with both backings, or unmapped or
    /// moved by some operation.
    untracked: std::collections::BTreeSet<u64>,
    /// Strict mode (see `mmcheck_explore::Model::strict`).
    strict: bool,
    /// The scenario's reach patterns (see [`Scenario::reach_spec`]).
    reach: mmcheck_explore::reach::Spec,
    /// Every address the scenario stores to, in order: the final state lists them.
    locations: std::collections::BTreeSet<u64>,
    /// `init` leaves a migration in flight (`migrate ADDR unmap`): its move pass runs on a
    /// thread of its own, after the RCU thread (see [`KernelModel::migration_cpu`]).
    migration: bool,
    /// The mutant this model runs or the site recording it feeds, set on each machine once the
    /// set-up is done (the set-up runs on one CPU, unmutated).
    mutation: Option<Arc<mmcheck_platform::Mutation>>,
}

/// One instance: the kernel, its mm, and what each thread observed.
pub struct Instance {
    pub kernel: Kernel,
    pub mm: Arc<MmStruct>,
    seen: Vec<Ghost<Vec<String>>>,
    /// Children of `fork` operations, alive to the end of the execution.
    children: Ghost<Vec<Arc<MmStruct>>>,
    setup_error: Option<String>,
    /// Logical clock for operation boundaries (one coroutine runs at a time, so its order is the
    /// real-time order).
    clock: Ghost<u64>,
    history: Ghost<Vec<crate::linearize::HOp>>,
    /// The bit of each address of `hist_addrs` in an [`Obj::Hist`] mask (its index, modulo 64:
    /// beyond 64 addresses two share a bit, which only adds dependencies).
    hist_bits: std::collections::BTreeMap<u64, u32>,
    /// Word values after the setup, by page address.
    initial: std::collections::BTreeMap<u64, u64>,
    /// Anonymous pages `init` left lazyfree (MADV_FREE with no store since).
    initial_lazy: std::collections::BTreeSet<u64>,
    /// Folios `init` left under migration (locked, isolated, replaced by migration entries).
    inflight: Vec<mmcheck_platform::FrameRef>,
}

/// The folios under migration (isolated heads), peeked after the setup.
fn isolated_folios(k: &Kernel) -> Vec<mmcheck_platform::FrameRef> {
    let frames = &k.machine.frames;
    (1..frames.len() as u32)
        .filter(|&pfn| {
            let page = k.machine.page_peek(pfn);
            frames.kind(pfn) == mmcheck_platform::FrameKind::Data
                && page.get(mmcheck_platform::PageField::Head) == pfn as u64
                && page.get(mmcheck_platform::PageField::Flags)
                    & mmcheck_kernel::mm::folio::PG_ISOLATED
                    != 0
        })
        .map(|pfn| frames.current(pfn))
        .collect()
}

/// The kernel's backing for a scenario's; `SameFile` looks up the file mapped at `of` (set-up
/// only, on CPU 0 before the threads start: the user's file descriptor).
fn backing(cx: Ctx<'_>, mm: &MmStruct, b: Backing) -> Result<MapBacking, mmcheck_kernel::Errno> {
    Ok(match b {
        Backing::AnonPrivate => MapBacking::AnonPrivate,
        Backing::ShmemShared => MapBacking::ShmemShared,
        Backing::ShmemPrivate => MapBacking::ShmemPrivate,
        Backing::SameFile { of, private } => {
            let vma = mm.vma_lookup(cx, of).ok_or(mmcheck_kernel::Errno::Einval)?;
            let file = vma.file.clone().ok_or(mmcheck_kernel::Errno::Einval)?;
            MapBacking::File {
                file,
                pgoff: vma.linear_page_index(cx, of),
                shared: !private,
            }
        }
    })
}

impl KernelModel {
    pub fn new(scenario: Scenario) -> Self {
        use std::collections::BTreeSet;
        /// What an operation does to the data the oracle follows.
        enum Effect {
            Map(u64, u64, Backing),
            Untrack(u64, u64),
            /// A growsdown stack: anonymous, and so is every page below it down to the mapping
            /// below, which a fault there maps by expanding the stack.
            Stack(u64, u64),
        }
        let ps = scenario.geometry.page_size();
        let mut effects = Vec::new();
        for op in &scenario.setup {
            match *op {
                SetupOp::Mmap {
                    addr,
                    pages,
                    backing,
                    ..
                } => effects.push(Effect::Map(addr, pages, backing)),
                SetupOp::MmapStack { addr, pages } => effects.push(Effect::Stack(addr, pages)),
                SetupOp::Munmap { addr, pages } => effects.push(Effect::Untrack(addr, pages)),
                SetupOp::Mremap {
                    addr,
                    pages,
                    new_addr,
                } => {
                    effects.push(Effect::Untrack(addr, pages));
                    effects.push(Effect::Untrack(new_addr, pages));
                }
                _ => {}
            }
        }
        for op in scenario.threads.iter().flatten() {
            match *op {
                Op::Truncate { addr } => {
                    // The file's tail, from this page to the end of the mapping holding it.
                    let end = effects
                        .iter()
                        .filter_map(|e| match *e {
                            Effect::Map(a, p, _) if a <= addr && addr < a + p * ps => {
                                Some(a + p * ps)
                            }
                            _ => None,
                        })
                        .max()
                        .unwrap_or(addr + ps);
                    effects.push(Effect::Untrack(addr, (end - addr) / ps))
                }
                Op::Mmap {
                    addr,
                    pages,
                    backing,
                } => effects.push(Effect::Map(addr, pages, backing)),
                Op::MmapStack { addr, pages } => effects.push(Effect::Stack(addr, pages)),
                Op::Munmap { addr, pages } | Op::PunchHole { addr, pages } => {
                    effects.push(Effect::Untrack(addr, pages))
                }
                Op::Mremap {
                    addr,
                    pages,
                    new_addr,
                    ..
                } => {
                    effects.push(Effect::Untrack(addr, pages));
                    effects.push(Effect::Untrack(new_addr, pages));
                }
                // The data oracle does not follow pages UFFDIO_MOVE remaps (docs/fidelity.md).
                Op::UffdMove {
                    addr, pages, to, ..
                } => {
                    effects.push(Effect::Untrack(addr, pages));
                    effects.push(Effect::Untrack(to, pages));
                }
                _ => {}
            }
        }
        // A file mapped twice (`of`) is not one register per address: both mappings go
        // untracked. A private mapping of a file no one else maps reads zeroes until written,
        // and again after MADV_DONTNEED drops its COW copies: the anonymous rule.
        let ofs: Vec<u64> = effects
            .iter()
            .filter_map(|e| match *e {
                Effect::Map(_, _, Backing::SameFile { of, .. }) => Some(of),
                _ => None,
            })
            .collect();
        let mut shared_files = Vec::new();
        for e in &effects {
            if let Effect::Map(a, p, _) = *e {
                if ofs.iter().any(|&o| a <= o && o < a + p * ps) {
                    shared_files.push(Effect::Untrack(a, p));
                }
            }
        }
        effects.extend(shared_files);
        // A stack's expansion window: down to the end of the highest mapping below it.
        let stacks: Vec<Effect> = effects
            .iter()
            .filter_map(|e| match *e {
                Effect::Stack(addr, pages) => {
                    let below = effects
                        .iter()
                        .filter_map(|m| match *m {
                            Effect::Map(a, p, _) if a + p * ps <= addr => Some(a + p * ps),
                            Effect::Stack(a, p) if a + p * ps <= addr => Some(a + p * ps),
                            _ => None,
                        })
                        .max()
                        .unwrap_or(0)
                        .max(addr.saturating_sub((1 << 16) * ps));
                    Some(Effect::Map(
                        below,
                        (addr - below) / ps + pages,
                        Backing::AnonPrivate,
                    ))
                }
                _ => None,
            })
            .collect();
        effects.extend(stacks);
        let (mut anon, mut shmem, mut untracked) =
            (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for e in effects {
            let (addr, pages, set) = match e {
                Effect::Map(a, p, Backing::AnonPrivate | Backing::ShmemPrivate) => {
                    (a, p, &mut anon)
                }
                Effect::Map(a, p, Backing::ShmemShared) => (a, p, &mut shmem),
                Effect::Map(a, p, Backing::SameFile { .. }) | Effect::Untrack(a, p) => {
                    (a, p, &mut untracked)
                }
                Effect::Stack(..) => continue, // as the anonymous mapping added above
            };
            set.extend((0..pages.min(1 << 16)).map(|p| addr + p * ps));
        }
        untracked.extend(anon.intersection(&shmem).copied());
        let anon_pages = anon.difference(&untracked).copied().collect();
        let reach = scenario.reach_spec().0;
        let setup_stores = scenario.setup.iter().filter_map(|op| match *op {
            SetupOp::Store { addr, .. } => Some(addr),
            _ => None,
        });
        let thread_stores = scenario
            .threads
            .iter()
            .flatten()
            .filter_map(|op| match *op {
                Op::Store { addr, .. } => Some(addr),
                _ => None,
            });
        let locations = setup_stores.chain(thread_stores).collect();
        // Addresses in the history of two or more threads.
        let mut seen_by: std::collections::BTreeMap<u64, usize> = Default::default();
        for ops in &scenario.threads {
            let mine: BTreeSet<u64> = ops
                .iter()
                .flat_map(|op| hist_addrs_of(op, ps, &anon_pages))
                .filter(|a| !untracked.contains(a))
                .collect();
            for a in mine {
                *seen_by.entry(a).or_default() += 1;
            }
        }
        let hist_addrs = seen_by
            .into_iter()
            .filter(|&(_, n)| n >= 2)
            .map(|(a, _)| a)
            .collect();
        let migration = scenario.setup.iter().any(|op| {
            matches!(
                op,
                SetupOp::Migrate {
                    unmap_only: true,
                    ..
                }
            )
        });
        let mutation = scenario.mutate.clone().map(|site| {
            Arc::new(mmcheck_platform::Mutation::new(
                Some(site),
                false,
                mmcheck_kernel::LOCK_HELPERS,
            ))
        });
        KernelModel {
            scenario,
            anon_pages,
            hist_addrs,
            untracked,
            strict: false,
            migration,
            reach,
            locations,
            mutation,
        }
    }

    /// Record the mutation sites every execution reaches (see [`KernelModel::mutation`]).
    pub fn record_sites(mut self) -> Self {
        self.mutation = Some(Arc::new(mmcheck_platform::Mutation::new(
            self.scenario.mutate.clone(),
            true,
            mmcheck_kernel::LOCK_HELPERS,
        )));
        self
    }

    /// The mutant this model runs, and the sites recorded so far with
    /// [`KernelModel::record_sites`].
    pub fn mutation(&self) -> Option<&Arc<mmcheck_platform::Mutation>> {
        self.mutation.as_ref()
    }

    fn rcu_cpu(&self) -> usize {
        self.scenario.threads.len()
    }

    /// The CPU finishing the migrations `init` left in flight, if it did: the migration runs on
    /// concurrently with the threads, as another CPU's `migrate_pages` would (a thread that
    /// faults on its entries waits for it, in `migration_entry_wait`).
    fn migration_cpu(&self) -> Option<usize> {
        self.migration.then(|| self.scenario.threads.len() + 1)
    }

    /// The CPU of the store buffers' flusher (`sb`), under a weak memory model only (see
    /// `mmcheck_platform::memory`).
    fn flusher_cpu(&self) -> Option<usize> {
        (self.scenario.protocol.memory != mmcheck_platform::MemoryModel::Sc)
            .then(|| self.scenario.threads.len() + 1 + usize::from(self.migration))
    }

    fn run_op(&self, inst: &Instance, cx: Ctx<'_>, mm: &MmStruct, op: &Op, seen: &mut Vec<String>) {
        use crate::linearize::{HKind, HOp};
        let ps = self.scenario.geometry.page_size();
        self.hist_point(inst, cx, op, Access::HistInv);
        let inv = inst.clock.record(|c| {
            *c += 1;
            *c - 1
        });
        let record = |addr: u64, kind: HKind| {
            self.hist_point(inst, cx, op, Access::HistResp);
            let resp = inst.clock.record(|c| {
                *c += 1;
                *c - 1
            });
            inst.history.record(|h| {
                h.push(HOp {
                    thread: cx.cpu.id,
                    addr,
                    kind,
                    inv,
                    resp,
                })
            });
        };
        // MADV_DONTNEED and MADV_FREE: one history entry per anonymous page of the range.
        let record_anon_range = |addr: u64, pages: u64, kind: HKind| {
            self.hist_point(inst, cx, op, Access::HistResp);
            let resp = inst.clock.record(|c| {
                *c += 1;
                *c - 1
            });
            inst.history.record(|h| {
                for p in 0..pages {
                    let a = addr + p * ps;
                    if self.anon_pages.contains(&a) {
                        h.push(HOp {
                            thread: cx.cpu.id,
                            addr: a,
                            kind,
                            inv,
                            resp,
                        });
                    }
                }
            });
        };
        let r = match *op {
            Op::Load { addr } => user_load(cx, mm, addr).map(|v| {
                record(addr, HKind::Load(v));
                seen.push(format!("{addr:#x}={v}"))
            }),
            Op::Store { addr, value } => {
                user_store(cx, mm, addr, value).map(|_| record(addr, HKind::Store(value)))
            }
            Op::Fault { addr, write } => do_user_addr_fault(cx, mm, addr, write),
            Op::Mmap {
                addr,
                pages,
                backing: b,
            } => backing(cx, mm, b)
                .and_then(|b| do_mmap(cx, mm, addr, pages * ps, b, true, false))
                .map(|_| ()),
            Op::Munmap { addr, pages } => do_munmap(cx, mm, addr, pages * ps),
            // `ENOMEM` (part of the range unmapped): the mapped parts were acted on all the same
            // (madvise_walk_vmas goes on past a hole).
            Op::DontNeed { addr, pages } => {
                let r = madvise_dontneed(cx, mm, addr, pages * ps);
                if matches!(r, Ok(()) | Err(mmcheck_kernel::Errno::Enomem)) {
                    // Anonymous pages read back as zero afterwards; shmem keeps its data.
                    record_anon_range(addr, pages, HKind::Zero);
                }
                r
            }
            Op::MadvFree { addr, pages } => {
                let r = mmcheck_kernel::mm::madvise::madvise_free(cx, mm, addr, pages * ps);
                if matches!(r, Ok(()) | Err(mmcheck_kernel::Errno::Enomem)) {
                    // Until the next store, an anonymous page reads back its old data or zero.
                    record_anon_range(addr, pages, HKind::Free);
                }
                r
            }
            Op::MadvPageout { addr, pages } => {
                mmcheck_kernel::mm::madvise::madvise_pageout(cx, mm, addr, pages * ps)
            }
            Op::RcuWalk { addr } => {
                let _f = cx.cpu.enter("rcu_pte_walker");
                // The walkers this stands for (filemap_fault_recheck_pte_none, pte_range_none)
                // run in a fault, with a VMA covering the address held by the mmap read lock (or
                // its VMA lock): the upper tables stay. Without a VMA there is nothing to walk.
                let r = mm.mmap_lock.read_lock(cx.cpu);
                if mm.vma_lookup(cx, addr).is_some() {
                    if let Some(pmd) = pmd_off(cx, mm, addr) {
                        if let Some(map) = pte_offset_map(cx, pmd) {
                            let v = map.pte(cx.geo().index(addr, 1)).get(cx);
                            seen.push(format!(
                                "walk {addr:#x}={}",
                                if v.present() { "present" } else { "none" }
                            ));
                        }
                    }
                }
                drop(r);
                Ok(())
            }
            Op::FolioWalk { addr, use_ } => {
                // The data a walker's caller reads is a load for the data oracle.
                if let Some(v) = self.folio_walk(cx, mm, addr, use_, seen) {
                    record(addr, HKind::Load(v));
                }
                Ok(())
            }
            Op::Mremap {
                addr,
                pages,
                new_addr,
                dontunmap,
            } => mmcheck_kernel::mm::mremap::do_mremap_flags(
                cx,
                mm,
                addr,
                pages * ps,
                new_addr,
                dontunmap,
            )
            .map(|_| ()),
            Op::TryToUnmap { addr } => {
                let r = mmcheck_kernel::mm::khugepaged_file::try_to_unmap_at(cx, mm, addr);
                seen.push(format!("try_to_unmap {addr:#x}: {r}"));
                Ok(())
            }
            Op::CollapsePteMappedThp { addr } => {
                let r = mmcheck_kernel::mm::khugepaged_file::collapse_pte_mapped_thp(cx, mm, addr);
                seen.push(format!("collapse_pte_mapped_thp {addr:#x}: {r}"));
                Ok(())
            }
            Op::Check { addr, what } => {
                self.check(cx, mm, addr, what);
                Ok(())
            }
            Op::SplitHugePage { addr, new_order } => {
                let ok = mmcheck_kernel::mm::split_huge_page::split_huge_pages_pid(
                    cx, mm, addr, new_order,
                );
                seen.push(format!(
                    "split_huge_page {addr:#x}/{new_order}: {}",
                    if ok { "split" } else { "not split" }
                ));
                Ok(())
            }
            Op::Retract { addr } => {
                let r = mmcheck_kernel::mm::khugepaged_file::khugepaged_scan_file(cx, mm, addr);
                seen.push(format!("retract {addr:#x}: {r:?}"));
                Ok(())
            }
            Op::PunchHole { addr, pages } => {
                let target = mm
                    .vma_lookup(cx, addr)
                    .and_then(|v| v.file.clone().map(|f| (f, v.linear_page_index(cx, addr))));
                match target {
                    Some((file, first)) => {
                        mmcheck_kernel::mm::shmem::shmem_punch_hole(
                            cx,
                            &file,
                            first,
                            first + pages - 1,
                        );
                        seen.push(format!("punch_hole {addr:#x}+{pages}: ok"));
                    }
                    None => seen.push(format!("punch_hole {addr:#x}+{pages}: ENODEV")),
                }
                Ok(())
            }
            Op::Fork => {
                match mmcheck_kernel::mm::fork::dup_mmap(cx, mm) {
                    Ok(child) => {
                        inst.children.record(|c| c.push(child));
                        seen.push("fork: ok".into());
                    }
                    Err(e) => seen.push(format!("fork: {e:?}")),
                }
                Ok(())
            }
            Op::Mprotect { addr, pages, write } => {
                let end = addr + pages * cx.geo().page_size();
                let r = mmcheck_kernel::mm::mprotect::do_mprotect(cx, mm, addr, end, write);
                let prot = if write { "rw" } else { "r" };
                seen.push(format!("mprotect {addr:#x}+{pages} {prot}: {r:?}"));
                Ok(())
            }
            Op::UffdRegister {
                addr,
                pages,
                missing,
                wp,
            } => {
                let end = addr + pages * ps;
                let r = mmcheck_kernel::mm::userfaultfd::userfaultfd_register(
                    cx,
                    mm,
                    addr,
                    end,
                    uffd_mode(missing, wp),
                );
                seen.push(format!("uffd_register {addr:#x}+{pages}: {r:?}"));
                Ok(())
            }
            Op::UffdCopy { addr, value } => {
                let r = mmcheck_kernel::mm::userfaultfd::mfill_atomic_copy(cx, mm, addr, value);
                seen.push(format!("uffd_copy {addr:#x}: {r:?}"));
                if r.is_ok() {
                    record(addr, HKind::Store(value));
                }
                Ok(())
            }
            Op::MmapStack { addr, pages } => {
                mmcheck_kernel::mm::stack::do_mmap_stack(cx, mm, addr, pages * ps).map(|_| ())
            }
            Op::UffdWp { addr, pages } => {
                let end = addr + pages * ps;
                let r =
                    mmcheck_kernel::mm::userfaultfd::mwriteprotect_range(cx, mm, addr, end, true);
                seen.push(format!("uffd_wp {addr:#x}+{pages}: {r:?}"));
                Ok(())
            }
            Op::UffdMove {
                addr,
                pages,
                to,
                allow_src_holes,
            } => {
                use mmcheck_kernel::mm::userfaultfd_move as mv;
                let mode = if allow_src_holes {
                    mv::UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES
                } else {
                    0
                };
                let r = mv::move_pages(cx, mm, to, addr, pages * ps, mode);
                seen.push(format!("uffd_move {addr:#x}+{pages} -> {to:#x}: {r:?}"));
                Ok(())
            }
            Op::UffdUnprotect { addr, pages } => {
                let end = addr + pages * ps;
                let r =
                    mmcheck_kernel::mm::userfaultfd::mwriteprotect_range(cx, mm, addr, end, false);
                seen.push(format!("uffd_unprotect {addr:#x}+{pages}: {r:?}"));
                Ok(())
            }
            Op::UffdUnregister { addr, pages } => {
                let end = addr + pages * ps;
                let r = mmcheck_kernel::mm::userfaultfd::userfaultfd_unregister(cx, mm, addr, end);
                seen.push(format!("uffd_unregister {addr:#x}+{pages}: {r:?}"));
                Ok(())
            }
            Op::NumaHint { addr, pages } => {
                let end = addr + pages * cx.geo().page_size();
                let n = mmcheck_kernel::mm::mprotect::task_numa_work(cx, mm, addr, end);
                seen.push(format!("numa_hint {addr:#x}+{pages}: {n}"));
                Ok(())
            }
            Op::ChildExit => {
                match inst.children.record(|c| c.pop()) {
                    Some(child) => {
                        exit_mmap(cx, &child);
                        mmdrop(cx, &child);
                        seen.push("child_exit: ok".into());
                    }
                    None => seen.push("child_exit: no child".into()),
                }
                Ok(())
            }
            Op::Truncate { addr } => {
                let target = mm
                    .vma_lookup(cx, addr)
                    .and_then(|v| v.file.clone().map(|f| (f, v.linear_page_index(cx, addr))));
                match target {
                    Some((file, size)) => {
                        mmcheck_kernel::mm::shmem::shmem_setattr_truncate(cx, &file, size);
                        seen.push(format!("truncate {addr:#x}: ok"));
                    }
                    None => seen.push(format!("truncate {addr:#x}: EINVAL")),
                }
                Ok(())
            }
            Op::RmapWalk { addr } => {
                let n = mmcheck_kernel::mm::khugepaged_file::folio_referenced_at(cx, mm, addr);
                seen.push(format!("referenced {addr:#x}: {n}"));
                Ok(())
            }
            Op::Collapse {
                addr,
                order,
                khugepaged,
            } => {
                let caller = if khugepaged {
                    mmcheck_kernel::mm::khugepaged::CollapseCaller::Khugepaged
                } else {
                    mmcheck_kernel::mm::khugepaged::CollapseCaller::Madvise
                };
                let r = mmcheck_kernel::mm::khugepaged::collapse_scan(cx, mm, addr, order, caller);
                seen.push(format!("collapse {addr:#x}/{order}: {r:?}"));
                Ok(())
            }
            Op::Migrate { addr, unmap_only } => {
                let moved = if unmap_only {
                    mmcheck_kernel::mm::migrate::migrate_folio_unmap_at(cx, mm, addr)
                } else {
                    mmcheck_kernel::mm::migrate::migrate_page_at(cx, mm, addr)
                };
                seen.push(format!(
                    "migrate {addr:#x}: {}",
                    if moved { "moved" } else { "kept" }
                ));
                Ok(())
            }
            Op::GupFast {
                addr,
                write,
                pin,
                value,
                fast_only,
            } => if fast_only {
                get_user_page_fast_only(cx, mm, addr, write, pin)
            } else {
                get_user_page_fast(cx, mm, addr, write, pin)
            }
            .map(|p| {
                let kind = if write {
                    cx.cpu.data_write(p.page, value);
                    mmcheck_kernel::mm::gup::gup_put_dirty(cx, p);
                    HKind::Store(value)
                } else {
                    let v = cx.cpu.data_read(p.page);
                    seen.push(format!("gup {addr:#x}={v}"));
                    gup_put(cx, p);
                    HKind::Load(v)
                };
                record(addr, kind);
            }),
        };
        if let Err(e) = r {
            seen.push(format!("{op:?}: {e}"));
        }
    }
}

/// The addresses whose user-data history `op` may extend: the word a load, store, GUP,
/// folio_walk or UFFDIO_COPY accesses; the anonymous pages MADV_DONTNEED zeroes and MADV_FREE
/// makes lazyfree.
fn hist_addrs_of(op: &Op, ps: u64, anon_pages: &BTreeSet<u64>) -> Vec<u64> {
    match *op {
        Op::Load { addr }
        | Op::Store { addr, .. }
        | Op::FolioWalk { addr, .. }
        | Op::GupFast { addr, .. }
        | Op::UffdCopy { addr, .. } => vec![addr],
        Op::DontNeed { addr, pages } | Op::MadvFree { addr, pages } => (0..pages.min(1 << 16))
            .map(|p| addr + p * ps)
            .filter(|a| anon_pages.contains(a))
            .collect(),
        _ => Vec::new(),
    }
}

/// The `vm_flags` a `UFFDIO_REGISTER` mode sets.
fn uffd_mode(missing: bool, wp: bool) -> u64 {
    use mmcheck_kernel::mm::types::VmFlags;
    (if missing { VmFlags::UFFD_MISSING } else { 0 }) | (if wp { VmFlags::UFFD_WP } else { 0 })
}

impl KernelModel {
    /// An operation's invocation or response on addresses other threads' operations use too:
    /// one visible step on the history words of all of them (`HistInv` / `HistResp` on
    /// [`Obj::Hist`]: an invocation conflicts with another thread's response on a shared
    /// address, nothing else does; one step per address made the order of two `MADV_DONTNEED`s
    /// one decision per page, up to 2^8 classes for two 8-page ranges). The linearizability
    /// oracle judges the real-time order of invocations and responses; as ghost bookkeeping
    /// alone that order is
    /// whatever interleaving DPOR happened to run in an equivalence class, and a class can hold
    /// one interleaving where a load starts after a store returned and another where they
    /// overlap. Making the boundaries of conflicting operations dependent makes DPOR explore
    /// both (found by `planted/missing-mthp-range-recheck`, December 2026).
    fn hist_point(&self, inst: &Instance, cx: Ctx<'_>, op: &Op, access: Access) {
        if inst.hist_bits.is_empty() {
            return;
        }
        let ps = self.scenario.geometry.page_size();
        let mask = hist_addrs_of(op, ps, &self.anon_pages)
            .into_iter()
            .filter_map(|a| inst.hist_bits.get(&a))
            .fold(0u64, |m, &bit| m | 1 << (bit % 64));
        if mask != 0 {
            cx.cpu.visible(Obj::Hist(mask), access);
        }
    }

    /// `check`: peek at the live tables and the data.
    fn check(&self, cx: Ctx<'_>, mm: &MmStruct, addr: u64, what: crate::CheckWhat) {
        use crate::CheckWhat;

        // A check in a thread is a racy software walk like any other: announced reads.
        let (pfn, huge) = mmcheck_kernel::mm::pgtable::read_translation(cx, mm, addr);
        let value = pfn.map(|p| cx.cpu.data_read(cx.cpu.frame_ref(p)));
        let ok = match what {
            CheckWhat::Huge => huge,
            CheckWhat::Small => pfn.is_some() && !huge,
            CheckWhat::Unmapped => pfn.is_none(),
            CheckWhat::Value(v) => value == Some(v),
        };
        if !ok {
            let state = match (huge, pfn) {
                (true, Some(p)) => format!("PMD-mapped (pfn {p})"),
                (false, Some(p)) => format!("PTE-mapped (pfn {p}, value {})", value.unwrap_or(0)),
                _ => "not mapped".to_string(),
            };
            cx.cpu.report(
                mmcheck_platform::ViolationKind::Assertion,
                format!("check {addr:#x} {what} failed: {state}"),
            );
        }
    }

    /// A `folio_walk_start` caller: take the lock the protocol says, walk, use, end. Returns the
    /// data word the caller read from the page, if the walk found one.
    fn folio_walk(
        &self,
        cx: Ctx<'_>,
        mm: &MmStruct,
        addr: u64,
        use_: WalkUse,
        seen: &mut Vec<String>,
    ) -> Option<u64> {
        let _f = cx.cpu.enter("folio_walk_caller");
        let how = cx.proto().folio_walk_lock;
        let vma_lock = if how == FolioWalkLock::Mmap {
            None
        } else {
            lock_vma_under_rcu(cx, mm, addr)
        };
        let mmap = if vma_lock.is_none() {
            Some(mm.mmap_lock.read_lock(cx.cpu))
        } else {
            None
        };
        if mm.vma_lookup(cx, addr).is_none() {
            seen.push(format!("walk {addr:#x}: no vma"));
            return None;
        }
        let irq = (how == FolioWalkLock::VmaIrqoff && vma_lock.is_some())
            .then(|| cx.cpu.local_irq_disable());
        let Some(fw) = folio_walk_start(cx, mm, addr) else {
            seen.push(format!("walk {addr:#x}: none"));
            return None;
        };
        let v = match use_ {
            WalkUse::Ptl => {
                // A lockless walk holds a reference, not a lock: the page may be unmapped now.
                if fw.locked() {
                    fw.check_still_mapped(cx, mm);
                }
                let v = cx.cpu.data_read(fw.page);
                seen.push(format!("walk {addr:#x}={v}"));
                folio_walk_end(cx, fw);
                v
            }
            WalkUse::Ref => {
                folio::folio_ref_add(cx, fw.folio, 1);
                let (page, f) = (fw.page, fw.folio);
                folio_walk_end(cx, fw);
                drop(irq);
                let v = cx.cpu.data_read(page);
                seen.push(format!("walk {addr:#x}={v}"));
                folio::folio_put(cx, f);
                v
            }
        };
        drop(mmap);
        drop(vma_lock);
        Some(v)
    }
}

impl KernelModel {
    /// The rest of a restored instance around `copied`, the template's kernel copied in `m`.
    fn restore_with(
        &self,
        template: &Instance,
        copied: mmcheck_kernel::Kernel,
        mut m: mmcheck_platform::Memo,
    ) -> Instance {
        use mmcheck_platform::Snapshot;
        let Instance {
            kernel: _,
            mm,
            seen,
            children,
            setup_error,
            clock,
            history,
            hist_bits,
            initial,
            initial_lazy,
            inflight,
        } = template;
        let copy = Instance {
            kernel: copied,
            mm: mm.snapshot(&mut m),
            seen: seen.snapshot(&mut m),
            children: children.snapshot(&mut m),
            setup_error: setup_error.clone(),
            clock: clock.snapshot(&mut m),
            history: Ghost::new(history.deref(|h| h.clone())),
            hist_bits: hist_bits.clone(),
            initial: initial.clone(),
            initial_lazy: initial_lazy.clone(),
            inflight: inflight.clone(),
        };
        m.finish();
        copy
    }
}

/// The backend of [`KernelModel::setup_error`]'s sequential run of `init`: one CPU, no other
/// thread, so a wait that is not already over would never end (the native backend would spin
/// forever): it unwinds with [`SetupWaits`] instead, without the panic hook's message.
struct SetupCheck;

/// What `init` would have waited for.
struct SetupWaits(mmcheck_platform::Event);

impl Backend for SetupCheck {
    fn visible(&self, _cpu: usize, _ev: mmcheck_platform::Event) {}

    fn block(&self, _cpu: usize, ev: mmcheck_platform::Event, ready: &dyn Fn() -> bool) {
        if !ready() {
            std::panic::resume_unwind(Box::new(SetupWaits(ev)));
        }
    }

    fn violation(&self, _cpu: usize, _v: &Violation) {}
}

impl KernelModel {
    /// Turn strict mode on or off: every touch of shared state must be covered by its step's
    /// announced event.
    /// The error `init` ends in, if any: then the scenario cannot start. One sequential run of
    /// the set-up (it is deterministic: no thread runs yet).
    pub fn setup_error(&self) -> Option<String> {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.build(Box::new(SetupCheck)).setup_error.clone()
        }));
        match r {
            Ok(e) => e,
            Err(p) => match p.downcast::<SetupWaits>() {
                Ok(w) => Some(format!(
                    "init waits on {} and nothing runs during init to end the wait (a folio \
                     `migrate ... unmap` left locked, or its migration entry?)",
                    w.0.obj.describe()
                )),
                Err(p) => std::panic::resume_unwind(p),
            },
        }
    }

    pub fn with_strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }
}

impl Model for KernelModel {
    type Instance = Instance;

    fn strict(&self) -> bool {
        self.strict
    }

    fn build(&self, backend: Box<dyn Backend>) -> Instance {
        let s = &self.scenario;
        let cfg = MachineConfig {
            nr_cpus: self.threads(),
            nr_frames: s.nr_frames,
            entries_per_table: s.geometry.entries(),
            tlb_entries: 8,
        };
        let kernel = Kernel::new(Machine::new(cfg, backend), s.geometry, s.protocol.clone());
        let cx = kernel.ctx(0);
        let mm = mm_alloc(cx).expect("memory for the mm");
        let ps = s.geometry.page_size();
        let mut setup_error = None;
        for op in &s.setup {
            let r = match *op {
                SetupOp::Mmap {
                    addr,
                    pages,
                    backing: b,
                    huge,
                } => backing(cx, &mm, b)
                    .and_then(|b| do_mmap(cx, &mm, addr, pages * ps, b, true, false))
                    .and_then(|_| {
                        if huge {
                            madvise_hugepage(cx, &mm, addr, pages * ps)
                        } else {
                            Ok(())
                        }
                    }),
                SetupOp::Store { addr, value } => user_store(cx, &mm, addr, value),
                SetupOp::Load { addr } => user_load(cx, &mm, addr).map(|_| ()),
                SetupOp::Mremap {
                    addr,
                    pages,
                    new_addr,
                } => mmcheck_kernel::mm::mremap::do_mremap(cx, &mm, addr, pages * ps, new_addr)
                    .map(|_| ()),
                SetupOp::Munmap { addr, pages } => do_munmap(cx, &mm, addr, pages * ps),
                SetupOp::Migrate { addr, unmap_only } => {
                    let moved = if unmap_only {
                        mmcheck_kernel::mm::migrate::migrate_folio_unmap_at(cx, &mm, addr)
                    } else {
                        mmcheck_kernel::mm::migrate::migrate_page_at(cx, &mm, addr)
                    };
                    if moved {
                        Ok(())
                    } else {
                        Err(mmcheck_kernel::Errno::Eagain)
                    }
                }
                SetupOp::MadvFree { addr, pages } => {
                    mmcheck_kernel::mm::madvise::madvise_free(cx, &mm, addr, pages * ps)
                }
                SetupOp::MadvPageout { addr, pages } => {
                    mmcheck_kernel::mm::madvise::madvise_pageout(cx, &mm, addr, pages * ps)
                }
                SetupOp::MmapStack { addr, pages } => {
                    mmcheck_kernel::mm::stack::do_mmap_stack(cx, &mm, addr, pages * ps).map(|_| ())
                }
                SetupOp::UffdRegister {
                    addr,
                    pages,
                    missing,
                    wp,
                } => mmcheck_kernel::mm::userfaultfd::userfaultfd_register(
                    cx,
                    &mm,
                    addr,
                    addr + pages * ps,
                    uffd_mode(missing, wp),
                ),
                SetupOp::Retract { addr } => {
                    let target = mm
                        .vma_lookup(cx, addr)
                        .and_then(|v| v.file.clone().map(|f| (f, v.linear_page_index(cx, addr))));
                    match target {
                        Some((file, index)) => {
                            mmcheck_kernel::mm::khugepaged_file::collapse_file(cx, &file, index)
                                .map_err(|_| mmcheck_kernel::Errno::Einval)
                        }
                        None => Err(mmcheck_kernel::Errno::Einval),
                    }
                }
            };
            if let Err(e) = r {
                setup_error.get_or_insert(format!("setup {op:?}: {e}"));
            }
        }
        // Setup ran on CPU 0: its translations are not the thread's to keep.
        cx.cpu.local_flush_mm(mm.id);
        // Every thread runs in the mm from the start (`current->mm` is loaded, the CPU is in
        // `mm_cpumask`), whether or not it has touched user memory yet.
        for t in 0..s.threads.len() {
            kernel.machine.cpu(t).switch_mm(mm.id);
        }
        cx.cpu.rcu_barrier();
        if let Some(k) = s.spare_frames {
            kernel.machine.frames.keep_lowest_free(k);
        }
        let seen = s.threads.iter().map(|_| Ghost::default()).collect();
        let mut initial = std::collections::BTreeMap::new();
        let mut initial_lazy = std::collections::BTreeSet::new();
        for op in &s.setup {
            match *op {
                SetupOp::Store { addr, value } => {
                    initial.insert(addr, value);
                    initial_lazy.remove(&addr);
                }
                SetupOp::MadvFree { addr, pages } => {
                    let ps = s.geometry.page_size();
                    initial_lazy.extend(
                        (0..pages)
                            .map(|p| addr + p * ps)
                            .filter(|a| self.anon_pages.contains(a)),
                    );
                }
                _ => {}
            }
        }
        let hist_bits = self
            .hist_addrs
            .iter()
            .zip(0..)
            .map(|(&a, i)| (a, i))
            .collect();
        let inflight = isolated_folios(&kernel);
        let mut kernel = kernel;
        kernel.machine.set_mutation(self.mutation.clone());
        if self.flusher_cpu().is_some() {
            // The threads (and the migration finishing `init`'s) buffer their entry stores.
            let buffered: Vec<usize> = (0..s.threads.len()).chain(self.migration_cpu()).collect();
            kernel
                .machine
                .set_memory_model(s.protocol.memory, &buffered);
            kernel
                .machine
                .set_data_buffered(s.protocol.memory_data_buffered);
            kernel
                .machine
                .set_vma_wait_acquire(s.protocol.vma_lock_wait_acquire);
            kernel.machine.set_load_reorder(
                s.protocol.memory_load_reorder
                    && s.protocol.memory == mmcheck_platform::MemoryModel::Lkmm,
            );
        }
        Instance {
            kernel,
            mm,
            seen,
            inflight,
            setup_error,
            clock: Ghost::new(0),
            history: Ghost::default(),
            hist_bits,
            children: Ghost::default(),
            initial,
            initial_lazy,
        }
    }

    fn restore(&self, template: &Instance, backend: Box<dyn Backend>) -> Option<Instance> {
        let mut m = mmcheck_platform::Memo::default();
        let kernel = template.kernel.snapshot(backend, &mut m);
        Some(self.restore_with(template, kernel, m))
    }

    /// The old instance's machine made a copy of the template's in place (the kernel objects
    /// are copied anew: their graph changes from one execution to the next).
    fn recycle(
        &self,
        template: &Instance,
        old: Instance,
        backend: Box<dyn Backend>,
    ) -> Option<Instance> {
        let mut machine = old.kernel.machine;
        if !machine.same_shape(&template.kernel.machine) {
            return self.restore(template, backend);
        }
        machine.reset_from(&template.kernel.machine, backend);
        let mut m = mmcheck_platform::Memo::default();
        let kernel = template.kernel.snapshot_onto(machine, &mut m);
        Some(self.restore_with(template, kernel, m))
    }

    fn machine<'a>(&self, inst: &'a Instance) -> &'a Machine {
        &inst.kernel.machine
    }

    fn threads(&self) -> usize {
        self.scenario.threads.len()
            + 1
            + usize::from(self.migration)
            + usize::from(self.flusher_cpu().is_some())
    }

    fn is_daemon(&self, t: usize) -> bool {
        t == self.rcu_cpu() || Some(t) == self.flusher_cpu()
    }

    fn reach(&self) -> &mmcheck_explore::reach::Spec {
        &self.reach
    }

    fn thread_name(&self, t: usize) -> String {
        if t == self.rcu_cpu() {
            "rcu".to_string()
        } else if Some(t) == self.flusher_cpu() {
            "sb".to_string()
        } else if Some(t) == self.migration_cpu() {
            "migration".to_string()
        } else {
            format!("T{t}")
        }
    }

    fn run(&self, inst: &Instance, t: usize) {
        let cx = inst.kernel.ctx(t);
        if t == self.rcu_cpu() {
            while cx.cpu.rcu_callback_thread_step() {}
            return;
        }
        if Some(t) == self.flusher_cpu() {
            cx.cpu.store_buffer_flusher();
            return;
        }
        if Some(t) == self.migration_cpu() {
            for &src in &inst.inflight {
                mmcheck_kernel::mm::migrate::migrate_folio_move_pending(cx, src);
            }
            cx.cpu.store_buffer_drain();
            return;
        }
        let mut seen = Vec::new();
        for op in &self.scenario.threads[t] {
            self.run_op(inst, cx, &inst.mm, op, &mut seen);
        }
        cx.cpu.store_buffer_drain();
        inst.seen[t].record(|x| *x = seen);
    }

    fn finish(&self, inst: &Instance) -> Finish {
        let k = &inst.kernel;
        // Every thread drained its store buffer; the final checks run sequentially consistent.
        k.machine
            .set_memory_model(mmcheck_platform::MemoryModel::Sc, &[]);
        let mut violations: Vec<Violation> = Vec::new();
        if let Some(e) = &inst.setup_error {
            violations.push(Violation {
                kind: ViolationKind::Assertion,
                cpu: None,
                stack: vec![],
                msg: e.clone(),
            });
        }
        let mut outcome = String::new();
        for (t, s) in inst.seen.iter().enumerate() {
            let line = s.peek(&inst.kernel.machine, |v| v.join(", "));
            let _ = write!(outcome, "T{t}: {line} ; ");
        }
        let hist: Vec<crate::linearize::HOp> = inst.history.peek(&inst.kernel.machine, |h| {
            h.iter()
                .filter(|o| !self.untracked.contains(&o.addr))
                .copied()
                .collect()
        });
        if let Err((stale, msg)) =
            crate::linearize::check_lazy(&hist, &inst.initial, &inst.initial_lazy)
        {
            let kind = if stale {
                ViolationKind::StaleRead
            } else {
                ViolationKind::LostWrite
            };
            violations.push(Violation {
                kind,
                cpu: None,
                stack: vec!["linearizability"],
                msg,
            });
        }
        for (kind, msg) in check_quiescent(k) {
            violations.push(Violation {
                kind,
                cpu: None,
                stack: vec!["check_quiescent"],
                msg,
            });
        }
        if violations.is_empty() {
            let cx = k.ctx(0);
            // herd7's final state: each location the scenario stores to, as mapped now.
            let _ = write!(outcome, "final:");
            for &addr in &self.locations {
                match mmcheck_kernel::mm::pgtable::read_translation(cx, &inst.mm, addr).0 {
                    Some(pfn) => {
                        let v = cx.cpu.data_read(cx.cpu.frame_ref(pfn));
                        let _ = write!(outcome, " {addr:#x}={v}");
                    }
                    None => {
                        let _ = write!(outcome, " {addr:#x} unmapped");
                    }
                }
            }
            // A migration a thread left in flight (`Op::Migrate` with `unmap_only`, from the
            // Rust builder only) finishes first: its move pass.
            for src in isolated_folios(k) {
                mmcheck_kernel::mm::migrate::migrate_folio_move_pending(cx, src);
            }
            for child in inst.children.peek(&k.machine, |c| c.clone()) {
                exit_mmap(cx, &child);
                mmdrop(cx, &child);
            }
            exit_mmap(cx, &inst.mm);
            mmdrop(cx, &inst.mm);
            mmcheck_kernel::mm::swapfile::swap_reclaim_unused(cx);
            cx.cpu.rcu_barrier();
            for (kind, msg) in check_quiescent(k) {
                violations.push(Violation {
                    kind,
                    cpu: None,
                    stack: vec!["exit_mmap"],
                    msg,
                });
            }
            let hz = k
                .huge_zero_peek()
                .map_or(0, |_| 1usize << k.geo.pmd_order());
            let used = k.machine.frames.nr_used();
            // The zero page, the huge zero folio, and nothing else outlives the mm.
            if used != 1 + hz {
                violations.push(Violation {
                    kind: ViolationKind::Leak,
                    cpu: None,
                    stack: vec!["exit_mmap"],
                    msg: format!("{} frames still allocated after exit", used - 1 - hz),
                });
            }
        }
        Finish {
            violations,
            outcome,
        }
    }
}
