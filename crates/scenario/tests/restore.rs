//! Restoring the set-up state is the same as building it: for every scenario under `scenarios/`
//! (and the built-in reference) and every variant, DPOR's first executions and a run of random
//! scheduling explore the same decisions and events (the fingerprint), reach the same final
//! states, violations and reach patterns, and count the same executions, whether each execution
//! restores the instance the search built once ([`Model::restore`], the default) or builds its
//! own. A field the copy forgets, or an object it copies twice, shows up here.
//!
//! The same on scenarios the fuzzer's wide generator draws ([`GENERATED`] seeds): set-ups the
//! catalogue does not have (forks, swap, userfaultfd, mTHP, files) are copied too.
//!
//! Environment: `MMCHECK_ONLY` (a substring of the file paths to run).

use mmcheck_explore::reach::Spec;
use mmcheck_explore::{explore, Config, Finish, Mode, Model, Outcome};
use mmcheck_platform::{Backend, Machine};
use mmcheck_scenario::{load_scenario_file, KernelModel, Scenario};
use std::path::Path;
use std::sync::Arc;

/// Executions per strategy and row.
const EXECUTIONS: u64 = 120;
/// Generated scenarios compared.
const GENERATED: u64 = 200;

/// The model, building every execution's instance (no restore).
struct Build(KernelModel);

impl Model for Build {
    type Instance = <KernelModel as Model>::Instance;

    fn build(&self, backend: Box<dyn Backend>) -> Self::Instance {
        self.0.build(backend)
    }
    fn machine<'a>(&self, inst: &'a Self::Instance) -> &'a Machine {
        self.0.machine(inst)
    }
    fn threads(&self) -> usize {
        self.0.threads()
    }
    fn is_daemon(&self, t: usize) -> bool {
        self.0.is_daemon(t)
    }
    fn thread_name(&self, t: usize) -> String {
        self.0.thread_name(t)
    }
    fn strict(&self) -> bool {
        self.0.strict()
    }
    fn reach(&self) -> &Spec {
        self.0.reach()
    }
    fn run(&self, inst: &Self::Instance, t: usize) {
        self.0.run(inst, t)
    }
    fn finish(&self, inst: &Self::Instance) -> Finish {
        self.0.finish(inst)
    }
}

/// What must not depend on how the instances were made.
fn summary(o: &Outcome) -> String {
    format!(
        "executions {} sleep-blocked {} steps {} complete {} fingerprint {:x} outcomes {:?} \
         kinds {:?} reach {:?} inversions {} counterexample {:?} inconclusive {:?}",
        o.executions,
        o.sleep_blocked,
        o.steps,
        o.complete,
        o.fingerprint,
        o.outcomes,
        o.violation_kinds,
        o.reach
            .iter()
            .map(|h| (h.executions, h.first.as_ref().map(|s| s.to_string())))
            .collect::<Vec<_>>(),
        o.lock_inversions.len(),
        o.counterexample
            .as_ref()
            .map(|c| (c.schedule.to_string(), c.violation.to_string())),
        o.inconclusive.as_ref().map(|i| format!("{:?}", i.limit)),
    )
}

fn rows(work: &[(&Scenario, Option<&str>)]) -> Vec<String> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|sc| {
        for _ in 0..cores {
            sc.spawn(|| loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(&(s, v)) = work.get(k) else {
                    break;
                };
                let f = row(s, v);
                failures.lock().unwrap().extend(f);
            });
        }
    });
    failures.into_inner().unwrap()
}

fn row(s: &Scenario, variant: Option<&str>) -> Vec<String> {
    let sv = s.with_variant(variant).unwrap();
    let mut failures = Vec::new();
    for mode in [Mode::Dpor, Mode::Random] {
        let cfg = Config {
            mode,
            max_executions: Some(EXECUTIONS),
            budget: None,
            stop_on_violation: false,
            collect_outcomes: true,
            fingerprint: true,
            seed: 1,
            ..Config::default()
        };
        let restored = explore(Arc::new(KernelModel::new(sv.clone())), &cfg);
        let built = explore(Arc::new(Build(KernelModel::new(sv.clone()))), &cfg);
        let (r, b) = (summary(&restored), summary(&built));
        if r != b {
            failures.push(format!(
                "{} [{}] {mode:?}:\n  restored: {r}\n  built:    {b}",
                s.name,
                variant.unwrap_or("base")
            ));
        }
    }
    failures
}

#[test]
fn restoring_the_setup_state_is_building_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let only = std::env::var("MMCHECK_ONLY").ok();
    let mut all: Vec<Scenario> = mmcheck_scenario::scenario_files(&root)
        .expect("scenario directory")
        .iter()
        .filter(|f| {
            only.as_deref()
                .is_none_or(|o| f.to_string_lossy().contains(o))
        })
        .map(|f| load_scenario_file(f).unwrap_or_else(|e| panic!("{}", e.render())))
        .collect();
    all.push(mmcheck_scenario::catalogue::reference());
    let work: Vec<(&Scenario, Option<&str>)> = all
        .iter()
        .flat_map(|s| {
            std::iter::once(None)
                .chain(s.variants.iter().map(|v| Some(v.name.as_str())))
                .map(move |v| (s, v))
        })
        .collect();
    let failures = rows(&work);
    eprintln!("{} rows, {} differ", work.len(), failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn restoring_generated_setups_is_building_them() {
    if std::env::var("MMCHECK_ONLY").is_ok() {
        return;
    }
    // As `fuzz` does, a scenario whose `init` cannot run (it would wait forever) is skipped.
    let all: Vec<Scenario> = (1..=GENERATED)
        .map(|seed| mmcheck_scenario::gen::wide::generate(seed).1.scenario)
        .filter(|s| KernelModel::new(s.clone()).setup_error().is_none())
        .collect();
    let work: Vec<(&Scenario, Option<&str>)> = all.iter().map(|s| (s, None)).collect();
    let failures = rows(&work);
    eprintln!(
        "{} generated scenarios, {} differ",
        work.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
