//! `cargo run -p data --bin prepare -- [--data PATH] [--tokenizer char|gpt2] [--out DIR]`
use anyhow::Result;
use clap::Parser;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    about = "Tokenise a text corpus into train.bin / val.bin (90/10 split) + meta.json, once."
)]
struct Args {
    /// The corpus (default: $LADDER_DATA, else ../shared/data/tinyshakespeare.txt).
    #[arg(long)]
    data: Option<PathBuf>,
    /// char (the corpus's sorted characters) or gpt2 (BPE, 50257 ids).
    #[arg(long, default_value = "char")]
    tokenizer: data::TokenizerKind,
    /// Output folder (default: data-cache/<corpus stem>_<tokenizer>).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let corpus = data::resolve_corpus(args.data.as_deref())?;
    let stem = corpus
        .file_stem()
        .map_or("corpus".into(), |s| s.to_string_lossy().to_string());
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from("data-cache").join(format!("{stem}_{}", args.tokenizer)));
    let meta = data::prepare(&corpus, &out, args.tokenizer)?;
    println!(
        "{}: {} tokenizer, vocab {}, {} train + {} val tokens ({}) in {}",
        corpus.display(),
        meta.tokenizer,
        meta.vocab_size,
        meta.train_tokens,
        meta.val_tokens,
        meta.dtype,
        out.display()
    );
    Ok(())
}
