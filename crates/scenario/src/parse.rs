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
//! The submodules: `error` (the located error and its rendering), `syntax` (words, numbers,
//! addresses, strings), `ops` (the operation table), `stmt` (statements), `reach` (reach
//! patterns) and `build` (validation into a [`Scenario`]).
//!
//! Operations are a table, [`OPS`]: each entry has a name, its syntax, the kernel path it runs
//! and, once modelled, the parser of its arguments. Adding an operation is a table entry and an
//! `OpArgs` variant in `ops`, and its mapping to [`Op`] in `build`'s `resolve_op` (and to
//! [`SetupOp`] in `resolve_setup` if `init` takes it).

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

mod build;
mod error;
mod ops;
mod reach;
mod stmt;
mod syntax;

use build::*;
pub use error::*;
use ops::*;
pub use ops::{OpSpec, OPS};
use stmt::*;
use syntax::*;

/// The most threads a scenario may have: the explorer gives each its own CPU, plus one for the
/// RCU callback thread.
pub const MAX_THREADS: usize = 4;

/// The most frames (`frames N`) a scenario may ask for.
pub const MAX_FRAMES: u64 = 1 << 20;
/// Fewest frames a machine with an mm has: pfn 0 (reserved), the zero page, the mm's pgd.
pub const MIN_FRAMES: u64 = 3;

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
