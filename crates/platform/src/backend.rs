//! Backends execute visible operations. `NativeBackend` runs them directly on real OS threads:
//! a visible operation is a no-op announcement and a blocking wait spins, then yields. The explore
//! backend (explorer crate) implements the same trait with coroutines and a scheduler.

use crate::event::{Event, Obj};
use crate::violation::{Limit, Violation};
use std::panic::Location;

/// How a [`crate::Machine`] executes visible operations.
pub trait Backend: Send + Sync {
    /// `cpu` is about to perform `ev`. Explore: a scheduling point. Native: nothing.
    fn visible(&self, cpu: usize, ev: Event);

    /// `cpu` wants to perform `ev`, which can only proceed once `ready()` holds (a lock is free, a
    /// grace period ended, every CPU left IRQ-off). Explore: blocking is an enabledness condition,
    /// the thread is not scheduled until `ready()` holds, and this call is its scheduling point.
    /// Native: spin until `ready()`. Either way the caller then retries its atomic operation.
    fn block(&self, cpu: usize, ev: Event, ready: &dyn Fn() -> bool);

    /// A violation was recorded. Explore stops the execution; native lets the run continue so the
    /// stress driver can report it.
    fn violation(&self, cpu: usize, v: &Violation);

    /// The execution ran into a limit of the tool (the frame pool): explore ends it as
    /// inconclusive. Native: nothing (the caller sees the failure, as the kernel would).
    fn limit(&self, _cpu: usize, _l: Limit) {}

    /// A trylock announced as `TryAcquire` succeeded (`ok`) or not: lock trackers need to know.
    fn trylock_result(&self, _cpu: usize, _lock: u64, _ok: bool) {}

    /// Strict mode: `cpu` touches `obj` (a read or write of shared model state) at `loc`. The
    /// explore backend checks that the step running now announced an event that covers `obj`
    /// ([`crate::event::covers`]) and reports an unannounced access otherwise. Native: nothing.
    #[inline]
    fn touch(&self, _cpu: usize, _obj: Obj, _loc: &'static Location<'static>) {}

    /// `cpu` allocated the frames `[pfn, pfn + (1 << order))` in the step running now: until a
    /// later step publishes them, nobody else can reach them, so this step may initialise them.
    #[inline]
    fn allocated(&self, _cpu: usize, _pfn: u32, _order: u32) {}

    /// A read of shared state that bypasses the protocol (`peek`): only allowed outside the
    /// threads' steps (set-up, quiescent checks, reports). Explore reports it inside a step.
    #[inline]
    fn peek(&self, _loc: &'static Location<'static>) {}

    /// True if the machine should keep its naming log ([`crate::naming`]): only while a trace is
    /// recorded, never while exploring.
    fn naming(&self) -> bool {
        false
    }

    /// True once the execution is over: daemon threads (the RCU callback thread) return.
    fn stopping(&self) -> bool {
        false
    }

    /// The outcome the scheduler picked for `cpu`'s choice step that just ran (see
    /// [`crate::Cpu::choose`]). Natively the common case: 0.
    fn choice(&self, _cpu: usize) -> u8 {
        0
    }
}

/// Real threads, real atomics.
#[derive(Debug, Default)]
pub struct NativeBackend;

impl Backend for NativeBackend {
    #[inline]
    fn visible(&self, _cpu: usize, _ev: Event) {}

    fn block(&self, _cpu: usize, _ev: Event, ready: &dyn Fn() -> bool) {
        let mut spins = 0u32;
        while !ready() {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    fn violation(&self, _cpu: usize, _v: &Violation) {}
}
