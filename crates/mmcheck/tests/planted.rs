//! `mmcheck fuzz --planted`: the catalogue's planted mutants, de-duplicated, each fuzzed from
//! scratch; a violation the base protocol gives too is not counted.

use mmcheck::check::Overrides;
use mmcheck::fuzz::{run, FuzzOpts};
use mmcheck::planted::{markdown, mutants, sweep, SweepOpts};
use std::time::Duration;

fn catalogue(sub: &str) -> String {
    format!("{}/../../scenarios/{sub}", env!("CARGO_MANIFEST_DIR"))
}

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("mmcheck-planted-{name}-{}", std::process::id()))
}

#[test]
fn mutants_are_the_violating_variants_once_each() {
    let all = mutants(&[catalogue("planted"), catalogue("races"), catalogue("seeds")]).unwrap();
    for (i, a) in all.iter().enumerate() {
        assert!(
            all[i + 1..].iter().all(|b| b.protocol != a.protocol),
            "{a:?} twice"
        );
        assert!(!a.change.is_empty(), "{a:?}");
    }
    // Planted twice, one mutant.
    let imm: Vec<_> = all
        .iter()
        .filter(|m| m.change == ["pt_reclaim.free=immediate"] && m.base.is_empty())
        .collect();
    assert_eq!(imm.len(), 1);
    assert!(imm[0].sources.len() >= 2, "{:?}", imm[0].sources);
    // The pre-6.5 rule is planted on the linux-6.1 preset: its base is the closest clean
    // protocol of the file, not the 2026 default.
    let pre65 = all
        .iter()
        .find(|m| m.change == ["retract.locks=i_mmap_read"])
        .expect("retract.locks=i_mmap_read planted");
    assert!(pre65
        .base
        .iter()
        .any(|(k, v)| k == "fault.vma_lock" && v == "off"));
    // A variant expected clean plants nothing.
    assert!(!all.iter().any(|m| m.change == ["thp.zero_wp_alloc=off"]));
}

#[test]
fn a_sweep_finds_a_planted_mutant_and_is_deterministic() {
    let ms = mutants(&[catalogue("planted/missing-tlb-flush.mmt")]).unwrap();
    assert_eq!(ms.len(), 1);
    let opts = |out| SweepOpts {
        seed: 1,
        budget_each: Duration::from_secs(3600),
        scenarios_each: Some(60),
        executions: 50,
        filter: vec![],
        exclude: vec![],
        out,
        stop: Default::default(),
        directed: true,
    };
    let a = sweep(&ms, &opts(tmp("a")), &mut |_| {}).unwrap();
    let b = sweep(&ms, &opts(tmp("b")), &mut |_| {}).unwrap();
    assert_eq!(a.len(), 1);
    assert!(a[0].found, "{a:?}");
    assert_eq!(a[0].expected, "stale-translation");
    assert_eq!(
        (a[0].scenario, &a[0].violation, &a[0].token),
        (b[0].scenario, &b[0].violation, &b[0].token)
    );
    assert!(markdown(&a).contains("| `tlb.gather_flush=off` |"));
    // The zap without its flush makes other events than the base's: the scenario ran the change.
    assert!(a[0].reached_change > 0, "{a:?}");
    let undirected = sweep(
        &ms,
        &SweepOpts {
            directed: false,
            ..opts(tmp("d"))
        },
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(undirected[0].reached_change, 0);
    // A filter that matches nothing runs nothing.
    let none = sweep(
        &ms,
        &SweepOpts {
            filter: vec!["no.such".into()],
            ..opts(tmp("c"))
        },
        &mut |_| {},
    )
    .unwrap();
    assert!(none.is_empty());
    let left_out = sweep(
        &ms,
        &SweepOpts {
            exclude: vec!["missing-tlb-flush".into()],
            ..opts(tmp("c"))
        },
        &mut |_| {},
    )
    .unwrap();
    assert!(left_out.is_empty());
    for d in ["a", "b", "c", "d"] {
        let _ = std::fs::remove_dir_all(tmp(d));
    }
}

/// With the planted change as its own base, every violation is also on the base: none counts,
/// and `--first` does not stop at one.
#[test]
fn a_violation_the_base_gives_too_is_not_counted() {
    let sets = Overrides {
        protocol: None,
        sets: vec![("tlb.gather_flush".into(), "off".into())],
        mutate: None,
    };
    let mut o = FuzzOpts::new(1, Duration::from_secs(3600), sets.clone(), tmp("base"));
    o.scenarios = Some(30);
    o.executions = 50;
    o.first = true;
    o.base = Some(sets);
    let sum = run(&o, &mut |_| {}).unwrap();
    assert!(sum.found.iter().all(|f| f.on_base == Some(true)));
    assert!(!sum.on_base.is_empty() || !sum.found.is_empty(), "{sum:?}");
    assert_eq!(sum.scenarios + sum.unstartable, 30);
    let _ = std::fs::remove_dir_all(tmp("base"));
}
