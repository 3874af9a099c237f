//! Robustness: `parse_scenario` never panics, on arbitrary text or on damaged copies of the
//! scenario files, and every error it returns is located inside the text and renders.

use mmcheck_scenario::parse_scenario;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

const FILES: &[&str] = &[
    include_str!("../../../scenarios/planted/missing-recheck.mmt"),
    include_str!("../../../scenarios/planted/missing-rcu-wait.mmt"),
    include_str!("../../../scenarios/planted/missing-lock.mmt"),
    include_str!("../../../scenarios/planted/lock-inversion.mmt"),
    include_str!("../../../scenarios/planted/missing-tlb-flush.mmt"),
];

/// Words and punctuation of the format, for token soup and insertions.
const TOKENS: &[&str] = &[
    "scenario",
    "doc",
    "geometry",
    "protocol",
    "set",
    "frames",
    "init",
    "thread",
    "variant",
    "expect",
    "clean",
    "violation",
    "use-after-free",
    "deadlock",
    "load",
    "store",
    "fault",
    "write",
    "read",
    "mmap",
    "anon",
    "shmem",
    "huge",
    "munmap",
    "madvise",
    "dontneed",
    "collapse",
    "rcu_walk",
    "folio_walk",
    "ptl",
    "ref",
    "gup_fast",
    "pin",
    "mremap",
    "to",
    "migrate",
    "levels=",
    "entries=",
    "pages=",
    "pages=0",
    "pt_reclaim.free",
    "rcu",
    "immediate",
    "linux-6.1",
    "T0",
    "T1",
    "buggy",
    "@0",
    "@1",
    "@9",
    "@",
    "0x8000",
    "0x",
    "18446744073709551616",
    "8",
    "0",
    "=",
    ":",
    ",",
    "{",
    "}",
    "#",
    "\"",
    "\\",
    " ",
    " ",
    "\t",
    "\n",
    "\n",
    "\r\n",
    "\r",
    "é",
    "\u{feff}",
];

fn config() -> Config {
    Config {
        cases: 256,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x006d_6d63_6865_636b),
        ..Config::default()
    }
}

/// Parse `text`: a scenario within the limits, or an error located in the text.
fn check(text: &str) -> Result<(), TestCaseError> {
    match parse_scenario("fuzz.mmt", text) {
        Ok(s) => {
            prop_assert!((1..=4).contains(&s.threads.len()));
            prop_assert!(!s.expect.is_empty());
            prop_assert!(!s.name.is_empty());
        }
        Err(e) => {
            let (line, col) = e.line_col();
            prop_assert!(line >= 1 && col >= 1, "{e}");
            let lines: Vec<&str> = text.split('\n').collect();
            prop_assert!(line <= lines.len().max(1), "{e}: {} lines", lines.len());
            let this = lines.get(line - 1).copied().unwrap_or("");
            prop_assert!(
                col <= this.chars().count() + 1,
                "{e}: line {line} is {this:?}"
            );
            // A line that is not there only for an empty text.
            if text.ends_with('\n') {
                prop_assert!(line < lines.len(), "{e}: past the last line");
            }
            let span = e.span();
            prop_assert!(
                span.start <= span.end && span.end <= text.len(),
                "{e}: {span:?}"
            );
            prop_assert!(text.is_char_boundary(span.start) && text.is_char_boundary(span.end));
            let loc = format!("fuzz.mmt:{line}:{col}");
            prop_assert!(e.to_string().starts_with(&format!("{loc}: ")), "{e}");
            let r = e.render();
            prop_assert!(r.contains(&loc), "{r}");
            prop_assert!(r.contains(e.message()), "{r}");
        }
    }
    Ok(())
}

#[derive(Clone, Debug)]
enum Mutation {
    FlipByte(usize, u8),
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    InsertToken(usize, &'static str),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(k, x)| Mutation::FlipByte(k, x)),
        any::<usize>().prop_map(Mutation::DeleteLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (any::<usize>(), prop::sample::select(TOKENS))
            .prop_map(|(k, t)| Mutation::InsertToken(k, t)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(text: &str, muts: &[Mutation]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for m in muts {
        let mut lines: Vec<Vec<u8>> = bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
        let n = lines.len();
        match *m {
            Mutation::FlipByte(k, x) if !bytes.is_empty() => {
                let k = k % bytes.len();
                bytes[k] ^= x;
                continue;
            }
            Mutation::InsertToken(k, t) => {
                let k = k % (bytes.len() + 1);
                bytes.splice(k..k, t.bytes());
                continue;
            }
            Mutation::Truncate(k) => {
                bytes.truncate(k % (bytes.len() + 1));
                continue;
            }
            Mutation::DeleteLine(k) => {
                lines.remove(k % n);
            }
            Mutation::DuplicateLine(k) => {
                let l = lines[k % n].clone();
                lines.insert(k % n, l);
            }
            Mutation::SwapLines(a, b) => lines.swap(a % n, b % n),
            Mutation::FlipByte(..) => continue,
        }
        bytes = lines.join(&b'\n');
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary text: any Unicode, printable ASCII with the format's punctuation, and soups of
    /// the format's own tokens.
    #[test]
    fn arbitrary_text_never_panics(
        text in prop_oneof![
            any::<String>(),
            "[ -~\t\n\r@#{}=:,\"\\\\]{0,300}",
            prop::collection::vec(prop::sample::select(TOKENS), 0..120).prop_map(|t| t.concat()),
        ]
    ) {
        check(&text)?;
    }

    /// The scenario files with bytes flipped, lines deleted, duplicated or swapped, tokens
    /// inserted, or cut short.
    #[test]
    fn mutated_scenario_files_never_panic(
        file in 0..FILES.len(),
        muts in prop::collection::vec(mutation(), 1..6),
    ) {
        check(&apply(FILES[file], &muts))?;
    }
}

#[test]
fn the_unmutated_files_parse() {
    for f in FILES {
        parse_scenario("f.mmt", f).unwrap_or_else(|e| panic!("{}", e.render()));
    }
}

#[test]
fn every_prefix_of_a_file_is_handled() {
    // Truncation at every character boundary: the cheapest exhaustive damage.
    let f = FILES[1];
    for (k, _) in f.char_indices() {
        check(&f[..k]).unwrap();
    }
}
