//! `mmcheck fuzz --planted`: how well the fuzzer finds the bugs the catalogue plants.
//!
//! Every `variant` of a catalogue scenario that expects a violation plants a bug: its protocol
//! (the file's preset and `set` lines, then the variant's settings) is a *mutant*. Mutants with
//! the same protocol are one. Each is fuzzed from scratch ([`crate::fuzz::run`], no catalogue
//! scenario used) with a budget of its own, stopping at the first violation that the *base* (the
//! protocol closest to the mutant among those its file expects clean: the file's own, or a clean
//! variant) does not also give on the same shrunk scenario: a violation the base gives too is a
//! model false alarm or a bug of the base, no evidence of the planted one. The result is a row per mutant: found or not, the
//! violation, the time and the scenario index it took.
//!
//! Deterministic for a seed when the runs are bounded by `--scenarios` (the time budget decides
//! only where a run stops).

use crate::check::Overrides;
use crate::fuzz::{self, FuzzOpts};
use crate::input::{gather, Input};
use mmcheck_kernel::protocol::{PRESETS, SWITCHES};
use mmcheck_kernel::Protocol;
use mmcheck_platform::ViolationKind;
use mmcheck_scenario::Verdict;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A planted mutant: a protocol some catalogue variant expects a violation under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mutant {
    /// The variant's settings that the base does not have, as `switch=value` (its name here).
    pub change: Vec<String>,
    /// The whole protocol, as the switches away from the 2026 defaults.
    pub protocol: Vec<(String, String)>,
    /// The base: the protocol closest to the mutant that its file expects clean (of the file
    /// closest to it when several plant it).
    pub base: Vec<(String, String)>,
    /// `FILE:VARIANT` of every variant planting it, and the violation each expects.
    pub sources: Vec<(String, String)>,
}

/// The switches of `p` away from the defaults, in table order.
fn settings(p: &Protocol) -> Vec<(String, String)> {
    let d = Protocol::default();
    SWITCHES
        .iter()
        .filter(|sw| sw.get(p) != sw.get(&d))
        .map(|sw| (sw.name.to_string(), sw.get(p).to_string()))
        .collect()
}

/// How many switches differ between two settings lists.
fn distance(a: &[(String, String)], b: &[(String, String)]) -> usize {
    let only = |x: &[(String, String)], y: &[(String, String)]| {
        x.iter()
            .filter(|(k, v)| !y.iter().any(|(k2, v2)| k2 == k && v2 == v))
            .count()
    };
    only(a, b) + only(b, a)
}

/// The settings of `mutant` that `base` does not have (a switch back at its default is written
/// with its default value).
fn change(mutant: &[(String, String)], base: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<String> = mutant
        .iter()
        .filter(|s| !base.contains(s))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for (k, _) in base {
        if !mutant.iter().any(|(k2, _)| k2 == k) {
            let d = SWITCHES
                .iter()
                .find(|sw| sw.name == k)
                .map_or("?", |sw| sw.default_value());
            out.push(format!("{k}={d}"));
        }
    }
    out
}

/// The planted mutants of the scenarios under `paths` (files or directories), de-duplicated, in
/// the order their first variant appears. Files that do not load are an error.
pub fn mutants(paths: &[String]) -> Result<Vec<Mutant>, String> {
    let mut out: Vec<Mutant> = Vec::new();
    for input in gather(paths) {
        let (file, s) = match input {
            Input::Loaded { file, scenario } => (file, scenario),
            Input::Refused { error, .. } => return Err(error.trim_end().to_string()),
        };
        // The protocols of this file expected clean: the file's own and its clean variants.
        let mut clean = Vec::new();
        for e in s.expect.iter().filter(|e| e.verdict == Verdict::Clean) {
            let p = s
                .variant_protocol(e.variant.as_deref())
                .map_err(|e| e.to_string())?;
            clean.push(settings(&p));
        }
        for e in &s.expect {
            let (Some(v), Verdict::Violation(kind)) = (&e.variant, &e.verdict) else {
                continue;
            };
            let p = s.variant_protocol(Some(v)).map_err(|e| e.to_string())?;
            let protocol = settings(&p);
            // The base: the clean protocol closest to the mutant (the file's own when none is).
            let base = clean
                .iter()
                .min_by_key(|c| distance(&protocol, c))
                .cloned()
                .unwrap_or_else(|| settings(&s.protocol));
            let source = (format!("{file}:{v}"), kind.to_string());
            match out.iter_mut().find(|m| m.protocol == protocol) {
                Some(m) => {
                    m.sources.push(source);
                    if distance(&protocol, &base) < distance(&protocol, &m.base) {
                        m.change = change(&protocol, &base);
                        m.base = base.clone();
                    }
                }
                None => out.push(Mutant {
                    change: change(&protocol, &base),
                    protocol,
                    base: base.clone(),
                    sources: vec![source],
                }),
            }
        }
    }
    Ok(out)
}

/// How to sweep.
#[derive(Clone, Debug)]
pub struct SweepOpts {
    pub seed: u64,
    /// Budget of each mutant's run.
    pub budget_each: Duration,
    /// Scenarios of each mutant's run (a sweep of a fixed length on any machine).
    pub scenarios_each: Option<u64>,
    pub executions: u64,
    /// Mutants whose change or sources contain one of these (all when empty).
    pub filter: Vec<String>,
    /// Mutants whose change or sources contain one of these are left out.
    pub exclude: Vec<String>,
    /// Where each run writes its scenarios (a directory per mutant, numbered).
    pub out: PathBuf,
    pub stop: Arc<AtomicBool>,
    /// Favour the scenarios that run the mutant's changed code ([`FuzzOpts::directed`]).
    pub directed: bool,
}

/// One mutant's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub mutant: Mutant,
    /// Found: a violation the base does not give on the same scenario.
    pub found: bool,
    /// The violation found (kind and detecting function), if any.
    pub violation: Option<String>,
    /// The violation the catalogue expects (of its first source).
    pub expected: String,
    /// Seconds and scenario index to the violation (first detection, before shrinking).
    pub seconds: Option<f64>,
    pub scenario: Option<u64>,
    pub file: Option<String>,
    pub token: Option<String>,
    /// Violations also on the base protocol (not counted), before and after shrinking.
    pub also_on_base: u64,
    /// Their kinds and detecting functions, with the scenario index of the first.
    pub on_base_kinds: Vec<(String, u64)>,
    /// The run's figures.
    pub scenarios_run: u64,
    /// Scenarios that ran the planted change's code (their events differ from the base's).
    pub reached_change: u64,
    pub executions: u64,
    pub elapsed: f64,
    pub seed: u64,
}

/// A violation's kind and the kernel function that detected it (none for a deadlock).
fn signature(kind: ViolationKind, func: &str) -> String {
    if func.is_empty() {
        kind.to_string()
    } else {
        format!("{kind} in {func}")
    }
}

/// Whether a mutant's change or one of its sources contains one of `strs`.
fn mentions(m: &Mutant, strs: &[String]) -> bool {
    strs.iter().any(|f| {
        m.change.iter().any(|c| c.contains(f.as_str()))
            || m.sources.iter().any(|(s, _)| s.contains(f.as_str()))
    })
}

fn sets(p: &[(String, String)]) -> Overrides {
    Overrides {
        protocol: None,
        sets: p.to_vec(),
        mutate: None,
    }
}

/// Fuzz every mutant of `mutants` (after the filter) in turn; `log` gets one line per mutant.
pub fn sweep(
    mutants: &[Mutant],
    opts: &SweepOpts,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for (n, m) in mutants.iter().enumerate() {
        if !opts.filter.is_empty() && !mentions(m, &opts.filter) || mentions(m, &opts.exclude) {
            continue;
        }
        if opts.stop.load(Ordering::Relaxed) {
            break;
        }
        let mut f = FuzzOpts::new(
            opts.seed,
            opts.budget_each,
            sets(&m.protocol),
            opts.out.join(format!("mutant-{n}")),
        );
        f.scenarios = opts.scenarios_each;
        f.executions = opts.executions;
        f.stop = opts.stop.clone();
        f.first = true;
        f.base = Some(sets(&m.base));
        f.directed = opts.directed;
        let sum = fuzz::run(&f, &mut |_| {})?;
        let hit = sum.found.iter().find(|x| x.on_base == Some(false));
        let row = Row {
            mutant: m.clone(),
            found: hit.is_some(),
            violation: hit.map(|x| signature(x.kind, &x.func)),
            expected: m.sources[0].1.clone(),
            seconds: hit.map(|x| x.after.as_secs_f64()),
            scenario: hit.map(|x| x.scenario),
            file: hit.map(|x| x.file.display().to_string()),
            token: hit.map(|x| x.token.clone()),
            on_base_kinds: sum
                .on_base
                .iter()
                .map(|((k, f), (_, i))| (signature(*k, f), *i))
                .chain(
                    sum.found
                        .iter()
                        .filter(|x| x.on_base == Some(true))
                        .map(|x| (signature(x.kind, &x.func), x.scenario)),
                )
                .collect(),
            also_on_base: sum.on_base.values().map(|(n, _)| n).sum::<u64>()
                + sum.found.iter().filter(|x| x.on_base == Some(true)).count() as u64,
            scenarios_run: sum.scenarios,
            reached_change: sum.reached_change,
            executions: sum.executions,
            elapsed: sum.elapsed.as_secs_f64(),
            seed: opts.seed,
        };
        log(&line(&row));
        rows.push(row);
    }
    Ok(rows)
}

/// The mutant's name in the table: its change, and what it is planted on when the base is not
/// the default protocol.
pub fn name(m: &Mutant) -> String {
    let mut s = m.change.join(", ");
    if !m.base.is_empty() {
        s.push_str(&format!(" [on {}]", describe(&m.base)));
    }
    s
}

/// A protocol's settings, with a preset they include named once.
fn describe(p: &[(String, String)]) -> String {
    let mut rest: Vec<&(String, String)> = p.iter().collect();
    let mut out = Vec::new();
    for preset in PRESETS {
        let Ok(pp) = Protocol::preset(preset.name) else {
            continue;
        };
        let ps = settings(&pp);
        if !ps.is_empty() && ps.iter().all(|x| p.contains(x)) {
            out.push(preset.name.to_string());
            rest.retain(|x| !ps.contains(x));
            break;
        }
    }
    out.extend(rest.iter().map(|(k, v)| format!("{k}={v}")));
    out.join(", ")
}

/// One row as a line of text.
pub fn line(r: &Row) -> String {
    match (&r.violation, r.seconds, r.scenario) {
        (Some(v), Some(t), Some(i)) => format!(
            "found      {:<60} {v} (expected {}) after {t:.1} s, scenario {i}",
            name(&r.mutant),
            r.expected
        ),
        _ => format!(
            "not found  {:<60} (expected {}) in {} scenarios ({} ran the change), {:.0} s{}",
            name(&r.mutant),
            r.expected,
            r.scenarios_run,
            r.reached_change,
            r.elapsed,
            if r.also_on_base > 0 {
                let k: Vec<String> = r
                    .on_base_kinds
                    .iter()
                    .map(|(k, i)| format!("{k} (scenario {i})"))
                    .collect();
                format!("; {} also on the base: {}", r.also_on_base, k.join(", "))
            } else {
                String::new()
            }
        ),
    }
}

/// The table as markdown.
pub fn markdown(rows: &[Row]) -> String {
    let mut t = String::from(
        "| mutant | planted by | found | violation | time (s) | scenario | seed |\n|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let src: Vec<String> = r
            .mutant
            .sources
            .iter()
            .map(|(s, k)| format!("`{s}` ({k})"))
            .collect();
        t.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} | {} |\n",
            name(&r.mutant),
            src.join("<br>"),
            if r.found { "yes" } else { "**no**" },
            r.violation.as_deref().unwrap_or(if r.also_on_base > 0 {
                "(only also on the base)"
            } else {
                "-"
            }),
            r.seconds
                .map_or_else(|| format!(">{:.0}", r.elapsed), |t| format!("{t:.1}")),
            r.scenario
                .map_or_else(|| format!(">{}", r.scenarios_run), |i| i.to_string()),
            r.seed
        ));
    }
    t
}
