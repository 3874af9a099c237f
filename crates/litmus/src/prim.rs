//! The kernel primitives a litmus body may call, and the events each stands for, after
//! tools/memory-model/linux-kernel.def and Documentation/herd-representation.txt (Linux v6.x):
//! a fully ordered RMW (`xchg`, `cmpxchg` on success, `atomic_*_return`, `atomic_fetch_*`) is
//! `F[mb]; R*; W*; F[mb]`, a non-returning one (`atomic_inc`, `atomic_add`) has a `noreturn`
//! read, `spin_lock` is a lock-read/lock-write pair, `spin_unlock` an unlock write.

/// A fence event's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fence {
    Mb,
    Rmb,
    Wmb,
    BeforeAtomic,
    AfterAtomic,
    AfterSpinlock,
    AfterUnlockLock,
    RcuLock,
    RcuUnlock,
    SyncRcu,
}

/// The ordering annotation of an access or RMW.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ord {
    /// `_relaxed`, `READ_ONCE`, `WRITE_ONCE`.
    Once,
    Acquire,
    Release,
    /// Fully ordered: fences on both sides.
    Mb,
}

/// What an atomic arithmetic RMW returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ret {
    /// Nothing (`atomic_inc`): its read is `noreturn`.
    Void,
    /// The new value (`atomic_add_return`).
    New,
    /// The old value (`atomic_fetch_add`).
    Old,
    /// Whether the new value is zero (`atomic_dec_and_test`).
    IsZero,
    /// Whether the new value is negative (`atomic_add_negative`).
    IsNeg,
}

/// A primitive and how its arguments are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prim {
    /// `READ_ONCE(*p)` (`deref`: the argument is the location itself), `smp_load_acquire(p)`.
    Load {
        ord: Ord,
        deref: bool,
    },
    /// `WRITE_ONCE(*p, v)`, `smp_store_release(p, v)`, `rcu_assign_pointer(*p, v)`.
    Store {
        ord: Ord,
        deref: bool,
        mb_after: bool,
    },
    Fence(Fence),
    /// `xchg(p, v)`: returns the old value.
    Xchg(Ord),
    /// `cmpxchg(p, old, new)`: returns the old value; writes only on success.
    Cmpxchg(Ord),
    /// `atomic_add(v, p)` and friends: `delta` is the constant step (`inc`/`dec`) or `None`
    /// when the first argument gives it; `neg` subtracts.
    Atomic {
        ord: Ord,
        ret: Ret,
        delta: Option<i64>,
        neg: bool,
    },
    /// `atomic_add_unless(p, a, u)`: adds `a` unless the value is `u`; returns whether it did.
    AddUnless,
    SpinLock,
    SpinUnlock,
    /// `spin_trylock(p)`: 1 and a lock-read/lock-write pair on success, 0 and a lock-fail read.
    SpinTrylock,
    /// `spin_is_locked(p)`: a read of the lock with no ordering, 1 (read-locked, which lock.cat
    /// treats as a lock-fail) or 0 (read-unlocked: it reads an unlock or the initial value).
    SpinIsLocked,
}

impl Prim {
    /// The number of arguments.
    pub fn arity(self) -> usize {
        match self {
            Prim::Load { .. } => 1,
            Prim::Store { .. } => 2,
            Prim::Fence(_) => 0,
            Prim::Xchg(_) => 2,
            Prim::Cmpxchg(_) => 3,
            Prim::Atomic { delta, .. } => {
                if delta.is_some() {
                    1
                } else {
                    2
                }
            }
            Prim::AddUnless => 3,
            Prim::SpinLock | Prim::SpinUnlock | Prim::SpinTrylock | Prim::SpinIsLocked => 1,
        }
    }

    /// Whether the call yields a value.
    pub fn returns(self) -> bool {
        match self {
            Prim::Load { .. } | Prim::Xchg(_) | Prim::Cmpxchg(_) | Prim::AddUnless => true,
            Prim::SpinTrylock | Prim::SpinIsLocked => true,
            Prim::Atomic { ret, .. } => ret != Ret::Void,
            _ => false,
        }
    }
}

fn split_ord(name: &str) -> (&str, Option<Ord>) {
    for (suffix, ord) in [
        ("_relaxed", Ord::Once),
        ("_acquire", Ord::Acquire),
        ("_release", Ord::Release),
    ] {
        if let Some(base) = name.strip_suffix(suffix) {
            return (base, Some(ord));
        }
    }
    (name, None)
}

/// The primitive called `name`, if this front end knows it.
pub fn lookup(name: &str) -> Option<Prim> {
    let fixed = match name {
        "READ_ONCE" | "rcu_dereference" => Some(Prim::Load {
            ord: Ord::Once,
            deref: true,
        }),
        "atomic_read" => Some(Prim::Load {
            ord: Ord::Once,
            deref: false,
        }),
        "smp_load_acquire" | "atomic_read_acquire" => Some(Prim::Load {
            ord: Ord::Acquire,
            deref: false,
        }),
        "WRITE_ONCE" => Some(Prim::Store {
            ord: Ord::Once,
            deref: true,
            mb_after: false,
        }),
        "smp_store_mb" => Some(Prim::Store {
            ord: Ord::Once,
            deref: true,
            mb_after: true,
        }),
        "atomic_set" => Some(Prim::Store {
            ord: Ord::Once,
            deref: false,
            mb_after: false,
        }),
        "rcu_assign_pointer" => Some(Prim::Store {
            ord: Ord::Release,
            deref: true,
            mb_after: false,
        }),
        "smp_store_release" | "atomic_set_release" => Some(Prim::Store {
            ord: Ord::Release,
            deref: false,
            mb_after: false,
        }),
        "smp_mb" => Some(Prim::Fence(Fence::Mb)),
        "smp_rmb" => Some(Prim::Fence(Fence::Rmb)),
        "smp_wmb" => Some(Prim::Fence(Fence::Wmb)),
        "smp_mb__before_atomic" => Some(Prim::Fence(Fence::BeforeAtomic)),
        "smp_mb__after_atomic" => Some(Prim::Fence(Fence::AfterAtomic)),
        "smp_mb__after_spinlock" => Some(Prim::Fence(Fence::AfterSpinlock)),
        "smp_mb__after_unlock_lock" => Some(Prim::Fence(Fence::AfterUnlockLock)),
        "rcu_read_lock" => Some(Prim::Fence(Fence::RcuLock)),
        "rcu_read_unlock" => Some(Prim::Fence(Fence::RcuUnlock)),
        "synchronize_rcu" | "synchronize_rcu_expedited" => Some(Prim::Fence(Fence::SyncRcu)),
        "spin_lock" => Some(Prim::SpinLock),
        "spin_unlock" => Some(Prim::SpinUnlock),
        "spin_trylock" => Some(Prim::SpinTrylock),
        "spin_is_locked" => Some(Prim::SpinIsLocked),
        "atomic_add_unless" => Some(Prim::AddUnless),
        "atomic_inc_and_test" => Some(Prim::Atomic {
            ord: Ord::Mb,
            ret: Ret::IsZero,
            delta: Some(1),
            neg: false,
        }),
        "atomic_dec_and_test" => Some(Prim::Atomic {
            ord: Ord::Mb,
            ret: Ret::IsZero,
            delta: Some(1),
            neg: true,
        }),
        "atomic_sub_and_test" => Some(Prim::Atomic {
            ord: Ord::Mb,
            ret: Ret::IsZero,
            delta: None,
            neg: true,
        }),
        "atomic_add_negative" => Some(Prim::Atomic {
            ord: Ord::Mb,
            ret: Ret::IsNeg,
            delta: None,
            neg: false,
        }),
        _ => None,
    };
    if fixed.is_some() {
        return fixed;
    }
    let (base, ord) = split_ord(name);
    let full = ord.unwrap_or(Ord::Mb);
    match base {
        "xchg" | "atomic_xchg" => return Some(Prim::Xchg(full)),
        "cmpxchg" | "atomic_cmpxchg" => return Some(Prim::Cmpxchg(full)),
        _ => {}
    }
    let rest = base.strip_prefix("atomic_")?;
    let (fetch, rest) = match rest.strip_prefix("fetch_") {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let (op, ret) = match rest.strip_suffix("_return") {
        Some(op) if !fetch => (op, Ret::New),
        Some(_) => return None,
        None if fetch => (rest, Ret::Old),
        None => (rest, Ret::Void),
    };
    if ret == Ret::Void && ord.is_some() {
        return None;
    }
    let (delta, neg) = match op {
        "add" => (None, false),
        "sub" => (None, true),
        "inc" => (Some(1), false),
        "dec" => (Some(1), true),
        _ => return None,
    };
    let ord = if ret == Ret::Void { Ord::Once } else { full };
    Some(Prim::Atomic {
        ord,
        ret,
        delta,
        neg,
    })
}
