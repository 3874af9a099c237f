//! `mmcheck-litmus`: kernel C litmus tests (the format of tools/memory-model/litmus-tests in
//! torvalds/linux) checked against the Linux-kernel memory model, with herd7's result shape.
//!
//! [`parse`] reads a test ([`lex`] for tokens, [`error`] for located refusals); [`exec`] runs
//! each process for every guess of its reads' values ([`prim`] says which events a primitive
//! stands for); [`check`] enumerates the candidate executions and keeps those [`lkmm`] allows
//! (the axioms of tools/memory-model/linux-kernel.cat, over the relation algebra of [`rel`]),
//! [`cond`] evaluates the final clause; [`output`] prints the result. docs/litmus.md has the subset, the model and its limits.

pub mod ast;
pub mod check;
pub mod cond;
pub mod error;
pub mod exec;
pub mod lex;
pub mod lkmm;
pub mod output;
pub mod parse;
pub mod prim;
pub mod rel;

pub use ast::Observation;
pub use check::{check_source, Outcome};
pub use error::{LitmusError, ParseError};
pub use output::render;

/// Read and check the litmus file at `path`.
pub fn check_file(path: &std::path::Path) -> Result<Outcome, LitmusError> {
    let text =
        std::fs::read(path).map_err(|e| LitmusError::Io(format!("{}: {e}", path.display())))?;
    let text = String::from_utf8(text)
        .map_err(|_| LitmusError::Io(format!("{}: not UTF-8 text", path.display())))?;
    check_source(&path.display().to_string(), &text)
}
