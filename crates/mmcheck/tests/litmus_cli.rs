//! `mmcheck litmus`: the suite agrees (exit 0), a wrong expectation exits 1, bad input exits 2
//! with file:line:col, and the output has herd7's shape.

use std::process::{Command, Output};

fn mmcheck(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mmcheck"))
        .args(args)
        .output()
        .expect("run mmcheck")
}

fn suite(rel: &str) -> String {
    format!("{}/../../litmus/{rel}", env!("CARGO_MANIFEST_DIR"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn the_whole_suite_agrees() {
    let out = mmcheck(&["litmus", &suite(""), "--brief"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(" 0 disagree, 0 refused, 0 inconclusive"),
        "{stdout}"
    );
    assert!(!stdout.contains("DISAGREES"), "{stdout}");
}

#[test]
fn herd_shaped_result() {
    let out = mmcheck(&["litmus", &suite("SB+onces.litmus")]);
    assert_eq!(out.status.code(), Some(0));
    let s = text(&out.stdout);
    let want = "Test SB+onces Allowed\nStates 4\n0:r0=0; 1:r0=0;\n0:r0=0; 1:r0=1;\n0:r0=1; 1:r0=0;\n0:r0=1; 1:r0=1;\nOk\nWitnesses\nPositive: 1 Negative: 3\nCondition exists (0:r0=0 /\\ 1:r0=0)\nObservation SB+onces Sometimes 1 3\n";
    assert!(s.starts_with(want), "{s}");
}

#[test]
fn a_disagreement_exits_1() {
    let out = mmcheck(&["litmus", &suite("SB+mbs.litmus"), "--expect", "Sometimes"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("DISAGREES"));
}

#[test]
fn bad_input_exits_2_with_location() {
    let dir = std::env::temp_dir().join(format!("mmcheck-litmus-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let f = dir.join("bad.litmus");
    std::fs::write(
        &f,
        "C bad\n{}\nP0(int *x)\n{\n\tWRITE_ONCE(*x 1);\n}\nexists (x=1)\n",
    )
    .expect("write");
    let out = mmcheck(&["litmus", f.to_str().expect("utf-8 path")]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.litmus:5:16: expected ','"), "{err}");
    let out = mmcheck(&[
        "litmus",
        dir.join("missing.litmus").to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}
