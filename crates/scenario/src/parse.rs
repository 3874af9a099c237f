//! The `.mmt` scenario format: a line-oriented text form of [`Scenario`] for people, in the
//! spirit of herd7's litmus files one level up (kernel operations instead of instructions).
//!
//! ```text
//! scenario missing-rcu-wait
//! doc "PT reclaim frees an emptied PTE table while an RCU walker still maps it"
//! init {
//!   mmap anon @0 pages=8
//!   store @0 = 1
//! }
//! thread T0 {
//!   madvise dontneed @0 pages=8
//! }
//! thread T1 {
//!   rcu_walk @0
//! }
//! variant immediate: pt_reclaim.free = immediate
//! expect clean
//! expect immediate: violation use-after-free
//! ```
//!
//! `docs/scenario-format.md` has the grammar. [`parse_scenario`] parses (with `winnow`) and
//! validates a file in two passes: the syntax into located statements, then the statements into a
//! [`Scenario`]. Every failure is a [`ParseError`] located at a file, line and column, rendered
//! with a caret under the offending text (with `miette`).
//!
//! Operations are a table, [`OPS`]: each entry has a name, its syntax, the kernel path it runs
//! and, once modelled, the parser of its arguments. Adding an operation is a table entry, an
//! `OpArgs` variant and its mapping to [`Op`] in `resolve_op` (and to [`SetupOp`] in
//! `resolve_setup` if `init` takes it).

use crate::{Backing, CheckWhat, Expectation, Op, Scenario, SetupOp, Variant, Verdict, WalkUse};
use miette::{
    Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError,
    MietteSpanContents, SourceCode, SourceSpan, SpanContents, ThemeCharacters, ThemeStyles,
};
use mmcheck_kernel::protocol::{SwitchError, PRESETS, SWITCHES};
use mmcheck_kernel::{Geometry, Protocol};
use mmcheck_platform::ViolationKind;
use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use winnow::ascii::line_ending;
use winnow::combinator::{alt, eof, not, opt, preceded, repeat, separated};
use winnow::error::{ErrMode, ParserError};
use winnow::stream::{LocatingSlice, Location};
use winnow::token::{any, take_till, take_while};
use winnow::Parser;

mod reach;

/// The most threads a scenario may have: the explorer gives each its own CPU, plus one for the
/// RCU callback thread.
pub const MAX_THREADS: usize = 4;

/// The most frames (`frames N`) a scenario may ask for.
pub const MAX_FRAMES: u64 = 1 << 20;
/// Fewest frames a machine with an mm has: pfn 0 (reserved), the zero page, the mm's pgd.
pub const MIN_FRAMES: u64 = 3;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// `s` with every control character but newline and tab written as `\xNN` (or `\u{NNNN}`).
pub fn escape_controls(s: &str) -> String {
    escape_with_span(s, 0..0).0
}

/// [`escape_controls`] of `text`, and the byte span `span` of `text` moved to the result.
fn escape_with_span(text: &str, span: Range<usize>) -> (String, Range<usize>) {
    if !text.chars().any(needs_escape) {
        return (text.to_string(), span);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let (mut start, mut end) = (None, None);
    let bytes = text.as_bytes();
    for (i, c) in text.char_indices() {
        let crlf = c == '\r' && bytes.get(i + 1) == Some(&b'\n');
        if i == span.start {
            start = Some(out.len());
        }
        if i == span.end {
            end = Some(out.len());
        }
        if needs_escape(c) && !crlf {
            if (c as u32) < 0x80 {
                out.push_str(&format!("\\x{:02x}", c as u32));
            } else {
                out.push_str(&format!("\\u{{{:04x}}}", c as u32));
            }
        } else {
            out.push(c);
        }
    }
    let len = out.len();
    let start = start.unwrap_or(len);
    (out, start..end.unwrap_or(len).max(start))
}

fn needs_escape(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

/// Why a scenario file was refused: a message located at a byte span of the file, with the
/// file's name and text for rendering.
#[derive(Clone, Debug)]
pub struct ParseError(Box<ErrorInner>);

#[derive(Clone, Debug)]
struct ErrorInner {
    file: String,
    src: Src,
    /// The span in the file's text.
    span: Range<usize>,
    /// The same span in the snippet shown (control bytes escaped).
    shown_span: Range<usize>,
    message: String,
    label: Option<String>,
    help: Option<String>,
    line: usize,
    col: usize,
}

impl ParseError {
    fn new(file: &str, text: &str, span: Range<usize>, message: String) -> Self {
        let span = clamp_span(text, span);
        let (line, col) = line_col_of(text, span.start);
        // The snippet shows control bytes escaped (never sent raw to a terminal), with the span
        // moved along.
        let (shown, shown_span) = escape_with_span(text, span.clone());
        ParseError(Box::new(ErrorInner {
            file: escape_controls(file),
            src: Src::new(&escape_controls(file), &shown),
            span,
            shown_span,
            message: escape_controls(&message),
            label: None,
            help: None,
            line,
            col,
        }))
    }

    fn with_help(mut self, help: Option<String>) -> Self {
        self.0.help = help;
        self
    }

    fn with_label(mut self, label: impl Into<String>) -> Self {
        self.0.label = Some(label.into());
        self
    }

    /// The 1-based line and column (in characters) of the error.
    pub fn line_col(&self) -> (usize, usize) {
        (self.0.line, self.0.col)
    }

    /// The message, without location.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// A hint (a close spelling, the known names), if any.
    pub fn help(&self) -> Option<&str> {
        self.0.help.as_deref()
    }

    /// The file name given to [`parse_scenario`].
    pub fn file_name(&self) -> &str {
        &self.0.file
    }

    /// The byte span of the offending text.
    pub fn span(&self) -> Range<usize> {
        self.0.span.clone()
    }

    /// The error as plain text (no colours), with the offending line and a caret under the
    /// offending text.
    pub fn render(&self) -> String {
        let mut chars = ThemeCharacters::ascii();
        chars.error = "error:".into();
        let theme = GraphicalTheme {
            characters: chars,
            styles: ThemeStyles::none(),
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_links(false)
            .with_context_lines(0)
            .with_wrap_lines(false)
            .without_cause_chain();
        let mut out = String::new();
        let plain = Plain(self);
        if handler.render_report(&mut out, &plain).is_err() || self.0.src.text.is_empty() {
            // Nothing to show a caret under (an unreadable file): the location alone.
            out = format!(
                "error: {}\n  --> {}:{}:{}\n",
                self.0.message, self.0.file, self.0.line, self.0.col
            );
            if let Some(h) = &self.0.help {
                out.push_str(&format!("  help: {h}\n"));
            }
        }
        out
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.0.file, self.0.line, self.0.col, self.0.message
        )
    }
}

impl std::error::Error for ParseError {}

impl ParseError {
    fn diag_labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.0.src.text.is_empty() {
            return None;
        }
        Some(Box::new(std::iter::once(
            LabeledSpan::new_primary_with_span(self.0.label.clone(), self.0.shown_span.clone()),
        )))
    }

    fn diag_help(&self) -> Option<Box<dyn fmt::Display + '_>> {
        self.0
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn diag_source(&self) -> Option<&dyn SourceCode> {
        if self.0.src.text.is_empty() {
            None
        } else {
            Some(&self.0.src)
        }
    }
}

impl Diagnostic for ParseError {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.diag_help()
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.diag_source()
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.diag_labels()
    }
}

/// The file's text for rendering: whole lines around a span, located by this module's own line
/// and column count (lines end at `\n`, columns count characters). A lone `\r` shows as a space.
#[derive(Clone, Debug)]
struct Src {
    name: String,
    text: String,
}

impl Src {
    fn new(name: &str, text: &str) -> Self {
        let bytes = text.as_bytes();
        let text = text
            .char_indices()
            .map(|(k, c)| {
                if c == '\r' && bytes.get(k + 1) != Some(&b'\n') {
                    ' '
                } else {
                    c
                }
            })
            .collect();
        Src {
            name: name.to_string(),
            text,
        }
    }
}

impl SourceCode for Src {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let t = self.text.as_str();
        let len = t.len();
        let start = span.offset();
        let end = start.saturating_add(span.len());
        if end > len || !t.is_char_boundary(start) || !t.is_char_boundary(end) {
            return Err(MietteError::OutOfBounds);
        }
        let line_start = |at: usize| t[..at].rfind('\n').map_or(0, |k| k + 1);
        let line_end = |at: usize| t[at..].find('\n').map_or(len, |k| at + k + 1);
        let mut a = line_start(start);
        let column = t[a..start].chars().count();
        for _ in 0..before {
            if a == 0 {
                break;
            }
            a = line_start(a - 1);
        }
        let mut last = if end > start { end - 1 } else { start };
        while !t.is_char_boundary(last) {
            last -= 1;
        }
        let mut b = line_end(last.min(len));
        for _ in 0..after {
            if b >= len {
                break;
            }
            b = line_end(b);
        }
        let data = &t.as_bytes()[a..b];
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            data,
            (a, b - a).into(),
            t[..a].matches('\n').count(),
            if before == 0 { column } else { 0 },
            t[a..b].matches('\n').count().max(1),
        )))
    }
}

/// The error with its message alone as its `Display`, for rendering (the snippet header shows
/// the location).
struct Plain<'e>(&'e ParseError);

impl fmt::Debug for Plain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

impl fmt::Display for Plain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.message())
    }
}

impl std::error::Error for Plain<'_> {}

impl Diagnostic for Plain<'_> {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.0.diag_help()
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.0.diag_source()
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.0.diag_labels()
    }
}

/// A span within `text`, on character boundaries; an error at the very end of a file that ends
/// with a newline points at that newline (the end of the last line), not at a line that is not
/// there.
fn clamp_span(text: &str, span: Range<usize>) -> Range<usize> {
    let len = text.len();
    let mut start = span.start.min(len);
    let mut end = span.end.clamp(start, len);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    while !text.is_char_boundary(end) {
        end += 1;
    }
    if start == len && text.ends_with('\n') {
        start = len - 1;
        if text[..start].ends_with('\r') {
            start -= 1;
        }
        end = start;
    }
    start..end
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_col_of(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |k| k + 1);
    (line, before[line_start..].chars().count() + 1)
}

// ---------------------------------------------------------------------------------------------
// Syntax
// ---------------------------------------------------------------------------------------------

type In<'a> = LocatingSlice<&'a str>;
type PResult<T> = Result<T, ErrMode<SynErr>>;

/// A syntax error: where and what.
#[derive(Clone, Debug)]
struct SynErr {
    span: Range<usize>,
    msg: String,
    help: Option<String>,
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
struct Sp<T> {
    v: T,
    span: Range<usize>,
}

fn pos(i: &In<'_>) -> usize {
    i.current_token_start()
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// The token at the input, described for "found ..." and spanned for the caret.
fn found(i: &In<'_>) -> (Range<usize>, String) {
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

fn cut<T>(span: Range<usize>, msg: impl Into<String>) -> PResult<T> {
    Err(ErrMode::Cut(SynErr {
        span,
        msg: msg.into(),
        help: None,
    }))
}

fn cut_help<T>(span: Range<usize>, msg: impl Into<String>, help: Option<String>) -> PResult<T> {
    Err(ErrMode::Cut(SynErr {
        span,
        msg: msg.into(),
        help,
    }))
}

fn expected<T>(i: &In<'_>, what: impl fmt::Display) -> PResult<T> {
    let (span, f) = found(i);
    cut(span, format!("expected {what}, found {f}"))
}

/// Spaces and tabs.
fn ws(i: &mut In<'_>) -> PResult<()> {
    take_while(0.., [' ', '\t']).void().parse_next(i)
}

/// At a comment, the end of a line or the end of the file.
fn at_eol(i: &In<'_>) -> bool {
    i.is_empty() || i.starts_with('\n') || i.starts_with("\r\n") || i.starts_with('#')
}

/// The end of a statement: spaces, an optional `#` comment, and a line ending or the end of the
/// file.
fn eol(i: &mut In<'_>) -> PResult<()> {
    let comment = ('#', take_till(0.., '\n'));
    (ws, opt(comment), alt((line_ending, eof)))
        .void()
        .parse_next(i)
        .or_else(|_| expected(i, "end of line"))
}

/// A word: ASCII letters, digits, `_`, `-` and `.`.
fn word<'a>(i: &mut In<'a>, what: &'static str) -> PResult<Sp<&'a str>> {
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
fn punct(i: &mut In<'_>, c: char, what: &'static str) -> PResult<Range<usize>> {
    ws(i)?;
    let start = pos(i);
    if !i.starts_with(c) {
        return expected(i, what);
    }
    any.void().parse_next(i)?;
    Ok(start..pos(i))
}

/// Parse a number word: decimal, or hex with `0x`.
fn parse_u64(w: &str) -> Option<Result<u64, ()>> {
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
fn number(i: &mut In<'_>, what: &'static str) -> PResult<Sp<u64>> {
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
enum Addr {
    /// `@N`: page `N` of the scenario window.
    Page(u64),
    /// A byte address.
    Byte(u64),
}

/// `@N` or a number.
fn addr(i: &mut In<'_>) -> PResult<Sp<Addr>> {
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
fn key_number(i: &mut In<'_>, key: &'static str, what: &'static str) -> PResult<Sp<u64>> {
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
fn flags<'a>(i: &mut In<'a>, allowed: &[&'static str]) -> PResult<Vec<Sp<&'a str>>> {
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
enum Frag<'a> {
    Text(&'a str),
    Char(char),
}

/// `\"`, `\\`, `\n` or `\t`; an unknown escape is an error; a backslash at the end of the
/// line leaves the string unterminated.
fn escape(i: &mut In<'_>) -> PResult<char> {
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
fn string(i: &mut In<'_>) -> PResult<Sp<String>> {
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
struct Setting<'a> {
    key: Sp<&'a str>,
    value: Sp<&'a str>,
}

fn setting<'a>(i: &mut In<'a>) -> PResult<Setting<'a>> {
    let key = word(i, "a switch name")?;
    punct(i, '=', "'=' after the switch name")?;
    let value = word(i, "a switch value")?;
    Ok(Setting { key, value })
}

// ----- operations ----------------------------------------------------------------------------

/// The arguments of an operation, as written (addresses unresolved).
#[derive(Clone, Debug)]
enum OpArgs {
    Load {
        addr: Sp<Addr>,
    },
    Store {
        addr: Sp<Addr>,
        value: u64,
    },
    Fault {
        addr: Sp<Addr>,
        write: bool,
    },
    Mmap {
        addr: Sp<Addr>,
        pages: Sp<u64>,
        /// `anon`, `shmem` or `shmem-private` (a `SameFile` backing is made from `of`).
        backing: Backing,
        /// `of ADDR`: map the shmem file mapped at ADDR, from the page mapped there.
        of: Option<Sp<Addr>>,
        huge: Option<Range<usize>>,
    },
    Munmap {
        addr: Sp<Addr>,
        pages: Sp<u64>,
    },
    DontNeed {
        addr: Sp<Addr>,
        pages: Sp<u64>,
    },
    RcuWalk {
        addr: Sp<Addr>,
    },
    FolioWalk {
        addr: Sp<Addr>,
        use_: WalkUse,
    },
    GupFast {
        addr: Sp<Addr>,
        write: bool,
        pin: bool,
        value: u64,
    },
    Mremap {
        addr: Sp<Addr>,
        pages: Sp<u64>,
        to: Sp<Addr>,
    },
    Migrate {
        addr: Sp<Addr>,
    },
    Collapse {
        addr: Sp<Addr>,
        order: Option<Sp<u64>>,
        khugepaged: bool,
    },
    Retract {
        addr: Sp<Addr>,
    },
    RmapWalk {
        addr: Sp<Addr>,
    },
    PunchHole {
        addr: Sp<Addr>,
        pages: Sp<u64>,
    },
    Fork,
    ChildExit,
    NumaHint {
        addr: Sp<Addr>,
        pages: Sp<u64>,
    },
    Mprotect {
        addr: Sp<Addr>,
        pages: Sp<u64>,
        write: bool,
    },
    Truncate {
        addr: Sp<Addr>,
    },
    Check {
        addr: Sp<Addr>,
        what: CheckWhat,
    },
    TryToUnmap {
        addr: Sp<Addr>,
    },
    CollapsePteMapped {
        addr: Sp<Addr>,
    },
}

type ArgsParser = for<'a> fn(&mut In<'a>) -> PResult<OpArgs>;

/// An operation of a thread or `init` block.
#[derive(Debug)]
pub struct OpSpec {
    /// Its name: one word, or two (`madvise dontneed`).
    pub name: &'static str,
    /// Its syntax, for errors and docs.
    pub syntax: &'static str,
    /// The kernel path it runs.
    pub kernel: &'static str,
    /// Whether `init { }` takes it.
    pub init: bool,
    /// The parser of its arguments; `None`: not modelled yet.
    args: Option<ArgsParser>,
}

impl OpSpec {
    /// Whether the model runs this operation yet.
    pub fn modelled(&self) -> bool {
        self.args.is_some()
    }
}

fn args_load(i: &mut In<'_>) -> PResult<OpArgs> {
    Ok(OpArgs::Load { addr: addr(i)? })
}

fn args_store(i: &mut In<'_>) -> PResult<OpArgs> {
    let addr = addr(i)?;
    punct(i, '=', "'=' and the value to store")?;
    let value = number(i, "the value to store")?.v;
    Ok(OpArgs::Store { addr, value })
}

fn args_fault(i: &mut In<'_>) -> PResult<OpArgs> {
    let addr = addr(i)?;
    let f = flags(i, &["read", "write"])?;
    if f.len() > 1 {
        return cut(f[1].span.clone(), "a fault is either 'read' or 'write'");
    }
    Ok(OpArgs::Fault {
        addr,
        write: f.first().is_some_and(|w| w.v == "write"),
    })
}

fn args_mmap(i: &mut In<'_>) -> PResult<OpArgs> {
    let b = word(i, "'anon', 'shmem' or 'shmem-private'")?;
    let backing = match b.v {
        "anon" => Backing::AnonPrivate,
        "shmem" => Backing::ShmemShared,
        "shmem-private" => Backing::ShmemPrivate,
        w => {
            return cut(
                b.span,
                format!("expected 'anon', 'shmem' or 'shmem-private', found '{w}' (other file systems are not modelled)"),
            )
        }
    };
    let addr = addr(i)?;
    let pages = key_number(i, "pages", "'pages=N'")?;
    let (mut of, mut huge) = (None, None);
    loop {
        ws(i)?;
        if at_eol(i) {
            break;
        }
        if !i.starts_with(is_word_char) {
            return expected(i, "'of ADDR', 'huge' or end of line");
        }
        let w = word(i, "'of ADDR', 'huge' or end of line")?;
        match w.v {
            "huge" if huge.is_none() => huge = Some(w.span),
            "of" if of.is_none() => of = Some(self::addr(i)?),
            "huge" | "of" => return cut(w.span, format!("'{}' given twice", w.v)),
            other => {
                return cut(
                    w.span,
                    format!("expected 'of ADDR', 'huge' or end of line, found '{other}'"),
                )
            }
        }
    }
    if let (Some(o), Backing::AnonPrivate) = (&of, backing) {
        return cut(
            o.span.clone(),
            "'of' maps a shmem file again: it needs 'shmem' or 'shmem-private', not 'anon'",
        );
    }
    Ok(OpArgs::Mmap {
        addr,
        pages,
        backing,
        of,
        huge,
    })
}

fn args_munmap(i: &mut In<'_>) -> PResult<OpArgs> {
    let addr = addr(i)?;
    let pages = key_number(i, "pages", "'pages=N'")?;
    Ok(OpArgs::Munmap { addr, pages })
}

fn args_dontneed(i: &mut In<'_>) -> PResult<OpArgs> {
    let addr = addr(i)?;
    let pages = key_number(i, "pages", "'pages=N'")?;
    Ok(OpArgs::DontNeed { addr, pages })
}

fn args_rcu_walk(i: &mut In<'_>) -> PResult<OpArgs> {
    Ok(OpArgs::RcuWalk { addr: addr(i)? })
}

fn args_folio_walk(i: &mut In<'_>) -> PResult<OpArgs> {
    let addr = addr(i)?;
    ws(i)?;
    if !i.starts_with(is_word_char) {
        return expected(i, "'ptl' or 'ref' (how the walker uses the page)");
    }
    let u = word(i, "'ptl' or 'ref'")?;
    let use_ = match u.v {
        "ptl" => WalkUse::Ptl,
        "ref" => WalkUse::Ref,
        w => {
            return cut(
                u.span,
                format!("expected 'ptl' or 'ref' (how the walker uses the page), found '{w}'"),
            )
        }
    };
    Ok(OpArgs::FolioWalk { addr, use_ })
}

fn args_gup_fast(i: &mut In<'_>) -> PResult<OpArgs> {
    let addr = addr(i)?;
    ws(i)?;
    if !i.starts_with(is_word_char) {
        return expected(i, "'read' or 'write = VALUE'");
    }
    let rw = word(i, "'read' or 'write = VALUE'")?;
    let (write, value) = match rw.v {
        "read" => (false, 0),
        "write" => {
            punct(i, '=', "'=' and the value to write")?;
            (true, number(i, "the value to write")?.v)
        }
        w => {
            return cut(
                rw.span,
                format!("expected 'read' or 'write = VALUE', found '{w}'"),
            )
        }
    };
    let pin = !flags(i, &["pin"])?.is_empty();
    Ok(OpArgs::GupFast {
        addr,
        write,
        pin,
        value,
    })
}

fn args_mremap(i: &mut In<'_>) -> PResult<OpArgs> {
    let addr = addr(i)?;
    let pages = key_number(i, "pages", "'pages=N'")?;
    let kw = word(i, "'to' and the destination address")?;
    if kw.v != "to" {
        return cut(
            kw.span,
            format!(
                "expected 'to' and the destination address, found '{}'",
                kw.v
            ),
        );
    }
    let to = self::addr(i)?;
    Ok(OpArgs::Mremap { addr, pages, to })
}

fn args_try_to_unmap(i: &mut In<'_>) -> PResult<OpArgs> {
    Ok(OpArgs::TryToUnmap { addr: addr(i)? })
}

fn args_collapse_pte_mapped(i: &mut In<'_>) -> PResult<OpArgs> {
    Ok(OpArgs::CollapsePteMapped { addr: addr(i)? })
}

fn args_check(i: &mut In<'_>) -> PResult<OpArgs> {
    let addr = addr(i)?;
    ws(i)?;
    if !i.starts_with(is_word_char) {
        return expected(i, "'huge', 'small', 'unmapped' or 'value = N'");
    }
    let w = word(i, "'huge', 'small', 'unmapped' or 'value = N'")?;
    let what = match w.v {
        "huge" => CheckWhat::Huge,
        "small" => CheckWhat::Small,
        "unmapped" => CheckWhat::Unmapped,
        "value" => {
            punct(i, '=', "'=' and the expected value")?;
            CheckWhat::Value(number(i, "the expected value")?.v)
        }
        other => {
            return cut(
                w.span,
                format!("expected 'huge', 'small', 'unmapped' or 'value = N', found '{other}'"),
            )
        }
    };
    Ok(OpArgs::Check { addr, what })
}

fn args_migrate(i: &mut In<'_>) -> PResult<OpArgs> {
    Ok(OpArgs::Migrate { addr: addr(i)? })
}

fn args_retract(i: &mut In<'_>) -> PResult<OpArgs> {
    Ok(OpArgs::Retract { addr: addr(i)? })
}

fn args_punch_hole(i: &mut In<'_>) -> PResult<OpArgs> {
    let addr = addr(i)?;
    let pages = key_number(i, "pages", "'pages=N'")?;
    Ok(OpArgs::PunchHole { addr, pages })
}

fn args_fork(_: &mut In<'_>) -> PResult<OpArgs> {
    Ok(OpArgs::Fork)
}

fn args_numa_hint(i: &mut In<'_>) -> PResult<OpArgs> {
    let addr = addr(i)?;
    let pages = key_number(i, "pages", "'pages=N'")?;
    Ok(OpArgs::NumaHint { addr, pages })
}

fn args_mprotect(i: &mut In<'_>) -> PResult<OpArgs> {
    let addr = addr(i)?;
    let pages = key_number(i, "pages", "'pages=N'")?;
    let prot = word(i, "'read' or 'write'")?;
    let write = match prot.v {
        "read" => false,
        "write" => true,
        w => {
            return cut_help(
                prot.span,
                format!("expected 'read' or 'write', found '{w}'"),
                did_you_mean(w, &["read", "write"]),
            )
        }
    };
    Ok(OpArgs::Mprotect { addr, pages, write })
}

fn args_child_exit(_: &mut In<'_>) -> PResult<OpArgs> {
    Ok(OpArgs::ChildExit)
}

fn args_truncate(i: &mut In<'_>) -> PResult<OpArgs> {
    Ok(OpArgs::Truncate { addr: addr(i)? })
}

fn args_rmap_walk(i: &mut In<'_>) -> PResult<OpArgs> {
    Ok(OpArgs::RmapWalk { addr: addr(i)? })
}

fn collapse_args(i: &mut In<'_>, khugepaged: bool) -> PResult<OpArgs> {
    let addr = addr(i)?;
    ws(i)?;
    let order = if i.starts_with("order") {
        Some(key_number(i, "order", "'order=N'")?)
    } else {
        None
    };
    Ok(OpArgs::Collapse {
        addr,
        order,
        khugepaged,
    })
}

fn args_collapse(i: &mut In<'_>) -> PResult<OpArgs> {
    collapse_args(i, false)
}

fn args_khugepaged(i: &mut In<'_>) -> PResult<OpArgs> {
    collapse_args(i, true)
}

/// Every operation, modelled or not yet.
pub const OPS: &[OpSpec] = &[
    OpSpec {
        name: "load",
        syntax: "load ADDR",
        kernel: "user load: TLB, hardware walk, then do_user_addr_fault (arch/x86/mm/fault.c) and retry",
        init: true,
        args: Some(args_load),
    },
    OpSpec {
        name: "store",
        syntax: "store ADDR = VALUE",
        kernel: "user store: TLB, hardware walk, then do_user_addr_fault(write) (arch/x86/mm/fault.c) and retry",
        init: true,
        args: Some(args_store),
    },
    OpSpec {
        name: "fault",
        syntax: "fault ADDR [read|write]",
        kernel: "do_user_addr_fault -> handle_mm_fault (mm/memory.c), without the access",
        init: false,
        args: Some(args_fault),
    },
    OpSpec {
        name: "mmap",
        syntax: "mmap anon|shmem|shmem-private ADDR pages=N [of ADDR] [huge]",
        kernel: "do_mmap (mm/vma.c), PROT_READ|PROT_WRITE, MAP_FIXED_NOREPLACE, MAP_PRIVATE anonymous, MAP_SHARED or MAP_PRIVATE shmem (a new file, or with 'of' the file mapped at ADDR); huge: madvise(MADV_HUGEPAGE)",
        init: true,
        args: Some(args_mmap),
    },
    OpSpec {
        name: "munmap",
        syntax: "munmap ADDR pages=N",
        kernel: "do_munmap (mm/vma.c): unmap_region, free_pgtables, mmu_gather",
        init: true,
        args: Some(args_munmap),
    },
    OpSpec {
        name: "madvise dontneed",
        syntax: "madvise dontneed ADDR pages=N",
        kernel: "madvise_dontneed (mm/madvise.c): zap_page_range_single, PT reclaim (mm/pt_reclaim.c)",
        init: false,
        args: Some(args_dontneed),
    },
    OpSpec {
        name: "rcu_walk",
        syntax: "rcu_walk ADDR",
        kernel: "pte_offset_map / pte_unmap under RCU only (mm/pgtable-generic.c), as filemap_fault_recheck_pte_none",
        init: false,
        args: Some(args_rcu_walk),
    },
    OpSpec {
        name: "folio_walk",
        syntax: "folio_walk ADDR ptl|ref",
        kernel: "folio_walk_start / folio_walk_end (mm/pagewalk.c) under the lock the folio_walk.lock switch names, walking as folio_walk.design says; ptl: use the page under the PTL (a lockless walk: with its reference), ref: take a reference, end the walk, then use it",
        init: false,
        args: Some(args_folio_walk),
    },
    OpSpec {
        name: "gup_fast",
        syntax: "gup_fast ADDR read|write = VALUE [pin]",
        kernel: "get_user_pages_fast (mm/gup.c, IRQs off, no locks; FOLL_PIN with 'pin'), then a read or a DMA write through the page, then unpin/put",
        init: false,
        args: Some(args_gup_fast),
    },
    OpSpec {
        name: "mremap",
        syntax: "mremap ADDR pages=N to ADDR",
        kernel: "do_mremap (mm/mremap.c), MREMAP_MAYMOVE|MREMAP_FIXED to an unmapped destination: copy_vma, move_page_tables under the rmap locks the mremap.rmap_locks switch names",
        init: true,
        args: Some(args_mremap),
    },
    OpSpec {
        name: "check",
        syntax: "check ADDR huge|small|unmapped|value = N",
        kernel: "an assertion on the state after the previous operations: ADDR is PMD-mapped, PTE-mapped, not mapped, or holds N (peeked, no visible step); a failed check is an assertion violation",
        init: false,
        args: Some(args_check),
    },
    OpSpec {
        name: "migrate",
        syntax: "migrate ADDR",
        kernel: "migrate the folio mapped at ADDR (mm/migrate.c): try_to_migrate, copy, remove_migration_ptes",
        init: false,
        args: Some(args_migrate),
    },
    OpSpec {
        name: "madvise collapse",
        syntax: "madvise collapse ADDR [order=N]",
        kernel: "MADV_COLLAPSE of the range holding ADDR: collapse_huge_page (mm/khugepaged.c) at the PMD order, or at order N (2026 mTHP)",
        init: false,
        args: Some(args_collapse),
    },
    OpSpec {
        name: "khugepaged",
        syntax: "khugepaged ADDR [order=N]",
        kernel: "a khugepaged scan of the PMD range holding ADDR: hpage_collapse_scan_pmd -> collapse_huge_page (mm/khugepaged.c), with max_ptes_none",
        init: false,
        args: Some(args_khugepaged),
    },
    OpSpec {
        name: "try_to_unmap",
        syntax: "try_to_unmap ADDR",
        kernel: "try_to_unmap -> try_to_unmap_one (mm/rmap.c) of the page-cache folio mapped at ADDR (anonymous folios need swap, not modelled)",
        init: false,
        args: Some(args_try_to_unmap),
    },
    OpSpec {
        name: "collapse_pte_mapped_thp",
        syntax: "collapse_pte_mapped_thp ADDR",
        kernel: "collapse_pte_mapped_thp (mm/khugepaged.c): a PTE-mapped PMD-order page-cache folio loses its PTE table (no PMD install)",
        init: false,
        args: Some(args_collapse_pte_mapped),
    },
    OpSpec {
        name: "rmap_walk",
        syntax: "rmap_walk ADDR",
        kernel: "folio_referenced of the folio mapped at ADDR: rmap_walk -> page_vma_mapped_walk (map_pte, PTL) -> clear young (mm/rmap.c)",
        init: false,
        args: Some(args_rmap_walk),
    },
    OpSpec {
        name: "punch_hole",
        syntax: "punch_hole ADDR pages=N",
        kernel: "fallocate(FALLOC_FL_PUNCH_HOLE) of the shmem pages mapped at ADDR: unmap_mapping_range under i_mmap_rwsem read, no folio lock (mm/memory.c), then shmem_undo_range (mm/shmem.c)",
        init: false,
        args: Some(args_punch_hole),
    },
    OpSpec {
        name: "fork",
        syntax: "fork",
        kernel: "fork(): dup_mmap of the mm (mmap_lock write, vma_start_write of each parent VMA, anon_vma_fork, copy_page_range write-protecting anon pages for COW; kernel/fork.c, mm/memory.c); the child lives to the end of the execution",
        init: false,
        args: Some(args_fork),
    },
    OpSpec {
        name: "numa_hint",
        syntax: "numa_hint ADDR pages=N",
        kernel: "NUMA balancing's scan of the range: task_numa_work -> change_prot_numa (mmap_lock read; change_pmd_range, change_huge_pmd under the PMD lock, change_pte_range under the PTL; mm/mprotect.c, mm/huge_memory.c) makes the pages PROTNONE; the next access faults into do_numa_page / do_huge_pmd_numa_page",
        init: false,
        args: Some(args_numa_hint),
    },
    OpSpec {
        name: "mprotect",
        syntax: "mprotect ADDR pages=N (read | write)",
        kernel: "mprotect to PROT_READ or PROT_READ|PROT_WRITE: do_mprotect_pkey -> mprotect_fixup (mmap_lock write, VMA split at the edges, vma_start_write, vm_flags) -> change_protection (change_pmd_range, change_huge_pmd under the PMD lock, change_pte_range under the PTL with flush_tlb_batched_pending; mm/mprotect.c) inside one mmu_gather; write-protects mapped entries when write goes away",
        init: false,
        args: Some(args_mprotect),
    },
    OpSpec {
        name: "child_exit",
        syntax: "child_exit",
        kernel: "the last forked child still alive exits: mmput -> exit_mmap (mmap_lock read: unmap_vmas; mmap_lock write: free_pgtables, unlink_anon_vmas, unlink_file_vma; mm/mmap.c) -> mmdrop",
        init: false,
        args: Some(args_child_exit),
    },
    OpSpec {
        name: "truncate",
        syntax: "truncate ADDR",
        kernel: "ftruncate of the shmem file mapped at ADDR to the file page mapped there (shmem_setattr, mm/shmem.c): i_size, unmap_mapping_range of the tail with even_cows (private COW copies too) under i_mmap_rwsem read, no folio lock, shmem_undo_range, unmap again",
        init: false,
        args: Some(args_truncate),
    },
    OpSpec {
        name: "retract",
        syntax: "retract ADDR",
        kernel: "collapse_file of the shmem range mapped at ADDR, ending in retract_page_tables (mm/khugepaged.c)",
        init: true,
        args: Some(args_retract),
    },
];

fn known_ops() -> String {
    OPS.iter()
        .filter(|o| o.modelled())
        .map(|o| o.name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_op_word(w: &str) -> bool {
    OPS.iter()
        .any(|o| o.name == w || o.name.split(' ').next() == Some(w))
}

/// One operation line of a block.
#[derive(Clone, Debug)]
struct OpLine {
    spec: &'static OpSpec,
    name_span: Range<usize>,
    args: OpArgs,
}

fn op_line(i: &mut In<'_>) -> PResult<OpLine> {
    let first = word(i, "an operation")?;
    let mut name = first.v.to_string();
    let mut span = first.span.clone();
    let two_word: Vec<&str> = OPS
        .iter()
        .filter_map(|o| o.name.strip_prefix(first.v)?.strip_prefix(' '))
        .collect();
    if !two_word.is_empty() {
        ws(i)?;
        if !i.starts_with(is_word_char) {
            let list = two_word.join(", ");
            return expected(i, format!("the kind of '{}' ({list})", first.v));
        }
        let second = word(i, "the kind of operation")?;
        name = format!("{} {}", first.v, second.v);
        span = first.span.start..second.span.end;
    }
    let Some(spec) = OPS.iter().find(|o| o.name == name) else {
        let names: Vec<&str> = OPS.iter().map(|o| o.name).collect();
        return cut_help(
            span,
            format!("unknown operation '{name}' (known: {})", known_ops()),
            did_you_mean(&name, &names),
        );
    };
    let Some(args) = spec.args else {
        return cut(
            span,
            format!(
                "operation '{name}' is not modelled yet (modelled: {})",
                known_ops()
            ),
        );
    };
    let args = args(i)?;
    eol(i)?;
    Ok(OpLine {
        spec,
        name_span: span,
        args,
    })
}

// ----- statements ----------------------------------------------------------------------------

/// The verdict of an `expect` line.
#[derive(Clone, Debug)]
enum VerdictAst<'a> {
    Clean,
    Violation(Sp<&'a str>),
    Reach(reach::ReachAst<'a>),
}

/// One top-level statement.
#[derive(Clone, Debug)]
enum Item<'a> {
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
    Frames {
        kw: Range<usize>,
        n: Sp<u64>,
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

const STATEMENTS: &[&str] = &[
    "scenario", "doc", "geometry", "protocol", "set", "frames", "init", "thread", "variant",
    "expect",
];

fn statement<'a>(i: &mut In<'a>) -> PResult<Item<'a>> {
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
        "frames" => Item::Frames {
            n: number(i, "the number of frames")?,
            kw: kw.span,
        },
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

fn geometry<'a>(i: &mut In<'a>, kw: Range<usize>) -> PResult<Item<'a>> {
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

fn expect<'a>(i: &mut In<'a>) -> PResult<Item<'a>> {
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

fn block(i: &mut In<'_>, open: Range<usize>, what: &str) -> PResult<Vec<OpLine>> {
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
fn i_text<'a>(i: &In<'a>) -> &'a str {
    let mut c = *i;
    c.reset_to_start();
    *c
}

fn file<'a>(i: &mut In<'a>) -> PResult<Vec<Item<'a>>> {
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

// ---------------------------------------------------------------------------------------------
// Suggestions
// ---------------------------------------------------------------------------------------------

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (k, ca) in a.chars().enumerate() {
        let mut cur = vec![k + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// "did you mean 'X'?" for the closest of `known`, if close enough.
fn did_you_mean(w: &str, known: &[&str]) -> Option<String> {
    if w.len() > 64 {
        return None;
    }
    known
        .iter()
        .map(|k| (edit_distance(w, k), *k))
        .filter(|&(d, k)| d > 0 && d <= (k.len() / 3).max(1))
        .min()
        .map(|(_, k)| format!("did you mean '{k}'?"))
}

// ---------------------------------------------------------------------------------------------
// Validation: statements to a Scenario
// ---------------------------------------------------------------------------------------------

struct Builder<'t> {
    file: &'t str,
    text: &'t str,
}

/// A mapping known to exist: `[start, end)` and where it was made.
#[derive(Clone, Copy, Debug)]
struct Mapping {
    start: u64,
    end: u64,
    line: usize,
    /// A shmem mapping (`of` may name it).
    file: bool,
}

impl<'t> Builder<'t> {
    fn err(&self, span: Range<usize>, msg: impl Into<String>) -> ParseError {
        ParseError::new(self.file, self.text, span, msg.into())
    }

    fn line(&self, span: &Range<usize>) -> usize {
        line_col_of(self.text, span.start.min(self.text.len())).0
    }

    fn switch_err(&self, s: &Setting<'_>, e: SwitchError) -> ParseError {
        match e {
            SwitchError::Unknown(_) => {
                let names: Vec<&str> = SWITCHES.iter().map(|s| s.name).collect();
                self.err(s.key.span.clone(), e.to_string()).with_help(
                    did_you_mean(s.key.v, &names)
                        .or_else(|| Some(format!("known switches: {}", names.join(", ")))),
                )
            }
            _ => self.err(s.value.span.clone(), e.to_string()),
        }
    }

    fn dup(&self, what: &str, first: &Range<usize>, again: &Range<usize>) -> ParseError {
        self.err(
            again.clone(),
            format!("duplicate {what} (first at line {})", self.line(first)),
        )
    }

    fn build(&self, items: Vec<Item<'_>>) -> Result<Scenario, ParseError> {
        // Header: name, doc, geometry, protocol, switches, frames.
        let mut name: Option<(Range<usize>, Sp<&str>)> = None;
        let mut doc: Vec<String> = Vec::new();
        let mut geometry: Option<Range<usize>> = None;
        let mut preset: Option<(Range<usize>, Sp<&str>)> = None;
        let mut frames: Option<Range<usize>> = None;
        let mut init: Option<Range<usize>> = None;
        for item in &items {
            match item {
                Item::Scenario { kw, name: n } => {
                    if let Some((first, _)) = &name {
                        return Err(self.dup("'scenario' line", first, kw));
                    }
                    name = Some((kw.clone(), n.clone()));
                }
                Item::Protocol { kw, preset: p } => {
                    if let Some((first, _)) = &preset {
                        return Err(self.dup("'protocol' line", first, kw));
                    }
                    preset = Some((kw.clone(), p.clone()));
                }
                Item::Geometry { kw, .. } => {
                    if let Some(first) = &geometry {
                        return Err(self.dup("'geometry' line", first, kw));
                    }
                    geometry = Some(kw.clone());
                }
                Item::Frames { kw, .. } => {
                    if let Some(first) = &frames {
                        return Err(self.dup("'frames' line", first, kw));
                    }
                    frames = Some(kw.clone());
                }
                Item::Init { kw, .. } => {
                    if let Some(first) = &init {
                        return Err(self.dup("'init' block", first, kw));
                    }
                    init = Some(kw.clone());
                }
                Item::Doc { text, .. } => doc.push(text.v.clone()),
                _ => {}
            }
        }
        let Some((scenario_kw, name)) = name else {
            return Err(self.err(
                0..0,
                "missing 'scenario NAME' line: every scenario file names its scenario",
            ));
        };
        let mut s = Scenario::new(name.v);
        s.doc = doc.join(" ");
        let base_fixups = |p: &mut Protocol| {
            // The explorer runs RCU callbacks on their own thread; scenarios fault around 4 pages.
            p.inline_rcu_callbacks = false;
            p.fault_around_pages = 4;
        };
        if let Some((_, p)) = &preset {
            let mut proto = Protocol::preset(p.v).map_err(|e| {
                let names: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
                self.err(p.span.clone(), e.to_string())
                    .with_help(did_you_mean(p.v, &names))
            })?;
            base_fixups(&mut proto);
            s.protocol = proto;
        }
        for item in &items {
            match item {
                Item::Geometry {
                    levels, entries, ..
                } => {
                    let l = levels.as_ref().map_or(3, |l| l.v);
                    let e = entries.as_ref().map_or(8, |e| e.v);
                    let lv = u32::try_from(l).unwrap_or(u32::MAX);
                    s.geometry = Geometry::new(lv, e).map_err(|err| {
                        let span = match (&err, levels, entries) {
                            (
                                mmcheck_kernel::arch::pgtable::GeometryError::Levels(_),
                                Some(l),
                                _,
                            ) => l.span.clone(),
                            (_, _, Some(e)) => e.span.clone(),
                            (_, Some(l), None) => l.span.clone(),
                            _ => 0..0,
                        };
                        let msg = match err {
                            mmcheck_kernel::arch::pgtable::GeometryError::Levels(_) => {
                                format!("levels must be 2 to 5, not {l}")
                            }
                            other => other.to_string(),
                        };
                        self.err(span, format!("impossible geometry: {msg}"))
                    })?;
                }
                Item::Set { setting } => {
                    s.protocol
                        .set(setting.key.v, setting.value.v)
                        .map_err(|e| self.switch_err(setting, e))?;
                }
                Item::Frames { n, .. } => {
                    if n.v < MIN_FRAMES || n.v > MAX_FRAMES {
                        return Err(self
                            .err(
                                n.span.clone(),
                                format!("frames must be {MIN_FRAMES} to {MAX_FRAMES}, not {}", n.v),
                            )
                            .with_help(Some(format!(
                            "pfn 0 is reserved, and the zero page and the mm's top-level table \
                             take a frame each: fewer than {MIN_FRAMES} cannot hold an mm"
                        ))));
                    }
                    s.nr_frames = n.v as usize;
                }
                _ => {}
            }
        }

        // Every mapping a thread makes, anywhere: thread addresses are checked permissively
        // against these (the interleaving decides whether they exist yet).
        let geo = s.geometry;
        let mut thread_maps: Vec<Mapping> = Vec::new();
        for item in &items {
            if let Item::Thread { ops, .. } = item {
                for op in ops {
                    let (addr, pages, file) = match &op.args {
                        OpArgs::Mmap {
                            addr,
                            pages,
                            backing,
                            ..
                        } => (addr, pages, *backing != Backing::AnonPrivate),
                        OpArgs::Mremap { to, pages, .. } => (to, pages, false),
                        _ => continue,
                    };
                    if let (Ok(a), Some(len)) = (
                        resolve_addr(geo, addr.v),
                        pages.v.checked_mul(geo.page_size()),
                    ) {
                        thread_maps.push(Mapping {
                            start: a,
                            end: a.saturating_add(len),
                            line: self.line(&addr.span),
                            file,
                        });
                    }
                }
            }
        }

        // The initial state (it runs before every thread, wherever the block is).
        let mut init_maps: Vec<Mapping> = Vec::new();
        for item in &items {
            if let Item::Init { ops, .. } = item {
                for op in ops {
                    let setup = self.resolve_setup(geo, op, &mut init_maps)?;
                    s.setup.push(setup);
                }
            }
        }

        // Threads and variants, in file order.
        let mut thread_names: HashMap<&str, Range<usize>> = HashMap::new();
        let mut thread_index: HashMap<&str, usize> = HashMap::new();
        let mut variant_names: HashMap<&str, Range<usize>> = HashMap::new();
        let mut expected_for: HashMap<Option<&str>, Range<usize>> = HashMap::new();
        for item in &items {
            match item {
                Item::Thread { name, ops } => {
                    if let Some(first) = thread_names.get(name.v) {
                        return Err(self.dup(
                            &format!("thread name '{}'", name.v),
                            first,
                            &name.span,
                        ));
                    }
                    if thread_names.len() == MAX_THREADS {
                        return Err(self.err(
                            name.span.clone(),
                            format!(
                                "too many threads: at most {MAX_THREADS} (the explorer gives each thread a CPU and keeps one for RCU callbacks)"
                            ),
                        ));
                    }
                    thread_index.insert(name.v, thread_names.len());
                    thread_names.insert(name.v, name.span.clone());
                    let mut prog = Vec::new();
                    for op in ops {
                        prog.push(self.resolve_op(geo, op, &init_maps, &thread_maps)?);
                    }
                    s.threads.push(prog);
                }
                Item::Variant { name, settings } => {
                    if let Some(first) = variant_names.get(name.v) {
                        return Err(self.dup(&format!("variant '{}'", name.v), first, &name.span));
                    }
                    let mut p = s.protocol.clone();
                    for st in settings {
                        p.set(st.key.v, st.value.v)
                            .map_err(|e| self.switch_err(st, e))?;
                    }
                    variant_names.insert(name.v, name.span.clone());
                    s.variants.push(Variant {
                        name: name.v.to_string(),
                        settings: settings
                            .iter()
                            .map(|st| (st.key.v.to_string(), st.value.v.to_string()))
                            .collect(),
                    });
                }
                _ => {}
            }
        }
        // Expectations may name variants declared anywhere in the file.
        let mut reach_spans: Vec<(Option<&str>, Range<usize>)> = Vec::new();
        for item in &items {
            if let Item::Expect { variants, verdict } = item {
                let mut reach_pattern = None;
                let verdict_v = match &verdict.v {
                    VerdictAst::Reach(r) => {
                        reach_pattern = Some((self.reach_pattern(r, &thread_index)?, &r.text));
                        Verdict::Clean
                    }
                    VerdictAst::Clean => Verdict::Clean,
                    VerdictAst::Violation(k) => {
                        let kind = ViolationKind::from_name(k.v).ok_or_else(|| {
                            let names: Vec<&str> =
                                ViolationKind::ALL.iter().map(|k| k.name()).collect();
                            self.err(
                                k.span.clone(),
                                format!(
                                    "unknown violation kind '{}' (known: {})",
                                    k.v,
                                    names.join(", ")
                                ),
                            )
                            .with_help(did_you_mean(k.v, &names))
                        })?;
                        Verdict::Violation(kind)
                    }
                };
                let targets: Vec<(Option<&str>, Range<usize>)> = if variants.is_empty() {
                    vec![(None, verdict.span.clone())]
                } else {
                    variants
                        .iter()
                        .map(|v| (Some(v.v), v.span.clone()))
                        .collect()
                };
                for (v, span) in targets {
                    if let Some(v) = v {
                        if !variant_names.contains_key(v) {
                            let known: Vec<&str> =
                                s.variants.iter().map(|x| x.name.as_str()).collect();
                            let list = if known.is_empty() {
                                "none declared".to_string()
                            } else {
                                known.join(", ")
                            };
                            return Err(self
                                .err(span, format!("unknown variant '{v}' (variants: {list})"))
                                .with_help(did_you_mean(v, &known).or_else(|| {
                                    Some(
                                        "declare it with 'variant NAME: SWITCH = VALUE, ...'"
                                            .into(),
                                    )
                                })));
                        }
                    }
                    if let Some((pattern, text)) = &reach_pattern {
                        reach_spans.push((v, span.clone()));
                        s.reach.push(crate::ReachExpectation {
                            variant: v.map(str::to_string),
                            pattern: pattern.clone(),
                            text: text.to_string(),
                        });
                        continue;
                    }
                    if let Some(first) = expected_for.get(&v) {
                        let what = match v {
                            Some(v) => format!("expectation for variant '{v}'"),
                            None => "expectation for the base protocol".to_string(),
                        };
                        return Err(self.dup(&what, first, &span));
                    }
                    expected_for.insert(v, span);
                    s.expect.push(Expectation {
                        variant: v.map(str::to_string),
                        verdict: verdict_v.clone(),
                    });
                }
            }
        }
        if s.threads.is_empty() {
            return Err(self
                .err(
                    scenario_kw.start..name.span.end,
                    format!("no threads: a scenario needs 1 to {MAX_THREADS} 'thread NAME {{ ... }}' blocks"),
                )
                .with_label("in this scenario"));
        }
        if s.expect.is_empty() {
            return Err(self
                .err(
                    scenario_kw.start..name.span.end,
                    "no 'expect' line: a scenario needs at least one expectation (e.g. 'expect clean')",
                )
                .with_label("in this scenario"));
        }
        // A reach line rides on its variant's verdict row.
        for (v, span) in &reach_spans {
            if !expected_for.contains_key(v) {
                let what = v.map_or("the base protocol".to_string(), |v| {
                    format!("variant '{v}'")
                });
                let line = v.map_or("expect clean".to_string(), |v| format!("expect {v}: clean"));
                return Err(self
                    .err(
                        span.clone(),
                        format!("a reach expectation for {what}, which has no verdict expectation"),
                    )
                    .with_help(Some(format!("add its verdict, e.g. '{line}'"))));
            }
        }
        let (spec, _) = s.reach_spec();
        if spec.atoms.len() > 64 || spec.patterns.len() > 64 {
            let span = reach_spans.last().map_or(0..0, |(_, sp)| sp.clone());
            return Err(self.err(
                span,
                "too many reach expectations: at most 64 distinct patterns and 64 distinct thread states",
            ));
        }
        Ok(s)
    }

    fn addr_err(&self, geo: Geometry, a: &Sp<Addr>) -> impl Fn(AddrError) -> ParseError + '_ {
        let span = a.span.clone();
        move |e| match e {
            AddrError::Overflow => self.err(
                span.clone(),
                format!(
                    "address {} is beyond the address space (TASK_SIZE {:#x} for {geo})",
                    self.text.get(span.clone()).unwrap_or("?"),
                    geo.task_size()
                ),
            ),
        }
    }

    /// Resolve and check an address: inside the address space.
    fn addr(&self, geo: Geometry, a: &Sp<Addr>) -> Result<u64, ParseError> {
        let v = resolve_addr(geo, a.v).map_err(self.addr_err(geo, a))?;
        if v >= geo.task_size() {
            return Err(self.addr_err(geo, a)(AddrError::Overflow));
        }
        Ok(v)
    }

    /// Check a range: page-aligned start, `pages` >= 1, inside the address space. Its end.
    fn range(
        &self,
        geo: Geometry,
        a: &Sp<Addr>,
        start: u64,
        pages: &Sp<u64>,
    ) -> Result<u64, ParseError> {
        if !start.is_multiple_of(geo.page_size()) {
            return Err(self.err(
                a.span.clone(),
                format!(
                    "address {start:#x} is not page-aligned (pages are {:#x} bytes)",
                    geo.page_size()
                ),
            ));
        }
        if pages.v == 0 {
            return Err(self.err(pages.span.clone(), "pages must be at least 1, not 0"));
        }
        pages
            .v
            .checked_mul(geo.page_size())
            .and_then(|len| start.checked_add(len))
            .filter(|&end| end <= geo.task_size())
            .ok_or_else(|| {
                self.err(
                    pages.span.clone(),
                    format!(
                        "{} pages from {} run past the end of the address space (TASK_SIZE {:#x} for {geo})",
                        pages.v,
                        show_addr(geo, start),
                        geo.task_size()
                    ),
                )
            })
    }

    fn outside(
        &self,
        geo: Geometry,
        a: &Sp<Addr>,
        v: u64,
        maps: &[Mapping],
        thread: bool,
    ) -> ParseError {
        let known = if maps.is_empty() {
            "none".to_string()
        } else {
            maps.iter()
                .map(|m| {
                    format!(
                        "{}..{} (line {})",
                        show_addr(geo, m.start),
                        show_addr(geo, m.end),
                        m.line
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let where_ = if thread {
            "mapped by 'init' or by any thread"
        } else {
            "mapped by 'init' before this line"
        };
        self.err(
            a.span.clone(),
            format!(
                "address {} is outside every VMA {where_} (VMAs: {known})",
                show_addr(geo, v)
            ),
        )
    }

    /// Check an mremap destination for the source `[start, end)`: page-aligned, inside the
    /// address space, apart from the source.
    fn mremap_dest(
        &self,
        geo: Geometry,
        to: &Sp<Addr>,
        pages: &Sp<u64>,
        start: u64,
        end: u64,
    ) -> Result<u64, ParseError> {
        let new = self.addr(geo, to)?;
        let new_end = self.range(geo, to, new, pages)?;
        if new < end && start < new_end {
            return Err(self.err(
                to.span.clone(),
                format!(
                    "destination {}..{} overlaps the source {}..{} (mremap fails with EINVAL)",
                    show_addr(geo, new),
                    show_addr(geo, new_end),
                    show_addr(geo, start),
                    show_addr(geo, end)
                ),
            ));
        }
        Ok(new)
    }

    fn resolve_setup(
        &self,
        geo: Geometry,
        op: &OpLine,
        maps: &mut Vec<Mapping>,
    ) -> Result<SetupOp, ParseError> {
        let inside = |a: &Sp<Addr>, maps: &[Mapping]| -> Result<u64, ParseError> {
            let v = self.addr(geo, a)?;
            if maps.iter().any(|m| m.start <= v && v < m.end) {
                Ok(v)
            } else {
                Err(self.outside(geo, a, v, maps, false))
            }
        };
        match &op.args {
            OpArgs::Mmap {
                addr,
                pages,
                backing,
                of,
                huge,
            } => {
                let start = self.addr(geo, addr)?;
                let end = self.range(geo, addr, start, pages)?;
                let backing = match of {
                    None => *backing,
                    Some(o) => {
                        let v = inside(o, maps)?;
                        if !maps.iter().any(|m| m.file && m.start <= v && v < m.end) {
                            return Err(self.err(
                                o.span.clone(),
                                format!(
                                    "'of {}' names an anonymous mapping: 'of' maps the shmem file mapped there",
                                    show_addr(geo, v)
                                ),
                            ));
                        }
                        Backing::SameFile {
                            of: v,
                            private: *backing == Backing::ShmemPrivate,
                        }
                    }
                };
                if let Some(m) = maps.iter().find(|m| m.start < end && start < m.end) {
                    return Err(self.err(
                        addr.span.clone(),
                        format!(
                            "mapping {}..{} overlaps the mapping from line {} (mmap fails with EEXIST)",
                            show_addr(geo, start),
                            show_addr(geo, end),
                            m.line
                        ),
                    ));
                }
                maps.push(Mapping {
                    start,
                    end,
                    line: self.line(&addr.span),
                    file: backing != Backing::AnonPrivate,
                });
                Ok(SetupOp::Mmap {
                    addr: start,
                    pages: pages.v,
                    backing,
                    huge: huge.is_some(),
                })
            }
            OpArgs::Store { addr, value } => Ok(SetupOp::Store {
                addr: inside(addr, maps)?,
                value: *value,
            }),
            OpArgs::Load { addr } => Ok(SetupOp::Load {
                addr: inside(addr, maps)?,
            }),
            OpArgs::Retract { addr } => Ok(SetupOp::Retract {
                addr: inside(addr, maps)?,
            }),
            OpArgs::Munmap { addr, pages } => {
                let start = inside(addr, maps)?;
                let end = self.range(geo, addr, start, pages)?;
                unmap_range(maps, start, end);
                Ok(SetupOp::Munmap {
                    addr: start,
                    pages: pages.v,
                })
            }
            OpArgs::Mremap { addr, pages, to } => {
                let start = inside(addr, maps)?;
                let end = self.range(geo, addr, start, pages)?;
                let new = self.mremap_dest(geo, to, pages, start, end)?;
                let new_end = new + (end - start);
                let file = maps
                    .iter()
                    .any(|m| m.file && m.start < end && start < m.end);
                unmap_range(maps, start, end);
                if let Some(m) = maps.iter().find(|m| m.start < new_end && new < m.end) {
                    return Err(self.err(
                        to.span.clone(),
                        format!(
                            "destination {}..{} overlaps the mapping from line {} (mremap fails with EEXIST)",
                            show_addr(geo, new),
                            show_addr(geo, new_end),
                            m.line
                        ),
                    ));
                }
                maps.push(Mapping {
                    start: new,
                    end: new_end,
                    line: self.line(&to.span),
                    file,
                });
                Ok(SetupOp::Mremap {
                    addr: start,
                    pages: pages.v,
                    new_addr: new,
                })
            }
            _ => {
                let allowed: Vec<&str> = OPS.iter().filter(|o| o.init).map(|o| o.name).collect();
                Err(self.err(
                    op.name_span.clone(),
                    format!(
                        "operation '{}' is not allowed in 'init' (init takes {})",
                        op.spec.name,
                        allowed.join(", ")
                    ),
                ))
            }
        }
    }

    fn resolve_op(
        &self,
        geo: Geometry,
        op: &OpLine,
        init_maps: &[Mapping],
        thread_maps: &[Mapping],
    ) -> Result<Op, ParseError> {
        let inside = |a: &Sp<Addr>| -> Result<u64, ParseError> {
            let v = self.addr(geo, a)?;
            if init_maps
                .iter()
                .chain(thread_maps)
                .any(|m| m.start <= v && v < m.end)
            {
                Ok(v)
            } else {
                let all: Vec<Mapping> = init_maps.iter().chain(thread_maps).copied().collect();
                Err(self.outside(geo, a, v, &all, true))
            }
        };
        Ok(match &op.args {
            OpArgs::Load { addr } => Op::Load {
                addr: inside(addr)?,
            },
            OpArgs::Store { addr, value } => Op::Store {
                addr: inside(addr)?,
                value: *value,
            },
            OpArgs::Fault { addr, write } => Op::Fault {
                addr: inside(addr)?,
                write: *write,
            },
            OpArgs::RcuWalk { addr } => Op::RcuWalk {
                addr: inside(addr)?,
            },
            OpArgs::FolioWalk { addr, use_ } => Op::FolioWalk {
                addr: inside(addr)?,
                use_: *use_,
            },
            OpArgs::GupFast {
                addr,
                write,
                pin,
                value,
            } => Op::GupFast {
                addr: inside(addr)?,
                write: *write,
                pin: *pin,
                value: *value,
            },
            OpArgs::Munmap { addr, pages } => {
                let start = inside(addr)?;
                self.range(geo, addr, start, pages)?;
                Op::Munmap {
                    addr: start,
                    pages: pages.v,
                }
            }
            OpArgs::DontNeed { addr, pages } => {
                let start = inside(addr)?;
                self.range(geo, addr, start, pages)?;
                Op::DontNeed {
                    addr: start,
                    pages: pages.v,
                }
            }
            OpArgs::Check { addr, what } => Op::Check {
                addr: inside(addr)?,
                what: *what,
            },
            OpArgs::Migrate { addr } => Op::Migrate {
                addr: inside(addr)?,
            },
            OpArgs::TryToUnmap { addr } => Op::TryToUnmap {
                addr: inside(addr)?,
            },
            OpArgs::CollapsePteMapped { addr } => Op::CollapsePteMappedThp {
                addr: inside(addr)?,
            },
            OpArgs::Retract { addr } => Op::Retract {
                addr: inside(addr)?,
            },
            OpArgs::Fork => Op::Fork,
            OpArgs::ChildExit => Op::ChildExit,
            OpArgs::Mprotect { addr, pages, write } => {
                let start = inside(addr)?;
                self.range(geo, addr, start, pages)?;
                Op::Mprotect {
                    addr: start,
                    pages: pages.v,
                    write: *write,
                }
            }
            OpArgs::NumaHint { addr, pages } => {
                let start = inside(addr)?;
                self.range(geo, addr, start, pages)?;
                Op::NumaHint {
                    addr: start,
                    pages: pages.v,
                }
            }
            OpArgs::RmapWalk { addr } => Op::RmapWalk {
                addr: inside(addr)?,
            },
            OpArgs::Truncate { addr } => Op::Truncate {
                addr: inside(addr)?,
            },
            OpArgs::PunchHole { addr, pages } => {
                let start = inside(addr)?;
                self.range(geo, addr, start, pages)?;
                Op::PunchHole {
                    addr: start,
                    pages: pages.v,
                }
            }
            OpArgs::Collapse {
                addr,
                order,
                khugepaged,
            } => {
                let order = match order {
                    Some(o) if o.v == 0 || o.v > geo.pmd_order() as u64 => {
                        return Err(self.err(
                            o.span.clone(),
                            format!(
                                "order must be 1 to {} (the PMD order of this geometry)",
                                geo.pmd_order()
                            ),
                        ))
                    }
                    Some(o) => o.v as u32,
                    None => geo.pmd_order(),
                };
                Op::Collapse {
                    addr: inside(addr)?,
                    order,
                    khugepaged: *khugepaged,
                }
            }
            OpArgs::Mremap { addr, pages, to } => {
                let start = inside(addr)?;
                let end = self.range(geo, addr, start, pages)?;
                Op::Mremap {
                    addr: start,
                    pages: pages.v,
                    new_addr: self.mremap_dest(geo, to, pages, start, end)?,
                }
            }
            OpArgs::Mmap {
                addr,
                pages,
                backing,
                of,
                huge,
            } => {
                if let Some(o) = of {
                    return Err(self.err(
                        o.span.clone(),
                        "'of' is only supported in 'init' (the file a thread's mmap would map may not exist yet)",
                    ));
                }
                if let Some(h) = huge {
                    return Err(self.err(
                        h.clone(),
                        "'huge' is only supported in 'init' (a thread's mmap cannot set VM_HUGEPAGE yet)",
                    ));
                }
                let start = self.addr(geo, addr)?;
                self.range(geo, addr, start, pages)?;
                Op::Mmap {
                    addr: start,
                    pages: pages.v,
                    backing: *backing,
                }
            }
        })
    }
}

/// Take `[start, end)` out of `maps`, splitting mappings it cuts.
fn unmap_range(maps: &mut Vec<Mapping>, start: u64, end: u64) {
    let mut out = Vec::with_capacity(maps.len() + 1);
    for m in maps.drain(..) {
        if m.end <= start || end <= m.start {
            out.push(m);
            continue;
        }
        if m.start < start {
            out.push(Mapping { end: start, ..m });
        }
        if end < m.end {
            out.push(Mapping { start: end, ..m });
        }
    }
    *maps = out;
}

enum AddrError {
    Overflow,
}

/// The byte address of an address as written (`@N`: [`Scenario::page`]).
fn resolve_addr(geo: Geometry, a: Addr) -> Result<u64, AddrError> {
    match a {
        Addr::Byte(b) => Ok(b),
        Addr::Page(p) => p
            .checked_mul(geo.page_size())
            .and_then(|off| off.checked_add(geo.pmd_size()))
            .ok_or(AddrError::Overflow),
    }
}

/// `0x201000 (@1)` for window pages, the hex address otherwise.
fn show_addr(geo: Geometry, a: u64) -> String {
    let (base, ps) = (geo.pmd_size(), geo.page_size());
    if a >= base && (a - base).is_multiple_of(ps) {
        format!("{a:#x} (@{})", (a - base) / ps)
    } else {
        format!("{a:#x}")
    }
}

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

/// Parse and validate a `.mmt` scenario. `file_name` is only used in errors.
pub fn parse_scenario(file_name: &str, text: &str) -> Result<Scenario, ParseError> {
    let mut input = LocatingSlice::new(text);
    let items = match file(&mut input) {
        Ok(items) => items,
        Err(e) => {
            let e = match e {
                ErrMode::Backtrack(e) | ErrMode::Cut(e) => e,
                ErrMode::Incomplete(_) => SynErr::from_input(&input),
            };
            return Err(ParseError::new(file_name, text, e.span, e.msg).with_help(e.help));
        }
    };
    Builder {
        file: file_name,
        text,
    }
    .build(items)
}

/// Every `.mmt` file below `dir`, in path order (the test suites' view of the catalogue).
pub fn scenario_files(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
        let mut v = std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<Vec<_>>>()?;
        v.sort();
        for p in v {
            if p.is_dir() {
                walk(&p, out)?;
            } else if p.extension().is_some_and(|x| x == "mmt") {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, &mut out)?;
    Ok(out)
}

/// Read and parse a `.mmt` file. An unreadable file is an error at line 1, column 1; a file that
/// is not UTF-8 is an error at its first bad byte.
pub fn load_scenario_file(path: &Path) -> Result<Scenario, ParseError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path)
        .map_err(|e| ParseError::new(&name, "", 0..0, format!("cannot read {name}: {e}")))?;
    parse_scenario_bytes(&name, &bytes)
}

/// Parse a scenario from the bytes of a file named `name`: [`parse_scenario`], or an error at the
/// first byte that is not UTF-8.
pub fn parse_scenario_bytes(name: &str, bytes: &[u8]) -> Result<Scenario, ParseError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse_scenario(name, text),
        Err(e) => {
            let good = e.valid_up_to();
            let text = String::from_utf8_lossy(bytes);
            // The lossy text has the same bytes up to the first bad one.
            Err(ParseError::new(
                name,
                &text,
                good..good + 1,
                "the file is not valid UTF-8".to_string(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_and_suggestions() {
        assert_eq!(edit_distance("pt_reclaim.fre", "pt_reclaim.free"), 1);
        assert_eq!(
            did_you_mean("pt_reclaim.fre", &["pt_reclaim", "pt_reclaim.free"]),
            Some("did you mean 'pt_reclaim.free'?".into())
        );
        assert_eq!(did_you_mean("zzz", &["load"]), None);
    }

    #[test]
    fn spans_clamp_to_the_text() {
        assert_eq!(clamp_span("ab\n", 3..3), 2..2);
        assert_eq!(clamp_span("ab\r\n", 4..4), 2..2);
        assert_eq!(clamp_span("ab", 5..9), 2..2);
        assert_eq!(clamp_span("é", 1..1), 0..2);
        assert_eq!(line_col_of("a\nbc", 3), (2, 2));
    }
}
