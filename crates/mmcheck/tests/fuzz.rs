//! `mmcheck fuzz`: deterministic for a seed, saves what it finds as a scenario that replays, and
//! stays quiet on the default protocol where the model bugs it found first were fixed.

use mmcheck::check::Overrides;
use mmcheck::fuzz::{run, FuzzOpts};
use mmcheck_explore::{explore, Config, Mode};
use mmcheck_scenario::{parse_scenario, KernelModel};
use std::sync::Arc;
use std::time::Duration;

fn opts(seed: u64, scenarios: u64, sets: &[(&str, &str)], out: &std::path::Path) -> FuzzOpts {
    FuzzOpts {
        seed,
        budget: Duration::from_secs(3600),
        scenarios: Some(scenarios),
        overrides: Overrides {
            protocol: None,
            sets: sets
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Overrides::default()
        },
        executions: 50,
        max_steps: 20_000,
        out: out.to_path_buf(),
        stop: Default::default(),
        first: false,
        base: None,
        directed: true,
    }
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let dir = std::env::temp_dir().join(format!("mmcheck-fuzz-det-{}", std::process::id()));
    let a = run(&opts(7, 12, &[], &dir), &mut |_| {}).unwrap();
    let b = run(&opts(7, 12, &[], &dir), &mut |_| {}).unwrap();
    assert_eq!(
        (a.scenarios, a.executions, a.sites, a.corpus),
        (b.scenarios, b.executions, b.sites, b.corpus)
    );
    assert!(a.sites > 50, "{} sites", a.sites);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_overrides_are_refused_before_any_scenario() {
    let dir = std::env::temp_dir().join("mmcheck-fuzz-bad");
    let e = run(&opts(1, 5, &[("no.such_switch", "on")], &dir), &mut |_| {}).unwrap_err();
    assert!(e.contains("no.such_switch"), "{e}");
}

/// A planted bug is found from scratch, saved shrunk, and the saved file replays to it.
#[test]
fn finds_a_planted_bug_and_saves_a_replayable_scenario() {
    let dir = std::env::temp_dir().join(format!("mmcheck-fuzz-pt-{}", std::process::id()));
    // Seed 4 finds it in its 14th scenario today (its 87th before the generator favoured
    // whole-table zaps); a change to the generator moves that, so a few seeds are tried (each
    // run is deterministic), each stopping at its first violation.
    let mut tried = Vec::new();
    let f = [4, 2, 3]
        .iter()
        .find_map(|&seed| {
            let mut o = opts(seed, 600, &[("pt_reclaim.free", "immediate")], &dir);
            o.first = true;
            let sum = run(&o, &mut |_| {}).unwrap();
            assert!(sum.found.len() <= 1, "--first stops at the first");
            tried.push((seed, sum.scenarios));
            sum.found
                .into_iter()
                .find(|f| f.kind == mmcheck_platform::ViolationKind::UseAfterFree)
        })
        .unwrap_or_else(|| panic!("no use-after-free (seed, scenarios): {tried:?}"));
    assert!(f.size.1 .1 <= f.size.0 .1);
    let text = std::fs::read_to_string(&f.file).unwrap();
    assert!(text.contains("set pt_reclaim.free = immediate"), "{text}");
    assert!(text.contains("expect violation use-after-free"), "{text}");
    let s = parse_scenario("saved.mmt", &text).unwrap();
    let sched = mmcheck_explore::Schedule::parse(&f.token).unwrap();
    let r = mmcheck_explore::schedule::replay(&Arc::new(KernelModel::new(s)), &sched, false);
    assert_eq!(r.violation.map(|v| v.kind), Some(f.kind));
    let _ = std::fs::remove_dir_all(dir);
}

/// The first model bugs `mmcheck fuzz --seed 1` found, as it found them (before shrinking by
/// hand): each ran into its violation within a few hundred PCT executions.
#[test]
fn first_findings_stay_fixed() {
    let cases = [
        // remap_page with IRQs off (deadlock); a tail a folio before its mapping (rss).
        "scenario f290\ninit {\n  mmap anon @0 pages=8 huge\n  store @7 = 17\n}\n\
         thread T0 {\n  split_huge_page @3\n}\nthread T1 {\n  numa_hint @1 pages=1\n}\n\
         thread T2 {\n  madvise dontneed @7 pages=1\n}\nexpect clean\n",
        // rmap_walk's PMD step looked outside a VMA that starts inside the folio (seed 3).
        "scenario f421\ninit {\n  mmap anon @0 pages=8\n  store @7 = 17\n}\n\
         thread T0 {\n  madvise collapse @6\n}\nthread T1 {\n  migrate @4\n}\n\
         thread T2 {\n  mremap @4 pages=4 to @24\n}\nexpect clean\n",
        // the uffd-wp contract stayed behind a page mremap moved (seed 3).
        "scenario f2862\ninit {\n  mmap shmem-private @0 pages=8 huge\n  uffd_register @0 pages=8 wp\n}\n\
         thread T0 {\n  uffd_wp @2 pages=1\n}\nthread T1 {\n  mremap @2 pages=1 to @24 dontunmap\n}\n\
         expect clean\n",
        // the TLB-permission oracle blamed a madvise that found no VMA.
        "scenario f276\ninit {\n  mmap shmem @0 pages=8\n  mmap shmem @8 pages=8 of @0\n}\n\
         thread T0 {\n  madvise dontneed @9 pages=7\n}\nthread T1 {\n  load @9\n}\n\
         thread T2 {\n  munmap @9 pages=7\n}\nexpect clean\n",
        // the TLB-permission oracle blamed mprotect(PROT_READ) for a read-only translation
        // reclaim's batched flush owed (seed 1, the merged generator).
        "scenario f2174\ninit {\n  mmap shmem @0 pages=8\n}\n\
         thread T0 {\n  load @3\n  mprotect @0 pages=8 read\n}\n\
         thread T1 {\n  store @3 = 201\n  madvise pageout @3 pages=5\n}\nexpect clean\n",
        // an rmap walk passed over mremap's moved PMD migration entry: remove_migration_pte's
        // PVMW_SYNC takes and drops the PMD lock of a none PMD (planted sweep, base protocol).
        "scenario f1340-base\n\ninit {\n  mmap anon @0 pages=8 huge\n  mmap anon @8 pages=8\n  store @2 = 12\n  store @5 = 15\n  store @8 = 18\n  store @11 = 21\n  store @12 = 22\n  store @14 = 24\n  migrate @5 unmap\n}\n\nthread T0 {\n  fork\n}\n\nthread T1 {\n  munmap @0 pages=8\n}\n\nthread T2 {\n  mremap @0 pages=8 to @16\n}\n\nexpect clean\n",
        // collapse_file ran without a file reference: munmap of the last mapping evicted the inode
        // under it (leak; planted sweep, base protocol).
        "scenario f242-base\n\ninit {\n  mmap shmem-private @0 pages=8 huge\n  mmap anon @8 pages=8\n}\n\nthread T0 {\n  store @0 = 101\n  gup_fast @0 read pin\n}\n\nthread T1 {\n  retract @0\n  load @0\n}\n\nthread T2 {\n  munmap @0 pages=8\n}\n\nexpect clean\n",
        // UFFDIO_WRITEPROTECT left a migration entry without its swap uffd-wp bit (planted sweep).
        "scenario f149-base\nset pt_reclaim = off\n\ninit {\n  mmap anon @0 pages=8 huge\n  store @0 = 10\n  store @1 = 11\n  store @2 = 12\n  store @3 = 13\n  store @4 = 14\n  store @5 = 15\n  store @7 = 17\n}\n\nthread T0 {\n  split_huge_page @0\n  mprotect @0 pages=8 read\n}\n\nthread T1 {\n  uffd_register @0 pages=8 wp\n  mprotect @4 pages=4 write\n}\n\nthread T2 {\n  uffd_wp @0 pages=8\n}\n\nexpect clean\n",
        // a UFFDIO_COPY over a marker an in-progress protect had just installed ends the contract
        // (planted sweep).
        "scenario f1048-base\nset split.invalidate_nonpresent = on\n\ninit {\n  mmap shmem-private @0 pages=8\n  mmap anon @8 pages=8\n  uffd_register @0 pages=8 wp\n}\n\nthread T0 {\n  uffd_copy @3\n  mprotect @0 pages=8 read\n}\n\nthread T1 {\n  uffd_unprotect @0 pages=8\n  uffd_wp @0 pages=8\n}\n\nthread T2 {\n  uffd_unprotect @0 pages=8\n}\n\nexpect clean\n",
        // MADV_DONTNEED found a huge zero PMD a write fault had cleared and not yet flushed (or
        // whose IPI a CPU with IRQs off had not taken): the fault's flush, not the madvise's
        // (planted sweep, PCT; the TLB-permission oracle's `TlbOwed`).
        "scenario f1156-base\nset folio_walk.lock = vma\nset folio_walk.design = lockless_rcu\n\ninit {\n  mmap anon @0 pages=8 huge\n  mmap anon @8 pages=8\n}\n\nthread T0 {\n  load @7\n}\n\nthread T1 {\n  load @7\n  migrate @0\n}\n\nthread T2 {\n  madvise dontneed @5 pages=1\n}\n\nthread T3 {\n  store @0 = 201\n}\n\nexpect clean\n",
        // try_to_migrate's split of a THP's PMD read the PMD without the PMD lock, and NUMA's
        // change_huge_pmd invalidation made it skip the split (seed 1, the merged generator;
        // scenario 666 is `fidelity/split-huge-page-vs-numa-hint-pmd`).
        "scenario f895\n\ninit {\n  mmap anon @0 pages=8 huge\n  store @7 = 17\n}\n\nthread T0 {\n  split_huge_page @0\n}\n\nthread T1 {\n  madvise free @0 pages=1\n}\n\nthread T2 {\n  numa_hint @0 pages=8\n}\n\nexpect clean\n",
        "scenario f1076-base\n\ninit {\n  mmap anon @0 pages=8 huge\n  mmap anon @8 pages=8\n  uffd_register @0 pages=8 wp\n}\n\nthread T0 {\n  load @0\n  store @0 = 101\n}\n\nthread T1 {\n  fault @0\n  uffd_move @13 pages=3 to @0 allow_src_holes\n}\n\nthread T2 {\n  madvise dontneed @0 pages=2\n}\n\nexpect clean\n",
    ];
    for text in cases {
        let s = parse_scenario("f.mmt", text).unwrap();
        let m = Arc::new(KernelModel::new(s));
        for (mode, seed) in [(Mode::Pct { depth: 3 }, 1), (Mode::Random, 2)] {
            let out = explore(
                m.clone(),
                &Config {
                    mode,
                    seed,
                    max_executions: Some(3000),
                    ..Config::default()
                },
            );
            assert!(out.inconclusive.is_none(), "{text}");
            assert!(
                out.counterexample.is_none(),
                "{text}\n{:?}",
                out.counterexample.map(|c| c.violation)
            );
        }
    }
}
