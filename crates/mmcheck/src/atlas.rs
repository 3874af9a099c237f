//! `mmcheck atlas`: for every mutation site ([`crate::sites`]), the smallest scenario found that
//! breaks when the site is removed (the lock not taken, the recheck passing), or the evidence
//! that none was found: why each lock and recheck of the modelled protocol is there.
//!
//! Per site, first the catalogue: the rows that reach the site and expect `clean` (each verified
//! clean and complete by `mmcheck check`), race scenarios about the site's function first, each
//! run as the mutant for a fixed number of DPOR, PCT and random executions; a violation there is the mutant's, since the row
//! is clean without it. Then, if no row broke, `fuzz` with the mutant: generated scenarios for a
//! fixed number of scenarios (and a time cap), and a violation it finds counts only if the
//! saved scenario is clean without the mutant (else it is the model's, not the site's). Every
//! count is fixed, so the same seed gives the same atlas on any machine not short of the time
//! cap.

use crate::check::Overrides;
use crate::fuzz::{FuzzOpts, Summary};
use crate::sites::{Row, SiteRow};
use mmcheck_explore::report::{render_slice, slice};
use mmcheck_explore::schedule::replay;
use mmcheck_explore::shrink::shrink;
use mmcheck_explore::{explore, Config, Mode, Model};
use mmcheck_platform::SiteKey;
use mmcheck_scenario::{KernelModel, Verdict};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many executions shrinking a mutant's counterexample may take.
const SHRINK_EXECUTIONS: u64 = 20_000;

/// What to search and how hard.
#[derive(Clone, Debug)]
pub struct AtlasOpts {
    /// Only sites whose name contains one of these.
    pub filter: Vec<String>,
    /// Executions per catalogue row (split over PCT, random and DPOR).
    pub row_executions: u64,
    /// Catalogue rows tried per site at most.
    pub rows_per_site: usize,
    /// Generated scenarios per site for sites the catalogue does not break (0: no fuzzing).
    pub fuzz_scenarios: u64,
    /// Time cap of a site's fuzzing.
    pub fuzz_budget: Duration,
    pub seed: u64,
    pub jobs: usize,
    /// Only this part of the sites (`--shard I/N`: every N-th site, from the I-th).
    pub shard: Option<mmcheck_explore::Shard>,
    /// Where fuzz writes the scenarios it finds (one directory per site).
    pub out: PathBuf,
    pub stop: Arc<AtomicBool>,
}

/// How a site was broken, or not.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Finding {
    /// A catalogue row, clean without the mutant, violates with it.
    Catalogue {
        row: String,
        violation: String,
        message: String,
        /// `mmcheck replay` command for the shrunk schedule.
        replay: String,
        /// The race window of the shrunk counterexample.
        slice: String,
        preemptions: usize,
        /// The counterexample's HTML timeline section (`--html`).
        #[serde(skip, default)]
        html: String,
    },
    /// A generated scenario, clean without the mutant, violates with it.
    Fuzz {
        violation: String,
        message: String,
        /// The shrunk scenario as saved (it states the mutant and the replay token).
        scenario: String,
        file: String,
        /// The race window of its replay.
        slice: String,
        /// Seconds of this site's fuzzing before it was found.
        after: f64,
    },
    /// Nothing broke.
    None,
}

/// One site's entry.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    #[serde(flatten)]
    pub site: SiteRow,
    pub finding: Finding,
    /// Catalogue rows run as the mutant, and their executions.
    pub rows_run: usize,
    pub row_executions: u64,
    /// Generated scenarios and executions of the fuzz phase.
    pub fuzz_scenarios: u64,
    pub fuzz_executions: u64,
    /// Violations fuzz found that the scenario also shows without the mutant (the model's).
    pub not_the_sites: Vec<String>,
    /// Rows or probes that hit a tool limit (no verdict) as the mutant.
    pub inconclusive: usize,
}

/// The atlas and its mutation score.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Atlas {
    pub entries: Vec<Entry>,
    pub sites: usize,
    pub by_catalogue: usize,
    pub by_fuzz: usize,
    pub interrupted: bool,
    pub elapsed: f64,
    /// The command line's figures, for the page.
    pub settings: String,
}

/// A catalogue row's mutant run: the first violation in the fixed strategy sequence.
fn run_row(
    row: &Row,
    site: &SiteKey,
    n: u64,
    stop: &Arc<AtomicBool>,
) -> (Option<Finding>, u64, bool) {
    let mut s = (*row.scenario).clone();
    s.mutate = Some(site.clone());
    let model = Arc::new(KernelModel::new(s));
    if model.setup_error().is_some() {
        return (None, 0, false);
    }
    let mut execs = 0;
    let mut inconclusive = false;
    for (mode, seed, k) in [
        (Mode::Dpor, 0, n / 2),
        (Mode::Pct { depth: 3 }, 1, n / 4),
        (Mode::Random, 1, n / 4),
    ] {
        let cfg = Config {
            mode,
            seed,
            max_executions: Some(k.max(1)),
            stop_on_violation: true,
            stop: Some(stop.clone()),
            ..Config::default()
        };
        let out = explore(model.clone(), &cfg);
        execs += out.executions;
        if out.inconclusive.is_some() {
            inconclusive = true;
            continue;
        }
        if let Some(cx) = out.counterexample {
            if cx.violation.msg.starts_with("model panicked") {
                // The model's own assumption, not a kernel consequence: no witness.
                return (None, execs, true);
            }
            let small = shrink(&model, &cx, SHRINK_EXECUTIONS);
            let r = replay(&model, &small.schedule, true);
            let names: Vec<String> = (0..model.threads()).map(|t| model.thread_name(t)).collect();
            let v = r.violation.clone().unwrap_or(small.violation.clone());
            let html =
                mmcheck_explore::html::section(&format!("{site} — {}", row.name()), &names, &r, "");
            let variant = row
                .variant
                .as_ref()
                .map(|v| format!(" --variant {v}"))
                .unwrap_or_default();
            return (
                Some(Finding::Catalogue {
                    row: row.name(),
                    violation: v.kind.to_string(),
                    message: v.msg.lines().next().unwrap_or("").to_string(),
                    replay: format!(
                        "mmcheck replay {}{variant} --mutate '{site}' --schedule {}",
                        row.file, small.schedule
                    ),
                    slice: render_slice(&names, &r, &slice(&r)),
                    preemptions: small.preemptions,
                    html,
                }),
                execs,
                inconclusive,
            );
        }
        if out.complete || out.interrupted {
            break;
        }
    }
    (None, execs, inconclusive)
}

/// True if `row` expects `clean` under its own protocol (the rows a mutant can be judged on).
fn expects_clean(row: &Row) -> bool {
    row.scenario
        .expect
        .iter()
        .any(|e| e.variant == row.variant && e.verdict == Verdict::Clean)
}

/// The fuzz phase of one site.
fn fuzz_site(site: &SiteKey, opts: &AtlasOpts, e: &mut Entry) {
    let started = Instant::now();
    let dir = opts.out.join(slug(site));
    let mut seed = opts.seed;
    let mut left = opts.fuzz_scenarios;
    while left > 0 && started.elapsed() < opts.fuzz_budget && !opts.stop.load(Ordering::Relaxed) {
        let mut f = FuzzOpts::new(
            seed,
            opts.fuzz_budget.saturating_sub(started.elapsed()),
            Overrides {
                mutate: Some(site.clone()),
                ..Overrides::default()
            },
            dir.clone(),
        );
        f.scenarios = Some(left);
        f.executions = 50;
        f.stop = opts.stop.clone();
        f.first = true;
        // A violation counts only if the scenario does not give it without the mutant.
        f.base = Some(Overrides::default());
        let sum: Summary = match crate::fuzz::run(&f, &mut |_| {}) {
            Ok(s) => s,
            Err(err) => {
                e.not_the_sites.push(format!("fuzz error: {err}"));
                return;
            }
        };
        e.fuzz_scenarios += sum.scenarios;
        e.fuzz_executions += sum.executions;
        e.inconclusive += sum.inconclusive as usize;
        left = left.saturating_sub(sum.scenarios.max(1));
        let Some(found) = sum.found.iter().find(|f| f.on_base != Some(true)) else {
            return;
        };
        let text = std::fs::read_to_string(&found.file).unwrap_or_default();
        let file = found.file.display().to_string();
        if clean_without_mutant(&file, &text) {
            e.finding = Finding::Fuzz {
                violation: found.kind.to_string(),
                message: found.message.lines().next().unwrap_or("").to_string(),
                slice: fuzz_slice(&file, &text, &found.token),
                scenario: text,
                file,
                after: started.elapsed().as_secs_f64(),
            };
            return;
        }
        e.not_the_sites
            .push(format!("{} ({})", found.kind, found.file.display()));
        seed = seed.wrapping_add(0x9e37_79b9);
    }
}

/// The race window of a saved scenario's replay token.
fn fuzz_slice(file: &str, text: &str, token: &str) -> String {
    let (Ok(s), Ok(sched)) = (
        mmcheck_scenario::parse_scenario(file, text),
        mmcheck_explore::Schedule::parse(token),
    ) else {
        return String::new();
    };
    let model = Arc::new(KernelModel::new(s));
    let r = replay(&model, &sched, true);
    let names: Vec<String> = (0..model.threads()).map(|t| model.thread_name(t)).collect();
    render_slice(&names, &r, &slice(&r))
}

/// The saved scenario without its `mutate` line: no violation in a bounded probe.
fn clean_without_mutant(file: &str, text: &str) -> bool {
    let Ok(mut s) = mmcheck_scenario::parse_scenario(file, text) else {
        return false;
    };
    s.mutate = None;
    let model = Arc::new(KernelModel::new(s));
    for (mode, seed, n) in [
        (Mode::Random, 1, 500),
        (Mode::Pct { depth: 2 }, 2, 500),
        (Mode::Pct { depth: 3 }, 3, 500),
        (Mode::Dpor, 0, 2000),
    ] {
        let cfg = Config {
            mode,
            seed,
            max_executions: Some(n),
            stop_on_violation: true,
            ..Config::default()
        };
        let out = explore(model.clone(), &cfg);
        if out.counterexample.is_some() {
            return false;
        }
        if out.complete {
            break;
        }
    }
    true
}

/// A file-name form of a site.
pub fn slug(site: &SiteKey) -> String {
    site.to_string()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Build the atlas of the sites `rows` reach.
pub fn run(
    rows: &[Row],
    sites: &BTreeMap<SiteKey, SiteRow>,
    opts: &AtlasOpts,
    log: &(dyn Fn(&str) + Sync),
) -> Atlas {
    let started = Instant::now();
    // Each row's breadth: the number of sites it reaches (focused rows are tried first).
    let mut breadth: BTreeMap<String, usize> = BTreeMap::new();
    for s in sites.values() {
        for r in &s.rows {
            *breadth.entry(r.clone()).or_default() += 1;
        }
    }
    let by_name: BTreeMap<String, &Row> = rows.iter().map(|r| (r.name(), r)).collect();
    let todo: Vec<(&SiteKey, &SiteRow)> = sites
        .iter()
        .filter(|(k, _)| {
            opts.filter.is_empty()
                || opts
                    .filter
                    .iter()
                    .any(|f| k.to_string().contains(f.as_str()))
        })
        .enumerate()
        .filter(|(i, _)| {
            opts.shard
                .is_none_or(|s| *i as u64 % u64::from(s.count) == u64::from(s.index))
        })
        .map(|(_, x)| x)
        .collect();
    let next = AtomicUsize::new(0);
    let done = parking_lot::Mutex::new(Vec::new());
    std::thread::scope(|sc| {
        for _ in 0..opts.jobs.max(1) {
            sc.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(key, info)) = todo.get(i) else {
                    break;
                };
                if opts.stop.load(Ordering::Relaxed) {
                    break;
                }
                let mut cands: Vec<&Row> = info
                    .rows
                    .iter()
                    .filter_map(|n| by_name.get(n).copied())
                    .filter(|r| expects_clean(r))
                    .collect();
                // Rows whose race window names the site's function (or a caller) first, then the
                // race scenarios, each the most focused first.
                cands.sort_by_key(|r| {
                    // The site's function, or a caller on the stack that reached it.
                    let names_it = r.scenario.reach.iter().any(|x| {
                        x.text.contains(key.func.as_str())
                            || info.callers.iter().any(|f| x.text.contains(f.as_str()))
                    });
                    let race = r.file.contains("/races/") || r.file.contains("/seeds/");
                    let buggy_variant = r
                        .scenario
                        .expect
                        .iter()
                        .any(|x| x.variant.is_some() && x.verdict != Verdict::Clean);
                    (
                        !names_it,
                        !buggy_variant,
                        !race,
                        breadth.get(&r.name()).copied().unwrap_or(0),
                        r.name(),
                    )
                });
                let mut e = Entry {
                    site: info.clone(),
                    finding: Finding::None,
                    rows_run: 0,
                    row_executions: 0,
                    fuzz_scenarios: 0,
                    fuzz_executions: 0,
                    not_the_sites: Vec::new(),
                    inconclusive: 0,
                };
                for r in cands.iter().take(opts.rows_per_site) {
                    let (f, n, inc) = run_row(r, key, opts.row_executions, &opts.stop);
                    e.rows_run += 1;
                    e.row_executions += n;
                    e.inconclusive += usize::from(inc);
                    if let Some(f) = f {
                        e.finding = f;
                        break;
                    }
                }
                if matches!(e.finding, Finding::None) && opts.fuzz_scenarios > 0 {
                    fuzz_site(key, opts, &mut e);
                }
                log(&format!("{key}: {}", short(&e.finding)));
                done.lock().push((i, e));
            });
        }
    });
    let mut done = done.into_inner();
    done.sort_by_key(|(i, _)| *i);
    let entries: Vec<Entry> = done.into_iter().map(|(_, e)| e).collect();
    let by_catalogue = entries
        .iter()
        .filter(|e| matches!(e.finding, Finding::Catalogue { .. }))
        .count();
    let by_fuzz = entries
        .iter()
        .filter(|e| matches!(e.finding, Finding::Fuzz { .. }))
        .count();
    Atlas {
        sites: todo.len(),
        interrupted: opts.stop.load(Ordering::Relaxed) || entries.len() < todo.len(),
        entries,
        by_catalogue,
        by_fuzz,
        elapsed: started.elapsed().as_secs_f64(),
        settings: String::new(),
    }
}

fn short(f: &Finding) -> String {
    match f {
        Finding::Catalogue { row, violation, .. } => format!("{violation} in {row}"),
        Finding::Fuzz {
            violation, after, ..
        } => format!("{violation} by fuzz after {after:.1} s"),
        Finding::None => "no breaking scenario".into(),
    }
}

fn pct(n: usize, d: usize) -> String {
    if d == 0 {
        "-".into()
    } else {
        format!("{:.0}%", 100.0 * n as f64 / d as f64)
    }
}

/// The mutation score lines.
pub fn score(a: &Atlas) -> String {
    format!(
        "mutation score: {} of {} sites ({}) broken by the catalogue alone; {} of {} ({}) by the catalogue plus fuzz",
        a.by_catalogue,
        a.sites,
        pct(a.by_catalogue, a.sites),
        a.by_catalogue + a.by_fuzz,
        a.sites,
        pct(a.by_catalogue + a.by_fuzz, a.sites)
    )
}

/// The atlas as a markdown page: the summary table, then one section per broken site with its
/// race window (catalogue) or scenario (fuzz).
pub fn markdown(a: &Atlas) -> String {
    let mut out = String::from("# The lock-necessity atlas\n\n");
    out.push_str(
        "Generated by `mmcheck atlas` (docs/mutation.md): for every lock acquisition and recheck \
         of the model (`mmcheck sites`), the first scenario found that breaks without it. A site \
         with no breaking scenario is a candidate for a redundant lock, or a gap in the scenarios \
         (see the evidence column).\n\n",
    );
    out.push_str(&format!("{}\n\n{}\n\n", a.settings, score(a)));
    out.push_str("| site | kind | kernel file | broken by | violation | evidence |\n|---|---|---|---|---|---|\n");
    for e in &a.entries {
        let (by, v) = match &e.finding {
            Finding::Catalogue { row, violation, .. } => (format!("`{row}`"), violation.clone()),
            Finding::Fuzz {
                file, violation, ..
            } => (
                format!("fuzz: `{}`", file.rsplit('/').next().unwrap_or(file)),
                violation.clone(),
            ),
            Finding::None => ("none found".into(), "-".into()),
        };
        let mut ev = format!("{} rows, {} executions", e.rows_run, e.row_executions);
        if e.fuzz_scenarios > 0 {
            ev.push_str(&format!(
                "; fuzz {} scenarios, {} executions",
                e.fuzz_scenarios, e.fuzz_executions
            ));
        }
        if e.inconclusive > 0 {
            ev.push_str(&format!("; {} inconclusive", e.inconclusive));
        }
        if !e.not_the_sites.is_empty() {
            ev.push_str(&format!(
                "; {} model findings set aside",
                e.not_the_sites.len()
            ));
        }
        out.push_str(&format!(
            "| [`{}`](#{}) | {} | {} | {by} | {v} | {ev} |\n",
            e.site.site,
            anchor(&e.site.site),
            e.site.kind,
            e.site.kernel_file
        ));
    }
    out.push_str("\n## Witnesses\n");
    for e in &a.entries {
        match &e.finding {
            Finding::Catalogue {
                row,
                violation,
                message,
                replay,
                slice,
                preemptions,
                ..
            } => {
                out.push_str(&format!(
                    "\n### `{}`\n\nWithout it, `{row}` (clean as written) gives **{violation}** \
                     ({preemptions} preemptions): {message}\n\n```\n{replay}\n{slice}```\n",
                    e.site.site
                ));
            }
            Finding::Fuzz {
                violation,
                message,
                scenario,
                slice,
                after,
                ..
            } => {
                out.push_str(&format!(
                    "\n### `{}`\n\nWithout it, a generated scenario (found after {after:.1} s, \
                     clean without the mutant) gives **{violation}**: {message}\n\n```\n{}\n{slice}```\n",
                    e.site.site, scenario
                ));
            }
            Finding::None => {}
        }
    }
    out
}

fn anchor(site: &str) -> String {
    site.chars()
        .filter_map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                Some(c.to_ascii_lowercase())
            } else {
                None
            }
        })
        .collect()
}

/// Sites (by name) the atlas found no breaking scenario for.
pub fn unbroken(a: &Atlas) -> BTreeSet<String> {
    a.entries
        .iter()
        .filter(|e| matches!(e.finding, Finding::None))
        .map(|e| e.site.site.clone())
        .collect()
}

/// The atlas as a self-contained HTML page: the table, then each catalogue witness's timeline
/// and each fuzz witness's scenario.
pub fn html(a: &Atlas) -> String {
    use mmcheck_explore::html::esc;
    let mut table = format!(
        "<section><p>{}</p><p>{}</p><table class=\"atlas\"><tr><th>site</th><th>kind</th>\
         <th>kernel file</th><th>broken by</th><th>violation</th></tr>\n",
        esc(&a.settings),
        esc(&score(a))
    );
    let mut sections = Vec::new();
    for e in &a.entries {
        let (by, v) = match &e.finding {
            Finding::Catalogue {
                row,
                violation,
                replay,
                html,
                ..
            } => {
                sections.push(format!(
                    "<div id=\"{}\"><pre>{}</pre>{html}</div>",
                    anchor(&e.site.site),
                    esc(replay)
                ));
                (row.clone(), violation.clone())
            }
            Finding::Fuzz {
                violation,
                scenario,
                file,
                ..
            } => {
                sections.push(format!(
                    "<section id=\"{}\"><h2>{}</h2><pre>{}</pre></section>",
                    anchor(&e.site.site),
                    esc(&e.site.site),
                    esc(scenario)
                ));
                (format!("fuzz: {file}"), violation.clone())
            }
            Finding::None => ("none found".to_string(), "-".to_string()),
        };
        table.push_str(&format!(
            "<tr><td><a href=\"#{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            anchor(&e.site.site),
            esc(&e.site.site),
            esc(&e.site.kind),
            esc(&e.site.kernel_file),
            esc(&by),
            esc(&v)
        ));
    }
    table.push_str("</table></section>\n");
    sections.insert(0, table);
    mmcheck_explore::html::page("mmcheck atlas", &sections)
}

/// Combine the JSON of `atlas --shard I/N --json` runs (entries in site order, the score
/// recomputed).
pub fn merge(parts: Vec<Atlas>) -> Atlas {
    let mut entries: Vec<Entry> = Vec::new();
    let mut out = Atlas::default();
    for p in parts {
        out.sites += p.sites;
        out.interrupted |= p.interrupted;
        out.elapsed = out.elapsed.max(p.elapsed);
        if out.settings.is_empty() {
            out.settings = p.settings;
        }
        entries.extend(p.entries);
    }
    entries.sort_by(|a, b| a.site.site.cmp(&b.site.site));
    out.by_catalogue = entries
        .iter()
        .filter(|e| matches!(e.finding, Finding::Catalogue { .. }))
        .count();
    out.by_fuzz = entries
        .iter()
        .filter(|e| matches!(e.finding, Finding::Fuzz { .. }))
        .count();
    out.entries = entries;
    out
}
