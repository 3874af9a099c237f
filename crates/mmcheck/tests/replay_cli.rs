//! `mmcheck replay` cannot lie: a token found by `check` replays to its violation, a token that
//! does not fit the scenario is refused (exit 2, the step and why), and the replay command that
//! `check` prints for a finding made under `--set` reproduces it. Tokens are taken from `check`
//! at run time, not written down, so the tests follow the model when it changes.

use serde_json::Value;
use std::process::{Command, Output};

fn mmcheck(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mmcheck"))
        .args(args)
        .output()
        .expect("run mmcheck")
}

fn scenario(rel: &str) -> String {
    format!("{}/../../scenarios/{rel}", env!("CARGO_MANIFEST_DIR"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `check --json` on one file: its rows.
fn check_rows(file: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["check", file, "--json", "--budget", "10"];
    args.extend_from_slice(extra);
    let out = mmcheck(&args);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("check --json: {e}\n{}", text(&out.stderr)));
    v.as_array().expect("an array of rows").clone()
}

/// The row of `variant` in `check --json` output.
fn row<'a>(rows: &'a [Value], variant: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["variant"] == variant)
        .unwrap_or_else(|| panic!("no row for variant {variant}: {rows:?}"))
}

fn token(r: &Value) -> String {
    r["schedule"]
        .as_str()
        .unwrap_or_else(|| panic!("row has no schedule: {r}"))
        .to_string()
}

/// Replay `token`; the exit code and stderr, which must be a misfit.
fn assert_misfit(file: &str, variant: &str, token: &str) -> String {
    let out = mmcheck(&["replay", file, "--variant", variant, "--schedule", token]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{token}: {err}");
    assert!(
        err.starts_with("error: token does not fit at step "),
        "{token}: {err}"
    );
    assert!(out.stdout.is_empty(), "{token}: a misfit prints no trace");
    err
}

#[test]
fn found_token_replays_to_its_violation() {
    let file = scenario("planted/missing-rcu-wait.mmt");
    let rows = check_rows(&file, &[]);
    let r = row(&rows, "immediate");
    assert_eq!(r["verdict"], "use-after-free");
    let tok = token(r);
    let out = mmcheck(&[
        "replay",
        &file,
        "--variant",
        "immediate",
        "--schedule",
        &tok,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("violation: {}", r["message"].as_str().unwrap())),
        "{stdout}"
    );
    // `replay --json` names the scenario as `check --json` does.
    let out = mmcheck(&[
        "replay",
        &file,
        "--variant",
        "immediate",
        "--schedule",
        &tok,
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).expect("replay --json");
    for f in [
        "scenario",
        "file",
        "variant",
        "verdict",
        "message",
        "overrides",
    ] {
        assert_eq!(v[f], r[f], "field {f}");
    }
    assert_eq!(v["scenario"], "missing-rcu-wait");
    assert_eq!(v["trace"], r["trace"]);
}

#[test]
fn tokens_that_do_not_fit_are_refused() {
    let file = scenario("planted/missing-rcu-wait.mmt");
    let rows = check_rows(&file, &[]);
    let tok = token(row(&rows, "immediate"));
    // A thread that does not exist (two threads and the RCU thread: 0 to 2).
    let err = assert_misfit(&file, "immediate", "v1:0x2.7");
    assert!(err.contains("at step 2: thread 7 does not exist"), "{err}");
    // One step more than the violating execution.
    let err = assert_misfit(&file, "immediate", &format!("{tok}.0"));
    assert!(
        err.contains("the execution ended with use-after-free"),
        "{err}"
    );
    assert!(err.contains("1 more step"), "{err}");
    // A count beyond thread 0's steps; the RCU thread before it has a callback to run.
    let err = assert_misfit(&file, "immediate", "v1:0x100000");
    assert!(err.contains(": thread 0 (T0) has finished"), "{err}");
    let err = assert_misfit(&file, "immediate", "v1:2");
    assert!(
        err.contains("at step 0: thread 2 (rcu) is blocked"),
        "{err}"
    );
    // One step after every thread finished (the base is clean).
    let out = mmcheck(&["replay", &file, "--schedule", "v1:", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let threads: Vec<u64> = v["trace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["thread"].as_u64().unwrap())
        .collect();
    let full: Vec<String> = threads.iter().map(|t| t.to_string()).collect();
    let err = assert_misfit(&file, "base", &format!("v1:{}.0", full.join(".")));
    assert!(
        err.contains(&format!(
            "at step {}: every thread finished after {} steps, but the token has 1 more step",
            threads.len(),
            threads.len()
        )),
        "{err}"
    );
    // The same token under the base protocol (clean): its steps outlast the execution or name a
    // finished or blocked thread.
    let out = mmcheck(&["replay", &file, "--schedule", &tok]);
    assert_ne!(out.status.code(), Some(1), "{}", text(&out.stdout));
}

#[test]
fn token_from_another_scenario_is_refused() {
    // A deadlock of two MADV_DONTNEEDs over eight pages: a long first run of thread 0.
    let other = check_rows(&scenario("planted/lock-inversion.mmt"), &[]);
    let tok = token(row(&other, "spin-lock"));
    let file = scenario("planted/missing-lock.mmt");
    // Precondition: thread 0's first run is longer than thread 0 of the two faults, run first
    // (the empty token runs the lowest enabled thread: thread 0 to its end, as long as it can).
    let whole = mmcheck(&["replay", &file, "--schedule", "v1:", "--json"]);
    assert_eq!(whole.status.code(), Some(0));
    let whole: Value = serde_json::from_slice(&whole.stdout).unwrap();
    let t0_steps = whole["trace"]
        .as_array()
        .unwrap()
        .iter()
        .take_while(|s| s["thread"] == 0)
        .count();
    let first: usize = tok
        .strip_prefix("v1:0x")
        .and_then(|r| r.split('.').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{tok} does not start with a run of thread 0"));
    assert!(first > t0_steps, "{tok} vs {t0_steps} steps of thread 0");
    let err = assert_misfit(&file, "base", &tok);
    assert!(err.contains("thread 0 (T0) has finished"), "{err}");
}

#[test]
fn finding_under_set_reproduces_with_the_printed_command() {
    // The base of missing-lock is clean; `--set populate.lock=off` is its `unlocked` variant.
    let file = scenario("planted/missing-lock.mmt");
    let out = mmcheck(&[
        "check",
        &file,
        "--set",
        "populate.lock=off",
        "--budget",
        "10",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("+set: every row runs under --set populate.lock=off"));
    let table_row = stdout
        .lines()
        .find(|l| l.starts_with("missing-lock ") && l.contains(" base+set "))
        .unwrap_or_else(|| panic!("no base+set row:\n{stdout}"));
    assert!(table_row.contains("bad-populate"), "{table_row}");
    // The replay line after the base row's trace.
    let section = stdout
        .split("\n== ")
        .find(|s| s.contains("/ base+set: "))
        .unwrap_or_else(|| panic!("no trace for the base row:\n{stdout}"));
    // The report's header line (the full trace, and its closing `violation:` line, are cut
    // without -v).
    let violation = section
        .lines()
        .find(|l| l.starts_with("BUG: "))
        .expect("BUG header line");
    let cmd = section
        .lines()
        .find_map(|l| l.strip_prefix("replay: mmcheck replay "))
        .expect("replay line");
    let args: Vec<&str> = cmd.split_whitespace().collect();
    assert!(cmd.contains(" --set populate.lock=off "), "{cmd}");
    let out = mmcheck(&[&["replay"], &args[..]].concat());
    assert_eq!(out.status.code(), Some(1), "{cmd}: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains(violation), "{cmd}");
    // Without the override the token does not show the violation.
    let plain: Vec<&str> = args
        .iter()
        .copied()
        .filter(|a| *a != "--set" && *a != "populate.lock=off")
        .collect();
    let out = mmcheck(&[&["replay"], &plain[..]].concat());
    assert_ne!(out.status.code(), Some(1), "{plain:?}");
    // JSON rows say which overrides they ran under.
    let rows = check_rows(&file, &["--set", "populate.lock=off"]);
    for r in &rows {
        assert_eq!(
            r["overrides"],
            serde_json::json!(["populate.lock=off"]),
            "{r}"
        );
    }
    let plain_rows = check_rows(&file, &[]);
    assert_eq!(row(&plain_rows, "base")["overrides"], serde_json::json!([]));
}

#[test]
fn protocol_replacing_a_scenarios_own_settings_warns() {
    // max-ptes-none-zero sets khugepaged.max_ptes_none = 0; linux-6.6 has the default.
    let file = scenario("selftests/khugepaged-max-ptes-none-zero.mmt");
    let out = mmcheck(&["check", &file, "--protocol", "linux-6.6", "--json"]);
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("warning: --protocol linux-6.6 replaces the protocol of "),
        "{err}"
    );
    assert!(err.contains("khugepaged.max_ptes_none 0 -> max"), "{err}");
    // Giving the setting back, or a scenario without settings of its own: no warning.
    let out = mmcheck(&[
        "check",
        &file,
        "--protocol",
        "linux-6.6",
        "--set",
        "khugepaged.max_ptes_none=0",
        "--json",
    ]);
    assert_eq!(text(&out.stderr), "");
    let out = mmcheck(&[
        "replay",
        &scenario("planted/missing-lock.mmt"),
        "--protocol",
        "linux-6.1",
        "--schedule",
        "v1:",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn replay_refuses_unknown_overrides() {
    let file = scenario("planted/missing-lock.mmt");
    for args in [
        ["--protocol", "linux-9"],
        ["--set", "no.such=switch"],
        ["--set", "populate.lock=maybe"],
    ] {
        let out = mmcheck(&[&["replay", &file, "--schedule", "v1:"], &args[..]].concat());
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).starts_with("error: "), "{args:?}");
    }
}
