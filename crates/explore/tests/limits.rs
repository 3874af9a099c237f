//! A tool limit is an outcome of its own: an execution longer than `max_steps` makes the search
//! inconclusive (no counterexample, not complete) under every strategy, and a stop flag ends the
//! search between executions.

use mmcheck_explore::toy::{Op, Program};
use mmcheck_explore::{explore, Config, Mode};
use mmcheck_platform::Limit;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

fn long() -> Arc<Program> {
    Arc::new(Program {
        vars: 1,
        locks: 0,
        frames: 0,
        threads: vec![vec![Op::Add(0, 1); 50], vec![Op::Read(0)]],
    })
}

#[test]
fn the_step_limit_is_inconclusive_under_every_strategy() {
    for mode in [Mode::Dpor, Mode::Random, Mode::Pct { depth: 2 }] {
        let cfg = Config {
            mode,
            max_steps: 10,
            max_executions: Some(100),
            ..Config::default()
        };
        let out = explore(long(), &cfg);
        assert!(
            out.counterexample.is_none(),
            "{mode:?}: {:?}",
            out.counterexample
        );
        assert!(!out.complete, "{mode:?}");
        let inc = out.inconclusive.expect("inconclusive");
        assert_eq!(inc.limit, Limit::Steps(10), "{mode:?}");
        assert_eq!(inc.schedule.len(), 10, "{mode:?}");
        // Under the limit the same program is complete and clean.
        let cfg = Config {
            mode,
            max_executions: Some(100),
            ..Config::default()
        };
        let out = explore(long(), &cfg);
        assert!(out.inconclusive.is_none() && out.counterexample.is_none());
    }
}

#[test]
fn a_stop_flag_ends_the_search_between_executions() {
    let stop = Arc::new(AtomicBool::new(true));
    let progress = Arc::new(AtomicU64::new(0));
    let cfg = Config {
        stop: Some(stop.clone()),
        progress: Some(progress.clone()),
        ..Config::default()
    };
    let out = explore(long(), &cfg);
    assert!(out.interrupted && !out.complete && out.executions == 0);
    stop.store(false, Ordering::SeqCst);
    let out = explore(long(), &cfg);
    assert!(out.complete && !out.interrupted);
    assert_eq!(progress.load(Ordering::SeqCst), out.executions);
}
