//! Seed 004: move_ptes without rmap locks, racing migration's rmap walks. When the destination
//! merges into a neighbour with a smaller vm_pgoff, the walk visits the destination first and can
//! miss an entry moved behind it: rmap-missed. With the rmap locks (as copy_vma decides, or always)
//! it is clean, and so is a fresh destination VMA (visited after the source) even without them.
//! The fresh destination is @19, not mutually PMD-aligned with @36, so the move takes `move_ptes`
//! as in the thread (@20 would be realigned and moved whole: seed-004-mremap-realigned-whole-table).

use mmcheck_explore::{explore, Config};
use mmcheck_platform::ViolationKind;
use mmcheck_scenario::{Backing, KernelModel, Op, Scenario, SetupOp};
use std::sync::Arc;
use std::time::Duration;

fn scenario(locks: &str, merge: bool) -> Scenario {
    let s = Scenario::new("seed-004").protocol(|p| p.set("mremap.rmap_locks", locks).unwrap());
    let p = |n: u64| s.page(n);
    let (a0, a8, a19, a36) = (p(0), p(8), p(19), p(36));
    let back = if merge { a8 } else { a19 };
    s.clone()
        .setup(SetupOp::Mmap {
            addr: a0,
            pages: 12,
            backing: Backing::AnonPrivate,
            huge: false,
        })
        .setup(SetupOp::Store { addr: a8, value: 1 })
        .setup(SetupOp::Mremap {
            addr: a8,
            pages: 4,
            new_addr: a36,
        })
        .thread(vec![Op::Mremap {
            addr: a36,
            pages: 4,
            new_addr: back,
            dontunmap: false,
        }])
        .thread(vec![Op::Migrate {
            addr: a36,
            unmap_only: false,
        }])
}

fn run(s: Scenario) -> mmcheck_explore::Outcome {
    explore(
        Arc::new(KernelModel::new(s)),
        &Config {
            budget: Some(Duration::from_secs(60)),
            ..Config::default()
        },
    )
}

#[test]
fn never_with_destination_first_misses() {
    let out = run(scenario("never", true));
    let cx = out.counterexample.expect("rmap-missed expected");
    assert_eq!(
        cx.violation.kind,
        ViolationKind::RmapMissed,
        "{}",
        cx.violation
    );
}

#[test]
fn rmap_locks_or_source_first_are_clean() {
    for (locks, merge) in [
        ("need", true),
        ("always", true),
        ("never", false),
        ("need", false),
    ] {
        let out = run(scenario(locks, merge));
        if let Some(cx) = &out.counterexample {
            panic!("{locks} merge={merge}: {} ({})", cx.violation, cx.schedule);
        }
        assert!(out.complete, "{locks} merge={merge}: incomplete");
        eprintln!(
            "mremap.rmap_locks={locks} merge={merge}: clean in {} executions",
            out.executions
        );
    }
}
