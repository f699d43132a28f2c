// Fused cross-entropy for the LM head's training step: one pass over the (N, V) logits that
// computes each row's loss and overwrites the row with the gradient of the mean loss,
//   g = (softmax(x) − onehot(t)) · scale,   loss_row = logsumexp(x) − x[t],
// in the logits' own dtype (f32 or bf16). libtorch's log_softmax + nll_loss and their
// backward read and write the logits-sized buffers five or six times, compute exp twice,
// and in bf16 cast the logits to f32 first; here each row is read once and written once
// (through an f32 scratch row that stays in L2) and exp runs once per element.
// What Liger-Kernel's fused linear cross-entropy does on GPUs, in plain C++ for the CPU.
#include "bf16.h"
#include "simd.h"
#include <ATen/Parallel.h>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace {

using ladder::store1;

#if defined(__x86_64__)

using namespace ladder::simd;

// One row: returns its loss; `x` (the row, V long) becomes the gradient; `s` is V floats of
// scratch. The vector part runs `w` lanes at a time, the tail in scalar code.
template <typename T>
__attribute__((target("avx512f"))) float row512(T *x, float *s, int64_t v, int64_t t,
                                                float scale) {
  const int64_t vv = v & ~int64_t(15);
  __m512 m = _mm512_set1_ps(-INFINITY);
  for (int64_t i = 0; i < vv; i += 16) {
    const __m512 a = ld16(x + i);
    _mm512_storeu_ps(s + i, a);
    m = _mm512_max_ps(m, a);
  }
  float mx = _mm512_reduce_max_ps(m);
  for (int64_t i = vv; i < v; ++i) mx = std::fmax(mx, s[i] = ladder::to_f32(x[i]));
  const float xt = s[t];
  __m512 acc = _mm512_setzero_ps();
  const __m512 mv = _mm512_set1_ps(mx);
  for (int64_t i = 0; i < vv; i += 16) {
    const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(s + i), mv));
    _mm512_storeu_ps(s + i, e);
    acc = _mm512_add_ps(acc, e);
  }
  double sum = _mm512_reduce_add_ps(acc);
  for (int64_t i = vv; i < v; ++i) sum += (s[i] = std::exp(s[i] - mx));
  const float inv = float(scale / sum);
  const __m512 iv = _mm512_set1_ps(inv);
  for (int64_t i = 0; i < vv; i += 16) {
    st16(x + i, _mm512_mul_ps(_mm512_loadu_ps(s + i), iv));
  }
  for (int64_t i = vv; i < v; ++i) store1(x + i, s[i] * inv);
  store1(x + t, s[t] * inv - scale);
  return float(std::log(sum) + mx - xt);
}

template <typename T>
__attribute__((target("avx2,fma"))) float row256(T *x, float *s, int64_t v, int64_t t,
                                                 float scale) {
  const int64_t vv = v & ~int64_t(7);
  __m256 m = _mm256_set1_ps(-INFINITY);
  for (int64_t i = 0; i < vv; i += 8) {
    const __m256 a = ld8(x + i);
    _mm256_storeu_ps(s + i, a);
    m = _mm256_max_ps(m, a);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, m);
  float mx = -INFINITY;
  for (float l : lanes) mx = std::fmax(mx, l);
  for (int64_t i = vv; i < v; ++i) mx = std::fmax(mx, s[i] = ladder::to_f32(x[i]));
  const float xt = s[t];
  __m256 acc = _mm256_setzero_ps();
  const __m256 mv = _mm256_set1_ps(mx);
  for (int64_t i = 0; i < vv; i += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + i), mv));
    _mm256_storeu_ps(s + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  _mm256_store_ps(lanes, acc);
  double sum = 0;
  for (float l : lanes) sum += l;
  for (int64_t i = vv; i < v; ++i) sum += (s[i] = std::exp(s[i] - mx));
  const float inv = float(scale / sum);
  const __m256 iv = _mm256_set1_ps(inv);
  for (int64_t i = 0; i < vv; i += 8) {
    st8(x + i, _mm256_mul_ps(_mm256_loadu_ps(s + i), iv));
  }
  for (int64_t i = vv; i < v; ++i) store1(x + i, s[i] * inv);
  store1(x + t, s[t] * inv - scale);
  return float(std::log(sum) + mx - xt);
}

#endif

std::atomic<int> g_cap{2}; // 2: AVX-512 where present, 1: AVX2 at most, 0: off (tests)

int level() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const int l = __builtin_cpu_supports("avx512f") ? 2 : (avx2 ? 1 : 0);
  return std::min(l, g_cap.load());
#else
  return 0;
#endif
}

template <typename T>
int run(T *logits, const int64_t *targets, float *row_loss, int64_t n, int64_t v,
        float scale, int lvl) {
#if defined(__x86_64__)
  at::parallel_for(0, n, 1, [&](int64_t r0, int64_t r1) {
    std::vector<float> scratch(size_t(v) + 16);
    for (int64_t r = r0; r < r1; ++r) {
      T *x = logits + r * v;
      row_loss[r] = lvl == 2 ? row512(x, scratch.data(), v, targets[r], scale)
                             : row256(x, scratch.data(), v, targets[r], scale);
    }
  });
  return 0;
#else
  return 1;
#endif
}

} // namespace

// 2: AVX-512, 1: AVX2+FMA, 0: none (callers keep libtorch's loss).
extern "C" int ladder_xent_level() noexcept { return level(); }

extern "C" void ladder_xent_cap(int cap) noexcept { g_cap.store(cap); }

// logits (n, v) row-major, f32 (dtype 0) or bf16 (dtype 1), overwritten with the gradient of
// scale · Σ loss_row; row_loss (n) f32 receives each row's loss. Returns 0, 1 where the CPU
// has no kernel, 2 for a target outside [0, v) (nothing written), 3 on an exception.
extern "C" int ladder_xent(void *logits, const int64_t *targets, float *row_loss, int64_t n,
                           int64_t v, float scale, int dtype) noexcept {
  try {
    const int lvl = level();
    if (lvl == 0) return 1;
    for (int64_t r = 0; r < n; ++r)
      if (targets[r] < 0 || targets[r] >= v) return 2;
    return dtype == 0 ? run(static_cast<float *>(logits), targets, row_loss, n, v, scale, lvl)
                      : run(static_cast<uint16_t *>(logits), targets, row_loss, n, v, scale,
                            lvl);
  } catch (...) {
    return 3;
  }
}
