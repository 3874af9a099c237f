//! Soundness guard: state shared between simulated CPUs lives in `crates/platform` types, whose
//! accessors announce every access to the explorer (or state why none is needed). Raw atomics,
//! locks and cells in the kernel model or the scenario runner would be read outside any announced
//! step, which the explorer's partial-order reduction cannot see; this test fails if one appears.

use std::path::Path;

const FORBIDDEN: [&str; 8] = [
    "AtomicU64",
    "AtomicI64",
    "AtomicU32",
    "AtomicBool",
    "AtomicUsize",
    "Mutex<",
    "RwLock<",
    "RefCell<",
];

fn scan(dir: &Path, hits: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).expect("source dir") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            scan(&p, hits);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&p).expect("source file");
            // Unit tests at the end of a file may use host primitives to drive threads.
            let body = text.split("#[cfg(test)]").next().unwrap_or("");
            for (i, line) in body.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for f in FORBIDDEN {
                    if code.contains(f) {
                        hits.push(format!("{}:{}: {}", p.display(), i + 1, line.trim()));
                    }
                }
            }
        }
    }
}

#[test]
fn no_raw_atomics_or_locks_over_model_state_outside_platform() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut hits = Vec::new();
    scan(&root.join("kernel/src"), &mut hits);
    scan(&root.join("scenario/src"), &mut hits);
    assert!(
        hits.is_empty(),
        "raw shared state outside crates/platform:\n{}",
        hits.join("\n")
    );
}
