//! `mmcheck fuzz`: generated scenarios ([`mmcheck_scenario::gen::wide`]) run under the explorer
//! against one protocol, with coverage feedback, until a budget, a scenario count or Ctrl-C.
//!
//! Each scenario is probed with random and PCT (depths 2 and 3) for breadth and a bounded DPOR
//! search (a race candidate drawn whole first gets DPOR within two preemptions), each a fixed
//! number of executions with fixed seeds, so a probe is deterministic. The
//! coverage of a probe is the set of [`Site`]s its steps were made at (kernel function, access,
//! object class); a scenario that reaches a site no earlier one did joins the corpus, and later
//! scenarios are either fresh draws or mutations of a corpus member, drawn with a weight that
//! grows with the rarity of the sites it reached (how few scenarios reached them). A violating
//! scenario is
//! shrunk twice: to the fewest threads, operations and `init` lines that still give the same
//! violation (each candidate probed again), then to the fewest preemptions
//! ([`mmcheck_explore::shrink`]); it is written as a `.mmt` file that states the protocol,
//! expects the violation and carries its replay token. A probe that hits a tool limit is
//! counted as inconclusive, never as a violation; the first [`MAX_SAVED_INCONCLUSIVE`] are kept
//! unshrunk as `fuzz-S-I-inconclusive.mmt` with the limit and the schedule up to it, since a step
//! limit can hide a livelock of the model (a retry loop that never makes progress).
//!
//! With a base protocol ([`FuzzOpts::base`], the protocol without a planted change: see
//! [`crate::planted`]) a violation counts only when the base does not give the same kind on the
//! same scenario, before shrinking (else the unshrunk scenario is kept as `fuzz-S-I-base.mmt`)
//! and after; `--first` ([`FuzzOpts::first`]) stops at the first that counts. With a base, a
//! scenario whose executions differ between the two protocols (the same few random schedules,
//! compared event by event: [`diverges`]) has reached the planted change's code, and counts as
//! reaching a coverage site of its own, so the corpus keeps and the rarity weighting favours the
//! scenarios that run the changed code (the directed-fuzzing idea of AFLGo, with the change as
//! the target), as `--mutate`'s site does for a mutation.
//!
//! Determinism: the scenario sequence, every probe and every shrink depend on `--seed` alone;
//! the time budget only decides where the sequence stops (`--scenarios` fixes that too).

use crate::check::{apply_overrides, Overrides};
use mmcheck_explore::shrink::shrink;
use mmcheck_explore::{explore, schedule, Config, Counterexample, Mode, Site};
use mmcheck_platform::ViolationKind;
use mmcheck_scenario::gen::wide::{self, Draft};
use mmcheck_scenario::gen::Prng;
use mmcheck_scenario::{KernelModel, Scenario};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many executions shrinking the schedule may take (a count, so the token is the same on any
/// machine).
const SHRINK_EXECUTIONS: u64 = 20_000;
/// How many candidate scenarios shrinking may probe.
const SHRINK_PROBES: usize = 60;

/// What to fuzz and for how long.
#[derive(Clone, Debug)]
pub struct FuzzOpts {
    pub seed: u64,
    /// Wall-clock budget, checked between scenarios and between executions.
    pub budget: Duration,
    /// Stop after this many scenarios (a run of a fixed length, whatever the machine).
    pub scenarios: Option<u64>,
    pub overrides: Overrides,
    /// Executions per strategy per scenario.
    pub executions: u64,
    pub max_steps: usize,
    /// Where violating scenarios are written (created if missing).
    pub out: PathBuf,
    /// Set by Ctrl-C.
    pub stop: Arc<AtomicBool>,
    /// Stop at the first violation saved (with `base`, the first not also on the base).
    pub first: bool,
    /// The protocol without the planted change: a violation counts as the change's only when the
    /// scenario does not give the same kind under it (see [`Found::on_base`]).
    pub base: Option<Overrides>,
    /// With a base: favour the scenarios that run the planted change's code ([`diverges`]).
    pub directed: bool,
}

impl FuzzOpts {
    /// A run of `seed` for `budget` against `overrides`, with the defaults of the command line.
    pub fn new(seed: u64, budget: Duration, overrides: Overrides, out: PathBuf) -> Self {
        FuzzOpts {
            seed,
            budget,
            scenarios: None,
            overrides,
            executions: 200,
            max_steps: 20_000,
            out,
            stop: Default::default(),
            first: false,
            base: None,
            directed: true,
        }
    }
}

/// A violation found and saved.
#[derive(Clone, Debug)]
pub struct Found {
    pub kind: ViolationKind,
    /// The kernel function that detected it (the innermost of its stack).
    pub func: String,
    pub message: String,
    pub file: PathBuf,
    /// The index of the scenario that first showed it, and when.
    pub scenario: u64,
    pub after: Duration,
    pub token: String,
    /// Threads and operations before and after shrinking.
    pub size: ((usize, usize), (usize, usize)),
    /// Later scenarios that gave the same violation (same kind and function).
    pub repeats: u64,
    /// With [`FuzzOpts::base`]: whether the saved scenario gives the same kind under the base
    /// protocol too (then it is no evidence of the planted change: a model false alarm, or a
    /// bug the base has too).
    pub on_base: Option<bool>,
}

/// The run's figures.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub scenarios: u64,
    pub executions: u64,
    pub sites: usize,
    pub corpus: usize,
    pub inconclusive: u64,
    /// Generated scenarios skipped because their `init` fails.
    pub unstartable: u64,
    pub found: Vec<Found>,
    /// With [`FuzzOpts::base`]: violating scenarios that gave the same kind under the base
    /// protocol before shrinking (not saved), by kind and detecting function, with the index of
    /// the first.
    pub on_base: BTreeMap<(ViolationKind, String), (u64, u64)>,
    /// With [`FuzzOpts::base`]: scenarios whose executions differ from the base's (they ran the
    /// planted change's code: [`diverges`]).
    pub reached_change: u64,
    pub interrupted: bool,
    pub elapsed: Duration,
}

/// What one probe saw.
struct Probe {
    violation: Option<(Counterexample, Mode)>,
    coverage: BTreeSet<Site>,
    executions: u64,
    /// The tool limit an execution hit, the strategy and the schedule up to it.
    inconclusive: Option<(mmcheck_explore::Inconclusive, Mode)>,
}

/// The strategies of a probe, in order: cheap breadth first. A race candidate drawn whole
/// (`deep`: every thread an aim) also gets DPOR within two preemptions, 20 times the executions,
/// before the unbounded search: a window three threads must enter in one order within a few steps
/// (an anon_vma checked, freed and used) is out of reach of random and PCT schedules and of a
/// short unbounded DPOR search.
fn strategies(seed: u64, executions: u64, deep: bool) -> Vec<(Mode, u64, u64, Option<u32>)> {
    let mut s = vec![
        (Mode::Random, seed, executions, None),
        (Mode::Pct { depth: 2 }, seed ^ 2, executions, None),
        (Mode::Pct { depth: 3 }, seed ^ 3, executions, None),
    ];
    if deep {
        s.push((Mode::Dpor, 0, 20 * executions, Some(2)));
    }
    s.push((Mode::Dpor, 0, 4 * executions, None));
    s
}

/// Probe a scenario with `executions` per strategy (and a preemption-bounded DPOR search if
/// `deep`).
fn probe(
    model: &Arc<KernelModel>,
    seed: u64,
    executions: u64,
    deep: bool,
    opts: &FuzzOpts,
    started: Instant,
) -> Probe {
    let mut p = Probe {
        violation: None,
        coverage: BTreeSet::new(),
        executions: 0,
        inconclusive: None,
    };
    for (mode, seed, n, preemption_bound) in strategies(seed, executions, deep) {
        let cfg = Config {
            mode,
            seed,
            preemption_bound,
            max_executions: Some(n),
            budget: Some(opts.budget.saturating_sub(started.elapsed())),
            max_steps: opts.max_steps,
            coverage: true,
            stop: Some(opts.stop.clone()),
            ..Config::default()
        };
        let out = explore(model.clone(), &cfg);
        p.executions += out.executions;
        p.coverage.extend(out.coverage);
        if let Some(inc) = out.inconclusive {
            p.inconclusive = Some((inc, mode));
            break;
        }
        if let Some(cx) = out.counterexample {
            p.violation = Some((cx, mode));
            break;
        }
        if out.interrupted || out.budget_exhausted && out.executions < n {
            break;
        }
    }
    p
}

/// The model of `s` under the run's protocol.
fn model_of(s: &Scenario, o: &Overrides) -> Result<Arc<KernelModel>, String> {
    let s = apply_overrides(s, o).map_err(|e| e.to_string())?;
    Ok(Arc::new(KernelModel::new(s)))
}

/// The model of `s`, unless its `init` fails (a draft the generator could not know would: a
/// migration of a page no store faulted in, say); such drafts are skipped.
fn startable(s: &Scenario, o: &Overrides) -> Result<Option<Arc<KernelModel>>, String> {
    let m = model_of(s, o)?;
    Ok(m.setup_error().is_none().then_some(m))
}

/// The protocol lines a saved scenario starts with, so that it replays without options.
fn header(o: &Overrides) -> Vec<String> {
    let mut h = Vec::new();
    if let Some(p) = &o.protocol {
        h.push(format!("protocol {p}"));
    }
    for (k, v) in &o.sets {
        h.push(format!("set {k} = {v}"));
    }
    if let Some(m) = &o.mutate {
        h.push(format!("mutate {m}"));
    }
    h
}

fn size(d: &Draft) -> (usize, usize) {
    (d.threads.len(), d.ops())
}

/// Shrink `d` to the fewest threads, operations and `init` lines that still give `kind`.
fn shrink_draft(
    d: &Draft,
    kind: ViolationKind,
    seed: u64,
    opts: &FuzzOpts,
    started: Instant,
) -> Draft {
    // A violation the deeper search of a race candidate found is looked for as deep.
    let deep = d.aimed;
    let mut best = d.clone();
    let mut probes = 0;
    'outer: while probes < SHRINK_PROBES && !opts.stop.load(Ordering::Relaxed) {
        for cand in best.smaller() {
            let Ok(s) = cand.parse("shrink") else {
                continue;
            };
            let Ok(Some(m)) = startable(&s, &opts.overrides) else {
                continue;
            };
            probes += 1;
            let p = probe(&m, seed, opts.executions, deep, opts, started);
            if p.violation.as_ref().map(|(cx, _)| cx.violation.kind) == Some(kind) {
                best = cand;
                continue 'outer;
            }
            if probes >= SHRINK_PROBES {
                break;
            }
        }
        break;
    }
    best
}

/// A corpus member to mutate, drawn with a weight that grows with the rarity of the sites it
/// reached (the sum of `1/hits` over its sites, in fixed point): members that reached what few
/// scenarios reach (a race window's inner steps) are mutated more often.
fn pick_rare(
    corpus: &[(Draft, BTreeSet<Site>)],
    hits: &BTreeMap<Site, u64>,
    r: &mut Prng,
) -> usize {
    let w: Vec<u64> = corpus
        .iter()
        .map(|(_, cov)| {
            1 + cov
                .iter()
                .map(|s| 1_000_000 / hits.get(s).copied().unwrap_or(1).max(1))
                .sum::<u64>()
        })
        .collect();
    let mut x = r.below(w.iter().sum());
    for (k, wk) in w.iter().enumerate() {
        if x < *wk {
            return k;
        }
        x -= wk;
    }
    corpus.len() - 1
}

/// How many times a signature saved as also on the base is shrunk again when it recurs.
const BASE_RETRIES: u64 = 3;

/// Inconclusive scenarios kept per run (unshrunk): enough to look for a livelock among them.
pub const MAX_SAVED_INCONCLUSIVE: u64 = 40;

/// Keep an inconclusive scenario, with its limit and the schedule up to it, in the output folder.
fn save_inconclusive(
    draft: &Draft,
    i: u64,
    inc: &mmcheck_explore::Inconclusive,
    mode: Mode,
    opts: &FuzzOpts,
) -> Result<(), String> {
    let name = format!("fuzz-{}-{i}-inconclusive", opts.seed);
    let file = opts.out.join(format!("{name}.mmt"));
    let mut body = format!(
        "# Inconclusive under `mmcheck fuzz --seed {}` (scenario {i}, {mode:?}): {}.\n\
         # The schedule up to the limit: mmcheck replay {} --schedule {}\n",
        opts.seed,
        inc.limit,
        file.display(),
        inc.schedule
    );
    body.push_str(&draft.render(&name, &header(&opts.overrides), "clean"));
    std::fs::write(&file, body).map_err(|e| format!("cannot write {}: {e}", file.display()))
}
/// The executions of the base protocol's probe of a saved scenario, in multiples of
/// [`FuzzOpts::executions`].
const BASE_EXECUTIONS: u64 = 4;

/// Random executions run under both protocols to tell whether a scenario reaches the planted
/// change ([`diverges`]).
const DIVERGE_EXECUTIONS: u64 = 4;

/// Whether `m` (the run's protocol) and `base` (the same scenario under the base protocol) make
/// different events on the same random schedules: the scenario runs the changed code.
fn diverges(m: &Arc<KernelModel>, base: &Arc<KernelModel>, seed: u64, opts: &FuzzOpts) -> bool {
    let cfg = Config {
        mode: Mode::Random,
        seed,
        max_executions: Some(DIVERGE_EXECUTIONS),
        max_steps: opts.max_steps,
        fingerprint: true,
        stop_on_violation: false,
        stop: Some(opts.stop.clone()),
        ..Config::default()
    };
    explore(m.clone(), &cfg).fingerprint != explore(base.clone(), &cfg).fingerprint
}

/// The executions of the DPOR search of a saved scenario under the base protocol.
const BASE_DPOR_EXECUTIONS: u64 = 20_000;

/// Whether `s` (a scenario without protocol lines) gives `kind` under [`FuzzOpts::base`] too, in
/// a probe of `mult` times the run's executions per strategy, then (`mult > 1`, a saved
/// scenario) a DPOR search of [`BASE_DPOR_EXECUTIONS`] (not bounded by the run's budget: a
/// search cut short would make a false alarm look like the planted change's).
fn on_base(
    s: &Scenario,
    kind: ViolationKind,
    seed: u64,
    mult: u64,
    deep: bool,
    opts: &FuzzOpts,
) -> Result<bool, String> {
    let Some(base) = &opts.base else {
        return Ok(false);
    };
    let Some(m) = startable(s, base)? else {
        return Ok(false);
    };
    let o = FuzzOpts {
        budget: Duration::from_secs(86_400),
        ..opts.clone()
    };
    let p = probe(&m, seed, opts.executions * mult, deep, &o, Instant::now());
    if p.violation.is_some_and(|(cx, _)| cx.violation.kind == kind) {
        return Ok(true);
    }
    if mult == 1 {
        return Ok(false);
    }
    // The saved scenario is small: a longer DPOR search (complete for most) before the change
    // is credited with the violation.
    let out = explore(
        m,
        &Config {
            mode: Mode::Dpor,
            max_executions: Some(BASE_DPOR_EXECUTIONS),
            max_steps: opts.max_steps,
            stop: Some(opts.stop.clone()),
            ..Config::default()
        },
    );
    Ok(out
        .counterexample
        .is_some_and(|cx| cx.violation.kind == kind))
}

/// Run the fuzzer; `log` gets one line per event worth telling (a new violation, progress).
pub fn run(opts: &FuzzOpts, log: &mut dyn FnMut(&str)) -> Result<Summary, String> {
    let started = Instant::now();
    // Bad overrides are bad input: refuse them before the first scenario.
    model_of(&wide::generate(opts.seed).1.scenario, &opts.overrides)?;
    if let Some(b) = &opts.base {
        model_of(&wide::generate(opts.seed).1.scenario, b)?;
    }
    std::fs::create_dir_all(&opts.out)
        .map_err(|e| format!("cannot create {}: {e}", opts.out.display()))?;
    let mut sum = Summary::default();
    let mut seen: BTreeSet<Site> = BTreeSet::new();
    let mut corpus: Vec<(Draft, BTreeSet<Site>)> = Vec::new();
    // How many scenarios reached each site: a corpus member is mutated in proportion to the
    // rarity of the sites it reached.
    let mut hits: BTreeMap<Site, u64> = BTreeMap::new();
    let mut by_sig: BTreeMap<(ViolationKind, String), usize> = BTreeMap::new();
    let mut r = Prng::new(opts.seed);
    let mut i = 0u64;
    loop {
        if opts.scenarios.is_some_and(|n| i >= n) || started.elapsed() >= opts.budget {
            break;
        }
        if opts.stop.load(Ordering::Relaxed) {
            sum.interrupted = true;
            break;
        }
        let seed = r.next_u64();
        let (draft, scenario) = if corpus.is_empty() || r.chance(50) {
            let (d, g) = wide::generate(seed);
            (d, g.scenario)
        } else {
            let k = pick_rare(&corpus, &hits, &mut r);
            wide::mutate(&corpus[k].0, seed)
        };
        i += 1;
        let Some(model) = startable(&scenario, &opts.overrides)? else {
            sum.unstartable += 1;
            continue;
        };
        let mut p = probe(&model, seed, opts.executions, draft.aimed, opts, started);
        // A mutant's site reached (`--mutate`): a coverage site of its own, so the corpus keeps
        // and the rarity weighting favours the scenarios that reach what the mutant removed.
        if model.mutation().is_some_and(|m| m.skipped() > 0) {
            p.coverage.insert(Site {
                func: "(the mutant's site)",
                access: mmcheck_platform::Access::Read,
                class: "mutant",
            });
        }
        // The planted change's code reached (with a base protocol): likewise.
        if let Some(b) = opts.base.as_ref().filter(|_| opts.directed) {
            if startable(&scenario, b)?.is_some_and(|bm| diverges(&model, &bm, seed, opts)) {
                sum.reached_change += 1;
                p.coverage.insert(Site {
                    func: "(the planted change)",
                    access: mmcheck_platform::Access::Read,
                    class: "planted",
                });
            }
        }
        sum.scenarios += 1;
        sum.executions += p.executions;
        if let Some((inc, mode)) = &p.inconclusive {
            sum.inconclusive += 1;
            if sum.inconclusive <= MAX_SAVED_INCONCLUSIVE {
                save_inconclusive(&draft, i, inc, *mode, opts)?;
            }
        }
        for site in &p.coverage {
            *hits.entry(*site).or_default() += 1;
        }
        let fresh = p.coverage.iter().filter(|s| !seen.contains(s)).count();
        if fresh > 0 {
            seen.extend(p.coverage.iter().copied());
            corpus.push((draft.clone(), p.coverage));
        }
        let Some((cx, _)) = p.violation else {
            continue;
        };
        let kind = cx.violation.kind;
        let func = cx.violation.stack.last().copied().unwrap_or("").to_string();
        let sig = (kind, func.clone());
        if let Some(&k) = by_sig.get(&sig) {
            sum.found[k].repeats += 1;
            // A signature saved as also on the base is looked at again a few times: the planted
            // change may give the same kind in the same function on another scenario.
            if sum.found[k].on_base != Some(true) || sum.found[k].repeats > BASE_RETRIES {
                continue;
            }
        }
        if on_base(&scenario, kind, seed, 1, draft.aimed, opts)? {
            let e = sum.on_base.entry(sig).or_insert((0, i));
            e.0 += 1;
            if e.0 == 1 {
                // Kept unshrunk, under the base protocol, for whoever looks into the model.
                let name = format!("fuzz-{}-{i}-base", opts.seed);
                let header = opts.base.as_ref().map(header).unwrap_or_default();
                let text = draft.render(&name, &header, &format!("violation {kind}"));
                let file = opts.out.join(format!("{name}.mmt"));
                std::fs::write(&file, text)
                    .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
            }
            continue;
        }
        let after = started.elapsed();
        let small = shrink_draft(&draft, kind, seed, opts, started);
        let name = format!("fuzz-{}-{i}", opts.seed);
        let text = small.render(
            &name,
            &header(&opts.overrides),
            &format!("violation {kind}"),
        );
        let saved = mmcheck_scenario::parse_scenario(&format!("{name}.mmt"), &text)
            .map_err(|e| format!("internal error: a shrunk scenario does not parse: {e}"))?;
        let m = Arc::new(KernelModel::new(saved));
        let p2 = probe(&m, seed, opts.executions, draft.aimed, opts, started);
        let Some((cx2, _)) = p2.violation.filter(|(c, _)| c.violation.kind == kind) else {
            // Shrinking kept only candidates that showed `kind`; an interrupted probe may not.
            continue;
        };
        let cx2 = shrink(&m, &cx2, SHRINK_EXECUTIONS);
        let token = cx2.schedule.to_string();
        let ok = schedule::replay(&m, &cx2.schedule, false)
            .violation
            .is_some_and(|v| v.kind == kind);
        if !ok {
            return Err(format!(
                "internal error: {name}'s schedule {token} does not replay to {kind}"
            ));
        }
        let base_too = match &opts.base {
            Some(_) => {
                let s = small.parse(&name).map_err(|e| {
                    format!("internal error: a shrunk scenario does not parse: {e}")
                })?;
                Some(on_base(&s, kind, seed, BASE_EXECUTIONS, draft.aimed, opts)?)
            }
            None => None,
        };
        let file = opts.out.join(format!("{name}.mmt"));
        let mut body = format!(
            "# Found by `mmcheck fuzz --seed {}` (scenario {i}, after {:.1} s), shrunk from {} threads\n\
             # and {} operations. Replay: mmcheck replay {} --schedule {token}\n",
            opts.seed,
            after.as_secs_f64(),
            draft.threads.len(),
            draft.ops(),
            file.display(),
        );
        body.push_str(&format!(
            "# {}\n",
            cx2.violation.to_string().replace('\n', "\n# ")
        ));
        body.push_str(&text);
        std::fs::write(&file, body).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        log(&format!(
            "scenario {i}: {kind} in {func} after {:.1} s -> {}{}",
            after.as_secs_f64(),
            file.display(),
            if base_too == Some(true) {
                " (also on the base protocol)"
            } else {
                ""
            }
        ));
        by_sig.insert(sig, sum.found.len());
        sum.found.push(Found {
            kind,
            func,
            message: cx2.violation.to_string(),
            file,
            scenario: i,
            after,
            token,
            size: (size(&draft), size(&small)),
            repeats: 0,
            on_base: base_too,
        });
        if opts.first && base_too != Some(true) {
            break;
        }
    }
    if opts.stop.load(Ordering::Relaxed) {
        sum.interrupted = true;
    }
    sum.sites = seen.len();
    sum.corpus = corpus.len();
    sum.elapsed = started.elapsed();
    Ok(sum)
}

/// The `--show N` text: the `N`-th fresh draw of `seed`'s sequence as a file.
pub fn show(seed: u64) -> String {
    wide::generate(seed).1.text
}
