//! Counterexample reports, shaped like KASAN and lockdep reports: a header saying what went
//! wrong, where, and who changed or freed the object and when; the race window (the steps that
//! touch the violation's objects, the happens-before edges between them, and the locks held at
//! each); then the whole trace with objects named as the kernel names them and entry writes
//! decoded (old → new), lock and seqcount chatter folded unless verbose. Also a JSON form.
//!
//! Names are resolved here, from the naming log a recorded run carries
//! ([`mmcheck_platform::naming`]), never in the step loop.

use crate::exec::Step;
use crate::schedule::Run;
use mmcheck_platform::{Access, BufferedStore, Names, Obj, StoreLoc, Violation, ViolationKind};
use serde::Serialize;

/// Short text for an object.
pub fn obj_text(o: Obj) -> String {
    o.describe()
}

/// Short text for an access.
pub fn access_text(a: Access) -> &'static str {
    match a {
        Access::Read => "read",
        Access::Write => "write",
        Access::Rmw => "rmw",
        Access::RmwWeak => "rmw (weak memory)",
        Access::Add => "atomic add",
        Access::Acquire => "lock",
        Access::TryAcquire => "trylock",
        Access::AcquireShared => "lock(shared)",
        Access::WriterWait => "writer-wait",
        Access::Release => "unlock",
        Access::ReleaseShared => "unlock(shared)",
        Access::Downgrade => "downgrade",
        Access::RcuLock => "rcu_read_lock",
        Access::RcuUnlock => "rcu_read_unlock",
        Access::GracePeriod => "synchronize_rcu",
        Access::CallRcu => "call_rcu",
        Access::RcuCallback => "rcu callback",
        Access::IrqDisable => "irq off",
        Access::IrqEnable => "irq on",
        Access::IpiSync => "IPI sync",
        Access::Flush => "TLB flush",
        Access::Fill => "TLB fill",
        Access::WalkFill => "walk-cache fill",
        Access::TlbScan => "TLB scan",
        Access::FrameAlloc => "alloc",
        Access::FrameFree => "free",
        Access::FrameClear => "zeroing (store buffer commit)",
        Access::HistInv => "invoke",
        Access::HistResp => "return",
        Access::ObjFree => "kmem_cache_free",
        Access::ObjAlloc => "kmem_cache_alloc (reuse)",
    }
}

fn cell(s: &Step) -> String {
    let what = match s.event.access {
        Access::RcuLock
        | Access::RcuUnlock
        | Access::GracePeriod
        | Access::CallRcu
        | Access::RcuCallback => access_text(s.event.access).to_string(),
        Access::IrqDisable
        | Access::IrqEnable
        | Access::IpiSync
        | Access::Flush
        | Access::Fill
        | Access::WalkFill
        | Access::TlbScan => access_text(s.event.access).to_string(),
        a => match s.event.obj {
            Obj::Choice { n, .. } => format!("choice: outcome {} of {n}", s.choice),
            o => format!("{} {}", access_text(a), obj_text(o)),
        },
    };
    if s.func.is_empty() {
        what
    } else {
        format!("{}: {what}", s.func)
    }
}

/// Render a trace, one column per thread.
pub fn render(
    names: &[String],
    trace: &[Step],
    violation: Option<&Violation>,
    width: usize,
) -> String {
    let mut out = String::new();
    let w = width.max(12);
    out.push_str(&format!("{:>5}  ", "step"));
    for n in names {
        out.push_str(&format!("{:<w$} ", trunc(n, w)));
    }
    out.push('\n');
    out.push_str(&format!("{:->5}  ", ""));
    for _ in names {
        out.push_str(&format!("{:-<w$} ", ""));
    }
    out.push('\n');
    for (i, s) in trace.iter().enumerate() {
        let last = i + 1 == trace.len() && violation.is_some();
        out.push_str(&format!("{:>5}{} ", i, if last { '>' } else { ' ' }));
        for t in 0..names.len() {
            let text = if t == s.thread {
                cell(s)
            } else {
                String::new()
            };
            out.push_str(&format!("{:<w$} ", trunc(&text, w)));
        }
        out.push('\n');
    }
    if let Some(v) = violation {
        out.push_str(&format!("\nviolation: {v}\n"));
    }
    out
}

fn trunc(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(w - 1).collect();
        t.push('~');
        t
    }
}

/// One step in the JSON trace.
#[derive(Clone, Debug, Serialize)]
pub struct JsonStep {
    pub step: usize,
    pub thread: usize,
    pub func: String,
    pub access: String,
    pub object: String,
    /// An entry write decoded, `old → new`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// JSON form of a trace (objects unnamed; see [`json_run`] for a recorded run).
pub fn json_steps(trace: &[Step]) -> Vec<JsonStep> {
    trace
        .iter()
        .enumerate()
        .map(|(i, s)| JsonStep {
            step: i,
            thread: s.thread,
            func: s.func.to_string(),
            access: access_text(s.event.access).to_string(),
            object: obj_text(s.event.obj),
            value: None,
        })
        .collect()
}

/// JSON form of a recorded run's trace: objects named, entry writes decoded.
pub fn json_run(run: &Run) -> Vec<JsonStep> {
    let v = View::new(run);
    (0..run.trace.len())
        .map(|i| {
            let s = &run.trace[i];
            JsonStep {
                step: i,
                thread: s.thread,
                func: s.func.to_string(),
                access: access_text(s.event.access).to_string(),
                object: v.obj(i),
                value: v.value(i),
            }
        })
        .collect()
}

/// A recorded run, for rendering: names resolve at each step's mark.
pub struct View<'a> {
    pub run: &'a Run,
    pub names: &'a Names,
    /// After each step: is its thread in an RCU read-side section, with IRQs off?
    ctx: Vec<(bool, bool)>,
}

impl<'a> View<'a> {
    pub fn new(run: &'a Run) -> Self {
        let mut depth = [(0i32, 0i32); crate::MAX_THREADS];
        let ctx = run
            .trace
            .iter()
            .map(|s| {
                let d = &mut depth[s.thread.min(crate::MAX_THREADS - 1)];
                match s.event.access {
                    Access::RcuLock => d.0 += 1,
                    Access::RcuUnlock => d.0 -= 1,
                    Access::IrqDisable => d.1 += 1,
                    Access::IrqEnable => d.1 -= 1,
                    _ => {}
                }
                (d.0 > 0, d.1 > 0)
            })
            .collect();
        View {
            run,
            names: &run.names,
            ctx,
        }
    }

    /// The naming-log mark of step `i` (the whole log if the run was not recorded).
    fn mark(&self, i: usize) -> usize {
        self.run
            .detail
            .get(i)
            .map_or(usize::MAX, |d| d.names as usize)
    }

    /// Step `i`'s object, named as at that step.
    pub fn obj(&self, i: usize) -> String {
        let o = self.run.trace[i].event.obj;
        if self.run.detail.is_empty() {
            return o.describe();
        }
        self.names.obj(o, self.mark(i))
    }

    /// An object named as at the end of the run.
    pub fn obj_now(&self, o: Obj) -> String {
        if self.run.detail.is_empty() {
            return o.describe();
        }
        self.names.obj(o, usize::MAX)
    }

    /// Step `i`'s entry write decoded, `old → new`, with what it did to the store buffers
    /// under a weak memory model: a store it buffered, another CPU's buffered store it
    /// committed (the flusher's commit, or a relaxed RMW's write committed ahead of this write).
    pub fn value(&self, i: usize) -> Option<String> {
        let d = self.run.detail.get(i)?;
        let m = self.mark(i);
        let Obj::Entry { pfn, idx } = self.run.trace[i].event.obj else {
            // A store entering a buffer is announced on the buffers, not on its entry.
            let Some(b) = d.buffered.first() else {
                // A commit of a page's data or of a zeroing.
                let c = d.committed.first()?;
                let what = match c.loc {
                    StoreLoc::Data => format!(" := {}", c.val),
                    _ => String::new(),
                };
                return Some(format!(
                    "{}{what} (CPU{}'s buffered store reaches memory)",
                    self.buffered_target(c, m),
                    c.cpu
                ));
            };
            return Some(match b.loc {
                StoreLoc::Entry(_) => format!(
                    "{} := {}, buffered by CPU{}",
                    self.buffered_target(b, m),
                    self.names.entry_value(b.pfn, b.val, m),
                    b.cpu
                ),
                StoreLoc::Data => format!(
                    "{} := {}, buffered by CPU{}",
                    self.buffered_target(b, m),
                    b.val,
                    b.cpu
                ),
                _ => format!("{}, buffered by CPU{}", self.buffered_target(b, m), b.cpu),
            });
        };
        let (old, new) = d.value?;
        let val = |v| self.names.entry_value(pfn, v, m);
        let on_entry = |b: &&BufferedStore| {
            b.pfn == pfn && (b.loc == StoreLoc::Table || b.loc == StoreLoc::Entry(idx))
        };
        let mut text = String::new();
        let mut from = old;
        if let Some(c) = d.committed.iter().find(on_entry) {
            let what = if c.rmw { "rmw write" } else { "store" };
            if c.val == new {
                return Some(format!(
                    "{} → {} (CPU{}'s buffered {what} reaches memory)",
                    val(old),
                    val(new),
                    c.cpu
                ));
            }
            text = format!(
                "CPU{}'s buffered {what} first: {} → {}; then ",
                c.cpu,
                val(old),
                val(c.val)
            );
            from = c.val;
        }
        if let Some(b) = d.buffered.iter().find(on_entry) {
            if from == new {
                text += &format!("{} → {}, buffered by CPU{}", val(from), val(b.val), b.cpu);
                return Some(text);
            }
        }
        text += &if from == new {
            format!("{} (unchanged)", val(new))
        } else {
            format!("{} → {}", val(from), val(new))
        };
        Some(text)
    }

    /// The entry or page a buffered store writes, or the table or pages its zeroing clears.
    fn buffered_target(&self, b: &BufferedStore, m: usize) -> String {
        let frame = |pfn, order| self.names.obj(Obj::Frame { pfn, order }, m);
        match b.loc {
            StoreLoc::Entry(idx) => self.names.obj(Obj::Entry { pfn: b.pfn, idx }, m),
            StoreLoc::Table => format!("zeroing of {}", frame(b.pfn, 0)),
            StoreLoc::Data => self.names.obj(Obj::Data(b.pfn), m),
            StoreLoc::DataZero => format!("zeroing of {}", self.names.obj(Obj::Data(b.pfn), m)),
        }
    }

    /// Locks thread of step `i` holds after it, named.
    pub fn held(&self, i: usize) -> Vec<String> {
        let Some(d) = self.run.detail.get(i) else {
            return Vec::new();
        };
        let m = self.mark(i);
        let mut v: Vec<String> = d
            .held
            .iter()
            .map(|&l| self.names.obj(Obj::Lock(l), m))
            .collect();
        let (rcu, irq) = self.ctx.get(i).copied().unwrap_or_default();
        if rcu {
            v.push("rcu_read_lock".into());
        }
        if irq {
            v.push("irqs off".into());
        }
        v
    }

    /// `func: access object[: value]` for step `i`.
    pub fn cell(&self, i: usize) -> String {
        let s = &self.run.trace[i];
        let what = if matches!(
            s.event.access,
            Access::RcuLock
                | Access::RcuUnlock
                | Access::GracePeriod
                | Access::CallRcu
                | Access::RcuCallback
                | Access::IrqDisable
                | Access::IrqEnable
                | Access::IpiSync
                | Access::Flush
                | Access::Fill
                | Access::WalkFill
                | Access::TlbScan
        ) {
            access_text(s.event.access).to_string()
        } else if let Obj::Choice { n, .. } = s.event.obj {
            // need_resched() and the like: which of the n outcomes this execution took.
            format!("choice: outcome {} of {n}", s.choice)
        } else {
            format!("{} {}", access_text(s.event.access), self.obj(i))
        };
        let what = match self.value(i) {
            Some(v) => format!("{what}: {v}"),
            None => what,
        };
        if s.func.is_empty() {
            what
        } else {
            format!("{}: {what}", s.func)
        }
    }

    /// Per-VMA lock and seqcount chatter, and reads of a frame's state (`page_folio`): folded
    /// in the full trace unless verbose.
    pub fn is_chatter(&self, i: usize) -> bool {
        let e = self.run.trace[i].event;
        match e.obj {
            Obj::Frame { .. } => e.access == Access::Read,
            Obj::Var(_) => {
                let n = self.obj(i);
                n.ends_with("->vm_refcnt")
                    || n.ends_with("->vm_lock_seq")
                    || n.ends_with("->mm_lock_seq")
                    || n.starts_with("var#")
            }
            _ => false,
        }
    }
}

/// The race window of a violating run.
#[derive(Clone, Debug, Default)]
pub struct Slice {
    /// The objects of the violation (blamed by the check, or the violating step's).
    pub objects: Vec<Obj>,
    /// Steps in the window, in order.
    pub steps: Vec<usize>,
    /// Happens-before edges between window steps of different threads: `(earlier, later)`,
    /// conflicting accesses in the explorer's dependency relation.
    pub edges: Vec<(usize, usize)>,
}

fn writes(a: Access) -> bool {
    !matches!(a, Access::Read)
}

/// True if step event `e` touches `o`: the same object, or a free of its frame or of the slab
/// object it is a field of.
fn touches(e: &mmcheck_platform::Event, o: Obj) -> bool {
    if e.obj == o {
        return true;
    }
    if let (Access::FrameFree, Obj::Frame { pfn, order }) = (e.access, e.obj) {
        return o.in_block(pfn, order);
    }
    if matches!(e.access, Access::ObjFree | Access::ObjAlloc) {
        return e.obj.slab_base().is_some() && e.obj.slab_base() == o.slab_base();
    }
    false
}

/// Compute the race window of `run`.
pub fn slice(run: &Run) -> Slice {
    let trace = &run.trace;
    let mut objects = run.names.blamed();
    let kind = run.violation.as_ref().map(|v| (v.kind, v.cpu));
    if objects.is_empty() {
        match kind {
            // A deadlock: the locks the threads hold (each waits for one another holds).
            Some((ViolationKind::Deadlock, _)) => {
                let mut last = [None; crate::MAX_THREADS];
                for (i, s) in trace.iter().enumerate() {
                    last[s.thread.min(crate::MAX_THREADS - 1)] = Some(i);
                }
                for i in last.into_iter().flatten() {
                    for &l in run.detail.get(i).map_or(&[][..], |d| &d.held[..]) {
                        objects.push(Obj::Lock(l));
                    }
                }
            }
            // Raised by a thread's step: the object of that step.
            Some((_, Some(_))) => objects.extend(trace.last().map(|s| s.event.obj)),
            // A final check that blamed nothing: no window.
            _ => {}
        }
    }
    objects.sort();
    objects.dedup();
    // A use after free of a table: how the thread reached the table matters, so the entry that
    // linked it (and whoever cleared it) is an object of the violation too.
    for o in objects.clone() {
        if let Obj::Entry { pfn, .. } = o {
            let freed = trace
                .iter()
                .any(|s| s.event.access == Access::FrameFree && touches(&s.event, o));
            if let (true, Some(p)) = (freed, run.names.parent_entry(pfn, usize::MAX)) {
                if !objects.contains(&p) {
                    objects.push(p);
                }
            }
        }
    }
    // A stale TLB entry: the page-table entry each fill loaded (the last one its thread read)
    // is an object too, so the window shows who cleared it without a flush.
    for o in objects.clone() {
        let Obj::Tlb(c) = o else { continue };
        for (i, st) in trace.iter().enumerate() {
            if st.event.access != Access::Fill || st.event.obj != o {
                continue;
            }
            let read = trace[..i].iter().rev().find(|p| {
                p.thread == c as usize
                    && p.event.access == Access::Read
                    && matches!(p.event.obj, Obj::Entry { .. })
            });
            if let Some(p) = read {
                if !objects.contains(&p.event.obj) {
                    objects.push(p.event.obj);
                }
            }
        }
    }
    // A write to an object of the violation may carry a value read from another entry in the
    // same kernel function (`move_ptes` moves an entry: read-and-clear the old one, write the new
    // one): the entries that function wrote around it are objects of the violation too.
    let seeds = objects.clone();
    for (i, s) in trace.iter().enumerate() {
        if !writes(s.event.access) || !seeds.contains(&s.event.obj) {
            continue;
        }
        if !matches!(s.event.obj, Obj::Entry { .. }) {
            continue;
        }
        let same = |j: usize| trace[j].thread == s.thread && trace[j].func == s.func;
        let mut lo = i;
        while lo > 0 && i - lo < 64 && (trace[lo - 1].thread != s.thread || same(lo - 1)) {
            lo -= 1;
        }
        let mut hi = i;
        while hi + 1 < trace.len()
            && hi - i < 64
            && (trace[hi + 1].thread != s.thread || same(hi + 1))
        {
            hi += 1;
        }
        for (j, t) in trace.iter().enumerate().take(hi + 1).skip(lo) {
            // An rmw that left the entry as it was (a none entry moved) carried nothing.
            let changed = run
                .detail
                .get(j)
                .and_then(|d| d.value)
                .is_none_or(|(old, new)| old != new);
            if t.thread == s.thread
                && t.func == s.func
                && writes(t.event.access)
                && changed
                && matches!(t.event.obj, Obj::Entry { .. })
                && !objects.contains(&t.event.obj)
            {
                objects.push(t.event.obj);
            }
        }
    }
    let mut steps: Vec<usize> = (0..trace.len())
        .filter(|&i| objects.iter().any(|&o| touches(&trace[i].event, o)))
        .collect();
    if let Some(last) = trace.len().checked_sub(1) {
        if matches!(kind, Some((k, Some(_))) if k != ViolationKind::Deadlock)
            && !steps.contains(&last)
        {
            steps.push(last);
        }
    }
    let mut edges = Vec::new();
    for (k, &j) in steps.iter().enumerate() {
        // The latest earlier window step of each other thread that conflicts with `j`.
        let mut seen = [false; crate::MAX_THREADS];
        for &i in steps[..k].iter().rev() {
            let t = trace[i].thread;
            if t == trace[j].thread || seen[t] {
                continue;
            }
            if crate::deps::dependent(&trace[i].dep, &trace[j].dep) {
                seen[t] = true;
                edges.push((i, j));
            }
        }
    }
    Slice {
        objects,
        steps,
        edges,
    }
}

/// The KASAN/lockdep-style header: what went wrong, where, on which object, and who last
/// changed or freed it and when.
pub fn header(threads: &[String], run: &Run, sl: &Slice) -> String {
    let v = View::new(run);
    let Some(viol) = &run.violation else {
        return String::new();
    };
    let bar = "=".repeat(78);
    let mut out = format!("{bar}\nBUG: {}", viol.kind.name());
    if let Some(f) = viol.stack.last() {
        out.push_str(&format!(" in {f}"));
    }
    if let Some(c) = viol.cpu {
        let t = threads.get(c).cloned().unwrap_or_else(|| format!("T{c}"));
        out.push_str(&format!(" on {t} (CPU{c})"));
    }
    out.push_str(&format!("\n{}\n", viol.msg));
    if !viol.stack.is_empty() {
        out.push_str(&format!("call path: {}\n", viol.stack.join(" > ")));
    }
    let name = |t: usize| threads.get(t).cloned().unwrap_or_else(|| format!("T{t}"));
    for &o in &sl.objects {
        out.push_str(&format!("object: {}\n", v.obj_now(o)));
        let trace = &run.trace;
        if let Some(i) = (0..trace.len()).rev().find(|&i| {
            let e = trace[i].event;
            matches!(e.access, Access::FrameFree | Access::ObjFree) && touches(&e, o)
        }) {
            out.push_str(&format!(
                "  freed by {} at step {i} in {}\n",
                name(trace[i].thread),
                trace[i].func
            ));
        }
        if let Some(i) = (0..trace.len())
            .rev()
            .find(|&i| trace[i].event.obj == o && writes(trace[i].event.access))
        {
            let val = v.value(i).map(|x| format!(": {x}")).unwrap_or_default();
            let what = match trace[i].event.access {
                Access::Acquire | Access::AcquireShared | Access::TryAcquire => "last taken",
                Access::Release | Access::ReleaseShared => "last released",
                _ => "last changed",
            };
            out.push_str(&format!(
                "  {what} by {} at step {i} in {} ({}){val}\n",
                name(trace[i].thread),
                trace[i].func,
                access_text(trace[i].event.access)
            ));
        }
    }
    out.push_str(&bar);
    out.push('\n');
    out
}

fn thread_name(threads: &[String], t: usize) -> String {
    threads.get(t).cloned().unwrap_or_else(|| format!("T{t}"))
}

/// The race window as text: step, thread, what it did, the locks held, and the happens-before
/// edges into it.
pub fn render_slice(threads: &[String], run: &Run, sl: &Slice) -> String {
    let v = View::new(run);
    let mut out = format!(
        "race window: {} of {} steps (touching the objects above; `-v` for every step):\n",
        sl.steps.len(),
        run.trace.len()
    );
    let tw = threads.iter().map(|t| t.len()).max().unwrap_or(2).max(2);
    for &i in &sl.steps {
        let last = i + 1 == run.trace.len() && run.violation.is_some();
        let s = &run.trace[i];
        out.push_str(&format!(
            "{i:>5}{} {:<tw$}  {}",
            if last { '>' } else { ' ' },
            thread_name(threads, s.thread),
            v.cell(i)
        ));
        let after: Vec<String> = sl
            .edges
            .iter()
            .filter(|e| e.1 == i)
            .map(|e| format!("{} ({})", e.0, thread_name(threads, run.trace[e.0].thread)))
            .collect();
        if !after.is_empty() {
            out.push_str(&format!("   [after {}]", after.join(", ")));
        }
        let held = v.held(i);
        if !held.is_empty() {
            out.push_str(&format!("   {{holds {}}}", held.join(", ")));
        }
        out.push('\n');
    }
    out
}

/// The whole trace, one line per step with its thread; without `verbose`, runs of lock and
/// seqcount chatter outside the race window are folded into one line.
pub fn render_trace(threads: &[String], run: &Run, sl: &Slice, verbose: bool) -> String {
    render_steps(threads, run, sl, run.trace.len(), verbose)
}

/// The first `upto` steps of the trace (see [`render_trace`]).
pub fn render_steps(
    threads: &[String],
    run: &Run,
    sl: &Slice,
    upto: usize,
    verbose: bool,
) -> String {
    let v = View::new(run);
    let tw = threads.iter().map(|t| t.len()).max().unwrap_or(2).max(2);
    let mut out = String::new();
    let n = upto.min(run.trace.len());
    let mut i = 0;
    while i < n {
        let fold = |j: usize| !verbose && v.is_chatter(j) && !sl.steps.contains(&j);
        if fold(i) {
            let t = run.trace[i].thread;
            let mut j = i;
            while j + 1 < n && fold(j + 1) && run.trace[j + 1].thread == t {
                j += 1;
            }
            if j > i {
                out.push_str(&format!(
                    "{:>5}  {:<tw$}  ... {} steps of lock/seqcount chatter folded ({}-{}; -v shows them)\n",
                    i,
                    thread_name(threads, t),
                    j - i + 1,
                    i,
                    j
                ));
                i = j + 1;
                continue;
            }
        }
        let last = i + 1 == run.trace.len() && run.violation.is_some();
        let mark = if last {
            '>'
        } else if sl.steps.contains(&i) {
            '*'
        } else {
            ' '
        };
        out.push_str(&format!(
            "{i:>5}{mark} {:<tw$}  {}\n",
            thread_name(threads, run.trace[i].thread),
            v.cell(i)
        ));
        i += 1;
    }
    out
}

/// A recorded run's full report: header, race window, then the trace (folded unless `verbose`).
/// A clean run gets its trace only.
pub fn render_run(threads: &[String], run: &Run, verbose: bool) -> String {
    let sl = if run.violation.is_some() {
        slice(run)
    } else {
        Slice::default()
    };
    let mut out = header(threads, run, &sl);
    if !sl.steps.is_empty() {
        out.push_str(&render_slice(threads, run, &sl));
        out.push_str("\nfull trace (* in the race window, > the violating step):\n");
    }
    out.push_str(&render_trace(threads, run, &sl, verbose));
    if let Some(v) = &run.violation {
        out.push_str(&format!("\nviolation: {v}\n"));
    }
    out
}
