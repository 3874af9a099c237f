//! Sets and binary relations over the events of one execution, as bitsets (at most
//! [`MAX_EVENTS`] events): the algebra of herd7's cat language, `;` (seq), `|`, `&`, `\`,
//! `^-1`, `+`, `*`, `?`, `[S]`, `S * T`, and the `acyclic`/`irreflexive`/`empty` checks.

/// The most events one execution may have.
pub const MAX_EVENTS: usize = 128;

/// A set of events.
pub type Set = u128;

/// The events of `set`, in order.
pub fn members(mut set: Set) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if set == 0 {
            None
        } else {
            let k = set.trailing_zeros() as usize;
            set &= set - 1;
            Some(k)
        }
    })
}

/// A binary relation over `n` events: row `i` holds the events `i` is related to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rel {
    rows: Vec<Set>,
}

impl Rel {
    /// The empty relation.
    pub fn empty(n: usize) -> Rel {
        Rel { rows: vec![0; n] }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.iter().all(|r| *r == 0)
    }

    /// The identity on `set`: `[set]`.
    pub fn id_on(n: usize, set: Set) -> Rel {
        let mut r = Rel::empty(n);
        for i in members(set) {
            r.rows[i] |= 1 << i;
        }
        r
    }

    /// The identity on every event.
    pub fn id(n: usize) -> Rel {
        Rel::id_on(n, all(n))
    }

    /// `a * b`: every pair from `a` to `b`.
    pub fn cross(n: usize, a: Set, b: Set) -> Rel {
        let mut r = Rel::empty(n);
        for i in members(a) {
            r.rows[i] = b;
        }
        r
    }

    pub fn add(&mut self, i: usize, j: usize) {
        self.rows[i] |= 1 << j;
    }

    pub fn has(&self, i: usize, j: usize) -> bool {
        self.rows[i] >> j & 1 == 1
    }

    pub fn row(&self, i: usize) -> Set {
        self.rows[i]
    }

    pub fn union(&self, o: &Rel) -> Rel {
        Rel {
            rows: self.rows.iter().zip(&o.rows).map(|(a, b)| a | b).collect(),
        }
    }

    pub fn inter(&self, o: &Rel) -> Rel {
        Rel {
            rows: self.rows.iter().zip(&o.rows).map(|(a, b)| a & b).collect(),
        }
    }

    pub fn minus(&self, o: &Rel) -> Rel {
        Rel {
            rows: self.rows.iter().zip(&o.rows).map(|(a, b)| a & !b).collect(),
        }
    }

    /// `self ; o`
    pub fn seq(&self, o: &Rel) -> Rel {
        Rel {
            rows: self
                .rows
                .iter()
                .map(|&r| members(r).fold(0, |acc, k| acc | o.rows[k]))
                .collect(),
        }
    }

    /// `self^-1`
    pub fn inv(&self) -> Rel {
        let mut r = Rel::empty(self.len());
        for (i, &row) in self.rows.iter().enumerate() {
            for j in members(row) {
                r.rows[j] |= 1 << i;
            }
        }
        r
    }

    /// `[a] ; self ; [b]`
    pub fn restrict(&self, a: Set, b: Set) -> Rel {
        Rel {
            rows: self
                .rows
                .iter()
                .enumerate()
                .map(|(i, &r)| if a >> i & 1 == 1 { r & b } else { 0 })
                .collect(),
        }
    }

    /// `self+`
    pub fn plus(&self) -> Rel {
        let mut rows = self.rows.clone();
        for k in 0..rows.len() {
            let rk = rows[k];
            for row in rows.iter_mut() {
                if *row >> k & 1 == 1 {
                    *row |= rk;
                }
            }
        }
        Rel { rows }
    }

    /// `self*`
    pub fn star(&self) -> Rel {
        self.plus().union(&Rel::id(self.len()))
    }

    /// `self?`
    pub fn opt(&self) -> Rel {
        self.union(&Rel::id(self.len()))
    }

    pub fn irreflexive(&self) -> bool {
        self.rows.iter().enumerate().all(|(i, r)| r >> i & 1 == 0)
    }

    pub fn acyclic(&self) -> bool {
        self.plus().irreflexive()
    }

    /// `domain(self)`
    pub fn domain(&self) -> Set {
        self.rows
            .iter()
            .enumerate()
            .fold(0, |acc, (i, &r)| if r != 0 { acc | 1 << i } else { acc })
    }

    /// `range(self)`
    pub fn range(&self) -> Set {
        self.rows.iter().fold(0, |acc, r| acc | r)
    }
}

/// Every one of `n` events.
pub fn all(n: usize) -> Set {
    if n >= 128 {
        u128::MAX
    } else {
        (1u128 << n) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(n: usize, pairs: &[(usize, usize)]) -> Rel {
        let mut r = Rel::empty(n);
        for &(i, j) in pairs {
            r.add(i, j);
        }
        r
    }

    #[test]
    fn seq_inverse_and_closures() {
        let a = rel(4, &[(0, 1), (1, 2)]);
        let b = rel(4, &[(2, 3)]);
        assert_eq!(a.seq(&a), rel(4, &[(0, 2)]));
        assert_eq!(a.seq(&b), rel(4, &[(1, 3)]));
        assert_eq!(a.inv(), rel(4, &[(1, 0), (2, 1)]));
        assert_eq!(a.plus(), rel(4, &[(0, 1), (1, 2), (0, 2)]));
        assert!(a.star().has(3, 3) && a.star().has(0, 2));
        assert!(a.acyclic());
        assert!(!a.union(&rel(4, &[(2, 0)])).acyclic());
        assert!(!rel(4, &[(1, 1)]).acyclic());
        assert_eq!(a.restrict(0b10, all(4)), rel(4, &[(1, 2)]));
        assert_eq!(a.domain(), 0b011);
        assert_eq!(a.range(), 0b110);
        assert_eq!(Rel::cross(3, 0b001, 0b110), rel(3, &[(0, 1), (0, 2)]));
        assert_eq!(members(0b1010).collect::<Vec<_>>(), vec![1, 3]);
    }

    #[test]
    fn full_width() {
        let mut r = Rel::empty(128);
        r.add(127, 0);
        r.add(0, 127);
        assert!(!r.acyclic());
        assert_eq!(all(128), u128::MAX);
    }
}
