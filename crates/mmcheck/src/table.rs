//! Text output of `check`: the result table (columns sized to their content), the details under
//! it (expected violations only with `-v`, at most a screen per unexpected result unless
//! verbose, one line per inconclusive or refused row), and the summary. Also the word wrapping of `switches` and `presets`.

use crate::check::{replay_command, Overrides, Row, Status};
use mmcheck_scenario::parse::escape_controls;
use std::fmt::Write as _;

/// Lines of an unexpected result's trace shown without `-v`.
pub const TRACE_LINES: usize = 60;

/// Width of the terminal on stdout, or 100 columns when it is not a terminal.
pub fn width() -> usize {
    // SAFETY: TIOCGWINSZ fills a winsize; on error the struct is left zeroed and unused.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    if ok && ws.ws_col >= 40 {
        ws.ws_col as usize
    } else {
        100
    }
}

/// `text` wrapped at word boundaries into lines of at most `width` characters (a word longer
/// than that gets a line of its own).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for w in text.split_whitespace() {
        if !cur.is_empty() && cur.chars().count() + 1 + w.chars().count() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(w);
    }
    if !cur.is_empty() || lines.is_empty() {
        lines.push(cur);
    }
    lines
}

/// `s` cut to `n` characters, with `...` when cut.
pub fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(3)).collect();
        t.push_str("...");
        t
    }
}

/// A table: every column as wide as its widest cell; `right` columns right-aligned.
pub fn table(headers: &[&str], right: &[bool], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = w[i] - c.chars().count();
            if i > 0 {
                l.push_str("  ");
            }
            if right[i] {
                l.push_str(&" ".repeat(pad));
                l.push_str(c);
            } else {
                l.push_str(c);
                if i + 1 < cells.len() {
                    l.push_str(&" ".repeat(pad));
                }
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(headers.to_vec(), &mut out);
    for r in rows {
        line(r.iter().map(|s| s.as_str()).collect(), &mut out);
    }
    out
}

/// A row's variant, marked `+set` when command-line overrides applied.
fn marked(r: &Row) -> String {
    if r.overrides.is_empty() {
        r.variant.clone()
    } else {
        format!("{}+set", r.variant)
    }
}

fn result_cell(r: &Row) -> &'static str {
    match r.status {
        Status::Met => "met",
        Status::Unexpected => "UNEXPECTED",
        Status::Inconclusive => "inconclusive",
        Status::Error => "ERROR",
        Status::InternalError => "INTERNAL-ERROR",
        Status::Interrupted => "interrupted",
    }
}

/// The whole text report of `check`: table, details, summary. `not_run`: rows Ctrl-C kept from
/// running.
pub fn report(rows: &[Row], o: &Overrides, verbose: bool, not_run: usize) -> String {
    let mut out = String::new();
    if !o.is_empty() {
        let _ = writeln!(
            out,
            "+set: every row runs under{} (then its variant)\n",
            o.flags()
        );
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.scenario.clone(),
                escape_controls(&r.file),
                marked(r),
                r.expected.clone(),
                r.verdict.clone(),
                result_cell(r).to_string(),
                r.strategy.clone(),
                r.executions.to_string(),
                format!("{:.2}s", r.elapsed_ms as f64 / 1000.0),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "scenario", "file", "variant", "expected", "verdict", "result", "strategy", "execs",
            "time",
        ],
        &[false, false, false, false, false, false, false, true, true],
        &cells,
    ));
    let head = |r: &Row| {
        format!(
            "{} ({}) / {}",
            r.scenario,
            escape_controls(&r.file),
            marked(r)
        )
    };
    // Expected violations: one line each (the trace with -v).
    let found: Vec<&Row> = rows
        .iter()
        .filter(|r| r.status == Status::Met && r.text_trace.is_some())
        .collect();
    // Expected violations: their table row is their one line; -v prints their traces.
    if !found.is_empty() && !verbose {
        let _ = writeln!(
            out,
            "\n{} violation{} found as expected (-v prints the trace{} and replay command{})",
            found.len(),
            if found.len() == 1 { "" } else { "s" },
            if found.len() == 1 { "" } else { "s" },
            if found.len() == 1 { "" } else { "s" },
        );
    }
    for r in rows {
        match (r.status, &r.text_trace) {
            (Status::Met, Some(t)) if verbose => {
                let _ = writeln!(
                    out,
                    "\n== {}: {} ==",
                    head(r),
                    r.message.as_deref().unwrap_or("")
                );
                out.push_str(t);
                if let Some(cmd) = replay_command(r, o) {
                    let _ = writeln!(out, "replay: {cmd}");
                }
            }
            (Status::Met, _) => {}
            (Status::Unexpected, Some(t)) => {
                let _ = writeln!(
                    out,
                    "\n== {}: UNEXPECTED {} (expected {}) ==",
                    head(r),
                    r.message.as_deref().unwrap_or(""),
                    r.expected
                );
                let lines: Vec<&str> = t.lines().collect();
                let shown = if verbose {
                    lines.len()
                } else {
                    lines.len().min(TRACE_LINES)
                };
                for l in &lines[..shown] {
                    let _ = writeln!(out, "{l}");
                }
                if shown < lines.len() {
                    let _ = writeln!(
                        out,
                        "... {} more lines (-v for the whole trace)",
                        lines.len() - shown
                    );
                }
                if let Some(cmd) = replay_command(r, o) {
                    let _ = writeln!(out, "replay: {cmd}");
                }
            }
            (Status::Unexpected, None) => {
                let _ = writeln!(
                    out,
                    "\n== {}: UNEXPECTED {} (expected {}) ==",
                    head(r),
                    r.message.as_deref().unwrap_or(&r.verdict),
                    r.expected
                );
            }
            (Status::Inconclusive, _) => {
                let _ = writeln!(
                    out,
                    "\n== {}: inconclusive: {} ==",
                    head(r),
                    r.limit
                        .as_deref()
                        .or(r.message.as_deref())
                        .unwrap_or("a tool limit")
                );
                // The execution that hit a step or frame limit, to replay.
                if let Some(cmd) = replay_command(r, o) {
                    let who = r
                        .message
                        .as_deref()
                        .and_then(|m| m.split_once("; steps by "));
                    if let Some((_, who)) = who {
                        let _ = writeln!(out, "steps by {who}");
                    }
                    let _ = writeln!(out, "replay: {cmd}");
                }
            }
            (Status::Error | Status::InternalError | Status::Interrupted, _) => {
                let msg = r.message.as_deref().unwrap_or("");
                let first = msg.lines().next().unwrap_or("");
                let _ = writeln!(out, "\n== {}: {}: {} ==", head(r), r.verdict, first);
            }
        }
    }
    evidence(&mut out, rows, o, verbose);
    out.push('\n');
    out.push_str(&summary(rows, not_run));
    out
}

/// Below the table: variants that changed nothing, the reach evidence of each row, and (with
/// `-v`) the outcomes each row's executions ended in.
fn evidence(out: &mut String, rows: &[Row], o: &Overrides, verbose: bool) {
    let head = |r: &Row| format!("{} / {}", r.scenario, marked(r));
    for r in rows.iter().filter(|r| r.same_as_base) {
        let _ = writeln!(
            out,
            "\nwarning: {} explores exactly the executions of its base ({}): its settings change nothing this scenario reaches",
            head(r),
            r.executions
        );
    }
    let reached: Vec<&Row> = rows
        .iter()
        .filter(|r| r.reach.iter().any(|x| x.met))
        .collect();
    if !reached.is_empty() {
        let _ = writeln!(
            out,
            "\nreach evidence (executions that reached each window{}):",
            if verbose {
                ""
            } else {
                "; -v prints a replay command for each"
            }
        );
        for r in reached {
            for x in r.reach.iter().filter(|x| x.met) {
                let _ = writeln!(
                    out,
                    "  {}: {} of {}: {}",
                    head(r),
                    x.executions,
                    r.executions,
                    x.pattern
                );
                if let (true, Some(t)) = (verbose, &x.schedule) {
                    let _ = writeln!(
                        out,
                        "    replay: mmcheck replay {} --variant {}{} --schedule {}",
                        crate::check::shell_word(&r.file),
                        crate::check::shell_word(&r.variant),
                        o.flags(),
                        crate::check::shell_word(t)
                    );
                }
            }
        }
    }
    if verbose {
        for r in rows.iter().filter(|r| !r.outcomes.is_empty()) {
            let ended: u64 = r.outcomes.iter().map(|c| c.executions).sum();
            let _ = writeln!(
                out,
                "\noutcomes of {} ({ended} of {} executions ran to the end):",
                head(r),
                r.executions
            );
            let w = r
                .outcomes
                .iter()
                .map(|c| c.executions.to_string().len())
                .max();
            for c in &r.outcomes {
                let _ = writeln!(
                    out,
                    "  {:>w$}  {}",
                    c.executions,
                    c.outcome,
                    w = w.unwrap_or(1)
                );
            }
        }
    }
}

/// One line: how many expectations were met, and how the others ended.
pub fn summary(rows: &[Row], not_run: usize) -> String {
    let n = |st: Status| rows.iter().filter(|r| r.status == st).count();
    let met = n(Status::Met);
    let total = rows.len() + not_run;
    let mut parts = Vec::new();
    for (st, what) in [
        (Status::Unexpected, "unexpected"),
        (Status::Inconclusive, "inconclusive"),
        (Status::Error, "bad input"),
        (Status::InternalError, "internal error"),
        (Status::Interrupted, "interrupted"),
    ] {
        if n(st) > 0 {
            parts.push(format!("{} {what}", n(st)));
        }
    }
    if not_run > 0 {
        parts.push(format!("{not_run} not run (interrupted)"));
    }
    let mut s = format!("{met}/{total} expectations met");
    if !parts.is_empty() {
        s.push_str(&format!(" ({})", parts.join(", ")));
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_fit_their_content() {
        let rows = vec![
            vec![
                "a-very-long-scenario-name-indeed".to_string(),
                "x".to_string(),
            ],
            vec!["b".to_string(), "1234567".to_string()],
        ];
        let t = table(&["scenario", "n"], &[false, true], &rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[1], "a-very-long-scenario-name-indeed        x");
        assert_eq!(lines[2], "b                                 1234567");
    }

    #[test]
    fn wrap_keeps_words_and_width() {
        let w = wrap("one two three four five six seven", 10);
        assert!(w.iter().all(|l| l.len() <= 10), "{w:?}");
        assert_eq!(w.join(" "), "one two three four five six seven");
        assert_eq!(
            wrap("averyveryverylongword x", 5)[0],
            "averyveryverylongword"
        );
    }
}
