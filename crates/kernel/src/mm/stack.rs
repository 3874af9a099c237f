//! Stack VMAs (`VM_GROWSDOWN`) and their expansion by faults: `mmap(MAP_GROWSDOWN)`,
//! `lock_mm_and_find_vma` (`mm/mmap_lock.c`, 6.15+; `mm/memory.c` 6.5–6.14), `expand_stack_locked`
//! and `expand_downwards` (`mm/vma.c`, ≈6.12–6.18).
//!
//! Since 8d7071af8907 ("mm: always expand the stack with the mmap write lock held", 6.5) a fault
//! below a stack VMA drops the mmap read lock, takes the write lock, looks the VMA up again and
//! expands it, then downgrades. Before (switch `stack.expand_write_lock = off`), `expand_stack`
//! ran under the mmap read lock, serialised against other expansions by the anon_vma lock and
//! `mm->page_table_lock` alone. The per-VMA-locked fault never expands: `lock_vma_under_rcu`
//! finds no VMA containing the address and the fault falls back here.
//!
//! `stack_guard_gap` is one page in the model (the kernel's default is 256 pages, settable with
//! the `stack_guard_gap=` boot parameter, which the model's small address spaces need).

use crate::mm::rmap::anon_vma_prepare;
use crate::mm::types::{MmStruct, VmFlags, Vma};
use crate::mm::vma::vm_area_alloc;
use crate::{Ctx, Errno};
use mmcheck_platform::{MmapReadGuard, MmapWriteGuard};
use std::sync::Arc;

/// `stack_guard_gap`, in pages (see the module doc).
pub const STACK_GUARD_GAP_PAGES: u64 = 1;

/// `mmap(addr, len, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_GROWSDOWN|
/// MAP_FIXED_NOREPLACE)`: a new `VM_GROWSDOWN` VMA. Stack VMAs are never merged with a
/// neighbour (their flags differ from a plain anonymous VMA's).
pub fn do_mmap_stack(cx: Ctx<'_>, mm: &MmStruct, addr: u64, len: u64) -> Result<u64, Errno> {
    let _f = cx.cpu.enter("do_mmap");
    let ps = cx.geo().page_size();
    if !addr.is_multiple_of(ps) || len == 0 {
        return Err(Errno::Einval);
    }
    let end = addr
        .checked_add(len.div_ceil(ps) * ps)
        .filter(|&e| e <= cx.geo().task_size())
        .ok_or(Errno::Einval)?;
    let w = mm.mmap_lock.write_lock(cx.cpu);
    if !mm.vmas_in(cx, addr, end).is_empty() {
        return Err(Errno::Eexist);
    }
    let flags =
        VmFlags::READ | VmFlags::WRITE | VmFlags::MAYWRITE | VmFlags::ACCOUNT | VmFlags::GROWSDOWN;
    let vma = vm_area_alloc(
        cx,
        mm,
        addr,
        end,
        addr >> cx.geo().page_shift,
        VmFlags(flags),
        None,
    );
    w.vma_mark_attached(&vma.lock);
    mm.tree_insert(cx, vma);
    drop(w);
    Ok(addr)
}

/// `lock_mm_and_find_vma`: the mmap read lock and the VMA containing `addr`, expanding a stack
/// VMA down to it if `addr` lies below one. `None` (nothing held) is `SIGSEGV`.
pub fn lock_mm_and_find_vma<'a>(
    cx: Ctx<'a>,
    mm: &'a MmStruct,
    addr: u64,
) -> Option<(MmapReadGuard<'a>, Arc<Vma>)> {
    let write_lock = cx.proto().stack_expand_write_lock;
    let _f = write_lock.then(|| cx.cpu.enter("lock_mm_and_find_vma"));
    let r = mm.mmap_lock.read_lock(cx.cpu);
    let vma = mm.find_vma(cx, addr)?;
    if vma.start(cx) <= addr {
        return Some((r, vma));
    }
    if !vma.flags(cx).has(VmFlags::GROWSDOWN) {
        return None;
    }
    if !write_lock {
        // Before 6.5: do_user_addr_fault's find_vma + expand_stack under the read lock.
        let _f = cx.cpu.enter("expand_stack");
        expand_downwards(cx, mm, None, &vma, addr).ok()?;
        return Some((r, vma));
    }
    // mmap_upgrade_trylock always fails: drop the read lock, take the write lock, and look the
    // VMA up again (it may have been unmapped, or expanded by another fault, meanwhile).
    drop(r);
    let w = mm.mmap_lock.write_lock(cx.cpu);
    let vma = if cx.proto().stack_relookup {
        mm.find_vma(cx, addr)?
    } else {
        vma // trust the VMA found under the dropped read lock
    };
    if vma.start(cx) > addr {
        if !vma.flags(cx).has(VmFlags::GROWSDOWN) {
            return None;
        }
        expand_stack_locked(cx, mm, &w, &vma, addr).ok()?;
    }
    Some((w.downgrade(), vma))
}

/// `expand_stack_locked` (mmap W held): a `VM_GROWSDOWN` VMA grows down.
pub fn expand_stack_locked(
    cx: Ctx<'_>,
    mm: &MmStruct,
    w: &MmapWriteGuard<'_>,
    vma: &Arc<Vma>,
    addr: u64,
) -> Result<(), Errno> {
    let _f = cx.cpu.enter("expand_stack_locked");
    expand_downwards(cx, mm, Some(w), vma, addr)
}

/// `expand_downwards`: move `vm_start` (and `vm_pgoff`) of `vma` down to `addr`'s page. `w` is
/// the mmap write guard (6.5+), `None` under the read lock (before 6.5). Checks the stack guard
/// gap to a non-stack accessible VMA below, prepares the anon_vma, write-locks the VMA (6.5+),
/// then under the anon_vma lock rechecks that no other fault expanded it meanwhile and updates
/// the range under `mm->page_table_lock` (which serialises expansions of VMAs with different
/// anon_vmas) with the anon_vma interval tree and the maple tree updated around it.
pub fn expand_downwards(
    cx: Ctx<'_>,
    mm: &MmStruct,
    w: Option<&MmapWriteGuard<'_>>,
    vma: &Arc<Vma>,
    addr: u64,
) -> Result<(), Errno> {
    let _f = cx.cpu.enter("expand_downwards");
    let ps = cx.geo().page_size();
    let address = addr & !(ps - 1);
    // Enforce stack_guard_gap against the VMA below (vma_prev).
    let (prev, _) = mm.neighbours(cx, vma.start(cx), vma.end(cx));
    if let Some(p) = prev {
        let f = p.flags(cx);
        let accessible = f.has(VmFlags::READ) || f.has(VmFlags::WRITE);
        if !f.has(VmFlags::GROWSDOWN)
            && accessible
            && address.saturating_sub(p.end(cx)) < STACK_GUARD_GAP_PAGES * ps
        {
            return Err(Errno::Enomem);
        }
    }
    // "We must make sure the anon_vma is allocated."
    let av = anon_vma_prepare(cx, mm, vma)?;
    // "Lock the VMA before expanding to prevent concurrent page faults."
    if let Some(w) = w {
        w.vma_start_write(&vma.lock);
    }
    let g = av.lock().write(cx.cpu);
    let mut res = Ok(());
    // "Somebody else might have raced and expanded it already."
    let (start, end, pgoff) = vma.range(cx);
    if cx.cpu.recheck("vm_start", address < start) {
        // Unsigned, as in the kernel: only a mutant without the recheck wraps (and gets ENOMEM).
        let grow = start.wrapping_sub(address) >> cx.geo().page_shift;
        if grow <= pgoff {
            // LOCKING: page_table_lock guards against concurrent expansions of VMAs that do not
            // share this anon_vma (under the mmap read lock, before 6.5).
            let ptl = mm.page_table_lock.lock(cx.cpu);
            let chain = vma.anon_vma_chain.read(&cx.cpu, |c| c.clone());
            for a in &chain {
                a.tree_remove(cx, vma); // anon_vma_interval_tree_pre_update_vma
            }
            mm.tree_remove(cx, start);
            vma.set_range(cx, address, end, pgoff - grow);
            mm.tree_insert(cx, vma.clone()); // vma_iter_store_overwrite
            for a in &chain {
                a.tree_insert(cx, vma.clone()); // anon_vma_interval_tree_post_update_vma
            }
            drop(ptl);
        } else {
            res = Err(Errno::Enomem);
        }
    }
    drop(g);
    res
}
