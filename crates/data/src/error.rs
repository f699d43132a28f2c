//! Typed errors for the mistakes a user can make with data (wrong corpus, a character
//! outside the vocabulary, a split too short for the model's block). Functions return
//! `anyhow::Result`; these ride inside and can be recovered with `downcast_ref::<DataError>()`.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(
        "corpus {} not found ({source_hint}). Run `just data` to download Tiny Shakespeare, \
         or pass {remedy} / set LADDER_DATA to any UTF-8 text file",
        .path.display()
    )]
    MissingCorpus {
        path: PathBuf,
        /// Where the path came from, e.g. "--data" or "LADDER_DATA".
        source_hint: String,
        /// How this command takes a corpus: "--data PATH" (prepare), "--set data.corpus=PATH" (train).
        remedy: String,
    },
    #[error("corpus {} is empty (nothing but whitespace): nothing to train on", .path.display())]
    EmptyCorpus { path: PathBuf },
    #[error(
        "corpus {} is not valid UTF-8 text (first bad byte at offset {offset})",
        .path.display()
    )]
    NotUtf8 { path: PathBuf, offset: usize },
    #[error("character {ch:?} is not in the {vocab}-character vocabulary")]
    UnknownChar { ch: char, vocab: usize },
    #[error(
        "corpus shorter than one block: the {split} split ({}) has {tokens} tokens, but a block of \
         {block} needs {} (use a longer corpus or a smaller block_size)",
        .path.display(),
        .block + 1
    )]
    ShortSplit {
        split: String,
        path: PathBuf,
        tokens: usize,
        block: usize,
    },
}
