//! The strategies agree on the catalogue: for every scenario under `scenarios/` (and the built-in
//! reference) and every variant (the base protocol included) whose DPOR verdict is clean and
//! complete, random scheduling and PCT at depths 2, 3 and 4, with a fixed seed and a fixed number
//! of executions ([`RUNS`]), must be clean too. A violation they find is one DPOR's dependency relation hid (a
//! read outside the step that announces it): the test prints the scenario, the variant, the
//! violation and the `mmcheck replay` command that reproduces it.
//!
//! With `MMCHECK_AGREE_OPTIMAL` set, Optimal-DPOR (`Config::optimal`) must reach the same
//! verdict (clean or not) as source-DPOR on every row where both stop (complete, or with a
//! violation).
//!
//! Environment: `MMCHECK_ONLY` (a substring of the file paths to run), `MMCHECK_AGREE_VERBOSE`
//! (a line per row).

use mmcheck_explore::schedule::replay;
use mmcheck_explore::{explore, Config, Mode, Outcome};
use mmcheck_scenario::{load_scenario_file, KernelModel, Scenario};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// DPOR executions before a row counts as too large to judge (and is skipped).
const DPOR_CAP: u64 = 100_000;
/// The randomized strategies and their executions. Random scheduling finds the review's
/// `planted/missing-tlb-flush` witness in 6,474 executions with seed 1, PCT(3)
/// `races/pt-reclaim-refilled-table`'s in 13,587.
const RUNS: [(Mode, u64); 4] = [
    (Mode::Random, 10_000),
    (Mode::Pct { depth: 2 }, 5_000),
    (Mode::Pct { depth: 3 }, 15_000),
    (Mode::Pct { depth: 4 }, 5_000),
];
const SEED: u64 = 1;

/// The first violation an exploration found, lock-order inversions included.
fn finding(o: &Outcome) -> Option<String> {
    match (&o.counterexample, o.lock_inversions.first()) {
        (Some(c), _) => Some(format!(
            "{}: {} (schedule {})",
            c.violation.kind, c.violation.msg, c.schedule
        )),
        (None, Some(inv)) => Some(format!("lock-order: {inv} (no schedule)")),
        (None, None) => None,
    }
}

/// It failed on the four rows of review-2026-12 section A (`planted/missing-tlb-flush`,
/// `races/pt-reclaim-refilled-table` base and rescan, `races/khugepaged-free-vs-gupfast`, and the
/// instance-keyed lock order of `races/collapse-pte-mapped-thp-vs-reclaim`) until the model
/// announced every shared access and lockdep went by class.
#[test]
fn randomized_strategies_agree_with_clean_dpor_verdicts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let fs = mmcheck_scenario::scenario_files(&root).expect("scenario directory");
    let only = std::env::var("MMCHECK_ONLY").ok();
    let verbose = std::env::var("MMCHECK_AGREE_VERBOSE").is_ok();
    let optimal_too = std::env::var("MMCHECK_AGREE_OPTIMAL").is_ok();
    let mut all: Vec<(String, Scenario)> = fs
        .iter()
        .filter(|f| {
            only.as_deref()
                .is_none_or(|o| f.to_string_lossy().contains(o))
        })
        .map(|f| {
            let s = load_scenario_file(f).unwrap_or_else(|e| panic!("{}", e.render()));
            let rel = f.strip_prefix(&root).unwrap_or(f).display().to_string();
            (format!("scenarios/{rel}"), s)
        })
        .collect();
    if only.is_none() {
        all.push((
            "builtin:reference".into(),
            mmcheck_scenario::catalogue::reference(),
        ));
    }
    let start = Instant::now();
    // Every row, dealt out to one thread per core (the rows are independent).
    let work: Vec<(&str, &Scenario, Option<&str>)> = all
        .iter()
        .flat_map(|(file, s)| {
            std::iter::once(None)
                .chain(s.variants.iter().map(|v| Some(v.name.as_str())))
                .map(move |v| (file.as_str(), s, v))
        })
        .collect();
    let rows = work.len();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let shared = std::sync::Mutex::new((0usize, Vec::new(), Vec::new()));
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|sc| {
        for _ in 0..cores {
            sc.spawn(|| loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(&(file, s, variant)) = work.get(k) else {
                    break;
                };
                let (clean, skipped, failures) = check_row(file, s, variant, verbose, optimal_too);
                let mut g = shared.lock().unwrap();
                g.0 += usize::from(clean);
                g.1.extend(skipped);
                g.2.extend(failures);
            });
        }
    });
    let (clean, skipped, failures) = shared.into_inner().unwrap();
    eprintln!(
        "{rows} rows, {clean} DPOR-clean and complete, {} beyond {DPOR_CAP} DPOR executions {:?}, \
         {} disagreements, {:.1}s",
        skipped.len(),
        skipped,
        failures.len(),
        start.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// One row: whether DPOR found it clean and complete, the row if DPOR stopped at its cap, and
/// the disagreements.
fn check_row(
    file: &str,
    s: &Scenario,
    variant: Option<&str>,
    verbose: bool,
    optimal_too: bool,
) -> (bool, Vec<String>, Vec<String>) {
    let (mut clean, mut skipped, mut failures) = (false, Vec::new(), Vec::new());
    let vname = variant.unwrap_or("base");
    let t0 = Instant::now();
    // Verdicts only: reach patterns would cost each run a happens-before pass.
    let mut sv = s.with_variant(variant).unwrap();
    sv.reach.clear();
    let model = Arc::new(KernelModel::new(sv));
    let dpor = explore(
        model.clone(),
        &Config {
            max_executions: Some(DPOR_CAP),
            ..Config::default()
        },
    );
    // Optimal-DPOR (wakeup trees): the same verdict where both complete. It doubles the
    // test's DPOR time, so it runs with `MMCHECK_AGREE_OPTIMAL` set (the option is off
    // by default; dpor_vs_naive_kernel and odpor_vs_naive check it on every run).
    if optimal_too {
        let opt = explore(
            model.clone(),
            &Config {
                max_executions: Some(DPOR_CAP),
                optimal: true,
                ..Config::default()
            },
        );
        let stopped = |o: &Outcome| finding(o).is_some() || o.complete;
        if stopped(&dpor) && stopped(&opt) && finding(&dpor).is_some() != finding(&opt).is_some() {
            failures.push(format!(
                "{file} [{vname}]: source-DPOR found {:?} in {} executions, optimal DPOR \
                 {:?} in {} (complete: {})",
                finding(&dpor),
                dpor.executions,
                finding(&opt),
                opt.executions,
                opt.complete
            ));
        }
        if verbose {
            eprintln!(
                "{file} [{vname}]: optimal DPOR {} executions ({} blocked), source {} ({} blocked)",
                opt.executions, opt.sleep_blocked, dpor.executions, dpor.sleep_blocked
            );
        }
    }
    if let Some(f) = finding(&dpor) {
        if verbose {
            eprintln!("{file} [{vname}]: dpor {f}");
        }
        return (clean, skipped, failures);
    }
    if !dpor.complete {
        skipped.push(format!("{file} [{vname}]"));
        return (clean, skipped, failures);
    }
    clean = true;
    let mut line = format!("{file} [{vname}]: dpor clean in {}", dpor.executions);
    for (mode, runs) in RUNS {
        let o = explore(
            model.clone(),
            &Config {
                mode,
                max_executions: Some(runs),
                seed: SEED,
                ..Config::default()
            },
        );
        let name = match mode {
            Mode::Pct { depth } => format!("pct(d={depth})"),
            _ => "random".to_string(),
        };
        if let Some(f) = finding(&o) {
            line.push_str(&format!(", {name} VIOLATION"));
            let replay = o
                .counterexample
                .as_ref()
                .map(|c| {
                    let v = variant
                        .map(|v| format!(" --variant {v}"))
                        .unwrap_or_default();
                    let r = replay(&model, &c.schedule, false);
                    let again = r.violation.is_some_and(|v| v.kind == c.violation.kind);
                    format!(
                        "\n  replay: mmcheck replay {file}{v} --schedule {} ({})",
                        c.schedule,
                        if again {
                            "reproduces"
                        } else {
                            "DOES NOT reproduce"
                        }
                    )
                })
                .unwrap_or_default();
            failures.push(format!(
                "{file} [{vname}]: DPOR clean and complete in {} executions, {name} \
                 (seed {SEED}, {} executions) found {f}{replay}",
                dpor.executions, o.executions
            ));
        } else {
            line.push_str(&format!(", {name} clean"));
        }
    }
    if verbose {
        eprintln!("{line} ({:.1}s)", t0.elapsed().as_secs_f64());
    }
    (clean, skipped, failures)
}

/// The soundness bug this test would have caught (December 2026): the linearizability oracle
/// judged the real-time order of operations that DPOR treated as independent, so DPOR reported
/// `planted/missing-mthp-range-recheck`'s `single-pte-recheck` clean and complete (24,360
/// executions) while PCT(3) found its lost write. With operation boundaries on shared addresses
/// dependent, DPOR must find it too, and PCT still must.
#[test]
fn dpor_finds_a_violation_only_the_real_time_order_shows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let s = load_scenario_file(&root.join("planted/missing-mthp-range-recheck.mmt"))
        .unwrap_or_else(|e| panic!("{}", e.render()));
    let mut sv = s.with_variant(Some("single-pte-recheck")).unwrap();
    sv.reach.clear();
    let model = Arc::new(KernelModel::new(sv));
    for mode in [Mode::Dpor, Mode::Pct { depth: 3 }] {
        let o = explore(
            model.clone(),
            &Config {
                mode,
                max_executions: Some(DPOR_CAP),
                seed: SEED,
                ..Config::default()
            },
        );
        let kind = o.counterexample.as_ref().map(|c| c.violation.kind);
        assert_eq!(
            kind,
            Some(mmcheck_platform::ViolationKind::LostWrite),
            "{mode:?}: {:?}",
            finding(&o)
        );
    }
}
