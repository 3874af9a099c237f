//! The model side of `diff-kernel`: run a differential-test case on the modeled kernel with
//! x86-64 geometry and observe what the host observes (loads, `VmPTE`, Rss, `AnonHugePages`,
//! pagemap present bits, and the errno of MADV_COLLAPSE). Mremap, MADV_HUGEPAGE and MADV_COLLAPSE
//! go to `do_mremap`, `madvise_hugepage` and `madvise_collapse`; a `MAP_PRIVATE` memfd mapping is a
//! shmem file the runner holds a reference to (the host's fd), punched with `shmem_punch_hole`
//! and truncated with `shmem_setattr_truncate`. `mprotect` is `do_mprotect`; `fork` is `dup_mmap`,
//! whose child mm the child's loads and stores use and whose exit is `exit_mmap`. Every case also ends with the
//! quiescent invariant check; a model violation is an error, not a divergence.

use mmcheck_hostdiff::case::{
    Backing, Case, CaseRunner, Observation, Op, PAGE_SIZE, REGION_BASE, REGION_PAGES,
};
use mmcheck_kernel::arch::fault::{user_load, user_store};
use mmcheck_kernel::arch::pgtable::Entry;
use mmcheck_kernel::check::check_quiescent;
use mmcheck_kernel::mm::fork::dup_mmap;
use mmcheck_kernel::mm::madvise::madvise_dontneed;
use mmcheck_kernel::mm::madvise_collapse::madvise_collapse;
use mmcheck_kernel::mm::mprotect::do_mprotect;
use mmcheck_kernel::mm::mremap::do_mremap;
use mmcheck_kernel::mm::pgtable::pmd_off;
use mmcheck_kernel::mm::shmem::{fput, shmem_file_setup, shmem_punch_hole, shmem_setattr_truncate};
use mmcheck_kernel::mm::types::MmStruct;
use mmcheck_kernel::mm::vma::{
    do_mmap, do_munmap, exit_mmap, madvise_hugepage, mm_alloc, mmdrop, MapBacking,
};
use mmcheck_kernel::{Ctx, Geometry, Kernel, Protocol};

/// Runs cases on a fresh model kernel each.
pub struct ModelRunner {
    pub proto: Protocol,
}

/// Frames of the model machine: 256 MiB. The frame allocator is next-fit, so a pool much larger
/// than what one case allocates (at most a few thousand frames: the window is 16 MiB) always has a
/// free aligned 2 MiB block for a THP, as the host almost always does.
const MODEL_FRAMES: usize = 1 << 16;

fn present_bits(cx: Ctx<'_>, mm: &MmStruct) -> (Vec<u64>, i64) {
    let g = cx.geo();
    let mut bits = vec![0u64; (REGION_PAGES / 64) as usize];
    let mut huge_kb = 0;
    let mut page = 0;
    while page < REGION_PAGES {
        let addr = REGION_BASE + page * PAGE_SIZE;
        let per_table = g.entries() as u64;
        let Some(pmd) = pmd_off(cx, mm, addr) else {
            page += per_table;
            continue;
        };
        let v = Entry(cx.cpu.entry_peek(pmd.table, pmd.idx));
        if v.huge_leaf() && v.present() {
            for p in page..page + per_table {
                bits[(p / 64) as usize] |= 1 << (p % 64);
            }
            if cx.k.huge_zero_peek().is_none_or(|z| z.pfn != v.pfn()) {
                huge_kb += (per_table * PAGE_SIZE / 1024) as i64;
            }
        } else if v.is_table() {
            let t = cx.k.machine.frames.current(v.pfn());
            for i in 0..per_table {
                if Entry(cx.cpu.entry_peek(t, i as usize)).present() {
                    let p = page + i;
                    bits[(p / 64) as usize] |= 1 << (p % 64);
                }
            }
        }
        page += per_table;
    }
    (bits, huge_kb)
}

impl CaseRunner for ModelRunner {
    fn name(&self) -> &str {
        "model"
    }

    fn run(&self, case: &Case) -> Result<Vec<Observation>, String> {
        let k = Kernel::native(Geometry::X86_64, self.proto.clone(), 1, MODEL_FRAMES);
        let cx = k.ctx(0);
        let mm = mm_alloc(cx).map_err(|e| format!("mm_alloc: {e}"))?;
        let addr = |p: u64| REGION_BASE + p * PAGE_SIZE;
        let mut out = Vec::with_capacity(case.ops.len());
        // The case's child process (`Op::Fork`): its mm, observed only through its loads.
        let mut child: Option<std::sync::Arc<MmStruct>> = None;
        let no_child = || mmcheck_kernel::Errno::Einval;
        // The `ShmemPrivate` files, by number, each with the runner's reference (the host's fd).
        let mut files: Vec<std::sync::Arc<mmcheck_kernel::mm::types::File>> = Vec::new();
        let file = |files: &[std::sync::Arc<mmcheck_kernel::mm::types::File>], f: u32| {
            files
                .get(f as usize)
                .cloned()
                .ok_or(mmcheck_kernel::Errno::Einval)
        };
        for (i, op) in case.ops.iter().enumerate() {
            let mut load = None;
            let mut errno = 0;
            let r = match *op {
                Op::Mmap {
                    start,
                    pages,
                    backing,
                } => {
                    let b = match backing {
                        Backing::AnonPrivate => MapBacking::AnonPrivate,
                        Backing::ShmemShared => MapBacking::ShmemShared,
                        Backing::ShmemPrivate => {
                            let f = shmem_file_setup(cx, pages);
                            files.push(f.clone());
                            MapBacking::File {
                                file: f,
                                pgoff: 0,
                                shared: false,
                            }
                        }
                    };
                    do_mmap(cx, &mm, addr(start), pages * PAGE_SIZE, b, true, false).map(|_| ())
                }
                Op::Munmap { start, pages } => do_munmap(cx, &mm, addr(start), pages * PAGE_SIZE),
                Op::DontNeed { start, pages } => {
                    madvise_dontneed(cx, &mm, addr(start), pages * PAGE_SIZE)
                }
                Op::Free { start, pages } => mmcheck_kernel::mm::madvise::madvise_free(
                    cx,
                    &mm,
                    addr(start),
                    pages * PAGE_SIZE,
                ),
                Op::Pageout { start, pages } => mmcheck_kernel::mm::madvise::madvise_pageout(
                    cx,
                    &mm,
                    addr(start),
                    pages * PAGE_SIZE,
                ),
                Op::Store { page, value } => user_store(cx, &mm, addr(page), value),
                Op::Load { page } => user_load(cx, &mm, addr(page)).map(|v| load = Some(v)),
                Op::Mremap {
                    start,
                    pages,
                    new_start,
                } => {
                    do_mremap(cx, &mm, addr(start), pages * PAGE_SIZE, addr(new_start)).map(|_| ())
                }
                Op::Hugepage { start, pages } => {
                    madvise_hugepage(cx, &mm, addr(start), pages * PAGE_SIZE)
                }
                Op::PunchHole {
                    file: f,
                    offset,
                    pages,
                } => file(&files, f).map(|f| shmem_punch_hole(cx, &f, offset, offset + pages - 1)),
                Op::Truncate { file: f, pages } => {
                    file(&files, f).map(|f| shmem_setattr_truncate(cx, &f, pages))
                }
                Op::Mprotect {
                    start,
                    pages,
                    write,
                } => do_mprotect(cx, &mm, addr(start), addr(start + pages), write),
                Op::Fork => dup_mmap(cx, &mm).map(|c| child = Some(c)),
                Op::ChildLoad { page } => child
                    .as_ref()
                    .ok_or_else(no_child)
                    .and_then(|c| user_load(cx, c, addr(page)))
                    .map(|v| load = Some(v)),
                Op::ChildStore { page, value } => child
                    .as_ref()
                    .ok_or_else(no_child)
                    .and_then(|c| user_store(cx, c, addr(page), value)),
                Op::ChildExit => child.take().ok_or_else(no_child).map(|c| {
                    exit_mmap(cx, &c);
                    mmdrop(cx, &c);
                }),
                Op::Collapse { start, pages } => {
                    if let Err(e) = madvise_collapse(cx, &mm, addr(start), pages * PAGE_SIZE) {
                        errno = e.errno();
                    }
                    Ok(())
                }
            };
            r.map_err(|e| format!("op {i} ({op:?}): {e}"))?;
            if k.machine.violated() {
                return Err(format!(
                    "model violation at op {i} ({op:?}): {}",
                    k.machine.violations()[0]
                ));
            }
            let (present, anon_huge_kb) = present_bits(cx, &mm);
            let rss: i64 = (0..3).map(|c| mm.get_rss(c)).sum();
            out.push(Observation {
                load,
                errno,
                vm_pte_kb: mm.pgtables() * 4,
                rss_kb: rss * 4,
                anon_huge_kb,
                present,
            });
        }
        let errs = check_quiescent(&k);
        if let Some((kind, msg)) = errs.first() {
            return Err(format!("model invariant after the case: {kind}: {msg}"));
        }
        if let Some(c) = child.take() {
            exit_mmap(cx, &c);
            mmdrop(cx, &c);
        }
        exit_mmap(cx, &mm);
        mmdrop(cx, &mm);
        for f in files {
            fput(cx, &f); // the host's close at exit
        }
        drop(mm);
        let errs = check_quiescent(&k);
        if let Some((kind, msg)) = errs.first() {
            return Err(format!("model invariant after exit: {kind}: {msg}"));
        }
        Ok(out)
    }
}
