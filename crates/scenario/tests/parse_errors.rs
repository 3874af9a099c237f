//! Every validation and syntax error of the `.mmt` format: its message and its exact line and
//! column; and what valid files parse to.

use mmcheck_kernel::protocol::TableFree;
use mmcheck_platform::ViolationKind;
use mmcheck_scenario::parse::OPS;
use mmcheck_scenario::{
    load_scenario_file, parse_scenario, Backing, Op, ParseError, Scenario, SetupOp, Verdict,
};

/// The modelled operations, as errors list them.
const KNOWN: &str =
    "load, store, fault, mmap, munmap, madvise dontneed, rcu_walk, folio_walk, gup_fast, mremap, check, migrate, madvise collapse, khugepaged, try_to_unmap, collapse_pte_mapped_thp, rmap_walk, punch_hole, fork, numa_hint, mprotect, child_exit, truncate, retract, split_huge_page, madvise free, madvise pageout, uffd_register, uffd_copy, uffd_wp, mmap_stack, uffd_move, uffd_unprotect, uffd_unregister";

/// A valid body: one mapping, one thread, one expectation (7 lines).
const BODY: &str = "init {
  mmap anon @0 pages=8
}
thread T0 {
  load @0
}
expect clean
";

fn err(text: &str) -> ParseError {
    match parse_scenario("t.mmt", text) {
        Ok(s) => panic!("parsed, expected an error: {s:?}\n{text}"),
        Err(e) => e,
    }
}

/// The error of `text` is `msg` at `line:col`.
#[track_caller]
fn check(text: &str, line: usize, col: usize, msg: &str) -> ParseError {
    let e = err(text);
    assert_eq!(e.message(), msg, "\n{}", e.render());
    assert_eq!(e.line_col(), (line, col), "\n{}", e.render());
    assert!(
        e.to_string().starts_with(&format!("t.mmt:{line}:{col}: ")),
        "{e}"
    );
    assert!(
        e.render().contains(&format!("[t.mmt:{line}:{col}]")),
        "{}",
        e.render()
    );
    e
}

fn ok(text: &str) -> Scenario {
    parse_scenario("t.mmt", text).unwrap_or_else(|e| panic!("{}", e.render()))
}

// ----- rendering ---------------------------------------------------------------------------

#[test]
fn render_has_the_line_and_a_caret_under_the_offending_text() {
    let text = format!("scenario seed-3\n\n# switches\n\n\nset pt_reclaim.fre = rcu\n{BODY}");
    let e = parse_scenario("scenarios/seeds/003.mmt", &text).unwrap_err();
    assert_eq!(e.line_col(), (6, 5));
    assert_eq!(
        e.to_string(),
        "scenarios/seeds/003.mmt:6:5: unknown switch 'pt_reclaim.fre' (mmcheck switches lists them)"
    );
    let r = e.render();
    let expected = "  error: unknown switch 'pt_reclaim.fre' (mmcheck switches lists them)
   ,-[scenarios/seeds/003.mmt:6:5]
 6 | set pt_reclaim.fre = rcu
   :     ^^^^^^^^^^^^^^
   `----
  help: did you mean 'pt_reclaim.free'?
";
    assert_eq!(r, expected, "\n{r}");
    assert!(!r.contains('\u{1b}'), "no colours");
    assert_eq!(e.help(), Some("did you mean 'pt_reclaim.free'?"));
    assert_eq!(e.file_name(), "scenarios/seeds/003.mmt");
    assert_eq!(&text[e.span()], "pt_reclaim.fre");
}

#[test]
fn render_of_an_error_at_the_end_of_the_file() {
    // No newline at the end: the column just past the last character.
    let e = check(
        "scenario s\nset pt_reclaim.free =",
        2,
        22,
        "expected a switch value, found end of file",
    );
    assert!(
        e.render().contains(" 2 | set pt_reclaim.free ="),
        "{}",
        e.render()
    );
    // With a newline: the end of the last line, not a line that is not there.
    check(
        "scenario s\nset pt_reclaim.free =\n",
        2,
        22,
        "expected a switch value, found end of line",
    );
    check("scenario s\ndoc \"abc", 2, 5, "unterminated string");
}

// ----- protocol ----------------------------------------------------------------------------

#[test]
fn unknown_switch() {
    let e = check(
        &format!("scenario s\nset pt_reclaim.fre = rcu\n{BODY}"),
        2,
        5,
        "unknown switch 'pt_reclaim.fre' (mmcheck switches lists them)",
    );
    assert_eq!(e.help(), Some("did you mean 'pt_reclaim.free'?"));
    let e = err(&format!("scenario s\nset zzzzzz = on\n{BODY}"));
    assert!(
        e.help()
            .unwrap()
            .starts_with("known switches: pt_reclaim, pt_reclaim.free"),
        "{e:?}"
    );
}

#[test]
fn bad_switch_value() {
    check(
        &format!("scenario s\nset pt_reclaim.free = never\n{BODY}"),
        2,
        23,
        "switch 'pt_reclaim.free' takes rcu | ipi | immediate, not 'never'",
    );
}

#[test]
fn unknown_preset() {
    check(
        &format!("scenario s\nprotocol linux-9\n{BODY}"),
        2,
        10,
        "unknown preset 'linux-9' (known: linux-6.1, linux-6.6, linux-6.14, linux-2026)",
    );
}

#[test]
fn variant_with_an_unknown_switch_or_value() {
    check(
        &format!("scenario s\n{BODY}variant buggy: pt_reclaim.fre = immediate\n"),
        9,
        16,
        "unknown switch 'pt_reclaim.fre' (mmcheck switches lists them)",
    );
    check(
        &format!(
            "scenario s\n{BODY}variant buggy: pt_reclaim.free = immediate, tlb.gather_flush = of\n"
        ),
        9,
        64,
        "switch 'tlb.gather_flush' takes on | off, not 'of'",
    );
}

#[test]
fn duplicate_variant() {
    check(
        &format!("scenario s\n{BODY}variant a: tlb.gather_flush = off\nvariant a: tlb.gather_flush = on\n"),
        10,
        9,
        "duplicate variant 'a' (first at line 9)",
    );
}

// ----- geometry and frames -----------------------------------------------------------------

#[test]
fn impossible_geometry() {
    check(
        &format!("scenario s\ngeometry levels=7 entries=8\n{BODY}"),
        2,
        17,
        "impossible geometry: levels must be 2 to 5, not 7",
    );
    check(
        &format!("scenario s\ngeometry levels=3 entries=6\n{BODY}"),
        2,
        27,
        "impossible geometry: entries per table must be a power of two from 4 to 512, not 6",
    );
    check(
        &format!("scenario s\ngeometry levels=99999999999\n{BODY}"),
        2,
        17,
        "impossible geometry: levels must be 2 to 5, not 99999999999",
    );
    check(
        &format!("scenario s\ngeometry levels=3 levels=3\n{BODY}"),
        2,
        19,
        "'levels' given twice",
    );
    check(
        &format!("scenario s\ngeometry depth=3\n{BODY}"),
        2,
        10,
        "unknown geometry parameter 'depth' (known: levels, entries)",
    );
}

#[test]
fn frames_out_of_range() {
    check(
        &format!("scenario s\nframes 0\n{BODY}"),
        2,
        8,
        "frames must be 3 to 1048576, not 0",
    );
    check(
        &format!("scenario s\nframes 8 spare=8\n{BODY}"),
        2,
        16,
        "spare=8 leaves no frame for init (the pool has 8)",
    );
    check(
        &format!("scenario s\nframes reserve=2\n{BODY}"),
        2,
        8,
        "unknown frames parameter 'reserve' (known: spare)",
    );
    let s =
        mmcheck_scenario::parse_scenario("s.mmt", &format!("scenario s\nframes spare=3\n{BODY}"))
            .expect("frames spare=K parses");
    assert_eq!((s.nr_frames, s.spare_frames), (64, Some(3)));
}

// ----- threads -----------------------------------------------------------------------------

#[test]
fn no_threads() {
    check(
        "scenario s\nexpect clean\n",
        1,
        1,
        "no threads: a scenario needs 1 to 4 'thread NAME { ... }' blocks",
    );
}

#[test]
fn too_many_threads() {
    let mut text = "scenario s\ninit {\n  mmap anon @0 pages=8\n}\n".to_string();
    for t in 0..5 {
        text.push_str(&format!("thread T{t} {{\n  load @0\n}}\n"));
    }
    text.push_str("expect clean\n");
    check(
        &text,
        17,
        8,
        "too many threads: at most 4 (the explorer gives each thread a CPU and keeps one for RCU callbacks)",
    );
    text = text.replace("thread T4 {\n  load @0\n}\n", "");
    assert_eq!(ok(&text).threads.len(), 4);
}

#[test]
fn duplicate_thread_name() {
    check(
        &format!("scenario s\n{BODY}thread T0 {{\n  load @1\n}}\n"),
        9,
        8,
        "duplicate thread name 'T0' (first at line 5)",
    );
}

// ----- addresses ---------------------------------------------------------------------------

#[test]
fn setup_address_outside_every_vma_so_far() {
    check(
        "scenario s\ninit {\n  store @0 = 1\n  mmap anon @0 pages=8\n}\nthread T0 {\n  load @0\n}\nexpect clean\n",
        3,
        9,
        "address 0x8000 (@0) is outside every VMA mapped by 'init' before this line (VMAs: none)",
    );
    check(
        "scenario s\ninit {\n  mmap anon @0 pages=8\n  load @8\n}\nthread T0 {\n  load @0\n}\nexpect clean\n",
        4,
        8,
        "address 0x10000 (@8) is outside every VMA mapped by 'init' before this line (VMAs: 0x8000 (@0)..0x10000 (@8) (line 3))",
    );
}

#[test]
fn thread_address_outside_every_vma() {
    check(
        "scenario s\ninit {\n  mmap anon @0 pages=8\n}\nthread T0 {\n  fault @8 write\n}\nexpect clean\n",
        6,
        9,
        "address 0x10000 (@8) is outside every VMA mapped by 'init' or by any thread (VMAs: 0x8000 (@0)..0x10000 (@8) (line 3))",
    );
    check(
        "scenario s\ninit {\n  mmap anon @0 pages=8\n}\nthread T0 {\n  load 0x7fff\n}\nexpect clean\n",
        6,
        8,
        "address 0x7fff is outside every VMA mapped by 'init' or by any thread (VMAs: 0x8000 (@0)..0x10000 (@8) (line 3))",
    );
}

#[test]
fn thread_addresses_mapped_by_any_thread_are_allowed() {
    // T0 touches what T1 maps: whether it exists yet is the interleaving's business.
    let s = ok("scenario s\nthread T0 {\n  load @20\n  store 0x1c010 = 3\n}\nthread T1 {\n  mmap shmem @20 pages=2\n  munmap @20 pages=2\n}\nexpect clean\n");
    let a = s.page(20);
    assert_eq!(a, 0x1c000);
    assert_eq!(
        s.threads,
        vec![
            vec![
                Op::Load { addr: a },
                Op::Store {
                    addr: a + 0x10,
                    value: 3
                }
            ],
            vec![
                Op::Mmap {
                    addr: a,
                    pages: 2,
                    backing: Backing::ShmemShared
                },
                Op::Munmap { addr: a, pages: 2 },
            ],
        ]
    );
}

#[test]
fn address_beyond_the_address_space() {
    check(
        "scenario s\nthread T0 {\n  mmap anon 0x200000 pages=1\n}\nexpect clean\n",
        3,
        13,
        "address 0x200000 is beyond the address space (TASK_SIZE 0x200000 for 3 levels x 8 entries)",
    );
    check(
        "scenario s\nthread T0 {\n  mmap anon @18446744073709551615 pages=1\n}\nexpect clean\n",
        3,
        13,
        "address @18446744073709551615 is beyond the address space (TASK_SIZE 0x200000 for 3 levels x 8 entries)",
    );
    check(
        "scenario s\nthread T0 {\n  mmap anon @0 pages=1000\n}\nexpect clean\n",
        3,
        22,
        "1000 pages from 0x8000 (@0) run past the end of the address space (TASK_SIZE 0x200000 for 3 levels x 8 entries)",
    );
    check(
        "scenario s\nthread T0 {\n  store @0 = 99999999999999999999999\n}\nexpect clean\n",
        3,
        14,
        "number '99999999999999999999999' is too large (at most 2^64 - 1)",
    );
}

#[test]
fn pages_zero() {
    check(
        &format!("scenario s\n{BODY}thread T1 {{\n  madvise dontneed @0 pages=0\n}}\n"),
        10,
        29,
        "pages must be at least 1, not 0",
    );
    check(
        "scenario s\ninit {\n  mmap anon @0 pages=0\n}\nthread T0 {\n  load @0\n}\nexpect clean\n",
        3,
        22,
        "pages must be at least 1, not 0",
    );
}

#[test]
fn unaligned_and_overlapping_mappings() {
    check(
        "scenario s\ninit {\n  mmap anon 0x8010 pages=1\n}\nthread T0 {\n  load @0\n}\nexpect clean\n",
        3,
        13,
        "address 0x8010 is not page-aligned (pages are 0x1000 bytes)",
    );
    check(
        "scenario s\ninit {\n  mmap anon @0 pages=8\n  mmap shmem @4 pages=8\n}\nthread T0 {\n  load @0\n}\nexpect clean\n",
        4,
        14,
        "mapping 0xc000 (@4)..0x14000 (@12) overlaps the mapping from line 3 (mmap fails with EEXIST)",
    );
}

// ----- operations --------------------------------------------------------------------------

#[test]
fn every_named_operation_is_modelled() {
    assert!(
        OPS.iter().all(|o| o.modelled()),
        "{:?}",
        OPS.iter()
            .filter(|o| !o.modelled())
            .map(|o| o.name)
            .collect::<Vec<_>>()
    );
}

#[test]
fn unknown_operation() {
    let e = check(
        &format!("scenario s\n{BODY}thread T1 {{\n  lod @0\n}}\n"),
        10,
        3,
        &format!("unknown operation 'lod' (known: {KNOWN})"),
    );
    assert_eq!(e.help(), Some("did you mean 'load'?"));
    check(
        &format!("scenario s\n{BODY}thread T1 {{\n  madvise willneed @0 pages=1\n}}\n"),
        10,
        3,
        &format!("unknown operation 'madvise willneed' (known: {KNOWN})"),
    );
    check(
        &format!("scenario s\n{BODY}thread T1 {{\n  madvise\n}}\n"),
        10,
        10,
        "expected the kind of 'madvise' (dontneed, collapse, free, pageout), found end of line",
    );
}

#[test]
fn operation_arguments() {
    let t = |op: &str| format!("scenario s\n{BODY}thread T1 {{\n  {op}\n}}\n");
    check(
        &t("store @0 5"),
        10,
        12,
        "expected '=' and the value to store, found '5'",
    );
    check(
        &t("load @0 junk"),
        10,
        11,
        "expected end of line, found 'junk'",
    );
    check(
        &t("load"),
        10,
        7,
        "expected an address (@PAGE or a byte address), found end of line",
    );
    check(
        &t("load @"),
        10,
        9,
        "expected a page number after '@', found end of line",
    );
    check(
        &t("load @x"),
        10,
        9,
        "expected a page number after '@', found 'x'",
    );
    check(
        &t("load 12ab"),
        10,
        8,
        "expected an address (@PAGE or a byte address), found '12ab'",
    );
    check(
        &t("fault @0 wrte"),
        10,
        12,
        "expected 'read' or 'write' or end of line, found 'wrte'",
    );
    check(
        &t("fault @0 read write"),
        10,
        17,
        "a fault is either 'read' or 'write'",
    );
    check(
        &t("munmap @0"),
        10,
        12,
        "expected 'pages=N', found end of line",
    );
    check(
        &t("munmap @0 size=1"),
        10,
        13,
        "expected 'pages=N', found 'size'",
    );
    check(
        &t("mmap file @0 pages=1"),
        10,
        8,
        "expected 'anon', 'shmem' or 'shmem-private', found 'file' (other file systems are not modelled)",
    );
    check(
        &t("mmap shmem-private @9 pages=1 of @0"),
        10,
        36,
        "'of' is only supported in 'init' (the file a thread's mmap would map may not exist yet)",
    );
    check(
        &t("mmap anon @9 pages=1 of @0"),
        10,
        27,
        "'of' maps a shmem file again: it needs 'shmem' or 'shmem-private', not 'anon'",
    );
    check(
        &t("mmap shmem @9 pages=1 of @0 of @0"),
        10,
        31,
        "'of' given twice",
    );
    check(
        "scenario s\ninit {\n  mmap anon @0 pages=8\n  mmap shmem-private @8 pages=8 of @1\n}\nthread T0 {\n  load @0\n}\nexpect clean\n",
        4,
        36,
        "'of 0x9000 (@1)' names an anonymous mapping: 'of' maps the shmem file mapped there",
    );
    check(
        "scenario s\ninit {\n  mmap shmem @0 pages=8\n  mmap shmem-private @8 pages=8 of @16\n}\nthread T0 {\n  load @0\n}\nexpect clean\n",
        4,
        36,
        "address 0x18000 (@16) is outside every VMA mapped by 'init' before this line (VMAs: 0x8000 (@0)..0x10000 (@8) (line 3))",
    );
    check(
        &t("mmap anon @9 pages=1 huge"),
        10,
        24,
        "'huge' is only supported in 'init' (a thread's mmap cannot set VM_HUGEPAGE yet)",
    );
    check(
        "scenario s\ninit {\n  mmap anon @0 pages=8\n  fault @0\n}\nthread T0 {\n  load @0\n}\nexpect clean\n",
        4,
        3,
        "operation 'fault' is not allowed in 'init' (init takes load, store, mmap, munmap, mremap, migrate, retract, madvise free, madvise pageout, uffd_register, mmap_stack)",
    );
}

#[test]
fn userfaultfd_arguments() {
    let t = |op: &str| format!("scenario s\n{BODY}thread T1 {{\n  {op}\n}}\n");
    let e = err(&t("uffd_register @0 pages=8"));
    assert!(
        e.to_string().contains("a mode: 'missing', 'wp' or both"),
        "{e}"
    );
    let e = err(&t("uffd_register @0 pages=8 wp wp"));
    assert!(e.to_string().contains("'wp' given twice"), "{e}");
    let e = err(&t("uffd_copy @0 = x"));
    assert!(e.to_string().contains("the value to copy"), "{e}");
    let e = err(&t("uffd_wp @0"));
    assert!(e.to_string().contains("pages=N"), "{e}");
    let s = ok(&t("uffd_copy @0"));
    assert!(format!("{:?}", s.threads).contains("UffdCopy { addr: 32768, value: 0 }"));
    let e = err(&t("uffd_move @0 pages=1 @4"));
    assert!(
        e.to_string().contains("'to' and the destination address"),
        "{e}"
    );
    let e = err(&t("uffd_move @0 pages=1 to @40"));
    assert!(e.to_string().contains("outside every VMA"), "{e}");
    let s = ok(&t("uffd_move @0 pages=1 to @4 allow_src_holes"));
    assert!(
        format!("{:?}", s.threads).contains("allow_src_holes: true"),
        "{:?}",
        s.threads
    );
    let e = err(&t("uffd_unprotect @0"));
    assert!(e.to_string().contains("pages=N"), "{e}");
    let e = err(&t("uffd_unregister @0"));
    assert!(e.to_string().contains("pages=N"), "{e}");
}

// ----- statements and blocks ---------------------------------------------------------------

#[test]
fn missing_scenario_name() {
    check(
        BODY,
        1,
        1,
        "missing 'scenario NAME' line: every scenario file names its scenario",
    );
    check(
        &format!("scenario\n{BODY}"),
        1,
        9,
        "expected the scenario's name, found end of line",
    );
    check(
        &format!("scenario a\n{BODY}scenario b\n"),
        9,
        1,
        "duplicate 'scenario' line (first at line 1)",
    );
    let e = err("");
    assert_eq!(e.line_col(), (1, 1));
    assert!(e.render().contains("t.mmt:1:1"), "{}", e.render());
}

#[test]
fn no_expectation() {
    let text = format!("scenario s\n{}", BODY.replace("expect clean\n", ""));
    check(
        &text,
        1,
        1,
        "no 'expect' line: a scenario needs at least one expectation (e.g. 'expect clean')",
    );
}

#[test]
fn expectation_errors() {
    let e = check(
        &format!("scenario s\nvariant buggy: tlb.gather_flush = off\n{BODY}expect bugy: violation stale-translation\n"),
        10,
        8,
        "unknown variant 'bugy' (variants: buggy)",
    );
    assert_eq!(e.help(), Some("did you mean 'buggy'?"));
    check(
        &format!("scenario s\n{BODY}expect a, b: clean\n"),
        9,
        8,
        "unknown variant 'a' (variants: none declared)",
    );
    let e = check(
        &format!("scenario s\n{BODY}expect violation use-after-fre\n"),
        9,
        18,
        "unknown violation kind 'use-after-fre' (known: use-after-free, double-free, rmap-missed, stale-translation, lost-write, stale-read, assertion, deadlock, lock-order, leak, counter-mismatch, bad-populate, walker-result, tlb-permission, uffd-wp-lost, uninit-table, uninit-data, unannounced-access, data-race)",
    );
    assert_eq!(e.help(), Some("did you mean 'use-after-free'?"));
    check(
        &format!("scenario s\n{BODY}expect clean\n"),
        9,
        8,
        "duplicate expectation for the base protocol (first at line 8)",
    );
    check(
        &format!("scenario s\n{BODY}expect violated\n"),
        9,
        8,
        "expected 'clean', 'violation KIND' or 'reach PATTERN', found 'violated'",
    );
    check(
        &format!("scenario s\n{BODY}expect x clean\n"),
        9,
        8,
        "expected 'clean', 'violation KIND' or 'reach PATTERN', found 'x'",
    );
}

#[test]
fn statement_and_block_errors() {
    let e = check(
        &format!("scenari s\n{BODY}"),
        1,
        1,
        "unknown statement 'scenari' (known: scenario, doc, geometry, protocol, set, mutate, frames, init, thread, variant, expect)",
    );
    assert_eq!(e.help(), Some("did you mean 'scenario'?"));
    check(
        &format!("scenario s\n{BODY}load @0\n"),
        9,
        1,
        "operation 'load' outside a block: put it in 'init { }' or 'thread NAME { }'",
    );
    check(
        "scenario s\nthread T0 {\n  load @0\n",
        2,
        11,
        "'thread T0' is not closed: no '}' before the end of the file",
    );
    check(
        "scenario s\ninit {\n  mmap anon @0 pages=8\nthread T0 {\n  load @0\n}\nexpect clean\n",
        4,
        1,
        "expected '}' to close 'init' (opened at line 2) before 'thread'",
    );
    check(
        "scenario s\nthread T0\n{\n",
        2,
        10,
        "expected '{' after the thread name, found end of line",
    );
    check(
        &format!("scenario s\n{BODY}}}\n"),
        9,
        1,
        "expected a statement (scenario, doc, geometry, protocol, set, mutate, frames, init, thread, variant, expect), found '}'",
    );
    check(
        &format!("scenario s\ninit {{\n}}\n{BODY}"),
        4,
        1,
        "duplicate 'init' block (first at line 2)",
    );
    check(
        &format!("scenario s\ngeometry levels=3\ngeometry entries=8\n{BODY}"),
        3,
        1,
        "duplicate 'geometry' line (first at line 2)",
    );
    check(
        &format!("scenario s\ndoc \"a\\q\"\n{BODY}"),
        2,
        7,
        "unknown escape '\\q' (known: \\\" \\\\ \\n \\t)",
    );
    check(
        &format!("scenario s\n\tset\x0c\n{BODY}"),
        2,
        5,
        "expected a switch name, found '\\u{c}'",
    );
}

// ----- files -------------------------------------------------------------------------------

#[test]
fn unreadable_and_non_utf8_files() {
    let missing = std::path::Path::new("/nonexistent/dir/x.mmt");
    let e = load_scenario_file(missing).unwrap_err();
    assert_eq!(e.line_col(), (1, 1));
    assert!(
        e.message()
            .starts_with("cannot read /nonexistent/dir/x.mmt: "),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("/nonexistent/dir/x.mmt:1:1: cannot read"),
        "{e}"
    );
    assert!(
        e.render().contains("--> /nonexistent/dir/x.mmt:1:1"),
        "{}",
        e.render()
    );

    let dir = std::env::temp_dir().join(format!("mmcheck-parse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("bad.mmt");
    std::fs::write(&p, b"scenario s\ndoc \"caf\xe9\"\n").unwrap();
    let e = load_scenario_file(&p).unwrap_err();
    assert_eq!(e.message(), "the file is not valid UTF-8");
    assert_eq!(e.line_col(), (2, 9));
    let good = dir.join("good.mmt");
    std::fs::write(&good, format!("scenario good\n{BODY}")).unwrap();
    assert_eq!(load_scenario_file(&good).unwrap().name, "good");
    std::fs::remove_dir_all(&dir).unwrap();
}

// ----- what valid files mean ---------------------------------------------------------------

#[test]
fn a_full_file() {
    let s = ok(r#"# comment line
scenario full   # trailing comment
doc "first \"part\""
doc "second\tpart"
geometry entries=16 levels=4   # after this line @N moves
protocol linux-6.1
set pt_reclaim = on
set pt_reclaim.free = immediate
frames 200

init {
  mmap anon @0 pages=4 huge
  mmap shmem 0x20000 pages=2
  store @1 = 0x10
  load 0x20000
}

thread reader {
  load @1
  fault @2 read
  fault @3 write
  rcu_walk @0
}
thread zapper {
  madvise dontneed @0 pages=4
  munmap @0 pages=4
}

variant fast: tlb.table_free = rcu, madvise.vma_lock = on
expect clean
expect fast: violation use-after-free
"#);
    assert_eq!(s.name, "full");
    assert_eq!(s.doc, "first \"part\" second\tpart");
    assert_eq!((s.geometry.levels, s.geometry.entries()), (4, 16));
    // 4 x 16: PMD_SIZE is 64 KiB.
    let p = |n: u64| 0x10000 + n * 0x1000;
    assert_eq!(s.page(1), p(1));
    assert_eq!(s.nr_frames, 200);
    // The preset, then the sets; the explorer's settings kept.
    assert!(!s.protocol.per_vma_lock && !s.protocol.madv_vma_lock);
    assert!(s.protocol.pt_reclaim);
    assert_eq!(s.protocol.pt_reclaim_free, TableFree::Immediate);
    assert!(!s.protocol.inline_rcu_callbacks);
    assert_eq!(s.protocol.fault_around_pages, 4);
    assert_eq!(
        s.setup,
        vec![
            SetupOp::Mmap {
                addr: p(0),
                pages: 4,
                backing: Backing::AnonPrivate,
                huge: true
            },
            SetupOp::Mmap {
                addr: 0x20000,
                pages: 2,
                backing: Backing::ShmemShared,
                huge: false
            },
            SetupOp::Store {
                addr: p(1),
                value: 16
            },
            SetupOp::Load { addr: 0x20000 },
        ]
    );
    assert_eq!(
        s.threads,
        vec![
            vec![
                Op::Load { addr: p(1) },
                Op::Fault {
                    addr: p(2),
                    write: false
                },
                Op::Fault {
                    addr: p(3),
                    write: true
                },
                Op::RcuWalk { addr: p(0) },
            ],
            vec![
                Op::DontNeed {
                    addr: p(0),
                    pages: 4
                },
                Op::Munmap {
                    addr: p(0),
                    pages: 4
                },
            ],
        ]
    );
    assert_eq!(s.variants.len(), 1);
    assert_eq!(
        s.variants[0].settings,
        vec![
            ("tlb.table_free".to_string(), "rcu".to_string()),
            ("madvise.vma_lock".to_string(), "on".to_string()),
        ]
    );
    assert_eq!(s.expect.len(), 2);
    assert_eq!(s.expect[1].variant.as_deref(), Some("fast"));
    assert_eq!(
        s.expect[1].verdict,
        Verdict::Violation(ViolationKind::UseAfterFree)
    );
    let fast = s.variant_protocol(Some("fast")).unwrap();
    assert!(fast.madv_vma_lock && !fast.per_vma_lock);
}

#[test]
fn defaults_are_scenario_new() {
    let s = ok(&format!("scenario d\n{BODY}"));
    let n = Scenario::new("d");
    assert_eq!(s.geometry, n.geometry);
    assert_eq!(s.protocol, n.protocol);
    assert_eq!(s.nr_frames, n.nr_frames);
    assert_eq!(s.doc, "");
    assert_eq!(
        s.setup,
        vec![SetupOp::Mmap {
            addr: n.page(0),
            pages: 8,
            backing: Backing::AnonPrivate,
            huge: false
        }]
    );
}

#[test]
fn crlf_tabs_bom_and_order_do_not_matter() {
    let lf = format!(
        "scenario s\n{BODY}variant v: populate.lock = off\nexpect v: violation bad-populate\n"
    );
    let crlf = format!("\u{feff}{}", lf.replace('\n', "\r\n").replace("  ", "\t"));
    let (a, b) = (ok(&lf), ok(&crlf));
    assert_eq!(a.setup, b.setup);
    assert_eq!(a.threads, b.threads);
    assert_eq!(a.expect, b.expect);
    // Expectations may come before the variants they name; the geometry after the blocks.
    let moved = ok("expect v: clean\nthread T0 {\n  load @1\n}\ninit {\n  mmap anon @0 pages=2\n}\nvariant v: pt_reclaim = off\ngeometry levels=2 entries=4\nscenario late\n");
    assert_eq!(moved.name, "late");
    assert_eq!(
        moved.threads,
        vec![vec![Op::Load {
            addr: 0x4000 + 0x1000
        }]]
    );
    // CRLF errors point at the same place.
    let e = parse_scenario("t.mmt", "scenario s\r\nset x = y\r\n").unwrap_err();
    assert_eq!(e.line_col(), (2, 5));
}

#[test]
fn folio_walk_and_gup_fast() {
    use mmcheck_scenario::WalkUse;
    let s = ok(&format!(
        "scenario s\n{BODY}thread T1 {{\n  folio_walk @0 ptl\n  folio_walk @1 ref\n  gup_fast @2 read\n  gup_fast @3 write = 7 pin\n}}\n"
    ));
    let p = |n| s.page(n);
    assert_eq!(
        s.threads[1],
        vec![
            Op::FolioWalk {
                addr: p(0),
                use_: WalkUse::Ptl
            },
            Op::FolioWalk {
                addr: p(1),
                use_: WalkUse::Ref
            },
            Op::GupFast {
                addr: p(2),
                write: false,
                pin: false,
                value: 0,
                fast_only: false
            },
            Op::GupFast {
                addr: p(3),
                write: true,
                pin: true,
                value: 7,
                fast_only: false
            },
        ]
    );
    let t = |op: &str| format!("scenario s\n{BODY}thread T1 {{\n  {op}\n}}\n");
    check(
        &t("folio_walk @0"),
        10,
        16,
        "expected 'ptl' or 'ref' (how the walker uses the page), found end of line",
    );
    check(
        &t("folio_walk @0 lock"),
        10,
        17,
        "expected 'ptl' or 'ref' (how the walker uses the page), found 'lock'",
    );
    check(
        &t("gup_fast @0 write"),
        10,
        20,
        "expected '=' and the value to write, found end of line",
    );
    check(
        &t("gup_fast @0 pin"),
        10,
        15,
        "expected 'read' or 'write = VALUE', found 'pin'",
    );
    check(&t("gup_fast @9 read"), 10, 12, "address 0x11000 (@9) is outside every VMA mapped by 'init' or by any thread (VMAs: 0x8000 (@0)..0x10000 (@8) (line 3))");
}

#[test]
fn mremap_migrate_and_init_unmaps() {
    let s = ok("scenario s
init {
  mmap anon @0 pages=8
  mremap @0 pages=4 to @16
  munmap @6 pages=2
  store @16 = 1
  store @4 = 2
}
thread T0 {
  migrate @16
  mremap @16 pages=4 to @24
  load @26
}
expect clean
");
    let p = |n| s.page(n);
    assert_eq!(
        s.setup,
        vec![
            SetupOp::Mmap {
                addr: p(0),
                pages: 8,
                backing: Backing::AnonPrivate,
                huge: false
            },
            SetupOp::Mremap {
                addr: p(0),
                pages: 4,
                new_addr: p(16)
            },
            SetupOp::Munmap {
                addr: p(6),
                pages: 2
            },
            SetupOp::Store {
                addr: p(16),
                value: 1
            },
            SetupOp::Store {
                addr: p(4),
                value: 2
            },
        ]
    );
    assert_eq!(
        s.threads[0],
        vec![
            Op::Migrate {
                addr: p(16),
                unmap_only: false
            },
            Op::Mremap {
                addr: p(16),
                pages: 4,
                new_addr: p(24),
                dontunmap: false
            },
            Op::Load { addr: p(26) },
        ]
    );
    // init follows its own unmaps and moves strictly.
    let init = |ops: &str| {
        format!("scenario s\ninit {{\n  mmap anon @0 pages=8\n{ops}}}\nthread T0 {{\n  load @4\n}}\nexpect clean\n")
    };
    check(
        &init("  mremap @0 pages=4 to @16\n  load @0\n"),
        5,
        8,
        "address 0x8000 (@0) is outside every VMA mapped by 'init' before this line (VMAs: 0xc000 (@4)..0x10000 (@8) (line 3), 0x18000 (@16)..0x1c000 (@20) (line 4))",
    );
    check(
        &init("  munmap @4 pages=4\n  store @7 = 1\n"),
        5,
        9,
        "address 0xf000 (@7) is outside every VMA mapped by 'init' before this line (VMAs: 0x8000 (@0)..0xc000 (@4) (line 3))",
    );
    check(
        &init("  mremap @0 pages=4 to @2\n"),
        4,
        24,
        "destination 0xa000 (@2)..0xe000 (@6) overlaps the source 0x8000 (@0)..0xc000 (@4) (mremap fails with EINVAL)",
    );
    check(
        &init("  mmap shmem @16 pages=2\n  mremap @0 pages=4 to @14\n"),
        5,
        24,
        "destination 0x16000 (@14)..0x1a000 (@18) overlaps the mapping from line 4 (mremap fails with EEXIST)",
    );
    check(
        &init("  mremap @0 pages=4 into @16\n"),
        4,
        21,
        "expected 'to' and the destination address, found 'into'",
    );
    check(
        &init("  fork\n"),
        4,
        3,
        "operation 'fork' is not allowed in 'init' (init takes load, store, mmap, munmap, mremap, migrate, retract, madvise free, madvise pageout, uffd_register, mmap_stack)",
    );
}

/// The span is in the file's own text: control bytes escaped in the snippet do not shift it.
#[test]
fn span_is_in_the_file_text_even_after_a_control_byte() {
    let text = "scenario x\n# a\u{4}b\nthread T0 {\n  load @0\n}\nvariant v: a.b";
    let e = mmcheck_scenario::parse::parse_scenario("t.mmt", text).unwrap_err();
    let span = e.span();
    assert!(
        span.end <= text.len(),
        "{span:?} beyond {} bytes",
        text.len()
    );
    assert_eq!(span, text.len()..text.len());
}

#[test]
fn reach_expectations() {
    let head = "scenario r\n";
    let s = ok(&format!(
        "{head}{BODY}expect reach T0 in do_anonymous_page holds ptl\nexpect reach T0 in handle_mm_fault before T0 holds ptl\n"
    ));
    assert_eq!(s.reach.len(), 2);
    assert_eq!(s.reach[0].text, "T0 in do_anonymous_page holds ptl");
    assert_eq!(s.reach[1].variant, None);
    // Line 9 is the reach line: 'expect reach ' is 13 columns.
    check(
        &format!("{head}{BODY}expect reach T1 in handle_mm_fault\n"),
        9,
        14,
        "unknown thread 'T1' (threads: T0)",
    );
    let e = check(
        &format!("{head}{BODY}expect reach T0 in handle_mm_falt\n"),
        9,
        20,
        "'handle_mm_falt' is not a kernel function the model enters ('mmcheck funcs' lists them)",
    );
    assert!(e.render().contains("handle_mm_fault"), "{}", e.render());
    check(
        &format!("{head}{BODY}expect reach T0 holds spinlock\n"),
        9,
        23,
        "unknown lock 'spinlock' (known: mmap_lock, page_table_lock, anon_vma_lock, i_mmap_rwsem, pmd_lock, ptl, folio_lock, rcu_read_lock, irqs_off)",
    );
    check(
        &format!("{head}{BODY}expect reach T0 in handle_mm_fault whle T0 holds ptl\n"),
        9,
        36,
        "expected 'while', 'before', 'in', 'holds' or end of line, found 'whle'",
    );
    check(
        &format!("{head}{BODY}expect reach T0\n"),
        9,
        16,
        "expected 'in FUNCTION' or 'holds LOCK' after the thread name, found end of line",
    );
    check(
        &format!("{head}{BODY}variant v: zap.need_resched = off\nexpect v: reach T0 holds ptl\n"),
        10,
        8,
        "a reach expectation for variant 'v', which has no verdict expectation",
    );
}

#[test]
fn private_shmem_of_and_truncate() {
    use mmcheck_scenario::{Backing, Op, SetupOp};
    let s = ok("scenario s\ninit {\n  mmap shmem-private @0 pages=8\n  mremap @4 pages=4 to @16\n  mmap shmem @4 pages=4 of @17 huge\n}\nthread T0 {\n  truncate @5\n}\nexpect clean\n");
    let p = |n: u64| s.page(n);
    assert_eq!(
        s.setup[0],
        SetupOp::Mmap {
            addr: p(0),
            pages: 8,
            backing: Backing::ShmemPrivate,
            huge: false
        }
    );
    assert_eq!(
        s.setup[2],
        SetupOp::Mmap {
            addr: p(4),
            pages: 4,
            backing: Backing::SameFile {
                of: p(17),
                private: false
            },
            huge: true
        }
    );
    assert_eq!(s.threads[0], vec![Op::Truncate { addr: p(5) }]);
}

#[test]
fn mremap_dontunmap_in_threads_only() {
    let s = ok("scenario s
init {
  mmap anon @0 pages=8
}
thread T0 {
  mremap @0 pages=4 to @16 dontunmap
}
expect clean
");
    assert_eq!(
        s.threads[0],
        vec![Op::Mremap {
            addr: s.page(0),
            pages: 4,
            new_addr: s.page(16),
            dontunmap: true
        }]
    );
    check(
        "scenario s\ninit {\n  mmap anon @0 pages=8\n  mremap @0 pages=4 to @16 dontunmap\n}\nthread T0 {\n  load @4\n}\nexpect clean\n",
        4,
        28,
        "'dontunmap' is taken in threads only, not in init { }",
    );
    check(
        "scenario s\ninit {\n  mmap anon @0 pages=8\n}\nthread T0 {\n  mremap @0 pages=4 to @16 dontmap\n}\nexpect clean\n",
        6,
        28,
        "expected 'dontunmap' or end of line, found 'dontmap'",
    );
}

#[test]
fn a_migration_left_in_flight_is_for_init_only() {
    let e = check(
        "scenario s\ninit {\n  mmap anon @0 pages=8\n  store @1 = 1\n}\nthread T0 {\n  migrate @1 unmap\n}\nexpect clean\n",
        7,
        14,
        "'unmap' is for 'init' only",
    );
    assert!(e.help().is_some_and(|h| h.contains("CPU of its own")));
    ok("scenario s\ninit {\n  mmap anon @0 pages=8\n  store @1 = 1\n  migrate @1 unmap\n}\nthread T0 {\n  load @1\n}\nexpect clean\n");
}

#[test]
fn mmap_stack_and_addresses_below_it() {
    // Below a stack mapping, down to the mapping below it, addresses count as mapped.
    let s = parse_scenario(
        "t.mmt",
        "scenario s\ninit {\n  mmap anon @0 pages=1\n  mmap_stack @4 pages=2\n  store @3 = 1\n}\nthread T0 {\n  store @1 = 2\n}\nexpect clean\n",
    )
    .expect("parses");
    assert_eq!(
        s.setup[1],
        SetupOp::MmapStack {
            addr: s.page(4),
            pages: 2
        }
    );
    check(
        "scenario s\ninit {\n  mmap anon @0 pages=1\n  mmap_stack @4 pages=2\n}\nthread T0 {\n  store @0 = 2\n  store @8 = 2\n}\nexpect clean\n",
        8,
        9,
        "address 0x10000 (@8) is outside every VMA mapped by 'init' or by any thread (VMAs: 0x8000 (@0)..0x9000 (@1) (line 3), 0xc000 (@4)..0xe000 (@6) (line 4))",
    );
    check(
        "scenario s\ninit {\n  mmap_stack @9 pages=2\n  mmap_stack @10 pages=1\n}\nthread T0 {\n  load @9\n}\nexpect clean\n",
        4,
        14,
        "mapping 0x12000 (@10)..0x13000 (@11) overlaps the mapping from line 3 (mmap fails with EEXIST)",
    );
}

#[test]
fn mutate_line_errors() {
    let with = |lines: &str| format!("scenario s\n{lines}\n{BODY}");
    check(
        &with("mutate move_ptes"),
        2,
        8,
        "`move_ptes` is not a site: expected FUNCTION:CLASS",
    );
    check(
        &with("mutate"),
        2,
        7,
        "expected a site after 'mutate' (FUNCTION:CLASS), found end of line",
    );
    check(
        &with("mutate move_ptes:ptl\nmutate zap_pte_range:ptl"),
        3,
        1,
        "duplicate 'mutate' line (first at line 2)",
    );
    let s = parse_scenario(
        "t.mmt",
        &with("mutate move_ptes:&anon_vma->rwsem # rmap lock"),
    )
    .expect("a site parses");
    assert_eq!(
        s.mutate.map(|m| m.to_string()).as_deref(),
        Some("move_ptes:&anon_vma->rwsem")
    );
}
