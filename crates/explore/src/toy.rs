//! Small programs over the platform primitives (shared words and spinlocks), for testing the
//! explorer itself: a naive exhaustive enumerator to compare DPOR against, and a random program
//! generator.

use crate::exec::StackPool;
use crate::schedule::run_one;
use crate::{Finish, Model};
use mmcheck_platform::frames::{FrameKind, FrameRef};
use mmcheck_platform::rcu::RcuWork;
use mmcheck_platform::tlb::TlbEntry;
use mmcheck_platform::SlabObj;
use mmcheck_platform::{
    Access, Backend, Locked, Machine, MachineConfig, Obj, SpinLock, ViolationKind,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One operation of a toy thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Read(usize),
    Write(usize, u64),
    /// `atomic_add` (one visible step, result unused: commutes with other adds).
    Add(usize, u64),
    Lock(usize),
    Unlock(usize),
    /// `spin_trylock(l)`; on success write `x` to word `v` and unlock. Records whether it got
    /// the lock: a failed trylock is an outcome of its own.
    TryLockWrite(usize, usize, u64),
    /// A choice step (`Cpu::choose(2)`), then a write of the first or the second value.
    WriteEither(usize, u64, u64),
    /// `rcu_read_lock` (balanced by an [`Op::RcuUnlock`] later in the thread).
    RcuLock,
    RcuUnlock,
    /// Read entry 0 of table frame `f` and record whether the frame is still live (a reader
    /// that sees a freed table records it rather than reporting it).
    Peek(usize),
    /// Free table frame `f` after a grace period (`call_rcu`; the RCU thread runs the free).
    FreeRcu(usize),
    /// Free table frame `f` now.
    Free(usize),
    /// `switch_mm` to the toy mm (its CPU joins `mm_cpumask`: shootdowns target it whatever
    /// its TLB holds).
    SwitchMm,
    /// The hardware walker's fill: page `vpn` of the toy mm translates to frame `f`.
    TlbFill(u64, usize),
    /// `flush_tlb_range` of pages `[start, end)` of the toy mm (leaves only).
    TlbFlush(u64, u64),
    /// A TLB lookup of `vpn`; records the frame it translates to (pfn + 1) or 0.
    TlbLookup(u64),
    /// The TLB oracle's scan for translations to frame `f` (`tlb_holders`); records the mask of
    /// CPUs holding one.
    TlbHolders(usize),
    /// `local_irq_disable` (balanced by an [`Op::IrqOn`] later in the thread).
    IrqOff,
    IrqOn,
    /// Read the field of the toy's `SLAB_TYPESAFE_BY_RCU` object; records the value, or 9 if
    /// the access was a use-after-free (outside an RCU read-side section after the free).
    SlabRead,
    /// Write `x` to the object's field (records 9 on a use-after-free, as above).
    SlabWrite(u64),
    /// `kmem_cache_free` of the object.
    SlabFree,
    /// Read the [`Locked`] cell of word `v` (unannounced; records the value). The explorer
    /// checks that the cells' accesses are ordered (see [`mmcheck_platform::GuardLog`]) whatever
    /// locks the threads hold.
    LockedRead(usize),
    /// Write `x` to the [`Locked`] cell of word `v` (announced).
    LockedWrite(usize, u64),
}

/// The toy programs' mm id.
const TOY_MM: u64 = 1;

/// One lockdep class per toy lock.
const TOY_LOCK_CLASSES: [&str; 8] = [
    "toy0", "toy1", "toy2", "toy3", "toy4", "toy5", "toy6", "toy7",
];

/// A toy program: threads of operations over `vars` words, `locks` spinlocks and `frames`
/// table frames (allocated in set-up). A program that frees through RCU also runs the RCU
/// callback thread, after its own threads.
#[derive(Clone, Debug, Default)]
pub struct Program {
    pub vars: usize,
    pub locks: usize,
    pub frames: usize,
    pub threads: Vec<Vec<Op>>,
}

impl Program {
    fn has_locked_cells(&self) -> bool {
        self.threads
            .iter()
            .flatten()
            .any(|o| matches!(o, Op::LockedRead(_) | Op::LockedWrite(..)))
    }

    fn has_rcu_thread(&self) -> bool {
        self.threads
            .iter()
            .flatten()
            .any(|o| matches!(o, Op::FreeRcu(_)))
    }
}

/// A toy instance.
pub struct Inst {
    pub machine: Machine,
    vars: Vec<(u64, AtomicU64)>,
    /// A [`Locked`] cell per word.
    cells: Vec<Locked<u64>>,
    locks: Vec<SpinLock>,
    frames: Vec<FrameRef>,
    reads: Vec<std::sync::Mutex<Vec<u64>>>,
    /// One `SLAB_TYPESAFE_BY_RCU` object and its field word.
    slab: (SlabObj, AtomicU64),
}

impl Model for Program {
    type Instance = Inst;

    fn build(&self, backend: Box<dyn Backend>) -> Inst {
        let cfg = MachineConfig {
            nr_cpus: self.threads(),
            nr_frames: 4 + self.frames,
            entries_per_table: 4,
            tlb_entries: 2,
        };
        let machine = Machine::new(cfg, backend);
        let vars = (0..self.vars)
            .map(|_| (machine.new_id(), AtomicU64::new(0)))
            .collect();
        let cells = (0..self.vars)
            .map(|_| Locked::new(machine.new_id(), 0))
            .collect();
        let locks = (0..self.locks)
            .enumerate()
            .map(|(i, _)| SpinLock::new(machine.new_lock_id(TOY_LOCK_CLASSES[i])))
            .collect();
        let reads = self
            .threads
            .iter()
            .map(|_| std::sync::Mutex::new(Vec::new()))
            .collect();
        let frames = (0..self.frames)
            .map(|_| {
                machine
                    .frames
                    .alloc(&machine.cpu(0), 0, FrameKind::Table(1))
                    .expect("a free frame")
            })
            .collect();
        let slab = (SlabObj::new(&machine, true), AtomicU64::new(0));
        Inst {
            machine,
            vars,
            cells,
            locks,
            frames,
            reads,
            slab,
        }
    }

    fn machine<'a>(&self, inst: &'a Inst) -> &'a Machine {
        &inst.machine
    }

    fn threads(&self) -> usize {
        self.threads.len() + usize::from(self.has_rcu_thread())
    }

    fn is_daemon(&self, t: usize) -> bool {
        t == self.threads.len()
    }

    fn run(&self, inst: &Inst, t: usize) {
        let cpu = inst.machine.cpu(t);
        if t == self.threads.len() {
            // The RCU callback thread, as the kernel model runs it.
            while cpu.rcu_callback_thread_step() {}
            return;
        }
        // Sized before the first step: the thread's own code allocates nothing in its steps
        // (`tests/step_allocations.rs` counts the explorer's).
        let ops = self.threads[t].len();
        let mut held = Vec::with_capacity(ops);
        let mut rcu = Vec::with_capacity(ops);
        let mut irq = Vec::with_capacity(ops);
        for op in &self.threads[t] {
            match *op {
                Op::Read(v) => {
                    let (id, w) = &inst.vars[v];
                    let x = cpu.read_var(*id, w);
                    inst.reads[t].lock().unwrap().push(x);
                }
                Op::Write(v, x) => {
                    let (id, w) = &inst.vars[v];
                    cpu.write_var(*id, w, x);
                }
                Op::Add(v, x) => {
                    let (id, w) = &inst.vars[v];
                    // `atomic_add`: its result is unused, so it commutes with other adds.
                    cpu.visible(
                        mmcheck_platform::Obj::Var(*id),
                        mmcheck_platform::Access::Add,
                    );
                    w.fetch_add(x, Ordering::SeqCst);
                }
                Op::WriteEither(v, a, b) => {
                    let x = if cpu.choose(2) == 0 { a } else { b };
                    let (id, w) = &inst.vars[v];
                    cpu.write_var(*id, w, x);
                }
                Op::Lock(l) => held.push((l, inst.locks[l].lock(cpu))),
                Op::Unlock(l) => {
                    if let Some(i) = held.iter().rposition(|(h, _)| *h == l) {
                        drop(held.remove(i));
                    }
                }
                Op::TryLockWrite(l, v, x) => {
                    let got = inst.locks[l].try_lock(cpu);
                    inst.reads[t].lock().unwrap().push(u64::from(got.is_some()));
                    if got.is_some() {
                        let (id, w) = &inst.vars[v];
                        cpu.write_var(*id, w, x);
                    }
                }
                Op::RcuLock => rcu.push(cpu.rcu_read_lock()),
                Op::RcuUnlock => drop(rcu.pop()),
                Op::Peek(f) => {
                    let r = inst.frames[f];
                    cpu.visible(Obj::Entry { pfn: r.pfn, idx: 0 }, Access::Read);
                    let live = inst.machine.frames.is_live(r);
                    inst.reads[t].lock().unwrap().push(u64::from(live));
                }
                Op::FreeRcu(f) => cpu.call_rcu(RcuWork::FreeFrames {
                    frames: vec![(inst.frames[f], 0)],
                    reason: "toy_free_rcu",
                }),
                Op::Free(f) => inst.machine.frames.free(&cpu, inst.frames[f], 0),
                Op::SwitchMm => cpu.switch_mm(TOY_MM),
                Op::TlbFill(vpn, f) => cpu.tlb_fill(TlbEntry {
                    mm: TOY_MM,
                    vpn,
                    shift: 0,
                    page: inst.frames[f],
                    writable: true,
                }),
                Op::TlbFlush(start, end) => cpu.flush_tlb_range(TOY_MM, start, end, false),
                Op::TlbLookup(vpn) => {
                    let hit = cpu
                        .tlb_lookup(TOY_MM, vpn)
                        .map_or(0, |e| e.page.pfn as u64 + 1);
                    inst.reads[t].lock().unwrap().push(hit);
                }
                Op::TlbHolders(f) => {
                    let cpus = cpu
                        .tlb_holders(inst.frames[f].pfn, 1)
                        .iter()
                        .fold(0u64, |m, (c, _)| m | 1 << c);
                    inst.reads[t].lock().unwrap().push(cpus);
                }
                Op::IrqOff => irq.push(cpu.local_irq_disable()),
                Op::IrqOn => drop(irq.pop()),
                Op::SlabRead | Op::SlabWrite(_) => {
                    let (obj, w) = &inst.slab;
                    let field = obj.field(1);
                    let seen = if let Op::SlabWrite(x) = *op {
                        cpu.visible(Obj::Var(field), Access::Write);
                        obj.check(&cpu, field, "toy_write")
                            .then(|| w.store(x, Ordering::SeqCst))
                            .map(|_| x)
                    } else {
                        cpu.visible(Obj::Var(field), Access::Read);
                        obj.check(&cpu, field, "toy_read")
                            .then(|| w.load(Ordering::SeqCst))
                    };
                    inst.reads[t].lock().unwrap().push(seen.unwrap_or(9));
                }
                Op::SlabFree => inst.slab.0.free(&cpu),
                Op::LockedRead(v) => {
                    let x = inst.cells[v].read(&cpu, |x| *x);
                    inst.reads[t].lock().unwrap().push(x);
                }
                Op::LockedWrite(v, x) => inst.cells[v].write(&cpu, |c| *c = x),
            }
        }
    }

    fn finish(&self, inst: &Inst) -> Finish {
        let mut s = String::new();
        for (_, w) in &inst.vars {
            let _ = write!(s, "{} ", w.load(Ordering::SeqCst));
        }
        if self.has_locked_cells() {
            for c in &inst.cells {
                let _ = write!(s, "c{} ", c.peek(&inst.machine, |x| *x));
            }
        }
        for r in &inst.reads {
            let _ = write!(s, "| {:?} ", r.lock().unwrap());
        }
        for &f in &inst.frames {
            let _ = write!(s, "{}", u8::from(inst.machine.frames.is_live(f)));
        }
        Finish {
            violations: vec![],
            outcome: s,
        }
    }
}

/// Every final outcome, by enumerating every interleaving (no reduction), and whether a deadlock
/// was reachable.
pub fn naive_outcomes<M: Model>(model: &Arc<M>) -> (BTreeSet<String>, bool, u64) {
    let n = naive_search(model);
    let deadlock = n.kinds.contains(&ViolationKind::Deadlock);
    (n.outcomes, deadlock, n.executions)
}

/// What [`naive_search`] found.
#[derive(Debug, Default)]
pub struct Naive {
    /// The final outcomes of the executions without a violation.
    pub outcomes: BTreeSet<String>,
    /// The kinds of violation some interleaving reaches.
    pub kinds: BTreeSet<ViolationKind>,
    pub executions: u64,
}

/// Enumerate every interleaving (no reduction).
pub fn naive_search<M: Model>(model: &Arc<M>) -> Naive {
    let mut pool = StackPool::default();
    let mut n = Naive::default();
    let mut dfs = crate::naive::DecisionDfs::default();
    loop {
        let mut depth = 0;
        let run = run_one(model, &mut pool, false, 10_000, &mut |ex, enabled, step| {
            depth = step + 1;
            Some(dfs.decide(ex, step, enabled))
        });
        n.executions += 1;
        match (&run.violation, &run.finish) {
            (Some(v), _) => {
                n.kinds.insert(v.kind);
            }
            (_, Some(f)) => {
                n.outcomes.insert(f.outcome.clone());
            }
            _ => {}
        }
        if !dfs.advance(depth) {
            return n;
        }
    }
}

/// A random small program: 2–3 threads of 1–3 operations over 2 words and 1 lock; locks are
/// balanced within each thread.
pub fn random_program(seed: u64) -> Program {
    random_locking_program(seed, 0.3, |rng, v| match rng.gen_range(0..7) {
        0 | 1 => Op::Read(v),
        2 | 3 => Op::Write(v, rng.gen_range(1..4)),
        4 => Op::WriteEither(v, rng.gen_range(1..4), rng.gen_range(4..7)),
        _ => Op::Add(v, 1),
    })
}

/// 2–3 threads of 1–3 operations `op(rng, v)` on word or cell `v` of 2, each thread holding
/// lock 0 around all of them with probability `locked`.
fn random_locking_program(
    seed: u64,
    locked: f64,
    mut op: impl FnMut(&mut ChaCha8Rng, usize) -> Op,
) -> Program {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let nt = rng.gen_range(2..=3);
    let threads = (0..nt)
        .map(|_| {
            let mut ops = Vec::new();
            let n = rng.gen_range(1..=3);
            let locked = rng.gen_bool(locked);
            if locked {
                ops.push(Op::Lock(0));
            }
            for _ in 0..n {
                let v = rng.gen_range(0..2);
                ops.push(op(&mut rng, v));
            }
            if locked {
                ops.push(Op::Unlock(0));
            }
            ops
        })
        .collect();
    Program {
        vars: 2,
        locks: 1,
        frames: 0,
        threads,
    }
}

/// A random small program over [`Locked`] cells: 2–3 threads of 1–3 operations over 2 cells
/// and a word, each thread holding the lock around all of them or not. The explorer reports an
/// access pair that no lock orders (`data-race`); it checks that a discipline breach some
/// interleaving has is found by the reduced search too, and that the reads, which are not
/// scheduling points, lose no outcome where the discipline holds.
pub fn random_locked_program(seed: u64) -> Program {
    random_locking_program(seed, 0.6, |rng, v| match rng.gen_range(0..10) {
        0..=4 => Op::LockedRead(v),
        5..=7 => Op::LockedWrite(v, rng.gen_range(1..4)),
        8 => Op::Read(0),
        _ => Op::Write(0, rng.gen_range(1..3)),
    })
}

/// A random small program over RCU: 2–3 threads of 1–2 operations, each a read section
/// (`rcu_read_lock`, a peek at a table frame or a read of a word, `rcu_read_unlock`), a retirement of
/// a frame (through `call_rcu` or at once, each frame at most once), or a word access; with the
/// RCU callback thread. It checks the dependency relation's treatment of callbacks (they read
/// only the reader counters of the CPUs they wait for) and of frees.
pub fn random_rcu_program(seed: u64) -> Program {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let nt = rng.gen_range(2..=3);
    let mut freed = [false; 2];
    let threads = (0..nt)
        .map(|_| {
            let mut ops = Vec::new();
            for _ in 0..rng.gen_range(1..=2) {
                match rng.gen_range(0..6) {
                    0 | 1 => {
                        ops.push(Op::RcuLock);
                        ops.push(match rng.gen_range(0..3) {
                            0 => Op::Read(0),
                            f => Op::Peek(f - 1),
                        });
                        ops.push(Op::RcuUnlock);
                    }
                    2 | 3 => {
                        let f = rng.gen_range(0..2);
                        if !freed[f] {
                            freed[f] = true;
                            ops.push(if rng.gen_bool(0.75) {
                                Op::FreeRcu(f)
                            } else {
                                Op::Free(f)
                            });
                        } else {
                            ops.push(Op::Peek(f));
                        }
                    }
                    4 => ops.push(Op::Write(0, rng.gen_range(1..3))),
                    _ => ops.push(Op::Peek(rng.gen_range(0..2))),
                }
            }
            ops
        })
        .collect();
    Program {
        vars: 1,
        locks: 0,
        frames: 2,
        threads,
    }
}

/// A random small program over TLBs: 2–3 threads, each maybe joining the mm first
/// (`switch_mm`), then 1–2 of: a fill, a shootdown of one or two pages, a lookup (alone or with
/// IRQs off around it), a TLB-oracle scan for a frame. Two frames, pages 0–3. It checks the
/// dependency relation's treatment of shootdowns (two that pick their targets blindly and drop
/// disjoint pages commute) and of scans (one for frames a shootdown drops no translation to
/// commutes with it).
pub fn random_tlb_program(seed: u64) -> Program {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let nt = rng.gen_range(2..=3);
    let threads = (0..nt)
        .map(|_| {
            let mut ops = Vec::new();
            if rng.gen_bool(0.6) {
                ops.push(Op::SwitchMm);
            }
            for _ in 0..rng.gen_range(1..=2) {
                match rng.gen_range(0..7) {
                    0 | 1 => ops.push(Op::TlbFill(rng.gen_range(0..4), rng.gen_range(0..2))),
                    2 | 3 => {
                        let s = rng.gen_range(0..4);
                        ops.push(Op::TlbFlush(s, s + rng.gen_range(1..=2)));
                    }
                    4 => ops.push(Op::TlbHolders(rng.gen_range(0..2))),
                    5 => ops.push(Op::TlbLookup(rng.gen_range(0..4))),
                    _ => {
                        ops.push(Op::IrqOff);
                        ops.push(Op::TlbLookup(rng.gen_range(0..4)));
                        ops.push(Op::IrqOn);
                    }
                }
            }
            ops
        })
        .collect();
    Program {
        vars: 0,
        locks: 0,
        frames: 2,
        threads,
    }
}

/// Hand-written TLB programs whose outcomes pin the shootdown and scan rules of the dependency
/// relation (each comment says which order an outcome needs).
pub fn tlb_witness_programs() -> Vec<Program> {
    use Op::*;
    let fixed = [
        // Two blind shootdowns of disjoint pages, one of a page another CPU caches.
        vec![
            vec![SwitchMm, TlbFlush(0, 1)],
            vec![SwitchMm, TlbFlush(1, 2)],
            vec![SwitchMm, TlbFill(1, 0), TlbLookup(1)],
        ],
        // A CPU outside the mm that caches a page: whether the other shootdown targets it
        // depends on the first one's drop.
        vec![
            vec![SwitchMm, TlbFlush(0, 2)],
            vec![SwitchMm, TlbFlush(1, 2)],
            vec![TlbFill(0, 0), TlbFill(1, 1), IrqOff, TlbLookup(1), IrqOn],
        ],
        // The scan sees CPU 0 holding frame 0 and CPU 0's lookup then misses only if the scan
        // runs between the fill and the shootdown: a scan and a shootdown that drops a
        // translation to the frame it asks about are ordered.
        vec![
            vec![SwitchMm, TlbFill(0, 0), TlbLookup(0)],
            vec![TlbFlush(0, 1)],
            vec![TlbHolders(0)],
        ],
        // A fill that evicts CPU 0's translation to frame 0 (two entries a TLB): the scan sees
        // it only before the third fill, and a fill's footprint must name what it evicts.
        vec![
            vec![TlbFill(0, 0), TlbFill(1, 1), TlbFill(2, 1)],
            vec![TlbHolders(0)],
        ],
        // A shootdown deferred by CPU 0's IRQ-off section: CPU 0 hits inside the section and
        // misses after it, CPU 2 misses (so it scans after the shootdown) and yet sees CPU 0
        // holding frame 0 only if it scans before CPU 0's IRQ enable runs the queued flush.
        vec![
            vec![
                SwitchMm,
                TlbFill(0, 0),
                IrqOff,
                TlbLookup(0),
                IrqOn,
                TlbLookup(0),
            ],
            vec![TlbFlush(0, 4)],
            vec![SwitchMm, TlbFill(3, 1), TlbLookup(3), TlbHolders(0)],
        ],
        // Scans for either frame against shootdowns of the pages mapping them.
        vec![
            vec![SwitchMm, TlbFill(0, 0), TlbFill(2, 1)],
            vec![SwitchMm, TlbFlush(0, 1), TlbHolders(1)],
            vec![TlbHolders(0), TlbFlush(2, 3)],
        ],
    ];
    fixed
        .into_iter()
        .map(|threads| Program {
            vars: 0,
            locks: 0,
            frames: 2,
            threads,
        })
        .collect()
}

/// The first `n` programs of [`random_tlb_program`] with at most 7 operations in all.
pub fn small_tlb_programs(n: usize) -> Vec<Program> {
    (0..)
        .map(random_tlb_program)
        .filter(|p| p.threads.iter().map(Vec::len).sum::<usize>() <= 7)
        .take(n)
        .collect()
}

/// Readers and writers of a `SLAB_TYPESAFE_BY_RCU` object's field, inside RCU read-side
/// sections or not, against its free: an access inside a section commutes with the free
/// (`Obj::RCU_READER`), any other does not (a use-after-free, or the value written before).
pub fn slab_programs() -> Vec<Program> {
    use Op::*;
    let fixed = [
        vec![vec![RcuLock, SlabRead, RcuUnlock], vec![SlabFree]],
        vec![vec![RcuLock, SlabRead, RcuUnlock, SlabRead], vec![SlabFree]],
        vec![
            vec![RcuLock, SlabRead, RcuUnlock],
            vec![SlabWrite(1), SlabFree],
            vec![SlabRead],
        ],
        vec![
            vec![RcuLock, SlabRead, SlabRead, RcuUnlock],
            vec![RcuLock, SlabWrite(2), RcuUnlock],
            vec![SlabFree],
        ],
        vec![
            vec![SlabWrite(1), RcuLock, SlabRead, RcuUnlock],
            vec![RcuLock, SlabRead, RcuUnlock, SlabFree],
        ],
    ];
    fixed
        .into_iter()
        .map(|threads| Program {
            vars: 0,
            locks: 0,
            frames: 0,
            threads,
        })
        .collect()
}

/// The first `n` programs of [`random_rcu_program`] with at most 7 operations in all (naive
/// enumeration of the larger ones takes up to millions of executions).
pub fn small_rcu_programs(n: usize) -> Vec<Program> {
    (0..)
        .map(random_rcu_program)
        .filter(|p| p.threads.iter().map(Vec::len).sum::<usize>() <= 7)
        .take(n)
        .collect()
}
