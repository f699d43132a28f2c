//! `runtime`: what every crate needs and no model defines — the machine's measured facts
//! (`hardware`), the precision chosen for it (`precision`), the compute dtype (`dtype`).
pub mod dtype;
pub mod hardware;
pub mod precision;

pub use dtype::DType;
pub use hardware::{Facts, MachineRecord, Measured};
pub use precision::{Precision, Resolved};
