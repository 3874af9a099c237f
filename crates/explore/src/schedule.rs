//! Schedules and their tokens. A schedule is the thread chosen at each step; its token is a short
//! run-length string (`v1:0x12.1x3.0.2x4`: thread 0 for 12 steps, thread 1 for 3, ...), which
//! `replay` turns back into the same execution.

use crate::exec::{Exec, StackPool, Step};
use crate::{Finish, Model};
use mmcheck_platform::Violation;
use std::fmt;
use std::sync::Arc;

/// The thread run at each step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule(pub Vec<u8>);

/// A token that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("schedule token must start with 'v1:'")]
    Version,
    #[error("bad run '{0}' in schedule token (expected THREAD or THREADxCOUNT)")]
    Run(String),
}

impl Schedule {
    /// Parse a token.
    pub fn parse(token: &str) -> Result<Self, TokenError> {
        let body = token
            .trim()
            .strip_prefix("v1:")
            .ok_or(TokenError::Version)?;
        let mut v = Vec::new();
        if body.is_empty() {
            return Ok(Schedule(v));
        }
        for run in body.split('.') {
            let (t, n) = match run.split_once('x') {
                Some((t, n)) => (t, n),
                None => (run, "1"),
            };
            let t: u8 = t.parse().map_err(|_| TokenError::Run(run.into()))?;
            let n: usize = n.parse().map_err(|_| TokenError::Run(run.into()))?;
            if n == 0 || n > 1_000_000 || t as usize >= crate::MAX_THREADS {
                return Err(TokenError::Run(run.into()));
            }
            v.extend(std::iter::repeat_n(t, n));
        }
        Ok(Schedule(v))
    }

    /// Context switches away from a thread that could have continued.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("v1:")?;
        let mut first = true;
        let mut i = 0;
        while i < self.0.len() {
            let t = self.0[i];
            let mut n = 1;
            while i + n < self.0.len() && self.0[i + n] == t {
                n += 1;
            }
            if !first {
                f.write_str(".")?;
            }
            first = false;
            if n == 1 {
                write!(f, "{t}")?;
            } else {
                write!(f, "{t}x{n}")?;
            }
            i += n;
        }
        Ok(())
    }
}

/// One execution driven by a chooser.
pub struct Run {
    pub schedule: Schedule,
    pub trace: Vec<Step>,
    pub violation: Option<Violation>,
    pub finish: Option<Finish>,
    pub preemptions: usize,
    /// The chooser gave up (schedule did not fit, or a sleep-set block in DPOR).
    pub abandoned: bool,
    pub lock_edges: Vec<((u64, u64), (usize, usize))>,
}

/// Picks the thread for a step from the execution, the enabled mask and the step index.
pub type Chooser<'a, M> = dyn FnMut(&Exec<M>, u32, usize) -> Option<usize> + 'a;

/// Run one execution, asking `choose(exec, enabled_mask, step)` for the thread at each step.
/// `None` from the chooser abandons the execution.
pub fn run_one<M: Model>(
    model: &Arc<M>,
    pool: &mut StackPool,
    recording: bool,
    max_steps: usize,
    choose: &mut Chooser<'_, M>,
) -> Run {
    let mut ex = Exec::new(model, pool, recording);
    let mut sched = Vec::new();
    let mut trace = Vec::new();
    let mut violation = ex.violation();
    let mut preemptions = 0;
    let mut prev: Option<usize> = None;
    let mut abandoned = false;
    while violation.is_none() {
        if ex.finished() {
            break;
        }
        let enabled = ex.enabled_mask();
        if enabled == 0 {
            violation = Some(ex.deadlock());
            break;
        }
        if sched.len() >= max_steps {
            violation = Some(Violation {
                kind: mmcheck_platform::ViolationKind::Assertion,
                cpu: None,
                stack: vec![],
                msg: format!("execution exceeded {max_steps} steps (livelock?)"),
            });
            break;
        }
        let Some(t) = choose(&ex, enabled, sched.len()) else {
            abandoned = true;
            break;
        };
        if enabled & (1 << t) == 0 {
            abandoned = true;
            break;
        }
        if let Some(p) = prev {
            if p != t && enabled & (1 << p) != 0 {
                preemptions += 1;
            }
        }
        prev = Some(t);
        let func = ex.func(t);
        let event = ex.step(t);
        sched.push(t as u8);
        trace.push(Step {
            thread: t,
            event,
            func,
        });
        if ex.violated() {
            violation = ex.violation();
        }
    }
    let lock_edges = ex.locks.edges.iter().map(|(k, v)| (*k, *v)).collect();
    let clean_end = violation.is_none() && !abandoned;
    let finish = ex.finish(pool, clean_end);
    if let Some(f) = &finish {
        if violation.is_none() {
            violation = f.violations.first().cloned();
        }
    }
    Run {
        schedule: Schedule(sched),
        trace,
        violation,
        finish,
        preemptions,
        abandoned,
        lock_edges,
    }
}

/// Replay a schedule. Steps beyond the schedule continue with the lowest enabled thread.
pub fn replay<M: Model>(model: &Arc<M>, schedule: &Schedule, recording: bool) -> Run {
    let mut pool = StackPool::default();
    let s = schedule.0.clone();
    run_one(
        model,
        &mut pool,
        recording,
        1_000_000,
        &mut |_, enabled, i| match s.get(i) {
            Some(&t) => Some(t as usize),
            None => Some(enabled.trailing_zeros() as usize),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_roundtrip() {
        let s = Schedule(vec![0, 0, 0, 1, 2, 2, 0]);
        let t = s.to_string();
        assert_eq!(t, "v1:0x3.1.2x2.0");
        assert_eq!(Schedule::parse(&t).unwrap(), s);
        assert_eq!(Schedule::parse("v1:").unwrap(), Schedule(vec![]));
        assert!(Schedule::parse("0x3").is_err());
        assert!(Schedule::parse("v1:0xq").is_err());
        assert!(Schedule::parse("v1:9").is_err());
    }
}
