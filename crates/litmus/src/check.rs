//! The checker: every candidate execution of a test, the ones the LKMM allows, and the final
//! clause over their final states.
//!
//! Enumeration: (1) the value domain of every location, a fixpoint over the processes' runs
//! (a value flows to a write through at most as many writes as an execution has, so that many
//! rounds reach every value an allowed execution can see); (2) every run of every process with
//! its reads taking domain values; (3) for each combination of runs, every reads-from choice
//! (a write of the same location and value, not po-later in the reader) and every coherence
//! order per location that keeps each process's writes in program order; (4) the axioms of
//! [`crate::lkmm`] on each candidate. Spinlocks need no extra structure: a lock-read reads 0,
//! its lock-write writes 1 right after it in `co` (atomicity), an unlock writes 0, which gives
//! exactly lock.cat's critical-section orders.

use crate::ast::*;
use crate::cond::{declares, eval_prop, prop_targets, show_state, validate};
use crate::error::{LitmusError, ParseError};
use crate::exec::{self, Lk, Locs, Op, Trace, Val};
use crate::lkmm::{GEv, Skeleton, Verdict};
use crate::prim::Fence;
use crate::rel::{Rel, MAX_EVENTS};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Limits that make a test inconclusive rather than slow.
const MAX_DOMAIN: usize = 64;
const MAX_RUNS: usize = 100_000;
const MAX_CANDIDATES: u64 = 20_000_000;
const MAX_COMBINATIONS: u64 = 20_000_000;

/// The result of one test, in herd7's terms.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub name: String,
    pub quant: Quant,
    pub cond_text: String,
    /// The final states of the allowed executions (over the shown locations), each once, in
    /// order, with whether the condition's body holds there.
    pub states: Vec<(String, bool)>,
    /// Allowed executions where the condition's body holds / does not hold.
    pub positive: u64,
    pub negative: u64,
    /// Candidate executions checked against the axioms.
    pub candidates: u64,
    /// How many candidates each axiom rejected (coherence, atomic, hb, pb, rcu).
    pub rejected: [u64; 5],
    pub expected: Option<Observation>,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn observation(&self) -> Observation {
        if self.positive == 0 {
            Observation::Never
        } else if self.negative == 0 {
            Observation::Always
        } else {
            Observation::Sometimes
        }
    }

    /// herd7's `Ok`: the condition is validated.
    pub fn ok(&self) -> bool {
        match self.quant {
            Quant::Exists => self.positive > 0,
            Quant::NotExists => self.positive == 0,
            Quant::Forall => self.negative == 0,
        }
    }

    /// Whether the verdict agrees with `expected` (`Deadlock`: no allowed execution at all).
    pub fn agrees_with(&self, expected: Observation) -> bool {
        match expected {
            Observation::Deadlock => self.positive + self.negative == 0,
            e => e == self.observation(),
        }
    }

    /// Whether the verdict agrees with the `Result:` line (true without one).
    pub fn agrees(&self) -> bool {
        self.expected.is_none_or(|e| self.agrees_with(e))
    }
}

/// Parse and check the litmus test `text` (from `file`).
pub fn check_source(file: &str, text: &str) -> Result<Outcome, LitmusError> {
    let test = crate::parse::parse(file, text)?;
    check_test(file, text, &test)
}

fn domains(file: &str, text: &str, test: &Test, locs: &Locs) -> Result<Vec<Vec<Val>>, LitmusError> {
    let n = locs.names.len();
    let mut dom: Vec<BTreeSet<Val>> = (0..n).map(|l| BTreeSet::from([locs.init[l]])).collect();
    for (d, &lock) in dom.iter_mut().zip(&locs.lock) {
        if lock {
            *d = BTreeSet::from([Val::Int(0), Val::Int(1)]);
        }
    }
    let mut round = 0usize;
    loop {
        let cur: Vec<Vec<Val>> = dom.iter().map(|s| s.iter().copied().collect()).collect();
        let mut next = dom.clone();
        let mut max_writes = 0usize;
        for t in 0..test.threads.len() {
            let runs = exec::runs(file, text, test, locs, t, &cur, MAX_RUNS)?
                .map_err(LitmusError::Limit)?;
            let mut most = 0;
            for r in &runs {
                let mut k = 0;
                for e in &r.events {
                    if e.op == Op::Write {
                        next[e.loc].insert(e.val);
                        k += 1;
                    }
                }
                most = most.max(k);
            }
            max_writes += most;
        }
        round += 1;
        if let Some(l) = (0..n).find(|&l| next[l].len() > MAX_DOMAIN) {
            return Err(LitmusError::Limit(format!(
                "location '{}' may hold more than {MAX_DOMAIN} values",
                locs.names[l]
            )));
        }
        let stable = next == dom;
        dom = next;
        if stable || round > max_writes + 1 {
            break;
        }
    }
    Ok(dom.into_iter().map(|s| s.into_iter().collect()).collect())
}

/// Most coherence orders of one location kept at once.
const MAX_ORDERS: usize = 100_000;

/// Every permutation of `items` that keeps `before(a, b)` pairs in order; `None` past
/// [`MAX_ORDERS`].
fn orders(items: &[usize], before: &dyn Fn(usize, usize) -> bool) -> Option<Vec<Vec<usize>>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut used = vec![false; items.len()];
    fn go(
        items: &[usize],
        before: &dyn Fn(usize, usize) -> bool,
        cur: &mut Vec<usize>,
        used: &mut [bool],
        out: &mut Vec<Vec<usize>>,
    ) {
        if cur.len() == items.len() {
            out.push(cur.clone());
            return;
        }
        for k in 0..items.len() {
            if out.len() > MAX_ORDERS {
                return;
            }
            if used[k] {
                continue;
            }
            // Every item that must precede this one is placed already.
            let ready = (0..items.len()).all(|j| used[j] || j == k || !before(items[j], items[k]));
            if !ready {
                continue;
            }
            used[k] = true;
            cur.push(items[k]);
            go(items, before, cur, used, out);
            cur.pop();
            used[k] = false;
        }
    }
    go(items, before, &mut cur, &mut used, &mut out);
    (out.len() <= MAX_ORDERS).then_some(out)
}

struct Built {
    sk: Skeleton,
    /// Per read: its candidate writes.
    reads: Vec<(usize, Vec<usize>)>,
    /// Per location: its initial write and its coherence orders of the other writes.
    cos: Vec<(usize, Vec<Vec<usize>>)>,
}

fn build(locs: &Locs, runs: &[&Trace]) -> Result<Option<Built>, LitmusError> {
    let nl = locs.names.len();
    let mut ev: Vec<GEv> = Vec::new();
    for l in 0..nl {
        ev.push(GEv {
            thread: None,
            op: Op::Write,
            loc: l,
            val: locs.init[l],
            acquire: false,
            release: false,
            noreturn: false,
            rmw: false,
            lk: Lk::None,
        });
    }
    let mut base = Vec::new();
    for (t, r) in runs.iter().enumerate() {
        base.push(ev.len());
        for e in &r.events {
            ev.push(GEv {
                thread: Some(t),
                op: e.op,
                loc: e.loc,
                val: e.val,
                acquire: e.acquire,
                release: e.release,
                noreturn: e.noreturn,
                rmw: e.rmw,
                lk: e.lk,
            });
        }
    }
    let n = ev.len();
    if n > MAX_EVENTS {
        return Err(LitmusError::Limit(format!(
            "an execution has {n} events, more than {MAX_EVENTS}"
        )));
    }
    let mut po = Rel::empty(n);
    let mut int = Rel::empty(n);
    let mut loc = Rel::empty(n);
    let mut rmw = Rel::empty(n);
    let mut addr = Rel::empty(n);
    let mut data = Rel::empty(n);
    let mut ctrl = Rel::empty(n);
    let mut rscs = Rel::empty(n);
    for i in 0..n {
        for j in 0..n {
            if ev[i].thread == ev[j].thread {
                int.add(i, j);
                if ev[i].thread.is_some() && i < j {
                    po.add(i, j);
                }
            }
            let mem = |e: &GEv| !matches!(e.op, Op::Fence(_));
            if mem(&ev[i]) && mem(&ev[j]) && ev[i].loc == ev[j].loc {
                loc.add(i, j);
            }
        }
    }
    for (t, r) in runs.iter().enumerate() {
        let b = base[t];
        let mut stack = Vec::new();
        for (k, e) in r.events.iter().enumerate() {
            if let Some(p) = e.pair {
                rmw.add(b + p, b + k);
            }
            for (set, rel) in [
                (e.addr, &mut addr),
                (e.data, &mut data),
                (e.ctrl, &mut ctrl),
            ] {
                for s in crate::rel::members(set) {
                    rel.add(b + s, b + k);
                }
            }
            match e.op {
                Op::Fence(Fence::RcuLock) => stack.push(b + k),
                Op::Fence(Fence::RcuUnlock) => {
                    if let Some(l) = stack.pop() {
                        rscs.add(l, b + k);
                    }
                }
                _ => {}
            }
        }
    }
    // Reads-from candidates.
    let mut reads = Vec::new();
    for i in 0..n {
        if ev[i].op != Op::Read {
            continue;
        }
        let c: Vec<usize> = (0..n)
            .filter(|&j| {
                ev[j].op == Op::Write
                    && ev[j].loc == ev[i].loc
                    && ev[j].val == ev[i].val
                    && !po.has(i, j)
                    && match ev[i].lk {
                        // A lock-fail reads a lock-write.
                        Lk::Lf => ev[j].lk == Lk::Lkw,
                        _ => true,
                    }
            })
            .collect();
        if c.is_empty() {
            return Ok(None);
        }
        reads.push((i, c));
    }
    // Coherence orders.
    let mut cos = Vec::new();
    for l in 0..nl {
        let ws: Vec<usize> = (nl..n)
            .filter(|&j| ev[j].op == Op::Write && ev[j].loc == l)
            .collect();
        let po_ref = &po;
        let before = move |a: usize, b: usize| po_ref.has(a, b);
        let Some(o) = orders(&ws, &before) else {
            return Err(LitmusError::Limit(format!(
                "location '{}' has more than {MAX_ORDERS} coherence orders",
                locs.names[l]
            )));
        };
        cos.push((l, o));
    }
    Ok(Some(Built {
        sk: Skeleton {
            ev,
            po,
            int,
            loc,
            rmw,
            addr,
            data,
            ctrl,
            rscs,
        },
        reads,
        cos,
    }))
}

/// A quick necessary condition before building an execution: every value a read returns is
/// some location's initial value or written by one of the runs.
fn values_available(locs: &Locs, runs: &[&Trace]) -> bool {
    let written = |loc: usize, val: Val| {
        locs.init[loc] == val
            || runs.iter().any(|r| {
                r.events
                    .iter()
                    .any(|e| e.op == Op::Write && e.loc == loc && e.val == val)
            })
    };
    runs.iter().all(|r| {
        r.events
            .iter()
            .all(|e| e.op != Op::Read || written(e.loc, e.val))
    })
}

/// Advance an odometer of digits with `sizes`; false when it wraps.
fn bump(digits: &mut [usize], sizes: &[usize]) -> bool {
    for k in 0..digits.len() {
        digits[k] += 1;
        if digits[k] < sizes[k] {
            return true;
        }
        digits[k] = 0;
    }
    false
}

/// Check a parsed test.
pub fn check_test(file: &str, text: &str, test: &Test) -> Result<Outcome, LitmusError> {
    let started = Instant::now();
    let locs = exec::locations(file, text, test)?;
    let shown = validate(file, text, test, &locs)?;
    let dom = domains(file, text, test, &locs)?;
    let mut all_runs = Vec::new();
    for t in 0..test.threads.len() {
        let runs =
            exec::runs(file, text, test, &locs, t, &dom, MAX_RUNS)?.map_err(LitmusError::Limit)?;
        all_runs.push(runs);
    }
    // A register the condition names must exist in its process (in some run).
    let mut named = Vec::new();
    prop_targets(&test.cond.prop, &mut named);
    for (t, span) in &named {
        if let Target::Reg(p, r) = t {
            let known = test.threads[*p].body.iter().any(|s| declares(s, r))
                || test.init.iter().any(|i| i.target == *t);
            if !known {
                return Err(ParseError::new(
                    file,
                    text,
                    span.clone(),
                    format!("P{p} has no register '{r}'"),
                )
                .into());
            }
        }
    }
    let mut states: BTreeMap<String, bool> = BTreeMap::new();
    let (mut positive, mut negative, mut candidates) = (0u64, 0u64, 0u64);
    let mut rejected = [0u64; 5];
    let sizes: Vec<usize> = all_runs.iter().map(Vec::len).collect();
    if sizes.contains(&0) {
        return Err(LitmusError::Limit("a process has no run".into()));
    }
    let mut pick = vec![0usize; sizes.len()];
    let mut combos = 0u64;
    loop {
        combos += 1;
        if combos > MAX_COMBINATIONS {
            return Err(LitmusError::Limit(format!(
                "more than {MAX_COMBINATIONS} combinations of the processes' runs"
            )));
        }
        let runs: Vec<&Trace> = pick
            .iter()
            .enumerate()
            .map(|(t, &k)| &all_runs[t][k])
            .collect();
        if !values_available(&locs, &runs) {
            if !bump(&mut pick, &sizes) {
                break;
            }
            continue;
        }
        if let Some(b) = build(&locs, &runs)? {
            let n = b.sk.ev.len();
            let rf_sizes: Vec<usize> = b.reads.iter().map(|(_, c)| c.len()).collect();
            let co_sizes: Vec<usize> = b.cos.iter().map(|(_, o)| o.len()).collect();
            let regs: Vec<Vec<(String, Val)>> = runs.iter().map(|r| r.regs.clone()).collect();
            let mut rfd = vec![0usize; rf_sizes.len()];
            loop {
                let mut rf = Rel::empty(n);
                for (k, (r, c)) in b.reads.iter().enumerate() {
                    rf.add(c[rfd[k]], *r);
                }
                let mut cod = vec![0usize; co_sizes.len()];
                loop {
                    candidates += 1;
                    if candidates > MAX_CANDIDATES {
                        return Err(LitmusError::Limit(format!(
                            "more than {MAX_CANDIDATES} candidate executions"
                        )));
                    }
                    let mut co = Rel::empty(n);
                    let mut fin = locs.init.clone();
                    for (k, (l, ords)) in b.cos.iter().enumerate() {
                        let order = &ords[cod[k]];
                        let mut chain = vec![*l];
                        chain.extend(order.iter().copied());
                        for a in 0..chain.len() {
                            for c in a + 1..chain.len() {
                                co.add(chain[a], chain[c]);
                            }
                        }
                        if let Some(&last) = order.last() {
                            fin[*l] = b.sk.ev[last].val;
                        }
                    }
                    match b.sk.check(&rf, &co) {
                        Verdict::Allowed => {
                            let keep = test
                                .filter
                                .as_ref()
                                .is_none_or(|f| eval_prop(f, &locs, &regs, &fin));
                            if keep {
                                let holds = eval_prop(&test.cond.prop, &locs, &regs, &fin);
                                if holds {
                                    positive += 1;
                                } else {
                                    negative += 1;
                                }
                                states.insert(show_state(&locs, &shown, &regs, &fin), holds);
                            }
                        }
                        Verdict::Coherence => rejected[0] += 1,
                        Verdict::Atomic => rejected[1] += 1,
                        Verdict::HappensBefore => rejected[2] += 1,
                        Verdict::Propagation => rejected[3] += 1,
                        Verdict::Rcu => rejected[4] += 1,
                    }
                    if !bump(&mut cod, &co_sizes) {
                        break;
                    }
                }
                if !bump(&mut rfd, &rf_sizes) {
                    break;
                }
            }
        }
        if !bump(&mut pick, &sizes) {
            break;
        }
    }
    Ok(Outcome {
        name: test.name.clone(),
        quant: test.cond.quant,
        cond_text: test.cond.text.clone(),
        states: states.into_iter().collect(),
        positive,
        negative,
        candidates,
        rejected,
        expected: test.expected,
        elapsed: started.elapsed(),
    })
}
