//! `runtime`: the small things every other crate of the workspace shares, and nothing else —
//! the machine's measured facts (`hardware`) and the precision chosen for it (`precision`),
//! where shared resources live, one atomic file write, device parsing/naming and
//! synchronisation, peak memory, logging set-up, the seeded RNG, the facts recorded beside
//! every number (git revision, time), the concrete compute dtype, for decode a streaming
//! gemv (`gemv`), attention at one query (`attn`) and tensors in huge pages (`pages`), and
//! for training a fused cross-entropy (`xent`), causal attention (`causal_attn`) and the
//! tanh GELU (`gelu`). It depends on no other crate of ours:
//! `model`, `data`, `optim`, `infer` and `experiments` all sit above it.
pub mod attn;
pub mod autograd;
pub mod causal_attn;
pub mod device;
pub mod dtype;
pub mod exit;
pub mod facts;
pub mod fsio;
pub mod gelu;
pub mod gemv;
pub mod hardware;
pub mod inference;
pub mod logging;
pub mod mem;
pub mod pages;
pub mod precision;
pub mod resources;
pub mod rng;
pub mod xent;

pub use dtype::DType;
pub use hardware::{Facts, MachineRecord, Measured};
pub use inference::InferenceMode;
pub use precision::{Precision, Resolved};
pub use rng::Rng;
