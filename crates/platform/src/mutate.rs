//! Mutation sites: the checker's own mechanism (no kernel file) for asking "why is this lock
//! here?" without a hand-written protocol switch per lock.
//!
//! Every lock acquisition the platform performs (spinlocks, rwsems, the mmap lock, the per-VMA
//! lock, folio locks, `rcu_read_lock`, `local_irq_disable`) and every recheck the model names
//! with [`Cpu::recheck`] is a *site*, identified by the kernel function that makes it and the
//! lock's lockdep class or the recheck's name: `move_ptes:&anon_vma->rwsem`,
//! `do_anonymous_page:pte_same`. A lock taken inside a locking helper (`pte_offset_map_lock`,
//! `take_rmap_locks`, `mmap_read_lock`, ...) belongs to the helper's caller, so each caller is
//! its own site; a recheck belongs to the function that performs it.
//!
//! A [`Mutation`] attached to a machine can record the sites a run reaches (with the model
//! source lines that reach them) and can *skip* one site: the acquisition and its matching
//! release are not performed (the thread runs on as if it held the lock: `lockdep_assert_held`
//! style checks of its own holds pass), or the recheck passes as if nothing had changed. The
//! mutant is an interleaving question like any protocol switch: a violation it gives explains
//! why the kernel takes that lock or makes that check.

use crate::machine::Cpu;
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};

/// Functions that only take locks for their caller (the platform's own); the model adds its own
/// with [`Mutation::new`].
pub const PLATFORM_HELPERS: &[&str] = &[
    "mmap_read_lock",
    "mmap_write_lock",
    "mmap_read_unlock",
    "mmap_write_unlock",
    "mmap_write_downgrade",
    "vma_start_write",
    "vma_start_read",
    "vma_end_read",
    "folio_lock",
];

/// Skip keys of holds that are not lock ids: a VMA's refcount id with one of these bits, RCU
/// and IRQ-off sections.
pub(crate) const VMA_WRITE_KEY: u64 = 1 << 63;
pub(crate) const VMA_READ_KEY: u64 = 1 << 62;
pub(crate) const RCU_KEY: u64 = u64::MAX >> 2;
pub(crate) const IRQ_KEY: u64 = (u64::MAX >> 2) - 1;

/// What a site is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SiteKind {
    /// A lock acquisition (and its release).
    Lock,
    /// A recheck after a lock or a lockless read (`pte_same`, `pmd_same`, ...).
    Recheck,
    /// A memory barrier (`smp_wmb`, `smp_mb`): a site only under a weak memory model, where it
    /// orders something (see [`crate::memory`]).
    Barrier,
}

impl std::fmt::Display for SiteKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SiteKind::Lock => "lock",
            SiteKind::Recheck => "recheck",
            SiteKind::Barrier => "barrier",
        })
    }
}

/// A site's name: `func:class`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SiteKey {
    pub func: String,
    pub class: String,
}

impl SiteKey {
    pub fn new(func: &str, class: &str) -> Self {
        SiteKey {
            func: func.to_string(),
            class: class.to_string(),
        }
    }

    fn is(&self, func: &str, class: &str) -> bool {
        self.func == func && self.class == class
    }
}

impl std::fmt::Display for SiteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.func, self.class)
    }
}

impl std::str::FromStr for SiteKey {
    type Err = String;

    /// `func:class`; the function is a kernel identifier, the class anything non-empty.
    fn from_str(s: &str) -> Result<Self, String> {
        let (func, class) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}` is not a site: expected FUNCTION:CLASS"))?;
        let ident = !func.is_empty()
            && func
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '(' || c == ')');
        if !ident || class.trim().is_empty() {
            return Err(format!(
                "`{s}` is not a site: expected FUNCTION:CLASS, e.g. move_ptes:&anon_vma->rwsem"
            ));
        }
        Ok(SiteKey::new(func, class.trim()))
    }
}

/// What a recording saw of one site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteInfo {
    pub kind: SiteKind,
    /// The model source lines that reach it (`file`, `line`).
    pub places: BTreeSet<(&'static str, u32)>,
    /// The call stack the first time it was reached, outermost first.
    pub stack: Vec<&'static str>,
    /// Every function on any stack that reached it.
    pub callers: BTreeSet<&'static str>,
}

/// The mutation attached to a machine (see the module doc). Shared by every machine of a run,
/// so a recording spans executions.
#[derive(Debug)]
pub struct Mutation {
    target: Option<SiteKey>,
    helpers: BTreeSet<&'static str>,
    log: Option<Mutex<BTreeMap<SiteKey, SiteInfo>>>,
    skipped: AtomicU64,
}

impl Mutation {
    /// Skip `target` (if any) and, with `record`, log every site reached. `helpers` are the
    /// model's locking helpers (added to [`PLATFORM_HELPERS`]).
    pub fn new(target: Option<SiteKey>, record: bool, helpers: &[&'static str]) -> Self {
        Mutation {
            target,
            helpers: PLATFORM_HELPERS.iter().chain(helpers).copied().collect(),
            log: record.then(|| Mutex::new(BTreeMap::new())),
            skipped: AtomicU64::new(0),
        }
    }

    pub fn target(&self) -> Option<&SiteKey> {
        self.target.as_ref()
    }

    /// How many times the target was skipped, over every execution so far.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// The sites recorded so far.
    pub fn sites(&self) -> BTreeMap<SiteKey, SiteInfo> {
        self.log
            .as_ref()
            .map(|l| l.lock().clone())
            .unwrap_or_default()
    }

    /// Record the site and say whether to skip it.
    fn hit(
        &self,
        kind: SiteKind,
        func: &str,
        class: &str,
        stack: &[&'static str],
        loc: &'static Location<'static>,
    ) -> bool {
        if let Some(log) = &self.log {
            let mut log = log.lock();
            let key = SiteKey::new(func, class);
            let e = log.entry(key).or_insert_with(|| SiteInfo {
                kind,
                places: BTreeSet::new(),
                stack: stack.to_vec(),
                callers: BTreeSet::new(),
            });
            e.places.insert((loc.file(), loc.line()));
            e.callers.extend(stack.iter().copied());
        }
        let skip = self.target.as_ref().is_some_and(|t| t.is(func, class));
        if skip {
            self.skipped.fetch_add(1, Ordering::Relaxed);
        }
        skip
    }
}

impl Cpu<'_> {
    /// A lock-acquisition site for a lock of `class`: true if this run skips it (the caller then
    /// neither takes nor, later, releases the lock; see [`Cpu::skip_release`]). `key` is what the
    /// release is matched by.
    #[inline]
    #[track_caller]
    pub(crate) fn lock_site(&self, class: &'static str, key: u64) -> bool {
        let Some(mu) = self.m.mutation.as_deref() else {
            return false;
        };
        let stack = self.stack();
        let func = stack
            .iter()
            .rev()
            .find(|f| !mu.helpers.contains(*f))
            .copied()
            .unwrap_or("(user)");
        let skip = mu.hit(SiteKind::Lock, func, class, &stack, Location::caller());
        if skip {
            self.state().skipped.lock().push(key);
        }
        skip
    }

    /// A lock acquisition site for lock `id` (its class from [`crate::Machine::lock_class`]).
    #[inline]
    #[track_caller]
    pub(crate) fn lock_site_id(&self, id: u64) -> bool {
        if self.m.mutation.is_none() {
            return false;
        }
        self.lock_site(self.m.lock_class(id), id)
    }

    /// The release of a hold keyed `key`: true if its acquisition was skipped (the release is
    /// then skipped too).
    #[inline]
    pub(crate) fn skip_release(&self, key: u64) -> bool {
        if self.m.mutation.is_none() {
            return false;
        }
        let mut s = self.state().skipped.lock();
        match s.iter().rposition(|&k| k == key) {
            Some(i) => {
                s.remove(i);
                true
            }
            None => false,
        }
    }

    /// True if this CPU skipped an acquisition keyed `key` it has not released: it believes it
    /// holds the lock.
    #[inline]
    pub(crate) fn holds_skipped(&self, key: u64) -> bool {
        self.m.mutation.is_some() && self.state().skipped.lock().contains(&key)
    }

    /// Drop every skipped hold keyed by a member of `keys` (the VMA write locks an mmap write
    /// unlock ends).
    pub(crate) fn end_skipped(&self, keys: impl Fn(u64) -> bool) {
        if self.m.mutation.is_some() {
            self.state().skipped.lock().retain(|&k| !keys(k));
        }
    }

    /// A barrier site (`smp_wmb`, `smp_mb`) of the innermost kernel function: true if this run
    /// skips it. Called only under a weak memory model.
    #[track_caller]
    pub(crate) fn barrier_site(&self, name: &'static str) -> bool {
        let Some(mu) = self.m.mutation.as_deref() else {
            return false;
        };
        let stack = self.stack();
        let func = stack.last().copied().unwrap_or("(user)");
        mu.hit(SiteKind::Barrier, func, name, &stack, Location::caller())
    }

    /// A recheck the kernel makes (`pte_same`, `pmd_same`, `check_pmd_state`, ...), named `name`
    /// and made by the innermost kernel function: `ok` is true when the recheck passes (nothing
    /// changed). Returns `ok`, or true when this run skips the site. Rechecks carry no event of
    /// their own: the reads they compare were announced where they were made.
    #[inline]
    #[track_caller]
    pub fn recheck(&self, name: &'static str, ok: bool) -> bool {
        let Some(mu) = self.m.mutation.as_deref() else {
            return ok;
        };
        let stack = self.stack();
        let func = stack.last().copied().unwrap_or("(user)");
        mu.hit(SiteKind::Recheck, func, name, &stack, Location::caller()) || ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_keys_parse_and_print() {
        let k: SiteKey = "move_ptes:&anon_vma->rwsem".parse().unwrap();
        assert_eq!(k, SiteKey::new("move_ptes", "&anon_vma->rwsem"));
        assert_eq!(k.to_string(), "move_ptes:&anon_vma->rwsem");
        assert!("move_ptes".parse::<SiteKey>().is_err());
        assert!(":ptl".parse::<SiteKey>().is_err());
        assert!("move ptes:ptl".parse::<SiteKey>().is_err());
        assert!("move_ptes: ".parse::<SiteKey>().is_err());
    }

    fn mutant(target: &str) -> std::sync::Arc<Mutation> {
        std::sync::Arc::new(Mutation::new(
            Some(target.parse().unwrap()),
            true,
            &["helper"],
        ))
    }

    #[test]
    fn a_skipped_spinlock_is_neither_taken_nor_released() {
        let mut m = crate::spinlock::tests::seq_machine(2, 8);
        let mu = mutant("move_ptes:&mm->page_table_lock");
        m.set_mutation(Some(mu.clone()));
        let l = crate::SpinLock::new(m.new_lock_id("&mm->page_table_lock"));
        let c0 = m.cpu(0);
        {
            let _f = c0.enter("move_ptes");
            let _h = c0.enter("helper"); // a locking helper: the site is its caller's
            let g = l.lock(c0);
            assert!(!l.is_locked(), "the mutant does not take it");
            // Another CPU can take it meanwhile: the exclusion is gone.
            drop(l.lock(m.cpu(1)));
            drop(g);
            assert!(!l.is_locked());
            assert!(
                m.cpus[0].skipped.lock().is_empty(),
                "the release was matched"
            );
        }
        {
            let _f = c0.enter("zap_pte_range"); // another caller: taken as usual
            let _g = l.lock(c0);
            assert_eq!(l.owner(), Some(0));
        }
        assert_eq!(mu.skipped(), 1);
        let sites = mu.sites();
        let names: Vec<String> = sites.keys().map(|k| k.to_string()).collect();
        assert_eq!(
            names,
            [
                "(user):&mm->page_table_lock", // CPU1, outside any kernel function
                "move_ptes:&mm->page_table_lock",
                "zap_pte_range:&mm->page_table_lock"
            ]
        );
        let k: SiteKey = "move_ptes:&mm->page_table_lock".parse().unwrap();
        assert_eq!(sites[&k].stack, ["move_ptes", "helper"]);
    }

    #[test]
    fn a_skipped_folio_lock_is_held_as_far_as_its_cpu_knows() {
        let mut m = crate::spinlock::tests::seq_machine(2, 8);
        m.set_mutation(Some(mutant("migrate_pages:folio_lock")));
        let c0 = m.cpu(0);
        let _f = c0.enter("migrate_pages");
        c0.folio_lock_raw(3);
        assert!(c0.folio_test_locked_in_step(3), "its own holds pass");
        assert!(
            !m.cpu(1).folio_test_locked_in_step(3),
            "others see it unlocked"
        );
        assert!(
            c0.folio_unlock_raw(3),
            "the unlock matches the skipped lock"
        );
        assert!(!c0.folio_test_locked_in_step(3));
    }

    #[test]
    fn a_skipped_recheck_passes() {
        let mut m = crate::spinlock::tests::seq_machine(1, 8);
        m.set_mutation(Some(mutant("handle_pte_fault:pte_same")));
        let c0 = m.cpu(0);
        let _f = c0.enter("handle_pte_fault");
        assert!(c0.recheck("pte_same", false), "the mutant's recheck passes");
        assert!(!c0.recheck("pmd_same", false), "other rechecks still check");
    }
}
