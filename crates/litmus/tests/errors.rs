//! Bad litmus input is refused with a message at file:line:col, never a panic.

use mmcheck_litmus::{check_source, LitmusError};

const GOOD: &str = "C T\n\n{}\n\nP0(int *x, int *y)\n{\n\tint r0;\n\n\tWRITE_ONCE(*x, 1);\n\tr0 = READ_ONCE(*y);\n}\n\nP1(int *x, int *y)\n{\n\tint r0;\n\n\tWRITE_ONCE(*y, 1);\n\tr0 = READ_ONCE(*x);\n}\n\nexists (0:r0=0 /\\ 1:r0=0)\n";

/// The error of `text`: line, column and message.
fn refused(text: &str) -> (usize, usize, String) {
    match check_source("t.litmus", text) {
        Err(LitmusError::Parse(e)) => {
            let (l, c) = e.line_col();
            let shown = e.to_string();
            assert!(shown.starts_with(&format!("t.litmus:{l}:{c}: ")), "{shown}");
            let rendered = e.render();
            assert!(rendered.contains('^'), "no caret in:\n{rendered}");
            (l, c, e.message().to_string())
        }
        Err(other) => panic!("not a parse error: {other}"),
        Ok(o) => panic!("accepted: {}", o.name),
    }
}

#[test]
fn good_test_is_accepted() {
    let o = check_source("t.litmus", GOOD).expect("accepted");
    assert_eq!(o.observation().name(), "Sometimes");
}

#[test]
fn missing_header() {
    let (l, c, m) = refused("P0() {}\n");
    assert_eq!((l, c), (1, 1));
    assert!(m.contains("header"), "{m}");
}

#[test]
fn unknown_primitive() {
    let t = GOOD.replace(
        "r0 = READ_ONCE(*y);\n}\n\nP1",
        "r0 = READ_TWICE(*y);\n}\n\nP1",
    );
    let (l, c, m) = refused(&t);
    assert_eq!((l, c), (10, 7));
    assert!(m.contains("READ_TWICE"), "{m}");
}

#[test]
fn wrong_arity() {
    let t = GOOD.replacen("WRITE_ONCE(*x, 1)", "WRITE_ONCE(*x)", 1);
    let (l, c, m) = refused(&t);
    assert_eq!((l, c), (9, 2));
    assert!(m.contains("takes 2"), "{m}");
}

#[test]
fn plain_access_is_refused() {
    let t = GOOD.replacen("WRITE_ONCE(*x, 1);", "*x = 1;", 1);
    let (l, c, m) = refused(&t);
    assert_eq!((l, c), (9, 2));
    assert!(m.contains("plain accesses"), "{m}");
}

#[test]
fn missing_semicolon() {
    let t = GOOD.replacen("WRITE_ONCE(*x, 1);", "WRITE_ONCE(*x, 1)", 1);
    let (l, c, m) = refused(&t);
    assert_eq!((l, c), (10, 2));
    assert!(m.contains("expected ';'"), "{m}");
}

#[test]
fn unknown_register_in_condition() {
    let t = GOOD.replace("exists (0:r0=0 /\\ 1:r0=0)", "exists (0:r0=0 /\\ 1:r9=0)");
    let (l, c, m) = refused(&t);
    assert_eq!((l, c), (21, 19));
    assert!(m.contains("r9"), "{m}");
}

#[test]
fn unknown_process_and_location() {
    let t = GOOD.replace("exists (0:r0=0 /\\ 1:r0=0)", "exists (2:r0=0)");
    let (l, _, m) = refused(&t);
    assert_eq!(l, 21);
    assert!(m.contains("P2"), "{m}");
    let t = GOOD.replace("exists (0:r0=0 /\\ 1:r0=0)", "exists (z=1)");
    let (_, _, m) = refused(&t);
    assert!(m.contains("unknown location 'z'"), "{m}");
}

#[test]
fn unknown_name_in_body() {
    let t = GOOD.replacen("WRITE_ONCE(*x, 1);", "WRITE_ONCE(*q, 1);", 1);
    let (l, c, m) = refused(&t);
    assert_eq!((l, c), (9, 14));
    assert!(m.contains("'q'"), "{m}");
}

#[test]
fn bad_result_word() {
    let t = GOOD.replacen("\n{}", "\n(* Result: Maybe *)\n{}", 1);
    let (l, _, m) = refused(&t);
    assert_eq!(l, 3);
    assert!(m.contains("Maybe"), "{m}");
}

#[test]
fn unbalanced_rcu() {
    let t = GOOD.replacen(
        "WRITE_ONCE(*x, 1);",
        "rcu_read_lock(); WRITE_ONCE(*x, 1);",
        1,
    );
    let (l, _, m) = refused(&t);
    assert_eq!(l, 5);
    assert!(m.contains("unbalanced"), "{m}");
}

#[test]
fn lock_misuse() {
    let t = GOOD.replacen("WRITE_ONCE(*x, 1);", "spin_lock(x);", 1);
    let (_, _, m) = refused(&t);
    assert!(m.contains("spinlock operation"), "{m}");
}

#[test]
fn unterminated_comment_and_stray_character() {
    let (l, c, m) = refused("C T\n(* never closed\n");
    assert_eq!((l, c), (2, 1));
    assert!(m.contains("unterminated"), "{m}");
    let t = GOOD.replacen("WRITE_ONCE(*x, 1);", "WRITE_ONCE(*x, 1); @", 1);
    let (l, c, _) = refused(&t);
    assert_eq!((l, c), (9, 21));
}

#[test]
fn no_panic_on_any_prefix_or_byte_flip() {
    // Every truncation of a good test, and every single-byte change to a few characters,
    // gives a result or an error: never a panic.
    for k in 0..=GOOD.len() {
        if GOOD.is_char_boundary(k) {
            let _ = check_source("t.litmus", &GOOD[..k]);
        }
    }
    let bytes = GOOD.as_bytes();
    for k in 0..bytes.len() {
        for b in [b'(', b')', b'*', b'{', b';', b'0', b'\\', b'~', b'x', 0x07] {
            let mut v = bytes.to_vec();
            v[k] = b;
            if let Ok(s) = String::from_utf8(v) {
                let _ = check_source("t.litmus", &s);
            }
        }
    }
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let deep = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
    let t = GOOD.replacen("WRITE_ONCE(*x, 1);", &format!("WRITE_ONCE(*x, {deep});"), 1);
    let (l, _, m) = refused(&t);
    assert_eq!(l, 9);
    assert!(m.contains("nested"), "{m}");
    let t = GOOD.replace(
        "exists (0:r0=0 /\\ 1:r0=0)",
        &format!("exists {}0:r0=0{}", "~".repeat(100_000), ""),
    );
    let (_, _, m) = refused(&t);
    assert!(m.contains("nested"), "{m}");
    let t = GOOD.replacen(
        "WRITE_ONCE(*x, 1);",
        &format!(
            "{}WRITE_ONCE(*x, 1);{}",
            "{".repeat(100_000),
            "}".repeat(100_000)
        ),
        1,
    );
    let (_, _, m) = refused(&t);
    assert!(m.contains("nested"), "{m}");
}

#[test]
fn too_many_coherence_orders_is_inconclusive_not_a_hang() {
    let mut t = String::from("C many\n\n{}\n\n");
    for p in 0..10 {
        t.push_str(&format!(
            "P{p}(int *x)\n{{\n\tWRITE_ONCE(*x, {});\n}}\n\n",
            p + 1
        ));
    }
    t.push_str("exists (x=1)\n");
    match check_source("t.litmus", &t) {
        Err(LitmusError::Limit(m)) => assert!(m.contains("coherence orders"), "{m}"),
        other => panic!("expected a limit, got {other:?}"),
    }
}
