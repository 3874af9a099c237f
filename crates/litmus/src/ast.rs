//! The syntax tree of a kernel C litmus test: header, initial state, process bodies, and the
//! final clause.

use std::ops::Range;

/// A byte span of the file.
pub type Span = Range<usize>;

/// herd7's observation: how often the condition's body holds over the allowed executions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observation {
    Always,
    Sometimes,
    Never,
    /// Only as an expectation (`Result: DEADLOCK`, as the kernel's locking tests write it): no
    /// execution is allowed at all (herd7 then observes `Never 0 0`).
    Deadlock,
}

impl Observation {
    pub fn name(self) -> &'static str {
        match self {
            Observation::Always => "Always",
            Observation::Sometimes => "Sometimes",
            Observation::Never => "Never",
            Observation::Deadlock => "DEADLOCK",
        }
    }

    pub fn from_word(w: &str) -> Option<Self> {
        match w {
            "Always" => Some(Observation::Always),
            "Sometimes" => Some(Observation::Sometimes),
            "Never" => Some(Observation::Never),
            "DEADLOCK" => Some(Observation::Deadlock),
            _ => None,
        }
    }
}

/// A whole test.
#[derive(Clone, Debug)]
pub struct Test {
    pub name: String,
    /// The `Result:` word of the doc comment, if any.
    pub expected: Option<Observation>,
    pub init: Vec<Init>,
    /// Names declared `spinlock_t` in the initial state or a parameter list.
    pub locks: Vec<String>,
    /// Every global named in the initial state or a parameter list, in order of appearance.
    pub globals: Vec<String>,
    pub threads: Vec<Thread>,
    pub locations: Vec<(Target, Span)>,
    pub filter: Option<Prop>,
    pub cond: Cond,
}

/// A location or register of the initial state or the final clause.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// `N:reg`
    Reg(usize, String),
    /// A global's final value.
    Loc(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Reg(t, r) => write!(f, "{t}:{r}"),
            Target::Loc(l) => write!(f, "{l}"),
        }
    }
}

/// A constant: a number or a global's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Const {
    Int(i64),
    Addr(String),
}

/// One initial-state entry.
#[derive(Clone, Debug)]
pub struct Init {
    pub target: Target,
    pub value: Const,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Thread {
    pub index: usize,
    pub params: Vec<String>,
    pub body: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum Stmt {
    /// `int r0;` or `int r0 = e;`
    Decl(String, Option<Expr>, Span),
    /// `r0 = e;`
    Assign(String, Expr, Span),
    /// `e;`, a call for its effect.
    Eval(Expr),
    If(Expr, Vec<Stmt>, Vec<Stmt>),
}

#[derive(Clone, Debug)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    And,
    Or,
    Xor,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    LAnd,
    LOr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    Not,
    Neg,
    BitNot,
}

#[derive(Clone, Debug)]
pub enum ExprKind {
    Int(i64),
    Var(String),
    /// `*e`
    Deref(Box<Expr>),
    /// `&x`
    AddrOf(String),
    Unary(UnOp, Box<Expr>),
    Bin(BinOp, Box<Expr>, Box<Expr>),
    /// A kernel primitive: its name (checked against the table) and arguments.
    Call(String, Vec<Expr>),
}

/// The final clause's quantifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quant {
    Exists,
    NotExists,
    Forall,
}

#[derive(Clone, Debug)]
pub struct Cond {
    pub quant: Quant,
    pub prop: Prop,
    /// The proposition as written, whitespace collapsed (for `Condition ...`).
    pub text: String,
}

#[derive(Clone, Debug)]
pub enum Prop {
    True,
    False,
    Eq(Target, Const, Span),
    Not(Box<Prop>),
    And(Box<Prop>, Box<Prop>),
    Or(Box<Prop>, Box<Prop>),
}
