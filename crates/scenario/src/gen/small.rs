//! Small random kernel scenarios for cross-validating the explorer's strategies: the naive
//! enumerator against DPOR (`tests/dpor_vs_naive_kernel.rs`). Each is `.mmt` text (so a
//! disagreement prints as a file to check in) and is parsed like one.
//!
//! The shape keeps most cases within reach of naive enumeration, whose cost is
//! `C(n0 + n1, n0)` for threads of `n0` and `n1` visible steps: a 2-level geometry of 4 entries
//! (the shortest walks), one PTE table of 4 pages (`@0..@3`) mapped and partly faulted in `init`,
//! and two threads of at most 3 operations, mostly on one focus page so that they conflict:
//! a heavier operation (a zap or a fault: 17 to 40 steps; sometimes a migration, collapse, munmap
//! or mremap, usually beyond the cap) against a tiny one (an RCU walk: 4 steps, GUP-fast or a
//! load of a faulted page: about 9); tiny operations on both sides; or a lookup (rmap walk,
//! folio walk, migration) placed after a tiny operation, so that when it looks its folio up
//! varies. A `check` of the focus page (no step of its own, true in the initial state) may end
//! a thread: it reads the state in the step of the thread's previous event.
//!
//! Deterministic from the seed: a splitmix64 generator, no hashing.

use super::{Generated, Prng};

/// Pages of the one mapped PTE table.
const PAGES: u64 = 4;

/// What the generator knows of the initial state, and the page most operations aim at.
struct Init {
    shmem: bool,
    /// Value stored in each page by `init` (`None`: never faulted).
    value: [Option<u64>; PAGES as usize],
    focus: u64,
}

impl Init {
    /// The focus page mostly, so that the threads conflict.
    fn page(&self, r: &mut Prng) -> u64 {
        if r.chance(80) {
            self.focus
        } else {
            r.below(PAGES)
        }
    }

    fn faulted(&self, p: u64) -> bool {
        self.value[p as usize].is_some()
    }
}

/// Operations of a few steps (4 to 11 on this geometry): an RCU walk, GUP-fast, or a load or
/// store of a faulted page.
fn tiny(r: &mut Prng, init: &Init, v: u64) -> String {
    let p = init.page(r);
    match r.below(6) {
        0 | 1 => format!("rcu_walk @{p}"),
        2 => format!("gup_fast @{p} read"),
        3 => format!(
            "gup_fast @{p} write = {v}{}",
            if r.chance(50) { " pin" } else { "" }
        ),
        // Of a page not faulted in, a load or store is a fault: heavy.
        _ if !init.faulted(p) => format!("rcu_walk @{p}"),
        4 => format!("load @{p}"),
        _ => format!("store @{p} = {v}"),
    }
}

/// Operations that find their folio by a lookup (12 to 50 steps).
fn lookup(r: &mut Prng, init: &Init) -> String {
    let p = init.page(r);
    match r.below(if init.shmem { 4 } else { 3 }) {
        0 => format!("rmap_walk @{p}"),
        1 => format!(
            "folio_walk @{p} {}",
            if r.chance(50) { "ptl" } else { "ref" }
        ),
        2 => format!("migrate @{p}"),
        _ => format!("try_to_unmap @{p}"),
    }
}

/// Operations that change the tables: mostly the cheaper ones (17 to 40 steps), sometimes a
/// migration, collapse, munmap or mremap (50 to 100 steps, usually beyond naive's cap).
fn heavy(r: &mut Prng, init: &Init, v: u64) -> String {
    let p = init.page(r);
    if r.chance(75) {
        return match r.below(5) {
            0 | 1 => format!("madvise dontneed @{p} pages=1"),
            2 => format!("madvise dontneed @0 pages={PAGES}"),
            3 => format!("fault @{p} {}", if r.chance(50) { "read" } else { "write" }),
            _ if r.chance(50) => format!("load @{p}"),
            _ => format!("store @{p} = {v}"),
        };
    }
    match r.below(if init.shmem { 6 } else { 4 }) {
        0 => format!("migrate @{p}"),
        1 if r.chance(70) => "madvise collapse @0".to_string(),
        1 => "khugepaged @0".to_string(),
        2 => format!("munmap @{p} pages=1"),
        3 => format!("mremap @{p} pages=1 to @8"),
        4 => format!("try_to_unmap @{p}"),
        _ => "collapse_pte_mapped_thp @0".to_string(),
    }
}

/// A `check` of the focus page that holds in the initial state.
fn check(r: &mut Prng, init: &Init) -> String {
    let p = init.focus;
    match init.value[p as usize] {
        None => format!("check @{p} unmapped"),
        Some(v) if r.chance(50) => format!("check @{p} value = {v}"),
        Some(_) => format!("check @{p} small"),
    }
}

/// The scenario of `seed`.
pub fn generate(seed: u64) -> Generated {
    let mut r = Prng::new(seed);
    let mut init = Init {
        shmem: r.chance(30),
        value: [None; PAGES as usize],
        focus: 0,
    };
    let mut text = format!("scenario gen-{seed}\ngeometry levels=2 entries=4\n");
    match r.below(8) {
        0 => text.push_str("protocol linux-6.1\n"),
        1 => text.push_str("protocol linux-6.6\n"),
        2 => text.push_str("set gather.batch = 1\n"),
        _ => {}
    }
    text.push_str(&format!(
        "init {{\n  mmap {} @0 pages={PAGES}\n",
        if init.shmem { "shmem" } else { "anon" }
    ));
    for p in 0..PAGES {
        if r.chance(60) {
            let v = 10 + p;
            init.value[p as usize] = Some(v);
            text.push_str(&format!("  store @{p} = {v}\n"));
        }
    }
    text.push_str("}\n");
    let faulted: Vec<u64> = (0..PAGES).filter(|&p| init.faulted(p)).collect();
    init.focus = if !faulted.is_empty() && r.chance(75) {
        *r.pick(&faulted)
    } else {
        r.below(PAGES)
    };
    // Store values are distinct so outcomes tell the writers apart.
    let mut val = 100;
    let mut v = || {
        val += 1;
        val
    };
    let mut threads: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    match r.below(20) {
        // A heavier operation against a tiny one, perhaps checked afterwards.
        0..=9 => {
            threads[0].push(heavy(&mut r, &init, v()));
            threads[1].push(tiny(&mut r, &init, v()));
            if r.chance(30) {
                threads[1].push(check(&mut r, &init));
            }
        }
        // Tiny operations on both sides, perhaps a second one, perhaps checked.
        10..=14 => {
            for ops in threads.iter_mut() {
                ops.push(tiny(&mut r, &init, v()));
                if r.chance(25) {
                    ops.push(tiny(&mut r, &init, v()));
                }
                if r.chance(20) {
                    ops.push(check(&mut r, &init));
                }
            }
        }
        // A lookup after a tiny operation (so the lookup's timing varies) against a tiny one.
        15..=17 => {
            threads[0].push(tiny(&mut r, &init, v()));
            threads[0].push(lookup(&mut r, &init));
            threads[1].push(tiny(&mut r, &init, v()));
        }
        // A lookup against a heavier operation: mostly beyond naive's cap.
        _ => {
            threads[0].push(lookup(&mut r, &init));
            threads[1].push(heavy(&mut r, &init, v()));
        }
    }
    if r.chance(50) {
        threads.swap(0, 1);
    }
    for (i, ops) in threads.iter().enumerate() {
        text.push_str(&format!("thread T{i} {{\n"));
        for op in ops {
            text.push_str(&format!("  {op}\n"));
        }
        text.push_str("}\n");
    }
    text.push_str("expect clean\n");
    let scenario = crate::parse_scenario(&format!("gen-{seed}.mmt"), &text)
        .unwrap_or_else(|e| panic!("generated scenario does not parse:\n{text}\n{}", e.render()));
    Generated {
        seed,
        text,
        scenario,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_parses() {
        for seed in 0..500 {
            let a = generate(seed);
            assert_eq!(a.text, generate(seed).text);
            assert_eq!(a.scenario.threads.len(), 2);
            assert!(a.scenario.threads.iter().all(|t| t.len() <= 3));
        }
        assert_ne!(generate(1).text, generate(2).text);
    }
}
