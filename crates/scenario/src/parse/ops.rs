//! Operations: the [`OPS`] table (name, syntax, kernel path, argument parser) and each
//! operation's argument parser into an `OpArgs`; did-you-mean suggestions for unknown words.

use super::*;

// ----- operations ----------------------------------------------------------------------------

/// The arguments of an operation, as written (addresses unresolved).
#[derive(Clone, Debug)]
pub(super) enum OpArgs {
    Load {
        addr: Sp<Addr>,
    },
    Store {
        addr: Sp<Addr>,
        value: u64,
    },
    Fault {
        addr: Sp<Addr>,
        write: bool,
    },
    Mmap {
        addr: Sp<Addr>,
        pages: Sp<u64>,
        /// `anon`, `shmem` or `shmem-private` (a `SameFile` backing is made from `of`).
        backing: Backing,
        /// `of ADDR`: map the shmem file mapped at ADDR, from the page mapped there.
        of: Option<Sp<Addr>>,
        huge: Option<Range<usize>>,
    },
    Munmap {
        addr: Sp<Addr>,
        pages: Sp<u64>,
    },
    DontNeed {
        addr: Sp<Addr>,
        pages: Sp<u64>,
    },
    MadvFree {
        addr: Sp<Addr>,
        pages: Sp<u64>,
    },
    MadvPageout {
        addr: Sp<Addr>,
        pages: Sp<u64>,
    },
    RcuWalk {
        addr: Sp<Addr>,
    },
    FolioWalk {
        addr: Sp<Addr>,
        use_: WalkUse,
    },
    GupFast {
        addr: Sp<Addr>,
        write: bool,
        pin: bool,
        value: u64,
        fast_only: bool,
    },
    Mremap {
        addr: Sp<Addr>,
        pages: Sp<u64>,
        to: Sp<Addr>,
        /// `MREMAP_DONTUNMAP`.
        dontunmap: Option<Range<usize>>,
    },
    Migrate {
        addr: Sp<Addr>,
        /// Where `unmap` was written, if it was.
        unmap: Option<std::ops::Range<usize>>,
    },
    Collapse {
        addr: Sp<Addr>,
        order: Option<Sp<u64>>,
        khugepaged: bool,
    },
    Retract {
        addr: Sp<Addr>,
    },
    RmapWalk {
        addr: Sp<Addr>,
    },
    PunchHole {
        addr: Sp<Addr>,
        pages: Sp<u64>,
    },
    Fork,
    ChildExit,
    NumaHint {
        addr: Sp<Addr>,
        pages: Sp<u64>,
    },
    Mprotect {
        addr: Sp<Addr>,
        pages: Sp<u64>,
        write: bool,
    },
    Truncate {
        addr: Sp<Addr>,
    },
    Check {
        addr: Sp<Addr>,
        what: CheckWhat,
    },
    TryToUnmap {
        addr: Sp<Addr>,
    },
    CollapsePteMapped {
        addr: Sp<Addr>,
    },
    SplitHugePage {
        addr: Sp<Addr>,
        new_order: Option<Sp<u64>>,
    },
    UffdRegister {
        addr: Sp<Addr>,
        pages: Sp<u64>,
        missing: bool,
        wp: bool,
    },
    UffdCopy {
        addr: Sp<Addr>,
        value: u64,
    },
    UffdWp {
        addr: Sp<Addr>,
        pages: Sp<u64>,
    },
    MmapStack {
        addr: Sp<Addr>,
        pages: Sp<u64>,
    },
    UffdMove {
        addr: Sp<Addr>,
        pages: Sp<u64>,
        to: Sp<Addr>,
        allow_src_holes: bool,
    },
    UffdUnprotect {
        addr: Sp<Addr>,
        pages: Sp<u64>,
    },
    UffdUnregister {
        addr: Sp<Addr>,
        pages: Sp<u64>,
    },
}

pub(super) type ArgsParser = for<'a> fn(&mut In<'a>) -> PResult<OpArgs>;

/// An operation of a thread or `init` block.
#[derive(Debug)]
pub struct OpSpec {
    /// Its name: one word, or two (`madvise dontneed`).
    pub name: &'static str,
    /// Its syntax, for errors and docs.
    pub syntax: &'static str,
    /// The kernel path it runs.
    pub kernel: &'static str,
    /// Whether `init { }` takes it.
    pub init: bool,
    /// The parser of its arguments; `None`: not modelled yet.
    args: Option<ArgsParser>,
}

impl OpSpec {
    /// Whether the model runs this operation yet.
    pub fn modelled(&self) -> bool {
        self.args.is_some()
    }
}

pub(super) fn args_load(i: &mut In<'_>) -> PResult<OpArgs> {
    Ok(OpArgs::Load { addr: addr(i)? })
}

pub(super) fn args_store(i: &mut In<'_>) -> PResult<OpArgs> {
    let addr = addr(i)?;
    punct(i, '=', "'=' and the value to store")?;
    let value = number(i, "the value to store")?.v;
    Ok(OpArgs::Store { addr, value })
}

pub(super) fn args_fault(i: &mut In<'_>) -> PResult<OpArgs> {
    let addr = addr(i)?;
    let f = flags(i, &["read", "write"])?;
    if f.len() > 1 {
        return cut(f[1].span.clone(), "a fault is either 'read' or 'write'");
    }
    Ok(OpArgs::Fault {
        addr,
        write: f.first().is_some_and(|w| w.v == "write"),
    })
}

pub(super) fn args_mmap(i: &mut In<'_>) -> PResult<OpArgs> {
    let b = word(i, "'anon', 'shmem' or 'shmem-private'")?;
    let backing = match b.v {
        "anon" => Backing::AnonPrivate,
        "shmem" => Backing::ShmemShared,
        "shmem-private" => Backing::ShmemPrivate,
        w => {
            return cut(
                b.span,
                format!("expected 'anon', 'shmem' or 'shmem-private', found '{w}' (other file systems are not modelled)"),
            )
        }
    };
    let addr = addr(i)?;
    let pages = key_number(i, "pages", "'pages=N'")?;
    let (mut of, mut huge) = (None, None);
    loop {
        ws(i)?;
        if at_eol(i) {
            break;
        }
        if !i.starts_with(is_word_char) {
            return expected(i, "'of ADDR', 'huge' or end of line");
        }
        let w = word(i, "'of ADDR', 'huge' or end of line")?;
        match w.v {
            "huge" if huge.is_none() => huge = Some(w.span),
            "of" if of.is_none() => of = Some(self::addr(i)?),
            "huge" | "of" => return cut(w.span, format!("'{}' given twice", w.v)),
            other => {
                return cut(
                    w.span,
                    format!("expected 'of ADDR', 'huge' or end of line, found '{other}'"),
                )
            }
        }
    }
    if let (Some(o), Backing::AnonPrivate) = (&of, backing) {
        return cut(
            o.span.clone(),
            "'of' maps a shmem file again: it needs 'shmem' or 'shmem-private', not 'anon'",
        );
    }
    Ok(OpArgs::Mmap {
        addr,
        pages,
        backing,
        of,
        huge,
    })
}

/// The parsers of the operations whose arguments are `ADDR pages=N`.
macro_rules! addr_pages_args {
    ($($f:ident => $v:ident),* $(,)?) => {$(
        pub(super) fn $f(i: &mut In<'_>) -> PResult<OpArgs> {
            let addr = addr(i)?;
            let pages = key_number(i, "pages", "'pages=N'")?;
            Ok(OpArgs::$v { addr, pages })
        }
    )*};
}

addr_pages_args!(
    args_munmap => Munmap,
    args_dontneed => DontNeed,
    args_madv_free => MadvFree,
    args_madv_pageout => MadvPageout,
    args_uffd_wp => UffdWp,
    args_mmap_stack => MmapStack,
    args_uffd_unprotect => UffdUnprotect,
    args_uffd_unregister => UffdUnregister,
    args_punch_hole => PunchHole,
    args_numa_hint => NumaHint,
);

pub(super) fn args_rcu_walk(i: &mut In<'_>) -> PResult<OpArgs> {
    Ok(OpArgs::RcuWalk { addr: addr(i)? })
}

pub(super) fn args_folio_walk(i: &mut In<'_>) -> PResult<OpArgs> {
    let addr = addr(i)?;
    ws(i)?;
    if !i.starts_with(is_word_char) {
        return expected(i, "'ptl' or 'ref' (how the walker uses the page)");
    }
    let u = word(i, "'ptl' or 'ref'")?;
    let use_ = match u.v {
        "ptl" => WalkUse::Ptl,
        "ref" => WalkUse::Ref,
        w => {
            return cut(
                u.span,
                format!("expected 'ptl' or 'ref' (how the walker uses the page), found '{w}'"),
            )
        }
    };
    Ok(OpArgs::FolioWalk { addr, use_ })
}

pub(super) fn args_gup_fast(i: &mut In<'_>) -> PResult<OpArgs> {
    let addr = addr(i)?;
    ws(i)?;
    if !i.starts_with(is_word_char) {
        return expected(i, "'read' or 'write = VALUE'");
    }
    let rw = word(i, "'read' or 'write = VALUE'")?;
    let (write, value) = match rw.v {
        "read" => (false, 0),
        "write" => {
            punct(i, '=', "'=' and the value to write")?;
            (true, number(i, "the value to write")?.v)
        }
        w => {
            return cut(
                rw.span,
                format!("expected 'read' or 'write = VALUE', found '{w}'"),
            )
        }
    };
    let fl = flags(i, &["pin", "fast_only"])?;
    Ok(OpArgs::GupFast {
        addr,
        write,
        pin: fl.iter().any(|f| f.v == "pin"),
        value,
        fast_only: fl.iter().any(|f| f.v == "fast_only"),
    })
}

pub(super) fn args_mremap(i: &mut In<'_>) -> PResult<OpArgs> {
    let addr = addr(i)?;
    let pages = key_number(i, "pages", "'pages=N'")?;
    let kw = word(i, "'to' and the destination address")?;
    if kw.v != "to" {
        return cut(
            kw.span,
            format!(
                "expected 'to' and the destination address, found '{}'",
                kw.v
            ),
        );
    }
    let to = self::addr(i)?;
    let dontunmap = flags(i, &["dontunmap"])?.first().map(|f| f.span.clone());
    Ok(OpArgs::Mremap {
        addr,
        pages,
        to,
        dontunmap,
    })
}

pub(super) fn args_try_to_unmap(i: &mut In<'_>) -> PResult<OpArgs> {
    Ok(OpArgs::TryToUnmap { addr: addr(i)? })
}

pub(super) fn args_collapse_pte_mapped(i: &mut In<'_>) -> PResult<OpArgs> {
    Ok(OpArgs::CollapsePteMapped { addr: addr(i)? })
}

pub(super) fn args_uffd_register(i: &mut In<'_>) -> PResult<OpArgs> {
    let addr = addr(i)?;
    let pages = key_number(i, "pages", "'pages=N'")?;
    let f = flags(i, &["missing", "wp"])?;
    if f.is_empty() {
        return expected(
            i,
            "a mode: 'missing', 'wp' or both (UFFDIO_REGISTER without a mode is EINVAL)",
        );
    }
    Ok(OpArgs::UffdRegister {
        addr,
        pages,
        missing: f.iter().any(|w| w.v == "missing"),
        wp: f.iter().any(|w| w.v == "wp"),
    })
}

pub(super) fn args_uffd_copy(i: &mut In<'_>) -> PResult<OpArgs> {
    let addr = addr(i)?;
    ws(i)?;
    let value = if i.starts_with('=') {
        punct(i, '=', "'=' and the value to copy")?;
        number(i, "the value to copy")?.v
    } else {
        0
    };
    Ok(OpArgs::UffdCopy { addr, value })
}

pub(super) fn args_uffd_move(i: &mut In<'_>) -> PResult<OpArgs> {
    let addr = addr(i)?;
    let pages = key_number(i, "pages", "'pages=N'")?;
    let kw = word(i, "'to' and the destination address")?;
    if kw.v != "to" {
        return cut(
            kw.span,
            format!(
                "expected 'to' and the destination address, found '{}'",
                kw.v
            ),
        );
    }
    let to = self::addr(i)?;
    let allow_src_holes = !flags(i, &["allow_src_holes"])?.is_empty();
    Ok(OpArgs::UffdMove {
        addr,
        pages,
        to,
        allow_src_holes,
    })
}

pub(super) fn args_check(i: &mut In<'_>) -> PResult<OpArgs> {
    let addr = addr(i)?;
    ws(i)?;
    if !i.starts_with(is_word_char) {
        return expected(i, "'huge', 'small', 'unmapped' or 'value = N'");
    }
    let w = word(i, "'huge', 'small', 'unmapped' or 'value = N'")?;
    let what = match w.v {
        "huge" => CheckWhat::Huge,
        "small" => CheckWhat::Small,
        "unmapped" => CheckWhat::Unmapped,
        "value" => {
            punct(i, '=', "'=' and the expected value")?;
            CheckWhat::Value(number(i, "the expected value")?.v)
        }
        other => {
            return cut(
                w.span,
                format!("expected 'huge', 'small', 'unmapped' or 'value = N', found '{other}'"),
            )
        }
    };
    Ok(OpArgs::Check { addr, what })
}

pub(super) fn args_migrate(i: &mut In<'_>) -> PResult<OpArgs> {
    let addr = addr(i)?;
    let unmap = flags(i, &["unmap"])?.first().map(|f| f.span.clone());
    Ok(OpArgs::Migrate { addr, unmap })
}

pub(super) fn args_retract(i: &mut In<'_>) -> PResult<OpArgs> {
    Ok(OpArgs::Retract { addr: addr(i)? })
}

pub(super) fn args_fork(_: &mut In<'_>) -> PResult<OpArgs> {
    Ok(OpArgs::Fork)
}

pub(super) fn args_mprotect(i: &mut In<'_>) -> PResult<OpArgs> {
    let addr = addr(i)?;
    let pages = key_number(i, "pages", "'pages=N'")?;
    let prot = word(i, "'read' or 'write'")?;
    let write = match prot.v {
        "read" => false,
        "write" => true,
        w => {
            return cut_help(
                prot.span,
                format!("expected 'read' or 'write', found '{w}'"),
                did_you_mean(w, &["read", "write"]),
            )
        }
    };
    Ok(OpArgs::Mprotect { addr, pages, write })
}

pub(super) fn args_child_exit(_: &mut In<'_>) -> PResult<OpArgs> {
    Ok(OpArgs::ChildExit)
}

pub(super) fn args_truncate(i: &mut In<'_>) -> PResult<OpArgs> {
    Ok(OpArgs::Truncate { addr: addr(i)? })
}

pub(super) fn args_rmap_walk(i: &mut In<'_>) -> PResult<OpArgs> {
    Ok(OpArgs::RmapWalk { addr: addr(i)? })
}

pub(super) fn collapse_args(i: &mut In<'_>, khugepaged: bool) -> PResult<OpArgs> {
    let addr = addr(i)?;
    ws(i)?;
    let order = if i.starts_with("order") {
        Some(key_number(i, "order", "'order=N'")?)
    } else {
        None
    };
    Ok(OpArgs::Collapse {
        addr,
        order,
        khugepaged,
    })
}

pub(super) fn args_split_huge_page(i: &mut In<'_>) -> PResult<OpArgs> {
    let addr = addr(i)?;
    ws(i)?;
    let new_order = if i.starts_with("new_order") {
        Some(key_number(i, "new_order", "'new_order=N'")?)
    } else {
        None
    };
    Ok(OpArgs::SplitHugePage { addr, new_order })
}

pub(super) fn args_collapse(i: &mut In<'_>) -> PResult<OpArgs> {
    collapse_args(i, false)
}

pub(super) fn args_khugepaged(i: &mut In<'_>) -> PResult<OpArgs> {
    collapse_args(i, true)
}

/// Every operation, modelled or not yet.
pub const OPS: &[OpSpec] = &[
    OpSpec {
        name: "load",
        syntax: "load ADDR",
        kernel: "user load: TLB, hardware walk, then do_user_addr_fault (arch/x86/mm/fault.c) and retry",
        init: true,
        args: Some(args_load),
    },
    OpSpec {
        name: "store",
        syntax: "store ADDR = VALUE",
        kernel: "user store: TLB, hardware walk, then do_user_addr_fault(write) (arch/x86/mm/fault.c) and retry",
        init: true,
        args: Some(args_store),
    },
    OpSpec {
        name: "fault",
        syntax: "fault ADDR [read|write]",
        kernel: "do_user_addr_fault -> handle_mm_fault (mm/memory.c), without the access",
        init: false,
        args: Some(args_fault),
    },
    OpSpec {
        name: "mmap",
        syntax: "mmap anon|shmem|shmem-private ADDR pages=N [of ADDR] [huge]",
        kernel: "do_mmap (mm/vma.c), PROT_READ|PROT_WRITE, MAP_FIXED_NOREPLACE, MAP_PRIVATE anonymous, MAP_SHARED or MAP_PRIVATE shmem (a new file, or with 'of' the file mapped at ADDR); huge: madvise(MADV_HUGEPAGE)",
        init: true,
        args: Some(args_mmap),
    },
    OpSpec {
        name: "munmap",
        syntax: "munmap ADDR pages=N",
        kernel: "do_munmap (mm/vma.c): unmap_region, free_pgtables, mmu_gather",
        init: true,
        args: Some(args_munmap),
    },
    OpSpec {
        name: "madvise dontneed",
        syntax: "madvise dontneed ADDR pages=N",
        kernel: "madvise_dontneed (mm/madvise.c): zap_page_range_single, PT reclaim (mm/pt_reclaim.c)",
        init: false,
        args: Some(args_dontneed),
    },
    OpSpec {
        name: "rcu_walk",
        syntax: "rcu_walk ADDR",
        kernel: "pte_offset_map / pte_unmap under RCU (mm/pgtable-generic.c) with the mmap read lock and a VMA, as filemap_fault_recheck_pte_none in a fault",
        init: false,
        args: Some(args_rcu_walk),
    },
    OpSpec {
        name: "folio_walk",
        syntax: "folio_walk ADDR ptl|ref",
        kernel: "folio_walk_start / folio_walk_end (mm/pagewalk.c) under the lock the folio_walk.lock switch names, walking as folio_walk.design says; ptl: use the page under the PTL (a lockless walk: with its reference), ref: take a reference, end the walk, then use it",
        init: false,
        args: Some(args_folio_walk),
    },
    OpSpec {
        name: "gup_fast",
        syntax: "gup_fast ADDR (read | write = VALUE) [pin] [fast_only]",
        kernel: "get_user_pages_fast (mm/gup.c, IRQs off, no locks; FOLL_PIN with 'pin'; get_user_pages_fast_only, FOLL_FAST_ONLY: no slow-path fallback, with 'fast_only'), then a read or a DMA write through the page, then unpin/put",
        init: false,
        args: Some(args_gup_fast),
    },
    OpSpec {
        name: "mremap",
        syntax: "mremap ADDR pages=N to ADDR [dontunmap]",
        kernel: "do_mremap (mm/mremap.c), MREMAP_MAYMOVE|MREMAP_FIXED to an unmapped destination: copy_vma, move_page_tables under the rmap locks the mremap.rmap_locks switch names; dontunmap (threads only): MREMAP_DONTUNMAP, move_vma keeps the old VMA and unlink_anon_vmas it under its VMA write lock",
        init: true,
        args: Some(args_mremap),
    },
    OpSpec {
        name: "check",
        syntax: "check ADDR huge|small|unmapped|value = N",
        kernel: "an assertion on the state after the previous operations: ADDR is PMD-mapped, PTE-mapped, not mapped, or holds N (peeked, no visible step); a failed check is an assertion violation",
        init: false,
        args: Some(args_check),
    },
    OpSpec {
        name: "migrate",
        syntax: "migrate ADDR [unmap]",
        kernel: "migrate the folio mapped at ADDR, small or a PMD- or PTE-mapped THP (mm/migrate.c): try_to_migrate (set_pmd_migration_entry for a PMD), copy, remove_migration_ptes (remove_migration_pmd); unmap: migrate_pages_batch's first pass alone, migrate_folio_unmap, leaving the folio locked, isolated and replaced by migration entries (a migration in flight to the end; in init too)",
        init: true,
        args: Some(args_migrate),
    },
    OpSpec {
        name: "madvise collapse",
        syntax: "madvise collapse ADDR [order=N]",
        kernel: "MADV_COLLAPSE of the range holding ADDR: collapse_huge_page (mm/khugepaged.c) at the PMD order, or at order N (2026 mTHP)",
        init: false,
        args: Some(args_collapse),
    },
    OpSpec {
        name: "khugepaged",
        syntax: "khugepaged ADDR [order=N]",
        kernel: "a khugepaged scan of the PMD range holding ADDR: hpage_collapse_scan_pmd -> collapse_huge_page (mm/khugepaged.c), with max_ptes_none",
        init: false,
        args: Some(args_khugepaged),
    },
    OpSpec {
        name: "try_to_unmap",
        syntax: "try_to_unmap ADDR",
        kernel: "try_to_unmap -> try_to_unmap_one (mm/rmap.c) of the page-cache folio mapped at ADDR (anonymous folios need swap, not modelled)",
        init: false,
        args: Some(args_try_to_unmap),
    },
    OpSpec {
        name: "collapse_pte_mapped_thp",
        syntax: "collapse_pte_mapped_thp ADDR",
        kernel: "collapse_pte_mapped_thp (mm/khugepaged.c): a PTE-mapped PMD-order page-cache folio loses its PTE table (no PMD install)",
        init: false,
        args: Some(args_collapse_pte_mapped),
    },
    OpSpec {
        name: "rmap_walk",
        syntax: "rmap_walk ADDR",
        kernel: "folio_referenced of the folio mapped at ADDR: rmap_walk -> page_vma_mapped_walk (map_pte, PTL) -> clear young (mm/rmap.c)",
        init: false,
        args: Some(args_rmap_walk),
    },
    OpSpec {
        name: "punch_hole",
        syntax: "punch_hole ADDR pages=N",
        kernel: "fallocate(FALLOC_FL_PUNCH_HOLE) of the shmem pages mapped at ADDR: unmap_mapping_range under i_mmap_rwsem read, no folio lock (mm/memory.c), then shmem_undo_range (mm/shmem.c)",
        init: false,
        args: Some(args_punch_hole),
    },
    OpSpec {
        name: "fork",
        syntax: "fork",
        kernel: "fork(): dup_mmap of the mm (mmap_lock write, vma_start_write of each parent VMA, anon_vma_fork, copy_page_range write-protecting anon pages for COW; kernel/fork.c, mm/memory.c); the child lives to the end of the execution",
        init: false,
        args: Some(args_fork),
    },
    OpSpec {
        name: "numa_hint",
        syntax: "numa_hint ADDR pages=N",
        kernel: "NUMA balancing's scan of the range: task_numa_work -> change_prot_numa (mmap_lock read; change_pmd_range, change_huge_pmd under the PMD lock, change_pte_range under the PTL; mm/mprotect.c, mm/huge_memory.c) makes the pages PROTNONE; the next access faults into do_numa_page / do_huge_pmd_numa_page",
        init: false,
        args: Some(args_numa_hint),
    },
    OpSpec {
        name: "mprotect",
        syntax: "mprotect ADDR pages=N (read | write)",
        kernel: "mprotect to PROT_READ or PROT_READ|PROT_WRITE: do_mprotect_pkey -> mprotect_fixup (mmap_lock write, VMA split at the edges, vma_start_write, vm_flags) -> change_protection (change_pmd_range, change_huge_pmd under the PMD lock, change_pte_range under the PTL with flush_tlb_batched_pending; mm/mprotect.c) inside one mmu_gather; write-protects mapped entries when write goes away",
        init: false,
        args: Some(args_mprotect),
    },
    OpSpec {
        name: "child_exit",
        syntax: "child_exit",
        kernel: "the last forked child still alive exits: mmput -> exit_mmap (mmap_lock read: unmap_vmas; mmap_lock write: free_pgtables, unlink_anon_vmas, unlink_file_vma; mm/mmap.c) -> mmdrop",
        init: false,
        args: Some(args_child_exit),
    },
    OpSpec {
        name: "truncate",
        syntax: "truncate ADDR",
        kernel: "ftruncate of the shmem file mapped at ADDR to the file page mapped there (shmem_setattr, mm/shmem.c): i_size, unmap_mapping_range of the tail with even_cows (private COW copies too) under i_mmap_rwsem read, no folio lock, shmem_undo_range, unmap again",
        init: false,
        args: Some(args_truncate),
    },
    OpSpec {
        name: "retract",
        syntax: "retract ADDR",
        kernel: "collapse_file of the shmem range mapped at ADDR, ending in retract_page_tables (mm/khugepaged.c): as khugepaged_scan_mm_slot, the VMA is looked up and its file referenced (get_file) under the mmap read lock, which is dropped before the collapse; fput after",
        init: true,
        args: Some(args_retract),
    },
    OpSpec {
        name: "split_huge_page",
        syntax: "split_huge_page ADDR [new_order=N]",
        kernel: "a write of 'pid,ADDR,ADDR+1[,N]' to /sys/kernel/debug/split_huge_pages (split_huge_pages_pid, mm/huge_memory.c): under the mmap read lock, folio_walk_start finds the anon THP at ADDR; skipped unless every reference is a mapping's (can_split_folio) and folio_trylock succeeds; then split_huge_page_to_list_to_order to order N (default 0): anon_vma write lock, can_split_folio, unmap_folio (try_to_migrate with TTU_SPLIT_HUGE_PMD: a PMD is split frozen into PTE migration entries), folio_ref_freeze (-EAGAIN and remap_page if it fails), __split_huge_page, remap_page (remove_migration_ptes)",
        init: false,
        args: Some(args_split_huge_page),
    },
    OpSpec {
        name: "madvise free",
        syntax: "madvise free ADDR pages=N",
        kernel: "madvise_free_single_vma (mm/madvise.c): madvise_free_pte_range / madvise_free_huge_pmd make mapped pages clean and old, folio_mark_lazyfree",
        init: true,
        args: Some(args_madv_free),
    },
    OpSpec {
        name: "madvise pageout",
        syntax: "madvise pageout ADDR pages=N",
        kernel: "madvise_cold_or_pageout_pte_range (mm/madvise.c) -> reclaim_pages -> shrink_folio_list (mm/vmscan.c) -> try_to_unmap (mm/rmap.c, TTU_BATCH_FLUSH); without a swap device (swap = off) only lazyfree and shmem folios go; with one, swap-backed anon folios go to swap (add_to_swap, swap PTEs, swap_writepage, __remove_mapping)",
        init: true,
        args: Some(args_madv_pageout),
    },
    OpSpec {
        name: "uffd_register",
        syntax: "uffd_register ADDR pages=N [missing] [wp]",
        kernel: "UFFDIO_REGISTER (fs/userfaultfd.c userfaultfd_register, UFFD_FEATURE_SIGBUS): mmap_lock write, the VMAs split at the range's edges, vma_start_write, VM_UFFD_MISSING / VM_UFFD_WP set",
        init: true,
        args: Some(args_uffd_register),
    },
    OpSpec {
        name: "uffd_copy",
        syntax: "uffd_copy ADDR [= VALUE]",
        kernel: "UFFDIO_COPY of one page (mm/userfaultfd.c mfill_atomic -> mfill_atomic_pte_copy -> mfill_atomic_install_pte): per-VMA read lock (mmap read lock while anon_vma_prepare runs), table allocated, a new anon page installed under the PTL if the PTE is none or a marker (EEXIST otherwise; EAGAIN if the table went away); into a private shmem mapping without a page-cache lookup",
        init: false,
        args: Some(args_uffd_copy),
    },
    OpSpec {
        name: "uffd_wp",
        syntax: "uffd_wp ADDR pages=N",
        kernel: "UFFDIO_WRITEPROTECT (mode WP) of the range (mm/userfaultfd.c mwriteprotect_range -> change_protection(MM_CP_UFFD_WP)): mmap_lock read, present PTEs get _PAGE_UFFD_WP and lose write, none PTEs of shmem VMAs get PTE_MARKER_UFFD_WP markers (tables allocated for them), under the PTL",
        init: false,
        args: Some(args_uffd_wp),
    },
    OpSpec {
        name: "mmap_stack",
        syntax: "mmap_stack ADDR pages=N",
        kernel: "do_mmap with MAP_PRIVATE|MAP_ANONYMOUS|MAP_GROWSDOWN, PROT_READ|PROT_WRITE, MAP_FIXED_NOREPLACE: a VM_GROWSDOWN stack VMA; a load, store or fault below it (down to the mapping below) expands it: lock_mm_and_find_vma drops the mmap read lock, takes the write lock, finds the VMA again and runs expand_stack_locked -> expand_downwards (stack guard gap of one page, anon_vma_prepare, vma_start_write, anon_vma_lock_write, mm->page_table_lock), then downgrades (mm/mmap_lock.c, mm/vma.c); the per-VMA-locked fault refuses and falls back",
        init: true,
        args: Some(args_mmap_stack),
    },
    OpSpec {
        name: "uffd_move",
        syntax: "uffd_move ADDR pages=N to ADDR [allow_src_holes]",
        kernel: "UFFDIO_MOVE of the range to the second address (mm/userfaultfd.c move_pages -> move_pages_pte -> move_present_pte; move_pages_huge_pmd in mm/huge_memory.c): both VMAs read-locked (uffd_move_lock, mmap read lock fallback), src PTE and none dst PTE read under their PTLs, folio_trylock and anon_vma_trylock_write (else unmap, sleep, retry), PageAnonExclusive and unpinned (EBUSY), then under double_pt_lock the pte_same / pmd_same rechecks (EAGAIN), ptep_clear_flush of the source, folio_move_anon_rmap, folio->index, the destination PTE set",
        init: false,
        args: Some(args_uffd_move),
    },
    OpSpec {
        name: "uffd_unprotect",
        syntax: "uffd_unprotect ADDR pages=N",
        kernel: "UFFDIO_WRITEPROTECT with mode 0 (mm/userfaultfd.c mwriteprotect_range -> uffd_wp_range -> change_protection(MM_CP_UFFD_WP_RESOLVE)): mmap_lock read, every VMA registered for wp (ENOENT), under the PTL _PAGE_UFFD_WP cleared and uffd-wp markers dropped",
        init: false,
        args: Some(args_uffd_unprotect),
    },
    OpSpec {
        name: "uffd_unregister",
        syntax: "uffd_unregister ADDR pages=N",
        kernel: "UFFDIO_UNREGISTER (fs/userfaultfd.c userfaultfd_unregister -> userfaultfd_clear_vma): mmap_lock write, EINVAL if no VMA meets the range; each registered VMA unprotected if it was registered for wp (uffd_wp_range: markers dropped), split at the range's edges, vma_start_write, VM_UFFD_* cleared, merged back with its neighbours",
        init: false,
        args: Some(args_uffd_unregister),
    },
];

pub(super) fn known_ops() -> String {
    OPS.iter()
        .filter(|o| o.modelled())
        .map(|o| o.name)
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn is_op_word(w: &str) -> bool {
    OPS.iter()
        .any(|o| o.name == w || o.name.split(' ').next() == Some(w))
}

/// One operation line of a block.
#[derive(Clone, Debug)]
pub(super) struct OpLine {
    pub(super) spec: &'static OpSpec,
    pub(super) name_span: Range<usize>,
    pub(super) args: OpArgs,
}

pub(super) fn op_line(i: &mut In<'_>) -> PResult<OpLine> {
    let first = word(i, "an operation")?;
    let mut name = first.v.to_string();
    let mut span = first.span.clone();
    let two_word: Vec<&str> = OPS
        .iter()
        .filter_map(|o| o.name.strip_prefix(first.v)?.strip_prefix(' '))
        .collect();
    if !two_word.is_empty() {
        ws(i)?;
        if !i.starts_with(is_word_char) {
            let list = two_word.join(", ");
            return expected(i, format!("the kind of '{}' ({list})", first.v));
        }
        let second = word(i, "the kind of operation")?;
        name = format!("{} {}", first.v, second.v);
        span = first.span.start..second.span.end;
    }
    let Some(spec) = OPS.iter().find(|o| o.name == name) else {
        let names: Vec<&str> = OPS.iter().map(|o| o.name).collect();
        return cut_help(
            span,
            format!("unknown operation '{name}' (known: {})", known_ops()),
            did_you_mean(&name, &names),
        );
    };
    let Some(args) = spec.args else {
        return cut(
            span,
            format!(
                "operation '{name}' is not modelled yet (modelled: {})",
                known_ops()
            ),
        );
    };
    let args = args(i)?;
    eol(i)?;
    Ok(OpLine {
        spec,
        name_span: span,
        args,
    })
}

pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (k, ca) in a.chars().enumerate() {
        let mut cur = vec![k + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// "did you mean 'X'?" for the closest of `known`, if close enough.
pub(super) fn did_you_mean(w: &str, known: &[&str]) -> Option<String> {
    if w.len() > 64 {
        return None;
    }
    known
        .iter()
        .map(|k| (edit_distance(w, k), *k))
        .filter(|&(d, k)| d > 0 && d <= (k.len() / 3).max(1))
        .min()
        .map(|(_, k)| format!("did you mean '{k}'?"))
}
