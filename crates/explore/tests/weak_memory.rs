//! The platform's store buffers (`mmcheck_platform::memory`) under the explorer: litmus shapes
//! over page-table entry words give the outcomes each memory model allows (SC, x86-TSO, the
//! store side of the LKMM), and DPOR reaches exactly the outcomes naive enumeration reaches on
//! random small programs, the flusher thread and its commits included.

use mmcheck_explore::{explore, naive, Config, Finish, Mode, Model};
use mmcheck_platform::{
    Access, Backend, FrameKind, FrameRef, Machine, MachineConfig, MemoryModel, Obj, PageField,
    SpinLock,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::fmt::Write;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy, Debug)]
enum Op {
    /// `WRITE_ONCE` of an entry.
    St(usize, u64),
    /// `READ_ONCE` of an entry.
    Ld(usize),
    /// `xchg` of an entry (returns the old value; relaxed under LKMM).
    Xchg(usize, u64),
    /// The hardware walker's `cmpxchg` of an entry (performed in memory; returns the value
    /// found).
    CasHw(usize, u64, u64),
    Wmb,
    Mb,
    /// A value-returning atomic on the table's `struct page` (`atomic_inc_and_test` of its
    /// mapcount): fully ordered under the LKMM.
    PageAtomic,
    /// A void atomic on it (`atomic_inc`): relaxed.
    PageAdd,
    /// A kernel store into the data page (`data_init`: buffered under `lkmm`).
    DataSt(u64),
    /// A load of the data page.
    DataLd,
    /// `WRITE_ONCE` of a word of other (sequentially consistent) state: a flag.
    FlagSt(u64),
    /// `READ_ONCE` of the flag.
    FlagLd,
    Rmb,
    /// `spin_lock` and `spin_unlock` of one lock (an acquire and a release).
    Lock,
    Unlock,
}

#[derive(Clone, Debug)]
struct Prog {
    memory: MemoryModel,
    threads: Vec<Vec<Op>>,
    /// Entry loads may be performed early (`memory.load_reorder`).
    reorder: bool,
}

struct Inst {
    machine: Machine,
    table: FrameRef,
    data: FrameRef,
    reads: Vec<Mutex<Vec<u64>>>,
    flag: (u64, AtomicU64),
    lock: SpinLock,
}

impl Prog {
    fn flusher(&self) -> Option<usize> {
        (self.memory != MemoryModel::Sc).then_some(self.threads.len())
    }
}

impl Model for Prog {
    type Instance = Inst;

    fn build(&self, backend: Box<dyn Backend>) -> Inst {
        let cfg = MachineConfig {
            nr_cpus: self.threads(),
            nr_frames: 4,
            entries_per_table: 4,
            tlb_entries: 1,
        };
        let machine = Machine::new(cfg, backend);
        let table = machine
            .frames
            .alloc(&machine.cpu(0), 0, FrameKind::Table(1))
            .expect("a frame");
        let data = machine
            .frames
            .alloc(&machine.cpu(0), 0, FrameKind::Data)
            .expect("a frame");
        let buffered: Vec<usize> = (0..self.threads.len()).collect();
        machine.set_memory_model(self.memory, &buffered);
        machine.set_data_buffered(true);
        machine.set_load_reorder(self.reorder);
        let flag = (machine.new_id(), AtomicU64::new(0));
        let lock = SpinLock::new(machine.new_id());
        let reads = self
            .threads
            .iter()
            .map(|_| Mutex::new(Vec::new()))
            .collect();
        Inst {
            machine,
            table,
            data,
            reads,
            flag,
            lock,
        }
    }

    fn machine<'a>(&self, inst: &'a Inst) -> &'a Machine {
        &inst.machine
    }

    fn threads(&self) -> usize {
        self.threads.len() + usize::from(self.flusher().is_some())
    }

    fn is_daemon(&self, t: usize) -> bool {
        Some(t) == self.flusher()
    }

    fn run(&self, inst: &Inst, t: usize) {
        let cpu = inst.machine.cpu(t);
        if Some(t) == self.flusher() {
            cpu.store_buffer_flusher();
            return;
        }
        let mut held = None;
        for op in &self.threads[t] {
            match *op {
                Op::St(i, v) => cpu.entry_write(inst.table, i, v),
                Op::Ld(i) => {
                    let v = cpu.entry_read(inst.table, i);
                    inst.reads[t].lock().unwrap().push(v);
                }
                Op::Xchg(i, v) => {
                    let old = cpu.entry_xchg(inst.table, i, v);
                    inst.reads[t].lock().unwrap().push(old);
                }
                Op::CasHw(i, old, new) => {
                    let v = cpu.entry_cmpxchg_hw(inst.table, i, old, new);
                    inst.reads[t].lock().unwrap().push(v.unwrap_or_else(|v| v));
                }
                Op::Wmb => cpu.smp_wmb(),
                Op::Mb => cpu.smp_mb(),
                Op::PageAtomic => {
                    cpu.page_atomic_return(inst.table.pfn, Obj::PAGE_MAP)
                        .add(PageField::Mapcount, 1);
                }
                Op::DataSt(v) => cpu.data_init(inst.data, v),
                Op::DataLd => {
                    let v = cpu.data_read(inst.data);
                    inst.reads[t].lock().unwrap().push(v);
                }
                Op::PageAdd => {
                    cpu.page_parts(inst.table.pfn, Obj::PAGE_MAP, Access::Rmw)
                        .add(PageField::Mapcount, 1);
                }
                Op::FlagSt(v) => cpu.write_var(inst.flag.0, &inst.flag.1, v),
                Op::FlagLd => {
                    let v = cpu.read_var(inst.flag.0, &inst.flag.1);
                    inst.reads[t].lock().unwrap().push(v);
                }
                Op::Rmb => cpu.smp_rmb(),
                Op::Lock => held = Some(inst.lock.lock(cpu)),
                Op::Unlock => held = None,
            }
        }
        drop(held);
        cpu.store_buffer_drain();
    }

    fn finish(&self, inst: &Inst) -> Finish {
        inst.machine.set_memory_model(MemoryModel::Sc, &[]);
        let mut outcome = String::new();
        for r in &inst.reads {
            let _ = write!(outcome, "{:?} | ", r.lock().unwrap());
        }
        for i in 0..4 {
            let _ = write!(
                outcome,
                "{} ",
                inst.machine.frames.entry_word_raw(inst.table.pfn, i)
            );
        }
        Finish {
            violations: inst.machine.violations(),
            outcome,
        }
    }
}

fn cfg() -> Config {
    Config {
        mode: Mode::Dpor,
        collect_outcomes: true,
        stop_on_violation: false,
        ..Config::default()
    }
}

/// The threads' reads in every execution, DPOR's and naive's (which must agree).
fn reads(memory: MemoryModel, threads: Vec<Vec<Op>>) -> BTreeSet<String> {
    reads_with(memory, false, threads)
}

/// [`reads`], with entry loads performed early or not.
fn reads_with(memory: MemoryModel, reorder: bool, threads: Vec<Vec<Op>>) -> BTreeSet<String> {
    let m = Arc::new(Prog {
        memory,
        threads,
        reorder,
    });
    let d = explore(m.clone(), &cfg());
    let n = naive::explore(&m, &cfg());
    assert!(d.complete && n.complete, "{m:?}");
    assert_eq!(d.outcomes, n.outcomes, "DPOR and naive differ on {m:?}");
    d.outcomes
        .iter()
        .map(|o| o[..o.rfind("| ").map_or(0, |i| i + 2)].to_string())
        .collect()
}

fn mp(wmb: bool) -> Vec<Vec<Op>> {
    let mut w = vec![Op::St(0, 1)];
    if wmb {
        w.push(Op::Wmb);
    }
    w.push(Op::St(1, 1));
    vec![w, vec![Op::Ld(1), Op::Ld(0)]]
}

fn sb(mb: bool) -> Vec<Vec<Op>> {
    let t = |a, b| {
        let mut v = vec![Op::St(a, 1)];
        if mb {
            v.push(Op::Mb);
        }
        v.push(Op::Ld(b));
        v
    };
    vec![t(0, 1), t(1, 0)]
}

const MP_WEAK: &str = "[] | [1, 0] | ";
const SB_WEAK: &str = "[0] | [0] | ";

#[test]
fn message_passing_needs_smp_wmb_only_under_lkmm() {
    assert!(!reads(MemoryModel::Sc, mp(false)).contains(MP_WEAK));
    assert!(!reads(MemoryModel::Tso, mp(false)).contains(MP_WEAK));
    assert!(reads(MemoryModel::Lkmm, mp(false)).contains(MP_WEAK));
    assert!(!reads(MemoryModel::Lkmm, mp(true)).contains(MP_WEAK));
}

#[test]
fn store_buffering_needs_smp_mb_under_tso_and_lkmm() {
    assert!(!reads(MemoryModel::Sc, sb(false)).contains(SB_WEAK));
    for m in [MemoryModel::Tso, MemoryModel::Lkmm] {
        assert!(reads(m, sb(false)).contains(SB_WEAK), "{m:?}");
        assert!(!reads(m, sb(true)).contains(SB_WEAK), "{m:?}");
    }
}

#[test]
fn a_cpu_reads_its_own_buffered_store_and_stores_to_one_entry_stay_in_order() {
    // Forwarding, and coherence: the reader never sees 2 then 1.
    let r = reads(
        MemoryModel::Lkmm,
        vec![
            vec![Op::St(0, 1), Op::St(0, 2), Op::Ld(0)],
            vec![Op::Ld(0), Op::Ld(0)],
        ],
    );
    assert!(r.iter().all(|o| o.starts_with("[2] | ")), "{r:?}");
    assert!(!r.iter().any(|o| o.contains("[2, 1]")), "{r:?}");
}

#[test]
fn an_xchg_waits_for_the_cpus_stores_to_its_entry() {
    let r = reads(
        MemoryModel::Lkmm,
        vec![vec![Op::St(0, 1), Op::Xchg(0, 2)], vec![Op::Ld(0)]],
    );
    assert!(r.iter().all(|o| o.starts_with("[1] | ")), "{r:?}");
}

/// SB with the stores made by `xchg`: under x86-TSO a locked RMW drains the buffer and is a
/// full barrier; under the LKMM `xchg_relaxed` is not (arm64's `__ptep_get_and_clear`), so both
/// loads may miss the other CPU's write without `smp_mb`.
#[test]
fn store_buffering_with_relaxed_xchg_needs_smp_mb_under_lkmm_only() {
    let t = |a, b, mb: bool| {
        let mut v = vec![Op::Xchg(a, 1)];
        if mb {
            v.push(Op::Mb);
        }
        v.push(Op::Ld(b));
        v
    };
    let weak = "[0, 0] | [0, 0] | ";
    let prog = |mb| vec![t(0, 1, mb), t(1, 0, mb)];
    assert!(!reads(MemoryModel::Sc, prog(false)).contains(weak));
    assert!(!reads(MemoryModel::Tso, prog(false)).contains(weak));
    assert!(reads(MemoryModel::Lkmm, prog(false)).contains(weak));
    assert!(!reads(MemoryModel::Lkmm, prog(true)).contains(weak));
}

/// SB with a value-returning atomic of other state between each store and load: the LKMM's
/// fully ordered RMWs (`folio_put_testzero`, `folio_try_get`, the rmap's mapcount updates) order
/// like `smp_mb`; a void atomic (`atomic_inc`) orders nothing.
#[test]
fn store_buffering_is_ordered_by_a_value_returning_atomic_only() {
    let prog = |op| {
        let t = |a, b| vec![Op::St(a, 1), op, Op::Ld(b)];
        vec![t(0, 1), t(1, 0)]
    };
    for m in [MemoryModel::Sc, MemoryModel::Tso, MemoryModel::Lkmm] {
        assert!(!reads(m, prog(Op::PageAtomic)).contains(SB_WEAK), "{m:?}");
    }
    assert!(!reads(MemoryModel::Tso, prog(Op::PageAdd)).contains(SB_WEAK));
    assert!(reads(MemoryModel::Lkmm, prog(Op::PageAdd)).contains(SB_WEAK));
}

/// MP with the message in a data page (a new folio's contents, then the entry that maps it):
/// with page-data stores buffered, the LKMM lets the reader see the entry and not the contents
/// without `smp_wmb` (`__folio_mark_uptodate`'s); TSO and SC never.
#[test]
fn page_contents_before_the_mapping_need_smp_wmb_under_lkmm_only() {
    let prog = |wmb: bool| {
        let mut w = vec![Op::DataSt(7)];
        if wmb {
            w.push(Op::Wmb);
        }
        w.push(Op::St(0, 1));
        vec![w, vec![Op::Ld(0), Op::DataLd]]
    };
    let weak = "[] | [1, 0] | ";
    assert!(!reads(MemoryModel::Sc, prog(false)).contains(weak));
    assert!(!reads(MemoryModel::Tso, prog(false)).contains(weak));
    assert!(reads(MemoryModel::Lkmm, prog(false)).contains(weak));
    assert!(!reads(MemoryModel::Lkmm, prog(true)).contains(weak));
    // A CPU reads its own buffered contents.
    let own = reads(
        MemoryModel::Lkmm,
        vec![vec![Op::DataSt(7), Op::DataLd], vec![]],
    );
    assert!(own.iter().all(|o| o.starts_with("[7] | ")), "{own:?}");
}

/// A buffered RMW write stays atomic: no write of the entry reaches memory between its read
/// and its write, whether another RMW, the hardware walker's, or another CPU's plain store.
#[test]
fn a_relaxed_rmw_loses_no_update() {
    let finals = |threads| -> BTreeSet<String> {
        let m = Arc::new(Prog {
            memory: MemoryModel::Lkmm,
            threads,
            reorder: false,
        });
        let d = explore(m.clone(), &cfg());
        let n = naive::explore(&m, &cfg());
        assert_eq!(d.outcomes, n.outcomes, "{m:?}");
        d.outcomes.iter().cloned().collect()
    };
    // Two xchgs: exactly one reads the initial 0, and the other's value is the final one.
    let r = finals(vec![vec![Op::Xchg(0, 1)], vec![Op::Xchg(0, 2)]]);
    let want: BTreeSet<String> = ["[0] | [1] | 2 0 0 0 ", "[2] | [0] | 1 0 0 0 "]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(r, want);
    // A plain store against an xchg: if the xchg read 0, the store is after it.
    let r = finals(vec![vec![Op::Xchg(0, 1)], vec![Op::St(0, 2)]]);
    assert!(r.iter().all(|o| !o.starts_with("[0] | [] | 1 ")), "{r:?}");
    // The walker's cmpxchg against an xchg: the cmpxchg that read 0 wrote 4, kept unless the
    // xchg came after it and read 4.
    let r = finals(vec![vec![Op::Xchg(0, 1)], vec![Op::CasHw(0, 0, 4)]]);
    assert!(
        r.iter()
            .all(|o| o != "[0] | [0] | 4 0 0 0 " && o != "[0] | [0] | 1 0 0 0 "),
        "{r:?}"
    );
    // The walker's cmpxchg of the value the xchg buffered commits it first, then its own: the
    // flusher must not commit it again over the walker's write.
    let r = finals(vec![vec![Op::Xchg(0, 1)], vec![Op::CasHw(0, 1, 4)]]);
    assert!(
        r.iter()
            .all(|o| !o.starts_with("[0] | [1] | ") || o.ends_with("| 4 0 0 0 ")),
        "{r:?}"
    );
    assert!(r.iter().any(|o| o.starts_with("[0] | [1] | ")), "{r:?}");
}

fn random_prog(seed: u64, memory: MemoryModel) -> Prog {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let threads = (0..2)
        .map(|_| {
            (0..rng.gen_range(1..=3))
                .map(|_| match rng.gen_range(0..8) {
                    0..=2 => Op::St(rng.gen_range(0..2), rng.gen_range(1..3)),
                    3..=5 => Op::Ld(rng.gen_range(0..2)),
                    6 => Op::Wmb,
                    _ => match rng.gen_range(0..4) {
                        0 => Op::Mb,
                        1 => Op::Xchg(rng.gen_range(0..2), 3),
                        2 => Op::CasHw(rng.gen_range(0..2), rng.gen_range(0..2), 4),
                        _ => [Op::PageAtomic, Op::PageAdd][rng.gen_range(0..2)],
                    },
                })
                .collect()
        })
        .collect();
    Prog {
        memory,
        threads,
        reorder: false,
    }
}

/// DPOR complete with naive's outcomes on `m`; their execution counts.
fn agree(m: &Arc<Prog>, seed: u64) -> (u64, u64) {
    let dp = explore(m.clone(), &cfg());
    let nv = naive::explore(m, &cfg());
    assert!(dp.complete && nv.complete, "{m:?}");
    assert_eq!(dp.outcomes, nv.outcomes, "seed {seed}: {m:?}");
    (dp.executions, nv.executions)
}

/// The explorer's self-check for the store buffers: on 300 random programs per weak model,
/// DPOR complete with naive's outcomes (reads and final memory).
#[test]
fn dpor_matches_naive_on_random_weak_programs() {
    for memory in [MemoryModel::Tso, MemoryModel::Lkmm] {
        let (mut d, mut n) = (0, 0);
        for seed in 0..300 {
            let (x, y) = agree(&Arc::new(random_prog(seed, memory)), seed);
            d += x;
            n += y;
        }
        eprintln!("{memory:?}: DPOR {d} executions, naive {n}");
    }
}

/// Page data in the store buffers (`memory.data_buffered`): DPOR against naive on 200 small
/// random programs of entry stores and loads, `smp_wmb`, and page-data stores and loads.
#[test]
fn dpor_matches_naive_on_random_programs_with_page_data() {
    let (mut d, mut n) = (0, 0);
    for seed in 0..200 {
        let mut rng = ChaCha8Rng::seed_from_u64(1000 + seed);
        let threads = (0..2)
            .map(|_| {
                (0..rng.gen_range(1..=2))
                    .map(|_| match rng.gen_range(0..6) {
                        0 => Op::St(rng.gen_range(0..2), 1),
                        1 => Op::Ld(rng.gen_range(0..2)),
                        2 => Op::Wmb,
                        3 | 4 => Op::DataSt(rng.gen_range(5..7)),
                        _ => Op::DataLd,
                    })
                    .collect()
            })
            .collect();
        let m = Arc::new(Prog {
            memory: MemoryModel::Lkmm,
            threads,
            reorder: false,
        });
        let (x, y) = agree(&m, seed);
        d += x;
        n += y;
    }
    // Shapes that caught a bug before commit (a page-data store merged into the CPU's pending
    // one while the flusher was committing it: the flusher wrote the old value).
    for threads in [
        vec![
            vec![Op::DataSt(5), Op::DataSt(6), Op::DataLd],
            vec![Op::St(0, 1)],
        ],
        vec![
            vec![Op::DataSt(5), Op::Ld(1), Op::DataSt(6)],
            vec![Op::DataLd, Op::DataLd, Op::Wmb],
        ],
    ] {
        reads(MemoryModel::Lkmm, threads);
    }
    eprintln!("page data: DPOR {d} executions, naive {n}");
}

/// Weak loads (`memory.load_reorder`): message passing from an entry to a flag of other state.
/// The reader may see the flag and then the entry's old value unless an `smp_rmb`, a fully
/// ordered atomic or a lock acquisition comes between its loads (the load side of the LKMM);
/// without weak loads it never does.
#[test]
fn weak_loads_message_passing_needs_a_read_barrier() {
    let prog = |mid: &[Op]| {
        let mut r = vec![Op::FlagLd];
        r.extend_from_slice(mid);
        r.push(Op::Ld(0));
        vec![vec![Op::St(0, 1), Op::Wmb, Op::FlagSt(1)], r]
    };
    let weak = "[] | [1, 0] | ";
    assert!(!reads_with(MemoryModel::Lkmm, false, prog(&[])).contains(weak));
    assert!(reads_with(MemoryModel::Lkmm, true, prog(&[])).contains(weak));
    for mid in [&[Op::Rmb][..], &[Op::Mb], &[Op::PageAtomic]] {
        let r = reads_with(MemoryModel::Lkmm, true, prog(mid));
        assert!(!r.iter().any(|o| o.starts_with(weak)), "{mid:?}: {r:?}");
    }
    // An acquisition orders the loads after it, not the flag's load before it (and the release
    // orders nothing after it): a lock the writer never takes does not help.
    assert!(reads_with(MemoryModel::Lkmm, true, prog(&[Op::Lock, Op::Unlock])).contains(weak));
    // The writer's flag store under the lock the reader takes before its loads: ordered.
    let r = reads_with(
        MemoryModel::Lkmm,
        true,
        vec![
            vec![Op::St(0, 1), Op::Lock, Op::FlagSt(1), Op::Unlock],
            vec![Op::Lock, Op::FlagLd, Op::Ld(0), Op::Unlock],
        ],
    );
    assert!(!r.iter().any(|o| o.contains("| [1, 0] | ")), "{r:?}");
    // The writer's store may reach memory before its drain looks (no wait step): the drain
    // still puts it in the past of the flag's store.
    let r = reads_with(
        MemoryModel::Lkmm,
        true,
        vec![
            vec![Op::St(0, 1), Op::Ld(1), Op::Wmb, Op::FlagSt(1)],
            vec![Op::FlagLd, Op::Rmb, Op::Ld(0)],
        ],
    );
    assert!(!r.iter().any(|o| o.contains("| [1, 0] | ")), "{r:?}");
    // A void atomic orders nothing.
    assert!(reads_with(MemoryModel::Lkmm, true, prog(&[Op::PageAdd])).contains(weak));
    // Without the writer's smp_wmb the read barrier does not help.
    let r = reads_with(
        MemoryModel::Lkmm,
        true,
        vec![
            vec![Op::St(0, 1), Op::FlagSt(1)],
            vec![Op::FlagLd, Op::Rmb, Op::Ld(0)],
        ],
    );
    assert!(r.contains(weak), "{r:?}");
    // Under TSO loads stay in order whatever the switch says.
    assert!(!reads_with(MemoryModel::Tso, true, prog(&[])).contains(weak));
}

/// Weak loads keep coherence (a CPU never reads an entry's older value after a newer one, nor
/// before its own store), a lock's critical sections are ordered, and the stores-side shapes
/// are unchanged: SB still needs `smp_mb`.
#[test]
fn weak_loads_keep_coherence_locks_and_store_buffering() {
    let r = reads_with(
        MemoryModel::Lkmm,
        true,
        vec![
            vec![Op::St(0, 1), Op::St(0, 2)],
            vec![Op::Ld(0), Op::Ld(0), Op::Ld(0)],
        ],
    );
    for bad in ["[2, 1", "[2, 0", "[1, 0", "2, 1]", "2, 0]", "1, 0]"] {
        assert!(!r.iter().any(|o| o.contains(bad)), "{bad}: {r:?}");
    }
    let r = reads_with(
        MemoryModel::Lkmm,
        true,
        vec![vec![Op::St(0, 1), Op::Mb, Op::Ld(0)], vec![Op::St(0, 2)]],
    );
    assert!(!r.iter().any(|o| o.starts_with("[0]")), "{r:?}");
    // Lock, store, unlock against lock, load, load: the critical sections are ordered.
    let r = reads_with(
        MemoryModel::Lkmm,
        true,
        vec![
            vec![Op::Lock, Op::St(0, 1), Op::St(1, 1), Op::Unlock],
            vec![Op::Lock, Op::Ld(1), Op::Ld(0), Op::Unlock],
        ],
    );
    for o in &r {
        assert!(o.contains("[0, 0]") || o.contains("[1, 1]"), "{r:?}");
    }
    assert!(reads_with(MemoryModel::Lkmm, true, sb(false)).contains(SB_WEAK));
    assert!(!reads_with(MemoryModel::Lkmm, true, sb(true)).contains(SB_WEAK));
}

/// The explorer's self-check for weak loads: on 200 random programs of entry and flag stores
/// and loads, the barriers, fully ordered and void atomics and a lock, DPOR complete with
/// naive's outcomes, and so does optimal DPOR (each load's choice of value rests on happens-before clocks, which must be
/// the same in every interleaving the reduction treats as equivalent).
#[test]
fn dpor_matches_naive_on_random_programs_with_weak_loads() {
    let (mut d, mut n, mut od) = (0, 0, 0);
    for seed in 0..200 {
        let mut rng = ChaCha8Rng::seed_from_u64(5000 + seed);
        let threads: Vec<Vec<Op>> = (0..2)
            .map(|_| {
                let mut v: Vec<Op> = (0..rng.gen_range(1..=3))
                    .map(|_| match rng.gen_range(0..10) {
                        0..=1 => Op::St(rng.gen_range(0..2), rng.gen_range(1..3)),
                        2..=4 => Op::Ld(rng.gen_range(0..2)),
                        5 => Op::FlagSt(rng.gen_range(1..3)),
                        6 => Op::FlagLd,
                        7 => [Op::Wmb, Op::Rmb][rng.gen_range(0..2)],
                        8 => [Op::Mb, Op::PageAtomic, Op::PageAdd][rng.gen_range(0..3)],
                        _ => Op::Xchg(rng.gen_range(0..2), 3),
                    })
                    .collect();
                if rng.gen_range(0..4) == 0 {
                    v.insert(0, Op::Lock);
                    v.push(Op::Unlock);
                }
                v
            })
            .collect();
        let m = Arc::new(Prog {
            memory: MemoryModel::Lkmm,
            threads,
            reorder: true,
        });
        let nv = naive::explore(&m, &cfg());
        for optimal in [false, true] {
            let o = explore(m.clone(), &Config { optimal, ..cfg() });
            assert!(o.complete && nv.complete, "{m:?}");
            assert_eq!(
                o.outcomes, nv.outcomes,
                "optimal {optimal}, seed {seed}: {m:?}"
            );
            *if optimal { &mut od } else { &mut d } += o.executions;
        }
        n += nv.executions;
    }
    eprintln!("weak loads: DPOR {d} executions, optimal DPOR {od}, naive {n}");
}
