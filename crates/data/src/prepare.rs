//! Text → `train.bin` / `val.bin` (raw little-endian u16 when the vocabulary fits, else
//! u32) + `meta.json`, as nanoGPT's `prepare.py`: the first 90 % of the characters train,
//! the last 10 % validate. Tokenised once; reused while the meta matches the corpus.
use crate::tokenizer::{CharTokenizer, Gpt2Tokenizer, Tokenizer, TokenizerKind};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// What `prepare` wrote, saved as `meta.json` beside the token files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    pub tokenizer: TokenizerKind,
    pub vocab_size: usize,
    /// "u16" or "u32".
    pub dtype: String,
    pub train_tokens: usize,
    pub val_tokens: usize,
    pub source: String,
    pub source_sha256: String,
    /// The character vocabulary, in id order (char tokenizer only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chars: Option<String>,
}

impl Meta {
    /// Bytes per token in the .bin files.
    pub fn bytes_per_token(&self) -> usize {
        if self.dtype == "u16" {
            2
        } else {
            4
        }
    }

    /// Rebuild the tokenizer this dataset was made with.
    pub fn tokenizer(&self) -> Result<Box<dyn Tokenizer>> {
        Ok(match self.tokenizer {
            TokenizerKind::Gpt2 => Box::new(Gpt2Tokenizer),
            TokenizerKind::Char => {
                let chars = self
                    .chars
                    .as_ref()
                    .context("meta.json: a char dataset needs 'chars'")?;
                Box::new(CharTokenizer::from_chars(chars.chars().collect()))
            }
        })
    }

    pub fn read(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not a dataset meta", path.display()))
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {}", tmp.display()))
}

fn to_bytes(ids: &[u32], wide: bool) -> Vec<u8> {
    if wide {
        ids.iter().flat_map(|i| i.to_le_bytes()).collect()
    } else {
        ids.iter().flat_map(|&i| (i as u16).to_le_bytes()).collect()
    }
}

/// Tokenise `corpus` into `out_dir` (or reuse what is there when it matches).
pub fn prepare(corpus: &Path, out_dir: &Path, kind: TokenizerKind) -> Result<Meta> {
    let bytes = std::fs::read(corpus).with_context(|| {
        format!(
            "corpus {} not found or unreadable: run `just data`, or pass --data PATH / set LADDER_DATA to a UTF-8 text file",
            corpus.display()
        )
    })?;
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        bail!("corpus {} is empty: nothing to train on", corpus.display());
    }
    let sha = format!("{:x}", Sha256::digest(&bytes));
    let meta_path = out_dir.join("meta.json");
    if let Ok(old) = Meta::read(&meta_path) {
        let sizes_ok = [("train.bin", old.train_tokens), ("val.bin", old.val_tokens)]
            .iter()
            .all(|(f, n)| {
                std::fs::metadata(out_dir.join(f))
                    .is_ok_and(|m| m.len() as usize == n * old.bytes_per_token())
            });
        if old.tokenizer == kind && old.source_sha256 == sha && sizes_ok {
            tracing::debug!("reusing {}", out_dir.display());
            return Ok(old);
        }
    }
    let text = String::from_utf8(bytes)
        .with_context(|| format!("corpus {} is not valid UTF-8 text", corpus.display()))?;
    let n_chars = text.chars().count();
    let split = text
        .char_indices()
        .nth(n_chars * 9 / 10)
        .map_or(text.len(), |(i, _)| i);
    let (train_text, val_text) = text.split_at(split);
    let (tok, chars): (Box<dyn Tokenizer>, Option<String>) = match kind {
        TokenizerKind::Gpt2 => (Box::new(Gpt2Tokenizer), None),
        TokenizerKind::Char => {
            let t = CharTokenizer::from_text(&text);
            let chars = t.chars().iter().collect();
            (Box::new(t), Some(chars))
        }
    };
    tracing::info!(
        "tokenising {} ({} characters, {} tokenizer) ...",
        corpus.display(),
        n_chars,
        kind
    );
    let train = tok.encode(train_text)?;
    let val = tok.encode(val_text)?;
    let wide = tok.vocab_size() > 1 << 16;
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    write_atomic(&out_dir.join("train.bin"), &to_bytes(&train, wide))?;
    write_atomic(&out_dir.join("val.bin"), &to_bytes(&val, wide))?;
    let meta = Meta {
        tokenizer: kind,
        vocab_size: tok.vocab_size(),
        dtype: if wide { "u32" } else { "u16" }.into(),
        train_tokens: train.len(),
        val_tokens: val.len(),
        source: corpus.display().to_string(),
        source_sha256: sha,
        chars,
    };
    write_atomic(
        &meta_path,
        (serde_json::to_string_pretty(&meta)? + "\n").as_bytes(),
    )?;
    Ok(meta)
}
