//! Comparing two runs of a case, and the differential-test driver: generate cases, run them on
//! two runners (host and model), stop at the first divergence and shrink it.

use std::fmt;

use crate::case::{Case, CaseRunner, Observation, Op};
use crate::gen::generate;
use crate::host::HostFeatures;
use crate::shrink::shrink;

/// Which observation fields to compare (true = compare). Loads are always compared.
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

/// Outcome of [`run_diff`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiffReport {
    /// Cases run (including ones that errored and the diverging one).
    pub total: u64,
    /// Cases on which both runners agreed.
    pub agreed: u64,
    /// The first diverging case: its index, the shrunk case and the divergence on it.
    pub first: Option<(u64, Case, Divergence)>,
    /// Infrastructure failures, one line per failed run.
    pub errors: Vec<String>,
}

impl DiffReport {
    /// True if no case diverged and no run failed.
    pub fn ok(&self) -> bool {
        self.first.is_none() && self.errors.is_empty()
    }
}

impl fmt::Display for DiffReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.first {
            None => write!(f, "{}/{} agree", self.agreed, self.total)?,
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
        for e in &self.errors {
            write!(f, "\nerror: {e}")?;
        }
        Ok(())
    }
}

/// Run both sides; `Ok(None)` if they agree.
fn diverges(
    case: &Case,
    host: &dyn CaseRunner,
    model: &dyn CaseRunner,
    mask: &Mask,
) -> Result<Option<Divergence>, String> {
    let a = host
        .run(case)
        .map_err(|e| format!("{}: {e}", host.name()))?;
    let b = model
        .run(case)
        .map_err(|e| format!("{}: {e}", model.name()))?;
    Ok(first_divergence(case, &a, &b, mask).map(|d| d.with_names(host.name(), model.name())))
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
    let mut report = DiffReport::default();
    for index in 0..cases {
        on_progress(index);
        let case = generate(seed, index);
        report.total += 1;
        match diverges(&case, host, model, mask) {
            Err(e) => report.errors.push(format!("case {index}: {e}")),
            Ok(None) => report.agreed += 1,
            Ok(Some(d)) => {
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
