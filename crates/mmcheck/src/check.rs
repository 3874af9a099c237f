//! `mmcheck check`: run every expectation of every scenario (the built-in catalogue, or the given
//! files and directories) under the explorer, and print one row per scenario and variant.
//!
//! The command-line protocol overrides ([`Overrides`]: `--protocol`, `--set`) are shared with
//! `mmcheck replay`, so that the replay command printed for a row reproduces it.

use crate::input::Input;
use mmcheck_explore::report::{json_run, render_run, render_steps};
use mmcheck_explore::schedule::replay_strict;
use mmcheck_explore::shrink::shrink;

/// How many executions shrinking a counterexample may take (a count, not a time, so the printed
/// token does not depend on the machine's load).
const SHRINK_EXECUTIONS: u64 = 50_000;
use mmcheck_explore::{Config, Mode, Model};
use mmcheck_kernel::protocol::{SwitchError, SWITCHES};
use mmcheck_scenario::{KernelModel, Scenario, Verdict};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::{Duration, Instant};

include!(concat!(env!("OUT_DIR"), "/catalogue.rs"));

/// Options of a check run.
#[derive(Clone, Debug)]
pub struct CheckOpts {
    pub mode: Mode,
    pub budget: Duration,
    pub preemptions: Option<u32>,
    /// DPOR with wakeup trees ([`Config::optimal`]).
    pub optimal: bool,
    pub overrides: Overrides,
    pub seed: u64,
    /// Strict mode: report any access to shared state its step did not announce.
    pub strict: bool,
    /// Executions per row at most (`None`: only the time budget).
    pub max_executions: Option<u64>,
    /// Longest execution, in steps; a longer one makes the row inconclusive.
    pub max_steps: usize,
    /// Set on Ctrl-C: rows stop between executions and report `interrupted`.
    pub stop: Option<Arc<AtomicBool>>,
    /// Show every step of a counterexample (no folding of lock and seqcount chatter).
    pub verbose: bool,
    /// Build each counterexample's HTML timeline section (`--html`).
    pub html: bool,
    /// Explore only this part of each row's search (`--shard I/N`; `mmcheck merge` combines).
    pub shard: Option<mmcheck_explore::Shard>,
    /// Worker threads within one row ([`mmcheck_explore::explore_parallel`]).
    pub row_jobs: usize,
}

impl CheckOpts {
    /// The defaults of `mmcheck check` with the given strategy and budget.
    pub fn new(mode: Mode, budget: Duration) -> Self {
        CheckOpts {
            mode,
            budget,
            preemptions: None,
            optimal: false,
            overrides: Overrides::default(),
            seed: 1,
            strict: false,
            max_executions: None,
            max_steps: Config::default().max_steps,
            stop: None,
            verbose: false,
            html: false,
            shard: None,
            row_jobs: 1,
        }
    }
}

/// How a row ended, for the summary and the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The verdict is the expected one.
    Met,
    /// A verdict that is not the expected one: a violation found, or a complete clean.
    Unexpected,
    /// No verdict: a tool limit (budget, step limit, frame pool, preemption bound) came first.
    Inconclusive,
    /// The scenario file or the variant was refused (bad input).
    Error,
    /// The checker itself failed (a panic): a bug of mmcheck.
    InternalError,
    /// Ctrl-C came first.
    Interrupted,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Met => "met",
            Status::Unexpected => "unexpected",
            Status::Inconclusive => "inconclusive",
            Status::Error => "error",
            Status::InternalError => "internal-error",
            Status::Interrupted => "interrupted",
        }
    }
}

/// Exit codes of `check` (and `replay`).
pub mod exit {
    /// Every expectation met.
    pub const OK: u8 = 0;
    /// An unexpected verdict (a violation, or a clean where one was expected).
    pub const UNEXPECTED: u8 = 1;
    /// Bad input: a scenario file, variant, option or token was refused.
    pub const BAD_INPUT: u8 = 2;
    /// No unexpected verdict, but some row hit a tool limit (budget, steps, frames).
    pub const INCONCLUSIVE: u8 = 3;
    /// mmcheck failed (a panic, caught): a bug to report.
    pub const INTERNAL: u8 = 4;
    /// Interrupted by Ctrl-C (128 + SIGINT).
    pub const INTERRUPTED: u8 = 130;
}

/// The exit code of a run: a finding first, then a bug of the tool, bad input, and no verdict.
pub fn exit_code(rows: &[Row], interrupted: bool) -> u8 {
    let any = |st: Status| rows.iter().any(|r| r.status == st);
    if interrupted {
        exit::INTERRUPTED
    } else if any(Status::Unexpected) {
        exit::UNEXPECTED
    } else if any(Status::InternalError) {
        exit::INTERNAL
    } else if any(Status::Error) {
        exit::BAD_INPUT
    } else if any(Status::Inconclusive) {
        exit::INCONCLUSIVE
    } else {
        exit::OK
    }
}

/// The command-line protocol overrides: `--protocol PRESET`, then each `--set switch=value` in
/// order. Applied to the scenario before its variant's own settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub protocol: Option<String>,
    pub sets: Vec<(String, String)>,
    /// `--mutate SITE`: run every scenario as that mutant (see [`mmcheck_platform::mutate`]).
    pub mutate: Option<mmcheck_platform::SiteKey>,
}

impl Overrides {
    pub fn is_empty(&self) -> bool {
        self.protocol.is_none() && self.sets.is_empty() && self.mutate.is_none()
    }

    /// `protocol=PRESET` and `switch=value`, in the order applied (the JSON `overrides` field).
    pub fn labels(&self) -> Vec<String> {
        let p = self.protocol.iter().map(|p| format!("protocol={p}"));
        p.chain(self.sets.iter().map(|(k, v)| format!("{k}={v}")))
            .chain(self.mutate.iter().map(|m| format!("mutate={m}")))
            .collect()
    }

    /// The command-line flags that give these overrides again (` --protocol P --set a=b`).
    pub fn flags(&self) -> String {
        let mut out = String::new();
        if let Some(p) = &self.protocol {
            out.push_str(&format!(" --protocol {}", shell_word(p)));
        }
        for (k, v) in &self.sets {
            out.push_str(&format!(" --set {}", shell_word(&format!("{k}={v}"))));
        }
        if let Some(m) = &self.mutate {
            out.push_str(&format!(" --mutate {}", shell_word(&m.to_string())));
        }
        out
    }
}

/// `s` as one shell word: as it is when that is safe, single-quoted otherwise.
pub fn shell_word(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// One row of the result table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The scenario's name.
    pub scenario: String,
    /// The scenario file (or `builtin:NAME`), for `mmcheck replay`.
    pub file: String,
    pub variant: String,
    /// The command-line overrides the row ran under ([`Overrides::labels`]).
    pub overrides: Vec<String>,
    pub expected: String,
    /// `clean`, a violation kind, `inconclusive`, `error`, `internal-error` or `interrupted`.
    pub verdict: String,
    pub status: Status,
    pub met: bool,
    pub complete: bool,
    pub strategy: String,
    pub executions: u64,
    pub elapsed_ms: u128,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The tool limit that made the row inconclusive, and how to raise it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<Vec<mmcheck_explore::report::JsonStep>>,
    #[serde(skip)]
    pub text_trace: Option<String>,
    /// The counterexample's section of the HTML timeline (with `--html`).
    #[serde(skip)]
    pub html: Option<String>,
    /// The row's reach expectations and what the search found for each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reach: Vec<ReachRow>,
    /// Executions per final outcome (what each thread's operations returned), most frequent
    /// first, as herd7 lists final states.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outcomes: Vec<OutcomeCount>,
    /// A variant row whose exploration ran exactly the executions of its scenario's base row:
    /// its settings change nothing this scenario reaches.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub same_as_base: bool,
    /// The hash of the executions explored (see `mmcheck_explore::Outcome::fingerprint`).
    #[serde(skip)]
    pub fingerprint: u64,
    /// The part of the search this row explored (`--shard I/N`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
}

/// One `expect reach` line of a row, and its evidence.
#[derive(Clone, Debug, Serialize)]
pub struct ReachRow {
    /// The pattern as written.
    pub pattern: String,
    /// Executions that reached it.
    pub executions: u64,
    pub met: bool,
    /// The first execution that reached it, as a replay token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
}

/// A final outcome and how many executions ended in it.
#[derive(Clone, Debug, Serialize)]
pub struct OutcomeCount {
    pub outcome: String,
    pub executions: u64,
}

/// Mark the variant rows that explored exactly their base row's executions (both complete, same
/// count, same fingerprint).
pub fn mark_same_as_base(rows: &mut [Row]) {
    let bases: Vec<(String, u64, u64)> = rows
        .iter()
        .filter(|r| r.variant == "base" && r.complete && r.fingerprint != 0)
        .map(|r| (r.file.clone(), r.executions, r.fingerprint))
        .collect();
    for r in rows
        .iter_mut()
        .filter(|r| r.variant != "base" && r.complete)
    {
        r.same_as_base = bases
            .iter()
            .any(|(f, n, fp)| *f == r.file && *n == r.executions && *fp == r.fingerprint);
    }
}

/// Load the scenarios of `paths` (files or directories of `.mmt`), or the catalogue if none.
/// A file that is refused does not stop the others: it is an [`Input::Refused`].
pub fn load(paths: &[String]) -> Vec<Input> {
    if !paths.is_empty() {
        return crate::input::gather(paths);
    }
    let mut out = Vec::new();
    for (name, text) in CATALOGUE {
        let file = format!("scenarios/{name}");
        out.push(match mmcheck_scenario::parse::parse_scenario(&file, text) {
            Ok(s) => Input::Loaded {
                file,
                scenario: Arc::new(s),
            },
            Err(e) => Input::Refused {
                file,
                error: e.render(),
            },
        });
    }
    out.push(Input::Loaded {
        file: "builtin:reference".to_string(),
        scenario: Arc::new(mmcheck_scenario::catalogue::reference()),
    });
    out
}

/// Apply the command-line protocol overrides to a scenario: `--protocol` replaces the scenario's
/// own protocol (its `protocol` and `set` lines), then each `--set` is applied.
pub fn apply_overrides(s: &Scenario, o: &Overrides) -> Result<Scenario, SwitchError> {
    let mut s = s.clone();
    if let Some(p) = &o.protocol {
        let keep = (
            s.protocol.inline_rcu_callbacks,
            s.protocol.fault_around_pages,
        );
        s.protocol = mmcheck_kernel::Protocol::preset(p)?;
        (
            s.protocol.inline_rcu_callbacks,
            s.protocol.fault_around_pages,
        ) = keep;
    }
    for (k, v) in &o.sets {
        s.protocol.set(k, v)?;
    }
    if o.mutate.is_some() {
        s.mutate.clone_from(&o.mutate);
    }
    Ok(s)
}

/// The scenario's own switch settings (those away from the defaults) that `--protocol` replaced
/// and no `--set` gave back, as `switch own -> now`; empty without `--protocol`. `overridden` is
/// `apply_overrides(own, o)`.
pub fn replaced_settings(own: &Scenario, overridden: &Scenario, o: &Overrides) -> Vec<String> {
    if o.protocol.is_none() {
        return Vec::new();
    }
    SWITCHES
        .iter()
        .filter_map(|sw| {
            let (mine, now) = (sw.get(&own.protocol), sw.get(&overridden.protocol));
            (mine != sw.default_value() && mine != now)
                .then(|| format!("{} {mine} -> {now}", sw.name))
        })
        .collect()
}

/// The one-line warning for [`replaced_settings`], if any were.
pub fn replaced_warning(
    file: &str,
    own: &Scenario,
    overridden: &Scenario,
    o: &Overrides,
) -> Option<String> {
    let p = o.protocol.as_deref()?;
    let lost = replaced_settings(own, overridden, o);
    if lost.is_empty() {
        return None;
    }
    // One line: the first few settings, then a count.
    const SHOWN: usize = 4;
    let mut what = lost
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if lost.len() > SHOWN {
        what.push_str(&format!(" and {} more", lost.len() - SHOWN));
    }
    Some(format!(
        "warning: --protocol {p} replaces the protocol of {} ({file}): {what}",
        own.name
    ))
}

/// The `mmcheck replay` command that reproduces a row's counterexample.
pub fn replay_command(row: &Row, o: &Overrides) -> Option<String> {
    let token = row.schedule.as_deref()?;
    Some(format!(
        "mmcheck replay {} --variant {}{} --schedule {}",
        shell_word(&row.file),
        shell_word(&row.variant),
        o.flags(),
        shell_word(token)
    ))
}

fn strategy(opts: &CheckOpts) -> String {
    let base = match opts.mode {
        Mode::Dpor => "dpor".to_string(),
        Mode::Random => "random".to_string(),
        Mode::Pct { depth } => format!("pct(d={depth})"),
    };
    match opts.preemptions {
        Some(b) => format!("{base}, pb={b}"),
        None => base,
    }
}

/// A row that did not run: `status` with `message` (a refused file, a caught panic).
pub fn failed_row(
    file: &str,
    scenario: &str,
    variant: Option<&str>,
    expected: &str,
    status: Status,
    message: String,
    opts: &CheckOpts,
) -> Row {
    Row {
        verdict: status.name().to_string(),
        status,
        message: Some(message),
        ..blank_row(file, scenario, variant, expected, opts)
    }
}

/// A row before it runs: no verdict yet.
fn blank_row(
    file: &str,
    scenario: &str,
    variant: Option<&str>,
    expected: &str,
    opts: &CheckOpts,
) -> Row {
    Row {
        shard: opts.shard.map(|s| s.to_string()),
        ..Row::new(
            scenario,
            file,
            variant.unwrap_or("base"),
            opts.overrides.labels(),
            expected,
            strategy(opts),
        )
    }
}

impl Row {
    /// A row with no verdict, no figures and no evidence yet.
    pub fn new(
        scenario: &str,
        file: &str,
        variant: &str,
        overrides: Vec<String>,
        expected: &str,
        strategy: String,
    ) -> Row {
        Row {
            scenario: scenario.to_string(),
            file: file.to_string(),
            variant: variant.to_string(),
            overrides,
            expected: expected.to_string(),
            verdict: String::new(),
            status: Status::Unexpected,
            met: false,
            complete: false,
            strategy,
            executions: 0,
            elapsed_ms: 0,
            schedule: None,
            message: None,
            limit: None,
            trace: None,
            text_trace: None,
            html: None,
            reach: Vec::new(),
            outcomes: Vec::new(),
            same_as_base: false,
            fingerprint: 0,
            shard: None,
        }
    }
}

/// Run one expectation. `progress`, if given, follows the executions run so far.
pub fn run_row(
    file: &str,
    s: &Scenario,
    variant: Option<&str>,
    expected: &Verdict,
    opts: &CheckOpts,
    progress: Option<Arc<AtomicU64>>,
) -> Row {
    let start = Instant::now();
    let mut row = blank_row(file, &s.name, variant, &expected.to_string(), opts);
    let sv = match s.with_variant(variant) {
        Ok(sv) => sv,
        Err(e) => {
            row.verdict = "error".into();
            row.status = Status::Error;
            row.message = Some(e.to_string());
            return row;
        }
    };
    let model = Arc::new(KernelModel::new(sv).with_strict(opts.strict));
    // An `init` that fails leaves nothing to explore: bad input, not a violation.
    if let Some(e) = model.setup_error() {
        row.verdict = "error".into();
        row.status = Status::Error;
        row.message = Some(format!("init fails: {e}"));
        return row;
    }
    let cfg = Config {
        mode: opts.mode,
        budget: Some(opts.budget),
        preemption_bound: opts.preemptions,
        optimal: opts.optimal,
        seed: opts.seed,
        max_executions: opts.max_executions,
        max_steps: opts.max_steps,
        stop: opts.stop.clone(),
        progress,
        count_outcomes: true,
        // Several DPOR workers in a row hand subtrees off as timing allows: the order of the
        // executions, which the fingerprint hashes, is then not the row's own.
        fingerprint: !s.variants.is_empty() && opts.row_jobs <= 1,
        shard: opts.shard,
        ..Config::default()
    };
    let out = mmcheck_explore::explore_parallel(model.clone(), &cfg, opts.row_jobs);
    row.executions = out.executions;
    row.complete = out.complete;
    row.fingerprint = out.fingerprint;
    let mut outcomes: Vec<OutcomeCount> = out
        .outcome_counts
        .iter()
        .map(|(o, &n)| OutcomeCount {
            outcome: o.trim_end_matches([' ', ';']).to_string(),
            executions: n,
        })
        .collect();
    outcomes.sort_by(|a, b| {
        b.executions
            .cmp(&a.executions)
            .then(a.outcome.cmp(&b.outcome))
    });
    row.outcomes = outcomes;
    let index = s.reach_spec().1;
    row.reach = s
        .reach
        .iter()
        .zip(index)
        .filter(|(r, _)| r.variant.as_deref() == variant)
        .map(|(r, i)| {
            let hit = out.reach.get(i).cloned().unwrap_or_default();
            ReachRow {
                pattern: r.text.clone(),
                executions: hit.executions,
                met: hit.executions > 0,
                schedule: hit.first.map(|s| s.to_string()),
            }
        })
        .collect();
    let found = match (&out.counterexample, out.lock_inversions.first()) {
        (Some(cx), _) => Some(cx.violation.kind),
        (None, Some(_)) => Some(mmcheck_platform::ViolationKind::LockOrder),
        (None, None) => None,
    };
    row.verdict = match found {
        Some(k) => k.name().to_string(),
        None => "clean".to_string(),
    };
    row.met = match (expected, found) {
        (Verdict::Clean, None) => out.complete || opts.mode != Mode::Dpor,
        (Verdict::Violation(k), Some(f)) => *k == f,
        _ => false,
    };
    row.status = if row.met {
        Status::Met
    } else {
        Status::Unexpected
    };
    if found.is_none() {
        // No finding: a verdict only if the search was complete (or, for the random strategies,
        // a clean expectation that held for the whole budget).
        let n = out.executions;
        let why = if out.interrupted {
            Some((Status::Interrupted, "interrupted".to_string(), None))
        } else if let Some(inc) = &out.inconclusive {
            // Who took the steps: one thread with a long program, or several retrying (a
            // livelock)? The schedule that hit the limit is printed for replay.
            let mut per = vec![0usize; model.threads()];
            for &t in &inc.schedule.0 {
                if let Some(c) = per.get_mut(t as usize) {
                    *c += 1;
                }
            }
            let who: Vec<String> = per
                .iter()
                .enumerate()
                .filter(|(_, &c)| c > 0)
                .map(|(t, c)| format!("{} {c}", model.thread_name(t)))
                .collect();
            row.schedule = Some(inc.schedule.to_string());
            Some((
                Status::Inconclusive,
                format!(
                    "{} after {n} executions; steps by thread: {}",
                    inc.limit,
                    who.join(", ")
                ),
                Some(format!("{}; {}", inc.limit, inc.limit.how_to_raise())),
            ))
        } else if out.budget_exhausted && !row.met {
            let raise = match opts.max_executions {
                Some(m) if n >= m => format!("raise --max-executions (now {m})"),
                _ => format!("raise --budget (now {} s)", opts.budget.as_secs_f64()),
            };
            let msg = format!("budget exhausted after {n} executions");
            Some((
                Status::Inconclusive,
                msg.clone(),
                Some(format!("{msg}; {raise}")),
            ))
        } else if !row.met && !out.complete {
            let b = opts.preemptions.unwrap_or(0);
            Some((
                Status::Inconclusive,
                format!("clean within {b} preemptions, not complete"),
                Some(format!(
                    "preemption bound {b}: raise --preemptions, or drop it for a complete search"
                )),
            ))
        } else {
            None
        };
        if let Some((status, msg, limit)) = why {
            row.status = status;
            row.verdict = status.name().to_string();
            row.met = false;
            row.message = Some(msg);
            row.limit = limit;
            row.elapsed_ms = start.elapsed().as_millis();
            return row;
        }
    }
    // A clean verdict is only evidence if its window was reached.
    if found.is_none() && row.met {
        if let Some(miss) = row.reach.iter().find(|r| !r.met) {
            let n = out.executions;
            row.met = false;
            if out.complete {
                row.status = Status::Unexpected;
                row.verdict = "unreached".into();
                row.message = Some(format!(
                    "clean, but no execution of the complete search ({n}) reaches: {}",
                    miss.pattern
                ));
            } else {
                row.status = Status::Inconclusive;
                row.verdict = Status::Inconclusive.name().to_string();
                let msg = format!("clean, but {n} executions did not reach: {}", miss.pattern);
                row.limit = Some(format!(
                    "{msg}; raise --budget (now {} s) or use --mode dpor",
                    opts.budget.as_secs_f64()
                ));
                row.message = Some(msg);
            }
        }
    }
    if let Some(cx) = &out.counterexample {
        let small = shrink(&model, cx, SHRINK_EXECUTIONS);
        // The token is printed for `mmcheck replay`: replay it as that command does.
        match replay_strict(&model, &small.schedule, true) {
            Ok(r) if r.violation.as_ref().map(|v| v.kind) == Some(small.violation.kind) => {
                let names: Vec<String> =
                    (0..model.threads()).map(|t| model.thread_name(t)).collect();
                row.text_trace = Some(render_run(&names, &r, opts.verbose));
                row.trace = Some(json_run(&r));
                row.schedule = Some(small.schedule.to_string());
                // The replay's own words: objects named as the kernel names them.
                let v = r.violation.as_ref().unwrap_or(&small.violation);
                row.message = Some(v.to_string());
                if opts.html {
                    let title = format!("{} / {}", row.scenario, row.variant);
                    let replay = replay_command(&row, &opts.overrides).unwrap_or_default();
                    row.html = Some(mmcheck_explore::html::section(&title, &names, &r, &replay));
                }
            }
            // Never expected (executions are deterministic); an error rather than a bad token.
            other => {
                let why = match other {
                    Ok(r) => format!(
                        "it replays to {}",
                        r.violation
                            .map_or("clean".into(), |v| v.kind.name().to_string())
                    ),
                    Err(e) => e.to_string(),
                };
                row.verdict = "internal-error".into();
                row.status = Status::InternalError;
                row.met = false;
                row.message = Some(format!(
                    "{}; its schedule {} does not replay: {why}",
                    small.violation, small.schedule
                ));
            }
        }
    } else if let Some(inv) = out.lock_inversions.first() {
        row.message = Some(format!("lock-order inversion: {inv}"));
        // Both halves, each replayed from its own token (lockdep reports both chains).
        let names: Vec<String> = (0..model.threads()).map(|t| model.thread_name(t)).collect();
        let mut text = String::new();
        for (what, e) in [
            (format!("{} then {}", inv.a, inv.b), &inv.first),
            (format!("{} then {}", inv.b, inv.a), &inv.second),
        ] {
            let r = mmcheck_explore::schedule::replay(&model, &e.schedule, true);
            let upto = r.trace.len().min(e.schedule.len());
            text.push_str(&format!(
                "-- {what}: {} at step {} --\n",
                model.thread_name(e.thread),
                e.step
            ));
            let none = mmcheck_explore::report::Slice::default();
            text.push_str(&render_steps(&names, &r, &none, upto, opts.verbose));
            let replay = format!(
                "mmcheck replay {}{} --variant {} --schedule {}",
                row.file,
                opts.overrides.flags(),
                variant.unwrap_or("base"),
                e.schedule
            );
            text.push_str(&format!("replay: {replay}\n"));
            if opts.html {
                let title = format!("{} / {}: {what}", row.scenario, row.variant);
                let sec = mmcheck_explore::html::section(&title, &names, &r, &replay);
                row.html.get_or_insert_with(String::new).push_str(&sec);
            }
        }
        row.text_trace = Some(text);
    }
    row.elapsed_ms = start.elapsed().as_millis();
    row
}
