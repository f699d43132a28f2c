// Setting a tensor's `.grad` from Rust (tch reads and zeroes gradients but cannot assign
// one). With a parameter's gradient set to a view into a flat buffer, autograd accumulates
// into that view in place (AccumulateGrad adds into a defined gradient outside grad mode),
// so an optimizer can update every parameter with a few large ops (optim's flat AdamW).
// `param` and `grad` are tch tensors (torch-sys's C_tensor: at::Tensor*).
#include <ATen/core/Tensor.h>

extern "C" int ladder_set_grad(void *param, void *grad) noexcept {
  try {
    static_cast<at::Tensor *>(param)->mutable_grad() = *static_cast<at::Tensor *>(grad);
    return 0;
  } catch (...) {
    return 1;
  }
}
