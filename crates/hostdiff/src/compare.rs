//! Comparing two runs of a case, and the differential-test driver: generate cases, run them on
//! two runners (host and model), stop at the first divergence and shrink it. A divergence seen on
//! a host run that the host reports as disturbed (a THP allocation failed, khugepaged was active)
//! is retried; a case that diverges only on disturbed runs is skipped with the reason.

use std::collections::BTreeMap;
use std::fmt;

use crate::case::{Case, CaseRunner, Observation, Op};

use crate::host::HostFeatures;
use crate::shrink::shrink;

/// Which observation fields to compare (true = compare). Loads and errnos are always compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mask {
    pub vm_pte: bool,
    pub rss: bool,
    pub anon_huge: bool,
    pub present: bool,
}

impl Mask {
    /// Compare everything.
    pub const ALL: Mask = Mask {
        vm_pte: true,
        rss: true,
        anon_huge: true,
        present: true,
    };

    /// Compare loads only.
    pub const LOADS_ONLY: Mask = Mask {
        vm_pte: false,
        rss: false,
        anon_huge: false,
        present: false,
    };
}

impl From<HostFeatures> for Mask {
    fn from(f: HostFeatures) -> Self {
        Mask {
            vm_pte: f.vm_pte,
            rss: f.smaps_rollup,
            anon_huge: f.smaps_rollup,
            present: f.pagemap,
        }
    }
}

/// The observation field that differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// The two runs produced different numbers of observations.
    Count,
    Load,
    /// The errno of a Collapse.
    Errno,
    VmPte,
    Rss,
    AnonHuge,
    Present,
}

/// The two differing values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Values {
    Count(usize, usize),
    Load(Option<u64>, Option<u64>),
    /// Errnos (0 for success).
    Errno(i32, i32),
    /// KiB deltas.
    Kb(i64, i64),
    /// Up to [`MAX_PAGES_LISTED`] differing pages as (page, present in a, present in b), and
    /// the total number of differing pages.
    Present {
        pages: Vec<(u64, bool, bool)>,
        total: u64,
    },
}

/// How many differing pages a present-bit divergence lists.
pub const MAX_PAGES_LISTED: usize = 8;

/// The first point where two runs of a case differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// Index of the op after which the observations differ.
    pub op_index: usize,
    /// That op (`None` for a count mismatch past the end of the case).
    pub op: Option<Op>,
    pub field: Field,
    pub values: Values,
    /// Names of the two sides, "host" and "model" unless set otherwise.
    pub names: (String, String),
}

impl Divergence {
    /// Rename the two sides in the report.
    pub fn with_names(mut self, a: &str, b: &str) -> Self {
        self.names = (a.to_string(), b.to_string());
        self
    }
}

fn present_bit(words: &[u64], page: u64) -> bool {
    words
        .get((page / 64) as usize)
        .is_some_and(|w| w >> (page % 64) & 1 == 1)
}

/// First divergence between runs `a` (host) and `b` (model) of `case`, looking only at the
/// fields `mask` enables. Missing present words count as zero.
pub fn first_divergence(
    case: &Case,
    a: &[Observation],
    b: &[Observation],
    mask: &Mask,
) -> Option<Divergence> {
    let div = |i: usize, field, values| Divergence {
        op_index: i,
        op: case.ops.get(i).copied(),
        field,
        values,
        names: ("host".to_string(), "model".to_string()),
    };
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if x.load != y.load {
            return Some(div(i, Field::Load, Values::Load(x.load, y.load)));
        }
        if x.errno != y.errno {
            return Some(div(i, Field::Errno, Values::Errno(x.errno, y.errno)));
        }
        let kb = [
            (mask.vm_pte, Field::VmPte, x.vm_pte_kb, y.vm_pte_kb),
            (mask.rss, Field::Rss, x.rss_kb, y.rss_kb),
            (
                mask.anon_huge,
                Field::AnonHuge,
                x.anon_huge_kb,
                y.anon_huge_kb,
            ),
        ];
        for (on, field, u, v) in kb {
            if on && u != v {
                return Some(div(i, field, Values::Kb(u, v)));
            }
        }
        if mask.present {
            let words = x.present.len().max(y.present.len()) as u64;
            let mut pages = Vec::new();
            let mut total = 0;
            for p in 0..words * 64 {
                let (u, v) = (present_bit(&x.present, p), present_bit(&y.present, p));
                if u != v {
                    total += 1;
                    if pages.len() < MAX_PAGES_LISTED {
                        pages.push((p, u, v));
                    }
                }
            }
            if total > 0 {
                return Some(div(i, Field::Present, Values::Present { pages, total }));
            }
        }
    }
    if a.len() != b.len() {
        let i = a.len().min(b.len());
        return Some(div(i, Field::Count, Values::Count(a.len(), b.len())));
    }
    None
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (na, nb) = (&self.names.0, &self.names.1);
        write!(f, "op {}", self.op_index)?;
        if let Some(op) = &self.op {
            write!(f, " ({op:?})")?;
        }
        write!(f, ": ")?;
        match &self.values {
            Values::Count(x, y) => write!(f, "observation count {na}={x} {nb}={y}"),
            Values::Load(x, y) => write!(f, "load {na}={x:?} {nb}={y:?}"),
            Values::Errno(x, y) => {
                write!(f, "errno {na}={} {nb}={}", errno_name(*x), errno_name(*y))
            }
            Values::Kb(x, y) => {
                let name = match self.field {
                    Field::VmPte => "VmPTE",
                    Field::Rss => "Rss",
                    _ => "AnonHugePages",
                };
                write!(f, "{name} {na}={x} kB {nb}={y} kB")
            }
            Values::Present { pages, total } => {
                write!(f, "present bits differ on {total} page(s):")?;
                for (p, x, y) in pages {
                    write!(f, " page {p} {na}={} {nb}={};", u8::from(*x), u8::from(*y))?;
                }
                if *total as usize > pages.len() {
                    write!(f, " ...")?;
                }
                Ok(())
            }
        }
    }
}

/// `"0"` or the errno's symbolic name (x86-64 numbers).
fn errno_name(e: i32) -> String {
    match e {
        0 => "0".to_string(),
        11 => "EAGAIN".to_string(),
        12 => "ENOMEM".to_string(),
        16 => "EBUSY".to_string(),
        22 => "EINVAL".to_string(),
        _ => format!("errno {e}"),
    }
}

/// How often the host runs were disturbed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoiseStats {
    /// Host runs of generated cases (not counting the shrinker's).
    pub host_runs: u64,
    /// Host runs that reported noise.
    pub noisy_runs: u64,
    /// Per noise counter, the number of runs in which it changed.
    pub by_counter: BTreeMap<String, u64>,
    /// Host reruns because a divergence came with noise.
    pub reruns: u64,
}

impl NoiseStats {
    fn note(&mut self, noise: &Option<String>) {
        self.host_runs += 1;
        if let Some(n) = noise {
            self.noisy_runs += 1;
            for part in n.split(", ") {
                let name = part.split(" +").next().unwrap_or(part);
                *self.by_counter.entry(name.to_string()).or_default() += 1;
            }
        }
    }
}

/// Outcome of [`run_diff`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiffReport {
    /// Cases run (including ones that errored, were skipped, and the diverging one).
    pub total: u64,
    /// Cases on which both runners agreed.
    pub agreed: u64,
    /// The first diverging case: its index, the shrunk case and the divergence on it.
    pub first: Option<(u64, Case, Divergence)>,
    /// Infrastructure failures, one line per failed run.
    pub errors: Vec<String>,
    /// Cases that diverged only on host runs disturbed by host-wide noise, with the reason.
    pub skipped: Vec<(u64, String)>,
    /// Host noise over the run.
    pub noise: NoiseStats,
}

impl DiffReport {
    /// True if no case diverged and no run failed (skipped cases are fine).
    pub fn ok(&self) -> bool {
        self.first.is_none() && self.errors.is_empty()
    }
}

impl fmt::Display for DiffReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.first {
            None => {
                write!(f, "{}/{} agree", self.agreed, self.total)?;
                if !self.skipped.is_empty() {
                    write!(f, ", {} skipped", self.skipped.len())?;
                }
            }
            Some((index, case, div)) => {
                writeln!(
                    f,
                    "case {index} diverges ({} agreed before it); shrunk to {} ops:",
                    self.agreed,
                    case.ops.len()
                )?;
                for (i, op) in case.ops.iter().enumerate() {
                    writeln!(f, "  {i}: {op:?}")?;
                }
                write!(f, "{div}")?;
            }
        }
        for (i, why) in &self.skipped {
            write!(f, "\nskipped case {i}: {why}")?;
        }
        let n = &self.noise;
        if n.noisy_runs > 0 {
            write!(
                f,
                "\nhost noise in {} of {} host run(s) (",
                n.noisy_runs, n.host_runs
            )?;
            for (k, (name, count)) in n.by_counter.iter().enumerate() {
                write!(f, "{}{name} in {count}", if k > 0 { ", " } else { "" })?;
            }
            write!(f, "); {} rerun(s)", n.reruns)?;
        }
        for e in &self.errors {
            write!(f, "\nerror: {e}")?;
        }
        Ok(())
    }
}

/// What comparing one case gave.
enum Verdict {
    Agree,
    Diverge(Divergence),
    /// Diverged on every host run, and every such run was disturbed.
    Skip(String),
}

/// Host runs of a case whose divergence comes with noise, before it is skipped.
const HOST_TRIES: usize = 4;

/// Run both sides, rerunning the host while a divergence comes with host noise.
fn judge(
    case: &Case,
    host: &dyn CaseRunner,
    model: &dyn CaseRunner,
    mask: &Mask,
    stats: &mut NoiseStats,
) -> Result<Verdict, String> {
    let mut b = None;
    let mut last = None;
    for attempt in 0..HOST_TRIES {
        if attempt > 0 {
            stats.reruns += 1;
        }
        let (a, noise) = host
            .run_noted(case)
            .map_err(|e| format!("{}: {e}", host.name()))?;
        stats.note(&noise);
        if b.is_none() {
            b = Some(
                model
                    .run(case)
                    .map_err(|e| format!("{}: {e}", model.name()))?,
            );
        }
        let b = b.as_deref().unwrap_or_default();
        let Some(d) = first_divergence(case, &a, b, mask) else {
            return Ok(Verdict::Agree);
        };
        let d = d.with_names(host.name(), model.name());
        match noise {
            None => return Ok(Verdict::Diverge(d)),
            Some(n) => last = Some(format!("{d} [host noise: {n}]")),
        }
    }
    Ok(Verdict::Skip(format!(
        "diverges only on disturbed host runs ({HOST_TRIES} tries); last: {}",
        last.unwrap_or_default()
    )))
}

/// Run both sides; `Ok(None)` if they agree (or diverge only on disturbed host runs).
fn diverges(
    case: &Case,
    host: &dyn CaseRunner,
    model: &dyn CaseRunner,
    mask: &Mask,
) -> Result<Option<Divergence>, String> {
    Ok(
        match judge(case, host, model, mask, &mut NoiseStats::default())? {
            Verdict::Diverge(d) => Some(d),
            Verdict::Agree | Verdict::Skip(_) => None,
        },
    )
}

/// Run `cases` generated cases (indices 0..cases with `seed`) on `host` and `model`, comparing
/// the fields in `mask`. Stops at the first divergence, which is shrunk (keeping the same
/// diverging field) with both runners. `on_progress` gets each case index before it runs.
pub fn run_diff(
    cases: u64,
    seed: u64,
    host: &dyn CaseRunner,
    model: &dyn CaseRunner,
    mask: &Mask,
    on_progress: &mut dyn FnMut(u64),
) -> DiffReport {
    run_diff_mix(
        cases,
        seed,
        crate::gen::OpMix::Basic,
        host,
        model,
        mask,
        on_progress,
    )
}

/// [`run_diff`] over cases drawn from `mix`.
#[allow(clippy::too_many_arguments)]
pub fn run_diff_mix(
    cases: u64,
    seed: u64,
    mix: crate::gen::OpMix,
    host: &dyn CaseRunner,
    model: &dyn CaseRunner,
    mask: &Mask,
    on_progress: &mut dyn FnMut(u64),
) -> DiffReport {
    let mut report = DiffReport::default();
    for index in 0..cases {
        on_progress(index);
        let case = crate::gen::generate_mix(seed, index, mix);
        report.total += 1;
        match judge(&case, host, model, mask, &mut report.noise) {
            Err(e) => report.errors.push(format!("case {index}: {e}")),
            Ok(Verdict::Agree) => report.agreed += 1,
            Ok(Verdict::Skip(why)) => report.skipped.push((index, why)),
            Ok(Verdict::Diverge(d)) => {
                let field = d.field;
                let shrunk = shrink(
                    &case,
                    &mut |c| matches!(diverges(c, host, model, mask), Ok(Some(d)) if d.field == field),
                );
                let div = match diverges(&shrunk, host, model, mask) {
                    Ok(Some(d)) => d,
                    _ => d,
                };
                report.first = Some((index, shrunk, div));
                break;
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::Backing;

    fn obs(load: Option<u64>, pte: i64, present: &[u64]) -> Observation {
        Observation {
            load,
            vm_pte_kb: pte,
            present: present.to_vec(),
            ..Observation::default()
        }
    }

    fn case() -> Case {
        Case {
            ops: vec![
                Op::Mmap {
                    start: 512,
                    pages: 512,
                    backing: Backing::AnonPrivate,
                },
                Op::Store {
                    page: 512,
                    value: 1,
                },
                Op::DontNeed {
                    start: 512,
                    pages: 512,
                },
            ],
        }
    }

    #[test]
    fn finds_first_field_and_masks() {
        let c = case();
        let a = vec![
            obs(None, 0, &[]),
            obs(None, 12, &[0, 0, 0, 0, 0, 0, 0, 0, 1]),
            obs(None, 8, &[]),
        ];
        let mut b = a.clone();
        assert_eq!(first_divergence(&c, &a, &b, &Mask::ALL), None);
        b[2].vm_pte_kb = 12;
        let d = first_divergence(&c, &a, &b, &Mask::ALL).expect("diverges");
        assert_eq!((d.op_index, d.field), (2, Field::VmPte));
        assert_eq!(d.values, Values::Kb(8, 12));
        assert_eq!(
            d.to_string(),
            "op 2 (DontNeed { start: 512, pages: 512 }): VmPTE host=8 kB model=12 kB"
        );
        let m = Mask {
            vm_pte: false,
            ..Mask::ALL
        };
        assert_eq!(first_divergence(&c, &a, &b, &m), None);

        // Present bits: empty vec counts as all zero.
        b = a.clone();
        b[1].present = vec![];
        let d = first_divergence(&c, &a, &b, &Mask::ALL).expect("diverges");
        assert_eq!(d.field, Field::Present);
        assert_eq!(
            d.values,
            Values::Present {
                pages: vec![(512, true, false)],
                total: 1
            }
        );
        assert!(d.to_string().contains("page 512 host=1 model=0"), "{d}");
        assert_eq!(first_divergence(&c, &a, &b, &Mask::LOADS_ONLY), None);

        // Loads always compared; count mismatch reported after the common prefix.
        b = a.clone();
        b[0].load = Some(0);
        assert_eq!(
            first_divergence(&c, &a, &b, &Mask::LOADS_ONLY).map(|d| d.field),
            Some(Field::Load)
        );
        let d = first_divergence(&c, &a, &a[..2], &Mask::ALL).expect("diverges");
        assert_eq!((d.op_index, d.field), (2, Field::Count));
    }

    /// A fake runner: VmPTE goes to 4 after any DontNeed of >= 512 pages, 0 otherwise.
    struct Fake(bool);

    impl CaseRunner for Fake {
        fn name(&self) -> &str {
            if self.0 {
                "fake-host"
            } else {
                "fake-model"
            }
        }
        fn run(&self, case: &Case) -> Result<Vec<Observation>, String> {
            let mut pte = 0;
            Ok(case
                .ops
                .iter()
                .map(|op| {
                    if self.0 && matches!(op, Op::DontNeed { pages, .. } if *pages >= 512) {
                        pte = 4;
                    }
                    obs(None, pte, &[])
                })
                .collect())
        }
    }

    /// A host whose first `noisy` runs report noise and see VmPTE 4 instead of 0.
    struct Noisy {
        runs: std::cell::Cell<u32>,
        noisy: u32,
    }

    impl CaseRunner for Noisy {
        fn name(&self) -> &str {
            "noisy-host"
        }
        fn run(&self, case: &Case) -> Result<Vec<Observation>, String> {
            self.run_noted(case).map(|r| r.0)
        }
        fn run_noted(&self, case: &Case) -> Result<(Vec<Observation>, Option<String>), String> {
            let n = self.runs.get();
            self.runs.set(n + 1);
            let noisy = n < self.noisy;
            let obs = case
                .ops
                .iter()
                .map(|_| obs(None, if noisy { 4 } else { 0 }, &[]))
                .collect();
            Ok((obs, noisy.then(|| "thp_fault_fallback +1".to_string())))
        }
    }

    #[test]
    fn noisy_host_runs_are_retried_then_skipped() {
        let host = Noisy {
            runs: 0.into(),
            noisy: 1,
        };
        let r = run_diff(5, 1, &host, &Fake(false), &Mask::ALL, &mut |_| {});
        assert!(r.ok(), "{r}");
        assert_eq!((r.agreed, r.noise.reruns, r.noise.noisy_runs), (5, 1, 1));
        assert_eq!(r.noise.host_runs, 6);
        assert!(
            r.to_string().starts_with("5/5 agree\nhost noise in 1 of 6"),
            "{r}"
        );

        let host = Noisy {
            runs: 0.into(),
            noisy: u32::MAX,
        };
        let r = run_diff(3, 1, &host, &Fake(false), &Mask::ALL, &mut |_| {});
        assert!(r.ok(), "{r}");
        assert_eq!((r.agreed, r.skipped.len()), (0, 3));
        let text = r.to_string();
        assert!(
            text.starts_with("0/3 agree, 3 skipped\nskipped case 0: "),
            "{text}"
        );
        assert!(text.contains("thp_fault_fallback in 12"), "{text}");
    }

    #[test]
    fn errno_is_always_compared() {
        let c = Case {
            ops: vec![Op::Collapse {
                start: 0,
                pages: 512,
            }],
        };
        let a = vec![obs(None, 0, &[])];
        let mut b = a.clone();
        b[0].errno = 16;
        let d = first_divergence(&c, &a, &b, &Mask::LOADS_ONLY).expect("diverges");
        assert_eq!(
            (d.field, d.values.clone()),
            (Field::Errno, Values::Errno(0, 16))
        );
        assert!(d.to_string().ends_with("errno host=0 model=EBUSY"), "{d}");
    }

    #[test]
    fn driver_agrees_and_shrinks() {
        let mut seen = Vec::new();
        let r = run_diff(20, 1, &Fake(false), &Fake(false), &Mask::ALL, &mut |i| {
            seen.push(i)
        });
        assert_eq!((r.total, r.agreed), (20, 20));
        assert_eq!(seen, (0..20).collect::<Vec<_>>());
        assert_eq!(r.to_string(), "20/20 agree");

        let r = run_diff(500, 1, &Fake(true), &Fake(false), &Mask::ALL, &mut |_| {});
        let (_, shrunk, div) = r.first.clone().expect("diverges");
        assert_eq!(div.field, Field::VmPte);
        assert_eq!(
            shrunk.ops,
            vec![
                Op::Mmap {
                    start: 0,
                    pages: 512,
                    backing: Backing::AnonPrivate
                },
                Op::DontNeed {
                    start: 0,
                    pages: 512
                }
            ]
        );
        let text = r.to_string();
        assert!(
            text.contains("  1: DontNeed { start: 0, pages: 512 }"),
            "{text}"
        );
        assert!(
            text.ends_with("VmPTE fake-host=4 kB fake-model=0 kB"),
            "{text}"
        );
    }
}
