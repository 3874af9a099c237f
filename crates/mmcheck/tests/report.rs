//! Counterexample reports read at a glance: the seed-004 counterexample (mremap's `move_ptes`
//! racing migration's rmap walk) names every object as the kernel would, decodes entry writes,
//! and its race window is short; and the HTML timeline renders in a real browser (headless
//! Chromium, skipped with a message when it is not installed; CI installs it).

use mmcheck::check::{run_row, CheckOpts};
use mmcheck_explore::report::{json_run, render_run, slice};
use mmcheck_explore::{Mode, Model, Schedule};
use mmcheck_scenario::{parse::load_scenario_file, KernelModel};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

fn seed004() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scenarios/seeds/seed-004-mremap-rmap-locks.mmt")
}

fn opts() -> CheckOpts {
    CheckOpts {
        html: true,
        ..CheckOpts::new(Mode::Dpor, Duration::from_secs(20))
    }
}

/// The shrunk counterexample of seed-004 / never, replayed with recording, and its HTML section.
fn counterexample() -> (
    Arc<KernelModel>,
    mmcheck_explore::schedule::Run,
    mmcheck::check::Row,
) {
    counterexample_of(&seed004(), "never", "rmap-missed")
}

/// The counterexample of `variant` of the scenario at `path`, replayed with recording.
fn counterexample_of(
    path: &Path,
    variant: &str,
    verdict: &str,
) -> (
    Arc<KernelModel>,
    mmcheck_explore::schedule::Run,
    mmcheck::check::Row,
) {
    let s = load_scenario_file(path).expect("the scenario parses");
    let e = s
        .expect
        .iter()
        .find(|e| e.variant.as_deref() == Some(variant))
        .expect("the scenario expects a violation under the variant");
    let file = path.display().to_string();
    let row = run_row(&file, &s, Some(variant), &e.verdict, &opts(), None);
    assert_eq!(row.verdict, verdict, "{row:?}");
    let token = row.schedule.clone().expect("a schedule token");
    let sv = s.with_variant(Some(variant)).expect("variant");
    let m = Arc::new(KernelModel::new(sv));
    let sched = Schedule::parse(&token).expect("token parses");
    let r = mmcheck_explore::schedule::replay_strict(&m, &sched, true).expect("the token fits");
    assert!(r.violation.is_some());
    (m, r, row)
}

/// Object names that are numbers, not kernel names, or values in Rust debug form.
const UNNAMED: &[&str] = &[
    "var#", "lock#", "obj#", "entry[", "Value(", "unlinked", "Some(",
];

/// The old names `frame5`, `page5`, `data7` and Debug-form entries `pfn 5wa`.
fn numbered(text: &str) -> Option<String> {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == ':')
        .collect();
    for w in &words {
        for p in ["frame", "page", "data"] {
            if let Some(rest) = w.strip_prefix(p) {
                if rest.starts_with(|c: char| c.is_ascii_digit()) {
                    return Some(w.to_string());
                }
            }
        }
        if w.len() > 1
            && w.starts_with(|c: char| c.is_ascii_digit())
            && w.ends_with(['w', 'a', 'd'])
            && w.trim_end_matches(['w', 'a', 'd', 's'])
                .parse::<u64>()
                .is_ok()
        {
            return Some(w.to_string());
        }
    }
    None
}

#[test]
fn seed004_race_window_is_short_and_named() {
    let (m, r, row) = counterexample();
    let sl = slice(&r);
    assert!(
        sl.steps.len() <= 15,
        "race window of {} steps: {:?}",
        sl.steps.len(),
        sl.steps
    );
    let threads: Vec<String> = (0..m.threads()).map(|t| m.thread_name(t)).collect();
    let text = render_run(&threads, &r, true);
    for bad in UNNAMED {
        assert!(!text.contains(bad), "`{bad}` in the report:\n{text}");
    }
    assert_eq!(numbered(&text), None, "{text}");
    // The header says what went wrong, on which entry, and who changed it when.
    assert!(text.contains("BUG: rmap-missed"), "{text}");
    assert!(
        text.contains("last changed by T0 at step") && text.contains("in move_ptes"),
        "{text}"
    );
    // Entry writes are decoded: migration's install and move_ptes' move of the entry.
    assert!(text.contains("→ migration(pfn 5"), "{text}");
    assert!(text.contains("pte@0x"), "{text}");
    assert!(text.contains("&anon_vma->rwsem"), "{text}");
    assert!(text.contains("&mm->mmap_lock"), "{text}");
    // The window holds both sides of the race, ordered by a happens-before edge.
    let threads_in: std::collections::BTreeSet<usize> =
        sl.steps.iter().map(|&i| r.trace[i].thread).collect();
    assert!(threads_in.len() >= 2, "{:?}", sl.steps);
    assert!(!sl.edges.is_empty());
    // The JSON trace carries the same names and values.
    let js = json_run(&r);
    assert!(js
        .iter()
        .all(|s| !s.object.contains("var#") && !s.object.contains("lock#")));
    assert!(js.iter().any(|s| s.value.is_some()));
    assert!(row
        .text_trace
        .as_deref()
        .unwrap_or("")
        .contains("race window"));
}

/// Under a weak memory model the trace says what each step did to the store buffers: the
/// relaxed PTE clear of `try_to_unmap_one` is buffered (memory unchanged), and the write that
/// reaches memory later is named as that CPU's.
#[test]
fn weak_memory_trace_names_buffered_and_committed_stores() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scenarios/memory/lazyfree-gup-fast-mb.mmt");
    let (m, r, _) = counterexample_of(&path, "lkmm-no-mb", "lost-write");
    let threads: Vec<String> = (0..m.threads()).map(|t| m.thread_name(t)).collect();
    let text = render_run(&threads, &r, true);
    assert!(
        text.lines()
            .any(|l| l.contains("try_to_unmap_one") && l.contains("→ none, buffered by CPU1")),
        "{text}"
    );
    assert!(text.contains("CPU1's buffered rmw write"), "{text}");
}

#[test]
fn folded_trace_is_shorter_than_verbose() {
    let (m, r, _) = counterexample();
    let threads: Vec<String> = (0..m.threads()).map(|t| m.thread_name(t)).collect();
    let short = render_run(&threads, &r, false);
    let long = render_run(&threads, &r, true);
    assert!(short.lines().count() < long.lines().count());
    assert!(short.contains("chatter folded"));
    assert!(!long.contains("chatter folded"));
}

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn chromium_cmd(bin: &Path, profile: &Path) -> Command {
    let mut c = Command::new(bin);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

#[test]
fn html_timeline_renders_in_headless_chromium() {
    let (_, r, row) = counterexample();
    let sec = row.html.clone().expect("an HTML section with --html");
    let page = mmcheck_explore::html::page("mmcheck counterexamples", &[sec]);
    // Self-contained: no fetches of anything.
    for bad in ["http://", "https://", "<link", " src="] {
        assert!(!page.contains(bad), "`{bad}` in the page");
    }
    let dir = std::env::temp_dir().join(format!("mmcheck-html-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("report.html");
    std::fs::write(&file, &page).expect("write html");
    let Some(bin) = chromium() else {
        eprintln!(
            "SKIPPED: chromium is not installed (apt-get install -y chromium); the page was \
             written to {} but not rendered",
            file.display()
        );
        return;
    };
    let out = chromium_cmd(&bin, &dir.join("profile"))
        .arg("--dump-dom")
        .arg(format!("file://{}", file.display()))
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("data-rendered=\"yes\""),
        "the page's script did not run:\n{}\n{}",
        &dom[..dom.len().min(2000)],
        String::from_utf8_lossy(&out.stderr)
    );
    // Every step of the trace is a row of the timeline, and the page's script counted them.
    let steps = r.trace.len();
    assert!(dom.matches("data-step=").count() > steps, "rows missing");
    assert!(
        dom.contains(&format!("rendered {steps} steps")),
        "summary missing for {steps} steps"
    );
    assert!(dom.contains("class=\"violation\"") && dom.contains("rmap-missed"));
    assert!(dom.contains("step win"), "race window not highlighted");
    assert!(dom.contains("mmcheck replay"), "replay command missing");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_and_replay_write_html() {
    let dir = std::env::temp_dir().join(format!("mmcheck-html-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = seed004().display().to_string();
    let page = dir.join("check.html");
    let out = Command::new(env!("CARGO_BIN_EXE_mmcheck"))
        .args(["check", &file, "--budget", "20", "--json", "--html"])
        .arg(&page)
        .output()
        .expect("run mmcheck check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&page).expect("check wrote the page");
    assert!(html.contains("seed-004-mremap-rmap-locks / never") && html.contains("data-step="));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json rows");
    let token = rows
        .as_array()
        .and_then(|r| r.iter().find_map(|r| r["schedule"].as_str()))
        .expect("a schedule")
        .to_string();
    let page = dir.join("replay.html");
    let out = Command::new(env!("CARGO_BIN_EXE_mmcheck"))
        .args([
            "replay",
            &file,
            "--variant",
            "never",
            "--schedule",
            &token,
            "--html",
        ])
        .arg(&page)
        .output()
        .expect("run mmcheck replay");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&page).expect("replay wrote the page");
    assert!(html.contains("rmap-missed") && html.contains(&token));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("race window") && text.contains("chatter folded"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
