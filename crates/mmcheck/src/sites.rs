//! `mmcheck sites`: the mutation sites ([`mmcheck_platform::mutate`]) of the model, found by
//! running the scenarios with site recording on: every lock acquisition by (kernel function,
//! lock class) and every named recheck, with the kernel file of its function, the model source
//! lines that make it and the catalogue rows that reach it.
//!
//! Sites are found, not listed by hand: a lock the model takes is a site the first time a
//! scenario reaches it. Each row (a scenario under one of its protocols) is run with a fixed
//! number of random and PCT executions with fixed seeds, so the list is the same on every run.

use crate::check::{apply_overrides, Overrides};
use crate::input::Input;
use mmcheck_explore::{explore, Config, Mode};
use mmcheck_platform::{SiteKey, SiteKind};
use mmcheck_scenario::{KernelModel, Scenario};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// One site, as the rows found it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SiteRow {
    pub site: String,
    pub kind: String,
    pub func: String,
    /// The lockdep class or recheck name.
    pub class: String,
    /// The kernel source file of `func`.
    pub kernel_file: String,
    /// The model source lines that make it (`file:line`).
    pub places: Vec<String>,
    /// A call stack that reached it, outermost first.
    pub stack: Vec<String>,
    /// Every function on a stack that reached it.
    #[serde(skip, default)]
    pub callers: BTreeSet<String>,
    /// The rows (`file` or `file#variant`) that reach it.
    pub rows: BTreeSet<String>,
}

/// A scenario row: one scenario under its own protocol or one of its variants.
#[derive(Clone)]
pub struct Row {
    pub file: String,
    pub variant: Option<String>,
    pub scenario: Arc<Scenario>,
}

impl Row {
    pub fn name(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}#{v}", self.file),
            None => self.file.clone(),
        }
    }
}

/// The rows of the loaded inputs under the overrides (refused files are skipped: `check` reports
/// them). Every variant is a row.
pub fn rows(inputs: &[Input], o: &Overrides) -> Result<Vec<Row>, String> {
    let mut out = Vec::new();
    for i in inputs {
        let Input::Loaded { file, scenario } = i else {
            continue;
        };
        let s = apply_overrides(scenario, o).map_err(|e| format!("{file}: {e}"))?;
        let mut names: Vec<Option<String>> = vec![None];
        names.extend(s.variants.iter().map(|v| Some(v.name.clone())));
        for v in names {
            let sv = s
                .with_variant(v.as_deref())
                .map_err(|e| format!("{file}: {e}"))?;
            out.push(Row {
                file: file.clone(),
                variant: v,
                scenario: Arc::new(sv),
            });
        }
    }
    Ok(out)
}

/// The sites one row reaches in `executions` random and as many PCT executions.
pub fn row_sites(row: &Row, executions: u64) -> BTreeMap<SiteKey, mmcheck_platform::SiteInfo> {
    let model = Arc::new(KernelModel::new((*row.scenario).clone()).record_sites());
    if model.setup_error().is_some() {
        return BTreeMap::new();
    }
    for (mode, seed) in [(Mode::Random, 1), (Mode::Pct { depth: 3 }, 2)] {
        let cfg = Config {
            mode,
            seed,
            max_executions: Some(executions),
            ..Config::default()
        };
        explore(model.clone(), &cfg);
    }
    model.mutation().map(|m| m.sites()).unwrap_or_default()
}

/// Every site the rows reach, run on `jobs` threads (the result does not depend on `jobs`).
pub fn collect(rows: &[Row], executions: u64, jobs: usize) -> BTreeMap<SiteKey, SiteRow> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let found = parking_lot::Mutex::new(Vec::new());
    std::thread::scope(|sc| {
        for _ in 0..jobs.max(1) {
            sc.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(row) = rows.get(i) else { break };
                let s = row_sites(row, executions);
                found.lock().push((i, s));
            });
        }
    });
    let mut found = found.into_inner();
    found.sort_by_key(|(i, _)| *i);
    let mut out: BTreeMap<SiteKey, SiteRow> = BTreeMap::new();
    for (i, sites) in found {
        for (key, info) in sites {
            let e = out.entry(key.clone()).or_insert_with(|| SiteRow {
                site: key.to_string(),
                kind: info.kind.to_string(),
                func: key.func.clone(),
                class: key.class.clone(),
                kernel_file: String::new(),
                places: Vec::new(),
                stack: info.stack.iter().map(|s| s.to_string()).collect(),
                callers: BTreeSet::new(),
                rows: BTreeSet::new(),
            });
            e.callers.extend(info.callers.iter().map(|s| s.to_string()));
            let mut places: BTreeSet<String> = e.places.iter().cloned().collect();
            places.extend(info.places.iter().map(|(f, l)| format!("{f}:{l}")));
            e.places = places.into_iter().collect();
            e.rows.insert(rows[i].name());
        }
    }
    for r in out.values_mut() {
        r.kernel_file = kernel_file(&r.func, r.places.first().map_or("", |p| p.as_str())).into();
    }
    out
}

/// The kernel file of a model function: by name where the model file holds functions of several
/// kernel files, else the model file's own.
pub fn kernel_file(func: &str, place: &str) -> &'static str {
    const BY_FUNC: &[(&str, &str)] = &[
        ("pte_offset_map", "mm/pgtable-generic.c"),
        ("pmdp_", "mm/pgtable-generic.c"),
        ("lock_vma_under_rcu", "mm/mmap_lock.c"),
        ("lock_mm_and_find_vma", "mm/mmap_lock.c"),
        ("do_user_addr_fault", "arch/x86/mm/fault.c"),
        ("gup_fast", "mm/gup.c"),
        ("folio_walk", "mm/pagewalk.c"),
        ("madvise_collapse", "mm/khugepaged.c"),
        ("hpage_collapse", "mm/khugepaged.c"),
        ("collapse_", "mm/khugepaged.c"),
        ("retract_page_tables", "mm/khugepaged.c"),
        ("try_to_migrate", "mm/rmap.c"),
        ("try_to_unmap", "mm/rmap.c"),
        ("page_vma_mapped_walk", "mm/page_vma_mapped.c"),
        ("rmap_walk", "mm/rmap.c"),
        ("folio_referenced", "mm/rmap.c"),
        ("remove_migration_pte", "mm/migrate.c"),
        ("migrat", "mm/migrate.c"),
        ("copy_page_range", "mm/memory.c"),
        ("copy_pte_range", "mm/memory.c"),
        ("copy_pmd_range", "mm/memory.c"),
        ("copy_huge_pmd", "mm/huge_memory.c"),
        ("dup_mmap", "mm/mmap.c"),
        ("anon_vma_fork", "mm/rmap.c"),
        ("expand_", "mm/mmap.c"),
        ("do_swap_page", "mm/memory.c"),
        ("__split_huge_pmd", "mm/huge_memory.c"),
        ("change_huge_pmd", "mm/huge_memory.c"),
        ("move_huge_pmd", "mm/huge_memory.c"),
        ("madvise_free_huge_pmd", "mm/huge_memory.c"),
        ("zap_huge_pmd", "mm/huge_memory.c"),
        ("move_pages_huge_pmd", "mm/huge_memory.c"),
        ("user_", "(user space)"),
    ];
    if let Some((_, f)) = BY_FUNC.iter().find(|(p, _)| func.starts_with(p)) {
        return f;
    }
    const BY_MODEL_FILE: &[(&str, &str)] = &[
        ("mm/folio.rs", "mm/swap.c"),
        ("mm/fork.rs", "kernel/fork.c"),
        ("mm/gup.rs", "mm/gup.c"),
        ("mm/huge_memory.rs", "mm/huge_memory.c"),
        ("mm/khugepaged.rs", "mm/khugepaged.c"),
        ("mm/khugepaged_file.rs", "mm/khugepaged.c"),
        ("mm/madvise_collapse.rs", "mm/khugepaged.c"),
        ("mm/madvise.rs", "mm/madvise.c"),
        ("mm/memory.rs", "mm/memory.c"),
        ("mm/migrate.rs", "mm/migrate.c"),
        ("mm/mmu_gather.rs", "mm/mmu_gather.c"),
        ("mm/mprotect.rs", "mm/mprotect.c"),
        ("mm/mremap.rs", "mm/mremap.c"),
        ("mm/pagewalk.rs", "mm/pagewalk.c"),
        ("mm/pgtable.rs", "mm/memory.c"),
        ("mm/rmap.rs", "mm/rmap.c"),
        ("mm/shmem.rs", "mm/shmem.c"),
        ("mm/split_huge_page.rs", "mm/huge_memory.c"),
        ("mm/stack.rs", "mm/mmap.c"),
        ("mm/swap_state.rs", "mm/swap_state.c"),
        ("mm/swapfile.rs", "mm/swapfile.c"),
        ("mm/swapin.rs", "mm/memory.c"),
        ("mm/tlb_batch.rs", "mm/rmap.c"),
        ("mm/userfaultfd_move.rs", "mm/userfaultfd.c"),
        ("mm/userfaultfd.rs", "mm/userfaultfd.c"),
        ("mm/vma.rs", "mm/vma.c"),
        ("mm/vmscan.rs", "mm/vmscan.c"),
        ("mm/zap.rs", "mm/memory.c"),
        ("arch/fault.rs", "arch/x86/mm/fault.c"),
        ("model.rs", "(user space)"),
    ];
    BY_MODEL_FILE
        .iter()
        .find(|(m, _)| place.split(':').next().unwrap_or("").ends_with(m))
        .map_or("?", |(_, f)| f)
}

/// The `sites` table.
pub fn render(sites: &BTreeMap<SiteKey, SiteRow>) -> String {
    let rows: Vec<Vec<String>> = sites
        .values()
        .map(|r| {
            vec![
                r.site.clone(),
                r.kind.clone(),
                r.kernel_file.clone(),
                r.places.first().cloned().unwrap_or_default()
                    + &if r.places.len() > 1 {
                        format!(" (+{})", r.places.len() - 1)
                    } else {
                        String::new()
                    },
                r.rows.len().to_string(),
            ]
        })
        .collect();
    let mut out = crate::table::table(
        &["site", "kind", "kernel file", "model", "rows"],
        &[false, false, false, false, true],
        &rows,
    );
    let locks = sites
        .values()
        .filter(|r| r.kind == SiteKind::Lock.to_string())
        .count();
    out.push_str(&format!(
        "\n{} sites: {locks} lock acquisitions, {} rechecks\n",
        sites.len(),
        sites.len() - locks
    ));
    out
}
