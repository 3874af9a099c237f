//! Exhaustive exploration: source-DPOR with sleep sets (Abdulla, Aronis, Jonsson, Sagonas,
//! "Optimal dynamic partial order reduction", POPL 2014, Algorithm 1), stateless: every execution
//! is re-run from a fresh instance along the recorded prefix.
//!
//! Happens-before is tracked with vector clocks over the dependency relation of [`crate::deps`].
//! When a new event races with an earlier one, the initials of `notdep(e, E).p` are computed and,
//! if none is already in the backtrack set of the state before the earlier event, one is added
//! (all enabled threads when no initial is enabled there, which blocking operations can cause).
//! With a preemption bound, choices beyond the bound are pruned and the result is not `complete`.
//!
//! On several workers ([`explore_stealing`]) the search is split where it branches, as it runs:
//! when a worker is idle, another hands it the untried branch of its shallowest node with one
//! (the node's prefix, switched to that branch: a [`Unit`]), marks the branch done and goes on.
//! Before it leaves that node it waits for the unit (running other units meanwhile) and adds the
//! backtrack points the unit's races put on the prefix nodes to its own copies, so every branch
//! the sequential search would add is still explored by someone (the scheme of Simsa, Bryant and
//! Gibson, "Scalable dynamic partial order reduction", RV 2012). A given branch's sleep set holds
//! only branches given or explored before it, as in the sequential search, so the reduction stays
//! sound; which branches are given depends on timing, so the executions counted may differ
//! between runs, never the verdict.

use crate::deps::{dependent, enables, Key};
use crate::exec::{Exec, StackPool, MAX_THREADS};
use crate::{Config, Counterexample, Inconclusive, Model, Outcome, Shard};
use mmcheck_platform::{Event, Obj, Violation};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Vc = [u32; MAX_THREADS];

fn join(a: &mut Vc, b: &Vc) {
    for i in 0..MAX_THREADS {
        a[i] = a[i].max(b[i]);
    }
}

#[derive(Clone)]
struct Node {
    thread: usize,
    ev: Event,
    key: Key,
    clock: Vc,
    /// Other threads' pending events at this node, as footprints: only those of the threads in
    /// `known`, computed when the sleep set after the node's step needs them (the sleeping and
    /// the done threads), each from the node's state, the same in every execution through it.
    pending: [Option<Event>; MAX_THREADS],
    known: u32,
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
    /// Branches of this node handed to other workers, not yet joined.
    given: Vec<Arc<Slot>>,
}

/// A subtree handed to another worker: the path to it, its last node switched to the branch.
struct Unit {
    prefix: Vec<Node>,
    slot: Arc<Slot>,
}

/// Where a unit's result is left for the worker that gave it.
#[derive(Default)]
struct Slot {
    result: Mutex<Option<Part>>,
    done: AtomicBool,
}

impl Slot {
    fn put(&self, part: Part) {
        *self.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(part);
        self.done.store(true, Ordering::SeqCst);
    }

    fn take(&self) -> Part {
        self.result
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default()
    }
}

/// What one search (the whole, or a unit's subtree) found.
#[derive(Default)]
struct Part {
    out: Outcome,
    edges: crate::lockdep::Edges,
    complete: bool,
    pruned: bool,
    /// The backtrack sets of the prefix's nodes at the end (the races found below them).
    prefix_backtrack: Vec<u32>,
}

/// The workers' shared queue of units.
#[derive(Default)]
struct Pool {
    queue: Mutex<VecDeque<Unit>>,
    queued: AtomicUsize,
    /// Workers waiting for a unit.
    idle: AtomicUsize,
    /// A violation or a tool limit was found: every worker stops.
    stop: AtomicBool,
    /// The root search returned (every unit joined).
    finished: AtomicBool,
    executions: AtomicU64,
    /// Hand off every untried branch at once (the self-checks' worst case for the hand-off).
    eager: bool,
}

impl Pool {
    fn hungry(&self) -> bool {
        self.eager || self.idle.load(Ordering::Relaxed) > self.queued.load(Ordering::Relaxed)
    }

    fn push(&self, u: Unit) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.push_back(u);
        self.queued.fetch_add(1, Ordering::SeqCst);
    }

    fn pop(&self) -> Option<Unit> {
        if self.queued.load(Ordering::SeqCst) == 0 {
            return None;
        }
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let u = q.pop_front();
        if u.is_some() {
            self.queued.fetch_sub(1, Ordering::SeqCst);
        }
        u
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
    let part = search(
        &model,
        cfg,
        start,
        Vec::new(),
        None,
        &mut StackPool::default(),
    );
    finish(&*model, part, start)
}

fn finish<M: Model + ?Sized>(model: &M, part: Part, start: Instant) -> Outcome {
    let mut out = part.out;
    out.complete = part.complete && !part.pruned;
    out.lock_inversions = crate::lockdep::inversions(&part.edges, model);
    out.elapsed = start.elapsed();
    out
}

/// DPOR on `jobs` worker threads that hand each other subtrees (see the module doc). A
/// violation, a tool limit or a lock-order inversion found this way is found again by the
/// sequential search (within what is left of the budget), so the counterexample and its replay
/// token are the ones `explore` gives, whatever the timing.
pub fn explore_stealing<M: Model + Send + Sync>(
    model: Arc<M>,
    cfg: &Config,
    jobs: usize,
) -> Outcome {
    explore_stealing_with(model, cfg, jobs, false)
}

/// [`explore_stealing`], with `eager` handing off every untried branch as soon as it exists
/// (on one worker too: the units then run when their giver joins them). For the self-checks.
#[doc(hidden)]
pub fn explore_stealing_with<M: Model + Send + Sync>(
    model: Arc<M>,
    cfg: &Config,
    jobs: usize,
    eager: bool,
) -> Outcome {
    let start = Instant::now();
    let pool = Pool {
        eager,
        ..Pool::default()
    };
    let root = Arc::new(Slot::default());
    std::thread::scope(|sc| {
        for w in 0..jobs {
            let (pool, model, root) = (&pool, &model, root.clone());
            sc.spawn(move || {
                let mut stacks = StackPool::default();
                if w == 0 {
                    root.put(search(
                        model,
                        cfg,
                        start,
                        Vec::new(),
                        Some(pool),
                        &mut stacks,
                    ));
                    pool.finished.store(true, Ordering::SeqCst);
                    return;
                }
                while !pool.finished.load(Ordering::SeqCst) {
                    help(model, cfg, start, pool, &mut stacks);
                }
            });
        }
    });
    let out = finish(&*model, root.take(), start);
    let found = out.counterexample.is_some()
        || out.inconclusive.is_some()
        || !out.lock_inversions.is_empty();
    if !found || cfg.interrupted() {
        return out;
    }
    // The same finding from the sequential search: a deterministic counterexample.
    let mut c = cfg.clone();
    c.budget = cfg.budget.map(|b| b.saturating_sub(start.elapsed()));
    c.stop_on_violation = true;
    let again = explore(model, &c);
    if again.budget_exhausted || again.interrupted {
        return out;
    }
    if cfg.stop_on_violation {
        return Outcome {
            elapsed: start.elapsed(),
            ..again
        };
    }
    // The whole search ran: keep its outcome, with the sequential search's first counterexample.
    Outcome {
        counterexample: again.counterexample.or(out.counterexample),
        elapsed: start.elapsed(),
        ..out
    }
}

/// Run one unit from the queue, or, if there is none, wait a moment as an idle worker (whom
/// busy workers then hand branches to).
fn help<M: Model>(
    model: &Arc<M>,
    cfg: &Config,
    start: Instant,
    pool: &Pool,
    stacks: &mut StackPool,
) {
    match pool.pop() {
        Some(u) => u
            .slot
            .put(search(model, cfg, start, u.prefix, Some(pool), stacks)),
        None => {
            pool.idle.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_micros(50));
            pool.idle.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Wait for a given unit, running others meanwhile, and take its result.
fn join_unit<M: Model>(
    model: &Arc<M>,
    cfg: &Config,
    start: Instant,
    pool: &Pool,
    stacks: &mut StackPool,
    slot: &Slot,
) -> Part {
    while !slot.done.load(Ordering::SeqCst) {
        help(model, cfg, start, pool, stacks);
    }
    slot.take()
}

/// Add a joined unit's findings to the giver's: its outcome, and the backtrack points its
/// races put on the shared prefix.
fn absorb(part: &mut Part, stack: &mut [Node], sub: Part) {
    for (n, b) in stack.iter_mut().zip(&sub.prefix_backtrack) {
        n.backtrack |= b;
    }
    crate::lockdep::merge(&mut part.edges, &sub.edges);
    part.complete &= sub.complete;
    part.pruned |= sub.pruned;
    crate::parallel::combine(&mut part.out, sub.out);
}

/// DPOR below `prefix` (empty: the whole search). A unit's prefix ends with the node switched to
/// its branch: nodes before `base` are its giver's, and only their backtrack sets come back.
fn search<M: Model>(
    model: &Arc<M>,
    cfg: &Config,
    start: Instant,
    prefix: Vec<Node>,
    steal: Option<&Pool>,
    pool: &mut StackPool,
) -> Part {
    let mut part = Part {
        complete: true,
        ..Part::default()
    };
    let base = prefix.len();
    // The branch at the prefix's last node is new: its event is analysed for races.
    let mut fresh_from = base.saturating_sub(1);
    let mut stack: Vec<Node> = prefix;
    let mut out = Outcome::default();
    let mut edges = crate::lockdep::Edges::new();
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
    // The stack positions of each thread's events in this execution, in order: thread `u`'s
    // event with own clock component `k` is at `positions[u][k - 1]`.
    let mut positions: [Vec<u32>; MAX_THREADS] = std::array::from_fn(|_| Vec::new());
    loop {
        let total = steal.map_or(out.executions, |p| p.executions.load(Ordering::Relaxed));
        if cfg.max_executions.is_some_and(|m| total >= m)
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
        if steal.is_some_and(|p| p.stop.load(Ordering::Relaxed)) {
            complete = false; // another worker's finding ends the search
            break;
        }
        let mut ex: Exec<M> = Exec::new(model, pool, false);
        if cfg.fingerprint {
            ex.track_fingerprint();
        }
        if cfg.coverage {
            ex.track_coverage();
        }
        let mut thread_clock = [[0u32; MAX_THREADS]; MAX_THREADS];
        for p in &mut positions {
            p.clear();
        }
        let mut depth = 0usize;
        let mut sleep_next = 0u32;
        let mut violation: Option<Violation> = ex.violation();
        let mut limit = ex.limit();
        let mut ended_early = false;
        let mut sleep_blocked = false;
        // Another shard's prefix: the execution stops there and is not this shard's.
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
            let t = if depth < stack.len() {
                stack[depth].thread
            } else {
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
                    pending: [None; MAX_THREADS],
                    known: 0,
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
                    given: Vec::new(),
                });
                t
            };
            if depth >= fresh_from {
                // The node's step is analysed: its sleep set's threads' pending events, and
                // (a branch switched to here) the outcomes of the thread's step.
                let n = &mut stack[depth];
                let mut need = (n.sleep | n.done) & !(1 << t) & !n.known;
                n.known |= need;
                while need != 0 {
                    let q = lowest(need);
                    need &= need - 1;
                    n.pending[q] = ex.pending_event(q);
                }
                n.alts = ex.alternatives(t);
            }
            stack[depth].blocking = ex.pending_is_block(t);
            stack[depth].done |= 1 << t;
            let ev = ex.step(crate::exec::decision(t, stack[depth].choice) as usize);
            if depth < fresh_from && stack[depth].ev == ev {
                // Replaying the unchanged prefix: the same event after the same events, so the
                // clock the last execution computed here is this one's, and the next node
                // exists (its sleep set was kept). A replay that differs (it cannot: executions
                // are deterministic) takes the full computation below.
                let c = stack[depth].clock;
                positions[t].push(depth as u32);
                thread_clock[t] = c;
                ex.set_step_clock(t, c, stack[depth].key);
            } else {
                let prev_clock = thread_clock[t];
                let mut c = prev_clock;
                let key = Key::of(&ev);
                // The join of the clocks of the earlier dependent events of other threads.
                // Per thread, only its events not yet in the clock's past can add anything;
                // latest first, the first dependent one puts all its thread's earlier events
                // in the past.
                for (u, pos) in positions.iter().enumerate() {
                    if u == t {
                        continue;
                    }
                    for &i in pos[(c[u] as usize).min(pos.len())..].iter().rev() {
                        let n = &stack[i as usize];
                        if n.clock[u] <= c[u] {
                            break;
                        }
                        if n.key.may_depend(&key) && dependent(&n.ev, &ev) {
                            join(&mut c, &n.clock);
                            break;
                        }
                    }
                }
                positions[t].push(depth as u32);
                c[t] = prev_clock[t] + 1;
                thread_clock[t] = c;
                stack[depth].ev = ev;
                stack[depth].key = key;
                stack[depth].clock = c;
                ex.set_step_clock(t, c, key);
                if depth >= fresh_from {
                    add_backtracks(&mut stack, &positions, depth, &prev_clock);
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
            ex.finish(pool, false);
        } else {
            out.executions += 1;
            out.sleep_blocked += u64::from(sleep_blocked);
            out.steps += depth as u64;
            match steal {
                Some(p) => cfg.note_progress(p.executions.fetch_add(1, Ordering::Relaxed) + 1),
                None => cfg.note_progress(out.executions),
            }
            ex.locks.merge_into(&mut edges, &ex.sched);
            if let Some(limit) = limit {
                // A tool limit: this execution proves nothing, and the search stops here.
                ex.finish(pool, false);
                out.inconclusive = Some(Inconclusive {
                    limit,
                    schedule: crate::Schedule(stack.iter().map(|n| n.thread as u8).collect()),
                });
                complete = false;
                if let Some(p) = steal {
                    p.stop.store(true, Ordering::SeqCst);
                }
                break;
            }
            let (reached, fp) = (ex.reached(), ex.fingerprint());
            if let Some(c) = ex.coverage.take() {
                out.coverage.extend(c);
            }
            if cfg.classes && !ended_early {
                out.classes.insert(ex.class());
            }
            let finish = ex.finish(pool, violation.is_none() && !ended_early);
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
                    if let Some(p) = steal {
                        p.stop.store(true, Ordering::SeqCst);
                    }
                    break;
                }
            }
        }
        if let Some(p) = steal.filter(|p| p.hungry()) {
            give(p, &mut stack, base, &mut pruned, bound);
        }
        // Backtrack to the deepest node with an unexplored, non-sleeping choice.
        let mut found = false;
        while let Some(i) = stack.len().checked_sub(1).filter(|&i| i + 1 >= base) {
            let n = &stack[i];
            if n.choice + 1 < n.alts {
                // The same thread at the same place, its choice's next outcome.
                stack[i].choice += 1;
                fresh_from = i;
                found = true;
                break;
            }
            if i + 1 == base {
                break; // a unit's root: its other branches are its giver's
            }
            let todo = n.backtrack & !n.done & !n.sleep & n.enabled;
            if todo == 0 {
                if let Some(p) = steal {
                    // LOCKING: the node's given branches may still add backtrack points here
                    // and above; it is left only once they are joined.
                    if !stack[i].given.is_empty() {
                        for slot in std::mem::take(&mut stack[i].given) {
                            let sub = join_unit(model, cfg, start, p, pool, &slot);
                            absorb(&mut part, &mut stack, sub);
                        }
                        continue;
                    }
                }
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
            stack[i].alts = 1; // set when the branch runs
            fresh_from = i;
            found = true;
            break;
        }
        if !found {
            break;
        }
    }
    // Stopped early: the given units stop too; their executions still count.
    if let Some(p) = steal {
        for i in (0..stack.len()).rev() {
            for slot in std::mem::take(&mut stack[i].given) {
                let sub = join_unit(model, cfg, start, p, pool, &slot);
                absorb(&mut part, &mut stack, sub);
            }
        }
    }
    part.prefix_backtrack = stack.iter().take(base).map(|n| n.backtrack).collect();
    crate::lockdep::merge(&mut part.edges, &edges);
    part.complete &= complete;
    part.pruned |= pruned;
    let mine = std::mem::take(&mut part.out);
    part.out = out;
    crate::parallel::combine(&mut part.out, mine);
    part
}

/// Hand the untried branch of the shallowest node that has one to an idle worker.
fn give(pool: &Pool, stack: &mut [Node], base: usize, pruned: &mut bool, bound: Option<u32>) {
    for i in base..stack.len() {
        let n = &stack[i];
        let todo = n.backtrack & !n.done & !n.sleep & n.enabled;
        if todo == 0 {
            continue;
        }
        let t = lowest(todo);
        let prev = i.checked_sub(1).map(|d| stack[d].thread);
        let pre =
            i.checked_sub(1).map_or(0, |d| stack[d].preemptions) + preempts(prev, n.enabled, t);
        stack[i].done |= 1 << t;
        if bound.is_some_and(|b| pre > b) {
            *pruned = true;
            continue;
        }
        let mut prefix: Vec<Node> = stack[..=i].to_vec();
        prefix.iter_mut().for_each(|n| n.given.clear());
        let last = &mut prefix[i];
        last.thread = t;
        last.preemptions = pre;
        last.choice = 0;
        last.alts = 1; // set when the unit runs the branch
        let slot = Arc::new(Slot::default());
        stack[i].given.push(slot.clone());
        pool.push(Unit { prefix, slot });
        return;
    }
}

/// Race analysis for the event at `n` (source-DPOR).
///
/// A blocking operation (lock acquire, grace period, IPI, waiting on a refcount) is enabled only
/// by some earlier event (a release, a reader leaving). That enabling event is not a reversible
/// race partner, and it must not hide the events before it: the acquire races with the previous
/// acquire, the grace period with the reader's `rcu_read_lock`. So for a blocking operation no
/// dependent event covers another, and a race with no enabled initial adds nothing (the reversal
/// is reached through the earlier race instead).
///
/// The scan goes latest first over the events of other threads not yet in the covered past, a
/// merge of the threads' position lists: the covered events of a thread are a prefix of its list,
/// so they are skipped without being read.
fn add_backtracks(
    stack: &mut [Node],
    positions: &[Vec<u32>; MAX_THREADS],
    n: usize,
    prev_clock: &Vc,
) {
    let p = stack[n].thread;
    let ev = stack[n].ev;
    let key = stack[n].key;
    let blocking = stack[n].blocking;
    let mut covered = *prev_clock;
    // Earlier events of other threads, latest first, skipping those in `covered`'s past (which
    // grows with each dependent one found): below the first uncovered event of every thread
    // there is nothing left to examine.
    let floor = |covered: &Vc| {
        (0..MAX_THREADS)
            .filter(|&u| u != p)
            .filter_map(|u| positions[u].get(covered[u] as usize))
            .min()
            .map_or(n, |&i| i as usize)
    };
    let mut lo = floor(&covered);
    let mut i = n;
    while i > lo {
        i -= 1;
        let u = stack[i].thread;
        if u == p || stack[i].clock[u] <= covered[u] {
            continue;
        }
        if !stack[i].key.may_depend(&key) || !dependent(&stack[i].ev, &ev) {
            continue;
        }
        let ci = stack[i].clock;
        if !enables(&stack[i].ev, &ev, blocking) {
            race(stack, i, n, blocking);
        }
        if !blocking {
            join(&mut covered, &ci);
            lo = floor(&covered);
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
