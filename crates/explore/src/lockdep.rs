//! Lock order by class, as lockdep (`kernel/locking/lockdep.c`) keeps it: every acquisition while
//! other locks are held adds a `held class → acquired class` edge; an inversion is a pair of edges
//! `A → B` and `B → A`, seen in any executions. Classes come from the machine
//! ([`mmcheck_platform::Machine::lock_class`]): `&mm->mmap_lock`, `&anon_vma->rwsem`,
//! `&mapping->i_mmap_rwsem`, `&mm->page_table_lock`, `ptlock`, `folio_lock`. Nesting two locks of
//! one class is not an edge (the kernel annotates those with `spin_lock_nested`). Each edge keeps
//! the schedule of the execution that first showed it, up to the acquisition, so both halves of
//! an inversion replay.

use crate::schedule::Schedule;
use crate::Model;
use mmcheck_platform::{Access, Event, Machine, Obj};
use std::collections::BTreeMap;

/// Where an edge was first seen.
#[derive(Clone, Debug)]
pub struct Edge {
    pub thread: usize,
    pub step: usize,
    /// The schedule up to and including the acquisition.
    pub schedule: Schedule,
}

/// `(held class, acquired class)` → first sighting.
pub type Edges = BTreeMap<(&'static str, &'static str), Edge>;

/// An edge as one execution shows it: the acquisition's thread and step.
#[derive(Clone, Copy, Debug)]
pub struct Sighting {
    pub from: &'static str,
    pub to: &'static str,
    pub thread: usize,
    pub step: usize,
}

/// Who holds what (by lock instance, for deadlock reports) and the class edges the execution
/// showed, in order. Kept by the worker across executions (cleared, its allocations kept): a
/// step allocates nothing here once the vectors have grown.
#[derive(Default, Clone)]
pub struct LockTrack {
    pub held: [Vec<u64>; crate::MAX_THREADS],
    pub seen: Vec<Sighting>,
}

impl LockTrack {
    /// Forget the execution, keeping the allocations.
    pub fn clear(&mut self) {
        self.held.iter_mut().for_each(Vec::clear);
        self.seen.clear();
    }

    /// Note the step `ev` of thread `t`, the execution's `step`-th (from 0).
    pub fn note(&mut self, t: usize, ev: &Event, step: usize, m: &Machine) {
        let Obj::Lock(id) = ev.obj else { return };
        match ev.access {
            Access::Acquire | Access::AcquireShared => {
                if !self.held[t].is_empty() {
                    let to = m.lock_class(id);
                    for &h in &self.held[t] {
                        let from = m.lock_class(h);
                        if from == to {
                            continue;
                        }
                        self.seen.push(Sighting {
                            from,
                            to,
                            thread: t,
                            step,
                        });
                    }
                }
                self.held[t].push(id);
            }
            // A trylock is recorded only if it succeeded (see `Exec::step`), with no order edge:
            // it cannot deadlock.
            Access::TryAcquire => {}
            Access::Release | Access::ReleaseShared => {
                if let Some(i) = self.held[t].iter().rposition(|&h| h == id) {
                    self.held[t].remove(i);
                }
            }
            _ => {}
        }
    }

    /// Add the execution's edges to `into`, each one not there yet with the schedule `sched`
    /// (the execution's) up to and including its acquisition.
    pub fn merge_into(&self, into: &mut Edges, sched: &[u8]) {
        for s in &self.seen {
            into.entry((s.from, s.to)).or_insert_with(|| Edge {
                thread: s.thread,
                step: s.step,
                schedule: Schedule(sched[..=s.step].to_vec()),
            });
        }
    }
}

/// Add the edges of one execution to those of the exploration.
pub fn merge(into: &mut Edges, from: &Edges) {
    for (k, v) in from {
        into.entry(*k).or_insert_with(|| v.clone());
    }
}

/// A lock-order inversion: `a` then `b` in one execution, `b` then `a` in another (or the same).
#[derive(Clone, Debug)]
pub struct LockInversion {
    pub a: &'static str,
    pub b: &'static str,
    /// Where `a → b` was first seen.
    pub first: Edge,
    /// Where `b → a` was first seen.
    pub second: Edge,
    text: String,
}

impl std::fmt::Display for LockInversion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Every inversion among `edges`, naming both halves with a replay token for each.
pub fn inversions<M: Model + ?Sized>(edges: &Edges, model: &M) -> Vec<LockInversion> {
    let mut out = Vec::new();
    for ((a, b), e1) in edges {
        if a < b {
            if let Some(e2) = edges.get(&(*b, *a)) {
                let text = format!(
                    "{a} then {b} ({} at step {}, replay {}) vs {b} then {a} ({} at step {}, replay {})",
                    model.thread_name(e1.thread),
                    e1.step,
                    e1.schedule,
                    model.thread_name(e2.thread),
                    e2.step,
                    e2.schedule
                );
                out.push(LockInversion {
                    a,
                    b,
                    first: e1.clone(),
                    second: e2.clone(),
                    text,
                });
            }
        }
    }
    out
}
