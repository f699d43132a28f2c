// Shapes, strides and buffers of one call of the training attention kernel (causal_attn.cpp),
// shared with its autograd glue (causal_attn_fn.cpp).
#pragma once
#include <cstdint>

namespace ladder::causal {

struct Args {
  int64_t b, nh, nkv, t, d; // batch, query heads, KV heads (nh a multiple), time, head size
  float scale;
  // Inputs (B, nh or nkv, T, D) with strides in elements [batch, head, time], last dim 1.
  const void *q, *k, *v;
  int64_t qs[3], ks[3], vs[3];
  // Forward: the output (B, T, nh, D) contiguous and the log-sum-exp (B, nh, T) f32
  // (nullptr: not kept). Backward reads them back.
  void *o;
  float *lse;
  // Backward: ∂out (B, nh, T, D) strided as the inputs; ∂q (B, T, nh, D), ∂k and ∂v
  // (B, T, nkv, D) with strides [batch, time] (heads D apart, the last dim contiguous).
  const void *dout;
  int64_t dos[3];
  void *dq, *dk, *dv;
  int64_t dqs[2], dks[2], dvs[2];
};

// dtype 0 f32, 1 bf16; lvl as `ladder_attn_level` (2 AVX-512, 1 AVX2). 0 on success.
int forward(const Args &a, int dtype, int lvl);
int backward(const Args &a, int dtype, int lvl);

} // namespace ladder::causal

extern "C" int ladder_attn_level(int64_t hs) noexcept;
