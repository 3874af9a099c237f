//! The checker against an independent sequentially consistent interpreter, on generated tests:
//! every SC outcome is allowed by the LKMM (so the checker never calls an SC-reachable state
//! `Never`), and with `smp_mb()` between every two accesses of a process the LKMM allows
//! exactly the SC outcomes.

use mmcheck_litmus::{check_source, LitmusError};
use std::collections::BTreeSet;

/// A deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const LOCS: [&str; 2] = ["x", "y"];

#[derive(Clone, Debug)]
enum Op {
    /// `WRITE_ONCE` or `smp_store_release` of a constant, or of a register plus one (data
    /// dependency).
    Write {
        loc: usize,
        val: i64,
        from: Option<usize>,
        release: bool,
    },
    /// `READ_ONCE` or `smp_load_acquire` into register `reg`.
    Read {
        loc: usize,
        reg: usize,
        acquire: bool,
    },
    /// `xchg` (fully ordered) into register `reg`.
    Xchg {
        loc: usize,
        val: i64,
        reg: usize,
    },
    /// `atomic_inc` (unordered).
    Inc {
        loc: usize,
    },
    Lock,
    Unlock,
    RcuLock,
    RcuUnlock,
    Sync,
}

fn gen_thread(rng: &mut Rng, t: usize, next_val: &mut i64, rich: bool) -> Vec<Op> {
    let n = 1 + rng.below(3) as usize;
    let mut ops = Vec::new();
    let mut regs = 0usize;
    let locked = rich && rng.below(4) == 0;
    let rcu = rich && !locked && rng.below(4) == 0;
    if locked {
        ops.push(Op::Lock);
    }
    if rcu {
        ops.push(Op::RcuLock);
    }
    for _ in 0..n {
        let loc = rng.below(2) as usize;
        let kind = if rich { rng.below(6) } else { rng.below(2) };
        let op = match kind {
            0 | 4 => {
                *next_val += 1;
                let from = if rich && regs > 0 && rng.below(3) == 0 {
                    Some(rng.below(regs as u64) as usize)
                } else {
                    None
                };
                Op::Write {
                    loc,
                    val: *next_val,
                    from,
                    release: rich && kind == 4,
                }
            }
            1 | 5 => {
                regs += 1;
                Op::Read {
                    loc,
                    reg: regs - 1,
                    acquire: rich && kind == 5,
                }
            }
            2 => {
                *next_val += 1;
                regs += 1;
                Op::Xchg {
                    loc,
                    val: *next_val,
                    reg: regs - 1,
                }
            }
            _ => Op::Inc { loc },
        };
        ops.push(op);
    }
    if rcu {
        ops.push(Op::RcuUnlock);
    }
    if locked {
        ops.push(Op::Unlock);
    }
    if rich && !rcu && rng.below(4) == 0 {
        let k = rng.below(ops.len() as u64 + 1) as usize;
        ops.insert(k, Op::Sync);
    }
    let _ = t;
    ops
}

fn reg_count(ops: &[Op]) -> usize {
    ops.iter()
        .filter(|o| matches!(o, Op::Read { .. } | Op::Xchg { .. }))
        .count()
}

fn text(name: &str, threads: &[Vec<Op>], mb: bool) -> String {
    let mut s = format!("C {name}\n\n{{}}\n\n");
    for (t, ops) in threads.iter().enumerate() {
        s.push_str(&format!("P{t}(int *x, int *y, spinlock_t *lk)\n{{\n"));
        for r in 0..reg_count(ops) {
            s.push_str(&format!("\tint r{r};\n"));
        }
        let mut first = true;
        for o in ops {
            let access = !matches!(
                o,
                Op::Lock | Op::Unlock | Op::RcuLock | Op::RcuUnlock | Op::Sync
            );
            if mb && access && !first {
                s.push_str("\tsmp_mb();\n");
            }
            if access {
                first = false;
            }
            let line = match o {
                Op::Write {
                    loc,
                    val,
                    from,
                    release,
                } => {
                    let v = match from {
                        Some(r) => format!("r{r} + {val}"),
                        None => val.to_string(),
                    };
                    if *release {
                        format!("smp_store_release({}, {v});", LOCS[*loc])
                    } else {
                        format!("WRITE_ONCE(*{}, {v});", LOCS[*loc])
                    }
                }
                Op::Read { loc, reg, acquire } => {
                    if *acquire {
                        format!("r{reg} = smp_load_acquire({});", LOCS[*loc])
                    } else {
                        format!("r{reg} = READ_ONCE(*{});", LOCS[*loc])
                    }
                }
                Op::Xchg { loc, val, reg } => format!("r{reg} = xchg({}, {val});", LOCS[*loc]),
                Op::Inc { loc } => format!("atomic_inc({});", LOCS[*loc]),
                Op::Lock => "spin_lock(lk);".into(),
                Op::Unlock => "spin_unlock(lk);".into(),
                Op::RcuLock => "rcu_read_lock();".into(),
                Op::RcuUnlock => "rcu_read_unlock();".into(),
                Op::Sync => "synchronize_rcu();".into(),
            };
            s.push_str(&format!("\t{line}\n"));
        }
        s.push_str("}\n\n");
    }
    s.push_str(&format!("locations [{}]\n", shown(threads).join("; ")));
    s.push_str("exists (true)\n");
    s
}

/// The registers and locations shown, in the checker's order (the `locations` line's).
fn shown(threads: &[Vec<Op>]) -> Vec<String> {
    let mut v = Vec::new();
    for (t, ops) in threads.iter().enumerate() {
        for r in 0..reg_count(ops) {
            v.push(format!("{t}:r{r}"));
        }
    }
    v.push("x".into());
    v.push("y".into());
    v
}

/// Every final state of every SC interleaving (with locks held exclusively and no grace period
/// overlapping a read-side critical section), printed as the checker prints states.
fn sc_states(threads: &[Vec<Op>]) -> BTreeSet<String> {
    #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
    struct St {
        pc: Vec<usize>,
        regs: Vec<Vec<i64>>,
        mem: [i64; 2],
        lock: Option<usize>,
        in_rcu: Vec<bool>,
    }
    fn go(th: &[Vec<Op>], st: &mut St, seen: &mut BTreeSet<St>, out: &mut BTreeSet<String>) {
        // Interleavings meet in the same state: explore each state once.
        if !seen.insert(st.clone()) {
            return;
        }
        let mut any = false;
        for t in 0..th.len() {
            let Some(op) = th[t].get(st.pc[t]) else {
                continue;
            };
            let enabled = match op {
                Op::Lock => st.lock.is_none(),
                Op::Sync => !st.in_rcu.iter().enumerate().any(|(u, &b)| b && u != t),
                _ => true,
            };
            if !enabled {
                continue;
            }
            any = true;
            let (mem0, lock0, rcu0) = (st.mem, st.lock, st.in_rcu[t]);
            let mut saved_reg = None;
            match op {
                Op::Write { loc, val, from, .. } => {
                    st.mem[*loc] = from.map_or(0, |r| st.regs[t][r]) + val;
                }
                Op::Read { loc, reg, .. } => {
                    saved_reg = Some((*reg, st.regs[t][*reg]));
                    st.regs[t][*reg] = st.mem[*loc];
                }
                Op::Xchg { loc, val, reg } => {
                    saved_reg = Some((*reg, st.regs[t][*reg]));
                    st.regs[t][*reg] = st.mem[*loc];
                    st.mem[*loc] = *val;
                }
                Op::Inc { loc } => st.mem[*loc] += 1,
                Op::Lock => st.lock = Some(t),
                Op::Unlock => st.lock = None,
                Op::RcuLock => st.in_rcu[t] = true,
                Op::RcuUnlock => st.in_rcu[t] = false,
                Op::Sync => {}
            }
            st.pc[t] += 1;
            go(th, st, seen, out);
            st.pc[t] -= 1;
            st.mem = mem0;
            st.lock = lock0;
            st.in_rcu[t] = rcu0;
            if let Some((r, v)) = saved_reg {
                st.regs[t][r] = v;
            }
        }
        if !any && st.pc.iter().zip(th).all(|(&p, ops)| p == ops.len()) {
            let mut s = String::new();
            for (t, regs) in st.regs.iter().enumerate() {
                for (r, v) in regs.iter().enumerate() {
                    s.push_str(&format!("{t}:r{r}={v}; "));
                }
            }
            s.push_str(&format!("x={}; y={};", st.mem[0], st.mem[1]));
            out.insert(s);
        }
    }
    let mut st = St {
        pc: vec![0; threads.len()],
        regs: threads.iter().map(|o| vec![0; reg_count(o)]).collect(),
        mem: [0, 0],
        lock: None,
        in_rcu: vec![false; threads.len()],
    };
    let mut out = BTreeSet::new();
    go(threads, &mut st, &mut BTreeSet::new(), &mut out);
    out
}

/// The checker's states, or `None` when the test is beyond its limits (inconclusive).
fn lkmm_states(src: &str) -> Option<BTreeSet<String>> {
    let o = match check_source("gen.litmus", src) {
        Ok(o) => o,
        Err(LitmusError::Limit(_)) => return None,
        Err(e) => panic!("{e}\n{src}"),
    };
    if std::env::var_os("SC_SLOW").is_some() {
        eprintln!(
            "slow: {:.2}s {} candidates\n{src}",
            o.elapsed.as_secs_f64(),
            o.candidates
        );
    }
    Some(o.states.into_iter().map(|(s, _)| s).collect())
}

fn generate(rng: &mut Rng, rich: bool) -> Vec<Vec<Op>> {
    let nthreads = 2 + rng.below(2) as usize;
    let mut next_val = 0;
    (0..nthreads)
        .map(|t| gen_thread(rng, t, &mut next_val, rich))
        .collect()
}

#[test]
fn every_sc_outcome_is_allowed() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut inconclusive = 0;
    for k in 0..200 {
        let threads = generate(&mut rng, true);
        let src = text(&format!("gen{k}"), &threads, false);
        let sc = sc_states(&threads);
        let Some(lkmm) = lkmm_states(&src) else {
            inconclusive += 1;
            continue;
        };
        let missing: Vec<_> = sc.difference(&lkmm).collect();
        assert!(
            missing.is_empty(),
            "SC outcomes the checker forbids: {missing:?}\n{src}"
        );
    }
    // Chains of data dependencies can make a test's value domain too large (a tool limit).
    assert!(inconclusive <= 5, "{inconclusive} of 200 inconclusive");
}

#[test]
fn full_barriers_everywhere_give_exactly_sc() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for k in 0..300 {
        let threads = generate(&mut rng, false);
        let src = text(&format!("gen{k}"), &threads, true);
        let sc = sc_states(&threads);
        let lkmm = lkmm_states(&src).expect("conclusive");
        assert_eq!(sc, lkmm, "\n{src}");
    }
}
