//! `mmcheck`: an executable model of the Linux kernel's page-table concurrency protocol, and a
//! checker for it. Subcommands: `check` (the main job), `stress` (the model on real threads),
//! `diff-kernel` (the model against the host kernel).

use clap::{Parser, Subcommand};
use mmcheck::{model_runner, stress};
use mmcheck_hostdiff::compare::Mask;
use mmcheck_hostdiff::host::{host_features, HostRunner};
use mmcheck_kernel::Protocol;
use std::process::ExitCode;
use std::time::Instant;

/// The system allocator, counting allocations per thread for `mmcheck bench`.
#[global_allocator]
static ALLOCATOR: mmcheck_explore::allocs::Counting = mmcheck_explore::allocs::Counting;

#[derive(Parser)]
#[command(
    name = "mmcheck",
    version,
    about = "Model checker for the Linux page-table concurrency protocol"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check scenarios under the explorer: every expectation of every scenario (the built-in
    /// catalogue when no path is given). Exits 0 iff every expectation is met, 1 on an unexpected
    /// verdict, 2 on bad input, 3 when a tool limit left a row inconclusive, 4 on an internal
    /// error, 130 on Ctrl-C.
    Check {
        /// Scenario files or directories of `.mmt` files.
        paths: Vec<String>,
        /// Exploration strategy.
        #[arg(long, value_enum, default_value_t = ModeArg::Dpor)]
        mode: ModeArg,
        /// PCT depth (with --mode pct).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
        depth: u32,
        /// Seconds per scenario and variant.
        #[arg(long, default_value_t = 60.0)]
        budget: f64,
        /// Preemption bound (DPOR); results are then not complete if anything was pruned.
        #[arg(long)]
        preemptions: Option<u32>,
        /// DPOR with wakeup trees (Optimal-DPOR): no two executions of one equivalence class
        /// where only the dependency relation decides what is enabled (docs/design.md).
        #[arg(long)]
        optimal: bool,
        /// Protocol preset applied to every scenario before its own variants.
        #[arg(long)]
        protocol: Option<String>,
        /// A switch setting, `name=value` (repeatable).
        #[arg(long = "set", value_parser = parse_set)]
        sets: Vec<(String, String)>,
        /// Run as the mutant that skips one lock acquisition or recheck, FUNCTION:CLASS (see
        /// `mmcheck sites`).
        #[arg(long, value_name = "SITE", value_parser = parse_site)]
        mutate: Option<mmcheck_platform::SiteKey>,
        /// Print one JSON array instead of the table.
        #[arg(long)]
        json: bool,
        /// Worker threads: rows run in parallel, and with fewer rows than workers the spare ones
        /// share each row's search (the same verdicts and tokens; docs/shards.md).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: u16,
        /// Seed for random and PCT.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Strict mode: fail (`unannounced-access`) on any access to shared model state that its
        /// step did not announce, naming the object and the code location.
        #[arg(long)]
        strict: bool,
        /// Longest execution in steps; a longer one makes the row inconclusive.
        #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        max_steps: u32,
        /// Executions per scenario and variant at most (besides the time budget).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        max_executions: Option<u64>,
        /// Print the traces of expected violations too, and every step of a trace (lock and
        /// seqcount chatter unfolded, unexpected traces in full).
        #[arg(short, long)]
        verbose: bool,
        /// Write the counterexamples as a self-contained HTML timeline to FILE.
        #[arg(long, value_name = "FILE")]
        html: Option<std::path::PathBuf>,
        /// Explore only part I of N of each row's search (with --json; `mmcheck merge` combines
        /// the N parts into the verdicts of one run; docs/shards.md).
        #[arg(long, value_name = "I/N", value_parser = parse_shard)]
        shard: Option<mmcheck_explore::Shard>,
    },
    /// Combine the JSON of `check --shard I/N --json` runs (every shard of every row) into one
    /// verdict per row, printed as `check` prints them. Exits as `check` does; 2 if a shard is
    /// missing or a file is not such JSON.
    Merge {
        /// The shards' JSON files.
        #[arg(required = true)]
        files: Vec<String>,
        /// Print one JSON array instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Replay a schedule token on a scenario and print its trace. Exits 1 on a violation, 2 if
    /// the token does not fit the scenario.
    Replay {
        /// A scenario file, or a catalogue path such as `planted/missing-rcu-wait.mmt`.
        scenario: String,
        /// The schedule token (`v1:...`), as `check` prints it.
        #[arg(long)]
        schedule: String,
        /// The variant to replay under (default: the scenario's own protocol).
        #[arg(long)]
        variant: Option<String>,
        /// Protocol preset applied before the variant, as with `check --protocol`.
        #[arg(long)]
        protocol: Option<String>,
        /// A switch setting, `name=value` (repeatable), as with `check --set`.
        #[arg(long = "set", value_parser = parse_set)]
        sets: Vec<(String, String)>,
        /// Run as the mutant that skips one lock acquisition or recheck, FUNCTION:CLASS (see
        /// `mmcheck sites`).
        #[arg(long, value_name = "SITE", value_parser = parse_site)]
        mutate: Option<mmcheck_platform::SiteKey>,
        /// Print one JSON object instead of the trace.
        #[arg(long)]
        json: bool,
        /// Show every step (lock and seqcount chatter unfolded).
        #[arg(short, long)]
        verbose: bool,
        /// Write the trace as a self-contained HTML timeline to FILE.
        #[arg(long, value_name = "FILE")]
        html: Option<std::path::PathBuf>,
    },
    /// List every protocol switch with its default, alternatives and citation, and the presets.
    Switches,
    /// List the protocol presets (for `--protocol` and a scenario's `protocol` line) with the
    /// switch values each sets.
    Presets,
    /// List what `expect reach` patterns may name: the kernel functions the model enters and the
    /// locks a thread may hold.
    Funcs,
    /// The native self-check: the sequential self-tests and a short multi-threaded stress run.
    Selftest,
    /// Run random operations from real threads on one shared mm and check every value and
    /// invariant.
    Stress {
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
        threads: u16,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Check kernel C litmus tests (the format of tools/memory-model/litmus-tests) against the
    /// Linux-kernel memory model and print each result in herd7's shape. A test's `Result:` line
    /// (or --expect) is its expected verdict: exits 0 if every test agrees, 1 on a disagreement,
    /// 2 on bad input, 3 if a test was beyond the checker's limits.
    Litmus {
        /// Litmus files or directories of `.litmus` files.
        #[arg(required = true)]
        paths: Vec<String>,
        /// The expected observation for every test, overriding their `Result:` lines.
        #[arg(long, value_parser = parse_observation)]
        expect: Option<mmcheck_litmus::Observation>,
        /// Print each test's cost: candidate executions enumerated, allowed ones, time.
        #[arg(long)]
        stats: bool,
        /// One line per test (name, verdict, expected) instead of herd7's block.
        #[arg(long)]
        brief: bool,
    },
    /// Print throughput figures.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
    /// Generate scenarios over the whole operation vocabulary and run them under the explorer
    /// against one protocol, with coverage feedback; save each violation found, shrunk, as a
    /// `.mmt` file with its replay token. Stops at --budget, --scenarios or Ctrl-C with a
    /// summary. Exits 0 if nothing was found, 1 if a violation was, 2 on bad input, 130 on
    /// Ctrl-C.
    Fuzz {
        /// Seed of the scenario sequence: the same seed gives the same scenarios and verdicts.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Seconds in all.
        #[arg(long, default_value_t = 60.0)]
        budget: f64,
        /// Stop after this many scenarios (a run of a fixed length on any machine).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        scenarios: Option<u64>,
        /// Protocol preset of every scenario.
        #[arg(long)]
        protocol: Option<String>,
        /// A switch setting, `name=value` (repeatable).
        #[arg(long = "set", value_parser = parse_set)]
        sets: Vec<(String, String)>,
        /// Run as the mutant that skips one lock acquisition or recheck, FUNCTION:CLASS (see
        /// `mmcheck sites`).
        #[arg(long, value_name = "SITE", value_parser = parse_site)]
        mutate: Option<mmcheck_platform::SiteKey>,
        /// Executions per strategy per scenario (random, PCT 2, PCT 3; DPOR gets four times as
        /// many); 200 by default, 50 with --planted (more scenarios in a short budget).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        executions: Option<u64>,
        /// Directory for the violating scenarios.
        #[arg(long, default_value = "fuzz-out")]
        out: std::path::PathBuf,
        /// Print the scenario the generator draws from SEED and exit.
        #[arg(long, value_name = "SEED")]
        show: Option<u64>,
        /// Stop at the first violation found (with --planted, the first the base does not give).
        #[arg(long)]
        first: bool,
        /// Sweep the planted mutants: every catalogue variant that expects a violation, its
        /// protocol fuzzed from scratch with --budget-each seconds (and --scenarios each); a
        /// mutant counts as found when the shrunk scenario does not give the same kind under the
        /// file's own protocol. Prints a table (exit 0 if every mutant was found, 1 if not).
        #[arg(long)]
        planted: bool,
        /// With --planted: seconds per mutant.
        #[arg(long, default_value_t = 60.0)]
        budget_each: f64,
        /// With --planted: do not favour the scenarios whose executions differ from the base
        /// protocol's (those that run the planted change's code; docs/fuzz.md).
        #[arg(long)]
        undirected: bool,
        /// With --planted: only mutants whose change or source file:variant contains STR
        /// (repeatable).
        #[arg(long, value_name = "STR")]
        filter: Vec<String>,
        /// With --planted: leave out mutants whose change or source contains STR (repeatable).
        #[arg(long, value_name = "STR")]
        exclude: Vec<String>,
        /// With --planted: the scenario files or directories whose variants plant the mutants
        /// (repeatable; by default the catalogue but its self-tests, whose variants change
        /// khugepaged tunables a `check` line asserts on, no protocol bug).
        #[arg(long, default_values_t = ["scenarios/planted".to_string(), "scenarios/races".to_string(), "scenarios/seeds".to_string(), "scenarios/fidelity".to_string(), "scenarios/memory".to_string()])]
        catalogue: Vec<String>,
        /// With --planted: the table as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the mutation sites: every lock acquisition (kernel function and lock class) and every
    /// named recheck the scenarios reach, with its kernel file, the model lines that make it and
    /// how many scenario rows reach it. `--mutate SITE` (check, replay, fuzz) runs without one.
    Sites {
        /// Scenario files or directories (default: the catalogue).
        paths: Vec<String>,
        /// Random and PCT executions per row.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        executions: u64,
        /// Rows run in parallel.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: u16,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// For every mutation site (or those matching --filter), search for a scenario that breaks
    /// without it: the catalogue rows that reach it first, then generated scenarios. Prints the
    /// table and the mutation score; writes markdown (--markdown) and JSON (--json). Exits 0, 2
    /// on bad input, 130 on Ctrl-C.
    Atlas {
        /// Scenario files or directories (default: the catalogue).
        paths: Vec<String>,
        /// Only sites whose name contains this (repeatable).
        #[arg(long)]
        filter: Vec<String>,
        /// Executions per catalogue row run as a mutant (half DPOR, then PCT and random).
        #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u64).range(4..=10_000_000))]
        row_executions: u64,
        /// Catalogue rows tried per site at most (the most focused first).
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(0..=10_000))]
        rows_per_site: u64,
        /// Generated scenarios per site the catalogue does not break (0: no fuzzing).
        #[arg(long, default_value_t = 150, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
        fuzz_scenarios: u64,
        /// Seconds of fuzzing per site at most.
        #[arg(long, default_value_t = 20.0)]
        fuzz_budget: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Sites searched in parallel.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: u16,
        /// Directory for the scenarios fuzz saves.
        #[arg(long, default_value = "atlas-out")]
        out: std::path::PathBuf,
        /// Write the atlas as markdown to FILE.
        #[arg(long, value_name = "FILE")]
        markdown: Option<std::path::PathBuf>,
        /// Write the atlas as JSON to FILE.
        #[arg(long, value_name = "FILE")]
        json: Option<std::path::PathBuf>,
        /// Write the atlas as a self-contained HTML page (with each witness's timeline) to FILE.
        #[arg(long, value_name = "FILE")]
        html: Option<std::path::PathBuf>,
        /// Search only part I of N of the sites (with --json; --merge combines the parts).
        #[arg(long, value_name = "I/N", value_parser = parse_shard)]
        shard: Option<mmcheck_explore::Shard>,
        /// Combine the JSON files of `atlas --shard I/N --json` runs instead of searching.
        #[arg(long = "merge", value_name = "FILE", num_args = 1..)]
        merge_files: Vec<String>,
    },
    /// Run random cases on the host kernel and on the model, and compare what each observes.
    DiffKernel {
        #[arg(long, default_value_t = 100)]
        cases: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Operation mix: `extended` (mmap, store, load, munmap, MADV_DONTNEED, mremap,
        /// MADV_HUGEPAGE, MADV_COLLAPSE, MADV_FREE, MADV_PAGEOUT), `basic` (mmap, store, load,
        /// munmap, MADV_DONTNEED), `file` (extended plus MAP_PRIVATE memfd mappings,
        /// FALLOC_FL_PUNCH_HOLE and ftruncate) or `process` (file plus mprotect, and fork with the
        /// child's loads, stores and exit).
        #[arg(long, value_enum, default_value_t = MixArg::Extended)]
        ops: MixArg,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum MixArg {
    Basic,
    Extended,
    File,
    Process,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ModeArg {
    Dpor,
    Random,
    Pct,
}

fn parse_shard(s: &str) -> Result<mmcheck_explore::Shard, String> {
    s.parse()
}

fn parse_site(s: &str) -> Result<mmcheck_platform::SiteKey, String> {
    s.parse()
}

fn parse_set(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}': expected name=value"))?;
    Ok((k.trim().to_string(), v.trim().to_string()))
}

#[derive(Subcommand)]
enum BenchWhat {
    /// The explorer's figures: the reference scenario under random, PCT and DPOR (steps/s,
    /// executions/s), its cost per execution against the native backend, the speed-up of
    /// `--jobs` within one row, and an mremap-heavy scenario's DPOR search.
    Explore {
        /// Seconds per strategy on the reference scenario (and of native runs).
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Worker threads for the within-row and mremap-heavy figures.
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        /// Cap on the mremap-heavy DPOR search, in seconds.
        #[arg(long, default_value_t = 60.0)]
        mremap_seconds: f64,
        /// DPOR with wakeup trees (Optimal-DPOR) instead of source-DPOR.
        #[arg(long)]
        optimal: bool,
    },
}

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`mmcheck check | head`), as command-line tools do.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Selftest => selftest(),
        Cmd::Switches => switches(),
        Cmd::Presets => presets(),
        Cmd::Funcs => {
            println!("kernel functions ('T0 in NAME'):");
            for f in mmcheck_scenario::KERNEL_FUNCS {
                println!("  {f}");
            }
            println!("locks ('T0 holds NAME'):");
            for (n, class) in mmcheck_scenario::HOLD_NAMES {
                println!("  {n:<16} {class}");
            }
            ExitCode::SUCCESS
        }
        Cmd::Check {
            paths,
            mode,
            depth,
            budget,
            preemptions,
            optimal,
            protocol,
            sets,
            mutate,
            json,
            jobs,
            seed,
            strict,
            max_steps,
            max_executions,
            verbose,
            html,
            shard,
        } => {
            if !(budget.is_finite() && budget > 0.0 && budget <= 86_400.0) {
                eprintln!("error: --budget must be a positive number of seconds up to 86400");
                return ExitCode::from(2);
            }
            let mode = match mode {
                ModeArg::Dpor => mmcheck_explore::Mode::Dpor,
                ModeArg::Random => mmcheck_explore::Mode::Random,
                ModeArg::Pct => mmcheck_explore::Mode::Pct { depth },
            };
            let opts = mmcheck::check::CheckOpts {
                preemptions,
                optimal,
                overrides: mmcheck::check::Overrides {
                    protocol,
                    sets,
                    mutate,
                },
                seed,
                strict,
                max_steps: max_steps as usize,
                max_executions,
                verbose,
                html: html.is_some(),
                shard,
                ..mmcheck::check::CheckOpts::new(mode, std::time::Duration::from_secs_f64(budget))
            };
            run_check(&paths, opts, json, jobs as usize, verbose, html.as_deref())
        }
        Cmd::Replay {
            scenario,
            schedule,
            variant,
            protocol,
            sets,
            mutate,
            json,
            verbose,
            html,
        } => run_replay(
            &scenario,
            &schedule,
            variant.as_deref(),
            &mmcheck::check::Overrides {
                protocol,
                sets,
                mutate,
            },
            json,
            verbose,
            html.as_deref(),
        ),
        Cmd::Stress {
            threads,
            seconds,
            seed,
        } => {
            if !(seconds.is_finite() && seconds > 0.0 && seconds <= 86_400.0) {
                eprintln!("error: --seconds must be a positive number of seconds up to 86400");
                return ExitCode::from(2);
            }
            stress(threads as usize, seconds, seed)
        }
        Cmd::Merge { files, json } => match mmcheck::merge::merge(&files) {
            Ok(rows) => {
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&rows).expect("serializable")
                    );
                } else {
                    print!(
                        "{}",
                        mmcheck::table::report(&rows, &Default::default(), false, 0)
                    );
                }
                ExitCode::from(mmcheck::check::exit_code(&rows, false))
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Cmd::Sites {
            paths,
            executions,
            jobs,
            json,
        } => {
            let inputs = mmcheck::check::load(&paths);
            let rows = match mmcheck::sites::rows(&inputs, &Default::default()) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let sites = mmcheck::sites::collect(&rows, executions, jobs as usize);
            if json {
                let v: Vec<_> = sites.values().collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&v).expect("serializable")
                );
            } else {
                print!("{}", mmcheck::sites::render(&sites));
            }
            ExitCode::SUCCESS
        }
        Cmd::Atlas {
            paths,
            filter,
            row_executions,
            rows_per_site,
            fuzz_scenarios,
            fuzz_budget,
            seed,
            jobs,
            out,
            markdown,
            json,
            html,
            shard,
            merge_files,
        } => {
            if !merge_files.is_empty() {
                return merge_atlas(&merge_files, [markdown, json, html]);
            }
            if !(fuzz_budget.is_finite() && (0.0..=86_400.0).contains(&fuzz_budget)) {
                eprintln!("error: --fuzz-budget must be a number of seconds from 0 to 86400");
                return ExitCode::from(2);
            }
            let opts = mmcheck::atlas::AtlasOpts {
                filter,
                row_executions,
                rows_per_site: rows_per_site as usize,
                fuzz_scenarios,
                fuzz_budget: std::time::Duration::from_secs_f64(fuzz_budget),
                seed,
                jobs: jobs as usize,
                shard,
                out,
                stop: Default::default(),
            };
            let settings = format!(
                "Settings: `mmcheck atlas --row-executions {row_executions} --rows-per-site \
                 {rows_per_site} --fuzz-scenarios {fuzz_scenarios} --fuzz-budget {fuzz_budget} \
                 --seed {seed} --jobs {jobs}`"
            );
            run_atlas(&paths, opts, settings, [markdown, json, html])
        }
        Cmd::DiffKernel { cases, seed, ops } => diff_kernel(
            cases,
            seed,
            match ops {
                MixArg::Basic => mmcheck_hostdiff::gen::OpMix::Basic,
                MixArg::Extended => mmcheck_hostdiff::gen::OpMix::Extended,
                MixArg::File => mmcheck_hostdiff::gen::OpMix::File,
                MixArg::Process => mmcheck_hostdiff::gen::OpMix::Process,
            },
        ),
        Cmd::Fuzz {
            seed,
            budget,
            scenarios,
            protocol,
            sets,
            mutate,
            executions,
            out,
            show,
            first,
            planted,
            budget_each,
            undirected,
            filter,
            exclude,
            catalogue,
            json,
        } => {
            if let Some(s) = show {
                print!("{}", mmcheck::fuzz::show(s));
                return ExitCode::SUCCESS;
            }
            if planted {
                if protocol.is_some() || !sets.is_empty() {
                    eprintln!("error: --planted takes each mutant's protocol from the catalogue: no --protocol or --set");
                    return ExitCode::from(2);
                }
                if !(budget_each.is_finite() && budget_each > 0.0 && budget_each <= 86_400.0) {
                    eprintln!(
                        "error: --budget-each must be a positive number of seconds up to 86400"
                    );
                    return ExitCode::from(2);
                }
                return run_planted(
                    mmcheck::planted::SweepOpts {
                        seed,
                        budget_each: std::time::Duration::from_secs_f64(budget_each),
                        scenarios_each: scenarios,
                        executions: executions.unwrap_or(50),
                        filter,
                        exclude,
                        out,
                        stop: Default::default(),
                        directed: !undirected,
                    },
                    &catalogue,
                    json,
                );
            }
            if !(budget.is_finite() && budget > 0.0 && budget <= 86_400.0) {
                eprintln!("error: --budget must be a positive number of seconds up to 86400");
                return ExitCode::from(2);
            }
            let mut o = mmcheck::fuzz::FuzzOpts::new(
                seed,
                std::time::Duration::from_secs_f64(budget),
                mmcheck::check::Overrides {
                    protocol,
                    sets,
                    mutate,
                },
                out,
            );
            o.scenarios = scenarios;
            o.executions = executions.unwrap_or(200);
            o.first = first;
            run_fuzz(o)
        }
        Cmd::Litmus {
            paths,
            expect,
            stats,
            brief,
        } => mmcheck::litmus::run(
            &paths,
            &mmcheck::litmus::LitmusOpts {
                expect,
                stats,
                brief,
            },
        ),
        Cmd::Bench {
            what:
                BenchWhat::Explore {
                    seconds,
                    jobs,
                    mremap_seconds,
                    optimal,
                },
        } => {
            let valid = |s: f64| s.is_finite() && s > 0.0 && s <= 3600.0;
            if !valid(seconds) || !valid(mremap_seconds) {
                eprintln!(
                    "error: --seconds and --mremap-seconds must be positive numbers of seconds \
                     up to 3600"
                );
                return ExitCode::from(2);
            }
            if !(1..=64).contains(&jobs) {
                eprintln!("error: --jobs must be between 1 and 64");
                return ExitCode::from(2);
            }
            mmcheck::bench::bench_explore(&mmcheck::bench::BenchOpts {
                seconds,
                jobs,
                mremap_seconds,
                optimal,
            })
        }
    }
}

fn parse_observation(s: &str) -> Result<mmcheck_litmus::Observation, String> {
    mmcheck_litmus::Observation::from_word(s)
        .ok_or_else(|| format!("'{s}': expected Always, Sometimes, Never or DEADLOCK"))
}

fn run_atlas(
    paths: &[String],
    opts: mmcheck::atlas::AtlasOpts,
    settings: String,
    files: [Option<std::path::PathBuf>; 3],
) -> ExitCode {
    use std::sync::atomic::Ordering;
    {
        let stop = opts.stop.clone();
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
    }
    let inputs = mmcheck::check::load(paths);
    for i in &inputs {
        if let mmcheck::input::Input::Refused { error, .. } = i {
            eprint!("{error}");
            return ExitCode::from(2);
        }
    }
    let rows = match mmcheck::sites::rows(&inputs, &Default::default()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let sites = mmcheck::sites::collect(&rows, 50, opts.jobs);
    eprintln!(
        "{} sites over {} rows ({:.1} s)",
        sites.len(),
        rows.len(),
        started.elapsed().as_secs_f64()
    );
    let log = |l: &str| eprintln!("  {l}");
    let mut atlas = mmcheck::atlas::run(&rows, &sites, &opts, &log);
    atlas.settings = settings;
    atlas.elapsed = started.elapsed().as_secs_f64();
    write_atlas(&atlas, files)
}

fn merge_atlas(parts: &[String], files: [Option<std::path::PathBuf>; 3]) -> ExitCode {
    let mut all = Vec::new();
    for p in parts {
        let text = match std::fs::read_to_string(p) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {p}: {e}");
                return ExitCode::from(2);
            }
        };
        match serde_json::from_str::<mmcheck::atlas::Atlas>(&text) {
            Ok(a) => all.push(a),
            Err(e) => {
                eprintln!("error: {p}: not the JSON of `mmcheck atlas --json`: {e}");
                return ExitCode::from(2);
            }
        }
    }
    write_atlas(&mmcheck::atlas::merge(all), files)
}

/// Write the atlas where asked, print its table and score.
fn write_atlas(atlas: &mmcheck::atlas::Atlas, files: [Option<std::path::PathBuf>; 3]) -> ExitCode {
    let [markdown, json, html] = files;
    let atlas = atlas.clone();
    let md = mmcheck::atlas::markdown(&atlas);
    if let Some(f) = &markdown {
        if let Err(e) = std::fs::write(f, &md) {
            eprintln!("error: cannot write {}: {e}", f.display());
            return ExitCode::from(2);
        }
    }
    if let Some(f) = &html {
        if let Err(e) = std::fs::write(f, mmcheck::atlas::html(&atlas)) {
            eprintln!("error: cannot write {}: {e}", f.display());
            return ExitCode::from(2);
        }
    }
    if let Some(f) = &json {
        let text = serde_json::to_string_pretty(&atlas).expect("serializable");
        if let Err(e) = std::fs::write(f, text) {
            eprintln!("error: cannot write {}: {e}", f.display());
            return ExitCode::from(2);
        }
    }
    let table_end = md.find("\n## Witnesses").unwrap_or(md.len());
    print!("{}", &md[..table_end]);
    println!(
        "\n{}\n{} sites in {:.0} s{}",
        mmcheck::atlas::score(&atlas),
        atlas.sites,
        atlas.elapsed,
        if atlas.interrupted {
            " (interrupted)"
        } else {
            ""
        }
    );
    if atlas.interrupted {
        return ExitCode::from(130);
    }
    ExitCode::SUCCESS
}

fn run_planted(opts: mmcheck::planted::SweepOpts, catalogue: &[String], json: bool) -> ExitCode {
    use std::sync::atomic::Ordering;
    {
        let stop = opts.stop.clone();
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
    }
    let mutants = match mmcheck::planted::mutants(catalogue) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rows = match mmcheck::planted::sweep(&mutants, &opts, &mut |l| {
        if !json {
            println!("{l}")
        }
    }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(if e.starts_with("internal error") {
                4
            } else {
                2
            });
        }
    };
    let found = rows.iter().filter(|r| r.found).count();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "seed": opts.seed,
                "budget_each": opts.budget_each.as_secs_f64(),
                "scenarios_each": opts.scenarios_each,
                "executions": opts.executions,
                "found": found,
                "mutants": rows.len(),
                "rows": rows,
            }))
            .expect("rows serialize")
        );
    } else {
        println!();
        print!("{}", mmcheck::planted::markdown(&rows));
        println!("\n{found} of {} planted mutants found", rows.len());
    }
    if opts.stop.load(Ordering::Relaxed) {
        ExitCode::from(130)
    } else if found == rows.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn run_fuzz(opts: mmcheck::fuzz::FuzzOpts) -> ExitCode {
    use std::sync::atomic::Ordering;
    {
        let stop = opts.stop.clone();
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
    }
    let sum = match mmcheck::fuzz::run(&opts, &mut |l| println!("{l}")) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(if e.starts_with("internal error") {
                4
            } else {
                2
            });
        }
    };
    println!(
        "{} scenarios run ({} more skipped: their init fails), {} executions in {:.1} s; {} sites reached, corpus {}, {} inconclusive{}",
        sum.scenarios,
        sum.unstartable,
        sum.executions,
        sum.elapsed.as_secs_f64(),
        sum.sites,
        sum.corpus,
        sum.inconclusive,
        if sum.interrupted { " (interrupted)" } else { "" }
    );
    if sum.found.is_empty() {
        println!("no violation");
    }
    for f in &sum.found {
        println!(
            "{} in {} (scenario {}, {:.1} s; {}x{} -> {}x{} threads x ops; {} repeats): {}",
            f.kind,
            f.func,
            f.scenario,
            f.after.as_secs_f64(),
            f.size.0 .0,
            f.size.0 .1,
            f.size.1 .0,
            f.size.1 .1,
            f.repeats,
            f.file.display()
        );
    }
    if sum.interrupted {
        ExitCode::from(130)
    } else if sum.found.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn switches() -> ExitCode {
    use mmcheck::table::{table, width, wrap};
    use mmcheck_kernel::protocol::SWITCHES;
    // Name, default and alternatives in columns sized to them; the description and citation
    // wrapped under them to the terminal width.
    let rows: Vec<Vec<String>> = SWITCHES
        .iter()
        .map(|sw| {
            let alts: Vec<&str> = sw
                .values
                .iter()
                .copied()
                .filter(|v| *v != sw.default_value())
                .collect();
            vec![
                sw.name.to_string(),
                sw.default_value().to_string(),
                alts.join(" | "),
            ]
        })
        .collect();
    let t = table(&["switch", "default", "alternatives"], &[false; 3], &rows);
    let mut lines = t.lines();
    println!("{}", lines.next().unwrap_or(""));
    let w = width().saturating_sub(4).max(40);
    for (sw, l) in SWITCHES.iter().zip(lines) {
        println!("{l}");
        for d in wrap(sw.doc, w) {
            println!("    {d}");
        }
        for c in wrap(&format!("cite: {}", sw.cite), w) {
            println!("    {c}");
        }
    }
    println!();
    println!("arch = x86 | arm64 (a pseudo-switch, like protocol = PRESET): x86 sets memory = tso");
    println!("    and tlb.flush = ipi; arm64 sets memory = lkmm and tlb.flush = broadcast");
    println!();
    presets_list();
    ExitCode::SUCCESS
}

fn presets() -> ExitCode {
    presets_list();
    ExitCode::SUCCESS
}

/// Every preset with its description and the switch values it sets (the others keep their
/// defaults).
fn presets_list() {
    use mmcheck::table::{width, wrap};
    use mmcheck_kernel::protocol::PRESETS;
    let w = width().saturating_sub(4).max(40);
    println!("presets (--protocol NAME, or `protocol NAME` in a scenario):");
    for p in PRESETS {
        println!("  {}", p.name);
        for d in wrap(p.doc, w) {
            println!("    {d}");
        }
        if p.settings.is_empty() {
            println!("    sets: nothing (every switch at its default)");
        } else {
            let set: Vec<String> = p.settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
            for (i, l) in wrap(&set.join(" "), w.saturating_sub(6)).iter().enumerate() {
                println!("    {}{l}", if i == 0 { "sets: " } else { "      " });
            }
        }
    }
}

fn run_check(
    paths: &[String],
    mut opts: mmcheck::check::CheckOpts,
    json: bool,
    jobs: usize,
    verbose: bool,
    html: Option<&std::path::Path>,
) -> ExitCode {
    use mmcheck::check::{
        apply_overrides, exit_code, failed_row, load, replaced_warning, run_row, Row, Status,
    };
    use mmcheck::input::Input;
    use std::io::IsTerminal;
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    use std::sync::Arc;
    // Ctrl-C: finish the rows at the next execution boundary, print what finished; a second
    // Ctrl-C exits at once.
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
    }
    opts.stop = Some(stop.clone());
    // Rows of refused files come first, in input order with the others.
    let mut work = Vec::new();
    for input in load(paths) {
        match input {
            Input::Refused { file, error } => {
                eprint!("{error}");
                let first = error.lines().next().unwrap_or("").trim();
                let first = first.strip_prefix("error: ").unwrap_or(first).to_string();
                work.push(Err(failed_row(
                    &file,
                    "-",
                    Some("-"),
                    "-",
                    Status::Error,
                    first,
                    &opts,
                )));
            }
            Input::Loaded { file, scenario } => {
                let s = match apply_overrides(&scenario, &opts.overrides) {
                    Ok(s) => Arc::new(s),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                };
                if let Some(w) = replaced_warning(&file, &scenario, &s, &opts.overrides) {
                    eprintln!("{w}");
                }
                for e in &s.expect {
                    work.push(Ok((
                        file.clone(),
                        s.clone(),
                        e.variant.clone(),
                        e.verdict.clone(),
                    )));
                }
            }
        }
    }
    // Fewer rows than workers: the spare workers go into the rows (the same verdicts).
    opts.row_jobs = (jobs / work.len().max(1)).max(1);
    let opts = &opts;
    let bar = if std::io::stderr().is_terminal() && !json {
        let b = indicatif::ProgressBar::new(work.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:20}] {pos}/{len} {wide_msg}",
            )
            .expect("template"),
        );
        b.enable_steady_tick(std::time::Duration::from_millis(200));
        Some(b)
    } else {
        None
    };
    let workers = jobs.min(work.len().max(1));
    // What each worker runs now, for the progress bar: label, start, executions so far.
    type Running = Option<(String, std::time::Instant, Arc<AtomicU64>)>;
    let running: Vec<parking_lot::Mutex<Running>> = (0..workers)
        .map(|_| parking_lot::Mutex::new(None))
        .collect();
    let next = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let results: Vec<parking_lot::Mutex<Option<Row>>> =
        work.iter().map(|_| parking_lot::Mutex::new(None)).collect();
    std::thread::scope(|sc| {
        if let Some(b) = &bar {
            let (running, done) = (&running, &done);
            sc.spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    let msg: Vec<String> = running
                        .iter()
                        .filter_map(|r| {
                            let r = r.lock();
                            let (label, start, execs) = r.as_ref()?;
                            let left = opts.budget.saturating_sub(start.elapsed()).as_secs();
                            Some(format!(
                                "{} execs, {left}s left: {label}",
                                execs.load(Ordering::Relaxed)
                            ))
                        })
                        .collect();
                    b.set_message(msg.join("; "));
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
            });
        }
        let mut handles = Vec::new();
        for slot in &running {
            let (next, work, results, stop, bar) = (&next, &work, &results, &stop, &bar);
            handles.push(sc.spawn(move || loop {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = work.get(i) else {
                    break;
                };
                let row = match item {
                    Err(row) => row.clone(),
                    Ok((file, s, variant, verdict)) => {
                        let execs = Arc::new(AtomicU64::new(0));
                        let label =
                            format!("{} / {}", s.name, variant.as_deref().unwrap_or("base"));
                        *slot.lock() = Some((label, std::time::Instant::now(), execs.clone()));
                        // A panic is a bug of mmcheck: it loses this row, not the others.
                        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            run_row(file, s, variant.as_deref(), verdict, opts, Some(execs))
                        }));
                        *slot.lock() = None;
                        r.unwrap_or_else(|e| {
                            let what = e
                                .downcast_ref::<String>()
                                .cloned()
                                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                                .unwrap_or_else(|| "panic".into());
                            failed_row(
                                file,
                                &s.name,
                                variant.as_deref(),
                                &verdict.to_string(),
                                Status::InternalError,
                                format!("mmcheck panicked (a bug, please report it): {what}"),
                                opts,
                            )
                        })
                    }
                };
                *results[i].lock() = Some(row);
                if let Some(b) = bar {
                    b.inc(1);
                }
            }));
        }
        for h in handles {
            let _ = h.join();
        }
        done.store(true, Ordering::Relaxed);
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let interrupted = stop.load(Ordering::SeqCst);
    let total = results.len();
    let mut rows: Vec<Row> = results
        .into_iter()
        .filter_map(|r| r.into_inner())
        .filter(|r| r.status != Status::Interrupted)
        .collect();
    mmcheck::check::mark_same_as_base(&mut rows);
    let not_run = total - rows.len();
    if let Some(path) = html {
        let sections: Vec<String> = rows.iter().filter_map(|r| r.html.clone()).collect();
        let page = mmcheck_explore::html::page("mmcheck counterexamples", &sections);
        if let Err(e) = std::fs::write(path, page) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::from(mmcheck::check::exit::BAD_INPUT);
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows serialize")
        );
        if interrupted {
            eprintln!("interrupted: {not_run} of {total} expectations not run");
        }
    } else {
        print!(
            "{}",
            mmcheck::table::report(&rows, &opts.overrides, verbose, not_run)
        );
    }
    ExitCode::from(exit_code(&rows, interrupted))
}

fn run_replay(
    scenario: &str,
    token: &str,
    variant: Option<&str>,
    overrides: &mmcheck::check::Overrides,
    json: bool,
    verbose: bool,
    html: Option<&std::path::Path>,
) -> ExitCode {
    use mmcheck::check::{apply_overrides, replaced_warning};
    use mmcheck_explore::report::{json_run, render_run};
    use mmcheck_explore::{Model, Schedule};
    let sched = match Schedule::parse(token) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // The file as `check` names it: the path given, `scenarios/NAME` or `builtin:NAME`.
    let path = std::path::Path::new(scenario);
    let loaded = if path.exists() {
        mmcheck::input::read_scenario(path).map(|s| (scenario.to_string(), s))
    } else {
        let key = scenario.trim_start_matches("scenarios/");
        match mmcheck::check::CATALOGUE.iter().find(|(n, _)| *n == key) {
            Some((n, text)) => {
                let file = format!("scenarios/{n}");
                mmcheck_scenario::parse::parse_scenario(&file, text)
                    .map(|s| (file, s))
                    .map_err(|e| e.render())
            }
            None if scenario == "builtin:reference" => Ok((
                scenario.to_string(),
                mmcheck_scenario::catalogue::reference(),
            )),
            None => Err(format!(
                "error: no scenario file or catalogue entry '{}'",
                mmcheck_scenario::parse::escape_controls(scenario)
            )),
        }
    };
    let (file, own) = match loaded {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    // The same overrides, in the same order, as `check`: the preset and sets, then the variant.
    let s = match apply_overrides(&own, overrides) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(w) = replaced_warning(&file, &own, &s, overrides) {
        eprintln!("{w}");
    }
    let variant = variant.filter(|v| *v != "base");
    if let Some(v) = variant {
        if !s.variants.iter().any(|x| x.name == v) {
            eprintln!("error: scenario '{}' has no variant '{v}'", s.name);
            return ExitCode::from(2);
        }
    }
    let sv = match s.with_variant(variant) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let m = std::sync::Arc::new(mmcheck_scenario::KernelModel::new(sv));
    let r = match mmcheck_explore::schedule::replay_strict(&m, &sched, true) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // A tool limit (the frame pool) is no verdict.
    let limit = r
        .limit
        .as_ref()
        .filter(|_| r.violation.is_none())
        .map(|l| format!("{l}; {}", l.how_to_raise()));
    let verdict = match (&r.violation, &limit) {
        (Some(v), _) => v.kind.name().to_string(),
        (None, Some(_)) => "inconclusive".to_string(),
        (None, None) => "clean".to_string(),
    };
    if json {
        // The fields of a `check --json` row that a replay has (docs/json.md).
        let v = serde_json::json!({
            "scenario": s.name,
            "file": file,
            "variant": variant.unwrap_or("base"),
            "overrides": overrides.labels(),
            "schedule": token,
            "verdict": verdict,
            "message": r.violation.as_ref().map(|v| v.to_string()),
            "limit": limit,
            "trace": json_run(&r),
        });
        println!("{}", serde_json::to_string_pretty(&v).expect("serialize"));
    } else {
        let names: Vec<String> = (0..m.threads()).map(|t| m.thread_name(t)).collect();
        print!("{}", render_run(&names, &r, verbose));
        if let Some(l) = &limit {
            println!("\ninconclusive: {l}");
        } else if r.violation.is_none() {
            println!("\nno violation on this schedule");
        }
    }
    if let Some(path) = html {
        let names: Vec<String> = (0..m.threads()).map(|t| m.thread_name(t)).collect();
        let replay = format!(
            "mmcheck replay {file} --variant {}{} --schedule {token}",
            variant.unwrap_or("base"),
            overrides.flags()
        );
        let title = format!("{} / {}", s.name, variant.unwrap_or("base"));
        let sec = mmcheck_explore::html::section(&title, &names, &r, &replay);
        let page = mmcheck_explore::html::page("mmcheck replay", &[sec]);
        if let Err(e) = std::fs::write(path, page) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::from(mmcheck::check::exit::BAD_INPUT);
        }
    }
    use mmcheck::check::exit;
    ExitCode::from(match (&r.violation, &limit) {
        (Some(_), _) => exit::UNEXPECTED,
        (None, Some(_)) => exit::INCONCLUSIVE,
        (None, None) => exit::OK,
    })
}

fn selftest() -> ExitCode {
    println!("mmcheck selftest: sequential self-tests and a native stress run.");
    println!("{:<48} {:>8} {:>10}", "self-test", "verdict", "time");
    let mut ok = true;
    for (name, f) in mmcheck_kernel::selftest::SELFTESTS {
        let t = Instant::now();
        let r = f();
        let verdict = if r.is_ok() { "ok" } else { "FAILED" };
        println!(
            "{name:<48} {verdict:>8} {:>8.1}ms",
            t.elapsed().as_secs_f64() * 1e3
        );
        if let Err(e) = r {
            println!("  {e}");
            ok = false;
        }
    }
    let r = stress::run(2, 2.0, 1, Protocol::default());
    let verdict = if r.violations.is_empty() {
        "ok"
    } else {
        "FAILED"
    };
    println!(
        "{:<48} {verdict:>8} {:>8.1}ms",
        "stress (2 threads, 2 s, seed 1)",
        r.elapsed.as_secs_f64() * 1e3
    );
    for v in &r.violations {
        println!("  {v}");
        ok = false;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn stress(threads: usize, seconds: f64, seed: u64) -> ExitCode {
    let r = stress::run(threads, seconds, seed, Protocol::default());
    let secs = r.elapsed.as_secs_f64();
    println!(
        "stress: {threads} threads, {:.1} s, seed {seed}: {} ops, {:.0} ops/s",
        secs,
        r.ops,
        r.ops as f64 / secs
    );
    if r.violations.is_empty() {
        println!("no violations; invariants hold; nothing leaked");
        ExitCode::SUCCESS
    } else {
        for v in r.violations.iter().take(20) {
            println!("violation: {v}");
        }
        ExitCode::from(1)
    }
}

fn diff_kernel(cases: u64, seed: u64, mix: mmcheck_hostdiff::gen::OpMix) -> ExitCode {
    let features = host_features();
    let mask = Mask::from(features);
    for (have, what) in [
        (features.vm_pte, "VmPTE (/proc/self/status)"),
        (
            features.smaps_rollup,
            "Rss and AnonHugePages (/proc/self/smaps_rollup)",
        ),
        (features.pagemap, "present bits (/proc/self/pagemap)"),
    ] {
        if !have {
            println!("host lacks {what}: not compared");
        }
    }
    if !features.pt_reclaim {
        println!("host does not reclaim empty PTE tables on MADV_DONTNEED: model runs with pt_reclaim off");
    }
    let proto = Protocol {
        pt_reclaim: features.pt_reclaim,
        ..Protocol::default()
    };
    let host = HostRunner::with_features(features);
    let model = model_runner::ModelRunner { proto };
    let t = Instant::now();
    let report = mmcheck_hostdiff::compare::run_diff_mix(
        cases,
        seed,
        mix,
        &host,
        &model,
        &mask,
        &mut |_| {},
    );
    println!("{report}");
    println!(
        "({} cases in {:.1} s)",
        report.total,
        t.elapsed().as_secs_f64()
    );
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
