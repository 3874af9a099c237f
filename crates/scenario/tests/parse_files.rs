//! Every scenario file under `scenarios/` parses, and the planted-bug files are the scenarios of
//! `tests/planted.rs`. (That the explorer meets their expectations is `tests/catalogue.rs`'s
//! `planted`, in strict mode.)

use mmcheck_platform::ViolationKind;
use mmcheck_scenario::{load_scenario_file, Backing, Op, Scenario, SetupOp, Verdict};
use std::path::{Path, PathBuf};

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios")
}

fn load(rel: &str) -> Scenario {
    let p = scenarios_dir().join(rel);
    load_scenario_file(&p).unwrap_or_else(|e| panic!("{}", e.render()))
}

fn uaf() -> Verdict {
    Verdict::Violation(ViolationKind::UseAfterFree)
}

/// A planted file: its path under `scenarios/`, its name, its thread count and its
/// expectations as (variant, verdict).
type Planted = (
    &'static str,
    &'static str,
    usize,
    Vec<(Option<&'static str>, Verdict)>,
);

fn planted_table() -> Vec<Planted> {
    vec![
        (
            "planted/missing-recheck.mmt",
            "missing-recheck",
            2,
            vec![
                (None, Verdict::Clean),
                (
                    Some("no-recheck"),
                    Verdict::Violation(ViolationKind::CounterMismatch),
                ),
            ],
        ),
        (
            "planted/missing-rcu-wait.mmt",
            "missing-rcu-wait",
            2,
            vec![
                (None, Verdict::Clean),
                (Some("immediate"), uaf()),
                (Some("ipi"), uaf()),
            ],
        ),
        (
            "planted/missing-lock.mmt",
            "missing-lock",
            2,
            vec![
                (None, Verdict::Clean),
                (
                    Some("unlocked"),
                    Verdict::Violation(ViolationKind::BadPopulate),
                ),
            ],
        ),
        (
            "planted/lock-inversion.mmt",
            "lock-inversion",
            2,
            vec![
                (None, Verdict::Clean),
                (
                    Some("spin-lock"),
                    Verdict::Violation(ViolationKind::Deadlock),
                ),
            ],
        ),
        (
            "planted/missing-tlb-flush.mmt",
            "missing-tlb-flush",
            2,
            vec![
                (None, Verdict::Clean),
                (
                    Some("no-flush"),
                    Verdict::Violation(ViolationKind::StaleTranslation),
                ),
            ],
        ),
    ]
}

#[test]
fn every_scenario_file_parses() {
    let files = mmcheck_scenario::scenario_files(&scenarios_dir()).expect("scenario directory");
    assert!(files.len() >= 5, "scenario files: {files:?}");
    for f in &files {
        let s = load_scenario_file(f).unwrap_or_else(|e| panic!("{}", e.render()));
        let stem = f.file_stem().unwrap().to_str().unwrap();
        assert_eq!(
            s.name,
            stem,
            "{}: the scenario is named after its file",
            f.display()
        );
        assert!((1..=4).contains(&s.threads.len()), "{}", f.display());
        assert!(!s.expect.is_empty(), "{}", f.display());
        assert!(!s.doc.is_empty(), "{}: no doc", f.display());
        for e in &s.expect {
            s.with_variant(e.variant.as_deref())
                .unwrap_or_else(|err| panic!("{}: {err}", f.display()));
        }
    }
}

#[test]
fn planted_files_name_threads_and_expectations() {
    for (file, name, threads, expect) in planted_table() {
        let s = load(file);
        assert_eq!(s.name, name, "{file}");
        assert_eq!(s.threads.len(), threads, "{file}");
        let got: Vec<(Option<&str>, Verdict)> = s
            .expect
            .iter()
            .map(|e| (e.variant.as_deref(), e.verdict.clone()))
            .collect();
        assert_eq!(got, expect, "{file}");
        // The base protocol is the fixed one; every expectation's variant is declared.
        for (v, _) in &expect {
            if let Some(v) = v {
                assert!(s.variants.iter().any(|x| x.name == *v), "{file}: {v}");
            }
        }
    }
}

/// The Rust builders of `tests/planted.rs`, for the bug (`true`) or the fix.
fn table_of_8(name: &str, proto: impl FnOnce(&mut mmcheck_kernel::Protocol)) -> Scenario {
    let s = Scenario::new(name).protocol(proto);
    let base = s.page(0);
    s.setup(SetupOp::Mmap {
        addr: base,
        pages: 8,
        backing: Backing::AnonPrivate,
        huge: false,
    })
    .setup(SetupOp::Store {
        addr: base,
        value: 1,
    })
}

fn rust_planted(name: &str, bug: bool) -> Scenario {
    use mmcheck_kernel::protocol::TableFree;
    match name {
        "missing-recheck" => {
            let s = table_of_8(name, |p| p.pmd_same_recheck = !bug);
            let (a0, a1) = (s.page(0), s.page(1));
            s.thread(vec![Op::DontNeed { addr: a0, pages: 8 }])
                .thread(vec![Op::Fault {
                    addr: a1,
                    write: true,
                }])
        }
        "missing-rcu-wait" => {
            let free = if bug {
                TableFree::Immediate
            } else {
                TableFree::Rcu
            };
            let s = table_of_8(name, |p| p.pt_reclaim_free = free);
            let a0 = s.page(0);
            s.thread(vec![Op::DontNeed { addr: a0, pages: 8 }])
                .thread(vec![Op::RcuWalk { addr: a0 }])
        }
        "missing-lock" => {
            let s = Scenario::new(name).protocol(|p| p.populate_locked = !bug);
            let (a0, a1) = (s.page(0), s.page(1));
            s.setup(SetupOp::Mmap {
                addr: a0,
                pages: 8,
                backing: Backing::AnonPrivate,
                huge: false,
            })
            .thread(vec![Op::Fault {
                addr: a0,
                write: false,
            }])
            .thread(vec![Op::Fault {
                addr: a1,
                write: false,
            }])
        }
        "lock-inversion" => {
            let s = table_of_8(name, |p| {
                p.pt_reclaim_pmd_trylock = !bug;
                p.gather_batch = 1;
            });
            let (a0, a1) = (s.page(0), s.page(1));
            s.setup(SetupOp::Store { addr: a1, value: 2 })
                .thread(vec![Op::DontNeed { addr: a0, pages: 8 }])
                .thread(vec![Op::DontNeed { addr: a0, pages: 8 }])
        }
        "missing-tlb-flush" => {
            let s = table_of_8(name, |p| p.gather_tlb_flush = !bug);
            let a0 = s.page(0);
            s.thread(vec![
                Op::Store { addr: a0, value: 5 },
                Op::Load { addr: a0 },
            ])
            .thread(vec![Op::DontNeed { addr: a0, pages: 1 }])
        }
        _ => unreachable!("{name}"),
    }
}

#[test]
fn planted_files_are_the_rust_scenarios() {
    for (file, name, _, expect) in planted_table() {
        let s = load(file);
        for (bug, variant) in [(false, None), (true, expect[1].0)] {
            let want = rust_planted(name, bug);
            let got = s.with_variant(variant).unwrap();
            assert_eq!(got.geometry, want.geometry, "{file}");
            assert_eq!(got.nr_frames, want.nr_frames, "{file}");
            assert_eq!(got.setup, want.setup, "{file}");
            assert_eq!(got.threads, want.threads, "{file}");
            assert_eq!(got.protocol, want.protocol, "{file} {variant:?}");
        }
    }
}

#[test]
fn the_format_doc_examples_parse_and_name_every_operation() {
    let doc = std::fs::read_to_string(scenarios_dir().join("../docs/scenario-format.md")).unwrap();
    let blocks: Vec<&str> = doc
        .split("```")
        .skip(1)
        .step_by(2)
        .filter(|b| b.lines().any(|l| l.starts_with("scenario ")))
        .collect();
    assert_eq!(blocks.len(), 2, "two complete examples");
    for b in blocks {
        let b = b.trim_start_matches(|c: char| c != '\n');
        mmcheck_scenario::parse_scenario("doc.mmt", b).unwrap_or_else(|e| panic!("{}", e.render()));
    }
    for op in mmcheck_scenario::parse::OPS {
        assert!(
            doc.contains(&format!("`{}", op.name)),
            "{} is not documented",
            op.name
        );
    }
}
