//! Exhaustive exploration: source-DPOR with sleep sets (Abdulla, Aronis, Jonsson, Sagonas,
//! "Optimal dynamic partial order reduction", POPL 2014, Algorithm 1), stateless: every execution
//! is re-run from a fresh instance along the recorded prefix.
//!
//! Happens-before is tracked with vector clocks over the dependency relation of [`crate::deps`].
//! When a new event races with an earlier one, the initials of `notdep(e, E).p` are computed and,
//! if none is already in the backtrack set of the state before the earlier event, one is added
//! (all enabled threads when no initial is enabled there, which blocking operations can cause).
//! With a preemption bound, choices beyond the bound are pruned and the result is not `complete`.

use crate::deps::{dependent, Key};
use crate::exec::{Exec, StackPool, MAX_THREADS};
use crate::{Config, Counterexample, Inconclusive, Model, Outcome, Shard};
use mmcheck_platform::{Event, Obj, Violation};
use std::sync::Arc;
use std::time::Instant;

type Vc = [u32; MAX_THREADS];

fn join(a: &mut Vc, b: &Vc) {
    for i in 0..MAX_THREADS {
        a[i] = a[i].max(b[i]);
    }
}

struct Node {
    thread: usize,
    ev: Event,
    key: Key,
    clock: Vc,
    pending: [Option<Event>; MAX_THREADS],
    enabled: u32,
    backtrack: u32,
    done: u32,
    sleep: u32,
    /// Preemptions up to and including this node's choice.
    preemptions: u32,
    /// The chosen thread's operation was a blocking one (it had waited, or could have).
    blocking: bool,
    /// The outcome taken if the chosen thread's step is a choice (`Cpu::choose`), and how many
    /// it has (1 for any other step). A choice is independent of every other event, so its
    /// outcomes are all tried here, before any other thread's.
    choice: u8,
    alts: u8,
}

/// How many outcomes a pending event has.
fn outcomes(ev: Option<Event>) -> u8 {
    match ev.map(|e| e.obj) {
        Some(Obj::Choice { n, .. }) => n,
        _ => 1,
    }
}

fn lowest(m: u32) -> usize {
    m.trailing_zeros() as usize
}

/// Cost of choosing `t` at a node whose predecessor ran `prev`.
fn preempts(prev: Option<usize>, enabled: u32, t: usize) -> u32 {
    match prev {
        Some(p) if p != t && enabled & (1 << p) != 0 => 1,
        _ => 0,
    }
}

/// Name a lock id for reports.
pub fn lock_name(id: u64) -> String {
    Obj::Lock(id).describe()
}

/// Explore every interleaving up to partial-order equivalence.
pub fn explore<M: Model>(model: Arc<M>, cfg: &Config) -> Outcome {
    let start = Instant::now();
    let mut pool = StackPool::default();
    let mut out = Outcome::default();
    let mut edges = crate::lockdep::Edges::new();
    let mut stack: Vec<Node> = Vec::new();
    let mut fresh_from = 0usize;
    let mut pruned = false;
    let bound = cfg.preemption_bound;
    let shard = cfg.shard.filter(|s| s.count > 1);
    // Sharded: the top `split` levels are fully expanded, and their prefixes dealt out.
    let split = shard.map_or(0, Shard::split_depth);
    let decisions = |stack: &[Node]| -> Vec<u8> {
        stack
            .iter()
            .map(|n| crate::exec::decision(n.thread, n.choice))
            .collect()
    };
    let over = |n: u32| bound.is_some_and(|b| n > b);
    let mut complete = true;
    loop {
        if cfg.max_executions.is_some_and(|m| out.executions >= m)
            || cfg.budget.is_some_and(|b| start.elapsed() >= b)
        {
            out.budget_exhausted = true;
            complete = false;
            break;
        }
        if cfg.interrupted() {
            out.interrupted = true;
            complete = false;
            break;
        }
        let mut ex: Exec<M> = Exec::new(&model, &mut pool, false);
        if cfg.fingerprint {
            ex.track_fingerprint();
        }
        if cfg.coverage {
            ex.track_coverage();
        }
        let mut thread_clock = [[0u32; MAX_THREADS]; MAX_THREADS];
        let mut depth = 0usize;
        let mut sleep_next = 0u32;
        let mut violation: Option<Violation> = ex.violation();
        let mut limit = ex.limit();
        let mut ended_early = false;
        let mut sleep_blocked = false;
        // Another shard's prefix: the execution stops there and is not this shard's.
        let mut foreign = false;
        while violation.is_none() && limit.is_none() && !ex.finished() {
            let enabled = match ex.next_enabled(depth, cfg.max_steps) {
                Ok(e) => e,
                Err(h) => {
                    h.record(&mut violation, &mut limit);
                    break;
                }
            };
            let prev = depth.checked_sub(1).map(|d| stack[d].thread);
            let t = if depth < stack.len() {
                stack[depth].thread
            } else {
                let mut pending = [None; MAX_THREADS];
                for (q, slot) in pending.iter_mut().enumerate().take(ex.threads()) {
                    *slot = ex.pending_event(q);
                }
                let cands = enabled & !sleep_next;
                if cands == 0 {
                    ended_early = true; // sleep-set blocked: equivalent to an explored execution
                    sleep_blocked = true;
                    break;
                }
                let pre = prev.map_or(0, |_| stack[depth - 1].preemptions);
                let t = match prev {
                    Some(p) if cands & (1 << p) != 0 => p,
                    _ => lowest(cands),
                };
                let pre = pre + preempts(prev, enabled, t);
                if over(pre) {
                    pruned = true;
                    ended_early = true;
                    break;
                }
                stack.push(Node {
                    thread: t,
                    ev: Event::new(Obj::Alloc, mmcheck_platform::Access::Read),
                    key: Key::of(&Event::new(Obj::Alloc, mmcheck_platform::Access::Read)),
                    clock: [0; MAX_THREADS],
                    pending,
                    enabled,
                    backtrack: if depth < split {
                        enabled & !sleep_next
                    } else {
                        1 << t
                    },
                    done: 0,
                    sleep: sleep_next,
                    preemptions: pre,
                    blocking: false,
                    choice: 0,
                    alts: ex.alternatives(t),
                });
                t
            };
            stack[depth].blocking = ex.pending_is_block(t);
            stack[depth].done |= 1 << t;
            let ev = ex.step(crate::exec::decision(t, stack[depth].choice) as usize);
            let prev_clock = thread_clock[t];
            let mut c = prev_clock;
            let key = Key::of(&ev);
            for n in &stack[..depth] {
                if n.thread != t && n.key.may_depend(&key) && dependent(&n.ev, &ev) {
                    join(&mut c, &n.clock);
                }
            }
            c[t] = prev_clock[t] + 1;
            thread_clock[t] = c;
            stack[depth].ev = ev;
            stack[depth].key = key;
            stack[depth].clock = c;
            ex.set_reach_clock(c);
            if depth >= fresh_from {
                add_backtracks(&mut stack, depth, &prev_clock);
            }
            let node = &stack[depth];
            sleep_next = 0;
            let mut s = (node.sleep | node.done) & !(1 << t);
            while s != 0 {
                let q = lowest(s);
                s &= s - 1;
                if let Some(pe) = node.pending[q] {
                    if !dependent(&pe, &ev) {
                        sleep_next |= 1 << q;
                    }
                }
            }
            depth += 1;
            if depth == split
                && !shard.is_some_and(|s| s.owns(decisions(&stack[..depth]).into_iter()))
            {
                foreign = true;
                break;
            }
            limit = ex.limit();
            if limit.is_none() && ex.violated() {
                violation = ex.violation();
            }
        }
        stack.truncate(depth);
        if depth < split && !shard.is_some_and(|s| s.owns(decisions(&stack).into_iter())) {
            foreign = true; // a whole execution shorter than the split depth
        }
        if foreign {
            ex.finish(&mut pool, false);
        } else {
            out.executions += 1;
            out.sleep_blocked += u64::from(sleep_blocked);
            out.steps += depth as u64;
            cfg.note_progress(out.executions);
            crate::lockdep::merge(&mut edges, &ex.locks.edges);
            if let Some(limit) = limit {
                // A tool limit: this execution proves nothing, and the search stops here.
                ex.finish(&mut pool, false);
                out.inconclusive = Some(Inconclusive {
                    limit,
                    schedule: crate::Schedule(stack.iter().map(|n| n.thread as u8).collect()),
                });
                complete = false;
                break;
            }
            let (reached, fp) = (ex.reached(), ex.fingerprint());
            if let Some(c) = ex.coverage.take() {
                out.coverage.extend(c);
            }
            let finish = ex.finish(&mut pool, violation.is_none() && !ended_early);
            out.account(
                cfg,
                model.reach().patterns.len(),
                reached,
                fp,
                finish.as_ref(),
                || {
                    crate::Schedule(
                        stack
                            .iter()
                            .map(|n| crate::exec::decision(n.thread, n.choice))
                            .collect(),
                    )
                },
            );
            out.violation_kinds.extend(violation.iter().map(|v| v.kind));
            if let Some(f) = &finish {
                out.violation_kinds
                    .extend(f.violations.iter().map(|v| v.kind));
                if violation.is_none() {
                    violation = f.violations.first().cloned();
                }
            }
            if let Some(v) = violation {
                if out.counterexample.is_none() {
                    let sched: Vec<u8> = stack
                        .iter()
                        .map(|n| crate::exec::decision(n.thread, n.choice))
                        .collect();
                    out.counterexample = Some(Counterexample {
                        violation: v,
                        steps: sched.len(),
                        preemptions: stack.last().map_or(0, |n| n.preemptions as usize),
                        schedule: crate::Schedule(sched),
                    });
                }
                if cfg.stop_on_violation {
                    complete = false;
                    break;
                }
            }
        }
        // Backtrack to the deepest node with an unexplored, non-sleeping choice.
        let mut found = false;
        while let Some(i) = stack.len().checked_sub(1) {
            let n = &stack[i];
            if n.choice + 1 < n.alts {
                // The same thread at the same place, its choice's next outcome.
                stack[i].choice += 1;
                fresh_from = i;
                found = true;
                break;
            }
            let todo = n.backtrack & !n.done & !n.sleep & n.enabled;
            if todo == 0 {
                stack.pop();
                continue;
            }
            let t = lowest(todo);
            let prev = i.checked_sub(1).map(|d| stack[d].thread);
            let pre =
                i.checked_sub(1).map_or(0, |d| stack[d].preemptions) + preempts(prev, n.enabled, t);
            if over(pre) {
                pruned = true;
                stack[i].done |= 1 << t;
                continue;
            }
            stack[i].thread = t;
            stack[i].preemptions = pre;
            stack[i].choice = 0;
            stack[i].alts = outcomes(stack[i].pending[t]);
            fresh_from = i;
            found = true;
            break;
        }
        if !found {
            break;
        }
    }
    out.complete = complete && !pruned;
    out.lock_inversions = crate::lockdep::inversions(&edges, &*model);
    out.elapsed = start.elapsed();
    out
}

/// Race analysis for the event at `n` (source-DPOR).
///
/// A blocking operation (lock acquire, grace period, IPI, waiting on a refcount) is enabled only
/// by some earlier event (a release, a reader leaving). That enabling event is not a reversible
/// race partner, and it must not hide the events before it: the acquire races with the previous
/// acquire, the grace period with the reader's `rcu_read_lock`. So for a blocking operation no
/// dependent event covers another, and a race with no enabled initial adds nothing (the reversal
/// is reached through the earlier race instead).
fn add_backtracks(stack: &mut [Node], n: usize, prev_clock: &Vc) {
    let p = stack[n].thread;
    let ev = stack[n].ev;
    let key = stack[n].key;
    let blocking = stack[n].blocking;
    let mut covered = *prev_clock;
    for i in (0..n).rev() {
        let ti = stack[i].thread;
        if ti == p || !stack[i].key.may_depend(&key) || !dependent(&stack[i].ev, &ev) {
            continue;
        }
        if stack[i].clock[ti] <= covered[ti] {
            continue;
        }
        let ci = stack[i].clock;
        race(stack, i, n, blocking);
        if !blocking {
            join(&mut covered, &ci);
        }
    }
}

fn race(stack: &mut [Node], i: usize, n: usize, blocking: bool) {
    let ti = stack[i].thread;
    let ci = stack[i].clock[ti];
    let mut first_v = [u32::MAX; MAX_THREADS];
    let mut seen = 0u32;
    let mut initials = 0u32;
    for j in (i + 1..n).chain(std::iter::once(n)) {
        let e = &stack[j];
        if j != n && e.clock[ti] >= ci {
            continue; // happens after e_i: not in notdep(e_i, E)
        }
        let tj = e.thread;
        if seen & (1 << tj) == 0 {
            seen |= 1 << tj;
            let has_pred = (0..MAX_THREADS).any(|u| u != tj && first_v[u] <= e.clock[u]);
            if !has_pred {
                initials |= 1 << tj;
            }
            first_v[tj] = e.clock[tj];
        }
    }
    let node = &mut stack[i];
    if initials & (node.backtrack | node.sleep) != 0 {
        return;
    }
    let en = initials & node.enabled;
    let p = stack[n].thread;
    let node = &mut stack[i];
    if en != 0 {
        node.backtrack |= if en & (1 << p) != 0 {
            1 << p
        } else {
            1 << lowest(en)
        };
    } else if !blocking {
        node.backtrack |= node.enabled & !node.sleep;
    }
}
