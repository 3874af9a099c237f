//! Violations: what the oracles and the model's own assertions report.

use std::fmt;

/// The kind of a violation, as printed in verdicts (`use-after-free`, `rmap-missed`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ViolationKind {
    UseAfterFree,
    DoubleFree,
    RmapMissed,
    StaleTranslation,
    LostWrite,
    StaleRead,
    Assertion,
    Deadlock,
    LockOrder,
    Leak,
    CounterMismatch,
    BadPopulate,
    WalkerResult,
    /// A system call that reduces access returned while some CPU's TLB still grants more than
    /// the page tables do in its range.
    TlbPermission,
    /// A page that `UFFDIO_WRITEPROTECT` protected, in a VMA still registered for uffd-wp, is
    /// neither a uffd-wp PTE nor a uffd-wp marker: a store would succeed without the uffd-wp
    /// fault user space relies on (live snapshot, postcopy).
    UffdWpLost,
    /// Under a weak memory model, a CPU read an entry of a page table before the allocating
    /// CPU's zeroing of it was visible to it: it read what the page held before (what
    /// `pmd_install`'s `smp_wmb` exists to prevent).
    UninitTable,
    /// Under a weak memory model, a CPU read a page's data before the allocating CPU's zeroing
    /// or copy of it was visible to it: it read what the page held before (what the `smp_wmb`
    /// in `__folio_mark_uptodate` before `set_pte_at` exists to prevent).
    UninitData,
    /// Strict mode: the model touched shared state its step did not announce (a model bug that
    /// would make the explorer's partial-order reduction unsound), or peeked inside a step.
    Unannounced,
    /// Two accesses to a lock-protected field ([`crate::Locked`]: `vm_start`, an interval tree)
    /// that no lock orders: a write without every lock of its rule, or a read without one of
    /// them. The kernel has a data race there, and the explorer, which does not schedule such
    /// reads on their own, would not see its outcomes. Checked in every explored execution.
    DataRace,
}

impl ViolationKind {
    /// The kebab-case name used in reports and scenario expectations.
    pub fn name(self) -> &'static str {
        match self {
            ViolationKind::UseAfterFree => "use-after-free",
            ViolationKind::DoubleFree => "double-free",
            ViolationKind::RmapMissed => "rmap-missed",
            ViolationKind::StaleTranslation => "stale-translation",
            ViolationKind::LostWrite => "lost-write",
            ViolationKind::StaleRead => "stale-read",
            ViolationKind::Assertion => "assertion",
            ViolationKind::Deadlock => "deadlock",
            ViolationKind::LockOrder => "lock-order",
            ViolationKind::Leak => "leak",
            ViolationKind::CounterMismatch => "counter-mismatch",
            ViolationKind::BadPopulate => "bad-populate",
            ViolationKind::WalkerResult => "walker-result",
            ViolationKind::TlbPermission => "tlb-permission",
            ViolationKind::UffdWpLost => "uffd-wp-lost",
            ViolationKind::UninitTable => "uninit-table",
            ViolationKind::UninitData => "uninit-data",
            ViolationKind::Unannounced => "unannounced-access",
            ViolationKind::DataRace => "data-race",
        }
    }

    /// Every kind, for parsing and listing.
    pub const ALL: [ViolationKind; 19] = [
        ViolationKind::UseAfterFree,
        ViolationKind::DoubleFree,
        ViolationKind::RmapMissed,
        ViolationKind::StaleTranslation,
        ViolationKind::LostWrite,
        ViolationKind::StaleRead,
        ViolationKind::Assertion,
        ViolationKind::Deadlock,
        ViolationKind::LockOrder,
        ViolationKind::Leak,
        ViolationKind::CounterMismatch,
        ViolationKind::BadPopulate,
        ViolationKind::WalkerResult,
        ViolationKind::TlbPermission,
        ViolationKind::UffdWpLost,
        ViolationKind::UninitTable,
        ViolationKind::UninitData,
        ViolationKind::Unannounced,
        ViolationKind::DataRace,
    ];

    /// Parse a kebab-case name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }
}

impl fmt::Display for ViolationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One violation: its kind, the CPU and kernel function stack where it fired, and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub kind: ViolationKind,
    pub cpu: Option<usize>,
    /// Kernel functions active on that CPU, outermost first.
    pub stack: Vec<&'static str>,
    pub msg: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(c) = self.cpu {
            write!(f, " on CPU{c}")?;
        }
        if !self.stack.is_empty() {
            write!(f, " in {}", self.stack.join(" > "))?;
        }
        write!(f, ": {}", self.msg)
    }
}

/// A limit of the tool (not of the kernel) that an execution ran into. An execution that hits one
/// proves nothing either way: the explorer reports it as inconclusive, never as a violation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Limit {
    /// The execution ran longer than the explorer's step limit (a livelock, or a long scenario).
    Steps(usize),
    /// The scenario's frame pool (`frames N`) ran out.
    Frames(usize),
}

impl Limit {
    /// How to raise the limit.
    pub fn how_to_raise(&self) -> String {
        match self {
            Limit::Steps(n) => format!("raise it with --max-steps (now {n})"),
            Limit::Frames(n) => {
                format!("raise `frames` in the scenario (now {n}), or its `spare=K` if it has one")
            }
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Steps(n) => write!(f, "an execution exceeded the step limit of {n} steps"),
            Limit::Frames(n) => write!(f, "the frame pool of {n} frames ran out"),
        }
    }
}
