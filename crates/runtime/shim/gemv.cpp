// Batch-1 matrix-vector product for decode: y = W x (+ b), W (n, k) row-major, in f32 or
// bf16 with f32 accumulation. A decode step reads every weight once, so its speed is how
// fast the weights stream from memory; libtorch's default mv reached well under half the
// measured read bandwidth on the Zen 4 EPYC (results/speed/overhead). These loops read each
// row as one sequential stream with wide loads and one FMA (or, with AVX512-BF16, one
// `vdpbf16ps`) per 64-byte load. The rows are shared out over libtorch's own intra-op
// threads (at::parallel_for, OpenMP: build.rs compiles this with -fopenmp, without which it
// would run on the calling thread only), so they run at the thread count
// `tch::set_num_threads` chose. Kernels are picked at run time from what the CPU reports
// (AVX512-BF16 / AVX-512 / AVX2+FMA); a CPU with none of them reports 0 from
// `ladder_gemv_level` and callers keep libtorch's kernels. bf16 inputs on AVX2 are widened to
// f32 in registers (a bf16 is the top half of an f32), so a machine without native bf16 does
// not fall onto libtorch's slow bf16 path.
#include "bf16.h"
#include <ATen/Parallel.h>
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace {

constexpr int64_t kGrain = 16; // rows per task at least

using ladder::bf16_to_f32;
using ladder::f32_to_bf16;

#if defined(__x86_64__)

// Every loop reads one row at a time from start to end, into 4 independent accumulators
// (so the FMA latency is hidden), with x (a few KiB) staying in L1: one sequential stream
// per thread, which the hardware prefetcher follows best. Reading 4 rows interleaved
// instead, even with software prefetch 12 KiB ahead, was no faster for any of GPT-2's
// shapes on a Zen 4 EPYC, and without the prefetch it was up to 2× slower (medians of 9
// cold-cache runs, both dtypes).

__attribute__((target("avx512f"))) void rows_f32_avx512(const float *w, const float *x,
                                                       float *acc, int64_t r0,
                                                       int64_t r1, int64_t k) {
  const int64_t kv = k & ~int64_t(63);
  for (int64_t r = r0; r < r1; ++r) {
    const float *wr = w + r * k;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i < kv; i += 64) {
      a0 = _mm512_fmadd_ps(_mm512_loadu_ps(wr + i), _mm512_loadu_ps(x + i), a0);
      a1 = _mm512_fmadd_ps(_mm512_loadu_ps(wr + i + 16), _mm512_loadu_ps(x + i + 16), a1);
      a2 = _mm512_fmadd_ps(_mm512_loadu_ps(wr + i + 32), _mm512_loadu_ps(x + i + 32), a2);
      a3 = _mm512_fmadd_ps(_mm512_loadu_ps(wr + i + 48), _mm512_loadu_ps(x + i + 48), a3);
    }
    for (; i < k; i += 16) { // the tail, 16 (or fewer, masked) at a time
      const __mmask16 m = k - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (k - i)) - 1u);
      a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, wr + i), _mm512_maskz_loadu_ps(m, x + i),
                           a0);
    }
    acc[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
  }
}

// bf16 pairs: vdpbf16ps multiplies 32 bf16 of a row by 32 of x and adds each adjacent
// pair of (exact) products into 16 f32 lanes.
__attribute__((target("avx512f,avx512bw,avx512bf16"))) void
rows_bf16_avx512(const uint16_t *w, const uint16_t *x, float *acc, int64_t r0, int64_t r1,
                 int64_t k) {
#define LD(p) ((__m512bh)_mm512_loadu_si512(p))
#define LDM(m, p) ((__m512bh)_mm512_maskz_loadu_epi16(m, p))
  const int64_t kv = k & ~int64_t(127);
  for (int64_t r = r0; r < r1; ++r) {
    const uint16_t *wr = w + r * k;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i < kv; i += 128) {
      a0 = _mm512_dpbf16_ps(a0, LD(wr + i), LD(x + i));
      a1 = _mm512_dpbf16_ps(a1, LD(wr + i + 32), LD(x + i + 32));
      a2 = _mm512_dpbf16_ps(a2, LD(wr + i + 64), LD(x + i + 64));
      a3 = _mm512_dpbf16_ps(a3, LD(wr + i + 96), LD(x + i + 96));
    }
    for (; i < k; i += 32) {
      const __mmask32 m =
          k - i >= 32 ? __mmask32(0xffffffffu) : __mmask32((uint64_t(1) << (k - i)) - 1u);
      a0 = _mm512_dpbf16_ps(a0, LDM(m, wr + i), LDM(m, x + i));
    }
    acc[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
  }
#undef LD
#undef LDM
}

__attribute__((target("avx2,fma"))) inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) inline __m256 load8(const float *p) {
  return _mm256_loadu_ps(p);
}

__attribute__((target("avx2,fma"))) inline __m256 load8(const uint16_t *p) {
  __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}


// AVX2 rows: f32 weights directly; bf16 weights widened 8 at a time. `x` is f32 here
// (bf16 x is widened once per call by the caller).
template <typename W>
__attribute__((target("avx2,fma"))) void rows_avx2(const W *w, const float *x, float *acc,
                                                   int64_t r0, int64_t r1, int64_t k) {
  const int64_t kv = k & ~int64_t(31);
  for (int64_t r = r0; r < r1; ++r) {
    const W *wr = w + r * k;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i < kv; i += 32) {
      a0 = _mm256_fmadd_ps(load8(wr + i), _mm256_loadu_ps(x + i), a0);
      a1 = _mm256_fmadd_ps(load8(wr + i + 8), _mm256_loadu_ps(x + i + 8), a1);
      a2 = _mm256_fmadd_ps(load8(wr + i + 16), _mm256_loadu_ps(x + i + 16), a2);
      a3 = _mm256_fmadd_ps(load8(wr + i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= k; i += 8) a0 = _mm256_fmadd_ps(load8(wr + i), _mm256_loadu_ps(x + i), a0);
    float s = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < k; ++i) s += ladder::to_f32(wr[i]) * x[i];
    acc[r] = s;
  }
}

#endif // __x86_64__

// 3: AVX512-BF16 (and AVX-512), 2: AVX-512, 1: AVX2 + FMA, 0: none of them.
int detect_level() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0;
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw")) return 1;
  return __builtin_cpu_supports("avx512bf16") ? 3 : 2;
#else
  return 0;
#endif
}

} // namespace

std::atomic<int> level_cap{3};

extern "C" int ladder_gemv_level() noexcept {
  static const int level = detect_level();
  return std::min(level, level_cap.load(std::memory_order_relaxed));
}

// Use at most `cap` of the levels above (tests run the AVX2 kernels on AVX-512 CPUs).
extern "C" void ladder_gemv_cap(int cap) noexcept {
  level_cap.store(cap, std::memory_order_relaxed);
}

// y (n) = w (n, k) · x (k) (+ bias (n)), all contiguous, of one dtype: 0 f32, 1 bf16.
// Returns 0, or 1 when this CPU has none of the kernels or the dtype is unknown, or 2
// when libtorch threw (a thread pool failure).
extern "C" int ladder_gemv(const void *w, const void *x, const void *bias, void *y,
                           int64_t n, int64_t k, int dtype) noexcept {
#if defined(__x86_64__)
  const int level = ladder_gemv_level();
  if (level == 0 || (dtype != 0 && dtype != 1)) return 1;
  try {
    // Accumulate into f32 (the output itself for f32; a per-thread scratch buffer, kept
    // between calls, for bf16), then add the bias and store in the output dtype.
    thread_local std::vector<float> scratch, xf; // xf: x widened for AVX2 bf16 rows
    float *acc = static_cast<float *>(y);
    if (dtype == 1) {
      if (scratch.size() < size_t(n)) scratch.resize(size_t(n));
      acc = scratch.data();
    }
    if (dtype == 1 && level < 3) {
      if (xf.size() < size_t(k)) xf.resize(size_t(k));
      const uint16_t *xb = static_cast<const uint16_t *>(x);
      for (int64_t i = 0; i < k; ++i) xf[size_t(i)] = bf16_to_f32(xb[i]);
    }
    const float *xw = xf.data(); // thread_local: the workers need this thread's buffer
    // Rows handed out in shrinking blocks ("guided"): each thread starts with a long
    // sequential stretch (what the prefetcher follows best) and the tail is shared in small
    // blocks, so a thread that started late or was slowed down does not leave the other
    // waiting at the end (with equal static halves, perf showed the calling thread waiting
    // at the closing barrier for a good part of a bf16 GPT-2 decode step on the Zen 4 EPYC).
    const int64_t threads =
        std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), n / kGrain));
    std::atomic<int64_t> next{0};
    at::parallel_for(0, threads, 1, [&](int64_t, int64_t) {
      for (;;) {
        const int64_t left = n - next.load(std::memory_order_relaxed);
        const int64_t want = std::max<int64_t>(kGrain, left / (2 * threads));
        const int64_t r0 = next.fetch_add(want, std::memory_order_relaxed);
        if (r0 >= n) break;
        const int64_t r1 = std::min(n, r0 + want);
        if (dtype == 0 && level >= 2)
          rows_f32_avx512(static_cast<const float *>(w), static_cast<const float *>(x),
                          acc, r0, r1, k);
        else if (dtype == 0)
          rows_avx2(static_cast<const float *>(w), static_cast<const float *>(x),
                    acc, r0, r1, k);
        else if (level == 3)
          rows_bf16_avx512(static_cast<const uint16_t *>(w),
                           static_cast<const uint16_t *>(x), acc, r0, r1, k);
        else
          rows_avx2(static_cast<const uint16_t *>(w), xw, acc, r0, r1, k);
        // Each thread finishes its own rows (the LM head has 50k of them).
        if (dtype == 0) {
          const float *b = static_cast<const float *>(bias);
          if (b)
            for (int64_t r = r0; r < r1; ++r) acc[r] += b[r];
        } else {
          uint16_t *out = static_cast<uint16_t *>(y);
          const uint16_t *b = static_cast<const uint16_t *>(bias);
          for (int64_t r = r0; r < r1; ++r)
            out[r] = f32_to_bf16(acc[r] + (b ? bf16_to_f32(b[r]) : 0.0f));
        }
      }
    });
    return 0;
  } catch (...) {
    return 2;
  }
#else
  (void)w, (void)x, (void)bias, (void)y, (void)n, (void)k, (void)dtype;
  return 1;
#endif
}
