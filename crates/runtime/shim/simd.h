// Vector helpers shared by the shims' softmax loops (xent.cpp, attn.cpp): a fast exp for
// arguments ≤ 0 (x − max), and loads / stores of 16 (AVX-512) or 8 (AVX2) f32 lanes from and
// to f32 or bf16 memory. Each function carries its own target attribute, so a file includes
// this whatever it is compiled for and calls them only from code of the same target.
#pragma once
#include "bf16.h"
#include <cstdint>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace ladder {

inline void store1(float *p, float v) { *p = v; }
inline void store1(uint16_t *p, float v) { *p = ladder::f32_to_bf16(v); }

#if defined(__x86_64__)
namespace simd {

// exp on [-87.3, 0] (x − max): x = n·ln2 + r with |r| ≤ ln2/2 (ln2 split in two, Cody–Waite),
// e^r by its Taylor polynomial to r⁷ (truncation error < 1e-8 relative), times 2ⁿ.
constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693145751953125f,
                kLn2Lo = 1.428606765330187045e-06f, kMinArg = -87.3f;
constexpr float kC[8] = {1.0f,         1.0f,          0.5f,           1.0f / 6,
                         1.0f / 24,    1.0f / 120,    1.0f / 720,     1.0f / 5040};


__attribute__((target("avx512f"))) inline __m512 exp16(__m512 x) {
  // The constant first: MAXPS returns its second operand when one is NaN, so NaN stays NaN.
  x = _mm512_max_ps(_mm512_set1_ps(kMinArg), x);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kC[7]);
  for (int i = 6; i >= 0; --i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC[i]));
  return _mm512_scalef_ps(p, n);
}

__attribute__((target("avx2,fma"))) inline __m256 exp8(__m256 x) {
  x = _mm256_max_ps(_mm256_set1_ps(kMinArg), x);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kC[7]);
  for (int i = 6; i >= 0; --i) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC[i]));
  // 2ⁿ from its exponent bits: n ≥ −126 here, so the result is a normal float.
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n),
                                                       _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

// Loads of 16 (AVX-512) or 8 (AVX2) elements as f32.
__attribute__((target("avx512f"))) inline __m512 ld16(const float *p) {
  return _mm512_loadu_ps(p);
}
__attribute__((target("avx512f"))) inline __m512 ld16(const uint16_t *p) {
  const __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}
__attribute__((target("avx2,fma"))) inline __m256 ld8(const float *p) {
  return _mm256_loadu_ps(p);
}
__attribute__((target("avx2,fma"))) inline __m256 ld8(const uint16_t *p) {
  const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

// Stores of 16 / 8 f32 as the row's dtype (bf16: round to nearest even, as libtorch casts).
__attribute__((target("avx512f"))) inline void st16(float *p, __m512 g) {
  _mm512_storeu_ps(p, g);
}
__attribute__((target("avx512f"))) inline void st16(uint16_t *p, __m512 g) {
  __m512i u = _mm512_castps_si512(g);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  u = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
  _mm256_storeu_si256((__m256i *)p, _mm512_cvtepi32_epi16(_mm512_srli_epi32(u, 16)));
}
__attribute__((target("avx2,fma"))) inline void st8(float *p, __m256 g) {
  _mm256_storeu_ps(p, g);
}
__attribute__((target("avx2,fma"))) inline void st8(uint16_t *p, __m256 g) {
  __m256i u = _mm256_castps_si256(g);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  u = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
  // (8 × u32 ≤ 0xffff) → 8 × u16: pack within 128-bit lanes, then gather lanes 0 and 2.
  const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(u, u), 0b1000);
  _mm_storeu_si128((__m128i *)p, _mm256_castsi256_si128(packed));
}

} // namespace simd
#endif

} // namespace ladder
