//! Tokenizers behind one trait: GPT-2's byte-level BPE (Radford et al. 2019) through
//! tiktoken-rs's `r50k_base` (ranks compiled into the binary with `include_str!`: works
//! offline), and a character-level vocabulary (nanoGPT's `shakespeare_char`: the sorted
//! unique characters of the corpus).
use crate::error::DataError;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::OnceLock;

pub trait Tokenizer: Send + Sync {
    /// Text to ids; an error names what cannot be encoded (e.g. a character outside a
    /// char vocabulary, as [`DataError::UnknownChar`]).
    fn encode(&self, text: &str) -> Result<Vec<u32>>;
    /// Ids to raw bytes. GPT-2 tokens are bytes, not characters, so the result may end
    /// inside a UTF-8 character: streaming callers buffer the tail until it completes.
    /// Ids outside the vocabulary (e.g. a model's padded logits) are skipped.
    fn decode_bytes(&self, ids: &[u32]) -> Vec<u8>;
    /// Ids to text (invalid UTF-8 replaced by U+FFFD).
    fn decode(&self, ids: &[u32]) -> String {
        String::from_utf8_lossy(&self.decode_bytes(ids)).into_owned()
    }
    fn vocab_size(&self) -> usize;
    /// "char" or "gpt2", as in [`TokenizerKind`].
    fn name(&self) -> &'static str;
    /// The end-of-text id, if the vocabulary has one.
    fn eot(&self) -> Option<u32>;
}

/// Which tokenizer a dataset uses (serde and `FromStr`: "char" / "gpt2").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenizerKind {
    Char,
    Gpt2,
}

impl std::str::FromStr for TokenizerKind {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "char" => Ok(Self::Char),
            "gpt2" | "gpt-2" => Ok(Self::Gpt2),
            _ => bail!("unknown tokenizer '{s}' (expected char or gpt2)"),
        }
    }
}

impl std::fmt::Display for TokenizerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Char => "char",
            Self::Gpt2 => "gpt2",
        })
    }
}

/// GPT-2 BPE: 50257 ids, `<|endoftext|>` = 50256 (encoded as such when it appears in text).
#[derive(Clone, Copy, Debug, Default)]
pub struct Gpt2Tokenizer;

pub const GPT2_EOT: u32 = 50256;
pub const GPT2_VOCAB: usize = 50257;

fn bpe() -> &'static tiktoken_rs::CoreBPE {
    static BPE: OnceLock<tiktoken_rs::CoreBPE> = OnceLock::new();
    // Parses the ranks compiled into tiktoken-rs; cannot fail short of a broken crate.
    BPE.get_or_init(|| tiktoken_rs::r50k_base().expect("the compiled-in r50k_base ranks parse"))
}

impl Tokenizer for Gpt2Tokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(bpe().encode_with_special_tokens(text))
    }
    fn decode_bytes(&self, ids: &[u32]) -> Vec<u8> {
        // tiktoken-rs panics on an id it does not know: drop those first.
        let valid: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|&i| (i as usize) < GPT2_VOCAB)
            .collect();
        bpe()._decode_native_and_split(valid).flatten().collect()
    }
    fn vocab_size(&self) -> usize {
        GPT2_VOCAB
    }
    fn name(&self) -> &'static str {
        "gpt2"
    }
    fn eot(&self) -> Option<u32> {
        Some(GPT2_EOT)
    }
}

/// Character level: id = index in the sorted vocabulary.
#[derive(Clone, Debug)]
pub struct CharTokenizer {
    chars: Vec<char>,
    index: HashMap<char, u32>,
}

impl CharTokenizer {
    /// The sorted unique characters of `text` (65 for Tiny Shakespeare).
    pub fn from_text(text: &str) -> Self {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        Self::from_chars(chars)
    }

    /// A vocabulary in id order (as saved in `meta.json`'s `chars`).
    pub fn from_chars(chars: Vec<char>) -> Self {
        let index = chars
            .iter()
            .enumerate()
            .map(|(i, &c)| (c, i as u32))
            .collect();
        Self { chars, index }
    }

    /// The vocabulary in id order.
    pub fn chars(&self) -> &[char] {
        &self.chars
    }
}

impl Tokenizer for CharTokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        text.chars()
            .map(|c| match self.index.get(&c) {
                Some(&i) => Ok(i),
                None => Err(DataError::UnknownChar {
                    ch: c,
                    vocab: self.chars.len(),
                }
                .into()),
            })
            .collect()
    }
    fn decode_bytes(&self, ids: &[u32]) -> Vec<u8> {
        self.decode(ids).into_bytes()
    }
    fn decode(&self, ids: &[u32]) -> String {
        ids.iter()
            .filter_map(|&i| self.chars.get(i as usize))
            .collect()
    }
    fn vocab_size(&self) -> usize {
        self.chars.len()
    }
    fn name(&self) -> &'static str {
        "char"
    }
    fn eot(&self) -> Option<u32> {
        None
    }
}
