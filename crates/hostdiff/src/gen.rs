//! Random case generation and normalization. A small shadow of the window (which page belongs to
//! which live mapping) keeps every generated op valid; [`normalize`] uses the same shadow to drop
//! ops that are invalid in context, which is what the shrinker relies on.

use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::case::{Backing, Case, Op, REGION_PAGES};

/// Pages per PMD range (2 MiB).
const PMD_PAGES: u64 = 512;

/// True if `[start, start + pages)` is non-empty and inside the window.
pub fn in_window(start: u64, pages: u64) -> bool {
    pages > 0 && start < REGION_PAGES && pages <= REGION_PAGES - start
}

/// Which pages of the window are mapped, and by which mmap.
#[derive(Clone, Debug)]
pub(crate) struct Shadow {
    /// Per page: 0 for a hole, else the id of the mmap that created it.
    owner: Vec<u32>,
    /// Backing of mmap `id` at index `id - 1`.
    backing: Vec<Backing>,
}

/// A maximal run of pages created by one mmap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    pub start: u64,
    pub pages: u64,
    pub backing: Backing,
}

impl Segment {
    fn end(&self) -> u64 {
        self.start + self.pages
    }
}

impl Shadow {
    pub(crate) fn new() -> Self {
        Shadow {
            owner: vec![0; REGION_PAGES as usize],
            backing: Vec::new(),
        }
    }

    pub(crate) fn is_mapped(&self, page: u64) -> bool {
        page < REGION_PAGES && self.owner[page as usize] != 0
    }

    fn range(start: u64, pages: u64) -> std::ops::Range<usize> {
        start as usize..(start + pages) as usize
    }

    fn is_free(&self, start: u64, pages: u64) -> bool {
        in_window(start, pages)
            && self.owner[Self::range(start, pages)]
                .iter()
                .all(|&o| o == 0)
    }

    fn all_mapped(&self, start: u64, pages: u64) -> bool {
        in_window(start, pages)
            && self.owner[Self::range(start, pages)]
                .iter()
                .all(|&o| o != 0)
    }

    /// Whether `op` is valid in the current state.
    pub(crate) fn valid(&self, op: &Op) -> bool {
        match *op {
            Op::Mmap { start, pages, .. } => self.is_free(start, pages),
            Op::Munmap { start, pages } => in_window(start, pages),
            Op::DontNeed { start, pages } => self.all_mapped(start, pages),
            Op::Store { page, .. } | Op::Load { page } => self.is_mapped(page),
        }
    }

    /// Apply a valid op to the shadow.
    pub(crate) fn apply(&mut self, op: &Op) {
        match *op {
            Op::Mmap {
                start,
                pages,
                backing,
            } => {
                self.backing.push(backing);
                let id = self.backing.len() as u32;
                self.owner[Self::range(start, pages)].fill(id);
            }
            Op::Munmap { start, pages } => self.owner[Self::range(start, pages)].fill(0),
            Op::DontNeed { .. } | Op::Store { .. } | Op::Load { .. } => {}
        }
    }

    /// Maximal runs of pages that share an mmap, in address order.
    pub(crate) fn segments(&self) -> Vec<Segment> {
        let mut out = Vec::new();
        let mut p = 0usize;
        while p < self.owner.len() {
            let id = self.owner[p];
            let start = p;
            while p < self.owner.len() && self.owner[p] == id {
                p += 1;
            }
            if id != 0 {
                out.push(Segment {
                    start: start as u64,
                    pages: (p - start) as u64,
                    backing: self.backing[id as usize - 1],
                });
            }
        }
        out
    }

    /// The maximal run of mapped pages (any mappings) containing `page`.
    fn mapped_run(&self, page: u64) -> (u64, u64) {
        let mut a = page;
        while a > 0 && self.is_mapped(a - 1) {
            a -= 1;
        }
        let mut b = page;
        while self.is_mapped(b) {
            b += 1;
        }
        (a, b)
    }
}

/// Drop every op that is invalid in context: Store/Load on an unmapped page, Mmap overlapping a
/// live mapping, DontNeed over a hole, zero-length or out-of-window ops.
pub fn normalize(case: &Case) -> Case {
    let mut sh = Shadow::new();
    let mut ops = Vec::with_capacity(case.ops.len());
    for op in &case.ops {
        if sh.valid(op) {
            sh.apply(op);
            ops.push(*op);
        }
    }
    Case { ops }
}

/// Index of the first op that is invalid in context, if any.
pub fn first_invalid(case: &Case) -> Option<usize> {
    let mut sh = Shadow::new();
    for (i, op) in case.ops.iter().enumerate() {
        if !sh.valid(op) {
            return Some(i);
        }
        sh.apply(op);
    }
    None
}

struct Gen {
    rng: ChaCha8Rng,
    sh: Shadow,
    /// Recently munmapped ranges, for re-mmap over freed space.
    freed: Vec<(u64, u64)>,
    /// Pages stored to (possibly since unmapped).
    written: Vec<u64>,
}

/// Generate case `case_index` of the run with `seed`. Same arguments, same case.
pub fn generate(seed: u64, case_index: u64) -> Case {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(case_index);
    let target: usize = rng.gen_range(5..=40);
    let mut g = Gen {
        rng,
        sh: Shadow::new(),
        freed: Vec::new(),
        written: Vec::new(),
    };
    let mut ops = Vec::with_capacity(target);
    let mut attempts = 0;
    while ops.len() < target && attempts < 10 * target {
        attempts += 1;
        if let Some(op) = g.pick() {
            if g.sh.valid(&op) {
                g.sh.apply(&op);
                ops.push(op);
            }
        }
    }
    Case { ops }
}

impl Gen {
    fn pick(&mut self) -> Option<Op> {
        let segs = self.sh.segments();
        if segs.is_empty() {
            return self.mmap(&segs);
        }
        match self.rng.gen_range(0..100) {
            0..=19 => self.mmap(&segs),
            20..=47 => Some(self.store(&segs)),
            48..=67 => Some(self.load(&segs)),
            68..=79 => Some(self.munmap(&segs)),
            _ => Some(self.dontneed(&segs)),
        }
    }

    fn seg<'a>(&mut self, segs: &'a [Segment]) -> &'a Segment {
        &segs[self.rng.gen_range(0..segs.len())]
    }

    fn mmap(&mut self, segs: &[Segment]) -> Option<Op> {
        let backing = if self.rng.gen_bool(0.5) {
            Backing::AnonPrivate
        } else {
            Backing::ShmemShared
        };
        for attempt in 0..12 {
            let mut pages = if attempt < 8 && self.rng.gen_bool(0.2) {
                self.rng.gen_range(PMD_PAGES..=2 * PMD_PAGES)
            } else if attempt < 8 {
                self.rng.gen_range(1..=64)
            } else {
                self.rng.gen_range(1..=8)
            };
            let start = match self.rng.gen_range(0..100) {
                0..=24 => self.rng.gen_range(0..REGION_PAGES / PMD_PAGES) * PMD_PAGES,
                25..=49 if !segs.is_empty() => {
                    let s = *self.seg(segs);
                    if self.rng.gen_bool(0.5) {
                        s.end()
                    } else {
                        match s.start.checked_sub(pages) {
                            Some(x) => x,
                            None => continue,
                        }
                    }
                }
                50..=64 if !self.freed.is_empty() => {
                    let (fs, fp) = self.freed[self.rng.gen_range(0..self.freed.len())];
                    pages = pages.min(fp);
                    fs
                }
                _ => self
                    .rng
                    .gen_range(0..=REGION_PAGES - pages.min(REGION_PAGES)),
            };
            if self.sh.is_free(start, pages) {
                return Some(Op::Mmap {
                    start,
                    pages,
                    backing,
                });
            }
        }
        None
    }

    fn value(&mut self) -> u64 {
        match self.rng.gen_range(0..100) {
            0..=9 => 0,
            10..=59 => self.rng.gen_range(1..=1000),
            _ => self.rng.gen_range(1..=u64::MAX),
        }
    }

    fn page_in(&mut self, s: &Segment) -> u64 {
        s.start + self.rng.gen_range(0..s.pages)
    }

    fn store(&mut self, segs: &[Segment]) -> Op {
        let s = *self.seg(segs);
        let page = self.page_in(&s);
        let value = self.value();
        self.written.push(page);
        Op::Store { page, value }
    }

    fn load(&mut self, segs: &[Segment]) -> Op {
        if self.rng.gen_bool(0.5) {
            let live: Vec<u64> = self
                .written
                .iter()
                .copied()
                .filter(|&p| self.sh.is_mapped(p))
                .collect();
            if !live.is_empty() {
                let page = live[self.rng.gen_range(0..live.len())];
                return Op::Load { page };
            }
        }
        let s = *self.seg(segs);
        Op::Load {
            page: self.page_in(&s),
        }
    }

    fn munmap(&mut self, segs: &[Segment]) -> Op {
        let s = *self.seg(segs);
        let (start, pages) = match self.rng.gen_range(0..100) {
            0..=44 => (s.start, s.pages),
            45..=79 if s.pages >= 2 => match self.rng.gen_range(0..3) {
                0 => (s.start, self.rng.gen_range(1..s.pages)),
                1 => {
                    let k = self.rng.gen_range(1..s.pages);
                    (s.start + k, s.pages - k)
                }
                _ => {
                    let a = self.rng.gen_range(s.start..s.end());
                    let b = self.rng.gen_range(a + 1..=s.end());
                    (a, b - a)
                }
            },
            _ => {
                let t = *self.seg(segs);
                let (lo, hi) = if t.start < s.start { (t, s) } else { (s, t) };
                let a = self.rng.gen_range(lo.start..lo.end());
                let b = self
                    .rng
                    .gen_range(hi.start.max(a) + 1..=hi.end().max(a + 1));
                (a, b - a)
            }
        };
        self.freed.push((start, pages));
        if self.freed.len() > 8 {
            self.freed.remove(0);
        }
        Op::Munmap { start, pages }
    }

    fn dontneed(&mut self, segs: &[Segment]) -> Op {
        let s = *self.seg(segs);
        let p = self.page_in(&s);
        let (a, b) = self.sh.mapped_run(p);
        let first_block = a.div_ceil(PMD_PAGES);
        let blocks = (b / PMD_PAGES).saturating_sub(first_block);
        let r = self.rng.gen_range(0..100);
        let (start, pages) = if r < 30 && blocks > 0 {
            let k = first_block + self.rng.gen_range(0..blocks);
            (k * PMD_PAGES, PMD_PAGES)
        } else if r < 60 {
            (a, b - a)
        } else {
            let x = self.rng.gen_range(a..b);
            let y = self.rng.gen_range(x + 1..=b);
            (x, y - x)
        };
        Op::DontNeed { start, pages }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic() {
        for i in 0..50 {
            assert_eq!(generate(7, i), generate(7, i));
        }
        assert_ne!(generate(7, 0), generate(8, 0));
        assert_ne!(generate(7, 0), generate(7, 1));
    }

    #[test]
    fn generated_cases_are_valid() {
        let mut kinds = [0usize; 5];
        let (mut aligned_dn, mut big) = (0, 0);
        for i in 0..500 {
            let c = generate(1, i);
            assert!(
                (5..=40).contains(&c.ops.len()),
                "case {i}: {} ops",
                c.ops.len()
            );
            assert_eq!(normalize(&c), c, "case {i} not normal");
            assert_eq!(first_invalid(&c), None);
            for op in &c.ops {
                match *op {
                    Op::Mmap { pages, .. } => {
                        kinds[0] += 1;
                        big += usize::from(pages >= PMD_PAGES);
                    }
                    Op::Munmap { .. } => kinds[1] += 1,
                    Op::DontNeed { start, pages } => {
                        kinds[2] += 1;
                        aligned_dn += usize::from(start % PMD_PAGES == 0 && pages >= PMD_PAGES);
                    }
                    Op::Store { .. } => kinds[3] += 1,
                    Op::Load { .. } => kinds[4] += 1,
                }
            }
        }
        assert!(kinds.iter().all(|&k| k > 100), "{kinds:?}");
        assert!(big > 50, "big mmaps: {big}");
        assert!(aligned_dn > 20, "aligned DontNeed: {aligned_dn}");
    }

    #[test]
    fn normalize_drops_invalid_ops() {
        let c = Case {
            ops: vec![
                Op::Load { page: 3 },
                Op::Mmap {
                    start: 0,
                    pages: 4,
                    backing: Backing::AnonPrivate,
                },
                Op::Mmap {
                    start: 3,
                    pages: 4,
                    backing: Backing::AnonPrivate,
                },
                Op::Store { page: 3, value: 1 },
                Op::DontNeed { start: 2, pages: 3 },
                Op::DontNeed { start: 0, pages: 0 },
                Op::Munmap {
                    start: REGION_PAGES,
                    pages: 1,
                },
                Op::Munmap {
                    start: 1,
                    pages: u64::MAX,
                },
                Op::Munmap { start: 1, pages: 1 },
                Op::Load { page: 1 },
                Op::Load { page: u64::MAX },
                Op::Mmap {
                    start: 1,
                    pages: 1,
                    backing: Backing::ShmemShared,
                },
            ],
        };
        let n = normalize(&c);
        assert_eq!(
            n.ops,
            vec![
                Op::Mmap {
                    start: 0,
                    pages: 4,
                    backing: Backing::AnonPrivate
                },
                Op::Store { page: 3, value: 1 },
                Op::Munmap { start: 1, pages: 1 },
                Op::Mmap {
                    start: 1,
                    pages: 1,
                    backing: Backing::ShmemShared
                },
            ]
        );
        assert_eq!(first_invalid(&c), Some(0));
        assert_eq!(normalize(&n), n);
    }
}
