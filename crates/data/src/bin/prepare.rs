//! `cargo run -p data --bin prepare -- [--data PATH] [--tokenizer char|gpt2] [--out DIR]`:
//! tokenise a corpus once, as nanoGPT's `data/*/prepare.py`.
use anyhow::Result;
use clap::Parser;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    about = "Tokenise a text corpus into train.bin / val.bin (90/10 split) + meta.json, once.",
    long_about = "Tokenise a text corpus into train.bin / val.bin + meta.json.\n\n\
        The first 90% of the characters become train.bin, the last 10% val.bin (raw \
        little-endian u16 ids when the vocabulary fits, else u32), as nanoGPT's prepare.py. \
        A second run with the same corpus and tokenizer reuses the files.",
    after_help = "Examples:\n  \
        cargo run -p data --bin prepare\n  \
        cargo run -p data --bin prepare -- --tokenizer gpt2\n  \
        cargo run -p data --bin prepare -- --data my.txt --out data-cache/my_char"
)]
struct Args {
    /// The corpus, a UTF-8 text file [default: $LADDER_DATA, else
    /// ../shared/data/tinyshakespeare.txt, else data/tinyshakespeare.txt from `just data`].
    #[arg(long, value_name = "PATH")]
    data: Option<PathBuf>,
    /// char: the corpus's sorted unique characters; gpt2: GPT-2 BPE (50257 ids).
    #[arg(long, default_value = "char", value_name = "char|gpt2")]
    tokenizer: data::TokenizerKind,
    /// Output folder [default: data-cache/<corpus stem>_<tokenizer>].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    runtime::exit::main(run)
}

fn run() -> Result<()> {
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
