//! The mmcheck command's building blocks: `check` (rows, input files, the text report), the
//! native stress driver and the model side of the differential test against the host kernel.

pub mod atlas;
pub mod bench;
pub mod check;
pub mod fuzz;
pub mod input;
pub mod litmus;
pub mod merge;
pub mod model_runner;
pub mod planted;
pub mod sites;
pub mod stress;
pub mod table;
