//! `mmcheck merge`: combine the JSON of `mmcheck check --shard I/N --json` runs into one verdict
//! per row, as one unsharded run would give it.
//!
//! Rows are matched by file, scenario, variant and overrides; every row needs all `N` shards.
//! A violation in any shard is the row's (the lowest shard's schedule is kept). Otherwise the
//! row is clean only if every shard was (for DPOR, every shard complete: the union of complete
//! shards is a complete search), a tool limit in any shard makes it inconclusive, and a reach
//! pattern is met if any shard reached it (the window may lie in another shard's subtrees, so a
//! shard's own "unreached" is not the row's).

use crate::check::{Row, Status};
use serde_json::Value;
use std::collections::BTreeMap;

/// Why shards cannot be merged (bad input: exit 2).
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("{0}: {1}")]
    Read(String, String),
    #[error("{0}: not the JSON of `mmcheck check --shard I/N --json`: {1}")]
    Shape(String, String),
    #[error("{0}: {1}")]
    Shards(String, String),
}

const NOT_A_VIOLATION: &[&str] = &[
    "clean",
    "inconclusive",
    "error",
    "internal-error",
    "interrupted",
    "unreached",
];

fn text(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

fn opt_text(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

/// One shard's row as read back.
struct ShardRow {
    index: u32,
    count: u32,
    v: Value,
}

/// Read and merge the shard files.
pub fn merge(files: &[String]) -> Result<Vec<Row>, MergeError> {
    let mut groups: Vec<(String, Vec<ShardRow>)> = Vec::new();
    let mut by_key: BTreeMap<String, usize> = BTreeMap::new();
    for f in files {
        let data =
            std::fs::read_to_string(f).map_err(|e| MergeError::Read(f.clone(), e.to_string()))?;
        let rows: Vec<Value> =
            serde_json::from_str(&data).map_err(|e| MergeError::Shape(f.clone(), e.to_string()))?;
        for v in rows {
            let shard: mmcheck_explore::Shard = text(&v, "shard").parse().map_err(|e| {
                MergeError::Shape(f.clone(), format!("a row without a shard ({e})"))
            })?;
            let key = format!(
                "{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}",
                text(&v, "file"),
                text(&v, "scenario"),
                text(&v, "variant"),
                text(&v, "expected"),
                v.get("overrides").map(Value::to_string).unwrap_or_default()
            );
            let i = *by_key.entry(key.clone()).or_insert_with(|| {
                groups.push((key, Vec::new()));
                groups.len() - 1
            });
            groups[i].1.push(ShardRow {
                index: shard.index,
                count: shard.count,
                v,
            });
        }
    }
    groups
        .into_iter()
        .map(|(_, mut shards)| {
            shards.sort_by_key(|s| s.index);
            let name = format!(
                "{} / {}",
                text(&shards[0].v, "file"),
                text(&shards[0].v, "variant")
            );
            let n = shards[0].count;
            let have: Vec<u32> = shards.iter().map(|s| s.index).collect();
            if shards.iter().any(|s| s.count != n) || have != (0..n).collect::<Vec<_>>() {
                let got: Vec<String> = shards
                    .iter()
                    .map(|s| format!("{}/{}", s.index + 1, s.count))
                    .collect();
                return Err(MergeError::Shards(
                    name,
                    format!(
                        "needs shards 1/{n} to {n}/{n} once each, got {}",
                        got.join(", ")
                    ),
                ));
            }
            Ok(merge_row(&shards))
        })
        .collect()
}

fn merge_row(shards: &[ShardRow]) -> Row {
    let first = &shards[0].v;
    let expected = text(first, "expected");
    let strategy = text(first, "strategy");
    let executions: u64 = shards
        .iter()
        .map(|s| s.v.get("executions").and_then(Value::as_u64).unwrap_or(0))
        .sum();
    let elapsed_ms = shards
        .iter()
        .map(|s| s.v.get("elapsed_ms").and_then(Value::as_u64).unwrap_or(0))
        .max()
        .unwrap_or(0) as u128;
    let complete = shards
        .iter()
        .all(|s| s.v.get("complete").and_then(Value::as_bool) == Some(true));
    let overrides = first
        .get("overrides")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut row = Row {
        verdict: "clean".into(),
        status: Status::Met,
        complete,
        executions,
        elapsed_ms,
        shard: Some(format!("merged {}", shards.len())),
        ..Row::new(
            &text(first, "scenario"),
            &text(first, "file"),
            &text(first, "variant"),
            overrides,
            &expected,
            strategy.clone(),
        )
    };
    // A violation in any shard.
    if let Some(s) = shards
        .iter()
        .find(|s| !NOT_A_VIOLATION.contains(&text(&s.v, "verdict").as_str()))
    {
        row.verdict = text(&s.v, "verdict");
        row.schedule = opt_text(&s.v, "schedule");
        row.message = opt_text(&s.v, "message");
        row.met = row.verdict == expected;
        row.status = if row.met {
            Status::Met
        } else {
            Status::Unexpected
        };
        return row;
    }
    // Bad input, a bug of the tool or Ctrl-C in any shard.
    for st in [Status::InternalError, Status::Error, Status::Interrupted] {
        if let Some(s) = shards.iter().find(|s| text(&s.v, "verdict") == st.name()) {
            row.verdict = st.name().into();
            row.status = st;
            row.message = opt_text(&s.v, "message");
            return row;
        }
    }
    // The reach evidence of all shards together.
    let mut reach: Vec<crate::check::ReachRow> = Vec::new();
    for s in shards {
        for (k, r) in
            s.v.get("reach")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
        {
            let n = r.get("executions").and_then(Value::as_u64).unwrap_or(0);
            if reach.len() <= k {
                reach.push(crate::check::ReachRow {
                    pattern: text(r, "pattern"),
                    executions: 0,
                    met: false,
                    schedule: None,
                });
            }
            reach[k].executions += n;
            reach[k].met |= n > 0;
            if reach[k].schedule.is_none() {
                reach[k].schedule = opt_text(r, "schedule");
            }
        }
    }
    row.reach = reach;
    // A tool limit in any shard (not a shard's own missed window: see the module doc).
    let limited = shards.iter().find(|s| {
        text(&s.v, "verdict") == "inconclusive" && !text(&s.v, "message").starts_with("clean, but")
    });
    let dpor = strategy == "dpor";
    if let Some(s) = limited {
        row.verdict = "inconclusive".into();
        row.status = Status::Inconclusive;
        row.message = opt_text(&s.v, "message");
        row.limit = opt_text(&s.v, "limit");
        row.schedule = opt_text(&s.v, "schedule");
        return row;
    }
    if dpor && !complete {
        row.verdict = "inconclusive".into();
        row.status = Status::Inconclusive;
        row.message = Some("a shard's search was not complete".into());
        return row;
    }
    // Clean in every shard.
    if expected == "clean" {
        match row.reach.iter().find(|r| !r.met) {
            None => {
                row.met = true;
                row.status = Status::Met;
            }
            Some(miss) => {
                let msg = format!("clean, but no shard reaches: {}", miss.pattern);
                row.message = Some(msg);
                if dpor {
                    row.verdict = "unreached".into();
                    row.status = Status::Unexpected;
                } else {
                    row.verdict = "inconclusive".into();
                    row.status = Status::Inconclusive;
                }
            }
        }
    } else if dpor {
        row.status = Status::Unexpected; // a complete clean where a violation was expected
    } else {
        row.verdict = "inconclusive".into();
        row.status = Status::Inconclusive;
        row.message = Some(format!("no {expected} in {executions} executions"));
    }
    row
}
