//! Each LKMM axiom does its own work: a test whose forbidden outcome only that axiom rules out
//! sees candidates rejected by it (rejected: coherence, atomic, hb, pb, rcu). (LB+ctrls is no
//! example: its forbidden outcome needs self-justifying values, which the value domain never
//! produces, so no candidate reaches the axioms.)

use mmcheck_litmus::check_file;
use std::path::PathBuf;

fn rejected(name: &str) -> [u64; 5] {
    let f = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../litmus")
        .join(format!("{name}.litmus"));
    let o = check_file(&f).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(o.observation().name(), "Never", "{name}");
    o.rejected
}

#[test]
fn coherence_forbids_corr() {
    let r = rejected("CoRR");
    assert!(r[0] > 0 && r[2..].iter().all(|&k| k == 0), "{r:?}");
}

#[test]
fn atomicity_forbids_two_xchgs_reading_zero() {
    assert!(rejected("Atomic+xchgs")[1] > 0);
}

#[test]
fn happens_before_forbids_lb_with_acquire_and_release() {
    let r = rejected("LB+acquire+release");
    assert!(r[2] > 0 && r[3] == 0 && r[4] == 0, "{r:?}");
}

#[test]
fn propagation_forbids_sb_with_mbs() {
    let r = rejected("SB+mbs");
    assert!(r[3] > 0 && r[4] == 0, "{r:?}");
}

#[test]
fn rcu_forbids_the_grace_period_violation() {
    let r = rejected("RCU-MP+gp");
    assert!(r[4] > 0, "{r:?}");
}
