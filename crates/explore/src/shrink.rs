//! Shrinking a counterexample: search again with an increasing preemption bound (iterative
//! context bounding), so the first violation of the same kind found has the fewest preemptions;
//! then keep exploring at that bound for a while and keep the execution with the fewest steps.

use crate::{explore, Config, Counterexample, Mode, Model};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Shrink `cx` (found by any strategy) within `budget`.
pub fn shrink<M: Model>(model: &Arc<M>, cx: &Counterexample, budget: Duration) -> Counterexample {
    let start = Instant::now();
    let kind = cx.violation.kind;
    let mut best = cx.clone();
    for bound in 0..=cx.preemptions as u32 {
        let left = budget.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        let cfg = Config {
            mode: Mode::Dpor,
            budget: Some(left / 2 + Duration::from_millis(1)),
            preemption_bound: Some(bound),
            stop_on_violation: false,
            ..Config::default()
        };
        let found = explore_collect(model, &cfg, kind, &mut best);
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
) -> bool {
    // Exploration with stop_on_violation=false only keeps the first counterexample; run in
    // rounds of single violations instead, each time asking for a fresh one.
    let mut c = cfg.clone();
    c.stop_on_violation = true;
    let out = explore(model.clone(), &c);
    match out.counterexample {
        Some(cx) if cx.violation.kind == kind => {
            if (cx.preemptions, cx.steps) < (best.preemptions, best.steps) {
                *best = cx;
            }
            true
        }
        _ => false,
    }
}
