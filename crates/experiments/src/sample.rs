//! A short text sample at the end of training (temperature 0.8, top-k 200, as nanoGPT's
//! `sample.py`), to see what the loss numbers mean. Generation is `infer`'s, with its KV
//! cache and seeded sampler.
use anyhow::Result;
use infer::{generate, GenOptions, Sampler};
use model::Gpt;

pub fn sample_text(m: &Gpt, meta: &data::Meta, n: usize, seed: u64) -> Result<String> {
    let tok = meta.tokenizer()?;
    // Start from a newline (char level) or <|endoftext|> (GPT-2).
    let start = tok
        .eot()
        .map_or_else(|| tok.encode("\n"), |e| Ok(vec![e]))?;
    let n = n.min(m.cfg.block_size.saturating_sub(start.len()));
    if n == 0 {
        return Ok(String::new());
    }
    let prompt: Vec<i64> = start.iter().map(|&t| t as i64).collect();
    let opts = GenOptions {
        max_new_tokens: n,
        kv_cache: true,
        sampler: Sampler {
            temperature: 0.8,
            top_k: 200,
            top_p: 1.0,
        },
        eos: Vec::new(),
        seed,
    };
    let gen = generate(m, &[prompt], &opts, |_| {})?;
    let ids: Vec<u32> = gen.ids[0].iter().map(|&t| t as u32).collect();
    Ok(tok.decode(&ids))
}
