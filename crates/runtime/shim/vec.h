// The vector primitives the shims' kernels are written over, once for AVX-512 (16 f32 lanes,
// `ladder::vec512`) and once for AVX2 + FMA (8 lanes, `ladder::vec256`): a kernel body is
// written once as a macro over these names (`kW`, `vzero`, `vset1`, `vload` (f32 or bf16
// memory as f32 lanes), `vloadf`, `vstoref`, `vstore` (to f32 or bf16 memory), `vfma`,
// `vsum`, `vmax`, `vmaxall`, `vexp` (for x ≤ 0), `vabs`, `vselneg`, and `kTileRows`) and
// compiled for both levels by `LADDER_EACH_LEVEL` (attn.cpp, causal_attn.cpp, gelu.cpp).
#pragma once
#include "simd.h"

#if defined(__x86_64__)
#include <immintrin.h>

namespace ladder {

namespace vec512 {
#pragma GCC push_options
#pragma GCC target("avx512f")
constexpr int64_t kW = 16;
constexpr int64_t kTileRows = 8; // rows of a register tile of 2 vectors a row (of 32 registers)
inline __m512 vzero() { return _mm512_setzero_ps(); }
inline __m512 vset1(float x) { return _mm512_set1_ps(x); }
inline __m512 vload(const float *p) { return simd::ld16(p); }
inline __m512 vload(const uint16_t *p) { return simd::ld16(p); }
inline __m512 vloadf(const float *p) { return _mm512_loadu_ps(p); }
inline void vstoref(float *p, __m512 x) { _mm512_storeu_ps(p, x); }
inline void vstore(float *p, __m512 x) { _mm512_storeu_ps(p, x); }
inline void vstore(uint16_t *p, __m512 x) { simd::st16(p, x); }
inline __m512 vfma(__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }
inline float vsum(__m512 x) { return _mm512_reduce_add_ps(x); }
inline __m512 vmax(__m512 a, __m512 b) { return _mm512_max_ps(a, b); }
inline float vmaxall(__m512 x) { return _mm512_reduce_max_ps(x); }
inline __m512 vexp(__m512 x) { return simd::exp16(x); }
inline __m512 vabs(__m512 x) {
  return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff)));
}
inline __m512 vselneg(__m512 z, __m512 a, __m512 b) { // b where z < 0, else a
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_LT_OQ), a, b);
}
#pragma GCC pop_options
} // namespace vec512

namespace vec256 {
#pragma GCC push_options
#pragma GCC target("avx2,fma")
constexpr int64_t kW = 8;
constexpr int64_t kTileRows = 6; // rows of a register tile of 2 vectors a row (of 16 registers)
inline __m256 vzero() { return _mm256_setzero_ps(); }
inline __m256 vset1(float x) { return _mm256_set1_ps(x); }
inline __m256 vload(const float *p) { return simd::ld8(p); }
inline __m256 vload(const uint16_t *p) { return simd::ld8(p); }
inline __m256 vloadf(const float *p) { return _mm256_loadu_ps(p); }
inline void vstoref(float *p, __m256 x) { _mm256_storeu_ps(p, x); }
inline void vstore(float *p, __m256 x) { _mm256_storeu_ps(p, x); }
inline void vstore(uint16_t *p, __m256 x) { simd::st8(p, x); }
inline __m256 vfma(__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }
inline float vsum(__m256 x) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
inline __m256 vmax(__m256 a, __m256 b) { return _mm256_max_ps(a, b); }
inline float vmaxall(__m256 x) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
}
inline __m256 vexp(__m256 x) { return simd::exp8(x); }
inline __m256 vabs(__m256 x) {
  return _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
}
inline __m256 vselneg(__m256 z, __m256 a, __m256 b) { // b where z < 0 (sign set), else a
  return _mm256_blendv_ps(a, b, z);
}
#pragma GCC pop_options
} // namespace vec256

} // namespace ladder

// Compiles BODY (a macro holding a kernel's code) twice, in namespaces `v512` and `v256` of the
// file that expands it, each under its level's target with that level's primitives in scope.
#define LADDER_EACH_LEVEL(BODY)                                                            \
  namespace v512 {                                                                         \
  _Pragma("GCC push_options") _Pragma("GCC target(\"avx512f\")")                          \
  using namespace ladder::vec512;                                                          \
  BODY                                                                                     \
  _Pragma("GCC pop_options")                                                               \
  }                                                                                        \
  namespace v256 {                                                                         \
  _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma\")")                         \
  using namespace ladder::vec256;                                                          \
  BODY                                                                                     \
  _Pragma("GCC pop_options")                                                               \
  }
#endif // __x86_64__
