//! The explorer: turns a model into verdicts by running its threads as coroutines on one OS
//! thread, with every visible operation of the platform layer as a scheduling point and every
//! blocking wait as an enabledness condition.
//!
//! Strategies: exhaustive source-DPOR with sleep sets (Abdulla, Aronis, Jonsson, Sagonas, POPL
//! 2014), optionally preemption-bounded, or Optimal-DPOR with wakeup trees ([`odpor`]); uniform random and PCT (Burckhardt et al., ASPLOS 2010);
//! replay of a schedule token; shrinking of a counterexample to the fewest preemptions, then the
//! fewest steps. Lock order is tracked across every explored execution, lockdep-style.
//!
//! The explorer is generic: it knows objects and access kinds ([`mmcheck_platform::Event`]), not
//! page tables. loom and shuttle were considered and not used: loom's DPOR is slow at this size and
//! has open soundness issues, shuttle has no partial-order reduction, and neither models RCU, IRQ-off,
//! IPIs or TLBs, which here are just more objects.

pub mod allocs;
pub mod deps;
pub mod dpor;
pub mod exec;
pub mod html;
pub mod lockdep;
pub mod naive;
pub mod odpor;
pub mod parallel;
pub mod random;
pub mod reach;
pub mod report;
pub mod schedule;
pub mod shrink;
pub mod toy;

use mmcheck_platform::{Backend, Limit, Machine, Violation};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use exec::{Halt, Site, Step, MAX_THREADS};
pub use parallel::explore_parallel;
pub use schedule::Schedule;

/// What the explorer runs: a factory of fresh instances and the bodies of their threads.
pub trait Model: 'static {
    /// One fresh system: a machine (built on the backend the explorer hands in) plus state.
    type Instance: 'static;

    /// Build a fresh instance in its initial state. Setup runs outside any coroutine: visible
    /// operations are not scheduling points and must not block.
    fn build(&self, backend: Box<dyn Backend>) -> Self::Instance;

    /// A copy of `template` (an instance [`Model::build`] made, on which nothing ran) on
    /// `backend`, the same in every respect as a new `build` would make it: the explorer builds
    /// one instance per search and restores it for each execution instead of re-running the
    /// set-up. `None` (the default): not supported, every execution builds.
    fn restore(
        &self,
        _template: &Self::Instance,
        _backend: Box<dyn Backend>,
    ) -> Option<Self::Instance> {
        None
    }

    /// [`Model::restore`] into `old`, an instance of the previous execution that is done with,
    /// reusing what it can of it (its allocations). The default drops `old` and restores.
    fn recycle(
        &self,
        template: &Self::Instance,
        old: Self::Instance,
        backend: Box<dyn Backend>,
    ) -> Option<Self::Instance> {
        drop(old);
        self.restore(template, backend)
    }

    /// The instance's machine (for traces).
    fn machine<'a>(&self, inst: &'a Self::Instance) -> &'a Machine;

    /// Number of simulated threads; thread `t` runs on CPU `t`.
    fn threads(&self) -> usize;

    /// A daemon thread (the RCU callback thread) need not finish for an execution to end.
    fn is_daemon(&self, _t: usize) -> bool {
        false
    }

    /// A short name for thread `t` in traces.
    fn thread_name(&self, t: usize) -> String {
        format!("T{t}")
    }

    /// Strict mode: every touch of shared state must be covered by the event its step announced
    /// (see [`mmcheck_platform::event::covers`]); an uncovered touch is an `unannounced-access`
    /// violation naming the object and the code location.
    fn strict(&self) -> bool {
        false
    }

    /// Reach patterns to evaluate on every execution (see [`reach`]); none by default.
    fn reach(&self) -> &reach::Spec {
        &reach::NONE
    }

    /// The body of thread `t`.
    fn run(&self, inst: &Self::Instance, t: usize);

    /// After every non-daemon thread finished: final checks (quiescent invariants, leaks) and a
    /// summary of the final state (compared across strategies by the explorer's own tests).
    fn finish(&self, inst: &Self::Instance) -> Finish;
}

/// What [`Model::finish`] found.
#[derive(Clone, Debug, Default)]
pub struct Finish {
    pub violations: Vec<Violation>,
    pub outcome: String,
}

/// Which strategy to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Dpor,
    Random,
    Pct { depth: u32 },
}

/// Limits of an exploration.
#[derive(Clone, Debug)]
pub struct Config {
    pub mode: Mode,
    /// Wall-clock budget; `None` for no limit.
    pub budget: Option<Duration>,
    /// Maximum executions; `None` for no limit.
    pub max_executions: Option<u64>,
    /// Preemption bound for DPOR (`None`: unbounded).
    pub preemption_bound: Option<u32>,
    /// Seed for random and PCT.
    pub seed: u64,
    /// Stop at the first violating execution.
    pub stop_on_violation: bool,
    /// Longest execution, in steps, before it is cut off as a livelock.
    pub max_steps: usize,
    /// Collect the outcome of every execution (the explorer's own differential test).
    pub collect_outcomes: bool,
    /// Count executions per final outcome ([`Outcome::outcome_counts`]).
    pub count_outcomes: bool,
    /// Hash every execution into [`Outcome::fingerprint`].
    pub fingerprint: bool,
    /// Collect the sites of every step into [`Outcome::coverage`] (`mmcheck fuzz`'s feedback).
    pub coverage: bool,
    /// Set from outside (Ctrl-C) to stop between executions; the outcome is then `interrupted`.
    pub stop: Option<Arc<AtomicBool>>,
    /// Executions so far, published after each one (a progress display reads it).
    pub progress: Option<Arc<AtomicU64>>,
    /// Explore only this shard's part of the search ([`Shard`]).
    pub shard: Option<Shard>,
    /// DPOR with wakeup trees (Optimal-DPOR, [`odpor`]) instead of source-DPOR's backtrack sets.
    pub optimal: bool,
    /// Collect the equivalence class of every execution that ran to its end or to a violation
    /// into [`Outcome::classes`] (the explorer's self-checks; it computes every step's clock).
    pub classes: bool,
}

/// One of `count` deterministic parts of a search (`--shard INDEX/COUNT`, 1-based on the command
/// line). DPOR: the first [`Shard::split_depth`] steps are explored with every enabled thread
/// (a trivially sufficient backtrack set), and each resulting prefix belongs to one shard by a
/// hash of its decisions; a shard explores, with ordinary DPOR, only the subtrees below its own
/// prefixes. The union of the shards is a sound and complete search, and a shard is `complete`
/// when its own subtrees are. Random and PCT: each shard draws from its own seed and runs its
/// share of the executions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// 0-based.
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// How deep the fully expanded top of a DPOR search goes: enough prefixes to spread over
    /// `count` shards.
    pub fn split_depth(self) -> usize {
        2 + (u32::BITS - self.count.saturating_sub(1).leading_zeros()) as usize
    }

    /// Whether the execution prefix `decisions` (threads and choice outcomes) is this shard's.
    pub fn owns(self, decisions: impl Iterator<Item = u8>) -> bool {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for d in decisions {
            h ^= u64::from(d);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h % u64::from(self.count) == u64::from(self.index)
    }

    /// The seed of this shard's random or PCT executions.
    pub fn seed(self, seed: u64) -> u64 {
        if self.count <= 1 {
            seed
        } else {
            seed ^ (u64::from(self.index) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        }
    }

    /// This shard's part of `n` executions.
    pub fn executions(self, n: u64) -> u64 {
        let c = u64::from(self.count);
        n / c + u64::from(u64::from(self.index) < n % c)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `I/N` with `1 <= I <= N`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a shard: expected I/N with 1 <= I <= N, e.g. 1/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (i, n): (u32, u32) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if i == 0 || n == 0 || i > n || n > 4096 {
            return Err(bad());
        }
        Ok(Shard {
            index: i - 1,
            count: n,
        })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index + 1, self.count)
    }
}

impl Config {
    /// True once [`Config::stop`] was set.
    pub fn interrupted(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }

    fn note_progress(&self, executions: u64) {
        if let Some(p) = &self.progress {
            p.store(executions, Ordering::Relaxed);
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Dpor,
            budget: None,
            max_executions: None,
            preemption_bound: None,
            seed: 0,
            stop_on_violation: true,
            max_steps: 20_000,
            collect_outcomes: false,
            count_outcomes: false,
            fingerprint: false,
            coverage: false,
            stop: None,
            progress: None,
            shard: None,
            optimal: false,
            classes: false,
        }
    }
}

/// A violating execution: the violation and the schedule that reproduces it.
#[derive(Clone, Debug)]
pub struct Counterexample {
    pub violation: Violation,
    pub schedule: Schedule,
    /// Steps and preemptions of the schedule.
    pub steps: usize,
    pub preemptions: usize,
}

/// The result of an exploration.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub executions: u64,
    /// DPOR: executions cut short because every enabled thread was in the sleep set (each is
    /// equivalent to an explored one). `executions - sleep_blocked` complete executions are
    /// distinct Mazurkiewicz traces; an optimal DPOR would run no blocked ones.
    pub sleep_blocked: u64,
    pub steps: u64,
    /// True only when the whole space (under the bound, if none was pruned) was explored.
    pub complete: bool,
    pub counterexample: Option<Counterexample>,
    /// Every distinct final outcome seen (only with `collect_outcomes`).
    pub outcomes: std::collections::BTreeSet<String>,
    /// Executions per final outcome, herd7's state counts (only with `count_outcomes`).
    pub outcome_counts: std::collections::BTreeMap<String, u64>,
    /// Per reach pattern of the model: the executions that reached it.
    pub reach: Vec<reach::Hit>,
    /// The executions explored, hashed in order (only with `Config::fingerprint`): two
    /// explorations with the same fingerprint ran the same decisions and events.
    pub fingerprint: u64,
    /// The kind of every violation of every execution run (all of `Finish::violations`), for
    /// comparing strategies; lock-order inversions are in `lock_inversions`.
    pub violation_kinds: std::collections::BTreeSet<mmcheck_platform::ViolationKind>,
    /// Lock-order inversions seen across executions (lockdep).
    pub lock_inversions: Vec<lockdep::LockInversion>,
    /// The search stopped at a tool limit (not a verdict): which, and the execution that hit it.
    pub inconclusive: Option<Inconclusive>,
    /// The search stopped because [`Config::stop`] was set.
    pub interrupted: bool,
    /// The search stopped at the time budget or the execution limit.
    pub budget_exhausted: bool,
    pub elapsed: Duration,
    /// The sites of every step of every execution (only with [`Config::coverage`]).
    pub coverage: std::collections::BTreeSet<exec::Site>,
    /// The equivalence classes ([`exec::Exec::class`]) of the executions that ran to their end
    /// or to a violation (only with [`Config::classes`]). A complete DPOR search holds every
    /// class another strategy can reach.
    pub classes: std::collections::BTreeSet<u64>,
}

impl Outcome {
    /// Account one finished execution: its reach bits, fingerprint and final outcome.
    pub(crate) fn account(
        &mut self,
        cfg: &Config,
        patterns: usize,
        reached: u64,
        fingerprint: u64,
        finish: Option<&Finish>,
        schedule: impl FnOnce() -> Schedule,
    ) {
        if self.reach.len() < patterns {
            self.reach.resize(patterns, reach::Hit::default());
        }
        let mut schedule = Some(schedule);
        let mut first: Option<Schedule> = None;
        for (p, hit) in self.reach.iter_mut().enumerate() {
            if reached & (1 << p) != 0 {
                hit.executions += 1;
                if hit.first.is_none() {
                    if first.is_none() {
                        first = schedule.take().map(|f| f());
                    }
                    hit.first = first.clone();
                }
            }
        }
        if cfg.fingerprint {
            use std::hash::{Hash, Hasher};
            let mut h = std::hash::DefaultHasher::new();
            (fingerprint, finish.map(|f| &f.outcome)).hash(&mut h);
            self.fingerprint = self.fingerprint.rotate_left(7) ^ h.finish();
        }
        if let Some(f) = finish {
            if cfg.collect_outcomes && !self.outcomes.contains(&f.outcome) {
                self.outcomes.insert(f.outcome.clone());
            }
            if cfg.count_outcomes {
                // Most executions end in an outcome already seen: no allocation for those.
                match self.outcome_counts.get_mut(&f.outcome) {
                    Some(n) => *n += 1,
                    None => {
                        self.outcome_counts.insert(f.outcome.clone(), 1);
                    }
                }
            }
        }
    }
}

/// An execution that ran into a tool limit.
#[derive(Clone, Debug)]
pub struct Inconclusive {
    pub limit: Limit,
    /// The schedule up to the point where the limit was hit.
    pub schedule: Schedule,
}

/// Explore `model` with `cfg`.
pub fn explore<M: Model>(model: std::sync::Arc<M>, cfg: &Config) -> Outcome {
    match cfg.mode {
        Mode::Dpor if cfg.optimal => odpor::explore(model, cfg),
        Mode::Dpor => dpor::explore(model, cfg),
        Mode::Random | Mode::Pct { .. } => random::explore(model, cfg),
    }
}
