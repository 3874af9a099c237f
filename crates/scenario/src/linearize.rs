//! The user-data oracle: loads and stores (user accesses, and the words GUP and `folio_walk`
//! callers read or write through the page they got; and what MADV_DONTNEED does to anonymous
//! memory) must be
//! linearizable against an abstract address space, one word per page (Herlihy and Wing's
//! linearizability, checked per address by a memoized search over the operations' real-time
//! order; Wing and Gong's algorithm). A store that is never observed when it must be is a
//! `lost-write`; a load that returns a value already overwritten is a `stale-read`.
//!
//! MADV_FREE makes an anonymous page lazyfree: until the next store to it, reclaim may discard
//! it, so a load returns its old value or zero; once a load saw zero, the page is a fresh one.

use std::collections::{BTreeMap, HashSet};

/// What an operation did to one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HKind {
    Store(u64),
    Load(u64),
    /// MADV_DONTNEED of anonymous memory: the next access sees a fresh zero page.
    Zero,
    /// MADV_FREE of anonymous memory: the old value or zero, until the next store.
    Free,
}

impl std::fmt::Display for HKind {
    /// As a kernel developer writes it: `store 9`, `load 0`, `MADV_DONTNEED`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HKind::Store(v) => write!(f, "store {v}"),
            HKind::Load(v) => write!(f, "load {v}"),
            HKind::Zero => f.write_str("MADV_DONTNEED"),
            HKind::Free => f.write_str("MADV_FREE"),
        }
    }
}

/// One operation on one address, with its invocation and response times.
#[derive(Clone, Copy, Debug)]
pub struct HOp {
    pub thread: usize,
    pub addr: u64,
    pub kind: HKind,
    pub inv: u64,
    pub resp: u64,
}

/// Check every address; `Err((is_stale_read, explanation))` for the first that is not
/// linearizable.
pub fn check(ops: &[HOp], initial: &BTreeMap<u64, u64>) -> Result<(), (bool, String)> {
    check_lazy(ops, initial, &std::collections::BTreeSet::new())
}

/// [`check`], with the addresses in `lazy` starting lazyfree (MADV_FREE in the set-up).
pub fn check_lazy(
    ops: &[HOp],
    initial: &BTreeMap<u64, u64>,
    lazy: &std::collections::BTreeSet<u64>,
) -> Result<(), (bool, String)> {
    let mut by_addr: BTreeMap<u64, Vec<HOp>> = BTreeMap::new();
    for op in ops {
        by_addr.entry(op.addr).or_default().push(*op);
    }
    for (addr, ops) in by_addr {
        if ops.len() > 24 || !ops.iter().any(|o| matches!(o.kind, HKind::Load(_))) {
            continue;
        }
        let init = initial.get(&addr).copied().unwrap_or(0);
        let mut memo = HashSet::new();
        let lz = init != 0 && lazy.contains(&addr);
        if !search(&ops, 0, init, lz, &mut memo) {
            let stale = ops.iter().any(|o| match o.kind {
                HKind::Load(v) => v != 0 && ops.iter().any(|s| s.kind == HKind::Store(v)),
                _ => false,
            });
            let hist: Vec<String> = ops
                .iter()
                .map(|o| format!("T{} {} [{}, {}]", o.thread, o.kind, o.inv, o.resp))
                .collect();
            return Err((
                stale,
                format!(
                    "accesses to {addr:#x} (initially {init}) are not linearizable: {}",
                    hist.join("; ")
                ),
            ));
        }
    }
    Ok(())
}

/// Can the operations not in `done` be linearized from `value` (`lazy`: MADV_FREE since the last
/// store, so zero may be read instead)?
fn search(
    ops: &[HOp],
    done: u32,
    value: u64,
    lazy: bool,
    memo: &mut HashSet<(u32, u64, bool)>,
) -> bool {
    if done.count_ones() as usize == ops.len() {
        return true;
    }
    if !memo.insert((done, value, lazy)) {
        return false;
    }
    for (i, op) in ops.iter().enumerate() {
        if done & (1 << i) != 0 {
            continue;
        }
        // Every operation that responded before this one was invoked must come first.
        let blocked = ops
            .iter()
            .enumerate()
            .any(|(j, p)| j != i && done & (1 << j) == 0 && p.resp < op.inv);
        if blocked {
            continue;
        }
        let next = match op.kind {
            HKind::Store(v) => (v, false),
            HKind::Zero => (0, false),
            HKind::Free => (value, value != 0),
            HKind::Load(v) if v == value => (value, lazy),
            // Reclaim discarded the lazyfree page: a fresh zero page from now on.
            HKind::Load(0) if lazy => (0, false),
            HKind::Load(_) => continue,
        };
        if search(ops, done | 1 << i, next.0, next.1, memo) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(thread: usize, kind: HKind, inv: u64, resp: u64) -> HOp {
        HOp {
            thread,
            addr: 0x1000,
            kind,
            inv,
            resp,
        }
    }

    #[test]
    fn sequential_and_concurrent_histories() {
        let none = BTreeMap::new();
        // store 1, then load 1: fine; load 0 after the store completed: lost write.
        assert!(check(
            &[op(0, HKind::Store(1), 0, 1), op(1, HKind::Load(1), 2, 3)],
            &none
        )
        .is_ok());
        let e = check(
            &[op(0, HKind::Store(1), 0, 1), op(1, HKind::Load(0), 2, 3)],
            &none,
        )
        .unwrap_err();
        assert!(!e.0);
        // Overlapping: the load may see either.
        assert!(check(
            &[op(0, HKind::Store(1), 0, 3), op(1, HKind::Load(0), 1, 2)],
            &none
        )
        .is_ok());
        assert!(check(
            &[op(0, HKind::Store(1), 0, 3), op(1, HKind::Load(1), 1, 2)],
            &none
        )
        .is_ok());
        // A zap racing a store: either order, but a later load must agree with one of them.
        let z = [
            op(0, HKind::Store(5), 0, 3),
            op(1, HKind::Zero, 1, 2),
            op(0, HKind::Load(0), 4, 5),
        ];
        assert!(check(&z, &none).is_ok());
        // Stale: store 1 then store 2 completed, then load 1.
        let s = [
            op(0, HKind::Store(1), 0, 1),
            op(0, HKind::Store(2), 2, 3),
            op(1, HKind::Load(1), 4, 5),
        ];
        assert!(check(&s, &none).unwrap_err().0);
        // Initial value from the setup.
        let init = BTreeMap::from([(0x1000, 7)]);
        assert!(check(&[op(0, HKind::Load(7), 0, 1)], &init).is_ok());
    }

    #[test]
    fn madv_free_reads_old_or_zero_until_the_next_store() {
        let init = BTreeMap::from([(0x1000, 7)]);
        // MADV_FREE, then loads: 7, then 0 (discarded), then 0 again; never 7 after a 0.
        let ok = [
            op(0, HKind::Free, 0, 1),
            op(0, HKind::Load(7), 2, 3),
            op(0, HKind::Load(0), 4, 5),
            op(0, HKind::Load(0), 6, 7),
        ];
        assert!(check(&ok, &init).is_ok());
        let back = [
            op(0, HKind::Free, 0, 1),
            op(0, HKind::Load(0), 2, 3),
            op(0, HKind::Load(7), 4, 5),
        ];
        assert!(check(&back, &init).is_err());
        // A store after MADV_FREE must survive: the lazyfree oracle.
        let lost = [
            op(0, HKind::Free, 0, 1),
            op(0, HKind::Store(9), 2, 3),
            op(0, HKind::Load(0), 4, 5),
        ];
        assert!(!check(&lost, &init).unwrap_err().0);
        // Without MADV_FREE a zero is a lost write.
        assert!(check(&[op(0, HKind::Load(0), 0, 1)], &init).is_err());
    }
}
