//! `infer`: prefill/decode generation with a pre-allocated KV cache and GQA (nanoGPT's
//! `sample.py` grown up), sampling, a memory planner, and the `infer` command line
//! (`cargo run -p infer -- --help`).
//!
//! ```no_run
//! use infer::{generate, source, GenOptions};
//! let src = source::load(&source::SourceSpec::preset("gpt2_tiny"))?;
//! let gen = generate(&src.model, &[vec![1, 2, 3]], &GenOptions::default(), |_| {})?;
//! println!("{:?} at {:.0} tokens/s", gen.ids[0], gen.decode_tokens_per_sec());
//! # anyhow::Ok(())
//! ```
pub mod cli;
pub mod decoder;
pub mod generation;
pub mod limits;
pub mod planner;
pub mod quant;
pub mod report;
pub mod sampling;
pub mod source;
pub mod stream;

pub use decoder::Decoder;
pub use generation::{check_prompt, decode, generate, Decoded, GenOptions, Generation};
pub use planner::{plan, Plan, PlanRow};
pub use sampling::Sampler;
pub use source::{Source, SourceSpec};
