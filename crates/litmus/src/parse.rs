//! The parser: a kernel C litmus file (the subset tools/memory-model/litmus-tests uses) to a
//! [`Test`]. Recursive descent over the tokens of [`crate::lex`]; every refusal is a
//! [`ParseError`] at the offending token.

use crate::ast::*;
use crate::error::ParseError;
use crate::lex::{lex, Comment, Tok, Token};
use crate::prim;

/// Type words accepted in declarations and parameter lists.
const TYPES: &[&str] = &[
    "int",
    "long",
    "unsigned",
    "signed",
    "char",
    "short",
    "atomic_t",
    "spinlock_t",
    "intptr_t",
    "uintptr_t",
    "u32",
    "u64",
    "s32",
    "s64",
    "bool",
    "const",
    "volatile",
];

struct P<'a> {
    file: &'a str,
    text: &'a str,
    toks: Vec<Token>,
    pos: usize,
    locks: Vec<String>,
    globals: Vec<String>,
    /// Nesting of expressions, statements and propositions, bounded by [`MAX_DEPTH`].
    depth: usize,
}

/// The deepest nesting accepted (deeper input would exhaust the stack).
const MAX_DEPTH: usize = 200;

type R<T> = Result<T, ParseError>;

/// Parse the litmus test `text`, read from `file` (for messages).
pub fn parse(file: &str, text: &str) -> R<Test> {
    // The header: `C NAME` on the first non-blank line.
    let start = text.len() - text.trim_start().len();
    let line_end = text[start..].find('\n').map_or(text.len(), |k| start + k);
    let header = &text[start..line_end];
    let mut words = header.split_whitespace();
    if words.next() != Some("C") {
        let w = header.split_whitespace().next().unwrap_or("");
        return Err(ParseError::new(
            file,
            text,
            start..start + w.len(),
            "expected the header 'C NAME' (only C litmus tests are read)",
        ));
    }
    let name = match words.next() {
        Some(n) => n.to_string(),
        None => {
            return Err(ParseError::new(
                file,
                text,
                start..line_end,
                "the header 'C' lacks the test's name",
            ))
        }
    };
    let (toks, comments) = lex(file, text, line_end)?;
    let expected = expected_result(file, text, &comments)?;
    let mut p = P {
        file,
        text,
        toks,
        pos: 0,
        locks: Vec::new(),
        globals: Vec::new(),
        depth: 0,
    };
    let init = p.init_block()?;
    let mut threads = Vec::new();
    while let Some(Tok::Ident(w)) = p.peek() {
        let Some(idx) = w.strip_prefix('P').and_then(|d| d.parse::<usize>().ok()) else {
            break;
        };
        let sp = p.span();
        if idx != threads.len() {
            return Err(p.err_at(sp, format!("expected P{}, found P{idx}", threads.len())));
        }
        threads.push(p.thread(idx)?);
    }
    if threads.is_empty() {
        return Err(p.err_here("expected a process 'P0(...) { ... }'"));
    }
    let mut locations = Vec::new();
    let mut filter = None;
    loop {
        match p.peek() {
            Some(Tok::Ident(w)) if w == "locations" => {
                p.pos += 1;
                p.expect("[")?;
                while !p.eat("]") {
                    let sp = p.span();
                    let t = p.target()?;
                    locations.push((t, sp));
                    if !p.eat(";") && p.peek() != Some(&Tok::Punct("]")) {
                        return Err(p.err_here("expected ';' or ']' in 'locations'"));
                    }
                }
            }
            Some(Tok::Ident(w)) if w == "filter" => {
                p.pos += 1;
                filter = Some(p.prop()?);
            }
            _ => break,
        }
    }
    let quant = match p.peek() {
        Some(Tok::Ident(w)) if w == "exists" => Quant::Exists,
        Some(Tok::Ident(w)) if w == "forall" => Quant::Forall,
        Some(Tok::Punct("~")) => {
            p.pos += 1;
            match p.peek() {
                Some(Tok::Ident(w)) if w == "exists" => Quant::NotExists,
                _ => return Err(p.err_here("expected 'exists' after '~'")),
            }
        }
        _ => return Err(p.err_here("expected the final clause 'exists (...)'")),
    };
    p.pos += 1;
    let from = p.span().start;
    let prop = p.prop()?;
    let to = p.toks[p.pos - 1].span.end;
    let mut ptext = text[from..to]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if !(ptext.starts_with('(') && ptext.ends_with(')')) {
        ptext = format!("({ptext})");
    }
    if p.pos < p.toks.len() {
        return Err(p.err_here("unexpected text after the final clause"));
    }
    Ok(Test {
        name,
        expected,
        init,
        locks: p.locks,
        globals: p.globals,
        threads,
        locations,
        filter,
        cond: Cond {
            quant,
            prop,
            text: ptext,
        },
    })
}

/// The `Result:` word of the first comment that has one.
fn expected_result(file: &str, text: &str, comments: &[Comment]) -> R<Option<Observation>> {
    for c in comments {
        if let Some(k) = c.text.find("Result:") {
            let after = &c.text[k + "Result:".len()..];
            let word = after.split_whitespace().next().unwrap_or("");
            return match Observation::from_word(word) {
                Some(o) => Ok(Some(o)),
                None => {
                    let at = c.span.start + 2 + k;
                    Err(ParseError::new(
                        file,
                        text,
                        at..at + "Result:".len(),
                        format!("'Result: {word}': expected Always, Sometimes, Never or DEADLOCK"),
                    ))
                }
            };
        }
    }
    Ok(None)
}

impl P<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }

    fn peek_at(&self, k: usize) -> Option<&Tok> {
        self.toks.get(self.pos + k).map(|t| &t.tok)
    }

    fn span(&self) -> Span {
        match self.toks.get(self.pos) {
            Some(t) => t.span.clone(),
            None => self.text.len()..self.text.len(),
        }
    }

    fn found(&self) -> String {
        match self.peek() {
            None => "end of file".into(),
            Some(Tok::Ident(w)) => format!("'{w}'"),
            Some(Tok::Int(v)) => format!("'{v}'"),
            Some(Tok::Punct(p)) => format!("'{p}'"),
        }
    }

    fn err_at(&self, span: Span, msg: impl Into<String>) -> ParseError {
        ParseError::new(self.file, self.text, span, msg)
    }

    fn err_here(&self, msg: &str) -> ParseError {
        self.err_at(self.span(), format!("{msg}, found {}", self.found()))
    }

    fn eat(&mut self, p: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Punct(q)) if *q == p) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, p: &str) -> R<()> {
        if self.eat(p) {
            Ok(())
        } else {
            Err(self.err_here(&format!("expected '{p}'")))
        }
    }

    fn ident(&mut self) -> R<(String, Span)> {
        match self.peek() {
            Some(Tok::Ident(w)) => {
                let w = w.clone();
                let sp = self.span();
                self.pos += 1;
                Ok((w, sp))
            }
            _ => Err(self.err_here("expected a name")),
        }
    }

    fn is_type_word(&self, k: usize) -> bool {
        matches!(self.peek_at(k), Some(Tok::Ident(w)) if TYPES.contains(&w.as_str()) || w == "struct")
    }

    /// Type words and stars: whether the type named `spinlock_t`.
    fn type_prefix(&mut self) -> R<bool> {
        let mut lock = false;
        while self.is_type_word(0) {
            let (w, _) = self.ident()?;
            if w == "struct" {
                let (s, sp) = self.ident()?;
                return Err(self.err_at(sp, format!("'struct {s}' is not supported")));
            }
            lock |= w == "spinlock_t";
        }
        while self.eat("*") {}
        Ok(lock)
    }

    fn note_global(&mut self, name: &str, lock: bool) {
        if !self.globals.iter().any(|g| g == name) {
            self.globals.push(name.to_string());
        }
        if lock && !self.locks.iter().any(|g| g == name) {
            self.locks.push(name.to_string());
        }
    }

    fn init_block(&mut self) -> R<Vec<Init>> {
        self.expect("{")?;
        let mut out = Vec::new();
        while !self.eat("}") {
            if self.eat(";") {
                continue;
            }
            let start = self.span().start;
            let lock = self.type_prefix()?;
            let target = self.target()?;
            if let Target::Loc(n) = &target {
                let n = n.clone();
                self.note_global(&n, lock);
            }
            if self.eat("=") {
                let value = self.init_value()?;
                let end = self.toks[self.pos - 1].span.end;
                if let Const::Addr(a) = &value {
                    let a = a.clone();
                    self.note_global(&a, false);
                }
                out.push(Init {
                    target,
                    value,
                    span: start..end,
                });
            }
            if !self.eat(";") && self.peek() != Some(&Tok::Punct("}")) {
                return Err(self.err_here("expected ';' in the initial state"));
            }
        }
        Ok(out)
    }

    fn init_value(&mut self) -> R<Const> {
        match self.peek().cloned() {
            Some(Tok::Ident(w)) if w == "ATOMIC_INIT" => {
                self.pos += 1;
                self.expect("(")?;
                let v = self.constant()?;
                self.expect(")")?;
                Ok(v)
            }
            Some(Tok::Punct("&")) => {
                self.pos += 1;
                let (w, _) = self.ident()?;
                Ok(Const::Addr(w))
            }
            _ => self.constant(),
        }
    }

    fn constant(&mut self) -> R<Const> {
        let neg = self.eat("-");
        match self.peek().cloned() {
            Some(Tok::Int(v)) => {
                self.pos += 1;
                Ok(Const::Int(if neg { -v } else { v }))
            }
            Some(Tok::Ident(w)) if !neg => {
                self.pos += 1;
                Ok(Const::Addr(w))
            }
            _ => Err(self.err_here("expected a number or a location's name")),
        }
    }

    /// `N:reg` or a global's name.
    fn target(&mut self) -> R<Target> {
        match self.peek().cloned() {
            Some(Tok::Int(t)) => {
                let sp = self.span();
                self.pos += 1;
                self.expect(":")?;
                let (r, _) = self.ident()?;
                let t = usize::try_from(t).map_err(|_| self.err_at(sp, "bad process number"))?;
                Ok(Target::Reg(t, r))
            }
            Some(Tok::Ident(_)) => Ok(Target::Loc(self.ident()?.0)),
            _ => Err(self.err_here("expected 'N:reg' or a location")),
        }
    }

    fn thread(&mut self, index: usize) -> R<Thread> {
        let start = self.span().start;
        self.pos += 1;
        self.expect("(")?;
        let mut params = Vec::new();
        if !self.eat(")") {
            loop {
                let lock = self.type_prefix()?;
                let (name, _) = self.ident()?;
                self.note_global(&name, lock);
                params.push(name);
                if self.eat(")") {
                    break;
                }
                self.expect(",")?;
            }
        }
        let body = self.block()?;
        let end = self.toks[self.pos - 1].span.end;
        Ok(Thread {
            index,
            params,
            body,
            span: start..end,
        })
    }

    fn block(&mut self) -> R<Vec<Stmt>> {
        self.expect("{")?;
        let mut out = Vec::new();
        while !self.eat("}") {
            if self.peek().is_none() {
                return Err(self.err_here("expected '}'"));
            }
            self.stmt(&mut out)?;
        }
        Ok(out)
    }

    fn stmt_or_block(&mut self) -> R<Vec<Stmt>> {
        if self.peek() == Some(&Tok::Punct("{")) {
            self.block()
        } else {
            let mut out = Vec::new();
            self.stmt(&mut out)?;
            Ok(out)
        }
    }

    fn stmt(&mut self, out: &mut Vec<Stmt>) -> R<()> {
        self.enter()?;
        let r = self.stmt_inner(out);
        self.depth -= 1;
        r
    }

    fn stmt_inner(&mut self, out: &mut Vec<Stmt>) -> R<()> {
        let start = self.span();
        if self.eat(";") {
            return Ok(());
        }
        if self.peek() == Some(&Tok::Punct("{")) {
            let b = self.block()?;
            out.extend(b);
            return Ok(());
        }
        if self.is_type_word(0) {
            self.type_prefix()?;
            loop {
                let (name, sp) = self.ident()?;
                let init = if self.eat("=") {
                    Some(self.expr()?)
                } else {
                    None
                };
                out.push(Stmt::Decl(name, init, sp));
                if self.eat(";") {
                    return Ok(());
                }
                self.expect(",")?;
                while self.eat("*") {}
            }
        }
        if matches!(self.peek(), Some(Tok::Ident(w)) if w == "if") {
            self.pos += 1;
            self.expect("(")?;
            let c = self.expr()?;
            self.expect(")")?;
            let then = self.stmt_or_block()?;
            let els = if matches!(self.peek(), Some(Tok::Ident(w)) if w == "else") {
                self.pos += 1;
                self.stmt_or_block()?
            } else {
                Vec::new()
            };
            out.push(Stmt::If(c, then, els));
            return Ok(());
        }
        if matches!(self.peek(), Some(Tok::Ident(w)) if ["while", "for", "do", "goto", "return", "switch"].contains(&w.as_str()))
        {
            return Err(self.err_at(
                start,
                format!(
                    "{} is not supported (straight-line code and 'if' only)",
                    self.found()
                ),
            ));
        }
        if self.peek() == Some(&Tok::Punct("*")) {
            return Err(self.err_at(
                start,
                "plain accesses are not modelled: write WRITE_ONCE(*p, v) or READ_ONCE(*p)",
            ));
        }
        // `r = e;` or `e;`
        if let (Some(Tok::Ident(_)), Some(Tok::Punct("="))) = (self.peek(), self.peek_at(1)) {
            let (name, sp) = self.ident()?;
            self.pos += 1;
            let e = self.expr()?;
            self.expect(";")?;
            let end = self.toks[self.pos - 1].span.end;
            out.push(Stmt::Assign(name, e, sp.start..end));
            return Ok(());
        }
        let e = self.expr()?;
        self.expect(";")?;
        out.push(Stmt::Eval(e));
        Ok(())
    }

    fn expr(&mut self) -> R<Expr> {
        self.binary(0)
    }

    fn binop(&self) -> Option<(BinOp, usize)> {
        let Some(Tok::Punct(p)) = self.peek() else {
            return None;
        };
        Some(match *p {
            "||" => (BinOp::LOr, 1),
            "&&" => (BinOp::LAnd, 2),
            "|" => (BinOp::Or, 3),
            "^" => (BinOp::Xor, 4),
            "&" => (BinOp::And, 5),
            "==" => (BinOp::Eq, 6),
            "!=" => (BinOp::Ne, 6),
            "<" => (BinOp::Lt, 7),
            "<=" => (BinOp::Le, 7),
            ">" => (BinOp::Gt, 7),
            ">=" => (BinOp::Ge, 7),
            "+" => (BinOp::Add, 8),
            "-" => (BinOp::Sub, 8),
            "*" => (BinOp::Mul, 9),
            _ => return None,
        })
    }

    fn binary(&mut self, min: usize) -> R<Expr> {
        let mut lhs = self.unary()?;
        while let Some((op, prec)) = self.binop() {
            if prec <= min {
                break;
            }
            self.pos += 1;
            let rhs = self.binary(prec)?;
            let span = lhs.span.start..rhs.span.end;
            lhs = Expr {
                kind: ExprKind::Bin(op, Box::new(lhs), Box::new(rhs)),
                span,
            };
        }
        Ok(lhs)
    }

    fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err_at(self.span(), format!("nested more than {MAX_DEPTH} deep")));
        }
        Ok(())
    }

    fn unary(&mut self) -> R<Expr> {
        self.enter()?;
        let r = self.unary_inner();
        self.depth -= 1;
        r
    }

    fn unary_inner(&mut self) -> R<Expr> {
        let sp = self.span();
        let op = match self.peek() {
            Some(Tok::Punct("!")) => Some(UnOp::Not),
            Some(Tok::Punct("-")) => Some(UnOp::Neg),
            Some(Tok::Punct("~")) => Some(UnOp::BitNot),
            _ => None,
        };
        if let Some(op) = op {
            self.pos += 1;
            let e = self.unary()?;
            let span = sp.start..e.span.end;
            return Ok(Expr {
                kind: ExprKind::Unary(op, Box::new(e)),
                span,
            });
        }
        if self.eat("*") {
            let e = self.unary()?;
            let span = sp.start..e.span.end;
            return Ok(Expr {
                kind: ExprKind::Deref(Box::new(e)),
                span,
            });
        }
        if self.eat("&") {
            let (w, wsp) = self.ident()?;
            return Ok(Expr {
                kind: ExprKind::AddrOf(w),
                span: sp.start..wsp.end,
            });
        }
        self.primary()
    }

    fn primary(&mut self) -> R<Expr> {
        let sp = self.span();
        match self.peek().cloned() {
            Some(Tok::Int(v)) => {
                self.pos += 1;
                Ok(Expr {
                    kind: ExprKind::Int(v),
                    span: sp,
                })
            }
            Some(Tok::Punct("(")) => {
                self.pos += 1;
                // A cast: `(void)`, `(int)`, `(int *)`.
                if self.is_type_word(0) || matches!(self.peek(), Some(Tok::Ident(w)) if w == "void")
                {
                    while self.is_type_word(0)
                        || matches!(self.peek(), Some(Tok::Ident(w)) if w == "void")
                    {
                        self.pos += 1;
                    }
                    while self.eat("*") {}
                    self.expect(")")?;
                    return self.unary();
                }
                let e = self.expr()?;
                self.expect(")")?;
                Ok(e)
            }
            Some(Tok::Ident(w)) => {
                self.pos += 1;
                if self.eat("(") {
                    let Some(pr) = prim::lookup(&w) else {
                        return Err(self.err_at(
                            sp,
                            format!("'{w}' is not a primitive this front end models"),
                        ));
                    };
                    let mut args = Vec::new();
                    if !self.eat(")") {
                        loop {
                            args.push(self.expr()?);
                            if self.eat(")") {
                                break;
                            }
                            self.expect(",")?;
                        }
                    }
                    let span = sp.start..self.toks[self.pos - 1].span.end;
                    if args.len() != pr.arity() {
                        return Err(self.err_at(
                            span,
                            format!(
                                "'{w}' takes {} argument(s), given {}",
                                pr.arity(),
                                args.len()
                            ),
                        ));
                    }
                    return Ok(Expr {
                        kind: ExprKind::Call(w, args),
                        span,
                    });
                }
                Ok(Expr {
                    kind: ExprKind::Var(w),
                    span: sp,
                })
            }
            _ => Err(self.err_here("expected an expression")),
        }
    }

    fn prop(&mut self) -> R<Prop> {
        let mut lhs = self.prop_and()?;
        while self.eat("\\/") {
            let rhs = self.prop_and()?;
            lhs = Prop::Or(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn prop_and(&mut self) -> R<Prop> {
        let mut lhs = self.prop_atom()?;
        while self.eat("/\\") {
            let rhs = self.prop_atom()?;
            lhs = Prop::And(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn prop_atom(&mut self) -> R<Prop> {
        self.enter()?;
        let r = self.prop_atom_inner();
        self.depth -= 1;
        r
    }

    fn prop_atom_inner(&mut self) -> R<Prop> {
        if self.eat("~") {
            return Ok(Prop::Not(Box::new(self.prop_atom()?)));
        }
        if self.eat("(") {
            let p = self.prop()?;
            self.expect(")")?;
            return Ok(p);
        }
        match self.peek() {
            Some(Tok::Ident(w)) if w == "true" => {
                self.pos += 1;
                return Ok(Prop::True);
            }
            Some(Tok::Ident(w)) if w == "false" => {
                self.pos += 1;
                return Ok(Prop::False);
            }
            _ => {}
        }
        let start = self.span().start;
        let t = self.target()?;
        let neg = if self.eat("=") {
            false
        } else if self.eat("!=") {
            true
        } else {
            return Err(self.err_here("expected '=' in the condition"));
        };
        let v = self.constant()?;
        let end = self.toks[self.pos - 1].span.end;
        let atom = Prop::Eq(t, v, start..end);
        Ok(if neg { Prop::Not(Box::new(atom)) } else { atom })
    }
}
