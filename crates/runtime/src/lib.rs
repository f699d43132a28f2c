//! `runtime`: the small utilities every other crate of the workspace shares, and nothing
//! else — where shared resources live, one atomic file write, device parsing/naming and
//! synchronisation, peak memory, logging set-up, the seeded RNG, the facts recorded beside
//! every number (git revision, time) and the concrete compute dtype. It depends on no other
//! crate of ours: `model`, `data`, `optim`, `infer` and `experiments` all sit above it.
pub mod device;
pub mod dtype;
pub mod facts;
pub mod fsio;
pub mod logging;
pub mod mem;
pub mod resources;
pub mod rng;

pub use dtype::DType;
pub use rng::Rng;
