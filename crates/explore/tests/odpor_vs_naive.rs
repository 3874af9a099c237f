//! Optimal-DPOR (`Config::optimal`, wakeup trees) against naive enumeration and source-DPOR on
//! random small programs: the naive outcome set and violation kinds, complete, and, on programs
//! without locks, no sleep-set-blocked execution and exactly one execution per Mazurkiewicz trace
//! (counted from the naive enumeration by a normal form of each execution).

use mmcheck_explore::deps::dependent;
use mmcheck_explore::exec::StackPool;
use mmcheck_explore::naive::DecisionDfs;
use mmcheck_explore::schedule::run_one;
use mmcheck_explore::toy::{
    naive_outcomes, random_program, small_rcu_programs, small_tlb_programs, tlb_witness_programs,
    Op, Program,
};
use mmcheck_explore::{explore, explore_parallel, Config, Shard};
use std::collections::BTreeSet;
use std::sync::Arc;

fn optimal() -> Config {
    Config {
        collect_outcomes: true,
        stop_on_violation: false,
        optimal: true,
        ..Config::default()
    }
}

/// The distinct Mazurkiewicz traces among every interleaving, each named by its lexicographically
/// least linearization (lowest thread first among the steps whose dependent predecessors ran).
fn traces(m: &Arc<Program>) -> usize {
    let mut pool = StackPool::default();
    let mut dfs = DecisionDfs::default();
    let mut seen = BTreeSet::new();
    loop {
        let mut depth = 0;
        let run = run_one(m, &mut pool, true, 10_000, &mut |ex, enabled, step| {
            depth = step + 1;
            Some(dfs.decide(ex, step, enabled))
        });
        let tr = &run.trace;
        let mut emitted = vec![false; tr.len()];
        let mut form = Vec::new();
        for _ in 0..tr.len() {
            let k = (0..tr.len())
                .filter(|&k| {
                    !emitted[k]
                        && (0..k).all(|j| {
                            emitted[j]
                                || (tr[j].thread != tr[k].thread
                                    && !dependent(&tr[j].dep, &tr[k].dep))
                        })
                })
                .min_by_key(|&k| tr[k].thread)
                .unwrap();
            emitted[k] = true;
            form.push((tr[k].thread, tr[k].choice));
        }
        seen.insert(form);
        if !dfs.advance(depth) {
            return seen.len();
        }
    }
}

fn has_locks(p: &Program) -> bool {
    p.threads
        .iter()
        .flatten()
        .any(|o| matches!(o, Op::Lock(_) | Op::Unlock(_)))
}

#[test]
fn optimal_matches_naive_on_1000_random_programs() {
    let (mut total, mut blocked_source) = (0, 0);
    for seed in 0..1000 {
        let m = Arc::new(random_program(seed));
        let (naive, _deadlock, naive_execs) = naive_outcomes(&m);
        let out = explore(m.clone(), &optimal());
        assert!(out.complete, "incomplete on {m:?}");
        assert_eq!(out.outcomes, naive, "outcome sets differ on {m:?}");
        assert!(out.executions <= naive_execs, "{m:?}");
        let source = explore(
            m.clone(),
            &Config {
                optimal: false,
                ..optimal()
            },
        );
        assert_eq!(out.violation_kinds, source.violation_kinds, "{m:?}");
        if !has_locks(&m) {
            assert_eq!(out.sleep_blocked, 0, "sleep-set blocked on {m:?}");
            assert_eq!(
                out.executions as usize,
                traces(&m),
                "not one per trace on {m:?}"
            );
        }
        total += out.executions;
        blocked_source += source.sleep_blocked;
    }
    eprintln!("optimal {total} executions; source-DPOR had {blocked_source} blocked");
}

/// Programs built to block source-DPOR: three writers and readers of one word.
#[test]
fn no_blocked_execution_where_source_dpor_blocks() {
    let p = Program {
        vars: 2,
        locks: 0,
        frames: 0,
        threads: vec![
            vec![Op::Write(0, 1)],
            vec![Op::Read(1), Op::Read(0)],
            vec![Op::Write(1, 1), Op::Read(0)],
        ],
    };
    let m = Arc::new(p);
    let out = explore(m.clone(), &optimal());
    let source = explore(
        m.clone(),
        &Config {
            optimal: false,
            ..optimal()
        },
    );
    assert!(out.complete);
    assert_eq!(out.sleep_blocked, 0);
    assert_eq!(out.executions as usize, traces(&m));
    assert_eq!(out.outcomes, source.outcomes);
}

#[test]
fn optimal_shards_and_workers_match_naive() {
    for seed in 0..200 {
        let m = Arc::new(random_program(seed));
        let (naive, _deadlock, _) = naive_outcomes(&m);
        for count in [2u32, 3] {
            let mut union = BTreeSet::new();
            for index in 0..count {
                let cfg = Config {
                    shard: Some(Shard { index, count }),
                    ..optimal()
                };
                let out = explore(m.clone(), &cfg);
                assert!(out.complete, "shard {index}/{count} incomplete on {m:?}");
                union.extend(out.outcomes);
            }
            assert_eq!(union, naive, "{count} shards on {m:?}");
        }
        let out = explore_parallel(m.clone(), &optimal(), 2);
        assert!(out.complete);
        assert_eq!(out.outcomes, naive, "2 workers on {m:?}");
    }
}

#[test]
fn optimal_with_a_preemption_bound_is_not_complete_when_it_prunes() {
    for seed in 0..200 {
        let m = Arc::new(random_program(seed));
        let unbounded = explore(m.clone(), &optimal());
        let b = explore(
            m.clone(),
            &Config {
                preemption_bound: Some(0),
                ..optimal()
            },
        );
        assert!(!b.complete || b.outcomes == unbounded.outcomes, "{m:?}");
        assert!(b.outcomes.is_subset(&unbounded.outcomes));
    }
}

/// Optimal-DPOR on the RCU programs of `dpor_vs_naive.rs`: naive's outcomes, complete.
#[test]
fn optimal_matches_naive_on_rcu_programs() {
    optimal_matches_naive_on(small_rcu_programs(300));
}

/// Optimal-DPOR on each program: naive's outcomes, complete, no more executions than naive.
fn optimal_matches_naive_on(programs: impl IntoIterator<Item = Program>) {
    for m in programs {
        let m = Arc::new(m);
        let (naive, _deadlock, naive_execs) = naive_outcomes(&m);
        let out = explore(m.clone(), &optimal());
        assert!(out.complete, "incomplete on {m:?}");
        assert_eq!(out.outcomes, naive, "outcome sets differ on {m:?}");
        assert!(out.executions <= naive_execs, "{m:?}");
    }
}

/// Optimal-DPOR on the TLB programs of `dpor_vs_naive.rs` (shootdowns, fills, lookups, scans):
/// naive's outcomes, complete.
#[test]
fn optimal_matches_naive_on_tlb_programs() {
    optimal_matches_naive_on(
        tlb_witness_programs()
            .into_iter()
            .chain(small_tlb_programs(300)),
    );
}
