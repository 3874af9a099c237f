//! The final clause: the value of a register or location in a final state, a proposition's
//! truth, the names it uses (checked to exist), and a state's printed form.

use crate::ast::*;
use crate::error::ParseError;
use crate::exec::{Locs, Val};

/// Final registers, per process.
pub type Regs = [Vec<(String, Val)>];

/// A final state as herd7 prints it: `0:r0=1; x=2;`.
pub fn show_state(locs: &Locs, shown: &[Target], regs: &Regs, fin: &[Val]) -> String {
    let mut s = String::new();
    for t in shown {
        let v = value_of(locs, t, regs, fin).unwrap_or(Val::Int(0));
        s.push_str(&format!("{t}={}; ", locs.show(v)));
    }
    s.trim_end().to_string()
}

fn value_of(locs: &Locs, t: &Target, regs: &Regs, fin: &[Val]) -> Option<Val> {
    match t {
        // A register the run never set holds 0, as in herd7.
        Target::Reg(p, r) => Some(
            regs.get(*p)?
                .iter()
                .find(|(n, _)| n == r)
                .map_or(Val::Int(0), |(_, v)| *v),
        ),
        Target::Loc(l) => locs.index(l).map(|k| fin[k]),
    }
}

/// Whether `p` holds in the final state (`regs`, `fin`: each location's last value).
pub fn eval_prop(p: &Prop, locs: &Locs, regs: &Regs, fin: &[Val]) -> bool {
    match p {
        Prop::True => true,
        Prop::False => false,
        Prop::Eq(t, c, _) => {
            let want = match c {
                Const::Int(v) => Val::Int(*v),
                Const::Addr(a) => match locs.index(a) {
                    Some(k) => Val::Addr(k),
                    None => return false,
                },
            };
            value_of(locs, t, regs, fin) == Some(want)
        }
        Prop::Not(a) => !eval_prop(a, locs, regs, fin),
        Prop::And(a, b) => eval_prop(a, locs, regs, fin) && eval_prop(b, locs, regs, fin),
        Prop::Or(a, b) => eval_prop(a, locs, regs, fin) || eval_prop(b, locs, regs, fin),
    }
}

/// The targets a proposition names, with their spans.
pub fn prop_targets(p: &Prop, out: &mut Vec<(Target, Span)>) {
    match p {
        Prop::Eq(t, _, s) => out.push((t.clone(), s.clone())),
        Prop::Not(a) => prop_targets(a, out),
        Prop::And(a, b) | Prop::Or(a, b) => {
            prop_targets(a, out);
            prop_targets(b, out);
        }
        Prop::True | Prop::False => {}
    }
}

/// Check that every named register and location exists.
pub fn validate(
    file: &str,
    text: &str,
    test: &Test,
    locs: &Locs,
) -> Result<Vec<Target>, ParseError> {
    let mut named = test.locations.clone();
    if let Some(f) = &test.filter {
        prop_targets(f, &mut named);
    }
    let mut cond = Vec::new();
    prop_targets(&test.cond.prop, &mut cond);
    named.extend(cond.iter().cloned());
    for (t, span) in &named {
        match t {
            Target::Reg(p, _) if *p >= test.threads.len() => {
                return Err(ParseError::new(
                    file,
                    text,
                    span.clone(),
                    format!("there is no process P{p}"),
                ));
            }
            Target::Loc(l) if locs.index(l).is_none() => {
                return Err(ParseError::new(
                    file,
                    text,
                    span.clone(),
                    format!("unknown location '{l}'"),
                ));
            }
            _ => {}
        }
    }
    // Shown: `locations` first, then the condition's, each once.
    let mut shown: Vec<Target> = Vec::new();
    for (t, _) in test.locations.iter().chain(cond.iter()) {
        if !shown.contains(t) {
            shown.push(t.clone());
        }
    }
    Ok(shown)
}

/// Whether `s` sets register `r` (a declaration or an assignment, in any branch).
pub fn declares(s: &Stmt, r: &str) -> bool {
    match s {
        Stmt::Decl(n, _, _) | Stmt::Assign(n, _, _) => n == r,
        Stmt::Eval(_) => false,
        Stmt::If(_, a, b) => a.iter().chain(b).any(|s| declares(s, r)),
    }
}
