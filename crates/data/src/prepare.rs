//! Text → `train.bin` / `val.bin` (raw little-endian u16 when the vocabulary fits, else
//! u32) + `meta.json`, as nanoGPT's `data/shakespeare_char/prepare.py`: the text is split
//! at int(0.9 n) *characters* and each part encoded on its own. Tokenised once; reused
//! while the meta matches the corpus (same tokenizer, same SHA-256).
use crate::error::DataError;
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
    /// The corpus path, as given.
    pub source: String,
    /// Hex SHA-256 of the corpus bytes.
    pub source_sha256: String,
    /// The character vocabulary, in id order (char tokenizer only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chars: Option<String>,
}

impl Meta {
    /// Bytes per token in the .bin files (2 for "u16", 4 for "u32").
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

    /// Internal consistency: a known dtype wide enough for the vocabulary, and a char
    /// vocabulary of `vocab_size` distinct characters.
    pub fn validate(&self) -> Result<()> {
        let max = match self.dtype.as_str() {
            "u16" => 1usize << 16,
            "u32" => 1usize << 32,
            d => bail!("dtype '{d}' (expected \"u16\" or \"u32\")"),
        };
        if self.vocab_size == 0 || self.vocab_size > max {
            bail!(
                "vocab_size {} does not fit dtype {}",
                self.vocab_size,
                self.dtype
            );
        }
        if self.tokenizer == TokenizerKind::Char {
            let chars = self
                .chars
                .as_deref()
                .context("a char dataset needs 'chars'")?;
            let mut v: Vec<char> = chars.chars().collect();
            let n = v.len();
            v.sort_unstable();
            v.dedup();
            if n != self.vocab_size || v.len() != n {
                bail!(
                    "'chars' has {n} characters ({} distinct) but vocab_size is {}",
                    v.len(),
                    self.vocab_size
                );
            }
        }
        Ok(())
    }

    /// Read and validate a `meta.json`.
    pub fn read(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let meta: Self = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a dataset meta", path.display()))?;
        meta.validate()
            .with_context(|| format!("{}: inconsistent dataset meta", path.display()))?;
        Ok(meta)
    }
}

/// Readers never see a half-written file, and concurrent writers (same content) do not
/// clobber each other's temp file (its name is unique per process).
fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    runtime::fsio::write_atomic(path, |tmp| Ok(std::fs::write(tmp, bytes)?))
}

fn to_bytes(ids: &[u32], wide: bool) -> Vec<u8> {
    if wide {
        ids.iter().flat_map(|i| i.to_le_bytes()).collect()
    } else {
        ids.iter().flat_map(|&i| (i as u16).to_le_bytes()).collect()
    }
}

/// The byte offset of character `int(0.9 n)` (nanoGPT's `data[:int(n*0.9)]`).
fn split_point(text: &str) -> usize {
    let n_chars = text.chars().count();
    text.char_indices()
        .nth(n_chars * 9 / 10)
        .map_or(text.len(), |(i, _)| i)
}

/// The existing meta in `out_dir` when it was made from these bytes with this tokenizer
/// and its token files have the sizes it promises.
fn reusable(out_dir: &Path, kind: TokenizerKind, sha: &str) -> Option<Meta> {
    let old = Meta::read(&out_dir.join("meta.json")).ok()?;
    let sizes_ok = [("train.bin", old.train_tokens), ("val.bin", old.val_tokens)]
        .iter()
        .all(|(f, n)| {
            std::fs::metadata(out_dir.join(f))
                .is_ok_and(|m| m.len() as usize == n * old.bytes_per_token())
        });
    (old.tokenizer == kind && old.source_sha256 == sha && sizes_ok).then_some(old)
}

/// Tokenise `corpus` into `out_dir` (or reuse what is there when it matches).
pub fn prepare(corpus: &Path, out_dir: &Path, kind: TokenizerKind) -> Result<Meta> {
    if !corpus.exists() {
        return Err(DataError::MissingCorpus {
            path: corpus.into(),
            source_hint: "the corpus to prepare".into(),
        }
        .into());
    }
    let bytes =
        std::fs::read(corpus).with_context(|| format!("reading corpus {}", corpus.display()))?;
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(DataError::EmptyCorpus {
            path: corpus.into(),
        }
        .into());
    }
    let sha = format!("{:x}", Sha256::digest(&bytes));
    if let Some(old) = reusable(out_dir, kind, &sha) {
        tracing::info!("reusing {} (corpus unchanged)", out_dir.display());
        return Ok(old);
    }
    let text = String::from_utf8(bytes).map_err(|e| DataError::NotUtf8 {
        path: corpus.into(),
        offset: e.utf8_error().valid_up_to(),
    })?;
    let (train_text, val_text) = text.split_at(split_point(&text));
    let (tok, chars): (Box<dyn Tokenizer>, Option<String>) = match kind {
        TokenizerKind::Gpt2 => (Box::new(Gpt2Tokenizer), None),
        TokenizerKind::Char => {
            let t = CharTokenizer::from_text(&text);
            let chars = t.chars().iter().collect();
            (Box::new(t), Some(chars))
        }
    };
    tracing::info!(
        "tokenising {} ({} bytes, {} tokenizer) into {}",
        corpus.display(),
        text.len(),
        kind,
        out_dir.display()
    );
    let train = tok.encode(train_text)?;
    let val = tok.encode(val_text)?;
    let wide = tok.vocab_size() > 1 << 16;
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    // The meta goes first and comes back last: a crash in between leaves no meta, so the
    // next call tokenises again instead of trusting a mix of old and new files.
    let meta_path = out_dir.join("meta.json");
    match std::fs::remove_file(&meta_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing stale {}", meta_path.display()))
        }
        _ => {}
    }
    write_bytes(&out_dir.join("train.bin"), &to_bytes(&train, wide))?;
    write_bytes(&out_dir.join("val.bin"), &to_bytes(&val, wide))?;
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
    write_bytes(
        &meta_path,
        (serde_json::to_string_pretty(&meta)? + "\n").as_bytes(),
    )?;
    Ok(meta)
}
