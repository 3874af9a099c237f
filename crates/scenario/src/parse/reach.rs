//! `expect [VARIANTS:] reach PATTERN`: the syntax of reach patterns and their resolution against
//! the scenario's threads, the kernel functions the model enters and the lock names it knows.
//!
//! ```text
//! PATTERN = ATOM [ ("while" | "before") ATOM ]
//! ATOM    = THREAD { "in" FUNCTION | "holds" LOCK }+
//! ```

use super::{did_you_mean, is_word_char, word, ws, Builder, In, PResult, Sp};
use crate::{Atom, ReachPattern, HOLD_NAMES, KERNEL_FUNCS};
use std::collections::HashMap;
use winnow::token::take_while;
use winnow::Parser;

/// One condition of an atom: `in FUNC` or `holds LOCK`.
#[derive(Clone, Debug)]
pub(super) struct CondAst<'a> {
    pub holds: bool,
    pub name: Sp<&'a str>,
}

/// `THREAD cond...`
#[derive(Clone, Debug)]
pub(super) struct AtomAst<'a> {
    pub thread: Sp<&'a str>,
    pub conds: Vec<CondAst<'a>>,
}

/// A parsed pattern: one atom, or two joined by `while` / `before`.
#[derive(Clone, Debug)]
pub(super) struct ReachAst<'a> {
    pub first: AtomAst<'a>,
    pub rest: Option<(Sp<&'a str>, AtomAst<'a>)>,
    pub text: String,
}

fn peek_word<'a>(i: &In<'a>) -> &'a str {
    let s: &str = i;
    let s = s.trim_start_matches([' ', '\t']);
    let n = s.find(|c: char| !is_word_char(c)).unwrap_or(s.len());
    &s[..n]
}

fn atom<'a>(i: &mut In<'a>) -> PResult<AtomAst<'a>> {
    let thread = word(i, "a thread name")?;
    let mut conds = Vec::new();
    loop {
        let holds = match peek_word(i) {
            "in" => false,
            "holds" => true,
            _ => break,
        };
        word(i, "'in' or 'holds'")?;
        let name = word(
            i,
            if holds {
                "a lock name"
            } else {
                "a kernel function"
            },
        )?;
        conds.push(CondAst { holds, name });
    }
    if conds.is_empty() {
        return super::expected(i, "'in FUNCTION' or 'holds LOCK' after the thread name");
    }
    Ok(AtomAst { thread, conds })
}

/// After `reach`: the pattern, up to the end of the line.
pub(super) fn pattern<'a>(i: &mut In<'a>) -> PResult<ReachAst<'a>> {
    ws(i)?;
    let start: &str = i;
    let first = atom(i)?;
    let rest = match peek_word(i) {
        "while" | "before" => {
            let op = word(i, "'while' or 'before'")?;
            Some((op, atom(i)?))
        }
        _ => None,
    };
    let end: &str = i;
    let text = start[..start.len() - end.len()].trim().to_string();
    // Nothing else may follow (a typo such as 'whle' lands here).
    let _: &str = take_while(0.., [' ', '\t']).parse_next(i)?;
    if !super::at_eol(i) {
        let w = peek_word(i);
        return super::cut_help(
            super::pos(i)..super::pos(i) + w.len().max(1),
            format!("expected 'while', 'before', 'in', 'holds' or end of line, found '{w}'"),
            did_you_mean(w, &["while", "before", "in", "holds"]),
        );
    }
    Ok(ReachAst { first, rest, text })
}

impl Builder<'_> {
    fn reach_atom(
        &self,
        a: &AtomAst<'_>,
        threads: &HashMap<&str, usize>,
    ) -> Result<Atom, super::ParseError> {
        let Some(&thread) = threads.get(a.thread.v) else {
            let mut known: Vec<&str> = threads.keys().copied().collect();
            known.sort_unstable();
            return Err(self
                .err(
                    a.thread.span.clone(),
                    format!(
                        "unknown thread '{}' (threads: {})",
                        a.thread.v,
                        known.join(", ")
                    ),
                )
                .with_help(did_you_mean(a.thread.v, &known)));
        };
        let mut atom = Atom {
            thread,
            funcs: Vec::new(),
            holds: Vec::new(),
        };
        for c in &a.conds {
            if c.holds {
                let names: Vec<&str> = HOLD_NAMES.iter().map(|(n, _)| *n).collect();
                let Some(&(_, class)) = HOLD_NAMES.iter().find(|(n, _)| *n == c.name.v) else {
                    return Err(self
                        .err(
                            c.name.span.clone(),
                            format!("unknown lock '{}' (known: {})", c.name.v, names.join(", ")),
                        )
                        .with_help(did_you_mean(c.name.v, &names)));
                };
                atom.holds.push(class);
            } else {
                let Some(&f) = KERNEL_FUNCS.iter().find(|f| **f == c.name.v) else {
                    return Err(self
                        .err(
                            c.name.span.clone(),
                            format!(
                                "'{}' is not a kernel function the model enters ('mmcheck funcs' lists them)",
                                c.name.v
                            ),
                        )
                        .with_help(did_you_mean(c.name.v, KERNEL_FUNCS)));
                };
                atom.funcs.push(f);
            }
        }
        Ok(atom)
    }

    /// Resolve a parsed pattern against the scenario's threads (`threads`: name → index).
    pub(super) fn reach_pattern(
        &self,
        r: &ReachAst<'_>,
        threads: &HashMap<&str, usize>,
    ) -> Result<ReachPattern, super::ParseError> {
        let a = self.reach_atom(&r.first, threads)?;
        Ok(match &r.rest {
            None => ReachPattern::Once(a),
            Some((op, b)) => {
                let b = self.reach_atom(b, threads)?;
                if op.v == "while" {
                    ReachPattern::While(a, b)
                } else {
                    ReachPattern::Before(a, b)
                }
            }
        })
    }
}
