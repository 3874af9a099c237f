//! Statements: `scenario`, `doc`, `protocol`, `set`, `mutate`, `geometry`, `frames`, `init`, `thread`,
//! `variant` and `expect` lines, parsed into located [`Item`]s.

use super::*;

// ----- statements ----------------------------------------------------------------------------

/// The verdict of an `expect` line.
#[derive(Clone, Debug)]
pub(super) enum VerdictAst<'a> {
    Clean,
    Violation(Sp<&'a str>),
    Reach(reach::ReachAst<'a>),
}

/// One top-level statement.
#[derive(Clone, Debug)]
pub(super) enum Item<'a> {
    Scenario {
        kw: Range<usize>,
        name: Sp<&'a str>,
    },
    Doc {
        text: Sp<String>,
    },
    Geometry {
        kw: Range<usize>,
        levels: Option<Sp<u64>>,
        entries: Option<Sp<u64>>,
    },
    Protocol {
        kw: Range<usize>,
        preset: Sp<&'a str>,
    },
    Set {
        setting: Setting<'a>,
    },
    /// `mutate FUNCTION:CLASS`: run as the mutant that skips that site.
    Mutate {
        kw: Range<usize>,
        site: Sp<&'a str>,
    },
    /// `frames N`, `frames spare=K` or both.
    Frames {
        kw: Range<usize>,
        n: Option<Sp<u64>>,
        spare: Option<Sp<u64>>,
    },
    Init {
        kw: Range<usize>,
        ops: Vec<OpLine>,
    },
    Thread {
        name: Sp<&'a str>,
        ops: Vec<OpLine>,
    },
    Variant {
        name: Sp<&'a str>,
        settings: Vec<Setting<'a>>,
    },
    Expect {
        variants: Vec<Sp<&'a str>>,
        verdict: Sp<VerdictAst<'a>>,
    },
}

pub(super) const STATEMENTS: &[&str] = &[
    "scenario", "doc", "geometry", "protocol", "set", "mutate", "frames", "init", "thread",
    "variant", "expect",
];

pub(super) fn statement<'a>(i: &mut In<'a>) -> PResult<Item<'a>> {
    ws(i)?;
    if !i.starts_with(is_word_char) {
        return expected(i, format!("a statement ({})", STATEMENTS.join(", ")));
    }
    let kw = word(i, "a statement")?;
    let item = match kw.v {
        "scenario" => Item::Scenario {
            name: word(i, "the scenario's name")?,
            kw: kw.span,
        },
        "doc" => Item::Doc { text: string(i)? },
        "geometry" => geometry(i, kw.span)?,
        "protocol" => Item::Protocol {
            preset: word(i, "a preset name")?,
            kw: kw.span,
        },
        "set" => Item::Set {
            setting: setting(i)?,
        },
        "mutate" => {
            ws(i)?;
            let start = pos(i);
            let text: &str = take_till(0.., ['#', '\n', '\r']).parse_next(i)?;
            let text = text.trim_end();
            if text.is_empty() {
                return expected(i, "a site after 'mutate' (FUNCTION:CLASS)");
            }
            Item::Mutate {
                site: Sp {
                    v: text,
                    span: start..start + text.len(),
                },
                kw: kw.span,
            }
        }
        "frames" => frames(i, kw.span)?,
        "init" => {
            let open = punct(i, '{', "'{' after 'init'")?;
            eol(i)?;
            Item::Init {
                ops: block(i, open, "init")?,
                kw: kw.span,
            }
        }
        "thread" => {
            let name = word(i, "a thread name")?;
            let open = punct(i, '{', "'{' after the thread name")?;
            eol(i)?;
            let what = format!("thread {}", name.v);
            Item::Thread {
                ops: block(i, open, &what)?,
                name,
            }
        }
        "variant" => {
            let name = word(i, "a variant name")?;
            punct(i, ':', "':' after the variant name")?;
            let settings = separated(1.., setting, (ws, ',')).parse_next(i)?;
            Item::Variant { name, settings }
        }
        "expect" => expect(i)?,
        w => {
            if is_op_word(w) {
                return cut(
                    kw.span,
                    format!("operation '{w}' outside a block: put it in 'init {{ }}' or 'thread NAME {{ }}'"),
                );
            }
            return cut_help(
                kw.span,
                format!("unknown statement '{w}' (known: {})", STATEMENTS.join(", ")),
                did_you_mean(w, STATEMENTS),
            );
        }
    };
    if !matches!(item, Item::Init { .. } | Item::Thread { .. }) {
        eol(i)?;
    }
    Ok(item)
}

/// `frames N`, `frames spare=K` or `frames N spare=K`.
pub(super) fn frames<'a>(i: &mut In<'a>, kw: Range<usize>) -> PResult<Item<'a>> {
    ws(i)?;
    let n = if i.starts_with(|c: char| c.is_ascii_digit()) {
        Some(number(i, "the number of frames")?)
    } else {
        None
    };
    ws(i)?;
    let spare = if at_eol(i) {
        None
    } else {
        let k = word(i, "the number of frames or 'spare=K'")?;
        if k.v != "spare" {
            return cut(
                k.span,
                format!("unknown frames parameter '{}' (known: spare)", k.v),
            );
        }
        punct(i, '=', "'='")?;
        Some(number(i, "a number")?)
    };
    if n.is_none() && spare.is_none() {
        return expected(i, "the number of frames or 'spare=K'");
    }
    Ok(Item::Frames { kw, n, spare })
}

pub(super) fn geometry<'a>(i: &mut In<'a>, kw: Range<usize>) -> PResult<Item<'a>> {
    let mut levels: Option<Sp<u64>> = None;
    let mut entries: Option<Sp<u64>> = None;
    loop {
        ws(i)?;
        if at_eol(i) {
            break;
        }
        let k = word(i, "'levels=N' or 'entries=N'")?;
        let slot = match k.v {
            "levels" => &mut levels,
            "entries" => &mut entries,
            w => {
                return cut(
                    k.span,
                    format!("unknown geometry parameter '{w}' (known: levels, entries)"),
                )
            }
        };
        if slot.is_some() {
            return cut(k.span, format!("'{}' given twice", k.v));
        }
        punct(i, '=', "'='")?;
        *slot = Some(number(i, "a number")?);
    }
    if levels.is_none() && entries.is_none() {
        return expected(i, "'levels=N' and/or 'entries=N'");
    }
    Ok(Item::Geometry {
        kw,
        levels,
        entries,
    })
}

pub(super) fn expect<'a>(i: &mut In<'a>) -> PResult<Item<'a>> {
    let first = word(
        i,
        "'clean', 'violation KIND', 'reach PATTERN' or 'VARIANT:'",
    )?;
    ws(i)?;
    let mut variants = Vec::new();
    let verdict_word = if i.starts_with(',') || i.starts_with(':') {
        variants.push(first);
        let more: Vec<Sp<&str>> = repeat(
            0..,
            preceded((ws, ','), |i: &mut In<'a>| word(i, "a variant name")),
        )
        .parse_next(i)?;
        variants.extend(more);
        punct(i, ':', "',' or ':'")?;
        word(i, "'clean', 'violation KIND' or 'reach PATTERN'")?
    } else {
        first
    };
    let verdict = match verdict_word.v {
        "clean" => Sp {
            v: VerdictAst::Clean,
            span: verdict_word.span,
        },
        "violation" => {
            let kind = word(i, "a violation kind")?;
            Sp {
                span: verdict_word.span.start..kind.span.end,
                v: VerdictAst::Violation(kind),
            }
        }
        "reach" => {
            let r = reach::pattern(i)?;
            Sp {
                span: verdict_word.span.start..pos(i),
                v: VerdictAst::Reach(r),
            }
        }
        w => {
            return cut_help(
                verdict_word.span,
                format!("expected 'clean', 'violation KIND' or 'reach PATTERN', found '{w}'"),
                did_you_mean(w, &["clean", "violation", "reach"]),
            )
        }
    };
    Ok(Item::Expect { variants, verdict })
}

pub(super) fn block(i: &mut In<'_>, open: Range<usize>, what: &str) -> PResult<Vec<OpLine>> {
    let mut ops = Vec::new();
    loop {
        ws(i)?;
        if i.is_empty() {
            return cut(
                open,
                format!("'{what}' is not closed: no '}}' before the end of the file"),
            );
        }
        if at_eol(i) {
            eol(i)?;
            continue;
        }
        if i.starts_with('}') {
            any.void().parse_next(i)?;
            eol(i)?;
            return Ok(ops);
        }
        let (span, _) = found(i);
        let w = &i[..span.end - span.start];
        if STATEMENTS.contains(&w) && !is_op_word(w) {
            let (line, _) = line_col_of(i_text(i), open.start);
            return cut(
                span,
                format!("expected '}}' to close '{what}' (opened at line {line}) before '{w}'"),
            );
        }
        ops.push(op_line(i)?);
    }
}

/// The whole text being parsed (for line numbers in messages).
pub(super) fn i_text<'a>(i: &In<'a>) -> &'a str {
    let mut c = *i;
    c.reset_to_start();
    *c
}

pub(super) fn file<'a>(i: &mut In<'a>) -> PResult<Vec<Item<'a>>> {
    if i.starts_with('\u{feff}') {
        any.void().parse_next(i)?;
    }
    let mut items = Vec::new();
    loop {
        ws(i)?;
        if i.is_empty() {
            return Ok(items);
        }
        if at_eol(i) {
            eol(i)?;
            continue;
        }
        items.push(statement(i)?);
    }
}
