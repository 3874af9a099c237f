//! The explorer's step loop allocates nothing once a worker's pools have grown (issue:
//! cheaper executions): a step's scheduling work — the enabled mask, the decision, the
//! footprint, the clock record, lock tracking, the coroutine switch — and the machine's own
//! work for plain shared words, spinlocks, choices and lock-protected cells. Counted by the
//! crate's counting allocator, installed here.

use mmcheck_explore::allocs::{allocations, Counting};
use mmcheck_explore::exec::{Exec, StackPool};
use mmcheck_explore::toy::{Op, Program};
use std::sync::Arc;

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Executions run before counting: the pools (stacks, clock tables, lock tracking) grow in
/// the first ones.
const WARM: usize = 8;

#[test]
fn the_step_loop_allocates_nothing_once_warm() {
    use Op::*;
    // Three threads over two words, two spinlocks and a lock-protected cell, with a choice:
    // the toy's thread code itself keeps nothing per operation for these.
    let prog = Arc::new(Program {
        vars: 2,
        locks: 2,
        frames: 0,
        threads: vec![
            vec![
                Lock(0),
                Write(0, 1),
                LockedWrite(1, 2),
                Unlock(0),
                Add(1, 1),
            ],
            vec![Lock(1), Lock(0), WriteEither(1, 2, 3), Unlock(0), Unlock(1)],
            vec![
                Add(0, 5),
                Lock(0),
                LockedWrite(1, 3),
                Unlock(0),
                Write(1, 7),
            ],
        ],
    });
    let mut pool = StackPool::default();
    let mut steps = 0;
    for i in 0..64 {
        let mut ex = Exec::new(&prog, &mut pool, false);
        let before = allocations();
        while let Ok(Some(enabled)) = ex.next_enabled(ex.sched.len(), 1_000) {
            // Rotate the starting thread, so that executions differ.
            let n = ex.threads() as u32;
            let t = (0..n)
                .map(|k| (k + i as u32 + ex.sched.len() as u32) % n)
                .find(|&t| enabled & 1 << t != 0)
                .expect("an enabled thread");
            ex.step(t as usize);
        }
        let made = allocations() - before;
        assert!(!ex.violated(), "{:?}", ex.violation());
        steps += ex.sched.len();
        if i >= WARM {
            assert_eq!(
                made,
                0,
                "execution {i} allocated {made} times in {} steps",
                ex.sched.len()
            );
        }
        ex.finish(&mut pool, true);
    }
    assert!(steps > 64 * 15, "the executions ran: {steps} steps");
}
