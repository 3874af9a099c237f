//! `mmcheck`: an executable model of the Linux kernel's page-table concurrency protocol, and a
//! checker for it. Subcommands: `check` (the main job), `stress` (the model on real threads),
//! `diff-kernel` (the model against the host kernel).

use clap::{Parser, Subcommand};
use mmcheck::{model_runner, stress};
use mmcheck_hostdiff::compare::{run_diff, Mask};
use mmcheck_hostdiff::host::{host_features, HostRunner};
use mmcheck_kernel::Protocol;
use std::process::ExitCode;
use std::time::Instant;

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
    /// Check the model. Until the explorer lands this runs the native self-check: the sequential
    /// self-tests and a short multi-threaded stress run, each followed by the invariant checks.
    Check,
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
    /// Print throughput figures.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
    /// Run random cases on the host kernel and on the model, and compare what each observes.
    DiffKernel {
        #[arg(long, default_value_t = 100)]
        cases: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Subcommand)]
enum BenchWhat {
    /// The explorer on the built-in reference scenario: random and DPOR steps/s and executions/s.
    Explore {
        /// Seconds per mode.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Check => check(),
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
        Cmd::DiffKernel { cases, seed } => diff_kernel(cases, seed),
        Cmd::Bench { what: BenchWhat::Explore { seconds } } => {
            if !(seconds.is_finite() && seconds > 0.0 && seconds <= 3600.0) {
                eprintln!("error: --seconds must be a positive number of seconds up to 3600");
                return ExitCode::from(2);
            }
            bench_explore(seconds)
        }
    }
}

fn bench_explore(seconds: f64) -> ExitCode {
    use mmcheck_explore::{explore, Config, Mode};
    use mmcheck_scenario::{catalogue, KernelModel};
    use std::sync::Arc;
    use std::time::Duration;
    let m = Arc::new(KernelModel::new(catalogue::reference()));
    println!("reference scenario: {} (3 threads, ~40 visible steps each)", m.scenario.doc);
    let budget = Some(Duration::from_secs_f64(seconds));
    let mut ok = true;
    for (name, mode) in [("random", Mode::Random), ("pct", Mode::Pct { depth: 3 }), ("dpor", Mode::Dpor)] {
        let cfg = Config { mode, budget, seed: 1, stop_on_violation: true, ..Config::default() };
        let out = explore(m.clone(), &cfg);
        let secs = out.elapsed.as_secs_f64();
        println!(
            "{name}: {:.2}M steps/s, {:.1}k executions/s ({} executions, {} steps, {:.2} s{})",
            out.steps as f64 / secs / 1e6,
            out.executions as f64 / secs / 1e3,
            out.executions,
            out.steps,
            secs,
            if mode == Mode::Dpor { format!(", complete: {}", out.complete) } else { String::new() }
        );
        if let Some(cx) = out.counterexample {
            println!("  unexpected violation: {}", cx.violation);
            ok = false;
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn check() -> ExitCode {
    println!("mmcheck check: the explorer is not built yet; running the native self-check.");
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

fn diff_kernel(cases: u64, seed: u64) -> ExitCode {
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
    let report = run_diff(cases, seed, &host, &model, &mask, &mut |_| {});
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
