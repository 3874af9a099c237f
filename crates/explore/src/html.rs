//! A self-contained HTML timeline of counterexamples: one column per thread (CPU), the race
//! window highlighted, the locks held and the entry values on hover, and the replay command. No
//! network fetches: the CSS and the little script are inline, so the file opens anywhere.

use crate::report::{header, slice, Slice, View};
use crate::schedule::Run;

/// Escape text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() && c != '\n' => o.push_str(&format!("&#{};", c as u32)),
            c => o.push(c),
        }
    }
    o
}

/// One counterexample's section: title, KASAN-style header, replay command, and the timeline.
pub fn section(title: &str, threads: &[String], run: &Run, replay: &str) -> String {
    let sl = if run.violation.is_some() {
        slice(run)
    } else {
        Slice::default()
    };
    let v = View::new(run);
    let mut o = String::new();
    o.push_str(&format!(
        "<section class=\"cx\">\n<h2>{}</h2>\n<pre class=\"hdr\">{}</pre>\n",
        esc(title),
        esc(&header(threads, run, &sl))
    ));
    if !replay.is_empty() {
        o.push_str(&format!(
            "<p>replay: <code class=\"replay\">{}</code></p>\n",
            esc(replay)
        ));
    }
    o.push_str(&format!(
        "<p class=\"note\">{} steps; the race window ({} steps) is highlighted; hover a step for \
         the locks its thread holds and the entry value it wrote.</p>\n",
        run.trace.len(),
        sl.steps.len()
    ));
    if !sl.steps.is_empty() {
        o.push_str("<h3>race window</h3>\n");
        table(&mut o, "rw", threads, run, &v, &sl, &sl.steps);
        o.push_str("<h3>timeline</h3>\n");
    }
    let all: Vec<usize> = (0..run.trace.len()).collect();
    table(&mut o, "tl", threads, run, &v, &sl, &all);
    if let Some(viol) = &run.violation {
        o.push_str(&format!(
            "<p class=\"violation\">violation: {}</p>\n",
            esc(&viol.to_string())
        ));
    }
    o.push_str("</section>\n");
    o
}

/// A timeline table of steps `which`, one column per thread.
fn table(
    o: &mut String,
    class: &str,
    threads: &[String],
    run: &Run,
    v: &View<'_>,
    sl: &Slice,
    which: &[usize],
) {
    o.push_str(&format!(
        "<table class=\"{class}\">\n<thead><tr><th>step</th>"
    ));
    for t in threads {
        o.push_str(&format!("<th>{}</th>", esc(t)));
    }
    o.push_str("</tr></thead>\n<tbody>\n");
    let n = run.trace.len();
    for &i in which {
        let s = &run.trace[i];
        let last = i + 1 == n && run.violation.is_some();
        let win = sl.steps.contains(&i);
        let mut cls = vec!["step"];
        if win {
            cls.push("win");
        }
        if last {
            cls.push("bad");
        }
        if !win && !last && v.is_chatter(i) {
            cls.push("chatter");
        }
        let mut tip = vec![format!("object: {}", v.obj(i))];
        if let Some(val) = v.value(i) {
            tip.push(format!("value: {val}"));
        }
        let held = v.held(i);
        tip.push(if held.is_empty() {
            "locks held: none".to_string()
        } else {
            format!("locks held: {}", held.join(", "))
        });
        let after: Vec<String> = sl
            .edges
            .iter()
            .filter(|e| e.1 == i)
            .map(|e| {
                let t = threads
                    .get(run.trace[e.0].thread)
                    .map_or("?", |t| t.as_str());
                format!("{} ({t})", e.0)
            })
            .collect();
        if !after.is_empty() {
            tip.push(format!("ordered after step {}", after.join(", ")));
        }
        o.push_str(&format!(
            "<tr class=\"{}\" data-step=\"{i}\"><td class=\"n\">{i}</td>",
            cls.join(" ")
        ));
        for t in 0..threads.len() {
            if t == s.thread {
                let mut text = esc(&v.cell(i));
                if class == "rw" && !held.is_empty() {
                    text.push_str(&format!(
                        "<br><span class=\"held\">holds {}</span>",
                        esc(&held.join(", "))
                    ));
                }
                o.push_str(&format!(
                    "<td class=\"op\" title=\"{}\">{text}</td>",
                    esc(&tip.join("\n"))
                ));
            } else {
                o.push_str("<td></td>");
            }
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</tbody>\n</table>\n");
}

const STYLE: &str = r#"
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
pre.hdr { background: #fff4f4; border-left: 4px solid #c00; padding: .6em; white-space: pre-wrap; }
code.replay { background: #f2f2f2; padding: .1em .3em; user-select: all; }
table.tl, table.rw { border-collapse: collapse; font: 12px ui-monospace, monospace; }
table.tl th, table.rw th { position: sticky; top: 0; background: #eee; text-align: left; padding: 2px 8px; }
table.tl td, table.rw td { padding: 1px 8px; border-bottom: 1px solid #f0f0f0; vertical-align: top; }
table.tl td.n, table.rw td.n { color: #888; text-align: right; }
tr.win td.op { background: #fff3b0; font-weight: 600; }
tr.bad td.op { background: #ffb3b3; font-weight: 700; }
tr.chatter { color: #999; }
body.fold tr.chatter { display: none; }
span.held { color: #666; font-weight: 400; }
td.op:hover { outline: 1px solid #888; }
p.violation { color: #a00; font-weight: 700; }
"#;

const SCRIPT: &str = r#"
(function () {
  var box = document.getElementById('fold');
  function apply() { document.body.classList.toggle('fold', box.checked); }
  box.addEventListener('change', apply);
  apply();
  var steps = document.querySelectorAll('table.tl tr.step').length;
  var win = document.querySelectorAll('table.tl tr.win').length;
  var s = document.getElementById('summary');
  s.textContent = 'rendered ' + steps + ' steps, ' + win + ' in race windows';
  s.setAttribute('data-rendered', 'yes');
})();
"#;

/// A whole page around `sections`.
pub fn page(title: &str, sections: &[String]) -> String {
    let mut o = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n\
         <style>{STYLE}</style>\n</head>\n<body class=\"fold\">\n<h1>{}</h1>\n\
         <p><label><input type=\"checkbox\" id=\"fold\" checked> fold lock and seqcount chatter\
         </label> · <span id=\"summary\"></span></p>\n",
        esc(title),
        esc(title)
    );
    if sections.is_empty() {
        o.push_str("<p>No counterexample.</p>\n");
    }
    for s in sections {
        o.push_str(s);
    }
    o.push_str(&format!("<script>{SCRIPT}</script>\n</body>\n</html>\n"));
    o
}
