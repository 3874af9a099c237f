//! Names for traces: what the kernel would call an object (`&mm->mmap_lock`,
//! `vma[0x0-0x8000)->vm_refcnt`, `pte@0x5000 (table pfn 6, index 5)`, `folio pfn 5 (order 2)`).
//!
//! The step loop never builds a string. The model records small, fixed-size facts in a log when it
//! creates an object (an id belongs to a field of an owner), allocates frames, or links a table
//! into its parent; the log is kept only while recording a trace (a replay), never during
//! exploration. A report resolves an object at step `i` from the log as it stood at that step, so
//! a table frame freed and reused within one execution gets the name of its use at that time.

use crate::event::Obj;
use crate::frames::FrameKind;

/// An object that owns fields (a `struct mm_struct`, a VMA, ...), as named in traces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    Mm,
    /// A VMA and its range at the time (a range change logs the new range).
    Vma {
        start: u64,
        end: u64,
    },
    AnonVma,
    /// A file's `struct address_space` (`mapping`).
    Mapping,
}

/// One fact of the naming log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRec {
    /// `id` names an owner.
    Owner { id: u64, owner: Owner },
    /// The shared word or lock `id` is the field `field` of the owner `owner`.
    Field {
        id: u64,
        owner: u64,
        field: &'static str,
    },
    /// The shared word or lock `id` is a global (`huge_zero_folio`).
    Global { id: u64, name: &'static str },
    /// Frames `[pfn, pfn + (1 << order))` were allocated as `kind`.
    Alloc {
        pfn: u32,
        order: u8,
        kind: FrameKind,
    },
    /// Table `child` was linked into entry `idx` of table `parent`.
    Link { parent: u32, idx: u32, child: u32 },
    /// A check blames this object for the violation it reports (the slice starts from it).
    Blame(Obj),
}

/// Decodes an entry word of a level-`level` table (1 = PTE) into kernel words
/// (`present pfn 5 rw`, `migration(pfn 5)`); the kernel model provides it.
pub type EntryText = fn(level: u32, v: u64) -> String;

/// The naming log of one execution plus what resolving it needs: a value, copied out of the
/// machine when a trace is recorded.
#[derive(Clone, Debug, Default)]
pub struct Names {
    pub recs: Vec<NameRec>,
    /// log2 of the entries per table.
    pub bits: u32,
    pub page_shift: u32,
    pub entry_text: Option<EntryText>,
}

fn level_name(level: u32, top: bool) -> &'static str {
    if top {
        return "pgd";
    }
    match level {
        1 => "pte",
        2 => "pmd",
        3 => "pud",
        _ => "p4d",
    }
}

impl Names {
    /// The log as it stood before record `upto` (a step's `names` mark).
    fn upto(&self, upto: usize) -> &[NameRec] {
        &self.recs[..upto.min(self.recs.len())]
    }

    /// The latest allocation covering `pfn`: (head, order, kind).
    pub fn alloc_of(&self, pfn: u32, upto: usize) -> Option<(u32, u8, FrameKind)> {
        self.upto(upto).iter().rev().find_map(|r| match *r {
            NameRec::Alloc {
                pfn: h,
                order,
                kind,
            } if pfn >= h && (pfn as u64) < h as u64 + (1u64 << order) => Some((h, order, kind)),
            _ => None,
        })
    }

    /// The level of table `pfn` (1 = PTE table), if it is a table.
    pub fn table_level(&self, pfn: u32, upto: usize) -> Option<u32> {
        match self.alloc_of(pfn, upto)? {
            (_, _, FrameKind::Table(l)) => Some(l as u32),
            _ => None,
        }
    }

    /// The entry that linked table `pfn` (parent table, index), as of log position `upto`.
    pub fn parent_entry(&self, pfn: u32, upto: usize) -> Option<Obj> {
        self.link_of(pfn, upto)
            .map(|(parent, idx)| Obj::Entry { pfn: parent, idx })
    }

    /// The parent link of table `pfn` made since its allocation.
    fn link_of(&self, pfn: u32, upto: usize) -> Option<(u32, u32)> {
        for r in self.upto(upto).iter().rev() {
            match *r {
                NameRec::Link { parent, idx, child } if child == pfn => return Some((parent, idx)),
                NameRec::Alloc { pfn: h, order, .. }
                    if pfn >= h && (pfn as u64) < h as u64 + (1u64 << order) =>
                {
                    return None
                }
                _ => {}
            }
        }
        None
    }

    /// Bytes mapped by one entry of a level-`level` table.
    fn entry_span(&self, level: u32) -> u64 {
        1u64.checked_shl(self.page_shift + self.bits * level.saturating_sub(1))
            .unwrap_or(0)
    }

    /// The first address table `pfn` maps, and whether it is a top-level table; `None` if it
    /// is not linked (a fresh or withdrawn table).
    fn table_base(&self, pfn: u32, upto: usize) -> Option<(u64, bool)> {
        let mut base = 0u64;
        let mut cur = pfn;
        for _ in 0..8 {
            match self.link_of(cur, upto) {
                Some((parent, idx)) => {
                    let l = self.table_level(parent, upto)?;
                    base = base.wrapping_add(idx as u64 * self.entry_span(l));
                    cur = parent;
                }
                // A table nobody links to: the top level (a pgd), or an unlinked table.
                None => return self.is_top(cur, upto).then_some((base, cur == pfn)),
            }
        }
        None
    }

    /// True if table `pfn` is the highest-level table allocated so far (a pgd).
    fn is_top(&self, pfn: u32, upto: usize) -> bool {
        let Some(l) = self.table_level(pfn, upto) else {
            return false;
        };
        !self
            .upto(upto)
            .iter()
            .any(|r| matches!(*r, NameRec::Alloc { kind: FrameKind::Table(k), .. } if k as u32 > l))
    }

    fn owner_text(&self, owner: u64, upto: usize) -> String {
        let recs = self.upto(upto);
        let found = recs.iter().rev().find_map(|r| match *r {
            NameRec::Owner { id, owner: o } if id == owner => Some(o),
            _ => None,
        });
        let Some(o) = found else {
            return format!("obj#{owner}");
        };
        let base = match o {
            Owner::Mm => "mm".to_string(),
            Owner::Vma { start, end } => return format!("vma[{start:#x}-{end:#x})"),
            Owner::AnonVma => "anon_vma".to_string(),
            Owner::Mapping => "mapping".to_string(),
        };
        // Several of a kind (a forked child's mm, a second anon_vma): number them in creation
        // order, the first unnumbered.
        let nth = recs
            .iter()
            .filter_map(|r| match *r {
                NameRec::Owner { id, owner: k }
                    if std::mem::discriminant(&k) == std::mem::discriminant(&o) =>
                {
                    Some(id)
                }
                _ => None,
            })
            .fold(Vec::new(), |mut v, id| {
                if !v.contains(&id) {
                    v.push(id);
                }
                v
            })
            .iter()
            .position(|&id| id == owner)
            .unwrap_or(0);
        if nth == 0 {
            base
        } else {
            format!("{base}#{}", nth + 1)
        }
    }

    /// The name of shared word or lock `id`, if the log has one.
    fn id_text(&self, id: u64, lock: bool, upto: usize) -> Option<String> {
        let rec = self.upto(upto).iter().rev().find_map(|r| match *r {
            NameRec::Field {
                id: i,
                owner,
                field,
            } if i == id => Some((Some(owner), field)),
            NameRec::Global { id: i, name } if i == id => Some((None, name)),
            _ => None,
        })?;
        let amp = if lock { "&" } else { "" };
        Some(match rec {
            (Some(owner), field) => format!("{amp}{}->{field}", self.owner_text(owner, upto)),
            (None, name) => format!("{amp}{name}"),
        })
    }

    /// The name of an entry: `pte@0x5000 (table pfn 6, index 5)`.
    pub fn entry_name(&self, pfn: u32, idx: u32, upto: usize) -> String {
        let Some(level) = self.table_level(pfn, upto) else {
            return format!("entry[{idx}] of pfn {pfn} (not a table)");
        };
        match self.table_base(pfn, upto) {
            Some((base, top)) => {
                let va = base.wrapping_add(idx as u64 * self.entry_span(level));
                format!(
                    "{}@{va:#x} (table pfn {pfn}, index {idx})",
                    level_name(level, top)
                )
            }
            None => format!(
                "{}[{idx}] (unlinked table pfn {pfn})",
                level_name(level, false)
            ),
        }
    }

    /// A frame as a kernel developer names it: `folio pfn 5 (order 2)`, `PTE table pfn 6`.
    fn frame_text(&self, pfn: u32, upto: usize) -> String {
        match self.alloc_of(pfn, upto) {
            Some((_, _, FrameKind::Table(l))) => {
                format!(
                    "{} table pfn {pfn}",
                    level_name(l as u32, false).to_uppercase()
                )
            }
            Some((h, 0, FrameKind::Data)) if h == pfn => format!("folio pfn {pfn}"),
            Some((h, o, FrameKind::Data)) if h == pfn => format!("folio pfn {pfn} (order {o})"),
            Some((h, o, FrameKind::Data)) => {
                format!("page pfn {pfn} of folio pfn {h} (order {o})")
            }
            _ => format!("pfn {pfn}"),
        }
    }

    /// The name of `o` at the log position `upto` (a step's mark).
    pub fn obj(&self, o: Obj, upto: usize) -> String {
        match o {
            Obj::Lock(id) if id >= Obj::PAGE_LOCK_BASE => {
                format!(
                    "folio_lock({})",
                    self.frame_text((id - Obj::PAGE_LOCK_BASE) as u32, upto)
                )
            }
            Obj::Lock(id) if id >= Obj::PTL_BASE => format!("ptl(pfn {})", id - Obj::PTL_BASE),
            Obj::Lock(id) => self
                .id_text(id, true, upto)
                .unwrap_or_else(|| format!("lock#{id}")),
            Obj::Var(id) => self
                .id_text(id, false, upto)
                .unwrap_or_else(|| format!("var#{id}")),
            Obj::Entry { pfn, idx } => self.entry_name(pfn, idx, upto),
            Obj::Page { pfn, .. } => format!("struct page of {}", self.frame_text(pfn, upto)),
            Obj::Data(p) => format!("data of {}", self.frame_text(p, upto)),
            Obj::Frame { pfn, order: 0 } => self.frame_text(pfn, upto),
            Obj::Frame { pfn, order } => format!("pfn {pfn} (order {order})"),
            Obj::Alloc | Obj::AllocRange { .. } => "page allocator".into(),
            Obj::Rcu | Obj::RcuReaders(_) | Obj::RcuReady { .. } | Obj::RcuCall(_) => "rcu".into(),
            Obj::Irq(c) | Obj::IrqOn { cpu: c, .. } => format!("irq state of CPU{c}"),
            Obj::Tlb(c) => format!("TLB of CPU{c}"),
            Obj::Shootdown { .. } | Obj::TlbScanFrames(_) => "every CPU's TLB".into(),
            Obj::IpiWait(_) => "IRQ state of the IPI's targets".into(),
            Obj::TlbFill { cpu, .. } => format!("TLB of CPU{cpu}"),
            Obj::Hist(_) => "user-data history".into(),
            Obj::Choice { cpu, n } => format!("a choice of CPU{cpu} among {n}"),
        }
    }

    /// An entry word of table `pfn` decoded (`present pfn 5 rw`), else in hex.
    pub fn entry_value(&self, pfn: u32, v: u64, upto: usize) -> String {
        match (self.entry_text, self.table_level(pfn, upto)) {
            (Some(f), Some(l)) => f(l, v),
            _ => format!("{v:#x}"),
        }
    }

    /// The objects checks blamed for the violation (see [`crate::Cpu::blame`]).
    pub fn blamed(&self) -> Vec<Obj> {
        self.recs
            .iter()
            .filter_map(|r| match *r {
                NameRec::Blame(o) => Some(o),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(recs: Vec<NameRec>) -> Names {
        Names {
            recs,
            bits: 9,
            page_shift: 12,
            entry_text: None,
        }
    }

    fn alloc(pfn: u32, kind: FrameKind) -> NameRec {
        NameRec::Alloc {
            pfn,
            order: 0,
            kind,
        }
    }

    #[test]
    fn a_reused_table_is_named_by_its_use_at_each_step() {
        let n = names(vec![
            alloc(1, FrameKind::Table(3)),
            alloc(2, FrameKind::Table(2)),
            NameRec::Link {
                parent: 1,
                idx: 0,
                child: 2,
            },
            alloc(3, FrameKind::Table(1)),
            NameRec::Link {
                parent: 2,
                idx: 5,
                child: 3,
            },
            // mark 5: pfn 3 is the PTE table for [0xa00000, 0xc00000)
            alloc(3, FrameKind::Data),
            // mark 6: pfn 3 is a data page
            alloc(3, FrameKind::Table(1)),
            NameRec::Link {
                parent: 2,
                idx: 7,
                child: 3,
            },
            // mark 8: pfn 3 is the PTE table for [0xe00000, 0x1000000)
        ]);
        let e = Obj::Entry { pfn: 3, idx: 4 };
        assert_eq!(n.obj(e, 5), "pte@0xa04000 (table pfn 3, index 4)");
        assert_eq!(n.obj(Obj::Data(3), 6), "data of folio pfn 3");
        assert_eq!(n.obj(e, 8), "pte@0xe04000 (table pfn 3, index 4)");
        // Freshly allocated and not yet linked.
        assert_eq!(n.obj(e, 7), "pte[4] (unlinked table pfn 3)");
        assert_eq!(
            n.obj(Obj::Entry { pfn: 2, idx: 7 }, 8),
            "pmd@0xe00000 (table pfn 2, index 7)"
        );
        assert_eq!(
            n.obj(Obj::Entry { pfn: 1, idx: 0 }, 8),
            "pgd@0x0 (table pfn 1, index 0)"
        );
    }

    #[test]
    fn fields_are_named_by_owner_and_vmas_by_their_range_then() {
        let n = names(vec![
            NameRec::Owner {
                id: 1,
                owner: Owner::Mm,
            },
            NameRec::Field {
                id: 2,
                owner: 1,
                field: "mmap_lock",
            },
            NameRec::Owner {
                id: 3,
                owner: Owner::Vma {
                    start: 0,
                    end: 0x8000,
                },
            },
            NameRec::Field {
                id: 4,
                owner: 3,
                field: "vm_refcnt",
            },
            // mark 4
            NameRec::Owner {
                id: 3,
                owner: Owner::Vma {
                    start: 0x4000,
                    end: 0x8000,
                },
            },
            NameRec::Owner {
                id: 5,
                owner: Owner::Mm,
            },
            NameRec::Field {
                id: 6,
                owner: 5,
                field: "mmap_lock",
            },
        ]);
        assert_eq!(n.obj(Obj::Lock(2), 4), "&mm->mmap_lock");
        assert_eq!(n.obj(Obj::Var(4), 4), "vma[0x0-0x8000)->vm_refcnt");
        assert_eq!(n.obj(Obj::Var(4), 7), "vma[0x4000-0x8000)->vm_refcnt");
        assert_eq!(n.obj(Obj::Lock(6), 7), "&mm#2->mmap_lock");
        assert_eq!(n.obj(Obj::Var(99), 7), "var#99");
    }
}
