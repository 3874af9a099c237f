//! Validation, the second pass: located statements into a [`Scenario`], with every semantic
//! error (unknown thread, overlapping mapping, address outside the geometry, bad switch) located.

use super::*;

pub(super) struct Builder<'t> {
    pub(super) file: &'t str,
    pub(super) text: &'t str,
}

/// A mapping known to exist: `[start, end)` and where it was made.
#[derive(Clone, Copy, Debug)]
pub(super) struct Mapping {
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) line: usize,
    /// A shmem mapping (`of` may name it).
    pub(super) file: bool,
    /// A `VM_GROWSDOWN` stack mapping: addresses below it, down to the mapping below, are
    /// accepted (an access there expands the stack, or fails with SIGSEGV at the guard gap).
    pub(super) growsdown: bool,
}

/// True if `v` lies in one of `maps`, or below a stack mapping with no other mapping between.
pub(super) fn covered<'m>(maps: impl Iterator<Item = &'m Mapping> + Clone, v: u64) -> bool {
    maps.clone().any(|m| m.start <= v && v < m.end)
        || maps.clone().any(|m| {
            m.growsdown && v < m.start && !maps.clone().any(|o| o.end > v && o.start < m.start)
        })
}

impl<'t> Builder<'t> {
    pub(super) fn err(&self, span: Range<usize>, msg: impl Into<String>) -> ParseError {
        ParseError::new(self.file, self.text, span, msg.into())
    }

    pub(super) fn line(&self, span: &Range<usize>) -> usize {
        line_col_of(self.text, span.start.min(self.text.len())).0
    }

    pub(super) fn switch_err(&self, s: &Setting<'_>, e: SwitchError) -> ParseError {
        match e {
            SwitchError::Unknown(_) => {
                let names: Vec<&str> = SWITCHES.iter().map(|s| s.name).collect();
                self.err(s.key.span.clone(), e.to_string()).with_help(
                    did_you_mean(s.key.v, &names)
                        .or_else(|| Some(format!("known switches: {}", names.join(", ")))),
                )
            }
            _ => self.err(s.value.span.clone(), e.to_string()),
        }
    }

    pub(super) fn dup(&self, what: &str, first: &Range<usize>, again: &Range<usize>) -> ParseError {
        self.err(
            again.clone(),
            format!("duplicate {what} (first at line {})", self.line(first)),
        )
    }

    pub(super) fn build(&self, items: Vec<Item<'_>>) -> Result<Scenario, ParseError> {
        // Header: name, doc, geometry, protocol, switches, frames.
        let mut name: Option<(Range<usize>, Sp<&str>)> = None;
        let mut doc: Vec<String> = Vec::new();
        let mut geometry: Option<Range<usize>> = None;
        let mut preset: Option<(Range<usize>, Sp<&str>)> = None;
        let mut frames: Option<Range<usize>> = None;
        let mut mutate: Option<Range<usize>> = None;
        let mut init: Option<Range<usize>> = None;
        for item in &items {
            match item {
                Item::Scenario { kw, name: n } => {
                    if let Some((first, _)) = &name {
                        return Err(self.dup("'scenario' line", first, kw));
                    }
                    name = Some((kw.clone(), n.clone()));
                }
                Item::Protocol { kw, preset: p } => {
                    if let Some((first, _)) = &preset {
                        return Err(self.dup("'protocol' line", first, kw));
                    }
                    preset = Some((kw.clone(), p.clone()));
                }
                Item::Geometry { kw, .. } => {
                    if let Some(first) = &geometry {
                        return Err(self.dup("'geometry' line", first, kw));
                    }
                    geometry = Some(kw.clone());
                }
                Item::Mutate { kw, .. } => {
                    if let Some(first) = &mutate {
                        return Err(self.dup("'mutate' line", first, kw));
                    }
                    mutate = Some(kw.clone());
                }
                Item::Frames { kw, .. } => {
                    if let Some(first) = &frames {
                        return Err(self.dup("'frames' line", first, kw));
                    }
                    frames = Some(kw.clone());
                }
                Item::Init { kw, .. } => {
                    if let Some(first) = &init {
                        return Err(self.dup("'init' block", first, kw));
                    }
                    init = Some(kw.clone());
                }
                Item::Doc { text, .. } => doc.push(text.v.clone()),
                _ => {}
            }
        }
        let Some((scenario_kw, name)) = name else {
            return Err(self.err(
                0..0,
                "missing 'scenario NAME' line: every scenario file names its scenario",
            ));
        };
        let mut s = Scenario::new(name.v);
        s.doc = doc.join(" ");
        let base_fixups = |p: &mut Protocol| {
            // The explorer runs RCU callbacks on their own thread; scenarios fault around 4 pages.
            p.inline_rcu_callbacks = false;
            p.fault_around_pages = 4;
        };
        if let Some((_, p)) = &preset {
            let mut proto = Protocol::preset(p.v).map_err(|e| {
                let names: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
                self.err(p.span.clone(), e.to_string())
                    .with_help(did_you_mean(p.v, &names))
            })?;
            base_fixups(&mut proto);
            s.protocol = proto;
        }
        for item in &items {
            match item {
                Item::Geometry {
                    levels, entries, ..
                } => {
                    let l = levels.as_ref().map_or(3, |l| l.v);
                    let e = entries.as_ref().map_or(8, |e| e.v);
                    let lv = u32::try_from(l).unwrap_or(u32::MAX);
                    s.geometry = Geometry::new(lv, e).map_err(|err| {
                        let span = match (&err, levels, entries) {
                            (
                                mmcheck_kernel::arch::pgtable::GeometryError::Levels(_),
                                Some(l),
                                _,
                            ) => l.span.clone(),
                            (_, _, Some(e)) => e.span.clone(),
                            (_, Some(l), None) => l.span.clone(),
                            _ => 0..0,
                        };
                        let msg = match err {
                            mmcheck_kernel::arch::pgtable::GeometryError::Levels(_) => {
                                format!("levels must be 2 to 5, not {l}")
                            }
                            other => other.to_string(),
                        };
                        self.err(span, format!("impossible geometry: {msg}"))
                    })?;
                }
                Item::Set { setting } => {
                    s.protocol
                        .set(setting.key.v, setting.value.v)
                        .map_err(|e| self.switch_err(setting, e))?;
                }
                Item::Mutate { site, .. } => {
                    s.mutate = Some(site.v.parse().map_err(|e: String| {
                        self.err(site.span.clone(), e)
                            .with_help(Some("`mmcheck sites` lists the sites".to_string()))
                    })?);
                }
                Item::Frames { n, spare, .. } => {
                    if let Some(n) = n {
                        if n.v < MIN_FRAMES || n.v > MAX_FRAMES {
                            return Err(self
                                .err(
                                    n.span.clone(),
                                    format!(
                                        "frames must be {MIN_FRAMES} to {MAX_FRAMES}, not {}",
                                        n.v
                                    ),
                                )
                                .with_help(Some(format!(
                                    "pfn 0 is reserved, and the zero page and the mm's \
                                     top-level table take a frame each: fewer than \
                                     {MIN_FRAMES} cannot hold an mm"
                                ))));
                        }
                        s.nr_frames = n.v as usize;
                    }
                    if let Some(k) = spare {
                        if k.v >= s.nr_frames as u64 {
                            return Err(self.err(
                                k.span.clone(),
                                format!(
                                    "spare={} leaves no frame for init (the pool has {})",
                                    k.v, s.nr_frames
                                ),
                            ));
                        }
                        s.spare_frames = Some(k.v as usize);
                    }
                }
                _ => {}
            }
        }

        // Every mapping a thread makes, anywhere: thread addresses are checked permissively
        // against these (the interleaving decides whether they exist yet).
        let geo = s.geometry;
        let mut thread_maps: Vec<Mapping> = Vec::new();
        for item in &items {
            if let Item::Thread { ops, .. } = item {
                for op in ops {
                    let (addr, pages, file, growsdown) = match &op.args {
                        OpArgs::Mmap {
                            addr,
                            pages,
                            backing,
                            ..
                        } => (addr, pages, *backing != Backing::AnonPrivate, false),
                        OpArgs::Mremap { to, pages, .. } => (to, pages, false, false),
                        OpArgs::MmapStack { addr, pages } => (addr, pages, false, true),
                        _ => continue,
                    };
                    if let (Ok(a), Some(len)) = (
                        resolve_addr(geo, addr.v),
                        pages.v.checked_mul(geo.page_size()),
                    ) {
                        thread_maps.push(Mapping {
                            start: a,
                            end: a.saturating_add(len),
                            line: self.line(&addr.span),
                            file,
                            growsdown,
                        });
                    }
                }
            }
        }

        // The initial state (it runs before every thread, wherever the block is).
        let mut init_maps: Vec<Mapping> = Vec::new();
        for item in &items {
            if let Item::Init { ops, .. } = item {
                for op in ops {
                    let setup = self.resolve_setup(geo, op, &mut init_maps)?;
                    s.setup.push(setup);
                }
            }
        }

        // Threads and variants, in file order.
        let mut thread_names: HashMap<&str, Range<usize>> = HashMap::new();
        let mut thread_index: HashMap<&str, usize> = HashMap::new();
        let mut variant_names: HashMap<&str, Range<usize>> = HashMap::new();
        let mut expected_for: HashMap<Option<&str>, Range<usize>> = HashMap::new();
        for item in &items {
            match item {
                Item::Thread { name, ops } => {
                    if let Some(first) = thread_names.get(name.v) {
                        return Err(self.dup(
                            &format!("thread name '{}'", name.v),
                            first,
                            &name.span,
                        ));
                    }
                    if thread_names.len() == MAX_THREADS {
                        return Err(self.err(
                            name.span.clone(),
                            format!(
                                "too many threads: at most {MAX_THREADS} (the explorer gives each thread a CPU and keeps one for RCU callbacks)"
                            ),
                        ));
                    }
                    thread_index.insert(name.v, thread_names.len());
                    thread_names.insert(name.v, name.span.clone());
                    let mut prog = Vec::new();
                    for op in ops {
                        prog.push(self.resolve_op(geo, op, &init_maps, &thread_maps)?);
                    }
                    s.threads.push(prog);
                }
                Item::Variant { name, settings } => {
                    if let Some(first) = variant_names.get(name.v) {
                        return Err(self.dup(&format!("variant '{}'", name.v), first, &name.span));
                    }
                    let mut p = s.protocol.clone();
                    for st in settings {
                        p.set(st.key.v, st.value.v)
                            .map_err(|e| self.switch_err(st, e))?;
                    }
                    variant_names.insert(name.v, name.span.clone());
                    s.variants.push(Variant {
                        name: name.v.to_string(),
                        settings: settings
                            .iter()
                            .map(|st| (st.key.v.to_string(), st.value.v.to_string()))
                            .collect(),
                    });
                }
                _ => {}
            }
        }
        // A migration `init` leaves in flight runs on a CPU of its own after the RCU thread's:
        // reach patterns may name it `migration`.
        if s.setup.iter().any(|o| {
            matches!(
                o,
                SetupOp::Migrate {
                    unmap_only: true,
                    ..
                }
            )
        }) {
            thread_index.insert("migration", thread_names.len() + 1);
        }
        // Expectations may name variants declared anywhere in the file.
        let mut reach_spans: Vec<(Option<&str>, Range<usize>)> = Vec::new();
        for item in &items {
            if let Item::Expect { variants, verdict } = item {
                let mut reach_pattern = None;
                let verdict_v = match &verdict.v {
                    VerdictAst::Reach(r) => {
                        reach_pattern = Some((self.reach_pattern(r, &thread_index)?, &r.text));
                        Verdict::Clean
                    }
                    VerdictAst::Clean => Verdict::Clean,
                    VerdictAst::Violation(k) => {
                        let kind = ViolationKind::from_name(k.v).ok_or_else(|| {
                            let names: Vec<&str> =
                                ViolationKind::ALL.iter().map(|k| k.name()).collect();
                            self.err(
                                k.span.clone(),
                                format!(
                                    "unknown violation kind '{}' (known: {})",
                                    k.v,
                                    names.join(", ")
                                ),
                            )
                            .with_help(did_you_mean(k.v, &names))
                        })?;
                        Verdict::Violation(kind)
                    }
                };
                let targets: Vec<(Option<&str>, Range<usize>)> = if variants.is_empty() {
                    vec![(None, verdict.span.clone())]
                } else {
                    variants
                        .iter()
                        .map(|v| (Some(v.v), v.span.clone()))
                        .collect()
                };
                for (v, span) in targets {
                    if let Some(v) = v {
                        if !variant_names.contains_key(v) {
                            let known: Vec<&str> =
                                s.variants.iter().map(|x| x.name.as_str()).collect();
                            let list = if known.is_empty() {
                                "none declared".to_string()
                            } else {
                                known.join(", ")
                            };
                            return Err(self
                                .err(span, format!("unknown variant '{v}' (variants: {list})"))
                                .with_help(did_you_mean(v, &known).or_else(|| {
                                    Some(
                                        "declare it with 'variant NAME: SWITCH = VALUE, ...'"
                                            .into(),
                                    )
                                })));
                        }
                    }
                    if let Some((pattern, text)) = &reach_pattern {
                        reach_spans.push((v, span.clone()));
                        s.reach.push(crate::ReachExpectation {
                            variant: v.map(str::to_string),
                            pattern: pattern.clone(),
                            text: text.to_string(),
                        });
                        continue;
                    }
                    if let Some(first) = expected_for.get(&v) {
                        let what = match v {
                            Some(v) => format!("expectation for variant '{v}'"),
                            None => "expectation for the base protocol".to_string(),
                        };
                        return Err(self.dup(&what, first, &span));
                    }
                    expected_for.insert(v, span);
                    s.expect.push(Expectation {
                        variant: v.map(str::to_string),
                        verdict: verdict_v.clone(),
                    });
                }
            }
        }
        if s.threads.is_empty() {
            return Err(self
                .err(
                    scenario_kw.start..name.span.end,
                    format!("no threads: a scenario needs 1 to {MAX_THREADS} 'thread NAME {{ ... }}' blocks"),
                )
                .with_label("in this scenario"));
        }
        if s.expect.is_empty() {
            return Err(self
                .err(
                    scenario_kw.start..name.span.end,
                    "no 'expect' line: a scenario needs at least one expectation (e.g. 'expect clean')",
                )
                .with_label("in this scenario"));
        }
        // A reach line rides on its variant's verdict row.
        for (v, span) in &reach_spans {
            if !expected_for.contains_key(v) {
                let what = v.map_or("the base protocol".to_string(), |v| {
                    format!("variant '{v}'")
                });
                let line = v.map_or("expect clean".to_string(), |v| format!("expect {v}: clean"));
                return Err(self
                    .err(
                        span.clone(),
                        format!("a reach expectation for {what}, which has no verdict expectation"),
                    )
                    .with_help(Some(format!("add its verdict, e.g. '{line}'"))));
            }
        }
        let (spec, _) = s.reach_spec();
        if spec.atoms.len() > 64 || spec.patterns.len() > 64 {
            let span = reach_spans.last().map_or(0..0, |(_, sp)| sp.clone());
            return Err(self.err(
                span,
                "too many reach expectations: at most 64 distinct patterns and 64 distinct thread states",
            ));
        }
        Ok(s)
    }

    pub(super) fn addr_err(
        &self,
        geo: Geometry,
        a: &Sp<Addr>,
    ) -> impl Fn(AddrError) -> ParseError + '_ {
        let span = a.span.clone();
        move |e| match e {
            AddrError::Overflow => self.err(
                span.clone(),
                format!(
                    "address {} is beyond the address space (TASK_SIZE {:#x} for {geo})",
                    self.text.get(span.clone()).unwrap_or("?"),
                    geo.task_size()
                ),
            ),
        }
    }

    /// Resolve and check an address: inside the address space.
    pub(super) fn addr(&self, geo: Geometry, a: &Sp<Addr>) -> Result<u64, ParseError> {
        let v = resolve_addr(geo, a.v).map_err(self.addr_err(geo, a))?;
        if v >= geo.task_size() {
            return Err(self.addr_err(geo, a)(AddrError::Overflow));
        }
        Ok(v)
    }

    /// Check a range: page-aligned start, `pages` >= 1, inside the address space. Its end.
    pub(super) fn range(
        &self,
        geo: Geometry,
        a: &Sp<Addr>,
        start: u64,
        pages: &Sp<u64>,
    ) -> Result<u64, ParseError> {
        if !start.is_multiple_of(geo.page_size()) {
            return Err(self.err(
                a.span.clone(),
                format!(
                    "address {start:#x} is not page-aligned (pages are {:#x} bytes)",
                    geo.page_size()
                ),
            ));
        }
        if pages.v == 0 {
            return Err(self.err(pages.span.clone(), "pages must be at least 1, not 0"));
        }
        pages
            .v
            .checked_mul(geo.page_size())
            .and_then(|len| start.checked_add(len))
            .filter(|&end| end <= geo.task_size())
            .ok_or_else(|| {
                self.err(
                    pages.span.clone(),
                    format!(
                        "{} pages from {} run past the end of the address space (TASK_SIZE {:#x} for {geo})",
                        pages.v,
                        show_addr(geo, start),
                        geo.task_size()
                    ),
                )
            })
    }

    pub(super) fn outside(
        &self,
        geo: Geometry,
        a: &Sp<Addr>,
        v: u64,
        maps: &[Mapping],
        thread: bool,
    ) -> ParseError {
        let known = if maps.is_empty() {
            "none".to_string()
        } else {
            maps.iter()
                .map(|m| {
                    format!(
                        "{}..{} (line {})",
                        show_addr(geo, m.start),
                        show_addr(geo, m.end),
                        m.line
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let where_ = if thread {
            "mapped by 'init' or by any thread"
        } else {
            "mapped by 'init' before this line"
        };
        self.err(
            a.span.clone(),
            format!(
                "address {} is outside every VMA {where_} (VMAs: {known})",
                show_addr(geo, v)
            ),
        )
    }

    /// Check an mremap destination for the source `[start, end)`: page-aligned, inside the
    /// address space, apart from the source.
    pub(super) fn mremap_dest(
        &self,
        geo: Geometry,
        to: &Sp<Addr>,
        pages: &Sp<u64>,
        start: u64,
        end: u64,
    ) -> Result<u64, ParseError> {
        let new = self.addr(geo, to)?;
        let new_end = self.range(geo, to, new, pages)?;
        if new < end && start < new_end {
            return Err(self.err(
                to.span.clone(),
                format!(
                    "destination {}..{} overlaps the source {}..{} (mremap fails with EINVAL)",
                    show_addr(geo, new),
                    show_addr(geo, new_end),
                    show_addr(geo, start),
                    show_addr(geo, end)
                ),
            ));
        }
        Ok(new)
    }

    pub(super) fn resolve_setup(
        &self,
        geo: Geometry,
        op: &OpLine,
        maps: &mut Vec<Mapping>,
    ) -> Result<SetupOp, ParseError> {
        let inside = |a: &Sp<Addr>, maps: &[Mapping]| -> Result<u64, ParseError> {
            let v = self.addr(geo, a)?;
            if covered(maps.iter(), v) {
                Ok(v)
            } else {
                Err(self.outside(geo, a, v, maps, false))
            }
        };
        match &op.args {
            OpArgs::Mmap {
                addr,
                pages,
                backing,
                of,
                huge,
            } => {
                let start = self.addr(geo, addr)?;
                let end = self.range(geo, addr, start, pages)?;
                let backing = match of {
                    None => *backing,
                    Some(o) => {
                        let v = inside(o, maps)?;
                        if !maps.iter().any(|m| m.file && m.start <= v && v < m.end) {
                            return Err(self.err(
                                o.span.clone(),
                                format!(
                                    "'of {}' names an anonymous mapping: 'of' maps the shmem file mapped there",
                                    show_addr(geo, v)
                                ),
                            ));
                        }
                        Backing::SameFile {
                            of: v,
                            private: *backing == Backing::ShmemPrivate,
                        }
                    }
                };
                if let Some(m) = maps.iter().find(|m| m.start < end && start < m.end) {
                    return Err(self.err(
                        addr.span.clone(),
                        format!(
                            "mapping {}..{} overlaps the mapping from line {} (mmap fails with EEXIST)",
                            show_addr(geo, start),
                            show_addr(geo, end),
                            m.line
                        ),
                    ));
                }
                maps.push(Mapping {
                    start,
                    end,
                    line: self.line(&addr.span),
                    file: backing != Backing::AnonPrivate,
                    growsdown: false,
                });
                Ok(SetupOp::Mmap {
                    addr: start,
                    pages: pages.v,
                    backing,
                    huge: huge.is_some(),
                })
            }
            OpArgs::Store { addr, value } => {
                let v = inside(addr, maps)?;
                grow_stack(maps, v, geo.page_size());
                Ok(SetupOp::Store {
                    addr: v,
                    value: *value,
                })
            }
            OpArgs::Load { addr } => {
                let v = inside(addr, maps)?;
                grow_stack(maps, v, geo.page_size());
                Ok(SetupOp::Load { addr: v })
            }
            OpArgs::Retract { addr } => Ok(SetupOp::Retract {
                addr: inside(addr, maps)?,
            }),
            OpArgs::Migrate { addr, unmap } => Ok(SetupOp::Migrate {
                addr: inside(addr, maps)?,
                unmap_only: unmap.is_some(),
            }),
            OpArgs::MadvFree { addr, pages } => {
                let start = inside(addr, maps)?;
                self.range(geo, addr, start, pages)?;
                Ok(SetupOp::MadvFree {
                    addr: start,
                    pages: pages.v,
                })
            }
            OpArgs::MadvPageout { addr, pages } => {
                let start = inside(addr, maps)?;
                self.range(geo, addr, start, pages)?;
                Ok(SetupOp::MadvPageout {
                    addr: start,
                    pages: pages.v,
                })
            }
            OpArgs::UffdRegister {
                addr,
                pages,
                missing,
                wp,
            } => {
                let start = inside(addr, maps)?;
                self.range(geo, addr, start, pages)?;
                Ok(SetupOp::UffdRegister {
                    addr: start,
                    pages: pages.v,
                    missing: *missing,
                    wp: *wp,
                })
            }
            OpArgs::Munmap { addr, pages } => {
                let start = inside(addr, maps)?;
                let end = self.range(geo, addr, start, pages)?;
                unmap_range(maps, start, end);
                Ok(SetupOp::Munmap {
                    addr: start,
                    pages: pages.v,
                })
            }
            OpArgs::Mremap {
                addr,
                pages,
                to,
                dontunmap,
            } => {
                if let Some(d) = dontunmap {
                    return Err(self.err(
                        d.clone(),
                        "'dontunmap' is taken in threads only, not in init { }",
                    ));
                }
                let start = inside(addr, maps)?;
                let end = self.range(geo, addr, start, pages)?;
                let new = self.mremap_dest(geo, to, pages, start, end)?;
                let new_end = new + (end - start);
                let file = maps
                    .iter()
                    .any(|m| m.file && m.start < end && start < m.end);
                unmap_range(maps, start, end);
                if let Some(m) = maps.iter().find(|m| m.start < new_end && new < m.end) {
                    return Err(self.err(
                        to.span.clone(),
                        format!(
                            "destination {}..{} overlaps the mapping from line {} (mremap fails with EEXIST)",
                            show_addr(geo, new),
                            show_addr(geo, new_end),
                            m.line
                        ),
                    ));
                }
                maps.push(Mapping {
                    start: new,
                    end: new_end,
                    line: self.line(&to.span),
                    file,
                    growsdown: maps
                        .iter()
                        .any(|m| m.growsdown && m.start < end && start < m.end),
                });
                Ok(SetupOp::Mremap {
                    addr: start,
                    pages: pages.v,
                    new_addr: new,
                })
            }
            OpArgs::MmapStack { addr, pages } => {
                let start = self.addr(geo, addr)?;
                let end = self.range(geo, addr, start, pages)?;
                if let Some(m) = maps.iter().find(|m| m.start < end && start < m.end) {
                    return Err(self.err(
                        addr.span.clone(),
                        format!(
                            "mapping {}..{} overlaps the mapping from line {} (mmap fails with EEXIST)",
                            show_addr(geo, start),
                            show_addr(geo, end),
                            m.line
                        ),
                    ));
                }
                maps.push(Mapping {
                    start,
                    end,
                    line: self.line(&addr.span),
                    file: false,
                    growsdown: true,
                });
                Ok(SetupOp::MmapStack {
                    addr: start,
                    pages: pages.v,
                })
            }
            _ => {
                let allowed: Vec<&str> = OPS.iter().filter(|o| o.init).map(|o| o.name).collect();
                Err(self.err(
                    op.name_span.clone(),
                    format!(
                        "operation '{}' is not allowed in 'init' (init takes {})",
                        op.spec.name,
                        allowed.join(", ")
                    ),
                ))
            }
        }
    }

    pub(super) fn resolve_op(
        &self,
        geo: Geometry,
        op: &OpLine,
        init_maps: &[Mapping],
        thread_maps: &[Mapping],
    ) -> Result<Op, ParseError> {
        let inside = |a: &Sp<Addr>| -> Result<u64, ParseError> {
            let v = self.addr(geo, a)?;
            if covered(init_maps.iter().chain(thread_maps), v) {
                Ok(v)
            } else {
                let all: Vec<Mapping> = init_maps.iter().chain(thread_maps).copied().collect();
                Err(self.outside(geo, a, v, &all, true))
            }
        };
        // ADDR pages=N: inside a mapping, and the range inside the geometry.
        let span = |a: &Sp<Addr>, pages: &Sp<u64>| -> Result<(u64, u64), ParseError> {
            let start = inside(a)?;
            self.range(geo, a, start, pages)?;
            Ok((start, pages.v))
        };
        Ok(match &op.args {
            OpArgs::Load { addr } => Op::Load {
                addr: inside(addr)?,
            },
            OpArgs::Store { addr, value } => Op::Store {
                addr: inside(addr)?,
                value: *value,
            },
            OpArgs::Fault { addr, write } => Op::Fault {
                addr: inside(addr)?,
                write: *write,
            },
            OpArgs::RcuWalk { addr } => Op::RcuWalk {
                addr: inside(addr)?,
            },
            OpArgs::FolioWalk { addr, use_ } => Op::FolioWalk {
                addr: inside(addr)?,
                use_: *use_,
            },
            OpArgs::GupFast {
                addr,
                write,
                pin,
                value,
                fast_only,
            } => Op::GupFast {
                addr: inside(addr)?,
                write: *write,
                pin: *pin,
                value: *value,
                fast_only: *fast_only,
            },
            OpArgs::Munmap { addr, pages } => {
                let (addr, pages) = span(addr, pages)?;
                Op::Munmap { addr, pages }
            }
            OpArgs::DontNeed { addr, pages } => {
                let (addr, pages) = span(addr, pages)?;
                Op::DontNeed { addr, pages }
            }
            OpArgs::MadvFree { addr, pages } => {
                let (addr, pages) = span(addr, pages)?;
                Op::MadvFree { addr, pages }
            }
            OpArgs::MadvPageout { addr, pages } => {
                let (addr, pages) = span(addr, pages)?;
                Op::MadvPageout { addr, pages }
            }
            OpArgs::Check { addr, what } => Op::Check {
                addr: inside(addr)?,
                what: *what,
            },
            OpArgs::Migrate { addr, unmap } => {
                if let Some(span) = unmap {
                    return Err(self
                        .err(span.clone(), "'unmap' is for 'init' only")
                        .with_help(Some(
                            "a migration left in flight is another CPU's: start it in 'init' and \
                             its move pass runs on a CPU of its own while the threads run"
                                .to_string(),
                        )));
                }
                Op::Migrate {
                    addr: inside(addr)?,
                    unmap_only: false,
                }
            }
            OpArgs::TryToUnmap { addr } => Op::TryToUnmap {
                addr: inside(addr)?,
            },
            OpArgs::CollapsePteMapped { addr } => Op::CollapsePteMappedThp {
                addr: inside(addr)?,
            },
            OpArgs::Retract { addr } => Op::Retract {
                addr: inside(addr)?,
            },
            OpArgs::Fork => Op::Fork,
            OpArgs::SplitHugePage { addr, new_order } => {
                let new_order = match new_order {
                    Some(o) if o.v >= geo.pmd_order() as u64 || o.v == 1 => {
                        return Err(self.err(
                            o.span.clone(),
                            format!(
                                "new_order must be 0 or 2 to {} (below the PMD order of this geometry; an anon folio cannot be order 1)",
                                geo.pmd_order() - 1
                            ),
                        ))
                    }
                    Some(o) => o.v as u32,
                    None => 0,
                };
                Op::SplitHugePage {
                    addr: inside(addr)?,
                    new_order,
                }
            }
            OpArgs::ChildExit => Op::ChildExit,
            OpArgs::Mprotect { addr, pages, write } => {
                let (addr, pages) = span(addr, pages)?;
                Op::Mprotect {
                    addr,
                    pages,
                    write: *write,
                }
            }
            OpArgs::UffdRegister {
                addr,
                pages,
                missing,
                wp,
            } => {
                let (addr, pages) = span(addr, pages)?;
                Op::UffdRegister {
                    addr,
                    pages,
                    missing: *missing,
                    wp: *wp,
                }
            }
            OpArgs::UffdCopy { addr, value } => Op::UffdCopy {
                addr: inside(addr)?,
                value: *value,
            },
            OpArgs::UffdWp { addr, pages } => {
                let (addr, pages) = span(addr, pages)?;
                Op::UffdWp { addr, pages }
            }
            OpArgs::MmapStack { addr, pages } => {
                let start = self.addr(geo, addr)?;
                self.range(geo, addr, start, pages)?;
                Op::MmapStack {
                    addr: start,
                    pages: pages.v,
                }
            }
            OpArgs::UffdMove {
                addr,
                pages,
                to,
                allow_src_holes,
            } => {
                let (addr, pages) = span(addr, pages)?;
                let len = Sp {
                    v: pages,
                    span: to.span.clone(),
                };
                let (to, _) = span(to, &len)?;
                Op::UffdMove {
                    addr,
                    pages,
                    to,
                    allow_src_holes: *allow_src_holes,
                }
            }
            OpArgs::UffdUnprotect { addr, pages } => {
                let (addr, pages) = span(addr, pages)?;
                Op::UffdUnprotect { addr, pages }
            }
            OpArgs::UffdUnregister { addr, pages } => {
                let (addr, pages) = span(addr, pages)?;
                Op::UffdUnregister { addr, pages }
            }
            OpArgs::NumaHint { addr, pages } => {
                let (addr, pages) = span(addr, pages)?;
                Op::NumaHint { addr, pages }
            }
            OpArgs::RmapWalk { addr } => Op::RmapWalk {
                addr: inside(addr)?,
            },
            OpArgs::Truncate { addr } => Op::Truncate {
                addr: inside(addr)?,
            },
            OpArgs::PunchHole { addr, pages } => {
                let (addr, pages) = span(addr, pages)?;
                Op::PunchHole { addr, pages }
            }
            OpArgs::Collapse {
                addr,
                order,
                khugepaged,
            } => {
                let order = match order {
                    Some(o) if o.v == 0 || o.v > geo.pmd_order() as u64 => {
                        return Err(self.err(
                            o.span.clone(),
                            format!(
                                "order must be 1 to {} (the PMD order of this geometry)",
                                geo.pmd_order()
                            ),
                        ))
                    }
                    Some(o) => o.v as u32,
                    None => geo.pmd_order(),
                };
                Op::Collapse {
                    addr: inside(addr)?,
                    order,
                    khugepaged: *khugepaged,
                }
            }
            OpArgs::Mremap {
                addr,
                pages,
                to,
                dontunmap,
            } => {
                let start = inside(addr)?;
                let end = self.range(geo, addr, start, pages)?;
                Op::Mremap {
                    addr: start,
                    pages: pages.v,
                    new_addr: self.mremap_dest(geo, to, pages, start, end)?,
                    dontunmap: dontunmap.is_some(),
                }
            }
            OpArgs::Mmap {
                addr,
                pages,
                backing,
                of,
                huge,
            } => {
                if let Some(o) = of {
                    return Err(self.err(
                        o.span.clone(),
                        "'of' is only supported in 'init' (the file a thread's mmap would map may not exist yet)",
                    ));
                }
                if let Some(h) = huge {
                    return Err(self.err(
                        h.clone(),
                        "'huge' is only supported in 'init' (a thread's mmap cannot set VM_HUGEPAGE yet)",
                    ));
                }
                let start = self.addr(geo, addr)?;
                self.range(geo, addr, start, pages)?;
                Op::Mmap {
                    addr: start,
                    pages: pages.v,
                    backing: *backing,
                }
            }
        })
    }
}

/// An access at `v` below a stack mapping (and in no mapping) expands it down to `v`'s page.
fn grow_stack(maps: &mut [Mapping], v: u64, page_size: u64) {
    if maps.iter().any(|m| m.start <= v && v < m.end) {
        return;
    }
    if let Some(m) = maps
        .iter_mut()
        .filter(|m| m.growsdown && v < m.start)
        .min_by_key(|m| m.start)
    {
        m.start = v & !(page_size - 1);
    }
}

/// Take `[start, end)` out of `maps`, splitting mappings it cuts.
pub(super) fn unmap_range(maps: &mut Vec<Mapping>, start: u64, end: u64) {
    let mut out = Vec::with_capacity(maps.len() + 1);
    for m in maps.drain(..) {
        if m.end <= start || end <= m.start {
            out.push(m);
            continue;
        }
        if m.start < start {
            out.push(Mapping { end: start, ..m });
        }
        if end < m.end {
            out.push(Mapping { start: end, ..m });
        }
    }
    *maps = out;
}

pub(super) enum AddrError {
    Overflow,
}

/// The byte address of an address as written (`@N`: [`Scenario::page`]).
pub(super) fn resolve_addr(geo: Geometry, a: Addr) -> Result<u64, AddrError> {
    match a {
        Addr::Byte(b) => Ok(b),
        Addr::Page(p) => p
            .checked_mul(geo.page_size())
            .and_then(|off| off.checked_add(geo.pmd_size()))
            .ok_or(AddrError::Overflow),
    }
}

/// `0x201000 (@1)` for window pages, the hex address otherwise.
pub(super) fn show_addr(geo: Geometry, a: u64) -> String {
    let (base, ps) = (geo.pmd_size(), geo.page_size());
    if a >= base && (a - base).is_multiple_of(ps) {
        format!("{a:#x} (@{})", (a - base) / ps)
    } else {
        format!("{a:#x}")
    }
}
