// Attention for one new token per sequence (decode) over a KV cache, in f32 or bf16, with
// grouped KV heads: out = softmax(q·Kᵀ · scale) · V per query head, no mask (a decode query
// sees every cached key; a sliding window is a narrower view of the cache). This is the
// "flash-decoding" split of Dao et al. (2023): each task takes one KV head's `rep` query
// heads over one range of keys, reading each key and value row once for all of them (the
// bandwidth GQA saves), keeps its own max, sum and unnormalised output, and a last pass
// merges the ranges. libtorch's SDPA at a single query spends 60–130 µs per GPT-2 layer in
// bf16 (MKL's bf16 gemv for 1 × S products) against 10–20 µs in f32: most of a bf16 decode
// step's time outside the weight matmuls on the Zen 4 EPYC.
#include "bf16.h"
#include "simd.h"
#include "vec.h"
#include <ATen/Parallel.h>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace {

// Shapes and strides (in elements) of one call: q (B, nh, ·, hs), k and v (B, nkv, S, hs),
// the last dimension contiguous.
struct Args {
  const void *q, *k, *v;
  int64_t b, nh, nkv, s, hs;
  int64_t q_sb, q_sh, k_sb, k_sh, k_ss, v_sb, v_sh, v_ss;
  float scale;
};

// One task's result for each of its `rep` query heads: running max, sum of exp, and the
// unnormalised output (hs), in `part` = rep × (hs + 2) floats.
constexpr int64_t kMeta = 2;

#if defined(__x86_64__)

// The task body, written once over the vector primitives of vec.h and compiled for
// AVX-512 and for AVX2 in the two namespaces below.
#define LADDER_ATTN_TASK                                                                   \
  template <typename T>                                                                    \
  void task(const Args &a, int64_t bi, int64_t g, int64_t j0, int64_t j1, float *part,      \
            std::vector<float> &sc, std::vector<float> &qf) {                              \
    const int64_t rep = a.nh / a.nkv, hs = a.hs, n = j1 - j0;                              \
    sc.resize(size_t(rep * n));                                                            \
    qf.resize(size_t(rep * hs));                                                           \
    const T *q = static_cast<const T *>(a.q) + bi * a.q_sb + g * rep * a.q_sh;             \
    const T *k = static_cast<const T *>(a.k) + bi * a.k_sb + g * a.k_sh + j0 * a.k_ss;     \
    const T *v = static_cast<const T *>(a.v) + bi * a.v_sb + g * a.v_sh + j0 * a.v_ss;     \
    for (int64_t r = 0; r < rep; ++r)                                                      \
      for (int64_t d = 0; d < hs; ++d)                                                     \
        qf[size_t(r * hs + d)] = ladder::to_f32(q[r * a.q_sh + d]) * a.scale;               \
    for (int64_t j = 0; j < n; ++j) { /* scores: each key row read once for all heads */   \
      const T *kj = k + j * a.k_ss;                                                        \
      for (int64_t r = 0; r < rep; ++r) {                                                  \
        const float *qr = qf.data() + r * hs;                                              \
        auto acc = vzero();                                                                \
        for (int64_t d = 0; d < hs; d += kW) acc = vfma(vload(kj + d), vloadf(qr + d), acc); \
        sc[size_t(r * n + j)] = vsum(acc);                                                 \
      }                                                                                    \
    }                                                                                      \
    const int64_t nv = n & ~int64_t(kW - 1);                                               \
    for (int64_t r = 0; r < rep; ++r) { /* softmax numerators, max and sum */              \
      float *s = sc.data() + r * n;                                                        \
      auto m = vset1(-INFINITY);                                                           \
      for (int64_t j = 0; j < nv; j += kW) m = vmax(m, vloadf(s + j));                     \
      float mx = vmaxall(m);                                                               \
      for (int64_t j = nv; j < n; ++j) mx = std::fmax(mx, s[j]);                           \
      auto sum = vzero();                                                                  \
      const auto mb = vset1(mx);                                                           \
      for (int64_t j = 0; j < nv; j += kW) {                                               \
        const auto e = vexp(vloadf(s + j) - mb);                                           \
        vstoref(s + j, e);                                                                 \
        sum = sum + e;                                                                     \
      }                                                                                    \
      float l = vsum(sum);                                                                 \
      for (int64_t j = nv; j < n; ++j) l += (s[j] = std::exp(s[j] - mx));                  \
      float *out = part + r * (hs + kMeta);                                                \
      out[0] = mx;                                                                         \
      out[1] = l;                                                                          \
      std::fill(out + kMeta, out + kMeta + hs, 0.0f);                                      \
    }                                                                                      \
    /* Σ p·v over blocks of 64 keys (their value rows stay in L1 for all the heads), four  \
       vectors of the output at a time in registers: no store-to-load chain per key. */    \
    for (int64_t jb = 0; jb < n; jb += 64) {                                               \
      const int64_t je = std::min(n, jb + 64);                                             \
      for (int64_t r = 0; r < rep; ++r) {                                                  \
        float *acc = part + r * (hs + kMeta) + kMeta;                                      \
        const float *pr = sc.data() + r * n;                                               \
        for (int64_t d = 0; d < hs; d += 4 * kW) {                                         \
          const int64_t nb = std::min<int64_t>(4, (hs - d) / kW);                          \
          auto a0 = vloadf(acc + d), a1 = nb > 1 ? vloadf(acc + d + kW) : a0;              \
          auto a2 = nb > 2 ? vloadf(acc + d + 2 * kW) : a0;                                \
          auto a3 = nb > 3 ? vloadf(acc + d + 3 * kW) : a0;                                \
          for (int64_t j = jb; j < je; ++j) {                                              \
            const T *vj = v + j * a.v_ss + d;                                              \
            const auto p = vset1(pr[j]);                                                   \
            a0 = vfma(vload(vj), p, a0);                                                   \
            if (nb > 1) a1 = vfma(vload(vj + kW), p, a1);                                  \
            if (nb > 2) a2 = vfma(vload(vj + 2 * kW), p, a2);                              \
            if (nb > 3) a3 = vfma(vload(vj + 3 * kW), p, a3);                              \
          }                                                                                \
          vstoref(acc + d, a0);                                                            \
          if (nb > 1) vstoref(acc + d + kW, a1);                                           \
          if (nb > 2) vstoref(acc + d + 2 * kW, a2);                                       \
          if (nb > 3) vstoref(acc + d + 3 * kW, a3);                                       \
        }                                                                                  \
      }                                                                                    \
    }                                                                                      \
  }

LADDER_EACH_LEVEL(LADDER_ATTN_TASK)

#undef LADDER_ATTN_TASK

#endif // __x86_64__

std::atomic<int> g_cap{2}; // 2: AVX-512 where present, 1: AVX2 at most, 0: off (tests)

// 2: AVX-512 (hs a multiple of 16), 1: AVX2 + FMA (hs a multiple of 8), 0: neither.
int level_for(int64_t hs) {
#if defined(__x86_64__)
  // 2: AVX-512, 1: AVX2 + FMA, 0: neither; read once (this runs twice per layer per token).
  static const int cpu = [] {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0;
    return __builtin_cpu_supports("avx512f") ? 2 : 1;
  }();
  const int cap = g_cap.load();
  if (cpu == 0) return 0;
  if (cap >= 2 && cpu == 2 && hs % 16 == 0) return 2;
  return cap >= 1 && hs % 8 == 0 ? 1 : 0;
#else
  (void)hs;
  return 0;
#endif
}

template <typename T> int run(const Args &a, T *out, int lvl) {
#if defined(__x86_64__)
  const int64_t rep = a.nh / a.nkv, hs = a.hs, groups = a.b * a.nkv;
  // Split the keys when there are fewer (sequence, KV head) groups than threads (MQA, a
  // short batch), at least 64 keys per range.
  const int64_t threads = at::get_num_threads();
  const int64_t splits =
      std::max<int64_t>(1, std::min((threads + groups - 1) / groups, a.s / 64));
  const int64_t per = (a.s + splits - 1) / splits, stride = rep * (hs + kMeta);
  std::vector<float> parts(size_t(groups * splits * stride));
  at::parallel_for(0, groups * splits, 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> sc, qf;
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t grp = t / splits, sp = t % splits;
      const int64_t j0 = sp * per, j1 = std::min(a.s, j0 + per);
      float *part = parts.data() + t * stride;
      if (j0 >= j1) { // an empty range: contributes nothing
        for (int64_t r = 0; r < rep; ++r) part[r * (hs + kMeta)] = -INFINITY;
        continue;
      }
      if (lvl == 2)
        v512::task<T>(a, grp / a.nkv, grp % a.nkv, j0, j1, part, sc, qf);
      else
        v256::task<T>(a, grp / a.nkv, grp % a.nkv, j0, j1, part, sc, qf);
    }
  });
  // Merge the ranges of each query head (max-shifted sums) and normalise.
  std::vector<float> acc(static_cast<size_t>(hs), 0.0f);
  for (int64_t grp = 0; grp < groups; ++grp)
    for (int64_t r = 0; r < rep; ++r) {
      const float *p0 = parts.data() + grp * splits * stride + r * (hs + kMeta);
      float mx = -INFINITY;
      for (int64_t sp = 0; sp < splits; ++sp) mx = std::fmax(mx, p0[sp * stride]);
      float l = 0;
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t sp = 0; sp < splits; ++sp) {
        const float *p = p0 + sp * stride;
        if (p[0] == -INFINITY) continue;
        const float w = splits == 1 ? 1.0f : std::exp(p[0] - mx);
        l += w * p[1];
        for (int64_t d = 0; d < hs; ++d) acc[size_t(d)] += w * p[kMeta + d];
      }
      T *o = out + (grp * rep + r) * hs; // (B, nh, 1, hs) contiguous
      for (int64_t d = 0; d < hs; ++d) ladder::store1(o + d, acc[size_t(d)] / l);
    }
  return 0;
#else
  (void)a, (void)out, (void)lvl;
  return 1;
#endif
}

} // namespace

// The level a head size of `hs` gets on this CPU (see `level_for`).
extern "C" int ladder_attn_level(int64_t hs) noexcept { return level_for(hs); }

// Use at most `cap` of the levels (tests run the AVX2 loops on AVX-512 CPUs).
extern "C" void ladder_attn_cap(int cap) noexcept { g_cap.store(cap); }

// out (B, nh, 1, hs) contiguous = attention of q over k, v (see `Args`), dtype 0 f32 or
// 1 bf16. Returns 0, 1 where no kernel applies (nothing written), 2 on an exception.
extern "C" int ladder_decode_attn(const void *q, const void *k, const void *v, void *out,
                                  const int64_t *dims, const int64_t *strides, float scale,
                                  int dtype) noexcept {
  try {
    Args a{q,       k,          v,          dims[0],    dims[1],    dims[2],
           dims[3], dims[4],    strides[0], strides[1], strides[2], strides[3],
           strides[4], strides[5], strides[6], strides[7], scale};
    const int lvl = level_for(a.hs);
    if (lvl == 0 || a.nkv <= 0 || a.nh % a.nkv != 0 || a.s <= 0 || (dtype != 0 && dtype != 1))
      return 1;
    return dtype == 0 ? run(a, static_cast<float *>(out), lvl)
                      : run(a, static_cast<uint16_t *>(out), lvl);
  } catch (...) {
    return 2;
  }
}
