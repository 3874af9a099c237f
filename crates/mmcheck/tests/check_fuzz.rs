//! Robustness of the whole pipeline, not just the parser (that is scenario/tests/parse_fuzz.rs):
//! damaged copies of every catalogue file are parsed and, when they parse, every expectation is
//! checked with a small budget. Nothing may panic (the explorer turns a panic inside a model
//! thread into `model panicked`, which counts as one here), every row ends, and memory stays
//! bounded. Deterministic: a fixed seed, a fixed number of cases, execution-count budgets.

use mmcheck::check::{run_row, CheckOpts, Status, CATALOGUE};
use mmcheck_explore::Mode;
use mmcheck_scenario::parse::parse_scenario;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// Insertions that reach the corners: big and small numbers, geometry, frames, operations.
const TOKENS: &[&str] = &[
    "\nframes 3\n",
    "\nframes 5\n",
    "\ngeometry levels=5\n",
    "\ngeometry levels=2 entries=4\n",
    "\ngeometry levels=4 entries=512\n",
    " pages=4096",
    " pages=1",
    "\n  munmap @0 pages=8\n",
    "\n  mremap @0 pages=2 to @16\n",
    "\n  madvise collapse @0\n",
    "\n  khugepaged @0 order=2\n",
    "\n  migrate @0\n",
    "\n  fault @0 write\n",
    "\n  load @7\n",
    "\n  store @0 = 18446744073709551615\n",
    "\nset pt_reclaim.free = immediate\n",
    "\nprotocol linux-6.1\n",
    "@0",
    "@8",
    "9",
    "0",
    "\x1b[31m",
    "\u{0}",
    "}",
    "{",
];

fn mutate(text: &str, rng: &mut ChaCha8Rng) -> String {
    let mut s = text.to_string();
    for _ in 0..rng.gen_range(1..=3) {
        let lines: Vec<&str> = s.lines().collect();
        let n = lines.len().max(1);
        s = match rng.gen_range(0..5) {
            0 => {
                let k = rng.gen_range(0..n);
                lines
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| i != k)
                    .map(|(_, l)| format!("{l}\n"))
                    .collect()
            }
            1 => {
                let k = rng.gen_range(0..n);
                let mut v: Vec<&str> = lines.clone();
                if let Some(l) = lines.get(k) {
                    v.insert(k, l);
                }
                v.iter().map(|l| format!("{l}\n")).collect()
            }
            2 => {
                // Replace one digit by another.
                let digits: Vec<usize> = s
                    .char_indices()
                    .filter(|(_, c)| c.is_ascii_digit())
                    .map(|(i, _)| i)
                    .collect();
                match digits.get(rng.gen_range(0..digits.len().max(1))) {
                    Some(&i) => {
                        let d = char::from(b'0' + rng.gen_range(0..10u8));
                        format!("{}{d}{}", &s[..i], &s[i + 1..])
                    }
                    None => s,
                }
            }
            _ => {
                let mut at = rng.gen_range(0..=s.len());
                while !s.is_char_boundary(at) {
                    at -= 1;
                }
                let t = TOKENS[rng.gen_range(0..TOKENS.len())];
                format!("{}{t}{}", &s[..at], &s[at..])
            }
        };
    }
    s
}

fn peak_rss_kib() -> Option<u64> {
    let st = std::fs::read_to_string("/proc/self/status").ok()?;
    let l = st.lines().find(|l| l.starts_with("VmHWM:"))?;
    l.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn damaged_catalogue_files_never_panic_the_checker() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x6d6d_6368_6563_6b21);
    let mut opts = CheckOpts::new(Mode::Dpor, Duration::from_secs(5));
    opts.max_executions = Some(40);
    opts.max_steps = 3_000;
    // More cases by hand: MMCHECK_FUZZ_CASES=5000 cargo test -p mmcheck --test check_fuzz
    let cases: usize = std::env::var("MMCHECK_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let (mut parsed, mut rows) = (0, 0);
    for case in 0..cases {
        let (name, text) = CATALOGUE[rng.gen_range(0..CATALOGUE.len())];
        let damaged = mutate(text, &mut rng);
        let file = format!("fuzz-{case}-{name}");
        let s = match std::panic::catch_unwind(|| parse_scenario(&file, &damaged)) {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                let r = e.render();
                assert!(
                    !r.chars().any(|c| c.is_control() && c != '\n' && c != '\t'),
                    "{file}: raw control bytes in {r:?}"
                );
                continue;
            }
            Err(_) => panic!("{file}: the parser panicked on\n{damaged}"),
        };
        parsed += 1;
        // At most two expectations a case, to keep the test short.
        for e in s.expect.iter().take(2) {
            let row = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_row(&file, &s, e.variant.as_deref(), &e.verdict, &opts, None)
            }))
            .unwrap_or_else(|_| panic!("{file}: the checker panicked on\n{damaged}"));
            rows += 1;
            assert_ne!(
                row.status,
                Status::InternalError,
                "{file}: {row:?}\n{damaged}"
            );
            let msg = row.message.clone().unwrap_or_default();
            assert!(!msg.contains("model panicked"), "{file}: {msg}\n{damaged}");
            assert!(row.executions <= 40, "{file}: {row:?}");
        }
    }
    eprintln!("{parsed} of {cases} damaged files parsed, {rows} rows checked");
    assert!(
        parsed >= 10 && rows >= 10,
        "too few cases ran: {parsed} parsed, {rows} rows"
    );
    if let Some(kib) = peak_rss_kib() {
        assert!(kib < 1 << 20, "peak RSS {kib} KiB");
    }
}
