//! Built-in scenarios written with the builder: the explorer's reference scenario (used by
//! `mmcheck bench explore` and the completeness test).

use crate::{Backing, Op, Scenario, SetupOp, Verdict};

/// A correct three-thread scenario with about 40 visible steps per thread, all on one PTE table:
/// a thread storing and loading, a thread faulting a neighbour page in, and a thread zapping a
/// third page with MADV_DONTNEED (PT reclaim does not fire: the range is partial).
///
/// It is the explorer's benchmark, so its workload stays fixed across versions: `need_resched()`
/// in `zap_pte_range` is not explored here (`zap.need_resched = off`), which would double the
/// executions; the catalogue's scenarios explore it.
pub fn reference() -> Scenario {
    let mut s = Scenario::new("reference")
        .doc("store/load vs fault vs MADV_DONTNEED on one PTE table; clean");
    s.protocol
        .set("zap.need_resched", "off")
        .expect("a valid switch");
    let p = |n| s.page(n);
    let (a0, a1, a2, a4) = (p(0), p(1), p(2), p(4));
    s.clone()
        .setup(SetupOp::Mmap {
            addr: a0,
            pages: 8,
            backing: Backing::AnonPrivate,
            huge: false,
        })
        .setup(SetupOp::Store { addr: a0, value: 1 })
        .setup(SetupOp::Store { addr: a4, value: 4 })
        .thread(vec![
            Op::Store { addr: a0, value: 2 },
            Op::Load { addr: a0 },
            Op::Load { addr: a1 },
        ])
        .thread(vec![
            Op::Fault {
                addr: a2,
                write: true,
            },
            Op::Store { addr: a2, value: 3 },
        ])
        .thread(vec![Op::DontNeed { addr: a4, pages: 1 }])
        .expect(None, Verdict::Clean)
}
