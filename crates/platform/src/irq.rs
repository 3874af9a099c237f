//! IRQ-off regions and IPI broadcasts (`local_irq_save`/`restore`; `smp_call_function` as used by
//! `tlb_remove_table_sync_one` in `mm/mmu_gather.c`). An IPI broadcast completes only once every
//! other CPU has been outside IRQ-off since the broadcast began. IRQ-off is also an RCU read-side
//! section.

use crate::event::{Access, Obj};
use crate::machine::Cpu;
use crate::mutate::IRQ_KEY;
use std::sync::atomic::Ordering;

/// An IRQ-off region; dropping it is `local_irq_restore`.
#[must_use = "dropping the guard re-enables IRQs"]
pub struct IrqGuard<'m> {
    cpu: Cpu<'m>,
    rcu: bool,
    /// A hardware page walk (broadcast invalidations wait for it too).
    hw: bool,
    /// A mutant skipped the `local_irq_disable` (see [`crate::mutate`]).
    skipped: bool,
}

impl Drop for IrqGuard<'_> {
    fn drop(&mut self) {
        let cpu = self.cpu;
        if self.skipped {
            cpu.skip_release(IRQ_KEY);
            return;
        }
        cpu.visible(Obj::Irq(cpu.id as u16), Access::IrqEnable);
        let st = cpu.state();
        // LOCKING: `ipi_flush` orders this transition against a shootdown sender deciding
        // whether this CPU takes its IPI now or when it next enables IRQs (native backend).
        let mut q = st.ipi_flush.lock();
        if self.hw {
            st.hw_walk.fetch_sub(1, Ordering::SeqCst);
        }
        if st.irq_depth.fetch_sub(1, Ordering::SeqCst) == 1 {
            // IRQs are on again: pending IPIs are handled here, before anything else runs.
            if !q.is_empty() {
                cpu.touch(Obj::Tlb(cpu.id as u16));
                let mut t = st.tlb.lock();
                for (mm, start, end, tables) in q.drain(..) {
                    t.flush(mm, start, end, tables);
                }
            }
            st.irq_ctr.fetch_add(1, Ordering::SeqCst);
        }
        drop(q);
        if self.rcu {
            cpu.rcu_exit();
        }
    }
}

pub(crate) fn ipi_done(snap: &[u64], cpu: &Cpu<'_>) -> bool {
    snap.iter()
        .zip(cpu.m.cpus.iter())
        .enumerate()
        .all(|(i, (&s, c))| i == cpu.id || s & 1 == 0 || c.irq_ctr.load(Ordering::SeqCst) != s)
}

impl<'m> Cpu<'m> {
    fn irq_off(&self, rcu: bool, hw: bool) -> IrqGuard<'m> {
        self.visible(Obj::Irq(self.id as u16), Access::IrqDisable);
        let st = self.state();
        let q = st.ipi_flush.lock();
        if hw {
            st.hw_walk.fetch_add(1, Ordering::SeqCst);
        }
        if st.irq_depth.fetch_add(1, Ordering::SeqCst) == 0 {
            st.irq_ctr.fetch_add(1, Ordering::SeqCst);
        }
        drop(q);
        if rcu {
            self.rcu_enter();
        }
        IrqGuard {
            cpu: *self,
            rcu,
            hw,
            skipped: false,
        }
    }

    /// `local_irq_save`: IPIs to this CPU wait, and RCU grace periods wait.
    #[track_caller]
    pub fn local_irq_disable(&self) -> IrqGuard<'m> {
        if self.lock_site("local_irq_disable", IRQ_KEY) {
            return IrqGuard {
                cpu: *self,
                rcu: false,
                hw: false,
                skipped: true,
            };
        }
        self.irq_off(true, false)
    }

    /// A hardware page walk: a TLB-flush IPI cannot land in the middle of one (interrupts are taken
    /// at instruction boundaries), but it is not an RCU reader.
    pub fn hw_walk_begin(&self) -> IrqGuard<'m> {
        self.irq_off(false, true)
    }

    pub fn irqs_disabled(&self) -> bool {
        self.state().irq_depth.load(Ordering::SeqCst) != 0
    }

    /// Every CPU's IRQ-off counter; called in the step that sends an IPI (announced with a
    /// global event, which covers every CPU's IRQ state).
    pub(crate) fn irq_snapshot(&self) -> Vec<u64> {
        self.m
            .cpus
            .iter()
            .enumerate()
            .map(|(i, c)| {
                self.touch(Obj::Irq(i as u16));
                c.irq_ctr.load(Ordering::SeqCst)
            })
            .collect()
    }

    /// `tlb_remove_table_sync_one`: IPI every other CPU and wait until each has taken it, i.e. has
    /// left any IRQ-off region it was in. Not a grace period; frees nothing.
    pub fn tlb_remove_table_sync_one(&self) {
        let _f = self.enter("tlb_remove_table_sync_one");
        self.ipi_sync_all();
    }

    /// The IPI broadcast itself: sent in one step (which sees who is IRQ-off at that instant),
    /// waited for in the next ones.
    pub fn ipi_sync_all(&self) {
        if self.warn_on(self.irqs_disabled(), "smp_call_function with IRQs disabled") {
            return;
        }
        self.visible(Obj::Irq(self.id as u16), Access::IpiSync);
        let snap = self.irq_snapshot();
        if ipi_done(&snap, self) {
            return;
        }
        self.wait_for(
            Obj::Irq(self.id as u16),
            Access::IpiSync,
            &|| ipi_done(&snap, self),
            &mut || ipi_done(&snap, self),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spinlock::tests::{
        expect_done, expect_waiting, kinds, probe_machine, seq_machine, Note,
    };
    use crate::violation::ViolationKind;

    #[test]
    fn irq_off_nests() {
        let m = seq_machine(1, 4);
        let c = m.cpu(0);
        assert!(!c.irqs_disabled());
        let a = c.local_irq_disable();
        let b = c.local_irq_disable();
        drop(b);
        assert!(c.irqs_disabled() && c.in_rcu_reader());
        drop(a);
        assert!(!c.irqs_disabled() && !c.in_rcu_reader());
    }

    #[test]
    fn ipi_completes_only_once_the_target_left_irq_off() {
        let m = seq_machine(3, 4);
        let (c0, c1) = (m.cpu(0), m.cpu(1));
        let g = c1.local_irq_disable();
        let snap = c0.irq_snapshot();
        assert!(!ipi_done(&snap, &c0));
        drop(g);
        assert!(ipi_done(&snap, &c0));
        // Leaving and re-entering IRQ-off also takes the IPI.
        let g = c1.local_irq_disable();
        assert!(ipi_done(&snap, &c0));
        // The sender's own IRQ state never counts.
        let snap = c1.irq_snapshot();
        assert!(ipi_done(&snap, &c1));
        drop(g);
    }

    #[test]
    fn sync_one_does_not_wait_for_plain_rcu_readers() {
        // Sequential backend: a wait that cannot end would panic.
        let m = seq_machine(2, 4);
        let g = m.cpu(1).rcu_read_lock();
        m.cpu(0).tlb_remove_table_sync_one();
        drop(g);
        assert!(kinds(&m).is_empty());
    }

    #[test]
    fn sync_one_waits_while_another_cpu_is_irq_off() {
        let (m, tx, rx) = probe_machine(2, 4);
        let g = m.cpu(1).local_irq_disable(); // this thread is CPU1
        std::thread::scope(|s| {
            let m = &m;
            s.spawn(move || {
                m.cpu(0).tlb_remove_table_sync_one();
                tx.send(Note::Done(0, "sync")).unwrap();
            });
            let ev = expect_waiting(&rx, 0, Access::IpiSync);
            assert_eq!(ev.obj, Obj::Irq(0));
            drop(g);
            expect_done(&rx, 0, "sync");
        });
        assert!(!m.violated());
    }

    #[test]
    fn sync_one_waits_for_a_hardware_walk() {
        let (m, tx, rx) = probe_machine(2, 4);
        let g = m.cpu(1).hw_walk_begin();
        std::thread::scope(|s| {
            let m = &m;
            s.spawn(move || {
                m.cpu(0).tlb_remove_table_sync_one();
                tx.send(Note::Done(0, "sync")).unwrap();
            });
            expect_waiting(&rx, 0, Access::IpiSync);
            drop(g);
            expect_done(&rx, 0, "sync");
        });
    }

    #[test]
    fn ipi_with_irqs_disabled_is_reported() {
        let m = seq_machine(2, 4);
        let c0 = m.cpu(0);
        let g = c0.local_irq_disable();
        c0.tlb_remove_table_sync_one();
        drop(g);
        let v = m.violations();
        assert_eq!(kinds(&m), vec![ViolationKind::Assertion]);
        assert!(v[0].stack.contains(&"tlb_remove_table_sync_one"));
    }
}
