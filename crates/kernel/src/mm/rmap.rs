//! Anonymous reverse mapping structures (`mm/rmap.c`, ≈6.18): `anon_vma_prepare`,
//! `anon_vma_clone`, `anon_vma_fork`, `unlink_anon_vmas`, and the file-side `i_mmap` link and
//! unlink. The rmap walks themselves come with the seed mechanisms.

use crate::mm::types::{AnonVma, MmStruct, Vma};
use crate::{Ctx, Errno};
use mmcheck_platform::RwSem;
use parking_lot::Mutex;
use std::sync::Arc;

fn new_anon_vma(cx: Ctx<'_>, root: Option<Arc<AnonVma>>) -> Arc<AnonVma> {
    let m = &cx.k.machine;
    let av = Arc::new(AnonVma {
        id: m.new_id(),
        root,
        rwsem: RwSem::new(m.new_id()),
        tree: Mutex::new(Vec::new()),
    });
    cx.k.anon_vmas.lock().push(Arc::downgrade(&av));
    av
}

/// `anon_vma_prepare` (mmap lock held, read or write): give `vma` an anon_vma.
/// LOCKING: anon_vma lock, then `page_table_lock`, recheck, set (1.8: set under mmap R + ptl).
pub fn anon_vma_prepare(cx: Ctx<'_>, mm: &MmStruct, vma: &Arc<Vma>) -> Result<Arc<AnonVma>, Errno> {
    if let Some(av) = vma.anon_vma() {
        return Ok(av);
    }
    let _f = cx.cpu.enter("__anon_vma_prepare");
    let av = new_anon_vma(cx, None);
    let w = av.lock().write(cx.cpu);
    let ptl = mm.page_table_lock.lock(cx.cpu);
    let mut slot = vma.anon_vma.lock();
    let res = match &*slot {
        Some(existing) => existing.clone(),
        None => {
            *slot = Some(av.clone());
            vma.anon_vma_chain.lock().push(av.clone());
            av.tree_insert(vma.clone());
            av.clone()
        }
    };
    drop(slot);
    drop(ptl);
    drop(w);
    Ok(res)
}

/// `anon_vma_clone`: link `dst` into every anon_vma `src` is linked into.
pub fn anon_vma_clone(cx: Ctx<'_>, dst: &Arc<Vma>, src: &Vma) {
    let chain = src.anon_vma_chain.lock().clone();
    for av in chain {
        let w = av.lock().write(cx.cpu);
        av.tree_insert(dst.clone());
        dst.anon_vma_chain.lock().push(av.clone());
        drop(w);
    }
    *dst.anon_vma.lock() = src.anon_vma();
}

/// `anon_vma_fork`: the child VMA joins the parent's anon_vmas and gets its own, whose root is
/// the parent's root.
pub fn anon_vma_fork(cx: Ctx<'_>, dst: &Arc<Vma>, src: &Vma) {
    let _f = cx.cpu.enter("anon_vma_fork");
    let Some(parent) = src.anon_vma() else { return };
    anon_vma_clone(cx, dst, src);
    let root = parent.root.clone().unwrap_or(parent);
    let av = new_anon_vma(cx, Some(root));
    let w = av.lock().write(cx.cpu);
    av.tree_insert(dst.clone());
    dst.anon_vma_chain.lock().push(av.clone());
    *dst.anon_vma.lock() = Some(av.clone());
    drop(w);
}

/// `unlink_anon_vmas`: hide `vma` from every anon rmap walk.
pub fn unlink_anon_vmas(cx: Ctx<'_>, vma: &Vma) {
    let chain = std::mem::take(&mut *vma.anon_vma_chain.lock());
    if chain.is_empty() {
        return;
    }
    let _f = cx.cpu.enter("unlink_anon_vmas");
    for av in chain {
        let w = av.lock().write(cx.cpu);
        av.tree_remove(vma);
        drop(w);
    }
}

/// `vma_link_file` / `unlink_file_vma`: under `i_mmap_rwsem` write.
pub fn link_file_vma(cx: Ctx<'_>, vma: &Arc<Vma>) {
    if let Some(f) = &vma.file {
        let w = f.i_mmap_rwsem.write(cx.cpu);
        f.i_mmap_insert(vma.clone());
        drop(w);
    }
}

pub fn unlink_file_vma(cx: Ctx<'_>, vma: &Vma) {
    if let Some(f) = &vma.file {
        let _f = cx.cpu.enter("unlink_file_vma");
        let w = f.i_mmap_rwsem.write(cx.cpu);
        f.i_mmap_remove(vma);
        drop(w);
    }
}
