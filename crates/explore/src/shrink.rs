//! Shrinking a counterexample: search again with an increasing preemption bound (iterative
//! context bounding), so the first violation of the same kind found has the fewest preemptions;
//! then keep exploring at that bound for a while and keep the execution with the fewest steps.
//!
//! The effort is counted in executions, never in time, so the same counterexample always shrinks
//! to the same token whatever the machine's load.

use crate::{explore, Config, Counterexample, Mode, Model};
use std::sync::Arc;

/// Shrink `cx` (found by any strategy) within `max_executions` executions in all.
pub fn shrink<M: Model>(
    model: &Arc<M>,
    cx: &Counterexample,
    max_executions: u64,
) -> Counterexample {
    let kind = cx.violation.kind;
    let mut best = cx.clone();
    let mut used = 0u64;
    for bound in 0..=cx.preemptions as u32 {
        let left = max_executions.saturating_sub(used);
        if left == 0 {
            break;
        }
        let cfg = Config {
            mode: Mode::Dpor,
            budget: None,
            max_executions: Some(left / 2 + 1),
            preemption_bound: Some(bound),
            stop_on_violation: false,
            ..Config::default()
        };
        let (found, n) = explore_collect(model, &cfg, kind, &mut best);
        used += n;
        if found {
            break;
        }
    }
    best
}

/// Explore at a bound, keeping the best counterexample of `kind`; true if one was found.
fn explore_collect<M: Model>(
    model: &Arc<M>,
    cfg: &Config,
    kind: mmcheck_platform::ViolationKind,
    best: &mut Counterexample,
) -> (bool, u64) {
    // Exploration with stop_on_violation=false only keeps the first counterexample; run in
    // rounds of single violations instead, each time asking for a fresh one.
    let mut c = cfg.clone();
    c.stop_on_violation = true;
    let out = explore(model.clone(), &c);
    let n = out.executions;
    match out.counterexample {
        Some(cx) if cx.violation.kind == kind => {
            if (cx.preemptions, cx.steps) < (best.preemptions, best.steps) {
                *best = cx;
            }
            (true, n)
        }
        _ => (false, n),
    }
}
