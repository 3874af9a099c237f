//! folio_walk and GUP-fast under the explorer, racing PT reclaim and munmap.

use mmcheck_explore::{explore, Config};
use mmcheck_scenario::{Backing, KernelModel, Op, Scenario, SetupOp, WalkUse};
use std::sync::Arc;
use std::time::Duration;

fn base(name: &str, lock: &str) -> Scenario {
    let s = Scenario::new(name).protocol(|p| p.set("folio_walk.lock", lock).unwrap());
    let a0 = s.page(0);
    s.setup(SetupOp::Mmap {
        addr: a0,
        pages: 8,
        backing: Backing::AnonPrivate,
        huge: false,
    })
    .setup(SetupOp::Store { addr: a0, value: 1 })
}

fn clean(s: Scenario) -> u64 {
    let name = s.name.clone();
    let out = explore(
        Arc::new(KernelModel::new(s)),
        &Config {
            budget: Some(Duration::from_secs(60)),
            ..Config::default()
        },
    );
    if let Some(cx) = &out.counterexample {
        panic!("{name}: {} ({})", cx.violation, cx.schedule);
    }
    assert!(out.complete, "{name}: incomplete");
    out.executions
}

#[test]
fn folio_walk_under_vma_lock_vs_pt_reclaim_is_clean() {
    for lock in ["mmap", "vma", "vma_irqoff"] {
        for use_ in [WalkUse::Ptl, WalkUse::Ref] {
            let s = base("fw-vs-reclaim", lock);
            let a0 = s.page(0);
            let s = s
                .thread(vec![Op::FolioWalk { addr: a0, use_ }])
                .thread(vec![Op::DontNeed { addr: a0, pages: 8 }]);
            let n = clean(s);
            eprintln!("folio_walk.lock={lock} {use_:?} vs PT reclaim: clean in {n} executions");
        }
    }
}

/// The lockless walks (FW_VMA_LOCKED v1, v2), with and without rechecks, against PT reclaim of
/// their table when nothing reallocates the freed page: a page unmapped (but not freed) before
/// `folio_try_get` was still the address's memory during the walk, and the word read is
/// linearizable with the MADV_DONTNEED.
#[test]
fn lockless_folio_walk_vs_pt_reclaim_without_reuse_is_clean() {
    for design in ["lockless_rcu", "lockless_irqoff"] {
        for recheck in ["on", "off"] {
            for use_ in [WalkUse::Ptl, WalkUse::Ref] {
                let s = base("lockless-fw-vs-reclaim", "vma").protocol(|p| {
                    p.set("folio_walk.design", design).unwrap();
                    p.set("folio_walk.recheck", recheck).unwrap();
                });
                let a0 = s.page(0);
                let s = s
                    .thread(vec![Op::FolioWalk { addr: a0, use_ }])
                    .thread(vec![Op::DontNeed { addr: a0, pages: 8 }]);
                let n = clean(s);
                eprintln!(
                    "{design} recheck={recheck} {use_:?} vs PT reclaim: clean in {n} executions"
                );
            }
        }
    }
}

#[test]
fn gup_fast_pin_vs_dontneed_and_munmap_is_clean() {
    let s = base("gup-vs-zap", "mmap");
    let a0 = s.page(0);
    let s = s
        .thread(vec![Op::GupFast {
            addr: a0,
            write: true,
            pin: true,
            value: 7,
            fast_only: false,
        }])
        .thread(vec![Op::DontNeed { addr: a0, pages: 8 }]);
    clean(s);
    let s = base("gup-vs-munmap", "mmap");
    let a0 = s.page(0);
    let s = s
        .thread(vec![Op::GupFast {
            addr: a0,
            write: false,
            pin: false,
            value: 0,
            fast_only: false,
        }])
        .thread(vec![Op::Munmap { addr: a0, pages: 8 }]);
    clean(s);
}

#[test]
fn migration_vs_store_load_and_dontneed_is_clean() {
    let s = base("migrate-vs-access", "mmap");
    let a0 = s.page(0);
    let s = s
        .thread(vec![Op::Migrate {
            addr: a0,
            unmap_only: false,
        }])
        .thread(vec![
            Op::Store { addr: a0, value: 9 },
            Op::Load { addr: a0 },
        ]);
    clean(s);
    let s = base("migrate-vs-dontneed", "mmap");
    let a0 = s.page(0);
    let s = s
        .thread(vec![Op::Migrate {
            addr: a0,
            unmap_only: false,
        }])
        .thread(vec![Op::DontNeed { addr: a0, pages: 8 }]);
    clean(s);
}
