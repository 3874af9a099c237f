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
use crate::mutate::RCU_KEY;
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
    /// Which `call_rcu` queued it (the count of earlier ones): names it in footprints.
    seq: u32,
    snap: Vec<u64>,
    work: RcuWork,
}

/// Pending callbacks, in registration order.
#[derive(Default)]
pub struct RcuState {
    pending: Mutex<Vec<Pending>>,
    /// `pending.len()`, readable without the lock (the explorer asks every step).
    count: std::sync::atomic::AtomicUsize,
    /// Callbacks ever queued: the next `call_rcu`'s [`Pending::seq`].
    queued: std::sync::atomic::AtomicU32,
}

impl crate::Machine {
    /// What a callback step reads, as the explorer's dependency relation sees it: the CPUs whose
    /// reader boundaries can change which callback the step runs, and the callback it runs if
    /// one is ready (by the `call_rcu` that queued it, which it stays ordered after).
    ///
    /// The step runs the first callback in queue order whose grace period has ended. Readiness
    /// only grows (a CPU that left the section a callback waits for has passed its quiescent
    /// state for good: its counter only grows), so the step's choice can change only when a
    /// callback queued ahead of the first ready one becomes ready: by a boundary of a CPU still
    /// inside the section such a callback waits for (snapshot odd, counter unchanged). Those CPUs
    /// are the mask (every pending callback's when none is ready). Any other `call_rcu` appends
    /// behind the first ready callback, so it changes the step only when none is ready.
    ///
    /// The mask grows only with `call_rcu` while no callback is ready and shrinks with a
    /// callback's removal or a boundary of a CPU in it, all dependent with the step, so the
    /// footprint is stable wherever the search reorders the step.
    pub fn rcu_callback_footprint(&self) -> (u16, Option<u32>) {
        let mut w = 0;
        for p in self.rcu.pending.lock().iter() {
            let mut waits = 0;
            for ((c, &s), cpu) in p.snap.iter().enumerate().zip(self.cpus.iter()) {
                if s & 1 == 1 && cpu.rcu_ctr.load(Ordering::SeqCst) == s {
                    waits |= reader_bit(c);
                }
            }
            if waits == 0 {
                return (w, Some(p.seq));
            }
            w |= waits;
        }
        (w, None)
    }

    /// The [`Pending::seq`] the next `call_rcu` gives its callback: names that `call_rcu` in its
    /// footprint. Only `call_rcu`s change it, and they are dependent with each other.
    pub fn rcu_next_seq(&self) -> u32 {
        self.rcu.queued.load(Ordering::SeqCst)
    }
}

/// CPU `c`'s bit in [`Obj::RcuReaders`] (CPUs from 15 on share the last one).
fn reader_bit(c: usize) -> u16 {
    1 << c.min(15)
}

/// An RCU read-side critical section; dropping it is `rcu_read_unlock`.
#[must_use = "dropping the guard is rcu_read_unlock"]
pub struct RcuGuard<'m> {
    cpu: Cpu<'m>,
}

impl Drop for RcuGuard<'_> {
    fn drop(&mut self) {
        if self.cpu.skip_release(RCU_KEY) {
            return;
        }
        self.cpu.visible(self.cpu.rcu_readers(), Access::RcuUnlock);
        self.cpu.rcu_exit();
    }
}

fn gp_done(snap: &[u64], cpu: &Cpu<'_>) -> bool {
    snap.iter()
        .zip(cpu.m.cpus.iter())
        .all(|(&s, c)| s & 1 == 0 || c.rcu_ctr.load(Ordering::SeqCst) != s)
}

impl<'m> Cpu<'m> {
    /// This CPU's reader counter, as an object.
    fn rcu_readers(&self) -> Obj {
        Obj::RcuReaders(reader_bit(self.id))
    }

    pub(crate) fn rcu_enter(&self) {
        self.touch(self.rcu_readers());
        let st = self.state();
        if st.rcu_depth.fetch_add(1, Ordering::SeqCst) == 0 {
            st.rcu_ctr.fetch_add(1, Ordering::SeqCst);
        }
    }

    pub(crate) fn rcu_exit(&self) {
        self.touch(self.rcu_readers());
        let st = self.state();
        if st.rcu_depth.fetch_sub(1, Ordering::SeqCst) == 1 {
            st.rcu_ctr.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// `rcu_read_lock`.
    #[track_caller]
    pub fn rcu_read_lock(&self) -> RcuGuard<'m> {
        if self.lock_site("rcu_read_lock", RCU_KEY) {
            return RcuGuard { cpu: *self };
        }
        self.visible(self.rcu_readers(), Access::RcuLock);
        self.rcu_enter();
        RcuGuard { cpu: *self }
    }

    /// True inside a read-side section (including IRQ-off).
    pub fn in_rcu_reader(&self) -> bool {
        self.state().rcu_depth.load(Ordering::SeqCst) != 0
    }

    /// Every CPU's reader counter; called in a step announced on [`Obj::Rcu`] by a grace-period
    /// event, which the dependency relation orders against every reader boundary.
    fn rcu_snapshot(&self) -> Vec<u64> {
        self.touch(Obj::Rcu);
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
        // The grace period starts in this step (which sees who is a reader now) and ends in a
        // later one.
        self.visible(Obj::Rcu, Access::GracePeriod);
        let snap = self.rcu_snapshot();
        if gp_done(&snap, self) {
            return;
        }
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
        let mut q = self.m.rcu.pending.lock();
        let seq = self.m.rcu.queued.fetch_add(1, Ordering::SeqCst);
        q.push(Pending { seq, snap, work });
        self.m.rcu.count.store(q.len(), Ordering::SeqCst);
    }

    /// True if some callback's grace period has ended (the explore RCU thread is enabled).
    pub fn rcu_callback_ready(&self) -> bool {
        if self.m.rcu.count.load(Ordering::SeqCst) == 0 {
            return false; // nothing queued (the common case, asked every step)
        }
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
        self.visible(Obj::Rcu, Access::RcuCallback);
        self.rcu_run_ready()
    }

    /// The RCU callback thread (`rcu_do_batch`): wait until a callback's grace period has
    /// ended, then run the first such callback in that same step (the wait announced it).
    /// Returns false if the backend is tearing the execution down instead.
    pub fn rcu_callback_thread_step(&self) -> bool {
        self.block(Obj::Rcu, Access::RcuCallback, &|| self.rcu_callback_ready());
        if self.m.backend().stopping() {
            return false;
        }
        self.rcu_run_ready();
        true
    }

    /// [`Cpu::rcu_run_one`] in a step that already announced `RcuCallback`.
    fn rcu_run_ready(&self) -> bool {
        let work = {
            let mut q = self.m.rcu.pending.lock();
            match q.iter().position(|p| gp_done(&p.snap, self)) {
                Some(i) => {
                    let w = q.remove(i).work;
                    self.m.rcu.count.store(q.len(), Ordering::SeqCst);
                    w
                }
                None => return false,
            }
        };
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

impl Pending {
    fn copy(&self) -> Pending {
        Pending {
            seq: self.seq,
            snap: self.snap.clone(),
            work: self.work.clone(),
        }
    }
}

impl RcuState {
    /// Make this state what `t` is, keeping the queue's allocation (see
    /// [`crate::Machine::reset_from`]).
    pub(crate) fn reset_from(&mut self, t: &RcuState) {
        let RcuState {
            pending,
            count,
            queued,
        } = self;
        let q = pending.get_mut();
        q.clear();
        q.extend(t.pending.lock().iter().map(Pending::copy));
        *count.get_mut() = t.count.load(Ordering::SeqCst);
        *queued.get_mut() = t.queued.load(Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Access;
    use crate::frames::FrameKind;
    use crate::spinlock::tests::{
        expect_done, expect_waiting, kinds, probe_machine, seq_machine, Note,
    };
    use crate::violation::ViolationKind;
    use crate::Machine;

    fn free_work(m: &Machine, n: usize) -> (Vec<FrameRef>, RcuWork) {
        let cpu = m.cpu(0);
        let frames: Vec<FrameRef> = (0..n)
            .map(|_| m.frames.alloc(&cpu, 0, FrameKind::Table(1)).unwrap())
            .collect();
        let work = RcuWork::FreeFrames {
            frames: frames.iter().map(|&f| (f, 0)).collect(),
            reason: "test_rcu_free",
        };
        (frames, work)
    }

    #[test]
    fn synchronize_rcu_without_readers_returns() {
        let m = seq_machine(2, 4);
        m.cpu(0).synchronize_rcu();
        // A reader on the calling CPU's sibling that starts later does not matter either.
        let g = m.cpu(1).rcu_read_lock();
        assert!(m.cpu(1).in_rcu_reader());
        drop(g);
        m.cpu(0).synchronize_rcu();
        assert!(kinds(&m).is_empty());
    }

    #[test]
    fn synchronize_rcu_waits_for_a_preexisting_reader() {
        let (m, tx, rx) = probe_machine(2, 4);
        let g = m.cpu(1).rcu_read_lock(); // this thread is CPU1
        std::thread::scope(|s| {
            let m = &m;
            s.spawn(move || {
                m.cpu(0).synchronize_rcu();
                tx.send(Note::Done(0, "gp")).unwrap();
            });
            let ev = expect_waiting(&rx, 0, Access::GracePeriod);
            assert_eq!(ev.obj, Obj::Rcu);
            drop(g);
            expect_done(&rx, 0, "gp");
        });
        assert!(!m.violated());
    }

    #[test]
    fn synchronize_rcu_inside_a_reader_is_reported() {
        let m = seq_machine(1, 4);
        let g = m.cpu(0).rcu_read_lock();
        m.cpu(0).synchronize_rcu();
        assert_eq!(kinds(&m), vec![ViolationKind::Assertion]);
        drop(g);
    }

    #[test]
    fn call_rcu_waits_for_a_preexisting_reader_on_another_cpu() {
        let m = seq_machine(2, 8);
        let (c0, c1) = (m.cpu(0), m.cpu(1));
        let (frames, work) = free_work(&m, 2);
        let g = c1.rcu_read_lock();
        c0.call_rcu(work);
        assert_eq!(c0.rcu_pending(), 1);
        assert!(!c0.rcu_callback_ready());
        assert_eq!(c0.rcu_poll(), 0);
        assert!(!c0.rcu_run_one());
        for f in &frames {
            assert_eq!(
                m.frames.kind(f.pfn),
                FrameKind::Table(1),
                "freed under a reader"
            );
        }
        drop(g);
        assert!(c0.rcu_callback_ready());
        assert_eq!(c0.rcu_poll(), 1);
        assert_eq!(c0.rcu_pending(), 0);
        for f in &frames {
            assert_eq!(m.frames.kind(f.pfn), FrameKind::Free);
            assert!(!m.frames.is_live(*f));
        }
        // The free is attributed to the callback's reason.
        assert!(!m.frames.check(&c1, frames[0], "probe"));
        let v = m.violations();
        assert_eq!(v.len(), 1);
        assert!(v[0].msg.contains("test_rcu_free"), "{}", v[0].msg);
    }

    #[test]
    fn readers_that_start_after_call_rcu_do_not_delay_it() {
        let m = seq_machine(2, 8);
        let (c0, c1) = (m.cpu(0), m.cpu(1));
        let (frames, work) = free_work(&m, 1);
        c0.call_rcu(work);
        let g = c1.rcu_read_lock();
        assert!(c0.rcu_callback_ready());
        assert_eq!(c1.rcu_poll(), 1);
        assert_eq!(m.frames.kind(frames[0].pfn), FrameKind::Free);
        drop(g);
    }

    #[test]
    fn a_reader_that_left_and_reentered_has_passed_a_quiescent_state() {
        let m = seq_machine(2, 8);
        let (c0, c1) = (m.cpu(0), m.cpu(1));
        let (_frames, work) = free_work(&m, 1);
        let g = c1.rcu_read_lock();
        c0.call_rcu(work);
        drop(g);
        let g = c1.rcu_read_lock();
        assert!(c0.rcu_callback_ready());
        assert_eq!(c0.rcu_poll(), 1);
        drop(g);
    }

    #[test]
    fn nested_readers_end_at_the_outermost_unlock() {
        let m = seq_machine(2, 8);
        let (c0, c1) = (m.cpu(0), m.cpu(1));
        let (_frames, work) = free_work(&m, 1);
        let outer = c1.rcu_read_lock();
        let inner = c1.rcu_read_lock();
        c0.call_rcu(work);
        drop(inner);
        assert!(c1.in_rcu_reader());
        assert!(!c0.rcu_callback_ready());
        drop(outer);
        assert!(!c1.in_rcu_reader());
        assert!(c0.rcu_callback_ready());
        assert_eq!(c0.rcu_poll(), 1);
    }

    #[test]
    fn a_reader_on_the_calling_cpu_delays_its_own_callback() {
        let m = seq_machine(1, 8);
        let c0 = m.cpu(0);
        let (_frames, work) = free_work(&m, 1);
        let g = c0.rcu_read_lock();
        c0.call_rcu(work);
        assert!(!c0.rcu_callback_ready());
        drop(g);
        assert_eq!(c0.rcu_poll(), 1);
    }

    #[test]
    fn irq_off_counts_as_an_rcu_reader() {
        let m = seq_machine(2, 8);
        let (c0, c1) = (m.cpu(0), m.cpu(1));
        let (frames, work) = free_work(&m, 1);
        let irq = c1.local_irq_disable();
        assert!(c1.in_rcu_reader());
        assert!(c1.irqs_disabled());
        c0.call_rcu(work);
        assert!(!c0.rcu_callback_ready());
        assert_eq!(c0.rcu_poll(), 0);
        assert_eq!(m.frames.kind(frames[0].pfn), FrameKind::Table(1));
        drop(irq);
        assert!(!c1.in_rcu_reader() && !c1.irqs_disabled());
        assert_eq!(c0.rcu_poll(), 1);
        assert_eq!(m.frames.kind(frames[0].pfn), FrameKind::Free);
    }

    #[test]
    fn a_hardware_walk_is_not_an_rcu_reader() {
        let m = seq_machine(2, 8);
        let (c0, c1) = (m.cpu(0), m.cpu(1));
        let (_frames, work) = free_work(&m, 1);
        let hw = c1.hw_walk_begin();
        assert!(c1.irqs_disabled());
        assert!(!c1.in_rcu_reader());
        c0.call_rcu(work);
        assert!(c0.rcu_callback_ready());
        assert_eq!(c0.rcu_poll(), 1);
        drop(hw);
    }

    #[test]
    fn rcu_barrier_runs_every_callback() {
        let m = seq_machine(2, 16);
        let c0 = m.cpu(0);
        let mut all = Vec::new();
        for _ in 0..3 {
            let (frames, work) = free_work(&m, 2);
            all.extend(frames);
            c0.call_rcu(work);
        }
        assert_eq!(c0.rcu_pending(), 3);
        c0.rcu_barrier();
        assert_eq!(c0.rcu_pending(), 0);
        assert!(all.iter().all(|f| m.frames.kind(f.pfn) == FrameKind::Free));
        assert_eq!(m.frames.nr_used(), 0);
        c0.rcu_barrier(); // nothing pending: returns at once
        assert!(kinds(&m).is_empty());
    }

    #[test]
    fn rcu_barrier_waits_for_a_preexisting_reader() {
        let (m, tx, rx) = probe_machine(2, 8);
        let (frames, work) = free_work(&m, 1);
        let g = m.cpu(1).rcu_read_lock();
        m.cpu(1).call_rcu(work);
        std::thread::scope(|s| {
            let m = &m;
            s.spawn(move || {
                m.cpu(0).rcu_barrier();
                tx.send(Note::Done(0, "barrier")).unwrap();
            });
            expect_waiting(&rx, 0, Access::GracePeriod);
            assert_eq!(m.frames.kind(frames[0].pfn), FrameKind::Table(1));
            drop(g);
            expect_done(&rx, 0, "barrier");
        });
        assert_eq!(m.cpu(0).rcu_pending(), 0);
        assert_eq!(m.frames.kind(frames[0].pfn), FrameKind::Free);
    }
}
