//! Collects the kernel function names the model enters (`cpu.enter("name")` in the kernel,
//! platform and scenario sources) into `$OUT_DIR/funcs.rs`, so `expect reach T0 in NAME` can
//! reject a name no execution can ever be in, with a did-you-mean, instead of never matching.

use std::collections::BTreeSet;
use std::path::Path;

fn scan(dir: &Path, names: &mut BTreeSet<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            scan(&p, names);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let src = std::fs::read_to_string(&p).unwrap_or_default();
            for (at, _) in src.match_indices(".enter(") {
                // Every string literal inside the call's parentheses (a name, or a `match` of them).
                let rest = &src[at + ".enter(".len()..];
                let mut depth = 1;
                let mut end = rest.len();
                for (i, c) in rest.char_indices() {
                    match c {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                end = i;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                for (k, lit) in rest[..end].split('"').enumerate() {
                    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
                    if k % 2 == 1 && !lit.is_empty() && lit.chars().all(ident) {
                        names.insert(lit.to_string());
                    }
                }
            }
        }
    }
}

fn main() {
    // At run time, not `env!`: a build script binary cargo reuses from another checkout (a
    // worktree sharing the target directory) would scan that checkout's sources.
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let here = Path::new(&dir);
    let mut names = BTreeSet::new();
    for d in ["../kernel/src", "../platform/src", "src"] {
        let dir = here.join(d);
        println!("cargo:rerun-if-changed={}", dir.display());
        scan(&dir, &mut names);
    }
    let list: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("funcs.rs");
    std::fs::write(
        out,
        format!(
            "/// Every kernel function name the model enters.\npub const KERNEL_FUNCS: &[&str] = &[{}];\n",
            list.join(", ")
        ),
    )
    .expect("write funcs.rs");
}
