//! DPOR against naive exhaustive enumeration on random small programs: the same set of
//! reachable final outcomes, DPOR complete, and never more executions than naive.

use mmcheck_explore::toy::{
    naive_outcomes, random_program, slab_programs, small_rcu_programs, small_tlb_programs,
    tlb_witness_programs, Op, Program,
};
use mmcheck_explore::{explore, Config, Mode};
use std::sync::Arc;

/// DPOR collecting every outcome, on past violations.
fn dpor_all() -> Config {
    Config {
        mode: Mode::Dpor,
        collect_outcomes: true,
        stop_on_violation: false,
        ..Config::default()
    }
}

fn check(p: Program) -> (u64, u64) {
    let m = Arc::new(p);
    let (naive, _deadlock, naive_execs) = naive_outcomes(&m);
    let out = explore(m.clone(), &dpor_all());
    assert!(out.complete, "DPOR incomplete on {:?}", m);
    assert_eq!(out.outcomes, naive, "outcome sets differ on {:?}", m);
    assert!(
        out.executions <= naive_execs,
        "{} > {naive_execs} on {:?}",
        out.executions,
        m
    );
    (out.executions, naive_execs)
}

#[test]
fn dpor_matches_naive_on_1000_random_programs() {
    let (mut d, mut n) = (0, 0);
    for seed in 0..1000 {
        let (a, b) = check(random_program(seed));
        d += a;
        n += b;
    }
    assert!(d < n, "no reduction at all: {d} vs {n}");
    eprintln!("DPOR {d} executions, naive {n}");
}

#[test]
fn independent_threads_take_one_execution() {
    let p = Program {
        vars: 2,
        locks: 0,
        frames: 0,
        threads: vec![
            vec![Op::Write(0, 1), Op::Read(0)],
            vec![Op::Write(1, 1), Op::Read(1)],
        ],
    };
    let (d, n) = check(p);
    assert_eq!(d, 1);
    assert_eq!(n, 6);
}

#[test]
fn store_buffering_outcomes() {
    // SB under SC: never both reads 0.
    let p = Program {
        vars: 2,
        locks: 0,
        frames: 0,
        threads: vec![
            vec![Op::Write(0, 1), Op::Read(1)],
            vec![Op::Write(1, 1), Op::Read(0)],
        ],
    };
    let m = Arc::new(p);
    let out = explore(
        m,
        &Config {
            collect_outcomes: true,
            stop_on_violation: false,
            ..Config::default()
        },
    );
    assert!(out.complete);
    assert_eq!(out.outcomes.len(), 3);
    assert!(!out.outcomes.iter().any(|o| o.contains("| [0] | [0]")));
}

#[test]
fn lock_inversion_is_reported_without_deadlock_needed() {
    // T0: lock a, lock b; T1: lock b, lock a — with a preemption bound of 0 no deadlock is
    // explored, but lockdep still sees both orders.
    let p = Program {
        vars: 1,
        locks: 2,
        frames: 0,
        threads: vec![
            vec![
                Op::Lock(0),
                Op::Lock(1),
                Op::Write(0, 1),
                Op::Unlock(1),
                Op::Unlock(0),
            ],
            vec![
                Op::Lock(1),
                Op::Lock(0),
                Op::Write(0, 2),
                Op::Unlock(0),
                Op::Unlock(1),
            ],
        ],
    };
    let m = Arc::new(p);
    let out = explore(
        m.clone(),
        &Config {
            preemption_bound: Some(0),
            stop_on_violation: false,
            ..Config::default()
        },
    );
    assert!(out.counterexample.is_none(), "bound 0 cannot deadlock");
    assert_eq!(out.lock_inversions.len(), 1, "{:?}", out.lock_inversions);
    // Both halves replay from their own tokens: each ends with the edge's acquisition.
    let inv = &out.lock_inversions[0];
    for e in [&inv.first, &inv.second] {
        let r = mmcheck_explore::schedule::replay(&m, &e.schedule, true);
        let last = &r.trace[e.step];
        assert_eq!(last.thread, e.thread);
        assert_eq!(last.event.access, mmcheck_platform::Access::Acquire);
    }
    assert_ne!(inv.first.thread, inv.second.thread);
    let out = explore(m, &Config::default());
    let cx = out
        .counterexample
        .expect("unbounded DPOR finds the deadlock");
    assert_eq!(cx.violation.kind, mmcheck_platform::ViolationKind::Deadlock);
}

/// Sharded DPOR (`Config::shard`): for 2, 3 and 5 shards, every shard complete and the union of
/// the shards' outcomes the naive set, on random programs; each execution belongs to one shard.
#[test]
fn shards_together_match_naive() {
    use mmcheck_explore::Shard;
    for seed in 0..300 {
        let m = Arc::new(random_program(seed));
        let (naive, _deadlock, _) = naive_outcomes(&m);
        for count in [2u32, 3, 5] {
            let mut union = std::collections::BTreeSet::new();
            for index in 0..count {
                let cfg = Config {
                    collect_outcomes: true,
                    stop_on_violation: false,
                    shard: Some(Shard { index, count }),
                    ..Config::default()
                };
                let out = explore(m.clone(), &cfg);
                assert!(out.complete, "shard {index}/{count} incomplete on {m:?}");
                union.extend(out.outcomes);
            }
            assert_eq!(union, naive, "{count} shards miss outcomes on {m:?}");
        }
    }
}

#[test]
fn shard_strings() {
    use mmcheck_explore::Shard;
    let s: Shard = "2/4".parse().unwrap();
    assert_eq!((s.index, s.count), (1, 4));
    assert_eq!(s.to_string(), "2/4");
    for bad in ["0/4", "5/4", "1/0", "x/2", "2", "1/5000"] {
        assert!(bad.parse::<Shard>().is_err(), "{bad}");
    }
    // The executions of a random search are dealt out whole.
    let total: u64 = (0..3)
        .map(|index| Shard { index, count: 3 }.executions(100))
        .sum();
    assert_eq!(total, 100);
}

/// `explore_parallel`: on 2 and 3 worker threads handing each other subtrees, complete with the
/// naive outcome set, and the same counterexample token on every run: the one a single worker
/// finds, whatever the timing.
#[test]
fn parallel_workers_match_naive_and_are_deterministic() {
    use mmcheck_explore::explore_parallel;
    for seed in 0..60 {
        let m = Arc::new(random_program(seed));
        let (naive, _deadlock, _) = naive_outcomes(&m);
        for jobs in [2, 3] {
            let cfg = Config {
                collect_outcomes: true,
                stop_on_violation: false,
                ..Config::default()
            };
            let out = explore_parallel(m.clone(), &cfg, jobs);
            assert!(out.complete, "incomplete with {jobs} workers on {m:?}");
            assert_eq!(out.outcomes, naive, "{jobs} workers on {m:?}");
            let stop = Config::default(); // stop at the first violation
            let a = explore_parallel(m.clone(), &stop, jobs);
            let b = explore_parallel(m.clone(), &stop, jobs);
            let token = |o: &mmcheck_explore::Outcome| {
                o.counterexample.as_ref().map(|c| c.schedule.to_string())
            };
            assert_eq!(token(&a), token(&b), "{jobs} workers on {m:?}");
            let one = mmcheck_explore::explore(m.clone(), &stop);
            assert_eq!(
                token(&a),
                token(&one),
                "{jobs} workers against one on {m:?}"
            );
            if a.counterexample.is_some() {
                assert_eq!(a.executions, one.executions);
            }
        }
    }
}

/// The hand-off of subtrees between workers at its most extreme: every untried branch is given
/// away as soon as it exists, on one worker (the units run when their giver joins them, in a
/// fixed order) and on two. The outcome set is the naive one, every search complete: the
/// backtrack points a given subtree's races put on its prefix reach the giver, and a given
/// branch's sleep set holds only branches explored or given before it.
#[test]
fn eager_hand_off_matches_naive() {
    use mmcheck_explore::dpor::explore_stealing_with;
    for seed in 0..300 {
        let m = Arc::new(random_program(seed));
        let (naive, _deadlock, _) = naive_outcomes(&m);
        let cfg = Config {
            collect_outcomes: true,
            stop_on_violation: false,
            ..Config::default()
        };
        for jobs in [1, 2] {
            let out = explore_stealing_with(m.clone(), &cfg, jobs, true);
            assert!(out.complete, "incomplete, eager on {jobs} on {m:?}");
            assert_eq!(out.outcomes, naive, "eager on {jobs} on {m:?}");
        }
        let one = explore(m.clone(), &cfg);
        let eager = explore_stealing_with(m.clone(), &cfg, 1, true);
        assert_eq!(one.outcomes, eager.outcomes);
    }
}

/// Programs over RCU: read sections that peek at table frames, frees through `call_rcu` (run by
/// the RCU callback thread) and at once. The dependency relation orders a callback step only
/// against the reader boundaries of the CPUs some pending callback waits for, and frees of
/// disjoint blocks not at all; naive enumeration orders everything. Sequential DPOR and the
/// eager hand-off on two workers must give naive's outcomes (which include whether each peek
/// saw its frame live, and which frames are freed at the end).
#[test]
fn dpor_matches_naive_on_rcu_programs() {
    check_sequential_and_eager(small_rcu_programs(300));
}

/// [`check`] on each program, then the eager hand-off on two workers against naive's outcomes.
fn check_sequential_and_eager(programs: impl IntoIterator<Item = Program>) {
    use mmcheck_explore::dpor::explore_stealing_with;
    let (mut d, mut n) = (0, 0);
    for m in programs {
        let (a, b) = check(m.clone());
        d += a;
        n += b;
        let m = Arc::new(m);
        let cfg = Config {
            collect_outcomes: true,
            stop_on_violation: false,
            ..Config::default()
        };
        let (naive, _, _) = naive_outcomes(&m);
        let out = explore_stealing_with(m.clone(), &cfg, 2, true);
        assert!(out.complete, "incomplete, eager on 2 on {m:?}");
        assert_eq!(out.outcomes, naive, "eager on 2 on {m:?}");
    }
    eprintln!("DPOR {d} executions, naive {n}");
}

/// RCU callbacks against readers that leave and re-enter, pending callbacks waiting for
/// different readers, and `call_rcu`s while a callback is ready: a callback step is ordered only
/// against the boundaries of CPUs still inside the section a callback queued ahead of the first
/// ready one waits for, and with a callback ready it commutes with `call_rcu`
/// (`Machine::rcu_callback_footprint`). Which callback runs first, and whether a peek outside a
/// section sees its frame, must come out as naive enumeration says.
#[test]
fn dpor_matches_naive_on_rcu_callback_waiters() {
    use Op::*;
    let programs = [
        vec![
            vec![RcuLock, RcuUnlock, RcuLock, Peek(0), RcuUnlock],
            vec![FreeRcu(0), Peek(0)],
        ],
        vec![
            vec![RcuLock, Peek(0), RcuUnlock],
            vec![RcuLock, Peek(1), RcuUnlock],
            vec![FreeRcu(0), FreeRcu(1)],
            vec![Peek(1), Peek(0)],
        ],
        vec![
            vec![RcuLock, Peek(1), RcuUnlock, RcuLock, Peek(0), RcuUnlock],
            vec![FreeRcu(0), FreeRcu(1)],
            vec![Peek(0)],
        ],
        vec![
            vec![RcuLock, RcuUnlock, RcuLock, RcuUnlock],
            vec![RcuLock, Peek(0), RcuUnlock],
            vec![FreeRcu(1), FreeRcu(0), Peek(1)],
        ],
        // call_rcu from two CPUs, each while the other may be reading what it queues.
        vec![
            vec![FreeRcu(0), RcuLock, Peek(1), RcuUnlock],
            vec![RcuLock, Peek(0), RcuUnlock, FreeRcu(1)],
        ],
        // A callback ready (frame 0) while later ones are queued behind a reader or not.
        vec![
            vec![FreeRcu(0), FreeRcu(1), FreeRcu(2)],
            vec![RcuLock, Peek(1), RcuUnlock],
            vec![Peek(2), Peek(0)],
        ],
        vec![
            vec![RcuLock, Peek(0), RcuUnlock, Peek(2)],
            vec![FreeRcu(0), FreeRcu(1), FreeRcu(2), Peek(1)],
        ],
    ];
    for threads in programs {
        check(Program {
            vars: 1,
            locks: 0,
            frames: 3,
            threads,
        });
    }
}

/// Trylocks against holders: a failed `spin_trylock` is an outcome, so a trylock is a real
/// alternative to the release it races with, unlike a waiting acquire, which cannot come before
/// the release of the hold that blocks it (`deps::enables`: no backtrack point for that pair).
#[test]
fn dpor_matches_naive_on_trylocks() {
    use Op::*;
    let programs = [
        vec![
            vec![Lock(0), Write(0, 1), Unlock(0)],
            vec![TryLockWrite(0, 1, 2)],
        ],
        vec![
            vec![Lock(0), Read(1), Unlock(0), Lock(0), Unlock(0)],
            vec![TryLockWrite(0, 1, 5), Read(0)],
        ],
        vec![
            vec![Lock(0), Write(0, 1), Unlock(0)],
            vec![Lock(0), Read(0), Unlock(0)],
            vec![Read(1), TryLockWrite(0, 1, 3)],
        ],
        vec![
            vec![Write(1, 1), Lock(0), Unlock(0)],
            vec![TryLockWrite(0, 0, 2), Lock(0), Read(1), Unlock(0)],
        ],
    ];
    for threads in programs {
        check(Program {
            vars: 2,
            locks: 1,
            frames: 0,
            threads,
        });
    }
}

/// Shootdowns, fills, lookups and TLB-oracle scans: a shootdown's send step is ordered against
/// another only if one of them picks its targets by TLB contents or they drop common pages, and
/// against a scan only if it drops a translation to a frame the scan asks about
/// (`Machine::tlb_footprint`). What each lookup and scan saw must come out as naive enumeration
/// says, sequentially and with the eager hand-off on two workers.
#[test]
fn dpor_matches_naive_on_tlb_programs() {
    check_sequential_and_eager(
        tlb_witness_programs()
            .into_iter()
            .chain(small_tlb_programs(300)),
    );
}

/// A `SLAB_TYPESAFE_BY_RCU` object's free against accesses to its field inside RCU read-side
/// sections (they commute: `Obj::RCU_READER`) and outside (they do not): naive's outcomes,
/// use-after-frees included.
#[test]
fn dpor_matches_naive_on_typesafe_slab_programs() {
    for m in slab_programs() {
        check(m);
    }
}

/// `Locked` cells: their reads are not scheduling points, and the explorer checks their locking
/// rule with happens-before clocks. Wherever some interleaving breaks the rule, DPOR reports it
/// too (the soundness argument of `GuardLog`); wherever none does, DPOR finds every outcome.
#[test]
fn dpor_matches_naive_on_locked_cells() {
    use mmcheck_explore::toy::{naive_search, random_locked_program};
    use mmcheck_platform::ViolationKind;
    let (mut breaches, mut clean) = (0, 0);
    for seed in 0..400 {
        let m = Arc::new(random_locked_program(seed));
        let naive = naive_search(&m);
        let out = explore(m.clone(), &dpor_all());
        assert!(out.complete, "DPOR incomplete on {m:?}");
        let breach = naive.kinds.contains(&ViolationKind::DataRace);
        assert_eq!(
            out.violation_kinds.contains(&ViolationKind::DataRace),
            breach,
            "naive and DPOR disagree on a locking-rule breach in {m:?}"
        );
        if breach {
            breaches += 1;
        } else {
            clean += 1;
            assert_eq!(out.outcomes, naive.outcomes, "outcome sets differ on {m:?}");
        }
        assert!(out.executions <= naive.executions);
    }
    eprintln!("{breaches} breaches, {clean} clean");
    assert!(
        breaches > 20 && clean > 100,
        "{breaches} breaches, {clean} clean"
    );
}

/// The two shapes by hand: a reader under the writer's lock is ordered after or before the
/// write (both values seen, no report); a reader without it is reported, with the cell, the
/// place and the writer named.
#[test]
fn an_unlocked_read_of_a_locked_cell_is_reported() {
    use mmcheck_platform::ViolationKind;
    let writer = vec![Op::Lock(0), Op::LockedWrite(0, 1), Op::Unlock(0)];
    let run = |reader: Vec<Op>| {
        let m = Arc::new(Program {
            vars: 1,
            locks: 1,
            frames: 0,
            threads: vec![writer.clone(), reader],
        });
        explore(m, &dpor_all())
    };
    let ok = run(vec![Op::Lock(0), Op::LockedRead(0), Op::Unlock(0)]);
    assert!(ok.violation_kinds.is_empty(), "{:?}", ok.violation_kinds);
    assert_eq!(ok.outcomes.len(), 2, "{:?}", ok.outcomes);
    // An announced word access first, so the read is inside a step of its own thread.
    let bad = run(vec![Op::Read(0), Op::LockedRead(0)]);
    assert!(bad.violation_kinds.contains(&ViolationKind::DataRace));
    let msg = &bad.counterexample.expect("a counterexample").violation.msg;
    assert!(
        msg.contains("with no lock ordering it against T0's write") && msg.contains("toy.rs"),
        "{msg}"
    );
}
