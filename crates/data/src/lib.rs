//! `data`: tokenizers (GPT-2 BPE through tiktoken-rs, character level), `prepare` (text →
//! token files + meta, as nanoGPT's `data/*/prepare.py`), memory-mapped batches (nanoGPT's
//! `get_batch`), and where the corpus comes from.
mod error;
mod prepare;
mod tokenizer;
mod tokens;

pub use error::DataError;
pub use prepare::{prepare, Meta};
pub use tokenizer::{CharTokenizer, Gpt2Tokenizer, Tokenizer, TokenizerKind, GPT2_EOT, GPT2_VOCAB};
pub use tokens::TokenFile;

use runtime::resources::{shared_dir, workspace_root};
use std::path::{Path, PathBuf};

/// The file name of Tiny Shakespeare under `<shared>/data/` (and under `data/` after `just data`).
pub const TINY_SHAKESPEARE: &str = "tinyshakespeare.txt";

/// The default corpus: `$LADDER_DATA` if set (whether or not it exists, so a typo is
/// reported, not silently replaced); else `<shared>/data/tinyshakespeare.txt`, else
/// `<workspace>/data/tinyshakespeare.txt` (where `just data` downloads it), when present.
pub fn default_corpus() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LADDER_DATA").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    [
        shared_dir().join("data").join(TINY_SHAKESPEARE),
        workspace_root().join("data").join(TINY_SHAKESPEARE),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// The corpus to use: `explicit` (a `--data` flag or a config's `data.corpus`), else
/// [`default_corpus`]. Errors, naming the path and how to get a corpus, when there is none
/// or it does not exist.
pub fn resolve_corpus(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let (path, hint) = match explicit {
        Some(p) => (p.to_path_buf(), "given with --data / data.corpus"),
        None => match default_corpus() {
            Some(p) if std::env::var_os("LADDER_DATA").is_some_and(|v| !v.is_empty()) => {
                (p, "from LADDER_DATA")
            }
            Some(p) => (p, "the default"),
            None => (
                shared_dir().join("data").join(TINY_SHAKESPEARE),
                "the default; LADDER_DATA is not set",
            ),
        },
    };
    if !path.exists() {
        return Err(DataError::MissingCorpus {
            path,
            source_hint: hint.into(),
        }
        .into());
    }
    Ok(path)
}
