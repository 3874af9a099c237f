//! The mmcheck command's building blocks: the native stress driver and the model side of the
//! differential test against the host kernel.

pub mod check;
pub mod model_runner;
pub mod stress;
