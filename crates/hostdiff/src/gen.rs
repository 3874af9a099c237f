//! Random case generation and normalization. A small shadow of the window (which page belongs to
//! which live mapping, its backing and `VM_HUGEPAGE`) keeps every generated op valid; [`normalize`]
//! uses the same shadow to drop ops that are invalid in context, which is what the shrinker relies
//! on. Besides mmap/munmap/MADV_DONTNEED/loads/stores the mix has mremap moves to a free
//! destination (the alignment matrix of the kernel's `mremap_test.c`), MADV_HUGEPAGE and
//! MADV_COLLAPSE on anonymous memory, with cases often built on whole aligned PMD ranges, and
//! MADV_FREE / MADV_PAGEOUT on pages no THP may back (the shadow tracks which could be).

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

/// What one mapping (a VMA-to-be) is: its backing and whether it has `VM_HUGEPAGE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MapInfo {
    pub backing: Backing,
    pub hugepage: bool,
    /// `PROT_WRITE` (mappings start read-write; `Mprotect` changes it).
    pub writable: bool,
    /// For `ShmemPrivate`: the file's number, and the window page that file page 0 would have
    /// (file page of window page `p` = `p - file_base`).
    pub file: Option<(u32, i64)>,
}

/// Which pages of the window are mapped, and by which mapping. A maximal run of pages with the
/// same owner id always lies inside one VMA of the kernel (the kernel may merge more, never
/// less), so an op confined to such a run (an mremap source) is valid on any kernel.
#[derive(Clone, Debug)]
pub(crate) struct Shadow {
    /// Per page: 0 for a hole, else the id of the mapping that covers it.
    owner: Vec<u32>,
    /// Mapping `id` at index `id - 1`.
    maps: Vec<MapInfo>,
    /// Size in pages of each `ShmemPrivate` file, by number.
    files: Vec<u64>,
    /// The live child's view (`owner` as of the fork; mapping ids are never reused), if any.
    child: Option<Vec<u32>>,
    /// Per page: it may be backed by a THP (MADV_HUGEPAGE or MADV_COLLAPSE covered it, here or
    /// before an mremap brought it here). MADV_FREE and MADV_PAGEOUT split such folios, which the
    /// model does not do: cases keep them to small folios.
    thp: Vec<bool>,
}

/// A maximal run of pages owned by one mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    pub start: u64,
    pub pages: u64,
    pub backing: Backing,
    pub hugepage: bool,
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
            maps: Vec::new(),
            files: Vec::new(),
            child: None,
            thp: vec![false; REGION_PAGES as usize],
        }
    }

    /// Mapped, and not beyond the end of a truncated file (no SIGBUS).
    pub(crate) fn accessible(&self, page: u64) -> bool {
        self.accessible_in(&self.owner, page)
    }

    /// `accessible` in the address space `owner` (the parent's or the child's).
    fn accessible_in(&self, owner: &[u32], page: u64) -> bool {
        self.info_in(owner, page).is_some_and(|m| match m.file {
            Some((f, base)) => (page as i64 - base) < self.files[f as usize] as i64,
            None => true,
        })
    }

    /// Accessible and `PROT_WRITE` in `owner`.
    fn writable_in(&self, owner: &[u32], page: u64) -> bool {
        self.accessible_in(owner, page) && self.info_in(owner, page).is_some_and(|m| m.writable)
    }

    /// Whether a child process is alive.
    pub(crate) fn has_child(&self) -> bool {
        self.child.is_some()
    }

    /// The file and file page mapped at `page`, for a `ShmemPrivate` mapping.
    pub(crate) fn file_page(&self, page: u64) -> Option<(u32, u64)> {
        let (f, base) = self.info(page)?.file?;
        Some((f, (page as i64 - base) as u64))
    }

    /// Size in pages of file `f`.
    pub(crate) fn file_size(&self, f: u32) -> Option<u64> {
        self.files.get(f as usize).copied()
    }

    pub(crate) fn is_mapped(&self, page: u64) -> bool {
        page < REGION_PAGES && self.owner[page as usize] != 0
    }

    fn info(&self, page: u64) -> Option<MapInfo> {
        self.info_in(&self.owner, page)
    }

    fn info_in(&self, owner: &[u32], page: u64) -> Option<MapInfo> {
        match owner.get(page as usize) {
            Some(&id) if id != 0 => Some(self.maps[id as usize - 1]),
            _ => None,
        }
    }

    fn is_anon(&self, page: u64) -> bool {
        self.info(page)
            .is_some_and(|m| m.backing == Backing::AnonPrivate)
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

    /// Mapped, and no page of the range may be backed by a THP.
    fn small_only(&self, start: u64, pages: u64) -> bool {
        self.all_mapped(start, pages) && !self.thp[Self::range(start, pages)].iter().any(|&t| t)
    }

    fn all_anon(&self, start: u64, pages: u64) -> bool {
        in_window(start, pages) && (start..start + pages).all(|p| self.is_anon(p))
    }

    /// Inside one run of one mapping (hence inside one kernel VMA).
    fn one_mapping(&self, start: u64, pages: u64) -> bool {
        in_window(start, pages) && {
            let r = &self.owner[Self::range(start, pages)];
            r[0] != 0 && r.iter().all(|&o| o == r[0])
        }
    }

    fn new_id(&mut self, info: MapInfo) -> u32 {
        self.maps.push(info);
        self.maps.len() as u32
    }

    /// Whether `op` is valid in the current state.
    pub(crate) fn valid(&self, op: &Op) -> bool {
        match *op {
            Op::Mmap { start, pages, .. } => self.is_free(start, pages),
            Op::Munmap { start, pages } => in_window(start, pages),
            Op::DontNeed { start, pages } => self.all_mapped(start, pages),
            Op::Load { page } => self.accessible(page),
            Op::Store { page, .. } => self.writable_in(&self.owner, page),
            Op::Mprotect { start, pages, .. } => self.all_mapped(start, pages),
            Op::Fork => self.child.is_none(),
            Op::ChildLoad { page } => self
                .child
                .as_ref()
                .is_some_and(|c| self.accessible_in(c, page)),
            Op::ChildStore { page, .. } => self
                .child
                .as_ref()
                .is_some_and(|c| self.writable_in(c, page)),
            Op::ChildExit => self.child.is_some(),
            Op::PunchHole {
                file,
                offset,
                pages,
            } => self
                .file_size(file)
                .is_some_and(|n| pages > 0 && offset < n && pages <= n - offset),
            Op::Truncate { file, pages } => self.file_size(file).is_some_and(|n| pages < n),
            Op::Mremap {
                start,
                pages,
                new_start,
            } => self.one_mapping(start, pages) && self.is_free(new_start, pages),
            Op::Hugepage { start, pages } | Op::Collapse { start, pages } => {
                self.all_anon(start, pages)
            }
            Op::Free { start, pages } => {
                self.all_anon(start, pages) && self.small_only(start, pages)
            }
            Op::Pageout { start, pages } => self.small_only(start, pages),
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
                let file = (backing == Backing::ShmemPrivate).then(|| {
                    self.files.push(pages);
                    (self.files.len() as u32 - 1, start as i64)
                });
                let id = self.new_id(MapInfo {
                    backing,
                    hugepage: false,
                    writable: true,
                    file,
                });
                self.owner[Self::range(start, pages)].fill(id);
                self.thp[Self::range(start, pages)].fill(false);
            }
            Op::Munmap { start, pages } => self.owner[Self::range(start, pages)].fill(0),
            Op::Mremap {
                start,
                pages,
                new_start,
            } => {
                let mut info = self.maps[self.owner[start as usize] as usize - 1];
                if let Some((_, base)) = &mut info.file {
                    *base += new_start as i64 - start as i64;
                }
                let id = self.new_id(info);
                self.owner[Self::range(start, pages)].fill(0);
                self.owner[Self::range(new_start, pages)].fill(id);
                let moved = self.thp[Self::range(start, pages)].to_vec();
                self.thp[Self::range(new_start, pages)].copy_from_slice(&moved);
            }
            // Every run of a mapping whose flags change becomes its own VMA (split off).
            Op::Collapse { start, pages } => self.thp[Self::range(start, pages)].fill(true),
            Op::Hugepage { start, pages } => {
                self.thp[Self::range(start, pages)].fill(true);
                self.modify(start, pages, |m| m.hugepage = true)
            }
            Op::Mprotect {
                start,
                pages,
                write,
            } => self.modify(start, pages, |m| m.writable = write),
            Op::Fork => self.child = Some(self.owner.clone()),
            Op::ChildExit => self.child = None,
            Op::Truncate { file, pages } => self.files[file as usize] = pages,
            Op::DontNeed { .. }
            | Op::Store { .. }
            | Op::Load { .. }
            | Op::ChildLoad { .. }
            | Op::ChildStore { .. }
            | Op::Free { .. }
            | Op::Pageout { .. }
            | Op::PunchHole { .. } => {}
        }
    }

    /// Give every run of a mapping in `[start, start + pages)` whose info `f` changes a new id.
    fn modify(&mut self, start: u64, pages: u64, f: impl Fn(&mut MapInfo)) {
        let mut p = start;
        while p < start + pages {
            let id = self.owner[p as usize];
            let mut q = p;
            while q < start + pages && self.owner[q as usize] == id {
                q += 1;
            }
            let info = self.maps[id as usize - 1];
            let mut new = info;
            f(&mut new);
            if new != info {
                let new = self.new_id(new);
                self.owner[p as usize..q as usize].fill(new);
            }
            p = q;
        }
    }

    /// Maximal runs of pages that share a mapping, in address order.
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
                let info = self.maps[id as usize - 1];
                out.push(Segment {
                    start: start as u64,
                    pages: (p - start) as u64,
                    backing: info.backing,
                    hugepage: info.hugepage,
                });
            }
        }
        out
    }

    /// The maximal run of pages containing `page` on which `keep` holds.
    fn run_where(&self, page: u64, keep: impl Fn(u64) -> bool) -> (u64, u64) {
        let mut a = page;
        while a > 0 && keep(a - 1) {
            a -= 1;
        }
        let mut b = page;
        while b < REGION_PAGES && keep(b) {
            b += 1;
        }
        (a, b)
    }

    /// The maximal run of mapped pages (any mappings) containing `page`.
    fn mapped_run(&self, page: u64) -> (u64, u64) {
        self.run_where(page, |p| self.is_mapped(p))
    }

    /// The maximal run of anonymous private pages (any mappings) containing `page`.
    fn anon_run(&self, page: u64) -> (u64, u64) {
        self.run_where(page, |p| self.is_anon(p))
    }
}

/// Drop every op that is invalid in context: Store/Load on an unmapped page, Mmap overlapping a
/// live mapping, DontNeed over a hole, Mremap whose source is not inside one mapping or whose
/// destination is not free, Hugepage/Collapse not entirely on anonymous private memory,
/// zero-length or out-of-window ops.
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

/// The backing of `page` after `ops` (assumed normal), if it is mapped.
pub(crate) fn backing_after(ops: &[Op], page: u64) -> Option<Backing> {
    let mut sh = Shadow::new();
    for op in ops {
        sh.apply(op);
    }
    sh.info(page).map(|m| m.backing)
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
    mix: OpMix,
}

/// Which operations cases draw from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OpMix {
    /// mmap (anonymous private and shmem shared), store, load, munmap, MADV_DONTNEED.
    #[default]
    Basic,
    /// Basic plus mremap (the mremap_test alignment matrix), MADV_HUGEPAGE and MADV_COLLAPSE.
    Extended,
    /// Extended plus `MAP_PRIVATE` shmem (memfd) mappings, hole punching and ftruncate.
    File,
    /// File plus mprotect (read-only and back), and fork with the child's loads, stores and exit.
    Process,
}

/// Generate case `case_index` of the run with `seed` from the basic mix. Same arguments, same
/// case.
pub fn generate(seed: u64, case_index: u64) -> Case {
    generate_mix(seed, case_index, OpMix::Basic)
}

/// Generate case `case_index` of the run with `seed` from `mix`.
pub fn generate_mix(seed: u64, case_index: u64, mix: OpMix) -> Case {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(case_index);
    let target: usize = rng.gen_range(5..=40);
    let mut g = Gen {
        rng,
        sh: Shadow::new(),
        freed: Vec::new(),
        written: Vec::new(),
        mix,
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
            // With nothing mapped (always at the start), half the time map whole aligned PMD
            // ranges of anonymous memory: THP faults, collapses and PMD moves need them.
            if self.rng.gen_bool(0.5) {
                let pages = self.rng.gen_range(1..=3) * PMD_PAGES;
                let start = self.rng.gen_range(0..=(REGION_PAGES - pages) / PMD_PAGES) * PMD_PAGES;
                return Some(Op::Mmap {
                    start,
                    pages,
                    backing: Backing::AnonPrivate,
                });
            }
            return self.mmap(&segs);
        }
        let top = match self.mix {
            OpMix::Basic => 80,
            OpMix::Extended => 100,
            OpMix::File => 120,
            OpMix::Process => 150,
        };
        // The extended and file mixes add MADV_FREE and MADV_PAGEOUT (12 in every top + 12).
        let extra = if self.mix == OpMix::Basic { 0 } else { 12 };
        let r = self.rng.gen_range(0..top + extra);
        if r >= top {
            return if r < top + 5 {
                self.free(&segs)
            } else {
                self.pageout(&segs)
            };
        }
        match r {
            0..=15 => self.mmap(&segs),
            16..=39 => Some(self.store(&segs)),
            40..=56 => Some(self.load(&segs)),
            57..=66 => Some(self.munmap(&segs)),
            67..=79 => Some(self.dontneed(&segs)),
            80..=88 => self.mremap(&segs),
            89..=93 => self.hugepage(&segs),
            94..=99 => self.collapse(&segs),
            100..=111 => self.punch_hole(&segs),
            112..=119 => self.truncate(&segs),
            120..=131 => Some(self.mprotect(&segs)),
            _ => Some(self.process(&segs)),
        }
    }

    /// mprotect of a mapping, a run of mappings or a part, mostly read-only; PMD-sized at times.
    fn mprotect(&mut self, segs: &[Segment]) -> Op {
        let s = *self.seg(segs);
        let (start, pages) = match self.rng.gen_range(0..100) {
            0..=39 => (s.start, s.pages),
            40..=54 => {
                let (a, b) = self.sh.mapped_run(s.start);
                (a, b - a)
            }
            r => match (r < 70)
                .then(|| self.pmd_blocks(s.start, s.end(), 1))
                .flatten()
            {
                Some(x) => x,
                None => self.subrange(s.start, s.end()),
            },
        };
        let write = self.rng.gen_bool(0.35);
        Op::Mprotect {
            start,
            pages,
            write,
        }
    }

    /// fork, or, with a child alive, one of its loads, stores or its exit.
    fn process(&mut self, segs: &[Segment]) -> Op {
        if !self.sh.has_child() {
            return Op::Fork;
        }
        match self.rng.gen_range(0..100) {
            0..=54 => match self.load(segs) {
                Op::Load { page } => Op::ChildLoad { page },
                op => op,
            },
            55..=84 => match self.store(segs) {
                Op::Store { page, value } => Op::ChildStore { page, value },
                op => op,
            },
            _ => Op::ChildExit,
        }
    }

    /// A run of pages that may not be THP-backed, inside `s`, containing a page stored to when
    /// there is one (MADV_FREE and MADV_PAGEOUT matter for written pages).
    fn small_run(&mut self, segs: &[Segment], anon: bool) -> Option<(u64, u64)> {
        let ok = |sh: &Shadow, p: u64| {
            sh.is_mapped(p) && !sh.thp[p as usize] && (!anon || sh.is_anon(p))
        };
        let written: Vec<u64> = self
            .written
            .iter()
            .copied()
            .filter(|&p| ok(&self.sh, p))
            .collect();
        let page = if !written.is_empty() && self.rng.gen_bool(0.8) {
            written[self.rng.gen_range(0..written.len())]
        } else {
            let s = *self.seg(segs);
            let p = self.page_in(&s);
            if !ok(&self.sh, p) {
                return None;
            }
            p
        };
        let (a, b) = self.sh.run_where(page, |p| ok(&self.sh, p));
        Some(match self.rng.gen_range(0..100) {
            0..=39 => (page, 1),
            40..=69 => (a, b - a),
            _ => self.subrange(a, b),
        })
    }

    /// MADV_FREE of anonymous private memory, mostly around pages stored to.
    fn free(&mut self, segs: &[Segment]) -> Option<Op> {
        let (start, pages) = self.small_run(segs, true)?;
        Some(Op::Free { start, pages })
    }

    /// MADV_PAGEOUT of mapped memory of any backing.
    fn pageout(&mut self, segs: &[Segment]) -> Option<Op> {
        let (start, pages) = self.small_run(segs, false)?;
        Some(Op::Pageout { start, pages })
    }

    fn seg<'a>(&mut self, segs: &'a [Segment]) -> &'a Segment {
        &segs[self.rng.gen_range(0..segs.len())]
    }

    fn mmap(&mut self, segs: &[Segment]) -> Option<Op> {
        let backing = if matches!(self.mix, OpMix::File | OpMix::Process) {
            [
                Backing::AnonPrivate,
                Backing::ShmemShared,
                Backing::ShmemPrivate,
            ][self.rng.gen_range(0..3)]
        } else if self.rng.gen_bool(0.5) {
            Backing::AnonPrivate
        } else {
            Backing::ShmemShared
        };
        for attempt in 0..12 {
            let big = attempt < 8 && self.rng.gen_bool(0.3);
            let mut pages = if big {
                self.rng.gen_range(PMD_PAGES..=2 * PMD_PAGES)
            } else if attempt < 8 {
                self.rng.gen_range(1..=64)
            } else {
                self.rng.gen_range(1..=8)
            };
            // Big mappings are often whole aligned PMD ranges: THP faults, collapses and
            // move_normal_pmd need them.
            let r = if big && self.rng.gen_bool(0.4) {
                0
            } else {
                self.rng.gen_range(0..100)
            };
            let start = match r {
                0..=24 => {
                    if big && self.rng.gen_bool(0.7) {
                        pages = pages / PMD_PAGES * PMD_PAGES;
                    }
                    self.rng.gen_range(0..REGION_PAGES / PMD_PAGES) * PMD_PAGES
                }
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

    /// A page of a `ShmemPrivate` mapping, and its file and file page.
    fn file_page(&mut self, segs: &[Segment]) -> Option<(u64, u32, u64)> {
        let files: Vec<&Segment> = segs
            .iter()
            .filter(|s| s.backing == Backing::ShmemPrivate)
            .collect();
        if files.is_empty() {
            return None;
        }
        let s = *files[self.rng.gen_range(0..files.len())];
        let page = self.page_in(&s);
        let (f, off) = self.sh.file_page(page)?;
        Some((page, f, off))
    }

    fn punch_hole(&mut self, segs: &[Segment]) -> Option<Op> {
        let (_, file, offset) = self.file_page(segs)?;
        let n = self.sh.file_size(file)?;
        if offset >= n {
            return None;
        }
        let pages = self.rng.gen_range(1..=(n - offset).min(16));
        Some(Op::PunchHole {
            file,
            offset,
            pages,
        })
    }

    fn truncate(&mut self, segs: &[Segment]) -> Option<Op> {
        let (_, file, offset) = self.file_page(segs)?;
        Some(Op::Truncate {
            file,
            pages: offset,
        })
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

    /// A random subrange of `[a, b)`.
    fn subrange(&mut self, a: u64, b: u64) -> (u64, u64) {
        let x = self.rng.gen_range(a..b);
        let y = self.rng.gen_range(x + 1..=b);
        (x, y - x)
    }

    /// `k` whole aligned PMD ranges inside `[a, b)`, if there is one.
    fn pmd_blocks(&mut self, a: u64, b: u64, max_k: u64) -> Option<(u64, u64)> {
        let first = a.div_ceil(PMD_PAGES);
        let blocks = (b / PMD_PAGES).saturating_sub(first);
        if blocks == 0 {
            return None;
        }
        let k = self.rng.gen_range(1..=blocks.min(max_k));
        let i = first + self.rng.gen_range(0..=blocks - k);
        Some((i * PMD_PAGES, k * PMD_PAGES))
    }

    /// A free destination for `pages` pages; with `off`, one at `off` pages past a PMD boundary.
    fn free_spot(&mut self, pages: u64, off: Option<u64>) -> Option<u64> {
        let mut runs = Vec::new();
        let mut p = 0;
        while p < REGION_PAGES {
            if self.sh.is_mapped(p) {
                p += 1;
                continue;
            }
            let a = p;
            while p < REGION_PAGES && !self.sh.is_mapped(p) {
                p += 1;
            }
            // Candidate starts in [a, p - pages], at the wanted offset if any.
            if p - a >= pages {
                let last = p - pages;
                let (first, step) = match off {
                    None => (a, 1),
                    Some(o) => (a + (o + PMD_PAGES - a % PMD_PAGES) % PMD_PAGES, PMD_PAGES),
                };
                if first <= last {
                    runs.push((first, (last - first) / step + 1, step));
                }
            }
        }
        if runs.is_empty() {
            return None;
        }
        let (first, n, step) = runs[self.rng.gen_range(0..runs.len())];
        Some(first + self.rng.gen_range(0..n) * step)
    }

    /// mremap to a free destination, over the alignment matrix of the kernel's
    /// `tools/testing/selftests/mm/mremap_test.c`: whole PMDs with PMD-aligned source and
    /// destination (`move_normal_pmd`), PMD-aligned with a partial length (1 MiB from a PMD
    /// boundary), PMD-straddling ranges with mutually aligned or misaligned ends, whole mappings,
    /// and arbitrary PTE-aligned ranges.
    fn mremap(&mut self, segs: &[Segment]) -> Option<Op> {
        let with_pmd: Vec<Segment> = segs
            .iter()
            .filter(|s| s.end() / PMD_PAGES > s.start.div_ceil(PMD_PAGES))
            .copied()
            .collect();
        let r = self.rng.gen_range(0..100);
        let s = if r < 40 && !with_pmd.is_empty() {
            with_pmd[self.rng.gen_range(0..with_pmd.len())]
        } else {
            *self.seg(segs)
        };
        let aligned = if r < 40 {
            self.pmd_blocks(s.start, s.end(), 3)
        } else {
            None
        };
        let boundary = (s.start / PMD_PAGES + 1) * PMD_PAGES;
        let (start, pages, off) = match (r, aligned) {
            (0..=24, Some((a, n))) => (a, n, Some(0)),
            (25..=39, Some((a, _))) => {
                let max = s.end() - a;
                let n = if self.rng.gen_bool(0.5) {
                    (PMD_PAGES / 2).min(max)
                } else {
                    self.rng.gen_range(1..=max.min(2 * PMD_PAGES))
                };
                (a, n, Some(0))
            }
            (40..=59, _) if boundary < s.end() => {
                let below = self
                    .rng
                    .gen_range(1..=(boundary - s.start).min(PMD_PAGES - 1));
                let above = self
                    .rng
                    .gen_range(1..=(s.end() - boundary).min(PMD_PAGES + 1));
                let start = boundary - below;
                let off = self.rng.gen_bool(0.7).then_some(start % PMD_PAGES);
                (start, below + above, off)
            }
            (60..=74, _) => {
                let off = self.rng.gen_bool(0.5).then_some(s.start % PMD_PAGES);
                (s.start, s.pages, off)
            }
            _ => {
                let (a, n) = self.subrange(s.start, s.end());
                (a, n, None)
            }
        };
        let new_start = self.free_spot(pages, off)?;
        Some(Op::Mremap {
            start,
            pages,
            new_start,
        })
    }

    fn anon_seg(&mut self, segs: &[Segment]) -> Option<Segment> {
        let anon: Vec<Segment> = segs
            .iter()
            .filter(|s| s.backing == Backing::AnonPrivate)
            .copied()
            .collect();
        (!anon.is_empty()).then(|| anon[self.rng.gen_range(0..anon.len())])
    }

    /// MADV_HUGEPAGE on one anonymous mapping, a run of them, whole PMDs or a part.
    fn hugepage(&mut self, segs: &[Segment]) -> Option<Op> {
        let s = self.anon_seg(segs)?;
        let (start, pages) = match self.rng.gen_range(0..100) {
            0..=44 => (s.start, s.pages),
            45..=69 => {
                let (a, b) = self.sh.anon_run(s.start);
                (a, b - a)
            }
            r => match (r < 85)
                .then(|| self.pmd_blocks(s.start, s.end(), 2))
                .flatten()
            {
                Some(x) => x,
                None => self.subrange(s.start, s.end()),
            },
        };
        Some(Op::Hugepage { start, pages })
    }

    /// MADV_COLLAPSE, mostly of whole aligned PMDs inside anonymous memory.
    fn collapse(&mut self, segs: &[Segment]) -> Option<Op> {
        // Mostly a mapping whose anonymous run holds a whole aligned PMD range.
        let with_pmd: Vec<Segment> = segs
            .iter()
            .filter(|s| {
                s.backing == Backing::AnonPrivate && {
                    let (a, b) = self.sh.anon_run(s.start);
                    b / PMD_PAGES > a.div_ceil(PMD_PAGES)
                }
            })
            .copied()
            .collect();
        let s = if !with_pmd.is_empty() && self.rng.gen_bool(0.7) {
            with_pmd[self.rng.gen_range(0..with_pmd.len())]
        } else {
            self.anon_seg(segs)?
        };
        let p = self.page_in(&s);
        let (a, b) = self.sh.anon_run(p);
        let (start, pages) = match self.rng.gen_range(0..100) {
            r @ 0..=49 => match self.pmd_blocks(a, b, if r < 40 { 1 } else { 3 }) {
                Some(x) => x,
                None => (a, b - a),
            },
            50..=64 => (a, b - a),
            65..=79 => (s.start, s.pages),
            _ => self.subrange(a, b),
        };
        Some(Op::Collapse { start, pages })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_mix_maps_private_shmem_punches_and_truncates_it() {
        let (mut private, mut punch, mut trunc, mut access_after_trunc) = (0, 0, 0, 0);
        for i in 0..200 {
            let c = generate_mix(1, i, OpMix::File);
            assert_eq!(normalize(&c), c, "generated cases are normal");
            let mut truncated = false;
            for op in &c.ops {
                match op {
                    Op::Mmap {
                        backing: Backing::ShmemPrivate,
                        ..
                    } => private += 1,
                    Op::PunchHole { .. } => punch += 1,
                    Op::Truncate { .. } => {
                        trunc += 1;
                        truncated = true;
                    }
                    Op::Store { .. } | Op::Load { .. } if truncated => access_after_trunc += 1,
                    _ => {}
                }
            }
        }
        assert!(
            private > 50 && punch > 20 && trunc > 20 && access_after_trunc > 20,
            "{private} {punch} {trunc} {access_after_trunc}"
        );
        // The basic and extended mixes draw no file op.
        for i in 0..50 {
            for mix in [OpMix::Basic, OpMix::Extended] {
                assert!(generate_mix(1, i, mix).ops.iter().all(|op| !matches!(
                    op,
                    Op::PunchHole { .. }
                        | Op::Truncate { .. }
                        | Op::Mmap {
                            backing: Backing::ShmemPrivate,
                            ..
                        }
                )));
            }
        }
    }

    #[test]
    fn process_mix_mprotects_forks_and_uses_the_child() {
        let (mut ro, mut rw, mut forks, mut child_loads, mut child_stores, mut exits) =
            (0, 0, 0, 0, 0, 0);
        // A child load of a page the parent stored to after the fork: the COW case.
        let mut cow_loads = 0;
        for i in 0..300 {
            let c = generate_mix(1, i, OpMix::Process);
            assert_eq!(normalize(&c), c, "generated cases are normal");
            let mut parent_stores_since_fork: Vec<u64> = Vec::new();
            for op in &c.ops {
                match *op {
                    Op::Mprotect { write: false, .. } => ro += 1,
                    Op::Mprotect { write: true, .. } => rw += 1,
                    Op::Fork => {
                        forks += 1;
                        parent_stores_since_fork.clear();
                    }
                    Op::Store { page, .. } => parent_stores_since_fork.push(page),
                    Op::ChildLoad { page } => {
                        child_loads += 1;
                        cow_loads += usize::from(parent_stores_since_fork.contains(&page));
                    }
                    Op::ChildStore { .. } => child_stores += 1,
                    Op::ChildExit => exits += 1,
                    _ => {}
                }
            }
        }
        let counts = (ro, rw, forks, child_loads, child_stores, exits, cow_loads);
        assert!(
            ro > 100 && rw > 50 && forks > 100 && child_loads > 100 && child_stores > 50,
            "{counts:?}"
        );
        assert!(exits > 30 && cow_loads > 10, "{counts:?}");
        // The other mixes draw none of these.
        for i in 0..50 {
            for mix in [OpMix::Basic, OpMix::Extended, OpMix::File] {
                assert!(generate_mix(1, i, mix).ops.iter().all(|op| !matches!(
                    op,
                    Op::Mprotect { .. }
                        | Op::Fork
                        | Op::ChildLoad { .. }
                        | Op::ChildStore { .. }
                        | Op::ChildExit
                )));
            }
        }
    }

    #[test]
    fn extended_and_file_mixes_free_and_page_out_small_folios_only() {
        for mix in [OpMix::Extended, OpMix::File] {
            let (mut cases, mut free, mut pageout, mut pageout_after_free) = (0, 0, 0, 0);
            for i in 0..2000 {
                let c = generate_mix(3, i, mix);
                let mut sh = Shadow::new();
                let mut freed = false;
                let mut hit = false;
                for op in &c.ops {
                    match *op {
                        Op::Free { start, pages } => {
                            assert!(sh.small_only(start, pages) && sh.all_anon(start, pages));
                            free += 1;
                            freed = true;
                            hit = true;
                        }
                        Op::Pageout { start, pages } => {
                            assert!(sh.small_only(start, pages));
                            pageout += 1;
                            pageout_after_free += usize::from(freed);
                            hit = true;
                        }
                        _ => {}
                    }
                    sh.apply(op);
                }
                cases += usize::from(hit);
            }
            eprintln!(
                "{mix:?}, seed 3, 2000 cases: {cases} with MADV_FREE or MADV_PAGEOUT; {free} MADV_FREE, {pageout} MADV_PAGEOUT ({pageout_after_free} after a MADV_FREE in the case)"
            );
            assert!(cases > 200 && free > 100 && pageout > 100 && pageout_after_free > 50);
        }
        // The basic mix is unchanged: neither op.
        for i in 0..200 {
            let c = generate_mix(3, i, OpMix::Basic);
            assert!(!c
                .ops
                .iter()
                .any(|o| matches!(o, Op::Free { .. } | Op::Pageout { .. })));
        }
    }

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
        let mut kinds = [0usize; 8];
        let (mut aligned_dn, mut big) = (0, 0);
        // Mremap alignment classes: whole PMDs (both ends aligned), PMD-aligned partial,
        // straddling with mutually aligned ends, other.
        let mut mremap = [0usize; 4];
        let mut aligned_collapse = 0;
        for i in 0..500 {
            let c = generate_mix(1, i, OpMix::Extended);
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
                    Op::Mremap {
                        start,
                        pages,
                        new_start,
                    } => {
                        kinds[5] += 1;
                        let (a, b) = (start % PMD_PAGES, new_start % PMD_PAGES);
                        let straddles = start / PMD_PAGES != (start + pages - 1) / PMD_PAGES;
                        mremap[if a == 0 && b == 0 && pages % PMD_PAGES == 0 {
                            0
                        } else if a == 0 && b == 0 {
                            1
                        } else if a == b && straddles {
                            2
                        } else {
                            3
                        }] += 1;
                    }
                    Op::Hugepage { .. } => kinds[6] += 1,
                    Op::Collapse { start, pages } => {
                        kinds[7] += 1;
                        aligned_collapse +=
                            usize::from(start % PMD_PAGES == 0 && pages % PMD_PAGES == 0);
                    }
                    // Counted by extended_and_file_mixes_free_and_page_out_small_folios_only.
                    Op::Free { .. } | Op::Pageout { .. } => {}
                    Op::PunchHole { .. }
                    | Op::Truncate { .. }
                    | Op::Mprotect { .. }
                    | Op::Fork
                    | Op::ChildLoad { .. }
                    | Op::ChildStore { .. }
                    | Op::ChildExit => {
                        panic!("a file or process op in the extended mix: {op:?}")
                    }
                }
            }
        }
        assert!(kinds[..5].iter().all(|&k| k > 100), "{kinds:?}");
        assert!(kinds[5..].iter().all(|&k| k > 50), "{kinds:?}");
        assert!(big > 50, "big mmaps: {big}");
        assert!(aligned_dn > 20, "aligned DontNeed: {aligned_dn}");
        assert!(mremap.iter().all(|&k| k > 15), "mremap classes: {mremap:?}");
        assert!(
            aligned_collapse > 30,
            "aligned Collapse: {aligned_collapse}"
        );
    }

    #[test]
    fn new_ops_follow_the_shadow() {
        let anon = |start, pages| Op::Mmap {
            start,
            pages,
            backing: Backing::AnonPrivate,
        };
        let c = Case {
            ops: vec![
                anon(0, 8),
                Op::Mmap {
                    start: 8,
                    pages: 8,
                    backing: Backing::ShmemShared,
                },
                // Spans two mappings: invalid.
                Op::Mremap {
                    start: 6,
                    pages: 4,
                    new_start: 100,
                },
                // Destination overlaps a mapping: invalid.
                Op::Mremap {
                    start: 0,
                    pages: 4,
                    new_start: 6,
                },
                // Shmem: invalid for Hugepage and Collapse.
                Op::Hugepage { start: 4, pages: 8 },
                Op::Collapse { start: 8, pages: 1 },
                Op::Hugepage { start: 2, pages: 2 },
                // [2, 4) is now its own mapping: a move spanning 1..5 crosses three.
                Op::Mremap {
                    start: 1,
                    pages: 4,
                    new_start: 100,
                },
                Op::Mremap {
                    start: 2,
                    pages: 2,
                    new_start: 100,
                },
                Op::Store { page: 2, value: 1 },
                Op::Store {
                    page: 101,
                    value: 1,
                },
                Op::Collapse {
                    start: 100,
                    pages: 2,
                },
                Op::Mremap {
                    start: 8,
                    pages: 8,
                    new_start: 200,
                },
                Op::Load { page: 8 },
                Op::Load { page: 207 },
            ],
        };
        let n = normalize(&c);
        let kept: Vec<usize> = c
            .ops
            .iter()
            .enumerate()
            .filter(|(_, op)| n.ops.contains(op))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(kept, vec![0, 1, 6, 8, 10, 11, 12, 14]);
        let mut sh = Shadow::new();
        for op in &n.ops {
            sh.apply(op);
        }
        let segs = sh.segments();
        assert_eq!(
            segs.iter()
                .map(|s| (s.start, s.pages, s.hugepage))
                .collect::<Vec<_>>(),
            vec![
                (0, 2, false),
                (4, 4, false),
                (100, 2, true),
                (200, 8, false)
            ]
        );
        assert_eq!(segs[3].backing, Backing::ShmemShared);
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
