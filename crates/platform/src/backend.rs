//! Backends execute visible operations. `NativeBackend` runs them directly on real OS threads:
//! a visible operation is a no-op announcement and a blocking wait spins, then yields. The explore
//! backend (explorer crate) implements the same trait with coroutines and a scheduler.

use crate::event::{Event, Obj};
use crate::violation::{Limit, Violation};
use std::panic::Location;

/// Most threads a model may have: happens-before clocks ([`Backend::clock`]) have one component
/// per thread.
pub const CLOCK_THREADS: usize = 8;

/// A happens-before vector clock: component `u` counts thread `u`'s events in the past.
pub type Clock = [u32; CLOCK_THREADS];

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

    /// True if this backend checks [`Backend::touch`], [`Backend::peek`] and
    /// [`Backend::allocated`] (the explorer's strict mode): the machine asks once, when it is
    /// made, and makes none of those calls otherwise.
    fn strict(&self) -> bool {
        false
    }

    /// Strict mode: `cpu` touches `obj` (a read or write of shared model state) at `loc`. The
    /// explore backend checks that the step running now announced an event that covers `obj`
    /// ([`crate::event::covers`]) and reports an unannounced access otherwise. Native: nothing.
    #[inline]
    fn touch(&self, _cpu: usize, _obj: Obj, _loc: &'static Location<'static>) {}

    /// `cpu` reads (`write` false) or writes the [`crate::Locked`] cell `id` (`label` names it
    /// in reports when `id` names something else) at `loc` without
    /// announcing the read (a write is announced first). The explore backend checks the access
    /// against the cell's `log` with the running step's happens-before clock and reports an
    /// unordered pair as a `data-race` violation (every mode). Native: nothing.
    #[inline]
    fn guarded(
        &self,
        _cpu: usize,
        _id: u64,
        _label: Option<&'static str>,
        _log: &crate::shared::GuardLog,
        _write: bool,
        _loc: &'static Location<'static>,
    ) {
    }

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

    /// The CPU whose step is running, if the backend runs one step at a time (the explorer);
    /// `None` during set-up and final checks, and always on the native backend. New objects
    /// take their ids from that CPU's own range (see [`crate::Machine::new_id`]).
    fn running(&self) -> Option<usize> {
        None
    }

    /// The outcome the scheduler picked for `cpu`'s choice step that just ran (see
    /// [`crate::Cpu::choose`]). Natively the common case: 0.
    fn choice(&self, _cpu: usize) -> u8 {
        0
    }

    /// Keep the sync clocks of acquiring events for this execution (weak loads,
    /// `memory.load_reorder`): from now on [`Backend::sync_clock`] answers. The explore backend
    /// answers [`Backend::clock`] and [`Backend::events_of`] always (it computes clocks when
    /// asked; `Locked` cells ask too).
    fn track_clocks(&self) {}

    /// The happens-before clock of thread `thread`'s `k`-th event (from 1) of this execution,
    /// computed by the explorer from the same dependency relation its reduction uses, so that
    /// anything the model derives from it is the same in every equivalent interleaving. `None`
    /// without clocks (native, set-up).
    fn clock(&self, _thread: usize, _k: u32) -> Option<Clock> {
        None
    }

    /// For an acquiring event (a lock acquisition or trylock, the start of an RCU or IRQ-off
    /// section) of thread `thread`, its `k`-th: the join of the clocks of the latest event of
    /// each other thread it depends on (what it synchronizes with: a release, a grace period,
    /// a shootdown), without the thread's own past. `None` otherwise, or without
    /// [`Backend::track_clocks`].
    fn sync_clock(&self, _thread: usize, _k: u32) -> Option<Clock> {
        None
    }

    /// How many events `cpu` has run in this execution, the running step's included (0
    /// natively or outside the threads' steps).
    fn events_of(&self, _cpu: usize) -> u32 {
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
