//! Randomized exploration: uniform random scheduling and PCT with depth `d` (Burckhardt,
//! Kothari, Musuvathi, Nagarakatte, ASPLOS 2010): random thread priorities, `d - 1` random
//! priority-change points, always run the highest-priority enabled thread. Seeded: the same
//! seed gives the same executions.

use crate::exec::{Exec, StackPool};
use crate::schedule::{run_one_with, Tracking};
use crate::{Config, Counterexample, Inconclusive, Mode, Model, Outcome};
use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A uniform draw below `k` (at most 256): the high half of a 32-bit draw times `k` (Lemire's
/// method without its rejection step, which a bias under 2^-24 does not need; one draw, no
/// loop, at every step of a random execution).
#[inline]
fn below(rng: &mut ChaCha8Rng, k: u32) -> u32 {
    ((u64::from(rng.next_u32()) * u64::from(k)) >> 32) as u32
}

/// The decision for thread `t`: a uniformly random outcome if its step is a choice of `k`.
fn with_outcome(k: u8, t: usize, rng: &mut ChaCha8Rng) -> usize {
    let o = if k > 1 { below(rng, k.into()) as u8 } else { 0 };
    crate::exec::decision(t, o) as usize
}

/// Uniform random scheduling's decision: an enabled thread, each with the same chance, and a
/// uniformly random outcome if its step is a choice.
#[inline]
fn uniform<M: Model>(ex: &Exec<M>, enabled: u32, rng: &mut ChaCha8Rng) -> usize {
    let mut m = enabled;
    for _ in 0..below(rng, enabled.count_ones()) {
        m &= m - 1;
    }
    let t = m.trailing_zeros() as usize;
    with_outcome(ex.alternatives(t), t, rng)
}

/// Where an execution's time goes under uniform random scheduling (`mmcheck bench`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Phases {
    pub executions: u64,
    pub steps: u64,
    /// Making the execution's instance (the set-up state restored) and starting its threads.
    pub start: Duration,
    /// The steps: scheduling, and the threads' code between their visible operations (the
    /// native backend's runs: the threads' code alone).
    pub run: Duration,
    /// The model's final checks and the teardown.
    pub finish: Duration,
    /// Allocations in each of the three phases, summed (as `allocations` counts them).
    pub allocs: [u64; 3],
}

impl Phases {
    /// Add one execution from the time and the allocation count at its four phase boundaries
    /// (before the start, after it, after the steps, after the final checks).
    pub fn add(&mut self, marks: [(Instant, u64); 4]) {
        self.executions += 1;
        let [start, run, finish] =
            std::array::from_fn(|i| (marks[i + 1].0 - marks[i].0, marks[i + 1].1 - marks[i].1));
        self.start += start.0;
        self.run += run.0;
        self.finish += finish.0;
        for (sum, n) in self.allocs.iter_mut().zip([start.1, run.1, finish.1]) {
            *sum += n;
        }
    }

    /// The three phases' time together.
    pub fn total(&self) -> Duration {
        self.start + self.run + self.finish
    }
}

/// Time the phases of uniform random executions of `model` (seed `seed`) for `secs` seconds,
/// and count their allocations with `allocations` (the calling thread's so far; the global
/// allocator knows them, the explorer does not). Violations and limits end an execution as
/// they would in [`explore`]; nothing is reported.
pub fn phases<M: Model>(model: &Arc<M>, secs: f64, seed: u64, allocations: fn() -> u64) -> Phases {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pool = StackPool::default();
    let mut p = Phases::default();
    let max_steps = Config::default().max_steps;
    let all = Instant::now();
    while p.executions == 0 || all.elapsed().as_secs_f64() < secs {
        let mark = || (Instant::now(), allocations());
        let m0 = mark();
        let mut ex = Exec::new(model, &mut pool, false);
        let m1 = mark();
        let mut clean = !ex.violated() && ex.limit().is_none();
        while clean {
            match ex.next_enabled(ex.sched.len(), max_steps) {
                Ok(Some(enabled)) => {
                    let d = uniform(&ex, enabled, &mut rng);
                    ex.step(d);
                    clean = !ex.violated() && ex.limit().is_none();
                }
                Ok(None) => break,
                Err(_) => clean = false,
            }
        }
        p.steps += ex.sched.len() as u64;
        let m2 = mark();
        std::hint::black_box(ex.finish(&mut pool, clean));
        p.add([m0, m1, m2, mark()]);
    }
    p
}

/// Run executions until the budget, the execution limit, or (if asked) a violation.
pub fn explore<M: Model>(model: Arc<M>, cfg: &Config) -> Outcome {
    let start = Instant::now();
    // A shard draws from its own seed and runs its share of the executions.
    let shard = cfg.shard.filter(|s| s.count > 1);
    let max_executions = match shard {
        Some(s) => cfg.max_executions.map(|m| s.executions(m)),
        None => cfg.max_executions,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(shard.map_or(cfg.seed, |s| s.seed(cfg.seed)));
    let mut pool = StackPool::default();
    let mut out = Outcome::default();
    let n = model.threads();
    let mut est_steps = 64usize;
    loop {
        if max_executions.is_some_and(|m| out.executions >= m)
            || cfg.budget.is_some_and(|b| start.elapsed() >= b)
        {
            out.budget_exhausted = true;
            break;
        }
        if cfg.interrupted() {
            out.interrupted = true;
            break;
        }
        let track = Tracking {
            coverage: cfg.coverage,
            trace: cfg.fingerprint,
            classes: cfg.classes,
        };
        let run = match cfg.mode {
            Mode::Pct { depth } => {
                let mut prio: Vec<usize> = (0..n).map(|t| t + depth as usize).collect();
                prio.shuffle(&mut rng);
                let changes: Vec<usize> = (1..depth.max(1))
                    .map(|_| rng.gen_range(0..est_steps.max(1)))
                    .collect();
                run_one_with(
                    &model,
                    &mut pool,
                    false,
                    track,
                    cfg.max_steps,
                    &mut |ex, enabled, step| {
                        for (i, &c) in changes.iter().enumerate() {
                            if c == step {
                                // Lower the currently highest enabled thread to priority i.
                                if let Some(t) = (0..n)
                                    .filter(|&t| enabled & (1 << t) != 0)
                                    .max_by_key(|&t| prio[t])
                                {
                                    prio[t] = i;
                                }
                            }
                        }
                        let t = (0..n)
                            .filter(|&t| enabled & (1 << t) != 0)
                            .max_by_key(|&t| prio[t])?;
                        Some(with_outcome(ex.alternatives(t), t, &mut rng))
                    },
                )
            }
            _ => run_one_with(
                &model,
                &mut pool,
                false,
                track,
                cfg.max_steps,
                &mut |ex, enabled, _| Some(uniform(ex, enabled, &mut rng)),
            ),
        };
        out.executions += 1;
        out.steps += run.schedule.len() as u64;
        cfg.note_progress(out.executions);
        if let Some(limit) = run.limit {
            out.inconclusive = Some(Inconclusive {
                limit,
                schedule: run.schedule,
            });
            break;
        }
        est_steps = est_steps.max(run.schedule.len());
        if let Some(c) = &run.coverage {
            out.coverage.extend(c.iter().copied());
        }
        out.classes.extend(run.class);
        out.violation_kinds
            .extend(run.violation.iter().map(|v| v.kind));
        if let Some(f) = &run.finish {
            out.violation_kinds
                .extend(f.violations.iter().map(|v| v.kind));
        }
        let fp = if cfg.fingerprint {
            use std::hash::{Hash, Hasher};
            let mut h = std::hash::DefaultHasher::new();
            for st in &run.trace {
                (st.thread, st.choice, st.event).hash(&mut h);
            }
            h.finish()
        } else {
            0
        };
        out.account(
            cfg,
            model.reach().patterns.len(),
            run.reached,
            fp,
            run.finish.as_ref(),
            || run.schedule.clone(),
        );
        if let Some(v) = run.violation {
            if out.counterexample.is_none() {
                out.counterexample = Some(Counterexample {
                    violation: v,
                    steps: run.schedule.len(),
                    preemptions: run.preemptions,
                    schedule: run.schedule,
                });
            }
            if cfg.stop_on_violation {
                break;
            }
        }
    }
    out.lock_inversions = crate::lockdep::inversions(&pool.edges, &*model);
    out.elapsed = start.elapsed();
    out
}
