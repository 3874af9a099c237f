//! Exhaustive exploration with wakeup trees: Optimal-DPOR (Abdulla, Aronis, Jonsson, Sagonas,
//! "Optimal dynamic partial order reduction", POPL 2014, Algorithm 2; "Source Sets: A Foundation
//! for Optimal Dynamic Partial Order Reduction", JACM 2017), selected by [`crate::Config::optimal`].
//!
//! Same stateless search as [`crate::dpor`] (re-run from a fresh instance along the recorded
//! prefix, vector clocks over [`crate::deps`], sleep sets), but each state keeps a wakeup tree
//! instead of a backtrack set: when an event `e'` races with an earlier `e`, the whole sequence
//! `v = notdep(e, E).e'` that reverses the race is inserted into the wakeup tree of the state
//! before `e` (unless a weak initial of `v` sleeps there), and the search follows it. A branch
//! chosen freely sits at a leaf; so no execution is sleep-set blocked when the dependency
//! relation alone decides what is enabled.
//!
//! Where it cannot be optimal, it falls back to coarser rules:
//! - a blocking operation (lock acquire, grace period, IPI, `block` waits) races with every
//!   earlier dependent event, as in [`crate::dpor`]; a race none of whose initials is enabled
//!   before `e` is not reversible there (`e` enabled `e'`) and adds nothing. Blocking is also why
//!   some executions stay sleep-set blocked: a sleeping thread can hold the lock (or owe the
//!   release) that every other enabled thread waits for, which the dependency relation between
//!   the next events cannot see;
//! - a non-blocking race none of whose initials is enabled before `e` (blocking operations inside
//!   `v`): every enabled thread there becomes a leaf, as in source-DPOR;
//! - a wakeup-tree branch whose thread turns out disabled is dropped (it reversed no feasible
//!   race); the state is explored freely if nothing else is left;
//! - a choice (`Cpu::choose`): each outcome is a branch of its own, and the thread sleeps only
//!   once all its outcomes were explored at that state;
//! - leaves added by these rules (not by a race reversal) do not cover an inserted sequence: an
//!   insertion that reaches one continues below it;
//! - with shards, the top levels are fully expanded (every enabled thread a leaf) and each prefix
//!   starts a search of its own, with an empty sleep set and no race reversed into the top: a
//!   sibling's subtree is partly another shard's, so it cannot put a thread to sleep here. Sound,
//!   but with more executions than one search, so `explore_parallel` runs this on one worker;
//! - with a preemption bound, branches beyond it are pruned (the result is then not complete).

use crate::deps::{dependent, Key};
use crate::exec::{decision, thread_of, Exec, StackPool, MAX_THREADS};
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

/// A wakeup tree's branch: a decision (thread and choice outcome), its event, what follows.
struct Branch {
    d: u8,
    ev: Event,
    kids: Vec<Branch>,
    /// Added by a fallback rule, not by reversing a race: as a leaf it covers no sequence, so an
    /// insertion that reaches it continues below it.
    fallback: bool,
}

impl Branch {
    fn thread(&self) -> usize {
        thread_of(self.d as usize)
    }
}

/// One event of a sequence being inserted: decision, event, thread and clock (its
/// happens-before in the execution it was taken from).
#[derive(Clone, Copy)]
struct SeqEv {
    d: u8,
    ev: Event,
    t: usize,
    clock: Vc,
}

struct Node {
    thread: usize,
    choice: u8,
    ev: Event,
    key: Key,
    clock: Vc,
    pending: [Option<Event>; MAX_THREADS],
    enabled: u32,
    /// Threads fully explored here (every outcome of a choice), added to the sleep set of later
    /// branches.
    done: u32,
    sleep: u32,
    preemptions: u32,
    blocking: bool,
    /// The wakeup tree: `wut[0]` is the branch being explored (its subtree moved to the next
    /// node), the rest are still to do, leftmost first.
    wut: Vec<Branch>,
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

fn preempts(prev: Option<usize>, enabled: u32, t: usize) -> u32 {
    match prev {
        Some(p) if p != t && enabled & (1 << p) != 0 => 1,
        _ => 0,
    }
}

/// A leaf for thread `t` at a state with `pending`: one per outcome of a choice, each added
/// only if absent.
fn add_leaves(wut: &mut Vec<Branch>, pending: &[Option<Event>; MAX_THREADS], t: usize) {
    let Some(ev) = pending[t] else { return };
    for c in 0..outcomes(Some(ev)) {
        let d = decision(t, c);
        if !wut.iter().any(|b| b.d == d) {
            wut.push(Branch {
                d,
                ev,
                kids: Vec::new(),
                fallback: true,
            });
        }
    }
}

/// Explore every interleaving up to partial-order equivalence, following wakeup trees.
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
    let split = shard.map_or(0, Shard::split_depth);
    let decisions = |stack: &[Node]| -> Vec<u8> {
        stack.iter().map(|n| decision(n.thread, n.choice)).collect()
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
        let mut foreign = false;
        while violation.is_none() && limit.is_none() {
            let enabled = match ex.next_enabled(depth, cfg.max_steps) {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(h) => {
                    h.record(&mut violation, &mut limit);
                    break;
                }
            };
            let prev = depth.checked_sub(1).map(|d| stack[d].thread);
            if depth >= stack.len() {
                let mut pending = [None; MAX_THREADS];
                for (q, slot) in pending.iter_mut().enumerate().take(ex.threads()) {
                    *slot = ex.pending_event(q);
                }
                // The subtree the parent's branch carries.
                let mut wut = match depth.checked_sub(1) {
                    Some(d) => std::mem::take(&mut stack[d].wut[0].kids),
                    None => Vec::new(),
                };
                // A branch whose thread is disabled here, or whose choice outcome does not
                // exist, reverses no feasible race.
                wut.retain(|b| {
                    let t = b.thread();
                    enabled & (1 << t) != 0
                        && crate::exec::choice_of(b.d as usize) < outcomes(pending[t])
                });
                if depth < split {
                    let mut all = enabled & !sleep_next;
                    while all != 0 {
                        let q = lowest(all);
                        all &= all - 1;
                        add_leaves(&mut wut, &pending, q);
                    }
                }
                let pre0 = prev.map_or(0, |_| stack[depth - 1].preemptions);
                // Branches beyond the preemption bound are pruned.
                wut.retain(|b| {
                    let keep = !over(pre0 + preempts(prev, enabled, b.thread()));
                    pruned |= !keep;
                    keep
                });
                if wut.is_empty() {
                    let cands = enabled & !sleep_next;
                    if cands == 0 {
                        ended_early = true; // sleep-set blocked
                        sleep_blocked = true;
                        break;
                    }
                    let t = match prev {
                        Some(p) if cands & (1 << p) != 0 => p,
                        _ => lowest(cands),
                    };
                    if over(pre0 + preempts(prev, enabled, t)) {
                        pruned = true;
                        ended_early = true;
                        break;
                    }
                    add_leaves(&mut wut, &pending, t);
                }
                let t = wut[0].thread();
                // Every outcome of a choice is a branch here.
                add_leaves(&mut wut, &pending, t);
                let placeholder = Event::new(Obj::Alloc, mmcheck_platform::Access::Read);
                stack.push(Node {
                    thread: t,
                    choice: crate::exec::choice_of(wut[0].d as usize),
                    ev: placeholder,
                    key: Key::of(&placeholder),
                    clock: [0; MAX_THREADS],
                    pending,
                    enabled,
                    done: 0,
                    sleep: sleep_next,
                    preemptions: pre0 + preempts(prev, enabled, t),
                    blocking: false,
                    wut,
                });
            }
            let t = stack[depth].thread;
            stack[depth].blocking = ex.pending_is_block(t);
            let ev = ex.step(decision(t, stack[depth].choice) as usize);
            if depth < fresh_from && stack[depth].ev == ev {
                // Replaying the unchanged prefix (as in `dpor.rs`): the clock is the one the
                // last execution computed here, and the next node exists.
                thread_clock[t] = stack[depth].clock;
                ex.set_step_clock(t, stack[depth].clock, stack[depth].key);
            } else {
                let prev_clock = thread_clock[t];
                let mut c = prev_clock;
                let key = Key::of(&ev);
                // Latest first, skipping events already in the clock's past (as in `dpor.rs`).
                for n in stack[..depth].iter().rev() {
                    if n.thread != t
                        && n.clock[n.thread] > c[n.thread]
                        && n.key.may_depend(&key)
                        && dependent(&n.ev, &ev)
                    {
                        join(&mut c, &n.clock);
                    }
                }
                c[t] = prev_clock[t] + 1;
                thread_clock[t] = c;
                stack[depth].ev = ev;
                stack[depth].key = key;
                stack[depth].clock = c;
                ex.set_step_clock(t, c, key);
                if depth >= fresh_from {
                    add_races(&mut stack, depth, &prev_clock, split);
                }
                let node = &stack[depth];
                sleep_next = 0;
                // Sharded: each prefix of the fully expanded top starts a search of its own.
                let mut s = if depth < split {
                    0
                } else {
                    (node.sleep | node.done) & !(1 << t)
                };
                while s != 0 {
                    let q = lowest(s);
                    s &= s - 1;
                    if let Some(pe) = node.pending[q] {
                        if !dependent(&pe, &ev) {
                            sleep_next |= 1 << q;
                        }
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
            foreign = true;
        }
        if foreign {
            ex.finish(&mut pool, false);
        } else {
            out.executions += 1;
            out.sleep_blocked += u64::from(sleep_blocked);
            out.steps += depth as u64;
            cfg.note_progress(out.executions);
            ex.locks.merge_into(&mut edges, &ex.sched);
            if let Some(limit) = limit {
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
            if cfg.classes && !ended_early {
                out.classes.insert(ex.class());
            }
            let finish = ex.finish(&mut pool, violation.is_none() && !ended_early);
            out.account(
                cfg,
                model.reach().patterns.len(),
                reached,
                fp,
                finish.as_ref(),
                || crate::Schedule(decisions(&stack)),
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
                    let sched = decisions(&stack);
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
        // Backtrack to the deepest node with a branch left in its wakeup tree.
        let mut found = false;
        while let Some(i) = stack.len().checked_sub(1) {
            let n = &mut stack[i];
            if !n.wut.is_empty() {
                let b = n.wut.remove(0);
                if !n.wut.iter().any(|o| o.thread() == b.thread()) {
                    n.done |= 1 << b.thread();
                }
            }
            let prev = i.checked_sub(1).map(|d| stack[d].thread);
            let pre_before = i.checked_sub(1).map_or(0, |d| stack[d].preemptions);
            let n = &mut stack[i];
            let mut next = None;
            while let Some(b) = n.wut.first() {
                let t = b.thread();
                let pre = pre_before + preempts(prev, n.enabled, t);
                if (n.sleep | n.done) & (1 << t) != 0 || n.enabled & (1 << t) == 0 {
                    // Asleep: an equivalent execution was explored. Disabled: not feasible.
                    n.wut.remove(0);
                    continue;
                }
                if over(pre) {
                    pruned = true;
                    let b = n.wut.remove(0);
                    if !n.wut.iter().any(|o| o.thread() == b.thread()) {
                        n.done |= 1 << b.thread();
                    }
                    continue;
                }
                next = Some((t, crate::exec::choice_of(b.d as usize), pre));
                break;
            }
            let Some((t, choice, pre)) = next else {
                stack.pop();
                continue;
            };
            n.thread = t;
            n.choice = choice;
            n.preemptions = pre;
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

/// Race analysis for the event at `n`: as in [`crate::dpor`] (which earlier events race with it,
/// and the blocking-operation rule), each race reversed by a wakeup-tree insertion.
fn add_races(stack: &mut [Node], n: usize, prev_clock: &Vc, split: usize) {
    let p = stack[n].thread;
    let ev = stack[n].ev;
    let key = stack[n].key;
    let blocking = stack[n].blocking;
    let mut covered = *prev_clock;
    for i in (0..n).rev() {
        let ti = stack[i].thread;
        if ti == p || stack[i].clock[ti] <= covered[ti] {
            continue;
        }
        if !stack[i].key.may_depend(&key) || !dependent(&stack[i].ev, &ev) {
            continue;
        }
        let ci = stack[i].clock;
        if i >= split {
            race(stack, i, n, blocking);
        }
        if !blocking {
            join(&mut covered, &ci);
        }
    }
}

/// `x` happens before `y` (both events of one execution, on different threads).
fn hb(x: &SeqEv, y: &SeqEv) -> bool {
    x.clock[x.t] <= y.clock[x.t]
}

fn race(stack: &mut [Node], i: usize, n: usize, blocking: bool) {
    let ti = stack[i].thread;
    let ci = stack[i].clock[ti];
    // v = notdep(e_i, E).e_n
    let mut v: Vec<SeqEv> = Vec::new();
    for j in (i + 1..n).chain(std::iter::once(n)) {
        let e = &stack[j];
        if j != n && e.clock[ti] >= ci {
            continue;
        }
        v.push(SeqEv {
            d: decision(e.thread, e.choice),
            ev: e.ev,
            t: e.thread,
            clock: e.clock,
        });
    }
    let node = &mut stack[i];
    let mut initials = 0u32;
    let mut seen = 0u32;
    for (k, x) in v.iter().enumerate() {
        if seen & (1 << x.t) == 0 {
            seen |= 1 << x.t;
            if !v[..k].iter().any(|y| hb(y, x)) {
                initials |= 1 << x.t;
            }
        }
    }
    let asleep = node.sleep | node.done;
    if blocking && initials & node.enabled == 0 {
        // The earlier event enabled this one: not a reversible race (see `crate::dpor`).
        return;
    }
    // Weak initials: the initials, and the enabled threads not in v whose next event is
    // independent of all of v.
    let mut weak = initials;
    let mut others = node.enabled & !seen;
    while others != 0 {
        let q = lowest(others);
        others &= others - 1;
        if let Some(pe) = node.pending[q] {
            if v.iter().all(|x| !dependent(&pe, &x.ev)) {
                weak |= 1 << q;
            }
        }
    }
    if weak & asleep != 0 {
        return;
    }
    if initials & node.enabled == 0 {
        // Not executable from here (blocking operations in v): every enabled thread.
        let mut all = node.enabled & !asleep;
        while all != 0 {
            let q = lowest(all);
            all &= all - 1;
            let pending = node.pending;
            add_leaves(&mut node.wut, &pending, q);
        }
        return;
    }
    insert(&mut node.wut, v);
}

/// Insert `v` into a wakeup tree (`insert[E](v, wut)` of the papers): descend through the leftmost branch
/// whose event is an initial of what is left of `v` (and remove that event from `v`) or is
/// independent of all of it (a weak initial not in `v`); if that reaches a leaf put there by a
/// race reversal, that sequence already covers `v`; else the rest of `v` is added below the
/// deepest branch reached, after its other children (below a fallback leaf, as its children).
fn insert(root: &mut Vec<Branch>, mut v: Vec<SeqEv>) {
    let mut cur = root;
    let mut covers = false;
    loop {
        if v.is_empty() || (covers && cur.is_empty()) {
            return;
        }
        let mut next = None;
        for (k, b) in cur.iter().enumerate() {
            let bt = b.thread();
            if let Some(pos) = v.iter().position(|x| x.t == bt) {
                if v[pos].d == b.d && !v[..pos].iter().any(|y| hb(y, &v[pos])) {
                    v.remove(pos);
                    next = Some(k);
                    break;
                }
            } else if v.iter().all(|x| !dependent(&b.ev, &x.ev)) {
                next = Some(k);
                break;
            }
        }
        match next {
            Some(k) => {
                covers = !cur[k].fallback;
                cur = &mut cur[k].kids;
            }
            None => {
                let mut chain: Option<Branch> = None;
                for x in v.into_iter().rev() {
                    chain = Some(Branch {
                        d: x.d,
                        ev: x.ev,
                        kids: chain.into_iter().collect(),
                        fallback: false,
                    });
                }
                cur.extend(chain);
                return;
            }
        }
    }
}
