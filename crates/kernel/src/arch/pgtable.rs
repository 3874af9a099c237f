//! Page-table geometry and entry encoding, x86-64-like (`arch/x86/include/asm/pgtable_types.h`).
//!
//! Levels are numbered from the leaves: level 1 tables hold PTEs, level 2 tables hold PMDs, level 3
//! PUDs, and the top level is the PGD (P4D is folded, as on 4-level x86-64). A geometry is a
//! number of levels (2–5) and a power-of-two number of entries per table; x86-64 is 4 × 512.

use std::fmt;

/// The shape of the page tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub levels: u32,
    /// log2 of the entries per table.
    pub bits: u32,
    /// log2 of the page size.
    pub page_shift: u32,
}

/// Why a geometry is impossible.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GeometryError {
    #[error("levels must be 2 to 5, not {0}")]
    Levels(u32),
    #[error("entries per table must be a power of two from 4 to 512, not {0}")]
    Entries(u64),
}

impl Geometry {
    /// x86-64 with 4-level paging: 4 levels of 512 entries, 4 KiB pages.
    pub const X86_64: Geometry = Geometry {
        levels: 4,
        bits: 9,
        page_shift: 12,
    };

    /// A validated geometry.
    pub fn new(levels: u32, entries: u64) -> Result<Self, GeometryError> {
        if !(2..=5).contains(&levels) {
            return Err(GeometryError::Levels(levels));
        }
        if !(4..=512).contains(&entries) || !entries.is_power_of_two() {
            return Err(GeometryError::Entries(entries));
        }
        Ok(Geometry {
            levels,
            bits: entries.trailing_zeros(),
            page_shift: 12,
        })
    }

    pub fn entries(&self) -> usize {
        1 << self.bits
    }

    pub fn page_size(&self) -> u64 {
        1 << self.page_shift
    }

    /// Bytes mapped by one entry of a level-`level` table.
    pub fn shift(&self, level: u32) -> u32 {
        self.page_shift + self.bits * (level - 1)
    }

    /// Index of `addr` in a level-`level` table.
    pub fn index(&self, addr: u64, level: u32) -> usize {
        ((addr >> self.shift(level)) as usize) & (self.entries() - 1)
    }

    /// `PMD_SIZE`: bytes mapped by one PTE table.
    pub fn pmd_size(&self) -> u64 {
        1 << self.shift(2)
    }

    pub fn pmd_mask(&self) -> u64 {
        !(self.pmd_size() - 1)
    }

    /// Bytes mapped by one table of level `level` (`PUD_SIZE` for level 2, ...).
    pub fn table_span(&self, level: u32) -> u64 {
        1u64.checked_shl(self.shift(level + 1)).unwrap_or(0)
    }

    /// `HPAGE_PMD_ORDER`.
    pub fn pmd_order(&self) -> u32 {
        self.bits
    }

    /// The size of the user address space (`TASK_SIZE`), rounded to the top table.
    pub fn task_size(&self) -> u64 {
        1u64 << (self.page_shift + self.bits * self.levels).min(63)
    }

    pub fn page_align_down(&self, addr: u64) -> u64 {
        addr & !(self.page_size() - 1)
    }
}

impl fmt::Display for Geometry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} levels x {} entries", self.levels, self.entries())
    }
}

/// An entry word at any level.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Entry(pub u64);

impl Entry {
    pub const PRESENT: u64 = 1 << 0;
    pub const RW: u64 = 1 << 1;
    pub const USER: u64 = 1 << 2;
    pub const ACCESSED: u64 = 1 << 5;
    pub const DIRTY: u64 = 1 << 6;
    /// `_PAGE_PSE`: a leaf at PMD (or PUD) level.
    pub const PSE: u64 = 1 << 7;
    /// `_PAGE_SPECIAL`: no `struct page` refcounting (the zero page).
    pub const SPECIAL: u64 = 1 << 9;
    /// `_PAGE_PROTNONE` (x86 reuses `_PAGE_GLOBAL`): a NUMA-hinting entry, `PRESENT` clear so
    /// the hardware faults on it, while software still sees it present (`pte_present`).
    pub const PROTNONE: u64 = 1 << 8;
    /// arm64's `PTE_PRESENT_INVALID` (`PMD_PRESENT_INVALID` before 6.10): set by `pmd_mkinvalid`
    /// with the valid bit cleared, so that software still reads the entry as present
    /// (`pmd_present`) while the hardware faults on it. The model's x86 encoding of an
    /// invalidated huge PMD keeps `PSE` instead; this bit appears only where the model follows
    /// arm64's `pmd_mkinvalid` of a *non-present* PMD (`arch.pmd_mkinvalid_nonpresent =
    /// reads_present`, the bug 3a5a8d343e1c fixed).
    pub const PRESENT_INVALID: u64 = 1 << 11;
    /// `_PAGE_UFFD_WP` (x86 `_PAGE_BIT_SOFTW2`): a present PTE write-protected by userfaultfd;
    /// a write faults into `handle_userfault(VM_UFFD_WP)` even where the VMA allows it.
    pub const UFFD_WP: u64 = 1 << 10;
    const PFN_SHIFT: u32 = 12;
    const PFN_MASK: u64 = ((1 << 40) - 1) << 12;
    /// Non-present software entries: the type lives in bits 1..=5.
    const SWP_TYPE_SHIFT: u32 = 1;
    pub const SWP_MIGRATION_READ: u64 = 1;
    pub const SWP_MIGRATION_WRITE: u64 = 2;
    pub const SWP_MARKER: u64 = 3;
    /// `SWP_MIGRATION_READ_EXCLUSIVE`: a read-only migration entry of a `PageAnonExclusive` page.
    pub const SWP_MIGRATION_READ_EXCLUSIVE: u64 = 4;
    /// `PTE_MARKER_UFFD_WP`: the marker bit of a uffd-wp marker (the offset of a marker entry).
    pub const PTE_MARKER_UFFD_WP: u32 = 1;
    /// A swap entry of the model's one swap device (`swp_entry(0, offset)`): the offset is the
    /// slot. x86 keeps the type in the entry's high bits; the model gives the device its own type
    /// number so that it never reads as a migration entry or a marker.
    pub const SWP_SWAPFILE: u64 = 8;
    /// The same with `_PAGE_SWP_EXCLUSIVE` set (`pte_swp_mkexclusive`): the page was
    /// `PageAnonExclusive` when it was unmapped.
    pub const SWP_SWAPFILE_EXCLUSIVE: u64 = 9;

    pub const NONE: Entry = Entry(0);

    /// `_PAGE_TABLE`: a non-leaf entry pointing to the table at `pfn`.
    pub fn table(pfn: u32) -> Entry {
        Entry(
            Self::PRESENT
                | Self::RW
                | Self::USER
                | Self::ACCESSED
                | (pfn as u64) << Self::PFN_SHIFT,
        )
    }

    /// `mk_pte`: a present leaf PTE.
    pub fn leaf(pfn: u32, write: bool, dirty: bool) -> Entry {
        let mut v = Self::PRESENT | Self::USER | Self::ACCESSED | (pfn as u64) << Self::PFN_SHIFT;
        if write {
            v |= Self::RW;
        }
        if dirty {
            v |= Self::DIRTY;
        }
        Entry(v)
    }

    /// A huge leaf PMD.
    pub fn huge(pfn: u32, write: bool, dirty: bool) -> Entry {
        Entry(Self::leaf(pfn, write, dirty).0 | Self::PSE)
    }

    /// A non-present software entry (swap, migration, marker).
    pub fn swp(ty: u64, offset: u32) -> Entry {
        Entry(ty << Self::SWP_TYPE_SHIFT | (offset as u64) << Self::PFN_SHIFT)
    }

    pub fn is_none(self) -> bool {
        self.0 == 0
    }

    /// `make_pte_marker(PTE_MARKER_UFFD_WP)`: a none-like PTE that remembers the uffd-wp state
    /// of an unmapped page of a file or shmem VMA. Not `pte_none`: every emptiness check sees
    /// it as an entry.
    pub fn uffd_wp_marker() -> Entry {
        Entry::swp(Self::SWP_MARKER, Self::PTE_MARKER_UFFD_WP)
    }

    /// `is_pte_marker`.
    pub fn is_pte_marker(self) -> bool {
        !self.present()
            && !self.is_none()
            && self.0 & Self::PSE == 0
            && self.swp_type() == Self::SWP_MARKER
    }

    /// `pte_marker_entry_uffd_wp`.
    pub fn is_uffd_wp_marker(self) -> bool {
        self.is_pte_marker() && self.pfn() & Self::PTE_MARKER_UFFD_WP != 0
    }

    /// `pte_none_mostly`: none, or a marker (which a fill may replace).
    pub fn none_mostly(self) -> bool {
        self.is_none() || self.is_pte_marker()
    }

    /// `pte_uffd_wp` of a present PTE.
    pub fn uffd_wp(self) -> bool {
        self.present() && self.0 & Self::UFFD_WP != 0
    }

    /// `pte_mkuffd_wp` (x86: the bit, and write-protected).
    pub fn mkuffd_wp(self) -> Entry {
        self.with(Self::UFFD_WP).wrprotect()
    }

    /// `pte_present` / `pmd_present` as software sees it: a PROTNONE entry is present.
    pub fn present(self) -> bool {
        self.0 & (Self::PRESENT | Self::PROTNONE | Self::PRESENT_INVALID) != 0
    }

    /// A non-present PMD (a migration entry) passed through arm64's `pmd_mkinvalid`: software
    /// reads it as a present leaf whose pfn field holds the swap bits (I7's "type confusion").
    pub fn nonpresent_made_present(self) -> bool {
        self.0 & Self::PRESENT_INVALID != 0
    }

    /// `pmd_mkinvalid` of a non-present PMD (before 6.10 `__split_huge_pmd_locked` invalidated
    /// whatever it found). arm64 (`reads_present`): set `PRESENT_INVALID`, clear the valid bit;
    /// with the table bit clear it reads as a present block (here: `PSE`), the swap bits as its
    /// pfn. x86 (`!reads_present`): `pfn_pmd(pmd_pfn(pmd), flags & ~(PRESENT|PROTNONE))`: still
    /// not present and still a migration entry of the same type (the type bits 59-63 are flags),
    /// but `PHYSICAL_PMD_PAGE_MASK` clears the inverted offset's bits 12-20, so the offset's bits
    /// 3-11 read as ones: a migration entry that names another pfn.
    pub fn mkinvalid_nonpresent(self, reads_present: bool) -> Entry {
        if reads_present {
            Entry((self.0 & !Self::PRESENT) | Self::PRESENT_INVALID | Self::PSE)
        } else {
            Entry::swp(self.swp_type(), self.pfn() | 0xff8)
        }
    }

    /// What the hardware walker sees: `_PAGE_PRESENT` alone.
    pub fn hw_present(self) -> bool {
        self.0 & Self::PRESENT != 0
    }

    /// `pte_protnone` / `pmd_protnone`.
    pub fn protnone(self) -> bool {
        self.0 & (Self::PRESENT | Self::PROTNONE) == Self::PROTNONE
    }

    /// `pte_modify(pte, PAGE_NONE)`: keep the page, dirty and accessed bits; not accessible.
    pub fn mk_protnone(self) -> Entry {
        Entry((self.0 & !(Self::PRESENT | Self::RW)) | Self::PROTNONE)
    }

    /// `pte_modify(pte, vma->vm_page_prot)` back from PROTNONE, read-only (the caller adds
    /// write if `can_change_pte_writable`).
    pub fn mk_accessible(self) -> Entry {
        Entry((self.0 & !Self::PROTNONE) | Self::PRESENT)
    }

    pub fn write(self) -> bool {
        self.0 & Self::RW != 0
    }

    pub fn dirty(self) -> bool {
        self.0 & Self::DIRTY != 0
    }

    pub fn young(self) -> bool {
        self.0 & Self::ACCESSED != 0
    }

    pub fn special(self) -> bool {
        self.0 & Self::SPECIAL != 0
    }

    /// `pmd_trans_huge` / `pmd_leaf`.
    pub fn huge_leaf(self) -> bool {
        self.present() && self.0 & Self::PSE != 0
    }

    /// `pmd_trans_huge` (x86: `_PAGE_PSE` set): a huge leaf, PROTNONE or not, or one being
    /// rewritten (`pmdp_invalidate`: not present, still huge to software, which then waits on the
    /// PMD lock).
    pub fn pmd_trans_huge(self) -> bool {
        self.0 & Self::PSE != 0
    }

    /// A present entry pointing to a lower table (at a non-leaf level).
    pub fn is_table(self) -> bool {
        self.present() && self.0 & Self::PSE == 0
    }

    pub fn pfn(self) -> u32 {
        ((self.0 & Self::PFN_MASK) >> Self::PFN_SHIFT) as u32
    }

    pub fn swp_type(self) -> u64 {
        (self.0 >> Self::SWP_TYPE_SHIFT) & 0x1f
    }

    pub fn is_migration(self) -> bool {
        !self.present()
            && !self.is_none()
            && self.0 & Self::PSE == 0 // not an invalidated huge PMD (pmdp_invalidate)
            && matches!(
                self.swp_type(),
                Self::SWP_MIGRATION_READ
                    | Self::SWP_MIGRATION_WRITE
                    | Self::SWP_MIGRATION_READ_EXCLUSIVE
            )
    }

    /// A swap PTE for slot `offset` (`swp_entry_to_pte`, then `pte_swp_mkexclusive` if
    /// `exclusive`).
    pub fn swap(offset: u32, exclusive: bool) -> Entry {
        Entry::swp(
            if exclusive {
                Self::SWP_SWAPFILE_EXCLUSIVE
            } else {
                Self::SWP_SWAPFILE
            },
            offset,
        )
    }

    /// `is_swap_pte` and then a real swap entry (`!non_swap_entry`): a page of the swap device.
    pub fn is_swap_entry(self) -> bool {
        !self.present()
            && !self.is_none()
            && self.0 & Self::PSE == 0
            && matches!(
                self.swp_type(),
                Self::SWP_SWAPFILE | Self::SWP_SWAPFILE_EXCLUSIVE
            )
    }

    /// `pte_swp_exclusive`.
    pub fn swp_exclusive(self) -> bool {
        self.is_swap_entry() && self.swp_type() == Self::SWP_SWAPFILE_EXCLUSIVE
    }

    /// `pte_swp_clear_exclusive`.
    pub fn swp_clear_exclusive(self) -> Entry {
        if self.swp_exclusive() {
            Entry::swap(self.pfn(), false).with(self.0 & Self::UFFD_WP)
        } else {
            self
        }
    }

    /// `pte_swp_uffd_wp`: a swap or migration entry of a page userfaultfd write-protected (x86
    /// `_PAGE_SWP_UFFD_WP`; the model uses the present bit's position). The fault that maps the
    /// page again (`do_swap_page`, `remove_migration_pte`) maps it uffd-wp.
    pub fn swp_uffd_wp(self) -> bool {
        !self.present() && !self.is_pte_marker() && !self.is_none() && self.0 & Self::UFFD_WP != 0
    }

    /// `pte_swp_mkuffd_wp`.
    pub fn swp_mkuffd_wp(self) -> Entry {
        self.with(Self::UFFD_WP)
    }

    /// `pte_swp_clear_uffd_wp`.
    pub fn swp_clear_uffd_wp(self) -> Entry {
        self.without(Self::UFFD_WP)
    }

    /// `self` with `from`'s swap uffd-wp bit (a swap or migration entry rebuilt from another).
    pub fn swp_keep_uffd_wp(self, from: Entry) -> Entry {
        self.with(from.0 & Self::UFFD_WP)
    }

    /// `swp_offset` of a swap entry.
    pub fn swp_offset(self) -> u32 {
        self.pfn()
    }

    pub fn with(self, bits: u64) -> Entry {
        Entry(self.0 | bits)
    }

    pub fn without(self, bits: u64) -> Entry {
        Entry(self.0 & !bits)
    }

    /// `pte_wrprotect`.
    pub fn wrprotect(self) -> Entry {
        self.without(Self::RW)
    }
}

/// An entry word of a level-`level` table (1 = PTE) as a kernel developer writes it:
/// `none`, `table pfn 6`, `present pfn 5 rw dirty`, `huge pfn 512 ro`, `migration(pfn 5)`.
pub fn entry_text(level: u32, v: u64) -> String {
    let e = Entry(v);
    if e.is_none() {
        return "none".into();
    }
    if !e.present() && e.0 & Entry::PSE != 0 {
        return format!("huge pfn {} invalidated", e.pfn());
    }
    if e.nonpresent_made_present() {
        return format!(
            "migration(pfn {}) made present by pmd_mkinvalid (reads as huge pfn {})",
            e.pfn(),
            e.pfn()
        );
    }
    if !e.present() {
        return match e.swp_type() {
            Entry::SWP_MIGRATION_READ => format!("migration(pfn {})", e.pfn()),
            Entry::SWP_MIGRATION_WRITE => format!("migration(pfn {}, writable)", e.pfn()),
            Entry::SWP_MARKER if e.is_uffd_wp_marker() => "pte marker(uffd-wp)".into(),
            Entry::SWP_MARKER => "pte marker".into(),
            Entry::SWP_SWAPFILE => format!("swap(slot {})", e.pfn()),
            Entry::SWP_SWAPFILE_EXCLUSIVE => format!("swap(slot {}, exclusive)", e.pfn()),
            t => format!("swap(type {t}, offset {})", e.pfn()),
        };
    }
    if level > 1 && !e.huge_leaf() {
        return format!("table pfn {}", e.pfn());
    }
    let mut s = format!(
        "{} pfn {} {}",
        match (e.huge_leaf(), e.protnone()) {
            (true, false) => "huge",
            (true, true) => "huge protnone",
            (false, false) => "present",
            (false, true) => "protnone",
        },
        e.pfn(),
        if e.write() { "rw" } else { "ro" }
    );
    if e.dirty() {
        s.push_str(" dirty");
    }
    if e.special() {
        s.push_str(" special");
    }
    if e.uffd_wp() {
        s.push_str(" uffd-wp");
    }
    s
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_none() {
            return f.write_str("none");
        }
        if !self.present() {
            return match self.swp_type() {
                Self::SWP_MIGRATION_READ => write!(f, "migration-r({})", self.pfn()),
                Self::SWP_MIGRATION_WRITE => write!(f, "migration-w({})", self.pfn()),
                Self::SWP_MIGRATION_READ_EXCLUSIVE => write!(f, "migration-rx({})", self.pfn()),
                Self::SWP_MARKER => f.write_str("marker"),
                Self::SWP_SWAPFILE => write!(f, "swap({})", self.pfn()),
                Self::SWP_SWAPFILE_EXCLUSIVE => write!(f, "swap-x({})", self.pfn()),
                t => write!(f, "swp({t},{})", self.pfn()),
            };
        }
        write!(
            f,
            "{}pfn {}",
            if self.0 & Self::PSE != 0 { "huge " } else { "" },
            self.pfn()
        )?;
        for (b, c) in [
            (Self::RW, 'w'),
            (Self::ACCESSED, 'a'),
            (Self::DIRTY, 'd'),
            (Self::SPECIAL, 's'),
            (Self::UFFD_WP, 'u'),
        ] {
            if self.0 & b != 0 {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_geometry() {
        let g = Geometry::X86_64;
        assert_eq!(g.entries(), 512);
        assert_eq!(g.pmd_size(), 2 << 20);
        assert_eq!(g.shift(3), 30);
        assert_eq!(g.index(0x4000_0020_3000, 1), 3);
        assert_eq!(g.index(0x4000_0020_3000, 2), 1);
        assert_eq!(g.index(0x4000_0000_0000, 4), 128);
        assert_eq!(g.task_size(), 1 << 48);
        assert_eq!(g.table_span(1), 2 << 20);
    }

    #[test]
    fn entry_words_read_as_kernel_words() {
        assert_eq!(entry_text(1, 0), "none");
        assert_eq!(
            entry_text(1, Entry::leaf(5, true, false).0),
            "present pfn 5 rw"
        );
        assert_eq!(entry_text(2, Entry::table(6).0), "table pfn 6");
        assert_eq!(
            entry_text(1, Entry::swp(Entry::SWP_MIGRATION_READ, 5).0),
            "migration(pfn 5)"
        );
        assert_eq!(
            entry_text(2, Entry::huge(512, false, true).0),
            "huge pfn 512 ro dirty"
        );
    }

    #[test]
    fn bad_geometries() {
        assert_eq!(Geometry::new(1, 512), Err(GeometryError::Levels(1)));
        assert_eq!(Geometry::new(3, 12), Err(GeometryError::Entries(12)));
        assert_eq!(Geometry::new(3, 1024), Err(GeometryError::Entries(1024)));
        assert!(Geometry::new(2, 8).is_ok());
    }

    #[test]
    fn entry_encoding() {
        let t = Entry::table(77);
        assert!(t.present() && t.is_table() && !t.huge_leaf() && t.pfn() == 77);
        let l = Entry::leaf(5, true, false);
        assert!(l.write() && !l.dirty() && l.pfn() == 5);
        assert!(Entry::huge(512, false, false).huge_leaf());
        let m = Entry::swp(Entry::SWP_MIGRATION_WRITE, 9);
        assert!(m.is_migration() && !m.present() && m.pfn() == 9);
        assert!(Entry::NONE.is_none() && !Entry::NONE.present());
        assert!(!l.wrprotect().write());
    }

    #[test]
    fn pmd_mkinvalid_of_a_migration_entry() {
        let m = Entry::swp(Entry::SWP_MIGRATION_WRITE, 512);
        // arm64: reads as a present leaf, the hardware would fault on it.
        let a = m.mkinvalid_nonpresent(true);
        assert!(a.present() && a.huge_leaf() && !a.hw_present() && !a.is_migration());
        assert!(a.nonpresent_made_present() && !a.protnone());
        // x86: still a non-present migration entry of the same type, another offset.
        let x = m.mkinvalid_nonpresent(false);
        assert!(!x.present() && x.is_migration());
        assert_eq!(x.swp_type(), Entry::SWP_MIGRATION_WRITE);
        assert_ne!(x.pfn(), 512);
    }
}
