//! Errors: a bad litmus file is refused with a message at `file:line:col` and, rendered, a
//! caret under the offending text (`miette`). A test too large for the checker is a separate
//! kind: a tool limit, never a verdict.

use miette::{
    Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode,
    ThemeCharacters, ThemeStyles,
};
use std::fmt;
use std::ops::Range;

/// Why a litmus test got no verdict.
#[derive(Debug)]
pub enum LitmusError {
    /// The file is not a litmus test this front end reads (exit 2).
    Parse(ParseError),
    /// The file could not be read (exit 2).
    Io(String),
    /// The test is beyond the checker's limits (events, values, candidates): inconclusive.
    Limit(String),
}

impl fmt::Display for LitmusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LitmusError::Parse(e) => write!(f, "{e}"),
            LitmusError::Io(m) => write!(f, "{m}"),
            LitmusError::Limit(m) => write!(f, "inconclusive: {m}"),
        }
    }
}

impl std::error::Error for LitmusError {}

impl From<ParseError> for LitmusError {
    fn from(e: ParseError) -> Self {
        LitmusError::Parse(e)
    }
}

/// A message located at a byte span of a file.
#[derive(Clone, Debug)]
pub struct ParseError {
    file: String,
    text: String,
    span: Range<usize>,
    message: String,
    line: usize,
    col: usize,
}

/// The 1-based line and column (in characters) of byte `at` of `text`.
pub fn line_col_of(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let mut at = at;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn escape_controls(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                format!("\\x{:02x}", c as u32 & 0xff)
            } else {
                c.to_string()
            }
        })
        .collect()
}

impl ParseError {
    /// An error at `span` of `text` (the contents of `file`).
    pub fn new(file: &str, text: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        let start = span.start.min(text.len());
        let end = span.end.clamp(start, text.len());
        let (line, col) = line_col_of(text, start);
        ParseError {
            file: escape_controls(file),
            text: text.to_string(),
            span: start..end,
            message: escape_controls(&message.into()),
            line,
            col,
        }
    }

    /// The 1-based line and column of the error.
    pub fn line_col(&self) -> (usize, usize) {
        (self.line, self.col)
    }

    /// The message, without location.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The error with the offending line and a caret under the offending text (no colours).
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
            .with_wrap_lines(false);
        let shown = Shown {
            err: self,
            src: NamedSource::new(self.file.clone(), escape_controls(&self.text)),
        };
        let mut out = String::new();
        let ok = self
            .text
            .chars()
            .all(|c| !c.is_control() || c == '\n' || c == '\t')
            && handler.render_report(&mut out, &shown).is_ok();
        if !ok {
            out = format!("error: {self}\n");
        } else {
            out = format!("{self}\n{out}");
        }
        out
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

impl std::error::Error for ParseError {}

/// The error with its source, for miette's renderer.
struct Shown<'a> {
    err: &'a ParseError,
    src: NamedSource<String>,
}

impl fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.err, f)
    }
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.err.message)
    }
}

impl std::error::Error for Shown<'_> {}

impl Diagnostic for Shown<'_> {
    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.src)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            None,
            self.err.span.clone(),
        ))))
    }
}
