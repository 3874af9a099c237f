//! Differential testing of the mmcheck model against the host Linux kernel: random cases of
//! mmap/munmap/MADV_DONTNEED/mremap/MADV_HUGEPAGE/MADV_COLLAPSE/loads/stores in a fixed window
//! ([`gen`]), run on the host in a forked child ([`host`]) and on the model, compared op by op
//! ([`compare`]), with the first divergence shrunk to a small case ([`mod@shrink`]).

pub mod case;
pub mod compare;
pub mod gen;
pub mod host;
pub mod shrink;

pub use case::{Backing, Case, CaseRunner, Observation, Op, PAGE_SIZE, REGION_BASE, REGION_PAGES};
pub use compare::{first_divergence, run_diff, DiffReport, Divergence, Field, Mask, Values};
pub use gen::{generate, normalize};
pub use host::{host_features, HostError, HostFeatures, HostRun, HostRunner};
pub use shrink::shrink;
