//! Naive exhaustive exploration: every schedule, no partial-order reduction, no sleep sets. A
//! depth-first search over the thread chosen at each step, re-running every execution from a
//! fresh instance along the recorded prefix (as [`crate::dpor`] does). It is the reference the
//! cross-validation tests hold DPOR to: it needs no dependency relation, so a read the model does
//! not announce cannot hide an interleaving from it.
//!
//! It explodes combinatorially (two threads of `n1` and `n2` steps have `C(n1+n2, n1)`
//! interleavings), so it stops at `Config::max_executions` or `Config::budget` and says
//! `complete: false`. An execution ends at its first violation, as under the strategies, but the
//! search goes on: it collects the kind of every violation (with a witness schedule per kind) and
//! every final outcome.

use crate::exec::{choice_of, decision, thread_of, Exec, StackPool};
use crate::{Config, Counterexample, Model, Schedule};
use mmcheck_platform::{Violation, ViolationKind};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the naive enumeration found.
#[derive(Clone, Debug, Default)]
pub struct NaiveOutcome {
    pub executions: u64,
    pub steps: u64,
    /// Every schedule was run (the cap was not reached).
    pub complete: bool,
    /// The first execution found for each violation kind (lock-order inversions not included).
    pub witnesses: BTreeMap<ViolationKind, Counterexample>,
    /// Every distinct final outcome of an execution that finished (as DPOR collects them).
    pub outcomes: BTreeSet<String>,
    /// The model's reach patterns some execution reached (bit mask, see [`crate::reach`]).
    pub reached: u64,
    /// Lock-order inversions across every execution (as [`crate::dpor::inversions`]).
    pub lock_inversions: Vec<crate::lockdep::LockInversion>,
    /// A tool limit an execution ran into (the enumeration stopped there, not complete).
    pub limit: Option<mmcheck_platform::Limit>,
    pub elapsed: Duration,
}

impl NaiveOutcome {
    /// The violation kinds found, `lock-order` included if an inversion was seen.
    pub fn kinds(&self) -> BTreeSet<ViolationKind> {
        let mut k: BTreeSet<_> = self.witnesses.keys().copied().collect();
        if !self.lock_inversions.is_empty() {
            k.insert(ViolationKind::LockOrder);
        }
        k
    }
}

/// Depth-first enumeration of decision sequences: at each step every enabled thread, and for a
/// choice step every outcome. It holds the current prefix: the decision, the enabled mask and
/// the chosen step's outcome count (0 until that step runs) at each depth.
#[derive(Default)]
pub struct DecisionDfs {
    prefix: Vec<(usize, u32, u8)>,
}

impl DecisionDfs {
    /// The decision at `depth` of the running execution: the prefix's, or the lowest enabled
    /// thread past its end. Panics if the model is not deterministic (another enabled mask).
    pub fn decide<M: Model>(&mut self, ex: &Exec<M>, depth: usize, enabled: u32) -> usize {
        match self.prefix.get_mut(depth) {
            Some((d, en, alts)) => {
                assert_eq!(*en, enabled, "the model is not deterministic");
                if *alts == 0 {
                    *alts = ex.alternatives(thread_of(*d));
                }
                *d
            }
            None => {
                let t = enabled.trailing_zeros() as usize;
                self.prefix.push((t, enabled, ex.alternatives(t)));
                t
            }
        }
    }

    /// The decision taken at `depth`, if any.
    pub fn get(&self, depth: usize) -> Option<usize> {
        self.prefix.get(depth).map(|p| p.0)
    }

    /// The decisions of the current execution, as a schedule.
    pub fn schedule(&self) -> Schedule {
        Schedule(self.prefix.iter().map(|p| p.0 as u8).collect())
    }

    /// Cut the prefix to the `depth` steps the execution ran, then move to the next sequence:
    /// the deepest step with an untried choice outcome or a higher enabled thread. False when
    /// every sequence was run.
    pub fn advance(&mut self, depth: usize) -> bool {
        self.prefix.truncate(depth);
        while let Some((d, en, alts)) = self.prefix.pop() {
            let (t, o) = (thread_of(d), choice_of(d));
            if o + 1 < alts {
                self.prefix.push((decision(t, o + 1) as usize, en, alts));
                return true;
            }
            let higher = en & !((2u32 << t) - 1);
            if higher != 0 {
                // The step's outcome count is learnt when it runs.
                self.prefix.push((higher.trailing_zeros() as usize, en, 0));
                return true;
            }
        }
        false
    }
}

/// Run every schedule of `model`, up to `cfg.max_executions` executions and `cfg.budget`.
/// `cfg.mode`, `preemption_bound`, `stop_on_violation` and `collect_outcomes` are ignored.
pub fn explore<M: Model>(model: &Arc<M>, cfg: &Config) -> NaiveOutcome {
    let start = Instant::now();
    let mut pool = StackPool::default();
    let mut out = NaiveOutcome::default();
    let mut edges = BTreeMap::new();
    let mut dfs = DecisionDfs::default();
    loop {
        if cfg.max_executions.is_some_and(|m| out.executions >= m)
            || cfg.budget.is_some_and(|b| start.elapsed() >= b)
        {
            break;
        }
        let mut ex: Exec<M> = Exec::new(model, &mut pool, false);
        let mut depth = 0usize;
        let mut preemptions = 0usize;
        let mut violation: Option<Violation> = ex.violation();
        let mut limit = ex.limit();
        while violation.is_none() && limit.is_none() {
            let enabled = match ex.next_enabled(depth, cfg.max_steps) {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(h) => {
                    h.record(&mut violation, &mut limit);
                    break;
                }
            };
            let d = dfs.decide(&ex, depth, enabled);
            let t = thread_of(d);
            if let Some(p) = depth.checked_sub(1).and_then(|d| dfs.get(d)) {
                if thread_of(p) != t && enabled & (1 << thread_of(p)) != 0 {
                    preemptions += 1;
                }
            }
            ex.step(d);
            depth += 1;
            limit = ex.limit();
            if limit.is_none() && ex.violated() {
                violation = ex.violation();
            }
        }
        if limit.is_some() {
            out.limit = limit;
            ex.finish(&mut pool, false);
            break;
        }
        out.executions += 1;
        out.steps += depth as u64;
        ex.locks.merge_into(&mut edges, &ex.sched);
        out.reached |= ex.reached();
        let finish = ex.finish(&mut pool, violation.is_none());
        let mut found: Vec<Violation> = violation.into_iter().collect();
        if let Some(f) = finish {
            found.extend(f.violations);
            out.outcomes.insert(f.outcome);
        }
        for v in found {
            out.witnesses
                .entry(v.kind)
                .or_insert_with(|| Counterexample {
                    violation: v,
                    steps: depth,
                    preemptions,
                    schedule: {
                        let mut s = dfs.schedule();
                        s.0.truncate(depth);
                        s
                    },
                });
        }
        if !dfs.advance(depth) {
            out.complete = true;
            break;
        }
    }
    out.lock_inversions = crate::lockdep::inversions(&edges, &**model);
    out.elapsed = start.elapsed();
    out
}

#[cfg(test)]
mod tests {
    //! The cross-check can fail: a toy model whose reader reads a shared word in the step of an
    //! earlier, unrelated event (the bug class of the review's section A) has an outcome naive
    //! enumeration reaches and DPOR cannot.

    use super::*;
    use crate::{Finish, Mode};
    use mmcheck_platform::{Backend, Machine, MachineConfig};
    use std::sync::atomic::{AtomicU64, Ordering};

    /// T0 stores 1 to `x`. T1 writes its own word `y`, then reads `x`: announced (`read_var`)
    /// or not (a raw load right after `y`'s event, in that event's step). Reading the old 0 is
    /// a violation when `report` is set (DPOR's first schedule runs T0 first and reads 1).
    struct Reader {
        announced: bool,
        report: bool,
    }

    struct Inst {
        machine: Machine,
        x: (u64, AtomicU64),
        y: (u64, AtomicU64),
        seen: AtomicU64,
    }

    impl Model for Reader {
        type Instance = Inst;

        fn build(&self, backend: Box<dyn Backend>) -> Inst {
            let cfg = MachineConfig {
                nr_cpus: 2,
                nr_frames: 4,
                entries_per_table: 4,
                tlb_entries: 1,
            };
            let machine = Machine::new(cfg, backend);
            let x = (machine.new_id(), AtomicU64::new(0));
            let y = (machine.new_id(), AtomicU64::new(0));
            Inst {
                machine,
                x,
                y,
                seen: AtomicU64::new(u64::MAX),
            }
        }

        fn machine<'a>(&self, inst: &'a Inst) -> &'a Machine {
            &inst.machine
        }

        fn threads(&self) -> usize {
            2
        }

        fn run(&self, inst: &Inst, t: usize) {
            let cpu = inst.machine.cpu(t);
            if t == 0 {
                cpu.write_var(inst.x.0, &inst.x.1, 1);
                return;
            }
            cpu.write_var(inst.y.0, &inst.y.1, 1);
            let v = if self.announced {
                cpu.read_var(inst.x.0, &inst.x.1)
            } else {
                inst.x.1.load(Ordering::SeqCst) // the planted bug: no event
            };
            inst.seen.store(v, Ordering::SeqCst);
            if self.report && v == 0 {
                cpu.report(ViolationKind::Assertion, "read x = 0".into());
            }
        }

        fn finish(&self, inst: &Inst) -> Finish {
            Finish {
                violations: vec![],
                outcome: format!("x read {}", inst.seen.load(Ordering::SeqCst)),
            }
        }
    }

    fn both(m: Reader) -> (NaiveOutcome, crate::Outcome) {
        let m = Arc::new(m);
        let cfg = Config {
            mode: Mode::Dpor,
            stop_on_violation: false,
            collect_outcomes: true,
            max_executions: Some(1000),
            ..Config::default()
        };
        let naive = explore(&m, &cfg);
        let dpor = crate::explore(m, &cfg);
        assert!(naive.complete && dpor.complete);
        (naive, dpor)
    }

    #[test]
    fn naive_agrees_with_dpor_when_the_read_is_announced() {
        let (naive, dpor) = both(Reader {
            announced: true,
            report: false,
        });
        assert_eq!(naive.executions, 3); // C(3, 1)
        assert_eq!(naive.outcomes, dpor.outcomes);
        assert_eq!(naive.outcomes.len(), 2);
        let (naive, dpor) = both(Reader {
            announced: true,
            report: true,
        });
        assert_eq!(naive.kinds(), dpor.violation_kinds);
        assert!(naive.kinds().contains(&ViolationKind::Assertion));
    }

    #[test]
    fn naive_catches_an_unannounced_read() {
        let (naive, dpor) = both(Reader {
            announced: false,
            report: false,
        });
        // The two writes are independent: DPOR runs one execution and sees one outcome.
        assert_eq!(dpor.executions, 1);
        assert_eq!(naive.executions, 2);
        assert_ne!(
            naive.outcomes, dpor.outcomes,
            "the cross-check must see the bug"
        );
        assert_eq!(naive.outcomes.len(), 2);
        // And the violation DPOR cannot reach, with a token that replays it.
        let m = Arc::new(Reader {
            announced: false,
            report: true,
        });
        let (naive, dpor) = both(Reader {
            announced: false,
            report: true,
        });
        assert_ne!(naive.kinds(), dpor.violation_kinds);
        let w = &naive.witnesses[&ViolationKind::Assertion];
        let r = crate::schedule::replay(&m, &w.schedule, false);
        assert_eq!(r.violation.map(|v| v.kind), Some(ViolationKind::Assertion));
    }

    #[test]
    fn matches_the_toy_enumerator_and_dpor_on_random_programs() {
        for seed in 0..300 {
            let m = Arc::new(crate::toy::random_program(seed));
            let (outcomes, deadlock, execs) = crate::toy::naive_outcomes(&m);
            let cfg = Config {
                stop_on_violation: false,
                collect_outcomes: true,
                ..Config::default()
            };
            let naive = explore(&m, &cfg);
            assert!(naive.complete);
            assert_eq!(naive.executions, execs, "{m:?}");
            assert_eq!(naive.outcomes, outcomes, "{m:?}");
            assert_eq!(
                naive.witnesses.contains_key(&ViolationKind::Deadlock),
                deadlock
            );
            let dpor = crate::explore(m.clone(), &cfg);
            assert_eq!(naive.outcomes, dpor.outcomes, "{m:?}");
            let mut dk = dpor.violation_kinds.clone();
            if !dpor.lock_inversions.is_empty() {
                dk.insert(ViolationKind::LockOrder);
            }
            assert_eq!(naive.kinds(), dk, "{m:?}");
        }
    }
}
