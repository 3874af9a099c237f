//! Scenarios over the whole operation vocabulary, for `mmcheck fuzz`: 2 to 4 threads of 1 or 2
//! operations each on the default geometry (3 levels of 8 entries), drawn from every modelled
//! operation of [`OPS`] through its syntax line ([`super::template`]), so an operation added to
//! the table is generated without a change here.
//!
//! The initial state is drawn from the same vocabulary: region A (`@0`, one PTE table, PMD-sized)
//! is anonymous, shmem or a private shmem mapping, perhaps `huge`; region B (`@8`, the next
//! table under the same PMD table) is sometimes a second mapping, perhaps of the same file, or a
//! growsdown stack at its top with room to grow below; pages are faulted in with stores (all of
//! region A, its first half — an order-2 mTHP's range —, pages at random, or none, so that no
//! PTE table exists yet); sometimes one or two `init` operations start pages lazyfree or under
//! migration (a THP's PMD too), register region A or region B with userfaultfd, retract the
//! table (and map the huge folio again by PTEs), reclaim a shared page, move the second half of
//! region A away with `mremap` (its page offset then no longer matches its address, the
//! rmap-order case of mremap), or move a page faulted elsewhere next to region A (a neighbour
//! VMA with its own anon_vma). `@16` and above are left free for `mmap` and `mremap`
//! destinations.
//!
//! The draw is biased towards threads that share a page table, a VMA and a folio, where the
//! catalogue's race windows are: operations aim mostly at one focus page or at a region's first
//! page; most range operations of some drafts, few of others, cover a whole table (what PT
//! reclaim, a PMD-level zap and a whole-table mremap need); collapse and retraction mostly start at a region's first page;
//! `mremap` destinations are PMD-aligned or not, or the moved range's old place; a thread of two
//! operations often touches the focus page first (its TLB then caches what a racing zap must
//! flush); an operation is often followed in its thread by one that uses what it left, on the
//! same address (register, then write-protect or fill; pin, then read; zap, then touch; fault,
//! then zap the table; read twice); a thread often repeats another's operation, as is or with
//! new arguments (two faults, two zaps on one table); and the weights favour loads, stores,
//! faults, zaps, reclaim and migration.
//!
//! Some states come with aims, operations on exactly what `init` made, and in two drafts of
//! three 30 or 60 percent of the operations are drawn from them, a different aim per thread
//! first: reclaim of the lazyfree page, a store to it, a pin of it; `madvise free`, `numa_hint`
//! and a zap of the whole PMD-mapped THP; `collapse_pte_mapped_thp` and `uffd_copy` in a
//! registered private view over a retracted folio; the moved range moved back, a migration of
//! its page. An `init` state is drawn among those that apply to the mapping (a lazyfree page
//! three times as often as the others).
//!
//! Every draft is rendered as `.mmt` text and parsed like a file; a draft the parser refuses (an
//! argument combination its checks reject) is drawn again, so what leaves [`generate`] is a
//! valid scenario. `check` is never generated: it asserts a final state the generator does not
//! know. Deterministic from the seed.

use super::template::{self, Hole, Item};
use super::{Generated, Prng};
use crate::parse::{OpSpec, OPS};
use crate::Scenario;

/// Pages per region (one PTE table, one PMD entry's range, in the default geometry).
const REGION: u64 = 8;
/// First page left free for `mmap` and `mremap` destinations.
const FREE: u64 = 16;
/// Most operations in one scenario (threads times operations).
const MAX_OPS: usize = 5;

/// What the generator knows of the initial state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Region A's mapping kind: `anon`, `shmem` or `shmem-private`.
    pub a: &'static str,
    /// Whether region B (`@8`) is mapped.
    pub b: bool,
    /// Pages faulted in by `init`.
    pub faulted: Vec<u64>,
    /// The page most operations aim at.
    pub focus: u64,
    /// A range `init` moved with `mremap` (first page, pages), its old place left free.
    pub moved: Option<(u64, u64)>,
    /// Whether a growsdown stack maps the top of region B (`@12`, 4 pages), the rest of region B
    /// free below it to grow into.
    pub stack: bool,
    /// Operations drawn three times as often: those that act on what `init` made (PMD-level
    /// operations on a THP, reclaim on a lazyfree page, userfaultfd operations on a registered
    /// range, ...).
    pub boost: Vec<&'static str>,
    /// Operations aimed at what `init` made, with their addresses: reclaim of the lazyfree page
    /// and a store or pin of it, `madvise free` of the whole THP, ... One thread's chain per
    /// entry, lines separated by `\n`, `{v}` standing for a value drawn with the line.
    pub aims: Vec<String>,
}

impl Layout {
    /// Whether region B (`@8`) holds a mapping.
    fn b_used(&self) -> bool {
        self.b || self.stack
    }
}

/// A scenario being built: `init` lines and thread programs, one operation per line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Draft {
    pub layout: Layout,
    pub init: Vec<String>,
    pub threads: Vec<Vec<String>>,
}

impl Draft {
    /// The `.mmt` text, named `name`, with `header` lines (protocol, settings) after the name.
    pub fn render(&self, name: &str, header: &[String], expect: &str) -> String {
        let mut t = format!("scenario {name}\n");
        for h in header {
            t.push_str(h);
            t.push('\n');
        }
        t.push_str("\ninit {\n");
        for l in &self.init {
            t.push_str(&format!("  {l}\n"));
        }
        t.push_str("}\n");
        for (i, ops) in self.threads.iter().enumerate() {
            t.push_str(&format!("\nthread T{i} {{\n"));
            for op in ops {
                t.push_str(&format!("  {op}\n"));
            }
            t.push_str("}\n");
        }
        t.push_str(&format!("\nexpect {expect}\n"));
        t
    }

    /// Parse the draft as a scenario named `name`.
    pub fn parse(&self, name: &str) -> Result<Scenario, crate::ParseError> {
        crate::parse_scenario(&format!("{name}.mmt"), &self.render(name, &[], "clean"))
    }

    /// Operations in all threads.
    pub fn ops(&self) -> usize {
        self.threads.iter().map(Vec::len).sum()
    }

    /// Every draft with one thread, one operation or one `init` line fewer (the mapping of
    /// region A stays): the candidates of one shrinking step, smallest change first.
    pub fn smaller(&self) -> Vec<Draft> {
        let mut out = Vec::new();
        for t in 0..self.threads.len() {
            if self.threads.len() > 1 {
                let mut d = self.clone();
                d.threads.remove(t);
                out.push(d);
            }
        }
        for t in 0..self.threads.len() {
            for i in 0..self.threads[t].len() {
                if self.threads[t].len() > 1 {
                    let mut d = self.clone();
                    d.threads[t].remove(i);
                    out.push(d);
                }
            }
        }
        for i in 1..self.init.len() {
            let mut d = self.clone();
            d.init.remove(i);
            out.push(d);
        }
        out
    }
}

/// The generator's knobs for one draw.
struct Ctx<'a> {
    r: &'a mut Prng,
    layout: &'a Layout,
    next_value: u64,
    /// The operation being drawn covers a whole range: its address is a region's (or the moved
    /// range's) first page and `pages=N` runs to its end.
    whole: bool,
    /// Percent of range operations that cover a whole range in this draft (drawn once: the
    /// threads of a draft mostly agree on whole tables or single pages).
    whole_pct: u64,
    /// Percent of a thread's operations drawn from the layout's aims (drawn once per draft).
    aim_pct: u64,
    /// The aims this draft has drawn, by index: another thread draws another one first.
    aimed: Vec<usize>,
}

impl Ctx<'_> {
    fn value(&mut self) -> u64 {
        self.next_value += 1;
        self.next_value
    }

    /// A page to act on: the focus page mostly, else any mapped page.
    fn page(&mut self) -> u64 {
        let l = self.layout;
        if let Some((m, n)) = l.moved {
            if self.r.chance(30) {
                return m + self.r.below(n);
            }
        }
        match self.r.below(100) {
            0..=54 => l.focus,
            55..=64 => self.start(),
            65..=84 => self.r.below(REGION),
            _ if l.b_used() => REGION + self.r.below(REGION),
            _ => self.r.below(REGION),
        }
    }

    /// The first page of a range: a region's (a PMD entry's, a PTE table's) or the moved
    /// range's.
    fn start(&mut self) -> u64 {
        let l = self.layout;
        match (l.moved, self.r.below(100)) {
            (Some((m, n)), x) if x < 30 || (m..m + n).contains(&l.focus) && x < 75 => m,
            (_, 0..=74) => l.focus - l.focus % REGION,
            _ if l.b_used() => REGION,
            _ => 0,
        }
    }

    /// The end of the range `page` is in (its region, or the moved range).
    fn end(&self, page: u64) -> u64 {
        match self.layout.moved {
            Some((m, n)) if (m..m + n).contains(&page) => m + n,
            _ => page - page % REGION + REGION,
        }
    }

    /// A page count from `page` to at most the end of its range.
    fn pages(&mut self, page: u64) -> u64 {
        let left = self.end(page).saturating_sub(page).max(1);
        if self.whole {
            return left;
        }
        match self.r.below(100) {
            0..=49 => 1,
            50..=84 => left,
            _ => 2.min(left),
        }
    }

    /// One of the layout's aims, as lines: first one this draft has not drawn yet and that fits
    /// in `room` operations, then one not drawn yet, then any.
    fn aim(&mut self, room: usize) -> Option<Vec<String>> {
        let aims = &self.layout.aims;
        let fresh = |i: &usize| !self.aimed.contains(i);
        let fits: Vec<usize> = (0..aims.len())
            .filter(|i| fresh(i) && aims[*i].lines().count() <= room)
            .collect();
        let new: Vec<usize> = (0..aims.len()).filter(fresh).collect();
        let all: Vec<usize> = (0..aims.len()).collect();
        let from = [fits, new, all].into_iter().find(|v| !v.is_empty())?;
        let i = from[self.r.below(from.len() as u64) as usize];
        self.aimed.push(i);
        let lines = self.layout.aims[i].clone();
        Some(
            lines
                .lines()
                .map(|l| {
                    if l.contains("{v}") {
                        let v = self.value();
                        l.replace("{v}", &v.to_string())
                    } else {
                        l.to_string()
                    }
                })
                .collect(),
        )
    }

    /// A destination for `mremap`: the free area, PMD-aligned or not, or the moved range's old
    /// place (moving it back).
    fn destination(&mut self) -> u64 {
        if self.layout.moved.is_some() && self.r.chance(30) {
            return MOVED_FROM;
        }
        match self.r.below(100) {
            0..=39 => FREE,
            40..=59 => FREE + REGION,
            60..=79 => FREE + REGION / 2,
            _ => FREE + 1 + self.r.below(REGION - 1),
        }
    }
}

/// Where `init` faults the page it then moves next to region A (a neighbour VMA with its own
/// anon_vma).
const NEIGHBOUR_FROM: u64 = FREE + 3 * REGION;

/// Where `init` moves a range from (the second half of region A) and to (past the free area).
const MOVED_FROM: u64 = REGION / 2;
const MOVED_TO: u64 = FREE + 2 * REGION + REGION / 2;

/// Operations whose range the kernel aligns to a PMD (or an mTHP order): mostly drawn at a
/// region's first page.
const ALIGNED: &[&str] = &[
    "madvise collapse",
    "khugepaged",
    "retract",
    "collapse_pte_mapped_thp",
];

/// Fill `items` of operation `name` into `out`.
fn fill(cx: &mut Ctx<'_>, name: &str, items: &[Item], out: &mut Vec<String>, page: &mut u64) {
    for it in items {
        match it {
            Item::Word(w) => out.push(w.clone()),
            Item::OneOf(ws) => out.push(cx.r.pick(ws).clone()),
            Item::Optional(inner) => {
                if cx.r.chance(45) {
                    fill(cx, name, inner, out, page);
                }
            }
            Item::Alt(alts) => {
                let a = cx.r.pick(alts).clone();
                fill(cx, name, &a, out, page);
            }
            Item::Hole { kind, key, after } => {
                let v = match (kind, key.as_deref(), after.as_deref()) {
                    // UFFDIO_MOVE moves into a mapped (registered) range; mremap to a free one.
                    (Hole::Addr, _, Some("to")) if name == "uffd_move" => {
                        format!("@{}", cx.page())
                    }
                    (Hole::Addr, _, Some("to")) => format!("@{}", cx.destination()),
                    (Hole::Addr, _, Some("of")) => "@0".to_string(),
                    (Hole::Addr, _, _) if name.starts_with("mmap") => {
                        *page = FREE;
                        format!("@{FREE}")
                    }
                    (Hole::Addr, _, _) => {
                        *page = if cx.whole || ALIGNED.contains(&name) && cx.r.chance(60) {
                            cx.start()
                        } else {
                            cx.page()
                        };
                        format!("@{page}")
                    }
                    (Hole::Value, _, _) => cx.value().to_string(),
                    (Hole::Number, Some("pages"), _) => cx.pages(*page).to_string(),
                    (Hole::Number, Some("order"), _) => (1 + cx.r.below(3)).to_string(),
                    (Hole::Number, Some("new_order"), _) => cx.r.below(3).to_string(),
                    (Hole::Number, _, _) => (1 + cx.r.below(3)).to_string(),
                };
                match key {
                    Some(k) => out.push(format!("{k}={v}")),
                    None => out.push(v),
                }
            }
        }
    }
}

/// How often each operation is drawn, relative to the others (0: never).
fn weight(name: &str) -> u64 {
    match name {
        // An assertion about a final state the generator does not know.
        "check" => 0,
        // Only after `fork` in the same thread (see `thread_ops`).
        "child_exit" => 0,
        "madvise dontneed" => 12,
        "load" | "store" => 16,
        "fault" => 10,
        "gup_fast" | "rcu_walk" => 8,
        // What reclaim, migration and address-space changes do to a table others use.
        "try_to_unmap" | "migrate" | "madvise pageout" | "madvise free" | "munmap" | "mremap" => 7,
        "mmap" | "fork" | "mprotect" => 5,
        _ => 4,
    }
}

/// One operation line, drawn by weight among the modelled operations.
fn op(cx: &mut Ctx<'_>) -> String {
    let ops: Vec<_> = OPS.iter().filter(|o| o.modelled()).collect();
    let boost = &cx.layout.boost;
    let w = |name: &str| weight(name) * if boost.contains(&name) { 3 } else { 1 };
    let total: u64 = ops.iter().map(|o| w(o.name)).sum();
    let mut x = cx.r.below(total);
    let spec = ops
        .iter()
        .find(|o| {
            let w = w(o.name);
            if x < w {
                true
            } else {
                x -= w;
                false
            }
        })
        .expect("weights sum to total");
    op_of(cx, spec)
}

/// A line of operation `spec`, its arguments drawn.
fn op_of(cx: &mut Ctx<'_>, spec: &OpSpec) -> String {
    let items = template::parse(spec.name, spec.syntax).expect("every syntax line is a template");
    let mut out = vec![spec.name.to_string()];
    let mut page = cx.layout.focus;
    // A range operation over a whole PTE table or PMD range: what PT reclaim, a PMD-level
    // zap, a whole-table mremap and a THP need.
    cx.whole = spec.syntax.contains("pages=N")
        && !spec.name.starts_with("mmap")
        && cx.r.chance(cx.whole_pct);
    fill(cx, spec.name, &items, &mut out, &mut page);
    cx.whole = false;
    out.join(" ")
}

/// The operation of a line (the longest name it starts with).
fn spec_of(line: &str) -> Option<&'static OpSpec> {
    OPS.iter()
        .filter(|o| line == o.name || line.starts_with(&format!("{} ", o.name)))
        .max_by_key(|o| o.name.len())
}

/// One thread's program: one or two operations; `fork` may be followed by `child_exit`. An
/// operation is sometimes one of `others` (another thread's) again, as it is or with its
/// arguments drawn again: two faults, two zaps or two stores on one table race each other.
fn thread_ops(cx: &mut Ctx<'_>, n: usize, others: &[Vec<String>]) -> Vec<String> {
    let mut ops = Vec::new();
    let theirs: Vec<&String> = others
        .iter()
        .flatten()
        .filter(|l| l.as_str() != "child_exit")
        .collect();
    // An operation chain aimed at what `init` made, drawn first so that a chain of two keeps
    // its room.
    let aim = if cx.aim_pct > 0 && cx.r.chance(cx.aim_pct) {
        cx.aim(n)
    } else {
        None
    };
    // A thread of two operations often touches the focus page first: its TLB then caches the
    // translation a racing zap, unmap or protection change must flush.
    if n >= 2 && !matches!(&aim, Some(c) if c.len() >= n) && cx.r.chance(40) {
        let f = cx.layout.focus;
        ops.push(if cx.r.chance(50) {
            format!("load @{f}")
        } else {
            let v = cx.value();
            format!("store @{f} = {v}")
        });
    }
    if let Some(chain) = aim {
        ops.extend(chain.into_iter().take(n - ops.len()));
    }
    while ops.len() < n {
        // Another aimed chain (cut to the thread's length).
        if cx.aim_pct > 0 && cx.r.chance(cx.aim_pct) {
            let room = n - ops.len();
            if let Some(chain) = cx.aim(room) {
                ops.extend(chain.into_iter().take(room));
                continue;
            }
        }
        let again = if !theirs.is_empty() && cx.r.chance(30) {
            let l = theirs[cx.r.below(theirs.len() as u64) as usize];
            spec_of(l).map(|spec| (l, spec))
        } else {
            None
        };
        let o = match again {
            Some((l, _)) if cx.r.chance(60) => l.clone(),
            Some((_, spec)) => op_of(cx, spec),
            None => op(cx),
        };
        let fork = o == "fork";
        let access = o.starts_with("load ") || o.starts_with("store ");
        let next = if ops.len() + 1 < n {
            follow_up(cx, &o)
        } else {
            None
        };
        ops.push(o);
        if let Some(f) = next {
            ops.push(f);
        }
        // After an operation that changes the mapping, a load of the focus page sees what it
        // left (a zap lost, a stale translation).
        if !access && !fork && ops.len() < n && cx.r.chance(30) {
            ops.push(format!("load @{}", cx.layout.focus));
        }
        if fork && ops.len() < n && cx.r.chance(40) {
            ops.push("child_exit".to_string());
        }
    }
    ops
}

/// The words of `line` after its operation's name, and the value of its `key=` argument.
fn arg<'l>(line: &'l str, key: &str) -> Option<&'l str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// A second operation of the same thread that uses what `line` left, on the same address: the
/// chains the kernel's windows are made of (register a range, then protect or fill it; pin a
/// page, then read what the device wrote; zap, then touch again; fault, then zap; read twice).
/// Drawn for some lines only, by what the operation does, never by a protocol.
fn follow_up(cx: &mut Ctx<'_>, line: &str) -> Option<String> {
    let spec = spec_of(line)?;
    let addr = line.split_whitespace().find(|w| w.starts_with('@'))?;
    let pages = arg(line, "pages").unwrap_or("1");
    let f = match spec.name {
        // UFFDIO_REGISTER, then UFFDIO_WRITEPROTECT or UFFDIO_COPY into the range.
        "uffd_register" if cx.r.chance(70) => {
            if line.contains(" wp") && (!line.contains(" missing") || cx.r.chance(50)) {
                format!("uffd_wp {addr} pages={pages}")
            } else {
                let v = cx.value();
                format!("uffd_copy {addr} = {v}")
            }
        }
        // A pin (direct I/O into the page), then a read of what it wrote.
        "gup_fast" if cx.r.chance(60) => format!("load {addr}"),
        // A zap, then a touch of the range again (a refault, a TLB entry that must be gone).
        "madvise dontneed" | "madvise free" | "madvise pageout" | "munmap" if cx.r.chance(40) => {
            if cx.r.chance(70) {
                format!("load {addr}")
            } else {
                let v = cx.value();
                format!("store {addr} = {v}")
            }
        }
        // A fault that populates a table (or a huge zero PMD), then a zap of its whole range.
        "fault" if cx.r.chance(30) => {
            let p: u64 = addr[1..].parse().ok()?;
            let start = match cx.layout.moved {
                Some((m, n)) if (m..m + n).contains(&p) => m,
                _ => p - p % REGION,
            };
            format!("madvise dontneed @{start} pages={}", cx.end(p) - start)
        }
        // A reader that reads twice (the second read sees a lost write).
        "load" if cx.r.chance(25) => line.to_string(),
        _ => return None,
    };
    Some(f)
}

/// The `init` block and what it leaves.
fn init(r: &mut Prng) -> (Layout, Vec<String>) {
    let a = *r.pick(&["anon", "anon", "anon", "shmem", "shmem-private"]);
    let huge = r.chance(35);
    let mut lines = vec![format!(
        "mmap {a} @0 pages={REGION}{}",
        if huge { " huge" } else { "" }
    )];
    let b = r.chance(if a == "shmem" { 55 } else { 40 });
    // Region B a private view of region A's file (what a retracted folio under a registered
    // private mapping needs).
    let mut view = false;
    if b {
        lines.push(match (a, r.below(3)) {
            ("anon", _) | (_, 0) => format!("mmap anon @{REGION} pages={REGION}"),
            (_, 1) => format!("mmap shmem @{REGION} pages={REGION} of @0"),
            _ => {
                view = true;
                format!("mmap shmem-private @{REGION} pages={REGION} of @0")
            }
        });
    }
    // A growsdown stack at the top of region B, to grow into the rest.
    let stack = !b && r.chance(8);
    if stack {
        lines.push(format!("mmap_stack @{} pages={}", REGION + 4, 4));
    }
    // All of region A, its first half (an mTHP of order 2: what a small collapse needs), or
    // pages at random.
    // pages at random, or none (no PTE table yet: what racing first faults need).
    let (dense, sparse) = match r.below(100) {
        0..=24 => (REGION, 45),
        25..=39 => (REGION / 2, 45),
        40..=51 => (0, 0),
        _ => (0, 45),
    };
    let mut faulted = Vec::new();
    for p in 0..if b || stack { 2 * REGION } else { REGION } {
        if stack && (REGION..REGION + 4).contains(&p) {
            continue;
        }
        if p < dense || r.chance(sparse) {
            lines.push(format!("store @{p} = {}", 10 + p));
            faulted.push(p);
        }
    }
    let mut focus = if !faulted.is_empty() && r.chance(75) {
        *r.pick(&faulted)
    } else {
        r.below(REGION)
    };
    let mut moved = None;
    let mut boost: Vec<&'static str> = Vec::new();
    if huge {
        boost.extend(["numa_hint", "madvise free", "split_huge_page", "migrate"]);
    }
    if a == "shmem" {
        boost.extend(["try_to_unmap", "retract", "punch_hole"]);
    }
    if faulted.is_empty() {
        boost.extend(["fault"]);
    }
    if stack {
        boost.extend(["munmap"]);
    }
    // One state made by operations, sometimes two (in the order of the table: a folio
    // retracted into the page cache, then the private view over it registered).
    // Only states that apply to this mapping are drawn; a lazyfree small page three times as
    // often (the state reclaim's races need, and the rarest to come up otherwise).
    let mut fits: Vec<u64> = (0..9)
        .filter(|&k| match k {
            0 => a == "anon" && faulted.contains(&focus),
            1 => faulted.contains(&focus),
            2 => true,
            3 => a == "shmem",
            4 => huge && faulted.contains(&0),
            5 => a == "anon",
            6 => a != "anon",
            7 => a == "anon" && !b && !stack,
            _ => b,
        })
        .collect();
    if fits.contains(&0) && !huge {
        fits.extend([0, 0]);
    }
    let mut ks = Vec::new();
    if a == "shmem" && view && r.chance(60) {
        // A folio retracted into the page cache under a registered private view of its file.
        ks.extend([3, 8]);
    } else if r.chance(55) {
        ks.push(*r.pick(&fits));
        if r.chance(30) {
            ks.push(*r.pick(&fits));
            ks.sort_unstable();
            ks.dedup();
        }
    }
    let retracted = ks.contains(&3);
    // The lazyfree page, if any.
    let mut lazy = None;
    // Whether region B was registered for missing pages.
    let mut missing_b = false;
    for k in ks {
        boost.extend(match k {
            0 => &["madvise pageout", "gup_fast"][..],
            1 => &["fault", "gup_fast", "split_huge_page"][..],
            2 => &["uffd_copy", "uffd_wp", "uffd_move", "retract"][..],
            3 => &["collapse_pte_mapped_thp", "uffd_copy"][..],
            4 => &[
                "gup_fast",
                "folio_walk",
                "madvise dontneed",
                "split_huge_page",
            ][..],
            5 => &["mremap", "migrate", "rmap_walk"][..],
            6 => &["try_to_unmap", "truncate", "fault"][..],
            7 => &["mremap", "munmap", "fault"][..],
            _ => &["uffd_copy", "collapse_pte_mapped_thp", "uffd_move"][..],
        });
        let extra = match k {
            0 if a == "anon" => {
                lazy = Some(focus);
                format!("madvise free @{focus} pages=1")
            }
            1 if faulted.contains(&focus) => format!("migrate @{focus} unmap"),
            2 => format!(
                "uffd_register @0 pages={REGION}{}",
                if r.chance(50) { " missing" } else { " wp" }
            ),
            // A retracted table, its folio mapped again by PTEs (a PTE-mapped THP) or not.
            3 if a == "shmem" => {
                if r.chance(50) {
                    format!(
                        "retract @0
  load @{focus}"
                    )
                } else {
                    "retract @0".to_string()
                }
            }
            // A THP under migration: its PMD a migration entry (`init` cannot collapse;
            // a huge mapping's first store maps a THP).
            4 if huge && faulted.contains(&0) => "migrate @0 unmap".to_string(),
            // The second half of region A moved away: its VMA's page offset no longer matches
            // its address (the rmap-order case of mremap).
            5 if a == "anon" => {
                let n = REGION - MOVED_FROM;
                // A page in the moved range, for a migration to race the move back.
                let mut store = String::new();
                if !faulted.iter().any(|p| (MOVED_FROM..REGION).contains(p)) {
                    let p = MOVED_FROM + r.below(n);
                    faulted.push(p);
                    store = format!("store @{p} = {}\n  ", 10 + p);
                }
                let off = focus.saturating_sub(MOVED_FROM).min(n - 1);
                if faulted.contains(&focus) && focus >= MOVED_FROM {
                    focus = MOVED_TO + off;
                }
                moved = Some((MOVED_TO, n));
                format!("{store}mremap @{MOVED_FROM} pages={n} to @{MOVED_TO}")
            }
            // A shared page reclaimed: its PTE cleared, the folio in the page cache.
            6 if a != "anon" => format!("madvise pageout @{focus} pages=1"),
            // A neighbour of region A with an anon_vma of its own: a page faulted elsewhere
            // and moved next to region A by `mremap`, so the two VMAs cannot merge.
            7 if a == "anon" && !b && !stack && moved.is_none() => {
                if r.chance(50) {
                    focus = REGION;
                }
                format!(
                    "mmap anon @{NEIGHBOUR_FROM} pages=1
  store @{NEIGHBOUR_FROM} = 9
  mremap @{NEIGHBOUR_FROM} pages=1 to @{REGION}"
                )
            }
            // Region B (a second mapping, perhaps a private view of region A's file)
            // registered with userfaultfd, perhaps with a page of it mapped first.
            8 if b => {
                let p = REGION + r.below(REGION);
                if r.chance(70) {
                    focus = p;
                }
                // Over a retracted folio, mostly its first page mapped by a PTE (what
                // collapse_pte_mapped_thp collapses) and registered for missing pages.
                let load = if r.chance(if retracted { 80 } else { 50 }) {
                    format!("load @{REGION}\n  ")
                } else {
                    String::new()
                };
                missing_b = r.chance(if retracted { 90 } else { 60 });
                format!(
                    "{load}uffd_register @{REGION} pages={REGION}{}",
                    if missing_b { " missing" } else { " wp" }
                )
            }
            _ => String::new(),
        };
        lines.extend(
            extra
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty()),
        );
    }
    let mut layout = Layout {
        a,
        b,
        faulted,
        focus,
        moved,
        stack,
        boost,
        aims: Vec::new(),
    };
    layout.aims = aims(r, &layout, huge, lazy, retracted && view && missing_b);
    (layout, lines)
}

/// Operation chains aimed at what `init` made, each for one thread: reclaim of the lazyfree
/// page `lazy` against a store to it or a pin of it (the discard must see the dirty bit or the
/// extra reference); `madvise free` or `numa_hint` of a PMD-mapped THP against a zap of it
/// (a PMD cleared and set again under the zap); `collapse_pte_mapped_thp` of a retracted folio
/// in a registered private view against `uffd_copy` into it (`uffd_b`); the moved range moved
/// back (into the VMA it came from) against a migration of its page.
fn aims(r: &mut Prng, l: &Layout, huge: bool, lazy: Option<u64>, uffd_b: bool) -> Vec<String> {
    let (a, focus, moved, faulted) = (l.a, l.focus, l.moved, &l.faulted);
    // Where a page of region A is after the move in `init`.
    let at = |p: u64| match moved {
        Some((m, n)) if (MOVED_FROM..MOVED_FROM + n).contains(&p) => m + p - MOVED_FROM,
        _ => p,
    };
    let mut aims = Vec::new();
    // A lazyfree small page (`madvise free` of one page of a THP leaves no lazyfree page to
    // reclaim).
    if let Some(p) = lazy.filter(|_| !huge) {
        let p = at(p);
        aims.push(format!("madvise pageout @{p} pages=1"));
        aims.push(format!("store @{p} = {{v}}\nload @{p}"));
        aims.push(format!("gup_fast @{p} write = {{v}}\nload @{p}"));
    }
    // A PMD-mapped anonymous THP: a huge mapping whose first store mapped it, not split by a
    // move.
    let stored: Vec<u64> = faulted.iter().copied().filter(|&p| p < REGION).collect();
    if a == "anon" && huge && moved.is_none() && !stored.is_empty() {
        aims.push(format!("madvise free @0 pages={REGION}"));
        aims.push(format!("numa_hint @0 pages={REGION}"));
        // The load reads a page `init` stored to: a zap the THP survived shows.
        let p = if stored.contains(&focus) {
            focus
        } else {
            *r.pick(&stored)
        };
        aims.push(format!("madvise dontneed @0 pages={REGION}\nload @{p}"));
    }
    // A shared page touched then unmapped or write-protected while reclaim's batched
    // `try_to_unmap` clears its PTE and defers the flush (`flush_tlb_batched_pending`).
    if a == "shmem" && !huge && !stored.is_empty() {
        let p = if stored.contains(&focus) {
            focus
        } else {
            *r.pick(&stored)
        };
        aims.push(format!("try_to_unmap @{p}"));
        aims.push(format!("load @{p}\nmunmap @{p} pages=1"));
        aims.push(format!(
            "store @{p} = {{v}}\nmprotect @0 pages={REGION} read"
        ));
    }
    if uffd_b {
        aims.push(format!("collapse_pte_mapped_thp @{REGION}"));
        let q = REGION + 1 + r.below(REGION - 1);
        aims.push(format!("uffd_copy @{q} = {{v}}"));
    }
    if let Some((m, n)) = moved {
        aims.push(format!("mremap @{m} pages={n} to @{MOVED_FROM}"));
        let pages: Vec<u64> = faulted
            .iter()
            .filter(|&&p| (MOVED_FROM..REGION).contains(&p))
            .map(|&p| at(p))
            .collect();
        if !pages.is_empty() {
            aims.push(format!("migrate @{}", r.pick(&pages)));
        }
    }
    aims
}

/// A fresh draft (not yet checked by the parser).
fn draw(r: &mut Prng) -> Draft {
    let (layout, init) = init(r);
    let threads = match r.below(100) {
        0..=64 => 2,
        65..=92 => 3,
        _ => 4,
    };
    let mut cx = Ctx {
        r,
        layout: &layout,
        next_value: 100,
        whole: false,
        whole_pct: 0,
        aim_pct: 0,
        aimed: Vec::new(),
    };
    cx.whole_pct = if cx.r.chance(40) { 70 } else { 15 };
    cx.aim_pct = *cx.r.pick(&[0, 30, 60]);
    let mut progs = Vec::new();
    let mut left = MAX_OPS;
    for t in 0..threads {
        let room = left - (threads - t - 1);
        // Two operations more often when an aim is a chain of two.
        let two = if layout.aims.iter().any(|a| a.contains('\n')) {
            55
        } else {
            40
        };
        let n = if room >= 2 && cx.r.chance(two) { 2 } else { 1 };
        left -= n;
        let prog = thread_ops(&mut cx, n, &progs);
        progs.push(prog);
    }
    Draft {
        layout: layout.clone(),
        init,
        threads: progs,
    }
}

/// Draws before giving up: the parser refuses a few percent of drafts, never this many in a row
/// unless an operation's syntax line and its parser disagree (a bug the tests catch).
const ATTEMPTS: u32 = 1000;

/// Draw until the parser accepts: a valid draft, its scenario and the draws it took.
fn valid(
    r: &mut Prng,
    name: &str,
    mut next: impl FnMut(&mut Prng) -> Draft,
) -> (Draft, Scenario, u32) {
    for n in 1..=ATTEMPTS {
        let d = next(r);
        if let Ok(s) = d.parse(name) {
            return (d, s, n);
        }
    }
    panic!(
        "{ATTEMPTS} drafts in a row refused by the parser: a syntax line disagrees with its parser"
    )
}

/// The scenario of `seed`, named `fuzz-SEED`.
pub fn generate(seed: u64) -> (Draft, Generated) {
    let mut r = Prng::new(seed);
    let name = format!("fuzz-{seed}");
    let (d, scenario, _) = valid(&mut r, &name, draw);
    let text = d.render(&name, &[], "clean");
    (
        d,
        Generated {
            seed,
            text,
            scenario,
        },
    )
}

/// A valid neighbour of `d`: one operation replaced, added or dropped, a thread added or
/// dropped, or the `init` block drawn again (the thread programs kept).
pub fn mutate(d: &Draft, seed: u64) -> (Draft, Scenario) {
    let mut r = Prng::new(seed);
    let name = format!("fuzz-{seed}");
    let (d, s, _) = valid(&mut r, &name, |r| {
        let mut n = d.clone();
        let mut cx = Ctx {
            r,
            layout: &d.layout,
            next_value: 200,
            whole: false,
            whole_pct: 35,
            aim_pct: 20,
            aimed: Vec::new(),
        };
        let t = cx.r.below(n.threads.len() as u64) as usize;
        match cx.r.below(6) {
            0 | 1 => {
                let i = cx.r.below(n.threads[t].len() as u64) as usize;
                let aimed = if cx.r.chance(cx.aim_pct) {
                    cx.aim(1).and_then(|c| c.into_iter().next())
                } else {
                    None
                };
                n.threads[t][i] = aimed.unwrap_or_else(|| op(&mut cx));
            }
            2 if n.ops() < MAX_OPS => n.threads[t].push(op(&mut cx)),
            3 if n.threads.len() < 4 && n.ops() < MAX_OPS => {
                let prog = thread_ops(&mut cx, 1, &n.threads);
                n.threads.push(prog);
            }
            4 if n.threads.len() > 2 => {
                n.threads.remove(t);
            }
            _ => {
                let (layout, init) = init(cx.r);
                n.layout = layout;
                n.init = init;
            }
        }
        n
    });
    (d, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_valid_and_within_bounds() {
        for seed in 0..300 {
            let (d, g) = generate(seed);
            assert_eq!(g.text, generate(seed).1.text);
            assert!((2..=4).contains(&g.scenario.threads.len()), "{}", g.text);
            assert!(d.ops() <= MAX_OPS, "{}", g.text);
            let (m, _) = mutate(&d, seed);
            assert!(m.ops() <= MAX_OPS && !m.threads.is_empty());
        }
        assert_ne!(generate(1).1.text, generate(2).1.text);
    }

    #[test]
    fn the_parser_refuses_few_drafts() {
        let draws: u32 = (0..500)
            .map(|seed| valid(&mut Prng::new(seed), "t", draw).2)
            .sum();
        assert!(draws < 600, "{draws} draws for 500 valid scenarios");
    }

    /// The paths the aims are for come up in a fair share of fresh draws: a thread reclaiming
    /// the lazyfree page against a store to it, against a pin of it; `madvise free`, `numa_hint`
    /// of the THP against its zap; `collapse_pte_mapped_thp` against `uffd_copy`; the move back
    /// against a migration (2026-12-03, seeds 0 to 1499: 31, 26, 66, 63, 16 and 53 threads;
    /// about 2, 0, 0, 1, 0 and 0 scenarios before the aims).
    #[test]
    fn aims_draw_the_paths_of_what_init_made() {
        // Threads other than `t` with a line starting with `w`.
        let other = |d: &Draft, t: usize, w: &str| {
            d.threads
                .iter()
                .enumerate()
                .any(|(u, ops)| u != t && ops.iter().any(|o| o.starts_with(w)))
        };
        let mut n = [0; 6];
        for seed in 0..1500 {
            let (d, _) = generate(seed);
            let lazy = d.layout.aims.iter().find_map(|a| {
                a.strip_prefix("madvise pageout @")
                    .and_then(|r| r.strip_suffix(" pages=1"))
            });
            for (t, ops) in d.threads.iter().enumerate() {
                let has = |w: &str| ops.iter().any(|o| o.starts_with(w));
                if let Some(p) = lazy {
                    if has(&format!("madvise pageout @{p} ")) {
                        n[0] += other(&d, t, &format!("store @{p} ")) as usize;
                        n[1] += other(&d, t, &format!("gup_fast @{p} ")) as usize;
                    }
                }
                if d.layout.aims.iter().any(|a| a.starts_with("numa_hint")) {
                    let zap = "madvise dontneed @0 pages=8";
                    n[2] += (has("madvise free @0 pages=8") && other(&d, t, zap)) as usize;
                    n[3] += (has("numa_hint @0 pages=8") && other(&d, t, zap)) as usize;
                }
                if d.layout.aims.iter().any(|a| a.starts_with("collapse_pte")) {
                    n[4] +=
                        (has("collapse_pte_mapped_thp @8") && other(&d, t, "uffd_copy @")) as usize;
                }
                if let Some((m, _)) = d.layout.moved {
                    let back = format!("mremap @{m} ");
                    if has(&back)
                        && ops
                            .iter()
                            .any(|o| o.ends_with(&format!("to @{MOVED_FROM}")))
                    {
                        n[5] += d
                            .layout
                            .aims
                            .iter()
                            .any(|a| a.starts_with("migrate") && other(&d, t, a))
                            as usize;
                    }
                }
            }
        }
        assert!(
            n.iter().all(|&k| k >= 5) && n.iter().sum::<usize>() >= 100,
            "{n:?}"
        );
    }

    #[test]
    fn covers_every_modelled_operation() {
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..2000 {
            let (d, _) = generate(seed);
            for op in d.threads.iter().flatten() {
                let name = OPS
                    .iter()
                    .filter(|o| op.starts_with(o.name))
                    .max_by_key(|o| o.name.len())
                    .map(|o| o.name);
                seen.extend(name);
            }
        }
        for o in OPS.iter().filter(|o| o.modelled() && o.name != "check") {
            assert!(seen.contains(o.name), "'{}' never generated", o.name);
        }
    }
}
