// GELU with the tanh approximation (Hendrycks & Gimpel 2016; GPT-2's `gelu_new`), forward and
// backward, f32 or bf16, as a libtorch autograd function. gelu(x) = x·σ(z) with
// z = 2·√(2/π)·(x + 0.044715·x³) (since (1 + tanh(u)) / 2 = σ(2u)), and
// gelu'(x) = σ(z) + x·σ(z)·(1 − σ(z))·z'. σ comes from one exp of −|z| (never overflows);
// libtorch evaluates tanh with SLEEF's 1-ulp tanh, which stood out in a perf profile of a
// shakespeare_char_cpu training step.
#include "vec.h"
#include <ATen/Parallel.h>
#include <ATen/ops/empty_like.h>
#include <cmath>
#include <torch/csrc/autograd/custom_function.h>

extern "C" int ladder_attn_level(int64_t hs) noexcept;

namespace {

constexpr float kA = 1.5957691216057308f; // 2·√(2/π)
constexpr float kB = 0.044715f;

// σ(z) and x·σ(z) (scalar: the tail of a row).
inline float sigma(float x) {
  const float z = kA * (x + kB * x * x * x), e = std::exp(-std::fabs(z));
  return z >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

#if defined(__x86_64__)
#define LADDER_GELU_BODY                                                                   \
  using V = decltype(vzero());                                                             \
  inline V vsigma(V x) {                                                                   \
    const V z = vset1(kA) * vfma(vset1(kB) * x * x, x, x);                                 \
    const V e = vexp(vset1(0.0f) - vabs(z)), r = vset1(1.0f) / (vset1(1.0f) + e);           \
    return vselneg(z, r, e * r); /* σ(z) = 1 / (1 + e^−z) or e^z / (1 + e^z): no 1 − σ */  \
  }                                                                                        \
  template <typename T> void forward(const T *x, T *y, int64_t n) {                        \
    int64_t i = 0;                                                                         \
    for (; i + kW <= n; i += kW) {                                                         \
      const V v = vload(x + i);                                                            \
      vstore(y + i, v * vsigma(v));                                                        \
    }                                                                                      \
    for (; i < n; ++i) {                                                                   \
      const float v = ladder::to_f32(x[i]);                                                \
      ladder::store1(y + i, v * sigma(v));                                                 \
    }                                                                                      \
  }                                                                                        \
  template <typename T> void backward(const T *x, const T *dy, T *dx, int64_t n) {         \
    int64_t i = 0;                                                                         \
    for (; i + kW <= n; i += kW) {                                                         \
      const V v = vload(x + i), s = vsigma(v);                                             \
      const V dz = vset1(kA) * vfma(vset1(3 * kB) * v, v, vset1(1.0f));                    \
      const V g = vfma(v * s * (vset1(1.0f) - s), dz, s);                                  \
      vstore(dx + i, vload(dy + i) * g);                                                   \
    }                                                                                      \
    for (; i < n; ++i) {                                                                   \
      const float v = ladder::to_f32(x[i]), s = sigma(v);                                  \
      const float g = s + v * s * (1 - s) * kA * (1 + 3 * kB * v * v);                     \
      ladder::store1(dx + i, ladder::to_f32(dy[i]) * g);                                   \
    }                                                                                      \
  }

LADDER_EACH_LEVEL(LADDER_GELU_BODY)
#undef LADDER_GELU_BODY

// 2 AVX-512, 1 AVX2 + FMA, 0 neither (the same levels and cap as the attention kernels).
int level() { return ladder_attn_level(16); }

// y = gelu(x) (dy null) or dx = gelu'(x)·dy, over contiguous tensors of one dtype.
template <typename T> void run(const at::Tensor &x, const at::Tensor *dy, at::Tensor &out) {
  const int lvl = level();
  const T *px = static_cast<const T *>(x.data_ptr());
  const T *pd = dy ? static_cast<const T *>(dy->data_ptr()) : nullptr;
  T *po = static_cast<T *>(out.data_ptr());
  at::parallel_for(0, x.numel(), 16384, [&](int64_t i0, int64_t i1) {
    if (pd && lvl == 2) v512::backward(px + i0, pd + i0, po + i0, i1 - i0);
    else if (pd) v256::backward(px + i0, pd + i0, po + i0, i1 - i0);
    else if (lvl == 2) v512::forward(px + i0, po + i0, i1 - i0);
    else v256::forward(px + i0, po + i0, i1 - i0);
  });
}

at::Tensor compute(const at::Tensor &x, const at::Tensor *dy) {
  at::Tensor out = at::empty_like(x, at::MemoryFormat::Contiguous);
  if (x.scalar_type() == at::kFloat) run<float>(x, dy, out);
  else run<uint16_t>(x, dy, out);
  return out;
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct GeluTanh : public torch::autograd::Function<GeluTanh> {
  static at::Tensor forward(AutogradContext *ctx, const at::Tensor &x) {
    ctx->save_for_backward({x});
    return compute(x, nullptr);
  }
  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    const at::Tensor x = ctx->get_saved_variables()[0];
    const at::Tensor dy = grads[0].to(x.scalar_type()).contiguous();
    return {compute(x, &dy)};
  }
};
#endif // __x86_64__

} // namespace

// *out = gelu_tanh(x) for a contiguous f32 or bf16 CPU tensor, recorded for autograd when
// grad mode is on and x requires grad. Returns 0, 1 where it does not apply (no kernel for
// this CPU, another dtype, device or layout: nothing allocated), 2 on an exception.
extern "C" int ladder_gelu_tanh(void *x, void **out) noexcept {
#if defined(__x86_64__)
  try {
    const at::Tensor &t = *static_cast<at::Tensor *>(x);
    const bool kind = t.scalar_type() == at::kFloat || t.scalar_type() == at::kBFloat16;
    if (!kind || !t.device().is_cpu() || !t.is_contiguous() || level() == 0) return 1;
    at::Tensor y = at::GradMode::is_enabled() && t.requires_grad() ? GeluTanh::apply(t)
                                                                   : compute(t, nullptr);
    *out = new at::Tensor(std::move(y));
    return 0;
  } catch (...) {
    return 2;
  }
#else
  (void)x, (void)out;
  return 1;
#endif
}
