//! A short text sample at the end of training (temperature 0.8, top-k 200, as nanoGPT's
//! `sample.py`), to see what the loss numbers mean.
use anyhow::Result;
use model::{Gpt, KvCache};
use tch::{Device, Kind, Tensor};

pub fn sample_text(
    m: &Gpt,
    meta: &data::Meta,
    n: usize,
    seed: u64,
    device: Device,
) -> Result<String> {
    let _g = tch::no_grad_guard();
    let tok = meta.tokenizer()?;
    // Start from a newline (char level) or <|endoftext|> (GPT-2).
    let start = tok
        .eot()
        .map_or_else(|| tok.encode("\n"), |e| Ok(vec![e]))?;
    let n = n.min(m.cfg.block_size.saturating_sub(start.len()));
    tch::manual_seed(seed as i64);
    let mut cache = KvCache::new(&m.cfg, 1, start.len() + n, device);
    let ids: Vec<i64> = start.iter().map(|&t| t as i64).collect();
    let mut logits = m.forward_last(
        &Tensor::from_slice(&ids).to(device).unsqueeze(0),
        0,
        Some(&mut cache),
    )?;
    let mut out: Vec<u32> = Vec::with_capacity(n);
    for _ in 0..n {
        let l = logits.to_kind(Kind::Float) / 0.8; // (1, V)
        let k = 200.min(m.cfg.vocab_size as i64);
        let (top, _) = l.topk(k, -1, true, true);
        let kth = top.narrow(-1, k - 1, 1); // (1, 1)
        let l = l.masked_fill(&l.lt_tensor(&kth), f64::NEG_INFINITY);
        let next = l.softmax(-1, Kind::Float).multinomial(1, false); // (1, 1)
        out.push(next.int64_value(&[0, 0]) as u32);
        let pos = cache.len();
        logits = m.forward_last(&next, pos, Some(&mut cache))?;
    }
    Ok(tok.decode(&out))
}
