//! Counterexample reports: a text trace with one column per thread (kernel function, access and
//! object at each step; lock acquisitions and releases; the violating step marked), and a JSON
//! form of the same.

use crate::exec::Step;
use mmcheck_platform::{Access, Obj, Violation};
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
        Access::TlbScan => "TLB scan",
        Access::FrameAlloc => "alloc",
        Access::FrameFree => "free",
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
}

/// JSON form of a trace.
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
        })
        .collect()
}
