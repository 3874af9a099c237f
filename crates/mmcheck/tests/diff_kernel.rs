//! The differential test must be able to fail: a model with a protocol knob flipped away from the
//! host's behaviour diverges, and the divergence is found and shrunk.

use mmcheck::model_runner::ModelRunner;
use mmcheck_hostdiff::compare::{run_diff, Field, Mask};
use mmcheck_hostdiff::host::{host_features, HostRunner};
use mmcheck_kernel::Protocol;

fn setup() -> Option<(HostRunner, Mask)> {
    let f = host_features();
    if !(f.vm_pte && f.smaps_rollup && f.pagemap) {
        eprintln!("skipped: host lacks VmPTE, smaps_rollup or pagemap ({f:?})");
        return None;
    }
    Some((HostRunner::with_features(f), Mask::from(f)))
}

#[test]
fn default_model_agrees_with_host() {
    let Some((host, mask)) = setup() else { return };
    let proto = Protocol {
        pt_reclaim: host.features().pt_reclaim,
        ..Protocol::default()
    };
    let r = run_diff(60, 11, &host, &ModelRunner { proto }, &mask, &mut |_| {});
    assert!(r.ok(), "{r}");
    assert_eq!(r.agreed, 60);
}

#[test]
fn missing_fault_around_diverges() {
    let Some((host, mask)) = setup() else { return };
    let proto = Protocol {
        fault_around_pages: 1,
        pt_reclaim: host.features().pt_reclaim,
        ..Protocol::default()
    };
    let r = run_diff(300, 1, &host, &ModelRunner { proto }, &mask, &mut |_| {});
    let (_, case, div) = r.first.expect("a model without fault-around must diverge");
    assert!(matches!(div.field, Field::Rss | Field::Present), "{div}");
    assert!(case.ops.len() <= 6, "shrunk to {} ops", case.ops.len());
}

#[test]
fn missing_pt_reclaim_diverges() {
    let Some((host, mask)) = setup() else { return };
    if !host.features().pt_reclaim {
        eprintln!("skipped: host kernel does not reclaim PTE tables on MADV_DONTNEED");
        return;
    }
    let proto = Protocol {
        pt_reclaim: false,
        ..Protocol::default()
    };
    let r = run_diff(500, 1, &host, &ModelRunner { proto }, &mask, &mut |_| {});
    let (_, _, div) = r.first.expect("a model without PT reclaim must diverge");
    assert_eq!(div.field, Field::VmPte, "{div}");
}
