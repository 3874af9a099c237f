//! The Linux-kernel memory model's axioms over one candidate execution, written from
//! tools/memory-model/linux-kernel.cat (torvalds/linux, blob eb5cc113, the version with
//! `rcu-order` and `po-unlock-lock-po`, Linux v5.16 and later), linux-kernel.bell (RCU
//! read-side critical sections) and lock.cat (spinlocks as lock-read/lock-write RMW pairs and
//! unlock writes, which [`crate::check`] places in `co`).
//!
//! Checked: `coherence` (acyclic `po-loc | com`), `atomic` (no external write between an RMW's
//! read and write), `happens-before` (acyclic `hb`), `propagation` (acyclic `pb`) and `rcu`
//! (irreflexive `rb`). Not modelled: plain accesses and the data-race axioms (every access here
//! is marked), SRCU.

use crate::exec::{Lk, Op, Val};
use crate::prim::Fence;
use crate::rel::{all, Rel, Set};

/// One event of a candidate execution.
#[derive(Clone, Debug)]
pub struct GEv {
    /// `None` for an initial write.
    pub thread: Option<usize>,
    pub op: Op,
    pub loc: usize,
    pub val: Val,
    pub acquire: bool,
    pub release: bool,
    pub noreturn: bool,
    pub rmw: bool,
    pub lk: Lk,
}

/// The parts of an execution fixed by the processes' runs (before reads-from and coherence).
#[derive(Clone, Debug)]
pub struct Skeleton {
    pub ev: Vec<GEv>,
    pub po: Rel,
    pub int: Rel,
    pub loc: Rel,
    pub rmw: Rel,
    pub addr: Rel,
    pub data: Rel,
    pub ctrl: Rel,
    /// Matched `rcu_read_lock` to `rcu_read_unlock`.
    pub rscs: Rel,
}

/// Which axiom an execution breaks, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Coherence,
    Atomic,
    HappensBefore,
    Propagation,
    Rcu,
}

impl Skeleton {
    fn n(&self) -> usize {
        self.ev.len()
    }

    fn set(&self, f: impl Fn(&GEv) -> bool) -> Set {
        self.ev
            .iter()
            .enumerate()
            .fold(0, |acc, (i, e)| if f(e) { acc | 1 << i } else { acc })
    }

    fn fence(&self, kind: Fence) -> Set {
        self.set(|e| e.op == Op::Fence(kind))
    }

    /// `fencerel(F) = po ; [F] ; po`
    fn fencerel(&self, kind: Fence) -> Rel {
        let f = self.fence(kind);
        self.po.restrict(all(self.n()), f).seq(&self.po)
    }

    /// The cheap axioms first: coherence and atomicity, from `rf` and `co` alone.
    pub fn check(&self, rf: &Rel, co: &Rel) -> Verdict {
        let n = self.n();
        let id = Rel::id(n);
        let ext = Rel::cross(n, all(n), all(n)).minus(&self.int);
        let fr = rf.inv().seq(co);
        let com = rf.union(co).union(&fr);
        let po_loc = self.po.inter(&self.loc);
        if !po_loc.union(&com).acyclic() {
            return Verdict::Coherence;
        }
        let fre = fr.inter(&ext);
        let coe = co.inter(&ext);
        if !self.rmw.inter(&fre.seq(&coe)).is_empty() {
            return Verdict::Atomic;
        }

        // Sets.
        let r = self.set(|e| e.op == Op::Read);
        let w = self.set(|e| e.op == Op::Write);
        let m = r | w;
        let marked = m;
        let acquire = self.set(|e| e.acquire);
        let release = self.set(|e| e.release);
        let rmw_set = self.set(|e| e.rmw);
        let noreturn = self.set(|e| e.noreturn);
        let r4rmb = r & !noreturn;
        let lkw = self.set(|e| e.lk == Lk::Lkw);
        let lkr = self.set(|e| e.lk == Lk::Lkr);
        let ul = self.set(|e| e.lk == Lk::Ul);
        let sync = self.fence(Fence::SyncRcu);
        let po = &self.po;
        let rfe = rf.inter(&ext);
        let rfi = rf.minus(&ext);

        // Release, acquire, and unlock-lock.
        let acq_po = po.restrict(acquire, m);
        let po_rel = po.restrict(m, release);
        let po_unlock_lock_po = po
            .restrict(all(n), ul)
            .seq(&po.union(rf).restrict(ul, lkr))
            .seq(po);

        // Fences.
        let rmb = self.fencerel(Fence::Rmb).restrict(r4rmb, r4rmb);
        let wmb = self.fencerel(Fence::Wmb).restrict(w, w);
        let po_opt = po.opt();
        let mb = self
            .fencerel(Fence::Mb)
            .restrict(m, m)
            .union(
                &self
                    .fencerel(Fence::BeforeAtomic)
                    .restrict(m, rmw_set)
                    .seq(&po_opt)
                    .restrict(all(n), m),
            )
            .union(
                &po_opt
                    .restrict(m, rmw_set)
                    .seq(&self.fencerel(Fence::AfterAtomic))
                    .restrict(all(n), m),
            )
            .union(
                &po_opt
                    .restrict(m, lkw)
                    .seq(&self.fencerel(Fence::AfterSpinlock))
                    .restrict(all(n), m),
            )
            .union(
                &po.restrict(m, ul)
                    .seq(&co.union(po).restrict(ul, lkw))
                    .seq(&self.fencerel(Fence::AfterUnlockLock))
                    .restrict(all(n), m),
            );
        let gp = po.restrict(all(n), sync).seq(&po_opt);
        let strong_fence = mb.union(&gp);
        let nonrw_fence = strong_fence.union(&po_rel).union(&acq_po);
        let fence = nonrw_fence.union(&wmb).union(&rmb);

        // Preserved program order (no plain accesses: the `addr ; [Plain] ; wmb` term is empty).
        let dep = self.addr.union(&self.data);
        let rwdep = dep.union(&self.ctrl).restrict(all(n), w);
        let overwrite = co.union(&fr);
        let to_w = rwdep.union(&overwrite.inter(&self.int));
        let to_r = self.addr.union(&dep.restrict(all(n), marked).seq(&rfi));
        let ppo = to_r
            .union(&to_w)
            .union(&fence)
            .union(&po_unlock_lock_po.inter(&self.int));

        // Propagation.
        let a_cumul = |x: &Rel| rfe.restrict(all(n), marked).opt().seq(x);
        let cumul_fence = a_cumul(&strong_fence.union(&po_rel))
            .union(&wmb)
            .union(&po_unlock_lock_po)
            .restrict(marked, marked);
        let prop = overwrite
            .inter(&ext)
            .opt()
            .restrict(marked, all(n))
            .seq(&cumul_fence.star())
            .restrict(all(n), marked)
            .seq(&rfe.opt())
            .restrict(all(n), marked);

        // Happens-before.
        let hb = ppo
            .union(&rfe)
            .union(&prop.minus(&id).inter(&self.int))
            .restrict(marked, marked);
        if !hb.acyclic() {
            return Verdict::HappensBefore;
        }
        let hb_star = hb.star();

        // Propagation before.
        let pb = prop
            .seq(&strong_fence)
            .seq(&hb_star)
            .restrict(all(n), marked);
        if !pb.acyclic() {
            return Verdict::Propagation;
        }
        let pb_star = pb.star();

        // RCU: grace periods against read-side critical sections.
        if sync != 0 {
            let rcu_gp = Rel::id_on(n, sync);
            let rscsi = self.rscs.inv();
            let link = po_opt.seq(&hb_star).seq(&pb_star).seq(&prop).seq(po);
            let gp_link = rcu_gp.seq(&link);
            let rs_link = rscsi.seq(&link);
            let mut order = rcu_gp.clone();
            loop {
                let link_order_link = link.seq(&order).seq(&link);
                let next = rcu_gp
                    .union(&gp_link.seq(&rscsi))
                    .union(&rs_link.seq(&rcu_gp))
                    .union(&rcu_gp.seq(&link_order_link).seq(&rscsi))
                    .union(&rscsi.seq(&link_order_link).seq(&rcu_gp))
                    .union(&order.seq(&link).seq(&order));
                let next = next.union(&order);
                if next == order {
                    break;
                }
                order = next;
            }
            let rcu_fence = po.seq(&order).seq(&po_opt);
            let rb = prop
                .seq(&rcu_fence)
                .seq(&hb_star)
                .seq(&pb_star)
                .restrict(all(n), marked);
            if !rb.irreflexive() {
                return Verdict::Rcu;
            }
        }
        Verdict::Allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(thread: Option<usize>, op: Op, loc: usize, val: i64) -> GEv {
        GEv {
            thread,
            op,
            loc,
            val: Val::Int(val),
            acquire: false,
            release: false,
            noreturn: false,
            rmw: false,
            lk: Lk::None,
        }
    }

    /// Message passing by hand: x, y initially 0; P0 `x=1; FENCE0; y=1`, P1 `r=y; FENCE1;
    /// r=x`; the execution where P1 reads y=1 and x=0.
    fn mp(f0: Fence, f1: Fence) -> (Skeleton, Rel, Rel) {
        let n = 8;
        let f = |t, k| ev(Some(t), Op::Fence(k), usize::MAX, 0);
        let evs = vec![
            ev(None, Op::Write, 0, 0),
            ev(None, Op::Write, 1, 0),
            ev(Some(0), Op::Write, 0, 1),
            f(0, f0),
            ev(Some(0), Op::Write, 1, 1),
            ev(Some(1), Op::Read, 1, 1),
            f(1, f1),
            ev(Some(1), Op::Read, 0, 0),
        ];
        let mut po = Rel::empty(n);
        let mut int = Rel::empty(n);
        let mut loc = Rel::empty(n);
        for i in 0..n {
            for j in 0..n {
                if evs[i].thread == evs[j].thread {
                    int.add(i, j);
                    if evs[i].thread.is_some() && i < j {
                        po.add(i, j);
                    }
                }
                let mem = |e: &GEv| !matches!(e.op, Op::Fence(_));
                if mem(&evs[i]) && mem(&evs[j]) && evs[i].loc == evs[j].loc {
                    loc.add(i, j);
                }
            }
        }
        let mut rf = Rel::empty(n);
        rf.add(4, 5);
        rf.add(0, 7);
        let mut co = Rel::empty(n);
        co.add(0, 2);
        co.add(1, 4);
        let sk = Skeleton {
            ev: evs,
            po,
            int,
            loc,
            rmw: Rel::empty(n),
            addr: Rel::empty(n),
            data: Rel::empty(n),
            ctrl: Rel::empty(n),
            rscs: Rel::empty(n),
        };
        (sk, rf, co)
    }

    #[test]
    fn mp_with_wmb_and_rmb_is_an_hb_cycle() {
        let (sk, rf, co) = mp(Fence::Wmb, Fence::Rmb);
        assert_eq!(sk.check(&rf, &co), Verdict::HappensBefore);
    }

    #[test]
    fn mp_needs_both_fences() {
        // smp_wmb() does not order reads, smp_rmb() does not order writes.
        let (sk, rf, co) = mp(Fence::Wmb, Fence::Wmb);
        assert_eq!(sk.check(&rf, &co), Verdict::Allowed);
        let (sk, rf, co) = mp(Fence::Rmb, Fence::Rmb);
        assert_eq!(sk.check(&rf, &co), Verdict::Allowed);
        let (sk, rf, co) = mp(Fence::Mb, Fence::Mb);
        assert_eq!(sk.check(&rf, &co), Verdict::HappensBefore);
    }

    #[test]
    fn reading_a_value_coherence_order_overwrote_is_a_coherence_cycle() {
        // CoRR: P1's first read (now of x) sees P0's x=1, its second read the initial x=0.
        let (mut sk, _, co) = mp(Fence::Wmb, Fence::Rmb);
        sk.ev[5].loc = 0;
        sk.loc = Rel::empty(8);
        for i in 0..8 {
            for j in 0..8 {
                let mem = |e: &GEv| !matches!(e.op, Op::Fence(_));
                if mem(&sk.ev[i]) && mem(&sk.ev[j]) && sk.ev[i].loc == sk.ev[j].loc {
                    sk.loc.add(i, j);
                }
            }
        }
        let mut rf = Rel::empty(8);
        rf.add(2, 5);
        rf.add(0, 7);
        assert_eq!(sk.check(&rf, &co), Verdict::Coherence);
    }
}
