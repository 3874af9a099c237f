//! One execution: the explore backend of the platform layer, and the coroutines that run a
//! model's threads. Each thread is suspended at its next visible operation (its pending request);
//! resuming it performs that operation and runs on to the next one. A blocking operation carries
//! its readiness predicate, which the scheduler evaluates: a thread that cannot proceed is simply
//! not enabled, never busy-waiting.
//!
//! The backend is shared between the machine (which calls it from inside the coroutines) and the
//! scheduler. Everything runs on one OS thread, so its state lives in `Cell`s.

use crate::deps::{dependent, Key};
use crate::{Finish, Model};
use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult, Yielder};
use mmcheck_platform::event::covers;
use mmcheck_platform::{
    Access, Backend, BufferedStore, Event, Limit, Machine, Obj, Violation, ViolationKind,
};
use std::cell::{Cell, RefCell};
use std::panic::Location;
use std::rc::Rc;
use std::sync::Arc;

/// Most threads a model may have (vector clocks are fixed arrays of this size).
pub const MAX_THREADS: usize = mmcheck_platform::CLOCK_THREADS;

/// Bits of a decision that name the thread; the rest name a choice's outcome.
const THREAD_BITS: u32 = MAX_THREADS.trailing_zeros();

/// Most outcomes a choice step may have (`Cpu::choose`).
pub const MAX_CHOICES: u8 = 1 << (8 - THREAD_BITS);

/// A scheduling decision in one byte: the thread, and the outcome of its step if that step is a
/// choice (0 otherwise). Schedules and tokens are sequences of decisions.
pub fn decision(t: usize, outcome: u8) -> u8 {
    debug_assert!(t < MAX_THREADS && outcome < MAX_CHOICES);
    t as u8 | (outcome << THREAD_BITS)
}

/// The thread of a decision.
pub fn thread_of(d: usize) -> usize {
    d & (MAX_THREADS - 1)
}

/// The choice outcome of a decision.
pub fn choice_of(d: usize) -> u8 {
    (d >> THREAD_BITS) as u8
}

/// What a suspended thread wants to do next: its event, and for a blocking operation its
/// readiness predicate. A struct, not an enum: the event sits at one offset, so the copies a
/// step makes of it are plain moves.
#[derive(Clone, Copy)]
pub struct Req {
    event: Event,
    /// SAFETY: the predicate lives on the suspended coroutine's stack and is only called while
    /// that coroutine is suspended at the `block` that created it.
    ready: Option<*const (dyn Fn() -> bool + 'static)>,
}

impl Req {
    pub fn event(&self) -> Event {
        self.event
    }

    /// True if the thread can take its step now.
    #[inline]
    fn ready(&self) -> bool {
        match self.ready {
            None => true,
            // SAFETY: see `Req::ready`.
            Some(p) => unsafe { (*p)() },
        }
    }

    /// True for a blocking operation.
    pub fn is_block(&self) -> bool {
        self.ready.is_some()
    }
}

type Y = Yielder<(), Req>;

/// The explore backend.
pub struct Core {
    yielders: [Cell<*const Y>; MAX_THREADS],
    /// Tearing down: visible operations no longer yield (guards still run their drops).
    aborting: Cell<bool>,
    /// Recording mode: capture the kernel function at each visible operation.
    recording: Cell<bool>,
    machine: Cell<*const Machine>,
    /// Kernel function at each thread's pending operation (recording mode).
    funcs: [Cell<&'static str>; MAX_THREADS],
    violation: RefCell<Option<Violation>>,
    /// A tool limit the execution ran into (the frame pool): it ends inconclusive.
    limit: RefCell<Option<Limit>>,
    /// Trylocks that succeeded during the current step: (thread, lock).
    trylocks: RefCell<Vec<(usize, u64)>>,
    /// Strict mode (see [`Model::strict`]).
    strict: bool,
    /// The thread whose step is running, if any (none during set-up and final checks).
    running: Cell<Option<usize>>,
    /// The event each thread's running step announced (`None` before its first one; strict
    /// mode only).
    current: [Cell<Option<Event>>; MAX_THREADS],
    /// Frames allocated by the running step (strict mode only).
    fresh: RefCell<Vec<u32>>,
    /// The outcome picked for each thread's pending choice step (see `Cpu::choose`).
    choice: [Cell<u8>; MAX_THREADS],
    /// Happens-before clocks of the steps, computed when asked (see [`Clocks`]).
    clocks: RefCell<Clocks>,
}

/// The happens-before clock of every step of the execution (see `Backend::clock`): the same
/// computation as DPOR's, over the footprints the dependency relation sees. Steps are recorded
/// as they run and given their clocks only when something asks (weak loads, whose every store
/// asks; a `Locked` cell's access that another thread's access may race): most executions
/// never ask, and pay for a push of the footprint per step only.
#[derive(Default)]
struct Clocks {
    /// Steps without a clock yet, in execution order: the thread and the footprint.
    pending: Vec<(usize, Event)>,
    /// Per thread, its events so far (with a clock or pending).
    count: [u32; MAX_THREADS],
    /// The execution's steps so far.
    total: u32,
    /// Keep the sync clocks of acquiring events (weak loads ask for them, `track_clocks`).
    with_sync: bool,
    /// Per thread, its events in order.
    events: [Vec<Clocked>; MAX_THREADS],
    /// Per thread, for each of its acquiring events (see [`acquires`]), the event number and
    /// the join of the clocks of the latest dependent event of each other thread: what the
    /// event synchronizes with, without the thread's own program-order past.
    sync: [Vec<(u32, [u32; MAX_THREADS])>; MAX_THREADS],
}

/// One event with its clock (see [`Clocks::events`]).
struct Clocked {
    /// The footprint.
    ev: Event,
    key: Key,
    clock: [u32; MAX_THREADS],
    /// The execution's step number of the event.
    step: u32,
}

/// Events whose synchronization a weak load's floor takes (see `Backend::sync_clock`).
fn acquires(a: Access) -> bool {
    matches!(
        a,
        Access::Acquire
            | Access::AcquireShared
            | Access::TryAcquire
            | Access::RcuLock
            | Access::IrqDisable
    )
}

impl Clocks {
    /// Thread `t` runs its next event, whose footprint is `ev`.
    fn record(&mut self, t: usize, ev: Event) {
        self.pending.push((t, ev));
        self.count[t] += 1;
        self.total += 1;
    }

    /// Thread `t`'s step just recorded has clock `c` (and key `key`), computed by the caller
    /// with this same computation (DPOR's, over the same footprints). If it is the only step without a clock,
    /// it takes `c` and no scan runs; if a step asked already, the clocks agree (checked in
    /// debug builds); with sync clocks kept, or earlier steps still without one, the step waits
    /// for [`Clocks::catch_up`] as before.
    fn give(&mut self, t: usize, c: [u32; MAX_THREADS], key: Key) {
        if self.with_sync {
            return;
        }
        match *self.pending.as_slice() {
            [(u, ev)] if u == t => {
                debug_assert!(Key::of(&ev) == key);
                self.pending.clear();
                self.events[t].push(Clocked {
                    ev,
                    key,
                    clock: c,
                    step: self.total - 1,
                });
            }
            [] => debug_assert_eq!(
                self.events[t].last().map(|e| e.clock),
                Some(c),
                "the strategy's clock of T{t}'s step is the backend's"
            ),
            _ => {}
        }
    }

    /// The execution's step number of thread `t`'s `k`-th event (from 1).
    fn step_of(&mut self, t: usize, k: u32) -> u32 {
        self.catch_up();
        self.events[t][k as usize - 1].step
    }

    /// Forget the execution, keeping the allocations.
    fn clear(&mut self) {
        self.pending.clear();
        self.count = [0; MAX_THREADS];
        self.total = 0;
        self.events.iter_mut().for_each(Vec::clear);
        self.sync.iter_mut().for_each(Vec::clear);
        self.with_sync = false;
    }

    /// Give every recorded step its clock.
    fn catch_up(&mut self) {
        let mut pending = std::mem::take(&mut self.pending);
        let first = self.total - pending.len() as u32;
        for (i, (t, ev)) in pending.drain(..).enumerate() {
            self.push(t, ev, first + i as u32);
        }
        self.pending = pending;
    }

    /// The clock of thread `t`'s `k`-th event (from 1).
    fn of(&mut self, t: usize, k: u32) -> Option<[u32; MAX_THREADS]> {
        self.catch_up();
        let evs = self.events.get(t)?;
        evs.get((k as usize).checked_sub(1)?).map(|e| e.clock)
    }

    /// Append thread `t`'s next event `ev`, its clock the join of its previous event's and of
    /// the latest dependent event of each other thread not yet in its past.
    fn push(&mut self, t: usize, ev: Event, step: u32) {
        let key = Key::of(&ev);
        let mut c = self.events[t].last().map_or([0; MAX_THREADS], |e| e.clock);
        for (u, evs) in self.events.iter().enumerate() {
            if u == t {
                continue;
            }
            for e in evs[(c[u] as usize).min(evs.len())..].iter().rev() {
                if e.key.may_depend(&key) && dependent(&e.ev, &ev) {
                    for (a, b) in c.iter_mut().zip(&e.clock) {
                        *a = (*a).max(*b);
                    }
                    break;
                }
            }
        }
        c[t] = self.events[t].len() as u32 + 1;
        if self.with_sync && acquires(ev.access) {
            // Every other thread's latest dependent event, also one already in the thread's
            // past (a failed trylock before the acquisition saw the same release).
            let mut sync = [0; MAX_THREADS];
            for (u, evs) in self.events.iter().enumerate() {
                if u == t {
                    continue;
                }
                if let Some(e) = evs
                    .iter()
                    .rev()
                    .find(|e| e.key.may_depend(&key) && dependent(&e.ev, &ev))
                {
                    for (a, b) in sync.iter_mut().zip(&e.clock) {
                        *a = (*a).max(*b);
                    }
                }
            }
            self.sync[t].push((c[t], sync));
        }
        self.events[t].push(Clocked {
            ev,
            key,
            clock: c,
            step,
        });
    }
}

// SAFETY: a Core is only ever used from the one OS thread running the explorer; the machine's
// `Backend: Send + Sync` bound exists for the native backend.
unsafe impl Send for Core {}
unsafe impl Sync for Core {}

impl Core {
    fn new(strict: bool) -> Self {
        Core {
            yielders: Default::default(),
            aborting: Cell::new(false),
            recording: Cell::new(false),
            machine: Cell::new(std::ptr::null()),
            funcs: Default::default(),
            violation: RefCell::new(None),
            limit: RefCell::new(None),
            trylocks: RefCell::new(Vec::new()),
            strict,
            running: Cell::new(None),
            current: Default::default(),
            fresh: RefCell::new(Vec::new()),
            choice: Default::default(),
            // The locking rules of `Locked` cells are checked against them.
            clocks: RefCell::new(Clocks::default()),
        }
    }

    /// Record a strict-mode violation of the running thread.
    fn strict_violation(&self, t: usize, msg: String) {
        self.report(t, ViolationKind::Unannounced, msg);
    }

    /// Record a violation of the running thread found by the explorer's own checks.
    fn report(&self, t: usize, kind: ViolationKind, msg: String) {
        // SAFETY: the machine outlives every execution step (it lives in the instance).
        let stack = unsafe { self.machine.get().as_ref() }
            .map(|m| m.cpu(t).stack())
            .unwrap_or_default();
        let mut slot = self.violation.borrow_mut();
        if slot.is_none() {
            *slot = Some(Violation {
                kind,
                cpu: Some(t),
                stack,
                msg,
            });
        }
    }

    /// `o` named as the kernel names it while recording a trace (see
    /// [`mmcheck_platform::naming`]), else by number.
    fn obj_name(&self, o: Obj) -> String {
        // SAFETY: the machine outlives every execution step (it lives in the instance).
        match unsafe { self.machine.get().as_ref() } {
            Some(m) if self.recording.get() => m.names().obj(o, usize::MAX),
            _ => o.describe(),
        }
    }

    #[inline]
    fn yielder(&self, cpu: usize) -> Option<&Y> {
        if self.aborting.get() {
            return None;
        }
        let p = self.yielders.get(cpu)?.get();
        // SAFETY: set by the coroutine of `cpu` while it runs; cleared before it is dropped.
        unsafe { p.as_ref() }
    }

    #[inline]
    fn note_func(&self, cpu: usize) {
        if self.recording.get() {
            // SAFETY: the machine outlives every execution step (it lives in the instance).
            let m = unsafe { self.machine.get().as_ref() };
            let f = m.and_then(|m| m.cpu(cpu).current_func()).unwrap_or("");
            self.funcs[cpu].set(f);
        }
    }
}

/// What a recorded trace keeps about a step beyond [`Step`] (recording mode only: exploration
/// never builds these).
#[derive(Clone, Debug, Default)]
pub struct StepDetail {
    /// The machine's naming log length at the step: names resolve as they stood then.
    pub names: u32,
    /// Locks the thread holds once the step is done (an acquisition is held at its own step).
    pub held: Vec<u64>,
    /// An entry write's word before and after the step.
    pub value: Option<(u64, u64)>,
    /// Stores the step put in a CPU's store buffer (weak memory models).
    pub buffered: Vec<BufferedStore>,
    /// Buffered stores the step committed to memory: the flusher's, or another CPU's relaxed
    /// RMW write committed ahead of this step's own write of the entry.
    pub committed: Vec<BufferedStore>,
}

/// The machine holds this; the scheduler holds another `Arc` to the same core.
struct CoreHandle(Arc<Core>);

impl Backend for CoreHandle {
    #[inline]
    fn visible(&self, cpu: usize, ev: Event) {
        if let Some(y) = self.0.yielder(cpu) {
            self.0.note_func(cpu);
            y.suspend(Req {
                event: ev,
                ready: None,
            });
        }
    }

    fn block(&self, cpu: usize, ev: Event, ready: &dyn Fn() -> bool) {
        match self.0.yielder(cpu) {
            Some(y) => {
                self.0.note_func(cpu);
                // SAFETY: see `Req::ready`; the lifetime is erased only for the suspension.
                let p: *const (dyn Fn() -> bool + '_) = ready;
                let p: *const (dyn Fn() -> bool + 'static) = unsafe { std::mem::transmute(p) };
                y.suspend(Req {
                    event: ev,
                    ready: Some(p),
                });
            }
            None => {
                if !self.0.aborting.get() && !ready() {
                    panic!("setup blocked on {ev:?}: setup must not wait");
                }
            }
        }
    }

    fn violation(&self, _cpu: usize, v: &Violation) {
        let mut slot = self.0.violation.borrow_mut();
        if slot.is_none() {
            *slot = Some(v.clone());
        }
    }

    fn limit(&self, _cpu: usize, l: Limit) {
        if !self.0.aborting.get() {
            self.0.limit.borrow_mut().get_or_insert(l);
        }
    }

    fn trylock_result(&self, _cpu: usize, lock: u64, ok: bool) {
        // Only a thread's step counts: a trylock during set-up (outside any step) is not held by
        // any thread, and must not be charged to the next one that takes a trylock.
        if let (true, false, Some(t)) = (ok, self.0.aborting.get(), self.0.running.get()) {
            self.0.trylocks.borrow_mut().push((t, lock));
        }
    }

    fn stopping(&self) -> bool {
        self.0.aborting.get()
    }

    fn running(&self) -> Option<usize> {
        self.0.running.get()
    }

    fn strict(&self) -> bool {
        self.0.strict
    }

    fn choice(&self, cpu: usize) -> u8 {
        self.0.choice.get(cpu).map_or(0, |c| c.get())
    }

    fn naming(&self) -> bool {
        self.0.recording.get()
    }

    fn track_clocks(&self) {
        self.0.clocks.borrow_mut().with_sync = true;
    }

    fn clock(&self, thread: usize, k: u32) -> Option<mmcheck_platform::Clock> {
        self.0.clocks.borrow_mut().of(thread, k)
    }

    fn sync_clock(&self, thread: usize, k: u32) -> Option<mmcheck_platform::Clock> {
        let mut c = self.0.clocks.borrow_mut();
        c.catch_up();
        let sync = c.sync.get(thread)?;
        sync.iter().rev().find(|s| s.0 == k).map(|s| s.1)
    }

    fn events_of(&self, cpu: usize) -> u32 {
        match self.0.running.get() {
            Some(_) => self.0.clocks.borrow().count.get(cpu).copied().unwrap_or(0),
            None => 0,
        }
    }

    fn touch(&self, _cpu: usize, obj: Obj, loc: &'static Location<'static>) {
        let c = &self.0;
        if !c.strict || c.aborting.get() {
            return;
        }
        let Some(t) = c.running.get() else { return };
        match c.current[t].get() {
            None => c.strict_violation(
                t,
                format!(
                    "{} touched at {loc} before the thread's first announced event",
                    c.obj_name(obj)
                ),
            ),
            Some(ev) => {
                if !covers(&ev, obj, &c.fresh.borrow()) {
                    c.strict_violation(
                        t,
                        format!(
                            "{} touched at {loc} in a step that announced {} {}",
                            c.obj_name(obj),
                            crate::report::access_text(ev.access),
                            c.obj_name(ev.obj)
                        ),
                    );
                }
            }
        }
    }

    fn guarded(
        &self,
        _cpu: usize,
        id: u64,
        label: Option<&'static str>,
        log: &mmcheck_platform::GuardLog,
        write: bool,
        loc: &'static Location<'static>,
    ) {
        let c = &self.0;
        if c.aborting.get() {
            return;
        }
        let Some(t) = c.running.get() else { return };
        let k = c.clocks.borrow().count[t];
        let cell = || match label {
            Some(l) => format!("{l} (announced on {})", c.obj_name(Obj::Var(id))),
            None => c.obj_name(Obj::Var(id)),
        };
        let msg = if k == 0 {
            format!(
                "{} accessed at {loc} before the thread's first announced event",
                cell()
            )
        } else {
            let clock = || {
                let of = c.clocks.borrow_mut().of(t, k);
                of.expect("the running step has a clock")
            };
            let Err(u) = log.access(t, k, write, clock) else {
                return;
            };
            let step = c.clocks.borrow_mut().step_of(u.thread, u.event);
            format!(
                "{} {} at {loc} with no lock ordering it against T{}'s {} at step {step}: a \
                 lock of the field's rule is missing on one side",
                cell(),
                if write { "written" } else { "read" },
                u.thread,
                if u.write { "write" } else { "read" },
            )
        };
        c.report(t, ViolationKind::DataRace, msg);
    }

    fn allocated(&self, _cpu: usize, pfn: u32, order: u32) {
        let c = &self.0;
        if c.strict && c.running.get().is_some() {
            c.fresh.borrow_mut().extend(pfn..pfn + (1 << order));
        }
    }

    fn peek(&self, loc: &'static Location<'static>) {
        let c = &self.0;
        if !c.strict || c.aborting.get() {
            return;
        }
        if let Some(t) = c.running.get() {
            c.strict_violation(
                t,
                format!("unannounced peek at shared state at {loc} inside a thread's step"),
            );
        }
    }
}

/// Why an execution cannot go on.
#[derive(Clone, Debug)]
pub enum Halt {
    /// A violation (a deadlock).
    Violation(Violation),
    /// A tool limit: the execution proves nothing either way.
    Limit(Limit),
}

impl Halt {
    /// Store the reason in the strategy's own slot for it.
    pub fn record(self, violation: &mut Option<Violation>, limit: &mut Option<Limit>) {
        match self {
            Halt::Violation(v) => *violation = Some(v),
            Halt::Limit(l) => *limit = Some(l),
        }
    }
}

/// One step of an execution.
#[derive(Clone, Debug)]
pub struct Step {
    pub thread: usize,
    /// The outcome taken, if the step was a choice (`Obj::Choice`); 0 otherwise.
    pub choice: u8,
    /// The event as the thread announced it (what reports name).
    pub event: Event,
    /// The event as the dependency relation sees it (its footprint, see [`Exec::footprint`]).
    pub dep: Event,
    /// Kernel function at the step (recording mode only).
    pub func: &'static str,
}

pub use crate::lockdep::LockTrack;

/// A running execution.
pub struct Exec<M: Model> {
    pub model: Arc<M>,
    pub inst: Rc<M::Instance>,
    core: Arc<Core>,
    cos: Vec<Option<Coroutine<(), Req, (), DefaultStack>>>,
    pub pending: Vec<Option<Req>>,
    /// The threads with a pending operation, as a mask (kept with `pending`, in `resume`).
    live: u32,
    /// The threads whose pending operation blocks (their readiness is asked at each step).
    blocking: u32,
    pub locks: LockTrack,
    pub steps: usize,
    /// The daemon threads ([`Model::is_daemon`]), as a mask.
    daemons: u32,
    /// The decision of each step so far (thread and choice outcome, see [`decision`]).
    pub sched: Vec<u8>,
    /// Per-step detail (recording mode only).
    pub detail: Vec<StepDetail>,
    /// Reach evaluation (only when the model has reach patterns).
    reach: Option<crate::reach::Tracker>,
    /// A hash of the decisions and events so far (only once [`Exec::fingerprint`] is called).
    fp: Option<std::hash::DefaultHasher>,
    /// The sites of the steps so far (only once [`Exec::track_coverage`] is called).
    pub coverage: Option<std::collections::BTreeSet<Site>>,
}

/// Where a step was made, for coverage: the innermost kernel function of its thread, how it
/// accessed its object and the object's class ([`Obj::class`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Site {
    pub func: &'static str,
    pub access: Access,
    pub class: &'static str,
}

impl std::fmt::Display for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?} {}", self.func, self.access, self.class)
    }
}

/// What a worker keeps across the executions of a search: coroutine stacks, the instance the
/// set-up left, to restore (see [`Model::restore`]), and the clock tables and lock tracking,
/// emptied (their allocations kept: no step of the next execution grows them from nothing).
#[derive(Default)]
pub struct StackPool {
    stacks: Vec<DefaultStack>,
    template: Option<Box<dyn std::any::Any>>,
    clocks: Clocks,
    locks: LockTrack,
    /// The instance of the last execution, done with: the next restores into it
    /// ([`Model::recycle`]).
    spare: Option<Box<dyn std::any::Any>>,
    /// The lock-order edges of the executions [`crate::schedule::run_one_with`] ran with this
    /// pool, each with its first sighting.
    pub edges: crate::lockdep::Edges,
}

/// The set-up state of one model, built once: `None` when the model cannot restore it or its
/// set-up ended the execution (a violation or a tool limit), which every execution then
/// builds again to report.
struct Template<M: Model> {
    model: std::sync::Weak<M>,
    inst: Option<M::Instance>,
}

impl StackPool {
    /// A copy of the model's set-up state on a new backend for `core`, or `None` (build).
    fn restore<M: Model>(
        &mut self,
        model: &Arc<M>,
        strict: bool,
        core: &Arc<Core>,
    ) -> Option<M::Instance> {
        let same = |t: &Template<M>| t.model.ptr_eq(&Arc::downgrade(model));
        let held = self
            .template
            .as_ref()
            .and_then(|t| t.downcast_ref::<Template<M>>())
            .is_some_and(same);
        if !held {
            self.spare = None;
            let tcore = Arc::new(Core::new(strict));
            let inst = model.build(Box::new(CoreHandle(tcore.clone())));
            let clean = tcore.violation.borrow().is_none() && tcore.limit.borrow().is_none();
            self.template = Some(Box::new(Template::<M> {
                model: Arc::downgrade(model),
                inst: clean.then_some(inst),
            }));
        }
        let t = self.template.as_ref()?.downcast_ref::<Template<M>>()?;
        let template = t.inst.as_ref()?;
        let backend = Box::new(CoreHandle(core.clone()));
        match self
            .spare
            .take()
            .and_then(|s| s.downcast::<M::Instance>().ok())
        {
            Some(old) => model.recycle(template, *old, backend),
            None => model.restore(template, backend),
        }
    }
}

impl<M: Model> Exec<M> {
    /// Build a fresh instance and start every thread up to its first visible operation.
    pub fn new(model: &Arc<M>, pool: &mut StackPool, recording: bool) -> Self {
        let core = Arc::new(Core::new(model.strict()));
        *core.clocks.borrow_mut() = std::mem::take(&mut pool.clocks);
        core.recording.set(recording);
        // A recording run keeps the naming log from the start: it builds.
        let restored = if recording {
            None
        } else {
            pool.restore(model, model.strict(), &core)
        };
        let inst =
            Rc::new(restored.unwrap_or_else(|| model.build(Box::new(CoreHandle(core.clone())))));
        core.machine.set(model.machine(&inst) as *const Machine);
        let n = model.threads();
        assert!(n <= MAX_THREADS, "at most {MAX_THREADS} threads");
        let mut ex = Exec {
            model: model.clone(),
            inst,
            core,
            cos: Vec::with_capacity(n),
            pending: vec![None; n],
            live: 0,
            blocking: 0,
            locks: std::mem::take(&mut pool.locks),
            steps: 0,
            daemons: (0..n).fold(0, |m, t| m | u32::from(model.is_daemon(t)) << t),
            sched: Vec::with_capacity(256),
            detail: Vec::new(),
            reach: (!model.reach().is_empty()).then(crate::reach::Tracker::default),
            fp: None,
            coverage: None,
        };
        for t in 0..n {
            let stack = pool
                .stacks
                .pop()
                .unwrap_or_else(|| DefaultStack::new(256 * 1024).expect("coroutine stack"));
            let (m, inst, core) = (model.clone(), ex.inst.clone(), ex.core.clone());
            let co = Coroutine::with_stack(stack, move |y: &Y, ()| {
                core.yielders[t].set(y as *const Y);
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| m.run(&inst, t)));
                if let Err(e) = r {
                    if !core.aborting.get() {
                        let msg = e
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "panic".into());
                        let v = Violation {
                            kind: ViolationKind::Assertion,
                            cpu: Some(t),
                            stack: vec![],
                            msg: format!("model panicked: {msg}"),
                        };
                        core.violation.borrow_mut().get_or_insert(v);
                    } else {
                        std::panic::resume_unwind(e);
                    }
                }
                core.yielders[t].set(std::ptr::null());
            });
            ex.cos.push(Some(co));
            ex.resume(t);
        }
        ex
    }

    fn resume(&mut self, t: usize) {
        let co = self.cos[t].as_mut().expect("resume of a finished thread");
        self.core.running.set(Some(t));
        if self.core.strict {
            self.core.current[t].set(self.pending[t].map(|r| r.event));
            self.core.fresh.borrow_mut().clear();
        }
        let r = co.resume(());
        self.core.running.set(None);
        let bit = 1 << t;
        match r {
            CoroutineResult::Yield(r) => {
                self.live |= bit;
                self.blocking = (self.blocking & !bit) | (u32::from(r.is_block()) << t);
                self.pending[t] = Some(r);
            }
            CoroutineResult::Return(()) => {
                self.live &= !bit;
                self.blocking &= !bit;
                self.pending[t] = None;
            }
        }
    }

    pub fn threads(&self) -> usize {
        self.pending.len()
    }

    /// True if thread `t` can take a step now.
    pub fn enabled(&self, t: usize) -> bool {
        self.pending[t].is_some_and(|r| r.ready())
    }

    /// Bitmask of enabled threads: those with a pending operation that does not block, and
    /// those whose blocking operation is ready now.
    pub fn enabled_mask(&self) -> u32 {
        let mut m = self.live & !self.blocking;
        let mut b = self.blocking;
        while b != 0 {
            let t = b.trailing_zeros() as usize;
            b &= b - 1;
            if self.pending[t].is_some_and(|r| r.ready()) {
                m |= 1 << t;
            }
        }
        m
    }

    /// The enabled threads at step `depth`, or why the execution cannot go on: a deadlock (a
    /// violation), or the `max_steps` limit (inconclusive: a tool limit, not a verdict).
    /// `Ok(None)` when the execution has ended ([`Exec::finished`]). One evaluation of the
    /// blocked threads' conditions serves both questions.
    pub fn next_enabled(&self, depth: usize, max_steps: usize) -> Result<Option<u32>, Halt> {
        let enabled = self.enabled_mask();
        if self.finished_with(enabled) {
            return Ok(None);
        }
        if enabled == 0 {
            return Err(Halt::Violation(self.deadlock()));
        }
        if depth >= max_steps {
            return Err(Halt::Limit(Limit::Steps(max_steps)));
        }
        Ok(Some(enabled))
    }

    /// The tool limit the execution ran into so far (set-up included), if any.
    pub fn limit(&self) -> Option<Limit> {
        self.core.limit.borrow().clone()
    }

    /// True when every non-daemon thread has finished and no daemon can take a step: the RCU
    /// thread runs every callback that became ready before the execution ends, so its steps
    /// are in the trace, where the search sees them race (ending while a callback was ready
    /// hid every early run of it from DPOR: `tests/dpor_vs_naive.rs`
    /// `dpor_matches_naive_on_rcu_programs`).
    pub fn finished(&self) -> bool {
        self.finished_with(self.enabled_mask())
    }

    fn finished_with(&self, enabled: u32) -> bool {
        // Unfinished threads that are not daemons waiting: none.
        self.live & !(self.daemons & !enabled) == 0
    }

    /// True if thread `t` is suspended at a blocking operation.
    pub fn pending_is_block(&self, t: usize) -> bool {
        self.pending[t].is_some_and(|r| r.is_block())
    }

    /// Thread `t`'s pending event as announced.
    pub fn announced(&self, t: usize) -> Option<Event> {
        self.pending[t].map(|r| r.event())
    }

    /// Thread `t`'s pending event as the dependency relation sees it (see [`Exec::footprint`]).
    pub fn pending_event(&self, t: usize) -> Option<Event> {
        self.pending[t].map(|r| self.footprint(t, r.event()))
    }

    /// The event as the dependency relation sees it, from the state before it runs
    /// ([`Machine::footprint`]).
    fn footprint(&self, t: usize, ev: Event) -> Event {
        if ev.obj.is_typesafe_field()
            || matches!(
                ev.access,
                Access::RcuCallback
                    | Access::CallRcu
                    | Access::FrameAlloc
                    | Access::TlbScan
                    | Access::Flush
                    | Access::Fill
                    | Access::IrqEnable
            )
        {
            return self.model.machine(&self.inst).footprint(t, ev);
        }
        ev
    }

    /// The outcomes thread `t`'s pending step can take: `n` for a choice, else 1.
    pub fn alternatives(&self, t: usize) -> u8 {
        match self.pending[t].map(|r| r.event().obj) {
            Some(Obj::Choice { n, .. }) => n,
            _ => 1,
        }
    }

    /// Run decision `d`'s thread's pending operation (with `d`'s outcome if it is a choice) and on
    /// to the thread's next one. A plain thread number is the decision with outcome 0.
    pub fn step(&mut self, d: usize) -> Event {
        let (t, v) = (thread_of(d), choice_of(d));
        let ev = self.pending[t].expect("step of a finished thread").event();
        let dep_ev = self.footprint(t, ev);
        let v = v.min(self.alternatives(t).saturating_sub(1));
        self.core.choice[t].set(v);
        self.sched.push(decision(t, v));
        if let Some(r) = &mut self.reach {
            let m = self.model.machine(&self.inst);
            r.step(t, ev, self.model.reach().mask(m, t, &self.locks.held[t]));
        }
        if let Some(h) = &mut self.fp {
            use std::hash::Hash;
            (decision(t, v), ev).hash(h);
        }
        if let Some(c) = &mut self.coverage {
            let func = self.model.machine(&self.inst).cpu(t).current_func();
            c.insert(Site {
                func: func.unwrap_or("(user)"),
                access: ev.access,
                class: ev.obj.class(),
            });
        }
        let step = self.sched.len() - 1;
        self.locks
            .note(t, &ev, step, self.model.machine(&self.inst));
        self.steps += 1;
        let recording = self.core.recording.get();
        let (mark, before, buffers) = if recording {
            self.detail_before(&ev)
        } else {
            (0, None, Vec::new())
        };
        self.core.clocks.borrow_mut().record(t, dep_ev);
        self.resume(t);
        if ev.access == Access::TryAcquire {
            for (c, l) in self.core.trylocks.borrow_mut().drain(..) {
                self.locks.held[c].push(l);
            }
        }
        if recording {
            self.detail_after(t, &ev, mark, before, buffers);
        }
        dep_ev
    }

    /// Recording: the naming mark, an entry write's old word and the store buffers, before the
    /// step runs.
    #[cold]
    #[inline(never)]
    fn detail_before(&self, ev: &Event) -> (u32, Option<u64>, Vec<BufferedStore>) {
        let m = self.model.machine(&self.inst);
        let old = match (ev.obj, ev.access) {
            (Obj::Entry { pfn, idx }, Access::Write | Access::Rmw | Access::RmwWeak) => {
                Some(m.frames.entry_word_raw(pfn, idx as usize))
            }
            _ => None,
        };
        (m.names_mark(), old, m.store_buffers_raw())
    }

    /// Recording: what the step did (locks held after it, an entry write's new word).
    #[cold]
    #[inline(never)]
    fn detail_after(
        &mut self,
        t: usize,
        ev: &Event,
        mark: u32,
        before: Option<u64>,
        buffers: Vec<BufferedStore>,
    ) {
        let m = self.model.machine(&self.inst);
        let value = match (ev.obj, before) {
            (Obj::Entry { pfn, idx }, Some(old)) => {
                Some((old, m.frames.entry_word_raw(pfn, idx as usize)))
            }
            _ => None,
        };
        let after = m.store_buffers_raw();
        let key = |b: &BufferedStore| (b.cpu, b.seq);
        let buffered = after
            .iter()
            .filter(|a| !buffers.iter().any(|b| key(b) == key(a)))
            .copied()
            .collect();
        let committed = buffers
            .iter()
            .filter(|b| !after.iter().any(|a| key(a) == key(b)))
            .copied()
            .collect();
        self.detail.push(StepDetail {
            names: mark,
            held: self.locks.held[t].clone(),
            value,
            buffered,
            committed,
        });
    }

    /// Start recording the sites of the steps (see [`Site`]).
    pub fn track_coverage(&mut self) {
        self.coverage = Some(Default::default());
    }

    /// Start hashing the execution's decisions and events (see [`Exec::fingerprint`]).
    pub fn track_fingerprint(&mut self) {
        self.fp = Some(std::hash::DefaultHasher::new());
    }

    /// The hash of the decisions and events so far (0 unless tracked). `DefaultHasher::new` has
    /// fixed keys: the same execution hashes the same in every run.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::Hasher;
        self.fp.as_ref().map_or(0, |h| h.finish())
    }

    /// The model's reach patterns this execution reached so far, as a bit mask (see
    /// [`crate::reach`]); a thread's pending operation counts as its current state.
    pub fn reached(&mut self) -> u64 {
        if self.reach.is_none() {
            return 0;
        }
        let spec = self.model.reach();
        let m = self.model.machine(&self.inst);
        let pending: Vec<u64> = (0..self.threads())
            .map(|t| {
                if self.pending[t].is_some() {
                    spec.mask(m, t, &self.locks.held[t])
                } else {
                    0
                }
            })
            .collect();
        self.reach.as_mut().map_or(0, |r| r.reached(spec, &pending))
    }

    /// The happens-before clock of the step thread `t` just ran, as the strategy computed it
    /// (DPOR computes it for every step, over the same footprints): reach evaluation takes it,
    /// and so do the backend's clocks, which then need not compute it again (see
    /// [`Clocks::give`]).
    pub fn set_step_clock(&mut self, t: usize, clock: [u32; MAX_THREADS], key: Key) {
        if let Some(r) = &mut self.reach {
            r.set_clock(clock);
        }
        self.core.clocks.borrow_mut().give(t, clock, key);
    }

    /// The execution's Mazurkiewicz trace, hashed: per thread, its events (as the dependency
    /// relation sees them) with their happens-before clocks and the outcomes of its choices.
    /// Two executions hash the same exactly when they order every dependent pair alike (up to
    /// hash collisions): the explorer's self-checks compare the classes strategies reach. It
    /// computes every step's clock.
    pub fn class(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut c = self.core.clocks.borrow_mut();
        c.catch_up();
        let mut h = std::hash::DefaultHasher::new();
        for t in 0..self.threads() {
            for e in &c.events[t] {
                (e.ev, e.clock).hash(&mut h);
            }
            for &d in self.sched.iter().filter(|&&d| thread_of(d.into()) == t) {
                choice_of(d.into()).hash(&mut h);
            }
            u64::MAX.hash(&mut h);
        }
        h.finish()
    }

    /// The violation the last step raised, if any.
    pub fn violation(&self) -> Option<Violation> {
        let v = self.core.violation.borrow();
        v.as_ref().map(|v| v.clone())
    }

    /// True once a violation was raised.
    #[inline]
    pub fn violated(&self) -> bool {
        self.core.violation.borrow().is_some()
    }

    /// The kernel function at thread `t`'s pending operation (recording mode).
    pub fn func(&self, t: usize) -> &'static str {
        self.core.funcs[t].get()
    }

    /// A deadlock report: nothing enabled, someone unfinished.
    pub fn deadlock(&self) -> Violation {
        let mut parts = Vec::new();
        // Named as the kernel names them when recording a trace (the log is empty otherwise).
        let names = self
            .core
            .recording
            .get()
            .then(|| self.model.machine(&self.inst).names());
        let name = |o: Obj| match &names {
            Some(n) => n.obj(o, usize::MAX),
            None => o.describe(),
        };
        for t in 0..self.threads() {
            if let Some(r) = self.pending[t] {
                if self.model.is_daemon(t) {
                    continue;
                }
                let ev = r.event();
                let holder = match ev.obj {
                    Obj::Lock(id) => (0..self.threads())
                        .filter(|&u| self.locks.held[u].contains(&id))
                        .map(|u| self.model.thread_name(u))
                        .collect::<Vec<_>>()
                        .join(","),
                    _ => String::new(),
                };
                let held: Vec<String> = self.locks.held[t]
                    .iter()
                    .map(|&l| name(Obj::Lock(l)))
                    .collect();
                parts.push(format!(
                    "{} waits for {} {}{} holding [{}]",
                    self.model.thread_name(t),
                    crate::report::access_text(ev.access),
                    name(ev.obj),
                    if holder.is_empty() {
                        String::new()
                    } else {
                        format!(" (held by {holder})")
                    },
                    held.join(", ")
                ));
            }
        }
        Violation {
            kind: ViolationKind::Deadlock,
            cpu: None,
            stack: vec![],
            msg: parts.join("; "),
        }
    }

    /// End the execution: run the model's final checks if it finished normally.
    pub fn finish(mut self, pool: &mut StackPool, run_final: bool) -> Option<Finish> {
        self.core.aborting.set(true);
        for (t, co) in self.cos.iter_mut().enumerate() {
            if let Some(mut c) = co.take() {
                if c.started() && !c.done() && self.model.is_daemon(t) {
                    // A daemon notices `stopping` and returns: cheaper than unwinding it.
                    let _ = c.resume(());
                }
                if c.started() && !c.done() {
                    c.force_unwind();
                }
                pool.stacks.push(c.into_stack());
            }
        }
        let f = run_final.then(|| self.model.finish(&self.inst));
        pool.clocks = std::mem::take(&mut *self.core.clocks.borrow_mut());
        pool.clocks.clear();
        pool.locks = std::mem::take(&mut self.locks);
        pool.locks.clear();
        // The threads' coroutines are gone, and with them their references to the instance:
        // unless a recorded trace keeps it, the next execution restores into it.
        if let Ok(inst) = Rc::try_unwrap(self.inst) {
            pool.spare = Some(Box::new(inst));
        }
        f
    }
}
