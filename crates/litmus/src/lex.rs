//! The lexical layer (`winnow`): identifiers, numbers, punctuation, and the three comment forms
//! of a kernel litmus file (`(* ... *)` outside code, `/* ... */` and `// ...`). Every token
//! carries its byte span for error carets.

use crate::error::ParseError;
use std::ops::Range;
use winnow::error::{ContextError, ErrMode};
use winnow::stream::{LocatingSlice, Location, Stream};
use winnow::token::{any, take_while};
use winnow::Parser;

type In<'a> = LocatingSlice<&'a str>;
type PResult<T> = Result<T, ErrMode<ContextError>>;

/// A token's kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    Ident(String),
    Int(i64),
    /// Punctuation, including `/\` and `\/`.
    Punct(&'static str),
}

/// A token and its bytes.
#[derive(Clone, Debug)]
pub struct Token {
    pub tok: Tok,
    pub span: Range<usize>,
}

/// A comment's text and bytes (the doc comment carries the `Result:` line).
#[derive(Clone, Debug)]
pub struct Comment {
    pub text: String,
    pub span: Range<usize>,
}

const PUNCTS: &[&str] = &[
    "/\\", "\\/", "==", "!=", "<=", ">=", "&&", "||", "<<", ">>", "{", "}", "(", ")", "[", "]",
    ";", ",", "*", "&", "=", "+", "-", "!", "~", "<", ">", "|", "^", ":", ".", "/", "%",
];

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn ident(i: &mut In<'_>) -> PResult<String> {
    (
        take_while(1, is_ident_start),
        take_while(0.., is_ident_char),
    )
        .take()
        .map(str::to_string)
        .parse_next(i)
}

fn digits<'a>(i: &mut In<'a>) -> PResult<&'a str> {
    take_while(1.., |c: char| c.is_ascii_alphanumeric()).parse_next(i)
}

/// Split `text` (a file without its `C NAME` line, starting at byte `base`) into tokens and
/// comments.
pub fn lex(file: &str, full: &str, base: usize) -> Result<(Vec<Token>, Vec<Comment>), ParseError> {
    let text = &full[base..];
    let mut i = LocatingSlice::new(text);
    let mut toks = Vec::new();
    let mut comments = Vec::new();
    let err = |at: usize, len: usize, msg: String| {
        ParseError::new(file, full, base + at..base + at + len, msg)
    };
    loop {
        let _: PResult<&str> = take_while(0.., |c: char| c.is_whitespace()).parse_next(&mut i);
        let at = i.current_token_start();
        let rest: &str = &i;
        if rest.is_empty() {
            break;
        }
        // Comments: OCaml-style `(* ... *)` (nested), C-style `/* ... */` and `// ...`.
        let ocaml = rest.starts_with("(*")
            && rest[2..]
                .chars()
                .next()
                .is_none_or(|c| c.is_whitespace() || c == '*');
        if ocaml || rest.starts_with("/*") {
            let (open, close) = if ocaml { ("(*", "*)") } else { ("/*", "*/") };
            let mut depth = 0usize;
            let mut k = 0usize;
            let bytes = rest.as_bytes();
            let end = loop {
                if k >= bytes.len() {
                    return Err(err(at, 2, "unterminated comment".into()));
                }
                if rest[k..].starts_with(open) && (ocaml || depth == 0) {
                    depth += 1;
                    k += 2;
                } else if rest[k..].starts_with(close) {
                    depth -= 1;
                    k += 2;
                    if depth == 0 {
                        break k;
                    }
                } else {
                    k += rest[k..].chars().next().map_or(1, char::len_utf8);
                }
            };
            comments.push(Comment {
                text: rest[2..end - 2].to_string(),
                span: base + at..base + at + end,
            });
            i.next_slice(end);
            continue;
        }
        if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            i.next_slice(end);
            continue;
        }
        let c = rest.chars().next().unwrap_or(' ');
        if is_ident_start(c) {
            let s = ident(&mut i).map_err(|_| err(at, 1, "bad identifier".into()))?;
            toks.push(Token {
                tok: Tok::Ident(s),
                span: base + at..base + i.current_token_start(),
            });
            continue;
        }
        if c.is_ascii_digit() {
            let s = digits(&mut i).map_err(|_| err(at, 1, "bad number".into()))?;
            let v = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                i64::from_str_radix(h, 16)
            } else {
                s.parse::<i64>()
            };
            let v = v.map_err(|_| err(at, s.len(), format!("bad number '{s}'")))?;
            toks.push(Token {
                tok: Tok::Int(v),
                span: base + at..base + at + s.len(),
            });
            continue;
        }
        if let Some(p) = PUNCTS.iter().find(|p| rest.starts_with(**p)) {
            i.next_slice(p.len());
            toks.push(Token {
                tok: Tok::Punct(p),
                span: base + at..base + at + p.len(),
            });
            continue;
        }
        let _: PResult<char> = any.parse_next(&mut i);
        return Err(err(
            at,
            c.len_utf8(),
            format!("unexpected character '{}'", c.escape_debug()),
        ));
    }
    Ok((toks, comments))
}
