//! Every scenario file under `scenarios/` meets every expectation it states, under DPOR: clean
//! verdicts complete, violations of the expected kind.

use mmcheck_explore::{explore, Config};
use mmcheck_scenario::{load_scenario_file, KernelModel, Verdict};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn check_dir(sub: &str) {
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
        for e in &s.expect {
            let sv = s.with_variant(e.variant.as_deref()).unwrap();
            let out = explore(
                Arc::new(KernelModel::new(sv).with_strict(true)),
                &Config {
                    budget: Some(Duration::from_secs(120)),
                    ..Config::default()
                },
            );
            let got = out.counterexample.as_ref().map(|c| c.violation.kind);
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
    check_dir("seeds");
}

#[test]
fn planted() {
    check_dir("planted");
}

#[test]
fn races() {
    check_dir("races");
}

#[test]
fn selftests() {
    check_dir("selftests");
}

#[test]
fn fidelity() {
    check_dir("fidelity");
}
