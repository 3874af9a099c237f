//! The differential test must be able to fail: a model with a protocol knob flipped away from the
//! host's behaviour diverges, and the divergence is found and shrunk. Hand-written cases pin the
//! host's exact behaviour for mremap, MADV_HUGEPAGE and MADV_COLLAPSE, and check the model on them.

use mmcheck::model_runner::ModelRunner;
use mmcheck_hostdiff::case::{Backing, Case, CaseRunner, Observation, Op};
use mmcheck_hostdiff::compare::{first_divergence, run_diff, Field, Mask};
use mmcheck_hostdiff::host::{host_features, HostFeatures, HostRunner};
use mmcheck_kernel::Protocol;

fn setup() -> Option<(HostRunner, Mask)> {
    let f = host_features();
    if !(f.vm_pte && f.smaps_rollup && f.pagemap) {
        eprintln!("skipped: host lacks VmPTE, smaps_rollup or pagemap ({f:?})");
        return None;
    }
    Some((HostRunner::with_features(f), Mask::from(f)))
}

#[test]
fn default_model_agrees_with_host() {
    let Some((host, mask)) = setup() else { return };
    let proto = Protocol {
        pt_reclaim: host.features().pt_reclaim,
        ..Protocol::default()
    };
    let r = run_diff(60, 11, &host, &ModelRunner { proto }, &mask, &mut |_| {});
    assert!(r.ok(), "{r}");
    assert_eq!(r.agreed + r.skipped.len() as u64, 60, "{r}");
}

/// 60 cases of `mix` from `seed` agree with the host (or are skipped as disturbed).
fn mix_agrees(seed: u64, mix: mmcheck_hostdiff::gen::OpMix) {
    let Some((host, mask)) = setup() else { return };
    let proto = Protocol {
        pt_reclaim: host.features().pt_reclaim,
        ..Protocol::default()
    };
    let r = mmcheck_hostdiff::compare::run_diff_mix(
        60,
        seed,
        mix,
        &host,
        &ModelRunner { proto },
        &mask,
        &mut |_| {},
    );
    assert!(r.ok(), "{r}");
    assert_eq!(r.agreed + r.skipped.len() as u64, 60, "{r}");
}

#[test]
fn extended_mix_agrees_with_host() {
    mix_agrees(2, mmcheck_hostdiff::gen::OpMix::Extended);
}

#[test]
fn missing_fault_around_diverges() {
    let Some((host, mask)) = setup() else { return };
    let proto = Protocol {
        fault_around_pages: 1,
        pt_reclaim: host.features().pt_reclaim,
        ..Protocol::default()
    };
    let r = run_diff(300, 1, &host, &ModelRunner { proto }, &mask, &mut |_| {});
    let (_, case, div) = r.first.expect("a model without fault-around must diverge");
    assert!(matches!(div.field, Field::Rss | Field::Present), "{div}");
    assert!(case.ops.len() <= 6, "shrunk to {} ops", case.ops.len());
}

#[test]
fn missing_pt_reclaim_diverges() {
    let Some((host, mask)) = setup() else { return };
    if !host.features().pt_reclaim {
        eprintln!("skipped: host kernel does not reclaim PTE tables on MADV_DONTNEED");
        return;
    }
    let proto = Protocol {
        pt_reclaim: false,
        ..Protocol::default()
    };
    let r = run_diff(500, 1, &host, &ModelRunner { proto }, &mask, &mut |_| {});
    let (_, _, div) = r.first.expect("a model without PT reclaim must diverge");
    assert_eq!(div.field, Field::VmPte, "{div}");
}

// ---- Hand-written cases with exact host expectations. ----

const ANON: Backing = Backing::AnonPrivate;

fn mmap(start: u64, pages: u64) -> Op {
    Op::Mmap {
        start,
        pages,
        backing: ANON,
    }
}

fn store(page: u64, value: u64) -> Op {
    Op::Store { page, value }
}

fn load(page: u64) -> Op {
    Op::Load { page }
}

fn mremap(start: u64, pages: u64, new_start: u64) -> Op {
    Op::Mremap {
        start,
        pages,
        new_start,
    }
}

fn collapse(start: u64, pages: u64) -> Op {
    Op::Collapse { start, pages }
}

fn hugepage(start: u64, pages: u64) -> Op {
    Op::Hugepage { start, pages }
}

/// What one op must leave behind on the host: VmPTE, Rss, AnonHugePages (kB deltas), errno, the
/// loaded value, and the present pages as `[start, end)` ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Expect {
    op: usize,
    vm_pte: i64,
    rss: i64,
    anon_huge: i64,
    errno: i32,
    load: Option<u64>,
    present: Vec<(u64, u64)>,
}

fn expect(op: usize, vm_pte: i64, rss: i64, anon_huge: i64, present: &[(u64, u64)]) -> Expect {
    Expect {
        op,
        vm_pte,
        rss,
        anon_huge,
        errno: 0,
        load: None,
        present: present.to_vec(),
    }
}

impl Expect {
    fn errno(mut self, e: i32) -> Self {
        self.errno = e;
        self
    }
    fn load(mut self, v: u64) -> Self {
        self.load = Some(v);
        self
    }
}

/// Present pages of an observation as maximal `[start, end)` ranges.
fn present_ranges(o: &Observation) -> Vec<(u64, u64)> {
    let bit = |p: u64| {
        o.present
            .get((p / 64) as usize)
            .is_some_and(|w| w >> (p % 64) & 1 == 1)
    };
    let n = o.present.len() as u64 * 64;
    let mut out = Vec::new();
    let mut p = 0;
    while p < n {
        if !bit(p) {
            p += 1;
            continue;
        }
        let a = p;
        while p < n && bit(p) {
            p += 1;
        }
        out.push((a, p));
    }
    out
}

fn observed(o: &Observation, op: usize) -> Expect {
    Expect {
        op,
        vm_pte: o.vm_pte_kb,
        rss: o.rss_kb,
        anon_huge: o.anon_huge_kb,
        errno: o.errno,
        load: o.load,
        present: present_ranges(o),
    }
}

/// Host features a THP case needs; `None` (with a message) if the host lacks one.
fn thp_host(need_collapse: bool) -> Option<(HostRunner, Mask)> {
    let (host, mask) = setup()?;
    let f: HostFeatures = host.features();
    if !f.thp {
        eprintln!("skipped: THP is not enabled for anonymous memory on this host");
        return None;
    }
    if need_collapse && !f.madv_collapse {
        eprintln!("skipped: MADV_COLLAPSE does not work on this host");
        return None;
    }
    Some((host, mask))
}

fn model() -> ModelRunner {
    ModelRunner {
        proto: Protocol {
            pt_reclaim: host_features().pt_reclaim,
            ..Protocol::default()
        },
    }
}

/// Run `case` on the host (retrying runs disturbed by host-wide THP noise), check `want`, and
/// return the observations. `None` if every run was disturbed (a THP allocation failed).
fn host_obs(host: &HostRunner, case: &Case, want: &[Expect]) -> Option<Vec<Observation>> {
    for _ in 0..4 {
        let r = host.run_case_noted(case).expect("host run");
        if let Some(n) = &r.noise {
            eprintln!("host run disturbed ({n}); retrying");
            continue;
        }
        for w in want {
            let got = observed(&r.obs[w.op], w.op);
            assert_eq!(
                &got, w,
                "host, op {} ({:?}) of {case:?}",
                w.op, case.ops[w.op]
            );
        }
        return Some(r.obs);
    }
    eprintln!("skipped: every host run was disturbed by THP noise");
    None
}

/// Check the host expectations, then that the model agrees with the host on every field.
fn check(host: &HostRunner, mask: &Mask, case: &Case, want: &[Expect]) {
    let Some(h) = host_obs(host, case, want) else {
        return;
    };
    let m = model().run(case).expect("model run");
    if let Some(d) = first_divergence(case, &h, &m, mask) {
        panic!("model diverges from the host on {case:?}: {d}");
    }
}

/// mremap_test.c "PMD-aligned" move: source and destination 2 MiB aligned, whole PMD: the PTE
/// table moves with `move_normal_pmd` (VmPTE unchanged) and so do the contents.
#[test]
fn pmd_aligned_move_moves_the_table_and_contents() {
    let Some((host, mask)) = setup() else { return };
    let case = Case {
        ops: vec![
            mmap(512, 512),
            store(512, 11),
            store(1023, 22),
            mremap(512, 512, 1536),
            load(1536),
            load(2047),
            load(1600),
        ],
    };
    let moved = [(1536, 1537), (2047, 2048)];
    let want = [
        expect(2, 12, 8, 0, &[(512, 513), (1023, 1024)]),
        expect(3, 12, 8, 0, &moved),
        expect(4, 12, 8, 0, &moved).load(11),
        expect(5, 12, 8, 0, &moved).load(22),
        // A read fault on an untouched anonymous page maps the zero page: not in Rss.
        expect(6, 12, 8, 0, &[(1536, 1537), (1600, 1601), (2047, 2048)]).load(0),
    ];
    check(&host, &mask, &case, &want);
}

/// mremap_test.c "PTE-aligned" and PMD-straddling moves: the entries are moved one by one into a
/// new table at the destination; the old table goes when the old range is unmapped.
#[test]
fn pte_aligned_and_straddling_moves() {
    let Some((host, mask)) = setup() else { return };
    let case = Case {
        ops: vec![
            mmap(500, 24),
            store(500, 1),
            store(523, 2),
            // Straddles the PMD boundary at 512, destination mutually aligned (offset 500).
            mremap(500, 24, 1524),
            load(1523 + 1),
            load(1547),
            // Misaligned destination.
            mremap(1524, 24, 3001),
            load(3001),
            load(3024),
        ],
    };
    let want = [
        // Two PTE tables (500..512 and 512..524), one PMD, one PUD.
        expect(2, 16, 8, 0, &[(500, 501), (523, 524)]),
        expect(3, 16, 8, 0, &[(1524, 1525), (1547, 1548)]),
        expect(5, 16, 8, 0, &[(1524, 1525), (1547, 1548)]).load(2),
        expect(6, 12, 8, 0, &[(3001, 3002), (3024, 3025)]),
        expect(7, 12, 8, 0, &[(3001, 3002), (3024, 3025)]).load(1),
        expect(8, 12, 8, 0, &[(3001, 3002), (3024, 3025)]).load(2),
    ];
    check(&host, &mask, &case, &want);
}

/// MADV_COLLAPSE of a fully populated aligned 2 MiB anonymous range: AnonHugePages 2048 kB, Rss
/// unchanged, VmPTE unchanged (the old PTE table is deposited for a later split), contents kept.
#[test]
fn collapse_of_a_populated_range_deposits_the_table() {
    let Some((host, mask)) = thp_host(true) else {
        return;
    };
    let mut ops = vec![mmap(512, 512)];
    ops.extend((512..1024).map(|p| store(p, p * 3)));
    let c = ops.len();
    ops.extend([collapse(512, 512), load(512), load(777), load(1023)]);
    let case = Case { ops };
    let all = [(512, 1024)];
    let want = [
        expect(c - 1, 12, 2048, 0, &all),
        expect(c, 12, 2048, 2048, &all),
        expect(c + 1, 12, 2048, 2048, &all).load(512 * 3),
        expect(c + 2, 12, 2048, 2048, &all).load(777 * 3),
        expect(c + 3, 12, 2048, 2048, &all).load(1023 * 3),
    ];
    check(&host, &mask, &case, &want);
}

/// MADV_COLLAPSE fills the none PTEs of a sparse range, and its range rules: a VMA never written
/// (no anon_vma) is refused, a none PMD stops the walk with EINVAL (the next PMD range is not
/// collapsed), an already huge PMD counts as collapsed, a range inside one PMD range that does not
/// start on its boundary fails (unsigned `hend - hstart` wraps).
#[test]
fn collapse_range_rules() {
    let Some((host, mask)) = thp_host(true) else {
        return;
    };
    const EINVAL: i32 = 22;
    let case = Case {
        ops: vec![
            mmap(0, 1536),
            // 0: no anon_vma yet.
            collapse(0, 512),
            store(5, 1),
            // 2: one page in the first PMD range; the second has no PTE table (PMD none): the
            // first is collapsed, then the walk stops at the second, and the third is left.
            store(1100, 2),
            collapse(0, 1536),
            // 5: the first is huge now, the second still none: EINVAL again.
            collapse(0, 1024),
            // 6: inside one PMD range, not from its start.
            collapse(1030, 10),
            // 7: from a PMD boundary into the range: nothing to do, success.
            collapse(1024, 10),
            load(5),
            load(6),
        ],
    };
    let third = (1100, 1101);
    let want = [
        expect(1, 0, 0, 0, &[]).errno(EINVAL),
        expect(3, 16, 8, 0, &[(5, 6), third]),
        expect(4, 16, 2052, 2048, &[(0, 512), third]).errno(EINVAL),
        expect(5, 16, 2052, 2048, &[(0, 512), third]).errno(EINVAL),
        expect(6, 16, 2052, 2048, &[(0, 512), third]).errno(EINVAL),
        expect(7, 16, 2052, 2048, &[(0, 512), third]),
        expect(8, 16, 2052, 2048, &[(0, 512), third]).load(1),
        expect(9, 16, 2052, 2048, &[(0, 512), third]).load(0),
    ];
    check(&host, &mask, &case, &want);
}

/// Faults in a MADV_HUGEPAGE region: a write maps a THP (AnonHugePages, Rss 2 MiB, the PTE table
/// deposited), a read maps the huge zero page (VmPTE grows by the deposited table only).
#[test]
fn thp_faults_in_a_hugepage_region() {
    let Some((host, mask)) = thp_host(false) else {
        return;
    };
    let case = Case {
        ops: vec![
            mmap(512, 1024),
            hugepage(512, 1024),
            store(600, 5),
            load(1100),
            load(600),
        ],
    };
    let want = [
        expect(2, 12, 2048, 2048, &[(512, 1024)]),
        expect(3, 16, 2048, 2048, &[(512, 1536)]).load(0),
        expect(4, 16, 2048, 2048, &[(512, 1536)]).load(5),
    ];
    check(&host, &mask, &case, &want);
}

/// Known divergences of the model from the host (see the report of this change): host-side
/// expectations, always checked.
fn known_divergences() -> Vec<(&'static str, Case, Vec<Expect>)> {
    vec![
        (
            "D1 khugepaged: MADV_COLLAPSE of a PTE table with no present page (none/zero only)",
            Case {
                ops: vec![mmap(0, 1024), store(0, 1), load(512), collapse(512, 512)],
            },
            vec![expect(3, 16, 2052, 2048, &[(0, 1), (512, 1024)])],
        ),
        (
            "D2 khugepaged: MADV_COLLAPSE of a PTE-mapped THP",
            Case {
                ops: vec![
                    mmap(0, 512),
                    hugepage(0, 512),
                    store(0, 7),
                    Op::DontNeed { start: 0, pages: 1 },
                    collapse(0, 512),
                    load(1),
                ],
            },
            vec![
                expect(3, 12, 2044, 0, &[(1, 512)]),
                expect(4, 12, 2048, 2048, &[(0, 512)]),
            ],
        ),
        (
            "D3 mremap: whole-PMD move of a huge PMD (move_huge_pmd)",
            Case {
                ops: vec![
                    mmap(0, 512),
                    store(0, 7),
                    collapse(0, 512),
                    mremap(0, 512, 1024),
                    load(1024),
                ],
            },
            vec![
                expect(3, 12, 2048, 2048, &[(1024, 1536)]),
                expect(4, 12, 2048, 2048, &[(1024, 1536)]).load(7),
            ],
        ),
        (
            "D3 mremap: partial move out of a huge PMD (split_huge_pmd first)",
            Case {
                ops: vec![
                    mmap(0, 512),
                    store(0, 7),
                    collapse(0, 512),
                    mremap(0, 1, 1024),
                    load(1024),
                ],
            },
            vec![
                expect(3, 16, 2048, 0, &[(1, 512), (1024, 1025)]),
                expect(4, 16, 2048, 0, &[(1, 512), (1024, 1025)]).load(7),
            ],
        ),
        (
            "D4 huge_memory: write fault on the huge zero PMD allocates a THP",
            Case {
                ops: vec![mmap(0, 512), hugepage(0, 512), load(0), store(0, 3)],
            },
            vec![
                expect(2, 12, 0, 0, &[(0, 512)]).load(0),
                expect(3, 12, 2048, 2048, &[(0, 512)]),
            ],
        ),
        (
            "D5 vma: MADV_HUGEPAGE merges with a VM_HUGEPAGE neighbour",
            Case {
                ops: vec![
                    mmap(0, 1024),
                    hugepage(0, 256),
                    hugepage(256, 768),
                    store(0, 1),
                ],
            },
            vec![expect(3, 12, 2048, 2048, &[(0, 512)])],
        ),
        (
            "D5 vma: MADV_HUGEPAGE on a VM_HUGEPAGE VMA is a no-op (no split)",
            Case {
                ops: vec![
                    mmap(0, 1024),
                    hugepage(0, 1024),
                    hugepage(100, 10),
                    store(0, 1),
                ],
            },
            vec![expect(3, 12, 2048, 2048, &[(0, 512)])],
        ),
        (
            "D6 vma: a VMA split inside a huge PMD splits the PMD (vma_adjust_trans_huge)",
            Case {
                ops: vec![mmap(0, 512), store(0, 1), collapse(0, 512), hugepage(0, 1)],
            },
            vec![expect(3, 12, 2048, 0, &[(0, 512)])],
        ),
        (
            "D7 mremap: copy_vma gives a never-faulted anon VMA the pgoff of its new address",
            Case {
                ops: vec![
                    mmap(0, 256),
                    mremap(0, 256, 512),
                    // Merges with the moved VMA only if its pgoff is now 512.
                    mmap(768, 256),
                    hugepage(512, 512),
                    store(512, 1),
                ],
            },
            vec![expect(4, 12, 2048, 2048, &[(512, 1024)])],
        ),
        (
            "D7 mremap: copy_vma merges with both neighbours (one anon_vma missing is fine)",
            Case {
                ops: vec![
                    mmap(512, 512),
                    mremap(1019, 1, 0),
                    store(512, 1),
                    mremap(0, 1, 1019),
                    Op::DontNeed {
                        start: 512,
                        pages: 512,
                    },
                ],
            },
            vec![expect(4, 8, 0, 0, &[])],
        ),
    ]
}

#[test]
fn known_divergences_host_side() {
    let Some((host, _)) = thp_host(true) else {
        return;
    };
    for (what, case, want) in known_divergences() {
        eprintln!("{what}");
        host_obs(&host, &case, &want);
    }
}

/// Un-ignore once the model is fixed: the model agrees with the host on every known divergence.
#[test]

fn known_divergences_model_agrees() {
    let Some((host, mask)) = thp_host(true) else {
        return;
    };
    let mut bad = Vec::new();
    for (what, case, want) in known_divergences() {
        let Some(h) = host_obs(&host, &case, &want) else {
            continue;
        };
        match model().run(&case) {
            Err(e) => bad.push(format!("{what}: model error {e}")),
            Ok(m) => {
                if let Some(d) = first_divergence(&case, &h, &m, &mask) {
                    bad.push(format!("{what}: {d}"));
                }
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// fork and mprotect as the host does them: the child sees the parent's data as of the fork and
/// COW keeps the two views apart (no page is added to the parent's Rss: it keeps one copy); a
/// write to a THP shared with the child splits the huge PMD in the parent (AnonHugePages drops,
/// the deposited table takes over, Rss stays); and mprotect read-only then back merges the VMAs
/// again, so MADV_DONTNEED of the whole PMD range frees its PTE table (VmPTE -4 kB), unless
/// `VM_ACCOUNT` tells the pieces apart.
#[test]
fn fork_and_mprotect_pin_the_host() {
    let Some((host, mask)) = thp_host(false) else {
        return;
    };
    let [cow, thp, merge, collapse_after, account] =
        <[Case; 5]>::try_from(process_cases()).expect("five cases");
    let cow_want = [
        expect(4, 12, 8, 0, &[(0, 2)]),
        expect(5, 12, 8, 0, &[(0, 2)]).load(1),
        expect(7, 12, 8, 0, &[(0, 2)]).load(2),
        expect(8, 12, 8, 0, &[(0, 2)]).load(20),
        expect(10, 12, 8, 0, &[(0, 2)]).load(10),
        expect(11, 12, 8, 0, &[(0, 2)]),
    ];
    check(&host, &mask, &cow, &cow_want);
    let thp_want = [
        expect(3, 12, 2048, 2048, &[(0, 512)]),
        expect(4, 12, 2048, 0, &[(0, 512)]),
        expect(6, 12, 2048, 0, &[(0, 512)]).load(0),
        expect(8, 12, 2048, 2048, &[(0, 512)]),
    ];
    if host.features().madv_collapse {
        check(&host, &mask, &thp, &thp_want);
    }
    let merge_want = [expect(3, 12, 4, 0, &[(512, 513)]), expect(4, 8, 0, 0, &[])];
    if host.features().pt_reclaim {
        check(&host, &mask, &merge, &merge_want);
    }
    // scenarios/selftests/mprotect-merge-back.mmt: one VMA again, so MADV_COLLAPSE succeeds.
    let collapse_want = [
        expect(5, 12, 2048, 2048, &[(0, 512)]),
        expect(6, 12, 2048, 2048, &[(0, 512)]).load(2),
    ];
    if host.features().madv_collapse {
        check(&host, &mask, &collapse_after, &collapse_want);
    }
    // VM_ACCOUNT: page 0 lost it going read-only (no anon_vma yet), the rest kept it (page 1 was
    // written), so the two read-only VMAs do not merge and the table stays (VmPTE 12 kB).
    if host.features().pt_reclaim {
        check(&host, &mask, &account, &[expect(4, 12, 0, 0, &[])]);
    }
}

#[test]
fn process_mix_agrees_with_host() {
    mix_agrees(4, mmcheck_hostdiff::gen::OpMix::Process);
}

/// The cases of `fork_and_mprotect_pin_the_host`.
fn process_cases() -> Vec<Case> {
    let fork = Op::Fork;
    let cload = |page| Op::ChildLoad { page };
    let cstore = |page, value| Op::ChildStore { page, value };
    let mprotect = |start, pages, write| Op::Mprotect {
        start,
        pages,
        write,
    };
    vec![
        Case {
            ops: vec![
                mmap(0, 4),
                store(0, 1),
                store(1, 2),
                fork,
                store(0, 10),
                cload(0),
                cstore(1, 20),
                load(1),
                cload(1),
                Op::ChildExit,
                load(0),
                store(1, 3),
            ],
        },
        Case {
            ops: vec![
                mmap(0, 512),
                hugepage(0, 512),
                store(0, 7),
                fork,
                store(1, 8),
                load(0),
                cload(1),
                Op::ChildExit,
                collapse(0, 512),
            ],
        },
        Case {
            ops: vec![
                mmap(365, 659),
                mprotect(617, 1, false),
                mprotect(365, 253, true),
                store(512, 5),
                Op::DontNeed {
                    start: 512,
                    pages: 512,
                },
            ],
        },
        Case {
            ops: vec![
                mmap(0, 512),
                store(0, 1),
                store(3, 2),
                mprotect(2, 2, false),
                mprotect(2, 2, true),
                collapse(0, 512),
                load(3),
            ],
        },
        Case {
            ops: vec![
                mmap(0, 512),
                mprotect(0, 1, false),
                store(1, 0),
                mprotect(0, 512, false),
                Op::DontNeed {
                    start: 0,
                    pages: 512,
                },
            ],
        },
    ]
}

/// MADV_FREE and MADV_PAGEOUT without swap (the host has none, the model neither): MADV_PAGEOUT
/// keeps a dirty anonymous page; after MADV_FREE it discards a page left clean (the next load maps
/// the zero page and reads 0) and keeps one stored to since (the store re-dirtied the PTE, and
/// `try_to_unmap_one` saw it).
#[test]
fn madv_free_then_pageout_discards_only_clean_pages() {
    let Some((host, mask)) = setup() else { return };
    let case = Case {
        ops: vec![
            mmap(0, 4),
            store(0, 1),
            store(1, 2),
            store(2, 3),
            Op::Pageout { start: 2, pages: 1 },
            Op::Free { start: 0, pages: 2 },
            store(1, 5),
            Op::Pageout { start: 0, pages: 2 },
            load(0),
            load(1),
            load(2),
        ],
    };
    let want = [
        expect(4, 12, 12, 0, &[(0, 3)]),
        expect(5, 12, 12, 0, &[(0, 3)]),
        expect(7, 12, 8, 0, &[(1, 3)]),
        expect(8, 12, 8, 0, &[(0, 3)]).load(0),
        expect(9, 12, 8, 0, &[(0, 3)]).load(5),
        expect(10, 12, 8, 0, &[(0, 3)]).load(3),
    ];
    check(&host, &mask, &case, &want);
}

/// Without the lazyfree dirty check (`lazyfree.dirty_check = off`) the model discards the page
/// stored to after MADV_FREE, and the differential test finds it.
#[test]
fn missing_lazyfree_dirty_check_diverges() {
    let Some((host, mask)) = setup() else { return };
    let case = Case {
        ops: vec![
            mmap(0, 2),
            store(0, 1),
            Op::Free { start: 0, pages: 1 },
            store(0, 7),
            Op::Pageout { start: 0, pages: 1 },
            load(0),
        ],
    };
    let Some(h) = host_obs(&host, &case, &[expect(5, 12, 4, 0, &[(0, 1)]).load(7)]) else {
        return;
    };
    let m = ModelRunner {
        proto: Protocol {
            lazyfree_dirty_check: false,
            pt_reclaim: host.features().pt_reclaim,
            ..Protocol::default()
        },
    }
    .run(&case)
    .expect("model run");
    let d = first_divergence(&case, &h, &m, &mask).expect("the unchecked model must diverge");
    assert_eq!(d.op_index, 4, "{d}");
    check(&host, &mask, &case, &[]);
}
