//! Host runner against exact expectations for Linux 6.18 on x86-64 with 4-level paging and THP
//! in madvise mode. Tests skip (with a note on stderr) what the host cannot observe.

use mmcheck_hostdiff::*;
use Backing::{AnonPrivate, ShmemShared};

fn mmap(start: u64, pages: u64, backing: Backing) -> Op {
    Op::Mmap {
        start,
        pages,
        backing,
    }
}

fn present_pages(o: &Observation) -> Vec<u64> {
    (0..REGION_PAGES)
        .filter(|p| {
            o.present
                .get((p / 64) as usize)
                .is_some_and(|w| w >> (p % 64) & 1 == 1)
        })
        .collect()
}

/// True if the host has everything; otherwise explain on stderr.
fn full_features(test: &str) -> bool {
    let f = host_features();
    if f.pagemap && f.smaps_rollup && f.vm_pte {
        return true;
    }
    eprintln!("{test}: skipped: host lacks a feature ({f:?})");
    false
}

fn run(ops: Vec<Op>) -> Vec<Observation> {
    let case = Case { ops };
    match HostRunner::new().run_case(&case) {
        Ok(obs) => obs,
        Err(e) => panic!("host run failed: {e}"),
    }
}

/// (VmPTE, Rss, present pages) after each op.
fn summary(obs: &[Observation]) -> Vec<(i64, i64, Vec<u64>)> {
    obs.iter()
        .map(|o| (o.vm_pte_kb, o.rss_kb, present_pages(o)))
        .collect()
}

#[test]
fn anon_store_load_munmap() {
    if !full_features("anon_store_load_munmap") {
        return;
    }
    let obs = run(vec![
        mmap(0, 1, AnonPrivate),
        Op::Store { page: 0, value: 7 },
        Op::Load { page: 0 },
        Op::Munmap { start: 0, pages: 1 },
    ]);
    assert_eq!(obs.len(), 4);
    assert_eq!(
        obs.iter().map(|o| o.load).collect::<Vec<_>>(),
        [None, None, Some(7), None]
    );
    // One PUD + one PMD + one PTE table for the fresh PGD slot.
    assert_eq!(
        summary(&obs),
        [
            (0, 0, vec![]),
            (12, 4, vec![0]),
            (12, 4, vec![0]),
            (0, 0, vec![]),
        ]
    );
    assert!(obs.iter().all(|o| o.anon_huge_kb == 0));
    assert!(obs
        .iter()
        .all(|o| o.present.len() == (REGION_PAGES / 64) as usize));
}

#[test]
fn anon_read_maps_zero_page() {
    if !full_features("anon_read_maps_zero_page") {
        return;
    }
    let obs = run(vec![
        mmap(0, 16, AnonPrivate),
        Op::Load { page: 3 },
        Op::Store { page: 3, value: 5 },
        Op::Load { page: 3 },
    ]);
    assert_eq!(obs[1].load, Some(0));
    assert_eq!(obs[3].load, Some(5));
    // Zero page: present but not in Rss; the write then COWs it (Rss +4). No fault-around.
    assert_eq!(
        summary(&obs),
        [
            (0, 0, vec![]),
            (12, 0, vec![3]),
            (12, 4, vec![3]),
            (12, 4, vec![3]),
        ]
    );
}

#[test]
fn dontneed_reclaims_pte_table() {
    if !full_features("dontneed_reclaims_pte_table") {
        return;
    }
    let obs = run(vec![
        mmap(512, 512, AnonPrivate),
        Op::Store {
            page: 600,
            value: 1,
        },
        Op::DontNeed {
            start: 512,
            pages: 512,
        },
        Op::Load { page: 600 },
        Op::Munmap {
            start: 512,
            pages: 512,
        },
    ]);
    assert_eq!(obs[1].vm_pte_kb, 12);
    assert_eq!(obs[2].rss_kb, 0);
    assert!(present_pages(&obs[2]).is_empty());
    if host_features().pt_reclaim {
        assert_eq!(obs[2].vm_pte_kb, 8, "empty PTE table reclaimed");
    } else {
        eprintln!("dontneed_reclaims_pte_table: PT reclaim not detected, VmPTE drop not checked");
    }
    // Anon DONTNEED drops the data; the read maps the zero page (new PTE table).
    assert_eq!(obs[3].load, Some(0));
    assert_eq!((obs[3].vm_pte_kb, obs[3].rss_kb), (12, 0));
    assert_eq!((obs[4].vm_pte_kb, obs[4].rss_kb), (0, 0));
}

#[test]
fn dontneed_reclaim_needs_one_vma() {
    if !full_features("dontneed_reclaim_needs_one_vma") {
        return;
    }
    if !host_features().pt_reclaim {
        eprintln!("dontneed_reclaim_needs_one_vma: skipped: PT reclaim not detected");
        return;
    }
    let zap = |b1, b2| {
        let obs = run(vec![
            mmap(512, 256, b1),
            mmap(768, 256, b2),
            Op::Store {
                page: 600,
                value: 1,
            },
            Op::DontNeed {
                start: 512,
                pages: 512,
            },
        ]);
        obs[3].vm_pte_kb
    };
    // Adjacent anon mmaps merge into one VMA: the zap covers the whole PMD range in one VMA.
    assert_eq!(zap(AnonPrivate, AnonPrivate), 8);
    // Two VMAs: each zap covers less than 2 MiB, so the table stays.
    assert_eq!(zap(AnonPrivate, ShmemShared), 12);
    assert_eq!(zap(ShmemShared, ShmemShared), 12);
}

#[test]
fn shmem_read_fault_around() {
    if !full_features("shmem_read_fault_around") {
        return;
    }
    // VMA [5, 45). After DONTNEED the pages stay in the shmem page cache; a read fault maps
    // the cached pages of a 16-page window starting at max(16-aligned, VMA start).
    let mut ops = vec![mmap(5, 40, ShmemShared)];
    for p in [5, 18, 19, 20, 21] {
        ops.push(Op::Store { page: p, value: p });
    }
    ops.push(Op::DontNeed {
        start: 5,
        pages: 40,
    });
    ops.push(Op::Load { page: 7 });
    ops.push(Op::Load { page: 21 });
    ops.push(Op::Store { page: 40, value: 1 });
    let obs = run(ops);
    assert_eq!(summary(&obs)[6], (12, 0, vec![]));
    assert_eq!(obs[7].load, Some(0));
    assert_eq!(summary(&obs)[7], (12, 20, vec![5, 7, 18, 19, 20]));
    // Shmem keeps data across DONTNEED.
    assert_eq!(obs[8].load, Some(21));
    // Write faults do no fault-around.
    assert_eq!(summary(&obs)[9], (12, 28, vec![5, 7, 18, 19, 20, 21, 40]));
}

#[test]
fn munmap_frees_tables_only_without_neighbours() {
    if !full_features("munmap_frees_tables_only_without_neighbours") {
        return;
    }
    let obs = run(vec![
        mmap(0, 1024, AnonPrivate),
        Op::Store { page: 0, value: 1 },
        Op::Store {
            page: 600,
            value: 1,
        },
        Op::Store {
            page: 1000,
            value: 1,
        },
        Op::Munmap {
            start: 100,
            pages: 800,
        },
        Op::Munmap {
            start: 0,
            pages: 100,
        },
        Op::Munmap {
            start: 900,
            pages: 124,
        },
    ]);
    assert_eq!(
        summary(&obs)[1..],
        [
            (12, 4, vec![0]),
            (16, 8, vec![0, 600]),
            (16, 12, vec![0, 600, 1000]),
            // Both PTE tables still have a VMA in their 2 MiB range.
            (16, 8, vec![0, 1000]),
            (12, 4, vec![1000]),
            (0, 0, vec![]),
        ]
    );
}

#[test]
fn failed_syscalls_are_errors() {
    let r = HostRunner::new();
    let hole = Case {
        ops: vec![mmap(0, 4, AnonPrivate), Op::DontNeed { start: 0, pages: 5 }],
    };
    let e = r.run(&hole).expect_err("madvise over a hole fails");
    assert!(e.contains("op 1") && e.contains("errno 12"), "{e}");
    let overlap = Case {
        ops: vec![mmap(0, 4, AnonPrivate), mmap(2, 4, ShmemShared)],
    };
    let e = r.run(&overlap).expect_err("overlapping mmap fails");
    assert!(e.contains("op 1") && e.contains("errno 17"), "{e}");
    let bad = Case {
        ops: vec![Op::Store { page: 9, value: 1 }],
    };
    assert!(r.run(&bad).expect_err("invalid").contains("op 0"));
}

#[test]
fn generated_cases_leave_no_residue_and_repeat() {
    if !full_features("generated_cases_leave_no_residue_and_repeat") {
        return;
    }
    let r = HostRunner::new();
    for i in 0..30 {
        let mut case = generate(11, i);
        case.ops.push(Op::Munmap {
            start: 0,
            pages: REGION_PAGES,
        });
        let a = r
            .run_case(&case)
            .unwrap_or_else(|e| panic!("case {i}: {e}"));
        let last = a.last().cloned().unwrap_or_default();
        assert_eq!(
            (
                last.vm_pte_kb,
                last.rss_kb,
                last.anon_huge_kb,
                present_pages(&last)
            ),
            (0, 0, 0, vec![]),
            "case {i} left residue"
        );
        let b = r
            .run_case(&case)
            .unwrap_or_else(|e| panic!("case {i}: {e}"));
        assert_eq!(a, b, "case {i} not repeatable");
    }
}

#[test]
fn host_agrees_with_itself() {
    let h = HostRunner::new();
    let mask = Mask::from(host_features());
    let r = run_diff(10, 5, &h, &h, &mask, &mut |_| {});
    assert!(r.ok(), "{r}");
    // A second line may report host noise (khugepaged activity, THP allocation failures).
    let text = r.to_string();
    assert_eq!(text.lines().next(), Some("10/10 agree"), "{text}");
}

#[test]
fn missing_features_leave_defaults() {
    let r = HostRunner::with_features(HostFeatures::default());
    let case = Case {
        ops: vec![
            mmap(0, 2, ShmemShared),
            Op::Store { page: 1, value: 9 },
            Op::Load { page: 1 },
        ],
    };
    let obs = r.run_case(&case).unwrap_or_else(|e| panic!("{e}"));
    let mut expect = vec![Observation::default(); 3];
    expect[2].load = Some(9);
    assert_eq!(obs, expect);
}
