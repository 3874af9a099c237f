//! Seed 002: mTHP collapse that drops the anon_vma lock early, racing migration of a neighbouring
//! folio in the same table. While the PMD is none the table is unreachable; a
//! `remove_migration_ptes` walk then misses the neighbour's migration entry for good
//! (rmap-missed). Holding the lock until the table is back is clean.

use mmcheck_explore::{explore, Config};
use mmcheck_platform::ViolationKind;
use mmcheck_scenario::{load_scenario_file, Backing, KernelModel, Op, Scenario, SetupOp};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn scenario(anon_vma: &str) -> Scenario {
    let s =
        Scenario::new("seed-002").protocol(|p| p.set("collapse.mthp_anon_vma", anon_vma).unwrap());
    let p = |n: u64| s.page(n);
    let mut s2 = s.clone().setup(SetupOp::Mmap {
        addr: p(0),
        pages: 8,
        backing: Backing::AnonPrivate,
        huge: false,
    });
    for n in [0, 1, 2, 3, 5] {
        s2 = s2.setup(SetupOp::Store {
            addr: p(n),
            value: n + 1,
        });
    }
    s2.thread(vec![Op::Collapse {
        addr: p(0),
        order: 2,
        khugepaged: false,
    }])
    .thread(vec![
        Op::Migrate {
            addr: p(5),
            unmap_only: false,
        },
        Op::Load { addr: p(5) },
    ])
}

fn run(s: Scenario) -> mmcheck_explore::Outcome {
    explore(
        Arc::new(KernelModel::new(s)),
        &Config {
            budget: Some(Duration::from_secs(120)),
            ..Config::default()
        },
    )
}

#[test]
fn drop_early_misses_the_neighbour() {
    let out = run(scenario("drop_early"));
    let cx = out.counterexample.expect("rmap-missed expected");
    assert_eq!(
        cx.violation.kind,
        ViolationKind::RmapMissed,
        "{}",
        cx.violation
    );
}

#[test]
fn hold_is_clean() {
    let out = run(scenario("hold"));
    if let Some(cx) = &out.counterexample {
        panic!("{} ({})", cx.violation, cx.schedule);
    }
    assert!(out.complete);
    eprintln!(
        "collapse.mthp_anon_vma=hold: clean in {} executions, {:.2?}",
        out.executions, out.elapsed
    );
}

/// v18's `WARN_ON_ONCE(!pmd_none(*pmd))` goes on to `pmd_populate`: with a fault's table at the
/// PMD (reachable once collapse skips `vma_start_write`), the overwrite leaks that table and the
/// fault's folio, and the checks at quiescence say so; `BUG_ON` stops at the assertion instead.
#[test]
fn warn_overwrite_leaks_what_it_overwrote() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scenarios/seeds/seed-002-warn-overwrite.mmt");
    let s = load_scenario_file(&path).unwrap_or_else(|e| panic!("{}", e.render()));
    let warn = run(s.with_variant(Some("no-vma-lock")).unwrap());
    let cx = warn.counterexample.expect("the overwrite must be reported");
    assert_eq!(cx.violation.kind, ViolationKind::CounterMismatch);
    assert!(cx.violation.msg.contains("nr_ptes"), "{}", cx.violation);
    assert!(
        warn.violation_kinds.contains(&ViolationKind::Leak),
        "the overwritten table and folio are leaked: {:?}",
        warn.violation_kinds
    );
    let bug = run(s.with_variant(Some("no-vma-lock-bug")).unwrap());
    let cx = bug.counterexample.expect("BUG_ON must fire");
    assert_eq!(cx.violation.kind, ViolationKind::Assertion);
    assert!(cx.violation.msg.contains("BUG_ON"), "{}", cx.violation);
}
