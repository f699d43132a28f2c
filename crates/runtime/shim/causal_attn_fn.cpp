// The training attention kernel (causal_attn.cpp) as a libtorch autograd function, so that
// Rust code (tch has no custom autograd) gets a tensor whose backward runs our backward.
// `q`, `k`, `v` and the result are tch tensors (torch-sys's C_tensor: at::Tensor*).
#include "causal_attn.h"
#include <ATen/ops/empty.h>
#include <array>
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

// q, k, v as head-major views of a packed (B, T, nh + 2·nkv, D) projection.
std::array<at::Tensor, 3> heads_of(const at::Tensor &qkv, int64_t nh, int64_t nkv) {
  return {qkv.narrow(2, 0, nh).transpose(1, 2), qkv.narrow(2, nh, nkv).transpose(1, 2),
          qkv.narrow(2, nh + nkv, nkv).transpose(1, 2)};
}

// The output (B, nh, T, D) and, when `keep`, the log-sum-exp the backward needs.
std::pair<at::Tensor, at::Tensor> forward(const at::Tensor &q, const at::Tensor &k,
                                          const at::Tensor &v, double scale, bool keep) {
  cz::Args a = args(q, k, v, scale);
  at::Tensor out = bthd(q, a.nh), lse;
  if (keep) lse = at::empty({a.b, a.nh, a.t}, q.options().dtype(at::kFloat));
  a.o = out.data_ptr(), a.lse = keep ? lse.data_ptr<float>() : nullptr;
  TORCH_CHECK(cz::forward(a, dtype_of(q), ladder_attn_level(a.d)) == 0, "causal attention");
  return {out, lse};
}

// Writes ∂q, ∂k, ∂v into (B, heads, T, D) views whose heads lie D apart.
void backward(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v,
              const at::Tensor &out, const at::Tensor &lse, at::Tensor go, double scale,
              const at::Tensor &dq, const at::Tensor &dk, const at::Tensor &dv) {
  if (go.scalar_type() != q.scalar_type()) go = go.to(q.scalar_type());
  if (go.stride(3) != 1) go = go.contiguous();
  cz::Args a = args(q, k, v, scale);
  a.o = out.data_ptr(), a.lse = lse.data_ptr<float>();
  a.dout = go.data_ptr(), strides(go, a.dos);
  a.dq = dq.data_ptr(), a.dk = dk.data_ptr(), a.dv = dv.data_ptr();
  a.dqs[0] = dq.stride(0), a.dqs[1] = dq.stride(2);
  a.dks[0] = dk.stride(0), a.dks[1] = dk.stride(2);
  a.dvs[0] = dv.stride(0), a.dvs[1] = dv.stride(2);
  TORCH_CHECK(cz::backward(a, dtype_of(q), ladder_attn_level(a.d)) == 0, "causal attention");
}

struct CausalAttention : public torch::autograd::Function<CausalAttention> {
  static at::Tensor forward(AutogradContext *ctx, const at::Tensor &q, const at::Tensor &k,
                            const at::Tensor &v, double scale) {
    auto [out, lse] = ::forward(q, k, v, scale, true);
    ctx->save_for_backward({q, k, v, out, lse});
    ctx->saved_data["scale"] = scale;
    return out;
  }
  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    const auto s = ctx->get_saved_variables();
    at::Tensor dq = bthd(s[0], s[0].size(1)), dk = bthd(s[1], s[1].size(1)),
               dv = bthd(s[2], s[2].size(1));
    ::backward(s[0], s[1], s[2], s[3], s[4], grads[0], ctx->saved_data["scale"].toDouble(),
               dq, dk, dv);
    return {dq, dk, dv, at::Tensor()};
  }
};

// The same from the packed projection: one input, so its gradient is one buffer the kernel
// fills, instead of three zero-filled copies that autograd adds (the backward of `narrow`).
struct PackedCausalAttention : public torch::autograd::Function<PackedCausalAttention> {
  static at::Tensor forward(AutogradContext *ctx, const at::Tensor &qkv, int64_t nh,
                            int64_t nkv, double scale) {
    const auto [q, k, v] = heads_of(qkv, nh, nkv);
    auto [out, lse] = ::forward(q, k, v, scale, true);
    ctx->save_for_backward({qkv, out, lse});
    ctx->saved_data["nh"] = nh, ctx->saved_data["nkv"] = nkv, ctx->saved_data["scale"] = scale;
    return out;
  }
  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    const auto s = ctx->get_saved_variables();
    const int64_t nh = ctx->saved_data["nh"].toInt(), nkv = ctx->saved_data["nkv"].toInt();
    const auto [q, k, v] = heads_of(s[0], nh, nkv);
    at::Tensor dqkv = at::empty(s[0].sizes(), s[0].options());
    const auto [dq, dk, dv] = heads_of(dqkv, nh, nkv);
    ::backward(q, k, v, s[1], s[2], grads[0], ctx->saved_data["scale"].toDouble(), dq, dk, dv);
    return {dqkv, at::Tensor(), at::Tensor(), at::Tensor()};
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

// Hands `result` to Rust as a heap at::Tensor* (tch frees it).
static int give(at::Tensor result, void **out) {
  *out = new at::Tensor(std::move(result));
  return 0;
}

static bool grad_wanted(const at::Tensor &x) { return at::GradMode::is_enabled() && x.requires_grad(); }

// *out = causal attention of q (B, nh, T, D) over k, v (B, nkv, T, D) (query head i reads KV
// head i / (nh / nkv); key j ≤ query i): a (B, nh, T, D) view of a (B, T, nh, D) tensor,
// recorded for autograd when grad mode is on and an input requires grad. Returns 0, 1
// where the kernel does not apply (nothing allocated), 2 on an exception.
extern "C" int ladder_causal_attn(void *q, void *k, void *v, double scale, void **out) noexcept {
  try {
    const at::Tensor &tq = *static_cast<at::Tensor *>(q), &tk = *static_cast<at::Tensor *>(k),
                     &tv = *static_cast<at::Tensor *>(v);
    if (!applies(tq, tk, tv)) return 1;
    if (grad_wanted(tq) || grad_wanted(tk) || grad_wanted(tv))
      return give(CausalAttention::apply(tq, tk, tv, scale), out);
    return give(forward(tq, tk, tv, scale, false).first, out);
  } catch (...) {
    return 2;
  }
}

// The same for q, k, v packed in one (B, T, nh + 2·nkv, D) projection, in that order.
extern "C" int ladder_causal_attn_packed(void *qkv, int64_t nh, int64_t nkv, double scale,
                                         void **out) noexcept {
  try {
    const at::Tensor &x = *static_cast<at::Tensor *>(qkv);
    if (x.dim() != 4 || nh < 1 || nkv < 1 || x.size(2) != nh + 2 * nkv) return 1;
    const auto [q, k, v] = heads_of(x, nh, nkv);
    if (!applies(q, k, v)) return 1;
    if (grad_wanted(x)) return give(PackedCausalAttention::apply(x, nh, nkv, scale), out);
    return give(forward(q, k, v, scale, false).first, out);
  } catch (...) {
    return 2;
  }
}
