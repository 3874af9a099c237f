//! The project's litmus suite (`litmus/` at the repository root): every test carries the
//! LKMM's verdict in a `Result:` line, and the checker must agree with each.

use mmcheck_litmus::check_file;
use std::path::PathBuf;

fn suite() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../litmus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the litmus/ directory")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "litmus"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_suite_verdict_agrees() {
    let files = suite();
    assert!(files.len() >= 40, "the suite has {} tests", files.len());
    let mut wrong = Vec::new();
    for f in &files {
        let o = check_file(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let expected = o
            .expected
            .unwrap_or_else(|| panic!("{}: no Result: line", f.display()));
        if !o.agrees() {
            wrong.push(format!(
                "{}: expected {}, got {} ({} {})",
                o.name,
                expected.name(),
                o.observation().name(),
                o.positive,
                o.negative
            ));
        }
    }
    assert!(wrong.is_empty(), "disagreements:\n{}", wrong.join("\n"));
}

#[test]
fn suite_names_match_files() {
    for f in suite() {
        let o = check_file(&f).expect("checks");
        let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        assert_eq!(o.name, stem, "{}", f.display());
    }
}
