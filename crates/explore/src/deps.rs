//! The dependency relation over visible operations. Two events conflict when they touch the same
//! object and at least one of them modifies it, plus the families the platform's objects form:
//! - freeing a frame conflicts with every access to that frame (entries, data, `struct page`, its
//!   PTL or folio lock) and with allocations;
//! - IPI broadcasts and TLB shootdowns conflict with the IRQ state and TLB of every CPU;
//! - grace periods and RCU callbacks conflict with every RCU reader boundary (including IRQ-off).

use mmcheck_platform::{Access, Event, Obj};

#[derive(PartialEq, Eq)]
enum Class {
    Read,
    Shared,
    Write,
}

fn class(a: Access) -> Class {
    match a {
        Access::Read => Class::Read,
        Access::AcquireShared | Access::ReleaseShared | Access::RcuLock | Access::RcuUnlock => {
            Class::Shared
        }
        _ => Class::Write,
    }
}

fn is_global(e: &Event) -> bool {
    matches!(e.access, Access::IpiSync | Access::Flush | Access::TlbScan)
}

fn is_cpu_state(e: &Event) -> bool {
    matches!(e.obj, Obj::Irq(_) | Obj::Tlb(_))
}

fn is_gp(e: &Event) -> bool {
    matches!(
        e.access,
        Access::GracePeriod | Access::CallRcu | Access::RcuCallback
    )
}

fn is_reader_boundary(e: &Event) -> bool {
    matches!(
        e.access,
        Access::RcuLock | Access::RcuUnlock | Access::IrqDisable | Access::IrqEnable
    )
}

/// A cheap summary for scans: events with different keys and no special family are independent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    obj: Obj,
    special: bool,
}

impl Key {
    pub fn of(e: &Event) -> Key {
        let special = matches!(e.access, Access::FrameFree | Access::FrameAlloc)
            || is_global(e)
            || is_gp(e)
            || is_reader_boundary(e);
        Key {
            obj: e.obj,
            special,
        }
    }

    /// False only if the two events are certainly independent.
    #[inline]
    pub fn may_depend(&self, other: &Key) -> bool {
        self.special || other.special || self.obj == other.obj
    }
}

/// True if the order of `a` and `b` (by different threads) can matter.
pub fn dependent(a: &Event, b: &Event) -> bool {
    if a.access == Access::FrameFree || b.access == Access::FrameFree {
        let (f, o) = if a.access == Access::FrameFree {
            (a, b)
        } else {
            (b, a)
        };
        return matches!(o.access, Access::FrameAlloc | Access::FrameFree)
            || o.obj.frame() == f.obj.frame();
    }
    if a.access == Access::FrameAlloc || b.access == Access::FrameAlloc {
        return a.access == b.access;
    }
    if is_global(a) || is_global(b) {
        return is_cpu_state(a) && is_cpu_state(b);
    }
    if is_gp(a) || is_gp(b) {
        return (is_gp(a) && is_gp(b)) || is_reader_boundary(a) || is_reader_boundary(b);
    }
    if a.obj != b.obj {
        return false;
    }
    let (ca, cb) = (class(a.access), class(b.access));
    !(ca == Class::Read && cb == Class::Read || ca == Class::Shared && cb == Class::Shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(obj: Obj, access: Access) -> Event {
        Event::new(obj, access)
    }

    #[test]
    fn relation() {
        let e = Obj::Entry { pfn: 5, idx: 1 };
        assert!(!dependent(&ev(e, Access::Read), &ev(e, Access::Read)));
        assert!(dependent(&ev(e, Access::Read), &ev(e, Access::Write)));
        assert!(!dependent(
            &ev(e, Access::Write),
            &ev(Obj::Entry { pfn: 5, idx: 2 }, Access::Write)
        ));
        assert!(dependent(
            &ev(Obj::Frame(5), Access::FrameFree),
            &ev(e, Access::Read)
        ));
        assert!(dependent(
            &ev(Obj::Frame(5), Access::FrameFree),
            &ev(Obj::Lock(Obj::ptl_id(5)), Access::Acquire)
        ));
        assert!(!dependent(
            &ev(Obj::Frame(6), Access::FrameFree),
            &ev(e, Access::Read)
        ));
        assert!(dependent(
            &ev(Obj::Frame(6), Access::FrameFree),
            &ev(Obj::Alloc, Access::FrameAlloc)
        ));
        assert!(dependent(
            &ev(Obj::Irq(0), Access::IpiSync),
            &ev(Obj::Irq(1), Access::IrqDisable)
        ));
        assert!(dependent(
            &ev(Obj::Tlb(0), Access::Flush),
            &ev(Obj::Tlb(1), Access::Fill)
        ));
        assert!(!dependent(
            &ev(Obj::Tlb(0), Access::Fill),
            &ev(Obj::Tlb(1), Access::Fill)
        ));
        assert!(dependent(
            &ev(Obj::Rcu, Access::GracePeriod),
            &ev(Obj::Irq(1), Access::IrqEnable)
        ));
        assert!(!dependent(
            &ev(Obj::Rcu, Access::RcuLock),
            &ev(Obj::Rcu, Access::RcuUnlock)
        ));
        let l = Obj::Lock(3);
        assert!(!dependent(
            &ev(l, Access::AcquireShared),
            &ev(l, Access::ReleaseShared)
        ));
        assert!(dependent(
            &ev(l, Access::AcquireShared),
            &ev(l, Access::WriterWait)
        ));
    }
}
