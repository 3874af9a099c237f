//! `mmcheck stress`: the model on real threads. N threads share one mm and run random faults,
//! loads, stores, mmaps, munmaps and MADV_DONTNEEDs. Each thread owns interleaved chunks of one
//! window (so threads share PMD and PTE tables and their locks) plus one PMD-aligned region of its
//! own (so whole-table MADV_DONTNEED reclaims tables under the others' feet), and checks every
//! value it reads back against its own shadow. At the end the quiescent invariants and the
//! leak check run.

use mmcheck_kernel::arch::fault::{user_load, user_store};
use mmcheck_kernel::check::check_quiescent;
use mmcheck_kernel::mm::madvise::madvise_dontneed;
use mmcheck_kernel::mm::types::MmStruct;
use mmcheck_kernel::mm::vma::{do_mmap, do_munmap, exit_mmap, mm_alloc, mmdrop, MapBacking};
use mmcheck_kernel::{Ctx, Geometry, Kernel, Protocol};
use mmcheck_platform::ViolationKind;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const BASE: u64 = 0x4000_0000_0000;
const PG: u64 = 4096;
const CHUNK: u64 = 256;
const CHUNKS_PER_THREAD: u64 = 4;
/// The per-thread PMD-aligned regions start here (pages from BASE).
const BIG_BASE: u64 = 1 << 16;

/// What a thread believes about one of its mappings.
#[derive(Clone)]
struct Mapping {
    pages: u64,
    shmem: bool,
    /// Page → last value stored (absent: never written, or dropped on anon).
    values: BTreeMap<u64, u64>,
}

/// Outcome of a stress run.
pub struct StressReport {
    pub ops: u64,
    pub elapsed: Duration,
    pub violations: Vec<String>,
}

struct Thread<'a> {
    cx: Ctx<'a>,
    mm: &'a MmStruct,
    rng: ChaCha8Rng,
    id: u64,
    nthreads: u64,
    /// start page → mapping, inside this thread's chunks and big region.
    maps: BTreeMap<u64, Mapping>,
    counter: u64,
    errors: Vec<String>,
}

impl Thread<'_> {
    /// Page ranges this thread owns: `(start, len)`.
    fn regions(&self) -> Vec<(u64, u64)> {
        let mut r: Vec<(u64, u64)> = (0..CHUNKS_PER_THREAD)
            .map(|c| ((c * self.nthreads + self.id) * CHUNK, CHUNK))
            .collect();
        r.push((BIG_BASE + self.id * 1024, 1024));
        r
    }

    fn addr(p: u64) -> u64 {
        BASE + p * PG
    }

    fn find(&self, page: u64) -> Option<(u64, &Mapping)> {
        self.maps
            .range(..=page)
            .next_back()
            .filter(|(s, m)| page < *s + m.pages)
            .map(|(s, m)| (*s, m))
    }

    fn op_mmap(&mut self) {
        let regions = self.regions();
        let (rs, rl) = regions[self.rng.gen_range(0..regions.len())];
        let big = rl > CHUNK;
        let pages = if big && self.rng.gen_bool(0.5) {
            512
        } else {
            self.rng.gen_range(1..=64.min(rl))
        };
        let start = if big && pages == 512 {
            rs + 512 * self.rng.gen_range(0..2)
        } else {
            rs + self.rng.gen_range(0..=rl - pages)
        };
        if (start..start + pages).any(|p| self.find(p).is_some()) {
            return;
        }
        let shmem = self.rng.gen_bool(0.3);
        let b = if shmem {
            MapBacking::ShmemShared
        } else {
            MapBacking::AnonPrivate
        };
        match do_mmap(
            self.cx,
            self.mm,
            Self::addr(start),
            pages * PG,
            b,
            true,
            false,
        ) {
            Ok(_) => {
                self.maps.insert(
                    start,
                    Mapping {
                        pages,
                        shmem,
                        values: BTreeMap::new(),
                    },
                );
            }
            Err(e) => self.errors.push(format!("mmap {start}+{pages}: {e}")),
        }
    }

    fn pick_mapping(&mut self) -> Option<u64> {
        if self.maps.is_empty() {
            return None;
        }
        let i = self.rng.gen_range(0..self.maps.len());
        self.maps.keys().nth(i).copied()
    }

    fn op_munmap(&mut self) {
        let Some(s) = self.pick_mapping() else { return };
        let m = self.maps.remove(&s).expect("picked");
        // Whole, or a head/tail piece (VMA split).
        let (us, ul) = match self.rng.gen_range(0..3) {
            0 => (s, m.pages),
            1 => (s, self.rng.gen_range(1..=m.pages)),
            _ => {
                let off = self.rng.gen_range(0..m.pages);
                (s + off, m.pages - off)
            }
        };
        if let Err(e) = do_munmap(self.cx, self.mm, Self::addr(us), ul * PG) {
            self.errors.push(format!("munmap {us}+{ul}: {e}"));
        }
        if us > s {
            let pages = us - s;
            let values = m.values.range(s..us).map(|(k, v)| (*k, *v)).collect();
            self.maps.insert(
                s,
                Mapping {
                    pages,
                    shmem: m.shmem,
                    values,
                },
            );
        }
        if us + ul < s + m.pages {
            let ns = us + ul;
            let values = m.values.range(ns..).map(|(k, v)| (*k, *v)).collect();
            self.maps.insert(
                ns,
                Mapping {
                    pages: s + m.pages - ns,
                    shmem: m.shmem,
                    values,
                },
            );
        }
    }

    fn op_dontneed(&mut self) {
        let Some(s) = self.pick_mapping() else { return };
        let pages = self.maps[&s].pages;
        let (ds, dl) = if self.rng.gen_bool(0.5) {
            (s, pages)
        } else {
            let off = self.rng.gen_range(0..pages);
            (s + off, self.rng.gen_range(1..=pages - off))
        };
        if let Err(e) = madvise_dontneed(self.cx, self.mm, Self::addr(ds), dl * PG) {
            self.errors.push(format!("dontneed {ds}+{dl}: {e}"));
        }
        let m = self.maps.get_mut(&s).expect("picked");
        if !m.shmem {
            let gone: Vec<u64> = m.values.range(ds..ds + dl).map(|(k, _)| *k).collect();
            for k in gone {
                m.values.remove(&k);
            }
        }
    }

    fn op_store(&mut self) {
        let Some(s) = self.pick_mapping() else { return };
        let page = s + self.rng.gen_range(0..self.maps[&s].pages);
        self.counter += 1;
        let v = (self.id + 1) << 48 | self.counter;
        match user_store(self.cx, self.mm, Self::addr(page), v) {
            Ok(()) => {
                self.maps
                    .get_mut(&s)
                    .expect("picked")
                    .values
                    .insert(page, v);
            }
            Err(e) => self.errors.push(format!("store to own page {page}: {e}")),
        }
    }

    fn verify(&mut self, page: u64) {
        let want = self
            .find(page)
            .map(|(_, m)| m.values.get(&page).copied().unwrap_or(0));
        let Some(want) = want else { return };
        match user_load(self.cx, self.mm, Self::addr(page)) {
            Ok(v) if v == want => {}
            Ok(v) => self.errors.push(format!(
                "{}: thread {} page {page}: read {v:#x}, last wrote {want:#x}",
                if v == 0 {
                    ViolationKind::LostWrite
                } else {
                    ViolationKind::StaleRead
                },
                self.id
            )),
            Err(e) => self.errors.push(format!("load of own page {page}: {e}")),
        }
    }

    fn op_load(&mut self) {
        let Some(s) = self.pick_mapping() else { return };
        let page = s + self.rng.gen_range(0..self.maps[&s].pages);
        self.verify(page);
    }

    fn op_foreign_load(&mut self) {
        // Anywhere in the shared window: results are not checked, faults may SIGSEGV.
        let page = self
            .rng
            .gen_range(0..CHUNK * CHUNKS_PER_THREAD * self.nthreads);
        let _ = user_load(self.cx, self.mm, Self::addr(page));
    }

    fn step(&mut self) {
        match self.rng.gen_range(0..100) {
            0..=9 => self.op_mmap(),
            10..=15 => self.op_munmap(),
            16..=25 => self.op_dontneed(),
            26..=60 => self.op_store(),
            61..=90 => self.op_load(),
            _ => self.op_foreign_load(),
        }
    }
}

/// Run `threads` threads for `seconds` with `seed`.
pub fn run(threads: usize, seconds: f64, seed: u64, proto: Protocol) -> StressReport {
    let k = Kernel::native(Geometry::X86_64, proto, threads, 1 << 16);
    let mm = mm_alloc(k.ctx(0)).expect("mm_alloc");
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let deadline = Duration::from_secs_f64(seconds);
    let mut ops = 0;
    let mut violations = Vec::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (k, mm, stop) = (&k, &*mm, &stop);
                s.spawn(move || {
                    let mut th = Thread {
                        cx: k.ctx(t),
                        mm,
                        rng: ChaCha8Rng::seed_from_u64(
                            seed ^ (t as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                        ),
                        id: t as u64,
                        nthreads: threads as u64,
                        maps: BTreeMap::new(),
                        counter: 0,
                        errors: Vec::new(),
                    };
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..64 {
                            th.step();
                            n += 1;
                        }
                        if start.elapsed() >= deadline
                            || k.machine.violated()
                            || !th.errors.is_empty()
                        {
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                    // Final verification of every page this thread ever wrote.
                    let pages: Vec<u64> = th
                        .maps
                        .iter()
                        .flat_map(|(s, m)| (*s..*s + m.pages).filter(|p| m.values.contains_key(p)))
                        .collect();
                    for p in pages {
                        th.verify(p);
                    }
                    (n, th.errors)
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok((n, errs)) => {
                    ops += n;
                    violations.extend(errs);
                }
                Err(_) => violations.push("a stress thread panicked".to_string()),
            }
        }
    });
    let elapsed = start.elapsed();
    violations.extend(k.machine.violations().iter().map(|v| v.to_string()));
    for (kind, msg) in check_quiescent(&k) {
        violations.push(format!("{kind}: {msg}"));
    }
    let cx = k.ctx(0);
    exit_mmap(cx, &mm);
    mmdrop(cx, &mm);
    drop(mm);
    for (kind, msg) in check_quiescent(&k) {
        violations.push(format!("after exit: {kind}: {msg}"));
    }
    let leaked =
        k.machine.frames.nr_used() - 1 - k.huge_zero_peek().map_or(0, |_| 1 << k.geo.pmd_order());
    if leaked != 0 {
        violations.push(format!("leak: {leaked} frames still allocated after exit"));
    }
    violations.dedup();
    StressReport {
        ops,
        elapsed,
        violations,
    }
}
