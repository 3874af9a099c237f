//! The modeled Linux mm, written once against the platform layer so it runs natively on real
//! threads and under the explorer. Modules mirror the kernel's files (`mm/memory.c`,
//! `mm/mmu_gather.c`, `mm/vma.c`, `mm/madvise.c`, `mm/huge_memory.c`, `kernel/fork.c`,
//! `mm/shmem.c`, `mm/rmap.c`, `arch/x86/mm/fault.c`) and use the kernel's names in Rust case.
//! The protocol followed is the one in `reference/linux-rules.md` (§1–3, §4a, §4e), at ≈6.14–6.18
//! unless a function's doc says otherwise.
//!
//! Everything hangs off a [`Kernel`] (the machine, the protocol, the mms, files and anon_vmas);
//! every path runs in a [`Ctx`]: the kernel plus the CPU executing it.

pub mod arch;
pub mod check;
pub mod mm;
pub mod protocol;
pub mod selftest;

pub use arch::pgtable::{Entry, Geometry};
pub use mm::types::{AnonVma, File, MmStruct, VmFlags, Vma};
pub use protocol::Protocol;

use mmcheck_platform::{
    Cpu, FrameKind, FrameRef, Ghost, Machine, MachineConfig, Shared, SlabCache,
};
use std::sync::{Arc, Weak};

/// Errors returned by the modeled system calls (the errno a user would see).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Errno {
    #[error("ENOMEM")]
    Enomem,
    #[error("EINVAL")]
    Einval,
    #[error("EEXIST")]
    Eexist,
    #[error("SIGSEGV")]
    Sigsegv,
    #[error("SIGBUS")]
    Sigbus,
    #[error("EAGAIN")]
    Eagain,
    #[error("ENOENT")]
    Enoent,
    #[error("EFAULT")]
    Efault,
    #[error("EBUSY")]
    Ebusy,
}

/// The model's locking helpers: a lock they take is a mutation site of their caller (see
/// [`mmcheck_platform::mutate`]), as each caller takes it for its own reason.
pub const LOCK_HELPERS: &[&str] = &[
    "pte_offset_map_lock",
    "take_rmap_locks",
    "uffd_mfill_lock",
    "uffd_lock_vma",
    "uffd_move_lock",
];

/// The modeled kernel: one machine, one protocol, and the objects that live across system calls.
pub struct Kernel {
    pub machine: Machine,
    pub geo: Geometry,
    pub proto: Protocol,
    /// The shared zero page (`ZERO_PAGE(0)`), mapped by read faults on anonymous memory.
    pub zero_page: FrameRef,
    /// The huge zero folio (`huge_zero_folio`), allocated on first use.
    pub huge_zero: Shared<Option<FrameRef>>,
    /// The swap area and swap cache (`swapon`), with `swap = on`.
    pub swap: Option<mm::swapfile::SwapInfo>,
    /// Registries of live objects, for the quiescent checks (the checker's, not the kernel's).
    pub(crate) mms: Ghost<Vec<Weak<MmStruct>>>,
    pub(crate) anon_vmas: Ghost<Vec<Weak<AnonVma>>>,
    pub(crate) files: Ghost<Vec<Weak<File>>>,
    /// `vm_area_cachep`'s per-CPU freelists of freed anonymous VMAs (reused by `vm_area_alloc`).
    pub(crate) vma_cache: SlabCache<Arc<mm::types::Vma>>,
}

impl Kernel {
    /// A kernel on `machine`. The machine's `entries_per_table` must match `geo`.
    pub fn new(mut machine: Machine, geo: Geometry, proto: Protocol) -> Self {
        machine.set_tlb_flush(proto.tlb_flush);
        assert_eq!(
            machine.config.entries_per_table,
            geo.entries(),
            "machine and geometry disagree"
        );
        let cpu = machine.cpu(0);
        let zero_page = machine
            .frames
            .alloc(&cpu, 0, FrameKind::Data)
            .expect("no memory for the zero page");
        let huge_zero = Shared::new(
            machine.name_global(machine.new_id(), "huge_zero_folio"),
            None,
        );
        machine.set_entry_text(arch::pgtable::entry_text);
        let swap = proto.swap.then(|| mm::swapfile::SwapInfo::new(&machine));
        Kernel {
            swap,
            zero_page,
            machine,
            geo,
            proto,
            huge_zero,
            mms: Ghost::default(),
            anon_vmas: Ghost::default(),
            files: Ghost::default(),
            vma_cache: SlabCache::default(),
        }
    }

    /// A kernel on the native backend with `nr_cpus` CPUs and `nr_frames` frames.
    pub fn native(geo: Geometry, proto: Protocol, nr_cpus: usize, nr_frames: usize) -> Self {
        let cfg = MachineConfig {
            nr_cpus,
            nr_frames,
            entries_per_table: geo.entries(),
            ..MachineConfig::default()
        };
        Self::new(Machine::native(cfg), geo, proto)
    }

    /// The context for CPU `id`.
    pub fn ctx(&self, id: usize) -> Ctx<'_> {
        Ctx {
            k: self,
            cpu: self.machine.cpu(id),
        }
    }

    /// Every live mm.
    pub fn mms(&self) -> Vec<Arc<MmStruct>> {
        self.mms.peek(&self.machine, |v| {
            v.iter().filter_map(Weak::upgrade).collect()
        })
    }

    /// The mm with id `id` (what `vma->vm_mm` points to).
    pub fn mm_by_id(&self, id: u64) -> Option<Arc<MmStruct>> {
        self.mms
            .deref(|v| v.iter().filter_map(Weak::upgrade).find(|m| m.id == id))
    }

    /// The file with id `id` (what `folio->mapping` points to).
    pub fn file_by_id(&self, id: u64) -> Option<Arc<File>> {
        self.files
            .deref(|v| v.iter().filter_map(Weak::upgrade).find(|f| f.id == id))
    }

    /// The huge zero folio, if allocated (quiescent).
    #[track_caller]
    pub fn huge_zero_peek(&self) -> Option<FrameRef> {
        self.huge_zero.peek(&self.machine, |z| *z)
    }

    /// Every live file.
    pub fn files(&self) -> Vec<Arc<File>> {
        self.files.peek(&self.machine, |v| {
            v.iter().filter_map(Weak::upgrade).collect()
        })
    }
}

/// A kernel path running on a CPU: `current` with its kernel.
#[derive(Clone, Copy)]
pub struct Ctx<'k> {
    pub k: &'k Kernel,
    pub cpu: Cpu<'k>,
}

impl<'k> Ctx<'k> {
    pub fn geo(&self) -> &'k Geometry {
        &self.k.geo
    }

    pub fn proto(&self) -> &'k Protocol {
        &self.k.proto
    }

    /// Run RCU callbacks whose grace period has ended, if this kernel runs them inline (native).
    pub fn rcu_quiescent(&self) {
        if self.k.proto.inline_rcu_callbacks {
            self.cpu.rcu_poll();
        }
    }
}
