//! Mutation sites, mutants and the atlas (docs/mutation.md): the catalogue reaches at least 100
//! sites across the modelled paths, a mutant of a site the catalogue's seed rows are about
//! breaks that row, and the atlas is the same on every run.

use mmcheck::atlas::{self, AtlasOpts, Finding};
use mmcheck::check::load;
use mmcheck::sites::{self, Row};
use mmcheck_explore::{explore, Config, Mode};
use mmcheck_scenario::KernelModel;
use std::sync::Arc;

fn catalogue_rows() -> Vec<Row> {
    sites::rows(&load(&[]), &Default::default()).expect("the catalogue loads")
}

#[test]
fn the_catalogue_reaches_a_hundred_sites_across_the_paths() {
    let rows = catalogue_rows();
    let found = sites::collect(&rows, 8, 2);
    assert!(found.len() >= 100, "{} sites", found.len());
    // Each area of the protocol has lock sites and recheck sites of its own.
    for func in [
        "handle_pte_fault",     // fault
        "do_anonymous_page",    // fault
        "zap_pte_range",        // zap
        "try_to_free_pte",      // PT reclaim
        "collapse_huge_page",   // khugepaged
        "retract_page_tables",  // retract
        "move_ptes",            // mremap
        "rmap_walk_anon",       // rmap
        "page_vma_mapped_walk", // rmap
        "migrate_pages",        // migration
        "gup_fast",             // GUP-fast
        "folio_walk_start",     // folio_walk
        "lock_vma_under_rcu",   // per-VMA lock
    ] {
        assert!(
            found.keys().any(|k| k.func == func),
            "no site in {func}: {:?}",
            found.keys().map(|k| k.to_string()).collect::<Vec<_>>()
        );
    }
    let rechecks = found.values().filter(|r| r.kind == "recheck").count();
    assert!(rechecks >= 25, "{rechecks} recheck sites");
    for site in [
        "move_ptes:&anon_vma->rwsem",
        "gup_fast:local_irq_disable",
        "gup_fast:pte_same",
        "retract_page_tables:check_pmd_state",
        "pte_offset_map_lock:pmd_same",
        "try_to_free_pte:pte_none",
    ] {
        let k = site.parse().unwrap();
        let r = found.get(&k).unwrap_or_else(|| panic!("{site} not found"));
        assert_ne!(r.kernel_file, "?", "{site}");
        assert!(!r.places.is_empty() && !r.rows.is_empty(), "{site}");
    }
}

#[test]
fn skipping_the_rmap_lock_of_move_ptes_breaks_seed_004() {
    let rows = catalogue_rows();
    let row = rows
        .iter()
        .find(|r| r.file.ends_with("seed-004-mremap-rmap-locks.mmt") && r.variant.is_none())
        .expect("the seed-004 row");
    let run = |mutate: Option<&str>| {
        let mut s = (*row.scenario).clone();
        s.mutate = mutate.map(|m| m.parse().unwrap());
        let cfg = Config {
            mode: Mode::Dpor,
            stop_on_violation: true,
            ..Config::default()
        };
        explore(Arc::new(KernelModel::new(s)), &cfg)
    };
    let clean = run(None);
    assert!(clean.complete && clean.counterexample.is_none());
    let broken = run(Some("move_ptes:&anon_vma->rwsem"));
    let v = broken.counterexample.expect("a violation").violation;
    assert_eq!(v.kind.to_string(), "rmap-missed", "{v}");
    // Another caller's site of the same lock class is not this one: without copy_vma's anon_vma
    // lock the new VMA's range changes unordered with the rmap walker's reads of it, which the
    // check of lock-protected fields reports (a data race, not move_ptes' missed mapping).
    let other = run(Some("copy_vma:&anon_vma->rwsem"));
    let v = other.counterexample.expect("a violation").violation;
    assert_eq!(v.kind.to_string(), "data-race", "{v}");
}

#[test]
fn the_atlas_of_a_site_is_deterministic() {
    let rows = catalogue_rows();
    let mut found = sites::collect(&rows, 8, 1);
    found.retain(|k, _| k.func == "move_ptes");
    let opts = AtlasOpts {
        filter: vec!["move_ptes:&anon_vma".into()],
        row_executions: 400,
        rows_per_site: 4,
        fuzz_scenarios: 0,
        fuzz_budget: std::time::Duration::from_secs(1),
        seed: 1,
        jobs: 1,
        shard: None,
        out: std::env::temp_dir().join("mmcheck-atlas-test"),
        stop: Default::default(),
    };
    let a = atlas::run(&rows, &found, &opts, &|_| {});
    let b = atlas::run(&rows, &found, &opts, &|_| {});
    assert_eq!(a.sites, 1);
    assert_eq!(a.by_catalogue, 1);
    let replay = |a: &atlas::Atlas| match &a.entries[0].finding {
        Finding::Catalogue {
            replay, violation, ..
        } => (replay.clone(), violation.clone()),
        other => panic!("not broken by the catalogue: {other:?}"),
    };
    assert_eq!(replay(&a), replay(&b));
    assert_eq!(replay(&a).1, "rmap-missed");
    assert!(atlas::markdown(&a).contains("| [`move_ptes:&anon_vma->rwsem`]"));
    assert!(atlas::score(&a).contains("1 of 1 sites (100%) broken by the catalogue alone"));
}

#[test]
fn atlas_shards_merge_to_one_run() {
    let rows = catalogue_rows();
    let mut found = sites::collect(&rows, 8, 1);
    found.retain(|k, _| k.func == "move_ptes");
    let opts = |shard: Option<mmcheck_explore::Shard>| AtlasOpts {
        filter: Vec::new(),
        row_executions: 200,
        rows_per_site: 2,
        fuzz_scenarios: 0,
        fuzz_budget: std::time::Duration::from_secs(1),
        seed: 1,
        jobs: 1,
        shard,
        out: std::env::temp_dir().join("mmcheck-atlas-test"),
        stop: Default::default(),
    };
    let whole = atlas::run(&rows, &found, &opts(None), &|_| {});
    let parts = (0..2)
        .map(|index| {
            let s = mmcheck_explore::Shard { index, count: 2 };
            atlas::run(&rows, &found, &opts(Some(s)), &|_| {})
        })
        .collect();
    let merged = atlas::merge(parts);
    let table = |a: &atlas::Atlas| {
        let md = atlas::markdown(a);
        md.lines()
            .filter(|l| l.starts_with('|'))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(merged.sites, whole.sites);
    assert_eq!(table(&merged), table(&whole));
}
