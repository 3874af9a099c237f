//! RCU with real grace periods (`kernel/rcu/tree.c`, as the protocol sees it): read-side sections
//! (`rcu_read_lock`, and IRQ-off regions, which count as read sections since the flavour
//! consolidation in 4.20), `synchronize_rcu`, and `call_rcu` callbacks that run only after every
//! reader that was active at registration has left.
//!
//! Each CPU has a counter that is odd inside a read section. A grace period snapshots the counters
//! and ends when every CPU that was odd has moved on. Callbacks are the frees the model defers
//! ([`RcuWork`]); the native backend runs them from [`Cpu::rcu_poll`] at operation boundaries and
//! from [`Cpu::rcu_barrier`]; the explore backend runs them on an RCU thread whose timing it
//! explores.

use crate::event::{Access, Obj};
use crate::frames::FrameRef;
use crate::machine::Cpu;
use parking_lot::Mutex;
use std::sync::atomic::Ordering;

/// What an RCU callback does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RcuWork {
    /// Free frames (tables from `tlb_remove_table`/`pte_free_defer`): `(head, order)`.
    FreeFrames {
        frames: Vec<(FrameRef, u32)>,
        reason: &'static str,
    },
}

struct Pending {
    snap: Vec<u64>,
    work: RcuWork,
}

/// Pending callbacks, in registration order.
#[derive(Default)]
pub struct RcuState {
    pending: Mutex<Vec<Pending>>,
}

/// An RCU read-side critical section; dropping it is `rcu_read_unlock`.
#[must_use = "dropping the guard is rcu_read_unlock"]
pub struct RcuGuard<'m> {
    cpu: Cpu<'m>,
}

impl Drop for RcuGuard<'_> {
    fn drop(&mut self) {
        self.cpu.visible(Obj::Rcu, Access::RcuUnlock);
        self.cpu.rcu_exit();
    }
}

fn gp_done(snap: &[u64], cpu: &Cpu<'_>) -> bool {
    snap.iter()
        .zip(cpu.m.cpus.iter())
        .all(|(&s, c)| s & 1 == 0 || c.rcu_ctr.load(Ordering::SeqCst) != s)
}

impl<'m> Cpu<'m> {
    pub(crate) fn rcu_enter(&self) {
        let st = self.state();
        if st.rcu_depth.fetch_add(1, Ordering::SeqCst) == 0 {
            st.rcu_ctr.fetch_add(1, Ordering::SeqCst);
        }
    }

    pub(crate) fn rcu_exit(&self) {
        let st = self.state();
        if st.rcu_depth.fetch_sub(1, Ordering::SeqCst) == 1 {
            st.rcu_ctr.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// `rcu_read_lock`.
    pub fn rcu_read_lock(&self) -> RcuGuard<'m> {
        self.visible(Obj::Rcu, Access::RcuLock);
        self.rcu_enter();
        RcuGuard { cpu: *self }
    }

    /// True inside a read-side section (including IRQ-off).
    pub fn in_rcu_reader(&self) -> bool {
        self.state().rcu_depth.load(Ordering::SeqCst) != 0
    }

    fn rcu_snapshot(&self) -> Vec<u64> {
        self.m
            .cpus
            .iter()
            .map(|c| c.rcu_ctr.load(Ordering::SeqCst))
            .collect()
    }

    /// `synchronize_rcu`: wait for every pre-existing reader.
    pub fn synchronize_rcu(&self) {
        let _f = self.enter("synchronize_rcu");
        if self.warn_on(
            self.in_rcu_reader(),
            "synchronize_rcu inside an RCU read-side section",
        ) {
            return;
        }
        let snap = self.rcu_snapshot();
        self.wait_for(
            Obj::Rcu,
            Access::GracePeriod,
            &|| gp_done(&snap, self),
            &mut || gp_done(&snap, self),
        );
    }

    /// `call_rcu`: run `work` after a grace period.
    pub fn call_rcu(&self, work: RcuWork) {
        self.visible(Obj::Rcu, Access::CallRcu);
        let snap = self.rcu_snapshot();
        self.m.rcu.pending.lock().push(Pending { snap, work });
    }

    /// True if some callback's grace period has ended (the explore RCU thread is enabled).
    pub fn rcu_callback_ready(&self) -> bool {
        self.m
            .rcu
            .pending
            .lock()
            .iter()
            .any(|p| gp_done(&p.snap, self))
    }

    /// Number of callbacks not yet run.
    pub fn rcu_pending(&self) -> usize {
        self.m.rcu.pending.lock().len()
    }

    /// Run the first callback whose grace period has ended; false if none is ready.
    pub fn rcu_run_one(&self) -> bool {
        let work = {
            let mut q = self.m.rcu.pending.lock();
            match q.iter().position(|p| gp_done(&p.snap, self)) {
                Some(i) => q.remove(i).work,
                None => return false,
            }
        };
        self.visible(Obj::Rcu, Access::RcuCallback);
        self.rcu_invoke(work);
        true
    }

    fn rcu_invoke(&self, work: RcuWork) {
        match work {
            RcuWork::FreeFrames { frames, reason } => {
                let _f = self.enter(reason);
                for (r, order) in frames {
                    self.m.frames.free(self, r, order);
                }
            }
        }
    }

    /// Run every callback whose grace period has ended (`rcu_core` at a quiescent point).
    pub fn rcu_poll(&self) -> usize {
        let mut n = 0;
        while self.rcu_run_one() {
            n += 1;
        }
        n
    }

    /// `rcu_barrier`: wait for and run every pending callback.
    pub fn rcu_barrier(&self) {
        let _f = self.enter("rcu_barrier");
        loop {
            let snap = match self.m.rcu.pending.lock().first() {
                Some(p) => p.snap.clone(),
                None => return,
            };
            self.wait_for(
                Obj::Rcu,
                Access::GracePeriod,
                &|| gp_done(&snap, self),
                &mut || gp_done(&snap, self),
            );
            self.rcu_poll();
        }
    }
}
