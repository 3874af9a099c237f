//! Runs a case on the host kernel. Each case runs in a `fork()`ed child (no exec) that performs
//! the ops with plain syscalls inside the window and, after every op, records the loaded value,
//! `VmPTE`, `Rss`, `AnonHugePages` and the window's pagemap present bits. Between the baseline
//! and the last op the child neither allocates nor touches new memory outside the window, so the
//! deltas are the window's alone: before the baseline it prefaults its buffers, its stack and
//! every ELF object's mappings (MADV_POPULATE_READ) and runs each kind of op once. Results go to
//! the parent over a pipe at the end.
//!
//! Host-wide THP events can make a run unrepresentative without any fault of the kernel under
//! test: a THP allocation that fails (fragmentation) and falls back, khugepaged collapsing a range
//! of the child behind its back (MADV_HUGEPAGE registers the mm and wakes it), or the deferred
//! split shrinker splitting an underused THP. The parent reads the matching `/proc/vmstat` and
//! khugepaged counters around each run and reports any change as noise ([`HostRun::noise`]).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::OnceLock;

use libc::{c_int, c_void};

use crate::case::{
    Backing, Case, CaseRunner, Observation, Op, PAGE_SIZE, REGION_BASE, REGION_PAGES,
};

/// Words in the present bitmap of one observation.
pub const PRESENT_WORDS: usize = (REGION_PAGES / 64) as usize;
/// Words per raw observation: load flag, load value, VmPTE, Rss, AnonHugePages, errno, present
/// bitmap.
const OBS_WORDS: usize = 6 + PRESENT_WORDS;
/// Offset of the present bitmap in a raw observation.
const PRESENT_AT: usize = 6;
/// Header: status, op index, errno, stage.
const HEADER_WORDS: usize = 4;
const PROC_BUF: usize = 16 * 1024;
const STACK_TOUCH: usize = 64 * 1024;
/// Op index reported for failures before the first op.
const SETUP: u64 = u64::MAX;

static STATUS_PATH: &[u8] = b"/proc/self/status\0";
static ROLLUP_PATH: &[u8] = b"/proc/self/smaps_rollup\0";
static PAGEMAP_PATH: &[u8] = b"/proc/self/pagemap\0";

/// What the host exposes; a missing feature means the matching observation field stays at its
/// default and should be masked by the comparer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HostFeatures {
    /// `/proc/self/pagemap` is readable and reports present bits.
    pub pagemap: bool,
    /// `/proc/self/smaps_rollup` has `Rss` and `AnonHugePages`.
    pub smaps_rollup: bool,
    /// `/proc/self/status` has `VmPTE`.
    pub vm_pte: bool,
    /// MADV_DONTNEED over a whole 2 MiB range frees the empty PTE table.
    pub pt_reclaim: bool,
    /// PMD-sized THP is enabled for anonymous memory (`always` or `madvise`), so faults in
    /// MADV_HUGEPAGE regions map huge PMDs.
    pub thp: bool,
    /// MADV_COLLAPSE collapses a populated aligned 2 MiB anonymous range (AnonHugePages 2048 kB).
    pub madv_collapse: bool,
}

/// Child-side failure points, as sent over the pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
enum Stage {
    OpenStatus = 1,
    OpenRollup,
    OpenPagemap,
    ReadStatus,
    ReadRollup,
    ReadPagemap,
    ParseStatus,
    ParseRollup,
    Mmap,
    Munmap,
    Madvise,
    MmapMisplaced,
    WindowNotEmpty,
    Mremap,
    MremapMisplaced,
    MadviseHugepage,
    Memfd,
    Fallocate,
    Ftruncate,
    Mprotect,
    Fork,
    ChildIo,
    ChildWait,
    MadviseFree,
    MadvisePageout,
}

impl Stage {
    const ALL: [Stage; 25] = [
        Stage::OpenStatus,
        Stage::OpenRollup,
        Stage::OpenPagemap,
        Stage::ReadStatus,
        Stage::ReadRollup,
        Stage::ReadPagemap,
        Stage::ParseStatus,
        Stage::ParseRollup,
        Stage::Mmap,
        Stage::Munmap,
        Stage::Madvise,
        Stage::MmapMisplaced,
        Stage::WindowNotEmpty,
        Stage::Mremap,
        Stage::MremapMisplaced,
        Stage::MadviseHugepage,
        Stage::Memfd,
        Stage::Fallocate,
        Stage::Ftruncate,
        Stage::Mprotect,
        Stage::Fork,
        Stage::ChildIo,
        Stage::ChildWait,
        Stage::MadviseFree,
        Stage::MadvisePageout,
    ];

    fn from_code(c: u64) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| *s as u64 == c)
    }

    fn name(self) -> &'static str {
        match self {
            Stage::OpenStatus => "open /proc/self/status",
            Stage::OpenRollup => "open /proc/self/smaps_rollup",
            Stage::OpenPagemap => "open /proc/self/pagemap",
            Stage::ReadStatus => "read /proc/self/status",
            Stage::ReadRollup => "read /proc/self/smaps_rollup",
            Stage::ReadPagemap => "pread /proc/self/pagemap",
            Stage::ParseStatus => "parse VmPTE",
            Stage::ParseRollup => "parse Rss/AnonHugePages",
            Stage::Mmap => "mmap",
            Stage::Munmap => "munmap",
            Stage::Madvise => "madvise(MADV_DONTNEED)",
            Stage::MmapMisplaced => "mmap (placed at another address)",
            Stage::WindowNotEmpty => "baseline (window not empty)",
            Stage::Mremap => "mremap(MREMAP_MAYMOVE | MREMAP_FIXED)",
            Stage::MremapMisplaced => "mremap (moved to another address)",
            Stage::MadviseHugepage => "madvise(MADV_HUGEPAGE)",
            Stage::Memfd => "memfd_create + ftruncate (more files than the child keeps?)",
            Stage::Fallocate => "fallocate(FALLOC_FL_PUNCH_HOLE)",
            Stage::Ftruncate => "ftruncate",
            Stage::Mprotect => "mprotect",
            Stage::Fork => "pipe2 + fork (the case's child process)",
            Stage::ChildIo => "talking to the case's child process",
            Stage::ChildWait => "waitpid (the case's child process)",
            Stage::MadviseFree => "madvise(MADV_FREE)",
            Stage::MadvisePageout => "madvise(MADV_PAGEOUT)",
        }
    }
}

/// Why a case could not be run on the host (an infrastructure failure, not a divergence).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("op {index} ({op:?}) is invalid in context (unmapped page or outside the window)")]
    InvalidOp { index: usize, op: Op },
    #[error("{call} failed: {}", errno_text(*errno))]
    Parent { call: &'static str, errno: i32 },
    #[error("op {index} ({op:?}): {call} failed: {}", errno_text(*errno))]
    Op {
        index: usize,
        op: Op,
        call: &'static str,
        errno: i32,
    },
    #[error("child setup: {call} failed: {}", errno_text(*errno))]
    ChildSetup { call: &'static str, errno: i32 },
    #[error("child reported unknown failure code {0}")]
    Unknown(u64),
    #[error("child killed by signal {0}")]
    Signal(i32),
    #[error("child exited with status {0}")]
    Exit(i32),
    #[error("short result from child: {got} of {want} bytes")]
    Short { got: usize, want: usize },
}

fn errno_text(errno: i32) -> String {
    if errno == 0 {
        return "no errno".to_string();
    }
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    let text = text.split(" (os error").next().unwrap_or_default();
    format!("errno {errno} ({text})")
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Features of this host, detected once (the `pt_reclaim` probe forks a child).
pub fn host_features() -> HostFeatures {
    static F: OnceLock<HostFeatures> = OnceLock::new();
    *F.get_or_init(detect_features)
}

fn detect_features() -> HostFeatures {
    let has = |path: &str, keys: &[&str]| {
        std::fs::read_to_string(path)
            .map(|s| keys.iter().all(|k| s.lines().any(|l| l.starts_with(k))))
            .unwrap_or(false)
    };
    let mut f = HostFeatures {
        pagemap: pagemap_works(),
        smaps_rollup: has("/proc/self/smaps_rollup", &["Rss:", "AnonHugePages:"]),
        vm_pte: has("/proc/self/status", &["VmPTE:"]),
        pt_reclaim: false,
        thp: thp_enabled(),
        madv_collapse: false,
    };
    if f.vm_pte {
        // Map a whole aligned 2 MiB, touch it, zap it all: VmPTE drops 4 kB if reclaimed.
        let probe = Case {
            ops: vec![
                Op::Mmap {
                    start: 512,
                    pages: 512,
                    backing: Backing::AnonPrivate,
                },
                Op::Store {
                    page: 512,
                    value: 1,
                },
                Op::DontNeed {
                    start: 512,
                    pages: 512,
                },
            ],
        };
        if let Ok(obs) = HostRunner::with_features(f).run_case(&probe) {
            f.pt_reclaim = obs[1].vm_pte_kb - obs[2].vm_pte_kb == 4;
        }
    }
    if f.smaps_rollup {
        let probe = Case {
            ops: vec![
                Op::Mmap {
                    start: 512,
                    pages: 512,
                    backing: Backing::AnonPrivate,
                },
                Op::Store {
                    page: 512,
                    value: 1,
                },
                Op::Collapse {
                    start: 512,
                    pages: 512,
                },
            ],
        };
        if let Ok(obs) = HostRunner::with_features(f).run_case(&probe) {
            f.madv_collapse = obs[2].errno == 0 && obs[2].anon_huge_kb == 2048;
        }
    }
    f
}

/// `/sys/kernel/mm/transparent_hugepage`: PMD-sized anonymous THP in `always` or `madvise` mode.
fn thp_enabled() -> bool {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let dir = "/sys/kernel/mm/transparent_hugepage";
    let global = read(&format!("{dir}/enabled"));
    let pmd = read(&format!("{dir}/hugepages-2048kB/enabled"));
    let on = |s: &str| s.contains("[always]") || s.contains("[madvise]");
    if pmd.contains("[inherit]") || pmd.is_empty() {
        on(&global)
    } else {
        on(&pmd)
    }
}

/// Whether pagemap reports the present bit of a touched stack variable.
fn pagemap_works() -> bool {
    let probe = std::hint::black_box([1u64; 1]);
    let addr = probe.as_ptr() as u64;
    // SAFETY: plain syscalls on a local fd and buffer.
    unsafe {
        let fd = libc::open(
            PAGEMAP_PATH.as_ptr().cast(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return false;
        }
        let mut e = 0u64;
        let r = libc::pread(
            fd,
            ptr::addr_of_mut!(e).cast(),
            8,
            ((addr / PAGE_SIZE) * 8) as libc::off_t,
        );
        libc::close(fd);
        r == 8 && e >> 63 == 1
    }
}

/// Runs cases on the host kernel, one forked child per case.
#[derive(Clone, Debug)]
pub struct HostRunner {
    features: HostFeatures,
}

impl Default for HostRunner {
    fn default() -> Self {
        Self::new()
    }
}

impl HostRunner {
    /// A runner reading every source the host has.
    pub fn new() -> Self {
        Self::with_features(host_features())
    }

    /// A runner reading only the sources enabled in `features` (the rest stay at defaults).
    pub fn with_features(features: HostFeatures) -> Self {
        HostRunner { features }
    }

    /// The features this runner reads.
    pub fn features(&self) -> HostFeatures {
        self.features
    }

    /// Run `case`, with a typed error.
    pub fn run_case(&self, case: &Case) -> Result<Vec<Observation>, HostError> {
        self.run_case_noted(case).map(|r| r.obs)
    }

    /// Run `case` and report host-wide noise seen during the run.
    pub fn run_case_noted(&self, case: &Case) -> Result<HostRun, HostError> {
        validate(case)?;
        if case.ops.is_empty() {
            return Ok(HostRun::default());
        }
        let before = noise_counters();
        let obs = self.run_child(case)?;
        let after = noise_counters();
        let mut noise: Vec<String> = after
            .iter()
            .filter_map(|&(name, v)| {
                let b = before.iter().find(|c| c.0 == name)?.1;
                (v != b).then(|| format!("{name} +{}", v.wrapping_sub(b)))
            })
            .collect();
        // MADV_COLLAPSE fails with ENOMEM only when the THP allocation failed (the generator never
        // covers a hole), which also shows where vmstat cannot be read.
        let enomem = case
            .ops
            .iter()
            .zip(&obs)
            .filter(|(op, o)| matches!(op, Op::Collapse { .. }) && o.errno == libc::ENOMEM)
            .count();
        if enomem > 0 {
            noise.push(format!("MADV_COLLAPSE ENOMEM +{enomem}"));
        }
        Ok(HostRun {
            obs,
            noise: (!noise.is_empty()).then(|| noise.join(", ")),
        })
    }

    fn run_child(&self, case: &Case) -> Result<Vec<Observation>, HostError> {
        let n = case.ops.len();
        let words = HEADER_WORDS + (n + 1) * OBS_WORDS;
        // Everything the child needs is allocated here, before fork.
        let mut out = vec![0u64; words];
        let mut status_buf = vec![0u8; PROC_BUF];
        let mut rollup_buf = vec![0u8; PROC_BUF];
        let mut pagemap_buf = vec![0u64; REGION_PAGES as usize];
        let populate = file_mappings();
        let mut fds = [0 as c_int; 2];
        // SAFETY: fds is a valid 2-int array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(HostError::Parent {
                call: "pipe2",
                errno: errno(),
            });
        }
        let (rfd, wfd) = (fds[0], fds[1]);
        // SAFETY: the child only makes async-signal-safe calls and never returns.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            let e = errno();
            // SAFETY: closing our own fds.
            unsafe {
                libc::close(rfd);
                libc::close(wfd);
            }
            return Err(HostError::Parent {
                call: "fork",
                errno: e,
            });
        }
        if pid == 0 {
            // SAFETY: closing the read end in the child.
            unsafe { libc::close(rfd) };
            let code = catch_unwind(AssertUnwindSafe(|| {
                let mut child = Child {
                    ops: &case.ops,
                    features: self.features,
                    out: &mut out,
                    status_buf: &mut status_buf,
                    rollup_buf: &mut rollup_buf,
                    pagemap_buf: &mut pagemap_buf,
                    fds: [-1; 3],
                    files: [-1; MAX_FILES],
                    nr_files: 0,
                    forked: None,
                };
                child.main(&populate, wfd)
            }))
            .unwrap_or(101);
            // SAFETY: leave without running any destructor or atexit handler.
            unsafe { libc::_exit(code) }
        }
        // SAFETY: closing the write end in the parent.
        unsafe { libc::close(wfd) };
        let mut raw = vec![0u8; words * 8];
        let got = read_full(rfd, &mut raw);
        // SAFETY: closing our read end.
        unsafe { libc::close(rfd) };
        let status = wait_child(pid)?;
        if libc::WIFSIGNALED(status) {
            return Err(HostError::Signal(libc::WTERMSIG(status)));
        }
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) != 0 {
            return Err(HostError::Exit(libc::WEXITSTATUS(status)));
        }
        if got != raw.len() {
            return Err(HostError::Short {
                got,
                want: raw.len(),
            });
        }
        let w: Vec<u64> = raw
            .chunks_exact(8)
            .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8])))
            .collect();
        self.decode(case, &w)
    }

    fn decode(&self, case: &Case, w: &[u64]) -> Result<Vec<Observation>, HostError> {
        if w[0] != 0 {
            let Some(stage) = Stage::from_code(w[3]) else {
                return Err(HostError::Unknown(w[3]));
            };
            let errno = w[2] as i32;
            return Err(match case.ops.get(w[1] as usize) {
                Some(op) if w[1] != SETUP => HostError::Op {
                    index: w[1] as usize,
                    op: *op,
                    call: stage.name(),
                    errno,
                },
                _ => HostError::ChildSetup {
                    call: stage.name(),
                    errno,
                },
            });
        }
        let slot = |i: usize| &w[HEADER_WORDS + i * OBS_WORDS..HEADER_WORDS + (i + 1) * OBS_WORDS];
        let base = slot(0);
        let f = self.features;
        let delta = |s: &[u64], k: usize, on: bool| {
            if on {
                s[k] as i64 - base[k] as i64
            } else {
                0
            }
        };
        Ok((0..case.ops.len())
            .map(|i| {
                let s = slot(i + 1);
                Observation {
                    load: (s[0] != 0).then_some(s[1]),
                    errno: s[5] as i32,
                    vm_pte_kb: delta(s, 2, f.vm_pte),
                    rss_kb: delta(s, 3, f.smaps_rollup),
                    anon_huge_kb: delta(s, 4, f.smaps_rollup),
                    present: if f.pagemap {
                        s[PRESENT_AT..].to_vec()
                    } else {
                        Vec::new()
                    },
                }
            })
            .collect())
    }
}

impl CaseRunner for HostRunner {
    fn name(&self) -> &str {
        "host"
    }

    fn run(&self, case: &Case) -> Result<Vec<Observation>, String> {
        self.run_case(case).map_err(|e| e.to_string())
    }

    fn run_noted(&self, case: &Case) -> Result<(Vec<Observation>, Option<String>), String> {
        self.run_case_noted(case)
            .map(|r| (r.obs, r.noise))
            .map_err(|e| e.to_string())
    }
}

/// One host run: the observations and the host-wide noise seen meanwhile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostRun {
    pub obs: Vec<Observation>,
    /// The noise counters that changed during the run (`"thp_fault_fallback +1"`, ...), if any.
    pub noise: Option<String>,
}

/// `/proc/vmstat` events that mean a THP allocation failed and the kernel fell back, or that the
/// deferred split shrinker split an underused THP: host-wide, not caused by the case.
const VMSTAT_NOISE: [&str; 4] = [
    "thp_fault_fallback",
    "thp_collapse_alloc_failed",
    "thp_zero_page_alloc_failed",
    "thp_underused_split_page",
];

/// khugepaged activity (collapses, completed scans), from sysfs.
const KHUGEPAGED_NOISE: [(&str, &str); 2] = [
    (
        "khugepaged/pages_collapsed",
        "/sys/kernel/mm/transparent_hugepage/khugepaged/pages_collapsed",
    ),
    (
        "khugepaged/full_scans",
        "/sys/kernel/mm/transparent_hugepage/khugepaged/full_scans",
    ),
];

/// Current values of the noise counters this host has.
fn noise_counters() -> Vec<(&'static str, u64)> {
    let mut out = Vec::new();
    if let Ok(v) = std::fs::read_to_string("/proc/vmstat") {
        for name in VMSTAT_NOISE {
            let n = v.lines().find_map(|l| {
                let (k, x) = l.split_once(' ')?;
                (k == name).then(|| x.trim().parse::<u64>().ok()).flatten()
            });
            if let Some(n) = n {
                out.push((name, n));
            }
        }
    }
    for (name, path) in KHUGEPAGED_NOISE {
        if let Some(n) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
        {
            out.push((name, n));
        }
    }
    out
}

/// Reject ops that would fault or reach outside the window in the child.
fn validate(case: &Case) -> Result<(), HostError> {
    let mut sh = crate::gen::Shadow::new();
    for (index, op) in case.ops.iter().enumerate() {
        let ok = match *op {
            // Accesses that would fault (SIGSEGV, SIGBUS) and child ops without a child.
            Op::Store { .. }
            | Op::Load { .. }
            | Op::Fork
            | Op::ChildLoad { .. }
            | Op::ChildStore { .. }
            | Op::ChildExit => sh.valid(op),
            Op::PunchHole { file, .. } | Op::Truncate { file, .. } => sh.file_size(file).is_some(),
            Op::Mmap { start, pages, .. }
            | Op::Munmap { start, pages }
            | Op::DontNeed { start, pages }
            | Op::Hugepage { start, pages }
            | Op::Mprotect { start, pages, .. }
            | Op::Free { start, pages }
            | Op::Pageout { start, pages }
            | Op::Collapse { start, pages } => crate::gen::in_window(start, pages),
            Op::Mremap {
                start,
                pages,
                new_start,
            } => crate::gen::in_window(start, pages) && crate::gen::in_window(new_start, pages),
        };
        if !ok {
            return Err(HostError::InvalidOp { index, op: *op });
        }
        // Ops the kernel will reject are left for the child to report.
        if sh.valid(op) {
            sh.apply(op);
        }
    }
    Ok(())
}

/// Readable mappings of the ELF objects (files with an executable mapping) of this process, to
/// prefault in the child before the baseline.
fn file_mappings() -> Vec<(usize, usize)> {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return Vec::new();
    };
    let parsed: Vec<(usize, usize, &str, &str)> = maps
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (a, b) = it.next()?.split_once('-')?;
            let perms = it.next()?;
            let path = it.nth(3)?;
            let a = usize::from_str_radix(a, 16).ok()?;
            let b = usize::from_str_radix(b, 16).ok()?;
            Some((a, b.checked_sub(a)?, perms, path))
        })
        .filter(|m| m.3.starts_with('/'))
        .collect();
    let is_elf = |path: &str| parsed.iter().any(|m| m.3 == path && m.2.contains('x'));
    parsed
        .iter()
        .filter(|m| m.2.starts_with('r') && is_elf(m.3))
        .map(|m| (m.0, m.1))
        .collect()
}

fn read_full(fd: c_int, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: reading into the unfilled tail of buf.
        let r = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        if r > 0 {
            got += r as usize;
        } else if r == 0 || errno() != libc::EINTR {
            break;
        }
    }
    got
}

fn wait_child(pid: libc::pid_t) -> Result<c_int, HostError> {
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Ok(status);
        }
        let e = errno();
        if e != libc::EINTR {
            return Err(HostError::Parent {
                call: "waitpid",
                errno: e,
            });
        }
    }
}

/// A child-side failure: op index (or SETUP), stage, errno.
struct Fail(u64, Stage, i32);

/// What an op returned: the value of a Load, the errno of a Collapse.
#[derive(Clone, Copy, Debug, Default)]
struct Done {
    load: Option<u64>,
    errno: i32,
}

/// The forked child's state. Only async-signal-safe calls and no allocation from here on.
struct Child<'a> {
    ops: &'a [Op],
    features: HostFeatures,
    out: &'a mut [u64],
    status_buf: &'a mut [u8],
    rollup_buf: &'a mut [u8],
    pagemap_buf: &'a mut [u64],
    /// status, smaps_rollup, pagemap (or -1).
    fds: [c_int; 3],
    /// The memfds of `ShmemPrivate` mappings, by number (kept open for punch and truncate).
    files: [c_int; MAX_FILES],
    nr_files: usize,
    /// The case's own child process (`Op::Fork`), if alive.
    forked: Option<Forked>,
}

/// The case's child process: its pid, the request pipe's write end and the reply pipe's read end.
#[derive(Clone, Copy, Debug)]
struct Forked {
    pid: libc::pid_t,
    req: c_int,
    reply: c_int,
}

/// Requests to the case's child, as `[command, page, value]` words.
const CHILD_LOAD: u64 = 1;
const CHILD_STORE: u64 = 2;
const CHILD_EXIT: u64 = 3;

/// Write all of `words` to `fd`; false on failure.
fn write_words(fd: c_int, words: &[u64]) -> bool {
    let bytes = std::mem::size_of_val(words);
    let p = words.as_ptr().cast::<u8>();
    let mut sent = 0;
    while sent < bytes {
        // SAFETY: writing from within `words`.
        let r = unsafe { libc::write(fd, p.add(sent).cast(), bytes - sent) };
        if r > 0 {
            sent += r as usize;
        } else if r == 0 || errno() != libc::EINTR {
            return false;
        }
    }
    true
}

/// Fill `words` from `fd`; false on EOF or failure.
fn read_words(fd: c_int, words: &mut [u64]) -> bool {
    let bytes = std::mem::size_of_val(words);
    let p = words.as_mut_ptr().cast::<u8>();
    let mut got = 0;
    while got < bytes {
        // SAFETY: reading into `words`.
        let r = unsafe { libc::read(fd, p.add(got).cast(), bytes - got) };
        if r > 0 {
            got += r as usize;
        } else if r == 0 || errno() != libc::EINTR {
            return false;
        }
    }
    true
}

/// The case's child: serve loads and stores in the window until told to exit (or the case's
/// process is gone). No allocation: it runs on the stack and the window only.
fn serve_child(req: c_int, reply: c_int) -> ! {
    let mut cmd = [0u64; 3];
    while read_words(req, &mut cmd) {
        let [what, page, value] = cmd;
        // SAFETY: the parent validated the page against the child's view (mapped, writable
        // for a store, not beyond a truncated file).
        let answer = unsafe {
            match what {
                CHILD_LOAD => ptr::read_volatile(addr(page) as *const u64),
                CHILD_STORE => {
                    ptr::write_volatile(addr(page) as *mut u64, value);
                    0
                }
                _ => break,
            }
        };
        if !write_words(reply, &[answer]) {
            break;
        }
    }
    // SAFETY: leave without running destructors.
    unsafe { libc::_exit(0) }
}

/// Files a case may create (a case has at most 40 ops).
const MAX_FILES: usize = 64;

/// Write every page of a buffer so it is faulted in before the baseline.
fn pretouch<T: Copy + Default>(buf: &mut [T]) {
    let step = (PAGE_SIZE as usize / std::mem::size_of::<T>().max(1)).max(1);
    for i in (0..buf.len()).step_by(step) {
        // SAFETY: i is in bounds.
        unsafe { ptr::write_volatile(buf.as_mut_ptr().add(i), T::default()) };
    }
    if let Some(last) = buf.last_mut() {
        // SAFETY: valid reference.
        unsafe { ptr::write_volatile(last, T::default()) };
    }
}

#[inline(never)]
fn pretouch_stack() {
    let mut buf = [0u8; STACK_TOUCH];
    pretouch(&mut buf);
    std::hint::black_box(&buf);
}

fn addr(page: u64) -> usize {
    (REGION_BASE + page * PAGE_SIZE) as usize
}

/// `pread` the whole file from offset 0; returns bytes read.
fn pread_all(fd: c_int, buf: &mut [u8]) -> Result<usize, i32> {
    let mut n = 0;
    while n < buf.len() {
        // SAFETY: reading into the unfilled tail of buf.
        let r = unsafe {
            libc::pread(
                fd,
                buf[n..].as_mut_ptr().cast(),
                buf.len() - n,
                n as libc::off_t,
            )
        };
        if r > 0 {
            n += r as usize;
        } else if r == 0 {
            break;
        } else {
            let e = errno();
            if e != libc::EINTR {
                return Err(e);
            }
        }
    }
    Ok(n)
}

/// The number after `key` at the start of a line, e.g. `VmPTE: 44 kB`.
pub(crate) fn find_number(buf: &[u8], key: &[u8]) -> Option<u64> {
    let n = buf.len();
    let mut i = 0;
    while i + key.len() <= n {
        if (i == 0 || buf[i - 1] == b'\n') && &buf[i..i + key.len()] == key {
            let mut j = i + key.len();
            while j < n && (buf[j] == b' ' || buf[j] == b'\t') {
                j += 1;
            }
            let mut v = 0u64;
            let digits_start = j;
            while j < n && buf[j].is_ascii_digit() {
                v = v
                    .saturating_mul(10)
                    .saturating_add(u64::from(buf[j] - b'0'));
                j += 1;
            }
            return (j > digits_start).then_some(v);
        }
        i += 1;
    }
    None
}

impl Child<'_> {
    /// Run everything, send the result, return the exit code.
    fn main(&mut self, populate: &[(usize, usize)], wfd: c_int) -> c_int {
        pretouch_stack();
        pretouch(self.out);
        pretouch(self.status_buf);
        pretouch(self.rollup_buf);
        pretouch(self.pagemap_buf);
        for &(a, len) in populate {
            // SAFETY: prefaulting readable file mappings; errors are harmless.
            unsafe { libc::madvise(a as *mut c_void, len, libc::MADV_POPULATE_READ) };
        }
        let mut res = self.body();
        if self.forked.is_some() {
            // The case's own child must not outlive the observations' process.
            let failed = self.child_exit().err();
            if let (Ok(()), Some((stage, e))) = (&res, failed) {
                res = Err(Fail(SETUP, stage, e));
            }
        }
        let header = match res {
            Ok(()) => [0, 0, 0, 0],
            Err(Fail(i, stage, e)) => [1, i, e as u64, stage as u64],
        };
        self.out[..HEADER_WORDS].copy_from_slice(&header);
        let bytes = self.out.len() * 8;
        let p = self.out.as_ptr().cast::<u8>();
        let mut sent = 0;
        while sent < bytes {
            // SAFETY: writing from within self.out.
            let r = unsafe { libc::write(wfd, p.add(sent).cast(), bytes - sent) };
            if r > 0 {
                sent += r as usize;
            } else if r == 0 || errno() != libc::EINTR {
                return 3;
            }
        }
        0
    }

    fn body(&mut self) -> Result<(), Fail> {
        // Stay on one CPU: new folios wait in per-CPU LRU batches, and MADV_FREE / MADV_PAGEOUT
        // drain only the current CPU's (lru_add_drain); a folio left in another CPU's batch is
        // not on the LRU, so it would be neither marked lazyfree nor reclaimed.
        // SAFETY: plain syscalls on this thread's own affinity.
        unsafe {
            let cpu = libc::sched_getcpu();
            if cpu >= 0 {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu as usize, &mut set);
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
            }
        }
        let f = self.features;
        let files = [
            (f.vm_pte, STATUS_PATH, Stage::OpenStatus),
            (f.smaps_rollup, ROLLUP_PATH, Stage::OpenRollup),
            (f.pagemap, PAGEMAP_PATH, Stage::OpenPagemap),
        ];
        for (k, (on, path, stage)) in files.into_iter().enumerate() {
            if on {
                // SAFETY: static NUL-terminated path.
                let fd = unsafe { libc::open(path.as_ptr().cast(), libc::O_RDONLY) };
                if fd < 0 {
                    return Err(Fail(SETUP, stage, errno()));
                }
                self.fds[k] = fd;
            }
        }
        self.warm_up()?;
        self.observe(0, SETUP)?;
        let base = HEADER_WORDS + PRESENT_AT;
        if self.out[base..base + PRESENT_WORDS].iter().any(|&w| w != 0) {
            return Err(Fail(SETUP, Stage::WindowNotEmpty, 0));
        }
        for i in 0..self.ops.len() {
            let op = self.ops[i];
            let done = self.exec(&op).map_err(|(s, e)| Fail(i as u64, s, e))?;
            self.observe(i + 1, i as u64)?;
            let o = HEADER_WORDS + (i + 1) * OBS_WORDS;
            if let Some(v) = done.load {
                self.out[o] = 1;
                self.out[o + 1] = v;
            }
            self.out[o + 5] = done.errno as u64;
        }
        Ok(())
    }

    /// Run every code path once so that nothing faults in after the baseline.
    fn warm_up(&mut self) -> Result<(), Fail> {
        for backing in [Backing::AnonPrivate, Backing::ShmemShared] {
            let ops = [
                Op::Mmap {
                    start: 0,
                    pages: 1,
                    backing,
                },
                Op::Store { page: 0, value: 1 },
                Op::Load { page: 0 },
                Op::DontNeed { start: 0, pages: 1 },
                Op::Mremap {
                    start: 0,
                    pages: 1,
                    new_start: 1,
                },
                Op::Munmap { start: 1, pages: 1 },
            ];
            for op in ops {
                self.exec(&op).map_err(|(s, e)| Fail(SETUP, s, e))?;
                self.observe(0, SETUP)?;
            }
        }
        // fork, the child's accesses and exit, and mprotect both ways.
        let ops = [
            Op::Mmap {
                start: 0,
                pages: 1,
                backing: Backing::AnonPrivate,
            },
            Op::Store { page: 0, value: 1 },
            Op::Fork,
            Op::ChildLoad { page: 0 },
            Op::ChildStore { page: 0, value: 2 },
            Op::ChildExit,
            Op::Mprotect {
                start: 0,
                pages: 1,
                write: false,
            },
            Op::Mprotect {
                start: 0,
                pages: 1,
                write: true,
            },
            Op::Store { page: 0, value: 3 },
            Op::Munmap { start: 0, pages: 1 },
        ];
        for op in ops {
            self.exec(&op).map_err(|(s, e)| Fail(SETUP, s, e))?;
            self.observe(0, SETUP)?;
        }
        // A one-page mapping cannot hold a THP: MADV_HUGEPAGE does not register the mm with
        // khugepaged and MADV_COLLAPSE fails (EINVAL) without touching anything.
        let ops = [
            Op::Mmap {
                start: 0,
                pages: 1,
                backing: Backing::AnonPrivate,
            },
            Op::Hugepage { start: 0, pages: 1 },
            Op::Store { page: 0, value: 1 },
            Op::Collapse { start: 0, pages: 1 },
            Op::Munmap { start: 0, pages: 1 },
        ];
        for op in ops {
            self.exec(&op).map_err(|(s, e)| Fail(SETUP, s, e))?;
            self.observe(0, SETUP)?;
        }
        Ok(())
    }

    /// Perform one op; returns the loaded value of a Load and the errno of a Collapse.
    fn exec(&mut self, op: &Op) -> Result<Done, (Stage, i32)> {
        let len = |pages: u64| (pages * PAGE_SIZE) as usize;
        // SAFETY: the parent validated that every op stays inside the window and that
        // loads and stores hit mapped pages.
        unsafe {
            match *op {
                Op::Mmap {
                    start,
                    pages,
                    backing,
                } => {
                    let (share, fd) = match backing {
                        Backing::AnonPrivate => (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1),
                        Backing::ShmemShared => (libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1),
                        Backing::ShmemPrivate => {
                            if self.nr_files == MAX_FILES {
                                return Err((Stage::Memfd, 0));
                            }
                            let fd = libc::memfd_create(c"mmcheck-diff".as_ptr(), 0);
                            if fd < 0 {
                                return Err((Stage::Memfd, errno()));
                            }
                            if libc::ftruncate(fd, len(pages) as libc::off_t) != 0 {
                                return Err((Stage::Memfd, errno()));
                            }
                            self.files[self.nr_files] = fd;
                            self.nr_files += 1;
                            (libc::MAP_PRIVATE, fd)
                        }
                    };
                    let a = addr(start) as *mut c_void;
                    let r = libc::mmap(
                        a,
                        len(pages),
                        libc::PROT_READ | libc::PROT_WRITE,
                        share | libc::MAP_FIXED_NOREPLACE,
                        fd,
                        0,
                    );
                    if r == libc::MAP_FAILED {
                        return Err((Stage::Mmap, errno()));
                    }
                    if r != a {
                        libc::munmap(r, len(pages));
                        return Err((Stage::MmapMisplaced, 0));
                    }
                }
                Op::Munmap { start, pages } => {
                    if libc::munmap(addr(start) as *mut c_void, len(pages)) != 0 {
                        return Err((Stage::Munmap, errno()));
                    }
                }
                Op::DontNeed { start, pages } => {
                    let a = addr(start) as *mut c_void;
                    if libc::madvise(a, len(pages), libc::MADV_DONTNEED) != 0 {
                        return Err((Stage::Madvise, errno()));
                    }
                }
                Op::Free { start, pages } => {
                    let a = addr(start) as *mut c_void;
                    if libc::madvise(a, len(pages), libc::MADV_FREE) != 0 {
                        return Err((Stage::MadviseFree, errno()));
                    }
                }
                Op::Pageout { start, pages } => {
                    let a = addr(start) as *mut c_void;
                    if libc::madvise(a, len(pages), libc::MADV_PAGEOUT) != 0 {
                        return Err((Stage::MadvisePageout, errno()));
                    }
                }
                Op::Store { page, value } => ptr::write_volatile(addr(page) as *mut u64, value),
                Op::Load { page } => {
                    return Ok(Done {
                        load: Some(ptr::read_volatile(addr(page) as *const u64)),
                        errno: 0,
                    })
                }
                Op::Mremap {
                    start,
                    pages,
                    new_start,
                } => {
                    let to = addr(new_start) as *mut c_void;
                    let r = libc::mremap(
                        addr(start) as *mut c_void,
                        len(pages),
                        len(pages),
                        libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                        to,
                    );
                    if r == libc::MAP_FAILED {
                        return Err((Stage::Mremap, errno()));
                    }
                    if r != to {
                        return Err((Stage::MremapMisplaced, 0));
                    }
                }
                Op::Hugepage { start, pages } => {
                    let a = addr(start) as *mut c_void;
                    if libc::madvise(a, len(pages), libc::MADV_HUGEPAGE) != 0 {
                        return Err((Stage::MadviseHugepage, errno()));
                    }
                }
                Op::PunchHole {
                    file,
                    offset,
                    pages,
                } => {
                    let Some(&fd) = self.files[..self.nr_files].get(file as usize) else {
                        return Err((Stage::Fallocate, libc::EBADF));
                    };
                    let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
                    let off = (offset * PAGE_SIZE) as libc::off_t;
                    if libc::fallocate(fd, mode, off, len(pages) as libc::off_t) != 0 {
                        return Err((Stage::Fallocate, errno()));
                    }
                }
                Op::Truncate { file, pages } => {
                    let Some(&fd) = self.files[..self.nr_files].get(file as usize) else {
                        return Err((Stage::Ftruncate, libc::EBADF));
                    };
                    if libc::ftruncate(fd, len(pages) as libc::off_t) != 0 {
                        return Err((Stage::Ftruncate, errno()));
                    }
                }
                Op::Mprotect {
                    start,
                    pages,
                    write,
                } => {
                    let a = addr(start) as *mut c_void;
                    let prot = libc::PROT_READ | if write { libc::PROT_WRITE } else { 0 };
                    if libc::mprotect(a, len(pages), prot) != 0 {
                        return Err((Stage::Mprotect, errno()));
                    }
                }
                Op::Fork => self.fork()?,
                Op::ChildLoad { page } => {
                    return Ok(Done {
                        load: Some(self.ask_child([CHILD_LOAD, page, 0])?),
                        errno: 0,
                    })
                }
                Op::ChildStore { page, value } => {
                    self.ask_child([CHILD_STORE, page, value])?;
                }
                Op::ChildExit => self.child_exit()?,
                Op::Collapse { start, pages } => {
                    let a = addr(start) as *mut c_void;
                    let e = if libc::madvise(a, len(pages), libc::MADV_COLLAPSE) != 0 {
                        errno()
                    } else {
                        0
                    };
                    return Ok(Done {
                        load: None,
                        errno: e,
                    });
                }
            }
        }
        Ok(Done::default())
    }

    /// `Op::Fork`: a child serving requests over two pipes.
    fn fork(&mut self) -> Result<(), (Stage, i32)> {
        let (mut req, mut reply) = ([0 as c_int; 2], [0 as c_int; 2]);
        // SAFETY: plain syscalls on local arrays; the child only makes async-signal-safe calls
        // and never returns.
        unsafe {
            if libc::pipe2(req.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
                return Err((Stage::Fork, errno()));
            }
            if libc::pipe2(reply.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
                let e = errno();
                libc::close(req[0]);
                libc::close(req[1]);
                return Err((Stage::Fork, e));
            }
            let pid = libc::fork();
            if pid < 0 {
                let e = errno();
                for fd in [req[0], req[1], reply[0], reply[1]] {
                    libc::close(fd);
                }
                return Err((Stage::Fork, e));
            }
            if pid == 0 {
                libc::close(req[1]);
                libc::close(reply[0]);
                serve_child(req[0], reply[1]);
            }
            libc::close(req[0]);
            libc::close(reply[1]);
            self.forked = Some(Forked {
                pid,
                req: req[1],
                reply: reply[0],
            });
        }
        Ok(())
    }

    /// Send one request to the case's child and wait for its answer.
    fn ask_child(&mut self, cmd: [u64; 3]) -> Result<u64, (Stage, i32)> {
        let f = self.forked.ok_or((Stage::ChildIo, libc::ECHILD))?;
        let mut answer = [0u64];
        if !write_words(f.req, &cmd) || !read_words(f.reply, &mut answer) {
            return Err((Stage::ChildIo, errno()));
        }
        Ok(answer[0])
    }

    /// `Op::ChildExit`: tell the child to exit and reap it, so its mm is gone.
    fn child_exit(&mut self) -> Result<(), (Stage, i32)> {
        let f = self.forked.take().ok_or((Stage::ChildIo, libc::ECHILD))?;
        let sent = write_words(f.req, &[CHILD_EXIT, 0, 0]);
        // SAFETY: closing our pipe ends; closing the request pipe also ends the child's loop.
        unsafe {
            libc::close(f.req);
            libc::close(f.reply);
        }
        if !sent {
            return Err((Stage::ChildIo, errno()));
        }
        wait_child(f.pid).map_err(|_| (Stage::ChildWait, errno()))?;
        Ok(())
    }

    /// Record raw counters and present bits into observation slot `slot`.
    fn observe(&mut self, slot: usize, index: u64) -> Result<(), Fail> {
        let o = HEADER_WORDS + slot * OBS_WORDS;
        let fail = |s: Stage, e: i32| Fail(index, s, e);
        self.out[o] = 0;
        self.out[o + 1] = 0;
        self.out[o + 5] = 0;
        if self.features.vm_pte {
            let n =
                pread_all(self.fds[0], self.status_buf).map_err(|e| fail(Stage::ReadStatus, e))?;
            let v =
                find_number(&self.status_buf[..n], b"VmPTE:").ok_or(fail(Stage::ParseStatus, 0))?;
            self.out[o + 2] = v;
        }
        if self.features.smaps_rollup {
            let n =
                pread_all(self.fds[1], self.rollup_buf).map_err(|e| fail(Stage::ReadRollup, e))?;
            let buf = &self.rollup_buf[..n];
            let rss = find_number(buf, b"Rss:").ok_or(fail(Stage::ParseRollup, 0))?;
            let ahp = find_number(buf, b"AnonHugePages:").ok_or(fail(Stage::ParseRollup, 0))?;
            self.out[o + 3] = rss;
            self.out[o + 4] = ahp;
        }
        if self.features.pagemap {
            let bytes = REGION_PAGES as usize * 8;
            let off = (REGION_BASE / PAGE_SIZE * 8) as libc::off_t;
            // SAFETY: pagemap_buf holds REGION_PAGES u64s.
            let r = unsafe {
                libc::pread(
                    self.fds[2],
                    self.pagemap_buf.as_mut_ptr().cast(),
                    bytes,
                    off,
                )
            };
            if r != bytes as isize {
                return Err(fail(Stage::ReadPagemap, if r < 0 { errno() } else { 0 }));
            }
            let bits = &mut self.out[o + PRESENT_AT..o + PRESENT_AT + PRESENT_WORDS];
            bits.fill(0);
            for (p, e) in self.pagemap_buf.iter().enumerate() {
                if e >> 63 == 1 {
                    bits[p / 64] |= 1 << (p % 64);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_numbers() {
        let s = b"Name:\tx\nVmPTE:\t      44 kB\nVmSwap:\t0 kB\n";
        assert_eq!(find_number(s, b"VmPTE:"), Some(44));
        assert_eq!(find_number(s, b"VmSwap:"), Some(0));
        assert_eq!(find_number(s, b"PTE:"), None);
        assert_eq!(find_number(b"Rss:", b"Rss:"), None);
        assert_eq!(find_number(b"", b"Rss:"), None);
    }

    #[test]
    fn rejects_invalid_cases_without_forking() {
        let r = HostRunner::with_features(HostFeatures::default());
        let c = Case {
            ops: vec![Op::Load { page: 5 }],
        };
        assert!(matches!(
            r.run_case(&c),
            Err(HostError::InvalidOp { index: 0, .. })
        ));
        let c = Case {
            ops: vec![Op::Munmap {
                start: REGION_PAGES - 1,
                pages: 2,
            }],
        };
        assert!(matches!(
            r.run_case(&c),
            Err(HostError::InvalidOp { index: 0, .. })
        ));
    }
}
