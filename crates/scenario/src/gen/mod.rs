//! Random scenarios, as `.mmt` text parsed like a file: [`small`] for cross-validating the
//! explorer's strategies (naive enumeration against DPOR), [`wide`] over the whole operation
//! vocabulary for `mmcheck fuzz`. Deterministic from the seed: a splitmix64 generator, no hashing.

pub mod small;
pub mod template;
pub mod wide;

pub use small::generate;

use crate::Scenario;

/// splitmix64 (Steele, Lea, Flood 2014): small, seedable, no dependencies.
#[derive(Clone, Debug)]
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Self {
        Prng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `pct` percent.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

/// A generated scenario: its seed, its text and the parsed form.
#[derive(Clone, Debug)]
pub struct Generated {
    pub seed: u64,
    pub text: String,
    pub scenario: Scenario,
}
