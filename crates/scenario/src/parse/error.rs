//! Parse errors: a located message rendered with a caret under the offending text (`miette`),
//! with control characters escaped so that a hostile file cannot move the terminal cursor.

use super::*;

/// `s` with every control character but newline and tab written as `\xNN` (or `\u{NNNN}`).
pub fn escape_controls(s: &str) -> String {
    escape_with_span(s, 0..0).0
}

/// [`escape_controls`] of `text`, and the byte span `span` of `text` moved to the result.
pub(super) fn escape_with_span(text: &str, span: Range<usize>) -> (String, Range<usize>) {
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

pub(super) fn needs_escape(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

/// Why a scenario file was refused: a message located at a byte span of the file, with the
/// file's name and text for rendering.
#[derive(Clone, Debug)]
pub struct ParseError(Box<ErrorInner>);

#[derive(Clone, Debug)]
pub(super) struct ErrorInner {
    pub(super) file: String,
    pub(super) src: Src,
    /// The span in the file's text.
    pub(super) span: Range<usize>,
    /// The same span in the snippet shown (control bytes escaped).
    pub(super) shown_span: Range<usize>,
    pub(super) message: String,
    pub(super) label: Option<String>,
    pub(super) help: Option<String>,
    pub(super) line: usize,
    pub(super) col: usize,
}

impl ParseError {
    pub(super) fn new(file: &str, text: &str, span: Range<usize>, message: String) -> Self {
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

    pub(super) fn with_help(mut self, help: Option<String>) -> Self {
        self.0.help = help;
        self
    }

    pub(super) fn with_label(mut self, label: impl Into<String>) -> Self {
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
    pub(super) fn diag_labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.0.src.text.is_empty() {
            return None;
        }
        Some(Box::new(std::iter::once(
            LabeledSpan::new_primary_with_span(self.0.label.clone(), self.0.shown_span.clone()),
        )))
    }

    pub(super) fn diag_help(&self) -> Option<Box<dyn fmt::Display + '_>> {
        self.0
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    pub(super) fn diag_source(&self) -> Option<&dyn SourceCode> {
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
pub(super) struct Src {
    pub(super) name: String,
    pub(super) text: String,
}

impl Src {
    pub(super) fn new(name: &str, text: &str) -> Self {
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
pub(super) struct Plain<'e>(&'e ParseError);

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
pub(super) fn clamp_span(text: &str, span: Range<usize>) -> Range<usize> {
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
pub(super) fn line_col_of(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |k| k + 1);
    (line, before[line_start..].chars().count() + 1)
}
