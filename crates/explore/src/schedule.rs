//! Schedules and their tokens. A schedule is the decision taken at each step: the thread, and for
//! a choice step (`Cpu::choose`) the outcome. Its token is a short run-length string
//! (`v1:0x12.1x3.0.2/1.2x4`: thread 0 for 12 steps, thread 1 for 3, thread 0, thread 2 taking
//! outcome 1 of a choice, ...), which `replay` turns back into the same execution.
//!
//! Two replays: [`replay_strict`] (the `mmcheck replay` command) rejects a token that does not fit
//! the model, naming the step and why; [`replay`] (shrinking, tests) is lenient and stops quietly.
//! Both continue a token that ends early with the lowest enabled thread, so a prefix of a
//! schedule is a valid token.

use crate::exec::{choice_of, decision, thread_of, Exec, StackPool, Step};
use crate::{Finish, Model};
use mmcheck_platform::Violation;
use std::fmt;
use std::sync::Arc;

/// The decision at each step (see [`crate::exec::decision`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule(pub Vec<u8>);

/// A token that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("schedule token must start with 'v1:'")]
    Version,
    #[error("bad run '{0}' in schedule token (expected THREAD, THREAD/OUTCOME, or either xCOUNT)")]
    Run(String),
    #[error("schedule token is longer than {MAX_TOKEN_STEPS} steps")]
    TooLong,
}

/// The longest token [`Schedule::parse`] accepts (and the step limit of a replay).
pub const MAX_TOKEN_STEPS: usize = 1_000_000;

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
            let (t, o) = match t.split_once('/') {
                Some((t, o)) => (t, o),
                None => (t, "0"),
            };
            let t: u8 = t.parse().map_err(|_| TokenError::Run(run.into()))?;
            let o: u8 = o.parse().map_err(|_| TokenError::Run(run.into()))?;
            let n: usize = n.parse().map_err(|_| TokenError::Run(run.into()))?;
            if n == 0
                || n > MAX_TOKEN_STEPS
                || t as usize >= crate::MAX_THREADS
                || o >= crate::exec::MAX_CHOICES
            {
                return Err(TokenError::Run(run.into()));
            }
            if v.len() + n > MAX_TOKEN_STEPS {
                return Err(TokenError::TooLong);
            }
            v.extend(std::iter::repeat_n(decision(t as usize, o), n));
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
            let (th, o) = (thread_of(t as usize), choice_of(t as usize));
            if o == 0 {
                write!(f, "{th}")?;
            } else {
                write!(f, "{th}/{o}")?;
            }
            if n > 1 {
                write!(f, "x{n}")?;
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
    /// A tool limit the execution ran into (it then proves nothing).
    pub limit: Option<mmcheck_platform::Limit>,
    /// The chooser gave up (schedule did not fit, or a sleep-set block in DPOR).
    pub abandoned: bool,
    /// The model's reach patterns the execution reached (bit mask, see [`crate::reach`]).
    pub reached: u64,
    /// Per-step detail and the naming log (recording mode only; empty otherwise).
    pub detail: Vec<crate::exec::StepDetail>,
    pub names: mmcheck_platform::Names,
    /// The sites of the steps (only from [`run_one_with`] with `coverage`).
    pub coverage: Option<std::collections::BTreeSet<crate::exec::Site>>,
    /// The execution's equivalence class ([`Exec::class`]; only from [`run_one_with`] with
    /// `classes`, for an execution that ran to its end or to a violation).
    pub class: Option<u64>,
}

/// What [`run_one_with`] keeps of an execution beyond its schedule.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tracking {
    /// The sites of the steps, in [`Run::coverage`].
    pub coverage: bool,
    /// The steps, in [`Run::trace`].
    pub trace: bool,
    /// The equivalence class, in [`Run::class`].
    pub classes: bool,
}

/// Picks the decision for a step (a thread, with the outcome if its step is a choice; see
/// [`crate::exec::decision`]) from the execution, the enabled mask and the step index.
pub type Chooser<'a, M> = dyn FnMut(&Exec<M>, u32, usize) -> Option<usize> + 'a;

/// Run one execution, asking `choose(exec, enabled_mask, step)` for the decision at each step.
/// `None` from the chooser abandons the execution.
pub fn run_one<M: Model>(
    model: &Arc<M>,
    pool: &mut StackPool,
    recording: bool,
    max_steps: usize,
    choose: &mut Chooser<'_, M>,
) -> Run {
    let track = Tracking {
        trace: true,
        ..Tracking::default()
    };
    run_one_with(model, pool, recording, track, max_steps, choose)
}

/// [`run_one`], keeping what `track` asks for (the schedule is always kept: it replays the
/// trace).
pub fn run_one_with<M: Model, C>(
    model: &Arc<M>,
    pool: &mut StackPool,
    recording: bool,
    track: Tracking,
    max_steps: usize,
    choose: &mut C,
) -> Run
where
    C: FnMut(&Exec<M>, u32, usize) -> Option<usize> + ?Sized,
{
    let keep_trace = track.trace;
    let mut ex = Exec::new(model, pool, recording);
    if track.coverage {
        ex.track_coverage();
    }
    let mut trace = Vec::new();
    let mut violation = ex.violation();
    let mut limit = ex.limit();
    let mut preemptions = 0;
    let mut prev: Option<usize> = None;
    let mut abandoned = false;
    while violation.is_none() && limit.is_none() {
        let enabled = match ex.next_enabled(ex.sched.len(), max_steps) {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(h) => {
                h.record(&mut violation, &mut limit);
                break;
            }
        };
        let Some(d) = choose(&ex, enabled, ex.sched.len()) else {
            abandoned = true;
            break;
        };
        let t = thread_of(d);
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
        if keep_trace {
            let func = ex.func(t);
            let event = ex.announced(t).expect("step of a finished thread");
            let dep = ex.step(d);
            trace.push(Step {
                thread: t,
                choice: ex.sched.last().map_or(0, |&d| choice_of(d as usize)),
                event,
                dep,
                func,
            });
        } else {
            ex.step(d);
        }
        limit = ex.limit();
        if limit.is_none() && ex.violated() {
            violation = ex.violation();
        }
    }
    if limit.is_none() {
        ex.locks.merge_into(&mut pool.edges, &ex.sched);
    }
    let clean_end = violation.is_none() && limit.is_none() && !abandoned;
    let class = (track.classes && limit.is_none() && !abandoned).then(|| ex.class());
    let sched = std::mem::take(&mut ex.sched);
    let detail = std::mem::take(&mut ex.detail);
    let inst = recording.then(|| ex.inst.clone());
    let reached = ex.reached();
    let coverage = ex.coverage.take();
    let finish = ex.finish(pool, clean_end);
    // After the final checks, which may blame objects.
    let names = inst.map_or_else(Default::default, |i| model.machine(&i).names());
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
        limit,
        abandoned,
        reached,
        detail,
        names,
        coverage,
        class,
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
        MAX_TOKEN_STEPS,
        &mut |_, enabled, i| match s.get(i) {
            Some(&d) => Some(d as usize),
            None => Some(enabled.trailing_zeros() as usize),
        },
    )
}

/// Why a token does not fit an execution.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Misfit {
    #[error("thread {thread} does not exist (threads are 0 to {last})")]
    NoSuchThread { thread: usize, last: usize },
    #[error("thread {thread} ({name}) has finished")]
    Finished { thread: usize, name: String },
    #[error("thread {thread} ({name}) is blocked (enabled: {enabled})")]
    Blocked {
        thread: usize,
        name: String,
        enabled: String,
    },
    #[error("thread {thread} ({name}) has no outcome {outcome} here (its step has {outcomes})")]
    NoSuchOutcome {
        thread: usize,
        name: String,
        outcome: u8,
        outcomes: u8,
    },
    #[error("every thread finished after {steps} steps, but the token has {}", more(*.extra))]
    AfterEnd { steps: usize, extra: usize },
    #[error("the execution stopped after {steps} steps ({limit}), but the token has {}", more(*.extra))]
    AfterLimit {
        limit: String,
        steps: usize,
        extra: usize,
    },
    #[error("the execution ended with {kind} after {steps} steps, but the token has {}", more(*.extra))]
    AfterViolation {
        kind: String,
        steps: usize,
        extra: usize,
    },
}

fn more(n: usize) -> String {
    format!("{n} more step{}", if n == 1 { "" } else { "s" })
}

/// A token that does not fit: the step (numbered from 0, as in traces) and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("token does not fit at step {step}: {misfit}")]
pub struct ReplayError {
    pub step: usize,
    pub misfit: Misfit,
}

/// Replay a schedule, rejecting a token that does not fit: a step naming a thread that does not
/// exist, has finished or is blocked, or steps left over once the execution has ended (every
/// thread finished, or a violation or deadlock stopped it). Steps beyond the token continue with
/// the lowest enabled thread.
pub fn replay_strict<M: Model>(
    model: &Arc<M>,
    schedule: &Schedule,
    recording: bool,
) -> Result<Run, ReplayError> {
    let mut pool = StackPool::default();
    let s = &schedule.0;
    let mut misfit: Option<ReplayError> = None;
    let run = run_one(
        model,
        &mut pool,
        recording,
        MAX_TOKEN_STEPS,
        &mut |ex, enabled, i| {
            let Some(&d) = s.get(i) else {
                return Some(enabled.trailing_zeros() as usize);
            };
            let (t, o) = (thread_of(d as usize), choice_of(d as usize));
            let name = || ex.model.thread_name(t);
            let m = if t >= ex.threads() {
                Misfit::NoSuchThread {
                    thread: t,
                    last: ex.threads().saturating_sub(1),
                }
            } else if ex.pending[t].is_none() {
                Misfit::Finished {
                    thread: t,
                    name: name(),
                }
            } else if enabled & (1 << t) == 0 {
                let on: Vec<String> = (0..ex.threads())
                    .filter(|u| enabled & (1 << u) != 0)
                    .map(|u| format!("{u} ({})", ex.model.thread_name(u)))
                    .collect();
                Misfit::Blocked {
                    thread: t,
                    name: name(),
                    enabled: on.join(", "),
                }
            } else if o >= ex.alternatives(t) {
                Misfit::NoSuchOutcome {
                    thread: t,
                    name: name(),
                    outcome: o,
                    outcomes: ex.alternatives(t),
                }
            } else {
                return Some(d as usize);
            };
            misfit = Some(ReplayError { step: i, misfit: m });
            None
        },
    );
    if let Some(e) = misfit {
        return Err(e);
    }
    let ran = run.schedule.len();
    if ran < s.len() {
        let extra = s.len() - ran;
        let misfit = match (&run.finish, &run.violation) {
            _ if run.limit.is_some() => Misfit::AfterLimit {
                limit: run.limit.clone().expect("checked").to_string(),
                steps: ran,
                extra,
            },
            // The loop stopped on a violation (or deadlock, or the step limit).
            (None, Some(v)) => Misfit::AfterViolation {
                kind: v.kind.name().to_string(),
                steps: ran,
                extra,
            },
            _ => Misfit::AfterEnd { steps: ran, extra },
        };
        return Err(ReplayError { step: ran, misfit });
    }
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toy::{Op, Program};

    /// Two threads, each taking lock 0 around one write.
    fn locked_pair() -> Arc<Program> {
        let t = vec![Op::Lock(0), Op::Write(0, 1), Op::Unlock(0)];
        Arc::new(Program {
            vars: 1,
            locks: 1,
            frames: 0,
            threads: vec![t.clone(), t],
        })
    }

    fn misfit(m: &Arc<Program>, token: &str) -> ReplayError {
        match replay_strict(m, &Schedule::parse(token).unwrap(), false) {
            Ok(r) => panic!("{token} fits: {}", r.schedule),
            Err(e) => e,
        }
    }

    #[test]
    fn strict_replay_accepts_fitting_and_prefix_tokens() {
        let m = locked_pair();
        let full = replay(&m, &Schedule::default(), false);
        assert!(full.violation.is_none() && !full.abandoned);
        let n = full.schedule.len();
        assert_eq!(
            full.schedule.0,
            [vec![0u8; n / 2], vec![1u8; n / 2]].concat()
        );
        let r = replay_strict(&m, &full.schedule, false).unwrap();
        assert_eq!(r.schedule, full.schedule);
        // A prefix (even an empty one) is continued with the lowest enabled thread.
        let r = replay_strict(&m, &Schedule(vec![1]), false).unwrap();
        assert_eq!(r.schedule.len(), n);
        assert_eq!(r.schedule.0[..n / 2], vec![1u8; n / 2]);
        assert!(replay_strict(&m, &Schedule::default(), false).is_ok());
    }

    #[test]
    fn strict_replay_rejects_what_does_not_fit() {
        let m = locked_pair();
        let n = replay(&m, &Schedule::default(), false).schedule.len() / 2;
        let e = misfit(&m, "v1:0.2");
        assert_eq!(e.step, 1);
        assert!(
            matches!(e.misfit, Misfit::NoSuchThread { thread: 2, last: 1 }),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            "token does not fit at step 1: thread 2 does not exist (threads are 0 to 1)"
        );
        let e = misfit(&m, &format!("v1:0x{}", n + 1));
        assert_eq!(e.step, n);
        assert!(
            matches!(e.misfit, Misfit::Finished { thread: 0, .. }),
            "{e}"
        );
        // Thread 0 holds the lock: thread 1 waits for it.
        let e = misfit(&m, "v1:0.1");
        assert_eq!(e.step, 1);
        assert!(matches!(e.misfit, Misfit::Blocked { thread: 1, .. }), "{e}");
        let e = misfit(&m, &format!("v1:0x{n}.1x{n}.1"));
        assert_eq!(e.step, 2 * n);
        assert_eq!(
            e.misfit,
            Misfit::AfterEnd {
                steps: 2 * n,
                extra: 1
            }
        );
        assert!(
            e.to_string().ends_with("but the token has 1 more step"),
            "{e}"
        );
    }

    #[test]
    fn strict_replay_rejects_steps_after_a_violation() {
        // ABBA: 0 takes lock 0, 1 takes lock 1, and both wait.
        let m = Arc::new(Program {
            vars: 0,
            locks: 2,
            frames: 0,
            threads: vec![
                vec![Op::Lock(0), Op::Lock(1), Op::Unlock(1), Op::Unlock(0)],
                vec![Op::Lock(1), Op::Lock(0), Op::Unlock(0), Op::Unlock(1)],
            ],
        });
        let r = replay_strict(&m, &Schedule::parse("v1:0.1").unwrap(), false).unwrap();
        assert_eq!(
            r.violation.map(|v| v.kind),
            Some(mmcheck_platform::ViolationKind::Deadlock)
        );
        let e = misfit(&m, "v1:0.1.0x3");
        assert_eq!(e.step, 2);
        assert_eq!(
            e.misfit,
            Misfit::AfterViolation {
                kind: "deadlock".into(),
                steps: 2,
                extra: 3
            }
        );
        assert_eq!(
            e.to_string(),
            "token does not fit at step 2: the execution ended with deadlock after 2 steps, \
             but the token has 3 more steps"
        );
    }

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
        assert_eq!(
            Schedule::parse("v1:0x1000000.1x1000000"),
            Err(TokenError::TooLong)
        );
        let c = Schedule(vec![0, decision(1, 1), decision(1, 1), 1]);
        assert_eq!(c.to_string(), "v1:0.1/1x2.1");
        assert_eq!(Schedule::parse("v1:0.1/1x2.1").unwrap(), c);
        assert!(Schedule::parse("v1:1/32").is_err());
    }

    /// T0 writes 1 or 2 (a choice), T1 reads: every strategy reaches both outcomes, the token
    /// of the second replays to it, and an outcome the step does not have is refused.
    #[test]
    fn choice_outcomes_are_explored_and_replayed() {
        let m = Arc::new(Program {
            vars: 1,
            locks: 0,
            frames: 0,
            threads: vec![vec![Op::WriteEither(0, 1, 2)], vec![Op::Read(0)]],
        });
        let cfg = crate::Config {
            collect_outcomes: true,
            stop_on_violation: false,
            ..crate::Config::default()
        };
        let out = crate::dpor::explore(m.clone(), &cfg);
        assert!(out.complete);
        let (naive, _, _) = crate::toy::naive_outcomes(&m);
        assert_eq!(out.outcomes, naive);
        assert!(naive.iter().any(|o| o.starts_with("2 ")), "{naive:?}");
        assert!(naive.iter().any(|o| o.starts_with("1 ")), "{naive:?}");
        let r = replay_strict(&m, &Schedule::parse("v1:0/1.0.1").unwrap(), false).unwrap();
        assert!(r.finish.unwrap().outcome.starts_with("2 | [] | [2]"));
        assert!(matches!(
            misfit(&m, "v1:0/2").misfit,
            Misfit::NoSuchOutcome { outcome: 2, .. }
        ));
    }
}
