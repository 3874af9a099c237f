//! Reachability: evidence that an exploration reached the window a verdict is about.
//!
//! A clean verdict says nothing if the interleaving it is about never happened. A reach pattern
//! names that interleaving, like herd7's `exists` clause or a TLA+ witness: a thread inside a
//! kernel function (holding some locks), two such states at once across threads, or one before
//! the other. The explorer evaluates the patterns on every execution it runs and counts the
//! executions that reach each, keeping the first one's schedule as a replayable witness.
//!
//! Patterns are judged on the execution's happens-before order (the dependency relation of
//! [`crate::deps`], the one DPOR reduces by), not on the one interleaving that ran, so a pattern
//! reached by any execution of a Mazurkiewicz class is reached by the class's representative:
//! DPOR's reduction cannot hide it.
//! - `A`: some step of A's thread is taken in state A.
//! - `A while B`: some interleaving of the execution's class has both threads in their states at
//!   once. With `Ia` a maximal run of A's thread's steps in state A, `pre(Ia)` the thread's step
//!   before it and `last(Ia)` its last (absent while the thread is still in the state), that is
//!   "for some `Ia`, `Ib`: not `last(Ia)` → `pre(Ib)` and not `last(Ib)` → `pre(Ia)`": the
//!   down-closure of the two `pre` steps is then a prefix that holds neither `last` step.
//! - `A before B`: a step in state A happens before a step in state B (a chain of dependent
//!   steps or program order), in every interleaving of the class.
//!
//! A thread is "in state A" at a step when the pending operation runs with every function of A
//! on the thread's kernel call stack and every lock class of A held (locks count from the step
//! after their acquisition up to and including their release; `rcu_read_lock` and IRQs off are
//! the CPU's own state).

use crate::deps::{dependent, Key};
use crate::exec::MAX_THREADS;
use mmcheck_platform::{Event, Machine};

/// A state of one thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Atom {
    pub thread: usize,
    /// Kernel functions that must all be on the thread's call stack.
    pub funcs: Vec<&'static str>,
    /// Lock classes (as [`Machine::lock_class`] names them, or [`RCU`] / [`IRQS_OFF`]) that must
    /// all be held.
    pub holds: Vec<&'static str>,
}

/// The pseudo-class of an RCU read-side critical section.
pub const RCU: &str = "rcu_read_lock";
/// The pseudo-class of an IRQ-off region.
pub const IRQS_OFF: &str = "irqs_off";

/// No patterns (the default of [`crate::Model::reach`]).
pub static NONE: Spec = Spec {
    atoms: Vec::new(),
    patterns: Vec::new(),
};

/// A pattern over atoms (indices into [`Spec::atoms`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    Once(usize),
    While(usize, usize),
    Before(usize, usize),
}

/// What the model asks the explorer to look for.
#[derive(Clone, Debug, Default)]
pub struct Spec {
    pub atoms: Vec<Atom>,
    pub patterns: Vec<Pattern>,
}

impl Spec {
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The atoms thread `t` is in now, as a bit mask (`held`: the lock ids it holds).
    pub fn mask(&self, m: &Machine, t: usize, held: &[u64]) -> u64 {
        let cpu = m.cpu(t);
        let mut mask = 0;
        let mut stack: Option<Vec<&'static str>> = None;
        for (i, a) in self.atoms.iter().enumerate() {
            if a.thread != t {
                continue;
            }
            let funcs_ok = a.funcs.is_empty() || {
                let stack = stack.get_or_insert_with(|| cpu.stack());
                a.funcs.iter().all(|f| stack.contains(f))
            };
            let holds_ok = a.holds.iter().all(|&c| match c {
                RCU => cpu.in_rcu_reader(),
                IRQS_OFF => cpu.irqs_disabled(),
                c => held.iter().any(|&l| m.lock_class(l) == c),
            });
            if funcs_ok && holds_ok {
                mask |= 1 << i;
            }
        }
        mask
    }
}

type Vc = [u32; MAX_THREADS];

/// One executed step, as reach evaluation needs it.
struct RStep {
    thread: usize,
    ev: Event,
    /// Its happens-before clock: given by DPOR, which computes it anyway, or computed when the
    /// patterns are judged (only if some pattern needs it).
    clock: Option<Vc>,
    mask: u64,
}

/// The steps of one execution, with their happens-before clocks.
#[derive(Default)]
pub struct Tracker {
    steps: Vec<RStep>,
    /// Union of the steps' masks: a pattern whose atoms never occur needs no clocks.
    seen: u64,
}

impl Tracker {
    /// Record a step of thread `t` with event `ev`, taken in atom state `mask`.
    pub fn step(&mut self, t: usize, ev: Event, mask: u64) {
        self.seen |= mask;
        self.steps.push(RStep {
            thread: t,
            ev,
            clock: None,
            mask,
        });
    }

    /// The clock of the last step, as DPOR computed it over the same dependency relation.
    pub fn set_clock(&mut self, clock: Vc) {
        if let Some(s) = self.steps.last_mut() {
            s.clock = Some(clock);
        }
    }

    /// Fill in the clocks DPOR did not give (the dependency scan of [`crate::dpor`]).
    fn clocks(&mut self) {
        if self.steps.iter().all(|s| s.clock.is_some()) {
            return;
        }
        let keys: Vec<Key> = self.steps.iter().map(|s| Key::of(&s.ev)).collect();
        let mut thread_clock = [[0u32; MAX_THREADS]; MAX_THREADS];
        for n in 0..self.steps.len() {
            let (done, rest) = self.steps.split_at_mut(n);
            let s = &mut rest[0];
            let t = s.thread;
            let mut c = thread_clock[t];
            for (d, dk) in done.iter().zip(&keys) {
                if d.thread != t && dk.may_depend(&keys[n]) && dependent(&d.ev, &s.ev) {
                    let dc = d.clock.expect("computed in order");
                    for (x, y) in c.iter_mut().zip(dc.iter()) {
                        *x = (*x).max(*y);
                    }
                }
            }
            c[t] = thread_clock[t][t] + 1;
            thread_clock[t] = c;
            s.clock = Some(c);
        }
    }

    /// Does step `i` happen before step `j`? (Clocks filled in.)
    fn hb(&self, i: usize, j: usize) -> bool {
        let (a, b) = (&self.steps[i], &self.steps[j]);
        let (ca, cb) = (a.clock.unwrap_or_default(), b.clock.unwrap_or_default());
        i != j && cb[a.thread] >= ca[a.thread]
    }

    /// The maximal runs of thread `t`'s steps in atom `x`: `(pre, last)` step indices, `last`
    /// `None` when the run continues into the pending operation (`pending`: the thread's pending
    /// atom mask, 0 if it finished).
    fn runs(&self, x: usize, t: usize, pending: u64) -> Vec<(Option<usize>, Option<usize>)> {
        let bit = 1u64 << x;
        let mut out = Vec::new();
        let mut prev: Option<usize> = None;
        let mut open: Option<Option<usize>> = None; // the run's `pre`
        let mut last = None;
        for (i, s) in self.steps.iter().enumerate().filter(|(_, s)| s.thread == t) {
            if s.mask & bit != 0 {
                if open.is_none() {
                    open = Some(prev);
                }
                last = Some(i);
            } else if let Some(pre) = open.take() {
                out.push((pre, last));
            }
            prev = Some(i);
        }
        match open {
            Some(pre) if pending & bit != 0 => out.push((pre, None)),
            Some(pre) => out.push((pre, last)),
            None if pending & bit != 0 => out.push((prev, None)),
            None => {}
        }
        out
    }

    /// The patterns of `spec` this execution reaches, as a bit mask. `pending[t]`: thread `t`'s
    /// atom mask at its pending operation (0 if finished).
    pub fn reached(&mut self, spec: &Spec, pending: &[u64]) -> u64 {
        let pend = |t: usize| pending.get(t).copied().unwrap_or(0);
        let all = self.seen | pending.iter().fold(0, |m, p| m | p);
        let needs_clocks = spec.patterns.iter().any(|p| match *p {
            Pattern::Once(_) => false,
            Pattern::While(x, y) | Pattern::Before(x, y) => {
                all & (1 << x) != 0 && all & (1 << y) != 0
            }
        });
        if needs_clocks {
            self.clocks();
        }
        let mut hit = 0u64;
        for (p, pat) in spec.patterns.iter().enumerate() {
            let ok = match *pat {
                Pattern::Once(x) => {
                    let t = spec.atoms[x].thread;
                    !self.runs(x, t, pend(t)).is_empty()
                }
                Pattern::While(x, y) => {
                    let (tx, ty) = (spec.atoms[x].thread, spec.atoms[y].thread);
                    if tx == ty {
                        let both = (1u64 << x) | (1 << y);
                        self.steps
                            .iter()
                            .any(|s| s.thread == tx && s.mask & both == both)
                            || pend(tx) & both == both
                    } else {
                        let rx = self.runs(x, tx, pend(tx));
                        let ry = self.runs(y, ty, pend(ty));
                        let hb = |a: Option<usize>, b: Option<usize>| match (a, b) {
                            (Some(a), Some(b)) => self.hb(a, b),
                            _ => false,
                        };
                        rx.iter()
                            .any(|&(px, lx)| ry.iter().any(|&(py, ly)| !hb(lx, py) && !hb(ly, px)))
                    }
                }
                Pattern::Before(x, y) => {
                    let (bx, by) = (1u64 << x, 1u64 << y);
                    self.steps.iter().enumerate().any(|(i, a)| {
                        a.mask & bx != 0
                            && self
                                .steps
                                .iter()
                                .enumerate()
                                .skip(i + 1)
                                .any(|(j, b)| b.mask & by != 0 && self.hb(i, j))
                    })
                }
            };
            if ok {
                hit |= 1 << p;
            }
        }
        hit
    }
}

/// What an exploration found for one pattern.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hit {
    /// Executions that reached it.
    pub executions: u64,
    /// The first execution that did (its decisions: a replay token).
    pub first: Option<crate::Schedule>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmcheck_platform::{Access, Obj};

    fn ev(o: u64, a: Access) -> Event {
        Event::new(Obj::Var(o), a)
    }

    fn spec(p: Pattern) -> Spec {
        let atom = |t| Atom {
            thread: t,
            funcs: vec![],
            holds: vec![],
        };
        Spec {
            atoms: vec![atom(0), atom(1)],
            patterns: vec![p],
        }
    }

    #[test]
    fn while_needs_overlap_in_some_equivalent_interleaving() {
        // T0: [in A: w x], leaves; T1: [in B: r y]. Independent: some interleaving overlaps.
        let mut tr = Tracker::default();
        tr.step(0, ev(1, Access::Write), 1);
        tr.step(0, ev(9, Access::Write), 0);
        tr.step(1, ev(2, Access::Read), 2);
        assert_eq!(tr.reached(&spec(Pattern::While(0, 1)), &[0, 0]), 1);
        // T1 enters B only after reading what T0 wrote after leaving A: never both.
        let mut tr = Tracker::default();
        tr.step(0, ev(1, Access::Write), 1);
        tr.step(0, ev(9, Access::Write), 0);
        tr.step(1, ev(9, Access::Read), 0);
        tr.step(1, ev(7, Access::Read), 2);
        assert_eq!(tr.reached(&spec(Pattern::While(0, 1)), &[0, 0]), 0);
        // ... unless T1 was in B from the start.
        let mut tr = Tracker::default();
        tr.step(0, ev(1, Access::Write), 1);
        tr.step(0, ev(9, Access::Write), 0);
        tr.step(1, ev(9, Access::Read), 2);
        tr.step(1, ev(7, Access::Read), 2);
        assert_eq!(tr.reached(&spec(Pattern::While(0, 1)), &[0, 0]), 1);
    }

    #[test]
    fn while_counts_the_pending_state() {
        // T1 enters B after reading T0's write made in A; T0 is still in A (pending) or not.
        let mut tr = Tracker::default();
        tr.step(0, ev(1, Access::Write), 1);
        tr.step(1, ev(1, Access::Read), 0);
        tr.step(1, ev(5, Access::Read), 2);
        assert_eq!(tr.reached(&spec(Pattern::While(0, 1)), &[1, 0]), 1);
        assert_eq!(tr.reached(&spec(Pattern::While(0, 1)), &[0, 0]), 0);
    }

    #[test]
    fn before_is_happens_before() {
        let mut tr = Tracker::default();
        tr.step(0, ev(1, Access::Write), 1);
        tr.step(1, ev(2, Access::Read), 2);
        assert_eq!(tr.reached(&spec(Pattern::Before(0, 1)), &[0, 0]), 0);
        let mut tr = Tracker::default();
        tr.step(0, ev(1, Access::Write), 1);
        tr.step(1, ev(1, Access::Read), 2);
        assert_eq!(tr.reached(&spec(Pattern::Before(0, 1)), &[0, 0]), 1);
        assert_eq!(tr.reached(&spec(Pattern::Before(1, 0)), &[0, 0]), 0);
    }
}
