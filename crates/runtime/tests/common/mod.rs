//! Shared by the attention kernel tests (`attn.rs`, `causal_attn.rs`).
use std::sync::Mutex;
use tch::Tensor;

/// The kernel level is process-wide; tests that set it run one at a time.
pub static LEVEL: Mutex<()> = Mutex::new(());

/// (B, nkv, S, hs) -> (B, nkv·rep, S, hs): each KV head serves `rep` consecutive query heads.
pub fn repeat(x: &Tensor, rep: i64) -> Tensor {
    let (b, h, s, d) = x.size4().unwrap();
    x.unsqueeze(2)
        .expand([b, h, rep, s, d], false)
        .reshape([b, h * rep, s, d])
}
