// The training attention kernel (causal_attn.cpp) as a libtorch autograd function, so that
// Rust code (tch has no custom autograd) gets a tensor whose backward runs our backward.
// `q`, `k`, `v` and the result are tch tensors (torch-sys's C_tensor: at::Tensor*).
#include "causal_attn.h"
#include <ATen/ops/empty.h>
#include <torch/csrc/autograd/custom_function.h>

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
namespace cz = ladder::causal;

int dtype_of(const at::Tensor &x) {
  return x.scalar_type() == at::kFloat ? 0 : x.scalar_type() == at::kBFloat16 ? 1 : -1;
}

void strides(const at::Tensor &x, int64_t *s) {
  for (int i = 0; i < 3; ++i) s[i] = x.stride(i);
}

cz::Args args(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v, double scale) {
  cz::Args a{};
  a.b = q.size(0), a.nh = q.size(1), a.t = q.size(2), a.d = q.size(3), a.nkv = k.size(1);
  a.scale = float(scale);
  a.q = q.data_ptr(), a.k = k.data_ptr(), a.v = v.data_ptr();
  strides(q, a.qs), strides(k, a.ks), strides(v, a.vs);
  return a;
}

// (B, nh, T, D) viewed from a fresh (B, T, nh, D) buffer.
at::Tensor bthd(const at::Tensor &like, int64_t heads) {
  return at::empty({like.size(0), like.size(2), heads, like.size(3)}, like.options())
      .transpose(1, 2);
}

struct CausalAttention : public torch::autograd::Function<CausalAttention> {
  static at::Tensor forward(AutogradContext *ctx, const at::Tensor &q, const at::Tensor &k,
                            const at::Tensor &v, double scale) {
    cz::Args a = args(q, k, v, scale);
    at::Tensor out = bthd(q, a.nh);
    at::Tensor lse = at::empty({a.b, a.nh, a.t}, q.options().dtype(at::kFloat));
    a.o = out.data_ptr(), a.lse = lse.data_ptr<float>();
    TORCH_CHECK(cz::forward(a, dtype_of(q), ladder_attn_level(a.d)) == 0, "causal attention");
    ctx->save_for_backward({q, k, v, out, lse});
    ctx->saved_data["scale"] = scale;
    return out;
  }

  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &v = saved[2], &out = saved[3];
    at::Tensor go = grads[0];
    if (go.stride(3) != 1) go = go.contiguous();
    if (go.scalar_type() != q.scalar_type()) go = go.to(q.scalar_type());
    cz::Args a = args(q, k, v, ctx->saved_data["scale"].toDouble());
    at::Tensor dq = bthd(q, a.nh), dk = bthd(k, a.nkv), dv = bthd(v, a.nkv);
    a.o = out.data_ptr(), a.lse = saved[4].data_ptr<float>();
    a.dout = go.data_ptr(), strides(go, a.dos);
    a.dq = dq.data_ptr(), a.dk = dk.data_ptr(), a.dv = dv.data_ptr();
    TORCH_CHECK(cz::backward(a, dtype_of(q), ladder_attn_level(a.d)) == 0, "causal attention");
    return {dq, dk, dv, at::Tensor()};
  }
};

bool applies(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v) {
  if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4 || !q.device().is_cpu()) return false;
  if (k.sizes() != v.sizes() || k.device() != q.device() || v.device() != q.device()) return false;
  if (k.scalar_type() != q.scalar_type() || v.scalar_type() != q.scalar_type()) return false;
  if (dtype_of(q) < 0 || q.size(0) != k.size(0) || q.size(2) != k.size(2)) return false;
  if (q.size(3) != k.size(3) || k.size(1) < 1 || q.size(1) % k.size(1) != 0) return false;
  if (q.size(2) < 1 || q.stride(3) != 1 || k.stride(3) != 1 || v.stride(3) != 1) return false;
  return ladder_attn_level(q.size(3)) > 0;
}

} // namespace

// *out = causal attention of q (B, nh, T, D) over k, v (B, nkv, T, D) (query head i reads KV
// head i / (nh / nkv); key j ≤ query i): a (B, nh, T, D) view of a (B, T, nh, D) tensor,
// recorded for autograd when grad mode is on and an input requires grad. Returns 0, 1
// where the kernel does not apply (nothing allocated), 2 on an exception.
extern "C" int ladder_causal_attn(void *q, void *k, void *v, double scale, void **out) noexcept {
  try {
    const at::Tensor &tq = *static_cast<at::Tensor *>(q), &tk = *static_cast<at::Tensor *>(k),
                     &tv = *static_cast<at::Tensor *>(v);
    if (!applies(tq, tk, tv)) return 1;
    const bool grad = at::GradMode::is_enabled() &&
                      (tq.requires_grad() || tk.requires_grad() || tv.requires_grad());
    at::Tensor result;
    if (grad) {
      result = CausalAttention::apply(tq, tk, tv, scale);
    } else {
      cz::Args a = args(tq, tk, tv, scale);
      result = bthd(tq, a.nh);
      a.o = result.data_ptr(), a.lse = nullptr;
      if (cz::forward(a, dtype_of(tq), ladder_attn_level(a.d)) != 0) return 1;
    }
    *out = new at::Tensor(std::move(result));
    return 0;
  } catch (...) {
    return 2;
  }
}
