//! The platform layer of mmcheck: the kernel-flavoured primitives every piece of the modeled mm is
//! written against: spinlocks and rwsems, the mmap lock and the per-VMA lock (6.15+ refcount
//! semantics, `mm/mmap_lock.c`), atomic entry words with `READ_ONCE`/`WRITE_ONCE`/`xchg`/`cmpxchg`,
//! RCU (`kernel/rcu/`), IRQ-off regions and IPI broadcasts (`tlb_remove_table_sync_one`,
//! `mm/mmu_gather.c`), per-CPU TLBs (`arch/x86/mm/tlb.c`) and the frames arena (`struct page`, with
//! KASAN-like lifetime checks).
//!
//! There is no global state: everything hangs off a [`Machine`], and every operation is performed
//! by a [`Cpu`], a cheap handle naming the simulated CPU that runs it. Every visible operation is
//! announced to the machine's [`Backend`] as an [`Event`] naming the object it touches and the
//! access kind. The `native` backend runs on real OS threads; the `explore` backend (the explorer
//! crate) turns each event into a scheduling point and each blocking wait into an enabledness
//! condition.

pub mod backend;
pub mod event;
pub mod frames;
pub mod irq;
pub mod machine;
pub mod memory;
pub mod mmap_lock;
pub mod mutate;
pub mod naming;
pub mod rcu;
pub mod rwsem;
pub mod shared;
pub mod slab;
pub mod snapshot;
pub mod spinlock;
pub mod tlb;
pub mod violation;

pub use backend::{Backend, Clock, NativeBackend, CLOCK_THREADS};
pub use event::{Access, Event, Obj};
pub use frames::{FrameKind, FrameRef, Frames, PageField, PageMeta, PagePeek, PageRef};
pub use irq::IrqGuard;
pub use machine::{Cpu, FuncGuard, Machine, MachineConfig};
pub use memory::{BufferedStore, MemoryModel, StoreLoc};
pub use mmap_lock::{MmapLock, MmapReadGuard, MmapWriteGuard, VmaLock, VmaReadGuard, VmaStartRead};
pub use mutate::{Mutation, SiteInfo, SiteKey, SiteKind};
pub use naming::{NameRec, Names, Owner};
pub use rcu::{RcuGuard, RcuWork};
pub use rwsem::{RwSem, RwSemReadGuard, RwSemWriteGuard};
pub use shared::{CellCopy, Counter, Ghost, GuardLog, Locked, Shared, SharedWord, Unordered};
pub use slab::{SlabCache, SlabObj};
pub use snapshot::{Memo, Snapshot, SnapshotObj};
pub use spinlock::{SpinGuard, SpinLock};
pub use tlb::{TlbEntry, TlbFlushMode, WalkCacheEntry};
pub use violation::{Limit, Violation, ViolationKind};
