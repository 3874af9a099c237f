//! TLB flush modes against GUP-fast (review B2): the probe in which the GUP-fast thread loads from
//! the range first. That thread's CPU is in `mm_cpumask` from the start either way, so the load
//! changes nothing: under `tlb.flush = broadcast` the collapse's flush does not wait for the
//! IRQ-off walker and race 6 is there without `tlb_remove_table_sync_one`. The scenario is too
//! large for an exhaustive search in the catalogue (`scenarios/races/khugepaged-free-vs-gupfast.mmt`
//! is the exhaustive version, without the load); PCT finds the race in a few hundred executions.

use mmcheck_explore::{explore, Config, Mode};
use mmcheck_platform::ViolationKind;
use mmcheck_scenario::{parse_scenario, KernelModel};
use std::sync::Arc;

const PROBE: &str = include_str!("khugepaged-free-vs-gupfast-loaded.mmt");

#[test]
fn a_gup_fast_thread_that_loaded_first_still_races_under_broadcast() {
    let s = parse_scenario("khugepaged-free-vs-gupfast-loaded.mmt", PROBE)
        .unwrap_or_else(|e| panic!("{}", e.render()));
    let sv = s.with_variant(Some("arm64-no-ipi")).unwrap();
    let out = explore(
        Arc::new(KernelModel::new(sv).with_strict(true)),
        &Config {
            mode: Mode::Pct { depth: 3 },
            seed: 1,
            max_executions: Some(20_000),
            ..Config::default()
        },
    );
    let cx = out
        .counterexample
        .unwrap_or_else(|| panic!("not found in {} executions", out.executions));
    assert_eq!(
        cx.violation.kind,
        ViolationKind::UseAfterFree,
        "{}",
        cx.violation
    );
}
