//! The swap-in race fixed by 13ddaf26be32 ("mm/swap: fix race when skipping swapcache", Kairui
//! Song, 6.8-rc5). Two faults of one swapped-out page on a `SWP_SYNCHRONOUS_IO` device both skip
//! the swap cache; one finishes, the page it mapped is stored to and swapped out again to the
//! same slot, and the other's `pte_same` recheck passes on the unchanged swap PTE (ABA). The
//! scenario is too large for an exhaustive search (a swap-in racing a full reclaim pass: some
//! 10^5-10^6 executions), so it is explored with a preemption bound of 2, which the race needs
//! (T0 stops inside its swap-in, T1 runs to the end, T0 resumes): the switch off gives the lost
//! write, the fixed protocol gives nothing within the same bound.

use mmcheck_explore::{explore, Config, Mode};
use mmcheck_platform::ViolationKind;
use mmcheck_scenario::{parse_scenario, KernelModel};
use std::sync::Arc;

const RACE: &str = include_str!("swapin-skip-swapcache-vs-swapin-reuse.mmt");

fn run(variant: Option<&str>) -> mmcheck_explore::Outcome {
    let s = parse_scenario("swapin-skip-swapcache-vs-swapin-reuse.mmt", RACE)
        .unwrap_or_else(|e| panic!("{}", e.render()));
    let sv = s.with_variant(variant).unwrap();
    explore(
        Arc::new(KernelModel::new(sv).with_strict(true)),
        &Config {
            mode: Mode::Dpor,
            preemption_bound: Some(2),
            max_executions: Some(50_000),
            ..Config::default()
        },
    )
}

#[test]
fn skipping_the_swap_cache_without_swapcache_prepare_loses_a_write() {
    let out = run(Some("no-swapcache-prepare"));
    let cx = out
        .counterexample
        .unwrap_or_else(|| panic!("not found in {} executions", out.executions));
    assert_eq!(
        cx.violation.kind,
        ViolationKind::LostWrite,
        "{}",
        cx.violation
    );
}

#[test]
fn swapcache_prepare_keeps_the_second_fault_out() {
    let out = run(None);
    if let Some(cx) = out.counterexample {
        panic!("{}", cx.violation);
    }
    // Every schedule within the bound ran (the bound prunes, so `complete` stays false).
    assert!(
        !out.budget_exhausted && out.inconclusive.is_none(),
        "bounded search stopped after {} executions",
        out.executions
    );
}
