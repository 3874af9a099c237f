//! `mmcheck check` as a user meets it: tool limits are inconclusive (exit 3), never violations;
//! bad input is refused with exit 2 without losing the other rows; nothing panics on documented
//! input; Ctrl-C prints the finished rows and the summary and exits 130; and the documented
//! commands exist.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn mmcheck(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mmcheck"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run mmcheck")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mmcheck-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(d: &Path, name: &str, body: &str) -> String {
    let p = d.join(name);
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

fn scenario(rel: &str) -> String {
    format!("{}/../../scenarios/{rel}", env!("CARGO_MANIFEST_DIR"))
}

/// Two threads touching two pages of one mapping; `header` goes after the name.
fn small(name: &str, header: &str) -> String {
    format!(
        "scenario {name}\n{header}\ninit {{\n  mmap anon @0 pages=2\n}}\n\
         thread T0 {{\n  store @0 = 1\n}}\nthread T1 {{\n  load @1\n}}\nexpect clean\n"
    )
}

fn json_rows(out: &Output) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("json: {e}\n{}", text(&out.stderr)));
    v.as_array().expect("rows").clone()
}

#[test]
fn the_step_limit_is_inconclusive_not_a_violation() {
    let d = dir("steps");
    let loads: String = (0..300).map(|_| "  load @0\n").collect();
    let f = write(
        &d,
        "long.mmt",
        &format!(
            "scenario long\ninit {{\n  mmap anon @0 pages=1\n}}\nthread T0 {{\n{loads}}}\nexpect clean\n"
        ),
    );
    let out = mmcheck(&["check", &f, "--max-steps", "100", "--budget", "20"]);
    let o = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{o}{}", text(&out.stderr));
    assert!(!o.contains("assertion"), "{o}");
    assert!(
        o.contains("exceeded the step limit of 100 steps; raise it with --max-steps"),
        "{o}"
    );
    assert!(o.lines().count() < 15, "no trace for a tool limit:\n{o}");
    let out = mmcheck(&["check", &f, "--max-steps", "100", "--json"]);
    let rows = json_rows(&out);
    assert_eq!(rows[0]["verdict"], "inconclusive");
    assert_eq!(rows[0]["status"], "inconclusive");
    assert!(rows[0]["limit"].as_str().unwrap().contains("--max-steps"));
}

#[test]
fn running_out_of_frames_is_inconclusive() {
    let d = dir("frames");
    let f = write(&d, "fr.mmt", &small("fr", "frames 4"));
    let out = mmcheck(&["check", &f, "--budget", "20"]);
    let o = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{o}{}", text(&out.stderr));
    assert!(
        o.contains("the frame pool of 4 frames ran out; raise `frames` in the scenario"),
        "{o}"
    );
    // Too few frames to hold an mm at all: bad input, located.
    let f = write(&d, "fr1.mmt", &small("fr1", "frames 1"));
    let out = mmcheck(&["check", &f]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("frames must be 3 to 1048576, not 1"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_budget_cut_is_not_met() {
    let out = mmcheck(&[
        "check",
        &scenario("races/pt-reclaim-refilled-table.mmt"),
        "--max-executions",
        "5",
    ]);
    let o = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{o}");
    assert!(o.contains("budget exhausted after 5 executions"), "{o}");
    assert!(o.contains("raise --max-executions"), "{o}");
}

#[test]
fn five_levels_and_bad_files_do_not_lose_rows() {
    let d = dir("rows");
    let l5 = write(&d, "l5.mmt", &small("l5", "geometry levels=5 entries=4"));
    let bad = write(&d, "bad.mmt", "scenario bad\nthread {\n");
    let good = scenario("planted/missing-rcu-wait.mmt");
    let out = mmcheck(&[
        "check",
        &bad,
        &l5,
        &good,
        "--max-executions",
        "200",
        "--json",
    ]);
    let rows = json_rows(&out);
    let err = text(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert_eq!(rows[0]["status"], "error");
    assert_eq!(rows[1]["scenario"], "l5");
    assert_ne!(rows[1]["status"], "internal-error", "{}", rows[1]);
    assert!(rows[2..].iter().all(|r| r["status"] == "met"), "{rows:?}");
    // Bad input and nothing unexpected: exit 2.
    assert_eq!(out.status.code(), Some(2), "{err}");
}

#[test]
fn same_file_twice_runs_once_and_specials_are_refused() {
    let good = scenario("planted/missing-rcu-wait.mmt");
    let dot = format!(
        "{}/../../scenarios/./planted/missing-rcu-wait.mmt",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = mmcheck(&["check", &good, &dot, "/dev/zero", "--json"]);
    let rows = json_rows(&out);
    assert_eq!(
        rows.len(),
        4,
        "3 rows of one file and one refusal: {rows:?}"
    );
    assert!(text(&out.stderr).contains("/dev/zero: not a regular file (a character device)"));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn json_rows_have_the_same_shape_in_check_and_replay() {
    let f = scenario("planted/missing-rcu-wait.mmt");
    let out = mmcheck(&["check", &f, "--json"]);
    let rows = json_rows(&out);
    let r = rows.iter().find(|r| r["variant"] == "immediate").unwrap();
    assert_eq!(r["scenario"], "missing-rcu-wait");
    assert_eq!(r["file"], f.as_str());
    let token = r["schedule"].as_str().unwrap();
    let out = mmcheck(&[
        "replay",
        &f,
        "--variant",
        "immediate",
        "--schedule",
        token,
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in [
        "scenario",
        "file",
        "variant",
        "overrides",
        "schedule",
        "verdict",
        "message",
    ] {
        assert_eq!(v[k], r[k], "{k}");
    }
}

#[test]
fn ctrl_c_prints_finished_rows_and_the_summary() {
    let d = dir("sigint");
    let long = write(
        &d,
        "long.mmt",
        "scenario long\ninit {\n  mmap anon @0 pages=8\n}\n\
         thread T0 {\n  store @0 = 1\n  madvise dontneed @0 pages=8\n  store @1 = 2\n}\n\
         thread T1 {\n  load @0\n  store @2 = 3\n  load @1\n}\n\
         thread T2 {\n  fault @3\n  madvise dontneed @0 pages=8\n  load @2\n}\nexpect clean\n",
    );
    // Two clean rows that finish in milliseconds (no shrinking), then the long one.
    let q1 = write(&d, "q1.mmt", &small("quick-one", ""));
    let q2 = write(&d, "q2.mmt", &small("quick-two", ""));
    let child = Command::new(env!("CARGO_BIN_EXE_mmcheck"))
        .args(["check", &q1, &q2, &long, "--budget", "600", "--jobs", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Long enough for the quick rows to finish (a debug build on a busy machine is slow), well
    // before the long row's budget.
    std::thread::sleep(std::time::Duration::from_secs(5));
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    let o = text(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{o}{}", text(&out.stderr));
    assert!(o.lines().any(|l| l.starts_with("quick-one ")), "{o}");
    assert!(o.lines().any(|l| l.starts_with("quick-two ")), "{o}");
    assert!(!o.lines().any(|l| l.starts_with("long ")), "{o}");
    assert!(
        o.contains("2/3 expectations met (1 not run (interrupted))"),
        "{o}"
    );
}

#[test]
fn documented_commands_exist() {
    let out = mmcheck(&["presets"]);
    assert_eq!(out.status.code(), Some(0));
    let o = text(&out.stdout);
    for p in mmcheck_kernel::protocol::PRESETS {
        assert!(o.contains(&format!("  {}\n", p.name)), "{}: {o}", p.name);
    }
    let out = mmcheck(&["switches"]);
    assert_eq!(out.status.code(), Some(0));
    let o = text(&out.stdout);
    assert!(o.lines().all(|l| l.chars().count() <= 100), "{o}");
    // Every `mmcheck CMD` the docs name is a command.
    let root = format!("{}/../..", env!("CARGO_MANIFEST_DIR"));
    let help = text(&mmcheck(&["--help"]).stdout);
    for doc in [
        "README.md",
        "docs/scenario-format.md",
        "docs/json.md",
        "docs/design.md",
    ] {
        let t = std::fs::read_to_string(format!("{root}/{doc}")).unwrap();
        for w in t.split("mmcheck ").skip(1) {
            let cmd: String = w
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                .collect();
            if cmd.len() < 4 || !w.starts_with(&cmd) {
                continue;
            }
            if ["check", "replay"].contains(&cmd.as_str()) || help.contains(&format!("  {cmd} ")) {
                continue;
            }
            // Prose ("mmcheck explores") is not a command: only `mmcheck cmd` in backquotes
            // or code blocks counts.
            let quoted =
                t.contains(&format!("`mmcheck {cmd}")) || t.contains(&format!("$ mmcheck {cmd}"));
            assert!(
                !quoted,
                "{doc} names `mmcheck {cmd}`, which is not a command"
            );
        }
    }
}

/// A clean verdict carries its evidence: a reached window is printed with its count and a replay
/// command; a window no execution of a complete search reaches makes the row `unreached` (exit
/// 1); a variant that changes nothing is flagged; outcomes are counted in JSON.
#[test]
fn reach_evidence_unreached_windows_and_same_as_base() {
    let d = dir("reach");
    let body = "scenario r\ninit {\n  mmap anon @0 pages=8\n  store @0 = 1\n}\n\
                thread T0 {\n  store @1 = 2\n}\nthread T1 {\n  madvise dontneed @0 pages=1\n}\n\
                variant same: mremap.realign = off\n\
                expect clean\nexpect same: clean\n";
    let met = write(
        &d,
        "met.mmt",
        &format!("{body}expect reach T0 in handle_mm_fault while T1 in zap_pte_range holds ptl\n"),
    );
    let out = mmcheck(&["check", &met, "-v"]);
    let so = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{so}");
    assert!(so.contains("reach evidence"), "{so}");
    assert!(
        so.contains("T0 in handle_mm_fault while T1 in zap_pte_range holds ptl"),
        "{so}"
    );
    assert!(so.contains("replay: mmcheck replay"), "{so}");
    assert!(
        so.contains("warning: r / same explores exactly the executions of its base"),
        "{so}"
    );
    assert!(so.contains("final: 0x8000 unmapped 0x9000=2"), "{so}");
    let out = mmcheck(&["check", &met, "--json"]);
    let rows = json_rows(&out);
    assert_eq!(rows[0]["reach"][0]["met"], true);
    assert!(rows[0]["outcomes"]
        .as_array()
        .is_some_and(|o| !o.is_empty()));
    assert_eq!(rows[1]["same_as_base"], true);
    let unmet = write(
        &d,
        "unmet.mmt",
        &format!("{body}expect reach T0 in collapse_huge_page\n"),
    );
    let out = mmcheck(&["check", &unmet]);
    let so = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{so}");
    assert!(so.contains("unreached"), "{so}");
    assert!(so.contains("no execution of the complete search"), "{so}");
}

/// An `init` that would wait for something only a thread could end (a load of a page whose
/// migration `migrate ... unmap` left in flight) is bad input, reported at once: the sequential
/// set-up check used to spin on it forever (found by `mmcheck fuzz --seed 2`, hung).
#[test]
fn an_init_that_would_wait_is_an_error_not_a_hang() {
    let d = dir("init-waits");
    let f = write(
        &d,
        "waits.mmt",
        "scenario waits\ninit {\n  mmap anon @0 pages=8\n  store @0 = 1\n  migrate @0 unmap\n  \
         load @0\n}\nthread T0 {\n  load @1\n}\nexpect clean\n",
    );
    let out = mmcheck(&["check", "--budget", "5", &f]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let o = text(&out.stdout);
    assert!(o.contains("init waits on folio_lock"), "{o}");
    assert!(
        !text(&out.stderr).contains("panicked"),
        "{}",
        text(&out.stderr)
    );
}
