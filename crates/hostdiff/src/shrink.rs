//! Delta-debugging shrinker: removes chunks of ops, then single ops, then shrinks op sizes,
//! starts and values toward small, keeping every candidate normalized and failing. Candidates
//! must strictly decrease a well-founded size, so shrinking always ends; it is deterministic.

use crate::case::{Backing, Case, Op};
use crate::gen::{backing_after, normalize};

/// Upper bound on predicate calls, to bound time when each call runs a host case.
const MAX_TRIES: usize = 5000;

/// Lexicographic size: op count, Mremap count, total pages, total values, total starts, shmem
/// count.
fn size(case: &Case) -> (usize, usize, u128, u128, u128, usize) {
    let (mut pages, mut values, mut starts, mut shmem) = (0u128, 0u128, 0u128, 0usize);
    let mremaps = case
        .ops
        .iter()
        .filter(|op| matches!(op, Op::Mremap { .. }))
        .count();
    for op in &case.ops {
        match *op {
            Op::Mmap {
                start,
                pages: p,
                backing,
            } => {
                pages += u128::from(p);
                starts += u128::from(start);
                shmem += usize::from(backing != Backing::AnonPrivate);
            }
            Op::Munmap { start, pages: p }
            | Op::DontNeed { start, pages: p }
            | Op::Free { start, pages: p }
            | Op::Pageout { start, pages: p }
            | Op::Hugepage { start, pages: p }
            | Op::Mprotect {
                start, pages: p, ..
            }
            | Op::Collapse { start, pages: p } => {
                pages += u128::from(p);
                starts += u128::from(start);
            }
            Op::Mremap {
                start,
                pages: p,
                new_start,
            } => {
                pages += u128::from(p);
                starts += u128::from(start) + u128::from(new_start);
            }
            Op::Store { page, value } | Op::ChildStore { page, value } => {
                values += u128::from(value);
                starts += u128::from(page);
            }
            Op::Load { page } | Op::ChildLoad { page } => starts += u128::from(page),
            Op::Fork | Op::ChildExit => {}
            Op::PunchHole {
                offset, pages: p, ..
            } => {
                pages += u128::from(p);
                starts += u128::from(offset);
            }
            Op::Truncate { pages: p, .. } => starts += u128::from(p),
        }
    }
    (case.ops.len(), mremaps, pages, values, starts, shmem)
}

struct Shrinker<'a> {
    cur: Case,
    still_fails: &'a mut dyn FnMut(&Case) -> bool,
    tries: usize,
}

impl Shrinker<'_> {
    /// Adopt `ops` (after normalizing) if it is smaller and still fails.
    fn try_ops(&mut self, ops: Vec<Op>) -> bool {
        let cand = normalize(&Case { ops });
        if self.tries >= MAX_TRIES || size(&cand) >= size(&self.cur) {
            return false;
        }
        self.tries += 1;
        if (self.still_fails)(&cand) {
            self.cur = cand;
            true
        } else {
            false
        }
    }

    /// Remove chunks of ops, halving the chunk size down to single ops.
    fn remove_chunks(&mut self) -> bool {
        let mut progress = false;
        let mut chunk = self.cur.ops.len().div_ceil(2).max(1);
        loop {
            let mut i = 0;
            while i < self.cur.ops.len() {
                let mut ops = self.cur.ops.clone();
                let end = (i + chunk).min(ops.len());
                ops.drain(i..end);
                if self.try_ops(ops) {
                    progress = true;
                } else {
                    i += chunk;
                }
            }
            if chunk == 1 {
                return progress;
            }
            chunk = chunk.div_ceil(2);
        }
    }

    /// Try smaller variants of each op.
    fn simplify_ops(&mut self) -> bool {
        let mut progress = false;
        let mut i = 0;
        while i < self.cur.ops.len() {
            let mut changed = false;
            for v in variants(&self.cur.ops[i]) {
                let mut ops = self.cur.ops.clone();
                ops[i] = v;
                if self.try_ops(ops) {
                    changed = true;
                    progress = true;
                    break;
                }
            }
            if !changed {
                i += 1;
            }
        }
        progress
    }

    /// Shift the whole case toward page 0 (by whole 2 MiB ranges, then by pages).
    fn shift_down(&mut self) -> bool {
        let min = self.cur.ops.iter().map(op_start).min().unwrap_or(0);
        let mut progress = false;
        for by in [min / 512 * 512, min, 1] {
            if by == 0 || by > min {
                continue;
            }
            let ops = self.cur.ops.iter().map(|op| shift(op, by)).collect();
            if self.try_ops(ops) {
                progress = true;
                break;
            }
        }
        progress
    }
}

impl Shrinker<'_> {
    /// Replace an Mremap by an Mmap of its destination, and two Mmaps of adjacent ranges with the
    /// same backing by one.
    fn restructure(&mut self) -> bool {
        let mut progress = false;
        let mut i = 0;
        while i < self.cur.ops.len() {
            if let Op::Mremap {
                start,
                pages,
                new_start,
            } = self.cur.ops[i]
            {
                if let Some(backing) = backing_after(&self.cur.ops[..i], start) {
                    let mut ops = self.cur.ops.clone();
                    ops[i] = Op::Mmap {
                        start: new_start,
                        pages,
                        backing,
                    };
                    if self.try_ops(ops) {
                        progress = true;
                        continue;
                    }
                }
            }
            i += 1;
        }
        let mut i = 0;
        while i < self.cur.ops.len() {
            let mut merged = false;
            for j in i + 1..self.cur.ops.len() {
                let (
                    Op::Mmap {
                        start: a,
                        pages: n,
                        backing: x,
                    },
                    Op::Mmap {
                        start: b,
                        pages: m,
                        backing: y,
                    },
                ) = (self.cur.ops[i], self.cur.ops[j])
                else {
                    continue;
                };
                if x != y || (a + n != b && b + m != a) {
                    continue;
                }
                let mut ops = self.cur.ops.clone();
                ops[i] = Op::Mmap {
                    start: a.min(b),
                    pages: n + m,
                    backing: x,
                };
                ops.remove(j);
                if self.try_ops(ops) {
                    merged = true;
                    progress = true;
                    break;
                }
            }
            if !merged {
                i += 1;
            }
        }
        progress
    }

    /// Move the destination of each Mremap lower, carrying the later ops that use the moved
    /// pages along (a destination cannot be lowered on its own without losing them).
    fn retarget_mremaps(&mut self) -> bool {
        let mut progress = false;
        for i in 0..self.cur.ops.len() {
            let Some(&Op::Mremap {
                pages, new_start, ..
            }) = self.cur.ops.get(i)
            else {
                continue;
            };
            for to in smaller(new_start, 0) {
                if self.try_ops(relocate(&self.cur.ops, i, new_start, pages, to)) {
                    progress = true;
                    break;
                }
            }
        }
        progress
    }

    /// Remove one page of address space near an op boundary: ranges over it lose a page and
    /// everything above moves down by one.
    fn collapse_pages(&mut self) -> bool {
        let mut cands = Vec::new();
        for op in &self.cur.ops {
            for (a, n) in op_ranges(op) {
                for v in [a, a + n - 1] {
                    cands.extend([v.saturating_sub(1), v, v + 1]);
                }
            }
        }
        cands.sort_unstable_by(|x, y| y.cmp(x));
        cands.dedup();
        let mut progress = false;
        for x in cands {
            let ops = self
                .cur
                .ops
                .iter()
                .filter_map(|op| collapse(op, x))
                .collect();
            progress |= self.try_ops(ops);
        }
        progress
    }
}

/// `ops` with the destination of the Mremap at `i` moved from `from` to `to`, and every range of a
/// later op that lies inside `[from, from + pages)` moved with it.
fn relocate(ops: &[Op], i: usize, from: u64, pages: u64, to: u64) -> Vec<Op> {
    let mv = |v: &mut u64, n: u64| {
        if *v >= from && *v + n <= from + pages {
            *v = *v - from + to;
        }
    };
    let mut out = ops.to_vec();
    if let Op::Mremap { new_start, .. } = &mut out[i] {
        *new_start = to;
    }
    for op in &mut out[i + 1..] {
        match op {
            Op::Mmap { start, pages, .. }
            | Op::Munmap { start, pages }
            | Op::DontNeed { start, pages }
            | Op::Free { start, pages }
            | Op::Pageout { start, pages }
            | Op::Hugepage { start, pages }
            | Op::Mprotect { start, pages, .. }
            | Op::Collapse { start, pages } => mv(start, *pages),
            Op::Mremap {
                start,
                pages,
                new_start,
            } => {
                mv(start, *pages);
                mv(new_start, *pages);
            }
            // The child's address space did not move.
            Op::Store { page, .. } | Op::Load { page } => mv(page, 1),
            // File offsets, not window pages: a move leaves them alone.
            Op::PunchHole { .. }
            | Op::Truncate { .. }
            | Op::Fork
            | Op::ChildLoad { .. }
            | Op::ChildStore { .. }
            | Op::ChildExit => {}
        }
    }
    out
}

/// The page ranges an op touches, as (first page, page count): two for an Mremap.
fn op_ranges(op: &Op) -> Vec<(u64, u64)> {
    match *op {
        Op::Mmap { start, pages, .. }
        | Op::Munmap { start, pages }
        | Op::DontNeed { start, pages }
        | Op::Free { start, pages }
        | Op::Pageout { start, pages }
        | Op::Hugepage { start, pages }
        | Op::Mprotect { start, pages, .. }
        | Op::Collapse { start, pages } => vec![(start, pages.max(1))],
        Op::Mremap {
            start,
            pages,
            new_start,
        } => vec![(start, pages.max(1)), (new_start, pages.max(1))],
        Op::Store { page, .. }
        | Op::Load { page }
        | Op::ChildStore { page, .. }
        | Op::ChildLoad { page } => vec![(page, 1)],
        Op::PunchHole { .. } | Op::Truncate { .. } | Op::Fork | Op::ChildExit => vec![],
    }
}

/// `op` with page `x` removed from the address space (`None` if nothing is left).
fn collapse(op: &Op, x: u64) -> Option<Op> {
    let mut op = *op;
    let covers = op_ranges(&op)
        .iter()
        .any(|&(start, pages)| start <= x && x - start < pages);
    let down = |v: &mut u64| *v -= u64::from(*v > x);
    match &mut op {
        Op::Mmap { start, pages, .. }
        | Op::Munmap { start, pages }
        | Op::DontNeed { start, pages }
        | Op::Free { start, pages }
        | Op::Pageout { start, pages }
        | Op::Hugepage { start, pages }
        | Op::Mprotect { start, pages, .. }
        | Op::Collapse { start, pages } => {
            down(start);
            *pages -= u64::from(covers && *pages > 0);
            if *pages == 0 {
                return None;
            }
        }
        Op::Mremap {
            start,
            pages,
            new_start,
        } => {
            // Both ends lose a page if either covers x, so the lengths stay equal.
            down(start);
            down(new_start);
            *pages -= u64::from(covers && *pages > 0);
            if *pages == 0 {
                return None;
            }
        }
        Op::Store { page, .. }
        | Op::Load { page }
        | Op::ChildStore { page, .. }
        | Op::ChildLoad { page } => {
            if covers {
                return None;
            }
            down(page);
        }
        // File offsets: left as they are (normalize drops them if they no longer fit).
        Op::PunchHole { .. } | Op::Truncate { .. } | Op::Fork | Op::ChildExit => {}
    }
    Some(op)
}

/// Lowest page an op touches.
fn op_start(op: &Op) -> u64 {
    op_ranges(op).iter().map(|r| r.0).min().unwrap_or(0)
}

fn shift(op: &Op, by: u64) -> Op {
    let mut op = *op;
    match &mut op {
        Op::Mmap { start, .. }
        | Op::Munmap { start, .. }
        | Op::DontNeed { start, .. }
        | Op::Free { start, .. }
        | Op::Pageout { start, .. }
        | Op::Hugepage { start, .. }
        | Op::Mprotect { start, .. }
        | Op::Collapse { start, .. } => *start -= by,
        Op::Mremap {
            start, new_start, ..
        } => {
            *start -= by;
            *new_start -= by;
        }
        Op::Store { page, .. }
        | Op::Load { page }
        | Op::ChildStore { page, .. }
        | Op::ChildLoad { page } => *page -= by,
        Op::PunchHole { .. } | Op::Truncate { .. } | Op::Fork | Op::ChildExit => {}
    }
    op
}

/// Values below `x` and at least `min`, most aggressive first: min, x/2, x - x/4, ..., x - 1.
fn smaller(x: u64, min: u64) -> Vec<u64> {
    let mut v = vec![min];
    v.extend((1..64).map(|k| x - (x >> k)));
    v.push(x.saturating_sub(1));
    v.retain(|&y| y >= min && y < x);
    v.dedup();
    v
}

/// Smaller variants of one op, most aggressive first.
fn variants(op: &Op) -> Vec<Op> {
    let mut out = Vec::new();
    match *op {
        Op::Mmap {
            start,
            pages,
            backing,
        } => {
            if backing == Backing::ShmemShared {
                out.push(Op::Mmap {
                    start,
                    pages,
                    backing: Backing::AnonPrivate,
                });
            }
            for p in smaller(pages, 1) {
                out.push(Op::Mmap {
                    start,
                    pages: p,
                    backing,
                });
                out.push(Op::Mmap {
                    start: start + (pages - p),
                    pages: p,
                    backing,
                });
            }
            out.extend(smaller(start, 0).into_iter().map(|start| Op::Mmap {
                start,
                pages,
                backing,
            }));
        }
        Op::Munmap { start, pages } => {
            for p in smaller(pages, 1) {
                out.push(Op::Munmap { start, pages: p });
                out.push(Op::Munmap {
                    start: start + (pages - p),
                    pages: p,
                });
            }
            out.extend(
                smaller(start, 0)
                    .into_iter()
                    .map(|start| Op::Munmap { start, pages }),
            );
        }
        Op::DontNeed { .. }
        | Op::Free { .. }
        | Op::Pageout { .. }
        | Op::Hugepage { .. }
        | Op::Collapse { .. } => {
            let (start, pages) = op_ranges(op)[0];
            let make = |start, pages| match *op {
                Op::DontNeed { .. } => Op::DontNeed { start, pages },
                Op::Free { .. } => Op::Free { start, pages },
                Op::Pageout { .. } => Op::Pageout { start, pages },
                Op::Hugepage { .. } => Op::Hugepage { start, pages },
                _ => Op::Collapse { start, pages },
            };
            for p in smaller(pages, 1) {
                out.push(make(start, p));
                out.push(make(start + (pages - p), p));
            }
            out.extend(
                smaller(start, 0)
                    .into_iter()
                    .map(|start| make(start, pages)),
            );
        }
        Op::Mremap {
            start,
            pages,
            new_start,
        } => {
            for p in smaller(pages, 1) {
                out.push(Op::Mremap {
                    start,
                    pages: p,
                    new_start,
                });
                let k = pages - p;
                out.push(Op::Mremap {
                    start: start + k,
                    pages: p,
                    new_start: new_start + k,
                });
            }
            out.extend(
                smaller(new_start, 0)
                    .into_iter()
                    .map(|new_start| Op::Mremap {
                        start,
                        pages,
                        new_start,
                    }),
            );
            out.extend(smaller(start, 0).into_iter().map(|start| Op::Mremap {
                start,
                pages,
                new_start,
            }));
        }
        Op::Store { page, value } => {
            out.extend(
                smaller(value, 0)
                    .into_iter()
                    .map(|value| Op::Store { page, value }),
            );
            out.extend(
                smaller(page, 0)
                    .into_iter()
                    .map(|page| Op::Store { page, value }),
            );
        }
        Op::Load { page } => out.extend(smaller(page, 0).into_iter().map(|page| Op::Load { page })),
        Op::PunchHole {
            file,
            offset,
            pages,
        } => {
            for p in smaller(pages, 1) {
                out.push(Op::PunchHole {
                    file,
                    offset,
                    pages: p,
                });
            }
            out.extend(smaller(offset, 0).into_iter().map(|offset| Op::PunchHole {
                file,
                offset,
                pages,
            }));
        }
        Op::Mprotect {
            start,
            pages,
            write,
        } => {
            for p in smaller(pages, 1) {
                out.push(Op::Mprotect {
                    start,
                    pages: p,
                    write,
                });
            }
        }
        Op::ChildStore { page, value } => out.extend(
            smaller(value, 0)
                .into_iter()
                .map(|value| Op::ChildStore { page, value }),
        ),
        Op::Truncate { .. } | Op::Fork | Op::ChildLoad { .. } | Op::ChildExit => {}
    }
    out
}

/// Shrink a failing case to a locally minimal one for which `still_fails` holds. Returns the
/// input unchanged if its normalized form does not fail.
pub fn shrink(case: &Case, still_fails: &mut dyn FnMut(&Case) -> bool) -> Case {
    let start = normalize(case);
    if start != *case && !still_fails(&start) {
        return case.clone();
    }
    let mut s = Shrinker {
        cur: start,
        still_fails,
        tries: 0,
    };
    loop {
        let a = s.remove_chunks();
        let b = s.simplify_ops();
        let r = s.retarget_mremaps();
        let t = s.restructure();
        let c = s.shift_down();
        let d = s.collapse_pages();
        if !(a || b || r || t || c || d) || s.tries >= MAX_TRIES {
            return s.cur;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::generate;

    /// "A Store with value > 1000 after an Mmap of ShmemShared."
    fn pred(c: &Case) -> bool {
        let mut shmem = false;
        for op in &c.ops {
            match *op {
                Op::Mmap {
                    backing: Backing::ShmemShared,
                    ..
                } => shmem = true,
                Op::Store { value, .. } if shmem && value > 1000 => return true,
                _ => {}
            }
        }
        false
    }

    /// "A Store with value > 1000 into a page of a ShmemShared mapping."
    fn pred_into_shmem(c: &Case) -> bool {
        let mut shmem = vec![false; crate::case::REGION_PAGES as usize];
        for op in &c.ops {
            match *op {
                Op::Mmap {
                    start,
                    pages,
                    backing,
                } => shmem[start as usize..(start + pages) as usize]
                    .fill(backing == Backing::ShmemShared),
                Op::Store { page, value } if value > 1000 && shmem[page as usize] => return true,
                _ => {}
            }
        }
        false
    }

    /// No single removal or op variant of `c` still fails.
    fn assert_locally_minimal(c: &Case, p: fn(&Case) -> bool) {
        for i in 0..c.ops.len() {
            let mut ops = c.ops.clone();
            ops.remove(i);
            assert!(!p(&normalize(&Case { ops })), "removing op {i} of {c:?}");
            for v in variants(&c.ops[i]) {
                let mut ops = c.ops.clone();
                ops[i] = v;
                let n = normalize(&Case { ops });
                assert!(size(&n) >= size(c) || !p(&n), "{v:?} in {c:?}");
            }
        }
    }

    #[test]
    fn shrinks_to_minimal() {
        let expect = vec![
            Op::Mmap {
                start: 0,
                pages: 1,
                backing: Backing::ShmemShared,
            },
            Op::Store {
                page: 0,
                value: 1001,
            },
        ];
        let (mut found, mut exact) = (0, 0);
        for i in 0..200 {
            let c = crate::gen::generate_mix(3, i, crate::gen::OpMix::Extended);
            if pred(&c) {
                found += 1;
                let mut calls = 0;
                let s = shrink(&c, &mut |c| {
                    calls += 1;
                    pred(c)
                });
                assert!(pred(&s) && s.ops.len() <= 3, "case {i}: {s:?}");
                assert_locally_minimal(&s, pred);
                exact += usize::from(s.ops == expect);
                assert_eq!(shrink(&c, &mut pred), s, "not deterministic");
                assert!(calls < 1000, "case {i}: {calls} calls");
            }
            if pred_into_shmem(&c) {
                let s = shrink(&c, &mut pred_into_shmem);
                assert_eq!(s.ops, expect, "case {i}");
            }
        }
        assert!(found >= 10, "only {found} generated cases match");
        assert!(
            exact * 2 >= found,
            "{exact} of {found} reach the global minimum"
        );
    }

    /// "A Store with value > 1000 into the destination of an earlier Mremap."
    fn pred_moved_store(c: &Case) -> bool {
        let mut moved = vec![false; crate::case::REGION_PAGES as usize];
        for op in &c.ops {
            match *op {
                Op::Mremap {
                    pages, new_start, ..
                } => moved[new_start as usize..(new_start + pages) as usize].fill(true),
                Op::Store { page, value } if value > 1000 && moved[page as usize] => return true,
                _ => {}
            }
        }
        false
    }

    #[test]
    fn shrinks_mremap_cases() {
        let mut found = 0;
        for i in 0..300 {
            let c = crate::gen::generate_mix(4, i, crate::gen::OpMix::Extended);
            if !pred_moved_store(&c) {
                continue;
            }
            found += 1;
            let s = shrink(&c, &mut pred_moved_store);
            assert!(pred_moved_store(&s), "case {i}: {s:?}");
            assert_eq!(s.ops.len(), 3, "case {i}: {s:?}");
            assert_locally_minimal(&s, pred_moved_store);
            let Op::Mremap { pages, .. } = s.ops[1] else {
                panic!("case {i}: {s:?}");
            };
            assert_eq!(pages, 1, "case {i}: {s:?}");
        }
        assert!(found >= 5, "only {found} generated cases match");
    }

    #[test]
    fn shrink_keeps_non_failing_input() {
        let c = generate(3, 0);
        assert_eq!(shrink(&c, &mut |_| false), c);
    }

    #[test]
    fn shrink_handles_empty_and_extreme() {
        assert_eq!(shrink(&Case::default(), &mut |_| true), Case::default());
        let c = Case {
            ops: vec![
                Op::Mmap {
                    start: 4000,
                    pages: 96,
                    backing: Backing::AnonPrivate,
                },
                Op::Store {
                    page: 4095,
                    value: u64::MAX,
                },
            ],
        };
        let s = shrink(&c, &mut |c| {
            c.ops.iter().any(|o| matches!(o, Op::Store { .. }))
        });
        assert_eq!(
            s.ops,
            vec![
                Op::Mmap {
                    start: 0,
                    pages: 1,
                    backing: Backing::AnonPrivate
                },
                Op::Store { page: 0, value: 0 }
            ]
        );
    }
}
