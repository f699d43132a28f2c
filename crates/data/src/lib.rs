//! `data`: tokenizers (GPT-2 BPE through tiktoken-rs, character level), `prepare` (text →
//! token files + meta), memory-mapped batches, and where the corpus comes from.
mod prepare;
mod rng;
mod tokenizer;
mod tokens;

pub use prepare::{prepare, Meta};
pub use rng::Rng;
pub use tokenizer::{CharTokenizer, Gpt2Tokenizer, Tokenizer, TokenizerKind, GPT2_EOT, GPT2_VOCAB};
pub use tokens::TokenFile;

use std::path::{Path, PathBuf};

/// The shared folder: `$LADDER_SHARED`, else `../shared` beside the workspace.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("LADDER_SHARED") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")),
    }
}

/// The default corpus: `$LADDER_DATA`, else the shared Tiny Shakespeare when present.
pub fn default_corpus() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LADDER_DATA").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let shared = shared_dir().join("data/tinyshakespeare.txt");
    shared.exists().then_some(shared)
}

/// An explicit path, else the default; a clear error when there is none.
pub fn resolve_corpus(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    match explicit {
        Some(p) => Ok(p.to_path_buf()),
        None => default_corpus().ok_or_else(|| {
            anyhow::anyhow!(
                "no corpus: {} does not exist and LADDER_DATA is not set. Run `just data` to download Tiny Shakespeare, or pass --data PATH (data.corpus in a config)",
                shared_dir().join("data/tinyshakespeare.txt").display()
            )
        }),
    }
}
