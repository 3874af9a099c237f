//! `mmcheck bench`: the explorer's throughput figures in one run (issue: exhaustive at realistic
//! sizes). Speed targets live here, printed, never in timed tests.
//!
//! - The reference scenario (`catalogue::reference`: store/load vs fault vs MADV_DONTNEED on one
//!   PTE table) under random, PCT and DPOR: steps/s and executions/s.
//! - The cost of one explored execution against the same scenario code on the native backend:
//!   the same `build`, every thread's body in turn on the calling thread, and `finish`, with no
//!   scheduler, no coroutines and no events; and the same with each instance restored from one
//!   built first (`Model::restore`, as the explorer makes them): the model code's own cost per
//!   execution, so the steps/s no scheduler can beat on this machine.
//! - The explorer's random execution phase by phase (restore and thread start, the steps, the
//!   final checks) against the native one's (restore, the threads' code, the final checks), and
//!   the allocations each phase makes (the binary's allocator counts them,
//!   `mmcheck_explore::allocs`):
//!   the steps less the native threads' code is the scheduling's own cost per step.
//! - DPOR's complete search of the reference scenario takes a fraction of a second, so it is
//!   repeated for the seconds asked and its rate is of all the runs.
//! - `--jobs N` within one row: the time to complete DPOR on a mid-size catalogue row
//!   (`child-exit-vs-rmap-walk`, about 38,300 executions) with one worker and with N, each
//!   timed [`JOBS_RUNS`] times: the speed-up is of the medians, with the range of the N-worker
//!   times (the workers share the tree as timing allows, and one run varies).
//! - The reference scenario under `memory = sc`, `tso`, `lkmm` and `lkmm` with loads in program
//!   order (`memory.load_reorder = off`): DPOR executions and time
//!   (to completion or the budget) and random steps/s, against SC.
//! - An mremap-heavy scenario (mremap of a range back against migration of its page and a
//!   store fault in it, 4-entry tables): DPOR until complete or the cap.

use mmcheck_explore::allocs::allocations;
use mmcheck_explore::random::Phases;
use mmcheck_explore::{explore, explore_parallel, Config, Mode, Model, Outcome};
use mmcheck_platform::NativeBackend;
use mmcheck_scenario::{catalogue, parse_scenario, KernelModel};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Timed runs of each side of the `--jobs` figure.
const JOBS_RUNS: usize = 3;

/// The `--jobs` row: a clean catalogue row whose DPOR search completes in a few seconds (the
/// previous one, `seed-001-retract-anon-vma`, now completes in 3,376 executions, under a second,
/// too short for a speed-up figure).
const JOBS_ROW: &str = include_str!("../../../scenarios/fidelity/child-exit-vs-rmap-walk.mmt");

/// The mremap-heavy scenario: seed 004's move back of a range moved in `init`, against the
/// migration of its page and a store fault on it.
const MREMAP_HEAVY: &str = "scenario mremap-heavy
doc \"mremap of a moved range back against migration of its page and a store fault on it\"
geometry levels=3 entries=4

init {
  mmap anon @0 pages=12
  store @8 = 1
  mremap @8 pages=4 to @36
}

thread T0 {
  mremap @36 pages=4 to @8
}
thread T1 {
  migrate @36
}
thread T2 {
  store @37 = 5
}

expect clean
";

/// What `mmcheck bench explore` measures.
pub struct BenchOpts {
    /// Seconds per strategy on the reference scenario (and for the native runs).
    pub seconds: f64,
    /// Workers of the `--jobs` row.
    pub jobs: usize,
    /// Cap on the mremap-heavy DPOR search, in seconds.
    pub mremap_seconds: f64,
    /// DPOR with wakeup trees (`Config::optimal`) instead of source-DPOR.
    pub optimal: bool,
}

fn rate(n: u64, secs: f64) -> f64 {
    n as f64 / secs.max(1e-9)
}

fn cfg(mode: Mode, budget: Option<Duration>, optimal: bool) -> Config {
    Config {
        mode,
        budget,
        optimal,
        seed: 1,
        stop_on_violation: true,
        ..Config::default()
    }
}

/// Run every non-daemon thread of fresh native instances in turn for `secs`. With `restore`,
/// each instance is a copy of one built first (as the explorer makes them), so the time is the
/// copy's, the threads' and the final checks'.
fn native_runs(m: &KernelModel, secs: f64, restore: bool) -> Phases {
    let template = m.build(Box::new(NativeBackend));
    let start = Instant::now();
    let mut n = Phases::default();
    let mark = || (Instant::now(), allocations());
    while n.executions == 0 || start.elapsed().as_secs_f64() < secs {
        let m0 = mark();
        let inst = match restore {
            true => m
                .restore(&template, Box::new(NativeBackend))
                .expect("the scenario model restores"),
            false => m.build(Box::new(NativeBackend)),
        };
        let m1 = mark();
        for t in 0..m.threads() {
            if !m.is_daemon(t) {
                m.run(&inst, t);
            }
        }
        let m2 = mark();
        std::hint::black_box(m.finish(&inst));
        n.add([m0, m1, m2, mark()]);
    }
    n
}

/// DPOR's executions per equivalence class: every execution over the complete ones (the
/// sleep-set-blocked ones are redundant).
fn per_class(out: &Outcome) -> String {
    let classes = out.executions - out.sleep_blocked;
    format!(
        "{} sleep-set blocked, {:.3} executions per class",
        out.sleep_blocked,
        out.executions as f64 / classes.max(1) as f64
    )
}

fn report_violation(out: &Outcome, ok: &mut bool) {
    if let Some(cx) = &out.counterexample {
        println!("  unexpected violation: {}", cx.violation);
        *ok = false;
    }
    if let Some(i) = &out.inconclusive {
        println!("  inconclusive: {:?}", i.limit);
    }
}

/// `mmcheck bench explore`.
pub fn bench_explore(o: &BenchOpts) -> ExitCode {
    let mut ok = true;
    if o.optimal {
        println!("DPOR with wakeup trees (--optimal)");
    }
    let m = Arc::new(KernelModel::new(catalogue::reference()));
    println!(
        "reference scenario: {} (3 threads, ~40 visible steps each)",
        m.scenario.doc
    );
    let budget = Some(Duration::from_secs_f64(o.seconds));
    // Half a second of random executions first, not counted: the first figure is otherwise
    // that of a cold process (caches, page faults, the allocator's first arenas).
    let warm = Duration::from_secs_f64(o.seconds.min(0.5));
    std::hint::black_box(explore(
        m.clone(),
        &cfg(Mode::Random, Some(warm), o.optimal),
    ));
    let mut random_exec_us = None;
    for (name, mode) in [
        ("random", Mode::Random),
        ("pct", Mode::Pct { depth: 3 }),
        ("dpor", Mode::Dpor),
    ] {
        let out = explore(m.clone(), &cfg(mode, budget, o.optimal));
        let secs = out.elapsed.as_secs_f64();
        // A complete DPOR search takes a fraction of a second: it is repeated for the seconds
        // asked, and the rate is of all the runs.
        let (mut runs, mut steps, mut execs, mut total) = (1u64, out.steps, out.executions, secs);
        while mode == Mode::Dpor && out.complete && total < o.seconds {
            let again = explore(m.clone(), &cfg(mode, budget, o.optimal));
            (runs, steps, execs) = (runs + 1, steps + again.steps, execs + again.executions);
            total += again.elapsed.as_secs_f64();
        }
        println!(
            "  {name}: {:.2}M steps/s, {:.1}k executions/s ({} executions, {} steps, {:.2} s{})",
            rate(steps, total) / 1e6,
            rate(execs, total) / 1e3,
            out.executions,
            out.steps,
            secs,
            if mode == Mode::Dpor {
                format!(
                    ", complete: {}, {}; rate over {runs} runs, {total:.2} s",
                    out.complete,
                    per_class(&out)
                )
            } else {
                String::new()
            }
        );
        if mode == Mode::Random && out.executions > 0 {
            random_exec_us = Some(secs * 1e6 / out.executions as f64);
        }
        report_violation(&out, &mut ok);
    }

    // The memory models' cost on the same scenario (crates/platform/src/memory.rs).
    let mut sc_dpor: Option<(u64, f64)> = None;
    let mut sc_random = None;
    let mut sc_random_steps_per_exec = 0.0;
    for memory in ["sc", "tso", "lkmm", "lkmm, loads in order"] {
        let mut s = catalogue::reference();
        let (model, loads) = memory
            .strip_suffix(", loads in order")
            .map_or((memory, "on"), |m| (m, "off"));
        s.protocol.set("memory", model).expect("a memory model");
        s.protocol
            .set("memory.load_reorder", loads)
            .expect("the load switch");
        let mm = Arc::new(KernelModel::new(s));
        let d = explore(mm.clone(), &cfg(Mode::Dpor, budget, o.optimal));
        report_violation(&d, &mut ok);
        let r = explore(mm.clone(), &cfg(Mode::Random, budget, o.optimal));
        report_violation(&r, &mut ok);
        let (dsecs, rsecs) = (d.elapsed.as_secs_f64(), r.elapsed.as_secs_f64());
        let steps = rate(r.steps, rsecs);
        let vs = |x: f64, base: Option<f64>| match base {
            Some(b) if b > 0.0 => format!(" ({:.2}x sc)", x / b),
            _ => String::new(),
        };
        println!(
            "  memory = {memory}: DPOR {} executions{} in {dsecs:.2} s{} (complete: {}); random \
             {:.2}M steps/s{}, {:.1} steps per execution",
            d.executions,
            vs(d.executions as f64, sc_dpor.map(|x| x.0 as f64)),
            vs(dsecs, sc_dpor.map(|x| x.1)),
            d.complete,
            steps / 1e6,
            vs(steps, sc_random),
            r.steps as f64 / r.executions.max(1) as f64,
        );
        if memory == "sc" {
            sc_dpor = Some((d.executions, dsecs));
            sc_random = Some(steps);
            sc_random_steps_per_exec = r.steps as f64 / r.executions.max(1) as f64;
        }
    }

    // The same scenario code on the native backend, one thread after the other.
    let nat = native_runs(&m, o.seconds, false);
    let native_us = nat.total().as_secs_f64() * 1e6 / nat.executions as f64;
    print!(
        "  native backend, threads in turn: {native_us:.1} µs per execution ({} executions)",
        nat.executions
    );
    match random_exec_us {
        Some(r) => println!(
            "; explorer (random): {r:.1} µs per execution, {:.1}x native",
            r / native_us
        ),
        None => println!(),
    }
    // The floor under any explorer: the scenario's own code, with the set-up restored.
    let nat = native_runs(&m, o.seconds, true);
    let per = |d: Duration, n: u64| d.as_secs_f64() * 1e6 / n.max(1) as f64;
    let floor_us = per(nat.total(), nat.executions);
    println!(
        "  native backend, set-up restored: {floor_us:.1} µs per execution ({} executions; \
         restore {:.1}, threads {:.1}, final checks {:.1}): {:.2}M steps/s if scheduling cost \
         nothing ({:.1} steps per execution under random)",
        nat.executions,
        per(nat.start, nat.executions),
        per(nat.run, nat.executions),
        per(nat.finish, nat.executions),
        sc_random_steps_per_exec / floor_us,
        sc_random_steps_per_exec
    );
    // The explorer's execution, phase by phase, against the native one.
    let ph = mmcheck_explore::random::phases(&m, o.seconds, 1, allocations);
    let (start, run, finish) = (
        per(ph.start, ph.executions),
        per(ph.run, ph.executions),
        per(ph.finish, ph.executions),
    );
    let steps = ph.steps as f64 / ph.executions.max(1) as f64;
    let threads = per(nat.run, nat.executions);
    let allocs = |a: [u64; 3], n: u64| a.map(|x| x as f64 / n.max(1) as f64);
    let (ea, na) = (
        allocs(ph.allocs, ph.executions),
        allocs(nat.allocs, nat.executions),
    );
    println!(
        "  explorer (random), phase by phase: restore and start {start:.1} µs, steps {run:.1} µs \
         ({:.0} ns per step), final checks {finish:.1} µs; the steps less the native threads' \
         code: {:.1} µs, {:.0} ns per step of scheduling",
        run * 1e3 / steps.max(1.0),
        run - threads,
        (run - threads) * 1e3 / steps.max(1.0),
    );
    println!(
        "  allocations per execution: explorer (random) restore and start {:.1}, steps {:.1}, \
         final checks {:.1}; native restore {:.1}, threads {:.1}, final checks {:.1}",
        ea[0], ea[1], ea[2], na[0], na[1], na[2]
    );

    // --jobs within one row.
    let row = parse_scenario("child-exit-vs-rmap-walk.mmt", JOBS_ROW).expect("the jobs row parses");
    let row = Arc::new(KernelModel::new(row));
    let c = cfg(Mode::Dpor, None, o.optimal);
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mut t1, mut tn) = (Vec::new(), Vec::new());
    let (mut one, mut many) = (Outcome::default(), Outcome::default());
    for _ in 0..JOBS_RUNS {
        one = explore(row.clone(), &c);
        report_violation(&one, &mut ok);
        t1.push(one.elapsed.as_secs_f64());
        many = explore_parallel(row.clone(), &c, o.jobs);
        report_violation(&many, &mut ok);
        tn.push(many.elapsed.as_secs_f64());
    }
    let (lo, hi) = (
        tn.iter().copied().fold(f64::INFINITY, f64::min),
        tn.iter().copied().fold(0.0, f64::max),
    );
    let (m1, mn) = (median(t1), median(tn));
    println!(
        "--jobs {} within one row ({}, DPOR to completion, median of {JOBS_RUNS} runs): 1 worker \
         {m1:.2} s ({} executions, complete: {}, {}), {} workers {mn:.2} s (range {lo:.2}-{hi:.2} \
         s; {} executions, complete: {}): speed-up {:.2}x",
        o.jobs,
        row.scenario.name,
        one.executions,
        one.complete,
        per_class(&one),
        o.jobs,
        many.executions,
        many.complete,
        m1 / mn.max(1e-9),
    );

    // The mremap-heavy scenario.
    let mh = parse_scenario("mremap-heavy.mmt", MREMAP_HEAVY).expect("the mremap scenario parses");
    let mh = Arc::new(KernelModel::new(mh));
    let out = explore_parallel(
        mh.clone(),
        &cfg(
            Mode::Dpor,
            Some(Duration::from_secs_f64(o.mremap_seconds)),
            o.optimal,
        ),
        o.jobs,
    );
    let secs = out.elapsed.as_secs_f64();
    println!(
        "mremap-heavy ({}; --jobs {}): DPOR {} in {secs:.1} s ({} executions, {}, {:.1}k \
         executions/s, {:.2}M steps/s)",
        mh.scenario.doc,
        o.jobs,
        if out.complete {
            "complete"
        } else {
            "NOT complete"
        },
        out.executions,
        per_class(&out),
        rate(out.executions, secs) / 1e3,
        rate(out.steps, secs) / 1e6,
    );
    report_violation(&out, &mut ok);
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
