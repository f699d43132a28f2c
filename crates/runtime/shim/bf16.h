// bf16 ⇄ f32 in scalar code, shared by the shims (gemv.cpp, xent.cpp): a bf16 is the top
// half of an f32, so widening is a shift and narrowing rounds to nearest even.
#pragma once
#include <cstdint>
#include <cstring>

namespace ladder {

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t f32_to_bf16(float f) { // round to nearest even, NaN kept quiet
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// An element of an f32 or bf16 buffer as f32.
inline float to_f32(float v) { return v; }
inline float to_f32(uint16_t v) { return bf16_to_f32(v); }

} // namespace ladder
