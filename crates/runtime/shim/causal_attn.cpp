// Causal self-attention for training and prefill (square: T queries over their own T keys),
// forward and backward, in f32 or bf16 memory with f32 arithmetic: the algorithm of
// FlashAttention-2 (Dao 2023) — the forward keeps only the log-sum-exp of each row, the
// backward recomputes the probabilities from it — laid out for a CPU core's caches rather
// than a GPU's shared memory. One task per (sequence, head) in the forward and per (sequence,
// KV head) in the backward (the `rep` query heads of a GQA group add into the same ∂K, ∂V):
// its Q, K, V (a few tens of KB) are copied once into f32 buffers, and every product is a
// small register-blocked matrix multiply over them, 32 query rows at a time, skipping the
// key blocks the causal mask removes. libtorch's CPU flash attention hands MKL 32 × 32
// blocks instead; `results/speed/attn_train.txt` times both.
#include "causal_attn.h"
#include "vec.h"
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <vector>

namespace {

constexpr int64_t kBQ = 32; // query rows per block

#if defined(__x86_64__)

// An 8 × 8 block of floats transposed in registers (rows `ls` apart into rows `ld` apart):
// AVX only, so both kernel levels below call it.
__attribute__((target("avx2"))) inline void transpose8(const float *src, int64_t ls, float *dst,
                                                       int64_t ld) {
  __m256 r[8], t[8], u[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ls);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_ps(dst + i * ld, _mm256_permute2f128_ps(u[i], u[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * ld, _mm256_permute2f128_ps(u[i], u[i + 4], 0x31));
  }
}

// The kernels, written once over vec.h's primitives.
#define LADDER_CAUSAL_BODY                                                                 \
  using V = decltype(vzero());                                                             \
  /* C (MR × NV·kW) = [C +] A·B over k: A's element (i, p) at a[i·ars + p·acs], B (k ×    \
     ·) row-major with leading dimension ldb, C with ldc; the tile lives in registers. */  \
  template <int MR, int NV>                                                                \
  inline void tile(const float *a, int64_t ars, int64_t acs, const float *b, int64_t ldb,  \
                   float *c, int64_t ldc, int64_t k, bool acc) {                           \
    V r[MR][NV];                                                                           \
    _Pragma("GCC unroll 8") for (int i = 0; i < MR; ++i)                                   \
      _Pragma("GCC unroll 2") for (int j = 0; j < NV; ++j)                                 \
        r[i][j] = acc ? vloadf(c + i * ldc + j * kW) : vzero();                            \
    for (int64_t p = 0; p < k; ++p) {                                                      \
      V bv[NV];                                                                            \
      _Pragma("GCC unroll 2") for (int j = 0; j < NV; ++j) bv[j] = vloadf(b + p * ldb + j * kW); \
      _Pragma("GCC unroll 8") for (int i = 0; i < MR; ++i) {                               \
        const V av = vset1(a[i * ars + p * acs]);                                          \
        _Pragma("GCC unroll 2") for (int j = 0; j < NV; ++j) r[i][j] = vfma(av, bv[j], r[i][j]); \
      }                                                                                    \
    }                                                                                      \
    _Pragma("GCC unroll 8") for (int i = 0; i < MR; ++i)                                   \
      _Pragma("GCC unroll 2") for (int j = 0; j < NV; ++j) vstoref(c + i * ldc + j * kW, r[i][j]); \
  }                                                                                        \
  template <int NV>                                                                        \
  void rows(int64_t m, int64_t k, const float *a, int64_t ars, int64_t acs, const float *b, \
            int64_t ldb, float *c, int64_t ldc, bool acc) {                                \
    int64_t i = 0;                                                                         \
    for (; i + kTileRows <= m; i += kTileRows)                                             \
      tile<kTileRows, NV>(a + i * ars, ars, acs, b, ldb, c + i * ldc, ldc, k, acc);        \
    for (; i + 4 <= m; i += 4) tile<4, NV>(a + i * ars, ars, acs, b, ldb, c + i * ldc, ldc, k, acc); \
    for (; i + 2 <= m; i += 2) tile<2, NV>(a + i * ars, ars, acs, b, ldb, c + i * ldc, ldc, k, acc); \
    for (; i < m; ++i) tile<1, NV>(a + i * ars, ars, acs, b, ldb, c + i * ldc, ldc, k, acc); \
  }                                                                                        \
  /* C (m × n) = [C +] A (m × k) · B (k × n), n a multiple of kW. */                       \
  void gemm(int64_t m, int64_t n, int64_t k, const float *a, int64_t ars, int64_t acs,     \
            const float *b, int64_t ldb, float *c, int64_t ldc, bool acc) {                \
    int64_t j = 0;                                                                         \
    for (; j + 2 * kW <= n; j += 2 * kW) rows<2>(m, k, a, ars, acs, b + j, ldb, c + j, ldc, acc); \
    if (j < n) rows<1>(m, k, a, ars, acs, b + j, ldb, c + j, ldc, acc);                    \
  }                                                                                        \
  /* t rows of d (a multiple of kW) from strided f32/bf16 memory, times mul, into dst. */  \
  template <typename T>                                                                    \
  void load(const T *src, int64_t stride, int64_t t, int64_t d, float mul, float *dst) {   \
    const V m = vset1(mul);                                                                \
    for (int64_t i = 0; i < t; ++i)                                                        \
      for (int64_t x = 0; x < d; x += kW) vstoref(dst + i * d + x, vload(src + i * stride + x) * m); \
  }                                                                                        \
  template <typename T>                                                                    \
  void store(const float *src, int64_t t, int64_t d, float mul, T *dst, int64_t stride) {  \
    const V m = vset1(mul);                                                                \
    for (int64_t i = 0; i < t; ++i)                                                        \
      for (int64_t x = 0; x < d; x += kW) vstore(dst + i * stride + x, vloadf(src + i * d + x) * m); \
  }                                                                                        \
  /* Row i of s (n wide) becomes exp(s − sub[i]) for keys j ≤ i0 + i, 0 after; with       \
     sub = nullptr the row's own max is used and it and the sum are returned in mx, l. */  \
  void softmax_rows(float *s, int64_t ld, int64_t m, int64_t n, int64_t i0, const float *sub, \
                    float *mx, float *l) {                                                 \
    for (int64_t r = 0; r < m; ++r) {                                                      \
      float *sr = s + r * ld;                                                              \
      const int64_t lim = i0 + r + 1;                                                      \
      for (int64_t j = lim; j < n; ++j) sr[j] = -INFINITY;                                 \
      float m0;                                                                            \
      if (sub) {                                                                           \
        m0 = sub[r];                                                                       \
      } else {                                                                             \
        V vm = vset1(-INFINITY);                                                           \
        for (int64_t j = 0; j < n; j += kW) vm = vmax(vm, vloadf(sr + j));                 \
        m0 = vmaxall(vm);                                                                  \
      }                                                                                    \
      const V mb = vset1(m0);                                                              \
      V sum = vzero();                                                                     \
      for (int64_t j = 0; j < n; j += kW) {                                                \
        const V e = vexp(vloadf(sr + j) - mb);                                             \
        vstoref(sr + j, e);                                                                \
        sum = sum + e;                                                                     \
      }                                                                                    \
      for (int64_t j = lim; j < n; ++j) sr[j] = 0.0f; /* exp16 floors at e^-87.3, not 0 */ \
      if (!sub) mx[r] = m0, l[r] = vsum(sum);                                              \
    }                                                                                      \
  }                                                                                        \
  /* dst (d × ld) = srcᵀ (t × d, d a multiple of 8), zero past column t. */               \
  void transpose(const float *src, int64_t t, int64_t d, float *dst, int64_t ld) {         \
    const int64_t t8 = t & ~int64_t(7);                                                    \
    for (int64_t i = 0; i < t8; i += 8)                                                    \
      for (int64_t x = 0; x < d; x += 8) transpose8(src + i * d + x, d, dst + x * ld + i, ld); \
    for (int64_t x = 0; x < d; ++x) {                                                      \
      for (int64_t i = t8; i < t; ++i) dst[x * ld + i] = src[i * d + x];                   \
      std::fill(dst + x * ld + t, dst + (x + 1) * ld, 0.0f);                               \
    }                                                                                      \
  }                                                                                        \
  template <typename T> void forward_head(const ladder::causal::Args &a, int64_t bi, int64_t h, \
                                          std::vector<float> &w) {                         \
    const int64_t t = a.t, d = a.d, tp = (t + kW - 1) / kW * kW, g = h / (a.nh / a.nkv);   \
    w.resize(size_t(3 * t * d + d * tp + kBQ * tp + kBQ * d + 2 * kBQ));                   \
    float *qb = w.data(), *kb = qb + t * d, *vb = kb + t * d, *kt = vb + t * d;            \
    float *s = kt + d * tp, *ob = s + kBQ * tp, *mx = ob + kBQ * d, *l = mx + kBQ;         \
    load(static_cast<const T *>(a.q) + bi * a.qs[0] + h * a.qs[1], a.qs[2], t, d, a.scale, qb); \
    load(static_cast<const T *>(a.k) + bi * a.ks[0] + g * a.ks[1], a.ks[2], t, d, 1.0f, kb); \
    load(static_cast<const T *>(a.v) + bi * a.vs[0] + g * a.vs[1], a.vs[2], t, d, 1.0f, vb); \
    transpose(kb, t, d, kt, tp);                                                           \
    T *o = static_cast<T *>(a.o) + (bi * t * a.nh + h) * d;                                \
    for (int64_t i0 = 0; i0 < t; i0 += kBQ) {                                              \
      const int64_t m = std::min(kBQ, t - i0), i1 = i0 + m, n = (i1 + kW - 1) / kW * kW;   \
      gemm(m, n, d, qb + i0 * d, d, 1, kt, tp, s, tp, false); /* scores (m × n) */          \
      softmax_rows(s, tp, m, n, i0, nullptr, mx, l);                                       \
      gemm(m, d, i1, s, tp, 1, vb, d, ob, d, false); /* unnormalised output (m × d) */      \
      for (int64_t r = 0; r < m; ++r) {                                                    \
        store(ob + r * d, 1, d, 1.0f / l[r], o + (i0 + r) * a.nh * d, 0);                   \
        if (a.lse) a.lse[(bi * a.nh + h) * t + i0 + r] = mx[r] + std::log(l[r]);           \
      }                                                                                    \
    }                                                                                      \
  }                                                                                        \
  template <typename T> void backward_group(const ladder::causal::Args &a, int64_t bi,      \
                                            int64_t g, std::vector<float> &w) {            \
    const int64_t t = a.t, d = a.d, tp = (t + kW - 1) / kW * kW, rep = a.nh / a.nkv;       \
    w.resize(size_t(7 * t * d + 2 * d * tp + 2 * kBQ * tp + kBQ * d + t));                 \
    float *kb = w.data(), *vb = kb + t * d, *qb = vb + t * d, *dob = qb + t * d;           \
    float *ob = dob + t * d, *dk = ob + t * d, *dv = dk + t * d, *kt = dv + t * d;         \
    float *vt = kt + d * tp, *s = vt + d * tp, *dp = s + kBQ * tp, *dqb = dp + kBQ * tp;   \
    float *di = dqb + kBQ * d;                                                             \
    load(static_cast<const T *>(a.k) + bi * a.ks[0] + g * a.ks[1], a.ks[2], t, d, 1.0f, kb); \
    load(static_cast<const T *>(a.v) + bi * a.vs[0] + g * a.vs[1], a.vs[2], t, d, 1.0f, vb); \
    transpose(kb, t, d, kt, tp);                                                           \
    transpose(vb, t, d, vt, tp);                                                           \
    std::fill(dk, dk + 2 * t * d, 0.0f); /* dk and dv */                                   \
    for (int64_t h = g * rep; h < (g + 1) * rep; ++h) {                                    \
      load(static_cast<const T *>(a.q) + bi * a.qs[0] + h * a.qs[1], a.qs[2], t, d, a.scale, qb); \
      load(static_cast<const T *>(a.dout) + bi * a.dos[0] + h * a.dos[1], a.dos[2], t, d, 1.0f, dob); \
      load(static_cast<const T *>(a.o) + (bi * t * a.nh + h) * d, a.nh * d, t, d, 1.0f, ob); \
      for (int64_t i = 0; i < t; ++i) { /* D_i = Σ ∂o·o */                                 \
        V acc = vzero();                                                                   \
        for (int64_t x = 0; x < d; x += kW) acc = vfma(vloadf(dob + i * d + x), vloadf(ob + i * d + x), acc); \
        di[i] = vsum(acc);                                                                 \
      }                                                                                    \
      const float *lse = a.lse + (bi * a.nh + h) * t;                                      \
      T *dq = static_cast<T *>(a.dq) + bi * a.dqs[0] + h * d;                              \
      for (int64_t i0 = 0; i0 < t; i0 += kBQ) {                                            \
        const int64_t m = std::min(kBQ, t - i0), i1 = i0 + m, n = (i1 + kW - 1) / kW * kW; \
        gemm(m, n, d, qb + i0 * d, d, 1, kt, tp, s, tp, false);                             \
        softmax_rows(s, tp, m, n, i0, lse + i0, nullptr, nullptr); /* P, from the lse */   \
        gemm(i1, d, m, s, 1, tp, dob + i0 * d, d, dv, d, true);   /* ∂V += Pᵀ ∂O */        \
        gemm(m, n, d, dob + i0 * d, d, 1, vt, tp, dp, tp, false); /* ∂P = ∂O Vᵀ */        \
        for (int64_t r = 0; r < m; ++r) { /* ∂S = P ⊙ (∂P − D_i) */                        \
          const V dr = vset1(di[i0 + r]);                                                  \
          float *pr = s + r * tp, *gr = dp + r * tp;                                       \
          for (int64_t j = 0; j < n; j += kW) vstoref(gr + j, vloadf(pr + j) * (vloadf(gr + j) - dr)); \
        }                                                                                  \
        gemm(m, d, i1, dp, tp, 1, kb, d, dqb, d, false);          /* ∂Q = ∂S K · scale */  \
        store(dqb, m, d, a.scale, dq + i0 * a.dqs[1], a.dqs[1]);                           \
        gemm(i1, d, m, dp, 1, tp, qb + i0 * d, d, dk, d, true);   /* ∂K += ∂Sᵀ (Q·scale) */ \
      }                                                                                    \
    }                                                                                      \
    store(dk, t, d, 1.0f, static_cast<T *>(a.dk) + bi * a.dks[0] + g * d, a.dks[1]);       \
    store(dv, t, d, 1.0f, static_cast<T *>(a.dv) + bi * a.dvs[0] + g * d, a.dvs[1]);       \
  }

LADDER_EACH_LEVEL(LADDER_CAUSAL_BODY)

#undef LADDER_CAUSAL_BODY

template <typename T> void run(const ladder::causal::Args &a, bool fwd, int lvl) {
  const int64_t tasks = fwd ? a.b * a.nh : a.b * a.nkv, per = fwd ? a.nh : a.nkv;
  at::parallel_for(0, tasks, 1, [&](int64_t t0, int64_t t1) {
    // Each pool thread keeps its buffers (up to a few MB) across calls: no page faults.
    static thread_local std::vector<float> w;
    for (int64_t i = t0; i < t1; ++i) {
      if (fwd && lvl == 2) v512::forward_head<T>(a, i / per, i % per, w);
      else if (fwd) v256::forward_head<T>(a, i / per, i % per, w);
      else if (lvl == 2) v512::backward_group<T>(a, i / per, i % per, w);
      else v256::backward_group<T>(a, i / per, i % per, w);
    }
  });
}

#endif // __x86_64__

int dispatch(const ladder::causal::Args &a, int dtype, int lvl, bool fwd) {
#if defined(__x86_64__)
  if (lvl < 1 || lvl > 2 || (dtype != 0 && dtype != 1)) return 1;
  if (dtype == 0) run<float>(a, fwd, lvl);
  else run<uint16_t>(a, fwd, lvl);
  return 0;
#else
  (void)a, (void)dtype, (void)lvl, (void)fwd;
  return 1;
#endif
}

} // namespace

namespace ladder::causal {
int forward(const Args &a, int dtype, int lvl) { return dispatch(a, dtype, lvl, true); }
int backward(const Args &a, int dtype, int lvl) { return dispatch(a, dtype, lvl, false); }
} // namespace ladder::causal
