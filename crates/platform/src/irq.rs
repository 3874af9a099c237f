//! IRQ-off regions and IPI broadcasts (`local_irq_save`/`restore`; `smp_call_function` as used by
//! `tlb_remove_table_sync_one` in `mm/mmu_gather.c`). An IPI broadcast completes only once every
//! other CPU has been outside IRQ-off since the broadcast began. IRQ-off is also an RCU read-side
//! section.

use crate::event::{Access, Obj};
use crate::machine::Cpu;
use std::sync::atomic::Ordering;

/// An IRQ-off region; dropping it is `local_irq_restore`.
#[must_use = "dropping the guard re-enables IRQs"]
pub struct IrqGuard<'m> {
    cpu: Cpu<'m>,
    rcu: bool,
}

impl Drop for IrqGuard<'_> {
    fn drop(&mut self) {
        self.cpu
            .visible(Obj::Irq(self.cpu.id as u16), Access::IrqEnable);
        let st = self.cpu.state();
        if st.irq_depth.fetch_sub(1, Ordering::SeqCst) == 1 {
            st.irq_ctr.fetch_add(1, Ordering::SeqCst);
        }
        if self.rcu {
            self.cpu.rcu_exit();
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
    fn irq_off(&self, rcu: bool) -> IrqGuard<'m> {
        self.visible(Obj::Irq(self.id as u16), Access::IrqDisable);
        let st = self.state();
        if st.irq_depth.fetch_add(1, Ordering::SeqCst) == 0 {
            st.irq_ctr.fetch_add(1, Ordering::SeqCst);
        }
        if rcu {
            self.rcu_enter();
        }
        IrqGuard { cpu: *self, rcu }
    }

    /// `local_irq_save`: IPIs to this CPU wait, and RCU grace periods wait.
    pub fn local_irq_disable(&self) -> IrqGuard<'m> {
        self.irq_off(true)
    }

    /// A hardware page walk: a TLB-flush IPI cannot land in the middle of one (interrupts are taken
    /// at instruction boundaries), but it is not an RCU reader.
    pub fn hw_walk_begin(&self) -> IrqGuard<'m> {
        self.irq_off(false)
    }

    pub fn irqs_disabled(&self) -> bool {
        self.state().irq_depth.load(Ordering::SeqCst) != 0
    }

    pub(crate) fn irq_snapshot(&self) -> Vec<u64> {
        self.m
            .cpus
            .iter()
            .map(|c| c.irq_ctr.load(Ordering::SeqCst))
            .collect()
    }

    /// `tlb_remove_table_sync_one`: IPI every other CPU and wait until each has taken it, i.e. has
    /// left any IRQ-off region it was in. Not a grace period; frees nothing.
    pub fn tlb_remove_table_sync_one(&self) {
        let _f = self.enter("tlb_remove_table_sync_one");
        self.ipi_sync_all();
    }

    /// The IPI broadcast itself.
    pub fn ipi_sync_all(&self) {
        if self.warn_on(self.irqs_disabled(), "smp_call_function with IRQs disabled") {
            return;
        }
        let snap = self.irq_snapshot();
        self.wait_for(
            Obj::Irq(self.id as u16),
            Access::IpiSync,
            &|| ipi_done(&snap, self),
            &mut || ipi_done(&snap, self),
        );
    }
}
