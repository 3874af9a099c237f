//! One process's runs: the events a body performs and its final registers, for each choice of
//! the values its reads return. A read's value is a guess from the location's value domain
//! (every value some write can store); the checker later pairs each read with a write of that
//! value (reads-from) and keeps the executions the model allows.
//!
//! Dependencies are tracked by taint: every value carries the set of the process's reads it
//! was computed from. An access whose address is tainted has an `addr` dependency, a write
//! whose value is tainted a `data` dependency, and every event after an `if` whose condition
//! is tainted a `ctrl` dependency (herd7 extends `ctrl` to all po-later events).

use crate::ast::*;
use crate::error::ParseError;
use crate::prim::{self, Fence, Ord, Prim, Ret};
use crate::rel::Set;
use std::collections::HashMap;

/// A value: a number or a location's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, std::cmp::Ord)]
pub enum Val {
    Int(i64),
    Addr(usize),
}

/// A lock event's class (lock.cat): lock-read, lock-write, unlock, lock-fail (also a
/// `spin_is_locked()` that returns true), read-unlocked (one that returns false).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lk {
    None,
    Lkr,
    Lkw,
    Ul,
    Lf,
    Ru,
}

/// An event's operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
    Fence(Fence),
}

/// One event of a process (indices are the process's own).
#[derive(Clone, Debug)]
pub struct Ev {
    pub op: Op,
    pub loc: usize,
    pub val: Val,
    pub acquire: bool,
    pub release: bool,
    /// The read of a non-returning RMW (`atomic_inc`): `smp_rmb` does not order it.
    pub noreturn: bool,
    /// Part of an atomic RMW (herd7's `RMW` set; a failed cmpxchg's read counts).
    pub rmw: bool,
    pub lk: Lk,
    /// For the write of an RMW pair: its read.
    pub pair: Option<usize>,
    /// The reads (local indices) this event depends on, by kind.
    pub addr: Set,
    pub data: Set,
    pub ctrl: Set,
}

/// One run of a process.
#[derive(Clone, Debug)]
pub struct Trace {
    pub events: Vec<Ev>,
    pub regs: Vec<(String, Val)>,
}

/// The locations of a test: names, initial values, which are spinlocks.
#[derive(Clone, Debug)]
pub struct Locs {
    pub names: Vec<String>,
    pub init: Vec<Val>,
    pub lock: Vec<bool>,
}

impl Locs {
    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    pub fn show(&self, v: Val) -> String {
        match v {
            Val::Int(i) => i.to_string(),
            Val::Addr(a) => self.names[a].clone(),
        }
    }
}

/// Why a run stopped early.
pub enum Stop {
    /// The next read needs a value: one of these.
    Choose(Vec<Val>),
    /// The guessed values make the run meaningless (a number dereferenced): no such run.
    Invalid,
    /// The body is wrong whatever the values (an unknown name): refuse the test.
    Bad(Span, String),
}

/// The most events one process may have.
pub const MAX_THREAD_EVENTS: usize = 128;

struct Run<'a> {
    locs: &'a Locs,
    domain: &'a [Vec<Val>],
    params: &'a [String],
    choices: &'a [Val],
    next: usize,
    events: Vec<Ev>,
    regs: Vec<(String, Val, Set)>,
    /// The reads every later event has a control dependency on.
    ctrl: Set,
    rcu_depth: i64,
}

type Tv = (Val, Set);

impl Run<'_> {
    fn choose(&mut self, cands: Vec<Val>) -> Result<Val, Stop> {
        if self.next < self.choices.len() {
            let v = self.choices[self.next];
            self.next += 1;
            Ok(v)
        } else {
            Err(Stop::Choose(cands))
        }
    }

    fn push(&mut self, mut e: Ev) -> Result<usize, Stop> {
        if self.events.len() >= MAX_THREAD_EVENTS {
            return Err(Stop::Bad(
                0..0,
                format!("a process has more than {MAX_THREAD_EVENTS} events"),
            ));
        }
        e.ctrl |= self.ctrl;
        self.events.push(e);
        Ok(self.events.len() - 1)
    }

    fn ev(op: Op, loc: usize, val: Val) -> Ev {
        Ev {
            op,
            loc,
            val,
            acquire: false,
            release: false,
            noreturn: false,
            rmw: false,
            lk: Lk::None,
            pair: None,
            addr: 0,
            data: 0,
            ctrl: 0,
        }
    }

    fn fence(&mut self, f: Fence) -> Result<(), Stop> {
        if f == Fence::RcuLock {
            self.rcu_depth += 1;
        }
        if f == Fence::RcuUnlock {
            self.rcu_depth -= 1;
        }
        self.push(Run::ev(Op::Fence(f), usize::MAX, Val::Int(0)))?;
        Ok(())
    }

    fn lookup(&self, name: &str, span: &Span) -> Result<Tv, Stop> {
        if let Some((_, v, t)) = self.regs.iter().rev().find(|(n, _, _)| n == name) {
            return Ok((*v, *t));
        }
        if self.params.iter().any(|p| p == name) {
            if let Some(l) = self.locs.index(name) {
                return Ok((Val::Addr(l), 0));
            }
        }
        Err(Stop::Bad(
            span.clone(),
            format!("'{name}' is neither a register nor a parameter of this process"),
        ))
    }

    fn set_reg(&mut self, name: &str, tv: Tv) {
        if let Some(r) = self.regs.iter_mut().find(|(n, _, _)| n == name) {
            r.1 = tv.0;
            r.2 = tv.1;
        } else {
            self.regs.push((name.to_string(), tv.0, tv.1));
        }
    }

    /// The location a pointer value names.
    fn loc_of(&self, v: Val) -> Result<usize, Stop> {
        match v {
            Val::Addr(l) => Ok(l),
            Val::Int(_) => Err(Stop::Invalid),
        }
    }

    /// The location of a primitive's first argument: `*p` for `READ_ONCE`-style, `p` else.
    fn location(&mut self, arg: &Expr, deref: bool) -> Result<(usize, Set), Stop> {
        if deref {
            match &arg.kind {
                ExprKind::Deref(p) => {
                    let (v, t) = self.eval(p)?;
                    Ok((self.loc_of(v)?, t))
                }
                _ => Err(Stop::Bad(
                    arg.span.clone(),
                    "expected '*p' (this primitive takes the location itself)".into(),
                )),
            }
        } else {
            let (v, t) = self.eval(arg)?;
            Ok((self.loc_of(v)?, t))
        }
    }

    fn check_kind(&self, loc: usize, lock: bool, span: &Span) -> Result<(), Stop> {
        if self.locs.lock[loc] != lock {
            let what = if lock {
                "a spinlock operation on a non-lock location"
            } else {
                "an ordinary access to a spinlock"
            };
            return Err(Stop::Bad(
                span.clone(),
                format!("{what} ('{}')", self.locs.names[loc]),
            ));
        }
        Ok(())
    }

    fn cands(&self, loc: usize) -> Vec<Val> {
        self.domain[loc].clone()
    }

    fn read(
        &mut self,
        loc: usize,
        addr: Set,
        f: impl FnOnce(&mut Ev),
    ) -> Result<(Val, usize), Stop> {
        let v = self.choose(self.cands(loc))?;
        let mut e = Run::ev(Op::Read, loc, v);
        e.addr = addr;
        f(&mut e);
        let k = self.push(e)?;
        Ok((v, k))
    }

    fn write(
        &mut self,
        loc: usize,
        v: Tv,
        addr: Set,
        f: impl FnOnce(&mut Ev),
    ) -> Result<usize, Stop> {
        let mut e = Run::ev(Op::Write, loc, v.0);
        e.addr = addr;
        e.data = v.1;
        f(&mut e);
        self.push(e)
    }

    /// An RMW: optional full fences, the read, and (if `new` gives a value) the write.
    fn rmw(
        &mut self,
        loc: usize,
        addr: Set,
        ord: Ord,
        noreturn: bool,
        new: impl FnOnce(Val) -> Result<Option<Tv>, Stop>,
    ) -> Result<(Val, usize), Stop> {
        let v = self.choose(self.cands(loc))?;
        let w = new(v)?;
        let full = ord == Ord::Mb && w.is_some();
        if full {
            self.fence(Fence::Mb)?;
        }
        let mut r = Run::ev(Op::Read, loc, v);
        r.addr = addr;
        r.rmw = true;
        r.noreturn = noreturn;
        r.acquire = ord == Ord::Acquire && w.is_some();
        let rk = self.push(r)?;
        if let Some((nv, nt)) = w {
            self.write(loc, (nv, nt), addr, |e| {
                e.rmw = true;
                e.release = ord == Ord::Release;
                e.pair = Some(rk);
            })?;
        }
        if full {
            self.fence(Fence::Mb)?;
        }
        Ok((v, rk))
    }

    fn call(&mut self, name: &str, args: &[Expr], span: &Span) -> Result<Tv, Stop> {
        let Some(p) = prim::lookup(name) else {
            return Err(Stop::Bad(
                span.clone(),
                format!("unknown primitive '{name}'"),
            ));
        };
        let bit = |k: usize| -> Set { 1u128 << k };
        match p {
            Prim::Load { ord, deref } => {
                let (loc, a) = self.location(&args[0], deref)?;
                self.check_kind(loc, false, span)?;
                let (v, k) = self.read(loc, a, |e| e.acquire = ord == Ord::Acquire)?;
                Ok((v, bit(k)))
            }
            Prim::Store {
                ord,
                deref,
                mb_after,
            } => {
                let (loc, a) = self.location(&args[0], deref)?;
                self.check_kind(loc, false, span)?;
                let v = self.eval(&args[1])?;
                self.write(loc, v, a, |e| e.release = ord == Ord::Release)?;
                if mb_after {
                    self.fence(Fence::Mb)?;
                }
                Ok((Val::Int(0), 0))
            }
            Prim::Fence(f) => {
                self.fence(f)?;
                Ok((Val::Int(0), 0))
            }
            Prim::Xchg(ord) => {
                let (loc, a) = self.location(&args[0], false)?;
                self.check_kind(loc, false, span)?;
                let nv = self.eval(&args[1])?;
                let (v, k) = self.rmw(loc, a, ord, false, |_| Ok(Some(nv)))?;
                Ok((v, bit(k)))
            }
            Prim::Cmpxchg(ord) => {
                let (loc, a) = self.location(&args[0], false)?;
                self.check_kind(loc, false, span)?;
                let old = self.eval(&args[1])?;
                let nv = self.eval(&args[2])?;
                let (v, k) = self.rmw(loc, a, ord, false, |v| {
                    Ok(if v == old.0 { Some(nv) } else { None })
                })?;
                Ok((v, bit(k)))
            }
            Prim::Atomic {
                ord,
                ret,
                delta,
                neg,
            } => {
                let (d, ptr) = match delta {
                    Some(d) => ((Val::Int(d), 0), &args[0]),
                    None => (self.eval(&args[0])?, &args[1]),
                };
                let (loc, a) = self.location(ptr, false)?;
                self.check_kind(loc, false, span)?;
                let Val::Int(d0) = d.0 else {
                    return Err(addr_math(span));
                };
                let step = if neg { d0.wrapping_neg() } else { d0 };
                let new = |v: Val| -> Result<Option<Tv>, Stop> {
                    match v {
                        Val::Int(x) => Ok(Some((Val::Int(x.wrapping_add(step)), d.1))),
                        Val::Addr(_) => Err(addr_math(span)),
                    }
                };
                let (v, k) = self.rmw(loc, a, ord, ret == Ret::Void, new)?;
                let Val::Int(old) = v else {
                    return Err(addr_math(span));
                };
                let nv = old.wrapping_add(step);
                let out = match ret {
                    Ret::Void => 0,
                    Ret::New => nv,
                    Ret::Old => old,
                    Ret::IsZero => i64::from(nv == 0),
                    Ret::IsNeg => i64::from(nv < 0),
                };
                Ok((Val::Int(out), bit(k)))
            }
            Prim::AddUnless => {
                let (loc, a) = self.location(&args[0], false)?;
                self.check_kind(loc, false, span)?;
                let add = self.eval(&args[1])?;
                let unless = self.eval(&args[2])?;
                let Val::Int(ad) = add.0 else {
                    return Err(addr_math(span));
                };
                let (v, k) = self.rmw(loc, a, Ord::Mb, false, |v| match v {
                    Val::Int(x) if v != unless.0 => Ok(Some((Val::Int(x.wrapping_add(ad)), add.1))),
                    Val::Int(_) => Ok(None),
                    Val::Addr(_) => Err(addr_math(span)),
                })?;
                Ok((Val::Int(i64::from(v != unless.0)), bit(k)))
            }
            Prim::SpinLock => {
                let (loc, a) = self.location(&args[0], false)?;
                self.check_kind(loc, true, span)?;
                // A lock-read sees the lock free (0) and its lock-write takes it (1).
                let v = self.choose(vec![Val::Int(0)])?;
                let mut r = Run::ev(Op::Read, loc, v);
                r.addr = a;
                r.lk = Lk::Lkr;
                r.acquire = true;
                let rk = self.push(r)?;
                self.write(loc, (Val::Int(1), 0), a, |e| {
                    e.lk = Lk::Lkw;
                    e.pair = Some(rk);
                })?;
                Ok((Val::Int(0), 0))
            }
            Prim::SpinTrylock => {
                let (loc, a) = self.location(&args[0], false)?;
                self.check_kind(loc, true, span)?;
                let v = self.choose(vec![Val::Int(0), Val::Int(1)])?;
                let mut r = Run::ev(Op::Read, loc, v);
                r.addr = a;
                if v == Val::Int(0) {
                    r.lk = Lk::Lkr;
                    r.acquire = true;
                    let rk = self.push(r)?;
                    self.write(loc, (Val::Int(1), 0), a, |e| {
                        e.lk = Lk::Lkw;
                        e.pair = Some(rk);
                    })?;
                    Ok((Val::Int(1), bit(rk)))
                } else {
                    r.lk = Lk::Lf;
                    let rk = self.push(r)?;
                    Ok((Val::Int(0), bit(rk)))
                }
            }
            Prim::SpinIsLocked => {
                let (loc, a) = self.location(&args[0], false)?;
                self.check_kind(loc, true, span)?;
                let v = self.choose(vec![Val::Int(0), Val::Int(1)])?;
                let mut r = Run::ev(Op::Read, loc, v);
                r.addr = a;
                r.lk = if v == Val::Int(0) { Lk::Ru } else { Lk::Lf };
                let rk = self.push(r)?;
                Ok((v, bit(rk)))
            }
            Prim::SpinUnlock => {
                let (loc, a) = self.location(&args[0], false)?;
                self.check_kind(loc, true, span)?;
                self.write(loc, (Val::Int(0), 0), a, |e| {
                    e.lk = Lk::Ul;
                    e.release = true;
                })?;
                Ok((Val::Int(0), 0))
            }
        }
    }

    fn eval(&mut self, e: &Expr) -> Result<Tv, Stop> {
        match &e.kind {
            ExprKind::Int(v) => Ok((Val::Int(*v), 0)),
            ExprKind::Var(n) => self.lookup(n, &e.span),
            ExprKind::AddrOf(n) => match self.locs.index(n) {
                Some(l) => Ok((Val::Addr(l), 0)),
                None => Err(Stop::Bad(e.span.clone(), format!("unknown location '{n}'"))),
            },
            ExprKind::Deref(_) => Err(Stop::Bad(
                e.span.clone(),
                "plain accesses are not modelled: write READ_ONCE(*p)".into(),
            )),
            ExprKind::Call(name, args) => self.call(name, args, &e.span),
            ExprKind::Unary(op, a) => {
                let (v, t) = self.eval(a)?;
                let Val::Int(x) = v else {
                    return if *op == UnOp::Not {
                        Ok((Val::Int(0), t))
                    } else {
                        Err(addr_math(&e.span))
                    };
                };
                let r = match op {
                    UnOp::Not => i64::from(x == 0),
                    UnOp::Neg => x.wrapping_neg(),
                    UnOp::BitNot => !x,
                };
                Ok((Val::Int(r), t))
            }
            ExprKind::Bin(op, a, b) => {
                let (va, ta) = self.eval(a)?;
                let (vb, tb) = self.eval(b)?;
                let t = ta | tb;
                let r = match op {
                    BinOp::Eq => i64::from(va == vb),
                    BinOp::Ne => i64::from(va != vb),
                    BinOp::LAnd => i64::from(Run::truthy(va) && Run::truthy(vb)),
                    BinOp::LOr => i64::from(Run::truthy(va) || Run::truthy(vb)),
                    _ => {
                        // Arithmetic on numbers only; `p + 0`-style address arithmetic is not
                        // modelled.
                        let (Val::Int(x), Val::Int(y)) = (va, vb) else {
                            return Err(addr_math(&e.span));
                        };
                        match op {
                            BinOp::Add => x.wrapping_add(y),
                            BinOp::Sub => x.wrapping_sub(y),
                            BinOp::Mul => x.wrapping_mul(y),
                            BinOp::And => x & y,
                            BinOp::Or => x | y,
                            BinOp::Xor => x ^ y,
                            BinOp::Lt => i64::from(x < y),
                            BinOp::Le => i64::from(x <= y),
                            BinOp::Gt => i64::from(x > y),
                            BinOp::Ge => i64::from(x >= y),
                            BinOp::Eq | BinOp::Ne | BinOp::LAnd | BinOp::LOr => {
                                unreachable!("handled above")
                            }
                        }
                    }
                };
                Ok((Val::Int(r), t))
            }
        }
    }

    fn truthy(v: Val) -> bool {
        v != Val::Int(0)
    }

    fn stmts(&mut self, body: &[Stmt]) -> Result<(), Stop> {
        for s in body {
            match s {
                Stmt::Decl(name, init, _) => {
                    let tv = match init {
                        Some(e) => self.eval(e)?,
                        None => self
                            .regs
                            .iter()
                            .find(|(n, _, _)| n == name)
                            .map_or((Val::Int(0), 0), |r| (r.1, r.2)),
                    };
                    self.set_reg(name, tv);
                }
                Stmt::Assign(name, e, _) => {
                    let tv = self.eval(e)?;
                    self.set_reg(name, tv);
                }
                Stmt::Eval(e) => {
                    self.eval(e)?;
                }
                Stmt::If(c, then, els) => {
                    let (v, t) = self.eval(c)?;
                    // herd7's ctrl reaches every po-later event, after the join too: the
                    // taint is never dropped.
                    self.ctrl |= t;
                    if Run::truthy(v) {
                        self.stmts(then)?;
                    } else {
                        self.stmts(els)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Arithmetic on an address: refused (a dropped run could hide an execution).
fn addr_math(span: &Span) -> Stop {
    Stop::Bad(
        span.clone(),
        "arithmetic on an address is not modelled".into(),
    )
}

/// The initial registers of process `t` (from the initial state).
fn init_regs(test: &Test, locs: &Locs, t: usize) -> Vec<(String, Val, Set)> {
    let mut out = Vec::new();
    for i in &test.init {
        if let Target::Reg(tt, r) = &i.target {
            if *tt == t {
                let v = match &i.value {
                    Const::Int(v) => Val::Int(*v),
                    Const::Addr(a) => Val::Addr(locs.index(a).unwrap_or(0)),
                };
                out.push((r.clone(), v, 0));
            }
        }
    }
    out
}

/// Every run of process `t` whose reads take values from `domain`, or the error that refuses
/// the test. `limit` bounds the number of runs.
pub fn runs(
    file: &str,
    text: &str,
    test: &Test,
    locs: &Locs,
    t: usize,
    domain: &[Vec<Val>],
    limit: usize,
) -> Result<Result<Vec<Trace>, String>, ParseError> {
    let th = &test.threads[t];
    // The process's name, for errors about the whole body.
    let head = th.span.start..th.span.start + format!("P{t}").len();
    let mut out = Vec::new();
    let mut stack: Vec<Vec<Val>> = vec![Vec::new()];
    while let Some(choices) = stack.pop() {
        let mut run = Run {
            locs,
            domain,
            params: &th.params,
            choices: &choices,
            next: 0,
            events: Vec::new(),
            regs: init_regs(test, locs, t),
            ctrl: 0,
            rcu_depth: 0,
        };
        match run.stmts(&th.body) {
            Ok(()) => {
                if run.rcu_depth != 0 {
                    return Err(ParseError::new(
                        file,
                        text,
                        head,
                        format!("P{t}: unbalanced rcu_read_lock()/rcu_read_unlock()"),
                    ));
                }
                out.push(Trace {
                    regs: run.regs.iter().map(|(n, v, _)| (n.clone(), *v)).collect(),
                    events: run.events,
                });
                if out.len() > limit {
                    return Ok(Err(format!("P{t} has more than {limit} runs")));
                }
            }
            Err(Stop::Choose(cands)) => {
                for v in cands.into_iter().rev() {
                    let mut c = choices.clone();
                    c.push(v);
                    stack.push(c);
                }
            }
            Err(Stop::Invalid) => {}
            Err(Stop::Bad(span, msg)) => {
                let span = if span.is_empty() { head } else { span };
                return Err(ParseError::new(file, text, span, msg));
            }
        }
    }
    // Runs in the order of their choices (the stack pops the first choice first).
    Ok(Ok(out))
}

/// Build the location table of a test.
pub fn locations(file: &str, text: &str, test: &Test) -> Result<Locs, ParseError> {
    let mut locs = Locs {
        names: test.globals.clone(),
        init: vec![Val::Int(0); test.globals.len()],
        lock: test
            .globals
            .iter()
            .map(|g| test.locks.contains(g))
            .collect(),
    };
    let mut seen: HashMap<String, ()> = HashMap::new();
    for i in &test.init {
        if let Target::Loc(n) = &i.target {
            let Some(l) = locs.index(n) else { continue };
            if seen.insert(n.clone(), ()).is_some() {
                return Err(ParseError::new(
                    file,
                    text,
                    i.span.clone(),
                    format!("'{n}' is initialised twice"),
                ));
            }
            locs.init[l] = match &i.value {
                Const::Int(v) => Val::Int(*v),
                Const::Addr(a) => match locs.index(a) {
                    Some(k) => Val::Addr(k),
                    None => {
                        return Err(ParseError::new(
                            file,
                            text,
                            i.span.clone(),
                            format!("unknown location '{a}'"),
                        ))
                    }
                },
            };
        }
        if let Target::Reg(t, _) = &i.target {
            if *t >= test.threads.len() {
                return Err(ParseError::new(
                    file,
                    text,
                    i.span.clone(),
                    format!("there is no process P{t}"),
                ));
            }
        }
    }
    Ok(locs)
}
