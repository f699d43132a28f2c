//! `infer`: prefill/decode generation with a pre-allocated KV cache and GQA, sampling,
//! a memory planner, and the `infer` command-line tool (`cargo run -p infer -- --help`).
pub mod generate;
pub mod plan;
pub mod sampling;
pub mod source;
pub mod stream;

pub use generate::{generate, GenOptions, Generation};
pub use sampling::Sampler;
