//! DPOR explores the reference scenario (3 threads, ~40 visible steps each) completely and finds
//! it clean; prints the executions and the time.

use mmcheck_explore::schedule::replay;
use mmcheck_explore::{explore, Config, Schedule};
use mmcheck_scenario::{catalogue, KernelModel};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn reference_is_clean_and_complete() {
    let m = Arc::new(KernelModel::new(catalogue::reference()));
    // Steps per thread, from one sequential run.
    let r = replay(&m, &Schedule(vec![]), false);
    let mut per = [0usize; 4];
    for s in &r.trace {
        per[s.thread] += 1;
    }
    eprintln!("visible steps per thread (sequential run): {per:?}");
    assert!(per[..3].iter().all(|&n| n >= 20), "{per:?}");
    let out = explore(
        m,
        &Config {
            budget: Some(Duration::from_secs(600)),
            ..Config::default()
        },
    );
    eprintln!(
        "reference: {} executions, {} steps, {:.2?}, complete {}",
        out.executions, out.steps, out.elapsed, out.complete
    );
    assert!(out.counterexample.is_none(), "{:?}", out.counterexample);
    assert!(out.complete);
}
