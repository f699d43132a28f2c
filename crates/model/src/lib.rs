//! `model`: one decoder-only transformer with a toggle per rung of the ladder from GPT-2
//! (Radford et al. 2019) to Llama 3 (Meta 2024): learned or rotary positions, LayerNorm or
//! RMSNorm, GELU MLP or SwiGLU, naive or SDPA attention, MHA/GQA/MQA through `n_kv_heads`,
//! tied or untied head, a dense MLP or a mixture of experts, and a KV cache owned by the
//! caller.
pub mod accounting;
pub mod attention;
pub mod cache;
pub mod config;
pub mod gemv;
pub mod gpt;
pub mod hf;
mod hf_config;
pub mod io;
pub mod layers;
pub mod loss;
pub mod moe;
mod presets;
pub mod quant;
pub mod rope;
pub mod settings;
pub mod st_header;
pub mod validate;

pub use cache::KvCache;
pub use config::{AttnKernel, ConfigError, MlpKind, ModelConfig, NormKind, PosEmb};
pub use gpt::{Gpt, TrainLoss};
pub use io::{load, load_as, read_config, save_hf, save_native, Layout, Loaded};
pub use settings::RunSettings;
