//! `mmcheck litmus FILE|DIR...`: kernel C litmus tests checked against the Linux-kernel memory
//! model (crates/litmus), each result printed in herd7's shape. A test's expected verdict is
//! `--expect` or its own `Result:` line; a disagreement exits 1, bad input 2, a test beyond the
//! checker's limits 3.

use mmcheck_litmus::{check_file, render, LitmusError, Observation};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The `.litmus` files named by `paths` (directories: their `.litmus` files, sorted).
pub fn collect(paths: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        let path = Path::new(p);
        if path.is_dir() {
            let rd = std::fs::read_dir(path).map_err(|e| format!("{p}: {e}"))?;
            let mut files: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "litmus"))
                .collect();
            files.sort();
            out.extend(files);
        } else if path.is_file() {
            out.push(path.to_path_buf());
        } else {
            return Err(format!("{p}: no such file or directory"));
        }
    }
    if out.is_empty() {
        return Err("no litmus tests given".into());
    }
    Ok(out)
}

/// Options of `mmcheck litmus`.
pub struct LitmusOpts {
    pub expect: Option<Observation>,
    /// Print each test's cost (candidate executions, time) after its result.
    pub stats: bool,
    /// One summary line per test instead of the herd7 block.
    pub brief: bool,
}

/// Run the tests; the exit code as documented in the module.
pub fn run(paths: &[String], opts: &LitmusOpts) -> ExitCode {
    let files = match collect(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let (mut bad, mut wrong, mut limit) = (0, 0, 0);
    let (mut total_cands, mut total_time) = (0u64, 0f64);
    for f in &files {
        match check_file(f) {
            Ok(o) => {
                let expected = opts.expect.or(o.expected);
                let agrees = expected.is_none_or(|e| o.agrees_with(e));
                if opts.brief {
                    println!(
                        "{:<60} {:<9} expected {:<9} {}",
                        o.name,
                        o.observation().name(),
                        expected.map_or("-", |e| e.name()),
                        if agrees { "ok" } else { "DISAGREES" }
                    );
                } else {
                    print!("{}", render(&o));
                    if let Some(e) = expected {
                        if !agrees {
                            println!(
                                "DISAGREES: {} expects {}, the model gives {}",
                                f.display(),
                                e.name(),
                                o.observation().name()
                            );
                        }
                    }
                }
                if opts.stats {
                    println!(
                        "Cost {} candidates {} allowed {} time {:.3}s",
                        o.name,
                        o.candidates,
                        o.positive + o.negative,
                        o.elapsed.as_secs_f64()
                    );
                }
                if !opts.brief {
                    println!();
                }
                total_cands += o.candidates;
                total_time += o.elapsed.as_secs_f64();
                if !agrees {
                    wrong += 1;
                }
            }
            Err(LitmusError::Limit(m)) => {
                println!("{}: inconclusive: {m}", f.display());
                limit += 1;
            }
            Err(LitmusError::Parse(e)) => {
                eprint!("{}", e.render());
                bad += 1;
            }
            Err(LitmusError::Io(m)) => {
                eprintln!("error: {m}");
                bad += 1;
            }
        }
    }
    if files.len() > 1 || opts.stats {
        println!(
            "{} tests: {} disagree, {} refused, {} inconclusive; {} candidate executions in {:.3}s",
            files.len(),
            wrong,
            bad,
            limit,
            total_cands,
            total_time
        );
    }
    if bad > 0 {
        ExitCode::from(2)
    } else if wrong > 0 {
        ExitCode::from(1)
    } else if limit > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}
