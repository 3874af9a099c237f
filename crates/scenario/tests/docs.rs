//! The docs match the code: README's catalogue table lists exactly the files under `scenarios/`
//! (and the built-in reference scenario), and the operations table of docs/scenario-format.md,
//! with its `init` column (the one list of what `init` takes), is `parse::OPS`.

use mmcheck_scenario::parse::OPS;
use std::collections::BTreeSet;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The first cell (in backquotes) of each row of the table headed `| scenario | expected |`.
fn readme_catalogue() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut rows = BTreeSet::new();
    let mut inside = false;
    for l in readme.lines() {
        if l.starts_with("| scenario | expected |") {
            inside = true;
            continue;
        }
        if inside {
            if !l.starts_with('|') {
                break;
            }
            let cell = l.split('|').nth(1).unwrap().trim();
            if let Some(name) = cell.strip_prefix('`').and_then(|c| c.strip_suffix('`')) {
                assert!(rows.insert(name.to_string()), "README lists {name} twice");
            }
        }
    }
    rows
}

#[test]
fn readme_catalogue_table_lists_every_scenario_file() {
    let dir = root().join("scenarios");
    let mut files: BTreeSet<String> = mmcheck_scenario::scenario_files(&dir)
        .expect("scenario directory")
        .iter()
        .map(|p| {
            let rel = p.strip_prefix(&dir).expect("below scenarios/");
            rel.with_extension("").display().to_string()
        })
        .collect();
    files.insert("builtin:reference".to_string());
    let table = readme_catalogue();
    let missing: Vec<_> = files.difference(&table).collect();
    let stale: Vec<_> = table.difference(&files).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "README's catalogue table is out of date: files not in it: {missing:?}; rows without a \
         file: {stale:?}"
    );
}

#[test]
fn operations_table_and_its_init_column_match_the_parser() {
    let doc = std::fs::read_to_string(root().join("docs/scenario-format.md")).unwrap();
    let mut documented = Vec::new();
    let mut inside = false;
    for l in doc.lines() {
        if l.starts_with("| operation | kernel path | init |") {
            inside = true;
            continue;
        }
        if inside {
            if l.starts_with("|---") {
                continue;
            }
            if !l.starts_with('|') {
                break;
            }
            let cells: Vec<&str> = l.split(" | ").collect();
            let syntax = cells[0].trim_start_matches("| ").trim_matches('`');
            let init = cells.last().unwrap().trim_end_matches(" |").trim();
            documented.push((syntax.to_string(), init == "yes"));
        }
    }
    for op in OPS {
        let Some((_, init)) = documented
            .iter()
            .find(|(syn, _)| syn == op.name || syn.starts_with(&format!("{} ", op.name)))
        else {
            panic!(
                "docs/scenario-format.md: operation {} is not in the table",
                op.name
            );
        };
        assert_eq!(
            *init, op.init,
            "docs/scenario-format.md: the init column of {} is wrong",
            op.name
        );
    }
    assert_eq!(documented.len(), OPS.len(), "{documented:?}");
}
