//! Architecture: the x86-64-like page-table format and the hardware walker with its TLB.

pub mod fault;
pub mod pgtable;
