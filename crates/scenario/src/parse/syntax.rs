//! The lexical layer: words, numbers, addresses, flags, strings and `key = value` settings, as
//! `winnow` parsers that fail with a located [`SynErr`].

use super::*;

pub(super) type In<'a> = LocatingSlice<&'a str>;
pub(super) type PResult<T> = Result<T, ErrMode<SynErr>>;

/// A syntax error: where and what.
#[derive(Clone, Debug)]
pub(super) struct SynErr {
    pub(super) span: Range<usize>,
    pub(super) msg: String,
    pub(super) help: Option<String>,
}

impl<'a> ParserError<In<'a>> for SynErr {
    type Inner = Self;

    fn from_input(input: &In<'a>) -> Self {
        let (span, found) = found(input);
        SynErr {
            span,
            msg: format!("syntax error at {found}"),
            help: None,
        }
    }

    fn into_inner(self) -> Result<Self, Self> {
        Ok(self)
    }
}

/// A value and the bytes it came from.
#[derive(Clone, Debug)]
pub(super) struct Sp<T> {
    pub(super) v: T,
    pub(super) span: Range<usize>,
}

pub(super) fn pos(i: &In<'_>) -> usize {
    i.current_token_start()
}

pub(super) fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// The token at the input, described for "found ..." and spanned for the caret.
pub(super) fn found(i: &In<'_>) -> (Range<usize>, String) {
    let at = pos(i);
    let rest: &str = i;
    if rest.is_empty() {
        return (at..at, "end of file".into());
    }
    if rest.starts_with('\n') || rest.starts_with("\r\n") {
        return (at..at, "end of line".into());
    }
    let w = rest
        .char_indices()
        .find(|&(_, c)| !is_word_char(c))
        .map_or(rest.len(), |(k, _)| k);
    if w > 0 {
        return (at..at + w, format!("'{}'", &rest[..w]));
    }
    match rest.chars().next() {
        Some(c) => (at..at + c.len_utf8(), format!("'{}'", c.escape_debug())),
        None => (at..at, "end of file".into()),
    }
}

pub(super) fn cut<T>(span: Range<usize>, msg: impl Into<String>) -> PResult<T> {
    Err(ErrMode::Cut(SynErr {
        span,
        msg: msg.into(),
        help: None,
    }))
}

pub(super) fn cut_help<T>(
    span: Range<usize>,
    msg: impl Into<String>,
    help: Option<String>,
) -> PResult<T> {
    Err(ErrMode::Cut(SynErr {
        span,
        msg: msg.into(),
        help,
    }))
}

pub(super) fn expected<T>(i: &In<'_>, what: impl fmt::Display) -> PResult<T> {
    let (span, f) = found(i);
    cut(span, format!("expected {what}, found {f}"))
}

/// Spaces and tabs.
pub(super) fn ws(i: &mut In<'_>) -> PResult<()> {
    take_while(0.., [' ', '\t']).void().parse_next(i)
}

/// At a comment, the end of a line or the end of the file.
pub(super) fn at_eol(i: &In<'_>) -> bool {
    i.is_empty() || i.starts_with('\n') || i.starts_with("\r\n") || i.starts_with('#')
}

/// The end of a statement: spaces, an optional `#` comment, and a line ending or the end of the
/// file.
pub(super) fn eol(i: &mut In<'_>) -> PResult<()> {
    let comment = ('#', take_till(0.., '\n'));
    (ws, opt(comment), alt((line_ending, eof)))
        .void()
        .parse_next(i)
        .or_else(|_| expected(i, "end of line"))
}

/// A word: ASCII letters, digits, `_`, `-` and `.`.
pub(super) fn word<'a>(i: &mut In<'a>, what: &'static str) -> PResult<Sp<&'a str>> {
    ws(i)?;
    let start = pos(i);
    let w: &str = take_while(0.., is_word_char).parse_next(i)?;
    if w.is_empty() {
        return expected(i, what);
    }
    Ok(Sp {
        v: w,
        span: start..pos(i),
    })
}

/// One punctuation character.
pub(super) fn punct(i: &mut In<'_>, c: char, what: &'static str) -> PResult<Range<usize>> {
    ws(i)?;
    let start = pos(i);
    if !i.starts_with(c) {
        return expected(i, what);
    }
    any.void().parse_next(i)?;
    Ok(start..pos(i))
}

/// Parse a number word: decimal, or hex with `0x`.
pub(super) fn parse_u64(w: &str) -> Option<Result<u64, ()>> {
    let (digits, radix) = match w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")) {
        Some(h) => (h, 16),
        None => (w, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    Some(u64::from_str_radix(digits, radix).map_err(|_| ()))
}

/// A number (decimal, or hex with `0x`).
pub(super) fn number(i: &mut In<'_>, what: &'static str) -> PResult<Sp<u64>> {
    let w = word(i, what)?;
    match parse_u64(w.v) {
        Some(Ok(v)) => Ok(Sp { v, span: w.span }),
        Some(Err(())) => cut(
            w.span,
            format!("number '{}' is too large (at most 2^64 - 1)", w.v),
        ),
        None => cut(w.span, format!("expected {what}, found '{}'", w.v)),
    }
}

/// An address as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Addr {
    /// `@N`: page `N` of the scenario window.
    Page(u64),
    /// A byte address.
    Byte(u64),
}

/// `@N` or a number.
pub(super) fn addr(i: &mut In<'_>) -> PResult<Sp<Addr>> {
    ws(i)?;
    let start = pos(i);
    if i.starts_with('@') {
        any.void().parse_next(i)?;
        if !i.starts_with(is_word_char) {
            return expected(i, "a page number after '@'");
        }
        let n = number(i, "a page number after '@'")?;
        return Ok(Sp {
            v: Addr::Page(n.v),
            span: start..n.span.end,
        });
    }
    let n = number(i, "an address (@PAGE or a byte address)")?;
    Ok(Sp {
        v: Addr::Byte(n.v),
        span: n.span,
    })
}

/// `key=N`, `key` given.
pub(super) fn key_number(
    i: &mut In<'_>,
    key: &'static str,
    what: &'static str,
) -> PResult<Sp<u64>> {
    let k = word(i, what)?;
    if k.v != key {
        return cut(k.span, format!("expected {what}, found '{}'", k.v));
    }
    punct(i, '=', "'='")?;
    let n = number(i, "a number")?;
    Ok(Sp {
        v: n.v,
        span: n.span,
    })
}

/// Optional trailing flag words from `allowed`, up to the end of the line.
pub(super) fn flags<'a>(i: &mut In<'a>, allowed: &[&'static str]) -> PResult<Vec<Sp<&'a str>>> {
    let mut out: Vec<Sp<&str>> = Vec::new();
    loop {
        ws(i)?;
        if at_eol(i) {
            return Ok(out);
        }
        let list = allowed
            .iter()
            .map(|a| format!("'{a}'"))
            .collect::<Vec<_>>()
            .join(" or ");
        if !i.starts_with(is_word_char) {
            return expected(i, format!("{list} or end of line"));
        }
        let w = word(i, "a flag")?;
        if !allowed.contains(&w.v) {
            return cut(
                w.span,
                format!("expected {list} or end of line, found '{}'", w.v),
            );
        }
        if out.iter().any(|f| f.v == w.v) {
            return cut(w.span, format!("'{}' given twice", w.v));
        }
        out.push(w);
    }
}

/// A piece of a string's text.
#[derive(Clone, Copy)]
pub(super) enum Frag<'a> {
    Text(&'a str),
    Char(char),
}

/// `\"`, `\\`, `\n` or `\t`; an unknown escape is an error; a backslash at the end of the
/// line leaves the string unterminated.
pub(super) fn escape(i: &mut In<'_>) -> PResult<char> {
    let at = pos(i);
    '\\'.parse_next(i)?;
    match i.chars().next() {
        Some(c @ ('"' | '\\' | 'n' | 't')) => {
            any.void().parse_next(i)?;
            Ok(match c {
                'n' => '\n',
                't' => '\t',
                c => c,
            })
        }
        Some(c) if c != '\n' && c != '\r' => cut(
            at..at + 1 + c.len_utf8(),
            format!(
                "unknown escape '\\{}' (known: \\\" \\\\ \\n \\t)",
                c.escape_debug()
            ),
        ),
        _ => Err(ErrMode::Backtrack(SynErr::from_input(i))),
    }
}

/// A double-quoted string with `\"`, `\\`, `\n` and `\t` escapes, on one line.
pub(super) fn string(i: &mut In<'_>) -> PResult<Sp<String>> {
    ws(i)?;
    let start = pos(i);
    if !i.starts_with('"') {
        return expected(i, "a double-quoted string");
    }
    let frag = alt((
        take_till(1.., ['"', '\\', '\n', '\r']).map(Frag::Text),
        escape.map(Frag::Char),
        // A lone carriage return is text; "\r\n" ends the line.
        ('\r', not('\n')).value(Frag::Char('\r')),
    ));
    let body = repeat(0.., frag).fold(String::new, |mut s, f| {
        match f {
            Frag::Text(t) => s.push_str(t),
            Frag::Char(c) => s.push(c),
        }
        s
    });
    let text = preceded('"', body).parse_next(i)?;
    if opt('"').parse_next(i)?.is_none() {
        return cut(start..start + 1, "unterminated string");
    }
    Ok(Sp {
        v: text,
        span: start..pos(i),
    })
}

/// `SWITCH = VALUE`.
#[derive(Clone, Debug)]
pub(super) struct Setting<'a> {
    pub(super) key: Sp<&'a str>,
    pub(super) value: Sp<&'a str>,
}

pub(super) fn setting<'a>(i: &mut In<'a>) -> PResult<Setting<'a>> {
    let key = word(i, "a switch name")?;
    punct(i, '=', "'=' after the switch name")?;
    let value = word(i, "a switch value")?;
    Ok(Setting { key, value })
}
