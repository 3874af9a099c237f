//! The syntax line of every operation ([`crate::parse::ops::OPS`], `syntax`) read as a template,
//! so that the wide generator covers every operation the parser knows, including ones added
//! later, without a second list of their arguments.
//!
//! A syntax line is a sequence of items: a literal word (`to`, `=`, `pin`), a placeholder
//! (`ADDR`, `VALUE`, `N`, or `key=N` such as `pages=N`), a choice of words (`read|write`), an
//! optional group (`[of ADDR]`) or a parenthesized choice of sequences (`(read | write)`).

/// One item of a syntax line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A word written as is.
    Word(String),
    /// One of these words.
    OneOf(Vec<String>),
    /// A placeholder: `ADDR`, `VALUE` or `N`, with the literal word before it (`to` for the
    /// destination of `mremap`, `=` for a value) and its `key=` prefix if any (`pages`).
    Hole {
        kind: Hole,
        key: Option<String>,
        after: Option<String>,
    },
    /// Present or not.
    Optional(Vec<Item>),
    /// One of these sequences.
    Alt(Vec<Vec<Item>>),
}

/// What a placeholder stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hole {
    Addr,
    Value,
    Number,
}

/// A syntax line that is not a template this reader knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError(pub String);

/// Read the arguments of `syntax` (everything after the operation's `name`).
pub fn parse(name: &str, syntax: &str) -> Result<Vec<Item>, TemplateError> {
    let rest = syntax
        .strip_prefix(name)
        .ok_or_else(|| TemplateError(format!("'{syntax}' does not start with '{name}'")))?;
    let toks = tokens(rest);
    let mut pos = 0;
    let items = seq(&toks, &mut pos)?;
    if pos != toks.len() {
        return Err(TemplateError(format!(
            "'{syntax}': unexpected '{}'",
            toks[pos]
        )));
    }
    Ok(items)
}

/// Brackets and parentheses are tokens of their own; so is a spaced `|`.
fn tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '[' | ']' | '(' | ')' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                out.push(c.to_string());
            }
            ' ' | '\t' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn seq(toks: &[String], pos: &mut usize) -> Result<Vec<Item>, TemplateError> {
    let mut items = Vec::new();
    let mut prev: Option<String> = None;
    while let Some(t) = toks.get(*pos) {
        match t.as_str() {
            "]" | ")" | "|" => break,
            "[" => {
                *pos += 1;
                let inner = seq(toks, pos)?;
                expect(toks, pos, "]")?;
                items.push(Item::Optional(inner));
                prev = None;
            }
            "(" => {
                *pos += 1;
                let mut alts = vec![seq(toks, pos)?];
                while toks.get(*pos).map(String::as_str) == Some("|") {
                    *pos += 1;
                    alts.push(seq(toks, pos)?);
                }
                expect(toks, pos, ")")?;
                items.push(Item::Alt(alts));
                prev = None;
            }
            w => {
                *pos += 1;
                let item = word(w, prev.take())?;
                if let Item::Word(lit) = &item {
                    prev = Some(lit.clone());
                }
                items.push(item);
            }
        }
    }
    Ok(items)
}

fn expect(toks: &[String], pos: &mut usize, what: &str) -> Result<(), TemplateError> {
    if toks.get(*pos).map(String::as_str) == Some(what) {
        *pos += 1;
        Ok(())
    } else {
        Err(TemplateError(format!("expected '{what}'")))
    }
}

fn word(w: &str, after: Option<String>) -> Result<Item, TemplateError> {
    let hole = |h: &str| match h {
        "ADDR" => Some(Hole::Addr),
        "VALUE" => Some(Hole::Value),
        "N" => Some(Hole::Number),
        _ => None,
    };
    if let Some(kind) = hole(w) {
        return Ok(Item::Hole {
            kind,
            key: None,
            after,
        });
    }
    if let Some((key, h)) = w.split_once('=') {
        if let Some(kind) = hole(h) {
            return Ok(Item::Hole {
                kind,
                key: Some(key.to_string()),
                after,
            });
        }
    }
    if w.contains('|') {
        let alts: Vec<String> = w.split('|').map(str::to_string).collect();
        if alts.iter().any(|a| a.is_empty() || hole(a).is_some()) {
            return Err(TemplateError(format!("choice '{w}' with a placeholder")));
        }
        return Ok(Item::OneOf(alts));
    }
    if w.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(TemplateError(format!("unknown placeholder '{w}'")));
    }
    Ok(Item::Word(w.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::OPS;

    #[test]
    fn every_modelled_operation_has_a_template() {
        for op in OPS.iter().filter(|o| o.modelled()) {
            parse(op.name, op.syntax).unwrap_or_else(|e| panic!("{}: {}", op.name, e.0));
        }
    }

    #[test]
    fn reads_holes_choices_and_groups() {
        let t = parse("mremap", "mremap ADDR pages=N to ADDR [dontunmap]").unwrap();
        assert_eq!(t.len(), 5);
        assert!(matches!(
            &t[3],
            Item::Hole { kind: Hole::Addr, after: Some(a), .. } if a == "to"
        ));
        assert!(matches!(&t[1], Item::Hole { key: Some(k), .. } if k == "pages"));
        let t = parse("mprotect", "mprotect ADDR pages=N (read | write)").unwrap();
        assert!(matches!(&t[2], Item::Alt(a) if a.len() == 2));
        let t = parse("fault", "fault ADDR [read|write]").unwrap();
        assert!(
            matches!(&t[1], Item::Optional(o) if matches!(&o[0], Item::OneOf(w) if w.len() == 2))
        );
    }
}
