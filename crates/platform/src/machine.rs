//! The simulated machine: CPUs, the frames arena, RCU state, and the backend that executes visible
//! operations. A [`Cpu`] is a `Copy` handle (CPU number plus machine reference) passed to every
//! model function, like `current` and `smp_processor_id()` in the kernel.

use crate::backend::Backend;
use crate::event::{Access, Event, Obj};
use crate::frames::Frames;
use crate::memory::MemoryModel;
use crate::mutate::Mutation;
use crate::naming::{EntryText, NameRec, Names, Owner};
use crate::rcu::RcuState;
use crate::tlb::{Tlb, TlbFlushMode};
use crate::violation::{Violation, ViolationKind};
use parking_lot::Mutex;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};

/// Sizes of a machine.
#[derive(Clone, Debug)]
pub struct MachineConfig {
    /// Number of CPUs (simulated threads, plus one for RCU callbacks if the backend wants it).
    pub nr_cpus: usize,
    /// Number of physical frames.
    pub nr_frames: usize,
    /// Entries per page table (512 on x86-64).
    pub entries_per_table: usize,
    /// Leaf TLB entries per CPU.
    pub tlb_entries: usize,
}

impl Default for MachineConfig {
    fn default() -> Self {
        MachineConfig {
            nr_cpus: 4,
            nr_frames: 1 << 16,
            entries_per_table: 512,
            tlb_entries: 64,
        }
    }
}

/// Per-CPU state shared with other CPUs (IPIs, grace periods and shootdowns look at it).
pub struct CpuState {
    /// Odd while the CPU is in an IRQ-off region (or a hardware walk, which IPIs also wait for).
    pub(crate) irq_ctr: AtomicU64,
    /// IRQ-off nesting depth (owned by this CPU).
    pub(crate) irq_depth: AtomicU32,
    /// Odd while the CPU is in an RCU read-side critical section (IRQ-off counts as one).
    pub(crate) rcu_ctr: AtomicU64,
    /// RCU reader nesting depth (owned by this CPU).
    pub(crate) rcu_depth: AtomicU32,
    /// The CPU's TLB: leaf and paging-structure caches.
    pub(crate) tlb: Mutex<Tlb>,
    /// Shootdowns that reached this CPU while it was IRQ-off: `(mm, start, end, tables)`, run by
    /// the IPI handler when the CPU next enables IRQs. The lock also orders IRQ-state changes
    /// against a sender's decision to flush now or queue (native backend).
    pub(crate) ipi_flush: Mutex<Vec<(u64, u64, u64, bool)>>,
    /// The mm whose translations this CPU is using (0: none): the CPU's bit in that mm's
    /// `mm_cpumask`, for shootdown targeting. A CPU running a thread of the mm has it from the
    /// start (`current->mm` is loaded before the thread runs user code).
    pub(crate) loaded_mm: AtomicU64,
    /// Hardware page-walk nesting (owned by this CPU): a broadcast invalidation completes only
    /// once walks in flight on every CPU have finished.
    pub(crate) hw_walk: AtomicU32,
    /// The order of the allocation this CPU announced last (its pending `FrameAlloc` step), for
    /// [`Machine::footprint`].
    pub(crate) alloc_order: AtomicU32,
    /// The TLB operation this CPU announced last (a shootdown or a scan), for
    /// [`Machine::footprint`].
    pub(crate) tlb_op: Mutex<crate::tlb::TlbOp>,
    /// Inside the closure of a [`crate::Shared`] or [`crate::Locked`] access: announcing there
    /// would suspend while holding the cell's host lock (a model bug, caught at once).
    pub(crate) in_cell: AtomicBool,
    /// Kernel functions active on this CPU, for traces and reports.
    pub(crate) stack: Mutex<Vec<&'static str>>,
    /// Holds whose acquisition a mutant skipped and whose release is still to come (see
    /// [`crate::mutate`]); keyed by lock id, or by a VMA's refcount id for the VMA lock.
    pub(crate) skipped: Mutex<Vec<u64>>,
    /// Under a weak memory model, this CPU's entry stores are buffered (see [`crate::memory`]).
    pub(crate) buffered: AtomicBool,
    /// The CPU's store buffer (owned by this CPU and the flusher).
    pub(crate) wb: Mutex<crate::memory::StoreBuffer>,
    /// Weak loads: the happens-before past this CPU's entry loads may not read behind (see
    /// [`crate::memory`], "loads"); owned by this CPU.
    pub(crate) load_floor: Mutex<crate::backend::Clock>,
}

/// The whole simulated machine. Nothing in the model is global: it all hangs off this.
pub struct Machine {
    pub(crate) backend: Box<dyn Backend>,
    /// The backend's [`Backend::strict`], asked once.
    strict: bool,
    pub frames: Frames,
    pub(crate) rcu: RcuState,
    pub(crate) cpus: Box<[CpuState]>,
    pub config: MachineConfig,
    /// How TLB shootdowns reach other CPUs (the kernel's protocol decides; see
    /// [`Machine::set_tlb_flush`]).
    pub(crate) tlb_flush: TlbFlushMode,
    next_id: AtomicU64,
    /// Per CPU, the next id, slab base and `SLAB_TYPESAFE_BY_RCU` slab base its steps hand out
    /// (see [`Machine::new_id`]).
    cpu_ids: Box<[[AtomicU64; 3]]>,
    /// The next slab object's base id (see [`Obj::SLAB_BASE`]).
    next_slab: AtomicU64,
    /// The next `SLAB_TYPESAFE_BY_RCU` slab object's base id (see [`Obj::SLAB_TYPESAFE`]).
    next_slab_typesafe: AtomicU64,
    /// Lock id → lockdep class (`&mm->mmap_lock`, ...), for lock-order tracking by class.
    lock_classes: Mutex<std::collections::BTreeMap<u64, &'static str>>,
    violations: Mutex<Vec<Violation>>,
    violated: AtomicBool,
    /// Keep the naming log (the backend records a trace).
    naming: bool,
    names: Mutex<Vec<NameRec>>,
    entry_text: std::sync::OnceLock<EntryText>,
    /// The mutant this machine runs, or the site recording it feeds (see [`crate::mutate`]).
    pub(crate) mutation: Option<std::sync::Arc<Mutation>>,
    /// The memory model ([`MemoryModel`], encoded): SC until [`Machine::set_memory_model`].
    memory: AtomicU8,
    /// The id of the store buffers' object (pushes and the flusher's wait).
    wb_id: AtomicU64,
    /// Page-data stores of the kernel (a new folio's zeroing and copies) are buffered too
    /// (`memory.data_buffered`, `lkmm` only).
    data_buffered: AtomicBool,
    /// Entry loads may be performed early (`memory.load_reorder`, `lkmm` only).
    load_reorder: AtomicBool,
    /// `vma_start_write` orders its later loads after the readers it waited out even when it
    /// did not sleep (`vma_lock.wait_acquire`, a what-if: the kernel has no such acquire).
    pub(crate) vma_wait_acquire: AtomicBool,
    /// Weak loads: every entry's writes in memory since the threads started, oldest first
    /// (indexed by `pfn * entries_per_table + idx`; empty until its first write).
    pub(crate) entry_hist: Mutex<Vec<Vec<crate::memory::HistWrite>>>,
}

impl Machine {
    /// Build a machine with the given backend.
    pub fn new(config: MachineConfig, backend: Box<dyn Backend>) -> Self {
        let nr_cpus = config.nr_cpus;
        let cpus = (0..config.nr_cpus)
            .map(|_| CpuState {
                irq_ctr: AtomicU64::new(0),
                irq_depth: AtomicU32::new(0),
                rcu_ctr: AtomicU64::new(0),
                rcu_depth: AtomicU32::new(0),
                tlb: Mutex::new(Tlb::new(config.tlb_entries)),
                ipi_flush: Mutex::new(Vec::new()),
                loaded_mm: AtomicU64::new(0),
                hw_walk: AtomicU32::new(0),
                alloc_order: AtomicU32::new(0),
                tlb_op: Mutex::new(Default::default()),
                in_cell: AtomicBool::new(false),
                stack: Mutex::new(Vec::with_capacity(16)),
                skipped: Mutex::new(Vec::new()),
                buffered: AtomicBool::new(false),
                wb: Mutex::new(Default::default()),
                load_floor: Mutex::new(Default::default()),
            })
            .collect();
        Machine {
            frames: Frames::new(config.nr_frames, config.entries_per_table),
            rcu: RcuState::default(),
            cpus,
            config,
            tlb_flush: TlbFlushMode::Ipi,
            next_id: AtomicU64::new(1),
            cpu_ids: (0..nr_cpus as u64)
                .map(|c| {
                    [
                        AtomicU64::new((c + 1) << Self::CPU_ID_SHIFT),
                        AtomicU64::new(Obj::SLAB_BASE + ((c + 1) << Self::CPU_SLAB_SHIFT)),
                        AtomicU64::new(
                            Obj::SLAB_BASE | Obj::SLAB_TYPESAFE | ((c + 1) << Self::CPU_SLAB_SHIFT),
                        ),
                    ]
                })
                .collect(),
            next_slab: AtomicU64::new(Obj::SLAB_BASE),
            next_slab_typesafe: AtomicU64::new(Obj::SLAB_BASE | Obj::SLAB_TYPESAFE),
            lock_classes: Mutex::new(std::collections::BTreeMap::new()),
            violations: Mutex::new(Vec::new()),
            violated: AtomicBool::new(false),
            naming: backend.naming(),
            names: Mutex::new(Vec::new()),
            entry_text: std::sync::OnceLock::new(),
            mutation: None,
            memory: AtomicU8::new(0),
            wb_id: AtomicU64::new(0),
            data_buffered: AtomicBool::new(false),
            load_reorder: AtomicBool::new(false),
            vma_wait_acquire: AtomicBool::new(false),
            entry_hist: Mutex::new(Vec::new()),
            strict: backend.strict(),
            backend,
        }
    }

    /// A copy of this machine on `backend`, as it is now (see [`crate::snapshot`]): for
    /// restoring the state a set-up left. The copy runs the same mutant; the backend is told to
    /// keep clocks if this machine's set-up asked its own to.
    pub fn snapshot(&self, backend: Box<dyn Backend>) -> Machine {
        let mut copy = Machine::new(self.config.clone(), backend);
        copy.copy_from(self);
        copy
    }

    /// True if [`Machine::reset_from`] can make this machine a copy of `t`: the same sizes.
    pub fn same_shape(&self, t: &Machine) -> bool {
        let (a, b) = (&self.config, &t.config);
        (a.nr_cpus, a.nr_frames, a.entries_per_table, a.tlb_entries)
            == (b.nr_cpus, b.nr_frames, b.entries_per_table, b.tlb_entries)
            && self.frames.len() == t.frames.len()
            && self.naming == t.naming
    }

    /// Make this machine what [`Machine::snapshot`] would copy from `t` (a machine of the same
    /// shape), on `backend`, keeping this one's allocations: the explorer restores the set-up
    /// state into the previous execution's machine, so the vectors a step grows (TLBs, the
    /// CPUs' function stacks, the frames' free records) are already grown. The copy runs on
    /// one thread, with no step running.
    pub fn reset_from(&mut self, t: &Machine, backend: Box<dyn Backend>) {
        assert!(
            self.same_shape(t),
            "reset_from: machines of different shapes"
        );
        self.strict = backend.strict();
        self.backend = backend;
        self.copy_from(t);
    }

    /// Make this machine's state (all but its backend) what `t`'s is: the one copy both
    /// [`Machine::snapshot`] (onto a new machine) and [`Machine::reset_from`] (onto the last
    /// execution's) make.
    fn copy_from(&mut self, t: &Machine) {
        let ld64 = |a: &AtomicU64| a.load(Ordering::SeqCst);
        let ld32 = |a: &AtomicU32| a.load(Ordering::SeqCst);
        let ldb = |a: &AtomicBool| a.load(Ordering::SeqCst);
        let Machine {
            backend: _,
            strict: _,
            frames,
            rcu,
            cpus,
            config,
            tlb_flush,
            next_id,
            cpu_ids,
            next_slab,
            next_slab_typesafe,
            lock_classes,
            violations,
            violated,
            naming,
            names,
            entry_text,
            mutation,
            memory,
            wb_id,
            data_buffered,
            load_reorder,
            vma_wait_acquire,
            entry_hist,
        } = self;
        assert_eq!(
            *naming, t.naming,
            "a copy keeps the naming log or not, as built"
        );
        frames.reset_from(&t.frames);
        rcu.reset_from(&t.rcu);
        for (c, tc) in cpus.iter_mut().zip(t.cpus.iter()) {
            let CpuState {
                irq_ctr,
                irq_depth,
                rcu_ctr,
                rcu_depth,
                tlb,
                ipi_flush,
                loaded_mm,
                hw_walk,
                alloc_order,
                tlb_op,
                in_cell,
                stack,
                skipped,
                buffered,
                wb,
                load_floor,
            } = c;
            *irq_ctr.get_mut() = ld64(&tc.irq_ctr);
            *irq_depth.get_mut() = ld32(&tc.irq_depth);
            *rcu_ctr.get_mut() = ld64(&tc.rcu_ctr);
            *rcu_depth.get_mut() = ld32(&tc.rcu_depth);
            tlb.get_mut().reset_from(&tc.tlb.lock());
            ipi_flush.get_mut().clone_from(&tc.ipi_flush.lock());
            *loaded_mm.get_mut() = ld64(&tc.loaded_mm);
            *hw_walk.get_mut() = ld32(&tc.hw_walk);
            *alloc_order.get_mut() = ld32(&tc.alloc_order);
            *tlb_op.get_mut() = *tc.tlb_op.lock();
            *in_cell.get_mut() = ldb(&tc.in_cell);
            stack.get_mut().clone_from(&tc.stack.lock());
            skipped.get_mut().clone_from(&tc.skipped.lock());
            *buffered.get_mut() = ldb(&tc.buffered);
            wb.get_mut().clone_from(&tc.wb.lock());
            *load_floor.get_mut() = *tc.load_floor.lock();
        }
        config.clone_from(&t.config);
        *tlb_flush = t.tlb_flush;
        *next_id.get_mut() = ld64(&t.next_id);
        for (c, tc) in cpu_ids.iter_mut().zip(t.cpu_ids.iter()) {
            for (a, b) in c.iter_mut().zip(tc) {
                *a.get_mut() = ld64(b);
            }
        }
        *next_slab.get_mut() = ld64(&t.next_slab);
        *next_slab_typesafe.get_mut() = ld64(&t.next_slab_typesafe);
        lock_classes.get_mut().clone_from(&t.lock_classes.lock());
        violations.get_mut().clone_from(&t.violations.lock());
        *violated.get_mut() = ldb(&t.violated);
        names.get_mut().clone_from(&t.names.lock());
        *entry_text = match t.entry_text.get() {
            Some(x) => std::sync::OnceLock::from(*x),
            None => std::sync::OnceLock::new(),
        };
        mutation.clone_from(&t.mutation);
        *memory.get_mut() = t.memory.load(Ordering::SeqCst);
        *wb_id.get_mut() = ld64(&t.wb_id);
        *data_buffered.get_mut() = ldb(&t.data_buffered);
        *load_reorder.get_mut() = ldb(&t.load_reorder);
        *vma_wait_acquire.get_mut() = ldb(&t.vma_wait_acquire);
        entry_hist.get_mut().clone_from(&t.entry_hist.lock());
        if *load_reorder.get_mut() {
            self.backend.track_clocks();
        }
    }

    /// Run the threads under `model` from now on (after set-up, which stays sequentially
    /// consistent): the CPUs in `buffered` buffer their entry stores, which a flusher thread
    /// (running [`Cpu::store_buffer_flusher`]) commits. `Sc` ends it (final checks run SC).
    pub fn set_memory_model(&self, model: MemoryModel, buffered: &[usize]) {
        if model != MemoryModel::Sc && self.wb_id.load(Ordering::Relaxed) == 0 {
            let id = Obj::STORE_BUFFERS_ID;
            self.name_global(id, "store buffers");
            self.wb_id.store(id, Ordering::Relaxed);
        }
        for (c, st) in self.cpus.iter().enumerate() {
            st.buffered.store(buffered.contains(&c), Ordering::Relaxed);
        }
        self.memory.store(model.encode(), Ordering::Relaxed);
    }

    /// Buffer the kernel's page-data stores as well as entry stores under `lkmm` (see
    /// [`crate::memory`]).
    pub fn set_data_buffered(&self, on: bool) {
        self.data_buffered.store(on, Ordering::Relaxed);
    }

    /// Let the buffered CPUs' entry loads be performed early under `lkmm` (see
    /// [`crate::memory`], "loads"): the explorer keeps happens-before clocks from now on.
    pub fn set_load_reorder(&self, on: bool) {
        self.load_reorder.store(on, Ordering::Relaxed);
        if on {
            let n = self.frames.len() * self.frames.entries_per_table();
            *self.entry_hist.lock() = vec![Vec::new(); n];
            self.backend.track_clocks();
        }
    }

    /// Give `vma_start_write`'s wait for readers an acquire also when it does not sleep
    /// (`vma_lock.wait_acquire`; see [`crate::mmap_lock`]).
    pub fn set_vma_wait_acquire(&self, on: bool) {
        self.vma_wait_acquire.store(on, Ordering::Relaxed);
    }

    /// Whether entry loads may be performed early (`lkmm` and `memory.load_reorder`).
    #[inline]
    pub(crate) fn load_reorder(&self) -> bool {
        self.load_reorder.load(Ordering::Relaxed) && self.memory_model() == MemoryModel::Lkmm
    }

    /// Whether page-data stores are buffered (under `lkmm`).
    #[inline]
    pub(crate) fn data_buffered(&self) -> bool {
        self.data_buffered.load(Ordering::Relaxed)
    }

    /// The memory model in force.
    #[inline]
    pub fn memory_model(&self) -> MemoryModel {
        MemoryModel::decode(self.memory.load(Ordering::Relaxed))
    }

    /// The store buffers' object id.
    pub(crate) fn wb_id(&self) -> u64 {
        self.wb_id.load(Ordering::Relaxed)
    }

    /// A machine on the native backend.
    pub fn native(config: MachineConfig) -> Self {
        Self::new(config, Box::new(crate::backend::NativeBackend))
    }

    /// A handle for CPU `id`.
    pub fn cpu(&self, id: usize) -> Cpu<'_> {
        assert!(id < self.cpus.len(), "cpu {id} out of range");
        Cpu { id, m: self }
    }

    /// Choose how TLB shootdowns reach other CPUs (before any CPU runs).
    pub fn set_tlb_flush(&mut self, mode: TlbFlushMode) {
        self.tlb_flush = mode;
    }

    /// Run as the mutant `m` describes, or record its sites (see [`crate::mutate`]).
    pub fn set_mutation(&mut self, m: Option<std::sync::Arc<Mutation>>) {
        self.mutation = m;
    }

    pub fn tlb_flush_mode(&self) -> TlbFlushMode {
        self.tlb_flush
    }

    pub fn nr_cpus(&self) -> usize {
        self.cpus.len()
    }

    /// Bits below a CPU's own range of plain ids (CPU `c`'s start at `(c + 1) << 32`, under
    /// [`Obj::PTL_BASE`]).
    const CPU_ID_SHIFT: u32 = 32;
    /// Bits below a CPU's own range of slab ids (inside [`Obj::SLAB_BASE`]'s range, under
    /// [`Obj::SLAB_TYPESAFE`]).
    const CPU_SLAB_SHIFT: u32 = 37;

    /// The counter of kind `k` (0 plain ids, 1 slab bases, 2 typesafe slab bases) that a new
    /// object takes its id from: the running step's CPU's own, so that an object's id is a
    /// function of its thread's program alone. A shared counter handed ids out in the order
    /// threads created objects, an order the explorer does not see: equivalent executions
    /// named their objects differently (and anything ordered by id would have depended on the
    /// interleaving unannounced). Set-up, final checks and the native backend share one.
    fn id_counter(&self, k: usize) -> &AtomicU64 {
        match self.backend.running().and_then(|c| self.cpu_ids.get(c)) {
            Some(ids) => &ids[k],
            None => match k {
                0 => &self.next_id,
                1 => &self.next_slab,
                _ => &self.next_slab_typesafe,
            },
        }
    }

    /// A fresh object id (locks, VMAs, mms): from the running CPU's range (see
    /// [`Machine::id_counter`]), in creation order, so a deterministic program gets the same
    /// ids every run.
    pub fn new_id(&self) -> u64 {
        self.id_counter(0).fetch_add(1, Ordering::Relaxed)
    }

    /// The base of a fresh block of [`Obj::SLAB_STRIDE`] ids for the fields of a slab object
    /// (see [`crate::SlabObj`]); handed out as [`Machine::new_id`]'s are.
    pub fn new_slab_ids(&self, typesafe_by_rcu: bool) -> u64 {
        let k = if typesafe_by_rcu { 2 } else { 1 };
        self.id_counter(k)
            .fetch_add(Obj::SLAB_STRIDE, Ordering::Relaxed)
    }

    /// A fresh id for a lock of lockdep class `class` (the kernel's static key: one per
    /// initialisation site, e.g. `&mm->mmap_lock`, `&anon_vma->rwsem`).
    pub fn new_lock_id(&self, class: &'static str) -> u64 {
        let id = self.new_id();
        self.lock_classes.lock().insert(id, class);
        id
    }

    /// The lockdep class of lock `id`. Split page-table locks are one class in the kernel
    /// (`ptlock_init`), told apart by the nesting annotation every PMD-lock → PTL path carries
    /// (`spin_lock_nested(ptl, SINGLE_DEPTH_NESTING)`); here by the level of their table:
    /// `pmd_lock` (PMD tables), `ptl` (PTE tables). Folio locks are `folio_lock`.
    /// Locks created with a plain id are all `unclassified`.
    pub fn lock_class(&self, id: u64) -> &'static str {
        if id >= Obj::PAGE_LOCK_BASE {
            "folio_lock"
        } else if id >= Obj::PTL_BASE {
            match self.frames.kind((id - Obj::PTL_BASE) as u32) {
                crate::FrameKind::Table(1) => "ptl",
                crate::FrameKind::Table(2) => "pmd_lock",
                _ => "ptlock",
            }
        } else {
            self.lock_classes
                .lock()
                .get(&id)
                .copied()
                .unwrap_or("unclassified")
        }
    }

    /// Log a naming fact (only while a trace is recorded; see [`crate::naming`]).
    #[inline]
    pub fn name(&self, rec: NameRec) {
        if self.naming {
            self.log_name(rec);
        }
    }

    #[cold]
    #[inline(never)]
    fn log_name(&self, rec: NameRec) {
        self.names.lock().push(rec);
    }

    /// Name `id` as an owner of fields; returns `id`.
    #[inline]
    pub fn name_owner(&self, id: u64, owner: Owner) -> u64 {
        self.name(NameRec::Owner { id, owner });
        id
    }

    /// Name the shared word or lock `id` as field `field` of `owner`; returns `id`.
    #[inline]
    pub fn name_field(&self, id: u64, owner: u64, field: &'static str) -> u64 {
        self.name(NameRec::Field { id, owner, field });
        id
    }

    /// Name the shared word or lock `id` as a global; returns `id`.
    #[inline]
    pub fn name_global(&self, id: u64, name: &'static str) -> u64 {
        self.name(NameRec::Global { id, name });
        id
    }

    /// Table `child` is now linked into entry `idx` of table `parent`.
    #[inline]
    pub fn name_link(&self, parent: u32, idx: usize, child: u32) {
        self.name(NameRec::Link {
            parent,
            idx: idx as u32,
            child,
        });
    }

    /// The model's decoder of entry words, for reports.
    pub fn set_entry_text(&self, f: EntryText) {
        let _ = self.entry_text.set(f);
    }

    /// Length of the naming log: a step's mark for resolving names as they stood then.
    pub fn names_mark(&self) -> u32 {
        if self.naming {
            self.names.lock().len() as u32
        } else {
            0
        }
    }

    /// The naming log so far, with what resolving it needs.
    pub fn names(&self) -> Names {
        Names {
            recs: self.names.lock().clone(),
            bits: self.config.entries_per_table.trailing_zeros(),
            page_shift: 12,
            entry_text: self.entry_text.get().copied(),
        }
    }

    /// Every violation recorded so far.
    pub fn violations(&self) -> Vec<Violation> {
        self.violations.lock().clone()
    }

    /// True once any violation was recorded.
    pub fn violated(&self) -> bool {
        self.violated.load(Ordering::Relaxed)
    }

    /// Record a violation not tied to a CPU (quiescent checks).
    pub fn report_global(&self, kind: ViolationKind, msg: String) {
        let v = Violation {
            kind,
            cpu: None,
            stack: Vec::new(),
            msg,
        };
        self.violated.store(true, Ordering::Relaxed);
        self.violations.lock().push(v);
    }

    /// CPU `cpu`'s pending event as the explorer's dependency relation sees it, from the state
    /// before it runs. Two announced events read more than their step will touch, and what the
    /// step touches changes only by events dependent with it:
    /// - an RCU callback step (`RcuCallback` on [`Obj::Rcu`]) reads the reader counters of the
    ///   CPUs that can change which callback it runs ([`Machine::rcu_callback_footprint`]):
    ///   [`Obj::RcuReady`] when a callback is ready (it commutes with every `call_rcu` but the
    ///   one that queued that callback), else [`Obj::RcuReaders`];
    /// - `call_rcu` queues the next callback: [`Obj::RcuCall`] names it;
    /// - an allocation (`FrameAlloc` on [`Obj::Alloc`]) reads the allocator's bitmap from its
    ///   cursor to the block it will take ([`Frames::alloc_scan`]): [`Obj::AllocRange`], unless
    ///   the pool is short or the scan wraps;
    /// - a shootdown's send step and a `tlb_holders` scan: [`Machine::tlb_footprint`];
    /// - an IRQ enable says whether shootdowns wait in the CPU's queue ([`Obj::IrqOn`]): only
    ///   then does its IPI handler write the TLB (the queue changes only by shootdowns, which
    ///   are dependent with it, and by the CPU's own IRQ enables);
    /// - an access to a field of a `SLAB_TYPESAFE_BY_RCU` object inside an RCU read-side section
    ///   carries [`Obj::RCU_READER`]: the object's free commutes with it (the free changes no
    ///   field, and such an access is legal after it; see `SlabObj::check`). The mark depends on
    ///   the CPU's own reader depth only.
    pub fn footprint(&self, cpu: usize, ev: Event) -> Event {
        match (ev.obj, ev.access) {
            (Obj::Rcu, Access::RcuCallback) => match self.rcu_callback_footprint() {
                (readers, Some(seq)) => Event::new(Obj::RcuReady { readers, seq }, ev.access),
                (readers, None) => Event::new(Obj::RcuReaders(readers), ev.access),
            },
            (Obj::Rcu, Access::CallRcu) => Event::new(Obj::RcuCall(self.rcu_next_seq()), ev.access),
            (Obj::Irq(c), Access::IrqEnable) => Event::new(
                Obj::IrqOn {
                    cpu: c,
                    flushes: !self.cpus[c as usize].ipi_flush.lock().is_empty(),
                },
                ev.access,
            ),
            (Obj::Tlb(_), Access::Flush | Access::TlbScan | Access::Fill) => {
                self.tlb_footprint(cpu, ev)
            }
            (Obj::Var(id), _)
                if ev.obj.is_typesafe_field()
                    && self.cpus[cpu].rcu_depth.load(Ordering::Relaxed) != 0 =>
            {
                Event::new(Obj::Var(id | Obj::RCU_READER), ev.access)
            }
            (Obj::Alloc, Access::FrameAlloc) => {
                let order = self.cpus[cpu].alloc_order.load(Ordering::Relaxed);
                match self.frames.alloc_scan(order) {
                    Some((from, to)) => Event::new(Obj::AllocRange { from, to }, ev.access),
                    None => ev,
                }
            }
            _ => ev,
        }
    }

    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    /// The `struct page` of `pfn`, read without announcing (set-up, quiescent checks, reports).
    #[track_caller]
    pub fn page_peek(&self, pfn: u32) -> crate::frames::PagePeek<'_> {
        self.peek_check();
        self.frames.page_peek(pfn)
    }

    /// The data word of `pfn`, read without announcing (quiescent checks).
    #[track_caller]
    pub fn data_peek(&self, pfn: u32) -> u64 {
        self.peek_check();
        self.frames.data_peek(pfn)
    }

    /// Assert that shared state is being read outside every thread's step (set-up, quiescent
    /// checks, reports): strict mode reports a `peek` made from inside a step.
    #[inline]
    #[track_caller]
    pub fn peek_check(&self) {
        if self.strict {
            self.backend.peek(Location::caller());
        }
    }

    /// The backend's [`Backend::strict`].
    #[inline]
    pub fn strict(&self) -> bool {
        self.strict
    }
}

/// The CPU running the current code path: `current` plus `smp_processor_id()`.
#[derive(Clone, Copy)]
pub struct Cpu<'m> {
    pub id: usize,
    pub m: &'m Machine,
}

impl std::fmt::Debug for Cpu<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CPU{}", self.id)
    }
}

/// Pops the kernel function pushed by [`Cpu::enter`].
pub struct FuncGuard<'m> {
    cpu: Cpu<'m>,
}

impl Drop for FuncGuard<'_> {
    fn drop(&mut self) {
        self.cpu.state().stack.lock().pop();
    }
}

impl<'m> Cpu<'m> {
    #[inline]
    pub(crate) fn state(&self) -> &'m CpuState {
        &self.m.cpus[self.id]
    }

    /// Announce a visible operation.
    #[inline]
    pub fn visible(&self, obj: Obj, access: Access) {
        self.assert_not_in_cell();
        let weak = self.m.memory.load(Ordering::Relaxed) != 0;
        if weak {
            self.wb_before(Event::new(obj, access));
        }
        self.m.backend.visible(self.id, Event::new(obj, access));
        if weak {
            self.wl_after(access);
        }
    }

    /// A nondeterministic choice among `n` outcomes (`0..n`), announced as its own step: where the
    /// kernel's behaviour depends on something the model does not simulate (`need_resched()`, a
    /// contended trylock, a failed `GFP_NOWAIT` allocation). The explorer tries every outcome;
    /// the native backend always takes 0, the common case.
    pub fn choose(&self, n: u8) -> u8 {
        debug_assert!(n >= 1);
        self.visible(
            Obj::Choice {
                cpu: self.id as u16,
                n,
            },
            Access::Read,
        );
        self.m.backend.choice(self.id).min(n.saturating_sub(1))
    }

    #[inline]
    pub(crate) fn assert_not_in_cell(&self) {
        assert!(
            !self.state().in_cell.load(Ordering::Relaxed),
            "a visible operation inside a Shared/Locked closure (clone the data out first)"
        );
    }

    /// Run `f` as the body of a shared-cell access (see `CpuState::in_cell`).
    pub(crate) fn in_cell<R>(&self, f: impl FnOnce() -> R) -> R {
        /// Restores the flag also when `f` panics: the unwinding that follows releases locks
        /// (visible operations), which must not be refused as if still inside the closure (a
        /// second panic would abort the process instead of reporting the model's panic).
        struct Restore<'a>(&'a std::sync::atomic::AtomicBool, bool);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                self.0.store(self.1, Ordering::Relaxed);
            }
        }
        let st = &self.state().in_cell;
        let _restore = Restore(st, st.swap(true, Ordering::Relaxed));
        f()
    }

    /// Strict mode: this CPU touches `obj` in the step running now (see [`Backend::touch`]).
    #[inline]
    #[track_caller]
    pub fn touch(&self, obj: Obj) {
        if self.m.strict {
            self.m.backend.touch(self.id, obj, Location::caller());
        }
    }

    /// This CPU reads or writes the [`crate::Locked`] cell `id` (named `label` in reports, if
    /// given) whose access log is `log` (see [`Backend::guarded`]).
    #[inline]
    #[track_caller]
    pub fn guarded(
        &self,
        id: u64,
        label: Option<&'static str>,
        log: &crate::shared::GuardLog,
        write: bool,
    ) {
        let loc = Location::caller();
        self.m.backend.guarded(self.id, id, label, log, write, loc);
    }

    /// Block until `ready()`, announcing `ev` (see [`Backend::block`]).
    #[inline]
    pub fn block(&self, obj: Obj, access: Access, ready: &dyn Fn() -> bool) {
        self.assert_not_in_cell();
        let weak = self.m.memory.load(Ordering::Relaxed) != 0;
        if weak {
            self.wb_before(Event::new(obj, access));
        }
        self.m
            .backend
            .block(self.id, Event::new(obj, access), ready);
        if weak {
            self.wl_after(access);
        }
    }

    /// Perform `try_op` once `ready` holds; retry while it fails. The pair must agree: explore
    /// evaluates `ready` to decide enabledness and then expects `try_op` to succeed.
    pub fn wait_for(
        &self,
        obj: Obj,
        access: Access,
        ready: &dyn Fn() -> bool,
        try_op: &mut dyn FnMut() -> bool,
    ) {
        loop {
            self.block(obj, access, ready);
            if try_op() {
                return;
            }
        }
    }

    /// Report the outcome of a trylock announced with `Access::TryAcquire`.
    #[inline]
    pub fn trylock_result(&self, lock: u64, ok: bool) {
        self.m.backend.trylock_result(self.id, lock, ok);
    }

    /// Enter a kernel function (for traces and violation reports).
    #[inline]
    pub fn enter(&self, func: &'static str) -> FuncGuard<'m> {
        self.state().stack.lock().push(func);
        FuncGuard { cpu: *self }
    }

    /// The kernel functions active on this CPU, outermost first.
    pub fn stack(&self) -> Vec<&'static str> {
        self.state().stack.lock().clone()
    }

    /// The innermost kernel function on this CPU.
    pub fn current_func(&self) -> Option<&'static str> {
        self.state().stack.lock().last().copied()
    }

    /// Name `obj` as what the violation about to be reported is about (the report's race slice
    /// starts from it). Only logged while a trace is recorded.
    #[inline]
    pub fn blame(&self, obj: Obj) {
        self.m.name(NameRec::Blame(obj));
    }

    /// Record a violation detected on this CPU.
    pub fn report(&self, kind: ViolationKind, msg: String) {
        let v = Violation {
            kind,
            cpu: Some(self.id),
            stack: self.state().stack.lock().clone(),
            msg,
        };
        self.m.violated.store(true, Ordering::Relaxed);
        self.m.violations.lock().push(v.clone());
        self.m.backend.violation(self.id, &v);
    }

    /// `BUG_ON`/`WARN_ON`: a model assertion. Returns `cond` so callers can bail out like the
    /// kernel's `if (WARN_ON(...)) return`.
    #[inline]
    pub fn warn_on(&self, cond: bool, what: &str) -> bool {
        if cond {
            self.report(ViolationKind::Assertion, what.to_string());
        }
        cond
    }

    /// Set the mm whose translations this CPU uses (`switch_mm`).
    pub fn switch_mm(&self, mm_id: u64) {
        // Shootdown senders read `loaded_mm` to pick their targets.
        *self.state().tlb_op.lock() = crate::tlb::TlbOp::Other;
        self.visible(Obj::Tlb(self.id as u16), Access::Fill);
        self.state().loaded_mm.store(mm_id, Ordering::SeqCst);
    }

    /// This CPU's own `loaded_mm` (CPU-local: only this CPU writes it).
    pub fn loaded_mm(&self) -> u64 {
        self.state().loaded_mm.load(Ordering::SeqCst)
    }

    /// `smp_wmb()`: under `memory = lkmm` the entry stores before it stay ahead of every store
    /// after it (see [`crate::memory`]); under SC and TSO stores are already in order.
    /// Under a weak model each call is a mutation site (`FUNCTION:smp_wmb`, see [`crate::mutate`]).
    #[inline]
    #[track_caller]
    pub fn smp_wmb(&self) {
        if self.m.memory.load(Ordering::Relaxed) != 0 && !self.barrier_site("smp_wmb") {
            self.wb_wmb();
        }
    }

    /// `smp_mb()`: under a weak model, wait until this CPU's buffered stores are visible; a
    /// mutation site (`FUNCTION:smp_mb`).
    #[inline]
    #[track_caller]
    pub fn smp_mb(&self) {
        if self.m.memory.load(Ordering::Relaxed) != 0 && !self.barrier_site("smp_mb") {
            self.wb_mb();
            self.wl_order();
        }
    }

    /// arm64's `dsb(ishst)` ahead of a TLB invalidation issued without waiting for it
    /// (`__flush_tlb_range_nosync`, as `arch_tlbbatch_add_pending` does): the CPU's earlier
    /// stores complete before the barrier does, and no later instruction runs before that.
    /// Under a weak model, wait until this CPU's buffered stores are visible. Part of the TLB
    /// maintenance, so not a mutation site.
    #[inline]
    pub fn dsb_ishst(&self) {
        if self.m.memory.load(Ordering::Relaxed) != 0 {
            self.wb_mb();
            self.wl_order();
        }
    }

    /// `smp_rmb()`: with weak loads (`memory.load_reorder`), this CPU's later entry loads read
    /// nothing older than what its earlier steps observed (see [`crate::memory`], "loads"); a
    /// mutation site (`FUNCTION:smp_rmb`) then. Otherwise loads are performed in program order
    /// and there is nothing to order.
    #[inline]
    #[track_caller]
    pub fn smp_rmb(&self) {
        if self.m.load_reorder() && !self.barrier_site("smp_rmb") {
            self.wl_order();
        }
    }

    /// A shared model word read (READ_ONCE of a non-entry word).
    #[inline]
    pub fn read_var(&self, id: u64, v: &AtomicU64) -> u64 {
        self.visible(Obj::Var(id), Access::Read);
        v.load(Ordering::SeqCst)
    }

    /// A shared model word write.
    #[inline]
    pub fn write_var(&self, id: u64, v: &AtomicU64, val: u64) {
        self.visible(Obj::Var(id), Access::Write);
        v.store(val, Ordering::SeqCst)
    }
}
