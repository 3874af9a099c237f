//! `check --shard I/N` and `merge`: two shards run as separate processes and merged give the
//! verdicts of one unsharded run, and a missing shard is bad input.

use std::process::Command;

const FILES: &[&str] = &[
    "scenarios/seeds/seed-004-mremap-rmap-locks.mmt",
    "scenarios/planted/missing-recheck.mmt",
    "scenarios/races/uffd-move-vs-pt-reclaim.mmt",
    "scenarios/races/fork-vs-gup-fast-pin.mmt",
];

fn mmcheck(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mmcheck"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .args(args)
        .output()
        .expect("mmcheck runs")
}

/// `(file, variant, verdict, status, complete)` of each row of a JSON run.
fn verdicts(json: &[u8]) -> Vec<(String, String, String, String, bool)> {
    let v: Vec<serde_json::Value> = serde_json::from_slice(json).expect("JSON rows");
    v.iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
            (
                s("file"),
                s("variant"),
                s("verdict"),
                s("status"),
                r["complete"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

#[test]
fn two_shards_merge_to_the_verdicts_of_one_run() {
    let dir = std::env::temp_dir().join(format!("mmcheck-shards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut parts = Vec::new();
    let children: Vec<_> = (1..=2)
        .map(|i| {
            let mut args = vec!["check", "--json", "--budget", "120"];
            let shard = format!("{i}/2");
            args.extend(["--shard", &shard]);
            args.extend(FILES);
            let out = dir.join(format!("shard-{i}.json"));
            parts.push(out.display().to_string());
            let f = std::fs::File::create(&out).unwrap();
            Command::new(env!("CARGO_BIN_EXE_mmcheck"))
                .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
                .args(&args)
                .stdout(f)
                .spawn()
                .expect("a shard starts")
        })
        .collect();
    for mut c in children {
        c.wait().expect("a shard ends");
    }
    let mut args = vec!["merge", "--json"];
    args.extend(parts.iter().map(String::as_str));
    let merged = mmcheck(&args);
    assert_eq!(
        merged.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&merged.stderr)
    );
    let mut one = vec!["check", "--json", "--budget", "120"];
    one.extend(FILES);
    let whole = mmcheck(&one);
    assert_eq!(whole.status.code(), Some(0));
    let (m, w) = (verdicts(&merged.stdout), verdicts(&whole.stdout));
    assert!(m.len() >= 8, "{m:?}");
    assert_eq!(m, w);
    // A shard missing is bad input, named.
    let missing = mmcheck(&["merge", &parts[0]]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("needs shards 1/2 to 2/2"));
    std::fs::remove_dir_all(&dir).ok();
}
