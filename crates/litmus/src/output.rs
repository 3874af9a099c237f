//! herd7's result shape: `Test`, `States`, the states, `Ok`/`No`, `Witnesses`, `Condition`,
//! `Observation`.

use crate::ast::Quant;
use crate::check::Outcome;

/// The result as herd7 prints it (without its `Time` and `Hash` lines).
pub fn render(o: &Outcome) -> String {
    let mut s = String::new();
    let kind = if o.quant == Quant::Forall {
        "Required"
    } else {
        "Allowed"
    };
    s.push_str(&format!("Test {} {kind}\n", o.name));
    s.push_str(&format!("States {}\n", o.states.len()));
    for (st, _) in &o.states {
        s.push_str(st);
        s.push('\n');
    }
    s.push_str(if o.ok() { "Ok\n" } else { "No\n" });
    s.push_str("Witnesses\n");
    s.push_str(&format!(
        "Positive: {} Negative: {}\n",
        o.positive, o.negative
    ));
    let q = match o.quant {
        Quant::Exists => "exists",
        Quant::NotExists => "~exists",
        Quant::Forall => "forall",
    };
    s.push_str(&format!("Condition {q} {}\n", o.cond_text));
    s.push_str(&format!(
        "Observation {} {} {} {}\n",
        o.name,
        o.observation().name(),
        o.positive,
        o.negative
    ));
    s
}
