//! Seed 002: mTHP collapse that drops the anon_vma lock early, racing migration of a neighbouring
//! folio in the same table. While the PMD is none the table is unreachable; a
//! `remove_migration_ptes` walk then misses the neighbour's migration entry for good
//! (rmap-missed). Holding the lock until the table is back is clean.

use mmcheck_explore::{explore, Config};
use mmcheck_platform::ViolationKind;
use mmcheck_scenario::{Backing, KernelModel, Op, Scenario, SetupOp};
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
    .thread(vec![Op::Migrate { addr: p(5) }, Op::Load { addr: p(5) }])
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
