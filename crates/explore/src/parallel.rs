//! One search on several worker threads. DPOR (source-DPOR, without `--shard`) shares its tree
//! as it runs ([`crate::dpor::explore_stealing`]: an idle worker is handed an untried branch).
//! Random and PCT searches, Optimal-DPOR and sharded searches are cut into [`PARTS_PER_JOB`]
//! times `jobs` deterministic parts ([`crate::Shard`]: random and PCT seeds, DPOR prefixes below
//! a fully expanded top), which the workers take from a shared queue, the next part to whoever
//! is free first. The parts' outcomes are combined in part order, so the verdict, the
//! counterexample and its replay token do not depend on timing: the counterexample is the lowest
//! part's, and once a part has found one, only lower parts keep running. Optimal-DPOR runs on
//! one worker. Hand-written rather than rayon: the stop rule ("lower parts only") and the
//! ordered combination are the whole of it.

use crate::{explore, Config, Model, Outcome, Shard};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Parts per worker thread.
pub const PARTS_PER_JOB: u32 = 4;

/// Explore with `jobs` worker threads (see the module doc).
pub fn explore_parallel<M: Model + Send + Sync>(
    model: Arc<M>,
    cfg: &Config,
    jobs: usize,
) -> Outcome {
    // Optimal-DPOR on parts would restart the search below every prefix of the expanded top
    // with an empty sleep set (see `crate::odpor`): far more executions than one worker runs.
    if jobs <= 1 || cfg.shard.is_some() || (cfg.optimal && cfg.mode == crate::Mode::Dpor) {
        return explore(model, cfg);
    }
    if cfg.mode == crate::Mode::Dpor {
        return crate::dpor::explore_stealing(model, cfg, jobs);
    }
    let start = Instant::now();
    let parts = jobs as u32 * PARTS_PER_JOB;
    let next = AtomicUsize::new(0);
    // The lowest part that found a violation (with `stop_on_violation`): higher ones stop.
    let found = AtomicUsize::new(usize::MAX);
    let stops: Vec<Arc<AtomicBool>> = (0..parts)
        .map(|_| Arc::new(AtomicBool::new(false)))
        .collect();
    let results: Vec<std::sync::Mutex<Option<Outcome>>> =
        (0..parts).map(|_| std::sync::Mutex::new(None)).collect();
    // Workers finished, for the watcher.
    let done = AtomicUsize::new(0);
    std::thread::scope(|sc| {
        // One watcher passes Ctrl-C on to every part.
        if let Some(outer) = &cfg.stop {
            let (stops, done) = (&stops, &done);
            sc.spawn(move || {
                while done.load(Ordering::SeqCst) < jobs {
                    if outer.load(Ordering::Relaxed) {
                        stops.iter().for_each(|s| s.store(true, Ordering::SeqCst));
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            });
        }
        for _ in 0..jobs {
            sc.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                if k >= parts as usize {
                    done.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                if k > found.load(Ordering::SeqCst) || cfg.interrupted() {
                    continue; // its outcome would not be used
                }
                let mut c = cfg.clone();
                c.shard = Some(Shard {
                    index: k as u32,
                    count: parts,
                });
                c.budget = cfg.budget.map(|b| b.saturating_sub(start.elapsed()));
                c.progress = None;
                // Set on Ctrl-C (by the watcher below) or by a lower part's violation.
                c.stop = Some(stops[k].clone());
                let out = explore(model.clone(), &c);
                if out.counterexample.is_some() && cfg.stop_on_violation {
                    let prev = found.fetch_min(k, Ordering::SeqCst);
                    if k < prev {
                        for s in &stops[k + 1..] {
                            s.store(true, Ordering::SeqCst);
                        }
                    }
                }
                *results[k].lock().unwrap_or_else(|e| e.into_inner()) = Some(out);
            });
        }
    });
    let cut = found.load(Ordering::SeqCst);
    let mut all = Outcome {
        complete: true,
        ..Outcome::default()
    };
    for (k, r) in results.into_iter().enumerate() {
        if k > cut {
            break; // stopped early for a lower part's violation: not part of the verdict
        }
        let Some(o) = r.into_inner().unwrap_or_else(|e| e.into_inner()) else {
            all.complete = false; // never ran (interrupted)
            all.interrupted = true;
            continue;
        };
        combine(&mut all, o);
    }
    if cut != usize::MAX {
        all.complete = false;
    }
    all.elapsed = start.elapsed();
    all
}

/// Add part `o`'s outcome to `all` (parts in order).
pub(crate) fn combine(all: &mut Outcome, o: Outcome) {
    all.executions += o.executions;
    all.sleep_blocked += o.sleep_blocked;
    all.steps += o.steps;
    all.complete &= o.complete;
    if all.counterexample.is_none() {
        all.counterexample = o.counterexample;
    }
    all.outcomes.extend(o.outcomes);
    for (k, n) in o.outcome_counts {
        *all.outcome_counts.entry(k).or_default() += n;
    }
    if all.reach.len() < o.reach.len() {
        all.reach.resize(o.reach.len(), Default::default());
    }
    for (a, h) in all.reach.iter_mut().zip(o.reach) {
        a.executions += h.executions;
        if a.first.is_none() {
            a.first = h.first;
        }
    }
    all.fingerprint = all.fingerprint.rotate_left(13) ^ o.fingerprint;
    all.violation_kinds.extend(o.violation_kinds);
    for inv in o.lock_inversions {
        if !all
            .lock_inversions
            .iter()
            .any(|x| (x.a, x.b) == (inv.a, inv.b))
        {
            all.lock_inversions.push(inv);
        }
    }
    if all.inconclusive.is_none() {
        all.inconclusive = o.inconclusive;
    }
    all.interrupted |= o.interrupted;
    all.budget_exhausted |= o.budget_exhausted;
    all.coverage.extend(o.coverage);
    all.classes.extend(o.classes);
}
