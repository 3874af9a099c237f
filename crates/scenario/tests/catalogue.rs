//! Every scenario file under `scenarios/` meets every expectation it states, under DPOR: clean
//! verdicts complete, violations of the expected kind, reach expectations reached. Outside
//! `selftests/` (sequential: no window) every clean expectation also states its window
//! (`expect reach`): a clean verdict must carry its evidence.

use mmcheck_explore::{explore, Config};
use mmcheck_scenario::{load_scenario_file, KernelModel, Verdict};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn check_dir(sub: &str, need_reach: bool) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scenarios")
        .join(sub);
    if !root.exists() {
        return;
    }
    let fs = mmcheck_scenario::scenario_files(&root).expect("scenario directory");
    let only = std::env::var("MMCHECK_ONLY").ok();
    let mut failures = Vec::new();
    for f in fs {
        if only
            .as_deref()
            .is_some_and(|o| !f.to_string_lossy().contains(o))
        {
            continue;
        }
        let s = load_scenario_file(&f).unwrap_or_else(|e| panic!("{}", e.render()));
        let (_, index) = s.reach_spec();
        for e in &s.expect {
            let reach: Vec<(usize, &str)> = s
                .reach
                .iter()
                .zip(&index)
                .filter(|(r, _)| r.variant == e.variant)
                .map(|(r, &i)| (i, r.text.as_str()))
                .collect();
            if need_reach && e.verdict == Verdict::Clean && reach.is_empty() {
                failures.push(format!(
                    "{} / {}: a clean expectation without an 'expect reach' line stating its window",
                    f.display(),
                    e.variant.as_deref().unwrap_or("base"),
                ));
            }
            let sv = s.with_variant(e.variant.as_deref()).unwrap();
            let out = explore(
                Arc::new(KernelModel::new(sv).with_strict(true)),
                &Config {
                    // A cap, not a target: the largest row, `races/pt-reclaim-refilled-table`,
                    // completes in 80,262 executions (about 28 s release, strict).
                    budget: Some(Duration::from_secs(300)),
                    ..Config::default()
                },
            );
            let got = out.counterexample.as_ref().map(|c| c.violation.kind);
            if e.verdict == Verdict::Clean {
                for (i, text) in &reach {
                    if out.reach.get(*i).is_none_or(|h| h.executions == 0) {
                        failures.push(format!(
                            "{} / {}: no execution reaches: {text}",
                            f.display(),
                            e.variant.as_deref().unwrap_or("base"),
                        ));
                    }
                }
            }
            let ok = match (&e.verdict, got) {
                (Verdict::Clean, None) => out.complete && out.lock_inversions.is_empty(),
                (Verdict::Violation(k), Some(g)) => *k == g,
                _ => false,
            };
            if !ok {
                failures.push(format!(
                    "{} / {}: expected {}, got {:?} (complete {}, {:?}){}",
                    f.display(),
                    e.variant.as_deref().unwrap_or("base"),
                    e.verdict,
                    got,
                    out.complete,
                    out.lock_inversions,
                    out.counterexample
                        .map(|c| format!(": {} [{}]", c.violation, c.schedule))
                        .unwrap_or_default()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn seeds() {
    check_dir("seeds", true);
}

#[test]
fn planted() {
    check_dir("planted", true);
}

#[test]
fn races() {
    check_dir("races", true);
}

#[test]
fn selftests() {
    check_dir("selftests", false);
}

#[test]
fn fidelity() {
    check_dir("fidelity", true);
}

#[test]
fn memory() {
    check_dir("memory", true);
}
